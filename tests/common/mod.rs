//! Integration-test harness: network namespaces, a small bridge LAN, the real `xenplug` binary
//! and third-party UPnP peers (gssdp-discover, GUPnP through PyGObject, async-upnp-client).
//!
//! Network safety: nothing here ever sends a packet in the root network namespace. Every process
//! that touches the network (xenplug, peers, curl) is started with `ip netns exec NS ...` in a
//! namespace this harness created, and always with an explicit interface. Every namespace is
//! deleted, and every process in it killed, when its [`Netns`] is dropped (also on panic).
//! Every wait is bounded by a deadline.
//!
//! Running: as root (namespaces), with the peers installed (`.ci/run` installs them):
//! `cargo test --test interop_lan lan_discover_all` runs one test. Peers are found through
//! `XENPLUG_GI_PYTHON` (default /usr/bin/python3, needs python3-gi + gir1.2-gupnp-1.6) and
//! `XENPLUG_AUPNP_PYTHON` (default: the first of `python3`, /usr/bin/python3 that imports
//! async_upnp_client); a missing peer fails the test, it is never skipped. A failing test keeps
//! its logs (xenplug's stderr with `XENPLUG_LOG=debug`, each peer's stdout/stderr) under
//! target/tmp/ and prints where.
//!
//! The harness is split by subject into the files below and re-exported here, so a test names
//! everything as `common::X`. Each test crate uses only part of it, hence `allow(dead_code)`.
#![allow(dead_code)]

mod binary;
mod constants;
mod fleet;
mod http;
mod identity;
mod json;
mod lan;
mod netns;
mod peers;
mod procs;
mod repo_files;
mod scenarios;
mod services_dir;
mod sim;
mod topology;
mod tracker;
mod vm;

// Each test crate uses only some of these.
#[allow(unused_imports)]
pub use self::{
    binary::*, constants::*, fleet::*, http::*, identity::*, json::*, lan::*, netns::*, peers::*,
    procs::*, repo_files::*, scenarios::*, services_dir::*, sim::*, topology::*, tracker::*, vm::*,
};
