//! The build script of every function crate (`build = "../build.rs"` in each Cargo.toml).
//!
//! Linked for Lambda (Linux on arm64, release), a function leaves out its unwind tables
//! (`no-unwind-tables.ld`): with `panic = "abort"` nothing unwinds, and in a stripped binary a
//! backtrace has no names to show. They were 0.28 MB of the 3.3 MB zipped profile package
//! (docs/benchmarks.md). A panic still logs its message and where it happened, then aborts.
//! Local builds (the local server, `cargo lambda watch`, the tests) keep them.

use std::path::Path;

fn main() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../no-unwind-tables.ld");
    println!("cargo::rerun-if-changed=../build.rs");
    println!("cargo::rerun-if-changed=../no-unwind-tables.ld");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let lambda = var("CARGO_CFG_TARGET_ARCH") == "aarch64" && var("CARGO_CFG_TARGET_OS") == "linux";
    if lambda && var("PROFILE") == "release" {
        let script = script.canonicalize().expect("functions/no-unwind-tables.ld is in the repository");
        println!("cargo::rustc-link-arg-bins=-Wl,-T,{}", script.display());
    }
}
