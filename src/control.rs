//! Control: the Hypervisor:1 and DomainControl:1 service tables, and what their actions do.
//!
//! Static tables (the miniupnpd way) describe each action once, with what performs it; the
//! same table renders the SCPD, resolves calls ([`crate::engine::call`]) and dispatches them.
//! [`invoke`] runs a resolved call against a backend; it blocks, so the hypervisor's app calls
//! it off the event loop.

use crate::app::Outputs;
use crate::backend::{Backend, BackendError, Domain, HostInfo, Operation, RunState};
use crate::consts::{
    SERVICE_ID_DOMAIN_CONTROL, SERVICE_ID_HYPERVISOR, URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR,
    URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR,
};
use crate::engine::call::ControlCall;
use crate::model::{Device, Direction, EventedValues, Semantic, Service, ServiceSpec};
use crate::wire::soap::{self, UpnpError};
use std::sync::{Arc, LazyLock};
use uuid::Uuid;

/// Action-specific UPnP error (UDA 1.1 allows 700-799 per service): the domain is in a state
/// where the action does not apply (shutting down a domain that is off).
pub const ERROR_INVALID_STATE: u16 = 701;

use Direction::{In, Out};

/// Namespace for name-based (v5) Domain UDNs: a Domain's UDN is v5(this, VM UUID bytes), so
/// it is stable per VM and never equal to the VM UUID itself.
const DOMAIN_UDN_NAMESPACE: uuid::Uuid = uuid::Uuid::from_bytes([
    0x6b, 0x1e, 0x0c, 0x5a, 0x3f, 0x7d, 0x4a, 0x52, 0x9d, 0x0e, 0x58, 0x21, 0x3c, 0x6a, 0x1f, 0x90,
]);

/// Service key of the Hypervisor service in control and event URLs.
pub const HYPERVISOR_KEY: &str = "hypervisor";
/// Prefix of a Domain's DomainControl service key: `domain/<vm uuid>`.
pub const DOMAIN_KEY_PREFIX: &str = "domain/";

/// What performs an action of xenplug's own services.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Perform {
    /// GetHostInfo: the host's facts.
    HostInfo,
    /// GetVirtualMachineIds: the evented list.
    VirtualMachineIds,
    /// ListVirtualMachines: UUIDs, names and states.
    ListVirtualMachines,
    /// StartVirtualMachine: [`Operation::Start`] on the domain its argument names.
    StartVirtualMachine,
    /// GetState of the called Domain.
    DomainState,
    /// GetInfo of the called Domain.
    DomainInfo,
    /// A lifecycle operation on the called Domain.
    Domain(Operation),
}

/// One action: how its SCPD describes it and what performs it. A service's actions are
/// described and dispatched from the same table, in the same order.
struct ActionEntry {
    name: &'static str,
    /// (name, direction, related state variable).
    arguments: &'static [(&'static str, Direction, &'static str)],
    semantics: &'static [Semantic],
    /// Reports and changes nothing (see [`ServiceSpec::read_only_action`]).
    read_only: bool,
    perform: Perform,
}

/// The Hypervisor:1 actions.
const HYPERVISOR_ACTIONS: [ActionEntry; 4] = [
    ActionEntry {
        name: "GetHostInfo",
        arguments: &[
            ("HostName", Out, "A_ARG_TYPE_Name"),
            ("HostUuid", Out, "A_ARG_TYPE_Uuid"),
            ("HypervisorVersion", Out, "A_ARG_TYPE_Text"),
            ("Backend", Out, "A_ARG_TYPE_Text"),
            ("CpuCount", Out, "A_ARG_TYPE_Count"),
            ("MemoryMiB", Out, "A_ARG_TYPE_Count"),
        ],
        semantics: &[Semantic::Idempotent],
        read_only: true,
        perform: Perform::HostInfo,
    },
    ActionEntry {
        name: "GetVirtualMachineIds",
        arguments: &[("VirtualMachineIds", Out, "VirtualMachineIds")],
        semantics: &[Semantic::Idempotent],
        read_only: true,
        perform: Perform::VirtualMachineIds,
    },
    ActionEntry {
        name: "ListVirtualMachines",
        arguments: &[("VirtualMachines", Out, "A_ARG_TYPE_VirtualMachineList")],
        semantics: &[Semantic::Idempotent],
        read_only: true,
        perform: Perform::ListVirtualMachines,
    },
    ActionEntry {
        name: "StartVirtualMachine",
        arguments: &[("VirtualMachineId", In, "A_ARG_TYPE_Uuid")],
        semantics: &[],
        read_only: false,
        perform: Perform::StartVirtualMachine,
    },
];

/// A DomainControl:1 lifecycle action: no arguments, one backend operation.
const fn lifecycle(
    name: &'static str,
    operation: Operation,
    semantics: &'static [Semantic],
) -> ActionEntry {
    ActionEntry {
        name,
        arguments: &[],
        semantics,
        read_only: false,
        perform: Perform::Domain(operation),
    }
}

/// What may stop a VM or lose its state: a console asks before calling it.
const STOPS: &[Semantic] = &[Semantic::Destructive, Semantic::Confirm];

/// The DomainControl:1 actions.
const DOMAIN_CONTROL_ACTIONS: [ActionEntry; 8] = [
    ActionEntry {
        name: "GetState",
        arguments: &[("State", Out, "State")],
        semantics: &[Semantic::Idempotent],
        read_only: true,
        perform: Perform::DomainState,
    },
    ActionEntry {
        name: "GetInfo",
        arguments: &[
            ("Name", Out, "A_ARG_TYPE_Name"),
            ("VirtualMachineId", Out, "A_ARG_TYPE_Uuid"),
            ("State", Out, "State"),
            ("MemoryMiB", Out, "A_ARG_TYPE_Count"),
            ("Vcpus", Out, "A_ARG_TYPE_Count"),
        ],
        semantics: &[Semantic::Idempotent],
        read_only: true,
        perform: Perform::DomainInfo,
    },
    lifecycle("Shutdown", Operation::Shutdown, STOPS),
    lifecycle("Reboot", Operation::Reboot, STOPS),
    lifecycle("Pause", Operation::Pause, &[Semantic::Idempotent]),
    lifecycle("Resume", Operation::Resume, &[Semantic::Idempotent]),
    lifecycle("Suspend", Operation::Suspend, &[Semantic::Confirm]),
    lifecycle("Destroy", Operation::Destroy, STOPS),
];

/// Adds the actions of `table` to `spec`, in order.
fn with_actions(table: &[ActionEntry], spec: ServiceSpec) -> ServiceSpec {
    table.iter().fold(spec, |spec, entry| {
        if entry.read_only {
            spec.read_only_action(entry.name, entry.arguments, entry.semantics)
        } else {
            spec.action(entry.name, entry.arguments, entry.semantics)
        }
    })
}

/// `urn:xenplug-org:service:Hypervisor:1`.
pub static HYPERVISOR_SERVICE: LazyLock<Arc<ServiceSpec>> = LazyLock::new(|| {
    let spec = ServiceSpec::new("Hypervisor", URN_SERVICE_HYPERVISOR, SERVICE_ID_HYPERVISOR);
    let spec = with_actions(&HYPERVISOR_ACTIONS, spec)
        .variable("VirtualMachineIds", "string", true, &[])
        .variable("A_ARG_TYPE_VirtualMachineList", "string", false, &[]);
    Arc::new(with_argument_types(spec, true))
});

/// `urn:xenplug-org:service:DomainControl:1`.
pub static DOMAIN_CONTROL_SERVICE: LazyLock<Arc<ServiceSpec>> = LazyLock::new(|| {
    let states: Vec<&str> = RunState::ALL.iter().map(|state| state.as_str()).collect();
    let spec = ServiceSpec::new(
        "DomainControl",
        URN_SERVICE_DOMAIN_CONTROL,
        SERVICE_ID_DOMAIN_CONTROL,
    );
    let spec = with_actions(&DOMAIN_CONTROL_ACTIONS, spec);
    Arc::new(with_argument_types(
        spec.variable("State", "string", true, &states),
        false,
    ))
});

/// Adds the A_ARG_TYPE variables both services share (and Text where `text` is set).
fn with_argument_types(spec: ServiceSpec, text: bool) -> ServiceSpec {
    let spec = spec
        .variable("A_ARG_TYPE_Name", "string", false, &[])
        .variable("A_ARG_TYPE_Uuid", "string", false, &[])
        .variable("A_ARG_TYPE_Count", "ui4", false, &[]);
    if text {
        spec.variable("A_ARG_TYPE_Text", "string", false, &[])
    } else {
        spec
    }
}

/// What a hypervisor looks like at one instant: the input of every read-only action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostView {
    /// The host's UUID as advertised.
    pub uuid: Uuid,
    /// Host facts.
    pub info: HostInfo,
    /// Backend name.
    pub backend: &'static str,
    /// Domains, in advertisement order.
    pub domains: Vec<Domain>,
}

impl HostView {
    /// The evented VirtualMachineIds value: the VM UUIDs, comma-separated.
    pub fn virtual_machine_ids(&self) -> String {
        let ids: Vec<String> = self.domains.iter().map(|d| d.uuid.to_string()).collect();
        ids.join(",")
    }
}

/// The DomainControl service key of a VM.
pub fn domain_key(vm: Uuid) -> String {
    format!("{DOMAIN_KEY_PREFIX}{vm}")
}

/// Outputs of xenplug's own actions, whose argument names are constants.
type NamedOutputs = Vec<(&'static str, String)>;

fn backend_error(error: BackendError) -> UpnpError {
    match error {
        BackendError::InvalidState { .. }
        | BackendError::Refused {
            invalid_state: true,
            ..
        } => UpnpError::new(ERROR_INVALID_STATE, error.to_string()),
        other => UpnpError::new(soap::ACTION_FAILED, other.to_string()),
    }
}

/// Performs `call`, resolved against the tables of [`hypervisor_device`]. Read-only actions
/// answer from `view`; lifecycle actions go to `backend`.
pub fn invoke(
    backend: &dyn Backend,
    view: &HostView,
    call: &ControlCall,
) -> Result<Outputs, UpnpError> {
    let table: &[ActionEntry] = if call.service.key == HYPERVISOR_KEY {
        &HYPERVISOR_ACTIONS
    } else {
        &DOMAIN_CONTROL_ACTIONS
    };
    let entry = table
        .get(call.action_index)
        .filter(|entry| entry.name == call.action.name)
        .ok_or_else(|| UpnpError::new(soap::INVALID_ACTION, "no such action"))?;
    let outputs = perform(backend, view, entry.perform, call)?;
    Ok(outputs
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect())
}

fn perform(
    backend: &dyn Backend,
    view: &HostView,
    perform: Perform,
    call: &ControlCall,
) -> Result<NamedOutputs, UpnpError> {
    let domain = || {
        let vm = call
            .vm_uuid
            .ok_or_else(|| UpnpError::new(soap::INVALID_ACTION, "not a Domain's service"))?;
        view.domains
            .iter()
            .find(|d| d.uuid == vm)
            .ok_or_else(|| UpnpError::new(soap::ACTION_FAILED, format!("no domain with UUID {vm}")))
    };
    match perform {
        Perform::HostInfo => Ok(vec![
            ("HostName", view.info.name.clone()),
            ("HostUuid", view.uuid.to_string()),
            ("HypervisorVersion", view.info.hypervisor_version.clone()),
            ("Backend", view.backend.to_string()),
            ("CpuCount", view.info.cpus.to_string()),
            (
                "MemoryMiB",
                view.info.memory_mib.min(u64::from(u32::MAX)).to_string(),
            ),
        ]),
        Perform::VirtualMachineIds => Ok(vec![("VirtualMachineIds", view.virtual_machine_ids())]),
        Perform::ListVirtualMachines => Ok(vec![(
            "VirtualMachines",
            virtual_machine_list(&view.domains),
        )]),
        Perform::StartVirtualMachine => {
            let text = call.argument("VirtualMachineId").unwrap_or_default();
            let vm = Uuid::parse_str(text.trim()).map_err(|_| {
                UpnpError::new(
                    soap::ARGUMENT_VALUE_INVALID,
                    format!("not a UUID: {text:?}"),
                )
            })?;
            if !view.domains.iter().any(|d| d.uuid == vm) {
                let message = format!("no domain with UUID {vm}");
                return Err(UpnpError::new(soap::ARGUMENT_VALUE_INVALID, message));
            }
            backend.apply(vm, Operation::Start).map_err(backend_error)?;
            Ok(Vec::new())
        }
        Perform::DomainState => Ok(vec![("State", domain()?.state.as_str().to_string())]),
        Perform::DomainInfo => {
            let domain = domain()?;
            Ok(vec![
                ("Name", domain.name.clone()),
                ("VirtualMachineId", domain.uuid.to_string()),
                ("State", domain.state.as_str().to_string()),
                ("MemoryMiB", (domain.memory_kib / 1024).to_string()),
                ("Vcpus", domain.vcpus.to_string()),
            ])
        }
        Perform::Domain(operation) => {
            let vm = domain()?.uuid;
            backend.apply(vm, operation).map_err(backend_error)?;
            Ok(Vec::new())
        }
    }
}

/// The ListVirtualMachines value: a small XML document, one element per VM, so names with any
/// character survive (the SOAP layer escapes it once more as element text).
fn virtual_machine_list(domains: &[Domain]) -> String {
    use crate::wire::xml::Sink;
    let mut out: Vec<u8> = Vec::new();
    let mut write = || -> crate::wire::Result<()> {
        out.put_str("<VirtualMachines>")?;
        for domain in domains {
            out.put_str("<VirtualMachine uuid=\"")?;
            out.put_str(&domain.uuid.to_string())?;
            out.put_str("\" name=\"")?;
            out.put_escaped(&domain.name)?;
            out.put_str("\" state=\"")?;
            out.put_str(domain.state.as_str())?;
            out.put_str("\"/>")?;
        }
        out.put_str("</VirtualMachines>")
    };
    // Writing into a Vec cannot fail.
    let _ = write();
    String::from_utf8(out).unwrap_or_default()
}

/// The Hypervisor device tree for `view`: the root with the Hypervisor service and one
/// embedded Domain device per VM.
pub fn hypervisor_device(view: &HostView) -> Device {
    let domains = view
        .domains
        .iter()
        .map(|domain| Device {
            device_type: URN_DEVICE_DOMAIN.to_string(),
            udn: Uuid::new_v5(&DOMAIN_UDN_NAMESPACE, domain.uuid.as_bytes()),
            friendly_name: domain.name.clone(),
            model_name: "xenplug domain".to_string(),
            model_description: format!("Xen domain {} on {}", domain.name, view.info.name),
            vm_uuid: Some(domain.uuid),
            services: vec![Service {
                spec: DOMAIN_CONTROL_SERVICE.clone(),
                key: domain_key(domain.uuid),
            }],
            devices: Vec::new(),
        })
        .collect();
    Device {
        device_type: URN_DEVICE_HYPERVISOR.to_string(),
        udn: view.uuid,
        friendly_name: format!("Xen hypervisor {}", view.info.name),
        model_name: "xenplug hypervisor".to_string(),
        model_description: format!(
            "Xen {} host ({} backend)",
            view.info.hypervisor_version, view.backend
        ),
        vm_uuid: None,
        services: vec![Service {
            spec: HYPERVISOR_SERVICE.clone(),
            key: HYPERVISOR_KEY.to_string(),
        }],
        devices: domains,
    }
}

/// Current values of every evented variable, per service key.
pub fn evented_values(view: &HostView) -> EventedValues {
    let mut values = EventedValues::new();
    values.insert(
        HYPERVISOR_KEY.to_string(),
        vec![("VirtualMachineIds".to_string(), view.virtual_machine_ids())],
    );
    for domain in &view.domains {
        values.insert(
            domain_key(domain.uuid),
            vec![("State".to_string(), domain.state.as_str().to_string())],
        );
    }
    values
}
