//! A new user's first single node on a veth pair, step by step as README's troubleshooting section
//! tells it, with real kernel clients: each pitfall stops the connection, `synwall status` names
//! it in a hint with its fix, and the fix makes the connection work.
//!
//! 1. A veth made with `ip link add` keeps TX checksum offload on: the client's SYNs reach XDP
//!    with a partial checksum and are dropped (`drop_syn_checksum`).
//! 2. With offload off, native XDP_TX on the veth fails while the peer has no XDP program: the
//!    SYN+ACKs die in the driver (`xdp_tx_errors` of `ethtool -S`).
//! 3. Either fix works: an XDP program on the peer, or the edge in generic mode (then the stale
//!    driver count is no longer hinted).
//!
//! The daemon logs each of those hints too, once, as its counter grows.
//!
//! Needs root (CI=true: fail, else skip with a message).

use anyhow::{ensure, Context, Result};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;
use synwall_testkit::synwall;
use synwall_testkit::tcp::EchoServer;
use synwall_testkit::topo::pass_all_args;
use synwall_testkit::{require_privileges, unique_prefix, veth_as_made, Daemon, Netns};

const READY: Duration = Duration::from_secs(20);

struct Lab {
    node: Netns,
    client: Netns,
    dir: tempfile::TempDir,
    _server: EchoServer,
}

impl Lab {
    fn config(&self) -> String {
        self.dir.path().join("synwall.toml").display().to_string()
    }

    fn run_dir(&self) -> String {
        self.dir.path().join("run").display().to_string()
    }

    fn write_config(&self, name: &str, xdp_mode: &str) -> Result<()> {
        let secret = self.dir.path().join("secret");
        std::fs::write(
            self.config(),
            format!(
                "[node]\nname = \"{name}\"\nsecret_file = \"{}\"\nmetrics = \"\"\nset_sysctls = true\n\
                 [services]\nprotect = [\"10.78.0.1/32:80\"]\n\
                 [edge]\ninterfaces = [\"n0\"]\nxdp_mode = \"{xdp_mode}\"\n\
                 [backend]\ninterfaces = [\"n0\"]\n",
                secret.display()
            ),
        )?;
        Ok(())
    }

    fn start(&self) -> Result<Daemon> {
        let (cfg, run) = (self.config(), self.run_dir());
        Daemon::start(
            &self.node,
            synwall(),
            &["run", "--config", &cfg, "--run-dir", &run],
            READY,
        )
    }

    /// One connection from the client, as an application makes it (3 s to complete the handshake
    /// and get the echo back).
    fn connect(&self) -> Result<()> {
        self.client.enter(|| -> Result<()> {
            let to: SocketAddr = "10.78.0.1:80".parse()?;
            let mut s = TcpStream::connect_timeout(&to, Duration::from_secs(3))
                .with_context(|| format!("connect to {to}"))?;
            s.set_read_timeout(Some(Duration::from_secs(3)))?;
            s.write_all(b"ping")?;
            s.shutdown(std::net::Shutdown::Write)?;
            let mut back = Vec::new();
            s.read_to_end(&mut back)?;
            ensure!(
                back == synwall_testkit::tcp::transform(b"ping"),
                "echo: {back:?}"
            );
            Ok(())
        })?
    }

    /// `synwall status` in the node's namespace (where the interfaces are): its stdout.
    fn status(&self, json: bool) -> Result<String> {
        let mut c = self.node.command(&synwall().display().to_string());
        c.args([
            "status",
            "--config",
            &self.config(),
            "--run-dir",
            &self.run_dir(),
        ]);
        if json {
            c.arg("--json");
        }
        let out = c.output()?;
        ensure!(
            out.status.success(),
            "status: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8(out.stdout)?)
    }

    fn hints(&self) -> Result<Vec<Value>> {
        let j: Value = serde_json::from_str(&self.status(true)?)?;
        Ok(j["hints"].as_array().context("hints")?.clone())
    }

    fn counter(&self, role: &str, name: &str) -> Result<u64> {
        let j: Value = serde_json::from_str(&self.status(true)?)?;
        j["programs"]
            .as_array()
            .context("programs")?
            .iter()
            .find(|p| p["role"] == role)
            .and_then(|p| p["counters"][name].as_u64())
            .with_context(|| format!("no {role} counter {name}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(synwall())
            .args(["stop", "--config", &self.config(), "--detach"])
            .args(["--run-dir", &self.run_dir()])
            .output();
    }
}

fn hint<'a>(hints: &'a [Value], counter: &str) -> Option<&'a Value> {
    hints.iter().find(|h| h["counter"] == counter)
}

#[test]
fn veth_pitfalls_are_named_in_status_with_a_fix_that_works() -> Result<()> {
    if !require_privileges("veth_pitfalls_are_named_in_status_with_a_fix_that_works") {
        return Ok(());
    }
    let name = unique_prefix();
    let node = Netns::create(&format!("{name}n"))?;
    let client = Netns::create(&format!("{name}c"))?;
    // A veth pair as `ip link add` makes it: TX checksum offload on, no XDP on the peer.
    veth_as_made(&node, "n0", &client, "c0")?;
    node.addr("n0", "10.78.0.1/24")?;
    client.addr("c0", "10.78.0.2/24")?;
    let listener = node.enter(|| TcpListener::bind("10.78.0.1:80"))??;
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("secret"), [0x3cu8; 32])?;
    std::fs::set_permissions(
        dir.path().join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let lab = Lab {
        node,
        client,
        dir,
        _server: EchoServer::start(listener)?,
    };
    lab.write_config(&name, "native")?;
    let mut daemon = lab.start()?;
    // The daemon reads its counters every 5 s and logs a hint whose counter grew.
    let logged = Duration::from_secs(15);

    // 1. Partial checksums: the connection fails, the hint names offload and the command.
    ensure!(
        lab.connect().is_err(),
        "connected despite TX checksum offload"
    );
    ensure!(lab.counter("edge", "drop_syn_checksum")? >= 2);
    let hints = lab.hints()?;
    let h = hint(&hints, "drop_syn_checksum").context("no checksum hint")?;
    ensure!(h["text"]
        .as_str()
        .unwrap()
        .contains("ethtool -K <sending veth> tx off"));
    let page = lab.status(false)?;
    ensure!(
        page.contains("\nhint: drop_syn_checksum (edge) is "),
        "{page}"
    );
    ensure!(hint(&hints, "xdp_tx_errors").is_none(), "{hints:?}");
    let l = daemon.wait_line("hint: drop_syn_checksum (edge) is ", logged)?;
    ensure!(l.contains("ethtool -K <sending veth> tx off"), "{l}");

    // 2. Offload off: SYNs are answered, but native XDP_TX on the veth loses the SYN+ACKs.
    lab.client.run(&["ethtool", "-K", "c0", "tx", "off"])?;
    ensure!(lab.connect().is_err(), "connected without XDP on the peer");
    ensure!(lab.counter("edge", "syn_answered")? >= 2);
    let hints = lab.hints()?;
    let h = hint(&hints, "xdp_tx_errors").context("no XDP_TX hint")?;
    ensure!(
        h["interface"] == "n0" && h["total"].as_u64() >= Some(2),
        "{h}"
    );
    let text = h["text"].as_str().unwrap();
    ensure!(text.contains("peer") && text.contains("edge.xdp_mode = \"generic\""));
    let page = lab.status(false)?;
    ensure!(page.contains("\nhint: xdp_tx_errors on n0 is "), "{page}");
    let l = daemon.wait_line("hint: xdp_tx_errors on n0 is ", logged)?;
    ensure!(l.contains("generic"), "{l}");

    // 3a. The first fix: an XDP program on the peer (one that passes everything).
    let secret = lab.dir.path().join("secret").display().to_string();
    let pass = Daemon::start(&lab.client, synwall(), &pass_all_args("c0", &secret), READY)?;
    lab.connect().context("native mode with XDP on the peer")?;
    pass.stop()?;

    // 3b. The other: the edge in generic mode. The driver's stale count is no longer hinted.
    // Each hint was logged once.
    let (_, said) = daemon.stop_and_collect()?;
    for h in ["hint: drop_syn_checksum ", "hint: xdp_tx_errors "] {
        let n = said.iter().filter(|l| l.starts_with(h)).count();
        ensure!(n == 1, "{h:?} logged {n} times: {said:#?}");
    }
    let out = Command::new(synwall())
        .args(["stop", "--config", &lab.config(), "--detach"])
        .args(["--run-dir", &lab.run_dir()])
        .output()?;
    ensure!(out.status.success(), "{out:?}");
    lab.write_config(&name, "generic")?;
    let daemon = lab.start()?;
    lab.connect().context("generic mode")?;
    ensure!(lab.counter("backend", "backend_reqsk_created")? == 1);
    let hints = lab.hints()?;
    ensure!(hint(&hints, "xdp_tx_errors").is_none(), "{hints:?}");
    daemon.stop()?;
    Ok(())
}
