//! Engine layer: the control point side of GENA (UDA 1.1 section 4) for the tracker. Keeps one
//! subscription per (network, device, service, event URL) and decides when to SUBSCRIBE,
//! renew and UNSUBSCRIBE. State only: time comes in as `now`; no sockets, no clock, no tasks.
//!
//! The net layer drives it:
//! - after each description fetch of a device tree, [`Subscriber::reconcile`] with the
//!   services it wants events from: a service whose event URL is unchanged keeps its SID; one
//!   that disappeared or whose event URL changed is cancelled (an UNSUBSCRIBE queued, UDA 1.1
//!   section 4.1.4) and the new one subscribed. After a reboot (new BOOTID) every SID of the
//!   tree is forgotten without UNSUBSCRIBE: the device kept none of them;
//! - when a device leaves, [`Subscriber::forget`];
//! - [`Subscriber::take_due`] hands out the SUBSCRIBE requests (new or renewal) to send, at most
//!   one in flight per subscription and [`TRACK_SUBSCRIBE_PER_HOST`] per publisher address,
//!   and [`Subscriber::on_answer`] takes how each went;
//! - [`Subscriber::take_cancels`] hands out the UNSUBSCRIBEs to send (best effort: their
//!   outcome changes nothing here);
//! - an incoming NOTIFY is checked with [`Subscriber::on_notify`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::num::NonZeroU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{shrink, Interner};
use crate::consts::{GENA_DEFAULT_TIMEOUT, GENA_MAX_TIMEOUT};

/// Pause before subscribing again after a SUBSCRIBE failed.
const TRACK_RESUBSCRIBE_RETRY: Duration = Duration::from_secs(10);
/// Longest wait for a new subscription's initial event (UDA 1.1 section 4.2.1: it carries
/// every evented variable, and the publisher does not send it twice): one that was lost (the
/// publisher could not reach the callback in time) would leave the state unknown until it
/// changes, so a subscription whose initial event has not come within this is made anew.
const TRACK_INITIAL_EVENT_WAIT: Duration = Duration::from_secs(15);
/// SUBSCRIBEs in flight to one publisher address, at most: each is one connection, and a
/// publisher serves a source a share of its connections (xenplug: 16, then 32 waiting,
/// then refusals), which a hypervisor's hundreds of Domain subscriptions made at once
/// would overrun. Half of xenplug's share, so a description fetch or a relayed call to that
/// host still finds a slot.
pub const TRACK_SUBSCRIBE_PER_HOST: usize = 8;

/// A service the tracker wants events from, as a description gave it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Wanted {
    /// UDN of the device owning the service.
    pub owner: Box<str>,
    /// Service type (serviceType): shared by the subscriptions that repeat it.
    pub service_type: Arc<str>,
    /// Address of the event URL (eventSubURL).
    pub event: SocketAddrV4,
    /// Request target of the event URL.
    pub path: Box<str>,
}

/// A SUBSCRIBE to send: a new subscription (`sid` is `None`) or a renewal. Hand it back to
/// [`Subscriber::on_answer`] with the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The subscription's token: the callback path names it (`/gena/<token>`).
    pub token: u64,
    /// Network the subscription was made on.
    pub network: u32,
    /// Address of the event URL.
    pub event: SocketAddrV4,
    /// Request target of the event URL.
    pub path: String,
    /// SID header of a renewal; `None` for a new subscription.
    pub sid: Option<String>,
    /// Which attempt this is, so a late answer to a superseded one is recognised.
    attempt: u64,
}

/// An UNSUBSCRIBE to send (UDA 1.1 section 4.1.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cancel {
    /// Address of the event URL.
    pub event: SocketAddrV4,
    /// Request target of the event URL.
    pub path: String,
    /// SID header.
    pub sid: String,
}

/// How a SUBSCRIBE went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 200 with a SID and, if given, the duration granted.
    Granted {
        /// SID header of the response.
        sid: String,
        /// TIMEOUT header of the response (`None`: not given or infinite).
        timeout: Option<Duration>,
    },
    /// 412 to a renewal: the publisher does not know the SID (UDA 1.1 section 4.1.3), so it
    /// must be subscribed anew.
    Unknown,
    /// Anything else (no answer, another status, a malformed answer), with why.
    Failed(String),
}

/// One subscription.
#[derive(Debug)]
struct Entry {
    network: u32,
    /// The root device's UDN (its tree), shared by the tree's subscriptions.
    root: Arc<str>,
    wanted: Wanted,
    /// SID granted, if any.
    sid: Option<Box<str>>,
    /// When the SID granted runs out at the publisher.
    expires: Option<Instant>,
    /// When to send the next SUBSCRIBE.
    renew_at: Instant,
    /// The attempt awaiting its answer, if any.
    in_flight: Option<NonZeroU64>,
    /// Whether it is due but waits for its publisher to have fewer SUBSCRIBEs in flight.
    held: bool,
    /// Whether a NOTIFY came for it since its last new SUBSCRIBE was sent.
    heard: bool,
    /// Granted anew and its initial event not heard yet: the renewal time to go back to
    /// once it is (`renew_at` is then the end of the wait for it).
    awaiting_initial: Option<Instant>,
}

/// The tracker's GENA subscriptions, all networks and devices in one table keyed by token.
#[derive(Debug, Default)]
pub struct Subscriber {
    /// Boxed, as the inventory's VMs are: a node's unused room costs more than the boxes.
    table: BTreeMap<u64, Box<Entry>>,
    /// (renew_at, token) of every entry with nothing in flight and not held.
    due: BTreeSet<(Instant, u64)>,
    /// SUBSCRIBEs in flight per publisher address.
    busy: HashMap<Ipv4Addr, usize>,
    /// Per publisher address at its bound, the tokens due, oldest first (a token whose entry
    /// has gone since is skipped when its turn comes).
    held: HashMap<Ipv4Addr, VecDeque<u64>>,
    next_token: u64,
    next_attempt: u64,
    cancels: Vec<Cancel>,
    /// The service types the entries share.
    types: Interner,
}

impl Subscriber {
    /// An empty table.
    pub fn new() -> Self {
        Subscriber {
            next_token: 1,
            ..Subscriber::default()
        }
    }

    /// Makes the subscriptions of the tree rooted at `root` on `network` those of `wanted`
    /// (a description was just fetched): one per distinct [`Wanted`].
    /// - a subscription still wanted is kept with its SID and renewal time;
    /// - one no longer wanted (the service went, or its eventSubURL changed) is dropped, and
    ///   its SID, if any, cancelled (an UNSUBSCRIBE queued);
    /// - a wanted service with no subscription gets a new one, due at once.
    ///
    /// With `rebooted` (the fetch followed a new BOOTID), every SID of the tree is forgotten
    /// without UNSUBSCRIBE and the kept subscriptions are made anew at once: UDA 1.1 section
    /// 1.2.2 has BOOTID change when a device (re)joins the network, and a device that did so
    /// kept none of its subscriptions, so an UNSUBSCRIBE would only earn a 412.
    pub fn reconcile(
        &mut self,
        now: Instant,
        network: u32,
        root: &str,
        wanted: Vec<Wanted>,
        rebooted: bool,
    ) {
        let mut wanted: BTreeSet<Wanted> = wanted.into_iter().collect();
        let mut dropped = Vec::new();
        let mut renewed = Vec::new();
        let mut shared_root = None;
        for (token, entry) in self
            .table
            .iter_mut()
            .filter(|(_, e)| e.network == network && *e.root == *root)
        {
            shared_root.get_or_insert_with(|| entry.root.clone());
            if !wanted.remove(&entry.wanted) {
                dropped.push(*token);
            } else if rebooted {
                renewed.push((*token, entry.renew_at));
                entry.sid = None;
                entry.expires = None;
                entry.in_flight = None;
                entry.renew_at = now;
            }
        }
        for (token, before) in renewed {
            self.due.remove(&(before, token));
            if self.table.get(&token).is_some_and(|entry| !entry.held) {
                self.due.insert((now, token));
            }
        }
        for token in dropped {
            if let Some(entry) = self.table.remove(&token) {
                self.due.remove(&(entry.renew_at, token));
                if let (Some(sid), false) = (entry.sid, rebooted) {
                    self.cancels.push(Cancel {
                        event: entry.wanted.event,
                        path: entry.wanted.path.into(),
                        sid: sid.into(),
                    });
                }
            }
        }
        let root = shared_root.unwrap_or_else(|| Arc::from(root));
        for mut service in wanted {
            service.service_type = self.types.share(&service.service_type);
            let token = self.next_token;
            self.next_token += 1;
            self.table.insert(
                token,
                Box::new(Entry {
                    network,
                    root: root.clone(),
                    wanted: service,
                    sid: None,
                    expires: None,
                    renew_at: now,
                    in_flight: None,
                    held: false,
                    heard: false,
                    awaiting_initial: None,
                }),
            );
            self.due.insert((now, token));
        }
    }

    /// Drops, without UNSUBSCRIBE, the subscriptions of device `udn` on `network`: those of
    /// the tree it is the root of, and those of its own services when it is embedded. The
    /// device left: after a byebye it is going away (or the byebye was forged: the device
    /// then answers the targeted search and is subscribed again), after an expiry it has not
    /// been heard for max-age seconds and is likely unreachable, where an UNSUBSCRIBE would
    /// only wait for its timeout. Either way the publisher ends the subscription itself when
    /// its TIMEOUT runs out, and a NOTIFY it still sends is answered 412, on which a UDA 1.1
    /// publisher drops the subscription at once (section 4.3.2; xenplug does).
    pub fn forget(&mut self, network: u32, udn: &str) {
        let due = &mut self.due;
        self.table.retain(|token, entry| {
            let keep =
                !(entry.network == network && (*entry.root == *udn || *entry.wanted.owner == *udn));
            if !keep {
                due.remove(&(entry.renew_at, *token));
            }
            keep
        });
    }

    /// The SUBSCRIBEs due at `now`, marked in flight: none is handed out again before
    /// [`Subscriber::on_answer`] took its answer, and none while its publisher address has
    /// [`TRACK_SUBSCRIBE_PER_HOST`] in flight (it waits for one of those to be answered).
    pub fn take_due(&mut self, now: Instant) -> Vec<Request> {
        let mut requests = Vec::new();
        while let Some(&(at, token)) = self.due.first() {
            if at > now {
                break;
            }
            self.due.pop_first();
            let Some(entry) = self.table.get_mut(&token) else {
                continue;
            };
            let host = *entry.wanted.event.ip();
            let busy = self.busy.entry(host).or_default();
            if *busy >= TRACK_SUBSCRIBE_PER_HOST {
                entry.held = true;
                self.held.entry(host).or_default().push_back(token);
                continue;
            }
            *busy += 1;
            if entry.awaiting_initial.take().is_some() {
                // Its initial event never came: cancelled, and subscribed anew.
                if let Some(sid) = entry.sid.take() {
                    log::info!(
                        "gena: no initial event for {sid} at {}{} within {} s; subscribing anew",
                        entry.wanted.event,
                        entry.wanted.path,
                        TRACK_INITIAL_EVENT_WAIT.as_secs()
                    );
                    self.cancels.push(Cancel {
                        event: entry.wanted.event,
                        path: entry.wanted.path.to_string(),
                        sid: sid.into(),
                    });
                }
                entry.expires = None;
            }
            if entry.sid.is_none() {
                entry.heard = false;
            }
            self.next_attempt += 1;
            entry.in_flight = NonZeroU64::new(self.next_attempt);
            requests.push(Request {
                token,
                network: entry.network,
                event: entry.wanted.event,
                path: entry.wanted.path.to_string(),
                sid: entry.sid.as_deref().map(str::to_string),
                attempt: self.next_attempt,
            });
        }
        requests
    }

    /// One SUBSCRIBE to `host` was answered: its place goes to the next one held for it.
    fn release(&mut self, host: Ipv4Addr) {
        let busy = match self.busy.get_mut(&host) {
            Some(busy) => {
                *busy = busy.saturating_sub(1);
                *busy
            }
            None => 0,
        };
        if busy == 0 {
            self.busy.remove(&host);
            shrink(&mut self.busy);
        }
        let mut room = TRACK_SUBSCRIBE_PER_HOST.saturating_sub(busy);
        let Some(queue) = self.held.get_mut(&host) else {
            return;
        };
        while room > 0 {
            let Some(token) = queue.pop_front() else {
                break;
            };
            if let Some(entry) = self.table.get_mut(&token).filter(|entry| entry.held) {
                entry.held = false;
                self.due.insert((entry.renew_at, token));
                room -= 1;
            }
        }
        if queue.is_empty() {
            self.held.remove(&host);
            shrink(&mut self.held);
        }
    }

    /// Takes the answer to `request` at `now`; returns a line for the log when it failed.
    /// - granted: the SID is kept, renewed at half the duration granted;
    /// - 412 to a renewal: subscribed anew at once;
    /// - any other failure: tried again after `TRACK_RESUBSCRIBE_RETRY`, as a renewal of
    ///   the same SID while that SID is still live at the publisher, else anew.
    ///
    /// An answer to a request that was superseded (the subscription was dropped or made
    /// anew meanwhile) changes nothing, but a SID it grants that the table does not hold is
    /// cancelled, so no subscription is left behind at the publisher.
    pub fn on_answer(&mut self, now: Instant, request: &Request, answer: Answer) -> Option<String> {
        self.release(*request.event.ip());
        let current = self
            .table
            .get_mut(&request.token)
            .filter(|entry| entry.in_flight.map(NonZeroU64::get) == Some(request.attempt));
        let Some(entry) = current else {
            if let Answer::Granted { sid, .. } = answer {
                let held = self
                    .table
                    .get(&request.token)
                    .is_some_and(|entry| entry.sid.as_deref() == Some(sid.as_str()));
                if !held {
                    self.cancels.push(Cancel {
                        event: request.event,
                        path: request.path.clone(),
                        sid,
                    });
                }
            }
            return None;
        };
        entry.in_flight = None;
        let line = match answer {
            Answer::Granted { sid, timeout } => {
                let duration = timeout
                    .unwrap_or(GENA_DEFAULT_TIMEOUT)
                    .min(GENA_MAX_TIMEOUT);
                entry.sid = Some(sid.into());
                entry.expires = now.checked_add(duration);
                entry.renew_at = now + duration / 2;
                if request.sid.is_none() && !entry.heard {
                    let wait = now + TRACK_INITIAL_EVENT_WAIT;
                    if wait < entry.renew_at {
                        entry.awaiting_initial = Some(entry.renew_at);
                        entry.renew_at = wait;
                    }
                }
                None
            }
            Answer::Unknown => {
                entry.sid = None;
                entry.expires = None;
                entry.renew_at = now;
                Some("the publisher no longer knows the SID; subscribing anew".to_string())
            }
            Answer::Failed(reason) => {
                let retry = now + TRACK_RESUBSCRIBE_RETRY;
                if entry.expires.is_none_or(|expires| expires <= retry) {
                    entry.sid = None;
                    entry.expires = None;
                }
                entry.renew_at = retry;
                Some(reason)
            }
        };
        if !entry.held {
            self.due.insert((entry.renew_at, request.token));
        }
        line
    }

    /// Checks a NOTIFY that arrived on `network` from `peer` at the callback of `token` with
    /// SID header `sid`: the owner's UDN and the service type when it belongs to a live
    /// subscription, else `None` (the net layer answers 412, UDA 1.1 section 4.3.2). A NOTIFY
    /// before the SUBSCRIBE response was read (no SID known yet) is taken: the initial event
    /// may overtake it.
    ///
    /// The first one after a new subscription is its initial event: the subscription is then
    /// renewed at its usual time, not made anew.
    pub fn on_notify(
        &mut self,
        token: u64,
        network: u32,
        sid: Option<&str>,
        peer: IpAddr,
    ) -> Option<(&str, &str)> {
        let entry = self.table.get_mut(&token)?;
        let sid_ok = entry.sid.is_none() || sid == entry.sid.as_deref();
        let peer_ok = peer.to_canonical() == IpAddr::V4(*entry.wanted.event.ip());
        if !(entry.network == network && sid_ok && peer_ok) {
            return None;
        }
        entry.heard = true;
        if let Some(renew) = entry.awaiting_initial.take() {
            if entry.in_flight.is_none() && !entry.held {
                self.due.remove(&(entry.renew_at, token));
                self.due.insert((renew, token));
            }
            entry.renew_at = renew;
        }
        Some((&*entry.wanted.owner, &*entry.wanted.service_type))
    }

    /// The UNSUBSCRIBEs queued since the last call.
    pub fn take_cancels(&mut self) -> Vec<Cancel> {
        std::mem::take(&mut self.cancels)
    }

    /// When a SUBSCRIBE is next due (subscriptions with one in flight wait for its answer).
    pub fn poll_at(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// Subscriptions held, all networks.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The SID of the subscription to `wanted` of tree `root` on `network`, if one is held
    /// and granted.
    pub fn sid_of(&self, network: u32, root: &str, wanted: &Wanted) -> Option<&str> {
        self.table
            .values()
            .find(|e| e.network == network && *e.root == *root && e.wanted == *wanted)
            .and_then(|e| e.sid.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const NET: u32 = 0;
    const ROOT: &str = "uuid:a1a1a1a1-0000-4000-8000-00000000000a";
    const DOMAIN: &str = "uuid:acac0001-1111-4a6b-8c9d-0000000000a1";
    const OTHER_ROOT: &str = "uuid:b2b2b2b2-0000-4000-8000-00000000000b";
    const HOST: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 10);

    fn wanted(owner: &str, service: &str, port: u16, path: &str) -> Wanted {
        Wanted {
            owner: owner.into(),
            service_type: format!("urn:xenplug-org:service:{service}:1").into(),
            event: SocketAddrV4::new(HOST, port),
            path: path.into(),
        }
    }

    fn hypervisor(port: u16) -> Wanted {
        wanted(ROOT, "Hypervisor", port, "/event/hypervisor")
    }

    fn domain(port: u16) -> Wanted {
        wanted(DOMAIN, "DomainControl", port, "/event/domain/acac0001")
    }

    fn granted(sid: &str) -> Answer {
        Answer::Granted {
            sid: sid.to_string(),
            timeout: Some(Duration::from_secs(1800)),
        }
    }

    /// Sends every due SUBSCRIBE, grants it `uuid:<prefix>-<token>` and delivers its initial
    /// event.
    fn grant_all(subscriber: &mut Subscriber, now: Instant, prefix: &str) -> Vec<Request> {
        let requests = subscriber.take_due(now);
        for request in &requests {
            let sid = format!("uuid:{prefix}-{}", request.token);
            assert_eq!(
                subscriber.on_answer(now, request, granted(&sid)),
                None,
                "{request:?}"
            );
            let peer = IpAddr::V4(*request.event.ip());
            let network = request.network;
            assert!(subscriber
                .on_notify(request.token, network, Some(&sid), peer)
                .is_some());
        }
        requests
    }

    #[test]
    fn an_unchanged_refetch_keeps_every_sid_and_sends_nothing() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80), domain(80)], false);
        assert_eq!(subscriber.poll_at(), Some(now));
        let first = grant_all(&mut subscriber, now, "s");
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|r| r.sid.is_none()), "new subscriptions");
        assert_eq!(subscriber.poll_at(), Some(now + Duration::from_secs(900)));

        // CONFIGID moved (a Domain renamed): the same services at the same URLs.
        let later = now + Duration::from_secs(60);
        let again = vec![domain(80), hypervisor(80), hypervisor(80)];
        subscriber.reconcile(later, NET, ROOT, again, false);
        assert_eq!(subscriber.len(), 2);
        assert!(subscriber.take_due(later).is_empty(), "nothing to send");
        assert!(subscriber.take_cancels().is_empty(), "nothing to cancel");
        assert_eq!(
            subscriber.sid_of(NET, ROOT, &hypervisor(80)),
            Some("uuid:s-1")
        );
        assert_eq!(subscriber.sid_of(NET, ROOT, &domain(80)), Some("uuid:s-2"));

        // Renewal on schedule, with the SID.
        let half = now + Duration::from_secs(900);
        let renewals = subscriber.take_due(half);
        assert_eq!(renewals.len(), 2);
        assert_eq!(renewals[0].sid.as_deref(), Some("uuid:s-1"));
        assert_eq!(subscriber.poll_at(), None, "both in flight");
        assert!(subscriber.take_due(half).is_empty(), "one in flight each");
    }

    #[test]
    fn a_changed_or_vanished_event_url_is_unsubscribed_and_the_new_one_subscribed() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80), domain(80)], false);
        grant_all(&mut subscriber, now, "s");

        // The Hypervisor service's eventSubURL moved, the Domain went.
        let later = now + Duration::from_secs(5);
        subscriber.reconcile(later, NET, ROOT, vec![hypervisor(81)], false);
        let cancels = subscriber.take_cancels();
        assert_eq!(
            cancels,
            vec![
                Cancel {
                    event: SocketAddrV4::new(HOST, 80),
                    path: "/event/hypervisor".to_string(),
                    sid: "uuid:s-1".to_string(),
                },
                Cancel {
                    event: SocketAddrV4::new(HOST, 80),
                    path: "/event/domain/acac0001".to_string(),
                    sid: "uuid:s-2".to_string(),
                },
            ]
        );
        assert!(subscriber.take_cancels().is_empty(), "taken once");
        assert_eq!(subscriber.len(), 1);
        let requests = subscriber.take_due(later);
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].event, SocketAddrV4::new(HOST, 81));
        assert_eq!(requests[0].sid, None);
    }

    #[test]
    fn a_reboot_forgets_sids_without_unsubscribe() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80), domain(80)], false);
        grant_all(&mut subscriber, now, "s");
        // Rebooted: the Domain is back at the same URL, the Hypervisor service moved port.
        let later = now + Duration::from_secs(30);
        subscriber.reconcile(later, NET, ROOT, vec![hypervisor(90), domain(80)], true);
        assert!(
            subscriber.take_cancels().is_empty(),
            "no UNSUBSCRIBE after a reboot"
        );
        let requests = subscriber.take_due(later);
        assert_eq!(requests.len(), 2);
        assert!(
            requests.iter().all(|r| r.sid.is_none()),
            "every subscription made anew: {requests:?}"
        );
        assert_eq!(subscriber.sid_of(NET, ROOT, &domain(80)), None);
    }

    #[test]
    fn a_late_grant_for_a_dropped_subscription_is_cancelled() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![domain(80)], false);
        let requests = subscriber.take_due(now);
        // The Domain leaves while its SUBSCRIBE is in flight: nothing to cancel yet.
        subscriber.reconcile(now, NET, ROOT, Vec::new(), false);
        assert!(subscriber.take_cancels().is_empty());
        assert!(subscriber.is_empty());
        assert_eq!(
            subscriber.on_answer(now, &requests[0], granted("uuid:late")),
            None
        );
        assert_eq!(
            subscriber.take_cancels(),
            vec![Cancel {
                event: SocketAddrV4::new(HOST, 80),
                path: "/event/domain/acac0001".to_string(),
                sid: "uuid:late".to_string(),
            }]
        );
        // A late failure or 412 for it is simply dropped.
        subscriber.on_answer(now, &requests[0], Answer::Unknown);
        assert!(subscriber.take_cancels().is_empty());

        // A renewal superseded by a reboot: its grant is not adopted, and cancelled.
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80)], false);
        grant_all(&mut subscriber, now, "h");
        let half = now + Duration::from_secs(900);
        let renewal = subscriber.take_due(half);
        subscriber.reconcile(half, NET, ROOT, vec![hypervisor(80)], true);
        subscriber.on_answer(half, &renewal[0], granted("uuid:h-2"));
        assert_eq!(subscriber.sid_of(NET, ROOT, &hypervisor(80)), None);
        assert_eq!(subscriber.take_cancels().len(), 1);
        let fresh = subscriber.take_due(half);
        assert_eq!((fresh.len(), fresh[0].sid.as_ref()), (1, None));
    }

    #[test]
    fn failures_retry_the_same_sid_while_it_lives() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80)], false);
        let first = subscriber.take_due(now);
        // No answer to a new subscription: tried again later, still new.
        let why = subscriber.on_answer(now, &first[0], Answer::Failed("timed out".into()));
        assert_eq!(why.as_deref(), Some("timed out"));
        assert_eq!(subscriber.poll_at(), Some(now + TRACK_RESUBSCRIBE_RETRY));
        let retry = now + TRACK_RESUBSCRIBE_RETRY;
        let second = subscriber.take_due(retry);
        assert_eq!(second[0].sid, None);
        subscriber.on_answer(retry, &second[0], granted("uuid:one"));
        let peer = IpAddr::V4(HOST);
        assert!(subscriber
            .on_notify(second[0].token, NET, Some("uuid:one"), peer)
            .is_some());

        // A renewal that fails while the SID still lives: renewed again, same SID.
        let half = retry + Duration::from_secs(900);
        let renewal = subscriber.take_due(half);
        subscriber.on_answer(half, &renewal[0], Answer::Failed("refused".into()));
        let again = subscriber.take_due(half + TRACK_RESUBSCRIBE_RETRY);
        assert_eq!(again[0].sid.as_deref(), Some("uuid:one"));
        // 412: the publisher forgot it; anew at once.
        let at = half + TRACK_RESUBSCRIBE_RETRY;
        assert!(subscriber
            .on_answer(at, &again[0], Answer::Unknown)
            .is_some());
        assert_eq!(subscriber.take_due(at)[0].sid, None);
        assert!(subscriber.take_cancels().is_empty());

        // A renewal failing when the SID is about to run out: anew.
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80)], false);
        let request = subscriber.take_due(now);
        let short = Answer::Granted {
            sid: "uuid:short".into(),
            timeout: Some(Duration::from_secs(12)),
        };
        subscriber.on_answer(now, &request[0], short);
        let at = now + Duration::from_secs(6);
        let renewal = subscriber.take_due(at);
        assert_eq!(renewal[0].sid.as_deref(), Some("uuid:short"));
        subscriber.on_answer(at, &renewal[0], Answer::Failed("timed out".into()));
        assert_eq!(
            subscriber.take_due(at + TRACK_RESUBSCRIBE_RETRY)[0].sid,
            None
        );
    }

    #[test]
    fn leaving_devices_are_forgotten_without_unsubscribe() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![hypervisor(80), domain(80)], false);
        let other = Wanted {
            owner: OTHER_ROOT.into(),
            ..hypervisor(80)
        };
        subscriber.reconcile(now, NET, OTHER_ROOT, vec![other.clone()], false);
        subscriber.reconcile(now, 1, ROOT, vec![hypervisor(80)], false);
        grant_all(&mut subscriber, now, "s");
        assert_eq!(subscriber.len(), 4);
        // An embedded Domain's byebye drops its own services only.
        subscriber.forget(NET, DOMAIN);
        assert_eq!(subscriber.len(), 3);
        assert!(subscriber.sid_of(NET, ROOT, &hypervisor(80)).is_some());
        // The root's: its whole tree, on that network only.
        subscriber.forget(NET, ROOT);
        assert_eq!(subscriber.len(), 2);
        assert!(subscriber.sid_of(NET, OTHER_ROOT, &other).is_some());
        assert!(subscriber.sid_of(1, ROOT, &hypervisor(80)).is_some());
        assert!(subscriber.take_cancels().is_empty());
    }

    #[test]
    fn subscribes_to_one_host_are_bounded_in_flight_and_none_is_lost() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        // A hypervisor with 100 Domains, and another host with one service.
        let domains: Vec<Wanted> = (0..100)
            .map(|n| Wanted {
                owner: format!("uuid:acac0001-1111-4a6b-8c9d-{n:012}").into(),
                ..domain(80)
            })
            .collect();
        subscriber.reconcile(now, NET, ROOT, domains, false);
        // They share one copy of their root's UDN and one of their service type.
        let first = subscriber.table.values().next().unwrap();
        assert!(subscriber.table.values().all(|entry| {
            Arc::ptr_eq(&entry.root, &first.root)
                && Arc::ptr_eq(&entry.wanted.service_type, &first.wanted.service_type)
        }));
        let other = Wanted {
            owner: OTHER_ROOT.into(),
            event: SocketAddrV4::new(Ipv4Addr::new(10, 99, 1, 20), 80),
            ..hypervisor(80)
        };
        subscriber.reconcile(now, NET, OTHER_ROOT, vec![other.clone()], false);
        let mut in_flight = subscriber.take_due(now);
        assert_eq!(
            in_flight.len(),
            TRACK_SUBSCRIBE_PER_HOST + 1,
            "{in_flight:?}"
        );
        assert!(in_flight.iter().any(|r| r.event == other.event));
        assert!(
            subscriber.take_due(now).is_empty(),
            "the host is at its bound"
        );
        // Two Domains leave while held: their turn is skipped.
        subscriber.forget(NET, "uuid:acac0001-1111-4a6b-8c9d-000000000050");
        subscriber.forget(NET, "uuid:acac0001-1111-4a6b-8c9d-000000000051");
        let mut granted_count = 0;
        while let Some(request) = in_flight.pop() {
            let busy = in_flight
                .iter()
                .filter(|r| r.event.ip() == request.event.ip())
                .count();
            assert!(busy < TRACK_SUBSCRIBE_PER_HOST);
            let sid = format!("uuid:{}", request.token);
            subscriber.on_answer(now, &request, granted(&sid));
            let peer = IpAddr::V4(*request.event.ip());
            subscriber.on_notify(request.token, NET, Some(&sid), peer);
            granted_count += 1;
            in_flight.extend(subscriber.take_due(now));
            let to_host = in_flight.iter().filter(|r| r.event.ip() == &HOST).count();
            assert!(to_host <= TRACK_SUBSCRIBE_PER_HOST, "{to_host} in flight");
        }
        assert_eq!(
            granted_count, 99,
            "every subscription still wanted was made once"
        );
        assert_eq!(subscriber.len(), 99);
        assert!(subscriber.held.is_empty() && subscriber.busy.is_empty());
        assert_eq!(subscriber.poll_at(), Some(now + Duration::from_secs(900)));
    }

    #[test]
    fn a_subscription_whose_initial_event_never_comes_is_made_anew() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![domain(80), hypervisor(80)], false);
        let requests = subscriber.take_due(now);
        for request in &requests {
            subscriber.on_answer(now, request, granted(&format!("uuid:s-{}", request.token)));
        }
        // The Hypervisor service's initial event arrives; the Domain's was lost.
        let heard = requests
            .iter()
            .find(|r| r.path == "/event/hypervisor")
            .unwrap();
        let peer = IpAddr::V4(HOST);
        let sid = format!("uuid:s-{}", heard.token);
        assert!(subscriber
            .on_notify(heard.token, NET, Some(&sid), peer)
            .is_some());
        let wait = now + TRACK_INITIAL_EVENT_WAIT;
        assert_eq!(subscriber.poll_at(), Some(wait));
        let again = subscriber.take_due(wait);
        assert_eq!(again.len(), 1);
        assert_eq!(
            (again[0].path.as_str(), again[0].sid.as_ref()),
            ("/event/domain/acac0001", None)
        );
        let lost = requests
            .iter()
            .find(|r| r.path != "/event/hypervisor")
            .unwrap();
        assert_eq!(
            subscriber.take_cancels(),
            vec![Cancel {
                event: SocketAddrV4::new(HOST, 80),
                path: "/event/domain/acac0001".to_string(),
                sid: format!("uuid:s-{}", lost.token),
            }]
        );
        // This time it comes: renewed at half the time granted, like the other.
        subscriber.on_answer(wait, &again[0], granted("uuid:new"));
        assert!(subscriber
            .on_notify(again[0].token, NET, Some("uuid:new"), peer)
            .is_some());
        assert_eq!(subscriber.poll_at(), Some(now + Duration::from_secs(900)));
        // An initial event that overtakes the SUBSCRIBE answer counts too.
        subscriber.reconcile(wait, NET, OTHER_ROOT, vec![hypervisor(81)], false);
        let fresh = subscriber.take_due(wait);
        assert!(subscriber
            .on_notify(fresh[0].token, NET, Some("uuid:early"), peer)
            .is_some());
        subscriber.on_answer(wait, &fresh[0], granted("uuid:early"));
        assert_eq!(subscriber.poll_at(), Some(now + Duration::from_secs(900)));
    }

    #[test]
    fn notify_is_checked_against_the_subscription() {
        let now = Instant::now();
        let mut subscriber = Subscriber::new();
        subscriber.reconcile(now, NET, ROOT, vec![domain(80)], false);
        let request = subscriber.take_due(now);
        let token = request[0].token;
        let peer = IpAddr::V4(HOST);
        let owner = Some((DOMAIN, "urn:xenplug-org:service:DomainControl:1"));
        // Before the response is read: the initial event is taken.
        assert_eq!(
            subscriber.on_notify(token, NET, Some("uuid:x"), peer),
            owner
        );
        subscriber.on_answer(now, &request[0], granted("uuid:x"));
        assert_eq!(
            subscriber.on_notify(token, NET, Some("uuid:x"), peer),
            owner
        );
        let mapped = IpAddr::V6(HOST.to_ipv6_mapped());
        assert_eq!(
            subscriber.on_notify(token, NET, Some("uuid:x"), mapped),
            owner
        );
        // Wrong SID, network, sender or token.
        assert_eq!(
            subscriber.on_notify(token, NET, Some("uuid:old"), peer),
            None
        );
        assert_eq!(subscriber.on_notify(token, NET, None, peer), None);
        assert_eq!(subscriber.on_notify(token, 1, Some("uuid:x"), peer), None);
        let stranger = IpAddr::V4(Ipv4Addr::new(10, 99, 1, 11));
        assert_eq!(
            subscriber.on_notify(token, NET, Some("uuid:x"), stranger),
            None
        );
        assert_eq!(
            subscriber.on_notify(token + 1, NET, Some("uuid:x"), peer),
            None
        );
        // Once the subscription is dropped, its NOTIFYs are refused.
        subscriber.reconcile(now, NET, ROOT, Vec::new(), false);
        assert_eq!(subscriber.on_notify(token, NET, Some("uuid:x"), peer), None);
    }
}
