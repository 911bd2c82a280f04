//! Wire layer: SSDP datagrams (UDA 1.1 section 1) as borrowed views with `parse` and `emit`.
//! No I/O, no clock, no allocation, never panics on any input.
//!
//! Parsing is lenient where real stacks differ (header case, bare LF line ends, spaces inside
//! CACHE-CONTROL, unknown headers) and strict where ambiguity could be abused (duplicate
//! headers, missing required headers, oversized datagrams, non-UTF-8 text).

use crate::consts::SSDP_MAX_DATAGRAM;
use crate::wire::{Cursor, Error, Result};

/// Most header lines one SSDP message may carry before it is dropped.
const SSDP_MAX_HEADERS: usize = 32;

/// One SSDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// `NOTIFY * HTTP/1.1`: an advertisement (alive, byebye or update).
    Notify(Notify<'a>),
    /// `M-SEARCH * HTTP/1.1`: a search request.
    Search(Search<'a>),
    /// `HTTP/1.1 200 OK`: a search response.
    Response(Response<'a>),
}

/// NTS header of a NOTIFY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyKind {
    /// `ssdp:alive` (UDA 1.1 section 1.2.2).
    Alive,
    /// `ssdp:byebye` (UDA 1.1 section 1.2.3).
    ByeBye,
    /// `ssdp:update` (UDA 1.1 section 1.2.4).
    Update,
}

impl NotifyKind {
    /// The NTS header value.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyKind::Alive => "ssdp:alive",
            NotifyKind::ByeBye => "ssdp:byebye",
            NotifyKind::Update => "ssdp:update",
        }
    }

    fn parse(value: &str) -> Result<Self> {
        [NotifyKind::Alive, NotifyKind::ByeBye, NotifyKind::Update]
            .into_iter()
            .find(|kind| kind.as_str().eq_ignore_ascii_case(value))
            .ok_or(Error::Unsupported)
    }
}

/// A NOTIFY advertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify<'a> {
    /// HOST header (`239.255.255.250:1900`).
    pub host: &'a str,
    /// NT header: the notification target.
    pub notification_type: &'a str,
    /// NTS header: alive, byebye or update.
    pub notification_subtype: NotifyKind,
    /// USN header: the unique service name.
    pub unique_service_name: &'a str,
    /// LOCATION header: URL of the root description (required for alive and update).
    pub location: Option<&'a str>,
    /// `max-age` directive of the CACHE-CONTROL header, in seconds.
    pub max_age: Option<u32>,
    /// SERVER header.
    pub server: Option<&'a str>,
    /// BOOTID.UPNP.ORG header.
    pub boot_id: Option<u32>,
    /// CONFIGID.UPNP.ORG header.
    pub config_id: Option<u32>,
    /// NEXTBOOTID.UPNP.ORG header (update only).
    pub next_boot_id: Option<u32>,
    /// SEARCHPORT.UPNP.ORG header: the unicast search port when it is not 1900.
    pub search_port: Option<u16>,
}

/// An M-SEARCH request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Search<'a> {
    /// HOST header: the multicast group, or the device's address for a unicast search.
    pub host: &'a str,
    /// MAN header, raw, quotes included (`"ssdp:discover"`).
    pub mandatory_extension: &'a str,
    /// MX header, raw: whether it is a valid number is the engine's decision.
    pub max_wait: Option<&'a str>,
    /// ST header: the search target.
    pub search_target: &'a str,
    /// USER-AGENT header.
    pub user_agent: Option<&'a str>,
}

/// A search response (UDA 1.1 section 1.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response<'a> {
    /// ST header: the search target answered.
    pub search_target: &'a str,
    /// USN header: the unique service name.
    pub unique_service_name: &'a str,
    /// LOCATION header.
    pub location: &'a str,
    /// `max-age` directive of the CACHE-CONTROL header, in seconds.
    pub max_age: Option<u32>,
    /// SERVER header.
    pub server: Option<&'a str>,
    /// BOOTID.UPNP.ORG header.
    pub boot_id: Option<u32>,
    /// CONFIGID.UPNP.ORG header.
    pub config_id: Option<u32>,
    /// SEARCHPORT.UPNP.ORG header.
    pub search_port: Option<u16>,
    /// DATE header, raw.
    pub date: Option<&'a str>,
    /// Whether the (empty) EXT header is present: it confirms that the MAN extension was
    /// understood (UDA 1.1 section 1.3.3).
    pub extension_confirmed: bool,
}

/// Parses one SSDP datagram.
///
/// Errors: [`Error::TooLong`] above [`SSDP_MAX_DATAGRAM`] bytes or `SSDP_MAX_HEADERS` header
/// lines; [`Error::Truncated`] when the blank line closing the headers is missing;
/// [`Error::Unsupported`] for other methods, statuses, versions or NTS values;
/// [`Error::Malformed`] for anything else wrong, including a missing required header.
pub fn parse(datagram: &[u8]) -> Result<Message<'_>> {
    if datagram.len() > SSDP_MAX_DATAGRAM {
        return Err(Error::TooLong);
    }
    let mut lines = Lines { rest: datagram };
    let start = lines.next_line()?.ok_or(Error::Truncated)?;
    let kind = start_line(start)?;
    let mut fields = Fields::default();
    let mut count = 0usize;
    loop {
        let line = lines.next_line()?.ok_or(Error::Truncated)?;
        if line.is_empty() {
            break;
        }
        count += 1;
        if count > SSDP_MAX_HEADERS {
            return Err(Error::TooLong);
        }
        fields.add(line)?;
    }
    // Anything after the blank line is ignored: SSDP messages have no body.
    match kind {
        StartLine::Notify => fields.notify().map(Message::Notify),
        StartLine::Search => fields.search().map(Message::Search),
        StartLine::Response => fields.response().map(Message::Response),
    }
}

impl Notify<'_> {
    /// Writes the NOTIFY with the UDA 1.1 header set of its kind (section 1.2.2 alive: HOST,
    /// CACHE-CONTROL, LOCATION, NT, NTS, SERVER, USN, BOOTID, CONFIGID, SEARCHPORT; 1.2.3
    /// byebye: HOST, NT, NTS, USN, BOOTID, CONFIGID; 1.2.4 update: HOST, LOCATION, NT, NTS,
    /// USN, BOOTID, CONFIGID, NEXTBOOTID, SEARCHPORT). Numeric `.UPNP.ORG` headers are written
    /// when present. Fails with [`Error::Malformed`] when alive lacks LOCATION, max-age or
    /// SERVER, or update lacks LOCATION, or a value holds CR or LF; with [`Error::TooLong`]
    /// when the cursor is full.
    pub fn emit(&self, cursor: &mut Cursor) -> Result<()> {
        cursor.put_str("NOTIFY * HTTP/1.1\r\n")?;
        header(cursor, "HOST", self.host)?;
        match self.notification_subtype {
            NotifyKind::Alive => {
                let max_age = self.max_age.ok_or(Error::Malformed)?;
                header_max_age(cursor, max_age)?;
                header(cursor, "LOCATION", self.location.ok_or(Error::Malformed)?)?;
                header(cursor, "NT", self.notification_type)?;
                header(cursor, "NTS", self.notification_subtype.as_str())?;
                header(cursor, "SERVER", self.server.ok_or(Error::Malformed)?)?;
                header(cursor, "USN", self.unique_service_name)?;
                header_number(cursor, BOOTID, self.boot_id)?;
                header_number(cursor, CONFIGID, self.config_id)?;
                header_number(cursor, SEARCHPORT, self.search_port.map(u32::from))?;
            }
            NotifyKind::ByeBye => {
                header(cursor, "NT", self.notification_type)?;
                header(cursor, "NTS", self.notification_subtype.as_str())?;
                header(cursor, "USN", self.unique_service_name)?;
                header_number(cursor, BOOTID, self.boot_id)?;
                header_number(cursor, CONFIGID, self.config_id)?;
            }
            NotifyKind::Update => {
                header(cursor, "LOCATION", self.location.ok_or(Error::Malformed)?)?;
                header(cursor, "NT", self.notification_type)?;
                header(cursor, "NTS", self.notification_subtype.as_str())?;
                header(cursor, "USN", self.unique_service_name)?;
                header_number(cursor, BOOTID, self.boot_id)?;
                header_number(cursor, CONFIGID, self.config_id)?;
                header_number(cursor, NEXTBOOTID, self.next_boot_id)?;
                header_number(cursor, SEARCHPORT, self.search_port.map(u32::from))?;
            }
        }
        cursor.put_str("\r\n")
    }
}

impl Search<'_> {
    /// Writes the M-SEARCH (UDA 1.1 section 1.3.2): HOST, MAN, MX if any, ST, USER-AGENT if
    /// any. Fails with [`Error::Malformed`] when a value holds CR or LF, [`Error::TooLong`]
    /// when the cursor is full.
    pub fn emit(&self, cursor: &mut Cursor) -> Result<()> {
        cursor.put_str("M-SEARCH * HTTP/1.1\r\n")?;
        header(cursor, "HOST", self.host)?;
        header(cursor, "MAN", self.mandatory_extension)?;
        if let Some(mx) = self.max_wait {
            header(cursor, "MX", mx)?;
        }
        header(cursor, "ST", self.search_target)?;
        if let Some(user_agent) = self.user_agent {
            header(cursor, "USER-AGENT", user_agent)?;
        }
        cursor.put_str("\r\n")
    }
}

impl Response<'_> {
    /// Writes the search response (UDA 1.1 section 1.3.3): CACHE-CONTROL, DATE if any, EXT if
    /// set, LOCATION, SERVER, ST, USN, then BOOTID, CONFIGID and SEARCHPORT when present.
    /// Fails with [`Error::Malformed`] without max-age or SERVER (both required) or when a
    /// value holds CR or LF, [`Error::TooLong`] when the cursor is full.
    pub fn emit(&self, cursor: &mut Cursor) -> Result<()> {
        cursor.put_str("HTTP/1.1 200 OK\r\n")?;
        header_max_age(cursor, self.max_age.ok_or(Error::Malformed)?)?;
        if let Some(date) = self.date {
            header(cursor, "DATE", date)?;
        }
        if self.extension_confirmed {
            header(cursor, "EXT", "")?;
        }
        header(cursor, "LOCATION", self.location)?;
        header(cursor, "SERVER", self.server.ok_or(Error::Malformed)?)?;
        header(cursor, "ST", self.search_target)?;
        header(cursor, "USN", self.unique_service_name)?;
        header_number(cursor, BOOTID, self.boot_id)?;
        header_number(cursor, CONFIGID, self.config_id)?;
        header_number(cursor, SEARCHPORT, self.search_port.map(u32::from))?;
        cursor.put_str("\r\n")
    }

    /// Bytes [`Response::emit`] writes for this response (when it succeeds): what a device
    /// counts against a reply budget before rendering anything.
    pub fn buffer_len(&self) -> usize {
        let max_age = "CACHE-CONTROL: max-age=".len()
            + decimal_len(u64::from(self.max_age.unwrap_or_default()))
            + 2;
        "HTTP/1.1 200 OK\r\n".len()
            + max_age
            + self.date.map_or(0, |date| header_len("DATE", date))
            + if self.extension_confirmed {
                header_len("EXT", "")
            } else {
                0
            }
            + header_len("LOCATION", self.location)
            + header_len("SERVER", self.server.unwrap_or_default())
            + header_len("ST", self.search_target)
            + header_len("USN", self.unique_service_name)
            + number_len(BOOTID, self.boot_id)
            + number_len(CONFIGID, self.config_id)
            + number_len(SEARCHPORT, self.search_port.map(u32::from))
            + 2
    }
}

// ---- emitting ----------------------------------------------------------------------------------

const BOOTID: &str = "BOOTID.UPNP.ORG";
const CONFIGID: &str = "CONFIGID.UPNP.ORG";
const NEXTBOOTID: &str = "NEXTBOOTID.UPNP.ORG";
const SEARCHPORT: &str = "SEARCHPORT.UPNP.ORG";

/// `NAME: value` CRLF; an empty value is written as `NAME:` (the EXT header). A value holding
/// CR or LF would start a new header (injection), so it is refused.
fn header(cursor: &mut Cursor, name: &str, value: &str) -> Result<()> {
    if value.bytes().any(|byte| byte == b'\r' || byte == b'\n') {
        return Err(Error::Malformed);
    }
    cursor.put_str(name)?;
    cursor.put_str(if value.is_empty() { ":" } else { ": " })?;
    cursor.put_str(value)?;
    cursor.put_str("\r\n")
}

/// Bytes [`header`] writes.
fn header_len(name: &str, value: &str) -> usize {
    name.len() + if value.is_empty() { 1 } else { 2 } + value.len() + 2
}

/// Bytes [`header_number`] writes.
fn number_len(name: &str, value: Option<u32>) -> usize {
    value.map_or(0, |value| {
        name.len() + 2 + decimal_len(u64::from(value)) + 2
    })
}

/// Digits of `value` in decimal.
fn decimal_len(value: u64) -> usize {
    value.checked_ilog10().map_or(1, |log| log as usize + 1)
}

fn header_number(cursor: &mut Cursor, name: &str, value: Option<u32>) -> Result<()> {
    let Some(value) = value else {
        return Ok(());
    };
    cursor.put_str(name)?;
    cursor.put_str(": ")?;
    cursor.put_u64(u64::from(value))?;
    cursor.put_str("\r\n")
}

fn header_max_age(cursor: &mut Cursor, max_age: u32) -> Result<()> {
    cursor.put_str("CACHE-CONTROL: max-age=")?;
    cursor.put_u64(u64::from(max_age))?;
    cursor.put_str("\r\n")
}

// ---- parsing -----------------------------------------------------------------------------------

/// Splits a datagram into lines ended by LF, with an optional CR before it: UDA asks for CRLF
/// but some stacks send bare LF.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Lines<'a> {
    /// The next complete line, `None` when the input ends before its LF.
    fn next_line(&mut self) -> Result<Option<&'a str>> {
        let Some(end) = self.rest.iter().position(|&byte| byte == b'\n') else {
            return Ok(None);
        };
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest.get(1..).unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        core::str::from_utf8(line)
            .map(Some)
            .map_err(|_| Error::Malformed)
    }
}

#[derive(Debug, Clone, Copy)]
enum StartLine {
    Notify,
    Search,
    Response,
}

fn start_line(line: &str) -> Result<StartLine> {
    if line.starts_with("HTTP/") {
        let mut parts = line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        let status = parts.next().ok_or(Error::Malformed)?;
        if status.len() != 3 || !status.bytes().all(|byte| byte.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        // The reason phrase is not checked: only the code carries meaning.
        if version != "HTTP/1.1" || status != "200" {
            return Err(Error::Unsupported);
        }
        return Ok(StartLine::Response);
    }
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Malformed);
    };
    let token = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
    if method.is_empty() || !method.bytes().all(token) || !version.starts_with("HTTP/") {
        return Err(Error::Malformed);
    }
    if version != "HTTP/1.1" {
        return Err(Error::Unsupported);
    }
    let kind = match method {
        "NOTIFY" => StartLine::Notify,
        "M-SEARCH" => StartLine::Search,
        _ => return Err(Error::Unsupported),
    };
    if target != "*" {
        return Err(Error::Malformed);
    }
    Ok(kind)
}

/// The raw values of every header SSDP gives a meaning to; unknown headers are skipped.
#[derive(Default)]
struct Fields<'a> {
    host: Option<&'a str>,
    notification_type: Option<&'a str>,
    notification_subtype: Option<&'a str>,
    unique_service_name: Option<&'a str>,
    location: Option<&'a str>,
    cache_control: Option<&'a str>,
    server: Option<&'a str>,
    boot_id: Option<&'a str>,
    config_id: Option<&'a str>,
    next_boot_id: Option<&'a str>,
    search_port: Option<&'a str>,
    mandatory_extension: Option<&'a str>,
    max_wait: Option<&'a str>,
    search_target: Option<&'a str>,
    user_agent: Option<&'a str>,
    date: Option<&'a str>,
    extension_confirmed: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// Records one `Name: value` line.
    fn add(&mut self, line: &'a str) -> Result<()> {
        // A line opening with white space is an obsolete folded continuation (RFC 7230
        // section 3.2.4); nothing in SSDP needs it.
        if line.starts_with([' ', '\t']) {
            return Err(Error::Malformed);
        }
        let (name, value) = line.split_once(':').ok_or(Error::Malformed)?;
        // Some stacks write `NAME :`; tolerated, but a name never holds inner white space.
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(|byte| byte.is_ascii_graphic()) {
            return Err(Error::Malformed);
        }
        let value = value.trim_matches([' ', '\t']);
        let Some(slot) = self.slot(name) else {
            return Ok(());
        };
        // Two values for one header: which one a peer reads is ambiguous, so refuse both.
        if slot.is_some() {
            return Err(Error::Malformed);
        }
        *slot = Some(value);
        Ok(())
    }

    fn slot(&mut self, name: &str) -> Option<&mut Option<&'a str>> {
        let table: [(&str, &mut Option<&'a str>); 17] = [
            ("HOST", &mut self.host),
            ("NT", &mut self.notification_type),
            ("NTS", &mut self.notification_subtype),
            ("USN", &mut self.unique_service_name),
            ("LOCATION", &mut self.location),
            ("CACHE-CONTROL", &mut self.cache_control),
            ("SERVER", &mut self.server),
            (BOOTID, &mut self.boot_id),
            (CONFIGID, &mut self.config_id),
            (NEXTBOOTID, &mut self.next_boot_id),
            (SEARCHPORT, &mut self.search_port),
            ("MAN", &mut self.mandatory_extension),
            ("MX", &mut self.max_wait),
            ("ST", &mut self.search_target),
            ("USER-AGENT", &mut self.user_agent),
            ("DATE", &mut self.date),
            ("EXT", &mut self.extension_confirmed),
        ];
        table
            .into_iter()
            .find(|(known, _)| known.eq_ignore_ascii_case(name))
            .map(|(_, slot)| slot)
    }

    fn notify(&self) -> Result<Notify<'a>> {
        let nts = NotifyKind::parse(self.notification_subtype.ok_or(Error::Malformed)?)?;
        if nts != NotifyKind::ByeBye && self.location.is_none() {
            return Err(Error::Malformed);
        }
        Ok(Notify {
            host: self.host.ok_or(Error::Malformed)?,
            notification_type: self.notification_type.ok_or(Error::Malformed)?,
            notification_subtype: nts,
            unique_service_name: self.unique_service_name.ok_or(Error::Malformed)?,
            location: self.location,
            max_age: self.max_age()?,
            server: self.server,
            boot_id: optional_id(self.boot_id)?,
            config_id: optional_id(self.config_id)?,
            next_boot_id: optional_id(self.next_boot_id)?,
            search_port: self.search_port()?,
        })
    }

    fn search(&self) -> Result<Search<'a>> {
        Ok(Search {
            host: self.host.ok_or(Error::Malformed)?,
            mandatory_extension: self.mandatory_extension.ok_or(Error::Malformed)?,
            max_wait: self.max_wait,
            search_target: self.search_target.ok_or(Error::Malformed)?,
            user_agent: self.user_agent,
        })
    }

    fn response(&self) -> Result<Response<'a>> {
        Ok(Response {
            search_target: self.search_target.ok_or(Error::Malformed)?,
            unique_service_name: self.unique_service_name.ok_or(Error::Malformed)?,
            location: self.location.ok_or(Error::Malformed)?,
            max_age: self.max_age()?,
            server: self.server,
            boot_id: optional_id(self.boot_id)?,
            config_id: optional_id(self.config_id)?,
            search_port: self.search_port()?,
            date: self.date,
            extension_confirmed: self.extension_confirmed.is_some(),
        })
    }

    /// The `max-age` directive of CACHE-CONTROL. Windows writes `max-age = 900`, some stacks
    /// add `no-cache="Ext"`; other directives are ignored (UDA 1.1 section 1.2.2).
    fn max_age(&self) -> Result<Option<u32>> {
        let Some(value) = self.cache_control else {
            return Ok(None);
        };
        for directive in value.split(',') {
            let (name, argument) = match directive.split_once('=') {
                Some((name, argument)) => (name, Some(argument)),
                None => (directive, None),
            };
            if name.trim().eq_ignore_ascii_case("max-age") {
                let argument = argument.ok_or(Error::Malformed)?.trim().trim_matches('"');
                return number(argument).map(Some);
            }
        }
        Ok(None)
    }

    fn search_port(&self) -> Result<Option<u16>> {
        optional_number(self.search_port)?
            .map(|port| u16::try_from(port).map_err(|_| Error::Malformed))
            .transpose()
    }
}

/// A decimal number: digits only (no sign, no spaces), fitting a `u32`.
pub(crate) fn number(text: &str) -> Result<u32> {
    if text.is_empty() {
        return Err(Error::Malformed);
    }
    text.bytes().try_fold(0u32, |value, byte| {
        if !byte.is_ascii_digit() {
            return Err(Error::Malformed);
        }
        value
            .checked_mul(10)
            .and_then(|value| value.checked_add(u32::from(byte - b'0')))
            .ok_or(Error::Malformed)
    })
}

fn optional_number(text: Option<&str>) -> Result<Option<u32>> {
    text.map(number).transpose()
}

/// A BOOTID, CONFIGID or NEXTBOOTID value. UDA 1.1 section 1.2.2 makes each a non-negative
/// 31-bit number, but GSSDP 1.6 writes `-1` for both BOOTID and CONFIGID unless the
/// application sets them, so every GUPnP 1.6 device on a UDA 1.1 context that does not sends
/// `-1`. A negative decimal carries no identity: it reads as absent (as from a UDA 1.0
/// device), so the advertisement itself is kept. Anything else not a number is malformed.
fn optional_id(text: Option<&str>) -> Result<Option<u32>> {
    match text.and_then(|text| text.strip_prefix('-')) {
        Some(magnitude) => number(magnitude).map(|_| None),
        None => optional_number(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An M-SEARCH as GUPnP's gssdp writes it (mixed-case names, MX after ST).
    static GSSDP_SEARCH: &[u8] = b"M-SEARCH * HTTP/1.1\r\n\
Host: 239.255.255.250:1900\r\n\
Man: \"ssdp:discover\"\r\n\
ST: urn:schemas-upnp-org:device:MediaRenderer:1\r\n\
MX: 3\r\n\
User-Agent: Linux/6.8.0 UPnP/1.0 GUPnP/1.6.6\r\n\
CPFN.UPNP.ORG: rygel-test\r\n\
\r\n";

    /// A NOTIFY in the style of miniupnpd (OPT / 01-NLS headers we ignore).
    static MINIUPNPD_NOTIFY: &[u8] = b"NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
CACHE-CONTROL: max-age=120\r\n\
LOCATION: http://192.168.1.1:5000/rootDesc.xml\r\n\
SERVER: OpenWRT/23.05 UPnP/1.1 MiniUPnPd/2.3.4\r\n\
NT: urn:schemas-upnp-org:service:WANIPConnection:1\r\n\
USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::urn:schemas-upnp-org:service:WANIPConnection:1\r\n\
NTS: ssdp:alive\r\n\
OPT: \"http://schemas.upnp.org/upnp/1/0/\"; ns=01\r\n\
01-NLS: 1700000000\r\n\
BOOTID.UPNP.ORG: 1700000000\r\n\
CONFIGID.UPNP.ORG: 1337\r\n\
\r\n";

    /// A search response in the style of Windows' UPnP Device Host: lower-case names, spaces
    /// around `=`, an extra CACHE-CONTROL directive.
    static WINDOWS_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
cache-control: no-cache=\"Ext\", max-age = 900\r\n\
date: Tue, 24 Nov 2026 00:00:00 GMT\r\n\
ext:\r\n\
location: http://192.168.1.20:2869/upnphost/udhisapi.dll?content=uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c\r\n\
server: Microsoft-Windows/10.0 UPnP/1.0 UPnP-Device-Host/1.0\r\n\
st: upnp:rootdevice\r\n\
usn: uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c::upnp:rootdevice\r\n\
content-length: 0\r\n\
\r\n";

    static BYEBYE: &[u8] = b"NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
NT: upnp:rootdevice\r\n\
NTS: ssdp:byebye\r\n\
USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 7\r\n\
CONFIGID.UPNP.ORG: 3\r\n\
\r\n";

    static UPDATE: &[u8] = b"NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
LOCATION: http://10.0.0.2:49152/description.xml\r\n\
NT: upnp:rootdevice\r\n\
NTS: ssdp:update\r\n\
USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 7\r\n\
CONFIGID.UPNP.ORG: 3\r\n\
NEXTBOOTID.UPNP.ORG: 8\r\n\
SEARCHPORT.UPNP.ORG: 49200\r\n\
\r\n";

    static FIXTURES: [&[u8]; 5] = [
        GSSDP_SEARCH,
        MINIUPNPD_NOTIFY,
        WINDOWS_RESPONSE,
        BYEBYE,
        UPDATE,
    ];

    fn emit_to_vec(emit: impl FnOnce(&mut Cursor) -> Result<()>) -> Vec<u8> {
        let mut buffer = [0u8; crate::consts::SSDP_EMIT_BUFFER];
        let mut cursor = Cursor::new(&mut buffer);
        emit(&mut cursor).unwrap();
        cursor.written().to_vec()
    }

    fn emit_message(message: &Message) -> Vec<u8> {
        emit_to_vec(|cursor| match message {
            Message::Notify(notify) => notify.emit(cursor),
            Message::Search(search) => search.emit(cursor),
            Message::Response(response) => response.emit(cursor),
        })
    }

    #[test]
    fn parses_gssdp_search() {
        let Message::Search(search) = parse(GSSDP_SEARCH).unwrap() else {
            panic!("not a search");
        };
        assert_eq!(search.host, "239.255.255.250:1900");
        assert_eq!(search.mandatory_extension, "\"ssdp:discover\"");
        assert_eq!(search.max_wait, Some("3"));
        assert_eq!(
            search.search_target,
            "urn:schemas-upnp-org:device:MediaRenderer:1"
        );
        assert_eq!(search.user_agent, Some("Linux/6.8.0 UPnP/1.0 GUPnP/1.6.6"));
    }

    #[test]
    fn parses_miniupnpd_notify() {
        let Message::Notify(notify) = parse(MINIUPNPD_NOTIFY).unwrap() else {
            panic!("not a notify");
        };
        assert_eq!(notify.notification_subtype, NotifyKind::Alive);
        assert_eq!(
            notify.notification_type,
            "urn:schemas-upnp-org:service:WANIPConnection:1"
        );
        assert!(notify
            .unique_service_name
            .ends_with("::urn:schemas-upnp-org:service:WANIPConnection:1"));
        assert_eq!(
            notify.location,
            Some("http://192.168.1.1:5000/rootDesc.xml")
        );
        assert_eq!(notify.max_age, Some(120));
        assert_eq!(
            notify.server,
            Some("OpenWRT/23.05 UPnP/1.1 MiniUPnPd/2.3.4")
        );
        assert_eq!(notify.boot_id, Some(1_700_000_000));
        assert_eq!(notify.config_id, Some(1337));
        assert_eq!(notify.next_boot_id, None);
        assert_eq!(notify.search_port, None);
    }

    #[test]
    fn parses_windows_response() {
        let Message::Response(response) = parse(WINDOWS_RESPONSE).unwrap() else {
            panic!("not a response");
        };
        assert_eq!(response.search_target, "upnp:rootdevice");
        assert_eq!(
            response.unique_service_name,
            "uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c::upnp:rootdevice"
        );
        assert!(response.location.starts_with("http://192.168.1.20:2869/"));
        assert_eq!(response.max_age, Some(900));
        assert_eq!(response.date, Some("Tue, 24 Nov 2026 00:00:00 GMT"));
        assert!(response.extension_confirmed);
        assert_eq!(response.boot_id, None);
    }

    #[test]
    fn parses_byebye_and_update() {
        let Message::Notify(byebye) = parse(BYEBYE).unwrap() else {
            panic!("not a notify");
        };
        assert_eq!(byebye.notification_subtype, NotifyKind::ByeBye);
        assert_eq!(byebye.location, None);
        assert_eq!((byebye.boot_id, byebye.config_id), (Some(7), Some(3)));
        let Message::Notify(update) = parse(UPDATE).unwrap() else {
            panic!("not a notify");
        };
        assert_eq!(update.notification_subtype, NotifyKind::Update);
        assert_eq!(update.next_boot_id, Some(8));
        assert_eq!(update.search_port, Some(49200));
    }

    #[test]
    fn response_buffer_len_is_what_emit_writes() {
        let mut responses = Vec::new();
        for fixture in FIXTURES {
            if let Ok(Message::Response(response)) = parse(fixture) {
                responses.push(response);
            }
        }
        let base = responses[0];
        responses.extend([
            Response {
                date: None,
                extension_confirmed: false,
                boot_id: Some(0),
                config_id: Some(u32::MAX),
                search_port: Some(49152),
                max_age: Some(9),
                server: Some("x"),
                ..base
            },
            Response {
                boot_id: Some(10),
                config_id: Some(99),
                max_age: Some(1800),
                date: Some("Tue, 24 Nov 2026 00:00:00 GMT"),
                ..base
            },
        ]);
        for response in responses {
            let written = emit_to_vec(|cursor| response.emit(cursor));
            assert_eq!(response.buffer_len(), written.len(), "{response:?}");
        }
        for value in [0, 9, 10, 99, 100, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(decimal_len(value), value.to_string().len());
        }
    }

    #[test]
    fn bare_lf_parses_like_crlf() {
        for fixture in FIXTURES {
            let bare: Vec<u8> = fixture.iter().copied().filter(|&b| b != b'\r').collect();
            assert_eq!(parse(&bare).unwrap(), parse(fixture).unwrap());
        }
    }

    #[test]
    fn emits_exact_alive() {
        let notify = Notify {
            host: crate::consts::SSDP_HOST,
            notification_type: "upnp:rootdevice",
            notification_subtype: NotifyKind::Alive,
            unique_service_name: "uuid:abc::upnp:rootdevice",
            location: Some("http://10.0.0.2:49152/description.xml"),
            max_age: Some(1800),
            server: Some("Linux/6 UPnP/1.1 xenplug/0.1"),
            boot_id: Some(4),
            config_id: Some(9),
            next_boot_id: Some(5),
            search_port: None,
        };
        let bytes = emit_to_vec(|cursor| notify.emit(cursor));
        assert_eq!(
            bytes,
            b"NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
CACHE-CONTROL: max-age=1800\r\n\
LOCATION: http://10.0.0.2:49152/description.xml\r\n\
NT: upnp:rootdevice\r\n\
NTS: ssdp:alive\r\n\
SERVER: Linux/6 UPnP/1.1 xenplug/0.1\r\n\
USN: uuid:abc::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 4\r\n\
CONFIGID.UPNP.ORG: 9\r\n\
\r\n"
        );
    }

    #[test]
    fn emits_exact_byebye_without_alive_headers() {
        let Message::Notify(mut notify) = parse(MINIUPNPD_NOTIFY).unwrap() else {
            panic!("not a notify");
        };
        notify.notification_subtype = NotifyKind::ByeBye;
        let bytes = emit_to_vec(|cursor| notify.emit(cursor));
        assert_eq!(
            bytes,
            b"NOTIFY * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
NT: urn:schemas-upnp-org:service:WANIPConnection:1\r\n\
NTS: ssdp:byebye\r\n\
USN: uuid:2a1b7a4e-6c1d-4f5e-9a3b-0d5c8e7f6a21::urn:schemas-upnp-org:service:WANIPConnection:1\r\n\
BOOTID.UPNP.ORG: 1700000000\r\n\
CONFIGID.UPNP.ORG: 1337\r\n\
\r\n"
                .as_slice()
        );
    }

    #[test]
    fn emits_exact_response_and_search() {
        let Message::Response(response) = parse(WINDOWS_RESPONSE).unwrap() else {
            panic!("not a response");
        };
        let response = Response {
            boot_id: Some(1),
            config_id: Some(2),
            ..response
        };
        let bytes = emit_to_vec(|cursor| response.emit(cursor));
        assert_eq!(
            bytes,
            b"HTTP/1.1 200 OK\r\n\
CACHE-CONTROL: max-age=900\r\n\
DATE: Tue, 24 Nov 2026 00:00:00 GMT\r\n\
EXT:\r\n\
LOCATION: http://192.168.1.20:2869/upnphost/udhisapi.dll?content=uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c\r\n\
SERVER: Microsoft-Windows/10.0 UPnP/1.0 UPnP-Device-Host/1.0\r\n\
ST: upnp:rootdevice\r\n\
USN: uuid:5a1f4c3e-8b2d-4e6f-a7c9-1d3b5e7f9a0c::upnp:rootdevice\r\n\
BOOTID.UPNP.ORG: 1\r\n\
CONFIGID.UPNP.ORG: 2\r\n\
\r\n"
            .as_slice()
        );
        let Message::Search(search) = parse(GSSDP_SEARCH).unwrap() else {
            panic!("not a search");
        };
        let bytes = emit_to_vec(|cursor| search.emit(cursor));
        assert_eq!(
            bytes,
            b"M-SEARCH * HTTP/1.1\r\n\
HOST: 239.255.255.250:1900\r\n\
MAN: \"ssdp:discover\"\r\n\
MX: 3\r\n\
ST: urn:schemas-upnp-org:device:MediaRenderer:1\r\n\
USER-AGENT: Linux/6.8.0 UPnP/1.0 GUPnP/1.6.6\r\n\
\r\n"
                .as_slice()
        );
    }

    #[test]
    fn round_trips_every_fixture() {
        for fixture in FIXTURES {
            let message = parse(fixture).unwrap();
            let bytes = emit_message(&message);
            assert_eq!(parse(&bytes).unwrap(), message);
            // Emitting the re-parsed message is a fixed point.
            assert_eq!(emit_message(&parse(&bytes).unwrap()), bytes);
        }
    }

    #[test]
    fn emit_refuses_missing_required_and_injection() {
        let Message::Notify(notify) = parse(MINIUPNPD_NOTIFY).unwrap() else {
            panic!("not a notify");
        };
        let mut buffer = [0u8; 1024];
        let without_location = Notify {
            location: None,
            ..notify
        };
        assert_eq!(
            without_location.emit(&mut Cursor::new(&mut buffer)),
            Err(Error::Malformed)
        );
        let injected = Notify {
            server: Some("x\r\nLOCATION: http://evil/"),
            ..notify
        };
        assert_eq!(
            injected.emit(&mut Cursor::new(&mut buffer)),
            Err(Error::Malformed)
        );
        let mut small = [0u8; 64];
        assert_eq!(
            notify.emit(&mut Cursor::new(&mut small)),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn every_truncated_prefix_is_refused_without_panic() {
        for fixture in FIXTURES {
            // A prefix that stops before the final blank line cannot be complete.
            for end in 0..fixture.len() - 1 {
                assert!(parse(&fixture[..end]).is_err(), "prefix {end} accepted");
            }
            assert!(parse(fixture).is_ok());
        }
    }

    #[test]
    fn missing_blank_line_is_truncated() {
        let without = &GSSDP_SEARCH[..GSSDP_SEARCH.len() - 2];
        assert_eq!(parse(without), Err(Error::Truncated));
        assert_eq!(parse(b""), Err(Error::Truncated));
    }

    #[test]
    fn refuses_oversized_and_too_many_headers() {
        let mut big = GSSDP_SEARCH.to_vec();
        big.resize(SSDP_MAX_DATAGRAM + 1, b' ');
        assert_eq!(parse(&big), Err(Error::TooLong));

        let mut many = b"M-SEARCH * HTTP/1.1\r\n".to_vec();
        for index in 0..=SSDP_MAX_HEADERS {
            many.extend_from_slice(format!("X-FILLER-{index}: 1\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(parse(&many), Err(Error::TooLong));
    }

    #[test]
    fn start_lines() {
        let cases: [(&[u8], Error); 8] = [
            (b"SUBSCRIBE * HTTP/1.1\r\n\r\n", Error::Unsupported),
            (b"HTTP/1.1 404 Not Found\r\n\r\n", Error::Unsupported),
            (b"NOTIFY * HTTP/1.0\r\n\r\n", Error::Unsupported),
            (b"HTTP/1.1 2x0 OK\r\n\r\n", Error::Malformed),
            (b"NOTIFY /x HTTP/1.1\r\n\r\n", Error::Malformed),
            (b"NOTIFY  * HTTP/1.1\r\n\r\n", Error::Malformed),
            (b"\r\n\r\n", Error::Malformed),
            (b"M-SEARCH * HTTP/1.1 extra\r\n\r\n", Error::Malformed),
        ];
        for (bytes, error) in cases {
            assert_eq!(
                parse(bytes),
                Err(error),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn refuses_bad_headers() {
        let cases: [&[u8]; 9] = [
            // Missing ST.
            b"M-SEARCH * HTTP/1.1\r\nHOST: h\r\nMAN: \"ssdp:discover\"\r\n\r\n",
            // Duplicate ST.
            b"M-SEARCH * HTTP/1.1\r\nHOST: h\r\nMAN: m\r\nST: a\r\nst: b\r\n\r\n",
            // No colon.
            b"M-SEARCH * HTTP/1.1\r\nHOST h\r\n\r\n",
            // Folded continuation line.
            b"M-SEARCH * HTTP/1.1\r\nHOST: h\r\n more\r\n\r\n",
            // Non-UTF-8 value.
            b"M-SEARCH * HTTP/1.1\r\nHOST: \xff\r\nMAN: m\r\nST: a\r\n\r\n",
            // Alive without LOCATION.
            b"NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: ssdp:alive\r\nUSN: u\r\n\r\n",
            // Non-numeric BOOTID.
            b"NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: ssdp:byebye\r\nUSN: u\r\nBOOTID.UPNP.ORG: -x1\r\n\r\n",
            // max-age out of range.
            b"NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: ssdp:byebye\r\nUSN: u\r\nCACHE-CONTROL: max-age=99999999999\r\n\r\n",
            // SEARCHPORT above 65535.
            b"NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: ssdp:byebye\r\nUSN: u\r\nSEARCHPORT.UPNP.ORG: 70000\r\n\r\n",
        ];
        for bytes in cases {
            assert_eq!(
                parse(bytes),
                Err(Error::Malformed),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        let unknown_nts =
            b"NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: upnp:propchange\r\nUSN: u\r\n\r\n";
        assert_eq!(parse(unknown_nts), Err(Error::Unsupported));
    }

    /// A search response as GUPnP 1.6.3 (GSSDP 1.6.2, UDA 1.1 context, boot-id never set)
    /// writes it.
    static GUPNP_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Location: http://10.99.2.11:40469/acac0009-1111-4a6b-8c9d-0000000000c1.xml\r\n\
Ext:\r\n\
USN: uuid:acac0009-1111-4a6b-8c9d-0000000000c1::upnp:rootdevice\r\n\
Server: Linux/6.18.44 UPnP/1.1 GUPnP/1.6.3\r\n\
Cache-Control: max-age=1800\r\n\
ST: upnp:rootdevice\r\n\
Date: Tue, 24 Nov 2026 18:38:11 GMT\r\n\
Content-Length: 0\r\n\
BOOTID.UPNP.ORG: -1\r\n\
CONFIGID.UPNP.ORG: -1\r\n\
\r\n";

    #[test]
    fn negative_boot_and_config_ids_read_as_absent() {
        let Ok(Message::Response(response)) = parse(GUPNP_RESPONSE) else {
            panic!("GUPnP's response refused: {:?}", parse(GUPNP_RESPONSE));
        };
        assert_eq!((response.boot_id, response.config_id), (None, None));
        assert_eq!(response.max_age, Some(1800));
        assert_eq!(response.search_target, "upnp:rootdevice");
        let alive = b"NOTIFY * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nNT: upnp:rootdevice\r\n\
NTS: ssdp:alive\r\nUSN: uuid:x::upnp:rootdevice\r\nLOCATION: http://10.0.0.1/d.xml\r\n\
BOOTID.UPNP.ORG: -1\r\nCONFIGID.UPNP.ORG: -1\r\nNEXTBOOTID.UPNP.ORG: -7\r\n\r\n";
        let Ok(Message::Notify(notify)) = parse(alive) else {
            panic!("alive with -1 refused: {:?}", parse(alive));
        };
        assert_eq!(
            (notify.boot_id, notify.config_id, notify.next_boot_id),
            (None, None, None)
        );
        // Only a sign before digits is forgiven.
        for value in ["-", "--1", "- 1", "-1x", "+1", "-99999999999"] {
            let bytes = format!(
                "NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: ssdp:byebye\r\nUSN: u\r\n\
CONFIGID.UPNP.ORG: {value}\r\n\r\n"
            );
            assert_eq!(parse(bytes.as_bytes()), Err(Error::Malformed), "{value:?}");
        }
        for n in 0..GUPNP_RESPONSE.len() {
            let _ = parse(&GUPNP_RESPONSE[..n]);
        }
    }

    #[test]
    fn cache_control_variants() {
        let with = |value: &str| {
            let text = format!(
                "NOTIFY * HTTP/1.1\r\nHOST: h\r\nNT: a\r\nNTS: ssdp:byebye\r\nUSN: u\r\nCACHE-CONTROL: {value}\r\n\r\n"
            );
            match parse(text.as_bytes()) {
                Ok(Message::Notify(notify)) => Ok(notify.max_age),
                Ok(_) => panic!("not a notify"),
                Err(error) => Err(error),
            }
        };
        assert_eq!(with("max-age=1800"), Ok(Some(1800)));
        assert_eq!(with("MAX-AGE = 60"), Ok(Some(60)));
        assert_eq!(with("no-cache, max-age=\"30\""), Ok(Some(30)));
        assert_eq!(with("no-cache"), Ok(None));
        assert_eq!(with("max-age"), Err(Error::Malformed));
        assert_eq!(with("max-age=+5"), Err(Error::Malformed));
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = fastrand::Rng::with_seed(0x55d9);
        let alphabet = b"\r\n :-*\"=,HTTP/1.1NOTIFYM-SEARCH200\xff\x00";
        for round in 0..4000 {
            let len = rng.usize(0..300);
            let bytes: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| rng.u8(..)).collect()
            } else {
                (0..len)
                    .map(|_| alphabet[rng.usize(0..alphabet.len())])
                    .collect()
            };
            let _ = parse(&bytes);
        }
        // Mutations of valid packets: flip one byte at a time.
        for fixture in FIXTURES {
            for at in 0..fixture.len() {
                let mut bytes = fixture.to_vec();
                bytes[at] = rng.u8(..);
                let _ = parse(&bytes);
            }
        }
    }
}
