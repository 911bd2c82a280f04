//! `xenplug console call TARGET ACTION [NAME=VALUE ...]`: finds the target and the action in
//! the tree ([`plan`]), asks before a destructive action, and calls it through the relay of
//! the source that knows the target ([`choose_api`]). Planning, the form body and reading the
//! answer are pure and never panic; only [`run`] does I/O.
//!
//! TARGET is a VM (its name, its UUID, or its UDN `uuid:<UUID>`) or a hypervisor (its host
//! name, which ends its friendly name `Xen hypervisor <host name>`, the whole friendly name,
//! its host UUID or its UDN). A name both a VM and a hypervisor carry is a usage error listing
//! both. A VM's lifecycle actions (the Domain device's DomainControl: Shutdown, Reboot, Pause,
//! Resume, Suspend, Destroy, GetState, GetInfo) go to the VM's Domain device on the hypervisor
//! placing it; any other action to the VM's own service that offers it. A hypervisor's actions
//! are its Hypervisor service's (GetHostInfo, GetVirtualMachineIds, ListVirtualMachines,
//! StartVirtualMachine), relayed by `POST /api/hypervisors/<uuid>/actions`.
//!
//! When the tree lists an action's arguments, an argument it does not take, or one it needs
//! and was not given, is a usage error before anything is sent.

use super::tree::{Action, Host, Tree, Vm};
use super::{is_terminal, printable, Failure, SourceOptions};
use crate::cli::ConsoleCallArgs;
use crate::consts::{
    API_ACTIONS_SUFFIX, API_HYPERVISORS_PREFIX, API_VMS_PREFIX, CONSOLE_ACTION_TIMEOUT,
    CONSOLE_TIMEOUT, URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR,
};
use crate::model::{Direction, ServiceSpec};
use crate::net::http_client::ClientResponse;
use crate::wire::description::udn_uuid;
use crate::wire::json::{parse_value, JsonValue};
use std::io::{BufRead as _, Read as _, Write as _};
use std::time::Duration;
use uuid::Uuid;

/// What a call will do, decided from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The target's UUID as the tree wrote it (the relay's path): a VM's or a host's.
    pub uuid: String,
    /// The target's name, for messages.
    pub name: String,
    /// The service type to call (DomainControl for a lifecycle action).
    pub service_type: String,
    /// The action.
    pub action: Action,
    /// Whether it goes to the VM's Domain device on its hypervisor (a lifecycle action).
    pub lifecycle: bool,
    /// Whether the target is a hypervisor (its Hypervisor service).
    pub hypervisor: bool,
}

impl Plan {
    /// The relay's path: `/api/hypervisors/<uuid>/actions` or `/api/vms/<uuid>/actions`.
    pub fn path(&self) -> String {
        let prefix = if self.hypervisor {
            API_HYPERVISORS_PREFIX
        } else {
            API_VMS_PREFIX
        };
        format!("{prefix}{}{API_ACTIONS_SUFFIX}", self.uuid)
    }
}

/// Parses `NAME=VALUE` arguments: names are non-empty XML-name-like (letters, digits, `_`,
/// `-`, `.`, not starting with a digit, `-` or `.`), not `service` or `action` (the relay's own
/// fields), each given once; values are anything, `=` included.
pub fn parse_arguments(words: &[String]) -> Result<Vec<(String, String)>, Failure> {
    let mut arguments: Vec<(String, String)> = Vec::new();
    for word in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err(Failure::usage(format!(
                "argument {:?}: expected NAME=VALUE",
                printable(word)
            )));
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !valid || name == "service" || name == "action" {
            return Err(Failure::usage(format!(
                "argument name {:?} is not a valid UPnP argument name",
                printable(name)
            )));
        }
        if arguments.iter().any(|(n, _)| n == name) {
            return Err(Failure::usage(format!("argument {name} given twice")));
        }
        arguments.push((name.to_string(), value.to_string()));
    }
    Ok(arguments)
}

/// What TARGET names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A VM, and whether a hypervisor places it.
    Vm {
        /// Whether a hypervisor places it.
        placed: bool,
        /// The VM.
        vm: &'a Vm,
    },
    /// A hypervisor.
    Host(&'a Host),
}

fn same_uuid(text: &str, wanted: Uuid) -> bool {
    Uuid::try_parse(text).ok() == Some(wanted)
}

/// Whether `target` names hypervisor `host`: its friendly name, or the host name that ends it
/// (`Xen hypervisor dom0-a` is `dom0-a`).
fn host_named(host: &Host, target: &str) -> bool {
    host.name == target
        || host
            .name
            .strip_suffix(target)
            .is_some_and(|start| start.ends_with(' '))
}

/// The VM or hypervisor `target` names: a UUID or UDN (`uuid:` and a UUID, any case), else a
/// name. A name several carry is a usage error listing their UUIDs.
pub fn find_target<'a>(tree: &'a Tree, target: &str) -> Result<Target<'a>, Failure> {
    let all = tree.vms();
    let wanted = udn_uuid(target).or_else(|| Uuid::try_parse(target).ok());
    if let Some(wanted) = wanted {
        if let Some((host, vm)) = all.iter().find(|(_, vm)| same_uuid(&vm.uuid, wanted)) {
            return Ok(Target::Vm {
                placed: host.is_some(),
                vm,
            });
        }
        if let Some(host) = tree.hosts.iter().find(|h| same_uuid(&h.uuid, wanted)) {
            return Ok(Target::Host(host));
        }
    }
    let vms: Vec<_> = all.iter().filter(|(_, vm)| vm.name == target).collect();
    let hosts: Vec<&Host> = tree
        .hosts
        .iter()
        .filter(|host| host_named(host, target))
        .collect();
    let listed = |kind: &str, uuids: Vec<&String>| {
        uuids
            .iter()
            .map(|uuid| format!("{kind} {}", printable(uuid)))
            .collect::<Vec<_>>()
    };
    match (vms.as_slice(), hosts.as_slice()) {
        ([(host, vm)], []) => Ok(Target::Vm {
            placed: host.is_some(),
            vm,
        }),
        ([], [host]) => Ok(Target::Host(host)),
        ([], []) => Err(Failure::usage(format!(
            "no VM or hypervisor named or with UUID {:?} (xenplug console tree lists them)",
            printable(target)
        ))),
        (vms, hosts) => {
            let mut all = listed("VM", vms.iter().map(|(_, vm)| &vm.uuid).collect());
            all.extend(listed(
                "hypervisor",
                hosts.iter().map(|h| &h.uuid).collect(),
            ));
            Err(Failure::usage(format!(
                "several are named {:?}: name one by UUID ({})",
                printable(target),
                all.join(", ")
            )))
        }
    }
}

/// The action `name` of a service table, with its semantics and arguments.
fn table_action(spec: &ServiceSpec, name: &str) -> Option<Action> {
    spec.actions.iter().find(|a| a.name == name).map(|a| {
        let names = |direction: Direction| {
            a.arguments
                .iter()
                .filter(|g| g.direction == direction)
                .map(|g| g.name.clone())
                .collect()
        };
        Action {
            name: a.name.clone(),
            semantics: a.semantics.iter().map(|s| s.as_str().to_string()).collect(),
            inputs: names(Direction::In),
            outputs: names(Direction::Out),
        }
    })
}

/// The DomainControl action called `name`, as its SCPD publishes it.
pub fn lifecycle_action(name: &str) -> Option<Action> {
    table_action(&crate::control::DOMAIN_CONTROL_SERVICE, name)
}

/// The Hypervisor service's action called `name`, as its SCPD publishes it.
pub fn hypervisor_action(name: &str) -> Option<Action> {
    table_action(&crate::control::HYPERVISOR_SERVICE, name)
}

/// Decides what `call TARGET ACTION` does. `service` picks among the VM's services when
/// several offer that action (or asks for DomainControl explicitly).
pub fn plan(
    tree: &Tree,
    target: &str,
    action: &str,
    service: Option<&str>,
) -> Result<Plan, Failure> {
    let (placed, vm) = match find_target(tree, target)? {
        Target::Vm { placed, vm } => (placed, vm),
        Target::Host(host) => return plan_host(host, action, service),
    };
    let vm_name = vm.name.clone();
    let lifecycle = match service {
        Some(service) => service == URN_SERVICE_DOMAIN_CONTROL,
        None => lifecycle_action(action).is_some(),
    };
    if lifecycle {
        let Some(found) = lifecycle_action(action) else {
            return Err(Failure::usage(format!(
                "DomainControl has no action {:?}",
                printable(action)
            )));
        };
        if tree.provider && !placed {
            return Err(Failure::usage(format!(
                "{} is not placed on any hypervisor known to the console: no lifecycle action \
                 can reach it",
                printable(&vm_name)
            )));
        }
        return Ok(Plan {
            uuid: vm.uuid.clone(),
            name: vm_name,
            service_type: URN_SERVICE_DOMAIN_CONTROL.to_string(),
            action: found,
            lifecycle: true,
            hypervisor: false,
        });
    }
    let offering: Vec<_> = vm
        .services
        .iter()
        .filter(|s| service.is_none_or(|wanted| s.service_type == wanted))
        .filter_map(|s| {
            s.actions
                .iter()
                .find(|a| a.name == action)
                .map(|a| (s.service_type.clone(), a.clone()))
        })
        .collect();
    match offering.as_slice() {
        [(service_type, found)] => Ok(Plan {
            uuid: vm.uuid.clone(),
            name: vm_name,
            service_type: service_type.clone(),
            action: found.clone(),
            lifecycle: false,
            hypervisor: false,
        }),
        [] => Err(Failure::usage(format!(
            "{} offers no action {:?}{}",
            printable(&vm_name),
            printable(action),
            service
                .map(|s| format!(" in {}", printable(s)))
                .unwrap_or_default()
        ))),
        several => {
            let types: Vec<String> = several
                .iter()
                .map(|(t, _)| printable(t).into_owned())
                .collect();
            Err(Failure::usage(format!(
                "several services of {} offer {:?}: choose one with --service ({})",
                printable(&vm_name),
                printable(action),
                types.join(", ")
            )))
        }
    }
}

/// A hypervisor's action: one of its Hypervisor service's.
fn plan_host(host: &Host, action: &str, service: Option<&str>) -> Result<Plan, Failure> {
    if service.is_some_and(|s| s != URN_SERVICE_HYPERVISOR) {
        return Err(Failure::usage(format!(
            "hypervisor {} offers only {URN_SERVICE_HYPERVISOR}",
            printable(&host.name)
        )));
    }
    let Some(found) = hypervisor_action(action) else {
        let names: Vec<&str> = crate::control::HYPERVISOR_SERVICE
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .collect();
        return Err(Failure::usage(format!(
            "hypervisor {} offers no action {:?} (its actions: {})",
            printable(&host.name),
            printable(action),
            names.join(", ")
        )));
    };
    Ok(Plan {
        uuid: host.uuid.clone(),
        name: host.name.clone(),
        service_type: URN_SERVICE_HYPERVISOR.to_string(),
        action: found,
        lifecycle: false,
        hypervisor: true,
    })
}

/// Checks `arguments` against the action's in-arguments when the tree lists its arguments
/// (an action listing neither in- nor out-arguments is not checked: the tracker may not have
/// said).
pub fn check_arguments(plan: &Plan, arguments: &[(String, String)]) -> Result<(), Failure> {
    let action = &plan.action;
    if action.inputs.is_empty() && action.outputs.is_empty() {
        return Ok(());
    }
    let expected = || {
        if action.inputs.is_empty() {
            format!("{} takes no arguments", action.name)
        } else {
            format!(
                "{} takes {}",
                action.name,
                action
                    .inputs
                    .iter()
                    .map(|n| format!("{}=VALUE", printable(n)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        }
    };
    if let Some((name, _)) = arguments.iter().find(|(n, _)| !action.inputs.contains(n)) {
        return Err(Failure::usage(format!(
            "{} has no argument {}: {}",
            action.name,
            printable(name),
            expected()
        )));
    }
    if let Some(missing) = action
        .inputs
        .iter()
        .find(|input| !arguments.iter().any(|(n, _)| n == *input))
    {
        return Err(Failure::usage(format!(
            "argument {} missing: {}",
            printable(missing),
            expected()
        )));
    }
    Ok(())
}

/// Which of the sources' trees (in their order) the call goes to: for one source, that one;
/// else the first that has the hypervisor (a hypervisor's action), places the VM (a lifecycle
/// action: only a source placing it knows its Domain device) or lists the VM's service with
/// that action (an owner's action).
pub fn choose_api(trees: &[Tree], plan: &Plan) -> Option<usize> {
    if trees.len() == 1 {
        return Some(0);
    }
    let wanted = Uuid::try_parse(&plan.uuid).ok()?;
    trees.iter().position(|tree| {
        if plan.hypervisor {
            return tree.hosts.iter().any(|h| same_uuid(&h.uuid, wanted));
        }
        tree.vms().iter().any(|(host, vm)| {
            same_uuid(&vm.uuid, wanted)
                && if plan.lifecycle {
                    host.is_some()
                } else {
                    vm.services.iter().any(|s| {
                        s.service_type == plan.service_type
                            && s.actions.iter().any(|a| a.name == plan.action.name)
                    })
                }
        })
    })
}

/// Percent-encodes `text` for a form body: everything but `A-Z a-z 0-9 - . _ ~`.
fn form_encode(text: &str, out: &mut String) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(byte & 15)]));
        }
    }
}

/// The relay's form body: `service=<type>&action=<name>&<Arg>=<value>...`.
pub fn form_body(service_type: &str, action: &str, arguments: &[(String, String)]) -> String {
    let mut body = String::from("service=");
    form_encode(service_type, &mut body);
    body.push_str("&action=");
    form_encode(action, &mut body);
    for (name, value) in arguments {
        body.push('&');
        form_encode(name, &mut body);
        body.push('=');
        form_encode(value, &mut body);
    }
    body
}

/// What the relay answered: the output arguments, or why not.
pub fn read_answer(
    response: &ClientResponse,
    plan: &Plan,
) -> Result<Vec<(String, String)>, Failure> {
    let what = format!("{} on {}", plan.action.name, printable(&plan.name));
    if let Some(failure) = super::refusal(response) {
        return Err(Failure::failed(format!("{what}: {}", failure.message)));
    }
    if response.status == 404 {
        let (kind, note) = if plan.hypervisor {
            (
                "hypervisor",
                " (hypervisor actions need the provider's API)",
            )
        } else if plan.lifecycle {
            (
                "VM",
                " (lifecycle actions need the provider's API and a hypervisor placing the VM)",
            )
        } else {
            ("VM", "")
        };
        return Err(Failure::usage(format!(
            "the tracker refuses {what}: it knows no such {kind} or action for this network{note}"
        )));
    }
    let body = parse_value(&response.body).ok();
    let error = body.as_ref().and_then(|b| b.get("error"));
    if let Some(error) = error {
        let description = error
            .as_str()
            .unwrap_or_else(|| error.str_of("description"));
        return Err(Failure::failed(
            match error.get("code").and_then(JsonValue::as_u64) {
                Some(code) => format!("{what}: UPnP error {code}: {}", printable(description)),
                None => format!(
                    "{what}: failed (HTTP status {}): {}",
                    response.status,
                    printable(description)
                ),
            },
        ));
    }
    let outputs = body
        .as_ref()
        .filter(|_| response.status == 200)
        .and_then(|b| b.get("outputs"))
        .and_then(JsonValue::as_object)
        .ok_or_else(|| {
            Failure::failed(format!(
                "{what}: the tracker answered HTTP status {} without outputs",
                response.status
            ))
        })?;
    Ok(outputs
        .iter()
        .map(|(name, value)| (name.clone(), value.as_str().unwrap_or_default().to_string()))
        .collect())
}

/// Asks on the terminal whether to go on; refuses without a terminal.
fn confirm(plan: &Plan) -> Result<(), Failure> {
    let semantics = plan.action.semantics.join(" ");
    if !is_terminal(libc::STDIN_FILENO) {
        return Err(Failure::failed(format!(
            "{} on {} is {semantics}: refusing without a terminal to ask on; add --yes to \
             call it anyway",
            plan.action.name,
            printable(&plan.name)
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "{} {} ({}) [{semantics}]? [y/N] ",
        plan.action.name,
        printable(&plan.name),
        printable(&plan.uuid)
    );
    let _ = stderr.flush();
    let mut answer = String::new();
    // The answer is one short line; a longer one is not a yes.
    let read = std::io::stdin()
        .lock()
        .take(64)
        .read_line(&mut answer)
        .unwrap_or(0);
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" if read > 0 => Ok(()),
        _ => Err(Failure::failed("not confirmed: nothing was called")),
    }
}

/// `xenplug console call`.
pub fn run(args: &ConsoleCallArgs) -> Result<(), Failure> {
    let arguments = parse_arguments(&args.arguments)?;
    if let Some(urls) = &args.etcd {
        return run_etcd(args, urls, &arguments);
    }
    let source = super::open_source(&SourceOptions {
        tracker: args.tracker.clone(),
        ifaces: args.iface.clone(),
        settle: Some(Duration::from_secs(args.wait)),
        token: super::token_of(args.token_file.as_deref())?,
        access: None,
        control_key: args.control_key.clone(),
    })?;
    let documents = source.trees(CONSOLE_TIMEOUT)?;
    let tree = Tree::read(&source.merged(&documents)?.value)?;
    let plan = plan(&tree, &args.target, &args.action, args.service.as_deref())?;
    check_arguments(&plan, &arguments)?;
    let trees = documents
        .iter()
        .map(|document| Tree::read(&document.value))
        .collect::<Result<Vec<_>, _>>()?;
    let api = choose_api(&trees, &plan)
        .and_then(|index| source.apis().get(index))
        .ok_or_else(|| {
            Failure::failed(format!(
                "no source can reach {} on {}",
                plan.action.name,
                printable(&plan.name)
            ))
        })?;
    send(args, &plan, &arguments, &api.tracker)
}

/// Asks before a destructive action, calls it through `tracker`'s relay, prints its outputs.
fn send(
    args: &ConsoleCallArgs,
    plan: &Plan,
    arguments: &[(String, String)],
    tracker: &super::Tracker,
) -> Result<(), Failure> {
    if plan.action.needs_confirmation() && !args.yes {
        confirm(plan)?;
    }
    let body = form_body(&plan.service_type, &plan.action.name, arguments);
    let response = tracker.request(
        "POST",
        &plan.path(),
        body.as_bytes(),
        CONSOLE_ACTION_TIMEOUT,
    )?;
    let outputs = read_answer(&response, plan)?;
    let mut stdout = std::io::stdout().lock();
    for (name, value) in outputs {
        let _ = writeln!(stdout, "{}={}", printable(&name), printable(&value));
    }
    stdout
        .flush()
        .map_err(|error| Failure::failed(format!("writing to stdout: {error}")))
}

/// `console call --etcd`: the target found in every site's tree from etcd, the call sent to
/// the tracker of the site that can reach it, with the console's token.
fn run_etcd(
    args: &ConsoleCallArgs,
    urls: &str,
    arguments: &[(String, String)],
) -> Result<(), Failure> {
    let options = super::cluster::EtcdOptions::new(
        urls,
        &args.etcd_prefix,
        args.etcd_user.as_deref(),
        args.etcd_password_file.as_deref(),
    );
    let token = super::token_of(args.token_file.as_deref())?;
    let cluster = super::cluster::Cluster::read(&options, token.as_deref())?;
    let tree = Tree::read(&cluster.merged()?.value)?;
    let plan = plan(&tree, &args.target, &args.action, args.service.as_deref())?;
    check_arguments(&plan, arguments)?;
    let trees = cluster
        .trees()?
        .iter()
        .map(|document| Tree::read(&document.value))
        .collect::<Result<Vec<_>, _>>()?;
    let apis = cluster.apis();
    let (site, api) = choose_api(&trees, &plan)
        .and_then(|index| apis.get(index))
        .ok_or_else(|| {
            Failure::failed(format!(
                "no live site can reach {} on {}",
                plan.action.name,
                printable(&plan.name)
            ))
        })?;
    let api = api.as_ref().ok_or_else(|| {
        Failure::failed(format!(
            "site {} places {} but its tracker publishes no read API address",
            printable(&site.name),
            printable(&plan.name)
        ))
    })?;
    log::info!(
        "console call: {} on {} through site {}",
        plan.action.name,
        plan.name,
        site.name
    );
    send(args, &plan, arguments, &api.tracker)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{CONSOLE_EXIT_FAILED, CONSOLE_EXIT_USAGE};

    static TREE: &[u8] = br#"{"hypervisors":[{"uuid":"a1a1a1a1-0000-4000-8000-00000000000a","name":"Xen hypervisor dom0-a","addresses":[],"state":"online","vms":[{"uuid":"acac0001-1111-4a6b-8c9d-0000000000a1","name":"acme-1","run_state":"running","tenant":"acme","services":[{"type":"urn:xenplug-org:service:Echo:1","actions":[{"name":"Echo","semantics":[]}]},{"type":"urn:xenplug-org:service:App:1","actions":[{"name":"Restart","semantics":["destructive"]},{"name":"Echo","semantics":[]}]}]},{"uuid":"bebe0001-1111-4a6b-8c9d-0000000000b1","name":"twin","run_state":"running","services":[]},{"uuid":"bebe0002-2222-4a6b-8c9d-0000000000b2","name":"shared","run_state":"running","services":[]}]},{"uuid":"c3c3c3c3-0000-4000-8000-00000000000c","name":"Xen hypervisor shared","addresses":[],"state":"online","vms":[]}],"devirtualized":[{"uuid":"acac0003-3333-4a6b-8c9d-0000000000a3","name":"twin","run_state":"unknown","services":[{"type":"urn:xenplug-org:service:Echo:1","actions":[{"name":"Echo","semantics":[],"inputs":["Text"],"outputs":["Reply"]}]}]}],"last_seq":1}"#;

    fn tree() -> Tree {
        Tree::read(&parse_value(TREE).unwrap()).unwrap()
    }

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn arguments_are_name_value_pairs() {
        assert_eq!(
            parse_arguments(&words(&["Text=hi", "Eq=a=b", "Empty="])).unwrap(),
            vec![
                ("Text".into(), "hi".into()),
                ("Eq".into(), "a=b".into()),
                ("Empty".into(), String::new())
            ]
        );
        for bad in [
            &["Text"][..],
            &["=x"],
            &["1a=x"],
            &["a b=x"],
            &["service=x"],
            &["action=x"],
            &["A=1", "A=2"],
            &["Ä=1"],
        ] {
            let failure = parse_arguments(&words(bad)).unwrap_err();
            assert_eq!(failure.code, CONSOLE_EXIT_USAGE, "{bad:?}");
        }
    }

    fn vm_of(target: Target<'_>) -> (bool, &Vm) {
        match target {
            Target::Vm { placed, vm } => (placed, vm),
            Target::Host(host) => panic!("a hypervisor: {}", host.name),
        }
    }

    #[test]
    fn targets_by_name_uuid_or_udn() {
        let tree = tree();
        let (placed, vm) = vm_of(find_target(&tree, "acme-1").unwrap());
        assert!(placed);
        assert_eq!(vm.uuid, "acac0001-1111-4a6b-8c9d-0000000000a1");
        let (placed, vm) =
            vm_of(find_target(&tree, "ACAC0003-3333-4A6B-8C9D-0000000000A3").unwrap());
        assert!(!placed);
        assert_eq!(vm.name, "twin");
        let (_, vm) =
            vm_of(find_target(&tree, "uuid:acac0001-1111-4a6b-8c9d-0000000000a1").unwrap());
        assert_eq!(vm.name, "acme-1", "a VM's UDN");
        let ambiguous = find_target(&tree, "twin").unwrap_err();
        assert_eq!(ambiguous.code, CONSOLE_EXIT_USAGE);
        assert!(
            ambiguous.message.contains("bebe0001") && ambiguous.message.contains("acac0003"),
            "{}",
            ambiguous.message
        );
        assert_eq!(
            find_target(&tree, "nope").unwrap_err().code,
            CONSOLE_EXIT_USAGE
        );
        assert_eq!(
            find_target(&tree, "uuid:nope").unwrap_err().code,
            CONSOLE_EXIT_USAGE
        );
    }

    #[test]
    fn hypervisors_by_host_name_friendly_name_uuid_or_udn() {
        let tree = tree();
        for target in [
            "dom0-a",
            "Xen hypervisor dom0-a",
            "A1A1A1A1-0000-4000-8000-00000000000A",
            "uuid:a1a1a1a1-0000-4000-8000-00000000000a",
        ] {
            match find_target(&tree, target) {
                Ok(Target::Host(host)) => {
                    assert_eq!(
                        host.uuid, "a1a1a1a1-0000-4000-8000-00000000000a",
                        "{target}"
                    )
                }
                other => panic!("{target}: {other:?}"),
            }
        }
        assert!(
            find_target(&tree, "a").is_err(),
            "a name ends the friendly name after a space"
        );
        // A VM and a hypervisor of the same name: both listed.
        let both = find_target(&tree, "shared").unwrap_err();
        assert_eq!(both.code, CONSOLE_EXIT_USAGE);
        assert!(
            both.message.contains("VM bebe0002") && both.message.contains("hypervisor c3c3"),
            "{}",
            both.message
        );
    }

    #[test]
    fn hypervisor_actions_come_from_the_hypervisor_service() {
        let tree = tree();
        let info = plan(&tree, "dom0-a", "GetHostInfo", None).unwrap();
        assert!(info.hypervisor && !info.lifecycle);
        assert_eq!(info.service_type, URN_SERVICE_HYPERVISOR);
        assert_eq!(
            info.path(),
            "/api/hypervisors/a1a1a1a1-0000-4000-8000-00000000000a/actions"
        );
        assert!(info.action.outputs.contains(&"HostName".to_string()));
        let start = plan(&tree, "dom0-a", "StartVirtualMachine", None).unwrap();
        assert_eq!(start.action.inputs, ["VirtualMachineId"]);
        let unknown = plan(&tree, "dom0-a", "Pause", None).unwrap_err();
        assert_eq!(unknown.code, CONSOLE_EXIT_USAGE);
        assert!(
            unknown.message.contains("GetHostInfo")
                && unknown.message.contains("StartVirtualMachine"),
            "the message lists what it offers: {}",
            unknown.message
        );
        let other = plan(&tree, "dom0-a", "GetHostInfo", Some("urn:x:service:Echo:1"));
        assert_eq!(other.unwrap_err().code, CONSOLE_EXIT_USAGE);
    }

    #[test]
    fn arguments_are_checked_when_the_tree_lists_them() {
        let tree = tree();
        let start = plan(&tree, "dom0-a", "StartVirtualMachine", None).unwrap();
        let given = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_arguments(&start, &given(&[("VirtualMachineId", "x")])).is_ok());
        let missing = check_arguments(&start, &[]).unwrap_err();
        assert_eq!(missing.code, CONSOLE_EXIT_USAGE);
        assert!(
            missing.message.contains("VirtualMachineId=VALUE"),
            "{}",
            missing.message
        );
        let extra = given(&[("VirtualMachineId", "x"), ("Force", "1")]);
        assert_eq!(
            check_arguments(&start, &extra).unwrap_err().code,
            CONSOLE_EXIT_USAGE
        );
        let info = plan(&tree, "dom0-a", "GetHostInfo", None).unwrap();
        assert!(check_arguments(&info, &given(&[("X", "1")])).is_err());
        // The tracker did not list Restart's arguments: not checked.
        let restart = plan(&tree, "acme-1", "Restart", None).unwrap();
        assert!(check_arguments(&restart, &given(&[("Anything", "1")])).is_ok());
        let echo = plan(
            &tree,
            "twin",
            "Echo",
            Some("urn:xenplug-org:service:Echo:1"),
        );
        assert!(echo.is_err(), "twin is ambiguous");
        let echo = plan(&tree, "acac0003-3333-4a6b-8c9d-0000000000a3", "Echo", None).unwrap();
        assert!(check_arguments(&echo, &given(&[("Text", "hi")])).is_ok());
        assert!(check_arguments(&echo, &given(&[("Txt", "hi")])).is_err());
    }

    #[test]
    fn calls_go_to_the_source_that_knows_the_target() {
        // Source 0: a tenant view with acme-1's services; source 1: the provider's, placing
        // acme-1 without services.
        let tenant = Tree::read(
            &parse_value(
                br#"{"vms":[{"uuid":"acac0001-1111-4a6b-8c9d-0000000000a1","name":"acme-1","run_state":"running","services":[{"type":"urn:xenplug-org:service:App:1","actions":[{"name":"Restart","semantics":[]}]}]}],"last_seq":1}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let provider = Tree::read(
            &parse_value(
                br#"{"hypervisors":[{"uuid":"a1a1a1a1-0000-4000-8000-00000000000a","name":"dom0-a","vms":[{"uuid":"ACAC0001-1111-4a6b-8c9d-0000000000a1","name":"acme-1","run_state":"running","services":[]}]}],"devirtualized":[],"last_seq":1}"#,
            )
            .unwrap(),
        )
        .unwrap();
        let trees = [tenant, provider];
        let all = tree();
        let pause = plan(&all, "acme-1", "Pause", None).unwrap();
        assert_eq!(
            choose_api(&trees, &pause),
            Some(1),
            "lifecycle: the placing one"
        );
        let host = plan(&all, "dom0-a", "GetHostInfo", None).unwrap();
        assert_eq!(choose_api(&trees, &host), Some(1));
        let restart = plan(&all, "acme-1", "Restart", None).unwrap();
        assert_eq!(
            choose_api(&trees, &restart),
            Some(0),
            "the one with the service"
        );
        let echo = plan(
            &all,
            "acme-1",
            "Echo",
            Some("urn:xenplug-org:service:Echo:1"),
        )
        .unwrap();
        assert_eq!(choose_api(&trees, &echo), None, "nobody offers it");
        assert_eq!(
            choose_api(&trees[..1], &echo),
            Some(0),
            "one source: that one decides"
        );
    }

    #[test]
    fn lifecycle_actions_go_to_domain_control_with_their_semantics() {
        let tree = tree();
        let pause = plan(&tree, "acme-1", "Pause", None).unwrap();
        assert!(pause.lifecycle && !pause.action.needs_confirmation());
        assert_eq!(pause.service_type, URN_SERVICE_DOMAIN_CONTROL);
        for destructive in ["Destroy", "Shutdown", "Reboot", "Suspend"] {
            let plan = plan(&tree, "acme-1", destructive, None).unwrap();
            assert!(plan.action.needs_confirmation(), "{destructive}");
        }
        assert!(plan(&tree, "acme-1", "GetState", None).unwrap().lifecycle);
        let lost = plan(&tree, "acac0003-3333-4a6b-8c9d-0000000000a3", "Pause", None);
        assert_eq!(lost.unwrap_err().code, CONSOLE_EXIT_USAGE, "not placed");
    }

    #[test]
    fn owner_actions_come_from_the_vms_services() {
        let tree = tree();
        let restart = plan(&tree, "acme-1", "Restart", None).unwrap();
        assert!(!restart.lifecycle && restart.action.needs_confirmation());
        assert_eq!(restart.service_type, "urn:xenplug-org:service:App:1");
        let twice = plan(&tree, "acme-1", "Echo", None).unwrap_err();
        assert!(twice.message.contains("--service"), "{}", twice.message);
        let chosen = plan(
            &tree,
            "acme-1",
            "Echo",
            Some("urn:xenplug-org:service:Echo:1"),
        )
        .unwrap();
        assert_eq!(chosen.service_type, "urn:xenplug-org:service:Echo:1");
        let unknown = plan(&tree, "acme-1", "Frobnicate", None).unwrap_err();
        assert_eq!(unknown.code, CONSOLE_EXIT_USAGE);
        assert_eq!(
            plan(&tree, "acme-1", "Echo", Some(URN_SERVICE_DOMAIN_CONTROL))
                .unwrap_err()
                .code,
            CONSOLE_EXIT_USAGE
        );
    }

    #[test]
    fn form_bodies_are_percent_encoded() {
        assert_eq!(
            form_body("urn:x:1", "Echo", &[("Text".into(), "a b&c=d/é%".into())]),
            "service=urn%3Ax%3A1&action=Echo&Text=a%20b%26c%3Dd%2F%C3%A9%25"
        );
        let decoded = crate::wire::form::pairs(&form_body(
            "urn:x:1",
            "Echo",
            &[("Text".into(), "x; touch /tmp/p +1".into())],
        ));
        assert_eq!(decoded[2], ("Text".into(), "x; touch /tmp/p +1".into()));
    }

    #[test]
    fn relay_answers() {
        let plan = plan(&tree(), "acme-1", "Pause", None).unwrap();
        let answer = |status, body: &[u8]| ClientResponse {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        };
        assert_eq!(
            read_answer(
                &answer(200, br#"{"outputs":{"Reply":"hi","B":"2"}}"#),
                &plan
            )
            .unwrap(),
            vec![("Reply".into(), "hi".into()), ("B".into(), "2".into())]
        );
        let upnp = read_answer(
            &answer(
                200,
                br#"{"error":{"code":701,"description":"already paused"}}"#,
            ),
            &plan,
        )
        .unwrap_err();
        assert_eq!(upnp.code, CONSOLE_EXIT_FAILED);
        assert!(
            upnp.message.contains("UPnP error 701: already paused"),
            "{}",
            upnp.message
        );
        let refused = read_answer(
            &answer(
                403,
                b"{\"error\":\"this identity's role does not allow that action\"}",
            ),
            &plan,
        )
        .unwrap_err();
        assert_eq!(refused.code, CONSOLE_EXIT_FAILED);
        assert!(
            refused.message.contains("refused: 403 this identity"),
            "{}",
            refused.message
        );
        let unknown = read_answer(
            &answer(401, b"{\"error\":\"a valid bearer token is required\"}"),
            &plan,
        )
        .unwrap_err();
        assert!(
            unknown.message.contains("--token-file"),
            "{}",
            unknown.message
        );
        let missing = read_answer(&answer(404, b"{\"error\":\"not found\"}"), &plan).unwrap_err();
        assert_eq!(missing.code, CONSOLE_EXIT_USAGE);
        let gateway = read_answer(
            &answer(502, br#"{"error":{"description":"timed out"}}"#),
            &plan,
        )
        .unwrap_err();
        assert_eq!(gateway.code, CONSOLE_EXIT_FAILED);
        assert!(gateway.message.contains("timed out"), "{}", gateway.message);
        for junk in [&b""[..], b"{", b"[]", b"{\"outputs\":1}"] {
            assert_eq!(
                read_answer(&answer(200, junk), &plan).unwrap_err().code,
                CONSOLE_EXIT_FAILED
            );
        }
    }
}
