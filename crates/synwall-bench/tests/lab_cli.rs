//! `synwall-lab`: bad input is refused with a clear error before anything is built.

use std::process::Command;

fn synwall_lab(args: &[&str]) -> (i32, String) {
    let o = Command::new(synwall_testkit::synwall_lab())
        .args(args)
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn bad_lab_arguments_are_refused_and_build_nothing() {
    let cases: [(&[&str], &str); 8] = [
        (&["bench", "nope"], "unknown benchmark \"nope\""),
        (
            &["bench", "flood", "--seconds", "0.5"],
            "--seconds must be between 2 and 120",
        ),
        (
            &["bench", "flood", "--prefix", "a-b"],
            "--prefix must be 1-8 ASCII",
        ),
        (
            &["up", "--prefix", "waytoolongprefix"],
            "--prefix must be 1-8 ASCII",
        ),
        (&["down", "--prefix", ""], "--prefix must be 1-8 ASCII"),
        (
            &["gen", "--seconds", "0.1"],
            "--seconds must be between 0.5 and 120",
        ),
        (&["bench", "flood", "--gen", "nope"], "invalid value 'nope'"),
        (
            &["bench", "host-flood", "--rounds", "0"],
            "--rounds must be between 1 and 20",
        ),
    ];
    for (args, want) in cases {
        let (code, err) = synwall_lab(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // Nothing named after the refused prefixes exists.
    let list = Command::new("ip").args(["netns", "list"]).output();
    if let Ok(l) = list {
        let l = String::from_utf8_lossy(&l.stdout);
        assert!(!l.contains("waytoolong") && !l.contains("a-b"), "{l}");
    }
}

#[test]
fn bench_all_needs_the_doc_page() {
    let (code, err) = synwall_lab(&["bench", "all", "--doc", "/nonexistent/BENCHMARKS.md"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("does not exist"), "{err}");
}
