//! The salt ring in network namespaces: `synwall run` nodes (strict edges, a backend, epochs of
//! 2 s), a real server, and a client connecting every 20 ms, over IPv4 and IPv6 in turn, the
//! whole time. Every test ends with 0 failed connections and no cookie a validator rejected.
//!
//! - `daemons_down_for_three_epochs`: each daemon, then both at once, stopped for three full
//!   epochs (SIGKILL, then a new process; SIGSTOP, then SIGCONT), across boundaries: the programs
//!   rotate on their own. The backend is killed 1850 ms into an epoch (what used to drop
//!   handshake ACKs); an edge comes back inside the lag. Counters never go down; `status` says
//!   loudly that the daemon is not alive and when the salts run out, `status --check` fails; each
//!   process says every epoch once, with the key it really uses.
//! - `the_ring_runs_out_and_the_kernel_answers`: an edge whose ring is written 1 s ahead is
//!   frozen past the ring's end: its SYNs go to the backend's kernel (`syn_pass_stale`), the
//!   handshakes complete through it, the backend never sees a cookie it rejects; health says why;
//!   thawed, the edge answers again. `/healthz` fails while a secret file is unreadable.
//! - `staged_secret_rollout_across_two_edges`: two edges and a backend take the three steps of
//!   SPEC 2a at different moments, some in different epochs, while every handshake ACK goes
//!   through the other edge than its SYN; then one edge skips step 1, and handshakes are lost.
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{ensure, Context, Result};
use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use synwall_bpf::pin::{NodePins, PinnedMaps};
use synwall_cookie::synwall_v1::{derive_salt, MasterSecret};
use synwall_cookie::SipKey;
use synwall_testkit::deploy::write_secret;
use synwall_testkit::load::{no_failures, Load};
use synwall_testkit::tcp::EchoServer;
use synwall_testkit::topo::{self, EdgeLab, TwoEdgeLab, BACKEND_IF, CLIENT_IF, EDGE_CLIENT_IF};
use synwall_testkit::{require_privileges, synwall, unique_prefix, Daemon, Netns};

const PORT: u16 = 8080;
const READY: Duration = Duration::from_secs(30);
/// Epoch length of every node here, seconds.
const P: u64 = 2;
const P_MS: u64 = P * 1000;

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Sleep until `ms` milliseconds into an epoch (the next time it comes).
fn at_ms_into_epoch(ms: u64) {
    let now = unix_ms();
    let wait = (ms + P_MS - now % P_MS) % P_MS;
    std::thread::sleep(Duration::from_millis(wait));
}

/// The key id (as the daemon prints it) of epoch `e`'s salt of the secret `fill`.
fn key_id(fill: u8, e: u64) -> String {
    let k = SipKey::from_bytes(&derive_salt(&MasterSecret([fill; 32]), e));
    format!("{:016x}", k.hash(b"synwall/v1 key id"))
}

/// The value of `key` (`epoch=`) in a `word=value ...` line.
fn field<'l>(line: &'l str, key: &str) -> Option<&'l str> {
    line.split_whitespace().find_map(|w| w.strip_prefix(key))
}

/// One `synwall run` node: its config file, its namespace and the process, if running.
struct Node<'a> {
    name: String,
    ns: &'a Netns,
    config: PathBuf,
    run_dir: PathBuf,
    daemon: Option<Daemon>,
    /// Every `ready`, `rotated`, `stale`, `salts` line any of its processes printed, with the
    /// pid of the process.
    said: Vec<(u32, String)>,
}

impl<'a> Node<'a> {
    fn new(ns: &'a Netns, name: String, config: PathBuf, run_dir: PathBuf) -> Self {
        Node {
            name,
            ns,
            config,
            run_dir,
            daemon: None,
            said: Vec::new(),
        }
    }

    fn start(&mut self) -> Result<()> {
        let d = Daemon::start(
            self.ns,
            synwall(),
            &[
                "run",
                "--config",
                &self.config.display().to_string(),
                "--run-dir",
                &self.run_dir.display().to_string(),
            ],
            READY,
        )?;
        self.said.push((d.pid(), d.ready_line().to_string()));
        self.daemon = Some(d);
        Ok(())
    }

    fn daemon(&mut self) -> &mut Daemon {
        self.daemon.as_mut().expect("running")
    }

    /// Collect what the running process printed since the last time.
    fn drain(&mut self) {
        let Some(d) = self.daemon.as_mut() else {
            return;
        };
        let pid = d.pid();
        while let Ok(l) = d.wait_line("", Duration::from_millis(20)) {
            self.said.push((pid, l));
        }
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) -> Result<()> {
        self.daemon().signal(sig)
    }

    /// SIGKILL: the process is gone, its pinned programs stay.
    fn kill(&mut self) -> Result<()> {
        self.drain();
        self.signal(nix::sys::signal::Signal::SIGKILL)?;
        self.daemon = None;
        Ok(())
    }

    /// SIGHUP, and the daemon's answer.
    fn reload(&mut self) -> Result<String> {
        self.drain();
        self.signal(nix::sys::signal::Signal::SIGHUP)?;
        let l = self.daemon().wait_line("reload", Duration::from_secs(5))?;
        ensure!(l.starts_with("reloaded"), "{}: {l}", self.name);
        Ok(l)
    }

    /// SIGTERM, and its final counters.
    fn stop(&mut self) -> Result<()> {
        self.drain();
        let d = self.daemon.take().expect("running");
        d.stop()?;
        Ok(())
    }

    /// `synwall status [extra]` of this node: (exit code, stdout).
    fn status(&self, extra: &[&str]) -> Result<(i32, String)> {
        let out = std::process::Command::new(synwall())
            .args(["status", "--node", &self.name])
            .arg("--run-dir")
            .arg(&self.run_dir)
            .args(extra)
            .output()?;
        Ok((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        ))
    }

    /// Every epoch a process said it uses (`ready` and `rotated`), in order, each checked
    /// against the salts of secret `fill` (`key=`): no epoch twice, none that goes back.
    fn check_rotations(&self, fill: u8) -> Result<()> {
        let mut last: Option<u64> = None;
        for (pid, line) in &self.said {
            if !(line.starts_with("ready") || line.starts_with("rotated")) {
                continue;
            }
            let get = |k: &str| field(line, k).with_context(|| format!("no {k} in {line:?}"));
            let epoch: u64 = get("epoch=")?.parse()?;
            ensure!(
                get("key=")? == key_id(fill, epoch),
                "{} (pid {pid}): {line:?} names another key than epoch {epoch}'s",
                self.name
            );
            if let Some(l) = last {
                ensure!(
                    epoch > l,
                    "{} (pid {pid}): epoch {epoch} after {l}: {:?}",
                    self.name,
                    self.said
                );
            }
            last = Some(epoch);
        }
        ensure!(last.is_some(), "{} said no epoch", self.name);
        Ok(())
    }
}

impl Drop for Node<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.daemon.as_mut() {
            // A stopped process cannot die of SIGKILL before it is continued.
            let _ = d.signal(nix::sys::signal::Signal::SIGCONT);
        }
        let _ = NodePins::new(Path::new(synwall_config::DEFAULT_PIN_ROOT), &self.name).remove();
    }
}

/// Reads every program's pinned counters every 50 ms and remembers any that went down.
struct Watch {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<Result<WatchReport>>>,
}

#[derive(Debug, Default)]
struct WatchReport {
    /// The last reading: program label -> counter -> value.
    last: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// Counters that went down: (label, counter, before, after).
    down: Vec<(String, &'static str, u64, u64)>,
    readings: u64,
}

impl WatchReport {
    fn get(&self, label: &str, counter: &str) -> u64 {
        self.last
            .get(label)
            .and_then(|c| c.get(counter))
            .copied()
            .unwrap_or(0)
    }
}

impl Watch {
    /// Watch the programs pinned in `dirs` (label, directory).
    fn start(dirs: Vec<(String, PathBuf)>) -> Result<Watch> {
        let maps: Vec<(String, PinnedMaps)> = dirs
            .into_iter()
            .map(|(l, d)| Ok((l, PinnedMaps::open(&d)?)))
            .collect::<Result<_>>()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut r = WatchReport::default();
            loop {
                let done = flag.load(Ordering::Relaxed);
                for (label, m) in &maps {
                    let now: BTreeMap<&'static str, u64> =
                        m.counters()?.iter().map(|(c, v)| (c.name(), v)).collect();
                    if let Some(before) = r.last.get(label) {
                        for (k, v) in &now {
                            let b = before.get(k).copied().unwrap_or(0);
                            if *v < b {
                                r.down.push((label.clone(), k, b, *v));
                            }
                        }
                    }
                    r.last.insert(label.clone(), now);
                }
                r.readings += 1;
                if done {
                    return Ok(r);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        Ok(Watch {
            stop,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Result<WatchReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("running")
            .join()
            .map_err(|_| anyhow::anyhow!("watch thread panicked"))?
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Echo servers on `addrs` inside `ns`.
fn serve(ns: &Netns, addrs: &[SocketAddr]) -> Result<Vec<EchoServer>> {
    addrs
        .iter()
        .map(|&a| {
            let l = ns
                .enter(move || TcpListener::bind(a))?
                .with_context(|| format!("bind {a}"))?;
            EchoServer::start(l)
        })
        .collect()
}

/// Resolve the neighbours on every hop of both paths first: a connection to a closed port of
/// each target's address (not protected: the backend's kernel answers with a RST, which takes
/// the return path). A cookie handshake alone would not: its SYN+ACK comes from the edge, and the
/// first IPv6 packet back through a fresh lab waits a second for neighbour discovery.
fn warm_up(ns: &Netns, targets: &[SocketAddr]) -> Result<()> {
    for &t in targets {
        let closed = SocketAddr::new(t.ip(), 9);
        let r = ns.enter(move || {
            std::net::TcpStream::connect_timeout(&closed, Duration::from_secs(5)).map(drop)
        })?;
        ensure!(
            r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
            "warm-up {closed}: {r:?}"
        );
    }
    Ok(())
}

/// The client | edge | backend lab with `synwall run` nodes: a strict edge and a backend.
struct Lab {
    lab: EdgeLab,
    dir: tempfile::TempDir,
    prefix: String,
    _pass: Daemon,
}

impl Lab {
    fn new() -> Result<Lab> {
        let prefix = unique_prefix();
        let lab = EdgeLab::build(&prefix)?;
        let dir = tempfile::tempdir()?;
        write_secret(&dir.path().join("secret"), 0x42)?;
        std::fs::create_dir_all(dir.path().join("run"))?;
        let pass = topo::pass_all_args(CLIENT_IF, &dir.path().join("secret").display().to_string());
        Ok(Lab {
            _pass: Daemon::start(&lab.client, synwall(), &pass, READY)?,
            lab,
            dir,
            prefix,
        })
    }

    fn targets() -> Vec<SocketAddr> {
        vec![
            SocketAddr::new(topo::backend_addr(false), PORT),
            SocketAddr::new(topo::backend_addr(true), PORT),
        ]
    }

    /// The node of `role` ("edge" or "backend"), `extra` lines in its `[node]` section.
    fn node(&self, role: &str, extra: &str) -> Result<Node<'_>> {
        let (section, ns) = if role == "edge" {
            (
                format!("[edge]\ninterfaces = [\"{EDGE_CLIENT_IF}\"]\nstrict = true\n"),
                &self.lab.edge,
            )
        } else {
            (
                format!("[backend]\ninterfaces = [\"{BACKEND_IF}\"]\n"),
                &self.lab.backend,
            )
        };
        let name = format!("{}{role}", self.prefix);
        let config = self.dir.path().join(format!("{role}.toml"));
        let services: Vec<String> = Self::targets()
            .iter()
            .map(|t| match t {
                SocketAddr::V4(a) => format!("\"{}/32:{PORT}\"", a.ip()),
                SocketAddr::V6(a) => format!("\"[{}/128]:{PORT}\"", a.ip()),
            })
            .collect();
        std::fs::write(
            &config,
            format!(
                "[node]\nname = \"{name}\"\nsecret_file = \"{}\"\nepoch_seconds = {P}\n\
                 metrics = \"\"\nset_sysctls = true\n{extra}\n\n[services]\nprotect = [{}]\n\n\
                 {section}",
                self.dir.path().join("secret").display(),
                services.join(", ")
            ),
        )?;
        Ok(Node::new(ns, name, config, self.dir.path().join("run")))
    }
}

fn pins(n: &Node, role: &str) -> PathBuf {
    NodePins::new(Path::new(synwall_config::DEFAULT_PIN_ROOT), &n.name)
        .dir
        .join(role)
}

/// While `n`'s daemon is down: `status` says so loudly and that the programs keep rotating on
/// salts that run out only later; `status --check` fails and says why.
fn down_status_says_so(n: &Node) -> Result<()> {
    let (code, text) = n.status(&[])?;
    ensure!(code == 0, "{}: status exit {code}: {text}", n.name);
    ensure!(
        text.contains("daemon: NOT ALIVE"),
        "{}: status of a stopped daemon:\n{text}",
        n.name
    );
    ensure!(
        text.contains("they run out at") && !text.contains("RAN OUT"),
        "{}: the salts are written ahead:\n{text}",
        n.name
    );
    let (code, line) = n.status(&["--check"])?;
    ensure!(
        code == 1 && line.starts_with("unhealthy: the daemon") && line.contains("not alive"),
        "{}: status --check exit {code}: {line}",
        n.name
    );
    Ok(())
}

#[test]
fn daemons_down_for_three_epochs() -> Result<()> {
    if !require_privileges("daemons_down_for_three_epochs") {
        return Ok(());
    }
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
    let lab = Lab::new()?;
    let mut backend = lab.node("backend", "")?;
    let mut edge = lab.node("edge", "")?;
    backend.start()?;
    edge.start()?;
    let _servers = serve(&lab.lab.backend, &Lab::targets())?;
    warm_up(&lab.lab.client, &Lab::targets())?;
    let watch = Watch::start(vec![
        ("edge".into(), pins(&edge, "edge")),
        ("backend".into(), pins(&backend, "backend")),
    ])?;
    let client_before = lab.lab.client.net_counters()?;
    let load = Load::start(
        &lab.lab.client,
        Lab::targets(),
        4000,
        Duration::from_millis(20),
    )?;
    let t0 = Instant::now();
    // Three full epochs and a little: every down period spans three boundaries.
    let down = Duration::from_millis(3 * P_MS + 200);
    let say = |what: &str| eprintln!("{:>6.1?} {what}", t0.elapsed());

    // The backend killed 1850 ms into an epoch, a new one started three epochs later.
    at_ms_into_epoch(1850);
    backend.kill()?;
    say("backend killed");
    std::thread::sleep(down / 2);
    down_status_says_so(&backend)?;
    std::thread::sleep(down / 2);
    backend.start()?;
    ensure!(backend.said.last().unwrap().1.contains("adopted=1"));
    say("backend restarted");

    // The edge frozen right after a boundary (inside the lag), continued three epochs later.
    at_ms_into_epoch(100);
    edge.drain();
    edge.signal(SIGSTOP)?;
    say("edge stopped");
    std::thread::sleep(down / 2);
    down_status_says_so(&edge)?;
    std::thread::sleep(down / 2);
    edge.signal(SIGCONT)?;
    say("edge continued");

    // The backend frozen, the edge killed and restarted inside the lag.
    at_ms_into_epoch(1000);
    backend.drain();
    backend.signal(SIGSTOP)?;
    std::thread::sleep(down);
    backend.signal(SIGCONT)?;
    say("backend stopped and continued");
    at_ms_into_epoch(1500);
    edge.kill()?;
    std::thread::sleep(down);
    at_ms_into_epoch(0);
    edge.start()?;
    say("edge killed and restarted");

    // Both at once: killed, then frozen.
    at_ms_into_epoch(1900);
    edge.kill()?;
    backend.kill()?;
    std::thread::sleep(down);
    backend.start()?;
    edge.start()?;
    say("both killed and restarted");
    at_ms_into_epoch(300);
    edge.drain();
    backend.drain();
    edge.signal(SIGSTOP)?;
    backend.signal(SIGSTOP)?;
    std::thread::sleep(down);
    edge.signal(SIGCONT)?;
    backend.signal(SIGCONT)?;
    say("both stopped and continued");
    std::thread::sleep(Duration::from_millis(P_MS));

    let r = load.finish()?;
    let client_after = lab.lab.client.net_counters()?;
    let w = watch.finish()?;
    edge.stop()?;
    backend.stop()?;
    no_failures(&r, 500)?;
    eprintln!(
        "{} readings; edge: {:?}\nbackend: {:?}",
        w.readings, w.last["edge"], w.last["backend"]
    );
    ensure!(w.down.is_empty(), "counters went down: {:?}", w.down);
    for (label, counter) in [
        ("backend", "backend_ack_invalid"),
        ("edge", "strict_drop"),
        ("edge", "syn_pass_stale"),
        ("edge", "strict_pass_stale"),
        ("backend", "backend_ack_pass_stale"),
    ] {
        ensure!(
            w.get(label, counter) == 0,
            "{label}: {counter} = {}",
            w.get(label, counter)
        );
    }
    ensure!(w.get("backend", "backend_reqsk_created") >= r.ok);
    // The clients' retransmissions, for the record: a rejected cookie would show as
    // backend_ack_invalid or strict_drop above, and the client would retransmit its data until
    // it gave up (a failed connection).
    let d = |k: &str| client_after.get(k).unwrap_or(&0) - client_before.get(k).unwrap_or(&0);
    let moved: Vec<String> = client_after
        .keys()
        .filter(|k| k.contains("Retrans") || k.contains("Timeout") || k.contains("LossProbe"))
        .filter(|k| d(k) > 0)
        .map(|k| format!("{k} +{}", d(k)))
        .collect();
    eprintln!("client retransmissions: {moved:?}");
    backend.check_rotations(0x42)?;
    edge.check_rotations(0x42)?;
    Ok(())
}

/// `GET path` on `port` of 127.0.0.1 inside `ns`: (status code, body).
fn http_get(ns: &Netns, port: u16, path: &str) -> Result<(u16, String)> {
    let path = path.to_string();
    ns.enter(move || -> Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut t = std::net::TcpStream::connect(("127.0.0.1", port))?;
        t.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            t,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )?;
        let mut resp = String::new();
        t.read_to_string(&mut resp)?;
        let (head, body) = resp.split_once("\r\n\r\n").context("no header end")?;
        let code = head
            .split(' ')
            .nth(1)
            .context("no status")?
            .parse()
            .context("bad status")?;
        Ok((code, body.to_string()))
    })?
}

#[test]
fn the_ring_runs_out_and_the_kernel_answers() -> Result<()> {
    if !require_privileges("the_ring_runs_out_and_the_kernel_answers") {
        return Ok(());
    }
    use nix::sys::signal::Signal::{SIGCONT, SIGSTOP};
    const METRICS: u16 = 19733;
    let lab = Lab::new()?;
    let mut backend = lab.node("backend", "")?;
    // Salts one second ahead: at least two epochs are written, so the ring ends within 6.25 s
    // of the last tick.
    let mut edge = lab.node(
        "edge",
        &format!("salts_ahead_seconds = 1\nmetrics = \"127.0.0.1:{METRICS}\""),
    )?;
    // The [node] section has `metrics = ""` already (TOML refuses a key twice): drop it.
    let text = std::fs::read_to_string(&edge.config)?.replace("metrics = \"\"\n", "");
    std::fs::write(&edge.config, text)?;
    backend.start()?;
    edge.start()?;
    ensure!(edge.said[0].1.contains(" ahead=2 "), "{}", edge.said[0].1);
    let _servers = serve(&lab.lab.backend, &Lab::targets())?;
    warm_up(&lab.lab.client, &Lab::targets())?;
    let watch = Watch::start(vec![
        ("edge".into(), pins(&edge, "edge")),
        ("backend".into(), pins(&backend, "backend")),
    ])?;
    let load = Load::start(
        &lab.lab.client,
        Lab::targets(),
        4000,
        Duration::from_millis(20),
    )?;

    // Healthy; a secret file that cannot be read makes /healthz fail, and it says why.
    std::thread::sleep(Duration::from_millis(500));
    let (code, body) = http_get(&lab.lab.edge, METRICS, "/healthz")?;
    ensure!((code, body.as_str()) == (200, "ok\n"), "{code} {body}");
    let secret = lab.dir.path().join("secret");
    let aside = lab.dir.path().join("secret.aside");
    std::fs::rename(&secret, &aside)?;
    let (code, body) = http_get(&lab.lab.edge, METRICS, "/healthz")?;
    std::fs::rename(&aside, &secret)?;
    ensure!(
        code == 503 && body.starts_with("unhealthy: cannot read secret file"),
        "{code} {body}"
    );
    ensure!(http_get(&lab.lab.edge, METRICS, "/healthz")?.0 == 200);

    // Frozen: the programs rotate on until the ring's end, then pass SYNs to the kernel.
    at_ms_into_epoch(500);
    edge.drain();
    edge.signal(SIGSTOP)?;
    let frozen = unix_ms();
    let e = frozen / P_MS;
    // The ring holds up to e + 2: generation stops finding salts at (e + 3) P + L.
    let runs_out = (e + 3) * P_MS + 250;
    // (A status page reads the maps twice, a second apart, for its rates.)
    std::thread::sleep(Duration::from_millis(runs_out - frozen - 2000));
    let (_, text) = edge.status(&[])?;
    ensure!(
        text.contains("daemon: NOT ALIVE") && text.contains("they run out at"),
        "{text}"
    );
    let before = &Watch::start(vec![("edge".into(), pins(&edge, "edge"))])?.finish()?;
    ensure!(
        unix_ms() < runs_out && before.get("edge", "syn_pass_stale") == 0,
        "stale before the ring's end"
    );
    // Past the end, with the load going for three more seconds.
    std::thread::sleep(Duration::from_millis(runs_out + 3000 - unix_ms()));
    let stale = Watch::start(vec![("edge".into(), pins(&edge, "edge"))])?.finish()?;
    let (_, text) = edge.status(&[])?;
    ensure!(text.contains("RAN OUT at"), "{text}");
    let (code, line) = edge.status(&["--check"])?;
    ensure!(
        code == 1 && line.contains("not alive") && line.contains("more"),
        "{code} {line}"
    );
    // Thawed: the daemon writes salts again, the edge answers SYNs again.
    edge.signal(SIGCONT)?;
    std::thread::sleep(Duration::from_millis(2500));
    let (code, body) = http_get(&lab.lab.edge, METRICS, "/healthz")?;
    ensure!((code, body.as_str()) == (200, "ok\n"), "{code} {body}");

    let r = load.finish()?;
    let w = watch.finish()?;
    edge.stop()?;
    backend.stop()?;
    no_failures(&r, 200)?;
    eprintln!(
        "edge: {:?}\nbackend: {:?}",
        w.last["edge"], w.last["backend"]
    );
    let passed = stale.get("edge", "syn_pass_stale");
    ensure!(passed > 20, "only {passed} SYNs passed to the kernel");
    ensure!(
        w.get("edge", "syn_answered") > stale.get("edge", "syn_answered") + 20,
        "the edge did not answer SYNs again once thawed"
    );
    ensure!(w.get("edge", "strict_pass_stale") > 0);
    ensure!(w.down.is_empty(), "counters went down: {:?}", w.down);
    for (label, counter) in [
        ("backend", "backend_ack_invalid"),
        ("edge", "strict_drop"),
        ("backend", "backend_ack_pass_stale"),
    ] {
        ensure!(
            w.get(label, counter) == 0,
            "{label}: {counter} = {}",
            w.get(label, counter)
        );
    }
    // The handshakes of the passed SYNs were the backend kernel's own.
    ensure!(w.get("backend", "backend_syn_pass") >= passed);
    edge.check_rotations(0x42)?;
    Ok(())
}

/// A node of the two-edge lab with secret files of its own, so each takes the rollout's steps
/// when the test says.
struct RolloutNode<'a> {
    node: Node<'a>,
    section: String,
    current: PathBuf,
    accepted: PathBuf,
}

impl<'a> RolloutNode<'a> {
    fn new(
        ns: &'a Netns,
        dir: &Path,
        prefix: &str,
        role: &str,
        section: String,
        fill: u8,
    ) -> Result<RolloutNode<'a>> {
        let current = dir.join(format!("{role}-current"));
        let accepted = dir.join(format!("{role}-accepted"));
        write_secret(&current, fill)?;
        let n = RolloutNode {
            node: Node::new(
                ns,
                format!("{prefix}{role}"),
                dir.join(format!("{role}.toml")),
                dir.join("run"),
            ),
            section,
            current,
            accepted,
        };
        n.write_config(false)?;
        Ok(n)
    }

    fn write_config(&self, accepted: bool) -> Result<()> {
        let svc = |v6| match TwoEdgeLab::service(v6) {
            std::net::IpAddr::V4(a) => format!("\"{a}/32:{PORT}\""),
            std::net::IpAddr::V6(a) => format!("\"[{a}/128]:{PORT}\""),
        };
        std::fs::write(
            &self.node.config,
            format!(
                "[node]\nname = \"{}\"\nsecret_file = \"{}\"\naccepted_secret_file = \"{}\"\n\
                 epoch_seconds = {P}\nmetrics = \"\"\nset_sysctls = true\n\n\
                 [services]\nprotect = [{}, {}]\n\n{}",
                self.node.name,
                self.current.display(),
                if accepted {
                    self.accepted.display().to_string()
                } else {
                    String::new()
                },
                svc(false),
                svc(true),
                self.section
            ),
        )?;
        Ok(())
    }

    /// Step 1: the new secret `new` is accepted.
    fn step1(&mut self, new: u8) -> Result<()> {
        write_secret(&self.accepted, new)?;
        self.write_config(true)?;
        self.node.reload().map(drop)
    }

    /// Step 2: `new` is current, `old` accepted.
    fn step2(&mut self, new: u8, old: u8) -> Result<()> {
        write_secret(&self.current, new)?;
        write_secret(&self.accepted, old)?;
        self.write_config(true)?;
        self.node.reload().map(drop)
    }

    /// Step 3: `old` is dropped.
    fn step3(&mut self) -> Result<()> {
        self.write_config(false)?;
        self.node.reload().map(drop)
    }
}

#[test]
fn staged_secret_rollout_across_two_edges() -> Result<()> {
    if !require_privileges("staged_secret_rollout_across_two_edges") {
        return Ok(());
    }
    let (a, b, c) = (0x41u8, 0x42u8, 0x43u8);
    let prefix = unique_prefix();
    let lab = TwoEdgeLab::build(&prefix)?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("run"))?;
    let edge_section = |i: usize| {
        format!(
            "[edge]\ninterfaces = [\"{}\"]\nxdp_mode = \"generic\"\nstrict = true\n",
            TwoEdgeLab::EDGE_IF[i]
        )
    };
    let mut e1 = RolloutNode::new(
        &lab.edges[0],
        dir.path(),
        &prefix,
        "edge1",
        edge_section(0),
        a,
    )?;
    let mut e2 = RolloutNode::new(
        &lab.edges[1],
        dir.path(),
        &prefix,
        "edge2",
        edge_section(1),
        a,
    )?;
    let mut be = RolloutNode::new(
        &lab.backend,
        dir.path(),
        &prefix,
        "backend",
        format!(
            "[backend]\ninterfaces = [\"{}\", \"{}\"]\n",
            TwoEdgeLab::BACKEND_IFS[0],
            TwoEdgeLab::BACKEND_IFS[1]
        ),
        a,
    )?;
    be.node.start()?;
    e1.node.start()?;
    e2.node.start()?;
    let targets = vec![
        SocketAddr::new(TwoEdgeLab::service(false), PORT),
        SocketAddr::new(TwoEdgeLab::service(true), PORT),
    ];
    let _servers = serve(&lab.backend, &targets)?;
    warm_up(&lab.client, &targets)?;
    let watch = Watch::start(vec![
        ("edge1".into(), pins(&e1.node, "edge")),
        ("edge2".into(), pins(&e2.node, "edge")),
        ("backend".into(), pins(&be.node, "backend")),
    ])?;
    let load = Load::start(
        &lab.client,
        targets.clone(),
        2000,
        Duration::from_millis(20),
    )?;
    let t0 = Instant::now();
    let say = |what: &str| eprintln!("{:>6.1?} {what}", t0.elapsed());
    // Whole epochs from here: k is the epoch the rollout starts in.
    at_ms_into_epoch(0);
    let k = unix_ms() / P_MS;
    let at = |epoch: u64, ms: u64| {
        let t = (k + epoch) * P_MS + ms;
        let now = unix_ms();
        if t > now {
            std::thread::sleep(Duration::from_millis(t - now));
        }
    };
    // Step 1, in two epochs: edge 1 early, the backend at the end of the epoch, edge 2 in the
    // next one inside the lag.
    at(0, 300);
    e1.step1(b)?;
    at(0, 1900);
    be.step1(b)?;
    at(1, 100);
    e2.step1(b)?;
    say("step 1 done");
    // Step 2 once step 1 is done everywhere: the backend, edge 2 right before a boundary (its
    // switch waits a boundary more), edge 1 an epoch later.
    at(2, 500);
    be.step2(b, a)?;
    at(2, 1950);
    e2.step2(b, a)?;
    at(3, 1200);
    e1.step2(b, a)?;
    say("step 2 done");
    // Edge 1 issues the old secret's cookies until its switch at epoch k + 5; they are accepted
    // until the end of k + 6 at the latest. Step 3 after that.
    at(7, 0);
    e1.step3()?;
    at(7, 1500);
    be.step3()?;
    at(8, 200);
    e2.step3()?;
    say("step 3 done");
    at(10, 0);
    let r = load.finish()?;
    let w = watch.finish()?;
    no_failures(&r, 400)?;
    for (n, fill) in [(&mut e1, b), (&mut e2, b), (&mut be, b)] {
        n.node.drain();
        // Every epoch each node reported was the new secret's since its own switch.
        let last = n
            .node
            .said
            .iter()
            .rev()
            .find(|(_, l)| l.starts_with("rotated"));
        let (_, l) = last.context("no rotation")?;
        let epoch: u64 = field(l, "epoch=").context("no epoch")?.parse()?;
        ensure!(
            field(l, "key=") == Some(key_id(fill, epoch).as_str()),
            "{}: {l}",
            n.node.name
        );
        ensure!(
            l.ends_with("accepted=-"),
            "{}: still an accepted key: {l}",
            n.node.name
        );
    }
    eprintln!(
        "edge1: {:?}\nedge2: {:?}\nbackend: {:?}",
        w.last["edge1"], w.last["edge2"], w.last["backend"]
    );
    ensure!(w.down.is_empty(), "counters went down: {:?}", w.down);
    for (label, counter) in [
        ("backend", "backend_ack_invalid"),
        ("edge1", "strict_drop"),
        ("edge2", "strict_drop"),
    ] {
        ensure!(
            w.get(label, counter) == 0,
            "{label}: {counter} = {}",
            w.get(label, counter)
        );
    }
    // Both edges answered SYNs and validated the other's cookies (every ACK crossed).
    for e in ["edge1", "edge2"] {
        ensure!(
            w.get(e, "syn_answered") > 100 && w.get(e, "strict_ack_valid") > 100,
            "{e}"
        );
    }

    // The negative: edge 1 makes a newer secret current without step 1 anywhere else. Its
    // cookies (IPv4 SYNs) come back through edge 2, which rejects them: handshakes are lost.
    let watch = Watch::start(vec![
        ("edge2".into(), pins(&e2.node, "edge")),
        ("backend".into(), pins(&be.node, "backend")),
    ])?;
    let load = Load::start(&lab.client, targets, 2000, Duration::from_millis(20))?;
    at_ms_into_epoch(200);
    e1.step2(c, b)?;
    say("edge 1 switched without step 1");
    std::thread::sleep(Duration::from_millis(3 * P_MS + 3000));
    let r = load.finish()?;
    let w = watch.finish()?;
    eprintln!(
        "skipping step 1: {} ok, {} failed ({:?}); edge2 strict_drop {}",
        r.ok,
        r.failed.len(),
        r.failed.first(),
        w.get("edge2", "strict_drop")
    );
    ensure!(
        w.get("edge2", "strict_drop") > 0 && !r.failed.is_empty(),
        "skipping step 1 lost nothing: the test cannot see a rejected cookie"
    );
    for n in [&mut e1.node, &mut e2.node, &mut be.node] {
        n.stop()?;
    }
    Ok(())
}
