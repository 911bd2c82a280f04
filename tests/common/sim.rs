//! The sim backend's directory: host and domain files written and read the way another program
//! would.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use super::constants::{HOST_NAME, HOST_UUID, VM_DB, VM_WEB};
use super::procs::{poll_until, read_lossy, TempDir};

/// One sim domain file's content.
#[derive(Clone, Debug)]
pub struct Domain {
    /// VM UUID.
    pub uuid: String,
    /// Name; also the file name (`<name>.domain`).
    pub name: String,
    /// running, paused, suspended or shutoff.
    pub state: String,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
}

impl Domain {
    /// A domain with 1 GiB and 2 vCPUs.
    pub fn new(uuid: &str, name: &str, state: &str) -> Domain {
        Domain {
            uuid: uuid.to_string(),
            name: name.to_string(),
            state: state.to_string(),
            memory_kib: 1_048_576,
            vcpus: 2,
        }
    }
}

/// The `--sim-dir` of one xenplug: writes and reads domain files the way another program would
/// (atomically, through a temporary name that does not end in `.domain`).
pub struct SimDir {
    dir: TempDir,
}

impl SimDir {
    /// An empty sim directory.
    pub fn new(tag: &str) -> SimDir {
        SimDir {
            dir: TempDir::new(&format!("{tag}-sim")),
        }
    }

    /// The standard fixture: host file, `web` and `db` running.
    pub fn standard(tag: &str) -> SimDir {
        let sim = SimDir::new(tag);
        sim.write_host(HOST_UUID, HOST_NAME);
        sim.write_domain(&Domain::new(VM_WEB, "web", "running"));
        sim.write_domain(&Domain::new(VM_DB, "db", "running"));
        sim
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn write_atomic(&self, file: &str, content: &str) {
        let tmp = self.path().join(format!(".{file}.tmp"));
        fs::write(&tmp, content).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::rename(&tmp, self.path().join(file)).expect("rename sim file into place");
    }

    /// Write `host` (uuid=, name=).
    pub fn write_host(&self, uuid: &str, name: &str) {
        self.write_atomic("host", &format!("uuid={uuid}\nname={name}\n"));
    }

    /// Write `host` (uuid=, name=) with `extra` key=value lines, e.g. `("delay_ms", "20000")`
    /// to make every lifecycle operation take that long.
    pub fn write_host_with(&self, uuid: &str, name: &str, extra: &[(&str, &str)]) {
        let mut text = format!("uuid={uuid}\nname={name}\n");
        for (key, value) in extra {
            text.push_str(&format!("{key}={value}\n"));
        }
        self.write_atomic("host", &text);
    }

    /// Write `<name>.domain`.
    pub fn write_domain(&self, domain: &Domain) {
        self.write_domain_as(&domain.name, domain);
    }

    /// Write `<file>.domain` with `domain`'s content: with a `name=` other than `file`, a
    /// domain renamed in place.
    pub fn write_domain_as(&self, file: &str, domain: &Domain) {
        self.write_atomic(
            &format!("{file}.domain"),
            &format!(
                "uuid={}\nname={}\nstate={}\nmemory_kib={}\nvcpus={}\n",
                domain.uuid, domain.name, domain.state, domain.memory_kib, domain.vcpus
            ),
        );
    }

    /// Remove `<name>.domain`.
    pub fn remove_domain(&self, name: &str) {
        fs::remove_file(self.path().join(format!("{name}.domain"))).expect("remove domain file");
    }

    /// The key=value pairs of `<name>.domain` (empty if missing).
    pub fn read_domain(&self, name: &str) -> BTreeMap<String, String> {
        read_lossy(&self.path().join(format!("{name}.domain")))
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// Wait until `<name>.domain` says `state=<state>`; panics with the file's content if not.
    pub fn expect_state(&self, name: &str, state: &str, timeout: Duration) {
        let seen = poll_until(timeout, || {
            (self.read_domain(name).get("state").map(String::as_str) == Some(state)).then_some(())
        });
        assert!(
            seen.is_some(),
            "sim file {name}.domain never said state={state} within {timeout:?}; it holds {:?}",
            self.read_domain(name)
        );
    }
}
