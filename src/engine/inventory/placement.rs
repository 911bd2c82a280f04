//! Engine layer: placement (see the inventory's module documentation). Which hypervisor a VM
//! is on, from descriptions and GENA events: migration, de-virtualization, run states by
//! Domain UDN. State only: no I/O, no clock.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::consts::{RUN_STATE_UNKNOWN, VARIABLE_STATE, VARIABLE_VIRTUAL_MACHINE_IDS};
use crate::repo::journal::{EventDraft, EventKind};

use super::{
    Inventory, Machine, Output, DETAIL_FROM, DETAIL_HYPERVISOR, DETAIL_NAME, DETAIL_TENANT,
    DETAIL_TO,
};

/// Separator of the UUIDs in [`VARIABLE_VIRTUAL_MACHINE_IDS`].
const VIRTUAL_MACHINE_IDS_SEPARATOR: char = ',';

impl Inventory {
    /// A `Hypervisor` service event of hypervisor `id`: `VirtualMachineIds` is what it lists.
    pub(super) fn on_hypervisor_event(
        &mut self,
        now: u64,
        id: Uuid,
        variables: &[(String, String)],
        out: &mut Vec<Output>,
    ) {
        let Some(host) = self.hosts.get_mut(&id) else {
            return;
        };
        host.last_seen = now;
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

    /// A `DomainControl` event: its `State` for every hypervisor in `placements` (hypervisor
    /// -> VM) listing that Domain UDN.
    pub(super) fn on_domain_event(
        &mut self,
        now: u64,
        placements: &[(Uuid, Uuid)],
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
            known.last_seen = now;
            let label = known.record.network.clone();
            let Some(listing) = known.listed.get_mut(vm) else {
                continue;
            };
            listing.state = Some(state.clone());
            let Some(machine) = self.machines.get_mut(vm) else {
                continue;
            };
            if machine.record.hypervisor == Some(*host) {
                machine.last_seen = now;
                set_run_state(machine, &state, &label, out);
                touched.insert(*vm);
            }
        }
        for (host, _) in placements {
            self.commit_host(now, *host, out);
        }
        self.finish(now, &touched, out);
    }

    /// Hypervisor `host` lists `vm` (with the Domain's friendlyName when described).
    pub(super) fn list(
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
            machine.record_mut().hypervisor = Some(host);
            machine.record_mut().name = name.clone().unwrap_or_default();
            machine.last_host = Some(host);
            self.machines.insert(vm, Box::new(machine));
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
        machine.last_seen = now;
        machine.pending_restore = false;
        if newly || machine.record.hypervisor.is_none() {
            self.place(vm, host, out);
        }
    }

    /// Hypervisor `host` no longer lists `vm`.
    pub(super) fn unlist(
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
    pub(super) fn unplace(
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
        machine.record_mut().hypervisor = None;
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
        machine.record_mut().hypervisor = Some(to);
        machine.last_host = Some(to);
        machine.set_unplaced_since(None);
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

    /// Journals `vm-devirtualized` for every VM that has advertised while no hypervisor listed
    /// it for `devirtualize_grace` seconds, once until a hypervisor lists it again.
    pub(super) fn devirtualize_due(&mut self, now: u64, out: &mut Vec<Output>) {
        let grace = self.devirtualize_grace;
        let mut devirtualized = Vec::new();
        for (vm, machine) in &mut self.machines {
            let Some(since) = machine.unplaced_since() else {
                continue;
            };
            if machine.devirtualized
                || machine.record.hypervisor.is_some()
                || now < since.saturating_add(grace)
            {
                continue;
            }
            let Some(network) = machine.claim().map(|(network, _)| *network) else {
                continue;
            };
            machine.devirtualized = true;
            devirtualized.push((*vm, network, machine.record.tenant.clone()));
        }
        for (vm, network, tenant) in devirtualized {
            log::info!("inventory: VM {vm} advertises but no hypervisor lists it: de-virtualized");
            let mut draft = self.draft(EventKind::VmDevirtualized, vm.to_string(), network);
            if let Some(tenant) = tenant {
                draft = draft.detail(DETAIL_TENANT, tenant);
            }
            out.push(Output::Event(draft));
        }
    }
}

/// Sets a VM's run state, journalling a change. Learning the state of a VM whose state was
/// unknown (the initial GENA event after a subscription) is recorded but is no change.
fn set_run_state(machine: &mut Machine, state: &str, label: &str, out: &mut Vec<Output>) {
    if machine.record.run_state == state {
        return;
    }
    let from = std::mem::replace(&mut machine.record_mut().run_state, state.to_string());
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
    use crate::consts::{URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR};
    use crate::engine::inventory::tests::*;
    use crate::repo::record::VirtualRecord;

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
    fn an_unlisted_vm_is_devirtualized_after_the_grace_and_revirtualized() {
        let mut inventory = engine();
        let own = guest(WEB, "web", &[]);
        describe_guest(&mut inventory, 100, ACME, &own, &no_scpds());
        assert_eq!(inventory.poll_at(), Some(100 + GRACE));
        assert_eq!(kinds(&inventory.take_due(100 + GRACE - 1)), []);
        let out = inventory.take_due(100 + GRACE);
        let devirtualized = events(&out);
        assert_eq!(devirtualized.len(), 1);
        assert_eq!(devirtualized[0].kind, EventKind::VmDevirtualized);
        assert_eq!(devirtualized[0].network.as_deref(), Some("acme"));
        assert!(inventory.virtual_machines()[0].devirtualized);
        assert_eq!(kinds(&inventory.take_due(500)), []);

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
        assert_eq!(kinds(&inventory.take_due(700 + GRACE - 1)), []);
        assert_eq!(
            kinds(&inventory.take_due(700 + GRACE)),
            [(EventKind::VmDevirtualized, uuid(WEB).to_string())]
        );
        // It stops advertising: nothing vouches for it any more.
        let out = inventory.on_gone(800, ACME, &own.root.udn);
        assert_eq!(kinds(&out), [(EventKind::VmRemoved, uuid(WEB).to_string())]);
        assert!(out.contains(&Output::RemoveVirtual(uuid(WEB))));
    }
}
