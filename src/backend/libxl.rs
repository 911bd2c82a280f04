//! The `libxl` backend: the Xen host this process runs in (dom0), through libxenlight.
//!
//! Domains are what `libxl_list_domain` reports, except dom0 itself (domid 0, advertised as
//! the host) and any domain whose name cannot be read yet (`xl create` is still building it:
//! it is listed at the next read, so that nothing is ever announced under a placeholder
//! name); then the domains suspended to disk (see [`super::saved`]), listed as suspended; then
//! the domains defined by xl config files that are neither (see [`super::xl::config`]), listed
//! as shut off. Pause, Resume, Destroy are libxl calls; Start is `xl create FILE`, since only xl parses
//! config files. Errors carry libxl's call, reason and code (`libxl_domain_pause: no such
//! domain (-21)`) or xl's error line; they reach the SOAP caller as UPnP 501 (or 701 when the
//! domain's state rules the operation out).
//!
//! Suspend is what XenAPI and xendomains mean by it: `xl save DOMID FILE` writes the domain's
//! memory into the save directory and destroys the domain; Resume of a saved domain runs
//! `xl restore FILE` (same UUID) and removes the image once that succeeded. A domain that
//! suspended itself in place (shutdown reason suspend, still in Xen) is resumed with
//! `libxl_domain_resume`.
//!
//! The decisions (run state, what each operation does in each state, how live, saved and
//! defined domains merge) are pure functions here, built and tested without Xen, and shared
//! with the xl backend ([`super::xl`]); only `LibxlBackend`, which holds the libxl context,
//! needs the `libxl` feature. Blocking: the net layer calls it off the event loop. Must not
//! spawn anything but `xl`.
//!
//! A libxl build drives one Xen release: libxl's ABI and the hypervisor's domctl interface
//! change with each, and a binary linked against libxl 4.17 starts on a 4.20 hypervisor
//! without failing by itself. So `LibxlBackend::open` compares the running release (sysfs,
//! then libxl's own version call) with the one linked (`xen_ffi::safe::BUILT_FOR`) and
//! refuses any other `major.minor` with one line naming `--backend xl`.
//!
//! Changes are learned through xenstore watches on a connection of xenplug's own
//! ([`super::watch`]), never through the context's.
//!
//! The static dom0 build links Debian's libxenstore.a, which is built without threads (no
//! reader thread, no locks: only the shared library has them). So the context is used by one
//! thread at a time, and every operation that waits for the guest through a xenstore watch
//! goes through `xl`, whose shared libxenstore delivers watches: Shutdown (`xl shutdown -F`),
//! Reboot (`xl reboot`) and Suspend (`xl save`). Measured under QEMU: with libxl's own calls,
//! a poll running beside the wait made libxl abort the whole process ("DISASTER in event loop:
//! cannot check/read watches: Bad file descriptor"); alone, the wait never saw the watch fire:
//! `libxl_domain_suspend_only` ran into its 60 s timeout (the guest had suspended) and left the
//! context's xenstore handle broken, so every later call that touches xenstore failed
//! (`libxl_domain_resume`, `libxl_domain_destroy`: "Bad file descriptor"). The calls used
//! here do not wait on watches: `libxl_domain_resume` of a domain suspended in place returns
//! within milliseconds.

use super::saved::SavedDomain;
use super::xl::config::DefinedDomain;
use super::{BackendError, Domain, Operation, RunState};
use std::path::PathBuf;
use uuid::Uuid;
use xen_ffi::safe::{DomainInfo, ShutdownReason};

/// What `--backend libxl` says in a binary built without the `libxl` feature.
pub const NOT_BUILT: &str = "this xenplug was built without the libxl backend (the default \
     musl build); the dom0 build has it: packaging/build-dom0.sh (x86_64-unknown-linux-gnu \
     with --features libxl)";

/// A domain's run state from libxl's flags. Precedence, first match wins:
///
/// 1. `dying`: Dying. The domain is being torn down, whatever else is set.
/// 2. `shutdown`, by reason: suspend is Suspended (resumable in place); crash and watchdog are
///    Crashed; poweroff, reboot, soft reset and unknown are Shutoff (the domain still exists
///    until the toolstack destroys or restarts it).
/// 3. `paused`: Paused (toolstack pause; the guest cannot run).
/// 4. `running`: Running.
/// 5. `blocked`: Blocked. A domain with no flag set (runnable, waiting for a CPU) is Running.
///
/// Shutdown before paused, so that a suspended domain that is also paused still resumes with
/// `libxl_domain_resume` rather than an unpause that would not wake it.
pub fn run_state(info: &DomainInfo) -> RunState {
    if info.dying {
        return RunState::Dying;
    }
    if info.shutdown {
        return match info.shutdown_reason {
            ShutdownReason::Suspend => RunState::Suspended,
            ShutdownReason::Crash | ShutdownReason::Watchdog => RunState::Crashed,
            ShutdownReason::Poweroff
            | ShutdownReason::Reboot
            | ShutdownReason::SoftReset
            | ShutdownReason::Unknown => RunState::Shutoff,
        };
    }
    if info.paused {
        RunState::Paused
    } else if info.blocked && !info.running {
        RunState::Blocked
    } else {
        RunState::Running
    }
}

/// The Domain for a libxl record under `name`, `None` for dom0 (the host itself). A domain
/// whose name cannot be read is not listed at all (see [`listed_name`]).
pub fn live_domain(info: &DomainInfo, name: String) -> Option<Domain> {
    if info.domid == 0 {
        return None;
    }
    Some(Domain {
        uuid: Uuid::from_bytes(info.uuid),
        name,
        state: run_state(info),
        memory_kib: info.memory_kib,
        vcpus: info.vcpus_online,
    })
}

/// The name a live domain is listed under: the one libxl reads from xenstore. `None` (not
/// listed this time) when it has none: `xl create` has not written it yet, or the domain is
/// being torn down. Never a placeholder: the tracker would journal the domain under it.
pub fn listed_name(read: Option<String>) -> Option<String> {
    read.filter(|name| !name.is_empty())
}

/// What a saved domain looks like: Suspended, with what its sidecar says.
pub fn saved_domain(saved: &SavedDomain) -> Domain {
    Domain {
        uuid: saved.uuid,
        name: saved.name.clone(),
        state: RunState::Suspended,
        memory_kib: saved.memory_kib,
        vcpus: saved.vcpus,
    }
}

/// The sidecar of a live domain about to be saved into `image` (with `record` beside it):
/// libxl's figures, `name`, and the config file that defines it, when one does.
pub fn saved_record(
    info: &DomainInfo,
    name: String,
    config: Option<PathBuf>,
    image: PathBuf,
    record: PathBuf,
) -> SavedDomain {
    SavedDomain {
        uuid: Uuid::from_bytes(info.uuid),
        name,
        memory_kib: info.memory_kib,
        vcpus: info.vcpus_online,
        config,
        image,
        record,
    }
}

/// What to do with the image and sidecar of an `xl save` that failed: remove them when the
/// domain is still there (xl resumed it, or it never stopped: the image is partial or
/// useless), keep them when it is gone (the image may be all that is left of it; a Resume
/// tells whether it restores).
pub fn keep_after_failed_save(domain_still_there: bool) -> bool {
    !domain_still_there
}

/// What a defined, not running domain looks like: Shutoff, with the memory and vCPUs its file
/// gives (0 MiB and 1 vCPU when it does not say).
pub fn defined_domain(defined: &DefinedDomain) -> Domain {
    Domain {
        uuid: defined.uuid,
        name: defined.name.clone(),
        state: RunState::Shutoff,
        memory_kib: defined.memory_mib.unwrap_or(0).saturating_mul(1024),
        vcpus: defined.vcpus.unwrap_or(1),
    }
}

/// Every domain: the live ones, then the saved ones that are not live (a domain being saved
/// or restored already has its image), then the defined ones that are neither (a running or
/// saved domain's UUID hides its config file); each UUID once, sorted by name then UUID so the
/// advertised order does not change while nothing else does.
pub fn merge(live: Vec<Domain>, saved: &[SavedDomain], defined: &[DefinedDomain]) -> Vec<Domain> {
    let mut domains: Vec<Domain> = Vec::with_capacity(live.len() + saved.len() + defined.len());
    for domain in live {
        if !domains.iter().any(|d| d.uuid == domain.uuid) {
            domains.push(domain);
        }
    }
    for image in saved {
        if !domains.iter().any(|d| d.uuid == image.uuid) {
            domains.push(saved_domain(image));
        }
    }
    for config in defined {
        if !domains.iter().any(|d| d.uuid == config.uuid) {
            domains.push(defined_domain(config));
        }
    }
    domains.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
    domains
}

/// Where a UUID was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A domain Xen runs (it has a domid), in this state.
    Live {
        /// Its domid.
        domid: u32,
        /// Its run state.
        state: RunState,
    },
    /// Saved to disk by Suspend, not running.
    Saved(SavedDomain),
    /// Only a config file defines it.
    Defined(PathBuf),
}

/// What to do for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `xl create FILE`.
    Create(PathBuf),
    /// `libxl_domain_pause`
    Pause(u32),
    /// `libxl_domain_unpause`
    Unpause(u32),
    /// `libxl_domain_resume` with suspend_cancel 1 (a domain suspended in memory).
    ResumeSuspended(u32),
    /// `xl shutdown -F DOMID`: the guest is asked, or gets the power button if it has no PV
    /// drivers.
    Shutdown(u32),
    /// `xl reboot DOMID`
    Reboot(u32),
    /// `xl save DOMID FILE` into the save directory, sidecar first.
    Save(u32),
    /// `xl restore FILE`, then the image and sidecar are removed.
    Restore(SavedDomain),
    /// Remove a saved domain's image and sidecar (Destroy of a saved domain: its memory is
    /// thrown away, as XenAPI's hard shutdown of a suspended VM does).
    Discard(SavedDomain),
    /// `libxl_domain_destroy`
    Destroy(u32),
    /// Already done (pausing a paused domain, resuming a running one).
    Nothing,
}

/// What `operation` does to `target`. Blocked counts as Running. Refused with InvalidState:
/// anything but Start and Destroy on a domain that is not running; Suspend of a paused domain
/// (the guest could not answer; xl would wait for it until its timeout); Reboot of a paused
/// one; Start of a saved domain (refused with a word to Resume it: starting afresh would
/// leave the image to be restored over a disk that moved on). A domain shut down but not yet
/// destroyed (Shutoff with a domid) must be destroyed before it can start again.
pub fn plan(operation: Operation, target: &Target) -> Result<Step, BackendError> {
    use RunState::*;
    let (domid, state) = match target {
        Target::Defined(path) => {
            return match operation {
                Operation::Start => Ok(Step::Create(path.clone())),
                _ => Err(BackendError::InvalidState {
                    operation,
                    state: Shutoff,
                }),
            }
        }
        Target::Saved(saved) => {
            return match operation {
                Operation::Resume => Ok(Step::Restore(saved.clone())),
                Operation::Destroy => Ok(Step::Discard(saved.clone())),
                Operation::Suspend => Ok(Step::Nothing),
                Operation::Start => Err(BackendError::Refused {
                    code: "suspended to disk".to_string(),
                    detail: format!(
                        "{} is saved in {}: Resume it (or Destroy it to discard the image)",
                        saved.name,
                        saved.image.display()
                    ),
                    invalid_state: true,
                }),
                _ => Err(BackendError::InvalidState {
                    operation,
                    state: Suspended,
                }),
            }
        }
        Target::Live { domid, state } => (*domid, *state),
    };
    let step = match (operation, state) {
        (Operation::Start, Shutoff) => {
            return Err(BackendError::Failed(format!(
                "the domain is shut down but still exists (domid {domid}): Destroy it first"
            )))
        }
        (Operation::Pause, Running | Blocked) => Step::Pause(domid),
        (Operation::Pause, Paused) => Step::Nothing,
        (Operation::Resume, Paused) => Step::Unpause(domid),
        (Operation::Resume, Suspended) => Step::ResumeSuspended(domid),
        (Operation::Resume, Running | Blocked) => Step::Nothing,
        (Operation::Shutdown, Running | Blocked | Paused) => Step::Shutdown(domid),
        (Operation::Reboot, Running | Blocked) => Step::Reboot(domid),
        (Operation::Suspend, Running | Blocked) => Step::Save(domid),
        (Operation::Suspend, Suspended) => Step::Nothing,
        (Operation::Destroy, Dying) => Step::Nothing,
        (Operation::Destroy, _) => Step::Destroy(domid),
        _ => return Err(BackendError::InvalidState { operation, state }),
    };
    Ok(step)
}

/// Where Linux shows the running hypervisor's version in dom0 (`major`, `minor`, `extra`).
const SYSFS_XEN_VERSION: &str = "/sys/hypervisor/version";

/// The `major.minor` of a Xen version text (`4.17.3`, `4.20.5-pre`, `4.17`).
pub fn major_minor(version: &str) -> Option<(u32, u32)> {
    let mut parts = version.trim().splitn(3, '.');
    let major = parts.next()?.parse().ok()?;
    let minor: String = parts
        .next()?
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some((major, minor.parse().ok()?))
}

/// Whether a libxl build for Xen `built_for` may drive a hypervisor running Xen `running`:
/// only the same `major.minor` (libxl's ABI and the hypervisor's domctl interface change with
/// every release). The refusal is one line naming both and the backend that works.
pub fn check_release(built_for: &str, running: &str) -> Result<(), String> {
    match (major_minor(built_for), major_minor(running)) {
        (Some(built), Some(host)) if built == host => Ok(()),
        _ => Err(format!(
            "the libxl backend of this xenplug is built for Xen {built_for} and this host runs \
             Xen {running} (libxl changes with every release): use --backend xl (or --backend \
             auto, which picks it)"
        )),
    }
}

/// The running hypervisor's version from sysfs (`4.20.5-pre`), `None` where sysfs does not
/// show it.
pub fn sysfs_xen_version() -> Option<String> {
    let read = |name: &str| {
        std::fs::read_to_string(std::path::Path::new(SYSFS_XEN_VERSION).join(name))
            .ok()
            .map(|text| text.trim().chars().take(64).collect::<String>())
    };
    let major = read("major")?;
    let minor = read("minor")?;
    let extra = read("extra").unwrap_or_default();
    Some(format!("{major}.{minor}{extra}"))
}

#[cfg(feature = "libxl")]
pub use self::live::LibxlBackend;

#[cfg(feature = "libxl")]
mod live {
    use super::{listed_name, live_domain, merge, plan, saved_record, Step, Target};
    use crate::backend::saved::SaveDir;
    use crate::backend::watch::DomainWatch;
    use crate::backend::xl::{self, command, config::ConfigDir};
    use crate::backend::{Backend, BackendError, Domain, HostInfo, Operation};
    use crate::consts::{XL_CONTROL_TIMEOUT, XL_CREATE_TIMEOUT};
    use std::collections::HashSet;
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard};
    use std::time::Duration;
    use uuid::Uuid;
    use xen_ffi::safe::{self, Context};

    /// Where the privcmd device is in a dom0 (either one is enough); without it libxl cannot
    /// open.
    const XEN_PRIVCMD_PATHS: [&str; 2] = ["/dev/xen/privcmd", "/proc/xen/privcmd"];

    /// The Xen host, through one libxl context. libxl.h calls a context threadsafe, but the
    /// static libxenstore under it is not (see the module header): every call holds the lock.
    pub struct LibxlBackend {
        ctx: Mutex<Context>,
        configs: ConfigDir,
        saves: SaveDir,
        xl: PathBuf,
        watch: DomainWatch,
        /// Domids left out of the listing for want of a name, so that each is logged once.
        unnamed: Mutex<HashSet<u32>>,
    }

    fn failed(error: safe::Error) -> BackendError {
        BackendError::Failed(error.to_string())
    }

    impl LibxlBackend {
        /// Opens libxl; `config_dir` holds the xl config files, `save_dir` the images of
        /// suspended domains, `xl` is the program run for Start, Shutdown, Reboot, Suspend and
        /// the Resume of a saved domain. Outside a dom0 this fails with one line saying what is
        /// missing; on a hypervisor of another release than the one this build links
        /// ([`xen_ffi::safe::BUILT_FOR`]) with one line naming both and `--backend xl`.
        pub fn open(
            config_dir: &Path,
            save_dir: &Path,
            xl: PathBuf,
        ) -> Result<LibxlBackend, BackendError> {
            if !XEN_PRIVCMD_PATHS
                .iter()
                .any(|path| Path::new(path).exists())
            {
                return Err(BackendError::Failed(format!(
                    "no Xen here: neither {} exists (the libxl backend runs in dom0, with xenfs \
                     mounted and xenstored running)",
                    XEN_PRIVCMD_PATHS.join(" nor ")
                )));
            }
            // Before libxl touches anything: sysfs tells the release where it is mounted.
            if let Some(running) = super::sysfs_xen_version() {
                super::check_release(safe::BUILT_FOR, &running).map_err(BackendError::Failed)?;
            }
            let ctx = Context::new().map_err(|error| {
                BackendError::Failed(format!("{error}: is this dom0 with xenstored running?"))
            })?;
            let running = ctx.version().map_err(failed)?;
            super::check_release(safe::BUILT_FOR, &running).map_err(BackendError::Failed)?;
            log::info!(
                "libxl: built for Xen {}, running on Xen {running}",
                safe::BUILT_FOR
            );
            Ok(LibxlBackend {
                ctx: Mutex::new(ctx),
                configs: ConfigDir::new(config_dir),
                saves: SaveDir::new(save_dir),
                xl,
                watch: DomainWatch::open("libxl"),
                unnamed: Mutex::new(HashSet::new()),
            })
        }

        /// The context, for one thread at a time.
        fn ctx(&self) -> MutexGuard<'_, Context> {
            self.ctx
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// `xl ARGS...` bounded by `timeout`; xl's failure becomes the error.
        fn xl(&self, args: &[&OsStr], timeout: Duration) -> Result<(), BackendError> {
            command::run_xl(&self.xl, args, timeout).map_err(BackendError::Failed)
        }

        /// `xl ARGS... DOMID`, bounded by [`XL_CONTROL_TIMEOUT`].
        fn xl_control(&self, args: &[&str], domid: u32) -> Result<(), BackendError> {
            let domid = domid.to_string();
            let mut full: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            full.push(OsStr::new(&domid));
            self.xl(&full, XL_CONTROL_TIMEOUT)
        }

        /// Where `uuid` is: running (not dom0), saved to disk, or only in a config file.
        fn find(&self, uuid: Uuid) -> Result<Target, BackendError> {
            let live = self.ctx().domains().map_err(failed)?;
            if let Some(info) = live
                .iter()
                .find(|info| info.domid != 0 && info.uuid == *uuid.as_bytes())
            {
                return Ok(Target::Live {
                    domid: info.domid,
                    state: super::run_state(info),
                });
            }
            if let Some(saved) = self.saves.domains().into_iter().find(|s| s.uuid == uuid) {
                return Ok(Target::Saved(saved));
            }
            self.configs
                .domains()
                .into_iter()
                .find(|defined| defined.uuid == uuid)
                .map(|defined| Target::Defined(defined.path))
                .ok_or(BackendError::NoSuchDomain(uuid))
        }

        /// Whether a domain with `uuid` is in Xen and not being torn down.
        fn is_live(&self, uuid: Uuid) -> bool {
            self.ctx().domains().is_ok_and(|live| {
                live.iter()
                    .any(|info| info.uuid == *uuid.as_bytes() && !info.dying)
            })
        }

        /// Suspend: the sidecar, then `xl save DOMID IMAGE`.
        fn save(&self, domid: u32) -> Result<(), BackendError> {
            let saved = {
                let ctx = self.ctx();
                let info = ctx.domain(domid).map_err(failed)?;
                let uuid = Uuid::from_bytes(info.uuid);
                let config = self.configs.domains().into_iter().find(|d| d.uuid == uuid);
                let name = ctx
                    .name_of(domid)
                    .ok()
                    .or_else(|| config.as_ref().map(|d| d.name.clone()))
                    .unwrap_or_else(|| format!("domain-{domid}"));
                saved_record(
                    &info,
                    name,
                    config.map(|d| d.path),
                    self.saves.image_path(uuid),
                    self.saves.record_path(uuid),
                )
            };
            xl::save_to_disk(
                &self.saves,
                &self.xl,
                &saved,
                domid,
                || self.is_live(saved.uuid),
                "libxl",
            )
        }

        fn run(&self, step: Step) -> Result<(), BackendError> {
            match step {
                Step::Nothing => Ok(()),
                Step::Create(path) => {
                    self.xl(&[OsStr::new("create"), path.as_os_str()], XL_CREATE_TIMEOUT)
                }
                Step::Pause(domid) => self.ctx().pause(domid).map_err(failed),
                Step::Unpause(domid) => self.ctx().unpause(domid).map_err(failed),
                Step::ResumeSuspended(domid) => self.ctx().resume(domid).map_err(failed),
                Step::Reboot(domid) => self.xl_control(&["reboot"], domid),
                Step::Save(domid) => self.save(domid),
                Step::Restore(saved) => xl::restore_from_disk(&self.saves, &self.xl, &saved),
                Step::Discard(saved) => self.saves.remove(&saved).map_err(BackendError::Failed),
                Step::Destroy(domid) => self.ctx().destroy(domid).map_err(failed),
                // -F: an HVM guest without PV drivers gets the ACPI power button instead.
                Step::Shutdown(domid) => self.xl_control(&["shutdown", "-F"], domid),
            }
        }
    }

    impl Backend for LibxlBackend {
        fn name(&self) -> &'static str {
            "libxl"
        }

        fn host(&self) -> Result<HostInfo, BackendError> {
            let ctx = self.ctx();
            let physinfo = ctx.physinfo().map_err(failed)?;
            Ok(HostInfo {
                // No source is reliable in dom0 (DMI may be absent or mangled): the state
                // directory keeps a generated one.
                uuid: None,
                name: crate::state::host_name(),
                hypervisor_version: ctx.version().map_err(failed)?,
                cpus: physinfo.cpus,
                memory_mib: physinfo.total_memory_kib / 1024,
            })
        }

        fn domains(&self) -> Result<Vec<Domain>, BackendError> {
            let defined = self.configs.domains();
            let saved = self.saves.domains();
            let mut unnamed = HashSet::new();
            let live: Vec<Domain> = {
                let ctx = self.ctx();
                let infos = ctx.domains().map_err(failed)?;
                infos
                    .iter()
                    .filter(|info| info.domid != 0)
                    .filter_map(|info| {
                        let Some(name) = listed_name(ctx.name_of(info.domid).ok()) else {
                            unnamed.insert(info.domid);
                            return None;
                        };
                        live_domain(info, name)
                    })
                    .collect()
            };
            {
                let mut logged = self.unnamed.lock().unwrap_or_else(|e| e.into_inner());
                for domid in unnamed.difference(&logged) {
                    log::debug!(
                        "libxl: domain {domid} has no name yet (being built or torn down): \
                         not listed until it has one"
                    );
                }
                *logged = unnamed;
            }
            Ok(merge(live, &saved, &defined))
        }

        fn apply(&self, uuid: Uuid, operation: Operation) -> Result<(), BackendError> {
            let target = self.find(uuid)?;
            let step = plan(operation, &target)?;
            log::info!("libxl: {} {uuid}: {step:?}", operation.name());
            self.run(step)
        }

        fn wait_for_change(&self, limit: Duration) {
            self.watch.wait(limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(domid: u32) -> DomainInfo {
        DomainInfo {
            uuid: [domid as u8; 16],
            domid,
            running: false,
            blocked: false,
            paused: false,
            shutdown: false,
            dying: false,
            shutdown_reason: ShutdownReason::Unknown,
            memory_kib: 262_144,
            max_memory_kib: 524_288,
            vcpus_online: 2,
            vcpus_max: 4,
            cpu_time_ns: 0,
        }
    }

    fn shut(reason: ShutdownReason) -> DomainInfo {
        DomainInfo {
            shutdown: true,
            shutdown_reason: reason,
            ..info(3)
        }
    }

    #[test]
    fn only_the_release_built_for_is_driven() {
        assert_eq!(major_minor("4.17.3"), Some((4, 17)));
        assert_eq!(major_minor("4.20.5-pre"), Some((4, 20)));
        assert_eq!(major_minor("4.17"), Some((4, 17)));
        assert_eq!(major_minor("4"), None);
        assert_eq!(major_minor("x.y"), None);
        assert_eq!(check_release("4.17", "4.17.7"), Ok(()));
        let refusal = check_release("4.17", "4.20.5-pre").unwrap_err();
        assert!(refusal.contains("built for Xen 4.17"), "{refusal}");
        assert!(refusal.contains("runs Xen 4.20.5-pre"), "{refusal}");
        assert!(refusal.contains("--backend xl"), "{refusal}");
        assert!(!refusal.contains('\n'));
        assert!(check_release("4.17", "4.170").is_err());
        assert!(check_release("4.17", "").is_err());
    }

    #[test]
    fn flags_become_states_in_precedence_order() {
        use RunState::*;
        assert_eq!(run_state(&info(1)), Running);
        let running = DomainInfo {
            running: true,
            ..info(1)
        };
        assert_eq!(run_state(&running), Running);
        let blocked = DomainInfo {
            blocked: true,
            ..info(1)
        };
        assert_eq!(run_state(&blocked), Blocked);
        let paused = DomainInfo {
            paused: true,
            blocked: true,
            ..info(1)
        };
        assert_eq!(run_state(&paused), Paused);
        assert_eq!(run_state(&shut(ShutdownReason::Suspend)), Suspended);
        assert_eq!(run_state(&shut(ShutdownReason::Crash)), Crashed);
        assert_eq!(run_state(&shut(ShutdownReason::Watchdog)), Crashed);
        for reason in [
            ShutdownReason::Poweroff,
            ShutdownReason::Reboot,
            ShutdownReason::SoftReset,
            ShutdownReason::Unknown,
        ] {
            assert_eq!(run_state(&shut(reason)), Shutoff, "{reason:?}");
        }
        let suspended_and_paused = DomainInfo {
            paused: true,
            ..shut(ShutdownReason::Suspend)
        };
        assert_eq!(run_state(&suspended_and_paused), Suspended);
        let dying = DomainInfo {
            dying: true,
            paused: true,
            ..shut(ShutdownReason::Crash)
        };
        assert_eq!(run_state(&dying), Dying);
    }

    #[test]
    fn dom0_is_the_host_and_guests_keep_memory_and_vcpus() {
        assert_eq!(live_domain(&info(0), "Domain-0".into()), None);
        let domain = live_domain(&info(7), "web".into()).unwrap();
        assert_eq!(domain.name, "web");
        assert_eq!(domain.uuid, Uuid::from_bytes([7; 16]));
        assert_eq!((domain.memory_kib, domain.vcpus), (262_144, 2));
    }

    #[test]
    fn a_domain_without_a_name_is_not_listed_yet() {
        assert_eq!(listed_name(None), None);
        assert_eq!(listed_name(Some(String::new())), None);
        assert_eq!(listed_name(Some("g2".into())).as_deref(), Some("g2"));
    }

    fn saved(name: &str, uuid: u8) -> SavedDomain {
        saved_record(
            &info(uuid.into()),
            name.to_string(),
            None,
            PathBuf::from(format!("/var/lib/xen/save/{name}.save")),
            PathBuf::from(format!("/var/lib/xen/save/{name}.record")),
        )
    }

    #[test]
    fn the_sidecar_takes_libxl_figures_and_the_config() {
        let config = PathBuf::from("/etc/xen/web.cfg");
        let record = saved_record(
            &info(7),
            "web".into(),
            Some(config.clone()),
            PathBuf::from("i"),
            PathBuf::from("r"),
        );
        assert_eq!(record.uuid, Uuid::from_bytes([7; 16]));
        assert_eq!((record.memory_kib, record.vcpus), (262_144, 2));
        assert_eq!(record.config, Some(config));
        let domain = saved_domain(&record);
        assert_eq!(domain.state, RunState::Suspended);
        assert_eq!((domain.name.as_str(), domain.memory_kib), ("web", 262_144));
    }

    #[test]
    fn a_failed_save_keeps_its_image_only_when_the_domain_is_gone() {
        assert!(!keep_after_failed_save(true));
        assert!(keep_after_failed_save(false));
    }

    fn defined(name: &str, uuid: u8) -> DefinedDomain {
        DefinedDomain {
            path: PathBuf::from(format!("/etc/xen/{name}.cfg")),
            name: name.to_string(),
            uuid: Uuid::from_bytes([uuid; 16]),
            memory_mib: Some(512),
            vcpus: None,
        }
    }

    #[test]
    fn running_domains_hide_their_config_and_the_rest_is_shut_off() {
        let web = live_domain(&info(7), "web".into()).unwrap();
        let domains = merge(
            vec![web.clone(), web.clone()],
            &[],
            &[defined("web", 7), defined("db", 9), defined("db-copy", 9)],
        );
        assert_eq!(domains.len(), 2, "{domains:?}");
        assert_eq!(domains[0].name, "db");
        assert_eq!(domains[0].state, RunState::Shutoff);
        assert_eq!((domains[0].memory_kib, domains[0].vcpus), (512 * 1024, 1));
        assert_eq!(domains[1], web);
        assert!(merge(Vec::new(), &[], &[]).is_empty());
    }

    #[test]
    fn saved_domains_hide_their_config_and_live_ones_hide_their_image() {
        let web = live_domain(&info(7), "web".into()).unwrap();
        let domains = merge(
            vec![web.clone()],
            // web is being saved (or restored): the live domain counts.
            &[saved("web-image", 7), saved("db", 9), saved("db-again", 9)],
            &[defined("db-config", 9), defined("mail", 11)],
        );
        let names: Vec<(&str, RunState)> =
            domains.iter().map(|d| (d.name.as_str(), d.state)).collect();
        assert_eq!(
            names,
            [
                ("db", RunState::Suspended),
                ("mail", RunState::Shutoff),
                ("web", web.state)
            ]
        );
        assert_eq!(domains[0].memory_kib, 262_144);
    }

    #[test]
    fn operations_plan_by_state() {
        use Operation::*;
        use RunState::*;
        let live = |state| Target::Live { domid: 5, state };
        let path = PathBuf::from("/etc/xen/web.cfg");
        assert_eq!(
            plan(Start, &Target::Defined(path.clone())),
            Ok(Step::Create(path.clone()))
        );
        assert_eq!(
            plan(Pause, &Target::Defined(path)),
            Err(BackendError::InvalidState {
                operation: Pause,
                state: Shutoff
            })
        );
        assert!(matches!(
            plan(Start, &live(Shutoff)),
            Err(BackendError::Failed(why)) if why.contains("Destroy it first")
        ));
        assert!(matches!(
            plan(Start, &live(Running)),
            Err(BackendError::InvalidState { .. })
        ));
        assert_eq!(plan(Pause, &live(Blocked)), Ok(Step::Pause(5)));
        assert_eq!(plan(Pause, &live(Paused)), Ok(Step::Nothing));
        assert_eq!(plan(Resume, &live(Paused)), Ok(Step::Unpause(5)));
        assert_eq!(plan(Resume, &live(Suspended)), Ok(Step::ResumeSuspended(5)));
        assert_eq!(plan(Resume, &live(Running)), Ok(Step::Nothing));
        assert_eq!(plan(Shutdown, &live(Paused)), Ok(Step::Shutdown(5)));
        assert_eq!(plan(Reboot, &live(Running)), Ok(Step::Reboot(5)));
        assert!(plan(Reboot, &live(Paused)).is_err());
        assert_eq!(plan(Suspend, &live(Running)), Ok(Step::Save(5)));
        assert_eq!(plan(Suspend, &live(Blocked)), Ok(Step::Save(5)));
        assert!(plan(Suspend, &live(Paused)).is_err());
        assert_eq!(plan(Suspend, &live(Suspended)), Ok(Step::Nothing));
        for state in [Running, Paused, Suspended, Shutoff, Crashed] {
            assert_eq!(plan(Destroy, &live(state)), Ok(Step::Destroy(5)), "{state}");
        }
        assert_eq!(plan(Destroy, &live(Dying)), Ok(Step::Nothing));
        let image = saved("web", 5);
        let on_disk = Target::Saved(image.clone());
        assert_eq!(plan(Resume, &on_disk), Ok(Step::Restore(image.clone())));
        assert_eq!(plan(Destroy, &on_disk), Ok(Step::Discard(image.clone())));
        assert_eq!(plan(Suspend, &on_disk), Ok(Step::Nothing));
        match plan(Start, &on_disk) {
            Err(
                error @ BackendError::Refused {
                    invalid_state: true,
                    ..
                },
            ) => assert!(error.to_string().contains("Resume it"), "{error}"),
            other => panic!("{other:?}"),
        }
        for operation in [Shutdown, Reboot, Pause] {
            assert_eq!(
                plan(operation, &on_disk),
                Err(BackendError::InvalidState {
                    operation,
                    state: Suspended
                })
            );
        }
        for operation in [Shutdown, Reboot, Pause, Resume, Suspend] {
            for state in [Shutoff, Crashed, Dying] {
                assert_eq!(
                    plan(operation, &live(state)),
                    Err(BackendError::InvalidState { operation, state })
                );
            }
        }
    }
}
