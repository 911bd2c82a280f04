//! Several trackers in one etcd cluster: Debian's etcd-server (3 members, started by the test
//! inside a namespace of its own, never a mock), two trackers on two sites (namespaces with
//! their own management LAN and a simulated hypervisor), one console reading etcd.
//!
//! Topology (every address exists only inside the test's namespaces):
//!
//! ```text
//! backbone 10.99.40.0/24:  tracker a (.11), tracker b (.12), console (.13),
//!                          etcd's namespace (members on .31 .32 .33)
//! site a LAN 10.99.41.0/24: hypervisor dom0-a (.11), tracker a's leg mgmt0 (.2)
//! site b LAN 10.99.42.0/24: hypervisor dom0-b (.11), tracker b's leg mgmt0 (.2)
//! ```
//!
//! Needs root and `etcd`/`etcdctl` (Debian's etcd-server and etcd-client; `.ci/run` installs
//! them). Without them the tests fail under `CI=true` and are skipped loudly otherwise.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Lease TTL of the trackers: small, so a killed tracker leaves the view soon.
const TTL: u64 = 3;
/// Bound of the waits for something to reach etcd or the console (measured: under 2 s for
/// publication, TTL + 1 s for expiry; generous for a loaded machine).
const SLOW: Duration = Duration::from_secs(40);
/// Host UUIDs of the two sites' hypervisors.
const HOST_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
const HOST_B: &str = "b2b2b2b2-0000-4000-8000-00000000000b";
/// VMs: web and mover start on A, db on B; mover moves to B; late appears on A.
const WEB: &str = "e7e70001-1111-4a6b-8c9d-000000000001";
const MOVER: &str = "e7e70002-1111-4a6b-8c9d-000000000002";
const DB: &str = "e7e70003-1111-4a6b-8c9d-000000000003";
const LATE: &str = "e7e70004-1111-4a6b-8c9d-000000000004";
const LATER: &str = "e7e70005-1111-4a6b-8c9d-000000000005";

/// Whether etcd and etcdctl are installed; a loud skip (a failure under CI) when not.
fn etcd_present() -> bool {
    let found = [("etcd", "--version"), ("etcdctl", "version")]
        .iter()
        .all(|(tool, version)| {
            Command::new(tool)
                .arg(version)
                .output()
                .is_ok_and(|o| o.status.success())
        });
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "etcd/etcdctl missing: apt-get install etcd-server etcd-client"
        );
        eprintln!("SKIP: etcd/etcdctl missing (apt-get install etcd-server etcd-client)");
    }
    found
}

/// A 3-member etcd cluster in one namespace, on three addresses of its backbone leg.
struct Etcd {
    ns: Netns,
    data: TempDir,
    addresses: [Ipv4Addr; 3],
    members: Vec<Option<Proc>>,
    /// `--user NAME:PASSWORD` for etcdctl once authentication is on.
    user: Option<String>,
}

impl Etcd {
    fn start(backbone: &Lan) -> Etcd {
        let ns = Netns::bare("etcd");
        let addresses = [31, 32, 33].map(|n| Ipv4Addr::new(10, 99, 40, n));
        backbone.attach(&ns, "eth0", addresses[0]);
        for address in &addresses[1..] {
            ns.ip(&["addr", "add", &format!("{address}/24"), "dev", "eth0"]);
        }
        let mut etcd = Etcd {
            ns,
            data: TempDir::new("etcd-data"),
            addresses,
            members: vec![None, None, None],
            user: None,
        };
        for index in 0..3 {
            etcd.start_member(index);
        }
        etcd.wait_healthy(&[0, 1, 2]);
        etcd
    }

    fn start_member(&mut self, index: usize) {
        let cluster = self
            .addresses
            .iter()
            .enumerate()
            .map(|(i, a)| format!("m{i}=http://{a}:2380"))
            .collect::<Vec<_>>()
            .join(",");
        let address = self.addresses[index];
        let name = format!("m{index}");
        let dir = self.data.path().join(&name);
        let args = [
            "--name".to_string(),
            name.clone(),
            "--data-dir".to_string(),
            dir.display().to_string(),
            "--listen-client-urls".to_string(),
            format!("http://{address}:2379"),
            "--advertise-client-urls".to_string(),
            format!("http://{address}:2379"),
            "--listen-peer-urls".to_string(),
            format!("http://{address}:2380"),
            "--initial-advertise-peer-urls".to_string(),
            format!("http://{address}:2380"),
            "--initial-cluster".to_string(),
            cluster,
            "--initial-cluster-state".to_string(),
            "new".to_string(),
            "--initial-cluster-token".to_string(),
            "xenplug-test".to_string(),
            "--log-level".to_string(),
            "warn".to_string(),
            "--logger".to_string(),
            "zap".to_string(),
        ];
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let command = self.ns.command("etcd", &refs);
        self.members[index] = Some(self.ns.spawn(&format!("etcd-{name}"), command));
    }

    /// Client URLs of every member, member 0 first (what every client asks first).
    fn urls(&self) -> String {
        self.addresses
            .iter()
            .map(|a| format!("http://{a}:2379"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `etcdctl ARGS` against `members`, which must succeed; its stdout.
    fn ctl_on(&self, members: &[usize], args: &[&str]) -> String {
        let endpoints = members
            .iter()
            .map(|&i| format!("http://{}:2379", self.addresses[i]))
            .collect::<Vec<_>>()
            .join(",");
        let mut full = vec!["--endpoints", endpoints.as_str(), "--command-timeout", "5s"];
        if let Some(user) = &self.user {
            full.extend(["--user", user.as_str()]);
        }
        full.extend_from_slice(args);
        let mut command = self.ns.command("etcdctl", &full);
        command.env("ETCDCTL_API", "3");
        let output = run_bounded(command, WAIT, &format!("etcdctl {}", args.join(" ")));
        assert!(
            output.status.success(),
            "etcdctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `etcdctl ARGS` against every member still running.
    fn ctl(&self, args: &[&str]) -> String {
        let running: Vec<usize> = (0..3).filter(|&i| self.members[i].is_some()).collect();
        self.ctl_on(&running, args)
    }

    fn wait_healthy(&self, members: &[usize]) {
        let healthy = poll_until(SLOW, || {
            let endpoints = members
                .iter()
                .map(|&i| format!("http://{}:2379", self.addresses[i]))
                .collect::<Vec<_>>()
                .join(",");
            let mut command = self.ns.command(
                "etcdctl",
                &[
                    "--endpoints",
                    &endpoints,
                    "--command-timeout",
                    "2s",
                    "endpoint",
                    "health",
                ],
            );
            command.env("ETCDCTL_API", "3");
            let output = run_bounded(command, WAIT, "etcdctl endpoint health");
            output.status.success().then_some(())
        });
        assert!(
            healthy.is_some(),
            "etcd never became healthy\n{}",
            self.report()
        );
    }

    fn kill(&mut self, index: usize) {
        if let Some(mut member) = self.members[index].take() {
            member.kill();
        }
    }

    fn stop_all(&mut self) {
        for member in self.members.iter_mut().flatten() {
            member.signal(libc::SIGTERM);
        }
        for member in self.members.iter_mut().flatten() {
            if member.wait_exit(WAIT).is_none() {
                member.kill();
            }
        }
        for index in 0..3 {
            self.members[index] = None;
        }
    }

    /// Every key under `prefix` with its value and version, from etcdctl's JSON output.
    fn kvs(&self, prefix: &str) -> BTreeMap<String, (String, u64)> {
        let out = self.ctl(&["get", "--prefix", prefix, "-w", "json"]);
        let json = Json::parse(out.trim()).unwrap_or_else(|e| panic!("etcdctl json: {e}: {out}"));
        json.list("kvs")
            .iter()
            .map(|kv| {
                let key = String::from_utf8(base64(kv.s("key"))).expect("UTF-8 key");
                let value = String::from_utf8(base64(kv.s("value"))).expect("UTF-8 value");
                let version = kv.get("version").and_then(Json::u64).unwrap_or(0);
                (key, (value, version))
            })
            .collect()
    }

    fn report(&self) -> String {
        self.members
            .iter()
            .flatten()
            .map(|m| m.report())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Standard base64 (what etcdctl's JSON writes keys and values in).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let digits: Vec<u8> = text.bytes().filter(|&b| b != b'=').map(value).collect();
    let mut out = Vec::new();
    for group in digits.chunks(4) {
        let mut n = 0u32;
        for (i, d) in group.iter().enumerate() {
            n |= u32::from(*d) << (18 - 6 * i);
        }
        out.extend_from_slice(&[(n >> 16) as u8, (n >> 8) as u8, n as u8][..group.len() - 1]);
    }
    out
}

/// One site: its LAN, its hypervisor and its tracker's namespace and arguments.
struct SiteWorld {
    name: &'static str,
    _lan: Lan,
    sim: SimDir,
    _hypervisor: Xenplug,
    repo: TempDir,
    tracker: Option<Tracker>,
}

/// The whole topology.
struct World {
    backbone: Lan,
    etcd: Etcd,
    sites: Vec<SiteWorld>,
    access: Access,
    dir: TempDir,
    /// `--etcd-user NAME --etcd-password-file FILE` of trackers and console.
    etcd_login: Vec<String>,
}

/// The console's host on the backbone (the trackers' are 0 and 1).
const BACKBONE_CONSOLE: usize = 2;

impl World {
    fn new(tag: &str, auth: bool) -> World {
        let started = Instant::now();
        let backbone = Lan::with_subnet(&format!("{tag}-bb"), 3, 40);
        let mut etcd = Etcd::start(&backbone);
        let dir = TempDir::new(&format!("{tag}-files"));
        let mut etcd_login = Vec::new();
        if auth {
            etcd.ctl(&["user", "add", "root:rootpw"]);
            etcd.ctl(&["user", "add", "xenplug:xppw"]);
            etcd.ctl(&["role", "add", "xenplug"]);
            etcd.ctl(&[
                "role",
                "grant-permission",
                "xenplug",
                "--prefix=true",
                "readwrite",
                "/xenplug/",
            ]);
            etcd.ctl(&["user", "grant-role", "xenplug", "xenplug"]);
            etcd.ctl(&["auth", "enable"]);
            etcd.user = Some("root:rootpw".to_string());
            let password = dir.path().join("etcd.password");
            std::fs::write(&password, "xppw\n").expect("password file");
            etcd_login = vec![
                "--etcd-user".to_string(),
                "xenplug".to_string(),
                "--etcd-password-file".to_string(),
                password.display().to_string(),
            ];
        }
        let access = Access::new(dir.path(), &[("admin", "admin"), ("eve", "viewer")]);
        let sites = [
            ("a", HOST_A, "dom0-a", 41u8, 0usize),
            ("b", HOST_B, "dom0-b", 42, 1),
        ]
        .into_iter()
        .map(|(name, host, host_name, subnet, backbone_index)| {
            let lan = Lan::with_subnet(&format!("{tag}-{name}"), 1, subnet);
            let leg = Ipv4Addr::new(10, 99, subnet, 2);
            lan.attach(&backbone.hosts[backbone_index].ns, "mgmt0", leg);
            let sim = SimDir::new(&format!("{tag}-{name}"));
            sim.write_host(host, host_name);
            let domains: &[(&str, &str)] = if name == "a" {
                &[(WEB, "web"), (MOVER, "mover")]
            } else {
                &[(DB, "db")]
            };
            for (uuid, vm) in domains {
                sim.write_domain(&Domain::new(uuid, vm, "running"));
            }
            let options = Options {
                max_age: Some(30),
                allow_control: vec![leg.to_string()],
                ..Options::ifaces(&["eth0"])
            };
            let hypervisor = Xenplug::start_with(&lan.host(0).ns, &sim, &options);
            SiteWorld {
                name,
                _lan: lan,
                sim,
                _hypervisor: hypervisor,
                repo: TempDir::new(&format!("{tag}-{name}-repo")),
                tracker: None,
            }
        })
        .collect();
        let mut world = World {
            backbone,
            etcd,
            sites,
            access,
            dir,
            etcd_login,
        };
        for site in 0..2 {
            world.start_tracker(site);
        }
        eprintln!("timing: etcd topology {tag} up in {:?}", started.elapsed());
        world
    }

    fn tracker_ns(&self, site: usize) -> &Netns {
        &self.backbone.hosts[site].ns
    }

    fn console_ns(&self) -> &Netns {
        &self.backbone.hosts[BACKBONE_CONSOLE].ns
    }

    fn start_tracker(&mut self, site: usize) {
        let api = format!("{}:8700", self.backbone.hosts[site].addr);
        let args: Vec<String> = [
            "--net",
            "mgmt=mgmt0:provider",
            "--repo",
            &self.sites[site].repo.path().display().to_string(),
            "--api",
            &api,
            "--access",
            &self.access.path.display().to_string(),
            "--etcd",
            &self.etcd.urls(),
            "--site",
            self.sites[site].name,
            "--etcd-ttl",
            &TTL.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(self.etcd_login.iter().cloned())
        .collect();
        let tracker = Tracker::start(self.tracker_ns(site), &args);
        self.sites[site].tracker = Some(tracker);
    }

    fn tracker(&self, site: usize) -> &Tracker {
        self.sites[site].tracker.as_ref().expect("tracker started")
    }

    fn journal(&self, site: usize) -> Vec<JournalEntry> {
        let text = std::fs::read_to_string(self.sites[site].repo.path().join("events.log"))
            .unwrap_or_default();
        parse_journal(&text, true).expect("journal parses")
    }

    /// `xenplug console ARGS --etcd URLS [login]` in the console namespace.
    fn console(&self, args: &[&str], token: Option<&str>) -> std::process::Output {
        let mut full: Vec<String> = vec!["console".to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        full.extend(["--etcd".to_string(), self.etcd.urls()]);
        full.extend(self.etcd_login.iter().cloned());
        if let Some(name) = token {
            full.extend(["--token-file".to_string(), self.token_file(name)]);
        }
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let mut command = self.console_ns().command(xenplug_bin(), &refs);
        command.env("NO_COLOR", "1");
        run_bounded(
            command,
            Duration::from_secs(60),
            &format!("console {args:?}"),
        )
    }

    fn token_file(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(format!("{name}.token"));
        if !path.exists() {
            std::fs::write(&path, format!("{}\n", self.access.token(name))).expect("token file");
        }
        path.display().to_string()
    }

    /// The merged tree as `console tree --etcd --json` prints it.
    fn tree(&self) -> Option<Json> {
        let output = self.console(&["tree", "--json"], None);
        if !output.status.success() {
            return None;
        }
        Json::parse(String::from_utf8_lossy(&output.stdout).trim()).ok()
    }

    /// Starts `console watch --etcd` in the console namespace.
    fn watch(&self) -> Proc {
        let mut full: Vec<String> = vec!["console".into(), "watch".into(), "--etcd".into()];
        full.push(self.etcd.urls());
        full.extend(self.etcd_login.iter().cloned());
        let refs: Vec<&str> = full.iter().map(String::as_str).collect();
        let command = self.console_ns().command(xenplug_bin(), &refs);
        let proc = self.console_ns().spawn("console-watch", command);
        let ready = proc.wait_stdout(SLOW, |out| out.contains("# site b").then_some(()));
        assert!(
            ready.is_some(),
            "console watch never listed the sites\n{}",
            proc.report()
        );
        proc
    }

    fn report(&self) -> String {
        let mut text = String::new();
        for site in &self.sites {
            if let Some(tracker) = &site.tracker {
                text.push_str(&format!(
                    "--- site {} ---\n{}\n",
                    site.name,
                    tracker.report()
                ));
            }
        }
        text
    }
}

/// Whether the merged tree places `vm` on `host`.
fn placed_on(tree: &Json, vm: &str, host: &str) -> bool {
    tree.list("hypervisors")
        .iter()
        .any(|h| h.s("uuid") == host && h.list("vms").iter().any(|v| v.s("uuid") == vm))
}

fn site_live(tree: &Json, site: &str) -> Option<bool> {
    tree.list("sites")
        .iter()
        .find(|s| s.s("site") == site)
        .and_then(|s| match s.get("live") {
            Some(Json::Bool(live)) => Some(*live),
            _ => None,
        })
}

#[test]
fn etcd_two_sites_one_view_calls_routed_migration_and_expiry() {
    if !etcd_present() {
        return;
    }
    let started = Instant::now();
    let mut world = World::new("etcd-view", true);

    // The merged tree: both sites live, each hypervisor with its VMs.
    let tree = poll_until(SLOW, || {
        world.tree().filter(|tree| {
            placed_on(tree, WEB, HOST_A)
                && placed_on(tree, MOVER, HOST_A)
                && placed_on(tree, DB, HOST_B)
                && site_live(tree, "a") == Some(true)
                && site_live(tree, "b") == Some(true)
        })
    });
    assert!(
        tree.is_some(),
        "the merged tree never showed both sites\n{}",
        world.report()
    );
    eprintln!(
        "timing: both sites in the merged tree after {:?}",
        started.elapsed()
    );
    let text = world.console(&["tree"], None);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(
        text.contains("site a: live") && text.contains("site b: live"),
        "{text}"
    );

    // Wrong etcd credentials: a clear refusal.
    let wrong = world.dir.path().join("wrong.password");
    std::fs::write(&wrong, "nope\n").unwrap();
    let mut command = world.console_ns().command(
        xenplug_bin(),
        &[
            "console",
            "tree",
            "--etcd",
            &world.etcd.urls(),
            "--etcd-user",
            "xenplug",
            "--etcd-password-file",
            &wrong.display().to_string(),
        ],
    );
    command.env("NO_COLOR", "1");
    let refused = run_bounded(
        command,
        Duration::from_secs(60),
        "console tree, wrong password",
    );
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("authentication refused"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    let watch = world.watch();

    // A call goes to the tracker of the site placing the target, with the caller's token:
    // the admin may pause web, the viewer may not (the tracker refuses, whatever etcd shows).
    let paused = world.console(&["call", "web", "Pause"], Some("admin"));
    assert!(
        paused.status.success(),
        "console call web Pause: {}\n{}",
        String::from_utf8_lossy(&paused.stderr),
        world.report()
    );
    world.sites[0].sim.expect_state("web", "paused", SLOW);
    let refused = world.console(&["call", "web", "Resume"], Some("eve"));
    assert_eq!(refused.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("403"), "the viewer's call: {stderr}");
    world.sites[0]
        .sim
        .expect_state("web", "paused", Duration::from_secs(1));

    // The page over every site: the merged tree, the feed, and an action routed to site a's
    // tracker with the console's token.
    let listen = format!("{}:8780", world.backbone.hosts[BACKBONE_CONSOLE].addr);
    let mut serve_args: Vec<String> = ["console", "serve", "--listen", &listen, "--etcd"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    serve_args.push(world.etcd.urls());
    serve_args.extend(world.etcd_login.iter().cloned());
    serve_args.extend(["--token-file".to_string(), world.token_file("admin")]);
    let refs: Vec<&str> = serve_args.iter().map(String::as_str).collect();
    let serve = world.console_ns().spawn(
        "console-serve",
        world.console_ns().command(xenplug_bin(), &refs),
    );
    let listening = serve.wait_stdout(SLOW, |out| out.contains("console at http://").then_some(()));
    assert!(
        listening.is_some(),
        "console serve never listened\n{}",
        serve.report()
    );
    let base = format!("http://{listen}");
    let page_tree = curl(world.console_ns(), &format!("{base}/api/tree"), &[]);
    assert_eq!(page_tree.status, 200, "{}", page_tree.body);
    let page_tree = Json::parse(&page_tree.body).expect("the page's tree is JSON");
    assert!(placed_on(&page_tree, WEB, HOST_A) && placed_on(&page_tree, DB, HOST_B));
    assert!(page_tree.get("cursor").and_then(Json::str).is_some());
    let resumed = curl(
        world.console_ns(),
        &format!("{base}/api/vms/{WEB}/actions"),
        &[
            "-H",
            &format!("Origin: {base}"),
            "--data",
            &format!("service={SERVICE_DOMAIN_CONTROL}&action=Resume"),
        ],
    );
    assert_eq!(resumed.status, 200, "{}\n{}", resumed.body, serve.report());
    world.sites[0].sim.expect_state("web", "running", SLOW);
    let told = poll_until(SLOW, || {
        let page = curl(
            world.console_ns(),
            &format!("{base}/api/events?since=0"),
            &[],
        );
        let page = Json::parse(&page.body).ok()?;
        page.list("events")
            .iter()
            .any(|e| {
                e.s("kind") == "vm-state-changed"
                    && e.s("subject") == WEB
                    && e.s("source") == "site a"
            })
            .then_some(())
    });
    assert!(
        told.is_some(),
        "the page's feed never told web's resume\n{}",
        serve.report()
    );
    drop(serve);

    // A VM moving from site a's hypervisor to site b's: listed by b first (as a live migration
    // does), then dropped by a; the merged feed says one vm-migrated.
    world.sites[1]
        .sim
        .write_domain(&Domain::new(MOVER, "mover", "running"));
    let mover_b = format!("/xenplug/sites/b/vms/{MOVER}");
    let at_b = poll_until(SLOW, || {
        world
            .etcd
            .kvs(&mover_b)
            .contains_key(&mover_b)
            .then_some(())
    });
    assert!(
        at_b.is_some(),
        "site b never published mover\n{}",
        world.report()
    );
    world.sites[0].sim.remove_domain("mover");
    let mover_a = format!("/xenplug/sites/a/vms/{MOVER}");
    let gone = poll_until(SLOW, || {
        (!world.etcd.kvs(&mover_a).contains_key(&mover_a)).then_some(())
    });
    assert!(
        gone.is_some(),
        "site a never dropped mover\n{}",
        world.report()
    );
    // A later change on site b marks the end of what the feed has to say about mover.
    world.sites[1]
        .sim
        .write_domain(&Domain::new(DB, "db", "paused"));
    let marker = watch.wait_stdout(SLOW, |out| {
        out.lines()
            .any(|l| l.contains("vm-state-changed") && l.contains(DB))
            .then_some(())
    });
    assert!(
        marker.is_some(),
        "the feed never told db's pause\n{}",
        watch.report()
    );
    let feed = watch.stdout();
    let about_mover: Vec<&str> = feed.lines().filter(|l| l.contains(MOVER)).collect();
    assert_eq!(
        about_mover.len(),
        1,
        "one event about mover in the merged feed: {about_mover:#?}\n{feed}"
    );
    let line = about_mover[0];
    assert!(
        line.contains(" vm-migrated ")
            && line.contains(&format!("from={HOST_A}"))
            && line.contains(&format!("to={HOST_B}"))
            && line.contains("from_site=a"),
        "{line}"
    );
    let tree = world.tree().expect("tree");
    assert!(placed_on(&tree, MOVER, HOST_B) && !placed_on(&tree, MOVER, HOST_A));

    // Tracker b killed: its view expires with its lease, and the console says site b is gone.
    let killed = Instant::now();
    world.sites[1].tracker.as_mut().expect("b").proc.kill();
    let gone = watch.wait_stdout(SLOW, |out| {
        out.lines()
            .any(|l| l.contains("site-gone b") && l.ends_with("site=b"))
            .then_some(())
    });
    assert!(
        gone.is_some(),
        "the feed never said site b is gone\n{}",
        watch.report()
    );
    eprintln!(
        "timing: site b gone {:?} after its tracker was killed (TTL {TTL} s)",
        killed.elapsed()
    );
    assert!(
        world.etcd.kvs("/xenplug/sites/b/").is_empty(),
        "site b's keys expired with its lease"
    );
    let text = world.console(&["tree"], None);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.contains("site b: gone"), "{text}");
    let tree = world.tree().expect("tree");
    assert_eq!(site_live(&tree, "b"), Some(false));
    assert!(
        !placed_on(&tree, DB, HOST_B),
        "nothing of site b in the tree"
    );
    assert!(placed_on(&tree, WEB, HOST_A), "site a goes on");

    // A second tracker claiming site a is refused loudly and publishes nothing.
    let intruder_repo = TempDir::new("etcd-intruder");
    let intruder_args: Vec<String> = [
        "--net",
        "mgmt=mgmt0:provider",
        "--repo",
        &intruder_repo.path().display().to_string(),
        "--api",
        "127.0.0.1:8701",
        "--etcd",
        &world.etcd.urls(),
        "--site",
        "a",
        "--etcd-ttl",
        &TTL.to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(world.etcd_login.iter().cloned())
    .collect();
    let intruder = Tracker::start(world.tracker_ns(0), &intruder_args);
    let refused = intruder.proc.wait_stderr(SLOW, |log| {
        log.contains("REFUSED: site a is held by another tracker")
            .then_some(())
    });
    assert!(refused.is_some(), "{}", intruder.report());
    let tracker_key = world.etcd.kvs("/xenplug/sites/a/tracker");
    let (value, _) = tracker_key.values().next().expect("site a's tracker key");
    assert!(
        value.contains(&world.backbone.hosts[0].addr.to_string()),
        "still the first tracker: {value}"
    );
    eprintln!("timing: etcd view test {:?}", started.elapsed());
}

#[test]
fn etcd_outages_lose_and_duplicate_nothing() {
    if !etcd_present() {
        return;
    }
    let started = Instant::now();
    let mut world = World::new("etcd-outage", false);
    let published = |world: &World, site: usize, vm: &str| {
        let key = format!("/xenplug/sites/{}/vms/{vm}", world.sites[site].name);
        world.etcd.kvs(&key).contains_key(&key)
    };
    let ready = poll_until(SLOW, || {
        (published(&world, 0, WEB) && published(&world, 1, DB)).then_some(())
    });
    assert!(
        ready.is_some(),
        "the sites never reached etcd\n{}",
        world.report()
    );

    // One member killed (the one every client asks first): work goes on, for the trackers
    // and for a console following the feed.
    let watch = world.watch();
    world.etcd.kill(0);
    world.sites[0]
        .sim
        .write_domain(&Domain::new(LATE, "late", "running"));
    let late = poll_until(SLOW, || published(&world, 0, LATE).then_some(()));
    assert!(
        late.is_some(),
        "with a member down, site a never published late\n{}",
        world.report()
    );
    let followed = watch.wait_stdout(SLOW, |out| {
        out.lines()
            .any(|l| l.contains(" vm-added ") && l.contains(LATE))
            .then_some(())
    });
    assert!(
        followed.is_some(),
        "the console's feed stopped with the member\n{}",
        watch.report()
    );
    drop(watch);

    // etcd stopped altogether: the trackers go on with their files and journals.
    world.etcd.stop_all();
    let before: Vec<u64> = (0..2)
        .map(|s| world.journal(s).last().map_or(0, |e| e.seq))
        .collect();
    world.sites[0]
        .sim
        .write_domain(&Domain::new(WEB, "web", "paused"));
    world.sites[0].sim.remove_domain("mover");
    world.sites[1]
        .sim
        .write_domain(&Domain::new(LATER, "later", "running"));
    let journaled = poll_until(SLOW, || {
        let a = world.journal(0);
        let b = world.journal(1);
        (a.iter()
            .any(|e| e.kind == "vm-removed" && e.subject == MOVER)
            && a.iter()
                .any(|e| e.kind == "vm-state-changed" && e.subject == WEB)
            && b.iter().any(|e| e.kind == "vm-added" && e.subject == LATER))
        .then_some(())
    });
    assert!(
        journaled.is_some(),
        "the trackers stopped working without etcd\n{}",
        world.report()
    );
    assert!(world.journal(0).last().map_or(0, |e| e.seq) > before[0]);
    let api = curl(
        world.tracker_ns(0),
        &format!("http://{}:8700/api/tree", world.backbone.hosts[0].addr),
        &["-H", &world.access.header("admin")],
    );
    assert_eq!(api.status, 200, "the read API answers without etcd");

    // The outage lasts until each tracker has noticed it: a request in flight when etcd
    // comes back simply succeeds, and then there is nothing to tell.
    let noticed = poll_until(SLOW, || {
        (0..2)
            .all(|site| {
                world
                    .tracker(site)
                    .log()
                    .lines()
                    .any(|l| l.contains(" warn: etcd: ") || l.contains(" error: etcd: "))
            })
            .then_some(())
    });
    assert!(
        noticed.is_some(),
        "a tracker never told of etcd's outage\n{}",
        world.report()
    );

    // etcd back: each tracker catches it up from its files and journal.
    for index in 0..3 {
        world.etcd.start_member(index);
    }
    world.etcd.wait_healthy(&[0, 1, 2]);
    let restarted = Instant::now();
    let caught_up = poll_until(SLOW, || {
        (0..2)
            .all(|site| {
                let name = world.sites[site].name;
                let last = world.journal(site).last().map_or(0, |e| e.seq);
                let head = world.etcd.kvs(&format!("/xenplug/heads/{name}"));
                head.values().next().is_some_and(|(value, _)| {
                    Json::parse(value)
                        .ok()
                        .and_then(|h| h.get("last_seq").and_then(Json::u64))
                        == Some(last)
                })
            })
            .then_some(())
    });
    assert!(
        caught_up.is_some(),
        "the trackers never caught etcd up\n{}",
        world.report()
    );
    let state = poll_until(SLOW, || {
        (published(&world, 1, LATER) && !published(&world, 0, MOVER)).then_some(())
    });
    assert!(
        state.is_some(),
        "the records never caught up\n{}",
        world.report()
    );
    eprintln!(
        "timing: etcd caught up {:?} after its restart",
        restarted.elapsed()
    );

    // Every journal event is in etcd once, as journaled; nothing else is.
    for site in 0..2 {
        let name = world.sites[site].name;
        let journal = world.journal(site);
        let events = world.etcd.kvs(&format!("/xenplug/events/{name}/"));
        assert_eq!(
            events.len(),
            journal.len(),
            "site {name}: etcd holds {} events, the journal {}",
            events.len(),
            journal.len()
        );
        for (entry, (key, (value, version))) in journal.iter().zip(&events) {
            assert_eq!(key, &format!("/xenplug/events/{name}/{:020}", entry.seq));
            assert_eq!(*version, 1, "{key} written more than once");
            let event = Json::parse(value).expect("an event is JSON");
            assert_eq!(event.get("seq").and_then(Json::u64), Some(entry.seq));
            assert_eq!(event.s("kind"), entry.kind, "{key}");
            assert_eq!(event.s("subject"), entry.subject, "{key}");
        }
        // The outage was told, not once per attempt.
        let log = world.tracker(site).log();
        let warnings: Vec<&str> = log
            .lines()
            .filter(|l| l.contains(" warn: etcd: ") || l.contains(" error: etcd: "))
            .collect();
        eprintln!(
            "site {name}: what the tracker told of etcd's outages:\n{}",
            warnings.join("\n")
        );
        let told = warnings.len();
        assert!(
            (1..=6).contains(&told),
            "site {name}: {told} warnings about etcd\n{}",
            world.tracker(site).report()
        );
        assert!(
            log.contains("etcd: publishing again after"),
            "{}",
            world.tracker(site).report()
        );
    }
    eprintln!("timing: etcd outage test {:?}", started.elapsed());
}
