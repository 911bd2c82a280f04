//! Descriptions, SOAP and GENA details of the real binary on namespace loopback: raw HTTP with
//! curl where the exact bytes matter, the peers where interoperability matters.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn description_and_scpds_are_served_at_the_contract_paths() {
    let ns = Netns::new("ctl-desc");
    let sim = SimDir::standard("ctl-desc");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    assert!(
        xenplug.url.ends_with("/description.xml"),
        "description path: {}",
        xenplug.url
    );
    let desc = http_get(&ns, &xenplug.url);
    assert_eq!(desc.status, 200);
    let content_type = desc.header("content-type").unwrap_or("");
    assert!(
        content_type.starts_with("text/xml"),
        "Content-Type {content_type:?}"
    );
    assert!(
        desc.body.contains(NS_XENPLUG),
        "vendor namespace declared:\n{}",
        desc.body
    );
    assert!(desc.body.contains(&format!("uuid:{HOST_UUID}")));
    let id = Identity::fetch(&ns, &xenplug.url);
    let vms: Vec<&str> = id.domains.iter().map(|(_, v)| v.as_str()).collect();
    assert!(vms.contains(&VM_WEB) && vms.contains(&VM_DB), "{vms:?}");

    for (path, actions) in [
        ("/scpd/Hypervisor.xml", HYPERVISOR_ACTIONS),
        ("/scpd/DomainControl.xml", DOMAIN_ACTIONS),
    ] {
        let scpd = http_get(&ns, &format!("{}{path}", xenplug.base()));
        assert_eq!(scpd.status, 200, "GET {path}\n{}", xenplug.report());
        assert!(
            scpd.header("content-type")
                .unwrap_or("")
                .starts_with("text/xml"),
            "{path}"
        );
        let mut names: Vec<&str> = xml_texts(&scpd.body, "name")
            .into_iter()
            .filter(|n| actions.contains(n))
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names,
            actions.to_vec(),
            "{path} lists every action:\n{}",
            scpd.body
        );
    }
    let missing = http_get(&ns, &format!("{}/no/such/path", xenplug.base()));
    assert_eq!(missing.status, 404, "unknown path");
}

#[test]
fn soap_errors_are_upnp_errors() {
    let ns = Netns::new("ctl-fault");
    let sim = SimDir::standard("ctl-fault");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    let control = format!("{}/control/domain/{VM_WEB}", xenplug.base());
    // UDA 1.1 section 3.2.2: an unknown action is error 401 Invalid Action, in a SOAP fault
    // with HTTP status 500.
    let fault = soap_call(&ns, &control, SERVICE_DOMAIN_CONTROL, "Teleport", &[]);
    assert_eq!(
        fault.status,
        500,
        "unknown action\n{fault:?}\n{}",
        xenplug.report()
    );
    assert_eq!(
        xml_text(&fault.body, "errorCode"),
        Some("401"),
        "{}",
        fault.body
    );
    // A well-formed call still works afterwards.
    let ok = soap_call(&ns, &control, SERVICE_DOMAIN_CONTROL, "GetState", &[]);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(xml_text(&ok.body, "State"), Some("running"), "{}", ok.body);
    assert_eq!(
        sim.read_domain("web").get("state").map(String::as_str),
        Some("running")
    );
}

#[test]
fn hypervisor_actions_through_both_peers() {
    let ns = Netns::new("ctl-hyp");
    let sim = SimDir::standard("ctl-hyp");
    sim.write_domain(&Domain::new(VM_SPARE, "spare", "shutoff"));
    let xenplug = Xenplug::start(&ns, "lo", &sim);

    let list = call_ok(
        aupnp(
            &ns,
            &["call", &xenplug.url, "--action", "ListVirtualMachines"],
        ),
        "async-upnp-client ListVirtualMachines",
        &xenplug,
    );
    // The contract leaves the list's format open; every VM the host knows must be in it.
    let listed: Vec<&String> = list
        .iter()
        .filter(|(k, _)| *k != "kind")
        .map(|(_, v)| v)
        .collect();
    assert!(
        !listed.is_empty(),
        "ListVirtualMachines has an out argument: {list:?}"
    );
    for vm in [VM_WEB, VM_DB, VM_SPARE] {
        assert!(
            listed.iter().any(|v| v.contains(vm)),
            "ListVirtualMachines lists {vm}: {list:?}"
        );
    }

    let info = call_ok(
        aupnp(&ns, &["call", &xenplug.url, "--action", "GetHostInfo"]),
        "async-upnp-client GetHostInfo",
        &xenplug,
    );
    assert!(
        info.values()
            .any(|v| v == HOST_NAME || v.contains(HOST_UUID)),
        "GetHostInfo names the host from the sim host file: {info:?}"
    );

    let udn = format!("uuid:{HOST_UUID}");
    call_ok(
        gupnp(
            &ns,
            "lo",
            &[
                "--udn",
                &udn,
                "call",
                "--action",
                "StartVirtualMachine",
                "--in",
                &format!("VirtualMachineId={VM_SPARE}"),
            ],
        ),
        "GUPnP StartVirtualMachine",
        &xenplug,
    );
    sim.expect_state("spare", "running", Duration::from_secs(2));
}

#[test]
fn every_lifecycle_action_rewrites_the_sim_file() {
    let ns = Netns::new("ctl-life");
    let sim = SimDir::standard("ctl-life");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    for (action, state) in [
        ("Suspend", "suspended"),
        ("Resume", "running"),
        ("Pause", "paused"),
        ("Resume", "running"),
        ("Shutdown", "shutoff"),
    ] {
        call_ok(
            aupnp(
                &ns,
                &["call", &xenplug.url, "--vm", VM_DB, "--action", action],
            ),
            &format!("async-upnp-client {action}"),
            &xenplug,
        );
        sim.expect_state("db", state, Duration::from_secs(2));
        let got = call_ok(
            aupnp(
                &ns,
                &["call", &xenplug.url, "--vm", VM_DB, "--action", "GetState"],
            ),
            "GetState",
            &xenplug,
        );
        assert_eq!(field(&got, "State"), state, "GetState after {action}");
    }
    let db = sim.read_domain("db");
    assert_eq!(
        db.get("uuid").map(String::as_str),
        Some(VM_DB),
        "uuid kept: {db:?}"
    );
    assert_eq!(
        db.get("memory_kib").map(String::as_str),
        Some("1048576"),
        "memory kept: {db:?}"
    );
    assert_eq!(
        db.get("vcpus").map(String::as_str),
        Some("2"),
        "vcpus kept: {db:?}"
    );
    assert_eq!(
        sim.read_domain("web").get("state").map(String::as_str),
        Some("running")
    );
}

#[test]
fn external_sim_edit_is_evented() {
    let ns = Netns::new("ctl-edit");
    let sim = SimDir::standard("ctl-edit");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    let events = aupnp_spawn(
        &ns,
        &[
            "--timeout",
            "30",
            "events",
            &xenplug.url,
            "--bind",
            "127.0.0.1",
            "--vm",
            VM_DB,
            "--count",
            "2",
        ],
    );
    let at = expect_event(&events, 0, "State", "running", &xenplug);
    sim.write_domain(&Domain::new(VM_DB, "db", "paused"));
    expect_event(&events, at, "State", "paused", &xenplug);
}

#[test]
fn virtual_machine_ids_are_evented_when_a_domain_appears() {
    let ns = Netns::new("ctl-ids");
    let sim = SimDir::standard("ctl-ids");
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    let udn = format!("uuid:{HOST_UUID}");
    let events = gupnp_spawn(
        &ns,
        "lo",
        &[
            "--timeout",
            "30",
            "--udn",
            &udn,
            "events",
            "--var",
            "VirtualMachineIds",
            "--count",
            "2",
        ],
    );
    let initial = events.wait_stdout(WAIT, |out| records(out, "event").into_iter().next());
    let initial = initial.unwrap_or_else(|| {
        panic!(
            "GUPnP: no initial VirtualMachineIds event\n{GUPNP_INITIAL_EVENT_HINT}\n{}\n{}",
            events.report(),
            xenplug.report()
        )
    });
    let ids = |value: &str| -> std::collections::BTreeSet<String> {
        value
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    assert_eq!(
        ids(field(&initial, "value")),
        set_of(&[VM_WEB, VM_DB]),
        "initial VirtualMachineIds"
    );
    sim.write_domain(&Domain::new(VM_LATE, "late", "shutoff"));
    let next = events.wait_stdout(WAIT, |out| records(out, "event").into_iter().nth(1));
    let next = next
        .unwrap_or_else(|| panic!("no second event\n{}\n{}", events.report(), xenplug.report()));
    assert_eq!(
        ids(field(&next, "value")),
        set_of(&[VM_WEB, VM_DB, VM_LATE]),
        "after a new sim file"
    );
}

/// async-upnp-client's own CLI (`upnp-client call-action` and `subscribe`) on a host with one
/// domain, where "DomainControl" names exactly one service.
#[test]
fn upnp_client_cli_calls_and_subscribes() {
    let ns = Netns::new("ctl-cli");
    let sim = SimDir::new("ctl-cli");
    sim.write_host(HOST_UUID, HOST_NAME);
    sim.write_domain(&Domain::new(VM_WEB, "web", "running"));
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    let subscriber = ns.spawn(
        "upnp-client-subscribe",
        upnp_client_command(&ns, &["subscribe", &xenplug.url, SERVICE_DOMAIN_CONTROL]),
    );
    let initial = subscriber.wait_stdout(WAIT, |out| {
        out.contains("\"State\": \"running\"").then_some(())
    });
    assert!(
        initial.is_some(),
        "initial event through upnp-client subscribe\n{}\n{}",
        subscriber.report(),
        xenplug.report()
    );
    let mut call = upnp_client_command(&ns, &["call-action", &xenplug.url, "DomainControl/Pause"]);
    call.env("PYTHONUNBUFFERED", "1");
    let output = run_bounded(
        call,
        Duration::from_secs(30),
        "upnp-client call-action Pause",
    );
    assert!(
        output.status.success(),
        "call-action: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        xenplug.report()
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("\"action\": \"Pause\""));
    sim.expect_state("web", "paused", Duration::from_secs(2));
    let paused = subscriber.wait_stdout(WAIT, |out| {
        out.contains("\"State\": \"paused\"").then_some(())
    });
    assert!(
        paused.is_some(),
        "State event through upnp-client subscribe\n{}\n{}",
        subscriber.report(),
        xenplug.report()
    );
}
