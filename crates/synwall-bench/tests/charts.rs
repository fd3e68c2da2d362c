//! The benchmark charts in docs/bench: each committed `<name>.svg` is exactly what its
//! `<name>.json` draws (so a picture never drifts from its data), rsvg-convert renders it (the
//! SVG is well-formed and complete), and its words and numbers come from the data: change a
//! value, a name or a defence in the JSON and the picture changes with it.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use synwall_bench::report::Report;

fn bench_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/bench")
}

const NAMES: [&str; 6] = [
    "per_packet",
    "host_flood",
    "flood",
    "legit",
    "quality",
    "scale",
];

fn load(name: &str) -> Report {
    Report::load(&bench_dir().join(format!("{name}.json"))).unwrap()
}

fn draw(r: &Report, dir: &Path) -> String {
    r.write_svg(dir).unwrap();
    std::fs::read_to_string(dir.join(format!("{}.svg", r.name))).unwrap()
}

/// Render with rsvg-convert (as the docs are checked by eye): it refuses malformed XML.
fn rsvg(svg: &Path) {
    let out = Command::new("rsvg-convert")
        .args(["-w", "1000"])
        .arg(svg)
        .output()
        .unwrap_or_else(|e| {
            panic!("rsvg-convert (librsvg2-bin: scripts/setup.sh installs it): {e}")
        });
    assert!(
        out.status.success(),
        "rsvg-convert {}: {}",
        svg.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.starts_with(b"\x89PNG") && out.stdout.len() > 10_000);
}

/// The text elements of an SVG, unescaped.
fn texts(svg: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = svg;
    while let Some(i) = rest.find("<text") {
        rest = &rest[i..];
        let Some(open) = rest.find('>') else { break };
        let Some(close) = rest.find("</text>") else {
            break;
        };
        out.push(
            rest[open + 1..close]
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&amp;", "&"),
        );
        rest = &rest[close..];
    }
    out
}

fn has(svg: &str, want: &str) -> bool {
    texts(svg).iter().any(|t| t.contains(want))
}

#[test]
fn committed_charts_are_drawn_from_their_data_and_render() {
    let tmp = tempfile::tempdir().unwrap();
    for name in NAMES {
        let r = load(name);
        let committed = bench_dir().join(format!("{name}.svg"));
        let fresh = draw(&r, tmp.path());
        assert!(
            fresh == std::fs::read_to_string(&committed).unwrap(),
            "docs/bench/{name}.svg is not what {name}.json draws: run `target/release/synwall-lab report`"
        );
        rsvg(&committed);
        // The footer names the command and the machine the data came from.
        assert!(has(&fresh, &r.command), "{name}: no command in the footer");
        assert!(has(&fresh, "Machine: "), "{name}: no machine in the footer");
        let m = r
            .machine
            .as_ref()
            .expect("every stored result names its machine");
        assert!(has(&fresh, &m.describe()), "{name}: {}", m.describe());
        assert!(texts(&fresh).len() > 20, "{name}: hardly any text");
    }
}

/// (report, JSON pointer into the report, new value, text the chart must then show).
type Change = (&'static str, &'static str, Value, &'static str);

fn changes() -> Vec<Change> {
    vec![
        // A program's time, and the stage names.
        ("per_packet", "/data/rows/0/ns", json!(777.0), "777"),
        (
            "per_packet",
            "/data/edge_stages/0/path",
            json!("a stage named by the data"),
            "a stage named by the data",
        ),
        // The measured rate, the headline ratio, and who the defence is.
        (
            "flood",
            "/data/0/rates/synack_pps",
            json!(1234567.0),
            "1.23M",
        ),
        ("flood", "/data/2/defense", json!("NoCookies"), "no cookies"),
        // A flooded run's completion.
        ("legit", "/data/1/conns/tried", json!(4000), "25.0%"),
        ("legit", "/data/5/defense", json!("NoCookies"), "no cookies"),
        // The options a server socket got.
        (
            "quality",
            "/data/matrix/1/server/mss",
            json!(1234),
            "MSS 1234",
        ),
        (
            "quality",
            "/data/bulk/0/bytes_per_s",
            json!(4.2e6),
            "4.2 MB/s",
        ),
        (
            "scale",
            "/data/cores_per_100g",
            json!(777.0),
            "= 777 cores per 100 GbE",
        ),
        (
            "scale",
            "/data/two_edges/rates/synack_pps",
            json!(4.2e5),
            "420k",
        ),
    ]
}

#[test]
fn labels_come_from_the_data() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, ptr, value, want) in changes() {
        let r = load(name);
        let before = draw(&r, tmp.path());
        assert!(
            !has(&before, want),
            "{name}: {want:?} is there before the change"
        );
        let mut v = serde_json::to_value(&r).unwrap();
        *v.pointer_mut(ptr)
            .unwrap_or_else(|| panic!("{name}: no {ptr} in the data")) = value.clone();
        if ptr == "/data/1/conns/tried" {
            // 1000 of the 4000 tried.
            v["data"][1]["conns"]["completed"] = json!(1000);
        }
        let changed: Report = serde_json::from_value(v).unwrap();
        let after = draw(&changed, tmp.path());
        assert!(
            has(&after, want),
            "{name}: {ptr} = {value} does not show {want:?}: {:?}",
            texts(&after)
        );
        rsvg(&tmp.path().join(format!("{name}.svg")));
    }
    // A defence that is no longer in the data is no longer in the picture.
    let r = load("flood");
    let mut v = serde_json::to_value(&r).unwrap();
    v["data"][2]["defense"] = json!("NoCookies");
    let after = draw(&serde_json::from_value(v).unwrap(), tmp.path());
    assert!(has(&draw(&r, tmp.path()), "iptables SYNPROXY"));
    assert!(!has(&after, "iptables SYNPROXY"), "{:?}", texts(&after));
}
