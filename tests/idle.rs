//! Idle devices sleep: with nothing changing, an `advertise hypervisor` with 100 sim domains
//! and an `advertise vm` with the example services read no file and hardly wake up, and a
//! change is still seen at once, because it is learned from the directory's watch rather than
//! by reading it again and again. Each test in a namespace of its own, on its loopback.
//!
//! Counted from /proc: `syscr` of /proc/PID/io (the process's read calls, threads that ended
//! included) and the context switches of its threads (those alive at both looks). The bounds
//! are far above what is measured and far below what polling cost.

mod common;

use common::*;
use std::fs;
use std::thread::sleep;
use std::time::Duration;

/// How long a device is watched while nothing changes.
const QUIET: Duration = Duration::from_secs(3);

/// Read calls of process `pid` so far, and the context switches of its threads alive now.
/// Panics when `pid` is not xenplug or /proc cannot tell, so that a zero is never a misreading.
fn activity(pid: u32) -> (u64, u64) {
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).expect("read /proc/PID/comm");
    assert_eq!(comm.trim(), "xenplug", "process {pid} is not the device");
    let io = fs::read_to_string(format!("/proc/{pid}/io")).expect("read /proc/PID/io");
    let reads = io
        .lines()
        .find_map(|line| line.strip_prefix("syscr:"))
        .and_then(|value| value.trim().parse().ok())
        .expect("syscr in /proc/PID/io");
    let mut switches = 0;
    let tasks = fs::read_dir(format!("/proc/{pid}/task")).expect("read /proc/PID/task");
    for task in tasks.flatten() {
        let status = fs::read_to_string(task.path().join("status")).unwrap_or_default();
        switches += status
            .lines()
            .filter(|line| line.contains("ctxt_switches"))
            .filter_map(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    assert!(switches > 0, "no context switch of {pid} read from /proc");
    (reads, switches)
}

/// Asserts that `xenplug`, once its start-up announcement and its repeat are over, makes at
/// most 30 read calls and 30 context switches over [`QUIET`] (10 a second: polling made far
/// more, see each test).
fn assert_quiet(xenplug: &Xenplug) {
    sleep(Duration::from_secs(1));
    let pid = xenplug.proc.pid();
    let (reads, switches) = activity(pid);
    sleep(QUIET);
    let (reads_after, switches_after) = activity(pid);
    let reads = reads_after.saturating_sub(reads);
    let switches = switches_after.saturating_sub(switches);
    assert!(
        reads <= 30,
        "{reads} read calls in {QUIET:?} with nothing changing\n{}",
        xenplug.proc.report()
    );
    assert!(
        switches <= 30,
        "{switches} context switches in {QUIET:?} with nothing changing"
    );
}

/// Asserts that `xenplug`'s description comes to hold `needle` (`what` in the message),
/// within the harness's generous wait. Measured: on the first or second look (25 to 70 ms,
/// mostly the curl each look starts).
fn assert_described(ns: &Netns, xenplug: &Xenplug, needle: &str, what: &str) {
    let seen = poll_until(WAIT, || {
        let description = http_get(ns, &xenplug.url).body;
        description.contains(needle).then_some(())
    });
    assert!(
        seen.is_some(),
        "{what} never reached the description\n{}",
        xenplug.proc.report()
    );
}

#[test]
fn an_idle_hypervisor_reads_no_file_and_sees_a_new_domain_at_once() {
    let ns = Netns::new("idle-hv");
    let sim = SimDir::new("idle-hv");
    sim.write_host(HOST_UUID, HOST_NAME);
    for n in 0..100 {
        let uuid = format!("0b5e1c2a-0000-4a6b-8c9d-{n:012}");
        sim.write_domain(&Domain::new(&uuid, &format!("vm{n}"), "running"));
    }
    let xenplug = Xenplug::start(&ns, "lo", &sim);
    // Measured: 0 reads and 0 switches in 3 s (5 runs). Reading the directory every 200 ms
    // made some 6,300 reads and 150 to 240 switches in 3 s.
    assert_quiet(&xenplug);

    sim.write_domain(&Domain::new(VM_LATE, "late", "running"));
    assert_described(&ns, &xenplug, VM_LATE, "the new domain");
}

#[test]
fn an_idle_vm_advertiser_reads_no_file_and_sees_a_new_service_at_once() {
    let ns = Netns::new("idle-vm");
    let services = ServicesDir::packaging_examples("idle-vm");
    let xenplug = Xenplug::start_vm(&ns, &VmOptions::new("lo", &services.path()));
    // Measured: 0 reads and 0 switches in 3 s (5 runs); reading the services every 500 ms
    // made some 57 reads and 77 to 93 switches in 3 s.
    assert_quiet(&xenplug);

    let ping = ServiceFiles::new(
        &Scpd::new().action("Ping", &[], &["Result"]).xml(),
        "#!/bin/sh\necho Result=pong\n",
    );
    services.add_service("Ping", &ping);
    assert_described(&ns, &xenplug, &vm_service_type("Ping"), "the new service");
}
