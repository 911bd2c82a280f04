//! Net layer: sockets, tasks and the clock. The only layer that does I/O.

pub mod device;
pub mod event_loop;
pub mod http;
pub mod http_client;
pub mod iface;
pub mod ssdp;
