//! Compile the baseline BPF programs of `bpf/baseline/` and generate their skeletons (the shared
//! build step: `crates/bpf_skeletons.rs`).

#[path = "../bpf_skeletons.rs"]
mod bpf_skeletons;

fn main() {
    println!("cargo:rerun-if-changed=../bpf_skeletons.rs");
    bpf_skeletons::build("../../bpf/baseline", &["syncookie_helper", "bare_tx"]);
}
