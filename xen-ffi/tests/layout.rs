//! Layout test (feature `libxl`): compiles a small C program against the installed libxl
//! headers with the system `cc`, and compares every struct size, every field offset and size,
//! every constant and every function signature the raw layer declares with what the C
//! compiler sees. Needs `cc` and `pkg-config` with libxen-dev; does no Xen call.
#![cfg(feature = "libxl")]

use std::collections::BTreeMap;
use std::mem::{offset_of, size_of};
use std::path::PathBuf;
use std::process::Command;
use xen_ffi::raw;

/// The size of a field, from an accessor closure.
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// `(struct, field)` rows: Rust offset and size, and the C expression printing the same.
macro_rules! fields {
    ($rows:ident, $c:ident, $ty:ident { $($field:ident),* $(,)? }) => {
        $rows.insert(
            format!("{} sizeof", stringify!($ty)),
            (size_of::<raw::$ty>(), 0),
        );
        $c.push_str(&format!(
            "printf(\"%s sizeof %zu 0\\n\", \"{0}\", sizeof({0}));\n",
            stringify!($ty)
        ));
        $(
            $rows.insert(
                format!("{}.{}", stringify!($ty), stringify!($field)),
                (
                    offset_of!(raw::$ty, $field),
                    field_size(|s: &raw::$ty| &s.$field),
                ),
            );
            $c.push_str(&format!(
                "printf(\"%s %zu %zu\\n\", \"{0}.{1}\", offsetof({0}, {1}), sizeof((({0} *)0)->{1}));\n",
                stringify!($ty),
                stringify!($field)
            ));
        )*
    };
}

/// Integer constants: Rust value and the C name printing the same.
macro_rules! constants {
    ($rows:ident, $c:ident, $($name:ident),* $(,)?) => {
        $(
            $rows.insert(format!("{} value", stringify!($name)), (raw::$name as i64, 0));
            $c.push_str(&format!(
                "printf(\"%s value %lld 0\\n\", \"{0}\", (long long){0});\n",
                stringify!($name)
            ));
        )*
    };
}

/// Function pointers typed exactly as `raw` declares them: `cc -Werror` rejects any
/// assignment whose type differs from the header's prototype.
const SIGNATURES: &str = r#"
typedef struct xentoollog_logger_stdiostream xtl_stdio;
static void *signatures[] = {0};
static xtl_stdio *(*p_xtl_create)(FILE *, xentoollog_level, unsigned) = xtl_createlogger_stdiostream;
static void (*p_xtl_destroy)(xentoollog_logger *) = xtl_logger_destroy;
static int (*p_ctx_alloc)(libxl_ctx **, int, unsigned, xentoollog_logger *) = libxl_ctx_alloc;
static int (*p_ctx_free)(libxl_ctx *) = libxl_ctx_free;
static libxl_dominfo *(*p_list)(libxl_ctx *, int *) = libxl_list_domain;
static void (*p_list_free)(libxl_dominfo *, int) = libxl_dominfo_list_free;
static int (*p_info)(libxl_ctx *, libxl_dominfo *, uint32_t) = libxl_domain_info;
static void (*p_di_init)(libxl_dominfo *) = libxl_dominfo_init;
static void (*p_di_dispose)(libxl_dominfo *) = libxl_dominfo_dispose;
static char *(*p_to_name)(libxl_ctx *, uint32_t) = libxl_domid_to_name;
static int (*p_to_domid)(libxl_ctx *, const char *, uint32_t *) = libxl_name_to_domid;
typedef int (*lifecycle)(libxl_ctx *, uint32_t, const libxl_asyncop_how *);
static lifecycle p_lifecycle[] = {
    libxl_domain_pause, libxl_domain_unpause, libxl_domain_shutdown, libxl_domain_reboot,
    libxl_domain_destroy, libxl_domain_suspend_only,
};
static int (*p_resume)(libxl_ctx *, uint32_t, int, const libxl_asyncop_how *) = libxl_domain_resume;
static int (*p_trigger)(libxl_ctx *, uint32_t, libxl_trigger, uint32_t, const libxl_asyncop_how *) = libxl_send_trigger;
static int (*p_physinfo)(libxl_ctx *, libxl_physinfo *) = libxl_get_physinfo;
static void (*p_pi_init)(libxl_physinfo *) = libxl_physinfo_init;
static void (*p_pi_dispose)(libxl_physinfo *) = libxl_physinfo_dispose;
static const libxl_version_info *(*p_version)(libxl_ctx *) = libxl_get_version_info;
static void (*p_setmode)(libxl_ctx *, const libxl_childproc_hooks *, void *) = libxl_childproc_setmode;
static void assign_hooks(libxl_childproc_hooks *h) {
    pid_t (*fork_replacement)(void *) = 0;
    int (*reaped)(pid_t, int, void *) = 0;
    h->fork_replacement = fork_replacement;
    h->reaped_callback = reaped;
}
"#;

fn pkg_config(args: &[&str]) -> Vec<String> {
    let output = Command::new("pkg-config")
        .args(args)
        .output()
        .expect("pkg-config runs");
    assert!(
        output.status.success(),
        "pkg-config {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn raw_structs_constants_and_signatures_match_the_installed_headers() {
    let mut rust: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut consts: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut body = String::new();
    fields!(rust, body, libxl_uuid { uuid });
    fields!(
        rust,
        body,
        libxl_dominfo {
            uuid,
            domid,
            ssidref,
            ssid_label,
            running,
            blocked,
            paused,
            shutdown,
            dying,
            never_stop,
            shutdown_reason,
            outstanding_memkb,
            current_memkb,
            shared_memkb,
            paged_memkb,
            max_memkb,
            cpu_time,
            vcpu_max_id,
            vcpu_online,
            cpupool,
            gpaddr_bits,
            domain_type,
        }
    );
    fields!(
        rust,
        body,
        libxl_physinfo {
            threads_per_core,
            cores_per_socket,
            max_cpu_id,
            nr_cpus,
            cpu_khz,
            total_pages,
            free_pages,
            scrub_pages,
            outstanding_pages,
            sharing_freed_pages,
            sharing_used_frames,
            max_possible_mfn,
            nr_nodes,
            hw_cap,
            cap_hvm,
            cap_pv,
            cap_hvm_directio,
            cap_hap,
            cap_shadow,
            cap_iommu_hap_pt_share,
            cap_vmtrace,
            cap_vpmu,
            cap_gnttab_v1,
            cap_gnttab_v2,
        }
    );
    fields!(
        rust,
        body,
        libxl_version_info {
            xen_version_major,
            xen_version_minor,
            xen_version_extra,
            compiler,
            compile_by,
            compile_domain,
            compile_date,
            capabilities,
            changeset,
            virt_start,
            pagesize,
            commandline,
            build_id,
        }
    );
    fields!(
        rust,
        body,
        libxl_childproc_hooks {
            chldowner,
            fork_replacement,
            reaped_callback,
        }
    );
    // Enum-typed C fields and parameters: Rust declares them as 4-byte integers.
    for (name, size) in [
        (
            "libxl_shutdown_reason",
            size_of::<raw::libxl_shutdown_reason>(),
        ),
        ("libxl_domain_type", size_of::<raw::libxl_domain_type>()),
        ("libxl_trigger", size_of::<raw::libxl_trigger>()),
        ("libxl_sigchld_owner", size_of::<raw::libxl_sigchld_owner>()),
        ("pid_t", size_of::<raw::pid_t>()),
        ("xentoollog_level", size_of::<raw::xentoollog_level>()),
        ("libxl_domid", size_of::<raw::libxl_domid>()),
        ("libxl_hwcap", size_of::<raw::libxl_hwcap>()),
    ] {
        rust.insert(format!("{name} sizeof"), (size, 0));
        body.push_str(&format!(
            "printf(\"%s sizeof %zu 0\\n\", \"{name}\", sizeof({name}));\n"
        ));
    }
    let mut constant_body = String::new();
    constants!(
        consts,
        constant_body,
        XTL_ERROR,
        LIBXL_TRIGGER_POWER,
        libxl_sigchld_owner_libxl,
        libxl_sigchld_owner_libxl_always_selective_reap,
        LIBXL_VERSION,
        LIBXL_SHUTDOWN_REASON_UNKNOWN,
        LIBXL_SHUTDOWN_REASON_POWEROFF,
        LIBXL_SHUTDOWN_REASON_REBOOT,
        LIBXL_SHUTDOWN_REASON_SUSPEND,
        LIBXL_SHUTDOWN_REASON_CRASH,
        LIBXL_SHUTDOWN_REASON_WATCHDOG,
        LIBXL_SHUTDOWN_REASON_SOFT_RESET,
        ERROR_NONSPECIFIC,
        ERROR_VERSION,
        ERROR_FAIL,
        ERROR_NI,
        ERROR_NOMEM,
        ERROR_INVAL,
        ERROR_BADFAIL,
        ERROR_GUEST_TIMEDOUT,
        ERROR_TIMEDOUT,
        ERROR_NOPARAVIRT,
        ERROR_NOT_READY,
        ERROR_LOCK_FAIL,
        ERROR_DOMAIN_NOTFOUND,
        ERROR_ABORTED,
        ERROR_NOTFOUND,
        ERROR_DOMAIN_DESTROYED,
        XC_PAGE_SIZE,
    );

    let source = format!(
        "#include <stddef.h>\n#include <stdio.h>\n#include <stdint.h>\n#include <xenctrl.h>\n\
         #include <libxl.h>\n#include <libxl_utils.h>\n#include <xentoollog.h>\n{SIGNATURES}\n\
         int main(void) {{\n(void)signatures;(void)p_xtl_create;(void)p_xtl_destroy;\
         (void)p_ctx_alloc;(void)p_ctx_free;(void)p_list;(void)p_list_free;(void)p_info;\
         (void)p_di_init;(void)p_di_dispose;(void)p_to_name;(void)p_to_domid;(void)p_lifecycle;\
         (void)p_resume;(void)p_trigger;(void)p_physinfo;(void)p_pi_init;(void)p_pi_dispose;\
         (void)p_version;(void)p_setmode;(void)assign_hooks;\n{body}{constant_body}return 0;\n}}\n"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xen-ffi-layout");
    std::fs::create_dir_all(&dir).expect("temp dir");
    let c_file = dir.join("layout.c");
    let exe = dir.join("layout");
    std::fs::write(&c_file, source).expect("write layout.c");
    let compiled = Command::new("cc")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-o")
        .arg(&exe)
        .arg(&c_file)
        .args(pkg_config(&["--cflags", "xenlight", "xencontrol"]))
        .args(pkg_config(&["--libs", "xenlight", "xentoollog"]))
        .output()
        .expect("cc runs");
    assert!(
        compiled.status.success(),
        "the C layout program (raw declarations vs headers) did not compile: {}",
        String::from_utf8_lossy(&compiled.stderr)
    );
    let run = Command::new(&exe).output().expect("layout program runs");
    assert!(run.status.success(), "layout program failed");
    let stdout = String::from_utf8(run.stdout).expect("utf-8");

    let mut drifts = Vec::new();
    let mut seen = 0;
    for line in stdout.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let [name, rest @ ..] = words.as_slice() else {
            continue;
        };
        match rest {
            ["sizeof", size, _] => {
                let key = format!("{name} sizeof");
                let c: usize = size.parse().expect("number");
                let r = rust.get(&key).map(|row| row.0);
                if r != Some(c) {
                    drifts.push(format!("sizeof({name}): C {c}, Rust {r:?}"));
                }
            }
            ["value", value, _] => {
                let key = format!("{name} value");
                let c: i64 = value.parse().expect("number");
                let r = consts.get(&key).map(|row| row.0);
                if r != Some(c) {
                    drifts.push(format!("{name}: C {c}, Rust {r:?}"));
                }
            }
            [offset, size] => {
                let c = (
                    offset.parse::<usize>().expect("number"),
                    size.parse::<usize>().expect("number"),
                );
                let r = rust.get(*name).copied();
                if r != Some(c) {
                    drifts.push(format!("{name}: C offset {} size {}, Rust {r:?}", c.0, c.1));
                }
            }
            _ => panic!("unexpected line from the layout program: {line}"),
        }
        seen += 1;
        println!("{line}");
    }
    assert_eq!(
        seen,
        rust.len() + consts.len(),
        "the C program printed a different number of rows than Rust declared"
    );
    assert!(
        drifts.is_empty(),
        "raw declarations drifted from the libxl headers:\n{}",
        drifts.join("\n")
    );
}
