//! Network namespaces: the only place a test's processes and packets live. Each is deleted,
//! with everything in it, on drop.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::Duration;

use super::constants::WAIT;
use super::procs::{run_bounded, sanitize, unique, Proc, TempDir};

/// Serializes namespace creation and deletion inside one test process (`ip netns add` sets up
/// the shared /run/netns mount on first use and is not safe to race with itself).
fn netns_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Delete namespaces left behind by test processes that no longer exist (a test binary killed
/// with SIGKILL cannot run its Drop). Only names made by this harness (`xp-TAG-PID-N`) whose
/// PID is gone are touched.
fn sweep_stale_namespaces() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
            return;
        };
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            let mut parts = name.rsplit('-');
            let (Some(n), Some(pid)) = (parts.next(), parts.next()) else {
                continue;
            };
            if !name.starts_with("xp-") || n.parse::<u32>().is_err() {
                continue;
            }
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            if Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            eprintln!("harness: removing stale namespace {name}");
            kill_namespace_processes(name);
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    });
}

/// SIGKILL every process inside namespace `name` (all of them were started by this harness).
fn kill_namespace_processes(name: &str) {
    for _ in 0..20 {
        let Ok(output) = Command::new("ip").args(["netns", "pids", name]).output() else {
            return;
        };
        let pids: Vec<libc::pid_t> = String::from_utf8_lossy(&output.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect();
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) on a process that lives in a namespace this harness created.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        sleep(Duration::from_millis(50));
    }
}

/// Host-side command (no network) that must succeed; returns stdout.
fn host_ok(program: &str, args: &[&str]) -> String {
    let mut command = Command::new(program);
    command.args(args);
    let output = run_bounded(command, WAIT, &format!("{program} {}", args.join(" ")));
    assert!(
        output.status.success(),
        "{program} {} failed ({}): {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// One leg for [`Netns::plug`]: the namespace, the bridge's port, the leg's name there, its
/// address and prefix length, and whether its port is isolated.
pub struct Plug<'a> {
    pub ns: &'a Netns,
    pub port: &'a str,
    pub iface: &'a str,
    pub address: Ipv4Addr,
    pub prefix: u8,
    pub isolated: bool,
}

/// A network namespace of its own: `lo` up (with multicast and a multicast route), IPv6 off,
/// deleted with everything in it on drop.
pub struct Netns {
    name: String,
    logs: TempDir,
}

impl Netns {
    /// A new namespace `xp-<tag>-<pid>-<n>` whose only interface is `lo`, up, with the SSDP
    /// multicast range routed to it.
    pub fn new(tag: &str) -> Netns {
        let ns = Netns::bare(tag);
        ns.ip(&["route", "add", "224.0.0.0/4", "dev", "lo"]);
        ns
    }

    /// A new namespace holding one bridge `br0`, up, that floods multicast to every port (no
    /// snooping: SSDP reaches every host without IGMP joins being seen).
    pub fn bridge(tag: &str) -> Netns {
        let bridge = Netns::bare(tag);
        bridge.ip(&[
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        bridge.ip(&["link", "set", "br0", "up"]);
        bridge
    }

    /// Gives `ns` a leg `iface` with `address`/`prefix` on this namespace's bridge `br0`
    /// ([`Netns::bridge`]) through its port `port` (isolated from the other isolated ports
    /// when `isolated`), multicast on; no multicast route (callers add one where they want it).
    pub fn plug(&self, plug: Plug<'_>) {
        let Plug {
            ns,
            port,
            iface,
            address,
            prefix,
            isolated,
        } = plug;
        self.ip(&[
            "link",
            "add",
            port,
            "type",
            "veth",
            "peer",
            "name",
            iface,
            "netns",
            ns.name(),
        ]);
        self.ip(&["link", "set", port, "master", "br0"]);
        if isolated {
            self.ip(&[
                "link",
                "set",
                port,
                "type",
                "bridge_slave",
                "isolated",
                "on",
            ]);
        }
        self.ip(&["link", "set", port, "up"]);
        ns.ip(&["addr", "add", &format!("{address}/{prefix}"), "dev", iface]);
        ns.ip(&["link", "set", iface, "multicast", "on"]);
        ns.ip(&["link", "set", iface, "up"]);
    }

    /// A new namespace with `lo` up but no multicast route (the caller adds its own).
    pub fn bare(tag: &str) -> Netns {
        sweep_stale_namespaces();
        let name = format!("xp-{}-{}-{}", sanitize(tag), std::process::id(), unique());
        {
            let _guard = netns_lock();
            host_ok("ip", &["netns", "add", &name]);
        }
        let ns = Netns {
            name,
            logs: TempDir::new(tag),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns.ip(&["link", "set", "lo", "multicast", "on"]);
        ns.ok(
            "sysctl",
            &[
                "-q",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        );
        ns
    }

    /// Its name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Directory for logs of processes started in it.
    pub fn log_dir(&self) -> &Path {
        self.logs.path()
    }

    /// `ip -n NAME ARGS...`, which must succeed.
    pub fn ip(&self, args: &[&str]) {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        host_ok("ip", &full);
    }

    /// A command that runs `program args...` inside this namespace. Proxy variables are
    /// removed so that no HTTP client tries to leave the namespace through one.
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, program: S, args: &[&str]) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.name])
            .arg(program)
            .args(args);
        for var in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
        ] {
            command.env_remove(var);
        }
        command.env("PYTHONUNBUFFERED", "1");
        command.env("PYTHONDONTWRITEBYTECODE", "1");
        command
    }

    /// Run `program args...` inside, bounded by `timeout`.
    pub fn run(&self, program: &str, args: &[&str], timeout: Duration) -> Output {
        run_bounded(
            self.command(program, args),
            timeout,
            &format!("[{}] {program} {}", self.name, args.join(" ")),
        )
    }

    /// Run inside and require success; returns stdout.
    pub fn ok(&self, program: &str, args: &[&str]) -> String {
        let output = self.run(program, args, WAIT);
        assert!(
            output.status.success(),
            "[{}] {program} {} failed ({}): {}",
            self.name,
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Start a long-running command inside; its output goes to this namespace's log dir.
    pub fn spawn(&self, label: &str, command: Command) -> Proc {
        Proc::spawn(command, self.logs.path(), label)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_namespace_processes(&self.name);
        let _guard = netns_lock();
        for _ in 0..10 {
            let status = Command::new("ip")
                .args(["netns", "del", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if matches!(status, Ok(s) if s.success()) {
                return;
            }
            sleep(Duration::from_millis(100));
        }
        eprintln!("harness: could not delete namespace {}", self.name);
    }
}

/// Process ids in namespace `ns` right now.
pub fn netns_pids(ns: &Netns) -> BTreeSet<u32> {
    let output = Command::new("ip")
        .args(["netns", "pids", ns.name()])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
