//! Tracker read API, as bytes: the JSON documents `GET /api/...` answers, built from the
//! repositories. No I/O; the net layer routes requests here.
//!
//! Schema (stable; fields are only ever added):
//! - `/api/tree`: `{"hypervisors":[H...],"devirtualized":[V...],"last_seq":N}` where
//!   H = `{"uuid","name","network","addresses":[..],"state","boot_id"?,"first_seen","last_seen",
//!   "vms":[V...]}` and V = `{"uuid","name","run_state","tenant"?,"hypervisor"?,"services":[S...],
//!   "first_seen","last_seen"}`, S = `{"type","actions":[{"name","semantics":[..],
//!   "inputs":[..],"outputs":[..]}]}` (the argument names, in SCPD order; empty for a record
//!   kept before they were).
//! - `POST /api/vms/<uuid>/actions` (the relay to a VM's action) and, provider only,
//!   `POST /api/hypervisors/<host uuid>/actions` (to its Hypervisor service): form body
//!   `service=<type>&action=<name>&<Arg>=<value>...`, answer `{"outputs":{..}}` or
//!   `{"error":{"code"?,"description"}}`; 404 for what the asking network may not reach.
//!   `devirtualized` lists the VMs no hypervisor places; `undescribed` (provider only) the
//!   devices seen whose description could not be fetched: `{"network","udn","address",
//!   "reason","first_seen","last_seen"}`.
//!   Filters and paging (each optional, combined; a tenant's view takes them too):
//!   `?tenant=NAME` the VMs filed under that tenant; `?host=X` the hypervisors whose UUID or
//!   name is X and their VMs (no de-virtualized VMs); `?q=TEXT` the VMs whose name or UUID
//!   contains TEXT, ignoring ASCII case, with the hypervisors holding them (a hypervisor whose
//!   own name or UUID contains it is listed with all its VMs); `?limit=N&offset=M` the VMs
//!   M to M+N-1 of the filtered tree in document order (hypervisors by UUID, their VMs by
//!   UUID, then the de-virtualized), each with its hypervisor (a hypervisor holding no VM
//!   is on the first page). The document then also has `"total"` (VMs after the filters),
//!   `"offset"` and `"limit"`; `undescribed` is given only without filters.
//! - `/api/vms/<uuid>`: V.
//! - `/api/status` (provider only): `{"networks":[{"name","interface","provider","devices",
//!   "receive_buffer","dropped"}],"hypervisors","vms","undescribed","subscriptions",
//!   "last_seq"}`: per network the devices its SSDP table holds, the receive buffer of its
//!   SSDP sockets in bytes and the datagrams they dropped since the start for want of room.
//! - `/api/events?since=N`: `{"events":[E...],"last_seq":N}`, E = `{"seq","time","kind",
//!   "subject","network"?,"details":{..}}`; `kind` is a journal kind (`vm-renamed` carries
//!   `details` `from`, possibly empty, and `to`: follow a VM's name from its `vm-added`).
//!
//! A tenant's view (the API reached from a tenant network) holds only that tenant's VMs, never
//! a hypervisor, a placement or another tenant's event; it has no `hypervisors` but a `vms`
//! array instead.

use crate::consts::{
    API_ACTIONS_SUFFIX, API_EVENTS_PATH, API_HYPERVISORS_PREFIX, API_TREE_PATH, API_VMS_PREFIX,
};
use crate::engine::access::View;
use crate::engine::inventory::UndescribedView;
use crate::repo::{Event, EventKind, HardwareRecord, VirtualRecord, VirtualRecords};
use crate::wire::json::JsonWriter;
use std::collections::BTreeMap;
use uuid::Uuid;

/// Path of the tracker's status document.
const API_STATUS_PATH: &str = "/api/status";

/// What a request to the read API asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /api/tree`.
    Tree,
    /// `GET /api/status`.
    Status,
    /// `GET /api/events?since=N` (0 when absent or not a number).
    Events {
        /// Events after this sequence number.
        since: u64,
    },
    /// `GET /api/vms/<uuid>`.
    Vm(Uuid),
    /// `POST /api/vms/<uuid>/actions`: the relay to one of the VM's actions.
    VmAction(Uuid),
    /// `POST /api/hypervisors/<uuid>/actions`: the relay to a hypervisor's action.
    HypervisorAction(Uuid),
    /// Nothing here: 404.
    NotFound,
    /// A method the API does not take: 405.
    MethodNotAllowed,
}

/// Routes a request by its method, path and query.
pub fn route(method: &str, path: &str, query: Option<&str>) -> Route {
    let uuid = |text: &str| Uuid::parse_str(text).ok();
    match method {
        "GET" if path == API_TREE_PATH => Route::Tree,
        "GET" if path == API_STATUS_PATH => Route::Status,
        "GET" if path == API_EVENTS_PATH => Route::Events {
            since: crate::wire::form::value(query, "since")
                .and_then(|value| value.parse().ok())
                .unwrap_or(0),
        },
        "GET" => path
            .strip_prefix(API_VMS_PREFIX)
            .and_then(uuid)
            .map_or(Route::NotFound, Route::Vm),
        "POST" => {
            if let Some(rest) = path.strip_prefix(API_HYPERVISORS_PREFIX) {
                return rest
                    .strip_suffix(API_ACTIONS_SUFFIX)
                    .and_then(uuid)
                    .map_or(Route::NotFound, Route::HypervisorAction);
            }
            path.strip_prefix(API_VMS_PREFIX)
                .and_then(|rest| rest.strip_suffix(API_ACTIONS_SUFFIX))
                .and_then(uuid)
                .map_or(Route::NotFound, Route::VmAction)
        }
        _ => Route::MethodNotAllowed,
    }
}

fn write_vm(json: &mut JsonWriter, vm: &VirtualRecord, viewer: View<'_>) {
    json.begin_object();
    json.key("uuid").string(&vm.vm_uuid.to_string());
    json.key("name").string(&vm.name);
    json.key("run_state").string(&vm.run_state);
    if let Some(tenant) = &vm.tenant {
        json.key("tenant").string(tenant);
    }
    if viewer == View::Provider {
        if let Some(host) = vm.hypervisor {
            json.key("hypervisor").string(&host.to_string());
        }
    }
    json.key("services").begin_array();
    for service in &vm.services {
        json.begin_object();
        json.key("type").string(&service.service_type);
        json.key("actions").begin_array();
        for action in &service.actions {
            json.begin_object();
            json.key("name").string(&action.name);
            json.key("semantics")
                .strings(action.semantics.iter().map(|s| s.as_str()));
            json.key("inputs")
                .strings(action.inputs.iter().map(String::as_str));
            json.key("outputs")
                .strings(action.outputs.iter().map(String::as_str));
            json.end_object();
        }
        json.end_array();
        json.end_object();
    }
    json.end_array();
    json.key("first_seen").number(vm.first_seen);
    json.key("last_seen").number(vm.last_seen);
    json.end_object();
}

fn write_host(json: &mut JsonWriter, host: &HardwareRecord, vms: &[&VirtualRecord]) {
    json.begin_object();
    json.key("uuid").string(&host.host_uuid.to_string());
    json.key("name").string(&host.name);
    json.key("network").string(&host.network);
    json.key("addresses")
        .strings(host.addresses.iter().map(String::as_str));
    json.key("state").string(&host.state);
    if let Some(boot_id) = host.boot_id {
        json.key("boot_id").number(u64::from(boot_id));
    }
    json.key("first_seen").number(host.first_seen);
    json.key("last_seen").number(host.last_seen);
    json.key("vms").begin_array();
    for vm in vms {
        write_vm(json, vm, View::Provider);
    }
    json.end_array();
    json.end_object();
}

/// Finishes a document; the writer is only misused by a bug here, which must not take the
/// tracker down: an error document is answered instead.
fn finish(json: JsonWriter) -> Vec<u8> {
    json.finish().unwrap_or_else(|error| {
        log::error!("api: JSON document not well formed: {error:?}");
        b"{\"error\":\"internal\"}".to_vec()
    })
}

/// What `GET /api/tree` is built from.
pub struct TreeSources<'a> {
    /// Hardware records.
    pub hardware: &'a BTreeMap<Uuid, HardwareRecord>,
    /// Virtual machine records.
    pub vms: &'a VirtualRecords,
    /// Devices seen but not described.
    pub undescribed: &'a [UndescribedView<'a>],
    /// The journal's last sequence number.
    pub last_seq: u64,
}

/// The filters and page of a `GET /api/tree` (see the module documentation).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeQuery {
    /// `tenant=`: only the VMs filed under it.
    pub tenant: Option<String>,
    /// `host=`: only the hypervisors with this UUID or name.
    pub host: Option<String>,
    /// `q=`: only the VMs whose name or UUID contains it, ASCII case ignored (stored in
    /// lower case).
    pub text: Option<String>,
    /// `offset=`: VMs skipped.
    pub offset: usize,
    /// `limit=`: VMs listed, at most.
    pub limit: Option<usize>,
}

impl TreeQuery {
    /// Reads the query string of a `GET /api/tree`; empty and unreadable values are ignored.
    pub fn parse(query: Option<&str>) -> TreeQuery {
        let text = |key: &str| {
            crate::wire::form::value(query, key)
                .map(|value| value.trim().to_string())
                .filter(|value| !value.is_empty())
        };
        let number = |key: &str| text(key).and_then(|value| value.parse::<usize>().ok());
        TreeQuery {
            tenant: text("tenant"),
            host: text("host"),
            text: text("q").map(|value| value.to_ascii_lowercase()),
            offset: number("offset").unwrap_or(0),
            limit: number("limit"),
        }
    }

    /// Whether any filter or a page is asked for.
    fn narrows(&self) -> bool {
        self.tenant.is_some() || self.host.is_some() || self.text.is_some() || self.paged()
    }

    fn paged(&self) -> bool {
        self.limit.is_some() || self.offset > 0
    }

    /// Whether `vm` passes the tenant filter and, unless its hypervisor matched already, the
    /// text filter.
    fn keeps(&self, vm: &VirtualRecord, host_matched: bool) -> bool {
        if self.tenant.is_some() && vm.tenant != self.tenant {
            return false;
        }
        host_matched
            || self.text.as_deref().is_none_or(|text| {
                contains_folded(&vm.name, text) || contains_folded(&vm.vm_uuid.to_string(), text)
            })
    }

    /// Whether `host` passes the host filter.
    fn keeps_host(&self, host: &HardwareRecord) -> bool {
        self.host
            .as_deref()
            .is_none_or(|wanted| host.name == wanted || host.host_uuid.to_string() == wanted)
    }

    /// Whether `host`'s own name or UUID contains the text asked for.
    fn names_host(&self, host: &HardwareRecord) -> bool {
        self.text.as_deref().is_some_and(|text| {
            contains_folded(&host.name, text) || contains_folded(&host.host_uuid.to_string(), text)
        })
    }
}

/// Whether `haystack` contains `needle` (lower case), ASCII case ignored.
fn contains_folded(haystack: &str, needle: &str) -> bool {
    needle.is_empty()
        || haystack
            .as_bytes()
            .windows(needle.len())
            .any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The VMs of one page: the ones at `offset..offset + limit` of those counted.
struct Page {
    offset: usize,
    limit: usize,
    seen: usize,
}

impl Page {
    /// `"total"`, `"offset"` and, when asked for, `"limit"`.
    fn write(&self, json: &mut JsonWriter, query: &TreeQuery) {
        json.key("total").number(self.seen as u64);
        json.key("offset").number(self.offset as u64);
        if let Some(limit) = query.limit {
            json.key("limit").number(limit as u64);
        }
    }

    /// Counts one VM; whether it is on the page.
    fn take(&mut self) -> bool {
        let at = self.seen;
        self.seen += 1;
        at >= self.offset && at - self.offset < self.limit
    }
}

/// `GET /api/tree` with the filters and page of `query`. One pass over the VMs, whatever
/// the number of hypervisors.
pub fn tree_of(sources: &TreeSources<'_>, viewer: View<'_>, query: &TreeQuery) -> Vec<u8> {
    let TreeSources {
        hardware,
        vms,
        undescribed,
        last_seq,
    } = *sources;
    let mut page = Page {
        offset: query.offset,
        limit: query.limit.unwrap_or(usize::MAX),
        seen: 0,
    };
    let mut json = JsonWriter::new();
    json.begin_object();
    match viewer {
        View::Provider => {
            let mut placed: BTreeMap<Uuid, Vec<&VirtualRecord>> = BTreeMap::new();
            for vm in vms.values() {
                if let Some(host) = vm.hypervisor {
                    placed.entry(host).or_default().push(vm);
                }
            }
            json.key("hypervisors").begin_array();
            for host in hardware.values().filter(|host| query.keeps_host(host)) {
                let named = query.names_host(host);
                let all = placed.get(&host.host_uuid).map_or(&[][..], Vec::as_slice);
                let kept: Vec<&VirtualRecord> = all
                    .iter()
                    .copied()
                    .filter(|vm| query.keeps(vm, named))
                    .collect();
                if kept.is_empty() && query.text.is_some() && !named {
                    continue;
                }
                let shown: Vec<&VirtualRecord> = kept.into_iter().filter(|_| page.take()).collect();
                // A hypervisor holding no VM is on the first page.
                if shown.is_empty() && !(all.is_empty() && page.offset == 0) {
                    continue;
                }
                write_host(&mut json, host, &shown);
            }
            json.end_array();
            json.key("devirtualized").begin_array();
            if query.host.is_none() {
                for vm in vms.values().filter(|vm| vm.hypervisor.is_none()) {
                    if query.keeps(vm, false) && page.take() {
                        write_vm(&mut json, vm, viewer);
                    }
                }
            }
            json.end_array();
            if query.narrows() {
                page.write(&mut json, query);
            } else {
                write_undescribed(&mut json, undescribed);
            }
        }
        View::Tenant(_) => {
            json.key("vms").begin_array();
            for vm in vms
                .values()
                .filter(|vm| viewer.sees_tenant(vm.tenant.as_deref()))
            {
                if query.keeps(vm, false) && page.take() {
                    write_vm(&mut json, vm, viewer);
                }
            }
            json.end_array();
            if query.narrows() {
                page.write(&mut json, query);
            }
        }
    }
    json.key("last_seq").number(last_seq);
    json.end_object();
    finish(json)
}

/// The provider's `undescribed` array.
fn write_undescribed(json: &mut JsonWriter, undescribed: &[UndescribedView<'_>]) {
    json.key("undescribed").begin_array();
    for device in undescribed {
        json.begin_object();
        json.key("network").string(device.network);
        json.key("udn").string(device.udn);
        json.key("address").string(&device.source.to_string());
        json.key("reason").string(device.reason);
        json.key("first_seen").number(device.first_seen);
        json.key("last_seen").number(device.last_seen);
        json.end_object();
    }
    json.end_array();
}

/// One network in `GET /api/status`.
pub struct NetworkStatus<'a> {
    /// Its label.
    pub name: &'a str,
    /// Its interface.
    pub interface: &'a str,
    /// Whether it is a provider network.
    pub provider: bool,
    /// Devices its SSDP table holds.
    pub devices: usize,
    /// Receive buffer of its SSDP sockets, bytes.
    pub receive_buffer: usize,
    /// Datagrams its SSDP sockets dropped since the start.
    pub dropped: u64,
}

/// What `GET /api/status` counts.
pub struct Status<'a> {
    /// The networks.
    pub networks: Vec<NetworkStatus<'a>>,
    /// Hypervisor records.
    pub hypervisors: usize,
    /// VM records.
    pub vms: usize,
    /// Devices seen and not described.
    pub undescribed: usize,
    /// GENA subscriptions held.
    pub subscriptions: usize,
    /// The journal's last sequence number.
    pub last_seq: u64,
}

/// `GET /api/status` (the provider's only).
pub fn status(status: &Status<'_>) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("networks").begin_array();
    for network in &status.networks {
        json.begin_object();
        json.key("name").string(network.name);
        json.key("interface").string(network.interface);
        json.key("provider").bool(network.provider);
        json.key("devices").number(network.devices as u64);
        json.key("receive_buffer")
            .number(network.receive_buffer as u64);
        json.key("dropped").number(network.dropped);
        json.end_object();
    }
    json.end_array();
    json.key("hypervisors").number(status.hypervisors as u64);
    json.key("vms").number(status.vms as u64);
    json.key("undescribed").number(status.undescribed as u64);
    json.key("subscriptions")
        .number(status.subscriptions as u64);
    json.key("last_seq").number(status.last_seq);
    json.end_object();
    finish(json)
}

/// `GET /api/vms/<uuid>`, or `None` when the viewer has no such VM.
pub fn vm(vm: Option<&VirtualRecord>, viewer: View<'_>) -> Option<Vec<u8>> {
    let vm = vm.filter(|vm| viewer.sees_tenant(vm.tenant.as_deref()))?;
    let mut json = JsonWriter::new();
    write_vm(&mut json, vm, viewer);
    Some(finish(json))
}

/// Whether a tenant may see `event`: only events about its own VMs, and not the ones that
/// reveal the provider's placement; the actions called on them, by anyone, included.
fn tenant_sees(event: &Event, own: &dyn Fn(&str) -> bool) -> bool {
    let about_vm = matches!(
        event.kind,
        EventKind::VmAdded
            | EventKind::VmRemoved
            | EventKind::VmStateChanged
            | EventKind::VmServicesChanged
            | EventKind::VmDevirtualized
            | EventKind::VmRevirtualized
            | EventKind::VmRenamed
            | EventKind::Action
    );
    about_vm && own(&event.subject)
}

/// The detail keys of an `action` event a tenant sees: who, what and how it ended; not the
/// provider-side address it came from.
const TENANT_ACTION_DETAILS: [&str; 7] = [
    "identity",
    "role",
    "service",
    "action",
    "arguments",
    "outcome",
    "duration_ms",
];

/// One event E, as `viewer` may see it.
fn write_event(json: &mut JsonWriter, event: &Event, viewer: View<'_>) {
    json.begin_object();
    json.key("seq").number(event.seq);
    json.key("time").number(event.time);
    json.key("kind").string(event.kind.as_str());
    json.key("subject").string(&event.subject);
    let shown = |key: &str| match viewer {
        View::Provider => true,
        View::Tenant(_) => event.kind == EventKind::Action && TENANT_ACTION_DETAILS.contains(&key),
    };
    if viewer == View::Provider {
        if let Some(network) = &event.network {
            json.key("network").string(network);
        }
    }
    if viewer == View::Provider || event.kind == EventKind::Action {
        json.key("details").begin_object();
        for (key, value) in event.details.iter().filter(|(key, _)| shown(key)) {
            json.key(key).string(value);
        }
        json.end_object();
    }
    json.end_object();
}

/// One event E as the provider sees it (what a tracker publishes into etcd).
pub fn event(event: &Event) -> Vec<u8> {
    let mut json = JsonWriter::new();
    write_event(&mut json, event, View::Provider);
    finish(json)
}

/// One hypervisor H, its `vms` empty (what a tracker publishes into etcd, where each VM is a
/// key of its own).
pub fn hypervisor(host: &HardwareRecord) -> Vec<u8> {
    let mut json = JsonWriter::new();
    write_host(&mut json, host, &[]);
    finish(json)
}

/// `GET /api/events?since=N`. For a tenant, `own` says which subjects are its VMs; details
/// are left out for tenants (they may name hypervisors).
pub fn events(
    events: &[Event],
    last_seq: u64,
    viewer: View<'_>,
    own: &dyn Fn(&str) -> bool,
) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("events").begin_array();
    for event in events {
        if matches!(viewer, View::Tenant(_)) && !tenant_sees(event, own) {
            continue;
        }
        write_event(&mut json, event, viewer);
    }
    json.end_array();
    json.key("last_seq").number(last_seq);
    json.end_object();
    finish(json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Semantic;
    use crate::repo::{ActionRecord, ServiceRecord};
    use std::sync::Arc;

    fn host(id: u128) -> HardwareRecord {
        HardwareRecord {
            host_uuid: Uuid::from_u128(id),
            name: format!("host{id}"),
            addresses: vec!["10.0.0.1".into()],
            network: "mgmt".into(),
            boot_id: Some(3),
            facts: Vec::new(),
            first_seen: 1,
            last_seen: 2,
            state: "online".into(),
        }
    }

    fn vm(id: u128, host: Option<u128>, tenant: &str) -> VirtualRecord {
        VirtualRecord {
            vm_uuid: Uuid::from_u128(id),
            name: format!("vm \"{id}\""),
            hypervisor: host.map(Uuid::from_u128),
            run_state: "running".into(),
            tenant: Some(tenant.into()),
            services: vec![ServiceRecord {
                service_type: "urn:xenplug-org:service:AppControl:1".into(),
                actions: vec![ActionRecord {
                    name: "RestartApplication".into(),
                    semantics: vec![Semantic::Destructive, Semantic::Confirm],
                    inputs: vec!["Delay".into()],
                    outputs: vec![],
                }],
            }],
            first_seen: 5,
            last_seen: 6,
        }
    }

    fn maps() -> (BTreeMap<Uuid, HardwareRecord>, VirtualRecords) {
        let hardware = [host(1)].into_iter().map(|h| (h.host_uuid, h)).collect();
        let vms = [
            vm(10, Some(1), "acme"),
            vm(11, Some(1), "beta"),
            vm(12, None, "acme"),
        ]
        .into_iter()
        .map(|v| (v.vm_uuid, Arc::new(v)))
        .collect();
        (hardware, vms)
    }

    #[test]
    fn requests_route_by_method_path_and_query() {
        const VM: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000a001";
        let vm = Uuid::parse_str(VM).unwrap();
        let vm_path = format!("/api/vms/{VM}");
        let vm_actions = format!("/api/vms/{VM}/actions");
        let host_actions = format!("/api/hypervisors/{VM}/actions");
        let cases: Vec<(&str, &str, Option<&str>, Route)> = vec![
            ("GET", "/api/tree", None, Route::Tree),
            ("GET", "/api/status", None, Route::Status),
            ("GET", "/api/tree", Some("x=1"), Route::Tree),
            (
                "GET",
                "/api/events",
                Some("since=12"),
                Route::Events { since: 12 },
            ),
            (
                "GET",
                "/api/events",
                Some("since=x"),
                Route::Events { since: 0 },
            ),
            ("GET", "/api/events", None, Route::Events { since: 0 }),
            ("GET", &vm_path, None, Route::Vm(vm)),
            ("GET", "/api/vms/not-a-uuid", None, Route::NotFound),
            ("GET", &vm_actions, None, Route::NotFound),
            ("GET", "/", None, Route::NotFound),
            ("POST", &vm_actions, None, Route::VmAction(vm)),
            ("POST", &host_actions, None, Route::HypervisorAction(vm)),
            ("POST", "/api/hypervisors/x/actions", None, Route::NotFound),
            ("POST", &vm_path, None, Route::NotFound),
            ("POST", "/api/tree", None, Route::NotFound),
            ("PUT", "/api/tree", None, Route::MethodNotAllowed),
            ("DELETE", &vm_path, None, Route::MethodNotAllowed),
        ];
        for (method, path, query, expected) in cases {
            assert_eq!(
                route(method, path, query),
                expected,
                "{method} {path} {query:?}"
            );
        }
    }

    #[test]
    fn provider_tree_nests_vms_under_hypervisors() {
        let (hardware, vms) = maps();
        let undescribed = [UndescribedView {
            network: "mgmt",
            udn: "uuid:broken",
            source: std::net::Ipv4Addr::new(10, 0, 0, 9),
            reason: "HTTP status 500",
            first_seen: 3,
            last_seen: 4,
        }];
        let sources = TreeSources {
            hardware: &hardware,
            vms: &vms,
            undescribed: &undescribed,
            last_seq: 9,
        };
        let text =
            String::from_utf8(tree_of(&sources, View::Provider, &TreeQuery::default())).unwrap();
        assert!(text.contains("\"undescribed\":[{\"network\":\"mgmt\",\"udn\":\"uuid:broken\",\"address\":\"10.0.0.9\""), "{text}");
        let tenant = String::from_utf8(tree_of(
            &sources,
            View::Tenant("acme"),
            &TreeQuery::default(),
        ))
        .unwrap();
        assert!(!tenant.contains("undescribed"), "{tenant}");
        assert!(
            text.starts_with(
                "{\"hypervisors\":[{\"uuid\":\"00000000-0000-0000-0000-000000000001\""
            ),
            "{text}"
        );
        assert!(
            text.contains("\"name\":\"vm \\\"10\\\"\""),
            "names are escaped: {text}"
        );
        assert!(
            text.contains(
                "\"semantics\":[\"destructive\",\"confirm\"],\"inputs\":[\"Delay\"],\"outputs\":[]"
            ),
            "the arguments follow the semantics: {text}"
        );
        let devirtualized = &text[text.find("\"devirtualized\"").unwrap()..];
        assert!(
            devirtualized.contains("-00000000000c\"") && !devirtualized.contains("-00000000000a\""),
            "{text}"
        );
        assert!(text.ends_with(",\"last_seq\":9}"), "{text}");
    }

    /// The VM UUIDs (last two hex digits) and host names in a tree document, in order.
    fn listed(text: &str) -> (Vec<String>, Vec<String>) {
        let vms = text
            .match_indices("\"run_state\"")
            .map(|(at, _)| {
                let uuid = text[..at].rfind("\"uuid\":\"").unwrap() + 8;
                text[uuid + 34..uuid + 36].to_string()
            })
            .collect();
        let hosts = text
            .match_indices("\"name\":\"host")
            .map(|(at, _)| text[at + 8..at + 13].to_string())
            .collect();
        (vms, hosts)
    }

    #[test]
    fn tree_filters_and_pages() {
        let (mut hardware, mut vms) = maps();
        hardware.insert(Uuid::from_u128(2), host(2));
        for n in 0..5 {
            let record = vm(0x20 + n, Some(2), if n % 2 == 0 { "acme" } else { "beta" });
            vms.insert(record.vm_uuid, Arc::new(record));
        }
        let sources = TreeSources {
            hardware: &hardware,
            vms: &vms,
            undescribed: &[],
            last_seq: 9,
        };
        let ask = |view: View<'_>, query: &str| {
            let text =
                String::from_utf8(tree_of(&sources, view, &TreeQuery::parse(Some(query)))).unwrap();
            let (vms, hosts) = listed(&text);
            (vms, hosts, text)
        };
        // Everything: no total, the undescribed array.
        let (all, hosts, text) = ask(View::Provider, "");
        assert_eq!(all, ["0a", "0b", "20", "21", "22", "23", "24", "0c"]);
        assert_eq!(hosts, ["host1", "host2"]);
        assert!(text.contains("\"undescribed\":[]") && !text.contains("total"));
        // Pages of three, in document order, each host with its VMs on the page.
        let (page, hosts, text) = ask(View::Provider, "limit=3");
        assert_eq!(page, ["0a", "0b", "20"]);
        assert_eq!(hosts, ["host1", "host2"]);
        assert!(
            text.contains("\"total\":8,\"offset\":0,\"limit\":3"),
            "{text}"
        );
        assert!(!text.contains("undescribed"));
        let (page, hosts, _) = ask(View::Provider, "limit=3&offset=3");
        assert_eq!(page, ["21", "22", "23"]);
        assert_eq!(hosts, ["host2"]);
        let (page, hosts, _) = ask(View::Provider, "limit=3&offset=6");
        assert_eq!(page, ["24", "0c"]);
        assert_eq!(hosts, ["host2"]);
        // A tenant's VMs.
        let (acme, _, text) = ask(View::Provider, "tenant=acme");
        assert_eq!(acme, ["0a", "20", "22", "24", "0c"]);
        assert!(text.contains("\"total\":5"));
        // One host, by name or UUID: no de-virtualized VMs.
        let (on_two, hosts, _) = ask(View::Provider, "host=host2");
        assert_eq!(on_two.len(), 5);
        assert_eq!(hosts, ["host2"]);
        let (by_uuid, _, _) = ask(View::Provider, "host=00000000-0000-0000-0000-000000000001");
        assert_eq!(by_uuid, ["0a", "0b"]);
        // Text in names and UUIDs, any case; a host named by it comes with all its VMs.
        let (found, hosts, _) = ask(View::Provider, "q=VM+%2210");
        assert_eq!(found, ["0a"]);
        assert_eq!(hosts, ["host1"]);
        let (found, _, _) = ask(View::Provider, "q=00000000000C");
        assert_eq!(found, ["0c"]);
        let (found, hosts, _) = ask(View::Provider, "q=HOST2&tenant=beta");
        assert_eq!(found, ["21", "23"]);
        assert_eq!(hosts, ["host2"]);
        // A tenant's view stays its own whatever it asks.
        let (own, hosts, text) = ask(View::Tenant("acme"), "tenant=beta");
        assert!(own.is_empty() && hosts.is_empty(), "{text}");
        let (own, _, text) = ask(View::Tenant("acme"), "limit=2&offset=1");
        assert_eq!(own, ["0c", "20"]);
        assert!(
            !text.contains("hypervisor") && text.contains("\"total\":5"),
            "{text}"
        );
        let (own, _, _) = ask(View::Tenant("acme"), "q=host2");
        assert!(
            own.is_empty(),
            "a tenant never matches by its VMs' hypervisor"
        );
    }

    #[test]
    fn status_counts_and_drops_per_network() {
        let text = String::from_utf8(status(&Status {
            networks: vec![NetworkStatus {
                name: "mgmt",
                interface: "eth0",
                provider: true,
                devices: 101,
                receive_buffer: 16 << 20,
                dropped: 7,
            }],
            hypervisors: 1,
            vms: 100,
            undescribed: 0,
            subscriptions: 101,
            last_seq: 202,
        }))
        .unwrap();
        assert_eq!(
            text,
            "{\"networks\":[{\"name\":\"mgmt\",\"interface\":\"eth0\",\"provider\":true,\
             \"devices\":101,\"receive_buffer\":16777216,\"dropped\":7}],\"hypervisors\":1,\
             \"vms\":100,\"undescribed\":0,\"subscriptions\":101,\"last_seq\":202}"
        );
    }

    #[test]
    fn tenant_tree_holds_only_its_vms_and_no_placement() {
        let (hardware, vms) = maps();
        let sources = TreeSources {
            hardware: &hardware,
            vms: &vms,
            undescribed: &[],
            last_seq: 9,
        };
        let text = String::from_utf8(tree_of(
            &sources,
            View::Tenant("acme"),
            &TreeQuery::default(),
        ))
        .unwrap();
        assert!(!text.contains("hypervisor"), "{text}");
        assert!(
            !text.contains("beta") && !text.contains("-00000000000b\""),
            "{text}"
        );
        assert!(
            text.contains("-00000000000a\"") && text.contains("-00000000000c\""),
            "{text}"
        );
        assert!(vm(super::Uuid::from_u128(11).as_u128(), None, "beta")
            .tenant
            .is_some());
        assert_eq!(
            super::vm(
                vms.get(&Uuid::from_u128(11)).map(Arc::as_ref),
                View::Tenant("acme")
            ),
            None
        );
        assert!(super::vm(
            vms.get(&Uuid::from_u128(10)).map(Arc::as_ref),
            View::Tenant("acme")
        )
        .is_some());
    }

    #[test]
    fn tenant_events_are_filtered_and_without_details() {
        let migrated = Event {
            seq: 1,
            time: 100,
            kind: EventKind::VmMigrated,
            subject: Uuid::from_u128(10).to_string(),
            network: Some("mgmt".into()),
            details: vec![("from".into(), "a".into()), ("to".into(), "b".into())],
        };
        let state = Event {
            seq: 2,
            kind: EventKind::VmStateChanged,
            ..migrated.clone()
        };
        let other = Event {
            seq: 3,
            subject: Uuid::from_u128(11).to_string(),
            ..state.clone()
        };
        let renamed = Event {
            seq: 4,
            kind: EventKind::VmRenamed,
            ..migrated.clone()
        };
        let all = [migrated, state, other, renamed];
        let acme = Uuid::from_u128(10).to_string();
        let own = |subject: &str| subject == acme;
        let text = String::from_utf8(events(&all, 4, View::Tenant("acme"), &own)).unwrap();
        assert!(
            text.contains("\"seq\":2")
                && text.contains("\"seq\":4")
                && !text.contains("\"seq\":1")
                && !text.contains("\"seq\":3"),
            "{text}"
        );
        assert!(
            !text.contains("details") && !text.contains("mgmt"),
            "{text}"
        );
        let provider = String::from_utf8(events(&all, 4, View::Provider, &own)).unwrap();
        assert!(
            provider.contains("\"details\":{\"from\":\"a\",\"to\":\"b\"}"),
            "{provider}"
        );
    }
}
