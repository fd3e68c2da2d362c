//! Bad configurations through the real binary: `synwall check-config` and `synwall run` exit with
//! status 2, the message names the file, the line and the key, and `run` leaves nothing behind
//! (no pins, no state file). The parser's own table of 50+ cases is in crates/synwall-config;
//! this one proves the CLI surfaces it, including the checks that need the machine (interface,
//! secret file, metrics address).

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
