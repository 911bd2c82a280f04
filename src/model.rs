//! The device model: what a description says, independent of bytes and sockets.
//!
//! A [`Device`] tree (root and embedded devices, each with services) is what gets rendered
//! into description XML, turned into SSDP advertisements and routed by HTTP. Services are
//! described by static [`ServiceSpec`] tables that render into SCPDs and drive SOAP dispatch.

use crate::consts::{CONTROL_PREFIX, EVENT_PREFIX, SCPD_PREFIX};
use std::sync::Arc;
use uuid::Uuid;

/// What SSDP announces of one device, root or embedded ([`Device::advertisements`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertisement {
    /// UDN, `uuid:...`.
    pub udn: String,
    /// Device type URN, `urn:domain:device:Type:v`.
    pub device_type: String,
    /// Service type URNs of the device's services; duplicates are advertised once.
    pub service_types: Vec<String>,
    /// Whether this is a root device (it also gets the `upnp:rootdevice` target).
    pub root: bool,
}

/// Current values of evented state variables, per service key, in SCPD order.
pub type EventedValues = std::collections::BTreeMap<String, Vec<(String, String)>>;

/// One device of the description tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// deviceType URN.
    pub device_type: String,
    /// UDN (rendered as `uuid:<udn>`).
    pub udn: Uuid,
    /// friendlyName.
    pub friendly_name: String,
    /// modelName.
    pub model_name: String,
    /// modelDescription.
    pub model_description: String,
    /// The Xen VM UUID this device stands for, rendered as a vendor element.
    pub vm_uuid: Option<Uuid>,
    /// serviceList.
    pub services: Vec<Service>,
    /// deviceList (embedded devices).
    pub devices: Vec<Device>,
}

/// One service instance of a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// What the service type is: its SCPD and action table.
    pub spec: Arc<ServiceSpec>,
    /// Path segment naming this instance in control and event URLs (`hypervisor`,
    /// `domain/<vm uuid>`): unique within the root device.
    pub key: String,
}

impl Service {
    /// controlURL.
    pub fn control_url(&self) -> String {
        format!("{CONTROL_PREFIX}{}", self.key)
    }

    /// eventSubURL.
    pub fn event_url(&self) -> String {
        format!("{EVENT_PREFIX}{}", self.key)
    }
}

impl ServiceSpec {
    /// SCPDURL: one SCPD per service type.
    pub fn scpd_url(&self) -> String {
        format!("{SCPD_PREFIX}{}.xml", self.name)
    }
}

impl Device {
    /// `uuid:<udn>`.
    pub fn udn_text(&self) -> String {
        format!("uuid:{}", self.udn)
    }

    /// This device and every embedded one, depth first.
    pub fn walk(&self) -> Vec<&Device> {
        let mut all = vec![self];
        for device in &self.devices {
            all.extend(device.walk());
        }
        all
    }

    /// Every service of the tree, depth first.
    pub fn all_services(&self) -> impl Iterator<Item = &Service> {
        self.walk()
            .into_iter()
            .flat_map(|device| device.services.iter())
    }

    /// The service whose key is `key`.
    pub fn service(&self, key: &str) -> Option<&Service> {
        self.all_services().find(|service| service.key == key)
    }

    /// What SSDP announces for this tree: the root first, then embedded devices.
    pub fn advertisements(&self) -> Vec<Advertisement> {
        self.walk()
            .into_iter()
            .enumerate()
            .map(|(index, device)| Advertisement {
                udn: device.udn_text(),
                device_type: device.device_type.clone(),
                service_types: device
                    .services
                    .iter()
                    .map(|service| service.spec.service_type.clone())
                    .collect(),
                root: index == 0,
            })
            .collect()
    }
}

/// A service type: its SCPD and the action table SOAP dispatch uses. Built in code for
/// xenplug's own services, parsed from files for services a VM's owner adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Short name: the SCPD is served at `/scpd/<name>.xml`; unique within a root device.
    pub name: String,
    /// serviceType URN.
    pub service_type: String,
    /// serviceId URN.
    pub service_id: String,
    /// actionList.
    pub actions: Vec<ActionSpec>,
    /// serviceStateTable.
    pub variables: Vec<VariableSpec>,
}

impl ServiceSpec {
    /// A service with no actions or variables yet; add them with [`ServiceSpec::action`]
    /// and [`ServiceSpec::variable`].
    pub fn new(name: &str, service_type: &str, service_id: &str) -> ServiceSpec {
        ServiceSpec {
            name: name.to_string(),
            service_type: service_type.to_string(),
            service_id: service_id.to_string(),
            actions: Vec::new(),
            variables: Vec::new(),
        }
    }

    /// Adds an action that may change something: `arguments` as (name, direction, related
    /// state variable). On a hypervisor only an authorized caller may call it (see
    /// [`crate::engine::access`]).
    pub fn action(
        self,
        name: &str,
        arguments: &[(&str, Direction, &str)],
        semantics: &[Semantic],
    ) -> ServiceSpec {
        self.push_action(name, arguments, semantics, false)
    }

    /// Adds a read-only action (it reports and changes nothing), open to every peer the
    /// device answers at all.
    pub fn read_only_action(
        self,
        name: &str,
        arguments: &[(&str, Direction, &str)],
        semantics: &[Semantic],
    ) -> ServiceSpec {
        self.push_action(name, arguments, semantics, true)
    }

    fn push_action(
        mut self,
        name: &str,
        arguments: &[(&str, Direction, &str)],
        semantics: &[Semantic],
        read_only: bool,
    ) -> ServiceSpec {
        self.actions.push(ActionSpec {
            name: name.to_string(),
            arguments: arguments
                .iter()
                .map(|&(name, direction, variable)| ArgumentSpec {
                    name: name.to_string(),
                    direction,
                    variable: variable.to_string(),
                })
                .collect(),
            semantics: semantics.to_vec(),
            read_only,
        });
        self
    }

    /// Adds a state variable.
    pub fn variable(
        mut self,
        name: &str,
        data_type: &str,
        evented: bool,
        allowed: &[&str],
    ) -> ServiceSpec {
        self.variables.push(VariableSpec {
            name: name.to_string(),
            data_type: data_type.to_string(),
            evented,
            allowed: allowed.iter().map(|value| value.to_string()).collect(),
        });
        self
    }

    /// The action named `name`.
    pub fn find_action(&self, name: &str) -> Option<&ActionSpec> {
        self.actions.iter().find(|action| action.name == name)
    }

    /// The evented state variables.
    pub fn evented(&self) -> impl Iterator<Item = &VariableSpec> {
        self.variables.iter().filter(|variable| variable.evented)
    }
}

/// One action of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSpec {
    /// Action name.
    pub name: String,
    /// Arguments in order (UDA: in-arguments first, then out-arguments).
    pub arguments: Vec<ArgumentSpec>,
    /// Operation semantics, published as a vendor element so consoles can warn.
    pub semantics: Vec<Semantic>,
    /// Whether calling it changes nothing, so no authorization is needed. Not published: set
    /// by xenplug's own service tables, false for every SCPD read from a file or the network.
    pub read_only: bool,
}

impl ActionSpec {
    /// Names of the in-arguments, in order.
    pub fn inputs(&self) -> impl Iterator<Item = &str> {
        self.arguments
            .iter()
            .filter(|a| a.direction == Direction::In)
            .map(|a| a.name.as_str())
    }
}

/// One argument of an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgumentSpec {
    /// Argument name.
    pub name: String,
    /// in or out.
    pub direction: Direction,
    /// relatedStateVariable.
    pub variable: String,
}

/// Argument direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Sent by the control point.
    In,
    /// Returned by the device.
    Out,
}

/// What calling an action does, beyond its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Semantic {
    /// Calling it twice has the effect of calling it once.
    Idempotent,
    /// It stops or loses something (a running VM, unsaved state).
    Destructive,
    /// A console should ask before calling it.
    Confirm,
}

impl Semantic {
    /// The token written in the SCPD.
    pub fn as_str(self) -> &'static str {
        match self {
            Semantic::Idempotent => "idempotent",
            Semantic::Destructive => "destructive",
            Semantic::Confirm => "confirm",
        }
    }
}

/// One state variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableSpec {
    /// Variable name.
    pub name: String,
    /// UPnP data type (`string`, `ui4`, `uuid`, ...).
    pub data_type: String,
    /// sendEvents.
    pub evented: bool,
    /// allowedValueList, empty for none.
    pub allowed: Vec<String>,
}
