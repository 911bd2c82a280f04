//! Engine layer: restart (see the inventory's module documentation). Rebuilds the state from
//! the repository's records and, once the restore grace is over, lets go of what was not seen
//! again. State only: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use uuid::Uuid;

use crate::consts::INVENTORY_RESTORE_GRACE;
use crate::repo::record::{HardwareRecord, VirtualRecord};

use super::{Host, Inventory, Listing, Machine, Output, RestoreClock, Written};

impl Inventory {
    /// Rebuilds the state from the repository at start, before anything is heard; emits
    /// nothing. A VM record naming a hypervisor that has no record is kept unplaced (and put
    /// corrected at its next change). See the module documentation for the grace that follows.
    pub fn restore(
        &mut self,
        hardware: impl IntoIterator<Item = HardwareRecord>,
        virtual_machines: impl IntoIterator<Item = impl Into<Arc<VirtualRecord>>>,
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
                    written: Some(Written::of(&record)),
                    last_seen: record.last_seen,
                    record,
                    claim: None,
                    seen: false,
                    listed: BTreeMap::new(),
                },
            );
        }
        for record in virtual_machines {
            let mut record: Arc<VirtualRecord> = record.into();
            restored = true;
            let vm = record.vm_uuid;
            let recorded_host = record.hypervisor;
            let written = Some(Written::of(&*record));
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
                        Arc::make_mut(&mut record).hypervisor = None;
                    }
                }
            }
            let devirtualized = record.hypervisor.is_none();
            self.machines.insert(
                vm,
                Box::new(Machine {
                    last_seen: record.last_seen,
                    record,
                    written,
                    advertised: None,
                    last_host: recorded_host,
                    devirtualized,
                    pending_restore: true,
                }),
            );
        }
        if restored {
            self.restore = RestoreClock::Waiting;
        }
    }

    /// Starts the restore grace at the first `now` after a restore.
    pub(super) fn observe(&mut self, now: u64) {
        if self.restore == RestoreClock::Waiting {
            self.restore = RestoreClock::Until(now.saturating_add(INVENTORY_RESTORE_GRACE));
        }
    }

    /// The restore grace is over: what was not confirmed goes.
    pub(super) fn end_restore(&mut self, now: u64, out: &mut Vec<Output>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::URN_SERVICE_DOMAIN_CONTROL;
    use crate::engine::inventory::tests::*;
    use crate::repo::journal::EventKind;

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
                        self.virtual_machines
                            .insert(record.vm_uuid, (**record).clone());
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
        repo.apply(&inventory.take_due(100 + GRACE));
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
        out.extend(restarted.take_due(1004 + INVENTORY_RESTORE_GRACE));
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
        assert_eq!(restarted.take_due(5000), []);
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
        let out = restarted.take_due(5000 + INVENTORY_RESTORE_GRACE);
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
}
