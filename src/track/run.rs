//! Net layer of the tracker: sockets on every labelled network, description and SCPD fetches,
//! GENA subscriptions as a control point, the repositories, and the read API, on one
//! single-threaded smol executor. What a message means is decided by the engines
//! ([`crate::engine::discovery`], [`crate::engine::inventory`]); this file moves bytes.

use super::api::{self, Route};
use crate::consts::SSDP_MIN_MAX_AGE;
use crate::consts::{
    CONTENT_TYPE_XML, DISCOVERY_DEFAULT_SEARCH_MX, DISCOVERY_MAX_LOCATION, GENA_DEFAULT_TIMEOUT,
    GENA_NT_EVENT, HTTP_MAX_HEAD, SCPD_MAX_BYTES, TRACK_API_LONG_POLL, TRACK_RELAY_TIMEOUT,
    URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR, URN_DEVICE_VIRTUAL_MACHINE,
    URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR,
};
use crate::credentials::{AccessFile, Gate};
use crate::engine::access::View;
use crate::engine::access::{self, Caller, Identity, Listener, Refusal};
use crate::engine::discovery::{self, Change, Discovery, FetchJob, Fetched};
use crate::engine::fetches;
use crate::engine::inventory::{Inventory, NetworkInfo, Output};
use crate::engine::relay::{self, Control, DomainControl, RelayCall, VmControls};
use crate::engine::subscriber::{self, Subscriber, Wanted};
use crate::engine::Interner;
use crate::error::{Error, Result};
use crate::net::event_loop::{spawn_http, spawn_reloads, woken_or, Wakeups};
use crate::net::http::{Answer, Handler, Request, Response};
use crate::net::http_client::{self, Limits};
use crate::net::iface::{self, LocalInterface};
use crate::net::ssdp::SsdpSocket;
use crate::net::unix_now;
use crate::repo::EventKind;
use crate::repo::{ActionRecord, EventDraft, Repository};
use crate::wire::description::{
    parse_description_within, udn_uuid, Described, DescribedDevice, DescriptionLimits,
};
use crate::wire::http::http_url_parts;
use crate::wire::signature::{ControlKey, SIGNATURE_HEADER};
use crate::wire::{gena, scpd, soap};
use smol::channel::Sender;
use smol::{Async, LocalExecutor, Timer};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use uuid::Uuid;

/// Devices (UDNs) tracked per network unless configured otherwise: a tenant network of
/// 10,000 VMs (one address each) fits three times over, a provider network eight
/// hypervisors at their quota.
const DISCOVERY_DEFAULT_MAX_DEVICES: usize = 32 * 1024;
/// Devices (UDNs) tracked per network for one source address: a hypervisor advertises its
/// root and one Domain UDN per VM from its one address, so twice the 2,000 domains of a
/// big host. A flood from one address stops there.
const DISCOVERY_DEFAULT_MAX_DEVICES_PER_SOURCE: usize = 4096;
/// Shortest life granted to a device: a max-age below it is raised to it, so a device
/// announcing max-age=0 does not appear and vanish at every message. The same floor as the
/// advertisers' `--max-age`, so a tracker honours what they announce.
const DISCOVERY_DEFAULT_MIN_MAX_AGE: u32 = SSDP_MIN_MAX_AGE;
/// Longest life granted to a device unless configured otherwise: a silent device is
/// forgotten after this long whatever max-age it claimed.
const DISCOVERY_DEFAULT_MAX_MAX_AGE: u32 = 86400;
/// Time allowed for one description or SCPD fetch, or one SUBSCRIBE exchange.
const TRACK_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at fetching a description before the device is reported undescribed.
const TRACK_FETCH_ATTEMPTS: u32 = 3;
/// Pause after the first failed fetch; doubled after each further failure.
const TRACK_FETCH_BACKOFF: Duration = Duration::from_secs(1);
/// Longest pause between fetches of a description that keeps failing.
const TRACK_FETCH_MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Shortest time between the starts of two description fetches of one LOCATION: a device
/// flapping its CONFIGID gets one fetch a second, not one per datagram.
const TRACK_FETCH_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Description fetches in flight at once, at most (one per source address): on a LAN a
/// fetch takes milliseconds, so 100 hosts are described in well under a second.
const TRACK_MAX_FETCHES: usize = 16;
/// Bytes the description fetches in flight may hold together, at most: each may hold the
/// whole of `--max-description`, so fewer run at once when it is raised (16 at the default
/// 4 MiB, at least 2). Only one is parsed at a time (the executor has one thread).
const TRACK_FETCH_MEMORY: usize = 64 * 1024 * 1024;
/// The device tables must have shrunk by this many entries since their peak before freed
/// heap pages are handed back to the kernel (`malloc_trim`).
const TRACK_TRIM_AFTER: usize = 1024;
/// How long a network goes without a search before the tracker searches for root devices
/// again: a device whose announcements were all lost (a receive buffer that overflowed
/// unnoticed, a switch dropping multicast) is found within this time rather than at its next
/// refresh, max-age/4 to max-age/2 (450 s or more at the usual 1800 s). One answer per root
/// device: 100 datagrams for 100 hypervisors.
const TRACK_SEARCH_EVERY: Duration = Duration::from_secs(300);
/// Receive buffer asked for each of the tracker's SSDP sockets (the kernel doubles it): the
/// answers to one `ssdp:all` on a network of 100 hypervisors of 100 domains are 30,400
/// datagrams within MX (2 s), and the tracker's one thread may be busy for a moment (a
/// description parsed, or the CPU taken by the hosts answering) while they arrive. The kernel
/// counts about 1,280 bytes for a datagram of 350: this holds 52,000 of them, the whole burst
/// (measured over a veth pair: 8 MiB held 13,107, and a hundred hosts' start-up lost 824 to
/// 2,285 datagrams in 3 runs of 18). Kernel memory, taken only while datagrams wait. Without
/// CAP_NET_ADMIN the kernel caps it at net.core.rmem_max.
const TRACK_SSDP_RECEIVE_BUFFER: usize = 32 * 1024 * 1024;
/// Drops on a network's SSDP sockets are logged at most this often (with their count since).
const TRACK_DROP_LOG_EVERY: Duration = Duration::from_secs(60);
/// Shortest time between two runs of the inventory's grace periods. They are run when due,
/// a second after [`Inventory::poll_at`]: it counts whole seconds from times cut to the
/// second, so a grace period run at that second could be up to a second short.
const TRACK_INVENTORY_STEP: Duration = Duration::from_secs(1);
/// How often the tracker looks whether a network's interface came (back) up when it cannot be
/// told (no route netlink socket).
const TRACK_IFACE_WATCH: Duration = Duration::from_secs(2);
/// Events per `GET /api/events` answer, at most.
const TRACK_EVENTS_PAGE: usize = 500;
/// Longest the run loop sleeps when nothing is scheduled (a wake-up arrives sooner anyway).
const TRACK_IDLE_WAKE: Duration = Duration::from_secs(3600);
/// Longest the tracker waits for the answer to an UNSUBSCRIBE of a subscription it no longer
/// wants: best effort, the publisher ends it anyway when its TIMEOUT runs out.
const TRACK_UNSUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One `--net NAME=IFACE[:provider]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetSpec {
    /// Label (the tenant's name on a tenant network).
    pub label: String,
    /// LocalInterface name.
    pub interface: String,
    /// Whether it is a provider (management) network.
    pub provider: bool,
}

impl NetSpec {
    /// Parses `NAME=IFACE` or `NAME=IFACE:provider`.
    pub fn parse(text: &str) -> Result<NetSpec> {
        let bad = || {
            Error::config(format!(
                "--net {text:?}: expected NAME=IFACE or NAME=IFACE:provider"
            ))
        };
        let (label, rest) = text.split_once('=').ok_or_else(bad)?;
        let (interface, provider) = match rest.split_once(':') {
            Some((interface, "provider")) => (interface, true),
            Some(_) => return Err(bad()),
            None => (rest, false),
        };
        if !crate::repo::is_valid_name(label) || interface.is_empty() {
            return Err(Error::config(format!(
                "--net {text:?}: the name must be 1-64 of A-Z a-z 0-9 _ - and the interface given"
            )));
        }
        Ok(NetSpec {
            label: label.to_string(),
            interface: interface.to_string(),
            provider,
        })
    }
}

/// How to run the tracker.
pub struct Options {
    /// The networks to listen on.
    pub networks: Vec<NetSpec>,
    /// Repository directory.
    pub repo: PathBuf,
    /// Read API address, if any.
    pub api: Option<SocketAddr>,
    /// Seconds a VM may advertise with no hypervisor listing it before it is de-virtualized.
    pub grace: u64,
    /// Told the read API's bound addresses once it listens (for a caller running the tracker
    /// in-process that asked for port 0); `None` for `xenplug track`.
    pub report_api: Option<std::sync::mpsc::Sender<Vec<SocketAddr>>>,
    /// Stops the tracker when a message arrives or every sender is gone, instead of SIGTERM
    /// and SIGINT (no signal handler is installed then); `None` for `xenplug track`.
    pub stop: Option<smol::channel::Receiver<()>>,
    /// The access file (`--access`): identities and roles; without one, the API serves reads
    /// as the listener allows and refuses every action.
    pub access: Option<PathBuf>,
    /// The control key relayed calls are signed with (`--control-key`).
    pub control_key: Option<ControlKey>,
    /// Lifecycle actions a tenant may call on its own VMs (`--tenant-control`).
    pub tenant_control: Vec<String>,
    /// Where to publish the view in etcd (`--etcd`), if anywhere.
    pub etcd: Option<super::etcd::Settings>,
    /// Size of a device description read, at most (`--max-description`); the other bounds
    /// of a description follow from it.
    pub max_description: usize,
}

/// The description fetches that run at once for descriptions of at most `max_description`
/// bytes: [`TRACK_MAX_FETCHES`], fewer when they would hold more than [`TRACK_FETCH_MEMORY`]
/// together, never fewer than 2 (one is kept for checking byebyes).
fn fetch_slots(max_description: usize) -> usize {
    (TRACK_FETCH_MEMORY / max_description.max(1)).clamp(2, TRACK_MAX_FETCHES)
}

/// One network at run time.
struct Network {
    spec: NetSpec,
    interface: LocalInterface,
    /// Port of this network's GENA callback server.
    callback_port: u16,
    /// Receive buffer the kernel granted each of its SSDP sockets, in bytes.
    receive_buffer: usize,
    /// Datagrams its SSDP sockets dropped (full receive buffer) since the start.
    dropped: u64,
    /// Of those, the ones not logged yet, and when drops were last logged.
    dropped_unlogged: u64,
    dropped_logged: Option<Instant>,
}

/// Where the provider reaches a hypervisor's Hypervisor service.
struct HypervisorControl {
    network: u32,
    /// The hypervisor's root UDN, to forget it when the hypervisor leaves.
    root: String,
    control: Control,
}

/// Everything the tasks share.
struct Tracker {
    networks: Vec<Network>,
    discovery: Discovery,
    inventory: Inventory,
    repo: Repository,
    /// GENA subscriptions to the hypervisors' services.
    subscriber: Subscriber,
    /// VM UUID -> its advertised services' control URLs.
    controls: BTreeMap<Uuid, Vec<Control>>,
    /// (network, root UDN) -> VM UUID, to forget controls when the device leaves.
    vm_roots: BTreeMap<(u32, String), Uuid>,
    /// VM UUID -> its Domain device's DomainControl on a hypervisor (provider networks only).
    domain_controls: BTreeMap<Uuid, DomainControl>,
    /// Host UUID -> its Hypervisor service's control URL (provider networks only).
    hypervisor_controls: BTreeMap<Uuid, HypervisorControl>,
    search_sockets: Vec<Rc<SsdpSocket>>,
    /// Interfaces that were down (missing or without address) at the last look.
    down: Vec<bool>,
    /// Identities and roles, and failed attempts, if an access file is configured.
    gate: Option<Gate>,
    /// The key relayed calls are signed with.
    control_key: Option<ControlKey>,
    /// Lifecycle actions a tenant may call on its own VMs.
    tenant_control: Vec<String>,
    /// What a description may hold.
    description_limits: DescriptionLimits,
    /// What GENA events decided, waiting for the run loop's next turn: written together, the
    /// initial events of a thousand Domains cost a few disk flushes rather than two each, and
    /// each NOTIFY is answered without waiting for the disk.
    deferred: Vec<Output>,
    /// Wakes the run loop.
    wake: Sender<()>,
    /// Long polls waiting for the journal's next line.
    journal_waiters: Wakeups,
    /// The service types and root UDNs that controls and subscriptions share.
    texts: Interner,
}

type Shared = Rc<RefCell<Tracker>>;

impl super::etcd::Tracked for Shared {
    fn with_repo<R>(&self, f: impl FnOnce(&Repository) -> R) -> R {
        f(&self.borrow().repo)
    }
}

impl Tracker {
    /// Hands what the inventory decided (after what was deferred, in order) to the repository:
    /// records first, then the journal. The repository's writer thread makes them durable, so
    /// the loop never waits for the disk; [`follow_journal`] shows the events once they are.
    fn apply(&mut self, outputs: Vec<Output>) {
        let outputs = if self.deferred.is_empty() {
            outputs
        } else {
            let mut all = std::mem::take(&mut self.deferred);
            all.extend(outputs);
            all
        };
        let mut drafts: Vec<EventDraft> = Vec::new();
        // One batch: a description of a thousand domains is one piece of work for the writer.
        let mut batch = self.repo.batch();
        for output in outputs {
            let written = match output {
                Output::PutHardware(record) => batch.put_hardware(record),
                Output::RemoveHardware(host) => batch.remove_hardware(&host).map(|_| ()),
                Output::PutVirtual(record) => batch.put_virtual(record),
                Output::RemoveVirtual(vm) => {
                    self.controls.remove(&vm);
                    batch.remove_virtual(&vm).map(|_| ())
                }
                Output::Event(draft) => {
                    drafts.push(draft);
                    Ok(())
                }
            };
            if let Err(error) = written {
                log::error!("repository: {error}");
            }
        }
        batch.commit();
        if drafts.is_empty() {
            return;
        }
        match self.repo.append(unix_now(), drafts) {
            Ok(events) => {
                for event in events {
                    log::info!(
                        "event {} {} {}",
                        event.seq,
                        event.kind.as_str(),
                        event.subject
                    );
                }
            }
            Err(error) => log::error!("journal: {error}"),
        }
    }

    /// Queues what the inventory decided for the run loop's next turn (see
    /// [`Tracker::deferred`]).
    fn defer(&mut self, outputs: Vec<Output>) {
        if outputs.is_empty() {
            return;
        }
        self.deferred.extend(outputs);
        let _ = self.wake.try_send(());
    }

    /// Forgets device `udn` on `network`, which left: its subscriptions (without UNSUBSCRIBE,
    /// see [`Subscriber::forget`]), and the controls of the tree it is the root of.
    fn forget(&mut self, network: u32, udn: &str) {
        self.subscriber.forget(network, udn);
        self.forget_controls(network, udn);
    }

    /// Forgets the controls of the tree rooted at `root` on `network`.
    fn forget_controls(&mut self, network: u32, root: &str) {
        if let Some(vm) = self.vm_roots.remove(&(network, root.to_string())) {
            self.controls.remove(&vm);
        }
        self.domain_controls
            .retain(|_, d| !(d.network == network && *d.root == *root));
        self.hypervisor_controls
            .retain(|_, h| !(h.network == network && h.root == root));
    }
}

/// What stops the run loop.
enum Stopper {
    /// SIGTERM or SIGINT (`xenplug track`).
    Signals(async_signal::Signals),
    /// [`Options::stop`] (a caller running the tracker in-process).
    Told(smol::channel::Receiver<()>),
}

/// Runs the tracker until SIGTERM or SIGINT (or, with [`Options::stop`], until told to). SIGHUP
/// reads the access file again at once.
pub fn run(options: Options) -> Result<()> {
    let executor = Rc::new(LocalExecutor::new());
    crate::net::event_loop::run_main(&executor, run_on(executor.clone(), options))
}

async fn run_on(executor: Rc<LocalExecutor<'static>>, options: Options) -> Result<()> {
    let mut stopper = match options.stop.clone() {
        Some(told) => Stopper::Told(told),
        None => Stopper::Signals(
            crate::net::event_loop::stop_signals()
                .map_err(|e| Error::io("installing signal handlers", e))?,
        ),
    };
    // SIGHUP (`xenplug track` only): the access file is read again at once.
    let reloads = match &stopper {
        Stopper::Signals(_) => Some(
            crate::net::event_loop::reload_signals()
                .map_err(|e| Error::io("installing signal handlers", e))?,
        ),
        Stopper::Told(_) => None,
    };
    if options.networks.is_empty() {
        return Err(Error::config(
            "name at least one network with --net NAME=IFACE[:provider]",
        ));
    }
    let access = options
        .access
        .as_deref()
        .map(AccessFile::open)
        .transpose()?;
    if access.is_none() && options.api.is_some() {
        log::info!("no --access file: the read API serves reads and refuses every action");
    }
    let repo = Repository::open(&options.repo, unix_now()).map_err(|e| {
        Error::io(
            format!("opening the repository {}", options.repo.display()),
            e,
        )
    })?;
    let mut infos = Vec::new();
    let mut engine_networks = Vec::new();
    let mut networks = Vec::new();
    let mut listen_sockets = Vec::new();
    let mut search_sockets = Vec::new();
    let mut callback_listeners = Vec::new();
    for (id, spec) in options.networks.iter().enumerate() {
        let id = id as u32;
        let interface = iface::lookup(&spec.interface)?;
        infos.push(NetworkInfo {
            id,
            label: spec.label.clone(),
            provider: spec.provider,
        });
        engine_networks.push(discovery::Network {
            id,
            interface: interface.index,
            address: interface.address,
            subnet: interface.subnet,
        });
        let listen = Rc::new(SsdpSocket::open(&interface)?);
        let search = Rc::new(SsdpSocket::open_search(&interface)?);
        let mut receive_buffer = usize::MAX;
        for socket in [&listen, &search] {
            let granted = socket
                .set_receive_buffer(TRACK_SSDP_RECEIVE_BUFFER)
                .map_err(|e| Error::io(format!("SSDP receive buffer on {}", interface.name), e))?;
            receive_buffer = receive_buffer.min(granted);
            if let Err(error) = socket.count_drops() {
                log::warn!(
                    "ssdp: drops on {} cannot be counted (SO_RXQ_OVFL: {error})",
                    interface.name
                );
            }
        }
        if receive_buffer < TRACK_SSDP_RECEIVE_BUFFER {
            log::warn!(
                "network {}: SSDP receive buffers of {} KiB only (net.core.rmem_max, no \
                 CAP_NET_ADMIN): bursts of answers from many devices may be dropped; raise \
                 net.core.rmem_max to {}",
                spec.label,
                receive_buffer / 1024,
                TRACK_SSDP_RECEIVE_BUFFER
            );
        }
        listen_sockets.push((id, listen));
        search_sockets.push(search);
        let listener = iface::listen_tcp(
            SocketAddr::from((interface.address, 0)),
            Some(&interface.name),
        )
        .map_err(|e| Error::io(format!("GENA callbacks on {}", interface.address), e))?;
        let callback_port = listener
            .local_addr()
            .map_err(|e| Error::io("callback address", e))?
            .port();
        let listener = Async::new(listener).map_err(|e| Error::io("callback listener", e))?;
        callback_listeners.push((id, listener));
        log::info!(
            "network {} on {} ({}), {}, SSDP receive buffers {} KiB",
            spec.label,
            interface.name,
            interface.address,
            if spec.provider { "provider" } else { "tenant" },
            receive_buffer / 1024
        );
        networks.push(Network {
            spec: spec.clone(),
            interface,
            callback_port,
            receive_buffer,
            dropped: 0,
            dropped_unlogged: 0,
            dropped_logged: None,
        });
    }
    let config = discovery::Config {
        user_agent: crate::state::server_string(),
        search_mx: DISCOVERY_DEFAULT_SEARCH_MX,
        max_devices: DISCOVERY_DEFAULT_MAX_DEVICES,
        max_devices_per_source: DISCOVERY_DEFAULT_MAX_DEVICES_PER_SOURCE,
        min_max_age: DISCOVERY_DEFAULT_MIN_MAX_AGE,
        max_max_age: DISCOVERY_DEFAULT_MAX_MAX_AGE,
        fetches: fetches::Config {
            slots: fetch_slots(options.max_description),
            // Devices that never answer hold half the slots at most.
            retry_slots: fetch_slots(options.max_description) / 2,
            attempts: TRACK_FETCH_ATTEMPTS,
            backoff: TRACK_FETCH_BACKOFF,
            max_backoff: TRACK_FETCH_MAX_BACKOFF,
            min_interval: TRACK_FETCH_MIN_INTERVAL,
        },
        search_every: TRACK_SEARCH_EVERY,
    };
    let mut discovery = Discovery::new(config, engine_networks, crate::state::random_seed()?);
    let now = Instant::now();
    for id in 0..networks.len() as u32 {
        discovery.search(now, id);
    }
    let mut inventory = Inventory::new(infos, options.grace);
    inventory.restore(
        repo.hardware().values().cloned(),
        repo.virtual_machines().values().cloned(),
    );
    log::info!(
        "repository {}: continuing after event {}",
        options.repo.display(),
        repo.last_seq()
    );
    let count = networks.len();
    let (wake, woken) = smol::channel::bounded::<()>(1);
    let shared: Shared = Rc::new(RefCell::new(Tracker {
        networks,
        discovery,
        inventory,
        repo,
        subscriber: Subscriber::new(),
        controls: BTreeMap::new(),
        vm_roots: BTreeMap::new(),
        domain_controls: BTreeMap::new(),
        hypervisor_controls: BTreeMap::new(),
        search_sockets: search_sockets.clone(),
        down: vec![false; count],
        gate: access.map(|access| Gate::new(access, "read API")),
        control_key: options.control_key.clone(),
        tenant_control: options.tenant_control.clone(),
        description_limits: DescriptionLimits::for_size(options.max_description),
        deferred: Vec::new(),
        wake: wake.clone(),
        journal_waiters: Wakeups::default(),
        texts: Interner::default(),
    }));
    let (durable, journal_moved) = smol::channel::bounded::<()>(1);
    shared.borrow().repo.on_durable(move || {
        let _ = durable.try_send(());
    });
    executor
        .spawn(follow_journal(shared.clone(), journal_moved))
        .detach();
    if let Some(reloads) = reloads {
        let tracker = shared.clone();
        spawn_reloads(&executor, reloads, move || {
            match tracker.borrow_mut().gate.as_mut() {
                Some(gate) => gate.reload(),
                None => log::info!("SIGHUP: no access file to read again"),
            }
        });
    }

    let server = crate::state::server_string();
    for (id, socket) in listen_sockets {
        executor
            .spawn(receive(shared.clone(), id, socket, wake.clone()))
            .detach();
    }
    for (id, socket) in search_sockets.into_iter().enumerate() {
        executor
            .spawn(receive(shared.clone(), id as u32, socket, wake.clone()))
            .detach();
    }
    executor
        .spawn(follow_interfaces(shared.clone(), wake.clone()))
        .detach();
    for (id, listener) in callback_listeners {
        let handler: Rc<dyn Handler> = Rc::new(CallbackHttp {
            shared: shared.clone(),
            network: id,
            wake: wake.clone(),
        });
        spawn_http(
            &executor,
            listener,
            handler,
            server.clone(),
            format!("GENA callbacks on network {id}"),
        );
    }
    // The provider's API URLs, published in etcd for consoles (reachable ones first).
    let mut provider_api = Vec::new();
    if let Some(address) = options.api {
        let tracker = shared.borrow();
        let mut bound = Vec::new();
        for (bind, device, tenant) in api_listeners(address, &tracker.networks) {
            let listener = iface::listen_tcp(bind, device.as_deref())
                .map_err(|e| Error::io(format!("read API on {bind}"), e))?;
            let bind = listener
                .local_addr()
                .map_err(|e| Error::io("read API address", e))?;
            bound.push(bind);
            if tenant.is_none() {
                provider_api.push((bind.ip().is_loopback(), format!("http://{bind}")));
            }
            let listener = Async::new(listener).map_err(|e| Error::io("read API listener", e))?;
            let view = tenant
                .as_deref()
                .map_or("provider".to_string(), |t| format!("tenant {t}"));
            log::info!("read API at http://{bind}/api/tree ({view} view)");
            let handler: Rc<dyn Handler> = Rc::new(ApiHttp {
                shared: shared.clone(),
                tenant,
            });
            spawn_http(
                &executor,
                listener,
                handler,
                server.clone(),
                format!("read API on {bind}"),
            );
        }
        if let Some(report) = &options.report_api {
            let _ = report.send(bound);
        }
    }
    if let Some(settings) = options.etcd.clone() {
        provider_api.sort_unstable();
        let api = provider_api.into_iter().map(|(_, url)| url).collect();
        let networks = options
            .networks
            .iter()
            .map(|n| (n.label.clone(), n.provider))
            .collect();
        executor
            .spawn(super::etcd::publish(
                shared.clone(),
                settings,
                api,
                networks,
            ))
            .detach();
    }

    let mut peak_devices = 0;
    // The first turn runs the inventory's grace periods (a restore's starts then).
    let mut inventory_run: Option<Instant> = None;
    loop {
        let deadline = {
            let tracker = shared.borrow();
            let inventory = match inventory_run {
                None => Some(Instant::now()),
                Some(last) => tracker
                    .inventory
                    .poll_at()
                    .map(|at| instant_of_unix(at + 1).max(last + TRACK_INVENTORY_STEP)),
            };
            [
                tracker.discovery.poll_at(),
                tracker.subscriber.poll_at(),
                inventory,
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + TRACK_IDLE_WAKE)
        };
        let stop = match &mut stopper {
            Stopper::Signals(signals) => {
                crate::net::event_loop::next_turn(signals, deadline, &woken).await
            }
            Stopper::Told(stop) => {
                smol::future::or(
                    async {
                        // A message or every sender gone: both mean stop.
                        let _ = stop.recv().await;
                        true
                    },
                    async {
                        smol::future::or(
                            async {
                                Timer::at(deadline).await;
                            },
                            async {
                                let _ = woken.recv().await;
                            },
                        )
                        .await;
                        false
                    },
                )
                .await
            }
        };
        if stop {
            log::info!("stopping");
            shared.borrow_mut().apply(Vec::new());
            return Ok(());
        }
        let now = Instant::now();
        {
            let mut tracker = shared.borrow_mut();
            let sockets = tracker.search_sockets.clone();
            tracker
                .discovery
                .dispatch(now, |network, destination, bytes| {
                    if let Some(socket) = sockets.get(network as usize) {
                        if let Err(error) = socket.try_send(destination, bytes) {
                            log::debug!("ssdp: search on network {network} failed: {error}");
                        }
                    }
                });
            let due = match inventory_run {
                None => true,
                Some(last) => tracker
                    .inventory
                    .poll_at()
                    .is_some_and(|at| unix_now() > at && now >= last + TRACK_INVENTORY_STEP),
            };
            if due {
                inventory_run = Some(now);
                let outputs = tracker.inventory.take_due(unix_now());
                tracker.apply(outputs);
            } else if !tracker.deferred.is_empty() {
                tracker.apply(Vec::new());
            }
            give_back_memory(&mut peak_devices, tracker.discovery.len());
        }
        handle_changes(&shared);
        start_fetches(&executor, &shared, now, &wake);
        renew_subscriptions(&executor, &shared, now, &wake);
    }
}

/// The read API's listeners for `--api address`: (bind address, interface to bind to, tenant
/// whose slice it serves). The view is the listener's, never the address a request names:
/// each listener is bound to its interface, so a tenant cannot reach the provider's view by
/// routing to another of the tracker's addresses through its own network.
/// - `0.0.0.0:PORT`: one listener per network on that network's address (a tenant network's
///   serves its tenant, a provider network's the provider), and 127.0.0.1:PORT on `lo` for
///   the provider;
/// - the address of one of the networks: that network's view, bound to its interface;
/// - any other address (127.0.0.1 say): the provider's view, bound to the interface holding
///   it when it is loopback.
fn api_listeners(
    address: SocketAddr,
    networks: &[Network],
) -> Vec<(SocketAddr, Option<String>, Option<String>)> {
    let tenant_of =
        |network: &Network| (!network.spec.provider).then(|| network.spec.label.clone());
    if address.ip().is_unspecified() {
        let mut listeners: Vec<_> = networks
            .iter()
            .map(|n| {
                let bind = SocketAddr::from((n.interface.address, address.port()));
                (bind, Some(n.interface.name.clone()), tenant_of(n))
            })
            .collect();
        if !networks.iter().any(|n| n.interface.address.is_loopback()) {
            listeners.push((
                SocketAddr::from((Ipv4Addr::LOCALHOST, address.port())),
                Some(LOOPBACK.to_string()),
                None,
            ));
        }
        return listeners;
    }
    match networks
        .iter()
        .find(|n| IpAddr::V4(n.interface.address) == address.ip())
    {
        Some(network) => vec![(
            address,
            Some(network.interface.name.clone()),
            tenant_of(network),
        )],
        None if address.ip().is_loopback() => vec![(address, Some(LOOPBACK.to_string()), None)],
        None => vec![(address, None, None)],
    }
}

/// The loopback interface's name.
const LOOPBACK: &str = "lo";

/// The instant the wall clock reads `at` (unix seconds), now when it has passed.
fn instant_of_unix(at: u64) -> Instant {
    Instant::now() + Duration::from_secs(at.saturating_sub(unix_now()))
}

/// Looks at the networks' interfaces whenever the kernel says interfaces or addresses changed,
/// or every [`TRACK_IFACE_WATCH`] where it cannot say (logged once).
async fn follow_interfaces(shared: Shared, wake: Sender<()>) {
    match iface::InterfaceEvents::open() {
        Ok(events) => loop {
            if let Err(error) = events.next().await {
                log::warn!(
                    "interfaces: no more change notifications ({error}): looking every {} s",
                    TRACK_IFACE_WATCH.as_secs()
                );
                break;
            }
            watch_interfaces(&shared, Instant::now());
            let _ = wake.try_send(());
        },
        Err(error) => log::warn!(
            "interfaces: cannot be told of changes ({error}): looking every {} s",
            TRACK_IFACE_WATCH.as_secs()
        ),
    }
    loop {
        Timer::after(TRACK_IFACE_WATCH).await;
        watch_interfaces(&shared, Instant::now());
        let _ = wake.try_send(());
    }
}

/// Searches again on a network whose interface came (back) up.
fn watch_interfaces(shared: &Shared, now: Instant) {
    let mut tracker = shared.borrow_mut();
    for id in 0..tracker.networks.len() {
        let up = iface::lookup(&tracker.networks[id].spec.interface)
            .is_ok_and(|found| found.address == tracker.networks[id].interface.address);
        if up && tracker.down[id] {
            log::info!(
                "network {}: interface up again, searching",
                tracker.networks[id].spec.label
            );
            tracker.discovery.search(now, id as u32);
        }
        tracker.down[id] = !up;
    }
}

/// Hands one socket's datagrams to discovery, and the drops each reports to
/// [`on_dropped`].
async fn receive(shared: Shared, network: u32, socket: Rc<SsdpSocket>, wake: Sender<()>) {
    let mut dropped = 0;
    socket
        .each_datagram(|source, bytes| {
            let now = Instant::now();
            let mut tracker = shared.borrow_mut();
            let total = socket.dropped();
            if total != dropped {
                on_dropped(&mut tracker, now, network, total.wrapping_sub(dropped));
                dropped = total;
            }
            tracker.discovery.on_datagram(now, network, source, bytes);
            let _ = wake.try_send(());
        })
        .await
}

/// `lost` datagrams were dropped on a socket of `network` (its receive buffer was full):
/// counted for the status, logged at most once a [`TRACK_DROP_LOG_EVERY`], and whatever
/// they said asked for again with a search.
fn on_dropped(tracker: &mut Tracker, now: Instant, network: u32, lost: u32) {
    let search = tracker.discovery.on_overflow(now, network);
    let Some(net) = tracker.networks.get_mut(network as usize) else {
        return;
    };
    net.dropped += u64::from(lost);
    net.dropped_unlogged += u64::from(lost);
    if net
        .dropped_logged
        .is_some_and(|at| now.saturating_duration_since(at) < TRACK_DROP_LOG_EVERY)
    {
        return;
    }
    let again = match search {
        Some(at) => format!(
            "; searching for root devices again in {} ms",
            at.saturating_duration_since(now).as_millis()
        ),
        None => String::new(),
    };
    log::warn!(
        "network {}: {} SSDP datagrams dropped, the receive buffer ({} KiB) was full ({} since \
         the start){again}",
        net.spec.label,
        net.dropped_unlogged,
        net.receive_buffer / 1024,
        net.dropped
    );
    net.dropped_unlogged = 0;
    net.dropped_logged = Some(now);
}

/// Acts on discovery's changes: a device gone is forgotten and told to the inventory; the
/// fetches the others need are queued in discovery already.
fn handle_changes(shared: &Shared) {
    let changes = shared.borrow_mut().discovery.take_changes();
    for change in changes {
        match change {
            Change::Appeared {
                network,
                udn,
                location,
                ..
            } => log::debug!("network {network}: {udn} appeared at {location}"),
            Change::Refetch {
                network,
                udn,
                location,
                reason,
                ..
            } => log::trace!("network {network}: {udn} at {location} to fetch again ({reason:?})"),
            Change::Gone {
                network,
                udn,
                reason,
            } => {
                log::info!("network {network}: {udn} gone ({reason:?})");
                let mut tracker = shared.borrow_mut();
                tracker.forget(network, &udn);
                let outputs = tracker.inventory.on_gone(unix_now(), network, &udn);
                tracker.apply(outputs);
            }
        }
    }
}

/// Starts the fetches discovery hands out now.
fn start_fetches(
    executor: &Rc<LocalExecutor<'static>>,
    shared: &Shared,
    now: Instant,
    wake: &Sender<()>,
) {
    let jobs = shared.borrow_mut().discovery.take_fetches(now);
    for job in jobs {
        executor
            .spawn(fetch(shared.clone(), wake.clone(), job))
            .detach();
    }
}

/// Hands freed heap pages back to the kernel once the device tables shrank by
/// [`TRACK_TRIM_AFTER`] entries from their peak (a flood's entries expired, say): the engines
/// shrink their maps, but glibc keeps freed small blocks in its heap unless asked. `peak` is
/// the largest count since the last trim.
fn give_back_memory(peak: &mut usize, devices: usize) {
    if devices >= *peak {
        *peak = devices;
        return;
    }
    if *peak - devices < TRACK_TRIM_AFTER {
        return;
    }
    log::debug!("memory: {devices} devices known after a peak of {peak}: freeing heap pages");
    *peak = devices;
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim(3) only hands the allocator's free pages back to the kernel.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// GETs `url` (which must point at `source`), bounded; Err says why.
async fn get(url: &str, source: Ipv4Addr, max_body: usize) -> std::result::Result<Vec<u8>, String> {
    let (address, target) = http_url_parts(url, DISCOVERY_MAX_LOCATION)
        .ok_or_else(|| format!("{url}: not an http URL to an IPv4 address"))?;
    if *address.ip() != source {
        return Err(format!("{url}: not on the advertising host {source}"));
    }
    let limits = Limits {
        timeout: TRACK_FETCH_TIMEOUT,
        max_head: HTTP_MAX_HEAD,
        max_body,
    };
    let response = http_client::request(SocketAddr::V4(address), "GET", target, &[], &[], &limits)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if response.status != 200 {
        return Err(format!("{url}: HTTP status {}", response.status));
    }
    Ok(response.body)
}

/// Performs one fetch from discovery: the description (one attempt: discovery's queue decides
/// the retries) and, for a VM's tree, the SCPDs of its services; tells discovery how it
/// ended; when it was for the inventory, files it there and subscribes to a hypervisor's
/// events. A verification only tells discovery.
async fn fetch(shared: Shared, wake: Sender<()>, job: FetchJob) {
    let limits = shared.borrow().description_limits;
    let result = get(&job.location, job.source, limits.max_bytes)
        .await
        .and_then(|body| {
            parse_description_within(&body, &job.location, &limits).map_err(|e| e.to_string())
        });
    let described = match result {
        Ok(described) => described,
        Err(reason) => {
            let mut tracker = shared.borrow_mut();
            let report = tracker
                .discovery
                .on_fetched(Instant::now(), &job, Fetched::Failed);
            match report.filter(|_| job.describe) {
                Some(report) => {
                    let line = format!(
                        "network {}: {} at {} undescribed after {} failures: {reason}",
                        job.network, job.udn, job.source, report.failures
                    );
                    if report.first_for_source {
                        log::warn!("{line} (further ones from {} at debug)", job.source);
                    } else {
                        log::debug!("{line}");
                    }
                    let outputs = tracker.inventory.on_undescribed(
                        unix_now(),
                        job.network,
                        &job.udn,
                        job.source,
                        &reason,
                    );
                    tracker.apply(outputs);
                }
                None => log::debug!("network {}: {reason}", job.network),
            }
            let _ = wake.try_send(());
            return;
        }
    };
    let is_vm = described.root.device_type == URN_DEVICE_VIRTUAL_MACHINE;
    let services = if is_vm && job.describe {
        service_actions(&described, job.source).await
    } else {
        BTreeMap::new()
    };
    {
        let mut tracker = shared.borrow_mut();
        let udns: Vec<&str> = described
            .root
            .walk()
            .into_iter()
            .map(|device| device.udn.as_str())
            .collect();
        tracker
            .discovery
            .on_fetched(Instant::now(), &job, Fetched::Listed(&udns));
    }
    if job.describe {
        describe(&shared, &job, described, &services);
    }
    let _ = wake.try_send(());
}

/// A description fetched for the inventory: files it, keeps the controls the relay needs,
/// and reconciles the subscriptions to a hypervisor's events.
///
/// Everything it needs from `described` is taken before the repository is given the
/// inventory's changes, and `described` is dropped first: with a thousand domains, the
/// parsed description (about 0.7 MB) and the batch being staged (about 1 MB) would
/// otherwise be held together.
fn describe(
    shared: &Shared,
    fetch: &FetchJob,
    described: Described,
    services: &BTreeMap<String, Vec<ActionRecord>>,
) {
    log::debug!(
        "network {}: described {} from {}{}",
        fetch.network,
        described.root.udn,
        fetch.location,
        if fetch.rebooted { " (rebooted)" } else { "" }
    );
    for warning in &described.warnings {
        log::info!("network {}: {}: {warning}", fetch.network, fetch.location);
    }
    let is_vm = described.root.device_type == URN_DEVICE_VIRTUAL_MACHINE;
    let mut tracker = shared.borrow_mut();
    let outputs = tracker.inventory.on_described(
        unix_now(),
        fetch.network,
        fetch.source,
        fetch.boot_id,
        fetch.rebooted,
        &described,
        services,
    );
    let network = tracker.networks.get(fetch.network as usize);
    let provider = network.is_some_and(|n| n.spec.provider);
    let label = network.map(|n| n.spec.label.clone());
    let root_udn = described.root.udn.clone();
    tracker.forget_controls(fetch.network, &root_udn);
    // The services whose events are wanted: those of a hypervisor's tree on a provider
    // network; none for anything else (which cancels what an earlier description wanted).
    let mut wanted = Vec::new();
    let mut hypervisor_control = None;
    if is_vm {
        // Only the advertisement the inventory accepted for that VM may be relayed to: a
        // second tenant claiming the same UUID, or a VM device on a provider network, must not
        // take over where its actions go.
        let accepted = crate::wire::description::vm_uuid(&described.root).filter(|vm| {
            tracker
                .inventory
                .virtual_machine(vm)
                .and_then(|view| view.advertised_in)
                == label.as_deref()
        });
        if let Some(vm) = accepted {
            let controls = controls_of(&described.root, fetch.source, &mut tracker.texts);
            tracker.controls.insert(vm, controls);
            tracker
                .vm_roots
                .insert((fetch.network, root_udn.clone()), vm);
        }
    } else if provider && described.root.device_type == URN_DEVICE_HYPERVISOR {
        let host = udn_uuid(&root_udn);
        hypervisor_control = host.zip(
            controls_of(&described.root, fetch.source, &mut tracker.texts)
                .into_iter()
                .find(|c| &*c.service_type == URN_SERVICE_HYPERVISOR),
        );
        let shared_root = tracker.texts.share(&root_udn);
        for device in described.root.walk() {
            if device.device_type == URN_DEVICE_DOMAIN {
                let vm = crate::wire::description::vm_uuid(device);
                let control = controls_of(device, fetch.source, &mut tracker.texts)
                    .into_iter()
                    .find(|c| &*c.service_type == URN_SERVICE_DOMAIN_CONTROL);
                if let (Some(vm), Some(control)) = (vm, control) {
                    tracker.domain_controls.insert(
                        vm,
                        DomainControl {
                            network: fetch.network,
                            root: shared_root.clone(),
                            host,
                            address: control.address,
                            path: control.path,
                        },
                    );
                }
            }
            if device.device_type != URN_DEVICE_HYPERVISOR
                && device.device_type != URN_DEVICE_DOMAIN
            {
                continue;
            }
            for service in &device.services {
                let Some((event, path)) =
                    http_url_parts(&service.event_url, DISCOVERY_MAX_LOCATION)
                        .filter(|(address, _)| *address.ip() == fetch.source)
                else {
                    continue;
                };
                wanted.push(Wanted {
                    owner: device.udn.as_str().into(),
                    service_type: tracker.texts.share(&service.service_type),
                    event,
                    path: path.into(),
                });
            }
        }
    }
    drop(described);
    tracker.apply(outputs);
    if let Some((host, control)) = hypervisor_control {
        // Only the description the inventory filed for that host (its first provider
        // network) may be relayed to.
        if tracker.repo.hardware().get(&host).map(|r| &r.network) == label.as_ref() {
            tracker.hypervisor_controls.insert(
                host,
                HypervisorControl {
                    network: fetch.network,
                    root: root_udn.clone(),
                    control,
                },
            );
        }
    }
    tracker.subscriber.reconcile(
        Instant::now(),
        fetch.network,
        &root_udn,
        wanted,
        fetch.rebooted,
    );
}

/// The actions of every service of a VM's tree, from their SCPDs (a service whose SCPD cannot
/// be fetched or read is left out and logged).
async fn service_actions(
    described: &Described,
    source: Ipv4Addr,
) -> BTreeMap<String, Vec<ActionRecord>> {
    let mut services = BTreeMap::new();
    for device in described.root.walk() {
        for service in &device.services {
            let result = get(&service.scpd_url, source, SCPD_MAX_BYTES)
                .await
                .and_then(|body| {
                    scpd::parse_scpd(&body, "owner", &service.service_type, &service.service_id)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(spec) => {
                    let actions = spec
                        .actions
                        .iter()
                        .map(|a| ActionRecord {
                            name: a.name.clone(),
                            semantics: a.semantics.clone(),
                            inputs: a.inputs().map(str::to_string).collect(),
                            outputs: a
                                .arguments
                                .iter()
                                .filter(|g| g.direction == crate::model::Direction::Out)
                                .map(|g| g.name.clone())
                                .collect(),
                        })
                        .collect();
                    services.insert(service.service_type.clone(), actions);
                }
                Err(reason) => log::info!("SCPD of {}: {reason}", service.service_type),
            }
        }
    }
    services
}

/// The UUID of a `uuid:...` UDN.
/// Control URLs of every service of a device's tree that point at the advertising host.
fn controls_of(root: &DescribedDevice, source: Ipv4Addr, texts: &mut Interner) -> Vec<Control> {
    root.walk()
        .into_iter()
        .flat_map(|device| device.services.iter())
        .filter_map(|service| {
            let (address, path) = http_url_parts(&service.control_url, DISCOVERY_MAX_LOCATION)?;
            (*address.ip() == source).then(|| Control {
                service_type: texts.share(&service.service_type),
                address,
                path: path.into(),
            })
        })
        .collect()
}

/// Sends SUBSCRIBE (new or renewal) for every subscription due, and UNSUBSCRIBE for every
/// subscription cancelled.
fn renew_subscriptions(
    executor: &Rc<LocalExecutor<'static>>,
    shared: &Shared,
    now: Instant,
    wake: &Sender<()>,
) {
    let mut tracker = shared.borrow_mut();
    for cancel in tracker.subscriber.take_cancels() {
        executor.spawn(unsubscribe(cancel)).detach();
    }
    for request in tracker.subscriber.take_due(now) {
        let callback = tracker
            .networks
            .get(request.network as usize)
            .map(|n| SocketAddrV4::new(n.interface.address, n.callback_port));
        let Some(callback) = callback else {
            // Not a network of ours: cannot happen; answer it so it is not left in flight.
            let answer = subscriber::Answer::Failed("unknown network".to_string());
            tracker.subscriber.on_answer(now, &request, answer);
            continue;
        };
        executor
            .spawn(subscribe(shared.clone(), wake.clone(), request, callback))
            .detach();
    }
}

/// One SUBSCRIBE exchange (UDA 1.1 sections 4.1.2 and 4.1.3).
async fn subscribe(
    shared: Shared,
    wake: Sender<()>,
    request: subscriber::Request,
    callback: SocketAddrV4,
) {
    let timeout = gena::timeout_value(GENA_DEFAULT_TIMEOUT);
    let callback_value = format!("<http://{callback}/gena/{}>", request.token);
    let headers: Vec<(&str, &str)> = match &request.sid {
        Some(sid) => vec![("SID", sid.as_str()), ("TIMEOUT", timeout.as_str())],
        None => vec![
            ("CALLBACK", callback_value.as_str()),
            ("NT", GENA_NT_EVENT),
            ("TIMEOUT", timeout.as_str()),
        ],
    };
    let limits = Limits {
        timeout: TRACK_FETCH_TIMEOUT,
        max_head: HTTP_MAX_HEAD,
        max_body: HTTP_MAX_HEAD,
    };
    let result = http_client::request(
        SocketAddr::V4(request.event),
        "SUBSCRIBE",
        &request.path,
        &headers,
        &[],
        &limits,
    )
    .await;
    let answer = match result {
        Ok(response) if response.status == 200 => {
            match gena::parse_granted(response.header("SID"), response.header("TIMEOUT")) {
                Ok((sid, timeout)) => subscriber::Answer::Granted { sid, timeout },
                Err(error) => subscriber::Answer::Failed(format!("{error:?}")),
            }
        }
        // UDA 1.1 section 4.1.3: a renewal of a SID the publisher does not know is 412.
        Ok(response) if response.status == 412 && request.sid.is_some() => {
            subscriber::Answer::Unknown
        }
        Ok(response) => subscriber::Answer::Failed(format!("HTTP status {}", response.status)),
        Err(error) => subscriber::Answer::Failed(error.to_string()),
    };
    if let subscriber::Answer::Granted { sid, .. } = &answer {
        let verb = if request.sid.is_some() {
            "renewed"
        } else {
            "subscribed"
        };
        log::debug!("gena: {verb} {sid} at {}{}", request.event, request.path);
    }
    let reason = shared
        .borrow_mut()
        .subscriber
        .on_answer(Instant::now(), &request, answer);
    if let Some(reason) = reason {
        log::info!(
            "subscription at {}{}: {reason}",
            request.event,
            request.path
        );
    }
    let _ = wake.try_send(());
}

/// One UNSUBSCRIBE (UDA 1.1 section 4.1.4), best effort: bounded by
/// [`TRACK_UNSUBSCRIBE_TIMEOUT`], a failure only logged (the publisher ends the
/// subscription itself when its TIMEOUT runs out, or at the first NOTIFY we answer 412).
async fn unsubscribe(cancel: subscriber::Cancel) {
    let limits = Limits {
        timeout: TRACK_UNSUBSCRIBE_TIMEOUT,
        max_head: HTTP_MAX_HEAD,
        max_body: HTTP_MAX_HEAD,
    };
    let headers = [("SID", cancel.sid.as_str())];
    let result = http_client::request(
        SocketAddr::V4(cancel.event),
        "UNSUBSCRIBE",
        &cancel.path,
        &headers,
        &[],
        &limits,
    )
    .await;
    let at = format!("{}{}", cancel.event, cancel.path);
    match result {
        Ok(response) if response.status == 200 => {
            log::debug!("gena: unsubscribed {} at {at}", cancel.sid)
        }
        Ok(response) => log::debug!(
            "gena: UNSUBSCRIBE {} at {at}: HTTP status {}",
            cancel.sid,
            response.status
        ),
        Err(error) => log::debug!("gena: UNSUBSCRIBE {} at {at}: {error}", cancel.sid),
    }
}

/// Receives NOTIFYs for the tracker's subscriptions on one network.
struct CallbackHttp {
    shared: Shared,
    network: u32,
    /// Wakes the run loop (an event may bring the inventory's next grace period closer).
    wake: Sender<()>,
}

impl Handler for CallbackHttp {
    fn lookup(
        &self,
        _head: &crate::wire::http::RequestHead<'_>,
    ) -> Option<(&'static str, Arc<[u8]>)> {
        None
    }

    fn answer(&self, request: Request) -> Answer {
        let status = |code| Answer::Now(Response::empty(code));
        if request.method != "NOTIFY" {
            return status(405);
        }
        let Some(token) = request
            .path
            .strip_prefix("/gena/")
            .and_then(|t| t.parse::<u64>().ok())
        else {
            return status(404);
        };
        let mut tracker = self.shared.borrow_mut();
        // UDA 1.1 section 4.3.2: the SID names the subscription; an unknown one is 412.
        let Some((owner, service_type)) = tracker
            .subscriber
            .on_notify(
                token,
                self.network,
                request.header("SID"),
                request.peer.ip(),
            )
            .map(|(owner, service_type)| (owner.to_string(), service_type.to_string()))
        else {
            log::debug!(
                "gena: NOTIFY from {} for {} (SID {:?}) refused: no such subscription",
                request.peer,
                request.path,
                request.header("SID")
            );
            return status(412);
        };
        let variables = match gena::parse_propertyset(&request.body) {
            Ok(variables) => variables,
            Err(error) => {
                log::debug!("gena: bad property set from {}: {error:?}", request.peer);
                return status(400);
            }
        };
        let outputs =
            tracker
                .inventory
                .on_event(unix_now(), self.network, &owner, &service_type, &variables);
        tracker.defer(outputs);
        // Even with nothing to write, an event may bring the inventory's next grace period
        // closer.
        let _ = self.wake.try_send(());
        status(200)
    }
}

/// The read API, as served by one listener.
struct ApiHttp {
    shared: Shared,
    /// The tenant whose network this listener is on, or `None` for the provider's.
    tenant: Option<String>,
}

fn json(status: u16, body: Vec<u8>) -> Response {
    Response::with_body(status, "application/json", body)
}

fn not_found() -> Answer {
    Answer::Now(json(404, b"{\"error\":\"not found\"}".to_vec()))
}

/// The JSON answer to a refused request; a 401 says how to authenticate (RFC 6750).
fn refused(refusal: &Refusal) -> Response {
    let mut writer = crate::wire::json::JsonWriter::new();
    writer
        .begin_object()
        .key("error")
        .string(refusal.reason)
        .end_object();
    let mut response = json(refusal.status, writer.finish().unwrap_or_default());
    if refusal.status == 401 {
        response
            .headers
            .push(("WWW-Authenticate", "Bearer realm=\"xenplug\"".to_string()));
    }
    response
}

impl Tracker {
    /// What `GET /api/status` shows.
    fn status(&self) -> api::Status<'_> {
        let networks = self
            .networks
            .iter()
            .enumerate()
            .map(|(id, network)| api::NetworkStatus {
                name: &network.spec.label,
                interface: &network.interface.name,
                provider: network.spec.provider,
                devices: self.discovery.devices(id as u32).count(),
                receive_buffer: network.receive_buffer,
                dropped: network.dropped,
            })
            .collect();
        api::Status {
            networks,
            hypervisors: self.repo.hardware().len(),
            vms: self.repo.virtual_machines().len(),
            undescribed: self.inventory.undescribed().len(),
            subscriptions: self.subscriber.len(),
            last_seq: self.repo.last_seq(),
        }
    }

    /// Who sent `request`: no one in particular without an access file (`Ok(None)`), else the
    /// identity its token names; `Err` is the 401 or 429 to answer.
    fn authenticate(
        &mut self,
        request: &Request,
    ) -> std::result::Result<Option<Identity>, Refusal> {
        match &mut self.gate {
            None => Ok(None),
            Some(gate) => gate
                .authenticate(request)
                .map(|(identity, _)| Some(identity)),
        }
    }

    /// Journals an action called or refused through the API, with who asked and how it ended.
    fn audit(&mut self, entry: Audit<'_>) {
        let (identity, role) = match entry.identity {
            Some(identity) => (identity.name.clone(), identity.role.to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let draft = EventDraft::new(EventKind::Action, entry.target.to_string())
            .detail("identity", identity)
            .detail("role", role)
            .detail("source", entry.source.to_string())
            .detail("service", entry.call.service_type.clone())
            .detail("action", entry.call.action.clone())
            .detail("arguments", entry.call.argument_names())
            .detail("outcome", entry.outcome)
            .detail("duration_ms", entry.duration.as_millis().to_string());
        self.apply(vec![Output::Event(draft)]);
    }
}

/// One action for the audit: who, from where, what, on what, and how it ended.
struct Audit<'a> {
    identity: Option<&'a Identity>,
    source: IpAddr,
    target: Uuid,
    call: &'a RelayCall,
    outcome: String,
    duration: Duration,
}

impl ApiHttp {
    fn listener(&self) -> Listener<'_> {
        self.tenant
            .as_deref()
            .map_or(Listener::Provider, Listener::Tenant)
    }
}

impl Handler for ApiHttp {
    fn lookup(
        &self,
        _head: &crate::wire::http::RequestHead<'_>,
    ) -> Option<(&'static str, Arc<[u8]>)> {
        None
    }

    fn answer(&self, request: Request) -> Answer {
        // A request a page of another origin made a browser send is refused whatever it
        // asks; the API never sends CORS headers, so no other origin can read an answer.
        if request.from_foreign_origin() {
            log::debug!(
                "read API: {} request from origin {:?} refused",
                request.peer,
                request.header("Origin")
            );
            return Answer::Now(refused(&Refusal {
                status: 403,
                reason: "cross-origin requests are refused",
            }));
        }
        let route = api::route(&request.method, &request.path, request.query.as_deref());
        match route {
            Route::NotFound => return not_found(),
            Route::MethodNotAllowed => {
                return Answer::Now(json(405, b"{\"error\":\"method not allowed\"}".to_vec()))
            }
            _ => {}
        }
        let authenticated = self.shared.borrow_mut().authenticate(&request);
        let identity = match authenticated {
            Ok(identity) => identity,
            Err(refusal) => {
                if let (Route::VmAction(target) | Route::HypervisorAction(target), 401) =
                    (route, refusal.status)
                {
                    if let Ok(call) = RelayCall::from_form(&request.body) {
                        self.shared.borrow_mut().audit(Audit {
                            identity: None,
                            source: request.peer.ip(),
                            target,
                            call: &call,
                            outcome: format!("refused-{}", refusal.status),
                            duration: Duration::ZERO,
                        });
                    }
                }
                return Answer::Now(refused(&refusal));
            }
        };
        let caller = identity.as_ref().map_or(Caller::Open, Caller::Identified);
        let listener = self.listener();
        match route {
            Route::Tree | Route::Events { .. } | Route::Vm(_) | Route::Status => {
                let view = match access::view(caller, listener) {
                    Ok(view) => view,
                    Err(refusal) => return Answer::Now(refused(&refusal)),
                };
                self.read(route, view, request.query.as_deref())
            }
            Route::VmAction(vm) => self.relay(&request, identity.as_ref(), vm, false),
            Route::HypervisorAction(host) => self.relay(&request, identity.as_ref(), host, true),
            Route::NotFound | Route::MethodNotAllowed => not_found(),
        }
    }
}

impl ApiHttp {
    /// A read in `view`; `query` is the request's query string.
    fn read(&self, route: Route, view: View<'_>, query: Option<&str>) -> Answer {
        let tracker = self.shared.borrow();
        match route {
            Route::Tree => Answer::Now(json(
                200,
                api::tree_of(
                    &api::TreeSources {
                        hardware: tracker.repo.hardware(),
                        vms: tracker.repo.virtual_machines(),
                        undescribed: &tracker.inventory.undescribed(),
                        last_seq: tracker.repo.last_seq(),
                    },
                    view,
                    &api::TreeQuery::parse(query),
                ),
            )),
            Route::Events { since } => Answer::LongPoll(Box::pin(events_long_poll(
                self.shared.clone(),
                since,
                view.tenant().map(str::to_string),
            ))),
            Route::Vm(vm) => match api::vm(tracker.repo.virtual_machine(&vm), view) {
                Some(body) => Answer::Now(json(200, body)),
                None => not_found(),
            },
            Route::Status if view == View::Provider => {
                Answer::Now(json(200, api::status(&tracker.status())))
            }
            _ => not_found(),
        }
    }

    /// `POST /api/vms/<uuid>/actions` and `POST /api/hypervisors/<uuid>/actions` with a form
    /// body `service=<type>&action=<name>&<Arg>=<value>...`: decided by
    /// [`crate::engine::relay`], called on the control URL it names (signed with the control
    /// key, on behalf of the caller, when the tracker has one), and journaled either way.
    /// Answers `{"outputs":{..}}` or `{"error":{"code","description"}}` (a UPnP error, status
    /// 200), `{"error":{"description"}}` (status 502: the device did not answer sensibly), or
    /// the refusal.
    fn relay(
        &self,
        request: &Request,
        identity: Option<&Identity>,
        target: Uuid,
        hypervisor: bool,
    ) -> Answer {
        let call = match RelayCall::from_form(&request.body) {
            Ok(call) => call,
            Err(reason) => {
                return Answer::Now(refused(&Refusal {
                    status: 400,
                    reason,
                }))
            }
        };
        let caller = identity.map_or(Caller::Open, Caller::Identified);
        let mut tracker = self.shared.borrow_mut();
        let decided = if hypervisor {
            let known = tracker.repo.hardware().contains_key(&target);
            let control = tracker.hypervisor_controls.get(&target).map(|h| &h.control);
            relay::decide_host_call(
                caller,
                self.listener(),
                known,
                &call,
                control,
                &crate::control::HYPERVISOR_SERVICE,
                &tracker.tenant_control,
            )
        } else {
            let controls = VmControls {
                own: tracker.controls.get(&target).map(Vec::as_slice),
                domain: tracker.domain_controls.get(&target),
            };
            relay::decide_vm_call(
                caller,
                self.listener(),
                tracker.repo.virtual_machine(&target),
                &call,
                controls,
                &crate::control::DOMAIN_CONTROL_SERVICE,
                &tracker.tenant_control,
            )
        };
        let source = request.peer.ip();
        let plan = match decided {
            Ok(plan) => plan,
            Err(refusal) => {
                log::info!(
                    "read API: {source} ({}): {} on {target} refused: {} ({})",
                    identity.map_or("-", |i| i.name.as_str()),
                    call.action,
                    refusal.status,
                    refusal.reason
                );
                tracker.audit(Audit {
                    identity,
                    source,
                    target,
                    call: &call,
                    outcome: format!("refused-{}", refusal.status),
                    duration: Duration::ZERO,
                });
                return Answer::Now(refused(&refusal));
            }
        };
        let signer = tracker
            .control_key
            .clone()
            .zip(identity.map(|identity| identity.name.clone()));
        drop(tracker);
        let shared = self.shared.clone();
        let identity = identity.cloned();
        Answer::Later(Box::pin(async move {
            let started = Instant::now();
            let (response, outcome) = forward(&plan.control, &call, signer).await;
            shared.borrow_mut().audit(Audit {
                identity: identity.as_ref(),
                source,
                target,
                call: &call,
                outcome,
                duration: started.elapsed(),
            });
            response
        }))
    }
}

/// Shows the events the repository's writer has made durable, and wakes the long polls
/// waiting for them.
async fn follow_journal(shared: Shared, journal_moved: smol::channel::Receiver<()>) {
    while journal_moved.recv().await.is_ok() {
        let mut tracker = shared.borrow_mut();
        if tracker.repo.catch_up() {
            tracker.journal_waiters.wake_all();
        }
    }
}

/// `/api/events?since=N`: answers at once when there are newer events, else waits for one
/// for at most [`TRACK_API_LONG_POLL`], woken by the journal's next line.
async fn events_long_poll(shared: Shared, since: u64, tenant: Option<String>) -> Response {
    let deadline = Instant::now() + TRACK_API_LONG_POLL;
    loop {
        let appended = {
            let mut tracker = shared.borrow_mut();
            let last = tracker.repo.last_seq();
            if last > since || Instant::now() >= deadline {
                let events = match tracker.repo.events_since(since, TRACK_EVENTS_PAGE) {
                    Ok(events) => events,
                    Err(error) => {
                        log::error!("journal: {error}");
                        return json(500, b"{\"error\":\"journal unreadable\"}".to_vec());
                    }
                };
                let vms = tracker.repo.virtual_machines();
                let own = |subject: &str| {
                    Uuid::parse_str(subject)
                        .ok()
                        .and_then(|vm| vms.get(&vm))
                        .is_some_and(|vm| vm.tenant.is_some() && vm.tenant == tenant)
                };
                let view = tenant.as_deref().map_or(View::Provider, View::Tenant);
                return json(200, api::events(&events, last, view, &own));
            }
            tracker.journal_waiters.listen()
        };
        woken_or(&appended, deadline).await;
    }
}

/// Calls the action of `call` at `control`, signed with the key on behalf of the identity
/// when `signer` is given; answers the relay's JSON and the outcome for the audit.
async fn forward(
    control: &Control,
    call: &RelayCall,
    signer: Option<(ControlKey, String)>,
) -> (Response, String) {
    let arguments: Vec<(&str, &str)> = call
        .arguments
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut envelope = Vec::new();
    soap::write_call(&call.service_type, &call.action, &arguments, &mut envelope);
    let soap_action = soap::soap_action_header(&call.service_type, &call.action);
    let address = SocketAddr::V4(control.address);
    let signature = signer.and_then(|(key, identity)| {
        http_client::signature_header(
            &key,
            &identity,
            address,
            "POST",
            &control.path,
            &soap_action,
            &envelope,
        )
    });
    let mut headers = vec![
        ("CONTENT-TYPE", CONTENT_TYPE_XML),
        ("SOAPACTION", soap_action.as_str()),
    ];
    if let Some(signature) = &signature {
        headers.push((SIGNATURE_HEADER, signature.as_str()));
    }
    // A control action may run a long backend operation (`xl save` of a big guest): wait
    // as long as the longest one, not a read's timeout.
    let limits = Limits {
        timeout: TRACK_RELAY_TIMEOUT,
        max_head: HTTP_MAX_HEAD,
        max_body: crate::consts::HTTP_MAX_BODY,
    };
    let result =
        http_client::request(address, "POST", &control.path, &headers, &envelope, &limits).await;
    let mut writer = crate::wire::json::JsonWriter::new();
    writer.begin_object();
    let (status, outcome) = match result
        .map(|response| soap::parse_response(&response.body, &call.service_type, &call.action))
    {
        Ok(Ok(outputs)) => {
            writer.key("outputs").begin_object();
            for (name, value) in &outputs {
                writer.key(name).string(value);
            }
            writer.end_object();
            (200, "ok".to_string())
        }
        Ok(Err(soap::ResponseError::Fault(error))) => {
            writer.key("error").begin_object();
            writer.key("code").number(u64::from(error.code));
            writer.key("description").string(&error.description);
            writer.end_object();
            (200, format!("upnp-{}", error.code))
        }
        Ok(Err(soap::ResponseError::Malformed(reason))) => {
            writer
                .key("error")
                .begin_object()
                .key("description")
                .string(&reason)
                .end_object();
            (502, "failed".to_string())
        }
        Err(error) => {
            writer
                .key("error")
                .begin_object()
                .key("description")
                .string(&error.to_string())
                .end_object();
            (502, "failed".to_string())
        }
    };
    writer.end_object();
    (json(status, writer.finish().unwrap_or_default()), outcome)
}
