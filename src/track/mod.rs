//! The tracker (`xenplug track`): listens to SSDP on labelled networks, fetches descriptions,
//! keeps the flat-file repositories and the event journal, and serves a read API.
//!
//! - [`run`]: the net layer (sockets, fetches, GENA subscriptions, the API server);
//! - [`api`]: the API's JSON documents, from the repositories;
//! - [`etcd`]: the publication of the tracker's view into etcd (`--etcd`);
//!
//! The decisions are the engines': [`crate::engine::discovery`] (what SSDP says is where) and
//! [`crate::engine::inventory`] (what that means for the repositories).

pub mod api;
pub mod etcd;
pub mod run;
