//! Engine layer: the device side of SSDP (UDA 1.1 sections 1.1-1.3): what to announce, when,
//! and which searches to answer. State only: time comes in as `now`, bytes go out through
//! `dispatch`; no sockets, no clock, no thread.
//!
//! Pending work is kept as small descriptions (which target, which kind, to whom, when);
//! messages are rendered at dispatch into a stack buffer with the `wire::ssdp` emitters, so
//! they always carry the current CONFIGID.

use super::{later, ssdp_repeat_delay};
use crate::model::Advertisement;
use crate::subnet::Subnet;
use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::ssdp_budget::ReplyBudget;
use crate::consts::{
    DESC_PATH, SSDP_EMIT_BUFFER, SSDP_HOST, SSDP_MAN_DISCOVER, SSDP_MAX_PENDING_REPLIES,
    SSDP_MIN_MAX_AGE, SSDP_MX_MAX, SSDP_MX_MIN, SSDP_NT_ROOT_DEVICE, SSDP_PORT, SSDP_ST_ALL,
    SSDP_V4_GROUP, UDN_PREFIX, URN_PREFIX,
};
use crate::wire::ssdp::{self as wire_ssdp, Message, Notify, NotifyKind, Response, Search};
use crate::wire::{self, Cursor};

/// Whole `ssdp:all` answers the reply queue holds at once: it holds this many replies per
/// target (at least [`SSDP_MAX_PENDING_REPLIES`]), so a hypervisor with many domains answers
/// several control points searching at once, and the interface's reply bytes
/// ([`super::ssdp_budget`]), not the queue, bound what it sends: with 1,000 domains (1.2 MB
/// an answer) two answers in full at once, a third its first part, the root device's
/// replies first.
const SSDP_ANSWERS_QUEUED: usize = 3;

/// One interface the SSDP engine advertises on: where LOCATION points and whose subnet it
/// answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvertisingInterface {
    /// Kernel interface index.
    pub index: u32,
    /// Our address on it: LOCATION points here.
    pub address: Ipv4Addr,
    /// Its subnet: searches from outside it are dropped.
    pub subnet: Subnet,
    /// Port of the HTTP server serving the description on this interface.
    pub http_port: u16,
}

/// What every announcement and response carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// CACHE-CONTROL max-age in seconds; raised to [`SSDP_MIN_MAX_AGE`] if lower.
    pub max_age: u32,
    /// BOOTID.UPNP.ORG value.
    pub boot_id: u32,
    /// SERVER header value (`OS/version UPnP/1.1 product/version`).
    pub server: String,
}

/// One datagram to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outgoing<'a> {
    /// Kernel index of the interface to send from.
    pub interface: u32,
    /// Where to: the multicast group for notifications, the searcher for responses.
    pub destination: SocketAddrV4,
    /// The rendered message.
    pub bytes: &'a [u8],
}

/// The SSDP device engine: announcements, their repeats and refreshes, and search replies.
pub struct Engine {
    config: Config,
    interfaces: Vec<AdvertisingInterface>,
    /// LOCATION of each interface, same order as `interfaces`.
    locations: Vec<String>,
    rng: fastrand::Rng,
    config_id: u32,
    targets: Vec<Target>,
    /// Targets gone from the model whose byebye has not been sent yet.
    retired: Vec<Target>,
    pending: Vec<Pending>,
    /// The next [`Pending::seq`].
    queued: u64,
    /// How many entries of `pending` are search replies.
    replies: usize,
    next_refresh: Option<Instant>,
    started: bool,
    shut_down: bool,
    /// Search reply budgets, one per interface (see [`super::ssdp_budget`]).
    budgets: Vec<ReplyBudget>,
}

/// One NT / USN pair: what one NOTIFY advertises and one search response answers.
#[derive(Debug, Clone)]
struct Target {
    udn: String,
    /// NT of the notification, ST of the response.
    notification_type: String,
    unique_service_name: String,
    kind: TargetKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetKind {
    RootDevice,
    Device,
    /// A device or service type, with its version when it ends in `:<number>`.
    Type(Option<TypeVersion>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TypeVersion {
    /// Length of the type without `:<version>`.
    base_len: usize,
    version: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TargetRef {
    Current(usize),
    Retired(usize),
}

#[derive(Debug, Clone, Copy)]
enum Work {
    /// A NOTIFY multicast on every interface.
    Notify { target: TargetRef, kind: NotifyKind },
    /// A search response unicast to `destination` from `interface`.
    Reply {
        interface: u32,
        destination: SocketAddrV4,
        target: usize,
        /// The version the search asked for, when lower than the target's own.
        version: Option<u32>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    due: Instant,
    /// Order of queueing: work due at the same instant leaves in this order.
    seq: u64,
    work: Work,
}

/// What a search target asks for (UDA 1.1 section 1.3.2), resolved once per search.
#[derive(Debug, Clone, Copy)]
enum Wanted<'a> {
    /// `ssdp:all`: every target.
    All,
    /// `upnp:rootdevice`.
    RootDevice,
    /// `uuid:...`: that device.
    Device(&'a str),
    /// A device or service type, with its base and version when it has one.
    Type {
        urn: &'a str,
        versioned: Option<(&'a str, u32)>,
    },
    /// Anything else matches nothing.
    Nothing,
}

impl<'a> Wanted<'a> {
    fn of(st: &'a str) -> Wanted<'a> {
        if st == SSDP_ST_ALL {
            Wanted::All
        } else if st == SSDP_NT_ROOT_DEVICE {
            Wanted::RootDevice
        } else if st.starts_with(UDN_PREFIX) {
            Wanted::Device(st)
        } else if st.starts_with(URN_PREFIX) {
            Wanted::Type {
                urn: st,
                versioned: split_version(st),
            }
        } else {
            Wanted::Nothing
        }
    }

    /// Whether `target` answers, and then with which version when the search asked for an
    /// older one than ours.
    fn answer(self, target: &Target) -> Option<Option<u32>> {
        match self {
            Wanted::All => Some(None),
            Wanted::RootDevice => (target.kind == TargetKind::RootDevice).then_some(None),
            Wanted::Device(udn) => (target.kind == TargetKind::Device
                && target.udn.eq_ignore_ascii_case(udn))
            .then_some(None),
            Wanted::Type { urn, versioned } => {
                let TargetKind::Type(own) = target.kind else {
                    return None;
                };
                match (versioned, own) {
                    // UDA 1.1 section 1.2.2: a device MUST answer searches for any version it
                    // supports (types are backward compatible), and (1.3.3) the response
                    // names the version that was asked for.
                    (Some((base, version)), Some(own)) => {
                        let own_base = target.notification_type.get(..own.base_len)?;
                        (own_base == base && own.version >= version)
                            .then_some((own.version != version).then_some(version))
                    }
                    _ => (target.notification_type == urn).then_some(None),
                }
            }
            Wanted::Nothing => None,
        }
    }
}

impl Engine {
    /// An engine for `interfaces`; `seed` drives every random delay (repeat, refresh, MX).
    pub fn new(config: Config, interfaces: Vec<AdvertisingInterface>, seed: u64) -> Self {
        let config = Config {
            max_age: config.max_age.max(SSDP_MIN_MAX_AGE),
            ..config
        };
        let locations = interfaces
            .iter()
            .map(|interface| {
                format!(
                    "http://{}:{}{}",
                    interface.address, interface.http_port, DESC_PATH
                )
            })
            .collect();
        let budgets = interfaces
            .iter()
            .map(|interface| ReplyBudget::new(interface.index))
            .collect();
        Engine {
            config,
            interfaces,
            locations,
            rng: fastrand::Rng::with_seed(seed),
            config_id: 0,
            targets: Vec::new(),
            retired: Vec::new(),
            pending: Vec::new(),
            queued: 0,
            replies: 0,
            next_refresh: None,
            started: false,
            shut_down: false,
            budgets,
        }
    }

    /// Sets the device tree to advertise and its CONFIGID.
    ///
    /// The first call announces everything now and again 100-200 ms later (UDA 1.1 section
    /// 1.2.2: the set SHOULD be sent more than once). Later calls send ssdp:byebye for targets
    /// that disappeared and ssdp:alive (now and repeated) for targets that appeared; unchanged
    /// devices are not re-announced. Everything sent afterwards carries `config_id`.
    ///
    /// A new `config_id` with the same set of targets (a Domain renamed, an SCPD edited) sends
    /// ssdp:alive, now and repeated, for the root device's own targets: UDA 1.1 section 1.2.2
    /// says CONFIGID.UPNP.ORG "MUST be changed" when any part of the configuration (the
    /// descriptions of the root, its embedded devices and the SCPDs) changes and is carried by
    /// every announcement; a control point learns from it that its cached description is
    /// stale. Without this it would hear the new value only with the periodic refresh, up to
    /// max-age/2 later. The embedded devices are not announced again: their UDNs and types did
    /// not change, and the root's messages name the description they all live in.
    pub fn set_devices(&mut self, now: Instant, devices: Vec<Advertisement>, config_id: u32) {
        if self.shut_down {
            log::debug!("ssdp: device update after shutdown ignored");
            return;
        }
        let reconfigured = config_id != self.config_id;
        self.config_id = config_id;
        let targets = targets_of(&devices);
        if !self.started {
            self.started = true;
            self.targets = targets;
            self.announce_all(now);
            return;
        }
        let old = std::mem::replace(&mut self.targets, targets);
        // Old index -> new index, for every old target still advertised.
        let remap: Vec<Option<usize>> = {
            let index: HashMap<&str, usize> = self
                .targets
                .iter()
                .enumerate()
                .map(|(at, target)| (target.unique_service_name.as_str(), at))
                .collect();
            old.iter()
                .map(|target| index.get(target.unique_service_name.as_str()).copied())
                .collect()
        };
        let added: Vec<usize> = {
            let known: HashSet<&str> = old
                .iter()
                .map(|target| target.unique_service_name.as_str())
                .collect();
            (0..self.targets.len())
                .filter(|&at| {
                    self.targets
                        .get(at)
                        .is_some_and(|target| !known.contains(target.unique_service_name.as_str()))
                })
                .collect()
        };
        self.remap_pending(&remap);
        let mut removed = false;
        for (target, new_index) in old.into_iter().zip(&remap) {
            if new_index.is_none() {
                removed = true;
                let retired = TargetRef::Retired(self.retired.len());
                self.retired.push(target);
                self.push(now, notify(retired, NotifyKind::ByeBye));
            }
        }
        let announce = if !added.is_empty() || removed || !reconfigured {
            added
        } else {
            log::debug!("ssdp: CONFIGID {config_id}: announcing the root device again");
            self.root_targets()
        };
        if !announce.is_empty() {
            let repeat = later(now, ssdp_repeat_delay(&mut self.rng));
            for due in [now, repeat] {
                for &at in &announce {
                    self.push(due, notify(TargetRef::Current(at), NotifyKind::Alive));
                }
            }
        }
    }

    /// Indexes of the root device's own targets (upnp:rootdevice, its UDN, its type, its
    /// services).
    fn root_targets(&self) -> Vec<usize> {
        let Some(root) = self
            .targets
            .iter()
            .find(|target| target.kind == TargetKind::RootDevice)
        else {
            return Vec::new();
        };
        (0..self.targets.len())
            .filter(|&at| {
                self.targets
                    .get(at)
                    .is_some_and(|target| target.udn == root.udn)
            })
            .collect()
    }

    /// Parses a datagram received on `interface` and answers it if it is a search. Malformed
    /// datagrams are logged with their source and dropped; NOTIFYs and responses are ignored.
    pub fn on_datagram(
        &mut self,
        now: Instant,
        interface: u32,
        source: SocketAddrV4,
        datagram: &[u8],
    ) {
        match wire_ssdp::parse(datagram) {
            Ok(Message::Search(search)) => self.on_search(now, interface, source, &search),
            Ok(_) => log::trace!("ssdp: ignoring a notify or response from {source}"),
            Err(error) => {
                log::debug!(
                    "ssdp: dropping a datagram from {source} on interface {interface}: {error}"
                )
            }
        }
    }

    /// Schedules the responses to an M-SEARCH received on `interface` (UDA 1.1 section 1.3).
    ///
    /// Dropped (and logged at debug) when the interface is unknown, the source is outside its
    /// subnet, MAN is not `"ssdp:discover"`, a multicast search has no numeric MX, or the
    /// source has used its searches of this second. A multicast search is answered after a
    /// random delay within MX seconds, MX clamped to 1..5; a unicast search (HOST is not the
    /// group) has no MX and is answered at once. Either waits longer when the interface's
    /// reply bytes are paced, and is answered in part (its first targets: the root device's
    /// come first) when the source's share, the interface's reply bytes or the reply queue
    /// run out: [`super::ssdp_budget`] has the bounds, logged once a second per source.
    pub fn on_search(
        &mut self,
        now: Instant,
        interface: u32,
        source: SocketAddrV4,
        search: &Search<'_>,
    ) {
        if self.shut_down {
            log::trace!("ssdp: search from {source} after shutdown ignored");
            return;
        }
        let Some(receiving) = self.interfaces.iter().find(|i| i.index == interface) else {
            log::debug!("ssdp: search from {source} on unknown interface {interface} dropped");
            return;
        };
        if !receiving.subnet.contains(*source.ip()) {
            log::debug!(
                "ssdp: search from {source} outside interface {interface}'s subnet dropped"
            );
            return;
        }
        if search.mandatory_extension != SSDP_MAN_DISCOVER {
            log::debug!(
                "ssdp: search from {source} with MAN {:?} dropped",
                search.mandatory_extension
            );
            return;
        }
        let window = if is_multicast_host(search.host) {
            // UDA 1.1 section 1.3.2: a multicast search without MX MUST be discarded; MX
            // above 5 is treated as 5.
            match search.max_wait.and_then(parse_mx) {
                Some(mx) => Some(Duration::from_secs(u64::from(mx))),
                None => {
                    log::debug!(
                        "ssdp: multicast search from {source} with MX {:?} dropped",
                        search.max_wait
                    );
                    return;
                }
            }
        } else {
            None
        };
        // Matched where they are, without a list: answering a search allocates nothing once
        // the queue has grown to its working size.
        let wanted = Wanted::of(search.search_target);
        let matched = self
            .targets
            .iter()
            .filter(|target| wanted.answer(target).is_some())
            .count();
        if matched == 0 {
            log::trace!(
                "ssdp: search from {source} for {:?} matches nothing",
                search.search_target
            );
            return;
        }
        let Engine {
            budgets,
            interfaces,
            locations,
            targets,
            rng,
            pending,
            queued,
            replies,
            config,
            config_id,
            ..
        } = self;
        let Some((budget, location)) = budgets
            .iter_mut()
            .zip(interfaces.iter().zip(locations.iter()))
            .find(|(_, (candidate, _))| candidate.index == interface)
            .map(|(budget, (_, location))| (budget, location.as_str()))
        else {
            return;
        };
        let mut grant = match budget.search(now, *source.ip()) {
            Ok(grant) => grant,
            Err(refused) => {
                if refused.first {
                    log::debug!("ssdp: searches from {source} dropped this second: {refused}");
                }
                return;
            }
        };
        let max_pending = SSDP_MAX_PENDING_REPLIES.max(targets.len() * SSDP_ANSWERS_QUEUED);
        // Any date has the same length.
        let date = wire::http_date(0);
        let date = core::str::from_utf8(&date).ok();
        let mut answered = 0;
        let found = targets
            .iter()
            .enumerate()
            .filter_map(|(at, target)| wanted.answer(target).map(|version| (at, target, version)));
        for (target_at, target, version) in found {
            let size = reply_len(config, *config_id, target, location, date);
            let Some(earliest) = grant.reply(size, *replies, max_pending) else {
                break;
            };
            // Each part of a multi-part answer gets its own delay, spreading them over MX.
            let delay = window.map_or(Duration::ZERO, |window| {
                let millis = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(rng.u64(0..millis.max(1)))
            });
            *replies += 1;
            *queued += 1;
            pending.push(Pending {
                due: later(now, delay).max(earliest),
                seq: *queued,
                work: Work::Reply {
                    interface,
                    destination: source,
                    target: target_at,
                    version,
                },
            });
            answered += 1;
        }
        if let Some((cut, true)) = grant.cut() {
            log::debug!(
                "ssdp: search from {source} for {:?} answered with {answered} of {matched} \
                 replies: {cut}",
                search.search_target,
            );
        }
    }

    /// Leaves the network: cancels pending announcements and replies and queues ssdp:byebye
    /// for every target on every interface, due now. Later searches and device updates are
    /// ignored.
    pub fn shutdown(&mut self, now: Instant) {
        self.shut_down = true;
        self.next_refresh = None;
        self.pending.retain(|pending| {
            matches!(
                pending.work,
                Work::Notify {
                    kind: NotifyKind::ByeBye,
                    ..
                }
            )
        });
        self.replies = 0;
        for at in 0..self.targets.len() {
            self.push(now, notify(TargetRef::Current(at), NotifyKind::ByeBye));
        }
    }

    /// When `dispatch` next has something to send, if ever.
    pub fn poll_at(&self) -> Option<Instant> {
        self.pending
            .iter()
            .map(|pending| pending.due)
            .chain(self.next_refresh)
            .min()
    }

    /// Search replies waiting for their delay.
    pub fn pending_replies(&self) -> usize {
        self.replies
    }

    /// Renders and hands to `emit` everything due at `now`, oldest first; `unix_seconds` is
    /// the wall-clock time written into the DATE header of responses.
    pub fn dispatch(
        &mut self,
        now: Instant,
        unix_seconds: u64,
        mut emit: impl FnMut(Outgoing<'_>),
    ) {
        if self.next_refresh.is_some_and(|at| at <= now) {
            self.announce_all(now);
        }
        // Work due at the same instant leaves in the order it was queued (a byebye before the
        // alive of a target that came back). An unstable sort on (due, seq) keeps that order
        // without the scratch buffer a stable sort allocates.
        self.pending
            .sort_unstable_by_key(|pending| (pending.due, pending.seq));
        let due = self.pending.partition_point(|pending| pending.due <= now);
        let date = wire::http_date(unix_seconds);
        let date = core::str::from_utf8(&date).ok();
        let mut buffer = [0u8; SSDP_EMIT_BUFFER];
        let mut sent_replies = 0;
        for pending in self.pending.get(..due).unwrap_or_default() {
            if matches!(pending.work, Work::Reply { .. }) {
                sent_replies += 1;
            }
            self.render(pending.work, date, &mut buffer, &mut emit);
        }
        self.pending.drain(..due);
        self.replies = self.replies.saturating_sub(sent_replies);
        let retired_pending = self.pending.iter().any(|pending| {
            matches!(
                pending.work,
                Work::Notify {
                    target: TargetRef::Retired(_),
                    ..
                }
            )
        });
        if !retired_pending {
            self.retired.clear();
        }
    }

    // ---- internals ---------------------------------------------------------------------------

    fn push(&mut self, due: Instant, work: Work) {
        if matches!(work, Work::Reply { .. }) {
            self.replies += 1;
        }
        self.queued += 1;
        self.pending.push(Pending {
            due,
            seq: self.queued,
            work,
        });
    }

    /// The full set now, again after the repeat delay, and the next refresh within
    /// [max_age/4, max_age/2) so a control point hears from us well before the entry expires.
    fn announce_all(&mut self, now: Instant) {
        let repeat = later(now, ssdp_repeat_delay(&mut self.rng));
        for due in [now, repeat] {
            for at in 0..self.targets.len() {
                self.push(due, notify(TargetRef::Current(at), NotifyKind::Alive));
            }
        }
        let max_age_millis = u64::from(self.config.max_age) * 1000;
        let (low, high) = (max_age_millis / 4, max_age_millis / 2);
        let refresh = if low < high {
            self.rng.u64(low..high)
        } else {
            low
        };
        // Out of `Instant`'s range only for an absurd max-age: then there is no refresh.
        self.next_refresh = now.checked_add(Duration::from_millis(refresh));
    }

    /// Points pending work at the new target indices, dropping work for targets now gone (a
    /// reply or alive for something we no longer advertise).
    fn remap_pending(&mut self, remap: &[Option<usize>]) {
        let mut dropped_replies = 0;
        self.pending.retain_mut(|pending| {
            let slot = match &mut pending.work {
                Work::Notify {
                    target: TargetRef::Current(at),
                    ..
                } => at,
                Work::Reply { target, .. } => target,
                Work::Notify {
                    target: TargetRef::Retired(_),
                    ..
                } => return true,
            };
            match remap.get(*slot).copied().flatten() {
                Some(new_index) => {
                    *slot = new_index;
                    true
                }
                None => {
                    if matches!(pending.work, Work::Reply { .. }) {
                        dropped_replies += 1;
                    }
                    false
                }
            }
        });
        self.replies = self.replies.saturating_sub(dropped_replies);
    }

    fn target(&self, target: TargetRef) -> Option<&Target> {
        match target {
            TargetRef::Current(at) => self.targets.get(at),
            TargetRef::Retired(at) => self.retired.get(at),
        }
    }

    fn render(
        &self,
        work: Work,
        date: Option<&str>,
        buffer: &mut [u8],
        emit: &mut impl FnMut(Outgoing<'_>),
    ) {
        match work {
            Work::Notify { target, kind } => {
                let Some(target) = self.target(target) else {
                    return;
                };
                for (interface, location) in self.interfaces.iter().zip(&self.locations) {
                    let message = Notify {
                        host: SSDP_HOST,
                        notification_type: &target.notification_type,
                        notification_subtype: kind,
                        unique_service_name: &target.unique_service_name,
                        location: (kind != NotifyKind::ByeBye).then_some(location.as_str()),
                        max_age: (kind == NotifyKind::Alive).then_some(self.config.max_age),
                        server: (kind == NotifyKind::Alive).then_some(self.config.server.as_str()),
                        boot_id: Some(self.config.boot_id),
                        config_id: Some(self.config_id),
                        next_boot_id: None,
                        search_port: None,
                    };
                    let mut cursor = Cursor::new(buffer);
                    match message.emit(&mut cursor) {
                        Ok(()) => emit(Outgoing {
                            interface: interface.index,
                            destination: SocketAddrV4::new(SSDP_V4_GROUP, SSDP_PORT),
                            bytes: cursor.written(),
                        }),
                        Err(error) => log::warn!(
                            "ssdp: cannot render {} for {}: {error}",
                            kind.as_str(),
                            target.unique_service_name
                        ),
                    }
                }
            }
            Work::Reply {
                interface,
                destination,
                target,
                version,
            } => {
                let Some(at) = self.interfaces.iter().position(|i| i.index == interface) else {
                    return;
                };
                let (Some(location), Some(target)) =
                    (self.locations.get(at), self.targets.get(target))
                else {
                    return;
                };
                let mut scratch = [0u8; SSDP_EMIT_BUFFER];
                let mut scratch = Cursor::new(&mut scratch);
                let (st, usn) = match (version, target.kind) {
                    (Some(version), TargetKind::Type(Some(own))) => {
                        match asked_version_names(&mut scratch, target, own, version) {
                            Some(names) => names,
                            None => {
                                log::warn!(
                                    "ssdp: cannot name {} at version {version}",
                                    target.unique_service_name
                                );
                                return;
                            }
                        }
                    }
                    _ => (
                        target.notification_type.as_str(),
                        target.unique_service_name.as_str(),
                    ),
                };
                let message = Response {
                    search_target: st,
                    unique_service_name: usn,
                    location,
                    max_age: Some(self.config.max_age),
                    server: Some(&self.config.server),
                    boot_id: Some(self.config.boot_id),
                    config_id: Some(self.config_id),
                    search_port: None,
                    date,
                    extension_confirmed: true,
                };
                let mut cursor = Cursor::new(buffer);
                match message.emit(&mut cursor) {
                    Ok(()) => emit(Outgoing {
                        interface,
                        destination,
                        bytes: cursor.written(),
                    }),
                    Err(error) => log::warn!("ssdp: cannot render a response for {usn}: {error}"),
                }
            }
        }
    }
}

/// Bytes of a reply about `target` from the interface whose LOCATION is `location`, at most (an
/// older version asked for is never longer than the target's own name).
fn reply_len(
    config: &Config,
    config_id: u32,
    target: &Target,
    location: &str,
    date: Option<&str>,
) -> usize {
    Response {
        search_target: &target.notification_type,
        unique_service_name: &target.unique_service_name,
        location,
        max_age: Some(config.max_age),
        server: Some(&config.server),
        boot_id: Some(config.boot_id),
        config_id: Some(config_id),
        search_port: None,
        date,
        extension_confirmed: true,
    }
    .buffer_len()
}

/// ST and USN of a response naming an older version of `target`'s type:
/// `uuid:X::urn:domain:service:Type:<version>` and its suffix after `::`. The USN follows the
/// ST so the pair stays consistent for the control point.
fn asked_version_names<'s>(
    scratch: &'s mut Cursor<'_>,
    target: &Target,
    own: TypeVersion,
    version: u32,
) -> Option<(&'s str, &'s str)> {
    let base = target.notification_type.get(..own.base_len)?;
    scratch.put_str(&target.udn).ok()?;
    scratch.put_str("::").ok()?;
    scratch.put_str(base).ok()?;
    scratch.put_str(":").ok()?;
    scratch.put_u64(u64::from(version)).ok()?;
    let usn = core::str::from_utf8(scratch.written()).ok()?;
    let st = usn.get(target.udn.len() + 2..)?;
    Some((st, usn))
}

fn notify(target: TargetRef, kind: NotifyKind) -> Work {
    Work::Notify { target, kind }
}

/// The targets of a device tree (UDA 1.1 section 1.2.2): for a root device `upnp:rootdevice`,
/// then for every device `uuid:X` and its type, then each distinct service type of the
/// device once: 3+2d+k for a root with d embedded devices.
fn targets_of(devices: &[Advertisement]) -> Vec<Target> {
    let mut targets: Vec<Target> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    let mut add = |udn: &str, nt: &str, kind: TargetKind| {
        let usn = if kind == TargetKind::Device {
            udn.to_owned()
        } else {
            format!("{udn}::{nt}")
        };
        if seen.insert(usn.clone()) {
            targets.push(Target {
                udn: udn.to_owned(),
                notification_type: nt.to_owned(),
                unique_service_name: usn,
                kind,
            });
        }
    };
    for device in devices {
        if device.root {
            add(&device.udn, SSDP_NT_ROOT_DEVICE, TargetKind::RootDevice);
        }
        add(&device.udn, &device.udn, TargetKind::Device);
        add(
            &device.udn,
            &device.device_type,
            TargetKind::Type(type_version(&device.device_type)),
        );
        for service_type in &device.service_types {
            add(
                &device.udn,
                service_type,
                TargetKind::Type(type_version(service_type)),
            );
        }
    }
    targets
}

/// `urn:domain:kind:Type:v` split into `urn:domain:kind:Type` and `v`.
fn split_version(urn: &str) -> Option<(&str, u32)> {
    if !urn.starts_with(URN_PREFIX) {
        return None;
    }
    let (base, version) = urn.rsplit_once(':')?;
    Some((base, wire_ssdp::number(version).ok()?))
}

fn type_version(urn: &str) -> Option<TypeVersion> {
    split_version(urn).map(|(base, version)| TypeVersion {
        base_len: base.len(),
        version,
    })
}

/// MX as a number of seconds clamped to 1..5; `None` when it is not a decimal number. A
/// number too large for `u32` is as good as 5.
fn parse_mx(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    let value = text.bytes().fold(0u32, |value, byte| {
        value
            .saturating_mul(10)
            .saturating_add(u32::from(byte - b'0'))
    });
    Some(value.clamp(SSDP_MX_MIN, SSDP_MX_MAX))
}

/// Whether HOST names the multicast group (with or without the port): otherwise the search
/// was unicast (UDA 1.1 section 1.3.2).
fn is_multicast_host(host: &str) -> bool {
    let address = host.split(':').next().unwrap_or_default();
    address.parse::<Ipv4Addr>() == Ok(SSDP_V4_GROUP)
}

#[cfg(test)]
mod tests {
    use super::super::ssdp_budget::{
        SSDP_PRIORITY_REPLIES, SSDP_REPLY_BURST, SSDP_REPLY_BYTES_PER_SECOND, SSDP_REPLY_MAX_WAIT,
        SSDP_SEARCHES_PER_SOURCE,
    };
    use super::*;
    use crate::consts::{
        SSDP_MAX_PENDING_REPLIES, SSDP_RATE_WINDOW, SSDP_REPEAT_MAX, SSDP_REPEAT_MIN,
    };
    use crate::consts::{
        URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR, URN_SERVICE_DOMAIN_CONTROL,
        URN_SERVICE_HYPERVISOR,
    };

    const ROOT: &str = "uuid:0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b";
    const DOMAINS: [&str; 3] = [
        "uuid:1d2c3b4a-5f6e-5a7b-8c9d-0e1f2a3b4c5d",
        "uuid:2e3d4c5b-6a7f-5b8c-9dae-1f2a3b4c5d6e",
        "uuid:3f4e5d6c-7b8a-5c9d-aebf-2a3b4c5d6e7f",
    ];
    const SERVER: &str = "Linux/6.1 UPnP/1.1 xenplug/0.1.0";
    const SEARCHER: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 50), 53124);
    const UNIX: u64 = 1_795_478_400;

    /// What one `Outgoing` carried, owned so tests can look at it after dispatch.
    #[derive(Debug, Clone)]
    struct Sent {
        interface: u32,
        destination: SocketAddrV4,
        bytes: Vec<u8>,
    }

    impl Sent {
        fn notify(&self) -> Notify<'_> {
            match wire_ssdp::parse(&self.bytes) {
                Ok(Message::Notify(notify)) => notify,
                other => panic!("not a notify: {other:?}"),
            }
        }

        fn response(&self) -> Response<'_> {
            match wire_ssdp::parse(&self.bytes) {
                Ok(Message::Response(response)) => response,
                other => panic!("not a response: {other:?}"),
            }
        }
    }

    fn interfaces() -> Vec<AdvertisingInterface> {
        vec![
            AdvertisingInterface {
                index: 2,
                address: Ipv4Addr::new(192, 168, 10, 2),
                subnet: Subnet::parse("192.168.10.0/24").unwrap(),
                http_port: 49152,
            },
            AdvertisingInterface {
                index: 5,
                address: Ipv4Addr::new(10, 20, 0, 1),
                subnet: Subnet::parse("10.20.0.0/16").unwrap(),
                http_port: 49153,
            },
        ]
    }

    fn engine() -> Engine {
        let config = Config {
            max_age: 1800,
            boot_id: 7,
            server: SERVER.to_owned(),
        };
        Engine::new(config, interfaces(), 0x5eed)
    }

    /// A hypervisor with `domains` embedded Domain devices, which share one service type.
    fn devices(domains: usize) -> Vec<Advertisement> {
        let mut devices = vec![Advertisement {
            udn: ROOT.to_owned(),
            device_type: URN_DEVICE_HYPERVISOR.to_owned(),
            service_types: vec![URN_SERVICE_HYPERVISOR.to_owned()],
            root: true,
        }];
        for udn in DOMAINS.iter().take(domains) {
            devices.push(Advertisement {
                udn: (*udn).to_owned(),
                device_type: URN_DEVICE_DOMAIN.to_owned(),
                // Listed twice: still advertised once per device.
                service_types: vec![
                    URN_SERVICE_DOMAIN_CONTROL.to_owned(),
                    URN_SERVICE_DOMAIN_CONTROL.to_owned(),
                ],
                root: false,
            });
        }
        devices
    }

    fn dispatch(engine: &mut Engine, now: Instant) -> Vec<Sent> {
        let mut sent = Vec::new();
        engine.dispatch(now, UNIX, |outgoing| {
            sent.push(Sent {
                interface: outgoing.interface,
                destination: outgoing.destination,
                bytes: outgoing.bytes.to_vec(),
            })
        });
        sent
    }

    fn search<'a>(host: &'a str, mx: Option<&'a str>, st: &'a str) -> Search<'a> {
        Search {
            host,
            mandatory_extension: SSDP_MAN_DISCOVER,
            max_wait: mx,
            search_target: st,
            user_agent: Some("Linux/6.8 UPnP/1.1 test/1"),
        }
    }

    fn multicast(st: &str) -> Search<'_> {
        search(SSDP_HOST, Some("1"), st)
    }

    fn ms(millis: u64) -> Duration {
        Duration::from_millis(millis)
    }

    /// An engine that has announced two domains and sent its repeat; returns the time after.
    fn settled(domains: usize) -> (Engine, Instant) {
        let mut engine = engine();
        let start = Instant::now();
        engine.set_devices(start, devices(domains), 1);
        dispatch(&mut engine, start);
        let after = start + SSDP_REPEAT_MAX;
        dispatch(&mut engine, after);
        (engine, after)
    }

    fn usns(sent: &[Sent]) -> Vec<String> {
        let mut usns: Vec<String> = sent
            .iter()
            .map(|s| s.notify().unique_service_name.to_owned())
            .collect();
        usns.sort();
        usns
    }

    fn expected_usns(domains: &[&str]) -> Vec<String> {
        let mut usns = vec![
            format!("{ROOT}::upnp:rootdevice"),
            ROOT.to_owned(),
            format!("{ROOT}::{URN_DEVICE_HYPERVISOR}"),
            format!("{ROOT}::{URN_SERVICE_HYPERVISOR}"),
        ];
        for udn in domains {
            usns.push((*udn).to_owned());
            usns.push(format!("{udn}::{URN_DEVICE_DOMAIN}"));
            usns.push(format!("{udn}::{URN_SERVICE_DOMAIN_CONTROL}"));
        }
        usns.sort();
        usns
    }

    #[test]
    fn first_announcement_is_the_full_set_on_every_interface() {
        let mut engine = engine();
        let now = Instant::now();
        engine.set_devices(now, devices(2), 1);
        let sent = dispatch(&mut engine, now);
        // 3 + 2d + k with d = 2 embedded devices and k = 3 (one service type per device).
        assert_eq!(sent.len(), 10 * 2);
        for (index, address, port) in [(2, "192.168.10.2", 49152), (5, "10.20.0.1", 49153)] {
            let on: Vec<Sent> = sent
                .iter()
                .filter(|s| s.interface == index)
                .cloned()
                .collect();
            assert_eq!(usns(&on), expected_usns(&DOMAINS[..2]));
            for s in &on {
                assert_eq!(s.destination, SocketAddrV4::new(SSDP_V4_GROUP, SSDP_PORT));
                let notify = s.notify();
                assert_eq!(notify.notification_subtype, NotifyKind::Alive);
                assert_eq!(notify.host, SSDP_HOST);
                let location = format!("http://{address}:{port}{DESC_PATH}");
                assert_eq!(notify.location, Some(location.as_str()));
                assert_eq!(notify.max_age, Some(1800));
                assert_eq!(notify.server, Some(SERVER));
                assert_eq!((notify.boot_id, notify.config_id), (Some(7), Some(1)));
                // NT is the USN's suffix, or the whole USN for `uuid:X`.
                assert!(
                    notify.unique_service_name == notify.notification_type
                        || notify
                            .unique_service_name
                            .ends_with(&format!("::{}", notify.notification_type))
                );
            }
        }
    }

    #[test]
    fn repeat_comes_after_100_to_200_ms_and_not_before() {
        let mut engine = engine();
        let now = Instant::now();
        engine.set_devices(now, devices(2), 1);
        assert_eq!(dispatch(&mut engine, now).len(), 20);
        let repeat = engine.poll_at().unwrap();
        assert!(repeat >= now + SSDP_REPEAT_MIN && repeat < now + SSDP_REPEAT_MAX);
        assert!(dispatch(&mut engine, now + SSDP_REPEAT_MIN - ms(1)).is_empty());
        assert!(dispatch(&mut engine, repeat - ms(1)).is_empty());
        let again = dispatch(&mut engine, repeat);
        assert_eq!(again.len(), 20);
        assert!(again
            .iter()
            .all(|s| s.notify().notification_subtype == NotifyKind::Alive));
    }

    #[test]
    fn refresh_comes_before_half_max_age() {
        let (mut engine, after) = settled(2);
        let start = after - SSDP_REPEAT_MAX;
        let refresh = engine.poll_at().unwrap();
        assert!(refresh >= start + Duration::from_secs(450));
        assert!(refresh < start + Duration::from_secs(900));
        assert!(dispatch(&mut engine, start + Duration::from_secs(449)).is_empty());
        let sent = dispatch(&mut engine, start + Duration::from_secs(900) - ms(1));
        assert_eq!(sent.len(), 20);
        // The refresh is a full announcement, so its repeat follows within 200 ms.
        assert!(engine.poll_at().unwrap() < start + Duration::from_secs(901));
    }

    #[test]
    fn adding_a_device_announces_only_its_targets_with_the_new_configid() {
        let (mut engine, now) = settled(2);
        engine.set_devices(now, devices(3), 2);
        let sent = dispatch(&mut engine, now);
        assert_eq!(sent.len(), 3 * 2);
        let mut wanted: Vec<String> = expected_usns(&DOMAINS[2..])
            .into_iter()
            .filter(|usn| usn.starts_with(DOMAINS[2]))
            .flat_map(|usn| [usn.clone(), usn])
            .collect();
        wanted.sort();
        assert_eq!(usns(&sent), wanted);
        for s in &sent {
            let notify = s.notify();
            assert_eq!(notify.notification_subtype, NotifyKind::Alive);
            assert_eq!(notify.config_id, Some(2));
        }
        let repeat = engine.poll_at().unwrap();
        assert!(repeat >= now + SSDP_REPEAT_MIN && repeat < now + SSDP_REPEAT_MAX);
        assert_eq!(usns(&dispatch(&mut engine, repeat)), wanted);
    }

    #[test]
    fn removing_a_device_says_byebye_for_its_targets_only() {
        let (mut engine, now) = settled(2);
        engine.set_devices(now, devices(1), 3);
        let sent = dispatch(&mut engine, now);
        assert_eq!(sent.len(), 3 * 2);
        for s in &sent {
            let notify = s.notify();
            assert_eq!(notify.notification_subtype, NotifyKind::ByeBye);
            assert!(notify.unique_service_name.starts_with(DOMAINS[1]));
            assert_eq!(notify.location, None);
            assert_eq!(notify.config_id, Some(3));
        }
        // Nothing else follows but the periodic refresh.
        let next = engine.poll_at().unwrap();
        assert!(next > now + Duration::from_secs(400));
    }

    #[test]
    fn a_new_configid_for_the_same_devices_announces_the_root_device_only() {
        let (mut engine, now) = settled(2);
        let refresh = engine.poll_at().unwrap();
        // Same devices and services, another description (a Domain renamed): CONFIGID 2.
        engine.set_devices(now, devices(2), 2);
        let sent = dispatch(&mut engine, now);
        let mut wanted: Vec<String> = expected_usns(&[])
            .into_iter()
            .flat_map(|usn| [usn.clone(), usn])
            .collect();
        wanted.sort();
        assert_eq!(
            usns(&sent),
            wanted,
            "the root's 3 + 1 targets on both interfaces"
        );
        for s in &sent {
            let notify = s.notify();
            assert_eq!(notify.notification_subtype, NotifyKind::Alive);
            assert_eq!(notify.config_id, Some(2));
        }
        let repeat = engine.poll_at().unwrap();
        assert!(repeat >= now + SSDP_REPEAT_MIN && repeat < now + SSDP_REPEAT_MAX);
        assert_eq!(usns(&dispatch(&mut engine, repeat)), wanted);
        // Then nothing but the periodic refresh, which keeps its time.
        assert_eq!(engine.poll_at(), Some(refresh));
    }

    #[test]
    fn unchanged_devices_send_nothing() {
        let (mut engine, now) = settled(2);
        let refresh = engine.poll_at();
        engine.set_devices(now, devices(2), 1);
        assert!(dispatch(&mut engine, now + ms(500)).is_empty());
        assert_eq!(engine.poll_at(), refresh);
    }

    /// Every reply to `st` (multicast, MX 1) from `SEARCHER` on interface 2, sorted by USN.
    fn answer(engine: &mut Engine, now: Instant, search: &Search<'_>) -> Vec<Sent> {
        engine.on_search(now, 2, SEARCHER, search);
        let mut sent = dispatch(engine, now + Duration::from_secs(5));
        sent.sort_by(|a, b| {
            a.response()
                .unique_service_name
                .cmp(b.response().unique_service_name)
        });
        sent
    }

    fn sts(sent: &[Sent]) -> Vec<(String, String)> {
        sent.iter()
            .map(|s| {
                let response = s.response();
                (
                    response.search_target.to_owned(),
                    response.unique_service_name.to_owned(),
                )
            })
            .collect()
    }

    #[test]
    fn answers_every_search_target_form() {
        let (mut engine, now) = settled(2);
        let all = answer(&mut engine, now, &multicast(SSDP_ST_ALL));
        assert_eq!(all.len(), 10);
        for s in &all {
            assert_eq!(s.interface, 2);
            assert_eq!(s.destination, SEARCHER);
            let response = s.response();
            assert!(response.extension_confirmed);
            assert_eq!(response.max_age, Some(1800));
            assert_eq!(response.server, Some(SERVER));
            assert_eq!(
                response.location,
                "http://192.168.10.2:49152/description.xml"
            );
            assert_eq!((response.boot_id, response.config_id), (Some(7), Some(1)));
            let date = wire::http_date(UNIX);
            assert_eq!(response.date.map(str::as_bytes), Some(date.as_slice()));
        }

        let root = answer(&mut engine, now, &multicast("upnp:rootdevice"));
        let root_usn = format!("{ROOT}::upnp:rootdevice");
        assert_eq!(sts(&root), vec![("upnp:rootdevice".to_owned(), root_usn)]);

        let device = answer(&mut engine, now, &multicast(DOMAINS[1]));
        assert_eq!(
            sts(&device),
            vec![(DOMAINS[1].to_owned(), DOMAINS[1].to_owned())]
        );

        let domains = answer(&mut engine, now, &multicast(URN_DEVICE_DOMAIN));
        let mut wanted: Vec<(String, String)> = DOMAINS[..2]
            .iter()
            .map(|udn| {
                (
                    URN_DEVICE_DOMAIN.to_owned(),
                    format!("{udn}::{URN_DEVICE_DOMAIN}"),
                )
            })
            .collect();
        wanted.sort();
        assert_eq!(sts(&domains), wanted);

        let services = answer(&mut engine, now, &multicast(URN_SERVICE_DOMAIN_CONTROL));
        assert_eq!(services.len(), 2);
        assert!(sts(&services)
            .iter()
            .all(|(st, _)| st == URN_SERVICE_DOMAIN_CONTROL));

        for nothing in [
            "urn:xenplug-org:device:Nothing:1",
            "uuid:00000000-0000-0000-0000-000000000000",
            "ssdp:everything",
            "upnp:rootdevices",
        ] {
            assert!(
                answer(&mut engine, now, &multicast(nothing)).is_empty(),
                "{nothing}"
            );
        }
    }

    #[test]
    fn answers_older_versions_with_the_version_asked() {
        let mut engine = engine();
        let now = Instant::now();
        let device = Advertisement {
            udn: ROOT.to_owned(),
            device_type: "urn:schemas-upnp-org:device:MediaServer:3".to_owned(),
            service_types: vec!["urn:schemas-upnp-org:service:ContentDirectory:2".to_owned()],
            root: true,
        };
        engine.set_devices(now, vec![device], 1);
        dispatch(&mut engine, now + SSDP_REPEAT_MAX);

        let older = answer(
            &mut engine,
            now,
            &multicast("urn:schemas-upnp-org:device:MediaServer:1"),
        );
        assert_eq!(
            sts(&older),
            vec![(
                "urn:schemas-upnp-org:device:MediaServer:1".to_owned(),
                format!("{ROOT}::urn:schemas-upnp-org:device:MediaServer:1")
            )]
        );
        let same = answer(
            &mut engine,
            now,
            &multicast("urn:schemas-upnp-org:service:ContentDirectory:2"),
        );
        assert_eq!(same.len(), 1);
        assert_eq!(
            same[0].response().search_target,
            "urn:schemas-upnp-org:service:ContentDirectory:2"
        );
        for newer in [
            "urn:schemas-upnp-org:device:MediaServer:4",
            "urn:schemas-upnp-org:service:ContentDirectory:3",
            "urn:schemas-upnp-org:device:MediaServe:1",
            "urn:schemas-upnp-org:device:MediaServer:x",
        ] {
            assert!(
                answer(&mut engine, now, &multicast(newer)).is_empty(),
                "{newer}"
            );
        }
    }

    #[test]
    fn drops_bad_searches() {
        let (mut engine, now) = settled(2);
        let refresh = engine.poll_at();
        let bad_man = Search {
            mandatory_extension: "ssdp:discover",
            ..multicast(SSDP_ST_ALL)
        };
        let cases = [
            (2, SEARCHER, bad_man),
            (2, SEARCHER, search(SSDP_HOST, None, SSDP_ST_ALL)),
            (2, SEARCHER, search(SSDP_HOST, Some("soon"), SSDP_ST_ALL)),
            (2, SEARCHER, search(SSDP_HOST, Some("-1"), SSDP_ST_ALL)),
            (2, SEARCHER, search(SSDP_HOST, Some(""), SSDP_ST_ALL)),
            // Foreign subnet.
            (
                2,
                SocketAddrV4::new(Ipv4Addr::new(192, 168, 11, 50), 1900),
                multicast(SSDP_ST_ALL),
            ),
            // Right subnet, wrong interface.
            (5, SEARCHER, multicast(SSDP_ST_ALL)),
            // Unknown interface.
            (9, SEARCHER, multicast(SSDP_ST_ALL)),
        ];
        for (interface, source, search) in cases {
            engine.on_search(now, interface, source, &search);
            assert_eq!(engine.pending_replies(), 0, "{search:?} from {source}");
        }
        assert_eq!(engine.poll_at(), refresh);
        assert!(dispatch(&mut engine, now + Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn multicast_replies_are_spread_within_clamped_mx() {
        let (mut engine, now) = settled(2);
        // MX 120 is treated as 5 (UDA 1.1 section 1.3.2).
        engine.on_search(
            now,
            2,
            SEARCHER,
            &search(SSDP_HOST, Some("120"), SSDP_ST_ALL),
        );
        assert_eq!(engine.pending_replies(), 10);
        let first = engine.poll_at().unwrap();
        assert!(first >= now);
        assert!(dispatch(&mut engine, now).len() < 10);
        let rest = dispatch(&mut engine, now + Duration::from_secs(5) - ms(1));
        assert!(!rest.is_empty());
        assert_eq!(engine.pending_replies(), 0);

        // MX 0 is treated as 1: everything within the first second.
        let other = SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 51), 1900);
        engine.on_search(now, 2, other, &search(SSDP_HOST, Some("0"), SSDP_ST_ALL));
        let sent = dispatch(&mut engine, now + Duration::from_secs(1) - ms(1));
        assert_eq!(sent.len(), 10);
        assert!(sent.iter().all(|s| s.destination == other));
    }

    #[test]
    fn unicast_search_is_answered_at_once() {
        let (mut engine, now) = settled(2);
        engine.on_search(
            now,
            2,
            SEARCHER,
            &search("192.168.10.2:1900", None, "upnp:rootdevice"),
        );
        let sent = dispatch(&mut engine, now);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].destination, SEARCHER);
    }

    #[test]
    fn searches_are_rate_limited_per_source() {
        let (mut engine, now) = settled(2);
        let unicast = search("192.168.10.2:1900", None, "upnp:rootdevice");
        for _ in 0..SSDP_SEARCHES_PER_SOURCE + 3 {
            engine.on_search(now, 2, SEARCHER, &unicast);
        }
        assert_eq!(
            dispatch(&mut engine, now).len(),
            SSDP_SEARCHES_PER_SOURCE as usize
        );
        // Another source has its own budget.
        let other = SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 77), 1900);
        engine.on_search(now, 2, other, &unicast);
        assert_eq!(dispatch(&mut engine, now).len(), 1);
        // The budget comes back with the next window.
        let later = now + SSDP_RATE_WINDOW;
        engine.on_search(later, 2, SEARCHER, &unicast);
        assert_eq!(dispatch(&mut engine, later).len(), 1);
    }

    /// A hypervisor with `domains` embedded Domain devices of made-up UDNs: 4 + 3 × domains
    /// targets.
    fn many_devices(domains: usize) -> Vec<Advertisement> {
        let mut devices = devices(0);
        for n in 0..domains {
            devices.push(Advertisement {
                udn: format!("uuid:6f1c2a3e-0000-5000-8000-{n:012}"),
                device_type: URN_DEVICE_DOMAIN.to_owned(),
                service_types: vec![URN_SERVICE_DOMAIN_CONTROL.to_owned()],
                root: false,
            });
        }
        devices
    }

    fn settled_with(devices: Vec<Advertisement>) -> (Engine, Instant) {
        let mut engine = engine();
        let now = Instant::now();
        engine.set_devices(now, devices, 1);
        dispatch(&mut engine, now + SSDP_REPEAT_MAX);
        let now = now + SSDP_REPEAT_MAX;
        (engine, now)
    }

    /// Source `n` of interface 5's /16 (10.20.0.10 onwards).
    fn rotating(n: usize) -> SocketAddrV4 {
        let [_, _, high, low] = u32::try_from(n + 10).unwrap().to_be_bytes();
        SocketAddrV4::new(Ipv4Addr::new(10, 20, high, low), 1900)
    }

    /// A minimal M-SEARCH for `st`: unicast (answered at once, as an attacker would send it),
    /// or multicast with MX 1.
    fn datagram(st: &str, unicast: bool) -> Vec<u8> {
        let host = if unicast { "10.20.0.1:1900" } else { SSDP_HOST };
        let message = search(host, (!unicast).then_some("1"), st);
        let mut buffer = [0u8; SSDP_EMIT_BUFFER];
        let mut cursor = Cursor::new(&mut buffer);
        message.emit(&mut cursor).unwrap();
        cursor.written().to_vec()
    }

    /// Floods interface 5 with `st` from `sources` addresses in turn, 2,000 searches a second
    /// for 5 s, then lets every reply go: bytes received and bytes sent.
    fn flood(engine: &mut Engine, start: Instant, st: &str, sources: usize) -> (usize, usize) {
        let mut received = 0;
        let mut sent = 0;
        for k in 0..10_000u64 {
            let now = start + Duration::from_micros(500 * k);
            let bytes = datagram(st, k % 2 == 0);
            received += bytes.len();
            let source = rotating(usize::try_from(k).unwrap() % sources + 1);
            engine.on_datagram(now, 5, source, &bytes);
            if k % 20 == 0 {
                engine.dispatch(now, UNIX, |out| sent += out.bytes.len());
            }
        }
        let end = start + Duration::from_secs(5) + SSDP_REPLY_BURST + SSDP_REPLY_MAX_WAIT;
        engine.dispatch(end + Duration::from_secs(2), UNIX, |out| {
            if out.destination.port() == 1900 && *out.destination.ip() != SSDP_V4_GROUP {
                sent += out.bytes.len();
            }
        });
        (received, sent)
    }

    #[test]
    fn floods_get_less_than_ten_times_what_they_send_whatever_the_target() {
        // 20 domains: 64 targets, a 100-byte ssdp:all answered with about 24 KB.
        let devices = many_devices(20);
        let udn = devices[0].udn.clone();
        let patterns = [
            SSDP_ST_ALL,
            "upnp:rootdevice",
            udn.as_str(),
            URN_DEVICE_DOMAIN,
            URN_SERVICE_DOMAIN_CONTROL,
        ];
        let mut worst: f64 = 0.0;
        for st in patterns {
            for sources in [1, 1000] {
                let (mut engine, start) = settled_with(devices.clone());
                let (received, sent) = flood(&mut engine, start, st, sources);
                let amplification = sent as f64 / received as f64;
                worst = worst.max(amplification);
                assert!(
                    amplification < 10.0,
                    "{st} from {sources}: {sent} bytes sent for {received} ({amplification:.1})"
                );
                // Whatever the sources, at most the interface's rate over the flood and
                // what may wait, plus the priority replies.
                let rate = SSDP_REPLY_BYTES_PER_SECOND as f64;
                let paced = rate * (5.0 + (SSDP_REPLY_BURST + SSDP_REPLY_MAX_WAIT).as_secs_f64());
                let priority = 5 * 65 * SSDP_PRIORITY_REPLIES as usize * SSDP_EMIT_BUFFER;
                assert!(
                    sent as f64 <= paced + priority as f64,
                    "{st} from {sources}: {sent}"
                );
            }
        }
        // Measured: 4.7 for ssdp:all from 1,000 sources (the interface's bytes are the
        // bound), 0.9 for ssdp:all from one (its searches a second are).
        assert!(worst > 1.0, "the flood was answered at all: {worst}");
    }

    #[test]
    fn a_control_point_that_searched_recently_is_answered_during_a_flood() {
        let (mut engine, start) = settled_with(many_devices(20));
        let searcher = SocketAddrV4::new(Ipv4Addr::new(10, 20, 200, 1), 1900);
        let all = datagram(SSDP_ST_ALL, false);
        engine.on_datagram(start, 5, searcher, &all);
        assert_eq!(
            dispatch(&mut engine, start + Duration::from_secs(1)).len(),
            64
        );
        // 1,000 addresses flood ssdp:all, and the control point searches again meanwhile.
        let mut answered = Vec::new();
        for k in 0..10_000u64 {
            let now = start + Duration::from_secs(1) + Duration::from_micros(500 * k);
            let source = rotating(usize::try_from(k).unwrap() % 1000 + 1);
            engine.on_datagram(now, 5, source, &datagram(SSDP_ST_ALL, true));
            if k % 2000 == 1000 {
                engine.on_datagram(now, 5, searcher, &all);
            }
            engine.dispatch(now, UNIX, |out| {
                if out.destination == searcher {
                    answered.push(out.bytes.to_vec());
                }
            });
        }
        engine.dispatch(start + Duration::from_secs(20), UNIX, |out| {
            if out.destination == searcher {
                answered.push(out.bytes.to_vec());
            }
        });
        // Five searches, each answered with at least its priority replies, the root's first.
        assert!(
            answered.len() >= 5 * SSDP_PRIORITY_REPLIES as usize,
            "{}",
            answered.len()
        );
        let roots = answered
            .iter()
            .filter(|bytes| {
                matches!(wire_ssdp::parse(bytes), Ok(Message::Response(r)) if r.search_target == "upnp:rootdevice")
            })
            .count();
        assert_eq!(roots, 5);
    }

    #[test]
    fn a_host_with_many_domains_answers_a_few_control_points_in_full() {
        // 400 domains: 1,204 targets, about 460 KB per ssdp:all; three control points at
        // once are answered in full within a few seconds.
        let (mut engine, now) = settled_with(many_devices(400));
        let searchers: Vec<SocketAddrV4> = (0..3)
            .map(|n| SocketAddrV4::new(Ipv4Addr::new(10, 20, 1, 10 + n), 1900))
            .collect();
        for searcher in &searchers {
            engine.on_search(
                now,
                5,
                *searcher,
                &search(SSDP_HOST, Some("3"), SSDP_ST_ALL),
            );
        }
        let mut counts = [0usize; 3];
        let mut last = now;
        for step in 1..=100u64 {
            let at = now + ms(100 * step);
            engine.dispatch(at, UNIX, |out| {
                if let Some(n) = searchers.iter().position(|s| *s == out.destination) {
                    counts[n] += 1;
                    last = at;
                }
            });
        }
        assert_eq!(counts, [1204; 3]);
        assert!(last <= now + Duration::from_secs(4), "{:?}", last - now);
        // 1,000 domains (3,004 targets, 1.2 MB an answer): the queue holds three answers, and
        // the interface's reply bytes bound what is sent: two control points in full within
        // the 3 s the reply bytes may run ahead, the third its first part, the root's first.
        let (mut engine, now) = settled_with(many_devices(1000));
        for searcher in &searchers {
            engine.on_search(
                now,
                5,
                *searcher,
                &search(SSDP_HOST, Some("3"), SSDP_ST_ALL),
            );
        }
        let mut counts = [0usize; 3];
        let mut roots = [0usize; 3];
        let mut last = now;
        for step in 1..=100u64 {
            let at = now + ms(100 * step);
            engine.dispatch(at, UNIX, |out| {
                if let Some(n) = searchers.iter().position(|s| *s == out.destination) {
                    counts[n] += 1;
                    last = at;
                    let root = matches!(
                        wire_ssdp::parse(out.bytes),
                        Ok(Message::Response(r)) if r.search_target == SSDP_NT_ROOT_DEVICE
                    );
                    roots[n] += usize::from(root);
                }
            });
        }
        // Measured: 3,004, 3,004 and 918 replies, the last 3 s after the searches (with the
        // queue of 4,096 it was 3,004, 1,092 and the third's 4 priority replies).
        assert_eq!(roots, [1; 3]);
        assert_eq!(counts[..2], [3004; 2]);
        assert!(counts[2] > 0 && counts[2] < 3004, "{counts:?}");
        assert!(last <= now + Duration::from_secs(4), "{:?}", last - now);
    }

    #[test]
    fn pending_replies_are_bounded_apart_from_priority_replies() {
        // 100 domains: 304 targets, so the queue holds its floor, 4,096 replies: 13 answers
        // and a part of a 14th.
        let (mut engine, now) = settled_with(many_devices(100));
        let all = search(SSDP_HOST, Some("5"), SSDP_ST_ALL);
        for source in 1..=14 {
            engine.on_search(now, 5, rotating(source), &all);
        }
        assert_eq!(engine.pending_replies(), SSDP_MAX_PENDING_REPLIES);
        // Another source gets its priority replies, nothing more.
        engine.on_search(now, 5, rotating(15), &all);
        let priority = SSDP_PRIORITY_REPLIES as usize;
        assert_eq!(
            engine.pending_replies(),
            SSDP_MAX_PENDING_REPLIES + priority
        );
        let sent = dispatch(&mut engine, now + Duration::from_secs(5));
        assert_eq!(sent.len(), SSDP_MAX_PENDING_REPLIES + priority);
        assert_eq!(engine.pending_replies(), 0);
    }

    #[test]
    fn removing_a_device_cancels_its_pending_replies() {
        let (mut engine, now) = settled(2);
        engine.on_search(now, 2, SEARCHER, &search(SSDP_HOST, Some("5"), SSDP_ST_ALL));
        engine.set_devices(now, devices(1), 2);
        assert_eq!(engine.pending_replies(), 7);
        let sent = dispatch(&mut engine, now + Duration::from_secs(5));
        let replies: Vec<&Sent> = sent.iter().filter(|s| s.destination == SEARCHER).collect();
        assert_eq!(replies.len(), 7);
        assert!(replies
            .iter()
            .all(|s| !s.response().unique_service_name.starts_with(DOMAINS[1])));
        assert!(replies.iter().all(|s| s.response().config_id == Some(2)));
    }

    #[test]
    fn shutdown_says_byebye_for_everything_and_cancels_the_rest() {
        let mut engine = engine();
        let now = Instant::now();
        engine.set_devices(now, devices(2), 1);
        dispatch(&mut engine, now);
        // The repeat is still pending; so is a reply.
        engine.on_search(now, 2, SEARCHER, &search(SSDP_HOST, Some("5"), SSDP_ST_ALL));
        assert_eq!(engine.pending_replies(), 10);
        engine.shutdown(now);
        assert_eq!(engine.pending_replies(), 0);
        let sent = dispatch(&mut engine, now);
        assert_eq!(sent.len(), 20);
        let mut wanted = expected_usns(&DOMAINS[..2]);
        wanted = wanted
            .into_iter()
            .flat_map(|usn| [usn.clone(), usn])
            .collect();
        wanted.sort();
        assert_eq!(usns(&sent), wanted);
        assert!(sent
            .iter()
            .all(|s| s.notify().notification_subtype == NotifyKind::ByeBye));
        assert_eq!(engine.poll_at(), None);
        engine.on_search(now, 2, SEARCHER, &multicast(SSDP_ST_ALL));
        engine.set_devices(now, devices(3), 2);
        assert!(dispatch(&mut engine, now + Duration::from_secs(3600)).is_empty());
    }

    #[test]
    fn datagrams_are_parsed_and_garbage_dropped() {
        let (mut engine, now) = settled(2);
        let datagram = b"M-SEARCH * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\n\
MX: 2\r\n\
ST: upnp:rootdevice\r\n\
\r\n";
        engine.on_datagram(now, 2, SEARCHER, datagram);
        assert_eq!(engine.pending_replies(), 1);
        for garbage in [&datagram[..40], b"\xff\xfe\r\n\r\n".as_slice(), b""] {
            engine.on_datagram(now, 2, SEARCHER, garbage);
        }
        // A NOTIFY from someone else is not ours to answer.
        engine.on_datagram(
            now,
            2,
            SEARCHER,
            b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\nNTS: ssdp:byebye\r\nUSN: uuid:x::upnp:rootdevice\r\n\r\n",
        );
        assert_eq!(engine.pending_replies(), 1);
        assert_eq!(dispatch(&mut engine, now + Duration::from_secs(2)).len(), 1);
    }

    #[test]
    fn helpers() {
        assert_eq!(parse_mx("3"), Some(3));
        assert_eq!(parse_mx("0"), Some(1));
        assert_eq!(parse_mx("99999999999999"), Some(5));
        assert_eq!(parse_mx("3s"), None);
        assert!(is_multicast_host("239.255.255.250:1900"));
        assert!(is_multicast_host("239.255.255.250"));
        assert!(!is_multicast_host("192.168.10.2:1900"));
        assert_eq!(
            split_version("urn:schemas-upnp-org:device:MediaServer:3"),
            Some(("urn:schemas-upnp-org:device:MediaServer", 3))
        );
        assert_eq!(split_version("uuid:abc:3"), None);
    }
}
