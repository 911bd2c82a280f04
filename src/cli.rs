//! Command-line options of each role (argh).
//!
//! argh has no way to share a group of options between commands, so the network options both
//! advertisers take (`--iface`, `--state-dir`, `--http-port`, `--max-age`) are declared in
//! each; `role::interfaces` checks them in one place.

use crate::consts::{
    DEFAULT_STATE_DIR, HANDLER_TIMEOUT, SSDP_DEFAULT_MAX_AGE, VM_DEFAULT_SERVICES_DIR,
};
use argh::FromArgs;
use std::path::PathBuf;

/// Advertise this Xen host and one embedded device per domain over UPnP (run in dom0).
#[derive(FromArgs, Debug, PartialEq)]
pub struct HypervisorArgs {
    /// network interface to advertise on; repeat for several (required: never a default)
    #[argh(option)]
    pub iface: Vec<String>,
    /// hypervisor backend: sim
    #[argh(option, default = "String::from(\"sim\")")]
    pub backend: String,
    /// directory of the sim backend's domain files (NAME.domain files)
    #[argh(option)]
    pub sim_dir: Option<PathBuf>,
    /// directory keeping BOOTID, CONFIGID and a generated host UUID
    #[argh(option, default = "PathBuf::from(DEFAULT_STATE_DIR)")]
    pub state_dir: PathBuf,
    /// HTTP port for descriptions, control and events (default: an ephemeral one)
    #[argh(option, default = "0")]
    pub http_port: u16,
    /// SSDP max-age in seconds (default 1800)
    #[argh(option, default = "SSDP_DEFAULT_MAX_AGE")]
    pub max_age: u32,
}

/// Run a simulated host with a few domains on loopback and show how to look at it.
#[derive(FromArgs, Debug, PartialEq)]
pub struct DemoArgs {
    /// directory for the demo's files (default: a new one under the temporary directory)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// HTTP port on 127.0.0.1 (default: an ephemeral one)
    #[argh(option, default = "0")]
    pub http_port: u16,
}

/// Advertise this VM under its Xen UUID with the services its owner put in a directory (run
/// inside the guest).
#[derive(FromArgs, Debug, PartialEq)]
pub struct VmArgs {
    /// network interface to advertise on; repeat for several (required: never a default)
    #[argh(option)]
    pub iface: Vec<String>,
    /// the VM UUID (default: /sys/hypervisor/uuid, then /sys/class/dmi/id/product_uuid)
    #[argh(option)]
    pub uuid: Option<String>,
    /// directory of the owner's services (default /etc/xenplug/services)
    #[argh(option, default = "PathBuf::from(VM_DEFAULT_SERVICES_DIR)")]
    pub services: PathBuf,
    /// friendly name of the VM (default: the host name)
    #[argh(option)]
    pub name: Option<String>,
    /// seconds a handler may run before it is killed (default 10)
    #[argh(option, default = "HANDLER_TIMEOUT.as_secs()")]
    pub handler_timeout: u64,
    /// directory keeping BOOTID and CONFIGID
    #[argh(option, default = "PathBuf::from(DEFAULT_STATE_DIR)")]
    pub state_dir: PathBuf,
    /// HTTP port for descriptions, control and events (default: an ephemeral one)
    #[argh(option, default = "0")]
    pub http_port: u16,
    /// SSDP max-age in seconds (default 1800)
    #[argh(option, default = "SSDP_DEFAULT_MAX_AGE")]
    pub max_age: u32,
}

/// Listen on labelled networks and keep the configuration repositories and the event journal
/// up to date (run on the repositories host).
#[derive(FromArgs, Debug, PartialEq)]
pub struct TrackArgs {
    /// a network to listen on, NAME=IFACE for a tenant network or NAME=IFACE:provider for a
    /// management network; repeat for several (required: never a default)
    #[argh(option)]
    pub net: Vec<String>,
    /// repository directory (hardware/, virtual/, tenants/, events.log)
    #[argh(option)]
    pub repo: PathBuf,
    /// address of the read API, e.g. 127.0.0.1:8700 (none by default)
    #[argh(option)]
    pub api: Option<std::net::SocketAddr>,
    /// seconds a VM may advertise with no hypervisor listing it before it is reported
    /// de-virtualized (default 60)
    #[argh(option, default = "crate::consts::TRACK_DEFAULT_GRACE_SECONDS")]
    pub grace: u64,
}
