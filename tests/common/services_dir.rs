//! An owner's `--services` directory for the VM advertiser: service folders, a small SCPD
//! builder, and changes made atomically.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::procs::{unique, TempDir};

/// One service folder of an owner's services directory.
#[derive(Clone, Debug)]
pub struct ServiceFiles {
    /// `scpd.xml`.
    pub scpd: String,
    /// `handler` (a script with its `#!` line).
    pub handler: String,
    /// Mode of `handler`.
    pub handler_mode: u32,
    /// `state/<Variable>` files: (variable, content).
    pub state: Vec<(String, String)>,
}

impl ServiceFiles {
    /// An SCPD and an executable handler, no state files.
    pub fn new(scpd: &str, handler: &str) -> ServiceFiles {
        ServiceFiles {
            scpd: scpd.to_string(),
            handler: handler.to_string(),
            handler_mode: 0o755,
            state: Vec::new(),
        }
    }

    /// With a state file.
    pub fn state(mut self, variable: &str, value: &str) -> ServiceFiles {
        self.state.push((variable.to_string(), value.to_string()));
        self
    }

    /// Write the folder at `dir` (created).
    fn write(&self, dir: &Path) {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        fs::write(dir.join("scpd.xml"), &self.scpd).expect("write scpd.xml");
        let handler = dir.join("handler");
        fs::write(&handler, &self.handler).expect("write handler");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&handler, fs::Permissions::from_mode(self.handler_mode))
            .expect("chmod handler");
        if !self.state.is_empty() {
            fs::create_dir_all(dir.join("state")).expect("create state/");
            for (variable, value) in &self.state {
                fs::write(dir.join("state").join(variable), value).expect("write state file");
            }
        }
    }
}

/// A small SCPD builder: every argument gets its own string `A_ARG_TYPE_<Arg>` variable.
#[derive(Clone, Debug, Default)]
pub struct Scpd {
    actions: Vec<(String, Vec<String>, Vec<String>)>,
    evented: Vec<String>,
}

impl Scpd {
    /// No actions, no variables.
    pub fn new() -> Scpd {
        Scpd::default()
    }

    /// An action with in- and out-arguments.
    pub fn action(mut self, name: &str, ins: &[&str], outs: &[&str]) -> Scpd {
        self.actions.push((
            name.to_string(),
            ins.iter().map(|s| s.to_string()).collect(),
            outs.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// An evented string variable.
    pub fn evented(mut self, variable: &str) -> Scpd {
        self.evented.push(variable.to_string());
        self
    }

    /// The document.
    pub fn xml(&self) -> String {
        let mut xml = String::from(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
             <scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\n\
             <specVersion><major>1</major><minor>1</minor></specVersion>\n<actionList>\n",
        );
        let mut arg_vars = BTreeSet::new();
        for (name, ins, outs) in &self.actions {
            xml.push_str(&format!("<action><name>{name}</name><argumentList>"));
            for (direction, args) in [("in", ins), ("out", outs)] {
                for arg in args {
                    xml.push_str(&format!(
                        "<argument><name>{arg}</name><direction>{direction}</direction>\
                         <relatedStateVariable>A_ARG_TYPE_{arg}</relatedStateVariable></argument>"
                    ));
                    arg_vars.insert(arg.clone());
                }
            }
            xml.push_str("</argumentList></action>\n");
        }
        xml.push_str("</actionList>\n<serviceStateTable>\n");
        for variable in &self.evented {
            xml.push_str(&format!(
                "<stateVariable sendEvents=\"yes\"><name>{variable}</name>\
                 <dataType>string</dataType></stateVariable>\n"
            ));
        }
        for arg in arg_vars {
            xml.push_str(&format!(
                "<stateVariable sendEvents=\"no\"><name>A_ARG_TYPE_{arg}</name>\
                 <dataType>string</dataType></stateVariable>\n"
            ));
        }
        xml.push_str("</serviceStateTable>\n</scpd>\n");
        xml
    }
}

/// An owner's `--services` directory. Folders are added the way a careful owner (or a
/// package manager) does it: written under a staging folder on the same file system, then
/// renamed into place, so the advertiser never sees half a service.
pub struct ServicesDir {
    dir: TempDir,
}

impl ServicesDir {
    /// An empty services directory.
    pub fn new(tag: &str) -> ServicesDir {
        let dir = TempDir::new(&format!("{tag}-svc"));
        fs::create_dir_all(dir.path().join("services")).expect("create services/");
        fs::create_dir_all(dir.path().join("staging")).expect("create staging/");
        ServicesDir { dir }
    }

    /// The directory given as `--services`.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("services")
    }

    /// A copy of the example services shipped in packaging/services.
    pub fn packaging_examples(tag: &str) -> ServicesDir {
        let services = ServicesDir::new(tag);
        let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("packaging/services");
        copy_tree(&source, &services.path());
        services
    }

    fn staged(&self) -> PathBuf {
        self.dir.path().join("staging").join(unique().to_string())
    }

    /// Add service folder `name` atomically.
    pub fn add_service(&self, name: &str, files: &ServiceFiles) {
        let staged = self.staged();
        files.write(&staged);
        let target = self.path().join(name);
        fs::rename(&staged, &target)
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", target.display()));
    }

    /// Add embedded device folder `devices/<device>` with these services, atomically.
    pub fn add_device(&self, device: &str, services: &[(&str, &ServiceFiles)]) {
        let staged = self.staged();
        fs::create_dir_all(&staged).expect("create staged device");
        for (name, files) in services {
            files.write(&staged.join(name));
        }
        let devices = self.path().join("devices");
        fs::create_dir_all(&devices).expect("create devices/");
        let target = devices.join(device);
        fs::rename(&staged, &target)
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", target.display()));
    }

    /// Remove a folder (`Name` or `devices/Dev`) atomically: renamed out, then deleted.
    pub fn remove(&self, relative: &str) {
        let staged = self.staged();
        fs::rename(self.path().join(relative), &staged)
            .unwrap_or_else(|e| panic!("rename {relative} out of the services dir: {e}"));
        fs::remove_dir_all(&staged).expect("delete removed service");
    }

    /// Path of `state/<variable>` of service folder `service` (`Name` or `devices/Dev/Name`).
    pub fn state_path(&self, service: &str, variable: &str) -> PathBuf {
        self.path().join(service).join("state").join(variable)
    }

    /// Rewrite a state file in place (truncate and write, as `echo v >state/Var` does).
    pub fn write_state_in_place(&self, service: &str, variable: &str, value: &str) {
        let path = self.state_path(service, variable);
        fs::write(&path, value).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Replace a state file atomically (write a temporary file, rename it over).
    pub fn write_state_atomic(&self, service: &str, variable: &str, value: &str) {
        let path = self.state_path(service, variable);
        let tmp = self.staged();
        fs::write(&tmp, value).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        fs::rename(&tmp, &path).unwrap_or_else(|e| panic!("rename {}: {e}", path.display()));
    }
}

/// Copy a directory tree, keeping file modes.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("create {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            // fs::copy copies the permission bits too.
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}
