//! `xenplug demo`, the real binary, inside a namespace whose only interface is `lo`: the tree
//! it prints holds both simulated hosts and the VMs' example services, the repository is
//! written, the example services answer through the tracker, SIGINT stops every child, and a
//! child that dies stops the demo with a message naming it.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use xenplug::role::demo::DEMO_HOSTS;

/// Bound on the demo's start: its own wait for the tree is 20 s, plus the namespace.
const DEMO_WAIT: Duration = Duration::from_secs(40);
/// The last line of the demo's summary.
const SUMMARY_END: &str = "Ctrl-C stops everything";

/// A running demo in its own namespace.
struct Demo {
    ns: Netns,
    proc: Proc,
}

impl Demo {
    /// `xenplug demo ARGS` with `TMPDIR` set to `tmp`; waits for the summary.
    fn start(tag: &str, args: &[&str], tmp: &Path) -> Demo {
        let ns = Netns::new(tag);
        let mut full = vec!["demo"];
        full.extend_from_slice(args);
        let mut command = ns.command(xenplug_bin(), &full);
        command.env("TMPDIR", tmp);
        command.env("XENPLUG_LOG", "debug");
        let proc = ns.spawn("demo", command);
        let demo = Demo { ns, proc };
        let summary = demo
            .proc
            .wait_stdout(DEMO_WAIT, |out| out.contains(SUMMARY_END).then_some(()));
        assert!(
            summary.is_some(),
            "the demo printed no summary within {DEMO_WAIT:?}\n{}",
            demo.proc.report()
        );
        demo
    }

    fn stdout(&self) -> String {
        self.proc.stdout()
    }

    /// The `directory` line of the summary.
    fn directory(&self) -> PathBuf {
        let out = self.stdout();
        let line = out
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("directory"))
            .unwrap_or_else(|| panic!("no directory line:\n{out}"));
        PathBuf::from(line.trim())
    }

    /// The tracker URL of the summary (`tracker API   http://127.0.0.1:P/api/tree`).
    fn tracker(&self) -> String {
        let out = self.stdout();
        let line = out
            .lines()
            .find_map(|l| l.trim_start().strip_prefix("tracker API"))
            .unwrap_or_else(|| panic!("no tracker line:\n{out}"));
        line.trim().trim_end_matches("/api/tree").to_string()
    }

    /// The demo's children: every other process of the namespace.
    fn children(&self) -> BTreeSet<u32> {
        let mut pids = netns_pids(&self.ns);
        pids.remove(&self.proc.pid());
        pids
    }

    /// The child whose command line contains `needle`.
    fn child(&self, needle: &str) -> u32 {
        self.children()
            .into_iter()
            .find(|pid| proc_cmdline(*pid).contains(needle))
            .unwrap_or_else(|| {
                panic!(
                    "no child runs {needle:?}: {:?}",
                    self.children()
                        .iter()
                        .map(|p| proc_cmdline(*p))
                        .collect::<Vec<_>>()
                )
            })
    }

    /// `xenplug console ARGS --tracker URL` in the namespace; (status code, stdout, stderr).
    fn console(&self, args: &[&str]) -> (Option<i32>, String, String) {
        let tracker = self.tracker();
        let token_file = self.directory().join("admin.token");
        let token_file = token_file.to_str().expect("UTF-8 path");
        let mut full = vec!["console"];
        full.extend_from_slice(args);
        full.extend(["--tracker", tracker.as_str(), "--token-file", token_file]);
        let output = self.ns.run(
            xenplug_bin().to_str().expect("UTF-8 path"),
            &full,
            Duration::from_secs(30),
        );
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    /// Waits for the demo to exit; every process of the namespace must be gone with it.
    fn expect_exit(&mut self, what: &str) -> Option<i32> {
        let status = self.proc.wait_exit(Duration::from_secs(20));
        assert!(
            status.is_some(),
            "{what}: the demo did not exit\n{}",
            self.proc.report()
        );
        let demo = self.proc.pid();
        let left = poll_until(Duration::from_secs(5), || {
            let left: Vec<u32> = netns_pids(&self.ns)
                .into_iter()
                .filter(|pid| lingers(*pid, demo))
                .collect();
            left.is_empty().then_some(())
        });
        assert!(
            left.is_some(),
            "{what}: processes left behind: {:?}",
            netns_pids(&self.ns)
                .iter()
                .map(|p| format!("{p}: {}", proc_cmdline(*p)))
                .collect::<Vec<_>>()
        );
        status.and_then(|s| s.code())
    }
}

/// Process group and parent of `pid` from /proc/PID/stat.
fn group_and_parent(pid: u32) -> Option<(u32, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat.get(stat.rfind(')')? + 1..)?.split_whitespace();
    let _state = fields.next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some((group, parent))
}

#[test]
fn demo_prints_the_tree_and_sigint_stops_every_child() {
    let tmp = TempDir::new("demo-tmp");
    let mut demo = Demo::start("demo", &[], tmp.path());
    let out = demo.stdout();
    let ready = out
        .lines()
        .find_map(|l| l.split_once("ready in ").map(|(_, t)| t.to_string()));
    eprintln!(
        "demo: start to printed tree: {}",
        ready.as_deref().unwrap_or("?")
    );

    assert!(!out.contains("still lacks"), "incomplete tree:\n{out}");
    for host in &DEMO_HOSTS {
        assert!(
            out.contains(host.uuid),
            "host {} in the tree:\n{out}",
            host.name
        );
        for domain in host.domains {
            let line = out
                .lines()
                .find(|l| l.contains(domain.uuid))
                .unwrap_or_else(|| panic!("VM {} in the tree:\n{out}", domain.name));
            assert!(line.contains(domain.state), "{line}");
        }
    }
    let advertising = DEMO_HOSTS
        .iter()
        .flat_map(|host| host.domains)
        .filter(|domain| domain.advertises())
        .count();
    assert_eq!(advertising, 3);
    assert_eq!(
        out.matches("SystemInfo:1: GetUptime").count(),
        advertising,
        "{out}"
    );
    let restarts = out
        .lines()
        .filter(|l| {
            l.contains("AppControl:1: RestartApplication") && l.contains("[destructive confirm]")
        })
        .count();
    assert_eq!(restarts, advertising, "{out}");
    assert_eq!(out.matches("tenant acme").count(), advertising, "{out}");

    // The web console serves its page on 127.0.0.1.
    let web = out
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("web console"))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no web console line:\n{out}"));
    assert!(web.starts_with("http://127.0.0.1:"), "{web}");
    let page = http_get(&demo.ns, web);
    assert_eq!(page.status, 200, "GET {web}: {page:?}");

    // The directory is a fresh one under TMPDIR, with the repository in it.
    let dir = demo.directory();
    assert!(
        dir.starts_with(tmp.path()),
        "{} under TMPDIR",
        dir.display()
    );
    let repo = dir.join("repo");
    for host in &DEMO_HOSTS {
        assert!(repo.join("hardware").join(host.uuid).is_file(), "{host:?}");
        for domain in host.domains {
            assert!(
                repo.join("virtual").join(domain.uuid).is_file(),
                "{domain:?}"
            );
            assert_eq!(
                repo.join("tenants/acme").join(domain.uuid).is_file(),
                domain.advertises(),
                "{domain:?}"
            );
        }
    }
    let journal = std::fs::read_to_string(repo.join("events.log")).expect("events.log");
    assert_eq!(
        journal.matches("kind=hypervisor-added").count(),
        2,
        "{journal}"
    );

    // Every child runs this binary in a process group of its own, under the demo.
    let children = demo.children();
    let expected = 1 + 1 + 2 + advertising;
    assert_eq!(
        children.len(),
        expected,
        "{:?}",
        children
            .iter()
            .map(|p| proc_cmdline(*p))
            .collect::<Vec<_>>()
    );
    for pid in &children {
        let (group, parent) = group_and_parent(*pid).expect("child stat");
        assert_eq!(group, *pid, "{}: its own process group", proc_cmdline(*pid));
        assert_eq!(
            parent,
            demo.proc.pid(),
            "{}: a child of the demo",
            proc_cmdline(*pid)
        );
    }
    let lines = children
        .iter()
        .map(|p| proc_cmdline(*p))
        .collect::<Vec<_>>();
    for line in &lines {
        let words: Vec<&str> = line.split(' ').collect();
        for pair in words.windows(2) {
            if pair[0] == "--iface" {
                assert_eq!(pair[1], "lo", "{line}");
            }
        }
    }

    // The example services answer through the tracker; AppControl's restart is simulated.
    let (code, stdout, stderr) = demo.console(&["call", "web", "GetUptime"]);
    assert_eq!(code, Some(0), "GetUptime: {stdout} {stderr}");
    assert!(stdout.contains("Seconds="), "{stdout}");
    let (code, stdout, stderr) = demo.console(&[
        "call",
        "mail",
        "RestartApplication",
        "Application=postfix",
        "--yes",
    ]);
    assert_eq!(code, Some(0), "RestartApplication: {stdout} {stderr}");
    assert!(stdout.contains("Result=restarted postfix"), "{stdout}");
    let last = dir.join("vms/mail/services/AppControl/state/LastRestart");
    let recorded = std::fs::read_to_string(&last).unwrap_or_default();
    assert!(
        recorded.ends_with("postfix\n"),
        "{}: {recorded:?}",
        last.display()
    );
    let (code, stdout, stderr) = demo.console(&[
        "call",
        "mail",
        "RestartApplication",
        "Application=sshd",
        "--yes",
    ]);
    assert_eq!(
        code,
        Some(1),
        "an application the VM does not have: {stdout} {stderr}"
    );
    assert!(stderr.contains("701"), "{stderr}");

    // VM advertisers follow their domains: one shut down loses its advertiser and its
    // services, one resumed gets an advertiser with the example services.
    let web = DEMO_HOSTS[0].domains[0];
    let cache = DEMO_HOSTS[1].domains[1];
    assert_eq!(
        (web.name, cache.name, cache.state),
        ("web", "cache", "paused")
    );
    let (code, stdout, stderr) = demo.console(&["call", "web", "Shutdown", "--yes"]);
    assert_eq!(code, Some(0), "Shutdown: {stdout} {stderr}");
    let (code, stdout, stderr) = demo.console(&["call", "cache", "Resume"]);
    assert_eq!(code, Some(0), "Resume: {stdout} {stderr}");
    let followed = poll_until(Duration::from_secs(15), || {
        let (_, tree, _) = demo.console(&["tree"]);
        let block = |uuid: &str| -> Vec<String> {
            let mut lines = tree.lines().skip_while(|l| !l.contains(uuid));
            let first = lines.next().map(str::to_string);
            first
                .into_iter()
                .chain(lines.take_while(|l| l.contains(": ")).map(str::to_string))
                .collect()
        };
        let web_block = block(web.uuid);
        let cache_block = block(cache.uuid);
        let done = web_block.len() == 1
            && web_block[0].contains("shutoff")
            && cache_block.len() == 3
            && cache_block[0].contains("running");
        done.then_some(())
    });
    assert!(
        followed.is_some(),
        "web shut off without services, cache running with its services:\n{}\n{}",
        demo.console(&["tree"]).1,
        demo.stdout()
    );
    let advertised: Vec<String> = demo
        .children()
        .into_iter()
        .map(proc_cmdline)
        .filter(|line| line.contains("advertise vm"))
        .collect();
    assert!(
        advertised.iter().any(|l| l.contains(cache.uuid))
            && !advertised.iter().any(|l| l.contains(web.uuid)),
        "{advertised:?}"
    );
    assert!(
        demo.stdout()
            .contains("web is shutoff: stopping its VM advertiser"),
        "{}",
        demo.stdout()
    );

    demo.proc.signal(libc::SIGINT);
    let code = demo.expect_exit("SIGINT");
    assert_eq!(code, Some(0), "{}", demo.proc.report());
    assert!(
        !dir.exists(),
        "the temporary directory is removed after a clean stop"
    );
}

#[test]
fn a_child_that_dies_stops_the_demo() {
    let tmp = TempDir::new("demo-die");
    let dir = tmp.path().join("demo");
    let dir_text = dir.to_str().expect("UTF-8 path").to_string();
    let mut demo = Demo::start("demo-die", &["--dir", &dir_text], tmp.path());
    assert_eq!(demo.directory(), dir);
    let mail = DEMO_HOSTS[1].domains[0];
    assert_eq!(mail.name, "mail");
    let pid = demo.child(mail.uuid);
    // SAFETY: kill(2) on a process of the namespace this test created.
    unsafe {
        libc::kill(libc::pid_t::try_from(pid).expect("pid"), libc::SIGKILL);
    }
    let code = demo.expect_exit("a child killed");
    assert_eq!(code, Some(1), "{}", demo.proc.report());
    let stderr = demo.proc.stderr();
    assert!(
        stderr.contains(&format!("the vm mail (pid {pid}) stopped on its own")),
        "the message names the child:\n{stderr}"
    );
    assert!(
        stderr.contains("--- last lines of") && stderr.contains("description at http://127.0.0.1:"),
        "the message shows the child's log tail:\n{stderr}"
    );
    assert!(dir.join("logs/vm-mail.log").is_file(), "--dir is kept");
    assert!(dir.join("repo/events.log").is_file());
}
