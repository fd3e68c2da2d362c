//! Generate this crate's constants from `bpf/lib/constants.def`, the one list the BPF C also
//! includes.

#[path = "../../tools/build/defs.rs"]
mod defs;

fn main() {
    defs::constants("cookie");
}
