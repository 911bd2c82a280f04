//! Console role: the operator's client of the tracker's read API (`xenplug console tree | call
//! | watch | serve`). Net layer: it does I/O (HTTP to the tracker, the terminal, the web page's
//! listener); what it prints and what it sends is decided by pure functions in [`tree`],
//! [`call`], [`watch`], [`merge`] and [`serve`], which do no I/O and never panic on what the
//! tracker or a browser sends. `serve` is the same console as one web page ([`serve`]).
//!
//! # Sources
//!
//! The console reads from one or two read APIs ([`open_source`]), never from a device: actions
//! go through a tracker's relay (`POST /api/vms/<uuid>/actions`, `POST
//! /api/hypervisors/<uuid>/actions`), which refuses what the asking network may not do.
//! - `--tracker http://IPv4:PORT`: a tracker's API (how a provider's console learns tenant VMs
//!   without touching tenant networks);
//! - `--iface IF[:TENANT]` (repeatable): the console is a control point itself: it runs the
//!   tracker's discovery and inventory in-process on those interfaces ([`local`]: `IF` a
//!   provider network, `IF:TENANT` a tenant network) and asks that tracker's API on 127.0.0.1;
//!   one-shot commands first wait for discovery to settle, at most `--wait SECS`;
//! - both: the two trees are merged by hypervisor and VM UUID ([`merge`]) and a call goes to
//!   the source that knows its target;
//! - neither: `--tracker http://127.0.0.1:8700`.
//!
//! `tree --json` prints the tracker's own `GET /api/tree` document unchanged when there is one
//! source, the merged document (same schema, plus `sources`) when there are two; its schema is
//! stable (fields are only ever added) and documented in [`crate::track::api`]:
//!
//! ```text
//! provider view:
//! {"hypervisors":[{"uuid","name","network","addresses":[..],"state","boot_id"?,
//!                  "first_seen","last_seen","vms":[V...]}...],
//!  "devirtualized":[V...],          VMs no hypervisor places
//!  "undescribed":[{"network","udn","address","reason","first_seen","last_seen"}...],
//!  "last_seq":N}
//! tenant view (the API reached from a tenant network): {"vms":[V...],"last_seq":N}
//! V = {"uuid","name","run_state","tenant"?,"hypervisor"?,
//!      "services":[{"type","actions":[{"name","semantics":["idempotent"|"destructive"|"confirm"..],
//!                                      "inputs":[NAME..],"outputs":[NAME..]}]}],
//!      "first_seen","last_seen"}
//! merged (two sources): the same, plus "sources":[{"api","last_seq"}...] (sequence numbers
//! are per source; the top-level last_seq is the largest)
//! ```
//!
//! Every string that came from a device (names, service types, output values) is printed with
//! its control characters escaped ([`printable`]), so that a VM cannot send escape sequences to
//! the operator's terminal.
//!
//! Exit status: 0 done; 1 failed (tracker unreachable or answering nonsense, a UPnP error, a
//! destructive call refused); 2 usage (unknown target or action, bad argument or URL).

pub mod call;
pub mod cluster;
pub mod local;
pub mod merge;
pub mod serve;
pub mod tree;
pub mod watch;

use crate::cli::{ConsoleArgs, ConsoleCommand};
use crate::consts::{
    API_TREE_PATH, CONSOLE_DEFAULT_TRACKER, CONSOLE_EXIT_FAILED, CONSOLE_EXIT_USAGE,
    DISCOVERY_MAX_LOCATION, HTTP_MAX_HEAD,
};
use crate::net::http_client::{self, ClientResponse, Limits};
use crate::wire::http::http_url_parts;
use crate::wire::json::{parse_value, JsonValue};
use std::borrow::Cow;
use std::net::{SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Largest API answer the console reads.
const CONSOLE_MAX_BODY: usize = 4 * 1024 * 1024;

/// Why a console command stopped: what to print and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Exit status ([`CONSOLE_EXIT_FAILED`] or [`CONSOLE_EXIT_USAGE`]).
    pub code: i32,
    /// The message, one line.
    pub message: String,
}

impl Failure {
    /// A failure (exit status 1).
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            code: CONSOLE_EXIT_FAILED,
            message: message.into(),
        }
    }

    /// A usage error (exit status 2).
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: CONSOLE_EXIT_USAGE,
            message: message.into(),
        }
    }
}

/// Runs a console subcommand; returns the exit status.
pub fn run(args: ConsoleArgs) -> i32 {
    let (name, result) = match args.command {
        ConsoleCommand::Tree(args) => ("tree", tree::run(&args)),
        ConsoleCommand::Call(args) => ("call", call::run(&args)),
        ConsoleCommand::Watch(args) => ("watch", watch::run(&args)),
        ConsoleCommand::Serve(args) => ("serve", serve::run(&args)),
    };
    match result {
        Ok(()) => 0,
        Err(failure) => {
            eprintln!("xenplug console {name}: {}", failure.message);
            failure.code
        }
    }
}

/// The tracker's read API, as the console reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    /// Its address (never a name: nothing is resolved).
    pub address: SocketAddrV4,
    /// The bearer token sent with every request, when the tracker needs one.
    pub token: Option<Arc<str>>,
}

impl Tracker {
    /// `http://IPv4[:port][/]`; anything else (a host name, a path) is a usage error.
    pub fn parse(url: &str) -> Result<Tracker, Failure> {
        match http_url_parts(url, DISCOVERY_MAX_LOCATION) {
            Some((address, "/")) => Ok(Tracker {
                address,
                token: None,
            }),
            _ => Err(Failure::usage(format!(
                "--tracker {url:?}: expected http://IPv4:PORT (the tracker's --api address)"
            ))),
        }
    }

    /// One request to the API, blocking until it is answered or `timeout` passes.
    pub fn request(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<ClientResponse, Failure> {
        smol::block_on(self.request_async(method, target, body, timeout))
    }

    /// One request to the API, bounded in time and size.
    pub async fn request_async(
        &self,
        method: &str,
        target: &str,
        body: &[u8],
        timeout: Duration,
    ) -> Result<ClientResponse, Failure> {
        let limits = Limits {
            timeout,
            max_head: HTTP_MAX_HEAD,
            max_body: CONSOLE_MAX_BODY,
        };
        let authorization = self.token.as_deref().map(|token| format!("Bearer {token}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if !body.is_empty() {
            headers.push(("CONTENT-TYPE", "application/x-www-form-urlencoded"));
        }
        if let Some(authorization) = &authorization {
            headers.push(("AUTHORIZATION", authorization));
        }
        http_client::request(
            SocketAddr::V4(self.address),
            method,
            target,
            &headers,
            body,
            &limits,
        )
        .await
        .map_err(|error| {
            Failure::failed(format!(
                "the tracker at http://{} did not answer {method} {target}: {error}",
                self.address
            ))
        })
    }

    /// The same API asked with `token` instead (a page user's, in `console serve --access`).
    pub fn with_token(&self, token: Option<&str>) -> Tracker {
        Tracker {
            address: self.address,
            token: token.map(Arc::from),
        }
    }

    /// `GET target`, which must answer 200 with a JSON document.
    pub fn get_json(&self, target: &str, timeout: Duration) -> Result<Document, Failure> {
        smol::block_on(self.get_json_async(target, timeout))
    }

    /// [`Tracker::get_json`], without blocking.
    pub async fn get_json_async(
        &self,
        target: &str,
        timeout: Duration,
    ) -> Result<Document, Failure> {
        let response = self.request_async("GET", target, &[], timeout).await?;
        Document::from_response(response, target)
    }
}

/// Where a console command reads from, as its options name it (every subcommand, `serve`
/// included, takes the same three).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceOptions {
    /// `--tracker URL`.
    pub tracker: Option<String>,
    /// `--iface IF[:TENANT]`, in order.
    pub ifaces: Vec<String>,
    /// How long to wait at most for discovery on `ifaces` to settle before returning (one-shot
    /// commands); `None` returns as soon as the console's own tracker listens.
    pub settle: Option<Duration>,
    /// The bearer token for `--tracker` (`--token-file`, or `XENPLUG_TOKEN`).
    pub token: Option<String>,
    /// The console's own tracker's access file (`console serve --access`): its identities
    /// then reach it with their own tokens. Without one, the console's own tracker gets a
    /// private access file with one admin identity whose token only this process holds.
    pub access: Option<PathBuf>,
    /// The control key the console's own tracker signs its calls with (`--control-key`).
    pub control_key: Option<PathBuf>,
}

/// The bearer token for a tracker: the file `--token-file` names, else `XENPLUG_TOKEN`, else
/// none.
pub fn token_of(file: Option<&Path>) -> Result<Option<String>, Failure> {
    if let Some(path) = file {
        return crate::credentials::read_token_file(path)
            .map(Some)
            .map_err(|error| Failure::usage(error.to_string()));
    }
    Ok(std::env::var(TOKEN_ENV)
        .ok()
        .map(|token| token.trim().to_string())
        .filter(|token| !token.is_empty()))
}

/// The environment variable a tracker's bearer token may come from.
pub const TOKEN_ENV: &str = "XENPLUG_TOKEN";

/// One read API a [`Source`] asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Api {
    /// Its name for messages and `sources`: the tracker's URL, or `local` for the console's
    /// own discovery.
    pub name: String,
    /// Where it is reached.
    pub tracker: Tracker,
}

/// What the console reads trees and events from and sends calls to: one or two read APIs
/// (a tracker's, the console's own). Dropping it stops the console's own tracker.
pub struct Source {
    apis: Vec<Api>,
    /// Keeps the console's own tracker running.
    _local: Option<local::Local>,
}

/// Opens the source `options` name: `--tracker` (or, with neither option, the default
/// tracker), and/or the console's own tracker on the `--iface` networks, waiting for its
/// discovery to settle when `options.settle` says so. This is the one place the console's
/// commands (and any other front end of the console) turn their options into something to
/// `GET` and `POST` JSON from.
pub fn open_source(options: &SourceOptions) -> Result<Source, Failure> {
    let mut apis = Vec::new();
    let remote = match (&options.tracker, options.ifaces.is_empty()) {
        (Some(url), _) => Some(url.as_str()),
        (None, true) => Some(CONSOLE_DEFAULT_TRACKER),
        (None, false) => None,
    };
    if let Some(url) = remote {
        let tracker = Tracker::parse(url)?.with_token(options.token.as_deref());
        apis.push(Api {
            name: format!("http://{}", tracker.address),
            tracker,
        });
    }
    let local = if options.ifaces.is_empty() {
        None
    } else {
        // The console's own tracker logs what a tracker's operator wants to know (and warns
        // of a hypervisor heard on a tenant label, which naming one interface as both
        // networks gives); the console's operator asked for a tree: errors only, unless
        // XENPLUG_LOG names a level.
        let level = std::env::var(crate::logging::LOG_ENV)
            .ok()
            .and_then(|text| text.parse::<log::LevelFilter>().ok());
        if level.is_none() {
            log::set_max_level(log::LevelFilter::Error);
        }
        let control_key = options
            .control_key
            .as_deref()
            .map(crate::credentials::read_key_file)
            .transpose()
            .map_err(|error| Failure::usage(error.to_string()))?;
        let local = local::Local::start(&options.ifaces, options.access.as_deref(), control_key)?;
        apis.push(Api {
            name: "local".to_string(),
            tracker: local.api.clone(),
        });
        if let Some(max) = options.settle {
            let (after, settled) = local.settle(max)?;
            log::info!(
                "console: discovery {} after {} ms",
                if settled { "settled" } else { "still changing" },
                after.as_millis()
            );
        }
        Some(local)
    };
    Ok(Source {
        apis,
        _local: local,
    })
}

impl Source {
    /// The read APIs, `--tracker`'s first.
    pub fn apis(&self) -> &[Api] {
        &self.apis
    }

    /// Every API's `GET /api/tree`, in [`Source::apis`] order.
    pub fn trees(&self, timeout: Duration) -> Result<Vec<Document>, Failure> {
        self.apis
            .iter()
            .map(|api| api.tracker.get_json(API_TREE_PATH, timeout))
            .collect()
    }

    /// One tree document from `trees` (as [`Source::trees`] gave them): [`merged`].
    pub fn merged(&self, trees: &[Document]) -> Result<Document, Failure> {
        merged(&self.apis, trees)
    }

    /// The tree: [`Source::trees`], [`Source::merged`].
    pub fn tree(&self, timeout: Duration) -> Result<Document, Failure> {
        let trees = self.trees(timeout)?;
        self.merged(&trees)
    }
}

/// One tree document from the trees of `apis` (in their order): the only one as it is, or
/// several merged ([`merge::merge`]), each named by its API.
pub fn merged(apis: &[Api], trees: &[Document]) -> Result<Document, Failure> {
    match trees {
        [one] => Ok(one.clone()),
        several => {
            let named: Vec<merge::Named<'_>> = apis
                .iter()
                .zip(several)
                .map(|(api, document)| merge::Named {
                    api: &api.name,
                    tree: &document.value,
                })
                .collect();
            let bytes = merge::merge(&named);
            let value = parse_value(&bytes).map_err(|error| {
                Failure::failed(format!("the merged tree is not JSON ({error})"))
            })?;
            Ok(Document { bytes, value })
        }
    }
}

/// A JSON answer of the API: the bytes as received and what they say.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The body as received.
    pub bytes: Vec<u8>,
    /// The body, read.
    pub value: JsonValue,
}

impl Document {
    /// Checks a `GET` answer: status 200 and a JSON body.
    pub fn from_response(response: ClientResponse, target: &str) -> Result<Document, Failure> {
        if let Some(failure) = refusal(&response) {
            return Err(failure);
        }
        if response.status != 200 {
            return Err(Failure::failed(format!(
                "the tracker answered {target} with HTTP status {}",
                response.status
            )));
        }
        let value = parse_value(&response.body).map_err(|error| {
            Failure::failed(format!(
                "the tracker's answer to {target} is not JSON ({error})"
            ))
        })?;
        Ok(Document {
            bytes: response.body,
            value,
        })
    }
}

/// What a tracker's 401, 403 or 429 says, plainly (exit status 1); `None` for other answers.
pub fn refusal(response: &ClientResponse) -> Option<Failure> {
    let hint = match response.status {
        401 => " (give a token: --token-file FILE or XENPLUG_TOKEN)",
        403 | 429 => "",
        _ => return None,
    };
    let reason = parse_value(&response.body)
        .ok()
        .and_then(|body| {
            body.get("error")
                .and_then(JsonValue::as_str)
                .map(str::to_string)
        })
        .unwrap_or_default();
    Some(Failure::failed(format!(
        "the tracker refused: {} {}{hint}",
        response.status,
        printable(&reason)
    )))
}

/// Whether file descriptor `fd` is a terminal.
pub fn is_terminal(fd: i32) -> bool {
    // SAFETY: isatty only looks at the descriptor number; any value is allowed.
    unsafe { libc::isatty(fd) == 1 }
}

/// Whether stdout gets colour: a terminal, and `NO_COLOR` unset (the no-color.org convention).
pub fn colour_on_stdout() -> bool {
    is_terminal(libc::STDOUT_FILENO) && std::env::var_os("NO_COLOR").is_none()
}

/// `text` with every control character (C0, DEL, C1) written as `\u{XX}` and backslashes
/// doubled when there is something to escape, so that what a device advertised cannot move the
/// cursor or change the terminal.
pub fn printable(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for character in text.chars() {
        match character {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_urls() {
        assert_eq!(
            Tracker::parse("http://127.0.0.1:8700").map(|t| t.address.to_string()),
            Ok("127.0.0.1:8700".to_string())
        );
        assert_eq!(
            Tracker::parse("http://10.0.0.5:8700/").map(|t| t.address.to_string()),
            Ok("10.0.0.5:8700".to_string())
        );
        for bad in [
            "127.0.0.1:8700",
            "http://tracker:8700",
            "http://127.0.0.1:8700/api/tree",
            "https://127.0.0.1:8700",
            "",
        ] {
            let failure = Tracker::parse(bad).unwrap_err();
            assert_eq!(failure.code, CONSOLE_EXIT_USAGE, "{bad}");
        }
    }

    #[test]
    fn control_characters_are_escaped() {
        assert!(matches!(printable("web-1"), Cow::Borrowed("web-1")));
        assert_eq!(printable("a\\b"), "a\\b", "nothing to escape: kept as is");
        assert_eq!(printable("\u{1b}[2Jx\\\n"), "\\u{1b}[2Jx\\\\\\n");
        assert_eq!(printable("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(printable("é\u{7f}"), "é\\u{7f}");
    }

    #[test]
    fn documents_need_200_and_json() {
        let response = |status, body: &[u8]| ClientResponse {
            status,
            headers: Vec::new(),
            body: body.to_vec(),
        };
        assert!(Document::from_response(response(200, b"{\"a\":1}"), "/x").is_ok());
        assert!(Document::from_response(response(500, b"{}"), "/x").is_err());
        let failure = Document::from_response(response(200, b"{\"a\":"), "/x").unwrap_err();
        assert_eq!(failure.code, CONSOLE_EXIT_FAILED);
        assert!(failure.message.contains("not JSON"), "{}", failure.message);
    }
}
