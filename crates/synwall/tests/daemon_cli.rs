//! Bad configurations through the real binary: `synwall check-config` and `synwall run` exit with
//! status 2, the message names the file, the line and the key, and `run` leaves nothing behind
//! (no pins, no state file). The parser's own table of 50+ cases is in crates/synwall-config;
//! this one proves the CLI surfaces it, including the checks that need the machine (interface,
//! secret file, metrics address).
//!
//! Then the daemon as an operator and systemd meet it (privileged, in a namespace of its own with
//! a pin root of its own): one daemon per node whatever its run directory, `ip netns exec` caught
//! by `check-config`, one log stream with each event once (and the journal's format under
//! systemd), and systemd's notify protocol and credentials against a socket and a credentials
//! directory the test prepares (systemd is not PID 1 on the test machines, so no real unit runs).

use std::path::Path;
use std::process::Command;
use synwall_testkit::synwall;

struct Case {
    what: &'static str,
    /// The config; `SECRET` is replaced by a valid secret file's path.
    text: &'static str,
    /// What stderr must contain, `FILE` replaced by the config's path.
    want: &'static str,
}

const GOOD_TAIL: &str =
    "[services]\nprotect = [\"10.1.2.3/32:80\"]\n[backend]\ninterfaces = [\"lo\"]\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "typo in a key",
            text: "[node]\nname = \"swbad\"\nepoch_secnds = 5\nsecret_file = \"SECRET\"\n",
            want: "FILE:3: node.epoch_secnds: unknown key",
        },
        Case {
            what: "typo in a section",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\n\n[servcies]\nprotect = []\n",
            want: "FILE:5: servcies",
        },
        Case {
            what: "string for a number",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\nepoch_seconds = \"60\"\n",
            want: "FILE:4: node.epoch_seconds",
        },
        Case {
            what: "number for a bool",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\n[edge]\nstrict = 1\n",
            want: "FILE:5: edge.strict",
        },
        Case {
            what: "bad enum value",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\n[edge]\nxdp_mode = \"nativ\"\n",
            want: "FILE:5: edge.xdp_mode",
        },
        Case {
            what: "unparsable service",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\n[services]\nprotect = [\"10.1.2.3:http\"]\n[backend]\ninterfaces = [\"lo\"]\n",
            want: "FILE:5: services.protect",
        },
        Case {
            what: "MSS table below the kfunc minimum",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\n[cookie]\nmss_v4 = [500, 1200, 1360, 1400, 1440, 1452, 1460, 8960]\n[services]\nprotect = [\"10.1.2.3/32:80\"]\n[backend]\ninterfaces = [\"lo\"]\n",
            want: "FILE:5: cookie.mss_v4",
        },
        Case {
            what: "interface that does not exist",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"SECRET\"\n[services]\nprotect = [\"10.1.2.3/32:80\"]\n[edge]\ninterfaces = [\"nosuchif0\"]\n",
            want: "FILE:7: edge.interfaces: no such interface \"nosuchif0\"",
        },
        Case {
            what: "secret file missing",
            text: "[node]\nname = \"swbad\"\nsecret_file = \"/nonexistent/secret\"\n[services]\nprotect = [\"10.1.2.3/32:80\"]\n[backend]\ninterfaces = [\"lo\"]\n",
            want: "FILE:3: node.secret_file",
        },
    ]
}

fn write_secret(dir: &Path) -> String {
    let p = dir.join("secret");
    std::fs::write(&p, format!("{}\n", "ab".repeat(32))).unwrap();
    p.display().to_string()
}

#[test]
fn bad_configs_are_rejected_naming_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let run_dir = dir.path().join("run");
    for c in cases() {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, c.text.replace("SECRET", &secret)).unwrap();
        let want = c.want.replace("FILE", &path.display().to_string());
        for args in [
            vec!["check-config", path.to_str().unwrap()],
            vec![
                "run",
                "--config",
                path.to_str().unwrap(),
                "--run-dir",
                run_dir.to_str().unwrap(),
            ],
        ] {
            let out = Command::new(synwall()).args(&args).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{}: {args:?}: {err}", c.what);
            assert!(
                err.contains(&want),
                "{}: {args:?}: want {want:?} in:\n{err}",
                c.what
            );
        }
        // `run` failed before attaching: no pins, no state file.
        assert!(
            !Path::new(synwall_config::DEFAULT_PIN_ROOT)
                .join("swbad")
                .exists(),
            "{}: pins left behind",
            c.what
        );
        assert!(!run_dir.join("swbad.json").exists(), "{}", c.what);
    }
}

#[test]
fn unbindable_metrics_address_attaches_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let path = dir.path().join("m.toml");
    // 192.0.2.1 (TEST-NET-1) is no local address: bind fails before anything is loaded.
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"swbadm\"\nsecret_file = \"{secret}\"\nmetrics = \"192.0.2.1:9733\"\n{GOOD_TAIL}"
        ),
    )
    .unwrap();
    // check-config finds it too, naming the key and line as run does.
    let check = Command::new(synwall())
        .args(["check-config", path.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:4: node.metrics: cannot listen on 192.0.2.1:9733",
            path.display()
        )),
        "{err}"
    );
    let out = Command::new(synwall())
        .args([
            "run",
            "--config",
            path.to_str().unwrap(),
            "--run-dir",
            dir.path().join("run").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:4: node.metrics", path.display())),
        "{err}"
    );
    assert!(!Path::new(synwall_config::DEFAULT_PIN_ROOT)
        .join("swbadm")
        .exists());
}

/// A metrics address another program listens on fails `check-config` (it passed, then `run`
/// refused); the same address free passes (the positive control).
#[test]
fn check_config_finds_a_metrics_address_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let path = dir.path().join("m.toml");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"swbusy\"\nsecret_file = \"{secret}\"\nmetrics = \"{addr}\"\n\
             [services]\nprotect = [\"10.1.2.3/32:80\"]\n[edge]\ninterfaces = [\"lo\"]\n"
        ),
    )
    .unwrap();
    let check = || {
        Command::new(synwall())
            .args(["check-config", path.to_str().unwrap()])
            .output()
            .unwrap()
    };
    let out = check();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "{}:4: node.metrics: cannot listen on {addr}: another program listens there",
            path.display()
        )),
        "{err}"
    );
    drop(taken);
    let out = check();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--node` is a directory name under the pin root that `stop --detach` removes: names the config
/// file would refuse (`..`, empty, a path) are refused before anything is touched. A sibling
/// directory next to a scratch pin root proves `..` removed nothing.
#[test]
fn node_names_that_escape_the_pin_root_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pins");
    std::fs::create_dir_all(root.join("keep")).unwrap();
    let sibling = dir.path().join("other-software");
    std::fs::create_dir_all(&sibling).unwrap();
    for name in ["..", "", "a/b", "x".repeat(33).as_str()] {
        for cmd in [&["stop", "--detach"][..], &["status"][..]] {
            let out = Command::new(synwall())
                .args(cmd)
                .args(["--node", name, "--pin-root", root.to_str().unwrap()])
                .args(["--run-dir", dir.path().join("run").to_str().unwrap()])
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{cmd:?} --node {name:?}: {err}");
            assert!(err.contains("not a valid node name"), "{err}");
        }
    }
    assert!(root.join("keep").exists() && sibling.exists());
}

/// `stop` with nothing to stop behaves alike with and without --detach: exit 0 (the node is
/// stopped), saying that nothing was running and nothing is pinned; a bad node name is still an
/// error (2).
#[test]
fn stop_with_nothing_to_stop_is_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("pins");
    std::fs::create_dir_all(&root).unwrap();
    for detach in [false, true] {
        let out = Command::new(synwall())
            .arg("stop")
            .args(detach.then_some("--detach"))
            .args(["--node", "swidle", "--pin-root", root.to_str().unwrap()])
            .args(["--run-dir", dir.path().join("run").to_str().unwrap()])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "detach={detach}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("no synwall is running node \"swidle\""),
            "{text}"
        );
        assert!(text.contains("has nothing pinned in"), "{text}");
    }
}

/// `status --interval` outside 0.1..=3600 s (or not a number at all) is an error, not a panic or
/// a silent clamp.
#[test]
fn bad_status_intervals_are_refused() {
    for bad in ["nan", "inf", "0", "-1", "3601", "soon"] {
        let out = Command::new(synwall())
            .args(["status", "--node", "swnone", &format!("--interval={bad}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--interval {bad}: {err}");
        assert!(err.contains("from 0.1 to 3600"), "{err}");
    }
}

/// `check-config` checks the sysctls a backend needs, as `run` does: in a namespace with
/// `tcp_syncookies = 0` a backend config without `set_sysctls` fails naming the sysctl; with
/// `set_sysctls = true` it passes (run would set it) and the sysctl is left as it was.
#[test]
fn check_config_checks_the_backends_sysctls() {
    if !synwall_testkit::require_privileges("check_config_checks_the_backends_sysctls") {
        return;
    }
    let ns =
        synwall_testkit::Netns::create(&format!("{}k", synwall_testkit::unique_prefix())).unwrap();
    ns.sysctl("net.ipv4.tcp_syncookies", "0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    for (set, want_ok) in [(false, false), (true, true)] {
        let path = dir.path().join(format!("s{set}.toml"));
        std::fs::write(
            &path,
            format!(
                "[node]\nname = \"swsysctl\"\nsecret_file = \"{secret}\"\nset_sysctls = {set}\n{GOOD_TAIL}"
            ),
        )
        .unwrap();
        let out = ns
            .command(synwall().to_str().unwrap())
            .args(["check-config", path.to_str().unwrap()])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), want_ok, "set_sysctls = {set}: {err}");
        if !want_ok {
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(err.contains("net.ipv4.tcp_syncookies is 0"), "{err}");
        }
    }
    let v = ns
        .run(&["sysctl", "-n", "net.ipv4.tcp_syncookies"])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&v.stdout).trim(), "0");
}

/// A start that fails while pinning its links leaves nothing attached: the link it had pinned
/// already is unpinned again, so it detaches when the process exits. Here the second
/// interface's pin path is taken by a directory.
#[test]
fn a_failed_pin_leaves_no_link_behind() {
    if !synwall_testkit::require_privileges("a_failed_pin_leaves_no_link_behind") {
        return;
    }
    let p = synwall_testkit::unique_prefix();
    let ns = synwall_testkit::Netns::create(&format!("{p}p")).unwrap();
    for d in ["d0", "d1"] {
        let peer = format!("{d}p");
        ns.run(&[
            "ip", "link", "add", d, "type", "veth", "peer", "name", &peer,
        ])
        .unwrap();
        ns.run(&["ip", "link", "set", d, "up"]).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = write_secret(dir.path());
    let root = Path::new("/sys/fs/bpf").join(format!("{p}-pins"));
    let links = root.join("swpin").join("links");
    std::fs::create_dir_all(links.join("tcx_d1")).unwrap();
    let path = dir.path().join("pin.toml");
    std::fs::write(
        &path,
        format!(
            "[node]\nname = \"swpin\"\nsecret_file = \"{secret}\"\npin_root = \"{}\"\nmetrics = \"\"\n\
             set_sysctls = true\n[services]\nprotect = [\"10.1.2.3/32:80\"]\n\
             [backend]\ninterfaces = [\"d0\", \"d1\"]\n",
            root.display()
        ),
    )
    .unwrap();
    let out = ns
        .command(synwall().to_str().unwrap())
        .args(["run", "--config", path.to_str().unwrap()])
        .args(["--run-dir", dir.path().join("run").to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let tcx = ns.run(&["bpftool", "net", "show", "dev", "d0"]).unwrap();
    let tcx = String::from_utf8_lossy(&tcx.stdout).to_string();
    let d0_pinned = links.join("tcx_d0").exists();
    let _ = std::fs::remove_dir_all(&root);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("cannot pin the Tcx link of d1"), "{err}");
    assert!(!d0_pinned, "d0's link stayed pinned");
    assert!(
        !tcx.contains("sw_backend"),
        "d0 still has the program: {tcx}"
    );
}

// ---- the daemon, privileged ------------------------------------------------------------------

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use synwall_cookie::synwall_v1::{EpochKeys, MasterSecret};
use synwall_testkit::daemon::message;
use synwall_testkit::{Daemon, Netns};

const READY: Duration = Duration::from_secs(20);

/// A namespace for a backend-only node on its loopback, a directory for its files and a pin root
/// of its own (removed, with whatever is pinned, on drop).
struct NodeLab {
    ns: Netns,
    dir: tempfile::TempDir,
    name: String,
    root: PathBuf,
}

impl NodeLab {
    fn new(tag: &str) -> NodeLab {
        let name = format!("{}{tag}", synwall_testkit::unique_prefix());
        let ns = Netns::create(&name).unwrap();
        let root = Path::new("/sys/fs/bpf").join(format!("{name}-pins"));
        NodeLab {
            ns,
            dir: tempfile::tempdir().unwrap(),
            name,
            root,
        }
    }

    /// Write the node's config, `node` (`key = value` lines) overriding or adding `[node]` keys;
    /// its path.
    fn config(&self, node: &str) -> String {
        let path = self.dir.path().join("node.toml");
        let secret = self.dir.path().join("secret");
        if !secret.exists() {
            write_secret(self.dir.path());
        }
        let mut keys: Vec<(String, String)> = [
            ("name", format!("{:?}", self.name)),
            ("pin_root", format!("{:?}", self.root.display().to_string())),
            ("secret_file", format!("{:?}", secret.display().to_string())),
            ("metrics", "\"\"".to_string()),
            ("set_sysctls", "true".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for l in node.lines() {
            let (k, v) = l.split_once(" = ").unwrap();
            match keys.iter_mut().find(|(key, _)| key == k) {
                Some(e) => e.1 = v.to_string(),
                None => keys.push((k.to_string(), v.to_string())),
            }
        }
        let node: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
        std::fs::write(&path, format!("[node]\n{node}{GOOD_TAIL}")).unwrap();
        path.display().to_string()
    }

    fn run_dir(&self, which: &str) -> String {
        self.dir.path().join(which).display().to_string()
    }

    fn run_args(&self, config: &str, run_dir: &str) -> Vec<String> {
        ["run", "--config", config, "--run-dir", run_dir]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn pins(&self) -> PathBuf {
        self.root.join(&self.name)
    }
}

impl Drop for NodeLab {
    fn drop(&mut self) {
        let _ = synwall_bpf::pin::NodePins::new(&self.root, &self.name).remove();
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// A config's text with `secret_file` replaced.
fn with_secret(config: &str, secret: &str) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    let out: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with("secret_file") {
                format!("secret_file = \"{secret}\"")
            } else {
                l.to_string()
            }
        })
        .collect();
    out.join("\n") + "\n"
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Two daemons of one node used to run side by side when their run directories differed (both
/// adopting the same pins): the lock is where the pins are. The second is refused naming the
/// first's pid; `synwall stop` finds the daemon from any run directory; once it is gone, a new
/// daemon starts (the positive control) and adopts the pins.
#[test]
fn a_node_runs_in_one_daemon_whatever_its_run_directory() {
    if !synwall_testkit::require_privileges("a_node_runs_in_one_daemon_whatever_its_run_directory")
    {
        return;
    }
    let lab = NodeLab::new("l");
    let cfg = lab.config("");
    let (r1, r2) = (lab.run_dir("r1"), lab.run_dir("r2"));
    let first = Daemon::start(&lab.ns, synwall(), &lab.run_args(&cfg, &r1), READY).unwrap();
    // The second must exit at once; one that runs (adopting the first's pins) is stopped here.
    let mut second = lab
        .ns
        .command(synwall().to_str().unwrap())
        .args(lab.run_args(&cfg, &r2))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + READY;
    while second.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    if second.try_wait().unwrap().is_none() {
        let _ = second.kill();
    }
    let out = second.wait_with_output().unwrap();
    let err = stderr_of(&out);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a second daemon ran the node: {err}"
    );
    assert!(
        err.contains(&format!(
            "node {:?} is already run by another synwall (pid {})",
            lab.name,
            first.pid()
        )),
        "{err}"
    );
    assert!(!Path::new(&r2).join(format!("{}.json", lab.name)).exists());

    let stop = Command::new(synwall())
        .args(["stop", "--node", &lab.name, "--pin-root"])
        .arg(&lab.root)
        .args(["--run-dir", &r2])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&stop.stdout);
    assert!(stop.status.success(), "{text}{}", stderr_of(&stop));
    assert!(
        text.contains(&format!(
            "stopped node {:?} (pid {})",
            lab.name,
            first.pid()
        )),
        "{text}"
    );
    first.stop().expect("the first daemon exited cleanly");

    let again = Daemon::start(&lab.ns, synwall(), &lab.run_args(&cfg, &r2), READY).unwrap();
    assert!(
        again.ready_line().contains("adopted=1"),
        "{}",
        again.ready_line()
    );
    again.stop().unwrap();
}

/// `ip netns exec` mounts a sysfs of its own over /sys, hiding bpffs: `check-config` used to say
/// ok and `run` then failed with a bare "not on a bpffs". Both now fail naming the key and what
/// to do (`nsenter --net=` with this namespace's name, or mount a bpffs), and `run` leaves
/// nothing; through `nsenter` the same config passes (the positive control).
#[test]
fn ip_netns_exec_is_caught_by_check_config_with_what_to_do() {
    if !synwall_testkit::require_privileges(
        "ip_netns_exec_is_caught_by_check_config_with_what_to_do",
    ) {
        return;
    }
    let lab = NodeLab::new("x");
    let cfg = lab.config("");
    let run_dir = lab.run_dir("r");
    let mut run = vec!["run".to_string()];
    run.extend(lab.run_args(&cfg, &run_dir).into_iter().skip(1));
    for args in [vec!["check-config".to_string(), cfg.clone()], run] {
        let out = Command::new("ip")
            .args(["netns", "exec", lab.ns.name()])
            .arg(synwall())
            .args(&args)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        for want in [
            format!("{cfg}:3: node.pin_root: "),
            "is not on a bpffs".to_string(),
            format!("`nsenter --net=/run/netns/{} synwall ...`", lab.ns.name()),
            "mount -t bpf bpf /sys/fs/bpf".to_string(),
        ] {
            assert!(err.contains(&want), "{args:?}: want {want:?} in {err}");
        }
    }
    assert!(!lab.pins().exists(), "pins left behind");
    let out = lab
        .ns
        .command(synwall().to_str().unwrap())
        .args(["check-config", &cfg])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
}

/// A `synwall run` child whose stdout and stderr the test reads apart, each line as it comes.
struct Raw {
    child: Child,
    lines: mpsc::Receiver<(bool, String)>,
    seen: Vec<(bool, String)>,
}

impl Raw {
    fn start(
        ns: &Netns,
        args: &[String],
        env: &[(&str, String)],
        stderr: Option<std::fs::File>,
    ) -> Raw {
        let mut c = ns.command(synwall().to_str().unwrap());
        c.args(args).stdin(Stdio::null()).stdout(Stdio::piped());
        for (k, v) in env {
            c.env(k, v);
        }
        match stderr {
            Some(f) => c.stderr(f),
            None => c.stderr(Stdio::piped()),
        };
        let mut child = c.spawn().unwrap();
        let (tx, lines) = mpsc::channel();
        let streams: Vec<(bool, Box<dyn std::io::Read + Send>)> = [
            child
                .stdout
                .take()
                .map(|o| (true, Box::new(o) as Box<dyn std::io::Read + Send>)),
            child
                .stderr
                .take()
                .map(|e| (false, Box::new(e) as Box<dyn std::io::Read + Send>)),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (is_out, r) in streams {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for l in BufReader::new(r).lines().map_while(|l| l.ok()) {
                    let _ = tx.send((is_out, l));
                }
            });
        }
        Raw {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait for a stderr line whose message starts with `prefix`.
    fn wait(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + READY;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((is_out, l)) => {
                    self.seen.push((is_out, l.clone()));
                    if !is_out && message(&l).starts_with(prefix) {
                        return l;
                    }
                }
                Err(_) => panic!("no line {prefix:?}; so far {:?}", self.seen),
            }
        }
    }

    /// Wait for the exit; every line, (stdout?, line).
    fn finish(mut self) -> Vec<(bool, String)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "did not exit: {:?}", self.seen);
            std::thread::sleep(Duration::from_millis(20));
        };
        // The readers end with the pipes.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        assert!(status.success(), "{status}: {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stop_node(lab: &NodeLab, run_dir: &str, detach: bool) -> String {
    let out = Command::new(synwall())
        .args(["stop", "--node", &lab.name, "--pin-root"])
        .arg(&lab.root)
        .args(["--run-dir", run_dir])
        .args(detach.then_some("--detach"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Each event is logged once, on one stream (stderr): nothing on stdout, every line a log line,
/// each rotation and the reload once, no error from the metrics listener closing, and the last
/// line says what happened: detached with `stop --detach`, left attached with a plain stop.
/// Under systemd (stderr is the stream `$JOURNAL_STREAM` names) lines carry the journal's
/// priority instead of a time: `<6>` for info, `<4>` for a warning.
#[test]
fn run_logs_each_event_once_on_one_stream() {
    if !synwall_testkit::require_privileges("run_logs_each_event_once_on_one_stream") {
        return;
    }
    let lab = NodeLab::new("o");
    let cfg = lab.config("epoch_seconds = 1\nmetrics = \"127.0.0.1:0\"");
    let run_dir = lab.run_dir("r");
    let mut d = Raw::start(&lab.ns, &lab.run_args(&cfg, &run_dir), &[], None);
    d.wait("ready ");
    d.wait("rotated ");
    d.wait("rotated ");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(d.child.id() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    d.wait("reloaded changes=0");
    let said = stop_node(&lab, &run_dir, true);
    assert!(said.contains("detached node"), "{said}");
    let lines = d.finish();
    let stdout: Vec<_> = lines.iter().filter(|(o, _)| *o).collect();
    assert!(stdout.is_empty(), "stdout: {stdout:?}");
    let msgs: Vec<&str> = lines.iter().map(|(_, l)| message(l)).collect();
    for (_, l) in &lines {
        assert_ne!(message(l), l.as_str(), "not a log line: {l:?}");
        assert!(!l.contains(" ERROR "), "an error: {l:?}");
    }
    let count = |p: &str| msgs.iter().filter(|m| m.starts_with(p)).count();
    assert_eq!(count("ready "), 1, "{msgs:#?}");
    assert_eq!(count("reloaded "), 1, "{msgs:#?}");
    let mut rotations: Vec<&str> = msgs
        .iter()
        .filter(|m| m.starts_with("rotated "))
        .copied()
        .collect();
    assert!(rotations.len() >= 2, "{msgs:#?}");
    let n = rotations.len();
    rotations.dedup();
    assert_eq!(rotations.len(), n, "a rotation logged twice: {msgs:#?}");
    assert!(
        msgs.iter().all(|m| !m.contains("stay attached")),
        "{msgs:#?}"
    );
    let last = msgs.last().unwrap();
    assert!(
        last.starts_with("stopped and detached (synwall stop --detach): 1 link(s)"),
        "{last}"
    );
    assert!(!lab.pins().exists(), "stop --detach left pins");

    // Under the journal, with a warning to show (a secret others can read).
    let secret = lab.dir.path().join("secret");
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let log = lab.dir.path().join("journal");
    let file = std::fs::File::create(&log).unwrap();
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&file)).unwrap();
    let stream = format!("{}:{}", st.st_dev, st.st_ino);
    let mut d = Raw::start(
        &lab.ns,
        &lab.run_args(&cfg, &run_dir),
        &[("JOURNAL_STREAM", stream)],
        Some(file),
    );
    // Only stdout is piped here: wait for the log file to say ready.
    let deadline = Instant::now() + READY;
    while !std::fs::read_to_string(&log).unwrap().contains("<6>ready ") {
        assert!(
            Instant::now() < deadline,
            "{}",
            std::fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let said = stop_node(&lab, &run_dir, false);
    assert!(said.contains("stay attached"), "{said}");
    d.seen.extend(d.lines.try_iter());
    assert!(d.finish().is_empty(), "stdout is not empty");
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for l in &lines {
        assert!(
            l.starts_with("<6>") || l.starts_with("<4>"),
            "not a journal line: {l:?}"
        );
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("<4>secret file ") && l.contains("mode 0644")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("<6>ready node=")),
        "{text}"
    );
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("<6>stopped; the programs stay attached"),
        "{text}"
    );
}

/// The datagrams a `NOTIFY_SOCKET` received, as `KEY=VALUE` lines, with when they came.
fn notifications(sock: &UnixDatagram, for_: Duration) -> Vec<(Instant, Vec<String>)> {
    let mut out = Vec::new();
    let end = Instant::now() + for_;
    let mut buf = [0u8; 4096];
    while Instant::now() < end {
        sock.set_read_timeout(Some(
            end.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            out.push((Instant::now(), text.lines().map(str::to_string).collect()));
        }
    }
    out
}

fn has(d: &[String], kv: &str) -> bool {
    d.iter().any(|l| l == kv)
}

/// systemd's side of `Type=notify`, played by the test: `NOTIFY_SOCKET` is a datagram socket it
/// reads, `WATCHDOG_USEC` asks for a watchdog, and the secret is a credential in a
/// `$CREDENTIALS_DIRECTORY` it prepares (`secret_file = "%d/synwall-secret"`). `READY=1` comes
/// once the link is attached and pinned, with `STATUS=` naming the epoch; `WATCHDOG=1` keeps
/// coming within the interval; a rotation updates `STATUS=`; a reload is `RELOADING=1` then
/// `READY=1`; a stop `STOPPING=1`. The salt in use is the credential's (its key id matches one
/// computed here). Without the credentials directory `run` refuses naming LoadCredential=, and
/// `check-config` says the secret could not be checked.
#[test]
fn systemd_notify_watchdog_and_credentials() {
    if !synwall_testkit::require_privileges("systemd_notify_watchdog_and_credentials") {
        return;
    }
    let lab = NodeLab::new("s");
    let creds = lab.dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    let secret = [0x6bu8; 32];
    std::fs::write(creds.join("synwall-secret"), hex::encode(secret)).unwrap();
    let cfg = lab.config("epoch_seconds = 1");
    std::fs::write(&cfg, with_secret(&cfg, "%d/synwall-secret")).unwrap();
    let run_dir = lab.run_dir("r");

    // Without the credentials directory: refused, saying what systemd needs.
    let out = lab
        .ns
        .command(synwall().to_str().unwrap())
        .args(lab.run_args(&cfg, &run_dir))
        .env_remove("CREDENTIALS_DIRECTORY")
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("node.secret_file: %d/synwall-secret is systemd credential \"synwall-secret\", but $CREDENTIALS_DIRECTORY is not set")
            && err.contains("LoadCredential=synwall-secret:"),
        "{err}"
    );
    assert!(!lab.pins().exists());
    let check = |creds: Option<&Path>| {
        let mut c = lab.ns.command(synwall().to_str().unwrap());
        c.args(["check-config", &cfg]);
        match creds {
            Some(d) => c.env("CREDENTIALS_DIRECTORY", d),
            None => c.env_remove("CREDENTIALS_DIRECTORY"),
        };
        c.output().unwrap()
    };
    let out = check(None);
    assert!(out.status.success(), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out)
            .contains("the secret was not checked: %d/synwall-secret is the systemd credential"),
        "{}",
        stderr_of(&out)
    );
    let out = check(Some(&creds));
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        stderr_of(&out)
    );
    let bad = lab.dir.path().join("bad-credentials");
    std::fs::create_dir(&bad).unwrap();
    std::fs::write(bad.join("synwall-secret"), "not a secret").unwrap();
    let out = check(Some(&bad));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("node.secret_file: systemd credential \"synwall-secret\": a secret must be 32 raw bytes"),
        "{}",
        stderr_of(&out)
    );

    let sock_path = lab.dir.path().join("notify");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let env = [
        ("NOTIFY_SOCKET", sock_path.display().to_string()),
        ("WATCHDOG_USEC", "1000000".to_string()),
        ("CREDENTIALS_DIRECTORY", creds.display().to_string()),
    ];
    let args = lab.run_args(&cfg, &run_dir);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // READY=1 first, once the link is in place: read it while the daemon starts.
    let (first, link_pinned, mut d) = std::thread::scope(|s| {
        let starting = s.spawn(|| Daemon::start_with_env(&lab.ns, synwall(), &args, &env, READY));
        sock.set_read_timeout(Some(READY)).unwrap();
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification");
        let link_pinned = lab.pins().join("links/tcx_lo").exists();
        let first: Vec<String> = String::from_utf8_lossy(&buf[..n])
            .lines()
            .map(str::to_string)
            .collect();
        (first, link_pinned, starting.join().unwrap().unwrap())
    });
    assert!(has(&first, "READY=1"), "{first:?}");
    assert!(link_pinned, "READY=1 before the link was pinned");
    let ready = d.ready_line().to_string();
    let field = |k: &str| {
        ready
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .unwrap_or_else(|| panic!("no {k} in {ready}"))
            .to_string()
    };
    let epoch: u64 = field("epoch=").parse().unwrap();
    let key = EpochKeys::derive(&MasterSecret(secret), epoch).current;
    assert_eq!(
        field("key="),
        format!("{:016x}", key.hash(b"synwall/v1 key id"))
    );
    let status = first
        .iter()
        .find_map(|l| l.strip_prefix("STATUS="))
        .unwrap_or_else(|| panic!("no STATUS= in {first:?}"));
    assert!(
        status.starts_with(&format!(
            "epoch {epoch} (key {}), edge -, backend lo",
            field("key=")
        )),
        "{status}"
    );

    // Three seconds: the watchdog every half interval, a STATUS= per rotation.
    let t0 = Instant::now();
    let got = notifications(&sock, Duration::from_secs(3));
    let pings: Vec<Instant> = got
        .iter()
        .filter(|(_, d)| has(d, "WATCHDOG=1"))
        .map(|(t, _)| *t)
        .collect();
    assert!(pings.len() >= 4, "{} pings in 3 s: {got:?}", pings.len());
    let mut last = t0;
    for p in &pings {
        assert!(
            p.duration_since(last) < Duration::from_millis(1000),
            "a watchdog gap of {:?}",
            p.duration_since(last)
        );
        last = *p;
    }
    let epochs: Vec<u64> = got
        .iter()
        .flat_map(|(_, d)| d.iter())
        .filter_map(|l| l.strip_prefix("STATUS=epoch "))
        .map(|r| r.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(epochs.len() >= 2, "{got:?}");
    assert!(epochs.windows(2).all(|w| w[1] > w[0]), "{epochs:?}");
    assert!(epochs[0] > epoch, "{epochs:?}");

    d.signal(nix::sys::signal::Signal::SIGHUP).unwrap();
    d.wait_line("reloaded", Duration::from_secs(5)).unwrap();
    let got = notifications(&sock, Duration::from_millis(300));
    let all: Vec<&String> = got.iter().flat_map(|(_, d)| d.iter()).collect();
    let reloading = all.iter().position(|l| *l == "RELOADING=1");
    let ready = all.iter().rposition(|l| *l == "READY=1");
    assert!(
        matches!((reloading, ready), (Some(a), Some(b)) if a < b),
        "{all:?}"
    );
    assert!(
        all.iter().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{all:?}"
    );

    d.stop().unwrap();
    let got = notifications(&sock, Duration::from_millis(300));
    assert!(got.iter().any(|(_, d)| has(d, "STOPPING=1")), "{got:?}");
}
