//! Third-party UPnP peers: gssdp-discover, the GUPnP peer and async-upnp-client, found (never
//! skipped), started in a namespace, and their output read.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use super::binary::Xenplug;
use super::constants::WAIT;
use super::json::parse_flat_json;
use super::netns::Netns;
use super::procs::{poll_until, tail, Proc};

fn interop_script(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn python_has(python: &str, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn python_executable(python: &str) -> Option<String> {
    let output = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !path.is_empty()).then_some(path)
}

/// The python that has Debian's GUPnP bindings: `$XENPLUG_GI_PYTHON`, else /usr/bin/python3.
/// Panics (never skips) if GUPnP 1.6 cannot be imported.
pub fn gi_python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let python =
            std::env::var("XENPLUG_GI_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string());
        let check = "gi; gi.require_version('GUPnP', '1.6'); from gi.repository import GUPnP";
        assert!(
            python_has(&python, check),
            "peer missing: {python} cannot import GUPnP 1.6 through gi \
             (install python3-gi and gir1.2-gupnp-1.6, or set XENPLUG_GI_PYTHON)"
        );
        python
    })
}

/// The python that has async-upnp-client: `$XENPLUG_AUPNP_PYTHON`, else `python3` on PATH,
/// else /usr/bin/python3. Resolved to an absolute path. Panics (never skips) if none has it.
pub fn aupnp_python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var("XENPLUG_AUPNP_PYTHON") {
            Ok(p) => vec![p],
            Err(_) => vec!["python3".to_string(), "/usr/bin/python3".to_string()],
        };
        for candidate in &candidates {
            if python_has(
                candidate,
                "async_upnp_client.client_factory, async_upnp_client.aiohttp",
            ) {
                if let Some(path) = python_executable(candidate) {
                    return path;
                }
            }
        }
        panic!(
            "peer missing: none of {candidates:?} can import async_upnp_client \
             (pip install async-upnp-client, or set XENPLUG_AUPNP_PYTHON)"
        );
    })
}

/// Require that a program is on PATH; panics (never skips) if not.
pub fn require_program(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "peer missing: {program} not on PATH (install the {package} package)"
    );
}

/// What gssdp-discover printed: (available or unavailable, USN, Location).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    /// true for "resource available", false for "resource unavailable".
    pub available: bool,
    /// USN.
    pub usn: String,
    /// Location (available only).
    pub location: String,
}

/// Parse gssdp-discover's output.
pub fn parse_gssdp(out: &str) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    for line in out.lines() {
        let trimmed = line.trim();
        if trimmed == "resource available" || trimmed == "resource unavailable" {
            seen.push(Seen {
                available: trimmed == "resource available",
                usn: String::new(),
                location: String::new(),
            });
        } else if let Some(current) = seen.last_mut() {
            if let Some(usn) = trimmed.strip_prefix("USN:") {
                current.usn = usn.trim().to_string();
            } else if let Some(location) = trimmed.strip_prefix("Location:") {
                current.location = location.trim().to_string();
            }
        }
    }
    seen
}

/// Run `gssdp-discover -i IFACE -t TARGET -n SECONDS -m MODE` inside `ns` (spawned).
pub fn gssdp_discover(ns: &Netns, iface: &str, target: &str, seconds: u32, mode: &str) -> Proc {
    require_program("gssdp-discover", "gupnp-tools");
    let n = seconds.to_string();
    let command = ns.command(
        "gssdp-discover",
        &["-i", iface, "-t", target, "-n", &n, "-m", mode],
    );
    ns.spawn(
        &format!("gssdp-{}", target.rsplit(':').nth(1).unwrap_or(target)),
        command,
    )
}

/// USNs gssdp-discover has reported, as a set, for `available` (true) or unavailable.
pub fn gssdp_usns(proc: &Proc, available: bool) -> BTreeSet<String> {
    parse_gssdp(&proc.stdout())
        .into_iter()
        .filter(|s| s.available == available)
        .map(|s| s.usn)
        .collect()
}

/// Run the GUPnP peer (tests/interop/gupnp_peer.py) to completion inside `ns`.
pub fn gupnp(ns: &Netns, iface: &str, args: &[&str]) -> Output {
    let mut full = vec![
        interop_script("gupnp_peer.py"),
        "--iface".into(),
        iface.into(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.run(gi_python(), &refs, Duration::from_secs(30))
}

/// Start the GUPnP peer in the background.
pub fn gupnp_spawn(ns: &Netns, iface: &str, args: &[&str]) -> Proc {
    let mut full = vec![
        interop_script("gupnp_peer.py"),
        "--iface".into(),
        iface.into(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.spawn("gupnp-peer", ns.command(gi_python(), &refs))
}

/// Run the async-upnp-client peer (tests/interop/aupnp_peer.py) to completion inside `ns`.
pub fn aupnp(ns: &Netns, args: &[&str]) -> Output {
    let mut full = vec![interop_script("aupnp_peer.py")];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.run(aupnp_python(), &refs, Duration::from_secs(30))
}

/// Start the async-upnp-client peer in the background.
pub fn aupnp_spawn(ns: &Netns, args: &[&str]) -> Proc {
    let mut full = vec![interop_script("aupnp_peer.py")];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.spawn("aupnp-peer", ns.command(aupnp_python(), &refs))
}

/// async-upnp-client's own CLI (`upnp-client ARGS`), run as `python -m async_upnp_client.cli`
/// so the script need not be on PATH.
pub fn upnp_client_command(ns: &Netns, args: &[&str]) -> Command {
    let mut full = vec!["-m", "async_upnp_client.cli"];
    full.extend_from_slice(args);
    ns.command(aupnp_python(), &full)
}

/// Parse every line of `out` that is a flat JSON object.
pub fn json_lines(out: &str) -> Vec<BTreeMap<String, String>> {
    out.lines().filter_map(parse_flat_json).collect()
}

/// Require a successful peer run; returns stdout.
pub fn peer_ok(output: &Output, what: &str, xenplug: &Xenplug) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        tail(&String::from_utf8_lossy(&output.stderr), 40),
        xenplug.report()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Records of one `kind` from a peer's JSON-lines output.
pub fn records(out: &str, kind: &str) -> Vec<BTreeMap<String, String>> {
    json_lines(out)
        .into_iter()
        .filter(|r| r.get("kind").map(String::as_str) == Some(kind))
        .collect()
}

/// A field of a record, or "".
pub fn field<'a>(record: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    record.get(key).map(String::as_str).unwrap_or("")
}

/// A header of an SSDP message printed by upnp-client, by case-insensitive name, or "".
pub fn hdr<'a>(record: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Comma-separated list field as a set.
pub fn list_field(record: &BTreeMap<String, String>, key: &str) -> BTreeSet<String> {
    field(record, key)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Set of string slices, owned.
pub fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Number of UDP sockets bound to port 1900 inside `ns` (listener readiness).
pub fn udp_1900_sockets(ns: &Netns) -> usize {
    ns.ok("ss", &["-H", "-u", "-a", "-n", "sport = :1900"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Start `upnp-client advertisements --bind ADDR` and wait until its socket is bound.
pub fn advertisements_listener(ns: &Netns, bind: &str) -> Proc {
    let before = udp_1900_sockets(ns);
    let proc = ns.spawn(
        "upnp-client-adv",
        upnp_client_command(ns, &["advertisements", "--bind", bind]),
    );
    let ready = poll_until(WAIT, || (udp_1900_sockets(ns) > before).then_some(()));
    assert!(
        ready.is_some(),
        "upnp-client advertisements never bound port 1900\n{}",
        proc.report()
    );
    proc
}

/// Start gssdp-discover listening (and searching) and wait until its socket is bound.
pub fn gssdp_listener(ns: &Netns, iface: &str, target: &str, seconds: u32, mode: &str) -> Proc {
    let before = udp_1900_sockets(ns);
    let proc = gssdp_discover(ns, iface, target, seconds, mode);
    let ready = poll_until(WAIT, || (udp_1900_sockets(ns) > before).then_some(()));
    assert!(
        ready.is_some(),
        "gssdp-discover never bound port 1900\n{}",
        proc.report()
    );
    proc
}

/// Call an action through a peer's `call` command; returns the out record.
pub fn call_ok(output: Output, what: &str, xenplug: &Xenplug) -> BTreeMap<String, String> {
    let out = peer_ok(&output, what, xenplug);
    records(&out, "out")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{what}: no result\n{out}"))
}

/// A peer's `call` that must fail with a UPnP error (exit status 4); returns the error record
/// (`code`, `message`, and from async-upnp-client `description`).
pub fn call_err(output: Output, what: &str, xenplug: &Xenplug) -> BTreeMap<String, String> {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{what}: expected a UPnP error (peer exit status 4), got {}\nstdout:\n{out}\nstderr:\n{}\n{}",
        output.status,
        tail(&String::from_utf8_lossy(&output.stderr), 40),
        xenplug.report_with_path()
    );
    records(&out, "error")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{what}: no error record\n{out}"))
}
