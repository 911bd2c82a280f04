//! Scenarios shared by the loopback and the LAN tests, each run against a [`Site`].

use std::collections::{BTreeMap, BTreeSet};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::binary::{Options, Xenplug};
use super::constants::{
    DEVICE_DOMAIN, DEVICE_HYPERVISOR, DOMAIN_ACTIONS, HOST_UUID, HYPERVISOR_ACTIONS,
    SERVICE_DOMAIN_CONTROL, SERVICE_HYPERVISOR, VM_DB, VM_LATE, VM_WEB, WAIT,
};
use super::http::xml_texts;
use super::identity::{config_id, Identity};
use super::lan::Lan;
use super::netns::Netns;
use super::peers::{
    advertisements_listener, aupnp, aupnp_spawn, call_ok, field, gssdp_discover, gssdp_listener,
    gssdp_usns, gupnp, gupnp_spawn, hdr, json_lines, list_field, parse_gssdp, peer_ok, records,
    set_of, upnp_client_command,
};
use super::procs::Proc;
use super::sim::{Domain, SimDir};

/// Where the device runs and where the two peers run.
pub struct Site<'a> {
    /// Namespace of xenplug.
    pub device: &'a Netns,
    /// xenplug's --iface.
    pub device_iface: &'a str,
    /// Address xenplug is expected to put in LOCATION.
    pub device_addr: String,
    /// Namespace of the first peer (gssdp-discover, GUPnP).
    pub peer: &'a Netns,
    /// Its interface.
    pub peer_iface: &'a str,
    /// Its address.
    pub peer_addr: String,
    /// Namespace of the second peer (async-upnp-client).
    pub peer2: &'a Netns,
    /// Its interface.
    pub peer2_iface: &'a str,
    /// Its address.
    pub peer2_addr: String,
    /// xenplug's `--allow-control`: the peers call mutating actions.
    pub allow_control: Vec<String>,
}

impl<'a> Site<'a> {
    /// Everything on the loopback interface of one namespace.
    pub fn loopback(ns: &'a Netns) -> Site<'a> {
        Site {
            device: ns,
            device_iface: "lo",
            device_addr: "127.0.0.1".to_string(),
            peer: ns,
            peer_iface: "lo",
            peer_addr: "127.0.0.1".to_string(),
            peer2: ns,
            peer2_iface: "lo",
            peer2_addr: "127.0.0.1".to_string(),
            // Loopback callers are the host itself: the default lets them.
            allow_control: Vec::new(),
        }
    }

    /// xenplug on host 0 of a LAN, the GUPnP/gssdp peer on host 1, the async-upnp-client peer
    /// on host 2 (or host 1 if the LAN has two hosts).
    pub fn lan(lan: &'a Lan) -> Site<'a> {
        let second = lan.hosts.len().min(3) - 1;
        Site {
            device: &lan.host(0).ns,
            device_iface: &lan.host(0).iface,
            device_addr: lan.host(0).addr.to_string(),
            peer: &lan.host(1).ns,
            peer_iface: &lan.host(1).iface,
            peer_addr: lan.host(1).addr.to_string(),
            peer2: &lan.host(second).ns,
            peer2_iface: &lan.host(second).iface,
            peer2_addr: lan.host(second).addr.to_string(),
            allow_control: vec![lan.network()],
        }
    }

    /// Start xenplug with the standard fixture and check where its description lives.
    pub fn start(&self, sim: &SimDir) -> Xenplug {
        let options = Options {
            allow_control: self.allow_control.clone(),
            ..Options::ifaces(&[self.device_iface])
        };
        let xenplug = Xenplug::start_with(self.device, sim, &options);
        let host = xenplug.base().trim_start_matches("http://").to_string();
        assert!(
            host.starts_with(&format!("{}:", self.device_addr)),
            "description URL {} should be on {} (the --iface address)\n{}",
            xenplug.url,
            self.device_addr,
            xenplug.report()
        );
        xenplug
    }
}

/// How long after a sim file appears its Domain must be announced: 1 s by contract, plus what
/// a peer on a loaded 2-core machine needs to print it and the harness needs to read it.
pub const ANNOUNCE_BUDGET: Duration = Duration::from_millis(1500);

/// ssdp:all from gssdp-discover and from upnp-client search both find exactly the full set,
/// every LOCATION being the description URL.
pub fn scenario_discover_all(site: &Site) {
    let sim = SimDir::standard("disc-all");
    let xenplug = site.start(&sim);
    let id = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(
        id.host_udn,
        format!("uuid:{HOST_UUID}"),
        "root UDN must be the host uuid"
    );
    assert_eq!(
        id.domains.len(),
        2,
        "two domains in the description:\n{}",
        id.description
    );
    let expected = id.full_usns();
    assert_eq!(
        expected.len(),
        3 + 2 * 2 + 3,
        "3 + 2d + k with d = 2, k = 3"
    );

    let gssdp = gssdp_discover(site.peer, site.peer_iface, "ssdp:all", 4, "available");
    let search = site.peer2.spawn(
        "upnp-client-search",
        upnp_client_command(
            site.peer2,
            &[
                "--timeout",
                "4",
                "search",
                "--bind",
                &site.peer2_addr,
                "--search_target",
                "ssdp:all",
            ],
        ),
    );
    let mut gssdp = gssdp;
    let mut search = search;
    assert!(
        gssdp.wait_exit(Duration::from_secs(15)).is_some(),
        "gssdp-discover did not end"
    );
    assert!(
        search.wait_exit(Duration::from_secs(15)).is_some(),
        "upnp-client search did not end"
    );

    let seen = parse_gssdp(&gssdp.stdout());
    let usns: BTreeSet<String> = seen
        .iter()
        .filter(|s| s.available)
        .map(|s| s.usn.clone())
        .collect();
    assert_eq!(
        usns,
        expected,
        "gssdp-discover ssdp:all\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    for s in &seen {
        assert_eq!(s.location, xenplug.url, "LOCATION of {}", s.usn);
    }

    let responses = json_lines(&search.stdout());
    let mut found = BTreeSet::new();
    for r in &responses {
        let usn = hdr(r, "USN").to_string();
        let st = hdr(r, "ST");
        assert!(expected.contains(&usn), "unexpected USN {usn} in {r:?}");
        // UDA 1.1 section 1.3.3: for ssdp:all, ST is the part of the USN after the UDN (or
        // the UDN itself).
        let suffix = usn.split_once("::").map(|(_, t)| t).unwrap_or(&usn);
        assert_eq!(st, suffix, "ST of the response for {usn}");
        let location = hdr(r, "LOCATION");
        assert_eq!(location, xenplug.url, "LOCATION of {usn}");
        assert!(
            r.keys().any(|k| k.eq_ignore_ascii_case("EXT")),
            "search response without EXT: {r:?}"
        );
        found.insert(usn);
    }
    assert_eq!(
        found,
        expected,
        "upnp-client search ssdp:all\n{}\n{}",
        search.report(),
        xenplug.report()
    );
}

/// Searches for one target each get exactly the matching USNs (run side by side).
pub fn scenario_discover_targets(site: &Site) {
    let sim = SimDir::standard("disc-st");
    let xenplug = site.start(&sim);
    let id = Identity::fetch(site.peer, &xenplug.url);
    let h = id.host_udn.clone();
    let (d1, _) = id.domains[0].clone();
    let (d2, _) = id.domains[1].clone();
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (
            "upnp:rootdevice".into(),
            set_of(&[&format!("{h}::upnp:rootdevice")]),
        ),
        (h.clone(), set_of(&[&h])),
        (
            DEVICE_HYPERVISOR.into(),
            set_of(&[&format!("{h}::{DEVICE_HYPERVISOR}")]),
        ),
        (
            SERVICE_HYPERVISOR.into(),
            set_of(&[&format!("{h}::{SERVICE_HYPERVISOR}")]),
        ),
        (
            DEVICE_DOMAIN.into(),
            set_of(&[
                &format!("{d1}::{DEVICE_DOMAIN}"),
                &format!("{d2}::{DEVICE_DOMAIN}"),
            ]),
        ),
        (
            SERVICE_DOMAIN_CONTROL.into(),
            set_of(&[
                &format!("{d1}::{SERVICE_DOMAIN_CONTROL}"),
                &format!("{d2}::{SERVICE_DOMAIN_CONTROL}"),
            ]),
        ),
        (d2.clone(), set_of(&[&d2])),
    ];
    let mut procs: Vec<(String, BTreeSet<String>, Proc)> = cases
        .into_iter()
        .map(|(target, want)| {
            let proc = gssdp_discover(site.peer, site.peer_iface, &target, 4, "available");
            (target, want, proc)
        })
        .collect();
    for (target, want, proc) in &mut procs {
        assert!(
            proc.wait_exit(Duration::from_secs(15)).is_some(),
            "gssdp-discover -t {target}"
        );
        let got = gssdp_usns(proc, true);
        assert_eq!(
            &got,
            want,
            "gssdp-discover -t {target}\n{}\n{}",
            proc.report(),
            xenplug.report()
        );
    }

    // async-upnp-client prints every response it gets, unfiltered: a device that answers a
    // specific search with unrelated USNs shows up here.
    let mut search = site.peer2.spawn(
        "upnp-client-search",
        upnp_client_command(
            site.peer2,
            &[
                "--timeout",
                "4",
                "search",
                "--bind",
                &site.peer2_addr,
                "--search_target",
                DEVICE_DOMAIN,
            ],
        ),
    );
    assert!(
        search.wait_exit(Duration::from_secs(15)).is_some(),
        "upnp-client search did not end"
    );
    let responses = json_lines(&search.stdout());
    let got: BTreeSet<String> = responses
        .iter()
        .map(|r| hdr(r, "USN").to_string())
        .collect();
    assert_eq!(
        got,
        set_of(&[
            &format!("{d1}::{DEVICE_DOMAIN}"),
            &format!("{d2}::{DEVICE_DOMAIN}")
        ]),
        "upnp-client search {DEVICE_DOMAIN}\n{}\n{}",
        search.report(),
        xenplug.report()
    );
    for r in &responses {
        assert_eq!(
            hdr(r, "ST"),
            DEVICE_DOMAIN,
            "ST must echo the search target: {r:?}"
        );
    }
}

/// Check one peer's device tree (records from `tree`) against the standard fixture.
pub fn check_tree(
    out: &str,
    peer: &str,
    xenplug: &Xenplug,
    strict_evented: bool,
) -> BTreeMap<String, String> {
    let context = || format!("{peer} tree:\n{out}\n{}", xenplug.report());
    assert!(
        !records(out, "end").is_empty(),
        "{peer}: tree incomplete\n{}",
        context()
    );
    let devices = records(out, "device");
    let services = records(out, "service");
    let roots: Vec<_> = devices
        .iter()
        .filter(|d| field(d, "parent").is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{peer}: one root device\n{}", context());
    let root = roots[0];
    assert_eq!(
        field(root, "udn"),
        format!("uuid:{HOST_UUID}"),
        "{peer}: root UDN\n{}",
        context()
    );
    assert_eq!(
        field(root, "type"),
        DEVICE_HYPERVISOR,
        "{peer}: root type\n{}",
        context()
    );

    let root_services: Vec<_> = services
        .iter()
        .filter(|s| field(s, "device") == field(root, "udn"))
        .collect();
    assert_eq!(
        root_services.len(),
        1,
        "{peer}: the root has one service\n{}",
        context()
    );
    let hs = root_services[0];
    assert_eq!(
        field(hs, "type"),
        SERVICE_HYPERVISOR,
        "{peer}\n{}",
        context()
    );
    // The contract's actions must all be there; more are allowed.
    assert!(
        set_of(HYPERVISOR_ACTIONS).is_subset(&list_field(hs, "actions")),
        "{peer}: Hypervisor actions\n{}",
        context()
    );
    assert!(
        list_field(hs, "variables").contains("VirtualMachineIds"),
        "{peer}: VirtualMachineIds\n{}",
        context()
    );
    if strict_evented {
        assert!(
            list_field(hs, "evented").contains("VirtualMachineIds"),
            "{peer}: VirtualMachineIds evented\n{}",
            context()
        );
    }
    assert!(
        field(hs, "control_url").ends_with("/control/hypervisor"),
        "{peer}: {hs:?}"
    );
    assert!(
        field(hs, "event_url").ends_with("/event/hypervisor"),
        "{peer}: {hs:?}"
    );
    assert!(
        field(hs, "scpd_url").ends_with("/scpd/Hypervisor.xml"),
        "{peer}: {hs:?}"
    );

    let domains: Vec<_> = devices
        .iter()
        .filter(|d| !field(d, "parent").is_empty())
        .collect();
    let vms: BTreeSet<String> = domains
        .iter()
        .map(|d| field(d, "vm_uuid").to_string())
        .collect();
    assert_eq!(
        vms,
        set_of(&[VM_WEB, VM_DB]),
        "{peer}: one Domain per sim file\n{}",
        context()
    );
    let mut udns = BTreeMap::new();
    for dom in domains {
        let vm = field(dom, "vm_uuid");
        let udn = field(dom, "udn");
        assert_eq!(field(dom, "type"), DEVICE_DOMAIN, "{peer}\n{}", context());
        assert_eq!(
            field(dom, "parent"),
            field(root, "udn"),
            "{peer}\n{}",
            context()
        );
        assert!(
            udn.starts_with("uuid:") && udn.len() == 41,
            "{peer}: Domain UDN {udn:?}"
        );
        assert_ne!(
            udn,
            format!("uuid:{vm}"),
            "{peer}: Domain UDN must not be the VM uuid"
        );
        let own: Vec<_> = services
            .iter()
            .filter(|s| field(s, "device") == udn)
            .collect();
        assert_eq!(
            own.len(),
            1,
            "{peer}: Domain {vm} has one service\n{}",
            context()
        );
        let ds = own[0];
        assert_eq!(
            field(ds, "type"),
            SERVICE_DOMAIN_CONTROL,
            "{peer}\n{}",
            context()
        );
        assert!(
            set_of(DOMAIN_ACTIONS).is_subset(&list_field(ds, "actions")),
            "{peer}: DomainControl actions\n{}",
            context()
        );
        assert!(
            list_field(ds, "variables").contains("State"),
            "{peer}: State\n{}",
            context()
        );
        if strict_evented {
            assert!(
                list_field(ds, "evented").contains("State"),
                "{peer}: State evented\n{}",
                context()
            );
        }
        assert!(
            field(ds, "control_url").ends_with(&format!("/control/domain/{vm}")),
            "{peer}: {ds:?}"
        );
        assert!(
            field(ds, "event_url").ends_with(&format!("/event/domain/{vm}")),
            "{peer}: {ds:?}"
        );
        assert!(
            field(ds, "scpd_url").ends_with("/scpd/DomainControl.xml"),
            "{peer}: {ds:?}"
        );
        udns.insert(vm.to_string(), udn.to_string());
    }
    udns
}

/// GUPnP (found by SSDP) and async-upnp-client (from the URL) both build the full tree and
/// agree on it.
pub fn scenario_descriptions(site: &Site) {
    let sim = SimDir::standard("desc");
    let xenplug = site.start(&sim);
    let g = gupnp(
        site.peer,
        site.peer_iface,
        &[
            "--timeout",
            "15",
            "--udn",
            &format!("uuid:{HOST_UUID}"),
            "tree",
        ],
    );
    let g = peer_ok(&g, "GUPnP tree", &xenplug);
    let a = aupnp(site.peer2, &["--timeout", "15", "tree", &xenplug.url]);
    let a = peer_ok(&a, "async-upnp-client tree", &xenplug);
    let from_gupnp = check_tree(&g, "GUPnP", &xenplug, false);
    let from_aupnp = check_tree(&a, "async-upnp-client", &xenplug, true);
    assert_eq!(
        from_gupnp, from_aupnp,
        "both peers see the same Domain UDNs"
    );
    let id = Identity::fetch(site.peer, &xenplug.url);
    for (vm, udn) in &from_gupnp {
        assert_eq!(
            id.domain_udn(vm),
            Some(udn.as_str()),
            "description vs peers"
        );
    }
    let location = records(&g, "device")
        .into_iter()
        .find(|d| field(d, "parent").is_empty());
    assert_eq!(
        location.map(|d| field(&d, "location").to_string()),
        Some(xenplug.url.clone())
    );
}

/// Wait for a subscriber to print an event `var=value`, counting from record `from`.
pub fn expect_event(proc: &Proc, from: usize, var: &str, value: &str, xenplug: &Xenplug) -> usize {
    let got = proc.wait_stdout(WAIT, |out| {
        records(out, "event")
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, r)| field(r, "var") == var && field(r, "value") == value)
            .map(|(i, _)| i + 1)
    });
    got.unwrap_or_else(|| {
        panic!(
            "no {var}={value} event (after #{from})\n{}\n{}",
            proc.report(),
            xenplug.report()
        )
    })
}

/// What to suspect when GUPnP misses an initial event that async-upnp-client gets.
pub const GUPNP_INITIAL_EVENT_HINT: &str = "hint: GUPnP ignores (answers 200 and drops) a NOTIFY \
     that reaches it before it has processed the SUBSCRIBE response and stored the SID \
     (gupnp-service-proxy.c, server_handler: priv->sid == NULL). Writing the response first is \
     not enough: the device must give the subscriber time before sending the SEQ 0 event.";

/// Wait for GUPnP's initial event (`var=value`, the first event record).
pub fn expect_gupnp_initial_event(proc: &Proc, var: &str, value: &str, xenplug: &Xenplug) -> usize {
    let got = proc.wait_stdout(WAIT, |out| {
        let events = records(out, "event");
        events
            .first()
            .filter(|r| field(r, "var") == var && field(r, "value") == value)
            .map(|_| 1)
    });
    got.unwrap_or_else(|| {
        panic!(
            "GUPnP: no initial {var}={value} event within {WAIT:?}\n{GUPNP_INITIAL_EVENT_HINT}\n{}\n{}",
            proc.report(),
            xenplug.report()
        )
    })
}

/// GetState, Pause and Resume through both peers change the sim file, and both peers'
/// subscriptions get the State events (initial value first).
pub fn scenario_actions_and_events(site: &Site) {
    let sim = SimDir::standard("act");
    let xenplug = site.start(&sim);
    let udn = format!("uuid:{HOST_UUID}");
    let g_events = gupnp_spawn(
        site.peer,
        site.peer_iface,
        &[
            "--timeout",
            "40",
            "--udn",
            &udn,
            "events",
            "--vm",
            VM_WEB,
            "--var",
            "State",
            "--count",
            "3",
        ],
    );
    let a_events = aupnp_spawn(
        site.peer2,
        &[
            "--timeout",
            "40",
            "events",
            &xenplug.url,
            "--bind",
            &site.peer2_addr,
            "--vm",
            VM_WEB,
            "--count",
            "3",
        ],
    );
    // UDA 1.1 section 4.1.2: the initial event carries every evented variable.
    let g_at = expect_gupnp_initial_event(&g_events, "State", "running", &xenplug);
    let a_at = expect_event(&a_events, 0, "State", "running", &xenplug);

    let state = call_ok(
        gupnp(
            site.peer,
            site.peer_iface,
            &[
                "--udn", &udn, "call", "--vm", VM_WEB, "--action", "GetState", "--out", "State",
            ],
        ),
        "GUPnP GetState",
        &xenplug,
    );
    assert_eq!(field(&state, "State"), "running");

    call_ok(
        aupnp(
            site.peer2,
            &["call", &xenplug.url, "--vm", VM_WEB, "--action", "Pause"],
        ),
        "async-upnp-client Pause",
        &xenplug,
    );
    sim.expect_state("web", "paused", Duration::from_secs(2));
    assert_eq!(
        sim.read_domain("db").get("state").map(String::as_str),
        Some("running"),
        "db untouched"
    );
    let g_at = expect_event(&g_events, g_at, "State", "paused", &xenplug);
    let a_at = expect_event(&a_events, a_at, "State", "paused", &xenplug);

    let state = call_ok(
        aupnp(
            site.peer2,
            &["call", &xenplug.url, "--vm", VM_WEB, "--action", "GetState"],
        ),
        "async-upnp-client GetState",
        &xenplug,
    );
    assert_eq!(field(&state, "State"), "paused");

    call_ok(
        gupnp(
            site.peer,
            site.peer_iface,
            &["--udn", &udn, "call", "--vm", VM_WEB, "--action", "Resume"],
        ),
        "GUPnP Resume",
        &xenplug,
    );
    sim.expect_state("web", "running", Duration::from_secs(2));
    expect_event(&g_events, g_at, "State", "running", &xenplug);
    expect_event(&a_events, a_at, "State", "running", &xenplug);

    let mut g_events = g_events;
    let mut a_events = a_events;
    let g_status = g_events.wait_exit(WAIT);
    let a_status = a_events.wait_exit(WAIT);
    assert!(
        g_status.is_some_and(|s| s.success()),
        "GUPnP subscriber: {g_status:?}\n{}",
        g_events.report()
    );
    assert!(
        a_status.is_some_and(|s| s.success()),
        "async-upnp-client subscriber (unsubscribe): {a_status:?}\n{}",
        a_events.report()
    );
}

/// SIGTERM: ssdp:byebye for every USN (seen by gssdp-discover and upnp-client), exit 0.
pub fn scenario_byebye(site: &Site) {
    let sim = SimDir::standard("bye");
    let adv = advertisements_listener(site.peer2, &site.peer2_addr);
    let gssdp = gssdp_listener(site.peer, site.peer_iface, "ssdp:all", 60, "all");
    let mut xenplug = site.start(&sim);
    let id = Identity::fetch(site.peer, &xenplug.url);
    let expected = id.full_usns();

    let alive = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .filter(|s| s.available)
            .map(|s| s.usn)
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        alive.is_some(),
        "gssdp-discover never saw the full set\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    let notified = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        notified.is_some(),
        "upnp-client advertisements never saw ssdp:alive for the full set at start\n{}\n{}",
        adv.report(),
        xenplug.report()
    );

    // Some stacks send byebye before their first alive; only what follows SIGTERM counts.
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let adv_mark = json_lines(&adv.stdout()).len();
    let status = xenplug.terminate(WAIT);
    assert!(
        status.is_some(),
        "xenplug did not exit within {WAIT:?} of SIGTERM\n{}",
        xenplug.report()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status after SIGTERM\n{}",
        xenplug.report()
    );

    let gone = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .skip(gssdp_mark)
            .filter(|s| !s.available)
            .map(|s| s.usn)
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        gone.is_some(),
        "gssdp-discover did not see byebye for every USN\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    let byebye = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .skip(adv_mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:byebye")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        byebye.is_some(),
        "upnp-client did not see byebye for every USN\n{}\n{}",
        adv.report(),
        xenplug.report()
    );
}

/// A new sim file is announced (alive for the new Domain alone, new CONFIGID) within 1 s; its
/// removal sends byebye for that Domain alone.
pub fn scenario_domain_added_and_removed(site: &Site) {
    let sim = SimDir::standard("add");
    let adv = advertisements_listener(site.peer2, &site.peer2_addr);
    let gssdp = gssdp_listener(site.peer, site.peer_iface, "ssdp:all", 60, "all");
    let xenplug = site.start(&sim);
    let before = Identity::fetch(site.peer, &xenplug.url);
    let full = before.full_usns();
    let settled = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .filter(|s| s.available)
            .map(|s| s.usn)
            .collect();
        (got == full).then_some(())
    });
    assert!(
        settled.is_some(),
        "gssdp-discover never saw the full set\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    // Let the start-up repeat (UDA 1.1 recommends sending the set more than once) pass.
    sleep(Duration::from_millis(500));
    let adv_mark = json_lines(&adv.stdout()).len();
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let old_config = json_lines(&adv.stdout())
        .iter()
        .map(|r| hdr(r, "CONFIGID.UPNP.ORG").to_string())
        .find(|c| !c.is_empty())
        .unwrap_or_default();

    let t0 = Instant::now();
    sim.write_domain(&Domain::new(VM_LATE, "late", "running"));
    let new_udn = gssdp.wait_stdout(Duration::from_secs(5), |out| {
        parse_gssdp(out).into_iter().skip(gssdp_mark).find_map(|s| {
            (s.available && s.usn.ends_with(&format!("::{DEVICE_DOMAIN}"))).then(|| {
                s.usn
                    .trim_end_matches(&format!("::{DEVICE_DOMAIN}"))
                    .to_string()
            })
        })
    });
    let elapsed = t0.elapsed();
    let Some(new_udn) = new_udn else {
        panic!(
            "no new Domain announced within 5 s of a new sim file\n{}\n{}",
            gssdp.report(),
            xenplug.report()
        );
    };
    assert!(
        elapsed <= ANNOUNCE_BUDGET,
        "new Domain announced {elapsed:?} after the sim file appeared (contract: 1 s)\n{}",
        xenplug.report()
    );
    let after = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(
        after.domains.len(),
        3,
        "description after adding:\n{}",
        after.description
    );
    assert_eq!(
        after.domain_udn(VM_LATE),
        Some(new_udn.as_str()),
        "new Domain's UDN in the description"
    );
    let new_usns = Identity::domain_usns(&new_udn);
    let announced = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .skip(adv_mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        new_usns.is_subset(&got).then_some(got)
    });
    let Some(announced) = announced else {
        panic!(
            "upnp-client did not see alive for {new_usns:?}\n{}\n{}",
            adv.report(),
            xenplug.report()
        );
    };
    assert_eq!(
        announced, new_usns,
        "only the new Domain is announced (DESIGN: nothing else re-announced)"
    );
    let new_config = json_lines(&adv.stdout())
        .iter()
        .skip(adv_mark)
        .map(|r| hdr(r, "CONFIGID.UPNP.ORG").to_string())
        .find(|c| !c.is_empty())
        .unwrap_or_default();
    assert_ne!(
        new_config, old_config,
        "CONFIGID.UPNP.ORG must change when a Domain appears"
    );

    let adv_mark = json_lines(&adv.stdout()).len();
    sim.remove_domain("late");
    let byebye = adv.wait_stdout(Duration::from_secs(5), |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .skip(adv_mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:byebye")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        new_usns.is_subset(&got).then_some(got)
    });
    let Some(byebye) = byebye else {
        panic!(
            "no byebye for the removed Domain\n{}\n{}",
            adv.report(),
            xenplug.report()
        );
    };
    assert_eq!(byebye, new_usns, "byebye for the removed Domain alone");
    let gone = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .skip(gssdp_mark)
            .filter(|s| !s.available)
            .map(|s| s.usn)
            .collect();
        (got == new_usns).then_some(())
    });
    assert!(
        gone.is_some(),
        "gssdp-discover: unavailable set should be the removed Domain's\n{}",
        gssdp.report()
    );
    let last = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(
        last.domains.len(),
        2,
        "description after removing:\n{}",
        last.description
    );
}

/// Waits until upnp-client (records after `mark`) has seen ssdp:alive for every USN of `full`
/// with a CONFIGID other than `old_config`, then checks the alives not carrying `old_config`:
/// nothing but `full`, one CONFIGID. Returns that CONFIGID.
pub fn expect_alive_round(
    adv: &Proc,
    mark: usize,
    old_config: &str,
    full: &BTreeSet<String>,
    xenplug: &Xenplug,
) -> u64 {
    let alive_since = |out: &str| -> Vec<(String, String)> {
        json_lines(out)
            .iter()
            .skip(mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| {
                (
                    hdr(r, "USN").to_string(),
                    hdr(r, "CONFIGID.UPNP.ORG").to_string(),
                )
            })
            .collect()
    };
    let round = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = alive_since(out)
            .into_iter()
            .filter(|(_, config)| config != old_config)
            .map(|(usn, _)| usn)
            .collect();
        full.is_subset(&got).then_some(())
    });
    assert!(
        round.is_some(),
        "upnp-client did not see ssdp:alive with a new CONFIGID (old {old_config:?}) for every \
         USN of {full:?}\n{}\n{}",
        adv.report(),
        xenplug.report()
    );
    // The repeat of an earlier round may still arrive after `mark`, with the old CONFIGID.
    let seen: Vec<(String, String)> = alive_since(&adv.stdout())
        .into_iter()
        .filter(|(_, config)| config != old_config)
        .collect();
    let usns: BTreeSet<String> = seen.iter().map(|(usn, _)| usn.clone()).collect();
    assert_eq!(
        &usns, full,
        "the new CONFIGID is announced for exactly these targets"
    );
    let configs: BTreeSet<&str> = seen.iter().map(|(_, config)| config.as_str()).collect();
    assert_eq!(
        configs.len(),
        1,
        "every alive since the change carries the old or the one new CONFIGID: {configs:?}"
    );
    let config = configs.into_iter().next().unwrap_or_default();
    config
        .parse()
        .unwrap_or_else(|_| panic!("CONFIGID.UPNP.ORG {config:?} is not a number"))
}

/// A Domain renamed in its sim file (same VM, same UDN, same set of devices and services):
/// CONFIGID moves and the root device is announced again with it (its own targets only), so
/// a control point learns that its cached description is stale without waiting for the
/// periodic refresh.
pub fn scenario_domain_renamed(site: &Site) {
    let sim = SimDir::standard("rename");
    let adv = advertisements_listener(site.peer2, &site.peer2_addr);
    let xenplug = site.start(&sim);
    let before = Identity::fetch(site.peer, &xenplug.url);
    let full = before.full_usns();
    let old_config = config_id(&before.description)
        .expect("configId in the description")
        .to_string();
    let heard = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        full.is_subset(&got).then_some(())
    });
    assert!(
        heard.is_some(),
        "upnp-client never saw the start-up announcement\n{}\n{}",
        adv.report(),
        xenplug.report()
    );
    // Let the start-up repeat pass.
    sleep(Duration::from_millis(500));
    let mark = json_lines(&adv.stdout()).len();

    let t0 = Instant::now();
    sim.write_domain_as("web", &Domain::new(VM_WEB, "web-renamed", "running"));
    let root = before.root_usns();
    let new_config = expect_alive_round(&adv, mark, &old_config, &root, &xenplug);
    let elapsed = t0.elapsed();
    eprintln!("timing: rename announced (root alive, new CONFIGID) {elapsed:?} after the sim file changed");
    assert!(
        elapsed <= ANNOUNCE_BUDGET,
        "rename announced {elapsed:?} after the sim file changed (budget {ANNOUNCE_BUDGET:?})\n{}",
        xenplug.report()
    );
    let after = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(after.full_usns(), full, "a rename keeps every UDN");
    assert_eq!(config_id(&after.description), Some(new_config));
    assert!(
        xml_texts(&after.description, "friendlyName").contains(&"web-renamed"),
        "the description names the Domain web-renamed:\n{}",
        after.description
    );
}
