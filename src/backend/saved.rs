//! Backend helper for the libxl backend: domains suspended to disk with `xl save`.
//!
//! Suspend, as XenAPI and xendomains mean it, writes a domain's memory into an image file and
//! destroys the domain; Resume restores it with `xl restore FILE`. The images live in one
//! directory (`--xl-save-dir`, default /var/lib/xen/save, the one xendomains uses), each as
//! `UUID.save` beside a sidecar `UUID.record`: a [`Record`] (uuid, name, memory_kib, vcpus,
//! and config, the xl config file, when known) written atomically before the save starts. The
//! image is xl's own format and carries the domain's config, so restoring needs nothing else;
//! the sidecar is what lets the domain be listed without reading the image.
//!
//! An image without its sidecar, a sidecar without its image (while no save or restore of that
//! UUID is under way) or a sidecar that does not read is logged once and ignored; other files
//! (xendomains' images, named after their domain) are not looked at. The directory is created
//! 0700 when the first image is saved.
//!
//! Filesystem work only, bounded in files and bytes; never panics on what it reads. Nothing
//! here calls libxl or runs xl.

use crate::files::{write_atomic, Record};
use std::collections::HashSet;
use std::fs::{self, DirBuilder};
use std::io::{self, Read};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use uuid::Uuid;

/// Files of the save directory looked at, at most.
const XL_SAVE_MAX_FILES: usize = 4096;
/// Largest sidecar record read, in bytes.
const XL_SAVE_RECORD_MAX: u64 = 16 * 1024;

/// Extension of an image file.
const IMAGE_EXTENSION: &str = "save";
/// Extension of a sidecar record.
const RECORD_EXTENSION: &str = "record";

/// A domain saved to disk, as its sidecar describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedDomain {
    /// Xen VM UUID (the restored domain keeps it).
    pub uuid: Uuid,
    /// Domain name when it was saved.
    pub name: String,
    /// Memory in KiB when it was saved.
    pub memory_kib: u64,
    /// vCPUs online when it was saved.
    pub vcpus: u32,
    /// The xl config file that defines the domain, when one does.
    pub config: Option<PathBuf>,
    /// The image `xl restore` is given.
    pub image: PathBuf,
    /// The sidecar record.
    pub record: PathBuf,
}

impl SavedDomain {
    /// The sidecar's text: escaped `key=value` lines.
    pub fn record_text(&self) -> Result<String, String> {
        let mut record = Record::default();
        record.set("uuid", self.uuid.to_string());
        record.set("name", self.name.clone());
        record.set("memory_kib", self.memory_kib.to_string());
        record.set("vcpus", self.vcpus.to_string());
        if let Some(config) = &self.config {
            let config = config
                .to_str()
                .ok_or_else(|| format!("config path {} is not UTF-8", config.display()))?;
            record.set("config", config);
        }
        record.to_text_escaped()
    }

    /// Reads a sidecar's text for the image `image` of the domain `uuid` (from the file
    /// names); the record's uuid must be that one.
    pub fn from_record(
        text: &str,
        uuid: Uuid,
        image: PathBuf,
        record_path: PathBuf,
    ) -> Result<SavedDomain, String> {
        let record = Record::parse_escaped(text)?;
        let said = record.require("uuid")?;
        if Uuid::parse_str(said).ok() != Some(uuid) {
            return Err(format!("uuid {said:?} is not the file's {uuid}"));
        }
        let number = |key: &str| -> Result<u64, String> {
            record
                .require(key)?
                .parse()
                .map_err(|_| format!("{key} is not a number"))
        };
        let name = record.require("name")?;
        if name.is_empty() {
            return Err("empty name".to_string());
        }
        Ok(SavedDomain {
            uuid,
            name: name.to_string(),
            memory_kib: number("memory_kib")?,
            vcpus: u32::try_from(number("vcpus")?).map_err(|_| "vcpus is too big".to_string())?,
            config: record
                .get("config")
                .filter(|c| !c.is_empty())
                .map(PathBuf::from),
            image,
            record: record_path,
        })
    }
}

/// What a file of the save directory is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFile {
    /// `UUID.save`
    Image(Uuid),
    /// `UUID.record`
    Record(Uuid),
}

/// The kind of file `name` is, `None` for a file that is not xenplug's (another naming, a
/// temporary file, a UUID not in the hyphenated form).
pub fn save_file(name: &str) -> Option<SaveFile> {
    let (stem, extension) = name.rsplit_once('.')?;
    if stem.len() != 36 {
        return None;
    }
    let uuid = Uuid::parse_str(stem).ok()?;
    match extension {
        IMAGE_EXTENSION => Some(SaveFile::Image(uuid)),
        RECORD_EXTENSION => Some(SaveFile::Record(uuid)),
        _ => None,
    }
}

/// The save directory's files sorted out: UUIDs with both files, and the lonely ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairing {
    /// Image and sidecar both there.
    pub complete: Vec<Uuid>,
    /// An image without its sidecar.
    pub images_alone: Vec<Uuid>,
    /// A sidecar without its image.
    pub records_alone: Vec<Uuid>,
}

/// Pairs the files named `names` by UUID; every list comes out sorted, each UUID once.
pub fn pair<'a>(names: impl IntoIterator<Item = &'a str>) -> Pairing {
    let mut images = HashSet::new();
    let mut records = HashSet::new();
    for name in names {
        match save_file(name) {
            Some(SaveFile::Image(uuid)) => {
                images.insert(uuid);
            }
            Some(SaveFile::Record(uuid)) => {
                records.insert(uuid);
            }
            None => {}
        }
    }
    let sorted = |set: HashSet<Uuid>| {
        let mut list: Vec<Uuid> = set.into_iter().collect();
        list.sort_unstable();
        list
    };
    Pairing {
        complete: sorted(images.intersection(&records).copied().collect()),
        images_alone: sorted(images.difference(&records).copied().collect()),
        records_alone: sorted(records.difference(&images).copied().collect()),
    }
}

/// The directory of saved images.
#[derive(Debug)]
pub struct SaveDir {
    directory: PathBuf,
    state: Mutex<State>,
}

/// The mutable part of [`SaveDir`].
#[derive(Debug, Default)]
struct State {
    /// UUIDs being saved or restored: their lonely files are expected.
    busy: HashSet<Uuid>,
    /// Problems already logged, by what they were about.
    reported: HashSet<String>,
}

/// Marks a UUID busy (being saved or restored) until dropped.
#[derive(Debug)]
pub struct Busy<'a> {
    dir: &'a SaveDir,
    uuid: Uuid,
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.dir.state().busy.remove(&self.uuid);
    }
}

impl SaveDir {
    /// The images in `directory` (which need not exist yet).
    pub fn new(directory: &Path) -> SaveDir {
        SaveDir {
            directory: directory.to_path_buf(),
            state: Mutex::new(State::default()),
        }
    }

    /// The directory.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where the image of `uuid` goes.
    pub fn image_path(&self, uuid: Uuid) -> PathBuf {
        self.directory.join(format!("{uuid}.{IMAGE_EXTENSION}"))
    }

    /// Where the sidecar of `uuid` goes.
    pub fn record_path(&self, uuid: Uuid) -> PathBuf {
        self.directory.join(format!("{uuid}.{RECORD_EXTENSION}"))
    }

    /// Marks `uuid` as being saved or restored until the guard drops.
    pub fn busy(&self, uuid: Uuid) -> Busy<'_> {
        self.state().busy.insert(uuid);
        Busy { dir: self, uuid }
    }

    /// Every domain saved here, sorted by UUID. A missing directory holds none.
    pub fn domains(&self) -> Vec<SavedDomain> {
        let entries = match fs::read_dir(&self.directory) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return Vec::new(),
            Err(error) => {
                self.report(
                    "directory".to_string(),
                    format!("cannot read {}: {error}", self.directory.display()),
                );
                return Vec::new();
            }
        };
        let names: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| entry.file_name().into_string().ok())
            .take(XL_SAVE_MAX_FILES)
            .collect();
        let pairing = pair(names.iter().map(String::as_str));
        let busy = self.state().busy.clone();
        let mut problems: Vec<(String, String)> = Vec::new();
        for uuid in pairing.images_alone.iter().filter(|u| !busy.contains(u)) {
            let image = self.image_path(*uuid);
            problems.push((
                format!("image {uuid}"),
                format!(
                    "{} has no sidecar {}: ignored",
                    image.display(),
                    self.record_path(*uuid).display()
                ),
            ));
        }
        for uuid in pairing.records_alone.iter().filter(|u| !busy.contains(u)) {
            problems.push((
                format!("record {uuid}"),
                format!(
                    "{} has no image {}: ignored",
                    self.record_path(*uuid).display(),
                    self.image_path(*uuid).display()
                ),
            ));
        }
        let mut found = Vec::with_capacity(pairing.complete.len());
        for uuid in pairing.complete {
            let record = self.record_path(uuid);
            let read = read_bounded(&record).and_then(|text| {
                SavedDomain::from_record(&text, uuid, self.image_path(uuid), record.clone())
            });
            match read {
                Ok(saved) => found.push(saved),
                Err(why) => problems.push((
                    format!("bad {uuid}"),
                    format!("{}: {why}: ignored", record.display()),
                )),
            }
        }
        let mut state = self.state();
        let current: HashSet<String> = problems.iter().map(|(key, _)| key.clone()).collect();
        state.reported.retain(|key| current.contains(key));
        for (key, message) in problems {
            if state.reported.insert(key) {
                log::warn!("libxl: saved domains: {message}");
            }
        }
        found
    }

    /// Logs `message` once until the problem `key` goes away.
    fn report(&self, key: String, message: String) {
        if self.state().reported.insert(key) {
            log::warn!("libxl: saved domains: {message}");
        }
    }

    /// Writes `saved`'s sidecar (atomically), creating the directory 0700 if it is missing.
    pub fn write_record(&self, saved: &SavedDomain) -> Result<(), String> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.directory)
            .map_err(|e| format!("cannot create {}: {e}", self.directory.display()))?;
        let text = saved.record_text()?;
        write_atomic(&saved.record, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", saved.record.display()))
    }

    /// Removes `saved`'s image, then its sidecar (a missing file is no error).
    pub fn remove(&self, saved: &SavedDomain) -> Result<(), String> {
        for path in [&saved.image, &saved.record] {
            match fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(format!("cannot remove {}: {error}", path.display())),
            }
        }
        Ok(())
    }
}

/// A sidecar's text, at most [`XL_SAVE_RECORD_MAX`] bytes.
fn read_bounded(path: &Path) -> Result<String, String> {
    let file = fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(XL_SAVE_RECORD_MAX + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > XL_SAVE_RECORD_MAX {
        return Err(format!("larger than {XL_SAVE_RECORD_MAX} bytes"));
    }
    String::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const A: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000a001";
    const B: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000b002";

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenplug-saved-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn web(dir: &SaveDir) -> SavedDomain {
        let uuid = Uuid::parse_str(A).unwrap();
        SavedDomain {
            uuid,
            name: "web server\n#1".to_string(),
            memory_kib: 131_072,
            vcpus: 2,
            config: Some(PathBuf::from("/etc/xen/web.cfg")),
            image: dir.image_path(uuid),
            record: dir.record_path(uuid),
        }
    }

    #[test]
    fn records_round_trip_and_bad_ones_say_why() {
        let dir = SaveDir::new(Path::new("/var/lib/xen/save"));
        let saved = web(&dir);
        let text = saved.record_text().unwrap();
        let back =
            SavedDomain::from_record(&text, saved.uuid, saved.image.clone(), saved.record.clone())
                .unwrap();
        assert_eq!(back, saved);
        let bare = SavedDomain {
            config: None,
            ..saved.clone()
        };
        let text = bare.record_text().unwrap();
        assert!(!text.contains("config"), "{text}");
        let other = Uuid::parse_str(B).unwrap();
        for (text, uuid, expected) in [
            (text.as_str(), other, "is not the file's"),
            (
                "name=x\nmemory_kib=1\nvcpus=1\n",
                saved.uuid,
                "missing uuid",
            ),
            (
                &format!("uuid={A}\nname=\nmemory_kib=1\nvcpus=1\n"),
                saved.uuid,
                "empty name",
            ),
            (
                &format!("uuid={A}\nname=x\nmemory_kib=-1\nvcpus=1\n"),
                saved.uuid,
                "memory_kib",
            ),
            (
                &format!("uuid={A}\nname=x\nmemory_kib=1\nvcpus=99999999999\n"),
                saved.uuid,
                "too big",
            ),
            (
                &format!("uuid={A}\nname=x\\q\nmemory_kib=1\nvcpus=1\n"),
                saved.uuid,
                "name",
            ),
        ] {
            let error =
                SavedDomain::from_record(text, uuid, PathBuf::new(), PathBuf::new()).unwrap_err();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn every_prefix_of_a_record_reads_without_panic() {
        let dir = SaveDir::new(Path::new("/x"));
        let saved = web(&dir);
        let text = saved.record_text().unwrap();
        for end in 0..=text.len() {
            if text.is_char_boundary(end) {
                let _ = SavedDomain::from_record(
                    &text[..end],
                    saved.uuid,
                    PathBuf::new(),
                    PathBuf::new(),
                );
            }
        }
    }

    #[test]
    fn file_names_pair_by_uuid() {
        assert_eq!(
            save_file(&format!("{A}.save")),
            Some(SaveFile::Image(Uuid::parse_str(A).unwrap()))
        );
        assert_eq!(
            save_file(&format!("{A}.record")),
            Some(SaveFile::Record(Uuid::parse_str(A).unwrap()))
        );
        for name in [
            "g1",
            "g1.save",
            &format!("{A}.save.partial"),
            &format!(".{A}.record.tmp12"),
            &format!("{}.save", A.replace('-', "")),
            &format!("x{A}.save"),
            "",
            ".",
        ] {
            assert_eq!(save_file(name), None, "{name}");
        }
        let c = "0b5e1c2a-1111-4a6b-8c9d-00000000c003";
        let names = [
            format!("{A}.save"),
            format!("{A}.record"),
            format!("{B}.save"),
            format!("{c}.record"),
            "web".to_string(),
        ];
        let pairing = pair(names.iter().map(String::as_str));
        let id = |s: &str| Uuid::parse_str(s).unwrap();
        assert_eq!(pairing.complete, [id(A)]);
        assert_eq!(pairing.images_alone, [id(B)]);
        assert_eq!(pairing.records_alone, [id(c)]);
        assert_eq!(pair([]), Pairing::default());
    }

    #[test]
    fn the_directory_lists_complete_pairs_and_is_made_private() {
        let root = temp_dir("dir");
        let dir = SaveDir::new(&root.join("save"));
        assert!(dir.domains().is_empty(), "a missing directory holds none");
        let saved = web(&dir);
        dir.write_record(&saved).unwrap();
        let mode = fs::metadata(dir.directory()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        {
            let _busy = dir.busy(saved.uuid);
            assert!(dir.domains().is_empty(), "no image yet");
        }
        fs::write(&saved.image, b"image").unwrap();
        assert_eq!(dir.domains(), std::slice::from_ref(&saved));
        let other = Uuid::parse_str(B).unwrap();
        fs::write(dir.image_path(other), b"image").unwrap();
        fs::write(dir.record_path(other), b"uuid=nonsense\n").unwrap();
        fs::write(dir.directory().join("g1"), b"xendomains").unwrap();
        assert_eq!(dir.domains(), std::slice::from_ref(&saved));
        dir.remove(&saved).unwrap();
        dir.remove(&saved).unwrap();
        assert!(!saved.image.exists() && !saved.record.exists());
        assert!(dir.domains().is_empty());
        fs::remove_dir_all(&root).unwrap();
    }
}
