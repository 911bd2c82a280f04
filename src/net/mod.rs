//! Net layer: sockets, tasks and the clock. The only layer that does I/O.

pub mod advertiser;
pub mod etcd;
pub mod event_loop;
pub mod http;
pub mod http_client;
pub mod iface;
pub mod ssdp;

/// The wall clock in whole seconds since the Unix epoch (0 if the clock is before it): what
/// journals, HTTP `Date` and SSDP's `DATE` are written with. Engines are handed it, never read it.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs())
}
