//! Hypervisor backends.

pub mod sim;
