//! The tracker (`xenplug track`) attacked by a host of its own management network, one test
//! per attack, each in namespaces of its own: one LAN (10.99.1.0/24) with a simulated
//! hypervisor (host 0), the attacker (host 1, `tests/interop/ssdp_flood.py`) and a second
//! hypervisor started during the attack (host 2), and the tracker's namespace with a leg in
//! it. Every flood is bounded in count and time and leaves only from the attacker's
//! namespace; every wait is bounded.
//!
//! Each test checks that a well-behaved hypervisor is described during the attack, that the
//! tracker's memory (RssAnon in /proc) stays under its limit, and that nothing the repository
//! held before the attack is lost or changed. Timings and memory figures are printed on
//! stderr (`cargo test --test hostile_tracker -- --nocapture`).

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, sleep};
use std::time::{Duration, Instant};

/// The hypervisor started during the attack, and its one VM.
const HOST_LATE: &str = "c3c3c3c3-0000-4000-8000-00000000000c";
const VM_LATE_ONE: &str = "c3c30001-1111-4a6b-8c9d-0000000000c1";
/// The VMs hypervisor A runs.
const VMS_A: [(&str, &str); 2] = [
    ("acac0001-1111-4a6b-8c9d-0000000000a1", "web"),
    ("acac0002-2222-4a6b-8c9d-0000000000a2", "db"),
];
/// The attacker's own address (LAN host 1).
const ATTACKER: &str = "10.99.1.12";
/// Bound for the hypervisor started during an attack to be in the repository. Measured: about
/// 20 ms after its start under each attack (it was 17.6 s with silent description servers
/// holding every fetch slot, and never within 24 h with the device table full).
const DESCRIBED_DURING_ATTACK: Duration = Duration::from_secs(5);
/// The tracker's anonymous memory stays below this under every attack. Measured peaks: 0.9 MiB
/// under the CONFIGID flap, 7 MiB under the UUID flood (one address's 4,096 devices).
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// What the CONFIGID flap may add to the tracker's memory: it makes no entry, so nothing but
/// noise. Measured: 28 KiB (before the fetch queue, 20,000 datagrams added about 119 MB).
const FLAP_GROWTH_KIB: u64 = 4 * 1024;
/// Bound for a real shutdown to reach the journal after SIGTERM. Measured: about 50 ms (the
/// verification's description fetch is refused at once).
const SHUTDOWN_NOTICED: Duration = Duration::from_secs(5);

/// One attacked LAN: hypervisor A described by a running tracker.
struct Field {
    tracker: Tracker,
    hypervisor: Xenplug,
    sims: Vec<SimDir>,
    repo: TempDir,
    tracker_ns: Netns,
    lan: Lan,
}

impl Field {
    /// Builds the LAN, starts hypervisor A (two running VMs) and the tracker, and waits until
    /// A, its VMs and their run states are in the repository.
    fn new(tag: &str) -> Field {
        let lan = Lan::with_subnet(tag, 3, 1);
        let tracker_ns = Netns::bare(&format!("{tag}-trk"));
        lan.attach(&tracker_ns, "eth0", track_leg_addr(1));
        let sims: Vec<SimDir> = (0..2).map(|h| SimDir::new(&format!("{tag}-{h}"))).collect();
        sims[0].write_host(TRACK_HOST_A, "dom0-a");
        for (uuid, name) in VMS_A {
            sims[0].write_domain(&Domain::new(uuid, name, "running"));
        }
        sims[1].write_host(HOST_LATE, "dom0-late");
        sims[1].write_domain(&Domain::new(VM_LATE_ONE, "late", "running"));
        let hypervisor = Xenplug::start_with(&lan.host(0).ns, &sims[0], &hypervisor_options());
        let repo = TempDir::new(&format!("{tag}-repo"));
        let args: Vec<String> = [
            "--net",
            "mgmt=eth0:provider",
            "--repo",
            &repo.path().display().to_string(),
            "--api",
            &format!("127.0.0.1:{TRACK_API_PORT}"),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let tracker = Tracker::start(&tracker_ns, &args);
        let field = Field {
            tracker,
            hypervisor,
            sims,
            repo,
            tracker_ns,
            lan,
        };
        let settled = poll_until(WAIT, || {
            let virtuals = field.records("virtual");
            let known = VMS_A.iter().all(|(uuid, _)| {
                virtuals
                    .get(*uuid)
                    .and_then(|record| record.get("run_state"))
                    .is_some_and(|state| state == "running")
            });
            (known && field.records("hardware").contains_key(TRACK_HOST_A)).then_some(())
        });
        assert!(
            settled.is_some(),
            "hypervisor A and its VMs never reached the repository\n{}",
            field.report()
        );
        field
    }

    /// The flood script run in the attacker's namespace with `args` after the mode.
    fn flood(&self, mode: &str, args: &[&str]) -> Proc {
        let script = format!("{}/tests/interop/ssdp_flood.py", env!("CARGO_MANIFEST_DIR"));
        let mut full = vec![script.as_str(), mode, "--addr", ATTACKER, "--iface", "eth0"];
        full.extend_from_slice(args);
        let attacker = &self.lan.host(1);
        assert_eq!(attacker.addr.to_string(), ATTACKER);
        let flood = attacker.ns.spawn(
            &format!("flood-{mode}"),
            attacker.ns.command("/usr/bin/python3", &full),
        );
        let started = flood.wait_stdout(WAIT, |out| out.contains("\"started\"").then_some(()));
        assert!(
            started.is_some(),
            "the {mode} flood never started\n{}",
            flood.report()
        );
        flood
    }

    /// Starts the second hypervisor and returns how long it took to reach the repository.
    fn late_hypervisor_described(&self) -> (Xenplug, Duration) {
        let late = Xenplug::start_with(&self.lan.host(2).ns, &self.sims[1], &hypervisor_options());
        let t0 = Instant::now();
        let described = poll_until(DESCRIBED_DURING_ATTACK * 3, || {
            let placed = self
                .records("virtual")
                .get(VM_LATE_ONE)
                .and_then(|record| record.get("hypervisor").cloned());
            (self.records("hardware").contains_key(HOST_LATE)
                && placed.as_deref() == Some(HOST_LATE))
            .then_some(())
        });
        let took = t0.elapsed();
        assert!(
            described.is_some(),
            "the hypervisor started during the attack never reached the repository\n{}\n{}",
            late.report_with_path(),
            self.report()
        );
        (late, took)
    }

    /// The records of `repo/<dir>` by file name.
    fn records(&self, dir: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        read_records(&self.repo.path().join(dir))
    }

    /// The journal's entries.
    fn journal(&self) -> Vec<JournalEntry> {
        let text = fs::read_to_string(self.repo.path().join("events.log")).unwrap_or_default();
        parse_journal(&text, false)
            .unwrap_or_else(|e| panic!("events.log does not parse: {e}\n{}", self.report()))
    }

    /// Every record (but `last_seen`, which moves with time) and every journal line.
    fn snapshot(&self) -> Snapshot {
        let mut records = BTreeMap::new();
        for dir in ["hardware", "virtual"] {
            for (name, mut record) in self.records(dir) {
                record.remove("last_seen");
                records.insert(format!("{dir}/{name}"), record);
            }
        }
        Snapshot {
            records,
            journal: self.journal().into_iter().map(|e| e.line).collect(),
        }
    }

    /// Asserts that everything `before` held is still there, unchanged, and that the journal
    /// only grew with events about the late hypervisor and its VM.
    fn assert_nothing_lost(&self, before: &Snapshot) {
        let after = self.snapshot();
        for (path, record) in &before.records {
            assert_eq!(
                after.records.get(path),
                Some(record),
                "{path} lost or changed by the attack\n{}",
                self.report()
            );
        }
        assert!(
            after.journal.starts_with(&before.journal),
            "the journal lost lines\n{}",
            self.report()
        );
        let foreign: Vec<&String> = after.journal[before.journal.len()..]
            .iter()
            .filter(|line| !line.contains(HOST_LATE) && !line.contains(VM_LATE_ONE))
            .collect();
        assert!(
            foreign.is_empty(),
            "the attack left events about what was there before: {foreign:#?}\n{}",
            self.report()
        );
    }

    /// The tracker's log tail and where everything is.
    fn report(&self) -> String {
        let journal = fs::read_to_string(self.repo.path().join("events.log")).unwrap_or_default();
        format!(
            "{}\nhypervisor A log: {}\nrepository: {}\n--- events.log (tail) ---\n{}",
            self.tracker.report(),
            self.hypervisor.proc.log_paths(),
            self.repo.path().display(),
            tail(&journal, 20)
        )
    }

    /// Lines of the tracker's log holding `needle`.
    fn log_lines(&self, needle: &str) -> Vec<String> {
        self.tracker
            .log()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_string)
            .collect()
    }
}

/// Max-age 1800: the periodic refresh (900 s) stays out of every test.
fn hypervisor_options() -> Options {
    Options {
        max_age: Some(1800),
        ..Options::ifaces(&["eth0"])
    }
}

/// What the repository held, for [`Field::assert_nothing_lost`].
struct Snapshot {
    records: BTreeMap<String, BTreeMap<String, String>>,
    journal: Vec<String>,
}

fn read_records(dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if let Ok(record) = fs::read_to_string(entry.path()).map(|t| parse_repo_record(&t)) {
            let record = record.unwrap_or_else(|e| panic!("{name}: {e}"));
            out.insert(name, record);
        }
    }
    out
}

/// RssAnon of process `pid` in KiB (/proc/PID/status), 0 when it is gone.
fn rss_anon_kib(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("RssAnon:"))
                .and_then(|value| value.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Samples a process's RssAnon every 20 ms until stopped; keeps the highest.
struct RssWatch {
    /// The process.
    pid: u32,
    /// RssAnon when the watch began, KiB.
    before: u64,
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl RssWatch {
    /// Watches the tracker of `field`.
    fn start(field: &Field) -> RssWatch {
        let pid = tracker_pid(field);
        let before = rss_anon_kib(pid);
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(before));
        let thread = {
            let (stop, peak) = (stop.clone(), peak.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    peak.fetch_max(rss_anon_kib(pid), Ordering::Relaxed);
                    sleep(Duration::from_millis(20));
                }
            })
        };
        RssWatch {
            pid,
            before,
            stop,
            peak,
            thread: Some(thread),
        }
    }

    /// Stops sampling; the highest figure seen.
    fn peak(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// The `done` line of a flood (bounded wait): datagrams sent, connections its silent server
/// accepted.
fn flood_done(flood: &mut Proc, timeout: Duration) -> (u64, u64) {
    let done = flood.wait_stdout(timeout, |out| {
        json_lines(out)
            .into_iter()
            .find(|line| line.get("kind").map(String::as_str) == Some("done"))
    });
    let Some(done) = done else {
        panic!(
            "the flood did not end within {timeout:?}\n{}",
            flood.report()
        );
    };
    assert!(
        flood.wait_exit(WAIT).is_some_and(|status| status.success()),
        "the flood failed\n{}",
        flood.report()
    );
    let number = |key: &str| done.get(key).and_then(|v| v.parse().ok()).unwrap_or(0);
    (number("sent"), number("accepted"))
}

/// The tracker's pid, checked to be the tracker itself (`ip netns exec` execs it).
fn tracker_pid(field: &Field) -> u32 {
    let pid = field.tracker.proc.pid();
    let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    assert_eq!(comm.trim(), "xenplug", "pid {pid} is not the tracker");
    pid
}

// ---- 2. memory: a CONFIGID flap on a LOCATION that never answers ------------------------------

#[test]
fn hostile_configid_flap_queues_one_fetch_and_keeps_memory_flat() {
    let field = Field::new("hst-flap");
    let before = field.snapshot();
    let watch = RssWatch::start(&field);
    let (pid, rss_before) = (watch.pid, watch.before);
    let t0 = Instant::now();
    // 20,000 alive NOTIFYs over 4 s for one UUID, CONFIGID 1, 2, 1, ...; its LOCATION is a
    // server that accepts and never answers, kept 6 s more so fetches time out, not fail.
    let flap_udn = "uuid:f1a9f1a9-0000-4000-8000-000000000001";
    let mut flood = field.flood(
        "flap",
        &[
            "--udn",
            flap_udn,
            "--count",
            "20000",
            "--seconds",
            "4",
            "--linger",
            "6",
        ],
    );
    sleep(Duration::from_millis(500));
    let (_late, took) = field.late_hypervisor_described();
    let (sent, accepted) = flood_done(&mut flood, Duration::from_secs(30));
    let peak = watch.peak();
    let rss_after = rss_anon_kib(pid);
    eprintln!(
        "timing: hypervisor started during a CONFIGID flap described in {took:?}; the flap sent \
         {sent} datagrams in {:?}, its LOCATION was fetched {accepted} times; RssAnon before \
         {rss_before} KiB, peak {peak} KiB, after {rss_after} KiB",
        t0.elapsed()
    );
    assert!(
        took <= DESCRIBED_DURING_ATTACK,
        "described {took:?} after its start during the flap\n{}",
        field.report()
    );
    // One fetch waits per LOCATION whatever the CONFIGID says: the silent server saw the
    // first attempt and at most the backed-off retries of 10 s (measured: 2), never one per
    // datagram.
    assert!(
        (1..=4).contains(&accepted),
        "the flapping LOCATION was fetched {accepted} times for {sent} datagrams\n{}",
        field.report()
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "RssAnon peaked at {peak} KiB (limit {RSS_LIMIT_KIB})\n{}",
        field.report()
    );
    assert!(
        rss_after < rss_before + FLAP_GROWTH_KIB,
        "RssAnon grew from {rss_before} to {rss_after} KiB with the flap\n{}",
        field.report()
    );
    let appeared = field.log_lines(&format!("{flap_udn} appeared"));
    assert_eq!(appeared.len(), 1, "{appeared:#?}");
    field.assert_nothing_lost(&before);
}

// ---- 3. blinded: fresh UUIDs to the quota, and description servers that never answer ----------

#[test]
fn hostile_uuid_flood_and_silent_servers_do_not_blind_the_tracker() {
    let field = Field::new("hst-blind");
    let before = field.snapshot();
    let watch = RssWatch::start(&field);
    let (pid, rss_before) = (watch.pid, watch.before);
    // 16 devices whose description server accepts and never answers, then 6,000 fresh UUIDs
    // (max-age 86400) whose LOCATIONs refuse: more than one address's share (4,096).
    let mut silent = field.flood(
        "silent",
        &["--count", "16", "--prefix", "5113e000", "--linger", "8"],
    );
    let mut uuids = field.flood("uuids", &["--count", "6000", "--seconds", "1.5"]);
    sleep(Duration::from_millis(500));
    let (_late, took) = field.late_hypervisor_described();
    let (sent, _) = flood_done(&mut uuids, Duration::from_secs(20));
    let (_, accepted) = flood_done(&mut silent, Duration::from_secs(20));
    let peak = watch.peak();
    eprintln!(
        "timing: hypervisor started during a {sent}-UUID flood and 16 silent servers described \
         in {took:?}; the silent server was connected to {accepted} times; RssAnon before \
         {rss_before} KiB, peak {peak} KiB, after {} KiB",
        rss_anon_kib(pid)
    );
    assert!(
        took <= DESCRIBED_DURING_ATTACK,
        "described {took:?} after its start during the flood\n{}",
        field.report()
    );
    assert!(
        peak < RSS_LIMIT_KIB,
        "RssAnon peaked at {peak} KiB (limit {RSS_LIMIT_KIB})\n{}",
        field.report()
    );
    // The attacker's address holds its share, refused once in the log, not per datagram.
    let refused = field.log_lines(&format!("{ATTACKER} advertises 4096 devices"));
    assert_eq!(refused.len(), 1, "{refused:#?}\n{}", field.report());
    // One fetch at a time from the attacker's address: the silent server holds at most one
    // connection per 5 s fetch timeout (measured: 2 in about 9 s).
    assert!(
        accepted <= 3,
        "the silent servers were connected to {accepted} times\n{}",
        field.report()
    );
    // Undescribed devices are reported once per address.
    let undescribed = field.log_lines("undescribed after");
    let loud = undescribed.iter().filter(|l| l.contains(" warn: ")).count();
    assert!(loud <= 1, "{undescribed:#?}");
    field.assert_nothing_lost(&before);
}

// ---- 4. a forged byebye for a live hypervisor --------------------------------------------------

#[test]
fn hostile_forged_byebye_leaves_the_host_and_its_vms_in_place() {
    let mut field = Field::new("hst-bye");
    let before = field.snapshot();
    let host_address = field.lan.host(0).addr.to_string();
    let root = format!("uuid:{TRACK_HOST_A}");
    // Five forged byebyes for the root, 100 ms apart, with the hypervisor's source address.
    let mut forged = field.flood(
        "byebye",
        &[
            "--udn",
            &root,
            "--spoof",
            &host_address,
            "--count",
            "5",
            "--seconds",
            "0.5",
        ],
    );
    flood_done(&mut forged, WAIT);
    // The first is verified at once; the others, heard during the pause that follows (1 s),
    // in one more check after it. Wait for the first verdict, then past the second.
    let first = poll_until(WAIT, || {
        (!field.log_lines("suspicious ssdp:byebye").is_empty()).then_some(())
    });
    assert!(
        first.is_some(),
        "no verdict on the forged byebye\n{}",
        field.report()
    );
    sleep(Duration::from_secs(3));
    let suspicious = field.log_lines("suspicious ssdp:byebye");
    let checks = field.log_lines(": verifying").len();
    eprintln!("timing: 5 forged byebyes, {checks} verifications; logged: {suspicious:#?}");
    assert!(
        field.log_lines(&format!("{root} gone")).is_empty(),
        "a forged byebye removed the hypervisor\n{}",
        field.report()
    );
    assert_eq!(
        suspicious.len(),
        1,
        "one suspicious line for the forged byebyes\n{}",
        field.report()
    );
    assert!(suspicious[0].contains(&root), "{}", suspicious[0]);
    let tree = Json::parse(
        &http_get(
            &field.tracker_ns,
            &format!("http://127.0.0.1:{TRACK_API_PORT}/api/tree"),
        )
        .body,
    )
    .expect("tree");
    let host = tree
        .list("hypervisors")
        .iter()
        .find(|h| h.s("uuid") == TRACK_HOST_A);
    let vms: Vec<&str> = host
        .map(|h| h.list("vms").iter().map(|v| v.s("uuid")).collect())
        .unwrap_or_default();
    assert_eq!(
        vms,
        VMS_A.iter().map(|(uuid, _)| *uuid).collect::<Vec<_>>(),
        "the tree after the forged byebyes\n{}",
        field.report()
    );
    field.assert_nothing_lost(&before);

    // A real shutdown: byebye for everything, then nothing answers. Journalled promptly.
    let mark = field.journal().last().map_or(0, |e| e.seq);
    let t0 = Instant::now();
    assert!(field.hypervisor.terminate(WAIT).is_some());
    let removed = poll_until(SHUTDOWN_NOTICED, || {
        let journal = field.journal();
        let has = |kind: &str, subject: &str| {
            journal
                .iter()
                .any(|e| e.seq > mark && e.kind == kind && e.subject == subject)
        };
        (has("hypervisor-removed", TRACK_HOST_A)
            && VMS_A.iter().all(|(vm, _)| has("vm-removed", vm)))
        .then_some(())
    });
    eprintln!(
        "timing: real shutdown journalled {:?} after SIGTERM",
        t0.elapsed()
    );
    assert!(
        removed.is_some(),
        "the hypervisor's real shutdown was not journalled within {SHUTDOWN_NOTICED:?}\n{}",
        field.report()
    );
}
