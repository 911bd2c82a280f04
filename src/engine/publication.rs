//! Engine layer: what a device currently publishes, and what changed when the model moves.
//!
//! Holds the rendered description and SCPDs (the kept buffers HTTP serves) and the evented
//! values, and turns a new model snapshot into a [`Change`] for SSDP and GENA. No I/O, no clock.

use crate::consts::{CONTROL_PREFIX, EVENT_PREFIX};
use crate::model::{Device, EventedValues};
use crate::wire::description::{render_description, render_scpd};
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Rendered SCPDs, each with the URL path it is served at.
pub type Scpds = Vec<(String, Arc<[u8]>)>;

/// The bytes a device serves and the values it has evented.
pub struct Published {
    /// The device tree as last published.
    pub root: Device,
    /// CONFIGID.UPNP.ORG of that tree.
    pub config_id: u32,
    /// The rendered description.
    pub description: Arc<[u8]>,
    /// Rendered SCPDs by URL path.
    pub scpds: Scpds,
    /// Evented values as last sent.
    pub evented: EventedValues,
}

/// What an update changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The description (or an SCPD) changed: CONFIGID moved, SSDP must re-advertise.
    pub description_changed: bool,
    /// Service keys that no longer exist (their subscriptions end).
    pub removed_services: Vec<String>,
    /// Per service key, the evented variables whose values changed, with the new values.
    pub events: Vec<(String, Vec<(String, String)>)>,
}

/// What a request to a device's HTTP server is for, besides the descriptions and SCPDs that
/// [`Published::lookup`] answers first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route<'a> {
    /// POST to a control URL: a SOAP action for the service with this key.
    Control(&'a str),
    /// SUBSCRIBE to an event URL (a new subscription or a renewal).
    Subscribe(&'a str),
    /// UNSUBSCRIBE from an event URL.
    Unsubscribe(&'a str),
    /// A control or event URL with a method it does not take: 405.
    MethodNotAllowed,
    /// Nothing here: 404.
    NotFound,
}

/// Routes a request by its method and path (without the query). Whether the service key
/// exists is the handler's question: an unknown key is a 404 there.
pub fn route<'a>(method: &str, path: &'a str) -> Route<'a> {
    if let Some(key) = path.strip_prefix(CONTROL_PREFIX) {
        return match method {
            "POST" => Route::Control(key),
            _ => Route::MethodNotAllowed,
        };
    }
    if let Some(key) = path.strip_prefix(EVENT_PREFIX) {
        return match method {
            "SUBSCRIBE" => Route::Subscribe(key),
            "UNSUBSCRIBE" => Route::Unsubscribe(key),
            _ => Route::MethodNotAllowed,
        };
    }
    Route::NotFound
}

/// A hash of everything a CONFIGID covers (the description and every SCPD), taken with the
/// configId attribute fixed at 0 so that it depends on content alone.
pub fn content_hash(root: &Device) -> u64 {
    let (description, scpds) = render(root, 0);
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    description.hash(&mut hasher);
    scpds.hash(&mut hasher);
    hasher.finish()
}

/// Renders the description and the SCPD of each service type of `root`.
pub fn render(root: &Device, config_id: u32) -> (Arc<[u8]>, Scpds) {
    let mut description = Vec::with_capacity(4096);
    // Rendering into a Vec cannot run out of room; Sink for Vec never fails.
    let _ = render_description(root, config_id, &mut description);
    let mut seen = BTreeSet::new();
    let mut scpds = Vec::new();
    for service in root.all_services() {
        if seen.insert(&service.spec.name) {
            let mut scpd = Vec::with_capacity(2048);
            let _ = render_scpd(&service.spec, config_id, &mut scpd);
            scpds.push((service.spec.scpd_url(), Arc::from(scpd)));
        }
    }
    (Arc::from(description), scpds)
}

impl Published {
    /// Publishes `root` with `config_id` and `evented` for the first time.
    pub fn new(root: Device, config_id: u32, evented: EventedValues) -> Published {
        let (description, scpds) = render(&root, config_id);
        Published {
            root,
            config_id,
            description,
            scpds,
            evented,
        }
    }

    /// The kept bytes served at `path`, if any.
    pub fn document(&self, path: &str) -> Option<&Arc<[u8]>> {
        if path == crate::consts::DESC_PATH {
            return Some(&self.description);
        }
        self.scpds
            .iter()
            .find(|(scpd_path, _)| scpd_path == path)
            .map(|(_, bytes)| bytes)
    }

    /// The HTTP fast path: for GET or HEAD of a description or SCPD, its content type and
    /// kept bytes. Allocates nothing (a reference count moves).
    pub fn lookup(
        &self,
        head: &crate::wire::http::RequestHead<'_>,
    ) -> Option<(&'static str, Arc<[u8]>)> {
        if head.method != "GET" && head.method != "HEAD" {
            return None;
        }
        let path = head.target.split('?').next().unwrap_or(head.target);
        self.document(path)
            .map(|bytes| (crate::consts::CONTENT_TYPE_XML, bytes.clone()))
    }

    /// Moves to a new snapshot. `config_id` is asked for the CONFIGID of new content (given
    /// its [`content_hash`]) only when the tree changed.
    pub fn update(
        &mut self,
        root: Device,
        evented: EventedValues,
        config_id: impl FnOnce(u64) -> u32,
    ) -> Change {
        let mut change = Change::default();
        if root != self.root {
            let new_keys: BTreeSet<&str> = root.all_services().map(|s| s.key.as_str()).collect();
            change.removed_services = self
                .root
                .all_services()
                .filter(|s| !new_keys.contains(s.key.as_str()))
                .map(|s| s.key.clone())
                .collect();
            let hash = content_hash(&root);
            self.config_id = config_id(hash);
            let (description, scpds) = render(&root, self.config_id);
            change.description_changed = description != self.description || scpds != self.scpds;
            self.description = description;
            self.scpds = scpds;
            self.root = root;
        }
        for (key, values) in &evented {
            let old = self.evented.get(key);
            let changed: Vec<(String, String)> = values
                .iter()
                .filter(|(name, value)| {
                    old.and_then(|old| old.iter().find(|(n, _)| n == name))
                        .map(|(_, v)| v)
                        != Some(value)
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            // A service that just appeared has no subscribers yet: nothing to send.
            if old.is_some() && !changed.is_empty() {
                change.events.push((key.clone(), changed));
            }
        }
        self.evented = evented;
        change
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Domain, HostInfo, RunState};
    use crate::control::{evented_values, hypervisor_device, HostView};
    use uuid::Uuid;

    #[test]
    fn requests_route_by_method_and_path() {
        let cases = [
            ("POST", "/control/hypervisor", Route::Control("hypervisor")),
            ("POST", "/control/domain/1-2", Route::Control("domain/1-2")),
            ("GET", "/control/hypervisor", Route::MethodNotAllowed),
            ("M-POST", "/control/hypervisor", Route::MethodNotAllowed),
            (
                "SUBSCRIBE",
                "/event/hypervisor",
                Route::Subscribe("hypervisor"),
            ),
            (
                "UNSUBSCRIBE",
                "/event/domain/x",
                Route::Unsubscribe("domain/x"),
            ),
            ("NOTIFY", "/event/hypervisor", Route::MethodNotAllowed),
            ("POST", "/event/hypervisor", Route::MethodNotAllowed),
            ("GET", "/description.xml", Route::NotFound),
            ("POST", "/", Route::NotFound),
            ("SUBSCRIBE", "/controlx", Route::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(route(method, path), expected, "{method} {path}");
        }
    }

    fn view(domains: &[(u128, &str, RunState)]) -> HostView {
        HostView {
            uuid: Uuid::from_u128(0x1234),
            info: HostInfo {
                uuid: None,
                name: "alpha".into(),
                hypervisor_version: "sim".into(),
                cpus: 4,
                memory_mib: 8192,
            },
            backend: "sim",
            domains: domains
                .iter()
                .map(|&(id, name, state)| Domain {
                    uuid: Uuid::from_u128(id),
                    name: name.into(),
                    state,
                    memory_kib: 1 << 20,
                    vcpus: 1,
                })
                .collect(),
        }
    }

    fn published(v: &HostView) -> Published {
        Published::new(hypervisor_device(v), 1, evented_values(v))
    }

    #[test]
    fn state_change_is_an_event_not_a_new_description() {
        let before = view(&[(1, "web", RunState::Running)]);
        let mut published = published(&before);
        let after = view(&[(1, "web", RunState::Paused)]);
        let change = published.update(hypervisor_device(&after), evented_values(&after), |_| {
            panic!("CONFIGID must not move for a state change")
        });
        assert!(!change.description_changed);
        let key = crate::control::domain_key(Uuid::from_u128(1));
        assert_eq!(
            change.events,
            vec![(key, vec![("State".to_string(), "paused".to_string())])]
        );
    }

    #[test]
    fn new_domain_changes_description_and_vm_ids() {
        let before = view(&[(1, "web", RunState::Running)]);
        let mut published = published(&before);
        let old_description = published.description.clone();
        let after = view(&[(1, "web", RunState::Running), (2, "db", RunState::Running)]);
        let change = published.update(hypervisor_device(&after), evented_values(&after), |_| 2);
        assert!(change.description_changed);
        assert_eq!(published.config_id, 2);
        assert_ne!(published.description, old_description);
        let text = String::from_utf8(published.description.to_vec()).unwrap();
        assert!(text.contains("configId=\"2\""), "{text}");
        assert_eq!(
            change.events.len(),
            1,
            "only VirtualMachineIds: the new domain has no subscribers"
        );
        assert_eq!(change.events[0].0, crate::control::HYPERVISOR_KEY);
        let removed = published.update(hypervisor_device(&before), evented_values(&before), |_| 3);
        assert_eq!(
            removed.removed_services,
            vec![crate::control::domain_key(Uuid::from_u128(2))]
        );
    }

    /// The description and SCPDs of a known host, byte for byte (tests/fixtures/description/),
    /// and each one well-formed XML in the UPnP namespaces.
    #[test]
    fn rendered_documents_match_golden_files() {
        let v = view(&[
            (1, "web & <db>", RunState::Running),
            (2, "build", RunState::Shutoff),
        ]);
        let published = Published::new(hypervisor_device(&v), 42, evented_values(&v));
        let fixtures =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/description");
        let documents = [
            ("hypervisor.xml", published.description.clone()),
            (
                "Hypervisor.scpd.xml",
                published.document("/scpd/Hypervisor.xml").unwrap().clone(),
            ),
            (
                "DomainControl.scpd.xml",
                published
                    .document("/scpd/DomainControl.xml")
                    .unwrap()
                    .clone(),
            ),
        ];
        for (name, bytes) in documents {
            let text = std::str::from_utf8(&bytes).unwrap();
            let document = roxmltree::Document::parse(text).unwrap();
            let root = document.root_element();
            assert!(
                [crate::consts::NS_DEVICE, crate::consts::NS_SERVICE]
                    .contains(&root.tag_name().namespace().unwrap()),
                "{name}"
            );
            assert_eq!(root.attribute("configId"), Some("42"), "{name}");
            if std::env::var_os("XENPLUG_BLESS").is_some() {
                std::fs::write(fixtures.join(name), &bytes).unwrap();
            }
            let golden = std::fs::read(fixtures.join(name)).unwrap();
            assert_eq!(
                text,
                std::str::from_utf8(&golden).unwrap(),
                "{name} differs from its golden file"
            );
        }
    }

    #[test]
    fn documents_are_found_by_path() {
        let published = published(&view(&[(1, "web", RunState::Running)]));
        assert!(published.document("/description.xml").is_some());
        assert!(published.document("/scpd/Hypervisor.xml").is_some());
        assert!(published.document("/scpd/DomainControl.xml").is_some());
        assert!(published.document("/scpd/Nope.xml").is_none());
    }
}
