//! xenplug on real Xen 4.17, booted under QEMU (TCG, no KVM needed, no network device).
//!
//! `tests/xen/fetch.sh` fetches Debian's hypervisor, dom0 kernel, xen-utils with the libraries
//! xl needs, busybox-static and qemu-system-x86 with `apt-get download` into a cache outside
//! the clone (`XENPLUG_XEN_CACHE`, default /var/cache/xenplug-xen) and unpacks them there;
//! `tests/xen/build.sh` makes dom0's and a PV guest's initramfs around the dom0 xenplug binary
//! (`XENPLUG_DOM0_BIN`, else built with `packaging/build-dom0.sh`); `tests/xen/boot.sh` boots
//! Xen with QEMU's `-nic none`. Inside dom0, `tests/xen/dom0-test.sh` starts the hypervisor
//! advertiser (libxl backend) and a tracker on lo, creates guests with xl and checks, over
//! SSDP and SOAP on dom0's loopback, the listing, Pause, Resume, Suspend (in place and to
//! disk), Shutdown and Destroy against `xl list`, the announcements (GENA, CONFIGID, alive/byebye) and, from the guest's console
//! log, the UUID `xenplug advertise vm` reads inside the guest. It prints one
//! `XENPLUG-PASS`/`XENPLUG-FAIL` line per check on the serial console, which this test reads.
//!
//! When the packages cannot be fetched at all (no apt, no mirror, no earlier cache) the test
//! prints a loud SKIP and passes. Everything is bounded: QEMU is killed at its deadline, the
//! work directory is removed (kept, with the console log, when the test fails).
//!
//! Run just this test: `cargo test --test xen_qemu -- --nocapture`.

mod common;

use common::{run_bounded, tail, Proc, TempDir};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Bound for fetching and unpacking the packages (the first run downloads about 100 MB).
const FETCH: Duration = Duration::from_secs(900);
/// Bound for building the dom0 binary when the test builds it.
const BUILD_DOM0: Duration = Duration::from_secs(1800);
/// Bound for building the initramfs images.
const BUILD_IMAGES: Duration = Duration::from_secs(180);
/// Bound for the whole boot: Xen, dom0, two guests, every check, power-off.
const BOOT: Duration = Duration::from_secs(420);
/// How long QEMU may take to exit by itself once the checks are done.
const POWER_OFF: Duration = Duration::from_secs(20);
/// Exit status of fetch.sh when nothing usable could be fetched.
const SKIP_STATUS: i32 = 77;
/// Marker of the end of the checks, with their status.
const END_MARKER: &str = "XENPLUG-TEST-END status=";

/// Checks that must each have printed a PASS line: without them a run that skipped part of
/// the script would look green.
const REQUIRED: &[&str] = &[
    "xl create g1",
    "hypervisor advertiser serves",
    "SOAP GetVirtualMachineIds lists g1's real UUID",
    "description has a Domain device with vmUuid",
    "SOAP GetState of g1",
    "tracker found g1 over SSDP",
    "inside g1: /sys/hypervisor/uuid, xenplug advertise vm's UDN and vmUuid all",
    "Pause through SOAP",
    "the Pause was signed for identity root and checked by the hypervisor",
    "the Pause is journaled with its identity",
    "GENA State event for Pause",
    "SOAP GetState after Pause: paused",
    "a state change leaves CONFIGID alone",
    "Resume through SOAP",
    "GENA State event for Resume",
    "g1 suspended in place",
    "SOAP GetState of g1 suspended in place: suspended",
    "Resume of a domain suspended in place",
    "g1's console is alive after the in-place resume",
    "Suspend through SOAP",
    "SOAP GetState of the saved g1: suspended",
    "GENA State event for Suspend",
    "Start of the saved g1 is refused",
    "Resume through SOAP: g1 restored with its UUID",
    "GENA State event for the restore",
    "g1's console is alive after the restore",
    "the restore removed the image and its record",
    "Shutdown through SOAP",
    "ssdp:byebye for g1's Domain device",
    "CONFIGID moved when g1 left",
    "g2 announced",
    "CONFIGID moved when g2 came",
    "g2's real name reaches the journal",
    "Destroy through SOAP",
    "ssdp:byebye for g2's Domain device",
    "CONFIGID moved when g2 was destroyed",
    "console watch printed",
];

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo_dir().join("tests/xen").join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn skip(reason: &str) {
    eprintln!("\n{}", "!".repeat(78));
    eprintln!("!!! SKIP xen_qemu: {reason}");
    eprintln!("!!! xenplug was NOT tested on real Xen in this run.");
    eprintln!("{}\n", "!".repeat(78));
}

/// The package cache: `XENPLUG_XEN_CACHE`, else /var/cache/xenplug-xen when it can be made,
/// else a directory beside cargo's target.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XENPLUG_XEN_CACHE") {
        return PathBuf::from(dir);
    }
    let system = PathBuf::from("/var/cache/xenplug-xen");
    if std::fs::create_dir_all(&system).is_ok() {
        return system;
    }
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xen-cache")
}

/// The dom0 xenplug: `XENPLUG_DOM0_BIN`, else what `packaging/build-dom0.sh` builds (the path
/// it prints last on stdout).
fn dom0_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("XENPLUG_DOM0_BIN") {
        let bin = PathBuf::from(bin);
        assert!(
            bin.is_file(),
            "XENPLUG_DOM0_BIN={} is no file",
            bin.display()
        );
        return bin;
    }
    let build = repo_dir().join("packaging/build-dom0.sh");
    assert!(
        build.is_file(),
        "no XENPLUG_DOM0_BIN and no {} to build the dom0 binary",
        build.display()
    );
    eprintln!("xen_qemu: building the dom0 binary with packaging/build-dom0.sh");
    let mut command = Command::new("bash");
    command.arg(&build).current_dir(repo_dir());
    let output = run_bounded(command, BUILD_DOM0, "packaging/build-dom0.sh");
    assert!(
        output.status.success(),
        "packaging/build-dom0.sh failed ({}):\n{}",
        output.status,
        tail(&text(&output.stderr), 40)
    );
    let stdout = text(&output.stdout);
    let path = stdout.lines().rev().find(|line| !line.trim().is_empty());
    let path = repo_dir().join(path.unwrap_or_default().trim());
    assert!(
        path.is_file(),
        "packaging/build-dom0.sh printed no artifact path: {stdout:?}"
    );
    path
}

/// What the console said, in XENPLUG- lines.
struct Report {
    passes: Vec<String>,
    failures: Vec<String>,
    status: Option<i32>,
}

fn report(console: &str) -> Report {
    let mut passes = Vec::new();
    let mut failures = Vec::new();
    let mut status = None;
    for line in console.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("XENPLUG-PASS ") {
            passes.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix("XENPLUG-FAIL ") {
            failures.push(rest.to_string());
        } else if let Some(rest) = line.strip_prefix(END_MARKER) {
            status = rest
                .split_whitespace()
                .next()
                .and_then(|code| code.parse().ok());
        }
    }
    Report {
        passes,
        failures,
        status,
    }
}

/// Seconds since `start`, for the timing lines.
fn since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

#[test]
fn xenplug_on_real_xen_under_qemu() {
    let start = Instant::now();
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        skip("needs an x86-64 Linux machine");
        return;
    }
    let cache = cache_dir();

    // 1. packages
    let mut fetch = Command::new("bash");
    fetch.arg(script("fetch.sh")).arg(&cache);
    let fetched = run_bounded(fetch, FETCH, "tests/xen/fetch.sh");
    let fetch_log = text(&fetched.stderr);
    if fetched.status.code() == Some(SKIP_STATUS) {
        skip(&format!(
            "Debian's Xen packages cannot be fetched:\n{}",
            tail(&fetch_log, 10)
        ));
        return;
    }
    assert!(
        fetched.status.success(),
        "tests/xen/fetch.sh failed ({}):\n{}",
        fetched.status,
        tail(&fetch_log, 40)
    );
    let t_fetch = since(start);
    eprintln!(
        "xen_qemu: packages ready in {t_fetch:.1} s ({})",
        cache.display()
    );

    // 2. binaries and images
    let dom0_bin = dom0_binary();
    let t_dom0 = since(start);
    let work = TempDir::new("xen-qemu");
    let mut build = Command::new("bash");
    build
        .arg(script("build.sh"))
        .arg(&cache)
        .arg(work.path())
        .arg(&dom0_bin);
    let built = run_bounded(build, BUILD_IMAGES, "tests/xen/build.sh");
    assert!(
        built.status.success(),
        "tests/xen/build.sh failed ({}):\n{}",
        built.status,
        tail(&text(&built.stderr), 40)
    );
    let t_build = since(start);
    eprintln!(
        "xen_qemu: dom0 binary {} ({:.1} s), images built ({:.1} s)",
        dom0_bin.display(),
        t_dom0 - t_fetch,
        t_build - t_dom0
    );

    // 3. boot and read the serial console
    let mut boot = Command::new("sh");
    boot.arg(script("boot.sh")).arg(work.path());
    let mut qemu = Proc::spawn(boot, work.path(), "qemu");
    let ended = qemu.wait_stdout(BOOT, |out| out.contains(END_MARKER).then_some(()));
    let timed_out = ended.is_none();
    if ended.is_some() && qemu.wait_exit(POWER_OFF).is_none() {
        eprintln!("xen_qemu: Xen did not power the machine off within {POWER_OFF:?}; killing QEMU");
    }
    qemu.kill();
    let t_boot = since(start);
    let console = qemu.stdout();
    let result = report(&console);

    for line in console.lines().filter(|line| line.starts_with("XENPLUG-")) {
        if !line.starts_with("XENPLUG-LOG") {
            eprintln!("  {}", line.trim_end_matches('\r'));
        }
    }
    eprintln!(
        "xen_qemu: timings: fetch {t_fetch:.1} s, dom0 binary {:.1} s, images {:.1} s, \
         boot and checks {:.1} s, total {t_boot:.1} s",
        t_dom0 - t_fetch,
        t_build - t_dom0,
        t_boot - t_build
    );

    let missing: Vec<&&str> = REQUIRED
        .iter()
        .filter(|check| !result.passes.iter().any(|line| line.starts_with(**check)))
        .collect();
    let console_path = work.path().join("console.log");
    let _ = std::fs::write(&console_path, &console);
    let failed =
        timed_out || result.status != Some(0) || !result.failures.is_empty() || !missing.is_empty();
    assert!(
        !failed,
        "xenplug on real Xen: {}\nFAIL lines:\n  {}\nchecks that did not pass: {missing:?}\n\
         console log: {}\n--- console tail ---\n{}\n--- qemu stderr ---\n{}",
        if timed_out {
            format!("no end of the checks within {BOOT:?}")
        } else {
            format!("the checks ended with status {:?}", result.status)
        },
        result.failures.join("\n  "),
        console_path.display(),
        tail(&console, 60),
        tail(&qemu.stderr(), 20)
    );
    eprintln!(
        "xen_qemu: {} checks passed on Xen 4.17 under QEMU",
        result.passes.len()
    );
}

#[test]
fn report_reads_pass_fail_and_status() {
    let console = "noise\nXENPLUG-PASS a: b (at 1 s)\r\nXENPLUG-FAIL c: d\n\
                   XENPLUG-TEST-END status=3 at 9 s\n";
    let result = report(console);
    assert_eq!(result.passes, ["a: b (at 1 s)"]);
    assert_eq!(result.failures, ["c: d"]);
    assert_eq!(result.status, Some(3));
    let empty = report("XENPLUG-TEST-END status=\n");
    assert_eq!(empty.status, None);
}
