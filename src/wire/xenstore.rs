//! Wire layer: xenstore's message format (Xen's `xs_wire.h`), the part a client that watches
//! domains come and go needs. No I/O, no clock; parsing never panics.
//!
//! Every message, request or reply, is a 16-byte header, four 32-bit words in the host's byte
//! order (xenstored and its clients always share one machine): type, request id (echoed in the
//! reply), transaction id (0 outside a transaction), payload length; then at most
//! [`XENSTORE_PAYLOAD_MAX`] bytes of payload, generally NUL-terminated strings. A `WATCH`
//! request carries `PATH\0TOKEN\0` and is answered `OK\0`; xenstored then sends a
//! `WATCH_EVENT` carrying `PATH\0TOKEN\0` each time PATH or a node under it changes, and once
//! right after the watch is set. The special paths `@introduceDomain` and `@releaseDomain`
//! fire when a domain is introduced to xenstored and when one shuts down, crashes or dies. A
//! refused request is answered with type `ERROR` and an errno name (`EACCES\0`).
//!
//! Captured from Xen 4.17's xenstored on its unix socket (x86-64, little-endian): the reply to
//! `WATCH @introduceDomain xenplug` with request id 1, then the event it fires up front:
//!
//! ```text
//! 04000000 01000000 00000000 03000000  4f4b00                  WATCH, req 1, "OK\0"
//! 0f000000 00000000 00000000 19000000  40696e74726f6475...00   WATCH_EVENT, 25 bytes
//! ```

use super::{Cursor, Error, Result};

/// Length of a message header.
pub const XENSTORE_HEADER_LEN: usize = 16;
/// Largest payload xenstored sends or accepts (`XENSTORE_PAYLOAD_MAX`).
pub const XENSTORE_PAYLOAD_MAX: usize = 4096;
/// Largest whole message.
pub const XENSTORE_MESSAGE_MAX: usize = XENSTORE_HEADER_LEN + XENSTORE_PAYLOAD_MAX;

/// The message types this client sends or understands (`enum xsd_sockmsg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `XS_DIRECTORY` (1): list a node's children.
    Directory,
    /// `XS_READ` (2): read a node.
    Read,
    /// `XS_WATCH` (4): set a watch.
    Watch,
    /// `XS_UNWATCH` (5): remove a watch.
    Unwatch,
    /// `XS_WATCH_EVENT` (15): a watch fired.
    WatchEvent,
    /// `XS_ERROR` (16): the request was refused.
    Error,
    /// Any other type, by its number.
    Other(u32),
}

impl Kind {
    /// The type's number on the wire.
    pub const fn code(self) -> u32 {
        match self {
            Kind::Directory => 1,
            Kind::Read => 2,
            Kind::Watch => 4,
            Kind::Unwatch => 5,
            Kind::WatchEvent => 15,
            Kind::Error => 16,
            Kind::Other(code) => code,
        }
    }

    /// The type numbered `code`.
    pub const fn from_code(code: u32) -> Kind {
        match code {
            1 => Kind::Directory,
            2 => Kind::Read,
            4 => Kind::Watch,
            5 => Kind::Unwatch,
            15 => Kind::WatchEvent,
            16 => Kind::Error,
            other => Kind::Other(other),
        }
    }
}

/// One message, borrowing its payload from the buffer it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    /// Type.
    pub kind: Kind,
    /// Request id: the request's own, echoed in its reply; 0 in a watch event.
    pub request: u32,
    /// Transaction id.
    pub transaction: u32,
    /// Payload.
    pub payload: &'a [u8],
}

fn word(bytes: &[u8], at: usize) -> Result<u32> {
    let field = bytes.get(at..at + 4).ok_or(Error::Truncated)?;
    let mut raw = [0u8; 4];
    raw.copy_from_slice(field);
    Ok(u32::from_ne_bytes(raw))
}

/// Parses the first message of `bytes` and says how many bytes it took. `Truncated` while the
/// message is not all there (read more and try again); `TooLong` for a payload length above
/// [`XENSTORE_PAYLOAD_MAX`] (the stream cannot be trusted after it).
pub fn parse(bytes: &[u8]) -> Result<(Message<'_>, usize)> {
    if bytes.len() < XENSTORE_HEADER_LEN {
        return Err(Error::Truncated);
    }
    let kind = Kind::from_code(word(bytes, 0)?);
    let request = word(bytes, 4)?;
    let transaction = word(bytes, 8)?;
    let len = usize::try_from(word(bytes, 12)?).map_err(|_| Error::TooLong)?;
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(Error::TooLong);
    }
    let end = XENSTORE_HEADER_LEN + len;
    let payload = bytes
        .get(XENSTORE_HEADER_LEN..end)
        .ok_or(Error::Truncated)?;
    Ok((
        Message {
            kind,
            request,
            transaction,
            payload,
        },
        end,
    ))
}

/// Writes a request of `kind` with id `request`, outside any transaction, whose payload is
/// each of `strings` followed by a NUL. A string holding a NUL is `Malformed`; a payload over
/// [`XENSTORE_PAYLOAD_MAX`] or a buffer too small is `TooLong`. Returns the length written.
pub fn emit(kind: Kind, request: u32, strings: &[&str], buffer: &mut [u8]) -> Result<usize> {
    let mut len = 0usize;
    for text in strings {
        if text.as_bytes().contains(&0) {
            return Err(Error::Malformed);
        }
        len = len.checked_add(text.len() + 1).ok_or(Error::TooLong)?;
    }
    if len > XENSTORE_PAYLOAD_MAX {
        return Err(Error::TooLong);
    }
    let mut out = Cursor::new(buffer);
    out.put(&kind.code().to_ne_bytes())?;
    out.put(&request.to_ne_bytes())?;
    out.put(&0u32.to_ne_bytes())?;
    out.put(&(len as u32).to_ne_bytes())?;
    for text in strings {
        out.put(text.as_bytes())?;
        out.put(&[0])?;
    }
    Ok(out.len())
}

impl<'a> Message<'a> {
    /// The payload's NUL-terminated strings, in order (an unterminated tail counts as one; a
    /// lone NUL is one empty string, an empty payload none); `None` unless every one is UTF-8.
    pub fn strings(&self) -> Option<Vec<&'a str>> {
        if self.payload.is_empty() {
            return Some(Vec::new());
        }
        self.payload
            .strip_suffix(&[0])
            .unwrap_or(self.payload)
            .split(|&byte| byte == 0)
            .map(|part| core::str::from_utf8(part).ok())
            .collect()
    }

    /// A watch event's path and token.
    pub fn watch_event(&self) -> Option<(&'a str, &'a str)> {
        if self.kind != Kind::WatchEvent {
            return None;
        }
        match self.strings()?.as_slice() {
            [path, token, ..] => Some((path, token)),
            _ => None,
        }
    }

    /// An error reply's errno name (`EACCES`).
    pub fn error(&self) -> Option<&'a str> {
        if self.kind != Kind::Error {
            return None;
        }
        self.strings()?.first().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reply to `WATCH @introduceDomain xenplug` (request 1) and the event it fires,
    /// back to back as they arrived (x86-64).
    static WATCH_REPLY_AND_EVENT: &[u8] = b"\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\
\x03\x00\x00\x00OK\x00\
\x0f\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x19\x00\x00\x00@introduceDomain\x00xenplug\x00";

    #[test]
    fn a_reply_and_an_event_back_to_back() {
        let (reply, used) = parse(WATCH_REPLY_AND_EVENT).unwrap();
        assert_eq!(reply.kind, Kind::Watch);
        assert_eq!(reply.request, 1);
        assert_eq!(reply.strings().unwrap(), ["OK"]);
        assert_eq!(used, 19);
        let (event, rest) = parse(&WATCH_REPLY_AND_EVENT[used..]).unwrap();
        assert_eq!(event.watch_event(), Some(("@introduceDomain", "xenplug")));
        assert_eq!(used + rest, WATCH_REPLY_AND_EVENT.len());
        assert_eq!(event.error(), None);
        assert_eq!(reply.watch_event(), None);
    }

    #[test]
    fn every_truncated_prefix_is_truncated() {
        for end in 0..19 {
            assert_eq!(
                parse(&WATCH_REPLY_AND_EVENT[..end]),
                Err(Error::Truncated),
                "{end}"
            );
        }
    }

    #[test]
    fn requests_round_trip() {
        let mut buffer = [0u8; 64];
        let len = emit(Kind::Watch, 7, &["@releaseDomain", "xenplug"], &mut buffer).unwrap();
        let (message, used) = parse(&buffer[..len]).unwrap();
        assert_eq!(used, len);
        assert_eq!(message.kind, Kind::Watch);
        assert_eq!(message.request, 7);
        assert_eq!(message.transaction, 0);
        assert_eq!(message.payload, b"@releaseDomain\0xenplug\0");
        assert_eq!(
            emit(Kind::Read, 1, &["a\0b"], &mut buffer),
            Err(Error::Malformed)
        );
        assert_eq!(
            emit(Kind::Read, 1, &["/local"], &mut [0u8; 20]),
            Err(Error::TooLong)
        );
        let long = "x".repeat(XENSTORE_PAYLOAD_MAX);
        let mut big = [0u8; XENSTORE_MESSAGE_MAX + 8];
        assert_eq!(emit(Kind::Read, 1, &[&long], &mut big), Err(Error::TooLong));
    }

    #[test]
    fn oversized_lengths_and_odd_payloads() {
        let mut header = [0u8; 16];
        header[12..16].copy_from_slice(&(XENSTORE_PAYLOAD_MAX as u32 + 1).to_ne_bytes());
        assert_eq!(parse(&header), Err(Error::TooLong));
        header[0..4].copy_from_slice(&16u32.to_ne_bytes());
        header[12..16].copy_from_slice(&7u32.to_ne_bytes());
        let mut error = header.to_vec();
        error.extend_from_slice(b"EACCES\0");
        let (message, _) = parse(&error).unwrap();
        assert_eq!(message.error(), Some("EACCES"));
        let odd = Message {
            kind: Kind::WatchEvent,
            request: 0,
            transaction: 0,
            payload: b"only-path",
        };
        assert_eq!(odd.watch_event(), None);
        let bad = Message {
            payload: b"\xff\0t\0",
            ..odd
        };
        assert_eq!(bad.strings(), None);
        // A lone NUL is one empty string (it is what emit writes for [""]); nothing is none.
        for (payload, strings) in [
            (&b"\0"[..], vec![""]),
            (b"", vec![]),
            (b"a\0\0", vec!["a", ""]),
        ] {
            assert_eq!(Message { payload, ..odd }.strings(), Some(strings));
        }
        let mut buffer = [0u8; 32];
        let len = emit(Kind::Read, 1, &[""], &mut buffer).unwrap();
        assert_eq!(parse(&buffer[..len]).unwrap().0.strings(), Some(vec![""]));
        assert_eq!(Kind::from_code(99), Kind::Other(99));
        for kind in [
            Kind::Directory,
            Kind::Read,
            Kind::Watch,
            Kind::Unwatch,
            Kind::WatchEvent,
            Kind::Error,
        ] {
            assert_eq!(Kind::from_code(kind.code()), kind);
        }
        assert_eq!(Kind::Other(99).code(), 99);
    }
}
