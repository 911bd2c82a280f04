//! Engine layer: every site as a console sees it in etcd (see the [layout](super)), and one
//! event feed for all of them. State only: the net layer reads the keys (a range, then a
//! watch from the revision after it) and hands them here; time is passed in; never panics on
//! what etcd holds (a value that is not what a tracker writes is skipped).
//!
//! Each site's tree ([`ClusterView::site_tree`]) is the read API's provider document, built
//! from its keys; the console merges them as it merges several trackers' trees. Sites are
//! live while their tracker key exists, gone once its lease took it away but their head
//! remains ([`ClusterView::sites`]).
//!
//! The feed ([`ClusterView::events_since`]) is the sites' journal events in etcd's revision
//! order, each with `"site"` added, and read as one view over all sites:
//! - a VM added (or re-virtualized) at one site while the view places it on a hypervisor of
//!   another, or while its removal elsewhere is held, is one `vm-migrated` (`from`, `to`,
//!   `from_site`, `to_site`);
//! - a VM removed (or de-virtualized) at one site while another site's keys place it on
//!   another hypervisor is that `vm-migrated`, told with the removal (a tracker may publish
//!   its keys before the events that made them, which it publishes once they are durable, so
//!   the other site's add can come later, as old news); while another site places it where
//!   the view had it, it is no event; one that no site places is held for the hold time (a VM
//!   moving between sites may be dropped by the first before the second lists it), then
//!   told, unless a site listed it meanwhile (then that is the `vm-migrated`);
//! - what several trackers on the same networks each journal is told once: a VM added or
//!   migrated to where the view already places it, a run state or name it already has, a
//!   hypervisor another live site still lists (added or removed);
//! - `site-up` and `site-gone` (subject: the site) when a tracker key appears or goes.
//!
//! Each event of the feed carries `seq` (this view's own, increasing), `revision` (etcd's),
//! and the site's `site_seq` when it came from a journal.

use super::{Key, Layout};
use crate::wire::etcd::{KeyValue, WatchEvent};
use crate::wire::json::{parse_value, JsonValue, JsonWriter};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long a VM's removal no site places is held before it is told: the time a VM moving
/// between sites may spend listed by neither.
pub const CLUSTER_DEFAULT_HOLD: Duration = Duration::from_secs(10);
/// Events the feed keeps for its readers, at most.
const CLUSTER_EVENTS_KEPT: usize = 1024;
/// Held removals, at most (a site that drops every VM at once holds them all; past this the
/// oldest are told at once).
const CLUSTER_MAX_HELD: usize = 65_536;

/// One site's keys.
#[derive(Debug, Clone, Default, PartialEq)]
struct Site {
    tracker: Option<JsonValue>,
    head: Option<JsonValue>,
    hypervisors: BTreeMap<Uuid, JsonValue>,
    vms: BTreeMap<Uuid, JsonValue>,
}

/// A site as the view knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteSummary {
    /// Its name.
    pub name: String,
    /// Whether its tracker key exists.
    pub live: bool,
    /// Its tracker's read API URLs, as published.
    pub api: Vec<String>,
    /// Its head's last event (0: none).
    pub last_seq: u64,
    /// Hypervisors and VMs it lists.
    pub hypervisors: usize,
    /// VMs it lists.
    pub vms: usize,
}

/// Where the feed last said a VM is, and what it is like.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placed {
    host: Option<Uuid>,
    site: String,
    run_state: String,
    name: String,
}

/// A removal told later unless a site lists the VM meanwhile.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    due: Instant,
    placed: Option<Placed>,
    event: JsonValue,
}

/// Every site in one cluster, and the feed.
#[derive(Debug, Clone)]
pub struct ClusterView {
    layout: Layout,
    hold: Duration,
    sites: BTreeMap<String, Site>,
    revision: u64,
    placed: BTreeMap<Uuid, Placed>,
    held: BTreeMap<Uuid, Held>,
    /// Events told, oldest first, with their `seq`.
    feed: VecDeque<(u64, JsonValue)>,
    seq: u64,
}

fn uuid_of(text: &str) -> Option<Uuid> {
    Uuid::try_parse(text).ok()
}

fn detail<'a>(event: &'a JsonValue, name: &str) -> Option<&'a str> {
    event
        .get("details")
        .and_then(|d| d.get(name))
        .and_then(JsonValue::as_str)
}

/// `event` told as the `vm-migrated` of a VM the view placed at `from` and a site now places
/// at `to`.
fn migration(event: &JsonValue, from: &Placed, to: &Placed) -> JsonValue {
    let mut details = Vec::new();
    if let Some(host) = from.host {
        details.push(("from".to_string(), text(&host.to_string())));
    }
    if let Some(host) = to.host {
        details.push(("to".to_string(), text(&host.to_string())));
    }
    details.push(("to_site".to_string(), text(&to.site)));
    if from.host.is_some() {
        details.push(("from_site".to_string(), text(&from.site)));
    }
    with_fields(
        event,
        &[
            ("kind", text("vm-migrated")),
            ("details", JsonValue::Object(details)),
        ],
    )
}

/// `event` with `fields` set (replaced or added).
fn with_fields(event: &JsonValue, fields: &[(&str, JsonValue)]) -> JsonValue {
    let mut members: Vec<(String, JsonValue)> = event
        .as_object()
        .unwrap_or(&[])
        .iter()
        .filter(|(name, _)| !fields.iter().any(|(set, _)| set == name))
        .cloned()
        .collect();
    members.extend(fields.iter().map(|(n, v)| (n.to_string(), v.clone())));
    JsonValue::Object(members)
}

fn text(value: &str) -> JsonValue {
    JsonValue::String(value.to_string())
}

fn number(value: u64) -> JsonValue {
    JsonValue::Number(value.to_string())
}

impl ClusterView {
    /// An empty view of the keys under `layout`, holding removals for `hold`.
    pub fn new(layout: Layout, hold: Duration) -> ClusterView {
        ClusterView {
            layout,
            hold,
            sites: BTreeMap::new(),
            revision: 0,
            placed: BTreeMap::new(),
            held: BTreeMap::new(),
            feed: VecDeque::new(),
            seq: 0,
        }
    }

    /// The layout.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// The revision the view is at: watch from the one after.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// Starts over from `kvs`, every key of `PREFIX/sites/` and `PREFIX/heads/` read at
    /// `revision` (events are history: not read). What the feed told stays; held removals are
    /// dropped (what they were about is in the keys now).
    pub fn load(&mut self, kvs: &[KeyValue], revision: u64) {
        self.sites.clear();
        self.held.clear();
        self.placed.clear();
        for kv in kvs {
            if let Some(key) = self.layout.parse(&kv.key) {
                self.set(&key, Some(&kv.value));
            }
        }
        for (name, site) in &self.sites {
            if site.tracker.is_none() {
                continue;
            }
            for (vm, value) in &site.vms {
                let entry = Placed {
                    host: uuid_of(value.str_of("hypervisor")),
                    site: name.clone(),
                    run_state: value.str_of("run_state").to_string(),
                    name: value.str_of("name").to_string(),
                };
                // A placing site wins over one that does not place it.
                let keep = self
                    .placed
                    .get(vm)
                    .is_some_and(|old| old.host.is_some() || entry.host.is_none());
                if !keep {
                    self.placed.insert(*vm, entry);
                }
            }
        }
        self.revision = revision;
    }

    /// Sets (or with `None`, deletes) one key; says whether a tracker key came or went.
    fn set(&mut self, key: &Key, value: Option<&[u8]>) -> Option<bool> {
        let parsed = value.map(|bytes| parse_value(bytes).unwrap_or(JsonValue::Null));
        let site = self.sites.entry(key.site().to_string()).or_default();
        match key {
            Key::Tracker(_) => {
                let was = site.tracker.is_some();
                site.tracker = parsed;
                let is = site.tracker.is_some();
                return (was != is).then_some(is);
            }
            Key::Head(_) => site.head = parsed,
            Key::Hypervisor(_, host) => match parsed {
                Some(value) => {
                    site.hypervisors.insert(*host, value);
                }
                None => {
                    site.hypervisors.remove(host);
                }
            },
            Key::Vm(_, vm) => match parsed {
                Some(value) => {
                    site.vms.insert(*vm, value);
                }
                None => {
                    site.vms.remove(vm);
                }
            },
            Key::Tenant(..) | Key::Event(..) => {}
        }
        None
    }

    /// Takes in changes a watch reported (in revision order): the keys first, then, for each
    /// revision, its journal events read against the keys as they are after it. `now` is when
    /// they arrived, `wall` the Unix time (for the events this view makes itself).
    pub fn apply(&mut self, now: Instant, wall: u64, changes: &[WatchEvent]) {
        let mut at = 0;
        while at < changes.len() {
            let revision = changes.get(at).map_or(0, |c| c.kv.mod_revision);
            let end = changes
                .iter()
                .skip(at)
                .position(|c| c.kv.mod_revision != revision)
                .map_or(changes.len(), |n| at + n);
            let group = changes.get(at..end).unwrap_or_default();
            let mut journal = Vec::new();
            for change in group {
                let Some(key) = self.layout.parse(&change.kv.key) else {
                    continue;
                };
                if let Key::Event(site, seq) = &key {
                    if !change.deleted {
                        if let Ok(event) = parse_value(&change.kv.value) {
                            journal.push((site.clone(), *seq, event));
                        }
                    }
                    continue;
                }
                let value = (!change.deleted).then_some(change.kv.value.as_slice());
                if let Some(up) = self.set(&key, value) {
                    let site = key.site().to_string();
                    let kind = if up { "site-up" } else { "site-gone" };
                    let mut details = Vec::new();
                    if up {
                        let api = self.site_api(&site).join(" ");
                        details.push(("api".to_string(), text(&api)));
                    }
                    let event = JsonValue::Object(vec![
                        ("time".to_string(), number(wall)),
                        ("kind".to_string(), text(kind)),
                        ("subject".to_string(), text(&site)),
                        ("details".to_string(), JsonValue::Object(details)),
                    ]);
                    self.tell(revision, &site, None, event);
                }
            }
            for (site, seq, event) in journal {
                self.read_event(now, revision, &site, seq, &event);
            }
            self.revision = self.revision.max(revision);
            at = end;
        }
    }

    /// The watch is at `revision` with nothing to report (a progress notice).
    pub fn on_progress(&mut self, revision: u64) {
        self.revision = self.revision.max(revision);
    }

    /// Adds `event` to the feed.
    fn tell(&mut self, revision: u64, site: &str, site_seq: Option<u64>, event: JsonValue) {
        self.seq += 1;
        let mut fields = vec![
            ("seq", number(self.seq)),
            ("revision", number(revision)),
            ("site", text(site)),
        ];
        if let Some(site_seq) = site_seq {
            fields.push(("site_seq", number(site_seq)));
        }
        let event = with_fields(&event, &fields);
        self.feed.push_back((self.seq, event));
        while self.feed.len() > CLUSTER_EVENTS_KEPT {
            self.feed.pop_front();
        }
    }

    /// Another live site than `site` whose keys place `vm` on a hypervisor.
    fn placed_elsewhere(&self, site: &str, vm: &Uuid) -> Option<Placed> {
        self.sites
            .iter()
            .filter(|(name, s)| name.as_str() != site && s.tracker.is_some())
            .find_map(|(name, s)| {
                let value = s.vms.get(vm)?;
                let host = uuid_of(value.str_of("hypervisor"))?;
                Some(Placed {
                    host: Some(host),
                    site: name.clone(),
                    run_state: value.str_of("run_state").to_string(),
                    name: value.str_of("name").to_string(),
                })
            })
    }

    /// Whether a live site other than `site` lists hypervisor `host`.
    fn host_elsewhere(&self, site: &str, host: &Uuid) -> bool {
        self.sites.iter().any(|(name, s)| {
            name.as_str() != site && s.tracker.is_some() && s.hypervisors.contains_key(host)
        })
    }

    /// One journal event of `site`, at `revision`.
    fn read_event(&mut self, now: Instant, revision: u64, site: &str, seq: u64, event: &JsonValue) {
        let kind = event.str_of("kind");
        let subject = uuid_of(event.str_of("subject"));
        let tell_as_is =
            |view: &mut ClusterView| view.tell(revision, site, Some(seq), event.clone());
        let Some(id) = subject else {
            return tell_as_is(self);
        };
        match kind {
            "vm-added" | "vm-revirtualized" => {
                let Some(host) = detail(event, "hypervisor").and_then(uuid_of) else {
                    return tell_as_is(self);
                };
                let held = self.held.remove(&id);
                let before = self
                    .placed
                    .get(&id)
                    .cloned()
                    .or_else(|| held.as_ref().and_then(|h| h.placed.clone()));
                let name = detail(event, "name").unwrap_or_default().to_string();
                let mut now_placed = Placed {
                    host: Some(host),
                    site: site.to_string(),
                    run_state: String::new(),
                    name: name.clone(),
                };
                match before {
                    Some(old) if old.host == Some(host) => {
                        // Told already, by this site or another on the same networks; or back
                        // where it was before a removal that was held.
                        now_placed.run_state = old.run_state;
                        if name.is_empty() {
                            now_placed.name = old.name;
                        }
                    }
                    Some(old) => {
                        let migrated = migration(event, &old, &now_placed);
                        self.tell(revision, site, Some(seq), migrated);
                        now_placed.run_state = old.run_state;
                        if name.is_empty() {
                            now_placed.name = old.name;
                        }
                    }
                    None => tell_as_is(self),
                }
                self.placed.insert(id, now_placed);
            }
            "vm-migrated" => {
                self.held.remove(&id);
                let Some(to) = detail(event, "to").and_then(uuid_of) else {
                    return tell_as_is(self);
                };
                let old = self.placed.get(&id).cloned();
                if old.as_ref().and_then(|p| p.host) == Some(to) {
                    return;
                }
                let from = old
                    .as_ref()
                    .and_then(|p| p.host)
                    .map(|h| h.to_string())
                    .or_else(|| detail(event, "from").map(str::to_string));
                let mut details = Vec::new();
                if let Some(from) = from {
                    details.push(("from".to_string(), text(&from)));
                }
                details.push(("to".to_string(), text(&to.to_string())));
                self.tell(
                    revision,
                    site,
                    Some(seq),
                    with_fields(event, &[("details", JsonValue::Object(details))]),
                );
                let mut placed = old.unwrap_or(Placed {
                    host: None,
                    site: site.to_string(),
                    run_state: String::new(),
                    name: String::new(),
                });
                placed.host = Some(to);
                placed.site = site.to_string();
                self.placed.insert(id, placed);
            }
            "vm-removed" | "vm-devirtualized" => {
                if let Some(other) = self.placed_elsewhere(site, &id) {
                    // Another site still places it: no removal. If the view had it here, it
                    // is there now, a migration when on another hypervisor.
                    let old = self.placed.get(&id).cloned();
                    if old.as_ref().is_none_or(|p| p.site == site) {
                        if let Some(old) = old.filter(|old| old.host != other.host) {
                            // On another hypervisor: it moved there, and that site's add,
                            // published after its keys, is still to be read, as old news.
                            let migrated = migration(event, &old, &other);
                            self.tell(revision, site, Some(seq), migrated);
                        }
                        self.placed.insert(id, other);
                    }
                    return;
                }
                let placed = self.placed.remove(&id);
                if placed.as_ref().is_some_and(|p| p.site != site) {
                    // The view places it at a site whose keys do not show it yet (its
                    // add was journaled, its keys follow): this site's removal is old news.
                    if let Some(placed) = placed {
                        self.placed.insert(id, placed);
                    }
                    return;
                }
                if self.held.len() >= CLUSTER_MAX_HELD {
                    self.release_oldest(revision);
                }
                self.held.insert(
                    id,
                    Held {
                        due: crate::engine::later(now, self.hold),
                        placed,
                        event: with_fields(
                            event,
                            &[
                                ("revision", number(revision)),
                                ("site", text(site)),
                                ("site_seq", number(seq)),
                            ],
                        ),
                    },
                );
            }
            "vm-state-changed" | "vm-renamed" => {
                let to = detail(event, "to").unwrap_or_default().to_string();
                let state = kind == "vm-state-changed";
                if let Some(placed) = self.placed.get_mut(&id) {
                    let field = if state {
                        &mut placed.run_state
                    } else {
                        &mut placed.name
                    };
                    if *field == to {
                        return;
                    }
                    *field = to;
                }
                tell_as_is(self);
            }
            "hypervisor-added" | "hypervisor-removed" => {
                if !self.host_elsewhere(site, &id) {
                    tell_as_is(self);
                }
            }
            _ => tell_as_is(self),
        }
    }

    /// Tells the held removal due first, now.
    fn release_oldest(&mut self, revision: u64) {
        let oldest = self
            .held
            .iter()
            .min_by_key(|(_, held)| held.due)
            .map(|(id, _)| *id);
        if let Some(held) = oldest.and_then(|id| self.held.remove(&id)) {
            self.tell_held(revision, held);
        }
    }

    fn tell_held(&mut self, revision: u64, held: Held) {
        let site = held.event.str_of("site").to_string();
        let seq = held
            .event
            .get("site_seq")
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        let revision = held
            .event
            .get("revision")
            .and_then(JsonValue::as_u64)
            .unwrap_or(revision);
        self.tell(revision, &site, Some(seq), held.event);
    }

    /// When the next held removal is due.
    pub fn poll_at(&self) -> Option<Instant> {
        self.held.values().map(|held| held.due).min()
    }

    /// Tells the held removals due at `now`.
    pub fn take_due(&mut self, now: Instant) {
        let due: Vec<Uuid> = self
            .held
            .iter()
            .filter(|(_, held)| held.due <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(held) = self.held.remove(&id) {
                self.tell_held(self.revision, held);
            }
        }
    }

    /// The feed's events after `since` (its `seq`), oldest first, at most `limit`; and the
    /// feed's last `seq`. Events older than what the feed keeps are gone: a reader that fell
    /// that far behind reads the tree again.
    pub fn events_since(&self, since: u64, limit: usize) -> (Vec<&JsonValue>, u64) {
        let events = self
            .feed
            .iter()
            .filter(|(seq, _)| *seq > since)
            .take(limit)
            .map(|(_, event)| event)
            .collect();
        (events, self.seq)
    }

    /// The feed's last `seq`.
    pub fn last_seq(&self) -> u64 {
        self.seq
    }

    fn site_api(&self, site: &str) -> Vec<String> {
        self.sites
            .get(site)
            .and_then(|s| s.tracker.as_ref())
            .map(|tracker| {
                tracker
                    .list_of("api")
                    .iter()
                    .filter_map(JsonValue::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every site that has a tracker key or a head, by name.
    pub fn sites(&self) -> Vec<SiteSummary> {
        self.sites
            .iter()
            .filter(|(_, site)| site.tracker.is_some() || site.head.is_some())
            .map(|(name, site)| SiteSummary {
                name: name.clone(),
                live: site.tracker.is_some(),
                api: self.site_api(name),
                last_seq: site
                    .head
                    .as_ref()
                    .and_then(|head| head.get("last_seq"))
                    .and_then(JsonValue::as_u64)
                    .unwrap_or(0),
                hypervisors: site.hypervisors.len(),
                vms: site.vms.len(),
            })
            .collect()
    }

    /// A live site's tree, as its tracker's `GET /api/tree` answers the provider (without
    /// `undescribed`, which is not published); `None` for a site that is not live.
    pub fn site_tree(&self, name: &str) -> Option<Vec<u8>> {
        let site = self.sites.get(name).filter(|s| s.tracker.is_some())?;
        let placed_on = |vm: &JsonValue| uuid_of(vm.str_of("hypervisor"));
        let mut json = JsonWriter::new();
        json.begin_object();
        json.key("hypervisors").begin_array();
        for (host, value) in &site.hypervisors {
            let Some(fields) = value.as_object() else {
                continue;
            };
            json.begin_object();
            for (field, item) in fields.iter().filter(|(field, _)| field != "vms") {
                json.key(field).any(item);
            }
            json.key("vms").begin_array();
            for vm in site.vms.values().filter(|vm| placed_on(vm) == Some(*host)) {
                json.any(vm);
            }
            json.end_array();
            json.end_object();
        }
        json.end_array();
        json.key("devirtualized").begin_array();
        for vm in site.vms.values() {
            let placed = placed_on(vm).is_some_and(|host| site.hypervisors.contains_key(&host));
            if !placed && vm.as_object().is_some() {
                json.any(vm);
            }
        }
        json.end_array();
        json.key("undescribed").begin_array().end_array();
        let last = site
            .head
            .as_ref()
            .and_then(|head| head.get("last_seq"))
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        json.key("last_seq").number(last);
        json.end_object();
        json.finish().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
    const HOST_B: &str = "b2b2b2b2-0000-4000-8000-00000000000b";
    const VM: &str = "acac0001-1111-4a6b-8c9d-0000000000a1";

    fn layout() -> Layout {
        Layout::new("/xp").unwrap()
    }

    fn kv(key: String, value: &str, revision: u64) -> KeyValue {
        KeyValue {
            key: key.into_bytes(),
            value: value.as_bytes().to_vec(),
            create_revision: revision,
            mod_revision: revision,
            lease: 0,
        }
    }

    fn put(key: String, value: &str, revision: u64) -> WatchEvent {
        WatchEvent {
            deleted: false,
            kv: kv(key, value, revision),
        }
    }

    fn delete(key: String, revision: u64) -> WatchEvent {
        WatchEvent {
            deleted: true,
            kv: kv(key, "", revision),
        }
    }

    fn tracker(api: &str) -> String {
        format!("{{\"owner\":\"o\",\"api\":[\"{api}\"]}}")
    }

    fn vm_on(host: &str, state: &str) -> String {
        format!(
            "{{\"uuid\":\"{VM}\",\"name\":\"web\",\"run_state\":\"{state}\",\"hypervisor\":\"{host}\",\"services\":[],\"first_seen\":1,\"last_seen\":2}}"
        )
    }

    fn host(id: &str) -> String {
        format!("{{\"uuid\":\"{id}\",\"name\":\"dom0\",\"network\":\"mgmt\",\"addresses\":[],\"state\":\"online\",\"first_seen\":1,\"last_seen\":2}}")
    }

    fn event(seq: u64, kind: &str, details: &str) -> String {
        format!("{{\"seq\":{seq},\"time\":5,\"kind\":\"{kind}\",\"subject\":\"{VM}\",\"network\":\"mgmt\",\"details\":{{{details}}}}}")
    }

    fn uuid(text: &str) -> Uuid {
        Uuid::parse_str(text).unwrap()
    }

    /// Sites a (host A, placing the VM) and b (host B, nothing yet), live.
    fn two_sites() -> ClusterView {
        let l = layout();
        let mut view = ClusterView::new(l.clone(), Duration::from_secs(10));
        view.load(
            &[
                kv(l.tracker("a"), &tracker("http://10.0.0.1:8700"), 2),
                kv(l.tracker("b"), &tracker("http://10.0.0.2:8700"), 3),
                kv(l.hypervisor("a", &uuid(HOST_A)), &host(HOST_A), 4),
                kv(l.hypervisor("b", &uuid(HOST_B)), &host(HOST_B), 5),
                kv(l.vm("a", &uuid(VM)), &vm_on(HOST_A, "running"), 6),
                kv(l.head("a"), "{\"last_seq\":3}", 6),
            ],
            6,
        );
        view
    }

    fn kinds(view: &ClusterView) -> Vec<(String, String)> {
        view.events_since(0, 100)
            .0
            .iter()
            .map(|e| (e.str_of("kind").to_string(), e.str_of("site").to_string()))
            .collect()
    }

    #[test]
    fn site_trees_are_built_from_the_keys() {
        let view = two_sites();
        let tree = parse_value(&view.site_tree("a").unwrap()).unwrap();
        let hosts = tree.list_of("hypervisors");
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].list_of("vms")[0].str_of("uuid"), VM);
        assert_eq!(tree.get("last_seq").and_then(JsonValue::as_u64), Some(3));
        assert!(view.site_tree("nowhere").is_none());
        let sites = view.sites();
        assert_eq!(sites.len(), 2);
        assert!(sites[0].live && sites[0].api == ["http://10.0.0.1:8700"]);
    }

    #[test]
    fn a_vm_moving_between_sites_is_one_migration_whatever_the_order() {
        let l = layout();
        let start = Instant::now();
        // The destination lists it first (a live migration), then the source drops it.
        let mut view = two_sites();
        view.apply(
            start,
            9,
            &[
                put(
                    l.event("b", 1),
                    &event(
                        1,
                        "vm-added",
                        &format!("\"hypervisor\":\"{HOST_B}\",\"name\":\"web\""),
                    ),
                    7,
                ),
                put(l.vm("b", &uuid(VM)), &vm_on(HOST_B, "running"), 8),
                put(l.event("a", 4), &event(4, "vm-removed", ""), 9),
                delete(l.vm("a", &uuid(VM)), 10),
            ],
        );
        view.take_due(start + Duration::from_secs(60));
        assert_eq!(kinds(&view), [("vm-migrated".to_string(), "b".to_string())]);
        let (events, _) = view.events_since(0, 10);
        assert_eq!(detail(events[0], "from"), Some(HOST_A));
        assert_eq!(detail(events[0], "to"), Some(HOST_B));
        assert_eq!(detail(events[0], "from_site"), Some("a"));
        assert_eq!(
            events[0].get("site_seq").and_then(JsonValue::as_u64),
            Some(1)
        );

        // The source drops it first: the removal is held, and the add turns it into one
        // migration.
        let mut view = two_sites();
        view.apply(
            start,
            9,
            &[
                put(l.event("a", 4), &event(4, "vm-removed", ""), 7),
                delete(l.vm("a", &uuid(VM)), 7),
            ],
        );
        assert!(kinds(&view).is_empty(), "held");
        assert_eq!(view.poll_at(), Some(start + Duration::from_secs(10)));
        view.take_due(start + Duration::from_secs(3));
        view.apply(
            start + Duration::from_secs(3),
            9,
            &[put(
                l.event("b", 1),
                &event(1, "vm-added", &format!("\"hypervisor\":\"{HOST_B}\"")),
                8,
            )],
        );
        view.take_due(start + Duration::from_secs(60));
        assert_eq!(kinds(&view), [("vm-migrated".to_string(), "b".to_string())]);

        // The destination's keys are in etcd before its add (published once durable), and
        // the source's removal comes between them: the removal is the migration, the add
        // old news.
        let mut view = two_sites();
        view.apply(
            start,
            9,
            &[
                put(l.vm("b", &uuid(VM)), &vm_on(HOST_B, "running"), 7),
                put(l.event("a", 4), &event(4, "vm-removed", ""), 8),
                delete(l.vm("a", &uuid(VM)), 9),
                put(
                    l.event("b", 1),
                    &event(1, "vm-added", &format!("\"hypervisor\":\"{HOST_B}\"")),
                    10,
                ),
            ],
        );
        view.take_due(start + Duration::from_secs(60));
        assert_eq!(kinds(&view), [("vm-migrated".to_string(), "a".to_string())]);
        let (events, _) = view.events_since(0, 10);
        assert_eq!(detail(events[0], "from"), Some(HOST_A));
        assert_eq!(detail(events[0], "to"), Some(HOST_B));
        assert_eq!(detail(events[0], "from_site"), Some("a"));
        assert_eq!(detail(events[0], "to_site"), Some("b"));
    }

    #[test]
    fn a_removal_no_site_takes_back_is_told_after_the_hold() {
        let l = layout();
        let start = Instant::now();
        let mut view = two_sites();
        view.apply(
            start,
            9,
            &[
                put(l.event("a", 4), &event(4, "vm-removed", ""), 7),
                delete(l.vm("a", &uuid(VM)), 7),
            ],
        );
        view.take_due(start + Duration::from_secs(9));
        assert!(kinds(&view).is_empty());
        view.take_due(start + Duration::from_secs(10));
        assert_eq!(kinds(&view), [("vm-removed".to_string(), "a".to_string())]);
        assert_eq!(view.poll_at(), None);
        let (events, last) = view.events_since(0, 10);
        assert_eq!(
            events[0].get("revision").and_then(JsonValue::as_u64),
            Some(7)
        );
        assert_eq!(last, 1);
    }

    #[test]
    fn what_two_trackers_of_one_network_both_say_is_told_once() {
        let l = layout();
        let start = Instant::now();
        let mut view = two_sites();
        // Site b sees host A too, and the VM on it: b's vm-added is no news.
        let on_a = format!("\"hypervisor\":\"{HOST_A}\"");
        view.apply(
            start,
            9,
            &[
                put(l.event("b", 1), &event(1, "vm-added", &on_a), 7),
                put(l.vm("b", &uuid(VM)), &vm_on(HOST_A, "running"), 8),
                put(
                    l.event("a", 4),
                    &event(
                        4,
                        "vm-state-changed",
                        "\"from\":\"running\",\"to\":\"paused\"",
                    ),
                    9,
                ),
                put(
                    l.event("b", 2),
                    &event(
                        2,
                        "vm-state-changed",
                        "\"from\":\"running\",\"to\":\"paused\"",
                    ),
                    10,
                ),
                put(l.event("a", 5), &event(5, "vm-removed", ""), 11),
                delete(l.vm("a", &uuid(VM)), 11),
            ],
        );
        view.take_due(start + Duration::from_secs(60));
        assert_eq!(
            kinds(&view),
            [("vm-state-changed".to_string(), "a".to_string())],
            "b still places it: a's removal is no event"
        );
    }

    #[test]
    fn sites_come_and_go() {
        let l = layout();
        let start = Instant::now();
        let mut view = two_sites();
        // Site a's lease expires: its keys go in one revision.
        view.apply(
            start,
            9,
            &[
                delete(l.tracker("a"), 20),
                delete(l.hypervisor("a", &uuid(HOST_A)), 20),
                delete(l.vm("a", &uuid(VM)), 20),
            ],
        );
        assert_eq!(kinds(&view), [("site-gone".to_string(), "a".to_string())]);
        let sites = view.sites();
        assert!(!sites[0].live, "a is gone but known by its head");
        assert!(view.site_tree("a").is_none());
        view.apply(
            start,
            9,
            &[put(l.tracker("a"), &tracker("http://10.0.0.9:8700"), 21)],
        );
        let (events, _) = view.events_since(1, 10);
        assert_eq!(events[0].str_of("kind"), "site-up");
        assert_eq!(detail(events[0], "api"), Some("http://10.0.0.9:8700"));
        assert_eq!(view.revision(), 21);
    }

    #[test]
    fn junk_values_are_skipped() {
        let l = layout();
        let mut view = two_sites();
        view.apply(
            Instant::now(),
            9,
            &[
                put(l.event("a", 9), "not json", 30),
                put(l.vm("a", &uuid(HOST_B)), "[1,2]", 31),
                put("/elsewhere/x".to_string(), "{}", 32),
                put(
                    l.event("a", 10),
                    "{\"kind\":\"action\",\"subject\":\"x\"}",
                    33,
                ),
            ],
        );
        assert_eq!(kinds(&view), [("action".to_string(), "a".to_string())]);
        assert!(view.site_tree("a").is_some());
    }
}
