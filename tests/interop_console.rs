//! The console (`xenplug console tree | call | watch`) against a real tracker, hypervisors and
//! VM advertisers (tests/common: `TrackWorld`): a provider LAN with two simulated hypervisors,
//! two tenant LANs (acme, beta) with VM advertisers, and a tracker namespace with a leg in
//! each. The console runs in the tracker's namespace against the provider API on 127.0.0.1,
//! or in a tenant VM's namespace against the tenant listener, or discovers by itself on the
//! tracker namespace's legs (`--iface`), with or without a tracker. Every wait is bounded.

mod common;

use common::*;
use std::process::Output;
use std::time::{Duration, Instant};

/// Bound for a topology to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Bound for one console command whose action is quick.
const COMMAND: Duration = Duration::from_secs(30);
/// How long the slow action of `console_waits_for_a_slow_relayed_action` takes (the sim
/// host's `delay_ms`): longer than the relay's and the console's bounds for reads.
const SLOW_ACTION_MS: u64 = 20_000;
/// Bound for the console command running it: the action plus 30 s.
const SLOW_COMMAND: Duration = Duration::from_secs(SLOW_ACTION_MS / 1000 + 30);
/// Bound for a sim file to follow a lifecycle action.
const SIM: Duration = Duration::from_secs(5);

fn world_with_tracker(tag: &str, setup: TrackSetup) -> TrackWorld {
    let mut world = TrackWorld::new(tag, setup);
    world.start_tracker();
    world.wait_settled(SETTLE, tag);
    world
}

/// `xenplug console ARGS --tracker URL` in `ns` with `token` (`XENPLUG_TOKEN`), stdin and
/// stdout not terminals.
fn console(ns: &Netns, url: &str, token: &str, args: &[&str]) -> Output {
    let mut full = vec!["console"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--tracker", url]);
    let mut command = ns.command(xenplug_bin(), &full);
    command.env("XENPLUG_TOKEN", token);
    run_bounded(command, COMMAND, &format!("xenplug {}", full.join(" ")))
}

/// The tracker namespace's legs as the console's own networks: mgmt a provider network, acme
/// and beta tenant networks (what `TrackWorld::tracker_args` gives the tracker).
const ALL_LEGS: [&str; 6] = [
    "--iface",
    "eth0",
    "--iface",
    "eth1:acme",
    "--iface",
    "eth2:beta",
];

/// `xenplug console ARGS` in `ns` as given (no `--tracker` added), and how long it took; with
/// `token` in `XENPLUG_TOKEN` when there is one.
fn console_with(ns: &Netns, token: Option<&str>, args: &[&str]) -> (Output, Duration) {
    let mut full = vec!["console"];
    full.extend_from_slice(args);
    let started = Instant::now();
    let mut command = ns.command(xenplug_bin(), &full);
    if let Some(token) = token {
        command.env("XENPLUG_TOKEN", token);
    }
    let output = run_bounded(command, COMMAND, &format!("xenplug {}", full.join(" ")));
    (output, started.elapsed())
}

/// `xenplug console ARGS` in `ns` as given, without a token.
fn console_as_is(ns: &Netns, args: &[&str]) -> (Output, Duration) {
    console_with(ns, None, args)
}

/// `xenplug console ARGS --iface eth0 --iface eth1:acme --iface eth2:beta` in the tracker's
/// namespace: the console discovering everything by itself.
fn discovering(world: &TrackWorld, args: &[&str]) -> (Output, Duration) {
    let mut full = args.to_vec();
    full.extend_from_slice(&ALL_LEGS);
    console_as_is(&world.tracker_ns, &full)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// The provider's console in the tracker's namespace.
fn provider(world: &TrackWorld, args: &[&str]) -> Output {
    console(
        &world.tracker_ns,
        &world.api(),
        world.access.token("admin"),
        args,
    )
}

fn sim_state(world: &TrackWorld, host: usize, name: &str) -> Option<String> {
    world.sims[host].read_domain(name).get("state").cloned()
}

#[test]
fn console_tree_shows_what_was_started() {
    let world = world_with_tracker("con-tree", TrackSetup::default());

    let output = provider(&world, &["tree", "--json"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        world.report()
    );
    let tree = Json::parse(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("tree --json is not JSON ({e}): {}", show(&output)));
    for (h, host) in TRACK_HOSTS.iter().enumerate() {
        let found = tree
            .list("hypervisors")
            .iter()
            .find(|x| x.s("uuid") == *host)
            .unwrap_or_else(|| panic!("no hypervisor {host}: {}", show(&output)));
        // The friendly name, "Xen hypervisor <host name>".
        assert!(
            found.s("name").ends_with(TRACK_HOST_NAMES[h]),
            "{}",
            show(&output)
        );
    }
    let echo = vm_service_type("Echo");
    for vm in TRACK_VMS {
        let (host, found) = tree_vm(&tree, vm.uuid)
            .unwrap_or_else(|| panic!("no VM {} in tree --json: {}", vm.uuid, show(&output)));
        assert_eq!(
            host,
            vm.host.map(|h| TRACK_HOSTS[h].to_string()),
            "{}",
            vm.uuid
        );
        assert_eq!(found.s("name"), vm.name);
        assert_eq!(found.s("tenant"), vm.tenant);
        let service = found
            .list("services")
            .iter()
            .find(|s| s.s("type") == echo)
            .unwrap_or_else(|| panic!("{} without Echo: {}", vm.uuid, show(&output)));
        assert!(
            service
                .list("actions")
                .iter()
                .any(|a| a.s("name") == "Echo"),
            "{}",
            show(&output)
        );
    }

    let output = provider(&world, &["tree"]);
    assert!(output.status.success(), "{}", show(&output));
    let plain = text(&output.stdout);
    assert!(!plain.contains('\u{1b}'), "colour when piped: {plain:?}");
    for vm in TRACK_VMS {
        assert!(
            plain.contains(vm.name) && plain.contains(vm.uuid),
            "{} missing:\n{plain}",
            vm.name
        );
    }
    for name in TRACK_HOST_NAMES {
        assert!(plain.contains(name), "{name} missing:\n{plain}");
    }
    let devirtualized = plain
        .find("de-virtualized")
        .unwrap_or_else(|| panic!("no de-virtualized section:\n{plain}"));
    assert!(
        plain[devirtualized..].contains("acme-lost"),
        "the lost VM is shown apart:\n{plain}"
    );
    assert!(plain.contains("Echo:1: Echo"), "{plain}");
}

#[test]
fn console_calls_lifecycle_and_owner_actions() {
    let world = world_with_tracker("con-call", TrackSetup::default());
    let mut watch_command = world.tracker_ns.command(
        xenplug_bin(),
        &["console", "watch", "--tracker", &world.api()],
    );
    watch_command.env("XENPLUG_TOKEN", world.access.token("admin"));
    let mut watch = world.tracker_ns.spawn("console-watch", watch_command);

    // Lifecycle: Pause and Resume through the relay to the Domain device on hypervisor A.
    let output = provider(&world, &["call", "acme-1", "Pause", "--yes"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        world.report()
    );
    world.sims[0].expect_state("acme-1", "paused", SIM);
    // A UPnP error: a paused domain cannot reboot (701), printed with its code, exit 1.
    let output = provider(&world, &["call", "acme-1", "Reboot", "--yes"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("UPnP error 701"),
        "{}",
        show(&output)
    );
    let output = provider(&world, &["call", TRACK_VM_A1, "Resume", "--yes"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        world.report()
    );
    world.sims[0].expect_state("acme-1", "running", SIM);
    // On hypervisor B too, by name.
    let output = provider(&world, &["call", "beta-2", "GetState"]);
    assert!(output.status.success(), "{}", show(&output));
    assert_eq!(text(&output.stdout), "State=running\n", "{}", show(&output));

    // The owner's action through the relay.
    let output = provider(&world, &["call", "acme-2", "Echo", "Text=hi"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        world.report()
    );
    assert!(
        text(&output.stdout).lines().any(|l| l == "Reply=hi"),
        "{}",
        show(&output)
    );

    // Unknown target, unknown action: exit 2.
    let output = provider(&world, &["call", "no-such-vm", "Pause", "--yes"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let output = provider(&world, &["call", "acme-1", "Frobnicate"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));

    // Destructive without --yes and without a terminal: refused, nothing happens.
    let output = provider(&world, &["call", "acme-1", "Destroy"]);
    assert!(!output.status.success(), "{}", show(&output));
    assert!(text(&output.stderr).contains("--yes"), "{}", show(&output));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));

    // The watcher saw the pause, one line per event; it stops on SIGTERM.
    let seen = watch.wait_stdout(SIM, |out| {
        out.lines()
            .any(|l| l.contains("vm-state-changed") && l.contains(TRACK_VM_A1))
            .then_some(())
    });
    assert!(seen.is_some(), "watch output:\n{}", watch.report());
    watch.signal(libc::SIGTERM);
    let status = watch.wait_exit(Duration::from_secs(5));
    assert!(
        status.is_some_and(|s| s.success()),
        "watch on SIGTERM: {status:?}\n{}",
        watch.report()
    );
}

#[test]
fn console_waits_for_a_slow_relayed_action() {
    // A Pause that takes 20 s on hypervisor A (as `xl save` of a big guest takes minutes):
    // the hypervisor's HTTP server, the tracker's relay and the console all wait for it.
    let world = world_with_tracker("con-slow", TrackSetup::default());
    let delay = SLOW_ACTION_MS.to_string();
    world.sims[0].write_host_with(
        TRACK_HOST_A,
        TRACK_HOST_NAMES[0],
        &[("delay_ms", delay.as_str())],
    );
    let started = Instant::now();
    let args = [
        "console",
        "call",
        "acme-1",
        "Pause",
        "--yes",
        "--tracker",
        &world.api(),
    ];
    let mut command = world.tracker_ns.command(xenplug_bin(), &args);
    command.env("XENPLUG_TOKEN", world.access.token("admin"));
    let output = run_bounded(
        command,
        SLOW_COMMAND,
        "xenplug console call acme-1 Pause (slow)",
    );
    let took = started.elapsed();
    eprintln!("timing: a {SLOW_ACTION_MS} ms Pause answered through the relay after {took:?}");
    let log = world.hypervisors[0].log();
    assert!(
        log.contains(&format!(
            "sim: Pause of {TRACK_VM_A1} takes {}s",
            SLOW_ACTION_MS / 1000
        )),
        "the sim backend did not slow the Pause down\n{}",
        world.hypervisors[0].report()
    );
    assert!(
        output.status.success(),
        "a slow Pause reported failed after {took:?}\n{}\n{}\n{}",
        show(&output),
        world.hypervisors[0].report(),
        world.report()
    );
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("paused"));
}

#[test]
fn console_tenant_listener_refuses_domain_control() {
    let world = world_with_tracker(
        "con-tenant",
        TrackSetup {
            api_any: true,
            ..TrackSetup::default()
        },
    );
    let ns = &world.vm_host(TRACK_VM_A1).ns;
    let base = format!("http://{}:{TRACK_API_PORT}", track_leg_addr(2));

    // The relay itself: its own VM, but a lifecycle action the tracker's --tenant-control does
    // not list: 403.
    let acme = world.access.header("acme");
    let response = curl(
        ns,
        &format!("{base}/api/vms/{TRACK_VM_A1}/actions"),
        &[
            "-X",
            "POST",
            "-H",
            &acme,
            "--data-binary",
            &format!(
                "service={}&action=Pause",
                SERVICE_DOMAIN_CONTROL.replace(':', "%3A")
            ),
        ],
    );
    assert_eq!(response.status, 403, "{response:?}\n{}", world.report());
    // The hypervisor relay: a tenant listener knows no hypervisor.
    let response = curl(
        ns,
        &format!("{base}/api/hypervisors/{TRACK_HOST_A}/actions"),
        &[
            "-X",
            "POST",
            "-H",
            &acme,
            "--data-binary",
            "service=urn%3Axenplug-org%3Aservice%3AHypervisor%3A1&action=GetHostInfo",
        ],
    );
    assert_eq!(response.status, 404, "{response:?}\n{}", world.report());

    // The console in the tenant's network: its own VMs, and Pause refused (403, exit 1).
    let token = world.access.token("acme");
    let output = console(ns, &base, token, &["tree"]);
    assert!(output.status.success(), "{}", show(&output));
    let plain = text(&output.stdout);
    assert!(
        plain.contains("acme-1") && !plain.contains("beta-1"),
        "{plain}"
    );
    assert!(
        !plain.contains("dom0-a"),
        "no hypervisor in a tenant view: {plain}"
    );
    let output = console(ns, &base, token, &["call", "acme-1", "Pause", "--yes"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("refused: 403"),
        "{}",
        show(&output)
    );
    // Its own action still works from there.
    let output = console(ns, &base, token, &["call", "acme-1", "Echo", "Text=own"]);
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        text(&output.stdout).contains("Reply=own"),
        "{}",
        show(&output)
    );
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));
}

/// Checks that `tree` (a provider tree document) lists exactly the topology's hypervisors and
/// VMs, each VM placed where it was started, with its tenant and its Echo action's arguments.
fn expect_topology(tree: &Json, context: &str) {
    let hosts = tree.list("hypervisors");
    let uuids: Vec<&str> = hosts.iter().map(|h| h.s("uuid")).collect();
    assert_eq!(uuids.len(), TRACK_HOSTS.len(), "{context}");
    for (h, host) in TRACK_HOSTS.iter().enumerate() {
        let found = hosts
            .iter()
            .find(|x| x.s("uuid") == *host)
            .unwrap_or_else(|| panic!("no hypervisor {host}: {context}"));
        assert!(found.s("name").ends_with(TRACK_HOST_NAMES[h]), "{context}");
        assert_eq!(found.s("state"), "online", "{context}");
    }
    let listed =
        hosts.iter().map(|h| h.list("vms").len()).sum::<usize>() + tree.list("devirtualized").len();
    assert_eq!(listed, TRACK_VMS.len(), "each VM once: {context}");
    let echo = vm_service_type("Echo");
    for vm in TRACK_VMS {
        let (host, found) =
            tree_vm(tree, vm.uuid).unwrap_or_else(|| panic!("no VM {}: {context}", vm.uuid));
        assert_eq!(
            host,
            vm.host.map(|h| TRACK_HOSTS[h].to_string()),
            "{}: {context}",
            vm.uuid
        );
        assert_eq!(found.s("name"), vm.name, "{context}");
        assert_eq!(found.s("tenant"), vm.tenant, "{context}");
        let action = found
            .list("services")
            .iter()
            .find(|s| s.s("type") == echo)
            .and_then(|s| s.list("actions").iter().find(|a| a.s("name") == "Echo"))
            .unwrap_or_else(|| panic!("{} without Echo: {context}", vm.uuid));
        let names = |key: &str| -> Vec<String> {
            action
                .list(key)
                .iter()
                .map(|n| n.str().unwrap_or_default().to_string())
                .collect()
        };
        assert_eq!(names("inputs"), ["Text"], "{context}");
        assert_eq!(names("outputs"), ["Reply", "Action"], "{context}");
    }
}

#[test]
fn console_discovers_on_its_own_interfaces() {
    // No tracker: the console is the control point, on the tracker namespace's three legs.
    let world = TrackWorld::new("con-iface", TrackSetup::default());

    let (output, took) = discovering(&world, &["tree", "--json"]);
    assert!(output.status.success(), "{}", show(&output));
    eprintln!("timing: console tree --json --iface (x3) settled and answered in {took:?}");
    let tree = Json::parse(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("tree --json is not JSON ({e}): {}", show(&output)));
    expect_topology(&tree, &show(&output));
    assert!(
        tree.get("sources").is_none(),
        "one source: the tracker's document as it is: {}",
        show(&output)
    );

    let (output, took) = discovering(&world, &["tree"]);
    assert!(output.status.success(), "{}", show(&output));
    eprintln!("timing: console tree --iface (x3), plain, in {took:?}");
    let plain = text(&output.stdout);
    assert!(
        plain.contains("Echo:1: Echo(Text) -> (Reply, Action)"),
        "actions with their arguments:\n{plain}"
    );
    assert!(plain.contains("acme-lost"), "{plain}");

    // A hypervisor as target: its Hypervisor service through the console's own relay.
    let (output, _) = discovering(&world, &["call", "dom0-a", "GetHostInfo"]);
    assert!(output.status.success(), "{}", show(&output));
    let out = text(&output.stdout);
    assert!(
        out.lines().any(|l| l == "HostName=dom0-a")
            && out.lines().any(|l| l == format!("HostUuid={TRACK_HOST_A}")),
        "{}",
        show(&output)
    );
    let (output, _) = discovering(
        &world,
        &[
            "call",
            &format!("uuid:{TRACK_HOST_B}"),
            "GetVirtualMachineIds",
        ],
    );
    assert!(output.status.success(), "{}", show(&output));
    let out = text(&output.stdout);
    assert!(
        out.contains(TRACK_VM_A2) && out.contains(TRACK_VM_B2),
        "{}",
        show(&output)
    );

    // StartVirtualMachine through the hypervisor target changes the sim file.
    let spare = "acac0009-9999-4a6b-8c9d-0000000000a9";
    world.sims[1].write_domain(&Domain::new(spare, "acme-spare", "shutoff"));
    let started = poll_until(SETTLE, || {
        let (output, _) = discovering(
            &world,
            &[
                "call",
                "dom0-b",
                "StartVirtualMachine",
                &format!("VirtualMachineId={spare}"),
            ],
        );
        output.status.success().then_some(output)
    });
    assert!(started.is_some(), "StartVirtualMachine never succeeded");
    world.sims[1].expect_state("acme-spare", "running", SIM);

    // A lifecycle action through the console's own relay to the Domain device.
    let (output, _) = discovering(&world, &["call", "beta-1", "Pause", "--yes"]);
    assert!(output.status.success(), "{}", show(&output));
    world.sims[0].expect_state("beta-1", "paused", SIM);

    // Unknown action on a hypervisor, missing argument, unknown target: exit 2, clearly.
    let (output, _) = discovering(&world, &["call", "dom0-a", "Frobnicate"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("offers no action") && stderr.contains("GetHostInfo"),
        "{}",
        show(&output)
    );
    let (output, _) = discovering(&world, &["call", "dom0-a", "StartVirtualMachine"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("VirtualMachineId"),
        "{}",
        show(&output)
    );
    let (output, _) = console_as_is(
        &world.tracker_ns,
        &[
            "call",
            "no-such-host",
            "GetHostInfo",
            "--iface",
            "eth0",
            "--wait",
            "3",
        ],
    );
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("no VM or hypervisor"),
        "{}",
        show(&output)
    );
    // A bad --iface: a usage error before anything is started.
    let (output, _) = console_as_is(&world.tracker_ns, &["tree", "--iface", "eth1:no/such"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    let (output, _) = console_as_is(&world.tracker_ns, &["tree", "--iface", "nosuch0"]);
    assert_eq!(output.status.code(), Some(1), "{}", show(&output));
    assert!(
        text(&output.stderr).contains("nosuch0"),
        "{}",
        show(&output)
    );
}

#[test]
fn console_merges_its_own_discovery_with_a_tracker() {
    let world = world_with_tracker("con-merge", TrackSetup::default());
    let api = world.api();
    // The console itself hears only the provider network (hypervisors and placement); the
    // tracker knows the tenants' VMs and their services.
    let (output, took) = console_with(
        &world.tracker_ns,
        Some(world.access.token("admin")),
        &["tree", "--json", "--tracker", &api, "--iface", "eth0"],
    );
    assert!(output.status.success(), "{}", show(&output));
    eprintln!("timing: console tree --json --tracker --iface eth0 in {took:?}");
    let tree = Json::parse(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&output)));
    expect_topology(&tree, &show(&output));
    let sources: Vec<&str> = tree.list("sources").iter().map(|s| s.s("api")).collect();
    assert_eq!(sources, [api.as_str(), "local"], "{}", show(&output));

    // The owner's action goes to the tracker, the only source knowing the service.
    let (output, _) = console_with(
        &world.tracker_ns,
        Some(world.access.token("admin")),
        &[
            "call",
            "acme-2",
            "Echo",
            "Text=merged",
            "--tracker",
            &api,
            "--iface",
            "eth0",
        ],
    );
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        text(&output.stdout).lines().any(|l| l == "Reply=merged"),
        "{}",
        show(&output)
    );
    // A hypervisor's action through the tracker's relay.
    let output = provider(&world, &["call", "dom0-b", "GetHostInfo"]);
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        text(&output.stdout).lines().any(|l| l == "HostName=dom0-b"),
        "{}",
        show(&output)
    );
}
