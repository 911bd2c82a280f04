//! What a running xenplug's own description says: its UDNs, the VM UUIDs, the USNs it must
//! announce, and its `configId`.

use std::collections::BTreeSet;

use super::constants::{
    DEVICE_DOMAIN, DEVICE_HYPERVISOR, SERVICE_DOMAIN_CONTROL, SERVICE_HYPERVISOR,
};
use super::http::{http_get, xml_texts};
use super::netns::Netns;
use super::peers::set_of;

/// Host UDN and (Domain UDN, VM UUID) pairs as the description states them.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Root device UDN (`uuid:...`).
    pub host_udn: String,
    /// (Domain UDN, VM UUID), in description order.
    pub domains: Vec<(String, String)>,
    /// The description text.
    pub description: String,
}

impl Identity {
    /// Fetch `url` from `ns` and read the UDNs and vmUuids out of it.
    pub fn fetch(ns: &Netns, url: &str) -> Identity {
        let response = http_get(ns, url);
        assert_eq!(response.status, 200, "GET {url}: {response:?}");
        let description = response.body;
        let udns = xml_texts(&description, "UDN");
        let vms = xml_texts(&description, "vmUuid");
        assert!(!udns.is_empty(), "description has no UDN:\n{description}");
        assert_eq!(
            udns.len() - 1,
            vms.len(),
            "every embedded device needs exactly one vmUuid:\n{description}"
        );
        Identity {
            host_udn: udns[0].to_string(),
            domains: udns[1..]
                .iter()
                .zip(vms.iter())
                .map(|(u, v)| (u.to_string(), v.to_string()))
                .collect(),
            description,
        }
    }

    /// The Domain UDN of VM `vm`.
    pub fn domain_udn(&self, vm: &str) -> Option<&str> {
        self.domains
            .iter()
            .find(|(_, v)| v == vm)
            .map(|(u, _)| u.as_str())
    }

    /// The USNs of the root device and its Hypervisor service (3 + 1).
    pub fn root_usns(&self) -> BTreeSet<String> {
        let h = &self.host_udn;
        set_of(&[
            &format!("{h}::upnp:rootdevice"),
            h,
            &format!("{h}::{DEVICE_HYPERVISOR}"),
            &format!("{h}::{SERVICE_HYPERVISOR}"),
        ])
    }

    /// The USNs of one Domain (device uuid, device type, DomainControl service).
    pub fn domain_usns(udn: &str) -> BTreeSet<String> {
        set_of(&[
            udn,
            &format!("{udn}::{DEVICE_DOMAIN}"),
            &format!("{udn}::{SERVICE_DOMAIN_CONTROL}"),
        ])
    }

    /// The full announcement set (UDA 1.1 section 1.1.2: 3 + 2d + k messages).
    pub fn full_usns(&self) -> BTreeSet<String> {
        let mut all = self.root_usns();
        for (udn, _) in &self.domains {
            all.extend(Identity::domain_usns(udn));
        }
        all
    }
}

/// The `configId` attribute of a description's `<root>` (UDA 1.1 section 2.3).
pub fn config_id(description: &str) -> Option<u64> {
    let start = description.find("configId=\"")? + "configId=\"".len();
    let rest = &description[start..];
    rest[..rest.find('"')?].parse().ok()
}
