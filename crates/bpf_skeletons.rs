//! Shared by the build scripts of the crates that carry BPF programs of their own
//! (`synwall-baseline`: `bpf/baseline/`, `synwall-bench`: `bpf/lab/`), included with `#[path]`:
//! compile each `NAME.bpf.c` with clang (`-O2 -g -target bpf`, added by libbpf-cargo), exactly as
//! `synwall-bpf` builds `bpf/`, and generate its libbpf-rs skeleton into `OUT_DIR`. The compiler
//! is `clang-19` unless `SYNWALL_BPF_CLANG` names another.

use libbpf_cargo::SkeletonBuilder;
use std::env;
use std::path::PathBuf;

/// Build `programs` from `dir` (relative to the crate's manifest directory).
pub fn build(dir: &str, programs: &[&str]) {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let dir = manifest.join(dir);
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets it"));
    let clang = env::var("SYNWALL_BPF_CLANG").unwrap_or_else(|_| "clang-19".to_string());
    println!("cargo:rerun-if-env-changed=SYNWALL_BPF_CLANG");
    // linux/bpf.h includes <asm/types.h>, which Debian keeps under the multiarch directory.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".to_string());
    let multiarch = format!("/usr/include/{arch}-linux-gnu");
    println!("cargo:rerun-if-changed={}", dir.display());

    for name in programs {
        let src = dir.join(format!("{name}.bpf.c"));
        println!("cargo:rerun-if-changed={}", src.display());
        SkeletonBuilder::new()
            .source(&src)
            .obj(out.join(format!("{name}.bpf.o")))
            .clang(&clang)
            .clang_args(["-Wall", "-Werror", "-I", multiarch.as_str()])
            .build_and_generate(out.join(format!("{name}.skel.rs")))
            .unwrap_or_else(|e| panic!("building {} with {clang} failed: {e:#}", src.display()));
    }
}
