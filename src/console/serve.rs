//! `xenplug console serve --listen ADDR:PORT`: the console as one web page. Net layer: it owns
//! a listener and proxies the tracker's read API; what to do with a request is decided by the
//! pure [`route`], which never panics on what a browser sends.
//!
//! The page (`src/console/web/`: index.html, app.js, style.css, favicon.svg) is compiled into
//! the binary: nothing is fetched from anywhere else, at build or run time, and every answer
//! carries `Content-Security-Policy: default-src 'self'` ([`CONSOLE_WEB_CSP`]) so the page
//! cannot load or send anything elsewhere either.
//!
//! Under its own `/api/...` the server passes requests to the tracker and its answers back
//! (status and JSON body as they are): `GET /api/tree`, `GET /api/events?since=N` (the long
//! poll), `POST /api/vms/<uuid>/actions` and `POST /api/hypervisors/<uuid>/actions` (form
//! bodies of at most [`CONSOLE_WEB_MAX_FORM`] bytes). `GET /domain-control.json` and
//! `GET /hypervisor.json` describe the DomainControl actions the page offers for a placed VM and
//! the Hypervisor actions it offers for a hypervisor (arguments and their types, from the
//! SCPDs xenplug's hypervisor role publishes).
//!
//! There is no login: whoever reaches the listener controls every VM the tracker relays to.
//! Hence the listen address is always given, and cross-site requests are refused: a `POST`
//! must carry an `Origin` (browsers always send one on a POST) naming the address the request
//! reached, and a `Host` naming it too (the HTTP server already refuses any `Host` that is not
//! that IP address, so DNS rebinding cannot reach the API either).

use super::{Failure, Tracker};
use crate::cli::ConsoleServeArgs;
use crate::consts::{
    API_ACTIONS_SUFFIX, API_EVENTS_PATH, API_HYPERVISORS_PREFIX, API_TREE_PATH, API_VMS_PREFIX,
    CONSOLE_TIMEOUT, CONSOLE_WATCH_TIMEOUT, CONSOLE_WEB_CSP, CONSOLE_WEB_DOMAIN_CONTROL_PATH,
    CONSOLE_WEB_HYPERVISOR_PATH, CONSOLE_WEB_MAX_FORM,
};
use crate::model::{Direction, ServiceSpec};
use crate::net::http::{self, Answer, Handler, Request, Response, ServerConfig};
use crate::wire::http::RequestHead;
use crate::wire::json::JsonWriter;
use smol::stream::StreamExt as _;
use smol::{Async, LocalExecutor};
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

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
    /// A request passed on to the tracker.
    Proxy {
        /// `GET` or `POST`.
        method: &'static str,
        /// Path and query at the tracker.
        target: String,
        /// Form body (POST).
        body: Vec<u8>,
        /// How long the tracker may take.
        timeout: Duration,
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

/// The `since` of an events query: digits only, 0 when absent.
fn since_of(query: Option<&str>) -> Option<u64> {
    let Some(query) = query else {
        return Some(0);
    };
    let mut since = Some(0);
    for (key, value) in crate::track::form::pairs(query) {
        if key == "since" {
            since = value
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| value.parse().ok())
                .flatten();
        }
    }
    since
}

/// The relay path of `path` if it is one (`/api/vms/<uuid>/actions`,
/// `/api/hypervisors/<uuid>/actions`), with the UUID written the canonical way; `Err` when it
/// has the shape but not a UUID.
fn relay_target(path: &str) -> Option<Result<String, ()>> {
    for prefix in [API_VMS_PREFIX, API_HYPERVISORS_PREFIX] {
        if let Some(id) = path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(API_ACTIONS_SUFFIX))
        {
            return Some(
                uuid::Uuid::try_parse(id)
                    .map(|id| format!("{prefix}{}{API_ACTIONS_SUFFIX}", id.hyphenated()))
                    .map_err(|_| ()),
            );
        }
    }
    None
}

/// Decides what to do with `request` (see the module documentation).
pub fn route(request: &Request) -> Route {
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
        return match since_of(request.query.as_deref()) {
            Some(since) => Route::Proxy {
                method: "GET",
                target: format!("{API_EVENTS_PATH}?since={since}"),
                body: Vec::new(),
                timeout: CONSOLE_WATCH_TIMEOUT,
            },
            None => refuse(400, "since must be a number"),
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
    let Ok(target) = target else {
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
    Route::Proxy {
        method: "POST",
        target,
        body: request.body.clone(),
        timeout: CONSOLE_TIMEOUT,
    }
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
        json.key("semantics").begin_array();
        for semantic in &action.semantics {
            json.string(semantic.as_str());
        }
        json.end_array();
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
                json.key("allowed").begin_array();
                for value in &variable.allowed {
                    json.string(value);
                }
                json.end_array();
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
    tracker: Tracker,
    domain_control: Arc<[u8]>,
    hypervisor: Arc<[u8]>,
}

impl Handler for ConsoleHttp {
    fn lookup(&self, _head: &RequestHead<'_>) -> Option<(&'static str, Arc<[u8]>)> {
        // Every answer needs the security headers, which only `answer` can add.
        None
    }

    fn answer(&self, request: Request) -> Answer {
        match route(&request) {
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
                let tracker = self.tracker;
                Answer::Later(Box::pin(async move {
                    match tracker.request_async(method, &target, &body, timeout).await {
                        Ok(answer) => {
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
                        Err(failure) => {
                            log::warn!("console serve: {}", failure.message);
                            json_error(502, &failure.message)
                        }
                    }
                }))
            }
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

/// `xenplug console serve`: serves the page until SIGINT or SIGTERM. It reads one source: a
/// tracker (`--tracker`) or the console's own discovery (`--iface`), not both merged.
pub fn run(args: &ConsoleServeArgs) -> Result<(), Failure> {
    if args.tracker.is_some() && !args.iface.is_empty() {
        return Err(Failure::usage(
            "serve reads one source: --tracker or --iface, not both",
        ));
    }
    let mut signals = crate::net::event_loop::stop_signals()
        .map_err(|error| Failure::failed(format!("cannot install signal handlers: {error}")))?;
    let listener = bind(args.listen)?;
    // Kept until the end: dropping it stops the console's own tracker (with --iface).
    let source = super::open_source(&super::SourceOptions {
        tracker: args.tracker.clone(),
        ifaces: args.iface.clone(),
        settle: None,
    })?;
    let tracker = match source.apis() {
        [api] => api.tracker,
        _ => return Err(Failure::usage("serve reads exactly one source")),
    };
    let local = listener.local_addr().unwrap_or(args.listen);
    let listener = Async::new(listener)
        .map_err(|error| Failure::failed(format!("listener on {local}: {error}")))?;
    if !local.ip().is_loopback() {
        log::warn!(
            "console serve: no login: anyone who can reach {local} can control every VM the \
             tracker relays to"
        );
    }
    let handler: Rc<dyn Handler> = Rc::new(ConsoleHttp {
        tracker,
        domain_control: service_json(&crate::control::DOMAIN_CONTROL_SERVICE).into(),
        hypervisor: service_json(&crate::control::HYPERVISOR_SERVICE).into(),
    });
    let mut stdout = std::io::stdout();
    // A closed stdout does not stop the console.
    let _ = writeln!(
        stdout,
        "console at http://{local}/ (source {})",
        source
            .apis()
            .iter()
            .map(|api| api.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = stdout.flush();
    let executor = Rc::new(LocalExecutor::new());
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
        route(&request(
            "POST",
            &format!("/api/vms/{VM}/actions"),
            headers,
            body,
        ))
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
                matches!(route(&request("GET", path, &[HOST], b"")), Route::Asset { body, .. } if !body.is_empty()),
                "{path}"
            );
            assert_eq!(
                status(&route(&request("POST", path, &[HOST, ORIGIN, FORM], b""))),
                Some(405),
                "{path}"
            );
        }
        assert_eq!(
            route(&request("GET", "/domain-control.json", &[HOST], b"")),
            Route::DomainControl
        );
        assert_eq!(
            route(&request("GET", "/hypervisor.json", &[HOST], b"")),
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
                status(&route(&request("GET", path, &[HOST], b""))),
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
        assert_eq!(status(&route(&bad_uuid)), Some(404));
    }

    #[test]
    fn reads_go_to_the_tracker() {
        assert_eq!(
            route(&request("GET", "/api/tree", &[HOST], b"")),
            Route::Proxy {
                method: "GET",
                target: "/api/tree".to_string(),
                body: Vec::new(),
                timeout: CONSOLE_TIMEOUT,
            }
        );
        let events = |query: &str| route(&request("GET", &format!("/api/events{query}"), &[], b""));
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
            status(&route(&request(
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
            Route::Proxy { method: "POST", ref target, ref body, .. }
                if *target == format!("/api/vms/{VM}/actions") && body.starts_with(b"service=")
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
        assert_eq!(status(&route(&get)), Some(405));
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
            matches!(route(&at_80), Route::Proxy { target, .. } if target == format!("/api/hypervisors/{VM}/actions"))
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
            tracker: Tracker::parse("http://127.0.0.1:9").unwrap(),
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
}
