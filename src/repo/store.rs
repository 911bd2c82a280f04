//! The repository: records in their folders, tenant slices and the journal file. Opening and
//! reading are blocking file I/O here; changes are staged here and made durable by the
//! [`writer`](super::writer) thread. No sockets, no clock (time comes in as unix seconds).
//! What the files hold is [`record`](super::record)'s and [`journal`](super::journal)'s.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use uuid::Uuid;

use crate::consts::{JOURNAL_FORMAT_LINE, REPO_MAX_JOURNAL_LINE, REPO_MAX_RECORD};
use crate::files::{is_temporary, write_atomic};

use super::journal::{Event, EventDraft};
use super::record::{
    file_name, is_valid_name, parse_canonical_uuid, parse_hardware_text, parse_virtual_text,
    render_record, tenant_view, HardwareRecord, TextError, VirtualRecord,
};
use super::writer::{Change, Durable, RecordFile, Work, Writer};

/// What [`JOURNAL_FORMAT_LINE`] starts with whatever the version.
const JOURNAL_FORMAT_PREFIX: &str = "# xenplug-journal ";
/// Folder of the hardware configuration repository: one record per hypervisor host UUID.
const REPO_HARDWARE_DIR: &str = "hardware";
/// Folder of the virtual infrastructure repository: one record per VM UUID.
const REPO_VIRTUAL_DIR: &str = "virtual";
/// Folder of the tenant slices: `tenants/<tenant>/<vm-uuid>`.
const REPO_TENANTS_DIR: &str = "tenants";
/// The event journal's file name.
const REPO_JOURNAL_FILE: &str = "events.log";
/// File the repository owner holds an exclusive lock on, so two trackers never share one.
const REPO_LOCK_FILE: &str = ".lock";
/// Put between a record's name and the time when a record that does not parse is moved
/// aside: `<name>.corrupt-<unix seconds>`.
const REPO_CORRUPT_INFIX: &str = ".corrupt-";
/// One event in this many has its place in the journal kept in memory: events are read from
/// the file, starting at most this many lines before the first one asked for.
const REPO_INDEX_EVERY: u64 = 128;

/// Reads at most `limit` bytes of `path` as UTF-8; `Ok(Err)` when it is larger or not UTF-8.
fn read_bounded(path: &Path, limit: usize) -> io::Result<Result<String, String>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > limit {
        return Ok(Err(format!("larger than {limit} bytes")));
    }
    Ok(String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string()))
}

/// fsyncs a folder, so that a rename, creation or removal in it is durable.
pub(super) fn sync_dir(path: &Path) -> io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates folder `path` if missing (see [`ensure_dir`]), and fsyncs its parent when it did.
pub(super) fn ensure_dir_durably(path: &Path) -> io::Result<()> {
    if ensure_dir(path)? {
        if let Some(parent) = path.parent() {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Removes `path` durably; `false` when it was not there.
fn remove_durably(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {
            if let Some(parent) = path.parent() {
                sync_dir(parent)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates folder `path` if missing; `true` when it was created. A symbolic link is refused
/// even if it points to a folder, so nothing is written outside the repository through one.
pub(super) fn ensure_dir(path: &Path) -> io::Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            if fs::symlink_metadata(path)?.is_dir() {
                Ok(false)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} exists and is not a folder", path.display()),
                ))
            }
        }
        Err(e) => Err(e),
    }
}

/// Renames a record that does not parse to `<name>.corrupt-<now>` (with `.<n>` added if that
/// exists) in the same folder, so that it is kept for a person to look at.
fn move_aside(path: &Path, now: u64, reason: &str) -> io::Result<()> {
    let mut target = PathBuf::from(format!("{}{REPO_CORRUPT_INFIX}{now}", path.display()));
    let mut attempt = 0;
    while target.exists() {
        attempt += 1;
        if attempt > 1000 {
            return Err(io::Error::other(format!(
                "{}: no free name to move it aside",
                path.display()
            )));
        }
        target = PathBuf::from(format!(
            "{}{REPO_CORRUPT_INFIX}{now}.{attempt}",
            path.display()
        ));
    }
    fs::rename(path, &target)?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    log::error!(
        "{}: {reason}; moved aside to {}",
        path.display(),
        target.display()
    );
    Ok(())
}

/// What one entry of a record folder is.
enum Entry {
    /// A canonical UUID name of a regular file.
    Record(Uuid, PathBuf),
    /// Anything else: handled (temporary removed, corrupt copy skipped) or logged and left.
    Other,
}

/// Sorts one folder entry, removing a temporary file a crash left.
fn classify(entry: &fs::DirEntry) -> io::Result<Entry> {
    let path = entry.path();
    let Some(name) = entry.file_name().to_str().map(str::to_string) else {
        log::warn!("{}: name is not UTF-8, left alone", path.display());
        return Ok(Entry::Other);
    };
    if is_temporary(&name) {
        log::info!(
            "{}: temporary file of an interrupted write removed",
            path.display()
        );
        fs::remove_file(&path)?;
        return Ok(Entry::Other);
    }
    if name.contains(REPO_CORRUPT_INFIX) {
        return Ok(Entry::Other);
    }
    let uuid = match parse_canonical_uuid(&name) {
        Ok(uuid) if entry.file_type()?.is_file() => uuid,
        _ => {
            log::warn!("{}: not a record, left alone", path.display());
            return Ok(Entry::Other);
        }
    };
    Ok(Entry::Record(uuid, path))
}

/// Loads every record of one folder; a record that does not parse, or whose UUID is not its
/// file name, is moved aside.
fn load_records<T>(
    folder: &Path,
    now: u64,
    parse: fn(&str) -> Result<T, TextError>,
    uuid_of: fn(&T) -> Uuid,
) -> io::Result<BTreeMap<Uuid, T>> {
    let mut records = BTreeMap::new();
    for entry in fs::read_dir(folder)? {
        let Entry::Record(uuid, path) = classify(&entry?)? else {
            continue;
        };
        let parsed = match read_bounded(&path, REPO_MAX_RECORD)? {
            Ok(text) => parse(&text),
            Err(reason) => Err(TextError::Corrupt(reason)),
        };
        match parsed {
            Ok(record) if uuid_of(&record) == uuid => {
                records.insert(uuid, record);
            }
            Ok(_) => move_aside(&path, now, "its UUID is not its file name")?,
            Err(TextError::Corrupt(reason)) => move_aside(&path, now, &reason)?,
            Err(TextError::OtherVersion(reason)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {reason}", path.display()),
                ))
            }
        }
    }
    Ok(records)
}

/// The repository's exclusive lock: `flock()` on `<root>/.lock`, released explicitly on drop.
///
/// An flock belongs to the open file description, and a child forked by any thread of this
/// process shares that description until it execs or exits (close-on-exec closes it only at
/// exec). Closing our descriptor alone would leave the lock held by such a child for as long
/// as its window lasts, and a reopen right after a drop would find the repository "in use by
/// another process". `LOCK_UN` on our descriptor releases it for every duplicate at once.
#[derive(Debug)]
struct RepositoryLock {
    file: File,
}

impl RepositoryLock {
    /// Takes the exclusive lock on the repository in `root`, or says that another holds it.
    fn acquire(root: &Path) -> io::Result<RepositoryLock> {
        use std::os::fd::AsRawFd;
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(root.join(REPO_LOCK_FILE))?;
        // SAFETY: flock() takes a descriptor `file` owns for the whole call, and no memory.
        let result = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if result == 0 {
            return Ok(RepositoryLock { file });
        }
        let error = io::Error::last_os_error();
        if error.kind() == io::ErrorKind::WouldBlock {
            return Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!("{} is in use by another process", root.display()),
            ));
        }
        Err(error)
    }
}

impl Drop for RepositoryLock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: flock() takes a descriptor `self.file` owns for the whole call, and no memory.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// What reading the journal found.
struct JournalScan {
    /// Bytes of whole lines.
    length: u64,
    /// Sequence number of the last event, 0 for none.
    last_seq: u64,
    index: JournalIndex,
}

/// Where in the journal every [`REPO_INDEX_EVERY`]th event's line starts, so that events are
/// read from close to the first one asked for: neither kept in memory (a thousand lines
/// cost as much as a hundred VMs) nor looked for from the start of the file.
#[derive(Debug, Default)]
struct JournalIndex {
    /// (seq, byte offset of its line), both growing.
    marks: Vec<(u64, u64)>,
}

impl JournalIndex {
    /// Notes that the line of event `seq` starts at byte `offset`.
    fn note(&mut self, seq: u64, offset: u64) {
        if self
            .marks
            .last()
            .is_none_or(|(marked, _)| seq >= marked + REPO_INDEX_EVERY)
        {
            self.marks.push((seq, offset));
        }
    }

    /// Where to start reading for the events after `seq`: the last mark at or before the
    /// first of them, else the first mark; `None` when there is no event.
    fn start(&self, seq: u64) -> Option<u64> {
        let after = self
            .marks
            .partition_point(|(marked, _)| *marked <= seq.saturating_add(1));
        self.marks
            .get(after.saturating_sub(1))
            .map(|(_, offset)| *offset)
    }
}

/// Reads one line of at most [`REPO_MAX_JOURNAL_LINE`] bytes: `Ok(None)` at the end,
/// `Ok(Some((bytes, whole)))` otherwise, `whole` false for a last line with no newline.
fn read_journal_line(reader: &mut impl BufRead) -> io::Result<Option<(Vec<u8>, bool)>> {
    let mut bytes = Vec::new();
    reader
        .take(REPO_MAX_JOURNAL_LINE as u64)
        .read_until(b'\n', &mut bytes)?;
    if bytes.is_empty() {
        return Ok(None);
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        return Ok(Some((bytes, true)));
    }
    if bytes.len() >= REPO_MAX_JOURNAL_LINE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("journal line longer than {REPO_MAX_JOURNAL_LINE} bytes"),
        ));
    }
    Ok(Some((bytes, false)))
}

/// Parses one whole journal line, found at `place` (its line or byte); `Ok(None)` for a
/// comment.
fn parse_journal_bytes(
    bytes: &[u8],
    place: std::fmt::Arguments<'_>,
    path: &Path,
) -> io::Result<Option<Event>> {
    let invalid = |reason: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} {place}: {reason}", path.display()),
        )
    };
    let line = std::str::from_utf8(bytes).map_err(|_| invalid("not UTF-8".into()))?;
    if line.starts_with('#') {
        return Ok(None);
    }
    Event::parse_line(line).map(Some).map_err(invalid)
}

/// Reads the journal through `file`, cutting a torn last line away.
fn scan_journal(file: &mut File, path: &Path) -> io::Result<JournalScan> {
    let mut reader = BufReader::new(&*file);
    let mut scan = JournalScan {
        length: 0,
        last_seq: 0,
        index: JournalIndex::default(),
    };
    let mut number = 0;
    let mut torn = false;
    while let Some((bytes, whole)) = read_journal_line(&mut reader)? {
        number += 1;
        if !whole {
            torn = true;
            break;
        }
        if number == 1 {
            match std::str::from_utf8(&bytes) {
                Ok(JOURNAL_FORMAT_LINE) => {}
                Ok(line) if line.starts_with(JOURNAL_FORMAT_PREFIX) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "{}: format {line:?}, this xenplug reads {JOURNAL_FORMAT_LINE:?}",
                            path.display()
                        ),
                    ))
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not a xenplug journal", path.display()),
                    ))
                }
            }
        } else if let Some(event) =
            parse_journal_bytes(&bytes, format_args!("line {number}"), path)?
        {
            if event.seq <= scan.last_seq {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} line {number}: seq {} after {}",
                        path.display(),
                        event.seq,
                        scan.last_seq
                    ),
                ));
            }
            if event.seq != scan.last_seq + 1 {
                log::warn!(
                    "{} line {number}: seq {} follows {}: events are missing",
                    path.display(),
                    event.seq,
                    scan.last_seq
                );
            }
            scan.last_seq = event.seq;
            scan.index.note(event.seq, scan.length);
        }
        scan.length += bytes.len() as u64 + 1;
    }
    drop(reader);
    if torn && number == 1 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not a xenplug journal", path.display()),
        ));
    }
    if torn {
        log::warn!(
            "{} line {number}: torn by a crash (no newline), never acknowledged: cut away",
            path.display()
        );
        file.set_len(scan.length)?;
        file.sync_all()?;
    }
    Ok(scan)
}

/// Every VM record, by VM UUID. Behind an `Arc`: the tracker's inventory holds the same
/// records and shares them rather than keeping copies (and a BTreeMap node's unused room
/// costs more than a pointer per record does).
pub type VirtualRecords = BTreeMap<Uuid, Arc<VirtualRecord>>;

/// The tracker's repositories and journal, opened by one process at a time.
///
/// Changes show in its maps at once and are made durable in order by its writer thread (see
/// `repo::writer`); the journal is read as far as it is durable.
#[derive(Debug)]
pub struct Repository {
    root: PathBuf,
    /// Makes changes durable; dropped (having written everything) before the lock.
    writer: Writer,
    /// Held for as long as the repository is open.
    _lock: RepositoryLock,
    /// How far the journal is durable, as of the last [`Repository::catch_up`]: every read
    /// of the journal between two catch-ups sees the same events.
    durable: Durable,
    /// The journal, opened again for reading.
    journal_reader: File,
    /// Sequence number given to the last event appended (durable or not yet), and the
    /// journal's length once it is.
    appended_seq: u64,
    appended_length: u64,
    /// Where events' lines start, durable or not yet.
    index: JournalIndex,
    hardware: BTreeMap<Uuid, HardwareRecord>,
    virtual_machines: VirtualRecords,
}

impl Repository {
    /// Opens (creating if needed) the repository in `root`: takes its lock, removes the
    /// temporary files a crash left, loads every record (one that does not parse is moved
    /// aside to `<name>.corrupt-<now>` and logged), rewrites the tenant slices from the
    /// virtual records, reads the journal to find the last sequence number and cuts a torn last
    /// line away. Fails when another process has it open, when a record or the journal was
    /// written in another format version, or when a journal line in the middle does not parse
    /// (a crash cannot do that: a person should look).
    pub fn open(root: &Path, now: u64) -> io::Result<Repository> {
        fs::create_dir_all(root)?;
        let lock = RepositoryLock::acquire(root)?;
        let mut created = false;
        for folder in [REPO_HARDWARE_DIR, REPO_VIRTUAL_DIR, REPO_TENANTS_DIR] {
            created |= ensure_dir(&root.join(folder))?;
        }
        if created {
            sync_dir(root)?;
        }
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            if entry.file_name().to_str().is_some_and(is_temporary) {
                log::info!(
                    "{}: temporary file of an interrupted write removed",
                    entry.path().display()
                );
                fs::remove_file(entry.path())?;
            }
        }
        let hardware = load_records(
            &root.join(REPO_HARDWARE_DIR),
            now,
            parse_hardware_text,
            |record: &HardwareRecord| record.host_uuid,
        )?;
        let virtual_machines = load_records(
            &root.join(REPO_VIRTUAL_DIR),
            now,
            |text| parse_virtual_text(text).map(Arc::new),
            |record| record.vm_uuid,
        )?;
        let journal_path = root.join(REPO_JOURNAL_FILE);
        let empty = match fs::metadata(&journal_path) {
            Ok(metadata) => metadata.len() == 0,
            Err(e) if e.kind() == io::ErrorKind::NotFound => true,
            Err(e) => return Err(e),
        };
        if empty {
            write_atomic(&journal_path, format!("{JOURNAL_FORMAT_LINE}\n").as_bytes())?;
        }
        let mut journal = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&journal_path)?;
        let scan = scan_journal(&mut journal, &journal_path)?;
        let durable = Durable {
            seq: scan.last_seq,
            journal_length: scan.length,
        };
        let repository = Repository {
            root: root.to_path_buf(),
            writer: Writer::start(root.to_path_buf(), journal, durable)?,
            _lock: lock,
            durable,
            journal_reader: File::open(&journal_path)?,
            appended_seq: scan.last_seq,
            appended_length: scan.length,
            index: scan.index,
            hardware,
            virtual_machines,
        };
        repository.reconcile_tenants()?;
        Ok(repository)
    }

    /// The folder the repository lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every hypervisor record, by host UUID.
    pub fn hardware(&self) -> &BTreeMap<Uuid, HardwareRecord> {
        &self.hardware
    }

    /// Every VM record, by VM UUID.
    pub fn virtual_machines(&self) -> &VirtualRecords {
        &self.virtual_machines
    }

    /// The record of VM `vm`, if there is one.
    pub fn virtual_machine(&self, vm: &Uuid) -> Option<&VirtualRecord> {
        self.virtual_machines.get(vm).map(Arc::as_ref)
    }

    /// Sequence number of the last durable event as of the last [`Repository::catch_up`], 0
    /// for none.
    pub fn last_seq(&self) -> u64 {
        self.durable.seq
    }

    /// Has `notice` called, on the writer thread, each time more of the journal is durable;
    /// [`Repository::catch_up`] then shows it.
    pub fn on_durable(&self, notice: impl Fn() + Send + 'static) {
        self.writer.on_durable(Box::new(notice));
    }

    /// Shows the events the writer has made durable since the last call; `true` when there
    /// are new ones.
    pub fn catch_up(&mut self) -> bool {
        let durable = self.writer.durable();
        let moved = durable != self.durable;
        self.durable = durable;
        moved
    }

    /// Waits until every change made so far is durable, and shows it; fails with the failure
    /// of an attempt that fails meanwhile (the writer goes on trying: call again to wait for
    /// it).
    pub fn settle(&mut self) -> io::Result<()> {
        self.writer.settle()?;
        self.catch_up();
        Ok(())
    }

    /// Writes a tenant slice, creating the tenant's folder durably if needed.
    fn write_tenant_slice(&self, tenant: &str, vm: &Uuid, text: &str) -> io::Result<()> {
        let slice = RecordFile::Slice(tenant.into(), *vm).path(&self.root);
        if let Some(folder) = slice.parent() {
            ensure_dir_durably(folder)?;
        }
        write_atomic(&slice, text.as_bytes())
    }

    /// Makes `tenants/` agree with the virtual records: rewrites a slice that differs or is
    /// missing, removes one whose VM is gone or filed under another tenant.
    fn reconcile_tenants(&self) -> io::Result<()> {
        let mut expected: BTreeMap<(String, Uuid), String> = BTreeMap::new();
        for vm in self.virtual_machines.values() {
            if let Some(tenant) = &vm.tenant {
                expected.insert(
                    (tenant.clone(), vm.vm_uuid),
                    render_record(&tenant_view(vm))?,
                );
            }
        }
        let tenants = self.root.join(REPO_TENANTS_DIR);
        for folder in fs::read_dir(&tenants)? {
            let folder = folder?;
            let name = folder.file_name().to_str().map(str::to_string);
            let tenant = match name {
                Some(name) if is_valid_name(&name) && folder.file_type()?.is_dir() => name,
                Some(name) if is_temporary(&name) => {
                    fs::remove_file(folder.path())?;
                    continue;
                }
                _ => {
                    log::warn!(
                        "{}: not a tenant folder, left alone",
                        folder.path().display()
                    );
                    continue;
                }
            };
            for entry in fs::read_dir(folder.path())? {
                let Entry::Record(vm, path) = classify(&entry?)? else {
                    continue;
                };
                match expected.remove(&(tenant.clone(), vm)) {
                    Some(text) => {
                        if read_bounded(&path, REPO_MAX_RECORD)?.as_deref() != Ok(text.as_str()) {
                            log::info!("{}: tenant slice out of date, rewritten", path.display());
                            write_atomic(&path, text.as_bytes())?;
                        }
                    }
                    None => {
                        log::info!("{}: stale tenant slice removed", path.display());
                        remove_durably(&path)?;
                    }
                }
            }
        }
        for ((tenant, vm), text) in expected {
            log::info!("tenant slice {tenant}/{vm} missing, written");
            self.write_tenant_slice(&tenant, &vm, &text)?;
        }
        Ok(())
    }

    /// Record changes made together: see [`Batch`].
    pub fn batch(&mut self) -> Batch<'_> {
        Batch {
            repo: self,
            work: Work::default(),
            undo: Vec::new(),
        }
    }

    /// Writes `hardware/<host-uuid>` (nothing when the record is unchanged) and waits until it
    /// is durable.
    pub fn put_hardware(&mut self, record: HardwareRecord) -> io::Result<()> {
        let mut batch = self.batch();
        batch.put_hardware(record)?;
        batch.commit();
        self.settle()
    }

    /// Removes `hardware/<host-uuid>` and waits until that is durable; returns the record that
    /// was there.
    pub fn remove_hardware(&mut self, host: &Uuid) -> io::Result<Option<HardwareRecord>> {
        let mut batch = self.batch();
        let removed = batch.remove_hardware(host)?;
        batch.commit();
        self.settle().map(|()| removed)
    }

    /// Writes `virtual/<vm-uuid>` and, when the VM has a tenant, `tenants/<tenant>/<vm-uuid>`;
    /// removes the slice under the previous tenant when the tenant changed; waits until that is
    /// durable. Nothing is written when the record is unchanged. A crash part-way leaves files
    /// that the next [`Repository::open`] puts right.
    pub fn put_virtual(&mut self, record: impl Into<Arc<VirtualRecord>>) -> io::Result<()> {
        let mut batch = self.batch();
        batch.put_virtual(record)?;
        batch.commit();
        self.settle()
    }

    /// Removes `virtual/<vm-uuid>` and its tenant slice and waits until that is durable;
    /// returns the record that was there.
    pub fn remove_virtual(&mut self, vm: &Uuid) -> io::Result<Option<VirtualRecord>> {
        let mut batch = self.batch();
        let removed = batch.remove_virtual(vm)?;
        batch.commit();
        self.settle().map(|()| removed)
    }

    /// Appends `drafts` to the journal at time `now`, numbered after the last event appended,
    /// and returns them as events at once; the writer makes them durable (all lines of a flush
    /// in one write, then one fsync) after the records changed before them, and only then are
    /// they read ([`Repository::last_seq`], [`Repository::events_since`]). A draft that cannot
    /// be written (bad detail key, line too long) fails the whole batch before any number is
    /// used. The drafts are taken, not copied: a thousand of them are 0.2 MB.
    pub fn append(&mut self, now: u64, drafts: Vec<EventDraft>) -> io::Result<Vec<Event>> {
        let mut events = Vec::with_capacity(drafts.len());
        let mut starts = Vec::with_capacity(drafts.len());
        let mut text = String::new();
        let mut seq = self.appended_seq;
        for draft in drafts {
            seq = seq
                .checked_add(1)
                .ok_or_else(|| io::Error::other("journal sequence numbers exhausted"))?;
            let event = Event {
                seq,
                time: now,
                kind: draft.kind,
                subject: draft.subject,
                network: draft.network,
                details: draft.details,
            };
            let line = event
                .to_line()
                .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))?;
            starts.push((seq, self.appended_length + text.len() as u64));
            text.push_str(&line);
            events.push(event);
        }
        if events.is_empty() {
            return Ok(events);
        }
        self.appended_seq = seq;
        self.appended_length += text.len() as u64;
        for (seq, start) in starts {
            self.index.note(seq, start);
        }
        let mut work = Work::default();
        work.append(text, seq);
        self.writer.hand_over(work);
        Ok(events)
    }

    /// At most `limit` durable events with a sequence number above `seq`, oldest first, read
    /// from the journal from the index's nearest mark on.
    pub fn events_since(&self, seq: u64, limit: usize) -> io::Result<Vec<Event>> {
        let durable = self.durable;
        if seq >= durable.seq || limit == 0 {
            return Ok(Vec::new());
        }
        let Some(mut offset) = self.index.start(seq) else {
            return Ok(Vec::new());
        };
        let path = self.root.join(REPO_JOURNAL_FILE);
        let mut file = &self.journal_reader;
        file.seek(SeekFrom::Start(offset))?;
        let mut reader = BufReader::new(file.take(durable.journal_length.saturating_sub(offset)));
        let mut events = Vec::new();
        while let Some((bytes, whole)) = read_journal_line(&mut reader)? {
            let at = offset;
            offset += bytes.len() as u64 + 1;
            if !whole {
                break;
            }
            if let Some(event) = parse_journal_bytes(&bytes, format_args!("byte {at}"), &path)? {
                if event.seq > seq {
                    events.push(event);
                    if events.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok(events)
    }
}

/// A record as it was before a [`Batch`] changed it, to put back if the batch is dropped.
enum Undo {
    Hardware(Uuid, Option<HardwareRecord>),
    Virtual(Uuid, Option<Arc<VirtualRecord>>),
}

/// Record changes made together, durable together: the repository's maps show each change at
/// once, and [`Batch::commit`] hands the files to the writer, which makes them durable in
/// one flush (see `repo::writer`). Each record is old or new after a crash, never
/// torn. A record changed twice in one batch is written once, with its last content.
///
/// Dropped without [`Batch::commit`], the maps are put back as they were and nothing is
/// written.
pub struct Batch<'r> {
    repo: &'r mut Repository,
    work: Work,
    undo: Vec<Undo>,
}

impl Batch<'_> {
    /// Stages `hardware/<host-uuid>` (nothing when the record is unchanged).
    pub fn put_hardware(&mut self, record: HardwareRecord) -> io::Result<()> {
        if self.repo.hardware.get(&record.host_uuid) == Some(&record) {
            return Ok(());
        }
        let host = record.host_uuid;
        // Checked now, so that what the writer is handed renders.
        let file = RecordFile::Hardware(host);
        let change = Change::Hardware(record.clone());
        file.text(&change)?;
        self.work.stage(file, change);
        let old = self.repo.hardware.insert(host, record);
        self.undo.push(Undo::Hardware(host, old));
        Ok(())
    }

    /// Stages the removal of `hardware/<host-uuid>`; returns the record that was there.
    pub fn remove_hardware(&mut self, host: &Uuid) -> io::Result<Option<HardwareRecord>> {
        self.work.stage(RecordFile::Hardware(*host), Change::Remove);
        let old = self.repo.hardware.remove(host);
        self.undo.push(Undo::Hardware(*host, old.clone()));
        Ok(old)
    }

    /// Stages `virtual/<vm-uuid>` and, when the VM has a tenant, `tenants/<tenant>/<vm-uuid>`,
    /// and the removal of the slice under the previous tenant when the tenant changed (see
    /// [`Repository::put_virtual`]).
    pub fn put_virtual(&mut self, record: impl Into<Arc<VirtualRecord>>) -> io::Result<()> {
        let record = record.into();
        let previous = self
            .repo
            .virtual_machines
            .get(&record.vm_uuid)
            .map(Arc::as_ref);
        if previous == Some(&*record) {
            // Nothing to write; the copy given is kept, so that its giver shares it.
            self.repo.virtual_machines.insert(record.vm_uuid, record);
            return Ok(());
        }
        let vm = record.vm_uuid;
        // Checked now, so that what the writer is handed renders.
        let change = Change::Vm(record.clone());
        RecordFile::Virtual(vm).text(&change)?;
        let previous_tenant = previous.and_then(|vm| vm.tenant.clone());
        if let Some(tenant) = &record.tenant {
            let slice_changed = match previous {
                Some(previous) => {
                    previous_tenant.as_ref() != Some(tenant)
                        || tenant_view(previous) != tenant_view(&record)
                }
                None => true,
            };
            if slice_changed {
                self.work.stage(
                    RecordFile::Slice(tenant.as_str().into(), vm),
                    Change::Vm(record.clone()),
                );
            }
        }
        self.work.stage(RecordFile::Virtual(vm), change);
        if let Some(old) = previous_tenant.filter(|old| record.tenant.as_ref() != Some(old)) {
            self.work
                .stage(RecordFile::Slice(old.into_boxed_str(), vm), Change::Remove);
        }
        let old = self.repo.virtual_machines.insert(vm, record);
        self.undo.push(Undo::Virtual(vm, old));
        Ok(())
    }

    /// Stages the removal of `virtual/<vm-uuid>` and its tenant slice; returns the record
    /// that was there.
    pub fn remove_virtual(&mut self, vm: &Uuid) -> io::Result<Option<VirtualRecord>> {
        if let Some(tenant) = self
            .repo
            .virtual_machines
            .get(vm)
            .and_then(|r| r.tenant.clone())
        {
            self.work.stage(
                RecordFile::Slice(tenant.into_boxed_str(), *vm),
                Change::Remove,
            );
        }
        self.work.stage(RecordFile::Virtual(*vm), Change::Remove);
        let old = self.repo.virtual_machines.remove(vm);
        self.undo.push(Undo::Virtual(*vm, old.clone()));
        Ok(old.map(Arc::unwrap_or_clone))
    }

    /// Hands every staged change to the writer (see [`Batch`]); returns at once.
    pub fn commit(mut self) {
        self.undo.clear();
        self.repo.writer.hand_over(std::mem::take(&mut self.work));
    }
}

impl RecordFile {
    /// Where the file is in the repository at `root`.
    pub(super) fn path(&self, root: &Path) -> PathBuf {
        let (folder, name) = match self {
            RecordFile::Hardware(host) => (root.join(REPO_HARDWARE_DIR), file_name(host)),
            RecordFile::Virtual(vm) => (root.join(REPO_VIRTUAL_DIR), file_name(vm)),
            RecordFile::Slice(tenant, vm) => {
                (root.join(REPO_TENANTS_DIR).join(&**tenant), file_name(vm))
            }
        };
        folder.join(name)
    }

    /// The text `change` gives the file: the hardware record, the VM record, or the VM's
    /// tenant view for a slice; `None` for a removal.
    pub(super) fn text(&self, change: &Change) -> io::Result<Option<String>> {
        let fields = match (self, change) {
            (_, Change::Remove) => return Ok(None),
            (RecordFile::Hardware(_), Change::Hardware(record)) => record.to_record(),
            (RecordFile::Virtual(_), Change::Vm(record)) => record.to_record(),
            (RecordFile::Slice(..), Change::Vm(record)) => Ok(tenant_view(record)),
            _ => Err(format!("{self:?}: not a file of that record")),
        };
        fields
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidInput, reason))
            .and_then(|fields| render_record(&fields))
            .map(Some)
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        for undo in self.undo.drain(..).rev() {
            match undo {
                Undo::Hardware(host, Some(record)) => {
                    self.repo.hardware.insert(host, record);
                }
                Undo::Hardware(host, None) => {
                    self.repo.hardware.remove(&host);
                }
                Undo::Virtual(vm, Some(record)) => {
                    self.repo.virtual_machines.insert(vm, record);
                }
                Undo::Virtual(vm, None) => {
                    self.repo.virtual_machines.remove(&vm);
                }
            }
        }
    }
}

/// Flushes everything written to the filesystem holding `path` (`syncfs(2)`), so that many
/// files written at once are durable after one flush rather than one each.
pub(super) fn sync_filesystem(path: &Path) -> io::Result<()> {
    let folder = File::open(path)?;
    // SAFETY: syncfs(2) takes a descriptor `folder` owns for the whole call, and no memory.
    let result = unsafe { libc::syncfs(std::os::fd::AsRawFd::as_raw_fd(&folder)) };
    if result == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::consts::{REPO_FORMAT_LINE, REPO_MAX_NAME};
    use crate::model::Semantic;
    use crate::repo::journal::tests::HOSTILE;
    use crate::repo::journal::EventKind;
    use crate::repo::record::tests::{host, vm_uuid};
    use crate::repo::record::{ActionRecord, ServiceRecord, KEY_HYPERVISOR};
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    fn scratch(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("xenplug-repo-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        path
    }

    fn hardware(n: u128, name: &str) -> HardwareRecord {
        HardwareRecord {
            host_uuid: host(n),
            name: name.to_string(),
            addresses: vec!["10.0.0.5".into(), format!("{name}:1")],
            network: "mgmt".into(),
            boot_id: Some(7),
            facts: vec![
                ("cpus".into(), "16".into()),
                ("backend".into(), name.to_string()),
            ],
            first_seen: 1_700_000_000,
            last_seen: 1_700_000_600,
            state: "online".into(),
        }
    }

    fn machine(n: u128, name: &str, tenant: Option<&str>) -> VirtualRecord {
        VirtualRecord {
            vm_uuid: vm_uuid(n),
            name: name.to_string(),
            hypervisor: Some(host(1)),
            run_state: "running".into(),
            tenant: tenant.map(str::to_string),
            services: vec![
                ServiceRecord {
                    service_type: "urn:xenplug-org:service:Web:1".into(),
                    actions: vec![
                        ActionRecord {
                            name: "Restart".into(),
                            semantics: vec![Semantic::Destructive, Semantic::Confirm],
                            inputs: vec!["Delay".into()],
                            outputs: vec!["Done".into(), "Pid".into()],
                        },
                        ActionRecord {
                            name: name.to_string(),
                            semantics: vec![],
                            inputs: vec![],
                            outputs: vec![],
                        },
                    ],
                },
                ServiceRecord {
                    service_type: name.to_string(),
                    actions: vec![],
                },
            ],
            first_seen: 1,
            last_seen: 2,
        }
    }

    /// Every regular file under `folder`, recursively.
    fn files_under(folder: &Path) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for entry in fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                found.extend(files_under(&path));
            } else {
                found.push(path);
            }
        }
        found.sort();
        found
    }

    #[test]
    fn hostile_strings_round_trip_through_files() {
        let root = scratch("hostile");
        let long = "\n=\u{0}\u{e9}".repeat(5000);
        let mut strings: Vec<String> = HOSTILE.iter().map(|s| s.to_string()).collect();
        strings.push(long);
        {
            let mut repository = Repository::open(&root, 10).unwrap();
            for (n, name) in strings.iter().enumerate() {
                repository.put_hardware(hardware(n as u128, name)).unwrap();
                repository
                    .put_virtual(machine(n as u128, name, Some("acme")))
                    .unwrap();
            }
        }
        for path in files_under(&root) {
            let text = fs::read_to_string(&path).unwrap();
            if path.ends_with(REPO_JOURNAL_FILE) || path.ends_with(REPO_LOCK_FILE) {
                continue;
            }
            let mut lines = text.lines();
            assert_eq!(lines.next(), Some(REPO_FORMAT_LINE), "{}", path.display());
            for line in lines {
                let (key, value) = line.split_once('=').unwrap();
                assert!(is_record_key_for_test(key), "{line:?}");
                assert!(!value.chars().any(|c| c.is_control() || c.is_whitespace()));
            }
        }
        let repository = Repository::open(&root, 11).unwrap();
        for (n, name) in strings.iter().enumerate() {
            assert_eq!(
                repository.hardware()[&host(n as u128)],
                hardware(n as u128, name)
            );
            assert_eq!(
                repository.virtual_machine(&vm_uuid(n as u128)),
                Some(&machine(n as u128, name, Some("acme")))
            );
        }
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
    }

    fn is_record_key_for_test(key: &str) -> bool {
        crate::files::is_record_key(key)
    }

    #[test]
    fn a_batch_writes_many_records_at_once_and_the_last_change_wins() {
        let root = scratch("batch");
        let mut repo = Repository::open(&root, 10).unwrap();
        repo.put_virtual(machine(99, "gone", Some("acme"))).unwrap();
        let mut batch = repo.batch();
        batch.put_hardware(hardware(1, "dom0")).unwrap();
        for n in 0..40 {
            batch.put_virtual(machine(n, "vm", Some("acme"))).unwrap();
        }
        // Changed twice, then removed: written once, or not at all.
        batch
            .put_virtual(machine(7, "renamed", Some("beta")))
            .unwrap();
        batch.remove_virtual(&vm_uuid(8)).unwrap();
        batch.remove_virtual(&vm_uuid(99)).unwrap();
        batch.commit();
        assert_eq!(repo.virtual_machines().len(), 39);
        assert_eq!(repo.virtual_machines()[&vm_uuid(7)].name, "renamed");
        drop(repo);
        let files = files_under(&root);
        assert!(
            !files
                .iter()
                .any(|f| f.to_str().is_some_and(|f| f.contains(".tmp"))),
            "{files:?}"
        );
        let reopened = Repository::open(&root, 11).unwrap();
        assert_eq!(reopened.virtual_machines().len(), 39);
        assert_eq!(reopened.hardware().len(), 1);
        assert_eq!(
            reopened.virtual_machines()[&vm_uuid(7)].tenant.as_deref(),
            Some("beta")
        );
        assert!(!root
            .join("tenants/acme")
            .join(file_name(&vm_uuid(7)))
            .exists());
        assert!(root
            .join("tenants/beta")
            .join(file_name(&vm_uuid(7)))
            .exists());
        assert!(!root.join("virtual").join(file_name(&vm_uuid(8))).exists());
        assert!(!root
            .join("tenants/acme")
            .join(file_name(&vm_uuid(99)))
            .exists());
        drop(reopened);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn a_failed_write_is_tried_again_and_nothing_is_lost() {
        let root = scratch("retried");
        let mut repo = Repository::open(&root, 10).unwrap();
        // A file where the tenant's folder belongs: the slice cannot be written.
        let blocker = root.join(REPO_TENANTS_DIR).join("acme");
        fs::write(&blocker, "in the way").unwrap();
        let mut batch = repo.batch();
        batch.put_virtual(machine(1, "web", Some("acme"))).unwrap();
        batch.commit();
        repo.append(11, vec![EventDraft::new(EventKind::VmAdded, "web")])
            .unwrap();
        let error = repo.settle().unwrap_err();
        assert!(error.to_string().contains("not a folder"), "{error}");
        // The tracker's view holds the change; the journal shows nothing not durable.
        assert_eq!(repo.virtual_machines().len(), 1);
        assert_eq!(repo.last_seq(), 0);
        assert!(!root.join("virtual").join(file_name(&vm_uuid(1))).exists());
        // Later work waits behind the failed one, in order.
        repo.append(12, vec![EventDraft::new(EventKind::VmRemoved, "web")])
            .unwrap();
        fs::remove_file(&blocker).unwrap();
        // An attempt that began before the folder was freed may fail once more.
        let settled = (0..4).any(|_| repo.settle().is_ok());
        assert!(settled);
        assert_eq!(repo.last_seq(), 2);
        assert!(root.join("virtual").join(file_name(&vm_uuid(1))).exists());
        assert!(root
            .join("tenants/acme")
            .join(file_name(&vm_uuid(1)))
            .exists());
        let journal = fs::read_to_string(root.join(REPO_JOURNAL_FILE)).unwrap();
        let kinds: Vec<&str> = journal
            .lines()
            .skip(1)
            .map(|line| line.split(' ').nth(2).unwrap())
            .collect();
        assert_eq!(kinds, ["kind=vm-added", "kind=vm-removed"]);
        drop(repo);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_batch_dropped_uncommitted_leaves_nothing() {
        let root = scratch("batch-dropped");
        let mut repo = Repository::open(&root, 10).unwrap();
        repo.put_virtual(machine(1, "kept", None)).unwrap();
        {
            let mut batch = repo.batch();
            batch.put_virtual(machine(1, "changed", None)).unwrap();
            batch.put_virtual(machine(2, "new", None)).unwrap();
            batch.remove_virtual(&vm_uuid(1)).unwrap();
        }
        assert_eq!(repo.virtual_machines().len(), 1);
        assert_eq!(repo.virtual_machines()[&vm_uuid(1)].name, "kept");
        drop(repo);
        assert_eq!(files_under(&root.join("virtual")).len(), 1);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn tenant_change_moves_the_slice() {
        let root = scratch("tenant-move");
        let mut repository = Repository::open(&root, 1).unwrap();
        let slice = |tenant: &str| {
            root.join(REPO_TENANTS_DIR)
                .join(tenant)
                .join(file_name(&vm_uuid(1)))
        };
        repository
            .put_virtual(machine(1, "web", Some("acme")))
            .unwrap();
        assert!(slice("acme").exists());
        repository
            .put_virtual(machine(1, "web", Some("beta")))
            .unwrap();
        assert!(!slice("acme").exists());
        assert!(slice("beta").exists());
        repository.put_virtual(machine(1, "web", None)).unwrap();
        assert!(!slice("beta").exists());
        repository
            .put_virtual(machine(1, "web", Some("acme")))
            .unwrap();
        assert_eq!(
            repository
                .remove_virtual(&vm_uuid(1))
                .unwrap()
                .map(|vm| vm.name),
            Some("web".to_string())
        );
        assert!(!slice("acme").exists());
        assert!(!root
            .join(REPO_VIRTUAL_DIR)
            .join(file_name(&vm_uuid(1)))
            .exists());
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn tenant_view_holds_neither_placement_nor_other_tenants() {
        let root = scratch("tenant-view");
        let mut repository = Repository::open(&root, 1).unwrap();
        repository
            .put_virtual(machine(1, "acme-web", Some("acme")))
            .unwrap();
        repository
            .put_virtual(machine(2, "beta-db", Some("beta")))
            .unwrap();
        repository.put_virtual(machine(3, "unfiled", None)).unwrap();
        let view = tenant_view(&machine(1, "acme-web", Some("acme")));
        assert_eq!(view.get(KEY_HYPERVISOR), None);
        assert!(view.iter().all(|(key, _)| key != KEY_HYPERVISOR));
        let acme = files_under(&root.join(REPO_TENANTS_DIR).join("acme"));
        assert_eq!(
            acme,
            [root
                .join(REPO_TENANTS_DIR)
                .join("acme")
                .join(file_name(&vm_uuid(1)))]
        );
        let text = fs::read_to_string(&acme[0]).unwrap();
        assert!(text.contains("acme-web"));
        for secret in [
            file_name(&host(1)),
            KEY_HYPERVISOR.to_string(),
            "beta".to_string(),
            file_name(&vm_uuid(2)),
            "unfiled".to_string(),
        ] {
            assert!(!text.contains(&secret), "{secret} in {text}");
        }
        let all = files_under(&root.join(REPO_TENANTS_DIR));
        assert_eq!(all.len(), 2);
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn invalid_names_are_refused_and_nothing_escapes() {
        let root = scratch("names");
        let mut repository = Repository::open(&root, 1).unwrap();
        let long = "a".repeat(REPO_MAX_NAME + 1);
        for tenant in [
            "",
            "..",
            "../escape",
            "a/b",
            "a.b",
            "caf\u{e9}",
            long.as_str(),
        ] {
            let error = repository
                .put_virtual(machine(1, "web", Some(tenant)))
                .unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput, "{tenant:?}");
        }
        assert!(repository.virtual_machines().is_empty());
        assert!(files_under(&root.join(REPO_VIRTUAL_DIR)).is_empty());
        assert!(files_under(&root.join(REPO_TENANTS_DIR)).is_empty());
        assert!(!root.join("escape").exists());
        let mut bad_fact = hardware(1, "h");
        bad_fact.facts.push(("a.b".into(), "1".into()));
        assert!(repository.put_hardware(bad_fact).is_err());
        let mut twice = hardware(1, "h");
        twice.facts.push(("cpus".into(), "2".into()));
        assert!(repository.put_hardware(twice).is_err());
        let huge = "x".repeat(REPO_MAX_RECORD);
        assert!(repository.put_hardware(hardware(1, &huge)).is_err());
        assert!(repository.hardware().is_empty());
        let outside = scratch("names-outside");
        fs::create_dir_all(&outside).unwrap();
        std::os::unix::fs::symlink(&outside, root.join(REPO_TENANTS_DIR).join("linked")).unwrap();
        assert!(repository
            .put_virtual(machine(1, "web", Some("linked")))
            .is_err());
        assert!(files_under(&outside).is_empty());
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
        fs::remove_dir_all(&outside).unwrap();
    }

    #[test]
    fn open_moves_corrupt_records_aside_and_removes_temporaries() {
        let root = scratch("corrupt");
        drop(Repository::open(&root, 1).unwrap());
        let hardware_dir = root.join(REPO_HARDWARE_DIR);
        let garbage = hardware_dir.join(file_name(&host(1)));
        fs::write(&garbage, "# xenplug-repo 1\nhost_uuid=oops\n").unwrap();
        let wrong_name = hardware_dir.join(file_name(&host(2)));
        fs::write(
            &wrong_name,
            render_record(&hardware(3, "h").to_record().unwrap()).unwrap(),
        )
        .unwrap();
        let good = render_record(&hardware(4, "h").to_record().unwrap()).unwrap();
        fs::write(hardware_dir.join(file_name(&host(4))), &good).unwrap();
        fs::write(hardware_dir.join("notes.txt"), "left alone").unwrap();
        let temporary = hardware_dir.join(format!(".{}.tmp77", file_name(&host(5))));
        fs::write(&temporary, "half").unwrap();
        fs::create_dir_all(root.join(REPO_TENANTS_DIR).join("acme")).unwrap();
        let tenant_temporary = root.join(REPO_TENANTS_DIR).join("acme").join(".x.tmp9");
        fs::write(&tenant_temporary, "half").unwrap();
        let root_temporary = root.join(".events.log.tmp3");
        fs::write(&root_temporary, "half").unwrap();

        let repository = Repository::open(&root, 1234).unwrap();
        assert_eq!(repository.hardware().keys().collect::<Vec<_>>(), [&host(4)]);
        assert!(!garbage.exists());
        assert!(!wrong_name.exists());
        let aside = hardware_dir.join(format!("{}.corrupt-1234", file_name(&host(1))));
        assert_eq!(
            fs::read_to_string(&aside).unwrap(),
            "# xenplug-repo 1\nhost_uuid=oops\n"
        );
        assert!(hardware_dir
            .join(format!("{}.corrupt-1234", file_name(&host(2))))
            .exists());
        assert!(hardware_dir.join("notes.txt").exists());
        assert!(!temporary.exists());
        assert!(!tenant_temporary.exists());
        assert!(!root_temporary.exists());
        drop(repository);

        fs::write(&garbage, "still garbage").unwrap();
        let repository = Repository::open(&root, 1234).unwrap();
        assert!(hardware_dir
            .join(format!("{}.corrupt-1234.1", file_name(&host(1))))
            .exists());
        assert_eq!(repository.hardware().len(), 1);
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
    }

    /// A child forked while the repository is open shares its lock's file description until
    /// it execs or exits; the repository must still be free the moment it is dropped.
    #[test]
    fn a_forked_child_does_not_keep_the_lock_after_drop() {
        let root = scratch("forked");
        let repository = Repository::open(&root, 1).unwrap();
        let mut pipe = [0; 2];
        // SAFETY: pipe() writes two descriptors into the array it is given.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: the child only calls async-signal-safe functions (close, read, _exit): it
        // waits, holding every descriptor it inherited, until the parent closes the pipe.
        let child = unsafe { libc::fork() };
        assert!(child >= 0, "fork: {}", io::Error::last_os_error());
        if child == 0 {
            unsafe {
                libc::close(pipe[1]);
                let mut byte = 0u8;
                libc::read(pipe[0], (&mut byte as *mut u8).cast(), 1);
                libc::_exit(0);
            }
        }
        // SAFETY: closes the parent's copy of the read end, which it owns.
        unsafe { libc::close(pipe[0]) };
        drop(repository);
        let reopened = Repository::open(&root, 2);
        // SAFETY: closing the write end lets the child exit; waitpid reaps our own child.
        unsafe {
            libc::close(pipe[1]);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
        let reopened = reopened.expect("reopened while a forked child is alive");
        let second = Repository::open(&root, 3).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        drop(reopened);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn open_refuses_another_format_version_and_a_second_owner() {
        let root = scratch("version");
        let repository = Repository::open(&root, 1).unwrap();
        let second = Repository::open(&root, 1).unwrap_err();
        assert_eq!(second.kind(), io::ErrorKind::WouldBlock);
        drop(repository);
        let path = root.join(REPO_HARDWARE_DIR).join(file_name(&host(1)));
        let text = render_record(&hardware(1, "h").to_record().unwrap())
            .unwrap()
            .replace(REPO_FORMAT_LINE, "# xenplug-repo 2");
        fs::write(&path, &text).unwrap();
        let error = Repository::open(&root, 1).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        fs::remove_file(&path).unwrap();
        fs::write(root.join(REPO_JOURNAL_FILE), "# xenplug-journal 2\n").unwrap();
        assert_eq!(
            Repository::open(&root, 1).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn tenant_slices_are_rebuilt_on_open() {
        let root = scratch("reconcile");
        let mut repository = Repository::open(&root, 1).unwrap();
        repository
            .put_virtual(machine(1, "web", Some("acme")))
            .unwrap();
        drop(repository);
        let tenants = root.join(REPO_TENANTS_DIR);
        let slice = tenants.join("acme").join(file_name(&vm_uuid(1)));
        let expected = fs::read_to_string(&slice).unwrap();
        fs::write(&slice, "# xenplug-repo 1\nname=stale\n").unwrap();
        fs::create_dir_all(tenants.join("beta")).unwrap();
        let stray = tenants.join("beta").join(file_name(&vm_uuid(1)));
        fs::write(&stray, &expected).unwrap();
        let orphan = tenants.join("beta").join(file_name(&vm_uuid(9)));
        fs::write(&orphan, &expected).unwrap();
        drop(Repository::open(&root, 2).unwrap());
        assert_eq!(fs::read_to_string(&slice).unwrap(), expected);
        assert!(!stray.exists());
        assert!(!orphan.exists());
        fs::remove_file(&slice).unwrap();
        drop(Repository::open(&root, 3).unwrap());
        assert_eq!(fs::read_to_string(&slice).unwrap(), expected);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn reopen_continues_the_sequence_without_duplicates() {
        let root = scratch("sequence");
        let mut repository = Repository::open(&root, 1).unwrap();
        let drafts = [
            EventDraft::new(EventKind::HypervisorAdded, file_name(&host(1))).network("mgmt"),
            EventDraft::new(EventKind::VmAdded, file_name(&vm_uuid(1))).detail("name", "web\n"),
        ];
        let first = repository.append(100, drafts.to_vec()).unwrap();
        assert_eq!(first.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        // Read only once durable, and shown at a catch-up (here, the one `settle` makes).
        assert_eq!(repository.last_seq(), 0);
        assert!(repository.events_since(0, 100).unwrap().is_empty());
        repository.settle().unwrap();
        assert_eq!(repository.last_seq(), 2);
        // Kept in memory as lines, read back as the events appended (escapes included).
        assert_eq!(repository.events_since(0, 100).unwrap(), first);
        repository
            .append(101, vec![EventDraft::new(EventKind::VmStateChanged, "x")])
            .unwrap();
        assert!(repository.append(102, vec![]).unwrap().is_empty());
        drop(repository);

        let mut repository = Repository::open(&root, 2).unwrap();
        assert_eq!(repository.last_seq(), 3);
        let fourth = repository
            .append(103, vec![EventDraft::new(EventKind::VmRemoved, "x")])
            .unwrap();
        assert_eq!(fourth[0].seq, 4);
        repository.settle().unwrap();
        let all = repository.events_since(0, 100).unwrap();
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(all[..2], first[..]);
        assert_eq!(repository.events_since(2, 1).unwrap()[0].seq, 3);
        assert!(repository.events_since(4, 10).unwrap().is_empty());

        let bad = EventDraft::new(EventKind::VmAdded, "x").detail("seq", "9");
        let error = repository
            .append(104, vec![EventDraft::new(EventKind::VmAdded, "y"), bad])
            .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        let huge = EventDraft::new(EventKind::VmAdded, "y")
            .detail("a", "\n".repeat(REPO_MAX_JOURNAL_LINE));
        assert!(repository.append(104, vec![huge]).is_err());
        assert_eq!(repository.last_seq(), 4);
        assert_eq!(repository.events_since(0, 100).unwrap().len(), 4);
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn events_are_read_from_the_nearest_mark_of_the_index() {
        let root = scratch("index");
        let mut repository = Repository::open(&root, 1).unwrap();
        let total = REPO_INDEX_EVERY * 3 + 10;
        // Appended in pieces of different sizes, so that marks fall inside and at the start
        // of a piece.
        let mut n = 0;
        for size in [1, REPO_INDEX_EVERY - 1, 2, REPO_INDEX_EVERY * 2 + 8] {
            let drafts: Vec<EventDraft> = (n..n + size)
                .map(|n| EventDraft::new(EventKind::VmStateChanged, n.to_string()))
                .collect();
            repository.append(5, drafts).unwrap();
            n += size;
        }
        assert_eq!(n, total);
        repository.settle().unwrap();
        let check = |repository: &Repository| {
            assert_eq!(repository.index.marks.len(), 4);
            for since in [0, 1, 9, REPO_INDEX_EVERY - 1, REPO_INDEX_EVERY, total - 2] {
                for limit in [1, 3, 1000] {
                    let events = repository.events_since(since, limit).unwrap();
                    let expected: Vec<u64> = (since + 1..=total).take(limit).collect();
                    assert_eq!(
                        events.iter().map(|e| e.seq).collect::<Vec<_>>(),
                        expected,
                        "since {since} limit {limit}"
                    );
                    for event in events {
                        assert_eq!(event.subject, (event.seq - 1).to_string());
                    }
                }
            }
            assert!(repository.events_since(total, 10).unwrap().is_empty());
        };
        check(&repository);
        drop(repository);
        // A comment a person added is read through.
        let mut file = OpenOptions::new()
            .append(true)
            .open(root.join(REPO_JOURNAL_FILE))
            .unwrap();
        file.write_all(b"# checked by hand\n").unwrap();
        drop(file);
        let repository = Repository::open(&root, 2).unwrap();
        assert_eq!(repository.last_seq(), total);
        check(&repository);
        drop(repository);
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn torn_last_journal_line_is_cut_away() {
        let root = scratch("torn");
        let mut repository = Repository::open(&root, 1).unwrap();
        repository
            .append(
                1,
                vec![
                    EventDraft::new(EventKind::VmAdded, "a"),
                    EventDraft::new(EventKind::VmAdded, "b"),
                ],
            )
            .unwrap();
        drop(repository);
        let journal = root.join(REPO_JOURNAL_FILE);
        let whole = fs::read_to_string(&journal).unwrap();
        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(b"seq=3 time=1 kind=vm-ad").unwrap();
        drop(file);
        let mut repository = Repository::open(&root, 2).unwrap();
        assert_eq!(repository.last_seq(), 2);
        assert_eq!(fs::read_to_string(&journal).unwrap(), whole);
        assert_eq!(
            repository
                .append(3, vec![EventDraft::new(EventKind::VmRemoved, "a")])
                .unwrap()[0]
                .seq,
            3
        );
        drop(repository);
        let text = fs::read_to_string(&journal).unwrap();
        assert!(text.ends_with("kind=vm-removed subject=a\n"), "{text}");

        let mut file = OpenOptions::new().append(true).open(&journal).unwrap();
        file.write_all(b"seq=4 time=1 kind=vm-nonsense subject=a\n")
            .unwrap();
        drop(file);
        assert_eq!(
            Repository::open(&root, 3).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        fs::remove_dir_all(&root).unwrap();
    }

    /// Names the repository folder of a storm child: see [`storm_child`].
    const STORM_ENV: &str = "XENPLUG_TEST_REPO_STORM";

    /// Not a test by itself: with [`STORM_ENV`] set, it writes records and events into that
    /// folder as fast as it can, for at most 5 seconds, until the parent kills it.
    #[test]
    fn storm_child() {
        let Some(root) = std::env::var_os(STORM_ENV) else {
            return;
        };
        let mut repository = Repository::open(Path::new(&root), 1).unwrap();
        let started = Instant::now();
        let mut round: u64 = repository.last_seq();
        let tenants = [Some("acme"), Some("beta"), None];
        while started.elapsed() < Duration::from_secs(5) {
            round += 1;
            let n = u128::from(round % 7);
            let name = format!("{} #{round}", HOSTILE[round as usize % HOSTILE.len()]);
            let mut host_record = hardware(n % 3, &name);
            host_record.last_seen = round;
            repository.put_hardware(host_record).unwrap();
            let tenant = tenants[round as usize % tenants.len()];
            repository.put_virtual(machine(n, &name, tenant)).unwrap();
            if round % 5 == 0 {
                repository.remove_virtual(&vm_uuid(n)).unwrap();
            }
            let drafts = [
                EventDraft::new(EventKind::VmStateChanged, file_name(&vm_uuid(n)))
                    .detail("name", name.clone()),
                EventDraft::new(EventKind::SpoofRefused, name).network("acme"),
            ];
            repository.append(round, drafts.to_vec()).unwrap();
        }
    }

    /// Checks the files as a crash left them, before any repair: every record parses, every
    /// whole journal line parses with sequence numbers 1, 2, 3... and only the last line may
    /// be torn.
    fn check_as_left(root: &Path) -> u64 {
        for folder in [REPO_HARDWARE_DIR, REPO_VIRTUAL_DIR, REPO_TENANTS_DIR] {
            for path in files_under(&root.join(folder)) {
                let name = path.file_name().unwrap().to_str().unwrap();
                if is_temporary(name) {
                    continue;
                }
                assert!(!name.contains(REPO_CORRUPT_INFIX), "{}", path.display());
                let text = fs::read_to_string(&path).unwrap();
                let parsed = if folder == REPO_HARDWARE_DIR {
                    parse_hardware_text(&text).map(|_| ())
                } else {
                    parse_virtual_text(&text).map(|_| ())
                };
                assert_eq!(parsed, Ok(()), "{}", path.display());
            }
        }
        let journal = fs::read_to_string(root.join(REPO_JOURNAL_FILE)).unwrap_or_default();
        let whole = match journal.rfind('\n') {
            Some(end) => &journal[..end],
            None => "",
        };
        let mut expected = 1;
        for line in whole.lines().skip(1) {
            let event = Event::parse_line(line).unwrap();
            assert_eq!(event.seq, expected, "{line}");
            expected += 1;
        }
        expected - 1
    }

    #[test]
    fn sigkill_during_a_storm_leaves_everything_parseable() {
        let root = scratch("storm");
        let executable = std::env::current_exe().unwrap();
        let journal = root.join(REPO_JOURNAL_FILE);
        let mut last = 0;
        for _ in 0..5 {
            let mut child = Command::new(&executable)
                .args([
                    "--exact",
                    "repo::store::tests::storm_child",
                    "--test-threads=1",
                ])
                .env(STORM_ENV, &root)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let before = fs::metadata(&journal).map(|m| m.len()).unwrap_or(0);
            let waiting = Instant::now();
            while fs::metadata(&journal).map(|m| m.len()).unwrap_or(0) <= before
                && waiting.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(fastrand::u64(20..=100)));
            let _ = child.kill();
            child.wait().unwrap();

            let appended = check_as_left(&root);
            assert!(appended >= last);
            let repository = Repository::open(&root, 9).unwrap();
            assert_eq!(repository.last_seq(), appended);
            let seqs: Vec<u64> = repository
                .events_since(0, usize::MAX)
                .unwrap()
                .iter()
                .map(|event| event.seq)
                .collect();
            assert_eq!(seqs, (1..=appended).collect::<Vec<_>>());
            last = appended;
        }
        assert_eq!(check_as_left(&root), last);
        assert!(last > 0, "the storm wrote nothing");
        fs::remove_dir_all(&root).unwrap();
    }
}
