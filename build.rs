//! Build script: records the target triple, so `xenplug --version` says which flavor it is
//! (the static musl default, or the glibc dom0 build); compresses the console's web page; and
//! gives the release musl artifact its size-saving link options (README, "Building": the
//! artifact's size budget).

use std::env;
use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// The console's web page (`src/console/web/`), served gzip-compressed as build.rs leaves it
/// in OUT_DIR (`src/console/serve/routes.rs`).
const PAGE_FILES: [&str; 4] = ["index.html", "app.js", "style.css", "favicon.svg"];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").unwrap_or_else(|_| "unknown".to_string());
    println!("cargo:rustc-env=XENPLUG_BUILD_TARGET={target}");
    compress_page();
    let release = env::var("PROFILE").is_ok_and(|profile| profile == "release");
    if release && target == "x86_64-unknown-linux-musl" {
        link_small();
    }
}

/// Writes `OUT_DIR/<file>.gz` for each of `PAGE_FILES`: 42 KB of text become 12 KB of the
/// binary, and browsers, which all accept gzip, inflate it themselves. `gzip -n` leaves out the
/// name and time, so the bytes depend on the sources alone.
fn compress_page() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for file in PAGE_FILES {
        let source = format!("src/console/web/{file}");
        println!("cargo:rerun-if-changed={source}");
        let gzip = Command::new("gzip")
            .args(["-9", "-n", "-c", &source])
            .output();
        let compressed = match gzip {
            Ok(output) if output.status.success() => output.stdout,
            Ok(output) => panic!(
                "gzip {source}: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Err(error) => panic!("building xenplug needs gzip, to compress {source}: {error}"),
        };
        let target = out.join(format!("{file}.gz"));
        if let Err(error) = fs::write(&target, compressed) {
            panic!("cannot write {}: {error}", target.display());
        }
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
