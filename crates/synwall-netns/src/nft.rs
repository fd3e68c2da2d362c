//! nftables inside a namespace: load a ruleset, read a named counter. (Debian package
//! `nftables`; `scripts/setup.sh` installs it.)

use crate::Netns;
use anyhow::{Context, Result};
use std::io::Write;
use std::process::Stdio;

/// Load `ruleset` (nft syntax) into `ns`.
pub fn load(ns: &Netns, ruleset: &str) -> Result<()> {
    let mut child = ns
        .command("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot run nft (install the nftables package)")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(ruleset.as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "[{}] nft -f: {}",
        ns.name(),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

/// The packet count of named counter `name` in `table` (family `inet`).
pub fn counter(ns: &Netns, table: &str, name: &str) -> Result<u64> {
    let out = ns.run(&["nft", "list", "counter", "inet", table, name])?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "packets" {
            return words
                .next()
                .context("no count after `packets`")?
                .parse()
                .with_context(|| format!("bad counter output {text:?}"));
        }
    }
    anyhow::bail!("no `packets` in {text:?}")
}
