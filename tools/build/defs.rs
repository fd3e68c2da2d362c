//! The X-macro lists of `bpf/lib/*.def`, read by the build scripts of the Rust crates that hold
//! the same definitions as the BPF C (`#[path]`-included: synwall-wire, synwall-cookie,
//! synwall-engine, synwall-bpf). One reader, so a list means the same to every crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The arguments of every `MACRO(...)` line of `file` (string arguments without their quotes),
/// with the line number. Asks cargo to rerun the build script when the file changes.
pub fn rows(file: &Path, macro_name: &str) -> Vec<(usize, Vec<String>)> {
    println!("cargo:rerun-if-changed={}", file.display());
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let prefix = format!("{macro_name}(");
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let Some(rest) = line.trim().strip_prefix(&prefix) else {
            continue;
        };
        let where_ = format!("{}:{}", file.display(), n + 1);
        let body = rest
            .strip_suffix(')')
            .unwrap_or_else(|| panic!("{where_}: missing ')'"));
        // Split on the commas outside string literals.
        let (mut args, mut cur, mut quoted) = (Vec::new(), String::new(), false);
        for c in body.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => args.push(std::mem::take(&mut cur).trim().to_string()),
                c => cur.push(c),
            }
        }
        assert!(!quoted, "{where_}: unterminated string");
        args.push(cur.trim().to_string());
        out.push((n + 1, args));
    }
    assert!(
        !out.is_empty(),
        "{} has no {macro_name} lines",
        file.display()
    );
    out
}

/// `bpf/lib/<name>`, from a crate directory.
pub fn def_file(name: &str) -> PathBuf {
    PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"))
        .join("../../bpf/lib")
        .join(name)
}

/// Write the constants of `constants.def` that belong to `krate` (the first segment of their
/// Rust path: `wire`, `cookie`, `engine`, `bpf`) into `OUT_DIR/constants_<module>.rs`, one file
/// per module (`tcp::opt` -> `constants_tcp_opt.rs`), for the module to `include!`.
pub fn constants(krate: &str) {
    let def = def_file("constants.def");
    let mut files: std::collections::BTreeMap<String, String> = Default::default();
    for (line, args) in rows(&def, "SW_CONST") {
        let [c_name, value, path, ty, doc] = args.as_slice() else {
            panic!("constants.def:{line}: want SW_CONST(NAME, value, crate::module::NAME, type, \"doc\")")
        };
        let numeric = match value.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).is_ok(),
            None => value.parse::<u64>().is_ok(),
        };
        assert!(
            numeric,
            "constants.def:{line}: {value} is not an integer literal"
        );
        let segs: Vec<&str> = path.split("::").collect();
        let [krate_of, module @ .., name] = segs.as_slice() else {
            panic!("constants.def:{line}: bad Rust path {path}")
        };
        if *krate_of != krate || module.is_empty() {
            continue;
        }
        let f = files.entry(module.join("_")).or_default();
        writeln!(f, "/// {doc} (`SW_{c_name}`, `bpf/lib/constants.def`).").unwrap();
        writeln!(f, "pub const {name}: {ty} = {value};").unwrap();
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    for (module, text) in files {
        std::fs::write(out.join(format!("constants_{module}.rs")), text).unwrap();
    }
}
