//! `console serve --etcd`: the page over every site in etcd. Net layer: the server follows
//! one watch for all pages ([`follow`]); the tree, the feed and the routing are
//! [`crate::console::cluster`]'s and the engine's.
//!
//! - `GET /api/tree`: the merged tree of every live site (`sources`: `site NAME`; `sites`:
//!   every site, gone ones too) plus `"cursor"`, the feed's last `seq`;
//! - `GET /api/events?since=N`: the feed's events after `seq` N, each with `"source"` (`site
//!   NAME`), as soon as there is one, else after [`TRACK_API_LONG_POLL`]: `{"events":[..],
//!   "last_seq","cursor","sources":[{"api","last_seq","error"?}],"reset"?}` (`reset` when N is
//!   past the feed: the server restarted; read the tree again);
//! - a `POST` of an action goes to the read API of the tracker of the live site that places
//!   the target (as `console call --etcd` chooses), with the signed-in user's token (or the
//!   console's own without `--access`), so the tracker decides as when asked directly.
//!
//! etcd holds the provider's view: with `--access`, only provider roles read it here; a
//! tenant's token is refused (403).

use super::{forward, json_error, secured, Route};
use crate::console::cluster::{follow as follow_cluster, load, Cluster};
use crate::consts::{
    API_EVENTS_PATH, CONSOLE_ACTION_TIMEOUT, CONSOLE_WATCH_RETRY, TRACK_API_LONG_POLL,
};
use crate::engine::access::{Identity, Role};
use crate::net::event_loop::{woken_or, Wakeups};
use crate::net::http::{Request, Response};
use crate::wire::json::JsonWriter;
use smol::Timer;
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// Events of the feed one answer carries, at most.
const CLUSTER_EVENTS_PAGE: usize = 500;

/// What the server's pages share: the cluster as followed, and why following fails.
pub struct Shared {
    /// The cluster and its view.
    pub cluster: RefCell<Cluster>,
    /// Why the last watch failed, until one works.
    pub error: RefCell<Option<String>>,
    /// Long polls waiting for the feed to move on (or the cluster's state to change).
    pub waiting: RefCell<Wakeups>,
}

/// The route of `GET /api/events` with a one-number cursor (the feed's), `None` for any other
/// request (routed as with several sources).
pub fn events_route(request: &Request) -> Option<Route> {
    if request.path != API_EVENTS_PATH {
        return None;
    }
    if request.method != "GET" {
        return Some(Route::Refuse {
            status: 405,
            reason: "method not allowed",
        });
    }
    match crate::wire::form::value(request.query.as_deref(), "since") {
        None => Some(Route::MergedEvents { since: vec![0] }),
        Some(text) => Some(match text.parse::<u64>() {
            Ok(since) => Route::MergedEvents { since: vec![since] },
            Err(_) => Route::Refuse {
                status: 400,
                reason: "since= is the feed's cursor, a number",
            },
        }),
    }
}

/// The refusal of a read by `identity`: etcd holds the provider's view.
pub fn refused_reader(identity: Option<&Identity>) -> Option<Response> {
    let tenant = identity.is_some_and(|identity| matches!(identity.role, Role::Tenant(_)));
    tenant.then(|| {
        json_error(
            403,
            "this console reads every site from etcd: the provider's view, not a tenant's",
        )
    })
}

/// `GET /api/tree`.
pub fn tree(shared: &Shared) -> Response {
    let cluster = shared.cluster.borrow();
    let merged = match cluster.merged() {
        Ok(merged) => merged,
        Err(failure) => return json_error(502, &failure.message),
    };
    let mut json = JsonWriter::new();
    json.begin_object();
    for (name, value) in merged.value.as_object().unwrap_or(&[]) {
        if name != "cursor" {
            json.key(name).any(value);
        }
    }
    json.key("cursor")
        .string(&cluster.view().last_seq().to_string());
    json.end_object();
    match json.finish() {
        Ok(body) => secured(Response::with_body(200, "application/json", body)),
        Err(error) => json_error(502, &format!("{error:?}")),
    }
}

/// The answer to `since` from the feed as it is now; `None` while there is nothing newer and
/// the poll has not `timed_out`.
fn events_now(shared: &Shared, since: u64, timed_out: bool) -> Option<Vec<u8>> {
    let cluster = shared.cluster.borrow();
    let view = cluster.view();
    let last = view.last_seq();
    let reset = since > last;
    if last == since && !timed_out {
        return None;
    }
    let (events, _) = view.events_since(if reset { last } else { since }, CLUSTER_EVENTS_PAGE);
    let mut next = if reset { last } else { since };
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("events").begin_array();
    for event in events {
        next = next.max(
            event
                .get("seq")
                .and_then(crate::wire::json::JsonValue::as_u64)
                .unwrap_or(0),
        );
        json.begin_object();
        for (name, value) in event.as_object().unwrap_or(&[]) {
            if name != "source" {
                json.key(name).any(value);
            }
        }
        json.key("source")
            .string(&format!("site {}", event.str_of("site")));
        json.end_object();
    }
    json.end_array();
    json.key("last_seq").number(next);
    json.key("cursor").string(&next.to_string());
    if reset {
        json.key("reset").bool(true);
    }
    let error = shared.error.borrow().clone();
    json.key("sources").begin_array();
    for site in view.sites() {
        json.begin_object();
        json.key("api").string(&format!("site {}", site.name));
        json.key("last_seq").number(site.last_seq);
        if !site.live {
            json.key("error")
                .string("gone: its tracker's lease expired");
        } else if let Some(error) = &error {
            json.key("error").string(error);
        }
        json.end_object();
    }
    json.end_array();
    json.end_object();
    json.finish().ok()
}

/// `GET /api/events?since=N`: a long poll on the feed.
pub async fn events(shared: Rc<Shared>, since: u64) -> Response {
    let deadline = Instant::now() + TRACK_API_LONG_POLL;
    loop {
        if let Some(body) = events_now(&shared, since, Instant::now() >= deadline) {
            return secured(Response::with_body(200, "application/json", body));
        }
        let moved = shared.waiting.borrow_mut().listen();
        woken_or(&moved, deadline).await;
    }
}

/// A `POST` of an action: to the tracker of the live site placing the target, with `token`
/// (the signed-in user's, else the console's own).
pub async fn routed(
    shared: Rc<Shared>,
    target: String,
    hypervisor: bool,
    uuid: String,
    body: Vec<u8>,
    token: Option<String>,
) -> Response {
    let chosen = {
        let cluster = shared.cluster.borrow();
        let trees = cluster.trees();
        let merged = cluster.merged();
        let apis = cluster.apis();
        match (trees, merged) {
            (Ok(trees), Ok(merged)) => {
                super::choose_source(&trees, &merged, hypervisor, &uuid, &body).map(|index| {
                    apis.get(index)
                        .and_then(|(_, api)| api.clone())
                        .map(|api| api.tracker.with_token(token.as_deref()))
                })
            }
            (Err(failure), _) | (_, Err(failure)) => Err((502, failure.message)),
        }
    };
    let tracker = match chosen {
        Ok(Some(tracker)) => tracker,
        Ok(None) => return json_error(502, "the site's tracker publishes no read API address"),
        Err((status, why)) => return json_error(status, &why),
    };
    log::debug!("console serve: POST {target} to http://{}", tracker.address);
    forward(tracker, "POST", &target, &body, CONSOLE_ACTION_TIMEOUT).await
}

/// Follows the cluster for as long as the server runs: read everything, then one watch,
/// read again and watched again after [`CONSOLE_WATCH_RETRY`] when it fails (logged once per
/// failure, and once when it works again).
pub async fn follow(shared: Rc<Shared>) {
    loop {
        let result = match load(&shared.cluster).await {
            Ok(()) => {
                if shared.error.borrow_mut().take().is_some() {
                    log::info!("console serve: etcd answers again");
                }
                shared.waiting.borrow_mut().wake_all();
                follow_cluster(&shared.cluster, &mut |_, _| {
                    shared.waiting.borrow_mut().wake_all()
                })
                .await
            }
            Err(error) => error,
        };
        let message = format!("etcd: {result}");
        if shared.error.borrow().is_none() {
            log::warn!("console serve: {message} (trying again)");
        }
        *shared.error.borrow_mut() = Some(message);
        shared.waiting.borrow_mut().wake_all();
        Timer::after(CONSOLE_WATCH_RETRY).await;
    }
}
