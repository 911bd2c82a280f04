//! Command-line options of each role (argh).
//!
//! argh has no way to share a group of options between commands, so the network options both
//! advertisers take (`--iface`, `--state-dir`, `--http-port`, `--max-age`) are declared in
//! each; `role::interfaces` checks them in one place.

use crate::consts::{HANDLER_TIMEOUT, SSDP_DEFAULT_MAX_AGE, VM_DEFAULT_SERVICES_DIR};
use argh::FromArgs;
use std::path::PathBuf;

/// Default state directory (BOOTID, generated host UUID).
const DEFAULT_STATE_DIR: &str = "/var/lib/xenplug";
/// Default `--wait` of one-shot console commands with `--iface`, in seconds: the longest they
/// wait for discovery to settle.
const CONSOLE_DEFAULT_WAIT_SECONDS: u64 = 8;
/// Default `--xapi-user`.
const XAPI_DEFAULT_USER: &str = "root";
/// Directory of xl domain config files when `--xl-config-dir` is not given.
const XL_DEFAULT_CONFIG_DIR: &str = "/etc/xen";
/// The xl program when `--xl` is not given (looked up on PATH).
const XL_DEFAULT_PROGRAM: &str = "xl";
/// Directory of the images Suspend saves when `--xl-save-dir` is not given (xendomains' too).
const XL_DEFAULT_SAVE_DIR: &str = "/var/lib/xen/save";

/// Advertise this Xen host and one embedded device per domain over UPnP (run in dom0).
#[derive(FromArgs, Debug, PartialEq)]
pub struct HypervisorArgs {
    /// network interface to advertise on; repeat for several (required: never a default)
    #[argh(option)]
    pub iface: Vec<String>,
    /// hypervisor backend: auto (libxl where this build links the running Xen's, else xl),
    /// xl (the host's xl command, any Xen 4.x), libxl (dom0 build only), xapi, or sim
    #[argh(option, default = "String::from(\"sim\")")]
    pub backend: String,
    /// directory of the sim backend's domain files (NAME.domain files)
    #[argh(option)]
    pub sim_dir: Option<PathBuf>,
    /// the xapi backend's XenAPI server: unix:/path/to/socket or http://IPv4:PORT/
    #[argh(option)]
    pub xapi: Option<String>,
    /// the xapi backend's XenAPI user (default root)
    #[argh(option, default = "String::from(XAPI_DEFAULT_USER)")]
    pub xapi_user: String,
    /// file holding the XenAPI password (read once at start; a trailing newline is removed)
    #[argh(option)]
    pub xapi_password_file: Option<PathBuf>,
    /// directory of xl domain config files the libxl and xl backends list and start (default
    /// /etc/xen); a file needs name and uuid keys to be listed
    #[argh(option, default = "PathBuf::from(XL_DEFAULT_CONFIG_DIR)")]
    pub xl_config_dir: PathBuf,
    /// directory where the libxl and xl backends' Suspend saves domains (xl save) and Resume finds
    /// them (default /var/lib/xen/save, created 0700)
    #[argh(option, default = "PathBuf::from(XL_DEFAULT_SAVE_DIR)")]
    pub xl_save_dir: PathBuf,
    /// the xl program the xl backend runs for everything, and the libxl backend for Start,
    /// Shutdown, Reboot, Suspend and the Resume of a saved domain (default: xl on PATH)
    #[argh(option, default = "PathBuf::from(XL_DEFAULT_PROGRAM)")]
    pub xl: PathBuf,
    /// directory keeping BOOTID, CONFIGID and a generated host UUID
    #[argh(option, default = "PathBuf::from(DEFAULT_STATE_DIR)")]
    pub state_dir: PathBuf,
    /// HTTP port for descriptions, control and events (default: an ephemeral one)
    #[argh(option, default = "0")]
    pub http_port: u16,
    /// SSDP max-age in seconds (default 1800)
    #[argh(option, default = "SSDP_DEFAULT_MAX_AGE")]
    pub max_age: u32,
    /// who may call mutating actions (Shutdown, Reboot, Pause, Resume, Suspend, Destroy,
    /// StartVirtualMachine): an IPv4 address or ADDRESS/PREFIX, repeatable (typically the
    /// tracker's address); `any` for every host of the interfaces' subnets. Default: this
    /// host only (loopback and its own interface addresses), unless --control-key is given.
    /// Reads stay open.
    #[argh(option)]
    pub allow_control: Vec<String>,
    /// file holding the control key (64 hex digits, mode 0600; `xenplug access new-key FILE`
    /// makes one): mutating actions then need a signature made with it, as the tracker sends
    /// them; with --allow-control too, both must pass
    #[argh(option)]
    pub control_key: Option<PathBuf>,
}

/// Run the whole system on loopback: two simulated Xen hosts with their VMs, VM advertisers
/// with the example services, a tracker and the web console; print the tree; Ctrl-C stops it.
#[derive(FromArgs, Debug, PartialEq)]
pub struct DemoArgs {
    /// directory for the demo's files, kept on exit and reused by the next run (default: a new
    /// one under the temporary directory, removed on exit unless something failed)
    #[argh(option)]
    pub dir: Option<PathBuf>,
    /// port of the web console on 127.0.0.1 (default: a free one)
    #[argh(option, default = "0")]
    pub web_port: u16,
    /// port of the tracker's read API on 127.0.0.1 (default: a free one)
    #[argh(option, default = "0")]
    pub api_port: u16,
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
    /// file holding a control key (64 hex digits, mode 0600): every action of the owner's
    /// services then needs a signature made with it (the provider must prove itself)
    #[argh(option)]
    pub control_key: Option<PathBuf>,
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
    /// access file of the read API: one identity per line, NAME ROLE sha256:HEX (`xenplug
    /// access new` adds one); every request then needs a bearer token. Without it the API
    /// serves reads and refuses every action
    #[argh(option)]
    pub access: Option<PathBuf>,
    /// control key file: relayed calls are signed with it on behalf of the caller (64 hex
    /// digits, mode 0600; `xenplug access new-key FILE`)
    #[argh(option)]
    pub control_key: Option<PathBuf>,
    /// lifecycle actions a tenant may call on its own VMs, comma-separated (e.g.
    /// Shutdown,Reboot); default none
    #[argh(option, default = "String::new()")]
    pub tenant_control: String,
    /// publish the view into etcd v3 too, through its JSON gateway: the client URLs of its
    /// members, http://IPv4:PORT, comma-separated
    #[argh(option)]
    pub etcd: Option<String>,
    /// with --etcd: the prefix of every key (default /xenplug)
    #[argh(
        option,
        default = "String::from(crate::engine::cluster::ETCD_DEFAULT_PREFIX)"
    )]
    pub etcd_prefix: String,
    /// with --etcd: the etcd user to authenticate as (with --etcd-password-file)
    #[argh(option)]
    pub etcd_user: Option<String>,
    /// with --etcd-user: the file holding its password (one trailing newline removed)
    #[argh(option)]
    pub etcd_password_file: Option<PathBuf>,
    /// with --etcd: seconds the tracker's keys outlive it (its lease's TTL; default 10)
    #[argh(option, default = "crate::engine::cluster::publish::ETCD_DEFAULT_TTL")]
    pub etcd_ttl: u64,
    /// with --etcd: the name of the site this tracker publishes (1-64 of A-Z a-z 0-9 _ -;
    /// default: the host name); one tracker per site
    #[argh(option)]
    pub site: Option<String>,
    /// largest device description read, in bytes (default 4194304: a hypervisor of 4,000
    /// domains); embedded devices at most one per 512 bytes of it. Fewer descriptions are
    /// fetched at once when it is raised
    #[argh(option, default = "crate::consts::DESC_MAX_BYTES")]
    pub max_description: usize,
}

/// Show and control hypervisors and VMs through a tracker's read API, or by discovering them
/// on named interfaces, or both.
#[derive(FromArgs, Debug, PartialEq)]
pub struct ConsoleArgs {
    /// what to do
    #[argh(subcommand)]
    pub command: ConsoleCommand,
}

/// The console's subcommands.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand)]
pub enum ConsoleCommand {
    /// `tree`: print hypervisors, their VMs and what each VM offers.
    Tree(ConsoleTreeArgs),
    /// `call`: call an action on a VM or a hypervisor.
    Call(ConsoleCallArgs),
    /// `watch`: follow the tracker's events.
    Watch(ConsoleWatchArgs),
    /// `serve`: the console as a web page.
    Serve(ConsoleServeArgs),
}

/// Print the hypervisors, their VMs (name, UUID, run state, tenant) and each VM's services and
/// actions; VMs no hypervisor places are shown apart as de-virtualized.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "tree")]
pub struct ConsoleTreeArgs {
    /// print the tracker's JSON document instead (schema: see `xenplug::console`)
    #[argh(switch)]
    pub json: bool,
    /// a tracker's read API, http://IPv4:PORT (default http://127.0.0.1:8700 unless --iface
    /// is given)
    #[argh(option)]
    pub tracker: Option<String>,
    /// discover on this interface too, as a control point: IF for a provider network, IF:TENANT
    /// for a tenant network; repeat for several
    #[argh(option)]
    pub iface: Vec<String>,
    /// file holding the bearer token for --tracker (default: the XENPLUG_TOKEN environment
    /// variable)
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// with --iface: control key file the console's own tracker signs its calls with
    #[argh(option)]
    pub control_key: Option<PathBuf>,
    /// with --iface: seconds to wait at most for discovery to settle (default 8)
    #[argh(option, default = "CONSOLE_DEFAULT_WAIT_SECONDS")]
    pub wait: u64,
    /// read the merged view of every site from etcd instead: its members' client URLs,
    /// http://IPv4:PORT, comma-separated (calls go to the tracker of the site placing the
    /// target, with --token-file's token)
    #[argh(option)]
    pub etcd: Option<String>,
    /// with --etcd: the prefix of every key (default /xenplug)
    #[argh(
        option,
        default = "String::from(crate::engine::cluster::ETCD_DEFAULT_PREFIX)"
    )]
    pub etcd_prefix: String,
    /// with --etcd: the etcd user to authenticate as (with --etcd-password-file)
    #[argh(option)]
    pub etcd_user: Option<String>,
    /// with --etcd-user: the file holding its password
    #[argh(option)]
    pub etcd_password_file: Option<PathBuf>,
}

/// Call ACTION on TARGET with NAME=VALUE arguments. TARGET is a VM (name, UUID or uuid:UDN)
/// or a hypervisor (host name, host UUID or uuid:UDN). A VM's lifecycle actions (Shutdown,
/// Reboot, Pause, Resume, Suspend, Destroy, GetState, GetInfo) go to its Domain device on its
/// hypervisor, other actions to the VM's own services; a hypervisor's (GetHostInfo,
/// ListVirtualMachines, GetVirtualMachineIds, StartVirtualMachine VirtualMachineId=UUID) to
/// its Hypervisor service; all through a tracker's relay. Exit status: 0 done, 1 failed or
/// refused, 2 unknown target or action.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "call")]
pub struct ConsoleCallArgs {
    /// the VM or hypervisor: its name, UUID or uuid:UDN
    #[argh(positional)]
    pub target: String,
    /// the action's name
    #[argh(positional)]
    pub action: String,
    /// in-arguments, NAME=VALUE
    #[argh(positional)]
    pub arguments: Vec<String>,
    /// do not ask before a destructive action
    #[argh(switch)]
    pub yes: bool,
    /// the service type, when several services of the VM have an action of that name
    #[argh(option)]
    pub service: Option<String>,
    /// a tracker's read API, http://IPv4:PORT (default http://127.0.0.1:8700 unless --iface
    /// is given)
    #[argh(option)]
    pub tracker: Option<String>,
    /// discover on this interface too, as a control point: IF for a provider network, IF:TENANT
    /// for a tenant network; repeat for several
    #[argh(option)]
    pub iface: Vec<String>,
    /// file holding the bearer token for --tracker (default: the XENPLUG_TOKEN environment
    /// variable)
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// with --iface: control key file the console's own tracker signs its calls with
    #[argh(option)]
    pub control_key: Option<PathBuf>,
    /// with --iface: seconds to wait at most for discovery to settle (default 8)
    #[argh(option, default = "CONSOLE_DEFAULT_WAIT_SECONDS")]
    pub wait: u64,
    /// read the merged view of every site from etcd instead: its members' client URLs,
    /// http://IPv4:PORT, comma-separated (calls go to the tracker of the site placing the
    /// target, with --token-file's token)
    #[argh(option)]
    pub etcd: Option<String>,
    /// with --etcd: the prefix of every key (default /xenplug)
    #[argh(
        option,
        default = "String::from(crate::engine::cluster::ETCD_DEFAULT_PREFIX)"
    )]
    pub etcd_prefix: String,
    /// with --etcd: the etcd user to authenticate as (with --etcd-password-file)
    #[argh(option)]
    pub etcd_user: Option<String>,
    /// with --etcd-user: the file holding its password
    #[argh(option)]
    pub etcd_password_file: Option<PathBuf>,
}

/// Print one line per tracker event as it happens, until SIGINT or SIGTERM.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "watch")]
pub struct ConsoleWatchArgs {
    /// print the events after this sequence number first (default: only new events)
    #[argh(option)]
    pub since: Option<u64>,
    /// a tracker's read API, http://IPv4:PORT (default http://127.0.0.1:8700 unless --iface
    /// is given)
    #[argh(option)]
    pub tracker: Option<String>,
    /// discover on this interface too, as a control point: IF for a provider network, IF:TENANT
    /// for a tenant network; repeat for several
    #[argh(option)]
    pub iface: Vec<String>,
    /// file holding the bearer token for --tracker (default: the XENPLUG_TOKEN environment
    /// variable)
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// with --iface: control key file the console's own tracker signs its calls with
    #[argh(option)]
    pub control_key: Option<PathBuf>,
    /// read the merged view of every site from etcd instead: its members' client URLs,
    /// http://IPv4:PORT, comma-separated (calls go to the tracker of the site placing the
    /// target, with --token-file's token)
    #[argh(option)]
    pub etcd: Option<String>,
    /// with --etcd: the prefix of every key (default /xenplug)
    #[argh(
        option,
        default = "String::from(crate::engine::cluster::ETCD_DEFAULT_PREFIX)"
    )]
    pub etcd_prefix: String,
    /// with --etcd: the etcd user to authenticate as (with --etcd-password-file)
    #[argh(option)]
    pub etcd_user: Option<String>,
    /// with --etcd-user: the file holding its password
    #[argh(option)]
    pub etcd_password_file: Option<PathBuf>,
}

/// Serve the console as one web page (tree, live updates, a form per action) on ADDR:PORT,
/// reading from a tracker, from the console's own discovery, or both merged. Without
/// --access there is no login (whoever reaches the page has the console's token's rights):
/// listen on 127.0.0.1 or a management address only.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "serve")]
pub struct ConsoleServeArgs {
    /// address to serve the page on, e.g. 127.0.0.1:8780 (required: never a default)
    #[argh(option)]
    pub listen: std::net::SocketAddr,
    /// a tracker's read API, http://IPv4:PORT (default http://127.0.0.1:8700 unless --iface
    /// is given)
    #[argh(option)]
    pub tracker: Option<String>,
    /// discover on this interface too, as a control point: IF for a provider network,
    /// IF:TENANT for a tenant network; repeat for several
    #[argh(option)]
    pub iface: Vec<String>,
    /// file holding the bearer token for --tracker (default: the XENPLUG_TOKEN environment
    /// variable)
    #[argh(option)]
    pub token_file: Option<PathBuf>,
    /// with --iface: control key file the console's own tracker signs its calls with
    #[argh(option)]
    pub control_key: Option<PathBuf>,
    /// access file of the page: it then opens on a sign-in form, every request needs one
    /// of these identities' tokens, and each user's token is passed on to the sources, so
    /// each has exactly its own rights there (with --iface, the console's own tracker takes
    /// this file too)
    #[argh(option)]
    pub access: Option<PathBuf>,
    /// read the merged view of every site from etcd instead: its members' client URLs,
    /// http://IPv4:PORT, comma-separated (calls go to the tracker of the site placing the
    /// target, with --token-file's token)
    #[argh(option)]
    pub etcd: Option<String>,
    /// with --etcd: the prefix of every key (default /xenplug)
    #[argh(
        option,
        default = "String::from(crate::engine::cluster::ETCD_DEFAULT_PREFIX)"
    )]
    pub etcd_prefix: String,
    /// with --etcd: the etcd user to authenticate as (with --etcd-password-file)
    #[argh(option)]
    pub etcd_user: Option<String>,
    /// with --etcd-user: the file holding its password
    #[argh(option)]
    pub etcd_password_file: Option<PathBuf>,
}

/// Manage who may use the tracker's API and the web console (the access file), and the control
/// keys devices check signatures with.
#[derive(FromArgs, Debug, PartialEq)]
pub struct AccessArgs {
    /// what to do
    #[argh(subcommand)]
    pub command: AccessCommand,
}

/// The access subcommands.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand)]
pub enum AccessCommand {
    /// `new`: add an identity.
    New(AccessNewArgs),
    /// `list`: list identities.
    List(AccessListArgs),
    /// `new-key`: write a new control key.
    NewKey(AccessNewKeyArgs),
}

/// Add identity NAME with ROLE (viewer, operator, admin or tenant:NAME) to the access file:
/// a random 256-bit token is made from the OS's random source, its SHA-256 appended to the
/// file (created with mode 0600 if absent), and the token printed once on stdout. It is
/// stored nowhere else: keep it.
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "new")]
pub struct AccessNewArgs {
    /// the identity's name: 1-64 of A-Z a-z 0-9 _ . @ -
    #[argh(positional)]
    pub name: String,
    /// viewer, operator, admin or tenant:NAME
    #[argh(positional)]
    pub role: String,
    /// the access file
    #[argh(option)]
    pub file: PathBuf,
}

/// List the identities of the access file: name and role (never a token or its hash).
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "list")]
pub struct AccessListArgs {
    /// the access file
    #[argh(option)]
    pub file: PathBuf,
}

/// Write a new random control key (64 hex digits) into FILE, created with mode 0600; an
/// existing file is never overwritten. Give the same file to the tracker and to the devices
/// (`--control-key FILE`).
#[derive(FromArgs, Debug, PartialEq)]
#[argh(subcommand, name = "new-key")]
pub struct AccessNewKeyArgs {
    /// the key file to create
    #[argh(positional)]
    pub file: PathBuf,
}
