//! Build script: records the target triple, so `xenplug --version` says which flavor it is
//! (the static musl default, or the glibc dom0 build), and gives the release musl artifact its
//! size-saving link options (README, "Building": the artifact's size budget).

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=XENPLUG_BUILD_TARGET={target}");
    let release = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if release && target == "x86_64-unknown-linux-musl" {
        link_small();
    }
}

/// Link options for the size-optimized artifact. Only the binary gets them, not test harnesses
/// (which unwind), and only musl's: the glibc dom0 build links C libraries whose thread
/// cancellation unwinds.
fn link_small() {
    // Relative relocations packed as bitmaps (DT_RELR: binutils >= 2.38, musl >= 1.2.4): the
    // static-pie binary keeps its address randomization, and its ~1,900 relocations take
    // 0.6 KB instead of 45 KB.
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    // No unwind tables: panic = "abort" never reads them (the script says why).
    let dir = env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    let script = format!("{dir}/packaging/no-unwind-tables.ld");
    println!("cargo:rerun-if-changed={script}");
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{script}");
}
