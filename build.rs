//! Build script: records the target triple, so `xenplug --version` says which flavor it is
//! (the static musl default, or the glibc dom0 build).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=XENPLUG_BUILD_TARGET={target}");
}
