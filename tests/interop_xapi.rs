//! The `xapi` backend against a wire-level XenAPI fake (tests/interop/xapi_fake.py, an XML-RPC
//! server on Python's standard library), over a unix socket and over TCP, inside a namespace
//! of the test's own: VMs in the description, host facts, lifecycle actions changing the
//! fake's state, XenAPI failures as UPnP errors, out-of-band changes followed with
//! `event.from`, a lost event stream, an invalidated session and a wrong password.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PASSWORD: &str = "s3cret-xapi";
const HOST_UUID_XAPI: &str = "7a1e0c55-0000-4c3e-9a7f-00000000b001";
const DOM0: &str = "7a1e0c55-d000-4c3e-9a7f-00000000d000";
const TEMPLATE: &str = "7a1e0c55-7000-4c3e-9a7f-00000000e001";
const SNAPSHOT: &str = "7a1e0c55-5000-4c3e-9a7f-00000000e002";
const ELSEWHERE: &str = "7a1e0c55-e000-4c3e-9a7f-00000000e003";
const AWAY_HALTED: &str = "7a1e0c55-a000-4c3e-9a7f-00000000e004";

/// How the fake listens (and, over TCP, writes strings as `<string>`, not untyped as xapi
/// does, so the backend reads both forms).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    Unix,
    Tcp,
}

/// A running fake: its files and the URL to give `--xapi`.
struct XapiFake {
    proc: Proc,
    dir: TempDir,
    url: String,
    commands: usize,
}

fn vm_json(uuid: &str, name: &str, state: &str, extra: &str) -> String {
    format!(
        "{{\"uuid\": \"{uuid}\", \"name_label\": \"{name}\", \"power_state\": \"{state}\", \
         \"VCPUs_max\": 2, \"memory_dynamic_max\": 1073741824{extra}}}"
    )
}

impl XapiFake {
    fn start(ns: &Netns, transport: Transport) -> XapiFake {
        let dir = TempDir::new("xapi-fake");
        let vms = [
            vm_json(VM_WEB, "web", "Running", ""),
            vm_json(VM_DB, "db", "Running", ""),
            vm_json(VM_SPARE, "spare", "Halted", ""),
            vm_json(
                DOM0,
                "Control domain",
                "Running",
                ", \"is_control_domain\": true",
            ),
            vm_json(
                TEMPLATE,
                "Debian template",
                "Halted",
                ", \"is_a_template\": true",
            ),
            vm_json(
                SNAPSHOT,
                "web snapshot",
                "Halted",
                ", \"is_a_snapshot\": true",
            ),
            vm_json(
                ELSEWHERE,
                "on another host",
                "Running",
                ", \"resident\": \"other\"",
            ),
            vm_json(
                AWAY_HALTED,
                "bound elsewhere",
                "Halted",
                ", \"affinity\": \"other\"",
            ),
        ];
        let state = format!(
            "{{\"user\": \"root\", \"password\": \"{PASSWORD}\", \"host\": {{\"uuid\": \
             \"{HOST_UUID_XAPI}\", \"hostname\": \"xcp-test\", \"xen\": \"4.17.4\", \
             \"product_brand\": \"XCP-ng\", \"product_version\": \"8.3.0\", \"cpu_count\": 12, \
             \"memory_total\": 68719476736}}, \"vms\": [{}]}}",
            vms.join(", ")
        );
        let state_path = dir.path().join("state.json");
        fs::write(&state_path, state).expect("write fake state");
        let commands = dir.path().join("commands");
        fs::create_dir_all(&commands).expect("commands dir");
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/interop/xapi_fake.py");
        let socket = dir.path().join("xapi.sock");
        let mut args = vec![
            script.display().to_string(),
            "--state".into(),
            state_path.display().to_string(),
            "--out".into(),
            dir.path().join("out").display().to_string(),
            "--commands".into(),
            commands.display().to_string(),
            "--max-seconds".into(),
            "300".into(),
        ];
        match transport {
            Transport::Unix => args.extend(["--unix".into(), socket.display().to_string()]),
            Transport::Tcp => args.extend(["--tcp".into(), "0".into(), "--typed-strings".into()]),
        }
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = ns.spawn("xapi-fake", ns.command("python3", &arg_refs));
        let url = proc.wait_stdout(WAIT, |out| {
            out.lines()
                .find_map(|line| line.strip_prefix("listening on "))
                .map(|url| url.trim().to_string())
        });
        let url = url.unwrap_or_else(|| panic!("the fake never listened\n{}", proc.report()));
        XapiFake {
            proc,
            dir,
            url,
            commands: 0,
        }
    }

    /// The fake's state as it last wrote it.
    fn out(&self) -> BTreeMap<String, String> {
        fs::read_to_string(self.dir.path().join("out"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn get(&self, key: &str) -> String {
        self.out().get(key).cloned().unwrap_or_default()
    }

    fn count(&self, key: &str) -> u64 {
        self.get(key).parse().unwrap_or(0)
    }

    fn power_state(&self, vm: &str) -> String {
        self.get(&format!("vm.{vm}.power_state"))
    }

    /// Hands the fake a command (atomically: written aside, then renamed).
    fn command(&mut self, json: &str) {
        self.commands += 1;
        let directory = self.dir.path().join("commands");
        let temporary = directory.join(format!("{:06}.tmp", self.commands));
        fs::write(&temporary, json).expect("write command");
        fs::rename(
            &temporary,
            directory.join(format!("{:06}.json", self.commands)),
        )
        .expect("rename command");
    }

    fn password_file(&self, password: &str) -> String {
        let path = self.dir.path().join("password");
        fs::write(&path, format!("{password}\n")).expect("write password");
        path.display().to_string()
    }

    fn xenplug_args(&self, password: &str) -> Vec<String> {
        [
            "--iface",
            "lo",
            "--backend",
            "xapi",
            "--xapi",
            &self.url,
            "--xapi-password-file",
            &self.password_file(password),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// The VM UUIDs the description lists.
fn listed(ns: &Netns, xenplug: &Xenplug) -> Vec<String> {
    let mut vms: Vec<String> = Identity::fetch(ns, &xenplug.url)
        .domains
        .into_iter()
        .map(|(_, vm)| vm)
        .collect();
    vms.sort();
    vms
}

fn control(xenplug: &Xenplug, vm: &str) -> String {
    format!("{}/control/domain/{vm}", xenplug.base())
}

/// Calls a DomainControl action that must succeed.
fn act(ns: &Netns, xenplug: &Xenplug, vm: &str, action: &str) {
    let answer = soap_call(
        ns,
        &control(xenplug, vm),
        SERVICE_DOMAIN_CONTROL,
        action,
        &[],
    );
    assert_eq!(
        answer.status,
        200,
        "{action} {vm}: {}\n{}",
        answer.body,
        xenplug.report()
    );
}

/// Waits until xenplug's GetState of `vm` says `state`.
fn expect_upnp_state(ns: &Netns, xenplug: &Xenplug, vm: &str, state: &str) {
    let seen = poll_until(WAIT, || {
        let answer = soap_call(
            ns,
            &control(xenplug, vm),
            SERVICE_DOMAIN_CONTROL,
            "GetState",
            &[],
        );
        (xml_text(&answer.body, "State") == Some(state)).then_some(())
    });
    assert!(
        seen.is_some(),
        "GetState of {vm} never said {state}\n{}",
        xenplug.report()
    );
}

fn expect_fake_state(fake: &XapiFake, vm: &str, state: &str) {
    let seen = poll_until(WAIT, || (fake.power_state(vm) == state).then_some(()));
    assert!(
        seen.is_some(),
        "the fake never had {vm} {state}: {:?}",
        fake.out()
    );
}

/// Waits until the description lists (or no longer lists) `vm`; returns how long it took.
fn time_until_listed(ns: &Netns, xenplug: &Xenplug, vm: &str, present: bool) -> Duration {
    let started = Instant::now();
    let seen = poll_until(WAIT, || {
        (listed(ns, xenplug).iter().any(|v| v == vm) == present).then_some(())
    });
    assert!(
        seen.is_some(),
        "the description never {} {vm}\n{}",
        if present { "listed" } else { "dropped" },
        xenplug.report()
    );
    started.elapsed()
}

#[test]
fn xapi_over_a_unix_socket() {
    let ns = Netns::new("xapi-unix");
    let mut fake = XapiFake::start(&ns, Transport::Unix);
    assert!(fake.url.starts_with("unix:/"), "{}", fake.url);
    let xenplug = Xenplug::start_args(&ns, &fake.xenplug_args(PASSWORD));
    assert_eq!(fake.get("originator"), "xenplug");
    assert_eq!(fake.get("version"), "1.0");
    assert!(
        !xenplug.log().contains(PASSWORD),
        "the password is never logged"
    );

    // Only this host's guests: not dom0, templates, snapshots, nor VMs placed elsewhere.
    let mut expected = vec![VM_WEB.to_string(), VM_DB.to_string(), VM_SPARE.to_string()];
    expected.sort();
    assert_eq!(listed(&ns, &xenplug), expected, "{}", xenplug.report());

    let hypervisor = format!("{}/control/hypervisor", xenplug.base());
    let info = soap_call(&ns, &hypervisor, SERVICE_HYPERVISOR, "GetHostInfo", &[]);
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(xml_text(&info.body, "HostName"), Some("xcp-test"));
    assert_eq!(xml_text(&info.body, "HostUuid"), Some(HOST_UUID_XAPI));
    assert_eq!(
        xml_text(&info.body, "HypervisorVersion"),
        Some("4.17.4 (XCP-ng 8.3.0)")
    );
    assert_eq!(xml_text(&info.body, "Backend"), Some("xapi"));
    assert_eq!(xml_text(&info.body, "CpuCount"), Some("12"));
    assert_eq!(xml_text(&info.body, "MemoryMiB"), Some("65536"));
    let vm_info = soap_call(
        &ns,
        &control(&xenplug, VM_WEB),
        SERVICE_DOMAIN_CONTROL,
        "GetInfo",
        &[],
    );
    assert_eq!(
        xml_text(&vm_info.body, "MemoryMiB"),
        Some("1024"),
        "{}",
        vm_info.body
    );
    assert_eq!(xml_text(&vm_info.body, "Vcpus"), Some("2"));

    // Lifecycle actions reach the fake, and its events come back.
    act(&ns, &xenplug, VM_WEB, "Pause");
    expect_fake_state(&fake, VM_WEB, "Paused");
    expect_upnp_state(&ns, &xenplug, VM_WEB, "paused");
    act(&ns, &xenplug, VM_WEB, "Resume");
    expect_fake_state(&fake, VM_WEB, "Running");
    expect_upnp_state(&ns, &xenplug, VM_WEB, "running");
    act(&ns, &xenplug, VM_WEB, "Suspend");
    expect_fake_state(&fake, VM_WEB, "Suspended");
    expect_upnp_state(&ns, &xenplug, VM_WEB, "suspended");
    act(&ns, &xenplug, VM_WEB, "Resume");
    expect_fake_state(&fake, VM_WEB, "Running");
    act(&ns, &xenplug, VM_DB, "Reboot");
    assert_eq!(fake.count("calls.VM.clean_reboot"), 1);
    act(&ns, &xenplug, VM_DB, "Shutdown");
    expect_fake_state(&fake, VM_DB, "Halted");
    expect_upnp_state(&ns, &xenplug, VM_DB, "shutoff");
    let start = soap_call(
        &ns,
        &hypervisor,
        SERVICE_HYPERVISOR,
        "StartVirtualMachine",
        &[("VirtualMachineId", VM_DB)],
    );
    assert_eq!(start.status, 200, "{}", start.body);
    expect_fake_state(&fake, VM_DB, "Running");
    act(&ns, &xenplug, VM_DB, "Destroy");
    expect_fake_state(&fake, VM_DB, "Halted");
    expect_upnp_state(&ns, &xenplug, VM_DB, "shutoff");

    // A XenAPI refusal is a UPnP error carrying the XenAPI code.
    let refused = soap_call(
        &ns,
        &control(&xenplug, VM_DB),
        SERVICE_DOMAIN_CONTROL,
        "Pause",
        &[],
    );
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert_eq!(
        xml_text(&refused.body, "errorCode"),
        Some("701"),
        "{}",
        refused.body
    );
    let description = xml_text(&refused.body, "errorDescription").unwrap_or("");
    assert!(
        description.starts_with("VM_BAD_POWER_STATE") && description.contains("halted"),
        "{description}"
    );
    assert_eq!(fake.power_state(VM_DB), "Halted");

    // Out-of-band changes, followed with event.from rather than by reading everything.
    let full_reads = fake.count("calls.VM.get_all_records");
    fake.command(&format!(
        "{{\"op\": \"add_vm\", \"vm\": {}}}",
        vm_json(VM_LATE, "late", "Running", "")
    ));
    let added = time_until_listed(&ns, &xenplug, VM_LATE, true);
    fake.command(&format!(
        "{{\"op\": \"set\", \"uuid\": \"{VM_SPARE}\", \"field\": \"power_state\", \"value\": \
         \"Running\"}}"
    ));
    let started = Instant::now();
    expect_upnp_state(&ns, &xenplug, VM_SPARE, "running");
    let changed = started.elapsed();
    fake.command(&format!(
        "{{\"op\": \"remove_vm\", \"uuid\": \"{VM_LATE}\"}}"
    ));
    let removed = time_until_listed(&ns, &xenplug, VM_LATE, false);
    println!(
        "xapi: out-of-band change seen through the description or GetState after: add {added:?}, \
         power state {changed:?}, remove {removed:?} (event.from waits on the server)"
    );
    assert_eq!(
        fake.count("calls.VM.get_all_records"),
        full_reads,
        "deltas, not full reads"
    );
    assert!(fake.count("calls.event.from") > 2);
    // While nothing changes the server is hardly asked: event.from waits there for a change
    // (measured: no call in 3 quiet seconds; polling every 500 ms made 6). The calls that
    // followed the last change settle first.
    std::thread::sleep(Duration::from_secs(1));
    let asked = fake.count("calls.event.from");
    std::thread::sleep(Duration::from_secs(3));
    let quiet = fake.count("calls.event.from") - asked;
    assert!(quiet <= 2, "{quiet} event.from calls in 3 quiet seconds");

    // A lost event stream: everything is read again, and changes are still followed.
    fake.command("{\"op\": \"lose_events\"}");
    let seen = poll_until(WAIT, || {
        (fake.count("calls.VM.get_all_records") > full_reads).then_some(())
    });
    assert!(
        seen.is_some(),
        "no full read after EVENTS_LOST\n{}",
        xenplug.report()
    );
    fake.command(&format!(
        "{{\"op\": \"set\", \"uuid\": \"{VM_SPARE}\", \"field\": \"power_state\", \"value\": \
         \"Paused\"}}"
    ));
    expect_upnp_state(&ns, &xenplug, VM_SPARE, "paused");
    assert!(
        xenplug.log().contains("events lost"),
        "{}",
        xenplug.report()
    );

    // An invalidated session: xenplug logs in again and carries on.
    let logins = fake.count("logins");
    fake.command("{\"op\": \"invalidate_sessions\"}");
    let seen = poll_until(WAIT, || (fake.count("logins") > logins).then_some(()));
    assert!(seen.is_some(), "no new login\n{}", xenplug.report());
    act(&ns, &xenplug, VM_SPARE, "Resume");
    expect_fake_state(&fake, VM_SPARE, "Running");
    expect_upnp_state(&ns, &xenplug, VM_SPARE, "running");
    assert_eq!(fake.count("failed_logins"), 0);
    let log = xenplug.log();
    assert!(log.contains("logging in again"), "{}", xenplug.report());
    // The failed call was repeated under the new session: no poll failed.
    assert!(
        !log.contains("keeping the last known state"),
        "{}",
        xenplug.report()
    );
    assert!(
        fake.proc.try_status().is_none(),
        "the fake is still up\n{}",
        fake.proc.report()
    );
}

#[test]
fn xapi_over_tcp() {
    let ns = Netns::new("xapi-tcp");
    let fake = XapiFake::start(&ns, Transport::Tcp);
    assert!(fake.url.starts_with("http://127.0.0.1:"), "{}", fake.url);
    let xenplug = Xenplug::start_args(&ns, &fake.xenplug_args(PASSWORD));
    assert!(listed(&ns, &xenplug).contains(&VM_WEB.to_string()));
    act(&ns, &xenplug, VM_WEB, "Pause");
    expect_fake_state(&fake, VM_WEB, "Paused");
    expect_upnp_state(&ns, &xenplug, VM_WEB, "paused");
    let refused = soap_call(
        &ns,
        &control(&xenplug, VM_SPARE),
        SERVICE_DOMAIN_CONTROL,
        "Shutdown",
        &[],
    );
    assert_eq!(
        xml_text(&refused.body, "errorCode"),
        Some("701"),
        "{}",
        refused.body
    );
}

#[test]
fn xapi_wrong_password_stops_the_start() {
    let ns = Netns::new("xapi-pw");
    let fake = XapiFake::start(&ns, Transport::Unix);
    let state = TempDir::new("xapi-pw-state");
    let mut args = vec!["advertise".to_string(), "hypervisor".to_string()];
    args.extend(fake.xenplug_args("not-the-password"));
    args.extend([
        "--state-dir".to_string(),
        state.path().display().to_string(),
    ]);
    let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let program = xenplug_bin();
    let output = run_bounded(
        ns.command(&program, &arg_refs),
        WAIT,
        "xenplug with a wrong XenAPI password",
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("login as \"root\" failed")
            && stderr.contains("SESSION_AUTHENTICATION_FAILED"),
        "{stderr}"
    );
    assert!(!stderr.contains("not-the-password"), "{stderr}");
    assert_eq!(fake.count("failed_logins"), 1);

    // No URL, no password file: usage errors naming the option.
    let output = run_bounded(
        ns.command(
            &program,
            &[
                "advertise",
                "hypervisor",
                "--iface",
                "lo",
                "--backend",
                "xapi",
            ],
        ),
        WAIT,
        "xenplug without --xapi",
    );
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--xapi URL"),
        "{output:?}"
    );
}
