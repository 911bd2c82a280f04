//! xenplug on real Xen 4.17 (Debian 12) and Xen 4.20 (Debian 13), each booted under QEMU (TCG,
//! no KVM needed, no network device: `-nic none`).
//!
//! `tests/xen/fetch.sh` fetches Debian's hypervisor, dom0 kernel, xen-utils with the libraries
//! xl needs, busybox-static and qemu-system-x86 with `apt-get download` (Debian 13's through a
//! private apt configuration; nothing is installed on the machine) into a cache kept between
//! runs (`XENPLUG_XEN_CACHE`, default `target/xen-cache`) and unpacks them there;
//! `tests/xen/build.sh` makes dom0's and a PV guest's initramfs around the default static musl
//! xenplug (`XENPLUG_MUSL_BIN`, else built with `packaging/build-release.sh`) and the dom0
//! build with the libxl backend (`XENPLUG_DOM0_BIN`, else built with `packaging/build-dom0.sh`);
//! `tests/xen/boot.sh` boots Xen. Inside dom0, `tests/xen/dom0-test.sh` checks what
//! `--backend auto` picks with each build and that the dom0 build refuses `--backend libxl` on
//! a release it is not built for, and `tests/xen/dom0-checks.sh` runs every check once per
//! backend that works on that release (libxl and xl on 4.17, xl on 4.20): a hypervisor
//! advertiser and a tracker on lo, guests created with xl, and over SSDP and SOAP on dom0's
//! loopback the listing, Pause, Resume, Suspend (in place and to disk), Shutdown and Destroy
//! against `xl list`, the announcements (GENA, CONFIGID, alive/byebye, a new guest within 1 s)
//! and, from the guest's console log, the UUID `xenplug advertise vm` reads inside the guest.
//! Each check prints one `XENPLUG-PASS`/`XENPLUG-FAIL` line on the serial console, which this
//! test reads.
//!
//! The two releases boot one after the other (a lock): two TCG machines at once on a 2-core
//! host would slow each past its bounds. When the packages cannot be fetched at all (no apt,
//! no mirror, no earlier cache) a test prints a loud SKIP and passes. Both releases take about
//! 5 minutes with a warm cache (4.17 about 3, 4.20 under 2). Everything is bounded:
//! QEMU is killed at its deadline, the work directory is removed (kept, with the console log,
//! when the test fails), and a failure shows the console's tail.
//!
//! Run them: `cargo test --test xen_qemu -- --nocapture` (one: `... xen_4_20`).

mod common;

use common::{run_bounded, tail, Proc, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bound for fetching and unpacking one release's packages (a first run downloads about
/// 130 MB per release, measured 2 min 20 s for both with the apt lists).
const FETCH: Duration = Duration::from_secs(900);
/// Bound for building one xenplug artifact when the test builds it.
const BUILD_ARTIFACT: Duration = Duration::from_secs(1800);
/// Bound for building the initramfs images.
const BUILD_IMAGES: Duration = Duration::from_secs(300);
/// How long QEMU may take to exit by itself once the checks are done.
const POWER_OFF: Duration = Duration::from_secs(30);
/// Exit status of fetch.sh when nothing usable could be fetched.
const SKIP_STATUS: i32 = 77;
/// Marker of the end of the checks, with their status.
const END_MARKER: &str = "XENPLUG-TEST-END status=";

/// Checks each backend must pass on every release it runs on: without them a run that
/// skipped part of the script would look green.
const BACKEND_CHECKS: &[&str] = &[
    "xl create g1",
    "hypervisor advertiser serves",
    "changes followed through xenstore watches",
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
    "g2 announced within 1 s of its introduction",
    "xl create g2",
    "SOAP GetState of the new g2 matches xl",
    "g2 announced",
    "CONFIGID moved when g2 came",
    "g2's real name reaches the journal",
    "Destroy through SOAP",
    "ssdp:byebye for g2's Domain device",
    "CONFIGID moved when g2 was destroyed",
    "console watch printed",
];

/// Checks only the libxl backend passes: it resumes a domain suspended in place.
const LIBXL_CHECKS: &[&str] = &[
    "g1 suspended in place",
    "SOAP GetState of g1 suspended in place: suspended",
    "Resume of a domain suspended in place",
    "g1's console is alive after the in-place resume",
];

/// Checks only the xl backend passes: xl cannot resume a domain suspended in place, and says so.
const XL_CHECKS: &[&str] = &[
    "g2 suspended in place",
    "SOAP GetState of g2 suspended in place: suspended",
    "Resume of g2 suspended in place is refused",
];

/// What one release must show.
struct Release {
    /// `4.17`, `4.20`.
    version: &'static str,
    /// The backends every check runs with.
    backends: &'static [&'static str],
    /// The release-wide checks (`release: ...` lines).
    release_checks: &'static [&'static str],
    /// Bound for the whole boot: Xen, dom0, the guests, every check, power-off.
    boot: Duration,
}

/// Xen 4.17: the dom0 build's own release (libxl), and xl.
const XEN_4_17: Release = Release {
    version: "4.17",
    backends: &["libxl", "xl"],
    release_checks: &[
        "auto with the dom0 build picks libxl on Xen 4.17",
        "auto with the default build picks xl on Xen 4.17",
    ],
    // Measured 170 to 180 s for both backends' checks, boot and power-off included.
    boot: Duration::from_secs(420),
};

/// Xen 4.20: xl only; the dom0 build refuses its libxl backend.
const XEN_4_20: Release = Release {
    version: "4.20",
    backends: &["xl"],
    release_checks: &[
        "auto with the dom0 build picks xl on Xen 4.20, saying why",
        "the dom0 build refuses --backend libxl on Xen 4.20",
        "auto with the default build picks xl on Xen 4.20",
    ],
    // Measured 83 to 98 s.
    boot: Duration::from_secs(240),
};

/// One boot at a time (see the module doc).
static ONE_BOOT: Mutex<()> = Mutex::new(());

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn script(name: &str) -> PathBuf {
    repo_dir().join("tests/xen").join(name)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn skip(release: &str, reason: &str) {
    eprintln!("\n{}", "!".repeat(78));
    eprintln!("!!! SKIP xen_qemu (Xen {release}): {reason}");
    eprintln!("!!! xenplug was NOT tested on real Xen {release} in this run.");
    eprintln!("{}\n", "!".repeat(78));
}

/// The package cache: `XENPLUG_XEN_CACHE`, else `xen-cache` in cargo's target directory.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XENPLUG_XEN_CACHE") {
        return PathBuf::from(dir);
    }
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(&tmp).join("xen-cache")
}

/// A xenplug artifact: the file `variable` names, else what `builder` builds (the path it
/// prints last on stdout).
fn artifact(variable: &str, builder: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(variable) {
        let bin = PathBuf::from(bin);
        assert!(bin.is_file(), "{variable}={} is no file", bin.display());
        return bin;
    }
    let build = repo_dir().join(builder);
    assert!(
        build.is_file(),
        "no {variable} and no {} to build it",
        build.display()
    );
    eprintln!("xen_qemu: building with {builder}");
    let mut command = Command::new("bash");
    command.arg(&build).current_dir(repo_dir());
    let output = run_bounded(command, BUILD_ARTIFACT, builder);
    assert!(
        output.status.success(),
        "{builder} failed ({}):\n{}",
        output.status,
        tail(&text(&output.stderr), 40)
    );
    let stdout = text(&output.stdout);
    let path = stdout.lines().rev().find(|line| !line.trim().is_empty());
    let path = repo_dir().join(path.unwrap_or_default().trim());
    assert!(
        path.is_file(),
        "{builder} printed no artifact path: {stdout:?}"
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

/// Every check `release` must pass, as the line prefixes the scripts print.
fn required(release: &Release) -> Vec<String> {
    let mut checks: Vec<String> = release
        .release_checks
        .iter()
        .map(|check| format!("release: {check}"))
        .collect();
    for backend in release.backends {
        let own = if *backend == "libxl" {
            LIBXL_CHECKS
        } else {
            XL_CHECKS
        };
        for check in BACKEND_CHECKS.iter().chain(own) {
            checks.push(format!("{backend}: {check}"));
        }
    }
    checks
}

/// Seconds since `start`, for the timing lines.
fn since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64()
}

/// Fetches, builds and boots `release`, then checks what its console said.
fn boot_and_check(release: &Release) {
    let _one = ONE_BOOT.lock().unwrap_or_else(|e| e.into_inner());
    let start = Instant::now();
    let version = release.version;
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        skip(version, "needs an x86-64 Linux machine");
        return;
    }
    let cache = cache_dir();

    // 1. packages
    let mut fetch = Command::new("bash");
    fetch.arg(script("fetch.sh")).arg(&cache).arg(version);
    let fetched = run_bounded(fetch, FETCH, "tests/xen/fetch.sh");
    let fetch_log = text(&fetched.stderr);
    if fetched.status.code() == Some(SKIP_STATUS) {
        skip(
            version,
            &format!(
                "Debian's Xen packages cannot be fetched:\n{}",
                tail(&fetch_log, 10)
            ),
        );
        return;
    }
    assert!(
        fetched.status.success(),
        "tests/xen/fetch.sh {version} failed ({}):\n{}",
        fetched.status,
        tail(&fetch_log, 40)
    );
    let t_fetch = since(start);
    eprintln!(
        "xen_qemu {version}: packages ready in {t_fetch:.1} s ({})",
        cache.display()
    );

    // 2. binaries and images
    let musl = artifact("XENPLUG_MUSL_BIN", "packaging/build-release.sh");
    let dom0 = artifact("XENPLUG_DOM0_BIN", "packaging/build-dom0.sh");
    let t_artifacts = since(start);
    let work = TempDir::new(&format!("xen-qemu-{version}"));
    let mut build = Command::new("bash");
    build
        .arg(script("build.sh"))
        .arg(&cache)
        .arg(work.path())
        .arg(version)
        .arg(&musl)
        .arg(&dom0);
    let built = run_bounded(build, BUILD_IMAGES, "tests/xen/build.sh");
    assert!(
        built.status.success(),
        "tests/xen/build.sh {version} failed ({}):\n{}",
        built.status,
        tail(&text(&built.stderr), 40)
    );
    let t_build = since(start);
    eprintln!(
        "xen_qemu {version}: {} and {} ({:.1} s), images built ({:.1} s)",
        musl.display(),
        dom0.display(),
        t_artifacts - t_fetch,
        t_build - t_artifacts
    );

    // 3. boot and read the serial console
    let mut boot = Command::new("sh");
    boot.arg(script("boot.sh")).arg(work.path());
    let mut qemu = Proc::spawn(boot, work.path(), "qemu");
    let ended = qemu.wait_stdout(release.boot, |out| out.contains(END_MARKER).then_some(()));
    let timed_out = ended.is_none();
    if ended.is_some() && qemu.wait_exit(POWER_OFF).is_none() {
        eprintln!("xen_qemu {version}: Xen did not power the machine off within {POWER_OFF:?}; killing QEMU");
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
        "xen_qemu {version}: timings: fetch {t_fetch:.1} s, artifacts {:.1} s, images {:.1} s, \
         boot and checks {:.1} s, total {t_boot:.1} s",
        t_artifacts - t_fetch,
        t_build - t_artifacts,
        t_boot - t_build
    );

    let missing: Vec<String> = required(release)
        .into_iter()
        .filter(|check| {
            !result
                .passes
                .iter()
                .any(|line| line.starts_with(check.as_str()))
        })
        .collect();
    let console_path = work.path().join("console.log");
    let _ = std::fs::write(&console_path, &console);
    let failed =
        timed_out || result.status != Some(0) || !result.failures.is_empty() || !missing.is_empty();
    assert!(
        !failed,
        "xenplug on real Xen {version}: {}\nFAIL lines:\n  {}\nchecks that did not pass: \
         {missing:?}\nconsole log: {}\n--- console tail ---\n{}\n--- qemu stderr ---\n{}",
        if timed_out {
            format!("no end of the checks within {:?}", release.boot)
        } else {
            format!("the checks ended with status {:?}", result.status)
        },
        result.failures.join("\n  "),
        console_path.display(),
        tail(&console, 80),
        tail(&qemu.stderr(), 20)
    );
    eprintln!(
        "xen_qemu {version}: {} checks passed on Xen {version} under QEMU",
        result.passes.len()
    );
}

#[test]
fn xen_4_17_under_qemu() {
    boot_and_check(&XEN_4_17);
}

#[test]
fn xen_4_20_under_qemu() {
    boot_and_check(&XEN_4_20);
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

#[test]
fn every_release_requires_each_backend_check() {
    let checks = required(&XEN_4_17);
    assert!(checks.contains(&"libxl: Pause through SOAP".to_string()));
    assert!(checks.contains(&"xl: Pause through SOAP".to_string()));
    assert!(checks.contains(&"libxl: Resume of a domain suspended in place".to_string()));
    assert!(!checks.contains(&"xl: Resume of a domain suspended in place".to_string()));
    let checks = required(&XEN_4_20);
    assert!(!checks.iter().any(|check| check.starts_with("libxl: ")));
    assert!(
        checks.contains(&"release: the dom0 build refuses --backend libxl on Xen 4.20".to_string())
    );
    assert!(Path::new(&script("dom0-checks.sh")).is_file());
}
