//! Which counters each BPF program can increment, read from the programs themselves: a counter
//! belongs to a program when its `SW_<IDENT>` appears in the program's source or in a `lib/`
//! header it includes (comments stripped). `synwall status` lists each program's own counters
//! from this, so a counter moved from one program to another needs no list edited by hand.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let bpf = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../bpf");
    let def = bpf.join("lib/counters.def");
    println!("cargo:rerun-if-changed={}", def.display());
    let text = std::fs::read_to_string(&def).unwrap_or_else(|e| panic!("{}: {e}", def.display()));
    // SW_COUNTER(IDENT, "metric_name", "help")
    let counters: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("SW_COUNTER("))
        .map(|rest| {
            let (ident, rest) = rest
                .split_once(',')
                .expect("counters.def: IDENT, name, help");
            let name = rest.split('"').nth(1).expect("counters.def: quoted name");
            (ident.trim().to_string(), name.to_string())
        })
        .collect();
    assert!(!counters.is_empty(), "counters.def has no SW_COUNTER lines");

    let mut out = String::new();
    for (konst, program) in [
        ("EDGE_COUNTERS", "edge.bpf.c"),
        ("BACKEND_COUNTERS", "backend.bpf.c"),
    ] {
        let mut files = BTreeSet::new();
        sources(&bpf.join(program), &mut files);
        let code: String = files
            .iter()
            .map(|f| {
                println!("cargo:rerun-if-changed={}", f.display());
                strip_comments(&std::fs::read_to_string(f).unwrap())
            })
            .collect::<Vec<_>>()
            .join("\n");
        let idents = tokens(&code);
        let names: Vec<&str> = counters
            .iter()
            .filter(|(ident, _)| idents.contains(&format!("SW_{ident}")))
            .map(|(_, name)| name.as_str())
            .collect();
        assert!(!names.is_empty(), "{program} increments no counter?");
        writeln!(
            out,
            "/// The counters `bpf/{program}` can increment (metric names, `counters.def` order)."
        )
        .unwrap();
        writeln!(out, "pub const {konst}: &[&str] = &{names:?};").unwrap();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("program_counters.rs");
    std::fs::write(dest, out).unwrap();
}

/// `file` and every `#include "..."` it pulls in, transitively (system headers are not ours).
fn sources(file: &Path, seen: &mut BTreeSet<PathBuf>) {
    if !seen.insert(file.to_path_buf()) {
        return;
    }
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    for line in strip_comments(&text).lines() {
        let Some(rest) = line.trim().strip_prefix("#include") else {
            continue;
        };
        if let Some(name) = rest
            .trim()
            .strip_prefix('"')
            .and_then(|r| r.split('"').next())
        {
            sources(&file.parent().unwrap().join(name), seen);
        }
    }
}

/// C source without `/* */` and `//` comments (string literals in the BPF code hold no `/*`).
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(i) = rest.find('/') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(t) = tail.strip_prefix("/*") {
            rest = t.find("*/").map_or("", |j| &t[j + 2..]);
            out.push(' ');
        } else if let Some(t) = tail.strip_prefix("//") {
            rest = t.find('\n').map_or("", |j| &t[j..]);
        } else {
            out.push('/');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Every identifier of the code.
fn tokens(code: &str) -> BTreeSet<String> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}
