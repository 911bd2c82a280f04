//! Engine layer: writes (see the inventory's module documentation). A record is put only when
//! it changed, and a change of `last_seen` alone at most once per
//! [`INVENTORY_LAST_SEEN_WRITE_INTERVAL`]. State only: no I/O, no clock.

use std::hash::{DefaultHasher, Hash, Hasher};

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

/// What was last put of a record: its `last_seen`, and a digest of everything else. A digest
/// rather than a copy: at fleet size the copies were a fifth of what the inventory held. Two
/// different records with one digest (a 64-bit SipHash, about one chance in 2^64 per change)
/// would only delay that change to the record's next write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub(super) last_seen: u64,
    digest: u64,
}

impl Written {
    /// What `record` is now (`last_seen` is set aside while the rest is hashed).
    pub(super) fn of<R: Seen>(record: &mut R) -> Written {
        let last_seen = record.last_seen();
        record.set_last_seen(0);
        let mut hasher = DefaultHasher::new();
        record.hash(&mut hasher);
        record.set_last_seen(last_seen);
        Written {
            last_seen,
            digest: hasher.finish(),
        }
    }
}

/// Whether `record` must be put at `now` given what was last `written` (see [`must_write`]);
/// when it must, `written` becomes what it is now.
fn due_write<R: Seen>(written: &mut Option<Written>, record: &mut R, now: u64) -> bool {
    let current = Written::of(record);
    let changed = written.is_some_and(|written| written.digest != current.digest);
    let due = must_write(
        written.map(|written| written.last_seen),
        changed,
        current.last_seen,
        now,
    );
    if due {
        *written = Some(current);
    }
    due
}

impl Inventory {
    /// Puts the hypervisor record if it must be written.
    pub(super) fn commit_host(&mut self, now: u64, id: Uuid, out: &mut Vec<Output>) {
        if let Some(host) = self.hosts.get_mut(&id) {
            if due_write(&mut host.written, &mut host.record, now) {
                out.push(Output::PutHardware(host.record.clone()));
            }
        }
    }

    /// Puts the VM record if it must be written.
    pub(super) fn commit_machine(&mut self, now: u64, vm: Uuid, out: &mut Vec<Output>) {
        if let Some(machine) = self.machines.get_mut(&vm) {
            if due_write(&mut machine.written, &mut machine.record, now) {
                out.push(Output::PutVirtual(machine.record.clone()));
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
                    .is_some_and(|written| written.last_seen != host.record.last_seen)
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
                    .is_some_and(|written| written.last_seen != machine.record.last_seen)
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
}
