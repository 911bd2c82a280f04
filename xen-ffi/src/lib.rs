//! libxenlight (Xen 4.17) for xenplug, git2-rs style: [`raw`] holds only C declarations and
//! constants, [`safe`] wraps them in owned types and turns return codes into `Result`.
//!
//! The libxl functions themselves are declared and linked only with the `libxl` feature, so
//! the default build needs no Xen package.

pub mod raw;
pub mod safe;
