//! Fuzz target: `wire::etcd`, the readers of etcd's JSON gateway answers (what a tracker and
//! a console take from any etcd member) and its base64.
//!
//! Input: the answer body (or one line of a watch stream). Invariants: no panic; an accepted
//! range, transaction or watch message holds only what base64 decoded; `read_error` keeps at
//! most `GATEWAY_ERROR_MAX` characters and no control character; base64 of the input decodes
//! back to it, and any text decodes to at most three bytes per four characters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::wire::etcd::{
    base64_decode, base64_encode, read_error, read_grant, read_keepalive, read_range,
    read_token, read_txn, read_watch, ErrorKind, GATEWAY_ERROR_MAX,
};

fuzz_target!(|data: &[u8]| {
    let _ = read_range(data);
    let _ = read_txn(data);
    let _ = read_grant(data);
    let _ = read_keepalive(data);
    if let Ok(token) = read_token(data) {
        assert!(!token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()));
    }
    if let Ok(message) = read_watch(data) {
        for event in &message.events {
            let _ = (event.deleted, event.kv.mod_revision);
        }
    }
    if let Some(error) = read_error(data) {
        assert!(error.message.chars().count() <= GATEWAY_ERROR_MAX);
        assert!(!error.message.chars().any(char::is_control));
        let _ = ErrorKind::of(&error);
    }
    let encoded = base64_encode(data);
    assert_eq!(base64_decode(&encoded).as_deref(), Ok(data));
    if let Ok(text) = core::str::from_utf8(data) {
        if let Ok(decoded) = base64_decode(text) {
            assert!(decoded.len() <= text.len() * 3 / 4 + 1);
        }
    }
});
