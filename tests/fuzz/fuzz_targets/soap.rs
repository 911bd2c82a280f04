//! Fuzz target: `wire::soap::parse_call`, with and without a SOAPACTION header.
//!
//! Input: the first line is the SOAPACTION value, the rest the body. Invariants: no panic;
//! errors are 401 or 402 only; a header can only refuse a call, never change it; a body that
//! parses accepts the header naming its own service type and action; a call answered with
//! `write_response` reads back (as `<action>Response`) with the same arguments.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{SOAP_MAX_ARGUMENTS, SOAP_MAX_ENVELOPE};
use xenplug::wire::soap::{
    parse_call, parse_soap_action, write_response, ActionCall, UpnpError, INVALID_ACTION,
    INVALID_ARGS,
};

/// Namespaces that no prefix but their own may be bound to (Namespaces in XML 1.0 section
/// 3): an action in one of them (`<xml:Go/>`) cannot be answered under the prefix `u`.
const RESERVED_NAMESPACES: [&str; 2] = [
    "http://www.w3.org/XML/1998/namespace",
    "http://www.w3.org/2000/xmlns/",
];

fuzz_target!(|data: &[u8]| {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let header = String::from_utf8_lossy(header);

    let without = parse_call(body, None);
    let with = parse_call(body, Some(&header));
    check_error(&without);
    check_error(&with);

    if let Ok(call) = &with {
        assert_eq!(without.as_ref(), Ok(call), "a header changed the call");
    }
    let Ok(call) = without else {
        return;
    };
    assert!(call.arguments.len() <= SOAP_MAX_ARGUMENTS);
    assert!(!call.service_type.is_empty());
    assert!(!call.action.is_empty());
    for (name, _) in &call.arguments {
        assert!(call.argument(name).is_some(), "argument {name:?} not found");
    }

    // The header decides only whether the call is accepted.
    match parse_soap_action(&header) {
        Ok((service, action)) if service == call.service_type && action == call.action => {
            assert_eq!(with.as_ref(), Ok(&call));
        }
        _ => assert_eq!(with.map_err(|e| e.code), Err(INVALID_ACTION)),
    }
    // The header a control point would send for this body is accepted when the names can be
    // written in one (visible ASCII, no `#` or `"`).
    let own = format!("\"{}#{}\"", call.service_type, call.action);
    if parse_soap_action(&own).is_ok() {
        assert_eq!(parse_call(body, Some(&own)).as_ref(), Ok(&call));
        let bare = format!("{}#{}", call.service_type, call.action);
        assert_eq!(parse_call(body, Some(&bare)).as_ref(), Ok(&call));
    }

    // Answer with the arguments as out-arguments and read that back.
    if RESERVED_NAMESPACES.contains(&call.service_type.as_str()) {
        return;
    }
    let outputs: Vec<(&str, &str)> = call
        .arguments
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut response = Vec::new();
    write_response(&call.service_type, &call.action, &outputs, &mut response);
    if response.len() > SOAP_MAX_ENVELOPE {
        return;
    }
    let read = parse_call(&response, None).unwrap_or_else(|error| {
        panic!(
            "response does not parse ({error}): {}",
            String::from_utf8_lossy(&response)
        )
    });
    assert_eq!(
        read,
        ActionCall {
            service_type: call.service_type.clone(),
            action: format!("{}Response", call.action),
            arguments: call.arguments.clone(),
        }
    );
});

fn check_error(result: &Result<ActionCall, UpnpError>) {
    if let Err(error) = result {
        assert!(
            error.code == INVALID_ACTION || error.code == INVALID_ARGS,
            "unexpected code {error}"
        );
        assert!(!error.description.is_empty());
    }
}
