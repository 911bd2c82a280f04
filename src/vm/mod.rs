//! The VM advertiser's parts: the owner's services directory and the handlers it runs.

pub mod handler;
pub mod identity;
pub mod services;
