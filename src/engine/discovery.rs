//! Engine layer: the control point side of SSDP (UDA 1.1 sections 1.2-1.3) for the tracker.
//! Turns NOTIFYs and search responses heard on several labelled networks into a table of
//! devices per network and tells the net layer which descriptions to fetch. State only: time
//! comes in as `now`, searches go out through `dispatch`; no sockets, no clock, no name
//! resolution, and no allocation per datagram beyond the table updates the datagram causes.
//!
//! # What is trusted
//!
//! - A datagram counts only when its source is inside the subnet of the network it arrived on
//!   ([`Network::subnet`]); anything else is logged at debug and dropped, so a tracker is never
//!   fed from elsewhere.
//! - LOCATION must be `http://<literal IPv4>[:port][/path]` whose address equals the
//!   datagram's source (DESIGN security model: fetch a LOCATION only when its host equals the
//!   datagram's source). No name is ever resolved. A message failing this is dropped whole:
//!   it neither creates nor refreshes an entry. This stops a datagram from pointing the
//!   tracker's fetches at a third host; it cannot stop a host of the subnet from claiming
//!   another device's UDN with its own address (SSDP has no authentication): the claim moves
//!   the entry (`Refetch { Moved }`) until the real device speaks again.
//! - Search responses are accepted only while a search of ours on that network is recent:
//!   from its first send until MX + `DISCOVERY_RESPONSE_GRACE` after its last one.
//!   Unsolicited responses are dropped.
//! - ssdp:byebye carries no LOCATION, so nothing ties it to an address we checked. It is
//!   accepted only from the address the device last advertised from (the one its LOCATION
//!   was checked against), and forging it needs only a spoofed UDP source inside the
//!   subnet, weaker than forging an alive (whose LOCATION must then also serve a
//!   description over TCP). So a byebye removes nothing described before it is verified
//!   (see *Byebye* below).
//!
//! # The table
//!
//! Each network has a table of devices keyed by UDN, the `uuid:...` part of the USN (before
//! `::`). Every message about a UDN (its `upnp:rootdevice`, `uuid:`, device type and service
//! type targets) refreshes the same entry; the entry expires `max-age` seconds after the
//! latest of them, max-age clamped to `[min_max_age, max_max_age]` (a message without
//! max-age counts as `min_max_age`).
//!
//! Quotas are per source address, so no single host can fill a table and blind the tracker:
//! - an address holds at most `max_devices_per_source` entries (a hypervisor advertises its
//!   root and one Domain UDN per VM from one address); its further new UDNs, or UDNs moving
//!   to it, are dropped;
//! - a table holds at most `max_devices` entries. When it is full, a new UDN from an address
//!   holding `n` entries makes the address holding the most give way, if that one holds at
//!   least `2 (n + 1)`: up to `DISCOVERY_EVICT_BATCH` (64) of its entries go
//!   (`Gone { Evicted }`), undescribed ones first (never fetched successfully: nothing in
//!   the repositories rests on them), then embedded ones, the soonest to expire first.
//!   Otherwise the new UDN is dropped. The factor 2 stops addresses at their quota from
//!   evicting each other at every datagram.
//!
//! Each refusal and eviction is logged once per source address, never per datagram. Maps
//! shrink as they empty, so the memory a flood took is given back once its entries expire.
//!
//! # Searches
//!
//! [`Discovery::search`] sends `ssdp:all` (at start, and when an interface comes back). Then,
//! per network:
//! - every [`Config::search_every`] without another multicast search, a search for
//!   `upnp:rootdevice`: one answer per root device, carrying its BOOTID and CONFIGID, so a
//!   device whose announcements were all lost is found, and a change it announced is
//!   noticed, within that time;
//! - when the net layer reports datagrams dropped on the network's sockets
//!   ([`Discovery::on_overflow`]: a full receive buffer), the same search
//!   `DISCOVERY_OVERFLOW_DELAY` (2 s) later, once the burst is over: whatever the lost
//!   datagrams announced is asked for again. While drops go on, such searches are spaced out,
//!   doubling from `DISCOVERY_OVERFLOW_DELAY` up to `DISCOVERY_OVERFLOW_BACKOFF_MAX` (64 s), so
//!   answers that themselves overflow cannot start a storm.
//!
//! # Fetches
//!
//! Every change that needs a description (`Appeared`, `Refetch`) and every byebye that needs
//! a check queues a fetch of that LOCATION in [`Fetches`] (one waiting per LOCATION, one
//! running per address, a bounded number at once, backoff for devices that do not answer:
//! see [`crate::engine::fetches`]). The net layer takes them with
//! [`Discovery::take_fetches`], performs them, and reports each with
//! [`Discovery::on_fetched`]: the UDNs the description lists, or that it failed. An entry a
//! successful fetch listed is *described*.
//!
//! # Byebye
//!
//! UDA 1.1 section 1.2.3: a device leaving sends one byebye per target, and each UDN goes when
//! its own arrives or expires. A byebye for an entry that is not described, at a LOCATION
//! whose description was never read, removes it at once (`Gone { ByeBye }`); when it was the last entry of its LOCATION, a search for that UDN
//! alone is queued (ST `uuid:...`, sent twice like every search, at most
//! `DISCOVERY_MAX_PENDING_SEARCHES` sends waiting per network), so a device that is still
//! there comes back as `Appeared` within MX seconds.
//!
//! A byebye for a described entry (or one heard at its LOCATION after a description was
//! read there, which may list it) marks it *leaving* and starts a verification of its
//! LOCATION, unless one is running: a fetch of the description (as a verification, ahead of
//! other fetches) and a unicast M-SEARCH for the LOCATION's owner to the source address
//! (UDA 1.1 section 1.3.2: answered at once, no MX). Then:
//! - the fetch fails: every leaving entry there is gone (a device shutting down stops
//!   answering; this is the prompt path for xenplug's own devices);
//! - the description no longer lists a leaving entry: that entry is gone (an embedded device
//!   leaving a tree that stays);
//! - the description lists it and the device answered the search (a search response, or an
//!   alive from any UDN at that LOCATION, after the verification began): the device is alive
//!   and the byebye forged; the leaving entries are kept and the byebye logged once per
//!   LOCATION as suspicious;
//! - no answer within `DISCOVERY_VERIFY_WAIT` (1.5 s) of the verification's start: gone (a stack
//!   that still serves its description for a moment after its byebyes, as GUPnP does, has
//!   stopped answering searches);
//! - when the search could not be queued (`DISCOVERY_MAX_PROBES`, 256 sends, waiting), the
//!   listing alone decides.
//!
//! Each entry that begins leaving during a verification asks for one more fetch: only a
//! fetch that began after its byebye decides whether it is still described. After a
//! verification found the device alive, the next one starts no earlier than
//! `DISCOVERY_VERIFY_BACKOFF` (1 s) later, doubled for each further forged byebye up to
//! `DISCOVERY_VERIFY_BACKOFF_MAX` (8 s): forged byebyes cost the device at most one description
//! fetch and one search per period.
//!
//! # One fetch per LOCATION
//!
//! A root device and its embedded devices share one description, so one LOCATION. Besides
//! the entries, each table keeps a map LOCATION -> group: the entries currently at that
//! LOCATION (counted), the BOOTID and CONFIGID last heard for it, and its *owner*, the UDN
//! every change about that LOCATION is reported under:
//! - the owner is the UDN that advertised `upnp:rootdevice` (NT or ST) at that LOCATION when
//!   one has, else the first UDN heard there; a root heard later takes over silently;
//! - when the owner leaves (gone, expired, moved), a remaining entry takes over, a root
//!   first, else the smallest UDN; the group ends with its last entry.
//!
//! Changes are decided per group, not per UDN, so one event in a device tree gives one
//! change however many of its UDNs repeat it:
//! - a UDN heard at a LOCATION with no group: `Appeared` (a new UDN) or `Refetch` (a UDN that
//!   moved there: `Rebooted` / `Reconfigured` when its BOOTID / CONFIGID also differ from its
//!   old group's, else `Moved`);
//! - a UDN heard at an existing group's LOCATION whose BOOTID differs from the group's:
//!   `Refetch { Rebooted }`; else whose CONFIGID differs: `Refetch { Reconfigured }`; else
//!   nothing (a new embedded device with the same CONFIGID is already in the description the
//!   net layer fetched). A missing BOOTID or CONFIGID (UDA 1.0 devices) never counts as a
//!   difference. Any difference counts, also a smaller value: a spurious fetch costs one GET,
//!   a missed one leaves the repository stale.
//! - ssdp:byebye: `Gone { ByeBye }` for that UDN alone, at once or once verified (see
//!   *Byebye*). A byebye whose CONFIGID differs from its group's is an embedded device
//!   leaving a tree that stays: `Refetch { Reconfigured }` for the group as well.
//! - ssdp:update with NEXTBOOTID (UDA 1.1 section 1.2.4): the new BOOTID is recorded without
//!   a fetch, so the alive messages that follow with it do not look like a reboot. An update
//!   whose BOOTID is neither the one we know nor the next one means we missed a reboot:
//!   `Refetch { Rebooted }`; else a CONFIGID that differs: `Refetch { Reconfigured }`. An
//!   update refreshes no expiry (it has no max-age) and is ignored for an unknown UDN or one
//!   it names another LOCATION for.
//!
//! Fetches are keyed by (network, LOCATION); the UDN in a change or a fetch is the group's
//! owner at the time, which may change from an embedded UDN to the root's.

use super::fetches::{self, Fetches, Job, Outcome, Purpose, Undescribed};
use super::{later, shrink, ssdp_repeat_delay, Interner};
use crate::subnet::Subnet;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::consts::{
    DISCOVERY_MAX_LOCATION, SSDP_EMIT_BUFFER, SSDP_HOST, SSDP_MAN_DISCOVER, SSDP_MX_MAX,
    SSDP_MX_MIN, SSDP_NT_ROOT_DEVICE, SSDP_PORT, SSDP_ST_ALL, SSDP_V4_GROUP, UDN_PREFIX,
    URN_KIND_DEVICE, URN_PREFIX,
};
use crate::wire::ssdp::{self as wire_ssdp, Message, NotifyKind, Search};
use crate::wire::Cursor;

/// Search responses are accepted until MX plus this long after the last send of a search:
/// responders wait up to MX, the network adds a little.
const DISCOVERY_RESPONSE_GRACE: Duration = Duration::from_secs(2);
/// Every search is sent this many times (UDP is lossy), the repeat [`SSDP_REPEAT_MIN`] to
/// [`SSDP_REPEAT_MAX`] after the first.
const DISCOVERY_SEARCH_SENDS: usize = 2;
/// Search sends waiting per network, at most: the confirmation searches queued after a
/// byebye are dropped beyond it (an `ssdp:all` search asked by the caller always fits).
const DISCOVERY_MAX_PENDING_SEARCHES: usize = 8;
/// Unicast searches (verifying a byebye) waiting per network, at most; a verification whose
/// search does not fit is decided by its description fetch alone.
const DISCOVERY_MAX_PROBES: usize = 256;
/// How long after a verification begins an answer from the device is waited for: xenplug
/// and GUPnP answer a unicast search at once (UDA 1.1 section 1.3.2: no MX), the second send
/// leaves 100-200 ms later, and a loaded host adds a little.
const DISCOVERY_VERIFY_WAIT: Duration = Duration::from_millis(1500);
/// Pause before the next verification of a LOCATION after one found the device alive.
const DISCOVERY_VERIFY_BACKOFF: Duration = Duration::from_secs(1);
/// Longest such pause: a real shutdown during a flood of forged byebyes is noticed at most
/// this much later.
const DISCOVERY_VERIFY_BACKOFF_MAX: Duration = Duration::from_secs(8);
/// Entries one eviction removes from the address holding the most, at most: one scan of the
/// table makes room for several newcomers.
const DISCOVERY_EVICT_BATCH: usize = 64;
/// Source addresses whose refusal (table full, nothing to evict) is remembered to log it only
/// once; beyond it, further refused addresses are not logged until the table has room.
const DISCOVERY_MAX_REFUSED_LOGGED: usize = 256;
/// Length in bytes of a UDN kept, at most (a `uuid:` and 36 characters is 41).
const DISCOVERY_MAX_UDN: usize = 128;
/// Length in bytes of a device type kept, at most.
const DISCOVERY_MAX_DEVICE_TYPE: usize = 256;
/// Delay between datagrams dropped on a network and the search that asks again: the burst
/// that overflowed is over by then.
const DISCOVERY_OVERFLOW_DELAY: Duration = Duration::from_secs(2);
/// Longest pause between searches asked for by dropped datagrams while drops go on.
const DISCOVERY_OVERFLOW_BACKOFF_MAX: Duration = Duration::from_secs(64);

/// One network the tracker listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The caller's label for it, echoed in every change and every `dispatch`.
    pub id: u32,
    /// Kernel interface index.
    pub interface: u32,
    /// Our address on it.
    pub address: Ipv4Addr,
    /// Its subnet: datagrams from outside it are dropped.
    pub subnet: Subnet,
}

/// How the tracker searches and how much it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// USER-AGENT header of our searches (`OS/version UPnP/1.1 product/version`).
    pub user_agent: String,
    /// MX header of our searches, clamped to 1..5 (UDA 1.1 section 1.3.2).
    pub search_mx: u32,
    /// Devices (UDNs) kept per network, at most.
    pub max_devices: usize,
    /// Devices (UDNs) kept per network for one source address, at most.
    pub max_devices_per_source: usize,
    /// Shortest life granted to a device, in seconds: a smaller max-age is raised to it.
    pub min_max_age: u32,
    /// Longest life granted to a device, in seconds (raised to `min_max_age` if lower).
    pub max_max_age: u32,
    /// The description fetch queue's bounds.
    pub fetches: fetches::Config,
    /// How long a network goes without a multicast search of ours before one for root
    /// devices is sent.
    pub search_every: Duration,
}

/// Why a known description must be fetched again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefetchReason {
    /// BOOTID.UPNP.ORG changed: the device (re)joined the network.
    Rebooted,
    /// CONFIGID.UPNP.ORG changed: its description or an SCPD changed.
    Reconfigured,
    /// LOCATION changed.
    Moved,
}

/// Why a device left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    /// It said ssdp:byebye.
    ByeBye,
    /// Its max-age elapsed without a word from it.
    Expired,
    /// It gave way to a device from another address in a full table.
    Evicted,
}

/// What changed in the tables, drained by [`Discovery::take_changes`]. `Gone` is for the net
/// layer to act on; the fetches `Appeared` and `Refetch` ask for are already queued (see
/// [`Discovery::take_fetches`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A description not known before: `location` is to be fetched.
    Appeared {
        /// Network id.
        network: u32,
        /// The owner of the LOCATION: the root's UDN when known, else the first UDN heard.
        udn: String,
        /// LOCATION header (its host is `source`).
        location: String,
        /// Address the advertisement came from.
        source: Ipv4Addr,
        /// BOOTID.UPNP.ORG header.
        boot_id: Option<u32>,
        /// CONFIGID.UPNP.ORG header.
        config_id: Option<u32>,
    },
    /// A known description changed or moved: `location` is to be fetched again.
    Refetch {
        /// Network id.
        network: u32,
        /// The owner of the LOCATION (see [`Change::Appeared`]).
        udn: String,
        /// LOCATION header (its host is `source`).
        location: String,
        /// Address the advertisement came from.
        source: Ipv4Addr,
        /// BOOTID.UPNP.ORG now known.
        boot_id: Option<u32>,
        /// CONFIGID.UPNP.ORG now known.
        config_id: Option<u32>,
        /// What changed.
        reason: RefetchReason,
    },
    /// One device (UDN) left the table.
    Gone {
        /// Network id.
        network: u32,
        /// Its UDN.
        udn: String,
        /// Why.
        reason: GoneReason,
    },
}

/// One device (root or embedded) as last heard; its UDN is its key in the table. Text that
/// the devices of a tree repeat (their LOCATION, their device type) is shared, not copied:
/// at fleet size these entries are a third of what the tracker holds per VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// LOCATION of its root description.
    pub location: Arc<str>,
    /// Address it advertises from (equal to LOCATION's host).
    pub source: Ipv4Addr,
    /// BOOTID.UPNP.ORG last heard from it (or announced by ssdp:update).
    pub boot_id: Option<u32>,
    /// CONFIGID.UPNP.ORG last heard from it.
    pub config_id: Option<u32>,
    /// When it is forgotten unless heard again.
    pub expires: Instant,
    /// Its own device type, from an NT / ST `urn:<domain>:device:<type>:<v>` under its UDN.
    pub device_type: Option<Arc<str>>,
    /// Whether it advertised `upnp:rootdevice`.
    pub root: bool,
    /// Whether the latest successful fetch of its LOCATION listed it.
    pub described: bool,
    /// Whether it said ssdp:byebye and is being verified (see the module documentation).
    pub leaving: bool,
}

/// A description fetch to perform, from [`Discovery::take_fetches`]; report how it ended
/// with [`Discovery::on_fetched`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchJob {
    /// Network id.
    pub network: u32,
    /// The owner of the LOCATION now (see [`Change::Appeared`]).
    pub udn: String,
    /// LOCATION to fetch (its host is `source`).
    pub location: String,
    /// Address the devices there advertise from.
    pub source: Ipv4Addr,
    /// BOOTID.UPNP.ORG now known for the LOCATION.
    pub boot_id: Option<u32>,
    /// Whether the description is for the inventory (else the fetch only verifies).
    pub describe: bool,
    /// With `describe`: asked because the BOOTID changed.
    pub rebooted: bool,
    /// Whether it verifies a byebye.
    pub verify: bool,
    job: Job,
    /// When it was handed out.
    started: Instant,
}

/// How a fetch ended, for [`Discovery::on_fetched`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fetched<'a> {
    /// The description was read; these are the UDNs of its devices (root and embedded).
    Listed(&'a [&'a str]),
    /// No answer, an error status, or no usable description.
    Failed,
}

/// The tracker's discovery engine: one device table per network, searches to send, changes
/// for the net layer.
pub struct Discovery {
    config: Config,
    /// MX header value of our searches.
    max_wait: String,
    /// How long responses are accepted after a search is sent.
    window: Duration,
    rng: fastrand::Rng,
    tables: Vec<Table>,
    changes: Vec<Change>,
    fetches: Fetches,
}

/// The state of one network.
struct Table {
    network: Network,
    /// Entries kept, at most ([`Config::max_devices`]).
    max_devices: usize,
    /// UDN -> device.
    devices: HashMap<String, Seen>,
    /// LOCATION -> the devices described there (see the module documentation); the key is
    /// the copy of the LOCATION its devices share.
    groups: HashMap<Arc<str>, Group>,
    /// The device types its entries share.
    types: Interner,
    /// Search sends waiting for their time.
    searches: Vec<PendingSearch>,
    /// Search responses are accepted until then.
    responses_until: Option<Instant>,
    /// Source address -> what it holds.
    sources: HashMap<Ipv4Addr, Holding>,
    /// Addresses whose new devices were refused in the full table, logged once each, since
    /// the table last had room.
    refused: HashSet<Ipv4Addr>,
    /// No entry expires before then (a lower bound: refreshes only postpone expiries).
    next_expiry: Option<Instant>,
    /// Ends of running verifications: (until, LOCATION).
    deadlines: BTreeSet<(Instant, String)>,
    /// Fetch requests and cancellations for [`Discovery`] to pass on.
    work: Vec<Work>,
    /// When the next periodic search for root devices is due (set by the first search).
    next_periodic: Option<Instant>,
    /// Searches asked for by dropped datagrams: the next one is sent no earlier, and how
    /// long the one after waits.
    overflow_after: Option<Instant>,
    overflow_backoff: Duration,
}

/// What one source address holds in a table.
#[derive(Debug, Default)]
struct Holding {
    /// Entries advertised from it.
    devices: usize,
    /// Whether its refusal at its quota was logged.
    refused_logged: bool,
    /// Whether an eviction of its entries was logged.
    evicted_logged: bool,
}

/// What a table asks of the fetch queue.
#[derive(Debug)]
enum Work {
    /// Fetch LOCATION for the inventory.
    Describe {
        location: String,
        source: Ipv4Addr,
        rebooted: bool,
    },
    /// Fetch LOCATION to verify a byebye, from `at` on.
    Verify {
        location: String,
        source: Ipv4Addr,
        at: Instant,
    },
    /// LOCATION has no entry left.
    Cancel { location: String },
}

/// A running verification of one LOCATION (see the module documentation).
#[derive(Debug, Clone, Copy)]
struct Verification {
    /// When it began (its fetch and search are due then).
    start: Instant,
    /// Until when an answer from the device is waited for.
    until: Instant,
    /// Whether the unicast search was queued.
    searched: bool,
    /// Whether the device answered (a search response or an alive after `start`).
    answered: bool,
    /// When the latest entry began leaving: only a fetch handed out since decides.
    latest: Instant,
    /// Whether a fetch for it has ended since the latest byebye: Some(true) read, Some(false)
    /// failed.
    fetched: Option<bool>,
}

/// The devices sharing one LOCATION: one description, one fetch.
#[derive(Debug)]
struct Group {
    /// UDN changes are reported under.
    owner: String,
    /// Whether `owner` advertised `upnp:rootdevice`.
    owner_is_root: bool,
    /// Entries at this LOCATION.
    members: usize,
    /// BOOTID last heard at this LOCATION.
    boot_id: Option<u32>,
    /// CONFIGID last heard at this LOCATION.
    config_id: Option<u32>,
    /// Device type of the root of its tree, when the root and its type have been heard here.
    /// A hint: the description is authoritative.
    root_device_type: Option<Arc<str>>,
    /// The byebye being verified, if any.
    verification: Option<Verification>,
    /// Verifications in a row that found the device alive.
    forged: u32,
    /// The next verification begins no earlier.
    verify_after: Option<Instant>,
    /// Whether a forged byebye was logged for this LOCATION.
    suspicious_logged: bool,
    /// Whether a fetch of this LOCATION succeeded: a device heard here after it is not yet
    /// marked described, but its byebye is verified all the same.
    fetched: bool,
}

impl Group {
    fn new(
        owner: &str,
        owner_is_root: bool,
        boot_id: Option<u32>,
        config_id: Option<u32>,
    ) -> Group {
        Group {
            owner: owner.to_owned(),
            owner_is_root,
            members: 1,
            boot_id,
            config_id,
            root_device_type: None,
            verification: None,
            forged: 0,
            verify_after: None,
            suspicious_logged: false,
            fetched: false,
        }
    }
}

/// One send of a search.
#[derive(Debug)]
struct PendingSearch {
    due: Instant,
    /// ST: `None` for `ssdp:all`, else `upnp:rootdevice` or one UDN.
    target: Option<String>,
    /// `None`: multicast; else unicast to this address (verifying a byebye).
    destination: Option<Ipv4Addr>,
}

/// What an alive NOTIFY and a search response both say about one target of a device,
/// checked (UDN well formed, LOCATION's host equal to the source).
struct Heard<'a> {
    udn: &'a str,
    /// NT of the NOTIFY, ST of the response.
    target: &'a str,
    location: &'a str,
    source: Ipv4Addr,
    max_age: Option<u32>,
    boot_id: Option<u32>,
    config_id: Option<u32>,
}

impl Discovery {
    /// An engine for `networks` (a repeated id is ignored after its first network); `seed`
    /// drives the delay between the two sends of a search.
    pub fn new(config: Config, networks: Vec<Network>, seed: u64) -> Self {
        let search_mx = config.search_mx.clamp(SSDP_MX_MIN, SSDP_MX_MAX);
        let config = Config {
            search_mx,
            max_max_age: config.max_max_age.max(config.min_max_age),
            max_devices_per_source: config.max_devices_per_source.clamp(1, config.max_devices),
            ..config
        };
        let tables = networks
            .into_iter()
            .map(|network| Table {
                network,
                max_devices: config.max_devices,
                devices: HashMap::new(),
                groups: HashMap::new(),
                types: Interner::default(),
                searches: Vec::new(),
                responses_until: None,
                sources: HashMap::new(),
                refused: HashSet::new(),
                next_expiry: None,
                deadlines: BTreeSet::new(),
                work: Vec::new(),
                next_periodic: None,
                overflow_after: None,
                overflow_backoff: DISCOVERY_OVERFLOW_DELAY,
            })
            .collect();
        Discovery {
            max_wait: search_mx.to_string(),
            window: Duration::from_secs(u64::from(search_mx)) + DISCOVERY_RESPONSE_GRACE,
            fetches: Fetches::new(config.fetches),
            config,
            rng: fastrand::Rng::with_seed(seed),
            tables,
            changes: Vec::new(),
        }
    }

    /// Queues an M-SEARCH for `ssdp:all` on `network`, multicast with MX = `search_mx`, sent
    /// now and again 100-200 ms later (UDP is lossy). Does nothing when one is already
    /// waiting on that network.
    pub fn search(&mut self, now: Instant, network: u32) {
        let repeat = ssdp_repeat_delay(&mut self.rng);
        let every = self.config.search_every;
        let Some(table) = self.table_mut(network) else {
            log::debug!("discovery: search on unknown network {network} ignored");
            return;
        };
        table.queue_search(now, repeat, None);
        table.next_periodic = Some(later(now, every));
    }

    /// Datagrams were dropped on `network`'s sockets at `now` (their receive buffer was
    /// full): queues a search for root devices after the burst, spaced out while drops go on
    /// (see *Searches* in the module documentation). Answers when that search will be sent,
    /// or `None` when one is already waiting.
    pub fn on_overflow(&mut self, now: Instant, network: u32) -> Option<Instant> {
        let repeat = ssdp_repeat_delay(&mut self.rng);
        let table = self.table_mut(network)?;
        let waiting = table.searches.iter().any(|search| {
            search.destination.is_none()
                && search.due > now
                && search.target.as_deref() == Some(SSDP_NT_ROOT_DEVICE)
        });
        if waiting {
            return None;
        }
        // Quiet for a while since the last one: start again from the shortest pause.
        if table
            .overflow_after
            .is_some_and(|after| now > later(after, DISCOVERY_OVERFLOW_BACKOFF_MAX))
        {
            table.overflow_backoff = DISCOVERY_OVERFLOW_DELAY;
        }
        let at = later(now, DISCOVERY_OVERFLOW_DELAY).max(table.overflow_after.unwrap_or(now));
        if !table.queue_search(at, repeat, Some(SSDP_NT_ROOT_DEVICE)) {
            return None;
        }
        table.overflow_after = Some(later(at, table.overflow_backoff));
        table.overflow_backoff = table
            .overflow_backoff
            .saturating_mul(2)
            .min(DISCOVERY_OVERFLOW_BACKOFF_MAX);
        Some(at)
    }

    /// Takes one datagram heard on `network`: NOTIFY (alive, byebye, update) and search
    /// responses update the table; M-SEARCHes from others are ignored. Anything malformed,
    /// from outside the network's subnet, with a LOCATION not on the source's address, or an
    /// unsolicited response is logged at debug and dropped.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        network: u32,
        source: SocketAddrV4,
        datagram: &[u8],
    ) {
        let Discovery {
            config,
            rng,
            tables,
            changes,
            ..
        } = self;
        let Some(table) = tables.iter_mut().find(|table| table.network.id == network) else {
            log::debug!("discovery: datagram from {source} on unknown network {network} dropped");
            return;
        };
        if !table.network.subnet.contains(*source.ip()) {
            log::debug!(
                "discovery: datagram from {source} outside network {network}'s subnet dropped"
            );
            return;
        }
        let message = match wire_ssdp::parse(datagram) {
            Ok(message) => message,
            Err(error) => {
                log::debug!(
                    "discovery: datagram from {source} on network {network} dropped: {error}"
                );
                return;
            }
        };
        match message {
            Message::Search(_) => {
                log::trace!("discovery: ignoring a search from {source} on network {network}")
            }
            Message::Response(response) => {
                let solicited = table.responses_until.is_some_and(|until| now <= until)
                    || table.verifying(response.location, now);
                if !solicited {
                    log::debug!(
                        "discovery: unsolicited search response from {source} on network {network} dropped"
                    );
                    return;
                }
                let Some(udn) = udn_of(response.unique_service_name, source, network) else {
                    return;
                };
                if !location_is_source(response.location, source, network) {
                    return;
                }
                let heard = Heard {
                    udn,
                    target: response.search_target,
                    location: response.location,
                    source: *source.ip(),
                    max_age: response.max_age,
                    boot_id: response.boot_id,
                    config_id: response.config_id,
                };
                table.alive(now, config, &heard, changes);
            }
            Message::Notify(notify) => {
                let Some(udn) = udn_of(notify.unique_service_name, source, network) else {
                    return;
                };
                match (notify.notification_subtype, notify.location) {
                    (NotifyKind::ByeBye, _) => {
                        let repeat = ssdp_repeat_delay(rng);
                        let byebye = ByeBye {
                            udn,
                            source: *source.ip(),
                            config_id: notify.config_id,
                        };
                        table.byebye(now, repeat, &byebye, changes);
                    }
                    (NotifyKind::Alive, Some(location)) => {
                        if !location_is_source(location, source, network) {
                            return;
                        }
                        let heard = Heard {
                            udn,
                            target: notify.notification_type,
                            location,
                            source: *source.ip(),
                            max_age: notify.max_age,
                            boot_id: notify.boot_id,
                            config_id: notify.config_id,
                        };
                        table.alive(now, config, &heard, changes);
                    }
                    (NotifyKind::Update, Some(location)) => {
                        if !location_is_source(location, source, network) {
                            return;
                        }
                        table.update(udn, location, &notify, changes);
                    }
                    // The wire parser refuses alive and update without LOCATION already.
                    (_, None) => {
                        log::debug!(
                            "discovery: {} without LOCATION from {source} dropped",
                            notify.notification_subtype.as_str()
                        )
                    }
                }
            }
        }
        self.pass_work(now);
    }

    /// When [`Discovery::dispatch`] has a search to send, a device to forget or a
    /// verification to end, or [`Discovery::take_fetches`] a fetch to start, if ever.
    pub fn poll_at(&self) -> Option<Instant> {
        self.tables
            .iter()
            .flat_map(|table| {
                let searches = table.searches.iter().map(|search| search.due);
                let deadline = table.deadlines.first().map(|(until, _)| *until);
                searches
                    .chain(table.next_expiry)
                    .chain(deadline)
                    .chain(table.next_periodic)
            })
            .chain(self.fetches.poll_at())
            .min()
    }

    /// What is due at `now`: renders into a stack buffer and hands to `emit` (network id,
    /// destination, bytes) every search send due, oldest first; forgets every device whose
    /// max-age has elapsed (a `Gone { Expired }` change each), and ends the verifications
    /// whose wait is over. Each multicast send opens (or extends) that network's response
    /// window to MX + `DISCOVERY_RESPONSE_GRACE` from `now`.
    pub fn dispatch(&mut self, now: Instant, mut emit: impl FnMut(u32, SocketAddrV4, &[u8])) {
        self.expire(now);
        for table in &mut self.tables {
            while let Some((until, location)) = table.deadlines.pop_first() {
                if until > now {
                    table.deadlines.insert((until, location));
                    break;
                }
                table.resolve(now, &location, &mut self.changes);
            }
        }
        self.pass_work(now);
        let every = self.config.search_every;
        for table in &mut self.tables {
            if table.next_periodic.is_some_and(|due| due <= now) {
                let repeat = ssdp_repeat_delay(&mut self.rng);
                table.queue_search(now, repeat, Some(SSDP_NT_ROOT_DEVICE));
                table.next_periodic = Some(later(now, every));
            }
        }
        let mut buffer = [0u8; SSDP_EMIT_BUFFER];
        for table in &mut self.tables {
            // Stable: sends due at the same instant leave in the order they were queued.
            table.searches.sort_by_key(|search| search.due);
            let due = table.searches.partition_point(|search| search.due <= now);
            if due == 0 {
                continue;
            }
            let mut multicast = false;
            for search in table.searches.drain(..due) {
                let (host, destination, max_wait) = match search.destination {
                    None => {
                        multicast = true;
                        let group = SocketAddrV4::new(SSDP_V4_GROUP, SSDP_PORT);
                        (SSDP_HOST.to_owned(), group, Some(self.max_wait.as_str()))
                    }
                    // UDA 1.1 section 1.3.2: a unicast search names the device in HOST and
                    // has no MX.
                    Some(address) => {
                        let device = SocketAddrV4::new(address, SSDP_PORT);
                        (device.to_string(), device, None)
                    }
                };
                let message = Search {
                    host: &host,
                    mandatory_extension: SSDP_MAN_DISCOVER,
                    max_wait,
                    search_target: search.target.as_deref().unwrap_or(SSDP_ST_ALL),
                    user_agent: Some(&self.config.user_agent),
                };
                let mut cursor = Cursor::new(&mut buffer);
                match message.emit(&mut cursor) {
                    Ok(()) => emit(table.network.id, destination, cursor.written()),
                    Err(error) => log::warn!(
                        "discovery: cannot render a search on network {}: {error}",
                        table.network.id
                    ),
                }
            }
            if multicast {
                let until = later(now, self.window);
                table.responses_until = Some(table.responses_until.map_or(until, |u| u.max(until)));
                if table.next_periodic.is_some() {
                    table.next_periodic = Some(later(now, every));
                }
            }
            if table.searches.is_empty() {
                table.searches = Vec::new();
            }
        }
    }

    /// Forgets every device whose max-age has elapsed at `now`: `Gone { Expired }` for each.
    fn expire(&mut self, now: Instant) {
        for table in &mut self.tables {
            if table.next_expiry.is_none_or(|first| first > now) {
                continue;
            }
            let mut expired: Vec<String> = table
                .devices
                .iter()
                .filter(|(_, seen)| seen.expires <= now)
                .map(|(udn, _)| udn.clone())
                .collect();
            // Deterministic order of the changes.
            expired.sort_unstable();
            for udn in expired {
                table.remove(&udn, GoneReason::Expired, &mut self.changes);
            }
            table.next_expiry = table.devices.values().map(|seen| seen.expires).min();
        }
        self.pass_work(now);
    }

    /// The fetches to start at `now`: descriptions to read and byebyes to verify, within the
    /// queue's bounds (see [`crate::engine::fetches`]). Each must come back through
    /// [`Discovery::on_fetched`].
    pub fn take_fetches(&mut self, now: Instant) -> Vec<FetchJob> {
        let mut handed = Vec::new();
        for job in self.fetches.take_due(now) {
            let group = self
                .tables
                .iter()
                .find(|table| table.network.id == job.network)
                .and_then(|table| table.groups.get(job.location.as_str()));
            let Some(group) = group else {
                // Cancelled with its group already: cannot happen; end it at once.
                log::debug!(
                    "discovery: fetch of {} on network {} has no devices left",
                    job.location,
                    job.network
                );
                self.fetches.on_done(now, &job, Outcome::Failed);
                continue;
            };
            handed.push(FetchJob {
                network: job.network,
                udn: group.owner.clone(),
                location: job.location.clone(),
                source: job.source,
                boot_id: group.boot_id,
                describe: job.purpose.describe,
                rebooted: job.purpose.rebooted,
                verify: job.purpose.verify,
                job,
                started: now,
            });
        }
        handed
    }

    /// A fetch from [`Discovery::take_fetches`] ended at `now`: the entries the description
    /// lists are described, and the byebyes waiting for it are decided. Returns a report when
    /// the description request was dropped after its attempts (the device is undescribed).
    pub fn on_fetched(
        &mut self,
        now: Instant,
        job: &FetchJob,
        result: Fetched<'_>,
    ) -> Option<Undescribed> {
        let outcome = match result {
            Fetched::Listed(_) => Outcome::Fetched,
            Fetched::Failed => Outcome::Failed,
        };
        let report = self.fetches.on_done(now, &job.job, outcome);
        let Discovery {
            tables, changes, ..
        } = self;
        if let Some(table) = tables.iter_mut().find(|t| t.network.id == job.network) {
            table.fetched(now, job, result, changes);
        }
        self.pass_work(now);
        report
    }

    /// The changes since the last call, oldest first.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }

    /// The devices known on `network` (none for an unknown network) with their UDNs, in no
    /// particular order.
    pub fn devices(&self, network: u32) -> impl Iterator<Item = (&str, &Seen)> + '_ {
        self.tables
            .iter()
            .filter(move |table| table.network.id == network)
            .take(1)
            .flat_map(|table| table.devices.iter())
            .map(|(udn, seen)| (udn.as_str(), seen))
    }

    /// Device type of the root of `seen`'s tree on `network`, when the root and its type have
    /// been heard at its LOCATION. A hint: the description is authoritative.
    pub fn root_device_type(&self, network: u32, seen: &Seen) -> Option<&str> {
        self.table(network)?
            .groups
            .get(&seen.location)?
            .root_device_type
            .as_deref()
    }

    /// One device known on `network`.
    pub fn device(&self, network: u32, udn: &str) -> Option<&Seen> {
        self.table(network)?.devices.get(udn)
    }

    /// Devices known on all networks together.
    pub fn len(&self) -> usize {
        self.tables.iter().map(|table| table.devices.len()).sum()
    }

    /// Whether no device is known on any network.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn table(&self, network: u32) -> Option<&Table> {
        self.tables.iter().find(|table| table.network.id == network)
    }

    fn table_mut(&mut self, network: u32) -> Option<&mut Table> {
        self.tables
            .iter_mut()
            .find(|table| table.network.id == network)
    }

    /// Hands what the tables asked of the fetch queue to it.
    fn pass_work(&mut self, now: Instant) {
        for table in &mut self.tables {
            let network = table.network.id;
            for work in table.work.drain(..) {
                match work {
                    Work::Describe {
                        location,
                        source,
                        rebooted,
                    } => {
                        let purpose = Purpose {
                            describe: true,
                            rebooted,
                            verify: false,
                        };
                        self.fetches
                            .request(now, network, &location, source, purpose, now);
                    }
                    Work::Verify {
                        location,
                        source,
                        at,
                    } => {
                        let purpose = Purpose {
                            verify: true,
                            ..Purpose::default()
                        };
                        self.fetches
                            .request(now, network, &location, source, purpose, at);
                    }
                    Work::Cancel { location } => self.fetches.cancel(network, &location),
                }
            }
            if table.work.capacity() > DISCOVERY_EVICT_BATCH {
                table.work = Vec::new();
            }
        }
    }
}

/// An ssdp:byebye accepted for checking: its UDN, the address it came from, its CONFIGID.
struct ByeBye<'a> {
    udn: &'a str,
    source: Ipv4Addr,
    config_id: Option<u32>,
}

impl Table {
    /// An alive NOTIFY or a search response: refresh or create the entry, then decide the
    /// change for its LOCATION (see the module documentation).
    fn alive(
        &mut self,
        now: Instant,
        config: &Config,
        heard: &Heard<'_>,
        changes: &mut Vec<Change>,
    ) {
        let life = heard
            .max_age
            .unwrap_or(config.min_max_age)
            .clamp(config.min_max_age, config.max_max_age);
        let expires = later(now, Duration::from_secs(u64::from(life)));
        let is_root = heard.target.eq_ignore_ascii_case(SSDP_NT_ROOT_DEVICE);
        let device_type = device_type_of(heard.target);

        let known_source = self.devices.get(heard.udn).map(|seen| seen.source);
        let is_new = known_source.is_none();
        if known_source != Some(heard.source) && !self.admit(heard, config, changes) {
            return;
        }
        // The copy of the LOCATION its group holds, if there is one already.
        let location = match self.groups.get_key_value(heard.location) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(heard.location),
        };
        if is_new {
            let seen = Seen {
                location: location.clone(),
                source: heard.source,
                boot_id: None,
                config_id: None,
                expires,
                device_type: None,
                root: false,
                described: false,
                leaving: false,
            };
            self.devices.insert(heard.udn.to_owned(), seen);
            self.hold(heard.source);
        } else if let Some(old) = known_source.filter(|old| *old != heard.source) {
            self.release(old);
            self.hold(heard.source);
        }
        self.next_expiry = Some(self.next_expiry.map_or(expires, |first| first.min(expires)));
        let Some(seen) = self.devices.get_mut(heard.udn) else {
            return;
        };
        let moved_from = (!is_new && *seen.location != *heard.location)
            .then(|| std::mem::replace(&mut seen.location, location.clone()));
        if moved_from.is_some() {
            seen.described = false;
            seen.leaving = false;
        }
        seen.source = heard.source;
        seen.expires = expires;
        seen.boot_id = heard.boot_id.or(seen.boot_id);
        seen.config_id = heard.config_id.or(seen.config_id);
        seen.root |= is_root;
        if let Some(device_type) = device_type {
            if seen.device_type.as_deref() != Some(device_type) {
                seen.device_type = Some(self.types.share(device_type));
            }
        }
        let root = seen.root;

        let reason = match self.groups.get_mut(heard.location) {
            Some(group) => {
                if is_new || moved_from.is_some() {
                    group.members += 1;
                }
                let reason = difference(group, heard.boot_id, heard.config_id);
                group.boot_id = heard.boot_id.or(group.boot_id);
                group.config_id = heard.config_id.or(group.config_id);
                // The device speaks while a byebye of it is verified: it is alive.
                if let Some(verification) = &mut group.verification {
                    if now >= verification.start {
                        verification.answered = true;
                    }
                }
                reason
            }
            None => {
                // A LOCATION not known before: fetch it, as news or as a move.
                let reason = match &moved_from {
                    None => {
                        self.appeared(heard, changes);
                        None
                    }
                    Some(old_location) => Some(
                        self.groups
                            .get(old_location)
                            .and_then(|old| difference(old, heard.boot_id, heard.config_id))
                            .unwrap_or(RefetchReason::Moved),
                    ),
                };
                let group = Group::new(heard.udn, root, heard.boot_id, heard.config_id);
                self.groups.insert(location, group);
                reason
            }
        };
        if let Some(old_location) = moved_from {
            self.leave(&old_location);
        }
        self.settle(heard.location, heard.udn);
        if let Some(reason) = reason {
            self.refetch(heard.location, heard.source, reason, changes);
        }
        self.resolve(now, heard.location, changes);
    }

    /// Whether an entry for `heard.udn` may be made (or moved) at `heard.source`: within the
    /// address's quota, and in a table with room, made by eviction if need be (see the
    /// module documentation). Logs each refusal and eviction once per address.
    fn admit(&mut self, heard: &Heard<'_>, config: &Config, changes: &mut Vec<Change>) -> bool {
        let network = self.network.id;
        let source = heard.source;
        let held = self
            .sources
            .get(&source)
            .map_or(0, |holding| holding.devices);
        if held >= config.max_devices_per_source {
            if let Some(holding) = self.sources.get_mut(&source) {
                if !std::mem::replace(&mut holding.refused_logged, true) {
                    log::warn!(
                        "discovery: {source} advertises {held} devices on network {network}, its share: {} and its further new devices are dropped",
                        heard.udn
                    );
                }
            }
            return false;
        }
        let is_new = !self.devices.contains_key(heard.udn);
        if !is_new || self.devices.len() < config.max_devices {
            return true;
        }
        if self.evict(source, held, changes) {
            return true;
        }
        if self.refused.len() < DISCOVERY_MAX_REFUSED_LOGGED && self.refused.insert(source) {
            log::warn!(
                "discovery: network {network} holds {} devices, its bound, and no address holds twice as many as {source}: {} and further new devices from {source} are dropped",
                self.devices.len(),
                heard.udn
            );
        }
        false
    }

    /// Makes room in a full table for a new entry from `newcomer`, which holds `held`: the
    /// address holding the most gives way if it holds at least twice `held + 1`. False when
    /// nothing was evicted.
    fn evict(&mut self, newcomer: Ipv4Addr, held: usize, changes: &mut Vec<Change>) -> bool {
        let victim = self
            .sources
            .iter()
            .filter(|(address, _)| **address != newcomer)
            // The most entries; between equals, the highest address, whatever the map order.
            .max_by(|a, b| a.1.devices.cmp(&b.1.devices).then(a.0.cmp(b.0)))
            .map(|(address, holding)| (*address, holding.devices));
        let Some((victim, count)) = victim else {
            return false;
        };
        if count < 2 * (held + 1) {
            return false;
        }
        let batch = ((count - (held + 1)) / 2).clamp(1, DISCOVERY_EVICT_BATCH);
        let mut candidates: Vec<(bool, bool, Instant, &str)> = self
            .devices
            .iter()
            .filter(|(_, seen)| seen.source == victim)
            .map(|(udn, seen)| (seen.described, seen.root, seen.expires, udn.as_str()))
            .collect();
        candidates.sort_unstable();
        let evicted: Vec<String> = candidates
            .iter()
            .take(batch)
            .map(|(.., udn)| (*udn).to_owned())
            .collect();
        if let Some(holding) = self.sources.get_mut(&victim) {
            if !std::mem::replace(&mut holding.evicted_logged, true) {
                log::warn!(
                    "discovery: network {} is full ({} devices): {victim}, holding the most ({count}), gives way to {newcomer} ({} of its devices, undescribed first); its further evictions are not logged",
                    self.network.id,
                    self.devices.len(),
                    evicted.len()
                );
            }
        }
        for udn in evicted {
            self.remove(&udn, GoneReason::Evicted, changes);
        }
        true
    }

    /// One more entry advertised from `source`.
    fn hold(&mut self, source: Ipv4Addr) {
        self.sources.entry(source).or_default().devices += 1;
    }

    /// One entry fewer advertised from `source`; an address holding none is forgotten.
    fn release(&mut self, source: Ipv4Addr) {
        if let Some(holding) = self.sources.get_mut(&source) {
            holding.devices = holding.devices.saturating_sub(1);
            if holding.devices == 0 {
                self.sources.remove(&source);
                shrink(&mut self.sources);
            }
        }
    }

    /// An ssdp:byebye accepted from the address the device advertised from: removes an entry
    /// at once when nothing was ever read from its LOCATION, starts verifying one that is (or,
    /// heard after the last fetch, may be) described.
    fn byebye(
        &mut self,
        now: Instant,
        repeat: Duration,
        byebye: &ByeBye<'_>,
        changes: &mut Vec<Change>,
    ) {
        let network = self.network.id;
        let ByeBye {
            udn,
            source,
            config_id,
        } = *byebye;
        let Some(seen) = self.devices.get_mut(udn) else {
            log::trace!("discovery: byebye for unknown {udn} from {source} on network {network}");
            return;
        };
        if seen.source != source {
            log::debug!(
                "discovery: byebye for {udn} from {source} on network {network} dropped: it advertises from {}",
                seen.source
            );
            return;
        }
        let location = seen.location.clone();
        // A device heard at a LOCATION after its description was read may be in it: verified
        // like a described one, not believed.
        let verified = seen.described || self.groups.get(&location).is_some_and(|g| g.fetched);
        // Each target of a device says byebye: only the first starts anything.
        let newly_leaving = verified && !std::mem::replace(&mut seen.leaving, true);
        if !verified {
            self.remove(udn, GoneReason::ByeBye, changes);
        }
        match self.groups.get_mut(&location) {
            Some(group) => {
                // An embedded device leaving a tree that stays: its description changed.
                if difference(group, None, config_id).is_some() {
                    group.config_id = config_id;
                    self.refetch(&location, source, RefetchReason::Reconfigured, changes);
                }
            }
            None => {
                // The last device of that LOCATION: ask whether it is really gone.
                if !self.queue_search(now, repeat, Some(udn)) {
                    log::debug!("discovery: no confirmation search for {udn} on network {network}");
                }
            }
        }
        if newly_leaving {
            self.verify(now, repeat, &location, source);
        }
    }

    /// Starts verifying the byebyes heard at `location` (see the module documentation), or,
    /// while one runs, asks for a fetch after this byebye: a fetch that began before it
    /// cannot tell whether this device is still described.
    fn verify(&mut self, now: Instant, repeat: Duration, location: &str, source: Ipv4Addr) {
        let network = self.network.id;
        let Some(group) = self.groups.get_mut(location) else {
            return;
        };
        match &mut group.verification {
            Some(verification) => {
                verification.latest = now;
                verification.fetched = None;
                let at = verification.start.max(now);
                self.work.push(Work::Verify {
                    location: location.to_owned(),
                    source,
                    at,
                });
            }
            None => {
                let start = group.verify_after.map_or(now, |after| after.max(now));
                let until = later(start, DISCOVERY_VERIFY_WAIT);
                let owner = group.owner.clone();
                log::debug!(
                    "discovery: byebye for {owner}'s tree at {location} on network {network}: verifying"
                );
                let searched = self.queue_probe(start, repeat, &owner, source);
                if let Some(group) = self.groups.get_mut(location) {
                    group.verification = Some(Verification {
                        start,
                        until,
                        searched,
                        answered: false,
                        latest: now,
                        fetched: None,
                    });
                }
                self.deadlines.insert((until, location.to_owned()));
                self.work.push(Work::Verify {
                    location: location.to_owned(),
                    source,
                    at: start,
                });
            }
        }
    }

    /// Whether a search response naming `location` answers a verification running now.
    fn verifying(&self, location: &str, now: Instant) -> bool {
        self.groups
            .get(location)
            .and_then(|group| group.verification)
            .is_some_and(|verification| now >= verification.start && now <= verification.until)
    }

    /// A fetch of `job.location` ended: marks what the description lists as described,
    /// removes leaving entries it no longer lists or, when it failed, every leaving entry
    /// there, then decides the running verification if it can be.
    fn fetched(
        &mut self,
        now: Instant,
        job: &FetchJob,
        result: Fetched<'_>,
        changes: &mut Vec<Change>,
    ) {
        let location = job.location.as_str();
        if !self.groups.contains_key(location) {
            return;
        }
        let gone: Vec<String> = match result {
            Fetched::Listed(udns) => {
                if let Some(group) = self.groups.get_mut(location) {
                    group.fetched = true;
                }
                let listed: HashSet<String> =
                    udns.iter().map(|udn| udn.to_ascii_lowercase()).collect();
                let mut gone = Vec::new();
                for (udn, seen) in &mut self.devices {
                    if *seen.location != *location {
                        continue;
                    }
                    seen.described = listed.contains(&udn.to_ascii_lowercase());
                    if seen.leaving && !seen.described {
                        gone.push(udn.clone());
                    }
                }
                gone
            }
            Fetched::Failed => self.leaving_at(location),
        };
        if job.verify {
            if let Some(verification) = self
                .groups
                .get_mut(location)
                .and_then(|group| group.verification.as_mut())
                .filter(|verification| job.started >= verification.latest)
            {
                verification.fetched = Some(matches!(result, Fetched::Listed(_)));
            }
        }
        for udn in sorted(gone) {
            self.remove(&udn, GoneReason::ByeBye, changes);
        }
        self.resolve(now, location, changes);
    }

    /// Decides the verification at `location` when it can be: the leaving entries there are
    /// gone or kept (see the module documentation).
    fn resolve(&mut self, now: Instant, location: &str, changes: &mut Vec<Change>) {
        let network = self.network.id;
        let Some(group) = self.groups.get(location) else {
            return;
        };
        let Some(verification) = group.verification else {
            return;
        };
        let leaving = sorted(self.leaving_at(location));
        let over = now >= verification.until;
        let alive = match verification.fetched {
            _ if leaving.is_empty() => true,
            Some(false) => false,
            Some(true) if verification.answered || !verification.searched => true,
            _ if verification.searched && !verification.answered && over => false,
            _ => return,
        };
        self.deadlines
            .remove(&(verification.until, location.to_owned()));
        let owner = group.owner.clone();
        let source = location_address(location).map(|address| *address.ip());
        // Its search's repeat, if not sent yet, is no longer needed.
        self.searches.retain(|search| {
            search.destination.is_none()
                || search.destination != source
                || search.target.as_deref() != Some(owner.as_str())
        });
        let Some(group) = self.groups.get_mut(location) else {
            return;
        };
        group.verification = None;
        if !alive {
            group.forged = 0;
            group.verify_after = None;
            for udn in leaving {
                self.remove(&udn, GoneReason::ByeBye, changes);
            }
            return;
        }
        if leaving.is_empty() {
            return;
        }
        group.forged = group.forged.saturating_add(1);
        let pause = DISCOVERY_VERIFY_BACKOFF
            .saturating_mul(1 << group.forged.saturating_sub(1).min(8))
            .min(DISCOVERY_VERIFY_BACKOFF_MAX);
        group.verify_after = Some(later(now, pause));
        if !std::mem::replace(&mut group.suspicious_logged, true) {
            let source = self
                .devices
                .get(&leaving[0])
                .map_or(Ipv4Addr::UNSPECIFIED, |seen| seen.source);
            log::warn!(
                "discovery: suspicious ssdp:byebye for {} on network {network} from {source}: the device still answers at {location}; kept (a forged byebye?). Further ones for this LOCATION are verified, not logged",
                leaving.join(", ")
            );
        }
        for udn in &leaving {
            if let Some(seen) = self.devices.get_mut(udn) {
                seen.leaving = false;
            }
        }
    }

    /// The UDNs of the leaving entries at `location`.
    fn leaving_at(&self, location: &str) -> Vec<String> {
        self.devices
            .iter()
            .filter(|(_, seen)| seen.leaving && *seen.location == *location)
            .map(|(udn, _)| udn.clone())
            .collect()
    }

    /// An ssdp:update (UDA 1.1 section 1.2.4) whose LOCATION was checked.
    fn update(
        &mut self,
        udn: &str,
        location: &str,
        notify: &wire_ssdp::Notify<'_>,
        changes: &mut Vec<Change>,
    ) {
        let network = self.network.id;
        let Some(seen) = self.devices.get_mut(udn) else {
            log::trace!("discovery: update for unknown {udn} on network {network} ignored");
            return;
        };
        if *seen.location != *location {
            log::debug!(
                "discovery: update for {udn} on network {network} names another LOCATION; dropped"
            );
            return;
        }
        let Some(next) = notify.next_boot_id else {
            log::debug!(
                "discovery: update for {udn} on network {network} without NEXTBOOTID dropped"
            );
            return;
        };
        seen.boot_id = Some(next);
        seen.config_id = notify.config_id.or(seen.config_id);
        let source = seen.source;
        let Some(group) = self.groups.get_mut(location) else {
            return;
        };
        // Known as the current or already as the next BOOTID: the announced transition.
        let expected = group
            .boot_id
            .is_none_or(|known| known == next || notify.boot_id.is_none_or(|now| now == known));
        let reason = if !expected {
            Some(RefetchReason::Rebooted)
        } else {
            difference(group, None, notify.config_id)
        };
        group.boot_id = Some(next);
        group.config_id = notify.config_id.or(group.config_id);
        if let Some(reason) = reason {
            self.refetch(location, source, reason, changes);
        }
    }

    /// Removes one entry: `Gone`, and its group loses a member.
    fn remove(&mut self, udn: &str, reason: GoneReason, changes: &mut Vec<Change>) {
        let Some((udn, seen)) = self.devices.remove_entry(udn) else {
            return;
        };
        self.release(seen.source);
        self.leave(&seen.location);
        if self.devices.len() < self.max_devices && !self.refused.is_empty() {
            self.refused = HashSet::new();
        }
        shrink(&mut self.devices);
        changes.push(Change::Gone {
            network: self.network.id,
            udn,
            reason,
        });
    }

    /// One entry no longer at `location` (already removed or moved away): the group loses a
    /// member, ends with its last one, and gets a new owner when its owner left.
    fn leave(&mut self, location: &str) {
        let Some(group) = self.groups.get_mut(location) else {
            return;
        };
        group.members = group.members.saturating_sub(1);
        let owner_left = self
            .devices
            .get(group.owner.as_str())
            .is_none_or(|seen| *seen.location != *location);
        let heir = if owner_left && group.members > 0 {
            self.devices
                .iter()
                .filter(|(_, seen)| *seen.location == *location)
                // A root first, then the smallest UDN: the same heir whatever the map order.
                .min_by(|(a_udn, a), (b_udn, b)| b.root.cmp(&a.root).then_with(|| a_udn.cmp(b_udn)))
        } else {
            None
        };
        if group.members == 0 || (owner_left && heir.is_none()) {
            if let Some(verification) = group.verification {
                self.deadlines
                    .remove(&(verification.until, location.to_owned()));
            }
            self.groups.remove(location);
            shrink(&mut self.groups);
            self.work.push(Work::Cancel {
                location: location.to_owned(),
            });
            return;
        }
        if let Some((udn, heir)) = heir {
            group.owner = udn.clone();
            group.owner_is_root = heir.root;
        }
    }

    /// After `udn` was heard at `location`: a root takes the group over, and the group learns
    /// the root's device type.
    fn settle(&mut self, location: &str, udn: &str) {
        let (Some(seen), Some(group)) = (self.devices.get(udn), self.groups.get_mut(location))
        else {
            return;
        };
        if seen.root && !group.owner_is_root {
            group.owner = udn.to_owned();
            group.owner_is_root = true;
        }
        let root_type_known =
            group.owner_is_root && group.owner == udn && seen.device_type.is_some();
        if root_type_known && group.root_device_type != seen.device_type {
            group.root_device_type = seen.device_type.clone();
        }
    }

    /// A LOCATION heard for the first time: `Appeared`, and its description to fetch.
    fn appeared(&mut self, heard: &Heard<'_>, changes: &mut Vec<Change>) {
        changes.push(Change::Appeared {
            network: self.network.id,
            udn: heard.udn.to_owned(),
            location: heard.location.to_owned(),
            source: heard.source,
            boot_id: heard.boot_id,
            config_id: heard.config_id,
        });
        self.work.push(Work::Describe {
            location: heard.location.to_owned(),
            source: heard.source,
            rebooted: false,
        });
    }

    /// Reports that the description at `location` must be fetched again, and asks for it.
    fn refetch(
        &mut self,
        location: &str,
        source: Ipv4Addr,
        reason: RefetchReason,
        changes: &mut Vec<Change>,
    ) {
        let Some(group) = self.groups.get(location) else {
            return;
        };
        changes.push(Change::Refetch {
            network: self.network.id,
            udn: group.owner.clone(),
            location: location.to_owned(),
            source,
            boot_id: group.boot_id,
            config_id: group.config_id,
            reason,
        });
        self.work.push(Work::Describe {
            location: location.to_owned(),
            source,
            rebooted: reason == RefetchReason::Rebooted,
        });
    }

    /// Queues the sends of one multicast search from `now` on (`None`: `ssdp:all`, else
    /// `upnp:rootdevice` or a UDN); false when it was not queued. An `ssdp:all` already
    /// waiting makes any new search redundant; another is queued only when the same is not
    /// waiting and fewer than [`DISCOVERY_MAX_PENDING_SEARCHES`] multicast sends wait.
    fn queue_search(&mut self, now: Instant, repeat: Duration, target: Option<&str>) -> bool {
        let multicast = || self.searches.iter().filter(|s| s.destination.is_none());
        if multicast().any(|search| search.target.is_none()) {
            return false;
        }
        if let Some(udn) = target {
            let waiting = multicast().any(|s| s.target.as_deref() == Some(udn));
            if waiting
                || multicast().count() + DISCOVERY_SEARCH_SENDS > DISCOVERY_MAX_PENDING_SEARCHES
            {
                return false;
            }
        }
        self.push_search(now, repeat, target, None);
        true
    }

    /// Queues the sends of a unicast search for `udn` to `address`, from `at` on, verifying
    /// a byebye; false when [`DISCOVERY_MAX_PROBES`] sends wait already.
    fn queue_probe(&mut self, at: Instant, repeat: Duration, udn: &str, address: Ipv4Addr) -> bool {
        let probes = self
            .searches
            .iter()
            .filter(|search| search.destination.is_some())
            .count();
        if probes + DISCOVERY_SEARCH_SENDS > DISCOVERY_MAX_PROBES {
            return false;
        }
        self.push_search(at, repeat, Some(udn), Some(address));
        true
    }

    fn push_search(
        &mut self,
        at: Instant,
        repeat: Duration,
        target: Option<&str>,
        destination: Option<Ipv4Addr>,
    ) {
        let mut due = at;
        for _ in 0..DISCOVERY_SEARCH_SENDS {
            self.searches.push(PendingSearch {
                due,
                target: target.map(str::to_owned),
                destination,
            });
            due = later(due, repeat);
        }
    }
}

/// `items`, sorted: changes come out in the same order whatever the map order.
fn sorted(mut items: Vec<String>) -> Vec<String> {
    items.sort_unstable();
    items
}

/// What a message's BOOTID and CONFIGID say about a group: a BOOTID change first, a missing
/// value never counts.
fn difference(
    group: &Group,
    boot_id: Option<u32>,
    config_id: Option<u32>,
) -> Option<RefetchReason> {
    let differs = |known: Option<u32>, heard: Option<u32>| matches!((known, heard), (Some(known), Some(heard)) if known != heard);
    if differs(group.boot_id, boot_id) {
        Some(RefetchReason::Rebooted)
    } else if differs(group.config_id, config_id) {
        Some(RefetchReason::Reconfigured)
    } else {
        None
    }
}

/// The UDN of a USN (`uuid:X` or `uuid:X::target`), when it is one we keep: `uuid:` prefix
/// (any case), printable ASCII without spaces, at most [`DISCOVERY_MAX_UDN`] bytes.
fn udn_of(usn: &str, source: SocketAddrV4, network: u32) -> Option<&str> {
    let udn = usn.split_once("::").map_or(usn, |(udn, _)| udn);
    let well_formed = udn.len() > UDN_PREFIX.len()
        && udn.len() <= DISCOVERY_MAX_UDN
        && udn
            .get(..UDN_PREFIX.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(UDN_PREFIX))
        && udn.bytes().all(|byte| byte.is_ascii_graphic());
    if !well_formed {
        log::debug!(
            "discovery: USN {usn:?} from {source} on network {network} names no UDN; dropped"
        );
        return None;
    }
    Some(udn)
}

/// Whether LOCATION's host is the datagram's source address; logs and says false otherwise.
fn location_is_source(location: &str, source: SocketAddrV4, network: u32) -> bool {
    match location_address(location) {
        Some(address) if address.ip() == source.ip() => true,
        Some(address) => {
            log::debug!(
                "discovery: LOCATION {location:?} from {source} on network {network} names another host ({}); dropped",
                address.ip()
            );
            false
        }
        None => {
            log::debug!(
                "discovery: LOCATION {location:?} from {source} on network {network} is not http://<IPv4>[:port]/...; dropped"
            );
            false
        }
    }
}

/// Host and port of LOCATION when it is `http://<literal IPv4>[:port][/path]` of at most
/// [`DISCOVERY_MAX_LOCATION`] bytes (see [`crate::wire::http::http_url_parts`]).
fn location_address(location: &str) -> Option<SocketAddrV4> {
    crate::wire::http::http_url_parts(location, DISCOVERY_MAX_LOCATION).map(|(address, _)| address)
}

/// `urn:<domain>:device:<type>:<version>` when `target` is a device type.
fn device_type_of(target: &str) -> Option<&str> {
    let mut fields = target.split(':');
    let is_device = fields.next() == URN_PREFIX.strip_suffix(':')
        && fields.next().is_some_and(|domain| !domain.is_empty())
        && fields.next() == Some(URN_KIND_DEVICE)
        && fields.next().is_some_and(|kind| !kind.is_empty());
    (is_device && target.len() <= DISCOVERY_MAX_DEVICE_TYPE).then_some(target)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{SSDP_REPEAT_MAX, SSDP_REPEAT_MIN};
    use crate::consts::{URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR, URN_SERVICE_DOMAIN_CONTROL};
    use crate::wire::ssdp::{Notify, Response};

    const MGMT: u32 = 0;
    const TENANT: u32 = 7;
    const ROOT: &str = "uuid:0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b";
    const DOMAINS: [&str; 3] = [
        "uuid:1d2c3b4a-5f6e-5a7b-8c9d-0e1f2a3b4c5d",
        "uuid:2e3d4c5b-6a7f-5b8c-9dae-1f2a3b4c5d6e",
        "uuid:3f4e5d6c-7b8a-5c9d-aebf-2a3b4c5d6e7f",
    ];
    const HOST_A: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 20);
    const LOCATION_A: &str = "http://192.168.10.20:49152/description.xml";
    const USER_AGENT: &str = "Linux/6.1 UPnP/1.1 xenplug/0.1.0";

    /// An alive NOTIFY exactly as our device engine writes it (`wire::ssdp` emits_exact_alive).
    static ROOT_ALIVE: &[u8] = b"NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
CACHE-CONTROL: max-age=1800\r\n\
LOCATION: http://192.168.10.20:49152/description.xml\r\n\
NT: upnp:rootdevice\r\n\
NTS: ssdp:alive\r\n\
SERVER: Linux/6.1 UPnP/1.1 xenplug/0.1.0\r\n\
USN: uuid:0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 7\r\n\
CONFIGID.UPNP.ORG: 1\r\n\
\r\n";

    /// A search response as GUPnP (Rygel) writes it: mixed-case names, `Ext:` empty, the
    /// description named after the UDN, Content-Length.
    static GUPNP_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Location: http://192.168.10.30:41253/b2a4c9e0-1f3d-4c5e-8a7b-6d9e0f1a2b3c.xml\r\n\
Ext:\r\n\
USN: uuid:b2a4c9e0-1f3d-4c5e-8a7b-6d9e0f1a2b3c::upnp:rootdevice\r\n\
Server: Linux/6.8.0 UPnP/1.0 GUPnP/1.6.6\r\n\
Cache-Control: max-age=1800\r\n\
ST: upnp:rootdevice\r\n\
Date: Tue, 24 Nov 2026 10:00:00 GMT\r\n\
BOOTID.UPNP.ORG: 1\r\n\
CONFIGID.UPNP.ORG: 2\r\n\
Content-Length: 0\r\n\
\r\n";
    const GUPNP_UDN: &str = "uuid:b2a4c9e0-1f3d-4c5e-8a7b-6d9e0f1a2b3c";
    const GUPNP_HOST: Ipv4Addr = Ipv4Addr::new(192, 168, 10, 30);

    fn networks() -> Vec<Network> {
        vec![
            Network {
                id: MGMT,
                interface: 2,
                address: Ipv4Addr::new(192, 168, 10, 2),
                subnet: Subnet::of_interface(
                    Ipv4Addr::new(192, 168, 10, 2),
                    Ipv4Addr::new(255, 255, 255, 0),
                ),
            },
            Network {
                id: TENANT,
                interface: 5,
                address: Ipv4Addr::new(10, 20, 0, 1),
                subnet: Subnet::of_interface(
                    Ipv4Addr::new(10, 20, 0, 1),
                    Ipv4Addr::new(255, 255, 0, 0),
                ),
            },
        ]
    }

    fn config(max_devices: usize) -> Config {
        Config {
            user_agent: USER_AGENT.to_owned(),
            search_mx: 2,
            max_devices,
            max_devices_per_source: max_devices,
            min_max_age: 60,
            max_max_age: 3600,
            fetches: fetches::Config {
                slots: 8,
                retry_slots: 4,
                attempts: 3,
                backoff: secs(1),
                max_backoff: secs(60),
                min_interval: secs(1),
            },
            search_every: secs(300),
        }
    }

    fn discovery() -> Discovery {
        discovery_with(config(16))
    }

    fn discovery_with(config: Config) -> Discovery {
        Discovery::new(config, networks(), 0x5eed)
    }

    fn from(host: Ipv4Addr) -> SocketAddrV4 {
        SocketAddrV4::new(host, 1900)
    }

    fn secs(seconds: u64) -> Duration {
        Duration::from_secs(seconds)
    }

    /// What one message of a device says, rendered by the `wire::ssdp` emitters.
    #[derive(Clone, Copy)]
    struct Says<'a> {
        udn: &'a str,
        /// NT / ST; `None` for the `uuid:X` target itself.
        target: Option<&'a str>,
        location: &'a str,
        max_age: u32,
        boot_id: Option<u32>,
        config_id: Option<u32>,
    }

    fn says<'a>(udn: &'a str, target: Option<&'a str>) -> Says<'a> {
        Says {
            udn,
            target,
            location: LOCATION_A,
            max_age: 1800,
            boot_id: Some(7),
            config_id: Some(1),
        }
    }

    fn render(emit: impl FnOnce(&mut Cursor) -> crate::wire::Result<()>) -> Vec<u8> {
        let mut buffer = [0u8; SSDP_EMIT_BUFFER];
        let mut cursor = Cursor::new(&mut buffer);
        emit(&mut cursor).unwrap();
        cursor.written().to_vec()
    }

    impl Says<'_> {
        fn nt_usn(&self) -> (String, String) {
            match self.target {
                Some(target) => (target.to_owned(), format!("{}::{target}", self.udn)),
                None => (self.udn.to_owned(), self.udn.to_owned()),
            }
        }

        fn notify(&self, nts: NotifyKind, next_boot_id: Option<u32>) -> Vec<u8> {
            let (nt, usn) = self.nt_usn();
            let notify = Notify {
                host: SSDP_HOST,
                notification_type: &nt,
                notification_subtype: nts,
                unique_service_name: &usn,
                location: (nts != NotifyKind::ByeBye).then_some(self.location),
                max_age: Some(self.max_age),
                server: Some(USER_AGENT),
                boot_id: self.boot_id,
                config_id: self.config_id,
                next_boot_id,
                search_port: None,
            };
            render(|cursor| notify.emit(cursor))
        }

        fn alive(&self) -> Vec<u8> {
            self.notify(NotifyKind::Alive, None)
        }

        fn byebye(&self) -> Vec<u8> {
            self.notify(NotifyKind::ByeBye, None)
        }

        fn response(&self) -> Vec<u8> {
            let (st, usn) = self.nt_usn();
            let response = Response {
                search_target: &st,
                unique_service_name: &usn,
                location: self.location,
                max_age: Some(self.max_age),
                server: Some(USER_AGENT),
                boot_id: self.boot_id,
                config_id: self.config_id,
                search_port: None,
                date: None,
                extension_confirmed: true,
            };
            render(|cursor| response.emit(cursor))
        }
    }

    /// The full alive set of a hypervisor with `domains` embedded Domain devices, root first
    /// (UDA 1.1 section 1.2.2 order).
    fn tree(domains: &[&'static str], boot_id: u32, config_id: u32) -> Vec<Vec<u8>> {
        let with = |udn: &'static str, target| Says {
            boot_id: Some(boot_id),
            config_id: Some(config_id),
            ..says(udn, target)
        };
        let mut messages = vec![
            with(ROOT, Some(SSDP_NT_ROOT_DEVICE)).alive(),
            with(ROOT, None).alive(),
            with(ROOT, Some(URN_DEVICE_HYPERVISOR)).alive(),
        ];
        for udn in domains {
            messages.push(with(udn, None).alive());
            messages.push(with(udn, Some(URN_DEVICE_DOMAIN)).alive());
            messages.push(with(udn, Some(URN_SERVICE_DOMAIN_CONTROL)).alive());
        }
        messages
    }

    fn feed(discovery: &mut Discovery, now: Instant, host: Ipv4Addr, messages: &[Vec<u8>]) {
        for message in messages {
            discovery.on_datagram(now, MGMT, from(host), message);
        }
    }

    /// Group bookkeeping agrees with the entries: every entry's LOCATION has a group counting
    /// exactly its entries, whose owner is one of them; the bound holds.
    fn check_invariants(discovery: &Discovery) {
        for table in &discovery.tables {
            assert!(table.devices.len() <= discovery.config.max_devices);
            let mut counts: HashMap<&str, usize> = HashMap::new();
            for seen in table.devices.values() {
                *counts.entry(&*seen.location).or_default() += 1;
                // The LOCATION is its group's copy, not one of its own.
                let (shared, _) = table.groups.get_key_value(&seen.location).unwrap();
                assert!(Arc::ptr_eq(shared, &seen.location));
            }
            assert_eq!(counts.len(), table.groups.len());
            for (location, group) in &table.groups {
                assert_eq!(counts.get(&**location), Some(&group.members), "{location}");
                let owner = &table.devices[&group.owner];
                assert_eq!(&owner.location, location);
                assert_eq!(group.owner_is_root, owner.root);
            }
            let mut held: HashMap<Ipv4Addr, usize> = HashMap::new();
            for seen in table.devices.values() {
                *held.entry(seen.source).or_default() += 1;
                assert!(!seen.leaving || table.groups[&seen.location].verification.is_some());
            }
            assert_eq!(held.len(), table.sources.len());
            for (address, count) in held {
                assert_eq!(table.sources[&address].devices, count, "{address}");
                assert!(count <= discovery.config.max_devices_per_source);
            }
        }
    }

    /// Takes the fetches due at `now` and reports each as `result`.
    fn fetch_all(discovery: &mut Discovery, now: Instant, result: Fetched<'_>) -> Vec<FetchJob> {
        let jobs = discovery.take_fetches(now);
        for job in &jobs {
            discovery.on_fetched(now, job, result);
        }
        jobs
    }

    /// A hypervisor with two domains whose description was fetched, listing all three.
    fn described_tree(now: Instant) -> Discovery {
        let mut discovery = discovery();
        feed(&mut discovery, now, HOST_A, &tree(&DOMAINS[..2], 7, 1));
        discovery.take_changes();
        let listed = [ROOT, DOMAINS[0], DOMAINS[1]];
        assert_eq!(
            fetch_all(&mut discovery, now, Fetched::Listed(&listed)).len(),
            1
        );
        assert!(discovery.devices(MGMT).all(|(_, seen)| seen.described));
        discovery
    }

    /// [`described_tree`] after every UDN of it said byebye.
    fn described_tree_leaving(now: Instant) -> Discovery {
        let mut discovery = described_tree(now);
        for udn in [ROOT, DOMAINS[0], DOMAINS[1]] {
            discovery.on_datagram(now, MGMT, from(HOST_A), &says(udn, None).byebye());
        }
        discovery
    }

    fn appeared(udn: &str, location: &str, source: Ipv4Addr, boot: u32, config: u32) -> Change {
        Change::Appeared {
            network: MGMT,
            udn: udn.to_owned(),
            location: location.to_owned(),
            source,
            boot_id: Some(boot),
            config_id: Some(config),
        }
    }

    fn refetch(udn: &str, location: &str, boot: u32, config: u32, reason: RefetchReason) -> Change {
        let source = location_address(location).map(|a| *a.ip()).unwrap();
        Change::Refetch {
            network: MGMT,
            udn: udn.to_owned(),
            location: location.to_owned(),
            source,
            boot_id: Some(boot),
            config_id: Some(config),
            reason,
        }
    }

    fn gone(udn: &str, reason: GoneReason) -> Change {
        Change::Gone {
            network: MGMT,
            udn: udn.to_owned(),
            reason,
        }
    }

    /// Every datagram `dispatch` sends at `now`.
    fn sent(discovery: &mut Discovery, now: Instant) -> Vec<(u32, SocketAddrV4, Vec<u8>)> {
        let mut sent = Vec::new();
        discovery.dispatch(now, |network, destination, bytes| {
            sent.push((network, destination, bytes.to_vec()))
        });
        sent
    }

    /// Opens the response window of MGMT at `now`.
    fn searched(discovery: &mut Discovery, now: Instant) {
        discovery.search(now, MGMT);
        assert_eq!(sent(discovery, now).len(), 1);
    }

    #[test]
    fn our_own_notify_makes_a_device_appear() {
        let mut discovery = discovery();
        let now = Instant::now();
        discovery.on_datagram(now, MGMT, from(HOST_A), ROOT_ALIVE);
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(ROOT, LOCATION_A, HOST_A, 7, 1)]
        );
        assert!(discovery.take_changes().is_empty());
        let seen = discovery.device(MGMT, ROOT).unwrap();
        assert_eq!(&*seen.location, LOCATION_A);
        assert_eq!(seen.source, HOST_A);
        assert_eq!((seen.boot_id, seen.config_id), (Some(7), Some(1)));
        assert_eq!(seen.expires, now + secs(1800));
        assert!(seen.root);
        assert_eq!(seen.device_type, None);
        // Filed under the network it came from only.
        assert_eq!(discovery.devices(MGMT).count(), 1);
        assert_eq!(discovery.devices(TENANT).count(), 0);
        assert_eq!(discovery.devices(99).count(), 0);
        // Its description is to be fetched now; then only its expiry is ahead.
        assert_eq!(discovery.poll_at(), Some(now));
        let jobs = discovery.take_fetches(now);
        assert_eq!(jobs.len(), 1);
        assert_eq!(
            (
                jobs[0].udn.as_str(),
                jobs[0].location.as_str(),
                jobs[0].source
            ),
            (ROOT, LOCATION_A, HOST_A)
        );
        assert!(jobs[0].describe && !jobs[0].verify && !jobs[0].rebooted);
        assert_eq!(jobs[0].boot_id, Some(7));
        assert_eq!(discovery.poll_at(), Some(now + secs(1800)));

        // Its device type arrives: known as the tree's root type.
        let typed = says(ROOT, Some(URN_DEVICE_HYPERVISOR)).alive();
        discovery.on_datagram(now, MGMT, from(HOST_A), &typed);
        assert!(discovery.take_changes().is_empty());
        let seen = discovery.device(MGMT, ROOT).unwrap();
        assert_eq!(seen.device_type.as_deref(), Some(URN_DEVICE_HYPERVISOR));
        assert_eq!(
            discovery.root_device_type(MGMT, seen),
            Some(URN_DEVICE_HYPERVISOR)
        );
        check_invariants(&discovery);
    }

    #[test]
    fn gupnp_response_is_taken_after_our_search() {
        let mut discovery = discovery();
        let now = Instant::now();
        searched(&mut discovery, now);
        discovery.on_datagram(now + secs(1), MGMT, from(GUPNP_HOST), GUPNP_RESPONSE);
        let location = "http://192.168.10.30:41253/b2a4c9e0-1f3d-4c5e-8a7b-6d9e0f1a2b3c.xml";
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(GUPNP_UDN, location, GUPNP_HOST, 1, 2)]
        );
        let seen = discovery.device(MGMT, GUPNP_UDN).unwrap();
        assert!(seen.root);
        assert_eq!(seen.expires, now + secs(1) + secs(1800));
    }

    #[test]
    fn every_message_of_a_udn_refreshes_one_entry_with_the_latest_clamped_max_age() {
        let mut discovery = discovery();
        let now = Instant::now();
        let targets = [
            Some(SSDP_NT_ROOT_DEVICE),
            None,
            Some(URN_DEVICE_HYPERVISOR),
            Some("urn:xenplug-org:service:Hypervisor:1"),
        ];
        for (at, target) in targets.into_iter().enumerate() {
            let message = says(ROOT, target).alive();
            discovery.on_datagram(now + secs(at as u64), MGMT, from(HOST_A), &message);
        }
        assert_eq!(discovery.take_changes().len(), 1);
        assert_eq!(discovery.devices(MGMT).count(), 1);
        assert_eq!(
            discovery.device(MGMT, ROOT).unwrap().expires,
            now + secs(3) + secs(1800)
        );
        // The latest message counts, also when shorter; clamped into [60, 3600].
        for (max_age, life) in [(600, 600), (5, 60), (0, 60), (99_999, 3600)] {
            let message = Says {
                max_age,
                ..says(ROOT, None)
            }
            .alive();
            discovery.on_datagram(now + secs(10), MGMT, from(HOST_A), &message);
            let expires = discovery.device(MGMT, ROOT).unwrap().expires;
            assert_eq!(expires, now + secs(10) + secs(life), "max-age {max_age}");
        }
        // Without CACHE-CONTROL: the shortest life.
        let bare = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\
LOCATION: http://192.168.10.20:49152/description.xml\r\nNT: upnp:rootdevice\r\n\
NTS: ssdp:alive\r\nUSN: uuid:0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b::upnp:rootdevice\r\n\r\n";
        discovery.on_datagram(now + secs(20), MGMT, from(HOST_A), bare);
        assert_eq!(
            discovery.device(MGMT, ROOT).unwrap().expires,
            now + secs(20) + secs(60)
        );
        assert!(discovery.take_changes().is_empty());
        check_invariants(&discovery);
    }

    #[test]
    fn devices_expire_after_their_max_age() {
        let mut discovery = discovery();
        let now = Instant::now();
        feed(&mut discovery, now, HOST_A, &tree(&DOMAINS[..1], 7, 1));
        discovery.take_changes();
        assert_eq!(discovery.take_fetches(now).len(), 1);
        let expires = now + secs(1800);
        assert_eq!(discovery.poll_at(), Some(expires));
        discovery.expire(expires - Duration::from_millis(1));
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.devices(MGMT).count(), 2);
        discovery.expire(expires);
        let mut wanted = vec![
            gone(ROOT, GoneReason::Expired),
            gone(DOMAINS[0], GoneReason::Expired),
        ];
        wanted.sort_by_key(|change| format!("{change:?}"));
        assert_eq!(discovery.take_changes(), wanted);
        assert_eq!(discovery.devices(MGMT).count(), 0);
        assert_eq!(discovery.poll_at(), None);
        check_invariants(&discovery);
        // Heard again later: a new appearance.
        feed(&mut discovery, expires, HOST_A, &tree(&[], 7, 1));
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(ROOT, LOCATION_A, HOST_A, 7, 1)]
        );
    }

    #[test]
    fn bootid_configid_and_location_changes_ask_for_a_refetch() {
        let mut discovery = discovery();
        let now = Instant::now();
        feed(&mut discovery, now, HOST_A, &tree(&DOMAINS[..2], 7, 1));
        assert_eq!(discovery.take_changes().len(), 1);

        // Nothing different: a refresh only.
        feed(
            &mut discovery,
            now + secs(5),
            HOST_A,
            &tree(&DOMAINS[..2], 7, 1),
        );
        assert!(discovery.take_changes().is_empty());
        assert_eq!(
            discovery.device(MGMT, DOMAINS[1]).unwrap().expires,
            now + secs(5) + secs(1800)
        );

        // A reboot: every message carries the new BOOTID, one refetch for the tree.
        feed(&mut discovery, now, HOST_A, &tree(&DOMAINS[..2], 8, 1));
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, LOCATION_A, 8, 1, RefetchReason::Rebooted)]
        );
        assert_eq!(discovery.device(MGMT, DOMAINS[1]).unwrap().boot_id, Some(8));

        // A new configuration, first heard from an embedded device: named by the root.
        let mut reconfigured = tree(&DOMAINS[..2], 8, 2);
        reconfigured.reverse();
        feed(&mut discovery, now, HOST_A, &reconfigured);
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, LOCATION_A, 8, 2, RefetchReason::Reconfigured)]
        );

        // Both at once: the reboot is what is reported.
        feed(&mut discovery, now, HOST_A, &tree(&DOMAINS[..2], 9, 3));
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, LOCATION_A, 9, 3, RefetchReason::Rebooted)]
        );

        // A message without the numbers (UDA 1.0 style) is no change.
        let plain = Says {
            boot_id: None,
            config_id: None,
            ..says(ROOT, None)
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &plain.alive());
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.device(MGMT, ROOT).unwrap().boot_id, Some(9));

        // A new port: the root moves first (one refetch), the domains follow silently.
        let moved = "http://192.168.10.20:49200/description.xml";
        for (udn, target) in [
            (ROOT, Some(SSDP_NT_ROOT_DEVICE)),
            (DOMAINS[0], None),
            (DOMAINS[1], None),
        ] {
            let message = Says {
                location: moved,
                boot_id: Some(9),
                config_id: Some(3),
                ..says(udn, target)
            };
            discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
            check_invariants(&discovery);
        }
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, moved, 9, 3, RefetchReason::Moved)]
        );
        assert!(discovery
            .devices(MGMT)
            .all(|(_, seen)| &*seen.location == moved));
        assert_eq!(discovery.tables[0].groups.len(), 1);
    }

    #[test]
    fn a_move_with_a_reboot_reports_the_reboot() {
        let mut discovery = discovery();
        let now = Instant::now();
        feed(&mut discovery, now, HOST_A, &tree(&[], 7, 1));
        discovery.take_changes();
        let elsewhere = "http://192.168.10.21:80/d.xml";
        let message = Says {
            location: elsewhere,
            boot_id: Some(8),
            ..says(ROOT, Some(SSDP_NT_ROOT_DEVICE))
        };
        let host = Ipv4Addr::new(192, 168, 10, 21);
        discovery.on_datagram(now, MGMT, from(host), &message.alive());
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, elsewhere, 8, 1, RefetchReason::Rebooted)]
        );
        assert_eq!(discovery.device(MGMT, ROOT).unwrap().source, host);
        check_invariants(&discovery);
    }

    #[test]
    fn embedded_devices_share_one_fetch_under_the_root() {
        let mut discovery = discovery();
        let now = Instant::now();
        // Heard out of order: an embedded device first.
        let mut messages = tree(&DOMAINS[..2], 7, 1);
        messages.rotate_left(3);
        feed(&mut discovery, now, HOST_A, &messages);
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(DOMAINS[0], LOCATION_A, HOST_A, 7, 1)]
        );
        assert_eq!(discovery.devices(MGMT).count(), 3);
        for (udn, seen) in discovery.devices(MGMT) {
            assert_eq!(&*seen.location, LOCATION_A);
            assert_eq!(
                discovery.root_device_type(MGMT, seen),
                Some(URN_DEVICE_HYPERVISOR)
            );
            assert_eq!(seen.root, udn == ROOT);
        }
        // The Domains share one copy of their device type.
        let [first, second] = [DOMAINS[0], DOMAINS[1]].map(|udn| {
            discovery
                .device(MGMT, udn)
                .unwrap()
                .device_type
                .clone()
                .unwrap()
        });
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(
            discovery
                .device(MGMT, DOMAINS[1])
                .unwrap()
                .device_type
                .as_deref(),
            Some(URN_DEVICE_DOMAIN)
        );
        check_invariants(&discovery);
        // The root took the LOCATION over: later changes name it.
        let group = &discovery.tables[0].groups[LOCATION_A];
        assert_eq!((group.owner.as_str(), group.members), (ROOT, 3));

        // DESIGN: a VM appearing sends ssdp:alive for its embedded device alone, with the
        // new CONFIGID. One refetch of the root's description.
        let new_domain = Says {
            config_id: Some(2),
            ..says(DOMAINS[2], None)
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &new_domain.alive());
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, LOCATION_A, 7, 2, RefetchReason::Reconfigured)]
        );
        let domain = discovery.device(MGMT, DOMAINS[2]).unwrap();
        assert_eq!(
            discovery.root_device_type(MGMT, domain),
            Some(URN_DEVICE_HYPERVISOR)
        );
        // An embedded device heard late with the known CONFIGID: no fetch.
        let mut other = discovery_with_root_first();
        let late = says(DOMAINS[2], Some(URN_DEVICE_DOMAIN));
        other.on_datagram(now, MGMT, from(HOST_A), &late.alive());
        assert!(other.take_changes().is_empty());
        check_invariants(&discovery);
        check_invariants(&other);
    }

    fn discovery_with_root_first() -> Discovery {
        let mut discovery = discovery();
        feed(
            &mut discovery,
            Instant::now(),
            HOST_A,
            &tree(&DOMAINS[..2], 7, 1),
        );
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(ROOT, LOCATION_A, HOST_A, 7, 1)]
        );
        discovery
    }

    #[test]
    fn byebye_removes_at_once_and_confirms_with_a_search() {
        let mut discovery = discovery_with_root_first();
        let now = Instant::now();
        // An embedded device leaves with the tree's new CONFIGID: gone, and a refetch.
        let leaving = Says {
            config_id: Some(2),
            ..says(DOMAINS[1], Some(URN_DEVICE_DOMAIN))
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &leaving.byebye());
        assert_eq!(
            discovery.take_changes(),
            vec![
                gone(DOMAINS[1], GoneReason::ByeBye),
                refetch(ROOT, LOCATION_A, 7, 2, RefetchReason::Reconfigured),
            ]
        );
        // Its other byebyes find nothing left.
        discovery.on_datagram(now, MGMT, from(HOST_A), &leaving.byebye());
        assert!(discovery.take_changes().is_empty());
        assert!(sent(&mut discovery, now).is_empty());
        check_invariants(&discovery);

        // A byebye from another address of the subnet is not believed.
        let forger = Ipv4Addr::new(192, 168, 10, 66);
        discovery.on_datagram(now, MGMT, from(forger), &says(ROOT, None).byebye());
        assert!(discovery.take_changes().is_empty());
        assert!(discovery.device(MGMT, ROOT).is_some());

        // The whole tree leaves (with the CONFIGID it has now): root first, then the last
        // domain; one confirmation search, for the last UDN of the LOCATION.
        let root_leaving = Says {
            config_id: Some(2),
            ..says(ROOT, None)
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &root_leaving.byebye());
        assert_eq!(
            discovery.take_changes(),
            vec![gone(ROOT, GoneReason::ByeBye)]
        );
        let group = &discovery.tables[0].groups[LOCATION_A];
        assert_eq!(
            (group.owner.as_str(), group.owner_is_root),
            (DOMAINS[0], false)
        );
        check_invariants(&discovery);
        assert!(sent(&mut discovery, now).is_empty());
        let last_leaving = Says {
            config_id: Some(2),
            ..says(DOMAINS[0], None)
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &last_leaving.byebye());
        assert_eq!(
            discovery.take_changes(),
            vec![gone(DOMAINS[0], GoneReason::ByeBye)]
        );
        assert_eq!(discovery.devices(MGMT).count(), 0);
        check_invariants(&discovery);
        let first = sent(&mut discovery, now);
        assert_eq!(first.len(), 1);
        let Ok(Message::Search(search)) = wire_ssdp::parse(&first[0].2) else {
            panic!("not a search");
        };
        assert_eq!(search.search_target, DOMAINS[0]);
        assert_eq!(search.max_wait, Some("2"));
        let repeat = discovery.poll_at().unwrap();
        assert_eq!(sent(&mut discovery, repeat)[0].2, first[0].2);

        // The device was still there: it answers and appears again.
        let answer = says(DOMAINS[0], None).response();
        discovery.on_datagram(repeat + secs(1), MGMT, from(HOST_A), &answer);
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(DOMAINS[0], LOCATION_A, HOST_A, 7, 1)]
        );
    }

    #[test]
    fn confirmation_searches_are_bounded() {
        let mut discovery = discovery();
        let now = Instant::now();
        // Many single-device trees, each on its own host, each saying byebye.
        let hosts: Vec<Ipv4Addr> = (1..=20)
            .map(|h| Ipv4Addr::new(192, 168, 10, 100 + h))
            .collect();
        let udns: Vec<String> = (0..20)
            .map(|n| format!("uuid:00000000-0000-0000-0000-{n:012}"))
            .collect();
        for (host, udn) in hosts.iter().zip(&udns) {
            let location = format!("http://{host}/d.xml");
            let message = Says {
                location: &location,
                ..says(udn, Some(SSDP_NT_ROOT_DEVICE))
            };
            discovery.on_datagram(now, MGMT, from(*host), &message.alive());
            discovery.on_datagram(now, MGMT, from(*host), &message.byebye());
        }
        assert_eq!(
            discovery.tables[0].searches.len(),
            DISCOVERY_MAX_PENDING_SEARCHES
        );
        // The caller's ssdp:all still fits; it makes waiting UDN searches redundant, not void.
        discovery.search(now, MGMT);
        assert_eq!(
            discovery.tables[0].searches.len(),
            DISCOVERY_MAX_PENDING_SEARCHES + DISCOVERY_SEARCH_SENDS
        );
        let all = sent(&mut discovery, now + SSDP_REPEAT_MAX);
        assert_eq!(
            all.len(),
            DISCOVERY_MAX_PENDING_SEARCHES + DISCOVERY_SEARCH_SENDS
        );
    }

    #[test]
    fn update_records_the_next_bootid_without_a_refetch() {
        let mut discovery = discovery_with_root_first();
        let now = Instant::now();
        let update = says(ROOT, Some(SSDP_NT_ROOT_DEVICE)).notify(NotifyKind::Update, Some(8));
        discovery.on_datagram(now, MGMT, from(HOST_A), &update);
        // The same update for another UDN of the tree (BOOTID still 7): no refetch either.
        let update = says(DOMAINS[0], None).notify(NotifyKind::Update, Some(8));
        discovery.on_datagram(now, MGMT, from(HOST_A), &update);
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.device(MGMT, ROOT).unwrap().boot_id, Some(8));
        assert_eq!(discovery.device(MGMT, DOMAINS[0]).unwrap().boot_id, Some(8));
        // No expiry refresh from an update.
        assert!(discovery.device(MGMT, ROOT).unwrap().expires <= now + secs(1800));
        // The alive messages that follow carry BOOTID 8: no reboot seen.
        feed(&mut discovery, now, HOST_A, &tree(&DOMAINS[..2], 8, 1));
        assert!(discovery.take_changes().is_empty());

        // An update from BOOTID 20 to 21 when we know 8: we missed a reboot.
        let missed = Says {
            boot_id: Some(20),
            ..says(ROOT, None)
        }
        .notify(NotifyKind::Update, Some(21));
        discovery.on_datagram(now, MGMT, from(HOST_A), &missed);
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, LOCATION_A, 21, 1, RefetchReason::Rebooted)]
        );
        // An update for an unknown UDN, or naming another LOCATION, changes nothing.
        let stranger = says(DOMAINS[2], None).notify(NotifyKind::Update, Some(99));
        discovery.on_datagram(now, MGMT, from(HOST_A), &stranger);
        let elsewhere = Says {
            location: "http://192.168.10.20:1/x.xml",
            ..says(ROOT, None)
        }
        .notify(NotifyKind::Update, Some(99));
        discovery.on_datagram(now, MGMT, from(HOST_A), &elsewhere);
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.device(MGMT, ROOT).unwrap().boot_id, Some(21));
        assert!(discovery.device(MGMT, DOMAINS[2]).is_none());
    }

    #[test]
    fn location_must_name_the_source_address() {
        let mut discovery = discovery();
        let now = Instant::now();
        for location in [
            // Another host of the subnet, or elsewhere (the fetch would go there).
            "http://192.168.10.21:49152/description.xml",
            "http://127.0.0.1:80/description.xml",
            "http://8.8.8.8/x",
            // Names are never resolved.
            "http://hypervisor.local:49152/description.xml",
            "http://localhost/description.xml",
            // Other schemes, forms that hide the host, odd numbers.
            "https://192.168.10.20:49152/description.xml",
            "ftp://192.168.10.20/description.xml",
            "192.168.10.20:49152/description.xml",
            "http://evil@192.168.10.20/description.xml",
            "http://192.168.10.20@evil/description.xml",
            "http://192.168.010.020/description.xml",
            "http://3232238100/description.xml",
            "http://192.168.10.20:0/description.xml",
            "http://192.168.10.20:65536/description.xml",
            "http://192.168.10.20:/description.xml",
            "http://192.168.10.20:+80/description.xml",
            "http://[::ffff:192.168.10.20]/description.xml",
            "http://192.168.10.20/des cription.xml",
            "http://",
        ] {
            let message = Says {
                location,
                ..says(ROOT, Some(SSDP_NT_ROOT_DEVICE))
            };
            discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
            assert_eq!(discovery.devices(MGMT).count(), 0, "{location}");
        }
        let mut long = String::from("http://192.168.10.20/");
        long.push_str(&"a".repeat(DISCOVERY_MAX_LOCATION));
        assert_eq!(location_address(&long), None);
        assert!(discovery.take_changes().is_empty());

        for (location, address) in [
            (
                "http://192.168.10.20:49152/description.xml",
                "192.168.10.20:49152",
            ),
            ("HTTP://192.168.10.20/description.xml", "192.168.10.20:80"),
            ("http://192.168.10.20", "192.168.10.20:80"),
            ("http://192.168.10.20:8080?x=1", "192.168.10.20:8080"),
        ] {
            assert_eq!(
                location_address(location),
                address.parse().ok(),
                "{location}"
            );
        }
        // A good LOCATION on the right address is taken.
        let message = Says {
            location: "HTTP://192.168.10.20/description.xml",
            ..says(ROOT, None)
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
        assert_eq!(discovery.devices(MGMT).count(), 1);
    }

    #[test]
    fn foreign_subnets_and_unknown_networks_are_dropped() {
        let mut discovery = discovery();
        let now = Instant::now();
        let foreign = Ipv4Addr::new(192, 168, 11, 20);
        let message = Says {
            location: "http://192.168.11.20:49152/description.xml",
            ..says(ROOT, Some(SSDP_NT_ROOT_DEVICE))
        };
        discovery.on_datagram(now, MGMT, from(foreign), &message.alive());
        // The management network's device heard on the tenant network's socket.
        discovery.on_datagram(now, TENANT, from(HOST_A), ROOT_ALIVE);
        discovery.on_datagram(now, 99, from(HOST_A), ROOT_ALIVE);
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.devices(MGMT).count(), 0);
        assert_eq!(discovery.devices(TENANT).count(), 0);

        // The tenant network takes its own devices.
        let vm = Ipv4Addr::new(10, 20, 3, 4);
        let message = Says {
            location: "http://10.20.3.4:49152/description.xml",
            ..says(DOMAINS[0], Some(SSDP_NT_ROOT_DEVICE))
        };
        discovery.on_datagram(now, TENANT, from(vm), &message.alive());
        let changes = discovery.take_changes();
        assert!(matches!(
            changes.as_slice(),
            [Change::Appeared { network: TENANT, source, .. }] if *source == vm
        ));
        assert_eq!(discovery.devices(MGMT).count(), 0);
    }

    #[test]
    fn devices_per_network_are_bounded() {
        let mut discovery = Discovery::new(config(3), networks(), 1);
        let now = Instant::now();
        let udns: Vec<String> = (0..5)
            .map(|n| format!("uuid:00000000-0000-0000-0000-{n:012}"))
            .collect();
        for udn in &udns {
            let message = says(udn, Some(SSDP_NT_ROOT_DEVICE));
            discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
        }
        assert_eq!(discovery.devices(MGMT).count(), 3);
        // Three UDNs at one LOCATION: one appearance, the first.
        assert_eq!(
            discovery.take_changes(),
            vec![appeared(&udns[0], LOCATION_A, HOST_A, 7, 1)]
        );
        // One address at its quota: refused, logged once.
        assert!(discovery.tables[0].sources[&HOST_A].refused_logged);
        assert!(discovery.device(MGMT, &udns[3]).is_none());
        // Known ones are still refreshed.
        let again = says(&udns[2], None);
        discovery.on_datagram(now + secs(9), MGMT, from(HOST_A), &again.alive());
        assert_eq!(
            discovery.device(MGMT, &udns[2]).unwrap().expires,
            now + secs(9) + secs(1800)
        );
        // One leaves: room for a new one.
        discovery.on_datagram(now, MGMT, from(HOST_A), &says(&udns[1], None).byebye());
        let message = says(&udns[4], None);
        discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
        assert!(discovery.device(MGMT, &udns[4]).is_some());
        assert_eq!(discovery.devices(MGMT).count(), 3);
        check_invariants(&discovery);
    }

    #[test]
    fn responses_are_taken_only_within_the_search_window() {
        let mut discovery = discovery();
        let now = Instant::now();
        discovery.on_datagram(now, MGMT, from(GUPNP_HOST), GUPNP_RESPONSE);
        // Queued but not sent yet: still unsolicited.
        discovery.search(now, MGMT);
        discovery.on_datagram(now, MGMT, from(GUPNP_HOST), GUPNP_RESPONSE);
        assert_eq!(discovery.devices(MGMT).count(), 0);
        // A search on another network opens only that network's window.
        discovery.search(now, TENANT);
        sent(&mut discovery, now);
        let repeat = discovery.poll_at().unwrap();
        sent(&mut discovery, repeat);
        // Open until MX (2 s) + grace after the last send.
        let closes = repeat + secs(2) + DISCOVERY_RESPONSE_GRACE;
        discovery.on_datagram(closes, MGMT, from(GUPNP_HOST), GUPNP_RESPONSE);
        assert_eq!(discovery.devices(MGMT).count(), 1);
        assert_eq!(discovery.take_changes().len(), 1);
        let late = says(ROOT, None).response();
        discovery.on_datagram(closes + Duration::from_millis(1), MGMT, from(HOST_A), &late);
        assert_eq!(discovery.devices(MGMT).count(), 1);
        assert!(discovery.take_changes().is_empty());
    }

    #[test]
    fn a_search_is_sent_twice_with_the_right_bytes() {
        let mut discovery = discovery();
        let now = Instant::now();
        assert_eq!(discovery.poll_at(), None);
        discovery.search(now, MGMT);
        // Asked again while waiting: still one search.
        discovery.search(now, MGMT);
        discovery.search(now, 99);
        assert_eq!(discovery.poll_at(), Some(now));
        let first = sent(&mut discovery, now);
        assert_eq!(first.len(), 1);
        let (network, destination, bytes) = &first[0];
        assert_eq!(*network, MGMT);
        assert_eq!(*destination, SocketAddrV4::new(SSDP_V4_GROUP, SSDP_PORT));
        assert_eq!(
            bytes.as_slice(),
            b"M-SEARCH * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\n\
MX: 2\r\n\
ST: ssdp:all\r\n\
USER-AGENT: Linux/6.1 UPnP/1.1 xenplug/0.1.0\r\n\
\r\n"
                .as_slice()
        );
        let Ok(Message::Search(search)) = wire_ssdp::parse(bytes) else {
            panic!("not a search");
        };
        assert_eq!(search.host, SSDP_HOST);
        assert_eq!(search.mandatory_extension, SSDP_MAN_DISCOVER);
        assert_eq!(search.max_wait, Some("2"));
        assert_eq!(search.search_target, SSDP_ST_ALL);
        assert_eq!(search.user_agent, Some(USER_AGENT));

        let repeat = discovery.poll_at().unwrap();
        assert!(repeat >= now + SSDP_REPEAT_MIN && repeat < now + SSDP_REPEAT_MAX);
        assert!(sent(&mut discovery, repeat - Duration::from_millis(1)).is_empty());
        let second = sent(&mut discovery, repeat);
        assert_eq!(second, first);
        // Next: the periodic search for root devices.
        assert_eq!(discovery.poll_at(), Some(repeat + secs(300)));
        assert!(sent(&mut discovery, repeat + secs(60)).is_empty());
    }

    /// The search targets `discovery` sends at `now`, in order.
    fn targets_sent(discovery: &mut Discovery, now: Instant) -> Vec<String> {
        sent(discovery, now)
            .iter()
            .map(|(_, _, bytes)| match wire_ssdp::parse(bytes) {
                Ok(Message::Search(search)) => search.search_target.to_string(),
                _ => panic!("not a search"),
            })
            .collect()
    }

    #[test]
    fn root_devices_are_searched_for_periodically_and_after_drops() {
        let mut discovery = discovery();
        let now = Instant::now();
        discovery.search(now, MGMT);
        assert_eq!(targets_sent(&mut discovery, now), [SSDP_ST_ALL]);
        let repeat = discovery.poll_at().unwrap();
        assert_eq!(targets_sent(&mut discovery, repeat), [SSDP_ST_ALL]);
        // Nothing else for 300 s, then upnp:rootdevice, twice, and again 300 s later.
        let periodic = repeat + secs(300);
        assert_eq!(discovery.poll_at(), Some(periodic));
        assert_eq!(
            targets_sent(&mut discovery, periodic),
            [SSDP_NT_ROOT_DEVICE]
        );
        let again = discovery.poll_at().unwrap();
        assert!(again < periodic + SSDP_REPEAT_MAX);
        assert_eq!(targets_sent(&mut discovery, again), [SSDP_NT_ROOT_DEVICE]);
        assert_eq!(discovery.poll_at(), Some(again + secs(300)));

        // Datagrams dropped: a search for root devices 2 s later, one for the whole burst.
        let drop = again + secs(10);
        assert_eq!(discovery.on_overflow(drop, MGMT), Some(drop + secs(2)));
        assert_eq!(discovery.on_overflow(drop + secs(1), MGMT), None);
        assert_eq!(discovery.on_overflow(drop, 99), None);
        assert!(targets_sent(&mut discovery, drop + secs(1)).is_empty());
        assert_eq!(
            targets_sent(&mut discovery, drop + secs(2)),
            [SSDP_NT_ROOT_DEVICE]
        );
        let repeat = discovery.poll_at().unwrap();
        assert_eq!(targets_sent(&mut discovery, repeat), [SSDP_NT_ROOT_DEVICE]);
        // Its answers overflow too: each search waits longer after the one before, up to 64 s.
        let mut searched = drop + secs(2);
        let mut at = repeat;
        let mut pauses = Vec::new();
        for _ in 0..8 {
            let next = discovery.on_overflow(at, MGMT).unwrap();
            pauses.push((next - searched).as_secs());
            searched = next;
            assert_eq!(targets_sent(&mut discovery, next), [SSDP_NT_ROOT_DEVICE]);
            at = discovery.poll_at().unwrap();
            targets_sent(&mut discovery, at);
        }
        assert_eq!(pauses, [2, 4, 8, 16, 32, 64, 64, 64], "{pauses:?}");
        // Quiet for long enough: back to 2 s.
        let quiet = at + secs(200);
        assert_eq!(discovery.on_overflow(quiet, MGMT), Some(quiet + secs(2)));
    }

    #[test]
    fn search_mx_is_clamped() {
        let mut discovery = discovery_with(Config {
            search_mx: 30,
            ..config(4)
        });
        let now = Instant::now();
        discovery.search(now, TENANT);
        let first = sent(&mut discovery, now);
        assert_eq!(first[0].0, TENANT);
        let Ok(Message::Search(search)) = wire_ssdp::parse(&first[0].2) else {
            panic!("not a search");
        };
        assert_eq!(search.max_wait, Some("5"));
    }

    #[test]
    fn searches_from_others_are_ignored() {
        let mut discovery = discovery();
        let now = Instant::now();
        let search = b"M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\nMX: 1\r\nST: ssdp:all\r\n\r\n";
        discovery.on_datagram(now, MGMT, from(HOST_A), search);
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.poll_at(), None);
        // Nor does it open the response window.
        discovery.on_datagram(now, MGMT, from(GUPNP_HOST), GUPNP_RESPONSE);
        assert_eq!(discovery.devices(MGMT).count(), 0);
    }

    #[test]
    fn bad_usns_are_dropped() {
        let mut discovery = discovery();
        let now = Instant::now();
        let long = format!("uuid:{}", "a".repeat(DISCOVERY_MAX_UDN));
        for udn in ["uuid:", "urn:x", "0b7a1c52", "uuid:a b", long.as_str()] {
            let message = says(udn, Some(SSDP_NT_ROOT_DEVICE));
            discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
        }
        assert_eq!(discovery.devices(MGMT).count(), 0);
        assert_eq!(
            udn_of("UUID:x::upnp:rootdevice", from(HOST_A), 0),
            Some("UUID:x")
        );
        assert_eq!(device_type_of(URN_DEVICE_DOMAIN), Some(URN_DEVICE_DOMAIN));
        assert_eq!(device_type_of(URN_SERVICE_DOMAIN_CONTROL), None);
        assert_eq!(device_type_of("urn::device:X:1"), None);
        assert_eq!(device_type_of(SSDP_NT_ROOT_DEVICE), None);
    }

    #[test]
    fn a_configid_flood_queues_one_fetch_and_backs_off() {
        let mut discovery = discovery();
        let now = Instant::now();
        let silent = "http://192.168.10.20:9/never.xml";
        for n in 0..5_000u32 {
            let message = Says {
                location: silent,
                config_id: Some(1 + n % 2),
                ..says(ROOT, Some(SSDP_NT_ROOT_DEVICE))
            };
            discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
        }
        assert_eq!(discovery.take_changes().len(), 5_000);
        assert_eq!(discovery.fetches.len(), 1);
        let first = discovery.take_fetches(now);
        assert_eq!(first.len(), 1);
        // The flood goes on while it runs: nothing more starts.
        for n in 0..100u32 {
            let message = Says {
                location: silent,
                config_id: Some(1 + n % 2),
                ..says(ROOT, None)
            };
            discovery.on_datagram(now, MGMT, from(HOST_A), &message.alive());
        }
        assert!(discovery.take_fetches(now + secs(5)).is_empty());
        // It fails: the next try waits for the pause however many datagrams come.
        let failed = now + secs(5);
        assert_eq!(
            discovery.on_fetched(failed, &first[0], Fetched::Failed),
            None
        );
        assert_eq!(discovery.poll_at(), Some(failed + secs(1)));
        let mut at = failed + secs(1);
        for attempt in 2..=3 {
            let jobs = discovery.take_fetches(at);
            assert_eq!(jobs.len(), 1, "attempt {attempt}");
            at += secs(5);
            let report = discovery.on_fetched(at, &jobs[0], Fetched::Failed);
            assert_eq!(report.is_some(), attempt == 3);
            at = discovery.poll_at().unwrap();
        }
        // Undescribed: it stays in the table for its max-age, nothing to fetch.
        assert_eq!(discovery.poll_at(), Some(now + secs(1800)));
        assert!(!discovery.device(MGMT, ROOT).unwrap().described);
        check_invariants(&discovery);
    }

    #[test]
    fn one_address_holds_its_share_and_the_biggest_gives_way_when_full() {
        let mut discovery = discovery_with(Config {
            max_devices_per_source: 40,
            ..config(100)
        });
        let now = Instant::now();
        let host = |n: u8| Ipv4Addr::new(192, 168, 10, n);
        let flood = |discovery: &mut Discovery, address: Ipv4Addr, count: usize, tag: u8| {
            let location = format!("http://{address}:80/d.xml");
            for n in 0..count {
                let udn = format!("uuid:{tag:02x}000000-0000-0000-0000-{n:012}");
                let message = Says {
                    location: &location,
                    ..says(&udn, None)
                };
                discovery.on_datagram(now, MGMT, from(address), &message.alive());
            }
        };
        // One address: its share, no more.
        flood(&mut discovery, host(31), 50, 0x31);
        assert_eq!(discovery.tables[0].sources[&host(31)].devices, 40);
        assert!(discovery.tables[0].sources[&host(31)].refused_logged);
        // Others fill the table: 40 + 40 + 20.
        flood(&mut discovery, host(32), 40, 0x32);
        flood(&mut discovery, host(33), 20, 0x33);
        assert_eq!(discovery.devices(MGMT).count(), 100);
        // .32's description lists its first 30 devices: described, they go last.
        let listed: Vec<String> = (0..30)
            .map(|n| format!("uuid:32000000-0000-0000-0000-{n:012}"))
            .collect();
        let listed: Vec<&str> = listed.iter().map(String::as_str).collect();
        discovery.take_changes();
        // One fetch per address runs; .32's lists its first 30 devices.
        let jobs = discovery.take_fetches(now);
        assert_eq!(jobs.len(), 3);
        let job = jobs.iter().find(|job| job.source == host(32)).unwrap();
        discovery.on_fetched(now, job, Fetched::Listed(&listed));
        // A new VM from a fresh address: the biggest holder (.32 and .31 hold 40; the higher
        // address) gives way, undescribed entries first.
        flood(&mut discovery, host(40), 1, 0x40);
        let evicted: Vec<String> = discovery
            .take_changes()
            .into_iter()
            .filter_map(|change| match change {
                Change::Gone {
                    udn,
                    reason: GoneReason::Evicted,
                    ..
                } => Some(udn),
                _ => None,
            })
            .collect();
        assert_eq!(evicted.len(), 19);
        assert!(evicted.iter().all(|udn| udn.starts_with("uuid:32")));
        let undescribed = evicted
            .iter()
            .filter(|udn| !listed.contains(&udn.as_str()))
            .count();
        assert_eq!(undescribed, 10);
        assert!(discovery.tables[0].sources[&host(32)].evicted_logged);
        assert_eq!(discovery.tables[0].sources[&host(40)].devices, 1);
        check_invariants(&discovery);
        // Refill to full; an address holding 20 cannot evict from one holding less than 42.
        flood(&mut discovery, host(41), 18, 0x41);
        assert_eq!(discovery.devices(MGMT).count(), 100);
        discovery.take_changes();
        flood(&mut discovery, host(33), 21, 0x33);
        assert!(discovery.take_changes().is_empty());
        assert!(discovery.tables[0].refused.contains(&host(33)));
        assert_eq!(discovery.tables[0].sources[&host(33)].devices, 20);
        // A known device keeps being refreshed in a full table.
        let udn = "uuid:33000000-0000-0000-0000-000000000001";
        let again = Says {
            location: "http://192.168.10.33:80/d.xml",
            ..says(udn, None)
        };
        discovery.on_datagram(now + secs(7), MGMT, from(host(33)), &again.alive());
        assert_eq!(
            discovery.device(MGMT, udn).unwrap().expires,
            now + secs(7) + secs(1800)
        );
        // A UDN moving to an address at its quota is refused too.
        let moving = Says {
            location: "http://192.168.10.31:80/d.xml",
            ..says(udn, None)
        };
        discovery.on_datagram(now, MGMT, from(host(31)), &moving.alive());
        assert_eq!(discovery.device(MGMT, udn).unwrap().source, host(33));
        check_invariants(&discovery);
    }

    #[test]
    fn a_flood_leaves_no_memory_behind_once_expired() {
        let mut discovery = discovery_with(Config {
            max_devices_per_source: 4096,
            ..config(32 * 1024)
        });
        let now = Instant::now();
        for n in 0..6_000u32 {
            let udn = format!("uuid:f1000000-0000-0000-0000-{n:012}");
            let location = format!("http://192.168.10.99:{}/d.xml", 1 + n % 60_000);
            let message = Says {
                location: &location,
                max_age: 60,
                ..says(&udn, None)
            };
            discovery.on_datagram(
                now,
                MGMT,
                from(Ipv4Addr::new(192, 168, 10, 99)),
                &message.alive(),
            );
        }
        assert_eq!(discovery.len(), 4096);
        assert_eq!(discovery.fetches.len(), 4096);
        // One address, one fetch at a time.
        assert_eq!(discovery.take_fetches(now).len(), 1);
        discovery.take_changes();
        let later = now + secs(61);
        sent(&mut discovery, later);
        assert!(discovery.is_empty());
        assert_eq!(discovery.take_changes().len(), 4096);
        let table = &discovery.tables[0];
        assert!(
            table.devices.capacity() <= 128,
            "{}",
            table.devices.capacity()
        );
        assert!(table.groups.capacity() <= 128);
        assert!(table.sources.capacity() <= 128);
        assert!(discovery.fetches.is_empty());
        assert_eq!(discovery.poll_at(), None);
    }

    #[test]
    fn a_forged_byebye_is_verified_and_kept() {
        let now = Instant::now();
        let mut discovery = described_tree(now);
        discovery.on_datagram(
            now,
            MGMT,
            from(HOST_A),
            &says(ROOT, Some(SSDP_NT_ROOT_DEVICE)).byebye(),
        );
        // Nothing removed yet: the root is leaving, verified by a fetch and a unicast search.
        assert!(discovery.take_changes().is_empty());
        assert!(discovery.device(MGMT, ROOT).unwrap().leaving);
        let searches = sent(&mut discovery, now);
        assert_eq!(searches.len(), 1);
        let (network, destination, bytes) = &searches[0];
        assert_eq!(
            (*network, *destination),
            (MGMT, SocketAddrV4::new(HOST_A, SSDP_PORT))
        );
        assert_eq!(
            bytes.as_slice(),
            b"M-SEARCH * HTTP/1.1\r\n\
HOST: 192.168.10.20:1900\r\n\
MAN: \"ssdp:discover\"\r\n\
ST: uuid:0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b\r\n\
USER-AGENT: Linux/6.1 UPnP/1.1 xenplug/0.1.0\r\n\
\r\n"
                .as_slice()
        );
        let jobs = discovery.take_fetches(now);
        assert_eq!(jobs.len(), 1);
        assert!(jobs[0].verify && !jobs[0].describe);
        // The device answers the search at once (the multicast window is closed: only a
        // verification opens it to this LOCATION).
        let answer = says(ROOT, None).response();
        discovery.on_datagram(now + Duration::from_millis(5), MGMT, from(HOST_A), &answer);
        assert!(discovery.device(MGMT, ROOT).unwrap().leaving);
        // Its description still lists it: kept, logged once as suspicious.
        let listed = [ROOT, DOMAINS[0], DOMAINS[1]];
        let at = now + Duration::from_millis(10);
        assert_eq!(
            discovery.on_fetched(at, &jobs[0], Fetched::Listed(&listed)),
            None
        );
        assert!(discovery.take_changes().is_empty());
        assert!(!discovery.device(MGMT, ROOT).unwrap().leaving);
        let group = &discovery.tables[0].groups[LOCATION_A];
        assert!(group.suspicious_logged && group.verification.is_none());
        assert_eq!(group.verify_after, Some(at + DISCOVERY_VERIFY_BACKOFF));
        assert!(discovery.tables[0].deadlines.is_empty());
        check_invariants(&discovery);

        // Another at once: its check waits for the pause, then runs the same way.
        discovery.on_datagram(at, MGMT, from(HOST_A), &says(ROOT, None).byebye());
        assert!(sent(&mut discovery, at).is_empty());
        assert!(discovery.take_fetches(at).is_empty());
        let start = at + DISCOVERY_VERIFY_BACKOFF;
        assert_eq!(sent(&mut discovery, start).len(), 1);
        let jobs = discovery.take_fetches(start);
        assert_eq!(jobs.len(), 1);
        discovery.on_datagram(start, MGMT, from(HOST_A), &says(DOMAINS[0], None).alive());
        discovery.on_fetched(start, &jobs[0], Fetched::Listed(&listed));
        assert!(discovery.take_changes().is_empty());
        assert_eq!(discovery.devices(MGMT).count(), 3);
        assert_eq!(
            discovery.tables[0].groups[LOCATION_A].verify_after,
            Some(start + DISCOVERY_VERIFY_BACKOFF * 2)
        );
        check_invariants(&discovery);
    }

    #[test]
    fn a_real_shutdown_is_gone_as_soon_as_the_description_fails() {
        let now = Instant::now();
        // xenplug's shutdown: every byebye at once, then nothing answers.
        let mut discovery = described_tree_leaving(now);
        assert!(discovery.take_changes().is_empty());
        let jobs = discovery.take_fetches(now);
        assert_eq!(jobs.len(), 1);
        discovery.on_fetched(now, &jobs[0], Fetched::Failed);
        let mut wanted = vec![
            gone(ROOT, GoneReason::ByeBye),
            gone(DOMAINS[0], GoneReason::ByeBye),
            gone(DOMAINS[1], GoneReason::ByeBye),
        ];
        wanted.sort_by_key(|change| format!("{change:?}"));
        let mut changes = discovery.take_changes();
        changes.sort_by_key(|change| format!("{change:?}"));
        assert_eq!(changes, wanted);
        assert!(discovery.is_empty());
        assert!(discovery.tables[0].deadlines.is_empty());
        assert!(discovery.fetches.is_empty());
        check_invariants(&discovery);
    }

    #[test]
    fn a_device_heard_after_its_description_was_read_is_verified_too() {
        let now = Instant::now();
        // The description was read before this Domain's own alive was heard (they race at a
        // hypervisor's start): not yet marked described, but it may be.
        let mut discovery = described_tree(now);
        feed(
            &mut discovery,
            now,
            HOST_A,
            &[says(DOMAINS[2], None).alive()],
        );
        discovery.take_changes();
        assert!(!discovery.device(MGMT, DOMAINS[2]).unwrap().described);
        let bye = says(DOMAINS[2], None).byebye();
        discovery.on_datagram(now, MGMT, from(HOST_A), &bye);
        assert!(discovery.take_changes().is_empty(), "not believed at once");
        assert!(discovery.device(MGMT, DOMAINS[2]).unwrap().leaving);
        let jobs = discovery.take_fetches(now);
        assert!(jobs.iter().any(|job| job.verify), "{jobs:?}");
        for job in &jobs {
            discovery.on_fetched(now, job, Fetched::Failed);
        }
        assert!(discovery
            .take_changes()
            .contains(&gone(DOMAINS[2], GoneReason::ByeBye)));
        check_invariants(&discovery);
    }

    #[test]
    fn a_device_that_stops_answering_searches_is_gone_after_the_wait() {
        let now = Instant::now();
        // GUPnP's shutdown: byebyes, its description still served for a moment, no answer to
        // searches.
        let mut discovery = described_tree_leaving(now);
        sent(&mut discovery, now);
        let jobs = discovery.take_fetches(now);
        let listed = [ROOT, DOMAINS[0], DOMAINS[1]];
        discovery.on_fetched(now, &jobs[0], Fetched::Listed(&listed));
        assert!(discovery.take_changes().is_empty());
        let until = now + DISCOVERY_VERIFY_WAIT;
        assert_eq!(
            discovery.poll_at(),
            Some(now + secs(1800)).min(Some(until)).map(|_| {
                let repeat = discovery.tables[0].searches.first().map(|s| s.due);
                repeat.map_or(until, |r| r.min(until))
            })
        );
        sent(&mut discovery, until - Duration::from_millis(1));
        assert!(discovery.take_changes().is_empty());
        sent(&mut discovery, until);
        assert_eq!(discovery.take_changes().len(), 3);
        assert!(discovery.is_empty());
        check_invariants(&discovery);
    }

    #[test]
    fn an_embedded_device_leaving_goes_when_the_description_drops_it() {
        let now = Instant::now();
        let mut discovery = described_tree(now);
        // DESIGN: a VM leaving says byebye for its Domain alone, with the new CONFIGID.
        let leaving = Says {
            config_id: Some(2),
            ..says(DOMAINS[1], Some(URN_DEVICE_DOMAIN))
        };
        discovery.on_datagram(now, MGMT, from(HOST_A), &leaving.byebye());
        assert_eq!(
            discovery.take_changes(),
            vec![refetch(ROOT, LOCATION_A, 7, 2, RefetchReason::Reconfigured)]
        );
        // The check now; the new description for the inventory a second after the last one.
        let jobs = discovery.take_fetches(now);
        assert_eq!(jobs.len(), 1);
        assert!(jobs[0].verify && !jobs[0].describe);
        let listed = [ROOT, DOMAINS[0]];
        discovery.on_fetched(now, &jobs[0], Fetched::Listed(&listed));
        assert_eq!(
            discovery.take_changes(),
            vec![gone(DOMAINS[1], GoneReason::ByeBye)]
        );
        let jobs = discovery.take_fetches(now + secs(1));
        assert_eq!(jobs.len(), 1);
        assert!(jobs[0].describe && !jobs[0].verify);
        // The tree stays; the verification is over.
        assert_eq!(discovery.devices(MGMT).count(), 2);
        assert!(discovery.tables[0].groups[LOCATION_A]
            .verification
            .is_none());
        sent(&mut discovery, now + secs(5));
        assert!(discovery.take_changes().is_empty());
        check_invariants(&discovery);
    }

    #[test]
    fn garbage_never_panics() {
        let mut discovery = Discovery::new(config(8), networks(), 3);
        let now = Instant::now();
        searched(&mut discovery, now);
        let mut fixtures: Vec<Vec<u8>> = vec![ROOT_ALIVE.to_vec(), GUPNP_RESPONSE.to_vec()];
        fixtures.extend(tree(&DOMAINS, 7, 1));
        fixtures.push(says(ROOT, None).byebye());
        fixtures.push(says(ROOT, None).notify(NotifyKind::Update, Some(8)));
        fixtures.push(says(DOMAINS[0], None).response());
        let mut rng = fastrand::Rng::with_seed(0xd15c);
        let sources = [HOST_A, GUPNP_HOST, Ipv4Addr::new(192, 168, 11, 1)];
        for fixture in &fixtures {
            for end in 0..=fixture.len() {
                discovery.on_datagram(now, MGMT, from(HOST_A), &fixture[..end]);
            }
            for at in 0..fixture.len() {
                let mut bytes = fixture.clone();
                bytes[at] = rng.u8(..);
                let source = sources[rng.usize(0..sources.len())];
                discovery.on_datagram(now, MGMT, from(source), &bytes);
                check_invariants(&discovery);
            }
        }
        for _ in 0..3000 {
            let len = rng.usize(0..400);
            let bytes: Vec<u8> = (0..len).map(|_| rng.u8(..)).collect();
            discovery.on_datagram(now, MGMT, from(HOST_A), &bytes);
        }
        check_invariants(&discovery);
        discovery.expire(now + secs(7200));
        assert_eq!(discovery.devices(MGMT).count(), 0);
        check_invariants(&discovery);
    }
}
