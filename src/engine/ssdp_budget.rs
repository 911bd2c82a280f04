//! Engine layer: how many search replies an SSDP device sends, to whom, and when: the bounds
//! that keep a device from being a reflector (UDA 1.1 section 1.3). State only: time comes in
//! as `now`; no sockets, no clock, and no allocation once an interface's budget exists.
//!
//! A search costs almost nothing to send and its source address costs nothing to forge, while
//! its answer can be large: `ssdp:all` on a hypervisor with d domains is 3 + 2d + k replies
//! (k service types) of about 370 bytes each. Three bounds apply to every interface:
//!
//! - per source address: [`SSDP_SEARCHES_PER_SOURCE`] searches a second, and a share of the
//!   interface's reply bytes (a quarter) that it may take at once up to
//!   [`SSDP_SOURCE_BURST`] worth, so one source, however loud, leaves the rest to others;
//! - a table of [`SSDP_RATE_SOURCES`] sources with budgets of their own: a source keeps its
//!   entry while it searched in the last [`SSDP_RATE_SOURCE_IDLE`], and a source the table
//!   has no room for shares one overflow budget (the same limits as one source) with every
//!   other such source, so rotating over many forged addresses gains at most the table's
//!   worth of budgets, never a fresh one per address;
//! - per interface: [`SSDP_REPLY_BYTES_PER_SECOND`], whoever asks, paced: replies beyond
//!   [`SSDP_REPLY_BURST`] worth wait their turn, and those that would wait longer than
//!   [`SSDP_REPLY_MAX_WAIT`] are not sent (the search is answered in part).
//!
//! Whatever the flood, each source (and the overflow) still gets its first
//! [`SSDP_PRIORITY_REPLIES`] replies of every second: a control point that searched recently
//! learns the root device (its replies come first), and from its description the rest, while
//! the interface is busy answering others. Those are counted against the paces like any
//! reply, and are few enough by construction ((64 + 1) × 4 a second) to stay within bounds.

use std::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::later;
use crate::consts::SSDP_RATE_WINDOW;

/// Searches answered per source address (or by the overflow, all its sources together) within
/// [`SSDP_RATE_WINDOW`].
pub const SSDP_SEARCHES_PER_SOURCE: u32 = 10;
/// Sources with a budget of their own, per interface.
pub const SSDP_RATE_SOURCES: usize = 64;
/// How long a source must have been silent before its entry may go to another source. Longer
/// than [`SSDP_SOURCE_BURST`], so a reused entry has nothing left to forget: its source would
/// have found a full budget again anyway.
pub const SSDP_RATE_SOURCE_IDLE: Duration = Duration::from_secs(10);
/// Reply bytes one interface sends per second in answer to searches, all sources together:
/// the most a reflection through this device can send from one interface, however many
/// source addresses it forges.
///
/// Sized for the largest answer a control point legitimately asks for. A host with 1,000
/// domains has about 3,000 targets, so its `ssdp:all` answer is about 1.1 MB. At 768 KiB a
/// second, with [`SSDP_REPLY_BURST`] of it sent at once and the rest paced, waiting at most
/// [`SSDP_REPLY_MAX_WAIT`] (2.25 MiB admitted ahead of the pace), two control points searching
/// at the same instant are answered in full within about 2 s, and a third searching two seconds
/// later too, within about 4 s. That is 6 Mbit/s, negligible on a management network, and it bounds
/// a flood's answer whatever its search targets and source addresses: a flood of t seconds
/// gets at most 768 KiB × (t + 3 s) back (the burst and the longest wait), 6 MiB for 5 s,
/// which is 6.3 times what 2,000 searches a second of 100 bytes send in that time
/// (`tests/benches/hostile.sh` measures 5.1 for `ssdp:all` from 1,000 sources).
///
/// How many replies may wait at once grows with the device's targets (see the engine's
/// `SSDP_ANSWERS_QUEUED`), so that with many domains this budget, not the queue, is what
/// limits simultaneous answers.
pub const SSDP_REPLY_BYTES_PER_SECOND: u64 = 768 * 1024;
/// Reply bytes an interface sends without pacing: this long at [`SSDP_REPLY_BYTES_PER_SECOND`].
pub const SSDP_REPLY_BURST: Duration = Duration::from_secs(1);
/// Longest a reply waits for its interface's pace past its own delay; a reply that would
/// wait longer is not sent.
pub const SSDP_REPLY_MAX_WAIT: Duration = Duration::from_secs(2);
/// One source's share of an interface's reply bytes: [`SSDP_REPLY_BYTES_PER_SECOND`] divided
/// by this.
pub const SSDP_SOURCE_SHARE: u64 = 4;
/// What one source may take at once: this long at its share (1.5 MiB, a full `ssdp:all` answer
/// of a host with about 1,400 domains).
pub const SSDP_SOURCE_BURST: Duration = Duration::from_secs(8);
/// Replies per source (and for the overflow) per [`SSDP_RATE_WINDOW`] sent whatever the reply
/// paces and the reply queue say.
pub const SSDP_PRIORITY_REPLIES: u32 = 4;

const _: () = assert!(SSDP_RATE_SOURCE_IDLE.as_secs() > SSDP_SOURCE_BURST.as_secs());

/// Why a search gets no reply at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The search came from a source without an entry of its own, sharing the overflow.
    pub shared: bool,
    /// The first refusal of this source (or of the overflow) in this window: worth a log line.
    pub first: bool,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.shared {
            write!(
                f,
                "over the {SSDP_SEARCHES_PER_SOURCE} searches a second that sources beyond the \
                 {SSDP_RATE_SOURCES} with a budget of their own share"
            )
        } else {
            write!(f, "over its {SSDP_SEARCHES_PER_SOURCE} searches a second")
        }
    }
}

/// Why a search's answer stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// The reply queue is full ([`SSDP_MAX_PENDING_REPLIES`](crate::consts::SSDP_MAX_PENDING_REPLIES), or more for a device with
    /// many targets).
    Queue,
    /// The source (or the overflow) has taken its share.
    Source,
    /// The interface's reply bytes are spent for the next [`SSDP_REPLY_MAX_WAIT`].
    Interface,
}

impl fmt::Display for Cut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cut::Queue => "the reply queue is full",
            Cut::Source => "the source has taken its share of reply bytes",
            Cut::Interface => "the interface's reply bytes are spent",
        })
    }
}

/// One source's (or the overflow's) use of an interface.
#[derive(Debug, Clone, Copy)]
struct Source {
    address: Ipv4Addr,
    last_search: Instant,
    /// Start of the current [`SSDP_RATE_WINDOW`].
    window_start: Instant,
    /// Searches answered in the window.
    searches: u32,
    /// Priority replies sent in the window.
    priority: u32,
    /// When everything this source was sent would have left at its share's rate (the
    /// theoretical arrival time of a GCRA): it may be sent more while this is less than
    /// [`SSDP_SOURCE_BURST`] ahead of now.
    pace: Instant,
    /// Whether a refusal or a cut of this window was reported as first.
    noticed: bool,
}

impl Source {
    fn new(address: Ipv4Addr, now: Instant) -> Self {
        Source {
            address,
            last_search: now,
            window_start: now,
            searches: 0,
            priority: 0,
            pace: now,
            noticed: false,
        }
    }

    /// Starts a new window if the current one is over.
    fn roll(&mut self, now: Instant) {
        if now.saturating_duration_since(self.window_start) >= SSDP_RATE_WINDOW {
            self.window_start = now;
            self.searches = 0;
            self.priority = 0;
            self.noticed = false;
        }
    }

    /// True the first time in this window.
    fn notice(&mut self) -> bool {
        !std::mem::replace(&mut self.noticed, true)
    }
}

/// The search reply budget of one interface.
#[derive(Debug)]
pub struct ReplyBudget {
    /// Kernel index of the interface, for log lines.
    interface: u32,
    /// When everything the interface was given to send would have left at
    /// [`SSDP_REPLY_BYTES_PER_SECOND`] (`None`: nothing yet).
    pace: Option<Instant>,
    sources: heapless::Vec<Source, SSDP_RATE_SOURCES>,
    /// Shared by the sources the table has no room for.
    overflow: Option<Source>,
    /// Whether the table was full at the last new source (logged once per episode).
    full: bool,
    /// Whether the interface's bytes were spent at the last cut (logged once per episode).
    spent: bool,
}

/// Which budget a search is charged to.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Own(usize),
    Overflow,
}

impl ReplyBudget {
    /// An unused budget for the interface with kernel index `interface`.
    pub fn new(interface: u32) -> Self {
        ReplyBudget {
            interface,
            pace: None,
            sources: heapless::Vec::new(),
            overflow: None,
            full: false,
            spent: false,
        }
    }

    /// Takes one search from `address` at `now`: what its replies may have, or why it gets
    /// none.
    pub fn search(&mut self, now: Instant, address: Ipv4Addr) -> Result<Grant<'_>, Refused> {
        if self.pace.is_none_or(|pace| pace <= now) {
            self.spent = false;
        }
        let slot = self.slot(now, address);
        let source = self.source(slot, now);
        source.roll(now);
        source.last_search = now;
        if source.searches >= SSDP_SEARCHES_PER_SOURCE {
            return Err(Refused {
                shared: matches!(slot, Slot::Overflow),
                first: source.notice(),
            });
        }
        source.searches += 1;
        Ok(Grant {
            budget: self,
            slot,
            now,
            cut: None,
        })
    }

    /// The entry of `address`: its own, a free or idle one, or the overflow.
    fn slot(&mut self, now: Instant, address: Ipv4Addr) -> Slot {
        if let Some(at) = self.sources.iter().position(|s| s.address == address) {
            return Slot::Own(at);
        }
        let fresh = Source::new(address, now);
        if self.sources.push(fresh).is_ok() {
            self.full = false;
            return Slot::Own(self.sources.len() - 1);
        }
        let idle = self
            .sources
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| now.saturating_duration_since(s.last_search) >= SSDP_RATE_SOURCE_IDLE)
            .min_by_key(|(_, s)| s.last_search);
        if let Some((at, entry)) = idle {
            *entry = fresh;
            self.full = false;
            return Slot::Own(at);
        }
        if !std::mem::replace(&mut self.full, true) {
            log::info!(
                "ssdp: {SSDP_RATE_SOURCES} sources searched on interface {} in the last {} s; \
                 new ones share one budget",
                self.interface,
                SSDP_RATE_SOURCE_IDLE.as_secs()
            );
        }
        Slot::Overflow
    }

    fn source(&mut self, slot: Slot, now: Instant) -> &mut Source {
        match slot {
            Slot::Own(at) if at < self.sources.len() => &mut self.sources[at],
            _ => self
                .overflow
                .get_or_insert_with(|| Source::new(Ipv4Addr::UNSPECIFIED, now)),
        }
    }
}

/// The replies one search may have, one at a time, from [`ReplyBudget::search`].
#[derive(Debug)]
pub struct Grant<'b> {
    budget: &'b mut ReplyBudget,
    slot: Slot,
    now: Instant,
    cut: Option<Cut>,
}

impl Grant<'_> {
    /// Whether one more reply of `bytes` bytes may be sent while `pending` replies wait in a
    /// queue that holds `max_pending` (the engine sizes it to its targets: at least
    /// [`SSDP_MAX_PENDING_REPLIES`](crate::consts::SSDP_MAX_PENDING_REPLIES)), and when at the earliest (`now` unless the interface's
    /// pace defers it). `None` once the answer has been cut: every later reply of the search
    /// is refused too, so an answer is always a prefix (the root device's replies come
    /// first).
    pub fn reply(&mut self, bytes: usize, pending: usize, max_pending: usize) -> Option<Instant> {
        if self.cut.is_some() {
            return None;
        }
        let now = self.now;
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        let interface = self.budget.pace.unwrap_or(now).max(now);
        let source = self.budget.source(self.slot, now);
        let own = source.pace.max(now);
        let priority = source.priority < SSDP_PRIORITY_REPLIES;
        let cut = if priority {
            None
        } else if pending >= max_pending {
            Some(Cut::Queue)
        } else if own.saturating_duration_since(now) > SSDP_SOURCE_BURST {
            Some(Cut::Source)
        } else if interface.saturating_duration_since(now) > SSDP_REPLY_BURST + SSDP_REPLY_MAX_WAIT
        {
            Some(Cut::Interface)
        } else {
            None
        };
        if let Some(cut) = cut {
            self.cut = Some(cut);
            return None;
        }
        if priority {
            source.priority += 1;
        }
        source.pace = later(own, transmission(bytes, source_rate()));
        self.budget.pace = Some(later(
            interface,
            transmission(bytes, SSDP_REPLY_BYTES_PER_SECOND),
        ));
        let earliest = interface.checked_sub(SSDP_REPLY_BURST).unwrap_or(now);
        Some(if priority { now } else { earliest.max(now) })
    }

    /// Why the answer stopped short, if it did, and whether that is the first such news of
    /// this source in this window (worth a log line). The first time the interface's bytes
    /// run out after they were not, an info line says so.
    pub fn cut(&mut self) -> Option<(Cut, bool)> {
        let cut = self.cut?;
        let spent = cut == Cut::Interface;
        if spent && !std::mem::replace(&mut self.budget.spent, true) {
            log::info!(
                "ssdp: interface {} has sent its {} reply bytes a second; answering searches \
                 in part",
                self.budget.interface,
                SSDP_REPLY_BYTES_PER_SECOND
            );
        }
        let first = self.budget.source(self.slot, self.now).notice();
        Some((cut, first))
    }

    /// Whether the search was charged to the overflow (its source has no entry of its own).
    pub fn shared(&self) -> bool {
        matches!(self.slot, Slot::Overflow)
    }
}

/// One source's rate: its share of the interface's.
const fn source_rate() -> u64 {
    SSDP_REPLY_BYTES_PER_SECOND / SSDP_SOURCE_SHARE
}

/// How long `bytes` take at `rate` bytes a second.
fn transmission(bytes: u64, rate: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::SSDP_MAX_PENDING_REPLIES;

    const ONE: Ipv4Addr = Ipv4Addr::new(10, 20, 0, 50);
    /// A reply's size in these tests, about what xenplug's are.
    const REPLY: usize = 400;

    fn host(n: usize) -> Ipv4Addr {
        let [_, _, high, low] = u32::try_from(n).unwrap().to_be_bytes();
        Ipv4Addr::new(10, 20, high, low)
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// Asks for `wanted` replies of `REPLY` bytes from `address`: how many it got (`None` when
    /// the search itself is refused) and the latest time any may be sent.
    fn ask(
        budget: &mut ReplyBudget,
        now: Instant,
        address: Ipv4Addr,
        wanted: usize,
    ) -> Option<(usize, Instant)> {
        let mut grant = budget.search(now, address).ok()?;
        let mut latest = now;
        let mut got = 0;
        for _ in 0..wanted {
            let Some(at) = grant.reply(REPLY, 0, SSDP_MAX_PENDING_REPLIES) else {
                break;
            };
            assert!(at >= now);
            latest = latest.max(at);
            got += 1;
        }
        Some((got, latest))
    }

    #[test]
    fn searches_are_counted_per_source_and_second() {
        let now = Instant::now();
        let mut budget = ReplyBudget::new(5);
        for _ in 0..SSDP_SEARCHES_PER_SOURCE {
            assert_eq!(ask(&mut budget, now, ONE, 1).map(|(got, _)| got), Some(1));
        }
        let refused = budget.search(now, ONE).err();
        assert_eq!(
            refused,
            Some(Refused {
                shared: false,
                first: true
            })
        );
        assert_eq!(budget.search(now, ONE).err().map(|r| r.first), Some(false));
        assert!(
            ask(&mut budget, now, host(7), 1).is_some(),
            "its own budget"
        );
        assert!(ask(&mut budget, now + SSDP_RATE_WINDOW, ONE, 1).is_some());
    }

    #[test]
    fn a_full_table_makes_new_sources_share_one_budget() {
        let now = Instant::now();
        let mut budget = ReplyBudget::new(5);
        for n in 0..SSDP_RATE_SOURCES {
            assert!(!budget.search(now, host(n)).unwrap().shared());
        }
        // A thousand more addresses, one search each: together they get what one source
        // gets, however many they are.
        let shared = (SSDP_RATE_SOURCES..SSDP_RATE_SOURCES + 1000)
            .filter(|&n| budget.search(now, host(n)).is_ok())
            .count();
        assert_eq!(shared, SSDP_SEARCHES_PER_SOURCE as usize);
        let refused = budget.search(now, host(5000)).unwrap_err();
        assert!(refused.shared && !refused.first);
        // Sources with an entry keep their own budgets meanwhile.
        assert!(!budget.search(now, host(0)).unwrap().shared());
        // While every entry's source searched in the last SSDP_RATE_SOURCE_IDLE, a new
        // source still shares, even in a later window.
        let soon = now + SSDP_RATE_SOURCE_IDLE - ms(1);
        assert!(budget.search(soon, host(6000)).unwrap().shared());
        // Once one has been silent that long, its entry goes to the next new source.
        for n in 1..SSDP_RATE_SOURCES {
            assert!(!budget.search(soon, host(n)).unwrap().shared());
        }
        let idle = now + SSDP_RATE_SOURCE_IDLE;
        assert!(!budget.search(idle, host(7000)).unwrap().shared());
        assert!(budget.search(idle, host(7001)).unwrap().shared());
        assert!(!budget.search(idle, host(1)).unwrap().shared());
    }

    #[test]
    fn rotation_gains_nothing_over_the_table() {
        // 1,000 addresses in turn, 2,000 searches a second for 5 s: only the table's entries
        // and the overflow get searches answered, each at most its own count a second.
        let start = Instant::now();
        let mut budget = ReplyBudget::new(5);
        let mut answered = 0;
        for k in 0..10_000 {
            let now = start + Duration::from_micros(500 * k as u64);
            if budget.search(now, host(k % 1000)).is_ok() {
                answered += 1;
            }
        }
        let bound = (SSDP_RATE_SOURCES + 1) * SSDP_SEARCHES_PER_SOURCE as usize * 5;
        assert!(answered <= bound, "{answered} > {bound}");
    }

    #[test]
    fn an_interface_sends_at_most_its_rate_and_one_backlog() {
        // Many sources, each asking for a lot: what is admitted up to any instant stays
        // within the pace plus what may wait, and nothing waits longer than allowed.
        let start = Instant::now();
        let mut budget = ReplyBudget::new(5);
        let mut admitted = 0usize;
        for step in 0..200u64 {
            let now = start + ms(50 * step);
            let address = host(usize::try_from(step).unwrap() % SSDP_RATE_SOURCES);
            if let Some((got, latest)) = ask(&mut budget, now, address, 1000) {
                admitted += got * REPLY;
                assert!(latest <= now + SSDP_REPLY_MAX_WAIT + ms(1), "{step}");
            }
            let elapsed = now - start + SSDP_REPLY_BURST + SSDP_REPLY_MAX_WAIT;
            let rate = SSDP_REPLY_BYTES_PER_SECOND as f64;
            let priority = (step as usize + 1) * SSDP_PRIORITY_REPLIES as usize * REPLY;
            let bound = (elapsed.as_secs_f64() * rate) as usize + priority + REPLY;
            assert!(admitted <= bound, "{step}: {admitted} > {bound}");
        }
        // 10 s at the rate, and most of the backlog: the pace was really used.
        assert!(admitted as f64 > 11.0 * SSDP_REPLY_BYTES_PER_SECOND as f64);
    }

    #[test]
    fn one_source_takes_at_most_its_share() {
        let start = Instant::now();
        let mut budget = ReplyBudget::new(5);
        let mut admitted = 0usize;
        let seconds = 20u64;
        for step in 0..seconds * 10 {
            let now = start + ms(100 * step);
            if let Some((got, _)) = ask(&mut budget, now, ONE, 1000) {
                admitted += got * REPLY;
            }
        }
        let share = SSDP_REPLY_BYTES_PER_SECOND / SSDP_SOURCE_SHARE;
        let bound = share * (seconds + SSDP_SOURCE_BURST.as_secs()) + 2 * REPLY as u64;
        let priority = seconds * u64::from(SSDP_PRIORITY_REPLIES) * REPLY as u64;
        assert!(admitted as u64 <= bound + priority, "{admitted} > {bound}");
        // Another source is answered in full meanwhile.
        let now = start + Duration::from_secs(seconds);
        assert_eq!(
            ask(&mut budget, now, host(9), 100).map(|(got, _)| got),
            Some(100)
        );
    }

    #[test]
    fn priority_replies_go_out_whatever_the_flood_and_answers_are_prefixes() {
        let now = Instant::now();
        let mut budget = ReplyBudget::new(5);
        // Others spend the interface's bytes.
        for n in 1..20 {
            ask(&mut budget, now, host(n), 10_000);
        }
        let mut grant = budget.search(now, ONE).unwrap();
        for _ in 0..SSDP_PRIORITY_REPLIES {
            assert_eq!(
                grant.reply(REPLY, SSDP_MAX_PENDING_REPLIES, SSDP_MAX_PENDING_REPLIES),
                Some(now)
            );
        }
        assert_eq!(grant.reply(REPLY, 0, SSDP_MAX_PENDING_REPLIES), None);
        assert_eq!(grant.cut(), Some((Cut::Interface, true)));
        // Cut once, cut for good: an answer is a prefix of the targets.
        assert_eq!(grant.reply(1, 0, SSDP_MAX_PENDING_REPLIES), None);
        // The same in the next window, with nothing pending: priority again.
        let next = now + SSDP_RATE_WINDOW;
        let mut grant = budget.search(next, ONE).unwrap();
        assert_eq!(grant.reply(REPLY, 0, SSDP_MAX_PENDING_REPLIES), Some(next));
    }

    #[test]
    fn the_reply_queue_bound_applies_past_priority() {
        let now = Instant::now();
        let mut budget = ReplyBudget::new(5);
        let mut grant = budget.search(now, ONE).unwrap();
        let full = SSDP_MAX_PENDING_REPLIES;
        for _ in 0..SSDP_PRIORITY_REPLIES {
            assert!(grant.reply(REPLY, full, SSDP_MAX_PENDING_REPLIES).is_some());
        }
        assert!(grant.reply(REPLY, full, SSDP_MAX_PENDING_REPLIES).is_none());
        assert_eq!(grant.cut(), Some((Cut::Queue, true)));
        let mut grant = budget.search(now, ONE).unwrap();
        assert!(grant
            .reply(REPLY, full - 1, SSDP_MAX_PENDING_REPLIES)
            .is_some());
        assert_eq!(grant.cut(), None);
    }

    #[test]
    fn transmission_times() {
        let rate = SSDP_REPLY_BYTES_PER_SECOND;
        assert_eq!(transmission(rate, rate), Duration::from_secs(1));
        assert_eq!(transmission(0, rate), Duration::ZERO);
        assert_eq!(transmission(u64::MAX, 1), Duration::from_nanos(u64::MAX));
        assert_eq!(transmission(5, 0), Duration::from_secs(5));
    }
}
