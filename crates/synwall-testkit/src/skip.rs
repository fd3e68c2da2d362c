//! The skip policy of privileged tests (BPF, network namespaces): a test that cannot get what it
//! needs is skipped with the reason on stderr outside CI, and fails when `CI=true` (CI runs as
//! root: there a missing privilege is a broken machine, never a reason to pass).

use std::fmt::Display;
use std::process::Command;

/// Is this a CI run (`CI=true`)?
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The one decision: `what` cannot run because of `why`. Panics in CI, else prints the reason.
pub fn skip_or_fail(what: &str, why: &dyn Display) {
    if in_ci() {
        panic!("{what}: privileged test cannot run in CI (CI=true): {why}");
    }
    // Straight to stderr: the test harness would swallow eprintln! of a passing test.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {what}: {why} (privileged test: it needs root, network namespaces and Linux >= 6.9 \
         with BTF; it runs in CI)"
    );
}

/// `Some(value)`, or `None` after [`skip_or_fail`] with the error (for a BPF load, a namespace).
pub fn or_skip<T, E: Display>(what: &str, r: Result<T, E>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            skip_or_fail(what, &e);
            None
        }
    }
}

/// Can this process make network namespaces (root, a working `ip netns`)? If not,
/// [`skip_or_fail`] and `false`.
pub fn require_privileges(test: &str) -> bool {
    let why = if !nix::unistd::Uid::effective().is_root() {
        Some("not root".to_string())
    } else {
        match Command::new("ip").args(["netns", "list"]).output() {
            Ok(o) if o.status.success() => None,
            Ok(o) => Some(format!(
                "`ip netns` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Some(format!("cannot run `ip`: {e}")),
        }
    };
    match why {
        None => true,
        Some(why) => {
            skip_or_fail(test, &why);
            false
        }
    }
}
