//! Integration-test harness: network namespaces, a small bridge LAN, the real `xenplug` binary
//! and third-party UPnP peers (gssdp-discover, GUPnP through PyGObject, async-upnp-client).
//!
//! Network safety: nothing here ever sends a packet in the root network namespace. Every process
//! that touches the network (xenplug, peers, curl) is started with `ip netns exec NS ...` in a
//! namespace this harness created, and always with an explicit interface. Every namespace is
//! deleted, and every process in it killed, when its [`Netns`] is dropped (also on panic).
//! Every wait is bounded by a deadline.
//!
//! Running: as root (namespaces), with the peers installed (`.ci/run` installs them):
//! `cargo test --test interop_lan lan_discover_all` runs one test. Peers are found through
//! `XENPLUG_GI_PYTHON` (default /usr/bin/python3, needs python3-gi + gir1.2-gupnp-1.6) and
//! `XENPLUG_AUPNP_PYTHON` (default: the first of `python3`, /usr/bin/python3 that imports
//! async_upnp_client); a missing peer fails the test, it is never skipped. A failing test keeps
//! its logs (xenplug's stderr with `XENPLUG_LOG=debug`, each peer's stdout/stderr) under
//! target/tmp/ and prints where.
//!
//! Each test crate uses only part of this module, hence `allow(dead_code)`.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread::sleep;
use std::time::{Duration, Instant};

// ---- constants the tests share ---------------------------------------------------------------

/// Hypervisor root device type.
pub const DEVICE_HYPERVISOR: &str = "urn:xenplug-org:device:Hypervisor:1";
/// Domain embedded device type.
pub const DEVICE_DOMAIN: &str = "urn:xenplug-org:device:Domain:1";
/// Hypervisor service type.
pub const SERVICE_HYPERVISOR: &str = "urn:xenplug-org:service:Hypervisor:1";
/// DomainControl service type.
pub const SERVICE_DOMAIN_CONTROL: &str = "urn:xenplug-org:service:DomainControl:1";
/// Vendor namespace of `<xenplug:vmUuid>`.
pub const NS_XENPLUG: &str = "urn:xenplug-org:schemas-1-0";
/// Actions of the Hypervisor service (contract).
pub const HYPERVISOR_ACTIONS: &[&str] =
    &["GetHostInfo", "ListVirtualMachines", "StartVirtualMachine"];
/// Actions of the DomainControl service (contract).
pub const DOMAIN_ACTIONS: &[&str] = &[
    "Destroy", "GetState", "Pause", "Reboot", "Resume", "Shutdown", "Suspend",
];

/// Default bound of one wait.
pub const WAIT: Duration = Duration::from_secs(10);
/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

/// Fixed host identity of the standard fixture.
pub const HOST_UUID: &str = "5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab";
/// Fixed host name of the standard fixture.
pub const HOST_NAME: &str = "dom0-test";
/// VM "web" of the standard fixture (running).
pub const VM_WEB: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000a001";
/// VM "db" of the standard fixture (running).
pub const VM_DB: &str = "0b5e1c2a-2222-4a6b-8c9d-00000000a002";
/// VM "spare" (shutoff), written only by fixtures that ask for it.
pub const VM_SPARE: &str = "0b5e1c2a-3333-4a6b-8c9d-00000000a003";
/// A VM added while xenplug runs.
pub const VM_LATE: &str = "0b5e1c2a-4444-4a6b-8c9d-00000000a004";

// ---- small utilities -------------------------------------------------------------------------

/// Poll `probe` until it returns `Some`, or give up after `timeout`.
pub fn poll_until<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        sleep(POLL);
    }
}

fn unique() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

fn sanitize(tag: &str) -> String {
    let mut out: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    out.truncate(24);
    out
}

/// The last `n` lines of `text`, for failure messages.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Run a command to completion with a bound on its time; panics with its output on timeout.
pub fn run_bounded(mut command: Command, timeout: Duration, what: &str) -> Output {
    let dir = TempDir::new("run");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    let out = fs::File::create(&out_path).expect("create stdout file");
    let err = fs::File::create(&err_path).expect("create stderr file");
    command.stdin(Stdio::null()).stdout(out).stderr(err);
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    let status = poll_until(timeout, || child.try_wait().ok().flatten());
    let status = match status {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what}: still running after {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                tail(&read_lossy(&out_path), 40),
                tail(&read_lossy(&err_path), 40)
            );
        }
    };
    Output {
        status,
        stdout: fs::read(&out_path).unwrap_or_default(),
        stderr: fs::read(&err_path).unwrap_or_default(),
    }
}

fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
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

// ---- temporary directories -------------------------------------------------------------------

/// A directory under cargo's per-target temp dir, removed on drop unless the test is failing
/// (then it is kept and its path printed, so logs can be read).
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A fresh empty directory whose name contains `tag`.
    pub fn new(tag: &str) -> TempDir {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "xp-{}-{}-{}",
            sanitize(tag),
            std::process::id(),
            unique()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        TempDir { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("harness: kept {} for inspection", self.path.display());
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

// ---- processes -------------------------------------------------------------------------------

/// A child process whose stdout and stderr go to files; killed on drop.
pub struct Proc {
    label: String,
    child: Child,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Proc {
    /// Start `command` with stdin closed and output captured into files under `dir`.
    pub fn spawn(mut command: Command, dir: &Path, label: &str) -> Proc {
        let n = unique();
        let stdout_path = dir.join(format!("{}-{n}.out", sanitize(label)));
        let stderr_path = dir.join(format!("{}-{n}.err", sanitize(label)));
        let out = fs::File::create(&stdout_path).expect("create stdout file");
        let err = fs::File::create(&stderr_path).expect("create stderr file");
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("{label}: cannot start {command:?}: {e}"));
        Proc {
            label: label.to_string(),
            child,
            stdout_path,
            stderr_path,
            status: None,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        read_lossy(&self.stdout_path)
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        read_lossy(&self.stderr_path)
    }

    /// Both outputs, tailed, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "--- {} stdout ---\n{}\n--- {} stderr ---\n{}",
            self.label,
            tail(&self.stdout(), 60),
            self.label,
            tail(&self.stderr(), 60)
        )
    }

    /// Wait until `probe(stdout)` returns `Some`, at most `timeout`.
    pub fn wait_stdout<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        poll_until(timeout, || probe(&self.stdout()))
    }

    /// Wait until `probe(stderr)` returns `Some`, at most `timeout`.
    pub fn wait_stderr<T>(
        &self,
        timeout: Duration,
        mut probe: impl FnMut(&str) -> Option<T>,
    ) -> Option<T> {
        poll_until(timeout, || probe(&self.stderr()))
    }

    /// Exit status if it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Wait for it to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        poll_until(timeout, || self.try_status())
    }

    /// Send a signal (e.g. `libc::SIGTERM`).
    pub fn signal(&self, signal: i32) {
        if self.status.is_some() {
            return;
        }
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            self.status = self.child.wait().ok();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- network namespaces ----------------------------------------------------------------------

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

// ---- a small bridge LAN ----------------------------------------------------------------------

/// One host of a [`Lan`]: its namespace, interface name inside it, and address.
pub struct Host {
    /// The host's namespace.
    pub ns: Netns,
    /// Interface name inside the namespace.
    pub iface: String,
    /// IPv4 address on the LAN (exists only inside this namespace).
    pub addr: Ipv4Addr,
}

/// A namespace holding a bridge, plus N host namespaces each with a veth into it and an address
/// 10.99.1.(10+i)/24. Multicast snooping is off so SSDP floods like on a plain switch.
pub struct Lan {
    /// The hosts, in order (addresses .11, .12, ...).
    pub hosts: Vec<Host>,
    bridge: Netns,
    /// N of 10.99.N.0/24.
    subnet: u8,
}

impl Lan {
    /// Build a LAN of `count` hosts (1..=9).
    pub fn new(tag: &str, count: usize) -> Lan {
        Lan::with_subnet(tag, count, 1)
    }

    /// Build a LAN of `count` hosts (1..=9) on 10.99.`subnet`.0/24 (hosts .11, .12, ...).
    pub fn with_subnet(tag: &str, count: usize, subnet: u8) -> Lan {
        assert!((1..=9).contains(&count), "a LAN has 1..=9 hosts");
        let bridge = Netns::bare(&format!("{tag}-br"));
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
        let mut hosts = Vec::new();
        for i in 1..=count {
            let ns = Netns::bare(&format!("{tag}-h{i}"));
            let port = format!("port{i}");
            bridge.ip(&[
                "link",
                "add",
                &port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ]);
            bridge.ip(&["link", "set", &port, "master", "br0"]);
            bridge.ip(&["link", "set", &port, "up"]);
            let addr = Ipv4Addr::new(10, 99, subnet, 10 + u8::try_from(i).expect("small"));
            ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", "eth0"]);
            ns.ip(&["link", "set", "eth0", "multicast", "on"]);
            ns.ip(&["link", "set", "eth0", "up"]);
            ns.ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"]);
            hosts.push(Host {
                ns,
                iface: "eth0".to_string(),
                addr,
            });
        }
        let lan = Lan {
            hosts,
            bridge,
            subnet,
        };
        lan.wait_links_up();
        lan
    }

    /// The LAN's network, `10.99.N.0/24` (what `--allow-control` takes).
    pub fn network(&self) -> String {
        format!("10.99.{}.0/24", self.subnet)
    }

    /// Host `i` (0-based).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    fn wait_links_up(&self) {
        for host in &self.hosts {
            let up = poll_until(WAIT, || {
                let out = host.ns.ok("ip", &["-o", "link", "show", "eth0"]);
                out.contains("LOWER_UP").then_some(())
            });
            assert!(up.is_some(), "eth0 in {} never came up", host.ns.name());
        }
    }
}

// ---- the sim backend's directory -------------------------------------------------------------

/// One sim domain file's content.
#[derive(Clone, Debug)]
pub struct Domain {
    /// VM UUID.
    pub uuid: String,
    /// Name; also the file name (`<name>.domain`).
    pub name: String,
    /// running, paused, suspended or shutoff.
    pub state: String,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
}

impl Domain {
    /// A domain with 1 GiB and 2 vCPUs.
    pub fn new(uuid: &str, name: &str, state: &str) -> Domain {
        Domain {
            uuid: uuid.to_string(),
            name: name.to_string(),
            state: state.to_string(),
            memory_kib: 1_048_576,
            vcpus: 2,
        }
    }
}

/// The `--sim-dir` of one xenplug: writes and reads domain files the way another program would
/// (atomically, through a temporary name that does not end in `.domain`).
pub struct SimDir {
    dir: TempDir,
}

impl SimDir {
    /// An empty sim directory.
    pub fn new(tag: &str) -> SimDir {
        SimDir {
            dir: TempDir::new(&format!("{tag}-sim")),
        }
    }

    /// The standard fixture: host file, `web` and `db` running.
    pub fn standard(tag: &str) -> SimDir {
        let sim = SimDir::new(tag);
        sim.write_host(HOST_UUID, HOST_NAME);
        sim.write_domain(&Domain::new(VM_WEB, "web", "running"));
        sim.write_domain(&Domain::new(VM_DB, "db", "running"));
        sim
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_atomic(&self, file: &str, content: &str) {
        let tmp = self.path().join(format!(".{file}.tmp"));
        fs::write(&tmp, content).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::rename(&tmp, self.path().join(file)).expect("rename sim file into place");
    }

    /// Write `host` (uuid=, name=).
    pub fn write_host(&self, uuid: &str, name: &str) {
        self.write_atomic("host", &format!("uuid={uuid}\nname={name}\n"));
    }

    /// Write `host` (uuid=, name=) with `extra` key=value lines, e.g. `("delay_ms", "20000")`
    /// to make every lifecycle operation take that long.
    pub fn write_host_with(&self, uuid: &str, name: &str, extra: &[(&str, &str)]) {
        let mut text = format!("uuid={uuid}\nname={name}\n");
        for (key, value) in extra {
            text.push_str(&format!("{key}={value}\n"));
        }
        self.write_atomic("host", &text);
    }

    /// Write `<name>.domain`.
    pub fn write_domain(&self, domain: &Domain) {
        self.write_domain_as(&domain.name, domain);
    }

    /// Write `<file>.domain` with `domain`'s content: with a `name=` other than `file`, a
    /// domain renamed in place.
    pub fn write_domain_as(&self, file: &str, domain: &Domain) {
        self.write_atomic(
            &format!("{file}.domain"),
            &format!(
                "uuid={}\nname={}\nstate={}\nmemory_kib={}\nvcpus={}\n",
                domain.uuid, domain.name, domain.state, domain.memory_kib, domain.vcpus
            ),
        );
    }

    /// Remove `<name>.domain`.
    pub fn remove_domain(&self, name: &str) {
        fs::remove_file(self.path().join(format!("{name}.domain"))).expect("remove domain file");
    }

    /// The key=value pairs of `<name>.domain` (empty if missing).
    pub fn read_domain(&self, name: &str) -> BTreeMap<String, String> {
        read_lossy(&self.path().join(format!("{name}.domain")))
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// Wait until `<name>.domain` says `state=<state>`; panics with the file's content if not.
    pub fn expect_state(&self, name: &str, state: &str, timeout: Duration) {
        let seen = poll_until(timeout, || {
            (self.read_domain(name).get("state").map(String::as_str) == Some(state)).then_some(())
        });
        assert!(
            seen.is_some(),
            "sim file {name}.domain never said state={state} within {timeout:?}; it holds {:?}",
            self.read_domain(name)
        );
    }
}

// ---- the binary --------------------------------------------------------------------------------

/// Path of the binary under test.
pub fn xenplug_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_xenplug"))
}

/// Options for starting `xenplug advertise hypervisor`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Interfaces (`--iface`), in order; at least one.
    pub ifaces: Vec<String>,
    /// `--max-age`, if set.
    pub max_age: Option<u32>,
    /// `--http-port`, if set.
    pub http_port: Option<u16>,
    /// Run through this path (a symlink) with no role words instead of `xenplug advertise
    /// hypervisor`.
    pub argv0: Option<PathBuf>,
    /// `--allow-control` values, in order (none: the default, only the host itself may call
    /// mutating actions). A test that calls Pause & co. from another namespace names it here.
    pub allow_control: Vec<String>,
}

impl Options {
    /// Just these interfaces.
    pub fn ifaces(ifaces: &[&str]) -> Options {
        Options {
            ifaces: ifaces.iter().map(|s| s.to_string()).collect(),
            ..Options::default()
        }
    }
}

/// A running `xenplug advertise hypervisor --backend sim` inside a namespace.
pub struct Xenplug {
    /// The process (stderr = its log, with `XENPLUG_LOG=debug`).
    pub proc: Proc,
    /// The description URL it printed.
    pub url: String,
    state: TempDir,
}

impl Xenplug {
    /// Start on `iface` in `ns` with sim directory `sim`; waits for the `description at` line.
    pub fn start(ns: &Netns, iface: &str, sim: &SimDir) -> Xenplug {
        Xenplug::start_with(ns, sim, &Options::ifaces(&[iface]))
    }

    /// Start with explicit options.
    pub fn start_with(ns: &Netns, sim: &SimDir, options: &Options) -> Xenplug {
        assert!(
            !options.ifaces.is_empty(),
            "xenplug always gets an explicit --iface"
        );
        let state = TempDir::new("state");
        let program = options.argv0.clone().unwrap_or_else(xenplug_bin);
        let mut args: Vec<String> = Vec::new();
        if options.argv0.is_none() {
            args.extend(["advertise".to_string(), "hypervisor".to_string()]);
        }
        for iface in &options.ifaces {
            args.extend(["--iface".to_string(), iface.clone()]);
        }
        args.extend(["--backend".to_string(), "sim".to_string()]);
        args.extend(["--sim-dir".to_string(), sim.path().display().to_string()]);
        args.extend([
            "--state-dir".to_string(),
            state.path().display().to_string(),
        ]);
        if let Some(port) = options.http_port {
            args.extend(["--http-port".to_string(), port.to_string()]);
        }
        if let Some(max_age) = options.max_age {
            args.extend(["--max-age".to_string(), max_age.to_string()]);
        }
        for allowed in &options.allow_control {
            args.extend(["--allow-control".to_string(), allowed.clone()]);
        }
        Xenplug::launch(ns, &program, &args, state)
    }

    /// Start `xenplug advertise hypervisor ARGS... --state-dir DIR`: the caller gives
    /// `--iface` and the backend and its options.
    pub fn start_args(ns: &Netns, args: &[String]) -> Xenplug {
        let state = TempDir::new("state");
        let mut full = vec!["advertise".to_string(), "hypervisor".to_string()];
        full.extend_from_slice(args);
        full.extend([
            "--state-dir".to_string(),
            state.path().display().to_string(),
        ]);
        Xenplug::launch(ns, &xenplug_bin(), &full, state)
    }

    /// Run `program args...` in `ns` with `XENPLUG_LOG=debug` and wait for the `description
    /// at` line (every role prints it once it advertises).
    fn launch(ns: &Netns, program: &Path, args: &[String], state: TempDir) -> Xenplug {
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut command = ns.command(program, &arg_refs);
        command.env("XENPLUG_LOG", "debug");
        let mut proc = ns.spawn("xenplug", command);
        let url = proc.wait_stderr(WAIT, description_url);
        let Some(url) = url else {
            let status = proc.try_status();
            panic!(
                "xenplug never printed 'description at http://...' within {WAIT:?} \
                 (exit status: {status:?}; args: {args:?})\n{}",
                proc.report()
            );
        };
        Xenplug { proc, url, state }
    }

    /// `http://ADDR:PORT` of the description URL.
    pub fn base(&self) -> String {
        let rest = self.url.trim_start_matches("http://");
        let host = rest.split('/').next().unwrap_or(rest);
        format!("http://{host}")
    }

    /// The state directory it was given.
    pub fn state_dir(&self) -> &Path {
        self.state.path()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        self.proc.stderr()
    }

    /// Tail of its log, for failure messages.
    pub fn report(&self) -> String {
        format!("--- xenplug log (tail) ---\n{}", tail(&self.log(), 80))
    }

    /// SIGTERM, then wait for exit; returns the status (None if it did not exit in time).
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(timeout)
    }
}

/// The URL from a `description at http://ADDR:PORT/description.xml` line.
pub fn description_url(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("description at http://"))?;
    let start = line.find("description at ")? + "description at ".len();
    let url = line[start..].split_whitespace().next()?;
    Some(url.trim_end_matches(['.', ',', ';']).to_string())
}

// ---- HTTP through curl -----------------------------------------------------------------------

/// One HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// Body as text.
    pub body: String,
}

impl HttpResponse {
    /// First header with this (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

fn parse_curl_i(raw: &str) -> Option<HttpResponse> {
    // `curl -i` prints every response head (e.g. a 100 Continue) before the final one.
    let mut rest = raw;
    loop {
        let (head, body) = rest.split_once("\r\n\r\n")?;
        let mut lines = head.lines();
        let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        return Some(HttpResponse {
            status,
            headers,
            body: body.to_string(),
        });
    }
}

/// Request with curl inside `ns`; `extra` are further curl arguments. Panics if no response.
pub fn curl(ns: &Netns, url: &str, extra: &[&str]) -> HttpResponse {
    let mut args = vec!["-sS", "-i", "--max-time", "5", "--noproxy", "*"];
    args.extend_from_slice(extra);
    args.push(url);
    let output = ns.run("curl", &args, Duration::from_secs(15));
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    parse_curl_i(&raw).unwrap_or_else(|| {
        panic!(
            "curl {url}: no HTTP response ({}): {}\n{raw}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// Whether any HTTP response comes back at all (connection refused / timeout -> false).
pub fn curl_reaches(ns: &Netns, url: &str) -> bool {
    let args = [
        "-sS",
        "-o",
        "/dev/null",
        "--max-time",
        "3",
        "--noproxy",
        "*",
        url,
    ];
    ns.run("curl", &args, Duration::from_secs(10))
        .status
        .success()
}

/// GET `url` from inside `ns`.
pub fn http_get(ns: &Netns, url: &str) -> HttpResponse {
    curl(ns, url, &[])
}

/// POST a SOAP action to `control_url`; `args` are (name, value) in order.
pub fn soap_call(
    ns: &Netns,
    control_url: &str,
    service_type: &str,
    action: &str,
    args: &[(&str, &str)],
) -> HttpResponse {
    let mut body = String::from(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>",
    );
    body.push_str(&format!("<u:{action} xmlns:u=\"{service_type}\">"));
    for (name, value) in args {
        body.push_str(&format!("<{name}>{value}</{name}>"));
    }
    body.push_str(&format!("</u:{action}></s:Body></s:Envelope>"));
    let file = ns.log_dir().join(format!("soap-{}.xml", unique()));
    fs::write(&file, body).expect("write SOAP body");
    let data = format!("@{}", file.display());
    let soapaction = format!("SOAPACTION: \"{service_type}#{action}\"");
    curl(
        ns,
        control_url,
        &[
            "-X",
            "POST",
            "-H",
            "Content-Type: text/xml; charset=\"utf-8\"",
            "-H",
            &soapaction,
            "--data-binary",
            &data,
        ],
    )
}

/// Text of the first element whose name (after any prefix) is `local` in `xml`; a plain scan,
/// good enough for the small documents under test.
pub fn xml_text<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    xml_texts(xml, local).into_iter().next()
}

/// Texts of every element whose local name is `local`.
pub fn xml_texts<'a>(xml: &'a str, local: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let Some(close) = rest.find('>') else { break };
        let tag = &rest[..close];
        let name = tag.split_whitespace().next().unwrap_or("");
        let bare = name.rsplit(':').next().unwrap_or(name);
        if bare == local && !tag.starts_with('/') && !tag.ends_with('/') {
            let body = &rest[close + 1..];
            if let Some(end) = body.find("</") {
                out.push(body[..end].trim());
            }
        }
        rest = &rest[close + 1..];
    }
    out
}

// ---- flat JSON (upnp-client prints one object of strings per line) ---------------------------

/// Parse one JSON object whose values are strings, numbers, booleans or null (nested values are
/// skipped). Returns None on anything else.
pub fn parse_flat_json(line: &str) -> Option<BTreeMap<String, String>> {
    let chars: Vec<char> = line.trim().chars().collect();
    let mut i = 0;
    let mut out = BTreeMap::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    fn string(chars: &[char], i: &mut usize) -> Option<String> {
        if chars.get(*i) != Some(&'"') {
            return None;
        }
        *i += 1;
        let mut s = String::new();
        loop {
            let c = *chars.get(*i)?;
            *i += 1;
            match c {
                '"' => return Some(s),
                '\\' => {
                    let e = *chars.get(*i)?;
                    *i += 1;
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'u' => {
                            let hex: String = chars.get(*i..*i + 4)?.iter().collect();
                            *i += 4;
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        other => s.push(other),
                    }
                }
                other => s.push(other),
            }
        }
    }
    skip_ws(&mut i);
    if chars.get(i) != Some(&'{') {
        return None;
    }
    i += 1;
    loop {
        skip_ws(&mut i);
        match chars.get(i) {
            Some('}') => return Some(out),
            Some(',') => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let key = string(&chars, &mut i)?;
        skip_ws(&mut i);
        if chars.get(i) != Some(&':') {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        match chars.get(i) {
            Some('"') => {
                let value = string(&chars, &mut i)?;
                out.insert(key, value);
            }
            Some('{') | Some('[') => {
                // Skip a nested value, honouring strings.
                let mut depth = 0usize;
                loop {
                    match chars.get(i)? {
                        '"' => {
                            string(&chars, &mut i)?;
                            continue;
                        }
                        '{' | '[' => depth += 1,
                        '}' | ']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            Some(_) => {
                let start = i;
                while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                    i += 1;
                }
                out.insert(
                    key,
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string(),
                );
            }
            None => return None,
        }
    }
}

// ---- peers -----------------------------------------------------------------------------------

fn interop_script(name: &str) -> String {
    format!("{}/tests/interop/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn python_has(python: &str, module: &str) -> bool {
    Command::new(python)
        .args(["-c", &format!("import {module}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn python_executable(python: &str) -> Option<String> {
    let output = Command::new(python)
        .args(["-c", "import sys; print(sys.executable)"])
        .stdin(Stdio::null())
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (output.status.success() && !path.is_empty()).then_some(path)
}

/// The python that has Debian's GUPnP bindings: `$XENPLUG_GI_PYTHON`, else /usr/bin/python3.
/// Panics (never skips) if GUPnP 1.6 cannot be imported.
pub fn gi_python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let python =
            std::env::var("XENPLUG_GI_PYTHON").unwrap_or_else(|_| "/usr/bin/python3".to_string());
        let check = "gi; gi.require_version('GUPnP', '1.6'); from gi.repository import GUPnP";
        assert!(
            python_has(&python, check),
            "peer missing: {python} cannot import GUPnP 1.6 through gi \
             (install python3-gi and gir1.2-gupnp-1.6, or set XENPLUG_GI_PYTHON)"
        );
        python
    })
}

/// The python that has async-upnp-client: `$XENPLUG_AUPNP_PYTHON`, else `python3` on PATH,
/// else /usr/bin/python3. Resolved to an absolute path. Panics (never skips) if none has it.
pub fn aupnp_python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        let candidates: Vec<String> = match std::env::var("XENPLUG_AUPNP_PYTHON") {
            Ok(p) => vec![p],
            Err(_) => vec!["python3".to_string(), "/usr/bin/python3".to_string()],
        };
        for candidate in &candidates {
            if python_has(
                candidate,
                "async_upnp_client.client_factory, async_upnp_client.aiohttp",
            ) {
                if let Some(path) = python_executable(candidate) {
                    return path;
                }
            }
        }
        panic!(
            "peer missing: none of {candidates:?} can import async_upnp_client \
             (pip install async-upnp-client, or set XENPLUG_AUPNP_PYTHON)"
        );
    })
}

/// Require that a program is on PATH; panics (never skips) if not.
pub fn require_program(program: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        found,
        "peer missing: {program} not on PATH (install the {package} package)"
    );
}

/// What gssdp-discover printed: (available or unavailable, USN, Location).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Seen {
    /// true for "resource available", false for "resource unavailable".
    pub available: bool,
    /// USN.
    pub usn: String,
    /// Location (available only).
    pub location: String,
}

/// Parse gssdp-discover's output.
pub fn parse_gssdp(out: &str) -> Vec<Seen> {
    let mut seen: Vec<Seen> = Vec::new();
    for line in out.lines() {
        let trimmed = line.trim();
        if trimmed == "resource available" || trimmed == "resource unavailable" {
            seen.push(Seen {
                available: trimmed == "resource available",
                usn: String::new(),
                location: String::new(),
            });
        } else if let Some(current) = seen.last_mut() {
            if let Some(usn) = trimmed.strip_prefix("USN:") {
                current.usn = usn.trim().to_string();
            } else if let Some(location) = trimmed.strip_prefix("Location:") {
                current.location = location.trim().to_string();
            }
        }
    }
    seen
}

/// Run `gssdp-discover -i IFACE -t TARGET -n SECONDS -m MODE` inside `ns` (spawned).
pub fn gssdp_discover(ns: &Netns, iface: &str, target: &str, seconds: u32, mode: &str) -> Proc {
    require_program("gssdp-discover", "gupnp-tools");
    let n = seconds.to_string();
    let command = ns.command(
        "gssdp-discover",
        &["-i", iface, "-t", target, "-n", &n, "-m", mode],
    );
    ns.spawn(
        &format!("gssdp-{}", target.rsplit(':').nth(1).unwrap_or(target)),
        command,
    )
}

/// USNs gssdp-discover has reported, as a set, for `available` (true) or unavailable.
pub fn gssdp_usns(proc: &Proc, available: bool) -> BTreeSet<String> {
    parse_gssdp(&proc.stdout())
        .into_iter()
        .filter(|s| s.available == available)
        .map(|s| s.usn)
        .collect()
}

/// Run the GUPnP peer (tests/interop/gupnp_peer.py) to completion inside `ns`.
pub fn gupnp(ns: &Netns, iface: &str, args: &[&str]) -> Output {
    let mut full = vec![
        interop_script("gupnp_peer.py"),
        "--iface".into(),
        iface.into(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.run(gi_python(), &refs, Duration::from_secs(30))
}

/// Start the GUPnP peer in the background.
pub fn gupnp_spawn(ns: &Netns, iface: &str, args: &[&str]) -> Proc {
    let mut full = vec![
        interop_script("gupnp_peer.py"),
        "--iface".into(),
        iface.into(),
    ];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.spawn("gupnp-peer", ns.command(gi_python(), &refs))
}

/// Run the async-upnp-client peer (tests/interop/aupnp_peer.py) to completion inside `ns`.
pub fn aupnp(ns: &Netns, args: &[&str]) -> Output {
    let mut full = vec![interop_script("aupnp_peer.py")];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.run(aupnp_python(), &refs, Duration::from_secs(30))
}

/// Start the async-upnp-client peer in the background.
pub fn aupnp_spawn(ns: &Netns, args: &[&str]) -> Proc {
    let mut full = vec![interop_script("aupnp_peer.py")];
    full.extend(args.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    ns.spawn("aupnp-peer", ns.command(aupnp_python(), &refs))
}

/// async-upnp-client's own CLI (`upnp-client ARGS`), run as `python -m async_upnp_client.cli`
/// so the script need not be on PATH.
pub fn upnp_client_command(ns: &Netns, args: &[&str]) -> Command {
    let mut full = vec!["-m", "async_upnp_client.cli"];
    full.extend_from_slice(args);
    ns.command(aupnp_python(), &full)
}

/// Parse every line of `out` that is a flat JSON object.
pub fn json_lines(out: &str) -> Vec<BTreeMap<String, String>> {
    out.lines().filter_map(parse_flat_json).collect()
}

/// Require a successful peer run; returns stdout.
pub fn peer_ok(output: &Output, what: &str, xenplug: &Xenplug) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({})\nstdout:\n{}\nstderr:\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        tail(&String::from_utf8_lossy(&output.stderr), 40),
        xenplug.report()
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Records of one `kind` from a peer's JSON-lines output.
pub fn records(out: &str, kind: &str) -> Vec<BTreeMap<String, String>> {
    json_lines(out)
        .into_iter()
        .filter(|r| r.get("kind").map(String::as_str) == Some(kind))
        .collect()
}

/// A field of a record, or "".
pub fn field<'a>(record: &'a BTreeMap<String, String>, key: &str) -> &'a str {
    record.get(key).map(String::as_str).unwrap_or("")
}

/// A header of an SSDP message printed by upnp-client, by case-insensitive name, or "".
pub fn hdr<'a>(record: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    record
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

/// Comma-separated list field as a set.
pub fn list_field(record: &BTreeMap<String, String>, key: &str) -> BTreeSet<String> {
    field(record, key)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Set of string slices, owned.
pub fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---- identity of a running xenplug, from its own description ------------------------------

/// Host UDN and (Domain UDN, VM UUID) pairs as the description states them.
#[derive(Clone, Debug)]
pub struct Identity {
    /// Root device UDN (`uuid:...`).
    pub host_udn: String,
    /// (Domain UDN, VM UUID), in description order.
    pub domains: Vec<(String, String)>,
    /// The description text.
    pub description: String,
}

impl Identity {
    /// Fetch `url` from `ns` and read the UDNs and vmUuids out of it.
    pub fn fetch(ns: &Netns, url: &str) -> Identity {
        let response = http_get(ns, url);
        assert_eq!(response.status, 200, "GET {url}: {response:?}");
        let description = response.body;
        let udns = xml_texts(&description, "UDN");
        let vms = xml_texts(&description, "vmUuid");
        assert!(!udns.is_empty(), "description has no UDN:\n{description}");
        assert_eq!(
            udns.len() - 1,
            vms.len(),
            "every embedded device needs exactly one vmUuid:\n{description}"
        );
        Identity {
            host_udn: udns[0].to_string(),
            domains: udns[1..]
                .iter()
                .zip(vms.iter())
                .map(|(u, v)| (u.to_string(), v.to_string()))
                .collect(),
            description,
        }
    }

    /// The Domain UDN of VM `vm`.
    pub fn domain_udn(&self, vm: &str) -> Option<&str> {
        self.domains
            .iter()
            .find(|(_, v)| v == vm)
            .map(|(u, _)| u.as_str())
    }

    /// The USNs of the root device and its Hypervisor service (3 + 1).
    pub fn root_usns(&self) -> BTreeSet<String> {
        let h = &self.host_udn;
        set_of(&[
            &format!("{h}::upnp:rootdevice"),
            h,
            &format!("{h}::{DEVICE_HYPERVISOR}"),
            &format!("{h}::{SERVICE_HYPERVISOR}"),
        ])
    }

    /// The USNs of one Domain (device uuid, device type, DomainControl service).
    pub fn domain_usns(udn: &str) -> BTreeSet<String> {
        set_of(&[
            udn,
            &format!("{udn}::{DEVICE_DOMAIN}"),
            &format!("{udn}::{SERVICE_DOMAIN_CONTROL}"),
        ])
    }

    /// The full announcement set (UDA 1.1 section 1.1.2: 3 + 2d + k messages).
    pub fn full_usns(&self) -> BTreeSet<String> {
        let mut all = self.root_usns();
        for (udn, _) in &self.domains {
            all.extend(Identity::domain_usns(udn));
        }
        all
    }
}

/// Number of UDP sockets bound to port 1900 inside `ns` (listener readiness).
pub fn udp_1900_sockets(ns: &Netns) -> usize {
    ns.ok("ss", &["-H", "-u", "-a", "-n", "sport = :1900"])
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// Start `upnp-client advertisements --bind ADDR` and wait until its socket is bound.
pub fn advertisements_listener(ns: &Netns, bind: &str) -> Proc {
    let before = udp_1900_sockets(ns);
    let proc = ns.spawn(
        "upnp-client-adv",
        upnp_client_command(ns, &["advertisements", "--bind", bind]),
    );
    let ready = poll_until(WAIT, || (udp_1900_sockets(ns) > before).then_some(()));
    assert!(
        ready.is_some(),
        "upnp-client advertisements never bound port 1900\n{}",
        proc.report()
    );
    proc
}

/// Start gssdp-discover listening (and searching) and wait until its socket is bound.
pub fn gssdp_listener(ns: &Netns, iface: &str, target: &str, seconds: u32, mode: &str) -> Proc {
    let before = udp_1900_sockets(ns);
    let proc = gssdp_discover(ns, iface, target, seconds, mode);
    let ready = poll_until(WAIT, || (udp_1900_sockets(ns) > before).then_some(()));
    assert!(
        ready.is_some(),
        "gssdp-discover never bound port 1900\n{}",
        proc.report()
    );
    proc
}

// ---- scenarios shared by the loopback and the LAN tests ------------------------------------

/// Where the device runs and where the two peers run.
pub struct Site<'a> {
    /// Namespace of xenplug.
    pub device: &'a Netns,
    /// xenplug's --iface.
    pub device_iface: &'a str,
    /// Address xenplug is expected to put in LOCATION.
    pub device_addr: String,
    /// Namespace of the first peer (gssdp-discover, GUPnP).
    pub peer: &'a Netns,
    /// Its interface.
    pub peer_iface: &'a str,
    /// Its address.
    pub peer_addr: String,
    /// Namespace of the second peer (async-upnp-client).
    pub peer2: &'a Netns,
    /// Its interface.
    pub peer2_iface: &'a str,
    /// Its address.
    pub peer2_addr: String,
    /// xenplug's `--allow-control`: the peers call mutating actions.
    pub allow_control: Vec<String>,
}

impl<'a> Site<'a> {
    /// Everything on the loopback interface of one namespace.
    pub fn loopback(ns: &'a Netns) -> Site<'a> {
        Site {
            device: ns,
            device_iface: "lo",
            device_addr: "127.0.0.1".to_string(),
            peer: ns,
            peer_iface: "lo",
            peer_addr: "127.0.0.1".to_string(),
            peer2: ns,
            peer2_iface: "lo",
            peer2_addr: "127.0.0.1".to_string(),
            // Loopback callers are the host itself: the default lets them.
            allow_control: Vec::new(),
        }
    }

    /// xenplug on host 0 of a LAN, the GUPnP/gssdp peer on host 1, the async-upnp-client peer
    /// on host 2 (or host 1 if the LAN has two hosts).
    pub fn lan(lan: &'a Lan) -> Site<'a> {
        let second = lan.hosts.len().min(3) - 1;
        Site {
            device: &lan.host(0).ns,
            device_iface: &lan.host(0).iface,
            device_addr: lan.host(0).addr.to_string(),
            peer: &lan.host(1).ns,
            peer_iface: &lan.host(1).iface,
            peer_addr: lan.host(1).addr.to_string(),
            peer2: &lan.host(second).ns,
            peer2_iface: &lan.host(second).iface,
            peer2_addr: lan.host(second).addr.to_string(),
            allow_control: vec![lan.network()],
        }
    }

    /// Start xenplug with the standard fixture and check where its description lives.
    pub fn start(&self, sim: &SimDir) -> Xenplug {
        let options = Options {
            allow_control: self.allow_control.clone(),
            ..Options::ifaces(&[self.device_iface])
        };
        let xenplug = Xenplug::start_with(self.device, sim, &options);
        let host = xenplug.base().trim_start_matches("http://").to_string();
        assert!(
            host.starts_with(&format!("{}:", self.device_addr)),
            "description URL {} should be on {} (the --iface address)\n{}",
            xenplug.url,
            self.device_addr,
            xenplug.report()
        );
        xenplug
    }
}

/// How long after a sim file appears its Domain must be announced: 1 s by contract, plus what
/// a peer on a loaded 2-core machine needs to print it and the harness needs to read it.
pub const ANNOUNCE_BUDGET: Duration = Duration::from_millis(1500);

/// ssdp:all from gssdp-discover and from upnp-client search both find exactly the full set,
/// every LOCATION being the description URL.
pub fn scenario_discover_all(site: &Site) {
    let sim = SimDir::standard("disc-all");
    let xenplug = site.start(&sim);
    let id = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(
        id.host_udn,
        format!("uuid:{HOST_UUID}"),
        "root UDN must be the host uuid"
    );
    assert_eq!(
        id.domains.len(),
        2,
        "two domains in the description:\n{}",
        id.description
    );
    let expected = id.full_usns();
    assert_eq!(
        expected.len(),
        3 + 2 * 2 + 3,
        "3 + 2d + k with d = 2, k = 3"
    );

    let gssdp = gssdp_discover(site.peer, site.peer_iface, "ssdp:all", 4, "available");
    let search = site.peer2.spawn(
        "upnp-client-search",
        upnp_client_command(
            site.peer2,
            &[
                "--timeout",
                "4",
                "search",
                "--bind",
                &site.peer2_addr,
                "--search_target",
                "ssdp:all",
            ],
        ),
    );
    let mut gssdp = gssdp;
    let mut search = search;
    assert!(
        gssdp.wait_exit(Duration::from_secs(15)).is_some(),
        "gssdp-discover did not end"
    );
    assert!(
        search.wait_exit(Duration::from_secs(15)).is_some(),
        "upnp-client search did not end"
    );

    let seen = parse_gssdp(&gssdp.stdout());
    let usns: BTreeSet<String> = seen
        .iter()
        .filter(|s| s.available)
        .map(|s| s.usn.clone())
        .collect();
    assert_eq!(
        usns,
        expected,
        "gssdp-discover ssdp:all\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    for s in &seen {
        assert_eq!(s.location, xenplug.url, "LOCATION of {}", s.usn);
    }

    let responses = json_lines(&search.stdout());
    let mut found = BTreeSet::new();
    for r in &responses {
        let usn = hdr(r, "USN").to_string();
        let st = hdr(r, "ST");
        assert!(expected.contains(&usn), "unexpected USN {usn} in {r:?}");
        // UDA 1.1 section 1.3.3: for ssdp:all, ST is the part of the USN after the UDN (or
        // the UDN itself).
        let suffix = usn.split_once("::").map(|(_, t)| t).unwrap_or(&usn);
        assert_eq!(st, suffix, "ST of the response for {usn}");
        let location = hdr(r, "LOCATION");
        assert_eq!(location, xenplug.url, "LOCATION of {usn}");
        assert!(
            r.keys().any(|k| k.eq_ignore_ascii_case("EXT")),
            "search response without EXT: {r:?}"
        );
        found.insert(usn);
    }
    assert_eq!(
        found,
        expected,
        "upnp-client search ssdp:all\n{}\n{}",
        search.report(),
        xenplug.report()
    );
}

/// Searches for one target each get exactly the matching USNs (run side by side).
pub fn scenario_discover_targets(site: &Site) {
    let sim = SimDir::standard("disc-st");
    let xenplug = site.start(&sim);
    let id = Identity::fetch(site.peer, &xenplug.url);
    let h = id.host_udn.clone();
    let (d1, _) = id.domains[0].clone();
    let (d2, _) = id.domains[1].clone();
    let cases: Vec<(String, BTreeSet<String>)> = vec![
        (
            "upnp:rootdevice".into(),
            set_of(&[&format!("{h}::upnp:rootdevice")]),
        ),
        (h.clone(), set_of(&[&h])),
        (
            DEVICE_HYPERVISOR.into(),
            set_of(&[&format!("{h}::{DEVICE_HYPERVISOR}")]),
        ),
        (
            SERVICE_HYPERVISOR.into(),
            set_of(&[&format!("{h}::{SERVICE_HYPERVISOR}")]),
        ),
        (
            DEVICE_DOMAIN.into(),
            set_of(&[
                &format!("{d1}::{DEVICE_DOMAIN}"),
                &format!("{d2}::{DEVICE_DOMAIN}"),
            ]),
        ),
        (
            SERVICE_DOMAIN_CONTROL.into(),
            set_of(&[
                &format!("{d1}::{SERVICE_DOMAIN_CONTROL}"),
                &format!("{d2}::{SERVICE_DOMAIN_CONTROL}"),
            ]),
        ),
        (d2.clone(), set_of(&[&d2])),
    ];
    let mut procs: Vec<(String, BTreeSet<String>, Proc)> = cases
        .into_iter()
        .map(|(target, want)| {
            let proc = gssdp_discover(site.peer, site.peer_iface, &target, 4, "available");
            (target, want, proc)
        })
        .collect();
    for (target, want, proc) in &mut procs {
        assert!(
            proc.wait_exit(Duration::from_secs(15)).is_some(),
            "gssdp-discover -t {target}"
        );
        let got = gssdp_usns(proc, true);
        assert_eq!(
            &got,
            want,
            "gssdp-discover -t {target}\n{}\n{}",
            proc.report(),
            xenplug.report()
        );
    }

    // async-upnp-client prints every response it gets, unfiltered: a device that answers a
    // specific search with unrelated USNs shows up here.
    let mut search = site.peer2.spawn(
        "upnp-client-search",
        upnp_client_command(
            site.peer2,
            &[
                "--timeout",
                "4",
                "search",
                "--bind",
                &site.peer2_addr,
                "--search_target",
                DEVICE_DOMAIN,
            ],
        ),
    );
    assert!(
        search.wait_exit(Duration::from_secs(15)).is_some(),
        "upnp-client search did not end"
    );
    let responses = json_lines(&search.stdout());
    let got: BTreeSet<String> = responses
        .iter()
        .map(|r| hdr(r, "USN").to_string())
        .collect();
    assert_eq!(
        got,
        set_of(&[
            &format!("{d1}::{DEVICE_DOMAIN}"),
            &format!("{d2}::{DEVICE_DOMAIN}")
        ]),
        "upnp-client search {DEVICE_DOMAIN}\n{}\n{}",
        search.report(),
        xenplug.report()
    );
    for r in &responses {
        assert_eq!(
            hdr(r, "ST"),
            DEVICE_DOMAIN,
            "ST must echo the search target: {r:?}"
        );
    }
}

/// Check one peer's device tree (records from `tree`) against the standard fixture.
pub fn check_tree(
    out: &str,
    peer: &str,
    xenplug: &Xenplug,
    strict_evented: bool,
) -> BTreeMap<String, String> {
    let context = || format!("{peer} tree:\n{out}\n{}", xenplug.report());
    assert!(
        !records(out, "end").is_empty(),
        "{peer}: tree incomplete\n{}",
        context()
    );
    let devices = records(out, "device");
    let services = records(out, "service");
    let roots: Vec<_> = devices
        .iter()
        .filter(|d| field(d, "parent").is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{peer}: one root device\n{}", context());
    let root = roots[0];
    assert_eq!(
        field(root, "udn"),
        format!("uuid:{HOST_UUID}"),
        "{peer}: root UDN\n{}",
        context()
    );
    assert_eq!(
        field(root, "type"),
        DEVICE_HYPERVISOR,
        "{peer}: root type\n{}",
        context()
    );

    let root_services: Vec<_> = services
        .iter()
        .filter(|s| field(s, "device") == field(root, "udn"))
        .collect();
    assert_eq!(
        root_services.len(),
        1,
        "{peer}: the root has one service\n{}",
        context()
    );
    let hs = root_services[0];
    assert_eq!(
        field(hs, "type"),
        SERVICE_HYPERVISOR,
        "{peer}\n{}",
        context()
    );
    // The contract's actions must all be there; more are allowed.
    assert!(
        set_of(HYPERVISOR_ACTIONS).is_subset(&list_field(hs, "actions")),
        "{peer}: Hypervisor actions\n{}",
        context()
    );
    assert!(
        list_field(hs, "variables").contains("VirtualMachineIds"),
        "{peer}: VirtualMachineIds\n{}",
        context()
    );
    if strict_evented {
        assert!(
            list_field(hs, "evented").contains("VirtualMachineIds"),
            "{peer}: VirtualMachineIds evented\n{}",
            context()
        );
    }
    assert!(
        field(hs, "control_url").ends_with("/control/hypervisor"),
        "{peer}: {hs:?}"
    );
    assert!(
        field(hs, "event_url").ends_with("/event/hypervisor"),
        "{peer}: {hs:?}"
    );
    assert!(
        field(hs, "scpd_url").ends_with("/scpd/Hypervisor.xml"),
        "{peer}: {hs:?}"
    );

    let domains: Vec<_> = devices
        .iter()
        .filter(|d| !field(d, "parent").is_empty())
        .collect();
    let vms: BTreeSet<String> = domains
        .iter()
        .map(|d| field(d, "vm_uuid").to_string())
        .collect();
    assert_eq!(
        vms,
        set_of(&[VM_WEB, VM_DB]),
        "{peer}: one Domain per sim file\n{}",
        context()
    );
    let mut udns = BTreeMap::new();
    for dom in domains {
        let vm = field(dom, "vm_uuid");
        let udn = field(dom, "udn");
        assert_eq!(field(dom, "type"), DEVICE_DOMAIN, "{peer}\n{}", context());
        assert_eq!(
            field(dom, "parent"),
            field(root, "udn"),
            "{peer}\n{}",
            context()
        );
        assert!(
            udn.starts_with("uuid:") && udn.len() == 41,
            "{peer}: Domain UDN {udn:?}"
        );
        assert_ne!(
            udn,
            format!("uuid:{vm}"),
            "{peer}: Domain UDN must not be the VM uuid"
        );
        let own: Vec<_> = services
            .iter()
            .filter(|s| field(s, "device") == udn)
            .collect();
        assert_eq!(
            own.len(),
            1,
            "{peer}: Domain {vm} has one service\n{}",
            context()
        );
        let ds = own[0];
        assert_eq!(
            field(ds, "type"),
            SERVICE_DOMAIN_CONTROL,
            "{peer}\n{}",
            context()
        );
        assert!(
            set_of(DOMAIN_ACTIONS).is_subset(&list_field(ds, "actions")),
            "{peer}: DomainControl actions\n{}",
            context()
        );
        assert!(
            list_field(ds, "variables").contains("State"),
            "{peer}: State\n{}",
            context()
        );
        if strict_evented {
            assert!(
                list_field(ds, "evented").contains("State"),
                "{peer}: State evented\n{}",
                context()
            );
        }
        assert!(
            field(ds, "control_url").ends_with(&format!("/control/domain/{vm}")),
            "{peer}: {ds:?}"
        );
        assert!(
            field(ds, "event_url").ends_with(&format!("/event/domain/{vm}")),
            "{peer}: {ds:?}"
        );
        assert!(
            field(ds, "scpd_url").ends_with("/scpd/DomainControl.xml"),
            "{peer}: {ds:?}"
        );
        udns.insert(vm.to_string(), udn.to_string());
    }
    udns
}

/// GUPnP (found by SSDP) and async-upnp-client (from the URL) both build the full tree and
/// agree on it.
pub fn scenario_descriptions(site: &Site) {
    let sim = SimDir::standard("desc");
    let xenplug = site.start(&sim);
    let g = gupnp(
        site.peer,
        site.peer_iface,
        &[
            "--timeout",
            "15",
            "--udn",
            &format!("uuid:{HOST_UUID}"),
            "tree",
        ],
    );
    let g = peer_ok(&g, "GUPnP tree", &xenplug);
    let a = aupnp(site.peer2, &["--timeout", "15", "tree", &xenplug.url]);
    let a = peer_ok(&a, "async-upnp-client tree", &xenplug);
    let from_gupnp = check_tree(&g, "GUPnP", &xenplug, false);
    let from_aupnp = check_tree(&a, "async-upnp-client", &xenplug, true);
    assert_eq!(
        from_gupnp, from_aupnp,
        "both peers see the same Domain UDNs"
    );
    let id = Identity::fetch(site.peer, &xenplug.url);
    for (vm, udn) in &from_gupnp {
        assert_eq!(
            id.domain_udn(vm),
            Some(udn.as_str()),
            "description vs peers"
        );
    }
    let location = records(&g, "device")
        .into_iter()
        .find(|d| field(d, "parent").is_empty());
    assert_eq!(
        location.map(|d| field(&d, "location").to_string()),
        Some(xenplug.url.clone())
    );
}

/// Wait for a subscriber to print an event `var=value`, counting from record `from`.
pub fn expect_event(proc: &Proc, from: usize, var: &str, value: &str, xenplug: &Xenplug) -> usize {
    let got = proc.wait_stdout(WAIT, |out| {
        records(out, "event")
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, r)| field(r, "var") == var && field(r, "value") == value)
            .map(|(i, _)| i + 1)
    });
    got.unwrap_or_else(|| {
        panic!(
            "no {var}={value} event (after #{from})\n{}\n{}",
            proc.report(),
            xenplug.report()
        )
    })
}

/// What to suspect when GUPnP misses an initial event that async-upnp-client gets.
pub const GUPNP_INITIAL_EVENT_HINT: &str = "hint: GUPnP ignores (answers 200 and drops) a NOTIFY \
     that reaches it before it has processed the SUBSCRIBE response and stored the SID \
     (gupnp-service-proxy.c, server_handler: priv->sid == NULL). Writing the response first is \
     not enough: the device must give the subscriber time before sending the SEQ 0 event.";

/// Wait for GUPnP's initial event (`var=value`, the first event record).
pub fn expect_gupnp_initial_event(proc: &Proc, var: &str, value: &str, xenplug: &Xenplug) -> usize {
    let got = proc.wait_stdout(WAIT, |out| {
        let events = records(out, "event");
        events
            .first()
            .filter(|r| field(r, "var") == var && field(r, "value") == value)
            .map(|_| 1)
    });
    got.unwrap_or_else(|| {
        panic!(
            "GUPnP: no initial {var}={value} event within {WAIT:?}\n{GUPNP_INITIAL_EVENT_HINT}\n{}\n{}",
            proc.report(),
            xenplug.report()
        )
    })
}

/// Call an action through a peer's `call` command; returns the out record.
pub fn call_ok(output: Output, what: &str, xenplug: &Xenplug) -> BTreeMap<String, String> {
    let out = peer_ok(&output, what, xenplug);
    records(&out, "out")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{what}: no result\n{out}"))
}

/// GetState, Pause and Resume through both peers change the sim file, and both peers'
/// subscriptions get the State events (initial value first).
pub fn scenario_actions_and_events(site: &Site) {
    let sim = SimDir::standard("act");
    let xenplug = site.start(&sim);
    let udn = format!("uuid:{HOST_UUID}");
    let g_events = gupnp_spawn(
        site.peer,
        site.peer_iface,
        &[
            "--timeout",
            "40",
            "--udn",
            &udn,
            "events",
            "--vm",
            VM_WEB,
            "--var",
            "State",
            "--count",
            "3",
        ],
    );
    let a_events = aupnp_spawn(
        site.peer2,
        &[
            "--timeout",
            "40",
            "events",
            &xenplug.url,
            "--bind",
            &site.peer2_addr,
            "--vm",
            VM_WEB,
            "--count",
            "3",
        ],
    );
    // UDA 1.1 section 4.1.2: the initial event carries every evented variable.
    let g_at = expect_gupnp_initial_event(&g_events, "State", "running", &xenplug);
    let a_at = expect_event(&a_events, 0, "State", "running", &xenplug);

    let state = call_ok(
        gupnp(
            site.peer,
            site.peer_iface,
            &[
                "--udn", &udn, "call", "--vm", VM_WEB, "--action", "GetState", "--out", "State",
            ],
        ),
        "GUPnP GetState",
        &xenplug,
    );
    assert_eq!(field(&state, "State"), "running");

    call_ok(
        aupnp(
            site.peer2,
            &["call", &xenplug.url, "--vm", VM_WEB, "--action", "Pause"],
        ),
        "async-upnp-client Pause",
        &xenplug,
    );
    sim.expect_state("web", "paused", Duration::from_secs(2));
    assert_eq!(
        sim.read_domain("db").get("state").map(String::as_str),
        Some("running"),
        "db untouched"
    );
    let g_at = expect_event(&g_events, g_at, "State", "paused", &xenplug);
    let a_at = expect_event(&a_events, a_at, "State", "paused", &xenplug);

    let state = call_ok(
        aupnp(
            site.peer2,
            &["call", &xenplug.url, "--vm", VM_WEB, "--action", "GetState"],
        ),
        "async-upnp-client GetState",
        &xenplug,
    );
    assert_eq!(field(&state, "State"), "paused");

    call_ok(
        gupnp(
            site.peer,
            site.peer_iface,
            &["--udn", &udn, "call", "--vm", VM_WEB, "--action", "Resume"],
        ),
        "GUPnP Resume",
        &xenplug,
    );
    sim.expect_state("web", "running", Duration::from_secs(2));
    expect_event(&g_events, g_at, "State", "running", &xenplug);
    expect_event(&a_events, a_at, "State", "running", &xenplug);

    let mut g_events = g_events;
    let mut a_events = a_events;
    let g_status = g_events.wait_exit(WAIT);
    let a_status = a_events.wait_exit(WAIT);
    assert!(
        g_status.is_some_and(|s| s.success()),
        "GUPnP subscriber: {g_status:?}\n{}",
        g_events.report()
    );
    assert!(
        a_status.is_some_and(|s| s.success()),
        "async-upnp-client subscriber (unsubscribe): {a_status:?}\n{}",
        a_events.report()
    );
}

/// SIGTERM: ssdp:byebye for every USN (seen by gssdp-discover and upnp-client), exit 0.
pub fn scenario_byebye(site: &Site) {
    let sim = SimDir::standard("bye");
    let adv = advertisements_listener(site.peer2, &site.peer2_addr);
    let gssdp = gssdp_listener(site.peer, site.peer_iface, "ssdp:all", 60, "all");
    let mut xenplug = site.start(&sim);
    let id = Identity::fetch(site.peer, &xenplug.url);
    let expected = id.full_usns();

    let alive = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .filter(|s| s.available)
            .map(|s| s.usn)
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        alive.is_some(),
        "gssdp-discover never saw the full set\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    let notified = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        notified.is_some(),
        "upnp-client advertisements never saw ssdp:alive for the full set at start\n{}\n{}",
        adv.report(),
        xenplug.report()
    );

    // Some stacks send byebye before their first alive; only what follows SIGTERM counts.
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let adv_mark = json_lines(&adv.stdout()).len();
    let status = xenplug.terminate(WAIT);
    assert!(
        status.is_some(),
        "xenplug did not exit within {WAIT:?} of SIGTERM\n{}",
        xenplug.report()
    );
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "exit status after SIGTERM\n{}",
        xenplug.report()
    );

    let gone = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .skip(gssdp_mark)
            .filter(|s| !s.available)
            .map(|s| s.usn)
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        gone.is_some(),
        "gssdp-discover did not see byebye for every USN\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    let byebye = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .skip(adv_mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:byebye")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        (got == expected).then_some(())
    });
    assert!(
        byebye.is_some(),
        "upnp-client did not see byebye for every USN\n{}\n{}",
        adv.report(),
        xenplug.report()
    );
}

/// A new sim file is announced (alive for the new Domain alone, new CONFIGID) within 1 s; its
/// removal sends byebye for that Domain alone.
pub fn scenario_domain_added_and_removed(site: &Site) {
    let sim = SimDir::standard("add");
    let adv = advertisements_listener(site.peer2, &site.peer2_addr);
    let gssdp = gssdp_listener(site.peer, site.peer_iface, "ssdp:all", 60, "all");
    let xenplug = site.start(&sim);
    let before = Identity::fetch(site.peer, &xenplug.url);
    let full = before.full_usns();
    let settled = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .filter(|s| s.available)
            .map(|s| s.usn)
            .collect();
        (got == full).then_some(())
    });
    assert!(
        settled.is_some(),
        "gssdp-discover never saw the full set\n{}\n{}",
        gssdp.report(),
        xenplug.report()
    );
    // Let the start-up repeat (UDA 1.1 recommends sending the set more than once) pass.
    sleep(Duration::from_millis(500));
    let adv_mark = json_lines(&adv.stdout()).len();
    let gssdp_mark = parse_gssdp(&gssdp.stdout()).len();
    let old_config = json_lines(&adv.stdout())
        .iter()
        .map(|r| hdr(r, "CONFIGID.UPNP.ORG").to_string())
        .find(|c| !c.is_empty())
        .unwrap_or_default();

    let t0 = Instant::now();
    sim.write_domain(&Domain::new(VM_LATE, "late", "running"));
    let new_udn = gssdp.wait_stdout(Duration::from_secs(5), |out| {
        parse_gssdp(out).into_iter().skip(gssdp_mark).find_map(|s| {
            (s.available && s.usn.ends_with(&format!("::{DEVICE_DOMAIN}"))).then(|| {
                s.usn
                    .trim_end_matches(&format!("::{DEVICE_DOMAIN}"))
                    .to_string()
            })
        })
    });
    let elapsed = t0.elapsed();
    let Some(new_udn) = new_udn else {
        panic!(
            "no new Domain announced within 5 s of a new sim file\n{}\n{}",
            gssdp.report(),
            xenplug.report()
        );
    };
    assert!(
        elapsed <= ANNOUNCE_BUDGET,
        "new Domain announced {elapsed:?} after the sim file appeared (contract: 1 s)\n{}",
        xenplug.report()
    );
    let after = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(
        after.domains.len(),
        3,
        "description after adding:\n{}",
        after.description
    );
    assert_eq!(
        after.domain_udn(VM_LATE),
        Some(new_udn.as_str()),
        "new Domain's UDN in the description"
    );
    let new_usns = Identity::domain_usns(&new_udn);
    let announced = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .skip(adv_mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        new_usns.is_subset(&got).then_some(got)
    });
    let Some(announced) = announced else {
        panic!(
            "upnp-client did not see alive for {new_usns:?}\n{}\n{}",
            adv.report(),
            xenplug.report()
        );
    };
    assert_eq!(
        announced, new_usns,
        "only the new Domain is announced (DESIGN: nothing else re-announced)"
    );
    let new_config = json_lines(&adv.stdout())
        .iter()
        .skip(adv_mark)
        .map(|r| hdr(r, "CONFIGID.UPNP.ORG").to_string())
        .find(|c| !c.is_empty())
        .unwrap_or_default();
    assert_ne!(
        new_config, old_config,
        "CONFIGID.UPNP.ORG must change when a Domain appears"
    );

    let adv_mark = json_lines(&adv.stdout()).len();
    sim.remove_domain("late");
    let byebye = adv.wait_stdout(Duration::from_secs(5), |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .skip(adv_mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:byebye")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        new_usns.is_subset(&got).then_some(got)
    });
    let Some(byebye) = byebye else {
        panic!(
            "no byebye for the removed Domain\n{}\n{}",
            adv.report(),
            xenplug.report()
        );
    };
    assert_eq!(byebye, new_usns, "byebye for the removed Domain alone");
    let gone = gssdp.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = parse_gssdp(out)
            .into_iter()
            .skip(gssdp_mark)
            .filter(|s| !s.available)
            .map(|s| s.usn)
            .collect();
        (got == new_usns).then_some(())
    });
    assert!(
        gone.is_some(),
        "gssdp-discover: unavailable set should be the removed Domain's\n{}",
        gssdp.report()
    );
    let last = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(
        last.domains.len(),
        2,
        "description after removing:\n{}",
        last.description
    );
}

/// Waits until upnp-client (records after `mark`) has seen ssdp:alive for every USN of `full`
/// with a CONFIGID other than `old_config`, then checks the alives not carrying `old_config`:
/// nothing but `full`, one CONFIGID. Returns that CONFIGID.
pub fn expect_alive_round(
    adv: &Proc,
    mark: usize,
    old_config: &str,
    full: &BTreeSet<String>,
    xenplug: &Xenplug,
) -> u64 {
    let alive_since = |out: &str| -> Vec<(String, String)> {
        json_lines(out)
            .iter()
            .skip(mark)
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| {
                (
                    hdr(r, "USN").to_string(),
                    hdr(r, "CONFIGID.UPNP.ORG").to_string(),
                )
            })
            .collect()
    };
    let round = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = alive_since(out)
            .into_iter()
            .filter(|(_, config)| config != old_config)
            .map(|(usn, _)| usn)
            .collect();
        full.is_subset(&got).then_some(())
    });
    assert!(
        round.is_some(),
        "upnp-client did not see ssdp:alive with a new CONFIGID (old {old_config:?}) for every \
         USN of {full:?}\n{}\n{}",
        adv.report(),
        xenplug.report()
    );
    // The repeat of an earlier round may still arrive after `mark`, with the old CONFIGID.
    let seen: Vec<(String, String)> = alive_since(&adv.stdout())
        .into_iter()
        .filter(|(_, config)| config != old_config)
        .collect();
    let usns: BTreeSet<String> = seen.iter().map(|(usn, _)| usn.clone()).collect();
    assert_eq!(
        &usns, full,
        "the new CONFIGID is announced for exactly these targets"
    );
    let configs: BTreeSet<&str> = seen.iter().map(|(_, config)| config.as_str()).collect();
    assert_eq!(
        configs.len(),
        1,
        "every alive since the change carries the old or the one new CONFIGID: {configs:?}"
    );
    let config = configs.into_iter().next().unwrap_or_default();
    config
        .parse()
        .unwrap_or_else(|_| panic!("CONFIGID.UPNP.ORG {config:?} is not a number"))
}

/// A Domain renamed in its sim file (same VM, same UDN, same set of devices and services):
/// CONFIGID moves and the root device is announced again with it (its own targets only), so
/// a control point learns that its cached description is stale without waiting for the
/// periodic refresh.
pub fn scenario_domain_renamed(site: &Site) {
    let sim = SimDir::standard("rename");
    let adv = advertisements_listener(site.peer2, &site.peer2_addr);
    let xenplug = site.start(&sim);
    let before = Identity::fetch(site.peer, &xenplug.url);
    let full = before.full_usns();
    let old_config = config_id(&before.description)
        .expect("configId in the description")
        .to_string();
    let heard = adv.wait_stdout(WAIT, |out| {
        let got: BTreeSet<String> = json_lines(out)
            .iter()
            .filter(|r| hdr(r, "NTS") == "ssdp:alive")
            .map(|r| hdr(r, "USN").to_string())
            .collect();
        full.is_subset(&got).then_some(())
    });
    assert!(
        heard.is_some(),
        "upnp-client never saw the start-up announcement\n{}\n{}",
        adv.report(),
        xenplug.report()
    );
    // Let the start-up repeat pass.
    sleep(Duration::from_millis(500));
    let mark = json_lines(&adv.stdout()).len();

    let t0 = Instant::now();
    sim.write_domain_as("web", &Domain::new(VM_WEB, "web-renamed", "running"));
    let root = before.root_usns();
    let new_config = expect_alive_round(&adv, mark, &old_config, &root, &xenplug);
    let elapsed = t0.elapsed();
    eprintln!("timing: rename announced (root alive, new CONFIGID) {elapsed:?} after the sim file changed");
    assert!(
        elapsed <= ANNOUNCE_BUDGET,
        "rename announced {elapsed:?} after the sim file changed (budget {ANNOUNCE_BUDGET:?})\n{}",
        xenplug.report()
    );
    let after = Identity::fetch(site.peer, &xenplug.url);
    assert_eq!(after.full_usns(), full, "a rename keeps every UDN");
    assert_eq!(config_id(&after.description), Some(new_config));
    assert!(
        xml_texts(&after.description, "friendlyName").contains(&"web-renamed"),
        "the description names the Domain web-renamed:\n{}",
        after.description
    );
}

// ---- the VM advertiser (`xenplug advertise vm`) ---------------------------------------------

/// VirtualMachine root device type (`advertise vm`).
pub const DEVICE_VM: &str = "urn:xenplug-org:device:VirtualMachine:1";
/// The VM UUID the VM tests give with `--uuid`.
pub const VM_SELF: &str = "7d1e2f30-aaaa-4b5c-9d8e-0000000000b1";

/// Default service type of an owner service folder `name`.
pub fn vm_service_type(name: &str) -> String {
    format!("urn:xenplug-org:service:{name}:1")
}

/// Default device type of an owner subdevice folder `name`.
pub fn vm_device_type(name: &str) -> String {
    format!("urn:xenplug-org:device:{name}:1")
}

impl Proc {
    /// Paths of the files holding its stdout and stderr, for failure messages.
    pub fn log_paths(&self) -> String {
        format!(
            "{} (stdout), {} (stderr)",
            self.stdout_path.display(),
            self.stderr_path.display()
        )
    }
}

/// Options for starting `xenplug advertise vm`.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// `--iface` (always explicit).
    pub iface: String,
    /// `--uuid`; `None` leaves it out (the guest's own sources are read).
    pub uuid: Option<String>,
    /// `--services`.
    pub services: PathBuf,
    /// `--handler-timeout`, if set.
    pub handler_timeout: Option<u64>,
    /// `--name`, if set.
    pub name: Option<String>,
    /// `--max-age`, if set.
    pub max_age: Option<u32>,
}

impl VmOptions {
    /// `--iface IFACE --uuid VM_SELF --services DIR`.
    pub fn new(iface: &str, services: &Path) -> VmOptions {
        VmOptions {
            iface: iface.to_string(),
            uuid: Some(VM_SELF.to_string()),
            services: services.to_path_buf(),
            handler_timeout: None,
            name: None,
            max_age: None,
        }
    }

    /// The arguments after `xenplug`, with `--state-dir state`.
    fn args(&self, state: &Path) -> Vec<String> {
        let mut args: Vec<String> = ["advertise", "vm", "--iface", &self.iface]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(uuid) = &self.uuid {
            args.extend(["--uuid".to_string(), uuid.clone()]);
        }
        args.extend([
            "--services".to_string(),
            self.services.display().to_string(),
        ]);
        args.extend(["--state-dir".to_string(), state.display().to_string()]);
        if let Some(seconds) = self.handler_timeout {
            args.extend(["--handler-timeout".to_string(), seconds.to_string()]);
        }
        if let Some(name) = &self.name {
            args.extend(["--name".to_string(), name.clone()]);
        }
        if let Some(max_age) = self.max_age {
            args.extend(["--max-age".to_string(), max_age.to_string()]);
        }
        args
    }
}

impl Xenplug {
    /// Start `xenplug advertise vm` in `ns`; waits for the `description at` line.
    pub fn start_vm(ns: &Netns, options: &VmOptions) -> Xenplug {
        let state = TempDir::new("vm-state");
        let args = options.args(state.path());
        Xenplug::launch(ns, &xenplug_bin(), &args, state)
    }

    /// Where its log is, plus the tail of it, for failure messages.
    pub fn report_with_path(&self) -> String {
        format!("xenplug log: {}\n{}", self.proc.log_paths(), self.report())
    }
}

/// Run `xenplug advertise vm` to completion (bounded by [`WAIT`]) with the guest's UUID
/// sources hidden: inside a private mount namespace, /sys/hypervisor/uuid and
/// /sys/class/dmi/id/product_uuid are covered by /dev/null where they exist, so the result
/// is the same on a Xen guest, a VM with SMBIOS, or bare metal.
pub fn run_vm_without_identity(ns: &Netns, options: &VmOptions) -> Output {
    let state = TempDir::new("vm-state");
    let mut args: Vec<String> = vec![
        "-m".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        "for f in /sys/hypervisor/uuid /sys/class/dmi/id/product_uuid; do \
         if [ -e \"$f\" ]; then mount --bind /dev/null \"$f\" || exit 97; fi; done; \
         exec \"$@\""
            .into(),
        "sh".into(),
        xenplug_bin().display().to_string(),
    ];
    args.extend(options.args(state.path()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = ns.command("unshare", &refs);
    command.env("XENPLUG_LOG", "debug");
    run_bounded(command, WAIT, "xenplug advertise vm (identity hidden)")
}

/// One service folder of an owner's services directory.
#[derive(Clone, Debug)]
pub struct ServiceFiles {
    /// `scpd.xml`.
    pub scpd: String,
    /// `handler` (a script with its `#!` line).
    pub handler: String,
    /// Mode of `handler`.
    pub handler_mode: u32,
    /// `state/<Variable>` files: (variable, content).
    pub state: Vec<(String, String)>,
}

impl ServiceFiles {
    /// An SCPD and an executable handler, no state files.
    pub fn new(scpd: &str, handler: &str) -> ServiceFiles {
        ServiceFiles {
            scpd: scpd.to_string(),
            handler: handler.to_string(),
            handler_mode: 0o755,
            state: Vec::new(),
        }
    }

    /// With a state file.
    pub fn state(mut self, variable: &str, value: &str) -> ServiceFiles {
        self.state.push((variable.to_string(), value.to_string()));
        self
    }

    /// Write the folder at `dir` (created).
    fn write(&self, dir: &Path) {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        fs::write(dir.join("scpd.xml"), &self.scpd).expect("write scpd.xml");
        let handler = dir.join("handler");
        fs::write(&handler, &self.handler).expect("write handler");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&handler, fs::Permissions::from_mode(self.handler_mode))
            .expect("chmod handler");
        if !self.state.is_empty() {
            fs::create_dir_all(dir.join("state")).expect("create state/");
            for (variable, value) in &self.state {
                fs::write(dir.join("state").join(variable), value).expect("write state file");
            }
        }
    }
}

/// A small SCPD builder: every argument gets its own string `A_ARG_TYPE_<Arg>` variable.
#[derive(Clone, Debug, Default)]
pub struct Scpd {
    actions: Vec<(String, Vec<String>, Vec<String>)>,
    evented: Vec<String>,
}

impl Scpd {
    /// No actions, no variables.
    pub fn new() -> Scpd {
        Scpd::default()
    }

    /// An action with in- and out-arguments.
    pub fn action(mut self, name: &str, ins: &[&str], outs: &[&str]) -> Scpd {
        self.actions.push((
            name.to_string(),
            ins.iter().map(|s| s.to_string()).collect(),
            outs.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// An evented string variable.
    pub fn evented(mut self, variable: &str) -> Scpd {
        self.evented.push(variable.to_string());
        self
    }

    /// The document.
    pub fn xml(&self) -> String {
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\n\
             <specVersion><major>1</major><minor>1</minor></specVersion>\n<actionList>\n",
        );
        let mut arg_vars = BTreeSet::new();
        for (name, ins, outs) in &self.actions {
            xml.push_str(&format!("<action><name>{name}</name><argumentList>"));
            for (direction, args) in [("in", ins), ("out", outs)] {
                for arg in args {
                    xml.push_str(&format!(
                        "<argument><name>{arg}</name><direction>{direction}</direction>\
                         <relatedStateVariable>A_ARG_TYPE_{arg}</relatedStateVariable></argument>"
                    ));
                    arg_vars.insert(arg.clone());
                }
            }
            xml.push_str("</argumentList></action>\n");
        }
        xml.push_str("</actionList>\n<serviceStateTable>\n");
        for variable in &self.evented {
            xml.push_str(&format!(
                "<stateVariable sendEvents=\"yes\"><name>{variable}</name>\
                 <dataType>string</dataType></stateVariable>\n"
            ));
        }
        for arg in arg_vars {
            xml.push_str(&format!(
                "<stateVariable sendEvents=\"no\"><name>A_ARG_TYPE_{arg}</name>\
                 <dataType>string</dataType></stateVariable>\n"
            ));
        }
        xml.push_str("</serviceStateTable>\n</scpd>\n");
        xml
    }
}

/// An owner's `--services` directory. Folders are added the way a careful owner (or a
/// package manager) does it: written under a staging folder on the same file system, then
/// renamed into place, so the advertiser never sees half a service.
pub struct ServicesDir {
    dir: TempDir,
}

impl ServicesDir {
    /// An empty services directory.
    pub fn new(tag: &str) -> ServicesDir {
        let dir = TempDir::new(&format!("{tag}-svc"));
        fs::create_dir_all(dir.path().join("services")).expect("create services/");
        fs::create_dir_all(dir.path().join("staging")).expect("create staging/");
        ServicesDir { dir }
    }

    /// The directory given as `--services`.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("services")
    }

    /// A copy of the example services shipped in packaging/services.
    pub fn packaging_examples(tag: &str) -> ServicesDir {
        let services = ServicesDir::new(tag);
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/services");
        copy_tree(&source, &services.path());
        services
    }

    fn staged(&self) -> PathBuf {
        self.dir.path().join("staging").join(unique().to_string())
    }

    /// Add service folder `name` atomically.
    pub fn add_service(&self, name: &str, files: &ServiceFiles) {
        let staged = self.staged();
        files.write(&staged);
        let target = self.path().join(name);
        fs::rename(&staged, &target)
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", target.display()));
    }

    /// Add embedded device folder `devices/<device>` with these services, atomically.
    pub fn add_device(&self, device: &str, services: &[(&str, &ServiceFiles)]) {
        let staged = self.staged();
        fs::create_dir_all(&staged).expect("create staged device");
        for (name, files) in services {
            files.write(&staged.join(name));
        }
        let devices = self.path().join("devices");
        fs::create_dir_all(&devices).expect("create devices/");
        let target = devices.join(device);
        fs::rename(&staged, &target)
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", target.display()));
    }

    /// Remove a folder (`Name` or `devices/Dev`) atomically: renamed out, then deleted.
    pub fn remove(&self, relative: &str) {
        let staged = self.staged();
        fs::rename(self.path().join(relative), &staged)
            .unwrap_or_else(|e| panic!("rename {relative} out of the services dir: {e}"));
        fs::remove_dir_all(&staged).expect("delete removed service");
    }

    /// Path of `state/<variable>` of service folder `service` (`Name` or `devices/Dev/Name`).
    pub fn state_path(&self, service: &str, variable: &str) -> PathBuf {
        self.path().join(service).join("state").join(variable)
    }

    /// Rewrite a state file in place (truncate and write, as `echo v >state/Var` does).
    pub fn write_state_in_place(&self, service: &str, variable: &str, value: &str) {
        let path = self.state_path(service, variable);
        fs::write(&path, value).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Replace a state file atomically (write a temporary file, rename it over).
    pub fn write_state_atomic(&self, service: &str, variable: &str, value: &str) {
        let path = self.state_path(service, variable);
        let tmp = self.staged();
        fs::write(&tmp, value).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename {}: {e}", path.display()));
    }
}

/// Copy a directory tree, keeping file modes.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            // fs::copy copies the permission bits too.
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// The `configId` attribute of a description's `<root>` (UDA 1.1 section 2.3).
pub fn config_id(description: &str) -> Option<u64> {
    let start = description.find("configId=\"")? + "configId=\"".len();
    let rest = &description[start..];
    rest[..rest.find('"')?].parse().ok()
}

/// The GUPnP peer against the VirtualMachine root device `uuid:<vm>`.
pub fn vm_gupnp(ns: &Netns, iface: &str, vm: &str, args: &[&str]) -> Output {
    let udn = format!("uuid:{vm}");
    let mut full = vec!["--device-type", DEVICE_VM, "--udn", &udn];
    full.extend_from_slice(args);
    gupnp(ns, iface, &full)
}

/// Start the GUPnP peer against the VirtualMachine root device `uuid:<vm>`.
pub fn vm_gupnp_spawn(ns: &Netns, iface: &str, vm: &str, args: &[&str]) -> Proc {
    let udn = format!("uuid:{vm}");
    let mut full = vec!["--device-type", DEVICE_VM, "--udn", &udn];
    full.extend_from_slice(args);
    gupnp_spawn(ns, iface, &full)
}

/// A peer's `call` that must fail with a UPnP error (exit status 4); returns the error record
/// (`code`, `message`, and from async-upnp-client `description`).
pub fn call_err(output: Output, what: &str, xenplug: &Xenplug) -> BTreeMap<String, String> {
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(
        output.status.code(),
        Some(4),
        "{what}: expected a UPnP error (peer exit status 4), got {}\nstdout:\n{out}\nstderr:\n{}\n{}",
        output.status,
        tail(&String::from_utf8_lossy(&output.stderr), 40),
        xenplug.report_with_path()
    );
    records(&out, "error")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("{what}: no error record\n{out}"))
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

/// Command line of process `pid` (empty if it is gone), for failure messages.
pub fn proc_cmdline(pid: u32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .split('\0')
                .collect::<Vec<_>>()
                .join(" ")
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// State letter (`R`, `S`, `Z`, ...) and parent pid of process `pid` from /proc/PID/stat,
/// or None if it is gone.
pub fn proc_state(pid: u32) -> Option<(char, u32)> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so look after the
    // last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` still runs, or is a zombie that `reaper` should have reaped: an orphan's
/// zombie belongs to init (or a subreaper), whose reaping pace is not ours to test.
pub fn lingers(pid: u32, reaper: u32) -> bool {
    match proc_state(pid) {
        None => false,
        Some(('Z', ppid)) => ppid == reaper,
        Some(_) => true,
    }
}

// ---- the tracker (`xenplug track`) ------------------------------------------------------------
//
// A topology of three LANs: `mgmt` (provider: two simulated hypervisors), `acme` and `beta`
// (tenants: VM advertisers), and a tracker namespace with one leg in each (eth0, eth1, eth2 on
// 10.99.1.2, 10.99.2.2, 10.99.3.2). The tracker namespace has no multicast route at all: a
// tracker that does not pin each search to its interface (IP_MULTICAST_IF) gets ENETUNREACH
// instead of quietly searching on the wrong network.

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
];
/// First line of every repository record.
pub const REPO_FIRST_LINE: &str = "# xenplug-repo 1";
/// First line of the journal.
pub const JOURNAL_FIRST_LINE: &str = "# xenplug-journal 1";

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

// ---- a small strict JSON reader ---------------------------------------------------------------

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// null
    Null,
    /// true / false
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parse a whole document (trailing white space allowed, nothing else).
    pub fn parse(text: &str) -> Result<Json, String> {
        let bytes = text.as_bytes();
        let mut at = 0;
        let value = json_value(bytes, &mut at, 0)?;
        json_ws(bytes, &mut at);
        if at != bytes.len() {
            return Err(format!("trailing bytes at {at}"));
        }
        Ok(value)
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as u64, if this is a non-negative integer.
    pub fn u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// The elements, if this is an array (else empty).
    pub fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }

    /// String member `key`, or "".
    pub fn s(&self, key: &str) -> &str {
        self.get(key).and_then(Json::str).unwrap_or("")
    }

    /// Array member `key` (empty if missing).
    pub fn list(&self, key: &str) -> &[Json] {
        self.get(key).map(Json::items).unwrap_or(&[])
    }
}

fn json_ws(bytes: &[u8], at: &mut usize) {
    while bytes
        .get(*at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        *at += 1;
    }
}

fn json_value(bytes: &[u8], at: &mut usize, depth: usize) -> Result<Json, String> {
    if depth > 64 {
        return Err("nested too deeply".into());
    }
    json_ws(bytes, at);
    let start = *at;
    match bytes.get(*at) {
        None => Err("unexpected end".into()),
        Some(b'{') => {
            *at += 1;
            let mut members = Vec::new();
            json_ws(bytes, at);
            if bytes.get(*at) == Some(&b'}') {
                *at += 1;
                return Ok(Json::Object(members));
            }
            loop {
                json_ws(bytes, at);
                let key = json_string(bytes, at)?;
                json_ws(bytes, at);
                if bytes.get(*at) != Some(&b':') {
                    return Err(format!("expected ':' at {}", *at));
                }
                *at += 1;
                let value = json_value(bytes, at, depth + 1)?;
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(format!("duplicate key {key:?}"));
                }
                members.push((key, value));
                json_ws(bytes, at);
                match bytes.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b'}') => {
                        *at += 1;
                        return Ok(Json::Object(members));
                    }
                    _ => return Err(format!("expected ',' or '}}' at {}", *at)),
                }
            }
        }
        Some(b'[') => {
            *at += 1;
            let mut items = Vec::new();
            json_ws(bytes, at);
            if bytes.get(*at) == Some(&b']') {
                *at += 1;
                return Ok(Json::Array(items));
            }
            loop {
                items.push(json_value(bytes, at, depth + 1)?);
                json_ws(bytes, at);
                match bytes.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b']') => {
                        *at += 1;
                        return Ok(Json::Array(items));
                    }
                    _ => return Err(format!("expected ',' or ']' at {}", *at)),
                }
            }
        }
        Some(b'"') => json_string(bytes, at).map(Json::String),
        Some(b't') if bytes[*at..].starts_with(b"true") => {
            *at += 4;
            Ok(Json::Bool(true))
        }
        Some(b'f') if bytes[*at..].starts_with(b"false") => {
            *at += 5;
            Ok(Json::Bool(false))
        }
        Some(b'n') if bytes[*at..].starts_with(b"null") => {
            *at += 4;
            Ok(Json::Null)
        }
        Some(b) if *b == b'-' || b.is_ascii_digit() => {
            *at += 1;
            while bytes.get(*at).is_some_and(|b| {
                b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')
            }) {
                *at += 1;
            }
            let text = String::from_utf8_lossy(&bytes[start..*at]).into_owned();
            text.parse::<f64>()
                .map_err(|_| format!("bad number {text:?}"))?;
            Ok(Json::Number(text))
        }
        Some(other) => Err(format!("unexpected {:?} at {}", *other as char, *at)),
    }
}

fn json_string(bytes: &[u8], at: &mut usize) -> Result<String, String> {
    if bytes.get(*at) != Some(&b'"') {
        return Err(format!("expected a string at {}", *at));
    }
    *at += 1;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let b = *bytes.get(*at).ok_or("unterminated string")?;
        *at += 1;
        match b {
            b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
            b'\\' => {
                let e = *bytes.get(*at).ok_or("unterminated escape")?;
                *at += 1;
                let c = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hex = bytes.get(*at..*at + 4).ok_or("short \\u escape")?;
                        *at += 4;
                        let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                            .map_err(|_| "bad \\u escape")?;
                        // Surrogate pairs are not expected from the tracker; show them.
                        char::from_u32(code).unwrap_or('\u{fffd}')
                    }
                    other => return Err(format!("bad escape \\{}", other as char)),
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            b if b < 0x20 => return Err(format!("raw control byte {b:#x} in a string")),
            b => out.push(b),
        }
    }
}

// ---- repository records and the journal, read the way an outside tool would -------------------

/// Reverse the repository's value escaping (`\\`, `\n`, `\r`, `\t`, `\xHH`, `\u{H..}`).
pub fn repo_unescape(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c.is_control() || c.is_whitespace() {
            return Err(format!("unescaped {c:?} in {value:?}"));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| format!("bad \\x escape in {value:?}"))?;
                out.push(char::from_u32(code).ok_or("bad \\x escape")?);
            }
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err(format!("bad \\u escape in {value:?}"));
                }
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| format!("bad \\u escape in {value:?}"))?;
                out.push(char::from_u32(code).ok_or("bad \\u escape")?);
            }
            other => return Err(format!("bad escape \\{other:?} in {value:?}")),
        }
    }
    Ok(out)
}

/// Parse a repository record: `# xenplug-repo 1`, then `key=value` lines (values escaped, keys
/// distinct). Returns the unescaped values by key.
pub fn parse_repo_record(text: &str) -> Result<BTreeMap<String, String>, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut lines = text.lines();
    if lines.next() != Some(REPO_FIRST_LINE) {
        return Err(format!("first line is not {REPO_FIRST_LINE:?}"));
    }
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: no '=' in {line:?}", n + 2))?;
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !key_ok {
            return Err(format!("line {}: bad key {key:?}", n + 2));
        }
        let value = repo_unescape(value).map_err(|e| format!("line {}: {e}", n + 2))?;
        if out.insert(key.to_string(), value).is_some() {
            return Err(format!("line {}: key {key} twice", n + 2));
        }
    }
    Ok(out)
}

/// One journal line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// `seq=`
    pub seq: u64,
    /// `time=` (unix seconds)
    pub time: u64,
    /// `kind=`
    pub kind: String,
    /// `subject=` (unescaped)
    pub subject: String,
    /// `network=` (unescaped), if present.
    pub network: Option<String>,
    /// The other `key=value` tokens (unescaped).
    pub details: BTreeMap<String, String>,
    /// The line as written.
    pub line: String,
}

/// Parse one journal line (`seq=N time=T kind=K subject=S [network=L] [key=value]...`).
pub fn parse_journal_line(line: &str) -> Result<JournalEntry, String> {
    let mut tokens = Vec::new();
    for token in line.split(' ') {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("token {token:?} has no '='"))?;
        tokens.push((key, repo_unescape(value)?));
    }
    let fixed: Vec<&str> = tokens.iter().take(4).map(|(k, _)| *k).collect();
    if fixed != ["seq", "time", "kind", "subject"] {
        return Err(format!(
            "first keys are {fixed:?}, not seq time kind subject"
        ));
    }
    let seq = tokens[0].1.parse().map_err(|_| "seq is not a number")?;
    let time = tokens[1].1.parse().map_err(|_| "time is not a number")?;
    let kind = tokens[2].1.clone();
    if !TRACK_EVENT_KINDS.contains(&kind.as_str()) {
        return Err(format!("unknown kind {kind:?}"));
    }
    let mut network = None;
    let mut details = BTreeMap::new();
    for (i, (key, value)) in tokens.iter().enumerate().skip(4) {
        if *key == "network" && i == 4 {
            network = Some(value.clone());
        } else if ["seq", "time", "kind", "subject", "network"].contains(key) {
            return Err(format!("reserved key {key} out of place"));
        } else if details.insert(key.to_string(), value.clone()).is_some() {
            return Err(format!("detail {key} twice"));
        }
    }
    Ok(JournalEntry {
        seq,
        time,
        kind,
        subject: tokens[3].1.clone(),
        network,
        details,
        line: line.to_string(),
    })
}

/// Parse a whole journal. With `strict`, the file must end with a newline; without, a last
/// line with no newline yet (being written) is left out.
pub fn parse_journal(text: &str, strict: bool) -> Result<Vec<JournalEntry>, String> {
    if text.is_empty() && !strict {
        return Ok(Vec::new());
    }
    let whole = match text.rfind('\n') {
        Some(end) if end + 1 == text.len() => text,
        Some(end) if !strict => &text[..end + 1],
        _ if !strict => "",
        _ => return Err("does not end with a newline".into()),
    };
    let mut lines = whole.lines();
    match lines.next() {
        Some(JOURNAL_FIRST_LINE) => {}
        None if !strict => return Ok(Vec::new()),
        other => {
            return Err(format!(
                "first line is {other:?}, not {JOURNAL_FIRST_LINE:?}"
            ))
        }
    }
    lines
        .enumerate()
        .map(|(n, line)| {
            parse_journal_line(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 2))
        })
        .collect()
}

// ---- the tracker process -----------------------------------------------------------------------

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

// ---- the topology ------------------------------------------------------------------------------

/// A VM advertiser of the topology.
pub struct TrackVmProc {
    /// Which VM.
    pub spec: TrackVmSpec,
    /// Its services directory (Echo).
    pub services: ServicesDir,
    /// The advertiser.
    pub xenplug: Xenplug,
}

/// How to build a [`TrackWorld`].
#[derive(Clone, Copy, Debug, Default)]
pub struct TrackSetup {
    /// Bind the read API on 0.0.0.0 instead of 127.0.0.1.
    pub api_any: bool,
    /// Add one idle host to the acme LAN (for a test to start something in).
    pub spare_acme_host: bool,
    /// The hypervisors' `--max-age` (default [`TRACK_MAX_AGE`]); a long one keeps the periodic
    /// refresh out of a measurement.
    pub hypervisor_max_age: Option<u32>,
    /// Start the hypervisors without `--allow-control`: only they themselves may call their
    /// mutating actions, so the tracker's relays of those get 606. Otherwise the tracker's
    /// provider leg ([`track_leg_addr`] 1, where the console runs too) is allowed.
    pub control_closed: bool,
}

/// Provider LAN with two simulated hypervisors, two tenant LANs with the VM advertisers, and a
/// namespace for the tracker with a leg in each LAN. Everything but the tracker runs once built.
pub struct TrackWorld {
    /// The tracker (None until [`TrackWorld::start_tracker`]).
    pub tracker: Option<Tracker>,
    /// VM advertisers, in [`TRACK_VMS`] order.
    pub vms: Vec<TrackVmProc>,
    /// Hypervisors A and B.
    pub hypervisors: Vec<Xenplug>,
    /// Sim dirs of A and B.
    pub sims: Vec<SimDir>,
    /// The tracker's namespace (eth0 mgmt, eth1 acme, eth2 beta).
    pub tracker_ns: Netns,
    /// Provider LAN (10.99.1.0/24): host 0 = A, host 1 = B.
    pub mgmt: Lan,
    /// acme LAN (10.99.2.0/24): one host per acme VM in [`TRACK_VMS`] order, then the spare.
    pub acme: Lan,
    /// beta LAN (10.99.3.0/24): one host per beta VM.
    pub beta: Lan,
    /// The repository directory.
    pub repo: TempDir,
    /// How it was built.
    pub setup: TrackSetup,
}

/// The tracker's address on its leg in LAN `subnet` (10.99.subnet.2).
pub fn track_leg_addr(subnet: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, subnet, 2)
}

impl Lan {
    /// Give `ns` a leg `iface` with address `addr`/24 in this LAN (no multicast route added).
    pub fn attach(&self, ns: &Netns, iface: &str, addr: Ipv4Addr) {
        let port = format!("leg{}", unique());
        self.bridge.ip(&[
            "link",
            "add",
            &port,
            "type",
            "veth",
            "peer",
            "name",
            iface,
            "netns",
            ns.name(),
        ]);
        self.bridge.ip(&["link", "set", &port, "master", "br0"]);
        self.bridge.ip(&["link", "set", &port, "up"]);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", iface]);
        ns.ip(&["link", "set", iface, "multicast", "on"]);
        ns.ip(&["link", "set", iface, "up"]);
        let up = poll_until(WAIT, || {
            ns.ok("ip", &["-o", "link", "show", iface])
                .contains("LOWER_UP")
                .then_some(())
        });
        assert!(up.is_some(), "{iface} in {} never came up", ns.name());
    }
}

impl TrackWorld {
    /// Build the LANs and start the hypervisors and VM advertisers (not the tracker).
    pub fn new(tag: &str, setup: TrackSetup) -> TrackWorld {
        let t0 = Instant::now();
        let acme_vms: Vec<TrackVmSpec> = TRACK_VMS
            .iter()
            .copied()
            .filter(|v| v.tenant == "acme")
            .collect();
        let beta_vms: Vec<TrackVmSpec> = TRACK_VMS
            .iter()
            .copied()
            .filter(|v| v.tenant == "beta")
            .collect();
        let mgmt = Lan::with_subnet(&format!("{tag}-m"), 2, 1);
        let acme = Lan::with_subnet(
            &format!("{tag}-a"),
            acme_vms.len() + usize::from(setup.spare_acme_host),
            2,
        );
        let beta = Lan::with_subnet(&format!("{tag}-b"), beta_vms.len(), 3);
        let tracker_ns = Netns::bare(&format!("{tag}-trk"));
        mgmt.attach(&tracker_ns, "eth0", track_leg_addr(1));
        acme.attach(&tracker_ns, "eth1", track_leg_addr(2));
        beta.attach(&tracker_ns, "eth2", track_leg_addr(3));

        let sims: Vec<SimDir> = (0..2)
            .map(|h| {
                let sim = SimDir::new(&format!("{tag}-{h}"));
                sim.write_host(TRACK_HOSTS[h], TRACK_HOST_NAMES[h]);
                for vm in TRACK_VMS.iter().filter(|v| v.host == Some(h)) {
                    sim.write_domain(&Domain::new(vm.uuid, vm.name, "running"));
                }
                sim
            })
            .collect();
        let hypervisors: Vec<Xenplug> = (0..2)
            .map(|h| {
                let allow_control = if setup.control_closed {
                    Vec::new()
                } else {
                    vec![track_leg_addr(1).to_string()]
                };
                let options = Options {
                    max_age: Some(setup.hypervisor_max_age.unwrap_or(TRACK_MAX_AGE)),
                    allow_control,
                    ..Options::ifaces(&["eth0"])
                };
                Xenplug::start_with(&mgmt.host(h).ns, &sims[h], &options)
            })
            .collect();
        let mut vms = Vec::new();
        for vm in TRACK_VMS {
            let (lan, index) = match vm.tenant {
                "acme" => (&acme, acme_vms.iter().position(|v| v.uuid == vm.uuid)),
                _ => (&beta, beta_vms.iter().position(|v| v.uuid == vm.uuid)),
            };
            let host = lan.host(index.expect("VM is in its tenant's list"));
            let services = ServicesDir::new(vm.name);
            services.add_service("Echo", &track_echo_service());
            let options = VmOptions {
                uuid: Some(vm.uuid.to_string()),
                name: Some(vm.name.to_string()),
                max_age: Some(TRACK_MAX_AGE),
                ..VmOptions::new(&host.iface, &services.path())
            };
            let xenplug = Xenplug::start_vm(&host.ns, &options);
            vms.push(TrackVmProc {
                spec: vm,
                services,
                xenplug,
            });
        }
        eprintln!(
            "timing: topology {tag} (3 LANs, 2 hypervisors, {} VMs) up in {:?}",
            vms.len(),
            t0.elapsed()
        );
        TrackWorld {
            tracker: None,
            vms,
            hypervisors,
            sims,
            tracker_ns,
            mgmt,
            acme,
            beta,
            repo: TempDir::new(&format!("{tag}-repo")),
            setup,
        }
    }

    /// The spare acme host (only with `spare_acme_host`).
    pub fn spare_acme_host(&self) -> &Host {
        assert!(
            self.setup.spare_acme_host,
            "built without a spare acme host"
        );
        self.acme.hosts.last().expect("acme has hosts")
    }

    /// The namespace of tenant VM `uuid`'s advertiser.
    pub fn vm_host(&self, uuid: &str) -> &Host {
        let spec = track_vm(uuid);
        let (lan, list): (&Lan, Vec<&TrackVmSpec>) = match spec.tenant {
            "acme" => (
                &self.acme,
                TRACK_VMS.iter().filter(|v| v.tenant == "acme").collect(),
            ),
            _ => (
                &self.beta,
                TRACK_VMS.iter().filter(|v| v.tenant == "beta").collect(),
            ),
        };
        let index = list.iter().position(|v| v.uuid == uuid).expect("listed");
        lan.host(index)
    }

    /// The advertiser of VM `uuid`.
    pub fn vm_proc(&mut self, uuid: &str) -> &mut TrackVmProc {
        self.vms
            .iter_mut()
            .find(|v| v.spec.uuid == uuid)
            .unwrap_or_else(|| panic!("no advertiser for {uuid}"))
    }

    /// The tracker's arguments.
    pub fn tracker_args(&self) -> Vec<String> {
        let api_host = if self.setup.api_any {
            "0.0.0.0"
        } else {
            "127.0.0.1"
        };
        [
            "--net",
            "mgmt=eth0:provider",
            "--net",
            "acme=eth1",
            "--net",
            "beta=eth2",
            "--repo",
            &self.repo.path().display().to_string(),
            "--api",
            &format!("{api_host}:{TRACK_API_PORT}"),
            "--grace",
            &TRACK_GRACE.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Start (or restart) the tracker on the same repository.
    pub fn start_tracker(&mut self) -> &Tracker {
        assert!(
            self.tracker
                .as_mut()
                .is_none_or(|t| t.proc.try_status().is_some()),
            "a tracker is still running"
        );
        let tracker = Tracker::start(&self.tracker_ns, &self.tracker_args());
        self.tracker = Some(tracker);
        self.tracker.as_ref().expect("just set")
    }

    /// The running tracker.
    pub fn tracker(&self) -> &Tracker {
        self.tracker.as_ref().expect("tracker started")
    }

    /// The tracker, mutable.
    pub fn tracker_mut(&mut self) -> &mut Tracker {
        self.tracker.as_mut().expect("tracker started")
    }

    /// `http://127.0.0.1:PORT` (from the tracker's namespace).
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{TRACK_API_PORT}")
    }

    /// Everything needed to debug a failure: the tracker's log and where every log is.
    pub fn report(&self) -> String {
        let mut out = String::new();
        if let Some(tracker) = &self.tracker {
            out.push_str(&tracker.report());
            out.push('\n');
        }
        out.push_str(&format!("repository: {}\n", self.repo.path().display()));
        let journal = read_lossy(&self.journal_path());
        out.push_str(&format!(
            "--- events.log (tail) ---\n{}\n",
            tail(&journal, 30)
        ));
        for (h, hv) in self.hypervisors.iter().enumerate() {
            out.push_str(&format!("hypervisor {h} log: {}\n", hv.proc.log_paths()));
        }
        for vm in &self.vms {
            out.push_str(&format!(
                "vm {} ({}) log: {}\n",
                vm.spec.name,
                vm.spec.uuid,
                vm.xenplug.proc.log_paths()
            ));
        }
        out
    }

    /// `repo/events.log`.
    pub fn journal_path(&self) -> PathBuf {
        self.repo.path().join("events.log")
    }

    /// The whole lines of the journal so far; panics on a malformed line.
    pub fn journal(&self) -> Vec<JournalEntry> {
        let text = read_lossy(&self.journal_path());
        parse_journal(&text, false)
            .unwrap_or_else(|e| panic!("events.log does not parse: {e}\n{}", self.report()))
    }

    /// Highest sequence number in the journal (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.journal().last().map_or(0, |e| e.seq)
    }

    /// Wait (bounded) for a journal event after `after_seq` of `kind` about `subject`;
    /// returns it and how long the wait took.
    pub fn wait_event(
        &self,
        after_seq: u64,
        timeout: Duration,
        kind: &str,
        subject: &str,
    ) -> Option<(JournalEntry, Duration)> {
        let t0 = Instant::now();
        poll_until(timeout, || {
            self.journal()
                .into_iter()
                .find(|e| e.seq > after_seq && e.kind == kind && e.subject.contains(subject))
        })
        .map(|e| (e, t0.elapsed()))
    }

    /// GET a path of the API from the tracker's namespace.
    pub fn api_get(&self, path: &str) -> HttpResponse {
        http_get(&self.tracker_ns, &format!("{}{path}", self.api()))
    }

    /// GET a path of the API that must answer 200 with JSON.
    pub fn api_json(&self, path: &str) -> Json {
        let response = self.api_get(path);
        assert_eq!(
            response.status,
            200,
            "GET {path}: {response:?}\n{}",
            self.report()
        );
        Json::parse(&response.body).unwrap_or_else(|e| {
            panic!(
                "GET {path}: not JSON ({e}): {}\n{}",
                response.body,
                self.report()
            )
        })
    }

    /// `GET /api/tree` from the tracker's namespace.
    pub fn tree(&self) -> Json {
        self.api_json("/api/tree")
    }

    /// POST a form body to a path of the API from the tracker's namespace.
    pub fn api_post_form(&self, path: &str, body: &str) -> HttpResponse {
        curl(
            &self.tracker_ns,
            &format!("{}{path}", self.api()),
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/x-www-form-urlencoded",
                "--data-binary",
                body,
                "--max-time",
                "12",
            ],
        )
    }

    /// The records of `repo/<dir>` by file name (temporary files skipped); panics on a record
    /// that does not parse.
    pub fn records(&self, dir: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let Ok(entries) = fs::read_dir(self.repo.path().join(dir)) else {
            return out;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !entry.path().is_file() {
                continue;
            }
            let Ok(text) = fs::read_to_string(entry.path()) else {
                continue;
            };
            let record = parse_repo_record(&text).unwrap_or_else(|e| {
                panic!(
                    "{dir}/{name} does not parse: {e}\n{text}\n{}",
                    self.report()
                )
            });
            out.insert(name, record);
        }
        out
    }

    /// `tenants/<tenant>/<uuid>` records as (tenant, uuid) -> record.
    pub fn tenant_records(&self) -> BTreeMap<(String, String), BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        let Ok(tenants) = fs::read_dir(self.repo.path().join("tenants")) else {
            return out;
        };
        for tenant in tenants.flatten() {
            let name = tenant.file_name().to_string_lossy().into_owned();
            if !tenant.path().is_dir() {
                continue;
            }
            for (vm, record) in self.records(&format!("tenants/{name}")) {
                out.insert((name.clone(), vm), record);
            }
        }
        out
    }

    /// What is still missing from the repository and the tree for the whole topology to be
    /// known (empty once it is): both hosts, every VM with its tenant, its Echo service and
    /// (where a hypervisor lists it) its placement and a known run state.
    pub fn settle_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let hardware = self.records("hardware");
        for host in TRACK_HOSTS {
            if !hardware.contains_key(host) {
                problems.push(format!("no hardware/{host}"));
            }
        }
        let virtuals = self.records("virtual");
        let echo = vm_service_type("Echo");
        for vm in TRACK_VMS {
            let Some(record) = virtuals.get(vm.uuid) else {
                problems.push(format!("no virtual/{}", vm.uuid));
                continue;
            };
            if record.get("tenant").map(String::as_str) != Some(vm.tenant) {
                problems.push(format!(
                    "virtual/{} tenant {:?}",
                    vm.uuid,
                    record.get("tenant")
                ));
            }
            if !record.values().any(|v| *v == echo) {
                problems.push(format!("virtual/{} has no {echo} service", vm.uuid));
            }
            if let Some(h) = vm.host {
                // The run state comes with the first DomainControl event.
                let state = record.get("run_state").map_or("", String::as_str);
                if state.is_empty() || state == "unknown" {
                    problems.push(format!("virtual/{} run_state {state:?}", vm.uuid));
                }
                if record.get("hypervisor").map(String::as_str) != Some(TRACK_HOSTS[h]) {
                    problems.push(format!(
                        "virtual/{} hypervisor {:?}",
                        vm.uuid,
                        record.get("hypervisor")
                    ));
                }
            }
        }
        let response = self.api_get("/api/tree");
        let Ok(tree) = Json::parse(&response.body) else {
            problems.push(format!("/api/tree: {} {}", response.status, response.body));
            return problems;
        };
        for host in TRACK_HOSTS {
            if !tree.list("hypervisors").iter().any(|h| h.s("uuid") == host) {
                problems.push(format!("tree: no hypervisor {host}"));
            }
        }
        for vm in TRACK_VMS {
            match tree_vm(&tree, vm.uuid) {
                None => problems.push(format!("tree: no vm {}", vm.uuid)),
                Some((host, v)) => {
                    if v.s("tenant") != vm.tenant {
                        problems.push(format!("tree: vm {} tenant {:?}", vm.uuid, v.s("tenant")));
                    }
                    if !v.list("services").iter().any(|s| s.s("type") == echo) {
                        problems.push(format!("tree: vm {} without Echo", vm.uuid));
                    }
                    let want = vm.host.map(|h| TRACK_HOSTS[h].to_string());
                    if vm.host.is_some() && host != want {
                        problems.push(format!("tree: vm {} under {host:?}", vm.uuid));
                    }
                }
            }
        }
        problems
    }

    /// Wait until [`TrackWorld::settle_problems`] is empty; panics with what is missing.
    pub fn wait_settled(&self, timeout: Duration, what: &str) -> Duration {
        let t0 = Instant::now();
        let mut last = Vec::new();
        let done = poll_until(timeout, || {
            last = self.settle_problems();
            last.is_empty().then_some(())
        });
        if done.is_none() {
            panic!(
                "{what}: the topology is not fully known within {timeout:?}; missing:\n  {}\n{}",
                last.join("\n  "),
                self.report()
            );
        }
        t0.elapsed()
    }
}

/// VM `uuid` in a provider tree: the hypervisor it is listed under (None: under
/// `devirtualized`) and the VM object.
pub fn tree_vm<'a>(tree: &'a Json, uuid: &str) -> Option<(Option<String>, &'a Json)> {
    for host in tree.list("hypervisors") {
        if let Some(vm) = host.list("vms").iter().find(|v| v.s("uuid") == uuid) {
            return Some((Some(host.s("uuid").to_string()), vm));
        }
    }
    tree.list("devirtualized")
        .iter()
        .find(|v| v.s("uuid") == uuid)
        .map(|vm| (None, vm))
}
