//! Engine layer: the tracker's inventory. Turns the descriptions and GENA events the net layer
//! fetched from the labelled networks into the records the repositories hold and the events
//! the journal gets. State only: time comes in as unix seconds (`now`), nothing here reads a
//! clock, touches a file or a socket; records and events go out as [`Output`]s, which the net
//! layer writes as they are.
//!
//! Each heading below has its own file: `claim.rs` (who may claim what), `records.rs`,
//! `placement.rs`, `writes.rs` and `restart.rs`; this one holds the types and the calls the
//! net layer makes.
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
//! [`Inventory::take_due`] after that, so the file is at most that far behind. `last_seen` is
//! the time of the last description or event from the device (for a VM: from its hypervisor
//! about it, or its own description); it is kept beside the record, whose own `last_seen` is
//! the one last put. A VM's record, once put, is shared with the repository, not copied.
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
//!
//! [`FACT_MODEL`]: crate::consts::FACT_MODEL
//! [`INVENTORY_RESTORE_GRACE`]: crate::consts::INVENTORY_RESTORE_GRACE

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use uuid::Uuid;

use crate::consts::{
    INVENTORY_LAST_SEEN_WRITE_INTERVAL, RUN_STATE_UNKNOWN, URN_SERVICE_DOMAIN_CONTROL,
    URN_SERVICE_HYPERVISOR,
};
use crate::repo::journal::{EventDraft, EventKind};
use crate::repo::record::{is_valid_name, ActionRecord, HardwareRecord, VirtualRecord};
use crate::wire::description::Described;

mod claim;
mod placement;
mod records;
mod restart;
mod writes;

use claim::same_type;
use writes::Written;

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
    PutVirtual(Arc<VirtualRecord>),
    /// Remove `virtual/<vm-uuid>` (and its tenant slice).
    RemoveVirtual(Uuid),
    /// Append this event to the journal.
    Event(EventDraft),
}

/// A hypervisor as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HypervisorView<'a> {
    /// Its record as last put (or restored); see `last_seen`.
    pub record: &'a HardwareRecord,
    /// When it was last seen (the record's `last_seen` is the one last put).
    pub last_seen: u64,
    /// UUIDs of the VMs it lists, in UUID order.
    pub virtual_machines: Vec<Uuid>,
    /// Whether it was described since the tracker started (false: restored, not seen yet).
    pub described: bool,
}

/// A VM as the read API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualMachineView<'a> {
    /// Its record as the engine holds it, but for `last_seen`, which is the one last put.
    pub record: &'a VirtualRecord,
    /// When it was last seen.
    pub last_seen: u64,
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

/// The (hypervisor, VM) pairs of one Domain device, in hypervisor order: one nearly always
/// (two while a VM migrates), so that one is held inline rather than in a vector of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Placements {
    One([(Uuid, Uuid); 1]),
    Many(Vec<(Uuid, Uuid)>),
}

impl Placements {
    fn as_slice(&self) -> &[(Uuid, Uuid)] {
        match self {
            Placements::One(one) => one,
            Placements::Many(many) => many,
        }
    }

    /// Adds a pair, keeping hypervisor order.
    fn add(&mut self, placement: (Uuid, Uuid)) {
        let mut all = self.as_slice().to_vec();
        all.push(placement);
        all.sort_unstable();
        *self = Placements::Many(all);
    }

    /// Drops the pairs of hypervisor `host`; whether any pair is left.
    fn forget(&mut self, host: Uuid) -> bool {
        if let Placements::Many(all) = self {
            all.retain(|(listing, _)| *listing != host);
            if let [only] = all[..] {
                *self = Placements::One([only]);
            }
        }
        match self {
            Placements::One([(listing, _)]) => *listing != host,
            Placements::Many(all) => !all.is_empty(),
        }
    }
}

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
    written: Option<Written>,
    /// The root device it is described from now; `None` while only restored.
    claim: Option<Key>,
    /// Whether it was described since the start (false: restored, not seen yet).
    seen: bool,
    /// The VMs it lists.
    listed: BTreeMap<Uuid, Listing>,
    /// When it was last seen (see [`Machine::last_seen`]).
    last_seen: u64,
}

/// What a VM's own advertisement brought. Out of line: nearly every VM of a provider is only
/// listed by its hypervisor, and this would add 64 bytes to each.
#[derive(Debug, Default)]
struct Advertised {
    /// The root device of its own advertisement, while it advertises.
    claim: Option<Key>,
    /// friendlyName of its own advertisement.
    own_name: Option<String>,
    /// Since when it advertises while no hypervisor lists it.
    unplaced_since: Option<u64>,
}

struct Machine {
    /// Its record, shared with the repository once put (changed through
    /// [`Machine::record_mut`], which copies it then). Its `last_seen` is the one last put.
    record: Arc<VirtualRecord>,
    /// When it was last seen: kept beside the record, so that a refresh, which touches every
    /// VM of a host, neither copies a shared record nor counts as a change.
    last_seen: u64,
    /// What was last put (or restored); `None` before the first put.
    written: Option<Written>,
    /// What its own advertisement brought, if it ever advertised itself.
    advertised: Option<Box<Advertised>>,
    /// The hypervisor it was last placed on.
    last_host: Option<Uuid>,
    /// Whether `vm-devirtualized` was journalled and no hypervisor listed it since.
    devirtualized: bool,
    /// Restored and not confirmed yet: kept until the restore grace ends.
    pending_restore: bool,
}

impl Machine {
    fn new(vm: Uuid, now: u64) -> Machine {
        Machine {
            record: Arc::new(VirtualRecord {
                vm_uuid: vm,
                name: String::new(),
                hypervisor: None,
                run_state: RUN_STATE_UNKNOWN.to_string(),
                tenant: None,
                services: Vec::new(),
                first_seen: now,
                last_seen: now,
            }),
            last_seen: now,
            written: None,
            advertised: None,
            last_host: None,
            devirtualized: false,
            pending_restore: false,
        }
    }

    /// Its record, to change: copied first if the repository shares it.
    fn record_mut(&mut self) -> &mut VirtualRecord {
        Arc::make_mut(&mut self.record)
    }

    /// The root device of its own advertisement, while it advertises.
    fn claim(&self) -> Option<&Key> {
        self.advertised.as_ref()?.claim.as_ref()
    }

    /// friendlyName of its own advertisement, the last one heard.
    fn own_name(&self) -> Option<&String> {
        self.advertised.as_ref()?.own_name.as_ref()
    }

    /// Since when it advertises while no hypervisor lists it.
    fn unplaced_since(&self) -> Option<u64> {
        self.advertised.as_ref()?.unplaced_since
    }

    /// It advertises itself from `claim`, named `name`.
    fn advertise(&mut self, claim: Key, name: String) {
        let advertised = self.advertised.get_or_insert_with(Box::default);
        advertised.claim = Some(claim);
        advertised.own_name = Some(name);
    }

    /// Its own advertisement left (its name is remembered).
    fn stop_advertising(&mut self) {
        if let Some(advertised) = &mut self.advertised {
            advertised.claim = None;
        }
    }

    fn set_unplaced_since(&mut self, since: Option<u64>) {
        match since {
            Some(_) => {
                self.advertised
                    .get_or_insert_with(Box::default)
                    .unplaced_since = since
            }
            None => {
                if let Some(advertised) = &mut self.advertised {
                    advertised.unplaced_since = None;
                }
            }
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
    /// Boxed: a BTreeMap node has room for eleven entries inline, and at a few hundred bytes
    /// each the room a node leaves unused cost more than the boxes do.
    machines: BTreeMap<Uuid, Box<Machine>>,
    /// Root device -> what it is the current source of.
    claims: BTreeMap<Key, Claimant>,
    /// Embedded Domain device -> (hypervisor, VM) for every hypervisor describing it.
    domains: BTreeMap<Key, Placements>,
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
        // The net layer logs the first of these per source address loudly; a flood of
        // devices without descriptions must not flood the log.
        log::debug!(
            "inventory: {udn:?} in {label} at {source} has no usable description: {reason}"
        );
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
            if let Some(placements) = self.domains.get(&device).map(|p| p.as_slice().to_vec()) {
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
    pub fn take_due(&mut self, now: u64) -> Vec<Output> {
        self.observe(now);
        let mut out = Vec::new();
        if let RestoreClock::Until(deadline) = self.restore {
            if now >= deadline {
                self.restore = RestoreClock::Idle;
                self.end_restore(now, &mut out);
            }
        }
        self.devirtualize_due(now, &mut out);
        self.commit_last_seen(now, &mut out);
        out
    }

    /// When [`Inventory::take_due`] has something to do next, if ever (unix seconds); `None` also
    /// while a restore waits for its first `now`.
    pub fn poll_at(&self) -> Option<u64> {
        let mut next: Option<u64> = None;
        let mut consider = |at: u64| next = Some(next.map_or(at, |known| known.min(at)));
        if let RestoreClock::Until(deadline) = self.restore {
            consider(deadline);
        }
        for machine in self.machines.values() {
            if let (Some(since), false, Some(_), None) = (
                machine.unplaced_since(),
                machine.devirtualized,
                machine.claim(),
                machine.record.hypervisor,
            ) {
                consider(since.saturating_add(self.devirtualize_grace));
            }
            if let Some(written) = &machine.written {
                if written.last_seen != machine.last_seen {
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
                if written.last_seen != host.last_seen {
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
            last_seen: machine.last_seen,
            advertised_in: machine
                .claim()
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
}

fn host_view(host: &Host) -> HypervisorView<'_> {
    HypervisorView {
        record: &host.record,
        last_seen: host.last_seen,
        virtual_machines: host.listed.keys().copied().collect(),
        described: host.claim.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Domain, HostInfo, RunState};
    use crate::consts::{URN_DEVICE_VIRTUAL_MACHINE, VARIABLE_STATE, VARIABLE_VIRTUAL_MACHINE_IDS};
    use crate::control::{hypervisor_device, HostView};
    use crate::model::{Device, Semantic, Service, ServiceSpec};
    use crate::wire::description::{parse_description, render_description};
    use std::sync::Arc;

    // Fixtures: the `pub(super)` ones serve the tests of every inventory file.

    pub(super) const MGMT: u32 = 1;
    pub(super) const MGMT2: u32 = 2;
    pub(super) const ACME: u32 = 10;
    pub(super) const BETA: u32 = 11;
    pub(super) const GRACE: u64 = 30;
    pub(super) const HOST_A: u128 = 0xaaaa;
    pub(super) const HOST_B: u128 = 0xbbbb;
    pub(super) const WEB: u128 = 0xa1;
    pub(super) const DB: u128 = 0xa2;
    pub(super) const CACHE: u128 = 0xa3;
    const LOCATION: &str = "http://10.0.0.5:49152/description.xml";
    pub(super) const ADDRESS_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);
    pub(super) const ADDRESS_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 6);
    pub(super) const GUEST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 20);
    pub(super) const BACKUP: &str = "urn:xenplug-org:service:Backup:1";
    pub(super) const SHELL: &str = "urn:xenplug-org:service:Shell:1";

    pub(super) fn uuid(n: u128) -> Uuid {
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

    pub(super) fn engine() -> Inventory {
        Inventory::new(networks(), GRACE)
    }

    fn parse(device: &Device) -> Described {
        let mut bytes = Vec::new();
        render_description(device, 1, &mut bytes).unwrap();
        parse_description(&bytes, LOCATION).unwrap()
    }

    /// Our own hypervisor description of host `host` named `name`, listing `domains`.
    pub(super) fn hypervisor(host: u128, name: &str, domains: &[(u128, &str)]) -> Described {
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
    pub(super) fn guest(vm: u128, name: &str, types: &[&str]) -> Described {
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

    pub(super) fn actions(names: &[&str]) -> Vec<ActionRecord> {
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

    pub(super) fn scpds(entries: &[(&str, &[&str])]) -> BTreeMap<String, Vec<ActionRecord>> {
        entries
            .iter()
            .map(|(service_type, names)| (service_type.to_string(), actions(names)))
            .collect()
    }

    pub(super) fn no_scpds() -> BTreeMap<String, Vec<ActionRecord>> {
        BTreeMap::new()
    }

    pub(super) fn describe_host(
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

    pub(super) fn describe_guest(
        inventory: &mut Inventory,
        now: u64,
        network: u32,
        described: &Described,
        services: &BTreeMap<String, Vec<ActionRecord>>,
    ) -> Vec<Output> {
        inventory.on_described(now, network, GUEST, None, false, described, services)
    }

    pub(super) fn events(out: &[Output]) -> Vec<EventDraft> {
        out.iter()
            .filter_map(|output| match output {
                Output::Event(draft) => Some(draft.clone()),
                _ => None,
            })
            .collect()
    }

    pub(super) fn kinds(out: &[Output]) -> Vec<(EventKind, String)> {
        events(out)
            .into_iter()
            .map(|draft| (draft.kind, draft.subject))
            .collect()
    }

    pub(super) fn detail<'a>(draft: &'a EventDraft, key: &str) -> Option<&'a str> {
        draft
            .details
            .iter()
            .find(|(known, _)| known == key)
            .map(|(_, value)| value.as_str())
    }

    pub(super) fn put_virtual(out: &[Output], vm: u128) -> Option<&VirtualRecord> {
        out.iter().rev().find_map(|output| match output {
            Output::PutVirtual(record) if record.vm_uuid == uuid(vm) => Some(&**record),
            _ => None,
        })
    }

    pub(super) fn put_hardware(out: &[Output]) -> Option<&HardwareRecord> {
        out.iter().rev().find_map(|output| match output {
            Output::PutHardware(record) => Some(record),
            _ => None,
        })
    }

    pub(super) fn state_event(state: &str) -> Vec<(String, String)> {
        vec![(VARIABLE_STATE.to_string(), state.to_string())]
    }

    pub(super) fn ids_event(vms: &[u128]) -> Vec<(String, String)> {
        let ids: Vec<String> = vms.iter().map(|vm| uuid(*vm).to_string()).collect();
        vec![(VARIABLE_VIRTUAL_MACHINE_IDS.to_string(), ids.join(","))]
    }

    #[test]
    fn placements_keep_hypervisor_order_and_go_back_inline() {
        let [a, b, vm] = [uuid(HOST_A), uuid(HOST_B), uuid(WEB)];
        let mut placements = Placements::One([(b, vm)]);
        placements.add((a, vm));
        assert_eq!(placements.as_slice(), [(a, vm), (b, vm)]);
        assert!(placements.forget(a));
        assert_eq!(placements, Placements::One([(b, vm)]));
        assert!(placements.forget(a));
        assert!(!placements.forget(b));
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
}
