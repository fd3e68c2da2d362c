//! The workspace's binaries, for the tests that run them. A crate's own integration tests get
//! their binary built by cargo; for another crate's binary (the lab drives `synwall`), a missing
//! one is built here.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The `synwall` binary (or `$SYNWALL_BIN`).
pub fn synwall() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find("synwall", "synwall", "SYNWALL_BIN"))
}

/// The `synwall-lab` binary (or `$SYNWALL_LAB_BIN`).
pub fn synwall_lab() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| find("synwall-bench", "synwall-lab", "SYNWALL_LAB_BIN"))
}

/// Binary `bin` of package `package` in this test's target directory (test executables run from
/// `target/<profile>/deps`), built with cargo if it is missing; `$env` overrides.
fn find(package: &str, bin: &str, env: &str) -> PathBuf {
    if let Ok(p) = std::env::var(env) {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("this test's executable");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let path = dir.join(bin);
    if !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut c = std::process::Command::new(cargo);
        c.args(["build", "-p", package, "--bin", bin]);
        if dir.file_name().is_some_and(|n| n == "release") {
            c.arg("--release");
        }
        let ok = c.status().is_ok_and(|s| s.success());
        assert!(ok, "cargo build -p {package} --bin {bin}");
    }
    path
}
