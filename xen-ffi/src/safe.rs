//! Safe layer: owned Rust types over the raw libxl calls; every return code goes through
//! [`check`]. Nothing here panics (no callbacks cross FFI) and every libxl allocation is freed
//! on every path. The libxl calls exist only with the `libxl` feature; [`check`], [`Error`] and
//! the plain data types ([`DomainInfo`], [`PhysInfo`], [`ShutdownReason`]) always do, so code
//! interpreting them can be built and tested without Xen.

use crate::raw;
use core::ffi::c_int;
use core::fmt;

/// A failed libxl call: which operation, and libxl's code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Error {
    /// The libxl function that failed (`libxl_domain_pause`).
    pub operation: &'static str,
    /// The negative libxl error code.
    pub code: c_int,
}

impl Error {
    /// libxl's reason in words.
    pub fn reason(&self) -> &'static str {
        match self.code {
            raw::ERROR_VERSION => "libxl version mismatch",
            raw::ERROR_FAIL => "operation failed",
            raw::ERROR_NI => "not implemented",
            raw::ERROR_NOMEM => "out of memory",
            raw::ERROR_INVAL => "invalid argument",
            raw::ERROR_BADFAIL => "failed, state may be inconsistent",
            raw::ERROR_GUEST_TIMEDOUT => "the guest did not respond in time",
            raw::ERROR_TIMEDOUT => "timed out",
            raw::ERROR_NOPARAVIRT => "the guest has no PV drivers",
            raw::ERROR_NOT_READY => "not ready",
            raw::ERROR_LOCK_FAIL => "could not take the libxl lock",
            raw::ERROR_DOMAIN_NOTFOUND => "no such domain",
            raw::ERROR_ABORTED => "aborted",
            raw::ERROR_NOTFOUND => "not found",
            raw::ERROR_DOMAIN_DESTROYED => "the domain was destroyed",
            _ => "unspecified libxl error",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.operation, self.reason(), self.code)
    }
}

impl std::error::Error for Error {}

/// Turns a libxl return code into a `Result`: zero or positive is success.
pub fn check(operation: &'static str, code: c_int) -> Result<c_int, Error> {
    if code < 0 {
        Err(Error { operation, code })
    } else {
        Ok(code)
    }
}

/// Why a domain shut down (`libxl_shutdown_reason`); meaningful when
/// [`DomainInfo::shutdown`] is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    /// `LIBXL_SHUTDOWN_REASON_UNKNOWN`, or a value this build does not know.
    Unknown,
    /// `LIBXL_SHUTDOWN_REASON_POWEROFF`
    Poweroff,
    /// `LIBXL_SHUTDOWN_REASON_REBOOT`
    Reboot,
    /// `LIBXL_SHUTDOWN_REASON_SUSPEND`
    Suspend,
    /// `LIBXL_SHUTDOWN_REASON_CRASH`
    Crash,
    /// `LIBXL_SHUTDOWN_REASON_WATCHDOG`
    Watchdog,
    /// `LIBXL_SHUTDOWN_REASON_SOFT_RESET`
    SoftReset,
}

/// An owned copy of one `libxl_dominfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInfo {
    /// `uuid`, big-endian octets.
    pub uuid: [u8; 16],
    /// `domid`
    pub domid: u32,
    /// `running`
    pub running: bool,
    /// `blocked`
    pub blocked: bool,
    /// `paused`
    pub paused: bool,
    /// `shutdown`
    pub shutdown: bool,
    /// `dying`
    pub dying: bool,
    /// `shutdown_reason`
    pub shutdown_reason: ShutdownReason,
    /// `current_memkb`
    pub memory_kib: u64,
    /// `max_memkb`
    pub max_memory_kib: u64,
    /// `vcpu_online`
    pub vcpus_online: u32,
    /// `vcpu_max_id + 1`
    pub vcpus_max: u32,
    /// `cpu_time`, nanoseconds.
    pub cpu_time_ns: u64,
}

/// What xenplug reads of `libxl_physinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysInfo {
    /// `nr_cpus`
    pub cpus: u32,
    /// `threads_per_core`
    pub threads_per_core: u32,
    /// `cores_per_socket`
    pub cores_per_socket: u32,
    /// `cpu_khz`
    pub cpu_khz: u32,
    /// `nr_nodes`
    pub nodes: u32,
    /// `total_pages`, in KiB.
    pub total_memory_kib: u64,
    /// `free_pages`, in KiB.
    pub free_memory_kib: u64,
    /// `cap_hvm`
    pub hvm: bool,
    /// `cap_pv`
    pub pv: bool,
}

/// The Xen release (`major.minor`) whose libxenlight this build links, from `pkg-config
/// --modversion xenlight`: the only release it can drive.
#[cfg(feature = "libxl")]
pub const BUILT_FOR: &str = env!("XEN_FFI_BUILT_FOR");

#[cfg(feature = "libxl")]
pub use self::libxl::Context;

#[cfg(feature = "libxl")]
mod libxl {
    use super::{check, DomainInfo, Error, PhysInfo, ShutdownReason};
    use crate::raw;
    use core::ffi::{c_int, CStr};
    use core::ptr::{self, NonNull};
    use std::ffi::CString;

    /// An open libxl context and the stderr logger it reports to. Dropping it frees the ctx
    /// first, then the logger (NOTES.md: the ctx logs to the logger until it is freed).
    #[derive(Debug)]
    pub struct Context {
        ctx: NonNull<raw::libxl_ctx>,
        logger: NonNull<raw::xentoollog_logger_stdiostream>,
    }

    // SAFETY: libxl.h ("libxl memory management"): "struct libxl_ctx* is threadsafe"; the
    // logger is only used by libxl through the ctx.
    unsafe impl Send for Context {}
    // SAFETY: as above; every method takes `&self` and libxl serialises internally.
    unsafe impl Sync for Context {}

    impl ShutdownReason {
        /// Maps libxl's value; anything unexpected is `Unknown`.
        pub fn from_raw(value: raw::libxl_shutdown_reason) -> Self {
            match value {
                raw::LIBXL_SHUTDOWN_REASON_POWEROFF => Self::Poweroff,
                raw::LIBXL_SHUTDOWN_REASON_REBOOT => Self::Reboot,
                raw::LIBXL_SHUTDOWN_REASON_SUSPEND => Self::Suspend,
                raw::LIBXL_SHUTDOWN_REASON_CRASH => Self::Crash,
                raw::LIBXL_SHUTDOWN_REASON_WATCHDOG => Self::Watchdog,
                raw::LIBXL_SHUTDOWN_REASON_SOFT_RESET => Self::SoftReset,
                _ => Self::Unknown,
            }
        }
    }

    impl DomainInfo {
        /// Copies the fields xenplug uses out of a raw record.
        pub fn from_raw(info: &raw::libxl_dominfo) -> Self {
            Self {
                uuid: info.uuid.uuid,
                domid: info.domid,
                running: info.running,
                blocked: info.blocked,
                paused: info.paused,
                shutdown: info.shutdown,
                dying: info.dying,
                shutdown_reason: ShutdownReason::from_raw(info.shutdown_reason),
                memory_kib: info.current_memkb,
                max_memory_kib: info.max_memkb,
                vcpus_online: info.vcpu_online,
                vcpus_max: info.vcpu_max_id.saturating_add(1),
                cpu_time_ns: info.cpu_time,
            }
        }
    }

    /// Frees a `libxl_list_domain` result on every path out of [`Context::domains`].
    struct DominfoList {
        list: *mut raw::libxl_dominfo,
        count: c_int,
    }

    impl Drop for DominfoList {
        fn drop(&mut self) {
            // SAFETY: `list` came from libxl_list_domain with this count and is freed once.
            unsafe { raw::libxl_dominfo_list_free(self.list, self.count) }
        }
    }

    /// How every ctx handles child processes: libxl keeps its SIGCHLD handler and reaps only
    /// the children it spawned itself (hotplug scripts, device models), so the program may
    /// spawn and `waitpid` its own (`xl create`, VM handlers) without libxl stealing their exit
    /// status. The default mode would reap every child of the process while libxl has one.
    static SELECTIVE_REAP: raw::libxl_childproc_hooks = raw::libxl_childproc_hooks {
        chldowner: raw::libxl_sigchld_owner_libxl_always_selective_reap,
        fork_replacement: None,
        reaped_callback: None,
    };

    /// Longest `xen_version_extra` kept (it is `.3` or `-unstable` in practice).
    const MAX_VERSION_EXTRA: usize = 64;

    /// `major.minor` followed by libxl's `extra` (`.3`, `-rc`), cut to [`MAX_VERSION_EXTRA`].
    fn version_text(major: c_int, minor: c_int, extra: &str) -> String {
        let extra: String = extra
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_VERSION_EXTRA)
            .collect();
        format!("{major}.{minor}{extra}")
    }

    /// Pages of `XC_PAGE_SIZE` bytes to KiB, saturating.
    fn pages_to_kib(pages: u64) -> u64 {
        pages.saturating_mul(raw::XC_PAGE_SIZE / 1024)
    }

    impl Context {
        /// Opens a libxl context logging errors to stderr. Fails (`libxl_ctx_alloc`,
        /// `ERROR_FAIL`) where there is no Xen: outside dom0, without `/proc/xen`, or without
        /// the privileges to open the privcmd device.
        pub fn new() -> Result<Context, Error> {
            // SAFETY: `stderr` is the C library's stream, valid for the whole process.
            let logger =
                unsafe { raw::xtl_createlogger_stdiostream(raw::stderr, raw::XTL_ERROR, 0) };
            let Some(logger) = NonNull::new(logger) else {
                return Err(Error {
                    operation: "xtl_createlogger_stdiostream",
                    code: raw::ERROR_NOMEM,
                });
            };
            let mut ctx: *mut raw::libxl_ctx = ptr::null_mut();
            // SAFETY: `ctx` is a valid out pointer; the logger outlives the ctx (see Drop).
            let rc = unsafe {
                raw::libxl_ctx_alloc(&mut ctx, raw::LIBXL_VERSION, 0, logger.as_ptr().cast())
            };
            let ctx = match (check("libxl_ctx_alloc", rc), NonNull::new(ctx)) {
                (Ok(_), Some(ctx)) => ctx,
                (result, _) => {
                    // A failing libxl_ctx_alloc frees its half-built ctx itself and sets
                    // `*pctx` to NULL, so only the logger is left to free.
                    // SAFETY: created above; no ctx refers to it.
                    unsafe { raw::xtl_logger_destroy(logger.as_ptr().cast()) };
                    return Err(result.err().unwrap_or(Error {
                        operation: "libxl_ctx_alloc",
                        code: raw::ERROR_FAIL,
                    }));
                }
            };
            // SAFETY: a fresh ctx with no children yet (libxl_event.h: "best to call this at
            // initialisation"); the hooks are a static, so they outlive the ctx.
            unsafe { raw::libxl_childproc_setmode(ctx.as_ptr(), &SELECTIVE_REAP, ptr::null_mut()) };
            Ok(Context { ctx, logger })
        }

        fn ctx(&self) -> *mut raw::libxl_ctx {
            self.ctx.as_ptr()
        }

        /// Every domain (`libxl_list_domain`), dom0 included, as owned copies.
        pub fn domains(&self) -> Result<Vec<DomainInfo>, Error> {
            let mut count: c_int = 0;
            // SAFETY: valid ctx and out pointer.
            let list = unsafe { raw::libxl_list_domain(self.ctx(), &mut count) };
            if list.is_null() {
                return Err(Error {
                    operation: "libxl_list_domain",
                    code: raw::ERROR_FAIL,
                });
            }
            let owned = DominfoList { list, count };
            let len = usize::try_from(count).unwrap_or(0);
            // SAFETY: libxl returned `count` initialised records at `list`, alive until
            // `owned` drops at the end of this function.
            let records = unsafe { core::slice::from_raw_parts(owned.list, len) };
            Ok(records.iter().map(DomainInfo::from_raw).collect())
        }

        /// One domain (`libxl_domain_info`); `ERROR_DOMAIN_NOTFOUND` if it does not exist.
        pub fn domain(&self, domid: u32) -> Result<DomainInfo, Error> {
            let mut info = core::mem::MaybeUninit::<raw::libxl_dominfo>::uninit();
            // SAFETY: init writes the whole struct; dispose frees what domain_info allocated.
            unsafe {
                raw::libxl_dominfo_init(info.as_mut_ptr());
                let rc = raw::libxl_domain_info(self.ctx(), info.as_mut_ptr(), domid);
                let result =
                    check("libxl_domain_info", rc).map(|_| DomainInfo::from_raw(&*info.as_ptr()));
                raw::libxl_dominfo_dispose(info.as_mut_ptr());
                result
            }
        }

        /// The name of a domain (`libxl_domid_to_name`); `ERROR_NOTFOUND` when libxl has none.
        pub fn name_of(&self, domid: u32) -> Result<String, Error> {
            // SAFETY: valid ctx; the result is malloc'd and freed below.
            let name = unsafe { raw::libxl_domid_to_name(self.ctx(), domid) };
            if name.is_null() {
                return Err(Error {
                    operation: "libxl_domid_to_name",
                    code: raw::ERROR_NOTFOUND,
                });
            }
            // SAFETY: a NUL-terminated string from libxl, copied before it is freed.
            let owned = unsafe { CStr::from_ptr(name) }
                .to_string_lossy()
                .into_owned();
            // SAFETY: libxl_utils.h: the caller frees the result with free().
            unsafe { raw::free(name.cast()) };
            Ok(owned)
        }

        /// The domid of a named domain (`libxl_name_to_domid`). A name containing NUL is
        /// `ERROR_INVAL` without calling libxl.
        pub fn domid_of(&self, name: &str) -> Result<u32, Error> {
            let name = CString::new(name).map_err(|_| Error {
                operation: "libxl_name_to_domid",
                code: raw::ERROR_INVAL,
            })?;
            let mut domid: u32 = 0;
            // SAFETY: valid ctx, NUL-terminated name, valid out pointer.
            let rc = unsafe { raw::libxl_name_to_domid(self.ctx(), name.as_ptr(), &mut domid) };
            check("libxl_name_to_domid", rc).map(|_| domid)
        }

        /// Pauses a domain (`libxl_domain_pause`).
        pub fn pause(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: valid ctx; NULL ao_how makes the call synchronous.
            let rc = unsafe { raw::libxl_domain_pause(self.ctx(), domid, ptr::null()) };
            check("libxl_domain_pause", rc).map(drop)
        }

        /// Unpauses a domain (`libxl_domain_unpause`).
        pub fn unpause(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe { raw::libxl_domain_unpause(self.ctx(), domid, ptr::null()) };
            check("libxl_domain_unpause", rc).map(drop)
        }

        /// Asks a domain's PV drivers to shut down (`libxl_domain_shutdown`). An HVM guest
        /// without them fails with `ERROR_NOPARAVIRT`: use [`Context::power_trigger`] then.
        pub fn shutdown(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe { raw::libxl_domain_shutdown(self.ctx(), domid, ptr::null()) };
            check("libxl_domain_shutdown", rc).map(drop)
        }

        /// Asks a domain to reboot (`libxl_domain_reboot`); `ERROR_NOPARAVIRT` as for shutdown.
        pub fn reboot(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe { raw::libxl_domain_reboot(self.ctx(), domid, ptr::null()) };
            check("libxl_domain_reboot", rc).map(drop)
        }

        /// Destroys a domain at once (`libxl_domain_destroy`).
        pub fn destroy(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe { raw::libxl_domain_destroy(self.ctx(), domid, ptr::null()) };
            check("libxl_domain_destroy", rc).map(drop)
        }

        /// Suspends a domain in memory, no state saved (`libxl_domain_suspend_only`).
        pub fn suspend(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe { raw::libxl_domain_suspend_only(self.ctx(), domid, ptr::null()) };
            check("libxl_domain_suspend_only", rc).map(drop)
        }

        /// Resumes a suspended domain co-operatively (`libxl_domain_resume`, suspend_cancel 1,
        /// what `suspend` pairs with).
        pub fn resume(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe { raw::libxl_domain_resume(self.ctx(), domid, 1, ptr::null()) };
            check("libxl_domain_resume", rc).map(drop)
        }

        /// Presses the virtual power button (`libxl_send_trigger`, `LIBXL_TRIGGER_POWER`,
        /// vcpu 0): `xl shutdown -F` for HVM guests without PV drivers.
        pub fn power_trigger(&self, domid: u32) -> Result<(), Error> {
            // SAFETY: as in `pause`.
            let rc = unsafe {
                raw::libxl_send_trigger(self.ctx(), domid, raw::LIBXL_TRIGGER_POWER, 0, ptr::null())
            };
            check("libxl_send_trigger", rc).map(drop)
        }

        /// The host's CPUs and memory (`libxl_get_physinfo`).
        pub fn physinfo(&self) -> Result<PhysInfo, Error> {
            let mut info = core::mem::MaybeUninit::<raw::libxl_physinfo>::uninit();
            // SAFETY: init writes the whole struct; dispose pairs with it.
            unsafe {
                raw::libxl_physinfo_init(info.as_mut_ptr());
                let rc = raw::libxl_get_physinfo(self.ctx(), info.as_mut_ptr());
                let result = check("libxl_get_physinfo", rc).map(|_| {
                    let info = &*info.as_ptr();
                    PhysInfo {
                        cpus: info.nr_cpus,
                        threads_per_core: info.threads_per_core,
                        cores_per_socket: info.cores_per_socket,
                        cpu_khz: info.cpu_khz,
                        nodes: info.nr_nodes,
                        total_memory_kib: pages_to_kib(info.total_pages),
                        free_memory_kib: pages_to_kib(info.free_pages),
                        hvm: info.cap_hvm,
                        pv: info.cap_pv,
                    }
                });
                raw::libxl_physinfo_dispose(info.as_mut_ptr());
                result
            }
        }

        /// The hypervisor's version, `major.minor` and libxl's extra (`4.17.3`,
        /// `libxl_get_version_info`).
        pub fn version(&self) -> Result<String, Error> {
            // SAFETY: valid ctx; the result belongs to the ctx and is only read.
            let info = unsafe { raw::libxl_get_version_info(self.ctx()) };
            // SAFETY: non-NULL means a valid struct that lives as long as the ctx.
            match unsafe { info.as_ref() } {
                Some(info) => {
                    let extra = if info.xen_version_extra.is_null() {
                        String::new()
                    } else {
                        // SAFETY: a NUL-terminated string owned by the ctx, copied here.
                        unsafe { CStr::from_ptr(info.xen_version_extra) }
                            .to_string_lossy()
                            .into_owned()
                    };
                    Ok(version_text(
                        info.xen_version_major,
                        info.xen_version_minor,
                        &extra,
                    ))
                }
                None => Err(Error {
                    operation: "libxl_get_version_info",
                    code: raw::ERROR_FAIL,
                }),
            }
        }
    }

    impl Drop for Context {
        fn drop(&mut self) {
            // SAFETY: both came from Context::new and are freed once, ctx first.
            unsafe {
                raw::libxl_ctx_free(self.ctx.as_ptr());
                raw::xtl_logger_destroy(self.logger.as_ptr().cast());
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn shutdown_reasons_map_and_unknowns_stay_unknown() {
            assert_eq!(ShutdownReason::from_raw(0), ShutdownReason::Poweroff);
            assert_eq!(ShutdownReason::from_raw(3), ShutdownReason::Crash);
            assert_eq!(ShutdownReason::from_raw(5), ShutdownReason::SoftReset);
            assert_eq!(ShutdownReason::from_raw(-1), ShutdownReason::Unknown);
            assert_eq!(ShutdownReason::from_raw(99), ShutdownReason::Unknown);
        }

        #[test]
        fn versions_keep_the_extra_and_drop_control_characters() {
            assert_eq!(version_text(4, 17, ".3"), "4.17.3");
            assert_eq!(version_text(4, 17, ""), "4.17");
            assert_eq!(version_text(4, 18, "-rc\n"), "4.18-rc");
            assert_eq!(
                version_text(4, 17, &"x".repeat(500)).len(),
                4 + MAX_VERSION_EXTRA
            );
        }

        #[test]
        fn children_are_reaped_selectively() {
            assert_eq!(
                SELECTIVE_REAP.chldowner,
                raw::libxl_sigchld_owner_libxl_always_selective_reap
            );
            assert!(SELECTIVE_REAP.fork_replacement.is_none());
            assert!(SELECTIVE_REAP.reaped_callback.is_none());
        }

        #[test]
        fn pages_become_kib_without_overflow() {
            assert_eq!(pages_to_kib(3), 12);
            assert_eq!(pages_to_kib(u64::MAX), u64::MAX);
        }

        #[test]
        fn a_raw_record_is_copied_field_by_field() {
            // SAFETY: an all-zero libxl_dominfo is valid (NULL label, false flags).
            let mut info: raw::libxl_dominfo = unsafe { core::mem::zeroed() };
            info.uuid.uuid = [7; 16];
            info.domid = 5;
            info.paused = true;
            info.shutdown_reason = raw::LIBXL_SHUTDOWN_REASON_REBOOT;
            info.current_memkb = 131072;
            info.max_memkb = 262144;
            info.vcpu_max_id = 1;
            info.vcpu_online = 2;
            info.cpu_time = 42;
            let copy = DomainInfo::from_raw(&info);
            assert_eq!(copy.uuid, [7; 16]);
            assert_eq!(copy.domid, 5);
            assert!(copy.paused && !copy.running);
            assert_eq!(copy.shutdown_reason, ShutdownReason::Reboot);
            assert_eq!((copy.memory_kib, copy.max_memory_kib), (131072, 262144));
            assert_eq!((copy.vcpus_online, copy.vcpus_max), (2, 2));
            assert_eq!(copy.cpu_time_ns, 42);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_become_errors_naming_the_operation() {
        assert_eq!(check("libxl_domain_pause", 0), Ok(0));
        let error = check("libxl_domain_shutdown", raw::ERROR_NOPARAVIRT).unwrap_err();
        assert_eq!(
            error.to_string(),
            "libxl_domain_shutdown: the guest has no PV drivers (-10)"
        );
        assert_eq!(
            check("x", -99).unwrap_err().reason(),
            "unspecified libxl error"
        );
    }

    #[test]
    fn positive_codes_pass_through_and_every_named_code_has_its_own_reason() {
        assert_eq!(check("libxl_domain_info", 7), Ok(7));
        assert_eq!(
            check("libxl_ctx_alloc", raw::ERROR_FAIL),
            Err(Error {
                operation: "libxl_ctx_alloc",
                code: -3
            })
        );
        let named = [
            raw::ERROR_VERSION,
            raw::ERROR_FAIL,
            raw::ERROR_NI,
            raw::ERROR_NOMEM,
            raw::ERROR_INVAL,
            raw::ERROR_BADFAIL,
            raw::ERROR_GUEST_TIMEDOUT,
            raw::ERROR_TIMEDOUT,
            raw::ERROR_NOPARAVIRT,
            raw::ERROR_NOT_READY,
            raw::ERROR_LOCK_FAIL,
            raw::ERROR_DOMAIN_NOTFOUND,
            raw::ERROR_ABORTED,
            raw::ERROR_NOTFOUND,
            raw::ERROR_DOMAIN_DESTROYED,
        ];
        let mut reasons: Vec<&str> = named
            .iter()
            .map(|&code| {
                Error {
                    operation: "x",
                    code,
                }
                .reason()
            })
            .collect();
        assert!(!reasons.contains(&"unspecified libxl error"));
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), named.len(), "two codes share a reason");
        assert_eq!(
            check("x", i32::MIN).unwrap_err().to_string(),
            "x: unspecified libxl error (-2147483648)"
        );
    }
}
