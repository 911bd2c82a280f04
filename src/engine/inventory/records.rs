//! Engine layer: the records (see the inventory's module documentation). What a hypervisor's
//! or a VM's description means for its record, a hypervisor leaving, and settling the VMs a
//! call touched: removal, names, services. State only: no I/O, no clock.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use crate::consts::{FACT_MODEL, URN_DEVICE_DOMAIN};
use crate::repo::journal::{EventDraft, EventKind};
use crate::repo::record::{is_valid_name, ActionRecord, HardwareRecord, ServiceRecord};
use crate::wire::description::{vm_uuid, DescribedDevice};

use super::claim::same_type;
use super::{
    key, Claimant, Fetch, Host, Inventory, Key, Machine, NetworkInfo, Output, Placements,
    DETAIL_ADDRESS, DETAIL_BOOT_ID, DETAIL_FROM, DETAIL_NAME, DETAIL_SERVICES, DETAIL_TENANT,
    DETAIL_TO,
};
use crate::wire::description::udn_uuid;

/// `state` of a hypervisor the tracker currently sees.
const HARDWARE_STATE_ONLINE: &str = "online";

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

impl Inventory {
    /// Removes hypervisor `id` and unplaces the VMs it listed.
    pub(super) fn remove_host(&mut self, now: u64, id: Uuid, out: &mut Vec<Output>) {
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
        self.domains.retain(|_, placements| placements.forget(id));
    }

    /// A Hypervisor tree from a provider network: its record, and the VMs its Domains list.
    pub(super) fn host_described(
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
            last_seen: now,
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
        host.last_seen = now;
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
            // Forgotten above: `id` is not among them. Kept in host order.
            match self.domains.entry(domain.clone()) {
                Entry::Vacant(vacant) => {
                    vacant.insert(Placements::One([(id, *vm)]));
                }
                Entry::Occupied(mut occupied) => occupied.get_mut().add((id, *vm)),
            }
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

    /// A VirtualMachine tree from a tenant network: the VM's tenant, own name and services.
    pub(super) fn machine_described(
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
        if let Some(claim) = self.machines.get(&vm).and_then(|machine| machine.claim()) {
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
                machine.record_mut().services = collect_services(root, fetch.services, &[]);
                machine.record_mut().tenant = Some(tenant.clone());
                machine.record_mut().name = name.clone();
                machine.advertise(root_key.clone(), name.clone());
                self.machines.insert(vm, Box::new(machine));
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
                    machine.record_mut().tenant = Some(tenant.clone());
                }
                if machine.record.services != services {
                    log::info!("inventory: VM {vm} now offers {} services", services.len());
                    out.push(Output::Event(
                        EventDraft::new(EventKind::VmServicesChanged, vm.to_string())
                            .network(tenant.as_str())
                            .detail(DETAIL_SERVICES, services.len().to_string()),
                    ));
                    machine.record_mut().services = services;
                }
                machine.advertise(root_key.clone(), name);
                machine.pending_restore = false;
                machine.last_seen = now;
            }
        }
        self.claims.insert(root_key, Claimant::Machine(vm));
        self.finish(now, &BTreeSet::from([vm]), out);
    }

    /// Settles the VMs `touched`: removes those nothing vouches for any more, starts the
    /// de-virtualization clock of the unplaced, refreshes names, puts what changed.
    pub(super) fn finish(&mut self, now: u64, touched: &BTreeSet<Uuid>, out: &mut Vec<Output>) {
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
                .and_then(|machine| machine.claim())
                .and_then(|claim| self.label(claim.0))
                .map(str::to_string);
            let Some(machine) = self.machines.get_mut(vm) else {
                continue;
            };
            let placed = machine.record.hypervisor.is_some();
            if !placed && machine.claim().is_none() && !machine.pending_restore {
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
                machine.set_unplaced_since(None);
            } else if machine.claim().is_some() && machine.unplaced_since().is_none() {
                machine.set_unplaced_since(Some(now));
            }
            let named = listed.or_else(|| {
                machine
                    .own_name()
                    .cloned()
                    .map(|name| (name, own_label.or_else(|| machine.record.tenant.clone())))
            });
            if let Some((name, label)) = named {
                rename(machine, name, label, out);
            }
            self.commit_machine(now, *vm, out);
        }
    }
}

/// Records `name` as the name of `machine` (known to the journal since its `vm-added`), with
/// `vm-renamed` when it differs from the one recorded and is not empty (an empty name is
/// recorded as the code always did, but there is nothing to follow in the journal).
fn rename(machine: &mut Machine, name: String, label: Option<String>, out: &mut Vec<Output>) {
    if name == machine.record.name {
        return;
    }
    let from = std::mem::replace(&mut machine.record_mut().name, name);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::URN_SERVICE_HYPERVISOR;
    use crate::engine::inventory::tests::*;

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
        let view = &inventory.hypervisors()[0];
        assert_eq!((view.last_seen, view.record.last_seen), (110, 100));

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
        assert_eq!(inventory.take_due(1000), []);

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
}
