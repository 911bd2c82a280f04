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
