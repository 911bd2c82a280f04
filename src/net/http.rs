//! Net layer: a small bounded HTTP/1.1 server on smol. Owns sockets, timers and the clock;
//! parsing lives in [`crate::wire::http`] and what to answer in a [`Handler`].
//!
//! Every resource a client can make it spend is bounded: head size
//! ([`consts::HTTP_MAX_HEAD`], else 431), header count ([`consts::HTTP_MAX_HEADERS`], else
//! 431), body size ([`consts::HTTP_MAX_BODY`], else 413), time to send a whole request
//! ([`ServerConfig::read_timeout`], else 408 or a silent close), time to take an answer
//! ([`ServerConfig::write_timeout`]), requests per connection, and connections at once.
//!
//! Connection limit: when [`ServerConfig::max_connections`] connections are being served,
//! the server stops calling `accept`, so further clients wait in the kernel's listen backlog
//! until a slot frees (rather than being answered 503). A client that gives up meanwhile
//! costs nothing but a backlog entry.
//!
//! DNS rebinding: a request is answered only when its `Host` is the connection's local IP
//! address, optionally with the local port (`192.168.1.10:49152`, `[fe80::1]:49152`). A
//! browser tricked into sending a request to us carries the attacker's host name there.
//! HTTP/1.0 requests may omit `Host`; HTTP/1.1 ones may not (RFC 9112 section 3.2).

use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smol::future::{self, Future};
use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::lock::Semaphore;
use smol::{Async, LocalExecutor, Timer};

use crate::consts;
use crate::net::unix_now;
use crate::wire;
use crate::wire::http::{
    self as wire_http, ChunkedDecoder, Framing, Progress, RequestHead, Version,
};

/// Connections served at once per listener; more wait in the kernel's backlog.
const HTTP_MAX_CONNECTIONS: usize = 64;
/// Requests served on one kept-alive connection before it is closed.
const HTTP_MAX_REQUESTS_PER_CONNECTION: usize = 100;
/// Time allowed to read one request (head and body), and to sit idle between requests.
const HTTP_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to write one response.
const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before accepting again when `accept` fails for lack of file descriptors or memory.
const HTTP_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// After an answer that closes the connection, the server stops writing and reads (and
/// drops) what the client still sends for at most this long, so that the kernel does not
/// reset the connection before the client has read the answer.
const HTTP_LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// Bytes read and dropped while lingering, at most.
const HTTP_LINGER_MAX: usize = 256 * 1024;

/// A request with its body read, for [`Handler::answer`].
#[derive(Debug, Clone)]
pub struct Request {
    /// Method as sent (`POST`, `SUBSCRIBE`, ...). A HEAD request arrives as `GET`: the
    /// server drops the body of the answer itself.
    pub method: String,
    /// Request target without the query, e.g. `/control/Hypervisor`.
    pub path: String,
    /// What followed `?` in the target, if anything.
    pub query: Option<String>,
    /// Header fields as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body, at most [`consts::HTTP_MAX_BODY`] bytes, chunked coding removed.
    pub body: Vec<u8>,
    /// The client's address.
    pub peer: SocketAddr,
    /// Our address on this connection (the one the client reached).
    pub local: SocketAddr,
}

impl Request {
    /// The first header field called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the origin a browser writes for a page of this server names the address the
    /// request reached (`http://IP:PORT`, or without the port when it is 80; IPv6 in brackets).
    fn names_us(&self, value: &str) -> bool {
        let full = self.local.to_string();
        let short = match self.local {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        value == full || (self.local.port() == 80 && value == short)
    }

    /// Whether a state-changing request comes from a page of this server itself: an `Origin`
    /// naming the address the request reached, a `Host` naming it too, and no
    /// `Sec-Fetch-Site` other than `same-origin`. A request without `Origin` (not a browser's,
    /// or an old one) is refused too: what a page server asks of its own page's POSTs.
    pub fn same_origin(&self) -> bool {
        let origin_ok = self
            .header("origin")
            .and_then(|origin| origin.strip_prefix("http://"))
            .is_some_and(|origin| self.names_us(origin));
        let host_ok = self.header("host").is_some_and(|host| self.names_us(host));
        let fetch_site_ok = self
            .header("sec-fetch-site")
            .is_none_or(|site| site.eq_ignore_ascii_case("same-origin"));
        origin_ok && host_ok && fetch_site_ok
    }

    /// Whether a browser sent this request for a page of another origin: an `Origin` that does
    /// not name this server, or a `Sec-Fetch-Site` other than `same-origin` or `none`. A
    /// request without either (a command-line client) is not. What an API asks: no page
    /// elsewhere may make a browser act on it.
    pub fn from_foreign_origin(&self) -> bool {
        let foreign_origin = self.header("origin").is_some_and(|origin| {
            !origin
                .strip_prefix("http://")
                .is_some_and(|origin| self.names_us(origin))
        });
        let foreign_fetch = self.header("sec-fetch-site").is_some_and(|site| {
            !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none")
        });
        foreign_origin || foreign_fetch
    }
}

/// An answer built for one request.
pub struct Response {
    /// Status code (see [`wire_http::reason`] for the ones with a reason phrase).
    pub status: u16,
    /// Header fields besides `Server`, `Date`, `Content-Length` and `Connection`, which the
    /// server writes itself. Names must be tokens and values free of control characters,
    /// else the client gets a 500 instead.
    pub headers: Vec<(&'static str, String)>,
    /// The body (not sent for HEAD).
    pub body: Vec<u8>,
    /// Runs once the whole response has been handed to the kernel, before the next request
    /// on the connection is read; not run if writing failed. GENA needs this: the initial
    /// event must not overtake the SUBSCRIBE response (UDA 1.1 section 4.1.2).
    pub after_write: Option<Box<dyn FnOnce()>>,
}

impl Response {
    /// A response with no body and no extra headers.
    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            after_write: None,
        }
    }

    /// A response with a body of `content_type`.
    pub fn with_body(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type", content_type.to_owned())],
            body,
            after_write: None,
        }
    }
}

impl core::fmt::Debug for Response {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .field("after_write", &self.after_write.is_some())
            .finish()
    }
}

/// What a [`Handler`] answers to a request.
pub enum Answer {
    /// 200 with kept bytes (a description, an SCPD): no copy is made.
    Shared {
        /// `Content-Type` value.
        content_type: &'static str,
        /// The body.
        body: Arc<[u8]>,
    },
    /// An answer computed later (a backend call). The server awaits it with no timeout of
    /// its own, holding the connection's slot: the future must bound its own time.
    Later(Pin<Box<dyn Future<Output = Response>>>),
    /// An answer ready now.
    Now(Response),
}

/// What the server asks of the application. The server itself writes `Server`, `Date`,
/// `Content-Length` and, when it closes the connection, `Connection: close` on every
/// response (including its own error answers); everything else comes from the handler.
pub trait Handler {
    /// Whether to serve a connection from `peer` at all; a refused connection is closed
    /// before anything is read. Serves everyone unless overridden.
    fn admits(&self, peer: SocketAddr) -> bool {
        let _ = peer;
        true
    }

    /// Fast path, asked first for every GET and HEAD without a body: kept bytes and their
    /// content type for this target, or `None` to go to [`Handler::answer`]. Must not
    /// allocate: the server writes the head into a stack buffer and the bytes straight from
    /// the `Arc`, so serving a description costs no heap allocation.
    fn lookup(&self, head: &RequestHead<'_>) -> Option<(&'static str, Arc<[u8]>)>;

    /// Every other request, with its body read and bounded.
    fn answer(&self, request: Request) -> Answer;
}

/// Limits and identity of one server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to send one whole request (head and body), counted from the end of
    /// the previous response (so it also bounds idle keep-alive connections).
    pub read_timeout: Duration,
    /// Time a client has to take one response.
    pub write_timeout: Duration,
    /// Requests on one connection; the last one is answered with `Connection: close`.
    pub max_requests_per_connection: usize,
    /// `Server` header value (UDA 1.1: `OS/version UPnP/1.1 product/version`).
    pub server_header: String,
}

impl ServerConfig {
    /// The limits from [`consts`], with this `Server` value.
    pub fn new(server_header: String) -> ServerConfig {
        ServerConfig {
            max_connections: HTTP_MAX_CONNECTIONS,
            read_timeout: HTTP_READ_TIMEOUT,
            write_timeout: HTTP_WRITE_TIMEOUT,
            max_requests_per_connection: HTTP_MAX_REQUESTS_PER_CONNECTION,
            server_header,
        }
    }
}

/// Serves `listener` until accepting fails for good (file descriptor or memory exhaustion
/// and aborted handshakes are waited out). Each connection runs as a task spawned on
/// `executor`, which must be the executor running this future; dropping this future stops
/// accepting while connections in progress finish on their own.
///
/// Run it as (part of) the future given to `executor.run(..)` rather than as a spawned
/// task: a spawned task holding this `Rc` of its own executor keeps the executor alive.
pub async fn serve(
    listener: Async<TcpListener>,
    handler: Rc<dyn Handler>,
    config: ServerConfig,
    executor: Rc<LocalExecutor<'static>>,
) -> io::Result<()> {
    let config = Rc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    loop {
        let slot = slots.acquire_arc().await;
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => match accept_error(&error) {
                AcceptError::Retry => continue,
                AcceptError::Backoff => {
                    log::warn!("http: accept: {error}");
                    Timer::after(HTTP_ACCEPT_BACKOFF).await;
                    continue;
                }
                AcceptError::Fatal => return Err(error),
            },
        };
        if !handler.admits(peer) {
            log::debug!("http {peer}: connection refused by the handler");
            continue;
        }
        let handler = Rc::clone(&handler);
        let config = Rc::clone(&config);
        executor
            .spawn(async move {
                serve_connection(stream, peer, &*handler, &config).await;
                drop(slot);
            })
            .detach();
    }
}

enum AcceptError {
    Retry,
    Backoff,
    Fatal,
}

fn accept_error(error: &io::Error) -> AcceptError {
    use io::ErrorKind::*;
    match error.kind() {
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock => AcceptError::Retry,
        _ => match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                AcceptError::Backoff
            }
            Some(libc::EPROTO | libc::EPERM) => AcceptError::Retry,
            _ => AcceptError::Fatal,
        },
    }
}

/// Serves requests on one connection until it closes, fails or reaches its limits.
async fn serve_connection(
    stream: Async<TcpStream>,
    peer: SocketAddr,
    handler: &dyn Handler,
    config: &ServerConfig,
) {
    let local = match stream.get_ref().local_addr() {
        Ok(local) => local,
        Err(error) => {
            log::debug!("http {peer}: local address: {error}");
            return;
        }
    };
    if let Err(error) = stream.get_ref().set_nodelay(true) {
        log::debug!("http {peer}: TCP_NODELAY: {error}");
    }
    let mut connection = Connection {
        stream,
        peer,
        local,
        timer: Timer::never(),
        config,
    };
    let mut buffer = ReadBuffer::new();
    let limit = config.max_requests_per_connection.max(1);
    for served in 1..=limit {
        let next = match connection
            .serve_one(handler, &mut buffer, served == limit)
            .await
        {
            Ok(next) => next,
            Err(error) => {
                log::debug!("http {peer}: {error}");
                return;
            }
        };
        match next {
            Next::KeepAlive => continue,
            Next::Close => break,
            Next::Drop => return,
        }
    }
    connection.linger(&mut buffer).await;
}

/// What to do with a connection after one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Read the next request.
    KeepAlive,
    /// An answer said `Connection: close`: stop writing, drain, close.
    Close,
    /// The client went away or never said anything: just close.
    Drop,
}

/// The per-connection read buffer: allocated once per connection, [`consts::HTTP_MAX_HEAD`]
/// bytes, holding the head being read and whatever the client sent after it.
struct ReadBuffer {
    bytes: Vec<u8>,
    filled: usize,
    /// How far the data has been searched for the end of the head.
    scanned: usize,
}

impl ReadBuffer {
    fn new() -> ReadBuffer {
        ReadBuffer {
            bytes: vec![0; consts::HTTP_MAX_HEAD],
            filled: 0,
            scanned: 0,
        }
    }

    fn data(&self) -> &[u8] {
        self.bytes.get(..self.filled).unwrap_or_default()
    }

    fn spare(&mut self) -> &mut [u8] {
        self.bytes.get_mut(self.filled..).unwrap_or_default()
    }

    fn is_full(&self) -> bool {
        self.filled >= self.bytes.len()
    }

    /// Drops the first `count` bytes.
    fn consume(&mut self, count: usize) {
        let count = count.min(self.filled);
        self.bytes.copy_within(count..self.filled, 0);
        self.filled -= count;
        self.scanned = 0;
    }

    /// The end of the head, if it has arrived. Empty lines before a request line are
    /// skipped (RFC 9112 section 2.2: some clients send a CRLF after a POST body).
    fn head_end(&mut self) -> Option<usize> {
        let blank = self
            .data()
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            self.consume(blank);
        }
        // The terminator is at most 3 bytes: it cannot start before the last unsearched 3.
        let from = self.scanned.saturating_sub(3);
        let found = wire_http::find_head_end(self.data().get(from..).unwrap_or_default());
        self.scanned = self.filled;
        found.map(|end| end + from)
    }
}

struct Connection<'c> {
    stream: Async<TcpStream>,
    peer: SocketAddr,
    local: SocketAddr,
    /// One timer for the connection's whole life, re-armed for each read or write phase.
    timer: Timer,
    config: &'c ServerConfig,
}

impl Connection<'_> {
    /// Reads, answers and writes one request.
    async fn serve_one(
        &mut self,
        handler: &dyn Handler,
        buffer: &mut ReadBuffer,
        last: bool,
    ) -> io::Result<Next> {
        let read_deadline = Instant::now() + self.config.read_timeout;
        self.timer.set_at(read_deadline);
        let end = loop {
            if let Some(end) = buffer.head_end() {
                break end;
            }
            if buffer.is_full() {
                log::debug!("http {}: head over {} bytes", self.peer, buffer.filled);
                return self.refuse(431).await;
            }
            match self.read_some(buffer.spare()).await? {
                Some(0) => return Ok(Next::Drop),
                Some(count) => buffer.filled += count,
                None if buffer.filled > 0 => {
                    log::debug!("http {}: request head not in within the timeout", self.peer);
                    return self.refuse(408).await;
                }
                None => return Ok(Next::Drop),
            }
        };

        let Some(head_bytes) = buffer.bytes.get(..end) else {
            return self.refuse(500).await;
        };
        let head = match RequestHead::parse(head_bytes) {
            Ok(head) => head,
            Err(error) => {
                log::debug!("http {}: request head: {error}", self.peer);
                return self.refuse(wire_http::refusal_status(error)).await;
            }
        };
        if let Err(status) = head.check_target_and_host(self.local) {
            log::debug!(
                "http {}: refused {} {}: {status}",
                self.peer,
                crate::wire::soap::capped(head.method),
                crate::wire::soap::capped(head.target)
            );
            return self.refuse(status).await;
        }
        let framing = match head.framing(consts::HTTP_MAX_BODY) {
            Ok(framing) => framing,
            Err(status) => {
                log::debug!("http {}: body framing: {status}", self.peer);
                return self.refuse(status).await;
            }
        };
        let keep_alive = head.keep_alive() && !last;
        let version = head.version;
        let head_only = head.method == "HEAD";

        if (head.method == "GET" || head_only) && framing == Framing::Length(0) {
            if let Some((content_type, body)) = handler.lookup(&head) {
                buffer.consume(end);
                let headers = [("Content-Type", content_type)];
                let body = (!head_only).then_some(&*body).ok_or(body.len());
                return self
                    .respond(200, &headers, body, keep_alive, version)
                    .await
                    .map(|()| next(keep_alive));
            }
        }

        let expect_continue = version == Version::Http11
            && head
                .header("expect")
                .is_some_and(|e| e.eq_ignore_ascii_case("100-continue"));
        let (path, query) = match head.target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_owned())),
            None => (head.target, None),
        };
        let mut request = Request {
            method: if head_only { "GET" } else { head.method }.to_owned(),
            path: path.to_owned(),
            query,
            headers: head
                .headers()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect(),
            body: Vec::new(),
            peer: self.peer,
            local: self.local,
        };
        buffer.consume(end);

        if expect_continue && framing != Framing::Length(0) {
            self.write_all(&[b"HTTP/1.1 100 Continue\r\n\r\n"]).await?;
            self.timer.set_at(read_deadline);
        }
        let body = match framing {
            Framing::Length(length) => self.read_body(buffer, length).await?,
            Framing::Chunked => self.read_chunked(buffer).await?,
        };
        request.body = match body {
            Ok(body) => body,
            Err(Some(status)) => return self.refuse(status).await,
            Err(None) => return Ok(Next::Drop),
        };

        let response = match handler.answer(request) {
            Answer::Shared { content_type, body } => {
                let headers = [("Content-Type", content_type)];
                let body = (!head_only).then_some(&*body).ok_or(body.len());
                self.respond(200, &headers, body, keep_alive, version)
                    .await?;
                return Ok(next(keep_alive));
            }
            Answer::Now(response) => response,
            Answer::Later(future) => future.await,
        };
        self.respond_owned(response, head_only, keep_alive, version)
            .await
    }

    /// Writes a handler's [`Response`] and runs its `after_write`.
    async fn respond_owned(
        &mut self,
        mut response: Response,
        head_only: bool,
        keep_alive: bool,
        version: Version,
    ) -> io::Result<Next> {
        let headers: Vec<(&str, &str)> = response
            .headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let body = (!head_only)
            .then_some(response.body.as_slice())
            .ok_or(response.body.len());
        self.respond(response.status, &headers, body, keep_alive, version)
            .await?;
        if let Some(after_write) = response.after_write.take() {
            after_write();
        }
        Ok(next(keep_alive))
    }

    /// Answers `status` with no body and closes.
    async fn refuse(&mut self, status: u16) -> io::Result<Next> {
        self.respond(status, &[], Err(0), false, Version::Http11)
            .await?;
        Ok(Next::Close)
    }

    /// Writes a response: head (into a stack buffer) then `body`, which is `Err(length)`
    /// when only the head is sent (HEAD). A head the handler made unwritable becomes a 500.
    async fn respond(
        &mut self,
        status: u16,
        headers: &[(&str, &str)],
        body: Result<&[u8], usize>,
        keep_alive: bool,
        version: Version,
    ) -> io::Result<()> {
        let date = wire::http_date(unix_now());
        let date = core::str::from_utf8(&date).unwrap_or_default();
        let connection = match (keep_alive, version) {
            (false, _) => Some("close"),
            (true, Version::Http10) => Some("keep-alive"),
            (true, Version::Http11) => None,
        };
        let mut storage = [0u8; consts::HTTP_RESPONSE_HEAD_BUFFER];
        let length = match body {
            Ok(bytes) => bytes.len(),
            Err(length) => length,
        };
        let written = wire_http::emit_response_head(
            &mut storage,
            status,
            headers,
            &self.config.server_header,
            date,
            connection,
            length,
        );
        let head_len = match written {
            Ok(len) => len,
            Err(error) => {
                log::warn!("http {}: cannot write a {status} head: {error}", self.peer);
                let fallback = wire_http::emit_response_head(
                    &mut storage,
                    500,
                    &[],
                    &self.config.server_header,
                    date,
                    Some("close"),
                    0,
                );
                let len = fallback.map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
                let head = storage.get(..len).unwrap_or_default();
                self.write_all(&[head]).await?;
                return Err(io::Error::from(io::ErrorKind::InvalidData));
            }
        };
        let head = storage.get(..head_len).unwrap_or_default();
        match body {
            Ok(bytes) => self.write_all(&[head, bytes]).await,
            Err(_) => self.write_all(&[head]).await,
        }
    }

    /// Reads a body of `length` bytes: `Err(Some(status))` to refuse, `Err(None)` when the
    /// client went away.
    async fn read_body(
        &mut self,
        buffer: &mut ReadBuffer,
        length: usize,
    ) -> io::Result<Result<Vec<u8>, Option<u16>>> {
        let mut body = vec![0; length];
        let mut got = length.min(buffer.filled);
        if let (Some(dst), Some(src)) = (body.get_mut(..got), buffer.data().get(..got)) {
            dst.copy_from_slice(src);
        }
        buffer.consume(got);
        while got < length {
            let spare = body.get_mut(got..).unwrap_or_default();
            match self.read_some(spare).await? {
                None => return Ok(Err(Some(408))),
                Some(0) => return Ok(Err(None)),
                Some(count) => got += count,
            }
        }
        Ok(Ok(body))
    }

    /// Reads and decodes a chunked body, leaving what follows it in `buffer`.
    async fn read_chunked(
        &mut self,
        buffer: &mut ReadBuffer,
    ) -> io::Result<Result<Vec<u8>, Option<u16>>> {
        let mut decoder = ChunkedDecoder::new(consts::HTTP_MAX_BODY);
        let mut body = Vec::new();
        loop {
            match decoder.feed(buffer.data(), &mut body) {
                Ok(Progress::Done(used)) => {
                    buffer.consume(used);
                    return Ok(Ok(body));
                }
                Ok(Progress::NeedMore) => buffer.consume(buffer.filled),
                Err(error) => {
                    log::debug!("http {}: chunked body: {error}", self.peer);
                    let status = if error == wire::Error::TooLong {
                        413
                    } else {
                        400
                    };
                    return Ok(Err(Some(status)));
                }
            }
            match self.read_some(buffer.spare()).await? {
                None => return Ok(Err(Some(408))),
                Some(0) => return Ok(Err(None)),
                Some(count) => buffer.filled += count,
            }
        }
    }

    /// One read, `None` when the armed timer fires first.
    async fn read_some(&mut self, into: &mut [u8]) -> io::Result<Option<usize>> {
        let Connection { stream, timer, .. } = self;
        let mut reader = &*stream;
        future::or(async { reader.read(into).await.map(Some) }, async {
            timer.await;
            Ok(None)
        })
        .await
    }

    /// Writes `parts` in order within the write timeout.
    async fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        self.timer
            .set_at(Instant::now() + self.config.write_timeout);
        let Connection { stream, timer, .. } = self;
        let mut writer = &*stream;
        future::or(
            async {
                for part in parts {
                    writer.write_all(part).await?;
                }
                writer.flush().await
            },
            async {
                timer.await;
                Err(io::Error::from(io::ErrorKind::TimedOut))
            },
        )
        .await
    }

    /// Closes after a final answer: no more writing, then what the client still sends is
    /// read and dropped for a bounded time, so its unread bytes do not make our kernel reset
    /// the connection (and lose the answer) before the client has read it.
    async fn linger(&mut self, buffer: &mut ReadBuffer) {
        if self.stream.get_ref().shutdown(Shutdown::Write).is_err() {
            return;
        }
        self.timer.set_at(Instant::now() + HTTP_LINGER_TIMEOUT);
        let mut drained = 0;
        buffer.consume(buffer.filled);
        while drained < HTTP_LINGER_MAX {
            match self.read_some(buffer.spare()).await {
                Ok(Some(count)) if count > 0 => drained += count,
                _ => break,
            }
        }
    }
}

fn next(keep_alive: bool) -> Next {
    if keep_alive {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::mem::MaybeUninit;
    use std::sync::Mutex;
    use std::thread::JoinHandle;
    use wire_http::ResponseStatus;

    const SHARED: &[u8] = b"<root>kept description</root>";
    const WAIT: Duration = Duration::from_secs(5);

    /// What the test handler saw when `after_write` ran: bytes waiting on the client socket.
    type Seen = Arc<Mutex<Option<usize>>>;
    type Peer = Arc<Mutex<Option<TcpStream>>>;

    struct TestHandler {
        shared: Arc<[u8]>,
        client: Peer,
        seen: Seen,
    }

    impl Handler for TestHandler {
        fn lookup(&self, head: &RequestHead<'_>) -> Option<(&'static str, Arc<[u8]>)> {
            (head.target == "/shared").then(|| ("text/xml", Arc::clone(&self.shared)))
        }

        fn answer(&self, request: Request) -> Answer {
            match (request.method.as_str(), request.path.as_str()) {
                ("POST", "/echo") => Answer::Now(Response::with_body(
                    200,
                    "application/octet-stream",
                    request.body,
                )),
                ("GET", "/query") => Answer::Now(Response::with_body(
                    200,
                    "text/plain",
                    request.query.unwrap_or_default().into_bytes(),
                )),
                ("GET", "/kept") => Answer::Shared {
                    content_type: "text/xml",
                    body: Arc::clone(&self.shared),
                },
                ("GET", "/later") => Answer::Later(Box::pin(async {
                    Timer::after(Duration::from_millis(20)).await;
                    Response::with_body(200, "text/plain", b"later".to_vec())
                })),
                // A long backend call: longer than the read and write timeouts of the
                // configuration `slow_answers_are_awaited` uses.
                ("POST", "/slow") => Answer::Later(Box::pin(async {
                    Timer::after(Duration::from_millis(900)).await;
                    Response::with_body(200, "text/plain", b"slow".to_vec())
                })),
                ("GET", "/bad-header") => {
                    let mut response = Response::empty(200);
                    response
                        .headers
                        .push(("X", "a\r\nInjected: yes".to_owned()));
                    Answer::Now(response)
                }
                ("SUBSCRIBE", "/event") => {
                    let client = Arc::clone(&self.client);
                    let seen = Arc::clone(&self.seen);
                    let mut response = Response::empty(200);
                    response.headers.push(("SID", "uuid:1".to_owned()));
                    response.after_write = Some(Box::new(move || {
                        let waiting = client.lock().unwrap().as_ref().map(|stream| {
                            let mut probe = [MaybeUninit::<u8>::uninit(); 4096];
                            socket2::SockRef::from(stream)
                                .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT)
                                .unwrap_or(0)
                        });
                        *seen.lock().unwrap() = waiting;
                    }));
                    Answer::Now(response)
                }
                _ => Answer::Now(Response::empty(404)),
            }
        }
    }

    struct TestServer {
        address: SocketAddr,
        client: Peer,
        seen: Seen,
        stop: Option<smol::channel::Sender<()>>,
        thread: Option<JoinHandle<()>>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            drop(self.stop.take());
            if let Some(thread) = self.thread.take() {
                thread.join().unwrap();
            }
        }
    }

    fn config() -> ServerConfig {
        ServerConfig {
            max_connections: 8,
            read_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(3),
            max_requests_per_connection: 10,
            server_header: "test/1 UPnP/1.1 xenplug/0".to_owned(),
        }
    }

    fn start(config: ServerConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (stop, stopped) = smol::channel::bounded::<()>(1);
        let client = Peer::default();
        let seen = Seen::default();
        let (handler_client, handler_seen) = (Arc::clone(&client), Arc::clone(&seen));
        let thread = std::thread::spawn(move || {
            let executor = Rc::new(LocalExecutor::new());
            let handler: Rc<dyn Handler> = Rc::new(TestHandler {
                shared: Arc::from(SHARED),
                client: handler_client,
                seen: handler_seen,
            });
            let listener = Async::new(listener).unwrap();
            let server = serve(listener, handler, config, Rc::clone(&executor));
            smol::block_on(
                executor.run(future::or(async { server.await.unwrap() }, async {
                    let _ = stopped.recv().await;
                })),
            );
        });
        TestServer {
            address,
            client,
            seen,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    struct Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        raw_len: usize,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            let mut found = self
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name));
            let first = found.next().map(|(_, v)| v.as_str());
            assert!(found.next().is_none(), "{name} twice");
            first
        }
    }

    struct Client {
        stream: TcpStream,
        pending: Vec<u8>,
    }

    impl Client {
        fn connect(address: SocketAddr) -> Client {
            let stream = TcpStream::connect(address).unwrap();
            stream.set_read_timeout(Some(WAIT)).unwrap();
            stream.set_write_timeout(Some(WAIT)).unwrap();
            Client {
                stream,
                pending: Vec::new(),
            }
        }

        fn send(&mut self, bytes: &[u8]) {
            self.stream.write_all(bytes).unwrap();
        }

        fn fill(&mut self) -> usize {
            let mut chunk = [0u8; 4096];
            let count = self.stream.read(&mut chunk).unwrap();
            self.pending.extend_from_slice(&chunk[..count]);
            count
        }

        fn reply(&mut self, with_body: bool) -> Reply {
            for _ in 0..1000 {
                if let Some(end) = wire_http::find_head_end(&self.pending) {
                    let head = ResponseStatus::parse(&self.pending[..end]).unwrap();
                    let length = head.content_length().unwrap().unwrap_or(0);
                    let status = head.status;
                    let headers = head
                        .headers()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect();
                    let length = if with_body { length } else { 0 };
                    while self.pending.len() < end + length {
                        assert!(self.fill() > 0, "closed inside a body");
                    }
                    let raw: Vec<u8> = self.pending.drain(..end + length).collect();
                    return Reply {
                        status,
                        headers,
                        body: raw[end..].to_vec(),
                        raw_len: raw.len(),
                    };
                }
                assert!(self.fill() > 0, "closed before a response");
            }
            panic!("no response");
        }

        fn response(&mut self) -> Reply {
            self.reply(true)
        }

        fn is_closed(&mut self) -> bool {
            self.pending.is_empty() && self.fill() == 0
        }
    }

    fn get(server: &TestServer, target: &str) -> String {
        format!("GET {target} HTTP/1.1\r\nHost: {}\r\n\r\n", server.address)
    }

    #[test]
    fn serves_shared_body_with_server_headers() {
        let server = start(config());
        let mut client = Client::connect(server.address);
        client.send(get(&server, "/shared").as_bytes());
        let reply = client.response();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, SHARED);
        assert_eq!(reply.header("content-type"), Some("text/xml"));
        assert_eq!(reply.header("server"), Some("test/1 UPnP/1.1 xenplug/0"));
        assert!(reply.header("date").is_some_and(|d| d.ends_with(" GMT")));
        assert_eq!(reply.header("connection"), None);

        client.send(get(&server, "/kept").as_bytes());
        let reply = client.response();
        assert_eq!((reply.status, reply.body.as_slice()), (200, SHARED));
    }

    #[test]
    fn head_gets_get_head_without_body() {
        let server = start(config());
        let mut client = Client::connect(server.address);
        for target in ["/shared", "/kept", "/query?abc"] {
            let head = format!("HEAD {target} HTTP/1.1\r\nHost: {}\r\n\r\n", server.address);
            client.send(head.as_bytes());
            let reply = client.reply(false);
            assert_eq!(reply.status, 200, "{target}");
            assert!(reply.header("content-length").unwrap() != "0", "{target}");
        }
        // Had any body been sent, this would read it as the next status line.
        client.send(get(&server, "/query?after").as_bytes());
        let reply = client.response();
        assert_eq!(reply.body, b"after");
    }

    #[test]
    fn keep_alive_and_pipelining() {
        let server = start(config());
        let mut client = Client::connect(server.address);
        client.send(get(&server, "/shared").as_bytes());
        assert_eq!(client.response().status, 200);
        let two = format!(
            "{}\r\n{}",
            get(&server, "/query?one"),
            get(&server, "/later")
        );
        client.send(two.as_bytes());
        assert_eq!(client.response().body, b"one");
        assert_eq!(client.response().body, b"later");
        client.send(get(&server, "/missing").as_bytes());
        assert_eq!(client.response().status, 404);
    }

    #[test]
    fn slow_answers_are_awaited() {
        // The read and write timeouts bound the client's sending and taking, not the
        // handler: a SOAP action whose backend call outlasts both is still answered, and the
        // connection serves the next request.
        let mut quick = config();
        quick.read_timeout = Duration::from_millis(200);
        quick.write_timeout = Duration::from_millis(200);
        let server = start(quick);
        let mut client = Client::connect(server.address);
        let post = format!(
            "POST /slow HTTP/1.1\r\nHost: {}\r\nContent-Length: 2\r\n\r\nhi",
            server.address
        );
        client.send(post.as_bytes());
        let reply = client.response();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"slow"[..]));
        client.send(get(&server, "/query?next").as_bytes());
        assert_eq!(client.response().body, b"next");
    }

    #[test]
    fn connection_close_and_request_limit() {
        let mut limited = config();
        limited.max_requests_per_connection = 2;
        let server = start(limited);
        let mut client = Client::connect(server.address);
        let close = format!(
            "GET /shared HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            server.address
        );
        client.send(close.as_bytes());
        assert_eq!(client.response().header("connection"), Some("close"));
        assert!(client.is_closed());

        let mut client = Client::connect(server.address);
        client.send(get(&server, "/shared").as_bytes());
        assert_eq!(client.response().header("connection"), None);
        client.send(get(&server, "/shared").as_bytes());
        assert_eq!(client.response().header("connection"), Some("close"));
        assert!(client.is_closed());
    }

    #[test]
    fn http_10_with_and_without_keep_alive() {
        let server = start(config());
        let mut client = Client::connect(server.address);
        client.send(b"GET /shared HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let reply = client.response();
        assert_eq!(reply.header("connection"), Some("keep-alive"));
        client.send(b"GET /query?x HTTP/1.0\r\n\r\n");
        let reply = client.response();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"x"[..]));
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(client.is_closed());
    }

    fn refused(server: &TestServer, request: &[u8]) -> u16 {
        let mut client = Client::connect(server.address);
        client.send(request);
        let reply = client.response();
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(client.is_closed());
        reply.status
    }

    #[test]
    fn oversized_head_and_too_many_headers_get_431() {
        let server = start(config());
        let mut request = format!("GET /shared HTTP/1.1\r\nHost: {}\r\nX: ", server.address);
        request.push_str(&"a".repeat(consts::HTTP_MAX_HEAD + 100));
        request.push_str("\r\n\r\n");
        assert_eq!(refused(&server, request.as_bytes()), 431);

        let mut request = format!("GET /shared HTTP/1.1\r\nHost: {}\r\n", server.address);
        for i in 0..consts::HTTP_MAX_HEADERS + 5 {
            request.push_str(&format!("X-{i}: v\r\n"));
        }
        request.push_str("\r\n");
        assert_eq!(refused(&server, request.as_bytes()), 431);
    }

    #[test]
    fn bodies_are_bounded_and_framed() {
        let server = start(config());
        let host = server.address;
        let mut big = format!(
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: {}\r\n\r\n",
            consts::HTTP_MAX_BODY + 1
        )
        .into_bytes();
        big.resize(big.len() + consts::HTTP_MAX_BODY + 1, b'x');
        assert_eq!(refused(&server, &big), 413);

        let mut chunked =
            format!("POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n")
                .into_bytes();
        for _ in 0..=consts::HTTP_MAX_BODY / 1000 {
            chunked.extend_from_slice(b"3e8\r\n");
            chunked.resize(chunked.len() + 1000, b'y');
            chunked.extend_from_slice(b"\r\n");
        }
        chunked.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(refused(&server, &chunked), 413);

        let no_length = format!("POST /echo HTTP/1.1\r\nHost: {host}\r\n\r\nbody");
        assert_eq!(refused(&server, no_length.as_bytes()), 411);
        let both = format!(
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\n\
             Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        );
        assert_eq!(refused(&server, both.as_bytes()), 400);
        let gzip =
            format!("POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(refused(&server, gzip.as_bytes()), 501);
        assert_eq!(refused(&server, b"GET / HTTP/2.0\r\n\r\n"), 505);
        assert_eq!(refused(&server, b"GET / HTTP/1.1\r\nX : y\r\n\r\n"), 400);
    }

    #[test]
    fn chunked_and_sized_posts_are_echoed() {
        let server = start(config());
        let host = server.address;
        let mut client = Client::connect(host);
        let request = format!(
            "POST /echo HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: chunked\r\n\r\n\
             5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nTrailer: t\r\n\r\n{}",
            get(&server, "/query?next")
        );
        client.send(request.as_bytes());
        assert_eq!(client.response().body, b"hello world");
        assert_eq!(client.response().body, b"next");

        let request =
            format!("POST /echo HTTP/1.1\r\nHost: {host}\r\nContent-Length: 5\r\n\r\nabcde");
        for byte in request.as_bytes() {
            client.send(std::slice::from_ref(byte));
        }
        assert_eq!(client.response().body, b"abcde");
    }

    #[test]
    fn expect_continue_is_answered() {
        let server = start(config());
        let mut client = Client::connect(server.address);
        let head = format!(
            "POST /echo HTTP/1.1\r\nHost: {}\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
            server.address
        );
        client.send(head.as_bytes());
        assert_eq!(client.reply(false).status, 100);
        client.send(b"body");
        assert_eq!(client.response().body, b"body");
    }

    #[test]
    fn host_must_be_our_address() {
        let server = start(config());
        let port = server.address.port();
        for host in [
            "Host: evil.example\r\n".to_owned(),
            format!("Host: localhost:{port}\r\n"),
            "Host: 127.0.0.1:1\r\n".to_owned(),
            "Host: 127.0.0.2\r\n".to_owned(),
            String::new(),
            format!("Host: 127.0.0.1:{port}\r\nHost: 127.0.0.1:{port}\r\n"),
        ] {
            let request = format!("GET /shared HTTP/1.1\r\n{host}\r\n");
            assert_eq!(refused(&server, request.as_bytes()), 400, "{host:?}");
        }
        let absolute =
            format!("GET http://127.0.0.1:{port}/shared HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(refused(&server, absolute.as_bytes()), 400);
        let mut client = Client::connect(server.address);
        client.send(b"GET /shared HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        assert_eq!(client.response().status, 200);
    }

    #[test]
    fn slow_client_is_cut_with_408() {
        let mut slow = config();
        slow.read_timeout = Duration::from_millis(300);
        let server = start(slow);
        let mut client = Client::connect(server.address);
        let request = get(&server, "/shared");
        let mut answered = false;
        for byte in request.as_bytes().iter().cycle().take(200) {
            client.send(std::slice::from_ref(byte));
            std::thread::sleep(Duration::from_millis(30));
            let mut probe = [MaybeUninit::<u8>::uninit(); 1];
            let waiting = socket2::SockRef::from(&client.stream)
                .recv_with_flags(&mut probe, libc::MSG_PEEK | libc::MSG_DONTWAIT);
            if waiting.is_ok_and(|count| count > 0) {
                answered = true;
                break;
            }
        }
        assert!(answered, "the slow request was never cut");
        let reply = client.response();
        assert_eq!(reply.status, 408);
        assert_eq!(reply.header("connection"), Some("close"));
        assert!(client.is_closed());
    }

    #[test]
    fn silent_client_is_closed_without_answer() {
        let mut quick = config();
        quick.read_timeout = Duration::from_millis(300);
        let server = start(quick);
        let mut client = Client::connect(server.address);
        assert!(client.is_closed());
        let mut client = Client::connect(server.address);
        client.send(get(&server, "/shared").as_bytes());
        assert_eq!(client.response().status, 200);
        assert!(client.is_closed(), "idle keep-alive connection not closed");
    }

    #[test]
    fn connections_beyond_the_limit_wait_for_a_slot() {
        let mut two = config();
        two.max_connections = 2;
        let server = start(two);
        let request = get(&server, "/shared");
        let mut first = Client::connect(server.address);
        let mut second = Client::connect(server.address);
        for client in [&mut first, &mut second] {
            client.send(request.as_bytes());
            assert_eq!(client.response().status, 200);
        }
        let mut third = Client::connect(server.address);
        third.send(request.as_bytes());
        third
            .stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut byte = [0u8; 1];
        let waited = third.stream.read(&mut byte);
        assert!(
            waited.as_ref().is_err_and(|e| matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            )),
            "third connection served beyond the limit: {waited:?}"
        );
        drop(first);
        third.stream.set_read_timeout(Some(WAIT)).unwrap();
        assert_eq!(third.response().status, 200);
        second.send(request.as_bytes());
        assert_eq!(second.response().status, 200);
    }

    #[test]
    fn after_write_runs_once_the_client_has_the_bytes() {
        let server = start(config());
        let mut client = Client::connect(server.address);
        *server.client.lock().unwrap() = Some(client.stream.try_clone().unwrap());
        let subscribe = format!(
            "SUBSCRIBE /event HTTP/1.1\r\nHost: {}\r\nNT: upnp:event\r\n\r\n",
            server.address
        );
        client.send(subscribe.as_bytes());
        let mut seen = None;
        for _ in 0..500 {
            seen = *server.seen.lock().unwrap();
            if seen.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let reply = client.response();
        assert_eq!(reply.header("sid"), Some("uuid:1"));
        assert_eq!(seen, Some(reply.raw_len));
    }

    #[test]
    fn unwritable_handler_header_becomes_500() {
        let server = start(config());
        let request = get(&server, "/bad-header");
        let mut client = Client::connect(server.address);
        client.send(request.as_bytes());
        let reply = client.response();
        assert_eq!(reply.status, 500);
        assert_eq!(reply.header("injected"), None);
        assert!(client.is_closed());
    }
}
