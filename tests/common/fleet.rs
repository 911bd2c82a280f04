//! A fleet: many simulated hypervisors, each its own `xenplug advertise hypervisor` process in
//! a namespace of its own (one routing table per host: in a shared namespace every host's
//! outgoing connections, its NOTIFYs, would leave from the first interface's address), all on
//! one bridge whose ports are isolated from each other (a hypervisor hears the tracker and none
//! of the other hypervisors: a hundred processes parsing each other's announcements would only
//! load the test machine), and a tracker in a namespace of its own on the same bridge.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::binary::{Options, Xenplug};
use super::constants::WAIT;
use super::http::curl;
use super::json::Json;
use super::netns::{Netns, Plug};
use super::procs::{poll_until, TempDir};
use super::sim::{Domain, SimDir};
use super::tracker::Tracker;

/// The tracker's address on the fleet's network.
pub const FLEET_TRACKER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 2);
/// Port of the tracker's read API (on 127.0.0.1 in its namespace).
pub const FLEET_API_PORT: u16 = 8700;

/// Host UUID of fleet hypervisor `host`.
pub fn fleet_host_uuid(host: usize) -> String {
    format!("f1ee0000-{host:04x}-4000-8000-000000000000")
}

/// VM UUID of domain `domain` of fleet hypervisor `host`.
pub fn fleet_vm_uuid(host: usize, domain: usize) -> String {
    format!("f1ee{host:04x}-0000-4000-8000-{domain:012x}")
}

/// Name of domain `domain` of fleet hypervisor `host`.
pub fn fleet_vm_name(host: usize, domain: usize) -> String {
    format!("vm-{host}-{domain}")
}

/// The namespaces, the sim directories and the processes of a fleet.
pub struct Fleet {
    /// The bridge's namespace.
    pub bridge: Netns,
    /// Each hypervisor's namespace (interface eth0), in order.
    pub hosts: Vec<Netns>,
    /// Where the tracker runs (interface eth0, [`FLEET_TRACKER_ADDR`]).
    pub tracker_ns: Netns,
    /// Each hypervisor's sim directory, in order.
    pub sims: Vec<SimDir>,
    /// The hypervisors, in order.
    pub hypervisors: Vec<Xenplug>,
    /// The tracker's repository.
    pub repo: TempDir,
    /// The tracker, once started.
    pub tracker: Option<Tracker>,
    /// Domains per hypervisor at the start.
    pub domains: usize,
}

/// Gives `ns` a leg `eth0` with `address`/16 on the fleet's bridge through its port `port`
/// (isolated from the other isolated ports when `isolated`), multicast routed to it.
fn attach(bridge: &Netns, ns: &Netns, port: &str, address: Ipv4Addr, isolated: bool) {
    bridge.plug(Plug {
        ns,
        port,
        iface: "eth0",
        address,
        prefix: 16,
        isolated,
    });
    ns.ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"]);
}

impl Fleet {
    /// `hosts` hypervisors (1..=250) of `domains` running domains each, all advertising; no
    /// tracker yet.
    pub fn new(tag: &str, hosts: usize, domains: usize) -> Fleet {
        assert!(
            (1..=250).contains(&hosts),
            "a fleet has 1..=250 hypervisors"
        );
        let bridge = Netns::bridge(&format!("{tag}-br"));
        let tracker_ns = Netns::bare(&format!("{tag}-trk"));
        attach(&bridge, &tracker_ns, "ptrk", FLEET_TRACKER_ADDR, false);
        let mut namespaces = Vec::new();
        for host in 0..hosts {
            let ns = Netns::bare(&format!("{tag}-h{host}"));
            let address = Ipv4Addr::new(10, 96, 1, u8::try_from(host + 1).expect("250 at most"));
            attach(&bridge, &ns, &format!("p{host}"), address, true);
            namespaces.push(ns);
        }
        for ns in namespaces.iter().chain([&tracker_ns]) {
            let up = poll_until(WAIT, || {
                ns.ok("ip", &["-o", "link", "show", "eth0"])
                    .contains("LOWER_UP")
                    .then_some(())
            });
            assert!(up.is_some(), "eth0 in {} never came up", ns.name());
        }
        let mut sims = Vec::new();
        let mut hypervisors = Vec::new();
        for (host, ns) in namespaces.iter().enumerate() {
            let sim = SimDir::new(&format!("{tag}-{host}"));
            sim.write_host(&fleet_host_uuid(host), &format!("dom0-{host}"));
            for domain in 0..domains {
                sim.write_domain(&Domain::new(
                    &fleet_vm_uuid(host, domain),
                    &fleet_vm_name(host, domain),
                    "running",
                ));
            }
            hypervisors.push(Xenplug::start_with(ns, &sim, &Options::ifaces(&["eth0"])));
            sims.push(sim);
        }
        Fleet {
            bridge,
            hosts: namespaces,
            tracker_ns,
            sims,
            hypervisors,
            repo: TempDir::new(&format!("{tag}-repo")),
            tracker: None,
            domains,
        }
    }

    /// VMs in the fleet at the start.
    pub fn vms(&self) -> usize {
        self.sims.len() * self.domains
    }

    /// Starts `xenplug track` on the fleet's network with its API on 127.0.0.1, and `extra`
    /// arguments.
    pub fn start_tracker(&mut self, extra: &[&str]) -> Instant {
        let mut args = vec![
            "--net".to_string(),
            "mgmt=eth0:provider".to_string(),
            "--repo".to_string(),
            self.repo.path().display().to_string(),
            "--api".to_string(),
            format!("127.0.0.1:{FLEET_API_PORT}"),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let tracker = Tracker::start(&self.tracker_ns, &args);
        let started = tracker.started;
        self.tracker = Some(tracker);
        started
    }

    /// The tracker's API, `http://127.0.0.1:PORT`.
    pub fn api(&self) -> String {
        format!("http://127.0.0.1:{FLEET_API_PORT}")
    }

    /// `GET /api/status`.
    pub fn status(&self) -> Json {
        let response = curl(&self.tracker_ns, &format!("{}/api/status", self.api()), &[]);
        assert_eq!(response.status, 200, "{response:?}");
        Json::parse(&response.body).expect("the status is JSON")
    }

    /// Records in `hardware/` and `virtual/` of the repository.
    pub fn records(&self) -> (usize, usize) {
        let count = |folder: &str| {
            std::fs::read_dir(self.repo.path().join(folder))
                .map(|entries| entries.filter_map(Result::ok).count())
                .unwrap_or(0)
        };
        (count("hardware"), count("virtual"))
    }

    /// Waits until every hypervisor and VM of the fleet is in the repository and in the
    /// tracker's status; how long after the tracker's start, or `None` after `timeout`.
    pub fn wait_converged(&self, timeout: Duration) -> Option<Duration> {
        let started = self.tracker.as_ref().expect("the tracker runs").started;
        let want = (self.sims.len(), self.vms());
        poll_until(timeout, || {
            if self.records() != want {
                return None;
            }
            let status = self.status();
            let counted = (
                status.get("hypervisors").and_then(Json::u64),
                status.get("vms").and_then(Json::u64),
            );
            (counted == (Some(want.0 as u64), Some(want.1 as u64))).then(|| started.elapsed())
        })
    }

    /// Waits until the API shows every VM of the fleet running (each Domain's initial event
    /// arrived); how long after the tracker's start, or `None` after `timeout`.
    pub fn wait_running(&self, timeout: Duration) -> Option<Duration> {
        let started = self.tracker.as_ref().expect("the tracker runs").started;
        poll_until(timeout, || {
            let tree = curl(&self.tracker_ns, &format!("{}/api/tree", self.api()), &[]);
            let running = tree.body.matches("\"run_state\":\"running\"").count();
            (running == self.vms()).then(|| started.elapsed())
        })
    }

    /// `RcvbufErrors` of UDP in the tracker's namespace (/proc/net/snmp).
    pub fn rcvbuf_errors(&self) -> u64 {
        let snmp = self.tracker_ns.ok("cat", &["/proc/net/snmp"]);
        let rows: Vec<Vec<&str>> = snmp
            .lines()
            .filter(|line| line.starts_with("Udp:"))
            .map(|line| line.split_whitespace().collect())
            .collect();
        let (header, values) = (&rows[0], &rows[1]);
        let at = header
            .iter()
            .position(|name| *name == "RcvbufErrors")
            .expect("RcvbufErrors in /proc/net/snmp");
        values[at].parse().expect("a count")
    }

    /// The tracker's log tail, for failure messages.
    pub fn report(&self) -> String {
        self.tracker
            .as_ref()
            .map_or_else(|| "no tracker".to_string(), Tracker::report)
    }
}
