//! The tracker's test topology: three LANs, `mgmt` (provider: two simulated hypervisors), `acme`
//! and `beta` (tenants: VM advertisers), and a tracker namespace with one leg in each (eth0,
//! eth1, eth2 on 10.99.1.2, 10.99.2.2, 10.99.3.2). The tracker namespace has no multicast route
//! at all: a tracker that does not pin each search to its interface (IP_MULTICAST_IF) gets
//! ENETUNREACH instead of quietly searching on the wrong network.

use std::collections::BTreeMap;
use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::binary::{Options, Xenplug};
use super::http::{curl, HttpResponse};
use super::json::Json;
use super::lan::{Host, Lan};
use super::netns::Netns;
use super::procs::{poll_until, read_lossy, tail, TempDir};
use super::repo_files::{parse_journal, parse_repo_record, JournalEntry};
use super::services_dir::ServicesDir;
use super::sim::{Domain, SimDir};
use super::tracker::{
    track_echo_service, track_vm, Access, TrackVmSpec, Tracker, TRACK_API_PORT, TRACK_GRACE,
    TRACK_HOSTS, TRACK_HOST_NAMES, TRACK_IDENTITIES, TRACK_MAX_AGE, TRACK_VMS,
};
use super::vm::{vm_service_type, VmOptions};

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
    /// Give the hypervisors and the tracker one control key (`--control-key`): the tracker
    /// signs what it relays, the hypervisors need the signature (and no `--allow-control`).
    pub signed: bool,
    /// The tracker's `--tenant-control` (none when `None`).
    pub tenant_control: Option<&'static str>,
    /// Start the tracker without an access file: reads open, every action refused.
    pub open: bool,
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
    /// The tracker's access file ([`TRACK_IDENTITIES`]); the world's API helpers send the
    /// admin's token unless told otherwise.
    pub access: Access,
    /// Where the access file (and the control key) live.
    access_dir: TempDir,
    /// The control key of the hypervisors and the tracker, with [`TrackSetup::signed`].
    pub control_key: Option<PathBuf>,
    /// How it was built.
    pub setup: TrackSetup,
}

/// The tracker's address on its leg in LAN `subnet` (10.99.subnet.2).
pub fn track_leg_addr(subnet: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 99, subnet, 2)
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
        let access_dir = TempDir::new(&format!("{tag}-access"));
        let access = Access::new(access_dir.path(), TRACK_IDENTITIES);
        let control_key = setup.signed.then(|| access.new_key("control.key"));
        let hypervisors: Vec<Xenplug> = (0..2)
            .map(|h| {
                let allow_control = if setup.control_closed || setup.signed {
                    Vec::new()
                } else {
                    vec![track_leg_addr(1).to_string()]
                };
                let options = Options {
                    max_age: Some(setup.hypervisor_max_age.unwrap_or(TRACK_MAX_AGE)),
                    allow_control,
                    control_key: control_key.clone(),
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
            access,
            access_dir,
            control_key,
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
        .chain(
            (!self.setup.open)
                .then(|| {
                    [
                        "--access".to_string(),
                        self.access.path.display().to_string(),
                    ]
                })
                .into_iter()
                .flatten(),
        )
        .chain(
            self.control_key
                .iter()
                .flat_map(|key| ["--control-key".to_string(), key.display().to_string()]),
        )
        .chain(
            self.setup
                .tenant_control
                .iter()
                .flat_map(|actions| ["--tenant-control".to_string(), actions.to_string()]),
        )
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

    /// GET a path of the API from the tracker's namespace, as the admin.
    pub fn api_get(&self, path: &str) -> HttpResponse {
        self.api_get_as("admin", path)
    }

    /// GET a path of the API from the tracker's namespace as identity `name`.
    pub fn api_get_as(&self, name: &str, path: &str) -> HttpResponse {
        curl(
            &self.tracker_ns,
            &format!("{}{path}", self.api()),
            &["-H", &self.access.header(name)],
        )
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

    /// POST a form body to a path of the API from the tracker's namespace, as the admin.
    pub fn api_post_form(&self, path: &str, body: &str) -> HttpResponse {
        self.api_post_form_as("admin", path, body)
    }

    /// POST a form body to a path of the API from the tracker's namespace as identity `name`.
    pub fn api_post_form_as(&self, name: &str, path: &str, body: &str) -> HttpResponse {
        curl(
            &self.tracker_ns,
            &format!("{}{path}", self.api()),
            &[
                "-X",
                "POST",
                "-H",
                "Content-Type: application/x-www-form-urlencoded",
                "-H",
                &self.access.header(name),
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
