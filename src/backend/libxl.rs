//! The `libxl` backend: the Xen host this process runs in (dom0), through libxenlight.
//!
//! Domains are what `libxl_list_domain` reports, except dom0 itself (domid 0, advertised as
//! the host), plus the domains defined by xl config files that are not running (see
//! [`super::xl`]), listed as shut off. Lifecycle operations are libxl calls; Start is
//! `xl create FILE`, since only xl parses config files. Errors carry libxl's call, reason and
//! code (`libxl_domain_pause: no such domain (-21)`); they reach the SOAP caller as UPnP 501
//! (or 701 when the domain's state rules the operation out).
//!
//! The decisions (run state, what each operation does in each state, how live and defined
//! domains merge) are pure functions here, built and tested without Xen; only
//! `LibxlBackend`, which holds the libxl context, needs the `libxl` feature. Blocking: the
//! net layer calls it off the event loop. Must not spawn anything but `xl`.
//!
//! The static dom0 build links Debian's libxenstore.a, which is built without threads (no
//! reader thread, no locks: only the shared library has them). So the context is used by one
//! thread at a time, and Shutdown and Reboot, which wait for the guest's acknowledgement
//! through a xenstore watch, go through `xl shutdown` / `xl reboot`, whose shared
//! libxenstore delivers watches. Measured under QEMU: with libxl's own call, a poll running
//! beside the wait made libxl abort the whole process ("DISASTER in event loop: cannot
//! check/read watches: Bad file descriptor"); alone, the wait never sees the watch fire.

use super::xl::DefinedDomain;
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

/// The Domain for a libxl record, `None` for dom0 (the host itself). `name` is libxl's, when
/// it has one.
pub fn live_domain(info: &DomainInfo, name: Option<String>) -> Option<Domain> {
    if info.domid == 0 {
        return None;
    }
    Some(Domain {
        uuid: Uuid::from_bytes(info.uuid),
        name: name.unwrap_or_else(|| format!("domain-{}", info.domid)),
        state: run_state(info),
        memory_kib: info.memory_kib,
        vcpus: info.vcpus_online,
    })
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

/// Every domain: the live ones, then the defined ones that are not live (a running domain's
/// UUID hides its config file), each UUID once, sorted by name then UUID so the advertised
/// order does not change while nothing else does.
pub fn merge(live: Vec<Domain>, defined: &[DefinedDomain]) -> Vec<Domain> {
    let mut domains: Vec<Domain> = Vec::with_capacity(live.len() + defined.len());
    for domain in live {
        if !domains.iter().any(|d| d.uuid == domain.uuid) {
            domains.push(domain);
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
    /// `libxl_domain_suspend_only`
    Suspend(u32),
    /// `libxl_domain_destroy`
    Destroy(u32),
    /// Already done (pausing a paused domain, resuming a running one).
    Nothing,
}

/// What `operation` does to `target`. Blocked counts as Running. Refused with InvalidState:
/// anything but Start and Destroy on a domain that is not running; Suspend of a paused domain
/// (the guest could not answer; libxl would wait for it until its timeout); Reboot of a paused
/// one. A domain shut down but not yet destroyed (Shutoff with a domid) must be destroyed
/// before it can start again.
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
        (Operation::Suspend, Running | Blocked) => Step::Suspend(domid),
        (Operation::Suspend, Suspended) => Step::Nothing,
        (Operation::Destroy, Dying) => Step::Nothing,
        (Operation::Destroy, _) => Step::Destroy(domid),
        _ => return Err(BackendError::InvalidState { operation, state }),
    };
    Ok(step)
}

#[cfg(feature = "libxl")]
pub use self::live::LibxlBackend;

#[cfg(feature = "libxl")]
mod live {
    use super::{live_domain, merge, plan, Step, Target};
    use crate::backend::xl::{self, ConfigDir};
    use crate::backend::{Backend, BackendError, Domain, HostInfo, Operation};
    use crate::consts::{
        LIBXL_POLL_INTERVAL, XEN_PRIVCMD_PATHS, XL_CONTROL_TIMEOUT, XL_CREATE_TIMEOUT,
    };
    use std::ffi::OsStr;
    use std::path::{Path, PathBuf};
    use std::sync::{Mutex, MutexGuard};
    use std::time::Duration;
    use uuid::Uuid;
    use xen_ffi::safe::{self, Context};

    /// The Xen host, through one libxl context. libxl.h calls a context threadsafe, but the
    /// static libxenstore under it is not (see the module header): every call holds the lock.
    pub struct LibxlBackend {
        ctx: Mutex<Context>,
        configs: ConfigDir,
        xl: PathBuf,
    }

    fn failed(error: safe::Error) -> BackendError {
        BackendError::Failed(error.to_string())
    }

    impl LibxlBackend {
        /// Opens libxl; `config_dir` holds the xl config files, `xl` is the program run for
        /// Start. Outside a dom0 this fails with one line saying what is missing.
        pub fn open(config_dir: &Path, xl: PathBuf) -> Result<LibxlBackend, BackendError> {
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
            let ctx = Context::new().map_err(|error| {
                BackendError::Failed(format!("{error}: is this dom0 with xenstored running?"))
            })?;
            Ok(LibxlBackend {
                ctx: Mutex::new(ctx),
                configs: ConfigDir::new(config_dir),
                xl,
            })
        }

        /// The context, for one thread at a time.
        fn ctx(&self) -> MutexGuard<'_, Context> {
            self.ctx
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        /// `xl ARGS... DOMID`, bounded by [`XL_CONTROL_TIMEOUT`].
        fn xl_control(&self, args: &[&str], domid: u32) -> Result<(), BackendError> {
            let domid = domid.to_string();
            let mut full: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
            full.push(OsStr::new(&domid));
            xl::run_xl(&self.xl, &full, XL_CONTROL_TIMEOUT).map_err(BackendError::Failed)
        }

        /// Where `uuid` is: running (not dom0), or only in a config file.
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
            self.configs
                .domains()
                .into_iter()
                .find(|defined| defined.uuid == uuid)
                .map(|defined| Target::Defined(defined.path))
                .ok_or(BackendError::NoSuchDomain(uuid))
        }

        fn run(&self, step: Step) -> Result<(), BackendError> {
            match step {
                Step::Nothing => Ok(()),
                Step::Create(path) => xl::run_xl(
                    &self.xl,
                    &[OsStr::new("create"), path.as_os_str()],
                    XL_CREATE_TIMEOUT,
                )
                .map_err(BackendError::Failed),
                Step::Pause(domid) => self.ctx().pause(domid).map_err(failed),
                Step::Unpause(domid) => self.ctx().unpause(domid).map_err(failed),
                Step::ResumeSuspended(domid) => self.ctx().resume(domid).map_err(failed),
                Step::Reboot(domid) => self.xl_control(&["reboot"], domid),
                Step::Suspend(domid) => self.ctx().suspend(domid).map_err(failed),
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
            let ctx = self.ctx();
            let live = ctx.domains().map_err(failed)?;
            let live = live
                .iter()
                .filter(|info| info.domid != 0)
                .filter_map(|info| {
                    // A domain being torn down may have lost its name already: fall back on
                    // its config file's, then on its domid.
                    let name = ctx.name_of(info.domid).ok().or_else(|| {
                        defined
                            .iter()
                            .find(|d| d.uuid.as_bytes() == &info.uuid)
                            .map(|d| d.name.clone())
                    });
                    live_domain(info, name)
                })
                .collect();
            Ok(merge(live, &defined))
        }

        fn apply(&self, uuid: Uuid, operation: Operation) -> Result<(), BackendError> {
            let target = self.find(uuid)?;
            let step = plan(operation, &target)?;
            log::info!("libxl: {} {uuid}: {step:?}", operation.name());
            self.run(step)
        }

        fn poll_interval(&self) -> Duration {
            LIBXL_POLL_INTERVAL
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
        assert_eq!(live_domain(&info(0), Some("Domain-0".into())), None);
        let domain = live_domain(&info(7), Some("web".into())).unwrap();
        assert_eq!(domain.name, "web");
        assert_eq!(domain.uuid, Uuid::from_bytes([7; 16]));
        assert_eq!((domain.memory_kib, domain.vcpus), (262_144, 2));
        assert_eq!(live_domain(&info(7), None).unwrap().name, "domain-7");
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
        let web = live_domain(&info(7), Some("web".into())).unwrap();
        let domains = merge(
            vec![web.clone(), web.clone()],
            &[defined("web", 7), defined("db", 9), defined("db-copy", 9)],
        );
        assert_eq!(domains.len(), 2, "{domains:?}");
        assert_eq!(domains[0].name, "db");
        assert_eq!(domains[0].state, RunState::Shutoff);
        assert_eq!((domains[0].memory_kib, domains[0].vcpus), (512 * 1024, 1));
        assert_eq!(domains[1], web);
        assert!(merge(Vec::new(), &[]).is_empty());
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
        assert_eq!(plan(Suspend, &live(Running)), Ok(Step::Suspend(5)));
        assert!(plan(Suspend, &live(Paused)).is_err());
        assert_eq!(plan(Suspend, &live(Suspended)), Ok(Step::Nothing));
        for state in [Running, Paused, Suspended, Shutoff, Crashed] {
            assert_eq!(plan(Destroy, &live(state)), Ok(Step::Destroy(5)), "{state}");
        }
        assert_eq!(plan(Destroy, &live(Dying)), Ok(Step::Nothing));
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
