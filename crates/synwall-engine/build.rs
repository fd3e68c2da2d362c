//! Generate the counter enum from `bpf/lib/counters.def`, the one list the BPF C also includes.

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    let def = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap())
        .join("../../bpf/lib/counters.def");
    println!("cargo:rerun-if-changed={}", def.display());
    let text = std::fs::read_to_string(&def).unwrap_or_else(|e| panic!("{}: {e}", def.display()));
    let mut rows = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix("SW_COUNTER(") else {
            continue;
        };
        let rest = rest
            .strip_suffix(')')
            .unwrap_or_else(|| panic!("counters.def:{}: missing ')'", n + 1));
        let (ident, rest) = rest
            .split_once(',')
            .unwrap_or_else(|| panic!("counters.def:{}: bad line", n + 1));
        let mut quoted = rest.split('"').skip(1).step_by(2);
        let name = quoted
            .next()
            .unwrap_or_else(|| panic!("counters.def:{}: no name", n + 1));
        let help = quoted
            .next()
            .unwrap_or_else(|| panic!("counters.def:{}: no help", n + 1));
        rows.push((ident.trim().to_string(), name.to_string(), help.to_string()));
    }
    assert!(!rows.is_empty(), "counters.def has no SW_COUNTER lines");
    let camel = |s: &str| {
        s.split('_')
            .map(|w| {
                let w = w.to_ascii_lowercase();
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<String>()
    };
    let mut out = String::new();
    writeln!(
        out,
        "/// Every per-CPU counter, in `counters.def` order (the index is the BPF array slot)."
    )
    .unwrap();
    writeln!(
        out,
        "#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]"
    )
    .unwrap();
    writeln!(out, "#[repr(u32)]").unwrap();
    writeln!(out, "pub enum Counter {{").unwrap();
    for (i, (ident, _, help)) in rows.iter().enumerate() {
        writeln!(out, "    /// {help} (`SW_{ident}`).").unwrap();
        writeln!(out, "    {} = {i},", camel(ident)).unwrap();
    }
    writeln!(out, "}}").unwrap();
    writeln!(out, "impl Counter {{").unwrap();
    writeln!(out, "    /// Number of counters.").unwrap();
    writeln!(out, "    pub const COUNT: usize = {};", rows.len()).unwrap();
    writeln!(out, "    /// All counters in index order.").unwrap();
    write!(out, "    pub const ALL: [Counter; {}] = [", rows.len()).unwrap();
    for (ident, _, _) in &rows {
        write!(out, "Counter::{}, ", camel(ident)).unwrap();
    }
    writeln!(out, "];").unwrap();
    writeln!(out, "    /// The stable metric name.").unwrap();
    writeln!(
        out,
        "    pub const fn name(self) -> &'static str {{ match self {{"
    )
    .unwrap();
    for (ident, name, _) in &rows {
        writeln!(out, "        Counter::{} => {name:?},", camel(ident)).unwrap();
    }
    writeln!(out, "    }} }}").unwrap();
    writeln!(out, "    /// What the counter counts.").unwrap();
    writeln!(
        out,
        "    pub const fn help(self) -> &'static str {{ match self {{"
    )
    .unwrap();
    for (ident, _, help) in &rows {
        writeln!(out, "        Counter::{} => {help:?},", camel(ident)).unwrap();
    }
    writeln!(out, "    }} }}").unwrap();
    writeln!(out, "}}").unwrap();
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("counters_gen.rs");
    std::fs::write(dest, out).unwrap();
}
