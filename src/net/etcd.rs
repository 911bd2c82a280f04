//! Net layer: a client of etcd v3 through its JSON gateway (`POST /v3/...` on every member's
//! client URL), on the bounded HTTP client: no gRPC stack, no runtime besides smol. Bodies are
//! [`crate::wire::etcd`]'s; what to write is the engines' ([`crate::engine::cluster`]).
//!
//! - Members: `--etcd http://IPv4:PORT[,http://IPv4:PORT...]`. Requests go to one member;
//!   when it does not answer, or answers that the cluster has no leader, the next is tried
//!   (each once per request), and the one that answered is kept for the next request.
//! - Authentication (`--etcd-user NAME --etcd-password-file FILE`): `/v3/auth/authenticate`
//!   gives a token sent as `Authorization` with every request; a token etcd no longer knows
//!   (they expire, and a restarted member forgets them) is asked for again once.
//! - Every request is bounded in time ([`ETCD_REQUEST_TIMEOUT`]) and size; a watch is a
//!   streamed answer, each message bounded ([`ETCD_MAX_MESSAGE`]), and ended when silent for
//!   [`ETCD_WATCH_IDLE`] (etcd sends a progress notice well before).

use crate::net::http_client::{self, Limits, StreamingResponse};
use crate::wire::etcd::{
    self as wire, Compare, ErrorKind, GatewayError, KeyValue, Lease, Op, Range, RangeRequest, Txn,
    WatchMessage,
};
use crate::wire::http::http_url_parts;
use core::fmt;
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, SocketAddrV4};
use std::path::Path;
use std::time::Duration;

/// Time for one request to one member: connect, send, answer.
pub const ETCD_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest answer read (one page of a range, a transaction's).
pub const ETCD_MAX_BODY: usize = 8 * 1024 * 1024;
/// Largest message of a watch stream.
pub const ETCD_MAX_MESSAGE: usize = 8 * 1024 * 1024;
/// A watch silent for this long is ended (and opened again by its user).
pub const ETCD_WATCH_IDLE: Duration = Duration::from_secs(60);
/// Keys asked per page of a range.
const ETCD_RANGE_PAGE: u64 = 1000;
/// Keys one range reads, all pages together, at most.
pub const ETCD_MAX_RANGE_KEYS: usize = 500_000;
/// Members named, at most.
const ETCD_MAX_ENDPOINTS: usize = 16;
/// Length of a URL of `--etcd`, at most.
const ETCD_MAX_URL: usize = 256;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdError {
    /// What kind of trouble, as far as what to do next goes.
    pub kind: ErrorKind,
    /// What happened, for the log.
    pub message: String,
}

impl EtcdError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> EtcdError {
        EtcdError {
            kind,
            message: message.into(),
        }
    }

    fn of_gateway(member: SocketAddrV4, status: u16, error: &GatewayError) -> EtcdError {
        EtcdError::new(
            ErrorKind::of(error),
            format!(
                "{member}: HTTP {status}: {} (code {})",
                error.message, error.code
            ),
        )
    }

    fn unreadable(member: SocketAddrV4, what: &str, error: crate::wire::Error) -> EtcdError {
        EtcdError::new(
            ErrorKind::Other,
            format!("{member}: unreadable {what} answer ({error})"),
        )
    }
}

impl fmt::Display for EtcdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// `--etcd-user` and the password its file holds.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user.
    pub user: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ..)", self.user)
    }
}

impl Credentials {
    /// `user`, with the password read from `file` (one trailing line break removed; never
    /// logged).
    pub fn read(user: &str, file: &Path) -> Result<Credentials, String> {
        if user.is_empty() || user.len() > 128 || user.chars().any(char::is_control) {
            return Err(format!("--etcd-user {user:?}: expected a user name"));
        }
        Ok(Credentials {
            user: user.to_string(),
            password: crate::backend::xapi::read_password(file)?,
        })
    }
}

/// `--etcd-user` with `--etcd-password-file`: both or neither.
pub fn credentials(
    user: Option<&str>,
    password_file: Option<&Path>,
) -> Result<Option<Credentials>, String> {
    match (user, password_file) {
        (None, None) => Ok(None),
        (Some(user), Some(file)) => Credentials::read(user, file).map(Some),
        _ => Err("--etcd-user and --etcd-password-file go together".to_string()),
    }
}

/// Reads `--etcd URL[,URL...]`: each `http://IPv4:PORT` (no name is resolved, no TLS).
pub fn parse_endpoints(text: &str) -> Result<Vec<SocketAddrV4>, String> {
    let mut endpoints = Vec::new();
    for url in text.split(',').map(str::trim) {
        match http_url_parts(url, ETCD_MAX_URL) {
            Some((address, "/")) if !endpoints.contains(&address) => endpoints.push(address),
            Some((_, "/")) => {}
            _ => {
                return Err(format!(
                    "--etcd {url:?}: expected http://IPv4:PORT (a member's client URL; \
                     several separated by commas)"
                ))
            }
        }
    }
    if endpoints.is_empty() || endpoints.len() > ETCD_MAX_ENDPOINTS {
        return Err(format!(
            "--etcd: name 1 to {ETCD_MAX_ENDPOINTS} members, http://IPv4:PORT each"
        ));
    }
    Ok(endpoints)
}

/// A client of one etcd cluster, for one task at a time (single-threaded executor).
#[derive(Debug)]
pub struct Client {
    endpoints: Vec<SocketAddrV4>,
    /// The member asked first.
    current: Cell<usize>,
    credentials: Option<Credentials>,
    token: RefCell<Option<String>>,
}

/// A watch being read.
pub struct Watch {
    stream: StreamingResponse,
    member: SocketAddrV4,
}

impl Client {
    /// A client of the cluster whose members are `endpoints` (at least one).
    pub fn new(endpoints: Vec<SocketAddrV4>, credentials: Option<Credentials>) -> Client {
        Client {
            endpoints,
            current: Cell::new(0),
            credentials,
            token: RefCell::new(None),
        }
    }

    /// The members, as named.
    pub fn endpoints(&self) -> &[SocketAddrV4] {
        &self.endpoints
    }

    fn member(&self, attempt: usize) -> SocketAddrV4 {
        let index = (self.current.get() + attempt) % self.endpoints.len().max(1);
        self.endpoints
            .get(index)
            .copied()
            .unwrap_or(SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 2379))
    }

    fn keep(&self, attempt: usize) {
        let count = self.endpoints.len().max(1);
        self.current.set((self.current.get() + attempt) % count);
    }

    /// A token for `member`, authenticating when there is none.
    async fn token(&self, member: SocketAddrV4) -> Result<Option<String>, EtcdError> {
        let Some(credentials) = &self.credentials else {
            return Ok(None);
        };
        if let Some(token) = self.token.borrow().clone() {
            return Ok(Some(token));
        }
        let body = wire::authenticate_request(&credentials.user, &credentials.password);
        let answer = exchange(member, "/v3/auth/authenticate", &[], &body).await?;
        let token = wire::read_token(&answer)
            .map_err(|error| EtcdError::unreadable(member, "authenticate", error))?;
        *self.token.borrow_mut() = Some(token.clone());
        Ok(Some(token))
    }

    /// `POST path` with `body` to the members in turn, until one answers 200: its body. A
    /// member that does not answer, or says the cluster has no leader, makes the next one
    /// asked; any other refusal is returned at once.
    async fn post(&self, path: &str, body: &[u8]) -> Result<Vec<u8>, EtcdError> {
        let mut last = EtcdError::new(ErrorKind::Unreachable, "no member named");
        let mut failures = Vec::new();
        let mut renewed = false;
        let mut attempt = 0;
        while attempt < self.endpoints.len() {
            let member = self.member(attempt);
            let result = match self.token(member).await {
                Ok(token) => {
                    let headers: Vec<(&str, &str)> = token
                        .as_deref()
                        .map(|token| vec![("Authorization", token)])
                        .unwrap_or_default();
                    exchange(member, path, &headers, body).await
                }
                Err(error) => Err(error),
            };
            match result {
                Ok(answer) => {
                    self.keep(attempt);
                    return Ok(answer);
                }
                Err(error)
                    if error.kind == ErrorKind::AuthRefused
                        && !renewed
                        && self.token.borrow().is_some() =>
                {
                    // An expired or forgotten token: once more with a new one.
                    renewed = true;
                    *self.token.borrow_mut() = None;
                    last = error;
                }
                Err(error)
                    if matches!(
                        error.kind,
                        ErrorKind::Unreachable | ErrorKind::LeaderChanged
                    ) =>
                {
                    // Every member's answer is told when none works; an election under way
                    // matters more than a member down.
                    failures.push(error.message);
                    if last.kind != ErrorKind::LeaderChanged {
                        last.kind = error.kind;
                    }
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
        if !failures.is_empty() {
            last.message = failures.join("; ");
        }
        Err(last)
    }

    /// One range.
    pub async fn range(&self, request: &RangeRequest<'_>) -> Result<Range, EtcdError> {
        let body = wire::range_request(request);
        let answer = self.post("/v3/kv/range", &body).await?;
        wire::read_range(&answer).map_err(|e| EtcdError::unreadable(self.member(0), "range", e))
    }

    /// Every key under `prefix`, page by page at one revision (`at`, or the newest when 0; at
    /// most [`ETCD_MAX_RANGE_KEYS`] keys): the keys, in key order, and that revision.
    pub async fn range_prefix(
        &self,
        prefix: &[u8],
        keys_only: bool,
        at: u64,
    ) -> Result<(Vec<KeyValue>, u64), EtcdError> {
        let end = wire::prefix_end(prefix);
        let mut start = prefix.to_vec();
        let mut revision = at;
        let mut kvs: Vec<KeyValue> = Vec::new();
        loop {
            let page = self
                .range(&RangeRequest {
                    key: &start,
                    end: Some(&end),
                    limit: ETCD_RANGE_PAGE,
                    keys_only,
                    descending: false,
                    revision,
                })
                .await?;
            if revision == 0 {
                revision = page.revision;
            }
            let more = page.more;
            if let Some(last) = page.kvs.last() {
                start = last.key.clone();
                start.push(0);
            }
            let empty = page.kvs.is_empty();
            kvs.extend(page.kvs);
            if kvs.len() > ETCD_MAX_RANGE_KEYS {
                return Err(EtcdError::new(
                    ErrorKind::TooLarge,
                    format!("more than {ETCD_MAX_RANGE_KEYS} keys under one prefix"),
                ));
            }
            if !more || empty {
                return Ok((kvs, revision));
            }
        }
    }

    /// One key (`None`: absent).
    pub async fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, EtcdError> {
        let range = self
            .range(&RangeRequest {
                key,
                ..RangeRequest::default()
            })
            .await?;
        Ok(range.kvs.into_iter().next())
    }

    /// One transaction.
    pub async fn txn(
        &self,
        compare: &[Compare],
        success: &[Op],
        failure: &[Op],
    ) -> Result<Txn, EtcdError> {
        let body = wire::txn_request(compare, success, failure);
        let answer = self.post("/v3/kv/txn", &body).await?;
        wire::read_txn(&answer).map_err(|e| EtcdError::unreadable(self.member(0), "txn", e))
    }

    /// A new lease of `ttl` seconds.
    pub async fn grant(&self, ttl: u64) -> Result<Lease, EtcdError> {
        let answer = self
            .post("/v3/lease/grant", &wire::grant_request(ttl))
            .await?;
        wire::read_grant(&answer).map_err(|e| EtcdError::unreadable(self.member(0), "grant", e))
    }

    /// Keeps lease `id` alive once: its TTL now (0: it expired).
    pub async fn keepalive(&self, id: u64) -> Result<Lease, EtcdError> {
        let answer = self
            .post("/v3/lease/keepalive", &wire::lease_request(id))
            .await?;
        if let Some(error) = wire::read_error(&answer) {
            return Err(EtcdError::of_gateway(self.member(0), 200, &error));
        }
        wire::read_keepalive(&answer)
            .map_err(|e| EtcdError::unreadable(self.member(0), "keepalive", e))
    }

    /// Revokes lease `id` (its keys are deleted); a lease already gone is no error.
    pub async fn revoke(&self, id: u64) -> Result<(), EtcdError> {
        match self
            .post("/v3/lease/revoke", &wire::lease_request(id))
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if error.kind == ErrorKind::LeaseNotFound => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Opens a watch of `[key, end)` from revision `start` on one member (the next ones when
    /// it does not answer).
    pub async fn watch(&self, key: &[u8], end: &[u8], start: u64) -> Result<Watch, EtcdError> {
        let body = wire::watch_request(key, end, start);
        let mut last = EtcdError::new(ErrorKind::Unreachable, "no member named");
        for attempt in 0..self.endpoints.len() {
            let member = self.member(attempt);
            let token = match self.token(member).await {
                Ok(token) => token,
                Err(error) if error.kind == ErrorKind::Unreachable => {
                    last = error;
                    continue;
                }
                Err(error) => return Err(error),
            };
            let headers: Vec<(&str, &str)> = token
                .as_deref()
                .map(|token| vec![("Authorization", token)])
                .unwrap_or_default();
            let limits = Limits {
                timeout: ETCD_REQUEST_TIMEOUT,
                max_head: crate::consts::HTTP_MAX_HEAD,
                max_body: ETCD_MAX_BODY,
            };
            let opened = http_client::request_stream(
                SocketAddr::V4(member),
                "POST",
                "/v3/watch",
                &headers,
                &body,
                &limits,
            )
            .await;
            match opened {
                Ok(stream) if stream.status == 200 => {
                    self.keep(attempt);
                    return Ok(Watch { stream, member });
                }
                Ok(stream) => {
                    let status = stream.status;
                    let body = stream
                        .rest(ETCD_MAX_BODY, ETCD_REQUEST_TIMEOUT)
                        .await
                        .unwrap_or_default();
                    let error = refusal(member, status, &body);
                    if error.kind == ErrorKind::AuthRefused {
                        *self.token.borrow_mut() = None;
                    }
                    return Err(error);
                }
                Err(error) => {
                    last = EtcdError::new(ErrorKind::Unreachable, format!("{member}: {error}"))
                }
            }
        }
        Err(last)
    }

    /// Forgets the token (a watch refused for it: the next request authenticates again).
    pub fn forget_token(&self) {
        *self.token.borrow_mut() = None;
    }
}

impl Watch {
    /// The next message (`None`: the member ended the stream).
    pub async fn next(&mut self) -> Result<Option<WatchMessage>, EtcdError> {
        let line = self
            .stream
            .next_line(ETCD_MAX_MESSAGE, ETCD_WATCH_IDLE)
            .await
            .map_err(|error| {
                EtcdError::new(
                    ErrorKind::Unreachable,
                    format!("{}: watch: {error}", self.member),
                )
            })?;
        let Some(line) = line else {
            return Ok(None);
        };
        if let Some(error) = wire::read_error(&line) {
            return Err(EtcdError::of_gateway(self.member, 200, &error));
        }
        wire::read_watch(&line)
            .map(Some)
            .map_err(|e| EtcdError::unreadable(self.member, "watch", e))
    }

    /// The member it reads from.
    pub fn member(&self) -> SocketAddrV4 {
        self.member
    }
}

/// What a refusal (a status other than 200) says.
fn refusal(member: SocketAddrV4, status: u16, body: &[u8]) -> EtcdError {
    match wire::read_error(body) {
        Some(error) => EtcdError::of_gateway(member, status, &error),
        None if status == 401 || status == 403 => {
            EtcdError::new(ErrorKind::AuthRefused, format!("{member}: HTTP {status}"))
        }
        None if status == 503 => {
            EtcdError::new(ErrorKind::LeaderChanged, format!("{member}: HTTP {status}"))
        }
        None => EtcdError::new(ErrorKind::Other, format!("{member}: HTTP {status}")),
    }
}

/// One request to one member: its 200 body, or the error.
async fn exchange(
    member: SocketAddrV4,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Vec<u8>, EtcdError> {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let limits = Limits {
        timeout: ETCD_REQUEST_TIMEOUT,
        max_head: crate::consts::HTTP_MAX_HEAD,
        max_body: ETCD_MAX_BODY,
    };
    let response = http_client::request(SocketAddr::V4(member), "POST", path, &all, body, &limits)
        .await
        .map_err(|error| {
            let kind = match error.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput => {
                    ErrorKind::Other
                }
                _ => ErrorKind::Unreachable,
            };
            EtcdError::new(kind, format!("{member}: {error}"))
        })?;
    if response.status == 200 {
        return Ok(response.body);
    }
    Err(refusal(member, response.status, &response.body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_ipv4_urls() {
        assert_eq!(
            parse_endpoints("http://10.0.0.1:2379, http://10.0.0.2:2379/,http://10.0.0.1:2379")
                .unwrap()
                .len(),
            2
        );
        for bad in [
            "",
            "10.0.0.1:2379",
            "https://10.0.0.1:2379",
            "http://etcd:2379",
            "http://10.0.0.1:2379/v3",
        ] {
            assert!(parse_endpoints(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refusals_are_sorted() {
        let member: SocketAddrV4 = "127.0.0.1:2379".parse().unwrap();
        assert_eq!(refusal(member, 401, b"").kind, ErrorKind::AuthRefused);
        assert_eq!(refusal(member, 503, b"").kind, ErrorKind::LeaderChanged);
        let too_large =
            br#"{"error":"etcdserver: request is too large","message":"etcdserver: request is too large","code":3}"#;
        assert_eq!(refusal(member, 400, too_large).kind, ErrorKind::TooLarge);
    }
}
