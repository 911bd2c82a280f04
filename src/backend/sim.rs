//! The `sim` backend: a simulated host whose domains are flat files.
//!
//! `DIR/<name>.domain` holds `key=value` lines (`uuid`, `name`, `state`, `memory_kib`,
//! `vcpus`); an optional `DIR/host` fixes the host's `uuid`, `name`, `cpus`, `memory_mib` and
//! `version`, and may slow every lifecycle operation down by `delay_ms` milliseconds (read
//! at each operation; for tests and the demo: a Suspend that takes as long as `xl save` of a
//! big guest). Anyone may add, edit or remove files; lifecycle operations rewrite a domain's
//! file atomically. A malformed file is reported once (per modification) and skipped.

use super::{Backend, BackendError, Domain, HostInfo, Operation, RunState};
use crate::consts::BACKEND_LONGEST_CALL;
use crate::consts::SIM_DELAY_KEY;
use crate::files::{write_atomic, Record};
use std::collections::HashSet;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};
use uuid::Uuid;

/// How often the sim backend looks at its directory.
const SIM_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// File name suffix of a sim domain.
const SIM_DOMAIN_SUFFIX: &str = ".domain";
/// Largest sim domain file read.
const SIM_MAX_FILE: u64 = 16 * 1024;
/// Longest delay [`SIM_DELAY_KEY`] may ask for; larger values are cut to it (a simulated
/// operation is never slower than the slowest real one).
const SIM_MAX_DELAY: Duration = BACKEND_LONGEST_CALL;

/// Name of the optional host file inside the sim directory.
pub const HOST_FILE: &str = "host";

/// A simulated host backed by a directory.
pub struct SimBackend {
    directory: PathBuf,
    /// Files already reported as malformed, with the modification time reported.
    reported: Mutex<HashSet<(PathBuf, Option<SystemTime>)>>,
    /// Serializes read-modify-write of domain files.
    writing: Mutex<()>,
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
        })
    }

    /// Logs a bad file once per modification.
    fn report(&self, path: &Path, reason: &str) {
        let modified = fs::metadata(path).and_then(|m| m.modified()).ok();
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        if reported.insert((path.to_path_buf(), modified)) {
            log::warn!("sim: skipping {}: {reason}", path.display());
        }
    }

    /// Every `.domain` file with its parsed record, skipping (and reporting) bad ones.
    fn domain_files(&self) -> Result<Vec<(PathBuf, Domain)>, BackendError> {
        let entries = fs::read_dir(&self.directory).map_err(|e| {
            BackendError::Failed(format!("reading {}: {e}", self.directory.display()))
        })?;
        let mut found: Vec<(PathBuf, Domain)> = Vec::new();
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.ends_with(SIM_DOMAIN_SUFFIX) && !name.starts_with('.'))
            })
            .collect();
        paths.sort();
        for path in paths {
            match read_record(&path).and_then(|record| parse_domain(&record)) {
                Ok(domain) => {
                    if let Some((first, _)) = found.iter().find(|(_, d)| d.uuid == domain.uuid) {
                        let reason =
                            format!("UUID {} already used by {}", domain.uuid, first.display());
                        self.report(&path, &reason);
                    } else {
                        found.push((path, domain));
                    }
                }
                Err(reason) => self.report(&path, &reason),
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
        if !path.exists() {
            return Duration::ZERO;
        }
        let millis = read_record(&path).and_then(|record| match record.get(SIM_DELAY_KEY) {
            None => Ok(0),
            Some(text) => text
                .parse::<u64>()
                .map_err(|_| format!("{SIM_DELAY_KEY} {text:?} is not a number")),
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

/// Reads a small `key=value` file.
fn read_record(path: &Path) -> Result<Record, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(SIM_MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    if text.len() as u64 > SIM_MAX_FILE {
        return Err(format!("larger than {SIM_MAX_FILE} bytes"));
    }
    Record::parse(&text)
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

impl Backend for SimBackend {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn host(&self) -> Result<HostInfo, BackendError> {
        let path = self.directory.join(HOST_FILE);
        let record = if path.exists() {
            read_record(&path)
                .map_err(|reason| BackendError::Failed(format!("{}: {reason}", path.display())))?
        } else {
            Record::default()
        };
        let uuid = match record.get("uuid") {
            Some(text) => Some(Uuid::parse_str(text).map_err(|_| {
                BackendError::Failed(format!("{}: uuid {text:?} is not a UUID", path.display()))
            })?),
            None => None,
        };
        let name = record
            .get("name")
            .map(str::to_string)
            .unwrap_or_else(crate::state::host_name);
        let cpus = match record.get("cpus") {
            Some(text) => text.parse().map_err(|_| {
                BackendError::Failed(format!("{}: cpus {text:?} is not a number", path.display()))
            })?,
            None => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        };
        let memory_mib = match record.get("memory_mib") {
            Some(text) => text.parse().map_err(|_| {
                BackendError::Failed(format!(
                    "{}: memory_mib {text:?} is not a number",
                    path.display()
                ))
            })?,
            None => memory_mib(),
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
        let (path, domain) = self
            .domain_files()?
            .into_iter()
            .find(|(_, domain)| domain.uuid == uuid)
            .ok_or(BackendError::NoSuchDomain(uuid))?;
        let next = transition(operation, domain.state)?;
        if next == domain.state && operation != Operation::Reboot {
            return Ok(());
        }
        let mut record = read_record(&path)
            .map_err(|reason| BackendError::Failed(format!("{}: {reason}", path.display())))?;
        record.set("state", next.as_str());
        write_atomic(&path, record.to_text().as_bytes())
            .map_err(|e| BackendError::Failed(format!("writing {}: {e}", path.display())))?;
        log::info!("sim: {} {} -> {}", domain.name, operation.name(), next);
        Ok(())
    }

    fn wait_for_change(&self, limit: Duration) {
        std::thread::sleep(SIM_POLL_INTERVAL.min(limit));
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
