//! `xenplug console call TARGET ACTION [NAME=VALUE ...]`: finds the VM and the action in the
//! tracker's tree ([`plan`]), asks before a destructive action, and calls it through the
//! tracker's relay. Planning, the form body and reading the answer are pure and never panic;
//! only [`run`] does I/O.
//!
//! TARGET is a VM name or UUID. Hypervisor actions (a hypervisor's name or UDN as TARGET) are
//! not offered yet. Lifecycle actions (the Domain device's DomainControl: Shutdown, Reboot,
//! Pause, Resume, Suspend, Destroy, GetState, GetInfo) go to the VM's Domain device on the
//! hypervisor placing it; any other action to the VM's own service that offers it.

use super::tree::{Action, Tree, Vm};
use super::{is_terminal, printable, Document, Failure, Tracker};
use crate::cli::ConsoleCallArgs;
use crate::consts::{
    API_ACTIONS_SUFFIX, API_TREE_PATH, API_VMS_PREFIX, CONSOLE_TIMEOUT, URN_SERVICE_DOMAIN_CONTROL,
};
use crate::net::http_client::ClientResponse;
use crate::wire::json::{parse_value, JsonValue};
use std::io::{BufRead as _, Read as _, Write as _};

/// What a call will do, decided from the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The VM's UUID (the relay's path).
    pub vm: String,
    /// The VM's name, for messages.
    pub vm_name: String,
    /// The service type to call (DomainControl for a lifecycle action).
    pub service_type: String,
    /// The action.
    pub action: Action,
    /// Whether it goes to the hypervisor (a lifecycle action).
    pub lifecycle: bool,
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

/// The VM `target` names: its UUID (any case) or its name. A name several VMs share is a
/// usage error listing their UUIDs.
pub fn find_vm<'a>(tree: &'a Tree, target: &str) -> Result<(bool, &'a Vm), Failure> {
    let all = tree.vms();
    let wanted = uuid::Uuid::try_parse(target).ok();
    if let Some(wanted) = wanted {
        if let Some((host, vm)) = all
            .iter()
            .find(|(_, vm)| uuid::Uuid::try_parse(&vm.uuid).ok() == Some(wanted))
        {
            return Ok((host.is_some(), vm));
        }
    }
    let named: Vec<_> = all.iter().filter(|(_, vm)| vm.name == target).collect();
    match named.as_slice() {
        [(host, vm)] => Ok((host.is_some(), vm)),
        [] => Err(Failure::usage(format!(
            "no VM named or with UUID {:?} (xenplug console tree lists them; hypervisors are \
             not targets yet)",
            printable(target)
        ))),
        several => {
            let uuids: Vec<String> = several
                .iter()
                .map(|(_, vm)| printable(&vm.uuid).into_owned())
                .collect();
            Err(Failure::usage(format!(
                "several VMs are named {:?}: name one by UUID ({})",
                printable(target),
                uuids.join(", ")
            )))
        }
    }
}

/// The DomainControl action called `name`, with the semantics its SCPD publishes.
pub fn lifecycle_action(name: &str) -> Option<Action> {
    crate::control::DOMAIN_CONTROL_SERVICE
        .actions
        .iter()
        .find(|a| a.name == name)
        .map(|a| Action {
            name: a.name.clone(),
            semantics: a.semantics.iter().map(|s| s.as_str().to_string()).collect(),
        })
}

/// Decides what `call TARGET ACTION` does. `service` picks among the VM's services when
/// several offer that action (or asks for DomainControl explicitly).
pub fn plan(
    tree: &Tree,
    target: &str,
    action: &str,
    service: Option<&str>,
) -> Result<Plan, Failure> {
    let (placed, vm) = find_vm(tree, target)?;
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
                "{} is not placed on any hypervisor known to the tracker: no lifecycle action \
                 can reach it",
                printable(&vm_name)
            )));
        }
        return Ok(Plan {
            vm: vm.uuid.clone(),
            vm_name,
            service_type: URN_SERVICE_DOMAIN_CONTROL.to_string(),
            action: found,
            lifecycle: true,
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
            vm: vm.uuid.clone(),
            vm_name,
            service_type: service_type.clone(),
            action: found.clone(),
            lifecycle: false,
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
    let what = format!("{} on {}", plan.action.name, printable(&plan.vm_name));
    if response.status == 404 {
        return Err(Failure::usage(format!(
            "the tracker refuses {what}: it knows no such VM or action for this network{}",
            if plan.lifecycle {
                " (lifecycle actions need the provider's API and a hypervisor placing the VM)"
            } else {
                ""
            }
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
            printable(&plan.vm_name)
        )));
    }
    let mut stderr = std::io::stderr().lock();
    let _ = write!(
        stderr,
        "{} {} ({}) [{semantics}]? [y/N] ",
        plan.action.name,
        printable(&plan.vm_name),
        printable(&plan.vm)
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
    let tracker = Tracker::parse(&args.tracker)?;
    let arguments = parse_arguments(&args.arguments)?;
    let document: Document = tracker.get_json(API_TREE_PATH, CONSOLE_TIMEOUT)?;
    let tree = Tree::read(&document.value)?;
    let plan = plan(&tree, &args.target, &args.action, args.service.as_deref())?;
    if plan.action.needs_confirmation() && !args.yes {
        confirm(&plan)?;
    }
    let body = form_body(&plan.service_type, &plan.action.name, &arguments);
    let path = format!("{API_VMS_PREFIX}{}{API_ACTIONS_SUFFIX}", plan.vm);
    let response = tracker.request("POST", &path, body.as_bytes(), CONSOLE_TIMEOUT)?;
    let outputs = read_answer(&response, &plan)?;
    let mut stdout = std::io::stdout().lock();
    for (name, value) in outputs {
        let _ = writeln!(stdout, "{}={}", printable(&name), printable(&value));
    }
    stdout
        .flush()
        .map_err(|error| Failure::failed(format!("writing to stdout: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{CONSOLE_EXIT_FAILED, CONSOLE_EXIT_USAGE};

    static TREE: &[u8] = br#"{"hypervisors":[{"uuid":"a1a1a1a1-0000-4000-8000-00000000000a","name":"dom0-a","addresses":[],"state":"online","vms":[{"uuid":"acac0001-1111-4a6b-8c9d-0000000000a1","name":"acme-1","run_state":"running","tenant":"acme","services":[{"type":"urn:xenplug-org:service:Echo:1","actions":[{"name":"Echo","semantics":[]}]},{"type":"urn:xenplug-org:service:App:1","actions":[{"name":"Restart","semantics":["destructive"]},{"name":"Echo","semantics":[]}]}]},{"uuid":"bebe0001-1111-4a6b-8c9d-0000000000b1","name":"twin","run_state":"running","services":[]}]}],"devirtualized":[{"uuid":"acac0003-3333-4a6b-8c9d-0000000000a3","name":"twin","run_state":"unknown","services":[{"type":"urn:xenplug-org:service:Echo:1","actions":[{"name":"Echo","semantics":[]}]}]}],"last_seq":1}"#;

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

    #[test]
    fn targets_by_name_or_uuid() {
        let tree = tree();
        let (placed, vm) = find_vm(&tree, "acme-1").unwrap();
        assert!(placed);
        assert_eq!(vm.uuid, "acac0001-1111-4a6b-8c9d-0000000000a1");
        let (placed, vm) = find_vm(&tree, "ACAC0003-3333-4A6B-8C9D-0000000000A3").unwrap();
        assert!(!placed);
        assert_eq!(vm.name, "twin");
        let ambiguous = find_vm(&tree, "twin").unwrap_err();
        assert_eq!(ambiguous.code, CONSOLE_EXIT_USAGE);
        assert!(
            ambiguous.message.contains("bebe0001") && ambiguous.message.contains("acac0003"),
            "{}",
            ambiguous.message
        );
        assert_eq!(find_vm(&tree, "nope").unwrap_err().code, CONSOLE_EXIT_USAGE);
        assert_eq!(
            find_vm(&tree, "dom0-a").unwrap_err().code,
            CONSOLE_EXIT_USAGE,
            "hypervisors are not targets yet"
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
        let decoded = crate::track::form::pairs(&form_body(
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
