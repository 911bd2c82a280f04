//! Wire layer: GENA eventing headers and bodies (UDA 1.1 section 4): read SUBSCRIBE and
//! UNSUBSCRIBE headers, write the property set and the head of an event NOTIFY; and for the
//! control point, read a SUBSCRIBE response's SID and TIMEOUT and an event's property set. No
//! I/O, no clock, no name resolution, and never a panic on what a peer sends.
//!
//! Callback URLs are the CallStranger attack surface (CVE-2020-12695): a device that
//! NOTIFYs any URL it is given can be made to send traffic anywhere. So a callback is
//! accepted here only as `http://` with a literal IPv4 address, and in bounded number and
//! length; the engine then also requires the address to be the subscriber's own.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use crate::consts;
use crate::wire::xml::{self, Sink};

/// NTS header value of event NOTIFY requests (UDA 1.1 section 4.3.2).
const GENA_NTS_PROPCHANGE: &str = "upnp:propchange";
/// Length of a whole TIMEOUT header value, at most; longer ones are refused with 400.
const GENA_MAX_TIMEOUT_HEADER: usize = 32;
/// Element nesting of a property set, at most (a real one needs 3: propertyset, property,
/// the variable).
const GENA_MAX_EVENT_DEPTH: usize = 8;
/// XML nodes (elements, text runs, comments) in one event body, at most: room for
/// [`GENA_MAX_EVENT_PROPERTIES`] properties, each indented on lines of its own (about 6 nodes
/// apiece).
const GENA_MAX_EVENT_NODES: u32 = 1024;
/// The XML declaration opening every GENA property set (as UDA 1.1 section 4.3.2 shows it).
const GENA_XML_DECLARATION: &str = "<?xml version=\"1.0\"?>";

/// Why a SUBSCRIBE or UNSUBSCRIBE request is refused, with the HTTP status UDA 1.1 sections
/// 4.1.2 to 4.1.4 give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenaError {
    /// SID together with NT or CALLBACK ("Incompatible header fields"): 400.
    IncompatibleHeaders,
    /// A TIMEOUT that is not `Second-<digits>` or `Second-infinite`: 400.
    BadTimeout,
    /// New subscription without CALLBACK, or with no URL in it: 412.
    MissingCallback,
    /// A callback URL we will not deliver to (not `http://` with an IPv4 literal, too long,
    /// too many): 412.
    InvalidCallback,
    /// New subscription whose NT is missing or not `upnp:event`: 412.
    InvalidNt,
    /// Renewal or cancellation without SID: 412.
    MissingSid,
    /// A SID that is not `uuid:` and visible ASCII of at most [`consts::GENA_MAX_SID_LEN`]
    /// bytes (control point side, [`parse_granted`]); a device would answer 412.
    InvalidSid,
}

impl GenaError {
    /// The HTTP status code to answer with.
    pub fn status(self) -> u16 {
        match self {
            GenaError::IncompatibleHeaders | GenaError::BadTimeout => 400,
            GenaError::MissingCallback
            | GenaError::InvalidCallback
            | GenaError::InvalidNt
            | GenaError::MissingSid
            | GenaError::InvalidSid => 412,
        }
    }
}

impl core::fmt::Display for GenaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            GenaError::IncompatibleHeaders => "SID together with NT or CALLBACK",
            GenaError::BadTimeout => "unparseable TIMEOUT",
            GenaError::MissingCallback => "missing CALLBACK",
            GenaError::InvalidCallback => "invalid CALLBACK",
            GenaError::InvalidNt => "missing or invalid NT",
            GenaError::MissingSid => "missing SID",
            GenaError::InvalidSid => "invalid SID",
        })
    }
}

impl std::error::Error for GenaError {}

/// One delivery URL of a CALLBACK header, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Callback<'a> {
    /// Where to connect: the URL's IPv4 literal and port (80 when none is given).
    pub address: SocketAddrV4,
    /// Request target of the NOTIFY: the URL's path and query, `/` when the URL has none.
    pub path: &'a str,
    /// The whole URL as the subscriber wrote it (for logs).
    pub url: &'a str,
}

/// The callbacks of one SUBSCRIBE, in the subscriber's order of preference.
pub type Callbacks<'a> = heapless::Vec<Callback<'a>, { consts::GENA_MAX_CALLBACKS }>;

/// A SUBSCRIBE request, by its headers.
///
/// `New` is a few hundred bytes (the callbacks live inline, no allocation); the value only
/// lives for the handling of one request, so the size difference to `Renew` does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeRequest<'a> {
    /// A new subscription (NT and CALLBACK, no SID; UDA 1.1 section 4.1.2).
    New {
        /// Delivery URLs (CALLBACK), at least one.
        callbacks: Callbacks<'a>,
        /// Requested duration (TIMEOUT); `None` when absent or `Second-infinite`, and the
        /// engine then grants its default.
        timeout: Option<Duration>,
    },
    /// A renewal (SID, no NT or CALLBACK; UDA 1.1 section 4.1.3).
    Renew {
        /// Subscription identifier (SID).
        sid: &'a str,
        /// Requested duration (TIMEOUT), as for [`SubscribeRequest::New`].
        timeout: Option<Duration>,
    },
}

/// A header counts as present when it has a non-blank value: `SID:` with nothing after it is
/// the same as no SID (UDA 1.1 section 4.1.4: "missing or empty").
fn present(header: Option<&str>) -> Option<&str> {
    header.map(str::trim).filter(|value| !value.is_empty())
}

/// Reads the NT, CALLBACK, SID and TIMEOUT headers of a SUBSCRIBE (each `None` when absent).
///
/// UDA 1.1 sections 4.1.2 and 4.1.3: SID with NT or CALLBACK is 400; without SID the request
/// is a new subscription, which needs NT `upnp:event` (else 412) and a CALLBACK (else 412);
/// with SID alone it is a renewal. A TIMEOUT that cannot be read is 400.
pub fn parse_subscribe<'a>(
    nt: Option<&'a str>,
    callback: Option<&'a str>,
    sid: Option<&'a str>,
    timeout: Option<&'a str>,
) -> Result<SubscribeRequest<'a>, GenaError> {
    let (nt, callback, sid) = (present(nt), present(callback), present(sid));
    if sid.is_some() && (nt.is_some() || callback.is_some()) {
        return Err(GenaError::IncompatibleHeaders);
    }
    let timeout = match present(timeout) {
        Some(value) => parse_timeout(value)?,
        None => None,
    };
    if let Some(sid) = sid {
        return Ok(SubscribeRequest::Renew { sid, timeout });
    }
    if !nt.is_some_and(|value| value.eq_ignore_ascii_case(consts::GENA_NT_EVENT)) {
        return Err(GenaError::InvalidNt);
    }
    let callbacks = parse_callbacks(callback.ok_or(GenaError::MissingCallback)?)?;
    Ok(SubscribeRequest::New { callbacks, timeout })
}

/// Reads the NT, CALLBACK and SID headers of an UNSUBSCRIBE and returns the SID.
///
/// UDA 1.1 section 4.1.4: NT or CALLBACK is 400 ("incompatible header fields"), a missing or
/// empty SID is 412.
pub fn parse_unsubscribe<'a>(
    nt: Option<&'a str>,
    callback: Option<&'a str>,
    sid: Option<&'a str>,
) -> Result<&'a str, GenaError> {
    if present(nt).is_some() || present(callback).is_some() {
        return Err(GenaError::IncompatibleHeaders);
    }
    present(sid).ok_or(GenaError::MissingSid)
}

/// Reads the SID and TIMEOUT headers of a device's 200 OK to our SUBSCRIBE (UDA 1.1 section
/// 4.1.2), as a control point: the subscription identifier and the granted duration (`None`
/// for `Second-infinite`).
///
/// The SID must start with `uuid:`, have something after it, and be visible ASCII of at most
/// [`consts::GENA_MAX_SID_LEN`] bytes (it goes back into the headers of renewals and into
/// logs); surrounding white space is dropped. A missing or blank SID is
/// [`GenaError::MissingSid`], another bad one [`GenaError::InvalidSid`]. UDA requires
/// TIMEOUT in the response, so a missing one is [`GenaError::BadTimeout`], as is one
/// [`parse_timeout`] refuses.
pub fn parse_granted(
    sid: Option<&str>,
    timeout: Option<&str>,
) -> Result<(String, Option<Duration>), GenaError> {
    let sid = present(sid).ok_or(GenaError::MissingSid)?;
    let well_formed = sid.len() <= consts::GENA_MAX_SID_LEN
        && sid.len() > consts::UDN_PREFIX.len()
        && sid.starts_with(consts::UDN_PREFIX)
        && sid.bytes().all(|byte| byte.is_ascii_graphic());
    if !well_formed {
        return Err(GenaError::InvalidSid);
    }
    let timeout = parse_timeout(present(timeout).ok_or(GenaError::BadTimeout)?)?;
    Ok((sid.to_owned(), timeout))
}

/// Reads a TIMEOUT value: `Second-<n>` or `Second-infinite`, case-insensitively
/// (UDA 1.1 section 4.1.2). `infinite` is `None`; a number too large for `u64` saturates
/// (the engine clamps it anyway).
pub fn parse_timeout(value: &str) -> Result<Option<Duration>, GenaError> {
    let value = value.trim();
    if value.len() > GENA_MAX_TIMEOUT_HEADER {
        return Err(GenaError::BadTimeout);
    }
    const PREFIX: &str = "second-";
    let rest = match (value.get(..PREFIX.len()), value.get(PREFIX.len()..)) {
        (Some(prefix), Some(rest)) if prefix.eq_ignore_ascii_case(PREFIX) => rest,
        _ => return Err(GenaError::BadTimeout),
    };
    if rest.eq_ignore_ascii_case("infinite") {
        return Ok(None);
    }
    if rest.is_empty() || !rest.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(GenaError::BadTimeout);
    }
    let seconds = rest.bytes().fold(0u64, |sum, digit| {
        sum.saturating_mul(10)
            .saturating_add(u64::from(digit - b'0'))
    });
    Ok(Some(Duration::from_secs(seconds)))
}

/// Reads a CALLBACK value: one or more `<url>`, optionally separated by white space.
pub fn parse_callbacks(value: &str) -> Result<Callbacks<'_>, GenaError> {
    let mut callbacks = Callbacks::new();
    let mut rest = value.trim_start();
    while !rest.is_empty() {
        let inner = rest.strip_prefix('<').ok_or(GenaError::InvalidCallback)?;
        let (url, after) = inner.split_once('>').ok_or(GenaError::InvalidCallback)?;
        callbacks
            .push(parse_callback_url(url)?)
            .map_err(|_| GenaError::InvalidCallback)?;
        rest = after.trim_start();
    }
    if callbacks.is_empty() {
        return Err(GenaError::MissingCallback);
    }
    Ok(callbacks)
}

/// Checks one delivery URL: `http://<IPv4 literal>[:port][/path]`, at most
/// [`consts::GENA_MAX_CALLBACK_LEN`] bytes, path of visible ASCII without `#`.
pub fn parse_callback_url(url: &str) -> Result<Callback<'_>, GenaError> {
    if url.len() > consts::GENA_MAX_CALLBACK_LEN {
        return Err(GenaError::InvalidCallback);
    }
    let scheme = consts::HTTP_URL_SCHEME;
    let rest = match (url.get(..scheme.len()), url.get(scheme.len()..)) {
        (Some(given), Some(rest)) if given.eq_ignore_ascii_case(scheme) => rest,
        _ => return Err(GenaError::InvalidCallback),
    };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, "/"),
    };
    let (host, port) = match authority.split_once(':') {
        Some((host, port)) => (host, parse_port(port)?),
        None => (authority, consts::GENA_CALLBACK_DEFAULT_PORT),
    };
    // Ipv4Addr's parser takes only the four-decimal-octet form (no leading zeros, no hex,
    // no shortened forms), so what we connect to is what a person reading the URL sees.
    let host: Ipv4Addr = host.parse().map_err(|_| GenaError::InvalidCallback)?;
    if host.is_unspecified() || host.is_broadcast() || host.is_multicast() {
        return Err(GenaError::InvalidCallback);
    }
    if !path
        .bytes()
        .all(|byte| byte.is_ascii_graphic() && byte != b'#')
    {
        return Err(GenaError::InvalidCallback);
    }
    Ok(Callback {
        address: SocketAddrV4::new(host, port),
        path,
        url,
    })
}

fn parse_port(port: &str) -> Result<u16, GenaError> {
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(GenaError::InvalidCallback);
    }
    match port.parse::<u16>() {
        Ok(0) | Err(_) => Err(GenaError::InvalidCallback),
        Ok(number) => Ok(number),
    }
}

/// Writes a TIMEOUT header value for a granted duration: `Second-<whole seconds>`.
pub fn write_timeout<S: Sink + ?Sized>(granted: Duration, out: &mut S) -> crate::wire::Result<()> {
    out.put_str("Second-")?;
    out.put_str(&granted.as_secs().to_string())
}

/// The TIMEOUT header value for `granted` as a string, for a header list.
pub fn timeout_value(granted: Duration) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and what is written is ASCII.
    let _ = write_timeout(granted, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Appends an event body (UDA 1.1 section 4.3.2): the property set with one `e:property` per
/// variable, in the order given, values escaped. Variable names come from the service tables
/// and are written as they are.
pub fn write_propertyset(variables: &[(&str, &str)], out: &mut Vec<u8>) {
    out.extend_from_slice(GENA_XML_DECLARATION.as_bytes());
    out.extend_from_slice(b"\n<e:propertyset xmlns:e=\"");
    xml::push_escaped_attribute(consts::NS_EVENT, out);
    out.extend_from_slice(b"\">");
    for (name, value) in variables {
        out.extend_from_slice(b"<e:property>");
        xml::push_element(name, value, out);
        out.extend_from_slice(b"</e:property>");
    }
    out.extend_from_slice(b"</e:propertyset>\n");
}

/// Why an event body was refused: a sentence for a log line, peer text quoted and cut with
/// [`xml::shown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PropertySetError {
    reason: String,
}

impl PropertySetError {
    fn new(reason: impl Into<String>) -> PropertySetError {
        PropertySetError {
            reason: reason.into(),
        }
    }

    /// The reason, as displayed.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl core::fmt::Display for PropertySetError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unusable event body: {}", self.reason)
    }
}

impl std::error::Error for PropertySetError {}

/// Limits an event body is parsed under.
const PROPERTYSET_LIMITS: xml::Limits = xml::Limits {
    max_bytes: consts::GENA_MAX_EVENT_BODY,
    max_depth: GENA_MAX_EVENT_DEPTH,
    max_nodes: GENA_MAX_EVENT_NODES,
};

/// Characters of a peer's element name quoted in a [`PropertySetError`], at most.
const SHOWN_CHARS: usize = 64;

/// Parses the body of an event NOTIFY (UDA 1.1 section 4.3.2), as a control point receives
/// it: the changed variables as (name, value) pairs in document order.
///
/// `propertyset` and `property` are matched by the namespace URI
/// `urn:schemas-upnp-org:event-1-0`, whatever the prefix (a default namespace works too).
/// Every element child of `propertyset` must be a `property`; each `property` holds one or
/// more variable elements, in any namespace or none, named by their local name. A value is
/// the element's text, entities and CDATA decoded and white space kept (so a value holding
/// escaped XML comes back as that XML); a variable holding an element is refused. An empty
/// property set gives an empty list. At most [`consts::GENA_MAX_EVENT_PROPERTIES`] variables,
/// [`consts::GENA_MAX_EVENT_BODY`] bytes and `GENA_MAX_EVENT_DEPTH` levels; no DTD.
pub fn parse_propertyset(body: &[u8]) -> Result<Vec<(String, String)>, PropertySetError> {
    let document = xml::parse_bounded(body, PROPERTYSET_LIMITS)
        .map_err(|error| PropertySetError::new(PROPERTYSET_LIMITS.explain(error)))?;
    let shown = |node: roxmltree::Node<'_, '_>| xml::shown(node.tag_name().name(), SHOWN_CHARS);
    let root = document.root_element();
    if !xml::is_element(root, consts::NS_EVENT, "propertyset") {
        return Err(PropertySetError::new(format!(
            "the root element is {}, not propertyset in {}",
            shown(root),
            consts::NS_EVENT
        )));
    }
    let mut variables = Vec::new();
    for property in root.children().filter(|child| child.is_element()) {
        if !xml::is_element(property, consts::NS_EVENT, "property") {
            return Err(PropertySetError::new(format!(
                "{} where a property belongs",
                shown(property)
            )));
        }
        let mut found = false;
        for variable in property.children().filter(|child| child.is_element()) {
            if variables.len() == consts::GENA_MAX_EVENT_PROPERTIES {
                return Err(PropertySetError::new(format!(
                    "more than {} variables",
                    consts::GENA_MAX_EVENT_PROPERTIES
                )));
            }
            let value = xml::value_text(variable).ok_or_else(|| {
                PropertySetError::new(format!("variable {} holds an element", shown(variable)))
            })?;
            variables.push((variable.tag_name().name().to_owned(), value));
            found = true;
        }
        if !found {
            return Err(PropertySetError::new("a property without variable"));
        }
    }
    Ok(variables)
}

/// The header fields of an event NOTIFY (UDA 1.1 section 4.3.2) other than HOST and
/// CONTENT-LENGTH, which the HTTP client writes itself; `seq` is the decimal SEQ.
pub fn notify_headers<'a>(sid: &'a str, seq: &'a str) -> [(&'static str, &'a str); 5] {
    [
        ("CONTENT-TYPE", consts::CONTENT_TYPE_XML),
        ("NT", consts::GENA_NT_EVENT),
        ("NTS", GENA_NTS_PROPCHANGE),
        ("SID", sid),
        ("SEQ", seq),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const CB: &str = "<http://192.168.1.5:8080/evt/1>";

    fn seconds(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n))
    }

    #[test]
    fn new_subscription() {
        let request =
            parse_subscribe(Some("upnp:event"), Some(CB), None, Some("Second-1800")).unwrap();
        let SubscribeRequest::New { callbacks, timeout } = request else {
            panic!("not new: {request:?}");
        };
        assert_eq!(timeout, seconds(1800));
        assert_eq!(callbacks.len(), 1);
        assert_eq!(
            callbacks[0],
            Callback {
                address: "192.168.1.5:8080".parse().unwrap(),
                path: "/evt/1",
                url: "http://192.168.1.5:8080/evt/1",
            }
        );
    }

    #[test]
    fn renewal() {
        assert_eq!(
            parse_subscribe(None, None, Some(" uuid:abc "), Some("second-infinite")),
            Ok(SubscribeRequest::Renew {
                sid: "uuid:abc",
                timeout: None
            })
        );
        assert_eq!(
            parse_subscribe(None, Some(""), Some("uuid:abc"), None),
            Ok(SubscribeRequest::Renew {
                sid: "uuid:abc",
                timeout: None
            })
        );
    }

    /// UDA 1.1 sections 4.1.2 (subscribe), 4.1.3 (renew), 4.1.4 (cancel): which header
    /// combination gets 400 and which 412.
    #[test]
    fn header_combinations() {
        let nt = Some("upnp:event");
        let cb = Some(CB);
        let sid = Some("uuid:1");
        // (NT, CALLBACK, SID, TIMEOUT, expected refusal)
        type Case<'a> = (
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            Option<&'a str>,
            GenaError,
        );
        let cases: &[Case] = &[
            (nt, cb, sid, None, GenaError::IncompatibleHeaders),
            (nt, None, sid, None, GenaError::IncompatibleHeaders),
            (None, cb, sid, None, GenaError::IncompatibleHeaders),
            (nt, cb, None, Some("Second-abc"), GenaError::BadTimeout),
            (None, None, sid, Some("Minute-3"), GenaError::BadTimeout),
            (nt, None, None, None, GenaError::MissingCallback),
            (nt, Some("  "), None, None, GenaError::MissingCallback),
            (None, cb, None, None, GenaError::InvalidNt),
            (
                Some("upnp:propchange"),
                cb,
                None,
                None,
                GenaError::InvalidNt,
            ),
            (None, None, None, None, GenaError::InvalidNt),
            (None, None, Some(""), None, GenaError::InvalidNt),
            (
                nt,
                Some("http://192.168.1.5/"),
                None,
                None,
                GenaError::InvalidCallback,
            ),
        ];
        for &(nt, cb, sid, timeout, expected) in cases {
            assert_eq!(
                parse_subscribe(nt, cb, sid, timeout),
                Err(expected),
                "{nt:?} {cb:?} {sid:?} {timeout:?}"
            );
        }
        assert_eq!(GenaError::IncompatibleHeaders.status(), 400);
        assert_eq!(GenaError::BadTimeout.status(), 400);
        for refused in [
            GenaError::MissingCallback,
            GenaError::InvalidCallback,
            GenaError::InvalidNt,
            GenaError::MissingSid,
        ] {
            assert_eq!(refused.status(), 412);
        }
    }

    #[test]
    fn unsubscribe_headers() {
        assert_eq!(parse_unsubscribe(None, None, Some("uuid:1")), Ok("uuid:1"));
        assert_eq!(
            parse_unsubscribe(Some("upnp:event"), None, Some("uuid:1")),
            Err(GenaError::IncompatibleHeaders)
        );
        assert_eq!(
            parse_unsubscribe(None, Some(CB), Some("uuid:1")),
            Err(GenaError::IncompatibleHeaders)
        );
        assert_eq!(
            parse_unsubscribe(None, None, None),
            Err(GenaError::MissingSid)
        );
        assert_eq!(
            parse_unsubscribe(None, None, Some(" ")),
            Err(GenaError::MissingSid)
        );
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("Second-1800"), Ok(seconds(1800)));
        assert_eq!(parse_timeout("SECOND-0"), Ok(seconds(0)));
        assert_eq!(parse_timeout(" second-Infinite "), Ok(None));
        assert_eq!(
            parse_timeout("Second-99999999999999999999999"),
            Ok(seconds(u64::MAX))
        );
        for bad in [
            "",
            "Second-",
            "Second--1",
            "Second-+5",
            "Second-1.5",
            "Second- 5",
            "1800",
            "Secon-1800",
            "Second-infinity",
            "Second-1800x",
            "Sécond-1",
            "Second-99999999999999999999999999999",
        ] {
            assert_eq!(parse_timeout(bad), Err(GenaError::BadTimeout), "{bad:?}");
        }
    }

    #[test]
    fn callback_urls() {
        let one = |url| parse_callback_url(url).map(|cb| (cb.address.to_string(), cb.path));
        assert_eq!(one("http://10.0.0.1"), Ok(("10.0.0.1:80".into(), "/")));
        assert_eq!(one("HTTP://10.0.0.1:1/"), Ok(("10.0.0.1:1".into(), "/")));
        assert_eq!(
            one("http://10.0.0.1:65535/a/b?c=d"),
            Ok(("10.0.0.1:65535".into(), "/a/b?c=d"))
        );
        for bad in [
            "https://10.0.0.1/",
            "http://localhost/",
            "http://router.lan:80/",
            "http://[::1]/",
            "http://[fe80::1%25eth0]:80/",
            "http://010.0.0.1/",
            "http://10.1/",
            "http://0x0a000001/",
            "http://167772161/",
            "http://user@10.0.0.1/",
            "http://10.0.0.1:/",
            "http://10.0.0.1:0/",
            "http://10.0.0.1:65536/",
            "http://10.0.0.1:8o/",
            "http://0.0.0.0/",
            "http://255.255.255.255/",
            "http://239.255.255.250:1900/",
            "http://10.0.0.1/a b",
            "http://10.0.0.1/a#frag",
            "http://10.0.0.1/\u{e9}",
            "http://10.0.0.1/a\r\nX-Injected: 1",
            "ftp://10.0.0.1/",
            "http:/10.0.0.1/",
            "",
        ] {
            assert_eq!(
                parse_callback_url(bad),
                Err(GenaError::InvalidCallback),
                "{bad:?}"
            );
        }
    }

    /// CallStranger-style headers: many URLs, long URLs, other schemes, names, IPv6.
    #[test]
    fn callstranger_callbacks_are_refused() {
        let url = |n: usize| format!("<http://192.168.1.{n}:1234/cb>");
        let six: String = (1..=6).map(url).collect();
        assert_eq!(parse_callbacks(&six).unwrap().len(), 6);
        let seven: String = (1..=7).map(url).collect();
        assert_eq!(parse_callbacks(&seven), Err(GenaError::InvalidCallback));

        let long = format!("<http://192.168.1.5/{}>", "a".repeat(300));
        assert_eq!(parse_callbacks(&long), Err(GenaError::InvalidCallback));
        let at_limit = format!(
            "<http://192.168.1.5/{}>",
            "a".repeat(consts::GENA_MAX_CALLBACK_LEN - "http://192.168.1.5/".len())
        );
        assert_eq!(parse_callbacks(&at_limit).unwrap().len(), 1);

        for bad in [
            "<https://192.168.1.5/cb>",
            "<http://evil.example.com/cb>",
            "<http://[2001:db8::1]:80/cb>",
            "<http://192.168.1.5/ok><https://192.168.1.6/no>",
            "http://192.168.1.5/cb",
            "<http://192.168.1.5/cb",
            "<http://192.168.1.5/cb>, <http://192.168.1.6/cb>",
            "<http://192.168.1.5/cb>junk",
        ] {
            assert_eq!(
                parse_callbacks(bad),
                Err(GenaError::InvalidCallback),
                "{bad}"
            );
        }
        assert_eq!(parse_callbacks("  "), Err(GenaError::MissingCallback));
        let spaced = parse_callbacks(" <http://10.0.0.1/a>  <http://10.0.0.2:81/b> ").unwrap();
        assert_eq!(spaced.len(), 2);
        assert_eq!(spaced[1].path, "/b");
        assert_eq!(spaced[1].url, "http://10.0.0.2:81/b");
    }

    #[test]
    fn truncated_callback_headers_never_panic() {
        let header = "<http://192.168.1.5:8080/evt/1?x=1> <HTTP://10.0.0.1>";
        for end in 0..=header.len() {
            if let Some(prefix) = header.get(..end) {
                let _ = parse_subscribe(Some("upnp:event"), Some(prefix), None, Some(prefix));
            }
        }
        let timeout = "Second-1800";
        for end in 0..=timeout.len() {
            // "Second-1", "Second-18", ... are complete values themselves.
            let expect_ok = end > "Second-".len();
            assert_eq!(parse_timeout(&timeout[..end]).is_ok(), expect_ok, "{end}");
        }
    }

    #[test]
    fn propertyset_matches_golden_file() {
        let mut out = Vec::new();
        write_propertyset(
            &[("State", "running"), ("Name", "web & <db>"), ("Empty", "")],
            &mut out,
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(include_bytes!("../../tests/fixtures/gena/propertyset.xml"))
        );
        let text = core::str::from_utf8(&out).unwrap();
        let document = roxmltree::Document::parse(text).unwrap();
        let values: Vec<_> = document
            .descendants()
            .filter(|node| node.has_tag_name((consts::NS_EVENT, "property")))
            .filter_map(|node| node.first_element_child())
            .map(|node| (node.tag_name().name(), node.text().unwrap_or("")))
            .collect();
        assert_eq!(
            values,
            [("State", "running"), ("Name", "web & <db>"), ("Empty", "")]
        );
    }

    #[test]
    fn notify_header_fields() {
        assert_eq!(
            notify_headers("uuid:0000-1", "4294967295"),
            [
                ("CONTENT-TYPE", "text/xml; charset=\"utf-8\""),
                ("NT", "upnp:event"),
                ("NTS", "upnp:propchange"),
                ("SID", "uuid:0000-1"),
                ("SEQ", "4294967295"),
            ]
        );
    }

    #[test]
    fn timeout_header_value() {
        let mut out = Vec::new();
        write_timeout(Duration::from_millis(1_800_900), &mut out).unwrap();
        assert_eq!(out, b"Second-1800");
        assert_eq!(timeout_value(Duration::from_secs(300)), "Second-300");
        let mut buffer = [0u8; 8];
        let mut cursor = crate::wire::Cursor::new(&mut buffer);
        assert_eq!(
            write_timeout(Duration::from_secs(60), &mut cursor),
            Err(crate::wire::Error::TooLong)
        );
    }
    // ---- control point side: granted subscriptions and event bodies we read -------------

    #[test]
    fn granted_subscriptions() {
        let sid = "uuid:5f3bf8a3-4c1e-4a9e-9a3f-2d7e0c1b9a10";
        assert_eq!(
            parse_granted(Some(sid), Some("Second-1800")),
            Ok((sid.to_owned(), seconds(1800)))
        );
        assert_eq!(
            parse_granted(Some(" uuid:1 "), Some(" second-infinite ")),
            Ok(("uuid:1".to_owned(), None))
        );
        let longest = format!("uuid:{}", "a".repeat(consts::GENA_MAX_SID_LEN - 5));
        assert_eq!(
            parse_granted(Some(&longest), Some("Second-60")),
            Ok((longest.clone(), seconds(60)))
        );
        let too_long = format!("{longest}a");
        let cases: &[(Option<&str>, Option<&str>, GenaError)] = &[
            (None, Some("Second-1800"), GenaError::MissingSid),
            (Some("  "), Some("Second-1800"), GenaError::MissingSid),
            (Some("uuid:"), Some("Second-1800"), GenaError::InvalidSid),
            (Some("5f3bf8a3"), Some("Second-1800"), GenaError::InvalidSid),
            (Some("UUID:1"), Some("Second-1800"), GenaError::InvalidSid),
            (Some("uuid:a b"), Some("Second-1800"), GenaError::InvalidSid),
            (
                Some("uuid:a\r\nX: 1"),
                Some("Second-1800"),
                GenaError::InvalidSid,
            ),
            (
                Some("uuid:\u{e9}"),
                Some("Second-1800"),
                GenaError::InvalidSid,
            ),
            (Some(&too_long), Some("Second-1800"), GenaError::InvalidSid),
            (Some("uuid:1"), None, GenaError::BadTimeout),
            (Some("uuid:1"), Some(" "), GenaError::BadTimeout),
            (Some("uuid:1"), Some("1800"), GenaError::BadTimeout),
            (Some("uuid:1"), Some("Second-"), GenaError::BadTimeout),
        ];
        for &(sid, timeout, expected) in cases {
            assert_eq!(
                parse_granted(sid, timeout),
                Err(expected),
                "{sid:?} {timeout:?}"
            );
        }
        assert_eq!(GenaError::InvalidSid.status(), 412);
        assert_eq!(GenaError::InvalidSid.to_string(), "invalid SID");
    }

    /// Shaped like a GUPnP event body: one line, `e:` prefix, as UDA 1.1 section 4.3.2.
    static GUPNP_EVENT: &[u8] = b"<?xml version=\"1.0\"?>\n<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><VirtualMachineIds>0b9a6a6e-2f51-4e53-9b43-0d4c7f0a3e11,7d1c0e52-3f0a-4b8e-8f6e-2a9c1d3b4e5f</VirtualMachineIds></e:property></e:propertyset>\n";

    /// Indented, default namespace, variables in that namespace too, a comment, CDATA, two
    /// variables in one property, and a value with white space to keep.
    static INDENTED_EVENT: &[u8] = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>
<propertyset xmlns=\"urn:schemas-upnp-org:event-1-0\">
  <!-- initial event -->
  <property>
    <State>running</State>
  </property>
  <property>
    <Name><![CDATA[web & db]]></Name>
    <Note> two words </Note>
  </property>
  <property>
    <v:Extra xmlns:v=\"urn:example\"></v:Extra>
  </property>
</propertyset>
";

    /// The ListVirtualMachines value of our Hypervisor service: XML inside a value.
    const VM_LIST: &str = "<VirtualMachines><VirtualMachine uuid=\"0b9a6a6e-2f51-4e53-9b43-0d4c7f0a3e11\" name=\"web &amp; &lt;db&gt;\" state=\"running\"/></VirtualMachines>";

    fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn written_propertysets_parse_back() {
        let variables = [
            ("State", "running"),
            ("Name", " web & <db>\r\n\"'\t"),
            ("Empty", ""),
            ("VirtualMachines", VM_LIST),
            ("Unicode", "grüße ]]>"),
        ];
        let mut out = Vec::new();
        write_propertyset(&variables, &mut out);
        assert_eq!(parse_propertyset(&out), Ok(owned(&variables)));
        assert_eq!(
            parse_propertyset(include_bytes!("../../tests/fixtures/gena/propertyset.xml")),
            Ok(owned(&[
                ("State", "running"),
                ("Name", "web & <db>"),
                ("Empty", "")
            ]))
        );
        let mut empty = Vec::new();
        write_propertyset(&[], &mut empty);
        assert_eq!(parse_propertyset(&empty), Ok(Vec::new()));
    }

    #[test]
    fn parses_gupnp_and_indented_events() {
        assert_eq!(
            parse_propertyset(GUPNP_EVENT),
            Ok(owned(&[(
                "VirtualMachineIds",
                "0b9a6a6e-2f51-4e53-9b43-0d4c7f0a3e11,7d1c0e52-3f0a-4b8e-8f6e-2a9c1d3b4e5f"
            )]))
        );
        assert_eq!(
            parse_propertyset(INDENTED_EVENT),
            Ok(owned(&[
                ("State", "running"),
                ("Name", "web & db"),
                ("Note", " two words "),
                ("Extra", ""),
            ]))
        );
    }

    #[test]
    fn escaped_xml_in_a_value_comes_back_as_xml() {
        let body = format!(
            "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><VirtualMachines>{}</VirtualMachines></e:property></e:propertyset>",
            VM_LIST
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
        );
        let variables = parse_propertyset(body.as_bytes()).unwrap();
        assert_eq!(variables, owned(&[("VirtualMachines", VM_LIST)]));
        let inner = roxmltree::Document::parse(&variables[0].1).unwrap();
        let vm = inner.root_element().first_element_child().unwrap();
        assert_eq!(vm.attribute("name"), Some("web & <db>"));
        // The same value unescaped is markup, not text: refused rather than flattened.
        let raw = format!(
            "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><VirtualMachines>{VM_LIST}</VirtualMachines></e:property></e:propertyset>"
        );
        let error = parse_propertyset(raw.as_bytes()).unwrap_err();
        assert!(error.reason().contains("VirtualMachines"), "{error}");
    }

    #[test]
    fn structure_is_checked() {
        let set = |inner: &str| {
            format!(
                "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">{inner}</e:propertyset>"
            )
        };
        let cases = [
            "<propertyset><property><A>1</A></property></propertyset>".to_owned(),
            "<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-2-0\"><e:property><A>1</A></e:property></e:propertyset>".to_owned(),
            "<e:property xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><A>1</A></e:property>".to_owned(),
            set("<A>1</A>"),
            set("<property><A>1</A></property>"),
            set("<e:property/>"),
            set("<e:property> text only </e:property>"),
            set("<e:property><A><b/></A></e:property>"),
            set("<e:property><A>1</A></e:property><e:propertyset/>"),
        ];
        for body in &cases {
            assert!(parse_propertyset(body.as_bytes()).is_err(), "{body}");
        }
        let error = parse_propertyset(set("<Rogue/>").as_bytes()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unusable event body: \"Rogue\" where a property belongs"
        );
    }

    #[test]
    fn variables_are_bounded() {
        // Indented like a GUPnP-style body, so white space nodes count too.
        let build = |count: usize| {
            let mut body = b"<?xml version=\"1.0\"?>\n<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">\n".to_vec();
            for n in 0..count {
                body.extend_from_slice(
                    format!("  <e:property>\n    <V{n}>{n}</V{n}>\n  </e:property>\n").as_bytes(),
                );
            }
            body.extend_from_slice(b"</e:propertyset>\n");
            body
        };
        let limit = consts::GENA_MAX_EVENT_PROPERTIES;
        let variables = parse_propertyset(&build(limit)).unwrap();
        assert_eq!(variables.len(), limit);
        assert_eq!(
            variables[limit - 1],
            (format!("V{}", limit - 1), format!("{}", limit - 1))
        );
        let error = parse_propertyset(&build(limit + 1)).unwrap_err();
        assert!(error.reason().contains("variables"), "{error}");
    }

    #[test]
    fn hostile_event_bodies_are_refused() {
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE e:propertyset [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><A>&b;</A></e:property></e:propertyset>";
        let mut deep =
            b"<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><A>".to_vec();
        for _ in 0..GENA_MAX_EVENT_DEPTH {
            deep.extend_from_slice(b"<b>");
        }
        let mut huge =
            b"<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><A>".to_vec();
        huge.resize(consts::GENA_MAX_EVENT_BODY + 1, b'x');
        huge.extend_from_slice(b"</A></e:property></e:propertyset>");
        let mut comments = b"<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\">".to_vec();
        for _ in 0..GENA_MAX_EVENT_NODES {
            comments.extend_from_slice(b"<!---->");
        }
        comments.extend_from_slice(b"</e:propertyset>");
        let hostile: [&[u8]; 7] = [
            laughs,
            &deep,
            &huge,
            &comments,
            b"",
            b"\xff\xfe<\x00e\x00/>",
            b"<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><A>\xc3\x28</A></e:property></e:propertyset>",
        ];
        for body in hostile {
            assert!(
                parse_propertyset(body).is_err(),
                "{}",
                xml::shown(&String::from_utf8_lossy(body), 80)
            );
        }
        let too_big = PROPERTYSET_LIMITS.explain(crate::wire::Error::TooLong);
        for body in [&deep, &huge, &comments] {
            assert_eq!(
                parse_propertyset(body).map_err(|error| error.reason().to_owned()),
                Err(too_big.clone())
            );
        }
        // A body just under the size limit is read.
        let mut large =
            b"<e:propertyset xmlns:e=\"urn:schemas-upnp-org:event-1-0\"><e:property><A>".to_vec();
        let end = b"</A></e:property></e:propertyset>";
        large.resize(consts::GENA_MAX_EVENT_BODY - end.len(), b'x');
        large.extend_from_slice(end);
        assert_eq!(parse_propertyset(&large).map(|v| v.len()), Ok(1));
    }

    #[test]
    fn every_truncated_event_body_is_an_error_not_a_panic() {
        let mut written = Vec::new();
        write_propertyset(
            &[("VirtualMachines", VM_LIST), ("State", "x")],
            &mut written,
        );
        for fixture in [GUPNP_EVENT, INDENTED_EVENT, &written] {
            // Stop before the root element's `>`: dropping only trailing white space leaves
            // a complete document.
            let complete = fixture.iter().rposition(|&byte| byte == b'>').unwrap_or(0);
            for end in 0..=complete {
                assert!(parse_propertyset(&fixture[..end]).is_err(), "prefix {end}");
            }
            assert!(parse_propertyset(fixture).is_ok());
        }
    }
}
