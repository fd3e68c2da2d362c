//! What synwall's tests share, in one place; a dev-dependency only (nothing that ships links it).
//!
//! - [`frame`]: the frame builder (the one `synwall-netns` holds for the lab's floods,
//!   re-exported) and what tests do with frames afterwards (find the headers, fix checksums after
//!   an edit, read a TSval, the handshake ACK a cookie asks for).
//! - [`random`]: the seeded random frame generator (every kind of frame the programs may meet) and
//!   every SYN size.
//! - [`deploy`]: the deployment the tests run against: addresses, protected services, MACs,
//!   master secret and epoch, secret files.
//! - [`clock`]: the clock the programs under test run on (the epochs moved with the clock rule's
//!   TAI offset), the salts a node holds then, the reference engine's clock for a frame.
//! - [`skip`]: the one skip policy of privileged tests: outside CI a test that cannot get its
//!   privileges is skipped with the reason printed; with `CI=true` it fails.
//! - [`bin`]: the workspace's binaries (`synwall`, `synwall-lab`) for tests that run them.
//! - the network-namespace helpers, re-exported from `synwall-netns`: [`Netns`], [`veth`],
//!   [`topo`] (client | edge | backend), [`tcp`] (clients and servers), [`load`], [`nft`],
//!   [`Daemon`], [`RawSender`] and [`Capture`].

pub mod bin;
pub mod clock;
pub mod deploy;
pub mod frame;
pub mod random;
pub mod skip;

pub use bin::{synwall, synwall_lab};
pub use skip::{in_ci, or_skip, require_privileges};
pub use synwall_netns::packet::{Capture, Captured, RawSender};
pub use synwall_netns::{daemon, nft, sh, tcp, topo, unique_prefix, veth};

/// Client loads ([`synwall_netns::load`], re-exported) and the check the tests make of one.
pub mod load {
    pub use synwall_netns::load::*;

    /// `r` had no failed connection and at least `min_ok` completed; what it measured is printed
    /// either way.
    pub fn no_failures(r: &LoadReport, min_ok: u64) -> anyhow::Result<()> {
        eprintln!(
            "load: {} connections ok, {} failed, slowest {:?}, over {:?}; slow ones (start s, \
             took): {:?}",
            r.ok,
            r.failed.len(),
            r.slowest,
            r.elapsed,
            r.slow
        );
        anyhow::ensure!(r.failed.is_empty(), "failed connections: {:?}", r.failed);
        anyhow::ensure!(r.ok >= min_ok, "only {} connections completed", r.ok);
        Ok(())
    }
}
pub use synwall_netns::{Counts, Daemon, Netns};

/// One interface of the calling thread's namespace, raw: frames sent with `AF_PACKET`, and
/// frames seen as the kernel hands them to its stack (a VLAN tag it moved into the skb's metadata
/// is not in them). For tests that already run inside their namespace.
pub struct Raw {
    tx: RawSender,
    cap: Capture,
}

impl Raw {
    /// Open on `dev` (panics if there is none).
    pub fn open(dev: &str) -> Raw {
        Raw {
            tx: RawSender::open(dev).expect("AF_PACKET sender"),
            cap: Capture::open_untagged(dev).expect("AF_PACKET capture"),
        }
    }

    /// Send one frame.
    pub fn send(&self, frame: &[u8]) {
        self.tx.send(frame).expect("send a raw frame");
    }

    /// The next frame sent or received that `want` accepts, within `limit`.
    pub fn recv_matching(
        &self,
        limit: std::time::Duration,
        want: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        self.cap.recv_matching(limit, want).expect("capture")
    }
}

/// Run `ip` with `args` in the calling thread's network namespace (a test that entered its own
/// with `unshare`); its stdout, or what it said on stderr.
pub fn ip(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Join `a:a_if` and `b:b_if` with a veth pair as `ip link add` makes it: TX checksum offload
/// on, links down (unlike [`veth`], which readies a pair for XDP).
pub fn veth_as_made(a: &Netns, a_if: &str, b: &Netns, b_if: &str) -> anyhow::Result<()> {
    synwall_netns::veth_add(a, a_if, b, b_if)
}

/// Bytes as lowercase hex (for comparing frames in assertion messages).
pub fn hex(b: &[u8]) -> String {
    hex::encode(b)
}

/// What most tests use, for `use synwall_testkit::prelude::*`.
pub mod prelude {
    pub use crate::clock::*;
    pub use crate::deploy::*;
    pub use crate::frame::*;
    pub use crate::random::*;
    pub use crate::skip::*;
    pub use crate::{hex, ip, synwall, synwall_lab, Raw, RawSender};
}
