//! The `xl` backend: the Xen host this process runs in (dom0), through the host's own `xl`
//! command, so that one binary (the static musl build included) drives every Xen 4.x release
//! without linking libxl, whose ABI changes with each one.
//!
//! Domains are the rows of `xl list -v` (UUID, name, state letters, memory, vCPUs; see
//! [`output`]), except dom0 and any domain whose name cannot be read yet; then the domains
//! suspended to disk ([`super::saved`]) and those only defined by xl config files
//! ([`config`]), merged exactly as the libxl backend merges them ([`super::libxl::merge`]).
//! Which listing this xl supports is found once at start, not assumed: `xl list -v` when its
//! header has a UUID column, else `xl list` joined by domid with `xl list -l`'s JSON. Host
//! facts come from `xl info`, read at start and again once older than [`XL_HOST_MAX_AGE`].
//!
//! Operations follow the libxl backend's plan ([`super::libxl::plan`]) and run xl: `pause`,
//! `unpause`, `shutdown -F`, `reboot`, `destroy`, `save` / `restore` for Suspend and Resume to
//! disk, `create FILE` for Start. xl has no command that resumes a domain that suspended
//! itself in place (libxl's `libxl_domain_resume`), so that Resume is refused with a word on
//! what to do. Every run is bounded in time and output and never goes through a shell
//! ([`command`]); an error quotes xl's own message.
//!
//! Changes are learned from xenstore watches ([`super::watch`]), with polling every 2 s as the
//! fallback. The read right after `@introduceDomain` does not run xl: it adds the domains
//! xenstore has and the last listing lacks, as paused (what xl create and xl restore leave a
//! domain as until they finish), so a new domain is announced at once; the extra reads that
//! follow, from 0.5 s on, run `xl list -v` and show its real state. Under QEMU's emulation one
//! `xl list -v` takes 0.1 to 0.6 s on an idle dom0 and up to 3 s while `xl create` runs beside
//! it. Blocking: the net layer calls it off the event loop.

pub mod command;
pub mod config;
pub mod output;

use self::command::{run_xl, xl_output};
use self::config::ConfigDir;
use self::output::{Row, XlInfo};
use super::libxl::{keep_after_failed_save, listed_name, live_domain, merge, plan, Step, Target};
use super::saved::{SaveDir, SavedDomain};
use super::watch::{read_new_domains, DomainWatch};
use super::{Backend, BackendError, Domain, HostInfo, Operation};
use crate::consts::{XL_CONTROL_TIMEOUT, XL_CREATE_TIMEOUT, XL_RESTORE_TIMEOUT, XL_SAVE_TIMEOUT};
use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Longest `xl list` or `xl info` may run (about 0.1 s on a quiet host, a few seconds under
/// emulation).
const XL_QUERY_TIMEOUT: Duration = Duration::from_secs(20);
/// Largest output of `xl list` or `xl info` read (`xl list -l` of hundreds of domains fits).
const XL_OUTPUT_MAX: usize = 8 * 1024 * 1024;
/// How long `xl info`'s answer is used before it is read again. What is read of it (version,
/// CPUs, total memory) changes with a reboot of the hypervisor, hardly otherwise; reading it
/// at every snapshot would double the work behind each change (measured under QEMU: a second
/// `xl` run, up to 2 s while `xl create` shares dom0's CPU).
pub const XL_HOST_MAX_AGE: Duration = Duration::from_secs(3600);

/// How this xl lists domains with their UUIDs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    /// `xl list -v`.
    Verbose,
    /// `xl list`, joined with `xl list -l`.
    PlainAndLong,
}

impl ListFormat {
    /// The command(s), for the log.
    pub fn describe(self) -> &'static str {
        match self {
            ListFormat::Verbose => "xl list -v",
            ListFormat::PlainAndLong => "xl list and xl list -l",
        }
    }
}

/// The Resume of a domain that suspended itself in place, which xl cannot do.
fn resume_in_place_refused(domid: u32) -> BackendError {
    BackendError::Refused {
        code: "suspended in place".to_string(),
        detail: format!(
            "domain {domid} suspended itself in memory and xl has no command that resumes it \
             (libxl_domain_resume): Destroy it, or run the dom0 build's --backend libxl on \
             the Xen release it is built for"
        ),
        invalid_state: true,
    }
}

/// Suspend to disk with `xl save`: the sidecar first, then the image; a failure keeps the
/// image only when the domain is gone (`still_live` says whether it is there). Shared by the
/// libxl and xl backends.
pub fn save_to_disk(
    saves: &SaveDir,
    xl: &Path,
    saved: &SavedDomain,
    domid: u32,
    still_live: impl Fn() -> bool,
    label: &str,
) -> Result<(), BackendError> {
    let _busy = saves.busy(saved.uuid);
    saves.write_record(saved).map_err(BackendError::Failed)?;
    let domid = domid.to_string();
    let saving = run_xl(
        xl,
        &[
            OsStr::new("save"),
            OsStr::new(&domid),
            saved.image.as_os_str(),
        ],
        XL_SAVE_TIMEOUT,
    );
    if let Err(error) = saving {
        if keep_after_failed_save(still_live()) {
            log::warn!(
                "{label}: {error} failed and the domain is gone: keeping {} for a Resume",
                saved.image.display()
            );
        } else if let Err(why) = saves.remove(saved) {
            log::warn!("{label}: after a failed save: {why}");
        }
        return Err(BackendError::Failed(error));
    }
    Ok(())
}

/// Resume from disk with `xl restore IMAGE`, then the image and sidecar go. Shared by the
/// libxl and xl backends.
pub fn restore_from_disk(
    saves: &SaveDir,
    xl: &Path,
    saved: &SavedDomain,
) -> Result<(), BackendError> {
    let _busy = saves.busy(saved.uuid);
    run_xl(
        xl,
        &[OsStr::new("restore"), saved.image.as_os_str()],
        XL_RESTORE_TIMEOUT,
    )
    .map_err(BackendError::Failed)?;
    saves.remove(saved).map_err(|why| {
        BackendError::Failed(format!(
            "{} was restored, but {why}: remove it by hand, or it will be listed again once \
             the domain stops",
            saved.name
        ))
    })
}

/// The Xen host, through its `xl`.
pub struct XlBackend {
    xl: PathBuf,
    format: ListFormat,
    configs: ConfigDir,
    saves: SaveDir,
    watch: DomainWatch,
    /// `xl info`, with when it was read.
    info: Mutex<(Instant, XlInfo)>,
    /// Domids left out of the listing for want of a name, so that each is logged once.
    unnamed: Mutex<HashSet<u32>>,
    /// Lines of the listing that did not read, so that each is logged once.
    unread: Mutex<HashSet<String>>,
    /// The rows of the last listing through xl.
    last_rows: Mutex<Option<Vec<Row>>>,
}

impl XlBackend {
    /// Checks that `xl` runs here (`xl info`), finds how it lists domains and sets the
    /// xenstore watches. `config_dir` holds the xl config files, `save_dir` the images of
    /// suspended domains. Outside a dom0 this fails with xl's own message.
    pub fn open(
        config_dir: &Path,
        save_dir: &Path,
        xl: PathBuf,
    ) -> Result<XlBackend, BackendError> {
        let info = read_info(&xl).map_err(|why| {
            BackendError::Failed(format!(
                "{why} (the xl backend runs in dom0, with the Xen tools installed and \
                 xenstored running; --xl names the program)"
            ))
        })?;
        let format = detect_format(&xl).map_err(BackendError::Failed)?;
        log::info!(
            "xl: {} on Xen {}, domains from {}",
            xl.display(),
            info.version(),
            format.describe()
        );
        Ok(XlBackend {
            watch: DomainWatch::open("xl"),
            format,
            configs: ConfigDir::new(config_dir),
            saves: SaveDir::new(save_dir),
            info: Mutex::new((Instant::now(), info)),
            unnamed: Mutex::new(HashSet::new()),
            unread: Mutex::new(HashSet::new()),
            last_rows: Mutex::new(None),
            xl,
        })
    }

    /// The running Xen's version, as `xl info` said it at the last read (`4.20.5-pre`).
    pub fn xen_version(&self) -> String {
        self.info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .version()
    }

    fn query(&self, args: &[&str]) -> Result<String, BackendError> {
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        xl_output(&self.xl, &args, XL_QUERY_TIMEOUT, XL_OUTPUT_MAX).map_err(BackendError::Failed)
    }

    /// Every row xl lists, dom0 included; rows that do not read are logged once each.
    fn rows(&self) -> Result<Vec<Row>, BackendError> {
        let listing = match self.format {
            ListFormat::Verbose => output::parse_list(&self.query(&["list", "-v"])?, true)
                .map_err(|why| BackendError::Failed(format!("xl list -v: {why}")))?,
            ListFormat::PlainAndLong => {
                let plain = output::parse_list(&self.query(&["list"])?, false)
                    .map_err(|why| BackendError::Failed(format!("xl list: {why}")))?;
                let long = output::parse_long(&self.query(&["list", "-l"])?)
                    .map_err(|why| BackendError::Failed(format!("xl list -l: {why}")))?;
                output::Listing {
                    unread: plain.unread.clone(),
                    rows: output::with_long(plain, &long),
                }
            }
        };
        let mut logged = self.unread.lock().unwrap_or_else(|e| e.into_inner());
        for line in &listing.unread {
            if logged.len() < 1024 && logged.insert(line.clone()) {
                log::warn!(
                    "xl: a line of {} did not read: {line:?}",
                    self.format.describe()
                );
            }
        }
        *self.last_rows.lock().unwrap_or_else(|e| e.into_inner()) = Some(listing.rows.clone());
        Ok(listing.rows)
    }

    /// Right after `@introduceDomain`: the last listing, less the domains xenstore no longer
    /// has, plus those it has that the listing lacks, listed as paused (xl create and xl
    /// restore introduce a domain paused and unpause it last), without running xl, which
    /// takes seconds while `xl create` is still at work under emulation. `None` when there is
    /// no listing yet or xenstore cannot be read: xl is run then. The extra reads after the
    /// event (0.5 s on) go through xl.
    fn rows_after_introduction(&self) -> Option<Vec<Row>> {
        let mut rows = self
            .last_rows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()?;
        let introduced = match read_new_domains(|domid| rows.iter().any(|r| r.info.domid == domid))
        {
            Ok(introduced) => introduced,
            Err(why) => {
                log::debug!("xl: cannot read the new domains from xenstore ({why}): running xl");
                return None;
            }
        };
        // A domain released in the same burst (a reboot: the old domid goes, a new one
        // comes with the same UUID) is no longer under /local/domain.
        rows.retain(|row| introduced.present.contains(&row.info.domid));
        rows.extend(introduced.new.into_iter().map(|domain| Row {
            info: output::introduced_info(
                domain.domid,
                *domain.uuid.as_bytes(),
                domain.memory_kib,
                domain.vcpus,
            ),
            name: Some(domain.name),
        }));
        Some(rows)
    }

    /// Where `uuid` is: running (not dom0), saved to disk, or only in a config file.
    fn find(&self, uuid: Uuid) -> Result<(Target, Option<Row>), BackendError> {
        let rows = self.rows()?;
        if let Some(row) = rows
            .into_iter()
            .find(|row| row.info.domid != 0 && row.info.uuid == *uuid.as_bytes())
        {
            let target = Target::Live {
                domid: row.info.domid,
                state: super::libxl::run_state(&row.info),
            };
            return Ok((target, Some(row)));
        }
        if let Some(saved) = self.saves.domains().into_iter().find(|s| s.uuid == uuid) {
            return Ok((Target::Saved(saved), None));
        }
        self.configs
            .domains()
            .into_iter()
            .find(|defined| defined.uuid == uuid)
            .map(|defined| (Target::Defined(defined.path), None))
            .ok_or(BackendError::NoSuchDomain(uuid))
    }

    /// Whether a domain with `uuid` is listed and not being torn down.
    fn is_live(&self, uuid: Uuid) -> bool {
        self.rows().is_ok_and(|rows| {
            rows.iter()
                .any(|row| row.info.uuid == *uuid.as_bytes() && !row.info.dying)
        })
    }

    /// `xl ARGS... DOMID`, bounded by `timeout`.
    fn xl_domain(&self, args: &[&str], domid: u32, timeout: Duration) -> Result<(), BackendError> {
        let domid = domid.to_string();
        let mut full: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        full.push(OsStr::new(&domid));
        run_xl(&self.xl, &full, timeout).map_err(BackendError::Failed)
    }

    /// Suspend: the sidecar from the row, then `xl save`.
    fn save(&self, row: &Row) -> Result<(), BackendError> {
        let uuid = Uuid::from_bytes(row.info.uuid);
        let config = self.configs.domains().into_iter().find(|d| d.uuid == uuid);
        let name = row
            .name
            .clone()
            .or_else(|| config.as_ref().map(|d| d.name.clone()))
            .unwrap_or_else(|| format!("domain-{}", row.info.domid));
        let saved = super::libxl::saved_record(
            &row.info,
            name,
            config.map(|d| d.path),
            self.saves.image_path(uuid),
            self.saves.record_path(uuid),
        );
        save_to_disk(
            &self.saves,
            &self.xl,
            &saved,
            row.info.domid,
            || self.is_live(uuid),
            "xl",
        )
    }

    fn run(&self, step: Step, row: Option<Row>) -> Result<(), BackendError> {
        match step {
            Step::Nothing => Ok(()),
            Step::Create(path) => run_xl(
                &self.xl,
                &[OsStr::new("create"), path.as_os_str()],
                XL_CREATE_TIMEOUT,
            )
            .map_err(BackendError::Failed),
            Step::Pause(domid) => self.xl_domain(&["pause"], domid, XL_CONTROL_TIMEOUT),
            Step::Unpause(domid) => self.xl_domain(&["unpause"], domid, XL_CONTROL_TIMEOUT),
            Step::ResumeSuspended(domid) => Err(resume_in_place_refused(domid)),
            Step::Shutdown(domid) => self.xl_domain(&["shutdown", "-F"], domid, XL_CONTROL_TIMEOUT),
            Step::Reboot(domid) => self.xl_domain(&["reboot"], domid, XL_CONTROL_TIMEOUT),
            Step::Save(domid) => match row {
                Some(row) if row.info.domid == domid => self.save(&row),
                _ => Err(BackendError::Failed(format!("domain {domid} is gone"))),
            },
            Step::Restore(saved) => restore_from_disk(&self.saves, &self.xl, &saved),
            Step::Discard(saved) => self.saves.remove(&saved).map_err(BackendError::Failed),
            Step::Destroy(domid) => self.xl_domain(&["destroy"], domid, XL_CONTROL_TIMEOUT),
        }
    }
}

/// `xl info`, read.
fn read_info(xl: &Path) -> Result<XlInfo, String> {
    let text = xl_output(xl, &[OsStr::new("info")], XL_QUERY_TIMEOUT, XL_OUTPUT_MAX)?;
    output::parse_info(&text).map_err(|why| format!("{} info: {why}", xl.display()))
}

/// How this xl lists domains with UUIDs: `xl list -v` if its header has a UUID column, else
/// `xl list` with `xl list -l`.
fn detect_format(xl: &Path) -> Result<ListFormat, String> {
    let verbose = xl_output(
        xl,
        &[OsStr::new("list"), OsStr::new("-v")],
        XL_QUERY_TIMEOUT,
        XL_OUTPUT_MAX,
    )
    .and_then(|text| output::parse_list(&text, true).map(drop));
    let Err(why_not) = verbose else {
        return Ok(ListFormat::Verbose);
    };
    let plain = xl_output(xl, &[OsStr::new("list")], XL_QUERY_TIMEOUT, XL_OUTPUT_MAX)
        .and_then(|text| output::parse_list(&text, false).map(drop));
    let long = xl_output(
        xl,
        &[OsStr::new("list"), OsStr::new("-l")],
        XL_QUERY_TIMEOUT,
        XL_OUTPUT_MAX,
    )
    .and_then(|text| output::parse_long(&text).map(drop));
    match (plain, long) {
        (Ok(()), Ok(())) => {
            log::info!(
                "xl: `xl list -v` does not serve here ({why_not}): using xl list and xl list -l"
            );
            Ok(ListFormat::PlainAndLong)
        }
        (plain, long) => Err(format!(
            "cannot list domains with their UUIDs: xl list -v: {why_not}; xl list: {}; \
             xl list -l: {}",
            plain.err().unwrap_or_else(|| "ok".to_string()),
            long.err().unwrap_or_else(|| "ok".to_string())
        )),
    }
}

impl Backend for XlBackend {
    fn name(&self) -> &'static str {
        "xl"
    }

    fn host(&self) -> Result<HostInfo, BackendError> {
        let mut kept = self.info.lock().unwrap_or_else(|e| e.into_inner());
        if kept.0.elapsed() >= XL_HOST_MAX_AGE {
            *kept = (
                Instant::now(),
                read_info(&self.xl).map_err(BackendError::Failed)?,
            );
        }
        let info = &kept.1;
        Ok(HostInfo {
            // No source is reliable in dom0 (DMI may be absent or mangled): the state
            // directory keeps a generated one.
            uuid: None,
            name: crate::state::host_name(),
            hypervisor_version: info.version(),
            cpus: info.cpus,
            memory_mib: info.memory_mib,
        })
    }

    fn domains(&self) -> Result<Vec<Domain>, BackendError> {
        let defined = self.configs.domains();
        let saved = self.saves.domains();
        let mut unnamed = HashSet::new();
        let rows = match self.watch.take_introduced() {
            true => match self.rows_after_introduction() {
                Some(rows) => rows,
                None => self.rows()?,
            },
            false => self.rows()?,
        };
        let live: Vec<Domain> = rows
            .into_iter()
            .filter(|row| row.info.domid != 0)
            .filter_map(|row| {
                let Some(name) = listed_name(row.name) else {
                    unnamed.insert(row.info.domid);
                    return None;
                };
                live_domain(&row.info, name)
            })
            .collect();
        {
            let mut logged = self.unnamed.lock().unwrap_or_else(|e| e.into_inner());
            for domid in unnamed.difference(&logged) {
                log::debug!(
                    "xl: domain {domid} has no name yet (being built or torn down): not \
                     listed until it has one"
                );
            }
            *logged = unnamed;
        }
        Ok(merge(live, &saved, &defined))
    }

    fn apply(&self, uuid: Uuid, operation: Operation) -> Result<(), BackendError> {
        let (target, row) = self.find(uuid)?;
        let step = plan(operation, &target)?;
        log::info!("xl: {} {uuid}: {step:?}", operation.name());
        self.run(step, row)
    }

    fn wait_for_change(&self, limit: Duration) {
        self.watch.wait(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::RunState;
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    /// A fake xl: `xl info`, `xl list -v` from the file `list` beside it, and every other
    /// command appended to `calls`; `pause` of domain 9 fails as xl does.
    fn fake_xl(tag: &str, verbose: bool) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenplug-xlb-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("etc")).unwrap();
        let header = if verbose {
            "Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label"
        } else {
            "Name                                        ID   Mem VCPUs\tState\tTime(s)"
        };
        let script = format!(
            "#!/bin/sh\nd=$(dirname \"$0\")\ncase \"$1 $2\" in\n\
             'info ') printf 'host : h\\nnr_cpus : 4\\ntotal_memory : 4096\\nxen_major : 4\\n\
             xen_minor : 19\\nxen_extra : .1\\n' ;;\n\
             'list -v') [ {verbose} = true ] || {{ echo 'unknown option' >&2; exit 2; }}\n\
                echo '{header}'; cat \"$d/list\" ;;\n\
             'list ') echo '{header}'; sed 's/ [0-9a-f-]\\{{36\\}}.*//' \"$d/list\" ;;\n\
             'list -l') cat \"$d/long\" ;;\n\
             'pause 9') echo 'libxl: error: cannot pause domain 9' >&2; exit 1 ;;\n\
             *) echo \"$*\" >>\"$d/calls\" ;;\n\
             esac\n"
        );
        fs::write(dir.join("xl"), script).unwrap();
        fs::set_permissions(dir.join("xl"), fs::Permissions::from_mode(0o755)).unwrap();
        fs::write(
            dir.join("list"),
            "Domain-0                                     0   768     1     r-----      33.4 00000000-0000-0000-0000-000000000000        -                -\n\
             web                                          5   512     2     -b----       1.2 0e7d2ed6-f153-11f1-bef4-7b965ee376f5        -                -\n\
             (null)                                       6     0     0     --p---       0.0 1e7d2ed6-f153-11f1-bef4-7b965ee376f5        -                -\n\
             stuck                                        9   128     1     --p---       0.0 2e7d2ed6-f153-11f1-bef4-7b965ee376f5        -                -\n\
             asleep                                      10   128     1     ---ss-       0.0 3e7d2ed6-f153-11f1-bef4-7b965ee376f5        2                -\n",
        )
        .unwrap();
        fs::write(
            dir.join("long"),
            r#"[{"domid": 0, "config": {"c_info": {"name": "Domain-0"}}},
                {"domid": 5, "config": {"c_info": {"name": "web", "uuid": "0e7d2ed6-f153-11f1-bef4-7b965ee376f5"}}}]"#,
        )
        .unwrap();
        dir.join("xl")
    }

    fn open(xl: &Path) -> XlBackend {
        let dir = xl.parent().unwrap();
        XlBackend::open(&dir.join("etc"), &dir.join("save"), xl.to_path_buf()).unwrap()
    }

    fn calls(xl: &Path) -> String {
        fs::read_to_string(xl.parent().unwrap().join("calls")).unwrap_or_default()
    }

    #[test]
    fn domains_come_from_xl_list_v_without_dom0_and_unnamed_ones() {
        let xl = fake_xl("list", true);
        let backend = open(&xl);
        assert_eq!(backend.format, ListFormat::Verbose);
        let host = backend.host().unwrap();
        assert_eq!(host.hypervisor_version, "4.19.1");
        assert_eq!((host.cpus, host.memory_mib), (4, 4096));
        let domains = backend.domains().unwrap();
        let seen: Vec<(&str, RunState)> =
            domains.iter().map(|d| (d.name.as_str(), d.state)).collect();
        assert_eq!(
            seen,
            [
                ("asleep", RunState::Suspended),
                ("stuck", RunState::Paused),
                ("web", RunState::Blocked)
            ]
        );
        let web = &domains[2];
        assert_eq!(web.uuid.to_string(), "0e7d2ed6-f153-11f1-bef4-7b965ee376f5");
        assert_eq!((web.memory_kib, web.vcpus), (512 * 1024, 2));
        fs::remove_dir_all(xl.parent().unwrap()).unwrap();
    }

    #[test]
    fn operations_run_xl_and_its_errors_are_quoted() {
        let xl = fake_xl("ops", true);
        let backend = open(&xl);
        let web = Uuid::parse_str("0e7d2ed6-f153-11f1-bef4-7b965ee376f5").unwrap();
        let stuck = Uuid::parse_str("2e7d2ed6-f153-11f1-bef4-7b965ee376f5").unwrap();
        let asleep = Uuid::parse_str("3e7d2ed6-f153-11f1-bef4-7b965ee376f5").unwrap();
        backend.apply(web, Operation::Pause).unwrap();
        backend.apply(web, Operation::Shutdown).unwrap();
        backend.apply(web, Operation::Destroy).unwrap();
        backend.apply(stuck, Operation::Resume).unwrap();
        assert_eq!(calls(&xl), "pause 5\nshutdown -F 5\ndestroy 5\nunpause 9\n");
        let error = backend.apply(stuck, Operation::Pause);
        // Already paused: nothing to do, xl is not run.
        assert_eq!(error, Ok(()));
        let refused = backend.apply(asleep, Operation::Resume).unwrap_err();
        assert!(
            matches!(
                refused,
                BackendError::Refused {
                    invalid_state: true,
                    ..
                }
            ),
            "{refused:?}"
        );
        assert!(
            refused.to_string().contains("xl has no command"),
            "{refused}"
        );
        let missing = Uuid::from_u128(7);
        assert_eq!(
            backend.apply(missing, Operation::Pause),
            Err(BackendError::NoSuchDomain(missing))
        );
        fs::remove_dir_all(xl.parent().unwrap()).unwrap();
    }

    #[test]
    fn a_failing_xl_is_quoted() {
        let xl = fake_xl("fail", true);
        // Domain 9 shows as running here, so Pause runs `xl pause 9`, which fails.
        let list = xl.parent().unwrap().join("list");
        let text = fs::read_to_string(&list).unwrap().replace(
            "stuck                                        9   128     1     --p---",
            "stuck                                        9   128     1     r-----",
        );
        fs::write(&list, text).unwrap();
        let backend = open(&xl);
        let stuck = Uuid::parse_str("2e7d2ed6-f153-11f1-bef4-7b965ee376f5").unwrap();
        let error = backend.apply(stuck, Operation::Pause).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} pause 9: libxl: error: cannot pause domain 9",
                xl.display()
            )
        );
        fs::remove_dir_all(xl.parent().unwrap()).unwrap();
    }

    #[test]
    fn an_xl_without_list_v_is_read_through_list_and_list_l() {
        let xl = fake_xl("plain", false);
        let backend = open(&xl);
        assert_eq!(backend.format, ListFormat::PlainAndLong);
        let domains = backend.domains().unwrap();
        // Only web is in -l's JSON: the others are left out until it knows them.
        assert_eq!(domains.len(), 1, "{domains:?}");
        assert_eq!(domains[0].name, "web");
        assert_eq!(
            domains[0].uuid.to_string(),
            "0e7d2ed6-f153-11f1-bef4-7b965ee376f5"
        );
        fs::remove_dir_all(xl.parent().unwrap()).unwrap();
    }

    #[test]
    fn no_xl_no_backend() {
        let dir = std::env::temp_dir();
        let error = XlBackend::open(&dir, &dir, PathBuf::from("/nonexistent/xl"))
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("cannot start"), "{error}");
        assert!(error.contains("--xl"), "{error}");
    }
}
