//! Access control end to end: identities and roles at the tracker's API (its provider listener
//! and a tenant network's), tenant isolation decided from the repository (migration
//! included), signed calls to the devices (HMAC-SHA256 with the control key, as
//! tests/interop/signed_call.py makes them from README's description alone), the access file
//! reloaded while the tracker runs, and the audit journal. Each test builds its own topology
//! (tests/common: `TrackWorld`), in namespaces; nothing leaves them.

mod common;

use common::*;
use std::time::Duration;

/// Bound for the topology to settle.
const SETTLE: Duration = Duration::from_secs(15);
/// Bound of one console command.
const COMMAND: Duration = Duration::from_secs(30);

fn world_with_tracker(tag: &str, setup: TrackSetup) -> TrackWorld {
    let mut world = TrackWorld::new(tag, setup);
    world.start_tracker();
    world.wait_settled(SETTLE, tag);
    world
}

/// `service=<type>&action=<name>` with the type's colons encoded, then `extra`.
fn form(service: &str, action: &str, extra: &str) -> String {
    format!(
        "service={}&action={action}{extra}",
        service.replace(':', "%3A")
    )
}

/// The Echo argument's value: it must never reach the journal.
const SECRET: &str = "s3cr3t-value";

fn echo() -> String {
    form(&vm_service_type("Echo"), "Echo", &format!("&Text={SECRET}"))
}

fn lifecycle(action: &str) -> String {
    form(SERVICE_DOMAIN_CONTROL, action, "")
}

fn sim_state(world: &TrackWorld, host: usize, name: &str) -> Option<String> {
    world.sims[host].read_domain(name).get("state").cloned()
}

/// `xenplug console ARGS --tracker URL` in the tracker's namespace with identity `name`'s
/// token in `XENPLUG_TOKEN` (none for `None`).
fn console(world: &TrackWorld, name: Option<&str>, args: &[&str]) -> std::process::Output {
    let api = world.api();
    let mut full = vec!["console"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--tracker", &api]);
    let mut command = world.tracker_ns.command(xenplug_bin(), &full);
    command.env_remove("XENPLUG_TOKEN");
    if let Some(name) = name {
        command.env("XENPLUG_TOKEN", world.access.token(name));
    }
    run_bounded(command, COMMAND, &format!("xenplug {}", full.join(" ")))
}

/// The `action` lines of the journal after `mark`.
fn actions_after(world: &TrackWorld, mark: u64) -> Vec<JournalEntry> {
    world
        .journal()
        .into_iter()
        .filter(|e| e.seq > mark && e.kind == "action")
        .collect()
}

/// Whether exactly one of `actions` is `action` by `identity` on `subject` with `outcome`.
fn audited_once(
    actions: &[JournalEntry],
    identity: &str,
    subject: &str,
    action: &str,
    outcome: &str,
) -> bool {
    let detail = |e: &JournalEntry, key: &str| e.details.get(key).cloned().unwrap_or_default();
    actions
        .iter()
        .filter(|e| {
            e.subject == subject
                && detail(e, "identity") == identity
                && detail(e, "action") == action
                && detail(e, "outcome") == outcome
        })
        .count()
        == 1
}

#[test]
fn each_role_gets_what_it_may_and_is_refused_the_rest() {
    let world = world_with_tracker("acc-roles", TrackSetup::default());
    let vm = format!("/api/vms/{TRACK_VM_A1}/actions");
    let host = format!("/api/hypervisors/{TRACK_HOST_A}/actions");
    let get_host_info = form(SERVICE_HYPERVISOR, "GetHostInfo", "");
    let mark = world.last_seq();

    // Reads: every identity; without a token, 401 with the scheme to use.
    for name in ["admin", "ops", "eve"] {
        let tree = world.api_get_as(name, "/api/tree");
        assert_eq!(tree.status, 200, "{name}: {tree:?}");
        assert!(
            tree.body.contains(TRACK_HOST_A),
            "{name} sees the hypervisors"
        );
    }
    let anonymous = curl(&world.tracker_ns, &format!("{}/api/tree", world.api()), &[]);
    assert_eq!(anonymous.status, 401, "{anonymous:?}");
    assert!(
        anonymous
            .header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{anonymous:?}"
    );
    let forged = curl(
        &world.tracker_ns,
        &format!("{}/api/tree", world.api()),
        &["-H", "Authorization: Bearer 0123456789abcdef"],
    );
    assert_eq!(forged.status, 401, "{forged:?}");
    // A tenant's token on the provider listener: its own slice only.
    let slice = world.api_get_as("acme", "/api/tree");
    assert_eq!(slice.status, 200, "{slice:?}");
    assert!(
        slice.body.contains(TRACK_VM_A1)
            && !slice.body.contains(TRACK_VM_B1)
            && !slice.body.contains(TRACK_HOST_A),
        "{}",
        slice.body
    );

    // Actions by role.
    let cases: Vec<(&str, &str, String, u16)> = vec![
        ("eve", vm.as_str(), lifecycle("Pause"), 403),
        ("eve", vm.as_str(), echo(), 403),
        ("ops", vm.as_str(), lifecycle("Destroy"), 403),
        ("ops", vm.as_str(), lifecycle("Reboot"), 403),
        ("ops", vm.as_str(), lifecycle("Pause"), 200),
        ("ops", vm.as_str(), lifecycle("Resume"), 200),
        ("ops", vm.as_str(), echo(), 200),
        ("ops", host.as_str(), get_host_info.clone(), 200),
        ("acme", vm.as_str(), echo(), 200),
        ("acme", vm.as_str(), lifecycle("Pause"), 403),
        ("acme", host.as_str(), get_host_info.clone(), 404),
        ("beta", vm.as_str(), echo(), 404),
        ("beta", vm.as_str(), lifecycle("Pause"), 404),
        ("admin", host.as_str(), get_host_info, 200),
    ];
    for (name, path, body, status) in &cases {
        let response = world.api_post_form_as(name, path, body);
        assert_eq!(
            response.status,
            *status,
            "{name}: {body} at {path}: {response:?}\n{}",
            world.report()
        );
        if *status == 200 {
            assert!(response.body.contains("\"outputs\""), "{response:?}");
        }
    }
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));

    // The admin may do everything, Destroy included.
    let destroyed = world.api_post_form(&vm, &lifecycle("Destroy"));
    assert_eq!(destroyed.status, 200, "{destroyed:?}");
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("shutoff"));

    // Every call, allowed or refused, is one action line with its identity.
    let actions = actions_after(&world, mark);
    assert!(
        audited_once(&actions, "eve", TRACK_VM_A1, "Pause", "refused-403"),
        "{actions:?}"
    );
    assert!(
        audited_once(&actions, "ops", TRACK_VM_A1, "Destroy", "refused-403"),
        "{actions:?}"
    );
    assert!(
        audited_once(&actions, "ops", TRACK_VM_A1, "Pause", "ok"),
        "{actions:?}"
    );
    assert!(
        audited_once(&actions, "beta", TRACK_VM_A1, "Echo", "refused-404"),
        "{actions:?}"
    );
    assert!(
        audited_once(&actions, "admin", TRACK_VM_A1, "Destroy", "ok"),
        "{actions:?}"
    );
    assert!(
        audited_once(&actions, "admin", TRACK_HOST_A, "GetHostInfo", "ok"),
        "{actions:?}"
    );
    assert_eq!(actions.len(), cases.len() + 1, "{actions:?}");
    for line in &actions {
        assert_eq!(
            line.details.get("source").map(String::as_str),
            Some("127.0.0.1"),
            "{line:?}"
        );
        assert!(!line.line.contains(SECRET), "no argument value: {line:?}");
    }
    let echoed = actions
        .iter()
        .find(|e| e.details.get("action").map(String::as_str) == Some("Echo"))
        .expect("an Echo line");
    assert_eq!(
        echoed.details.get("arguments").map(String::as_str),
        Some("Text")
    );

    // A tenant sees the action lines about its own VMs, the provider's among them, and no
    // other; the provider sees them all.
    let feed = world.api_get_as("acme", "/api/events?since=0");
    let feed = Json::parse(&feed.body).expect("events JSON");
    let seen: Vec<&Json> = feed
        .list("events")
        .iter()
        .filter(|e| e.s("kind") == "action")
        .collect();
    assert!(
        seen.iter()
            .any(|e| e.get("details").is_some_and(|d| d.s("identity") == "admin")),
        "acme sees what the provider did to its VM: {seen:?}"
    );
    assert!(
        seen.iter().all(|e| e.s("subject") == TRACK_VM_A1),
        "only its own VMs: {seen:?}"
    );
    assert!(
        seen.iter()
            .all(|e| e.get("details").is_some_and(|d| d.get("source").is_none())),
        "no provider address: {seen:?}"
    );
    let beta = world.api_get_as("beta", "/api/events?since=0");
    assert!(
        !beta.body.contains("\"action\""),
        "beta sees no action on acme's VM: {}",
        beta.body
    );

    // The console: a token from XENPLUG_TOKEN; none is a plain refusal with exit 1.
    let output = console(&world, None, &["tree"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("401"),
        "{output:?}"
    );
    let output = console(&world, Some("eve"), &["call", "beta-1", "Pause", "--yes"]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("refused: 403"),
        "{output:?}"
    );
    let output = console(&world, Some("ops"), &["call", "beta-1", "Pause", "--yes"]);
    assert!(output.status.success(), "{output:?}\n{}", world.report());
    assert_eq!(sim_state(&world, 0, "beta-1").as_deref(), Some("paused"));
}

#[test]
fn guesses_are_limited_per_source_and_cross_site_requests_refused() {
    let world = world_with_tracker(
        "acc-limit",
        TrackSetup {
            api_any: true,
            ..TrackSetup::default()
        },
    );
    let tree = format!("{}/api/tree", world.api());
    let mut statuses = Vec::new();
    for n in 0..12 {
        let guess = format!("Authorization: Bearer guess{n}");
        statuses.push(curl(&world.tracker_ns, &tree, &["-H", &guess]).status);
    }
    assert_eq!(&statuses[..9], &[401; 9], "{statuses:?}");
    assert!(statuses[9..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even a valid token waits out the minute from that address.
    assert_eq!(world.api_get("/api/tree").status, 429);
    // From another address the valid token works.
    let other = curl(
        &world.mgmt.host(0).ns,
        &format!("http://{}:{TRACK_API_PORT}/api/tree", track_leg_addr(1)),
        &["-H", &world.access.header("admin")],
    );
    assert_eq!(other.status, 200, "{other:?}");
    assert!(
        world
            .tracker()
            .log()
            .lines()
            .filter(|l| l.contains("failed to authenticate"))
            .count()
            == 1,
        "the limit is logged once\n{}",
        world.report()
    );

    // A page of another origin cannot make a browser act, whatever token it holds.
    let cross = curl(
        &world.mgmt.host(0).ns,
        &format!(
            "http://{}:{TRACK_API_PORT}/api/vms/{TRACK_VM_A1}/actions",
            track_leg_addr(1)
        ),
        &[
            "-X",
            "POST",
            "-H",
            "Origin: http://evil.example",
            "-H",
            &world.access.header("admin"),
            "--data-binary",
            &lifecycle("Pause"),
        ],
    );
    assert_eq!(cross.status, 403, "{cross:?}");
    assert!(cross.header("access-control-allow-origin").is_none());
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));
}

#[test]
fn without_an_access_file_reads_stay_and_actions_are_refused() {
    let world = world_with_tracker(
        "acc-open",
        TrackSetup {
            open: true,
            ..TrackSetup::default()
        },
    );
    let tree = curl(&world.tracker_ns, &format!("{}/api/tree", world.api()), &[]);
    assert_eq!(tree.status, 200, "{tree:?}");
    let response = curl(
        &world.tracker_ns,
        &format!("{}/api/vms/{TRACK_VM_A1}/actions", world.api()),
        &["-X", "POST", "--data-binary", &lifecycle("Pause")],
    );
    assert_eq!(response.status, 403, "{response:?}");
    assert!(response.body.contains("access file"), "{response:?}");
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));
}

#[test]
fn a_tenant_listener_takes_its_tenants_tokens_and_rights_follow_the_repository() {
    let world = world_with_tracker(
        "acc-tenant",
        TrackSetup {
            api_any: true,
            tenant_control: Some("Pause,Resume"),
            ..TrackSetup::default()
        },
    );
    let ns = &world.vm_host(TRACK_VM_A1).ns;
    let base = format!("http://{}:{TRACK_API_PORT}", track_leg_addr(2));
    let as_ = |name: &str, path: &str, body: Option<&str>| {
        let mut args = vec!["-H".to_string(), world.access.header(name)];
        if let Some(body) = body {
            args.extend([
                "-X".into(),
                "POST".into(),
                "--data-binary".into(),
                body.into(),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        curl(ns, &format!("{base}{path}"), &refs)
    };
    assert_eq!(as_("acme", "/api/tree", None).status, 200);
    assert_eq!(as_("admin", "/api/tree", None).status, 403);
    assert_eq!(as_("beta", "/api/tree", None).status, 403);

    let own = format!("/api/vms/{TRACK_VM_A1}/actions");
    let theirs = format!("/api/vms/{TRACK_VM_B1}/actions");
    assert_eq!(as_("acme", &theirs, Some(&echo())).status, 404);
    assert_eq!(as_("acme", &theirs, Some(&lifecycle("Pause"))).status, 404);
    assert_eq!(as_("acme", &own, Some(&lifecycle("Destroy"))).status, 403);
    let paused = as_("acme", &own, Some(&lifecycle("Pause")));
    assert_eq!(paused.status, 200, "{paused:?}\n{}", world.report());
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("paused"));

    // acme-1 migrates to hypervisor B: the repository places it there; acme keeps exactly its
    // rights, now on B; beta still cannot see it.
    let mark = world.last_seq();
    world.sims[1].write_domain(&Domain::new(TRACK_VM_A1, "acme-1", "paused"));
    world.sims[0].remove_domain("acme-1");
    assert!(
        world
            .wait_event(mark, SETTLE, "vm-migrated", TRACK_VM_A1)
            .is_some(),
        "no vm-migrated\n{}",
        world.report()
    );
    let resumed = poll_until(SETTLE, || {
        let response = as_("acme", &own, Some(&lifecycle("Resume")));
        (response.status == 200).then_some(response)
    });
    assert!(
        resumed.is_some(),
        "Resume after the migration\n{}",
        world.report()
    );
    assert_eq!(sim_state(&world, 1, "acme-1").as_deref(), Some("running"));
    assert_eq!(as_("acme", &own, Some(&lifecycle("Destroy"))).status, 403);
    let beta_ns = &world.vm_host(TRACK_VM_B1).ns;
    let beta_base = format!("http://{}:{TRACK_API_PORT}", track_leg_addr(3));
    let beta = curl(
        beta_ns,
        &format!("{beta_base}{own}"),
        &[
            "-H",
            &world.access.header("beta"),
            "-X",
            "POST",
            "--data-binary",
            &lifecycle("Pause"),
        ],
    );
    assert_eq!(beta.status, 404, "{beta:?}");
}

#[test]
fn the_access_file_is_reloaded_and_a_bad_one_refused_with_its_line() {
    let world = world_with_tracker("acc-reload", TrackSetup::default());
    // A new identity, added while the tracker runs, works without a restart.
    let output = std::process::Command::new(xenplug_bin())
        .args(["access", "new", "carol", "viewer", "--file"])
        .arg(&world.access.path)
        .output()
        .expect("xenplug access new");
    assert!(output.status.success(), "{output:?}");
    let carol = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let tree = format!("{}/api/tree", world.api());
    let header = format!("Authorization: Bearer {carol}");
    let answered = poll_until(WAIT, || {
        (curl(&world.tracker_ns, &tree, &["-H", &header]).status == 200).then_some(())
    });
    assert!(answered.is_some(), "carol's token\n{}", world.report());
    let list = std::process::Command::new(xenplug_bin())
        .args(["access", "list", "--file"])
        .arg(&world.access.path)
        .output()
        .expect("xenplug access list");
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(listed.lines().any(|l| l == "carol viewer"), "{listed}");
    assert!(!listed.contains(&carol), "never a token: {listed}");

    // A malformed version is refused with its line number; the previous identities stay.
    let text = std::fs::read_to_string(&world.access.path).expect("access file");
    let lines = text.lines().count();
    std::fs::write(&world.access.path, format!("{text}bad line here\n")).expect("write");
    // The file is looked at when the API is used (at most once a second), never on a timer.
    let logged = poll_until(WAIT, || {
        assert_eq!(world.api_get("/api/tree").status, 200);
        world
            .tracker()
            .log()
            .contains(&format!("line {}", lines + 1))
            .then_some(())
    });
    assert!(logged.is_some(), "{}", world.report());
    assert_eq!(world.api_get("/api/tree").status, 200);
    assert_eq!(curl(&world.tracker_ns, &tree, &["-H", &header]).status, 200);

    // At start, the same file is refused: exit 1, naming the file and the line.
    let output = world.tracker_ns.run(
        xenplug_bin().to_str().expect("UTF-8 path"),
        &[
            "track",
            "--net",
            "mgmt=eth0:provider",
            "--repo",
            "/nonexistent-unused",
            "--access",
            world.access.path.to_str().expect("UTF-8 path"),
        ],
        WAIT,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("line {}", lines + 1))
            && stderr.contains(world.access.path.to_str().expect("UTF-8 path")),
        "{stderr}"
    );
}

#[test]
fn devices_with_a_key_take_only_fresh_valid_signatures() {
    let world = world_with_tracker(
        "acc-sign",
        TrackSetup {
            signed: true,
            ..TrackSetup::default()
        },
    );
    let key = world.control_key.clone().expect("signed setup");
    // The tracker signs what it relays: the Pause goes through on behalf of the caller.
    let paused = world.api_post_form_as(
        "ops",
        &format!("/api/vms/{TRACK_VM_A1}/actions"),
        &lifecycle("Pause"),
    );
    assert_eq!(paused.status, 200, "{paused:?}\n{}", world.report());
    assert!(paused.body.contains("\"outputs\""), "{paused:?}");
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("paused"));
    assert!(
        world.hypervisors[0]
            .log()
            .contains(&format!("(ops): Pause on domain/{TRACK_VM_A1}: done")),
        "the hypervisor logs the identity\n{}",
        world.hypervisors[0].report()
    );

    // From the tracker's own address, but unsigned or badly signed: 606 each time.
    let domain_url = world.hypervisors[0].url.replace(
        "/description.xml",
        &format!("/control/domain/{TRACK_VM_A1}"),
    );
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/signed_call.py");
    let call = |extra: &[&str]| -> Vec<String> {
        let mut args = vec![
            script.to_str().expect("UTF-8 path"),
            "--url",
            &domain_url,
            "--service",
            SERVICE_DOMAIN_CONTROL,
            "--action",
            "Resume",
            "--key-file",
            key.to_str().expect("UTF-8 path"),
        ];
        args.extend_from_slice(extra);
        let output = world.tracker_ns.run("/usr/bin/python3", &args, WAIT);
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    };
    assert_eq!(call(&["--unsigned"]), ["STATUS 500 606"]);
    assert_eq!(call(&["--age", "120"]), ["STATUS 500 606"]);
    assert_eq!(call(&["--tamper"]), ["STATUS 500 606"]);
    let other = world.access.new_key("other.key");
    let wrong = {
        let mut args = vec![
            script.to_str().expect("UTF-8 path").to_string(),
            "--url".into(),
            domain_url.clone(),
            "--service".into(),
            SERVICE_DOMAIN_CONTROL.into(),
            "--action".into(),
            "Resume".into(),
            "--key-file".into(),
            other.display().to_string(),
        ];
        args.push("--identity".into());
        args.push("mallory".into());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        world.tracker_ns.run("/usr/bin/python3", &refs, WAIT)
    };
    assert_eq!(
        String::from_utf8_lossy(&wrong.stdout).trim(),
        "STATUS 500 606"
    );
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("paused"));
    // A valid one works once; the same request again is a replay.
    assert_eq!(
        call(&["--times", "2", "--identity", "third-party"]),
        ["STATUS 200 -", "STATUS 500 606"]
    );
    assert_eq!(sim_state(&world, 0, "acme-1").as_deref(), Some("running"));
    // Reads stay open without a signature.
    let state = soap_call(
        &world.tracker_ns,
        &domain_url,
        SERVICE_DOMAIN_CONTROL,
        "GetState",
        &[],
    );
    assert_eq!(state.status, 200, "{state:?}");
    let log = world.hypervisors[0].log();
    for reason in ["no signature", "too far", "does not match", "replay"] {
        assert!(
            log.contains(reason),
            "the hypervisor logs {reason:?}\n{log}"
        );
    }
}

#[test]
fn a_vm_with_a_key_demands_a_signature_for_every_owner_action() {
    let ns = Netns::new("acc-vm");
    let dir = TempDir::new("acc-vm-keys");
    let access = Access::new(dir.path(), &[("admin", "admin")]);
    let key = access.new_key("vm.key");
    let services = ServicesDir::new("acc-vm");
    services.add_service("Echo", &track_echo_service());
    let options = VmOptions {
        control_key: Some(key.clone()),
        ..VmOptions::new("lo", &services.path())
    };
    let vm = Xenplug::start_vm(&ns, &options);
    let control = format!("{}/control/{}", vm.base(), first_service_key(&ns, &vm));
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/signed_call.py");
    let echo_type = vm_service_type("Echo");
    let run = |extra: &[&str]| -> String {
        let mut args = vec![
            script.to_str().expect("UTF-8 path"),
            "--url",
            &control,
            "--service",
            &echo_type,
            "--action",
            "Echo",
            "--arg",
            "Text=hi",
            "--key-file",
            key.to_str().expect("UTF-8 path"),
        ];
        args.extend_from_slice(extra);
        let output = ns.run("/usr/bin/python3", &args, WAIT);
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    };
    assert_eq!(run(&["--unsigned"]), "STATUS 500 606", "{}", vm.report());
    assert_eq!(
        run(&["--identity", "provider-ops"]),
        "STATUS 200 -",
        "{}",
        vm.report()
    );
    assert!(vm.log().contains("(provider-ops): Echo"), "{}", vm.report());
}

/// The service key of the first owner service in the VM's description (`/control/<key>`).
fn first_service_key(ns: &Netns, vm: &Xenplug) -> String {
    let description = http_get(ns, &vm.url);
    let url = xml_text(&description.body, "controlURL")
        .expect("a controlURL")
        .to_string();
    url.trim_start_matches("/control/").to_string()
}

#[test]
fn third_party_peers_discover_read_and_subscribe_to_a_hypervisor_with_a_key() {
    let ns = Netns::new("acc-peers");
    let dir = TempDir::new("acc-peers-keys");
    let access = Access::new(dir.path(), &[("admin", "admin")]);
    let key = access.new_key("hv.key");
    let sim = SimDir::standard("acc-peers");
    let options = Options {
        control_key: Some(key),
        ..Options::ifaces(&["lo"])
    };
    let xenplug = Xenplug::start_with(&ns, &sim, &options);
    let udn = format!("uuid:{HOST_UUID}");

    // Discover and describe: GUPnP finds the device and reads an action's answer.
    let ids = call_ok(
        gupnp(
            &ns,
            "lo",
            &[
                "--udn",
                &udn,
                "call",
                "--action",
                "GetVirtualMachineIds",
                "--out",
                "VirtualMachineIds",
            ],
        ),
        "GUPnP GetVirtualMachineIds",
        &xenplug,
    );
    assert!(ids.values().any(|v| v.contains(VM_WEB)), "{ids:?}");
    let info = call_ok(
        aupnp(&ns, &["call", &xenplug.url, "--action", "GetHostInfo"]),
        "async-upnp-client GetHostInfo",
        &xenplug,
    );
    assert!(info.values().any(|v| v == HOST_NAME), "{info:?}");

    // Subscribe: both get the initial event.
    let g_events = gupnp_spawn(
        &ns,
        "lo",
        &[
            "--timeout",
            "20",
            "--udn",
            &udn,
            "events",
            "--vm",
            VM_WEB,
            "--var",
            "State",
            "--count",
            "1",
        ],
    );
    let a_events = aupnp_spawn(
        &ns,
        &[
            "--timeout",
            "20",
            "events",
            &xenplug.url,
            "--bind",
            "127.0.0.1",
            "--vm",
            VM_WEB,
            "--count",
            "1",
        ],
    );
    expect_gupnp_initial_event(&g_events, "State", "running", &xenplug);
    expect_event(&a_events, 0, "State", "running", &xenplug);

    // A mutating action without the key: 606, and nothing done.
    let refused = call_err(
        aupnp(
            &ns,
            &["call", &xenplug.url, "--vm", VM_WEB, "--action", "Pause"],
        ),
        "async-upnp-client Pause without the key",
        &xenplug,
    );
    assert_eq!(field(&refused, "code"), "606", "{refused:?}");
    sim.expect_state("web", "running", Duration::from_secs(1));
}
