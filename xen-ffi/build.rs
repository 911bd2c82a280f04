//! Build script: finds libxenlight with the `pkg-config` command when the `libxl` feature is on
//! and tells rustc how to link it. Without the feature it does nothing (no Xen package needed).
//!
//! `XEN_FFI_STATIC=1` links the static archives (`libxenlight.a` and everything under it, plus
//! `libyajl_s.a`, uuid, lzma, zstd and z, which Debian's `.pc` files leave out); otherwise the
//! shared `libxenlight.so`, whose own NEEDED entries bring the rest.
//!
//! The `pkg-config` command is run directly rather than through the `pkg-config` crate: one
//! command line and its output are all this needs, and no build-dependency is added.

use std::env;
use std::path::Path;
use std::process::{exit, Command};

/// Libraries libxenlight and libxenguest call that Debian 4.17's `Requires.private` omits
/// (measured with `nm -u` on the archives): yajl (JSON), uuid, lzma and zstd (guest images), z.
const STATIC_EXTRAS: [&str; 5] = ["yajl_s", "uuid", "lzma", "zstd", "z"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=XEN_FFI_STATIC");
    for variable in [
        "PKG_CONFIG",
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={variable}");
    }
    if env::var_os("CARGO_FEATURE_LIBXL").is_none() {
        return;
    }
    // The release linked, `major.minor`: the only one the build can drive (safe::BUILT_FOR).
    let version = match pkg_config(&["--modversion", "xenlight"]) {
        Ok(version) => version,
        Err(why) => fail(&why),
    };
    let release: Vec<&str> = version.trim().split('.').take(2).collect();
    println!("cargo:rustc-env=XEN_FFI_BUILT_FOR={}", release.join("."));
    let statik = env::var("XEN_FFI_STATIC").is_ok_and(|value| value == "1");
    let libs = match pkg_config(&["--static", "--libs", "xenlight"]) {
        Ok(libs) => libs,
        Err(why) => fail(&why),
    };
    let libdir = pkg_config(&["--variable=libdir", "xenlight"]).unwrap_or_default();
    let libdir = libdir.trim();
    if !libdir.is_empty() {
        println!("cargo:rustc-link-search=native={libdir}");
    }
    let mut names: Vec<&str> = Vec::new();
    for token in libs.split_whitespace() {
        if let Some(dir) = token.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(name) = token.strip_prefix("-l") {
            // pkg-config repeats a library once per user; for static linking the last
            // occurrence is the one that comes after every user, so keep that one.
            names.retain(|seen| *seen != name);
            names.push(name);
        }
    }
    if !names.contains(&"xenlight") {
        fail(&format!(
            "`pkg-config --static --libs xenlight` printed no -lxenlight: {libs:?}"
        ));
    }
    if statik {
        for name in &names {
            println!("cargo:rustc-link-lib=static={name}");
        }
        for name in STATIC_EXTRAS {
            // Use the archive when one exists; else the shared library (libzstd has no
            // archive on Debian 12 without libzstd-dev).
            let kind = if Path::new(libdir).join(format!("lib{name}.a")).exists() {
                "static"
            } else {
                "dylib"
            };
            println!("cargo:rustc-link-lib={kind}={name}");
        }
    } else {
        println!("cargo:rustc-link-lib=dylib=xenlight");
        // libxentoollog is called directly (the logger), so name it too.
        println!("cargo:rustc-link-lib=dylib=xentoollog");
    }
}

/// Runs `pkg-config ARGS` and returns its stdout, or a readable reason.
fn pkg_config(args: &[&str]) -> Result<String, String> {
    let program = env::var("PKG_CONFIG").unwrap_or_else(|_| "pkg-config".to_string());
    let output = Command::new(&program)
        .args(args)
        .output()
        .map_err(|error| format!("could not run `{program}`: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    String::from_utf8(output.stdout).map_err(|_| format!("`{program}` printed non-UTF-8 output"))
}

/// Reports a missing libxenlight and stops the build.
fn fail(why: &str) -> ! {
    let message = format!(
        "xen-ffi: the `libxl` feature needs libxenlight (Xen 4.17) and pkg-config: {why}. \
         On Debian: apt-get install libxen-dev libyajl-dev uuid-dev pkg-config"
    );
    println!("cargo:warning={message}");
    eprintln!("{message}");
    exit(1);
}
