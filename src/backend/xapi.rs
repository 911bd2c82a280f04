//! The `xapi` backend: a XenAPI server (xapi, the toolstack of XCP-ng and XenServer) over
//! XML-RPC, on its unix socket in dom0 or at a plain `http://IPv4:PORT/` URL. Blocking: each
//! call runs `smol::block_on` on the caller's thread, which the net layer keeps off its event
//! loop. The password is read once and never logged.
//!
//! Wire conventions (XenAPI reference, "Wire Protocol"): every answer is a struct with
//! `Status` `Success` and a `Value`, or `Failure` and an `ErrorDescription` array whose first
//! string is the error code; integers travel as decimal strings; references are opaque
//! strings (`OpaqueRef:...`, `OpaqueRef:NULL` for none).
//!
//! What it reads:
//! - Domains: `VM.get_all_records` once, then `event.from(["vm"], token, timeout)`, applied
//!   to the cache as `add`/`mod`/`del` deltas (`valid_ref_counts` is not used). Changes are
//!   waited for on the server: `event.from` is a blocking call that answers as soon as a VM
//!   changes, or with an empty batch after `timeout` seconds (30); reads
//!   in between ask with a timeout of 0.
//!   `EVENTS_LOST` or a new session fetches everything again. Control
//!   domains, templates and snapshots are left out. A VM belongs to this host when its
//!   `resident_on` is this host; a VM resident nowhere (halted, suspended) belongs to the host
//!   its `affinity` names, and with no affinity to the pool master, so each VM of a pool is
//!   advertised by exactly one host. Memory is `memory_dynamic_max` (the configured ceiling,
//!   defined whatever the power state; `memory_target` is zero while halted and moves with
//!   ballooning, which would churn events). vCPUs are `VCPUs_max`.
//! - Host: `session.get_this_host`, then `host.get_record` (uuid, hostname,
//!   `software_version` `xen` and product, `cpu_info` `cpu_count`) and
//!   `host_metrics.get_memory_total`; read again whenever everything is.
//!
//! Operations: Start `VM.start(vm, false, false)`, Shutdown `VM.clean_shutdown`, Reboot
//! `VM.clean_reboot`, Pause `VM.pause`, Resume `VM.resume(vm, false, false)` for a suspended
//! VM and `VM.unpause` otherwise, Suspend `VM.suspend`, Destroy `VM.hard_shutdown`. A XenAPI
//! failure becomes [`BackendError::Refused`] carrying its code and parameters
//! (`VM_BAD_POWER_STATE` as an invalid state); `HANDLE_INVALID` and `UUID_INVALID` become
//! [`BackendError::NoSuchDomain`]. `SESSION_INVALID` logs in again, once, and repeats the
//! call.

use super::{Backend, BackendError, Domain, HostInfo, Operation, RunState};
use crate::consts::{HTTP_MAX_HEAD, XAPI_CALL_TIMEOUT, XMLRPC_MAX_RESPONSE};
use crate::net::http_client::{self, Endpoint, Limits};
use crate::wire::http::http_url_parts;
use crate::wire::xmlrpc::{self, Response, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;
use uuid::Uuid;

/// Longest one `event.from` waits on the server for a change: the server answers as soon as
/// a VM changes, so this only bounds how long the call stays open.
const XAPI_EVENT_WAIT: Duration = Duration::from_secs(30);
/// Shortest time between two waits that came back without events and without a failure
/// (a server answering an empty batch at once is not called in a loop), and the pause after a
/// failed wait.
const XAPI_EVENT_RETRY: Duration = Duration::from_secs(2);
/// API version sent at login.
const XAPI_LOGIN_VERSION: &str = "1.0";
/// Originator sent at login (it names the client in the server's session records).
const XAPI_ORIGINATOR: &str = "xenplug";
/// Largest password file read.
const XAPI_MAX_PASSWORD_FILE: u64 = 4096;

/// The reference XenAPI writes for "no object".
pub const NULL_REF: &str = "OpaqueRef:NULL";

/// Longest error detail kept in a UPnP error description.
const MAX_DETAIL: usize = 200;

/// Where the XenAPI server is, parsed from `--xapi`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XapiUrl {
    /// The socket or address.
    pub endpoint: Endpoint,
    /// The request target (`/` for a unix socket).
    pub target: String,
}

impl XapiUrl {
    /// Parses `unix:/absolute/path` or `http://IPv4[:PORT][/path]`. HTTPS is not spoken: a
    /// remote host needs a local TLS tunnel.
    pub fn parse(url: &str) -> Result<XapiUrl, String> {
        if let Some(path) = url.strip_prefix("unix:") {
            if !path.starts_with('/') {
                return Err(format!(
                    "--xapi {url:?}: a unix socket needs an absolute path"
                ));
            }
            return Ok(XapiUrl {
                endpoint: Endpoint::Unix(PathBuf::from(path)),
                target: "/".to_owned(),
            });
        }
        match http_url_parts(url, 1024) {
            Some((address, target)) => Ok(XapiUrl {
                endpoint: Endpoint::Tcp(address.into()),
                target: target.to_owned(),
            }),
            None => Err(format!(
                "--xapi {url:?}: expected unix:/path/to/socket or http://IPv4:PORT/"
            )),
        }
    }
}

/// A password that never shows in `Debug` output.
struct Password(String);

impl core::fmt::Debug for Password {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Password(..)")
    }
}

/// Reads the password file: at most `XAPI_MAX_PASSWORD_FILE` bytes of UTF-8, one trailing
/// line break (LF or CRLF) removed, not empty. Errors name the file, never its content.
pub fn read_password(path: &Path) -> Result<String, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("password file {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(XAPI_MAX_PASSWORD_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("password file {}: {e}", path.display()))?;
    if bytes.len() as u64 > XAPI_MAX_PASSWORD_FILE {
        return Err(format!(
            "password file {}: longer than {XAPI_MAX_PASSWORD_FILE} bytes",
            path.display()
        ));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| format!("password file {}: not UTF-8", path.display()))?;
    let password = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(format!("password file {}: empty", path.display()));
    }
    Ok(password.to_owned())
}

/// Opens the backend from the command line's `--xapi`, `--xapi-user` and
/// `--xapi-password-file`.
pub fn open(
    url: Option<&str>,
    user: &str,
    password_file: Option<&Path>,
) -> crate::error::Result<XapiBackend> {
    use crate::error::Error;
    let url = url.ok_or_else(|| Error::config("--backend xapi needs --xapi URL"))?;
    let url = XapiUrl::parse(url).map_err(Error::Config)?;
    let password_file = password_file
        .ok_or_else(|| Error::config("--backend xapi needs --xapi-password-file FILE"))?;
    let password = read_password(password_file).map_err(Error::Config)?;
    XapiBackend::open(url, user, password).map_err(|e| Error::Backend(e.to_string()))
}

/// Why a XenAPI call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XapiError {
    /// `Status: Failure`: the code and its parameters.
    Failure { code: String, params: Vec<String> },
    /// The server could not be reached, or answered something that is not a XenAPI answer.
    Transport(String),
}

impl XapiError {
    fn code(&self) -> Option<&str> {
        match self {
            XapiError::Failure { code, .. } => Some(code),
            XapiError::Transport(_) => None,
        }
    }
}

impl core::fmt::Display for XapiError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            XapiError::Failure { code, params } if params.is_empty() => f.write_str(code),
            XapiError::Failure { code, params } => write!(f, "{code} {}", params.join(" ")),
            XapiError::Transport(reason) => f.write_str(reason),
        }
    }
}

/// Reads a XenAPI envelope: the `Value` of a success (an empty string for void), or the
/// failure it reports.
pub fn envelope(response: Response) -> Result<Value, XapiError> {
    let value = match response {
        Response::Value(value) => value,
        Response::Fault { code, message } => {
            return Err(XapiError::Transport(format!(
                "XML-RPC fault {code}: {}",
                crate::wire::xml::shown(&message, 200)
            )))
        }
    };
    match value.member("Status").and_then(Value::as_str) {
        Some("Success") => Ok(value
            .member("Value")
            .cloned()
            .unwrap_or_else(|| Value::string(""))),
        Some("Failure") => {
            let mut strings = value
                .member("ErrorDescription")
                .and_then(Value::as_array)
                .unwrap_or_default()
                .iter()
                .map(|item| match item {
                    Value::Int(number) => number.to_string(),
                    other => other.as_str().unwrap_or("?").to_owned(),
                });
            let code = strings
                .next()
                .unwrap_or_else(|| "UNKNOWN_FAILURE".to_owned());
            Err(XapiError::Failure {
                code,
                params: strings.collect(),
            })
        }
        _ => Err(XapiError::Transport(
            "answer is not a XenAPI struct with Status Success or Failure".to_owned(),
        )),
    }
}

/// What the cache keeps of one VM record.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VmRecord {
    uuid: Uuid,
    name: String,
    state: RunState,
    /// Control domain, template or snapshot: never advertised.
    hidden: bool,
    resident_on: String,
    affinity: String,
    vcpus: u32,
    memory_kib: u64,
}

fn is_ref(text: &str) -> bool {
    !text.is_empty() && text != NULL_REF
}

/// XenAPI's `vm_power_state` as xenplug names it.
fn run_state(power_state: &str) -> RunState {
    match power_state.to_ascii_lowercase().as_str() {
        "running" => RunState::Running,
        "paused" => RunState::Paused,
        "suspended" => RunState::Suspended,
        "crashed" => RunState::Crashed,
        // Halted, and anything newer we do not know: not claimed to run.
        _ => RunState::Shutoff,
    }
}

impl VmRecord {
    /// Reads a VM record struct; `None` when it has no readable UUID.
    fn parse(record: &Value) -> Option<VmRecord> {
        let text = |name: &str| record.member_str(name).to_owned();
        let flag = |name: &str| record.member(name).and_then(Value::as_bool) == Some(true);
        let int = |name: &str| {
            record
                .member(name)
                .and_then(Value::as_int)
                .unwrap_or(0)
                .max(0)
        };
        Some(VmRecord {
            uuid: Uuid::try_parse(text("uuid").trim()).ok()?,
            name: text("name_label"),
            state: run_state(&text("power_state")),
            hidden: flag("is_control_domain") || flag("is_a_template") || flag("is_a_snapshot"),
            resident_on: text("resident_on"),
            affinity: text("affinity"),
            vcpus: u32::try_from(int("VCPUs_max")).unwrap_or(u32::MAX),
            memory_kib: u64::try_from(int("memory_dynamic_max")).unwrap_or(0) / 1024,
        })
    }

    /// Whether this host advertises the VM (see the module header).
    fn belongs_to(&self, this_host: &str, master: &str) -> bool {
        if is_ref(&self.resident_on) {
            self.resident_on == this_host
        } else if is_ref(&self.affinity) {
            self.affinity == this_host
        } else {
            this_host == master
        }
    }
}

/// The current session and how many logins made it.
#[derive(Debug, Default)]
struct Session {
    reference: Option<String>,
    generation: u64,
}

/// The VM cache and what it was read under.
#[derive(Debug, Default)]
struct Cache {
    /// The session generation the token was obtained under; `None` token: read everything.
    generation: u64,
    token: Option<String>,
    vms: BTreeMap<String, VmRecord>,
    this_host: String,
    master: String,
    host: Option<HostInfo>,
}

/// A XenAPI server as a [`Backend`].
#[derive(Debug)]
pub struct XapiBackend {
    url: XapiUrl,
    user: String,
    password: Password,
    session: Mutex<Session>,
    cache: Mutex<Cache>,
}

impl XapiBackend {
    /// Logs in as `user` and reads the host and its VMs once, so a wrong password or an
    /// unreachable server stops the start.
    pub fn open(url: XapiUrl, user: &str, password: String) -> Result<XapiBackend, BackendError> {
        let backend = XapiBackend {
            url,
            user: user.to_owned(),
            password: Password(password),
            session: Mutex::new(Session::default()),
            cache: Mutex::new(Cache::default()),
        };
        backend.session().map_err(|error| {
            BackendError::Failed(format!(
                "XenAPI at {}: login as {:?} failed: {error}",
                backend.url.endpoint, backend.user
            ))
        })?;
        {
            let mut cache = backend.lock_cache();
            backend.refetch(&mut cache).map_err(|e| backend.failed(e))?;
        }
        Ok(backend)
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failed(&self, error: XapiError) -> BackendError {
        BackendError::Failed(format!("XenAPI at {}: {error}", self.url.endpoint))
    }

    /// One XML-RPC exchange: `method(params)`, its envelope opened, answered within
    /// `waits` (what the server may wait by design) plus [`XAPI_CALL_TIMEOUT`].
    fn rpc(&self, method: &str, params: &[Value], waits: Duration) -> Result<Value, XapiError> {
        let mut body = Vec::with_capacity(512);
        xmlrpc::write_call(method, params, &mut body)
            .map_err(|e| XapiError::Transport(format!("cannot encode {method}: {e}")))?;
        let limits = Limits {
            timeout: waits + XAPI_CALL_TIMEOUT,
            max_head: HTTP_MAX_HEAD,
            max_body: XMLRPC_MAX_RESPONSE,
        };
        let response = smol::block_on(http_client::request_to(
            &self.url.endpoint,
            "POST",
            &self.url.target,
            &[("Content-Type", "text/xml")],
            &body,
            &limits,
        ))
        .map_err(|e| XapiError::Transport(format!("{method}: {e}")))?;
        if response.status != 200 {
            return Err(XapiError::Transport(format!(
                "{method}: HTTP status {}",
                response.status
            )));
        }
        let parsed = xmlrpc::parse_response(&response.body)
            .map_err(|e| XapiError::Transport(format!("{method}: {e}")))?;
        envelope(parsed)
    }

    /// The current session, logging in when there is none.
    fn session(&self) -> Result<(String, u64), XapiError> {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(reference) = &session.reference {
            return Ok((reference.clone(), session.generation));
        }
        let value = self.rpc(
            "session.login_with_password",
            &[
                Value::string(self.user.as_str()),
                Value::string(self.password.0.as_str()),
                Value::string(XAPI_LOGIN_VERSION),
                Value::string(XAPI_ORIGINATOR),
            ],
            Duration::ZERO,
        )?;
        let reference = value
            .as_str()
            .filter(|text| is_ref(text))
            .ok_or_else(|| XapiError::Transport("login answered no session".to_owned()))?
            .to_owned();
        session.generation += 1;
        session.reference = Some(reference.clone());
        log::info!(
            "xapi: session opened as {:?} at {} (login {})",
            self.user,
            self.url.endpoint,
            session.generation
        );
        Ok((reference, session.generation))
    }

    /// Forgets the session of `generation` (if still current), so the next call logs in.
    fn drop_session(&self, generation: u64) {
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        if session.generation == generation {
            session.reference = None;
        }
    }

    /// Calls `method` with the session first and `params` built from it, answered within
    /// `waits` plus the usual time; on `SESSION_INVALID`, logs in again and repeats the call
    /// once.
    fn call_waiting(
        &self,
        method: &str,
        params: impl Fn(&str) -> Vec<Value>,
        waits: Duration,
    ) -> Result<Value, XapiError> {
        let (session, generation) = self.session()?;
        match self.rpc(method, &params(&session), waits) {
            Err(error) if error.code() == Some("SESSION_INVALID") => {
                log::info!("xapi: {method}: session no longer valid; logging in again");
                self.drop_session(generation);
                let (session, _) = self.session()?;
                self.rpc(method, &params(&session), waits)
            }
            other => other,
        }
    }

    /// [`XapiBackend::call_waiting`] for a call the server answers at once.
    fn call_with(
        &self,
        method: &str,
        params: impl Fn(&str) -> Vec<Value>,
    ) -> Result<Value, XapiError> {
        self.call_waiting(method, params, Duration::ZERO)
    }

    /// Calls `method(session, args...)`.
    fn call(&self, method: &str, args: &[Value]) -> Result<Value, XapiError> {
        self.call_with(method, |session| with_session(session, args))
    }

    /// A call answering one reference.
    fn call_ref(&self, method: &str, args: &[Value]) -> Result<String, XapiError> {
        let value = self.call(method, args)?;
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| XapiError::Transport(format!("{method}: answer is not a reference")))
    }

    fn current_generation(&self) -> u64 {
        self.session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .generation
    }

    /// Reads the host, the pool master and every VM again, then takes an event token.
    fn refetch(&self, cache: &mut Cache) -> Result<(), XapiError> {
        let this_host = self.call_with("session.get_this_host", |session| {
            vec![Value::string(session), Value::string(session)]
        })?;
        let this_host = this_host
            .as_str()
            .filter(|text| is_ref(text))
            .ok_or_else(|| XapiError::Transport("session.get_this_host: no host".to_owned()))?
            .to_owned();
        let pools = self.call("pool.get_all", &[])?;
        let master = match pools.as_array().and_then(|pools| pools.first()) {
            Some(pool) => self.call_ref("pool.get_master", std::slice::from_ref(pool))?,
            None => this_host.clone(),
        };
        let host = self.read_host(&this_host)?;
        let records = self.call("VM.get_all_records", &[])?;
        let mut vms = BTreeMap::new();
        for (reference, record) in records.as_struct().unwrap_or_default() {
            match VmRecord::parse(record) {
                Some(vm) => {
                    vms.insert(reference.clone(), vm);
                }
                None => log::debug!("xapi: VM {reference} has no readable uuid; skipped"),
            }
        }
        let generation = self.current_generation();
        cache.vms = vms;
        cache.this_host = this_host;
        cache.master = master;
        cache.host = Some(host);
        cache.token = None;
        // The empty token asks for every VM as it is now: applying that batch covers any
        // change made since VM.get_all_records, and yields the first token.
        self.follow(cache, "")?;
        cache.generation = generation;
        log::debug!("xapi: read {} VM records", cache.vms.len());
        Ok(())
    }

    /// One `event.from` from `token`, waiting at most `wait` on the server: its events and
    /// the next token.
    fn events_from(&self, token: &str, wait: Duration) -> Result<(Vec<Value>, String), XapiError> {
        let args = [
            Value::strings(["vm"]),
            Value::string(token),
            Value::Double(wait.as_secs_f64()),
        ];
        let batch =
            self.call_waiting("event.from", |session| with_session(session, &args), wait)?;
        let next = batch
            .member("token")
            .and_then(Value::as_str)
            .ok_or_else(|| XapiError::Transport("event.from: no token".to_owned()))?
            .to_owned();
        let events = match batch.member("events").and_then(Value::as_array) {
            Some(events) => events.to_vec(),
            None => Vec::new(),
        };
        Ok((events, next))
    }

    /// The events since `token`, without waiting, applied to the cache.
    fn follow(&self, cache: &mut Cache, token: &str) -> Result<(), XapiError> {
        let (events, next) = self.events_from(token, Duration::ZERO)?;
        for event in &events {
            apply_event(&mut cache.vms, event);
        }
        cache.token = Some(next);
        Ok(())
    }

    /// Waits on the server, at most `limit`, for a VM to change after the cache's token, and
    /// applies what came when the cache has not moved on meanwhile (a read that did has seen
    /// the same events). A failure pauses [`XAPI_EVENT_RETRY`].
    fn wait_for_events(&self, limit: Duration) {
        let (token, generation) = {
            let cache = self.lock_cache();
            (cache.token.clone(), cache.generation)
        };
        let Some(token) = token.filter(|_| generation == self.current_generation()) else {
            // Nothing to wait from: the next read fetches everything, and a server that
            // cannot be read is not asked again at once.
            std::thread::sleep(XAPI_EVENT_RETRY.min(limit));
            return;
        };
        let wait = limit.min(XAPI_EVENT_WAIT);
        let asked = std::time::Instant::now();
        match self.events_from(&token, wait) {
            Ok((events, next)) => {
                let mut cache = self.lock_cache();
                let current = cache.token.as_deref() == Some(token.as_str())
                    && cache.generation == generation
                    && generation == self.current_generation();
                if current {
                    for event in &events {
                        apply_event(&mut cache.vms, event);
                    }
                    cache.token = Some(next);
                }
                drop(cache);
                if events.is_empty() {
                    // An empty batch before the timeout says nothing: not asked again at once.
                    std::thread::sleep(XAPI_EVENT_RETRY.min(wait).saturating_sub(asked.elapsed()));
                }
            }
            Err(error) if error.code() == Some("EVENTS_LOST") => {
                log::info!("xapi: events lost; reading every VM again");
                self.lock_cache().token = None;
            }
            Err(error) => {
                log::debug!("xapi: waiting for events: {error}");
                std::thread::sleep(XAPI_EVENT_RETRY.min(limit));
            }
        }
    }

    /// Reads this host's facts.
    fn read_host(&self, this_host: &str) -> Result<HostInfo, XapiError> {
        let record = self.call("host.get_record", &[Value::string(this_host)])?;
        let text = |name: &str| record.member_str(name).to_owned();
        let map_text = |map: &str, key: &str| {
            record
                .member(map)
                .map_or("", |m| m.member_str(key))
                .to_owned()
        };
        let xen = map_text("software_version", "xen");
        let product = [
            map_text("software_version", "product_brand"),
            map_text("software_version", "product_version"),
        ]
        .join(" ")
        .trim()
        .to_owned();
        let hypervisor_version = match (xen.is_empty(), product.is_empty()) {
            (false, false) => format!("{xen} ({product})"),
            (false, true) => xen,
            (true, _) => product,
        };
        let cpus = record
            .member("cpu_info")
            .and_then(|m| m.member("cpu_count"))
            .and_then(Value::as_int)
            .and_then(|count| u32::try_from(count).ok())
            .unwrap_or(0);
        let metrics = text("metrics");
        let memory_mib = if is_ref(&metrics) {
            self.call("host_metrics.get_memory_total", &[Value::string(metrics)])?
                .as_int()
                .and_then(|bytes| u64::try_from(bytes).ok())
                .unwrap_or(0)
                / (1024 * 1024)
        } else {
            0
        };
        let hostname = text("hostname");
        Ok(HostInfo {
            uuid: Uuid::try_parse(text("uuid").trim()).ok(),
            name: if hostname.is_empty() {
                text("name_label")
            } else {
                hostname
            },
            hypervisor_version,
            cpus,
            memory_mib,
        })
    }

    /// Brings the cache up to date: everything when there is no valid token, else the
    /// events since it.
    fn refresh(&self, cache: &mut Cache) -> Result<(), XapiError> {
        let token = cache
            .token
            .clone()
            .filter(|_| cache.generation == self.current_generation());
        let Some(token) = token else {
            return self.refetch(cache);
        };
        match self.follow(cache, &token) {
            Err(error) if error.code() == Some("EVENTS_LOST") => {
                log::info!("xapi: events lost; reading every VM again");
                self.refetch(cache)
            }
            Err(error) => Err(error),
            // A new session during the call: its token says nothing about the old one.
            Ok(()) if cache.generation != self.current_generation() => self.refetch(cache),
            Ok(()) => Ok(()),
        }
    }

    /// The VM reference and cached state of `uuid`, asking the server when the cache does not
    /// know it.
    fn vm_ref(&self, uuid: Uuid) -> Result<(String, Option<RunState>), BackendError> {
        let known = self
            .lock_cache()
            .vms
            .iter()
            .find(|(_, vm)| vm.uuid == uuid && !vm.hidden)
            .map(|(reference, vm)| (reference.clone(), Some(vm.state)));
        if let Some(known) = known {
            return Ok(known);
        }
        match self.call_ref("VM.get_by_uuid", &[Value::string(uuid.to_string())]) {
            Ok(reference) => Ok((reference, None)),
            Err(error) => Err(self.operation_error(uuid, error)),
        }
    }

    fn operation_error(&self, uuid: Uuid, error: XapiError) -> BackendError {
        match error {
            XapiError::Failure { code, .. }
                if code == "HANDLE_INVALID" || code == "UUID_INVALID" =>
            {
                BackendError::NoSuchDomain(uuid)
            }
            XapiError::Failure { code, params } => {
                let mut detail = params.join(" ");
                if let Some((cut, _)) = detail.char_indices().nth(MAX_DETAIL) {
                    detail.truncate(cut);
                    detail.push_str("...");
                }
                BackendError::Refused {
                    invalid_state: code == "VM_BAD_POWER_STATE",
                    code,
                    detail,
                }
            }
            transport => self.failed(transport),
        }
    }
}

/// `session` followed by `args`: the parameters of a call on behalf of a session.
fn with_session(session: &str, args: &[Value]) -> Vec<Value> {
    let mut params = Vec::with_capacity(args.len() + 1);
    params.push(Value::string(session));
    params.extend_from_slice(args);
    params
}

/// Applies one event record to the cache (events of other classes are ignored).
fn apply_event(vms: &mut BTreeMap<String, VmRecord>, event: &Value) {
    let text = |name: &str| event.member_str(name);
    if !text("class").eq_ignore_ascii_case("vm") {
        return;
    }
    let reference = text("ref");
    match text("operation") {
        "del" => {
            vms.remove(reference);
        }
        "add" | "mod" => match event.member("snapshot").and_then(VmRecord::parse) {
            Some(vm) => {
                vms.insert(reference.to_owned(), vm);
            }
            None => log::debug!("xapi: event on {reference} without a readable VM record"),
        },
        other => log::debug!("xapi: event operation {other:?} ignored"),
    }
}

impl Backend for XapiBackend {
    fn name(&self) -> &'static str {
        "xapi"
    }

    fn host(&self) -> Result<HostInfo, BackendError> {
        let mut cache = self.lock_cache();
        if cache.host.is_none() {
            self.refetch(&mut cache).map_err(|e| self.failed(e))?;
        }
        cache
            .host
            .clone()
            .ok_or_else(|| self.failed(XapiError::Transport("no host record".to_owned())))
    }

    fn domains(&self) -> Result<Vec<Domain>, BackendError> {
        let mut cache = self.lock_cache();
        self.refresh(&mut cache).map_err(|e| self.failed(e))?;
        let mut domains: Vec<Domain> = cache
            .vms
            .values()
            .filter(|vm| !vm.hidden && vm.belongs_to(&cache.this_host, &cache.master))
            .map(|vm| Domain {
                uuid: vm.uuid,
                name: vm.name.clone(),
                state: vm.state,
                memory_kib: vm.memory_kib,
                vcpus: vm.vcpus,
            })
            .collect();
        domains.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
        Ok(domains)
    }

    fn apply(&self, uuid: Uuid, operation: Operation) -> Result<(), BackendError> {
        let (vm, state) = self.vm_ref(uuid)?;
        let no = || Vec::new();
        let flags = || vec![Value::Boolean(false), Value::Boolean(false)];
        let (method, extra) = match operation {
            Operation::Start => ("VM.start", flags()),
            Operation::Shutdown => ("VM.clean_shutdown", no()),
            Operation::Reboot => ("VM.clean_reboot", no()),
            Operation::Pause => ("VM.pause", no()),
            Operation::Resume if state == Some(RunState::Suspended) => ("VM.resume", flags()),
            Operation::Resume => ("VM.unpause", no()),
            Operation::Suspend => ("VM.suspend", no()),
            Operation::Destroy => ("VM.hard_shutdown", no()),
        };
        let mut args = vec![Value::string(vm)];
        args.extend(extra);
        self.call(method, &args)
            .map_err(|error| self.operation_error(uuid, error))?;
        log::info!("xapi: {method} {uuid} done");
        Ok(())
    }

    fn wait_for_change(&self, limit: Duration) {
        self.wait_for_events(limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(uuid: &str, name: &str, state: &str, resident: &str) -> Value {
        Value::Struct(vec![
            ("uuid".into(), Value::string(uuid)),
            ("name_label".into(), Value::string(name)),
            ("power_state".into(), Value::string(state)),
            ("is_control_domain".into(), Value::Boolean(false)),
            ("is_a_template".into(), Value::Boolean(false)),
            ("is_a_snapshot".into(), Value::Boolean(false)),
            ("resident_on".into(), Value::string(resident)),
            ("affinity".into(), Value::string(NULL_REF)),
            ("VCPUs_max".into(), Value::string("2")),
            ("memory_dynamic_max".into(), Value::string("1073741824")),
        ])
    }

    const WEB: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000a001";

    #[test]
    fn parses_urls() {
        assert_eq!(
            XapiUrl::parse("unix:/var/lib/xcp/xapi").unwrap(),
            XapiUrl {
                endpoint: Endpoint::Unix(PathBuf::from("/var/lib/xcp/xapi")),
                target: "/".into()
            }
        );
        assert_eq!(
            XapiUrl::parse("http://127.0.0.1:8080/").unwrap(),
            XapiUrl {
                endpoint: Endpoint::Tcp("127.0.0.1:8080".parse().unwrap()),
                target: "/".into()
            }
        );
        for bad in [
            "unix:relative",
            "https://10.0.0.1/",
            "http://xen.example/",
            "",
        ] {
            assert!(XapiUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_the_password_file() {
        let dir = std::env::temp_dir().join(format!("xenplug-xapi-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pw");
        for (content, expected) in [
            ("s3cret\n", Ok("s3cret")),
            ("s3cret\r\n", Ok("s3cret")),
            (" two words \n\n", Ok(" two words \n")),
            ("nonl", Ok("nonl")),
            ("\n", Err(())),
        ] {
            std::fs::write(&path, content).unwrap();
            let read = read_password(&path);
            assert_eq!(read.as_deref().map_err(|_| ()), expected, "{content:?}");
        }
        std::fs::write(&path, vec![b'x'; XAPI_MAX_PASSWORD_FILE as usize + 1]).unwrap();
        let error = read_password(&path).unwrap_err();
        assert!(error.contains("longer"), "{error}");
        assert!(!error.contains("xxx"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(read_password(&dir.join("pw")).is_err());
        let debug = format!("{:?}", Password("s3cret".into()));
        assert!(!debug.contains("s3cret"));
    }

    #[test]
    fn opens_envelopes() {
        let success = Value::Struct(vec![
            ("Status".into(), Value::string("Success")),
            ("Value".into(), Value::string("OpaqueRef:1")),
        ]);
        assert_eq!(
            envelope(Response::Value(success)),
            Ok(Value::string("OpaqueRef:1"))
        );
        let void = Value::Struct(vec![("Status".into(), Value::string("Success"))]);
        assert_eq!(envelope(Response::Value(void)), Ok(Value::string("")));
        let failure = Value::Struct(vec![
            ("Status".into(), Value::string("Failure")),
            (
                "ErrorDescription".into(),
                Value::strings(["VM_BAD_POWER_STATE", "OpaqueRef:1", "halted", "running"]),
            ),
        ]);
        let error = envelope(Response::Value(failure)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "VM_BAD_POWER_STATE OpaqueRef:1 halted running"
        );
        let empty = Value::Struct(vec![("Status".into(), Value::string("Failure"))]);
        assert_eq!(
            envelope(Response::Value(empty)).unwrap_err().code(),
            Some("UNKNOWN_FAILURE")
        );
        assert!(matches!(
            envelope(Response::Value(Value::string("x"))),
            Err(XapiError::Transport(_))
        ));
        assert!(matches!(
            envelope(Response::Fault {
                code: 1,
                message: "m".into()
            }),
            Err(XapiError::Transport(_))
        ));
    }

    #[test]
    fn reads_vm_records_and_placement() {
        let vm = VmRecord::parse(&record(WEB, "web", "Halted", NULL_REF)).unwrap();
        assert_eq!(vm.state, RunState::Shutoff);
        assert_eq!((vm.vcpus, vm.memory_kib), (2, 1024 * 1024));
        assert!(!vm.hidden);
        // Resident nowhere, no affinity: the pool master lists it.
        assert!(vm.belongs_to("OpaqueRef:h1", "OpaqueRef:h1"));
        assert!(!vm.belongs_to("OpaqueRef:h2", "OpaqueRef:h1"));
        let running = VmRecord::parse(&record(WEB, "web", "Running", "OpaqueRef:h2")).unwrap();
        assert!(running.belongs_to("OpaqueRef:h2", "OpaqueRef:h1"));
        assert!(!running.belongs_to("OpaqueRef:h1", "OpaqueRef:h1"));
        let mut with_affinity = vm.clone();
        with_affinity.affinity = "OpaqueRef:h2".into();
        assert!(with_affinity.belongs_to("OpaqueRef:h2", "OpaqueRef:h1"));
        assert!(!with_affinity.belongs_to("OpaqueRef:h1", "OpaqueRef:h1"));

        let Value::Struct(mut members) = record(WEB, "tpl", "Halted", NULL_REF) else {
            unreachable!()
        };
        members[3].1 = Value::Boolean(true);
        assert!(VmRecord::parse(&Value::Struct(members)).unwrap().hidden);
        assert!(VmRecord::parse(&record("not-a-uuid", "x", "Running", NULL_REF)).is_none());
        for (power, state) in [
            ("Running", RunState::Running),
            ("Paused", RunState::Paused),
            ("Suspended", RunState::Suspended),
            ("Crashed", RunState::Crashed),
            ("Halted", RunState::Shutoff),
            ("Whatever", RunState::Shutoff),
        ] {
            assert_eq!(run_state(power), state);
        }
    }

    #[test]
    fn applies_events() {
        let mut vms = BTreeMap::new();
        let event = |operation: &str, class: &str, snapshot: Option<Value>| {
            let mut members = vec![
                ("class".into(), Value::string(class)),
                ("operation".into(), Value::string(operation)),
                ("ref".into(), Value::string("OpaqueRef:v1")),
                ("id".into(), Value::string("7")),
            ];
            if let Some(snapshot) = snapshot {
                members.push(("snapshot".into(), snapshot));
            }
            Value::Struct(members)
        };
        apply_event(
            &mut vms,
            &event("add", "vm", Some(record(WEB, "web", "Running", "h"))),
        );
        assert_eq!(vms["OpaqueRef:v1"].state, RunState::Running);
        apply_event(
            &mut vms,
            &event("mod", "VM", Some(record(WEB, "web", "Paused", "h"))),
        );
        assert_eq!(vms["OpaqueRef:v1"].state, RunState::Paused);
        // Another class, or a record that cannot be read: no change.
        apply_event(
            &mut vms,
            &event("del", "host", Some(record(WEB, "web", "Paused", "h"))),
        );
        apply_event(&mut vms, &event("mod", "vm", None));
        assert_eq!(vms.len(), 1);
        apply_event(&mut vms, &event("del", "vm", None));
        assert!(vms.is_empty());
    }
}
