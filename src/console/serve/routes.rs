//! Pure: what the console's web server does with one request ([`route`]), decided from the
//! request alone, with the events cursor ([`parse_cursor`], [`cursor_text`]) and the
//! same-origin check ([`Request::same_origin`]); and what it serves of its own: the page's files,
//! compiled into the binary, and the actions the page offers ([`service_json`]). No I/O, no
//! clock; never panics on what a browser sends.

use crate::consts::{
    API_ACTIONS_SUFFIX, API_EVENTS_PATH, API_HYPERVISORS_PREFIX, API_TREE_PATH, API_VMS_PREFIX,
    CONSOLE_ACTION_TIMEOUT, CONSOLE_TIMEOUT, CONSOLE_WATCH_TIMEOUT,
    CONSOLE_WEB_DOMAIN_CONTROL_PATH, CONSOLE_WEB_HYPERVISOR_PATH,
};
use crate::model::{Direction, ServiceSpec};
use crate::net::http::Request;
use crate::wire::json::JsonWriter;
use std::time::Duration;

/// Largest form body the console's page may POST (one action's arguments).
const CONSOLE_WEB_MAX_FORM: usize = 16 * 1024;
/// Who the page is signed in as.
const CONSOLE_WEB_WHOAMI_PATH: &str = "/api/whoami";
/// Separator of the per-source sequence numbers in the page's events cursor (`12.7`).
const CONSOLE_WEB_CURSOR_SEPARATOR: char = '.';

/// The page, gzip-compressed (build.rs: the binary carries 12 KB instead of 42).
const INDEX_HTML: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/index.html.gz"));
/// Its script (plain JavaScript, no framework, no build step but the compression).
const APP_JS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/app.js.gz"));
/// Its style sheet.
const STYLE_CSS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/style.css.gz"));
/// Its icon.
const FAVICON_SVG: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/favicon.svg.gz"));

/// The page's files: path, content type, gzip-compressed bytes.
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
    /// One of the page's files, sent with `Content-Encoding: gzip`.
    Asset {
        /// `Content-Type`.
        content_type: &'static str,
        /// The gzip-compressed bytes.
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
    /// Several sources: their trees, merged ([`tree_with_cursor`](super::tree_with_cursor)).
    MergedTree,
    /// Several sources: their events after `since` ([`events_answer`](super::events_answer)).
    MergedEvents {
        /// The cursor: one sequence number per source.
        since: Vec<u64>,
    },
    /// Several sources: an action, sent to the source that can reach its target
    /// ([`choose_source`](super::choose_source)).
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
    /// `GET /api/whoami`: the signed-in identity's name and role (`{"name","role"}`), or
    /// `{"name":null}` when the page needs no sign-in.
    Whoami,
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

/// Why a request for the page that refuses gzip gets a 406.
const NOT_GZIP: &str =
    "the page is sent gzip-compressed: ask with Accept-Encoding: gzip (curl --compressed)";

/// Whether a request's `Accept-Encoding` lets the page be sent gzip-compressed (RFC 9110
/// section 12.5.3): `gzip`, its alias `x-gzip`, or else `*`, with a weight other than 0.
/// Every browser says so. Without the header any coding is acceptable (the same section), so
/// a health check's plain `curl` gets the page too; an empty header refuses every coding.
fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(accept_encoding) = accept_encoding else {
        return true;
    };
    let mut any = false;
    for item in accept_encoding.split(',') {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let wanted = parts.all(|parameter| !is_zero_weight(parameter));
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            return wanted;
        }
        if coding == "*" {
            any = wanted;
        }
    }
    any
}

/// Whether a coding's parameter is the weight 0 (`q=0`, `q=0.000`), which refuses it.
fn is_zero_weight(parameter: &str) -> bool {
    let parameter = parameter.trim();
    let Some((name, value)) = parameter.split_once('=') else {
        return false;
    };
    let value = value.trim();
    name.trim().eq_ignore_ascii_case("q")
        && value.starts_with('0')
        && value.bytes().all(|b| b == b'0' || b == b'.')
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
    match crate::wire::form::value(query, "since") {
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

/// Decides what to do with `request` for a server reading `sources` sources (see
/// [the server's documentation](super)).
pub fn route(request: &Request, sources: usize) -> Route {
    let several = sources > 1;
    let path = request.path.as_str();
    let method = request.method.as_str();
    if let Some(&(_, content_type, body)) = ASSETS.iter().find(|(p, _, _)| *p == path) {
        return match method {
            "GET" if accepts_gzip(request.header("Accept-Encoding")) => {
                Route::Asset { content_type, body }
            }
            "GET" => refuse(406, NOT_GZIP),
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
    if path == CONSOLE_WEB_WHOAMI_PATH {
        return match method {
            "GET" => Route::Whoami,
            _ => refuse(405, "method not allowed"),
        };
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
    if !request.same_origin() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::serve::tests::{request, HOST, VM};
    use crate::wire::json::{parse_value, JsonValue};

    const FORM: (&str, &str) = ("Content-Type", "application/x-www-form-urlencoded");
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

    const GZIP: (&str, &str) = ("Accept-Encoding", "gzip, deflate, br, zstd");

    #[test]
    fn the_page_and_its_files() {
        for path in ["/", "/index.html", "/app.js", "/style.css", "/favicon.svg"] {
            assert!(
                matches!(one(&request("GET", path, &[HOST, GZIP], b"")), Route::Asset { body, .. } if body.starts_with(&[0x1f, 0x8b])),
                "{path}"
            );
            assert!(
                matches!(
                    one(&request("GET", path, &[HOST], b"")),
                    Route::Asset { .. }
                ),
                "{path}: no Accept-Encoding, any coding will do"
            );
            assert_eq!(
                status(&one(&request(
                    "GET",
                    path,
                    &[HOST, ("Accept-Encoding", "identity")],
                    b""
                ))),
                Some(406),
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
    fn the_files_served_inflate_to_the_sources() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        for (path, source) in [
            ("/", &include_bytes!("../web/index.html")[..]),
            ("/app.js", include_bytes!("../web/app.js")),
            ("/style.css", include_bytes!("../web/style.css")),
            ("/favicon.svg", include_bytes!("../web/favicon.svg")),
        ] {
            let (_, _, body) = ASSETS.iter().find(|(p, _, _)| *p == path).unwrap();
            let mut gunzip = Command::new("gzip")
                .arg("-dc")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            gunzip.stdin.take().unwrap().write_all(body).unwrap();
            let inflated = gunzip.wait_with_output().unwrap();
            assert!(inflated.status.success(), "{path}");
            assert!(inflated.stdout == source, "{path}");
        }
    }

    #[test]
    fn accept_encoding() {
        for yes in [
            "gzip",
            "GZIP",
            "deflate, gzip;q=1.0, *;q=0.5",
            "br;q=1.0, gzip;q=0.8",
            "x-gzip",
            "*",
            "identity, *;q=0.1",
            "gzip ; q=0.001",
        ] {
            assert!(accepts_gzip(Some(yes)), "{yes}");
        }
        for no in [
            "",
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip; Q=0.000",
            "*;q=0",
            "gzip;q=0, *",
            "gzipx",
            "gzip-ish, *;q=0.",
        ] {
            assert!(!accepts_gzip(Some(no)), "{no}");
        }
        assert!(accepts_gzip(None), "no header: any coding");
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_writes_no_markup() {
        // The sources (what is served is their gzip, made by build.rs).
        let page = include_str!("../web/index.html");
        let script = include_str!("../web/app.js");
        for (path, text) in [
            ("/index.html", page),
            ("/app.js", script),
            ("/style.css", include_str!("../web/style.css")),
            ("/favicon.svg", include_str!("../web/favicon.svg")),
        ] {
            for needle in ["http://", "https://", "//cdn", "@import", "url("] {
                // The SVG's xmlns is a name, not something fetched.
                let allowed = path == "/favicon.svg" && needle == "http://";
                assert!(
                    allowed || !text.contains(needle),
                    "{path} contains {needle}"
                );
            }
        }
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
}
