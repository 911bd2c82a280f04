//! Wire layer: typed views over protocol bytes with `parse` and `emit`.
//!
//! Contract (the smoltcp one): `parse` never panics on any input and borrows from the
//! buffer; `emit` writes into a caller's buffer and fails with [`Error::TooLong`] rather than
//! truncating. Nothing here does I/O or reads a clock.

pub mod description;
pub mod etcd;
pub mod form;
pub mod gena;
pub mod http;
pub mod json;
pub mod scpd;
pub mod signature;
pub mod soap;
pub mod ssdp;
pub mod xenstore;
pub mod xml;
pub mod xmlrpc;

use core::fmt;

/// Why bytes could not be parsed or emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The input ended before the message did.
    Truncated,
    /// The input is not a well-formed message of this kind.
    Malformed,
    /// A well-formed message of a kind or version we do not handle.
    Unsupported,
    /// The message or a field is longer than its limit, or does not fit the output buffer.
    TooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::Truncated => "truncated",
            Error::Malformed => "malformed",
            Error::Unsupported => "unsupported",
            Error::TooLong => "too long",
        })
    }
}

impl std::error::Error for Error {}

/// Result of a wire operation.
pub type Result<T> = core::result::Result<T, Error>;

/// Pieces up to this many bytes are copied by hand (see [`Cursor::put`]).
const SHORT_COPY: usize = 64;

/// A writer over a fixed byte buffer: every `emit` in this layer writes through one, so a
/// message that does not fit fails with [`Error::TooLong`] instead of being cut.
pub struct Cursor<'a> {
    buffer: &'a mut [u8],
    len: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor writing from the start of `buffer`.
    pub fn new(buffer: &'a mut [u8]) -> Self {
        Cursor { buffer, len: 0 }
    }

    /// Appends `bytes`, or fails without writing anything if they do not fit.
    pub fn put(&mut self, bytes: &[u8]) -> Result<()> {
        let end = self.len.checked_add(bytes.len()).ok_or(Error::TooLong)?;
        let dst = self.buffer.get_mut(self.len..end).ok_or(Error::TooLong)?;
        // musl's memcpy starts a `rep movs` at every call, which costs more than copying the
        // few bytes of a field name or a separator by hand.
        if bytes.len() <= SHORT_COPY {
            for (to, &from) in dst.iter_mut().zip(bytes) {
                *to = from;
            }
        } else {
            dst.copy_from_slice(bytes);
        }
        self.len = end;
        Ok(())
    }

    /// Appends a string.
    pub fn put_str(&mut self, text: &str) -> Result<()> {
        self.put(text.as_bytes())
    }

    /// Appends the decimal form of `value`.
    pub fn put_u64(&mut self, value: u64) -> Result<()> {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        let mut rest = value;
        loop {
            at -= 1;
            digits[at] = b'0' + (rest % 10) as u8;
            rest /= 10;
            if rest == 0 {
                break;
            }
        }
        self.put(&digits[at..])
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing has been written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The written part of the buffer.
    pub fn written(&self) -> &[u8] {
        &self.buffer[..self.len]
    }
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.put_str(s).map_err(|_| fmt::Error)
    }
}

/// Length of an RFC 1123 date as HTTP writes it: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// Formats `unix_seconds` as an RFC 1123 date (the DATE header of HTTP and SSDP responses),
/// without allocating. Dates before 1970 are not representable and print as the epoch.
pub fn http_date(unix_seconds: u64) -> [u8; HTTP_DATE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix_seconds / 86400;
    let seconds_of_day = unix_seconds % 86400;
    // Civil date from a day count (proleptic Gregorian calendar, era-based arithmetic).
    let shifted = days as i64 + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    let year = year.clamp(0, 9999) as u64;

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let two = |out: &mut [u8; HTTP_DATE_LEN], at: usize, value: u64| {
        out[at] = b'0' + (value / 10 % 10) as u8;
        out[at + 1] = b'0' + (value % 10) as u8;
    };
    out[0..3].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out, 5, day as u64);
    out[8..11].copy_from_slice(MONTHS[(month - 1) as usize]);
    two(&mut out, 12, year / 100);
    two(&mut out, 14, year % 100);
    two(&mut out, 17, seconds_of_day / 3600);
    two(&mut out, 20, seconds_of_day / 60 % 60);
    two(&mut out, 23, seconds_of_day % 60);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_refuses_rather_than_truncates() {
        let mut buf = [0u8; 8];
        let mut cursor = Cursor::new(&mut buf);
        cursor.put_str("abcd").unwrap();
        assert_eq!(cursor.put_str("efghi"), Err(Error::TooLong));
        assert_eq!(cursor.written(), b"abcd");
        cursor.put_u64(1234).unwrap();
        assert_eq!(cursor.written(), b"abcd1234");
        assert_eq!(cursor.put_u64(0), Err(Error::TooLong));
    }

    #[test]
    fn cursor_writes_zero_and_max() {
        let mut buf = [0u8; 32];
        let mut cursor = Cursor::new(&mut buf);
        cursor.put_u64(0).unwrap();
        cursor.put_u64(u64::MAX).unwrap();
        assert_eq!(cursor.written(), b"018446744073709551615");
    }

    #[test]
    fn http_dates() {
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&http_date(1_795_478_400), b"Tue, 24 Nov 2026 00:00:00 GMT");
    }
}
