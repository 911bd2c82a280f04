//! Wire layer: HTTP/1.x message heads and chunked bodies. Never does I/O, never panics on
//! any input, and the head parsers borrow from the caller's buffer without allocating.
//!
//! Only what a UPnP device and control point need (RFC 9112 / RFC 7230 framing): request and
//! status lines, header fields, `Content-Length`, `Transfer-Encoding: chunked`. Anything
//! older or looser than RFC 7230 allows (line folding, whitespace before the colon, control
//! characters) is refused, because two parsers that disagree on framing is how request
//! smuggling starts.

use super::{Cursor, Error, Result};
use crate::consts;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// HTTP version of a request or response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`
    Http10,
    /// `HTTP/1.1`
    Http11,
}

impl Version {
    fn parse(text: &str) -> Result<Version> {
        match text {
            "HTTP/1.1" => Ok(Version::Http11),
            "HTTP/1.0" => Ok(Version::Http10),
            _ => {
                let rest = text.strip_prefix("HTTP/").ok_or(Error::Malformed)?;
                let (major, minor) = rest.split_once('.').ok_or(Error::Malformed)?;
                let digit = |s: &str| s.len() == 1 && s.bytes().all(|b| b.is_ascii_digit());
                if digit(major) && digit(minor) {
                    Err(Error::Unsupported)
                } else {
                    Err(Error::Malformed)
                }
            }
        }
    }
}

/// The header fields of one message, in arrival order, names and values as sent (values
/// without surrounding whitespace). A plain array rather than `heapless::Vec`, so that a
/// parsed head has no destructor and its borrow of the input ends at its last use.
#[derive(Debug, Clone, Copy)]
struct Fields<'a> {
    slots: [(&'a str, &'a str); consts::HTTP_MAX_HEADERS],
    len: usize,
}

impl<'a> Fields<'a> {
    /// Parses the header lines of `lines`, up to the empty line that ends the head.
    fn parse(lines: &mut Lines<'a>) -> Result<Fields<'a>> {
        let mut fields = Fields {
            slots: [("", ""); consts::HTTP_MAX_HEADERS],
            len: 0,
        };
        loop {
            let line = lines.next_line()?;
            if line.is_empty() {
                return Ok(fields);
            }
            let field = parse_field(line)?;
            let slot = fields.slots.get_mut(fields.len).ok_or(Error::TooLong)?;
            *slot = field;
            fields.len += 1;
        }
    }

    fn iter(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.slots.iter().take(self.len).copied()
    }

    fn get(&self, name: &str) -> Option<&'a str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    fn all(&self, name: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        self.iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Comma-separated elements of every field called `name`, trimmed, empty ones skipped.
    fn list(&self, name: &'a str) -> impl Iterator<Item = &'a str> + '_ {
        self.all(name)
            .flat_map(|v| v.split(','))
            .map(|e| e.trim_matches(is_whitespace_char))
            .filter(|e| !e.is_empty())
    }

    fn content_length(&self) -> Result<Option<usize>> {
        let mut length = None;
        for element in self.all("content-length").flat_map(|v| v.split(',')) {
            let value = parse_decimal(element.trim_matches(is_whitespace_char))?;
            match length {
                Some(seen) if seen != value => return Err(Error::Malformed),
                _ => length = Some(value),
            }
        }
        Ok(length)
    }

    fn is_chunked(&self) -> bool {
        let mut codings = self.list("transfer-encoding");
        matches!(codings.next(), Some(c) if c.eq_ignore_ascii_case("chunked"))
            && codings.next().is_none()
    }
}

/// A parsed request head: request line and header fields, borrowed from the input.
///
/// ```text
/// POST /control/Hypervisor HTTP/1.1
/// Host: 192.168.1.10:49152
/// Content-Length: 299
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    /// Method, e.g. `GET`, `POST`, `SUBSCRIBE` (case-sensitive, as sent).
    pub method: &'a str,
    /// Request target as sent, e.g. `/scpd/Hypervisor.xml?x=1`.
    pub target: &'a str,
    /// Protocol version.
    pub version: Version,
    fields: Fields<'a>,
}

impl<'a> RequestHead<'a> {
    /// Parses a complete request head: request line and header lines up to and including
    /// the empty line (see [`find_head_end`]). Lines end in CRLF or a bare LF.
    ///
    /// Errors: [`Error::Truncated`] when the empty line is missing, [`Error::TooLong`] for a
    /// head over [`consts::HTTP_MAX_HEAD`] or with more than [`consts::HTTP_MAX_HEADERS`]
    /// fields, [`Error::Unsupported`] for an HTTP version other than 1.0 and 1.1, and
    /// [`Error::Malformed`] for anything RFC 7230 does not allow (including obsolete line
    /// folding, whitespace before a colon and control characters).
    pub fn parse(bytes: &'a [u8]) -> Result<RequestHead<'a>> {
        if bytes.len() > consts::HTTP_MAX_HEAD {
            return Err(Error::TooLong);
        }
        let mut lines = Lines { rest: bytes };
        let line = lines.next_line()?;
        let mut parts = line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        if method.is_empty() || !method.bytes().all(is_token_byte) {
            return Err(Error::Malformed);
        }
        if target.is_empty() || !target.bytes().all(|b| b.is_ascii_graphic() || b >= 0x80) {
            return Err(Error::Malformed);
        }
        let version = Version::parse(version)?;
        let fields = Fields::parse(&mut lines)?;
        Ok(RequestHead {
            method,
            target,
            version,
            fields,
        })
    }

    /// The first field called `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.fields.get(name)
    }

    /// Every header field as `(name, value)`, in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.fields.iter()
    }

    /// The body length announced by `Content-Length`. Repeated fields (or a comma list)
    /// must agree, else [`Error::Malformed`]; a value that does not fit a `usize` is
    /// [`Error::TooLong`].
    pub fn content_length(&self) -> Result<Option<usize>> {
        self.fields.content_length()
    }

    /// Whether `Transfer-Encoding` is exactly `chunked`, the only coding we decode. A
    /// request with any other `Transfer-Encoding` cannot be framed.
    pub fn is_chunked(&self) -> bool {
        self.fields.is_chunked()
    }

    /// Whether the connection stays open after this exchange: HTTP/1.1 unless the client
    /// sends `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        let has = |token: &str| {
            self.fields
                .list("connection")
                .any(|t| t.eq_ignore_ascii_case(token))
        };
        match self.version {
            Version::Http11 => !has("close"),
            Version::Http10 => has("keep-alive") && !has("close"),
        }
    }
}

/// A parsed response head (status line and header fields), for the client side.
#[derive(Debug, Clone, Copy)]
pub struct ResponseStatus<'a> {
    /// Protocol version of the response.
    pub version: Version,
    /// Status code, 100 to 999.
    pub status: u16,
    /// Reason phrase as sent (may be empty).
    pub reason: &'a str,
    fields: Fields<'a>,
}

impl<'a> ResponseStatus<'a> {
    /// Parses a complete response head, up to and including the empty line. Same limits
    /// and errors as [`RequestHead::parse`], except that the caller bounds the head size.
    pub fn parse(bytes: &'a [u8]) -> Result<ResponseStatus<'a>> {
        let mut lines = Lines { rest: bytes };
        let line = lines.next_line()?;
        let (version, rest) = line.split_once(' ').ok_or(Error::Malformed)?;
        let version = Version::parse(version)?;
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        let status = code.parse::<u16>().map_err(|_| Error::Malformed)?;
        if status < 100 {
            return Err(Error::Malformed);
        }
        let fields = Fields::parse(&mut lines)?;
        Ok(ResponseStatus {
            version,
            status,
            reason,
            fields,
        })
    }

    /// The first field called `name` (ASCII case-insensitive), if any.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.fields.get(name)
    }

    /// Every header field as `(name, value)`, in arrival order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.fields.iter()
    }

    /// The body length announced by `Content-Length`; see [`RequestHead::content_length`].
    pub fn content_length(&self) -> Result<Option<usize>> {
        self.fields.content_length()
    }

    /// Whether `Transfer-Encoding` is exactly `chunked`.
    pub fn is_chunked(&self) -> bool {
        self.fields.is_chunked()
    }

    /// Whether a response to a request with `method` carries no body whatever its headers
    /// say (RFC 9112 section 6.3: HEAD, 1xx, 204, 304).
    pub fn has_no_body(&self, method: &str) -> bool {
        method == "HEAD" || self.status < 200 || self.status == 204 || self.status == 304
    }
}

/// Index just past the empty line that ends a message head (`\r\n\r\n`; a bare `\n\n` and
/// the mixed forms are accepted too), or `None` if it has not arrived yet.
pub fn find_head_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(offset) = bytes.get(at..)?.iter().position(|&b| b == b'\n') {
        let lf = at + offset;
        match (bytes.get(lf + 1), bytes.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
    None
}

/// Reason phrase for the status codes xenplug sends; empty for others.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        421 => "Misdirected Request",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A response head to emit: status line, the given fields, then `Content-Length` and the
/// empty line.
#[derive(Debug, Clone, Copy)]
pub struct ResponseHead<'a> {
    /// Status code, 100 to 999.
    pub status: u16,
    /// Header fields written in this order, before `Content-Length`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Value of `Content-Length` (for a HEAD response: the length the GET body would have).
    pub content_length: usize,
}

impl ResponseHead<'_> {
    /// Writes `HTTP/1.1 <status> <reason>`, the fields, `Content-Length` and the empty line.
    /// A field name that is not a token or a value with control characters is refused with
    /// [`Error::Malformed`] (nothing can inject a header); a head that does not fit is
    /// [`Error::TooLong`].
    pub fn emit(&self, cursor: &mut Cursor) -> Result<()> {
        if !(100..=999).contains(&self.status) {
            return Err(Error::Malformed);
        }
        for &(name, value) in self.headers {
            if !is_token(name) || !is_field_value(value) {
                return Err(Error::Malformed);
            }
        }
        cursor.put_str("HTTP/1.1 ")?;
        cursor.put_u64(u64::from(self.status))?;
        cursor.put_str(" ")?;
        cursor.put_str(reason(self.status))?;
        cursor.put_str("\r\n")?;
        for &(name, value) in self.headers {
            cursor.put_str(name)?;
            cursor.put_str(": ")?;
            cursor.put_str(value)?;
            cursor.put_str("\r\n")?;
        }
        cursor.put_str("Content-Length: ")?;
        cursor.put_u64(self.content_length as u64)?;
        cursor.put_str("\r\n\r\n")
    }
}

/// How the body of a request is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 when the request has no body).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

impl RequestHead<'_> {
    /// The server's rules for the request target and `Host`: the target must be in origin
    /// form (`/path`), and `Host` must be `local`'s IP address (IPv6 in brackets), optionally
    /// with its port; HTTP/1.0 may omit it, HTTP/1.1 may not (RFC 9112 section 3.2). This is
    /// the DNS-rebinding check: a browser tricked into sending a request to us carries the
    /// attacker's host name there. `Err` is the status that refuses the request.
    pub fn check_target_and_host(&self, local: SocketAddr) -> core::result::Result<(), u16> {
        if !self.target.starts_with('/') {
            return Err(400);
        }
        let mut hosts = self
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("host"));
        match (hosts.next(), hosts.next()) {
            (None, _) if self.version == Version::Http10 => Ok(()),
            (Some((_, host)), None) if host_matches(host, local) => Ok(()),
            _ => Err(400),
        }
    }

    /// How the body is framed (RFC 9112 section 6.3) when bodies may be at most `max_body`
    /// bytes, or the status that refuses the request.
    pub fn framing(&self, max_body: usize) -> core::result::Result<Framing, u16> {
        let transfer_encoding = self.header("transfer-encoding").is_some();
        match (transfer_encoding, self.content_length()) {
            // Both framings at once is how requests are smuggled past a proxy.
            (true, Ok(Some(_)) | Err(_)) => Err(400),
            (true, Ok(None)) if self.version == Version::Http10 => Err(400),
            (true, Ok(None)) if !self.is_chunked() => Err(501),
            (true, Ok(None)) => Ok(Framing::Chunked),
            (false, Err(Error::TooLong)) => Err(413),
            (false, Err(_)) => Err(400),
            (false, Ok(Some(length))) if length > max_body => Err(413),
            (false, Ok(Some(length))) => Ok(Framing::Length(length)),
            // A SOAP action or an event without a length: we cannot tell where it ends.
            (false, Ok(None)) if matches!(self.method, "POST" | "M-POST" | "NOTIFY") => Err(411),
            (false, Ok(None)) => Ok(Framing::Length(0)),
        }
    }
}

/// The status that answers a request head [`RequestHead::parse`] refused with `error`.
pub fn refusal_status(error: Error) -> u16 {
    match error {
        Error::TooLong => 431,
        Error::Unsupported => 505,
        Error::Truncated | Error::Malformed => 400,
    }
}

/// Whether a `Host` value names `local`: its IP address (IPv6 in brackets), optionally with
/// its port. Names, even `localhost`, are refused.
pub fn host_matches(host: &str, local: SocketAddr) -> bool {
    let (address, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return false,
            },
        };
        match inside.parse::<Ipv6Addr>() {
            Ok(address) => (IpAddr::V6(address), port),
            Err(_) => return false,
        }
    } else {
        let (text, port) = match host.split_once(':') {
            Some((text, port)) => (text, Some(port)),
            None => (host, None),
        };
        match text.parse::<Ipv4Addr>() {
            Ok(address) => (IpAddr::V4(address), port),
            Err(_) => return false,
        }
    };
    let port_ok = match port {
        None => true,
        Some(port) => {
            port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>() == Ok(local.port())
        }
    };
    port_ok && address.to_canonical() == local.ip().to_canonical()
}

/// Writes a server's response head into `storage`, returning its length: the handler's
/// `headers`, then `Server`, `Date` and, when given, `Connection`, then `Content-Length`.
/// Allocates nothing: serving a kept description relies on it.
pub fn emit_response_head(
    storage: &mut [u8],
    status: u16,
    headers: &[(&str, &str)],
    server: &str,
    date: &str,
    connection: Option<&str>,
    content_length: usize,
) -> Result<usize> {
    let ours = [
        ("Server", server),
        ("Date", date),
        ("Connection", connection.unwrap_or_default()),
    ];
    let ours = ours.get(..if connection.is_some() { 3 } else { 2 });
    let mut all: heapless::Vec<(&str, &str), { consts::HTTP_MAX_HEADERS }> = heapless::Vec::new();
    for &field in headers.iter().chain(ours.unwrap_or_default()) {
        all.push(field).map_err(|_| Error::TooLong)?;
    }
    let mut cursor = Cursor::new(storage);
    ResponseHead {
        status,
        headers: &all,
        content_length,
    }
    .emit(&mut cursor)?;
    Ok(cursor.len())
}

/// The address and request target of `url` when it is `http://<literal IPv4>[:port][/path]`:
/// scheme in any case, no user info, a port of 1-65535 (80 when absent), printable ASCII
/// without spaces, at most `max_len` bytes; the target is `/` when the URL has no path (and
/// a query right after the authority is dropped).
/// Names are never resolved: a host name is refused, and so are octal or shortened IPv4
/// forms (`010.1`, `10.1`), which std's parser does not take.
pub fn http_url_parts(url: &str, max_len: usize) -> Option<(std::net::SocketAddrV4, &str)> {
    const SCHEME: &str = crate::consts::HTTP_URL_SCHEME;
    if url.len() > max_len || !url.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    if !url.get(..SCHEME.len())?.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let rest = url.get(SCHEME.len()..)?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, target) = rest.split_at(end);
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, port.parse::<u16>().ok()?)
        }
        Some(_) => return None,
        None => (authority, 80),
    };
    let address: std::net::Ipv4Addr = host.parse().ok()?;
    let target = match target {
        "" => "/",
        t if t.starts_with('/') => t.split('#').next().unwrap_or(t),
        // `http://host?query`: a query with no path; the path is `/` and the query is lost.
        t if t.starts_with('?') => "/",
        _ => return None,
    };
    (port != 0).then_some((std::net::SocketAddrV4::new(address, port), target))
}

/// Whether `text` is a non-empty RFC 7230 token (a method or a field name).
pub fn is_token(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_token_byte)
}

/// Whether `text` may be sent as a field value: no control characters other than HTAB
/// (so no CR or LF), no surrounding whitespace.
pub fn is_field_value(text: &str) -> bool {
    text.bytes().all(is_field_byte)
        && !text.starts_with(is_whitespace_char)
        && !text.ends_with(is_whitespace_char)
}

/// Decodes a complete chunked body from the start of `input`, appending the data to `out`.
///
/// `Ok(Some(n))`: the body ended after the first `n` bytes of `input` (what follows belongs
/// to the next message). `Ok(None)`: more bytes are needed; `out` is left as it was, so the
/// call can be repeated with a longer `input`. More than `limit` bytes of data, or chunk
/// extensions and trailers longer than [`consts::HTTP_MAX_HEAD`] together, is
/// [`Error::TooLong`]. Chunk extensions and trailer fields are skipped. For input arriving
/// piece by piece, [`ChunkedDecoder`] does the same without starting over.
pub fn decode_chunked(input: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<Option<usize>> {
    let start = out.len();
    let mut decoder = ChunkedDecoder::new(limit);
    match decoder.feed(input, out) {
        Ok(Progress::Done(consumed)) => Ok(Some(consumed)),
        Ok(Progress::NeedMore) => {
            out.truncate(start);
            Ok(None)
        }
        Err(error) => {
            out.truncate(start);
            Err(error)
        }
    }
}

/// What [`ChunkedDecoder::feed`] achieved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All of the input was used and the body is not complete yet.
    NeedMore,
    /// The body ended after this many bytes of the input just fed.
    Done(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Hex digits of a chunk size; `digits` seen so far.
    Size { digits: u8 },
    /// After the size: optional whitespace and `;extension`, until the line ends.
    SizeRest,
    /// The LF after a CR on a chunk-size line.
    SizeLf,
    /// Chunk data, this many bytes left.
    Data(usize),
    /// The CR or LF that must follow chunk data.
    DataEnd,
    /// The LF after the CR that follows chunk data.
    DataLf,
    /// Start of a trailer line (an empty one ends the body).
    TrailerStart,
    /// Inside a trailer line, skipped.
    Trailer,
    /// The LF of the final empty line.
    FinalLf,
    /// The body is complete.
    Done,
}

/// An incremental decoder of a chunked body (RFC 9112 section 7.1), for bytes that arrive
/// in pieces. Lines may end in CRLF or bare LF.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: ChunkState,
    size: usize,
    decoded: usize,
    overhead: usize,
    limit: usize,
}

impl ChunkedDecoder {
    /// A decoder accepting at most `limit` bytes of body data.
    pub fn new(limit: usize) -> ChunkedDecoder {
        ChunkedDecoder {
            state: ChunkState::Size { digits: 0 },
            size: 0,
            decoded: 0,
            overhead: 0,
            limit,
        }
    }

    /// Body bytes decoded so far.
    pub fn decoded(&self) -> usize {
        self.decoded
    }

    /// Consumes `input`, appending chunk data to `out`. Once the body is complete the
    /// decoder takes no more input (`Done(0)`); after an error it must not be fed again.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Progress> {
        if self.state == ChunkState::Done {
            return Ok(Progress::Done(0));
        }
        let mut at = 0;
        while let Some(rest) = input.get(at..).filter(|r| !r.is_empty()) {
            if let ChunkState::Data(left) = self.state {
                let take = left.min(rest.len());
                out.extend_from_slice(rest.get(..take).ok_or(Error::Malformed)?);
                at += take;
                self.state = if take == left {
                    ChunkState::DataEnd
                } else {
                    ChunkState::Data(left - take)
                };
                continue;
            }
            let Some(&byte) = rest.first() else { break };
            at += 1;
            self.step(byte)?;
            if self.state == ChunkState::Done {
                return Ok(Progress::Done(at));
            }
        }
        Ok(Progress::NeedMore)
    }

    fn step(&mut self, byte: u8) -> Result<()> {
        self.state = match self.state {
            ChunkState::Size { digits } => match hex_value(byte) {
                Some(value) => {
                    // 16 hex digits fill a u64; more (even leading zeros) is hostile.
                    if digits >= 16 {
                        return Err(Error::TooLong);
                    }
                    self.size = self
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(usize::from(value)))
                        .ok_or(Error::TooLong)?;
                    ChunkState::Size { digits: digits + 1 }
                }
                None if digits == 0 => return Err(Error::Malformed),
                None => self.after_size_byte(byte)?,
            },
            ChunkState::SizeRest => self.after_size_byte(byte)?,
            ChunkState::SizeLf => match byte {
                b'\n' => self.end_size_line()?,
                _ => return Err(Error::Malformed),
            },
            ChunkState::DataEnd => match byte {
                b'\r' => ChunkState::DataLf,
                b'\n' => ChunkState::Size { digits: 0 },
                _ => return Err(Error::Malformed),
            },
            ChunkState::DataLf => match byte {
                b'\n' => ChunkState::Size { digits: 0 },
                _ => return Err(Error::Malformed),
            },
            ChunkState::TrailerStart => match byte {
                b'\r' => ChunkState::FinalLf,
                b'\n' => ChunkState::Done,
                _ => {
                    self.count_overhead()?;
                    ChunkState::Trailer
                }
            },
            ChunkState::Trailer => match byte {
                b'\n' => ChunkState::TrailerStart,
                _ => {
                    self.count_overhead()?;
                    ChunkState::Trailer
                }
            },
            ChunkState::FinalLf => match byte {
                b'\n' => ChunkState::Done,
                _ => return Err(Error::Malformed),
            },
            ChunkState::Data(_) | ChunkState::Done => return Err(Error::Malformed),
        };
        Ok(())
    }

    /// A byte on a chunk-size line after the digits: extension bytes are skipped (and
    /// counted), CRLF or LF ends the line.
    fn after_size_byte(&mut self, byte: u8) -> Result<ChunkState> {
        match byte {
            b'\n' => self.end_size_line(),
            b'\r' => Ok(ChunkState::SizeLf),
            b'\t' => self.count_overhead().map(|()| ChunkState::SizeRest),
            _ if byte.is_ascii_control() => Err(Error::Malformed),
            _ => self.count_overhead().map(|()| ChunkState::SizeRest),
        }
    }

    fn end_size_line(&mut self) -> Result<ChunkState> {
        let size = core::mem::take(&mut self.size);
        if size == 0 {
            return Ok(ChunkState::TrailerStart);
        }
        self.decoded = self.decoded.checked_add(size).ok_or(Error::TooLong)?;
        if self.decoded > self.limit {
            return Err(Error::TooLong);
        }
        Ok(ChunkState::Data(size))
    }

    fn count_overhead(&mut self) -> Result<()> {
        self.overhead += 1;
        if self.overhead > consts::HTTP_MAX_HEAD {
            return Err(Error::TooLong);
        }
        Ok(())
    }
}

/// Splits a head into lines ending in CRLF or LF; a CR anywhere else is malformed.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    fn next_line(&mut self) -> Result<&'a str> {
        let lf = self
            .rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(Error::Truncated)?;
        let (line, rest) = self.rest.split_at(lf);
        self.rest = rest.get(1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.contains(&b'\r') {
            return Err(Error::Malformed);
        }
        core::str::from_utf8(line).map_err(|_| Error::Malformed)
    }
}

/// One `name: value` line. Leading whitespace is obsolete line folding (RFC 7230 section
/// 3.2.4), whitespace before the colon is refused by the same section.
fn parse_field(line: &str) -> Result<(&str, &str)> {
    let (name, value) = line.split_once(':').ok_or(Error::Malformed)?;
    if !is_token(name) {
        return Err(Error::Malformed);
    }
    let value = value.trim_matches(is_whitespace_char);
    if !value.bytes().all(is_field_byte) {
        return Err(Error::Malformed);
    }
    Ok((name, value))
}

fn parse_decimal(text: &str) -> Result<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Malformed);
    }
    text.bytes().try_fold(0usize, |acc, b| {
        acc.checked_mul(10)
            .and_then(|a| a.checked_add(usize::from(b - b'0')))
            .ok_or(Error::TooLong)
    })
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_whitespace_char(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn is_field_byte(b: u8) -> bool {
    b == b'\t' || !b.is_ascii_control()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SOAP action as GUPnP's control point sends it.
    static SOAP_POST: &[u8] = b"POST /control/Hypervisor HTTP/1.1\r\n\
Host: 192.168.1.10:49152\r\n\
Date: Tue, 24 Nov 2026 10:00:00 GMT\r\n\
User-Agent: Linux/6.1 UPnP/1.0 GUPnP/1.6.6 DLNADOC/1.50\r\n\
Content-Type: text/xml; charset=\"utf-8\"\r\n\
SOAPAction: \"urn:xenplug-org:service:Hypervisor:1#GetHostInfo\"\r\n\
Accept-Encoding: gzip\r\n\
Connection: Keep-Alive\r\n\
Content-Length: 299\r\n\r\n";

    /// A GENA subscription from async-upnp-client (Home Assistant).
    static SUBSCRIBE: &[u8] = b"SUBSCRIBE /event/Hypervisor HTTP/1.1\r\n\
Host: 192.168.1.10:49152\r\n\
CALLBACK: <http://192.168.1.20:8123/notify>\r\n\
NT: upnp:event\r\n\
TIMEOUT: Second-1800\r\n\
User-Agent: async-upnp-client/0.38.0 DLNADOC/1.50 UPnP/2.0\r\n\
Content-Length: 0\r\n\r\n";

    /// `curl -v http://127.0.0.1:49152/description.xml`
    static CURL_GET: &[u8] = b"GET /description.xml HTTP/1.1\r\n\
Host: 127.0.0.1:49152\r\n\
User-Agent: curl/8.5.0\r\n\
Accept: */*\r\n\r\n";

    static RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
SERVER: Linux/6.1 UPnP/1.1 xenplug/0.1.0\r\n\
SID: uuid:5d7c1b76-0b2e-4a59-9b4e-000000000001\r\n\
TIMEOUT: Second-1800\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn parses_soap_post() {
        let head = RequestHead::parse(SOAP_POST).unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/control/Hypervisor");
        assert_eq!(head.version, Version::Http11);
        assert_eq!(
            head.header("soapaction"),
            Some("\"urn:xenplug-org:service:Hypervisor:1#GetHostInfo\"")
        );
        assert_eq!(
            head.header("Content-type"),
            Some("text/xml; charset=\"utf-8\"")
        );
        assert_eq!(head.content_length(), Ok(Some(299)));
        assert!(!head.is_chunked());
        assert!(head.keep_alive());
        assert_eq!(head.headers().count(), 8);
        assert_eq!(head.headers().next(), Some(("Host", "192.168.1.10:49152")));
    }

    #[test]
    fn parses_subscribe_and_curl() {
        let head = RequestHead::parse(SUBSCRIBE).unwrap();
        assert_eq!(head.method, "SUBSCRIBE");
        assert_eq!(
            head.header("callback"),
            Some("<http://192.168.1.20:8123/notify>")
        );
        assert_eq!(head.header("Timeout"), Some("Second-1800"));
        assert_eq!(head.content_length(), Ok(Some(0)));
        let head = RequestHead::parse(CURL_GET).unwrap();
        assert_eq!((head.method, head.target), ("GET", "/description.xml"));
        assert_eq!(head.content_length(), Ok(None));
        assert_eq!(head.header("missing"), None);
    }

    #[test]
    fn finds_head_end() {
        assert_eq!(find_head_end(CURL_GET), Some(CURL_GET.len()));
        let mut with_body = SOAP_POST.to_vec();
        with_body.extend_from_slice(b"<s:Envelope/>\r\n\r\n");
        assert_eq!(find_head_end(&with_body), Some(SOAP_POST.len()));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\r\n\nx"), Some(17));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\n\r\nx"), Some(17));
        assert_eq!(find_head_end(b"GET / HTTP/1.0\r\nHost: a\r\n"), None);
        assert_eq!(find_head_end(b""), None);
        assert_eq!(find_head_end(b"\n"), None);
        assert_eq!(find_head_end(b"\n\r"), None);
        for fixture in [SOAP_POST, SUBSCRIBE, CURL_GET] {
            for cut in 0..fixture.len() {
                assert_eq!(find_head_end(&fixture[..cut]), None);
            }
        }
    }

    #[test]
    fn bare_lf_heads_parse() {
        let head = RequestHead::parse(b"GET /a?b HTTP/1.0\nHost: x\n\n").unwrap();
        assert_eq!(head.target, "/a?b");
        assert_eq!(head.version, Version::Http10);
        assert_eq!(head.header("host"), Some("x"));
        assert!(!head.keep_alive());
    }

    #[test]
    fn every_truncated_prefix_is_refused_without_panic() {
        for fixture in [SOAP_POST, SUBSCRIBE, CURL_GET] {
            for cut in 0..fixture.len() {
                assert!(RequestHead::parse(&fixture[..cut]).is_err(), "cut {cut}");
            }
        }
        for cut in 0..RESPONSE.len() {
            assert!(
                ResponseStatus::parse(&RESPONSE[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn refuses_hostile_heads() {
        let malformed: &[&[u8]] = &[
            b"\r\n\r\n",
            b"GET  / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1 \r\n\r\n",
            b"GET /\r\n\r\n",
            b"G(T / HTTP/1.1\r\n\r\n",
            b"GET /a\x01 HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\r\n Host: x\r\n\r\n",
            b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            b"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: a\x7fb\r\n\r\n",
            b"GET / HTTP/1.1\r\nX: \xff\xfe\r\n\r\n",
            b"GET / HTTP/x.y\r\n\r\n",
            b"GET / FTP/1.1\r\n\r\n",
        ];
        for input in malformed {
            assert_eq!(
                RequestHead::parse(input).map(|_| ()),
                Err(Error::Malformed),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            RequestHead::parse(b"GET / HTTP/2.0\r\n\r\n").map(|_| ()),
            Err(Error::Unsupported)
        );
        assert_eq!(
            RequestHead::parse(b"GET / HTTP/1.1\r\nHost: x\r\n").map(|_| ()),
            Err(Error::Truncated)
        );
    }

    #[test]
    fn header_count_and_size_are_bounded() {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..consts::HTTP_MAX_HEADERS {
            head.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
        }
        let mut full = head.clone();
        full.extend_from_slice(b"\r\n");
        assert_eq!(RequestHead::parse(&full).unwrap().headers().count(), 32);
        head.extend_from_slice(b"One-More: v\r\n\r\n");
        assert_eq!(RequestHead::parse(&head).map(|_| ()), Err(Error::TooLong));

        let mut long = b"GET / HTTP/1.1\r\nX: ".to_vec();
        long.resize(consts::HTTP_MAX_HEAD, b'a');
        long.extend_from_slice(b"\r\n\r\n");
        assert_eq!(RequestHead::parse(&long).map(|_| ()), Err(Error::TooLong));
    }

    #[test]
    fn content_length_rules() {
        let parse = |text: &'static [u8]| RequestHead::parse(text).unwrap().content_length();
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: 5\r\n\r\n"),
            Ok(Some(5))
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
            Ok(Some(5))
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n"),
            Ok(Some(5))
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: +1\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n"),
            Err(Error::Malformed)
        );
        assert_eq!(
            parse(b"P / HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn chunked_and_connection_rules() {
        let head = |text: &'static [u8]| RequestHead::parse(text).unwrap();
        assert!(head(b"P / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n").is_chunked());
        assert!(head(b"P / HTTP/1.1\r\nTransfer-Encoding: Chunked \r\n\r\n").is_chunked());
        assert!(!head(b"P / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").is_chunked());
        assert!(!head(b"P / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n").is_chunked());
        assert!(!head(b"P / HTTP/1.1\r\n\r\n").is_chunked());
        assert!(!head(b"P / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive());
        assert!(!head(b"P / HTTP/1.1\r\nConnection: TE, Close\r\n\r\n").keep_alive());
        assert!(head(b"P / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n").keep_alive());
        assert!(head(b"P / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive());
        assert!(!head(b"P / HTTP/1.0\r\n\r\n").keep_alive());
    }

    #[test]
    fn parses_response_status() {
        let status = ResponseStatus::parse(RESPONSE).unwrap();
        assert_eq!(status.version, Version::Http11);
        assert_eq!(status.status, 200);
        assert_eq!(status.reason, "OK");
        assert_eq!(
            status.header("sid"),
            Some("uuid:5d7c1b76-0b2e-4a59-9b4e-000000000001")
        );
        assert_eq!(status.content_length(), Ok(Some(0)));
        assert_eq!(status.headers().count(), 4);
        assert!(!status.has_no_body("GET"));
        assert!(status.has_no_body("HEAD"));
        let bare = ResponseStatus::parse(b"HTTP/1.0 412\r\n\r\n").unwrap();
        assert_eq!((bare.status, bare.reason), (412, ""));
        let spaced = ResponseStatus::parse(b"HTTP/1.1 500 Internal Server Error\r\n\r\n").unwrap();
        assert_eq!(spaced.reason, "Internal Server Error");
        for bad in [
            &b"HTTP/1.1 20 OK\r\n\r\n"[..],
            b"HTTP/1.1 2000 OK\r\n\r\n",
            b"HTTP/1.1 099 X\r\n\r\n",
            b"HTTP/1.1 +20 OK\r\n\r\n",
            b"HTTP/1.1\r\n\r\n",
            b"ICY 200 OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX\r\n\r\n",
        ] {
            assert_eq!(
                ResponseStatus::parse(bad).map(|_| ()),
                Err(Error::Malformed)
            );
        }
    }

    #[test]
    fn emits_response_head() {
        let mut buffer = [0u8; 256];
        let mut cursor = Cursor::new(&mut buffer);
        ResponseHead {
            status: 200,
            headers: &[("Content-Type", "text/xml; charset=\"utf-8\""), ("EXT", "")],
            content_length: 42,
        }
        .emit(&mut cursor)
        .unwrap();
        assert_eq!(
            cursor.written(),
            b"HTTP/1.1 200 OK\r\nContent-Type: text/xml; charset=\"utf-8\"\r\nEXT: \r\n\
Content-Length: 42\r\n\r\n"
        );
        let emitted = cursor.written().to_vec();
        let parsed = ResponseStatus::parse(&emitted).unwrap();
        assert_eq!(parsed.status, 200);
        assert_eq!(parsed.header("ext"), Some(""));
        assert_eq!(parsed.content_length(), Ok(Some(42)));
    }

    #[test]
    fn emit_refuses_injection_and_overflow() {
        let mut buffer = [0u8; 256];
        for headers in [
            &[("X", "a\r\nInjected: 1")][..],
            &[("Bad Name", "v")][..],
            &[("", "v")][..],
            &[("X", " padded")][..],
        ] {
            let mut cursor = Cursor::new(&mut buffer);
            let head = ResponseHead {
                status: 200,
                headers,
                content_length: 0,
            };
            assert_eq!(head.emit(&mut cursor), Err(Error::Malformed));
            assert!(cursor.is_empty());
        }
        let mut small = [0u8; 20];
        let head = ResponseHead {
            status: 404,
            headers: &[],
            content_length: 0,
        };
        assert_eq!(head.emit(&mut Cursor::new(&mut small)), Err(Error::TooLong));
        let head = ResponseHead {
            status: 1000,
            headers: &[],
            content_length: 0,
        };
        assert_eq!(
            head.emit(&mut Cursor::new(&mut buffer)),
            Err(Error::Malformed)
        );
    }

    #[test]
    fn reasons_cover_what_we_send() {
        for status in [
            200, 400, 403, 404, 405, 408, 411, 412, 413, 415, 421, 429, 431, 500, 501, 503, 505,
        ] {
            assert!(!reason(status).is_empty(), "{status}");
        }
        assert_eq!(reason(299), "");
    }

    static CHUNKED: &[u8] = b"4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    const CHUNKED_BODY: &[u8] = b"Wikipedia in\r\n\r\nchunks.";

    #[test]
    fn decodes_chunked_body() {
        let mut out = Vec::new();
        let consumed = decode_chunked(CHUNKED, &mut out, 100).unwrap();
        assert_eq!(consumed, Some(CHUNKED.len() - 4));
        assert_eq!(out, CHUNKED_BODY);
        let mut out = b"prefix".to_vec();
        assert_eq!(decode_chunked(b"0\n\nX", &mut out, 0), Ok(Some(3)));
        assert_eq!(out, b"prefix");
    }

    #[test]
    fn chunked_every_prefix_needs_more_and_restores_output() {
        let complete = CHUNKED.len() - 4;
        for cut in 0..complete {
            let mut out = b"kept".to_vec();
            assert_eq!(
                decode_chunked(&CHUNKED[..cut], &mut out, 100),
                Ok(None),
                "cut {cut}"
            );
            assert_eq!(out, b"kept");
        }
    }

    #[test]
    fn chunked_split_at_every_position() {
        let complete = CHUNKED.len() - 4;
        for split in 0..=CHUNKED.len() {
            let mut decoder = ChunkedDecoder::new(100);
            let mut out = Vec::new();
            let (first, second) = CHUNKED.split_at(split);
            let result = match decoder.feed(first, &mut out).unwrap() {
                Progress::Done(n) => n,
                Progress::NeedMore => match decoder.feed(second, &mut out).unwrap() {
                    Progress::Done(n) => split + n,
                    Progress::NeedMore => panic!("not complete at split {split}"),
                },
            };
            assert_eq!(result, complete, "split {split}");
            assert_eq!(out, CHUNKED_BODY, "split {split}");
            assert_eq!(decoder.decoded(), CHUNKED_BODY.len());
        }
        let mut decoder = ChunkedDecoder::new(100);
        let mut out = Vec::new();
        let mut done = None;
        for (i, byte) in CHUNKED.iter().enumerate() {
            if let Progress::Done(n) = decoder.feed(core::slice::from_ref(byte), &mut out).unwrap()
            {
                done = Some(i + n);
                break;
            }
        }
        assert_eq!(done, Some(complete));
        assert_eq!(out, CHUNKED_BODY);
    }

    #[test]
    fn chunked_refuses_hostile_input() {
        let mut out = Vec::new();
        assert_eq!(decode_chunked(CHUNKED, &mut out, 10), Err(Error::TooLong));
        assert!(out.is_empty());
        let bad: &[&[u8]] = &[
            b"x\r\n",
            b"\r\n",
            b"-1\r\n",
            b"4\r\nWikiX\r\n",
            b"4\r\nWiki\rX",
            b"0\r\n\rX",
            b"4;\x00\r\n",
        ];
        for input in bad {
            assert_eq!(
                decode_chunked(input, &mut out, 100),
                Err(Error::Malformed),
                "{input:?}"
            );
        }
        assert_eq!(
            decode_chunked(b"00000000000000001\r\n", &mut out, 100),
            Err(Error::TooLong)
        );
        assert_eq!(
            decode_chunked(b"4\r\r\nWiki", &mut out, 100),
            Err(Error::Malformed)
        );
        assert_eq!(
            decode_chunked(b"ffffffff\r\n", &mut out, 100),
            Err(Error::TooLong)
        );
        let mut long_extension = b"1;".to_vec();
        long_extension.resize(consts::HTTP_MAX_HEAD + 10, b'a');
        assert_eq!(
            decode_chunked(&long_extension, &mut out, 100),
            Err(Error::TooLong)
        );
        let mut long_trailer = b"0\r\n".to_vec();
        long_trailer.resize(consts::HTTP_MAX_HEAD + 10, b'a');
        assert_eq!(
            decode_chunked(&long_trailer, &mut out, 100),
            Err(Error::TooLong)
        );
        assert!(out.is_empty());
    }

    #[test]
    fn chunked_decoder_stops_after_done() {
        let mut decoder = ChunkedDecoder::new(10);
        let mut out = Vec::new();
        assert_eq!(
            decoder.feed(b"1\r\na\r\n0\r\n\r\n", &mut out),
            Ok(Progress::Done(11))
        );
        assert_eq!(decoder.feed(b"more", &mut out), Ok(Progress::Done(0)));
        assert_eq!(out, b"a");
    }

    #[test]
    fn random_inputs_never_panic() {
        let alphabet = b"GETPOST /HTP1.0:;\r\n\t \x00\x7f\xffaA0fF9,";
        let mut rng = fastrand::Rng::with_seed(7);
        let mut input = Vec::new();
        for _ in 0..5000 {
            input.clear();
            let len = rng.usize(0..64);
            input.extend((0..len).map(|_| alphabet[rng.usize(0..alphabet.len())]));
            let _ = RequestHead::parse(&input).map(|h| (h.content_length(), h.keep_alive()));
            let _ = ResponseStatus::parse(&input).map(|h| h.is_chunked());
            let _ = find_head_end(&input);
            let mut out = Vec::new();
            let _ = decode_chunked(&input, &mut out, 16);
            assert!(out.len() <= 16);
        }
    }

    #[test]
    fn http_url_parts_take_literal_ipv4_only() {
        let parts = |url| http_url_parts(url, 512);
        let address = |text: &str| text.parse::<std::net::SocketAddrV4>().unwrap();
        assert_eq!(
            parts("http://10.0.0.1:8080/description.xml"),
            Some((address("10.0.0.1:8080"), "/description.xml"))
        );
        assert_eq!(
            parts("HTTP://10.0.0.1"),
            Some((address("10.0.0.1:80"), "/"))
        );
        assert_eq!(
            parts("http://10.0.0.1/a?b#c"),
            Some((address("10.0.0.1:80"), "/a?b"))
        );
        for bad in [
            "https://10.0.0.1/",
            "http://host/",
            "http://10.1/",
            "http://010.0.0.1/",
            "http://u@10.0.0.1/",
            "http://10.0.0.1:/",
            "http://10.0.0.1:0/",
            "http://10.0.0.1:99999/",
            "http://10.0.0.1 /",
            "http://10.0.0.1x",
            "http://[::1]/",
        ] {
            assert_eq!(parts(bad), None, "{bad}");
        }
        assert_eq!(http_url_parts("http://10.0.0.1/abc", 10), None);
    }

    #[test]
    fn host_matching_rules() {
        let v4: SocketAddr = "192.168.1.10:49152".parse().unwrap();
        assert!(host_matches("192.168.1.10", v4));
        assert!(host_matches("192.168.1.10:49152", v4));
        for bad in [
            "192.168.1.10:80",
            "192.168.1.10:",
            "192.168.1.10:+49152",
            "192.168.1.11",
            "[192.168.1.10]",
            "192.168.001.010",
            "router.lan:49152",
            "",
        ] {
            assert!(!host_matches(bad, v4), "{bad}");
        }
        let v6: SocketAddr = "[fe80::1]:8080".parse().unwrap();
        assert!(host_matches("[fe80::1]", v6));
        assert!(host_matches("[FE80::0001]:8080", v6));
        for bad in [
            "fe80::1",
            "[fe80::1]8080",
            "[fe80::1]:80",
            "[fe80::1",
            "[::1]:8080",
        ] {
            assert!(!host_matches(bad, v6), "{bad}");
        }
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
        assert!(host_matches("10.0.0.1:80", mapped));
    }

    #[test]
    fn framing_rules() {
        let cases: [(&[u8], core::result::Result<Framing, u16>); 10] = [
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", Ok(Framing::Length(0))),
            (
                b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n",
                Ok(Framing::Length(12)),
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: 65\r\n\r\n", Err(413)),
            (b"POST / HTTP/1.1\r\n\r\n", Err(411)),
            (b"NOTIFY / HTTP/1.1\r\n\r\n", Err(411)),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                Ok(Framing::Chunked),
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                Err(501),
            ),
            (
                b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                Err(400),
            ),
            (
                b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
                Err(400),
            ),
            (b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", Err(400)),
        ];
        for (bytes, expected) in cases {
            let head = RequestHead::parse(bytes).unwrap();
            assert_eq!(
                head.framing(64),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn target_and_host_rules() {
        let local: SocketAddr = "10.0.0.1:8080".parse().unwrap();
        let cases: [(&[u8], core::result::Result<(), u16>); 6] = [
            (b"GET /a HTTP/1.1\r\nHost: 10.0.0.1:8080\r\n\r\n", Ok(())),
            (b"GET /a HTTP/1.0\r\n\r\n", Ok(())),
            (b"GET /a HTTP/1.1\r\n\r\n", Err(400)),
            (b"GET /a HTTP/1.1\r\nHost: evil.example\r\n\r\n", Err(400)),
            (
                b"GET /a HTTP/1.1\r\nHost: 10.0.0.1\r\nHost: 10.0.0.1\r\n\r\n",
                Err(400),
            ),
            (
                b"GET http://10.0.0.1/a HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n",
                Err(400),
            ),
        ];
        for (bytes, expected) in cases {
            let head = RequestHead::parse(bytes).unwrap();
            assert_eq!(
                head.check_target_and_host(local),
                expected,
                "{}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(refusal_status(Error::TooLong), 431);
        assert_eq!(refusal_status(Error::Unsupported), 505);
        assert_eq!(refusal_status(Error::Malformed), 400);
    }
}
