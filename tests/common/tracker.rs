//! The tracker (`xenplug track`): the fixed identities and VMs of its test topology, and the
//! running tracker process.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use super::binary::xenplug_bin;
use super::constants::WAIT;
use super::netns::Netns;
use super::procs::{poll_until, tail, Proc};
use super::services_dir::{Scpd, ServiceFiles};

/// Host UUID of simulated hypervisor A (mgmt host 0).
pub const TRACK_HOST_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
/// Host UUID of simulated hypervisor B (mgmt host 1).
pub const TRACK_HOST_B: &str = "b2b2b2b2-0000-4000-8000-00000000000b";
/// Host UUID of the hypervisor that `spoof` starts inside a tenant network.
pub const TRACK_HOST_SPOOF: &str = "dead0000-0000-4000-8000-00000000beef";
/// Host names of hypervisors A and B.
pub const TRACK_HOST_NAMES: [&str; 2] = ["dom0-a", "dom0-b"];
/// Host UUIDs of hypervisors A and B, by index.
pub const TRACK_HOSTS: [&str; 2] = [TRACK_HOST_A, TRACK_HOST_B];
/// acme's VM on host A.
pub const TRACK_VM_A1: &str = "acac0001-1111-4a6b-8c9d-0000000000a1";
/// acme's VM on host B.
pub const TRACK_VM_A2: &str = "acac0002-2222-4a6b-8c9d-0000000000a2";
/// beta's VM on host A.
pub const TRACK_VM_B1: &str = "bebe0001-1111-4a6b-8c9d-0000000000b1";
/// beta's VM on host B.
pub const TRACK_VM_B2: &str = "bebe0002-2222-4a6b-8c9d-0000000000b2";
/// acme's VM that no hypervisor lists (it must end up de-virtualized).
pub const TRACK_VM_LOST: &str = "acac0003-3333-4a6b-8c9d-0000000000a3";
/// Port of the read API (each tracker namespace has its own port space).
pub const TRACK_API_PORT: u16 = 8700;
/// `--max-age` of every advertiser in the topology.
pub const TRACK_MAX_AGE: u32 = 4;
/// `--grace` of the tracker.
pub const TRACK_GRACE: u64 = 3;
/// Every event kind the journal may hold.
pub const TRACK_EVENT_KINDS: &[&str] = &[
    "hypervisor-added",
    "hypervisor-removed",
    "hypervisor-rebooted",
    "vm-added",
    "vm-removed",
    "vm-state-changed",
    "vm-services-changed",
    "vm-migrated",
    "vm-devirtualized",
    "vm-revirtualized",
    "vm-renamed",
    "spoof-refused",
    "action",
];

/// The identities of a test's access file: name and role.
pub const TRACK_IDENTITIES: &[(&str, &str)] = &[
    ("admin", "admin"),
    ("ops", "operator"),
    ("eve", "viewer"),
    ("acme", "tenant:acme"),
    ("beta", "tenant:beta"),
];

/// An access file made with `xenplug access new` (the binary under test; no network), with the
/// tokens it printed, by identity name.
pub struct Access {
    /// The access file.
    pub path: PathBuf,
    tokens: BTreeMap<String, String>,
}

impl Access {
    /// An access file in `dir` holding `identities` (name, role).
    pub fn new(dir: &Path, identities: &[(&str, &str)]) -> Access {
        let path = dir.join("access");
        let mut tokens = BTreeMap::new();
        for (name, role) in identities {
            let output = std::process::Command::new(xenplug_bin())
                .args(["access", "new", name, role, "--file"])
                .arg(&path)
                .output()
                .expect("run xenplug access new");
            assert!(
                output.status.success(),
                "xenplug access new {name} {role}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            let token = String::from_utf8_lossy(&output.stdout).trim().to_string();
            assert_eq!(token.len(), 64, "a token: {token:?}");
            tokens.insert(name.to_string(), token);
        }
        Access { path, tokens }
    }

    /// The token of identity `name`.
    pub fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("no identity {name} in the test's access file"))
    }

    /// A new control key file `name` beside the access file (`xenplug access new-key`).
    pub fn new_key(&self, name: &str) -> PathBuf {
        let path = self
            .path
            .parent()
            .expect("the access file is in a directory")
            .join(name);
        let output = std::process::Command::new(xenplug_bin())
            .args(["access", "new-key"])
            .arg(&path)
            .output()
            .expect("run xenplug access new-key");
        assert!(
            output.status.success(),
            "xenplug access new-key: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        path
    }

    /// `Authorization: Bearer <token of name>`, as a curl `-H` value.
    pub fn header(&self, name: &str) -> String {
        format!("Authorization: Bearer {}", self.token(name))
    }
}

/// One VM of the topology.
#[derive(Clone, Copy, Debug)]
pub struct TrackVmSpec {
    /// VM UUID (the advertiser's `--uuid`, the sim file's `uuid=`).
    pub uuid: &'static str,
    /// Name (sim file `<name>.domain`, advertiser `--name`).
    pub name: &'static str,
    /// Tenant network it advertises in.
    pub tenant: &'static str,
    /// Index of the hypervisor whose sim dir lists it (None: no hypervisor does).
    pub host: Option<usize>,
}

/// The VMs of the topology: one per tenant on each host, plus one no hypervisor lists.
pub const TRACK_VMS: [TrackVmSpec; 5] = [
    TrackVmSpec {
        uuid: TRACK_VM_A1,
        name: "acme-1",
        tenant: "acme",
        host: Some(0),
    },
    TrackVmSpec {
        uuid: TRACK_VM_A2,
        name: "acme-2",
        tenant: "acme",
        host: Some(1),
    },
    TrackVmSpec {
        uuid: TRACK_VM_B1,
        name: "beta-1",
        tenant: "beta",
        host: Some(0),
    },
    TrackVmSpec {
        uuid: TRACK_VM_B2,
        name: "beta-2",
        tenant: "beta",
        host: Some(1),
    },
    TrackVmSpec {
        uuid: TRACK_VM_LOST,
        name: "acme-lost",
        tenant: "acme",
        host: None,
    },
];

/// The spec of VM `uuid`.
pub fn track_vm(uuid: &str) -> TrackVmSpec {
    *TRACK_VMS
        .iter()
        .find(|vm| vm.uuid == uuid)
        .unwrap_or_else(|| panic!("{uuid} is not a VM of the topology"))
}

/// `Echo(Text) -> Reply, Action`: answers the text and argv[1].
pub fn track_echo_service() -> ServiceFiles {
    ServiceFiles::new(
        &Scpd::new()
            .action("Echo", &["Text"], &["Reply", "Action"])
            .xml(),
        "#!/bin/sh\nprintf 'Reply=%s\\n' \"$XENPLUG_ARG_Text\"\nprintf 'Action=%s\\n' \"$1\"\n",
    )
}

/// A running `xenplug track` inside a namespace.
pub struct Tracker {
    /// The process (stderr = its log, with `XENPLUG_LOG=debug`).
    pub proc: Proc,
    /// When it was spawned.
    pub started: Instant,
    /// Its arguments, for failure messages.
    pub args: Vec<String>,
}

impl Tracker {
    /// Start `xenplug track ARGS` in `ns` and wait (bounded) for its `read API at` line.
    pub fn start(ns: &Netns, args: &[String]) -> Tracker {
        let mut full = vec!["track".to_string()];
        full.extend(args.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut command = ns.command(xenplug_bin(), &refs);
        command.env("XENPLUG_LOG", "debug");
        let started = Instant::now();
        let mut proc = ns.spawn("xenplug-track", command);
        let ready = poll_until(WAIT, || {
            if proc.stderr().contains("read API at http://") {
                return Some(true);
            }
            proc.try_status().map(|_| false)
        });
        if ready != Some(true) {
            let status = proc.try_status();
            panic!(
                "xenplug track never printed 'read API at http://...' within {WAIT:?} \
                 (exit status: {status:?}; args: {full:?})\nlog: {}\n{}",
                proc.log_paths(),
                proc.report()
            );
        }
        Tracker {
            proc,
            started,
            args: full,
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.proc.stderr()
    }

    /// Where its log is plus the tail of it.
    pub fn report(&self) -> String {
        format!(
            "tracker log: {}\n--- tracker log (tail) ---\n{}",
            self.proc.log_paths(),
            tail(&self.log(), 80)
        )
    }

    /// SIGTERM, then wait for exit.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(timeout)
    }
}

/// Starts `xenplug ARGS` (a `console serve` command line, `console` and `serve` included) in
/// `ns` with `XENPLUG_LOG=debug` and `env`, and waits (bounded) until it says where it listens.
pub fn start_console_serve(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Proc {
    let mut command = ns.command(xenplug_bin(), args);
    command.env("XENPLUG_LOG", "debug");
    command.envs(env.iter().copied());
    let serve = ns.spawn("console-serve", command);
    let ready = serve.wait_stdout(WAIT, |out| out.contains("console at http://").then_some(()));
    assert!(
        ready.is_some(),
        "console serve never said where it listens\n{}",
        serve.report()
    );
    serve
}
