//! Bounded waits, temporary directories kept when a test fails, and child processes whose
//! output goes to files and which are killed on drop.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

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

/// A number this process has not handed out before (for unique names).
pub(super) fn unique() -> usize {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// `tag` fit for a namespace or file name: lower-case ASCII letters and digits, '-' for the
/// rest, at most 24 characters.
pub(super) fn sanitize(tag: &str) -> String {
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

/// A file's content as text (lossy), or "" if it cannot be read.
pub(super) fn read_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = fs::File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

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

    /// Paths of the files holding its stdout and stderr, for failure messages.
    pub fn log_paths(&self) -> String {
        format!(
            "{} (stdout), {} (stderr)",
            self.stdout_path.display(),
            self.stderr_path.display()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
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
