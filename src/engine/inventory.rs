//! Engine layer: the tracker's inventory. Turns the descriptions and GENA events the net layer
//! fetched from the labelled networks into the records the repositories hold and the events
//! the journal gets. State only: time comes in as unix seconds (`now`), nothing here reads a
//! clock, touches a file or a socket; records and events go out as [`Output`]s, which the net
//! layer writes as they are.
//!
//! # Who may claim what
//!
//! - A Hypervisor root device (`urn:xenplug-org:device:Hypervisor:*`) is accepted only from a
//!   provider network. Its embedded Domain devices place VMs on it.
//! - A VirtualMachine root device is accepted only from a tenant network and is filed under
//!   that network's tenant (its label). Its UDN must be `uuid:<its vmUuid>`: a tree whose UDN
//!   and vmUuid disagree is refused with a log line and leaves no record. On a provider
//!   network a VirtualMachine is ignored with a log line: VMs never reach the management
//!   network, so one heard there is misconfigured or fake, and its claims (tenant, services)
//!   would have no tenant to be filed under.
//! - A Hypervisor or Domain device, root or embedded, in a tenant network is a spoof: the whole
//!   tree is refused, `spoof-refused` is journalled once per (network, UDN) until that UDN is
//!   gone (its own byebye or expiry, or its root's), and nothing else about the tree is kept.
//! - Device types are compared without their version (UDA 1.1 section 2.3: a higher version
//!   of a type is backward compatible), so `Hypervisor:2` is accepted, and refused in a tenant
//!   network, like `Hypervisor:1`.
//! - One identity, one source: a hypervisor described in two provider networks, or a VM in two
//!   tenant networks, belongs to the first; the second is logged and kept aside, and is adopted
//!   (as if described anew) when the first leaves.
//!
//! # Records
//!
//! - Hypervisor: `host_uuid` from its UDN, `name` its friendlyName, `addresses` the source of
//!   its last description, `network` its label, `boot_id` the BOOTID.UPNP.ORG given with the
//!   description, `state` `online`. A description carries no host facts beyond modelName, so
//!   the engine sets fact [`FACT_MODEL`] alone (removing it when modelName is empty) and keeps
//!   any other fact already recorded. A hypervisor that leaves (byebye or expiry) is removed:
//!   `hypervisor-removed` and [`Output::RemoveHardware`]; the repository holds what is there.
//! - VM: placed on the hypervisor whose description (an embedded Domain with that vmUuid) or
//!   `VirtualMachineIds` event lists it. Its `name` is the Domain's friendlyName when its
//!   hypervisor gave one (the provider's name wins), else the friendlyName of the VM's own
//!   advertisement, else the name last recorded; a VM known only from a `VirtualMachineIds`
//!   event, before its hypervisor's description is fetched again, has an empty name. Whichever
//!   comes first journals `vm-added` (with `name` when it has one). A later change of the
//!   recorded name to another non-empty one journals `vm-renamed` (`from` the name recorded,
//!   possibly empty, `to` the new one; `network` the hypervisor's network for a Domain's name,
//!   the tenant's for the VM's own), so the name a `VirtualMachineIds` event could not give
//!   reaches the journal when the description does. A name becoming empty (only a
//!   [`Described`] not from the parser, which refuses an empty friendlyName, can bring one) is
//!   recorded but not journalled.
//!   `run_state` comes from the DomainControl `State` events of its hypervisor
//!   ([`RUN_STATE_UNKNOWN`] until one arrives; learning the first state is recorded without a
//!   `vm-state-changed`). `tenant` and `services` come from its own
//!   advertisement. When it stops advertising (byebye or expiry) while a hypervisor still
//!   lists it, it keeps its tenant (a VM that is shut down still belongs to its tenant) but
//!   its services are cleared, with `vm-services-changed` (services 0): nothing answers them
//!   any more. The read API tells whether it advertises now
//!   ([`VirtualMachineView::advertised_in`]).
//! - Services of a VM: every service of its tree (root and embedded devices), once per
//!   serviceType in tree order (a record has no device field, so two devices offering one type
//!   give one entry), with the actions the net layer read from that type's SCPD. A type whose
//!   SCPD could not be fetched keeps the actions recorded before, or none.
//! - A VM is removed (`vm-removed`, [`Output::RemoveVirtual`]) when no hypervisor lists it and
//!   it does not advertise itself.
//!
//! # Placement
//!
//! A VM newly listed by a hypervisor other than its current one (or, when unplaced, than the
//! last one) moves there: `vm-migrated` (from, to). A hypervisor listing a VM it listed before
//! never takes it back, so the source of a migration that still lists the VM for a while does
//! not undo the move. When its hypervisor stops listing it and another one still does, it moves
//! to that one. A VM that advertises itself while no hypervisor lists it for
//! `devirtualize_grace` seconds gets `vm-devirtualized` (once); when a hypervisor lists it again,
//! `vm-revirtualized`.
//!
//! Domain UDNs are name-based on the VM UUID, so during a migration both hypervisors' Domain
//! devices share one UDN and a `State` event cannot be told apart by UDN: it is stored for
//! every hypervisor listing that Domain UDN and applies to the VM if one of them is its current
//! hypervisor. The byebye of an embedded Domain is not acted upon for the same reason: the
//! CONFIGID change that comes with it makes the net layer fetch the description again (DESIGN,
//! device model), and that description says what the hypervisor lists.
//!
//! # Writes
//!
//! A record is put only when it changed. A change of `last_seen` alone is put only once
//! [`INVENTORY_LAST_SEEN_WRITE_INTERVAL`] seconds have passed since the `last_seen` last
//! written: by the call that brings it if it is that late, else by the first
//! [`Inventory::tick`] after that, so the file is at most that far behind. `last_seen` is the time of the last description or event from
//! the device (for a VM: from its hypervisor about it, or its own description).
//!
//! # Restart
//!
//! [`Inventory::restore`] rebuilds the state from the repository without events. Restored
//! hypervisors and VMs are trusted for [`INVENTORY_RESTORE_GRACE`] seconds after the first
//! `now` the engine sees; then a hypervisor not described since is removed, and a VM neither
//! listed by a described hypervisor nor advertising itself is removed, with their events. A
//! restored hypervisor described again with another BOOTID than recorded gets
//! `hypervisor-rebooted`. Until its hypervisor is described again, a restored VM's recorded
//! name stands for its Domain's, so its own advertisement heard first does not rename it back
//! and forth. A restored VM without a hypervisor counts as already de-virtualized:
//! its `vm-devirtualized` is not journalled again (if the grace had not run out when the
//! tracker stopped, that event is lost rather than possibly journalled twice).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use uuid::Uuid;

use crate::consts::{
    FACT_MODEL, HARDWARE_STATE_ONLINE, INVENTORY_LAST_SEEN_WRITE_INTERVAL, INVENTORY_RESTORE_GRACE,
    RUN_STATE_UNKNOWN, UDN_PREFIX, URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR,
    URN_DEVICE_VIRTUAL_MACHINE, URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR, VARIABLE_STATE,
    VARIABLE_VIRTUAL_MACHINE_IDS, VIRTUAL_MACHINE_IDS_SEPARATOR,
};
use crate::repo::journal::{EventDraft, EventKind};
use crate::repo::record::{
    is_valid_name, ActionRecord, HardwareRecord, ServiceRecord, VirtualRecord,
};
use crate::wire::description::{vm_uuid, Described, DescribedDevice};

// Journal detail keys: the engine's part of the journal format.
const DETAIL_FROM: &str = "from";
const DETAIL_TO: &str = "to";
const DETAIL_NAME: &str = "name";
const DETAIL_ADDRESS: &str = "address";
const DETAIL_SOURCE: &str = "source";
const DETAIL_DEVICE_TYPE: &str = "device_type";
const DETAIL_VM_UUID: &str = "vm_uuid";
const DETAIL_HYPERVISOR: &str = "hypervisor";
const DETAIL_TENANT: &str = "tenant";
const DETAIL_BOOT_ID: &str = "boot_id";
const DETAIL_SERVICES: &str = "services";

/// One network the tracker listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The id the net layer names it by (as in [`crate::engine::discovery::Network::id`]).
    pub id: u32,
    /// Its label: the tenant's name for a tenant network.
    pub label: String,
    /// Whether it is a provider (management) network, where hypervisors advertise.
    pub provider: bool,
}

/// What the net layer has to do: write a record as given, remove one, journal an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Write `hardware/<host-uuid>` with this record.
    PutHardware(HardwareRecord),
    /// Remove `hardware/<host-uuid>`.
    RemoveHardware(Uuid),
    /// Write `virtual/<vm-uuid>` (and its tenant slice) with this record.
    PutVirtual(VirtualRecord),
    /// Remove `virtual/<vm-uuid>` (and its tenant slice).
    RemoveVirtual(Uuid),
    /// Append this event to the journal.
    Event(EventDraft),
}

/// A hypervisor as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypervisorView<'a> {
    /// Its record as the engine holds it (`last_seen` may be newer than the file's).
    pub record: &'a HardwareRecord,
    /// UUIDs of the VMs it lists, in UUID order.
    pub virtual_machines: Vec<Uuid>,
    /// Whether it was described since the tracker started (false: restored, not seen yet).
    pub described: bool,
}

/// A VM as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMachineView<'a> {
    /// Its record as the engine holds it (`last_seen` may be newer than the file's).
    pub record: &'a VirtualRecord,
    /// Label of the tenant network it advertises itself in now, if any.
    pub advertised_in: Option<&'a str>,
    /// Hypervisors listing it, in UUID order (two during a migration).
    pub listed_by: Vec<Uuid>,
    /// Whether it is de-virtualized: advertising, unlisted for longer than the grace.
    pub devirtualized: bool,
}

/// A device seen but whose description could not be fetched or read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndescribedView<'a> {
    /// Label of the network it was seen in.
    pub network: &'a str,
    /// Its UDN as the net layer gave it.
    pub udn: &'a str,
    /// Address it advertised from.
    pub source: Ipv4Addr,
    /// Why the description is missing, as the net layer said.
    pub reason: &'a str,
    /// Unix time of the first failure.
    pub first_seen: u64,
    /// Unix time of the latest failure.
    pub last_seen: u64,
}

/// (network id, UDN in lower case): how devices are named across calls.
type Key = (u32, String);

/// What a root device key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claimant {
    Host(Uuid),
    Machine(Uuid),
}

/// One VM as one hypervisor lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Listing {
    /// The Domain's friendlyName, once described.
    name: Option<String>,
    /// Its latest State event.
    state: Option<String>,
}

struct Host {
    record: HardwareRecord,
    /// What was last put (or restored); `None` before the first put.
    written: Option<HardwareRecord>,
    /// The root device it is described from now; `None` while only restored.
    claim: Option<Key>,
    /// Whether it was described since the start (false: restored, not seen yet).
    seen: bool,
    /// The VMs it lists.
    listed: BTreeMap<Uuid, Listing>,
}

struct Machine {
    record: VirtualRecord,
    /// What was last put (or restored); `None` before the first put.
    written: Option<VirtualRecord>,
    /// The root device of its own advertisement, while it advertises.
    claim: Option<Key>,
    /// friendlyName of its own advertisement.
    own_name: Option<String>,
    /// The hypervisor it was last placed on.
    last_host: Option<Uuid>,
    /// Since when it advertises while no hypervisor lists it.
    unplaced_since: Option<u64>,
    /// Whether `vm-devirtualized` was journalled and no hypervisor listed it since.
    devirtualized: bool,
    /// Restored and not confirmed yet: kept until the restore grace ends.
    pending_restore: bool,
}

impl Machine {
    fn new(vm: Uuid, now: u64) -> Machine {
        Machine {
            record: VirtualRecord {
                vm_uuid: vm,
                name: String::new(),
                hypervisor: None,
                run_state: RUN_STATE_UNKNOWN.to_string(),
                tenant: None,
                services: Vec::new(),
                first_seen: now,
                last_seen: now,
            },
            written: None,
            claim: None,
            own_name: None,
            last_host: None,
            unplaced_since: None,
            devirtualized: false,
            pending_restore: false,
        }
    }
}

/// A second description of an identity already claimed elsewhere, kept to be adopted when
/// the first claim leaves.
struct Shadow {
    claimant: Claimant,
    source: Ipv4Addr,
    boot_id: Option<u32>,
    described: Described,
    services: BTreeMap<String, Vec<ActionRecord>>,
}

struct Unfetched {
    udn: String,
    source: Ipv4Addr,
    reason: String,
    first_seen: u64,
    last_seen: u64,
}

/// The arguments of [`Inventory::on_described`], to pass around (and to replay a shadow).
struct Fetch<'a> {
    network: u32,
    source: Ipv4Addr,
    boot_id: Option<u32>,
    rebooted: bool,
    described: &'a Described,
    services: &'a BTreeMap<String, Vec<ActionRecord>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RestoreClock {
    /// Nothing restored, or the grace is over.
    Idle,
    /// Restored; the grace starts at the next `now`.
    Waiting,
    /// Restored records must be confirmed by then.
    Until(u64),
}

/// The tracker's inventory: hypervisors, VMs, refused claims and undescribed devices.
pub struct Inventory {
    networks: Vec<NetworkInfo>,
    devirtualize_grace: u64,
    hosts: BTreeMap<Uuid, Host>,
    machines: BTreeMap<Uuid, Machine>,
    /// Root device -> what it is the current source of.
    claims: BTreeMap<Key, Claimant>,
    /// Embedded Domain device -> (hypervisor -> VM) for every hypervisor describing it.
    domains: BTreeMap<Key, BTreeMap<Uuid, Uuid>>,
    /// Root device -> a description kept aside (see [`Shadow`]).
    shadows: BTreeMap<Key, Shadow>,
    /// Devices whose spoof-refused event was journalled.
    refused: BTreeSet<Key>,
    /// Refused root device -> the refused devices of its tree.
    refused_under: BTreeMap<Key, Vec<Key>>,
    unfetched: BTreeMap<Key, Unfetched>,
    restore: RestoreClock,
}

/// The name devices are known by across calls.
fn key(network: u32, udn: &str) -> Key {
    (network, udn.trim().to_ascii_lowercase())
}

/// The UUID of a `uuid:<uuid>` UDN (prefix compared case-insensitively).
fn udn_uuid(udn: &str) -> Option<Uuid> {
    let udn = udn.trim();
    let prefix = udn.get(..UDN_PREFIX.len())?;
    if !prefix.eq_ignore_ascii_case(UDN_PREFIX) {
        return None;
    }
    Uuid::try_parse(udn.get(UDN_PREFIX.len()..)?).ok()
}

/// Whether type URN `actual` is `known` in any version (`urn:d:device:T:<digits>`).
fn same_type(actual: &str, known: &str) -> bool {
    match (actual.trim().rsplit_once(':'), known.rsplit_once(':')) {
        (Some((name, version)), Some((known_name, _))) => {
            name == known_name
                && !version.is_empty()
                && version.bytes().all(|byte| byte.is_ascii_digit())
        }
        _ => false,
    }
}

/// Whether a device claims to be provider infrastructure.
fn is_infrastructure(device: &DescribedDevice) -> bool {
    same_type(&device.device_type, URN_DEVICE_HYPERVISOR)
        || same_type(&device.device_type, URN_DEVICE_DOMAIN)
}

/// Sets or (for an empty value) removes one host fact, keeping the others in order.
fn set_fact(facts: &mut Vec<(String, String)>, name: &str, value: &str) {
    if value.is_empty() {
        facts.retain(|(known, _)| known != name);
    } else if let Some(entry) = facts.iter_mut().find(|(known, _)| known == name) {
        entry.1 = value.to_string();
    } else {
        facts.push((name.to_string(), value.to_string()));
    }
}

/// The services of a VM tree: one entry per serviceType in tree order, actions from
/// `actions` (by serviceType), else from `previous`, else none.
fn collect_services(
    root: &DescribedDevice,
    actions: &BTreeMap<String, Vec<ActionRecord>>,
    previous: &[ServiceRecord],
) -> Vec<ServiceRecord> {
    let mut services: Vec<ServiceRecord> = Vec::new();
    for device in root.walk() {
        for service in &device.services {
            if services
                .iter()
                .any(|known| known.service_type == service.service_type)
            {
                continue;
            }
            let actions = match actions.get(&service.service_type) {
                Some(actions) => actions.clone(),
                None => {
                    log::debug!(
                        "inventory: no SCPD for {:?} of {:?}; keeping the actions known before",
                        service.service_type,
                        root.udn
                    );
                    previous
                        .iter()
                        .find(|known| known.service_type == service.service_type)
                        .map(|known| known.actions.clone())
                        .unwrap_or_default()
                }
            };
            services.push(ServiceRecord {
                service_type: service.service_type.clone(),
                actions,
            });
        }
    }
    services
}

/// Whether a record must be put at `now`: never put, changed beyond `last_seen`, or its
/// `last_seen` differs from the one put at least [`INVENTORY_LAST_SEEN_WRITE_INTERVAL`]
/// seconds after that one.
fn must_write(written_last_seen: Option<u64>, changed: bool, last_seen: u64, now: u64) -> bool {
    match written_last_seen {
        None => true,
        Some(written) => {
            changed
                || (last_seen != written
                    && now >= written.saturating_add(INVENTORY_LAST_SEEN_WRITE_INTERVAL))
        }
    }
}

/// A repository record with a `last_seen` time (the one field a refresh changes).
trait Seen: Clone + PartialEq {
    fn last_seen(&self) -> u64;
    fn set_last_seen(&mut self, time: u64);
}

impl Seen for HardwareRecord {
    fn last_seen(&self) -> u64 {
        self.last_seen
    }
    fn set_last_seen(&mut self, time: u64) {
        self.last_seen = time;
    }
}

impl Seen for VirtualRecord {
    fn last_seen(&self) -> u64 {
        self.last_seen
    }
    fn set_last_seen(&mut self, time: u64) {
        self.last_seen = time;
    }
}

/// Whether `record` must be put at `now` given what was last `written` (see [`must_write`]);
/// when it must, `written` becomes a copy of it.
fn due_write<R: Seen>(written: &mut Option<R>, record: &R, now: u64) -> bool {
    let changed = written.as_ref().is_some_and(|written| {
        let mut probe = written.clone();
        probe.set_last_seen(record.last_seen());
        probe != *record
    });
    let written_last_seen = written.as_ref().map(Seen::last_seen);
    let due = must_write(written_last_seen, changed, record.last_seen(), now);
    if due {
        *written = Some(record.clone());
    }
    due
}

impl Inventory {
    /// An inventory listening on `networks` (a repeated id is ignored after its first network);
    /// a VM advertising while unlisted becomes de-virtualized after `devirtualize_grace`
    /// seconds.
    pub fn new(networks: Vec<NetworkInfo>, devirtualize_grace: u64) -> Self {
        let mut kept: Vec<NetworkInfo> = Vec::new();
        for network in networks {
            if kept.iter().any(|known| known.id == network.id) {
                log::warn!(
                    "inventory: network id {} given twice; the first is kept",
                    network.id
                );
                continue;
            }
            if !network.provider && !is_valid_name(&network.label) {
                log::error!(
                    "inventory: tenant network label {:?} is not a valid tenant name; VMs advertising there are refused",
                    network.label
                );
            }
            kept.push(network);
        }
        Inventory {
            networks: kept,
            devirtualize_grace,
            hosts: BTreeMap::new(),
            machines: BTreeMap::new(),
            claims: BTreeMap::new(),
            domains: BTreeMap::new(),
            shadows: BTreeMap::new(),
            refused: BTreeSet::new(),
            refused_under: BTreeMap::new(),
            unfetched: BTreeMap::new(),
            restore: RestoreClock::Idle,
        }
    }

    /// Rebuilds the state from the repository at start, before anything is heard; emits
    /// nothing. A VM record naming a hypervisor that has no record is kept unplaced (and put
    /// corrected at its next change). See the module documentation for the grace that follows.
    pub fn restore(
        &mut self,
        hardware: impl IntoIterator<Item = HardwareRecord>,
        virtual_machines: impl IntoIterator<Item = VirtualRecord>,
    ) {
        let mut restored = false;
        for record in hardware {
            restored = true;
            let host = record.host_uuid;
            if let Some(old) = self.hosts.remove(&host) {
                if let Some(claim) = old.claim {
                    self.claims.remove(&claim);
                }
            }
            self.hosts.insert(
                host,
                Host {
                    written: Some(record.clone()),
                    record,
                    claim: None,
                    seen: false,
                    listed: BTreeMap::new(),
                },
            );
        }
        for mut record in virtual_machines {
            restored = true;
            let vm = record.vm_uuid;
            let recorded_host = record.hypervisor;
            let written = Some(record.clone());
            if let Some(host) = recorded_host {
                match self.hosts.get_mut(&host) {
                    Some(host) => {
                        // Until the hypervisor is described again, the name recorded stands
                        // for its Domain's: the VM's own advertisement does not override it.
                        let name = Some(record.name.clone()).filter(|name| !name.is_empty());
                        host.listed.insert(vm, Listing { name, state: None });
                    }
                    None => {
                        log::warn!(
                            "inventory: VM {vm} names hypervisor {host}, which has no record; kept unplaced"
                        );
                        record.hypervisor = None;
                    }
                }
            }
            let devirtualized = record.hypervisor.is_none();
            self.machines.insert(
                vm,
                Machine {
                    record,
                    written,
                    claim: None,
                    own_name: None,
                    last_host: recorded_host,
                    unplaced_since: None,
                    devirtualized,
                    pending_restore: true,
                },
            );
        }
        if restored {
            self.restore = RestoreClock::Waiting;
        }
    }

    /// A root device's description was fetched (first time or after a refetch) on `network`
    /// from `source`, with BOOTID `boot_id`; `rebooted` when the fetch was caused by a BOOTID
    /// change. `services` maps serviceType to the actions read from that service's SCPD, for
    /// a VirtualMachine tree (a service whose SCPD could not be fetched is absent).
    #[allow(clippy::too_many_arguments)] // The net layer's call, one argument per fact it has.
    pub fn on_described(
        &mut self,
        now: u64,
        network: u32,
        source: Ipv4Addr,
        boot_id: Option<u32>,
        rebooted: bool,
        described: &Described,
        services: &BTreeMap<String, Vec<ActionRecord>>,
    ) -> Vec<Output> {
        self.observe(now);
        let mut out = Vec::new();
        let fetch = Fetch {
            network,
            source,
            boot_id,
            rebooted,
            described,
            services,
        };
        self.describe(now, &fetch, &mut out);
        out
    }

    /// A description could not be fetched or read: the device is reported by
    /// [`Inventory::undescribed`] until it is described or gone. What is recorded about it
    /// (if it was described before) stays as it is.
    pub fn on_undescribed(
        &mut self,
        now: u64,
        network: u32,
        udn: &str,
        source: Ipv4Addr,
        reason: &str,
    ) -> Vec<Output> {
        self.observe(now);
        let Some(label) = self.label(network) else {
            log::debug!("inventory: undescribed {udn:?} on unknown network {network} ignored");
            return Vec::new();
        };
        log::warn!("inventory: {udn:?} in {label} at {source} has no usable description: {reason}");
        let entry = self
            .unfetched
            .entry(key(network, udn))
            .or_insert_with(|| Unfetched {
                udn: udn.to_string(),
                source,
                reason: String::new(),
                first_seen: now,
                last_seen: now,
            });
        entry.source = source;
        entry.reason = reason.to_string();
        entry.last_seen = now;
        Vec::new()
    }

    /// Device `udn` of `network` left (byebye or expiry). For a root device, what it
    /// claimed goes; an embedded Domain's departure waits for its hypervisor's next
    /// description (see the module documentation).
    pub fn on_gone(&mut self, now: u64, network: u32, udn: &str) -> Vec<Output> {
        self.observe(now);
        let gone = key(network, udn);
        self.unfetched.remove(&gone);
        self.refused.remove(&gone);
        if let Some(keys) = self.refused_under.remove(&gone) {
            for refused in keys {
                self.refused.remove(&refused);
            }
        }
        let mut out = Vec::new();
        self.release(now, &gone, &mut out);
        out
    }

    /// A GENA event from device `udn` of `network` (the device owning the service, root or
    /// embedded), service type `service_type`, with the property set `variables`. Events from
    /// devices this engine did not accept are ignored.
    pub fn on_event(
        &mut self,
        now: u64,
        network: u32,
        udn: &str,
        service_type: &str,
        variables: &[(String, String)],
    ) -> Vec<Output> {
        self.observe(now);
        let mut out = Vec::new();
        let device = key(network, udn);
        if let Some(Claimant::Host(host)) = self.claims.get(&device).copied() {
            if same_type(service_type, URN_SERVICE_HYPERVISOR) {
                self.on_hypervisor_event(now, host, variables, &mut out);
                return out;
            }
        }
        if same_type(service_type, URN_SERVICE_DOMAIN_CONTROL) {
            if let Some(placements) = self.domains.get(&device).cloned() {
                self.on_domain_event(now, &placements, variables, &mut out);
                return out;
            }
        }
        log::trace!(
            "inventory: event of {service_type:?} from {udn:?} on network {network} ignored"
        );
        out
    }

    /// Runs the grace periods: restored records not confirmed, VMs to de-virtualize,
    /// `last_seen` changes waiting to be put. Call it every second or so, or at
    /// [`Inventory::poll_at`].
    pub fn tick(&mut self, now: u64) -> Vec<Output> {
        self.observe(now);
        let mut out = Vec::new();
        if let RestoreClock::Until(deadline) = self.restore {
            if now >= deadline {
                self.restore = RestoreClock::Idle;
                self.end_restore(now, &mut out);
            }
        }
        let grace = self.devirtualize_grace;
        let mut devirtualized = Vec::new();
        for (vm, machine) in &mut self.machines {
            let Some(since) = machine.unplaced_since else {
                continue;
            };
            if machine.devirtualized
                || machine.record.hypervisor.is_some()
                || now < since.saturating_add(grace)
            {
                continue;
            }
            let Some(claim) = &machine.claim else {
                continue;
            };
            machine.devirtualized = true;
            devirtualized.push((*vm, claim.0, machine.record.tenant.clone()));
        }
        for (vm, network, tenant) in devirtualized {
            log::info!("inventory: VM {vm} advertises but no hypervisor lists it: de-virtualized");
            let mut draft = self.draft(EventKind::VmDevirtualized, vm.to_string(), network);
            if let Some(tenant) = tenant {
                draft = draft.detail(DETAIL_TENANT, tenant);
            }
            out.push(Output::Event(draft));
        }
        let hosts: Vec<Uuid> = self
            .hosts
            .iter()
            .filter(|(_, host)| {
                host.written
                    .as_ref()
                    .is_some_and(|written| written.last_seen != host.record.last_seen)
            })
            .map(|(id, _)| *id)
            .collect();
        for host in hosts {
            self.commit_host(now, host, &mut out);
        }
        let machines: Vec<Uuid> = self
            .machines
            .iter()
            .filter(|(_, machine)| {
                machine
                    .written
                    .as_ref()
                    .is_some_and(|written| written.last_seen != machine.record.last_seen)
            })
            .map(|(id, _)| *id)
            .collect();
        for vm in machines {
            self.commit_machine(now, vm, &mut out);
        }
        out
    }

    /// When [`Inventory::tick`] has something to do next, if ever (unix seconds); `None` also
    /// while a restore waits for its first `now`.
    pub fn poll_at(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |at: u64| next = Some(next.map_or(at, |known| known.min(at)));
        if let RestoreClock::Until(deadline) = self.restore {
            consider(deadline);
        }
        for machine in self.machines.values() {
            if let (Some(since), false, Some(_), None) = (
                machine.unplaced_since,
                machine.devirtualized,
                &machine.claim,
                machine.record.hypervisor,
            ) {
                consider(since.saturating_add(self.devirtualize_grace));
            }
            if let Some(written) = &machine.written {
                if written.last_seen != machine.record.last_seen {
                    consider(
                        written
                            .last_seen
                            .saturating_add(INVENTORY_LAST_SEEN_WRITE_INTERVAL),
                    );
                }
            }
        }
        for host in self.hosts.values() {
            if let Some(written) = &host.written {
                if written.last_seen != host.record.last_seen {
                    consider(
                        written
                            .last_seen
                            .saturating_add(INVENTORY_LAST_SEEN_WRITE_INTERVAL),
                    );
                }
            }
        }
        next
    }

    /// Every hypervisor, in host UUID order.
    pub fn hypervisors(&self) -> Vec<HypervisorView<'_>> {
        self.hosts.values().map(host_view).collect()
    }

    /// One hypervisor.
    pub fn hypervisor(&self, host: &Uuid) -> Option<HypervisorView<'_>> {
        self.hosts.get(host).map(host_view)
    }

    /// Every VM, in VM UUID order.
    pub fn virtual_machines(&self) -> Vec<VirtualMachineView<'_>> {
        self.machines
            .values()
            .map(|machine| self.machine_view(machine))
            .collect()
    }

    /// One VM.
    pub fn virtual_machine(&self, vm: &Uuid) -> Option<VirtualMachineView<'_>> {
        self.machines
            .get(vm)
            .map(|machine| self.machine_view(machine))
    }

    /// Devices seen whose description could not be had, by network and UDN.
    pub fn undescribed(&self) -> Vec<UndescribedView<'_>> {
        self.unfetched
            .iter()
            .map(|((network, _), entry)| UndescribedView {
                network: self.label(*network).unwrap_or_default(),
                udn: &entry.udn,
                source: entry.source,
                reason: &entry.reason,
                first_seen: entry.first_seen,
                last_seen: entry.last_seen,
            })
            .collect()
    }

    fn machine_view<'a>(&'a self, machine: &'a Machine) -> VirtualMachineView<'a> {
        let vm = machine.record.vm_uuid;
        VirtualMachineView {
            record: &machine.record,
            advertised_in: machine
                .claim
                .as_ref()
                .and_then(|(network, _)| self.label(*network)),
            listed_by: self
                .hosts
                .iter()
                .filter(|(_, host)| host.listed.contains_key(&vm))
                .map(|(id, _)| *id)
                .collect(),
            devirtualized: machine.devirtualized,
        }
    }

    fn label(&self, network: u32) -> Option<&str> {
        self.networks
            .iter()
            .find(|known| known.id == network)
            .map(|known| known.label.as_str())
    }

    /// An event draft with the label of `network` when it is known.
    fn draft(&self, kind: EventKind, subject: String, network: u32) -> EventDraft {
        let draft = EventDraft::new(kind, subject);
        match self.label(network) {
            Some(label) => draft.network(label),
            None => draft,
        }
    }

    /// Starts the restore grace at the first `now` after a restore.
    fn observe(&mut self, now: u64) {
        if self.restore == RestoreClock::Waiting {
            self.restore = RestoreClock::Until(now.saturating_add(INVENTORY_RESTORE_GRACE));
        }
    }

    fn describe(&mut self, now: u64, fetch: &Fetch<'_>, out: &mut Vec<Output>) {
        let Some(network) = self
            .networks
            .iter()
            .find(|known| known.id == fetch.network)
            .cloned()
        else {
            log::debug!(
                "inventory: description from {} on unknown network {} ignored",
                fetch.source,
                fetch.network
            );
            return;
        };
        let root = &fetch.described.root;
        let root_key = key(network.id, &root.udn);
        let tree = root.walk();
        for device in &tree {
            self.unfetched.remove(&key(network.id, &device.udn));
        }
        if !network.provider {
            let claims: Vec<&DescribedDevice> = tree
                .iter()
                .copied()
                .filter(|device| is_infrastructure(device))
                .collect();
            if !claims.is_empty() {
                self.refuse(now, &network, &root_key, fetch.source, &claims, out);
                return;
            }
            if let Some(keys) = self.refused_under.remove(&root_key) {
                for refused in keys {
                    self.refused.remove(&refused);
                }
            }
            if same_type(&root.device_type, URN_DEVICE_VIRTUAL_MACHINE) {
                self.machine_described(now, &network, root_key, fetch, out);
                return;
            }
        } else if same_type(&root.device_type, URN_DEVICE_HYPERVISOR) {
            self.host_described(now, &network, root_key, fetch, out);
            return;
        } else if same_type(&root.device_type, URN_DEVICE_VIRTUAL_MACHINE) {
            log::info!(
                "inventory: VirtualMachine {:?} at {} in provider network {} ignored: VMs are filed from tenant networks only",
                root.udn,
                fetch.source,
                network.label
            );
        }
        log::debug!(
            "inventory: {:?} ({:?}) in {} is nothing the tracker files",
            root.udn,
            root.device_type,
            network.label
        );
        self.release(now, &root_key, out);
    }

    /// Refuses a tenant network tree holding infrastructure devices (`claims`).
    fn refuse(
        &mut self,
        now: u64,
        network: &NetworkInfo,
        root_key: &Key,
        source: Ipv4Addr,
        claims: &[&DescribedDevice],
        out: &mut Vec<Output>,
    ) {
        self.release(now, root_key, out);
        let mut keys = Vec::new();
        for device in claims {
            let device_key = key(network.id, &device.udn);
            if self.refused.insert(device_key.clone()) {
                log::warn!(
                    "inventory: {:?} claims to be {:?} in tenant network {} (from {source}): refused",
                    device.udn,
                    device.device_type,
                    network.label
                );
                let udn = device.udn.trim();
                let subject = match udn.get(..UDN_PREFIX.len()) {
                    Some(prefix) if prefix.eq_ignore_ascii_case(UDN_PREFIX) => {
                        udn.get(UDN_PREFIX.len()..).unwrap_or(udn)
                    }
                    _ => udn,
                };
                let mut draft = EventDraft::new(EventKind::SpoofRefused, subject)
                    .network(network.label.as_str())
                    .detail(DETAIL_SOURCE, source.to_string())
                    .detail(DETAIL_DEVICE_TYPE, device.device_type.as_str());
                if let Some(vm) = &device.vm_uuid {
                    draft = draft.detail(DETAIL_VM_UUID, vm.as_str());
                }
                out.push(Output::Event(draft));
            }
            keys.push(device_key);
        }
        let under = self.refused_under.entry(root_key.clone()).or_default();
        for refused in keys {
            if !under.contains(&refused) {
                under.push(refused);
            }
        }
    }

    /// Drops whatever root device `key` was the source of (as when it leaves).
    fn release(&mut self, now: u64, key: &Key, out: &mut Vec<Output>) {
        self.shadows.remove(key);
        match self.claims.remove(key) {
            Some(Claimant::Host(host)) => self.host_left(now, host, out),
            Some(Claimant::Machine(vm)) => self.machine_left(now, vm, out),
            None => {}
        }
    }

    /// The key of a kept-aside description of `claimant`, if any.
    fn shadow_of(&self, claimant: Claimant) -> Option<Key> {
        self.shadows
            .iter()
            .find(|(_, shadow)| shadow.claimant == claimant)
            .map(|(key, _)| key.clone())
    }

    /// Adopts a kept-aside description of `claimant`; false when there is none.
    fn adopt_shadow(&mut self, now: u64, claimant: Claimant, out: &mut Vec<Output>) -> bool {
        let Some(shadow_key) = self.shadow_of(claimant) else {
            return false;
        };
        let Some(shadow) = self.shadows.remove(&shadow_key) else {
            return false;
        };
        log::info!(
            "inventory: {:?} in network {} adopted: its first source left",
            shadow.described.root.udn,
            shadow_key.0
        );
        let fetch = Fetch {
            network: shadow_key.0,
            source: shadow.source,
            boot_id: shadow.boot_id,
            rebooted: false,
            described: &shadow.described,
            services: &shadow.services,
        };
        self.describe(now, &fetch, out);
        true
    }

    fn keep_aside(&mut self, claimant: Claimant, root_key: Key, fetch: &Fetch<'_>) {
        self.shadows.insert(
            root_key,
            Shadow {
                claimant,
                source: fetch.source,
                boot_id: fetch.boot_id,
                described: fetch.described.clone(),
                services: fetch.services.clone(),
            },
        );
    }

    fn host_left(&mut self, now: u64, host: Uuid, out: &mut Vec<Output>) {
        match self.hosts.get_mut(&host) {
            Some(known) => known.claim = None,
            None => return,
        }
        self.adopt_shadow(now, Claimant::Host(host), out);
        if self
            .hosts
            .get(&host)
            .is_some_and(|known| known.claim.is_none())
        {
            self.remove_host(now, host, out);
        }
    }

    fn machine_left(&mut self, now: u64, vm: Uuid, out: &mut Vec<Output>) {
        let Some(machine) = self.machines.get_mut(&vm) else {
            return;
        };
        machine.claim = None;
        // Its owner's services went with its advertisement: a VM a hypervisor still lists
        // stays, offering nothing until it advertises again.
        if !machine.record.services.is_empty() {
            log::info!("inventory: VM {vm} stopped advertising its services");
            let mut event = EventDraft::new(EventKind::VmServicesChanged, vm.to_string())
                .detail(DETAIL_SERVICES, "0");
            if let Some(tenant) = &machine.record.tenant {
                event = event.network(tenant.as_str());
            }
            out.push(Output::Event(event));
            machine.record.services.clear();
        }
        // Settled either way: an adopted description that fails to claim the VM leaves it
        // without an advertisement.
        self.adopt_shadow(now, Claimant::Machine(vm), out);
        self.finish(now, &BTreeSet::from([vm]), out);
    }

    fn remove_host(&mut self, now: u64, id: Uuid, out: &mut Vec<Output>) {
        let Some(host) = self.hosts.remove(&id) else {
            return;
        };
        if let Some(claim) = &host.claim {
            self.claims.remove(claim);
        }
        self.forget_domains(id);
        log::info!(
            "inventory: hypervisor {id} ({:?}) removed",
            host.record.name
        );
        out.push(Output::Event(
            EventDraft::new(EventKind::HypervisorRemoved, id.to_string())
                .network(host.record.network.as_str())
                .detail(DETAIL_NAME, host.record.name.as_str()),
        ));
        if host.written.is_some() {
            out.push(Output::RemoveHardware(id));
        }
        let mut touched = BTreeSet::new();
        for vm in host.listed.keys() {
            self.unplace(id, *vm, &mut touched, out);
        }
        self.finish(now, &touched, out);
    }

    /// Forgets the Domain devices of hypervisor `id`.
    fn forget_domains(&mut self, id: Uuid) {
        self.domains.retain(|_, hosts| {
            hosts.remove(&id);
            !hosts.is_empty()
        });
    }

    fn host_described(
        &mut self,
        now: u64,
        network: &NetworkInfo,
        root_key: Key,
        fetch: &Fetch<'_>,
        out: &mut Vec<Output>,
    ) {
        let root = &fetch.described.root;
        let Some(id) = udn_uuid(&root.udn) else {
            log::warn!(
                "inventory: hypervisor UDN {:?} at {} is not uuid:<UUID>; refused",
                root.udn,
                fetch.source
            );
            self.release(now, &root_key, out);
            return;
        };
        if let Some(claim) = self.hosts.get(&id).and_then(|host| host.claim.as_ref()) {
            if *claim != root_key {
                log::warn!(
                    "inventory: hypervisor {id} is also described in {} from {}; kept aside while network {} is its source",
                    network.label,
                    fetch.source,
                    claim.0
                );
                self.keep_aside(Claimant::Host(id), root_key, fetch);
                return;
            }
        }
        self.shadows.remove(&root_key);
        let mut listed: Vec<(Uuid, Key, String)> = Vec::new();
        for device in root.walk().into_iter().skip(1) {
            if !same_type(&device.device_type, URN_DEVICE_DOMAIN) {
                continue;
            }
            match vm_uuid(device) {
                Some(vm) if listed.iter().all(|(known, ..)| *known != vm) => listed.push((
                    vm,
                    key(network.id, &device.udn),
                    device.friendly_name.clone(),
                )),
                Some(vm) => log::warn!("inventory: hypervisor {id} lists VM {vm} twice"),
                None => log::warn!(
                    "inventory: Domain {:?} of hypervisor {id} has no usable vmUuid; skipped",
                    device.udn
                ),
            }
        }
        let address = fetch.source.to_string();
        let known = self
            .hosts
            .get(&id)
            .map(|host| (host.seen, host.record.boot_id));
        let host = self.hosts.entry(id).or_insert_with(|| Host {
            record: HardwareRecord {
                host_uuid: id,
                name: String::new(),
                addresses: Vec::new(),
                network: String::new(),
                boot_id: None,
                facts: Vec::new(),
                first_seen: now,
                last_seen: now,
                state: String::new(),
            },
            written: None,
            claim: None,
            seen: false,
            listed: BTreeMap::new(),
        });
        host.record.name = root.friendly_name.clone();
        host.record.addresses = vec![address.clone()];
        host.record.network = network.label.clone();
        host.record.boot_id = fetch.boot_id;
        set_fact(&mut host.record.facts, FACT_MODEL, &root.model_name);
        host.record.last_seen = now;
        host.record.state = HARDWARE_STATE_ONLINE.to_string();
        host.claim = Some(root_key.clone());
        host.seen = true;
        let name = host.record.name.clone();
        let previous: Vec<Uuid> = host.listed.keys().copied().collect();
        self.claims.insert(root_key, Claimant::Host(id));
        match known {
            None => {
                log::info!("inventory: hypervisor {id} ({name:?}) added from {address}");
                let mut draft = EventDraft::new(EventKind::HypervisorAdded, id.to_string())
                    .network(network.label.as_str())
                    .detail(DETAIL_NAME, name)
                    .detail(DETAIL_ADDRESS, address);
                if let Some(boot_id) = fetch.boot_id {
                    draft = draft.detail(DETAIL_BOOT_ID, boot_id.to_string());
                }
                out.push(Output::Event(draft));
            }
            Some((seen, recorded_boot_id)) => {
                let missed = !seen
                    && matches!((recorded_boot_id, fetch.boot_id), (Some(old), Some(new)) if old != new);
                if fetch.rebooted || missed {
                    log::info!("inventory: hypervisor {id} ({name:?}) rebooted");
                    let mut draft = EventDraft::new(EventKind::HypervisorRebooted, id.to_string())
                        .network(network.label.as_str());
                    if let Some(boot_id) = fetch.boot_id {
                        draft = draft.detail(DETAIL_BOOT_ID, boot_id.to_string());
                    }
                    out.push(Output::Event(draft));
                }
            }
        }
        self.forget_domains(id);
        for (vm, domain, _) in &listed {
            self.domains
                .entry(domain.clone())
                .or_default()
                .insert(id, *vm);
        }
        let mut touched = BTreeSet::new();
        for vm in previous {
            if listed.iter().all(|(known, ..)| *known != vm) {
                self.unlist(id, vm, &mut touched, out);
            }
        }
        for (vm, _, name) in listed {
            self.list(now, id, vm, Some(name), &mut touched, out);
        }
        self.commit_host(now, id, out);
        self.finish(now, &touched, out);
    }

    fn machine_described(
        &mut self,
        now: u64,
        network: &NetworkInfo,
        root_key: Key,
        fetch: &Fetch<'_>,
        out: &mut Vec<Output>,
    ) {
        let root = &fetch.described.root;
        let vm = match (udn_uuid(&root.udn), vm_uuid(root)) {
            (Some(udn), Some(claimed)) if udn == claimed => udn,
            _ => {
                log::warn!(
                    "inventory: VirtualMachine {:?} at {} in {} claims vmUuid {:?}: UDN and vmUuid must agree; refused",
                    root.udn,
                    fetch.source,
                    network.label,
                    root.vm_uuid
                );
                self.release(now, &root_key, out);
                return;
            }
        };
        if !is_valid_name(&network.label) {
            log::warn!(
                "inventory: VM {vm} in network {:?}, whose label is no tenant name: refused",
                network.label
            );
            self.release(now, &root_key, out);
            return;
        }
        if let Some(claim) = self
            .machines
            .get(&vm)
            .and_then(|machine| machine.claim.as_ref())
        {
            if *claim != root_key {
                log::warn!(
                    "inventory: VM {vm} also advertises in {} from {}; ignored while network {} is its source",
                    network.label,
                    fetch.source,
                    claim.0
                );
                self.keep_aside(Claimant::Machine(vm), root_key, fetch);
                return;
            }
        }
        self.shadows.remove(&root_key);
        let tenant = network.label.clone();
        let name = root.friendly_name.clone();
        match self.machines.get_mut(&vm) {
            None => {
                let mut machine = Machine::new(vm, now);
                machine.record.services = collect_services(root, fetch.services, &[]);
                machine.record.tenant = Some(tenant.clone());
                machine.record.name = name.clone();
                machine.own_name = Some(name.clone());
                machine.claim = Some(root_key.clone());
                self.machines.insert(vm, machine);
                log::info!("inventory: VM {vm} ({name:?}) added from tenant {tenant}");
                out.push(Output::Event(
                    EventDraft::new(EventKind::VmAdded, vm.to_string())
                        .network(tenant.as_str())
                        .detail(DETAIL_NAME, name)
                        .detail(DETAIL_TENANT, tenant.as_str()),
                ));
            }
            Some(machine) => {
                let services = collect_services(root, fetch.services, &machine.record.services);
                if machine.record.tenant.as_deref() != Some(tenant.as_str()) {
                    if let Some(old) = &machine.record.tenant {
                        log::info!("inventory: VM {vm} now advertises in {tenant}, was {old}");
                    }
                    machine.record.tenant = Some(tenant.clone());
                }
                if machine.record.services != services {
                    log::info!("inventory: VM {vm} now offers {} services", services.len());
                    out.push(Output::Event(
                        EventDraft::new(EventKind::VmServicesChanged, vm.to_string())
                            .network(tenant.as_str())
                            .detail(DETAIL_SERVICES, services.len().to_string()),
                    ));
                    machine.record.services = services;
                }
                machine.own_name = Some(name);
                machine.claim = Some(root_key.clone());
                machine.pending_restore = false;
                machine.record.last_seen = now;
            }
        }
        self.claims.insert(root_key, Claimant::Machine(vm));
        self.finish(now, &BTreeSet::from([vm]), out);
    }

    fn on_hypervisor_event(
        &mut self,
        now: u64,
        id: Uuid,
        variables: &[(String, String)],
        out: &mut Vec<Output>,
    ) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        host.record.last_seen = now;
        let mut touched = BTreeSet::new();
        for (name, value) in variables {
            if name != VARIABLE_VIRTUAL_MACHINE_IDS {
                continue;
            }
            let mut listed: Vec<Uuid> = Vec::new();
            for text in value.split(VIRTUAL_MACHINE_IDS_SEPARATOR) {
                let text = text.trim();
                if text.is_empty() {
                    continue;
                }
                match Uuid::try_parse(text) {
                    Ok(vm) if !listed.contains(&vm) => listed.push(vm),
                    Ok(_) => {}
                    Err(_) => log::warn!(
                        "inventory: hypervisor {id} sent {text:?} in {VARIABLE_VIRTUAL_MACHINE_IDS}, not a UUID; skipped"
                    ),
                }
            }
            let previous: Vec<Uuid> = self
                .hosts
                .get(&id)
                .map(|host| host.listed.keys().copied().collect())
                .unwrap_or_default();
            for vm in previous {
                if !listed.contains(&vm) {
                    self.unlist(id, vm, &mut touched, out);
                }
            }
            for vm in listed {
                self.list(now, id, vm, None, &mut touched, out);
            }
        }
        self.commit_host(now, id, out);
        self.finish(now, &touched, out);
    }

    fn on_domain_event(
        &mut self,
        now: u64,
        placements: &BTreeMap<Uuid, Uuid>,
        variables: &[(String, String)],
        out: &mut Vec<Output>,
    ) {
        let Some(state) = variables
            .iter()
            .rev()
            .find(|(name, _)| name == VARIABLE_STATE)
            .map(|(_, value)| value.trim().to_string())
        else {
            return;
        };
        let mut touched = BTreeSet::new();
        for (host, vm) in placements {
            let Some(known) = self.hosts.get_mut(host) else {
                continue;
            };
            known.record.last_seen = now;
            let label = known.record.network.clone();
            let Some(listing) = known.listed.get_mut(vm) else {
                continue;
            };
            listing.state = Some(state.clone());
            let Some(machine) = self.machines.get_mut(vm) else {
                continue;
            };
            if machine.record.hypervisor == Some(*host) {
                machine.record.last_seen = now;
                set_run_state(machine, &state, &label, out);
                touched.insert(*vm);
            }
        }
        for host in placements.keys() {
            self.commit_host(now, *host, out);
        }
        self.finish(now, &touched, out);
    }

    /// Hypervisor `host` lists `vm` (with the Domain's friendlyName when described).
    fn list(
        &mut self,
        now: u64,
        host: Uuid,
        vm: Uuid,
        name: Option<String>,
        touched: &mut BTreeSet<Uuid>,
        out: &mut Vec<Output>,
    ) {
        let Some(known) = self.hosts.get_mut(&host) else {
            return;
        };
        let label = known.record.network.clone();
        let newly = !known.listed.contains_key(&vm);
        let listing = known.listed.entry(vm).or_default();
        if name.is_some() {
            listing.name = name.clone();
        }
        touched.insert(vm);
        let Some(machine) = self.machines.get_mut(&vm) else {
            let mut machine = Machine::new(vm, now);
            machine.record.hypervisor = Some(host);
            machine.record.name = name.clone().unwrap_or_default();
            machine.last_host = Some(host);
            self.machines.insert(vm, machine);
            log::info!("inventory: VM {vm} added on hypervisor {host}");
            let mut draft = EventDraft::new(EventKind::VmAdded, vm.to_string())
                .network(label)
                .detail(DETAIL_HYPERVISOR, host.to_string());
            if let Some(name) = name {
                draft = draft.detail(DETAIL_NAME, name);
            }
            out.push(Output::Event(draft));
            return;
        };
        machine.record.last_seen = now;
        machine.pending_restore = false;
        if newly || machine.record.hypervisor.is_none() {
            self.place(vm, host, out);
        }
    }

    /// Hypervisor `host` no longer lists `vm`.
    fn unlist(
        &mut self,
        host: Uuid,
        vm: Uuid,
        touched: &mut BTreeSet<Uuid>,
        out: &mut Vec<Output>,
    ) {
        if let Some(known) = self.hosts.get_mut(&host) {
            known.listed.remove(&vm);
        }
        self.unplace(host, vm, touched, out);
    }

    /// `vm` lost its listing by `host` (already taken out): it moves to another hypervisor
    /// listing it, or is left unplaced.
    fn unplace(
        &mut self,
        host: Uuid,
        vm: Uuid,
        touched: &mut BTreeSet<Uuid>,
        out: &mut Vec<Output>,
    ) {
        let Some(machine) = self.machines.get_mut(&vm) else {
            return;
        };
        touched.insert(vm);
        if machine.record.hypervisor != Some(host) {
            return;
        }
        machine.record.hypervisor = None;
        let next = self
            .hosts
            .iter()
            .find(|(id, known)| **id != host && known.listed.contains_key(&vm))
            .map(|(id, _)| *id);
        match next {
            Some(to) => self.place(vm, to, out),
            None => log::info!("inventory: VM {vm} no longer listed by hypervisor {host}"),
        }
    }

    /// Places `vm` on `to`, with the events that says.
    fn place(&mut self, vm: Uuid, to: Uuid, out: &mut Vec<Output>) {
        let Some(host) = self.hosts.get(&to) else {
            return;
        };
        let label = host.record.network.clone();
        let state = host
            .listed
            .get(&vm)
            .and_then(|listing| listing.state.clone());
        let Some(machine) = self.machines.get_mut(&vm) else {
            return;
        };
        let from = machine.record.hypervisor.or(machine.last_host);
        machine.record.hypervisor = Some(to);
        machine.last_host = Some(to);
        machine.unplaced_since = None;
        if machine.devirtualized {
            machine.devirtualized = false;
            log::info!("inventory: VM {vm} listed by hypervisor {to} again: re-virtualized");
            let mut draft = EventDraft::new(EventKind::VmRevirtualized, vm.to_string())
                .network(label.as_str())
                .detail(DETAIL_HYPERVISOR, to.to_string());
            if let Some(from) = from.filter(|from| *from != to) {
                draft = draft.detail(DETAIL_FROM, from.to_string());
            }
            out.push(Output::Event(draft));
        } else if let Some(from) = from.filter(|from| *from != to) {
            log::info!("inventory: VM {vm} migrated from hypervisor {from} to {to}");
            out.push(Output::Event(
                EventDraft::new(EventKind::VmMigrated, vm.to_string())
                    .network(label.as_str())
                    .detail(DETAIL_FROM, from.to_string())
                    .detail(DETAIL_TO, to.to_string()),
            ));
        }
        if let Some(state) = state {
            set_run_state(machine, &state, &label, out);
        }
    }

    /// Settles the VMs `touched`: removes those nothing vouches for any more, starts the
    /// de-virtualization clock of the unplaced, refreshes names, puts what changed.
    fn finish(&mut self, now: u64, touched: &BTreeSet<Uuid>, out: &mut Vec<Output>) {
        for vm in touched {
            // The Domain's name, with the label of the network its hypervisor is in.
            let listed = self
                .machines
                .get(vm)
                .and_then(|machine| machine.record.hypervisor)
                .and_then(|host| self.hosts.get(&host))
                .and_then(|host| {
                    let name = host.listed.get(vm)?.name.clone()?;
                    Some((name, Some(host.record.network.clone())))
                });
            // The network the VM advertises itself in.
            let own_label = self
                .machines
                .get(vm)
                .and_then(|machine| machine.claim.as_ref())
                .and_then(|claim| self.label(claim.0))
                .map(str::to_string);
            let Some(machine) = self.machines.get_mut(vm) else {
                continue;
            };
            let placed = machine.record.hypervisor.is_some();
            if !placed && machine.claim.is_none() && !machine.pending_restore {
                let written = machine.written.is_some();
                let name = machine.record.name.clone();
                self.machines.remove(vm);
                log::info!("inventory: VM {vm} ({name:?}) removed");
                out.push(Output::Event(
                    EventDraft::new(EventKind::VmRemoved, vm.to_string()).detail(DETAIL_NAME, name),
                ));
                if written {
                    out.push(Output::RemoveVirtual(*vm));
                }
                continue;
            }
            if placed {
                machine.unplaced_since = None;
            } else if machine.claim.is_some() && machine.unplaced_since.is_none() {
                machine.unplaced_since = Some(now);
            }
            let named = listed.or_else(|| {
                machine
                    .own_name
                    .clone()
                    .map(|name| (name, own_label.or_else(|| machine.record.tenant.clone())))
            });
            if let Some((name, label)) = named {
                rename(machine, name, label, out);
            }
            self.commit_machine(now, *vm, out);
        }
    }

    /// Puts the hypervisor record if it must be written.
    fn commit_host(&mut self, now: u64, id: Uuid, out: &mut Vec<Output>) {
        if let Some(host) = self.hosts.get_mut(&id) {
            if due_write(&mut host.written, &host.record, now) {
                out.push(Output::PutHardware(host.record.clone()));
            }
        }
    }

    /// Puts the VM record if it must be written.
    fn commit_machine(&mut self, now: u64, vm: Uuid, out: &mut Vec<Output>) {
        if let Some(machine) = self.machines.get_mut(&vm) {
            if due_write(&mut machine.written, &machine.record, now) {
                out.push(Output::PutVirtual(machine.record.clone()));
            }
        }
    }

    /// The restore grace is over: what was not confirmed goes.
    fn end_restore(&mut self, now: u64, out: &mut Vec<Output>) {
        let stale: Vec<Uuid> = self
            .hosts
            .iter()
            .filter(|(_, host)| host.claim.is_none())
            .map(|(id, _)| *id)
            .collect();
        for host in stale {
            log::info!("inventory: hypervisor {host} not seen since the restart");
            self.remove_host(now, host, out);
        }
        let mut touched = BTreeSet::new();
        for (vm, machine) in &mut self.machines {
            if machine.pending_restore {
                machine.pending_restore = false;
                touched.insert(*vm);
            }
        }
        self.finish(now, &touched, out);
    }
}

/// Records `name` as the name of `machine` (known to the journal since its `vm-added`), with
/// `vm-renamed` when it differs from the one recorded and is not empty (an empty name is
/// recorded as the code always did, but there is nothing to follow in the journal).
fn rename(machine: &mut Machine, name: String, label: Option<String>, out: &mut Vec<Output>) {
    if name == machine.record.name {
        return;
    }
    let from = std::mem::replace(&mut machine.record.name, name);
    let to = machine.record.name.as_str();
    if to.is_empty() {
        log::info!(
            "inventory: VM {} lost its name {from:?}",
            machine.record.vm_uuid
        );
        return;
    }
    log::info!(
        "inventory: VM {} renamed from {from:?} to {to:?}",
        machine.record.vm_uuid
    );
    let mut draft = EventDraft::new(EventKind::VmRenamed, machine.record.vm_uuid.to_string());
    if let Some(label) = label {
        draft = draft.network(label);
    }
    out.push(Output::Event(
        draft.detail(DETAIL_FROM, from).detail(DETAIL_TO, to),
    ));
}

fn host_view(host: &Host) -> HypervisorView<'_> {
    HypervisorView {
        record: &host.record,
        virtual_machines: host.listed.keys().copied().collect(),
        described: host.claim.is_some(),
    }
}

/// Sets a VM's run state, journalling a change. Learning the state of a VM whose state was
/// unknown (the initial GENA event after a subscription) is recorded but is no change.
fn set_run_state(machine: &mut Machine, state: &str, label: &str, out: &mut Vec<Output>) {
    if machine.record.run_state == state {
        return;
    }
    let from = std::mem::replace(&mut machine.record.run_state, state.to_string());
    if from == RUN_STATE_UNKNOWN {
        return;
    }
    out.push(Output::Event(
        EventDraft::new(
            EventKind::VmStateChanged,
            machine.record.vm_uuid.to_string(),
        )
        .network(label)
        .detail(DETAIL_FROM, from)
        .detail(DETAIL_TO, state),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Domain, HostInfo, RunState};
    use crate::control::{hypervisor_device, HostView};
    use crate::model::{Device, Semantic, Service, ServiceSpec};
    use crate::wire::description::{parse_description, render_description};
    use std::sync::Arc;

    const MGMT: u32 = 1;
    const MGMT2: u32 = 2;
    const ACME: u32 = 10;
    const BETA: u32 = 11;
    const GRACE: u64 = 30;
    const HOST_A: u128 = 0xaaaa;
    const HOST_B: u128 = 0xbbbb;
    const WEB: u128 = 0xa1;
    const DB: u128 = 0xa2;
    const CACHE: u128 = 0xa3;
    const LOCATION: &str = "http://10.0.0.5:49152/description.xml";
    const ADDRESS_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    const ADDRESS_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 6);
    const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    const BACKUP: &str = "urn:xenplug-org:service:Backup:1";
    const SHELL: &str = "urn:xenplug-org:service:Shell:1";

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn networks() -> Vec<NetworkInfo> {
        [
            (MGMT, "mgmt", true),
            (MGMT2, "mgmt2", true),
            (ACME, "acme", false),
            (BETA, "beta", false),
        ]
        .into_iter()
        .map(|(id, label, provider)| NetworkInfo {
            id,
            label: label.into(),
            provider,
        })
        .collect()
    }

    fn engine() -> Inventory {
        Inventory::new(networks(), GRACE)
    }

    fn parse(device: &Device) -> Described {
        let mut bytes = Vec::new();
        render_description(device, 1, &mut bytes).unwrap();
        parse_description(&bytes, LOCATION).unwrap()
    }

    /// Our own hypervisor description of host `host` named `name`, listing `domains`.
    fn hypervisor(host: u128, name: &str, domains: &[(u128, &str)]) -> Described {
        let view = HostView {
            uuid: uuid(host),
            info: HostInfo {
                uuid: None,
                name: name.into(),
                hypervisor_version: "4.17".into(),
                cpus: 4,
                memory_mib: 8192,
            },
            backend: "sim",
            domains: domains
                .iter()
                .map(|&(vm, name)| Domain {
                    uuid: uuid(vm),
                    name: name.into(),
                    state: RunState::Running,
                    memory_kib: 1 << 20,
                    vcpus: 1,
                })
                .collect(),
        };
        parse(&hypervisor_device(&view))
    }

    /// A VM's own description, offering services of `types` (each named after its type).
    fn guest(vm: u128, name: &str, types: &[&str]) -> Described {
        let services = types
            .iter()
            .map(|service_type| {
                let short = service_type.split(':').nth(3).unwrap();
                Service {
                    spec: Arc::new(ServiceSpec::new(
                        short,
                        service_type,
                        &format!("urn:xenplug-org:serviceId:{short}"),
                    )),
                    key: format!("svc/{short}"),
                }
            })
            .collect();
        parse(&Device {
            device_type: URN_DEVICE_VIRTUAL_MACHINE.into(),
            udn: uuid(vm),
            friendly_name: name.into(),
            model_name: "xenplug vm".into(),
            model_description: String::new(),
            vm_uuid: Some(uuid(vm)),
            services,
            devices: Vec::new(),
        })
    }

    fn actions(names: &[&str]) -> Vec<ActionRecord> {
        names
            .iter()
            .map(|name| ActionRecord {
                name: name.to_string(),
                semantics: vec![Semantic::Idempotent],
                inputs: vec![],
                outputs: vec![],
            })
            .collect()
    }

    fn scpds(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<ActionRecord>> {
        entries
            .iter()
            .map(|(service_type, names)| (service_type.to_string(), actions(names)))
            .collect()
    }

    fn no_scpds() -> BTreeMap<String, Vec<ActionRecord>> {
        BTreeMap::new()
    }

    fn describe_host(
        inventory: &mut Inventory,
        now: u64,
        network: u32,
        described: &Described,
    ) -> Vec<Output> {
        inventory.on_described(
            now,
            network,
            ADDRESS_A,
            Some(1),
            false,
            described,
            &no_scpds(),
        )
    }

    fn describe_guest(
        inventory: &mut Inventory,
        now: u64,
        network: u32,
        described: &Described,
        services: &BTreeMap<String, Vec<ActionRecord>>,
    ) -> Vec<Output> {
        inventory.on_described(now, network, GUEST, None, false, described, services)
    }

    fn events(out: &[Output]) -> Vec<EventDraft> {
        out.iter()
            .filter_map(|output| match output {
                Output::Event(draft) => Some(draft.clone()),
                _ => None,
            })
            .collect()
    }

    fn kinds(out: &[Output]) -> Vec<(EventKind, String)> {
        events(out)
            .into_iter()
            .map(|draft| (draft.kind, draft.subject))
            .collect()
    }

    fn detail<'a>(draft: &'a EventDraft, key: &str) -> Option<&'a str> {
        draft
            .details
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, value)| value.as_str())
    }

    fn put_virtual(out: &[Output], vm: u128) -> Option<&VirtualRecord> {
        out.iter().rev().find_map(|output| match output {
            Output::PutVirtual(record) if record.vm_uuid == uuid(vm) => Some(record),
            _ => None,
        })
    }

    fn put_hardware(out: &[Output]) -> Option<&HardwareRecord> {
        out.iter().rev().find_map(|output| match output {
            Output::PutHardware(record) => Some(record),
            _ => None,
        })
    }

    fn state_event(state: &str) -> Vec<(String, String)> {
        vec![(VARIABLE_STATE.to_string(), state.to_string())]
    }

    fn ids_event(vms: &[u128]) -> Vec<(String, String)> {
        let ids: Vec<String> = vms.iter().map(|vm| uuid(*vm).to_string()).collect();
        vec![(VARIABLE_VIRTUAL_MACHINE_IDS.to_string(), ids.join(","))]
    }

    /// Applies the outputs to a map, as the repository would hold them.
    #[derive(Default)]
    struct Repo {
        hardware: BTreeMap<Uuid, HardwareRecord>,
        virtual_machines: BTreeMap<Uuid, VirtualRecord>,
    }

    impl Repo {
        fn apply(&mut self, out: &[Output]) {
            for output in out {
                match output {
                    Output::PutHardware(record) => {
                        self.hardware.insert(record.host_uuid, record.clone());
                    }
                    Output::RemoveHardware(id) => {
                        assert!(self.hardware.remove(id).is_some(), "removed unwritten {id}");
                    }
                    Output::PutVirtual(record) => {
                        self.virtual_machines.insert(record.vm_uuid, record.clone());
                    }
                    Output::RemoveVirtual(id) => {
                        assert!(
                            self.virtual_machines.remove(id).is_some(),
                            "removed unwritten {id}"
                        );
                    }
                    Output::Event(_) => {}
                }
            }
        }
    }

    #[test]
    fn hypervisor_added_rebooted_removed() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[]);
        let out = describe_host(&mut inventory, 100, MGMT, &described);
        let added = events(&out);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].kind, EventKind::HypervisorAdded);
        assert_eq!(added[0].subject, uuid(HOST_A).to_string());
        assert_eq!(added[0].network.as_deref(), Some("mgmt"));
        assert_eq!(detail(&added[0], DETAIL_ADDRESS), Some("10.0.0.5"));
        let expected = HardwareRecord {
            host_uuid: uuid(HOST_A),
            name: "Xen hypervisor alpha".into(),
            addresses: vec!["10.0.0.5".into()],
            network: "mgmt".into(),
            boot_id: Some(1),
            facts: vec![(FACT_MODEL.into(), "xenplug hypervisor".into())],
            first_seen: 100,
            last_seen: 100,
            state: HARDWARE_STATE_ONLINE.into(),
        };
        assert_eq!(put_hardware(&out), Some(&expected));
        expected.to_record().unwrap();

        // A refetch with nothing new: no event, no write (last_seen alone, within a minute).
        assert_eq!(describe_host(&mut inventory, 110, MGMT, &described), []);
        assert_eq!(inventory.hypervisors()[0].record.last_seen, 110);

        let out =
            inventory.on_described(200, MGMT, ADDRESS_B, Some(2), true, &described, &no_scpds());
        assert_eq!(
            kinds(&out),
            [(EventKind::HypervisorRebooted, uuid(HOST_A).to_string())]
        );
        let record = put_hardware(&out).unwrap();
        assert_eq!(record.boot_id, Some(2));
        assert_eq!(record.addresses, ["10.0.0.6"]);
        assert_eq!(record.first_seen, 100);

        let out = inventory.on_gone(300, MGMT, &described.root.udn);
        assert_eq!(
            kinds(&out),
            [(EventKind::HypervisorRemoved, uuid(HOST_A).to_string())]
        );
        assert!(out.contains(&Output::RemoveHardware(uuid(HOST_A))));
        assert!(inventory.hypervisors().is_empty());
        assert_eq!(inventory.on_gone(301, MGMT, &described.root.udn), []);
    }

    #[test]
    fn domains_place_vms_on_their_hypervisor() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "web"), (DB, "db")]);
        let out = describe_host(&mut inventory, 100, MGMT, &described);
        assert_eq!(
            kinds(&out),
            [
                (EventKind::HypervisorAdded, uuid(HOST_A).to_string()),
                (EventKind::VmAdded, uuid(WEB).to_string()),
                (EventKind::VmAdded, uuid(DB).to_string()),
            ]
        );
        let web = put_virtual(&out, WEB).unwrap();
        assert_eq!(
            *web,
            VirtualRecord {
                vm_uuid: uuid(WEB),
                name: "web".into(),
                hypervisor: Some(uuid(HOST_A)),
                run_state: RUN_STATE_UNKNOWN.into(),
                tenant: None,
                services: Vec::new(),
                first_seen: 100,
                last_seen: 100,
            }
        );
        assert_eq!(
            detail(&events(&out)[1], DETAIL_HYPERVISOR),
            Some(uuid(HOST_A).to_string().as_str())
        );
        let view = inventory.hypervisor(&uuid(HOST_A)).unwrap();
        assert_eq!(view.virtual_machines, [uuid(WEB), uuid(DB)]);
        assert!(view.described);
        assert_eq!(inventory.virtual_machines()[0].listed_by, [uuid(HOST_A)]);
    }

    #[test]
    fn a_vm_listed_by_another_hypervisor_migrates() {
        let mut inventory = engine();
        let a_with_web = hypervisor(HOST_A, "alpha", &[(WEB, "web")]);
        let b_with_web = hypervisor(HOST_B, "beta", &[(WEB, "web")]);
        describe_host(&mut inventory, 100, MGMT, &a_with_web);

        let out = describe_host(&mut inventory, 110, MGMT, &b_with_web);
        let migrated = events(&out);
        assert_eq!(migrated[0].kind, EventKind::HypervisorAdded);
        assert_eq!(migrated[1].kind, EventKind::VmMigrated);
        assert_eq!(
            detail(&migrated[1], DETAIL_FROM),
            Some(uuid(HOST_A).to_string().as_str())
        );
        assert_eq!(
            detail(&migrated[1], DETAIL_TO),
            Some(uuid(HOST_B).to_string().as_str())
        );
        assert_eq!(
            put_virtual(&out, WEB).unwrap().hypervisor,
            Some(uuid(HOST_B))
        );
        assert_eq!(
            inventory.virtual_machine(&uuid(WEB)).unwrap().listed_by,
            [uuid(HOST_A), uuid(HOST_B)]
        );

        // The source still listing it does not take it back.
        let out = describe_host(&mut inventory, 120, MGMT, &a_with_web);
        assert_eq!(kinds(&out), []);
        // When the destination drops it while the source still lists it, it moves back.
        let out = describe_host(&mut inventory, 130, MGMT, &hypervisor(HOST_B, "beta", &[]));
        let back = events(&out);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].kind, EventKind::VmMigrated);
        assert_eq!(
            detail(&back[0], DETAIL_TO),
            Some(uuid(HOST_A).to_string().as_str())
        );
        // The source dropping it: nothing lists it, nothing advertises it: removed.
        let out = describe_host(&mut inventory, 140, MGMT, &hypervisor(HOST_A, "alpha", &[]));
        assert_eq!(kinds(&out), [(EventKind::VmRemoved, uuid(WEB).to_string())]);
        assert!(out.contains(&Output::RemoveVirtual(uuid(WEB))));
    }

    #[test]
    fn state_events_set_the_run_state() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "web")]);
        describe_host(&mut inventory, 100, MGMT, &described);
        let domain = described.root.devices[0].udn.clone();

        let out = inventory.on_event(
            110,
            MGMT,
            &domain,
            URN_SERVICE_DOMAIN_CONTROL,
            &state_event("running"),
        );
        // The first state learned is recorded, not journalled: nothing changed.
        assert!(events(&out).is_empty());
        assert_eq!(put_virtual(&out, WEB).unwrap().run_state, "running");

        let again = inventory.on_event(
            111,
            MGMT,
            &domain,
            URN_SERVICE_DOMAIN_CONTROL,
            &state_event("running"),
        );
        assert_eq!(again, []);
        let out = inventory.on_event(
            112,
            MGMT,
            &domain.to_uppercase(),
            URN_SERVICE_DOMAIN_CONTROL,
            &state_event("paused"),
        );
        assert_eq!(detail(&events(&out)[0], DETAIL_FROM), Some("running"));
        assert_eq!(put_virtual(&out, WEB).unwrap().run_state, "paused");

        // Wrong service, unknown device, other network: ignored.
        assert_eq!(
            inventory.on_event(
                113,
                MGMT,
                &domain,
                URN_SERVICE_HYPERVISOR,
                &state_event("dying")
            ),
            []
        );
        assert_eq!(
            inventory.on_event(
                113,
                MGMT,
                "uuid:nobody",
                URN_SERVICE_DOMAIN_CONTROL,
                &state_event("dying")
            ),
            []
        );
        assert_eq!(
            inventory.on_event(
                113,
                MGMT2,
                &domain,
                URN_SERVICE_DOMAIN_CONTROL,
                &state_event("dying")
            ),
            []
        );
        assert_eq!(inventory.virtual_machines()[0].record.run_state, "paused");
    }

    #[test]
    fn virtual_machine_ids_shrink_and_grow_the_placement() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "web"), (DB, "db")]);
        describe_host(&mut inventory, 100, MGMT, &described);
        let root = described.root.udn.clone();

        let out = inventory.on_event(110, MGMT, &root, URN_SERVICE_HYPERVISOR, &ids_event(&[WEB]));
        assert_eq!(kinds(&out), [(EventKind::VmRemoved, uuid(DB).to_string())]);
        assert!(out.contains(&Output::RemoveVirtual(uuid(DB))));

        // A VM listed before its Domain is described: recorded with an empty name.
        let ids = vec![(
            VARIABLE_VIRTUAL_MACHINE_IDS.to_string(),
            format!(" {}, not-a-uuid ,{}", uuid(WEB), uuid(CACHE)),
        )];
        let out = inventory.on_event(120, MGMT, &root, URN_SERVICE_HYPERVISOR, &ids);
        assert_eq!(kinds(&out), [(EventKind::VmAdded, uuid(CACHE).to_string())]);
        let cache = put_virtual(&out, CACHE).unwrap().clone();
        assert_eq!(cache.name, "");
        assert_eq!(cache.hypervisor, Some(uuid(HOST_A)));
        let record = cache.to_record().unwrap();
        let text = record.to_text_escaped().unwrap();
        let back = crate::files::Record::parse_escaped(&text).unwrap();
        assert_eq!(VirtualRecord::from_record(&back).unwrap(), cache);

        // The next description names it: journalled as a rename from no name.
        let named = hypervisor(HOST_A, "alpha", &[(WEB, "web"), (CACHE, "cache")]);
        let out = describe_host(&mut inventory, 130, MGMT, &named);
        assert_eq!(
            kinds(&out),
            [(EventKind::VmRenamed, uuid(CACHE).to_string())]
        );
        assert_eq!(put_virtual(&out, CACHE).unwrap().name, "cache");
    }

    #[test]
    fn a_vm_advertising_in_a_tenant_network_gets_tenant_and_services() {
        let mut inventory = engine();
        let own = guest(WEB, "web-guest", &[BACKUP]);
        let out = describe_guest(
            &mut inventory,
            100,
            ACME,
            &own,
            &scpds(&[(BACKUP, &["Run", "Status"])]),
        );
        let added = events(&out);
        assert_eq!(added.len(), 1);
        assert_eq!(added[0].kind, EventKind::VmAdded);
        assert_eq!(added[0].network.as_deref(), Some("acme"));
        assert_eq!(detail(&added[0], DETAIL_TENANT), Some("acme"));
        let record = put_virtual(&out, WEB).unwrap();
        assert_eq!(record.tenant.as_deref(), Some("acme"));
        assert_eq!(record.name, "web-guest");
        assert_eq!(record.hypervisor, None);
        assert_eq!(
            record.services,
            [ServiceRecord {
                service_type: BACKUP.into(),
                actions: actions(&["Run", "Status"]),
            }]
        );
        assert_eq!(inventory.virtual_machines()[0].advertised_in, Some("acme"));

        // Its hypervisor lists it: placed, the Domain's name wins, tenant and services stay.
        let out = describe_host(
            &mut inventory,
            110,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "web")]),
        );
        assert_eq!(
            kinds(&out),
            [
                (EventKind::HypervisorAdded, uuid(HOST_A).to_string()),
                (EventKind::VmRenamed, uuid(WEB).to_string())
            ]
        );
        let renamed = &events(&out)[1];
        assert_eq!(renamed.network.as_deref(), Some("mgmt"));
        assert_eq!(detail(renamed, DETAIL_FROM), Some("web-guest"));
        assert_eq!(detail(renamed, DETAIL_TO), Some("web"));
        let record = put_virtual(&out, WEB).unwrap();
        assert_eq!(record.hypervisor, Some(uuid(HOST_A)));
        assert_eq!(record.name, "web");
        assert_eq!(record.tenant.as_deref(), Some("acme"));
        assert_eq!(record.services.len(), 1);
        assert_eq!(inventory.tick(1000), []);

        // It stops advertising while listed: kept with its tenant, its owner's services gone.
        let out = inventory.on_gone(1100, ACME, &own.root.udn);
        assert_eq!(
            kinds(&out),
            [(EventKind::VmServicesChanged, uuid(WEB).to_string())]
        );
        assert_eq!(put_virtual(&out, WEB).unwrap().services, []);
        let view = inventory.virtual_machine(&uuid(WEB)).unwrap();
        assert_eq!(view.advertised_in, None);
        assert_eq!(view.record.tenant.as_deref(), Some("acme"));
        assert!(view.record.services.is_empty());
    }

    /// The `vm-renamed` events of `out`, as (subject, network, from, to).
    fn renames(out: &[Output]) -> Vec<(String, Option<String>, String, String)> {
        events(out)
            .into_iter()
            .filter(|draft| draft.kind == EventKind::VmRenamed)
            .map(|draft| {
                let from = detail(&draft, DETAIL_FROM).unwrap().to_string();
                let to = detail(&draft, DETAIL_TO).unwrap().to_string();
                (draft.subject, draft.network, from, to)
            })
            .collect()
    }

    #[test]
    fn a_vm_heard_of_by_gena_first_is_renamed_when_described() {
        let mut inventory = engine();
        let empty = hypervisor(HOST_A, "alpha", &[]);
        describe_host(&mut inventory, 100, MGMT, &empty);
        let root = empty.root.udn.clone();

        let out = inventory.on_event(110, MGMT, &root, URN_SERVICE_HYPERVISOR, &ids_event(&[WEB]));
        let added = events(&out);
        assert_eq!(kinds(&out), [(EventKind::VmAdded, uuid(WEB).to_string())]);
        assert_eq!(detail(&added[0], DETAIL_NAME), None);
        assert_eq!(put_virtual(&out, WEB).unwrap().name, "");

        // GENA again: still no name, nothing to journal.
        let out = inventory.on_event(115, MGMT, &root, URN_SERVICE_HYPERVISOR, &ids_event(&[WEB]));
        assert_eq!(kinds(&out), []);

        let out = describe_host(
            &mut inventory,
            120,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "g2")]),
        );
        assert_eq!(
            renames(&out),
            [(
                uuid(WEB).to_string(),
                Some("mgmt".to_string()),
                String::new(),
                "g2".to_string()
            )]
        );
        assert_eq!(kinds(&out).len(), 1);
        assert_eq!(put_virtual(&out, WEB).unwrap().name, "g2");

        // The same description again, then GENA: the name stands, no event.
        let again = hypervisor(HOST_A, "alpha", &[(WEB, "g2")]);
        assert_eq!(kinds(&describe_host(&mut inventory, 130, MGMT, &again)), []);
        let out = inventory.on_event(140, MGMT, &root, URN_SERVICE_HYPERVISOR, &ids_event(&[WEB]));
        assert_eq!(kinds(&out), []);
        assert_eq!(
            inventory.virtual_machine(&uuid(WEB)).unwrap().record.name,
            "g2"
        );
    }

    #[test]
    fn a_vm_described_first_is_added_with_its_name_and_not_renamed() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "g2")]);
        let out = describe_host(&mut inventory, 100, MGMT, &described);
        let added: Vec<EventDraft> = events(&out)
            .into_iter()
            .filter(|draft| draft.kind == EventKind::VmAdded)
            .collect();
        assert_eq!(added.len(), 1);
        assert_eq!(detail(&added[0], DETAIL_NAME), Some("g2"));
        assert_eq!(renames(&out), []);

        let root = described.root.udn.clone();
        let out = inventory.on_event(110, MGMT, &root, URN_SERVICE_HYPERVISOR, &ids_event(&[WEB]));
        assert_eq!(kinds(&out), []);
        // Its own advertisement under another name: the Domain's name wins, no rename.
        let out = describe_guest(
            &mut inventory,
            120,
            ACME,
            &guest(WEB, "web-guest", &[]),
            &no_scpds(),
        );
        assert_eq!(renames(&out), []);
        assert_eq!(
            inventory.virtual_machine(&uuid(WEB)).unwrap().record.name,
            "g2"
        );
    }

    #[test]
    fn a_renamed_domain_or_advertisement_is_journalled() {
        let mut inventory = engine();
        describe_host(
            &mut inventory,
            100,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "web")]),
        );
        let out = describe_host(
            &mut inventory,
            110,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "shop")]),
        );
        assert_eq!(
            renames(&out),
            [(
                uuid(WEB).to_string(),
                Some("mgmt".to_string()),
                "web".to_string(),
                "shop".to_string()
            )]
        );
        assert_eq!(
            kinds(&out).len(),
            1,
            "a rename is neither a move nor a new VM"
        );
        assert_eq!(put_virtual(&out, WEB).unwrap().name, "shop");

        // A VM no hypervisor names: its own advertisement's name, journalled in its tenant.
        describe_guest(
            &mut inventory,
            120,
            ACME,
            &guest(CACHE, "cache", &[]),
            &no_scpds(),
        );
        let out = describe_guest(
            &mut inventory,
            130,
            ACME,
            &guest(CACHE, "cache-2", &[]),
            &no_scpds(),
        );
        assert_eq!(
            renames(&out),
            [(
                uuid(CACHE).to_string(),
                Some("acme".to_string()),
                "cache".to_string(),
                "cache-2".to_string()
            )]
        );
    }

    #[test]
    fn an_empty_name_is_never_journalled_as_a_rename() {
        let mut inventory = engine();
        describe_host(
            &mut inventory,
            100,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "web")]),
        );
        // The parser refuses an empty friendlyName; a Described built otherwise may have one.
        let mut nameless = hypervisor(HOST_A, "alpha", &[(WEB, "web")]);
        for device in &mut nameless.root.devices {
            device.friendly_name.clear();
        }
        let out = describe_host(&mut inventory, 110, MGMT, &nameless);
        assert_eq!(kinds(&out), []);
        // The record follows the description (as it always did); the journal does not.
        assert_eq!(put_virtual(&out, WEB).unwrap().name, "");
        // Named again: journalled from the name recorded in between.
        let out = describe_host(
            &mut inventory,
            120,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "web")]),
        );
        assert_eq!(
            renames(&out),
            [(
                uuid(WEB).to_string(),
                Some("mgmt".to_string()),
                String::new(),
                "web".to_string()
            )]
        );
    }

    #[test]
    fn a_change_of_services_is_journalled() {
        let mut inventory = engine();
        let backup = scpds(&[(BACKUP, &["Run"])]);
        describe_guest(
            &mut inventory,
            100,
            ACME,
            &guest(WEB, "web", &[BACKUP]),
            &backup,
        );

        let both = guest(WEB, "web", &[BACKUP, SHELL]);
        let out = describe_guest(
            &mut inventory,
            110,
            ACME,
            &both,
            &scpds(&[(BACKUP, &["Run"]), (SHELL, &["Exec"])]),
        );
        let changed = events(&out);
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].kind, EventKind::VmServicesChanged);
        assert_eq!(detail(&changed[0], DETAIL_SERVICES), Some("2"));
        assert_eq!(
            put_virtual(&out, WEB).unwrap().services[1].actions,
            actions(&["Exec"])
        );

        // The Shell SCPD could not be fetched this time: its actions stay as known.
        let out = describe_guest(&mut inventory, 120, ACME, &both, &backup);
        assert_eq!(out, []);
        // New actions in an SCPD are a change too.
        let out = describe_guest(
            &mut inventory,
            130,
            ACME,
            &both,
            &scpds(&[(BACKUP, &["Run", "Restore"]), (SHELL, &["Exec"])]),
        );
        assert_eq!(
            kinds(&out),
            [(EventKind::VmServicesChanged, uuid(WEB).to_string())]
        );
        let out = describe_guest(
            &mut inventory,
            140,
            ACME,
            &guest(WEB, "web", &[]),
            &no_scpds(),
        );
        assert_eq!(detail(&events(&out)[0], DETAIL_SERVICES), Some("0"));
        assert!(put_virtual(&out, WEB).unwrap().services.is_empty());
    }

    #[test]
    fn a_hypervisor_claim_in_a_tenant_network_is_refused_once() {
        let mut inventory = engine();
        let fake = hypervisor(HOST_A, "alpha", &[(WEB, "web")]);
        let out = inventory.on_described(100, ACME, GUEST, Some(1), false, &fake, &no_scpds());
        let refused = events(&out);
        assert_eq!(out.len(), refused.len(), "only events: {out:?}");
        assert_eq!(refused.len(), 2);
        assert!(refused
            .iter()
            .all(|draft| draft.kind == EventKind::SpoofRefused
                && draft.network.as_deref() == Some("acme")
                && detail(draft, DETAIL_SOURCE) == Some("192.168.1.20")));
        assert_eq!(refused[0].subject, uuid(HOST_A).to_string());
        assert_eq!(
            detail(&refused[0], DETAIL_DEVICE_TYPE),
            Some(URN_DEVICE_HYPERVISOR)
        );
        assert_eq!(
            detail(&refused[1], DETAIL_DEVICE_TYPE),
            Some(URN_DEVICE_DOMAIN)
        );
        assert_eq!(
            detail(&refused[1], DETAIL_VM_UUID),
            Some(uuid(WEB).to_string().as_str())
        );
        assert!(inventory.hypervisors().is_empty());
        assert!(inventory.virtual_machines().is_empty());

        // Once per (network, UDN) until gone.
        assert_eq!(
            inventory.on_described(110, ACME, GUEST, Some(1), false, &fake, &no_scpds()),
            []
        );
        assert_eq!(
            inventory.on_event(
                111,
                ACME,
                &fake.root.udn,
                URN_SERVICE_HYPERVISOR,
                &ids_event(&[DB])
            ),
            []
        );
        assert_eq!(
            inventory
                .on_described(112, BETA, GUEST, Some(1), false, &fake, &no_scpds())
                .len(),
            2
        );
        assert_eq!(inventory.on_gone(120, ACME, &fake.root.udn), []);
        assert_eq!(
            inventory
                .on_described(130, ACME, GUEST, Some(1), false, &fake, &no_scpds())
                .len(),
            2
        );
        assert!(inventory.hypervisors().is_empty());
    }

    #[test]
    fn an_embedded_domain_in_a_tenant_network_is_refused() {
        let mut inventory = engine();
        let domain = hypervisor(HOST_A, "alpha", &[(DB, "db")]).root.devices[0].clone();
        let mut tree = guest(WEB, "web", &[BACKUP]);
        tree.root.devices.push(domain.clone());
        let out = describe_guest(
            &mut inventory,
            100,
            ACME,
            &tree,
            &scpds(&[(BACKUP, &["Run"])]),
        );
        let refused = events(&out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(refused[0].kind, EventKind::SpoofRefused);
        assert_eq!(refused[0].subject, domain.udn.trim_start_matches("uuid:"));
        assert_eq!(
            detail(&refused[0], DETAIL_VM_UUID),
            Some(uuid(DB).to_string().as_str())
        );
        assert!(inventory.virtual_machines().is_empty());
        assert_eq!(
            describe_guest(&mut inventory, 110, ACME, &tree, &no_scpds()),
            []
        );

        // A VM that was accepted and then embeds a Domain loses its record.
        let mut inventory = engine();
        describe_guest(
            &mut inventory,
            100,
            ACME,
            &guest(WEB, "web", &[]),
            &no_scpds(),
        );
        let out = describe_guest(&mut inventory, 110, ACME, &tree, &no_scpds());
        assert_eq!(
            kinds(&out),
            [
                (EventKind::VmRemoved, uuid(WEB).to_string()),
                (
                    EventKind::SpoofRefused,
                    domain.udn.trim_start_matches("uuid:").to_string()
                ),
            ]
        );
        assert!(inventory.virtual_machines().is_empty());
    }

    #[test]
    fn an_unlisted_vm_is_devirtualized_after_the_grace_and_revirtualized() {
        let mut inventory = engine();
        let own = guest(WEB, "web", &[]);
        describe_guest(&mut inventory, 100, ACME, &own, &no_scpds());
        assert_eq!(inventory.poll_at(), Some(100 + GRACE));
        assert_eq!(kinds(&inventory.tick(100 + GRACE - 1)), []);
        let out = inventory.tick(100 + GRACE);
        let devirtualized = events(&out);
        assert_eq!(devirtualized.len(), 1);
        assert_eq!(devirtualized[0].kind, EventKind::VmDevirtualized);
        assert_eq!(devirtualized[0].network.as_deref(), Some("acme"));
        assert!(inventory.virtual_machines()[0].devirtualized);
        assert_eq!(kinds(&inventory.tick(500)), []);

        let out = describe_host(
            &mut inventory,
            600,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "web")]),
        );
        let back = events(&out);
        assert_eq!(back[1].kind, EventKind::VmRevirtualized);
        assert_eq!(
            detail(&back[1], DETAIL_HYPERVISOR),
            Some(uuid(HOST_A).to_string().as_str())
        );
        assert!(!inventory.virtual_machines()[0].devirtualized);

        // Its hypervisor leaves: it advertises, so it stays, unplaced, until the grace again.
        let out = inventory.on_gone(700, MGMT, &format!("uuid:{}", uuid(HOST_A)));
        assert_eq!(
            kinds(&out),
            [(EventKind::HypervisorRemoved, uuid(HOST_A).to_string())]
        );
        assert_eq!(put_virtual(&out, WEB).unwrap().hypervisor, None);
        assert_eq!(kinds(&inventory.tick(700 + GRACE - 1)), []);
        assert_eq!(
            kinds(&inventory.tick(700 + GRACE)),
            [(EventKind::VmDevirtualized, uuid(WEB).to_string())]
        );
        // It stops advertising: nothing vouches for it any more.
        let out = inventory.on_gone(800, ACME, &own.root.udn);
        assert_eq!(kinds(&out), [(EventKind::VmRemoved, uuid(WEB).to_string())]);
        assert!(out.contains(&Output::RemoveVirtual(uuid(WEB))));
    }

    #[test]
    fn a_hypervisor_leaving_removes_the_vms_nothing_else_vouches_for() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "web"), (DB, "db")]);
        describe_host(&mut inventory, 100, MGMT, &described);
        describe_guest(
            &mut inventory,
            100,
            ACME,
            &guest(WEB, "web", &[]),
            &no_scpds(),
        );
        let out = inventory.on_gone(200, MGMT, &described.root.udn);
        assert_eq!(
            kinds(&out),
            [
                (EventKind::HypervisorRemoved, uuid(HOST_A).to_string()),
                (EventKind::VmRemoved, uuid(DB).to_string()),
            ]
        );
        assert_eq!(inventory.virtual_machines().len(), 1);
        // The byebye of an embedded Domain is left to the next description.
        describe_host(&mut inventory, 300, MGMT, &described);
        let domain = described.root.devices[1].udn.clone();
        assert_eq!(inventory.on_gone(310, MGMT, &domain), []);
        assert_eq!(inventory.virtual_machines().len(), 2);
    }

    /// Runs a scenario, restores a fresh engine from what it wrote, and replays it.
    #[test]
    fn restore_then_the_same_descriptions_emit_no_events() {
        let mut inventory = engine();
        let mut repo = Repo::default();
        let host = hypervisor(HOST_A, "alpha", &[(WEB, "web"), (DB, "db")]);
        let own = guest(WEB, "web-guest", &[BACKUP]);
        let loner = guest(CACHE, "cache", &[]);
        let backup = scpds(&[(BACKUP, &["Run"])]);
        repo.apply(&describe_host(&mut inventory, 100, MGMT, &host));
        repo.apply(&describe_guest(&mut inventory, 100, ACME, &own, &backup));
        repo.apply(&describe_guest(
            &mut inventory,
            100,
            ACME,
            &loner,
            &no_scpds(),
        ));
        repo.apply(&inventory.tick(100 + GRACE));
        let domain = host.root.devices[0].udn.clone();
        repo.apply(&inventory.on_event(
            140,
            MGMT,
            &domain,
            URN_SERVICE_DOMAIN_CONTROL,
            &state_event("running"),
        ));
        assert_eq!(repo.hardware.len(), 1);
        assert_eq!(repo.virtual_machines.len(), 3);

        let mut restarted = engine();
        restarted.restore(
            repo.hardware.values().cloned(),
            repo.virtual_machines.values().cloned(),
        );
        assert_eq!(restarted.hypervisors().len(), 1);
        assert!(!restarted.hypervisors()[0].described);
        let mut out = describe_guest(&mut restarted, 1000, ACME, &own, &backup);
        out.extend(describe_guest(
            &mut restarted,
            1001,
            ACME,
            &loner,
            &no_scpds(),
        ));
        out.extend(describe_host(&mut restarted, 1002, MGMT, &host));
        out.extend(restarted.on_event(
            1003,
            MGMT,
            &domain,
            URN_SERVICE_DOMAIN_CONTROL,
            &state_event("running"),
        ));
        out.extend(restarted.tick(1004 + INVENTORY_RESTORE_GRACE));
        assert_eq!(kinds(&out), []);
        repo.apply(&out);
        for (vm, record) in &repo.virtual_machines {
            let view = restarted.virtual_machine(vm).unwrap();
            let mut expected = view.record.clone();
            expected.last_seen = record.last_seen;
            assert_eq!(*record, expected);
        }
        assert!(restarted.hypervisors()[0].described);
    }

    #[test]
    fn restored_records_not_seen_again_are_removed_after_the_grace() {
        let mut inventory = engine();
        let mut repo = Repo::default();
        repo.apply(&describe_host(
            &mut inventory,
            100,
            MGMT,
            &hypervisor(HOST_A, "alpha", &[(WEB, "web")]),
        ));
        repo.apply(&describe_host(
            &mut inventory,
            100,
            MGMT,
            &hypervisor(HOST_B, "beta", &[(DB, "db")]),
        ));
        repo.apply(&describe_guest(
            &mut inventory,
            100,
            ACME,
            &guest(CACHE, "cache", &[]),
            &no_scpds(),
        ));

        let mut restarted = engine();
        restarted.restore(
            repo.hardware.values().cloned(),
            repo.virtual_machines.values().cloned(),
        );
        assert_eq!(restarted.tick(5000), []);
        assert_eq!(restarted.poll_at(), Some(5000 + INVENTORY_RESTORE_GRACE));
        // B rebooted while the tracker was down.
        let out = restarted.on_described(
            5010,
            MGMT,
            ADDRESS_B,
            Some(9),
            false,
            &hypervisor(HOST_B, "beta", &[(DB, "db")]),
            &no_scpds(),
        );
        assert_eq!(
            kinds(&out),
            [(EventKind::HypervisorRebooted, uuid(HOST_B).to_string())]
        );
        repo.apply(&out);
        let out = restarted.tick(5000 + INVENTORY_RESTORE_GRACE);
        assert_eq!(
            kinds(&out),
            [
                (EventKind::HypervisorRemoved, uuid(HOST_A).to_string()),
                (EventKind::VmRemoved, uuid(WEB).to_string()),
                (EventKind::VmRemoved, uuid(CACHE).to_string()),
            ]
        );
        repo.apply(&out);
        assert_eq!(repo.hardware.keys().collect::<Vec<_>>(), [&uuid(HOST_B)]);
        assert_eq!(
            repo.virtual_machines.keys().collect::<Vec<_>>(),
            [&uuid(DB)]
        );
    }

    #[test]
    fn undescribed_devices_are_reported_until_described_or_gone() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[]);
        let udn = described.root.udn.clone();
        assert_eq!(
            inventory.on_undescribed(100, MGMT, &udn, ADDRESS_A, "timed out"),
            []
        );
        inventory.on_undescribed(110, MGMT, &udn, ADDRESS_A, "HTTP 500");
        inventory.on_undescribed(110, ACME, "uuid:printer", GUEST, "too large");
        inventory.on_undescribed(110, 99, "uuid:elsewhere", GUEST, "?");
        let listed = inventory.undescribed();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            listed[0],
            UndescribedView {
                network: "mgmt",
                udn: &udn,
                source: ADDRESS_A,
                reason: "HTTP 500",
                first_seen: 100,
                last_seen: 110,
            }
        );
        assert_eq!(listed[1].network, "acme");
        describe_host(&mut inventory, 120, MGMT, &described);
        assert_eq!(inventory.undescribed().len(), 1);
        inventory.on_gone(130, ACME, "uuid:printer");
        assert!(inventory.undescribed().is_empty());
    }

    #[test]
    fn a_virtual_machine_whose_udn_and_vm_uuid_disagree_is_refused() {
        let mut inventory = engine();
        let mut liar = guest(WEB, "web", &[]);
        liar.root.vm_uuid = Some(uuid(DB).to_string());
        assert_eq!(
            describe_guest(&mut inventory, 100, ACME, &liar, &no_scpds()),
            []
        );
        liar.root.vm_uuid = None;
        assert_eq!(
            describe_guest(&mut inventory, 100, ACME, &liar, &no_scpds()),
            []
        );
        assert!(inventory.virtual_machines().is_empty());
        // On a provider network, a VirtualMachine is ignored.
        assert_eq!(
            describe_guest(
                &mut inventory,
                100,
                MGMT,
                &guest(WEB, "web", &[]),
                &no_scpds()
            ),
            []
        );
        assert!(inventory.virtual_machines().is_empty());
    }

    #[test]
    fn the_first_tenant_network_wins_and_the_second_takes_over_when_it_leaves() {
        let mut inventory = engine();
        let own = guest(WEB, "web", &[]);
        describe_guest(&mut inventory, 100, ACME, &own, &no_scpds());
        assert_eq!(
            describe_guest(&mut inventory, 110, BETA, &own, &no_scpds()),
            []
        );
        assert_eq!(
            inventory.virtual_machines()[0].record.tenant.as_deref(),
            Some("acme")
        );
        let out = inventory.on_gone(120, ACME, &own.root.udn);
        assert_eq!(kinds(&out), []);
        assert_eq!(
            put_virtual(&out, WEB).unwrap().tenant.as_deref(),
            Some("beta")
        );
        assert_eq!(inventory.virtual_machines()[0].advertised_in, Some("beta"));
        let out = inventory.on_gone(130, BETA, &own.root.udn);
        assert_eq!(kinds(&out), [(EventKind::VmRemoved, uuid(WEB).to_string())]);
    }

    #[test]
    fn a_hypervisor_in_two_provider_networks_belongs_to_the_first() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "web")]);
        describe_host(&mut inventory, 100, MGMT, &described);
        assert_eq!(describe_host(&mut inventory, 110, MGMT2, &described), []);
        let out = inventory.on_gone(120, MGMT, &described.root.udn);
        assert_eq!(kinds(&out), []);
        assert_eq!(put_hardware(&out).unwrap().network, "mgmt2");
        let domain = described.root.devices[0].udn.clone();
        let out = inventory.on_event(
            130,
            MGMT2,
            &domain,
            URN_SERVICE_DOMAIN_CONTROL,
            &state_event("running"),
        );
        // Events from the adopting network are taken: the state is recorded.
        assert_eq!(put_virtual(&out, WEB).unwrap().run_state, "running");
    }

    #[test]
    fn last_seen_alone_is_written_at_most_once_a_minute() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[]);
        describe_host(&mut inventory, 100, MGMT, &described);
        assert_eq!(describe_host(&mut inventory, 130, MGMT, &described), []);
        assert_eq!(
            inventory.poll_at(),
            Some(100 + INVENTORY_LAST_SEEN_WRITE_INTERVAL)
        );
        assert_eq!(inventory.tick(159), []);
        let out = inventory.tick(160);
        assert_eq!(put_hardware(&out).unwrap().last_seen, 130);
        assert_eq!(inventory.tick(500), []);
        assert_eq!(inventory.poll_at(), None);
        let out = describe_host(&mut inventory, 190, MGMT, &described);
        assert_eq!(put_hardware(&out).unwrap().last_seen, 190);
    }

    #[test]
    fn helpers_read_udns_and_types() {
        assert_eq!(
            udn_uuid("UUID:00000000-0000-0000-0000-0000000000A1 "),
            Some(uuid(WEB))
        );
        assert_eq!(udn_uuid("uuid:web"), None);
        assert_eq!(udn_uuid("uu"), None);
        assert_eq!(udn_uuid("urn:00000000-0000-0000-0000-0000000000a1"), None);
        assert!(same_type(
            "urn:xenplug-org:device:Hypervisor:2",
            URN_DEVICE_HYPERVISOR
        ));
        assert!(!same_type(
            "urn:xenplug-org:device:Hypervisor:",
            URN_DEVICE_HYPERVISOR
        ));
        assert!(!same_type(
            "urn:xenplug-org:device:HypervisorX:1",
            URN_DEVICE_HYPERVISOR
        ));
        assert!(!same_type("Hypervisor", URN_DEVICE_HYPERVISOR));
    }
}
