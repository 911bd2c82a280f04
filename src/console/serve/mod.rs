//! `xenplug console serve --listen ADDR:PORT`: the console as one web page. Net layer: it owns
//! a listener, asks its sources' read APIs and, with several sources, follows their event
//! feeds; this file is that I/O. What to do with a request is decided by the pure [`route`]
//! (`routes.rs`, with the page's files), how several sources answer as one by the pure
//! [`tree_with_cursor`], [`Feed`], [`events_answer`] and [`choose_source`] (`feed.rs`). None
//! of them panics on what a browser or a tracker sends.
//!
//! The page (`src/console/web/`: index.html, app.js, style.css, favicon.svg) is compiled into
//! the binary, gzip-compressed by build.rs and sent as it is with `Content-Encoding: gzip` (a
//! 406 to a client that refuses gzip): nothing is fetched from anywhere else, at build
//! or run time, and every answer carries `Content-Security-Policy: default-src 'self'`
//! (`CONSOLE_WEB_CSP`) so the page cannot load or send anything elsewhere either.
//!
//! # Sources
//!
//! Those of every console command ([`super::open_source`]): `--tracker URL`, `--iface
//! IF[:TENANT]...` (the console's own discovery), or both. With one source the server passes
//! requests under its own `/api/...` to that API and its answers back (status and JSON body
//! as they are): `GET /api/tree`, `GET /api/events?since=N` (the long poll), `POST
//! /api/vms/<uuid>/actions` and `POST /api/hypervisors/<uuid>/actions` (form bodies of at
//! most `CONSOLE_WEB_MAX_FORM` bytes). Either way a page's `GET /api/events` is one of the
//! HTTP server's long polls ([`crate::net::http::Answer::LongPoll`]): it holds no connection
//! slot, is capped per address, and ends as soon as the page goes.
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
//! # Sign-in
//!
//! With `--access FILE` every `/api/` request needs a token of that file (401, then 429 after
//! too many failures from one address: [`crate::engine::access::Failures`]); the page keeps the
//! token in `sessionStorage` and `GET /api/whoami` says who it is. Each source is then asked
//! with the user's own token, never the server's, so the trackers apply each identity's rights
//! (and, with several sources, each signed-in user's feeds are followed apart). Without
//! `--access` there is no login: whoever reaches the listener has the rights of the console's
//! own token (`--token-file`) at its sources. Either way the listen address is always given,
//! and cross-site requests are refused: a `POST` must carry an `Origin` (browsers always send
//! one on a POST) naming the address the request reached, and a `Host` naming it too (the HTTP
//! server already refuses any `Host` that is not that IP address, so DNS rebinding cannot
//! reach the API either).

mod cluster;
mod feed;
mod routes;

pub use feed::{choose_source, events_answer, tree_with_cursor, Feed};
pub use routes::{cursor_text, parse_cursor, route, service_json, Route};

use super::{Api, Document, Failure, Tracker};
use crate::cli::ConsoleServeArgs;
use crate::consts::{
    API_EVENTS_PATH, API_TREE_PATH, CONSOLE_ACTION_TIMEOUT, CONSOLE_TIMEOUT, CONSOLE_WATCH_RETRY,
    CONSOLE_WATCH_TIMEOUT, TRACK_API_LONG_POLL,
};
use crate::credentials::Gate;
use crate::engine::access::{Identity, Refusal};
use crate::net::event_loop::{woken_or, Wakeups};
use crate::net::http::{self, Answer, Handler, Request, Response, ServerConfig};
use crate::wire::http::RequestHead;
use crate::wire::json::JsonWriter;
use smol::stream::StreamExt as _;
use smol::{Async, LocalExecutor, Timer};
use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

/// The sources' feeds as followed, and the pages' requests waiting for one to move on.
#[derive(Default)]
struct Followed {
    feeds: Vec<Feed>,
    moved: Wakeups,
}

/// The feeds followed for one user (or for everyone, without `--access`).
type Feeds = Rc<RefCell<Followed>>;

/// The feeds of `apis`, not followed yet.
fn new_feeds(apis: &[Api]) -> Feeds {
    Rc::new(RefCell::new(Followed {
        feeds: apis.iter().map(|api| Feed::new(&api.name)).collect(),
        moved: Wakeups::default(),
    }))
}

/// How long a signed-in user's feeds are kept with no page asking for them: a page asks again
/// as soon as its long poll ends, so a few long polls' time means the page is gone.
const USER_FEEDS_IDLE: Duration = Duration::from_secs(3 * 20);

/// Content-Security-Policy of every answer of the console's page: nothing but its own files.
const CONSOLE_WEB_CSP: &str =
    "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

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
    /// The page's identities and failed sign-ins (`--access`), if it needs a sign-in; shared
    /// with the SIGHUP task, which reads the file again.
    gate: Option<Rc<RefCell<Gate>>>,
    /// Their event feeds, as [`follow`] reads them (several sources only, no `--access`).
    feeds: Feeds,
    /// With `--access` and several sources: each signed-in user's own feeds, followed with
    /// that user's token (so that each sees what that identity may), by token.
    user_feeds: RefCell<HashMap<String, UserFeeds>>,
    /// Where the followers of the users' feeds run.
    executor: Rc<LocalExecutor<'static>>,
    domain_control: Arc<[u8]>,
    hypervisor: Arc<[u8]>,
    /// With `--etcd`: every site, as followed in etcd (then `apis` is empty).
    cluster: Option<Rc<cluster::Shared>>,
    /// The console's own token (`--token-file`), for calls without `--access`.
    own_token: Option<String>,
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
async fn merged_events(feeds: Feeds, since: Vec<u64>) -> Response {
    let deadline = Instant::now() + TRACK_API_LONG_POLL;
    loop {
        let moved = {
            let mut followed = feeds.borrow_mut();
            let answer = events_answer(&followed.feeds, &since, Instant::now() >= deadline);
            match answer {
                Some(Ok(body)) => {
                    return secured(Response::with_body(200, "application/json", body))
                }
                Some(Err(why)) => return json_error(502, &why),
                None => followed.moved.listen(),
            }
        };
        woken_or(&moved, deadline).await;
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
    forward(
        api.tracker.clone(),
        "POST",
        &target,
        &body,
        CONSOLE_ACTION_TIMEOUT,
    )
    .await
}

/// Follows the event feed of source `index` into `feeds` for as long as the server runs: one
/// long poll at a time, retried after [`CONSOLE_WATCH_RETRY`] when it fails.
async fn follow(feeds: Feeds, index: usize, tracker: Tracker) {
    loop {
        let since = feeds
            .borrow()
            .feeds
            .get(index)
            .and_then(|feed| feed.next)
            .unwrap_or(0);
        let target = format!("{API_EVENTS_PATH}?since={since}");
        let result = tracker.get_json_async(&target, CONSOLE_WATCH_TIMEOUT).await;
        let failed = {
            let mut followed = feeds.borrow_mut();
            let Some(feed) = followed.feeds.get_mut(index) else {
                return;
            };
            let failed = match result {
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
            };
            followed.moved.wake_all();
            failed
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
        let route = match &self.cluster {
            // Every site answers as several sources do, with the feed's one-number cursor.
            Some(_) => cluster::events_route(&request).unwrap_or_else(|| route(&request, 2)),
            None => route(&request, self.apis.len()),
        };
        // Everything under /api/ asks the sources: with --access, as the signed-in identity.
        let needs_identity = matches!(
            route,
            Route::Whoami
                | Route::Proxy { .. }
                | Route::MergedTree
                | Route::MergedEvents { .. }
                | Route::Routed { .. }
        );
        let identity = match (needs_identity, &self.gate) {
            (true, Some(_)) => match self.authenticate(&request) {
                Ok(identity) => Some(identity),
                Err(Refusal { status, reason }) => {
                    let mut response = json_error(status, reason);
                    if status == 401 {
                        response
                            .headers
                            .push(("WWW-Authenticate", "Bearer realm=\"xenplug\"".to_string()));
                    }
                    return Answer::Now(response);
                }
            },
            _ => None,
        };
        if let Some(shared) = &self.cluster {
            let reads = matches!(route, Route::MergedTree | Route::MergedEvents { .. });
            if let Some(refusal) = reads
                .then(|| cluster::refused_reader(identity.as_ref().map(|(i, _)| i)))
                .flatten()
            {
                return Answer::Now(refusal);
            }
            match route {
                Route::MergedTree => return Answer::Now(cluster::tree(shared)),
                Route::MergedEvents { since } => {
                    let since = since.first().copied().unwrap_or(0);
                    return Answer::LongPoll(Box::pin(cluster::events(shared.clone(), since)));
                }
                Route::Routed {
                    target,
                    hypervisor,
                    uuid,
                    body,
                } => {
                    let token = identity
                        .as_ref()
                        .map(|(_, token)| token.clone())
                        .or_else(|| self.own_token.clone());
                    return Answer::Later(Box::pin(cluster::routed(
                        shared.clone(),
                        target,
                        hypervisor,
                        uuid,
                        body,
                        token,
                    )));
                }
                _ => {}
            }
        }
        // With --access, each source is asked with the user's own token (never the server's).
        let apis: Rc<[Api]> = match &identity {
            Some((_, token)) => self
                .apis
                .iter()
                .map(|api| Api {
                    name: api.name.clone(),
                    tracker: api.tracker.with_token(Some(token)),
                })
                .collect(),
            None => self.apis.clone(),
        };
        match route {
            Route::Asset { content_type, body } => {
                let mut response = Response::with_body(200, content_type, body.to_vec());
                response.headers.extend([
                    ("Content-Encoding", "gzip".to_string()),
                    ("Vary", "Accept-Encoding".to_string()),
                ]);
                Answer::Now(secured(response))
            }
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
            Route::Whoami => {
                let mut json = JsonWriter::new();
                json.begin_object();
                match &identity {
                    Some((identity, _)) => {
                        json.key("name").string(&identity.name);
                        json.key("role").string(&identity.role.to_string());
                    }
                    None => {
                        json.key("name").null();
                    }
                }
                json.end_object();
                let body = json.finish().unwrap_or_default();
                Answer::Now(secured(Response::with_body(200, "application/json", body)))
            }
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
                let Some(tracker) = apis.first().map(|api| api.tracker.clone()) else {
                    return Answer::Now(json_error(502, "no source"));
                };
                // The events feed waits at the source: a long poll here too.
                let long_poll = target.split('?').next() == Some(API_EVENTS_PATH);
                let forwarded =
                    async move { forward(tracker, method, &target, &body, timeout).await };
                if long_poll {
                    Answer::LongPoll(Box::pin(forwarded))
                } else {
                    Answer::Later(Box::pin(forwarded))
                }
            }
            Route::MergedTree => Answer::Later(Box::pin(merged_tree(apis))),
            Route::MergedEvents { since } => {
                let feeds = match &identity {
                    Some((_, token)) => self.feeds_of(token, &apis),
                    None => self.feeds.clone(),
                };
                Answer::LongPoll(Box::pin(merged_events(feeds, since)))
            }
            Route::Routed {
                target,
                hypervisor,
                uuid,
                body,
            } => Answer::Later(Box::pin(routed(apis, target, hypervisor, uuid, body))),
        }
    }
}

/// One signed-in user's feeds of several sources, and the tasks following them.
struct UserFeeds {
    feeds: Feeds,
    _followers: Vec<smol::Task<()>>,
    last_used: Instant,
}

impl ConsoleHttp {
    /// The feeds of the user with `token` (followed as that user, at `apis`), started on first
    /// use; feeds no page asked for in [`USER_FEEDS_IDLE`] are dropped (their followers stop).
    fn feeds_of(&self, token: &str, apis: &[Api]) -> Feeds {
        let now = Instant::now();
        let mut users = self.user_feeds.borrow_mut();
        users.retain(|_, user| now.saturating_duration_since(user.last_used) < USER_FEEDS_IDLE);
        let user = users.entry(token.to_string()).or_insert_with(|| {
            let feeds = new_feeds(apis);
            let followers = apis
                .iter()
                .enumerate()
                .map(|(index, api)| {
                    self.executor
                        .spawn(follow(feeds.clone(), index, api.tracker.clone()))
                })
                .collect();
            UserFeeds {
                feeds,
                _followers: followers,
                last_used: now,
            }
        });
        user.last_used = now;
        user.feeds.clone()
    }

    /// The identity whose token the request carries (and the token), or the refusal.
    fn authenticate(&self, request: &Request) -> Result<(Identity, String), Refusal> {
        match &self.gate {
            Some(gate) => gate.borrow_mut().authenticate(request),
            None => Err(Refusal {
                status: 401,
                reason: "no access file",
            }),
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
/// (`--tracker`), the console's own discovery (`--iface`), or both merged. SIGHUP reads the
/// access file again at once.
pub fn run(args: &ConsoleServeArgs) -> Result<(), Failure> {
    let mut signals = crate::net::event_loop::stop_signals()
        .map_err(|error| Failure::failed(format!("cannot install signal handlers: {error}")))?;
    let reloads = crate::net::event_loop::reload_signals()
        .map_err(|error| Failure::failed(format!("cannot install signal handlers: {error}")))?;
    let listener = bind(args.listen)?;
    let own_token = super::token_of(args.token_file.as_deref())?;
    let cluster = match &args.etcd {
        Some(urls) => {
            let options = super::cluster::EtcdOptions::new(
                urls,
                &args.etcd_prefix,
                args.etcd_user.as_deref(),
                args.etcd_password_file.as_deref(),
            );
            let read = super::cluster::Cluster::read(&options, None)?;
            Some(Rc::new(cluster::Shared {
                cluster: RefCell::new(read),
                error: RefCell::new(None),
                waiting: RefCell::new(Default::default()),
            }))
        }
        None => None,
    };
    // Kept until the end: dropping it stops the console's own tracker (with --iface).
    let source = match cluster {
        Some(_) => None,
        None => Some(super::open_source(&super::SourceOptions {
            tracker: args.tracker.clone(),
            ifaces: args.iface.clone(),
            settle: None,
            token: own_token.clone(),
            access: args.access.clone(),
            control_key: args.control_key.clone(),
        })?),
    };
    let apis: Rc<[Api]> = source.as_ref().map_or(&[][..], |s| s.apis()).into();
    let local = listener.local_addr().unwrap_or(args.listen);
    let listener = Async::new(listener)
        .map_err(|error| Failure::failed(format!("listener on {local}: {error}")))?;
    if !local.ip().is_loopback() && args.access.is_none() {
        log::warn!(
            "console serve: no login (no --access): anyone who can reach {local} has the \
             console's own rights at its sources"
        );
    }
    let feeds = new_feeds(&apis);
    let access = args
        .access
        .as_deref()
        .map(crate::credentials::AccessFile::open)
        .transpose()
        .map_err(|error| Failure::failed(error.to_string()))?;
    let executor = Rc::new(LocalExecutor::new());
    let gate = access.map(|access| Rc::new(RefCell::new(Gate::new(access, "console serve"))));
    let reloaded = gate.clone();
    crate::net::event_loop::spawn_reloads(&executor, reloads, move || match &reloaded {
        Some(gate) => gate.borrow_mut().reload(),
        None => log::info!("console serve: SIGHUP: no access file to read again"),
    });
    let handler: Rc<dyn Handler> = Rc::new(ConsoleHttp {
        apis: apis.clone(),
        gate,
        feeds: feeds.clone(),
        user_feeds: RefCell::new(HashMap::new()),
        executor: executor.clone(),
        domain_control: service_json(&crate::control::DOMAIN_CONTROL_SERVICE).into(),
        hypervisor: service_json(&crate::control::HYPERVISOR_SERVICE).into(),
        cluster: cluster.clone(),
        own_token,
    });
    let mut stdout = std::io::stdout();
    // A closed stdout does not stop the console.
    let _ = writeln!(
        stdout,
        "console at http://{local}/ (source {})",
        match &args.etcd {
            Some(urls) => format!("etcd {urls}"),
            None => apis
                .iter()
                .map(|api| api.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        }
    );
    let _ = stdout.flush();
    // With several sources the server follows their feeds itself, whatever the number of
    // pages open (with --access, per signed-in user, as it asks); with one, each page's long
    // poll is passed on.
    let followers: Vec<_> = if apis.len() > 1 && args.access.is_none() {
        apis.iter()
            .enumerate()
            .map(|(index, api)| executor.spawn(follow(feeds.clone(), index, api.tracker.clone())))
            .collect()
    } else {
        Vec::new()
    };
    let follower = cluster.map(|shared| executor.spawn(cluster::follow(shared)));
    let serving = http::serve(
        listener,
        handler,
        ServerConfig::new(crate::state::server_string()),
        executor.clone(),
    );
    let served = crate::net::event_loop::run_main(
        &executor,
        smol::future::or(
            async move {
                serving
                    .await
                    .map_err(|error| Failure::failed(format!("the listener on {local}: {error}")))
            },
            async move {
                signals.next().await;
                log::info!("console serve: stopping");
                Ok(())
            },
        ),
    );
    drop(followers);
    drop(follower);
    drop(source);
    served
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fixtures: the `pub(super)` ones serve the tests of `routes.rs` and `feed.rs` too.
    const US: &str = "127.0.0.1:8780";
    pub(super) const VM: &str = "acac0001-1111-4a6b-8c9d-0000000000a1";

    pub(super) fn request(
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Request {
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

    pub(super) const HOST: (&str, &str) = ("Host", US);

    #[test]
    fn answers_carry_the_security_headers() {
        let handler = ConsoleHttp {
            apis: vec![Api {
                name: "http://127.0.0.1:9".to_string(),
                tracker: Tracker::parse("http://127.0.0.1:9").unwrap(),
            }]
            .into(),
            feeds: Feeds::default(),
            user_feeds: RefCell::new(HashMap::new()),
            executor: Rc::new(LocalExecutor::new()),
            gate: None,
            domain_control: Arc::from(&b"{}"[..]),
            hypervisor: Arc::from(&b"{}"[..]),
            cluster: None,
            own_token: None,
        };
        let gzip = ("Accept-Encoding", "gzip, deflate");
        for (target, accept, want) in [
            ("/", Some(gzip), 200),
            ("/", None, 200),
            ("/", Some(("Accept-Encoding", "identity")), 406),
            ("/nowhere", Some(gzip), 404),
        ] {
            let headers: Vec<(&str, &str)> = [HOST].into_iter().chain(accept).collect();
            let Answer::Now(response) = handler.answer(request("GET", target, &headers, b""))
            else {
                panic!("{target}: not answered at once");
            };
            assert_eq!(response.status, want, "{target} {accept:?}");
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.as_str())
            };
            assert_eq!(header("Content-Security-Policy"), Some(CONSOLE_WEB_CSP));
            assert!(CONSOLE_WEB_CSP.starts_with("default-src 'self'"));
            let gzipped = (want == 200).then_some("gzip");
            assert_eq!(header("Content-Encoding"), gzipped, "{target} {accept:?}");
        }
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
