//! The device model: what a description says, independent of bytes and sockets.
//!
//! A [`Device`] tree (root and embedded devices, each with services) is what gets rendered
//! into description XML, turned into SSDP advertisements and routed by HTTP. Services are
//! described by static [`ServiceSpec`] tables that render into SCPDs and drive SOAP dispatch.

use crate::consts::{CONTROL_PREFIX, EVENT_PREFIX, SCPD_PREFIX};
use crate::engine::ssdp::Advertisement;
use uuid::Uuid;

/// Current values of evented state variables, per service key, in SCPD order.
pub type EventedValues = std::collections::BTreeMap<String, Vec<(&'static str, String)>>;

/// One device of the description tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// deviceType URN.
    pub device_type: &'static str,
    /// UDN (rendered as `uuid:<udn>`).
    pub udn: Uuid,
    /// friendlyName.
    pub friendly_name: String,
    /// modelName.
    pub model_name: &'static str,
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
    /// The static description of the service type.
    pub spec: &'static ServiceSpec,
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
                device_type: device.device_type.to_string(),
                service_types: device
                    .services
                    .iter()
                    .map(|service| service.spec.service_type.to_string())
                    .collect(),
                root: index == 0,
            })
            .collect()
    }
}

/// A service type: its SCPD and the action table SOAP dispatch uses.
#[derive(Debug, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Short name: the SCPD file is `/scpd/<name>.xml`.
    pub name: &'static str,
    /// serviceType URN.
    pub service_type: &'static str,
    /// serviceId URN.
    pub service_id: &'static str,
    /// actionList.
    pub actions: &'static [ActionSpec],
    /// serviceStateTable.
    pub variables: &'static [VariableSpec],
}

impl ServiceSpec {
    /// The action named `name`.
    pub fn action(&self, name: &str) -> Option<&'static ActionSpec> {
        self.actions.iter().find(|action| action.name == name)
    }

    /// The evented state variables.
    pub fn evented(&self) -> impl Iterator<Item = &'static VariableSpec> {
        self.variables.iter().filter(|variable| variable.evented)
    }
}

/// One action of a service.
#[derive(Debug, PartialEq, Eq)]
pub struct ActionSpec {
    /// Action name.
    pub name: &'static str,
    /// Arguments in order (UDA: in-arguments first, then out-arguments).
    pub arguments: &'static [ArgumentSpec],
    /// Operation semantics, published as a vendor element so consoles can warn.
    pub semantics: &'static [Semantic],
}

impl ActionSpec {
    /// Names of the in-arguments, in order.
    pub fn inputs(&self) -> impl Iterator<Item = &'static str> {
        self.arguments
            .iter()
            .filter(|a| a.direction == Direction::In)
            .map(|a| a.name)
    }
}

/// One argument of an action.
#[derive(Debug, PartialEq, Eq)]
pub struct ArgumentSpec {
    /// Argument name.
    pub name: &'static str,
    /// in or out.
    pub direction: Direction,
    /// relatedStateVariable.
    pub variable: &'static str,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
#[derive(Debug, PartialEq, Eq)]
pub struct VariableSpec {
    /// Variable name.
    pub name: &'static str,
    /// UPnP data type (`string`, `ui4`, `uuid`, ...).
    pub data_type: &'static str,
    /// sendEvents.
    pub evented: bool,
    /// allowedValueList, empty for none.
    pub allowed: &'static [&'static str],
}
