//! Hostile peers against `advertise hypervisor`, one test per attack: a GENA subscription
//! flood from one address, SSDP search floods from one and from 1,000 forged-looking source
//! addresses, a 60 KiB argument echoed into an error, and a control request a browser could
//! forge. Each attack runs from a namespace the test built, bounded in count and time, with
//! the peers in `tests/interop/hostile.py` (standard library Python).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::time::{Duration, Instant};

/// The peers' script.
fn hostile() -> String {
    format!("{}/tests/interop/hostile.py", env!("CARGO_MANIFEST_DIR"))
}

/// Runs `hostile.py ARGS...` in `ns` within `bound`: its JSON lines.
fn run_hostile(ns: &Netns, args: &[&str], bound: Duration) -> Vec<BTreeMap<String, String>> {
    let script = hostile();
    let mut full = vec![script.as_str()];
    full.extend_from_slice(args);
    let output = ns.run("/usr/bin/python3", &full, bound);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() || !stdout.is_empty(),
        "hostile.py {args:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    json_lines(&stdout)
}

fn field<'a>(line: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    line.get(key).map(String::as_str).unwrap_or_default()
}

fn number(line: &BTreeMap<String, String>, key: &str) -> u64 {
    field(line, key).parse().unwrap_or_default()
}

/// Seconds of a `Second-N` TIMEOUT header.
fn timeout_seconds(header: &str) -> Option<u64> {
    header.strip_prefix("Second-")?.parse().ok()
}

/// `hostile.py COMMAND --url URL --bind <host's address> EXTRA...` on `host`.
fn gena_peer(
    host: &Host,
    command: &str,
    url: &str,
    extra: &[&str],
) -> Vec<BTreeMap<String, String>> {
    let bind = host.addr.to_string();
    let mut args = vec![command, "--url", url, "--bind", &bind];
    args.extend_from_slice(extra);
    run_hostile(&host.ns, &args, Duration::from_secs(30))
}

#[test]
fn a_subscription_flood_from_one_address_locks_no_one_out() {
    let lan = Lan::with_subnet("gena-flood", 3, 31);
    let (device, attacker, subscriber) = (lan.host(0), lan.host(1), lan.host(2));
    let sim = SimDir::standard("gena-flood");
    let xenplug = Xenplug::start(&device.ns, &device.iface, &sim);
    let event_url = format!("{}/event/hypervisor", xenplug.base());

    let flood = gena_peer(attacker, "gena-flood", &event_url, &["--count", "64"]);
    assert_eq!(flood.len(), 64, "{flood:?}");
    for line in &flood {
        // Each is granted (a fifth replaces the address's oldest), for at most 1800 s.
        assert_eq!(
            field(line, "status"),
            "200",
            "{line:?}\n{}",
            xenplug.report()
        );
        let granted = timeout_seconds(field(line, "timeout"));
        assert!(granted.is_some_and(|s| s <= 1800), "{line:?}");
    }

    let answer = gena_peer(subscriber, "subscribe", &event_url, &["--timeout", "10"]);
    let subscribed = answer
        .iter()
        .find(|line| field(line, "kind") == "subscribed")
        .unwrap_or_else(|| panic!("no SUBSCRIBE answer: {answer:?}\n{}", xenplug.report()));
    assert_eq!(field(subscribed, "status"), "200", "{subscribed:?}");
    let granted = timeout_seconds(field(subscribed, "timeout"));
    assert!(
        granted.is_some_and(|s| s <= 1800),
        "asked Second-86400, granted {subscribed:?}"
    );
    let event = answer
        .iter()
        .find(|line| field(line, "kind") == "event")
        .unwrap_or_else(|| {
            panic!(
                "no initial event: {answer:?}\n{}",
                xenplug.report_with_path()
            )
        });
    assert_eq!(field(event, "seq"), "0", "{event:?}");
    assert_eq!(field(event, "sid"), field(subscribed, "sid"));
    assert!(field(event, "body").contains(VM_WEB), "{event:?}");

    // The attacker's replacements are logged at info once, then at debug.
    let log = xenplug.log();
    let noticed = log
        .lines()
        .filter(|l| l.contains(" info: ") && l.contains("holds the most subscriptions"))
        .count();
    assert_eq!(noticed, 1, "{}", xenplug.report());
}

/// Bytes a namespace's interface has received and sent: (rx, tx).
fn counters(ns: &Netns, iface: &str) -> (u64, u64) {
    let read = |what: &str| -> u64 {
        let path = format!("/sys/class/net/{iface}/statistics/{what}");
        ns.ok("cat", &[&path]).trim().parse().expect("a counter")
    };
    (read("rx_bytes"), read("tx_bytes"))
}

/// Addresses the 1,000 rotating sources use, from 10.99.100.1 (inside the device's /16).
const ROTATING_FIRST: &str = "10.99.100.1";
const ROTATING: usize = 1000;

#[test]
fn ssdp_search_floods_are_not_amplified() {
    let lan = Lan::with_prefix("ssdp-flood", 3, 32, 16);
    let (device, attacker, searcher) = (lan.host(0), lan.host(1), lan.host(2));
    // The rotating sources are addresses of the attacker's interface, so the device's answers
    // reach it (and are counted) rather than dying in ARP.
    let first: std::net::Ipv4Addr = ROTATING_FIRST.parse().expect("address");
    let batch: String = (0..ROTATING)
        .map(|n| {
            let address = std::net::Ipv4Addr::from(u32::from(first) + n as u32);
            format!("addr add {address}/16 dev eth0\n")
        })
        .collect();
    let batch_file = attacker.ns.log_dir().join("addresses.batch");
    fs::write(&batch_file, batch).expect("write the address batch");
    attacker
        .ns
        .ok("ip", &["-batch", &batch_file.display().to_string()]);

    let sim = SimDir::standard("ssdp-flood");
    let xenplug = Xenplug::start(&device.ns, &device.iface, &sim);
    let device_addr = device.addr.to_string();
    let searcher_addr = searcher.addr.to_string();

    // A well-behaved control point searches before each flood, then twice during it.
    let probe = |offsets: &str| {
        let mut command = searcher.ns.command(
            "/usr/bin/python3",
            &[
                &hostile(),
                "ssdp-probe",
                "--bind",
                &searcher_addr,
                "--device",
                &device_addr,
                "--at",
                offsets,
            ],
        );
        command.env("PYTHONUNBUFFERED", "1");
        searcher.ns.spawn("probe", command)
    };

    for (label, sources) in [("one source", None), ("1,000 sources", Some(ROTATING))] {
        let attacker_addr = attacker.addr.to_string();
        let count = ROTATING.to_string();
        let mut args = vec!["ssdp-flood", "--target", &device_addr, "--st", "ssdp:all"];
        match sources {
            None => args.extend(["--source", &attacker_addr]),
            Some(_) => args.extend(["--sources-from", ROTATING_FIRST, "--sources", &count]),
        }
        let searching = probe("0,2.5,4.5");
        // The flood starts a second after the control point's first search.
        std::thread::sleep(Duration::from_secs(1));
        let (rx_before, tx_before) = counters(&device.ns, &device.iface);
        let started = Instant::now();
        let flood = run_hostile(&attacker.ns, &args, Duration::from_secs(30));
        let (rx_after, tx_after) = counters(&device.ns, &device.iface);
        let (received, sent) = (rx_after - rx_before, tx_after - tx_before);
        let report = flood.first().cloned().unwrap_or_default();
        assert!(
            number(&report, "sent_datagrams") >= 5000,
            "{label}: the flood was a flood: {report:?}"
        );
        let amplification = sent as f64 / received as f64;
        eprintln!(
            "ssdp {label}: device received {received} bytes, sent {sent} ({amplification:.2}x) \
             in {:?}; flooder {report:?}",
            started.elapsed()
        );
        // Measured 0.1x (one source) and 1.9x (1,000 sources) on this 10-target device.
        assert!(
            amplification < 10.0,
            "{label}: {amplification:.2}x\n{}",
            xenplug.report()
        );

        let answers = searching
            .wait_stdout(Duration::from_secs(15), |out| {
                let lines = json_lines(out);
                (lines.len() >= 3).then_some(lines)
            })
            .unwrap_or_else(|| panic!("{label}: the probe did not finish\n{}", searching.report()));
        for answer in &answers {
            assert!(
                number(answer, "root") >= 1,
                "{label}: a search at {} s got no root device answer: {answers:?}\n{}",
                field(answer, "at"),
                xenplug.report()
            );
        }
    }
}

#[test]
fn a_long_argument_gets_a_short_error_and_short_log_lines() {
    let ns = Netns::new("long-arg");
    let sim = SimDir::standard("long-arg");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    let control = format!("{}/control/hypervisor", xenplug.base());
    let argument = "x".repeat(60 * 1024);
    let answer = soap_call(
        &ns,
        &control,
        SERVICE_HYPERVISOR,
        "StartVirtualMachine",
        &[("VirtualMachineId", &argument)],
    );
    assert_eq!(answer.status, 500, "{}", xenplug.report());
    assert_eq!(xml_text(&answer.body, "errorCode"), Some("600"));
    let description = xml_text(&answer.body, "errorDescription")
        .unwrap_or_default()
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(
        description.len() <= 256 && description.starts_with("not a UUID"),
        "{} bytes: {description}",
        description.len()
    );
    // Let the call's log line be written.
    let logged = poll_until(WAIT, || {
        xenplug
            .log()
            .contains("StartVirtualMachine on hypervisor: UPnP error 600")
            .then_some(())
    });
    assert!(logged.is_some(), "{}", xenplug.report());
    let log = xenplug.log();
    let longest = log.lines().map(str::len).max().unwrap_or_default();
    assert!(
        longest <= 400,
        "a log line of {longest} bytes: {}",
        log.lines().find(|l| l.len() == longest).unwrap_or_default()
    );
}

#[test]
fn a_control_request_a_browser_could_forge_does_nothing() {
    let ns = Netns::new("forms");
    let sim = SimDir::standard("forms");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    let control = format!("{}/control/domain/{VM_WEB}", xenplug.base());
    let envelope = format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:Pause xmlns:u=\"{SERVICE_DOMAIN_CONTROL}\"/></s:Body></s:Envelope>"
    );
    let soap_action = format!("SOAPACTION: \"{SERVICE_DOMAIN_CONTROL}#Pause\"");
    // What a page may send cross-site without a preflight: text/plain, no header of its own;
    // and the near misses.
    let cases: [(&[&str], u16); 4] = [
        (&["-H", "Content-Type: text/plain"], 415),
        (&["-H", "Content-Type: text/plain", "-H", &soap_action], 415),
        (
            &["-H", "Content-Type: application/x-www-form-urlencoded"],
            415,
        ),
        (&["-H", "Content-Type: text/xml; charset=\"utf-8\""], 400),
    ];
    for (headers, status) in cases {
        let mut args = vec!["-X", "POST", "--data-binary", &envelope];
        args.extend_from_slice(headers);
        let answer = curl(&ns, &control, &args);
        assert_eq!(answer.status, status, "{headers:?}: {answer:?}");
    }
    // Nothing happened, and the refusals are in the log.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        sim.read_domain("web").get("state").map(String::as_str),
        Some("running")
    );
    let log = xenplug.log();
    assert!(
        log.contains("refused (415)") && log.contains("refused (400)"),
        "{}",
        xenplug.report()
    );
    // A proper SOAP call still works.
    let answer = soap_call(&ns, &control, SERVICE_DOMAIN_CONTROL, "Pause", &[]);
    assert_eq!(answer.status, 200, "{answer:?}\n{}", xenplug.report());
    sim.expect_state("web", "paused", WAIT);
}
