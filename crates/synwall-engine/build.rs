//! Generate the counter enum from `bpf/lib/counters.def` and this crate's constants from
//! `bpf/lib/constants.def`, the lists the BPF C also includes.

#[path = "../../tools/build/defs.rs"]
mod defs;

use std::fmt::Write as _;
use std::path::PathBuf;

fn main() {
    defs::constants("engine");
    let mut rows = Vec::new();
    for (line, args) in defs::rows(&defs::def_file("counters.def"), "SW_COUNTER") {
        let [ident, name, help] = args.as_slice() else {
            panic!("counters.def:{line}: want SW_COUNTER(IDENT, \"name\", \"help\")")
        };
        rows.push((ident.clone(), name.clone(), help.clone()));
    }
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
