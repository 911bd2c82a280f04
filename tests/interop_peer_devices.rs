//! xenplug's control-point side (the tracker, and the console discovering by itself) against
//! devices hosted by third-party UPnP stacks, not by xenplug: a VirtualMachine device hosted
//! by GUPnP 1.6 (tests/interop/gupnp_device.py) or by async-upnp-client's server side
//! (tests/interop/aupnp_device.py), and a Hypervisor device hosted by GUPnP whose only way to
//! place a VM is its `VirtualMachineIds` GENA event.
//!
//! Topology per test: a provider LAN (10.99.1.0/24: a simulated xenplug hypervisor, and a
//! spare host), a tenant LAN `acme` (10.99.2.0/24: the third-party VM), and a tracker
//! namespace with a leg in each. Everything runs inside namespaces the test creates, on
//! explicit interfaces; every wait is bounded.
//!
//! Peers: `XENPLUG_GI_PYTHON` (default /usr/bin/python3, python3-gi + gir1.2-gupnp-1.6) and
//! `XENPLUG_AUPNP_PYTHON` (default python3 on PATH). A missing peer fails the test under
//! `CI=true` and is skipped loudly otherwise; an async-upnp-client without
//! `async_upnp_client.server` is skipped with a note either way. Timings are printed on
//! stderr (`timing: ...`, run with `--nocapture`).

mod common;

use common::*;
use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The GUPnP-hosted VM.
const VM_GUPNP: &str = "acac0021-1111-4a6b-8c9d-0000000000c1";
/// The async-upnp-client-hosted VM.
const VM_AUPNP: &str = "acac0022-2222-4a6b-8c9d-0000000000c2";
/// The GUPnP-hosted hypervisor.
const HOST_GUPNP: &str = "c3c3c3c3-0000-4000-8000-0000000000c3";
/// Name the sim hypervisor gives every peer VM (the provider's name wins in the tree).
const SIM_VM_NAME: &str = "peer-vm";
/// The peer VMs' owner service.
const ECHO: &str = "urn:example-org:service:Echo:1";
/// Bound for the tracker to learn what it is shown.
const SETTLE: Duration = Duration::from_secs(15);
/// Bound for one console command.
const COMMAND: Duration = Duration::from_secs(30);
/// Bound for a byebye to reach the journal (xenplug's own budget is 1 s; a third-party stack
/// may take its time to send it).
const BYEBYE: Duration = Duration::from_secs(5);

// ---- the peers -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Gupnp,
    Aupnp,
}

fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn imports(python: &str, code: &str) -> bool {
    Command::new(python)
        .args(["-c", code])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The python that hosts `stack`'s devices, or `None` (after a loud note) when the test must
/// be skipped. Under `CI=true` a missing peer is a failure.
fn peer_python(stack: Stack) -> Option<String> {
    let (var, default, library, server) = match stack {
        Stack::Gupnp => (
            "XENPLUG_GI_PYTHON",
            "/usr/bin/python3",
            "import gi; gi.require_version('GUPnP', '1.6'); gi.require_version('GSSDP', '1.6'); \
             from gi.repository import GUPnP, GSSDP",
            None,
        ),
        Stack::Aupnp => (
            "XENPLUG_AUPNP_PYTHON",
            "python3",
            "import async_upnp_client",
            Some("import async_upnp_client.server as s; s.UpnpServer; s.UpnpServerDevice; s.callable_action"),
        ),
    };
    let python = std::env::var(var).unwrap_or_else(|_| default.to_string());
    if !imports(&python, library) {
        let message = format!(
            "peer missing: {python} cannot run `{library}` (set {var}, or install the peer as .ci/run does)"
        );
        assert!(!under_ci(), "{message}");
        eprintln!("\n*** SKIPPED: {message} ***\n");
        return None;
    }
    if let Some(server) = server {
        if !imports(&python, server) {
            eprintln!(
                "\n*** SKIPPED: the async-upnp-client installed for {python} has no server side \
                 (async_upnp_client.server.UpnpServer): the device variant needs it ***\n"
            );
            return None;
        }
    }
    Some(python)
}

/// A third-party device process and the file it reads commands from.
struct PeerDevice {
    proc: Proc,
    commands: PathBuf,
    _files: TempDir,
}

impl PeerDevice {
    /// Starts `script` (in tests/interop) with `args` in `host`'s namespace and waits for its
    /// `ready` line.
    fn start(host: &Host, python: &str, script: &str, args: &[&str]) -> PeerDevice {
        let files = TempDir::new("peer-device");
        let commands = files.path().join("commands");
        fs::write(&commands, "").expect("create the command file");
        let script = format!("{}/tests/interop/{script}", env!("CARGO_MANIFEST_DIR"));
        let dir = files.path().join("www").display().to_string();
        let commands_arg = commands.display().to_string();
        let mut full = vec![script.as_str(), "--commands", commands_arg.as_str()];
        if script.ends_with("gupnp_device.py") {
            full.extend(["--iface", host.iface.as_str(), "--dir", dir.as_str()]);
        }
        full.extend_from_slice(args);
        let proc = host
            .ns
            .spawn(script_label(&script), host.ns.command(python, &full));
        let device = PeerDevice {
            proc,
            commands,
            _files: files,
        };
        let ready = device.proc.wait_stdout(WAIT, |out| {
            json_lines(out)
                .into_iter()
                .find(|l| l.get("kind").map(String::as_str) == Some("ready"))
        });
        let ready = ready.unwrap_or_else(|| {
            panic!(
                "{script} never said ready\nlogs: {}\n{}",
                device.proc.log_paths(),
                device.proc.report()
            )
        });
        eprintln!("peer device {script}: {ready:?}");
        // Started only once its start-up announcements are over (GSSDP's begin with a byebye
        // per resource), so what the tracker sees first is what stays.
        let announced = device.proc.wait_stdout(WAIT, |out| {
            out.contains("\"kind\": \"announced\"").then_some(())
        });
        assert!(
            announced.is_some(),
            "{script} never said announced\n{}",
            device.proc.report()
        );
        device
    }

    /// Appends one command line.
    fn command(&self, line: &str) {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(&self.commands)
            .expect("open the command file");
        writeln!(file, "{line}").expect("write a command");
    }

    /// Its stdout lines of `kind`.
    fn lines(&self, kind: &str) -> Vec<std::collections::BTreeMap<String, String>> {
        records(&self.proc.stdout(), kind)
    }
}

fn script_label(script: &str) -> &'static str {
    if script.ends_with("gupnp_device.py") {
        "gupnp-device"
    } else {
        "aupnp-device"
    }
}

/// Starts the VM device of `stack` for `uuid` on `host`.
fn start_vm(stack: Stack, python: &str, host: &Host, uuid: &str) -> PeerDevice {
    match stack {
        Stack::Gupnp => PeerDevice::start(
            host,
            python,
            "gupnp_device.py",
            &["--role", "vm", "--uuid", uuid, "--name", "gupnp-vm"],
        ),
        Stack::Aupnp => {
            let addr = host.addr.to_string();
            PeerDevice::start(
                host,
                python,
                "aupnp_device.py",
                &[
                    "--addr", &addr, "--port", "8000", "--uuid", uuid, "--name", "aupnp-vm",
                ],
            )
        }
    }
}

// ---- the topology ----------------------------------------------------------------------------

struct World {
    tracker_ns: Netns,
    mgmt: Lan,
    acme: Lan,
    sim: SimDir,
    _hypervisor: Xenplug,
    repo: TempDir,
    tracker: Option<Tracker>,
    /// The tracker's access file: one admin, whose token the world's requests carry.
    access: Access,
    _access_dir: TempDir,
}

impl World {
    /// The LANs, the tracker's namespace and the sim hypervisor (host A on mgmt host 0)
    /// placing `placed`.
    fn new(tag: &str, placed: &[&str]) -> World {
        let mgmt = Lan::with_subnet(&format!("{tag}-m"), 2, 1);
        let acme = Lan::with_subnet(&format!("{tag}-a"), 1, 2);
        let tracker_ns = Netns::bare(&format!("{tag}-trk"));
        mgmt.attach(&tracker_ns, "eth0", track_leg_addr(1));
        acme.attach(&tracker_ns, "eth1", track_leg_addr(2));
        let access_dir = TempDir::new(&format!("{tag}-access"));
        let access = Access::new(access_dir.path(), &[("admin", "admin")]);
        let sim = SimDir::new(&format!("{tag}-sim"));
        sim.write_host(TRACK_HOST_A, TRACK_HOST_NAMES[0]);
        for vm in placed {
            sim.write_domain(&Domain::new(vm, SIM_VM_NAME, "running"));
        }
        let options = Options {
            max_age: Some(TRACK_MAX_AGE),
            ..Options::ifaces(&["eth0"])
        };
        let hypervisor = Xenplug::start_with(&mgmt.host(0).ns, &sim, &options);
        World {
            tracker_ns,
            mgmt,
            acme,
            sim,
            _hypervisor: hypervisor,
            access,
            _access_dir: access_dir,
            repo: TempDir::new(&format!("{tag}-repo")),
            tracker: None,
        }
    }

    fn start_tracker(&mut self) {
        let repo = self.repo.path().display().to_string();
        let grace = TRACK_GRACE.to_string();
        let api = format!("127.0.0.1:{TRACK_API_PORT}");
        let args: Vec<String> = [
            "--net",
            "mgmt=eth0:provider",
            "--net",
            "acme=eth1",
            "--repo",
            &repo,
            "--api",
            &api,
            "--grace",
            &grace,
            "--access",
            &self.access.path.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        self.tracker = Some(Tracker::start(&self.tracker_ns, &args));
    }

    fn tracker(&self) -> &Tracker {
        self.tracker.as_ref().expect("tracker started")
    }

    fn api(&self) -> String {
        format!("http://127.0.0.1:{TRACK_API_PORT}")
    }

    fn report(&self) -> String {
        let journal = fs::read_to_string(self.repo.path().join("events.log")).unwrap_or_default();
        format!(
            "{}\nrepository: {}\n--- events.log (tail) ---\n{}",
            self.tracker.as_ref().map_or(String::new(), Tracker::report),
            self.repo.path().display(),
            tail(&journal, 30)
        )
    }

    fn tree(&self) -> Option<Json> {
        let response = curl(
            &self.tracker_ns,
            &format!("{}/api/tree", self.api()),
            &["-H", &self.access.header("admin")],
        );
        (response.status == 200)
            .then(|| Json::parse(&response.body).ok())
            .flatten()
    }

    fn journal(&self) -> Vec<JournalEntry> {
        let text = fs::read_to_string(self.repo.path().join("events.log")).unwrap_or_default();
        parse_journal(&text, false).unwrap_or_else(|e| panic!("events.log: {e}\n{text}"))
    }

    fn last_seq(&self) -> u64 {
        self.journal().last().map_or(0, |e| e.seq)
    }

    fn wait_event(&self, after: u64, timeout: Duration, kind: &str, subject: &str) -> JournalEntry {
        poll_until(timeout, || {
            self.journal()
                .into_iter()
                .find(|e| e.seq > after && e.kind == kind && e.subject == subject)
        })
        .unwrap_or_else(|| {
            panic!(
                "no {kind} about {subject} after event {after} within {timeout:?}\n{}",
                self.report()
            )
        })
    }

    fn record(&self, relative: &str) -> Option<std::collections::BTreeMap<String, String>> {
        let text = fs::read_to_string(self.repo.path().join(relative)).ok()?;
        Some(parse_repo_record(&text).unwrap_or_else(|e| panic!("{relative}: {e}\n{text}")))
    }

    /// `xenplug console ARGS` in the tracker's namespace, with the admin's token.
    fn console(&self, args: &[&str]) -> Output {
        let mut full = vec!["console"];
        full.extend_from_slice(args);
        let mut command = self.tracker_ns.command(xenplug_bin(), &full);
        command.env("XENPLUG_TOKEN", self.access.token("admin"));
        run_bounded(command, COMMAND, &format!("xenplug {}", full.join(" ")))
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    )
}

/// What is wrong with `vm` in `tree` for a VM of tenant acme placed on `host` (None:
/// de-virtualized) offering Echo(Text) -> Reply (with `services` false: offering nothing).
fn vm_problem(tree: &Json, vm: &str, host: Option<&str>, services: bool) -> Option<String> {
    let Some((under, entry)) = tree_vm(tree, vm) else {
        return Some(format!("no vm {vm}"));
    };
    if under.as_deref() != host {
        return Some(format!("vm {vm} under {under:?}, not {host:?}"));
    }
    if entry.s("tenant") != "acme" {
        return Some(format!("vm {vm} tenant {:?}", entry.s("tenant")));
    }
    let listed = entry.list("services");
    if !services {
        return (!listed.is_empty())
            .then(|| format!("vm {vm} still lists {} services", listed.len()));
    }
    let Some(echo) = listed.iter().find(|s| s.s("type") == ECHO) else {
        return Some(format!("vm {vm} without {ECHO}"));
    };
    let action = echo.list("actions").iter().find(|a| a.s("name") == "Echo");
    let Some(action) = action else {
        return Some(format!("vm {vm}: {ECHO} without Echo"));
    };
    let names = |key: &str| -> Vec<String> {
        action
            .list(key)
            .iter()
            .filter_map(|n| n.str().map(str::to_string))
            .collect()
    };
    if names("inputs") != ["Text"] || names("outputs") != ["Reply"] {
        return Some(format!(
            "vm {vm}: Echo inputs {:?} outputs {:?}",
            names("inputs"),
            names("outputs")
        ));
    }
    None
}

// ---- a third-party VirtualMachine device -----------------------------------------------------

fn vm_device_scenario(stack: Stack, vm: &str, tag: &str) {
    let Some(python) = peer_python(stack) else {
        return;
    };
    let mut world = World::new(tag, &[vm]);
    let mut peer = start_vm(stack, &python, world.acme.host(0), vm);
    world.start_tracker();

    // Found, filed under its tenant, placed by the sim hypervisor, its actions read from the
    // third party's SCPD.
    let t0 = Instant::now();
    let mut last = None;
    let settled = poll_until(SETTLE, || {
        let tree = world.tree()?;
        last = vm_problem(&tree, vm, Some(TRACK_HOST_A), true);
        last.is_none().then_some(tree)
    });
    let tree = settled.unwrap_or_else(|| {
        panic!(
            "{stack:?} VM never right in the tree: {last:?}\n{}\n{}",
            peer.proc.report(),
            world.report()
        )
    });
    eprintln!(
        "timing: {stack:?} VM in the tree with its Echo action {:?} after the tracker started",
        t0.elapsed()
    );
    let (_, entry) = tree_vm(&tree, vm).expect("checked");
    assert_eq!(entry.s("name"), SIM_VM_NAME, "the provider's name wins");
    let record = world
        .record(&format!("virtual/{vm}"))
        .unwrap_or_else(|| panic!("no virtual/{vm}\n{}", world.report()));
    assert_eq!(record.get("tenant").map(String::as_str), Some("acme"));
    assert_eq!(
        record.get("hypervisor").map(String::as_str),
        Some(TRACK_HOST_A)
    );
    assert!(
        record.values().any(|v| v == ECHO),
        "virtual/{vm} lacks {ECHO}: {record:?}"
    );
    assert!(
        world.record(&format!("tenants/acme/{vm}")).is_some(),
        "no tenants/acme/{vm}"
    );
    assert!(
        world
            .journal()
            .iter()
            .any(|e| e.kind == "vm-added" && e.subject == vm),
        "{}",
        world.report()
    );

    // An owner action through the tracker's relay.
    let said = "hello <peer> & \"co\"";
    let t0 = Instant::now();
    let output = world.console(&[
        "call",
        vm,
        "Echo",
        &format!("Text={said}"),
        "--tracker",
        &world.api(),
    ]);
    assert!(
        output.status.success(),
        "{}\n{}\n{}",
        show(&output),
        peer.proc.report(),
        world.report()
    );
    eprintln!(
        "timing: console call Echo through the tracker to the {stack:?} VM in {:?}",
        t0.elapsed()
    );
    assert!(
        text(&output.stdout)
            .lines()
            .any(|l| l == format!("Reply={said}")),
        "{}",
        show(&output)
    );
    assert!(
        peer.lines("action")
            .iter()
            .any(|l| l.get("Text").map(String::as_str) == Some(said)),
        "the peer never saw the call\n{}",
        peer.proc.report()
    );

    // The console as its own control point, on the tenant leg (and the provider leg, so the
    // sim hypervisor's placement merges in).
    let t0 = Instant::now();
    let output = world.console(&["tree", "--json", "--iface", "eth0", "--iface", "eth1:acme"]);
    assert!(output.status.success(), "{}", show(&output));
    eprintln!(
        "timing: console tree --iface eth0 --iface eth1:acme in {:?}",
        t0.elapsed()
    );
    let own = Json::parse(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&output)));
    if let Some(problem) = vm_problem(&own, vm, Some(TRACK_HOST_A), true) {
        panic!("console's own discovery: {problem}\n{}", show(&output));
    }
    let output = world.console(&["tree", "--json", "--iface", "eth1:acme"]);
    assert!(output.status.success(), "{}", show(&output));
    let tenant_only = Json::parse(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(&output)));
    if let Some(problem) = vm_problem(&tenant_only, vm, None, true) {
        panic!(
            "console on the tenant leg alone: {problem}\n{}",
            show(&output)
        );
    }
    let output = world.console(&["call", vm, "Echo", "Text=direct", "--iface", "eth1:acme"]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        peer.proc.report()
    );
    assert!(
        text(&output.stdout).lines().any(|l| l == "Reply=direct"),
        "{}",
        show(&output)
    );

    // Its byebye: the sim hypervisor still places it, so it keeps its tenant and loses its
    // services.
    let mark = world.last_seq();
    let t0 = Instant::now();
    peer.proc.signal(libc::SIGTERM);
    let entry = world.wait_event(mark, BYEBYE, "vm-services-changed", vm);
    eprintln!(
        "timing: {stack:?} VM's byebye journalled {:?} after SIGTERM",
        t0.elapsed()
    );
    assert!(
        !peer.lines("stopping").is_empty(),
        "the peer did not stop as asked\n{}",
        peer.proc.report()
    );
    assert!(
        world
            .tracker()
            .log()
            .contains(&format!("uuid:{vm} gone (ByeBye)")),
        "not gone by its byebye ({entry:?})\n{}",
        world.report()
    );
    let tree = world.tree().expect("tree");
    if let Some(problem) = vm_problem(&tree, vm, Some(TRACK_HOST_A), false) {
        panic!("after the byebye: {problem}\n{}", world.report());
    }
    assert!(
        peer.proc.wait_exit(WAIT).is_some(),
        "{}",
        peer.proc.report()
    );
    assert_eq!(
        world
            .sim
            .read_domain(SIM_VM_NAME)
            .get("state")
            .map(String::as_str),
        Some("running")
    );
}

#[test]
fn gupnp_vm_device_is_tracked_relayed_to_and_seen_leaving() {
    vm_device_scenario(Stack::Gupnp, VM_GUPNP, "pd-gvm");
}

#[test]
fn aupnp_vm_device_is_tracked_relayed_to_and_seen_leaving() {
    vm_device_scenario(Stack::Aupnp, VM_AUPNP, "pd-avm");
}

// ---- a third-party Hypervisor device: placement by GENA alone --------------------------------

#[test]
fn gupnp_hypervisor_places_a_vm_by_its_gena_event() {
    let Some(python) = peer_python(Stack::Gupnp) else {
        return;
    };
    let mut world = World::new("pd-ghv", &[]);
    // Its UDN spelled `UUID:` and upper case, which UDA 1.1 does not write but a stack may:
    // the tracker must read it as the same host everywhere, the relay included.
    let udn = format!("UUID:{}", HOST_GUPNP.to_uppercase());
    let hypervisor = PeerDevice::start(
        world.mgmt.host(1),
        &python,
        "gupnp_device.py",
        &[
            "--role",
            "hypervisor",
            "--uuid",
            HOST_GUPNP,
            "--udn",
            &udn,
            "--name",
            "gupnp-hv",
            "--vms",
            "",
        ],
    );
    let vm = start_vm(Stack::Gupnp, &python, world.acme.host(0), VM_GUPNP);
    world.start_tracker();

    // The hypervisor is accepted from the provider network; the VM no one lists goes
    // de-virtualized after the grace period.
    let known = poll_until(SETTLE, || {
        let tree = world.tree()?;
        tree.list("hypervisors")
            .iter()
            .any(|h| h.s("uuid") == HOST_GUPNP && h.s("name") == "gupnp-hv")
            .then_some(())
    });
    assert!(
        known.is_some(),
        "the GUPnP hypervisor never appeared\n{}\n{}",
        hypervisor.proc.report(),
        world.report()
    );
    world.wait_event(0, SETTLE, "vm-devirtualized", VM_GUPNP);

    // Placement by GENA alone. GUPnP has no signal for a new subscriber and (from Python) no
    // initial values, so the value is notified again each second until the tree shows it.
    let mark = world.last_seq();
    let t0 = Instant::now();
    let mut sent = 0;
    let placed = poll_until(SETTLE, || {
        if t0.elapsed() >= Duration::from_secs(sent) {
            hypervisor.command(&format!("set VirtualMachineIds {VM_GUPNP}"));
            sent += 1;
        }
        let tree = world.tree()?;
        vm_problem(&tree, VM_GUPNP, Some(HOST_GUPNP), true)
            .is_none()
            .then_some(())
    });
    assert!(
        placed.is_some(),
        "the VirtualMachineIds event never placed the VM ({sent} notifications)\n{}\n{}",
        hypervisor.proc.report(),
        world.report()
    );
    eprintln!(
        "timing: placed by the GUPnP hypervisor's GENA event {:?} after the first notification ({sent} sent)",
        t0.elapsed()
    );
    world.wait_event(mark, WAIT, "vm-revirtualized", VM_GUPNP);
    assert!(
        !world.tracker().log().contains("bad property set"),
        "{}",
        world.report()
    );

    // The relay to the third-party Hypervisor service, and to the VM it now places.
    let output = world.console(&[
        "call",
        "gupnp-hv",
        "GetVirtualMachineIds",
        "--tracker",
        &world.api(),
    ]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        hypervisor.proc.report()
    );
    assert!(
        text(&output.stdout)
            .lines()
            .any(|l| l == format!("VirtualMachineIds={VM_GUPNP}")),
        "{}",
        show(&output)
    );
    let output = world.console(&[
        "call",
        VM_GUPNP,
        "Echo",
        "Text=placed",
        "--tracker",
        &world.api(),
    ]);
    assert!(
        output.status.success(),
        "{}\n{}",
        show(&output),
        vm.proc.report()
    );

    // No longer listed: de-virtualized again after the grace period.
    let mark = world.last_seq();
    hypervisor.command("set VirtualMachineIds ");
    world.wait_event(
        mark,
        Duration::from_secs(TRACK_GRACE + 5),
        "vm-devirtualized",
        VM_GUPNP,
    );

    // Its byebye removes the hypervisor.
    let mark = world.last_seq();
    let t0 = Instant::now();
    hypervisor.proc.signal(libc::SIGTERM);
    world.wait_event(mark, BYEBYE, "hypervisor-removed", HOST_GUPNP);
    eprintln!(
        "timing: GUPnP hypervisor's byebye journalled {:?} after SIGTERM",
        t0.elapsed()
    );
}
