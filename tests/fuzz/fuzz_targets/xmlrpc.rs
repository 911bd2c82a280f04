//! Fuzz target: `wire::xmlrpc::parse_response`, the XenAPI backend's reader of method
//! responses.
//!
//! Input: the response body. Invariants: no panic; a value that parses is written again by
//! `write_response` (which cannot refuse it) and reads back equal; a fault likewise through
//! `write_fault`; every value that parses can be sent back as a call parameter.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::wire::xmlrpc::{parse_response, write_call, write_fault, write_response, Response};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = parse_response(data) else {
        return;
    };
    let mut written = Vec::new();
    match &response {
        Response::Value(value) => {
            write_response(value, &mut written).expect("a parsed value can be written");
            let mut call = Vec::new();
            write_call("VM.get_record", std::slice::from_ref(value), &mut call)
                .expect("a parsed value can be sent");
        }
        Response::Fault { code, message } => {
            write_fault(*code, message, &mut written).expect("a parsed fault can be written");
        }
    }
    let again = parse_response(&written).expect("what we wrote parses");
    assert_eq!(again, response, "round trip changed the response");
});
