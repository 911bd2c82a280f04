//! The safe layer: one place that turns libxl return codes into errors naming the operation.

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
}
