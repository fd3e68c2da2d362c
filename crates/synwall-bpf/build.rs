//! Compile the BPF programs of `bpf/` with clang (`-O2 -g -target bpf`, added by libbpf-cargo) and
//! generate their libbpf-rs skeletons into `OUT_DIR`. The compiler is `clang-19` unless the
//! environment variable `SYNWALL_BPF_CLANG` names another.

#[path = "../../tools/build/defs.rs"]
mod defs;

use libbpf_cargo::SkeletonBuilder;
use std::env;
use std::path::PathBuf;

const PROGRAMS: [&str; 2] = ["edge", "backend"];

/// Builds of a program with a different choice made at compile time, for measurements only:
/// (object name, source, extra clang arguments).
const VARIANTS: [(&str, &str, &str); 1] = [
    // The reflection budget in per-CPU buckets instead of buckets shared by all CPUs
    // (docs/BENCHMARKS.md, "Reflection budget: shared or per-CPU buckets").
    ("edge_percpu", "edge", "-DSW_BUDGET_PERCPU"),
];

fn main() {
    defs::constants("bpf");
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let bpf = manifest.join("../../bpf");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let clang = env::var("SYNWALL_BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=SYNWALL_BPF_CLANG");
    // The uapi headers (linux/bpf.h) include <asm/types.h>, which Debian keeps under the
    // multiarch directory that `-target bpf` does not search.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_string());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");

    // Cargo watches a directory recursively; bpf/baseline/ is another crate's.
    println!("cargo:rerun-if-changed={}", bpf.join("lib").display());
    for name in PROGRAMS {
        println!(
            "cargo:rerun-if-changed={}",
            bpf.join(format!("{name}.bpf.c")).display()
        );
    }

    let builds = PROGRAMS.iter().map(|&name| (name, name, None)).chain(
        VARIANTS
            .iter()
            .map(|&(name, src, arg)| (name, src, Some(arg))),
    );
    for (name, source, extra) in builds {
        let src = bpf.join(format!("{source}.bpf.c"));
        let skel = out.join(format!("{name}.skel.rs"));
        let mut args = vec!["-Wall", "-Werror", "-I", multiarch.as_str()];
        args.extend(extra);
        SkeletonBuilder::new()
            .source(&src)
            .obj(out.join(format!("{name}.bpf.o")))
            .clang(&clang)
            .clang_args(args)
            .build_and_generate(&skel)
            .unwrap_or_else(|e| {
                panic!(
                    "building {} with {clang} failed (install clang-19, libelf-dev, zlib1g-dev, \
                     linux-libc-dev: scripts/setup.sh): {e:#}",
                    src.display()
                )
            });
    }
}
