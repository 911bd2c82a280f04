//! The `sim` backend: a simulated host whose domains are flat files.
//!
//! `DIR/<name>.domain` holds `key=value` lines (`uuid`, `name`, `state`, `memory_kib`,
//! `vcpus`); an optional `DIR/host` fixes the host's `uuid`, `name`, `cpus`, `memory_mib` and
//! `version`, and may slow every lifecycle operation down by `delay_ms` milliseconds (read
//! at each operation; for tests and the demo: a Suspend that takes as long as `xl save` of a
//! big guest). Anyone may add, edit or remove files; lifecycle operations rewrite a domain's
//! file atomically. A malformed file is reported once (per modification) and skipped.
//!
//! Changes are learned from the directory's watch ([`crate::watch`]: inotify, else a look every
//! 2 s): once a device waits for changes ([`Backend::wait_for_change`]), only the files the
//! watch names are read again, and the host's facts (the host file; the host name, CPUs and
//! memory of the machine) only when the host file changed, the machine's at most once a
//! minute. A backend nobody waits on reads the whole directory at each call.

use super::{Backend, BackendError, Domain, HostInfo, Operation, RunState};
use crate::consts::BACKEND_LONGEST_CALL;
use crate::consts::SIM_DELAY_KEY;
use crate::files::{write_atomic, Record};
use crate::watch::{Change, Layout, Watch};
use std::collections::{BTreeMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// File name suffix of a sim domain.
const SIM_DOMAIN_SUFFIX: &str = ".domain";
/// Largest sim domain file read.
const SIM_MAX_FILE: u64 = 16 * 1024;
/// Longest delay [`SIM_DELAY_KEY`] may ask for; larger values are cut to it (a simulated
/// operation is never slower than the slowest real one).
const SIM_MAX_DELAY: Duration = BACKEND_LONGEST_CALL;
/// How old the machine's facts (host name, CPUs, memory) may be when the host is read again:
/// nothing tells when they change, and they seldom do.
const SIM_MACHINE_FACTS_MAX_AGE: Duration = Duration::from_secs(60);

/// Name of the optional host file inside the sim directory.
pub const HOST_FILE: &str = "host";

/// Whether `name` is a domain file's: `<name>.domain`, not hidden (a temporary file of
/// [`write_atomic`] starts with a dot).
fn is_domain_file(name: &str) -> bool {
    name.ends_with(SIM_DOMAIN_SUFFIX) && !name.starts_with('.')
}

/// The sim directory as the watch sees it: one level, domain files and the host file.
const SIM_LAYOUT: Layout = Layout {
    descend: |_| false,
    relevant: |_, name| {
        name.to_str()
            .is_some_and(|name| is_domain_file(name) || name == HOST_FILE)
    },
};

/// The machine's own facts, used where the host file gives none.
#[derive(Debug, Clone)]
struct MachineFacts {
    name: String,
    cpus: u32,
    memory_mib: u64,
    read: Instant,
}

impl MachineFacts {
    fn read() -> MachineFacts {
        MachineFacts {
            name: crate::state::host_name(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            memory_mib: memory_mib(),
            read: Instant::now(),
        }
    }
}

/// What the backend keeps between reads.
#[derive(Debug, Default)]
struct Cache {
    /// What the watch reported since the last read of the domains (`None` before the first
    /// read: everything).
    pending: Option<Change>,
    /// Every domain file as last read, by file name: its domain or why it was skipped.
    files: BTreeMap<OsString, Result<Domain, String>>,
    /// The host as last read; `None` when the host file changed since.
    host: Option<HostInfo>,
    machine: Option<MachineFacts>,
}

/// A simulated host backed by a directory.
pub struct SimBackend {
    directory: PathBuf,
    /// Files already reported as malformed, with the modification time reported.
    reported: Mutex<HashSet<(PathBuf, Option<SystemTime>)>>,
    /// Serializes read-modify-write of domain files.
    writing: Mutex<()>,
    watch: Watch,
    /// Whether a device waits for changes: only then are the watch's reports complete.
    watched: AtomicBool,
    cache: Mutex<Cache>,
}

impl SimBackend {
    /// A backend over `directory`, which must exist.
    pub fn open(directory: &Path) -> Result<SimBackend, BackendError> {
        if !directory.is_dir() {
            return Err(BackendError::Failed(format!(
                "sim directory {} does not exist",
                directory.display()
            )));
        }
        Ok(SimBackend {
            directory: directory.to_path_buf(),
            reported: Mutex::new(HashSet::new()),
            writing: Mutex::new(()),
            watch: Watch::new("sim", directory, SIM_LAYOUT, 1),
            watched: AtomicBool::new(false),
            cache: Mutex::new(Cache::default()),
        })
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Logs a bad file once per modification.
    fn report(&self, path: &Path, reason: &str) {
        let modified = fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.insert((path.to_path_buf(), modified)) {
            log::warn!("sim: skipping {}: {reason}", path.display());
        }
    }

    /// Reads the domain file `name` into the cache (or drops it when it is gone).
    fn read_file(&self, files: &mut BTreeMap<OsString, Result<Domain, String>>, name: &OsStr) {
        let path = self.directory.join(name);
        match read_record(&path) {
            Ok(None) => {
                files.remove(name);
            }
            Ok(Some(record)) => {
                let parsed = parse_domain(&record);
                if let Err(reason) = &parsed {
                    self.report(&path, reason);
                }
                files.insert(name.to_os_string(), parsed);
            }
            Err(reason) => {
                self.report(&path, &reason);
                files.insert(name.to_os_string(), Err(reason));
            }
        }
    }

    /// Brings the cached domain files up to date: all of them when nobody waits for changes,
    /// before the first read and when the watch says anything may have changed, else the files
    /// it named.
    fn refresh(&self, cache: &mut Cache) -> Result<(), BackendError> {
        let change = if self.watched.load(Ordering::Acquire) {
            cache
                .pending
                .replace(Change::Nothing)
                .unwrap_or(Change::Anything)
        } else {
            Change::Anything
        };
        match change {
            Change::Nothing => {}
            Change::Entries(names) => {
                for name in names {
                    if name.to_str().is_some_and(is_domain_file) {
                        self.read_file(&mut cache.files, &name);
                    }
                }
            }
            Change::Anything => {
                let entries = match fs::read_dir(&self.directory) {
                    Ok(entries) => entries,
                    Err(error) => {
                        // Read everything again next time.
                        cache.pending = None;
                        return Err(BackendError::Failed(format!(
                            "reading {}: {error}",
                            self.directory.display()
                        )));
                    }
                };
                let mut files = BTreeMap::new();
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    if name.to_str().is_some_and(is_domain_file) {
                        self.read_file(&mut files, &name);
                    }
                }
                cache.files = files;
            }
        }
        Ok(())
    }

    /// Every readable domain file with its domain, sorted by file name; a domain whose UUID an
    /// earlier file already uses is skipped (and reported).
    fn domain_files(&self) -> Result<Vec<(PathBuf, Domain)>, BackendError> {
        let mut cache = self.lock_cache();
        self.refresh(&mut cache)?;
        let mut found: Vec<(PathBuf, Domain)> = Vec::new();
        for (name, parsed) in &cache.files {
            let Ok(domain) = parsed else {
                continue;
            };
            let path = self.directory.join(name);
            if let Some((first, _)) = found.iter().find(|(_, d)| d.uuid == domain.uuid) {
                let reason = format!("UUID {} already used by {}", domain.uuid, first.display());
                self.report(&path, &reason);
            } else {
                found.push((path, domain.clone()));
            }
        }
        Ok(found)
    }
}

impl SimBackend {
    /// The delay of lifecycle operations: `delay_ms` of the host file, at most
    /// [`SIM_MAX_DELAY`]; zero when absent, and when unreadable (reported).
    fn delay(&self) -> Duration {
        let path = self.directory.join(HOST_FILE);
        let millis = read_record(&path).and_then(|record| {
            match record.as_ref().and_then(|record| record.get(SIM_DELAY_KEY)) {
                None => Ok(0),
                Some(text) => text
                    .parse::<u64>()
                    .map_err(|_| format!("{SIM_DELAY_KEY} {text:?} is not a number")),
            }
        });
        match millis {
            Ok(millis) => Duration::from_millis(millis).min(SIM_MAX_DELAY),
            Err(reason) => {
                self.report(&path, &reason);
                Duration::ZERO
            }
        }
    }
}

/// Reads a small `key=value` file: `None` when there is none. One `read` brings a whole
/// small file, a second one its end.
fn read_record(path: &Path) -> Result<Option<Record>, String> {
    let file = match fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    let mut bytes = Vec::with_capacity(4096);
    file.take(SIM_MAX_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > SIM_MAX_FILE {
        return Err(format!("larger than {SIM_MAX_FILE} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    Record::parse(&text).map(Some)
}

/// A domain from its record.
fn parse_domain(record: &Record) -> Result<Domain, String> {
    let uuid_text = record.require("uuid")?;
    let uuid =
        Uuid::parse_str(uuid_text).map_err(|_| format!("uuid {uuid_text:?} is not a UUID"))?;
    if uuid.is_nil() {
        return Err("uuid is the nil UUID".into());
    }
    let name = record.require("name")?;
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err("name is empty or has control characters".into());
    }
    let state_text = record.require("state")?;
    let state = RunState::from_name(state_text)
        .filter(|state| SIM_STATES.contains(state))
        .ok_or_else(|| {
            format!("state {state_text:?} is not one of running, paused, suspended, shutoff")
        })?;
    let number = |key: &str| -> Result<u64, String> {
        let text = record.require(key)?;
        text.parse::<u64>()
            .map_err(|_| format!("{key} {text:?} is not a number"))
    };
    let vcpus = u32::try_from(number("vcpus")?).map_err(|_| "vcpus is too large".to_string())?;
    Ok(Domain {
        uuid,
        name: name.to_string(),
        state,
        memory_kib: number("memory_kib")?,
        vcpus,
    })
}

/// States a sim file may hold.
const SIM_STATES: [RunState; 4] = [
    RunState::Running,
    RunState::Paused,
    RunState::Suspended,
    RunState::Shutoff,
];

/// The state `operation` leads to from `state` on a simulated host. Pause and Resume are
/// idempotent (already paused or running is success); the others need a state they apply to.
pub fn transition(operation: Operation, state: RunState) -> Result<RunState, BackendError> {
    use RunState::*;
    let next = match (operation, state) {
        (Operation::Start, Shutoff) => Running,
        (Operation::Shutdown | Operation::Destroy, Running | Paused) => Shutoff,
        (Operation::Destroy, Suspended) => Shutoff,
        (Operation::Reboot, Running) => Running,
        (Operation::Pause, Running | Paused) => Paused,
        (Operation::Resume, Running | Paused | Suspended) => Running,
        (Operation::Suspend, Running | Paused) => Suspended,
        _ => return Err(BackendError::InvalidState { operation, state }),
    };
    Ok(next)
}

/// Total memory from /proc/meminfo, in MiB (0 when unreadable).
fn memory_mib() -> u64 {
    let text = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}

impl SimBackend {
    /// The host file's record (empty when there is none).
    fn host_record(&self) -> Result<Record, BackendError> {
        let path = self.directory.join(HOST_FILE);
        read_record(&path)
            .map(Option::unwrap_or_default)
            .map_err(|reason| BackendError::Failed(format!("{}: {reason}", path.display())))
    }

    /// The host from the host file, the machine's facts where it gives none.
    fn read_host(&self, machine: &MachineFacts) -> Result<HostInfo, BackendError> {
        let path = self.directory.join(HOST_FILE);
        let record = self.host_record()?;
        let invalid = |key: &str, text: &str, what: &str| {
            BackendError::Failed(format!("{}: {key} {text:?} is not {what}", path.display()))
        };
        let uuid = match record.get("uuid") {
            Some(text) => Some(Uuid::parse_str(text).map_err(|_| invalid("uuid", text, "a UUID"))?),
            None => None,
        };
        let name = record
            .get("name")
            .map_or_else(|| machine.name.clone(), str::to_string);
        let cpus = match record.get("cpus") {
            Some(text) => text
                .parse()
                .map_err(|_| invalid("cpus", text, "a number"))?,
            None => machine.cpus,
        };
        let memory_mib = match record.get("memory_mib") {
            Some(text) => text
                .parse()
                .map_err(|_| invalid("memory_mib", text, "a number"))?,
            None => machine.memory_mib,
        };
        let hypervisor_version = record.get("version").unwrap_or("sim").to_string();
        Ok(HostInfo {
            uuid,
            name,
            hypervisor_version,
            cpus,
            memory_mib,
        })
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn host(&self) -> Result<HostInfo, BackendError> {
        let mut cache = self.lock_cache();
        let watched = self.watched.load(Ordering::Acquire);
        if let (true, Some(host)) = (watched, &cache.host) {
            return Ok(host.clone());
        }
        let machine = match cache.machine.take() {
            Some(machine) if machine.read.elapsed() < SIM_MACHINE_FACTS_MAX_AGE => machine,
            _ => MachineFacts::read(),
        };
        let host = self.read_host(&machine);
        cache.machine = Some(machine);
        cache.host = host.as_ref().ok().cloned();
        host
    }

    fn domains(&self) -> Result<Vec<Domain>, BackendError> {
        Ok(self
            .domain_files()?
            .into_iter()
            .map(|(_, domain)| domain)
            .collect())
    }

    fn apply(&self, uuid: Uuid, operation: Operation) -> Result<(), BackendError> {
        let delay = self.delay();
        if !delay.is_zero() {
            log::info!("sim: {} of {uuid} takes {delay:?}", operation.name());
            std::thread::sleep(delay);
        }
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (path, _) = self
            .domain_files()?
            .into_iter()
            .find(|(_, domain)| domain.uuid == uuid)
            .ok_or(BackendError::NoSuchDomain(uuid))?;
        // The file as it is now, whatever the watch has not told yet.
        let failed = |reason: String| BackendError::Failed(format!("{}: {reason}", path.display()));
        let mut record = read_record(&path)
            .map_err(failed)?
            .ok_or(BackendError::NoSuchDomain(uuid))?;
        let domain = parse_domain(&record).map_err(failed)?;
        if domain.uuid != uuid {
            return Err(BackendError::NoSuchDomain(uuid));
        }
        let next = transition(operation, domain.state)?;
        if next == domain.state && operation != Operation::Reboot {
            return Ok(());
        }
        record.set("state", next.as_str());
        write_atomic(&path, record.to_text().as_bytes())
            .map_err(|e| BackendError::Failed(format!("writing {}: {e}", path.display())))?;
        // Seen at once by the snapshot that follows an action, before the watch tells.
        if let Some(name) = path.file_name() {
            let changed = Domain {
                state: next,
                ..domain.clone()
            };
            self.lock_cache()
                .files
                .insert(name.to_os_string(), Ok(changed));
        }
        log::info!("sim: {} {} -> {}", domain.name, operation.name(), next);
        Ok(())
    }

    fn wait_for_change(&self, limit: Duration) {
        self.watched.store(true, Ordering::Release);
        let change = self.watch.wait(limit);
        let mut cache = self.lock_cache();
        let host_changed = match &change {
            Change::Nothing => false,
            Change::Entries(names) => names.contains(OsStr::new(HOST_FILE)),
            Change::Anything => true,
        };
        if host_changed {
            cache.host = None;
        }
        if let Some(pending) = cache.pending.take() {
            cache.pending = Some(pending.merge(change));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenplug-sim-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    const WEB: &str = "uuid=6f1c1f3e-8a53-4a8e-9a7d-1d2f3c4b5a60\nname=web\nstate=running\nmemory_kib=524288\nvcpus=2\n";

    #[test]
    fn reads_domains_and_skips_bad_files() {
        let dir = temp_dir("read");
        fs::write(dir.join("web.domain"), WEB).unwrap();
        fs::write(dir.join("bad.domain"), "uuid=nope\n").unwrap();
        fs::write(
            dir.join("zz-twin.domain"),
            WEB.replace("name=web", "name=twin"),
        )
        .unwrap();
        fs::write(dir.join("notes.txt"), "ignored").unwrap();
        let sim = SimBackend::open(&dir).unwrap();
        let domains = sim.domains().unwrap();
        assert_eq!(domains.len(), 1, "{domains:?}");
        assert_eq!(domains[0].name, "web");
        assert_eq!(domains[0].state, RunState::Running);
        assert_eq!(domains[0].memory_kib, 524288);
        assert_eq!(
            sim.reported.lock().unwrap().len(),
            2,
            "bad.domain and the duplicate UUID in zz-twin.domain are reported"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn apply_rewrites_the_state_and_keeps_the_rest() {
        let dir = temp_dir("apply");
        fs::write(dir.join("web.domain"), format!("# kept\n{WEB}extra=1\n")).unwrap();
        let sim = SimBackend::open(&dir).unwrap();
        let uuid = sim.domains().unwrap()[0].uuid;
        sim.apply(uuid, Operation::Pause).unwrap();
        let text = fs::read_to_string(dir.join("web.domain")).unwrap();
        assert!(
            text.contains("state=paused\n") && text.contains("extra=1\n"),
            "{text}"
        );
        assert_eq!(sim.domains().unwrap()[0].state, RunState::Paused);
        let err = sim.apply(uuid, Operation::Reboot).unwrap_err();
        assert_eq!(
            err,
            BackendError::InvalidState {
                operation: Operation::Reboot,
                state: RunState::Paused
            }
        );
        let missing = Uuid::from_u128(7);
        assert_eq!(
            sim.apply(missing, Operation::Pause),
            Err(BackendError::NoSuchDomain(missing))
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    /// Once a device waits for changes, what the watch names is read again, the rest kept;
    /// the host file too.
    #[test]
    fn a_watched_backend_reads_what_changed() {
        let dir = temp_dir("watched");
        fs::write(dir.join("web.domain"), WEB).unwrap();
        fs::write(dir.join(HOST_FILE), "name=alpha\n").unwrap();
        let sim = SimBackend::open(&dir).unwrap();
        let wait = Duration::from_secs(20);
        sim.wait_for_change(wait);
        assert_eq!(sim.domains().unwrap()[0].state, RunState::Running);
        assert_eq!(sim.host().unwrap().name, "alpha");
        write_atomic(
            &dir.join("web.domain"),
            WEB.replace("running", "paused").as_bytes(),
        )
        .unwrap();
        sim.wait_for_change(wait);
        assert_eq!(sim.domains().unwrap()[0].state, RunState::Paused);
        assert_eq!(sim.host().unwrap().name, "alpha", "kept");
        fs::write(dir.join(HOST_FILE), "name=beta\n").unwrap();
        sim.wait_for_change(wait);
        assert_eq!(sim.host().unwrap().name, "beta");
        fs::write(
            dir.join("db.domain"),
            WEB.replace("name=web", "name=db")
                .replace("6f1c1f3e", "7f1c1f3e"),
        )
        .unwrap();
        fs::remove_file(dir.join("web.domain")).unwrap();
        sim.wait_for_change(wait);
        let names: Vec<String> = sim.domains().unwrap().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["db"]);
        // An action is seen at once, before the watch tells.
        let uuid = sim.domains().unwrap()[0].uuid;
        sim.apply(uuid, Operation::Pause).unwrap();
        assert_eq!(sim.domains().unwrap()[0].state, RunState::Paused);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn transitions() {
        use Operation::*;
        use RunState::*;
        assert_eq!(transition(Start, Shutoff), Ok(Running));
        assert!(transition(Start, Running).is_err());
        assert_eq!(transition(Pause, Paused), Ok(Paused));
        assert_eq!(transition(Resume, Suspended), Ok(Running));
        assert_eq!(transition(Destroy, Suspended), Ok(Shutoff));
        assert!(transition(Shutdown, Shutoff).is_err());
    }

    #[test]
    fn host_file_sets_identity() {
        let dir = temp_dir("host");
        fs::write(
            dir.join(HOST_FILE),
            "uuid=0b7e2f4a-1111-4222-8333-944455556666\nname=alpha\ncpus=8\nmemory_mib=4096\n",
        )
        .unwrap();
        let host = SimBackend::open(&dir).unwrap().host().unwrap();
        assert_eq!(host.name, "alpha");
        assert_eq!(host.cpus, 8);
        assert_eq!(host.memory_mib, 4096);
        assert_eq!(
            host.uuid.unwrap().to_string(),
            "0b7e2f4a-1111-4222-8333-944455556666"
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn host_file_may_slow_operations_down() {
        let dir = temp_dir("delay");
        let sim = SimBackend::open(&dir).unwrap();
        assert_eq!(sim.delay(), Duration::ZERO, "no host file");
        for (text, expected) in [
            ("name=alpha\n", Duration::ZERO),
            ("delay_ms=0\n", Duration::ZERO),
            ("delay_ms=1500\n", Duration::from_millis(1500)),
            ("delay_ms=99999999999\n", SIM_MAX_DELAY),
            ("delay_ms=soon\n", Duration::ZERO),
        ] {
            fs::write(dir.join(HOST_FILE), text).unwrap();
            assert_eq!(sim.delay(), expected, "{text}");
        }
        assert_eq!(sim.reported.lock().unwrap().len(), 1, "the bad value said");
        // The knob does not disturb the host's identity.
        fs::write(dir.join(HOST_FILE), "name=alpha\ndelay_ms=10\n").unwrap();
        assert_eq!(sim.host().unwrap().name, "alpha");
        fs::write(dir.join("web.domain"), WEB).unwrap();
        let uuid = sim.domains().unwrap()[0].uuid;
        sim.apply(uuid, Operation::Pause).unwrap();
        assert_eq!(sim.domains().unwrap()[0].state, RunState::Paused);
        fs::remove_dir_all(&dir).unwrap();
    }
}
