//! Engine layer: protocol state machines. Time comes in as an argument; nothing here reads a
//! clock, opens a socket or spawns a task. Inbound events are `on_*` methods, outbound work is
//! `poll_at()` (when to wake) and `dispatch(now, ..)`.

pub mod device;
pub mod discovery;
pub mod gena;
pub mod inventory;
pub mod ssdp;
pub mod subscriber;
