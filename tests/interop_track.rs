//! The tracker (`xenplug track`) against the real advertisers, each test in a topology of its
//! own (tests/common: `TrackWorld`): a provider LAN with two simulated hypervisors, two tenant
//! LANs (acme, beta) with VM advertisers, and a tracker namespace with a leg in each. Every
//! process runs inside namespaces the test creates, with explicit interfaces; every wait is
//! bounded.
//!
//! Timings are printed on stderr (`timing: ...`); run with
//! `cargo test --test interop_track -- --nocapture` to see them. A failing test prints the
//! tracker's log tail, the journal tail and the path of every log, and keeps them.

mod common;

use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Contract: the whole topology is in the repository and the API within 5 s of start.
const START_BUDGET: Duration = Duration::from_secs(5);
/// Contract: a migration is journalled within 2 s of the sim file moving.
const MIGRATE_BUDGET: Duration = Duration::from_secs(2);
/// Contract: a byebye is noticed within 1 s; 250 ms for the harness (signal delivery, file
/// polling every 20 ms, reading the journal) on a loaded 2-core machine.
const BYEBYE_BUDGET: Duration = Duration::from_millis(1250);
/// An advertiser killed with SIGKILL is forgotten at most max-age after its last alive, plus
/// the tracker's 1 s tick, plus 1 s of slack.
const EXPIRY_BUDGET: Duration = Duration::from_secs(TRACK_MAX_AGE as u64 + 2);
/// A Domain renamed in its sim file shows its new name in /api/tree within 2 s: the sim poll
/// (200 ms), the alive round with the new CONFIGID, one description fetch. The hypervisors
/// of that test advertise with max-age 1800, so the periodic refresh (450 s at the soonest)
/// cannot be what carries it.
const RENAME_BUDGET: Duration = Duration::from_secs(2);
/// The tracker's start-up searches (MX 2, sent twice 100-200 ms apart) are answered within
/// 2.2 s of its start; 3 s with slack.
const SEARCHES_ANSWERED: Duration = Duration::from_secs(3);
/// Bound for a topology to settle in tests that do not measure start-up.
const SETTLE: Duration = Duration::from_secs(15);

/// Event kinds a tracker that restarts on a repository must not repeat for what it knew.
const REPEAT_KINDS: &[&str] = &[
    "hypervisor-added",
    "hypervisor-removed",
    "vm-added",
    "vm-removed",
    "vm-devirtualized",
];

fn world_with_tracker(tag: &str, setup: TrackSetup) -> TrackWorld {
    let mut world = TrackWorld::new(tag, setup);
    world.start_tracker();
    let took = world.wait_settled(SETTLE, tag);
    eprintln!(
        "timing: {tag}: topology known {:?} after the tracker started ({took:?} after its API was up)",
        world.tracker().started.elapsed()
    );
    world
}

/// Events after `mark` about `subject`.
fn events_about(world: &TrackWorld, mark: u64, subject: &str) -> Vec<JournalEntry> {
    world
        .journal()
        .into_iter()
        .filter(|e| e.seq > mark && e.subject.contains(subject))
        .collect()
}

fn lines(events: &[JournalEntry]) -> String {
    events
        .iter()
        .map(|e| e.line.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether VM `uuid` has no self-advertised services any more: its record is gone or has no
/// `service.` key, and the API agrees.
fn vm_services_gone(world: &TrackWorld, uuid: &str) -> bool {
    let record_clear = world
        .records("virtual")
        .get(uuid)
        .is_none_or(|r| !r.keys().any(|k| k.starts_with("service.")));
    if !record_clear {
        return false;
    }
    let response = world.api_get(&format!("/api/vms/{uuid}"));
    match response.status {
        404 => true,
        200 => Json::parse(&response.body).is_ok_and(|v| v.list("services").is_empty()),
        _ => false,
    }
}

/// A kind of event that says something happened to a VM's presence or services.
fn vm_presence_kind(kind: &str) -> bool {
    matches!(
        kind,
        "vm-removed" | "vm-services-changed" | "vm-state-changed"
    )
}

// ---- 1. everything is found ------------------------------------------------------------------

#[test]
fn track_finds_both_hypervisors_and_every_vm_within_5s() {
    let mut world = TrackWorld::new("trk-all", TrackSetup::default());
    world.start_tracker();
    let api_up = world.tracker().started.elapsed();

    // Start-up lines of the contract.
    let log = world.tracker().log();
    for line in [
        "network mgmt on eth0 (10.99.1.2), provider",
        "network acme on eth1 (10.99.2.2), tenant",
        "network beta on eth2 (10.99.3.2), tenant",
        &format!("read API at http://127.0.0.1:{TRACK_API_PORT}/api/tree"),
    ] {
        assert!(
            log.contains(line),
            "start-up log lacks {line:?}\n{}",
            world.report()
        );
    }

    let left = START_BUDGET.saturating_sub(world.tracker().started.elapsed());
    world.wait_settled(left, "within 5 s of start");
    eprintln!(
        "timing: API up {api_up:?}, whole topology in files and /api/tree {:?} after start \
         (budget {START_BUDGET:?})",
        world.tracker().started.elapsed()
    );

    // The run state comes from the hypervisors (DomainControl State, evented).
    let known = poll_until(WAIT, || {
        let virtuals = world.records("virtual");
        TRACK_VMS
            .iter()
            .filter(|v| v.host.is_some())
            .all(|v| {
                virtuals
                    .get(v.uuid)
                    .and_then(|r| r.get("run_state"))
                    .map(String::as_str)
                    == Some("running")
            })
            .then_some(())
    });
    assert!(
        known.is_some(),
        "run_state of the listed VMs never became running within {WAIT:?}: {:?}\n{}",
        world.records("virtual"),
        world.report()
    );
    eprintln!(
        "timing: run states known {:?} after start",
        world.tracker().started.elapsed()
    );

    // hardware/: exactly the two hosts, with what their descriptions say.
    let hardware = world.records("hardware");
    assert_eq!(
        hardware.keys().cloned().collect::<BTreeSet<_>>(),
        set_of(&TRACK_HOSTS),
        "hardware/ holds exactly the two hypervisors\n{}",
        world.report()
    );
    for (h, host) in TRACK_HOSTS.iter().enumerate() {
        let record = &hardware[*host];
        let addr = world.mgmt.host(h).addr.to_string();
        assert_eq!(
            record.get("host_uuid").map(String::as_str),
            Some(*host),
            "{record:?}"
        );
        // The name is the description's friendlyName, which holds the host name.
        assert!(
            record
                .get("name")
                .is_some_and(|n| n.contains(TRACK_HOST_NAMES[h])),
            "hardware/{host} name should hold {}: {record:?}",
            TRACK_HOST_NAMES[h]
        );
        assert_eq!(
            record.get("network").map(String::as_str),
            Some("mgmt"),
            "{record:?}"
        );
        assert!(
            record
                .iter()
                .any(|(k, v)| k.starts_with("address.") && *v == addr),
            "hardware/{host} should list {addr}: {record:?}"
        );
    }

    // virtual/: exactly the five VMs, each filed under its tenant, placed where listed.
    let virtuals = world.records("virtual");
    let all_vms: BTreeSet<String> = TRACK_VMS.iter().map(|v| v.uuid.to_string()).collect();
    assert_eq!(
        virtuals.keys().cloned().collect::<BTreeSet<_>>(),
        all_vms,
        "virtual/ holds exactly the five VMs (no record per Domain UDN)\n{}",
        world.report()
    );
    for vm in TRACK_VMS {
        let record = &virtuals[vm.uuid];
        assert_eq!(
            record.get("vm_uuid").map(String::as_str),
            Some(vm.uuid),
            "{record:?}"
        );
        assert_eq!(
            record.get("tenant").map(String::as_str),
            Some(vm.tenant),
            "{record:?}"
        );
        let actions: BTreeSet<&str> = record
            .iter()
            .filter(|(k, _)| k.starts_with("service.") && k.ends_with(".name"))
            .map(|(_, v)| v.as_str())
            .collect();
        assert!(
            actions.contains("Echo"),
            "virtual/{} lists the Echo action: {record:?}",
            vm.uuid
        );
    }

    // tenants/: each VM under its own tenant and nowhere else; no provider-private key.
    let tenants = world.tenant_records();
    let want: BTreeSet<(String, String)> = TRACK_VMS
        .iter()
        .map(|v| (v.tenant.to_string(), v.uuid.to_string()))
        .collect();
    assert_eq!(
        tenants.keys().cloned().collect::<BTreeSet<_>>(),
        want,
        "tenants/<tenant>/<vm> exactly for each VM's own tenant\n{}",
        world.report()
    );
    let tenant_dirs: BTreeSet<String> = fs::read_dir(world.repo.path().join("tenants"))
        .expect("tenants/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        tenant_dirs,
        set_of(&["acme", "beta"]),
        "no tenant folder for mgmt"
    );
    for ((tenant, vm), record) in &tenants {
        assert!(
            !record.contains_key("hypervisor"),
            "tenants/{tenant}/{vm} must not reveal the placement: {record:?}"
        );
        for host in TRACK_HOSTS {
            assert!(
                !record.values().any(|v| v.contains(host)),
                "tenants/{tenant}/{vm} names host {host}: {record:?}"
            );
        }
    }

    // /api/tree: the same picture.
    let tree = world.tree();
    let hosts: Vec<&Json> = tree.list("hypervisors").iter().collect();
    assert_eq!(hosts.len(), 2, "two hypervisors in /api/tree: {tree:?}");
    for (h, host) in TRACK_HOSTS.iter().enumerate() {
        let node = hosts
            .iter()
            .find(|n| n.s("uuid") == *host)
            .unwrap_or_else(|| panic!("no {host} in {tree:?}"));
        assert!(node.s("name").contains(TRACK_HOST_NAMES[h]), "{node:?}");
        assert_eq!(node.s("network"), "mgmt");
        let addr = world.mgmt.host(h).addr.to_string();
        assert!(
            node.list("addresses")
                .iter()
                .any(|a| a.str() == Some(&addr)),
            "{host} addresses: {node:?}"
        );
        let vms: BTreeSet<String> = node
            .list("vms")
            .iter()
            .map(|v| v.s("uuid").to_string())
            .collect();
        let want: BTreeSet<String> = TRACK_VMS
            .iter()
            .filter(|v| v.host == Some(h))
            .map(|v| v.uuid.to_string())
            .collect();
        assert_eq!(vms, want, "VMs under {host}\n{tree:?}");
    }
    for vm in TRACK_VMS {
        let (_, node) = tree_vm(&tree, vm.uuid).expect("settled");
        assert_eq!(node.s("tenant"), vm.tenant);
        assert_eq!(node.s("name"), vm.name, "VM name: {node:?}");
        let services = node.list("services");
        assert_eq!(
            services.len(),
            1,
            "one service (Echo) for {}: {node:?}",
            vm.uuid
        );
        assert_eq!(services[0].s("type"), vm_service_type("Echo"));
        let actions: Vec<&str> = services[0]
            .list("actions")
            .iter()
            .map(|a| a.s("name"))
            .collect();
        assert_eq!(actions, vec!["Echo"], "{node:?}");
        if let Some(h) = vm.host {
            assert_eq!(node.s("hypervisor"), TRACK_HOSTS[h], "{node:?}");
        }
    }
    let unknown = world.api_get("/api/vms/00000000-0000-4000-8000-000000000000");
    assert_eq!(unknown.status, 404, "an unknown VM: {unknown:?}");
    for vm in TRACK_VMS {
        let one = world.api_json(&format!("/api/vms/{}", vm.uuid));
        assert_eq!(one.s("uuid"), vm.uuid);
        assert_eq!(one.s("tenant"), vm.tenant);
    }

    // The journal: each host and each VM added once; nothing refused, nothing lost.
    let journal = world.journal();
    for host in TRACK_HOSTS {
        let added: Vec<_> = journal
            .iter()
            .filter(|e| e.kind == "hypervisor-added" && e.subject.contains(host))
            .collect();
        assert_eq!(
            added.len(),
            1,
            "one hypervisor-added for {host}\n{}",
            lines(&journal)
        );
        assert_eq!(
            added[0].network.as_deref(),
            Some("mgmt"),
            "{}",
            added[0].line
        );
    }
    for vm in TRACK_VMS {
        let added = journal
            .iter()
            .filter(|e| e.kind == "vm-added" && e.subject.contains(vm.uuid))
            .count();
        assert_eq!(
            added,
            1,
            "one vm-added for {}\n{}",
            vm.uuid,
            lines(&journal)
        );
    }
    let wrong: Vec<_> = journal
        .iter()
        .filter(|e| {
            e.kind == "spoof-refused"
                || e.kind.ends_with("-removed")
                || (e.kind == "vm-devirtualized" && !e.subject.contains(TRACK_VM_LOST))
        })
        .cloned()
        .collect();
    assert!(
        wrong.is_empty(),
        "unexpected events at start:\n{}\n{}",
        lines(&wrong),
        world.report()
    );

    // /api/events?since=0 is the journal.
    let events = world.api_json("/api/events?since=0");
    let api_seqs: Vec<u64> = events
        .list("events")
        .iter()
        .filter_map(|e| e.get("seq").and_then(Json::u64))
        .collect();
    let journal = world.journal();
    let file_seqs: Vec<u64> = journal.iter().map(|e| e.seq).collect();
    assert!(
        file_seqs.starts_with(&api_seqs) && api_seqs.len() + 2 >= file_seqs.len(),
        "/api/events?since=0 {api_seqs:?} vs events.log {file_seqs:?}"
    );
    for (api, file) in events.list("events").iter().zip(&journal) {
        assert_eq!(api.s("kind"), file.kind);
        assert_eq!(api.s("subject"), file.subject);
    }
    assert!(events.get("last_seq").and_then(Json::u64) >= api_seqs.last().copied());
}

/// Devices that keep advertising (every max-age/4 to max-age/2, UDA 1.1 section 1.2.2) stay
/// known for as long as they do: run the tracker for three max-ages and nothing may expire.
#[test]
fn track_keeps_everything_that_keeps_advertising() {
    let world = world_with_tracker("trk-live", TrackSetup::default());
    let mark = world.last_seq();
    let span = Duration::from_secs(3 * u64::from(TRACK_MAX_AGE));
    let t0 = Instant::now();
    while t0.elapsed() < span {
        sleep(Duration::from_millis(500));
        let dropped: Vec<JournalEntry> = world
            .journal()
            .into_iter()
            .filter(|e| e.seq > mark && e.kind.ends_with("-removed"))
            .collect();
        assert!(
            dropped.is_empty(),
            "{:?} after the topology was known, devices that keep advertising were dropped \
             (max-age {TRACK_MAX_AGE} s):\n{}\n{}",
            t0.elapsed(),
            lines(&dropped),
            world.report()
        );
    }
    let problems = world.settle_problems();
    assert!(
        problems.is_empty(),
        "after {span:?} the topology is no longer fully known:\n  {}\n{}",
        problems.join("\n  "),
        world.report()
    );
    let log = world.tracker().log();
    let expired: Vec<&str> = log.lines().filter(|l| l.contains("Expired")).collect();
    assert!(
        expired.is_empty(),
        "the tracker let advertised devices expire:\n{}\n{}",
        expired.join("\n"),
        world.report()
    );
}

// ---- 2. migration ------------------------------------------------------------------------------

#[test]
fn track_migration_is_journalled_within_2s_and_moves_the_vm_in_the_tree() {
    let world = world_with_tracker("trk-mig", TrackSetup::default());
    let vm = track_vm(TRACK_VM_A1);
    let mark = world.last_seq();

    let t0 = Instant::now();
    world.sims[1].write_domain(&Domain::new(vm.uuid, vm.name, "running"));
    world.sims[0].remove_domain(vm.name);
    let event = world.wait_event(mark, WAIT, "vm-migrated", vm.uuid);
    let took = t0.elapsed();
    let Some((event, _)) = event else {
        panic!(
            "no vm-migrated for {} within {WAIT:?} of moving its sim file from A to B\n\
             events since: \n{}\n{}",
            vm.uuid,
            lines(&events_about(&world, mark, vm.uuid)),
            world.report()
        );
    };
    eprintln!(
        "timing: vm-migrated journalled {took:?} after the sim file moved: {}",
        event.line
    );
    assert!(
        took <= MIGRATE_BUDGET,
        "vm-migrated {took:?} after the move (contract: {MIGRATE_BUDGET:?})\n{}",
        world.report()
    );
    if !event.details.values().any(|v| v.contains(TRACK_HOST_B)) {
        eprintln!(
            "note: the vm-migrated event does not name host B: {}",
            event.line
        );
    }

    // The same event through the API.
    let feed = world.api_json(&format!("/api/events?since={mark}"));
    assert!(
        feed.list("events")
            .iter()
            .any(|e| e.s("kind") == "vm-migrated" && e.s("subject").contains(vm.uuid)),
        "/api/events?since={mark} lacks the vm-migrated event: {feed:?}"
    );

    // The tree shows it under B, and so does the record.
    let moved = poll_until(MIGRATE_BUDGET, || {
        let tree = world.tree();
        (tree_vm(&tree, vm.uuid)
            .and_then(|(host, _)| host)
            .as_deref()
            == Some(TRACK_HOST_B))
        .then_some(())
    });
    assert!(
        moved.is_some(),
        "/api/tree does not show {} under B: {:?}\n{}",
        vm.uuid,
        world.tree(),
        world.report()
    );
    let record = world.records("virtual").remove(vm.uuid).expect("record");
    assert_eq!(
        record.get("hypervisor").map(String::as_str),
        Some(TRACK_HOST_B)
    );
    assert_eq!(
        record.get("tenant").map(String::as_str),
        Some("acme"),
        "tenant unchanged"
    );

    // Past the grace period: a move is not a loss.
    sleep(Duration::from_secs(TRACK_GRACE + 1));
    let after: Vec<JournalEntry> = events_about(&world, mark, vm.uuid)
        .into_iter()
        .filter(|e| {
            matches!(
                e.kind.as_str(),
                "vm-removed" | "vm-devirtualized" | "vm-added"
            )
        })
        .collect();
    assert!(
        after.is_empty(),
        "a migrated VM must not be reported removed, de-virtualized or re-added:\n{}\n{}",
        lines(&after),
        world.report()
    );
    let migrated = events_about(&world, mark, vm.uuid)
        .iter()
        .filter(|e| e.kind == "vm-migrated")
        .count();
    assert_eq!(migrated, 1, "one move, one vm-migrated\n{}", world.report());
}

// ---- 2b. rename ---------------------------------------------------------------------------------

#[test]
fn track_shows_a_renamed_domain_within_2s() {
    let setup = TrackSetup {
        hypervisor_max_age: Some(1800),
        ..TrackSetup::default()
    };
    let world = world_with_tracker("trk-ren", setup);
    // Answers to the tracker's start-up searches carry the CONFIGID current when they leave:
    // one sent after the rename would make the tracker refetch without the alive round this
    // test is about. Rename only once they are all out.
    let answered = world.tracker().started + SEARCHES_ANSWERED;
    sleep(answered.saturating_duration_since(Instant::now()));
    let vm = track_vm(TRACK_VM_A1);
    let name_in_tree =
        |world: &TrackWorld| tree_vm(&world.tree(), vm.uuid).map(|(_, v)| v.s("name").to_string());
    assert_eq!(
        name_in_tree(&world).as_deref(),
        Some(vm.name),
        "before the rename\n{}",
        world.report()
    );
    let renamed = format!("{}-renamed", vm.name);
    let mark = world.last_seq();

    let t0 = Instant::now();
    world.sims[0].write_domain_as(vm.name, &Domain::new(vm.uuid, &renamed, "running"));
    let shown = poll_until(WAIT, || {
        (name_in_tree(&world).as_deref() == Some(renamed.as_str())).then_some(())
    });
    let took = t0.elapsed();
    assert!(
        shown.is_some(),
        "/api/tree never showed {} as {renamed:?} within {WAIT:?}: {:?}\n{}",
        vm.uuid,
        name_in_tree(&world),
        world.report()
    );
    eprintln!("timing: renamed Domain shown in /api/tree {took:?} after the sim file changed");
    assert!(
        took <= RENAME_BUDGET,
        "rename shown {took:?} after the sim file changed (budget {RENAME_BUDGET:?})\n{}",
        world.report()
    );
    // The repository follows the tree (the record is rewritten after the API shows it).
    let record = poll_until(WAIT, || {
        world
            .records("virtual")
            .remove(vm.uuid)
            .filter(|r| r.get("name") == Some(&renamed))
    });
    let Some(record) = record else {
        panic!(
            "virtual/{} never named {renamed:?}: {:?}\n{}",
            vm.uuid,
            world.records("virtual").remove(vm.uuid),
            world.report()
        );
    };
    assert_eq!(
        record.get("hypervisor").map(String::as_str),
        Some(TRACK_HOST_A),
        "a rename is not a move"
    );
    let moves = events_about(&world, mark, vm.uuid)
        .into_iter()
        .filter(|e| matches!(e.kind.as_str(), "vm-migrated" | "vm-removed" | "vm-added"))
        .count();
    assert_eq!(
        moves,
        0,
        "a rename is neither a move nor a new VM\n{}",
        world.report()
    );
    // The journal follows the name: one vm-renamed, from the old name to the new one.
    let renamed_in_journal = |world: &TrackWorld| {
        events_about(world, mark, vm.uuid)
            .iter()
            .any(|e| e.kind == "vm-renamed")
            .then_some(())
    };
    let _ = poll_until(WAIT, || renamed_in_journal(&world));
    let renames: Vec<JournalEntry> = events_about(&world, mark, vm.uuid)
        .into_iter()
        .filter(|e| e.kind == "vm-renamed")
        .collect();
    let [renamed_event] = renames.as_slice() else {
        panic!(
            "one rename, one vm-renamed; got {}:\n{}\n{}",
            renames.len(),
            lines(&renames),
            world.report()
        );
    };
    assert_eq!(
        (
            renamed_event.details.get("from").map(String::as_str),
            renamed_event.details.get("to").map(String::as_str)
        ),
        (Some(vm.name), Some(renamed.as_str())),
        "vm-renamed from/to: {}\n{}",
        renamed_event.line,
        world.report()
    );
}

/// One GENA line of a hypervisor's debug log: `gena: PEER VERB SID to|from KEY ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GenaLine {
    verb: String,
    sid: String,
    key: String,
}

/// The subscribe / renew / unsubscribe lines from `peer` (an IPv4 address) in `log`.
fn gena_lines(log: &str, peer: &str) -> Vec<GenaLine> {
    log.lines()
        .filter_map(|line| {
            let rest = &line[line.find(" gena: ")? + " gena: ".len()..];
            let words: Vec<&str> = rest.split_whitespace().collect();
            let [from, verb, sid, _, key, ..] = words.as_slice() else {
                return None;
            };
            let ours = from.split(':').next() == Some(peer);
            let verb_known = matches!(*verb, "subscribed" | "renewed" | "unsubscribed");
            (ours && verb_known).then(|| GenaLine {
                verb: verb.to_string(),
                sid: sid.to_string(),
                key: key.to_string(),
            })
        })
        .collect()
}

/// Lines of a hypervisor's log that say a NOTIFY or a subscription request went wrong.
fn gena_trouble(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            line.contains("answered 412")
                || line.contains("could not be delivered")
                || line.contains("SUBSCRIBE to ") && line.contains("refused")
                || line.contains("UNSUBSCRIBE ")
        })
        .collect()
}

/// The SIDs the tracker holds at a hypervisor, per service key, from its log: subscribed and
/// not unsubscribed.
fn held_sids(log: &str) -> BTreeMap<String, BTreeSet<String>> {
    let tracker = track_leg_addr(1).to_string();
    let mut held: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in gena_lines(log, &tracker) {
        let sids = held.entry(line.key).or_default();
        match line.verb.as_str() {
            "subscribed" => {
                sids.insert(line.sid);
            }
            "unsubscribed" => {
                sids.remove(&line.sid);
            }
            _ => {}
        }
    }
    held.retain(|_, sids| !sids.is_empty());
    held
}

#[test]
fn track_keeps_one_subscription_per_service_across_refetches() {
    let setup = TrackSetup {
        hypervisor_max_age: Some(1800),
        ..TrackSetup::default()
    };
    let world = world_with_tracker("trk-sub", setup);
    let answered = world.tracker().started + SEARCHES_ANSWERED;
    sleep(answered.saturating_duration_since(Instant::now()));
    let hv = &world.hypervisors[0];
    let domain_key = |uuid: &str| format!("domain/{uuid}");
    let mut expected: BTreeSet<String> = TRACK_VMS
        .iter()
        .filter(|vm| vm.host == Some(0))
        .map(|vm| domain_key(vm.uuid))
        .collect();
    expected.insert("hypervisor".to_string());
    let one_each = |expected: &BTreeSet<String>| {
        let held = held_sids(&hv.log());
        (held.keys().cloned().collect::<BTreeSet<_>>() == *expected
            && held.values().all(|sids| sids.len() == 1))
        .then_some(held)
    };
    let Some(before) = poll_until(WAIT, || one_each(&expected)) else {
        panic!(
            "hypervisor A never held one subscription of the tracker for each of {expected:?}: \
             {:?}\n{}\n{}",
            held_sids(&hv.log()),
            hv.report(),
            world.report()
        );
    };
    let mark = hv.log().len();
    let tracker_mark = world.tracker().log().len();
    let described = |world: &TrackWorld| {
        world.tracker().log()[tracker_mark..]
            .lines()
            .filter(|line| line.contains(": described uuid:") && line.contains(TRACK_HOST_A))
            .count()
    };

    // 1. A Domain renamed: CONFIGID moves, the tracker fetches the description again.
    let vm = track_vm(TRACK_VM_A1);
    let renamed = format!("{}-renamed", vm.name);
    world.sims[0].write_domain_as(vm.name, &Domain::new(vm.uuid, &renamed, "running"));
    let refetched = poll_until(WAIT, || (described(&world) > 0).then_some(()));
    assert!(
        refetched.is_some(),
        "the tracker never fetched hypervisor A's description again after the rename\n{}",
        world.report()
    );
    // 2. Events after the refetch: the Domain pauses (a NOTIFY on its service and the
    // hypervisor's), seen by the tracker through its subscriptions.
    world.sims[0].write_domain_as(vm.name, &Domain::new(vm.uuid, &renamed, "paused"));
    let state = |world: &TrackWorld| {
        tree_vm(&world.tree(), vm.uuid).map(|(_, v)| v.s("run_state").to_string())
    };
    let paused = poll_until(WAIT, || {
        (state(&world).as_deref() == Some("paused")).then_some(())
    });
    assert!(
        paused.is_some(),
        "the tracker never saw {renamed} paused: {:?}\n{}\n{}",
        state(&world),
        hv.report(),
        world.report()
    );
    // 3. A Domain added: one new subscription, for it alone.
    let added = Domain::new("acac0009-9999-4a6b-8c9d-0000000000a9", "acme-9", "running");
    world.sims[0].write_domain(&added);
    let mut grown = expected.clone();
    grown.insert(domain_key(&added.uuid));
    let after = poll_until(WAIT, || one_each(&grown));
    // Let any NOTIFY still owed for an old SID go out (the sim poll is 200 ms, a delivery
    // one round trip).
    sleep(Duration::from_secs(1));
    let log = hv.log();
    let since = &log[mark..];
    let trouble = gena_trouble(since);
    eprintln!(
        "timing: {} refetches of hypervisor A; SUBSCRIBE lines from the tracker after them: {}",
        described(&world),
        gena_lines(since, &track_leg_addr(1).to_string())
            .iter()
            .filter(|l| l.verb == "subscribed")
            .count()
    );
    assert!(
        trouble.is_empty(),
        "NOTIFY or subscription trouble at hypervisor A after the refetch:\n{}\n{}",
        trouble.join("\n"),
        world.report()
    );
    let Some(after) = after else {
        panic!(
            "hypervisor A does not hold one subscription per service {grown:?}: {:?}\n{}\n{}",
            held_sids(&log),
            hv.report(),
            world.report()
        );
    };
    for (key, sids) in &before {
        assert_eq!(
            after.get(key),
            Some(sids),
            "{key} kept its SID across the refetches\n{}",
            world.report()
        );
    }
    let refused = world.tracker().log()[tracker_mark..]
        .lines()
        .filter(|line| line.contains("no such subscription"))
        .map(str::to_string)
        .collect::<Vec<_>>();
    assert!(
        refused.is_empty(),
        "the tracker refused NOTIFYs:\n{}\n{}",
        refused.join("\n"),
        world.report()
    );
}

// ---- 3. expiry and byebye ------------------------------------------------------------------------

#[test]
fn track_notices_an_expired_vm_after_max_age_and_a_byebye_within_1s() {
    let mut world = world_with_tracker("trk-exp", TrackSetup::default());

    // SIGKILL: no byebye; only max-age tells.
    let killed = TRACK_VM_B1;
    let mark = world.last_seq();
    let t0 = Instant::now();
    world.vm_proc(killed).xenplug.proc.kill();
    let noticed = poll_until(EXPIRY_BUDGET + WAIT, || {
        let events: Vec<_> = events_about(&world, mark, killed)
            .into_iter()
            .filter(|e| vm_presence_kind(&e.kind))
            .collect();
        (!events.is_empty() && vm_services_gone(&world, killed)).then_some(events)
    });
    let took = t0.elapsed();
    let Some(events) = noticed else {
        panic!(
            "the tracker never noticed that {killed} stopped advertising (SIGKILL, max-age \
             {TRACK_MAX_AGE} s): record {:?}\nevents:\n{}\n{}",
            world.records("virtual").get(killed),
            lines(&events_about(&world, mark, killed)),
            world.report()
        );
    };
    eprintln!(
        "timing: SIGKILLed VM advertiser noticed {took:?} later (max-age {TRACK_MAX_AGE} s): {}",
        lines(&events)
    );
    assert!(
        took <= EXPIRY_BUDGET,
        "expiry noticed {took:?} after SIGKILL (max-age {TRACK_MAX_AGE} s, budget \
         {EXPIRY_BUDGET:?})\n{}",
        world.report()
    );
    // Only the killed VM went quiet: nothing else may have been dropped meanwhile.
    let collateral: Vec<JournalEntry> = world
        .journal()
        .into_iter()
        .filter(|e| e.seq > mark && !e.subject.contains(killed))
        .filter(|e| !(e.kind == "vm-devirtualized" && e.subject.contains(TRACK_VM_LOST)))
        .collect();
    assert!(
        collateral.is_empty(),
        "while {killed} expired, devices that kept advertising were dropped too:\n{}\n{}",
        lines(&collateral),
        world.report()
    );
    // The hypervisor still lists it: it stays placed, it is not de-virtualized.
    let record = world.records("virtual").remove(killed);
    if let Some(record) = &record {
        assert_eq!(
            record.get("hypervisor").map(String::as_str),
            Some(TRACK_HOST_A),
            "placement kept after the guest went quiet: {record:?}"
        );
    }

    // SIGTERM: byebye.
    let stopped = TRACK_VM_A2;
    let mark = world.last_seq();
    let t0 = Instant::now();
    world.vm_proc(stopped).xenplug.proc.signal(libc::SIGTERM);
    let noticed = poll_until(WAIT, || {
        let events: Vec<_> = events_about(&world, mark, stopped)
            .into_iter()
            .filter(|e| vm_presence_kind(&e.kind))
            .collect();
        (!events.is_empty() && vm_services_gone(&world, stopped)).then_some(events)
    });
    let took = t0.elapsed();
    let Some(events) = noticed else {
        panic!(
            "the tracker never noticed the byebye of {stopped}: record {:?}\nevents:\n{}\n{}\n{}",
            world.records("virtual").get(stopped),
            lines(&events_about(&world, mark, stopped)),
            world.vm_proc(stopped).xenplug.report_with_path(),
            world.report()
        );
    };
    eprintln!(
        "timing: byebye noticed {took:?} after SIGTERM: {}",
        lines(&events)
    );
    assert!(
        took <= BYEBYE_BUDGET,
        "byebye noticed {took:?} after SIGTERM (contract: 1 s)\n{}",
        world.report()
    );
    let status = world.vm_proc(stopped).xenplug.proc.wait_exit(WAIT);
    assert!(
        status.is_some(),
        "the VM advertiser did not exit on SIGTERM"
    );

    // The others are untouched.
    let others: Vec<JournalEntry> = world
        .journal()
        .into_iter()
        .filter(|e| {
            // Only what happened during the test: at start-up a VM whose own advertisement
            // is described after its hypervisor's gets its services then.
            e.seq > mark
                && e.kind.starts_with("vm-")
                && [TRACK_VM_A1, TRACK_VM_B2]
                    .iter()
                    .any(|v| e.subject.contains(v))
                && e.kind != "vm-added"
        })
        .collect();
    assert!(
        others.is_empty(),
        "VMs that kept advertising got events:\n{}",
        lines(&others)
    );
}

// ---- 4. de-virtualized ---------------------------------------------------------------------------

#[test]
fn track_vm_no_hypervisor_lists_is_devirtualized_after_the_grace_period() {
    let mut world = TrackWorld::new("trk-dev", TrackSetup::default());
    world.start_tracker();
    let started = world.tracker().started;
    let lost = TRACK_VM_LOST;

    let added = world.wait_event(0, SETTLE, "vm-added", lost);
    let Some((added, _)) = added else {
        panic!("no vm-added for {lost}\n{}", world.report());
    };
    let seen_at = started.elapsed();
    let devirt = world.wait_event(
        0,
        Duration::from_secs(TRACK_GRACE) + SETTLE,
        "vm-devirtualized",
        lost,
    );
    let Some((devirt, _)) = devirt else {
        panic!(
            "no vm-devirtualized for {lost} (grace {TRACK_GRACE} s)\nevents:\n{}\n{}",
            lines(&events_about(&world, 0, lost)),
            world.report()
        );
    };
    let at = started.elapsed();
    eprintln!(
        "timing: {lost} added {seen_at:?} and de-virtualized {at:?} after start (grace \
         {TRACK_GRACE} s): {}",
        devirt.line
    );
    assert!(
        devirt.time + 1 >= added.time + TRACK_GRACE,
        "de-virtualized before the grace period ran out:\n{}\n{}",
        added.line,
        devirt.line
    );
    assert!(
        at >= Duration::from_secs(TRACK_GRACE),
        "de-virtualized {at:?} after start, before the {TRACK_GRACE} s grace"
    );
    assert!(
        at <= seen_at + Duration::from_secs(TRACK_GRACE + 3),
        "de-virtualized {at:?} after start, long after the grace ran out (seen at {seen_at:?})\n{}",
        world.report()
    );
    assert_eq!(
        devirt.network.as_deref().unwrap_or("acme"),
        "acme",
        "{}",
        devirt.line
    );

    let tree = world.tree();
    let placed = tree_vm(&tree, lost);
    assert!(
        matches!(placed, Some((None, _))),
        "{lost} should be under devirtualized: {tree:?}"
    );
    assert_eq!(placed.map(|(_, v)| v.s("tenant")), Some("acme"));
    let record = world
        .records("virtual")
        .remove(lost)
        .expect("virtual record kept");
    assert!(!record.contains_key("hypervisor"), "{record:?}");

    // The listed VMs are never de-virtualized.
    world.wait_settled(SETTLE, "listed VMs placed");
    sleep(Duration::from_secs(1));
    let wrong: Vec<JournalEntry> = world
        .journal()
        .into_iter()
        .filter(|e| e.kind == "vm-devirtualized" && !e.subject.contains(lost))
        .collect();
    assert!(
        wrong.is_empty(),
        "VMs a hypervisor lists were de-virtualized:\n{}\n{}",
        lines(&wrong),
        world.report()
    );
    let feed = world.api_json("/api/events?since=0");
    assert!(
        feed.list("events")
            .iter()
            .any(|e| e.s("kind") == "vm-devirtualized" && e.s("subject").contains(lost)),
        "/api/events lacks vm-devirtualized: {feed:?}"
    );
}

// ---- 5. spoof ------------------------------------------------------------------------------------

#[test]
fn track_refuses_a_hypervisor_advertised_in_a_tenant_network() {
    let world = world_with_tracker(
        "trk-spoof",
        TrackSetup {
            spare_acme_host: true,
            ..TrackSetup::default()
        },
    );
    let mark = world.last_seq();
    // The spoofer claims acme-1 runs on it.
    let sim = SimDir::new("spoof");
    sim.write_host(TRACK_HOST_SPOOF, "evil");
    sim.write_domain(&Domain::new(TRACK_VM_A1, "acme-1", "running"));
    let spare = world.spare_acme_host();
    let options = Options {
        max_age: Some(TRACK_MAX_AGE),
        ..Options::ifaces(&[&spare.iface])
    };
    let t0 = Instant::now();
    let spoofer = Xenplug::start_with(&spare.ns, &sim, &options);
    let refused = world.wait_event(mark, WAIT, "spoof-refused", TRACK_HOST_SPOOF);
    let Some((refused, took)) = refused else {
        panic!(
            "no spoof-refused for {TRACK_HOST_SPOOF} (advertised in acme)\nevents since:\n{}\n{}\n{}",
            lines(&world.journal().into_iter().filter(|e| e.seq > mark).collect::<Vec<_>>()),
            spoofer.report_with_path(),
            world.report()
        );
    };
    eprintln!(
        "timing: spoof-refused {:?} after the spoofer started ({took:?} after its description \
         was up): {}",
        t0.elapsed(),
        refused.line
    );
    assert_eq!(refused.network.as_deref(), Some("acme"), "{}", refused.line);

    // Let it announce again (max-age 4 s: at least one more round).
    sleep(Duration::from_secs(u64::from(TRACK_MAX_AGE)));
    assert!(
        !world
            .repo
            .path()
            .join("hardware")
            .join(TRACK_HOST_SPOOF)
            .exists(),
        "hardware record for the spoofed hypervisor\n{}",
        world.report()
    );
    assert_eq!(
        world.records("hardware").len(),
        2,
        "only A and B in hardware/"
    );
    let response = world.api_get("/api/tree");
    assert!(
        !response.body.contains(TRACK_HOST_SPOOF) && !response.body.contains("evil"),
        "the spoofed hypervisor shows in /api/tree: {}",
        response.body
    );
    let record = world
        .records("virtual")
        .remove(TRACK_VM_A1)
        .expect("record");
    assert_eq!(
        record.get("hypervisor").map(String::as_str),
        Some(TRACK_HOST_A),
        "a tenant's claim must not move acme-1: {record:?}"
    );
    let since: Vec<JournalEntry> = world
        .journal()
        .into_iter()
        .filter(|e| e.seq > mark)
        .collect();
    // The lost VM's de-virtualization may fall in this window; nothing else may.
    let wrong: Vec<JournalEntry> = since
        .iter()
        .filter(|e| e.kind != "spoof-refused")
        .filter(|e| !(e.kind == "vm-devirtualized" && e.subject.contains(TRACK_VM_LOST)))
        .cloned()
        .collect();
    assert!(
        wrong.is_empty(),
        "a refused claim changed something:\n{}\n{}",
        lines(&wrong),
        world.report()
    );
    eprintln!(
        "note: {} spoof-refused event(s) in {:?}",
        since.iter().filter(|e| e.kind == "spoof-refused").count(),
        t0.elapsed()
    );
}

// ---- 6. tenant slice -----------------------------------------------------------------------------

/// GET `url` from `ns` with `tenant`'s token (the test's access file names each tenant's
/// identity after it).
fn tenant_get(world: &TrackWorld, ns: &Netns, url: &str, tenant: &str) -> HttpResponse {
    curl(ns, url, &["-H", &world.access.header(tenant)])
}

/// The tenant tree as seen from `ns` with `tenant`'s token, checked to hold exactly `tenant`'s
/// VMs and nothing of the provider's.
fn check_tenant_tree(world: &TrackWorld, ns: &Netns, url: &str, tenant: &str) {
    let response = tenant_get(world, ns, url, tenant);
    assert_eq!(
        response.status, 200,
        "GET {url} from {tenant}: {response:?}"
    );
    let tree = Json::parse(&response.body)
        .unwrap_or_else(|e| panic!("GET {url}: not JSON ({e}): {}", response.body));
    assert!(
        tree.get("hypervisors").is_none() && tree.get("devirtualized").is_none(),
        "{tenant}'s tree must have no hypervisors: {}",
        response.body
    );
    let got: BTreeSet<String> = tree
        .list("vms")
        .iter()
        .map(|v| v.s("uuid").to_string())
        .collect();
    let want: BTreeSet<String> = TRACK_VMS
        .iter()
        .filter(|v| v.tenant == tenant)
        .map(|v| v.uuid.to_string())
        .collect();
    assert_eq!(
        got,
        want,
        "{tenant}'s VMs at {url}: {}\n{}",
        response.body,
        world.report()
    );
    for vm in tree.list("vms") {
        assert_eq!(vm.s("tenant"), tenant);
        assert!(
            vm.get("hypervisor").is_none(),
            "placement shown to {tenant}: {vm:?}"
        );
        assert_eq!(
            vm.list("services").len(),
            1,
            "services shown to the tenant: {vm:?}"
        );
    }
    for host in TRACK_HOSTS {
        assert!(
            !response.body.contains(host),
            "{tenant} sees host {host}: {}",
            response.body
        );
    }
    for other in TRACK_VMS.iter().filter(|v| v.tenant != tenant) {
        assert!(
            !response.body.contains(other.uuid),
            "{tenant} sees {}'s VM {}: {}",
            other.tenant,
            other.uuid,
            response.body
        );
    }
    assert!(
        tree.get("last_seq").and_then(Json::u64).is_some(),
        "{}",
        response.body
    );
}

#[test]
fn track_tenant_sees_only_its_own_slice() {
    let world = world_with_tracker(
        "trk-slice",
        TrackSetup {
            api_any: true,
            ..TrackSetup::default()
        },
    );
    let port = TRACK_API_PORT;
    for (tenant, subnet, vm) in [("acme", 2, TRACK_VM_A1), ("beta", 3, TRACK_VM_B1)] {
        let ns = &world.vm_host(vm).ns;
        let base = format!("http://{}:{port}", track_leg_addr(subnet));
        check_tenant_tree(&world, ns, &format!("{base}/api/tree"), tenant);

        // One VM: own yes (without placement), another tenant's no.
        let own = tenant_get(&world, ns, &format!("{base}/api/vms/{vm}"), tenant);
        assert_eq!(own.status, 200, "{tenant} GET its own VM: {own:?}");
        assert!(!own.body.contains("hypervisor"), "{}", own.body);
        for other in TRACK_VMS.iter().filter(|v| v.tenant != tenant) {
            let theirs = tenant_get(
                &world,
                ns,
                &format!("{base}/api/vms/{}", other.uuid),
                tenant,
            );
            assert_eq!(
                theirs.status, 404,
                "{tenant} GET {}'s VM: {theirs:?}",
                other.tenant
            );
        }

        // Events: only its own VMs, no hypervisor.
        let feed = tenant_get(&world, ns, &format!("{base}/api/events?since=0"), tenant);
        assert_eq!(feed.status, 200, "{feed:?}");
        let feed = Json::parse(&feed.body).expect("events JSON");
        let own_vms: BTreeSet<&str> = TRACK_VMS
            .iter()
            .filter(|v| v.tenant == tenant)
            .map(|v| v.uuid)
            .collect();
        assert!(
            !feed.list("events").is_empty(),
            "{tenant} sees its vm-added events"
        );
        for event in feed.list("events") {
            assert!(
                own_vms.iter().any(|v| event.s("subject").contains(v)),
                "{tenant} sees an event not about its VMs: {event:?}"
            );
            assert!(!event.s("kind").starts_with("hypervisor"), "{event:?}");
            assert_ne!(event.s("kind"), "vm-migrated", "placement leak: {event:?}");
        }
    }

    // The provider side still sees everything, through loopback and through its own leg.
    let tree = world.tree();
    assert_eq!(tree.list("hypervisors").len(), 2, "{tree:?}");
    let from_mgmt = curl(
        &world.mgmt.host(0).ns,
        &format!("http://{}:{port}/api/tree", track_leg_addr(1)),
        &["-H", &world.access.header("admin")],
    );
    assert_eq!(from_mgmt.status, 200, "{from_mgmt:?}");
    let from_mgmt = Json::parse(&from_mgmt.body).expect("JSON");
    assert_eq!(
        from_mgmt.list("hypervisors").len(),
        2,
        "provider view from mgmt: {from_mgmt:?}"
    );
}

/// A tenant that routes to the tracker's provider-side address through its own leg must still
/// get the tenant view: which view is served must follow the network the request came in on,
/// not the local address it was sent to (Linux answers for every local address on every
/// interface).
#[test]
fn track_tenant_addressing_the_provider_leg_still_gets_its_slice() {
    let world = world_with_tracker(
        "trk-slice2",
        TrackSetup {
            api_any: true,
            ..TrackSetup::default()
        },
    );
    let host = world.vm_host(TRACK_VM_A1);
    let mgmt_leg = track_leg_addr(1).to_string();
    // Inside the acme VM's own namespace: a host route to the tracker's mgmt address, out of
    // the VM's only interface.
    host.ns.ip(&[
        "route",
        "add",
        &format!("{mgmt_leg}/32"),
        "dev",
        &host.iface,
    ]);
    let url = format!("http://{mgmt_leg}:{TRACK_API_PORT}/api/tree");
    if !curl_reaches(&host.ns, &url) {
        eprintln!("note: the tracker's mgmt address is not reachable from acme: nothing to check");
        return;
    }
    // What acme can do through that address: call an action on beta's VM through the relay.
    let relay = curl(
        &host.ns,
        &format!("http://{mgmt_leg}:{TRACK_API_PORT}/api/vms/{TRACK_VM_B1}/actions"),
        &[
            "-X",
            "POST",
            "-H",
            &world.access.header("acme"),
            "--data-binary",
            &format!(
                "service={}&action=Echo&Text=from-acme",
                vm_service_type("Echo").replace(':', "%3A")
            ),
        ],
    );
    assert_ne!(
        relay.status,
        200,
        "acme invoked an action of beta's VM {TRACK_VM_B1} through the tracker's mgmt \
         address: {relay:?}\n{}",
        world.report()
    );
    check_tenant_tree(&world, &host.ns, &url, "acme");
}

// ---- 7. relay ------------------------------------------------------------------------------------

#[test]
fn track_relays_an_advertised_action_and_refuses_others() {
    let world = world_with_tracker("trk-relay", TrackSetup::default());
    let echo = vm_service_type("Echo");
    let service = echo.replace(':', "%3A");

    for vm in [TRACK_VM_A1, TRACK_VM_B2] {
        let t0 = Instant::now();
        let response = world.api_post_form(
            &format!("/api/vms/{vm}/actions"),
            &format!("service={service}&action=Echo&Text=hello%20tracker%26co%3D1"),
        );
        let took = t0.elapsed();
        assert_eq!(
            response.status,
            200,
            "relay Echo to {vm}: {response:?}\n{}",
            world.report()
        );
        let body = Json::parse(&response.body)
            .unwrap_or_else(|e| panic!("relay answer is not JSON ({e}): {}", response.body));
        let outputs = body
            .get("outputs")
            .unwrap_or_else(|| panic!("no outputs: {}\n{}", response.body, world.report()));
        assert_eq!(
            outputs.s("Reply"),
            "hello tracker&co=1",
            "{}",
            response.body
        );
        assert_eq!(outputs.s("Action"), "Echo", "{}", response.body);
        eprintln!("timing: relayed Echo to {vm} in {took:?}");
    }

    let cases = [
        (
            TRACK_VM_A1.to_string(),
            format!("service={service}&action=Nope&Text=x"),
            "an action the VM does not advertise",
        ),
        (
            TRACK_VM_A1.to_string(),
            "service=urn%3Axenplug-org%3Aservice%3ANope%3A1&action=Echo&Text=x".to_string(),
            "a service the VM does not advertise",
        ),
        (
            "00000000-0000-4000-8000-000000000000".to_string(),
            format!("service={service}&action=Echo&Text=x"),
            "an unknown VM",
        ),
    ];
    for (vm, body, what) in cases {
        let response = world.api_post_form(&format!("/api/vms/{vm}/actions"), &body);
        assert_eq!(
            response.status,
            404,
            "{what}: {response:?}\n{}",
            world.report()
        );
    }
    // The provider may relay DomainControl (issue 6; a tenant never may: see
    // tests/interop_console.rs), but only the actions DomainControl has.
    let response = world.api_post_form(
        &format!("/api/vms/{TRACK_VM_A1}/actions"),
        &format!(
            "service={}&action=DestroyEverything",
            SERVICE_DOMAIN_CONTROL.replace(':', "%3A")
        ),
    );
    assert_eq!(
        response.status, 404,
        "DomainControl through the relay: {response:?}"
    );
    assert_eq!(
        world.sims[0]
            .read_domain("acme-1")
            .get("state")
            .map(String::as_str),
        Some("running")
    );
}

// ---- 8. restart ----------------------------------------------------------------------------------

#[test]
fn track_restart_continues_the_journal_without_repeating_events() {
    let mut world = world_with_tracker("trk-restart", TrackSetup::default());
    // Let the start-up wave (de-virtualization of the lost VM included) pass.
    let _ = world.wait_event(
        0,
        Duration::from_secs(TRACK_GRACE) + WAIT,
        "vm-devirtualized",
        TRACK_VM_LOST,
    );
    sleep(Duration::from_secs(1));
    let before = world.journal();
    let last = before.last().map_or(0, |e| e.seq);
    let old_text = fs::read_to_string(world.journal_path()).expect("journal");

    let t0 = Instant::now();
    let status = world.tracker_mut().terminate(WAIT);
    assert!(
        status.is_some(),
        "tracker did not exit on SIGTERM\n{}",
        world.report()
    );
    eprintln!(
        "timing: tracker stopped {:?} after SIGTERM, status {status:?}",
        t0.elapsed()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status\n{}",
        world.report()
    );

    world.start_tracker();
    let took = world.wait_settled(SETTLE, "after restart");
    eprintln!("timing: after restart the topology is known again in {took:?}");
    // Give the restarted tracker time to see every advertisement again (search + max-age).
    sleep(Duration::from_secs(u64::from(TRACK_MAX_AGE)));

    // One real change, so there is a new event.
    let t0 = Instant::now();
    world.sims[0].write_domain(&Domain::new(TRACK_VM_A1, "acme-1", "paused"));
    let changed = world.wait_event(last, WAIT, "vm-state-changed", TRACK_VM_A1);
    let Some((changed, _)) = changed else {
        panic!("no vm-state-changed after restart\n{}", world.report());
    };
    eprintln!(
        "timing: state change journalled {:?} after the sim file changed",
        t0.elapsed()
    );

    let text = fs::read_to_string(world.journal_path()).expect("journal");
    assert!(
        text.starts_with(&old_text),
        "the journal before the restart was rewritten\n{}",
        world.report()
    );
    let after: Vec<JournalEntry> = world
        .journal()
        .into_iter()
        .filter(|e| e.seq > last)
        .collect();
    assert_eq!(
        after.first().map(|e| e.seq),
        Some(last + 1),
        "first event after the restart continues the sequence\n{}\n{}",
        lines(&after),
        world.report()
    );
    assert!(after.iter().any(|e| e.seq == changed.seq));
    let known: Vec<&str> = TRACK_HOSTS
        .iter()
        .copied()
        .chain(TRACK_VMS.iter().map(|v| v.uuid))
        .collect();
    let repeated: Vec<JournalEntry> = after
        .iter()
        .filter(|e| REPEAT_KINDS.contains(&e.kind.as_str()))
        .filter(|e| known.iter().any(|k| e.subject.contains(k)))
        .cloned()
        .collect();
    assert!(
        repeated.is_empty(),
        "events repeated after a restart for what the repository knew:\n{}\n{}",
        lines(&repeated),
        world.report()
    );
    let seqs: Vec<u64> = world.journal().iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, want, "seq 1, 2, 3, ... with no gap and no repeat");
    let api = world.api_json(&format!("/api/events?since={last}"));
    assert_eq!(
        api.list("events")
            .first()
            .and_then(|e| e.get("seq"))
            .and_then(Json::u64),
        Some(last + 1),
        "/api/events after the restart: {api:?}"
    );
}

// ---- 9. crash storm ------------------------------------------------------------------------------

/// A small xorshift generator: the seed is printed, `XENPLUG_TRACK_SEED` replays it.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("XENPLUG_TRACK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("crash storm seed: {seed} (XENPLUG_TRACK_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn is_uuid(name: &str) -> bool {
    name.len() == 36
        && name.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit() && !c.is_ascii_uppercase()
            }
        })
}

/// Every file of a record folder is a parseable record named by a UUID.
fn check_record_dir(dir: &std::path::Path, problems: &mut Vec<String>) -> usize {
    let mut count = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        if !is_uuid(&name) {
            problems.push(format!("{}: not a record name", path.display()));
            continue;
        }
        match fs::read_to_string(&path) {
            Ok(text) => match parse_repo_record(&text) {
                Ok(_) => count += 1,
                Err(e) => problems.push(format!("{}: {e}\n{text}", path.display())),
            },
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
    count
}

#[test]
fn track_crash_storm_leaves_every_record_and_journal_line_whole() {
    const FLIPS: usize = 30;
    const KILLS: usize = 3;
    let mut world = world_with_tracker("trk-storm", TrackSetup::default());
    let mut rng = Rng::new();
    let mut kill_at = BTreeSet::new();
    while kill_at.len() < KILLS {
        kill_at.insert(rng.below(FLIPS as u64) as usize);
    }
    eprintln!("crash storm: SIGKILL after flips {kill_at:?}");
    // (sim dir index, VM) pairs flipped in turn.
    let flipped = [
        (0usize, track_vm(TRACK_VM_A1)),
        (1usize, track_vm(TRACK_VM_B2)),
    ];
    let mut states: BTreeMap<&str, &str> = BTreeMap::new();
    let t0 = Instant::now();
    for i in 0..FLIPS {
        let (sim, vm) = flipped[i % flipped.len()];
        let next = if states.get(vm.uuid) == Some(&"paused") {
            "running"
        } else {
            "paused"
        };
        states.insert(vm.uuid, next);
        world.sims[sim].write_domain(&Domain::new(vm.uuid, vm.name, next));
        sleep(Duration::from_millis(50 + rng.below(250)));
        if kill_at.contains(&i) {
            // At a random instant within the next 0..300 ms.
            sleep(Duration::from_millis(rng.below(300)));
            world.tracker_mut().proc.kill();
            let t = Instant::now();
            world.start_tracker();
            eprintln!(
                "crash storm: killed after flip {i}, restarted in {:?}",
                t.elapsed()
            );
        }
    }
    eprintln!(
        "timing: crash storm of {FLIPS} flips and {KILLS} kills took {:?}",
        t0.elapsed()
    );

    // The tracker converges on the last states.
    let t1 = Instant::now();
    let converged = poll_until(SETTLE, || {
        let virtuals = world.records("virtual");
        states
            .iter()
            .all(|(vm, state)| {
                virtuals
                    .get(*vm)
                    .and_then(|r| r.get("run_state"))
                    .map(String::as_str)
                    == Some(state)
            })
            .then_some(())
    });
    assert!(
        converged.is_some(),
        "after the storm the records do not show the last states {states:?}: {:?}\n{}",
        world.records("virtual"),
        world.report()
    );
    eprintln!(
        "timing: records converged {:?} after the storm",
        t1.elapsed()
    );
    world.wait_settled(SETTLE, "after the storm");
    let status = world.tracker_mut().terminate(WAIT);
    assert!(
        status.is_some(),
        "tracker did not exit on SIGTERM\n{}",
        world.report()
    );

    // Every record whole.
    let root = world.repo.path().to_path_buf();
    let mut problems = Vec::new();
    let hardware = check_record_dir(&root.join("hardware"), &mut problems);
    let virtuals = check_record_dir(&root.join("virtual"), &mut problems);
    let mut tenant_files = 0;
    for tenant in fs::read_dir(root.join("tenants"))
        .expect("tenants/")
        .flatten()
    {
        tenant_files += check_record_dir(&tenant.path(), &mut problems);
    }
    for entry in fs::read_dir(&root).expect("repo").flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !["hardware", "virtual", "tenants", "events.log", ".lock"].contains(&name.as_str()) {
            problems.push(format!("unexpected file in the repository: {name}"));
        }
    }
    assert!(
        problems.is_empty(),
        "after {KILLS} SIGKILLs:\n{}\n{}",
        problems.join("\n"),
        world.report()
    );
    assert_eq!(
        (hardware, virtuals, tenant_files),
        (2, 5, 5),
        "record counts"
    );

    // Every journal line whole, seq strictly increasing (by one).
    let text = fs::read_to_string(world.journal_path()).expect("journal");
    let journal = parse_journal(&text, true)
        .unwrap_or_else(|e| panic!("events.log after the storm: {e}\n{}", world.report()));
    for pair in journal.windows(2) {
        assert!(
            pair[1].seq > pair[0].seq,
            "seq not increasing:\n{}\n{}",
            pair[0].line,
            pair[1].line
        );
    }
    let seqs: Vec<u64> = journal.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, want, "seq 1, 2, 3, ... with no gap");
    let changes = journal
        .iter()
        .filter(|e| e.kind == "vm-state-changed")
        .count();
    let added = journal.iter().filter(|e| e.kind == "vm-added").count();
    eprintln!(
        "crash storm: journal has {} events, {changes} state changes for {FLIPS} flips, \
         {added} vm-added",
        journal.len()
    );
    assert_eq!(
        added,
        TRACK_VMS.len(),
        "no VM added twice across crashes\n{}",
        lines(&journal)
    );
}
