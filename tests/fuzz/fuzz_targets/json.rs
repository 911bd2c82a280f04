//! Fuzz target: `wire::json::parse_value`, the console's reader of the tracker's API answers.
//!
//! Input: the document. Invariants: no panic, and never `Unsupported`; input that is not UTF-8
//! is `Malformed`; `TooLong` only for input that opens more than `JSON_MAX_DEPTH` arrays and
//! objects. An accepted value nests at most `JSON_MAX_DEPTH` deep, and wrapped in arrays up to
//! that depth it still reads, one deeper it is `TooLong`; surrounding whitespace changes
//! nothing; a number that reads as an integer is written as that integer is (`-0` aside); a
//! strict prefix of an accepted array, object or string is refused, `Truncated` when cut on a
//! character boundary. `console::merge::write_value`, which writes back what the console read,
//! writes every accepted value through `JsonWriter` (a number that is no integer within u64 or
//! i64 as its text in a string, `-0` as `0`) with no raw U+0000 to U+001F, U+007F, U+2028 or
//! U+2029; that reads back equal, and writing it again gives the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::console::merge::write_value;
use xenplug::consts::JSON_MAX_DEPTH;
use xenplug::wire::json::{parse_value, JsonValue, JsonWriter};
use xenplug::wire::Error;

fuzz_target!(|data: &[u8]| {
    let value = match parse_value(data) {
        Ok(value) => value,
        Err(error) => {
            check_refusal(data, error);
            return;
        }
    };
    let depth = depth(&value);
    assert!(depth <= JSON_MAX_DEPTH, "accepted depth {depth}");
    check_numbers(&value);

    let spaced = [b" \t\r\n".as_slice(), data, b"\n\r\t "].concat();
    assert_eq!(parse_value(&spaced).as_ref(), Ok(&value));

    let room = JSON_MAX_DEPTH - depth;
    assert!(parse_value(&wrap(data, room)).is_ok(), "{room} arrays more");
    assert_eq!(parse_value(&wrap(data, room + 1)), Err(Error::TooLong));

    check_prefixes(data, &value);

    let mut writer = JsonWriter::new();
    write_value(&mut writer, &value);
    let written = writer
        .finish()
        .unwrap_or_else(|error| panic!("the writer refused {value:?}: {error}"));
    let text = core::str::from_utf8(&written).expect("the writer writes UTF-8");
    assert!(
        !text.contains(|c| matches!(c, '\0'..='\u{1f}' | '\u{7f}' | '\u{2028}' | '\u{2029}')),
        "{text:?}"
    );
    let again = parse_value(&written)
        .unwrap_or_else(|error| panic!("written document does not parse ({error}): {text:?}"));
    assert_eq!(again, writable(&value), "{text:?}");
    let mut writer = JsonWriter::new();
    write_value(&mut writer, &again);
    assert_eq!(writer.finish().as_ref(), Ok(&written));
});

/// What a refusal may be.
fn check_refusal(data: &[u8], error: Error) {
    match error {
        Error::Unsupported => panic!("Unsupported is not a JSON error"),
        Error::TooLong => {
            let opened = data.iter().filter(|b| matches!(b, b'[' | b'{')).count();
            assert!(opened > JSON_MAX_DEPTH, "TooLong with {opened} openings");
        }
        Error::Truncated | Error::Malformed => {}
    }
    if core::str::from_utf8(data).is_err() {
        assert_eq!(error, Error::Malformed, "not UTF-8");
    }
}

/// How deep arrays and objects nest: 0 for a scalar, as the reader counts.
fn depth(value: &JsonValue) -> usize {
    match value {
        JsonValue::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        JsonValue::Object(members) => 1 + members.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// The grammar has no leading zeros and no `+`: a number that reads as an integer is written
/// as that integer is (only `-0` is not).
fn check_numbers(value: &JsonValue) {
    match value {
        JsonValue::Number(text) => {
            if let Ok(number) = text.parse::<u64>() {
                assert_eq!(&number.to_string(), text);
            }
            if let Ok(number) = text.parse::<i64>() {
                assert!(&number.to_string() == text || text == "-0", "{text}");
            }
        }
        JsonValue::Array(items) => items.iter().for_each(check_numbers),
        JsonValue::Object(members) => members.iter().for_each(|(_, v)| check_numbers(v)),
        _ => {}
    }
}

/// `data` inside `count` arrays.
fn wrap(data: &[u8], count: usize) -> Vec<u8> {
    [
        "[".repeat(count).as_bytes(),
        data,
        "]".repeat(count).as_bytes(),
    ]
    .concat()
}

/// An array, object or string is only complete at its last byte: every shorter prefix of the
/// document is refused (checked at three cuts, not all, to keep each run short).
fn check_prefixes(data: &[u8], value: &JsonValue) {
    if !matches!(
        value,
        JsonValue::Array(_) | JsonValue::Object(_) | JsonValue::String(_)
    ) {
        return;
    }
    let text = core::str::from_utf8(data).expect("accepted input is UTF-8");
    let document = text.trim_end_matches([' ', '\t', '\r', '\n']);
    for cut in [0, document.len() / 2, document.len() - 1] {
        let result = parse_value(&data[..cut]);
        if document.is_char_boundary(cut) {
            assert_eq!(result, Err(Error::Truncated), "cut at {cut}");
        } else {
            assert_eq!(result, Err(Error::Malformed), "cut at {cut}");
        }
    }
}

/// `value` as `write_value` writes it: an integer within u64 or i64 as that integer, any
/// other number as its text in a string.
fn writable(value: &JsonValue) -> JsonValue {
    match value {
        JsonValue::Number(text) => match (text.parse::<u64>(), text.parse::<i64>()) {
            (Ok(number), _) => JsonValue::Number(number.to_string()),
            (_, Ok(number)) => JsonValue::Number(number.to_string()),
            _ => JsonValue::String(text.clone()),
        },
        JsonValue::Array(items) => JsonValue::Array(items.iter().map(writable).collect()),
        JsonValue::Object(members) => JsonValue::Object(
            members
                .iter()
                .map(|(key, member)| (key.clone(), writable(member)))
                .collect(),
        ),
        other => other.clone(),
    }
}
