//! Raw layer: libxl items exactly as `libxl.h` / `_libxl_types.h` (Xen 4.17) declare them. No
//! logic, no allocation, no checks here: the safe layer does those.
#![allow(non_camel_case_types)] // raw items keep their C names

use core::ffi::c_int;

/// `libxl_error` (negative return codes of libxl calls).
pub type libxl_error = c_int;

/// `ERROR_NONSPECIFIC`
pub const ERROR_NONSPECIFIC: libxl_error = -1;
/// `ERROR_VERSION`
pub const ERROR_VERSION: libxl_error = -2;
/// `ERROR_FAIL`
pub const ERROR_FAIL: libxl_error = -3;
/// `ERROR_NI` (not implemented)
pub const ERROR_NI: libxl_error = -4;
/// `ERROR_NOMEM`
pub const ERROR_NOMEM: libxl_error = -5;
/// `ERROR_INVAL`
pub const ERROR_INVAL: libxl_error = -6;
/// `ERROR_BADFAIL`
pub const ERROR_BADFAIL: libxl_error = -7;
/// `ERROR_GUEST_TIMEDOUT`
pub const ERROR_GUEST_TIMEDOUT: libxl_error = -8;
/// `ERROR_TIMEDOUT`
pub const ERROR_TIMEDOUT: libxl_error = -9;
/// `ERROR_NOPARAVIRT`: the guest has no PV drivers (shutdown falls back to the power trigger).
pub const ERROR_NOPARAVIRT: libxl_error = -10;
/// `ERROR_NOT_READY`
pub const ERROR_NOT_READY: libxl_error = -11;
/// `ERROR_LOCK_FAIL`
pub const ERROR_LOCK_FAIL: libxl_error = -15;
/// `ERROR_DOMAIN_NOTFOUND`
pub const ERROR_DOMAIN_NOTFOUND: libxl_error = -21;
/// `ERROR_ABORTED`
pub const ERROR_ABORTED: libxl_error = -22;
/// `ERROR_NOTFOUND`
pub const ERROR_NOTFOUND: libxl_error = -23;
/// `ERROR_DOMAIN_DESTROYED`
pub const ERROR_DOMAIN_DESTROYED: libxl_error = -24;

/// `LIBXL_VERSION`, the only value `libxl_ctx_alloc` accepts as its version.
pub const LIBXL_VERSION: c_int = 0;

/// `XC_PAGE_SIZE` (xenctrl.h): `libxl_physinfo` counts memory in pages of this many bytes.
pub const XC_PAGE_SIZE: u64 = 4096;

#[cfg(feature = "libxl")]
pub use self::libxl::*;

/// The libxl functions and the structs they fill; declared only with the `libxl` feature.
#[cfg(feature = "libxl")]
mod libxl {
    use core::ffi::{c_char, c_int, c_uint, c_void};

    /// `libxl_ctx` (opaque).
    #[repr(C)]
    pub struct libxl_ctx {
        _opaque: [u8; 0],
    }

    /// `libxl_asyncop_how` (opaque here: always passed as NULL, meaning "synchronous").
    #[repr(C)]
    pub struct libxl_asyncop_how {
        _opaque: [u8; 0],
    }

    /// `xentoollog_logger` (opaque).
    #[repr(C)]
    pub struct xentoollog_logger {
        _opaque: [u8; 0],
    }

    /// `xentoollog_logger_stdiostream` (opaque; starts with a `xentoollog_logger`).
    #[repr(C)]
    pub struct xentoollog_logger_stdiostream {
        _opaque: [u8; 0],
    }

    /// C `FILE` (opaque).
    #[repr(C)]
    pub struct FILE {
        _opaque: [u8; 0],
    }

    /// `xentoollog_level` (a C enum: `int`-sized).
    pub type xentoollog_level = c_uint;
    /// `XTL_ERROR`
    pub const XTL_ERROR: xentoollog_level = 8;

    /// `libxl_domid`
    pub type libxl_domid = u32;

    /// `libxl_trigger` (a C enum).
    pub type libxl_trigger = c_int;
    /// `LIBXL_TRIGGER_POWER`: the ACPI power button.
    pub const LIBXL_TRIGGER_POWER: libxl_trigger = 1;

    /// `libxl_shutdown_reason` (a C enum; -1 is unknown).
    pub type libxl_shutdown_reason = c_int;
    /// `LIBXL_SHUTDOWN_REASON_UNKNOWN`
    pub const LIBXL_SHUTDOWN_REASON_UNKNOWN: libxl_shutdown_reason = -1;
    /// `LIBXL_SHUTDOWN_REASON_POWEROFF`
    pub const LIBXL_SHUTDOWN_REASON_POWEROFF: libxl_shutdown_reason = 0;
    /// `LIBXL_SHUTDOWN_REASON_REBOOT`
    pub const LIBXL_SHUTDOWN_REASON_REBOOT: libxl_shutdown_reason = 1;
    /// `LIBXL_SHUTDOWN_REASON_SUSPEND`
    pub const LIBXL_SHUTDOWN_REASON_SUSPEND: libxl_shutdown_reason = 2;
    /// `LIBXL_SHUTDOWN_REASON_CRASH`
    pub const LIBXL_SHUTDOWN_REASON_CRASH: libxl_shutdown_reason = 3;
    /// `LIBXL_SHUTDOWN_REASON_WATCHDOG`
    pub const LIBXL_SHUTDOWN_REASON_WATCHDOG: libxl_shutdown_reason = 4;
    /// `LIBXL_SHUTDOWN_REASON_SOFT_RESET`
    pub const LIBXL_SHUTDOWN_REASON_SOFT_RESET: libxl_shutdown_reason = 5;

    /// `libxl_domain_type` (a C enum).
    pub type libxl_domain_type = c_int;

    /// `libxl_sigchld_owner` (libxl_event.h, a C enum): who reaps child processes.
    pub type libxl_sigchld_owner = c_int;
    /// `libxl_sigchld_owner_libxl`: the default; libxl reaps *every* child while it has one.
    #[allow(non_upper_case_globals)] // the C name
    pub const libxl_sigchld_owner_libxl: libxl_sigchld_owner = 0;
    /// `libxl_sigchld_owner_libxl_always_selective_reap`: libxl keeps a SIGCHLD handler and
    /// reaps only its own children; the application reaps its own with `waitpid`.
    #[allow(non_upper_case_globals)] // the C name
    pub const libxl_sigchld_owner_libxl_always_selective_reap: libxl_sigchld_owner = 3;

    /// C `pid_t`.
    pub type pid_t = c_int;

    /// `libxl_childproc_hooks` (libxl_event.h). libxl keeps a pointer to it: it must outlive
    /// every ctx it is given to (a `static`).
    #[repr(C)]
    #[derive(Debug)]
    pub struct libxl_childproc_hooks {
        /// `chldowner`
        pub chldowner: libxl_sigchld_owner,
        /// `fork_replacement` (optional)
        pub fork_replacement: Option<unsafe extern "C" fn(user: *mut c_void) -> pid_t>,
        /// `reaped_callback` (optional)
        pub reaped_callback:
            Option<unsafe extern "C" fn(pid: pid_t, status: c_int, user: *mut c_void) -> c_int>,
    }

    /// `libxl_uuid`: 16 octets, big-endian.
    #[repr(C)]
    #[derive(Debug, Clone, Copy)]
    pub struct libxl_uuid {
        /// `uuid`
        pub uuid: [u8; 16],
    }

    /// `libxl_hwcap`
    pub type libxl_hwcap = [u32; 8];

    /// `libxl_dominfo` (4.17), every field, in header order.
    #[repr(C)]
    #[derive(Debug)]
    pub struct libxl_dominfo {
        /// `uuid`
        pub uuid: libxl_uuid,
        /// `domid`
        pub domid: libxl_domid,
        /// `ssidref`
        pub ssidref: u32,
        /// `ssid_label` (malloc'd; freed by `libxl_dominfo_dispose`)
        pub ssid_label: *mut c_char,
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
        /// `never_stop`
        pub never_stop: bool,
        /// `shutdown_reason`
        pub shutdown_reason: libxl_shutdown_reason,
        /// `outstanding_memkb`
        pub outstanding_memkb: u64,
        /// `current_memkb`
        pub current_memkb: u64,
        /// `shared_memkb`
        pub shared_memkb: u64,
        /// `paged_memkb`
        pub paged_memkb: u64,
        /// `max_memkb`
        pub max_memkb: u64,
        /// `cpu_time` (ns)
        pub cpu_time: u64,
        /// `vcpu_max_id`
        pub vcpu_max_id: u32,
        /// `vcpu_online`
        pub vcpu_online: u32,
        /// `cpupool`
        pub cpupool: u32,
        /// `gpaddr_bits`
        pub gpaddr_bits: u8,
        /// `domain_type`
        pub domain_type: libxl_domain_type,
    }

    /// `libxl_physinfo` (4.17), every field, in header order.
    #[repr(C)]
    #[derive(Debug)]
    pub struct libxl_physinfo {
        /// `threads_per_core`
        pub threads_per_core: u32,
        /// `cores_per_socket`
        pub cores_per_socket: u32,
        /// `max_cpu_id`
        pub max_cpu_id: u32,
        /// `nr_cpus`
        pub nr_cpus: u32,
        /// `cpu_khz`
        pub cpu_khz: u32,
        /// `total_pages`
        pub total_pages: u64,
        /// `free_pages`
        pub free_pages: u64,
        /// `scrub_pages`
        pub scrub_pages: u64,
        /// `outstanding_pages`
        pub outstanding_pages: u64,
        /// `sharing_freed_pages`
        pub sharing_freed_pages: u64,
        /// `sharing_used_frames`
        pub sharing_used_frames: u64,
        /// `max_possible_mfn`
        pub max_possible_mfn: u64,
        /// `nr_nodes`
        pub nr_nodes: u32,
        /// `hw_cap`
        pub hw_cap: libxl_hwcap,
        /// `cap_hvm`
        pub cap_hvm: bool,
        /// `cap_pv`
        pub cap_pv: bool,
        /// `cap_hvm_directio`
        pub cap_hvm_directio: bool,
        /// `cap_hap`
        pub cap_hap: bool,
        /// `cap_shadow`
        pub cap_shadow: bool,
        /// `cap_iommu_hap_pt_share`
        pub cap_iommu_hap_pt_share: bool,
        /// `cap_vmtrace`
        pub cap_vmtrace: bool,
        /// `cap_vpmu`
        pub cap_vpmu: bool,
        /// `cap_gnttab_v1`
        pub cap_gnttab_v1: bool,
        /// `cap_gnttab_v2`
        pub cap_gnttab_v2: bool,
    }

    /// `libxl_version_info` (4.17), every field, in header order. libxl owns the one it
    /// returns (cached in the ctx): never written, never freed by the caller.
    #[repr(C)]
    #[derive(Debug)]
    pub struct libxl_version_info {
        /// `xen_version_major`
        pub xen_version_major: c_int,
        /// `xen_version_minor`
        pub xen_version_minor: c_int,
        /// `xen_version_extra`
        pub xen_version_extra: *mut c_char,
        /// `compiler`
        pub compiler: *mut c_char,
        /// `compile_by`
        pub compile_by: *mut c_char,
        /// `compile_domain`
        pub compile_domain: *mut c_char,
        /// `compile_date`
        pub compile_date: *mut c_char,
        /// `capabilities`
        pub capabilities: *mut c_char,
        /// `changeset`
        pub changeset: *mut c_char,
        /// `virt_start`
        pub virt_start: u64,
        /// `pagesize`
        pub pagesize: c_int,
        /// `commandline`
        pub commandline: *mut c_char,
        /// `build_id`
        pub build_id: *mut c_char,
    }

    extern "C" {
        /// C `stderr` (glibc and musl both export it as a data symbol).
        pub static mut stderr: *mut FILE;
        /// C `free`, for strings libxl returns from malloc.
        pub fn free(ptr: *mut c_void);

        /// xentoollog.h
        pub fn xtl_createlogger_stdiostream(
            f: *mut FILE,
            min_level: xentoollog_level,
            flags: c_uint,
        ) -> *mut xentoollog_logger_stdiostream;
        /// xentoollog.h (NULL is OK)
        pub fn xtl_logger_destroy(logger: *mut xentoollog_logger);

        /// libxl.h
        pub fn libxl_ctx_alloc(
            pctx: *mut *mut libxl_ctx,
            version: c_int,
            flags: c_uint,
            lg: *mut xentoollog_logger,
        ) -> c_int;
        /// libxl.h (NULL is OK)
        pub fn libxl_ctx_free(ctx: *mut libxl_ctx) -> c_int;
        /// libxl_event.h: call right after `libxl_ctx_alloc`, before libxl may have children;
        /// `hooks` is not copied.
        pub fn libxl_childproc_setmode(
            ctx: *mut libxl_ctx,
            hooks: *const libxl_childproc_hooks,
            user: *mut c_void,
        );

        /// libxl.h: NULL on failure; free with `libxl_dominfo_list_free`.
        pub fn libxl_list_domain(
            ctx: *mut libxl_ctx,
            nb_domain_out: *mut c_int,
        ) -> *mut libxl_dominfo;
        /// libxl.h
        pub fn libxl_dominfo_list_free(list: *mut libxl_dominfo, nb_domain: c_int);
        /// libxl.h (`info_r` may be NULL to test existence)
        pub fn libxl_domain_info(
            ctx: *mut libxl_ctx,
            info_r: *mut libxl_dominfo,
            domid: u32,
        ) -> c_int;
        /// _libxl_types.h
        pub fn libxl_dominfo_init(p: *mut libxl_dominfo);
        /// _libxl_types.h
        pub fn libxl_dominfo_dispose(p: *mut libxl_dominfo);

        /// libxl_utils.h: malloc'd, free with `free`; NULL on failure.
        pub fn libxl_domid_to_name(ctx: *mut libxl_ctx, domid: u32) -> *mut c_char;
        /// libxl_utils.h
        pub fn libxl_name_to_domid(
            ctx: *mut libxl_ctx,
            name: *const c_char,
            domid: *mut u32,
        ) -> c_int;

        /// libxl.h (4.17: trailing `ao_how`, NULL for synchronous)
        pub fn libxl_domain_pause(
            ctx: *mut libxl_ctx,
            domid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_domain_unpause(
            ctx: *mut libxl_ctx,
            domid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_domain_shutdown(
            ctx: *mut libxl_ctx,
            domid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_domain_reboot(
            ctx: *mut libxl_ctx,
            domid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_domain_destroy(
            ctx: *mut libxl_ctx,
            domid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_domain_suspend_only(
            ctx: *mut libxl_ctx,
            domid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_domain_resume(
            ctx: *mut libxl_ctx,
            domid: u32,
            suspend_cancel: c_int,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;
        /// libxl.h
        pub fn libxl_send_trigger(
            ctx: *mut libxl_ctx,
            domid: u32,
            trigger: libxl_trigger,
            vcpuid: u32,
            ao_how: *const libxl_asyncop_how,
        ) -> c_int;

        /// libxl.h
        pub fn libxl_get_physinfo(ctx: *mut libxl_ctx, physinfo: *mut libxl_physinfo) -> c_int;
        /// _libxl_types.h
        pub fn libxl_physinfo_init(p: *mut libxl_physinfo);
        /// _libxl_types.h
        pub fn libxl_physinfo_dispose(p: *mut libxl_physinfo);
        /// libxl.h: owned by the ctx; NULL on failure.
        pub fn libxl_get_version_info(ctx: *mut libxl_ctx) -> *const libxl_version_info;
    }
}
