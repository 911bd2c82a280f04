//! Fuzz target: `wire::form::pairs` and `decode`, the tracker's reader of query strings and
//! form bodies.
//!
//! Input: the text (invalid UTF-8 replaced). Invariants: no panic; `decode` of a string with
//! no `%` or `+` is the identity; `pairs` gives one pair per non-empty `&`-separated piece,
//! each the decoding of the text before and after its first `=`; and a percent-encoding of
//! any text (every byte but the unreserved ones as `%HH`, upper- or lower-case, a space as
//! `+`) decodes back to that text, alone and as the key and value of a pair.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::wire::form::{decode, pairs};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let decoded = decode(&text);
    if !text.contains(['%', '+']) {
        assert_eq!(decoded, text);
    }

    let found = pairs(&text);
    let pieces: Vec<&str> = text.split('&').filter(|piece| !piece.is_empty()).collect();
    assert_eq!(found.len(), pieces.len());
    for ((key, value), piece) in found.iter().zip(&pieces) {
        let (raw_key, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
        assert_eq!(key, &decode(raw_key));
        assert_eq!(value, &decode(raw_value));
    }

    let upper = data.first().is_some_and(|b| b & 1 == 1);
    let encoded = encode(&text, upper);
    assert_eq!(decode(&encoded), text, "{encoded:?}");
    let form = format!("{encoded}={encoded}&&k={encoded}");
    assert_eq!(
        pairs(&form),
        vec![
            (text.to_string(), text.to_string()),
            ("k".to_string(), text.to_string())
        ]
    );
});

/// `application/x-www-form-urlencoded` as a browser writes it, hex in the given case.
fn encode(text: &str, upper: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for &byte in text.as_bytes() {
        match byte {
            b' ' => out.push('+'),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ if upper => out.push_str(&format!("%{byte:02X}")),
            _ => out.push_str(&format!("%{byte:02x}")),
        }
    }
    out
}
