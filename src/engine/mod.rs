//! Engine layer: protocol state machines. Time comes in as an argument; nothing here reads a
//! clock, opens a socket or spawns a task. Every engine hands out work the same way: inbound
//! events are `on_*` methods; `poll_at()` says when something next comes due; at that instant
//! `dispatch(now, emit)` hands datagrams to send to `emit` (SSDP, discovery), or `take_due(now)`
//! returns the work items to perform (GENA deliveries, the tracker's SUBSCRIBEs, the
//! inventory's timed decisions). Expiries happen inside those calls.

pub mod access;
pub mod call;
pub mod cluster;
pub mod discovery;
pub mod fetches;
pub mod gena;
pub mod inventory;
pub mod nonces;
pub mod notices;
pub mod publication;
pub mod relay;
pub mod ssdp;
pub mod ssdp_budget;
pub mod subscriber;

use crate::consts::{SSDP_REPEAT_MAX, SSDP_REPEAT_MIN};
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Maps whose capacity is at most this are not shrunk by [`shrink`].
const ENGINE_SHRINK_MIN: usize = 64;

/// Gives a map's memory back once it holds less than a quarter of what it has room for, so
/// what a flood made a table grow to is returned when its entries go.
pub(crate) fn shrink<K: Hash + Eq, V>(map: &mut HashMap<K, V>) {
    if map.capacity() > ENGINE_SHRINK_MIN && map.len() < map.capacity() / 4 {
        map.shrink_to(map.len() * 2);
    }
}

/// Texts an [`Interner`] holds before its first sweep.
const ENGINE_INTERN_MIN: usize = 64;

/// Text that many entries repeat (a device or service type, a root device's UDN), held once
/// and shared: a thousand Domains of one hypervisor hold one copy of their device type, not a
/// thousand. [`Interner::share`] hands out the copy already held, else holds a new one. Each
/// time the set has doubled since its last sweep, the copies no entry holds any more are let
/// go, so what a flood of distinct texts made it hold goes with their entries.
#[derive(Debug, Default)]
pub(crate) struct Interner {
    /// A map with nothing beside each key, so that [`shrink`] applies to it.
    held: HashMap<Arc<str>, ()>,
    /// How many it held after the last sweep.
    swept: usize,
}

impl Interner {
    /// The shared copy of `text`.
    pub(crate) fn share(&mut self, text: &str) -> Arc<str> {
        if let Some((held, ())) = self.held.get_key_value(text) {
            return held.clone();
        }
        if self.held.len() >= 2 * self.swept.max(ENGINE_INTERN_MIN) {
            self.held.retain(|held, ()| Arc::strong_count(held) > 1);
            self.swept = self.held.len();
            shrink(&mut self.held);
        }
        let shared: Arc<str> = Arc::from(text);
        self.held.insert(shared.clone(), ());
        shared
    }

    /// How many texts it holds (some perhaps no longer used, until the next sweep).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.len()
    }
}

/// `now + delay`; `Instant` addition panics on overflow, so this falls back to `now` (a
/// repeat or reply is sent at once, an expiry forgets at once rather than never).
pub(crate) fn later(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay).unwrap_or(now)
}

/// Delay before an SSDP message is sent the second time (UDA 1.1 section 1.1.2: UDP is
/// unreliable, so each message is sent more than once): [`SSDP_REPEAT_MIN`] to
/// [`SSDP_REPEAT_MAX`], drawn from `rng`.
pub(crate) fn ssdp_repeat_delay(rng: &mut fastrand::Rng) -> Duration {
    let low = u64::try_from(SSDP_REPEAT_MIN.as_millis()).unwrap_or(0);
    let high = u64::try_from(SSDP_REPEAT_MAX.as_millis()).unwrap_or(low);
    Duration::from_millis(if low < high { rng.u64(low..high) } else { low })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interner_shares_one_copy_and_lets_unused_ones_go() {
        let mut interner = Interner::default();
        let first = interner.share("urn:schemas-upnp-org:device:Basic:1");
        let second = interner.share("urn:schemas-upnp-org:device:Basic:1");
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(interner.len(), 1);
        // A flood of distinct texts, each dropped at once: the set stays bounded by a sweep.
        for n in 0..10 * ENGINE_INTERN_MIN {
            drop(interner.share(&format!("urn:flood:{n}")));
            assert!(interner.len() <= 2 * ENGINE_INTERN_MIN + 1);
        }
        // What is still held survives every sweep.
        assert!(Arc::ptr_eq(
            &first,
            &interner.share("urn:schemas-upnp-org:device:Basic:1")
        ));
    }
}
