//! The VM advertiser (`xenplug advertise vm`) against the real peers, each test in a network
//! namespace of its own on its loopback interface: the owner's services directory, the handler
//! contract (src/vm/handler.rs), hot reload, evented state files and the VM's identity.
//!
//! Timings (hot reload, event latency, handler time limit) are printed on stderr; run with
//! `cargo test --test interop_vm -- --nocapture` to see them.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::thread::sleep;
use std::time::{Duration, Instant};

/// Contract: a change in the services directory is on the network within 2 s.
const RELOAD_BUDGET: Duration = Duration::from_secs(2);
/// Contract: a state file change is evented within 1 s; the tests allow 2 s of slack.
const EVENT_BUDGET: Duration = Duration::from_secs(2);

fn udn() -> String {
    format!("uuid:{VM_SELF}")
}

/// USN of a service or device type of the VM root device.
fn root_usn(urn: &str) -> String {
    format!("{}::{urn}", udn())
}

/// The three USNs of the bare VirtualMachine root device (UDA 1.1 section 1.1.2).
fn bare_usns() -> BTreeSet<String> {
    set_of(&[&root_usn("upnp:rootdevice"), &udn(), &root_usn(DEVICE_VM)])
}

/// The `<action>` element of `scpd` whose name is `name`.
fn action_element<'a>(scpd: &'a str, name: &str) -> Option<&'a str> {
    let needle = format!("<name>{name}</name>");
    scpd.split("<action>")
        .skip(1)
        .map(|a| a.split("</action>").next().unwrap_or(a))
        .find(|a| a.contains(&needle))
}

/// Services of a peer's tree output by type.
fn services_by_type(out: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    records(out, "service")
        .into_iter()
        .map(|r| (field(&r, "type").to_string(), r))
        .collect()
}

/// A service whose handler answers `Echo(Text) -> Reply, Action` with the text and argv[1].
fn echo_service() -> ServiceFiles {
    ServiceFiles::new(
        &Scpd::new()
            .action("Echo", &["Text"], &["Reply", "Action"])
            .xml(),
        "#!/bin/sh\nprintf 'Reply=%s\\n' \"$XENPLUG_ARG_Text\"\nprintf 'Action=%s\\n' \"$1\"\n",
    )
}

/// A service with one action `Ping -> Result` answering `Result=<answer>`.
fn ping_service(answer: &str) -> ServiceFiles {
    ServiceFiles::new(
        &Scpd::new().action("Ping", &[], &["Result"]).xml(),
        &format!("#!/bin/sh\n[ \"$1\" = Ping ] || exit 1\necho Result={answer}\n"),
    )
}

/// Available USNs gssdp-discover reported after its `mark`-th record.
fn gssdp_after(proc: &Proc, mark: usize, available: bool) -> BTreeSet<String> {
    parse_gssdp(&proc.stdout())
        .into_iter()
        .skip(mark)
        .filter(|s| s.available == available)
        .map(|s| s.usn)
        .collect()
}

/// USNs upnp-client advertisements printed with `NTS: nts` after its `mark`-th line.
fn adv_after(proc: &Proc, mark: usize, nts: &str) -> BTreeSet<String> {
    json_lines(&proc.stdout())
        .iter()
        .skip(mark)
        .filter(|r| hdr(r, "NTS") == nts)
        .map(|r| hdr(r, "USN").to_string())
        .collect()
}

/// CONFIGID.UPNP.ORG of the first `ssdp:alive` for `usn` after `mark`.
fn adv_config_id(proc: &Proc, mark: usize, usn: &str) -> String {
    json_lines(&proc.stdout())
        .iter()
        .skip(mark)
        .find(|r| hdr(r, "NTS") == "ssdp:alive" && hdr(r, "USN") == usn)
        .map(|r| hdr(r, "CONFIGID.UPNP.ORG").to_string())
        .unwrap_or_default()
}

/// The description, polled until `accept` holds (bounded by `timeout`); panics otherwise.
fn description_until(
    ns: &Netns,
    xenplug: &Xenplug,
    timeout: Duration,
    what: &str,
    accept: impl Fn(&str) -> bool,
) -> String {
    let mut last = String::new();
    let got = poll_until(timeout, || {
        last = http_get(ns, &xenplug.url).body;
        accept(&last).then(|| last.clone())
    });
    got.unwrap_or_else(|| {
        panic!(
            "description never {what} within {timeout:?}; last:\n{last}\n{}",
            xenplug.report_with_path()
        )
    })
}

/// Lines of `log` naming `path`.
fn log_mentions(log: &str, path: &Path) -> usize {
    let path = path.display().to_string();
    log.lines().filter(|l| l.contains(&path)).count()
}

#[test]
fn empty_services_dir_advertises_the_bare_vm() {
    let ns = Netns::new("vm-empty");
    let services = ServicesDir::new("vm-empty");
    let gssdp = gssdp_listener(&ns, "lo", "ssdp:all", 60, "all");
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let expected = bare_usns();
    let seen = gssdp.wait_stdout(WAIT, |_| {
        (gssdp_usns(&gssdp, true) == expected).then_some(())
    });
    assert!(
        seen.is_some(),
        "gssdp-discover: expected exactly {expected:?}, saw {:?}\ngssdp log: {}\n{}\n{}",
        gssdp_usns(&gssdp, true),
        gssdp.log_paths(),
        gssdp.report(),
        xenplug.report_with_path()
    );
    // Nothing else turns up later (no service USNs for an empty directory).
    sleep(Duration::from_secs(1));
    assert_eq!(
        gssdp_usns(&gssdp, true),
        expected,
        "SSDP targets of a VM with no services\n{}",
        xenplug.report_with_path()
    );

    let description = http_get(&ns, &xenplug.url).body;
    assert_eq!(
        xml_texts(&description, "UDN"),
        vec![udn().as_str()],
        "{description}"
    );
    assert_eq!(
        xml_text(&description, "vmUuid"),
        Some(VM_SELF),
        "{description}"
    );
    assert_eq!(
        xml_text(&description, "deviceType"),
        Some(DEVICE_VM),
        "{description}"
    );
    assert!(
        description.contains(NS_XENPLUG),
        "vendor namespace declared:\n{description}"
    );
    assert!(
        xml_texts(&description, "serviceType").is_empty(),
        "no services:\n{description}"
    );

    let g = vm_gupnp(
        &ns,
        "lo",
        VM_SELF,
        &["--timeout", "15", "tree", "--all-embedded"],
    );
    let g = peer_ok(&g, "GUPnP tree", &xenplug);
    let a = aupnp(&ns, &["--timeout", "15", "tree", &xenplug.url]);
    let a = peer_ok(&a, "async-upnp-client tree", &xenplug);
    for (peer, out) in [("GUPnP", &g), ("async-upnp-client", &a)] {
        let devices = records(out, "device");
        assert_eq!(devices.len(), 1, "{peer}: one device\n{out}");
        assert_eq!(field(&devices[0], "type"), DEVICE_VM, "{peer}\n{out}");
        assert_eq!(field(&devices[0], "udn"), udn(), "{peer}\n{out}");
        assert_eq!(field(&devices[0], "vm_uuid"), VM_SELF, "{peer}\n{out}");
        assert!(
            records(out, "service").is_empty(),
            "{peer}: no services\n{out}"
        );
        assert_eq!(records(out, "end").len(), 1, "{peer}: tree complete\n{out}");
    }
}

#[test]
fn packaging_example_services_through_both_peers() {
    let ns = Netns::new("vm-pkg");
    let services = ServicesDir::packaging_examples("vm-pkg");
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let system_info = vm_service_type("SystemInfo");
    let app_control = vm_service_type("AppControl");

    let g = vm_gupnp(
        &ns,
        "lo",
        VM_SELF,
        &["--timeout", "15", "tree", "--all-embedded"],
    );
    let g = peer_ok(&g, "GUPnP tree", &xenplug);
    let a = aupnp(&ns, &["--timeout", "15", "tree", &xenplug.url]);
    let a = peer_ok(&a, "async-upnp-client tree", &xenplug);
    for (peer, out) in [("GUPnP", &g), ("async-upnp-client", &a)] {
        let by_type = services_by_type(out);
        assert_eq!(
            by_type.keys().cloned().collect::<BTreeSet<_>>(),
            set_of(&[&system_info, &app_control]),
            "{peer}: services\n{out}"
        );
        for (name, actions) in [
            ("SystemInfo", &["GetLoad", "GetUptime"][..]),
            ("AppControl", &["RestartApplication"][..]),
        ] {
            let svc = &by_type[&vm_service_type(name)];
            assert_eq!(
                list_field(svc, "actions"),
                set_of(actions),
                "{peer}: actions of {name}\n{out}"
            );
            assert_eq!(field(svc, "error"), "", "{peer}: introspection of {name}");
            assert_eq!(
                field(svc, "id"),
                format!("urn:xenplug-org:serviceId:{name}"),
                "{peer}"
            );
            for (key, path) in [
                ("control_url", format!("/control/svc/{name}")),
                ("event_url", format!("/event/svc/{name}")),
                ("scpd_url", format!("/scpd/{name}.xml")),
            ] {
                assert!(
                    field(svc, key).ends_with(&path),
                    "{peer}: {name} {key} should end with {path}: {svc:?}"
                );
            }
        }
    }
    assert_eq!(
        field(&services_by_type(&a)[&app_control], "evented"),
        "LastRestart",
        "async-upnp-client: AppControl's evented variables\n{a}"
    );

    let from_aupnp = call_ok(
        aupnp(
            &ns,
            &[
                "call",
                &xenplug.url,
                "--service",
                &system_info,
                "--action",
                "GetLoad",
            ],
        ),
        "async-upnp-client GetLoad",
        &xenplug,
    );
    let from_gupnp = call_ok(
        vm_gupnp(
            &ns,
            "lo",
            VM_SELF,
            &[
                "--timeout",
                "20",
                "call",
                "--service",
                &system_info,
                "--action",
                "GetLoad",
                "--out",
                "Load1",
                "--out",
                "Load5",
                "--out",
                "Load15",
            ],
        ),
        "GUPnP GetLoad",
        &xenplug,
    );
    for (peer, out) in [("async-upnp-client", &from_aupnp), ("GUPnP", &from_gupnp)] {
        for name in ["Load1", "Load5", "Load15"] {
            let value = field(out, name);
            assert!(
                value.parse::<f64>().is_ok_and(|v| v >= 0.0),
                "{peer}: GetLoad {name} should be a load average, got {value:?} in {out:?}"
            );
        }
    }

    let scpd = http_get(&ns, &format!("{}/scpd/AppControl.xml", xenplug.base()));
    assert_eq!(scpd.status, 200, "{}", xenplug.report_with_path());
    assert!(
        scpd.body
            .contains("xmlns:xenplug=\"urn:xenplug-org:schemas-1-0\""),
        "vendor namespace declared in the SCPD:\n{}",
        scpd.body
    );
    let restart = action_element(&scpd.body, "RestartApplication")
        .unwrap_or_else(|| panic!("no RestartApplication action:\n{}", scpd.body));
    assert!(
        restart.contains("<xenplug:semantics>destructive confirm</xenplug:semantics>"),
        "RestartApplication keeps its semantics annotation:\n{}",
        scpd.body
    );
}

#[test]
fn handler_arguments_are_data_not_shell() {
    let ns = Netns::new("vm-echo");
    let services = ServicesDir::new("vm-echo");
    services.add_service("Echo", &echo_service());
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let echo = vm_service_type("Echo");
    let marker =
        |n: u32| std::env::temp_dir().join(format!("xp-vm-inject-{}-{n}", std::process::id()));
    let markers = [marker(1), marker(2)];
    for m in &markers {
        let _ = fs::remove_file(m);
    }
    let texts = [
        format!("x; touch {}", markers[0].display()),
        format!(
            "$(touch {m}) `touch {m}` | touch {m} && touch {m} <x> 'q' \"qq\"",
            m = markers[1].display()
        ),
    ];
    for text in &texts {
        let input = format!("Text={text}");
        let from_aupnp = call_ok(
            aupnp(
                &ns,
                &[
                    "call",
                    &xenplug.url,
                    "--service",
                    &echo,
                    "--action",
                    "Echo",
                    "--in",
                    &input,
                ],
            ),
            "async-upnp-client Echo",
            &xenplug,
        );
        let from_gupnp = call_ok(
            vm_gupnp(
                &ns,
                "lo",
                VM_SELF,
                &[
                    "--timeout",
                    "20",
                    "call",
                    "--service",
                    &echo,
                    "--action",
                    "Echo",
                    "--in",
                    &input,
                    "--out",
                    "Reply",
                    "--out",
                    "Action",
                ],
            ),
            "GUPnP Echo",
            &xenplug,
        );
        for (peer, out) in [("async-upnp-client", &from_aupnp), ("GUPnP", &from_gupnp)] {
            assert_eq!(field(out, "Reply"), text, "{peer}: text back verbatim");
            assert_eq!(
                field(out, "Action"),
                "Echo",
                "{peer}: argv[1] is the action"
            );
        }
    }
    // The handler has exited (the calls answered); give stray children a moment anyway.
    sleep(Duration::from_millis(300));
    let created: Vec<_> = markers.iter().filter(|m| m.exists()).collect();
    for m in &markers {
        let _ = fs::remove_file(m);
    }
    assert!(
        created.is_empty(),
        "a value was run as a command: {created:?} exists\n{}",
        xenplug.report_with_path()
    );
}

#[test]
fn failing_handlers_are_upnp_errors() {
    let ns = Netns::new("vm-fail");
    let services = ServicesDir::new("vm-fail");
    services.add_service(
        "Broken",
        &ServiceFiles::new(
            &Scpd::new()
                .action("Fail", &[], &["Result"])
                .action("Busy", &[], &["Result"])
                .xml(),
            "#!/bin/sh\ncase \"$1\" in\n\
             Fail) echo 'disk full' >&2; exit 3 ;;\n\
             Busy) echo 'UPnPError=712 Already running'; exit 1 ;;\n\
             esac\necho \"unknown action $1\" >&2\nexit 1\n",
        ),
    );
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let broken = vm_service_type("Broken");
    for (action, code, description) in [
        ("Fail", "501", "disk full"),
        ("Busy", "712", "Already running"),
    ] {
        let from_aupnp = call_err(
            aupnp(
                &ns,
                &[
                    "call",
                    &xenplug.url,
                    "--service",
                    &broken,
                    "--action",
                    action,
                ],
            ),
            &format!("async-upnp-client {action}"),
            &xenplug,
        );
        assert_eq!(field(&from_aupnp, "code"), code, "{from_aupnp:?}");
        assert_eq!(
            field(&from_aupnp, "description"),
            description,
            "{from_aupnp:?}"
        );
        let from_gupnp = call_err(
            vm_gupnp(
                &ns,
                "lo",
                VM_SELF,
                &[
                    "--timeout",
                    "20",
                    "call",
                    "--service",
                    &broken,
                    "--action",
                    action,
                    "--out",
                    "Result",
                ],
            ),
            &format!("GUPnP {action}"),
            &xenplug,
        );
        assert_eq!(field(&from_gupnp, "code"), code, "{from_gupnp:?}");
        assert_eq!(field(&from_gupnp, "message"), description, "{from_gupnp:?}");
    }
}

#[test]
fn hanging_handler_is_killed_with_its_children() {
    let ns = Netns::new("vm-hang");
    let services = ServicesDir::new("vm-hang");
    let marks = TempDir::new("vm-hang-marks");
    let m = marks.path().display().to_string();
    services.add_service(
        "Slow",
        &ServiceFiles::new(
            &Scpd::new()
                .action("Hang", &[], &["Result"])
                .action("Quick", &[], &["Result"])
                .xml(),
            &format!(
                "#!/bin/sh\n\
                 if [ \"$1\" = Quick ]; then echo Result=quick; exit 0; fi\n\
                 echo $$ >{m}/handler.pid\n\
                 sleep 60 &\n\
                 echo $! >{m}/child.pid\n\
                 ( sleep 2; touch {m}/survivor ) &\n\
                 echo $! >{m}/subshell.pid\n\
                 sleep 60\n"
            ),
        ),
    );
    let mut options = VmOptions::new("lo", &services.path());
    options.handler_timeout = Some(1);
    let xenplug = Xenplug::start_vm(&ns, &options);
    let control = format!("{}/control/svc/Slow", xenplug.base());
    let slow = vm_service_type("Slow");

    let t0 = Instant::now();
    let fault = soap_call(&ns, &control, &slow, "Hang", &[]);
    let elapsed = t0.elapsed();
    eprintln!("vm-hang: Hang answered after {elapsed:?} (--handler-timeout 1)");
    assert_eq!(
        (fault.status, xml_text(&fault.body, "errorCode")),
        (500, Some("501")),
        "a handler past its time limit is 501 Action Failed\n{fault:?}\n{}",
        xenplug.report_with_path()
    );
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed <= Duration::from_secs(3),
        "answer after {elapsed:?}, expected about 1 s (1-3 s)\n{}",
        xenplug.report_with_path()
    );

    let pid_of = |name: &str| -> u32 {
        let path = marks.path().join(name);
        fs::read_to_string(&path)
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or_else(|| panic!("the handler never wrote {}", path.display()))
    };
    let pids = [
        ("handler", pid_of("handler.pid")),
        ("sleep 60 child", pid_of("child.pid")),
        ("subshell", pid_of("subshell.pid")),
    ];
    // Killed processes may stay zombies for a while once reparented to init; only a live
    // process, or a zombie xenplug itself should have reaped, counts as left behind.
    let xenplug_pid = xenplug.proc.pid();
    let lingering = |pids: &mut dyn Iterator<Item = (String, u32)>| -> Vec<String> {
        pids.filter(|(_, pid)| lingers(*pid, xenplug_pid))
            .map(|(what, pid)| format!("{what} {pid} {:?}: {}", proc_state(pid), proc_cmdline(pid)))
            .collect()
    };
    let handler_pids = || pids.iter().map(|(what, pid)| (what.to_string(), *pid));
    let gone = poll_until(Duration::from_secs(1), || {
        lingering(&mut handler_pids()).is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "handler processes survived the time limit: {:?}\n{}",
        lingering(&mut handler_pids()),
        xenplug.report_with_path()
    );
    // Nothing but xenplug is left in the namespace (the subshell's own `sleep 2` included).
    let others = || {
        netns_pids(&ns)
            .into_iter()
            .filter(|p| *p != xenplug_pid)
            .map(|p| ("process".to_string(), p))
    };
    let only_xenplug = poll_until(Duration::from_secs(1), || {
        lingering(&mut others()).is_empty().then_some(())
    });
    assert!(
        only_xenplug.is_some(),
        "processes left in the namespace besides xenplug ({xenplug_pid}): {:?}\n{}",
        lingering(&mut others()),
        xenplug.report_with_path()
    );
    // The background subshell would have touched its marker 2 s after the call started.
    let wait = Duration::from_millis(2500).saturating_sub(t0.elapsed());
    sleep(wait);
    assert!(
        !marks.path().join("survivor").exists(),
        "a child of the killed handler ran on\n{}",
        xenplug.report_with_path()
    );
    // The advertiser is still serving calls (the handler slot was given back).
    let quick = soap_call(&ns, &control, &slow, "Quick", &[]);
    assert_eq!(
        quick.status,
        200,
        "{quick:?}\n{}",
        xenplug.report_with_path()
    );
    assert_eq!(
        xml_text(&quick.body, "Result"),
        Some("quick"),
        "{}",
        quick.body
    );
}

#[test]
fn hot_reload_adds_and_removes_services_and_devices() {
    let ns = Netns::new("vm-reload");
    let services = ServicesDir::new("vm-reload");
    services.add_service("Base", &ping_service("base"));
    let adv = advertisements_listener(&ns, "127.0.0.1");
    let gssdp = gssdp_listener(&ns, "lo", "ssdp:all", 60, "all");
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let mut full = bare_usns();
    full.insert(root_usn(&vm_service_type("Base")));
    let settled = gssdp.wait_stdout(WAIT, |_| (gssdp_usns(&gssdp, true) == full).then_some(()));
    assert!(
        settled.is_some(),
        "gssdp-discover never saw exactly {full:?}\n{}\n{}",
        gssdp.report(),
        xenplug.report_with_path()
    );
    // Let the start-up repeat pass.
    sleep(Duration::from_millis(600));
    let config0 = config_id(&http_get(&ns, &xenplug.url).body);

    // ---- a service folder appears
    let echo_type = vm_service_type("Echo");
    let echo_usn = root_usn(&echo_type);
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let adv_mark = json_lines(&adv.stdout()).len();
    let t0 = Instant::now();
    services.add_service("Echo", &echo_service());
    let seen = gssdp.wait_stdout(Duration::from_secs(5), |_| {
        gssdp_after(&gssdp, gssdp_mark, true)
            .contains(&echo_usn)
            .then(|| t0.elapsed())
    });
    let Some(added_after) = seen else {
        panic!(
            "gssdp-discover saw no ssdp:alive for {echo_usn} within 5 s of adding the folder\n{}\n{}",
            gssdp.report(),
            xenplug.report_with_path()
        );
    };
    eprintln!("vm-reload: service added -> gssdp-discover saw it after {added_after:?}");
    assert!(
        added_after <= RELOAD_BUDGET,
        "new service announced {added_after:?} after its folder appeared (contract: 2 s)"
    );
    let description = description_until(&ns, &xenplug, RELOAD_BUDGET, "listed Echo", |d| {
        xml_texts(d, "serviceType").contains(&echo_type.as_str())
    });
    let config1 = config_id(&description);
    assert!(
        config1 > config0 && config0.is_some(),
        "configId must increase when a service appears: {config0:?} -> {config1:?}"
    );
    let announced = adv.wait_stdout(WAIT, |_| {
        adv_after(&adv, adv_mark, "ssdp:alive")
            .contains(&echo_usn)
            .then_some(())
    });
    assert!(
        announced.is_some(),
        "upnp-client advertisements saw no ssdp:alive for {echo_usn}\n{}\n{}",
        adv.report(),
        xenplug.report_with_path()
    );
    sleep(Duration::from_millis(700));
    assert_eq!(
        adv_after(&adv, adv_mark, "ssdp:alive"),
        set_of(&[&echo_usn]),
        "only the new service is announced\n{}",
        adv.report()
    );
    assert_eq!(
        adv_config_id(&adv, adv_mark, &echo_usn),
        config1.map(|c| c.to_string()).unwrap_or_default(),
        "CONFIGID.UPNP.ORG of the new alive = the description's configId"
    );

    // ---- the folder goes away
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let adv_mark = json_lines(&adv.stdout()).len();
    let t1 = Instant::now();
    services.remove("Echo");
    let gone = adv.wait_stdout(Duration::from_secs(5), |_| {
        adv_after(&adv, adv_mark, "ssdp:byebye")
            .contains(&echo_usn)
            .then(|| t1.elapsed())
    });
    let Some(removed_after) = gone else {
        panic!(
            "no ssdp:byebye for {echo_usn} within 5 s of removing the folder\n{}\n{}",
            adv.report(),
            xenplug.report_with_path()
        );
    };
    eprintln!("vm-reload: service removed -> upnp-client saw byebye after {removed_after:?}");
    assert!(
        removed_after <= RELOAD_BUDGET,
        "byebye {removed_after:?} after the folder went (contract: 2 s)"
    );
    let description = description_until(&ns, &xenplug, RELOAD_BUDGET, "dropped Echo", |d| {
        !xml_texts(d, "serviceType").contains(&echo_type.as_str())
    });
    assert!(
        config_id(&description) > config1,
        "configId must increase again: {config1:?} -> {:?}",
        config_id(&description)
    );
    let unavailable = gssdp.wait_stdout(WAIT, |_| {
        gssdp_after(&gssdp, gssdp_mark, false)
            .contains(&echo_usn)
            .then_some(())
    });
    assert!(
        unavailable.is_some(),
        "gssdp-discover never reported {echo_usn} unavailable\n{}",
        gssdp.report()
    );
    sleep(Duration::from_millis(700));
    assert_eq!(
        adv_after(&adv, adv_mark, "ssdp:byebye"),
        set_of(&[&echo_usn]),
        "byebye for the removed service alone\n{}",
        adv.report()
    );
    assert!(
        adv_after(&adv, adv_mark, "ssdp:alive").is_empty(),
        "removing a service re-announces nothing\n{}",
        adv.report()
    );

    // ---- an embedded device appears
    let media_type = vm_device_type("Media");
    let player_type = vm_service_type("Player");
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let adv_mark = json_lines(&adv.stdout()).len();
    let t2 = Instant::now();
    services.add_device("Media", &[("Player", &ping_service("playing"))]);
    let suffix = format!("::{media_type}");
    let sub = gssdp.wait_stdout(Duration::from_secs(5), |_| {
        gssdp_after(&gssdp, gssdp_mark, true)
            .iter()
            .find_map(|usn| usn.strip_suffix(&suffix).map(str::to_string))
            .map(|udn| (udn, t2.elapsed()))
    });
    let Some((sub_udn, device_after)) = sub else {
        panic!(
            "no ssdp:alive for a {media_type} device within 5 s\n{}\n{}",
            gssdp.report(),
            xenplug.report_with_path()
        );
    };
    eprintln!("vm-reload: subdevice added -> gssdp-discover saw it after {device_after:?}");
    assert!(
        device_after <= RELOAD_BUDGET,
        "embedded device announced {device_after:?} after its folder appeared (contract: 2 s)"
    );
    assert_ne!(sub_udn, udn(), "the embedded device has a UDN of its own");
    let description = description_until(&ns, &xenplug, RELOAD_BUDGET, "listed Media", |d| {
        xml_texts(d, "deviceType").contains(&media_type.as_str())
    });
    assert!(
        xml_texts(&description, "UDN").contains(&sub_udn.as_str()),
        "embedded device UDN {sub_udn} in the description:\n{description}"
    );
    for (element, value) in [
        ("serviceType", player_type.as_str()),
        ("SCPDURL", "/scpd/Media.Player.xml"),
        ("controlURL", "/control/dev/Media/Player"),
        ("eventSubURL", "/event/dev/Media/Player"),
    ] {
        assert!(
            xml_texts(&description, element).contains(&value),
            "{element} {value} in the description:\n{description}"
        );
    }
    let sub_usns = set_of(&[
        &sub_udn,
        &format!("{sub_udn}::{media_type}"),
        &format!("{sub_udn}::{player_type}"),
    ]);
    let announced = adv.wait_stdout(WAIT, |_| {
        sub_usns
            .is_subset(&adv_after(&adv, adv_mark, "ssdp:alive"))
            .then_some(())
    });
    assert!(
        announced.is_some(),
        "upnp-client did not see alive for {sub_usns:?}\n{}\n{}",
        adv.report(),
        xenplug.report_with_path()
    );
    sleep(Duration::from_millis(700));
    assert_eq!(
        adv_after(&adv, adv_mark, "ssdp:alive"),
        sub_usns,
        "only the new device is announced\n{}",
        adv.report()
    );
    let played = call_ok(
        aupnp(
            &ns,
            &[
                "call",
                &xenplug.url,
                "--service",
                &player_type,
                "--action",
                "Ping",
            ],
        ),
        "async-upnp-client Ping on the embedded device",
        &xenplug,
    );
    assert_eq!(field(&played, "Result"), "playing", "{played:?}");
}

/// Wait until every subscriber printed `var=value` after its record `from`; returns for each
/// the time since `t0` and the record count to continue from.
fn wait_event_all(
    subscribers: &[(&str, &Proc, usize)],
    var: &str,
    value: &str,
    t0: Instant,
    xenplug: &Xenplug,
) -> Vec<(Duration, usize)> {
    let mut seen: Vec<Option<(Duration, usize)>> = vec![None; subscribers.len()];
    poll_until(WAIT, || {
        for (i, (_, proc, from)) in subscribers.iter().enumerate() {
            if seen[i].is_none() {
                seen[i] = records(&proc.stdout(), "event")
                    .iter()
                    .enumerate()
                    .skip(*from)
                    .find(|(_, r)| field(r, "var") == var && field(r, "value") == value)
                    .map(|(at, _)| (t0.elapsed(), at + 1));
            }
        }
        seen.iter().all(Option::is_some).then_some(())
    });
    seen.iter()
        .zip(subscribers)
        .map(|(got, (peer, proc, _))| {
            got.unwrap_or_else(|| {
                panic!(
                    "{peer}: no {var}={value} event within {WAIT:?}\nsubscriber log: {}\n{}\n{}",
                    proc.log_paths(),
                    proc.report(),
                    xenplug.report_with_path()
                )
            })
        })
        .collect()
}

#[test]
fn state_file_changes_are_evented() {
    let ns = Netns::new("vm-event");
    let services = ServicesDir::new("vm-event");
    services.add_service(
        "Status",
        &ServiceFiles::new(
            &Scpd::new()
                .action("Ping", &[], &["Result"])
                .evented("Phase")
                .xml(),
            "#!/bin/sh\necho Result=pong\n",
        )
        .state("Phase", "idle\n"),
    );
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let status = vm_service_type("Status");
    let a_events = aupnp_spawn(
        &ns,
        &[
            "--timeout",
            "40",
            "events",
            &xenplug.url,
            "--bind",
            "127.0.0.1",
            "--service",
            &status,
            "--count",
            "3",
        ],
    );
    let mut g_events = vm_gupnp_spawn(
        &ns,
        "lo",
        VM_SELF,
        &[
            "--timeout",
            "40",
            "events",
            "--service",
            &status,
            "--var",
            "Phase",
            "--count",
            "3",
        ],
    );
    // UDA 1.1 section 4.1.2: the initial event carries every evented variable.
    let a_at = expect_event(&a_events, 0, "Phase", "idle", &xenplug);
    let g_at = expect_gupnp_initial_event(&g_events, "Phase", "idle", &xenplug);

    // Rewritten in place, as a handler's `echo busy >state/Phase` does.
    let t0 = Instant::now();
    services.write_state_in_place("Status", "Phase", "busy\n");
    let busy = wait_event_all(
        &[
            ("async-upnp-client", &a_events, a_at),
            ("GUPnP", &g_events, g_at),
        ],
        "Phase",
        "busy",
        t0,
        &xenplug,
    );
    // Replaced atomically (rename over), as a careful program does.
    let t1 = Instant::now();
    services.write_state_atomic("Status", "Phase", "done");
    let done = wait_event_all(
        &[
            ("async-upnp-client", &a_events, busy[0].1),
            ("GUPnP", &g_events, busy[1].1),
        ],
        "Phase",
        "done",
        t1,
        &xenplug,
    );
    for (change, got) in [("in place", &busy), ("rename", &done)] {
        eprintln!(
            "vm-event: state file ({change}) -> event after {:?} (async-upnp-client), {:?} (GUPnP)",
            got[0].0, got[1].0
        );
        for (peer, (latency, _)) in ["async-upnp-client", "GUPnP"].iter().zip(got.iter()) {
            assert!(
                *latency <= EVENT_BUDGET,
                "{peer}: event {latency:?} after the state file changed ({change}; contract 1 s, \
                 slack to 2 s)\n{}",
                xenplug.report_with_path()
            );
        }
    }
    let mut a_events = a_events;
    for (peer, proc) in [
        ("async-upnp-client", &mut a_events),
        ("GUPnP", &mut g_events),
    ] {
        let status = proc.wait_exit(WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "{peer} subscriber did not finish cleanly (unsubscribe): {status:?}\n{}",
            proc.report()
        );
    }
}

#[test]
fn broken_services_are_left_out_and_logged_once() {
    let ns = Netns::new("vm-broken");
    let services = ServicesDir::new("vm-broken");
    services.add_service("Good", &ping_service("pong"));
    services.add_service(
        "BadScpd",
        &ServiceFiles::new(
            "<?xml version=\"1.0\"?>\n<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\
             <actionList><action><name>Oops",
            "#!/bin/sh\necho Result=x\n",
        ),
    );
    let mut no_exec = ping_service("never");
    no_exec.handler_mode = 0o644;
    services.add_service("NoExec", &no_exec);
    let bad_scpd = services.path().join("BadScpd").join("scpd.xml");
    let bad_handler = services.path().join("NoExec").join("handler");

    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    let description = http_get(&ns, &xenplug.url).body;
    assert_eq!(
        xml_texts(&description, "serviceType"),
        vec![vm_service_type("Good").as_str()],
        "only the good service is served:\n{description}\n{}",
        xenplug.report_with_path()
    );
    let logged = xenplug.proc.wait_stderr(WAIT, |log| {
        (log_mentions(log, &bad_scpd) >= 1 && log_mentions(log, &bad_handler) >= 1).then_some(())
    });
    assert!(
        logged.is_some(),
        "the log should name {} and {}\n{}",
        bad_scpd.display(),
        bad_handler.display(),
        xenplug.report_with_path()
    );
    // Four scans or more later (500 ms each, past the 2 s a fresh file is not trusted for).
    sleep(Duration::from_millis(2500));
    let log = xenplug.log();
    for path in [&bad_scpd, &bad_handler] {
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(&path.display().to_string()))
            .collect();
        assert_eq!(
            lines.len(),
            1,
            "{} should be logged exactly once, got:\n{}\n{}",
            path.display(),
            lines.join("\n"),
            xenplug.report_with_path()
        );
    }
    let scpd_line = log
        .lines()
        .find(|l| l.contains(&bad_scpd.display().to_string()))
        .unwrap_or("");
    assert!(scpd_line.contains("SCPD"), "says why: {scpd_line}");
    let handler_line = log
        .lines()
        .find(|l| l.contains(&bad_handler.display().to_string()))
        .unwrap_or("");
    assert!(
        handler_line.contains("executable"),
        "says why: {handler_line}"
    );

    let good = call_ok(
        aupnp(
            &ns,
            &[
                "call",
                &xenplug.url,
                "--service",
                &vm_service_type("Good"),
                "--action",
                "Ping",
            ],
        ),
        "async-upnp-client Ping on the good service",
        &xenplug,
    );
    assert_eq!(field(&good, "Result"), "pong");
    for name in ["BadScpd", "NoExec"] {
        let scpd = http_get(&ns, &format!("{}/scpd/{name}.xml", xenplug.base()));
        assert_eq!(scpd.status, 404, "/scpd/{name}.xml of a left-out service");
    }
    let g = vm_gupnp(
        &ns,
        "lo",
        VM_SELF,
        &["--timeout", "15", "tree", "--all-embedded"],
    );
    let g = peer_ok(&g, "GUPnP tree", &xenplug);
    assert_eq!(
        services_by_type(&g)
            .keys()
            .cloned()
            .collect::<BTreeSet<_>>(),
        set_of(&[&vm_service_type("Good")]),
        "GUPnP sees the good service alone\n{g}"
    );
}

#[test]
fn vm_identity_is_required_and_never_nil() {
    let ns = Netns::new("vm-id");
    let services = ServicesDir::new("vm-id");
    let mut options = VmOptions::new("lo", &services.path());
    options.uuid = None;
    let output = run_vm_without_identity(&ns, &options);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(
        output.status.code(),
        Some(97),
        "could not hide the guest's UUID sources: {stderr}"
    );
    assert!(
        output.status.code().is_some_and(|c| c != 0),
        "advertise vm without --uuid on a machine that is not a Xen guest must exit non-zero, \
         got {}\n{stderr}",
        output.status
    );
    assert!(
        stderr.contains("/sys/hypervisor/uuid"),
        "the message should name /sys/hypervisor/uuid:\n{stderr}"
    );
    assert!(
        !stderr.contains("description at"),
        "nothing advertised:\n{stderr}"
    );

    for (uuid, why) in [
        ("00000000-0000-0000-0000-000000000000", "nil"),
        ("not-a-uuid", "not a UUID"),
    ] {
        options.uuid = Some(uuid.to_string());
        let output = run_vm_without_identity(&ns, &options);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.code().is_some_and(|c| c != 0 && c != 97),
            "--uuid {uuid} must exit non-zero, got {}\n{stderr}",
            output.status
        );
        assert!(
            stderr.contains(why),
            "--uuid {uuid}: the message should say {why:?}:\n{stderr}"
        );
        assert!(
            !stderr.contains("description at"),
            "nothing advertised:\n{stderr}"
        );
    }
}
