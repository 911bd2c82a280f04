//! Roles: which subcommand runs, chosen from the program name or the first arguments.
//!
//! Busybox style: `xenplug advertise hypervisor ...`, or a symlink named after the role
//! (`xenplug-hypervisor ...`). Unknown roles get a clear message and exit code 2.

pub mod demo;
pub mod hypervisor;
pub mod vm;

use crate::consts::SSDP_MIN_MAX_AGE;
use crate::error::{Error, Result};
use crate::net::iface::{self, LocalInterface};

/// The interfaces named by `--iface` (at least one: there is no default), after checking the
/// options every advertiser shares.
pub fn interfaces(names: &[String], max_age: u32) -> Result<Vec<LocalInterface>> {
    if names.is_empty() {
        return Err(Error::config(
            "name at least one interface with --iface (there is no default)",
        ));
    }
    if max_age < SSDP_MIN_MAX_AGE {
        return Err(Error::config(format!(
            "--max-age must be at least {SSDP_MIN_MAX_AGE}"
        )));
    }
    names.iter().map(|name| iface::lookup(name)).collect()
}

/// A role of the binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `advertise hypervisor`: advertise a Xen host and its domains (dom0).
    AdvertiseHypervisor,
    /// `advertise vm`: advertise a VM from inside the guest.
    AdvertiseVm,
    /// `track`: keep the configuration repositories up to date.
    Track,
    /// `console`: the control point.
    Console,
    /// `demo`: every role on loopback with the simulated backend, supervised.
    Demo,
    /// `access`: the access file's identities and control keys.
    Access,
}

/// Every role: its command words, the symlink name that runs it, and a summary.
pub const ROLES: [(Role, &str, Option<&str>, &str); 6] = [
    (
        Role::AdvertiseHypervisor,
        "advertise hypervisor",
        Some("xenplug-hypervisor"),
        "advertise this Xen host and its domains (dom0)",
    ),
    (
        Role::AdvertiseVm,
        "advertise vm",
        Some("xenplug-vm"),
        "advertise this VM from inside the guest",
    ),
    (
        Role::Track,
        "track",
        Some("xenplug-track"),
        "keep the configuration repositories up to date",
    ),
    (
        Role::Console,
        "console",
        Some("xenplug-console"),
        "show and control hypervisors and VMs",
    ),
    (
        Role::Demo,
        "demo",
        None,
        "run the whole system on loopback, simulated",
    ),
    (
        Role::Access,
        "access",
        None,
        "add identities to an access file, list them, make control keys",
    ),
];

impl Role {
    /// The command words (`advertise hypervisor`).
    pub fn command(self) -> &'static str {
        ROLES
            .iter()
            .find(|(role, ..)| *role == self)
            .map_or("", |(_, command, ..)| command)
    }
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Selection {
    /// Run `role` with the remaining arguments.
    Run(Role, Vec<String>),
    /// `--list`: print the roles.
    List,
    /// `--help` or nothing: print usage.
    Usage,
    /// `--version`.
    Version,
    /// A role name we do not know.
    Unknown(String),
}

/// Chooses the role from `argv` (program name first).
pub fn select(argv: &[String]) -> Selection {
    let program = argv.first().map(String::as_str).unwrap_or("xenplug");
    let base = program.rsplit('/').next().unwrap_or(program);
    if let Some((role, ..)) = ROLES.iter().find(|(_, _, link, _)| *link == Some(base)) {
        return Selection::Run(*role, argv[1..].to_vec());
    }
    let rest = &argv[1.min(argv.len())..];
    let Some(first) = rest.first() else {
        return Selection::Usage;
    };
    match first.as_str() {
        "--list" => return Selection::List,
        "--help" | "-h" | "help" => return Selection::Usage,
        "--version" | "-V" => return Selection::Version,
        _ => {}
    }
    for (role, command, ..) in ROLES {
        let words: Vec<&str> = command.split(' ').collect();
        if rest.len() >= words.len() && rest.iter().zip(&words).all(|(given, word)| given == word) {
            return Selection::Run(role, rest[words.len()..].to_vec());
        }
    }
    let asked = if first == "advertise" {
        rest.iter().take(2).cloned().collect::<Vec<_>>().join(" ")
    } else {
        first.clone()
    };
    Selection::Unknown(asked)
}

fn usage() -> String {
    let mut text = String::from("Usage: xenplug <role> [options]\n\nRoles:\n");
    for (_, command, link, summary) in ROLES {
        let link = link.map(|l| format!(" (or {l})")).unwrap_or_default();
        text.push_str(&format!("  {command:<22}{summary}{link}\n"));
    }
    text.push_str("\n`xenplug <role> --help` describes a role's options.\n");
    text
}

/// Runs the binary: returns the process exit code.
pub fn main(argv: Vec<String>) -> i32 {
    match select(&argv) {
        Selection::List => {
            for (_, command, ..) in ROLES {
                println!("{command}");
            }
            0
        }
        Selection::Usage => {
            print!("{}", usage());
            0
        }
        Selection::Version => {
            println!(
                "{} {} ({})",
                crate::consts::PRODUCT,
                crate::consts::VERSION,
                env!("XENPLUG_BUILD_TARGET")
            );
            0
        }
        Selection::Unknown(asked) => {
            eprintln!("xenplug: unknown role '{asked}' (xenplug --list shows the roles)");
            2
        }
        Selection::Run(role, arguments) => run(role, &arguments),
    }
}

/// Parses a role's options with argh; Err carries the exit code after printing.
fn parse<T: argh::FromArgs>(role: Role, arguments: &[String]) -> core::result::Result<T, i32> {
    let command = format!("xenplug {}", role.command());
    let words: Vec<&str> = arguments.iter().map(String::as_str).collect();
    T::from_args(&[command.as_str()], &words).map_err(|early| {
        if early.status.is_ok() {
            print!("{}", early.output);
            0
        } else {
            eprint!("{}", early.output);
            2
        }
    })
}

/// Runs the tracker with its command-line options.
fn track(args: crate::cli::TrackArgs) -> Result<()> {
    let networks = args
        .net
        .iter()
        .map(|text| crate::track::run::NetSpec::parse(text))
        .collect::<Result<Vec<_>>>()?;
    let control_key = args
        .control_key
        .as_deref()
        .map(crate::credentials::read_key_file)
        .transpose()?;
    let tenant_control = tenant_control(&args.tenant_control)?;
    let etcd = etcd_settings(&args)?;
    if !(TRACK_MIN_DESCRIPTION..=TRACK_MAX_DESCRIPTION).contains(&args.max_description) {
        return Err(Error::config(format!(
            "--max-description {}: from {TRACK_MIN_DESCRIPTION} to {TRACK_MAX_DESCRIPTION} bytes",
            args.max_description
        )));
    }
    crate::track::run::run(crate::track::run::Options {
        networks,
        repo: args.repo,
        api: args.api,
        grace: args.grace,
        report_api: None,
        stop: None,
        access: args.access,
        control_key,
        tenant_control,
        etcd,
        max_description: args.max_description,
    })
}

/// `track --etcd ...` checked: `None` without `--etcd`.
fn etcd_settings(args: &crate::cli::TrackArgs) -> Result<Option<crate::track::etcd::Settings>> {
    let Some(urls) = &args.etcd else {
        return Ok(None);
    };
    let endpoints = crate::net::etcd::parse_endpoints(urls).map_err(Error::config)?;
    let credentials = crate::net::etcd::credentials(
        args.etcd_user.as_deref(),
        args.etcd_password_file.as_deref(),
    )
    .map_err(Error::config)?;
    let layout = crate::engine::cluster::Layout::new(&args.etcd_prefix).map_err(Error::config)?;
    let site = match &args.site {
        Some(site) => site.clone(),
        None => crate::state::host_name(),
    };
    if !crate::repo::is_valid_name(&site) {
        return Err(Error::config(format!(
            "--site {site:?}: expected 1-64 of A-Z a-z 0-9 _ - (the default is the host name)"
        )));
    }
    if args.etcd_ttl < crate::track::etcd::ETCD_MIN_TTL {
        return Err(Error::config(format!(
            "--etcd-ttl {}: at least {} seconds",
            args.etcd_ttl,
            crate::track::etcd::ETCD_MIN_TTL
        )));
    }
    Ok(Some(crate::track::etcd::Settings {
        endpoints,
        credentials,
        layout,
        site,
        ttl: args.etcd_ttl,
    }))
}

/// Smallest `track --max-description`: a description of a few devices.
const TRACK_MIN_DESCRIPTION: usize = 64 * 1024;
/// Largest `track --max-description`: one parse of that size may take about ten times it.
const TRACK_MAX_DESCRIPTION: usize = 64 * 1024 * 1024;

/// `xenplug access new | list | new-key`.
fn access(args: crate::cli::AccessArgs) -> Result<()> {
    use crate::cli::AccessCommand;
    match args.command {
        AccessCommand::New(args) => {
            let role = crate::engine::access::Role::parse(&args.role).map_err(Error::config)?;
            let token = crate::credentials::add_identity(&args.file, &args.name, &role)?;
            println!("{token}");
            eprintln!(
                "{} {role} added to {}; the token above is printed once and stored nowhere",
                args.name,
                args.file.display()
            );
            Ok(())
        }
        AccessCommand::List(args) => {
            let list = crate::credentials::read_access_file(&args.file)?;
            for identity in list.identities() {
                println!("{} {}", identity.name, identity.role);
            }
            Ok(())
        }
        AccessCommand::NewKey(args) => {
            crate::credentials::write_new_key(&args.file)?;
            eprintln!(
                "control key written to {} (mode 0600): give it to the tracker and the devices \
                 with --control-key",
                args.file.display()
            );
            Ok(())
        }
    }
}

/// The lifecycle actions `--tenant-control` names: each one of DomainControl's, none twice.
fn tenant_control(text: &str) -> Result<Vec<String>> {
    let mut actions: Vec<String> = Vec::new();
    for name in text
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        let known = crate::control::DOMAIN_CONTROL_SERVICE
            .find_action(name)
            .is_some();
        if !known {
            return Err(Error::config(format!(
                "--tenant-control {name:?}: not a DomainControl action (Shutdown, Reboot, Pause, \
                 Resume, Suspend, Destroy, GetState, GetInfo)"
            )));
        }
        if !actions.iter().any(|known| known == name) {
            actions.push(name.to_string());
        }
    }
    Ok(actions)
}

fn run(role: Role, arguments: &[String]) -> i32 {
    crate::logging::init(role.command());
    let result = match role {
        Role::AdvertiseHypervisor => match parse(role, arguments) {
            Ok(args) => hypervisor::run(args),
            Err(code) => return code,
        },
        Role::Demo => match parse(role, arguments) {
            Ok(args) => demo::run(args),
            Err(code) => return code,
        },
        Role::AdvertiseVm => match parse(role, arguments) {
            Ok(args) => vm::run(args),
            Err(code) => return code,
        },
        Role::Track => match parse::<crate::cli::TrackArgs>(role, arguments) {
            Ok(args) => track(args),
            Err(code) => return code,
        },
        Role::Console => {
            return match parse::<crate::cli::ConsoleArgs>(role, arguments) {
                Ok(args) => crate::console::run(args),
                Err(code) => code,
            }
        }
        Role::Access => match parse::<crate::cli::AccessArgs>(role, arguments) {
            Ok(args) => access(args),
            Err(code) => return code,
        },
    };
    match result {
        Ok(()) => 0,
        Err(error) => {
            eprintln!("xenplug {}: {error}", role.command());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn subcommands_select_roles() {
        assert_eq!(
            select(&argv(&[
                "xenplug",
                "advertise",
                "hypervisor",
                "--iface",
                "lo"
            ])),
            Selection::Run(Role::AdvertiseHypervisor, argv(&["--iface", "lo"]))
        );
        assert_eq!(
            select(&argv(&["xenplug", "advertise", "vm"])),
            Selection::Run(Role::AdvertiseVm, vec![])
        );
        assert_eq!(
            select(&argv(&["/usr/bin/xenplug", "track", "-x"])),
            Selection::Run(Role::Track, argv(&["-x"]))
        );
        assert_eq!(
            select(&argv(&["xenplug", "demo"])),
            Selection::Run(Role::Demo, vec![])
        );
    }

    #[test]
    fn symlink_names_select_roles() {
        assert_eq!(
            select(&argv(&["/usr/sbin/xenplug-hypervisor", "--iface", "eth0"])),
            Selection::Run(Role::AdvertiseHypervisor, argv(&["--iface", "eth0"]))
        );
        assert_eq!(
            select(&argv(&["xenplug-vm"])),
            Selection::Run(Role::AdvertiseVm, vec![])
        );
        assert_eq!(
            select(&argv(&["xenplug-console", "tree"])),
            Selection::Run(Role::Console, argv(&["tree"]))
        );
        assert_eq!(
            select(&argv(&["./xenplug-track"])),
            Selection::Run(Role::Track, vec![])
        );
    }

    #[test]
    fn unknown_and_special_arguments() {
        assert_eq!(
            select(&argv(&["xenplug", "frobnicate"])),
            Selection::Unknown("frobnicate".into())
        );
        assert_eq!(
            select(&argv(&["xenplug", "advertise", "toaster"])),
            Selection::Unknown("advertise toaster".into())
        );
        assert_eq!(
            select(&argv(&["xenplug", "advertise"])),
            Selection::Unknown("advertise".into())
        );
        assert_eq!(select(&argv(&["xenplug", "--list"])), Selection::List);
        assert_eq!(select(&argv(&["xenplug"])), Selection::Usage);
        assert_eq!(select(&argv(&[])), Selection::Usage);
        assert_eq!(main(argv(&["xenplug", "nope"])), 2);
        assert_eq!(
            main(argv(&["xenplug", "console"])),
            2,
            "no subcommand: a usage error"
        );
        assert_eq!(
            main(argv(&[
                "xenplug",
                "console",
                "tree",
                "--tracker",
                "http://example.org/"
            ])),
            2,
            "a tracker URL that is not http://IPv4:PORT: a usage error"
        );
        assert_eq!(
            main(argv(&["xenplug", "track"])),
            2,
            "no --repo: a usage error"
        );
    }
}
