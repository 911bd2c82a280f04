//! The console's web page (`xenplug console serve`) in a real browser: Debian's chromium driven
//! by playwright-core (tests/web/console.spec.mjs), against the tracker topology of
//! tests/common (`TrackWorld`: two simulated hypervisors, VM advertisers whose Echo service
//! answers its text). The console server and the browser both run in the tracker's namespace,
//! so the browser reaches nothing but that namespace's networks.
//!
//! Needs node (`XENPLUG_NODE`, default `node` on PATH), chromium (`XENPLUG_CHROMIUM`, default
//! /usr/bin/chromium) and playwright-core (`npm ci --prefix tests/web`, or `XENPLUG_PLAYWRIGHT`
//! naming its directory). Without them the test fails under `CI=true` and is skipped, loudly,
//! otherwise. The screenshot is kept in target/test-artifacts/console-web.png.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bound for the topology to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Port of the console's page inside the tracker's namespace.
const WEB_PORT: u16 = 8780;
/// Bound for the browser to reach the point where it waits for the new VM.
const BROWSER: Duration = Duration::from_secs(120);
/// Bound for the rest of the browser script once the VM is added.
const BROWSER_END: Duration = Duration::from_secs(60);
/// The VM added while the page is open: a name that would be markup if inserted as HTML.
const LATE_UUID: &str = "1a7e0001-5555-4a6b-8c9d-0000000000c1";
const LATE_NAME: &str = "late<img src=x onerror=window.xss=1>";
/// What the page's Echo call sends (markup and quotes, to come back as text).
const ECHO_TEXT: &str = "hello <b>web</b> & 'quotes'";

struct Tools {
    node: PathBuf,
    chromium: PathBuf,
    playwright: PathBuf,
}

fn on_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    })
}

fn tools() -> Result<Tools, String> {
    let node = match std::env::var_os("XENPLUG_NODE") {
        Some(path) => PathBuf::from(path),
        None => on_path("node").ok_or("node is not on PATH (XENPLUG_NODE)")?,
    };
    let chromium = std::env::var_os("XENPLUG_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    if !chromium.is_file() {
        return Err(format!(
            "{} missing (apt-get install chromium, or XENPLUG_CHROMIUM)",
            chromium.display()
        ));
    }
    let playwright = std::env::var_os("XENPLUG_PLAYWRIGHT").map_or_else(
        || web_dir().join("node_modules/playwright-core"),
        PathBuf::from,
    );
    if !playwright.join("package.json").is_file() {
        return Err(format!(
            "playwright-core missing at {} (npm ci --prefix tests/web, or XENPLUG_PLAYWRIGHT)",
            playwright.display()
        ));
    }
    Ok(Tools {
        node,
        chromium,
        playwright,
    })
}

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/web")
}

/// The tools, or None after saying loudly why the test is skipped; under CI=true a missing tool
/// fails the test.
fn tools_or_skip() -> Option<Tools> {
    match tools() {
        Ok(tools) => Some(tools),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("the browser test cannot run under CI: {why}")
        }
        Err(why) => {
            eprintln!("\n*** SKIPPED interop_web: {why} ***\n");
            None
        }
    }
}

/// A JSON string literal.
fn quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn web_console_in_a_browser() {
    let Some(tools) = tools_or_skip() else {
        return;
    };
    let t0 = Instant::now();
    let mut world = TrackWorld::new("web", TrackSetup::default());
    world.start_tracker();
    world.wait_settled(SETTLE, "web");
    let ns = &world.tracker_ns;
    let listen = format!("127.0.0.1:{WEB_PORT}");
    let url = format!("http://{listen}/");
    let serve_args = [
        "console",
        "serve",
        "--listen",
        &listen,
        "--tracker",
        &world.api(),
    ];
    let mut serve_command = ns.command(xenplug_bin(), &serve_args);
    serve_command.env("XENPLUG_LOG", "debug");
    let mut serve = ns.spawn("console-serve", serve_command);
    let ready = serve.wait_stdout(WAIT, |out| out.contains("console at http://").then_some(()));
    assert!(
        ready.is_some(),
        "console serve never said where it listens\n{}",
        serve.report()
    );
    let setup = t0.elapsed();

    // Without a browser: the page with its CSP, a cross-site POST refused, the port held.
    let page = curl(ns, &url, &[]);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.header("content-security-policy")
            .is_some_and(|csp| csp.starts_with("default-src 'self'")),
        "{page:?}"
    );
    let cross = curl(
        ns,
        &format!("http://{listen}/api/vms/{TRACK_VM_A1}/actions"),
        &[
            "-X",
            "POST",
            "-H",
            "Origin: http://evil.example",
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            "service=x&action=Destroy",
        ],
    );
    assert_eq!(cross.status, 403, "{cross:?}");
    let second = ns.run(
        xenplug_bin().to_str().expect("UTF-8 path"),
        &serve_args,
        Duration::from_secs(10),
    );
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("in use"),
        "{second:?}"
    );

    // The browser.
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("create target/test-artifacts");
    let screenshot = artifacts.join("console-web.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = TempDir::new("web-profile");
    let plan = [
        ("url", url.clone()),
        ("host", TRACK_HOST_A.to_string()),
        ("hostName", TRACK_HOST_NAMES[0].to_string()),
        ("vm", TRACK_VM_A1.to_string()),
        ("vmName", track_vm(TRACK_VM_A1).name.to_string()),
        ("echo", vm_service_type("Echo")),
        ("domainControl", SERVICE_DOMAIN_CONTROL.to_string()),
        ("text", ECHO_TEXT.to_string()),
        ("late", LATE_UUID.to_string()),
        ("lateName", LATE_NAME.to_string()),
        ("screenshot", screenshot.display().to_string()),
        ("profile", profile.path().display().to_string()),
        ("chromium", tools.chromium.display().to_string()),
        (
            "playwright",
            tools.playwright.join("index.mjs").display().to_string(),
        ),
    ]
    .iter()
    .map(|(key, value)| format!("{}:{}", quote(key), quote(value)))
    .collect::<Vec<_>>()
    .join(",");
    let script = web_dir().join("console.spec.mjs");
    let mut command = ns.command(&tools.node, &[script.to_str().expect("UTF-8 path")]);
    command.env("XENPLUG_WEB_PLAN", format!("{{{plan}}}"));
    let browser_start = Instant::now();
    let mut browser = ns.spawn("browser", command);
    let waiting = poll_until(BROWSER, || {
        if browser.stdout().contains("ADD-VM") {
            return Some(true);
        }
        browser.try_status().map(|_| false)
    });
    let report = |browser: &Proc, serve: &Proc| {
        format!(
            "{}\n{}\n{}",
            browser.report(),
            serve.report(),
            world.report()
        )
    };
    if waiting != Some(true) {
        browser.kill();
        panic!(
            "the browser script stopped or did not get to adding a VM within {BROWSER:?}\n{}",
            report(&browser, &serve)
        );
    }
    world.sims[0].write_domain(&Domain::new(LATE_UUID, LATE_NAME, "running"));
    let status = browser.wait_exit(BROWSER_END);
    let browser_time = browser_start.elapsed();
    assert!(
        status.is_some_and(|s| s.success()) && browser.stdout().contains("PASS"),
        "the browser script failed ({status:?})\n{}",
        report(&browser, &serve)
    );
    for line in browser.stdout().lines().filter(|l| l.starts_with("STEP ")) {
        eprintln!("browser: {line}");
    }

    // What the page did reached the hypervisor: paused, resumed, never destroyed.
    assert_eq!(
        world.sims[0]
            .read_domain("acme-1")
            .get("state")
            .map(String::as_str),
        Some("running"),
        "{}",
        report(&browser, &serve)
    );
    assert!(
        screenshot.is_file(),
        "no screenshot at {}",
        screenshot.display()
    );
    eprintln!("screenshot: {}", screenshot.display());
    eprintln!(
        "timing: topology and console up in {setup:?}; browser script {browser_time:?}; whole test {:?}",
        t0.elapsed()
    );
    serve.signal(libc::SIGTERM);
    assert!(
        serve
            .wait_exit(Duration::from_secs(5))
            .is_some_and(|s| s.success()),
        "console serve on SIGTERM\n{}",
        serve.report()
    );
}
