//! VM advertiser, I/O layer: runs a service's handler executable for one SOAP call, with
//! time, output and concurrency limits. It never goes through a shell, never puts a value on
//! a command line and never leaves a process or a zombie behind.
//!
//! # The handler contract (what a VM owner writes)
//!
//! Each service the owner adds is an SCPD plus one handler executable. A SOAP call to one of
//! the service's actions runs the handler once:
//!
//! - **Command.** `handler <ActionName>`, executed directly (no shell): the action name is
//!   argv\[1\], the working directory is the handler's own folder, stdin is `/dev/null`. The
//!   file must exist and be executable (a script needs its `#!` line); when it cannot be
//!   started the call answers 501 Action Failed with the reason.
//! - **Environment.** Cleared, then only
//!   `PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
//!   `XENPLUG_SERVICE=<service name>`, `XENPLUG_ACTION=<action name>` and one
//!   `XENPLUG_ARG_<Name>=<value>` per in-argument of the call. Values are passed as data,
//!   exactly as received: nothing is interpolated into a command line, so a value such as
//!   `x; rm -rf /` is only ever a string (quote it in your script: `"$XENPLUG_ARG_Name"`). An
//!   argument name other than `[A-Za-z0-9_]+` answers 402 Invalid Args, a value containing
//!   NUL (which no environment can carry) 600 Argument Value Invalid; the handler is not run.
//! - **Success.** Exit status 0, and on stdout one line `Name=value` per out-argument: the
//!   value is everything after the first `=`, with one trailing `\r` removed. Every
//!   out-argument of the action must be present, else the call answers 501 "handler did not
//!   return `<Name>`"; the first line for a name wins; lines with other names (or no `=`) are
//!   ignored. The answer lists the out-arguments in SCPD order, whatever order they were
//!   printed in. Stdout must be UTF-8 (else 501).
//! - **Failure.** A non-zero exit status, or death by a signal, answers 501 Action Failed
//!   with the first non-empty line of stderr as the description (at most 256 bytes, cut with
//!   `...`), or
//!   "handler failed with exit status N" ("handler was killed by signal N") when stderr is
//!   empty. To choose the UPnP error code, print `UPnPError=<code> <description>` on stdout
//!   and exit non-zero: codes 600-899 are answered as given (UDA 1.1 section 3.2.2: 600-699
//!   common action errors, 700-799 action-specific errors of standard actions, 800-899
//!   action-specific errors defined by the vendor, which a VM owner is), with the standard
//!   description when none is given; any other code is refused and the call answers 501. On
//!   exit status 0 a `UPnPError` line is an ordinary, ignored output line.
//! - **Limits.** The handler runs in its own process group. After 10 s (the default) the
//!   whole group, children included, is killed with SIGKILL and the call answers 501
//!   "handler timed out after 10 s". More than 64 KiB on stdout kills the group the same
//!   way and answers 501 "handler output exceeds 65536 bytes". Only the first 4 KiB of
//!   stderr are kept. When the handler exits, whatever it left running in its process group
//!   is killed too: a handler that starts a long-lived program must hand it to the init
//!   system (`systemctl start ...`) or detach it into its own session (`setsid`) with its
//!   stdout and stderr closed or redirected; xenplug does not wait for the output of a
//!   process that left the group. At most 8 handler calls run at once; further calls wait
//!   for a slot (the wait does not count against the time limit).
//!
//! # Implementation
//!
//! `std::process` spawns the handler (`process_group(0)`, environment cleared); its pipes
//! are read through smol's [`Async`], and its exit is awaited by `waitid(WEXITED | WNOWAIT)`
//! on smol's blocking pool ([`smol::unblock`]). `smol::process` (async-process) was not used
//! because its `Child` reaps the process as soon as it reports the exit: the process group
//! id could then be reused by an unrelated group before the leftovers of ours are killed.
//! With `WNOWAIT` the handler stays a zombie, holding its group id, until the group has been
//! killed; then it is reaped. If the caller drops the call midway, the group is killed and
//! the reaping is handed to the blocking pool, so no path leaves a zombie.

use crate::net::event_loop::on_thread;
use std::future::{poll_fn, Future};
use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::pin::{pin, Pin};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use smol::io::AsyncRead;
use smol::lock::Semaphore;
use smol::{Async, Timer};

use crate::consts::HANDLER_TIMEOUT;
use crate::wire::soap::{self, UpnpError};

/// Bytes a handler may write on stdout; more and the call is killed and answers 501.
const HANDLER_MAX_OUTPUT: usize = 64 * 1024;
/// Bytes of a handler's stderr kept (the rest is read and dropped).
const HANDLER_MAX_ERROR: usize = 4 * 1024;
/// Handler calls running at once, at most; more wait for a slot.
const HANDLER_MAX_CALLS: usize = 8;
/// After a handler has exited (and its process group has been killed), its pipes are read
/// for at most this long: only a process that left the group (setsid) can still hold them.
const HANDLER_DRAIN_GRACE: Duration = Duration::from_millis(200);
/// The only PATH a handler gets; the rest of its environment is cleared.
const HANDLER_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// Environment variable naming the service a handler is called for.
const HANDLER_ENV_SERVICE: &str = "XENPLUG_SERVICE";
/// Environment variable naming the action (also argv\[1\]).
const HANDLER_ENV_ACTION: &str = "XENPLUG_ACTION";
/// Prefix of the environment variable carrying one in-argument: `XENPLUG_ARG_<Name>`.
const HANDLER_ENV_ARG_PREFIX: &str = "XENPLUG_ARG_";
/// Name of the stdout line by which a failing handler chooses its UPnP error:
/// `UPnPError=<code> <description>`.
const HANDLER_ERROR_LINE: &str = "UPnPError";

/// What one handler call may spend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Time the handler may run before its process group is killed
    /// ([`HANDLER_TIMEOUT`] by default).
    pub timeout: Duration,
    /// Bytes of stdout accepted; one more kills the call (`HANDLER_MAX_OUTPUT`).
    pub max_output: usize,
    /// Bytes of stderr kept; the rest is read and dropped (`HANDLER_MAX_ERROR`).
    pub max_error: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: HANDLER_TIMEOUT,
            max_output: HANDLER_MAX_OUTPUT,
            max_error: HANDLER_MAX_ERROR,
        }
    }
}

/// One action call to run.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The handler executable.
    pub handler: &'a Path,
    /// The service's name (`XENPLUG_SERVICE`).
    pub service: &'a str,
    /// The action's name (argv\[1\] and `XENPLUG_ACTION`).
    pub action: &'a str,
    /// In-arguments, in the order received: `XENPLUG_ARG_<name>=<value>`.
    pub arguments: &'a [(String, String)],
    /// Out-argument names in SCPD order: what the handler must print, and the order of the
    /// answer.
    pub outputs: &'a [&'a str],
}

/// Runs handler calls, at most `HANDLER_MAX_CALLS` at once. The VM advertiser keeps one
/// and shares it among its connections; calls beyond the bound wait for a slot.
#[derive(Debug)]
pub struct Runner {
    limits: Limits,
    slots: Semaphore,
}

impl Runner {
    /// A runner applying `limits` to every call.
    pub fn new(limits: Limits) -> Self {
        Runner {
            limits,
            slots: Semaphore::new(HANDLER_MAX_CALLS),
        }
    }

    /// The limits applied to every call.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `call` once a slot is free (see the module doc for the contract): the
    /// out-arguments as `(name, value)` in SCPD order, or the UPnP error to answer.
    pub async fn run(&self, call: Call<'_>) -> Result<Vec<(String, String)>, UpnpError> {
        let _slot = self.slots.acquire().await;
        let result = run(call, &self.limits).await;
        if let Err(error) = &result {
            log::info!("handler {} {}: {error}", call.service, call.action);
        }
        result
    }
}

/// How supervising a running handler ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// It exited (its pipes were read to the end, or for [`HANDLER_DRAIN_GRACE`]).
    Exited,
    /// It wrote more than `max_output` bytes on stdout.
    Overflow,
    /// It was still running at the time limit.
    TimedOut,
}

/// What was read from one pipe.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
    /// More than the bound arrived (stdout only: reading stopped there).
    overflow: bool,
}

/// Runs one call without the concurrency bound.
async fn run(call: Call<'_>, limits: &Limits) -> Result<Vec<(String, String)>, UpnpError> {
    let mut command = command(&call)?;
    let mut child = command
        .spawn()
        .map_err(|error| UpnpError::action_failed(format!("cannot start handler: {error}")))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let group = Group { child: Some(child) };
    let (Some(stdout), Some(stderr)) = (stdout, stderr) else {
        return Err(UpnpError::action_failed("handler pipes missing"));
    };
    let pipes = Async::new(stdout).and_then(|stdout| Ok((stdout, Async::new(stderr)?)));
    let (stdout, stderr) = pipes.map_err(|error| {
        UpnpError::action_failed(format!("cannot watch handler pipes: {error}"))
    })?;

    let (end, output, errors) = supervise(&group, stdout, stderr, limits).await;
    let status = group.reap();
    match end {
        End::Overflow => Err(UpnpError::action_failed(format!(
            "handler output exceeds {} bytes",
            limits.max_output
        ))),
        End::TimedOut => Err(UpnpError::action_failed(format!(
            "handler timed out after {} s",
            limits.timeout.as_secs_f64()
        ))),
        End::Exited => match status {
            Some(status) if status.success() => parse_outputs(&output.bytes, call.outputs),
            Some(status) => Err(failure(status, &output.bytes, &errors.bytes)),
            None => Err(UpnpError::action_failed("handler exit status unknown")),
        },
    }
}

/// The command for `call`, after refusing what cannot be passed.
fn command(call: &Call<'_>) -> Result<Command, UpnpError> {
    for (name, value) in call.arguments {
        if !is_argument_name(name) {
            return Err(UpnpError::invalid_args());
        }
        if value.contains('\0') {
            return Err(UpnpError::from_code(soap::ARGUMENT_VALUE_INVALID));
        }
    }
    // Absolute, so that the program does not depend on the working directory set below.
    let handler = std::path::absolute(call.handler)
        .map_err(|error| UpnpError::action_failed(format!("bad handler path: {error}")))?;
    let folder = handler
        .parent()
        .ok_or_else(|| UpnpError::action_failed("handler path names no file"))?;
    let mut command = Command::new(&handler);
    command
        .arg(call.action)
        .current_dir(folder)
        .env_clear()
        .env("PATH", HANDLER_PATH)
        .env(HANDLER_ENV_SERVICE, call.service)
        .env(HANDLER_ENV_ACTION, call.action)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    for (name, value) in call.arguments {
        command.env(format!("{HANDLER_ENV_ARG_PREFIX}{name}"), value);
    }
    Ok(command)
}

/// `[A-Za-z0-9_]+`: what may follow `XENPLUG_ARG_` in a variable name.
fn is_argument_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

/// Reads both pipes and waits for the exit, until the handler has exited and its pipes are
/// drained, it overflows stdout, or the time limit passes. The group is killed on every
/// way out, and the handler has exited (not yet reaped) when this returns, unless waiting
/// for it failed. What was read is kept whichever way it ends.
async fn supervise<O, E>(
    group: &Group,
    stdout: O,
    stderr: E,
    limits: &Limits,
) -> (End, Captured, Captured)
where
    O: AsyncRead + Unpin,
    E: AsyncRead + Unpin,
{
    let mut deadline = match Instant::now().checked_add(limits.timeout) {
        Some(at) => Timer::at(at),
        None => Timer::never(),
    };
    let mut output = Pipe::new(stdout, limits.max_output, true);
    let mut errors = Pipe::new(stderr, limits.max_error, false);
    let mut exiting = pin!(group.exited());
    let mut exited = false;
    let mut grace: Option<Timer> = None;

    let end = poll_fn(|cx| {
        let output_done = output.poll_drain(cx).is_ready();
        let errors_done = errors.poll_drain(cx).is_ready();
        if !exited {
            if let Poll::Ready(result) = exiting.as_mut().poll(cx) {
                exited = true;
                if let Err(error) = result {
                    log::warn!("waiting for handler: {error}");
                }
                // Leftovers in the group go now; only a process that left the group can
                // still hold the pipes, and it gets a short grace.
                group.kill();
                grace = Some(Timer::after(HANDLER_DRAIN_GRACE));
            }
        }
        if output.captured.overflow {
            return Poll::Ready(End::Overflow);
        }
        if exited && output_done && errors_done {
            return Poll::Ready(End::Exited);
        }
        if let Some(timer) = grace.as_mut() {
            if Pin::new(timer).poll(cx).is_ready() {
                return Poll::Ready(End::Exited);
            }
        }
        if Pin::new(&mut deadline).poll(cx).is_ready() {
            return Poll::Ready(if exited { End::Exited } else { End::TimedOut });
        }
        Poll::Pending
    })
    .await;

    group.kill();
    if !exited {
        if let Err(error) = exiting.await {
            log::warn!("waiting for killed handler: {error}");
        }
    }
    (end, output.captured, errors.captured)
}

/// Chunks read from one pipe in one poll, at most, so that a flooding handler cannot keep
/// the executor (and the time limit) from running.
const READS_PER_POLL: usize = 16;

/// One of the handler's pipes and what was read from it.
struct Pipe<R> {
    reader: R,
    /// Bytes kept, at most.
    keep: usize,
    /// Stop reading (and mark `overflow`) once more than `keep` bytes arrived.
    stop_over: bool,
    captured: Captured,
    /// End of file, a read error, or an overflow: nothing more is read.
    done: bool,
}

impl<R: AsyncRead + Unpin> Pipe<R> {
    fn new(reader: R, keep: usize, stop_over: bool) -> Self {
        Pipe {
            reader,
            keep,
            stop_over,
            captured: Captured::default(),
            done: false,
        }
    }

    /// Reads what is available; ready once the pipe is done.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut chunk = [0u8; 4096];
        for _ in 0..READS_PER_POLL {
            if self.done {
                return Poll::Ready(());
            }
            match Pin::new(&mut self.reader).poll_read(cx, &mut chunk) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) => self.done = true,
                Poll::Ready(Ok(count)) => self.take(chunk.get(..count).unwrap_or_default()),
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::Interrupted => {}
                Poll::Ready(Err(error)) => {
                    log::debug!("reading handler pipe: {error}");
                    self.done = true;
                }
            }
        }
        if self.done {
            return Poll::Ready(());
        }
        // More may be waiting: come back after the others had their turn.
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// Keeps what fits of `bytes`.
    fn take(&mut self, bytes: &[u8]) {
        let room = self.keep.saturating_sub(self.captured.bytes.len());
        if bytes.len() > room {
            self.captured
                .bytes
                .extend_from_slice(bytes.get(..room).unwrap_or_default());
            if self.stop_over {
                self.captured.overflow = true;
                self.done = true;
            }
        } else {
            self.captured.bytes.extend_from_slice(bytes);
        }
    }
}

/// The handler process, owned until reaped. Dropping it unreaped kills the group and hands
/// the reaping to smol's blocking pool.
struct Group {
    child: Option<Child>,
}

impl Group {
    /// The handler's pid, which is also its process group id (`process_group(0)`).
    fn pid(&self) -> Option<libc::pid_t> {
        let child = self.child.as_ref()?;
        libc::pid_t::try_from(child.id()).ok()
    }

    /// Sends SIGKILL to the whole group and to the handler itself (in case it moved to
    /// another group). Safe while the handler is unreaped: its ids cannot be reused.
    fn kill(&self) {
        if let Some(pid) = self.pid() {
            // SAFETY: plain syscalls on ids we own; errors (ESRCH: already gone) are fine.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Resolves once the handler has exited, without reaping it.
    fn exited(&self) -> impl Future<Output = io::Result<()>> + 'static {
        let pid = self.pid();
        async move {
            match pid {
                Some(pid) => on_thread(move || wait_exited(pid))
                    .await
                    .unwrap_or_else(|| Err(io::Error::other("waiting for the handler failed"))),
                None => Ok(()),
            }
        }
    }

    /// Kills what is left of the group and reaps the handler, which must have exited. When
    /// it has not (waiting failed), it is left to `Drop`, and there is no status.
    fn reap(mut self) -> Option<ExitStatus> {
        self.kill();
        let mut child = self.child.take()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status),
            Ok(None) => {
                self.child = Some(child);
                None
            }
            Err(error) => {
                log::warn!("reaping handler: {error}");
                None
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
        if let Some(mut child) = self.child.take() {
            // Reaped off the loop; the thread ends with the child.
            let reaping = std::thread::Builder::new()
                .name("xenplug-reap".to_string())
                .spawn(move || {
                    if let Err(error) = child.wait() {
                        log::warn!("reaping handler: {error}");
                    }
                });
            if let Err(error) = reaping {
                log::warn!("reaping handler: cannot start a thread: {error}");
            }
        }
    }
}

/// Blocks until process `pid` has exited, leaving it unreaped (`WNOWAIT`).
fn wait_exited(pid: libc::pid_t) -> io::Result<()> {
    let id = libc::id_t::try_from(pid).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    loop {
        // SAFETY: siginfo_t is plain data that waitid fills in; all-zero is a valid value.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the duration of the call.
        let result =
            unsafe { libc::waitid(libc::P_PID, id, &mut info, libc::WEXITED | libc::WNOWAIT) };
        if result == 0 {
            return Ok(());
        }
        let error = io::Error::last_os_error();
        if error.kind() != io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// `Name=value` pairs of `text`'s lines: value after the first `=`, one trailing `\r` off.
fn output_lines(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split('\n').filter_map(|line| {
        let line = line.strip_suffix('\r').unwrap_or(line);
        line.split_once('=')
    })
}

/// The out-arguments of a successful call, in `outputs` order.
fn parse_outputs(stdout: &[u8], outputs: &[&str]) -> Result<Vec<(String, String)>, UpnpError> {
    let text = std::str::from_utf8(stdout)
        .map_err(|_| UpnpError::action_failed("handler output is not UTF-8"))?;
    let mut values: Vec<Option<&str>> = vec![None; outputs.len()];
    for (name, value) in output_lines(text) {
        let slot = outputs
            .iter()
            .position(|wanted| *wanted == name)
            .and_then(|index| values.get_mut(index));
        match slot {
            Some(slot @ None) => *slot = Some(value),
            Some(Some(_)) => log::debug!("handler repeated output {}", soap::capped(name)),
            None => log::debug!("handler returned unknown output {}", soap::capped(name)),
        }
    }
    outputs
        .iter()
        .zip(values)
        .map(|(name, value)| match value {
            Some(value) => Ok(((*name).to_owned(), value.to_owned())),
            None => Err(UpnpError::action_failed(format!(
                "handler did not return {name}"
            ))),
        })
        .collect()
}

/// The error for a handler that exited with `status` other than 0.
fn failure(status: ExitStatus, stdout: &[u8], stderr: &[u8]) -> UpnpError {
    let output = String::from_utf8_lossy(stdout);
    if let Some((_, chosen)) = output_lines(&output).find(|(name, _)| *name == HANDLER_ERROR_LINE) {
        return chosen_error(chosen);
    }
    let errors = String::from_utf8_lossy(stderr);
    if let Some(line) = errors.lines().map(str::trim).find(|line| !line.is_empty()) {
        return UpnpError::action_failed(line.to_owned());
    }
    match (status.code(), status.signal()) {
        (Some(code), _) => {
            UpnpError::action_failed(format!("handler failed with exit status {code}"))
        }
        (None, Some(signal)) => {
            UpnpError::action_failed(format!("handler was killed by signal {signal}"))
        }
        (None, None) => UpnpError::action_failed("handler failed"),
    }
}

/// The error a handler chose with `UPnPError=<code> <description>` (`value` is what follows
/// the `=`). Only 600-899 are a handler's to choose (UDA 1.1 section 3.2.2); 4xx and 5xx
/// belong to the device.
fn chosen_error(value: &str) -> UpnpError {
    let value = value.trim();
    let (code, description) = value.split_once(char::is_whitespace).unwrap_or((value, ""));
    let description = description.trim();
    let parsed = if !code.is_empty() && code.bytes().all(|byte| byte.is_ascii_digit()) {
        code.parse::<u16>().ok()
    } else {
        None
    };
    match parsed {
        Some(code) if (soap::ARGUMENT_VALUE_INVALID..=soap::VENDOR_LAST).contains(&code) => {
            if description.is_empty() {
                UpnpError::from_code(code)
            } else {
                UpnpError::new(code, description.to_owned())
            }
        }
        Some(code) => {
            UpnpError::action_failed(format!("handler chose error code {code}, outside 600-899"))
        }
        None => UpnpError::action_failed("handler printed a malformed UPnPError line"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Fails the test instead of hanging when `future` takes more than 30 s.
    fn block_on<T>(future: impl Future<Output = T>) -> T {
        smol::block_on(smol::future::or(future, async {
            Timer::after(Duration::from_secs(30)).await;
            panic!("test took more than 30 s");
        }))
    }

    /// A fresh folder for one test.
    fn folder(tag: &str) -> PathBuf {
        let folder =
            std::env::temp_dir().join(format!("xenplug-handler-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&folder);
        std::fs::create_dir_all(&folder).unwrap();
        folder
    }

    /// Writes an executable `handler` with `script` into `folder`. The executable is made by
    /// `cp` in a child process: a file this process had open for writing could be inherited
    /// by a handler another test forks meanwhile, and exec would fail with ETXTBSY.
    fn handler(folder: &Path, script: &str) -> PathBuf {
        let source = folder.join("handler.txt");
        std::fs::write(&source, script).unwrap();
        let path = folder.join("handler");
        let copied = Command::new("/bin/cp")
            .arg(&source)
            .arg(&path)
            .status()
            .unwrap();
        assert!(copied.success());
        let chmod = Command::new("/bin/chmod")
            .arg("755")
            .arg(&path)
            .status()
            .unwrap();
        assert!(chmod.success());
        path
    }

    fn call<'a>(
        handler: &'a Path,
        arguments: &'a [(String, String)],
        outputs: &'a [&'a str],
    ) -> Call<'a> {
        Call {
            handler,
            service: "Backup",
            action: "Start",
            arguments,
            outputs,
        }
    }

    fn run_default(call: Call<'_>) -> Result<Vec<(String, String)>, UpnpError> {
        block_on(Runner::new(Limits::default()).run(call))
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn read_pid(path: &Path) -> libc::pid_t {
        std::fs::read_to_string(path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// The pid is not in /proc: exited and reaped.
    fn gone(pid: libc::pid_t) -> bool {
        !Path::new(&format!("/proc/{pid}")).exists()
    }

    /// The pid is gone or a zombie (a grandchild is reaped by whoever adopted it, not us).
    /// Waits up to 10 s for the kill to land.
    fn dead(pid: libc::pid_t) -> bool {
        for _ in 0..200 {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) => {
                    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                    if state.starts_with('Z') || state.starts_with('X') {
                        return true;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    #[test]
    fn outputs_come_back_in_scpd_order() {
        let folder = folder("order");
        let path = handler(
            &folder,
            "#!/bin/sh\nprintf 'B=2\\nnoise\\n\\nA=1=x\\r\\nC=\\nOther=9\\nB=repeated\\n'\n",
        );
        let outputs = ["A", "B", "C"];
        assert_eq!(
            run_default(call(&path, &[], &outputs)),
            Ok(pairs(&[("A", "1=x"), ("B", "2"), ("C", "")]))
        );
    }

    #[test]
    fn the_handler_gets_the_action_a_cleared_environment_and_its_folder() {
        let folder = folder("env");
        let path = handler(
            &folder,
            "#!/bin/sh\n\
             echo \"Argv=$1\"\n\
             echo \"Service=$XENPLUG_SERVICE\"\n\
             echo \"Action=$XENPLUG_ACTION\"\n\
             echo \"Value=$XENPLUG_ARG_Target\"\n\
             echo \"Home=${HOME-unset}\"\n\
             echo \"Path=$PATH\"\n\
             echo \"Dir=$(pwd)\"\n\
             if read line; then echo Stdin=data; else echo Stdin=empty; fi\n\
             echo \"Names=$(env | cut -d= -f1 | sort | tr '\\n' ' ')\"\n",
        );
        let arguments = pairs(&[("Target", "/srv/data")]);
        let outputs = [
            "Argv", "Service", "Action", "Value", "Home", "Path", "Dir", "Stdin", "Names",
        ];
        let result = run_default(call(&path, &arguments, &outputs)).unwrap();
        let value = |name: &str| {
            result
                .iter()
                .find(|(key, _)| key == name)
                .map(|(_, value)| value.clone())
                .unwrap()
        };
        assert_eq!(value("Argv"), "Start");
        assert_eq!(value("Service"), "Backup");
        assert_eq!(value("Action"), "Start");
        assert_eq!(value("Value"), "/srv/data");
        assert_eq!(value("Home"), "unset");
        assert_eq!(value("Path"), HANDLER_PATH);
        let canonical = std::fs::canonicalize(&folder).unwrap();
        assert_eq!(Path::new(&value("Dir")), canonical);
        assert_eq!(value("Stdin"), "empty");
        // What the shell adds by itself (PWD; SHLVL and _ where sh is bash) is allowed.
        let shell_own = ["PWD", "OLDPWD", "SHLVL", "_"];
        let names = value("Names");
        for name in names.split_whitespace() {
            let ours = [
                "PATH",
                HANDLER_ENV_SERVICE,
                HANDLER_ENV_ACTION,
                "XENPLUG_ARG_Target",
            ];
            assert!(
                ours.contains(&name) || shell_own.contains(&name),
                "unexpected variable {name} in {names}"
            );
        }
        assert!(names.contains("XENPLUG_ARG_Target"));
    }

    #[test]
    fn a_missing_output_is_501() {
        let folder = folder("missing");
        let path = handler(&folder, "#!/bin/sh\necho A=1\n");
        let outputs = ["A", "B"];
        assert_eq!(
            run_default(call(&path, &[], &outputs)),
            Err(UpnpError::action_failed("handler did not return B"))
        );
    }

    #[test]
    fn a_failing_handler_answers_its_first_stderr_line() {
        let folder = folder("stderr");
        let path = handler(
            &folder,
            "#!/bin/sh\necho A=1\necho >&2\necho '  disk full  ' >&2\necho second >&2\nexit 3\n",
        );
        assert_eq!(
            run_default(call(&path, &[], &["A"])),
            Err(UpnpError::action_failed("disk full"))
        );
    }

    #[test]
    fn a_failing_handler_without_stderr_answers_its_status() {
        let folder = folder("status");
        let path = handler(&folder, "#!/bin/sh\nexit 3\n");
        assert_eq!(
            run_default(call(&path, &[], &[])),
            Err(UpnpError::action_failed(
                "handler failed with exit status 3"
            ))
        );
        let path = handler(&folder, "#!/bin/sh\nkill -9 $$\n");
        assert_eq!(
            run_default(call(&path, &[], &[])),
            Err(UpnpError::action_failed("handler was killed by signal 9"))
        );
    }

    #[test]
    fn a_handler_chooses_a_code_from_600_to_899() {
        let folder = folder("chosen");
        let path = handler(
            &folder,
            "#!/bin/sh\necho 'UPnPError=712 Already running'\necho ignored >&2\nexit 1\n",
        );
        assert_eq!(
            run_default(call(&path, &[], &[])),
            Err(UpnpError::new(712, "Already running"))
        );
    }

    #[test]
    fn a_handler_cannot_choose_another_code() {
        let folder = folder("refused");
        let path = handler(&folder, "#!/bin/sh\necho 'UPnPError=200 x'\nexit 1\n");
        let error = run_default(call(&path, &[], &[])).unwrap_err();
        assert_eq!(error.code, soap::ACTION_FAILED);
        let path = handler(&folder, "#!/bin/sh\necho 'UPnPError=401 x'\nexit 1\n");
        let error = run_default(call(&path, &[], &[])).unwrap_err();
        assert_eq!(error.code, soap::ACTION_FAILED);
    }

    #[test]
    fn an_error_line_on_success_is_an_ordinary_output() {
        let folder = folder("success-line");
        let path = handler(&folder, "#!/bin/sh\necho 'UPnPError=712 no'\necho A=1\n");
        assert_eq!(
            run_default(call(&path, &[], &["A"])),
            Ok(pairs(&[("A", "1")]))
        );
    }

    #[test]
    fn values_reach_the_handler_as_data() {
        let folder = folder("injection");
        let marker =
            std::env::temp_dir().join(format!("xenplug-handler-injected-{}", std::process::id()));
        let _ = std::fs::remove_file(&marker);
        let hostile = [
            format!("x; touch {}", marker.display()),
            format!("$(touch {})", marker.display()),
            format!("`touch {}`", marker.display()),
            format!("' \"; touch {} #", marker.display()),
        ];
        let path = handler(&folder, "#!/bin/sh\necho \"Got=$XENPLUG_ARG_Name\"\n");
        for value in &hostile {
            let arguments = vec![("Name".to_owned(), value.clone())];
            assert_eq!(
                run_default(call(&path, &arguments, &["Got"])),
                Ok(pairs(&[("Got", value)]))
            );
        }
        assert!(!marker.exists());
    }

    #[test]
    fn what_cannot_be_passed_is_refused_before_running() {
        let folder = folder("refuse");
        let path = handler(&folder, "#!/bin/sh\ntouch ran\n");
        let nul = pairs(&[("Name", "a\0b")]);
        assert_eq!(
            run_default(call(&path, &nul, &[])),
            Err(UpnpError::from_code(soap::ARGUMENT_VALUE_INVALID))
        );
        for name in ["A-B", "", "A=B", "Ä", "A B"] {
            let bad_name = vec![(name.to_owned(), "v".to_owned())];
            assert_eq!(
                run_default(call(&path, &bad_name, &[])),
                Err(UpnpError::invalid_args())
            );
        }
        assert!(!folder.join("ran").exists());
    }

    #[test]
    fn a_slow_handler_and_its_children_are_killed_at_the_limit() {
        let folder = folder("timeout");
        let path = handler(
            &folder,
            "#!/bin/sh\necho $$ > handler.pid\nsleep 60 &\necho $! > child.pid\nsleep 60\n",
        );
        let limits = Limits {
            timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let result = block_on(Runner::new(limits).run(call(&path, &[], &[])));
        assert_eq!(
            result,
            Err(UpnpError::action_failed("handler timed out after 0.5 s"))
        );
        let handler_pid = read_pid(&folder.join("handler.pid"));
        let child_pid = read_pid(&folder.join("child.pid"));
        assert!(gone(handler_pid), "handler {handler_pid} left behind");
        assert!(dead(child_pid), "child {child_pid} survived");
    }

    #[test]
    fn leftovers_in_the_group_are_killed_when_the_handler_exits() {
        let folder = folder("leftover");
        let path = handler(
            &folder,
            "#!/bin/sh\necho $$ > handler.pid\nsleep 60 &\necho $! > child.pid\necho A=1\n",
        );
        assert_eq!(
            run_default(call(&path, &[], &["A"])),
            Ok(pairs(&[("A", "1")]))
        );
        assert!(gone(read_pid(&folder.join("handler.pid"))));
        assert!(dead(read_pid(&folder.join("child.pid"))));
    }

    /// Kills the process whose pid is in the file, when dropped (even by a failing test).
    struct KillOnDrop(PathBuf);

    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            if let Ok(Ok(pid)) = std::fs::read_to_string(&self.0).map(|text| text.trim().parse()) {
                // SAFETY: kill(2) on a process this test's handler started.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }

    #[test]
    fn a_process_that_left_the_group_does_not_hold_the_call() {
        let folder = folder("escaped");
        let _escaped = KillOnDrop(folder.join("escaped.pid"));
        // The escaped sleep, in its own session before the handler answers, keeps stdout
        // open: the call must answer with what was printed, not wait for the time limit.
        let path = handler(
            &folder,
            "#!/bin/sh\n\
             setsid sh -c 'echo $$ > escaped.pid; exec sleep 60' &\n\
             i=0\n\
             while [ ! -s escaped.pid ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done\n\
             echo A=1\n",
        );
        // A limit beyond the test's own 30 s bound: waiting for it fails the test.
        let limits = Limits {
            timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let result = block_on(Runner::new(limits).run(call(&path, &[], &["A"])));
        assert_eq!(result, Ok(pairs(&[("A", "1")])));
    }

    #[test]
    fn a_stderr_flood_does_not_hold_the_call_past_its_limit() {
        let folder = folder("stderr-yes");
        let path = handler(&folder, "#!/bin/sh\necho $$ > handler.pid\nexec yes >&2\n");
        let limits = Limits {
            timeout: Duration::from_millis(500),
            ..Limits::default()
        };
        let result = block_on(Runner::new(limits).run(call(&path, &[], &[])));
        assert_eq!(
            result,
            Err(UpnpError::action_failed("handler timed out after 0.5 s"))
        );
        assert!(gone(read_pid(&folder.join("handler.pid"))));
    }

    #[test]
    fn an_output_flood_is_cut_at_the_bound() {
        let folder = folder("flood");
        let path = handler(&folder, "#!/bin/sh\necho $$ > handler.pid\nexec yes\n");
        let limits = Limits {
            max_output: 1000,
            ..Limits::default()
        };
        let result = block_on(Runner::new(limits).run(call(&path, &[], &["y"])));
        assert_eq!(
            result,
            Err(UpnpError::action_failed(
                "handler output exceeds 1000 bytes"
            ))
        );
        assert!(gone(read_pid(&folder.join("handler.pid"))));
    }

    #[test]
    fn output_up_to_the_bound_is_accepted() {
        let folder = folder("at-bound");
        // "A=" and 98 x and a newline: exactly 101 bytes.
        let path = handler(&folder, "#!/bin/sh\nprintf 'A=%098d\\n' 0\n");
        let limits = Limits {
            max_output: 101,
            ..Limits::default()
        };
        let result = block_on(Runner::new(limits.clone()).run(call(&path, &[], &["A"])));
        assert_eq!(result, Ok(pairs(&[("A", &"0".repeat(98))])));
        let limits = Limits {
            max_output: 100,
            ..limits
        };
        let result = block_on(Runner::new(limits).run(call(&path, &[], &["A"])));
        assert_eq!(
            result,
            Err(UpnpError::action_failed("handler output exceeds 100 bytes"))
        );
    }

    #[test]
    fn stderr_is_kept_only_up_to_its_bound() {
        let folder = folder("stderr-flood");
        let path = handler(
            &folder,
            "#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' e >&2\nexit 1\n",
        );
        let error = run_default(call(&path, &[], &[])).unwrap_err();
        assert_eq!(error.code, soap::ACTION_FAILED);
        assert_eq!(error.description.len(), soap::DESCRIPTION_MAX_BYTES);
        assert!(error.description.starts_with("eee") && error.description.ends_with("..."));
    }

    #[test]
    fn a_handler_that_cannot_start_is_501() {
        let folder = folder("spawn");
        let path = folder.join("plain");
        std::fs::write(&path, "#!/bin/sh\necho A=1\n").unwrap();
        let error = run_default(call(&path, &[], &["A"])).unwrap_err();
        assert_eq!(error.code, soap::ACTION_FAILED);
        assert!(error.description.starts_with("cannot start handler"));
        let error = run_default(call(&folder.join("absent"), &[], &["A"])).unwrap_err();
        assert_eq!(error.code, soap::ACTION_FAILED);
        assert!(error.description.starts_with("cannot start handler"));
    }

    #[test]
    fn dropping_a_call_kills_and_reaps_the_handler() {
        let folder = folder("dropped");
        let path = handler(&folder, "#!/bin/sh\necho $$ > handler.pid\nsleep 60\n");
        let pid_file = folder.join("handler.pid");
        let runner = Runner::new(Limits::default());
        block_on(smol::future::or(
            async {
                let _ = runner.run(call(&path, &[], &[])).await;
                panic!("the handler returned");
            },
            async {
                while !pid_file.exists() {
                    Timer::after(Duration::from_millis(20)).await;
                }
            },
        ));
        // The pid is written before the shell has finished writing it: wait for a number.
        let mut pid = None;
        for _ in 0..100 {
            if let Ok(Ok(read)) = std::fs::read_to_string(&pid_file).map(|t| t.trim().parse()) {
                pid = Some(read);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid: libc::pid_t = pid.unwrap();
        let mut reaped = false;
        for _ in 0..200 {
            if gone(pid) {
                reaped = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(reaped, "handler {pid} left behind");
    }

    #[test]
    fn a_runner_runs_at_most_its_bound_at_once() {
        let folder = folder("bound");
        let path = handler(
            &folder,
            "#!/bin/sh\n\
             touch \"started.$$\"\n\
             i=0\n\
             while [ ! -e release ] && [ $i -lt 400 ]; do sleep 0.05; i=$((i+1)); done\n\
             echo A=1\n",
        );
        let started = || {
            std::fs::read_dir(&folder)
                .unwrap()
                .filter(|entry| {
                    let name = entry.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with("started.")
                })
                .count()
        };
        let runner = Runner::new(Limits::default());
        let executor = smol::LocalExecutor::new();
        let calls: Vec<_> = (0..=HANDLER_MAX_CALLS)
            .map(|_| executor.spawn(runner.run(call(&path, &[], &["A"]))))
            .collect();
        let results = block_on(executor.run(async {
            while started() < HANDLER_MAX_CALLS {
                Timer::after(Duration::from_millis(20)).await;
            }
            // Every slot is held by a running handler; the last call waits for one.
            assert!(runner.slots.try_acquire().is_none());
            assert_eq!(started(), HANDLER_MAX_CALLS);
            std::fs::write(folder.join("release"), b"").unwrap();
            let mut results = Vec::new();
            for call in calls {
                results.push(call.await);
            }
            results
        }));
        assert_eq!(started(), HANDLER_MAX_CALLS + 1);
        for result in results {
            assert_eq!(result, Ok(pairs(&[("A", "1")])));
        }
    }

    #[test]
    fn chosen_errors_are_parsed_strictly() {
        assert_eq!(
            chosen_error("712 Already running"),
            UpnpError::new(712, "Already running")
        );
        assert_eq!(chosen_error(" 899\tvendor "), UpnpError::new(899, "vendor"));
        assert_eq!(
            chosen_error("600"),
            UpnpError::from_code(soap::ARGUMENT_VALUE_INVALID)
        );
        for refused in [
            "599 x",
            "900 x",
            "+712 x",
            "x712",
            "",
            "99999999 x",
            "501 x",
        ] {
            assert_eq!(chosen_error(refused).code, soap::ACTION_FAILED, "{refused}");
        }
    }

    #[test]
    fn descriptions_are_bounded_on_character_boundaries() {
        let long = "é".repeat(soap::DESCRIPTION_MAX_BYTES);
        let status = ExitStatus::from_raw(1 << 8);
        let error = failure(status, b"", long.as_bytes());
        assert!(error.description.len() <= soap::DESCRIPTION_MAX_BYTES);
        assert!(error.description.starts_with("éé") && error.description.ends_with("..."));
        let chosen = chosen_error(&format!("712 {long}"));
        assert_eq!((chosen.code, chosen.description), (712, error.description));
    }

    #[test]
    fn outputs_must_be_utf8() {
        assert_eq!(
            parse_outputs(b"A=\xff\n", &["A"]),
            Err(UpnpError::action_failed("handler output is not UTF-8"))
        );
        assert_eq!(parse_outputs(b"A=1", &["A"]), Ok(pairs(&[("A", "1")])));
    }
}
