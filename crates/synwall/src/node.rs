//! A node's lifecycle, the one both front ends run: `synwall run` (a config file; maps and links
//! pinned, so a restart adopts them; SIGHUP reloads) and the foreground `synwall edge|backend|
//! single` (flags; nothing pinned, so the programs go with the process).
//!
//! A front end describes the node ([`NodeSpec`]), having checked what it can name in its own
//! terms (flags or config keys). [`Node::start`] checks the engine configuration and the sysctls,
//! loads the objects (on the pinned maps, if any), configures them, puts the links in place
//! (adopting what an earlier process pinned) and pins what is new. [`Node::serve`] keeps the salt
//! ring written ahead and the heartbeat fresh every tick until SIGINT/SIGTERM (the programs
//! rotate by themselves: backends at each epoch boundary, edges `L` later), tells the front end
//! when the programs entered a new epoch, and hands it SIGHUP. A start that fails leaves nothing
//! of its own attached.

use crate::rotation::{self, key_id, RingPlan, Secrets, Switch, TICK_MS};
use crate::sysctl;
use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use synwall_bpf::pin::{self, Hook, NodeLinks, NodePins, PinnedObject, WantedLink};
use synwall_bpf::{clock, Backend, ClockValue, DataPath, Edge, Link, LoadOptions, XdpMode};
use synwall_cookie::synwall_v1::EpochClock;
use synwall_engine::{Counters, EngineConfig, SaltEntry, SaltRing};
use tracing::{debug, info, warn};

/// One interface of a node and its roles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    /// Its name.
    pub name: String,
    /// Its index (the front end looked it up).
    pub ifindex: u32,
    /// The XDP edge runs on it.
    pub edge: bool,
    /// The tc backend runs on it.
    pub backend: bool,
}

/// What a node runs, whichever front end described it.
pub struct NodeSpec {
    /// For logs (and, with pins, the pin directory's name).
    pub name: String,
    /// Services, cookie, SYN+ACK values, strict and auto mode.
    pub engine: EngineConfig,
    /// Each interface once.
    pub interfaces: Vec<Interface>,
    /// How the edge attaches.
    pub xdp_mode: XdpMode,
    /// Retry a failed native XDP attach in generic mode.
    pub xdp_fallback: bool,
    /// Epoch length in seconds.
    pub epoch_seconds: u64,
    /// How far ahead the salt ring is written, in seconds (rounded up to whole epochs, at least
    /// [`rotation::MIN_AHEAD_EPOCHS`]).
    pub salts_ahead_seconds: u64,
    /// The master secrets the salts come from.
    pub secrets: Secrets,
    /// Set the sysctls the backend needs instead of refusing to start.
    pub set_sysctls: bool,
    /// Where maps and links are pinned (`synwall run`); `None`: nothing is pinned and the
    /// programs detach when the process ends.
    pub pins: Option<NodePins>,
}

impl NodeSpec {
    fn has_edge(&self) -> bool {
        self.interfaces.iter().any(|i| i.edge)
    }

    fn has_backend(&self) -> bool {
        self.interfaces.iter().any(|i| i.backend)
    }

    fn wanted_links(&self) -> Vec<WantedLink> {
        let mut out = Vec::new();
        for i in &self.interfaces {
            for (on, hook) in [(i.backend, Hook::Tcx), (i.edge, Hook::Xdp)] {
                if on {
                    out.push(WantedLink {
                        hook,
                        iface: i.name.clone(),
                        ifindex: i.ifindex,
                    });
                }
            }
        }
        out
    }
}

/// SIGINT/SIGTERM (stop) and, for a front end that reloads, SIGHUP; for one that can, SIGUSR1
/// (stop and detach). Registered by the front end before it starts anything, so a signal during
/// the start is acted on once it is done.
pub struct Signals {
    stop: Arc<AtomicBool>,
    hup: Option<Arc<AtomicBool>>,
    detach: Option<Arc<AtomicBool>>,
}

impl Signals {
    /// Catch SIGINT and SIGTERM; with `reload`, SIGHUP too (else it keeps its default action).
    pub fn register(reload: bool) -> Result<Signals> {
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .context("install signal handler")?;
        }
        let hup = if reload {
            let hup = Arc::new(AtomicBool::new(false));
            signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
                .context("install signal handler")?;
            Some(hup)
        } else {
            None
        };
        Ok(Signals {
            stop,
            hup,
            detach: None,
        })
    }

    /// Also catch SIGUSR1: stop, and the front end detaches (see [`Signals::detach_asked`]).
    pub fn with_detach(mut self) -> Result<Signals> {
        let detach = Arc::new(AtomicBool::new(false));
        for flag in [&detach, &self.stop] {
            signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(flag))
                .context("install signal handler")?;
        }
        self.detach = Some(detach);
        Ok(self)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Was the stop a SIGUSR1 (`synwall stop --detach`)?
    pub fn detach_asked(&self) -> bool {
        self.detach
            .as_ref()
            .is_some_and(|d| d.load(Ordering::Relaxed))
    }

    fn take_hup(&self) -> bool {
        self.hup
            .as_ref()
            .is_some_and(|h| h.swap(false, Ordering::Relaxed))
    }
}

/// What the programs of a node use now: the epoch and its salts, as the node reports them (a
/// node with a backend: what it validates with, switched at the boundary; an edge-only node:
/// what it issues cookies with, `L` later).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveSalt {
    /// The epoch.
    pub epoch: u64,
    /// Its slot, if the ring holds it (`None`: stale, SYNs and ACKs pass to the kernel).
    pub entry: Option<SaltEntry>,
}

impl LiveSalt {
    /// `epoch=E key=K accepted=A` (`-` for a missing key).
    pub fn fields(&self) -> String {
        let key = self.entry.map_or("-".to_string(), |e| key_id(&e.current));
        let acc = self
            .entry
            .and_then(|e| e.accepted)
            .map_or("-".to_string(), |k| key_id(&k));
        format!("epoch={} key={key} accepted={acc}", self.epoch)
    }
}

/// What a front end adds to the node's loop.
pub trait FrontEnd {
    /// The programs entered a new epoch (reported once per epoch: a backend's switch at the
    /// boundary, or an edge-only node's `L` later).
    fn rotated(&mut self, _live: &LiveSalt) {}

    /// The ring has no salt for the epoch the programs are in (`true`), or has one again
    /// (`false`): reported once per change.
    fn stale(&mut self, _stale: bool, _live: &LiveSalt) {}

    /// Writing the salts failed; an error ends the loop with it (the default).
    fn rotation_failed(&mut self, e: anyhow::Error) -> Result<()> {
        Err(e)
    }

    /// SIGHUP arrived (only when [`Signals::register`] was asked for it).
    fn reload(&mut self, _node: &mut Node) {}

    /// Every tick of the loop, after any rotation and reload (periodic work: a watchdog, reading
    /// counters).
    fn idle(&mut self, _node: &Node) {}
}

/// A running node: its objects, its links and the plan of its salt ring.
pub struct Node {
    name: String,
    engine: EngineConfig,
    epoch_seconds: u64,
    backend: Option<Backend>,
    edge: Option<Edge>,
    /// Dropped with the node: they detach unless pinned.
    links: NodeLinks,
    plan: RingPlan,
    /// The epoch last reported to the front end, and whether the ring lacked it.
    reported: LiveSalt,
    stale: bool,
    /// Strict mode's grace after the ring was stale (UNIX ns; see `sw_clock`).
    strict_grace_until_ns: u64,
}

/// How long strict mode passes what it cannot validate after salts came back: longer than any
/// handshake's round trip, so the ACKs of SYNs the kernel answered while the ring was stale
/// arrive within it.
pub const STRICT_GRACE_NS: u64 = 3_000_000_000;

fn load<T: DataPath>(
    opts: &LoadOptions,
    dir: Option<&Path>,
    what: &str,
) -> Result<PinnedObject<T>> {
    let loaded = match dir {
        Some(dir) => pin::load_pinned(opts, dir),
        None => T::load(opts).map(|obj| PinnedObject {
            obj,
            adopted: false,
            replaced: None,
        }),
    }
    .with_context(|| format!("load the {what} object"))?;
    if let (Some(e), Some(dir)) = (&loaded.replaced, dir) {
        warn!(
            "the {what} maps pinned in {} do not fit this build ({e}); loading fresh maps \
             (counters restart from zero, the strict flow cache is empty)",
            dir.display()
        );
    }
    Ok(loaded)
}

/// Write the slots of `plan` that `obj`'s ring does not hold as planned, and the clock.
fn write_salts(obj: &impl DataPath, plan: &RingPlan, clock: &ClockValue, now: u64) -> Result<()> {
    let have = obj.salt_ring()?;
    let e = plan.epoch_at(now);
    for epoch in e.saturating_sub(1)..=e.saturating_add(plan.ahead()) {
        let want = plan.desired(epoch);
        if have.get(epoch) != Some(&want) {
            obj.set_salt(&want)?;
        }
    }
    obj.set_clock(clock)?;
    Ok(())
}

fn configure(
    obj: &impl DataPath,
    engine: &EngineConfig,
    plan: &RingPlan,
    clock: &ClockValue,
    now: u64,
) -> Result<()> {
    obj.configure(engine)?;
    write_salts(obj, plan, clock, now)
}

/// What the maps of the adopted objects hold: the backend's slots, then the edge's where the
/// backend has none, then the live salts an earlier version pinned (its two-slot map).
fn found_ring(
    backend: Option<&PinnedObject<Backend>>,
    edge: Option<&PinnedObject<Edge>>,
    legacy: &[Option<(u64, synwall_cookie::SipKey, synwall_cookie::SipKey)>],
) -> SaltRing {
    let rings: Vec<SaltRing> = [
        backend
            .filter(|l| l.adopted)
            .and_then(|l| l.obj.salt_ring().ok()),
        edge.filter(|l| l.adopted)
            .and_then(|l| l.obj.salt_ring().ok()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut found = SaltRing::new();
    for i in 0..synwall_engine::salts::SALT_RING_SLOTS {
        if let Some(r) = rings.iter().find(|r| *r.slot(i) != SaltEntry::default()) {
            found.set_slot(i, *r.slot(i));
        }
    }
    for (epoch, current, previous) in legacy.iter().flatten() {
        for (e, key) in [(*epoch, *current), (epoch.wrapping_sub(1), *previous)] {
            if found.get(e).is_none() {
                found.set(SaltEntry {
                    epoch: e,
                    current: key,
                    accepted: None,
                });
            }
        }
    }
    found
}

fn attach_xdp(edge: &Edge, spec: &NodeSpec, w: &WantedLink) -> Result<Link> {
    let iface = &w.iface;
    match edge.attach_xdp(w.ifindex, spec.xdp_mode) {
        Ok(l) => Ok(l),
        Err(e) if spec.xdp_mode == XdpMode::Native && spec.xdp_fallback => {
            warn!(
                iface,
                "native XDP failed ({e}); attaching in generic mode (edge.xdp_fallback)"
            );
            edge.attach_xdp(w.ifindex, XdpMode::Generic)
                .with_context(|| format!("cannot attach XDP to {iface}, native nor generic"))
        }
        Err(e) => Err(anyhow!(e))
            .with_context(|| format!("cannot attach XDP ({:?} mode) to {iface}", spec.xdp_mode)),
    }
}

impl Node {
    /// Start the node `spec` describes. If it fails, nothing this start attached stays attached,
    /// what an earlier process pinned keeps running untouched, and a pin directory this start
    /// created is removed.
    pub fn start(spec: NodeSpec) -> Result<Node> {
        let created = spec.pins.clone().filter(|p| !p.exists());
        let node = Self::start_inner(spec);
        if let (Err(_), Some(pins)) = (&node, created) {
            let _ = pins.remove();
        }
        node
    }

    fn start_inner(spec: NodeSpec) -> Result<Node> {
        spec.engine.validate()?;
        // Before anything changes: interfaces the programs cannot parse are refused.
        for i in &spec.interfaces {
            crate::iface::check_ethernet(&i.name)?;
            if i.edge && spec.xdp_mode == XdpMode::Native {
                if let Some(w) = crate::iface::native_vlan_warning(&i.name) {
                    warn!("{w}");
                }
            }
        }
        if spec.has_backend() {
            sysctl::ensure_for(&spec.engine.cookie, spec.set_sysctls)?;
        }
        if let Some(p) = &spec.pins {
            p.create()?;
        }
        let opts = LoadOptions::for_config(&spec.engine);
        let dir = |d: fn(&NodePins) -> std::path::PathBuf| spec.pins.as_ref().map(d);
        let backend_dir = dir(NodePins::backend);
        let edge_dir = dir(NodePins::edge);
        let mut backend = spec
            .has_backend()
            .then(|| load::<Backend>(&opts, backend_dir.as_deref(), "backend"))
            .transpose()?;
        let mut edge = spec
            .has_edge()
            .then(|| load::<Edge>(&opts, edge_dir.as_deref(), "edge"))
            .transpose()?;

        // The salts: the current salts of the live slots as the adopted maps hold them (or an
        // earlier version's two-slot map), the rest from the secrets.
        let legacy: Vec<_> = [backend_dir.as_deref(), edge_dir.as_deref()]
            .into_iter()
            .flatten()
            .map(pin::legacy_salts)
            .collect();
        let found = found_ring(backend.as_ref(), edge.as_ref(), &legacy);
        let now = clock::unix_ns();
        let ahead = rotation::ahead_epochs(spec.epoch_seconds, spec.salts_ahead_seconds);
        // Programs that ran on a ring without the live epoch's salt were stale (passing what
        // they could not judge): strict mode gets its grace. Fresh maps (nothing ever written)
        // were not: a first start is strict at once.
        let c = EpochClock::new(spec.epoch_seconds, 0);
        let written = (0..synwall_engine::salts::SALT_RING_SLOTS).any(|i| found.slot(i).epoch != 0);
        let was_stale = written
            && c.validation(now)
                .is_some_and(|a| found.get(a.epoch).is_none());
        let grace = if was_stale { now + STRICT_GRACE_NS } else { 0 };
        let mut plan = RingPlan::start(spec.secrets.clone(), spec.epoch_seconds, ahead, found, now);
        let clock_value = clock_value(spec.epoch_seconds, ahead, now, grace);
        // Fresh maps are configured before anything can run on them; adopted ones only once
        // every link is in place, so a failed start leaves the running programs' state alone.
        for l in backend.iter().filter(|l| !l.adopted) {
            configure(&l.obj, &spec.engine, &plan, &clock_value, now)?;
        }
        for l in edge.iter().filter(|l| !l.adopted) {
            configure(&l.obj, &spec.engine, &plan, &clock_value, now)?;
        }

        let links = NodeLinks::adopt_or_attach(
            spec.pins.as_ref(),
            &spec.wanted_links(),
            |w| match w.hook {
                Hook::Tcx => backend
                    .as_ref()
                    .expect("tcx wanted only with a backend")
                    .obj
                    .attach_tcx(w.ifindex)
                    .with_context(|| format!("cannot attach tcx ingress to {}", w.iface)),
                Hook::Xdp => attach_xdp(
                    &edge.as_ref().expect("xdp wanted only with an edge").obj,
                    &spec,
                    w,
                ),
            },
            |hook, link| match hook {
                Hook::Tcx => backend.as_ref().expect("backend").obj.update_link(link),
                Hook::Xdp => edge.as_ref().expect("edge").obj.update_link(link),
            },
        )?;
        for l in backend.iter().filter(|l| l.adopted) {
            configure(&l.obj, &spec.engine, &plan, &clock_value, now)?;
        }
        for l in edge.iter().filter(|l| l.adopted) {
            configure(&l.obj, &spec.engine, &plan, &clock_value, now)?;
        }
        // Every object holds the plan now: the mirror follows.
        plan.tick(now);
        for dir in [backend_dir.as_deref(), edge_dir.as_deref()]
            .into_iter()
            .flatten()
        {
            pin::remove_retired_pins(dir);
        }
        if let (Some(pins), Some(l)) = (&spec.pins, backend.as_mut()) {
            if l.replaced.is_some() {
                l.obj.repin_maps(&pins.backend())?;
            }
        }
        if let (Some(pins), Some(l)) = (&spec.pins, edge.as_mut()) {
            if l.replaced.is_some() {
                l.obj.repin_maps(&pins.edge())?;
            }
        }
        if let Some(pins) = &spec.pins {
            for (hook, iface) in links.commit(pins)? {
                info!(
                    iface,
                    ?hook,
                    "detached a link the configuration no longer has"
                );
            }
        }
        let mut node = Node {
            name: spec.name,
            engine: spec.engine,
            epoch_seconds: spec.epoch_seconds,
            backend: backend.map(|l| l.obj),
            edge: edge.map(|l| l.obj),
            links,
            plan,
            reported: LiveSalt {
                epoch: 0,
                entry: None,
            },
            stale: false,
            strict_grace_until_ns: grace,
        };
        node.reported = node.live_salt(now);
        node.stale = node.reported.entry.is_none();
        // The front end announces the node (its `ready` line); this is the detail under it.
        debug!(
            node = node.name,
            adopted = node.links.adopted(),
            attached = node.links.attached(),
            epoch = node.reported.epoch,
            ahead_epochs = ahead,
            "data path running"
        );
        Ok(node)
    }

    /// The node's links.
    pub fn links(&self) -> &NodeLinks {
        &self.links
    }

    /// What the programs use now (see [`LiveSalt`]), as of the last tick or the start.
    pub fn live(&self) -> &LiveSalt {
        &self.reported
    }

    /// The plan of the salt ring.
    pub fn plan(&self) -> &RingPlan {
        &self.plan
    }

    /// The epoch the node reports at UNIX time `now` and its slot: validation's (`e(now)`) with a
    /// backend, generation's (`e(now - L)`) on an edge-only node.
    fn live_salt(&self, now: u64) -> LiveSalt {
        let c = EpochClock::new(self.epoch_seconds, 0);
        let epoch = if self.backend.is_some() {
            c.validation(now).map_or(0, |a| a.epoch)
        } else {
            c.generation_epoch(now).unwrap_or(0)
        };
        LiveSalt {
            epoch,
            entry: self.plan.ring().get(epoch).copied(),
        }
    }

    /// Write what the ring lacks and the clock (with a fresh heartbeat) into every object.
    fn write_ring(&mut self, now: u64) -> Result<()> {
        let c = EpochClock::new(self.epoch_seconds, 0);
        if c.validation(now)
            .is_some_and(|a| self.plan.ring().get(a.epoch).is_none())
        {
            // The ring was stale (this process was stopped, or could not write): strict mode
            // keeps passing for a moment after the salts are back.
            self.strict_grace_until_ns = now + STRICT_GRACE_NS;
        }
        let writes = self.plan.tick(now);
        let cv = clock_value(
            self.epoch_seconds,
            self.plan.ahead(),
            now,
            self.strict_grace_until_ns,
        );
        let objects: [Option<&dyn ObjectSalts>; 2] = [
            self.backend.as_ref().map(|b| b as &dyn ObjectSalts),
            self.edge.as_ref().map(|e| e as &dyn ObjectSalts),
        ];
        let mut failed = None;
        for obj in objects.into_iter().flatten() {
            for w in &writes {
                if let Err(e) = obj.set_salt(w) {
                    failed.get_or_insert(e);
                }
            }
            if let Err(e) = obj.set_clock(&cv) {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            // Try every slot again next time.
            for w in &writes {
                self.plan.forget(w);
            }
            return Err(e).context("write the salt ring");
        }
        Ok(())
    }

    /// One tick: keep the ring written ahead and the heartbeat fresh; report a new epoch and
    /// stale changes to the front end.
    fn tick(&mut self, front: &mut impl FrontEnd) -> Result<()> {
        let now = clock::unix_ns();
        let written = self.write_ring(now);
        let live = self.live_salt(now);
        let rotated = live.epoch != self.reported.epoch;
        self.reported = live;
        if rotated && live.entry.is_some() {
            front.rotated(&live);
        }
        let stale = live.entry.is_none();
        if stale != self.stale {
            self.stale = stale;
            front.stale(stale, &live);
        }
        written
    }

    /// Run until SIGINT/SIGTERM: every `TICK_MS` keep the ring and the heartbeat written (the
    /// first tick right after the start) and hand SIGHUP to the front end.
    pub fn serve(&mut self, signals: &Signals, front: &mut impl FrontEnd) -> Result<()> {
        while !signals.stopped() {
            if let Err(e) = self.tick(front) {
                front.rotation_failed(e)?;
            }
            if signals.take_hup() {
                front.reload(self);
            }
            front.idle(self);
            std::thread::sleep(Duration::from_millis(TICK_MS));
        }
        Ok(())
    }

    /// Change in place what a running node can change: services, cookie, SYN+ACK values, strict
    /// and auto mode, the budgets and the deny and allow lists (map writes; the lists without a
    /// gap, `synwall_bpf::abuse`), and the master secrets (a new current master generates from
    /// the first boundary at least `max(2L, 1 s)` away; an accepted one validates at once). Both
    /// objects must take the new services before either changes, so an error changes nothing.
    /// Returns what changed in the secrets.
    pub fn reconfigure(
        &mut self,
        engine: EngineConfig,
        secrets: Secrets,
        set_sysctls: bool,
    ) -> Result<SecretChange> {
        engine.validate()?;
        if self.backend.is_some() {
            sysctl::ensure_for(&engine.cookie, set_sysctls)?;
        }
        if let Some(e) = &self.edge {
            e.check_services(&engine.services)?;
            e.check_lists(&engine.lists)?;
        }
        if let Some(b) = &self.backend {
            b.check_services(&engine.services)?;
        }
        if let Some(e) = &self.edge {
            e.configure(&engine)?;
        }
        if let Some(b) = &self.backend {
            b.configure(&engine)?;
        }
        self.engine = engine;
        let now = clock::unix_ns();
        let change = SecretChange {
            current: self.plan.replace_current(secrets.current, now),
            accepted: self.plan.set_accepted(secrets.accepted),
        };
        if change.current.is_some() || change.accepted {
            self.write_ring(now)?;
        }
        Ok(change)
    }

    /// Write the salt ring `seconds` ahead from the next tick on (`node.salts_ahead_seconds`).
    pub fn set_salts_ahead(&mut self, seconds: u64) {
        self.plan
            .set_ahead(rotation::ahead_epochs(self.epoch_seconds, seconds));
    }

    /// The final printout (the foreground commands, on stdout): each role's non-zero counters
    /// (edge first), one per line, and auto mode's state.
    pub fn print_counters(&self) -> Result<()> {
        for line in self.counter_report(true)? {
            println!("{line}");
        }
        Ok(())
    }

    /// The same as lines to log: one per role, `ROLE counters (N packets): name=value ...`.
    pub fn counter_lines(&self) -> Result<Vec<String>> {
        self.counter_report(false)
    }

    fn counter_report(&self, one_per_line: bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        if let Some(e) = &self.edge {
            role_counters(&mut out, "edge", &e.counters()?, one_per_line);
            if self.engine.auto.is_some() {
                let st = e.auto_state()?;
                out.push(format!(
                    "auto cookies {} rate={} switches={}/{}",
                    if st.cookies_on { "on" } else { "off" },
                    st.rate,
                    st.switches_on,
                    st.switches_off
                ));
            }
        }
        if let Some(b) = &self.backend {
            role_counters(&mut out, "backend", &b.counters()?, one_per_line);
        }
        Ok(out)
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A role's non-zero counters: a header line and one line each, or all on the header line.
fn role_counters(out: &mut Vec<String>, role: &str, c: &Counters, one_per_line: bool) {
    let head = format!("{role} counters ({} packets):", c.total());
    let nonzero = c.iter().filter(|(_, v)| *v > 0);
    if one_per_line {
        out.push(head);
        out.extend(nonzero.map(|(k, v)| format!("  {:<28} {v}", k.name())));
    } else {
        let pairs: Vec<String> = nonzero.map(|(k, v)| format!(" {}={v}", k.name())).collect();
        out.push(format!("{head}{}", pairs.concat()));
    }
}

/// What a reload changed in the master secrets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SecretChange {
    /// A new current master, and when it starts generating.
    pub current: Option<Switch>,
    /// The accepted master changed (set, replaced or dropped): in effect at once.
    pub accepted: bool,
}

/// The `sw_clock` value a node writes at UNIX time `now`: its epoch rule, the kernel's TAI offset
/// and the heartbeat.
fn clock_value(epoch_seconds: u64, ahead: u64, now: u64, grace: u64) -> ClockValue {
    ClockValue {
        clock: EpochClock::new(epoch_seconds, clock::tai_offset_ns()),
        strict_grace_until_ns: grace,
        heartbeat_ns: now,
        daemon_pid: std::process::id(),
        ahead_epochs: ahead as u32,
    }
}

/// The ring writes both objects take (dyn-compatible, unlike [`DataPath`]).
trait ObjectSalts {
    fn set_salt(&self, e: &SaltEntry) -> Result<()>;
    fn set_clock(&self, c: &ClockValue) -> Result<()>;
}

impl<T: DataPath> ObjectSalts for T {
    fn set_salt(&self, e: &SaltEntry) -> Result<()> {
        Ok(DataPath::set_salt(self, e)?)
    }
    fn set_clock(&self, c: &ClockValue) -> Result<()> {
        Ok(DataPath::set_clock(self, c)?)
    }
}
