//! `synwall cookie ...` as a user runs it: exit codes, output lines, clear errors, no panics.

use std::path::PathBuf;
use std::process::{Command, Output};

fn synwall(args: &[&str]) -> Output {
    Command::new(synwall_testkit::synwall())
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/vectors")
}

fn vector_json(name: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(vectors().join(name)).unwrap()).unwrap()
}

#[test]
fn verify_vectors_passes_shipped_files() {
    let files: Vec<String> = [
        "synwall_v1.json",
        "linux_isn.json",
        "linux_ts.json",
        "freebsd.json",
    ]
    .iter()
    .map(|f| vectors().join(f).display().to_string())
    .collect();
    let args: Vec<&str> = ["cookie", "verify-vectors"]
        .into_iter()
        .chain(files.iter().map(String::as_str))
        .collect();
    let o = synwall(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    for l in lines {
        assert!(l.ends_with(" 0 failed"), "{l}");
        assert!(l.contains(" passed, "), "{l}");
    }
}

#[test]
fn verify_vectors_reports_a_tampered_file() {
    let mut v = vector_json("synwall_v1.json");
    let c = v.pointer_mut("/cases/0/expect/cookie").unwrap();
    *c = (c.as_u64().unwrap() ^ 0x10).into();
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let o = synwall(&["cookie", "verify-vectors", bad.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.lines().next().unwrap().ends_with(" 1 failed"), "{out}");
    assert!(out.contains("case 0 (generate): cookie"), "{out}");
    assert!(out.contains("expected:") && out.contains("got:"), "{out}");

    // A restored option that differs: named and shown as plain values, not Rust debug text.
    let mut v = vector_json("synwall_v1.json");
    let (ci, ki) = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .find_map(|(ci, c)| {
            let k = c["checks"]
                .as_array()?
                .iter()
                .position(|k| k["decoded"].is_object())?;
            Some((ci, k))
        })
        .unwrap();
    let d = v
        .pointer_mut(&format!("/cases/{ci}/checks/{ki}/decoded/snd_wscale"))
        .unwrap();
    let was = d.as_u64().unwrap();
    *d = (was ^ 1).into();
    std::fs::write(&bad, v.to_string()).unwrap();
    let o = synwall(&["cookie", "verify-vectors", bad.to_str().unwrap()]);
    let (out, _) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.contains(&format!("check {ki} (")), "{out}");
    assert!(out.contains("): decoded.snd_wscale\n"), "{out}");
    assert!(out.contains(&format!("expected: {}\n", was ^ 1)), "{out}");
    assert!(out.contains(&format!("got:      {was}\n")), "{out}");
    assert!(
        !out.contains("Some(") && !out.contains("DecodedOut"),
        "{out}"
    );
}

#[test]
fn verify_vectors_rejects_non_vector_files() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x.json");
    std::fs::write(&f, "{\"hello\": 1}").unwrap();
    let o = synwall(&[
        "cookie",
        "verify-vectors",
        f.to_str().unwrap(),
        "/nonexistent/file.json",
    ]);
    let (out, _) = text(&o);
    // 2: files that could not be checked, told from 1 (a case that failed).
    assert_eq!(o.status.code(), Some(2));
    assert!(out.contains("unrecognised vector file"), "{out}");
    assert!(out.contains("cannot read"), "{out}");
    for alone in [f.to_str().unwrap(), "/nonexistent/file.json"] {
        let o = synwall(&["cookie", "verify-vectors", alone]);
        assert_eq!(o.status.code(), Some(2), "{alone}");
    }
    // A failing case and an unreadable file: the run is incomplete, 2.
    let mut v = vector_json("freebsd.json");
    *v.pointer_mut("/cases/0/iss").unwrap() = 1.into();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, v.to_string()).unwrap();
    let o = synwall(&["cookie", "verify-vectors", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let o = synwall(&[
        "cookie",
        "verify-vectors",
        bad.to_str().unwrap(),
        "/nonexistent/file.json",
    ]);
    assert_eq!(o.status.code(), Some(2));
}

/// `encode` reproduces a vector case from its inputs, and `check` accepts the resulting ACK.
#[test]
fn encode_and_check_reproduce_a_vector_case() {
    let v = vector_json("synwall_v1.json");
    let case = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["family"] == 6
                && c["syn"]["ts"] == true
                && c["syn"]["mss"].is_u64()
                && c["syn"]["wscale"].is_u64()
        })
        .unwrap();
    let s = |k: &str| case[k].to_string().trim_matches('"').to_string();
    let client = format!("[{}]:{}", s("client"), s("client_port"));
    let service = format!("[{}]:{}", s("service"), s("service_port"));
    let syn = &case["syn"];
    let mut args = vec![
        "cookie".to_string(),
        "encode".into(),
        "--json".into(),
        "--client".into(),
        client.clone(),
        "--service".into(),
        service.clone(),
        "--isn".into(),
        s("client_isn"),
        "--secret".into(),
        s("master_hex"),
        "--time".into(),
        s("unix_time"),
        "--clock-ms".into(),
        s("clock_ms"),
        "--epoch-seconds".into(),
        s("period"),
        "--mss".into(),
        syn["mss"].to_string(),
        "--wscale".into(),
        syn["wscale"].to_string(),
        "--ts".into(),
    ];
    if syn["sack"] == true {
        args.push("--sack".into());
    }
    if syn["ece_cwr"] == true {
        args.push("--ece-cwr".into());
    }
    let o = synwall(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["cookie"], case["expect"]["cookie"]);
    assert_eq!(j["tsval"], case["expect"]["tsval"]);

    let check = |ack: u64, tsecr: &str| {
        let o = synwall(&[
            "cookie",
            "check",
            "--json",
            "--client",
            &client,
            "--service",
            &service,
            "--ack",
            &ack.to_string(),
            "--seq",
            &((case["client_isn"].as_u64().unwrap() + 1) % (1 << 32)).to_string(),
            "--tsecr",
            tsecr,
            "--secret",
            &s("master_hex"),
            "--time",
            &s("unix_time"),
            "--epoch-seconds",
            &s("period"),
        ]);
        (
            o.status.code(),
            serde_json::from_str::<serde_json::Value>(&text(&o).0).unwrap(),
        )
    };
    let ack = (case["expect"]["cookie"].as_u64().unwrap() + 1) % (1 << 32);
    let tsecr = case["expect"]["tsval"].to_string();
    let (code, j) = check(ack, &tsecr);
    assert_eq!(code, Some(0));
    assert_eq!(j["decoded"], case["checks"][0]["decoded"]);
    let (code, j) = check(ack ^ 4, &tsecr);
    assert_eq!(code, Some(1));
    assert_eq!(j["valid"], false);
}

#[test]
fn encode_linux_and_freebsd_match_their_vectors() {
    // linux: ISN cookie; the CLI's minute counter is unix_time / 60, so pick time = count * 60.
    let v = vector_json("linux_isn.json");
    let c = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["family"] == 4 && c["count"].as_u64().unwrap() < (1 << 32) / 2)
        .unwrap();
    let secret = format!(
        "{}{}",
        c["secret0_hex"].as_str().unwrap(),
        c["secret1_hex"].as_str().unwrap()
    );
    let o = synwall(&[
        "cookie",
        "encode",
        "--json",
        "--scheme",
        "linux",
        "--client",
        &format!("{}:{}", c["saddr"].as_str().unwrap(), c["sport"]),
        "--service",
        &format!("{}:{}", c["daddr"].as_str().unwrap(), c["dport"]),
        "--isn",
        &c["client_isn"].to_string(),
        "--mss",
        &c["mss_in"].to_string(),
        "--secret",
        &secret,
        "--time",
        &(c["count"].as_u64().unwrap() * 60).to_string(),
    ]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["cookie"], c["cookie"]);

    let v = vector_json("freebsd.json");
    let c = &v["cases"][3];
    let secret = format!(
        "{}{}",
        c["key0_hex"].as_str().unwrap(),
        c["key1_hex"].as_str().unwrap()
    );
    let fam6 = c["family"] == 6;
    let sa = |a: &str, p: &serde_json::Value| {
        if fam6 {
            format!("[{a}]:{p}")
        } else {
            format!("{a}:{p}")
        }
    };
    let mut args = vec![
        "cookie".to_string(),
        "encode".into(),
        "--json".into(),
        "--scheme".into(),
        "freebsd".into(),
        "--client".into(),
        sa(c["faddr"].as_str().unwrap(), &c["fport"]),
        "--service".into(),
        sa(c["laddr"].as_str().unwrap(), &c["lport"]),
        "--isn".into(),
        c["irs"].to_string(),
        "--secret".into(),
        secret,
        "--oddeven".into(),
        c["oddeven"].to_string(),
        "--secmod".into(),
        c["secmod"].to_string(),
    ];
    if c["peer_mss"].as_u64().unwrap() > 0 {
        args.extend(["--mss".into(), c["peer_mss"].to_string()]);
    }
    if c["wscale_requested"].is_u64() {
        args.extend(["--wscale".into(), c["wscale_requested"].to_string()]);
    }
    if c["sack_ok"] == true {
        args.push("--sack".into());
    }
    let o = synwall(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["cookie"], c["iss"]);
}

#[test]
fn bad_input_gets_a_clear_error_not_a_panic() {
    let secret = "00".repeat(32);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--client",
                "300.1.1.1:80",
                "--service",
                "10.0.0.1:80",
                "--secret",
                &secret,
            ],
            "--client \"300.1.1.1:80\" is not ADDRESS:PORT",
        ),
        (
            &[
                "--client",
                "10.0.0.1",
                "--service",
                "10.0.0.1:80",
                "--secret",
                &secret,
            ],
            "is not ADDRESS:PORT",
        ),
        (
            &[
                "--client",
                "10.0.0.1:1",
                "--service",
                "[::1]:80",
                "--secret",
                &secret,
            ],
            "same address family",
        ),
        (
            &[
                "--client",
                "10.0.0.1:1",
                "--service",
                "10.0.0.2:80",
                "--secret",
                "abcd",
            ],
            "found 4 bytes (4 hex characters)",
        ),
        (
            &[
                "--client",
                "10.0.0.1:1",
                "--service",
                "10.0.0.2:80",
                "--secret-file",
                "/nonexistent/secret",
            ],
            "cannot read secret file /nonexistent/secret",
        ),
        (
            &[
                "--client",
                "10.0.0.1:1",
                "--service",
                "10.0.0.2:80",
                "--secret",
                &secret,
                "--epoch-seconds",
                "0",
            ],
            "--epoch-seconds",
        ),
        (
            &["--client", "10.0.0.1:1", "--service", "10.0.0.2:80"],
            "--secret <SECRET>|--secret-file <SECRET_FILE>",
        ),
        (
            &[
                "--client",
                "10.0.0.1:1",
                "--service",
                "10.0.0.2:80",
                "--secret",
                &secret,
                "--time",
                "0xZZ",
            ],
            "is not a whole number from 0 to 18446744073709551615 (decimal, or hex with 0x)",
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["cookie", "encode", "--isn", "1"];
        args.extend_from_slice(extra);
        let o = synwall(&args);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {out}{err}");
        assert!(
            err.contains(want),
            "{args:?}: stderr {err:?} lacks {want:?}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(out.is_empty(), "{out}");
    }
}

#[test]
fn secret_file_with_trailing_newline_and_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let hexf = dir.path().join("hex");
    std::fs::write(&hexf, format!("{}\n", "ab".repeat(32))).unwrap();
    let raw = dir.path().join("raw");
    std::fs::write(&raw, [0xabu8; 32]).unwrap();
    let run = |f: &PathBuf| {
        let o = synwall(&[
            "cookie",
            "encode",
            "--json",
            "--client",
            "192.0.2.1:1000",
            "--service",
            "198.51.100.2:80",
            "--isn",
            "5",
            "--time",
            "1800000000",
            "--secret-file",
            f.to_str().unwrap(),
        ]);
        assert!(o.status.success(), "{}", text(&o).1);
        serde_json::from_str::<serde_json::Value>(&text(&o).0).unwrap()["cookie"].clone()
    };
    assert_eq!(run(&hexf), run(&raw));
}

#[test]
fn forge_test_prints_rate_and_bound() {
    let o = synwall(&["cookie", "forge-test", "--tries", "200000", "--json"]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["tries"], 200000);
    assert_eq!(j["bound_per_key_bits"], 24);
    assert_eq!(j["keys_tried"], 2);
    // 200k tries at 2^-23: expected 0.024 acceptances; more than 3 would mean a broken validator.
    assert!(j["accepted"].as_u64().unwrap() <= 3, "{out}");
    let o = synwall(&[
        "cookie",
        "forge-test",
        "--tries",
        "1000",
        "--timestamps",
        "--family",
        "6",
    ]);
    let (out, _) = text(&o);
    assert!(
        out.contains("synwall-v1 IPv6 with timestamps: 1000 forged ACKs"),
        "{out}"
    );
    assert!(out.contains("2^-31"), "{out}");
}

/// `encode --json` for a SYN with these extra flags; the parsed output.
fn encode_json(extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "cookie",
        "encode",
        "--json",
        "--client",
        "[2001:db8::7]:40000",
        "--service",
        "[2001:db8::1]:443",
        "--time",
        "1800000000",
        "--clock-ms",
        "5000",
    ];
    args.extend_from_slice(extra);
    let o = synwall(&args);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{args:?}: {err}");
    serde_json::from_str(&out).unwrap()
}

/// `check` with `args`: (exit code, parsed --json output).
fn check_json(args: &[String]) -> (Option<i32>, serde_json::Value) {
    let mut all: Vec<&str> = vec!["cookie", "check", "--json"];
    all.extend(args.iter().map(String::as_str));
    let o = synwall(&all);
    let (out, err) = text(&o);
    let j = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{all:?}: {e}: {out}{err}"));
    (o.status.code(), j)
}

/// `args` with the value after `flag` replaced (or the flag and its value removed for `None`).
fn with(args: &[String], flag: &str, value: Option<&str>) -> Vec<String> {
    let i = args.iter().position(|a| a == flag).expect(flag);
    let mut v = args.to_vec();
    match value {
        Some(x) => v[i + 1] = x.to_string(),
        None => {
            v.drain(i..i + 2);
        }
    }
    v
}

#[test]
fn encode_prints_check_arguments_that_validate_for_every_scheme() {
    let secret = "5a".repeat(32);
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, format!("{secret}\n")).unwrap();
    for scheme in ["synwall-v1", "linux", "freebsd"] {
        for key_args in [
            ["--secret", secret.as_str()],
            ["--secret-file", key.to_str().unwrap()],
        ] {
            let mut flags = vec![
                "--scheme", scheme, "--isn", "77", "--mss", "1400", "--wscale", "9", "--sack",
                "--ts", "--secmod", "3",
            ];
            flags.extend_from_slice(&key_args);
            let j = encode_json(&flags);
            let args: Vec<String> = serde_json::from_value(j["check_args"].clone()).unwrap();
            let (code, c) = check_json(&args);
            assert_eq!(code, Some(0), "{scheme}: {args:?}: {c}");
            assert_eq!(c["valid"], true);
            assert_eq!(c["decoded"], j["restores"], "{scheme}");
            // The text form is a command line a shell runs as printed (IPv6 brackets quoted).
            let mut text_args = vec!["cookie", "encode"];
            text_args.extend(flags.iter().copied());
            text_args.extend([
                "--client",
                "[2001:db8::7]:40000",
                "--service",
                "[2001:db8::1]:443",
                "--time",
                "1800000000",
                "--clock-ms",
                "5000",
            ]);
            let (out, _) = text(&synwall(&text_args));
            let line = out
                .lines()
                .find_map(|l| l.strip_prefix("check     synwall "))
                .unwrap_or_else(|| panic!("{out}"));
            let o = Command::new("sh")
                .arg("-c")
                .arg(format!("'{}' {line}", synwall_testkit::synwall().display()))
                .output()
                .unwrap();
            let (out, err) = text(&o);
            assert_eq!(o.status.code(), Some(0), "{line}: {out}{err}");
            assert!(out.starts_with("valid: "), "{out}");
        }
    }
}

#[test]
fn check_says_why_an_ack_is_invalid() {
    let secret = "3c".repeat(32);
    let key = ["--secret", secret.as_str()];
    // synwall-v1 with timestamps: the epochs tried, then each reason.
    let j = encode_json(&[&["--isn", "1000", "--ts", "--sack"][..], &key].concat());
    let args: Vec<String> = serde_json::from_value(j["check_args"].clone()).unwrap();
    let e = 1_800_000_000u64 / 60;
    let (code, c) = check_json(&args);
    assert_eq!(code, Some(0), "{c}");
    assert_eq!(c["tried"]["epochs"], serde_json::json!([e, e - 1]));
    assert!(c["reason"].is_null());
    let tsecr = j["tsval"].as_u64().unwrap();
    let cases: Vec<(Vec<String>, &str, &str)> = vec![
        (with(&args, "--tsecr", None), "tsecr_missing", "add --tsecr"),
        (
            with(&args, "--tsecr", Some(&(tsecr ^ 1).to_string())),
            "tsecr_mismatch",
            "--tsecr does not",
        ),
        (
            with(&args, "--time", Some("1800000600")),
            "other_epoch",
            "expired: the cookie was issued in epoch 30000000 (unix time 1800000000 to \
              1800000059), 10 epochs before the current one",
        ),
        (
            with(&args, "--time", Some("1799999999")),
            "other_epoch",
            "1 after the current one",
        ),
        (
            with(
                &args,
                "--ack",
                Some(&(j["ack"].as_u64().unwrap() ^ 0x100).to_string()),
            ),
            "mac_mismatch",
            "MAC mismatch: no salt from epoch",
        ),
        (
            with(&args, "--seq", Some("5")),
            "mac_mismatch",
            "--seq (client ISN + 1)",
        ),
    ];
    for (a, code, words) in &cases {
        let (exit, c) = check_json(a);
        assert_eq!(exit, Some(1), "{a:?}: {c}");
        assert_eq!(c["valid"], false);
        assert_eq!(c["reason"], *code, "{a:?}: {c}");
        let why = c["explanation"].as_str().unwrap();
        assert!(why.contains(words), "{a:?}: {why}");
        // The text form says the same, and which epochs were tried.
        let mut t: Vec<&str> = vec!["cookie", "check"];
        t.extend(a.iter().map(String::as_str));
        let (out, _) = text(&synwall(&t));
        assert!(
            out.starts_with(&format!("invalid: {why} (tried the salts of epochs ")),
            "{out}"
        );
    }
    // A cookie issued without timestamps, checked with a TSecr.
    let j = encode_json(&[&["--isn", "1000"][..], &key].concat());
    let args: Vec<String> = serde_json::from_value(j["check_args"].clone()).unwrap();
    let mut a = args.clone();
    a.extend(["--tsecr".into(), "12345".into()]);
    let (exit, c) = check_json(&a);
    assert_eq!(
        (exit, c["reason"].as_str()),
        (Some(1), Some("tsecr_unexpected")),
        "{c}"
    );

    // Linux: an expired cookie says when it was issued.
    let j = encode_json(&[&["--isn", "1000", "--scheme", "linux"][..], &key].concat());
    let args: Vec<String> = serde_json::from_value(j["check_args"].clone()).unwrap();
    let (exit, c) = check_json(&with(&args, "--time", Some("1800000300")));
    assert_eq!(exit, Some(1));
    assert_eq!(c["reason"], "expired", "{c}");
    assert!(
        c["explanation"]
            .as_str()
            .unwrap()
            .contains("issued at minute counter 30000000, 5 minutes before now"),
        "{c}"
    );
}

#[test]
fn numbers_encode_prints_in_hex_are_accepted_in_hex() {
    let secret = "11".repeat(32);
    let base = ["--secret", secret.as_str(), "--ts"];
    let dec = encode_json(&[&["--isn", "16"][..], &base].concat());
    let hex = encode_json(&[&["--isn", "0x10"][..], &base].concat());
    assert_eq!(dec["cookie"], hex["cookie"]);
    // check takes the cookie + 1 and the TSval in hex, as encode printed them.
    let args: Vec<String> = serde_json::from_value(dec["check_args"].clone()).unwrap();
    let ack = format!("0x{:08x}", dec["ack"].as_u64().unwrap());
    let tsecr = format!("0X{:X}", dec["tsval"].as_u64().unwrap());
    let a = with(&with(&args, "--ack", Some(&ack)), "--tsecr", Some(&tsecr));
    let (code, c) = check_json(&with(&a, "--seq", Some("0x11")));
    assert_eq!(code, Some(0), "{c}");
}

#[test]
fn a_window_scale_above_14_is_encoded_as_14_and_said_so() {
    let secret = "22".repeat(32);
    let base = ["--secret", secret.as_str(), "--isn", "9"];
    let big = encode_json(&[&["--wscale", "255"][..], &base].concat());
    let max = encode_json(&[&["--wscale", "14"][..], &base].concat());
    assert_eq!(big["cookie"], max["cookie"]);
    assert_eq!(big["restores"]["snd_wscale"], 14);
    assert!(big["notes"][0]
        .as_str()
        .unwrap()
        .contains("--wscale 255 is above 14: encoded as 14"));
    assert_eq!(max["notes"], serde_json::json!([]));
}
