//! The console's own tracker (`--iface IF[:TENANT]`): the tracker's run loop
//! ([`crate::track::run`]) on a thread of the console's process, listening on the named
//! interfaces, with a repository in a new temporary directory (removed when the console is
//! done) and its read API on 127.0.0.1 at a port the kernel picks. The console then talks to
//! it over HTTP like to any tracker, so every command has one code path. Net layer: a thread,
//! a directory, HTTP to loopback; [`network_of`] and [`Settling`] are pure.
//!
//! `--iface IF` is a provider (management) network, where hypervisors advertise; `--iface
//! IF:TENANT` a tenant network, whose VMs are filed under TENANT. Like the tracker, the
//! console files hypervisors from provider networks only and VMs from tenant networks only
//! (the inventory's rules, [`crate::engine::inventory`]); to see both on one interface, name
//! it twice (`--iface lo --iface lo:demo`).

use super::tree::Tree;
use super::{Failure, Tracker};
use crate::consts::{
    API_TREE_PATH, CONSOLE_TIMEOUT, DISCOVERY_DEFAULT_SEARCH_MX, TRACK_DEFAULT_GRACE_SECONDS,
};
use crate::repo::is_valid_name;
use crate::track::run::{NetSpec, Options};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often a settling console looks at its own tracker's tree.
const CONSOLE_SETTLE_STEP: Duration = Duration::from_millis(400);
/// Longest the console waits for its own tracker to report its read API address.
const CONSOLE_LOCAL_START: Duration = Duration::from_secs(5);
/// Longest the console waits for its own tracker's thread to stop when it exits.
const CONSOLE_LOCAL_STOP: Duration = Duration::from_secs(2);

/// The console's own tracker's private access file, in its repository directory.
const CONSOLE_ACCESS_FILE: &str = "console-access";
/// The identity the console uses at its own tracker (journaled with its calls).
const CONSOLE_IDENTITY: &str = "console";

/// How many names a temporary repository directory is tried under before giving up.
const REPO_DIR_ATTEMPTS: u32 = 16;

/// The network `--iface text` names: `IF` a provider network labelled with the interface's
/// name (or `provider` when that name is not a valid label), `IF:TENANT` a tenant network.
pub fn network_of(text: &str) -> Result<NetSpec, Failure> {
    let bad = |why: &str| {
        Failure::usage(format!(
            "--iface {:?}: {why} (expected IF for a provider network or IF:TENANT)",
            super::printable(text)
        ))
    };
    let (interface, tenant) = match text.split_once(':') {
        Some((interface, tenant)) => (interface, Some(tenant)),
        None => (text, None),
    };
    if interface.is_empty() {
        return Err(bad("no interface"));
    }
    match tenant {
        Some(tenant) if !is_valid_name(tenant) => {
            Err(bad("the tenant name must be 1-64 of A-Z a-z 0-9 _ -"))
        }
        Some(tenant) => Ok(NetSpec {
            label: tenant.to_string(),
            interface: interface.to_string(),
            provider: false,
        }),
        None => Ok(NetSpec {
            label: if is_valid_name(interface) {
                interface.to_string()
            } else {
                "provider".to_string()
            },
            interface: interface.to_string(),
            provider: true,
        }),
    }
}

/// Decides when discovery has settled from successive snapshots of the tree: once the
/// devices had the search's MX to answer (UDA 1.1 section 1.3.3: a device answers within MX
/// seconds), two consecutive snapshots that agree.
#[derive(Debug)]
pub struct Settling {
    quiet_after: Duration,
    previous: Option<Tree>,
}

impl Settling {
    /// For a search with `mx` seconds.
    pub fn new(mx: u32) -> Settling {
        Settling {
            quiet_after: Duration::from_secs(u64::from(mx)) + CONSOLE_SETTLE_STEP,
            previous: None,
        }
    }

    /// Takes the snapshot taken `elapsed` after the tracker started; true when settled.
    pub fn snapshot(&mut self, elapsed: Duration, tree: Tree) -> bool {
        if elapsed < self.quiet_after {
            return false;
        }
        let same = self.previous.as_ref() == Some(&tree);
        self.previous = Some(tree);
        same
    }
}

/// The console's running tracker; dropping it stops the tracker and removes its repository.
pub struct Local {
    /// Its read API (provider view: it listens on 127.0.0.1).
    pub api: Tracker,
    started: Instant,
    stop: Option<smol::channel::Sender<()>>,
    thread: Option<JoinHandle<crate::error::Result<()>>>,
    repo: PathBuf,
}

/// A new empty directory under the temporary directory.
fn temporary_repo() -> Result<PathBuf, Failure> {
    let base = std::env::temp_dir();
    let mut last = None;
    for attempt in 0..REPO_DIR_ATTEMPTS {
        let path = base.join(format!(
            "xenplug-console-{}-{}-{attempt}",
            std::process::id(),
            fastrand::u32(..)
        ));
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(error) => last = Some(error),
        }
    }
    Err(Failure::failed(format!(
        "creating a temporary repository under {}: {}",
        base.display(),
        last.map_or_else(|| "no attempt".to_string(), |e| e.to_string())
    )))
}

impl Local {
    /// Starts a tracker on the `--iface` networks; returns once its read API listens. With
    /// `access`, its API takes those identities (and the console's [`Local::api`] carries no
    /// token of its own); without, it gets a private access file in its repository directory
    /// with one admin identity, whose token only [`Local::api`] carries. Its relayed calls
    /// are signed with `control_key` when given.
    pub fn start(
        ifaces: &[String],
        access: Option<&std::path::Path>,
        control_key: Option<crate::wire::signature::ControlKey>,
    ) -> Result<Local, Failure> {
        let networks = ifaces
            .iter()
            .map(|text| network_of(text))
            .collect::<Result<Vec<_>, _>>()?;
        let repo = temporary_repo()?;
        let (access, token) = match access {
            Some(path) => (path.to_path_buf(), None),
            None => {
                let path = repo.join(CONSOLE_ACCESS_FILE);
                let token = crate::credentials::add_identity(
                    &path,
                    CONSOLE_IDENTITY,
                    &crate::engine::access::Role::Admin,
                )
                .map_err(|error| Failure::failed(error.to_string()))?;
                (path, Some(token))
            }
        };
        let (report, reported) = std::sync::mpsc::channel();
        let (stop, stopped) = smol::channel::bounded(1);
        let options = Options {
            networks,
            repo: repo.clone(),
            api: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))),
            grace: TRACK_DEFAULT_GRACE_SECONDS,
            report_api: Some(report),
            stop: Some(stopped),
            access: Some(access),
            control_key,
            tenant_control: Vec::new(),
            etcd: None,
            max_description: crate::consts::DESC_MAX_BYTES,
        };
        let started = Instant::now();
        let thread = std::thread::Builder::new()
            .name("console-tracker".to_string())
            .spawn(move || crate::track::run::run(options));
        let mut local = Local {
            api: Tracker {
                address: SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0),
                token: token.map(std::sync::Arc::from),
            },
            started,
            stop: Some(stop),
            thread: None,
            repo,
        };
        local.thread = Some(thread.map_err(|error| {
            Failure::failed(format!("starting the console's tracker: {error}"))
        })?);
        let address = match reported.recv_timeout(CONSOLE_LOCAL_START) {
            Ok(addresses) => addresses.into_iter().find_map(|a| match a {
                SocketAddr::V4(a) => Some(a),
                SocketAddr::V6(_) => None,
            }),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // The thread ended before listening: its error says why.
                let why = match local.thread.take().map(JoinHandle::join) {
                    Some(Ok(Err(error))) => error.to_string(),
                    _ => "it stopped".to_string(),
                };
                return Err(Failure::failed(format!("--iface: {why}")));
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => None,
        };
        let Some(address) = address else {
            return Err(Failure::failed(
                "the console's tracker did not start its read API in time",
            ));
        };
        local.api.address = address;
        log::debug!("console: own tracker at http://{address}");
        Ok(local)
    }

    /// Waits until discovery settles ([`Settling`]) or `max` has passed since the start;
    /// returns how long after the start it stopped waiting and whether it settled.
    pub fn settle(&self, max: Duration) -> Result<(Duration, bool), Failure> {
        let mut settling = Settling::new(DISCOVERY_DEFAULT_SEARCH_MX);
        loop {
            let elapsed = self.started.elapsed();
            if elapsed >= max {
                return Ok((elapsed, false));
            }
            let document = self.api.get_json(API_TREE_PATH, CONSOLE_TIMEOUT)?;
            let tree = Tree::read(&document.value)?;
            if settling.snapshot(self.started.elapsed(), tree) {
                return Ok((self.started.elapsed(), true));
            }
            std::thread::sleep(CONSOLE_SETTLE_STEP.min(max.saturating_sub(elapsed)));
        }
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        // Dropping the only sender tells the tracker's loop to stop.
        self.stop = None;
        if let Some(thread) = self.thread.take() {
            let deadline = Instant::now() + CONSOLE_LOCAL_STOP;
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                if let Ok(Err(error)) = thread.join() {
                    log::warn!("console's tracker: {error}");
                }
            } else {
                log::debug!("console's tracker still running at exit");
            }
        }
        if let Err(error) = std::fs::remove_dir_all(&self.repo) {
            log::warn!(
                "removing the temporary repository {}: {error}",
                self.repo.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::CONSOLE_EXIT_USAGE;

    #[test]
    fn iface_names_a_provider_or_a_tenant_network() {
        assert_eq!(
            network_of("eth0").unwrap(),
            NetSpec {
                label: "eth0".into(),
                interface: "eth0".into(),
                provider: true
            }
        );
        assert_eq!(
            network_of("veth.7").unwrap().label,
            "provider",
            "an interface name that is no label"
        );
        assert_eq!(
            network_of("eth1:acme").unwrap(),
            NetSpec {
                label: "acme".into(),
                interface: "eth1".into(),
                provider: false
            }
        );
        for bad in ["", ":acme", "eth1:", "eth1:a/b", "eth1:a:b"] {
            assert_eq!(
                network_of(bad).unwrap_err().code,
                CONSOLE_EXIT_USAGE,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn settles_on_two_agreeing_snapshots_after_mx() {
        let tree = |n: u64| Tree {
            provider: true,
            last_seq: n,
            ..Tree::default()
        };
        let mut settling = Settling::new(2);
        let early = Duration::from_secs(1);
        assert!(!settling.snapshot(early, tree(1)));
        assert!(
            !settling.snapshot(early, tree(1)),
            "never before the devices had MX to answer"
        );
        let late = Duration::from_secs(3);
        assert!(!settling.snapshot(late, tree(1)), "the first one after MX");
        assert!(!settling.snapshot(late, tree(2)), "changed");
        assert!(settling.snapshot(late, tree(2)));
    }
}
