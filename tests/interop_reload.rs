//! SIGHUP, as `systemctl reload` and the init scripts' `reload` send it: every long-running
//! role keeps running and keeps its presence (no byebye, nothing leaves the tracker's tree),
//! and reads again what it can: the tracker and `console serve` their access file, the
//! advertisers their sources (the VM's services directory, the hypervisor's backend). Before
//! the roles caught it, SIGHUP's default action ended them without a byebye.
//! In namespaces only (tests/common: `TrackWorld`).

mod common;

use common::*;
use std::time::Duration;

/// Bound for the topology to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Port of the web console in the tracker's namespace.
const WEB_PORT: u16 = 8782;
/// What an advertiser logs on SIGHUP.
const SOURCES_READ: &str = "SIGHUP: reading the device's sources again";

#[test]
fn sighup_reloads_and_keeps_every_role_running_and_present() {
    let mut world = TrackWorld::new("hup", TrackSetup::default());
    world.start_tracker();
    world.wait_settled(SETTLE, "hup");
    let ns = &world.tracker_ns;
    let listen = format!("127.0.0.1:{WEB_PORT}");
    let access = world.access.path.to_str().expect("UTF-8 path");
    let command = format!(
        "console serve --listen {listen} --tracker {} --access {access}",
        world.api()
    );
    let serve_args: Vec<&str> = command.split(' ').collect();
    let mut serve = start_console_serve(ns, &serve_args, &[]);
    let mark = world.last_seq();

    // What SIGHUP reads again: a new identity, and a new service in a VM's directory.
    let output = std::process::Command::new(xenplug_bin())
        .args(["access", "new", "carol", "viewer", "--file", access])
        .output()
        .expect("xenplug access new");
    assert!(output.status.success(), "{output:?}");
    let carol = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let identities = TRACK_IDENTITIES.len() + 1;
    world.vms[0]
        .services
        .add_service("Extra", &track_echo_service());

    let vm = world.vms[0].spec.uuid;
    let reloaded = format!("read again, {identities} identities in use");
    let hups = [
        ("tracker", &world.tracker().proc, reloaded.as_str()),
        ("console serve", &serve, reloaded.as_str()),
        ("hypervisor", &world.hypervisors[0].proc, SOURCES_READ),
        ("VM advertiser", &world.vms[0].xenplug.proc, SOURCES_READ),
    ];
    for (_, proc, _) in hups {
        proc.signal(libc::SIGHUP);
    }
    for (what, proc, line) in hups {
        let logged = proc.wait_stderr(WAIT, |log| log.contains(line).then_some(()));
        assert!(logged.is_some(), "{what} logs {line:?}\n{}", proc.report());
    }
    let whoami = curl(
        ns,
        &format!("http://{listen}/api/whoami"),
        &["-H", &format!("Authorization: Bearer {carol}")],
    );
    assert_eq!(whoami.status, 200, "{whoami:?}\n{}", serve.report());
    assert!(whoami.body.contains("carol"), "{whoami:?}");
    let changed = world.wait_event(mark, WAIT, "vm-services-changed", vm);
    assert!(changed.is_some(), "{}", world.report());

    // Nobody stopped, nobody said byebye, nothing left the tree.
    assert_eq!(serve.try_status(), None, "{}", serve.report());
    assert_eq!(world.tracker_mut().proc.try_status(), None);
    assert_eq!(world.hypervisors[0].proc.try_status(), None);
    assert_eq!(world.vms[0].xenplug.proc.try_status(), None);
    for proc in [&world.hypervisors[0].proc, &world.vms[0].xenplug.proc] {
        assert!(!proc.stderr().contains("byebye"), "{}", proc.report());
    }
    let left: Vec<_> = world
        .journal()
        .into_iter()
        .filter(|e| e.seq > mark && e.kind.ends_with("-removed"))
        .collect();
    assert!(left.is_empty(), "{left:?}\n{}", world.report());
    assert!(world.settle_problems().is_empty(), "{}", world.report());
}
