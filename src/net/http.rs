//! Net layer: a small bounded HTTP/1.1 server on smol. Owns sockets, timers and the clock;
//! parsing lives in [`crate::wire::http`] and what to answer in a [`Handler`].
//!
//! Every resource a client can make it spend is bounded: head size
//! ([`consts::HTTP_MAX_HEAD`], else 431), header count ([`consts::HTTP_MAX_HEADERS`], else
//! 431), body size ([`consts::HTTP_MAX_BODY`], else 413), time to send a request head
//! ([`ServerConfig::head_timeout`], else 408), to start the next request on a kept-alive
//! connection ([`ServerConfig::idle_timeout`], else a silent close), to send a body
//! ([`ServerConfig::body_timeout`], else 408), to take an answer
//! ([`ServerConfig::write_timeout`]), requests per connection, connections at once and long
//! polls at once, each of the last two per source as well as in all.
//!
//! Connections: at most [`ServerConfig::max_connections`] hold a slot at once, and at most
//! [`ServerConfig::max_connections_per_source`] (a quarter of them) from one source, an IPv4
//! address or an IPv6 /64. The server accepts whenever it can, so that it sees who asks:
//! - a free slot goes to a source below its own limit;
//! - when every slot is taken, a source holding less than its fair share (the slots divided
//!   by the number of sources holding one, itself included) takes the slot of a connection of
//!   the source holding the most, if that one holds more than its share: a connection already
//!   closing, else the one idle longest between requests, else the one slowest to send its
//!   request. A connection whose request is being answered is never taken. The connection
//!   that lost its slot is closed gracefully (as below), outside the count;
//! - anyone else waits, unread, for a slot to free (the one waiting longest first), for at
//!   most the head timeout: at most twice its limit of connections per source, and as many
//!   as there are slots in all, so that a burst from one control point (a SUBSCRIBE to each
//!   service of a host, at once) waits rather than fails;
//! - beyond that, and when the wait ends without a slot, the connection is refused: closed
//!   unread and unanswered.
//!
//! Refusals are logged once per source and kind of refusal, then at most once a minute with
//! the number refused meanwhile: never once per connection.
//!
//! Long polls ([`Answer::LongPoll`]): while one waits, its connection gives its slot back and
//! holds one of [`ServerConfig::max_long_polls`] long polls instead, at most
//! [`ServerConfig::max_long_polls_per_source`] (a quarter) per source. Past the source's
//! limit the request is answered 429 Too Many Requests (RFC 6585 section 4: this client sends
//! too many), past the global one 503 Service Unavailable (the server is busy, through no
//! fault of this client), both with `Retry-After` and a one-line JSON body, the connection
//! kept. While the answer is awaited the server watches the socket: the client closing or
//! resetting its connection ends the wait and drops the future at once.
//!
//! Closing: after an answer that closes the connection the server shuts down its sending side
//! (FIN) and reads and drops whatever the client still sends, until the client closes or for
//! two seconds at most, so that unread bytes do not make the kernel reset the connection and
//! lose answers it has not delivered yet (the lingering close of RFC 9112 section 9.6). The
//! bound is time, not bytes.
//!
//! DNS rebinding: a request is answered only when its `Host` is the connection's local IP
//! address, optionally with the local port (`192.168.1.10:49152`, `[fe80::1]:49152`). A
//! browser tricked into sending a request to us carries the attacker's host name there.
//! HTTP/1.0 requests may omit `Host`; HTTP/1.1 ones may not (RFC 9112 section 3.2).

use std::cell::{Cell, RefCell};
use std::io;
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use smol::future::{self, Future};
use smol::{Async, LocalExecutor, Timer};
use std::io::{Read as _, Write as _};

use crate::consts;
use crate::net::unix_now;
use crate::wire;
use crate::wire::http::{
    self as wire_http, ChunkedDecoder, Framing, Progress, RequestHead, Version,
};

/// Connections holding a slot at once per listener (long polls apart).
const HTTP_MAX_CONNECTIONS: usize = 64;
/// Connections one source may hold at once: a quarter of the slots.
const HTTP_MAX_CONNECTIONS_PER_SOURCE: usize = HTTP_MAX_CONNECTIONS / 4;
/// Long polls waiting at once per listener.
const HTTP_MAX_LONG_POLLS: usize = 32;
/// Long polls one source may have waiting at once: a quarter of them.
const HTTP_MAX_LONG_POLLS_PER_SOURCE: usize = HTTP_MAX_LONG_POLLS / 4;
/// Requests served on one kept-alive connection before it is closed.
const HTTP_MAX_REQUESTS_PER_CONNECTION: usize = 100;
/// Time allowed to send a request head: counted from the accept for the first request of a
/// connection, from the request's first byte for the next ones.
const HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a kept-alive connection may wait for the first byte of its next request.
const HTTP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to send a request body, counted from the end of its head.
const HTTP_BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed to write one response.
const HTTP_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before accepting again when `accept` fails for lack of file descriptors or memory.
const HTTP_ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// After an answer that closes the connection, the server stops writing and reads (and
/// drops) what the client still sends for at most this long, so that the kernel does not
/// reset the connection before the client has read the answer.
const HTTP_LINGER_TIMEOUT: Duration = Duration::from_secs(2);
/// A source's refusals of one kind are logged at most once per this interval.
const HTTP_REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);
/// Sources whose last refusal line is remembered; past it the oldest is forgotten.
const HTTP_REFUSAL_LOG_SOURCES: usize = 64;
/// `Retry-After` of a refused long poll, in seconds.
const HTTP_LONG_POLL_RETRY_AFTER: &str = "5";

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
    /// An answer that waits for something to happen (a long poll), bounding its own time.
    /// Unless it is ready at once, it waits as one of the server's long polls, not in a
    /// connection slot, or is refused (429 past the source's share, 503 past the server's
    /// limit). It is dropped as soon as the client closes its connection.
    LongPoll(Pin<Box<dyn Future<Output = Response>>>),
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
    /// Connections holding a slot at once; long polls are counted apart.
    pub max_connections: usize,
    /// Connections one source (an IPv4 address, an IPv6 /64) may hold at once.
    pub max_connections_per_source: usize,
    /// Long polls ([`Answer::LongPoll`]) waiting at once.
    pub max_long_polls: usize,
    /// Long polls one source may have waiting at once.
    pub max_long_polls_per_source: usize,
    /// Time a client has to send a request head: from the accept for a connection's first
    /// request, from the request's first byte for the next ones.
    pub head_timeout: Duration,
    /// Time a kept-alive connection may wait for the first byte of its next request, counted
    /// from the end of the previous response.
    pub idle_timeout: Duration,
    /// Time a client has to send a request body, counted from the end of its head.
    pub body_timeout: Duration,
    /// Time a client has to take one response.
    pub write_timeout: Duration,
    /// Requests on one connection; the last one is answered with `Connection: close`.
    pub max_requests_per_connection: usize,
    /// `Server` header value (UDA 1.1: `OS/version UPnP/1.1 product/version`).
    pub server_header: String,
}

impl ServerConfig {
    /// The default limits, with this `Server` value.
    pub fn new(server_header: String) -> ServerConfig {
        ServerConfig {
            max_connections: HTTP_MAX_CONNECTIONS,
            max_connections_per_source: HTTP_MAX_CONNECTIONS_PER_SOURCE,
            max_long_polls: HTTP_MAX_LONG_POLLS,
            max_long_polls_per_source: HTTP_MAX_LONG_POLLS_PER_SOURCE,
            head_timeout: HTTP_HEAD_TIMEOUT,
            idle_timeout: HTTP_IDLE_TIMEOUT,
            body_timeout: HTTP_BODY_TIMEOUT,
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
    let shared = Rc::new(Shared {
        table: RefCell::new(Table::new(Limits::of(&config))),
        refusals: RefCell::new(RefusalLog::default()),
        listener: listener.get_ref().local_addr().ok(),
    });
    // Accepted connections inherit TCP_NODELAY (Linux copies it from the listener): one
    // setsockopt here rather than one per connection.
    if let Err(error) = socket2::SockRef::from(listener.get_ref()).set_tcp_nodelay(true) {
        log::debug!("http: TCP_NODELAY on the listener: {error}");
    }
    // A listener bound to one address tells each connection's local address without asking.
    let local = shared
        .listener
        .filter(|address| !address.ip().is_unspecified());
    let config = Rc::new(config);
    loop {
        // A flood of connections to refuse must not starve those being served.
        future::yield_now().await;
        let (stream, peer) = match listener.read_with(accept_nonblocking).await {
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
        // The first request's head is due this long after the accept, waiting for a slot
        // included.
        let head_deadline = Instant::now() + config.head_timeout;
        let source = Source::of(peer.ip());
        let notice = Rc::new(Notice::default());
        let admitted = shared
            .table
            .borrow_mut()
            .admit(Instant::now(), source, Rc::clone(&notice));
        let (id, queued) = match admitted {
            Ok(Admitted::Slot { id, evicted }) => {
                if let Some(evicted) = evicted {
                    log::debug!(
                        "http {peer}: every slot taken: a connection of the source holding \
                         the most gives its own"
                    );
                    evicted.raise();
                }
                (id, None)
            }
            Ok(Admitted::Queued { id, because }) => (id, Some(because)),
            Err(refusal) => {
                // Dropping the stream closes it, unread.
                shared.log_refusal(source, refusal);
                continue;
            }
        };
        let slot = Slot {
            shared: Rc::clone(&shared),
            id,
            source,
            notice,
        };
        let handler = Rc::clone(&handler);
        let config = Rc::clone(&config);
        executor
            .spawn(async move {
                if let Some(because) = queued {
                    if !slot.wait_for_slot(head_deadline).await {
                        slot.shared.log_refusal(source, because);
                        return;
                    }
                }
                let addresses = (peer, local);
                serve_connection(stream, addresses, &*handler, &config, slot, head_deadline).await;
            })
            .detach();
    }
}

/// Accepts one connection, already non-blocking and close-on-exec (`accept4`): the
/// connection is registered with the reactor only if it ever has to wait.
fn accept_nonblocking(listener: &TcpListener) -> io::Result<(TcpStream, SocketAddr)> {
    let (socket, peer) =
        socket2::SockRef::from(listener).accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)?;
    let peer = peer
        .as_socket()
        .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    Ok((TcpStream::from(socket), peer))
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

// ---- Who holds what: the admission policy (pure: time is passed in) ----------------------

/// Who a connection is counted against: an IPv4 address, or the /64 of an IPv6 address (a
/// host is usually given a whole /64). An IPv4-mapped IPv6 address is its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Source(IpAddr);

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(_) => Source(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => Source(IpAddr::V6(Ipv6Addr::from(
                    u128::from(v6) & !u128::from(u64::MAX),
                ))),
            },
        }
    }
}

impl core::fmt::Display for Source {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// Where a connection is, as the admission policy sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Accepted, waiting unread for a slot.
    Queued,
    /// Waiting for the first byte of a request (new or kept alive).
    Idle,
    /// Receiving a request's head or body.
    Receiving,
    /// Its request is being answered: handled, then written.
    Answering,
    /// Waiting for a long poll's answer: holds a long poll, not a connection slot.
    LongPoll,
    /// Answered for the last time, closing.
    Closing,
}

impl Phase {
    /// Whether it holds a connection slot.
    fn holds_slot(self) -> bool {
        !matches!(self, Phase::Queued | Phase::LongPoll)
    }

    /// The order in which connections give their slot to a newcomer (lowest first); `None`
    /// for never.
    fn eviction_rank(self) -> Option<u8> {
        match self {
            Phase::Closing => Some(0),
            Phase::Idle => Some(1),
            Phase::Receiving => Some(2),
            Phase::Queued | Phase::Answering | Phase::LongPoll => None,
        }
    }
}

/// The counts the policy applies, each at least 1: those of [`ServerConfig`], and the
/// waiting room's, derived from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Limits {
    connections: usize,
    connections_per_source: usize,
    long_polls: usize,
    long_polls_per_source: usize,
    /// Connections waiting for a slot, in all: as many as the slots.
    queued: usize,
    /// Connections of one source waiting for a slot: twice its share of slots, so that a
    /// burst (a control point subscribing to every service of a host at once) waits rather
    /// than fails.
    queued_per_source: usize,
}

impl Limits {
    fn of(config: &ServerConfig) -> Limits {
        let connections = config.max_connections.max(1);
        let connections_per_source = config.max_connections_per_source.max(1);
        Limits {
            connections,
            connections_per_source,
            long_polls: config.max_long_polls.max(1),
            long_polls_per_source: config.max_long_polls_per_source.max(1),
            queued: connections,
            queued_per_source: 2 * connections_per_source,
        }
    }
}

/// Why a connection or a long poll is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The source holds as many connections as one source may.
    SourceConnections,
    /// Every slot is taken and none can be given to this source.
    Connections,
    /// The source has as many long polls waiting as one source may: 429.
    SourceLongPolls,
    /// The server has as many long polls waiting as it takes: 503.
    LongPolls,
}

impl Refusal {
    /// For the log line: what was refused and why.
    fn describe(self) -> &'static str {
        match self {
            Refusal::SourceConnections => "connection refused: the source's share of connections",
            Refusal::Connections => "connection refused: every connection slot taken",
            Refusal::SourceLongPolls => "long poll refused (429): the source's share of long polls",
            Refusal::LongPolls => "long poll refused (503): every long poll taken",
        }
    }
}

/// What [`Table::admission`] decides for a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A free slot.
    Admit,
    /// The slot of the connection with this id.
    Evict(u64),
    /// No slot now.
    Refuse(Refusal),
}

/// What [`Table::admit`] did with a new connection.
#[derive(Debug, PartialEq, Eq)]
enum Admitted<T> {
    /// It has a slot: a free one, or that of the connection whose payload is `evicted`
    /// (taken out of the table).
    Slot { id: u64, evicted: Option<T> },
    /// It waits for one ([`Table::promote`] gives it one), refused `because` until then.
    Queued { id: u64, because: Refusal },
}

/// One connection in the [`Table`].
#[derive(Debug)]
struct Entry<T> {
    id: u64,
    source: Source,
    phase: Phase,
    /// When it entered its phase.
    since: Instant,
    /// What the owner keeps with it (how to tell the connection it gained or lost a slot).
    payload: T,
}

/// The connections of one listener and their phases: who holds a slot or a long poll, who
/// waits for a slot, who gives one up.
#[derive(Debug)]
struct Table<T> {
    limits: Limits,
    entries: Vec<Entry<T>>,
    next_id: u64,
}

impl<T: Clone> Table<T> {
    fn new(limits: Limits) -> Table<T> {
        Table {
            limits,
            entries: Vec::new(),
            next_id: 0,
        }
    }

    /// The connections holding a slot.
    fn slots(&self) -> impl Iterator<Item = &Entry<T>> {
        self.entries.iter().filter(|e| e.phase.holds_slot())
    }

    fn slots_of(&self, source: Source) -> usize {
        self.slots().filter(|e| e.source == source).count()
    }

    fn in_phase(&self, phase: Phase) -> impl Iterator<Item = &Entry<T>> {
        self.entries.iter().filter(move |e| e.phase == phase)
    }

    fn entry(&mut self, id: u64) -> Option<&mut Entry<T>> {
        self.entries.iter_mut().find(|e| e.id == id)
    }

    /// The policy for a new connection from `source` (see the module documentation).
    fn admission(&self, source: Source) -> Admission {
        let held = self.slots_of(source);
        if held >= self.limits.connections_per_source {
            return Admission::Refuse(Refusal::SourceConnections);
        }
        if self.slots().count() < self.limits.connections {
            return Admission::Admit;
        }
        let slots: Vec<&Entry<T>> = self.slots().collect();
        let others = slots
            .iter()
            .enumerate()
            .filter(|(i, e)| {
                e.source != source && !slots.iter().take(*i).any(|p| p.source == e.source)
            })
            .count();
        let share = self.limits.connections / (others + 1);
        if held >= share {
            return Admission::Refuse(Refusal::Connections);
        }
        slots
            .iter()
            .filter_map(|e| {
                let rank = e.phase.eviction_rank()?;
                let count = self.slots_of(e.source);
                (count > share).then_some((core::cmp::Reverse(count), rank, e.since, e.id))
            })
            .min()
            .map_or(Admission::Refuse(Refusal::Connections), |(.., id)| {
                Admission::Evict(id)
            })
    }

    /// Takes a new connection from `source` in: in a slot, idle, or in the waiting room if
    /// there is room there; else the refusal.
    fn admit(&mut self, now: Instant, source: Source, payload: T) -> Result<Admitted<T>, Refusal> {
        let (phase, admitted) = match self.admission(source) {
            Admission::Admit => (
                Phase::Idle,
                Admitted::Slot {
                    id: 0,
                    evicted: None,
                },
            ),
            Admission::Evict(victim) => {
                let evicted = self.remove(victim);
                (Phase::Idle, Admitted::Slot { id: 0, evicted })
            }
            Admission::Refuse(because) => {
                let waiting = self.in_phase(Phase::Queued);
                let (all, own) = waiting.fold((0, 0), |(all, own), e| {
                    (all + 1, own + usize::from(e.source == source))
                });
                if all >= self.limits.queued || own >= self.limits.queued_per_source {
                    return Err(because);
                }
                (Phase::Queued, Admitted::Queued { id: 0, because })
            }
        };
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push(Entry {
            id,
            source,
            phase,
            since: now,
            payload,
        });
        Ok(match admitted {
            Admitted::Slot { evicted, .. } => Admitted::Slot { id, evicted },
            Admitted::Queued { because, .. } => Admitted::Queued { id, because },
        })
    }

    /// Gives a free slot to the connection waiting longest that may have it, idle: its
    /// payload, or `None` when there is none. Call it until `None` after slots were freed.
    fn promote(&mut self, now: Instant) -> Option<T> {
        let id = self
            .in_phase(Phase::Queued)
            .filter(|e| self.admission(e.source) == Admission::Admit)
            .min_by_key(|e| (e.since, e.id))?
            .id;
        let entry = self.entry(id)?;
        entry.phase = Phase::Idle;
        entry.since = now;
        Some(entry.payload.clone())
    }

    /// Moves connection `id` to `phase` (not [`Phase::LongPoll`]: see
    /// [`Table::start_long_poll`]); false when it is no longer in the table (it gave its slot
    /// up). A connection counted as a long poll stays one until it is removed or
    /// [`Table::end_long_poll`] finds it a slot.
    fn enter(&mut self, id: u64, phase: Phase, now: Instant) -> bool {
        let Some(entry) = self.entry(id) else {
            return false;
        };
        if entry.phase != phase && entry.phase != Phase::LongPoll {
            entry.phase = phase;
            entry.since = now;
        }
        true
    }

    /// Counts connection `id`, whose request is answered by a long poll, as a long poll
    /// rather than in a slot, if its source and the server have one left.
    fn start_long_poll(&mut self, id: u64, now: Instant) -> Result<(), Refusal> {
        let Some(source) = self.entry(id).map(|e| e.source) else {
            return Err(Refusal::LongPolls);
        };
        let polls = self.in_phase(Phase::LongPoll);
        let (all, own) = polls.fold((0, 0), |(all, own), e| {
            (all + 1, own + usize::from(e.source == source))
        });
        if own >= self.limits.long_polls_per_source {
            return Err(Refusal::SourceLongPolls);
        }
        if all >= self.limits.long_polls {
            return Err(Refusal::LongPolls);
        }
        if let Some(entry) = self.entry(id) {
            entry.phase = Phase::LongPoll;
            entry.since = now;
        }
        Ok(())
    }

    /// The long poll of connection `id` is answered: back to a slot, answering, when there
    /// is one free for its source (true); else it stays counted as a long poll until it is
    /// closed, which its answer must say (false). Nobody is evicted for it, and it goes
    /// before those waiting.
    fn end_long_poll(&mut self, id: u64, now: Instant) -> bool {
        let Some(source) = self.entry(id).map(|e| e.source) else {
            return false;
        };
        let room = self.slots().count() < self.limits.connections
            && self.slots_of(source) < self.limits.connections_per_source;
        if let Some(entry) = self.entry(id).filter(|_| room) {
            entry.phase = Phase::Answering;
            entry.since = now;
        }
        room
    }

    /// Takes connection `id` out, giving its payload back.
    fn remove(&mut self, id: u64) -> Option<T> {
        let index = self.entries.iter().position(|e| e.id == id)?;
        Some(self.entries.swap_remove(index).payload)
    }
}

/// Which sources' refusals were logged when, so that a source's refusals of one kind are
/// logged once and then at most once per [`HTTP_REFUSAL_LOG_INTERVAL`], with how many were
/// not logged meanwhile: an attacker making thousands of connections makes a line a minute.
/// Remembers [`HTTP_REFUSAL_LOG_SOURCES`] at most, forgetting the oldest line first.
#[derive(Debug, Default)]
struct RefusalLog {
    entries: Vec<Logged>,
}

#[derive(Debug)]
struct Logged {
    source: Source,
    refusal: Refusal,
    /// When its last line was written.
    at: Instant,
    /// Refusals since, not logged.
    unlogged: u64,
}

impl RefusalLog {
    /// Notes a refusal at `now`: `Some(count)` when a line is due, `count` being this
    /// source's refusals of this kind not logged before it.
    fn note(&mut self, now: Instant, source: Source, refusal: Refusal) -> Option<u64> {
        if let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| e.source == source && e.refusal == refusal)
        {
            if now.duration_since(entry.at) < HTTP_REFUSAL_LOG_INTERVAL {
                entry.unlogged += 1;
                return None;
            }
            entry.at = now;
            return Some(core::mem::take(&mut entry.unlogged));
        }
        let entry = Logged {
            source,
            refusal,
            at: now,
            unlogged: 0,
        };
        if self.entries.len() < HTTP_REFUSAL_LOG_SOURCES {
            self.entries.push(entry);
        } else if let Some(oldest) = self.entries.iter_mut().min_by_key(|e| e.at) {
            *oldest = entry;
        }
        Some(0)
    }
}

// ---- The server's side of the policy ------------------------------------------------------

/// What the connections of one listener share.
struct Shared {
    table: RefCell<Table<Rc<Notice>>>,
    refusals: RefCell<RefusalLog>,
    /// The listener's address, for log lines.
    listener: Option<SocketAddr>,
}

impl Shared {
    fn log_refusal(&self, source: Source, refusal: Refusal) {
        let Some(unlogged) = self
            .refusals
            .borrow_mut()
            .note(Instant::now(), source, refusal)
        else {
            return;
        };
        let listener = self
            .listener
            .map_or_else(String::new, |address| format!(" on {address}"));
        let what = refusal.describe();
        if unlogged == 0 {
            log::warn!(
                "http{listener}: {source}: {what} (further refusals of this source logged once \
                 a minute)"
            );
        } else {
            log::warn!("http{listener}: {source}: {what}, {unlogged} more since the last line");
        }
    }

    /// Gives the slots freed to connections waiting for one.
    fn promote(&self) {
        loop {
            let promoted = self.table.borrow_mut().promote(Instant::now());
            match promoted {
                Some(notice) => notice.raise(),
                None => return,
            }
        }
    }
}

/// How the server tells a connection's task that it gained a slot (while waiting for one)
/// or lost it (to a newcomer).
#[derive(Default)]
struct Notice {
    raised: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notice {
    fn raise(&self) {
        self.raised.set(true);
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    fn is_raised(&self) -> bool {
        self.raised.get()
    }

    /// Completes once raised, and lowers it.
    async fn wait(&self) {
        std::future::poll_fn(|context| {
            if self.raised.replace(false) {
                return Poll::Ready(());
            }
            let waker = match self.waker.take() {
                Some(waker) if waker.will_wake(context.waker()) => waker,
                _ => context.waker().clone(),
            };
            self.waker.set(Some(waker));
            Poll::Pending
        })
        .await;
    }
}

/// A connection's entry in its listener's [`Table`], taken out when dropped.
struct Slot {
    shared: Rc<Shared>,
    id: u64,
    source: Source,
    notice: Rc<Notice>,
}

impl Slot {
    /// Waits, unread, for a slot until `deadline`; false when none came.
    async fn wait_for_slot(&self, deadline: Instant) -> bool {
        future::or(
            async {
                self.notice.wait().await;
                true
            },
            async {
                Timer::at(deadline).await;
                false
            },
        )
        .await
    }

    /// Moves to `phase`; false when the connection has lost its slot.
    fn enter(&self, phase: Phase) -> bool {
        let kept = self
            .shared
            .table
            .borrow_mut()
            .enter(self.id, phase, Instant::now());
        kept && !self.notice.is_raised()
    }

    /// Whether the connection has lost its slot to a newcomer.
    fn is_evicted(&self) -> bool {
        self.notice.is_raised()
    }

    /// Completes when the connection loses its slot to a newcomer.
    async fn evicted(&self) {
        self.notice.wait().await;
        // Kept raised: the connection closes and [`Slot::enter`] must keep saying so.
        self.notice.raised.set(true);
    }

    fn start_long_poll(&self) -> Result<(), Refusal> {
        let started = self
            .shared
            .table
            .borrow_mut()
            .start_long_poll(self.id, Instant::now());
        match started {
            Ok(()) => self.shared.promote(),
            Err(refusal) => self.shared.log_refusal(self.source, refusal),
        }
        started
    }

    fn end_long_poll(&self) -> bool {
        self.shared
            .table
            .borrow_mut()
            .end_long_poll(self.id, Instant::now())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.shared.table.borrow_mut().remove(self.id);
        self.shared.promote();
    }
}

/// The answer to a long poll refused for `refusal`.
fn long_poll_refusal(refusal: Refusal) -> Response {
    let (status, body): (u16, &[u8]) = match refusal {
        Refusal::SourceLongPolls => (
            429,
            b"{\"error\":\"too many long polls waiting from this address\"}",
        ),
        _ => (503, b"{\"error\":\"too many long polls waiting\"}"),
    };
    let mut response = Response::with_body(status, "application/json", body.to_vec());
    response
        .headers
        .push(("Retry-After", HTTP_LONG_POLL_RETRY_AFTER.to_owned()));
    response
}

// ---- One connection -----------------------------------------------------------------------

/// Serves requests on one connection until it closes, fails, reaches its limits or gives its
/// slot up. The first request's head is due by `head_deadline`. `addresses` are the peer's
/// and, when the listener knows it, the connection's local address.
async fn serve_connection(
    stream: TcpStream,
    addresses: (SocketAddr, Option<SocketAddr>),
    handler: &dyn Handler,
    config: &ServerConfig,
    slot: Slot,
    head_deadline: Instant,
) {
    let (peer, local) = addresses;
    let local = match local.map_or_else(|| stream.local_addr(), Ok) {
        Ok(local) => local,
        Err(error) => {
            log::debug!("http {peer}: local address: {error}");
            return;
        }
    };
    let mut connection = Connection {
        stream: Stream::Plain(stream),
        peer,
        local,
        deadline: Deadline::at(head_deadline),
        config,
        slot,
    };
    let mut buffer = ReadBuffer::new();
    let limit = config.max_requests_per_connection.max(1);
    for turn in 1..=limit {
        match connection.serve_one(handler, &mut buffer, turn).await {
            Ok(Next::KeepAlive) => continue,
            Ok(Next::Close) => break,
            Ok(Next::Drop | Next::Done) => return,
            Err(error) => {
                log::debug!("http {peer}: {error}");
                return;
            }
        }
    }
    connection.linger(&mut buffer).await;
}

/// A connection's socket: used directly while it never had to wait, registered with the
/// reactor from the first time it does. A request that arrives whole with the connection and
/// whose answer fits the socket's buffer is served without the reactor: `accept4`, `recvfrom`,
/// `writev`, `close`.
enum Stream {
    Plain(TcpStream),
    Registered(Async<TcpStream>),
    /// Registering failed: the connection is over.
    Lost,
}

impl Stream {
    fn socket(&self) -> io::Result<&TcpStream> {
        match self {
            Stream::Plain(stream) => Ok(stream),
            Stream::Registered(stream) => Ok(stream.get_ref()),
            Stream::Lost => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    /// The socket registered with the reactor (registering it the first time).
    fn registered(&mut self) -> io::Result<&Async<TcpStream>> {
        if let Stream::Plain(_) = self {
            let Stream::Plain(stream) = std::mem::replace(self, Stream::Lost) else {
                return Err(io::Error::from(io::ErrorKind::NotConnected));
            };
            // Accepted non-blocking: no need to set it again.
            *self = Stream::Registered(Async::new_nonblocking(stream)?);
        }
        match self {
            Stream::Registered(stream) => Ok(stream),
            _ => Err(io::Error::from(io::ErrorKind::NotConnected)),
        }
    }

    fn is_registered(&self) -> bool {
        matches!(self, Stream::Registered(_))
    }
}

/// One read that does not wait: `None` when nothing is there yet.
fn try_read(socket: &TcpStream, into: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        match (&*socket).read(into) {
            Ok(count) => return Ok(Some(count)),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
}

/// Reads once, waiting until something is there (the client closing is 0).
async fn read_ready(stream: &Async<TcpStream>, into: &mut [u8]) -> io::Result<usize> {
    loop {
        stream.readable().await?;
        if let Some(count) = try_read(stream.get_ref(), into)? {
            return Ok(count);
        }
    }
}

/// A connection's deadline on one reactor timer that is moved lazily. Moving an armed timer
/// wakes the reactor (one write to its eventfd, one more pass of its loop), and with
/// keep-alive the deadline moves twice a request, always later: at the end of an answer and at
/// the next request's first byte. So a later deadline is only noted, and the timer, still
/// armed at the earlier one, is moved to it when it fires; only an earlier deadline moves the
/// timer at once.
struct Deadline {
    timer: Timer,
    /// When the timer fires, never after `due`; `None` once it has fired for good.
    armed: Option<Instant>,
    /// When the phase's time is up.
    due: Instant,
}

impl Deadline {
    fn at(due: Instant) -> Deadline {
        Deadline {
            timer: Timer::at(due),
            armed: Some(due),
            due,
        }
    }

    fn set(&mut self, due: Instant) {
        self.due = due;
        if self.armed.is_none_or(|armed| due < armed) {
            self.arm(due);
        }
    }

    fn arm(&mut self, at: Instant) {
        self.timer.set_at(at);
        self.armed = Some(at);
    }

    /// Waits until the deadline has passed.
    async fn passed(&mut self) {
        if self.armed.is_none() {
            self.arm(self.due);
        }
        loop {
            (&mut self.timer).await;
            if Instant::now() >= self.due {
                self.armed = None;
                return;
            }
            self.arm(self.due);
        }
    }
}

/// What to do with a connection after one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Read the next request.
    KeepAlive,
    /// An answer said `Connection: close`, or the connection gave its slot up: stop
    /// writing, drain, close.
    Close,
    /// The client went away or never said anything: just close.
    Drop,
    /// The last answer is written, the client said it closes too (`Connection: close`, or
    /// HTTP/1.0 without keep-alive: RFC 9112 section 9.6, it sends no further request) and
    /// nothing more of it was read: close at once, which sends FIN after the answer; no
    /// lingering is needed when nothing is left unread.
    Done,
}

/// The outcome of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// This many bytes, at least one.
    Bytes(usize),
    /// The client closed its side.
    Closed,
    /// The armed timer fired first.
    TimedOut,
    /// The connection gave its slot up.
    Evicted,
}

/// Why a body was not read.
enum Cut {
    /// Refuse with this status.
    Status(u16),
    /// The client went away.
    Gone,
    /// The connection gave its slot up.
    Evicted,
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
    stream: Stream,
    peer: SocketAddr,
    local: SocketAddr,
    /// The deadline of the current read or write phase: one for the connection's whole life.
    deadline: Deadline,
    config: &'c ServerConfig,
    slot: Slot,
}

impl Connection<'_> {
    /// Reads, answers and writes the `turn`th request (from 1).
    async fn serve_one(
        &mut self,
        handler: &dyn Handler,
        buffer: &mut ReadBuffer,
        turn: usize,
    ) -> io::Result<Next> {
        let last = turn >= self.config.max_requests_per_connection.max(1);
        // Nothing of this request yet: the connection is idle, and one kept alive gets the
        // idle timeout until the first byte, then the head timeout.
        let mut idle = buffer.filled == 0;
        let phase = if idle { Phase::Idle } else { Phase::Receiving };
        if !self.slot.enter(phase) {
            return Ok(Next::Close);
        }
        // The first head's deadline is armed from the accept.
        if turn > 1 {
            let wait = if idle {
                self.config.idle_timeout
            } else {
                self.config.head_timeout
            };
            self.deadline.set(Instant::now() + wait);
        }
        let end = loop {
            if let Some(end) = buffer.head_end() {
                break end;
            }
            if buffer.is_full() {
                log::debug!("http {}: head over {} bytes", self.peer, buffer.filled);
                return self.refuse(431).await;
            }
            match self.read_some(buffer.spare()).await? {
                Read::Bytes(count) => {
                    buffer.filled += count;
                    if idle {
                        idle = false;
                        self.slot.enter(Phase::Receiving);
                        if turn > 1 {
                            self.deadline.set(Instant::now() + self.config.head_timeout);
                        }
                    }
                }
                Read::Closed => return Ok(Next::Drop),
                Read::TimedOut if buffer.filled > 0 => {
                    log::debug!("http {}: request head not in within the timeout", self.peer);
                    return self.refuse(408).await;
                }
                Read::TimedOut => return Ok(Next::Drop),
                Read::Evicted => return Ok(Next::Close),
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
        let client_closes = !head.keep_alive();
        let mut keep_alive = !client_closes && !last;
        let version = head.version;
        let head_only = head.method == "HEAD";

        if (head.method == "GET" || head_only) && framing == Framing::Length(0) {
            if let Some((content_type, body)) = handler.lookup(&head) {
                buffer.consume(end);
                // Evicted meanwhile: this answer is the last.
                keep_alive &= self.slot.enter(Phase::Answering);
                let headers = [("Content-Type", content_type)];
                let body = (!head_only).then_some(&*body).ok_or(body.len());
                return self
                    .respond(200, &headers, body, keep_alive, version)
                    .await
                    .map(|()| next(keep_alive, client_closes, buffer));
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

        let body_deadline = Instant::now() + self.config.body_timeout;
        if expect_continue && framing != Framing::Length(0) {
            self.write_all(&[b"HTTP/1.1 100 Continue\r\n\r\n"]).await?;
        }
        self.deadline.set(body_deadline);
        let body = match framing {
            Framing::Length(length) => self.read_body(buffer, length).await?,
            Framing::Chunked => self.read_chunked(buffer).await?,
        };
        request.body = match body {
            Ok(body) => body,
            Err(Cut::Status(status)) => return self.refuse(status).await,
            Err(Cut::Gone) => return Ok(Next::Drop),
            Err(Cut::Evicted) => return Ok(Next::Close),
        };

        keep_alive &= self.slot.enter(Phase::Answering);
        let response = match handler.answer(request) {
            Answer::Shared { content_type, body } => {
                let headers = [("Content-Type", content_type)];
                let body = (!head_only).then_some(&*body).ok_or(body.len());
                self.respond(200, &headers, body, keep_alive, version)
                    .await?;
                return Ok(next(keep_alive, client_closes, buffer));
            }
            Answer::Now(response) => response,
            Answer::Later(future) => future.await,
            Answer::LongPoll(mut future) => match future::poll_once(&mut future).await {
                Some(response) => response,
                None => match self.slot.start_long_poll() {
                    Err(refusal) => long_poll_refusal(refusal),
                    Ok(()) => match self.until_answered(future, buffer).await {
                        Some(response) => {
                            keep_alive &= self.slot.end_long_poll();
                            response
                        }
                        None => {
                            log::debug!("http {}: gone before its long poll ended", self.peer);
                            return Ok(Next::Drop);
                        }
                    },
                },
            },
        };
        self.respond_owned(response, head_only, keep_alive, version)
            .await?;
        Ok(next(keep_alive, client_closes, buffer))
    }

    /// Awaits a long poll's `answer` while watching the socket: `None` as soon as the client
    /// closes or resets the connection, the answer dropped. Bytes the client sends meanwhile
    /// (a pipelined request) are kept in `buffer`, up to its size.
    async fn until_answered(
        &mut self,
        answer: Pin<Box<dyn Future<Output = Response>>>,
        buffer: &mut ReadBuffer,
    ) -> Option<Response> {
        let Ok(stream) = self.stream.registered() else {
            return None;
        };
        future::or(async { Some(answer.await) }, async {
            loop {
                if buffer.is_full() {
                    // Nothing more can be taken in: the answer's own deadline ends the wait.
                    future::pending::<()>().await;
                }
                match read_ready(stream, buffer.spare()).await {
                    Ok(0) | Err(_) => return None,
                    Ok(count) => buffer.filled += count,
                }
            }
        })
        .await
    }

    /// Writes a handler's [`Response`] and runs its `after_write`.
    async fn respond_owned(
        &mut self,
        mut response: Response,
        head_only: bool,
        keep_alive: bool,
        version: Version,
    ) -> io::Result<()> {
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
        Ok(())
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

    /// Reads a body of `length` bytes.
    async fn read_body(
        &mut self,
        buffer: &mut ReadBuffer,
        length: usize,
    ) -> io::Result<Result<Vec<u8>, Cut>> {
        let mut body = vec![0; length];
        let mut got = length.min(buffer.filled);
        if let (Some(dst), Some(src)) = (body.get_mut(..got), buffer.data().get(..got)) {
            dst.copy_from_slice(src);
        }
        buffer.consume(got);
        while got < length {
            let spare = body.get_mut(got..).unwrap_or_default();
            match self.read_some(spare).await? {
                Read::Bytes(count) => got += count,
                other => return Ok(Err(cut(other))),
            }
        }
        Ok(Ok(body))
    }

    /// Reads and decodes a chunked body, leaving what follows it in `buffer`.
    async fn read_chunked(&mut self, buffer: &mut ReadBuffer) -> io::Result<Result<Vec<u8>, Cut>> {
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
                    return Ok(Err(Cut::Status(status)));
                }
            }
            match self.read_some(buffer.spare()).await? {
                Read::Bytes(count) => buffer.filled += count,
                other => return Ok(Err(cut(other))),
            }
        }
    }

    /// One read, unless the armed timer fires or the connection gives its slot up first.
    async fn read_some(&mut self, into: &mut [u8]) -> io::Result<Read> {
        let Connection {
            stream,
            deadline,
            slot,
            ..
        } = self;
        if slot.is_evicted() {
            return Ok(Read::Evicted);
        }
        let got = |count: usize| {
            if count == 0 {
                Read::Closed
            } else {
                Read::Bytes(count)
            }
        };
        // A connection that never waited reads at once: its first request usually came with
        // it. Once registered, it waits for readiness first: a kept-alive client sends its
        // next request only after reading the answer.
        if !stream.is_registered() {
            if let Some(count) = try_read(stream.socket()?, into)? {
                return Ok(got(count));
            }
        }
        let reader = stream.registered()?;
        let read = async { read_ready(reader, into).await.map(got) };
        let timed_out = async {
            deadline.passed().await;
            Ok(Read::TimedOut)
        };
        let evicted = async {
            slot.evicted().await;
            Ok(Read::Evicted)
        };
        future::or(read, future::or(timed_out, evicted)).await
    }

    /// Writes `parts` in order within the write timeout, gathered into one `writev` when the
    /// socket takes them all at once.
    async fn write_all(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let mut written = write_some(self.stream.socket()?, parts, 0)?;
        let total: usize = parts.iter().map(|part| part.len()).sum();
        if written >= total {
            return Ok(());
        }
        self.deadline
            .set(Instant::now() + self.config.write_timeout);
        let Connection {
            stream, deadline, ..
        } = self;
        let writer = stream.registered()?;
        future::or(
            async {
                while written < total {
                    writer.writable().await?;
                    written = write_some(writer.get_ref(), parts, written)?;
                }
                Ok(())
            },
            async {
                deadline.passed().await;
                Err(io::Error::from(io::ErrorKind::TimedOut))
            },
        )
        .await
    }

    /// Closes after a final answer: no more writing (FIN), then what the client still sends
    /// is read and dropped until it closes, for [`HTTP_LINGER_TIMEOUT`] at most, so that its
    /// unread bytes do not make our kernel reset the connection (and drop answers it has not
    /// delivered yet) before the client has read them. Bounded by time, not bytes: past the
    /// deadline the connection is closed whatever is still coming.
    async fn linger(&mut self, buffer: &mut ReadBuffer) {
        self.slot.enter(Phase::Closing);
        let shut = self
            .stream
            .socket()
            .and_then(|socket| socket.shutdown(Shutdown::Write));
        if shut.is_err() {
            return;
        }
        self.deadline.set(Instant::now() + HTTP_LINGER_TIMEOUT);
        let Connection {
            stream, deadline, ..
        } = self;
        let Ok(reader) = stream.registered() else {
            return;
        };
        let sink = buffer.bytes.as_mut_slice();
        let drained =
            async { while read_ready(reader, sink).await.is_ok_and(|count| count > 0) {} };
        future::or(drained, deadline.passed()).await;
    }
}

/// Why a body read stopped, from a read that brought no bytes.
fn cut(read: Read) -> Cut {
    match read {
        Read::TimedOut => Cut::Status(408),
        Read::Evicted => Cut::Evicted,
        Read::Bytes(_) | Read::Closed => Cut::Gone,
    }
}

/// What follows an answer: the next request, or the close; an immediate one when the client
/// said it closes too and nothing more of it was read.
fn next(keep_alive: bool, client_closes: bool, buffer: &ReadBuffer) -> Next {
    if keep_alive {
        Next::KeepAlive
    } else if client_closes && buffer.filled == 0 {
        Next::Done
    } else {
        Next::Close
    }
}

/// Writes what is left of `parts` after the first `written` bytes, in one `writev`, without
/// waiting; returns how many bytes are written in all.
fn write_some(socket: &TcpStream, parts: &[&[u8]], written: usize) -> io::Result<usize> {
    let mut skip = written;
    let mut slices: [io::IoSlice<'_>; 4] = [io::IoSlice::new(&[]); 4];
    let mut count = 0;
    for part in parts {
        if skip >= part.len() {
            skip -= part.len();
            continue;
        }
        let (Some(slot), Some(rest)) = (slices.get_mut(count), part.get(skip..)) else {
            break;
        };
        *slot = io::IoSlice::new(rest);
        skip = 0;
        count += 1;
    }
    loop {
        match (&*socket).write_vectored(slices.get(..count).unwrap_or_default()) {
            Ok(0) if count > 0 => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(sent) => return Ok(written + sent),
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(written),
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::mem::MaybeUninit;
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use std::thread::JoinHandle;
    use wire_http::ResponseStatus;

    const SHARED: &[u8] = b"<root>kept description</root>";
    const WAIT: Duration = Duration::from_secs(5);
    /// Size of the `/big` answer.
    const BIG: usize = 512 * 1024;

    /// What the test handler saw when `after_write` ran: bytes waiting on the client socket.
    type Seen = Arc<Mutex<Option<usize>>>;
    type Peer = Arc<Mutex<Option<TcpStream>>>;

    struct TestHandler {
        shared: Arc<[u8]>,
        client: Peer,
        seen: Seen,
        /// Long polls whose future was dropped, answered or not.
        polls_dropped: Arc<AtomicUsize>,
    }

    /// Counts a long poll's future out when dropped.
    struct PollGuard(Arc<AtomicUsize>);

    impl Drop for PollGuard {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
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
                ("GET", "/big") => Answer::Now(Response::with_body(
                    200,
                    "application/octet-stream",
                    vec![b'b'; BIG],
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
                // A long poll: answers after the milliseconds of its query, else 30 s.
                ("GET", "/poll") => {
                    let wait = request.query.and_then(|q| q.parse().ok()).unwrap_or(30_000);
                    let guard = PollGuard(Arc::clone(&self.polls_dropped));
                    Answer::LongPoll(Box::pin(async move {
                        let _guard = guard;
                        Timer::after(Duration::from_millis(wait)).await;
                        Response::with_body(200, "text/plain", b"polled".to_vec())
                    }))
                }
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
        polls_dropped: Arc<AtomicUsize>,
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
        // Tests open connections one after another from one address, faster than the server
        // may notice the previous ones close: the per-source limits stay out of their way.
        ServerConfig {
            max_connections: 8,
            max_connections_per_source: 8,
            max_long_polls: 8,
            max_long_polls_per_source: 8,
            head_timeout: Duration::from_secs(3),
            idle_timeout: Duration::from_secs(3),
            body_timeout: Duration::from_secs(3),
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
        let polls_dropped = Arc::new(AtomicUsize::new(0));
        let (handler_client, handler_seen) = (Arc::clone(&client), Arc::clone(&seen));
        let handler_polls = Arc::clone(&polls_dropped);
        let thread = std::thread::spawn(move || {
            let executor = Rc::new(LocalExecutor::new());
            let handler: Rc<dyn Handler> = Rc::new(TestHandler {
                shared: Arc::from(SHARED),
                client: handler_client,
                seen: handler_seen,
                polls_dropped: handler_polls,
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
            polls_dropped,
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
            Client::connect_from(address, Ipv4Addr::LOCALHOST)
        }

        /// From `source`, one of the loopback addresses: another source for the server.
        fn connect_from(address: SocketAddr, source: Ipv4Addr) -> Client {
            Client::connect_with(address, source, None)
        }

        /// From `source`, with a receive buffer of `receive_buffer` bytes if given.
        fn connect_with(
            address: SocketAddr,
            source: Ipv4Addr,
            receive_buffer: Option<usize>,
        ) -> Client {
            let socket =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            if let Some(size) = receive_buffer {
                socket.set_recv_buffer_size(size).unwrap();
            }
            socket.bind(&SocketAddr::from((source, 0)).into()).unwrap();
            socket.connect(&address.into()).unwrap();
            let stream = TcpStream::from(socket);
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
        // The read and write timeouts bound the client's sending and taking, not the handler
        // (nor a long poll): a SOAP action whose backend call (900 ms) outlasts all of them is
        // still answered, and the connection serves the next requests. They are sent together,
        // so no pause of this thread on a loaded machine counts as the client's idleness.
        let mut quick = config();
        quick.head_timeout = Duration::from_millis(400);
        quick.idle_timeout = Duration::from_millis(400);
        quick.body_timeout = Duration::from_millis(400);
        quick.write_timeout = Duration::from_millis(400);
        let server = start(quick);
        let mut client = Client::connect(server.address);
        let requests = [
            format!(
                "POST /slow HTTP/1.1\r\nHost: {}\r\nContent-Length: 2\r\n\r\nhi",
                server.address
            ),
            get(&server, "/query?next"),
            get(&server, "/poll?900"),
            get(&server, "/query?after"),
        ];
        client.send(requests.concat().as_bytes());
        let reply = client.response();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"slow"[..]));
        assert_eq!(client.response().body, b"next");
        assert_eq!(client.response().body, b"polled");
        assert_eq!(client.response().body, b"after");
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
        slow.head_timeout = Duration::from_millis(300);
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
        quick.head_timeout = Duration::from_millis(300);
        quick.idle_timeout = Duration::from_millis(300);
        let server = start(quick);
        let mut client = Client::connect(server.address);
        assert!(client.is_closed());
        let mut client = Client::connect(server.address);
        client.send(get(&server, "/shared").as_bytes());
        assert_eq!(client.response().status, 200);
        assert!(client.is_closed(), "idle keep-alive connection not closed");
    }

    /// Loopback addresses the tests use as distinct sources.
    const SOURCE_A: Ipv4Addr = Ipv4Addr::LOCALHOST;
    const SOURCE_B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
    const SOURCE_C: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);

    impl Client {
        /// Whether the server closed the connection (or reset it) without an answer.
        fn was_refused(&mut self) -> bool {
            let mut byte = [0u8; 1];
            match self.stream.read(&mut byte) {
                Ok(0) => true,
                Err(error) => error.kind() == io::ErrorKind::ConnectionReset,
                Ok(_) => false,
            }
        }

        /// Whether nothing comes within `wait` (the request is still being answered).
        fn is_waiting(&mut self, wait: Duration) -> bool {
            self.stream.set_read_timeout(Some(wait)).unwrap();
            let mut byte = [0u8; 1];
            let read = self.stream.read(&mut byte);
            self.stream.set_read_timeout(Some(WAIT)).unwrap();
            read.is_err_and(|e| {
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                )
            })
        }

        /// A served GET of the kept document.
        fn served(&mut self, server: &TestServer) -> bool {
            self.send(get(server, "/shared").as_bytes());
            self.response().status == 200
        }
    }

    /// `count` connections from `source`, each having sent `GET target`, none answered yet.
    fn unanswered(
        server: &TestServer,
        source: Ipv4Addr,
        target: &str,
        count: usize,
    ) -> Vec<Client> {
        let request = get(server, target);
        let clients: Vec<Client> = (0..count)
            .map(|_| {
                let mut client = Client::connect_from(server.address, source);
                client.send(request.as_bytes());
                client
            })
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        for client in &clients {
            client.stream.set_nonblocking(true).unwrap();
            let mut byte = [0u8; 1];
            let read = client.stream.peek(&mut byte);
            client.stream.set_nonblocking(false).unwrap();
            let waiting = read
                .as_ref()
                .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock);
            assert!(waiting, "{target} answered or closed: {read:?}");
        }
        clients
    }

    /// Polls `check` every 10 ms for at most [`WAIT`].
    fn eventually(mut check: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if check() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn one_source_holds_at_most_its_share() {
        let mut limited = config();
        limited.max_connections = 4;
        limited.max_connections_per_source = 2;
        limited.head_timeout = Duration::from_secs(2);
        let server = start(limited);
        let mut held: Vec<Client> = (0..2)
            .map(|_| Client::connect_from(server.address, SOURCE_A))
            .collect();
        for client in &mut held {
            assert!(client.served(&server));
        }
        // Past its share, a source's connections wait unread, twice its share at most.
        let mut waiting = unanswered(&server, SOURCE_A, "/shared", 4);
        let mut refused = Client::connect_from(server.address, SOURCE_A);
        assert!(refused.was_refused(), "a seventh connection of one source");
        let mut other = Client::connect_from(server.address, SOURCE_B);
        assert!(other.served(&server), "another source waits for nothing");
        // A slot given back goes to the one waiting longest.
        drop(held.pop());
        assert_eq!(waiting[0].response().status, 200);
        // The others are refused after the head timeout.
        let started = Instant::now();
        assert!(waiting[1].was_refused());
        assert!(started.elapsed() < WAIT);
    }

    #[test]
    fn a_newcomer_takes_the_slot_of_an_idle_connection_of_the_source_holding_most() {
        let mut limited = config();
        limited.max_connections = 4;
        limited.max_connections_per_source = 4;
        let server = start(limited);
        let mut idle: Vec<Client> = Vec::new();
        for _ in 0..4 {
            let mut client = Client::connect_from(server.address, SOURCE_A);
            assert!(client.served(&server));
            idle.push(client);
        }
        // Every slot is taken by A; B, below its share (4 / 2), takes the slot of A's
        // connection idle longest: the first.
        let mut newcomer = Client::connect_from(server.address, SOURCE_B);
        assert!(newcomer.served(&server));
        assert!(
            idle[0].was_refused(),
            "the oldest idle connection was not closed"
        );
        assert!(
            idle[1].served(&server),
            "another connection of A was closed"
        );
        // A holds 3 of 4, more than its share: its new connection waits.
        let mut more = Client::connect_from(server.address, SOURCE_A);
        more.send(get(&server, "/shared").as_bytes());
        assert!(more.is_waiting(Duration::from_millis(200)));
        // C is below its share (4 / 3 = 1): A gives another.
        let mut third = Client::connect_from(server.address, SOURCE_C);
        assert!(third.served(&server));
    }

    #[test]
    fn long_polls_are_counted_apart_capped_and_released_when_the_client_goes() {
        let mut limited = config();
        limited.max_connections = 4;
        limited.max_connections_per_source = 2;
        limited.max_long_polls = 3;
        limited.max_long_polls_per_source = 2;
        let server = start(limited);
        let poll = get(&server, "/poll");
        let mut polls = unanswered(&server, SOURCE_A, "/poll", 2);
        // A's two long polls hold no connection slot: A still has its two.
        let mut third = Client::connect_from(server.address, SOURCE_A);
        assert!(third.served(&server));
        third.send(poll.as_bytes());
        let reply = third.response();
        assert_eq!(reply.status, 429);
        assert_eq!(reply.header("retry-after"), Some("5"));
        assert!(reply.body.starts_with(b"{\"error\":"));
        assert!(third.served(&server), "the refusal kept the connection");
        let mut fourth = Client::connect_from(server.address, SOURCE_A);
        assert!(fourth.served(&server));

        let mut other = Client::connect_from(server.address, SOURCE_B);
        other.send(poll.as_bytes());
        assert!(other.is_waiting(Duration::from_millis(300)));
        let mut full = Client::connect_from(server.address, SOURCE_C);
        full.send(poll.as_bytes());
        assert_eq!(full.response().status, 503);

        // The client going away ends its long poll: the future is dropped and the place
        // given back, long before the poll's own 30 s. (Refused ones were dropped at once.)
        let dropped = || server.polls_dropped.load(Ordering::SeqCst);
        assert_eq!(dropped(), 2);
        drop(polls.pop());
        assert!(eventually(|| dropped() == 3));
        third.send(poll.as_bytes());
        assert!(third.is_waiting(Duration::from_millis(300)));

        // An answered long poll gets its connection slot back and keeps the connection.
        drop(other);
        assert!(eventually(|| dropped() == 4));
        let mut quick = Client::connect_from(server.address, SOURCE_B);
        quick.send(get(&server, "/poll?50").as_bytes());
        let reply = quick.response();
        assert_eq!((reply.status, reply.body.as_slice()), (200, &b"polled"[..]));
        assert_eq!(reply.header("connection"), None);
        assert!(quick.served(&server));
    }

    #[test]
    fn a_deadline_moved_later_waits_for_it_one_moved_earlier_does_not() {
        smol::block_on(async {
            let start = Instant::now();
            let mut deadline = Deadline::at(start + Duration::from_millis(50));
            deadline.set(start + Duration::from_millis(300));
            deadline.passed().await;
            assert!(start.elapsed() >= Duration::from_millis(300));
            // Set again once passed: waited for again.
            let again = Instant::now();
            deadline.set(again + Duration::from_millis(100));
            deadline.passed().await;
            assert!(again.elapsed() >= Duration::from_millis(100));
            // Moved earlier: not the first instant.
            let early = Instant::now();
            let mut deadline = Deadline::at(early + Duration::from_secs(30));
            deadline.set(early + Duration::from_millis(50));
            deadline.passed().await;
            assert!(early.elapsed() < Duration::from_secs(20));
        });
    }

    #[test]
    fn a_slow_head_is_cut_by_its_own_deadline_an_idle_connection_by_another() {
        let mut timed = config();
        timed.head_timeout = Duration::from_millis(300);
        timed.idle_timeout = Duration::from_secs(3);
        let server = start(timed);
        let mut client = Client::connect(server.address);
        assert!(client.served(&server));
        // Idle longer than a head may take, shorter than the idle timeout: still served.
        std::thread::sleep(Duration::from_millis(600));
        assert!(client.served(&server));
        // A head started and not finished is cut at the head timeout.
        let started = Instant::now();
        client.send(b"GET /shared HTTP/1.1\r\n");
        let reply = client.response();
        assert_eq!(reply.status, 408);
        // Measured about 0.3 s; far from the idle timeout either way.
        assert!(started.elapsed() < Duration::from_millis(2500));
        assert!(client.is_closed());
    }

    #[test]
    fn closing_drains_by_time_so_pipelined_bytes_past_any_count_cause_no_reset() {
        let mut two = config();
        two.max_requests_per_connection = 2;
        let server = start(two);
        // A client slow to take two big answers (a small window), which has sent 600 KiB
        // more the server reads and drops while it closes: when it closes, much of the second
        // answer is still in its kernel's queue, lost if the close were a reset.
        let mut client = Client::connect_with(server.address, SOURCE_A, Some(4096));
        let request = get(&server, "/big");
        let mut pipelined = request.repeat(2).into_bytes();
        let filler = format!(
            "GET /shared HTTP/1.1\r\nHost: {}\r\nX: {}\r\n\r\n",
            server.address,
            "f".repeat(900)
        );
        while pipelined.len() < 600 * 1024 {
            pipelined.extend_from_slice(filler.as_bytes());
        }
        let mut sender = client.stream.try_clone().unwrap();
        let sending = std::thread::spawn(move || {
            let sent = sender.write_all(&pipelined);
            let _ = sender.shutdown(Shutdown::Write);
            sent
        });
        std::thread::sleep(Duration::from_millis(200));
        let first = client.response();
        assert_eq!((first.header("connection"), first.body.len()), (None, BIG));
        let last = client.response();
        assert_eq!(
            (last.header("connection"), last.body.len()),
            (Some("close"), BIG)
        );
        assert!(client.is_closed(), "reset instead of a close");
        sending.join().unwrap().expect("every pipelined byte sent");
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

    // ---- the admission policy, pure -----------------------------------------------------

    fn source(last: u8) -> Source {
        Source(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)))
    }

    fn limits(connections: usize, per_source: usize) -> Limits {
        Limits {
            connections,
            connections_per_source: per_source,
            long_polls: 3,
            long_polls_per_source: 2,
            queued: connections,
            queued_per_source: 2 * per_source,
        }
    }

    /// A connection of a test table: the last byte of its source, its phase, and since when
    /// (seconds after a fixed start) it is in it.
    type Held = (u8, Phase, u64);

    /// A table holding `held`; entry `i` has id `i`.
    fn table(limits: Limits, held: &[Held]) -> (Table<()>, Instant) {
        let start = Instant::now();
        let entries = held
            .iter()
            .enumerate()
            .map(|(i, &(last, phase, after))| Entry {
                id: i as u64,
                source: source(last),
                phase,
                since: start + Duration::from_secs(after),
                payload: (),
            })
            .collect();
        let table = Table {
            limits,
            entries,
            next_id: held.len() as u64,
        };
        (table, start)
    }

    #[test]
    fn admission_policy() {
        use Admission::{Admit, Evict, Refuse};
        use Phase::{Answering, Closing, Idle, LongPoll, Queued, Receiving};
        #[rustfmt::skip]
        let cases: &[(&str, Limits, &[Held], u8, Admission)] = &[
            ("a free slot", limits(4, 3), &[(1, Idle, 0)], 2, Admit),
            ("the source at its own limit, slots free",
                limits(4, 3), &[(1, Idle, 0), (1, Idle, 0), (1, Answering, 0)], 1,
                Refuse(Refusal::SourceConnections)),
            ("full: the newcomer below its share (4 / 3) takes the oldest idle of the biggest",
                limits(4, 3), &[(1, Answering, 0), (1, Idle, 5), (1, Idle, 2), (2, Idle, 1)], 3,
                Evict(2)),
            ("a closing connection goes first",
                limits(4, 3), &[(1, Idle, 0), (1, Closing, 9), (1, Receiving, 0), (2, Answering, 0)], 3,
                Evict(1)),
            ("then an idle one, before one receiving",
                limits(4, 3), &[(1, Receiving, 0), (1, Idle, 9), (1, Answering, 0), (2, Idle, 0)], 3,
                Evict(1)),
            ("a slowloris head is taken when nothing else can be",
                limits(4, 3), &[(1, Receiving, 3), (1, Receiving, 1), (1, Answering, 0), (2, Idle, 0)], 3,
                Evict(1)),
            ("connections being answered are never taken",
                limits(4, 3), &[(1, Answering, 0), (1, Answering, 0), (1, Answering, 0), (2, Idle, 0)], 3,
                Refuse(Refusal::Connections)),
            ("the source holding the most gives first",
                limits(6, 3), &[(1, Idle, 0), (1, Idle, 0), (2, Idle, 3), (2, Idle, 1), (2, Idle, 2), (3, Idle, 0)], 4,
                Evict(3)),
            ("only a source above its share (6 / 4) gives",
                limits(6, 3), &[(1, Idle, 0), (2, Answering, 0), (2, Answering, 0), (2, Answering, 0), (3, Answering, 0), (3, Answering, 0)], 4,
                Refuse(Refusal::Connections)),
            ("a newcomer holding its share already is refused",
                limits(4, 3), &[(1, Idle, 0), (1, Idle, 0), (2, Idle, 0), (2, Idle, 0)], 2,
                Refuse(Refusal::Connections)),
            ("below it, it takes one",
                limits(4, 3), &[(1, Idle, 0), (1, Idle, 0), (1, Idle, 0), (2, Idle, 0)], 2,
                Evict(0)),
            ("long polls hold no slot",
                limits(4, 3), &[(1, LongPoll, 0), (1, LongPoll, 0), (1, LongPoll, 0), (1, LongPoll, 0)], 1,
                Admit),
            ("nor do connections waiting for one",
                limits(4, 3), &[(1, Queued, 0), (1, Queued, 0), (1, Queued, 0), (1, Queued, 0)], 1,
                Admit),
        ];
        for (name, limits, held, newcomer, expected) in cases {
            let (table, _) = table(*limits, held);
            assert_eq!(table.admission(source(*newcomer)), *expected, "{name}");
        }
    }

    #[test]
    fn admitting_evicts_queues_and_promotes() {
        let idle = Phase::Idle;
        let (mut full, start) = table(limits(2, 2), &[(1, idle, 0), (1, idle, 1)]);
        let later = start + Duration::from_secs(5);
        let evicting = Admitted::Slot {
            id: 2,
            evicted: Some(()),
        };
        assert_eq!(full.admit(later, source(2), ()), Ok(evicting));
        assert!(
            !full.enter(0, Phase::Answering, later),
            "the evicted one is out"
        );
        assert!(full.enter(1, Phase::Answering, later));
        assert!(full.enter(2, Phase::Receiving, later));
        // Full of connections being answered or received, each source at its share: the
        // newcomers wait, as many as there are slots.
        for (id, newcomer) in [(3, 3), (4, 1)] {
            let queued = Admitted::Queued {
                id,
                because: Refusal::Connections,
            };
            assert_eq!(full.admit(later, source(newcomer), ()), Ok(queued));
        }
        assert_eq!(full.admit(later, source(4), ()), Err(Refusal::Connections));
        assert_eq!(full.promote(later), None);
        // A slot freed goes to the one waiting longest that may have it.
        assert_eq!(full.remove(1), Some(()));
        assert_eq!(full.promote(later), Some(()));
        assert_eq!(full.promote(later), None);
        assert_eq!(
            full.in_phase(Phase::Queued)
                .map(|e| e.id)
                .collect::<Vec<_>>(),
            [4]
        );

        // A source at its own limit waits too, twice its share at most.
        let (mut table, start) = table(limits(4, 1), &[(1, idle, 0)]);
        for id in 1..=2 {
            let queued = Admitted::Queued {
                id,
                because: Refusal::SourceConnections,
            };
            assert_eq!(table.admit(start, source(1), ()), Ok(queued));
        }
        assert_eq!(
            table.admit(start, source(1), ()),
            Err(Refusal::SourceConnections)
        );
        assert_eq!(table.promote(start), None, "its slot is still taken");
        assert_eq!(table.remove(0), Some(()));
        assert_eq!(table.promote(start), Some(()));
        assert_eq!(table.promote(start), None);
    }

    #[test]
    fn long_polls_have_their_own_limits() {
        use Phase::Answering;
        let (mut table, start) = table(
            limits(2, 2),
            &[
                (1, Answering, 0),
                (1, Answering, 0),
                (1, Answering, 0),
                (2, Answering, 0),
                (3, Answering, 0),
            ],
        );
        assert_eq!(table.start_long_poll(0, start), Ok(()));
        assert_eq!(table.start_long_poll(1, start), Ok(()));
        assert_eq!(
            table.start_long_poll(2, start),
            Err(Refusal::SourceLongPolls)
        );
        assert_eq!(table.start_long_poll(3, start), Ok(()));
        assert_eq!(table.start_long_poll(4, start), Err(Refusal::LongPolls));
        // A long poll stays one through the phases of its answer and closing.
        assert!(table.enter(0, Phase::Closing, start));
        assert_eq!(table.in_phase(Phase::LongPoll).count(), 3);
        // Answered: back to a slot when there is one (three connections of five hold one
        // of two here: the first gets the last free one).
        assert_eq!(table.slots().count(), 2);
        assert_eq!(table.remove(4), Some(()));
        assert!(table.end_long_poll(3, start));
        assert!(
            !table.end_long_poll(1, start),
            "no slot left: it closes as a long poll"
        );
        assert_eq!(table.in_phase(Phase::LongPoll).count(), 2);
        assert_eq!(table.remove(0), Some(()));
        assert_eq!(table.start_long_poll(2, start), Ok(()));
    }

    #[test]
    fn sources_are_addresses_and_ipv6_prefixes() {
        let cases: &[(&str, &str, &str)] = &[
            ("10.0.0.1", "10.0.0.1", "10.0.0.1"),
            ("::ffff:10.0.0.1", "10.0.0.1", "10.0.0.1"),
            (
                "2001:db8:1:2:3:4:5:6",
                "2001:db8:1:2::",
                "2001:db8:1:2::/64",
            ),
            ("fe80::1", "fe80::", "fe80::/64"),
        ];
        for &(address, counted, shown) in cases {
            let source = Source::of(address.parse().unwrap());
            assert_eq!(source.0, counted.parse::<IpAddr>().unwrap(), "{address}");
            assert_eq!(source.to_string(), shown);
        }
    }

    #[test]
    fn refusals_are_logged_once_per_source_and_kind_then_once_per_interval() {
        let mut log = RefusalLog::default();
        let start = Instant::now();
        let at = |seconds: u64| start + Duration::from_secs(seconds);
        let a = source(1);
        assert_eq!(log.note(at(0), a, Refusal::SourceConnections), Some(0));
        for second in 1..=3 {
            assert_eq!(log.note(at(second), a, Refusal::SourceConnections), None);
        }
        assert_eq!(log.note(at(4), a, Refusal::SourceLongPolls), Some(0));
        assert_eq!(
            log.note(at(4), source(2), Refusal::SourceConnections),
            Some(0)
        );
        let next = HTTP_REFUSAL_LOG_INTERVAL.as_secs();
        assert_eq!(log.note(at(next), a, Refusal::SourceConnections), Some(3));
        assert_eq!(log.note(at(next + 1), a, Refusal::SourceConnections), None);

        // Full, the source logged longest ago is forgotten first.
        let mut log = RefusalLog::default();
        for last in 0..HTTP_REFUSAL_LOG_SOURCES {
            let last = u8::try_from(last).unwrap();
            assert!(log
                .note(at(u64::from(last)), source(last), Refusal::Connections)
                .is_some());
        }
        assert_eq!(
            log.note(at(100), source(200), Refusal::Connections),
            Some(0)
        );
        assert_eq!(log.entries.len(), HTTP_REFUSAL_LOG_SOURCES);
        assert_eq!(log.note(at(101), source(0), Refusal::Connections), Some(0));
        assert_eq!(log.note(at(101), source(63), Refusal::Connections), None);
    }
}
