//! Who may call a hypervisor's mutating actions (`--allow-control`): callers outside the list
//! get UPnP error 606 for Pause and the like and still read everything; callers inside act;
//! without the flag only the host itself acts; `any` lets the whole subnet act. And a refusal
//! behind a tracker's relay reaches `console call` and the console's web API with its code.
//! Every test builds its own namespaces; every wait is bounded.

mod common;

use common::*;
use std::time::Duration;

/// Bound for one console command whose action is quick.
const COMMAND: Duration = Duration::from_secs(30);
/// Bound for a topology to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Port of `console serve` inside the tracker's namespace.
const WEB_PORT: u16 = 8781;

fn domain_control(xenplug: &Xenplug, vm: &str) -> String {
    format!("{}/control/domain/{vm}", xenplug.base())
}

/// DomainControl `action` on `vm` from `ns`: the HTTP status and the UPnP errorCode, if any.
fn call(ns: &Netns, xenplug: &Xenplug, vm: &str, action: &str) -> (u16, Option<String>, String) {
    let answer = soap_call(
        ns,
        &domain_control(xenplug, vm),
        SERVICE_DOMAIN_CONTROL,
        action,
        &[],
    );
    let code = xml_text(&answer.body, "errorCode").map(str::to_string);
    (answer.status, code, answer.body)
}

fn assert_refused(ns: &Netns, xenplug: &Xenplug, action: &str) {
    let (status, code, body) = call(ns, xenplug, VM_WEB, action);
    assert_eq!(
        (status, code.as_deref()),
        (500, Some("606")),
        "{action} from {}: {body}\n{}",
        ns.name(),
        xenplug.report()
    );
    assert!(
        xml_text(&body, "errorDescription").is_some_and(|d| d.starts_with("Action not authorized")),
        "{body}"
    );
}

fn assert_done(ns: &Netns, xenplug: &Xenplug, action: &str) {
    let (status, _, body) = call(ns, xenplug, VM_WEB, action);
    assert_eq!(
        status,
        200,
        "{action} from {}: {body}\n{}",
        ns.name(),
        xenplug.report()
    );
}

#[test]
fn outsiders_get_606_for_mutations_and_still_read() {
    let lan = Lan::new("auth-list", 3);
    let (device, insider, outsider) = (lan.host(0), lan.host(1), lan.host(2));
    let sim = SimDir::standard("auth-list");
    let options = Options {
        allow_control: vec![insider.addr.to_string()],
        ..Options::ifaces(&[&device.iface])
    };
    let xenplug = Xenplug::start_with(&device.ns, &sim, &options);

    // The outsider: Pause (and Destroy, and StartVirtualMachine) refused, the file untouched.
    assert_refused(&outsider.ns, &xenplug, "Pause");
    assert_refused(&outsider.ns, &xenplug, "Destroy");
    let start = soap_call(
        &outsider.ns,
        &format!("{}/control/hypervisor", xenplug.base()),
        SERVICE_HYPERVISOR,
        "StartVirtualMachine",
        &[("VirtualMachineId", VM_WEB)],
    );
    assert_eq!(xml_text(&start.body, "errorCode"), Some("606"), "{start:?}");
    assert_eq!(
        sim.read_domain("web").get("state").map(String::as_str),
        Some("running"),
        "a refused call changed nothing"
    );
    let refusals = poll_until(WAIT, || {
        let log = xenplug.log();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&format!("{}:", outsider.addr)) && l.contains("refused"))
            .collect();
        (lines.len() == 3).then(|| lines.iter().filter(|l| l.contains(" warn: ")).count())
    });
    assert_eq!(
        refusals,
        Some(1),
        "each refusal is logged with the peer's address, the first one as a warning and the \
         rest at debug level\n{}",
        xenplug.report()
    );

    // ... while everything read-only stays open to it.
    let (status, _, body) = call(&outsider.ns, &xenplug, VM_WEB, "GetState");
    assert_eq!(status, 200, "GetState: {body}");
    assert_eq!(xml_text(&body, "State"), Some("running"), "{body}");
    let (status, _, body) = call(&outsider.ns, &xenplug, VM_WEB, "GetInfo");
    assert_eq!(status, 200, "GetInfo: {body}");
    for action in ["GetHostInfo", "ListVirtualMachines", "GetVirtualMachineIds"] {
        let answer = soap_call(
            &outsider.ns,
            &format!("{}/control/hypervisor", xenplug.base()),
            SERVICE_HYPERVISOR,
            action,
            &[],
        );
        assert_eq!(answer.status, 200, "{action}: {answer:?}");
    }
    for path in ["/description.xml", "/scpd/DomainControl.xml"] {
        let answer = curl(&outsider.ns, &format!("{}{path}", xenplug.base()), &[]);
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
    }
    let callback = format!("CALLBACK: <http://{}:9/>", outsider.addr);
    let subscribed = curl(
        &outsider.ns,
        &format!("{}/event/domain/{VM_WEB}", xenplug.base()),
        &[
            "-X",
            "SUBSCRIBE",
            "-H",
            &callback,
            "-H",
            "NT: upnp:event",
            "-H",
            "TIMEOUT: Second-300",
        ],
    );
    assert_eq!(subscribed.status, 200, "SUBSCRIBE: {subscribed:?}");
    assert!(subscribed.header("sid").is_some(), "{subscribed:?}");

    // The insider acts.
    assert_done(&insider.ns, &xenplug, "Pause");
    sim.expect_state("web", "paused", WAIT);
    assert_done(&insider.ns, &xenplug, "Resume");
    sim.expect_state("web", "running", WAIT);
}

#[test]
fn default_is_the_host_itself_and_any_is_the_subnet() {
    let lan = Lan::new("auth-def", 2);
    let (device, peer) = (lan.host(0), lan.host(1));
    let sim = SimDir::standard("auth-def");
    let mut xenplug = Xenplug::start(&device.ns, &device.iface, &sim);
    assert!(
        xenplug
            .log()
            .contains("mutating actions only from this host"),
        "the default is said at start\n{}",
        xenplug.report()
    );
    assert_refused(&peer.ns, &xenplug, "Pause");
    // From the host itself (over its own interface address): allowed.
    assert_done(&device.ns, &xenplug, "Pause");
    sim.expect_state("web", "paused", WAIT);
    assert!(xenplug
        .terminate(WAIT)
        .is_some_and(|status| status.success()));

    let options = Options {
        allow_control: vec!["any".to_string()],
        ..Options::ifaces(&[&device.iface])
    };
    let xenplug = Xenplug::start_with(&device.ns, &sim, &options);
    assert!(
        xenplug
            .log()
            .lines()
            .any(|l| l.contains(" warn: ") && l.contains("--allow-control any")),
        "any is a warning at start\n{}",
        xenplug.report()
    );
    assert_done(&peer.ns, &xenplug, "Resume");
    sim.expect_state("web", "running", WAIT);
}

#[test]
fn a_refusal_behind_the_tracker_reaches_the_console_with_its_code() {
    // The hypervisors run with the default: the tracker (another host) is not allowed.
    let setup = TrackSetup {
        control_closed: true,
        ..TrackSetup::default()
    };
    let mut world = TrackWorld::new("auth-trk", setup);
    world.start_tracker();
    world.wait_settled(SETTLE, "auth-trk");
    let ns = &world.tracker_ns;
    let console = |args: &[&str]| {
        let mut full = vec!["console"];
        full.extend_from_slice(args);
        let api = world.api();
        full.extend_from_slice(&["--tracker", &api]);
        let mut command = ns.command(xenplug_bin(), &full);
        command.env("XENPLUG_TOKEN", world.access.token("admin"));
        run_bounded(command, COMMAND, &format!("xenplug {}", full.join(" ")))
    };

    let output = console(&["call", "acme-1", "Pause", "--yes"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "a refused call fails: {stderr}\n{}",
        world.report()
    );
    assert!(
        stderr.contains("UPnP error 606") && stderr.contains("Action not authorized"),
        "the console prints the code and the description: {stderr}"
    );
    assert_eq!(
        world.sims[0]
            .read_domain("acme-1")
            .get("state")
            .map(String::as_str),
        Some("running")
    );
    let argument = format!("VirtualMachineId={TRACK_VM_A2}");
    let output = console(&["call", "dom0-b", "StartVirtualMachine", &argument]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.code() == Some(1) && stderr.contains("UPnP error 606"),
        "StartVirtualMachine through the hypervisor relay: {stderr}"
    );

    // Reads through the same relay still work.
    let output = console(&["call", "acme-1", "GetState"]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().any(|l| l == "State=running"),
        "GetState through the relay: {stdout} {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let refused_from_tracker = world.hypervisors[0]
        .log()
        .lines()
        .any(|l| l.contains(&format!("{}:", track_leg_addr(1))) && l.contains("refused"));
    assert!(
        refused_from_tracker,
        "the hypervisor logs the tracker's address\n{}",
        world.hypervisors[0].report()
    );

    // The web console's API answers the same error object the page shows inline.
    let listen = format!("127.0.0.1:{WEB_PORT}");
    // No --access: the page has no sign-in and the server asks with its own token.
    let mut serve = start_console_serve(
        ns,
        &[
            "console",
            "serve",
            "--listen",
            &listen,
            "--tracker",
            &world.api(),
        ],
        &[("XENPLUG_TOKEN", world.access.token("admin"))],
    );
    let origin = format!("Origin: http://{listen}");
    let form = format!(
        "service={}&action=Pause",
        SERVICE_DOMAIN_CONTROL.replace(':', "%3A")
    );
    let answer = curl(
        ns,
        &format!("http://{listen}/api/vms/{TRACK_VM_A1}/actions"),
        &[
            "-X",
            "POST",
            "-H",
            &origin,
            "-H",
            "Content-Type: application/x-www-form-urlencoded",
            "--data-binary",
            &form,
        ],
    );
    let document = Json::parse(&answer.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {answer:?}\n{}", serve.report()));
    let error = document
        .get("error")
        .unwrap_or_else(|| panic!("{answer:?}"));
    assert_eq!(
        error.get("code").and_then(Json::u64),
        Some(606),
        "{answer:?}"
    );
    assert!(
        error
            .get("description")
            .and_then(Json::str)
            .is_some_and(|d| d.starts_with("Action not authorized")),
        "{answer:?}"
    );
    serve.signal(libc::SIGTERM);
    assert!(serve.wait_exit(WAIT).is_some());
}
