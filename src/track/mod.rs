//! The tracker: SSDP discovery on labelled networks, descriptions, repositories, read API.

pub mod api;
