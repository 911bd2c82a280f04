//! Engine layer: the tracker's relay rules. Where an action call through the read API goes
//! (which control URL, learned from which description), what kind of action it is and what
//! its semantics say, and whether the caller may make it ([`crate::engine::access`]). Pure:
//! the net layer holds the tables and performs the call.
//!
//! A VM's call goes to one of two places. A `DomainControl` action goes to the VM's Domain
//! device on the hypervisor whose description listed it, and only while the repository says
//! that hypervisor places the VM (a VM that migrated is controlled where it runs now). Any
//! other service type goes to the VM's own advertisement, and only for an action its record
//! lists (what its owner advertises, as the inventory accepted it). A hypervisor's call goes to
//! its Hypervisor service, for an action of that service's table.

use crate::consts::{URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR};
use crate::engine::access::{self, ActionAsk, ActionKind, Caller, Listener, Refusal, Target};
use crate::model::{Semantic, ServiceSpec};
use crate::repo::VirtualRecord;
use std::net::SocketAddrV4;
use std::sync::Arc;
use uuid::Uuid;

/// Where an advertised service is controlled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    /// Its serviceType (shared by the controls that repeat it).
    pub service_type: Arc<str>,
    /// The control URL's address (always the advertiser's own source address).
    pub address: SocketAddrV4,
    /// The control URL's request target.
    pub path: Box<str>,
}

/// Where the provider reaches a VM's DomainControl: on the hypervisor whose description
/// listed its Domain device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainControl {
    /// The network the description came from.
    pub network: u32,
    /// The hypervisor's root UDN, to forget it when the hypervisor leaves (shared by the
    /// hypervisor's Domains).
    pub root: Arc<str>,
    /// The hypervisor's host UUID, checked against the VM's current placement.
    pub host: Option<Uuid>,
    /// The control URL's address and request target (its service type goes without saying:
    /// one of these per VM is kept, and a call is rare).
    pub address: SocketAddrV4,
    pub path: Box<str>,
}

impl DomainControl {
    /// Where a lifecycle call goes.
    pub fn control(&self) -> Control {
        Control {
            service_type: URN_SERVICE_DOMAIN_CONTROL.into(),
            address: self.address,
            path: self.path.clone(),
        }
    }
}

/// What the relay knows of one VM's controls.
#[derive(Debug, Clone, Copy, Default)]
pub struct VmControls<'a> {
    /// The control URLs of the services the VM advertises itself.
    pub own: Option<&'a [Control]>,
    /// Its Domain device's DomainControl, if a hypervisor listed it.
    pub domain: Option<&'a DomainControl>,
}

/// An action call as the read API's form body gives it:
/// `service=<serviceType>&action=<name>&<Arg>=<value>...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayCall {
    /// `service`.
    pub service_type: String,
    /// `action`.
    pub action: String,
    /// The in-arguments, in the order given.
    pub arguments: Vec<(String, String)>,
}

impl RelayCall {
    /// Reads a form body; `Err` is the reason for a 400.
    pub fn from_form(body: &[u8]) -> Result<RelayCall, &'static str> {
        let text = std::str::from_utf8(body).map_err(|_| "body is not UTF-8")?;
        let mut fields = crate::wire::form::pairs(text);
        let mut take = |key: &str| {
            fields
                .iter()
                .position(|(k, _)| k == key)
                .map(|i| fields.remove(i).1)
        };
        match (take("service"), take("action")) {
            (Some(service_type), Some(action)) => Ok(RelayCall {
                service_type,
                action,
                arguments: fields,
            }),
            _ => Err("service and action are required"),
        }
    }

    /// The names of its in-arguments, comma-separated (what the audit keeps: never values).
    pub fn argument_names(&self) -> String {
        let names: Vec<&str> = self
            .arguments
            .iter()
            .map(|(name, _)| name.as_str())
            .collect();
        names.join(",")
    }
}

/// A call the relay will make: where, and what kind of action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The control URL to call.
    pub control: Control,
    /// The kind of action.
    pub kind: ActionKind,
}

/// Decides a call to an action of a VM: `record` is its repository record now (`None`: the
/// tracker knows no such VM), `controls` what the relay learned of it, `lifecycle` the
/// DomainControl service's table (xenplug's own: [`crate::control::DOMAIN_CONTROL_SERVICE`]).
///
/// A VM outside the caller's view is 404 before anything else, so that a tenant learns
/// nothing about another tenant's VMs; then an action the VM does not offer there is 404;
/// then the caller's role decides (401/403).
pub fn decide_vm_call(
    caller: Caller<'_>,
    listener: Listener<'_>,
    record: Option<&VirtualRecord>,
    call: &RelayCall,
    controls: VmControls<'_>,
    lifecycle: &ServiceSpec,
    tenant_control: &[String],
) -> Result<Plan, Refusal> {
    let target = Target::Vm(record.map(|r| r.tenant.as_deref()));
    access::visible(caller, listener, target)?;
    let record = record.ok_or(access::NOT_FOUND)?;
    let no_action = Refusal {
        status: 404,
        reason: "that VM advertises no such action",
    };
    let (kind, semantics, control): (ActionKind, Vec<Semantic>, Option<Control>) =
        if call.service_type == URN_SERVICE_DOMAIN_CONTROL {
            let action = lifecycle
                .find_action(&call.action)
                .ok_or(no_action.clone())?;
            let placed_here = controls
                .domain
                .filter(|d| d.host.is_some() && d.host == record.hypervisor)
                .map(DomainControl::control);
            (ActionKind::Lifecycle, action.semantics.clone(), placed_here)
        } else {
            let action = record
                .services
                .iter()
                .filter(|s| s.service_type == call.service_type)
                .flat_map(|s| s.actions.iter())
                .find(|a| a.name == call.action)
                .ok_or(no_action.clone())?;
            let control = controls
                .own
                .and_then(|own| own.iter().find(|c| *c.service_type == *call.service_type))
                .cloned();
            (ActionKind::Owner, action.semantics.clone(), control)
        };
    let ask = ActionAsk {
        kind,
        name: &call.action,
        semantics: &semantics,
    };
    access::may_act(caller, listener, target, ask, tenant_control)?;
    let control = control.ok_or(no_action)?;
    Ok(Plan { control, kind })
}

/// Decides a call to an action of a hypervisor (`known`: the repository has it; `control`:
/// its Hypervisor service's control URL, if the relay learned one; `service` that service's
/// table: [`crate::control::HYPERVISOR_SERVICE`]).
pub fn decide_host_call(
    caller: Caller<'_>,
    listener: Listener<'_>,
    known: bool,
    call: &RelayCall,
    control: Option<&Control>,
    service: &ServiceSpec,
    tenant_control: &[String],
) -> Result<Plan, Refusal> {
    let target = Target::Hypervisor(known);
    access::visible(caller, listener, target)?;
    let no_action = Refusal {
        status: 404,
        reason: "that hypervisor offers no such action",
    };
    let action = (call.service_type == URN_SERVICE_HYPERVISOR)
        .then(|| service.find_action(&call.action))
        .flatten()
        .ok_or(no_action.clone())?;
    let ask = ActionAsk {
        kind: ActionKind::Hypervisor,
        name: &call.action,
        semantics: &action.semantics,
    };
    access::may_act(caller, listener, target, ask, tenant_control)?;
    let control = control.cloned().ok_or(no_action)?;
    Ok(Plan {
        control,
        kind: ActionKind::Hypervisor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{DOMAIN_CONTROL_SERVICE, HYPERVISOR_SERVICE};
    use crate::engine::access::{AccessList, Role};
    use crate::repo::{ActionRecord, ServiceRecord};

    const ECHO: &str = "urn:example-org:service:Echo:1";

    fn record(tenant: &str, host: Option<u128>) -> VirtualRecord {
        VirtualRecord {
            vm_uuid: Uuid::from_u128(7),
            name: "web".into(),
            hypervisor: host.map(Uuid::from_u128),
            run_state: "running".into(),
            tenant: Some(tenant.into()),
            services: vec![ServiceRecord {
                service_type: ECHO.into(),
                actions: vec![
                    ActionRecord {
                        name: "Echo".into(),
                        semantics: vec![],
                        inputs: vec!["Text".into()],
                        outputs: vec![],
                    },
                    ActionRecord {
                        name: "Wipe".into(),
                        semantics: vec![Semantic::Destructive],
                        inputs: vec![],
                        outputs: vec![],
                    },
                ],
            }],
            first_seen: 1,
            last_seen: 2,
        }
    }

    fn control(service_type: &str, port: u16) -> Control {
        Control {
            service_type: service_type.into(),
            address: SocketAddrV4::new([10, 0, 0, 9].into(), port),
            path: "/control/x".into(),
        }
    }

    fn call(service_type: &str, action: &str) -> RelayCall {
        RelayCall {
            service_type: service_type.into(),
            action: action.into(),
            arguments: vec![("Text".into(), "hi".into())],
        }
    }

    fn identities() -> AccessList {
        AccessList::parse(&format!(
            "{}\n{}\n{}\n",
            AccessList::line("alice", &Role::Admin, "a"),
            AccessList::line("ops", &Role::Operator, "o"),
            AccessList::line("acme", &Role::Tenant("acme".into()), "t"),
        ))
        .unwrap()
    }

    #[test]
    fn forms_read_service_action_and_arguments() {
        let call = RelayCall::from_form(b"service=urn%3Ax&action=Echo&Text=a%26b&N=2").unwrap();
        assert_eq!(call.service_type, "urn:x");
        assert_eq!(call.action, "Echo");
        assert_eq!(
            call.arguments,
            [("Text".into(), "a&b".into()), ("N".into(), "2".into())]
        );
        assert_eq!(call.argument_names(), "Text,N");
        assert!(RelayCall::from_form(b"action=Echo").is_err());
        assert!(RelayCall::from_form(&[0xff, 0xfe]).is_err());
    }

    #[test]
    fn lifecycle_goes_where_the_vm_is_placed_now_and_owner_actions_to_the_vm() {
        let list = identities();
        let alice = Caller::Identified(list.authenticate("a").unwrap());
        let own = [control(ECHO, 1)];
        let placed_on_1 = DomainControl {
            network: 0,
            root: "uuid:h1".into(),
            host: Some(Uuid::from_u128(1)),
            address: control(URN_SERVICE_DOMAIN_CONTROL, 2).address,
            path: "/control/x".into(),
        };
        let controls = VmControls {
            own: Some(&own),
            domain: Some(&placed_on_1),
        };
        let vm = record("acme", Some(1));
        let plan = decide_vm_call(
            alice,
            Listener::Provider,
            Some(&vm),
            &call(URN_SERVICE_DOMAIN_CONTROL, "Pause"),
            controls,
            &DOMAIN_CONTROL_SERVICE,
            &[],
        )
        .unwrap();
        assert_eq!(
            (plan.kind, plan.control.address.port()),
            (ActionKind::Lifecycle, 2)
        );
        let plan = decide_vm_call(
            alice,
            Listener::Provider,
            Some(&vm),
            &call(ECHO, "Echo"),
            controls,
            &DOMAIN_CONTROL_SERVICE,
            &[],
        )
        .unwrap();
        assert_eq!(
            (plan.kind, plan.control.address.port()),
            (ActionKind::Owner, 1)
        );
        // Migrated to host 2: the Domain learned on host 1 is no longer where it is controlled.
        let moved = record("acme", Some(2));
        let refused = decide_vm_call(
            alice,
            Listener::Provider,
            Some(&moved),
            &call(URN_SERVICE_DOMAIN_CONTROL, "Pause"),
            controls,
            &DOMAIN_CONTROL_SERVICE,
            &[],
        )
        .unwrap_err();
        assert_eq!(refused.status, 404);
        for (service, action) in [
            (ECHO, "Nope"),
            ("urn:other:service:X:1", "Echo"),
            (URN_SERVICE_DOMAIN_CONTROL, "Format"),
        ] {
            assert_eq!(
                decide_vm_call(
                    alice,
                    Listener::Provider,
                    Some(&vm),
                    &call(service, action),
                    controls,
                    &DOMAIN_CONTROL_SERVICE,
                    &[]
                )
                .unwrap_err()
                .status,
                404,
                "{service} {action}"
            );
        }
    }

    #[test]
    fn a_tenant_learns_nothing_of_other_tenants_and_roles_decide_the_rest() {
        let list = identities();
        let acme = Caller::Identified(list.authenticate("t").unwrap());
        let ops = Caller::Identified(list.authenticate("o").unwrap());
        let own = [control(ECHO, 1)];
        let controls = VmControls {
            own: Some(&own),
            domain: None,
        };
        let beta_vm = record("beta", None);
        let acme_vm = record("acme", None);
        let listener = Listener::Tenant("acme");
        // Another tenant's VM: 404 whether the action exists or not.
        for action in ["Echo", "Nope"] {
            assert_eq!(
                decide_vm_call(
                    acme,
                    listener,
                    Some(&beta_vm),
                    &call(ECHO, action),
                    controls,
                    &DOMAIN_CONTROL_SERVICE,
                    &[]
                )
                .unwrap_err()
                .status,
                404
            );
        }
        assert!(decide_vm_call(
            acme,
            listener,
            Some(&acme_vm),
            &call(ECHO, "Echo"),
            controls,
            &DOMAIN_CONTROL_SERVICE,
            &[]
        )
        .is_ok());
        // The operator may not call a destructive owner action; nor anyone without a token.
        let wipe = call(ECHO, "Wipe");
        assert_eq!(
            decide_vm_call(
                ops,
                Listener::Provider,
                Some(&acme_vm),
                &wipe,
                controls,
                &DOMAIN_CONTROL_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            403
        );
        assert_eq!(
            decide_vm_call(
                Caller::Unknown,
                Listener::Provider,
                Some(&acme_vm),
                &wipe,
                controls,
                &DOMAIN_CONTROL_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            401
        );
        assert_eq!(
            decide_vm_call(
                Caller::Open,
                Listener::Provider,
                Some(&acme_vm),
                &wipe,
                controls,
                &DOMAIN_CONTROL_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            403
        );
        assert_eq!(
            decide_vm_call(
                ops,
                Listener::Provider,
                None,
                &wipe,
                controls,
                &DOMAIN_CONTROL_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            404
        );
    }

    #[test]
    fn hypervisor_calls_are_the_providers() {
        let list = identities();
        let ops = Caller::Identified(list.authenticate("o").unwrap());
        let acme = Caller::Identified(list.authenticate("t").unwrap());
        let start = call(URN_SERVICE_HYPERVISOR, "StartVirtualMachine");
        let at = control(URN_SERVICE_HYPERVISOR, 3);
        let plan = decide_host_call(
            ops,
            Listener::Provider,
            true,
            &start,
            Some(&at),
            &HYPERVISOR_SERVICE,
            &[],
        )
        .unwrap();
        assert_eq!(plan.kind, ActionKind::Hypervisor);
        assert_eq!(
            decide_host_call(
                acme,
                Listener::Provider,
                true,
                &start,
                Some(&at),
                &HYPERVISOR_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            404
        );
        assert_eq!(
            decide_host_call(
                ops,
                Listener::Provider,
                false,
                &start,
                Some(&at),
                &HYPERVISOR_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            404
        );
        assert_eq!(
            decide_host_call(
                ops,
                Listener::Provider,
                true,
                &call(URN_SERVICE_HYPERVISOR, "Nope"),
                Some(&at),
                &HYPERVISOR_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            404
        );
        assert_eq!(
            decide_host_call(
                ops,
                Listener::Provider,
                true,
                &start,
                None,
                &HYPERVISOR_SERVICE,
                &[]
            )
            .unwrap_err()
            .status,
            404
        );
    }
}
