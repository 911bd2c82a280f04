//! Fuzz target: `files::Record::parse` on UTF-8 text.
//!
//! Invariants: no panic; a parsed record written with `to_text` parses to an equal record,
//! and writing that is a fixed point; every written line is `key=value` with `get(key)`
//! returning the value; `set` on a parsed record keeps it parseable.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::files::Record;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    let record = match Record::parse(text) {
        Ok(record) => record,
        Err(message) => {
            assert!(message.starts_with("line "), "error {message:?}");
            return;
        }
    };
    let written = record.to_text();
    let again = Record::parse(&written)
        .unwrap_or_else(|error| panic!("to_text output does not parse ({error}): {written:?}"));
    assert_eq!(again, record, "{written:?}");
    assert_eq!(again.to_text(), written);

    for line in written.lines() {
        let (key, value) = line.split_once('=').expect("written lines hold '='");
        assert_eq!(record.get(key), Some(value), "line {line:?}");
        assert_eq!(record.require(key), Ok(value));
    }

    // Replacing a value keeps the record's shape and reads back.
    let mut changed = record.clone();
    if let Some(line) = written.lines().next() {
        let (key, _) = line.split_once('=').expect("written lines hold '='");
        changed.set(key, "changed");
        assert_eq!(changed.get(key), Some("changed"));
        assert_eq!(changed.to_text().lines().count(), written.lines().count());
        assert_eq!(Record::parse(&changed.to_text()), Ok(changed.clone()));
    }
    changed.set("fuzz-new-key", "v");
    assert_eq!(changed.get("fuzz-new-key"), Some("v"));
    assert_eq!(Record::parse(&changed.to_text()), Ok(changed));
});
