//! The state directory and host facts: BOOTID, CONFIGID, the host's UUID, name and release.
//!
//! BOOTID.UPNP.ORG must increase at every start and CONFIGID.UPNP.ORG whenever a description
//! changes (UDA 1.1 section 1.2.2), also across restarts, so both are kept in `--state-dir`.

use crate::error::{Error, Result};
use crate::files::{write_atomic, Record};
use std::fs;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// File in the state directory holding `bootid`, `configid`, `description_hash`, `host_uuid`.
const STATE_FILE: &str = "state";
/// Largest value of BOOTID and CONFIGID: UDA 1.1 makes BOOTID a 31-bit value and caps
/// CONFIGID at 16777215.
const BOOT_ID_MAX: u32 = 0x7fff_ffff;
const CONFIG_ID_MAX: u32 = 16_777_215;
/// Where Linux shows the machine's SMBIOS UUID.
const DMI_PRODUCT_UUID: &str = "/sys/class/dmi/id/product_uuid";

/// The persistent state of one advertiser.
pub struct StateDir {
    path: PathBuf,
    record: Record,
}

impl StateDir {
    /// Opens (creating) `directory` and loads its state.
    pub fn open(directory: &Path) -> Result<StateDir> {
        fs::create_dir_all(directory).map_err(|e| {
            Error::io(
                format!("creating state directory {}", directory.display()),
                e,
            )
        })?;
        let path = directory.join(STATE_FILE);
        let record = match fs::read_to_string(&path) {
            Ok(text) => Record::parse(&text).map_err(|reason| Error::File {
                path: path.clone(),
                reason,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Record::default(),
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        Ok(StateDir { path, record })
    }

    fn number(&self, key: &str) -> u32 {
        self.record
            .get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    fn save(&self) -> Result<()> {
        write_atomic(&self.path, self.record.to_text().as_bytes())
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }

    /// Increases and stores BOOTID; call once per start.
    pub fn next_boot_id(&mut self) -> Result<u32> {
        let next = next_wrapping(self.number("bootid"), BOOT_ID_MAX);
        self.record.set("bootid", next.to_string());
        self.save()?;
        Ok(next)
    }

    /// The CONFIGID for a description whose content hashes to `hash`: the stored one when
    /// the content is unchanged since it was stored, else the next one (stored).
    pub fn config_id_for(&mut self, hash: u64) -> Result<u32> {
        let (config_id, write) = self.config_id_unsaved(hash);
        if let Some(write) = write {
            write.write()?;
        }
        Ok(config_id)
    }

    /// [`StateDir::config_id_for`] without writing the file: the CONFIGID and, when it moved,
    /// what to write, so a device can announce the new value first and store it off its
    /// event loop (in order: each write holds the whole state). Were it lost, the next start
    /// moves BOOTID, after which control points read every description again anyway
    /// (UDA 1.1 section 1.2.2).
    pub fn config_id_unsaved(&mut self, hash: u64) -> (u32, Option<StateWrite>) {
        let current = self.number("configid");
        if self.record.get("description_hash") == Some(hash.to_string().as_str()) {
            return (current, None);
        }
        let next = next_wrapping(current, CONFIG_ID_MAX);
        self.record.set("configid", next.to_string());
        self.record.set("description_hash", hash.to_string());
        let write = StateWrite {
            path: self.path.clone(),
            text: self.record.to_text(),
        };
        (next, Some(write))
    }

    /// The host's UUID: `preferred` (from the backend) if given, else the DMI product UUID,
    /// else one generated on first use and kept here.
    pub fn host_uuid(&mut self, preferred: Option<Uuid>) -> Result<Uuid> {
        if let Some(uuid) = preferred.filter(|u| !u.is_nil()) {
            return Ok(uuid);
        }
        if let Some(uuid) = fs::read_to_string(DMI_PRODUCT_UUID)
            .ok()
            .and_then(|text| Uuid::parse_str(text.trim()).ok())
            .filter(|u| !u.is_nil())
        {
            return Ok(uuid);
        }
        if let Some(uuid) = self
            .record
            .get("host_uuid")
            .and_then(|t| Uuid::parse_str(t).ok())
        {
            return Ok(uuid);
        }
        let uuid = random_uuid()?;
        self.record.set("host_uuid", uuid.to_string());
        self.save()?;
        Ok(uuid)
    }
}

/// The state directory's content as it is to be written (atomically).
pub struct StateWrite {
    path: PathBuf,
    text: String,
}

impl StateWrite {
    /// Writes it (blocking: temporary file, fsync, rename, fsync of the directory).
    pub fn write(&self) -> Result<()> {
        write_atomic(&self.path, self.text.as_bytes())
            .map_err(|e| Error::io(format!("writing {}", self.path.display()), e))
    }
}

fn next_wrapping(current: u32, max: u32) -> u32 {
    if current >= max {
        1
    } else {
        current + 1
    }
}

/// Fills `bytes` from the kernel's random source without ever waiting (`/dev/urandom`): seeds,
/// SIDs and generated UUIDs, which a device needs at once, even in a guest whose kernel has
/// not gathered entropy yet (under emulation that can take minutes).
pub fn random_bytes(bytes: &mut [u8]) -> Result<()> {
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(bytes))
        .map_err(|e| Error::io("reading /dev/urandom", e))
}

/// Fills `bytes` for a secret (a token, a control key, a signature's nonce) from getrandom(2),
/// which waits until the kernel's generator is seeded rather than answer before, and works
/// without /dev in a sandbox.
pub fn secret_bytes(bytes: &mut [u8]) -> Result<()> {
    getrandom::fill(bytes).map_err(|error| {
        Error::io(
            "reading the OS's random source",
            std::io::Error::other(error.to_string()),
        )
    })
}

/// A random (version 4) UUID.
pub fn random_uuid() -> Result<Uuid> {
    let mut bytes = [0u8; 16];
    random_bytes(&mut bytes)?;
    Ok(uuid::Builder::from_random_bytes(bytes).into_uuid())
}

/// A random 64-bit seed for the engines' jitter and identifiers.
pub fn random_seed() -> Result<u64> {
    let mut bytes = [0u8; 8];
    random_bytes(&mut bytes)?;
    Ok(u64::from_ne_bytes(bytes))
}

/// `uname` fields as strings: (node name, release).
fn uname() -> (String, String) {
    // SAFETY: utsname is plain data; uname fills it and NUL-terminates every field.
    let mut names: libc::utsname = unsafe { core::mem::zeroed() };
    if unsafe { libc::uname(&mut names) } != 0 {
        return ("localhost".into(), "unknown".into());
    }
    let field = |raw: &[libc::c_char]| -> String {
        let bytes: Vec<u8> = raw
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    (field(&names.nodename), field(&names.release))
}

/// This machine's host name.
pub fn host_name() -> String {
    uname().0
}

/// The SERVER / USER-AGENT value: `Linux/<release> UPnP/1.1 xenplug/<version>`.
pub fn server_string() -> String {
    format!(
        "Linux/{} UPnP/1.1 {}/{}",
        uname().1,
        crate::consts::PRODUCT,
        crate::consts::VERSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_id_increases_across_opens_and_config_id_follows_content() {
        let dir = std::env::temp_dir().join(format!("xenplug-state-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let first = StateDir::open(&dir).unwrap().next_boot_id().unwrap();
        let mut state = StateDir::open(&dir).unwrap();
        assert_eq!(state.next_boot_id().unwrap(), first + 1);
        let a = state.config_id_for(11).unwrap();
        assert_eq!(state.config_id_for(11).unwrap(), a);
        let b = state.config_id_for(12).unwrap();
        assert_eq!(b, a + 1);
        assert_eq!(StateDir::open(&dir).unwrap().config_id_for(12).unwrap(), b);
        fs::remove_dir_all(&dir).unwrap();
    }

    /// A CONFIGID handed out unsaved is stored by its write alone, and the write holds the
    /// whole state.
    #[test]
    fn an_unsaved_config_id_is_stored_by_its_write() {
        let dir = std::env::temp_dir().join(format!("xenplug-unsaved-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut state = StateDir::open(&dir).unwrap();
        let boot = state.next_boot_id().unwrap();
        let (config_id, write) = state.config_id_unsaved(21);
        let write = write.expect("a new CONFIGID is to be stored");
        let (again, nothing) = state.config_id_unsaved(21);
        assert_eq!(again, config_id);
        assert!(nothing.is_none(), "unchanged: nothing to write");
        let stored = || fs::read_to_string(dir.join(STATE_FILE)).unwrap();
        assert!(!stored().contains("description_hash=21"), "{}", stored());
        write.write().unwrap();
        assert!(stored().contains("description_hash=21"), "{}", stored());
        let mut reopened = StateDir::open(&dir).unwrap();
        assert_eq!(reopened.config_id_for(21).unwrap(), config_id);
        assert_eq!(reopened.next_boot_id().unwrap(), boot + 1, "BOOTID kept");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ids_wrap_to_one() {
        assert_eq!(next_wrapping(BOOT_ID_MAX, BOOT_ID_MAX), 1);
        assert_eq!(next_wrapping(0, CONFIG_ID_MAX), 1);
    }

    #[test]
    fn server_string_has_the_uda_shape() {
        let server = server_string();
        assert!(
            server.starts_with("Linux/") && server.contains(" UPnP/1.1 xenplug/"),
            "{server}"
        );
    }
}
