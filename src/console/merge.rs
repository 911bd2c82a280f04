//! Merging the tree documents of several read APIs (`--tracker` and `--iface` together) into
//! one document of the same schema ([`crate::track::api`]). Pure: no I/O, never panics on what
//! the APIs answered; objects are kept as received, so fields a newer tracker adds survive.
//!
//! Rules, by hypervisor UUID and VM UUID (compared without regard to case):
//! - a hypervisor known to several sources is listed once, as the source that saw it last
//!   (`last_seen`, the first source on a tie) describes it;
//! - a VM is placed when any source places it (on the hypervisor of the placing source that
//!   saw it last), and de-virtualized only when no source does; a VM only a tenant view knows
//!   is listed with the de-virtualized ones, as nothing says where it runs;
//! - its fields are those of that placing source (or, unplaced, of the source that saw it
//!   last), and what that source does not know (no services, no tenant, no name, run state
//!   `unknown`) is taken from a source that does;
//! - `undescribed` devices are listed once per (network, UDN);
//! - the result is a provider view when any source gave one, else a tenant view; `last_seq`
//!   is the largest, and `sources` (added) gives each source's own: `[{"api","last_seq"}]`,
//!   since event sequence numbers are per source.

use crate::wire::json::{JsonValue, JsonWriter};
use std::collections::BTreeMap;

/// One source's tree document, named for `sources`.
pub struct Named<'a> {
    /// How the source is named (`http://127.0.0.1:8700`, `local`).
    pub api: &'a str,
    /// Its `GET /api/tree` document.
    pub tree: &'a JsonValue,
}

/// One VM as one source knows it.
struct Seen<'a> {
    vm: &'a JsonValue,
    placed_on: Option<String>,
}

fn key(text: &str) -> String {
    text.to_ascii_lowercase()
}

fn last_seen(value: &JsonValue) -> u64 {
    value
        .get("last_seen")
        .and_then(JsonValue::as_u64)
        .unwrap_or(0)
}

/// The index of the latest (`last_seen`) of `items`, the first on a tie.
fn latest<T>(items: &[T], value: impl Fn(&T) -> &JsonValue) -> Option<usize> {
    let mut best: Option<(usize, u64)> = None;
    for (index, item) in items.iter().enumerate() {
        let seen = last_seen(value(item));
        if best.is_none_or(|(_, top)| seen > top) {
            best = Some((index, seen));
        }
    }
    best.map(|(index, _)| index)
}

/// Writes any JSON value ([`JsonWriter::any`]).
pub fn write_value(json: &mut JsonWriter, value: &JsonValue) {
    json.any(value);
}

/// `base` with what it lacks taken from `others`, and `hypervisor` set to the placement.
fn merged_vm(base: &JsonValue, others: &[&JsonValue], placed_on: Option<&str>) -> JsonValue {
    let JsonValue::Object(fields) = base else {
        return base.clone();
    };
    let mut fields = fields.clone();
    let lacks = |fields: &[(String, JsonValue)], name: &str| match fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
    {
        None | Some(JsonValue::Null) => true,
        Some(JsonValue::String(text)) => {
            text.is_empty() || (name == "run_state" && text == "unknown")
        }
        Some(JsonValue::Array(items)) => items.is_empty(),
        Some(_) => false,
    };
    for name in ["services", "tenant", "name", "run_state"] {
        if !lacks(&fields, name) {
            continue;
        }
        let found = others.iter().find_map(|other| {
            let other_fields = other.as_object()?;
            (!lacks(other_fields, name))
                .then(|| other.get(name).cloned())
                .flatten()
        });
        if let Some(value) = found {
            match fields.iter_mut().find(|(n, _)| n == name) {
                Some(slot) => slot.1 = value,
                None => fields.push((name.to_string(), value)),
            }
        }
    }
    fields.retain(|(n, _)| n != "hypervisor");
    if let Some(host) = placed_on {
        // Where the tracker writes it: before the services.
        let at = fields
            .iter()
            .position(|(n, _)| n == "services")
            .unwrap_or(fields.len());
        fields.insert(
            at,
            (
                "hypervisor".to_string(),
                JsonValue::String(host.to_string()),
            ),
        );
    }
    JsonValue::Object(fields)
}

/// The merged tree document of `sources` (see the module's rules).
pub fn merge(sources: &[Named<'_>]) -> Vec<u8> {
    let provider = sources.iter().any(|s| {
        s.tree
            .get("hypervisors")
            .and_then(JsonValue::as_array)
            .is_some()
    });
    // Hypervisors in first-seen order, each with every source's object.
    let mut host_order: Vec<String> = Vec::new();
    let mut hosts: BTreeMap<String, Vec<&JsonValue>> = BTreeMap::new();
    let mut vms: BTreeMap<String, Vec<Seen<'_>>> = BTreeMap::new();
    let mut undescribed: Vec<&JsonValue> = Vec::new();
    let mut last_seq = 0;
    for source in sources {
        let tree = source.tree;
        last_seq = last_seq.max(
            tree.get("last_seq")
                .and_then(JsonValue::as_u64)
                .unwrap_or(0),
        );
        for host in tree.list_of("hypervisors") {
            let uuid = key(host.str_of("uuid"));
            if uuid.is_empty() {
                continue;
            }
            if !hosts.contains_key(&uuid) {
                host_order.push(uuid.clone());
            }
            hosts.entry(uuid.clone()).or_default().push(host);
            for vm in host.list_of("vms") {
                vms.entry(key(vm.str_of("uuid"))).or_default().push(Seen {
                    vm,
                    placed_on: Some(host.str_of("uuid").to_string()),
                });
            }
        }
        for vm in tree
            .list_of("devirtualized")
            .iter()
            .chain(tree.list_of("vms"))
        {
            vms.entry(key(vm.str_of("uuid"))).or_default().push(Seen {
                vm,
                placed_on: None,
            });
        }
        for device in tree.list_of("undescribed") {
            let same = |other: &&JsonValue| {
                other.str_of("network") == device.str_of("network")
                    && other.str_of("udn") == device.str_of("udn")
            };
            if !undescribed.iter().any(same) {
                undescribed.push(device);
            }
        }
    }
    vms.remove("");
    // Each VM once: its placement and its merged object.
    let mut placed: BTreeMap<String, Vec<JsonValue>> = BTreeMap::new();
    let mut unplaced: Vec<JsonValue> = Vec::new();
    for seen in vms.values() {
        let placing: Vec<&Seen<'_>> = seen.iter().filter(|s| s.placed_on.is_some()).collect();
        let base = match latest(&placing, |s| s.vm) {
            Some(index) => placing.get(index).copied(),
            None => latest(seen, |s| s.vm).and_then(|index| seen.get(index)),
        };
        let Some(base) = base else {
            continue;
        };
        let others: Vec<&JsonValue> = seen
            .iter()
            .filter(|s| !std::ptr::eq(s.vm, base.vm))
            .map(|s| s.vm)
            .collect();
        let vm = merged_vm(
            base.vm,
            &others,
            base.placed_on.as_deref().filter(|_| provider),
        );
        match &base.placed_on {
            Some(host) if provider => placed.entry(key(host)).or_default().push(vm),
            _ => unplaced.push(vm),
        }
    }
    let mut json = JsonWriter::new();
    json.begin_object();
    if provider {
        json.key("hypervisors").begin_array();
        for uuid in &host_order {
            let Some(seen) = hosts.get(uuid) else {
                continue;
            };
            let Some(host) = latest(seen, |h| h).and_then(|index| seen.get(index)) else {
                continue;
            };
            json.begin_object();
            for (name, value) in host.as_object().unwrap_or(&[]) {
                if name != "vms" {
                    json.key(name);
                    write_value(&mut json, value);
                }
            }
            json.key("vms").begin_array();
            for vm in placed.get(uuid).map(Vec::as_slice).unwrap_or(&[]) {
                write_value(&mut json, vm);
            }
            json.end_array();
            json.end_object();
        }
        json.end_array();
        json.key("devirtualized").begin_array();
    } else {
        json.key("vms").begin_array();
    }
    for vm in &unplaced {
        write_value(&mut json, vm);
    }
    json.end_array();
    if provider {
        json.key("undescribed").begin_array();
        for device in &undescribed {
            write_value(&mut json, device);
        }
        json.end_array();
    }
    json.key("last_seq").number(last_seq);
    json.key("sources").begin_array();
    for source in sources {
        json.begin_object();
        json.key("api").string(source.api);
        json.key("last_seq").number(
            source
                .tree
                .get("last_seq")
                .and_then(JsonValue::as_u64)
                .unwrap_or(0),
        );
        json.end_object();
    }
    json.end_array();
    json.end_object();
    json.finish()
        .unwrap_or_else(|_| b"{\"hypervisors\":[],\"devirtualized\":[],\"last_seq\":0}".to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::json::parse_value;

    const HOST_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
    const HOST_B: &str = "b2b2b2b2-0000-4000-8000-00000000000b";

    fn merged(documents: &[&str]) -> JsonValue {
        let values: Vec<JsonValue> = documents
            .iter()
            .map(|d| parse_value(d.as_bytes()).unwrap())
            .collect();
        let named: Vec<Named<'_>> = values
            .iter()
            .enumerate()
            .map(|(i, tree)| Named {
                api: if i == 0 { "remote" } else { "local" },
                tree,
            })
            .collect();
        let bytes = merge(&named);
        parse_value(&bytes).unwrap_or_else(|e| panic!("{e:?}: {}", String::from_utf8_lossy(&bytes)))
    }

    fn vm_in<'a>(tree: &'a JsonValue, uuid: &str) -> Option<(Option<String>, &'a JsonValue)> {
        for host in tree.list_of("hypervisors") {
            if let Some(vm) = host
                .list_of("vms")
                .iter()
                .find(|v| v.str_of("uuid") == uuid)
            {
                return Some((Some(host.str_of("uuid").to_string()), vm));
            }
        }
        tree.list_of("devirtualized")
            .iter()
            .chain(tree.list_of("vms"))
            .find(|v| v.str_of("uuid") == uuid)
            .map(|vm| (None, vm))
    }

    fn host(uuid: &str, name: &str, last_seen: u64, vms: &str) -> String {
        format!(
            r#"{{"uuid":"{uuid}","name":"{name}","network":"mgmt","addresses":[],"state":"online","first_seen":1,"last_seen":{last_seen},"vms":[{vms}]}}"#
        )
    }

    fn vm(uuid: &str, name: &str, state: &str, services: &str, last_seen: u64) -> String {
        format!(
            r#"{{"uuid":"{uuid}","name":"{name}","run_state":"{state}","services":[{services}],"first_seen":1,"last_seen":{last_seen}}}"#
        )
    }

    const ECHO: &str = r#"{"type":"urn:x:service:Echo:1","actions":[{"name":"Echo","semantics":[],"inputs":["Text"],"outputs":["Reply"]}]}"#;

    #[test]
    fn one_source_is_kept_as_it_is() {
        let doc = format!(
            r#"{{"hypervisors":[{}],"devirtualized":[{}],"undescribed":[],"last_seq":4}}"#,
            host(HOST_A, "dom0-a", 5, &vm("v1", "web", "running", ECHO, 5)),
            vm("v2", "lost", "unknown", "", 3)
        );
        let tree = merged(&[&doc]);
        let (placed, web) = vm_in(&tree, "v1").unwrap();
        assert_eq!(placed.as_deref(), Some(HOST_A));
        assert_eq!(web.str_of("hypervisor"), HOST_A);
        assert_eq!(web.list_of("services").len(), 1);
        assert_eq!(
            web.list_of("services")[0].list_of("actions")[0].list_of("inputs")[0].as_str(),
            Some("Text"),
            "fields pass through"
        );
        assert_eq!(vm_in(&tree, "v2").unwrap().0, None);
        assert_eq!(tree.get("last_seq").and_then(JsonValue::as_u64), Some(4));
        assert_eq!(tree.list_of("sources")[0].str_of("api"), "remote");
    }

    #[test]
    fn placed_in_one_devirtualized_in_the_other_is_placed_with_the_services_known() {
        // The remote tracker knows the VM's services (it hears the tenant network) but no
        // hypervisor; the console's own discovery sees the hypervisor place it.
        let remote = format!(
            r#"{{"hypervisors":[],"devirtualized":[{}],"last_seq":9}}"#,
            vm("V1", "web", "unknown", ECHO, 50)
        );
        let local = format!(
            r#"{{"hypervisors":[{}],"devirtualized":[],"last_seq":2}}"#,
            host(HOST_A, "dom0-a", 5, &vm("v1", "", "running", "", 5))
        );
        let tree = merged(&[&remote, &local]);
        let (placed, web) = vm_in(&tree, "v1").expect("listed by the placing source's case");
        assert_eq!(placed.as_deref(), Some(HOST_A));
        assert_eq!(web.str_of("run_state"), "running", "the placing source's");
        assert_eq!(web.str_of("name"), "web", "a name the other knows");
        assert_eq!(web.list_of("services").len(), 1, "services from the other");
        assert!(tree.list_of("devirtualized").is_empty());
        assert_eq!(tree.get("last_seq").and_then(JsonValue::as_u64), Some(9));
        let sources: Vec<(String, Option<u64>)> = tree
            .list_of("sources")
            .iter()
            .map(|s| {
                (
                    s.str_of("api").to_string(),
                    s.get("last_seq").and_then(JsonValue::as_u64),
                )
            })
            .collect();
        assert_eq!(
            sources,
            vec![("remote".into(), Some(9)), ("local".into(), Some(2))]
        );
    }

    #[test]
    fn hypervisors_are_merged_by_uuid_and_the_latest_placement_wins() {
        let remote = format!(
            r#"{{"hypervisors":[{},{}],"devirtualized":[],"undescribed":[{{"network":"mgmt","udn":"uuid:x","address":"10.0.0.9","reason":"r"}}],"last_seq":1}}"#,
            host(HOST_A, "old-a", 5, &vm("v1", "web", "running", ECHO, 5)),
            host(HOST_B, "dom0-b", 5, "")
        );
        let local = format!(
            r#"{{"hypervisors":[{}],"devirtualized":[],"undescribed":[{{"network":"mgmt","udn":"uuid:x","address":"10.0.0.9","reason":"r"}}],"last_seq":1}}"#,
            host(
                &HOST_A.to_uppercase(),
                "new-a",
                9,
                &vm("v1", "web", "paused", "", 9)
            )
        );
        let tree = merged(&[&remote, &local]);
        let hosts = tree.list_of("hypervisors");
        assert_eq!(hosts.len(), 2, "one per UUID, whatever its case");
        assert_eq!(hosts[0].str_of("name"), "new-a", "the latest description");
        assert_eq!(hosts[1].str_of("uuid"), HOST_B);
        let (_, web) = vm_in(&tree, "v1").unwrap();
        assert_eq!(
            web.str_of("run_state"),
            "paused",
            "the latest placing source"
        );
        assert_eq!(web.list_of("services").len(), 1);
        assert_eq!(
            tree.list_of("undescribed").len(),
            1,
            "once per network and UDN"
        );
    }

    #[test]
    fn tenant_views_merge_into_a_tenant_view_and_join_a_provider_view_unplaced() {
        let acme = format!(
            r#"{{"vms":[{}],"last_seq":3}}"#,
            vm("v1", "web", "running", ECHO, 5)
        );
        let beta = format!(
            r#"{{"vms":[{}],"last_seq":1}}"#,
            vm("v2", "db", "running", "", 5)
        );
        let tree = merged(&[&acme, &beta]);
        assert!(tree.get("hypervisors").is_none());
        assert_eq!(tree.list_of("vms").len(), 2);
        let provider = format!(
            r#"{{"hypervisors":[{}],"devirtualized":[],"last_seq":1}}"#,
            host(HOST_A, "dom0-a", 5, &vm("v1", "web", "running", "", 5))
        );
        let tree = merged(&[&acme, &beta, &provider]);
        assert_eq!(vm_in(&tree, "v1").unwrap().0.as_deref(), Some(HOST_A));
        assert_eq!(vm_in(&tree, "v1").unwrap().1.list_of("services").len(), 1);
        assert_eq!(vm_in(&tree, "v2").unwrap().0, None, "nothing places it");
    }

    #[test]
    fn junk_does_not_panic() {
        for junk in [
            "{}",
            "[]",
            "1",
            r#"{"hypervisors":[1,{"uuid":""},{"uuid":"h","vms":[2,{}]}],"vms":"x"}"#,
        ] {
            let tree = merged(&[junk, junk]);
            assert!(tree.as_object().is_some(), "{junk}");
        }
    }
}
