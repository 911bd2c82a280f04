//! Net layer: a minimal bounded HTTP/1.1 client (GENA NOTIFY delivery, description fetches,
//! XenAPI calls). One request per connection, over TCP or a unix socket, every exchange
//! bounded in time and size; never follows redirects. Parsing is [`crate::wire::http`]'s.

use core::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use smol::future;
use smol::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use smol::{Async, Timer};

use crate::consts;
use crate::wire::http::{self as wire_http, ChunkedDecoder, Progress, ResponseStatus};

/// Interim (1xx) responses the HTTP client skips before the final one, at most.
const HTTP_CLIENT_MAX_INTERIM: usize = 4;
/// Time allowed for one NOTIFY delivery (connect, write, read the status line).
const GENA_NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Host header sent over a unix socket, which has no host name of its own.
const XAPI_UNIX_HOST: &str = "localhost";

/// Bounds of one exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time for the whole exchange: connect, write, read the response.
    pub timeout: Duration,
    /// Status line plus headers, at most.
    pub max_head: usize,
    /// Body, at most (after removing chunked coding).
    pub max_body: usize,
}

impl Limits {
    /// Limits of a GENA NOTIFY delivery (`GENA_NOTIFY_TIMEOUT`); its answer has
    /// no body worth keeping.
    pub const NOTIFY: Limits = Limits {
        timeout: GENA_NOTIFY_TIMEOUT,
        max_head: consts::HTTP_MAX_HEAD,
        max_body: consts::HTTP_MAX_HEAD,
    };
}

/// A response as received (a 3xx is returned as is, not followed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientResponse {
    /// Status code.
    pub status: u16,
    /// Header fields as sent, in order.
    pub headers: Vec<(String, String)>,
    /// The body, chunked coding removed.
    pub body: Vec<u8>,
}

impl ClientResponse {
    /// The first header field called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address; `Host` is the address itself.
    Tcp(SocketAddr),
    /// A unix stream socket; `Host` is `XAPI_UNIX_HOST`.
    Unix(PathBuf),
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(f, "{address}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// Sends one request to `address` and reads the response, all within `limits.timeout`.
///
/// The client writes `Host` (the address itself), `Content-Length` and `Connection: close`;
/// `headers` must not contain those, nor `Transfer-Encoding`. Errors: `InvalidInput` for a
/// method, target or header that cannot be sent as is; `TimedOut`; `InvalidData` for a
/// malformed response or one over the limits; `UnexpectedEof` for one cut short; and
/// whatever connecting or the socket reports.
pub async fn request(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limits: &Limits,
) -> io::Result<ClientResponse> {
    request_to(
        &Endpoint::Tcp(address),
        method,
        target,
        headers,
        body,
        limits,
    )
    .await
}

/// [`request`] to any [`Endpoint`]: the same exchange over TCP or a unix socket.
pub async fn request_to(
    endpoint: &Endpoint,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limits: &Limits,
) -> io::Result<ClientResponse> {
    let host = match endpoint {
        Endpoint::Tcp(address) => host_field(*address),
        Endpoint::Unix(_) => XAPI_UNIX_HOST.to_owned(),
    };
    let message = encode_with_host(&host, method, target, headers, body)?;
    let timeout = async {
        Timer::after(limits.timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "http {endpoint}: no complete answer within {:?}",
                limits.timeout
            ),
        ))
    };
    let exchange = async {
        match endpoint {
            Endpoint::Tcp(address) => {
                let stream = Async::<TcpStream>::connect(*address).await?;
                // Only latency is at stake; a failure here changes nothing else.
                let _ = stream.get_ref().set_nodelay(true);
                exchange(&stream, endpoint, &message, method, limits).await
            }
            Endpoint::Unix(path) => {
                let stream = Async::<UnixStream>::connect(path).await?;
                exchange(&stream, endpoint, &message, method, limits).await
            }
        }
    };
    future::or(exchange, timeout).await
}

/// The `X-Xenplug-Signature` value for a `method` request to `address` at `target` with
/// `soap_action` and `body`, as [`request`] will send it (same Host), signed now with `key` on
/// behalf of `identity` ([`crate::wire::signature`]). `None` when the identity cannot be
/// signed for (see [`crate::wire::signature::is_identity`]) or the OS gives no random nonce.
pub fn signature_header(
    key: &crate::wire::signature::ControlKey,
    identity: &str,
    address: SocketAddr,
    method: &str,
    target: &str,
    soap_action: &str,
    body: &[u8],
) -> Option<String> {
    use crate::wire::signature::{sign, SignedParts, NONCE_BYTES};
    let mut nonce = [0u8; NONCE_BYTES];
    crate::state::secret_bytes(&mut nonce).ok()?;
    let host = host_field(address);
    let parts = SignedParts {
        method,
        target,
        host: &host,
        soap_action,
        body,
    };
    sign(key, &parts, crate::net::unix_now(), &nonce, identity)
}

/// The `Host` field for a TCP address.
fn host_field(address: SocketAddr) -> String {
    match address {
        SocketAddr::V4(v4) => format!("{}:{}", v4.ip(), v4.port()),
        SocketAddr::V6(v6) => format!("[{}]:{}", v6.ip(), v6.port()),
    }
}

/// Header fields the client writes itself.
const OWN_HEADERS: [&str; 4] = ["host", "content-length", "connection", "transfer-encoding"];

/// The bytes of one request to `address` as [`request`] sends it: the fields given, then
/// Host, Content-Length and `Connection: close`, then the body. Refuses anything that could
/// break the head (a target with spaces, a header value with a line break).
pub fn encode_request(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Vec<u8>> {
    encode_with_host(&host_field(address), method, target, headers, body)
}

/// [`encode_request`] with the `Host` value given.
fn encode_with_host(
    host: &str,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> io::Result<Vec<u8>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    if !wire_http::is_token(method) {
        return Err(invalid("http request: method is not a token"));
    }
    if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(invalid(
            "http request: target has spaces or control characters",
        ));
    }
    for &(name, value) in headers {
        if !wire_http::is_token(name) || !wire_http::is_field_value(value) {
            return Err(invalid("http request: header cannot be sent as is"));
        }
        if OWN_HEADERS.iter().any(|own| own.eq_ignore_ascii_case(name)) {
            return Err(invalid("http request: header is written by the client"));
        }
    }
    let mut message = Vec::with_capacity(256 + body.len());
    let mut line = |parts: &[&str]| {
        for part in parts {
            message.extend_from_slice(part.as_bytes());
        }
        message.extend_from_slice(b"\r\n");
    };
    line(&[method, " ", target, " HTTP/1.1"]);
    line(&["Host: ", host]);
    for &(name, value) in headers {
        line(&[name, ": ", value]);
    }
    line(&["Content-Length: ", &body.len().to_string()]);
    line(&["Connection: close"]);
    line(&[]);
    message.extend_from_slice(body);
    Ok(message)
}

fn bad_data(address: &Endpoint, what: impl core::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("http {address}: {what}"),
    )
}

async fn exchange<C: AsyncRead + AsyncWrite + Unpin>(
    mut connection: C,
    address: &Endpoint,
    message: &[u8],
    method: &str,
    limits: &Limits,
) -> io::Result<ClientResponse> {
    connection.write_all(message).await?;
    connection.flush().await?;
    let head = read_head(&mut connection, address, method, limits).await?;
    let body = read_body(
        &mut connection,
        address,
        head.received,
        head.framing,
        limits.max_body,
    )
    .await?;
    Ok(ClientResponse {
        status: head.status,
        headers: head.headers,
        body,
    })
}

/// A final response head as read, and what came after it.
struct Head {
    status: u16,
    headers: Vec<(String, String)>,
    framing: Framing,
    /// Bytes read past the head: the body's start.
    received: Vec<u8>,
}

/// Reads the final response head (skipping a bounded number of 1xx ones).
async fn read_head<C: AsyncRead + Unpin>(
    connection: &mut C,
    address: &Endpoint,
    method: &str,
    limits: &Limits,
) -> io::Result<Head> {
    let mut received = Vec::with_capacity(limits.max_head.min(4096));
    let mut chunk = [0u8; 4096];
    let mut interim = 0;
    loop {
        let end = loop {
            if let Some(end) = wire_http::find_head_end(&received) {
                break end;
            }
            if received.len() >= limits.max_head {
                return Err(bad_data(address, "response head over the limit"));
            }
            let room = limits.max_head - received.len();
            let into = chunk.get_mut(..room.min(4096)).unwrap_or_default();
            let count = connection.read(into).await?;
            if count == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("http {address}: closed before a response head"),
                ));
            }
            received.extend_from_slice(into.get(..count).unwrap_or_default());
        };
        if end > limits.max_head {
            return Err(bad_data(address, "response head over the limit"));
        }
        let head_bytes = received.get(..end).unwrap_or_default();
        let head = ResponseStatus::parse(head_bytes).map_err(|e| bad_data(address, e))?;
        if head.status < 200 {
            // 100 Continue and friends: skip them, a bounded number of times.
            interim += 1;
            if head.status == 101 || interim > HTTP_CLIENT_MAX_INTERIM {
                return Err(bad_data(address, "unexpected interim responses"));
            }
            received.drain(..end);
            continue;
        }
        let status = head.status;
        let headers = head
            .headers()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        let framing = if head.has_no_body(method) {
            Framing::None
        } else if head.header("transfer-encoding").is_some() {
            if !head.is_chunked() {
                return Err(bad_data(address, "unsupported transfer coding"));
            }
            Framing::Chunked
        } else {
            match head.content_length().map_err(|e| bad_data(address, e))? {
                Some(length) if length > limits.max_body => {
                    return Err(bad_data(address, "response body over the limit"));
                }
                Some(length) => Framing::Length(length),
                None => Framing::UntilClose,
            }
        };
        received.drain(..end);
        return Ok(Head {
            status,
            headers,
            framing,
            received,
        });
    }
}

#[derive(Debug, Clone, Copy)]
enum Framing {
    None,
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads the body that starts with `received` (what came after the head).
async fn read_body<C: AsyncRead + Unpin>(
    connection: &mut C,
    address: &Endpoint,
    received: Vec<u8>,
    framing: Framing,
    max_body: usize,
) -> io::Result<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    match framing {
        Framing::None => Ok(Vec::new()),
        Framing::Length(length) => {
            let mut body = received;
            body.truncate(length);
            // Room for exactly the announced length (checked against the limit with the
            // head): grown by doubling, a 600 KB description would hold 1 MiB.
            body.reserve_exact(length - body.len());
            while body.len() < length {
                let room = (length - body.len()).min(chunk.len());
                let into = chunk.get_mut(..room).unwrap_or_default();
                let count = connection.read(into).await?;
                if count == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("http {address}: closed inside the body"),
                    ));
                }
                body.extend_from_slice(into.get(..count).unwrap_or_default());
            }
            Ok(body)
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(max_body);
            let mut body = Vec::new();
            let mut input = received;
            loop {
                match decoder.feed(&input, &mut body) {
                    Ok(Progress::Done(_)) => return Ok(body),
                    Ok(Progress::NeedMore) => {}
                    Err(error) => return Err(bad_data(address, format!("chunked body: {error}"))),
                }
                let count = connection.read(&mut chunk).await?;
                if count == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("http {address}: closed inside a chunked body"),
                    ));
                }
                input.clear();
                input.extend_from_slice(chunk.get(..count).unwrap_or_default());
            }
        }
        Framing::UntilClose => {
            let mut body = received;
            loop {
                if body.len() > max_body {
                    return Err(bad_data(address, "response body over the limit"));
                }
                let count = connection.read(&mut chunk).await?;
                if count == 0 {
                    return Ok(body);
                }
                body.extend_from_slice(chunk.get(..count).unwrap_or_default());
            }
        }
    }
}

/// A response whose body is read as it arrives, one line at a time (a stream of
/// newline-separated JSON messages, as etcd's watch answers): only the head is bounded by the
/// exchange's time; each line is bounded in size by the caller, and in time by its idle bound.
pub struct StreamingResponse {
    connection: Async<TcpStream>,
    endpoint: Endpoint,
    /// Status code.
    pub status: u16,
    /// Header fields as sent, in order.
    pub headers: Vec<(String, String)>,
    framing: StreamFraming,
    /// Body bytes received, not yet handed out.
    decoded: Vec<u8>,
    /// The body ended.
    done: bool,
}

/// How a streamed body ends.
enum StreamFraming {
    None,
    Length(usize),
    Chunked(ChunkedDecoder),
    UntilClose,
}

/// Sends one request to `address` and reads the response head within `limits.timeout`; the
/// body is then read with [`StreamingResponse::next_line`] (for as long as the server sends
/// it) or [`StreamingResponse::rest`]. `limits.max_body` bounds only a `Content-Length`
/// announced. Same request rules and errors as [`request`].
pub async fn request_stream(
    address: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    limits: &Limits,
) -> io::Result<StreamingResponse> {
    let endpoint = Endpoint::Tcp(address);
    let message = encode_request(address, method, target, headers, body)?;
    let open = async {
        let mut connection = Async::<TcpStream>::connect(address).await?;
        let _ = connection.get_ref().set_nodelay(true);
        connection.write_all(&message).await?;
        connection.flush().await?;
        let head = read_head(&mut connection, &endpoint, method, limits).await?;
        let framing = match head.framing {
            Framing::None => StreamFraming::None,
            Framing::Length(length) => StreamFraming::Length(length),
            Framing::Chunked => StreamFraming::Chunked(ChunkedDecoder::new(usize::MAX)),
            Framing::UntilClose => StreamFraming::UntilClose,
        };
        let mut response = StreamingResponse {
            connection,
            endpoint: endpoint.clone(),
            status: head.status,
            headers: head.headers,
            framing,
            decoded: Vec::new(),
            done: false,
        };
        response.take(&head.received)?;
        Ok(response)
    };
    let timeout = async {
        Timer::after(limits.timeout).await;
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "http {address}: no response head within {:?}",
                limits.timeout
            ),
        ))
    };
    future::or(open, timeout).await
}

impl StreamingResponse {
    /// The first header field called `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Decodes `input` (bytes read from the connection) into the body received.
    fn take(&mut self, input: &[u8]) -> io::Result<()> {
        match &mut self.framing {
            StreamFraming::None => self.done = true,
            StreamFraming::Length(left) => {
                let take = (*left).min(input.len());
                self.decoded
                    .extend_from_slice(input.get(..take).unwrap_or_default());
                *left -= take;
                self.done = *left == 0;
            }
            StreamFraming::Chunked(decoder) => match decoder.feed(input, &mut self.decoded) {
                Ok(Progress::Done(_)) => self.done = true,
                Ok(Progress::NeedMore) => {}
                Err(error) => {
                    return Err(bad_data(&self.endpoint, format!("chunked body: {error}")))
                }
            },
            StreamFraming::UntilClose => self.decoded.extend_from_slice(input),
        }
        Ok(())
    }

    /// Reads more of the body; false once it ended.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.done {
            return Ok(false);
        }
        let mut chunk = [0u8; 8192];
        let count = self.connection.read(&mut chunk).await?;
        if count == 0 {
            if matches!(self.framing, StreamFraming::UntilClose) {
                self.done = true;
                return Ok(false);
            }
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("http {}: closed inside the body", self.endpoint),
            ));
        }
        self.take(chunk.get(..count).unwrap_or_default())?;
        Ok(true)
    }

    /// The next line of the body (without its `\n`), `None` once the body ended. A line
    /// longer than `max_line` is `InvalidData`; no byte for `idle` is `TimedOut`.
    pub async fn next_line(
        &mut self,
        max_line: usize,
        idle: Duration,
    ) -> io::Result<Option<Vec<u8>>> {
        loop {
            if let Some(at) = self.decoded.iter().position(|&b| b == b'\n') {
                if at > max_line {
                    return Err(bad_data(&self.endpoint, "streamed line over the limit"));
                }
                let mut line: Vec<u8> = self.decoded.drain(..=at).collect();
                line.pop();
                return Ok(Some(line));
            }
            if self.decoded.len() > max_line {
                return Err(bad_data(&self.endpoint, "streamed line over the limit"));
            }
            let endpoint = self.endpoint.clone();
            let timeout = async move {
                Timer::after(idle).await;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("http {endpoint}: nothing streamed for {idle:?}"),
                ))
            };
            let more = future::or(self.fill(), timeout).await;
            if !more? {
                if self.decoded.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(std::mem::take(&mut self.decoded)));
            }
        }
    }

    /// The rest of the body at once (an error answer), at most `max_body` bytes, within
    /// `timeout`.
    pub async fn rest(mut self, max_body: usize, timeout: Duration) -> io::Result<Vec<u8>> {
        let endpoint = self.endpoint.clone();
        let read = async {
            while self.fill().await? {
                if self.decoded.len() > max_body {
                    return Err(bad_data(&endpoint, "response body over the limit"));
                }
            }
            Ok(std::mem::take(&mut self.decoded))
        };
        let limit = async {
            Timer::after(timeout).await;
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("http {endpoint}: body not complete within {timeout:?}"),
            ))
        };
        future::or(read, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::http::{serve, Answer, Handler, Request, ServerConfig};
    use crate::wire::http::RequestHead;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::thread::JoinHandle;

    const LIMITS: Limits = Limits {
        timeout: Duration::from_secs(5),
        max_head: 1024,
        max_body: 64,
    };

    /// Reads one request (head and Content-Length body) from `stream`.
    fn read_request(stream: &mut TcpStream) -> Vec<u8> {
        let mut received = Vec::new();
        let mut chunk = [0u8; 1024];
        for _ in 0..1000 {
            if let Some(end) = wire_http::find_head_end(&received) {
                let head = RequestHead::parse(&received[..end]).unwrap();
                let length = head.content_length().unwrap().unwrap_or(0);
                if received.len() >= end + length {
                    return received;
                }
            }
            let count = stream.read(&mut chunk).unwrap();
            assert!(count > 0, "client closed early");
            received.extend_from_slice(&chunk[..count]);
        }
        panic!("request never complete");
    }

    /// A one-shot server: reads a request, writes `answer` in pieces, closes. Returns the
    /// request it received.
    fn answer_once(answer: &[&[u8]]) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let answer: Vec<Vec<u8>> = answer.iter().map(|piece| piece.to_vec()).collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let request = read_request(&mut stream);
            for piece in &answer {
                // The client may hang up once it has enough (or too much).
                if stream.write_all(piece).is_err() {
                    break;
                }
                stream.flush().unwrap();
            }
            request
        });
        (address, thread)
    }

    fn run(
        address: SocketAddr,
        method: &str,
        body: &[u8],
        limits: &Limits,
    ) -> io::Result<ClientResponse> {
        smol::block_on(request(
            address,
            method,
            "/callback/1",
            &[("NT", "upnp:event"), ("SEQ", "0")],
            body,
            limits,
        ))
    }

    #[test]
    fn sends_request_and_reads_sized_body() {
        let (address, server) = answer_once(&[
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: b\r\n\r\nhel",
            b"lo",
        ]);
        let response = run(address, "NOTIFY", b"<e:propertyset/>", &LIMITS).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-a"), Some("b"));
        assert_eq!(response.body, b"hello");
        let request = server.join().unwrap();
        let expected = format!(
            "NOTIFY /callback/1 HTTP/1.1\r\nHost: {address}\r\nNT: upnp:event\r\nSEQ: 0\r\n\
             Content-Length: 16\r\nConnection: close\r\n\r\n<e:propertyset/>"
        );
        assert_eq!(String::from_utf8(request).unwrap(), expected);
    }

    #[test]
    fn reads_chunked_and_until_close_bodies() {
        let (address, _server) = answer_once(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc",
            b"\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        ]);
        assert_eq!(run(address, "GET", b"", &LIMITS).unwrap().body, b"abcde");
        let (address, _server) = answer_once(&[b"HTTP/1.0 200 OK\r\n\r\nuntil ", b"close"]);
        assert_eq!(
            run(address, "GET", b"", &LIMITS).unwrap().body,
            b"until close"
        );
    }

    #[test]
    fn returns_redirects_and_skips_interim_responses() {
        let (address, _server) = answer_once(&[
            b"HTTP/1.1 302 Found\r\nLocation: http://10.0.0.1/\r\nContent-Length: 0\r\n\r\n",
        ]);
        let response = run(address, "GET", b"", &LIMITS).unwrap();
        assert_eq!(response.status, 302);
        assert_eq!(response.header("location"), Some("http://10.0.0.1/"));
        let (address, _server) = answer_once(&[
            b"HTTP/1.1 100 Continue\r\n\r\n",
            b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n",
        ]);
        assert_eq!(run(address, "NOTIFY", b"x", &LIMITS).unwrap().status, 412);
        let (address, _server) = answer_once(&[b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n"]);
        assert!(run(address, "HEAD", b"", &LIMITS).unwrap().body.is_empty());
    }

    #[test]
    fn refuses_responses_over_the_limits() {
        let (address, _server) = answer_once(&[b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n"]);
        let error = run(address, "GET", b"", &LIMITS).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let long_close = [b'z'; 100];
        let (address, _server) = answer_once(&[b"HTTP/1.1 200 OK\r\n\r\n", &long_close]);
        let error = run(address, "GET", b"", &LIMITS).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let (address, _server) = answer_once(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n",
            &long_close,
        ]);
        let error = run(address, "GET", b"", &LIMITS).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let long_head = [b'h'; 2048];
        let (address, _server) = answer_once(&[b"HTTP/1.1 200 OK\r\nX: ", &long_head]);
        let error = run(address, "GET", b"", &LIMITS).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let (address, _server) =
            answer_once(&[b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345"]);
        let error = run(address, "GET", b"", &LIMITS).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);

        let (address, _server) = answer_once(&[b"SSDP/1.1 200 OK\r\n\r\n"]);
        let error = run(address, "GET", b"", &LIMITS).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn talks_over_a_unix_socket() {
        let dir = std::env::temp_dir().join(format!("xenplug-http-unix-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("socket");
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut received = Vec::new();
            let mut chunk = [0u8; 1024];
            while !received.ends_with(b"<x/>") {
                let count = stream.read(&mut chunk).unwrap();
                assert!(count > 0, "client closed early");
                received.extend_from_slice(&chunk[..count]);
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                .unwrap();
            received
        });
        let endpoint = Endpoint::Unix(path.clone());
        let response = smol::block_on(request_to(
            &endpoint,
            "POST",
            "/",
            &[("Content-Type", "text/xml")],
            b"<x/>",
            &LIMITS,
        ))
        .unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"ok"[..])
        );
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("POST / HTTP/1.1\r\nHost: localhost\r\n"),
            "{request}"
        );
        assert_eq!(endpoint.to_string(), format!("unix:{}", path.display()));
        // Nobody listening any more: the connect error comes back as is.
        std::fs::remove_file(&path).unwrap();
        let error = smol::block_on(request_to(&endpoint, "GET", "/", &[], b"", &LIMITS));
        assert_eq!(error.unwrap_err().kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn silent_server_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut sink = Vec::new();
            // Never answers; ends when the client gives up and closes.
            let _ = stream.read_to_end(&mut sink);
        });
        let limits = Limits {
            timeout: Duration::from_millis(300),
            ..LIMITS
        };
        let error = run(address, "NOTIFY", b"x", &limits).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        server.join().unwrap();
    }

    #[test]
    fn refuses_unsendable_requests() {
        let address: SocketAddr = "127.0.0.1:9".parse().unwrap();
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
        let cases: [Case; 5] = [
            ("GET", "/", &[("X", "a\r\nInjected: 1")]),
            ("GET", "/", &[("Host", "elsewhere")]),
            ("GET", "/a b", &[]),
            ("GE T", "/", &[]),
            ("GET", "", &[]),
        ];
        for (method, target, headers) in cases {
            let result = smol::block_on(request(address, method, target, headers, b"", &LIMITS));
            assert_eq!(result.unwrap_err().kind(), io::ErrorKind::InvalidInput);
        }
    }

    #[test]
    fn streams_lines_as_they_come() {
        let (address, _server) = answer_once(&[
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n{\"a\":1",
            b"}\n\r\n8\r\n{\"b\":2}\n\r\n",
            b"3\r\nxyz\r\n0\r\nGrpc-Trailer: x\r\n\r\n",
        ]);
        let lines = smol::block_on(async {
            let mut stream =
                request_stream(address, "POST", "/v3/watch", &[], b"{}", &LIMITS).await?;
            assert_eq!(stream.status, 200);
            let mut lines = Vec::new();
            while let Some(line) = stream.next_line(64, Duration::from_secs(5)).await? {
                lines.push(String::from_utf8(line).unwrap());
            }
            io::Result::Ok(lines)
        })
        .unwrap();
        assert_eq!(lines, ["{\"a\":1}", "{\"b\":2}", "xyz"]);

        let long = [b'x'; 100];
        let (address, _server) = answer_once(&[b"HTTP/1.1 200 OK\r\n\r\n", &long]);
        let error = smol::block_on(async {
            let mut stream = request_stream(address, "GET", "/", &[], b"", &LIMITS).await?;
            stream.next_line(64, Duration::from_secs(5)).await
        })
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let (address, _server) = answer_once(&[
            b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\n",
            b"{\"e\":1}",
        ]);
        let body = smol::block_on(async {
            let stream = request_stream(address, "GET", "/", &[], b"", &LIMITS).await?;
            assert_eq!(stream.status, 400);
            stream.rest(64, Duration::from_secs(5)).await
        })
        .unwrap();
        assert_eq!(body, b"{\"e\":1}");
    }

    #[test]
    fn a_silent_stream_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = read_request(&mut stream);
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                .unwrap();
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        });
        let error = smol::block_on(async {
            let mut stream = request_stream(address, "POST", "/", &[], b"", &LIMITS).await?;
            stream.next_line(64, Duration::from_millis(200)).await
        })
        .unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        server.join().unwrap();
    }

    struct Kept;

    impl Handler for Kept {
        fn lookup(&self, _: &RequestHead<'_>) -> Option<(&'static str, Arc<[u8]>)> {
            None
        }

        fn answer(&self, request: Request) -> Answer {
            Answer::Shared {
                content_type: "text/plain",
                body: Arc::from(request.path.as_bytes()),
            }
        }
    }

    #[test]
    fn talks_to_our_server() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let executor = Rc::new(smol::LocalExecutor::new());
        let config = ServerConfig::new("test/1 UPnP/1.1 xenplug/0".to_owned());
        let server = serve(
            Async::new(listener).unwrap(),
            Rc::new(Kept),
            config,
            Rc::clone(&executor),
        );
        let client = request(address, "GET", "/asked", &[], b"", &LIMITS);
        let response = smol::block_on(
            executor.run(future::or(async { Err(server.await.unwrap_err()) }, client)),
        )
        .unwrap();
        assert_eq!(
            (response.status, response.body.as_slice()),
            (200, &b"/asked"[..])
        );
        assert_eq!(response.header("connection"), Some("close"));
    }
}
