//! Backend helper for the libxl and xl backends: learns that domains may have changed from
//! xenstore watches, so the device reads the host when something happened rather than on a
//! period.
//!
//! One connection to xenstored, through its unix socket (`$XENSTORED_PATH`, else
//! /run/xenstored/socket or /var/run/xenstored/socket) or, where xenstored runs in a domain of
//! its own, the kernel's xenbus device (/dev/xen/xenbus, /proc/xen/xenbus), speaking xenstore's
//! own protocol ([`crate::wire::xenstore`]): no libxenstore, so the static builds need no
//! thread-safe copy of it. Two watches are set, `@introduceDomain` and `@releaseDomain`,
//! which xenstored fires when a domain is introduced to it (created or restored) and when one
//! shuts down (power off, reboot, suspend, crash) or dies. Nothing a guest writes fires them:
//! a guest cannot make dom0 read the host faster than its own lifecycle allows.
//!
//! Measured on Xen 4.17 and 4.20 under QEMU (tests/xen): `xl create` fires `@introduceDomain`
//! about a second before it unpauses the new domain; an in-place suspend, a crash or a power
//! off fires `@releaseDomain`, and so does the destruction that follows (`xl save` fires it
//! twice, `xl shutdown` twice); `xl restore` fires `@introduceDomain`. Pausing and unpausing
//! fire nothing, and no xenstore node records them. So after each event the host is read again
//! a few times, 0.5, 1, 2, 4 and 8 s later (a new domain seen paused is seen running), and a
//! pause made outside xenplug is seen at the device's periodic read (at most 30 s).
//!
//! When no watch can be set (no xenstored reachable, a refusal) or the connection breaks, the
//! backend falls back to reading the host every [`XENSTORE_POLL_INTERVAL`] (2 s), says so
//! once in the log, and tries to set the watches again every [`XENSTORE_RETRY`].
//!
//! Blocking; one waiter at a time (a second waits its turn). Every wait is bounded.

use crate::wire::xenstore::{self, Kind, XENSTORE_MESSAGE_MAX};
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How often the host is read when no watch can be set.
pub const XENSTORE_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// How often a lost connection to xenstored is tried again.
pub const XENSTORE_RETRY: Duration = Duration::from_secs(30);
/// First extra read after an event; each next one waits twice as long.
const XENSTORE_SETTLE_FIRST: Duration = Duration::from_millis(500);
/// No extra read waits longer than this after the one before (the last is 8 s after it).
const XENSTORE_SETTLE_LAST: Duration = Duration::from_secs(8);
/// Longest xenstored may take to acknowledge a watch.
const XENSTORE_SETUP_TIMEOUT: Duration = Duration::from_secs(5);
/// Reads of what is already there after an event, at most, before the wait returns.
const XENSTORE_DRAIN_READS: usize = 64;
/// The token of xenplug's watches.
const WATCH_TOKEN: &str = "xenplug";
/// The paths watched.
const WATCHED: [&str; 2] = ["@introduceDomain", "@releaseDomain"];
/// Where xenstored's socket is, in the order tried after `$XENSTORED_PATH`.
const XENSTORED_SOCKETS: [&str; 2] = ["/run/xenstored/socket", "/var/run/xenstored/socket"];
/// The kernel's xenbus device, in the order tried.
const XENBUS_DEVICES: [&str; 2] = ["/dev/xen/xenbus", "/proc/xen/xenbus"];

/// An open connection with its watches set.
struct Link {
    /// The socket or device.
    file: File,
    /// Bytes read and not yet a whole message.
    pending: Vec<u8>,
    /// Whether one of the watches fired while they were being set (xenstored fires each
    /// once up front): the first wait then returns at once, whatever the timing was.
    fired_early: bool,
}

/// What happened while waiting on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// A watch fired.
    Event,
    /// The deadline passed.
    Nothing,
}

/// The mutable part of [`DomainWatch`].
struct State {
    link: Option<Link>,
    /// When to try connecting again, while there is no link.
    retry_at: Option<Instant>,
    /// The next extra read after an event and the wait before the one after it.
    settle: Option<(Instant, Duration)>,
    /// Whether the fallback to polling has been logged since the watches last worked.
    polling_said: bool,
}

/// Changes of the host's domains, from xenstore watches (see the module doc).
pub struct DomainWatch {
    /// The backend's name, for the log.
    label: &'static str,
    state: Mutex<State>,
}

impl Link {
    /// Sets the watches on `file`, waiting for xenstored's acknowledgements.
    fn watch(file: File) -> Result<Link, String> {
        let mut link = Link {
            file,
            pending: Vec::new(),
            fired_early: false,
        };
        let deadline = Instant::now() + XENSTORE_SETUP_TIMEOUT;
        for (request, path) in (1u32..).zip(WATCHED) {
            let mut buffer = [0u8; XENSTORE_MESSAGE_MAX];
            let len = xenstore::emit(Kind::Watch, request, &[path, WATCH_TOKEN], &mut buffer)
                .map_err(|error| format!("cannot write WATCH {path}: {error}"))?;
            link.file
                .write_all(&buffer[..len])
                .map_err(|error| format!("WATCH {path}: {error}"))?;
            loop {
                let now = Instant::now();
                if now >= deadline {
                    return Err(format!(
                        "WATCH {path}: no answer within {XENSTORE_SETUP_TIMEOUT:?}"
                    ));
                }
                if !link.readable(deadline - now)? {
                    continue;
                }
                link.fill()?;
                let mut answered = None;
                let mut fired = false;
                link.messages(|message| {
                    fired |= ours(message);
                    if message.request == request && message.kind != Kind::WatchEvent {
                        answered = Some(match message.error() {
                            Some(errno) => Err(format!("xenstored refused WATCH {path}: {errno}")),
                            None if message.kind == Kind::Watch => Ok(()),
                            None => Err(format!(
                                "xenstored answered WATCH {path} with message type {}",
                                message.kind.code()
                            )),
                        });
                    }
                })?;
                link.fired_early |= fired;
                if let Some(answer) = answered {
                    answer?;
                    break;
                }
            }
        }
        Ok(link)
    }

    /// Whether the connection has something to read within `timeout`.
    fn readable(&self, timeout: Duration) -> Result<bool, String> {
        let mut poll = libc::pollfd {
            fd: self.file.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the length given; the descriptor is open.
        let ready = unsafe { libc::poll(&mut poll, 1, millis) };
        if ready < 0 {
            let error = io::Error::last_os_error();
            return if error.kind() == io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(format!("poll: {error}"))
            };
        }
        Ok(ready > 0)
    }

    /// Reads what is there (after [`Link::readable`] said so); end of file is an error.
    fn fill(&mut self) -> Result<(), String> {
        let mut chunk = [0u8; XENSTORE_MESSAGE_MAX];
        match self.file.read(&mut chunk) {
            Ok(0) => Err("xenstored closed the connection".to_string()),
            Ok(n) => {
                self.pending.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(error) => Err(format!("read: {error}")),
        }
    }

    /// Hands each whole message read to `each` and keeps the rest; a message that cannot be
    /// framed (a length over the protocol's) breaks the connection.
    fn messages(&mut self, mut each: impl FnMut(&xenstore::Message<'_>)) -> Result<(), String> {
        let mut used = 0;
        loop {
            match xenstore::parse(&self.pending[used..]) {
                Ok((message, len)) => {
                    each(&message);
                    used += len;
                }
                Err(crate::wire::Error::Truncated) => break,
                Err(error) => return Err(format!("unreadable message from xenstored: {error}")),
            }
        }
        self.pending.drain(..used);
        Ok(())
    }

    /// Reads and parses what arrived; whether one of the watches fired.
    fn take(&mut self) -> Result<bool, String> {
        self.fill()?;
        let mut fired = false;
        self.messages(|message| fired |= ours(message))?;
        Ok(fired)
    }

    /// Waits until a watch fires or `deadline`; once one fired, also takes what is already
    /// there, so a burst of events is one change.
    fn wait(&mut self, deadline: Instant) -> Result<Heard, String> {
        if std::mem::take(&mut self.fired_early) {
            return Ok(Heard::Event);
        }
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Heard::Nothing);
            }
            if self.readable(deadline - now)? && self.take()? {
                for _ in 0..XENSTORE_DRAIN_READS {
                    if !self.readable(Duration::ZERO)? {
                        break;
                    }
                    self.take()?;
                }
                return Ok(Heard::Event);
            }
        }
    }
}

/// Whether `message` is one of xenplug's watches firing.
fn ours(message: &xenstore::Message<'_>) -> bool {
    message
        .watch_event()
        .is_some_and(|(_, token)| token == WATCH_TOKEN)
}

/// The wait before the extra read that follows one made `step` after the read before it;
/// none after the last.
fn next_step(step: Duration) -> Option<Duration> {
    let next = step * 2;
    (next <= XENSTORE_SETTLE_LAST).then_some(next)
}

/// Opens a connection to xenstored: its socket, else the xenbus device. The error lists what
/// was tried.
fn connect() -> Result<(File, String), String> {
    let mut sockets: Vec<PathBuf> = Vec::new();
    if let Some(path) = std::env::var_os("XENSTORED_PATH") {
        sockets.push(PathBuf::from(path));
    }
    sockets.extend(XENSTORED_SOCKETS.iter().map(PathBuf::from));
    let mut tried = Vec::new();
    for path in &sockets {
        match UnixStream::connect(path) {
            Ok(stream) => {
                return Ok((
                    File::from(OwnedFd::from(stream)),
                    path.display().to_string(),
                ))
            }
            Err(error) => tried.push(format!("{}: {error}", path.display())),
        }
    }
    for path in XENBUS_DEVICES {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => return Ok((file, path.to_string())),
            Err(error) => tried.push(format!("{path}: {error}")),
        }
    }
    Err(tried.join("; "))
}

impl DomainWatch {
    /// Connects to xenstored and sets the watches, or says once that the backend polls; never
    /// fails. `label` names the backend in the log.
    pub fn open(label: &'static str) -> DomainWatch {
        let watch = DomainWatch::unlinked(label);
        {
            let mut state = watch.state();
            watch.reconnect(&mut state, Instant::now());
        }
        watch
    }

    /// A watch with no connection yet (the first wait tries).
    fn unlinked(label: &'static str) -> DomainWatch {
        DomainWatch {
            label,
            state: Mutex::new(State {
                link: None,
                retry_at: None,
                settle: None,
                polling_said: false,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the watches are set.
    pub fn is_watching(&self) -> bool {
        self.state().link.is_some()
    }

    /// Tries to connect (when there is no link and the retry time came), logging the outcome
    /// once per change.
    fn reconnect(&self, state: &mut State, now: Instant) {
        if state.link.is_some() || state.retry_at.is_some_and(|at| now < at) {
            return;
        }
        match connect().and_then(|(file, place)| Ok((Link::watch(file)?, place))) {
            Ok((link, place)) => {
                log::info!(
                    "{}: following domains through xenstore watches on {place} \
                     (@introduceDomain, @releaseDomain)",
                    self.label
                );
                self.linked(state, link);
            }
            Err(why) => {
                state.retry_at = Some(now + XENSTORE_RETRY);
                self.fall_back(state, &why);
            }
        }
    }

    /// Uses `link` from now on.
    fn linked(&self, state: &mut State, link: Link) {
        state.link = Some(link);
        state.retry_at = None;
        state.polling_said = false;
    }

    /// Says, once until the watches work again, that the backend polls.
    fn fall_back(&self, state: &mut State, why: &str) {
        if !state.polling_said {
            log::warn!(
                "{}: no xenstore watches ({why}): reading the domains every {} s instead",
                self.label,
                XENSTORE_POLL_INTERVAL.as_secs()
            );
            state.polling_said = true;
        }
    }

    /// Blocks until the domains may have changed or `limit` passed (see the module doc).
    pub fn wait(&self, limit: Duration) {
        let start = Instant::now();
        let mut state = self.state();
        self.reconnect(&mut state, start);
        let settle = state.settle.map(|(at, _)| at);
        let deadline = settle.map_or(start + limit, |at| at.min(start + limit));
        let Some(link) = state.link.as_mut() else {
            drop(state);
            std::thread::sleep(XENSTORE_POLL_INTERVAL.min(limit));
            return;
        };
        match link.wait(deadline) {
            Ok(Heard::Event) => {
                state.settle = Some((
                    Instant::now() + XENSTORE_SETTLE_FIRST,
                    XENSTORE_SETTLE_FIRST,
                ));
            }
            Ok(Heard::Nothing) => {
                if let Some((at, step)) = state.settle {
                    if Instant::now() >= at {
                        state.settle = next_step(step).map(|next| (Instant::now() + next, next));
                    }
                }
            }
            Err(why) => {
                // The domains may have changed unheard: the caller reads them now.
                state.link = None;
                state.retry_at = Some(Instant::now() + XENSTORE_RETRY);
                self.fall_back(
                    &mut state,
                    &format!("lost the connection to xenstored: {why}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::thread;

    /// A connected pair: the watch's end as a File, and the fake xenstored's.
    fn pair() -> (File, UnixStream) {
        let (mine, theirs) = UnixStream::pair().unwrap();
        (File::from(OwnedFd::from(mine)), theirs)
    }

    fn message(kind: Kind, request: u32, strings: &[&str]) -> Vec<u8> {
        let mut buffer = [0u8; XENSTORE_MESSAGE_MAX];
        let len = xenstore::emit(kind, request, strings, &mut buffer).unwrap();
        buffer[..len].to_vec()
    }

    /// Reads one request from the fake's end.
    fn request(stream: &mut UnixStream) -> (Kind, u32, Vec<String>) {
        let mut header = [0u8; 16];
        stream.read_exact(&mut header).unwrap();
        let len = u32::from_ne_bytes(header[12..16].try_into().unwrap()) as usize;
        let mut payload = vec![0u8; len];
        stream.read_exact(&mut payload).unwrap();
        let mut whole = header.to_vec();
        whole.extend_from_slice(&payload);
        let (parsed, _) = xenstore::parse(&whole).unwrap();
        let strings = parsed
            .strings()
            .unwrap()
            .iter()
            .map(|s| s.to_string())
            .collect();
        (parsed.kind, parsed.request, strings)
    }

    /// A fake xenstored that acknowledges both watches, each acknowledgement followed by the
    /// watch's up-front event in the same write (so both are read while the watches are set),
    /// and then runs `then`.
    fn fake(
        mut stream: UnixStream,
        then: impl FnOnce(UnixStream) + Send + 'static,
    ) -> thread::JoinHandle<()> {
        thread::spawn(move || {
            for path in WATCHED {
                let (kind, request, strings) = request(&mut stream);
                assert_eq!(kind, Kind::Watch);
                assert_eq!(strings, [path, WATCH_TOKEN]);
                let mut both = message(Kind::Watch, request, &["OK"]);
                both.extend(message(Kind::WatchEvent, 0, &[path, WATCH_TOKEN]));
                stream.write_all(&both).unwrap();
            }
            then(stream);
        })
    }

    fn linked(file: File) -> DomainWatch {
        let watch = DomainWatch::unlinked("test");
        {
            let mut state = watch.state();
            let link = Link::watch(file).unwrap();
            watch.linked(&mut state, link);
        }
        watch
    }

    /// Runs one wait and says how long it took.
    fn timed_wait(watch: &DomainWatch) -> Duration {
        let started = Instant::now();
        watch.wait(Duration::from_secs(30));
        started.elapsed()
    }

    #[test]
    fn an_event_ends_the_wait_at_once_and_a_burst_counts_once() {
        let (mine, theirs) = pair();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let server = fake(theirs, move |mut stream| {
            go_rx.recv().unwrap();
            // Three events in one write: they arrive together.
            let mut burst = Vec::new();
            for _ in 0..3 {
                burst.extend(message(
                    Kind::WatchEvent,
                    0,
                    &["@releaseDomain", WATCH_TOKEN],
                ));
            }
            stream.write_all(&burst).unwrap();
            // Keep the connection open until the test is done.
            let _ = go_rx.recv();
        });
        let watch = linked(mine);
        // Bounds: an event ends a wait within milliseconds here; the first extra read comes
        // 0.5 s after it. The upper bounds are far above both, for a loaded machine.
        // The up-front events, read while the watches were set, end the first wait.
        assert!(timed_wait(&watch) < Duration::from_secs(10));
        // Then the first extra read, 0.5 s later.
        let took = timed_wait(&watch);
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(10),
            "{took:?}"
        );
        go_tx.send(()).unwrap();
        assert!(timed_wait(&watch) < Duration::from_secs(10));
        // The burst was one change: the next wait is the extra read again.
        let took = timed_wait(&watch);
        assert!(
            took >= Duration::from_millis(450) && took < Duration::from_secs(10),
            "{took:?}"
        );
        assert!(watch.is_watching());
        drop(go_tx);
        server.join().unwrap();
    }

    #[test]
    fn extra_reads_back_off_and_stop() {
        let mut steps = vec![XENSTORE_SETTLE_FIRST];
        while let Some(next) = steps.last().copied().and_then(next_step) {
            steps.push(next);
        }
        let seconds: Vec<f64> = steps.iter().map(Duration::as_secs_f64).collect();
        assert_eq!(seconds, [0.5, 1.0, 2.0, 4.0, 8.0]);
    }

    #[test]
    fn a_refused_watch_is_an_error_naming_the_errno() {
        let (ours, mut theirs) = pair();
        let server = thread::spawn(move || {
            let (_, request, _) = request(&mut theirs);
            theirs
                .write_all(&message(Kind::Error, request, &["EACCES"]))
                .unwrap();
        });
        let error = Link::watch(ours).err().unwrap();
        assert_eq!(error, "xenstored refused WATCH @introduceDomain: EACCES");
        server.join().unwrap();
    }

    #[test]
    fn a_lost_connection_falls_back_to_polling_and_says_so_once() {
        let (mine, theirs) = pair();
        let server = fake(theirs, drop);
        let watch = linked(mine);
        server.join().unwrap();
        // The up-front events, then the end of the stream.
        let mut waits = 0;
        while watch.is_watching() && waits < 10 {
            watch.wait(Duration::from_secs(5));
            waits += 1;
        }
        assert!(!watch.is_watching());
        assert!(watch.state().polling_said);
        assert!(watch.state().retry_at.is_some());
        // Polling: the wait sleeps its interval, bounded by the limit.
        let started = Instant::now();
        watch.wait(Duration::from_millis(200));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(150) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[test]
    fn garbage_from_xenstored_breaks_the_link() {
        let (mine, theirs) = pair();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let server = fake(theirs, move |mut stream| {
            go_rx.recv().unwrap();
            let mut header = [0u8; 16];
            header[12..16].copy_from_slice(&100_000u32.to_ne_bytes());
            stream.write_all(&header).unwrap();
        });
        let watch = linked(mine);
        go_tx.send(()).unwrap();
        server.join().unwrap();
        let mut waits = 0;
        while watch.is_watching() && waits < 10 {
            watch.wait(Duration::from_secs(5));
            waits += 1;
        }
        assert!(!watch.is_watching());
    }
}
