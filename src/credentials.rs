//! Credentials on disk: the access file (identities, roles, token hashes), control key files,
//! bearer token files, and making new tokens and keys. Blocking file I/O only; what the
//! credentials allow is decided in [`crate::engine::access`].

use crate::engine::access::{AccessList, Failures, Identity, Refusal, Role, FAILURES_PER_SOURCE};
use crate::error::{Error, Result};
use crate::net::http::Request;
use crate::wire::signature::{hex, ControlKey, KEY_BYTES};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes of a bearer token (256 bits from the OS's random source).
const TOKEN_BYTES: usize = 32;
/// Largest access, key or token file read.
const CREDENTIAL_FILE_MAX: u64 = 256 * 1024;
/// How often, at most, an access file is looked at for changes (on use, never on a timer).
const ACCESS_RECHECK: Duration = Duration::from_secs(1);

/// A new bearer token: 32 random bytes as 64 lowercase hexadecimal digits.
pub fn new_token() -> Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    crate::state::secret_bytes(&mut bytes)?;
    Ok(hex(&bytes))
}

/// A new random control key.
pub fn new_key() -> Result<ControlKey> {
    let mut bytes = [0u8; KEY_BYTES];
    crate::state::secret_bytes(&mut bytes)?;
    Ok(ControlKey::from_bytes(bytes))
}

fn read_small(path: &Path, what: &str) -> Result<String> {
    let metadata =
        fs::metadata(path).map_err(|e| Error::io(format!("{what} {}", path.display()), e))?;
    if metadata.len() > CREDENTIAL_FILE_MAX {
        return Err(Error::config(format!(
            "{what} {}: larger than {CREDENTIAL_FILE_MAX} bytes",
            path.display()
        )));
    }
    fs::read_to_string(path).map_err(|e| Error::io(format!("{what} {}", path.display()), e))
}

/// Reads a control key file: one line of 64 hexadecimal digits. Refused when the key is of
/// another length, or when the file is readable or writable by others than its owner (a
/// key anyone on the host can read proves nothing).
pub fn read_key_file(path: &Path) -> Result<ControlKey> {
    let text = read_small(path, "control key")?;
    let mode = fs::metadata(path)
        .map_err(|e| Error::io(format!("control key {}", path.display()), e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(Error::config(format!(
            "control key {}: mode {:o} lets others read it; chmod 600 it",
            path.display(),
            mode & 0o777
        )));
    }
    ControlKey::from_hex(&text).map_err(|e| Error::config(format!("{}: {e}", path.display())))
}

/// Writes a new random control key into a new file `path`, mode 0600. An existing file is
/// never overwritten.
pub fn write_new_key(path: &Path) -> Result<()> {
    let key = new_key()?;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    file.write_all(format!("{}\n", key.to_hex()).as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Reads a bearer token file: its first line, surrounding white space removed.
pub fn read_token_file(path: &Path) -> Result<String> {
    let text = read_small(path, "token file")?;
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    if token.is_empty() {
        return Err(Error::config(format!(
            "token file {}: empty",
            path.display()
        )));
    }
    Ok(token)
}

/// Reads and parses an access file; a malformed line refuses the whole file, naming its path
/// and line.
pub fn read_access_file(path: &Path) -> Result<AccessList> {
    let text = read_small(path, "access file")?;
    AccessList::parse(&text)
        .map_err(|e| Error::config(format!("access file {}: {e}", path.display())))
}

/// A warning when others than the owner (and its group) may read or write the access file.
pub fn access_file_warning(path: &Path) -> Option<String> {
    let mode = fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o006 != 0).then(|| {
        format!(
            "access file {}: mode {:o} lets every user of this host read or change it",
            path.display(),
            mode & 0o777
        )
    })
}

/// Appends an identity to the access file `path` (created 0600 when absent) and returns the
/// new token, which is printed once and stored nowhere. Refused when the file does not parse
/// or already names `name`.
pub fn add_identity(path: &Path, name: &str, role: &Role) -> Result<String> {
    let existing = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => return Err(Error::io(format!("access file {}", path.display()), error)),
    };
    let list = AccessList::parse(&existing)
        .map_err(|e| Error::config(format!("access file {}: {e}", path.display())))?;
    if list
        .identities()
        .iter()
        .any(|identity| identity.name == name)
    {
        return Err(Error::config(format!(
            "access file {} already has {name}",
            path.display()
        )));
    }
    let token = new_token()?;
    let line = AccessList::line(name, role, &token);
    // The new file must still parse as a whole (a name the format refuses fails here).
    let mut text = existing.clone();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    AccessList::parse(&text).map_err(|e| Error::config(format!("{name} {role}: {}", e.reason)))?;
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let separator = if !existing.is_empty() && !existing.ends_with('\n') {
        "\n"
    } else {
        ""
    };
    file.write_all(format!("{separator}{line}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    Ok(token)
}

/// What identifies one version of a file: a change of any of these means it was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    device: u64,
    inode: u64,
    size: u64,
    modified: i64,
    modified_nanos: i64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = fs::metadata(path).ok()?;
    Some(FileStamp {
        device: metadata.dev(),
        inode: metadata.ino(),
        size: metadata.size(),
        modified: metadata.mtime(),
        modified_nanos: metadata.mtime_nsec(),
    })
}

/// An access file kept up to date: re-read when it changes (looked at, at most once a second,
/// when it is used). A version that does not parse is refused with its line number and the
/// previous one kept; the refusal is logged once per version.
#[derive(Debug)]
pub struct AccessFile {
    path: PathBuf,
    list: AccessList,
    stamp: Option<FileStamp>,
    /// The stamp of a version that was refused (logged once).
    refused: Option<FileStamp>,
    checked: Instant,
}

impl AccessFile {
    /// Reads `path`; fails when it cannot be read or does not parse (a role does not start
    /// without its access file). Warns when others may read or write it.
    pub fn open(path: &Path) -> Result<AccessFile> {
        let list = read_access_file(path)?;
        if let Some(warning) = access_file_warning(path) {
            log::warn!("{warning}");
        }
        log::info!(
            "access file {}: {} identities",
            path.display(),
            list.identities().len()
        );
        Ok(AccessFile {
            path: path.to_path_buf(),
            list,
            stamp: stamp(path),
            refused: None,
            checked: Instant::now(),
        })
    }

    /// The identities, re-read first if the file changed since it was last looked at.
    pub fn current(&mut self, now: Instant) -> &AccessList {
        if now.saturating_duration_since(self.checked) >= ACCESS_RECHECK {
            self.checked = now;
            self.reload();
        }
        &self.list
    }

    /// The identities, re-read first if the file changed (looked at now, whenever the last
    /// look was): for a token that just failed, which may be one added a moment ago.
    pub fn refreshed(&mut self, now: Instant) -> &AccessList {
        self.checked = now;
        self.reload();
        &self.list
    }

    fn reload(&mut self) {
        let current = stamp(&self.path);
        if current == self.stamp || (current.is_some() && current == self.refused) {
            return;
        }
        match read_access_file(&self.path) {
            Ok(list) => {
                log::info!(
                    "access file {} changed: {} identities",
                    self.path.display(),
                    list.identities().len()
                );
                self.list = list;
                self.stamp = current;
                self.refused = None;
            }
            Err(error) => {
                log::error!("{error}; keeping the previous identities");
                self.refused = current;
            }
        }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The token of an `Authorization: Bearer TOKEN` header, if the request has one.
pub fn bearer(request: &Request) -> Option<&str> {
    let value = request.header("Authorization")?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The door of an API that takes bearer tokens: the access file and the failed attempts per
/// source. `server` names the API in the log (`read API`, `console serve`).
#[derive(Debug)]
pub struct Gate {
    access: AccessFile,
    failures: Failures,
    server: &'static str,
}

impl Gate {
    /// A gate for `server` with `access`'s identities.
    pub fn new(access: AccessFile, server: &'static str) -> Gate {
        Gate {
            access,
            failures: Failures::new(),
            server,
        }
    }

    /// Reads the access file again now (SIGHUP) and logs how many identities are in use: the
    /// new ones, or the previous ones when the new version is refused (logged once).
    pub fn reload(&mut self) {
        let count = self.access.refreshed(Instant::now()).identities().len();
        log::info!(
            "{}: SIGHUP: access file {} read again, {count} identities in use",
            self.server,
            self.access.path().display()
        );
    }

    /// The identity whose token `request` carries, with the token; else the refusal: 401 for
    /// no token or an unknown one, 429 once its source failed too often (logged once as it
    /// crosses the limit). A token that fails is tried once more against the file as it is
    /// now: it may have been added a moment ago.
    pub fn authenticate(
        &mut self,
        request: &Request,
    ) -> std::result::Result<(Identity, String), Refusal> {
        let source = request.peer.ip();
        let now = crate::net::unix_now();
        let too_many = Refusal {
            status: 429,
            reason: "too many failed authentications from this address; try again later",
        };
        if self.failures.blocked(now, source) {
            return Err(too_many);
        }
        let token = bearer(request);
        let found = token.and_then(|token| {
            let checked = Instant::now();
            self.access
                .current(checked)
                .authenticate(token)
                .cloned()
                .or_else(|| self.access.refreshed(checked).authenticate(token).cloned())
        });
        if let (Some(identity), Some(token)) = (found, token) {
            return Ok((identity, token.to_string()));
        }
        let (limited, crossed) = self.failures.fail(now, source);
        if crossed {
            log::warn!(
                "{}: {source} failed to authenticate {FAILURES_PER_SOURCE} times within a \
                 minute; answering 429 until the minute is over",
                self.server
            );
        } else {
            log::debug!(
                "{}: {source}: no valid token for {}",
                self.server,
                request.path
            );
        }
        if limited {
            Err(too_many)
        } else {
            Err(Refusal {
                status: 401,
                reason: "a valid bearer token is required",
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Scratch(PathBuf);

    impl Scratch {
        fn new(test: &str) -> Scratch {
            let path = std::env::temp_dir()
                .join(format!("xenplug-credentials-{test}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn keys_are_written_private_and_read_back_only_when_private() {
        let scratch = Scratch::new("keys");
        let path = scratch.0.join("control.key");
        write_new_key(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let key = read_key_file(&path).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap().trim(), key.to_hex());
        assert!(write_new_key(&path).is_err(), "never overwritten");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(read_key_file(&path)
            .unwrap_err()
            .to_string()
            .contains("chmod 600"));
        let short = scratch.0.join("short.key");
        fs::write(&short, "0011\n").unwrap();
        fs::set_permissions(&short, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key_file(&short)
            .unwrap_err()
            .to_string()
            .contains("64"));
        assert_ne!(new_key().unwrap(), new_key().unwrap());
    }

    #[test]
    fn identities_are_added_once_with_a_fresh_token() {
        let scratch = Scratch::new("add");
        let path = scratch.0.join("access");
        let token = add_identity(&path, "alice", &Role::Admin).unwrap();
        assert_eq!(token.len(), 64);
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let other = add_identity(&path, "acme", &Role::Tenant("acme".into())).unwrap();
        assert_ne!(token, other);
        assert!(add_identity(&path, "alice", &Role::Viewer).is_err());
        assert!(add_identity(&path, "bad name", &Role::Viewer).is_err());
        let list = read_access_file(&path).unwrap();
        assert_eq!(list.identities().len(), 2);
        assert_eq!(list.authenticate(&token).unwrap().name, "alice");
        assert!(
            !fs::read_to_string(&path).unwrap().contains(&token),
            "token not stored"
        );
        assert!(access_file_warning(&path).is_none());
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        assert!(access_file_warning(&path).unwrap().contains("644"));
    }

    #[test]
    fn an_access_file_is_reloaded_when_it_changes_and_a_bad_version_is_refused() {
        let scratch = Scratch::new("reload");
        let path = scratch.0.join("access");
        let alice = add_identity(&path, "alice", &Role::Admin).unwrap();
        let mut file = AccessFile::open(&path).unwrap();
        let later = |n: u64| Instant::now() + Duration::from_secs(n);
        assert!(file.current(later(2)).authenticate(&alice).is_some());
        let bob = add_identity(&path, "bob", &Role::Viewer).unwrap();
        assert!(file.current(later(4)).authenticate(&bob).is_some());
        fs::write(&path, "broken line\n").unwrap();
        let kept = file.current(later(6));
        assert!(
            kept.authenticate(&bob).is_some(),
            "the previous identities stay"
        );
        fs::write(&path, "# everyone removed\n").unwrap();
        assert!(file.current(later(8)).authenticate(&alice).is_none());
        fs::write(&path, "oops\n").unwrap();
        assert!(AccessFile::open(&path)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }

    #[test]
    fn token_files_hold_one_line() {
        let scratch = Scratch::new("token");
        let path = scratch.0.join("token");
        fs::write(&path, "  abc123  \nrest\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "abc123");
        fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path).is_err());
    }
}
