//! Role `demo`: the whole system on loopback, for a first look (`xenplug demo`). Role layer:
//! it writes the demo's files, starts and stops processes and prints; it opens no socket
//! itself beyond connections to its own tracker on 127.0.0.1, and never gives a child an
//! interface other than [`DEMO_IFACE`] or an address other than 127.0.0.1.
//!
//! # How the pieces run
//!
//! The demo is a supervisor. Every piece is a child process running this same executable
//! (`std::env::current_exe`) with an ordinary role command line, so what runs is exactly what
//! an operator would start by hand:
//!
//! | child | command |
//! | --- | --- |
//! | `tracker` | `track --net mgmt=lo:provider --net acme=lo --repo DIR/repo --api 127.0.0.1:API` |
//! | `hypervisor xen-a`, `hypervisor xen-b` | `advertise hypervisor --iface lo --backend sim --sim-dir DIR/sim/<host> --state-dir DIR/state/<host>` |
//! | `vm <name>`, one per domain whose guest runs | `advertise vm --iface lo --uuid <its domain's UUID> --name <name> --services DIR/vms/<name>/services --state-dir DIR/state/<name>` |
//! | `web console` | `console serve --listen 127.0.0.1:WEB --tracker http://127.0.0.1:API` |
//!
//! - Each child is in a process group of its own (so the terminal's Ctrl-C reaches the demo
//!   alone, which then stops the children), with stdin closed, stdout and stderr written to
//!   `DIR/logs/<child>.log` (emptied at each start), and `PR_SET_PDEATHSIG` set to SIGTERM, so a demo
//!   killed outright still takes its children with it.
//! - Start: the tracker first, until its read API accepts connections (so it hears the
//!   advertisers' first NOTIFYs instead of waiting for a search); then the advertisers and the
//!   web console. The demo then reads `GET /api/tree` until it shows both hosts, every domain
//!   with its state and every advertising VM with its services ([`missing`]), bounded by
//!   `DEMO_READY_TIMEOUT`, and prints it with the console's own rendering
//!   ([`crate::console::tree::render`]), the URLs, the directory and what to try.
//! - Stop: on SIGINT, SIGTERM or SIGHUP the demo sends SIGTERM to every child's group (the
//!   advertisers send ssdp:byebye), waits at most `DEMO_STOP_GRACE`, then SIGKILLs what is
//!   left and reaps everything. A child that exits on its own stops the demo the same way,
//!   after saying which one, how it ended and the last lines of its log; the demo then exits 1.
//! - VM advertisers follow their domains: every `DEMO_FOLLOW_INTERVAL` the demo reads the
//!   sim directories (with the sim backend itself) and starts the advertiser of a domain whose
//!   guest runs (running or blocked) and has none, seeding its services first, and stops the
//!   advertiser of one that is paused, suspended, shut off or gone, saying so on stdout. So
//!   `console call web Shutdown` or an edited `.domain` file makes the VM's services leave the
//!   tree, and starting or resuming it brings them back. A VM advertiser stopped this way is
//!   not a child that died.
//! - Ports: the tracker's API and the web console listen on 127.0.0.1, on `--api-port` and
//!   `--web-port` or on a port the kernel just gave the demo and the demo released (another
//!   program could take it in between; the child then fails and the demo says so). The
//!   advertisers use ephemeral ports, which the tracker learns by SSDP.
//! - Directory: `--dir DIR` is kept and reused (files the demo seeds are written only when
//!   missing, so edited sim files survive and the tracker continues its journal); without it
//!   a fresh `xenplug-demo-XXXXXXXX` under the temporary directory, removed after a clean stop
//!   and kept when something failed, so its logs can be read.
//!
//! # Networks
//!
//! Loopback is one multicast domain, and the tracker files hypervisors only from provider
//! networks and VMs only from tenant networks (see [`crate::engine::inventory`]). So the
//! tracker gets two labels on `lo`: `mgmt` (provider, listed first: its 127.0.0.1 read API
//! serves the provider's view) and `acme` (tenant). Both hear everything: `mgmt` ignores the
//! VMs' own advertisements and `acme` refuses the hypervisors (`spoof-refused` in the journal,
//! once for each hypervisor and each of its Domain devices), which leaves the right tree: hosts from `mgmt`, VMs placed by them and
//! owned by tenant `acme`. Tenant separation, a tenant's own API view and spoofs from a real
//! tenant network need separate interfaces; `tests/interop_track.rs` shows them with network
//! namespaces.
//!
//! # The example services
//!
//! Every advertising VM gets `packaging/services/SystemInfo` and `AppControl`, embedded in the
//! binary. AppControl's folder also gets a `simulated` file listing the VM's applications,
//! which makes the handler only record a restart instead of calling the service manager of
//! the machine the demo runs on.

use crate::backend::sim::SimBackend;
use crate::backend::{Backend, Domain, RunState};
use crate::cli::DemoArgs;
use crate::console::tree::{render, short_service, Tree};
use crate::console::{colour_on_stdout, Tracker};
use crate::consts::{API_TREE_PATH, DEMO_IFACE, VM_HANDLER_FILE, VM_SCPD_FILE, VM_STATE_FOLDER};
use crate::error::{Error, Result};
use async_signal::{Signal, Signals};
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Label of the demo tracker's provider network (hypervisors), on [`DEMO_IFACE`].
const DEMO_PROVIDER_NETWORK: &str = "mgmt";
/// Label of the demo tracker's tenant network (VMs), on [`DEMO_IFACE`] as well.
const DEMO_TENANT_NETWORK: &str = "acme";
/// Longest the demo waits for its tracker's read API to accept connections.
const DEMO_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the demo waits for the tree to show every simulated host, VM, state and service
/// before it prints what there is.
const DEMO_READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the demo looks at its children, the signals and (while starting) the tree.
const DEMO_POLL: Duration = Duration::from_millis(100);
/// Time one request of the demo to its tracker may take.
const DEMO_API_TIMEOUT: Duration = Duration::from_secs(2);
/// Time the children get to exit after SIGTERM before SIGKILL.
const DEMO_STOP_GRACE: Duration = Duration::from_secs(5);
/// Lines of a child's log the demo prints when that child stops unexpectedly.
const DEMO_LOG_TAIL_LINES: usize = 20;
/// Bytes read from the end of that log to find those lines.
const DEMO_LOG_TAIL_BYTES: u64 = 16 * 1024;
/// Names tried for a fresh temporary directory before giving up.
const DEMO_TEMP_ATTEMPTS: u32 = 16;
/// How often the demo reads its sim directories to start or stop the VM advertiser of a
/// domain whose guest started or stopped running.
const DEMO_FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

/// One simulated domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoDomain {
    /// Name (also its sim file's name, `<name>.domain`).
    pub name: &'static str,
    /// VM UUID; its VM advertiser uses the same, so the tracker merges both.
    pub uuid: &'static str,
    /// Sim state at the first start: running, paused, suspended or shutoff.
    pub state: &'static str,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// The applications its AppControl service may (pretend to) restart.
    pub applications: &'static [&'static str],
}

impl DemoDomain {
    /// Whether its guest runs at the first start, hence advertises itself.
    pub fn advertises(&self) -> bool {
        RunState::from_name(self.state).is_some_and(guest_runs)
    }
}

/// Whether a domain in `state` has a running guest, which advertises itself: running or
/// blocked (idle). A paused, suspended, shut-off, crashed or dying guest cannot answer.
pub fn guest_runs(state: RunState) -> bool {
    matches!(state, RunState::Running | RunState::Blocked)
}

/// The applications a domain's AppControl pretends to have (none for a domain the demo did
/// not seed).
fn applications_of(uuid: Uuid) -> &'static [&'static str] {
    DEMO_HOSTS
        .iter()
        .flat_map(|host| host.domains)
        .find(|domain| Uuid::parse_str(domain.uuid).is_ok_and(|u| u == uuid))
        .map_or(&[], |domain| domain.applications)
}

/// One simulated Xen host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoHost {
    /// Host name (also its sim directory's name).
    pub name: &'static str,
    /// Host UUID (the hypervisor's UDN).
    pub uuid: &'static str,
    /// Physical CPUs.
    pub cpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Its domains.
    pub domains: &'static [DemoDomain],
}

/// The demo's hosts and domains.
pub const DEMO_HOSTS: [DemoHost; 2] = [
    DemoHost {
        name: "xen-a",
        uuid: "5e1f0c1e-7a2b-4c3d-8e9f-a0b1c2d3e4f5",
        cpus: 8,
        memory_mib: 32_768,
        domains: &[
            DemoDomain {
                name: "web",
                uuid: "4d3b2c1a-0f9e-4d8c-b7a6-958473625140",
                state: "running",
                memory_kib: 1_048_576,
                vcpus: 2,
                applications: &["nginx"],
            },
            DemoDomain {
                name: "db",
                uuid: "8e7d6c5b-4a39-4281-9f0e-d1c2b3a49586",
                state: "running",
                memory_kib: 2_097_152,
                vcpus: 4,
                applications: &["postgresql"],
            },
            DemoDomain {
                name: "build",
                uuid: "c0ffee00-1234-4abc-8def-0123456789ab",
                state: "shutoff",
                memory_kib: 524_288,
                vcpus: 1,
                applications: &[],
            },
        ],
    },
    DemoHost {
        name: "xen-b",
        uuid: "5e1f0c1e-7a2b-4c3d-8e9f-a0b1c2d3e4f6",
        cpus: 4,
        memory_mib: 16_384,
        domains: &[
            DemoDomain {
                name: "mail",
                uuid: "a11ce000-5555-4e6f-9a0b-1c2d3e4f5a6b",
                state: "running",
                memory_kib: 1_048_576,
                vcpus: 2,
                applications: &["postfix", "dovecot"],
            },
            DemoDomain {
                name: "cache",
                uuid: "ca5e0000-6666-4e6f-9a0b-1c2d3e4f5a6c",
                state: "paused",
                memory_kib: 524_288,
                vcpus: 1,
                applications: &[],
            },
        ],
    },
];

/// The example services every advertising VM gets: (folder, scpd.xml, handler).
const EXAMPLE_SERVICES: [(&str, &str, &str); 2] = [
    (
        "SystemInfo",
        include_str!("../../packaging/services/SystemInfo/scpd.xml"),
        include_str!("../../packaging/services/SystemInfo/handler"),
    ),
    (
        "AppControl",
        include_str!("../../packaging/services/AppControl/scpd.xml"),
        include_str!("../../packaging/services/AppControl/handler"),
    ),
];

/// The folder of the example service with simulated applications.
const APP_CONTROL: &str = "AppControl";
/// The file that lists them (read by its handler).
const SIMULATED_FILE: &str = "simulated";
/// AppControl's evented state file.
const LAST_RESTART: &str = "LastRestart";

/// Where the demo keeps its files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    /// The layout under `root`.
    pub fn new(root: PathBuf) -> Layout {
        Layout { root }
    }

    /// The demo directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// A host's sim directory (`sim/<host>`).
    pub fn sim(&self, host: &DemoHost) -> PathBuf {
        self.root.join("sim").join(host.name)
    }

    /// A VM's services directory (`vms/<name>/services`).
    pub fn services(&self, vm: &str) -> PathBuf {
        self.root.join("vms").join(vm).join("services")
    }

    /// An advertiser's state directory (`state/<name>`).
    pub fn state(&self, name: &str) -> PathBuf {
        self.root.join("state").join(name)
    }

    /// The tracker's repository.
    pub fn repo(&self) -> PathBuf {
        self.root.join("repo")
    }

    /// The children's logs.
    pub fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// The access file of the tracker and the web console (made anew at each start).
    pub fn access(&self) -> PathBuf {
        self.root.join("access")
    }

    /// The control key the tracker signs with and the hypervisors check.
    pub fn control_key(&self) -> PathBuf {
        self.root.join("control.key")
    }

    /// The file holding the bearer token of the demo identity `name` (mode 0600).
    pub fn token(&self, name: &str) -> PathBuf {
        self.root.join(format!("{name}.token"))
    }
}

/// The demo's identities: an administrator, and the tenant whose network the demo's VMs
/// advertise in.
pub const DEMO_IDENTITIES: [(&str, &str); 2] = [("admin", "admin"), ("acme", "tenant:acme")];

/// Makes the access file anew with the demo's identities (fresh tokens, each also written to
/// its token file, mode 0600), and the control key when there is none; returns the tokens in
/// [`DEMO_IDENTITIES`] order.
pub fn credentials(layout: &Layout) -> Result<Vec<String>> {
    let access = layout.access();
    match fs::remove_file(&access) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error("removing", &access, error)),
    }
    let mut tokens = Vec::new();
    for (name, role) in DEMO_IDENTITIES {
        let role = crate::engine::access::Role::parse(role).map_err(Error::config)?;
        let token = crate::credentials::add_identity(&access, name, &role)?;
        let path = layout.token(name);
        let _ = fs::remove_file(&path);
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error("creating", &path, e))?;
        file.write_all(format!("{token}\n").as_bytes())
            .map_err(|e| io_error("writing", &path, e))?;
        tokens.push(token);
    }
    if !layout.control_key().exists() {
        crate::credentials::write_new_key(&layout.control_key())?;
    }
    Ok(tokens)
}

/// One child process of the demo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSpec {
    /// How the demo names it (`tracker`, `hypervisor xen-a`, `vm web`, `web console`).
    pub name: String,
    /// Its arguments (after the program).
    pub args: Vec<OsString>,
    /// Its log file (stdout and stderr).
    pub log: PathBuf,
}

impl ChildSpec {
    fn new(layout: &Layout, name: &str, args: Vec<OsString>) -> ChildSpec {
        ChildSpec {
            name: name.to_string(),
            args,
            log: layout
                .logs()
                .join(format!("{}.log", name.replace(' ', "-"))),
        }
    }
}

fn os(text: impl Into<OsString>) -> OsString {
    text.into()
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// The tracker: a provider and a tenant label on loopback, its API on 127.0.0.1:`api`.
pub fn tracker_spec(layout: &Layout, api: u16) -> ChildSpec {
    let args = vec![
        os("track"),
        os("--net"),
        os(format!("{DEMO_PROVIDER_NETWORK}={DEMO_IFACE}:provider")),
        os("--net"),
        os(format!("{DEMO_TENANT_NETWORK}={DEMO_IFACE}")),
        os("--repo"),
        layout.repo().into(),
        os("--api"),
        os(loopback(api).to_string()),
        os("--access"),
        layout.access().into(),
        os("--control-key"),
        layout.control_key().into(),
    ];
    ChildSpec::new(layout, "tracker", args)
}

/// The hypervisor advertisers.
pub fn hypervisor_specs(layout: &Layout) -> Vec<ChildSpec> {
    DEMO_HOSTS
        .iter()
        .map(|host| {
            let args = vec![
                os("advertise"),
                os("hypervisor"),
                os("--iface"),
                os(DEMO_IFACE),
                os("--backend"),
                os("sim"),
                os("--sim-dir"),
                layout.sim(host).into(),
                os("--state-dir"),
                layout.state(host.name).into(),
                os("--control-key"),
                layout.control_key().into(),
            ];
            ChildSpec::new(layout, &format!("hypervisor {}", host.name), args)
        })
        .collect()
}

/// The VM advertiser of the domain `name` with `uuid`.
pub fn vm_spec(layout: &Layout, name: &str, uuid: Uuid) -> ChildSpec {
    let args = vec![
        os("advertise"),
        os("vm"),
        os("--iface"),
        os(DEMO_IFACE),
        os("--uuid"),
        os(uuid.to_string()),
        os("--name"),
        os(name),
        os("--services"),
        layout.services(name).into(),
        os("--state-dir"),
        layout.state(name).into(),
    ];
    ChildSpec::new(layout, &format!("vm {name}"), args)
}

/// The web console on 127.0.0.1:`web`, reading the tracker on 127.0.0.1:`api`, with the
/// sign-in of the demo's identities.
pub fn web_console_spec(layout: &Layout, web: u16, api: u16) -> ChildSpec {
    let args = vec![
        os("console"),
        os("serve"),
        os("--listen"),
        os(loopback(web).to_string()),
        os("--tracker"),
        os(format!("http://{}", loopback(api))),
        os("--access"),
        layout.access().into(),
    ];
    ChildSpec::new(layout, "web console", args)
}

/// What one simulated host's directory holds now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimHost {
    /// The host.
    pub host: DemoHost,
    /// Its domains as its sim directory says (empty when it cannot be read).
    pub domains: Vec<Domain>,
}

/// What `tree` still lacks before the demo shows it, one phrase each: a host, a domain placed
/// on its host with a known state, and the example services of each VM whose guest runs.
/// Empty when complete.
pub fn missing(tree: &Tree, sims: &[SimHost]) -> Vec<String> {
    let mut missing = Vec::new();
    for sim in sims {
        let host = &sim.host;
        let Some(found) = tree
            .hosts
            .iter()
            .find(|h| h.uuid.eq_ignore_ascii_case(host.uuid))
        else {
            missing.push(format!("hypervisor {}", host.name));
            continue;
        };
        for domain in &sim.domains {
            let uuid = domain.uuid.to_string();
            let Some(vm) = found
                .vms
                .iter()
                .find(|vm| vm.uuid.eq_ignore_ascii_case(&uuid))
            else {
                missing.push(format!("VM {} on {}", domain.name, host.name));
                continue;
            };
            if vm.run_state != domain.state.as_str() {
                missing.push(format!("the state of VM {}", domain.name));
            }
            if !guest_runs(domain.state) {
                continue;
            }
            for (service, ..) in EXAMPLE_SERVICES {
                let offered = vm.services.iter().any(|s| {
                    short_service(&s.service_type)
                        .split(':')
                        .next()
                        .is_some_and(|name| name == service)
                });
                if !offered {
                    missing.push(format!("service {service} of VM {}", domain.name));
                }
            }
        }
    }
    missing
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), error)
}

fn make_dir(path: &Path) -> Result<()> {
    fs::create_dir_all(path).map_err(|e| io_error("creating", path, e))
}

/// Writes `contents` to `path` unless it exists; `executable` sets mode 0755.
fn seed_file(path: &Path, contents: &str, executable: bool) -> Result<()> {
    if path.exists() {
        return Ok(());
    }
    crate::files::write_atomic(path, contents.as_bytes())
        .map_err(|e| io_error("writing", path, e))?;
    if executable {
        fs::set_permissions(path, fs::Permissions::from_mode(0o755))
            .map_err(|e| io_error("making executable", path, e))?;
    }
    Ok(())
}

/// Writes what the tracker and the hypervisors need and is missing: each host's sim files
/// (only into a sim directory without domains, so edits survive), and the repository, state
/// and log directories. VMs get theirs when their guest first runs ([`seed_vm`]).
pub fn seed(layout: &Layout) -> Result<()> {
    for host in &DEMO_HOSTS {
        let sim = layout.sim(host);
        make_dir(&sim)?;
        let has_domains = fs::read_dir(&sim)
            .map_err(|e| io_error("reading", &sim, e))?
            .filter_map(|entry| entry.ok())
            .any(|entry| entry.path().extension().is_some_and(|ext| ext == "domain"));
        if !has_domains {
            let host_file = format!(
                "uuid={}\nname={}\ncpus={}\nmemory_mib={}\nversion=4.17 (simulated)\n",
                host.uuid, host.name, host.cpus, host.memory_mib
            );
            seed_file(&sim.join(crate::backend::sim::HOST_FILE), &host_file, false)?;
            for domain in host.domains {
                let text = format!(
                    "uuid={}\nname={}\nstate={}\nmemory_kib={}\nvcpus={}\n",
                    domain.uuid, domain.name, domain.state, domain.memory_kib, domain.vcpus
                );
                seed_file(&sim.join(format!("{}.domain", domain.name)), &text, false)?;
            }
        }
        make_dir(&layout.state(host.name))?;
    }
    make_dir(&layout.repo())?;
    make_dir(&layout.logs())
}

/// Writes the example services of VM `name` where they are missing, and its state directory.
/// AppControl gets the VM's simulated `applications`.
pub fn seed_vm(layout: &Layout, name: &str, applications: &[&str]) -> Result<()> {
    for (folder, scpd, handler) in EXAMPLE_SERVICES {
        let service = layout.services(name).join(folder);
        make_dir(&service.join(VM_STATE_FOLDER))?;
        seed_file(&service.join(VM_SCPD_FILE), scpd, false)?;
        seed_file(&service.join(VM_HANDLER_FILE), handler, true)?;
        if folder == APP_CONTROL {
            let list: String = applications.iter().map(|app| format!("{app}\n")).collect();
            seed_file(&service.join(SIMULATED_FILE), &list, false)?;
            seed_file(&service.join(VM_STATE_FOLDER).join(LAST_RESTART), "", false)?;
        }
    }
    make_dir(&layout.state(name))
}

/// A new private directory `xenplug-demo-XXXXXXXX` under the temporary directory.
fn fresh_directory() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    let mut last = None;
    for _ in 0..DEMO_TEMP_ATTEMPTS {
        let path = base.join(format!("xenplug-demo-{:08x}", fastrand::u32(..)));
        match fs::DirBuilder::new().mode(0o700).create(&path) {
            Ok(()) => return Ok(path),
            Err(error) => last = Some(error),
        }
    }
    let error = last.unwrap_or_else(|| std::io::Error::other("no attempt made"));
    Err(io_error("creating a directory under", &base, error))
}

/// Each of `ports`, or for a 0 a free port on 127.0.0.1: the listeners that found them are
/// held until all are chosen, so two zeros never get the same port.
fn ports_or_free<const N: usize>(ports: [u16; N]) -> Result<[u16; N]> {
    let mut held = Vec::new();
    let mut chosen = ports;
    for port in chosen.iter_mut().filter(|port| **port == 0) {
        let listener = TcpListener::bind(loopback(0))
            .map_err(|e| Error::io("choosing a free port on 127.0.0.1", e))?;
        *port = listener
            .local_addr()
            .map_err(|e| Error::io("choosing a free port on 127.0.0.1", e))?
            .port();
        held.push(listener);
    }
    Ok(chosen)
}

/// The last [`DEMO_LOG_TAIL_LINES`] lines of a log (lossy UTF-8).
fn log_tail(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let length = file.metadata().map_or(0, |m| m.len());
        let start = length.saturating_sub(DEMO_LOG_TAIL_BYTES);
        if file.seek(SeekFrom::Start(start)).is_ok() {
            let _ = file.take(DEMO_LOG_TAIL_BYTES).read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let from = lines.len().saturating_sub(DEMO_LOG_TAIL_LINES);
    lines.get(from..).unwrap_or_default().join("\n")
}

/// A child that runs.
struct Running {
    spec: ChildSpec,
    /// The VM it advertises, for a VM advertiser.
    vm: Option<Uuid>,
    child: Child,
}

impl Running {
    /// Signals its process group (it leads one; never a group that is not ours).
    fn signal(&self, signal: libc::c_int) {
        let group = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if group > 0 {
            // SAFETY: kill(2) on the group our own unreaped child leads; no memory is shared.
            unsafe {
                libc::kill(-group, signal);
            }
        }
    }

    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)) | Err(_))
    }
}

/// The demo's children.
struct Supervisor {
    program: PathBuf,
    running: Vec<Running>,
}

impl Supervisor {
    fn new(program: PathBuf) -> Supervisor {
        Supervisor {
            program,
            running: Vec::new(),
        }
    }

    /// Starts `spec` in a process group of its own, output to its log.
    fn start(&mut self, spec: ChildSpec, vm: Option<Uuid>) -> Result<()> {
        let log = File::create(&spec.log).map_err(|e| io_error("creating", &spec.log, e))?;
        let log_too = log
            .try_clone()
            .map_err(|e| io_error("opening", &spec.log, e))?;
        let mut command = Command::new(&self.program);
        command
            .args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too)
            .process_group(0);
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        // SAFETY: the closure runs between fork and exec and calls only async-signal-safe
        // functions (prctl, getppid) and builds errors that do not allocate.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                if libc::getppid() != parent {
                    return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|e| Error::io(format!("starting the {}", spec.name), e))?;
        log::debug!("demo: {} started (pid {})", spec.name, child.id());
        self.running.push(Running { spec, vm, child });
        Ok(())
    }

    /// Whether a VM advertiser for `vm` runs.
    fn advertises(&self, vm: Uuid) -> bool {
        self.running.iter().any(|r| r.vm == Some(vm))
    }

    /// The first child found to have exited, taken out of the list.
    fn exited(&mut self) -> Option<(ChildSpec, u32, ExitStatus)> {
        let index = self.running.iter_mut().position(Running::has_exited)?;
        let mut gone = self.running.remove(index);
        let pid = gone.child.id();
        let status = gone.child.wait().ok()?;
        Some((gone.spec, pid, status))
    }

    /// Stops the children `which` selects: SIGTERM to their groups, at most
    /// [`DEMO_STOP_GRACE`] for them to exit, SIGKILL for the rest; each is reaped.
    fn stop_where(&mut self, which: impl Fn(&Running) -> bool) {
        let (mut stopping, keep): (Vec<Running>, Vec<Running>) =
            self.running.drain(..).partition(|r| which(r));
        self.running = keep;
        for running in &stopping {
            running.signal(libc::SIGTERM);
        }
        let deadline = Instant::now() + DEMO_STOP_GRACE;
        while Instant::now() < deadline {
            stopping.retain_mut(|r| !r.has_exited());
            if stopping.is_empty() {
                return;
            }
            std::thread::sleep(DEMO_POLL / 4);
        }
        for mut running in stopping {
            complain(&format!(
                "xenplug demo: the {} did not stop within {} s; killing it",
                running.spec.name,
                DEMO_STOP_GRACE.as_secs()
            ));
            running.signal(libc::SIGKILL);
            let _ = running.child.wait();
        }
    }

    /// Stops every child.
    fn stop(&mut self) {
        self.stop_where(|_| true);
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads the sim directories and keeps one VM advertiser per domain whose guest runs.
struct Follower {
    hosts: Vec<(DemoHost, SimBackend)>,
    /// Domains already reported as impossible to advertise.
    reported: BTreeSet<Uuid>,
    next: Instant,
}

impl Follower {
    fn open(layout: &Layout) -> Result<Follower> {
        let hosts = DEMO_HOSTS
            .iter()
            .map(|host| {
                SimBackend::open(&layout.sim(host))
                    .map(|backend| (*host, backend))
                    .map_err(|e| Error::Backend(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Follower {
            hosts,
            reported: BTreeSet::new(),
            next: Instant::now(),
        })
    }

    /// What the sim directories say now.
    fn read(&self) -> Vec<SimHost> {
        self.hosts
            .iter()
            .map(|(host, backend)| SimHost {
                host: *host,
                domains: backend.domains().unwrap_or_else(|error| {
                    log::warn!("demo: reading the domains of {}: {error}", host.name);
                    Vec::new()
                }),
            })
            .collect()
    }

    /// Every [`DEMO_FOLLOW_INTERVAL`]: starts the advertiser of a VM whose guest runs and has
    /// none, stops the advertiser of one whose guest does not run or whose domain is gone.
    fn follow(&mut self, supervisor: &mut Supervisor, layout: &Layout, now: Instant) -> Result<()> {
        if now < self.next {
            return Ok(());
        }
        self.next = now + DEMO_FOLLOW_INTERVAL;
        let sims = self.read();
        let mut wanted: BTreeMap<Uuid, String> = BTreeMap::new();
        let mut states: BTreeMap<Uuid, RunState> = BTreeMap::new();
        for domain in sims.iter().flat_map(|sim| &sim.domains) {
            states.insert(domain.uuid, domain.state);
            if !guest_runs(domain.state) {
                continue;
            }
            let taken = wanted.values().any(|name| *name == domain.name);
            if !crate::repo::is_valid_name(&domain.name) || taken {
                if self.reported.insert(domain.uuid) {
                    say(&format!(
                        "xenplug demo: {:?} runs but gets no VM advertiser: the demo needs a \
                         unique name of A-Z a-z 0-9 _ -",
                        domain.name
                    ));
                }
                continue;
            }
            wanted.insert(domain.uuid, domain.name.clone());
        }
        for running in &supervisor.running {
            if let Some(vm) = running.vm.filter(|vm| !wanted.contains_key(vm)) {
                let state = states.get(&vm).map_or("gone", |state| state.as_str());
                say(&format!(
                    "xenplug demo: {} is {state}: stopping its VM advertiser",
                    running.spec.name.trim_start_matches("vm ")
                ));
            }
        }
        supervisor.stop_where(|r| r.vm.is_some_and(|vm| !wanted.contains_key(&vm)));
        for (vm, name) in wanted {
            if supervisor.advertises(vm) {
                continue;
            }
            seed_vm(layout, &name, applications_of(vm))?;
            supervisor.start(vm_spec(layout, &name, vm), Some(vm))?;
        }
        Ok(())
    }
}

/// Why the demo ends.
enum End {
    /// A signal asked it to.
    Asked,
    /// A child exited on its own.
    ChildGone(ChildSpec, u32, ExitStatus),
}

/// Waits between looks, returning early on a stop signal.
struct Pacer {
    signals: Signals,
    _wake: smol::channel::Sender<()>,
    woken: smol::channel::Receiver<()>,
}

impl Pacer {
    fn new() -> Result<Pacer> {
        let signals = Signals::new([Signal::Term, Signal::Int, Signal::Hup])
            .map_err(|e| Error::io("installing signal handlers", e))?;
        let (wake, woken) = smol::channel::bounded(1);
        Ok(Pacer {
            signals,
            _wake: wake,
            woken,
        })
    }

    /// Sleeps [`DEMO_POLL`]; true when a stop signal came.
    fn pause(&mut self) -> bool {
        smol::block_on(crate::net::event_loop::next_turn(
            &mut self.signals,
            Instant::now() + DEMO_POLL,
            &self.woken,
        ))
    }

    /// One turn: a signal or an exited child ends the demo.
    fn turn(&mut self, supervisor: &mut Supervisor) -> Option<End> {
        if let Some((spec, pid, status)) = supervisor.exited() {
            return Some(End::ChildGone(spec, pid, status));
        }
        if self.pause() {
            return Some(End::Asked);
        }
        None
    }
}

/// What the demo started with, for the summary.
struct Started {
    tracker: String,
    web: String,
    /// Whether the directory is a fresh temporary one (removed after a clean stop).
    temporary: bool,
}

/// Runs the demo until Ctrl-C (or SIGTERM, SIGHUP) or until one of its children stops.
pub fn run(args: DemoArgs) -> Result<()> {
    let begun = Instant::now();
    let mut pacer = Pacer::new()?;
    let program =
        std::env::current_exe().map_err(|e| Error::io("finding this program's path", e))?;
    let (root, temporary) = match args.dir {
        Some(dir) => (dir, false),
        None => (fresh_directory()?, true),
    };
    let layout = Layout::new(root);
    let mut supervisor = Supervisor::new(program.clone());
    let end = seed(&layout).and_then(|()| {
        let tokens = credentials(&layout)?;
        let [api, web] = ports_or_free([args.api_port, args.web_port])?;
        let ports = (api, web);
        let mut follower = Follower::open(&layout)?;
        let context = Context {
            layout: &layout,
            program: &program,
            begun,
            ports,
            temporary,
            tokens,
        };
        supervise(&mut supervisor, &mut pacer, &mut follower, &context)
    });
    supervisor.stop();
    match end {
        Ok(End::Asked) => {
            if temporary {
                let _ = fs::remove_dir_all(layout.root());
            }
            say("xenplug demo: stopped");
            Ok(())
        }
        Ok(End::ChildGone(spec, pid, status)) => {
            complain(&format!(
                "xenplug demo: the {} (pid {pid}) stopped on its own ({status}); the others are stopped too.\n\
                 --- last lines of {} ---\n{}\n---",
                spec.name,
                spec.log.display(),
                log_tail(&spec.log)
            ));
            Err(Error::config(format!(
                "the {} stopped; the logs are kept in {}",
                spec.name,
                layout.logs().display()
            )))
        }
        Err(error) => {
            complain(&format!(
                "xenplug demo: the files and logs are kept in {}",
                layout.root().display()
            ));
            Err(error)
        }
    }
}

/// What [`supervise`] works with.
struct Context<'a> {
    layout: &'a Layout,
    program: &'a Path,
    begun: Instant,
    /// The tracker API's and the web console's ports.
    ports: (u16, u16),
    temporary: bool,
    /// The demo identities' tokens, in [`DEMO_IDENTITIES`] order.
    tokens: Vec<String>,
}

/// Starts everything, prints the tree and waits; returns why it ended.
fn supervise(
    supervisor: &mut Supervisor,
    pacer: &mut Pacer,
    follower: &mut Follower,
    context: &Context,
) -> Result<End> {
    let layout = context.layout;
    let (api, web) = context.ports;
    supervisor.start(tracker_spec(layout, api), None)?;
    let deadline = Instant::now() + DEMO_START_TIMEOUT;
    while TcpStream::connect_timeout(&loopback(api), DEMO_POLL).is_err() {
        if let Some(end) = pacer.turn(supervisor) {
            return Ok(end);
        }
        if Instant::now() >= deadline {
            return Err(Error::config(format!(
                "the tracker's read API on {} did not answer within {} s (see {})",
                loopback(api),
                DEMO_START_TIMEOUT.as_secs(),
                layout.logs().join("tracker.log").display()
            )));
        }
    }
    for spec in hypervisor_specs(layout) {
        supervisor.start(spec, None)?;
    }
    follower.follow(supervisor, layout, Instant::now())?;
    supervisor.start(web_console_spec(layout, web, api), None)?;
    let started = Started {
        tracker: format!("http://{}", loopback(api)),
        web: format!("http://{}/", loopback(web)),
        temporary: context.temporary,
    };
    let tracker = Tracker {
        address: std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, api),
        token: None,
    }
    .with_token(context.tokens.first().map(String::as_str));
    let deadline = Instant::now() + DEMO_READY_TIMEOUT;
    let mut tree = None;
    let mut lacking;
    loop {
        lacking = vec!["the tracker's tree".to_string()];
        if let Ok(document) = tracker.get_json(API_TREE_PATH, DEMO_API_TIMEOUT) {
            if let Ok(read) = Tree::read(&document.value) {
                lacking = missing(&read, &follower.read());
                tree = Some(read);
            }
        }
        if TcpStream::connect_timeout(&loopback(web), DEMO_POLL).is_err() {
            lacking.push("the web console".to_string());
        }
        if lacking.is_empty() || Instant::now() >= deadline {
            break;
        }
        if let Some(end) = pacer.turn(supervisor) {
            return Ok(end);
        }
        follower.follow(supervisor, layout, Instant::now())?;
    }
    print_summary(
        layout,
        context.program,
        &started,
        tree.as_ref(),
        &lacking,
        context.begun.elapsed(),
        &context.tokens,
    );
    loop {
        if let Some(end) = pacer.turn(supervisor) {
            return Ok(end);
        }
        follower.follow(supervisor, layout, Instant::now())?;
    }
}

fn print_summary(
    layout: &Layout,
    program: &Path,
    started: &Started,
    tree: Option<&Tree>,
    lacking: &[String],
    elapsed: Duration,
    tokens: &[String],
) {
    let domains: usize = DEMO_HOSTS.iter().map(|host| host.domains.len()).sum();
    let advertising = DEMO_HOSTS
        .iter()
        .flat_map(|host| host.domains)
        .filter(|domain| domain.advertises())
        .count();
    let mut out = String::new();
    out.push_str(&format!(
        "xenplug demo: {} simulated Xen hosts with {domains} domains, {advertising} VM advertisers, \
         a tracker and the web console, all on loopback; ready in {:.1} s\n\n",
        DEMO_HOSTS.len(),
        elapsed.as_secs_f64()
    ));
    if let Some(tree) = tree {
        out.push_str(&render(tree, colour_on_stdout()));
        out.push('\n');
    }
    if !lacking.is_empty() {
        out.push_str(&format!(
            "(after {} s the tree still lacks: {}; the logs are in {})\n\n",
            DEMO_READY_TIMEOUT.as_secs(),
            lacking.join(", "),
            layout.logs().display()
        ));
    }
    let tracker = &started.tracker;
    let root = layout.root().display();
    out.push_str(&format!("  web console   {}\n", started.web));
    out.push_str(&format!("  tracker API   {tracker}{API_TREE_PATH}\n"));
    out.push_str("  sign in with one of these tokens (the page asks for one; so does the API):\n");
    for ((name, role), token) in DEMO_IDENTITIES.iter().zip(tokens) {
        out.push_str(&format!(
            "    {name:<6} {token}  {role}, also in {}\n",
            layout.token(name).display()
        ));
    }
    out.push_str(&format!("  directory     {root}\n"));
    out.push_str(
        "                  sim/<host>/*.domain   the simulated hosts' domains (edit them)\n",
    );
    out.push_str(
        "                  repo/                 the tracker's repositories and events.log\n",
    );
    out.push_str(
        "                  access, control.key   who may act (the tracker and the page), the \
         hypervisors' key\n",
    );
    out.push_str("                  logs/                 one log per process\n\n");
    let xenplug = program.display();
    let admin = format!("--token-file {}", layout.token("admin").display());
    let acme = format!("--token-file {}", layout.token("acme").display());
    out.push_str("Try, in another terminal:\n");
    out.push_str(&format!(
        "  {xenplug} console watch --tracker {tracker} {admin}\n"
    ));
    out.push_str(&format!(
        "  {xenplug} console call web Pause --tracker {tracker} {admin}\n"
    ));
    out.push_str(&format!(
        "  {xenplug} console call mail GetLoad --tracker {tracker} {acme}\n"
    ));
    out.push_str(&format!(
        "  {xenplug} console call db RestartApplication Application=postgresql --yes --tracker {tracker} {admin}\n"
    ));
    out.push_str(&format!(
        "  sed -i s/state=paused/state=running/ {root}/sim/xen-b/cache.domain\n"
    ));
    out.push_str(&format!(
        "  {xenplug} console tree --tracker {tracker} {acme}\n\n"
    ));
    out.push_str("Ctrl-C stops everything");
    out.push_str(if started.temporary {
        " (and removes the directory).\n"
    } else {
        ".\n"
    });
    say(out.trim_end());
}

/// Writes one message to stdout and flushes it; a closed stdout is no reason to stop.
fn say(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{text}");
    let _ = stdout.flush();
}

/// Writes one message to stderr, ignoring a closed stderr.
fn complain(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::tree::{Host, Service, Vm};

    fn strings(spec: &ChildSpec) -> Vec<String> {
        spec.args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn value_after(args: &[String], option: &str) -> Vec<String> {
        args.windows(2)
            .filter(|pair| pair[0] == option)
            .map(|pair| pair[1].clone())
            .collect()
    }

    #[test]
    fn every_child_stays_on_loopback() {
        let layout = Layout::new(PathBuf::from("/demo"));
        let mut specs = vec![
            tracker_spec(&layout, 4000),
            web_console_spec(&layout, 4001, 4000),
        ];
        specs.extend(hypervisor_specs(&layout));
        specs.push(vm_spec(&layout, "web", Uuid::nil()));
        assert_eq!(specs.len(), 1 + 1 + 2 + 1);
        for spec in &specs {
            let args = strings(spec);
            for iface in value_after(&args, "--iface") {
                assert_eq!(iface, "lo", "{}: {args:?}", spec.name);
            }
            for net in value_after(&args, "--net") {
                let (_, rest) = net.split_once('=').unwrap();
                assert_eq!(rest.split(':').next(), Some("lo"), "{}: {net}", spec.name);
            }
            for address in value_after(&args, "--api")
                .into_iter()
                .chain(value_after(&args, "--listen"))
            {
                assert!(
                    address.starts_with("127.0.0.1:"),
                    "{}: {address}",
                    spec.name
                );
            }
            for url in value_after(&args, "--tracker") {
                assert_eq!(url, "http://127.0.0.1:4000", "{}", spec.name);
            }
            if args.first().map(String::as_str) == Some("advertise") {
                assert_eq!(value_after(&args, "--iface").len(), 1, "{args:?}");
            }
            assert!(spec.log.starts_with("/demo/logs"), "{:?}", spec.log);
        }
        let tracker = strings(&specs[0]);
        assert_eq!(
            value_after(&tracker, "--net"),
            vec!["mgmt=lo:provider".to_string(), "acme=lo".to_string()],
            "the provider label first: the 127.0.0.1 API serves its view"
        );
    }

    #[test]
    fn advertisers_get_their_own_directories() {
        let layout = Layout::new(PathBuf::from("/demo"));
        let names: Vec<String> = hypervisor_specs(&layout)
            .into_iter()
            .map(|spec| spec.name)
            .collect();
        assert_eq!(names, ["hypervisor xen-a", "hypervisor xen-b"]);
        let uuid = Uuid::parse_str(DEMO_HOSTS[0].domains[0].uuid).unwrap();
        let spec = vm_spec(&layout, "web", uuid);
        let args = strings(&spec);
        assert_eq!(value_after(&args, "--uuid"), vec![uuid.to_string()]);
        assert_eq!(value_after(&args, "--name"), vec!["web".to_string()]);
        assert_eq!(
            value_after(&args, "--services"),
            vec!["/demo/vms/web/services".to_string()]
        );
        assert_eq!(
            value_after(&args, "--state-dir"),
            vec!["/demo/state/web".to_string()]
        );
        assert_eq!(spec.log, PathBuf::from("/demo/logs/vm-web.log"));
        assert_eq!(applications_of(uuid), ["nginx"]);
        assert!(applications_of(Uuid::nil()).is_empty());
    }

    #[test]
    fn only_running_guests_advertise() {
        let running: Vec<&str> = RunState::ALL
            .into_iter()
            .filter(|state| guest_runs(*state))
            .map(RunState::as_str)
            .collect();
        assert_eq!(running, ["running", "blocked"]);
        let seeded: Vec<&str> = DEMO_HOSTS
            .iter()
            .flat_map(|host| host.domains)
            .filter(|domain| domain.advertises())
            .map(|domain| domain.name)
            .collect();
        assert_eq!(seeded, ["web", "db", "mail"]);
    }

    fn sims() -> Vec<SimHost> {
        DEMO_HOSTS
            .iter()
            .map(|host| SimHost {
                host: *host,
                domains: host
                    .domains
                    .iter()
                    .map(|domain| Domain {
                        uuid: Uuid::parse_str(domain.uuid).unwrap(),
                        name: domain.name.to_string(),
                        state: RunState::from_name(domain.state).unwrap(),
                        memory_kib: domain.memory_kib,
                        vcpus: domain.vcpus,
                    })
                    .collect(),
            })
            .collect()
    }

    fn complete_tree() -> Tree {
        let hosts = DEMO_HOSTS
            .iter()
            .map(|host| Host {
                uuid: host.uuid.to_string(),
                name: host.name.to_string(),
                addresses: vec!["127.0.0.1".to_string()],
                state: "online".to_string(),
                vms: host
                    .domains
                    .iter()
                    .map(|domain| Vm {
                        uuid: domain.uuid.to_string(),
                        name: domain.name.to_string(),
                        run_state: domain.state.to_string(),
                        tenant: Some("acme".to_string()),
                        services: if domain.advertises() {
                            EXAMPLE_SERVICES
                                .iter()
                                .map(|(name, ..)| Service {
                                    service_type: format!("urn:xenplug-org:service:{name}:1"),
                                    actions: Vec::new(),
                                })
                                .collect()
                        } else {
                            Vec::new()
                        },
                    })
                    .collect(),
            })
            .collect();
        Tree {
            provider: true,
            hosts,
            ..Tree::default()
        }
    }

    #[test]
    fn the_tree_is_complete_only_with_every_host_state_and_service() {
        let sims = sims();
        assert_eq!(missing(&complete_tree(), &sims), Vec::<String>::new());
        assert_eq!(
            missing(&Tree::default(), &sims).len(),
            2,
            "two hosts missing"
        );

        let mut tree = complete_tree();
        tree.hosts.remove(1);
        assert_eq!(missing(&tree, &sims), vec!["hypervisor xen-b".to_string()]);

        let mut tree = complete_tree();
        tree.hosts[0].vms[0].run_state = "unknown".to_string();
        tree.hosts[0].vms[1].services.pop();
        tree.hosts[1].vms.remove(1);
        assert_eq!(
            missing(&tree, &sims),
            vec![
                "the state of VM web".to_string(),
                "service AppControl of VM db".to_string(),
                "VM cache on xen-b".to_string()
            ]
        );

        // What counts is what the sim directory says now: a shut-down guest needs no services.
        let mut sims = sims;
        sims[0].domains[0].state = RunState::Shutoff;
        let mut tree = complete_tree();
        tree.hosts[0].vms[0].run_state = "shutoff".to_string();
        tree.hosts[0].vms[0].services.clear();
        assert_eq!(missing(&tree, &sims), Vec::<String>::new());
    }

    #[test]
    fn seeding_writes_what_is_missing_and_keeps_edits() {
        let root = std::env::temp_dir().join(format!(
            "xenplug-demo-test-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let layout = Layout::new(root.clone());
        seed(&layout).unwrap();
        assert!(
            !layout.root().join("vms").exists(),
            "VMs are seeded when they run"
        );
        seed_vm(&layout, "web", &["nginx"]).unwrap();
        let web = "web";
        let handler = layout.services(web).join("AppControl").join("handler");
        let mode = fs::metadata(&handler).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            fs::read_to_string(layout.services(web).join("AppControl/simulated")).unwrap(),
            "nginx\n"
        );
        assert!(layout.services(web).join("SystemInfo/scpd.xml").is_file());
        assert!(layout
            .services(web)
            .join("AppControl/state/LastRestart")
            .is_file());
        let domain_file = layout.sim(&DEMO_HOSTS[0]).join("web.domain");
        assert!(fs::read_to_string(&domain_file)
            .unwrap()
            .contains("state=running"));
        assert!(layout.repo().is_dir() && layout.logs().is_dir());

        // A second run keeps an edited domain and does not bring back a removed one.
        fs::write(&domain_file, "uuid=x\nname=web\nstate=paused\n").unwrap();
        fs::remove_file(layout.sim(&DEMO_HOSTS[0]).join("db.domain")).unwrap();
        seed(&layout).unwrap();
        assert!(fs::read_to_string(&domain_file)
            .unwrap()
            .contains("state=paused"));
        assert!(!layout.sim(&DEMO_HOSTS[0]).join("db.domain").exists());
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn free_ports_differ_and_given_ones_stay() {
        let [a, b, c] = ports_or_free([0, 0, 4321]).unwrap();
        assert!(a != 0 && b != 0 && a != b, "{a} {b}");
        assert_eq!(c, 4321);
    }

    #[test]
    fn log_tails_are_bounded() {
        let path = std::env::temp_dir().join(format!(
            "xenplug-demo-tail-{}-{}",
            std::process::id(),
            fastrand::u32(..)
        ));
        let text: String = (0..100).map(|n| format!("line {n}\n")).collect();
        fs::write(&path, text).unwrap();
        let tail = log_tail(&path);
        assert_eq!(tail.lines().count(), DEMO_LOG_TAIL_LINES);
        assert_eq!(tail.lines().last(), Some("line 99"));
        fs::remove_file(&path).unwrap();
        assert_eq!(log_tail(&path), "", "a missing log reads as nothing");
    }
}
