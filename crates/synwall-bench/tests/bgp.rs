//! The anycast lab (`synwall_bench::anycast`, `synwall-lab bgp`) in CI, short: a BIRD router
//! spreads flows over synwall edges that announce the service with ExaBGP while healthy, exactly
//! as `dist/bgp/` ships them. Under a real client load (a new connection every 20 ms, IPv4 and
//! IPv6 in turn, long-lived transfers throughout, handshakes held across each withdrawal), an edge
//! joins, one's daemon is killed and started again, one is stopped with `synwall stop --detach`.

use std::time::Duration;
use synwall_bench::anycast::{self, AnycastLab, Options, Outcome, Scenario};

fn lab(strict: bool, epoch_seconds: u64, salts_ahead_seconds: Option<u64>) -> AnycastLab {
    AnycastLab::up(
        &synwall_testkit::unique_prefix(),
        Options {
            exe: synwall_testkit::synwall().to_path_buf(),
            strict,
            epoch_seconds,
            salts_ahead_seconds,
        },
    )
    .unwrap()
}

fn short() -> Scenario {
    Scenario {
        settle: Duration::from_secs(2),
        ..Scenario::default()
    }
}

fn scenario(strict: bool) -> Outcome {
    let mut lab = lab(strict, 60, None);
    let s = short();
    let out = anycast::run(&mut lab, &s).unwrap_or_else(|e| panic!("{e:#}"));
    println!("{}", out.text());
    out
}

#[test]
fn shipped_configs_take_the_lab_addresses() {
    let e = anycast::exabgp_conf(2).unwrap();
    assert!(e.contains("neighbor 10.89.12.1 {"), "{e}");
    assert!(
        e.contains("--ip 10.89.100.0/24 --next-hop 10.89.12.2;"),
        "{e}"
    );
    assert!(
        e.contains("--ip fd89:100::/48 --next-hop fd89:12::2;"),
        "{e}"
    );
    assert!(!e.contains("198.51.100.") && !e.contains("2001:db8"), "{e}");
    let b = anycast::bird_conf().unwrap();
    assert!(b.contains("neighbor range 10.89.0.0/16 as 64512;"), "{b}");
    assert!(b.contains("import where net = fd89:100::/48;"), "{b}");
    assert!(!b.contains("198.51.100.") && !b.contains("2001:db8"), "{b}");
    // Only whole addresses are replaced, and each must be there.
    let t = anycast::template("a 10.0.0.1 b 10.0.0.10 c", &[("10.0.0.1", "X".into())]).unwrap();
    assert_eq!(t, "a X b 10.0.0.10 c");
    assert!(anycast::template("10.0.0.10", &[("10.0.0.1", "X".into())]).is_err());
}

#[test]
fn edges_join_and_leave_without_a_failed_connection() {
    if !synwall_testkit::require_privileges("edges_join_and_leave_without_a_failed_connection") {
        return;
    }
    let out = scenario(false);
    assert!(out.failed.is_empty(), "failed connections:\n{}", out.text());
    assert!(out.connections > 300, "{}", out.text());
    let [join, kill, rejoin, detach] = &out.phases[..] else {
        panic!("four phases: {}", out.text())
    };
    // The joining edge takes new connections once announced; the leaving ones get none after
    // their route is gone.
    for p in [join, rejoin] {
        assert!(
            p.syn_after > 0,
            "e{} took no SYN after joining:\n{}",
            p.edge,
            out.text()
        );
    }
    for p in [kill, detach] {
        assert_eq!(
            p.syn_after,
            0,
            "e{} got SYNs after leaving:\n{}",
            p.edge,
            out.text()
        );
        // Handshakes whose SYN the leaving edge answered and whose ACK another edge carried:
        // at least the straddling ones, two per family, and none failed.
        assert!(
            p.crossed >= 4,
            "e{}: {} crossed:\n{}",
            p.edge,
            p.crossed,
            out.text()
        );
        assert_eq!(p.crossed_failed, 0, "{}", out.text());
    }
    assert!(
        out.long_moved > 0,
        "no long-lived transfer moved:\n{}",
        out.text()
    );
    assert_eq!(out.long_failed, 0, "{}", out.text());
}

#[test]
fn strict_mode_loses_only_flows_that_moved() {
    if !synwall_testkit::require_privileges("strict_mode_loses_only_flows_that_moved") {
        return;
    }
    let out = scenario(true);
    // Handshakes crossing edges still complete: the edge that gets the ACK validates it itself.
    for p in &out.phases {
        assert_eq!(p.crossed_failed, 0, "{}", out.text());
    }
    assert!(out.crossed >= 8, "{}", out.text());
    // What strict mode loses: established flows re-hashed to an edge whose flow cache does not
    // know them (strict_drop). Every failure is such a flow.
    assert_eq!(out.failed.len() as u64, out.failed_moved, "{}", out.text());
    assert!(
        out.long_failed > 0,
        "no long-lived transfer lost:\n{}",
        out.text()
    );
    let dropped: u64 = out
        .edge_counters
        .values()
        .map(|c| c.get("strict_drop").copied().unwrap_or(0))
        .sum();
    assert!(dropped > 0, "{}", out.text());
}

/// The fail-safe behind ECMP: an edge whose daemon froze past its salts, while something keeps
/// routing to it (its watcher frozen too), passes SYNs to the kernel behind it (`syn_pass_stale`)
/// and issues no cookie at all; every connection through it succeeds on the kernel's own
/// handshake, and the backend rejects nothing. Its health then withdraws it, and brings it back.
#[test]
fn stale_edge_issues_no_cookie_and_connections_still_succeed() {
    if !synwall_testkit::require_privileges(
        "stale_edge_issues_no_cookie_and_connections_still_succeed",
    ) {
        return;
    }
    let mut lab = lab(false, 2, Some(1));
    let out = anycast::stale_edge(&mut lab, &short()).unwrap_or_else(|e| panic!("{e:#}"));
    drop(lab);
    println!("{}", out.text());
    assert!(out.failed.is_empty(), "{}", out.text());
    let e = |k: &str| out.edge_delta.get(k).copied().unwrap_or(0);
    let b = |k: &str| out.backend_delta.get(k).copied().unwrap_or(0);
    assert!(out.through_stale > 10, "{}", out.text());
    assert!(e("syn_pass_stale") >= out.through_stale, "{}", out.text());
    assert_eq!(
        e("syn_answered"),
        0,
        "a stale edge issued cookies:\n{}",
        out.text()
    );
    // The kernel answered those SYNs and got their ACKs (its own handshakes); no cookie failed.
    assert!(b("backend_syn_pass") >= out.through_stale, "{}", out.text());
    assert_eq!(b("backend_ack_invalid"), 0, "{}", out.text());
}

/// docs/DEPLOYMENT.md: every command of its `sh` blocks is in its last table, and every file
/// that table names as exercising a command exists.
#[test]
fn deployment_names_where_every_command_is_exercised() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let doc = std::fs::read_to_string(root.join("docs/DEPLOYMENT.md")).unwrap();
    let (body, table) = doc
        .split_once("## Commands and where they are exercised")
        .expect("the commands table");
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in body.lines() {
        match line.trim() {
            "```sh" => in_sh = true,
            "```" => in_sh = false,
            l if in_sh && !l.is_empty() && !l.starts_with('#') => commands.push(l.to_string()),
            _ => {}
        }
    }
    assert!(commands.len() >= 10, "{commands:?}");
    let rows: Vec<(&str, &str)> = table
        .lines()
        .filter(|l| l.starts_with("| `"))
        .filter_map(|l| l.trim_matches('|').split_once(" | "))
        .collect();
    for c in &commands {
        assert!(
            rows.iter().any(|(cmd, _)| cmd.contains(&format!("`{c}`"))),
            "{c:?} is not in the table of docs/DEPLOYMENT.md"
        );
    }
    for (cmd, by) in &rows {
        let paths: Vec<&str> = by
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|p| p.starts_with("crates/") || p.starts_with("dist/"))
            .collect();
        assert!(!paths.is_empty(), "{cmd}: names no test");
        for p in paths {
            assert!(root.join(p).exists(), "{cmd}: {p} does not exist");
        }
    }
}
