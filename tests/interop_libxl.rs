//! Integration: `advertise hypervisor --backend libxl` where there is no Xen (this machine,
//! and any CI runner). Built with the `libxl` feature, the binary must say that this is not a
//! dom0; built without it, that this build lacks the backend and which build has it. Either
//! way: exit status 1, one line on stderr, no panic, nothing advertised. Run in a namespace of
//! its own, like every test that starts xenplug.
//!
//! `cargo test --test interop_libxl` checks the default build's message;
//! `cargo test --features libxl --test interop_libxl` the dom0 build's.

mod common;

use common::*;
use std::path::Path;

#[test]
fn libxl_backend_without_xen_exits_with_one_clear_line() {
    if ["/dev/xen/privcmd", "/proc/xen/privcmd"]
        .iter()
        .any(|path| Path::new(path).exists())
    {
        eprintln!("skipped: this machine is a Xen dom0, where the libxl backend would start");
        return;
    }
    let ns = Netns::new("libxl");
    let state = TempDir::new("libxl-state");
    let config = TempDir::new("libxl-config");
    let bin = xenplug_bin();
    let state_dir = state.path().to_string_lossy().into_owned();
    let config_dir = config.path().to_string_lossy().into_owned();
    let output = ns.run(
        &bin.to_string_lossy(),
        &[
            "advertise",
            "hypervisor",
            "--backend",
            "libxl",
            "--iface",
            "lo",
            "--state-dir",
            &state_dir,
            "--xl-config-dir",
            &config_dir,
        ],
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with("xenplug advertise hypervisor: "), "{line}");
    if cfg!(feature = "libxl") {
        assert!(
            line.contains("no Xen here") && line.contains("/proc/xen/privcmd"),
            "{line}"
        );
    } else {
        assert!(
            line.contains("built without the libxl backend") && line.contains("build-dom0.sh"),
            "{line}"
        );
    }
    assert!(output.stdout.is_empty(), "nothing on stdout expected");
}
