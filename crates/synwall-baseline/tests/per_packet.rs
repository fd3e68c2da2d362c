//! Smoke test of the per-packet benchmark: tiny sizes, every row measured (not the timing).
//! Needs root (skips elsewhere, fails under CI=true).

use synwall_baseline::per_packet::{run, Family, Opts, Profile, Program};

#[test]
fn every_row_is_measured() {
    if !synwall_testkit::require_privileges("every_row_is_measured") {
        return;
    }
    let report = run(&Opts {
        repeat: 300,
        rounds: 2,
    })
    .unwrap();
    assert_eq!(report.rows.len(), 12);
    for p in Program::ALL {
        for f in [Family::IPv4, Family::IPv6] {
            for s in [Profile::LinuxDefault, Profile::NoTimestamps] {
                let r = report
                    .rows
                    .iter()
                    .find(|r| r.program == p && r.family == f && r.profile == s)
                    .unwrap_or_else(|| panic!("no row {p:?} {f:?} {s:?}"));
                for (what, v) in [
                    ("ns", r.ns),
                    ("ns_min", r.ns_min),
                    ("ns_max", r.ns_max),
                    ("mpps", r.mpps),
                    ("net_ns", r.net_ns),
                    ("ratio_vs_helper", r.ratio_vs_helper),
                    ("ratio_vs_bare", r.ratio_vs_bare),
                ] {
                    assert!(v.is_finite() && v > 0.0, "{p:?} {f:?} {s:?}: {what} = {v}");
                }
                assert!(r.ns_min <= r.ns && r.ns <= r.ns_max);
                assert!(
                    r.synack_len >= 58,
                    "{p:?} {f:?} {s:?}: reply {}",
                    r.synack_len
                );
            }
        }
    }
    let table = report.table();
    for name in ["synwall edge", "helper cookie", "bare XDP_TX", "goals"] {
        assert!(table.contains(name), "{table}");
    }
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["goals"]["vs_helper_ok"].is_boolean());
    assert!(json["goals"]["vs_bare_ok"].is_boolean());
}

#[test]
fn zero_sizes_are_refused() {
    for opts in [
        Opts {
            repeat: 0,
            rounds: 1,
        },
        Opts {
            repeat: 1,
            rounds: 0,
        },
    ] {
        let e = run(&opts).unwrap_err().to_string();
        assert!(e.contains("at least 1"), "{e}");
    }
}
