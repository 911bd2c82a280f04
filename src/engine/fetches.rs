//! Engine layer: the tracker's queue of description fetches. Decides which description is
//! fetched next, when one that failed is tried again and how many run at once; the net layer
//! performs what [`Fetches::take_due`] hands out and reports each end to [`Fetches::on_done`].
//! State only: time comes in as `now`; no sockets, no clock.
//!
//! # Policy
//!
//! - A *target* is one description: (network, LOCATION). Discovery asks for it to be
//!   described (a device appeared, its BOOTID, CONFIGID or LOCATION changed) or verified (a
//!   device there said ssdp:byebye; see [`crate::engine::discovery`]). A target has at most
//!   one fetch waiting: a newer request merges into the waiting one (the union of what they
//!   ask, the earlier place in the queue), so a flood of CONFIGID changes for one device
//!   queues one fetch, never one per datagram. A request while a fetch runs waits for it
//!   to end.
//! - One fetch at a time per source address (network, address): a host with many devices
//!   or LOCATIONs has them fetched one after the other and holds one slot at most.
//! - At most `slots` fetches at once. Verifications come first, then first tries, then
//!   retries (the target's last fetch failed); within each, the earliest due, then the
//!   oldest request. Retries hold at most `retry_slots` slots, and first tries and retries
//!   together leave one slot to verifications, so devices whose servers never answer cannot
//!   hold back a new device or a byebye's check.
//! - A failure doubles the target's pause from `backoff` up to `max_backoff` (a success
//!   resets it). A description is retried until `attempts` consecutive failures; then the
//!   request is dropped and reported (the device is undescribed), and any later request
//!   waits for the pause, which keeps growing while the device keeps failing. After a
//!   success, the next description fetch of the target starts `min_interval` after it at the
//!   soonest. A verification waits for neither: a real shutdown must be noticed promptly
//!   (discovery spaces the verifications of one device out itself).
//! - Every map shrinks when it empties, so the memory a flood took is given back.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::{later, shrink};

/// How many fetches run at once and how failing ones are tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Fetches at once, at most (at least 2: one is kept for verifications).
    pub slots: usize,
    /// Of those, retries at most (at least 1).
    pub retry_slots: usize,
    /// Consecutive failures after which a description request is dropped and reported.
    pub attempts: u32,
    /// Pause after the first failure; doubled after each further one.
    pub backoff: Duration,
    /// Longest pause.
    pub max_backoff: Duration,
    /// Shortest time from the start of a successful fetch to the start of the next
    /// description fetch of the same target.
    pub min_interval: Duration,
}

/// What a fetch is for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purpose {
    /// Read the description for the inventory.
    pub describe: bool,
    /// With `describe`: asked because the device's BOOTID changed.
    pub rebooted: bool,
    /// Check that the device still answers, after a byebye.
    pub verify: bool,
}

/// A fetch to perform, handed out by [`Fetches::take_due`]; give it back to
/// [`Fetches::on_done`] when it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Network id.
    pub network: u32,
    /// LOCATION to fetch.
    pub location: String,
    /// The address it is fetched from (LOCATION's host).
    pub source: Ipv4Addr,
    /// What it is for.
    pub purpose: Purpose,
    id: u64,
    kind: Kind,
}

/// How a fetch ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The description was read.
    Fetched,
    /// No answer, an error status, or a document that is no description.
    Failed,
}

/// A description request dropped after [`Config::attempts`] consecutive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Undescribed {
    /// Consecutive failures so far.
    pub failures: u32,
    /// Whether it is the first report for its source address since that address last had
    /// no target: the net layer logs that one loudly, the rest quietly.
    pub first_for_source: bool,
}

/// The queue: targets, their sources, what runs.
pub struct Fetches {
    config: Config,
    /// (network, LOCATION) -> target id.
    ids: HashMap<(u32, String), u64>,
    targets: HashMap<u64, Target>,
    sources: HashMap<(u32, Ipv4Addr), Source>,
    /// Per kind, the head of each idle source's queue: (due, order, id).
    ready: [BTreeSet<Slot>; 3],
    running: usize,
    running_retries: usize,
    next_id: u64,
    next_order: u64,
}

/// Verification, first try, retry: the order in which waiting fetches are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Verify = 0,
    First = 1,
    Retry = 2,
}

/// (due, order, target id): a place in a queue.
type Slot = (Instant, u64, u64);

struct Target {
    network: u32,
    location: String,
    source: Ipv4Addr,
    /// A description asked for and not started: since when, and whether for a reboot.
    describe: Option<(Instant, bool)>,
    /// A verification asked for and not started: from when.
    verify: Option<Instant>,
    /// Place in the request order, kept while something waits.
    order: u64,
    /// Where it is queued in its source's queue, with its kind.
    queued: Option<(Kind, Slot)>,
    running: bool,
    /// When the running (or last) fetch started.
    started: Instant,
    /// Consecutive failures.
    failures: u32,
    /// A description fetch starts no earlier (pause after failures, interval after success).
    not_before: Instant,
}

struct Source {
    /// Whether one of its targets is being fetched.
    busy: bool,
    /// Its waiting targets, by kind then slot.
    queue: BTreeSet<(Kind, Slot)>,
    /// Its entry in `ready`, if any.
    head: Option<(Kind, Slot)>,
    /// Targets it has.
    targets: usize,
    /// Whether an undescribed report was made for it.
    reported: bool,
}

impl Fetches {
    /// An empty queue.
    pub fn new(config: Config) -> Self {
        let config = Config {
            slots: config.slots.max(2),
            retry_slots: config.retry_slots.max(1),
            attempts: config.attempts.max(1),
            max_backoff: config.max_backoff.max(config.backoff),
            ..config
        };
        Fetches {
            config,
            ids: HashMap::new(),
            targets: HashMap::new(),
            sources: HashMap::new(),
            ready: [BTreeSet::new(), BTreeSet::new(), BTreeSet::new()],
            running: 0,
            running_retries: 0,
            next_id: 0,
            next_order: 0,
        }
    }

    /// Asks for the description at `location` (on `network`, served by `source`) to be
    /// fetched: described now (`rebooted` when a BOOTID change asks), or verified from `at`
    /// on. Merges into what already waits for that target.
    pub fn request(
        &mut self,
        now: Instant,
        network: u32,
        location: &str,
        source: Ipv4Addr,
        purpose: Purpose,
        at: Instant,
    ) {
        let id = self.target_id(now, network, location, source);
        let Some(target) = self.targets.get_mut(&id) else {
            return;
        };
        if target.describe.is_none() && target.verify.is_none() {
            target.order = self.next_order;
            self.next_order += 1;
        }
        if purpose.describe {
            let (since, rebooted) = target.describe.unwrap_or((now, false));
            target.describe = Some((since, rebooted || purpose.rebooted));
        }
        if purpose.verify {
            target.verify = Some(target.verify.map_or(at, |known| known.min(at)));
        }
        self.requeue(id);
    }

    /// Forgets the target at `location` (its devices left): what waits is dropped; a fetch
    /// running for it ends without effect.
    pub fn cancel(&mut self, network: u32, location: &str) {
        let Some(id) = self.ids.remove(&(network, location.to_owned())) else {
            return;
        };
        let Some(target) = self.targets.remove(&id) else {
            return;
        };
        let key = (target.network, target.source);
        if let Some(source) = self.sources.get_mut(&key) {
            if let Some(queued) = target.queued {
                source.queue.remove(&queued);
            }
            source.targets = source.targets.saturating_sub(1);
        }
        self.refresh_source(key);
        shrink(&mut self.ids);
        shrink(&mut self.targets);
    }

    /// When [`Fetches::take_due`] next has a fetch to start, if ever (a fetch waiting for a
    /// free slot is woken by [`Fetches::on_done`], which the caller follows with a look).
    pub fn poll_at(&self) -> Option<Instant> {
        [Kind::Verify, Kind::First, Kind::Retry]
            .into_iter()
            .filter(|kind| self.room(*kind))
            .filter_map(|kind| self.ready[kind as usize].first().map(|slot| slot.0))
            .min()
    }

    /// The fetches to start at `now`, in order; each must come back through
    /// [`Fetches::on_done`].
    pub fn take_due(&mut self, now: Instant) -> Vec<Job> {
        let mut jobs = Vec::new();
        while let Some(kind) = [Kind::Verify, Kind::First, Kind::Retry]
            .into_iter()
            .find(|kind| {
                self.room(*kind)
                    && self.ready[*kind as usize]
                        .first()
                        .is_some_and(|slot| slot.0 <= now)
            })
        {
            let Some(slot) = self.ready[kind as usize].pop_first() else {
                break;
            };
            let id = slot.2;
            let Some(target) = self.targets.get_mut(&id) else {
                continue;
            };
            let key = (target.network, target.source);
            let Some(source) = self.sources.get_mut(&key) else {
                continue;
            };
            source.head = None;
            if let Some(queued) = target.queued.take() {
                source.queue.remove(&queued);
            }
            source.busy = true;
            let describe = target
                .describe
                .filter(|(since, _)| *since.max(&target.not_before) <= now);
            let verify = target.verify.filter(|at| *at <= now);
            let purpose = Purpose {
                describe: describe.is_some(),
                rebooted: describe.is_some_and(|(_, rebooted)| rebooted),
                verify: verify.is_some(),
            };
            if describe.is_some() {
                target.describe = None;
            }
            if verify.is_some() {
                target.verify = None;
            }
            target.running = true;
            target.started = now;
            self.running += 1;
            if kind == Kind::Retry {
                self.running_retries += 1;
            }
            jobs.push(Job {
                network: target.network,
                location: target.location.clone(),
                source: target.source,
                purpose,
                id,
                kind,
            });
        }
        jobs
    }

    /// A fetch handed out by [`Fetches::take_due`] ended at `now`. Returns a report when a
    /// description request was dropped after [`Config::attempts`] consecutive failures.
    pub fn on_done(&mut self, now: Instant, job: &Job, outcome: Outcome) -> Option<Undescribed> {
        self.running = self.running.saturating_sub(1);
        if job.kind == Kind::Retry {
            self.running_retries = self.running_retries.saturating_sub(1);
        }
        let key = (job.network, job.source);
        if let Some(source) = self.sources.get_mut(&key) {
            source.busy = false;
        }
        let mut report = None;
        if let Some(target) = self.targets.get_mut(&job.id) {
            target.running = false;
            match outcome {
                Outcome::Fetched => {
                    target.failures = 0;
                    target.not_before = later(target.started, self.config.min_interval);
                }
                Outcome::Failed => {
                    target.failures = target.failures.saturating_add(1);
                    target.not_before = later(now, backoff(&self.config, target.failures));
                    if job.purpose.describe {
                        if target.failures < self.config.attempts {
                            let (since, rebooted) = target.describe.unwrap_or((now, false));
                            target.describe = Some((since, rebooted || job.purpose.rebooted));
                        } else if let Some(source) = self.sources.get_mut(&key) {
                            report = Some(Undescribed {
                                failures: target.failures,
                                first_for_source: !std::mem::replace(&mut source.reported, true),
                            });
                        }
                    }
                }
            }
            if target.describe.is_none() && target.verify.is_none() {
                target.order = u64::MAX;
            }
            self.requeue(job.id);
        } else {
            self.refresh_source(key);
        }
        report
    }

    /// Targets known (waiting, running or remembered for their failures).
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether no target is known.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Whether `kind` may start one more fetch now.
    fn room(&self, kind: Kind) -> bool {
        let slots = self.config.slots;
        match kind {
            Kind::Verify => self.running < slots,
            Kind::First => self.running + 1 < slots,
            Kind::Retry => {
                self.running + 1 < slots && self.running_retries < self.config.retry_slots
            }
        }
    }

    /// The id of target (network, LOCATION), made when new.
    fn target_id(&mut self, now: Instant, network: u32, location: &str, source: Ipv4Addr) -> u64 {
        if let Some(id) = self.ids.get(&(network, location.to_owned())) {
            return *id;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.ids.insert((network, location.to_owned()), id);
        self.targets.insert(
            id,
            Target {
                network,
                location: location.to_owned(),
                source,
                describe: None,
                verify: None,
                order: u64::MAX,
                queued: None,
                running: false,
                started: now,
                failures: 0,
                not_before: now,
            },
        );
        let source = self
            .sources
            .entry((network, source))
            .or_insert_with(|| Source {
                busy: false,
                queue: BTreeSet::new(),
                head: None,
                targets: 0,
                reported: false,
            });
        source.targets += 1;
        id
    }

    /// Puts target `id` where it belongs in its source's queue (nowhere when nothing waits or
    /// it runs), then refreshes the source's entry in `ready`.
    fn requeue(&mut self, id: u64) {
        let Some(target) = self.targets.get_mut(&id) else {
            return;
        };
        let key = (target.network, target.source);
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        if let Some(queued) = target.queued.take() {
            source.queue.remove(&queued);
        }
        if !target.running {
            let describe = target.describe.map(|(since, _)| {
                let kind = if target.failures == 0 {
                    Kind::First
                } else {
                    Kind::Retry
                };
                (kind, since.max(target.not_before))
            });
            let verify = target.verify.map(|at| (Kind::Verify, at));
            // The part due first decides; at the same instant a verification goes first.
            let place = match (verify, describe) {
                (Some(v), Some(d)) => Some(if v.1 <= d.1 { v } else { d }),
                (one, other) => one.or(other),
            };
            if let Some((kind, due)) = place {
                let queued = (kind, (due, target.order, id));
                source.queue.insert(queued);
                target.queued = Some(queued);
            }
        }
        self.refresh_source(key);
    }

    /// Makes the source's entry in `ready` its queue's head while it is idle, none while it
    /// is busy; forgets the source once it has neither targets nor a fetch running.
    fn refresh_source(&mut self, key: (u32, Ipv4Addr)) {
        let Some(source) = self.sources.get_mut(&key) else {
            return;
        };
        let wanted = if source.busy {
            None
        } else {
            source.queue.first().copied()
        };
        if source.head != wanted {
            if let Some((kind, slot)) = source.head.take() {
                self.ready[kind as usize].remove(&slot);
            }
            if let Some((kind, slot)) = wanted {
                self.ready[kind as usize].insert(slot);
            }
            source.head = wanted;
        }
        if source.targets == 0 && !source.busy {
            self.sources.remove(&key);
            shrink(&mut self.sources);
        }
    }
}

/// The pause after `failures` consecutive failures (at least 1).
fn backoff(config: &Config, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    config
        .backoff
        .saturating_mul(1 << doublings)
        .min(config.max_backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: u32 = 0;
    const HOST_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 11);
    const HOST_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 12);
    const DESCRIBE: Purpose = Purpose {
        describe: true,
        rebooted: false,
        verify: false,
    };
    const VERIFY: Purpose = Purpose {
        describe: false,
        rebooted: false,
        verify: true,
    };

    fn config() -> Config {
        Config {
            slots: 4,
            retry_slots: 2,
            attempts: 3,
            backoff: secs(1),
            max_backoff: secs(60),
            min_interval: secs(1),
        }
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    fn location(host: Ipv4Addr, n: u32) -> String {
        format!("http://{host}:{}/d.xml", 40000 + n)
    }

    fn describe(fetches: &mut Fetches, now: Instant, host: Ipv4Addr, n: u32) {
        fetches.request(now, NET, &location(host, n), host, DESCRIBE, now);
    }

    fn locations(jobs: &[Job]) -> Vec<String> {
        jobs.iter().map(|job| job.location.clone()).collect()
    }

    #[test]
    fn a_flood_of_requests_for_one_target_queues_one_fetch() {
        let mut fetches = Fetches::new(config());
        let now = Instant::now();
        for n in 0..20_000u32 {
            let rebooted = n == 7;
            let purpose = Purpose {
                rebooted,
                ..DESCRIBE
            };
            fetches.request(now, NET, &location(HOST_A, 0), HOST_A, purpose, now);
        }
        assert_eq!(fetches.len(), 1);
        assert_eq!(fetches.poll_at(), Some(now));
        let jobs = fetches.take_due(now);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            jobs[0].purpose,
            Purpose {
                rebooted: true,
                ..DESCRIBE
            }
        );
        // More requests while it runs: one fetch waits, started once this one ends.
        for _ in 0..1000 {
            describe(&mut fetches, now, HOST_A, 0);
        }
        assert!(fetches.take_due(now + secs(10)).is_empty());
        assert_eq!(fetches.poll_at(), None);
        let done = now + Duration::from_millis(300);
        assert_eq!(fetches.on_done(done, &jobs[0], Outcome::Fetched), None);
        // Not before min_interval after the start of the last one.
        assert_eq!(fetches.poll_at(), Some(now + secs(1)));
        assert!(fetches.take_due(done).is_empty());
        let again = fetches.take_due(now + secs(1));
        assert_eq!(locations(&again), vec![location(HOST_A, 0)]);
        assert_eq!(again[0].purpose, DESCRIBE);
        fetches.on_done(now + secs(1), &again[0], Outcome::Fetched);
        assert_eq!(fetches.poll_at(), None);
    }

    #[test]
    fn one_fetch_at_a_time_per_source_and_slots_are_shared() {
        let mut fetches = Fetches::new(config());
        let now = Instant::now();
        for n in 0..16 {
            describe(&mut fetches, now, HOST_A, n);
        }
        let hosts: Vec<Ipv4Addr> = (0..5).map(|n| Ipv4Addr::new(10, 0, 1, n)).collect();
        for host in &hosts {
            describe(&mut fetches, now, *host, 0);
        }
        let jobs = fetches.take_due(now);
        // Four slots, one kept for verifications: HOST_A's first LOCATION and two others.
        assert_eq!(
            locations(&jobs),
            vec![
                location(HOST_A, 0),
                location(hosts[0], 0),
                location(hosts[1], 0)
            ]
        );
        // A verification takes the last slot.
        fetches.request(now, NET, &location(HOST_B, 0), HOST_B, VERIFY, now);
        let verify = fetches.take_due(now);
        assert_eq!(locations(&verify), vec![location(HOST_B, 0)]);
        assert_eq!(verify[0].purpose, VERIFY);
        assert_eq!(fetches.poll_at(), None);
        // HOST_A's next LOCATION waits for its first to end, whatever slots are free.
        fetches.on_done(now, &jobs[1], Outcome::Fetched);
        fetches.on_done(now, &verify[0], Outcome::Fetched);
        let next = fetches.take_due(now);
        assert_eq!(locations(&next), vec![location(hosts[2], 0)]);
        fetches.on_done(now, &jobs[0], Outcome::Fetched);
        let next = fetches.take_due(now);
        assert_eq!(locations(&next), vec![location(HOST_A, 1)]);
    }

    #[test]
    fn failures_back_off_and_are_reported_after_the_attempts() {
        let mut fetches = Fetches::new(config());
        let now = Instant::now();
        describe(&mut fetches, now, HOST_A, 0);
        let mut at = now;
        let mut pauses = Vec::new();
        for attempt in 1..=3u32 {
            let jobs = fetches.take_due(at);
            assert_eq!(jobs.len(), 1, "attempt {attempt}");
            let report = fetches.on_done(at, &jobs[0], Outcome::Failed);
            if attempt < 3 {
                assert_eq!(report, None);
                let due = fetches.poll_at().unwrap();
                pauses.push(due - at);
                assert!(fetches.take_due(due - Duration::from_millis(1)).is_empty());
                at = due;
            } else {
                assert_eq!(
                    report,
                    Some(Undescribed {
                        failures: 3,
                        first_for_source: true
                    })
                );
            }
        }
        assert_eq!(pauses, vec![secs(1), secs(2)]);
        // Dropped: nothing waits until it is asked for again, then after the pause (4 s).
        assert_eq!(fetches.poll_at(), None);
        describe(&mut fetches, at, HOST_A, 0);
        assert_eq!(fetches.poll_at(), Some(at + secs(4)));
        // Each further failure is final at once and doubles the pause, up to the bound.
        let mut expected = 4;
        for _ in 0..10 {
            let due = fetches.poll_at().unwrap();
            let jobs = fetches.take_due(due);
            let report = fetches.on_done(due, &jobs[0], Outcome::Failed).unwrap();
            assert!(!report.first_for_source);
            describe(&mut fetches, due, HOST_A, 0);
            expected = (expected * 2).min(60);
            assert_eq!(fetches.poll_at(), Some(due + secs(expected)));
        }
        // A success resets.
        let due = fetches.poll_at().unwrap();
        let jobs = fetches.take_due(due);
        fetches.on_done(due, &jobs[0], Outcome::Fetched);
        describe(&mut fetches, due + secs(5), HOST_A, 0);
        assert_eq!(fetches.poll_at(), Some(due + secs(5)));
    }

    #[test]
    fn retries_hold_their_share_and_new_devices_go_first() {
        let mut fetches = Fetches::new(config());
        let now = Instant::now();
        // Silent devices on four hosts: their first tries fail.
        let silent: Vec<Ipv4Addr> = (0..4).map(|n| Ipv4Addr::new(10, 0, 2, n)).collect();
        for host in &silent {
            describe(&mut fetches, now, *host, 0);
        }
        let mut running = Vec::new();
        for _ in 0..2 {
            let jobs = fetches.take_due(now);
            for job in &jobs {
                fetches.on_done(now, job, Outcome::Failed);
            }
        }
        // All four retry a second later: two at most at once.
        let at = now + secs(2);
        running.extend(fetches.take_due(at));
        assert_eq!(running.len(), 2);
        assert!(running.iter().all(|job| job.kind == Kind::Retry));
        // A new device is fetched at once, on a slot retries may not take.
        describe(&mut fetches, at, HOST_B, 0);
        let new = fetches.take_due(at);
        assert_eq!(locations(&new), vec![location(HOST_B, 0)]);
        assert_eq!(fetches.take_due(at).len(), 0);
        // A new device asked for at the same time as waiting retries goes first.
        fetches.on_done(at, &running[0], Outcome::Failed);
        describe(&mut fetches, at, HOST_A, 0);
        let next = fetches.take_due(at);
        assert_eq!(locations(&next), vec![location(HOST_A, 0)]);
    }

    #[test]
    fn a_verification_skips_the_pause_and_waits_for_its_time() {
        let mut fetches = Fetches::new(config());
        let now = Instant::now();
        describe(&mut fetches, now, HOST_A, 0);
        let jobs = fetches.take_due(now);
        fetches.on_done(now, &jobs[0], Outcome::Failed);
        // The description waits for the pause; a verification asked for now does not.
        fetches.request(now, NET, &location(HOST_A, 0), HOST_A, VERIFY, now);
        let jobs = fetches.take_due(now);
        assert_eq!(jobs[0].purpose, VERIFY);
        fetches.on_done(now, &jobs[0], Outcome::Fetched);
        // The description still waits for its pause; a verification for later waits too.
        fetches.request(
            now,
            NET,
            &location(HOST_A, 0),
            HOST_A,
            VERIFY,
            now + secs(8),
        );
        assert_eq!(fetches.poll_at(), Some(now + secs(1)));
        let jobs = fetches.take_due(now + secs(1));
        assert_eq!(jobs[0].purpose, DESCRIBE);
        fetches.on_done(now + secs(1), &jobs[0], Outcome::Fetched);
        assert_eq!(fetches.poll_at(), Some(now + secs(8)));
        // Both due: one fetch does both.
        describe(&mut fetches, now + secs(8), HOST_A, 0);
        let jobs = fetches.take_due(now + secs(8));
        assert_eq!(
            jobs[0].purpose,
            Purpose {
                verify: true,
                ..DESCRIBE
            }
        );
    }

    #[test]
    fn cancelled_targets_are_forgotten_and_memory_given_back() {
        let mut fetches = Fetches::new(config());
        let now = Instant::now();
        for n in 0..5000 {
            describe(&mut fetches, now, HOST_A, n);
        }
        let jobs = fetches.take_due(now);
        assert_eq!(jobs.len(), 1);
        let big = fetches.ids.capacity();
        for n in 0..5000 {
            fetches.cancel(NET, &location(HOST_A, n));
        }
        assert!(fetches.is_empty());
        // The running one ends without effect; its source is forgotten then.
        assert_eq!(fetches.on_done(now, &jobs[0], Outcome::Failed), None);
        assert!(fetches.sources.is_empty());
        assert!(fetches.ready.iter().all(BTreeSet::is_empty));
        assert!(fetches.ids.capacity() < big / 8);
        assert!(fetches.targets.capacity() <= super::super::ENGINE_SHRINK_MIN * 2);
        assert_eq!(fetches.poll_at(), None);
        assert_eq!((fetches.running, fetches.running_retries), (0, 0));
    }
}
