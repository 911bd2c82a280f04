//! `xenplug console serve --listen ADDR:PORT`: the console as one web page. Net layer: it owns
//! a listener, asks its sources' read APIs and, with several sources, follows their event
//! feeds; what to do with a request is decided by the pure [`route`], how several sources
//! answer as one by the pure [`tree_with_cursor`], [`Feed`], [`events_answer`] and
//! [`choose_source`]. None of them panics on what a browser or a tracker sends.
//!
//! The page (`src/console/web/`: index.html, app.js, style.css, favicon.svg) is compiled into
//! the binary: nothing is fetched from anywhere else, at build or run time, and every answer
//! carries `Content-Security-Policy: default-src 'self'` (`CONSOLE_WEB_CSP`) so the page
//! cannot load or send anything elsewhere either.
//!
//! # Sources
//!
//! Those of every console command ([`super::open_source`]): `--tracker URL`, `--iface
//! IF[:TENANT]...` (the console's own discovery), or both. With one source the server passes
//! requests under its own `/api/...` to that API and its answers back (status and JSON body
//! as they are): `GET /api/tree`, `GET /api/events?since=N` (the long poll), `POST
//! /api/vms/<uuid>/actions` and `POST /api/hypervisors/<uuid>/actions` (form bodies of at
//! most `CONSOLE_WEB_MAX_FORM` bytes).
//!
//! With several sources the same paths answer for all of them:
//! - `GET /api/tree`: every source's tree merged as `console tree --json` merges them
//!   ([`super::merged`]: the same schema plus `sources`), plus `"cursor"`, the events cursor
//!   matching that tree;
//! - `GET /api/events?since=CURSOR`: a cursor is one sequence number per source, in `sources`
//!   order, joined by `.` (`12.7`; with one source it is the plain `N`, so the one-source
//!   format is the same); without `since`, every source from 0; any other `since` is a 400.
//!   The server follows each source's feed itself, one long poll per source at a time however
//!   many pages are open, keeping its last `CONSOLE_WEB_EVENTS_KEPT` events; a page's
//!   request is answered as soon as some source is past its part of the cursor, else after
//!   [`TRACK_API_LONG_POLL`]:
//!
//! ```text
//! {"events":[E...],         E as the tracker wrote it, plus "source":API (sources order, then seq)
//!  "last_seq":N,            the largest part of the cursor
//!  "cursor":"N1.N2",        what to send as since= next
//!  "reset":true,            only when a source's journal went back (a tracker started on a new
//!                           repository): its part restarts at its end; read the tree again
//!  "sources":[{"api","last_seq","error"?}]}   each source's part, and why its feed fails
//! ```
//!
//!   Every source failing is a 502 `{"error":..}`.
//! - a `POST` goes to the source `console call` would send it to: the target and the action
//!   are looked up in the merged tree ([`super::call::plan`]), then the first source that
//!   can reach them is chosen ([`super::call::choose_api`]); the body and the answer pass as
//!   they are. A VM or hypervisor no source knows, or an action no source can reach, is a 404
//!   `{"error":..}`.
//!
//! `GET /domain-control.json` and `GET /hypervisor.json` describe the DomainControl actions
//! the page offers for a placed VM and the Hypervisor actions it offers for a hypervisor
//! (arguments and their types, from the SCPDs xenplug's hypervisor role publishes).
//!
//! There is no login: whoever reaches the listener controls every VM its sources relay to.
//! Hence the listen address is always given, and cross-site requests are refused: a `POST`
//! must carry an `Origin` (browsers always send one on a POST) naming the address the request
//! reached, and a `Host` naming it too (the HTTP server already refuses any `Host` that is not
//! that IP address, so DNS rebinding cannot reach the API either).

use super::call::{choose_api, plan};
use super::tree::Tree;
use super::{Api, Document, Failure, Tracker};
use crate::cli::ConsoleServeArgs;
use crate::consts::{
    API_ACTIONS_SUFFIX, API_EVENTS_PATH, API_HYPERVISORS_PREFIX, API_TREE_PATH, API_VMS_PREFIX,
    CONSOLE_ACTION_TIMEOUT, CONSOLE_EXIT_USAGE, CONSOLE_TIMEOUT, CONSOLE_WATCH_RETRY,
    CONSOLE_WATCH_TIMEOUT, CONSOLE_WEB_DOMAIN_CONTROL_PATH, CONSOLE_WEB_HYPERVISOR_PATH,
    TRACK_API_LONG_POLL, TRACK_API_POLL_STEP,
};
use crate::model::{Direction, ServiceSpec};
use crate::net::http::{self, Answer, Handler, Request, Response, ServerConfig};
use crate::wire::http::RequestHead;
use crate::wire::json::{JsonValue, JsonWriter};
use smol::stream::StreamExt as _;
use smol::{Async, LocalExecutor, Timer};
use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// Largest form body the console's page may POST (one action's arguments).
const CONSOLE_WEB_MAX_FORM: usize = 16 * 1024;
/// Content-Security-Policy of every answer of the console's page: nothing but its own files.
const CONSOLE_WEB_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
/// Events of each source the console's page server keeps for the pages that poll it (older
/// ones are dropped: a page that falls further behind reads the tree again anyway).
const CONSOLE_WEB_EVENTS_KEPT: usize = 256;
/// Separator of the per-source sequence numbers in the page's events cursor (`12.7`).
const CONSOLE_WEB_CURSOR_SEPARATOR: char = '.';

/// The page.
const INDEX_HTML: &[u8] = include_bytes!("web/index.html");
/// Its script (plain JavaScript, no framework, no build step).
const APP_JS: &[u8] = include_bytes!("web/app.js");
/// Its style sheet.
const STYLE_CSS: &[u8] = include_bytes!("web/style.css");
/// Its icon.
const FAVICON_SVG: &[u8] = include_bytes!("web/favicon.svg");

/// The page's files: path, content type, bytes.
const ASSETS: [(&str, &str, &[u8]); 5] = [
    ("/", "text/html; charset=utf-8", INDEX_HTML),
    ("/index.html", "text/html; charset=utf-8", INDEX_HTML),
    ("/app.js", "text/javascript; charset=utf-8", APP_JS),
    ("/style.css", "text/css; charset=utf-8", STYLE_CSS),
    ("/favicon.svg", "image/svg+xml", FAVICON_SVG),
];

/// What the server does with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// One of the page's files.
    Asset {
        /// `Content-Type`.
        content_type: &'static str,
        /// The bytes.
        body: &'static [u8],
    },
    /// The DomainControl description ([`service_json`]).
    DomainControl,
    /// The Hypervisor service's description ([`service_json`]).
    Hypervisor,
    /// One source: a request passed on to it.
    Proxy {
        /// `GET` or `POST`.
        method: &'static str,
        /// Path and query at the source's API.
        target: String,
        /// Form body (POST).
        body: Vec<u8>,
        /// How long the source may take.
        timeout: Duration,
    },
    /// Several sources: their trees, merged ([`tree_with_cursor`]).
    MergedTree,
    /// Several sources: their events after `since` ([`events_answer`]).
    MergedEvents {
        /// The cursor: one sequence number per source.
        since: Vec<u64>,
    },
    /// Several sources: an action, sent to the source that can reach its target
    /// ([`choose_source`]).
    Routed {
        /// The relay path (the same at every source).
        target: String,
        /// Whether the target is a hypervisor (else a VM).
        hypervisor: bool,
        /// The target's UUID, written the canonical way.
        uuid: String,
        /// Form body.
        body: Vec<u8>,
    },
    /// Refused: status and why (sent as `{"error":"..."}`).
    Refuse {
        /// HTTP status.
        status: u16,
        /// Reason, for the page.
        reason: &'static str,
    },
}

fn refuse(status: u16, reason: &'static str) -> Route {
    Route::Refuse { status, reason }
}

/// The origin a browser writes for a page loaded from `local` (`http://IP:PORT`, the port left
/// out when it is 80; IPv6 in brackets).
fn origin_of(local: SocketAddr) -> (String, String) {
    let authority = local.to_string();
    let short = match local {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    if local.port() == 80 {
        (authority, short)
    } else {
        (authority.clone(), authority)
    }
}

/// Whether a state-changing request comes from the page itself: an `Origin` naming the
/// address the request reached, a `Host` naming it too, and no `Sec-Fetch-Site` other than
/// `same-origin`. A request without `Origin` (not a browser's, or an old one) is refused too.
pub fn same_origin(request: &Request) -> bool {
    let (full, short) = origin_of(request.local);
    let names_us = |value: &str| value == full || value == short;
    let origin_ok = request
        .header("origin")
        .and_then(|origin| origin.strip_prefix("http://"))
        .is_some_and(names_us);
    let host_ok = request.header("host").is_some_and(names_us);
    let fetch_site_ok = request
        .header("sec-fetch-site")
        .is_none_or(|site| site.eq_ignore_ascii_case("same-origin"));
    origin_ok && host_ok && fetch_site_ok
}

/// An events cursor of `sources` sources (one sequence number per source, digits only, joined
/// by `CONSOLE_WEB_CURSOR_SEPARATOR`); `None` when it is not one.
pub fn parse_cursor(text: &str, sources: usize) -> Option<Vec<u64>> {
    let parts = text
        .split(CONSOLE_WEB_CURSOR_SEPARATOR)
        .map(|part| {
            (!part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| part.parse().ok())
                .flatten()
        })
        .collect::<Option<Vec<u64>>>()?;
    (parts.len() == sources).then_some(parts)
}

/// The text of an events cursor (see [`parse_cursor`]).
pub fn cursor_text(parts: &[u64]) -> String {
    parts
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(&CONSOLE_WEB_CURSOR_SEPARATOR.to_string())
}

/// The `since` of an events query for `sources` sources: every source from 0 when absent.
fn since_of(query: Option<&str>, sources: usize) -> Option<Vec<u64>> {
    match crate::track::form::value(query, "since") {
        Some(cursor) => parse_cursor(&cursor, sources),
        None => Some(vec![0; sources]),
    }
}

/// The target of `path` if it is a relay path (`/api/vms/<uuid>/actions`,
/// `/api/hypervisors/<uuid>/actions`): whether it is a hypervisor and its UUID written the
/// canonical way; `Err` when it has the shape but not a UUID.
fn relay_target(path: &str) -> Option<Result<(bool, String), ()>> {
    for prefix in [API_VMS_PREFIX, API_HYPERVISORS_PREFIX] {
        if let Some(id) = path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(API_ACTIONS_SUFFIX))
        {
            return Some(
                uuid::Uuid::try_parse(id)
                    .map(|id| {
                        (
                            prefix == API_HYPERVISORS_PREFIX,
                            id.hyphenated().to_string(),
                        )
                    })
                    .map_err(|_| ()),
            );
        }
    }
    None
}

/// Decides what to do with `request` for a server reading `sources` sources (see the module
/// documentation).
pub fn route(request: &Request, sources: usize) -> Route {
    let several = sources > 1;
    let path = request.path.as_str();
    let method = request.method.as_str();
    if let Some(&(_, content_type, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
        return match method {
            "GET" => Route::Asset { content_type, body },
            _ => refuse(405, "method not allowed"),
        };
    }
    for (known, description) in [
        (CONSOLE_WEB_DOMAIN_CONTROL_PATH, Route::DomainControl),
        (CONSOLE_WEB_HYPERVISOR_PATH, Route::Hypervisor),
    ] {
        if path == known {
            return match method {
                "GET" => description,
                _ => refuse(405, "method not allowed"),
            };
        }
    }
    if path == API_TREE_PATH {
        return match method {
            "GET" if several => Route::MergedTree,
            "GET" => Route::Proxy {
                method: "GET",
                target: API_TREE_PATH.to_string(),
                body: Vec::new(),
                timeout: CONSOLE_TIMEOUT,
            },
            _ => refuse(405, "method not allowed"),
        };
    }
    if path == API_EVENTS_PATH {
        if method != "GET" {
            return refuse(405, "method not allowed");
        }
        return match (since_of(request.query.as_deref(), sources), several) {
            (Some(since), true) => Route::MergedEvents { since },
            (Some(since), false) => Route::Proxy {
                method: "GET",
                target: format!(
                    "{API_EVENTS_PATH}?since={}",
                    since.first().copied().unwrap_or(0)
                ),
                body: Vec::new(),
                timeout: CONSOLE_WATCH_TIMEOUT,
            },
            (None, true) => refuse(400, "since must be the cursor the server gave"),
            (None, false) => refuse(400, "since must be a number"),
        };
    }
    let Some(target) = relay_target(path) else {
        return refuse(404, "not found");
    };
    if method != "POST" {
        return refuse(405, "method not allowed");
    }
    if !same_origin(request) {
        return refuse(403, "cross-origin request refused");
    }
    let Ok((hypervisor, uuid)) = target else {
        return refuse(404, "not a UUID");
    };
    if request.body.len() > CONSOLE_WEB_MAX_FORM {
        return refuse(413, "form too large");
    }
    let form = request.header("content-type").is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|t| t.trim() == "application/x-www-form-urlencoded")
    });
    if !form {
        return refuse(415, "expected an application/x-www-form-urlencoded body");
    }
    let prefix = if hypervisor {
        API_HYPERVISORS_PREFIX
    } else {
        API_VMS_PREFIX
    };
    let target = format!("{prefix}{uuid}{API_ACTIONS_SUFFIX}");
    if several {
        return Route::Routed {
            target,
            hypervisor,
            uuid,
            body: request.body.clone(),
        };
    }
    Route::Proxy {
        method: "POST",
        target,
        body: request.body.clone(),
        timeout: CONSOLE_ACTION_TIMEOUT,
    }
}

/// The merged tree `merged` of the sources' `trees` (in their order), with `"cursor"` added:
/// the events cursor of those trees' `last_seq`.
pub fn tree_with_cursor(merged: &Document, trees: &[Document]) -> Vec<u8> {
    let parts: Vec<u64> = trees
        .iter()
        .map(|tree| {
            tree.value
                .get("last_seq")
                .and_then(JsonValue::as_u64)
                .unwrap_or(0)
        })
        .collect();
    let Some(fields) = merged.value.as_object() else {
        return merged.bytes.clone();
    };
    let mut json = JsonWriter::new();
    json.begin_object();
    for (name, value) in fields.iter().filter(|(name, _)| name != "cursor") {
        json.key(name);
        super::merge::write_value(&mut json, value);
    }
    json.key("cursor").string(&cursor_text(&parts));
    json.end_object();
    json.finish().unwrap_or_else(|_| merged.bytes.clone())
}

/// One source's event feed as the server follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// The source's name (`sources`' `api`), written into each of its events.
    pub api: String,
    /// How far its journal has been read (`None` until its first answer).
    pub next: Option<u64>,
    /// Its latest events, oldest first, each with `"source"` added; at most
    /// `CONSOLE_WEB_EVENTS_KEPT`.
    pub recent: VecDeque<(u64, JsonValue)>,
    /// Why its last long poll failed, until one succeeds.
    pub error: Option<String>,
}

impl Feed {
    /// A feed not read yet.
    pub fn new(api: &str) -> Feed {
        Feed {
            api: api.to_string(),
            next: None,
            recent: VecDeque::new(),
            error: None,
        }
    }

    /// Takes in one `/api/events` answer of the source (asked `since=` [`Feed::next`]): its
    /// newer events, and the journal's end. A journal that ends before `next` went back (the
    /// source started on a new repository): the feed restarts at its end.
    pub fn apply(&mut self, page: &JsonValue) {
        self.error = None;
        let last = page
            .get("last_seq")
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        let since = match self.next {
            Some(since) if last < since => {
                self.recent.clear();
                self.next = Some(last);
                return;
            }
            Some(since) => since,
            None => 0,
        };
        let mut next = since.max(last);
        for event in page.list_of("events") {
            let Some(fields) = event.as_object() else {
                continue;
            };
            let seq = event.get("seq").and_then(JsonValue::as_u64).unwrap_or(0);
            if seq <= since {
                continue;
            }
            next = next.max(seq);
            let mut fields: Vec<(String, JsonValue)> = fields
                .iter()
                .filter(|(name, _)| name != "source")
                .cloned()
                .collect();
            fields.push(("source".to_string(), JsonValue::String(self.api.clone())));
            self.recent.push_back((seq, JsonValue::Object(fields)));
            while self.recent.len() > CONSOLE_WEB_EVENTS_KEPT {
                self.recent.pop_front();
            }
        }
        self.next = Some(next);
    }
}

/// The answer to a page's `GET /api/events?since=` cursor `since` from the feeds as they are
/// now (see the module documentation): `None` while no source is past its part and the poll
/// has not `timed_out`; `Err` (a 502) when every feed fails.
pub fn events_answer(
    feeds: &[Feed],
    since: &[u64],
    timed_out: bool,
) -> Option<Result<Vec<u8>, String>> {
    if !feeds.is_empty() && feeds.iter().all(|feed| feed.error.is_some()) {
        let why: Vec<String> = feeds.iter().filter_map(|feed| feed.error.clone()).collect();
        return Some(Err(why.join("; ")));
    }
    let mut news = false;
    let mut reset = false;
    let mut parts = Vec::with_capacity(feeds.len());
    for (index, feed) in feeds.iter().enumerate() {
        let asked = since.get(index).copied().unwrap_or(0);
        let part = feed.next.unwrap_or(asked);
        news |= part != asked;
        reset |= part < asked;
        parts.push(part);
    }
    if !news && !timed_out {
        return None;
    }
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("events").begin_array();
    for (index, feed) in feeds.iter().enumerate() {
        let asked = since.get(index).copied().unwrap_or(0);
        if feed.next.is_some_and(|next| next < asked) {
            continue;
        }
        for (_, event) in feed.recent.iter().filter(|(seq, _)| *seq > asked) {
            super::merge::write_value(&mut json, event);
        }
    }
    json.end_array();
    json.key("last_seq")
        .number(parts.iter().copied().max().unwrap_or(0));
    json.key("cursor").string(&cursor_text(&parts));
    if reset {
        json.key("reset").bool(true);
    }
    json.key("sources").begin_array();
    for (feed, part) in feeds.iter().zip(&parts) {
        json.begin_object();
        json.key("api").string(&feed.api);
        json.key("last_seq").number(*part);
        if let Some(error) = &feed.error {
            json.key("error").string(error);
        }
        json.end_object();
    }
    json.end_array();
    json.end_object();
    Some(json.finish().map_err(|error| format!("{error:?}")))
}

/// Which source (an index into `trees`, the sources' own trees in their order; `merged`, their
/// merged tree) a `POST` to the relay path of `uuid` (a hypervisor's when `hypervisor`) with
/// form `body` goes to: the one `console call` would choose. `Err` is the status and why.
pub fn choose_source(
    trees: &[Document],
    merged: &Document,
    hypervisor: bool,
    uuid: &str,
    body: &[u8],
) -> Result<usize, (u16, String)> {
    let form = std::str::from_utf8(body)
        .map(crate::track::form::pairs)
        .map_err(|_| (400, "the form is not UTF-8".to_string()))?;
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    };
    let (Some(service), Some(action)) = (field("service"), field("action")) else {
        return Err((400, "the form needs service= and action=".to_string()));
    };
    let unreadable = |failure: Failure| (502, failure.message);
    let tree = Tree::read(&merged.value).map_err(unreadable)?;
    let kind = if hypervisor { "hypervisor" } else { "VM" };
    let found = plan(&tree, uuid, action, Some(service)).map_err(|failure| {
        let status = if failure.code == CONSOLE_EXIT_USAGE {
            404
        } else {
            502
        };
        (status, failure.message)
    })?;
    if found.hypervisor != hypervisor {
        return Err((404, format!("no source knows a {kind} {uuid}")));
    }
    let trees = trees
        .iter()
        .map(|document| Tree::read(&document.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    choose_api(&trees, &found).ok_or_else(|| {
        (
            404,
            format!(
                "no source can reach {} of {}",
                found.action.name, found.name
            ),
        )
    })
}

/// A service's actions as JSON, for the page's forms:
/// `{"type","actions":[{"name","semantics":[..],"arguments":[{"name","direction":"in"|"out",
/// "type","allowed"?:[..]}]}]}`, argument types from the related state variables.
pub fn service_json(spec: &ServiceSpec) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("type").string(&spec.service_type);
    json.key("actions").begin_array();
    for action in &spec.actions {
        json.begin_object();
        json.key("name").string(&action.name);
        json.key("semantics")
            .strings(action.semantics.iter().map(|s| s.as_str()));
        json.key("arguments").begin_array();
        for argument in &action.arguments {
            let variable = spec.variables.iter().find(|v| v.name == argument.variable);
            json.begin_object();
            json.key("name").string(&argument.name);
            json.key("direction").string(match argument.direction {
                Direction::In => "in",
                Direction::Out => "out",
            });
            json.key("type")
                .string(variable.map_or("string", |v| v.data_type.as_str()));
            if let Some(variable) = variable.filter(|v| !v.allowed.is_empty()) {
                json.key("allowed")
                    .strings(variable.allowed.iter().map(String::as_str));
            }
            json.end_object();
        }
        json.end_array();
        json.end_object();
    }
    json.end_array();
    json.end_object();
    json.finish().unwrap_or_else(|error| {
        log::error!("console serve: service JSON not well formed: {error:?}");
        b"{\"actions\":[]}".to_vec()
    })
}

/// Adds the headers every answer carries: nothing loaded from elsewhere, no framing, no
/// sniffing, no caching, no referrer.
fn secured(mut response: Response) -> Response {
    response.headers.extend([
        ("Content-Security-Policy", CONSOLE_WEB_CSP.to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("X-Frame-Options", "DENY".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
        ("Cache-Control", "no-store".to_string()),
    ]);
    response
}

fn json_error(status: u16, reason: &str) -> Response {
    let mut json = JsonWriter::new();
    json.begin_object().key("error").string(reason).end_object();
    let body = json.finish().unwrap_or_default();
    secured(Response::with_body(status, "application/json", body))
}

/// The console's HTTP handler.
struct ConsoleHttp {
    /// The sources' APIs, `--tracker`'s first.
    apis: Rc<[Api]>,
    /// Their event feeds, as [`follow`] reads them (several sources only).
    feeds: Rc<RefCell<Vec<Feed>>>,
    domain_control: Arc<[u8]>,
    hypervisor: Arc<[u8]>,
}

/// A JSON (or, when the source did not say JSON, plain text) answer of a source, passed back.
fn passed_back(answer: crate::net::http_client::ClientResponse) -> Response {
    let content_type = match answer.header("content-type") {
        Some(t) if t.starts_with("application/json") => "application/json",
        _ => "text/plain; charset=utf-8",
    };
    secured(Response::with_body(
        answer.status,
        content_type,
        answer.body,
    ))
}

/// One request to a source's API, its answer passed back (a 502 when it does not answer).
async fn forward(
    tracker: Tracker,
    method: &str,
    target: &str,
    body: &[u8],
    timeout: Duration,
) -> Response {
    match tracker.request_async(method, target, body, timeout).await {
        Ok(answer) => passed_back(answer),
        Err(failure) => {
            log::warn!("console serve: {}", failure.message);
            json_error(502, &failure.message)
        }
    }
}

/// Runs `futures` together and gives their outputs in their order.
async fn join_all<'a, T>(futures: Vec<Pin<Box<dyn Future<Output = T> + 'a>>>) -> Vec<T> {
    let mut pending: Vec<Option<Pin<Box<dyn Future<Output = T> + 'a>>>> =
        futures.into_iter().map(Some).collect();
    let mut done: Vec<Option<T>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        for (slot, output) in pending.iter_mut().zip(done.iter_mut()) {
            if let Some(future) = slot {
                if let Poll::Ready(value) = future.as_mut().poll(context) {
                    *output = Some(value);
                    *slot = None;
                }
            }
        }
        if pending.iter().all(Option::is_none) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().flatten().collect()
}

/// Every source's `GET /api/tree`, asked together, in their order.
async fn trees(apis: &[Api]) -> Result<Vec<Document>, Failure> {
    let fetches = apis
        .iter()
        .map(|api| {
            Box::pin(api.tracker.get_json_async(API_TREE_PATH, CONSOLE_TIMEOUT))
                as Pin<Box<dyn Future<Output = Result<Document, Failure>> + '_>>
        })
        .collect();
    join_all(fetches).await.into_iter().collect()
}

/// `GET /api/tree` of several sources.
async fn merged_tree(apis: Rc<[Api]>) -> Response {
    let merged = trees(&apis).await.and_then(|trees| {
        let merged = super::merged(&apis, &trees)?;
        Ok(tree_with_cursor(&merged, &trees))
    });
    match merged {
        Ok(body) => secured(Response::with_body(200, "application/json", body)),
        Err(failure) => {
            log::warn!("console serve: {}", failure.message);
            json_error(502, &failure.message)
        }
    }
}

/// `GET /api/events?since=` of several sources: waits, at most [`TRACK_API_LONG_POLL`], for a
/// source past its part of `since`.
async fn merged_events(feeds: Rc<RefCell<Vec<Feed>>>, since: Vec<u64>) -> Response {
    let deadline = Instant::now() + TRACK_API_LONG_POLL;
    loop {
        let answer = events_answer(&feeds.borrow(), &since, Instant::now() >= deadline);
        match answer {
            Some(Ok(body)) => return secured(Response::with_body(200, "application/json", body)),
            Some(Err(why)) => return json_error(502, &why),
            None => {
                Timer::after(TRACK_API_POLL_STEP).await;
            }
        }
    }
}

/// A `POST` of several sources: to the one [`choose_source`] names.
async fn routed(
    apis: Rc<[Api]>,
    target: String,
    hypervisor: bool,
    uuid: String,
    body: Vec<u8>,
) -> Response {
    let trees = match trees(&apis).await {
        Ok(trees) => trees,
        Err(failure) => return json_error(502, &failure.message),
    };
    let chosen = super::merged(&apis, &trees)
        .map_err(|failure| (502, failure.message))
        .and_then(|merged| choose_source(&trees, &merged, hypervisor, &uuid, &body));
    let api = match chosen.map(|index| apis.get(index)) {
        Ok(Some(api)) => api,
        Ok(None) => return json_error(502, "no such source"),
        Err((status, why)) => {
            log::debug!("console serve: POST {target}: {status} {why}");
            return json_error(status, &why);
        }
    };
    log::debug!("console serve: POST {target} to {}", api.name);
    forward(api.tracker, "POST", &target, &body, CONSOLE_ACTION_TIMEOUT).await
}

/// Follows the event feed of source `index` into `feeds` for as long as the server runs: one
/// long poll at a time, retried after [`CONSOLE_WATCH_RETRY`] when it fails.
async fn follow(feeds: Rc<RefCell<Vec<Feed>>>, index: usize, tracker: Tracker) {
    loop {
        let since = feeds
            .borrow()
            .get(index)
            .and_then(|feed| feed.next)
            .unwrap_or(0);
        let target = format!("{API_EVENTS_PATH}?since={since}");
        let result = tracker.get_json_async(&target, CONSOLE_WATCH_TIMEOUT).await;
        let failed = {
            let mut feeds = feeds.borrow_mut();
            let Some(feed) = feeds.get_mut(index) else {
                return;
            };
            match result {
                Ok(page) => {
                    feed.apply(&page.value);
                    false
                }
                Err(failure) => {
                    if feed.error.is_none() {
                        log::warn!("console serve: {} (trying again)", failure.message);
                    }
                    feed.error = Some(failure.message);
                    true
                }
            }
        };
        if failed {
            Timer::after(CONSOLE_WATCH_RETRY).await;
        }
    }
}

impl Handler for ConsoleHttp {
    fn lookup(&self, _head: &RequestHead<'_>) -> Option<(&'static str, Arc<[u8]>)> {
        // Every answer needs the security headers, which only `answer` can add.
        None
    }

    fn answer(&self, request: Request) -> Answer {
        match route(&request, self.apis.len()) {
            Route::Asset { content_type, body } => Answer::Now(secured(Response::with_body(
                200,
                content_type,
                body.to_vec(),
            ))),
            Route::DomainControl => Answer::Now(secured(Response::with_body(
                200,
                "application/json",
                self.domain_control.to_vec(),
            ))),
            Route::Hypervisor => Answer::Now(secured(Response::with_body(
                200,
                "application/json",
                self.hypervisor.to_vec(),
            ))),
            Route::Refuse { status, reason } => {
                log::debug!(
                    "console serve: {} {} from {}: {status} {reason}",
                    request.method,
                    request.path,
                    request.peer
                );
                Answer::Now(json_error(status, reason))
            }
            Route::Proxy {
                method,
                target,
                body,
                timeout,
            } => {
                let Some(tracker) = self.apis.first().map(|api| api.tracker) else {
                    return Answer::Now(json_error(502, "no source"));
                };
                Answer::Later(Box::pin(async move {
                    forward(tracker, method, &target, &body, timeout).await
                }))
            }
            Route::MergedTree => Answer::Later(Box::pin(merged_tree(self.apis.clone()))),
            Route::MergedEvents { since } => {
                Answer::Later(Box::pin(merged_events(self.feeds.clone(), since)))
            }
            Route::Routed {
                target,
                hypervisor,
                uuid,
                body,
            } => Answer::Later(Box::pin(routed(
                self.apis.clone(),
                target,
                hypervisor,
                uuid,
                body,
            ))),
        }
    }
}

/// Binds the listener, with a clear message when the port is taken.
pub fn bind(listen: SocketAddr) -> Result<TcpListener, Failure> {
    crate::net::iface::listen_tcp(listen, None).map_err(|error| {
        let why = match error.kind() {
            std::io::ErrorKind::AddrInUse => {
                "that port is in use (is another console or program listening there?)".to_string()
            }
            std::io::ErrorKind::AddrNotAvailable => "no interface has that address".to_string(),
            _ => error.to_string(),
        };
        Failure::failed(format!("cannot listen on {listen}: {why}"))
    })
}

/// `xenplug console serve`: serves the page until SIGINT or SIGTERM, reading a tracker
/// (`--tracker`), the console's own discovery (`--iface`), or both merged.
pub fn run(args: &ConsoleServeArgs) -> Result<(), Failure> {
    let mut signals = crate::net::event_loop::stop_signals()
        .map_err(|error| Failure::failed(format!("cannot install signal handlers: {error}")))?;
    let listener = bind(args.listen)?;
    // Kept until the end: dropping it stops the console's own tracker (with --iface).
    let source = super::open_source(&super::SourceOptions {
        tracker: args.tracker.clone(),
        ifaces: args.iface.clone(),
        settle: None,
    })?;
    let apis: Rc<[Api]> = source.apis().into();
    let local = listener.local_addr().unwrap_or(args.listen);
    let listener = Async::new(listener)
        .map_err(|error| Failure::failed(format!("listener on {local}: {error}")))?;
    if !local.ip().is_loopback() {
        log::warn!(
            "console serve: no login: anyone who can reach {local} can control every VM its \
             sources relay to"
        );
    }
    let feeds = Rc::new(RefCell::new(
        apis.iter()
            .map(|api| Feed::new(&api.name))
            .collect::<Vec<_>>(),
    ));
    let handler: Rc<dyn Handler> = Rc::new(ConsoleHttp {
        apis: apis.clone(),
        feeds: feeds.clone(),
        domain_control: service_json(&crate::control::DOMAIN_CONTROL_SERVICE).into(),
        hypervisor: service_json(&crate::control::HYPERVISOR_SERVICE).into(),
    });
    let mut stdout = std::io::stdout();
    // A closed stdout does not stop the console.
    let _ = writeln!(
        stdout,
        "console at http://{local}/ (source {})",
        apis.iter()
            .map(|api| api.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = stdout.flush();
    let executor = Rc::new(LocalExecutor::new());
    // With several sources the server follows their feeds itself, whatever the number of
    // pages open; with one, each page's long poll is passed on.
    let followers: Vec<_> = if apis.len() > 1 {
        apis.iter()
            .enumerate()
            .map(|(index, api)| executor.spawn(follow(feeds.clone(), index, api.tracker)))
            .collect()
    } else {
        Vec::new()
    };
    let serving = http::serve(
        listener,
        handler,
        ServerConfig::new(crate::state::server_string()),
        executor.clone(),
    );
    let served = smol::block_on(executor.run(smol::future::or(
        async {
            serving
                .await
                .map_err(|error| Failure::failed(format!("the listener on {local}: {error}")))
        },
        async {
            signals.next().await;
            log::info!("console serve: stopping");
            Ok(())
        },
    )));
    drop(followers);
    drop(source);
    served
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::json::{parse_value, JsonValue};

    const US: &str = "127.0.0.1:8780";
    const VM: &str = "acac0001-1111-4a6b-8c9d-0000000000a1";

    fn request(method: &str, target: &str, headers: &[(&str, &str)], body: &[u8]) -> Request {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (target, None),
        };
        Request {
            method: method.to_string(),
            path: path.to_string(),
            query,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            peer: "127.0.0.1:40000".parse().unwrap(),
            local: US.parse().unwrap(),
        }
    }

    const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
    const HOST: (&str, &str) = ("Host", US);
    const ORIGIN: (&str, &str) = ("Origin", "http://127.0.0.1:8780");

    fn post(headers: &[(&str, &str)], body: &[u8]) -> Route {
        one(&request(
            "POST",
            &format!("/api/vms/{VM}/actions"),
            headers,
            body,
        ))
    }

    /// How a server reading one source routes `request`.
    fn one(request: &Request) -> Route {
        route(request, 1)
    }

    fn status(route: &Route) -> Option<u16> {
        match route {
            Route::Refuse { status, .. } => Some(*status),
            _ => None,
        }
    }

    #[test]
    fn the_page_and_its_files() {
        for path in ["/", "/index.html", "/app.js", "/style.css", "/favicon.svg"] {
            assert!(
                matches!(one(&request("GET", path, &[HOST], b"")), Route::Asset { body, .. } if !body.is_empty()),
                "{path}"
            );
            assert_eq!(
                status(&one(&request("POST", path, &[HOST, ORIGIN, FORM], b""))),
                Some(405),
                "{path}"
            );
        }
        assert_eq!(
            one(&request("GET", "/domain-control.json", &[HOST], b"")),
            Route::DomainControl
        );
        assert_eq!(
            one(&request("GET", "/hypervisor.json", &[HOST], b"")),
            Route::Hypervisor
        );
    }

    #[test]
    fn unknown_paths_are_404() {
        for path in [
            "/api",
            "/api/vms",
            "/api/vms/x",
            "/api/tree/",
            "/index.htm",
            "/../etc/passwd",
            "/api/vms/acac0001-1111-4a6b-8c9d-0000000000a1",
        ] {
            assert_eq!(
                status(&one(&request("GET", path, &[HOST], b""))),
                Some(404),
                "{path}"
            );
        }
        let bad_uuid = request(
            "POST",
            "/api/vms/not-a-uuid/actions",
            &[HOST, ORIGIN, FORM],
            b"",
        );
        assert_eq!(status(&one(&bad_uuid)), Some(404));
    }

    #[test]
    fn reads_go_to_the_tracker() {
        assert_eq!(
            one(&request("GET", "/api/tree", &[HOST], b"")),
            Route::Proxy {
                method: "GET",
                target: "/api/tree".to_string(),
                body: Vec::new(),
                timeout: CONSOLE_TIMEOUT,
            }
        );
        let events = |query: &str| one(&request("GET", &format!("/api/events{query}"), &[], b""));
        assert!(
            matches!(events("?since=42"), Route::Proxy { target, .. } if target == "/api/events?since=42")
        );
        assert!(
            matches!(events(""), Route::Proxy { target, .. } if target == "/api/events?since=0")
        );
        // The query is rebuilt, never passed on as sent.
        assert!(
            matches!(events("?x=1&since=7"), Route::Proxy { target, .. } if target == "/api/events?since=7")
        );
        for bad in [
            "?since=-1",
            "?since=1e3",
            "?since=",
            "?since=99999999999999999999",
        ] {
            assert_eq!(status(&events(bad)), Some(400), "{bad}");
        }
        assert_eq!(
            status(&one(&request(
                "POST",
                "/api/tree",
                &[HOST, ORIGIN, FORM],
                b""
            ))),
            Some(405)
        );
    }

    #[test]
    fn actions_need_the_pages_own_origin() {
        let body = b"service=urn%3Ax&action=Echo&Text=hi";
        assert!(matches!(
            post(&[HOST, ORIGIN, FORM], body),
            Route::Proxy { method: "POST", ref target, ref body, timeout }
                if *target == format!("/api/vms/{VM}/actions") && body.starts_with(b"service=")
                    // An action waits for the relay's answer, however long the backend takes.
                    && timeout == CONSOLE_ACTION_TIMEOUT
        ));
        let refused = [
            vec![HOST, FORM],
            vec![HOST, FORM, ("Origin", "http://evil.example")],
            vec![HOST, FORM, ("Origin", "http://127.0.0.1:8781")],
            vec![HOST, FORM, ("Origin", "https://127.0.0.1:8780")],
            vec![HOST, FORM, ("Origin", "null")],
            vec![FORM, ORIGIN],
            vec![("Host", "127.0.0.1"), FORM, ORIGIN],
            vec![HOST, FORM, ORIGIN, ("Sec-Fetch-Site", "cross-site")],
        ];
        for headers in refused {
            assert_eq!(status(&post(&headers, body)), Some(403), "{headers:?}");
        }
        assert!(matches!(
            post(
                &[HOST, FORM, ORIGIN, ("Sec-Fetch-Site", "same-origin")],
                body
            ),
            Route::Proxy { .. }
        ));
        // GET on a relay path: never an action.
        let get = request(
            "GET",
            &format!("/api/vms/{VM}/actions"),
            &[HOST, ORIGIN],
            b"",
        );
        assert_eq!(status(&one(&get)), Some(405));
    }

    #[test]
    fn port_80_origins_have_no_port() {
        let mut at_80 = request(
            "POST",
            &format!("/api/hypervisors/{}/actions", VM.to_uppercase()),
            &[("Host", "10.0.0.1"), ("Origin", "http://10.0.0.1"), FORM],
            b"",
        );
        at_80.local = "10.0.0.1:80".parse().unwrap();
        // The UUID is written the canonical way towards the tracker.
        assert!(
            matches!(one(&at_80), Route::Proxy { target, .. } if target == format!("/api/hypervisors/{VM}/actions"))
        );
    }

    #[test]
    fn action_bodies_are_bounded_and_forms() {
        let big = vec![b'a'; CONSOLE_WEB_MAX_FORM + 1];
        assert_eq!(status(&post(&[HOST, ORIGIN, FORM], &big)), Some(413));
        let exact = vec![b'a'; CONSOLE_WEB_MAX_FORM];
        assert!(matches!(
            post(&[HOST, ORIGIN, FORM], &exact),
            Route::Proxy { .. }
        ));
        assert_eq!(
            status(&post(
                &[HOST, ORIGIN, ("Content-Type", "text/plain")],
                b"a=b"
            )),
            Some(415)
        );
        assert_eq!(status(&post(&[HOST, ORIGIN], b"a=b")), Some(415));
        assert!(matches!(
            post(
                &[
                    HOST,
                    ORIGIN,
                    (
                        "content-type",
                        "application/x-www-form-urlencoded;charset=UTF-8"
                    )
                ],
                b"a=b"
            ),
            Route::Proxy { .. }
        ));
    }

    #[test]
    fn answers_carry_the_security_headers() {
        let handler = ConsoleHttp {
            apis: vec![Api {
                name: "http://127.0.0.1:9".to_string(),
                tracker: Tracker::parse("http://127.0.0.1:9").unwrap(),
            }]
            .into(),
            feeds: Rc::new(RefCell::new(Vec::new())),
            domain_control: Arc::from(&b"{}"[..]),
            hypervisor: Arc::from(&b"{}"[..]),
        };
        for (target, want) in [("/", 200), ("/nowhere", 404)] {
            let Answer::Now(response) = handler.answer(request("GET", target, &[HOST], b"")) else {
                panic!("{target}: not answered at once");
            };
            assert_eq!(response.status, want, "{target}");
            let csp = response
                .headers
                .iter()
                .find(|(n, _)| *n == "Content-Security-Policy")
                .map(|(_, v)| v.as_str());
            assert_eq!(csp, Some(CONSOLE_WEB_CSP), "{target}");
            assert!(CONSOLE_WEB_CSP.starts_with("default-src 'self'"));
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_writes_no_markup() {
        for (path, _, body) in ASSETS {
            let text = std::str::from_utf8(body).unwrap();
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                // The SVG's xmlns is a name, not something fetched.
                let allowed = path == "/favicon.svg" && needle == "http://";
                assert!(
                    allowed || !text.contains(needle),
                    "{path} contains {needle}"
                );
            }
        }
        let script = std::str::from_utf8(APP_JS).unwrap();
        for needle in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!script.contains(needle), "app.js uses {needle}");
        }
        let page = std::str::from_utf8(INDEX_HTML).unwrap();
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "inline script or style would need a looser CSP"
        );
    }

    #[test]
    fn domain_control_description() {
        let bytes = service_json(&crate::control::DOMAIN_CONTROL_SERVICE);
        let value = parse_value(&bytes).unwrap();
        let actions = value.list_of("actions");
        let find = |name: &str| {
            actions
                .iter()
                .find(|a| a.str_of("name") == name)
                .unwrap_or_else(|| panic!("no {name}"))
        };
        let semantics = |action: &JsonValue| -> Vec<String> {
            action
                .list_of("semantics")
                .iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        };
        assert!(semantics(find("Destroy")).contains(&"destructive".to_string()));
        assert!(semantics(find("Pause")).contains(&"idempotent".to_string()));
        let state = find("GetState")
            .list_of("arguments")
            .first()
            .cloned()
            .unwrap();
        assert_eq!(state.str_of("direction"), "out");
        assert_eq!(state.str_of("type"), "string");
        assert!(state
            .list_of("allowed")
            .iter()
            .any(|v| v.as_str() == Some("running")));
        let memory = find("GetInfo")
            .list_of("arguments")
            .iter()
            .find(|a| a.str_of("name") == "MemoryMiB")
            .cloned()
            .unwrap();
        assert_eq!(memory.str_of("type"), "ui4");
    }

    #[test]
    fn a_port_in_use_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let failure = bind(address).unwrap_err();
        assert!(failure.message.contains("in use"), "{}", failure.message);
        assert!(
            failure.message.contains(&address.to_string()),
            "{}",
            failure.message
        );
        drop(taken);
        assert!(bind(address).is_ok(), "free again");
    }

    // ---- several sources ----------------------------------------------------------------

    fn two(request: &Request) -> Route {
        route(request, 2)
    }

    #[test]
    fn several_sources_are_answered_as_one() {
        assert_eq!(
            two(&request("GET", "/api/tree", &[HOST], b"")),
            Route::MergedTree
        );
        let events = |query: &str| two(&request("GET", &format!("/api/events{query}"), &[], b""));
        assert_eq!(
            events("?since=12.7"),
            Route::MergedEvents { since: vec![12, 7] }
        );
        assert_eq!(
            events(""),
            Route::MergedEvents { since: vec![0, 0] },
            "no since: every source from the start"
        );
        assert_eq!(
            events("?since=12%2E7"),
            Route::MergedEvents { since: vec![12, 7] },
            "percent-encoded as a browser may"
        );
        for bad in [
            "?since=12",
            "?since=1.2.3",
            "?since=1.",
            "?since=.1",
            "?since=1.-2",
            "?since=1,2",
            "?since=1.99999999999999999999",
            "?since=",
        ] {
            assert_eq!(status(&events(bad)), Some(400), "{bad}");
        }
        // One source: the cursor is the plain number, and the old format stays.
        assert!(matches!(
            one(&request("GET", "/api/events?since=1.2", &[], b"")),
            Route::Refuse { status: 400, .. }
        ));
        let body = b"service=urn%3Ax&action=Echo";
        assert_eq!(
            two(&request(
                "POST",
                &format!("/api/hypervisors/{}/actions", VM.to_uppercase()),
                &[HOST, ORIGIN, FORM],
                body
            )),
            Route::Routed {
                target: format!("/api/hypervisors/{VM}/actions"),
                hypervisor: true,
                uuid: VM.to_string(),
                body: body.to_vec(),
            }
        );
        // The same refusals as with one source, before any source is asked.
        let refused = |headers: &[(&str, &str)], body: &[u8]| {
            status(&two(&request(
                "POST",
                &format!("/api/vms/{VM}/actions"),
                headers,
                body,
            )))
        };
        assert_eq!(refused(&[HOST, FORM], body), Some(403));
        assert_eq!(refused(&[HOST, ORIGIN], body), Some(415));
        assert_eq!(
            refused(&[HOST, ORIGIN, FORM], &vec![b'a'; CONSOLE_WEB_MAX_FORM + 1]),
            Some(413)
        );
        assert_eq!(
            status(&two(&request(
                "POST",
                "/api/vms/nope/actions",
                &[HOST, ORIGIN, FORM],
                body
            ))),
            Some(404)
        );
    }

    #[test]
    fn cursors_round_trip() {
        for parts in [vec![0], vec![12, 7], vec![u64::MAX, 0, 3]] {
            let text = cursor_text(&parts);
            assert_eq!(
                parse_cursor(&text, parts.len()),
                Some(parts.clone()),
                "{text}"
            );
            assert_eq!(parse_cursor(&text, parts.len() + 1), None, "{text}");
            for end in 0..text.len() {
                // A truncated cursor is another cursor or none, never a panic.
                let _ = parse_cursor(&text[..end], parts.len());
            }
        }
        assert_eq!(cursor_text(&[12, 7]), "12.7");
        assert_eq!(parse_cursor("+1.2", 2), None);
    }

    fn doc(text: &str) -> Document {
        Document {
            bytes: text.as_bytes().to_vec(),
            value: parse_value(text.as_bytes()).unwrap(),
        }
    }

    const HOST_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
    const ECHO: &str = "urn:xenplug-org:service:Echo:1";

    /// The tracker hears the tenant network (the VM's Echo, no placement); the console's own
    /// discovery the provider network (the hypervisor placing the VM, no services).
    fn two_trees() -> Vec<Document> {
        vec![
            doc(&format!(
                r#"{{"hypervisors":[],"devirtualized":[{{"uuid":"{VM}","name":"acme-1","run_state":"unknown","tenant":"acme","services":[{{"type":"{ECHO}","actions":[{{"name":"Echo","semantics":[],"inputs":["Text"],"outputs":["Reply"]}}]}}],"first_seen":1,"last_seen":5}}],"undescribed":[],"last_seq":12}}"#
            )),
            doc(&format!(
                r#"{{"hypervisors":[{{"uuid":"{HOST_A}","name":"Xen hypervisor dom0-a","network":"mgmt","addresses":[],"state":"online","first_seen":1,"last_seen":5,"vms":[{{"uuid":"{VM}","name":"acme-1","run_state":"running","services":[],"first_seen":1,"last_seen":5}}]}}],"devirtualized":[],"undescribed":[],"last_seq":7}}"#
            )),
        ]
    }

    fn apis() -> Vec<Api> {
        ["http://127.0.0.1:8700", "local"]
            .iter()
            .map(|name| Api {
                name: name.to_string(),
                tracker: Tracker::parse("http://127.0.0.1:9").unwrap(),
            })
            .collect()
    }

    #[test]
    fn the_merged_tree_carries_its_cursor() {
        let trees = two_trees();
        let merged = crate::console::merged(&apis(), &trees).unwrap();
        let value = parse_value(&tree_with_cursor(&merged, &trees)).unwrap();
        assert_eq!(value.str_of("cursor"), "12.7");
        assert_eq!(
            value.list_of("sources").len(),
            2,
            "the merged document's own fields"
        );
        let placed = &value.list_of("hypervisors")[0].list_of("vms")[0];
        assert_eq!(placed.str_of("run_state"), "running");
        assert_eq!(
            placed.list_of("services").len(),
            1,
            "merged as tree --json merges"
        );
        // Not an object: passed on as it is.
        let odd = doc("[1]");
        assert_eq!(tree_with_cursor(&odd, &trees), b"[1]");
    }

    fn body(service: &str, action: &str) -> Vec<u8> {
        crate::console::call::form_body(service, action, &[]).into_bytes()
    }

    #[test]
    fn actions_go_to_the_source_that_can_reach_them() {
        let trees = two_trees();
        let merged = crate::console::merged(&apis(), &trees).unwrap();
        let choose = |hypervisor: bool, uuid: &str, body: &[u8]| {
            choose_source(&trees, &merged, hypervisor, uuid, body)
        };
        let dc = crate::consts::URN_SERVICE_DOMAIN_CONTROL;
        let hv = crate::consts::URN_SERVICE_HYPERVISOR;
        assert_eq!(
            choose(false, VM, &body(ECHO, "Echo")),
            Ok(0),
            "the owner's service"
        );
        assert_eq!(
            choose(false, VM, &body(dc, "Pause")),
            Ok(1),
            "the placing source"
        );
        assert_eq!(choose(true, HOST_A, &body(hv, "GetHostInfo")), Ok(1));
        let status = |result: Result<usize, (u16, String)>| result.map_err(|(status, _)| status);
        // Unknown to every source: 404, whatever the action.
        let nobody = "0000dead-0000-4000-8000-000000000000";
        assert_eq!(status(choose(false, nobody, &body(dc, "Pause"))), Err(404));
        assert_eq!(
            status(choose(true, nobody, &body(hv, "GetHostInfo"))),
            Err(404)
        );
        // A VM's UUID on the hypervisor path and the other way round.
        assert_eq!(status(choose(true, VM, &body(hv, "GetHostInfo"))), Err(404));
        assert_eq!(status(choose(false, HOST_A, &body(dc, "Pause"))), Err(404));
        // An action nobody offers, a service the VM does not have.
        assert_eq!(
            status(choose(false, VM, &body(ECHO, "Frobnicate"))),
            Err(404)
        );
        assert_eq!(
            status(choose(false, VM, &body("urn:x:service:Other:1", "Echo"))),
            Err(404)
        );
        assert_eq!(status(choose(false, VM, &body(dc, "Frobnicate"))), Err(404));
        // Not a call at all.
        assert_eq!(status(choose(false, VM, b"action=Echo")), Err(400));
        assert_eq!(status(choose(false, VM, b"service=x&action=")), Err(400));
        assert_eq!(status(choose(false, VM, b"\xff")), Err(400));
        // Junk from the sources: an answer, not a panic.
        let junk = [doc("{}"), doc("[]")];
        let merged_junk = crate::console::merged(&apis(), &junk).unwrap();
        assert!(choose_source(&junk, &merged_junk, false, VM, &body(dc, "Pause")).is_err());
    }

    fn page(events: &[(u64, &str)], last: u64) -> JsonValue {
        let events: Vec<String> = events
            .iter()
            .map(|(seq, subject)| {
                format!(r#"{{"seq":{seq},"time":1,"kind":"vm-added","subject":"{subject}","details":{{}}}}"#)
            })
            .collect();
        parse_value(format!(r#"{{"events":[{}],"last_seq":{last}}}"#, events.join(",")).as_bytes())
            .unwrap()
    }

    #[test]
    fn feeds_keep_their_newest_events_tagged() {
        let mut feed = Feed::new("local");
        feed.error = Some("was down".into());
        feed.apply(&page(&[(1, "a"), (2, "b")], 3));
        assert_eq!(feed.next, Some(3), "up to the journal's end");
        assert_eq!(feed.error, None);
        assert_eq!(feed.recent.len(), 2);
        assert_eq!(feed.recent[1].1.str_of("source"), "local");
        assert_eq!(feed.recent[1].1.str_of("subject"), "b");
        // Old events again, junk: skipped; never backwards within a journal.
        feed.apply(
            &parse_value(br#"{"events":[{"seq":2},1,"x",{"seq":4,"source":"evil"}],"last_seq":4}"#)
                .unwrap(),
        );
        assert_eq!(feed.next, Some(4));
        assert_eq!(feed.recent.len(), 3);
        assert_eq!(
            feed.recent[2].1.str_of("source"),
            "local",
            "the server's tag, not the source's"
        );
        // Bounded.
        let many: Vec<(u64, &str)> = (5..5 + CONSOLE_WEB_EVENTS_KEPT as u64 + 10)
            .map(|seq| (seq, "c"))
            .collect();
        let newest = 4 + CONSOLE_WEB_EVENTS_KEPT as u64 + 10;
        feed.apply(&page(&many, newest));
        assert_eq!(feed.recent.len(), CONSOLE_WEB_EVENTS_KEPT);
        assert_eq!(feed.next, Some(newest));
        assert_eq!(feed.recent.back().map(|(seq, _)| *seq), Some(newest));
        // The journal went back: restart at its end, forgetting the other journal's events.
        feed.apply(&page(&[(2, "new")], 2));
        assert_eq!(feed.next, Some(2));
        assert!(feed.recent.is_empty());
    }

    fn answer(feeds: &[Feed], since: &[u64], timed_out: bool) -> Option<JsonValue> {
        events_answer(feeds, since, timed_out).map(|body| parse_value(&body.unwrap()).unwrap())
    }

    #[test]
    fn a_page_waits_until_some_source_has_news() {
        let mut tracker = Feed::new("http://127.0.0.1:8700");
        let mut local = Feed::new("local");
        assert!(
            answer(&[tracker.clone(), local.clone()], &[12, 7], false).is_none(),
            "nothing read yet"
        );
        tracker.apply(&page(&[(12, "old")], 12));
        local.apply(&page(&[], 7));
        let feeds = [tracker.clone(), local.clone()];
        assert!(answer(&feeds, &[12, 7], false).is_none(), "nothing new");
        let quiet = answer(&feeds, &[12, 7], true).expect("answered when the poll times out");
        assert_eq!(quiet.str_of("cursor"), "12.7");
        assert!(quiet.list_of("events").is_empty());
        assert!(quiet.get("reset").is_none());

        local.apply(&page(&[(8, "vm-1"), (9, "vm-2")], 9));
        let feeds = [tracker.clone(), local.clone()];
        let news = answer(&feeds, &[12, 7], false).expect("local has news");
        assert_eq!(news.str_of("cursor"), "12.9");
        assert_eq!(news.get("last_seq").and_then(JsonValue::as_u64), Some(12));
        let events: Vec<(&str, &str)> = news
            .list_of("events")
            .iter()
            .map(|e| (e.str_of("subject"), e.str_of("source")))
            .collect();
        assert_eq!(events, [("vm-1", "local"), ("vm-2", "local")]);
        let sources: Vec<(&str, Option<u64>)> = news
            .list_of("sources")
            .iter()
            .map(|s| {
                (
                    s.str_of("api"),
                    s.get("last_seq").and_then(JsonValue::as_u64),
                )
            })
            .collect();
        assert_eq!(
            sources,
            [("http://127.0.0.1:8700", Some(12)), ("local", Some(9))]
        );
        // A page further on sees only what it has not seen.
        let later = answer(&feeds, &[0, 8], false).unwrap();
        let subjects: Vec<&str> = later
            .list_of("events")
            .iter()
            .map(|e| e.str_of("subject"))
            .collect();
        assert_eq!(subjects, ["old", "vm-2"]);

        // A source fails: said, and the others still answer; all failing: a 502.
        let mut down = tracker.clone();
        down.error = Some("the tracker at http://127.0.0.1:8700 did not answer".into());
        let partly = answer(&[down.clone(), local.clone()], &[12, 7], false).unwrap();
        assert!(partly.list_of("sources")[0]
            .str_of("error")
            .contains("did not answer"));
        assert_eq!(partly.list_of("events").len(), 2);
        let mut local_down = local.clone();
        local_down.error = Some("refused".into());
        let failed = events_answer(&[down, local_down], &[12, 7], false);
        assert!(
            matches!(failed, Some(Err(ref why)) if why.contains("refused")),
            "{failed:?}"
        );

        // A cursor past a source's journal (it restarted): that part restarts at its end.
        let reset = answer(&feeds, &[40, 9], false).unwrap();
        assert_eq!(reset.str_of("cursor"), "12.9");
        assert_eq!(reset.get("reset"), Some(&JsonValue::Bool(true)));
        assert!(reset.list_of("events").is_empty());
        // A short cursor is read as from the start, never a panic.
        assert!(answer(&feeds, &[], false).is_some());
    }

    #[test]
    fn join_all_keeps_the_order() {
        let futures: Vec<Pin<Box<dyn Future<Output = u32>>>> = vec![
            Box::pin(async {
                Timer::after(Duration::from_millis(20)).await;
                1
            }),
            Box::pin(async { 2 }),
        ];
        assert_eq!(smol::block_on(join_all(futures)), [1, 2]);
        assert_eq!(
            smol::block_on(join_all::<u32>(Vec::new())),
            Vec::<u32>::new()
        );
    }
}
