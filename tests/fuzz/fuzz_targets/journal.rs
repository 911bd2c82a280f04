//! Fuzz target: the tracker's journal line reader `repo::Event::parse_line` and the escaped
//! record reader `files::Record::parse_escaped`, on UTF-8 text.
//!
//! Invariants: no panic; a parsed event written with `to_line` is one line ending in its only
//! newline, at most `REPO_MAX_JOURNAL_LINE` bytes, that parses back to an equal event and is
//! written again to the same bytes (`to_line` may refuse only an event whose escaped line
//! outgrew that limit); a parsed escaped record written with `to_text_escaped` parses back to
//! an equal record (`to_text_escaped` may refuse only a key `is_record_key` refuses), with
//! one line per entry and no whitespace in any written value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::REPO_MAX_JOURNAL_LINE;
use xenplug::files::{is_record_key, Record};
use xenplug::repo::Event;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    check_event(text);
    // The journal reader hands parse_line each line without its newline.
    for line in text.lines().take(4) {
        check_event(line);
    }
    check_record(text);
});

fn check_event(line: &str) {
    let event = match Event::parse_line(line) {
        Ok(event) => event,
        Err(reason) => {
            assert!(!reason.is_empty());
            return;
        }
    };
    let written = match event.to_line() {
        Ok(written) => written,
        Err(reason) => {
            assert!(
                reason.contains("exceeds"),
                "to_line refused {event:?}: {reason}"
            );
            return;
        }
    };
    assert!(written.len() <= REPO_MAX_JOURNAL_LINE);
    assert_eq!(written.find('\n'), Some(written.len() - 1), "{written:?}");
    let again = Event::parse_line(&written[..written.len() - 1])
        .unwrap_or_else(|reason| panic!("to_line output does not parse ({reason}): {written:?}"));
    assert_eq!(again, event, "{written:?}");
    assert_eq!(again.to_line().as_ref(), Ok(&written));
}

fn check_record(text: &str) {
    let record = match Record::parse_escaped(text) {
        Ok(record) => record,
        Err(reason) => {
            assert!(!reason.is_empty());
            return;
        }
    };
    let written = match record.to_text_escaped() {
        Ok(written) => written,
        Err(reason) => {
            assert!(
                record.iter().any(|(key, _)| !is_record_key(key)),
                "to_text_escaped refused {record:?}: {reason}"
            );
            return;
        }
    };
    assert_eq!(written.lines().count(), record.iter().count());
    for (line, (key, _)) in written.lines().zip(record.iter()) {
        let (written_key, value) = line.split_once('=').expect("written lines hold '='");
        assert_eq!(written_key, key);
        assert!(
            !value.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{line:?}"
        );
    }
    let again = Record::parse_escaped(&written).unwrap_or_else(|reason| {
        panic!("to_text_escaped output does not parse ({reason}): {written:?}")
    });
    assert_eq!(again, record, "{written:?}");
    assert_eq!(again.to_text_escaped().as_ref(), Ok(&written));
}
