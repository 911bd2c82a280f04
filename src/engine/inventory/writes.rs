//! Engine layer: writes (see the inventory's module documentation). A record is put only when
//! it changed, and a change of `last_seen` alone at most once per
//! [`INVENTORY_LAST_SEEN_WRITE_INTERVAL`]. State only: no I/O, no clock.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use uuid::Uuid;

use crate::consts::INVENTORY_LAST_SEEN_WRITE_INTERVAL;
use crate::repo::record::{HardwareRecord, VirtualRecord};

use super::{Inventory, Output};

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
pub(super) trait Seen: Hash {
    fn last_seen(&self) -> u64;
}

impl Seen for HardwareRecord {
    fn last_seen(&self) -> u64 {
        self.last_seen
    }
}

impl Seen for VirtualRecord {
    fn last_seen(&self) -> u64 {
        self.last_seen
    }
}

/// What was last put of a record: its `last_seen`, and a digest of the whole record. A digest
/// rather than a copy: at fleet size the copies were a fifth of what the inventory held. The
/// record held changes its `last_seen` only when it is put (the live time is kept beside it),
/// so between two puts the digest moves only when something else changed. Two different
/// records with one digest (a 64-bit SipHash, about one chance in 2^64 per change) would only
/// delay that change to the record's next put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub(super) last_seen: u64,
    digest: u64,
}

impl Written {
    /// What `record` is, as it is put now.
    pub(super) fn of<R: Seen>(record: &R) -> Written {
        Written {
            last_seen: record.last_seen(),
            digest: digest(record),
        }
    }
}

fn digest(record: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    record.hash(&mut hasher);
    hasher.finish()
}

/// Whether `record` (as held: its `last_seen` the one last put) must be put at `now`, given
/// what was last `written` and the live `last_seen` (see [`must_write`]).
fn due<R: Seen>(written: Option<Written>, record: &R, last_seen: u64, now: u64) -> bool {
    let changed = written.is_some_and(|written| written.digest != digest(record));
    must_write(
        written.map(|written| written.last_seen),
        changed,
        last_seen,
        now,
    )
}

impl Inventory {
    /// Puts the hypervisor record if it must be written.
    pub(super) fn commit_host(&mut self, now: u64, id: Uuid, out: &mut Vec<Output>) {
        if let Some(host) = self.hosts.get_mut(&id) {
            if due(host.written, &host.record, host.last_seen, now) {
                host.record.last_seen = host.last_seen;
                host.written = Some(Written::of(&host.record));
                out.push(Output::PutHardware(host.record.clone()));
            }
        }
    }

    /// Puts the VM record if it must be written: the record itself, shared with the
    /// repository rather than copied.
    pub(super) fn commit_machine(&mut self, now: u64, vm: Uuid, out: &mut Vec<Output>) {
        if let Some(machine) = self.machines.get_mut(&vm) {
            if due(machine.written, &*machine.record, machine.last_seen, now) {
                if machine.record.last_seen != machine.last_seen {
                    machine.record_mut().last_seen = machine.last_seen;
                }
                machine.written = Some(Written::of(&*machine.record));
                out.push(Output::PutVirtual(Arc::clone(&machine.record)));
            }
        }
    }

    /// Puts every record whose `last_seen` differs from the one written, when [`must_write`]
    /// says it is due.
    pub(super) fn commit_last_seen(&mut self, now: u64, out: &mut Vec<Output>) {
        let hosts: Vec<Uuid> = self
            .hosts
            .iter()
            .filter(|(_, host)| {
                host.written
                    .as_ref()
                    .is_some_and(|written| written.last_seen != host.last_seen)
            })
            .map(|(id, _)| *id)
            .collect();
        for host in hosts {
            self.commit_host(now, host, out);
        }
        let machines: Vec<Uuid> = self
            .machines
            .iter()
            .filter(|(_, machine)| {
                machine
                    .written
                    .as_ref()
                    .is_some_and(|written| written.last_seen != machine.last_seen)
            })
            .map(|(id, _)| *id)
            .collect();
        for vm in machines {
            self.commit_machine(now, vm, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::inventory::tests::*;

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
        assert_eq!(inventory.take_due(159), []);
        let out = inventory.take_due(160);
        assert_eq!(put_hardware(&out).unwrap().last_seen, 130);
        assert_eq!(inventory.take_due(500), []);
        assert_eq!(inventory.poll_at(), None);
        let out = describe_host(&mut inventory, 190, MGMT, &described);
        assert_eq!(put_hardware(&out).unwrap().last_seen, 190);
    }

    #[test]
    fn a_vm_record_put_is_shared_and_a_refresh_neither_copies_nor_puts_it() {
        let mut inventory = engine();
        let described = hypervisor(HOST_A, "alpha", &[(WEB, "web")]);
        let out = describe_host(&mut inventory, 100, MGMT, &described);
        let put = out
            .iter()
            .find_map(|output| match output {
                Output::PutVirtual(record) => Some(Arc::clone(record)),
                _ => None,
            })
            .unwrap();
        let held = |inventory: &Inventory| Arc::clone(&inventory.machines[&uuid(WEB)].record);
        assert!(Arc::ptr_eq(&put, &held(&inventory)));

        // Seen again within the minute: nothing put, the record still the one shared.
        assert_eq!(describe_host(&mut inventory, 130, MGMT, &described), []);
        assert!(Arc::ptr_eq(&put, &held(&inventory)));
        assert_eq!(
            inventory.virtual_machine(&uuid(WEB)).unwrap().last_seen,
            130
        );

        // A minute after the put, last_seen alone is put: a new record, shared in turn.
        let out = inventory.take_due(160);
        assert_eq!(put_virtual(&out, WEB).unwrap().last_seen, 130);
        assert!(!Arc::ptr_eq(&put, &held(&inventory)));
        assert_eq!(put.last_seen, 100);
    }
}
