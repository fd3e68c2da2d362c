//! `synwall edge|backend|single` as an operator starts them: one `ready` line, counters on SIGTERM,
//! and bad starts (no interface, bad secret, unmet sysctl, an XDP program already there) that exit
//! non-zero with a clear message and leave nothing attached.

use std::process::Command;
use std::time::Duration;
use synwall_testkit::daemon::Daemon;
use synwall_testkit::synwall;
use synwall_testkit::{require_privileges, unique_prefix, veth, Netns};

fn secret(dir: &tempfile::TempDir) -> String {
    let p = dir.path().join("master.key");
    std::fs::write(
        &p,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    p.to_str().unwrap().to_string()
}

fn synwall_in(ns: &Netns, args: &[&str]) -> Command {
    let mut c = ns.command(synwall().to_str().unwrap());
    c.args(args);
    c
}

/// What `bpftool net` shows attached to `dev` in `ns` (xdp and tcx lines).
fn attached(ns: &Netns, dev: &str) -> String {
    let out = ns.run(&["bpftool", "net", "show", "dev", dev]).unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(dev) && (l.contains("id ") || l.contains("prog")))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn bad_starts_leave_nothing_attached() {
    if !require_privileges("bad_starts_leave_nothing_attached") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key = secret(&dir);
    let p = unique_prefix();
    let a = Netns::create(&format!("{p}a")).unwrap();
    let b = Netns::create(&format!("{p}b")).unwrap();
    veth(&a, "eth0", &b, "eth0").unwrap();
    let svc = ["--service", "10.66.0.0/24:80"];
    let run = |args: &[&str]| {
        let o = synwall_in(&a, args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let base = |role: &'static str, iface: &'static str, key: &str| -> Vec<String> {
        let mut v: Vec<String> = vec![
            role.into(),
            "--iface".into(),
            iface.into(),
            "--secret-file".into(),
            key.into(),
        ];
        v.extend(svc.iter().map(|s| s.to_string()));
        v
    };
    let args = |v: &[String]| v.iter().map(String::as_str).collect::<Vec<_>>().join(" ");
    for role in ["edge", "backend", "single"] {
        let v = base(role, "nosuchdev", &key);
        let (code, out, err) = run(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, Some(2), "{}: {err}", args(&v));
        assert!(err.contains("no such interface \"nosuchdev\""), "{err}");
        assert!(out.is_empty());
        let v = base(role, "eth0", "/nonexistent/key");
        let (code, _, err) = run(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, Some(2));
        assert!(
            err.contains("cannot read secret file /nonexistent/key"),
            "{err}"
        );
    }
    let (code, _, err) = run(&[
        "edge",
        "--iface",
        "eth0",
        "--secret-file",
        &key,
        "--service",
        "10.66.0.1/24:80",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("host bits set"), "{err}");
    // The kfunc needs syncookies: refuse, naming the sysctl.
    a.sysctl("net.ipv4.tcp_syncookies", "0").unwrap();
    for role in ["backend", "single"] {
        let v = base(role, "eth0", &key);
        let (code, _, err) = run(&v.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(code, Some(2));
        assert!(err.contains("sysctl net.ipv4.tcp_syncookies is 0"), "{err}");
        assert!(err.contains("--set-sysctls"), "{err}");
    }
    assert_eq!(
        attached(&a, "eth0"),
        "",
        "nothing attached after refused starts"
    );

    // An XDP program already on the interface: `single` attaches tc first, fails on XDP, and must
    // detach tc again.
    let edge_args = base("edge", "eth0", &key);
    let first = Daemon::start(
        &a,
        synwall(),
        &edge_args.iter().map(String::as_str).collect::<Vec<_>>(),
        Duration::from_secs(20),
    )
    .unwrap();
    assert!(
        first
            .ready_line()
            .starts_with("ready edge iface=eth0 services=10.66.0.0/24:80"),
        "{}",
        first.ready_line()
    );
    let before = attached(&a, "eth0");
    assert!(!before.is_empty(), "the edge's XDP program is attached");
    let mut v = base("single", "eth0", &key);
    v.push("--set-sysctls".into());
    let (code, _, err) = run(&v.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot attach XDP"), "{err}");
    assert_eq!(
        attached(&a, "eth0"),
        before,
        "the failed single left its tc program behind"
    );
    let counters = first.stop().unwrap();
    assert!(
        counters.contains_key("edge"),
        "final counters printed: {counters:?}"
    );
    assert_eq!(attached(&a, "eth0"), "", "SIGTERM detached the edge");
    drop(b);
}
