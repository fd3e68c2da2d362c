//! The shipped vectors (`../shared/vectors/`) pass; files of the same schema made by the
//! independent Python model (`tools/vectors/gen_vectors.py`) with other seeds and sizes pass; and a
//! file with one tampered output fails with a diff that names the field.

use std::path::{Path, PathBuf};
use std::process::Command;
use synwall_vectors::{check_text, Scheme};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn shared_vectors() -> PathBuf {
    let dir = repo_root().join("../shared/vectors");
    assert!(
        dir.is_dir(),
        "{} is missing: the vectors live in shared/ beside the repo",
        dir.display()
    );
    dir
}

const FILES: [(&str, Scheme); 4] = [
    ("synwall_v1.json", Scheme::SynwallV1),
    ("linux_isn.json", Scheme::LinuxIsn),
    ("linux_ts.json", Scheme::LinuxTs),
    ("freebsd.json", Scheme::FreeBsd),
];

#[test]
fn shipped_vectors_pass() {
    for (name, scheme) in FILES {
        let text = std::fs::read_to_string(shared_vectors().join(name)).unwrap();
        let r = check_text(&text).unwrap();
        assert_eq!(r.scheme, scheme);
        assert_eq!(
            r.failed,
            0,
            "{name}: {:#?}",
            &r.failures[..r.failures.len().min(3)]
        );
        assert!(r.passed >= 200, "{name}: only {} items", r.passed);
    }
}

#[test]
fn fresh_vectors_from_the_independent_model_pass() {
    let tmp = std::env::temp_dir().join(format!("synwall-vectors-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let gen = repo_root().join("tools/vectors/gen_vectors.py");
    for (scheme, cases, seed) in [
        ("synwall-v1", 120, 11),
        ("linux-isn", 80, 12),
        ("linux-ts", 60, 13),
        ("freebsd", 90, 14),
    ] {
        let out = tmp.join(format!("{scheme}.json"));
        let st = Command::new("python3")
            .arg(&gen)
            .args([
                "--scheme",
                scheme,
                "--seed",
                &seed.to_string(),
                "--cases",
                &cases.to_string(),
                "--out",
            ])
            .arg(&out)
            .status()
            .expect("python3 runs the vector generator");
        assert!(st.success(), "generator failed for {scheme}");
        let r = check_text(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(
            r.failed,
            0,
            "{scheme}: {:#?}",
            &r.failures[..r.failures.len().min(3)]
        );
        assert!(r.passed >= cases, "{scheme}: {} items", r.passed);
    }
    std::fs::remove_dir_all(&tmp).ok();
}

/// Change one value at a JSON pointer, re-check, and expect exactly that field to be reported.
fn tamper(name: &str, pointer: &str, field: &str) {
    let text = std::fs::read_to_string(shared_vectors().join(name)).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let slot = v
        .pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{name}{pointer}"));
    *slot = match slot.take() {
        serde_json::Value::Number(n) => (n.as_u64().unwrap() ^ 1).into(),
        serde_json::Value::Bool(b) => (!b).into(),
        serde_json::Value::String(s) => {
            let mut b = s.into_bytes();
            b[0] = if b[0] == b'0' { b'1' } else { b'0' };
            String::from_utf8(b).unwrap().into()
        }
        serde_json::Value::Null => {
            serde_json::json!({"mss": 1, "wscale_ok": false, "snd_wscale": 0, "sack_ok": false, "tstamp_ok": false, "ecn_ok": false})
        }
        other => panic!("cannot tamper with {other}"),
    };
    let r = check_text(&v.to_string()).unwrap();
    assert_eq!(r.failed, 1, "{name}{pointer}: {:#?}", r.failures);
    assert_eq!(r.failures[0].field, field, "{name}{pointer}");
}

#[test]
fn tampered_vectors_fail_naming_the_field() {
    tamper("synwall_v1.json", "/cases/3/expect/cookie", "cookie");
    tamper("synwall_v1.json", "/cases/3/expect/salt_hex", "salt_hex");
    tamper("synwall_v1.json", "/cases/5/expect/tsval", "tsval");
    tamper("synwall_v1.json", "/cases/7/checks/2/decoded", "decoded");
    tamper("linux_isn.json", "/cases/4/cookie", "cookie");
    tamper("linux_isn.json", "/cases/4/checks/1/mss", "mss");
    tamper("linux_ts.json", "/encode/9/tsval", "tsval");
    tamper("linux_ts.json", "/decode/9/ok", "decode.ok");
    tamper("freebsd.json", "/cases/6/iss", "iss");
    tamper("freebsd.json", "/cases/6/mac_input_hex", "mac_input_hex");
    tamper("freebsd.json", "/cases/250/valid", "valid");
}

#[test]
fn unknown_and_malformed_files_are_errors() {
    assert!(check_text("not json").is_err());
    assert!(check_text(r#"{"cases": []}"#).is_err());
    let err =
        check_text(r#"{"scheme": "synwall-v1", "cases": [{"master_hex": "00"}]}"#).unwrap_err();
    assert!(err.to_string().contains("synwall-v1"), "{err}");
}

/// A mismatch reads as plain words: the differing field of a restored record by name with plain
/// values, a validity mismatch with the record spelled out; never Rust's debug form.
#[test]
fn mismatches_are_reported_field_by_field_in_plain_words() {
    let text = std::fs::read_to_string(shared_vectors().join("synwall_v1.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = v["cases"].as_array().unwrap();
    let (ci, ki) = cases
        .iter()
        .enumerate()
        .find_map(|(ci, c)| {
            let k = c["checks"]
                .as_array()?
                .iter()
                .position(|k| k["decoded"].is_object() && k["tsecr"].is_u64())?;
            Some((ci, k))
        })
        .expect("a valid check with a TSecr");
    let mut t = v.clone();
    let mss = t["cases"][ci]["checks"][ki]["decoded"]["mss"]
        .as_u64()
        .unwrap();
    t["cases"][ci]["checks"][ki]["decoded"]["mss"] = (mss + 1).into();
    let r = check_text(&t.to_string()).unwrap();
    assert_eq!(r.failures.len(), 1, "{:#?}", r.failures);
    let f = &r.failures[0];
    assert_eq!(f.field, "decoded.mss");
    assert_eq!(
        (f.expected.as_str(), f.got.clone()),
        (&*(mss + 1).to_string(), mss.to_string())
    );
    let shown = f.to_string();
    assert!(
        shown.contains(&format!("tsecr={}", v["cases"][ci]["checks"][ki]["tsecr"])),
        "{shown}"
    );

    // Expected valid, got invalid: the record spelled out against "invalid".
    let mut t = v.clone();
    let ack = t["cases"][ci]["checks"][ki]["ack"].as_u64().unwrap();
    t["cases"][ci]["checks"][ki]["ack"] = (ack ^ 0x10).into();
    let r = check_text(&t.to_string()).unwrap();
    let f = &r.failures[0];
    assert_eq!(f.field, "decoded");
    assert!(
        f.expected
            .starts_with(&format!("valid: mss {mss}, wscale_ok ")),
        "{f}"
    );
    assert_eq!(f.got, "invalid (nothing restored)");
    for f in &r.failures {
        for debug in ["Some(", "None", "DecodedOut", "{"] {
            assert!(!f.to_string().contains(debug), "{f}");
        }
    }
}
