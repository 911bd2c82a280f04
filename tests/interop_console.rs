//! The console (`xenplug console tree | call | watch`) against a real tracker, hypervisors and
//! VM advertisers (tests/common: `TrackWorld`): a provider LAN with two simulated hypervisors,
//! two tenant LANs (acme, beta) with VM advertisers, and a tracker namespace with a leg in
//! each. The console runs in the tracker's namespace against the provider API on 127.0.0.1,
//! or in a tenant VM's namespace against the tenant listener. Every wait is bounded.

mod common;

use common::*;
use std::process::Output;
use std::time::Duration;

/// Bound for a topology to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Bound for one console command (the relay itself gives up after 15 s).
const COMMAND: Duration = Duration::from_secs(30);
/// Bound for a sim file to follow a lifecycle action.
const SIM: Duration = Duration::from_secs(5);

fn world_with_tracker(tag: &str, setup: TrackSetup) -> TrackWorld {
    let mut world = TrackWorld::new(tag, setup);
    world.start_tracker();
    world.wait_settled(SETTLE, tag);
    world
}

/// `xenplug console ARGS --tracker URL` in `ns`, stdin and stdout not terminals.
fn console(ns: &Netns, url: &str, args: &[&str]) -> Output {
    let mut full = vec!["console"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--tracker", url]);
    run_bounded(
        ns.command(xenplug_bin(), &full),
        COMMAND,
        &format!("xenplug {}", full.join(" ")),
    )
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
    console(&world.tracker_ns, &world.api(), args)
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
    let watch_command = world.tracker_ns.command(
        xenplug_bin(),
        &["console", "watch", "--tracker", &world.api()],
    );
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

    // The relay itself: 404, like any action the VM does not advertise.
    let response = curl(
        ns,
        &format!("{base}/api/vms/{TRACK_VM_A1}/actions"),
        &[
            "-X",
            "POST",
            "--data-binary",
            &format!(
                "service={}&action=Pause",
                SERVICE_DOMAIN_CONTROL.replace(':', "%3A")
            ),
        ],
    );
    assert_eq!(response.status, 404, "{response:?}\n{}", world.report());

    // The console in the tenant's network: its own VMs, and Pause refused with exit 2.
    let output = console(ns, &base, &["tree"]);
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
    let output = console(ns, &base, &["call", "acme-1", "Pause", "--yes"]);
    assert_eq!(output.status.code(), Some(2), "{}", show(&output));
    // Its own action still works from there.
    let output = console(ns, &base, &["call", "acme-1", "Echo", "Text=own"]);
    assert!(output.status.success(), "{}", show(&output));
    assert!(
        text(&output.stdout).contains("Reply=own"),
        "{}",
        show(&output)
    );
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));
}
