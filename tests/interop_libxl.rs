//! Integration: `advertise hypervisor --backend libxl`, `--backend xl` and `--backend auto`
//! where there is no Xen (this machine, and any CI runner). Built with the `libxl` feature,
//! the binary must say that this is not a dom0; built without it, that this build lacks the
//! backend and which build has it; the xl backend quotes why `xl` does not run; auto names
//! both. Each way: exit status 1, one line on stderr, no panic, nothing advertised. Run in a
//! namespace of its own, like every test that starts xenplug.
//!
//! `cargo test --test interop_libxl` checks the default build's message;
//! `cargo test --features libxl --test interop_libxl` the dom0 build's.

mod common;

use common::*;
use std::path::Path;

/// Whether this machine is a Xen dom0, where the backends would start.
fn is_dom0() -> bool {
    let dom0 = ["/dev/xen/privcmd", "/proc/xen/privcmd"]
        .iter()
        .any(|path| Path::new(path).exists());
    if dom0 {
        eprintln!("skipped: this machine is a Xen dom0, where the backend would start");
    }
    dom0
}

/// Starts `advertise hypervisor --backend BACKEND` (with `extra` options) in a namespace of
/// its own and returns the one line it printed on stderr, after checking that it exited 1
/// without a panic and printed nothing on stdout.
fn refusal(backend: &str, extra: &[&str]) -> String {
    let ns = Netns::new(backend);
    let state = TempDir::new("libxl-state");
    let config = TempDir::new("libxl-config");
    let bin = xenplug_bin();
    let state_dir = state.path().to_string_lossy().into_owned();
    let config_dir = config.path().to_string_lossy().into_owned();
    let mut args = vec![
        "advertise",
        "hypervisor",
        "--backend",
        backend,
        "--iface",
        "lo",
        "--state-dir",
        &state_dir,
        "--xl-config-dir",
        &config_dir,
    ];
    args.extend_from_slice(extra);
    let output = ns.run(&bin.to_string_lossy(), &args, WAIT);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "stderr:\n{stderr}");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout expected");
    let line = lines[0].to_string();
    assert!(line.starts_with("xenplug advertise hypervisor: "), "{line}");
    line
}

#[test]
fn libxl_backend_without_xen_exits_with_one_clear_line() {
    if is_dom0() {
        return;
    }
    let line = refusal("libxl", &[]);
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
}

#[test]
fn xl_backend_without_xen_quotes_why_xl_does_not_run() {
    if is_dom0() {
        return;
    }
    let line = refusal("xl", &["--xl", "/nonexistent/xl"]);
    assert!(
        line.contains("/nonexistent/xl info: cannot start") && line.contains("dom0"),
        "{line}"
    );
}

#[test]
fn auto_backend_without_xen_names_both_backends() {
    if is_dom0() {
        return;
    }
    let line = refusal("auto", &["--xl", "/nonexistent/xl"]);
    assert!(
        line.contains("--backend auto: no backend works here: libxl: ")
            && line.contains("; xl: /nonexistent/xl info: cannot start"),
        "{line}"
    );
}
