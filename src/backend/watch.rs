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
//! After `@introduceDomain`, [`read_new_domains`] reads the domains the last listing lacks
//! straight from xenstore (name, UUID, memory, vCPUs: nodes the toolstack writes and the guest
//! cannot), on a short connection of its own, so a backend can announce a new domain without
//! waiting for its toolstack.
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
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use uuid::Uuid;

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
    /// Watch events read while waiting for a reply (xenstored fires each watch once up
    /// front, right after setting it): the next wait returns at once, whatever the timing.
    early: Fired,
}

/// Which of the watches fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Fired {
    /// Any of them.
    any: bool,
    /// `@introduceDomain`: a domain may be new.
    introduced: bool,
}

impl Fired {
    /// Notes `message` when it is one of xenplug's watches firing.
    fn note(&mut self, message: &xenstore::Message<'_>) {
        if let Some((path, token)) = message.watch_event() {
            if token == WATCH_TOKEN {
                self.any = true;
                self.introduced |= path == WATCHED[0];
            }
        }
    }
}

/// A reply to one request: its type and payload.
struct Reply {
    kind: Kind,
    payload: Vec<u8>,
}

/// What happened while waiting on the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    /// A watch fired; `introduced` when `@introduceDomain` did.
    Event { introduced: bool },
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
    /// `@introduceDomain` fired since [`DomainWatch::take_introduced`] last looked (outside
    /// the state's lock, which a waiting thread holds).
    introduced: AtomicBool,
}

impl Link {
    /// A connection over `file`, nothing sent yet.
    fn new(file: File) -> Link {
        Link {
            file,
            pending: Vec::new(),
            early: Fired::default(),
        }
    }

    /// Sets the watches on `file`, waiting for xenstored's acknowledgements.
    fn watch(file: File) -> Result<Link, String> {
        let mut link = Link::new(file);
        let deadline = Instant::now() + XENSTORE_SETUP_TIMEOUT;
        for (request, path) in (1u32..).zip(WATCHED) {
            let reply = link.call(Kind::Watch, request, &[path, WATCH_TOKEN], deadline)?;
            match reply.kind {
                Kind::Watch => {}
                Kind::Error => {
                    return Err(format!(
                        "xenstored refused WATCH {path}: {}",
                        String::from_utf8_lossy(
                            reply.payload.strip_suffix(&[0]).unwrap_or(&reply.payload)
                        )
                    ))
                }
                other => {
                    return Err(format!(
                        "xenstored answered WATCH {path} with message type {}",
                        other.code()
                    ))
                }
            }
        }
        Ok(link)
    }

    /// Sends request `request` of `kind` and waits (until `deadline`) for its reply; watch
    /// events read meanwhile are kept for the next wait.
    fn call(
        &mut self,
        kind: Kind,
        request: u32,
        strings: &[&str],
        deadline: Instant,
    ) -> Result<Reply, String> {
        let what = format!("{kind:?} {}", strings.first().copied().unwrap_or(""));
        let mut buffer = [0u8; XENSTORE_MESSAGE_MAX];
        let len = xenstore::emit(kind, request, strings, &mut buffer)
            .map_err(|error| format!("cannot write {what}: {error}"))?;
        self.file
            .write_all(&buffer[..len])
            .map_err(|error| format!("{what}: {error}"))?;
        loop {
            let now = Instant::now();
            if now >= deadline {
                return Err(format!("{what}: no answer from xenstored in time"));
            }
            if !self.readable(deadline - now)? {
                continue;
            }
            self.fill()?;
            let mut reply = None;
            let mut early = self.early;
            self.messages(|message| {
                early.note(message);
                if message.request == request && message.kind != Kind::WatchEvent {
                    reply = Some(Reply {
                        kind: message.kind,
                        payload: message.payload.to_vec(),
                    });
                }
            })?;
            self.early = early;
            if let Some(reply) = reply {
                return Ok(reply);
            }
        }
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

    /// Reads and parses what arrived, noting the watches that fired into `fired`.
    fn take(&mut self, fired: &mut Fired) -> Result<(), String> {
        self.fill()?;
        self.messages(|message| fired.note(message))
    }

    /// Waits until a watch fires or `deadline`; once one fired, also takes what is already
    /// there, so a burst of events is one change.
    fn wait(&mut self, deadline: Instant) -> Result<Heard, String> {
        let mut fired = std::mem::take(&mut self.early);
        while !fired.any {
            let now = Instant::now();
            if now >= deadline {
                return Ok(Heard::Nothing);
            }
            if self.readable(deadline - now)? {
                self.take(&mut fired)?;
            }
        }
        for _ in 0..XENSTORE_DRAIN_READS {
            if !self.readable(Duration::ZERO)? {
                break;
            }
            self.take(&mut fired)?;
        }
        Ok(Heard::Event {
            introduced: fired.introduced,
        })
    }
}

/// The wait before the extra read that follows one made `step` after the read before it;
/// none after the last.
fn next_step(step: Duration) -> Option<Duration> {
    let next = step * 2;
    (next <= XENSTORE_SETTLE_LAST).then_some(next)
}

/// Longest a read of xenstore for the domains just introduced may take.
pub const XENSTORE_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// Domains read from xenstore at once, at most (more wait for the next read through the
/// toolstack).
pub const XENSTORE_READ_MAX_DOMAINS: usize = 64;

/// What xenstore says of a domain the toolstack introduced: written by the toolstack in dom0's
/// part of the tree (`/local/domain/DOMID/name`, `vm` = `/vm/UUID`, `memory/target` in KiB, one
/// `cpu/N` per vCPU), none of which the guest may write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XenstoreDomain {
    /// Its domid.
    pub domid: u32,
    /// `name`
    pub name: String,
    /// The UUID in `vm`.
    pub uuid: Uuid,
    /// `memory/target`, KiB (0 when absent).
    pub memory_kib: u64,
    /// Entries under `cpu` (1 when absent).
    pub vcpus: u32,
}

/// The UUID of a domain's `vm` path (`/vm/UUID`, the form libxl writes).
pub fn vm_path_uuid(path: &str) -> Option<Uuid> {
    let uuid = path.strip_prefix("/vm/")?;
    (uuid.len() == 36)
        .then(|| Uuid::parse_str(uuid).ok())
        .flatten()
}

/// What [`read_new_domains`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct XenstoreDomains {
    /// The domids under `/local/domain`: a domain of an earlier listing that is not among them
    /// has been released since.
    pub present: Vec<u32>,
    /// The domains the caller did not know, with a name and a UUID.
    pub new: Vec<XenstoreDomain>,
}

/// The NUL-separated names of a `DIRECTORY` reply.
fn names(payload: &[u8]) -> Vec<String> {
    payload
        .split(|&byte| byte == 0)
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
        .collect()
}

/// Reads, on a connection of its own, the domids in xenstore and the domains among them
/// whose domid `known` does not know (dom0 aside), at most [`XENSTORE_READ_MAX_DOMAINS`]; a
/// domain without a name or a UUID yet is left out. Bounded by [`XENSTORE_READ_TIMEOUT`]; an
/// error says what failed.
pub fn read_new_domains(known: impl Fn(u32) -> bool) -> Result<XenstoreDomains, String> {
    let (file, _) = connect()?;
    new_domains_over(&mut Link::new(file), known)
}

/// [`read_new_domains`] over an open connection.
fn new_domains_over(
    link: &mut Link,
    known: impl Fn(u32) -> bool,
) -> Result<XenstoreDomains, String> {
    let deadline = Instant::now() + XENSTORE_READ_TIMEOUT;
    let mut request = 0u32;
    // A node's value (`Read`) or children (`Directory`); `None` when xenstore refuses (absent).
    let mut ask = |kind: Kind, path: &str| -> Result<Option<Vec<u8>>, String> {
        request += 1;
        let reply = link.call(kind, request, &[path], deadline)?;
        Ok((reply.kind != Kind::Error).then_some(reply.payload))
    };
    let text = |bytes: Option<Vec<u8>>| {
        bytes.map(|b| String::from_utf8_lossy(b.strip_suffix(&[0]).unwrap_or(&b)).into_owned())
    };
    let domids = ask(Kind::Directory, "/local/domain")?
        .ok_or_else(|| "xenstore has no /local/domain".to_string())?;
    let present: Vec<u32> = names(&domids)
        .iter()
        .filter_map(|id| id.parse::<u32>().ok())
        .collect();
    let mut found = Vec::new();
    for &domid in &present {
        if domid == 0 || known(domid) {
            continue;
        }
        if found.len() == XENSTORE_READ_MAX_DOMAINS {
            break;
        }
        let base = format!("/local/domain/{domid}");
        let name = text(ask(Kind::Read, &format!("{base}/name"))?);
        let uuid = text(ask(Kind::Read, &format!("{base}/vm"))?)
            .as_deref()
            .and_then(vm_path_uuid);
        let (Some(name), Some(uuid)) = (name.filter(|n| !n.is_empty()), uuid) else {
            continue;
        };
        let memory_kib = text(ask(Kind::Read, &format!("{base}/memory/target"))?)
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or(0);
        let vcpus = ask(Kind::Directory, &format!("{base}/cpu"))?
            .map(|cpus| names(&cpus).len())
            .and_then(|count| u32::try_from(count).ok())
            .filter(|&count| count > 0)
            .unwrap_or(1);
        found.push(XenstoreDomain {
            domid,
            name,
            uuid,
            memory_kib,
            vcpus,
        });
    }
    Ok(XenstoreDomains {
        present,
        new: found,
    })
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
            introduced: AtomicBool::new(false),
        }
    }

    /// Whether `@introduceDomain` fired since the last call: a new domain may be in xenstore
    /// before the next read of the host shows it.
    pub fn take_introduced(&self) -> bool {
        self.introduced.swap(false, Ordering::SeqCst)
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
            Ok(Heard::Event { introduced }) => {
                log::debug!(
                    "{}: xenstore watch fired: {}",
                    self.label,
                    if introduced {
                        "@introduceDomain"
                    } else {
                        "@releaseDomain"
                    }
                );
                if introduced {
                    self.introduced.store(true, Ordering::SeqCst);
                }
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

    /// Waits (ten waits at most) until the watch has lost its link.
    fn wait_until_unlinked(watch: &DomainWatch) {
        let mut waits = 0;
        while watch.is_watching() && waits < 10 {
            watch.wait(Duration::from_secs(5));
            waits += 1;
        }
        assert!(!watch.is_watching());
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
        wait_until_unlinked(&watch);
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
        wait_until_unlinked(&watch);
    }

    #[test]
    fn an_introduction_is_told_from_a_release() {
        let (mine, theirs) = pair();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<&'static str>();
        let server = fake(theirs, move |mut stream| {
            while let Ok(path) = go_rx.recv() {
                stream
                    .write_all(&message(Kind::WatchEvent, 0, &[path, WATCH_TOKEN]))
                    .unwrap();
            }
        });
        let watch = linked(mine);
        // The up-front events: @introduceDomain among them.
        watch.wait(Duration::from_secs(30));
        assert!(watch.take_introduced());
        assert!(!watch.take_introduced());
        go_tx.send("@releaseDomain").unwrap();
        // The first wait may be the extra read 0.5 s after the up-front events; the event
        // ends the next one at the latest.
        for _ in 0..2 {
            watch.wait(Duration::from_secs(30));
        }
        assert!(!watch.take_introduced());
        go_tx.send("@introduceDomain").unwrap();
        let mut told = false;
        for _ in 0..20 {
            watch.wait(Duration::from_secs(5));
            told = watch.take_introduced();
            if told {
                break;
            }
        }
        assert!(told);
        drop(go_tx);
        server.join().unwrap();
    }

    #[test]
    fn vm_paths_give_uuids() {
        assert_eq!(
            vm_path_uuid("/vm/0e7d2ed6-f153-11f1-bef4-7b965ee376f5"),
            Uuid::parse_str("0e7d2ed6-f153-11f1-bef4-7b965ee376f5").ok()
        );
        assert_eq!(vm_path_uuid("/vm/0e7d2ed6f15311f1bef47b965ee376f5"), None);
        assert_eq!(vm_path_uuid("/local/domain/1"), None);
        assert_eq!(vm_path_uuid(""), None);
        assert_eq!(names(b"0\x001\x00"), ["0", "1"]);
        assert!(names(b"").is_empty());
    }

    #[test]
    fn new_domains_are_read_from_xenstore() {
        let (mine, mut theirs) = pair();
        let uuid = "0e7d2ed6-f153-11f1-bef4-7b965ee376f5";
        let server = thread::spawn(move || {
            // domid 1 is known, 6 has no vm node yet, 5 is new.
            let answers: &[(&str, Option<&[u8]>)] = &[
                ("/local/domain", Some(b"0\x001\x005\x006\x00")),
                ("/local/domain/5/name", Some(b"web")),
                (
                    "/local/domain/5/vm",
                    Some(b"/vm/0e7d2ed6-f153-11f1-bef4-7b965ee376f5"),
                ),
                ("/local/domain/5/memory/target", Some(b"131072")),
                ("/local/domain/5/cpu", Some(b"0\x001\x00")),
                ("/local/domain/6/name", Some(b"db")),
                ("/local/domain/6/vm", None),
            ];
            for (path, answer) in answers {
                let (kind, request, strings) = request(&mut theirs);
                assert_eq!(strings, [*path]);
                let reply = match answer {
                    Some(payload) => {
                        let mut reply = message(kind, request, &[]);
                        reply[12..16].copy_from_slice(&(payload.len() as u32).to_ne_bytes());
                        reply.extend_from_slice(payload);
                        reply
                    }
                    None => message(Kind::Error, request, &["ENOENT"]),
                };
                theirs.write_all(&reply).unwrap();
            }
        });
        let domains = new_domains_over(&mut Link::new(mine), |domid| domid == 1).unwrap();
        server.join().unwrap();
        assert_eq!(domains.present, [0, 1, 5, 6]);
        assert_eq!(
            domains.new,
            [XenstoreDomain {
                domid: 5,
                name: "web".to_string(),
                uuid: Uuid::parse_str(uuid).unwrap(),
                memory_kib: 131_072,
                vcpus: 2,
            }]
        );
    }
}
