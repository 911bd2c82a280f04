//! Directory watches for the parts that read flat files others write (the `sim` backend's
//! directory, the VM's services directory): inotify where the kernel gives it, else a look every
//! [`WATCH_POLL_INTERVAL`], said once in the log. Blocking: [`Watch::wait`] parks its thread in
//! `poll(2)`, so run it off the event loop. No clock beyond the wait's own deadline.
//!
//! What counts as a change of a file: closed after writing, renamed in or out, removed, its
//! attributes changed (`chmod`), or created as a symlink, device or second hard link. A new
//! regular file counts once closed after writing, so a half-written file is never read because
//! it appeared. Writes to a file kept open are seen when it is closed. A directory the
//! [`Layout`] names is watched too, and followed as it is created, renamed or removed.

use std::collections::{BTreeSet, HashMap};
use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a directory that cannot be watched is looked at instead.
pub const WATCH_POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Events one `read(2)` of the inotify descriptor takes at most (a name is at most 255 bytes).
const WATCH_READ_BUFFER: usize = 8 * 1024;

/// What a watched directory is made of: which subdirectories are watched too, and which names
/// matter. Paths are relative to the watched root; the root itself is the empty path.
#[derive(Clone, Copy)]
pub struct Layout {
    /// Whether the subdirectory at this path is watched as well.
    pub descend: fn(&Path) -> bool,
    /// Whether a change of `name` in the watched directory `directory` matters.
    pub relevant: fn(directory: &Path, name: &OsStr) -> bool,
}

/// What one [`Watch::wait`] learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing that matters within the limit.
    Nothing,
    /// These entries of the root directory changed (and nothing below it).
    Entries(BTreeSet<OsString>),
    /// Anything may have changed: events were lost, a watched directory came or went, a
    /// subdirectory's file changed, or the directory is polled. Read it all again.
    Anything,
}

impl Change {
    /// This change and `other` together.
    pub fn merge(self, other: Change) -> Change {
        match (self, other) {
            (Change::Anything, _) | (_, Change::Anything) => Change::Anything,
            (Change::Nothing, other) | (other, Change::Nothing) => other,
            (Change::Entries(mut names), Change::Entries(more)) => {
                names.extend(more);
                Change::Entries(names)
            }
        }
    }
}

/// A watch on one directory tree.
pub struct Watch {
    /// Who watches, for log lines (`sim`, `vm services`).
    what: &'static str,
    root: PathBuf,
    layout: Layout,
    /// Directories watched at most; past it, the rest is polled.
    max_directories: usize,
    state: Mutex<State>,
}

struct State {
    /// `None` while the directory is polled.
    inotify: Option<Inotify>,
    /// Why it is polled, as last said in the log.
    said: Option<String>,
    /// Some directories are not watched (too many): the whole tree is also looked at every
    /// [`WATCH_POLL_INTERVAL`].
    partial: bool,
}

struct Inotify {
    descriptor: OwnedFd,
    /// Watched directories by watch descriptor, relative to the root.
    directories: HashMap<i32, PathBuf>,
}

/// What a directory's watch reports: whatever can change what is read from it. `IN_MODIFY` is
/// left out on purpose: a file is read once its writer closed it.
const WATCH_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_MOVED_FROM
    | libc::IN_CREATE
    | libc::IN_DELETE
    | libc::IN_ATTRIB
    | libc::IN_DELETE_SELF
    | libc::IN_MOVE_SELF
    | libc::IN_ONLYDIR;

impl Watch {
    /// A watch on `root` shaped by `layout`, watching at most `max_directories` directories.
    /// Nothing is set up before the first [`Watch::wait`].
    pub fn new(what: &'static str, root: &Path, layout: Layout, max_directories: usize) -> Watch {
        Watch {
            what,
            root: root.to_path_buf(),
            layout,
            max_directories: max_directories.max(1),
            state: Mutex::new(State {
                inotify: None,
                said: None,
                partial: false,
            }),
        }
    }

    /// Blocks until something that matters changed, or at most `limit`. The first wait (and
    /// the first after watching failed) sets the watch up and answers [`Change::Anything`] at
    /// once: what changed before is unknown. A directory that cannot be watched (no inotify,
    /// too many watches, missing) is polled: the wait then ends after [`WATCH_POLL_INTERVAL`]
    /// at most with [`Change::Anything`].
    pub fn wait(&self, limit: Duration) -> Change {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.inotify.is_none() {
            if self.start(&mut state) {
                // What changed before the watch began is unknown.
                return Change::Anything;
            }
            std::thread::sleep(limit.min(WATCH_POLL_INTERVAL));
            // Watching may work now: the next wait tries again.
            return Change::Anything;
        }
        let polled_until = state
            .partial
            .then(|| Instant::now() + WATCH_POLL_INTERVAL)
            .map_or(deadline, |until| until.min(deadline));
        loop {
            let Some(inotify) = state.inotify.as_mut() else {
                return Change::Anything;
            };
            let now = Instant::now();
            if now >= polled_until {
                return if state.partial {
                    Change::Anything
                } else {
                    Change::Nothing
                };
            }
            match wait_readable(&inotify.descriptor, polled_until - now) {
                Ok(false) => continue,
                Ok(true) => {}
                Err(error) => {
                    self.fall_back(&mut state, format!("waiting for events: {error}"));
                    return Change::Anything;
                }
            }
            let (change, rewatch) = match self.read_events(inotify) {
                Ok(read) => read,
                Err(error) => {
                    self.fall_back(&mut state, format!("reading events: {error}"));
                    return Change::Anything;
                }
            };
            if rewatch && !self.rewatch(&mut state) {
                return Change::Anything;
            }
            if change != Change::Nothing {
                return change;
            }
        }
    }

    /// Sets inotify up; false (said once) when it cannot be had.
    fn start(&self, state: &mut State) -> bool {
        // SAFETY: inotify_init1 takes flags only; a non-negative result is a new descriptor
        // owned by nobody else.
        let descriptor = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if descriptor < 0 {
            let error = io::Error::last_os_error();
            self.fall_back(state, format!("inotify: {error}"));
            return false;
        }
        // SAFETY: just created above and not owned elsewhere.
        let descriptor = unsafe { OwnedFd::from_raw_fd(descriptor) };
        state.inotify = Some(Inotify {
            descriptor,
            directories: HashMap::new(),
        });
        self.rewatch(state)
    }

    /// Watches the root and every directory the layout names below it, and no other; false
    /// (said once) when the root cannot be watched.
    fn rewatch(&self, state: &mut State) -> bool {
        let Some(mut inotify) = state.inotify.take() else {
            return false;
        };
        let mut wanted = vec![PathBuf::new()];
        let mut watched = HashMap::new();
        let mut partial = false;
        while let Some(relative) = wanted.pop() {
            if watched.len() >= self.max_directories {
                partial = true;
                break;
            }
            let path = self.root.join(&relative);
            match add_watch(&inotify.descriptor, &path) {
                Ok(descriptor) => {
                    watched.insert(descriptor, relative.clone());
                }
                Err(error) if relative.as_os_str().is_empty() => {
                    self.fall_back(state, format!("{}: {error}", self.root.display()));
                    return false;
                }
                // Gone meanwhile, or unreadable: what is read from it will say.
                Err(_) => continue,
            }
            let Ok(entries) = std::fs::read_dir(&path) else {
                continue;
            };
            for entry in entries.flatten() {
                let below = relative.join(entry.file_name());
                if (self.layout.descend)(&below)
                    && std::fs::metadata(self.root.join(&below)).is_ok_and(|m| m.is_dir())
                {
                    wanted.push(below);
                }
            }
        }
        for old in inotify.directories.keys() {
            if !watched.contains_key(old) {
                // SAFETY: a watch descriptor of this inotify instance; a stale one is EINVAL.
                unsafe {
                    libc::inotify_rm_watch(inotify.descriptor.as_raw_fd(), *old);
                }
            }
        }
        inotify.directories = watched;
        state.inotify = Some(inotify);
        if partial && !state.partial {
            log::warn!(
                "{}: more than {} directories under {}: the rest is read every {} s",
                self.what,
                self.max_directories,
                self.root.display(),
                WATCH_POLL_INTERVAL.as_secs()
            );
        }
        state.partial = partial;
        if state.said.take().is_some() {
            log::info!("{}: watching {} again", self.what, self.root.display());
        }
        true
    }

    /// Polls from now on; says why once (again only after watching worked meanwhile).
    fn fall_back(&self, state: &mut State, why: String) {
        state.inotify = None;
        if state.said.is_none() {
            log::warn!(
                "{}: cannot watch {} ({why}): reading it every {} s instead",
                self.what,
                self.root.display(),
                WATCH_POLL_INTERVAL.as_secs()
            );
        }
        state.said = Some(why);
    }

    /// Reads every pending event: what changed, and whether the set of watched directories
    /// must be made again.
    fn read_events(&self, inotify: &Inotify) -> io::Result<(Change, bool)> {
        let mut buffer = [0u8; WATCH_READ_BUFFER];
        let mut change = Change::Nothing;
        let mut rewatch = false;
        loop {
            // SAFETY: reads into a live buffer of the length given.
            let read = unsafe {
                libc::read(
                    inotify.descriptor.as_raw_fd(),
                    buffer.as_mut_ptr().cast(),
                    buffer.len(),
                )
            };
            if read < 0 {
                let error = io::Error::last_os_error();
                return match error.kind() {
                    io::ErrorKind::WouldBlock => Ok((change, rewatch)),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(error),
                };
            }
            let events = buffer.get(..read as usize).unwrap_or_default();
            for event in Events(events) {
                let (seen, again) = self.event(inotify, &event);
                change = change.merge(seen);
                rewatch |= again;
            }
        }
    }

    /// What one event means.
    fn event(&self, inotify: &Inotify, event: &Event<'_>) -> (Change, bool) {
        if event.mask & libc::IN_Q_OVERFLOW != 0 {
            return (Change::Anything, true);
        }
        let Some(directory) = inotify.directories.get(&event.descriptor) else {
            return (Change::Nothing, false);
        };
        let at_root = directory.as_os_str().is_empty();
        if event.mask & (libc::IN_IGNORED | libc::IN_DELETE_SELF | libc::IN_MOVE_SELF) != 0 {
            // A watched directory went: its parent's event says what that means, except
            // for the root, which may have been replaced.
            return if at_root {
                (Change::Anything, true)
            } else {
                (Change::Nothing, true)
            };
        }
        let name = OsStr::from_bytes(event.name);
        if event.mask & libc::IN_ISDIR != 0 && (self.layout.descend)(&directory.join(name)) {
            // A new empty directory holds nothing yet, but whatever was written into it
            // before its watch was added is only seen by reading it all.
            return (Change::Anything, true);
        }
        if !(self.layout.relevant)(directory, name) {
            return (Change::Nothing, false);
        }
        if event.mask & libc::IN_CREATE != 0 && event.mask & libc::IN_ISDIR == 0 {
            // A regular file counts once written and closed; a link or a symlink is complete
            // as soon as it exists.
            let path = self.root.join(directory).join(name);
            let complete = std::fs::symlink_metadata(path)
                .is_ok_and(|m| !m.file_type().is_file() || m.nlink() > 1);
            if !complete {
                return (Change::Nothing, false);
            }
        }
        if at_root {
            (
                Change::Entries(BTreeSet::from([name.to_os_string()])),
                false,
            )
        } else {
            (Change::Anything, false)
        }
    }
}

/// Adds (or updates) the watch of directory `path`.
fn add_watch(inotify: &OwnedFd, path: &Path) -> io::Result<i32> {
    let mut bytes = path.as_os_str().as_bytes().to_vec();
    if bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    bytes.push(0);
    // SAFETY: a NUL-terminated path that lives through the call.
    let descriptor =
        unsafe { libc::inotify_add_watch(inotify.as_raw_fd(), bytes.as_ptr().cast(), WATCH_MASK) };
    if descriptor < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(descriptor)
    }
}

/// Waits until `descriptor` is readable or `limit` passed (false).
fn wait_readable(descriptor: &OwnedFd, limit: Duration) -> io::Result<bool> {
    let mut entry = libc::pollfd {
        fd: descriptor.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Rounded up, so a wait never ends just before its deadline and spins.
    let millis = limit.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32;
    // SAFETY: one live pollfd.
    let ready = unsafe { libc::poll(&mut entry, 1, millis) };
    if ready < 0 {
        let error = io::Error::last_os_error();
        return if error.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(error)
        };
    }
    Ok(ready > 0)
}

/// One `struct inotify_event`, its name without the NUL padding.
struct Event<'a> {
    descriptor: i32,
    mask: u32,
    name: &'a [u8],
}

/// The events of one read, in order; stops at the first incomplete one.
struct Events<'a>(&'a [u8]);

impl<'a> Iterator for Events<'a> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        // wd (i32), mask (u32), cookie (u32), len (u32), then len bytes of name.
        let field = |at: usize| -> Option<[u8; 4]> { self.0.get(at..at + 4)?.try_into().ok() };
        let descriptor = i32::from_ne_bytes(field(0)?);
        let mask = u32::from_ne_bytes(field(4)?);
        let length = u32::from_ne_bytes(field(12)?) as usize;
        let name = self.0.get(16..16 + length)?;
        let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
        self.0 = self.0.get(16 + length..).unwrap_or_default();
        Some(Event {
            descriptor,
            mask,
            name: name.get(..end).unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenplug-watch-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn flat(_: &Path) -> bool {
        false
    }

    fn domains(_: &Path, name: &OsStr) -> bool {
        name.to_str().is_some_and(|n| n.ends_with(".domain"))
    }

    fn two_levels(path: &Path) -> bool {
        path.components().count() <= 2
    }

    fn everything(_: &Path, _: &OsStr) -> bool {
        true
    }

    const FLAT: Layout = Layout {
        descend: flat,
        relevant: domains,
    };

    /// A wait that would end on its limit, when nothing comes.
    const LONG: Duration = Duration::from_secs(20);

    fn entries(names: &[&str]) -> Change {
        Change::Entries(names.iter().map(OsString::from).collect())
    }

    #[test]
    fn a_written_file_is_seen_and_others_are_not() {
        let dir = temp_dir("flat");
        let watch = Watch::new("test", &dir, FLAT, 1);
        assert_eq!(watch.wait(LONG), Change::Anything, "the watch begins");
        assert_eq!(watch.wait(Duration::from_millis(10)), Change::Nothing);
        fs::write(dir.join("notes.txt"), "ignored").unwrap();
        fs::write(dir.join("web.domain"), "state=running\n").unwrap();
        assert_eq!(watch.wait(LONG), entries(&["web.domain"]));
        // Atomic replacement: the temporary name does not matter, the rename does.
        crate::files::write_atomic(&dir.join("web.domain"), b"state=paused\n").unwrap();
        assert_eq!(watch.wait(LONG), entries(&["web.domain"]));
        fs::remove_file(dir.join("web.domain")).unwrap();
        assert_eq!(watch.wait(LONG), entries(&["web.domain"]));
        std::os::unix::fs::symlink("/nonexistent", dir.join("link.domain")).unwrap();
        assert_eq!(watch.wait(LONG), entries(&["link.domain"]));
        assert_eq!(watch.wait(Duration::from_millis(10)), Change::Nothing);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn new_directories_are_followed() {
        let dir = temp_dir("tree");
        let layout = Layout {
            descend: two_levels,
            relevant: everything,
        };
        let watch = Watch::new("test", &dir, layout, 16);
        assert_eq!(watch.wait(LONG), Change::Anything, "the watch begins");
        assert_eq!(watch.wait(Duration::from_millis(10)), Change::Nothing);
        fs::create_dir_all(dir.join("Echo/state")).unwrap();
        assert_eq!(watch.wait(LONG), Change::Anything, "a new folder");
        // Events of the first level may have come separately; drain them.
        while watch.wait(Duration::from_millis(50)) != Change::Nothing {}
        fs::write(dir.join("Echo/state/Value"), "1").unwrap();
        assert_eq!(watch.wait(LONG), Change::Anything, "a file two levels down");
        fs::create_dir_all(dir.join("Echo/state/deeper")).unwrap();
        fs::write(dir.join("Echo/state/deeper/x"), "1").unwrap();
        assert_eq!(
            watch.wait(Duration::from_millis(100)),
            Change::Anything,
            "the folder's creation is seen"
        );
        assert_eq!(
            watch.wait(Duration::from_millis(100)),
            Change::Nothing,
            "but not what happens below the layout"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_is_polled_until_it_exists() {
        let dir = temp_dir("missing");
        let missing = dir.join("not-yet");
        let watch = Watch::new("test", &missing, FLAT, 1);
        let started = Instant::now();
        assert_eq!(watch.wait(Duration::from_millis(50)), Change::Anything);
        assert!(started.elapsed() >= Duration::from_millis(50));
        fs::create_dir(&missing).unwrap();
        assert_eq!(watch.wait(LONG), Change::Anything, "the watch begins");
        assert_eq!(watch.wait(Duration::from_millis(10)), Change::Nothing);
        fs::write(missing.join("a.domain"), "x").unwrap();
        assert_eq!(watch.wait(LONG), entries(&["a.domain"]));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn too_many_directories_are_polled_too() {
        let dir = temp_dir("partial");
        fs::create_dir_all(dir.join("a")).unwrap();
        fs::create_dir_all(dir.join("b")).unwrap();
        let layout = Layout {
            descend: two_levels,
            relevant: everything,
        };
        let watch = Watch::new("test", &dir, layout, 2);
        assert_eq!(watch.wait(LONG), Change::Anything, "the watch begins");
        let started = Instant::now();
        assert_eq!(watch.wait(LONG), Change::Anything, "then looks every 2 s");
        assert!(started.elapsed() < LONG);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn events_parse_and_stop_at_a_cut() {
        let mut bytes = Vec::new();
        for (wd, mask, name) in [(1i32, 8u32, &b"a.domain\0\0\0\0"[..]), (2, 512, b"")] {
            bytes.extend_from_slice(&wd.to_ne_bytes());
            bytes.extend_from_slice(&mask.to_ne_bytes());
            bytes.extend_from_slice(&0u32.to_ne_bytes());
            bytes.extend_from_slice(&(name.len() as u32).to_ne_bytes());
            bytes.extend_from_slice(name);
        }
        let events: Vec<_> = Events(&bytes)
            .map(|e| (e.descriptor, e.mask, e.name.to_vec()))
            .collect();
        assert_eq!(
            events,
            vec![(1, 8, b"a.domain".to_vec()), (2, 512, Vec::new())]
        );
        for cut in 0..bytes.len() {
            assert!(Events(&bytes[..cut]).count() <= 2);
        }
    }
}
