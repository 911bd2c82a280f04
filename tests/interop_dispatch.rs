//! Busybox-style dispatch of the real binary: `--list`, an unknown role, and the
//! `xenplug-hypervisor` symlink running the hypervisor role (inside a namespace of its own).

mod common;

use common::*;
use std::process::Command;
use std::time::Duration;

#[test]
fn list_prints_the_roles() {
    let mut command = Command::new(xenplug_bin());
    command.arg("--list");
    let output = run_bounded(command, WAIT, "xenplug --list");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "xenplug --list: {} {stdout}",
        output.status
    );
    assert!(
        stdout.contains("hypervisor"),
        "--list names the hypervisor role:\n{stdout}"
    );
}

#[test]
fn unknown_role_exits_2() {
    let mut command = Command::new(xenplug_bin());
    command.arg("no-such-role");
    let output = run_bounded(command, WAIT, "xenplug no-such-role");
    assert_eq!(
        output.status.code(),
        Some(2),
        "unknown role: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.stderr.is_empty(),
        "an unknown role is explained on stderr"
    );
}

#[test]
fn hypervisor_symlink_runs_the_role_and_exits_0_on_sigint() {
    let links = TempDir::new("symlink");
    let link = links.path().join("xenplug-hypervisor");
    std::os::unix::fs::symlink(xenplug_bin(), &link).expect("symlink");
    let ns = Netns::new("symlink");
    let sim = SimDir::standard("symlink");
    let options = Options {
        argv0: Some(link),
        ..Options::ifaces(&["lo"])
    };
    let mut xenplug = Xenplug::start_with(&ns, &sim, &options);
    assert!(
        xenplug.url.starts_with("http://127.0.0.1:"),
        "URL on lo: {}",
        xenplug.url
    );
    let response = http_get(&ns, &xenplug.url);
    assert_eq!(
        response.status,
        200,
        "description through the symlinked role\n{}",
        xenplug.report()
    );
    assert!(response.body.contains(DEVICE_HYPERVISOR));
    xenplug.proc.signal(libc::SIGINT);
    let status = xenplug.proc.wait_exit(Duration::from_secs(10));
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "SIGINT exit\n{}",
        xenplug.report()
    );
}
