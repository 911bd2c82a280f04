//! Engine layer: who may claim what (see the inventory's module documentation). Routes a
//! description by its network and device type, refuses spoofs, keeps one source per identity
//! with a second kept aside, and lets go of what a source claimed when it leaves. State only:
//! no I/O, no clock.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use uuid::Uuid;

use crate::consts::{
    UDN_PREFIX, URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR, URN_DEVICE_VIRTUAL_MACHINE,
};
use crate::repo::journal::{EventDraft, EventKind};
use crate::wire::description::DescribedDevice;

use super::{
    key, Claimant, Fetch, Inventory, Key, NetworkInfo, Output, Shadow, DETAIL_DEVICE_TYPE,
    DETAIL_SERVICES, DETAIL_SOURCE, DETAIL_VM_UUID,
};

/// Whether type URN `actual` is `known` in any version (`urn:d:device:T:<digits>`).
pub(super) fn same_type(actual: &str, known: &str) -> bool {
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

impl Inventory {
    /// Files one fetched description by its network (provider or tenant) and its root's device
    /// type; lets go of what the root claimed when it is nothing the tracker files.
    pub(super) fn describe(&mut self, now: u64, fetch: &Fetch<'_>, out: &mut Vec<Output>) {
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
    pub(super) fn release(&mut self, now: u64, key: &Key, out: &mut Vec<Output>) {
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

    /// Keeps a description of `claimant` aside while another root device is its source.
    pub(super) fn keep_aside(&mut self, claimant: Claimant, root_key: Key, fetch: &Fetch<'_>) {
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

    /// Hypervisor `host`'s source left: a description kept aside takes over, else it is removed.
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

    /// VM `vm`'s own advertisement left: its services go, and a description kept aside takes
    /// over if there is one.
    fn machine_left(&mut self, now: u64, vm: Uuid, out: &mut Vec<Output>) {
        let Some(machine) = self.machines.get_mut(&vm) else {
            return;
        };
        machine.stop_advertising();
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
            machine.record_mut().services.clear();
        }
        // Settled either way: an adopted description that fails to claim the VM leaves it
        // without an advertisement.
        self.adopt_shadow(now, Claimant::Machine(vm), out);
        self.finish(now, &BTreeSet::from([vm]), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR};
    use crate::engine::inventory::tests::*;
    use crate::wire::description::udn_uuid;

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
