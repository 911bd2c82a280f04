//! Wire layer: the signature that proves a control request to a device (`X-Xenplug-Signature`).
//! Pure functions over the request's parts: no I/O, no clock (the caller passes the time), and
//! never a panic on what a peer sends.
//!
//! A caller holding the device's control key (32 bytes, shared out of band) signs each SOAP
//! control request with HMAC-SHA256 over a canonical string, one field per line, each line
//! ending in `\n`:
//!
//! ```text
//! xenplug-signature-1
//! <METHOD>                  POST
//! <request target>          the path and query as sent on the request line
//! <Host>                    the Host header's value as sent
//! <SOAPACTION>              the SOAPACTION header's value as sent (quotes included), or empty
//! <body SHA-256>            lowercase hex of the SHA-256 of the body as sent
//! <timestamp>               Unix seconds, decimal
//! <nonce>                   32 lowercase hex digits (16 random bytes), new for each request
//! <identity>                on whose behalf the call is made: 1-64 of A-Z a-z 0-9 _ . @ -
//! ```
//!
//! and sends the header
//!
//! ```text
//! X-Xenplug-Signature: v=1 t=<timestamp> n=<nonce> id=<identity> s=<HMAC, lowercase hex>
//! ```
//!
//! The fields are separated by one space and come in that order. A device accepts the request
//! when the HMAC matches under its key (compared in constant time), the timestamp is within
//! [`SIGNATURE_MAX_SKEW`] seconds of its clock, and it has not seen the nonce within that
//! window (replays are the engine's to track: [`crate::engine::nonces`]). The test vector in
//! this file's tests is also in README, for third-party control points.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use std::fmt;

/// Name of the request header that carries the signature.
pub const SIGNATURE_HEADER: &str = "X-Xenplug-Signature";
/// Seconds a signature's timestamp may be away from the device's clock, either way.
pub const SIGNATURE_MAX_SKEW: u64 = 60;
/// Bytes of a control key.
pub const KEY_BYTES: usize = 32;
/// Bytes of a nonce (32 hex digits on the wire).
pub const NONCE_BYTES: usize = 16;
/// Longest identity a signature may carry.
pub const IDENTITY_MAX: usize = 64;
/// First line of the canonical string: the signature scheme and its version.
const CANONICAL_FIRST_LINE: &str = "xenplug-signature-1";
/// Longest header value accepted (the fields above with room to spare).
const HEADER_MAX: usize = 256;

type HmacSha256 = Hmac<Sha256>;

/// A control key: 32 bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct ControlKey([u8; KEY_BYTES]);

impl ControlKey {
    /// The key from its 64 hexadecimal digits (a key file's one line; any case).
    pub fn from_hex(text: &str) -> Result<ControlKey, String> {
        let text = text.trim();
        if text.len() != 2 * KEY_BYTES {
            return Err(format!(
                "a control key is {} hexadecimal digits ({KEY_BYTES} bytes), this one has {}",
                2 * KEY_BYTES,
                text.len()
            ));
        }
        let mut key = [0u8; KEY_BYTES];
        decode_hex(text, &mut key).ok_or("a control key holds only hexadecimal digits")?;
        Ok(ControlKey(key))
    }

    /// The key from its bytes.
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> ControlKey {
        ControlKey(bytes)
    }

    /// The key as 64 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }
}

impl fmt::Debug for ControlKey {
    /// Never prints the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ControlKey(..)")
    }
}

/// The parts of a request a signature covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedParts<'a> {
    /// Request method (`POST`).
    pub method: &'a str,
    /// Request target as on the request line (path and query).
    pub target: &'a str,
    /// The Host header's value.
    pub host: &'a str,
    /// The SOAPACTION header's value, or empty when the request has none.
    pub soap_action: &'a str,
    /// The body.
    pub body: &'a [u8],
}

/// What a valid signature says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// Unix seconds when it was made.
    pub timestamp: u64,
    /// The nonce, 32 lowercase hex digits.
    pub nonce: String,
    /// On whose behalf the call is made.
    pub identity: String,
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// No signature header.
    Missing,
    /// The header is not `v=1 t=.. n=.. id=.. s=..` with well-formed fields.
    Malformed,
    /// The timestamp is more than [`SIGNATURE_MAX_SKEW`] seconds away.
    Stale,
    /// The HMAC does not match: another key, or a request changed on the way.
    Mismatch,
    /// The nonce was seen before within the window.
    Replayed,
}

impl fmt::Display for SignatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignatureError::Missing => "no signature",
            SignatureError::Malformed => "malformed signature",
            SignatureError::Stale => "signature timestamp too far from this device's clock",
            SignatureError::Mismatch => "signature does not match (wrong key or changed request)",
            SignatureError::Replayed => "signature seen before (replay)",
        })
    }
}

/// Whether `text` may be a signature's identity: 1 to [`IDENTITY_MAX`] of `A-Z a-z 0-9 _ . @ -`
/// (so it cannot break the header or the canonical string).
pub fn is_identity(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= IDENTITY_MAX
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
}

/// The canonical string of `parts` signed at `timestamp` with `nonce` for `identity`.
pub fn canonical_string(
    parts: &SignedParts<'_>,
    timestamp: u64,
    nonce: &str,
    identity: &str,
) -> String {
    let body_hash = hex(&Sha256::digest(parts.body));
    format!(
        "{CANONICAL_FIRST_LINE}\n{}\n{}\n{}\n{}\n{body_hash}\n{timestamp}\n{nonce}\n{identity}\n",
        parts.method, parts.target, parts.host, parts.soap_action
    )
}

/// The `X-Xenplug-Signature` value signing `parts` with `key` at `timestamp`, with the random
/// `nonce`, on behalf of `identity` (which must pass [`is_identity`]: `None` otherwise).
pub fn sign(
    key: &ControlKey,
    parts: &SignedParts<'_>,
    timestamp: u64,
    nonce: &[u8; NONCE_BYTES],
    identity: &str,
) -> Option<String> {
    if !is_identity(identity) {
        return None;
    }
    let nonce = hex(nonce);
    let mac = hmac_of(key, &canonical_string(parts, timestamp, &nonce, identity));
    Some(format!(
        "v=1 t={timestamp} n={nonce} id={identity} s={}",
        hex(&mac)
    ))
}

/// Checks the `X-Xenplug-Signature` value `header` (`None` when the request had none) against
/// `parts` under `key` at `now` (Unix seconds). A valid signature is returned so its nonce can
/// be checked for replay and its identity logged.
pub fn verify(
    key: &ControlKey,
    parts: &SignedParts<'_>,
    header: Option<&str>,
    now: u64,
) -> Result<Signature, SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let fields = parse_header(header)?;
    if fields.timestamp.abs_diff(now) > SIGNATURE_MAX_SKEW {
        return Err(SignatureError::Stale);
    }
    let canonical = canonical_string(parts, fields.timestamp, fields.nonce, fields.identity);
    let mut mac = HmacSha256::new_from_slice(&key.0).map_err(|_| SignatureError::Mismatch)?;
    mac.update(canonical.as_bytes());
    mac.verify_slice(&fields.mac)
        .map_err(|_| SignatureError::Mismatch)?;
    Ok(Signature {
        timestamp: fields.timestamp,
        nonce: fields.nonce.to_string(),
        identity: fields.identity.to_string(),
    })
}

/// The fields of a signature header.
struct HeaderFields<'a> {
    timestamp: u64,
    nonce: &'a str,
    identity: &'a str,
    mac: [u8; 32],
}

fn parse_header(header: &str) -> Result<HeaderFields<'_>, SignatureError> {
    let malformed = SignatureError::Malformed;
    if header.len() > HEADER_MAX {
        return Err(malformed);
    }
    let mut fields = header.trim().split(' ');
    let mut next = |name: &str| {
        fields
            .next()
            .and_then(|field| field.strip_prefix(name))
            .and_then(|field| field.strip_prefix('='))
            .ok_or(malformed)
    };
    if next("v")? != "1" {
        return Err(malformed);
    }
    let timestamp = next("t")?;
    if timestamp.is_empty()
        || timestamp.len() > 20
        || !timestamp.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(malformed);
    }
    let timestamp = timestamp.parse().map_err(|_| malformed)?;
    let nonce = next("n")?;
    let mut nonce_bytes = [0u8; NONCE_BYTES];
    if nonce.len() != 2 * NONCE_BYTES
        || !nonce
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        || decode_hex(nonce, &mut nonce_bytes).is_none()
    {
        return Err(malformed);
    }
    let identity = next("id")?;
    if !is_identity(identity) {
        return Err(malformed);
    }
    let mut mac = [0u8; 32];
    let signature = next("s")?;
    if signature.len() != 64 || decode_hex(signature, &mut mac).is_none() {
        return Err(malformed);
    }
    if fields.next().is_some() {
        return Err(malformed);
    }
    Ok(HeaderFields {
        timestamp,
        nonce,
        identity,
        mac,
    })
}

fn hmac_of(key: &ControlKey, text: &str) -> [u8; 32] {
    // HMAC takes a key of any length; a 32-byte one cannot be refused.
    let mut mac = match HmacSha256::new_from_slice(&key.0) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(text.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Lowercase hexadecimal digits of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Decodes hexadecimal digits (any case) into exactly `out.len()` bytes.
pub fn decode_hex(text: &str, out: &mut [u8]) -> Option<()> {
    let digits = text.as_bytes();
    if digits.len() != out.len() * 2 {
        return None;
    }
    let value = |digit: u8| {
        char::from(digit)
            .to_digit(16)
            .and_then(|v| u8::try_from(v).ok())
    };
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (value(*pair.first()?)? << 4) | value(*pair.get(1)?)?;
    }
    Some(())
}

/// The lowercase hex SHA-256 of `bytes` (how an access file stores a token).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The key of the test vector: bytes 0x00..0x1f.
    fn vector_key() -> ControlKey {
        let mut bytes = [0u8; KEY_BYTES];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte = index as u8;
        }
        ControlKey::from_bytes(bytes)
    }

    const BODY: &[u8] = b"<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body><u:Pause xmlns:u=\"urn:xenplug-org:service:DomainControl:1\"></u:Pause></s:Body></s:Envelope>";

    fn vector_parts() -> SignedParts<'static> {
        SignedParts {
            method: "POST",
            target: "/control/domain/0b5e1c2a-1111-4a6b-8c9d-00000000a001",
            host: "10.0.0.5:49152",
            soap_action: "\"urn:xenplug-org:service:DomainControl:1#Pause\"",
            body: BODY,
        }
    }

    const NONCE: [u8; NONCE_BYTES] = [
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ];
    const TIMESTAMP: u64 = 1_800_000_000;

    /// The test vector README gives: a third-party signer must produce exactly this (the
    /// values were computed independently with Python's hashlib and hmac).
    #[test]
    fn test_vector() {
        let key = vector_key();
        assert_eq!(
            key.to_hex(),
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        let canonical = canonical_string(
            &vector_parts(),
            TIMESTAMP,
            "00112233445566778899aabbccddeeff",
            "alice",
        );
        assert_eq!(
            canonical,
            "xenplug-signature-1\nPOST\n/control/domain/0b5e1c2a-1111-4a6b-8c9d-00000000a001\n\
             10.0.0.5:49152\n\"urn:xenplug-org:service:DomainControl:1#Pause\"\n\
             a588ed91a45d06f6dbae3f84d8f359c6f983fe6afe6a99df7b5fe93239e71bf5\n1800000000\n\
             00112233445566778899aabbccddeeff\nalice\n"
        );
        let header = sign(&key, &vector_parts(), TIMESTAMP, &NONCE, "alice").unwrap();
        assert_eq!(
            header,
            "v=1 t=1800000000 n=00112233445566778899aabbccddeeff id=alice \
             s=f4e6eb392697466e6f421cee82367b0566d7f99023ab9717d17a88469f4201c0"
        );
    }

    #[test]
    fn a_signature_verifies_once_and_only_for_its_request() {
        let key = vector_key();
        let parts = vector_parts();
        let header = sign(&key, &parts, TIMESTAMP, &NONCE, "tracker").unwrap();
        let signed = verify(&key, &parts, Some(&header), TIMESTAMP + 30).unwrap();
        assert_eq!(signed.identity, "tracker");
        assert_eq!(signed.timestamp, TIMESTAMP);
        assert_eq!(signed.nonce, "00112233445566778899aabbccddeeff");

        let changed_body = SignedParts {
            body: b"<other/>",
            ..parts
        };
        let changed_target = SignedParts {
            target: "/control/hypervisor",
            ..parts
        };
        let changed_action = SignedParts {
            soap_action: "\"urn:xenplug-org:service:DomainControl:1#Destroy\"",
            ..parts
        };
        for changed in [changed_body, changed_target, changed_action] {
            assert_eq!(
                verify(&key, &changed, Some(&header), TIMESTAMP),
                Err(SignatureError::Mismatch)
            );
        }
        let mut other = [7u8; KEY_BYTES];
        other[0] = 1;
        assert_eq!(
            verify(
                &ControlKey::from_bytes(other),
                &parts,
                Some(&header),
                TIMESTAMP
            ),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(&key, &parts, Some(&header), TIMESTAMP + 120),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&key, &parts, Some(&header), TIMESTAMP - 61),
            Err(SignatureError::Stale)
        );
        assert_eq!(
            verify(&key, &parts, None, TIMESTAMP),
            Err(SignatureError::Missing)
        );
        // Another identity in the header than the one signed.
        let forged = header.replace("id=tracker", "id=admin");
        assert_eq!(
            verify(&key, &parts, Some(&forged), TIMESTAMP),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused_without_panic() {
        let key = vector_key();
        let parts = vector_parts();
        let good = sign(&key, &parts, TIMESTAMP, &NONCE, "tracker").unwrap();
        for end in 0..good.len() {
            let prefix = &good[..end];
            assert!(
                verify(&key, &parts, Some(prefix), TIMESTAMP).is_err(),
                "{prefix}"
            );
        }
        for bad in [
            "",
            "v=2 t=1 n=00112233445566778899aabbccddeeff id=a s=00",
            "t=1800000000 v=1 n=00112233445566778899aabbccddeeff id=a s=00",
            "v=1 t=-1 n=00112233445566778899aabbccddeeff id=a s=00",
            "v=1 t=99999999999999999999999 n=00 id=a s=00",
            "v=1 t=1 n=00112233445566778899AABBCCDDEEFF id=a s=00",
            "v=1 t=1 n=00112233445566778899aabbccddeeff id=a b s=00",
            "v=1 t=1 n=00112233445566778899aabbccddeeff id= s=00",
        ] {
            assert_eq!(
                verify(&key, &parts, Some(bad), TIMESTAMP),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        let long = format!("{good} {}", "x".repeat(HEADER_MAX));
        assert_eq!(
            verify(&key, &parts, Some(&long), TIMESTAMP),
            Err(SignatureError::Malformed)
        );
    }

    #[test]
    fn identities_keys_and_hex() {
        assert!(is_identity("alice") && is_identity("ops.team@site-1") && is_identity("a_b"));
        for bad in ["", "a b", "a\n", "a=b", "tenant:acme", &"x".repeat(65)] {
            assert!(!is_identity(bad), "{bad:?}");
        }
        assert!(sign(&vector_key(), &vector_parts(), 1, &NONCE, "a b").is_none());
        let text = "000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f\n";
        assert_eq!(ControlKey::from_hex(text).unwrap(), vector_key());
        assert!(ControlKey::from_hex("0011").unwrap_err().contains("64"));
        assert!(ControlKey::from_hex(&"g".repeat(64)).is_err());
        assert_eq!(format!("{:?}", vector_key()), "ControlKey(..)");
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut out = [0u8; 2];
        assert_eq!(decode_hex("aBcD", &mut out), Some(()));
        assert_eq!(out, [0xab, 0xcd]);
        assert_eq!(decode_hex("abc", &mut out), None);
        assert_eq!(decode_hex("zz00", &mut out), None);
    }
}
