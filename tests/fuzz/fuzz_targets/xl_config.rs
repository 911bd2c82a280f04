//! Fuzz target: `backend::xl::config::parse` and `classify` on UTF-8 text (xl domain config files).
//!
//! Invariants: no panic; errors say `line N: ...`; the settings read, written back as an xl
//! config file, read again the same; a file classified as a domain has a non-blank name and
//! a UUID xl would accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use xenplug::backend::xl::config::{classify, parse, parse_uuid, Outcome, Settings};

/// `"text"` with the escapes the parser undoes.
fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// The settings as an xl config file.
fn render(settings: &Settings) -> String {
    let mut out = String::new();
    if let Some(name) = &settings.name {
        out.push_str(&format!("name = {}\n", quoted(name)));
    }
    if let Some(uuid) = &settings.uuid {
        out.push_str(&format!("uuid = {}\n", quoted(uuid)));
    }
    if let Some(memory) = settings.memory_mib {
        out.push_str(&format!("memory = {memory}\n"));
    }
    if let Some(vcpus) = settings.vcpus {
        out.push_str(&format!("vcpus = {vcpus}\n"));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    match parse(text) {
        Ok(settings) => {
            let written = render(&settings);
            let again = parse(&written).unwrap_or_else(|error| {
                panic!("written settings do not parse ({error}): {written:?}")
            });
            assert_eq!(again, settings, "{written:?}");
        }
        Err(message) => assert!(message.starts_with("line "), "error {message:?}"),
    }
    if let Outcome::Domain(domain) = classify(Path::new("/etc/xen/fuzz.cfg"), text) {
        assert!(!domain.name.trim().is_empty());
        assert_eq!(parse_uuid(&domain.uuid.to_string()), Some(domain.uuid));
    }
});
