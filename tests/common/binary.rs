//! The binary under test: `xenplug advertise hypervisor` started in a namespace, and the
//! description URL it prints.

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use super::constants::WAIT;
use super::netns::Netns;
use super::procs::{tail, Proc, TempDir};
use super::sim::SimDir;

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
    /// `--control-key FILE`, if set: mutating actions then need a signature made with it.
    pub control_key: Option<PathBuf>,
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
        if let Some(key) = &options.control_key {
            args.extend(["--control-key".to_string(), key.display().to_string()]);
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
    pub(super) fn launch(ns: &Netns, program: &Path, args: &[String], state: TempDir) -> Xenplug {
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

    /// Where its log is, plus the tail of it, for failure messages.
    pub fn report_with_path(&self) -> String {
        format!("xenplug log: {}\n{}", self.proc.log_paths(), self.report())
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
