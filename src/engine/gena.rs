//! Engine layer: GENA subscription state for one device (UDA 1.1 section 4). Time comes in
//! as `now`; nothing here reads a clock, opens a socket or resolves a name.
//!
//! The net layer drives it:
//! - SUBSCRIBE / UNSUBSCRIBE headers, read by [`crate::wire::gena`], go to
//!   [`Subscriptions::subscribe`], [`Subscriptions::renew`] and [`Subscriptions::unsubscribe`];
//! - once the SUBSCRIBE response is written, [`Subscriptions::send_initial`] queues the initial
//!   event (UDA 1.1 section 4.1.2: the initial event follows the response);
//! - model changes go to [`Subscriptions::notify`];
//! - [`Subscriptions::take_due`], at [`Subscriptions::poll_at`] and after each of the calls
//!   above, ends the subscriptions whose time is up and hands out the NOTIFYs to send, at
//!   most one in flight per subscription and [`GENA_IN_FLIGHT_PER_SUBSCRIBER`] per subscriber
//!   address; [`Subscriptions::delivered`] reports how each went.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::consts;
use crate::engine::notices::Noticed;
use crate::wire::gena::{write_propertyset, Callback};

/// Shortest subscription granted.
const GENA_MIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Subscriptions per service, at most, all subscribers together.
const GENA_MAX_SUBSCRIPTIONS: usize = 64;
/// Subscriptions per subscriber address and service, at most: a new one past this replaces
/// that subscriber's oldest. Well below [`GENA_MAX_SUBSCRIPTIONS`], so one address cannot
/// fill a service's table; room for a few control points on one host (a tracker and a
/// console) and for one that restarted without unsubscribing.
const GENA_MAX_PER_SUBSCRIBER: usize = 4;
/// Subscriber addresses remembered as already told about in a log line (see
/// [`Subscriptions::first_notice`]); the oldest is forgotten first.
const GENA_NOTICED_SOURCES: usize = 64;
/// Events queued per subscription before the oldest unsent ones are merged away.
const GENA_MAX_QUEUED_EVENTS: usize = 32;
/// NOTIFYs in flight to one subscriber address, at most: each is one connection, and a
/// subscriber serves one source a share of its connections (xenplug: 16, then 32 waiting,
/// then refusals). A tracker subscribed to every Domain of a host with a thousand of them
/// gets a thousand initial events at once otherwise, and a refused one is lost (the next
/// event carries the next SEQ, UDA 1.1 section 4.3.2), so its VM's state would stay unknown.
pub const GENA_IN_FLIGHT_PER_SUBSCRIBER: usize = 8;

/// A delivery URL, owned: where to connect and the request target of the NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackUrl {
    /// IPv4 address and port to connect to.
    pub address: SocketAddrV4,
    /// Request target (path and query) of the NOTIFY request line.
    pub path: String,
}

impl From<&Callback<'_>> for CallbackUrl {
    fn from(callback: &Callback<'_>) -> Self {
        CallbackUrl {
            address: callback.address,
            path: callback.path.to_owned(),
        }
    }
}

impl CallbackUrl {
    /// A borrowed view in the wire layer's form (`url` is left empty: it only serves logs).
    pub fn as_callback(&self) -> Callback<'_> {
        Callback {
            address: self.address,
            path: &self.path,
            url: "",
        }
    }
}

/// A subscription identifier: `uuid:` and a random version-4 UUID (the SID header).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sid(String);

impl Sid {
    /// The SID header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Sid> for String {
    fn from(sid: Sid) -> String {
        sid.0
    }
}

/// Why a subscription request is refused, with its HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenaRefusal {
    /// No callback URL at all: 412 (UDA 1.1 section 4.1.2, "missing CALLBACK").
    NoCallback,
    /// A callback URL whose host is not the subscriber's address: 412. UDA 1.1 does not ask
    /// for this check; it is the CallStranger (CVE-2020-12695) mitigation, so a subscriber
    /// can only make us send events to itself.
    CallbackNotSubscriber,
    /// The SID is unknown, expired, or belongs to another service: 412 (UDA 1.1 sections
    /// 4.1.3 and 4.1.4, "invalid SID").
    UnknownSubscription,
    /// No room for another subscription to this service: 503. UDA 1.1 section 4.1.2 asks for
    /// a 5xx when a publisher cannot accept a subscription for lack of resources; 503 tells
    /// the subscriber the condition is temporary.
    Unavailable,
}

impl GenaRefusal {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            GenaRefusal::NoCallback
            | GenaRefusal::CallbackNotSubscriber
            | GenaRefusal::UnknownSubscription => 412,
            GenaRefusal::Unavailable => 503,
        }
    }
}

impl fmt::Display for GenaRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GenaRefusal::NoCallback => "no callback URL",
            GenaRefusal::CallbackNotSubscriber => "callback host is not the subscriber",
            GenaRefusal::UnknownSubscription => "unknown or expired subscription",
            GenaRefusal::Unavailable => "too many subscriptions",
        })
    }
}

impl std::error::Error for GenaRefusal {}

/// One NOTIFY to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// SID header value.
    pub sid: String,
    /// Delivery URLs in the subscriber's order: UDA 1.1 section 4.3.2 asks to try them in
    /// order until one accepts; [`Subscriptions::delivered`] takes the overall outcome.
    pub callbacks: Vec<CallbackUrl>,
    /// SEQ header value.
    pub seq: u32,
    /// The property set (XML body).
    pub body: Vec<u8>,
}

/// How a NOTIFY delivery went, for [`Subscriptions::delivered`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A callback answered 200.
    Delivered,
    /// No callback took it (no answer, or a status other than 200 and 412).
    Failed,
    /// A callback answered 412 Precondition Failed: the subscriber does not know the SID.
    UnknownSid,
}

impl Outcome {
    /// What a callback's answer to NOTIFY with `status` means: `Some` ends the delivery
    /// (200 took it; 412 says the subscriber does not know the SID), `None` lets the next
    /// callback URL be tried (UDA 1.1 section 4.3.2: the URLs are tried in order until one
    /// takes the event). When none takes it, the outcome is [`Outcome::Failed`].
    pub fn of_answer(status: u16) -> Option<Outcome> {
        match status {
            200 => Some(Outcome::Delivered),
            412 => Some(Outcome::UnknownSid),
            _ => None,
        }
    }
}

/// Variables of one queued event, name and value, in the order they will be written.
type Variables = Vec<(String, String)>;

#[derive(Debug)]
struct Subscription {
    service: String,
    /// The address it was made from (the TCP peer, IPv4 as itself).
    subscriber: IpAddr,
    /// Order of creation: the oldest of a subscriber's has the smallest.
    serial: u64,
    callbacks: Vec<CallbackUrl>,
    expires: Instant,
    /// SEQ of the next event taken for delivery.
    next_seq: u32,
    /// Whether the initial event has been queued; events before that are not for this
    /// subscriber (its initial event will carry the state they changed).
    active: bool,
    /// Events not yet taken for delivery, oldest first.
    pending: VecDeque<Variables>,
    /// Nothing is delivered before this instant (the initial event's grace time).
    hold_until: Option<Instant>,
    /// SEQ of the event being delivered, if any.
    in_flight: Option<u32>,
}

impl Subscription {
    /// Queues an event; when the queue is full, the two oldest events are merged into one
    /// (later values of the same variable win), so no change is lost, only intermediate
    /// values. SEQs are given at delivery, so merging leaves no gap a subscriber would read
    /// as a lost event.
    fn enqueue(&mut self, variables: Variables) {
        if self.pending.len() >= GENA_MAX_QUEUED_EVENTS {
            match (self.pending.pop_front(), self.pending.front_mut()) {
                (Some(mut oldest), Some(next)) => {
                    merge(&mut oldest, std::mem::take(next));
                    *next = oldest;
                }
                (Some(mut only), None) => {
                    merge(&mut only, variables);
                    self.pending.push_back(only);
                    return;
                }
                (None, _) => {}
            }
        }
        self.pending.push_back(variables);
    }

    /// Whether an event can be taken at `now`.
    fn is_ready(&self, now: Instant) -> bool {
        self.in_flight.is_none()
            && !self.pending.is_empty()
            && self.hold_until.is_none_or(|hold| hold <= now)
    }

    /// Takes the oldest pending event, if nothing is in flight and it is not held.
    fn take(&mut self, now: Instant) -> Option<(u32, Variables)> {
        if !self.is_ready(now) {
            return None;
        }
        let variables = self.pending.pop_front()?;
        let seq = self.next_seq;
        // UDA 1.1 section 4.3.2: SEQ wraps from 4294967295 to 1; 0 is only ever the initial
        // event.
        self.next_seq = seq.checked_add(1).unwrap_or(1);
        self.in_flight = Some(seq);
        Some((seq, variables))
    }
}

/// Folds `newer` into `older`: a variable already present takes the newer value in place,
/// others are appended in their order.
fn merge(older: &mut Variables, newer: Variables) {
    for (name, value) in newer {
        match older.iter_mut().find(|(existing, _)| *existing == name) {
            Some(slot) => slot.1 = value,
            None => older.push((name, value)),
        }
    }
}

/// Attempts at drawing a SID that is not in use before giving up (a collision of random
/// 122-bit values means a broken seed, not bad luck).
const SID_ATTEMPTS: usize = 4;

/// A subscription granted by [`Subscriptions::subscribe`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Its SID.
    pub sid: Sid,
    /// The duration granted (the TIMEOUT header of the answer).
    pub granted: Duration,
    /// The subscriber's oldest subscription to the service, ended to make room, if any (the
    /// subscriber had `GENA_MAX_PER_SUBSCRIBER` already).
    pub replaced: Option<Sid>,
}

/// What a log line tells about a subscriber, for [`Subscriptions::first_notice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    /// It reached its share of a service and its oldest subscription was replaced.
    Replaced,
    /// A service had no room for it: 503.
    Refused,
}

/// The subscriptions of one device, all services in one table keyed by a service key such as
/// `hypervisor` or `domain/<uuid>`.
#[derive(Debug)]
pub struct Subscriptions {
    rng: fastrand::Rng,
    /// Keyed by SID, so iteration (and the order of deliveries) is deterministic.
    table: BTreeMap<String, Subscription>,
    /// Serial of the next subscription.
    next_serial: u64,
    /// Subscribers already told about in a log line, oldest first.
    noticed: Noticed<Notice>,
    /// The subscriber of each delivery in flight, by SID (kept until it is reported, even
    /// when its subscription ended meanwhile), and their count per subscriber.
    flying: BTreeMap<String, IpAddr>,
    busy: std::collections::HashMap<IpAddr, usize>,
}

impl Subscriptions {
    /// An empty table whose SIDs are drawn from a generator seeded with `seed`.
    ///
    /// The seed must come from real randomness (the net layer reads it from the operating
    /// system): a SID is all it takes to renew or cancel a subscription, so predictable SIDs
    /// would let anyone on the network cancel other control points' subscriptions. Tests pass
    /// fixed seeds.
    pub fn new(seed: u64) -> Self {
        Subscriptions {
            rng: fastrand::Rng::with_seed(seed),
            table: BTreeMap::new(),
            next_serial: 0,
            noticed: Noticed::new(GENA_NOTICED_SOURCES),
            flying: BTreeMap::new(),
            busy: std::collections::HashMap::new(),
        }
    }

    /// Accepts a new subscription to `service` from `subscriber` (the TCP peer address).
    ///
    /// Every callback must point at the subscriber's own address (CallStranger mitigation),
    /// else 412. The duration granted is `requested` clamped into
    /// `GENA_MIN_TIMEOUT`..=[`consts::GENA_MAX_TIMEOUT`], or
    /// [`consts::GENA_DEFAULT_TIMEOUT`] when none (or infinite) was asked for: UDA 1.1
    /// section 4.1.2 leaves the duration to the publisher, who answers what it granted, so a
    /// subscription left behind by a control point that went away ends within 30 minutes.
    ///
    /// A subscriber has at most `GENA_MAX_PER_SUBSCRIBER` live subscriptions to a service: a
    /// new one past that replaces its own oldest ([`Subscribed::replaced`]), which a control
    /// point that restarted without unsubscribing needs, and which leaves other subscribers
    /// untouched. A service has at most `GENA_MAX_SUBSCRIPTIONS` in all, else 503; one address
    /// alone never gets there.
    ///
    /// Nothing is sent until [`Subscriptions::send_initial`].
    pub fn subscribe(
        &mut self,
        now: Instant,
        service: &str,
        callbacks: Vec<CallbackUrl>,
        requested: Option<Duration>,
        subscriber: IpAddr,
    ) -> Result<Subscribed, GenaRefusal> {
        if callbacks.is_empty() {
            return Err(GenaRefusal::NoCallback);
        }
        // A dual-stack socket reports an IPv4 peer as ::ffff:a.b.c.d.
        let subscriber = subscriber.to_canonical();
        if callbacks
            .iter()
            .any(|callback| IpAddr::V4(*callback.address.ip()) != subscriber)
        {
            return Err(GenaRefusal::CallbackNotSubscriber);
        }
        let granted = grant(requested);
        let expires = now.checked_add(granted).ok_or(GenaRefusal::Unavailable)?;
        let live = |subscription: &Subscription| {
            subscription.service == service && subscription.expires > now
        };
        let own: Vec<(&String, u64)> = self
            .table
            .iter()
            .filter(|(_, subscription)| live(subscription) && subscription.subscriber == subscriber)
            .map(|(sid, subscription)| (sid, subscription.serial))
            .collect();
        let oldest = if own.len() >= GENA_MAX_PER_SUBSCRIBER {
            own.iter()
                .min_by_key(|(_, serial)| *serial)
                .map(|(sid, _)| (*sid).clone())
        } else {
            None
        };
        if oldest.is_none()
            && self.table.values().filter(|s| live(s)).count() >= GENA_MAX_SUBSCRIPTIONS
        {
            return Err(GenaRefusal::Unavailable);
        }
        let sid = self.fresh_sid().ok_or(GenaRefusal::Unavailable)?;
        let replaced =
            oldest.and_then(|old| self.table.remove_entry(&old).map(|(sid, _)| Sid(sid)));
        let serial = self.next_serial;
        self.next_serial += 1;
        self.table.insert(
            sid.clone(),
            Subscription {
                service: service.to_owned(),
                subscriber,
                serial,
                callbacks,
                expires,
                next_seq: 0,
                active: false,
                pending: VecDeque::new(),
                hold_until: None,
                in_flight: None,
            },
        );
        Ok(Subscribed {
            sid: Sid(sid),
            granted,
            replaced,
        })
    }

    /// Whether a log line should tell about `notice` for `subscriber`: true the first time
    /// (then remembered), false after, so a subscriber repeating what got it refused or
    /// replaced is logged once, not once per request. The oldest of
    /// `GENA_NOTICED_SOURCES` remembered subscribers is forgotten first.
    pub fn first_notice(&mut self, subscriber: IpAddr, notice: Notice) -> bool {
        self.noticed.first(subscriber, notice)
    }

    /// Renews subscription `sid` of `service` for `requested` (clamped as in
    /// [`Subscriptions::subscribe`]) from `now`. An unknown or expired SID, or one of another
    /// service, is 412 (UDA 1.1 section 4.1.3); an expired one is removed.
    pub fn renew(
        &mut self,
        now: Instant,
        service: &str,
        sid: &str,
        requested: Option<Duration>,
    ) -> Result<Duration, GenaRefusal> {
        let subscription = self
            .table
            .get_mut(sid)
            .filter(|subscription| subscription.service == service)
            .ok_or(GenaRefusal::UnknownSubscription)?;
        if subscription.expires <= now {
            self.table.remove(sid);
            return Err(GenaRefusal::UnknownSubscription);
        }
        let granted = grant(requested);
        subscription.expires = now.checked_add(granted).ok_or(GenaRefusal::Unavailable)?;
        Ok(granted)
    }

    /// Cancels subscription `sid` of `service`; 412 when there is none (UDA 1.1 section
    /// 4.1.4). Pending events are dropped; one in flight finishes on its own.
    pub fn unsubscribe(&mut self, service: &str, sid: &str) -> Result<(), GenaRefusal> {
        match self.table.get(sid) {
            Some(subscription) if subscription.service == service => {
                self.table.remove(sid);
                Ok(())
            }
            _ => Err(GenaRefusal::UnknownSubscription),
        }
    }

    /// Queues the initial event (SEQ 0) of `sid`: every evented variable of the service with
    /// its current value, delivered no earlier than `not_before`. The net layer calls it only
    /// after the SUBSCRIBE response is written, and holds it a little longer: a control point
    /// learns the SID only once it has processed the response, and GUPnP drops a NOTIFY
    /// whose SID it does not know yet (UDA 1.1 section 4.1.2 only says the initial event
    /// follows the response). Ignored for an unknown SID or a subscription whose initial
    /// event was already queued.
    pub fn send_initial(
        &mut self,
        sid: &str,
        variables: Vec<(String, String)>,
        not_before: Instant,
    ) {
        if let Some(subscription) = self.table.get_mut(sid) {
            if !subscription.active {
                subscription.active = true;
                subscription.hold_until = Some(not_before);
                subscription.enqueue(variables);
            }
        }
    }

    /// Queues an event with the changed `variables` for every active subscription of
    /// `service` (those whose initial event is queued). Subscriptions still waiting for
    /// [`Subscriptions::send_initial`] get nothing: their initial event will carry the new
    /// values. An empty change is ignored.
    pub fn notify(&mut self, service: &str, variables: Vec<(String, String)>) {
        if variables.is_empty() {
            return;
        }
        for subscription in self.table.values_mut() {
            if subscription.active && subscription.service == service {
                subscription.enqueue(variables.clone());
            }
        }
    }

    /// Removes every subscription whose time is up at `now` (UDA 1.1 section 4.1.2: a
    /// subscription not renewed before it expires ends).
    fn expire(&mut self, now: Instant) {
        self.table
            .retain(|_, subscription| subscription.expires > now);
    }

    /// When there is next something to do: an expiry, or a held initial event coming due.
    /// Other deliveries do not wait on time: call [`Subscriptions::take_due`] after every
    /// `send_initial`, `notify` and `delivered`.
    pub fn poll_at(&self) -> Option<Instant> {
        // A subscriber at its bound is woken by `delivered`, not by time.
        let waits = |subscriber: &IpAddr| {
            self.busy.get(subscriber).copied().unwrap_or(0) >= GENA_IN_FLIGHT_PER_SUBSCRIBER
        };
        self.table
            .values()
            .flat_map(|subscription| {
                let held = subscription.hold_until.filter(|_| {
                    subscription.in_flight.is_none()
                        && !subscription.pending.is_empty()
                        && !waits(&subscription.subscriber)
                });
                [Some(subscription.expires), held]
            })
            .flatten()
            .min()
    }

    /// Whether [`Subscriptions::take_due`] would return something at `now`.
    #[cfg(test)]
    fn has_ready(&self, now: Instant) -> bool {
        self.table
            .values()
            .any(|subscription| subscription.is_ready(now))
    }

    /// What is due at `now`: subscriptions whose time is up end, then, for each subscription
    /// with nothing in flight, its oldest pending event goes out with the next SEQ. The
    /// subscription then has that event in flight until [`Subscriptions::delivered`], so each
    /// subscriber receives its events one at a time and in SEQ order.
    pub fn take_due(&mut self, now: Instant) -> Vec<Delivery> {
        self.expire(now);
        let mut ready = Vec::new();
        for (sid, subscription) in &mut self.table {
            let busy = self
                .busy
                .get(&subscription.subscriber)
                .copied()
                .unwrap_or(0);
            if busy >= GENA_IN_FLIGHT_PER_SUBSCRIBER || self.flying.contains_key(sid) {
                continue;
            }
            if let Some((seq, variables)) = subscription.take(now) {
                self.flying.insert(sid.clone(), subscription.subscriber);
                *self.busy.entry(subscription.subscriber).or_default() += 1;
                let borrowed: Vec<(&str, &str)> = variables
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str()))
                    .collect();
                let mut body = Vec::new();
                write_propertyset(&borrowed, &mut body);
                ready.push(Delivery {
                    sid: sid.clone(),
                    callbacks: subscription.callbacks.clone(),
                    seq,
                    body,
                });
            }
        }
        ready
    }

    /// Reports the outcome of the delivery in flight for `sid`. The event is done either way:
    /// - [`Outcome::Failed`]: it is dropped, the subscription stays and the next event carries
    ///   the next SEQ, so the subscriber can tell it missed one (UDA 1.1 section 4.3.2);
    /// - [`Outcome::UnknownSid`]: the subscriber answered 412, which a control point does for
    ///   a SID it does not know (UDA 1.1 section 4.3.2): it cancelled, restarted or never had
    ///   the subscription, so the subscription ends now rather than being sent every event
    ///   until it expires. Returns the service key of the subscription so ended.
    ///
    /// Ignored for an unknown SID (cancelled or expired meanwhile).
    pub fn delivered(&mut self, sid: &str, outcome: Outcome) -> Option<String> {
        if let Some(subscriber) = self.flying.remove(sid) {
            if let Some(busy) = self.busy.get_mut(&subscriber) {
                *busy = busy.saturating_sub(1);
                if *busy == 0 {
                    self.busy.remove(&subscriber);
                }
            }
        }
        match outcome {
            Outcome::UnknownSid => self.table.remove(sid).map(|ended| ended.service),
            Outcome::Delivered | Outcome::Failed => {
                if let Some(subscription) = self.table.get_mut(sid) {
                    subscription.in_flight = None;
                }
                None
            }
        }
    }

    /// Ends every subscription of `service` (a Domain left the device): no further events,
    /// and renewals get 412.
    pub fn remove_service(&mut self, service: &str) {
        self.table
            .retain(|_, subscription| subscription.service != service);
    }

    /// Live (not yet expired) subscriptions of `service` at `now`.
    pub fn count(&self, now: Instant, service: &str) -> usize {
        self.table
            .values()
            .filter(|subscription| subscription.service == service && subscription.expires > now)
            .count()
    }

    /// Draws a SID not in use.
    fn fresh_sid(&mut self) -> Option<String> {
        for _ in 0..SID_ATTEMPTS {
            let mut bytes = [0u8; 16];
            self.rng.fill(&mut bytes);
            let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
            let sid = format!("{}{}", consts::UDN_PREFIX, uuid.hyphenated());
            if !self.table.contains_key(&sid) {
                return Some(sid);
            }
        }
        None
    }

    #[cfg(test)]
    fn set_next_seq(&mut self, sid: &str, seq: u32) {
        if let Some(subscription) = self.table.get_mut(sid) {
            subscription.next_seq = seq;
        }
    }
}

/// The duration granted for a requested one.
fn grant(requested: Option<Duration>) -> Duration {
    requested.map_or(consts::GENA_DEFAULT_TIMEOUT, |asked| {
        asked.clamp(GENA_MIN_TIMEOUT, consts::GENA_MAX_TIMEOUT)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const HV: &str = "hypervisor";
    const DOM: &str = "domain/6f1c2a3e-0000-4000-8000-000000000001";
    const CP: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);

    fn callback(ip: Ipv4Addr) -> Vec<CallbackUrl> {
        vec![CallbackUrl {
            address: SocketAddrV4::new(ip, 49152),
            path: "/cb".to_owned(),
        }]
    }

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn body_of(pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_propertyset(pairs, &mut out);
        out
    }

    fn subscribed(table: &mut Subscriptions, now: Instant, service: &str) -> String {
        subscribed_from(table, now, service, CP)
    }

    fn subscribed_from(
        table: &mut Subscriptions,
        now: Instant,
        service: &str,
        from: Ipv4Addr,
    ) -> String {
        let subscribed = table
            .subscribe(now, service, callback(from), None, IpAddr::V4(from))
            .unwrap();
        assert_eq!(subscribed.replaced, None);
        subscribed.sid.into()
    }

    #[test]
    fn notify_answers_map_to_outcomes() {
        assert_eq!(Outcome::of_answer(200), Some(Outcome::Delivered));
        assert_eq!(Outcome::of_answer(412), Some(Outcome::UnknownSid));
        for other in [204, 400, 404, 500, 503] {
            assert_eq!(Outcome::of_answer(other), None, "{other}");
        }
    }

    #[test]
    fn subscribe_grants_clamped_durations_and_uuid_sids() {
        let now = Instant::now();
        let mut table = Subscriptions::new(7);
        let subscriber = IpAddr::V4(CP);
        let asks = [
            (None, consts::GENA_DEFAULT_TIMEOUT),
            (Some(Duration::from_secs(0)), GENA_MIN_TIMEOUT),
            (Some(Duration::from_secs(300)), Duration::from_secs(300)),
            // UDA 1.1 section 4.1.2: the publisher chooses; what it grants is answered.
            (Some(Duration::from_secs(86400)), Duration::from_secs(1800)),
        ];
        assert_eq!(consts::GENA_MAX_TIMEOUT, Duration::from_secs(1800));
        assert_eq!(
            grant(Some(Duration::from_secs(u64::MAX))),
            consts::GENA_MAX_TIMEOUT
        );
        let mut sids = Vec::new();
        for (requested, expected) in asks {
            let Subscribed { sid, granted, .. } = table
                .subscribe(now, HV, callback(CP), requested, subscriber)
                .unwrap();
            assert_eq!(granted, expected);
            let text = sid.as_str();
            assert!(text.starts_with("uuid:"), "{text}");
            let uuid = uuid::Uuid::parse_str(&text[5..]).unwrap();
            assert_eq!(uuid.get_version_num(), 4);
            sids.push(sid);
        }
        sids.sort();
        sids.dedup();
        assert_eq!(sids.len(), 4);
        assert_eq!(table.count(now, HV), 4);
        assert_eq!(table.poll_at(), Some(now + GENA_MIN_TIMEOUT));
    }

    #[test]
    fn callbacks_must_point_at_the_subscriber() {
        let now = Instant::now();
        let mut table = Subscriptions::new(1);
        let other = Ipv4Addr::new(10, 9, 8, 7);
        assert_eq!(
            table.subscribe(now, HV, callback(other), None, IpAddr::V4(CP)),
            Err(GenaRefusal::CallbackNotSubscriber)
        );
        let mut mixed = callback(CP);
        mixed.extend(callback(other));
        assert_eq!(
            table.subscribe(now, HV, mixed, None, IpAddr::V4(CP)),
            Err(GenaRefusal::CallbackNotSubscriber)
        );
        assert_eq!(
            table.subscribe(now, HV, Vec::new(), None, IpAddr::V4(CP)),
            Err(GenaRefusal::NoCallback)
        );
        assert_eq!(GenaRefusal::CallbackNotSubscriber.status(), 412);
        // An IPv4 peer seen through a dual-stack socket is the same subscriber.
        let mapped = IpAddr::V6(CP.to_ipv6_mapped());
        assert!(table.subscribe(now, HV, callback(CP), None, mapped).is_ok());
        assert_eq!(table.count(now, HV), 1);
    }

    /// Subscriber `n` of a crowd: 10.1.x.y.
    fn host(n: usize) -> Ipv4Addr {
        let n = u16::try_from(n).unwrap();
        let [high, low] = n.to_be_bytes();
        Ipv4Addr::new(10, 1, high, low)
    }

    #[test]
    fn subscriptions_per_service_are_bounded() {
        let now = Instant::now();
        let mut table = Subscriptions::new(2);
        // Many subscribers, each within its share, fill the service.
        for n in 0..GENA_MAX_SUBSCRIPTIONS {
            subscribed_from(&mut table, now, HV, host(n / GENA_MAX_PER_SUBSCRIBER));
        }
        let newcomer = host(1000);
        let refused = table.subscribe(now, HV, callback(newcomer), None, IpAddr::V4(newcomer));
        assert_eq!(refused, Err(GenaRefusal::Unavailable));
        assert_eq!(GenaRefusal::Unavailable.status(), 503);
        // A subscriber at its share still gets a new one, in place of its oldest.
        let full = host(0);
        let again = table
            .subscribe(now, HV, callback(full), None, IpAddr::V4(full))
            .unwrap();
        assert!(again.replaced.is_some());
        assert_eq!(table.count(now, HV), GENA_MAX_SUBSCRIPTIONS);
        // Other services are not affected, and expired ones do not count.
        subscribed(&mut table, now, DOM);
        let later = now + consts::GENA_DEFAULT_TIMEOUT;
        assert!(table
            .subscribe(later, HV, callback(newcomer), None, IpAddr::V4(newcomer))
            .is_ok());
    }

    #[test]
    fn one_address_never_locks_out_another() {
        let now = Instant::now();
        let mut table = Subscriptions::new(12);
        let attacker = IpAddr::V4(CP);
        let long = Some(Duration::from_secs(86400));
        let mut granted: Vec<Sid> = Vec::new();
        for n in 0..64 {
            let subscribed = table
                .subscribe(now, HV, callback(CP), long, attacker)
                .unwrap();
            assert_eq!(subscribed.granted, consts::GENA_MAX_TIMEOUT);
            // Past its share, each new one replaces the oldest of its own.
            let expected = (n >= GENA_MAX_PER_SUBSCRIBER)
                .then(|| granted[n - GENA_MAX_PER_SUBSCRIBER].clone());
            assert_eq!(subscribed.replaced, expected, "{n}");
            granted.push(subscribed.sid);
        }
        assert_eq!(table.count(now, HV), GENA_MAX_PER_SUBSCRIBER);
        let replaced = &granted[0];
        assert_eq!(
            table.renew(now, HV, replaced.as_str(), None),
            Err(GenaRefusal::UnknownSubscription)
        );
        // Another subscriber, and the attacker's share of another service, are untouched.
        let other = Ipv4Addr::new(192, 168, 1, 30);
        subscribed_from(&mut table, now, HV, other);
        subscribed_from(&mut table, now, DOM, CP);
        assert_eq!(table.count(now, HV), GENA_MAX_PER_SUBSCRIBER + 1);
    }

    #[test]
    fn notices_are_given_once_per_subscriber() {
        let mut table = Subscriptions::new(13);
        let one = IpAddr::V4(CP);
        assert!(table.first_notice(one, Notice::Refused));
        assert!(!table.first_notice(one, Notice::Refused));
        assert!(table.first_notice(one, Notice::Replaced), "another notice");
    }

    #[test]
    fn renew_unsubscribe_and_expiry() {
        let now = Instant::now();
        let mut table = Subscriptions::new(3);
        let sid = subscribed(&mut table, now, HV);
        let half = now + consts::GENA_DEFAULT_TIMEOUT / 2;
        assert_eq!(
            table.renew(half, HV, &sid, Some(Duration::from_secs(86400))),
            Ok(consts::GENA_MAX_TIMEOUT)
        );
        assert_eq!(
            table.renew(half, HV, &sid, Some(Duration::from_secs(1200))),
            Ok(Duration::from_secs(1200))
        );
        assert_eq!(table.poll_at(), Some(half + Duration::from_secs(1200)));
        // The old expiry has no effect any more.
        table.expire(now + consts::GENA_DEFAULT_TIMEOUT - Duration::from_secs(1));
        assert_eq!(table.count(half, HV), 1);
        assert_eq!(
            table.renew(half, DOM, &sid, None),
            Err(GenaRefusal::UnknownSubscription)
        );
        assert_eq!(
            table.renew(half, HV, "uuid:nope", None),
            Err(GenaRefusal::UnknownSubscription)
        );
        let end = half + Duration::from_secs(1200);
        table.expire(end - Duration::from_secs(1));
        assert_eq!(table.count(half, HV), 1);
        table.expire(end);
        assert_eq!(table.count(end, HV), 0);
        assert_eq!(table.poll_at(), None);
        assert_eq!(
            table.renew(end, HV, &sid, None),
            Err(GenaRefusal::UnknownSubscription)
        );

        let sid = subscribed(&mut table, now, HV);
        // Renewing exactly at expiry is too late, even before expire() ran.
        assert_eq!(
            table.renew(now + consts::GENA_DEFAULT_TIMEOUT, HV, &sid, None),
            Err(GenaRefusal::UnknownSubscription)
        );
        let sid = subscribed(&mut table, now, HV);
        assert_eq!(
            table.unsubscribe(DOM, &sid),
            Err(GenaRefusal::UnknownSubscription)
        );
        assert_eq!(table.unsubscribe(HV, &sid), Ok(()));
        assert_eq!(
            table.unsubscribe(HV, &sid),
            Err(GenaRefusal::UnknownSubscription)
        );
        assert_eq!(GenaRefusal::UnknownSubscription.status(), 412);
    }

    #[test]
    fn initial_event_is_held_until_its_time() {
        let now = Instant::now();
        let mut table = Subscriptions::new(9);
        let sid = subscribed(&mut table, now, HV);
        let later = now + Duration::from_millis(300);
        table.send_initial(&sid, vars(&[("State", "running")]), later);
        assert!(table.take_due(now).is_empty(), "held");
        assert_eq!(
            table.poll_at(),
            Some(later),
            "the loop wakes for it before any expiry"
        );
        let ready = table.take_due(later);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].seq, 0);
    }

    #[test]
    fn initial_event_waits_for_send_initial() {
        let now = Instant::now();
        let mut table = Subscriptions::new(4);
        let sid = subscribed(&mut table, now, HV);
        // A change before the initial event is not sent to this subscriber.
        table.notify(HV, vars(&[("State", "early")]));
        assert!(!table.has_ready(now));
        assert!(table.take_due(now).is_empty());

        table.send_initial(&sid, vars(&[("State", "running"), ("Name", "a&b")]), now);
        table.send_initial(&sid, vars(&[("State", "twice")]), now);
        let ready = table.take_due(now);
        assert_eq!(
            ready,
            [Delivery {
                sid: sid.clone(),
                callbacks: callback(CP),
                seq: 0,
                body: body_of(&[("State", "running"), ("Name", "a&b")]),
            }]
        );
        table.delivered(&sid, Outcome::Delivered);
        assert!(table.take_due(now).is_empty(), "initial event queued once");
    }

    #[test]
    fn one_in_flight_and_seq_order() {
        let now = Instant::now();
        let mut table = Subscriptions::new(5);
        let sid = subscribed(&mut table, now, HV);
        let other = subscribed(&mut table, now, DOM);
        table.send_initial(&sid, vars(&[("State", "0")]), now);
        table.notify(HV, vars(&[("State", "1")]));
        table.notify(HV, vars(&[("State", "2")]));
        table.notify(DOM, vars(&[("Other", "x")]));

        let first = table.take_due(now);
        assert_eq!(first.len(), 1, "the DOM subscriber is not active yet");
        assert_eq!((first[0].sid.as_str(), first[0].seq), (sid.as_str(), 0));
        assert!(
            table.take_due(now).is_empty(),
            "one in flight per subscription"
        );
        assert!(!table.has_ready(now));

        table.delivered(&sid, Outcome::Failed);
        let second = table.take_due(now);
        assert_eq!(second[0].seq, 1, "a failed event is dropped, SEQ goes on");
        assert_eq!(second[0].body, body_of(&[("State", "1")]));
        table.delivered(&sid, Outcome::Delivered);
        let third = table.take_due(now);
        assert_eq!(third[0].seq, 2);
        assert_eq!(third[0].body, body_of(&[("State", "2")]));
        table.delivered(&sid, Outcome::Delivered);
        assert!(table.take_due(now).is_empty());

        table.delivered(&other, Outcome::Delivered);
        table.delivered("uuid:unknown", Outcome::Delivered);
        assert!(table.take_due(now).is_empty());
    }

    #[test]
    fn notifies_to_one_subscriber_are_bounded_in_flight_and_none_is_lost() {
        let now = Instant::now();
        let mut table = Subscriptions::new(7);
        // A tracker subscribed to 100 Domains, and another control point to one.
        let sids: Vec<String> = (0..100)
            .map(|n| subscribed(&mut table, now, &format!("domain/{n}")))
            .collect();
        let other_cp = Ipv4Addr::new(192, 168, 1, 30);
        let other = subscribed_from(&mut table, now, HV, other_cp);
        for sid in sids.iter().chain([&other]) {
            table.send_initial(sid, vars(&[("State", "running")]), now);
        }
        let ready = now + Duration::from_secs(1);
        let mut flying = table.take_due(ready);
        assert_eq!(flying.len(), GENA_IN_FLIGHT_PER_SUBSCRIBER + 1);
        assert!(flying.iter().any(|d| d.sid == other));
        assert!(table.take_due(ready).is_empty());
        // Held at the bound: woken by a delivery, not by time.
        assert!(table.poll_at().is_none_or(|at| at > ready));
        // One ends while its event is in flight: its place is freed all the same.
        let ending = flying
            .iter()
            .find_map(|d| sids.iter().position(|sid| *sid == d.sid))
            .unwrap();
        table.remove_service(&format!("domain/{ending}"));
        let mut delivered = 0;
        while let Some(delivery) = flying.pop() {
            table.delivered(&delivery.sid, Outcome::Delivered);
            delivered += 1;
            flying.extend(table.take_due(ready));
            let to_tracker = flying.iter().filter(|d| d.sid != other).count();
            assert!(to_tracker <= GENA_IN_FLIGHT_PER_SUBSCRIBER);
        }
        assert_eq!(delivered, 101, "every initial event went out once");
        assert!(table.busy.is_empty() && table.flying.is_empty());
    }

    #[test]
    fn a_412_to_notify_ends_the_subscription_at_once() {
        let now = Instant::now();
        let mut table = Subscriptions::new(10);
        let dead = subscribed(&mut table, now, HV);
        let alive = subscribed(&mut table, now, HV);
        for sid in [&dead, &alive] {
            table.send_initial(sid, vars(&[("State", "0")]), now);
        }
        let first = table.take_due(now);
        assert_eq!(first.len(), 2);
        // More events wait behind the ones in flight.
        table.notify(HV, vars(&[("State", "1")]));
        let later = now + Duration::from_secs(1);
        assert_eq!(
            table.delivered(&dead, Outcome::UnknownSid),
            Some(HV.to_string())
        );
        table.delivered(&alive, Outcome::Delivered);
        assert_eq!(table.count(later, HV), 1, "long before it would expire");
        let next = table.take_due(later);
        assert_eq!(next.len(), 1, "nothing more for the dropped SID: {next:?}");
        assert_eq!((next[0].sid.as_str(), next[0].seq), (alive.as_str(), 1));
        assert_eq!(
            table.renew(later, HV, &dead, None),
            Err(GenaRefusal::UnknownSubscription)
        );
        // A second answer about it, or about a SID never known, changes nothing.
        assert_eq!(table.delivered(&dead, Outcome::UnknownSid), None);
        assert_eq!(table.delivered("uuid:never", Outcome::UnknownSid), None);
        assert_eq!(table.count(later, HV), 1);
        // A plain failure keeps the subscription.
        table.delivered(&alive, Outcome::Failed);
        assert_eq!(table.count(later, HV), 1);
    }

    #[test]
    fn seq_wraps_to_one() {
        let now = Instant::now();
        let mut table = Subscriptions::new(6);
        let sid = subscribed(&mut table, now, HV);
        table.send_initial(&sid, vars(&[("State", "0")]), now);
        table.take_due(now);
        table.delivered(&sid, Outcome::Delivered);
        table.set_next_seq(&sid, u32::MAX);
        for expected in [u32::MAX, 1, 2] {
            table.notify(HV, vars(&[("State", "n")]));
            let ready = table.take_due(now);
            assert_eq!(ready[0].seq, expected);
            table.delivered(&sid, Outcome::Delivered);
        }
    }

    #[test]
    fn full_queue_merges_oldest_events() {
        let now = Instant::now();
        let mut table = Subscriptions::new(8);
        let sid = subscribed(&mut table, now, HV);
        table.send_initial(&sid, vars(&[("State", "s0"), ("Name", "n0")]), now);
        // Fill the queue: the initial event plus GENA_MAX_QUEUED_EVENTS - 1 changes.
        for n in 1..GENA_MAX_QUEUED_EVENTS {
            table.notify(HV, vars(&[("State", &format!("s{n}"))]));
        }
        // One more: the initial event and the first change are merged.
        table.notify(HV, vars(&[("Memory", "1024")]));

        let mut seen = Vec::new();
        loop {
            let ready = table.take_due(now);
            let Some(delivery) = ready.first() else { break };
            seen.push((delivery.seq, delivery.body.clone()));
            table.delivered(&sid, Outcome::Delivered);
        }
        assert_eq!(seen.len(), GENA_MAX_QUEUED_EVENTS);
        let seqs: Vec<u32> = seen.iter().map(|(seq, _)| *seq).collect();
        let expected: Vec<u32> = (0..GENA_MAX_QUEUED_EVENTS as u32).collect();
        assert_eq!(seqs, expected, "merging leaves no SEQ gap");
        assert_eq!(seen[0].1, body_of(&[("State", "s1"), ("Name", "n0")]));
        assert_eq!(seen[1].1, body_of(&[("State", "s2")]));
        assert_eq!(
            seen.last().map(|(_, body)| body.clone()),
            Some(body_of(&[("Memory", "1024")]))
        );
    }

    #[test]
    fn merge_keeps_order_and_later_values() {
        let mut older = vars(&[("A", "1"), ("B", "1")]);
        merge(&mut older, vars(&[("C", "2"), ("A", "2")]));
        assert_eq!(older, vars(&[("A", "2"), ("B", "1"), ("C", "2")]));
    }

    #[test]
    fn removed_service_ends_its_subscriptions() {
        let now = Instant::now();
        let mut table = Subscriptions::new(9);
        let gone = subscribed(&mut table, now, DOM);
        let kept = subscribed(&mut table, now, HV);
        table.send_initial(&gone, vars(&[("State", "running")]), now);
        table.send_initial(&kept, vars(&[("State", "running")]), now);
        table.remove_service(DOM);
        let ready = table.take_due(now);
        assert_eq!(ready.len(), 1);
        assert_eq!(ready[0].sid, kept);
        assert_eq!(
            table.renew(now, DOM, &gone, None),
            Err(GenaRefusal::UnknownSubscription)
        );
    }

    #[test]
    fn same_seed_same_sids_different_seed_different_sids() {
        let now = Instant::now();
        let sids = |seed| {
            let mut table = Subscriptions::new(seed);
            (0..3)
                .map(|_| subscribed(&mut table, now, HV))
                .collect::<Vec<_>>()
        };
        assert_eq!(sids(11), sids(11));
        assert_ne!(sids(11), sids(12));
    }
}
