//! Fuzz target: `wire::soap::parse_response`, the control point's reader of action responses.
//!
//! Input: the first line is the service type, the second the action, the rest the body.
//! Invariants: no panic; on success at most `SOAP_MAX_ARGUMENTS` outputs, each named by a
//! non-empty local name, and the outputs written back with `write_response` parse to the
//! same outputs; a `Fault` written back with `write_fault` parses to the same fault; the
//! reason of any other refusal is not empty.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{SOAP_MAX_ARGUMENTS, SOAP_MAX_ENVELOPE};
use xenplug::wire::soap::{parse_response, write_fault, write_response, ResponseError};

/// Namespaces that no prefix but their own may be bound to (Namespaces in XML 1.0 section
/// 3): a response in one of them cannot be written under the prefix `u`.
const RESERVED_NAMESPACES: [&str; 2] = [
    "http://www.w3.org/XML/1998/namespace",
    "http://www.w3.org/2000/xmlns/",
];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let service_type = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let action = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let body = parts.next().unwrap_or_default();

    let outputs = match parse_response(body, &service_type, &action) {
        Ok(outputs) => outputs,
        Err(ResponseError::Fault(fault)) => {
            let mut written = Vec::new();
            write_fault(&fault, &mut written);
            if written.len() <= SOAP_MAX_ENVELOPE {
                let again = parse_response(&written, &service_type, &action);
                assert_eq!(
                    again,
                    Err(ResponseError::Fault(fault)),
                    "{}",
                    String::from_utf8_lossy(&written)
                );
            }
            return;
        }
        Err(ResponseError::Malformed(reason)) => {
            assert!(!reason.is_empty());
            return;
        }
    };
    assert!(outputs.len() <= SOAP_MAX_ARGUMENTS);
    for (name, _) in &outputs {
        assert!(!name.is_empty() && !name.contains(':'), "{name:?}");
    }
    // A response matched the service type as its namespace, so it is not empty.
    assert!(!service_type.is_empty());
    if RESERVED_NAMESPACES.contains(&service_type.as_ref()) {
        return;
    }

    let pairs: Vec<(&str, &str)> = outputs
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut written = Vec::new();
    write_response(&service_type, &action, &pairs, &mut written);
    if written.len() > SOAP_MAX_ENVELOPE {
        return;
    }
    let again = parse_response(&written, &service_type, &action).unwrap_or_else(|error| {
        panic!(
            "written response does not parse ({error}): {}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(again, outputs, "{}", String::from_utf8_lossy(&written));
});
