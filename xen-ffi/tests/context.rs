//! Context test (feature `libxl`): opening libxl where Xen is absent must fail with a readable
//! error, twice, without crashing and without leaking file descriptors. Where Xen is present
//! (a dom0), it must instead open and list dom0. One test in its own process, so the
//! descriptor count is not disturbed by other tests.
#![cfg(feature = "libxl")]

use std::path::Path;
use xen_ffi::raw;
use xen_ffi::safe::Context;

/// Open descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}

/// Whether this machine is a Xen dom0 libxl can reach.
fn xen_present() -> bool {
    Path::new("/proc/xen/privcmd").exists() || Path::new("/dev/xen/privcmd").exists()
}

#[test]
fn context_fails_cleanly_without_xen_and_works_with_it() {
    let before = open_fds();
    for _ in 0..2 {
        match Context::new() {
            Err(error) => {
                assert!(!xen_present(), "Xen is present but libxl failed: {error}");
                assert_eq!(error.operation, "libxl_ctx_alloc");
                assert_eq!(error.code, raw::ERROR_FAIL);
                assert_eq!(error.to_string(), "libxl_ctx_alloc: operation failed (-3)");
            }
            Ok(context) => {
                assert!(xen_present(), "libxl opened without /proc/xen or /dev/xen");
                let domains = context.domains().expect("libxl_list_domain in dom0");
                assert!(domains.iter().any(|domain| domain.domid == 0));
                assert_eq!(context.name_of(0).as_deref(), Ok("Domain-0"));
                assert_eq!(context.domid_of("Domain-0"), Ok(0));
                assert!(context.physinfo().expect("physinfo").cpus > 0);
                assert!(context.version().expect("version").starts_with("4."));
            }
        }
    }
    assert_eq!(open_fds(), before, "Context::new leaked file descriptors");
}
