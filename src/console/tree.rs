//! `xenplug console tree`: the tree as read from `GET /api/tree` ([`Tree`]) and its
//! rendering for a terminal ([`render`]). Reading and rendering are pure (no I/O) and never
//! panic: missing or mistyped fields read as empty.

use super::{printable, Failure, SourceOptions};
use crate::cli::ConsoleTreeArgs;
use crate::consts::CONSOLE_TIMEOUT;
use crate::wire::json::JsonValue;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

/// One action a VM service offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// Action name.
    pub name: String,
    /// Semantics tokens (`idempotent`, `destructive`, `confirm`).
    pub semantics: Vec<String>,
    /// In-arguments' names, in order (empty when the tracker did not say).
    pub inputs: Vec<String>,
    /// Out-arguments' names, in order.
    pub outputs: Vec<String>,
}

impl Action {
    /// Whether the console asks before calling it: `destructive` or `confirm`.
    pub fn needs_confirmation(&self) -> bool {
        self.semantics
            .iter()
            .any(|s| s == "destructive" || s == "confirm")
    }
}

/// One service a VM advertises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// serviceType URN.
    pub service_type: String,
    /// Its actions.
    pub actions: Vec<Action>,
}

/// A VM as the tracker knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    /// VM UUID, as the tracker wrote it.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Run state (`running`, `paused`, ..., `unknown`).
    pub run_state: String,
    /// Tenant, when known.
    pub tenant: Option<String>,
    /// Its own services.
    pub services: Vec<Service>,
}

/// A hypervisor and the VMs it places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    /// Host UUID.
    pub uuid: String,
    /// Name.
    pub name: String,
    /// Addresses it advertised from.
    pub addresses: Vec<String>,
    /// `online` or what the tracker says.
    pub state: String,
    /// The VMs it places.
    pub vms: Vec<Vm>,
}

/// A device the tracker saw but could not describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Undescribed {
    /// Network label.
    pub network: String,
    /// UDN.
    pub udn: String,
    /// Source address.
    pub address: String,
    /// Why it could not be described.
    pub reason: String,
}

/// What `GET /api/tree` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree {
    /// Whether it is the provider's view (with hypervisors) or a tenant's (VMs only).
    pub provider: bool,
    /// Hypervisors with their VMs (provider view).
    pub hosts: Vec<Host>,
    /// VMs no hypervisor places (provider view), or every VM of the tenant (tenant view).
    pub unplaced: Vec<Vm>,
    /// Devices not described (provider view).
    pub undescribed: Vec<Undescribed>,
    /// The journal's last sequence number.
    pub last_seq: u64,
}

fn strings(value: &JsonValue, key: &str) -> Vec<String> {
    value
        .list_of(key)
        .iter()
        .filter_map(|item| item.as_str().map(str::to_string))
        .collect()
}

fn read_vm(value: &JsonValue) -> Vm {
    Vm {
        uuid: value.str_of("uuid").to_string(),
        name: value.str_of("name").to_string(),
        run_state: value.str_of("run_state").to_string(),
        tenant: value
            .get("tenant")
            .and_then(JsonValue::as_str)
            .map(str::to_string),
        services: value
            .list_of("services")
            .iter()
            .map(|service| Service {
                service_type: service.str_of("type").to_string(),
                actions: service
                    .list_of("actions")
                    .iter()
                    .map(|action| Action {
                        name: action.str_of("name").to_string(),
                        semantics: strings(action, "semantics"),
                        inputs: strings(action, "inputs"),
                        outputs: strings(action, "outputs"),
                    })
                    .collect(),
            })
            .collect(),
    }
}

impl Tree {
    /// Reads the tree document; a document that is neither view is an error.
    pub fn read(value: &JsonValue) -> Result<Tree, Failure> {
        let last_seq = value
            .get("last_seq")
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        if let Some(hosts) = value.get("hypervisors").and_then(JsonValue::as_array) {
            return Ok(Tree {
                provider: true,
                hosts: hosts
                    .iter()
                    .map(|host| Host {
                        uuid: host.str_of("uuid").to_string(),
                        name: host.str_of("name").to_string(),
                        addresses: strings(host, "addresses"),
                        state: host.str_of("state").to_string(),
                        vms: host.list_of("vms").iter().map(read_vm).collect(),
                    })
                    .collect(),
                unplaced: value.list_of("devirtualized").iter().map(read_vm).collect(),
                undescribed: value
                    .list_of("undescribed")
                    .iter()
                    .map(|device| Undescribed {
                        network: device.str_of("network").to_string(),
                        udn: device.str_of("udn").to_string(),
                        address: device.str_of("address").to_string(),
                        reason: device.str_of("reason").to_string(),
                    })
                    .collect(),
                last_seq,
            });
        }
        if let Some(vms) = value.get("vms").and_then(JsonValue::as_array) {
            return Ok(Tree {
                provider: false,
                unplaced: vms.iter().map(read_vm).collect(),
                last_seq,
                ..Tree::default()
            });
        }
        Err(Failure::failed(
            "the tracker's tree has neither \"hypervisors\" nor \"vms\"",
        ))
    }

    /// Every VM with the hypervisor placing it (None: de-virtualized, or a tenant's view).
    pub fn vms(&self) -> Vec<(Option<&Host>, &Vm)> {
        let placed = self
            .hosts
            .iter()
            .flat_map(|host| host.vms.iter().map(move |vm| (Some(host), vm)));
        placed
            .chain(self.unplaced.iter().map(|vm| (None, vm)))
            .collect()
    }
}

/// SGR colours, used only when stdout is a terminal.
mod sgr {
    pub const BOLD: &str = "\u{1b}[1m";
    pub const DIM: &str = "\u{1b}[2m";
    pub const RED: &str = "\u{1b}[31m";
    pub const GREEN: &str = "\u{1b}[32m";
    pub const YELLOW: &str = "\u{1b}[33m";
    pub const RESET: &str = "\u{1b}[0m";
}

/// Writes `text` in `style` when `colour` is on.
struct Paint {
    colour: bool,
}

impl Paint {
    fn paint(&self, style: &str, text: &str) -> String {
        if self.colour && !style.is_empty() {
            format!("{style}{text}{}", sgr::RESET)
        } else {
            text.to_string()
        }
    }

    /// `text` padded to `width` columns, then painted (padding stays outside the colour so
    /// columns line up either way).
    fn padded(&self, style: &str, text: &str, width: usize) -> String {
        let pad = width.saturating_sub(text.chars().count());
        format!("{}{}", self.paint(style, text), " ".repeat(pad))
    }
}

fn state_style(state: &str) -> &'static str {
    match state {
        "running" | "online" => sgr::GREEN,
        "paused" | "suspended" | "unknown" => sgr::YELLOW,
        "shutoff" | "crashed" | "offline" | "gone" => sgr::RED,
        _ => "",
    }
}

/// The short name of a service type: `Echo:1` for `urn:xenplug-org:service:Echo:1`.
pub fn short_service(service_type: &str) -> &str {
    service_type
        .split_once(":service:")
        .map_or(service_type, |(_, rest)| rest)
}

/// `Name(In1, In2) -> (Out1)`: an action with its arguments; `Name` alone when it has
/// none (or the tracker did not list them).
pub fn signature(action: &Action) -> String {
    let list = |names: &[String]| {
        names
            .iter()
            .map(|n| printable(n).into_owned())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = printable(&action.name).into_owned();
    if !action.inputs.is_empty() || !action.outputs.is_empty() {
        out.push_str(&format!("({})", list(&action.inputs)));
    }
    if !action.outputs.is_empty() {
        out.push_str(&format!(" -> ({})", list(&action.outputs)));
    }
    out
}

/// Column widths shared by every VM line.
struct Widths {
    name: usize,
    uuid: usize,
    state: usize,
}

fn render_vms(out: &mut String, paint: &Paint, vms: &[Vm], widths: &Widths, indent: &str) {
    for (index, vm) in vms.iter().enumerate() {
        let last = index + 1 == vms.len();
        let (branch, under) = if last {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        let name = printable(&vm.name);
        let state = printable(&vm.run_state);
        let tenant = vm
            .tenant
            .as_deref()
            .map(|t| format!("tenant {}", printable(t)))
            .unwrap_or_default();
        let line = format!(
            "{indent}{branch}{}  {}  {}  {}",
            paint.padded(sgr::BOLD, &name, widths.name),
            paint.padded("", &printable(&vm.uuid), widths.uuid),
            paint.padded(state_style(&vm.run_state), &state, widths.state),
            tenant
        );
        let _ = writeln!(out, "{}", line.trim_end());
        for (s, service) in vm.services.iter().enumerate() {
            let branch = if s + 1 == vm.services.len() {
                "└─ "
            } else {
                "├─ "
            };
            let actions: Vec<String> = service
                .actions
                .iter()
                .map(|action| {
                    let name = signature(action);
                    if action.semantics.is_empty() {
                        return name;
                    }
                    let semantics: Vec<String> = action
                        .semantics
                        .iter()
                        .map(|s| printable(s).into_owned())
                        .collect();
                    let style = if action.needs_confirmation() {
                        sgr::RED
                    } else {
                        sgr::DIM
                    };
                    format!(
                        "{name} {}",
                        paint.paint(style, &format!("[{}]", semantics.join(" ")))
                    )
                })
                .collect();
            let _ = writeln!(
                out,
                "{indent}{under}{branch}{}: {}",
                printable(short_service(&service.service_type)),
                if actions.is_empty() {
                    "(no actions)".to_string()
                } else {
                    actions.join(", ")
                }
            );
        }
    }
}

/// The tree as text: one block per hypervisor (name, UUID, addresses, state) with its VMs
/// (name, UUID, run state, tenant, aligned in columns) and their services' actions with
/// semantics; then the de-virtualized VMs and the undescribed devices. `colour` adds SGR
/// colours (only for a terminal).
pub fn render(tree: &Tree, colour: bool) -> String {
    let paint = Paint { colour };
    let all = tree.vms();
    let widths = Widths {
        name: all
            .iter()
            .map(|(_, vm)| printable(&vm.name).chars().count())
            .max()
            .unwrap_or(0),
        uuid: all
            .iter()
            .map(|(_, vm)| printable(&vm.uuid).chars().count())
            .max()
            .unwrap_or(0),
        state: all
            .iter()
            .map(|(_, vm)| printable(&vm.run_state).chars().count())
            .max()
            .unwrap_or(0),
    };
    let mut out = String::new();
    if tree.provider {
        if tree.hosts.is_empty() {
            out.push_str("no hypervisors known\n");
        }
        for host in &tree.hosts {
            let addresses: Vec<String> = host
                .addresses
                .iter()
                .map(|a| printable(a).into_owned())
                .collect();
            let _ = writeln!(
                out,
                "{}  {}  {}  {}",
                paint.paint(sgr::BOLD, &format!("hypervisor {}", printable(&host.name))),
                printable(&host.uuid),
                if addresses.is_empty() {
                    "-".to_string()
                } else {
                    addresses.join(",")
                },
                paint.paint(state_style(&host.state), &printable(&host.state)),
            );
            if host.vms.is_empty() {
                out.push_str("└─ (no VMs)\n");
            }
            render_vms(&mut out, &paint, &host.vms, &widths, "");
        }
        if !tree.unplaced.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                paint.paint(
                    sgr::YELLOW,
                    "de-virtualized (advertising, but no hypervisor places them)"
                )
            );
            render_vms(&mut out, &paint, &tree.unplaced, &widths, "");
        }
        if !tree.undescribed.is_empty() {
            let _ = writeln!(out, "{}", paint.paint(sgr::RED, "undescribed devices"));
            for (index, device) in tree.undescribed.iter().enumerate() {
                let branch = if index + 1 == tree.undescribed.len() {
                    "└─ "
                } else {
                    "├─ "
                };
                let _ = writeln!(
                    out,
                    "{branch}{}  {}  network {}: {}",
                    printable(&device.udn),
                    printable(&device.address),
                    printable(&device.network),
                    printable(&device.reason)
                );
            }
        }
    } else {
        out.push_str("VMs (tenant view: placement is the provider's)\n");
        if tree.unplaced.is_empty() {
            out.push_str("└─ (none)\n");
        }
        render_vms(&mut out, &paint, &tree.unplaced, &widths, "");
    }
    out
}

/// `xenplug console tree [--json]`.
pub fn run(args: &ConsoleTreeArgs) -> Result<(), Failure> {
    if let Some(urls) = &args.etcd {
        return run_etcd(args, urls);
    }
    let source = super::open_source(&SourceOptions {
        tracker: args.tracker.clone(),
        ifaces: args.iface.clone(),
        settle: Some(Duration::from_secs(args.wait)),
        token: super::token_of(args.token_file.as_deref())?,
        access: None,
        control_key: args.control_key.clone(),
    })?;
    let document = source.tree(CONSOLE_TIMEOUT)?;
    print(args.json, &document, "")
}

/// Prints `document` as JSON, or rendered after `before` (lines of its own).
fn print(json: bool, document: &super::Document, before: &str) -> Result<(), Failure> {
    let tree = Tree::read(&document.value)?;
    let mut stdout = std::io::stdout().lock();
    let written = if json {
        stdout
            .write_all(&document.bytes)
            .and_then(|()| stdout.write_all(b"\n"))
    } else {
        let text = format!("{before}{}", render(&tree, super::colour_on_stdout()));
        stdout.write_all(text.as_bytes())
    };
    written
        .and_then(|()| stdout.flush())
        .map_err(|error| Failure::failed(format!("writing to stdout: {error}")))
}

/// `console tree --etcd`: every site's tree from etcd, merged, after a line per site.
fn run_etcd(args: &ConsoleTreeArgs, urls: &str) -> Result<(), Failure> {
    let options = super::cluster::EtcdOptions::new(
        urls,
        &args.etcd_prefix,
        args.etcd_user.as_deref(),
        args.etcd_password_file.as_deref(),
    );
    let cluster = super::cluster::Cluster::read(&options, None)?;
    let document = cluster.merged()?;
    let mut sites = String::new();
    for site in cluster.view().sites() {
        sites.push_str(&super::cluster::site_line(&site));
        sites.push('\n');
    }
    print(args.json, &document, &sites)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::json::parse_value;

    static PROVIDER: &[u8] = br#"{"hypervisors":[{"uuid":"a1","name":"dom0-a","network":"mgmt","addresses":["10.0.0.1"],"state":"online","first_seen":1,"last_seen":2,"vms":[{"uuid":"acac0001","name":"acme-1","run_state":"running","tenant":"acme","hypervisor":"a1","services":[{"type":"urn:xenplug-org:service:AppControl:1","actions":[{"name":"Restart","semantics":["destructive","confirm"]},{"name":"Status","semantics":[]}]}],"first_seen":1,"last_seen":2},{"uuid":"bebe0001","name":"b\u001b[2J","run_state":"paused","services":[],"first_seen":1,"last_seen":2}]},{"uuid":"b2","name":"dom0-b","network":"mgmt","addresses":[],"state":"online","first_seen":1,"last_seen":2,"vms":[]}],"devirtualized":[{"uuid":"acac0003","name":"acme-lost","run_state":"unknown","tenant":"acme","services":[],"first_seen":1,"last_seen":2}],"undescribed":[{"network":"mgmt","udn":"uuid:broken","address":"10.0.0.9","reason":"HTTP status 500","first_seen":1,"last_seen":2}],"last_seq":7}"#;

    static TENANT: &[u8] =
        br#"{"vms":[{"uuid":"acac0001","name":"acme-1","run_state":"running","tenant":"acme","services":[]}],"last_seq":3}"#;

    fn provider() -> Tree {
        Tree::read(&parse_value(PROVIDER).unwrap()).unwrap()
    }

    #[test]
    fn reads_the_provider_view() {
        let tree = provider();
        assert!(tree.provider);
        assert_eq!(tree.hosts.len(), 2);
        assert_eq!(tree.hosts[0].vms[0].tenant.as_deref(), Some("acme"));
        assert!(tree.hosts[0].vms[0].services[0].actions[0].needs_confirmation());
        assert!(!tree.hosts[0].vms[0].services[0].actions[1].needs_confirmation());
        assert_eq!(tree.unplaced[0].name, "acme-lost");
        assert_eq!(tree.undescribed[0].reason, "HTTP status 500");
        assert_eq!(tree.last_seq, 7);
        let vms = tree.vms();
        assert_eq!(vms.len(), 3);
        assert_eq!(vms[0].0.map(|h| h.name.as_str()), Some("dom0-a"));
        assert!(vms[2].0.is_none());
    }

    #[test]
    fn reads_the_tenant_view_and_refuses_other_documents() {
        let tree = Tree::read(&parse_value(TENANT).unwrap()).unwrap();
        assert!(!tree.provider);
        assert_eq!(tree.unplaced.len(), 1);
        assert!(Tree::read(&parse_value(b"{\"x\":1}").unwrap()).is_err());
        assert!(Tree::read(&parse_value(b"[]").unwrap()).is_err());
        let text = render(&tree, false);
        assert!(
            text.contains("tenant view") && text.contains("acme-1"),
            "{text}"
        );
    }

    #[test]
    fn renders_an_aligned_plain_tree() {
        let text = render(&provider(), false);
        assert!(!text.contains('\u{1b}'), "no escape when plain: {text:?}");
        let expected = "\
hypervisor dom0-a  a1  10.0.0.1  online
├─ acme-1      acac0001  running  tenant acme
│  └─ AppControl:1: Restart [destructive confirm], Status
└─ b\\u{1b}[2J  bebe0001  paused
hypervisor dom0-b  b2  -  online
└─ (no VMs)
de-virtualized (advertising, but no hypervisor places them)
└─ acme-lost   acac0003  unknown  tenant acme
undescribed devices
└─ uuid:broken  10.0.0.9  network mgmt: HTTP status 500
";
        assert_eq!(text, expected);
    }

    #[test]
    fn colour_only_when_asked() {
        let text = render(&provider(), true);
        assert!(text.contains("\u{1b}[32mrunning\u{1b}[0m"), "{text:?}");
        assert!(
            !text.contains("\u{1b}[2J"),
            "a device's escape sequence never reaches the terminal"
        );
    }

    #[test]
    fn actions_show_their_arguments() {
        let action = |inputs: &[&str], outputs: &[&str]| Action {
            name: "Echo".into(),
            semantics: vec![],
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(
            signature(&action(&["Text"], &["Reply", "Action"])),
            "Echo(Text) -> (Reply, Action)"
        );
        assert_eq!(signature(&action(&[], &["State"])), "Echo() -> (State)");
        assert_eq!(signature(&action(&["A", "B"], &[])), "Echo(A, B)");
        assert_eq!(signature(&action(&[], &[])), "Echo", "none, or not listed");
        assert_eq!(signature(&action(&["\u{1b}[2J"], &[])), "Echo(\\u{1b}[2J)");
    }

    #[test]
    fn short_service_names() {
        assert_eq!(short_service("urn:xenplug-org:service:Echo:1"), "Echo:1");
        assert_eq!(short_service("odd"), "odd");
    }
}
