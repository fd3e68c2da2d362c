//! synwall's BPF data path from userspace: the XDP edge (`bpf/edge.bpf.c`) and the tc backend
//! (`bpf/backend.bpf.c`), compiled by `build.rs` into libbpf-rs skeletons.
//!
//! This crate owns loading the two objects, writing their maps from the reference engine's types
//! (configuration from [`EngineConfig`], the salt ring and its clock rule from [`Salts`], services
//! from [`ServiceSet`]), reading the per-CPU counters into [`Counters`], running a program once on
//! a frame with `BPF_PROG_TEST_RUN`, and attaching: XDP (native or generic) for the edge, tcx
//! ingress for the backend. The map value layouts are the C types of `bpf/lib/maps.h`, used here
//! through the skeleton's generated `types`, never copied by hand.
//!
//! Everything here needs root (or CAP_BPF + CAP_NET_ADMIN) and a kernel with BTF; the backend's
//! kfunc `bpf_sk_assign_tcp_reqsk` needs Linux >= 6.9.
//!
//! One file per concern: `skel` (the generated skeletons and map value types), `pod` (byte
//! casting), `maps` (map sizes, value encoding, reads and writes), `objects` ([`Edge`],
//! [`Backend`], [`DataPath`]), `test_run`, `link` (attach, pin, adopt, replace a program), [`pin`]
//! (the node's bpffs layout), [`services`] (the LPM trie and its port bitmaps), [`abuse`] (the
//! edge's deny and allow lists, replaced without a gap, and its budgets' buckets).

#![warn(missing_docs)]

pub mod abuse;
pub mod clock;
mod link;
mod maps;
mod objects;
pub mod pin;
mod pod;
pub mod services;
mod skel;
mod test_run;

pub use link::{xdp_mode_of, Link, TcxLink, XdpLink, XdpMode};
#[doc(hidden)]
pub use maps::Maps;
pub use maps::{
    config_value, decode_auto_state, decode_salt_entry, percpu_sum, read_auto_state,
    salt_entry_value, ClockValue, LoadOptions, AUTO_MAX_CPUS, MAX_CLIENT_PREFIXES,
};
pub use objects::{Backend, DataPath, Edge, EdgePercpuBudget};
pub use skel::{leak_object, types};
pub use test_run::{
    tc_action, test_run, xdp_action, TestRun, XdpMd, TEST_RUN_MAX_FRAME, TEST_RUN_MAX_LINEAR,
};

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A libbpf call failed (open, load, map access, test run, attach).
    #[error("{what}: {source}")]
    Bpf {
        /// What was being done.
        what: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A system call failed.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration does not fit the maps.
    #[error("{0}")]
    Config(String),
    /// Another process holds the node's lock ([`pin::NodePins::lock`]).
    #[error("{} is locked by another process ({holder})", dir.display())]
    Held {
        /// The node's pin directory.
        dir: std::path::PathBuf,
        /// Who holds it.
        holder: pin::Holder,
    },
    /// A step on one of a node's links failed (pinning it, moving it to a new program).
    #[error("cannot {what}")]
    Link {
        /// The step, naming the hook and the interface.
        what: String,
        /// Why it failed.
        source: Box<Error>,
    },
}

/// Result of this crate.
pub type Result<T> = std::result::Result<T, Error>;

fn bpf(what: &'static str) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::Bpf { what, source }
}
