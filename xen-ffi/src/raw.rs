//! Raw libxl items, exactly as `_libxl_types.h` (Xen 4.17) defines them. No logic here.
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
