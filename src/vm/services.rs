//! VM advertiser: reads the owner's services directory into a [`Catalog`]. Blocking file I/O,
//! run off the event loop; no sockets; the wall clock only to tell whether a file's time is
//! too recent to trust; never panics.
//!
//! Layout (the root is `--services`, [`crate::consts::VM_DEFAULT_SERVICES_DIR`] by default):
//!
//! ```text
//! <root>/<Service>/scpd.xml        the SCPD (UDA 1.1 section 2.5), see wire::scpd
//! <root>/<Service>/handler         executable run for each action
//! <root>/<Service>/state/<Var>     current value of each evented state variable
//! <root>/<Service>/service.conf    optional: type=<serviceType URN>, id=<serviceId URN>
//! <root>/devices/<Device>/...      an embedded device: service folders as above, and an
//!                                  optional device.conf: type=<deviceType URN>, name=<friendlyName>
//! ```
//!
//! A service or device that cannot be served is left out and logged once (at warn) with its
//! path and why; the others keep working.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::time::SystemTime;

use crate::consts::{
    SCPD_MAX_BYTES, SERVICE_ID_XENPLUG_PREFIX, URN_DEVICE_XENPLUG_PREFIX, URN_PREFIX,
    URN_SERVICE_XENPLUG_PREFIX, VM_HANDLER_FILE, VM_SCPD_FILE, VM_STATE_FOLDER,
};
use crate::files::Record;
use crate::model::ServiceSpec;
use crate::watch::{Layout, Watch};
use crate::wire::scpd::parse_scpd;
use std::ffi::OsStr;

/// Folder of the services directory holding embedded devices (so not a service name).
const VM_DEVICES_FOLDER: &str = "devices";
/// A service folder's optional `key=value` file (`type=`, `id=`).
const VM_SERVICE_CONF: &str = "service.conf";
/// A device folder's optional `key=value` file (`type=`, `name=`).
const VM_DEVICE_CONF: &str = "device.conf";
/// Prefix of the key of a top-level owner service: `svc/<Name>`.
const VM_SERVICE_KEY_PREFIX: &str = "svc/";
/// Prefix of the key of an embedded device's owner service: `dev/<Device>/<Name>`.
const VM_DEVICE_KEY_PREFIX: &str = "dev/";
/// Version of default service and device types.
const VM_DEFAULT_TYPE_VERSION: u32 = 1;
/// Length of a service or device folder name, at most.
const VM_MAX_FOLDER_NAME: usize = 64;
/// Size of a service.conf or device.conf, at most.
const VM_MAX_CONF_FILE: u64 = 4 * 1024;
/// Length in bytes of a friendlyName from device.conf, at most (UDA 1.1 section 2.3: "SHOULD
/// be < 64 characters").
const VM_MAX_FRIENDLY_NAME: usize = 64;
/// Length in bytes of one evented value read from a state file, at most; longer is cut.
const VM_MAX_STATE_VALUE: usize = 4 * 1024;
/// Services of one device (the VM itself or one embedded device), at most.
const VM_MAX_SERVICES: usize = 32;
/// Embedded devices of a VM, at most.
const VM_MAX_DEVICES: usize = 16;
/// A file modified less than this long ago is parsed again at the next scan even if its size,
/// time and inode look the same: file times are only as fine as the kernel's clock tick, so a
/// rewrite of the same size within one tick would otherwise go unseen (git's "racy" files).
const VM_FILE_TIME_TRUST: Duration = Duration::from_secs(2);

/// One service the VM's owner added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerService {
    /// Its SCPD; the same `Arc` from scan to scan while the files do not change.
    pub spec: Arc<ServiceSpec>,
    /// `svc/<Name>` or `dev/<Device>/<Name>`: the path segment of its control and event URLs.
    pub key: String,
    /// Its folder.
    pub directory: PathBuf,
    /// Its handler executable.
    pub handler: PathBuf,
}

/// One embedded device of the VM (`devices/<Name>/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerDevice {
    /// Its folder name.
    pub name: String,
    /// deviceType URN.
    pub device_type: String,
    /// friendlyName.
    pub friendly_name: String,
    /// Its services, sorted by folder name.
    pub services: Vec<OwnerService>,
}

/// Everything the owner's directory holds that can be served.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalog {
    /// The VM's own services, sorted by folder name.
    pub services: Vec<OwnerService>,
    /// Embedded devices, sorted by folder name.
    pub devices: Vec<OwnerDevice>,
}

/// What identifies one version of a file: a rewrite (even an atomic rename) changes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: i64,
    modified_nanos: i64,
}

impl Stamp {
    fn of(metadata: &Metadata) -> Stamp {
        Stamp {
            device: metadata.dev(),
            inode: metadata.ino(),
            size: metadata.size(),
            modified: metadata.mtime(),
            modified_nanos: metadata.mtime_nsec(),
        }
    }
}

/// Whether what was read from a file with `metadata` may be reused while its [`Stamp`] stays
/// the same: not when it was modified within [`VM_FILE_TIME_TRUST`], because another write in
/// the same clock tick would leave the same time.
fn trusted(metadata: &Metadata) -> bool {
    match metadata.modified() {
        Ok(modified) => match SystemTime::now().duration_since(modified) {
            Ok(age) => age >= VM_FILE_TIME_TRUST,
            // In the future: any later write sets the present time, which differs.
            Err(_) => true,
        },
        Err(_) => false,
    }
}

/// Why something was left out: the file at fault, its version, and a sentence.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Problem {
    path: PathBuf,
    stamp: Option<Stamp>,
    reason: String,
}

impl Problem {
    fn new(path: &Path, stamp: Option<Stamp>, reason: impl Into<String>) -> Problem {
        Problem {
            path: path.to_path_buf(),
            stamp,
            reason: reason.into(),
        }
    }
}

/// Problems by path, as last reported.
type Problems = BTreeMap<PathBuf, (Option<Stamp>, String)>;

/// A parsed SCPD and what it was parsed from.
struct CachedSpec {
    scpd: Stamp,
    trusted: bool,
    service_type: String,
    service_id: String,
    result: Result<Arc<ServiceSpec>, String>,
}

/// A parsed service.conf or device.conf.
struct CachedRecord {
    stamp: Stamp,
    trusted: bool,
    result: Result<Record, String>,
}

/// Reads the services directory again and again, cheaply: SCPDs and `.conf` files are parsed
/// again only when their size, time or inode changed, and each problem is logged once per
/// version of the file at fault.
pub struct Scanner {
    root: PathBuf,
    /// By service folder.
    specs: HashMap<PathBuf, CachedSpec>,
    /// By file path.
    records: HashMap<PathBuf, CachedRecord>,
    /// The problems of the last scan, each logged once.
    reported: Problems,
    /// Warnings logged so far.
    warnings: u64,
}

impl Scanner {
    /// A scanner of the services directory `root`; nothing is read before [`Scanner::scan`].
    pub fn new(root: PathBuf) -> Scanner {
        Scanner {
            root,
            specs: HashMap::new(),
            records: HashMap::new(),
            reported: Problems::new(),
            warnings: 0,
        }
    }

    /// Reads the directory; a missing root directory is an empty catalog (logged once).
    ///
    /// Meant to run every few hundred milliseconds: when nothing changed it costs a directory
    /// listing and a few `stat`s per service, and returns the same `Arc`s.
    pub fn scan(&mut self) -> Catalog {
        let mut pass = Pass {
            old_specs: std::mem::take(&mut self.specs),
            specs: HashMap::new(),
            old_records: std::mem::take(&mut self.records),
            records: HashMap::new(),
            problems: Problems::new(),
        };
        let catalog = pass.catalog(&self.root);
        self.specs = pass.specs;
        self.records = pass.records;
        for (path, seen) in &pass.problems {
            if self.reported.get(path) != Some(seen) {
                log::warn!("vm services: left out {}: {}", path.display(), seen.1);
                self.warnings += 1;
            }
        }
        // Only current problems are kept, so one that was fixed and comes back is logged again.
        self.reported = pass.problems;
        catalog
    }

    /// What the last scan left out: each path at fault and why, sorted by path.
    pub fn problems(&self) -> impl Iterator<Item = (&Path, &str)> {
        self.reported
            .iter()
            .map(|(path, (_, reason))| (path.as_path(), reason.as_str()))
    }
}

/// The state of one scan: caches of the previous scan are moved to the new ones as they are
/// used, so entries of services that went away are dropped.
struct Pass {
    old_specs: HashMap<PathBuf, CachedSpec>,
    specs: HashMap<PathBuf, CachedSpec>,
    old_records: HashMap<PathBuf, CachedRecord>,
    records: HashMap<PathBuf, CachedRecord>,
    problems: Problems,
}

impl Pass {
    fn report(&mut self, problem: Problem) {
        self.problems
            .insert(problem.path, (problem.stamp, problem.reason));
    }

    fn catalog(&mut self, root: &Path) -> Catalog {
        let mut catalog = Catalog::default();
        match fs::metadata(root) {
            Ok(metadata) if metadata.is_dir() => {}
            Ok(_) => {
                self.report(Problem::new(root, None, "not a directory: no services"));
                return catalog;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.report(Problem::new(root, None, "no such directory: no services"));
                return catalog;
            }
            Err(error) => {
                self.report(Problem::new(root, None, format!("{error}: no services")));
                return catalog;
            }
        }
        for (folder, path) in self.folders(root) {
            if folder == VM_DEVICES_FOLDER {
                continue;
            }
            if catalog.services.len() >= VM_MAX_SERVICES {
                self.report(Problem::new(
                    &path,
                    None,
                    format!("more than {VM_MAX_SERVICES} services"),
                ));
                continue;
            }
            match self.service(&path, &folder, None) {
                Ok(service) => catalog.services.push(service),
                Err(problem) => self.report(problem),
            }
        }
        let devices = root.join(VM_DEVICES_FOLDER);
        match fs::metadata(&devices) {
            Ok(metadata) if metadata.is_dir() => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => return catalog,
            Ok(_) => {
                self.report(Problem::new(
                    &devices,
                    None,
                    "not a directory (the name devices is reserved for embedded devices)",
                ));
                return catalog;
            }
            Err(error) => {
                self.report(Problem::new(&devices, None, error.to_string()));
                return catalog;
            }
        }
        for (name, path) in self.folders(&devices) {
            if catalog.devices.len() >= VM_MAX_DEVICES {
                self.report(Problem::new(
                    &path,
                    None,
                    format!("more than {VM_MAX_DEVICES} devices"),
                ));
                continue;
            }
            match self.device(&path, &name) {
                Ok(device) => catalog.devices.push(device),
                Err(problem) => self.report(problem),
            }
        }
        catalog
    }

    /// The folders of `directory` with valid names, sorted; other files are not ours to judge
    /// (a README), folders with other names are reported.
    fn folders(&mut self, directory: &Path) -> Vec<(String, PathBuf)> {
        let entries = match fs::read_dir(directory) {
            Ok(entries) => entries,
            Err(error) => {
                self.report(Problem::new(directory, None, error.to_string()));
                return Vec::new();
            }
        };
        let mut folders = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if !fs::metadata(&path).is_ok_and(|metadata| metadata.is_dir()) {
                continue;
            }
            match entry.file_name().to_str() {
                Some(name) if is_folder_name(name) => folders.push((name.to_string(), path)),
                _ => self.report(Problem::new(
                    &path,
                    None,
                    format!("folder names are 1 to {VM_MAX_FOLDER_NAME} of A-Z a-z 0-9 _ -"),
                )),
            }
        }
        folders.sort_unstable();
        folders
    }

    fn device(&mut self, directory: &Path, name: &str) -> Result<OwnerDevice, Problem> {
        let conf = directory.join(VM_DEVICE_CONF);
        let (device_type, friendly_name) = match self.record(&conf)? {
            None => (
                default_type(URN_DEVICE_XENPLUG_PREFIX, name),
                name.to_string(),
            ),
            Some((record, stamp)) => device_identity(name, &record)
                .map_err(|reason| Problem::new(&conf, Some(stamp), reason))?,
        };
        let mut services = Vec::new();
        for (folder, path) in self.folders(directory) {
            if folder == VM_DEVICES_FOLDER {
                self.report(Problem::new(
                    &path,
                    None,
                    "devices inside an embedded device are not supported",
                ));
                continue;
            }
            if services.len() >= VM_MAX_SERVICES {
                self.report(Problem::new(
                    &path,
                    None,
                    format!("more than {VM_MAX_SERVICES} services"),
                ));
                continue;
            }
            match self.service(&path, &folder, Some(name)) {
                Ok(service) => services.push(service),
                Err(problem) => self.report(problem),
            }
        }
        Ok(OwnerDevice {
            name: name.to_string(),
            device_type,
            friendly_name,
            services,
        })
    }

    fn service(
        &mut self,
        directory: &Path,
        folder: &str,
        device: Option<&str>,
    ) -> Result<OwnerService, Problem> {
        // Folder names hold no `.`, so `<Device>.<Service>` never equals a top-level name.
        let (name, key) = match device {
            Some(device) => (
                format!("{device}.{folder}"),
                format!("{VM_DEVICE_KEY_PREFIX}{device}/{folder}"),
            ),
            None => (
                folder.to_string(),
                format!("{VM_SERVICE_KEY_PREFIX}{folder}"),
            ),
        };
        let conf = directory.join(VM_SERVICE_CONF);
        let (service_type, service_id) = match self.record(&conf)? {
            None => (
                default_type(URN_SERVICE_XENPLUG_PREFIX, folder),
                format!("{SERVICE_ID_XENPLUG_PREFIX}{folder}"),
            ),
            Some((record, stamp)) => service_identity(folder, &record)
                .map_err(|reason| Problem::new(&conf, Some(stamp), reason))?,
        };
        let spec = self.spec(directory, &name, &service_type, &service_id)?;
        let handler = directory.join(VM_HANDLER_FILE);
        check_handler(&handler)?;
        Ok(OwnerService {
            spec,
            key,
            directory: directory.to_path_buf(),
            handler,
        })
    }

    /// The SCPD of the service folder `directory`, parsed again only when the file or the
    /// identity it is parsed with changed.
    fn spec(
        &mut self,
        directory: &Path,
        name: &str,
        service_type: &str,
        service_id: &str,
    ) -> Result<Arc<ServiceSpec>, Problem> {
        let path = directory.join(VM_SCPD_FILE);
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return Err(Problem::new(&path, None, "scpd.xml is missing"))
            }
            Err(error) => return Err(Problem::new(&path, None, error.to_string())),
        };
        let stamp = Stamp::of(&metadata);
        let cached = self.old_specs.remove(directory).filter(|cached| {
            cached.trusted
                && cached.scpd == stamp
                && cached.service_type == service_type
                && cached.service_id == service_id
        });
        let result = match cached {
            Some(cached) => cached.result,
            None => read_bounded(&path, &metadata, SCPD_MAX_BYTES as u64).and_then(|bytes| {
                parse_scpd(&bytes, name, service_type, service_id)
                    .map(Arc::new)
                    .map_err(|error| format!("invalid SCPD: {error}"))
            }),
        };
        self.specs.insert(
            directory.to_path_buf(),
            CachedSpec {
                scpd: stamp,
                trusted: trusted(&metadata),
                service_type: service_type.to_string(),
                service_id: service_id.to_string(),
                result: result.clone(),
            },
        );
        result.map_err(|reason| Problem::new(&path, Some(stamp), reason))
    }

    /// The `key=value` file at `path` and its version, `None` when there is none; parsed again
    /// only when it changed.
    fn record(&mut self, path: &Path) -> Result<Option<(Record, Stamp)>, Problem> {
        let metadata = match fs::metadata(path) {
            Ok(metadata) => metadata,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(Problem::new(path, None, error.to_string())),
        };
        let stamp = Stamp::of(&metadata);
        let result = match self.old_records.remove(path) {
            Some(cached) if cached.trusted && cached.stamp == stamp => cached.result,
            _ => read_bounded(path, &metadata, VM_MAX_CONF_FILE).and_then(|bytes| {
                let text = String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
                Record::parse(&text)
            }),
        };
        self.records.insert(
            path.to_path_buf(),
            CachedRecord {
                stamp,
                trusted: trusted(&metadata),
                result: result.clone(),
            },
        );
        match result {
            Ok(record) => Ok(Some((record, stamp))),
            Err(reason) => Err(Problem::new(path, Some(stamp), reason)),
        }
    }
}

/// Directories a services directory's watch covers at most: the root, `devices`, every
/// service folder and its `state` folder, every device folder, its service folders and their
/// `state` folders.
const VM_MAX_WATCHED_DIRECTORIES: usize =
    2 + 2 * VM_MAX_SERVICES + VM_MAX_DEVICES * (1 + 2 * VM_MAX_SERVICES);

/// A watch on the services directory `root` covering what [`Scanner::scan`] reads: folders
/// with valid names, the files of a service folder it uses (a log an application writes
/// there changes nothing), every state file.
pub fn watch(root: &Path) -> Watch {
    let layout = Layout {
        descend: watched_folder,
        relevant: watched_file,
    };
    Watch::new("vm services", root, layout, VM_MAX_WATCHED_DIRECTORIES)
}

/// The folder names of a path below the root, if all are valid.
fn folder_names(path: &Path) -> Option<Vec<&str>> {
    path.iter()
        .map(|part| part.to_str().filter(|name| is_folder_name(name)))
        .collect()
}

/// Whether the folder at `path` (relative to the root) is one the scanner reads:
/// `<Service>`, `<Service>/state`, `devices`, `devices/<Device>`, `devices/<Device>/<Service>`
/// and `devices/<Device>/<Service>/state`.
fn watched_folder(path: &Path) -> bool {
    let Some(names) = folder_names(path) else {
        return false;
    };
    match names.as_slice() {
        [_] => true,
        [first, _] if *first == VM_DEVICES_FOLDER => true,
        [_, state] => *state == VM_STATE_FOLDER,
        [first, _, _] => *first == VM_DEVICES_FOLDER,
        [first, _, _, state] => *first == VM_DEVICES_FOLDER && *state == VM_STATE_FOLDER,
        _ => false,
    }
}

/// Whether a change of `name` in the watched folder `directory` can change the catalog.
fn watched_file(directory: &Path, name: &OsStr) -> bool {
    let Some(names) = folder_names(directory) else {
        return false;
    };
    let service_file = || {
        [VM_SCPD_FILE, VM_HANDLER_FILE, VM_SERVICE_CONF]
            .iter()
            .any(|file| name == OsStr::new(file))
    };
    match names.as_slice() {
        // The root and `devices`: folders come and go.
        [] => true,
        [first] if *first == VM_DEVICES_FOLDER => true,
        [_] | [_, _, _] => service_file(),
        [first, _] if *first == VM_DEVICES_FOLDER => name == OsStr::new(VM_DEVICE_CONF),
        // A state folder: every file is a variable's value.
        _ => true,
    }
}

/// `[A-Za-z0-9_-]{1,64}`.
fn is_folder_name(name: &str) -> bool {
    (1..=VM_MAX_FOLDER_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn default_type(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}:{VM_DEFAULT_TYPE_VERSION}")
}

/// The first key of `record` not in `known` (its text form is `key=value` lines, and keys
/// hold no `=`).
fn unknown_key(record: &Record, known: &[&str]) -> Option<String> {
    record
        .to_text()
        .lines()
        .filter_map(|line| line.split_once('=').map(|(key, _)| key.to_string()))
        .find(|key| !known.contains(&key.as_str()))
}

/// serviceType and serviceId from a service.conf, defaults for what it does not give.
fn service_identity(folder: &str, record: &Record) -> Result<(String, String), String> {
    if let Some(key) = unknown_key(record, &["type", "id"]) {
        return Err(format!("unknown key {key:?} (known: type, id)"));
    }
    let service_type = match record.get("type") {
        Some(urn) => {
            check_type_urn(urn, "service")?;
            urn.to_string()
        }
        None => default_type(URN_SERVICE_XENPLUG_PREFIX, folder),
    };
    let service_id = match record.get("id") {
        Some(urn) => {
            check_service_id(urn)?;
            urn.to_string()
        }
        None => format!("{SERVICE_ID_XENPLUG_PREFIX}{folder}"),
    };
    Ok((service_type, service_id))
}

/// deviceType and friendlyName from a device.conf, defaults for what it does not give.
fn device_identity(name: &str, record: &Record) -> Result<(String, String), String> {
    if let Some(key) = unknown_key(record, &["type", "name"]) {
        return Err(format!("unknown key {key:?} (known: type, name)"));
    }
    let device_type = match record.get("type") {
        Some(urn) => {
            check_type_urn(urn, "device")?;
            urn.to_string()
        }
        None => default_type(URN_DEVICE_XENPLUG_PREFIX, name),
    };
    let friendly_name = match record.get("name") {
        Some(friendly) => {
            if friendly.is_empty()
                || friendly.len() > VM_MAX_FRIENDLY_NAME
                || friendly.chars().any(char::is_control)
            {
                return Err(format!(
                    "name is not 1 to {VM_MAX_FRIENDLY_NAME} bytes of printable text"
                ));
            }
            friendly.to_string()
        }
        None => name.to_string(),
    };
    Ok((device_type, friendly_name))
}

/// A domain name of a vendor URN: letters, digits, `-` and `.`.
fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// `urn:<domain>:<kind>:<Name>:<version>` (UDA 1.1 sections 2.3 and 2.5: a name of at most
/// 64 characters and an integer version).
fn check_type_urn(urn: &str, kind: &str) -> Result<(), String> {
    let valid = match urn.split(':').collect::<Vec<_>>().as_slice() {
        [scheme, domain, found, name, version] => {
            URN_PREFIX.strip_suffix(':') == Some(*scheme)
                && is_domain(domain)
                && *found == kind
                && is_folder_name(name)
                && (1..=9).contains(&version.len())
                && version.bytes().all(|b| b.is_ascii_digit())
                && version.parse::<u32>().is_ok_and(|version| version >= 1)
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "type {urn:?} is not a urn:<domain>:{kind}:<Name>:<version> URN"
        ))
    }
}

/// `urn:<domain>:serviceId:<id>` (UDA 1.1 section 2.3: an id of at most 64 characters).
fn check_service_id(urn: &str) -> Result<(), String> {
    let valid = match urn.split(':').collect::<Vec<_>>().as_slice() {
        [scheme, domain, "serviceId", id] => {
            URN_PREFIX.strip_suffix(':') == Some(*scheme)
                && is_domain(domain)
                && (1..=VM_MAX_FOLDER_NAME).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
        }
        _ => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!(
            "id {urn:?} is not a urn:<domain>:serviceId:<id> URN"
        ))
    }
}

/// The handler must be a regular file its owner may execute (`mode & 0o100`).
fn check_handler(path: &Path) -> Result<(), Problem> {
    let metadata = match fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            return Err(Problem::new(path, None, "handler is missing"))
        }
        Err(error) => return Err(Problem::new(path, None, error.to_string())),
    };
    let stamp = Some(Stamp::of(&metadata));
    if !metadata.is_file() {
        return Err(Problem::new(path, stamp, "handler is not a regular file"));
    }
    if metadata.permissions().mode() & 0o100 == 0 {
        return Err(Problem::new(
            path,
            stamp,
            "handler is not executable by its owner (chmod u+x)",
        ));
    }
    Ok(())
}

/// Opens `path` for reading without blocking on a FIFO (and, with `no_follow`, refusing a
/// symbolic link), and checks it is a regular file.
fn open_regular(path: &Path, no_follow: bool) -> io::Result<(File, Metadata)> {
    let mut flags = libc::O_NONBLOCK;
    if no_follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok((file, metadata))
}

/// The contents of `path`, refused when larger than `limit` bytes.
fn read_bounded(path: &Path, metadata: &Metadata, limit: u64) -> Result<Vec<u8>, String> {
    let too_large = || format!("larger than {limit} bytes");
    if metadata.is_file() && metadata.len() > limit {
        return Err(too_large());
    }
    let (file, _) = open_regular(path, false).map_err(|error| error.to_string())?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| error.to_string())?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// State files whose problem was logged, with the version logged: [`evented_values`] is a
/// free function called for every event, so this is the one place it can remember them.
static STATE_PROBLEMS: Mutex<Problems> = Mutex::new(Problems::new());

/// Problems remembered at most; past that the memory starts again (and may log again).
const STATE_PROBLEMS_KEPT: usize = 1024;

/// Logs a problem with a state file unless the same was logged for the same version; `None`
/// forgets the path, so the problem is logged again if it comes back.
fn note_state(path: &Path, problem: Option<(Option<Stamp>, String)>) {
    let mut logged = STATE_PROBLEMS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match problem {
        None => {
            logged.remove(path);
        }
        Some(seen) => {
            if logged.get(path) == Some(&seen) {
                return;
            }
            log::warn!("vm services: state {}: {}", path.display(), seen.1);
            if logged.len() >= STATE_PROBLEMS_KEPT {
                logged.clear();
            }
            logged.insert(path.to_path_buf(), seen);
        }
    }
}

/// Current values of `service`'s evented variables from its state/ folder, in SCPD order; a
/// missing file is the empty string; values are trimmed of one trailing newline and bounded
/// to `VM_MAX_STATE_VALUE` bytes: longer is cut at a char boundary and logged once.
///
/// State files are published to the network verbatim, so a symbolic link (which could point
/// at any file of the guest) is refused, and so is anything but a regular file. Bytes that are
/// not UTF-8 become U+FFFD.
pub fn evented_values(service: &OwnerService) -> Vec<(String, String)> {
    let folder = service.directory.join(VM_STATE_FOLDER);
    service
        .spec
        .evented()
        .map(|variable| {
            let path = folder.join(&variable.name);
            (variable.name.clone(), read_state(&path))
        })
        .collect()
}

fn read_state(path: &Path) -> String {
    let (file, metadata) = match open_regular(path, true) {
        Ok(opened) => opened,
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            note_state(path, None);
            return String::new();
        }
        Err(error) => {
            let reason = if error.raw_os_error() == Some(libc::ELOOP) {
                "a symbolic link, not a regular file: published as empty".to_string()
            } else {
                format!("{error}: published as empty")
            };
            note_state(path, Some((None, reason)));
            return String::new();
        }
    };
    // Two bytes more than the limit: a value of exactly the limit plus its newline is whole.
    let mut bytes = Vec::new();
    if let Err(error) = file
        .take(VM_MAX_STATE_VALUE as u64 + 2)
        .read_to_end(&mut bytes)
    {
        note_state(path, Some((None, format!("{error}: published as empty"))));
        return String::new();
    }
    if bytes.len() <= VM_MAX_STATE_VALUE + 1 && bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    let mut value = String::from_utf8_lossy(&bytes).into_owned();
    if value.len() > VM_MAX_STATE_VALUE {
        let mut end = VM_MAX_STATE_VALUE;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
        note_state(
            path,
            Some((
                Some(Stamp::of(&metadata)),
                format!("longer than {VM_MAX_STATE_VALUE} bytes: cut"),
            )),
        );
    } else {
        note_state(path, None);
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Direction, Semantic};
    use std::sync::atomic::{AtomicUsize, Ordering};

    static SCPD: &str = r#"<?xml version="1.0"?>
<scpd xmlns="urn:schemas-upnp-org:service-1-0" xmlns:xenplug="urn:xenplug-org:schemas-1-0">
<specVersion><major>1</major><minor>1</minor></specVersion>
<actionList>
<action><name>Start</name><argumentList>
<argument><name>Target</name><direction>in</direction><relatedStateVariable>A_ARG_TYPE_Target</relatedStateVariable></argument>
</argumentList><xenplug:semantics>idempotent</xenplug:semantics></action>
</actionList>
<serviceStateTable>
<stateVariable sendEvents="yes"><name>Status</name><dataType>string</dataType></stateVariable>
<stateVariable sendEvents="no"><name>A_ARG_TYPE_Target</name><dataType>string</dataType></stateVariable>
<stateVariable><name>Progress</name><dataType>ui4</dataType></stateVariable>
</serviceStateTable>
</scpd>
"#;

    /// A unique directory under the system's temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(test: &str) -> TempDir {
            static COUNT: AtomicUsize = AtomicUsize::new(0);
            let path = std::env::temp_dir().join(format!(
                "xenplug-services-{}-{test}-{}",
                std::process::id(),
                COUNT.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn write(path: &Path, contents: &str) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    fn chmod(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A complete, valid service folder `directory`.
    fn add_service(directory: &Path) {
        write(&directory.join(VM_SCPD_FILE), SCPD);
        let handler = directory.join(VM_HANDLER_FILE);
        write(&handler, "#!/bin/sh\nexit 0\n");
        chmod(&handler, 0o755);
    }

    /// Sets the modification time of `path` a minute back, as a file written long ago.
    fn age(path: &Path) {
        let past = SystemTime::now() - std::time::Duration::from_secs(60);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(past)
            .unwrap();
    }

    fn keys(catalog: &Catalog) -> Vec<&str> {
        catalog.services.iter().map(|s| s.key.as_str()).collect()
    }

    fn problem<'a>(scanner: &'a Scanner, path: &Path) -> Option<&'a str> {
        scanner
            .problems()
            .find(|(at, _)| *at == path)
            .map(|(_, reason)| reason)
    }

    /// The watch covers the folders and files the scanner reads, and nothing else.
    #[test]
    fn the_watch_follows_the_layout() {
        for (path, watched) in [
            ("Echo", true),
            ("Echo/state", true),
            ("Echo/logs", false),
            ("Echo/state/deeper", false),
            ("devices", true),
            ("devices/app", true),
            ("devices/app/Echo", true),
            ("devices/app/Echo/state", true),
            ("devices/app/Echo/data", false),
            ("bad name", false),
        ] {
            assert_eq!(watched_folder(Path::new(path)), watched, "{path}");
        }
        for (directory, name, relevant) in [
            ("", "Echo", true),
            ("Echo", "scpd.xml", true),
            ("Echo", "handler", true),
            ("Echo", "service.conf", true),
            ("Echo", "app.log", false),
            ("Echo/state", "Value", true),
            ("devices/app", "device.conf", true),
            ("devices/app", "notes", false),
            ("devices/app/Echo", "handler", true),
            ("devices/app/Echo/state", "Anything", true),
        ] {
            let seen = watched_file(Path::new(directory), OsStr::new(name));
            assert_eq!(seen, relevant, "{directory}/{name}");
        }
    }

    #[test]
    fn reads_a_service_and_a_subdevice() {
        let root = TempDir::new("valid");
        add_service(&root.0.join("Backup"));
        let app = root.0.join(VM_DEVICES_FOLDER).join("App1");
        add_service(&app.join("Deploy"));
        let mut scanner = Scanner::new(root.0.clone());
        let catalog = scanner.scan();
        assert_eq!(scanner.problems().count(), 0);
        assert_eq!(keys(&catalog), ["svc/Backup"]);
        let backup = &catalog.services[0];
        assert_eq!(backup.spec.name, "Backup");
        assert_eq!(backup.spec.service_type, "urn:xenplug-org:service:Backup:1");
        assert_eq!(backup.spec.service_id, "urn:xenplug-org:serviceId:Backup");
        assert_eq!(backup.spec.scpd_url(), "/scpd/Backup.xml");
        assert_eq!(backup.directory, root.0.join("Backup"));
        assert_eq!(backup.handler, root.0.join("Backup").join(VM_HANDLER_FILE));
        let start = backup.spec.find_action("Start").unwrap();
        assert_eq!(start.semantics, [Semantic::Idempotent]);
        assert_eq!(start.arguments[0].direction, Direction::In);

        assert_eq!(catalog.devices.len(), 1);
        let device = &catalog.devices[0];
        assert_eq!(device.name, "App1");
        assert_eq!(device.device_type, "urn:xenplug-org:device:App1:1");
        assert_eq!(device.friendly_name, "App1");
        assert_eq!(device.services.len(), 1);
        assert_eq!(device.services[0].key, "dev/App1/Deploy");
        assert_eq!(device.services[0].spec.name, "App1.Deploy");
        assert_eq!(
            device.services[0].spec.service_type,
            "urn:xenplug-org:service:Deploy:1"
        );
    }

    #[test]
    fn conf_files_set_types_ids_and_names() {
        let root = TempDir::new("conf");
        let service = root.0.join("Web");
        add_service(&service);
        write(
            &service.join(VM_SERVICE_CONF),
            "# ours\ntype=urn:acme-com:service:WebServer:2\nid=urn:acme-com:serviceId:Web1\n",
        );
        let device = root.0.join(VM_DEVICES_FOLDER).join("shop-1");
        add_service(&device.join("Cart"));
        write(
            &device.join(VM_DEVICE_CONF),
            "type=urn:acme-com:device:Shop:3\nname=The shop\n",
        );
        let catalog = Scanner::new(root.0.clone()).scan();
        let spec = &catalog.services[0].spec;
        assert_eq!(spec.service_type, "urn:acme-com:service:WebServer:2");
        assert_eq!(spec.service_id, "urn:acme-com:serviceId:Web1");
        assert_eq!(catalog.devices[0].device_type, "urn:acme-com:device:Shop:3");
        assert_eq!(catalog.devices[0].friendly_name, "The shop");
        assert_eq!(catalog.devices[0].services[0].spec.name, "shop-1.Cart");
    }

    #[test]
    fn leaves_out_each_kind_of_invalid_service_and_keeps_the_others() {
        let root = TempDir::new("invalid");
        let dir = |name: &str| root.0.join(name);
        add_service(&dir("Good"));
        add_service(&dir("Zgood"));

        add_service(&dir("NoScpd"));
        fs::remove_file(dir("NoScpd").join(VM_SCPD_FILE)).unwrap();
        add_service(&dir("BadScpd"));
        write(
            &dir("BadScpd").join(VM_SCPD_FILE),
            &SCPD.replace("<name>Start</name>", "<name>Start-Now</name>"),
        );
        add_service(&dir("NotXml"));
        write(&dir("NotXml").join(VM_SCPD_FILE), "<scpd");
        add_service(&dir("BigScpd"));
        write(
            &dir("BigScpd").join(VM_SCPD_FILE),
            &" ".repeat(SCPD_MAX_BYTES + 1),
        );
        add_service(&dir("NoHandler"));
        fs::remove_file(dir("NoHandler").join(VM_HANDLER_FILE)).unwrap();
        add_service(&dir("HandlerDir"));
        fs::remove_file(dir("HandlerDir").join(VM_HANDLER_FILE)).unwrap();
        fs::create_dir(dir("HandlerDir").join(VM_HANDLER_FILE)).unwrap();
        add_service(&dir("NoExec"));
        chmod(&dir("NoExec").join(VM_HANDLER_FILE), 0o644);
        add_service(&dir("GroupExec"));
        chmod(&dir("GroupExec").join(VM_HANDLER_FILE), 0o655);
        add_service(&dir("BadConf"));
        write(&dir("BadConf").join(VM_SERVICE_CONF), "type\n");
        add_service(&dir("BadType"));
        write(
            &dir("BadType").join(VM_SERVICE_CONF),
            "type=urn:acme-com:device:X:1\n",
        );
        add_service(&dir("BadVersion"));
        write(
            &dir("BadVersion").join(VM_SERVICE_CONF),
            "type=urn:acme-com:service:X:v1\n",
        );
        add_service(&dir("BadId"));
        write(&dir("BadId").join(VM_SERVICE_CONF), "id=Backup\n");
        add_service(&dir("Typo"));
        write(
            &dir("Typo").join(VM_SERVICE_CONF),
            "tpye=urn:a:service:X:1\n",
        );
        add_service(&dir("bad.name"));
        write(&dir("README"), "not a service\n");
        let bad_device = root.0.join(VM_DEVICES_FOLDER).join("BadDevice");
        add_service(&bad_device.join("Svc"));
        write(
            &bad_device.join(VM_DEVICE_CONF),
            "type=urn:acme-com:service:X:1\n",
        );
        let nested = root.0.join(VM_DEVICES_FOLDER).join("Shop");
        add_service(&nested.join("Cart"));
        add_service(&nested.join(VM_DEVICES_FOLDER).join("Inner"));

        let mut scanner = Scanner::new(root.0.clone());
        let catalog = scanner.scan();
        assert_eq!(keys(&catalog), ["svc/Good", "svc/Zgood"]);
        assert_eq!(catalog.devices.len(), 1);
        assert_eq!(catalog.devices[0].name, "Shop");
        assert_eq!(catalog.devices[0].services.len(), 1);

        let expected: [(PathBuf, &str); 16] = [
            (dir("NoScpd").join(VM_SCPD_FILE), "scpd.xml is missing"),
            (
                dir("BadScpd").join(VM_SCPD_FILE),
                "invalid SCPD: action \"Start-Now\": the name may hold only",
            ),
            (
                dir("NotXml").join(VM_SCPD_FILE),
                "invalid SCPD: the XML ends",
            ),
            (dir("BigScpd").join(VM_SCPD_FILE), "larger than 65536 bytes"),
            (dir("NoHandler").join(VM_HANDLER_FILE), "handler is missing"),
            (
                dir("HandlerDir").join(VM_HANDLER_FILE),
                "handler is not a regular file",
            ),
            (
                dir("NoExec").join(VM_HANDLER_FILE),
                "not executable by its owner",
            ),
            (
                dir("GroupExec").join(VM_HANDLER_FILE),
                "not executable by its owner",
            ),
            (
                dir("BadConf").join(VM_SERVICE_CONF),
                "line 1: expected key=value",
            ),
            (
                dir("BadType").join(VM_SERVICE_CONF),
                "is not a urn:<domain>:service:<Name>:<version> URN",
            ),
            (
                dir("BadVersion").join(VM_SERVICE_CONF),
                "type \"urn:acme-com:service:X:v1\" is not",
            ),
            (
                dir("BadId").join(VM_SERVICE_CONF),
                "id \"Backup\" is not a urn:<domain>:serviceId:<id> URN",
            ),
            (dir("Typo").join(VM_SERVICE_CONF), "unknown key \"tpye\""),
            (dir("bad.name"), "folder names are"),
            (
                bad_device.join(VM_DEVICE_CONF),
                "is not a urn:<domain>:device:<Name>:<version> URN",
            ),
            (
                nested.join(VM_DEVICES_FOLDER),
                "devices inside an embedded device are not supported",
            ),
        ];
        for (path, reason) in &expected {
            let found = problem(&scanner, path);
            assert!(
                found.is_some_and(|found| found.contains(reason)),
                "{}: {found:?}, wanted {reason:?}",
                path.display()
            );
        }
        assert_eq!(scanner.problems().count(), expected.len());
        assert_eq!(scanner.warnings, expected.len() as u64);
    }

    #[test]
    fn devices_must_be_a_folder() {
        let root = TempDir::new("devices-file");
        add_service(&root.0.join("Good"));
        write(&root.0.join(VM_DEVICES_FOLDER), "oops\n");
        let mut scanner = Scanner::new(root.0.clone());
        let catalog = scanner.scan();
        assert_eq!(keys(&catalog), ["svc/Good"]);
        assert!(problem(&scanner, &root.0.join(VM_DEVICES_FOLDER))
            .is_some_and(|reason| reason.contains("reserved")));
    }

    #[test]
    fn a_missing_root_is_an_empty_catalog_logged_once() {
        let root = TempDir::new("missing");
        let missing = root.0.join("nothing-here");
        let mut scanner = Scanner::new(missing.clone());
        assert_eq!(scanner.scan(), Catalog::default());
        assert_eq!(scanner.scan(), Catalog::default());
        assert_eq!(scanner.warnings, 1);
        assert!(problem(&scanner, &missing).is_some());
        add_service(&missing.join("Late"));
        assert_eq!(keys(&scanner.scan()), ["svc/Late"]);
        assert_eq!(scanner.problems().count(), 0);
        fs::remove_dir_all(&missing).unwrap();
        assert_eq!(scanner.scan(), Catalog::default());
        assert_eq!(scanner.warnings, 2);
    }

    #[test]
    fn logs_each_problem_once_per_version() {
        let root = TempDir::new("log-once");
        let service = root.0.join("Svc");
        add_service(&service);
        let scpd = service.join(VM_SCPD_FILE);
        write(&scpd, "<scpd>");
        let mut scanner = Scanner::new(root.0.clone());
        scanner.scan();
        scanner.scan();
        scanner.scan();
        assert_eq!(scanner.warnings, 1);
        // A new version of the file (another size) is logged again, even with the same reason.
        write(&scpd, "<scpd> ");
        scanner.scan();
        scanner.scan();
        assert_eq!(scanner.warnings, 2);
        // Fixed, then broken again the same way: logged again.
        write(&scpd, SCPD);
        assert_eq!(keys(&scanner.scan()), ["svc/Svc"]);
        assert_eq!(scanner.warnings, 2);
        chmod(&service.join(VM_HANDLER_FILE), 0o644);
        scanner.scan();
        scanner.scan();
        assert_eq!(scanner.warnings, 3);
        chmod(&service.join(VM_HANDLER_FILE), 0o755);
        assert_eq!(keys(&scanner.scan()), ["svc/Svc"]);
        chmod(&service.join(VM_HANDLER_FILE), 0o644);
        scanner.scan();
        assert_eq!(scanner.warnings, 4);
    }

    #[test]
    fn reuses_the_parsed_scpd_until_something_changes() {
        let root = TempDir::new("cache");
        let service = root.0.join("Svc");
        add_service(&service);
        let scpd = service.join(VM_SCPD_FILE);
        let conf = service.join(VM_SERVICE_CONF);
        age(&scpd);
        let mut scanner = Scanner::new(root.0.clone());
        let first = scanner.scan().services[0].spec.clone();
        let second = scanner.scan().services[0].spec.clone();
        assert!(Arc::ptr_eq(&first, &second));
        // The SCPD changed: parsed again.
        write(
            &scpd,
            &SCPD.replace("<name>Start</name>", "<name>Begin</name>"),
        );
        let third = scanner.scan().services[0].spec.clone();
        assert!(!Arc::ptr_eq(&second, &third));
        assert!(third.find_action("Begin").is_some());
        // The type changed in service.conf: parsed again with the new type.
        write(&conf, "type=urn:acme-com:service:Svc:2\n");
        let fourth = scanner.scan().services[0].spec.clone();
        assert!(!Arc::ptr_eq(&third, &fourth));
        assert_eq!(fourth.service_type, "urn:acme-com:service:Svc:2");
        age(&scpd);
        age(&conf);
        let fifth = scanner.scan().services[0].spec.clone();
        let sixth = scanner.scan().services[0].spec.clone();
        assert_eq!(fifth, fourth);
        assert!(Arc::ptr_eq(&fifth, &sixth));
        // A service that went away leaves the cache.
        fs::remove_dir_all(&service).unwrap();
        assert_eq!(scanner.scan(), Catalog::default());
        assert!(scanner.specs.is_empty());
        assert!(scanner.records.is_empty());
    }

    #[test]
    fn sees_a_same_size_rewrite_of_a_recent_file() {
        let root = TempDir::new("racy");
        let service = root.0.join("Svc");
        add_service(&service);
        let scpd = service.join(VM_SCPD_FILE);
        let mut scanner = Scanner::new(root.0.clone());
        assert!(scanner.scan().services[0]
            .spec
            .find_action("Start")
            .is_some());
        // Same size, possibly the same clock tick, so possibly the same stamp: the file is
        // recent, so the cache is not trusted.
        write(
            &scpd,
            &SCPD.replace("<name>Start</name>", "<name>Begin</name>"),
        );
        assert!(scanner.scan().services[0]
            .spec
            .find_action("Begin")
            .is_some());
        // An old file's cache is trusted while its stamp stays.
        age(&scpd);
        let old = scanner.scan().services[0].spec.clone();
        assert!(Arc::ptr_eq(&old, &scanner.scan().services[0].spec));
    }

    #[test]
    fn reads_evented_values() {
        let root = TempDir::new("state");
        let directory = root.0.join("Svc");
        add_service(&directory);
        let service = Scanner::new(root.0.clone()).scan().services.remove(0);
        let state = directory.join(VM_STATE_FOLDER);
        // No state folder at all: every evented variable is empty; A_ARG_TYPE_Target is not
        // evented and never read.
        assert_eq!(
            evented_values(&service),
            [
                ("Status".to_string(), String::new()),
                ("Progress".to_string(), String::new())
            ]
        );
        write(&state.join("Status"), "running\n\n");
        write(&state.join("Progress"), "42\r\n");
        write(&state.join("A_ARG_TYPE_Target"), "never");
        assert_eq!(
            evented_values(&service),
            [
                ("Status".to_string(), "running\n".to_string()),
                ("Progress".to_string(), "42".to_string())
            ]
        );
        // Exactly the limit plus a newline is whole; longer is cut at a char boundary.
        let exact = "x".repeat(VM_MAX_STATE_VALUE);
        write(&state.join("Status"), &format!("{exact}\n"));
        assert_eq!(evented_values(&service)[0].1, exact);
        let status = state.join("Status");
        assert!(!STATE_PROBLEMS.lock().unwrap().contains_key(&status));
        let long = format!("x{}", "é".repeat(VM_MAX_STATE_VALUE));
        write(&status, &long);
        let cut = &evented_values(&service)[0].1;
        assert_eq!(cut.len(), VM_MAX_STATE_VALUE - 1);
        assert!(long.starts_with(cut.as_str()));
        assert!(STATE_PROBLEMS.lock().unwrap().contains_key(&status));
        // A symbolic link is not followed; a FIFO does not block.
        fs::remove_file(&status).unwrap();
        std::os::unix::fs::symlink(directory.join(VM_SCPD_FILE), &status).unwrap();
        assert_eq!(evented_values(&service)[0].1, "");
        let reason = STATE_PROBLEMS.lock().unwrap().get(&status).cloned();
        assert!(reason.is_some_and(|(_, reason)| reason.contains("symbolic link")));
        let progress = state.join("Progress");
        fs::remove_file(&progress).unwrap();
        let fifo = std::ffi::CString::new(progress.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        assert_eq!(evented_values(&service)[1].1, "");
        // Gone again: the empty string, and the problem is forgotten.
        fs::remove_file(&status).unwrap();
        assert_eq!(evented_values(&service)[0].1, "");
        assert!(!STATE_PROBLEMS.lock().unwrap().contains_key(&status));
    }

    #[test]
    fn folder_names_and_urns() {
        assert!(is_folder_name("a-Z_09"));
        assert!(is_folder_name(&"a".repeat(64)));
        assert!(!is_folder_name(&"a".repeat(65)));
        assert!(!is_folder_name(""));
        assert!(!is_folder_name("a.b"));
        assert!(!is_folder_name(".hidden"));
        assert!(check_type_urn("urn:schemas-upnp-org:service:Dimming:1", "service").is_ok());
        assert!(check_type_urn("urn:acme.com:service:X:12", "service").is_ok());
        for bad in [
            "urn:acme-com:service:X:0",
            "urn:acme-com:service:X:",
            "urn:acme-com:service::1",
            "urn::service:X:1",
            "urn:acme-com:service:X:1:2",
            "URN:acme-com:service:X:1",
            "urn:acme com:service:X:1",
            "urn:acme-com:service:X:1234567890",
        ] {
            assert!(check_type_urn(bad, "service").is_err(), "{bad}");
        }
        assert!(check_service_id("urn:upnp-org:serviceId:Dimming.1").is_ok());
        assert!(check_service_id("urn:upnp-org:serviceid:X").is_err());
        assert!(check_service_id("urn:upnp-org:serviceId:").is_err());
    }
}
