//! The repository's disk work, on a thread of its own. The owner stages record files and
//! journal lines ([`Work`]) and goes on at once; this thread makes them durable in the order
//! they were handed over, so a flush (milliseconds, or a second on a busy disk) never keeps the
//! tracker's event loop from draining its sockets. The records are handed over as they are (a
//! VM's record shared, not copied) and rendered here, so no text waits in the owner's heap
//! between its long-lived records. Work handed over while a flush runs is merged into the next
//! one (a file's last content wins), so a burst costs a few flushes whatever its size. A flush
//! that fails is logged once and tried again with backoff, holding back everything after it:
//! nothing is lost or reordered while the process lives.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use uuid::Uuid;

use super::record::{HardwareRecord, VirtualRecord};
use super::store::{ensure_dir_durably, sync_dir, sync_filesystem};
use crate::files::temporary_path;

/// Record files written in one flush of at least this many are made durable with one `syncfs`
/// of the repository's filesystem; fewer, each with its own `fsync` (a `syncfs` also waits for
/// whatever else is dirty on that filesystem).
const REPO_SYNCFS_FROM: usize = 8;
/// Pause before the first new attempt at a flush that failed; doubled after each failure.
const REPO_RETRY_FIRST: Duration = Duration::from_millis(250);
/// Longest pause between attempts at a flush that keeps failing.
const REPO_RETRY_MAX: Duration = Duration::from_secs(30);
/// Stack of the writer thread: it holds paths and a few small buffers, never a record tree.
const REPO_WRITER_STACK: usize = 128 * 1024;

/// One record file, named by what it holds ([`RecordFile::path`] gives its place).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum RecordFile {
    /// `hardware/<host-uuid>`.
    Hardware(Uuid),
    /// `virtual/<vm-uuid>`.
    Virtual(Uuid),
    /// `tenants/<tenant>/<vm-uuid>`; the tenant's name has been checked.
    Slice(Box<str>, Uuid),
}

/// What becomes of one record file: written with the record's text (a slice with the VM's
/// tenant view, see [`RecordFile::text`]) to a temporary file, made durable and renamed into
/// place; or removed.
pub(super) enum Change {
    Hardware(HardwareRecord),
    Vm(Arc<VirtualRecord>),
    Remove,
}

/// Changes to make durable together: record files, one change each, then whole journal lines.
#[derive(Default)]
pub(super) struct Work {
    files: BTreeMap<RecordFile, Change>,
    journal: String,
    /// Sequence number of the last line of `journal`.
    last_seq: u64,
}

impl Work {
    /// Stages `change` of `file`, replacing what was staged for it before.
    pub(super) fn stage(&mut self, file: RecordFile, change: Change) {
        self.files.insert(file, change);
    }

    /// Stages whole journal lines, the last of them numbered `last_seq`.
    pub(super) fn append(&mut self, lines: String, last_seq: u64) {
        if self.journal.is_empty() {
            self.journal = lines;
        } else {
            self.journal.push_str(&lines);
        }
        self.last_seq = last_seq;
    }

    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty() && self.journal.is_empty()
    }

    /// Adds `later`'s changes after these.
    fn merge(&mut self, later: Work) {
        if self.is_empty() {
            *self = later;
            return;
        }
        self.files.extend(later.files);
        if !later.journal.is_empty() {
            self.append(later.journal, later.last_seq);
        }
    }
}

/// How far the journal is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Durable {
    /// Sequence number of the last durable event, 0 for none.
    pub seq: u64,
    /// Bytes of durable whole lines in the journal file.
    pub journal_length: u64,
}

/// What the owner and the writer thread share, under one lock: the work waiting, and what
/// the thread has done.
#[derive(Default)]
struct State {
    /// Work handed over and not taken yet, merged.
    queue: Work,
    /// Pieces of work merged into `queue`.
    queued: u64,
    /// Cleared when the owner lets go.
    open: bool,
    durable: Durable,
    /// Pieces of work handed over, and of those, made durable.
    handed: u64,
    done: u64,
    /// Flushes that failed since the start, and the last failure while it lasts.
    failures: u64,
    failing: Option<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when work arrives or the owner lets go (the thread waits on it).
    arrived: Condvar,
    /// Signalled after each attempt at a flush (the owner waits on it in `settle`).
    changed: Condvar,
    /// Called after each flush that moved the journal on.
    on_durable: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held leaves work and counters, which stay meaningful.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The owner's end of the writer thread.
pub(super) struct Writer {
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("durable", &self.durable())
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Starts the writer thread of the repository in `root`, appending to `journal` (opened
    /// for appending), which is durable as far as `durable` says.
    pub(super) fn start(root: PathBuf, journal: File, durable: Durable) -> io::Result<Writer> {
        let shared = Arc::new(Shared::default());
        {
            let mut state = shared.state();
            state.durable = durable;
            state.open = true;
        }
        let disk = Disk {
            root,
            journal,
            journal_length: durable.journal_length,
            journal_torn: false,
            folders: BTreeSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("repository".into())
            .stack_size(REPO_WRITER_STACK)
            .spawn({
                let shared = shared.clone();
                move || run(disk, &shared)
            })?;
        Ok(Writer {
            thread: Some(thread),
            shared,
        })
    }

    /// Hands `work` to the thread; returns at once.
    pub(super) fn hand_over(&self, work: Work) {
        if work.is_empty() {
            return;
        }
        let mut state = self.shared.state();
        state.queue.merge(work);
        state.queued += 1;
        state.handed += 1;
        drop(state);
        self.shared.arrived.notify_one();
    }

    /// How far the journal is durable.
    pub(super) fn durable(&self) -> Durable {
        self.shared.state().durable
    }

    /// Has `notice` called (on the writer thread) after each flush that moved the journal on.
    pub(super) fn on_durable(&self, notice: Box<dyn Fn() + Send>) {
        *self
            .shared
            .on_durable
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(notice);
    }

    /// Waits until everything handed over so far is durable; fails with the failure of an
    /// attempt that fails meanwhile (the thread goes on trying: call again to wait for it).
    pub(super) fn settle(&self) -> io::Result<()> {
        let mut state = self.shared.state();
        let target = state.handed;
        let failures = state.failures;
        while state.done < target {
            if state.failures != failures {
                let failure = state.failing.clone().unwrap_or_default();
                return Err(io::Error::other(failure));
            }
            if self
                .thread
                .as_ref()
                .is_none_or(|thread| thread.is_finished())
            {
                // Only a panic ends the thread while the owner holds on.
                return Err(io::Error::other("the repository's writer thread has ended"));
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner());
        }
        Ok(())
    }
}

impl Drop for Writer {
    /// Lets the thread write what it holds, then waits for it.
    fn drop(&mut self) {
        self.shared.state().open = false;
        self.shared.arrived.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The files, as the writer thread holds them.
struct Disk {
    root: PathBuf,
    journal: File,
    /// Bytes of durable whole lines in the journal.
    journal_length: u64,
    /// Set when an append failed: whatever it left past `journal_length` is cut before the
    /// next one.
    journal_torn: bool,
    /// Folders known to exist (a tenant's folder is created the first time a slice needs it).
    folders: BTreeSet<PathBuf>,
}

impl Disk {
    /// Makes `work` durable: record files first, then the journal lines, so an event on disk
    /// always follows its records.
    fn flush(&mut self, work: &Work) -> io::Result<()> {
        let written = self.write_files(&work.files);
        if written.is_err() {
            // A folder removed under the tracker is created again at the next attempt.
            self.folders.clear();
        }
        written?;
        if !work.journal.is_empty() {
            self.append(&work.journal)?;
        }
        Ok(())
    }

    /// Writes each file to its temporary file, makes them durable (one `syncfs`, or one
    /// `fsync` each for a few), renames each into place, removes what is removed, and fsyncs
    /// each folder touched once. Each record is old or new after a crash, never torn, as with
    /// [`write_atomic`](crate::files::write_atomic); n records cost two or three disk flushes
    /// instead of 2n. Temporary files not renamed yet are removed when a step fails. One text
    /// and one path are held at a time: paths are made again where they are needed.
    fn write_files(&mut self, files: &BTreeMap<RecordFile, Change>) -> io::Result<()> {
        let mut written = Vec::new();
        let result = self.place(files, &mut written);
        for file in written {
            if let Ok((_, temporary)) = self.paths(file) {
                let _ = fs::remove_file(temporary);
            }
        }
        result
    }

    /// Where `file` goes, and the temporary file it is written to first.
    fn paths(&self, file: &RecordFile) -> io::Result<(PathBuf, PathBuf)> {
        let path = file.path(&self.root);
        let (_, temporary) = temporary_path(&path)?;
        Ok((path, temporary))
    }

    fn place<'f>(
        &mut self,
        files: &'f BTreeMap<RecordFile, Change>,
        written: &mut Vec<&'f RecordFile>,
    ) -> io::Result<()> {
        for (file, change) in files {
            let Some(text) = file.text(change)? else {
                continue;
            };
            let (path, temporary) = self.paths(file)?;
            if let Some(folder) = path.parent() {
                self.ensure_folder(folder)?;
            }
            written.push(file);
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&temporary)
                .and_then(|mut out| out.write_all(text.as_bytes()))?;
        }
        if written.len() >= REPO_SYNCFS_FROM {
            sync_filesystem(&self.root)?;
        } else {
            for file in written.iter() {
                File::open(self.paths(file)?.1)?.sync_all()?;
            }
        }
        let mut touched = BTreeSet::new();
        let mut touch = |path: &Path| {
            if let Some(folder) = path.parent().filter(|f| !touched.contains(*f)) {
                touched.insert(folder.to_path_buf());
            }
        };
        for file in written.iter() {
            let (path, temporary) = self.paths(file)?;
            fs::rename(temporary, &path)?;
            touch(&path);
        }
        // Renamed: nothing left to remove if a later step fails.
        written.clear();
        for (file, change) in files {
            if let Change::Remove = change {
                let path = file.path(&self.root);
                match fs::remove_file(&path) {
                    Ok(()) => touch(&path),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        for folder in touched {
            sync_dir(&folder)?;
        }
        Ok(())
    }

    /// Creates `folder` durably if it is missing (a tenant's folder; the others exist since
    /// the repository was opened).
    fn ensure_folder(&mut self, folder: &Path) -> io::Result<()> {
        if self.folders.contains(folder) {
            return Ok(());
        }
        ensure_dir_durably(folder)?;
        self.folders.insert(folder.to_path_buf());
        Ok(())
    }

    /// Appends whole lines with one `write` and one `fsync`, after cutting away whatever a
    /// failed append left.
    fn append(&mut self, lines: &str) -> io::Result<()> {
        if self.journal_torn {
            self.journal.set_len(self.journal_length)?;
            self.journal.sync_data()?;
            self.journal_torn = false;
        }
        let written = self
            .journal
            .write_all(lines.as_bytes())
            .and_then(|()| self.journal.sync_data());
        if let Err(error) = written {
            self.journal_torn = true;
            return Err(error);
        }
        self.journal_length += lines.len() as u64;
        Ok(())
    }
}

/// The writer thread: takes work in order, merging what waits, until the owner lets go and
/// everything is written (or, once the owner has let go, a last attempt has failed).
fn run(mut disk: Disk, shared: &Shared) {
    let mut pending = Work::default();
    // Pieces of work merged into `pending`.
    let mut merged = 0;
    // After a failure: when to try again, and the pause after the next failure.
    let mut retry_at: Option<Instant> = None;
    let mut retry = REPO_RETRY_FIRST;
    loop {
        let (waiting, open) = {
            let mut state = shared.state();
            loop {
                let has_work = merged > 0 || !state.queue.is_empty();
                let now = Instant::now();
                match retry_at {
                    _ if !state.open => break,
                    None if has_work => break,
                    Some(at) if now >= at => break,
                    Some(at) => {
                        state = shared
                            .arrived
                            .wait_timeout(state, at - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0
                    }
                    None => {
                        state = shared
                            .arrived
                            .wait(state)
                            .unwrap_or_else(|e| e.into_inner())
                    }
                }
            }
            merged += std::mem::take(&mut state.queued);
            (std::mem::take(&mut state.queue), state.open)
        };
        pending.merge(waiting);
        if merged == 0 {
            return;
        }
        match disk.flush(&pending) {
            Ok(()) => {
                let moved = !pending.journal.is_empty();
                let mut state = shared.state();
                if moved {
                    state.durable = Durable {
                        seq: pending.last_seq,
                        journal_length: disk.journal_length,
                    };
                }
                state.done += merged;
                if state.failing.take().is_some() {
                    log::warn!("repository: writing again, nothing lost");
                }
                drop(state);
                shared.changed.notify_all();
                if moved {
                    let notice = shared.on_durable.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(notice) = &*notice {
                        notice();
                    }
                }
                pending = Work::default();
                merged = 0;
                retry_at = None;
                retry = REPO_RETRY_FIRST;
            }
            Err(error) => {
                let failure = error.to_string();
                let mut state = shared.state();
                if state.failing.as_deref() != Some(failure.as_str()) {
                    log::error!(
                        "repository {}: writing failed ({failure}); {} record files and {} \
                         journal bytes held, tried again with backoff",
                        disk.root.display(),
                        pending.files.len(),
                        pending.journal.len()
                    );
                }
                state.failing = Some(failure);
                state.failures += 1;
                drop(state);
                shared.changed.notify_all();
                if !open {
                    log::error!(
                        "repository {}: stopping with {} record files and {} journal bytes \
                         not written",
                        disk.root.display(),
                        pending.files.len(),
                        pending.journal.len()
                    );
                    return;
                }
                retry_at = Some(Instant::now() + retry);
                retry = (retry * 2).min(REPO_RETRY_MAX);
            }
        }
    }
}
