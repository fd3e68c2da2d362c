//! A node's lifecycle, the one both front ends run: `synwall run` (a config file; maps and links
//! pinned, so a restart adopts them; SIGHUP reloads) and the foreground `synwall edge|backend|
//! single` (flags; nothing pinned, so the programs go with the process).
//!
//! A front end describes the node ([`NodeSpec`]), having checked what it can name in its own
//! terms (flags or config keys). [`Node::start`] checks the engine configuration and the sysctls,
//! loads the objects (on the pinned maps, if any), configures them, puts the links in place
//! (adopting what an earlier process pinned) and pins what is new. [`Node::serve`] rotates salts
//! (backends at each epoch boundary, edges `edge_lag_ms` later) until SIGINT/SIGTERM, handing
//! rotations and SIGHUP to the front end. A start that fails leaves nothing of its own attached.

use crate::args::now_unix;
use crate::rotation::{Salts, TICK_MS};
use crate::sysctl;
use anyhow::{anyhow, Context, Result};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use synwall_bpf::pin::{self, Hook, NodeLinks, NodePins, PinnedObject, WantedLink};
use synwall_bpf::{Backend, DataPath, Edge, Link, LoadOptions, XdpMode};
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_engine::{Counters, EngineConfig};
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
    /// The master secret the salts come from.
    pub master: MasterSecret,
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

/// What a front end adds to the node's loop.
pub trait FrontEnd {
    /// The node rotated into a new epoch (reported once per epoch: the backend's switch, or an
    /// edge-only node's edge's).
    fn rotated(&mut self, _keys: &EpochKeys) {}

    /// Writing new salts failed; an error ends the loop with it (the default).
    fn rotation_failed(&mut self, e: anyhow::Error) -> Result<()> {
        Err(e)
    }

    /// SIGHUP arrived (only when [`Signals::register`] was asked for it).
    fn reload(&mut self, _node: &mut Node) {}

    /// Every tick of the loop, after any rotation and reload (periodic work: a watchdog, reading
    /// counters).
    fn idle(&mut self, _node: &Node) {}
}

/// A running node: its objects, its links and the salts each role holds.
pub struct Node {
    name: String,
    engine: EngineConfig,
    epoch_seconds: u64,
    backend: Option<Backend>,
    edge: Option<Edge>,
    /// Dropped with the node: they detach unless pinned.
    links: NodeLinks,
    salts: Salts,
}

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

fn configure(obj: &impl DataPath, engine: &EngineConfig, keys: &EpochKeys) -> Result<()> {
    obj.configure(engine)?;
    obj.set_keys(keys)?;
    Ok(())
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

        // The salts: continue from the live slot of an adopted object, else start fresh.
        let live = backend
            .as_ref()
            .filter(|l| l.adopted)
            .and_then(|l| l.obj.live_keys().ok())
            .or_else(|| {
                edge.as_ref()
                    .filter(|l| l.adopted)
                    .and_then(|l| l.obj.live_keys().ok())
            });
        let salts = Salts::start(spec.master.clone(), spec.epoch_seconds, live, now_unix().1);
        // Fresh maps are configured before anything can run on them; adopted ones only once
        // every link is in place, so a failed start leaves the running programs' state alone.
        for l in backend.iter().filter(|l| !l.adopted) {
            configure(&l.obj, &spec.engine, salts.backend())?;
        }
        for l in edge.iter().filter(|l| !l.adopted) {
            configure(&l.obj, &spec.engine, salts.edge())?;
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
            configure(&l.obj, &spec.engine, salts.backend())?;
        }
        for l in edge.iter().filter(|l| l.adopted) {
            configure(&l.obj, &spec.engine, salts.edge())?;
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
        // The front end announces the node (its `ready` line); this is the detail under it.
        debug!(
            node = spec.name,
            adopted = links.adopted(),
            attached = links.attached(),
            epoch = salts.backend().epoch,
            "data path running"
        );
        Ok(Node {
            name: spec.name,
            engine: spec.engine,
            epoch_seconds: spec.epoch_seconds,
            backend: backend.map(|l| l.obj),
            edge: edge.map(|l| l.obj),
            links,
            salts,
        })
    }

    /// The node's links.
    pub fn links(&self) -> &NodeLinks {
        &self.links
    }

    /// The salts each role holds.
    pub fn salts(&self) -> &Salts {
        &self.salts
    }

    /// Rotate what entered a new epoch: the backend at the boundary, the edge `edge_lag_ms`
    /// later. Returns the rotation to report: the backend's, or an edge-only node's edge's.
    fn tick(&mut self) -> Result<Option<EpochKeys>> {
        let r = self.salts.tick(now_unix().1);
        if let (Some(k), Some(b)) = (&r.backend, &self.backend) {
            b.set_keys(k)?;
        }
        if let (Some(k), Some(e)) = (&r.edge, &self.edge) {
            e.set_keys(k)?;
        }
        Ok(if self.backend.is_some() {
            r.backend
        } else {
            r.edge
        })
    }

    /// Run until SIGINT/SIGTERM: every `TICK_MS` rotate salts (the first tick catches up with
    /// the clock right after the start) and hand SIGHUP to the front end.
    pub fn serve(&mut self, signals: &Signals, front: &mut impl FrontEnd) -> Result<()> {
        while !signals.stopped() {
            match self.tick() {
                Ok(Some(k)) => front.rotated(&k),
                Ok(None) => {}
                Err(e) => front.rotation_failed(e)?,
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
    /// gap, `synwall_bpf::abuse`), and the master secret (its salt goes live at the next
    /// boundary). Both objects must take the new services before either changes, so an error
    /// changes nothing. Returns whether the master secret changed.
    pub fn reconfigure(
        &mut self,
        engine: EngineConfig,
        master: MasterSecret,
        set_sysctls: bool,
    ) -> Result<bool> {
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
        Ok(self.salts.replace_master(master))
    }

    /// The epoch boundary a replaced master secret waits for: (epoch, seconds until it).
    pub fn next_boundary(&self) -> (u64, u64) {
        let next = self.salts.backend().epoch + 1;
        let wait = (next * self.epoch_seconds).saturating_sub(now_unix().0);
        (next, wait)
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
