//! Backend helper for the libxl and xl backends: runs the `xl` program.
//!
//! Every run has a time limit (the whole process group is killed at it), never goes through a
//! shell (arguments are passed as data), reads nothing from stdin and runs with `LC_ALL=C`, so
//! numbers print the same on every host. Its stdout and stderr go to in-memory files rather
//! than pipes: `xl create` leaves a monitor process behind that keeps its descriptors open,
//! and reading a pipe to the end would wait for that process. Output read back is bounded;
//! a failure's error names the command and quotes xl's own error line.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How often a running `xl` is looked at.
const XL_WAIT_STEP: Duration = Duration::from_millis(20);
/// Bytes of `xl`'s stderr read after it failed.
const XL_STDERR_MAX: usize = 64 * 1024;
/// Characters of `xl`'s error line quoted in a UPnP error description.
const XL_ERROR_MAX: usize = 256;

/// An empty in-memory file named `name`, to catch a child's output without a pipe.
fn capture_file(name: &std::ffi::CStr) -> io::Result<File> {
    // SAFETY: a valid NUL-terminated name and flags; the result is checked.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { <File as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// Up to `max` bytes of what a child wrote into `file` (through its own descriptor), and
/// whether there was more.
fn read_back(mut file: File, max: usize) -> (Vec<u8>, bool) {
    let mut bytes = Vec::new();
    if file.seek(io::SeekFrom::Start(0)).is_ok() {
        let _ = file.take(max as u64 + 1).read_to_end(&mut bytes);
    }
    let more = bytes.len() > max;
    bytes.truncate(max);
    (bytes, more)
}

/// The line of xl's stderr that says what went wrong: the first non-empty one that is not
/// xl's "Parsing config from FILE" preamble, cut to `XL_ERROR_MAX` characters.
pub fn error_line(stderr: &[u8]) -> Option<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty() && !line.starts_with("Parsing config from"))
        .map(|line| line.chars().take(XL_ERROR_MAX).collect())
}

/// `xl ARGS` as shown in messages.
fn shown(xl: &Path, args: &[&OsStr]) -> String {
    let words: Vec<String> = args
        .iter()
        .map(|arg| arg.to_string_lossy().into_owned())
        .collect();
    format!("{} {}", xl.display(), words.join(" "))
}

/// Runs `xl ARGS` for at most `timeout`, stdout into `stdout` (or /dev/null). Ok with the
/// stderr capture when xl exits 0; otherwise the error quotes xl's error line.
fn run(xl: &Path, args: &[&OsStr], timeout: Duration, stdout: Option<&File>) -> Result<(), String> {
    let shown = shown(xl, args);
    let stderr =
        capture_file(c"xl-stderr").map_err(|e| format!("{shown}: cannot capture stderr: {e}"))?;
    let child_stderr = stderr
        .try_clone()
        .map_err(|e| format!("{shown}: cannot capture stderr: {e}"))?;
    let child_stdout = match stdout {
        Some(file) => Stdio::from(
            file.try_clone()
                .map_err(|e| format!("{shown}: cannot capture stdout: {e}"))?,
        ),
        None => Stdio::null(),
    };
    let mut child = Command::new(xl)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(child_stdout)
        .stderr(child_stderr)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{shown}: cannot start: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status: ExitStatus = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                if let Ok(group) = i32::try_from(child.id()) {
                    // SAFETY: signals the process group this child leads; no memory involved.
                    unsafe { libc::kill(-group, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{shown}: timed out after {} s (killed)",
                    timeout.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(XL_WAIT_STEP),
            Err(error) => return Err(format!("{shown}: cannot wait: {error}")),
        }
    };
    if status.success() {
        return Ok(());
    }
    let (captured, _) = read_back(stderr, XL_STDERR_MAX);
    let why = error_line(&captured).unwrap_or_else(|| match status.code() {
        Some(code) => format!("exit status {code}"),
        None => "killed by a signal".to_string(),
    });
    Err(format!("{shown}: {why}"))
}

/// Runs `xl ARGS` (stdout to /dev/null) for at most `timeout`; on failure the error names the
/// command and quotes xl's error line.
pub fn run_xl(xl: &Path, args: &[&OsStr], timeout: Duration) -> Result<(), String> {
    run(xl, args, timeout, None)
}

/// Runs `xl ARGS` for at most `timeout` and returns what it printed on stdout (invalid UTF-8
/// replaced); more than `max` bytes of it is an error, as is a failure of xl.
pub fn xl_output(
    xl: &Path,
    args: &[&OsStr],
    timeout: Duration,
    max: usize,
) -> Result<String, String> {
    let stdout = capture_file(c"xl-stdout")
        .map_err(|e| format!("{}: cannot capture stdout: {e}", shown(xl, args)))?;
    let reader = stdout
        .try_clone()
        .map_err(|e| format!("{}: cannot capture stdout: {e}", shown(xl, args)))?;
    run(xl, args, timeout, Some(&stdout))?;
    let (bytes, more) = read_back(reader, max);
    if more {
        return Err(format!(
            "{}: printed more than {max} bytes",
            shown(xl, args)
        ));
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    fn fake_xl(tag: &str, script: &str) -> (PathBuf, PathBuf) {
        let dir = std::env::temp_dir().join(format!("xenplug-xlrun-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let xl = dir.join("xl");
        fs::write(&xl, script).unwrap();
        fs::set_permissions(&xl, fs::Permissions::from_mode(0o755)).unwrap();
        (dir, xl)
    }

    #[test]
    fn the_error_line_skips_the_preamble() {
        let stderr = b"Parsing config from /etc/xen/web.cfg\n\nlibxl: error: domain exists\nmore\n";
        assert_eq!(
            error_line(stderr).as_deref(),
            Some("libxl: error: domain exists")
        );
        assert_eq!(error_line(b"Parsing config from x\n"), None);
        assert_eq!(
            error_line(&[b'x'; 1000]).map(|l| l.len()),
            Some(XL_ERROR_MAX)
        );
    }

    #[test]
    fn xl_runs_and_its_failures_read_well() {
        let (dir, xl) = fake_xl(
            "run",
            "#!/bin/sh\nif [ \"$2\" = ok ]; then exit 0; fi\n\
             if [ \"$2\" = slow ]; then sleep 30; fi\n\
             echo \"Parsing config from $2\" >&2\necho \"cannot create $2\" >&2\nexit 3\n",
        );
        let create = OsStr::new("create");
        assert_eq!(
            run_xl(&xl, &[create, OsStr::new("ok")], Duration::from_secs(20)),
            Ok(())
        );
        let error = run_xl(
            &xl,
            &[create, OsStr::new("web.cfg")],
            Duration::from_secs(20),
        )
        .unwrap_err();
        assert_eq!(
            error,
            format!("{} create web.cfg: cannot create web.cfg", xl.display())
        );
        let error = run_xl(
            &xl,
            &[create, OsStr::new("slow")],
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(error.ends_with("timed out after 0 s (killed)"), "{error}");
        let error = run_xl(&dir.join("absent"), &[create], Duration::from_secs(1)).unwrap_err();
        assert!(error.contains("cannot start"), "{error}");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn output_is_read_back_bounded_and_in_the_c_locale() {
        let (dir, xl) = fake_xl(
            "output",
            "#!/bin/sh\ncase $1 in\n\
             locale) echo \"$LC_ALL\" ;;\n\
             big) i=0; while [ $i -lt 100 ]; do echo 0123456789; i=$((i+1)); done ;;\n\
             fail) echo partial; echo 'libxl: error: no such domain' >&2; exit 1 ;;\n\
             esac\n",
        );
        let limit = Duration::from_secs(20);
        assert_eq!(
            xl_output(&xl, &[OsStr::new("locale")], limit, 1024).as_deref(),
            Ok("C\n")
        );
        assert_eq!(
            xl_output(&xl, &[OsStr::new("big")], limit, 1100).map(|out| out.len()),
            Ok(1100)
        );
        let error = xl_output(&xl, &[OsStr::new("big")], limit, 1000).unwrap_err();
        assert!(error.ends_with("printed more than 1000 bytes"), "{error}");
        let error = xl_output(&xl, &[OsStr::new("fail")], limit, 1000).unwrap_err();
        assert!(
            error.ends_with("fail: libxl: error: no such domain"),
            "{error}"
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
