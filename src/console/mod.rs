//! Console role: the operator's client of the tracker's read API (`xenplug console tree | call
//! | watch | serve`). Net layer: it does I/O (HTTP to the tracker, the terminal, the web page's
//! listener); what it prints and what it sends is decided by pure functions in [`tree`],
//! [`call`], [`watch`] and [`serve`], which do no I/O and never panic on what the tracker or a
//! browser sends. `serve` is the same console as one web page ([`serve`]).
//!
//! The console talks only to the tracker (`--tracker http://IPv4:PORT`, default
//! `http://127.0.0.1:8700`), never to a device: actions go through the tracker's relay
//! (`POST /api/vms/<uuid>/actions`), which refuses what the asking network may not do.
//!
//! `tree --json` prints the tracker's own `GET /api/tree` document unchanged; its schema is
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
//!      "services":[{"type","actions":[{"name","semantics":["idempotent"|"destructive"|"confirm"..]}]}],
//!      "first_seen","last_seen"}
//! ```
//!
//! Every string that came from a device (names, service types, output values) is printed with
//! its control characters escaped ([`printable`]), so that a VM cannot send escape sequences to
//! the operator's terminal.
//!
//! Exit status: 0 done; 1 failed (tracker unreachable or answering nonsense, a UPnP error, a
//! destructive call refused); 2 usage (unknown target or action, bad argument or URL).

pub mod call;
pub mod serve;
pub mod tree;
pub mod watch;

use crate::cli::{ConsoleArgs, ConsoleCommand};
use crate::consts::{
    CONSOLE_EXIT_FAILED, CONSOLE_EXIT_USAGE, CONSOLE_MAX_BODY, DISCOVERY_MAX_LOCATION,
    HTTP_MAX_HEAD,
};
use crate::net::http_client::{self, ClientResponse, Limits};
use crate::wire::http::http_url_parts;
use crate::wire::json::{parse_value, JsonValue};
use std::borrow::Cow;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tracker {
    /// Its address (never a name: nothing is resolved).
    pub address: SocketAddrV4,
}

impl Tracker {
    /// `http://IPv4[:port][/]`; anything else (a host name, a path) is a usage error.
    pub fn parse(url: &str) -> Result<Tracker, Failure> {
        match http_url_parts(url, DISCOVERY_MAX_LOCATION) {
            Some((address, "/")) => Ok(Tracker { address }),
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
        let headers: &[(&str, &str)] = if body.is_empty() {
            &[]
        } else {
            &[("CONTENT-TYPE", "application/x-www-form-urlencoded")]
        };
        http_client::request(
            SocketAddr::V4(self.address),
            method,
            target,
            headers,
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

    /// `GET target`, which must answer 200 with a JSON document.
    pub fn get_json(&self, target: &str, timeout: Duration) -> Result<Document, Failure> {
        let response = self.request("GET", target, &[], timeout)?;
        Document::from_response(response, target)
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
