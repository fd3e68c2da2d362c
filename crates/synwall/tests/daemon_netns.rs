//! `synwall run` as an operator runs it, in network namespaces: client | edge node | backend node,
//! each node a `synwall run --config FILE` daemon, a real server, and a client making connections
//! continuously the whole time. Every test ends with 0 failed connections.
//!
//! - `salts_rotate_under_load`: `epoch_seconds = 2`, at least 3 epoch changes on both nodes.
//! - `restarts_under_load`: each daemon is stopped and started again twice; the new process
//!   adopts the pinned links and maps (its `ready` line says so) and swaps its programs in.
//! - `secret_replaced_under_load`: a new master secret file + SIGHUP on both nodes; the new
//!   secret's salts go live at the next boundary (checked by key id against salts computed here).
//! - `reload_in_place_and_refusals`: SIGHUP with a new service applies in place (the new port
//!   gets cookies); a changed interface list is refused and the node keeps running as it was;
//!   `synwall status --json` and `/metrics` read the pins; `synwall stop --detach` removes them.
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{ensure, Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_testkit::deploy::write_secret;
use synwall_testkit::load::{no_failures, Load};
use synwall_testkit::synwall;
use synwall_testkit::tcp::EchoServer;
use synwall_testkit::topo::{self, EdgeLab, BACKEND_IF, CLIENT_IF, EDGE_CLIENT_IF};
use synwall_testkit::{nft, require_privileges, unique_prefix, Counts, Daemon, Netns};

const PORT: u16 = 8080;
const READY: Duration = Duration::from_secs(20);

/// One lab: the three namespaces, a secret file, a run directory, config files, a server.
struct Lab {
    lab: EdgeLab,
    dir: tempfile::TempDir,
    name: String,
    _pass: Daemon,
    _servers: Vec<EchoServer>,
}

impl Lab {
    fn new() -> Result<Lab> {
        let p = unique_prefix();
        let lab = EdgeLab::build(&p)?;
        let dir = tempfile::tempdir()?;
        let secret = dir.path().join("secret");
        write_secret(&secret, 0x42)?;
        let pass: Vec<String> = topo::pass_all_args(CLIENT_IF, &secret.display().to_string());
        Ok(Lab {
            _pass: Daemon::start(&lab.client, synwall(), &pass, READY)?,
            _servers: Vec::new(),
            lab,
            dir,
            name: p,
        })
    }

    fn secret(&self) -> PathBuf {
        self.dir.path().join("secret")
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    /// Write the config of `role` ("edge" or "backend") with extra TOML lines, return its path.
    fn config(&self, role: &str, services: &[String], extra: &str) -> Result<PathBuf> {
        let (section, iface) = if role == "edge" {
            ("edge", EDGE_CLIENT_IF)
        } else {
            ("backend", BACKEND_IF)
        };
        let path = self.dir.path().join(format!("{role}.toml"));
        let text = format!(
            "[node]\nname = \"{}{role}\"\nsecret_file = \"{}\"\nepoch_seconds = 2\nmetrics = \"\"\n\n\
             [services]\nprotect = [{}]\n\n[{section}]\ninterfaces = [\"{iface}\"]\n{extra}\n",
            self.name,
            self.secret().display(),
            services
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", "),
        );
        std::fs::write(&path, text)?;
        Ok(path)
    }

    fn ns(&self, role: &str) -> &Netns {
        if role == "edge" {
            &self.lab.edge
        } else {
            &self.lab.backend
        }
    }

    fn run(&self, role: &str, config: &Path) -> Result<Daemon> {
        let run_dir = self.run_dir().display().to_string();
        let config = config.display().to_string();
        Daemon::start(
            self.ns(role),
            synwall(),
            &["run", "--config", &config, "--run-dir", &run_dir],
            READY,
        )
    }

    fn serve(&mut self, port: u16) -> Result<Vec<SocketAddr>> {
        let mut addrs = Vec::new();
        for (addr, l) in self.lab.backend_listeners(port)? {
            self._servers.push(EchoServer::start(l)?);
            addrs.push(addr);
        }
        Ok(addrs)
    }

    /// `synwall CMD [FLAGS] --node <role's node> --run-dir ...`, which must succeed: its stdout.
    fn node_cmd(&self, cmd: &str, flag: &str, role: &str) -> Result<Vec<u8>> {
        let out = std::process::Command::new(synwall())
            .args([cmd, flag, "--node", &format!("{}{role}", self.name)])
            .arg("--run-dir")
            .arg(self.run_dir())
            .output()?;
        ensure!(
            out.status.success(),
            "{cmd} {flag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout)
    }

    fn status_json(&self, role: &str) -> Result<serde_json::Value> {
        Ok(serde_json::from_slice(
            &self.node_cmd("status", "--json", role)?,
        )?)
    }

    fn detach(&self, role: &str) -> Result<String> {
        let out = self.node_cmd("stop", "--detach", role)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Whatever a failed test left pinned.
        for role in ["edge", "backend"] {
            let _ = synwall_bpf::pin::NodePins::new(
                Path::new(synwall_config::DEFAULT_PIN_ROOT),
                &format!("{}{role}", self.name),
            )
            .remove();
        }
    }
}

fn services() -> Vec<String> {
    vec![
        format!("{}/32:{PORT}", topo::backend_addr(false)),
        format!("[{}/128]:{PORT}", topo::backend_addr(true)),
    ]
}

/// Start both nodes (strict edge) and the continuous load.
fn start_nodes(lab: &mut Lab) -> Result<(PathBuf, PathBuf, Daemon, Daemon, Load)> {
    std::fs::create_dir_all(lab.run_dir())?;
    let ec = lab.config("edge", &services(), "strict = true")?;
    let bc = lab.config("backend", &services(), "")?;
    let backend = lab.run("backend", &bc)?;
    let edge = lab.run("edge", &ec)?;
    let targets = lab.serve(PORT)?;
    // Resolve the neighbours on every hop first (a closed port answers with RST): the first
    // IPv6 packet through a fresh lab otherwise waits for neighbour discovery.
    for t in &targets {
        let closed = SocketAddr::new(t.ip(), 9);
        let t0 = Instant::now();
        let r = lab
            .lab
            .client
            .enter(move || std::net::TcpStream::connect_timeout(&closed, Duration::from_secs(5)))?;
        eprintln!(
            "warm-up {closed}: {:?} after {:?}",
            r.err().map(|e| e.kind()),
            t0.elapsed()
        );
    }
    let load = Load::start(&lab.lab.client, targets, 4000, Duration::from_millis(20))?;
    Ok((ec, bc, edge, backend, load))
}

/// The (epoch, key id) a daemon line names.
fn epoch_key(l: &str) -> Result<(u64, String)> {
    let field = |k: &str| {
        l.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
            .with_context(|| format!("no {k} in {l:?}"))
    };
    Ok((field("epoch=")?.parse()?, field("key=")?))
}

/// The next `n` rotations a daemon prints: (epoch, key id).
fn rotations(d: &mut Daemon, n: usize) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(epoch_key(&d.wait_line("rotated", Duration::from_secs(5))?)?);
    }
    eprintln!("rotations: {out:?}");
    Ok(out)
}

/// A daemon's rotations until it reaches `epoch` (it may have printed earlier ones first).
fn rotations_until(d: &mut Daemon, epoch: u64) -> Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    while out.last().is_none_or(|(e, _)| *e < epoch) {
        out.extend(rotations(d, 1)?);
    }
    Ok(out)
}

/// Every epoch the backend rotated into, the edge rotated into too, with the same salt, once.
fn same_salts(backend: &[(u64, String)], edge: &[(u64, String)]) -> Result<()> {
    for w in edge.windows(2) {
        ensure!(
            w[1].0 == w[0].0 + 1,
            "the edge skipped or repeated an epoch: {edge:?}"
        );
    }
    for (e, k) in backend {
        let theirs: Vec<_> = edge.iter().filter(|(e2, _)| e2 == e).collect();
        ensure!(
            theirs.len() == 1 && theirs[0].1 == *k,
            "epoch {e}: backend {k}, edge {theirs:?} (backend {backend:?}, edge {edge:?})"
        );
    }
    Ok(())
}

fn counts(d: Daemon, role: &str) -> Result<Counts> {
    let mut c = d.stop()?;
    c.remove(role)
        .with_context(|| format!("no {role} counters"))
}

#[test]
fn salts_rotate_under_load() -> Result<()> {
    if !require_privileges("salts_rotate_under_load") {
        return Ok(());
    }
    let mut lab = Lab::new()?;
    let (_, _, mut edge, mut backend, load) = start_nodes(&mut lab)?;
    eprintln!("{}\n{}", backend.ready_line(), edge.ready_line());
    let b = rotations(&mut backend, 3)?;
    // The edge's epochs from the one it started in (its ready line: a boundary may fall between
    // the two daemons' starts, and then the later one never prints that rotation).
    let mut e = vec![epoch_key(edge.ready_line())?];
    e.extend(rotations_until(&mut edge, b[2].0)?);
    same_salts(&b, &e)?;
    // And a little past the third boundary.
    std::thread::sleep(Duration::from_millis(700));
    let r = load.finish()?;
    let (e, b) = (counts(edge, "edge")?, counts(backend, "backend")?);
    eprintln!("edge {e}\nbackend {b}");
    no_failures(&r, 100)?;
    ensure!(e.get("strict_ack_valid") >= r.ok, "edge: {e}");
    ensure!(b.get("backend_reqsk_created") >= r.ok, "backend: {b}");
    lab.detach("edge")?;
    lab.detach("backend")?;
    Ok(())
}

#[test]
fn restarts_under_load() -> Result<()> {
    if !require_privileges("restarts_under_load") {
        return Ok(());
    }
    let mut lab = Lab::new()?;
    let (ec, bc, mut edge, mut backend, load) = start_nodes(&mut lab)?;
    let t0 = Instant::now();
    for round in 0..2 {
        std::thread::sleep(Duration::from_millis(800));
        // Stop: the programs stay attached; start: the new process adopts them.
        let before = counts(backend, "backend")?;
        backend = lab.run("backend", &bc)?;
        ensure!(
            backend.ready_line().contains("adopted=1"),
            "backend did not adopt its link: {}",
            backend.ready_line()
        );
        // The counters live in pinned maps: they carry over a restart. Read at once, before
        // new traffic could make up for a reset.
        let st = lab.status_json("backend")?;
        let created = st["programs"][0]["counters"]["backend_reqsk_created"]
            .as_u64()
            .unwrap_or(0);
        ensure!(
            created >= before.get("backend_reqsk_created"),
            "round {round}: counters restarted from zero ({created} < {})",
            before.get("backend_reqsk_created")
        );
        std::thread::sleep(Duration::from_millis(800));
        counts(edge, "edge")?;
        edge = lab.run("edge", &ec)?;
        ensure!(
            edge.ready_line().contains("adopted=1"),
            "edge did not adopt its link: {}",
            edge.ready_line()
        );
        eprintln!("restart round {round} done at {:?}", t0.elapsed());
    }
    std::thread::sleep(Duration::from_millis(800));
    let r = load.finish()?;
    counts(edge, "edge")?;
    counts(backend, "backend")?;
    no_failures(&r, 100)?;
    let out = lab.detach("edge")?;
    ensure!(out.contains("1 link(s)"), "{out}");
    lab.detach("backend")?;
    // Detached: nothing of ours is left on the interfaces.
    let links = lab
        .lab
        .edge
        .run(&["ip", "-d", "link", "show", EDGE_CLIENT_IF])?;
    ensure!(
        !String::from_utf8_lossy(&links.stdout).contains("xdp"),
        "XDP still attached after stop --detach"
    );
    Ok(())
}

#[test]
fn secret_replaced_under_load() -> Result<()> {
    if !require_privileges("secret_replaced_under_load") {
        return Ok(());
    }
    let mut lab = Lab::new()?;
    let (_, _, mut edge, mut backend, load) = start_nodes(&mut lab)?;
    // Reload mid-epoch (600 ms after a boundary of 2 s epochs, past the edge's 250 ms lag): both
    // nodes then take the new secret into the same epoch. Nodes that reload on different sides
    // of a boundary disagree for one epoch (see the README on replacing the secret).
    std::thread::sleep(Duration::from_millis(700));
    rotations(&mut backend, 1)?;
    std::thread::sleep(Duration::from_millis(600));
    write_secret(&lab.secret(), 0x77)?;
    backend.signal(nix::sys::signal::Signal::SIGHUP)?;
    edge.signal(nix::sys::signal::Signal::SIGHUP)?;
    for d in [&mut backend, &mut edge] {
        let l = d.wait_line("reload", Duration::from_secs(3))?;
        ensure!(l == "reloaded changes=1", "{l}");
    }
    // The new secret's salt comes with the first boundary at least max(2L, 1 s) after the
    // reload: the next one (1.4 s away) unless the loaded machine took long to apply it, then
    // the one after. From there on both nodes issue and validate the new secret's salts;
    // cookies of the old one keep validating for an epoch (the load would fail otherwise).
    let new = MasterSecret([0x77; 32]);
    let b = rotations(&mut backend, 3)?;
    let e = rotations_until(&mut edge, b[2].0)?;
    same_salts(&b, &e)?;
    let is_new = |(epoch, key): &(u64, String)| {
        let want = EpochKeys::derive(&new, *epoch).current;
        *key == format!("{:016x}", want.hash(b"synwall/v1 key id"))
    };
    let first_new = b.iter().position(is_new);
    ensure!(
        first_new.is_some_and(|i| i <= 1 && b[i..].iter().all(is_new)),
        "the new secret's salts did not come with one of the next two boundaries and stay: {b:?}"
    );
    std::thread::sleep(Duration::from_millis(700));
    let r = load.finish()?;
    counts(edge, "edge")?;
    counts(backend, "backend")?;
    no_failures(&r, 100)?;
    lab.detach("edge")?;
    lab.detach("backend")?;
    Ok(())
}

#[test]
fn reload_in_place_and_refusals() -> Result<()> {
    if !require_privileges("reload_in_place_and_refusals") {
        return Ok(());
    }
    let mut lab = Lab::new()?;
    let (ec, bc, mut edge, mut backend, load) = start_nodes(&mut lab)?;
    const PORT2: u16 = 8081;
    let second = lab.serve(PORT2)?;
    // SYNs to port 8081 that reach the backend's IP stack.
    nft::load(
        &lab.lab.backend,
        &format!(
            "table inet swreload {{
  counter syn2 {{ }}
  chain pre {{ type filter hook prerouting priority -300; policy accept;
    tcp dport {PORT2} tcp flags & (syn | ack) == syn counter name syn2
  }}
}}"
        ),
    )?;
    let syns2 = || nft::counter(&lab.lab.backend, "swreload", "syn2");
    // Port 8081 is not protected yet: its handshakes are the kernel's own.
    let load2 = Load::start(
        &lab.lab.client,
        second.clone(),
        1000,
        Duration::from_millis(50),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let syns_before = syns2()?;
    let mut both = services();
    both.push(format!("{}/32:{PORT2}", topo::backend_addr(false)));
    both.push(format!("[{}/128]:{PORT2}", topo::backend_addr(true)));
    // Backend first (it must validate what the edge will start to answer).
    std::fs::write(
        &bc,
        std::fs::read_to_string(&bc)?.replace(
            &format!(":{PORT}\"]"),
            &format!(":{PORT}\", \"{}\", \"{}\"]", both[2], both[3]),
        ),
    )?;
    backend.signal(nix::sys::signal::Signal::SIGHUP)?;
    let l = backend.wait_line("reload", Duration::from_secs(3))?;
    ensure!(l == "reloaded changes=1", "{l}");
    std::fs::write(
        &ec,
        std::fs::read_to_string(&ec)?.replace(
            &format!(":{PORT}\"]"),
            &format!(":{PORT}\", \"{}\", \"{}\"]", both[2], both[3]),
        ),
    )?;
    edge.signal(nix::sys::signal::Signal::SIGHUP)?;
    let l = edge.wait_line("reload", Duration::from_secs(3))?;
    ensure!(l == "reloaded changes=1", "{l}");
    // From here on the edge answers 8081's SYNs: none reaches the backend's stack any more.
    std::thread::sleep(Duration::from_millis(300));
    let syns_at_reload = syns2()?;
    std::thread::sleep(Duration::from_millis(500));
    let st = lab.status_json("edge")?;
    let after = st["programs"][0]["counters"]["syn_answered"]
        .as_u64()
        .unwrap_or(0);
    // A refused reload: the interfaces are fixed at start.
    let text = std::fs::read_to_string(&ec)?;
    std::fs::write(
        &ec,
        text.replace(&format!("[\"{EDGE_CLIENT_IF}\"]"), "[\"e0\", \"e1\"]"),
    )?;
    edge.signal(nix::sys::signal::Signal::SIGHUP)?;
    let l = edge.wait_line("reload", Duration::from_secs(3))?;
    ensure!(
        l.starts_with("reload refused") && l.contains("edge.interfaces"),
        "{l}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let r2 = load2.finish()?;
    let syns_end = syns2()?;
    let r = load.finish()?;
    let still = lab.status_json("edge")?["programs"][0]["counters"]["syn_answered"]
        .as_u64()
        .unwrap_or(0);
    counts(edge, "edge")?;
    counts(backend, "backend")?;
    no_failures(&r, 50)?;
    no_failures(&r2, 10)?;
    ensure!(
        syns_before > 0,
        "port {PORT2}'s SYNs never reached the backend before it was protected"
    );
    ensure!(
        syns_end == syns_at_reload,
        "port {PORT2}'s SYNs still reached the backend after the reload ({syns_at_reload} -> \
         {syns_end}): the edge did not answer them"
    );
    ensure!(still >= after, "counters went backwards");
    ensure!(st["strict"] == serde_json::json!(true), "{st}");
    lab.detach("edge")?;
    lab.detach("backend")?;
    ensure!(
        lab.status_json("edge").is_err(),
        "status still finds the edge after stop --detach"
    );
    Ok(())
}
