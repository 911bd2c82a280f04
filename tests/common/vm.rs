//! The VM advertiser (`xenplug advertise vm`): its options, starting it, and the GUPnP peer
//! against its root device.

use std::path::{Path, PathBuf};
use std::process::Output;

use super::binary::{xenplug_bin, Xenplug};
use super::constants::{DEVICE_VM, WAIT};
use super::netns::Netns;
use super::peers::{gupnp, gupnp_spawn};
use super::procs::{run_bounded, Proc, TempDir};

/// The VM UUID the VM tests give with `--uuid`.
pub const VM_SELF: &str = "7d1e2f30-aaaa-4b5c-9d8e-0000000000b1";

/// Default service type of an owner service folder `name`.
pub fn vm_service_type(name: &str) -> String {
    format!("urn:xenplug-org:service:{name}:1")
}

/// Default device type of an owner subdevice folder `name`.
pub fn vm_device_type(name: &str) -> String {
    format!("urn:xenplug-org:device:{name}:1")
}

/// Options for starting `xenplug advertise vm`.
#[derive(Clone, Debug)]
pub struct VmOptions {
    /// `--iface` (always explicit).
    pub iface: String,
    /// `--uuid`; `None` leaves it out (the guest's own sources are read).
    pub uuid: Option<String>,
    /// `--services`.
    pub services: PathBuf,
    /// `--handler-timeout`, if set.
    pub handler_timeout: Option<u64>,
    /// `--name`, if set.
    pub name: Option<String>,
    /// `--max-age`, if set.
    pub max_age: Option<u32>,
    /// `--control-key FILE`, if set: every owner action then needs a signature made with it.
    pub control_key: Option<PathBuf>,
}

impl VmOptions {
    /// `--iface IFACE --uuid VM_SELF --services DIR`.
    pub fn new(iface: &str, services: &Path) -> VmOptions {
        VmOptions {
            iface: iface.to_string(),
            uuid: Some(VM_SELF.to_string()),
            services: services.to_path_buf(),
            handler_timeout: None,
            name: None,
            max_age: None,
            control_key: None,
        }
    }

    /// The arguments after `xenplug`, with `--state-dir state`.
    fn args(&self, state: &Path) -> Vec<String> {
        let mut args: Vec<String> = ["advertise", "vm", "--iface", &self.iface]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if let Some(uuid) = &self.uuid {
            args.extend(["--uuid".to_string(), uuid.clone()]);
        }
        args.extend([
            "--services".to_string(),
            self.services.display().to_string(),
        ]);
        args.extend(["--state-dir".to_string(), state.display().to_string()]);
        if let Some(seconds) = self.handler_timeout {
            args.extend(["--handler-timeout".to_string(), seconds.to_string()]);
        }
        if let Some(name) = &self.name {
            args.extend(["--name".to_string(), name.clone()]);
        }
        if let Some(key) = &self.control_key {
            args.extend(["--control-key".to_string(), key.display().to_string()]);
        }
        if let Some(max_age) = self.max_age {
            args.extend(["--max-age".to_string(), max_age.to_string()]);
        }
        args
    }
}

impl Xenplug {
    /// Start `xenplug advertise vm` in `ns`; waits for the `description at` line.
    pub fn start_vm(ns: &Netns, options: &VmOptions) -> Xenplug {
        let state = TempDir::new("vm-state");
        let args = options.args(state.path());
        Xenplug::launch(ns, &xenplug_bin(), &args, state)
    }
}

/// Run `xenplug advertise vm` to completion (bounded by [`WAIT`]) with the guest's UUID
/// sources hidden: inside a private mount namespace, /sys/hypervisor/uuid and
/// /sys/class/dmi/id/product_uuid are covered by /dev/null where they exist, so the result
/// is the same on a Xen guest, a VM with SMBIOS, or bare metal.
pub fn run_vm_without_identity(ns: &Netns, options: &VmOptions) -> Output {
    let state = TempDir::new("vm-state");
    let mut args: Vec<String> = vec![
        "-m".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        "for f in /sys/hypervisor/uuid /sys/class/dmi/id/product_uuid; do \
         if [ -e \"$f\" ]; then mount --bind /dev/null \"$f\" || exit 97; fi; done; \
         exec \"$@\""
            .into(),
        "sh".into(),
        xenplug_bin().display().to_string(),
    ];
    args.extend(options.args(state.path()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut command = ns.command("unshare", &refs);
    command.env("XENPLUG_LOG", "debug");
    run_bounded(command, WAIT, "xenplug advertise vm (identity hidden)")
}

/// The GUPnP peer against the VirtualMachine root device `uuid:<vm>`.
pub fn vm_gupnp(ns: &Netns, iface: &str, vm: &str, args: &[&str]) -> Output {
    let udn = format!("uuid:{vm}");
    let mut full = vec!["--device-type", DEVICE_VM, "--udn", &udn];
    full.extend_from_slice(args);
    gupnp(ns, iface, &full)
}

/// Start the GUPnP peer against the VirtualMachine root device `uuid:<vm>`.
pub fn vm_gupnp_spawn(ns: &Netns, iface: &str, vm: &str, args: &[&str]) -> Proc {
    let udn = format!("uuid:{vm}");
    let mut full = vec!["--device-type", DEVICE_VM, "--udn", &udn];
    full.extend_from_slice(args);
    gupnp_spawn(ns, iface, &full)
}
