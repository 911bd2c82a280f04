//! xenplug: discover and manage Xen hypervisors and their virtual machines over UPnP.
//!
//! Layers, from bytes up (see the Design section of README.md):
//! - [`wire`]: parse and emit protocol bytes; never panics, never does I/O, no allocation on
//!   the SSDP and description hot paths.
//! - [`engine`]: protocol state machines; time is passed in, no sockets, no clock.
//! - [`net`]: sockets, tasks and the clock; the only layer that does I/O.
//! - [`model`], [`backend`], [`control`]: the device tree, where VMs come from, and what SOAP
//!   actions do to them.
//! - [`console`]: the operator's client of the tracker's read API.
//! - [`role`]: the subcommands that put the layers together.

pub mod app;
pub mod backend;
pub mod cli;
pub mod console;
pub mod consts;
pub mod control;
pub mod credentials;
pub mod engine;
pub mod error;
pub mod files;
pub mod logging;
pub mod model;
pub mod net;
pub mod repo;
pub mod role;
pub mod state;
pub mod subnet;
pub mod track;
pub mod vm;
pub mod watch;
pub mod wire;

pub use error::Error;
