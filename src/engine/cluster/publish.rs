//! Engine layer: what one tracker writes into etcd (see the [layout](super)). State only: the
//! net layer ([`crate::track::etcd`]) performs the requests this hands out and tells it how
//! they ended; no I/O, no clock.
//!
//! - Claim: a site has one tracker. The tracker key is created only where there is none
//!   (`create_revision == 0`); one left by this tracker's own repository before a restart
//!   (same `owner`) is taken over and its old lease revoked; one of another owner is a
//!   refusal ([`ClaimPlan::Refused`]), told loudly and tried again later (it is free once the
//!   other tracker's lease expires).
//! - Every later write is a transaction guarded by the tracker key's `mod_revision` as the
//!   claim left it ([`Publisher::guard`]): if another tracker took the site meanwhile, nothing
//!   is written and the tracker learns it from the failed comparison.
//! - State: one key per hypervisor, VM and tenant slice entry ([`Entry`]), on the lease. The
//!   publisher keeps a hash of the record each key was last written from and hands out only
//!   what changed ([`Publisher::diff`]); after any failure it forgets what etcd holds and reads
//!   the site's keys again, so a write whose answer was lost is neither lost nor kept stale.
//! - Events: the journal's events in order, from the one after the site's head
//!   (`PREFIX/heads/SITE`, `last_seq`) on, each batch with the head in one transaction, so an
//!   event is in etcd once or not at all and a restart continues where etcd is. A journal that
//!   ends before the head (a new repository) starts the site's events over. Retention: the
//!   newest [`Config::events_kept`] events of a site; older ones are deleted in the same
//!   transactions, and an outage longer than that many events publishes only the newest.
//! - Transactions hold at most [`Config::max_ops`] operations (etcd refuses more than 128 by
//!   default) and about [`Config::max_bytes`] bytes ([`Publisher::fits`]); a "request too
//!   large" halves the operations of the next ones.

use super::Layout;
use crate::wire::etcd::{Compare, KeyValue, Op};
use crate::wire::json::{parse_value, JsonValue, JsonWriter};
use std::collections::BTreeMap;
use uuid::Uuid;

/// Default lease TTL, seconds (`--etcd-ttl`): a site whose tracker died leaves the view
/// within this.
pub const ETCD_DEFAULT_TTL: u64 = 10;
/// Events of a site kept in etcd, at most.
pub const ETCD_EVENTS_KEPT: u64 = 10_000;
/// Operations of one transaction, at most (etcd's `--max-txn-ops` defaults to 128).
pub const ETCD_MAX_TXN_OPS: usize = 64;
/// Bytes of one transaction's operations, about, at most (etcd's `--max-request-bytes`
/// defaults to 1.5 MiB).
pub const ETCD_MAX_TXN_BYTES: usize = 512 * 1024;

/// What the publisher is told at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The site (`--site`).
    pub site: String,
    /// Who this tracker is across restarts: kept in its repository.
    pub owner: String,
    /// Lease TTL, seconds.
    pub ttl: u64,
    /// Events kept per site.
    pub events_kept: u64,
    /// Operations per transaction, at most.
    pub max_ops: usize,
    /// Bytes per transaction, about, at most.
    pub max_bytes: usize,
}

/// One key of the site's state.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    /// A hypervisor (hardware record).
    Hypervisor(Uuid),
    /// A VM (virtual record).
    Vm(Uuid),
    /// A tenant's slice entry for one VM.
    Tenant(String, Uuid),
}

impl Entry {
    /// Its key.
    pub fn key(&self, layout: &Layout, site: &str) -> String {
        match self {
            Entry::Hypervisor(host) => layout.hypervisor(site, host),
            Entry::Vm(vm) => layout.vm(site, vm),
            Entry::Tenant(tenant, vm) => layout.tenant(site, tenant, vm),
        }
    }
}

/// A change to hand to etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Write the entry (its value rendered by the net layer), from a record of this hash.
    Put(Entry, u64),
    /// Delete the entry's key.
    Delete(Entry),
}

impl Change {
    /// The entry changed.
    pub fn entry(&self) -> &Entry {
        match self {
            Change::Put(entry, _) | Change::Delete(entry) => entry,
        }
    }
}

/// How to claim the site, from what its tracker key holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimPlan {
    /// No tracker key: create it.
    Create,
    /// Ours, on the lease we hold: nothing to do but remember its revision.
    Keep {
        /// Its `mod_revision`.
        revision: u64,
    },
    /// Ours, but of an earlier run (another lease): take it over, then revoke that lease.
    TakeOver {
        /// Its `mod_revision`, to compare.
        revision: u64,
        /// The earlier run's lease.
        old_lease: u64,
    },
    /// Another tracker's.
    Refused {
        /// Its owner.
        owner: String,
        /// Its read API, as it published it.
        api: String,
    },
}

/// Where the site's events continue, from its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPlan {
    /// Publish from the event after this one.
    After(u64),
    /// The journal ends before the head: delete the site's events and start over.
    Restart {
        /// The head's last event.
        head: u64,
    },
}

/// What one tracker has published, and what to write next.
#[derive(Debug, Clone)]
pub struct Publisher {
    layout: Layout,
    config: Config,
    /// The site's state keys in etcd, with the hash of the record each was written from (0:
    /// found in etcd, content unknown: written again at the next round).
    published: BTreeMap<Entry, u64>,
    /// The tracker key's `mod_revision` as the claim left it.
    claim: Option<u64>,
    /// Last event in etcd (`None` until the head was read).
    events: Option<u64>,
    /// Oldest event kept in etcd.
    first_event: u64,
    /// Operations per transaction now.
    max_ops: usize,
}

impl Publisher {
    /// A publisher that has published nothing yet.
    pub fn new(layout: Layout, config: Config) -> Publisher {
        let max_ops = config.max_ops.max(1);
        Publisher {
            layout,
            config,
            published: BTreeMap::new(),
            claim: None,
            events: None,
            first_event: 0,
            max_ops,
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The tracker key.
    pub fn tracker_key(&self) -> String {
        self.layout.tracker(&self.config.site)
    }

    /// The tracker key's value: who holds the site, where its API is, on which lease.
    pub fn tracker_value(
        &self,
        lease: u64,
        api: &[String],
        networks: &[(String, bool)],
        now: u64,
    ) -> Vec<u8> {
        let mut json = JsonWriter::new();
        json.begin_object();
        json.key("owner").string(&self.config.owner);
        json.key("api").strings(api.iter().map(String::as_str));
        json.key("networks").begin_array();
        for (label, provider) in networks {
            json.begin_object();
            json.key("label").string(label);
            json.key("provider").bool(*provider);
            json.end_object();
        }
        json.end_array();
        json.key("lease").string(&lease.to_string());
        json.key("ttl").number(self.config.ttl);
        json.key("since").number(now);
        json.end_object();
        json.finish().unwrap_or_default()
    }

    /// Whether a claim holds now.
    pub fn claimed(&self) -> bool {
        self.claim.is_some()
    }

    /// How to claim the site given its tracker key as read (`None`: absent), holding `lease`.
    pub fn plan_claim(&self, existing: Option<&KeyValue>, lease: u64) -> ClaimPlan {
        let Some(existing) = existing else {
            return ClaimPlan::Create;
        };
        let value = parse_value(&existing.value).unwrap_or(JsonValue::Null);
        let owner = value.str_of("owner");
        if owner != self.config.owner {
            let api = value
                .list_of("api")
                .iter()
                .filter_map(JsonValue::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            return ClaimPlan::Refused {
                owner: owner.to_string(),
                api,
            };
        }
        if existing.lease == lease {
            ClaimPlan::Keep {
                revision: existing.mod_revision,
            }
        } else {
            ClaimPlan::TakeOver {
                revision: existing.mod_revision,
                old_lease: existing.lease,
            }
        }
    }

    /// The claim's transaction for `plan` (`Create` or `TakeOver`): the comparison, the write
    /// of `value` on `lease`, and the read of the tracker key when the comparison fails.
    pub fn claim_txn(
        &self,
        plan: &ClaimPlan,
        value: Vec<u8>,
        lease: u64,
    ) -> (Vec<Compare>, Vec<Op>, Vec<Op>) {
        let key = self.tracker_key().into_bytes();
        let compare = match plan {
            ClaimPlan::TakeOver { revision, .. } | ClaimPlan::Keep { revision } => {
                Compare::ModRevision(key.clone(), *revision)
            }
            ClaimPlan::Create | ClaimPlan::Refused { .. } => {
                Compare::CreateRevision(key.clone(), 0)
            }
        };
        let put = Op::Put {
            key: key.clone(),
            value,
            lease,
        };
        (vec![compare], vec![put], vec![Op::Get { key }])
    }

    /// The claim holds from `revision` on (the tracker key's `mod_revision`). What etcd holds
    /// of the site is to be read again ([`Publisher::on_site_keys`], [`Publisher::on_head`]).
    pub fn on_claimed(&mut self, revision: u64) {
        self.claim = Some(revision);
        self.published.clear();
        self.events = None;
    }

    /// Forgets the claim and everything known of etcd (after a failure: all is read again).
    pub fn on_lost(&mut self) {
        self.claim = None;
        self.published.clear();
        self.events = None;
    }

    /// The comparison every write after the claim is guarded by.
    pub fn guard(&self) -> Option<Compare> {
        self.claim
            .map(|revision| Compare::ModRevision(self.tracker_key().into_bytes(), revision))
    }

    /// The site's state keys as etcd holds them now (a keys-only range of
    /// `PREFIX/sites/SITE/`): each is rewritten at the next round, or deleted when the
    /// repository does not hold it.
    pub fn on_site_keys<'a>(&mut self, keys: impl IntoIterator<Item = &'a [u8]>) {
        self.published.clear();
        for key in keys {
            let entry = match self.layout.parse(key) {
                Some(super::Key::Hypervisor(site, host)) if site == self.config.site => {
                    Entry::Hypervisor(host)
                }
                Some(super::Key::Vm(site, vm)) if site == self.config.site => Entry::Vm(vm),
                Some(super::Key::Tenant(site, tenant, vm)) if site == self.config.site => {
                    Entry::Tenant(tenant, vm)
                }
                _ => continue,
            };
            self.published.insert(entry, 0);
        }
    }

    /// The site's head as read (`None`: absent), given the journal's last sequence number.
    pub fn on_head(&mut self, head: Option<&[u8]>, journal_last: u64) -> HeadPlan {
        let value = head
            .and_then(|bytes| parse_value(bytes).ok())
            .unwrap_or(JsonValue::Null);
        let last = value
            .get("last_seq")
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        let first = value
            .get("first_seq")
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        if last > journal_last {
            return HeadPlan::Restart { head: last };
        }
        self.events = Some(last);
        self.first_event = first;
        HeadPlan::After(last)
    }

    /// The operation deleting every event of the site (with [`HeadPlan::Restart`]).
    pub fn delete_events(&self) -> Op {
        let prefix = self.layout.events(&self.config.site).into_bytes();
        let end = crate::wire::etcd::prefix_end(&prefix);
        Op::Delete {
            key: prefix,
            end: Some(end),
        }
    }

    /// After the site's events were deleted: publish from the first.
    pub fn on_events_restarted(&mut self) {
        self.events = Some(0);
        self.first_event = 0;
    }

    /// The changes that bring etcd to `desired` (every entry of the repository now, with the
    /// hash of the record it is written from), in key order: puts of what is new or changed,
    /// deletes of what is gone.
    pub fn diff(&self, desired: &BTreeMap<Entry, u64>) -> Vec<Change> {
        let mut changes = Vec::new();
        for (entry, hash) in desired {
            if self.published.get(entry) != Some(hash) {
                changes.push(Change::Put(entry.clone(), *hash));
            }
        }
        for entry in self.published.keys() {
            if !desired.contains_key(entry) {
                changes.push(Change::Delete(entry.clone()));
            }
        }
        changes
    }

    /// `changes` are in etcd.
    pub fn on_written(&mut self, changes: &[Change]) {
        for change in changes {
            match change {
                Change::Put(entry, hash) => {
                    self.published.insert(entry.clone(), *hash);
                }
                Change::Delete(entry) => {
                    self.published.remove(entry);
                }
            }
        }
    }

    /// Entries in etcd now, as far as the publisher knows.
    pub fn published_len(&self) -> usize {
        self.published.len()
    }

    /// Operations per transaction now.
    pub fn max_ops(&self) -> usize {
        self.max_ops
    }

    /// Bytes per transaction, about, at most.
    pub fn max_bytes(&self) -> usize {
        self.config.max_bytes
    }

    /// Whether one more operation of `size` bytes joins a transaction that holds `count`
    /// operations of `bytes` bytes (an operation alone always makes a transaction).
    pub fn fits(&self, count: usize, bytes: usize, size: usize) -> bool {
        count == 0 || (count < self.max_ops && bytes.saturating_add(size) <= self.config.max_bytes)
    }

    /// etcd refused a transaction as too large: the next ones hold half as many operations.
    /// `false` when a transaction of one operation already was (it cannot be split).
    pub fn on_too_large(&mut self) -> bool {
        if self.max_ops == 1 {
            return false;
        }
        self.max_ops = (self.max_ops / 2).max(1);
        true
    }

    /// A transaction went through: grow back towards the configured size.
    pub fn on_txn_ok(&mut self) {
        self.max_ops = (self.max_ops + 1).min(self.config.max_ops.max(1));
    }

    /// Last event in etcd, once known.
    pub fn events_published(&self) -> Option<u64> {
        self.events
    }

    /// The sequence numbers to publish next, given the journal's last: the first and how many
    /// at most; `None` when etcd is up to date (or its head is not known yet). After an outage
    /// longer than the retention, the older events are skipped (they would be deleted at once).
    pub fn next_events(&self, journal_last: u64) -> Option<(u64, usize)> {
        let published = self.events?;
        if journal_last <= published {
            return None;
        }
        let oldest_kept = journal_last.saturating_sub(self.config.events_kept.max(1)) + 1;
        let first = (published + 1).max(oldest_kept);
        // One put per event plus the head and the retention delete.
        let room = self.max_ops.saturating_sub(2).max(1);
        let count = usize::try_from(journal_last - first + 1)
            .unwrap_or(usize::MAX)
            .min(room);
        Some((first, count))
    }

    /// The operations publishing `events` (sequence number and value, in order, following
    /// [`Publisher::next_events`]): their puts, the head, and the retention delete.
    pub fn event_ops(&self, events: &[(u64, Vec<u8>)], now: u64) -> Vec<Op> {
        let site = &self.config.site;
        let Some(last) = events.last().map(|(seq, _)| *seq) else {
            return Vec::new();
        };
        let mut ops: Vec<Op> = events
            .iter()
            .map(|(seq, value)| Op::Put {
                key: self.layout.event(site, *seq).into_bytes(),
                value: value.clone(),
                lease: 0,
            })
            .collect();
        let first = self.first_after(last);
        let mut json = JsonWriter::new();
        json.begin_object();
        json.key("first_seq").number(first);
        json.key("last_seq").number(last);
        json.key("owner").string(&self.config.owner);
        json.key("time").number(now);
        json.end_object();
        ops.push(Op::Put {
            key: self.layout.head(site).into_bytes(),
            value: json.finish().unwrap_or_default(),
            lease: 0,
        });
        if first > self.first_event.max(1) {
            ops.push(Op::Delete {
                key: self.layout.event(site, 0).into_bytes(),
                end: Some(self.layout.event(site, first).into_bytes()),
            });
        }
        ops
    }

    /// The oldest event kept once `last` is published.
    fn first_after(&self, last: u64) -> u64 {
        let kept = self.config.events_kept.max(1);
        let oldest = last.saturating_sub(kept) + 1;
        let known = self.first_event.max(1);
        oldest.max(known).min(last)
    }

    /// Events up to `last` are in etcd.
    pub fn on_events_written(&mut self, last: u64) {
        self.first_event = self.first_after(last);
        self.events = Some(last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWNER: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000a001";

    fn publisher() -> Publisher {
        Publisher::new(
            Layout::new("/xp").unwrap(),
            Config {
                site: "paris".into(),
                owner: OWNER.into(),
                ttl: 10,
                events_kept: 5,
                max_ops: 4,
                max_bytes: 1000,
            },
        )
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn tracker_kv(owner: &str, lease: u64, revision: u64) -> KeyValue {
        let value = format!("{{\"owner\":\"{owner}\",\"api\":[\"http://10.0.0.5:8700\"]}}");
        KeyValue {
            key: b"/xp/sites/paris/tracker".to_vec(),
            value: value.into_bytes(),
            create_revision: 3,
            mod_revision: revision,
            lease,
        }
    }

    #[test]
    fn a_site_is_claimed_once() {
        let publisher = publisher();
        assert_eq!(publisher.plan_claim(None, 7), ClaimPlan::Create);
        assert_eq!(
            publisher.plan_claim(Some(&tracker_kv(OWNER, 7, 9)), 7),
            ClaimPlan::Keep { revision: 9 }
        );
        assert_eq!(
            publisher.plan_claim(Some(&tracker_kv(OWNER, 6, 9)), 7),
            ClaimPlan::TakeOver {
                revision: 9,
                old_lease: 6
            }
        );
        assert_eq!(
            publisher.plan_claim(Some(&tracker_kv("someone-else", 6, 9)), 7),
            ClaimPlan::Refused {
                owner: "someone-else".into(),
                api: "http://10.0.0.5:8700".into()
            }
        );
        let (compare, success, failure) = publisher.claim_txn(&ClaimPlan::Create, b"v".to_vec(), 7);
        assert_eq!(
            compare,
            [Compare::CreateRevision(
                b"/xp/sites/paris/tracker".to_vec(),
                0
            )]
        );
        assert!(matches!(&success[0], Op::Put { lease: 7, .. }));
        assert!(matches!(&failure[0], Op::Get { .. }));
        let value = publisher.tracker_value(
            7,
            &["http://10.0.0.5:8700".into()],
            &[("mgmt".into(), true)],
            100,
        );
        let value = parse_value(&value).unwrap();
        assert_eq!(value.str_of("owner"), OWNER);
        assert_eq!(value.str_of("lease"), "7");
    }

    #[test]
    fn writes_are_guarded_by_the_claim() {
        let mut publisher = publisher();
        assert_eq!(
            publisher.guard(),
            None,
            "nothing is written before the claim"
        );
        publisher.on_claimed(12);
        assert_eq!(
            publisher.guard(),
            Some(Compare::ModRevision(
                b"/xp/sites/paris/tracker".to_vec(),
                12
            ))
        );
        publisher.on_lost();
        assert!(!publisher.claimed());
    }

    #[test]
    fn only_changes_are_written_and_leftovers_deleted() {
        let mut publisher = publisher();
        publisher.on_claimed(2);
        let stale = "/xp/sites/paris/vms/00000000-0000-0000-0000-000000000009";
        let kept = "/xp/sites/paris/vms/00000000-0000-0000-0000-000000000001";
        publisher.on_site_keys([
            stale.as_bytes(),
            kept.as_bytes(),
            b"/xp/sites/paris/tracker",
            b"/xp/sites/lyon/vms/00000000-0000-0000-0000-000000000003",
        ]);
        assert_eq!(publisher.published_len(), 2, "only this site's state keys");
        let desired: BTreeMap<Entry, u64> = [
            (Entry::Hypervisor(id(5)), 50),
            (Entry::Vm(id(1)), 10),
            (Entry::Tenant("acme".into(), id(1)), 10),
        ]
        .into_iter()
        .collect();
        let changes = publisher.diff(&desired);
        assert_eq!(
            changes,
            [
                Change::Put(Entry::Hypervisor(id(5)), 50),
                Change::Put(Entry::Vm(id(1)), 10),
                Change::Put(Entry::Tenant("acme".into(), id(1)), 10),
                Change::Delete(Entry::Vm(id(9))),
            ],
            "what etcd held is rewritten once: its content is not known"
        );
        publisher.on_written(&changes);
        assert!(publisher.diff(&desired).is_empty());
        let mut moved = desired.clone();
        moved.insert(Entry::Vm(id(1)), 11);
        moved.remove(&Entry::Tenant("acme".into(), id(1)));
        assert_eq!(
            publisher.diff(&moved),
            [
                Change::Put(Entry::Vm(id(1)), 11),
                Change::Delete(Entry::Tenant("acme".into(), id(1))),
            ]
        );
        assert_eq!(
            Entry::Tenant("acme".into(), id(1)).key(publisher.layout(), "paris"),
            "/xp/sites/paris/tenants/acme/00000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn events_continue_after_the_head_and_are_kept_bounded() {
        let mut publisher = publisher();
        publisher.on_claimed(2);
        assert_eq!(publisher.next_events(3), None, "the head is not known yet");
        assert_eq!(
            publisher.on_head(Some(b"{\"first_seq\":1,\"last_seq\":2}"), 3),
            HeadPlan::After(2)
        );
        // Room for two events besides the head and the delete.
        assert_eq!(publisher.next_events(3), Some((3, 1)));
        assert_eq!(
            publisher.next_events(9),
            Some((5, 2)),
            "older than 5 kept: skipped"
        );
        let ops = publisher.event_ops(&[(3, b"e3".to_vec())], 100);
        assert_eq!(
            ops.len(),
            2,
            "the event and the head, nothing to delete yet"
        );
        publisher.on_events_written(3);
        let ops = publisher.event_ops(&[(7, b"e7".to_vec()), (8, b"e8".to_vec())], 101);
        assert_eq!(ops.len(), 4);
        let Op::Put { value, .. } = &ops[2] else {
            panic!("the head")
        };
        let head = parse_value(value).unwrap();
        assert_eq!(head.get("first_seq").and_then(JsonValue::as_u64), Some(4));
        assert_eq!(head.get("last_seq").and_then(JsonValue::as_u64), Some(8));
        assert_eq!(
            ops[3],
            Op::Delete {
                key: b"/xp/events/paris/00000000000000000000".to_vec(),
                end: Some(b"/xp/events/paris/00000000000000000004".to_vec())
            }
        );
        publisher.on_events_written(8);
        assert_eq!(publisher.next_events(8), None);
        // A head beyond the journal: a new repository.
        assert_eq!(
            publisher.on_head(Some(b"{\"last_seq\":50}"), 8),
            HeadPlan::Restart { head: 50 }
        );
        publisher.on_events_restarted();
        assert_eq!(publisher.next_events(8).map(|(first, _)| first), Some(4));
    }

    #[test]
    fn too_large_halves_the_batches() {
        let mut publisher = publisher();
        assert!(publisher.on_too_large());
        assert_eq!(publisher.max_ops(), 2);
        assert!(publisher.on_too_large());
        assert!(!publisher.on_too_large(), "one operation cannot be split");
        publisher.on_txn_ok();
        assert_eq!(publisher.max_ops(), 2);
        assert!(publisher.fits(1, 10, 10));
        assert!(!publisher.fits(2, 10, 10), "two operations now");
        assert!(!publisher.fits(1, 600, 600), "over the bytes");
        assert!(publisher.fits(0, 0, 5000), "alone, whatever its size");
    }
}
