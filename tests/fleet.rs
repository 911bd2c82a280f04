//! One tracker in front of a fleet: ten simulated hypervisors of 100 domains each, separate
//! processes in one namespace (tests/common/fleet.rs), all advertising before the tracker
//! starts, so its first search is answered by 3,030 datagrams within its MX.
//!
//! Asserts that every hypervisor and VM reaches the repository and the API, with the run state
//! each domain's initial event gives, and that no datagram was lost to a full receive buffer
//! (the tracker's own count and the namespace's `RcvbufErrors`). Times are the benchmark's
//! (`tests/benches/fleet.sh`), not this test's: its bounds only catch a tracker that never
//! gets there.

mod common;

use common::*;
use std::time::Duration;

/// Bound for the whole fleet to reach the repository: measured about 1 s (release) to 3 s
/// (debug build) on 2 CPUs; a minute only catches a tracker that never gets there.
const CONVERGE: Duration = Duration::from_secs(60);
/// Bound for every VM's run state to arrive (one initial event per Domain, eight at a time
/// per host): measured within the convergence.
const STATES: Duration = Duration::from_secs(60);

#[test]
fn ten_hypervisors_of_a_hundred_domains_converge_without_drops() {
    let mut fleet = Fleet::new("fleet", 10, 100);
    let drops_before = fleet.rcvbuf_errors();
    fleet.start_tracker(&[]);
    let took = fleet.wait_converged(CONVERGE);
    assert!(
        took.is_some(),
        "not every VM reached the repository within {CONVERGE:?}: records {:?} of (10, 1000)\n{}",
        fleet.records(),
        fleet.report()
    );
    eprintln!("fleet: 10 x 100 converged {took:?} after the tracker's start");

    // Each VM has the run state its Domain's initial event gave: none was refused.
    let running = fleet.wait_running(STATES);
    assert!(
        running.is_some(),
        "not every VM's run state arrived within {STATES:?}\n{}",
        fleet.report()
    );
    eprintln!("fleet: every run state {running:?} after the tracker's start");

    // No datagram lost: the tracker counted none, nor did the kernel for its namespace.
    let status = fleet.status();
    let network = &status.list("networks")[0];
    assert_eq!(
        network.get("dropped").and_then(Json::u64),
        Some(0),
        "the tracker counted drops\n{}",
        fleet.report()
    );
    assert!(
        network
            .get("receive_buffer")
            .and_then(Json::u64)
            .is_some_and(|bytes| bytes >= 32 << 20),
        "{network:?}"
    );
    assert_eq!(
        fleet.rcvbuf_errors(),
        drops_before,
        "datagrams dropped in the tracker's namespace\n{}",
        fleet.report()
    );
    let log = fleet.tracker.as_ref().map(Tracker::log).unwrap_or_default();
    assert!(
        !log.contains("connection refused"),
        "a host's NOTIFYs were refused\n{}",
        fleet.report()
    );

    // A page of the tree and a search answer without the rest.
    let page = curl(
        &fleet.tracker_ns,
        &format!("{}/api/tree?limit=10&offset=995", fleet.api()),
        &[],
    );
    let page = Json::parse(&page.body).expect("JSON");
    assert_eq!(page.get("total").and_then(Json::u64), Some(1000));
    let hosts = page.list("hypervisors");
    let vms: usize = hosts.iter().map(|h| h.list("vms").len()).sum();
    assert_eq!(vms, 5, "{page:?}");
    let found = curl(
        &fleet.tracker_ns,
        &format!("{}/api/tree?q=VM-7-42", fleet.api()),
        &[],
    );
    let found = Json::parse(&found.body).expect("JSON");
    let hosts = found.list("hypervisors");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].list("vms")[0].s("uuid"), fleet_vm_uuid(7, 42));
}
