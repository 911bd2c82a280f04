//! Fuzz target: the control point's GENA readers, `parse_granted` (a SUBSCRIBE response's
//! SID and TIMEOUT) and `parse_propertyset` (an event body).
//!
//! Input: the first line is the SID, the second the TIMEOUT (a missing line is an absent
//! header), the rest the event body. Invariants: no panic; `parse_granted` gives exactly what
//! a model of its rules gives, error by error, for both headers and for each alone (a granted
//! SID is the trimmed header, `uuid:` and more, visible ASCII of at most `GENA_MAX_SID_LEN`
//! bytes; the granted timeout is what `parse_timeout` reads; a missing TIMEOUT is refused);
//! a parsed property set holds at most `GENA_MAX_EVENT_PROPERTIES` variables named by
//! non-empty local names, and written back with `write_propertyset` it parses to the same
//! variables (unless escaping made it outgrow `GENA_MAX_EVENT_BODY`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{
    GENA_MAX_EVENT_BODY, GENA_MAX_EVENT_PROPERTIES, GENA_MAX_SID_LEN, UDN_PREFIX,
};
use xenplug::wire::gena::{
    parse_granted, parse_propertyset, parse_timeout, write_propertyset, GenaError,
};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let sid = parts.next().map(String::from_utf8_lossy);
    let timeout = parts.next().map(String::from_utf8_lossy);
    let body = parts.next().unwrap_or_default();

    check_granted(sid.as_deref(), timeout.as_deref());
    // Each header alone, as a device that sent only one of them.
    check_granted(sid.as_deref(), None);
    check_granted(None, timeout.as_deref());

    let variables = match parse_propertyset(body) {
        Ok(variables) => variables,
        Err(error) => {
            assert!(!error.reason().is_empty());
            return;
        }
    };
    assert!(variables.len() <= GENA_MAX_EVENT_PROPERTIES);
    for (name, _) in &variables {
        assert!(!name.is_empty() && !name.contains(':'), "{name:?}");
    }
    // Local names read from a document are XML names, so they can be written as elements.
    let pairs: Vec<(&str, &str)> = variables
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    let mut written = Vec::new();
    write_propertyset(&pairs, &mut written);
    if written.len() > GENA_MAX_EVENT_BODY {
        return;
    }
    let again = parse_propertyset(&written).unwrap_or_else(|error| {
        panic!(
            "written property set does not parse ({error}): {}",
            String::from_utf8_lossy(&written)
        )
    });
    assert_eq!(again, variables, "{}", String::from_utf8_lossy(&written));
    let mut twice = Vec::new();
    write_propertyset(&pairs, &mut twice);
    assert_eq!(twice, written);
});

/// `parse_granted` against a model of UDA 1.1 section 4.1.2 written from its doc: a SID is
/// `uuid:` and more, visible ASCII, at most `GENA_MAX_SID_LEN` bytes; a TIMEOUT is required.
fn check_granted(sid: Option<&str>, timeout: Option<&str>) {
    let expected = match (present(sid), present(timeout)) {
        (None, _) => Err(GenaError::MissingSid),
        (Some(sid), _)
            if !(sid.starts_with(UDN_PREFIX)
                && sid.len() > UDN_PREFIX.len()
                && sid.len() <= GENA_MAX_SID_LEN
                && sid.bytes().all(|b| b.is_ascii_graphic())) =>
        {
            Err(GenaError::InvalidSid)
        }
        (Some(_), None) => Err(GenaError::BadTimeout),
        (Some(sid), Some(timeout)) => parse_timeout(timeout).map(|d| (sid.to_string(), d)),
    };
    let granted = parse_granted(sid, timeout);
    assert_eq!(granted, expected, "SID {sid:?} TIMEOUT {timeout:?}");
    if let Err(error) = granted {
        let status = if error == GenaError::BadTimeout {
            400
        } else {
            412
        };
        assert_eq!(error.status(), status);
    }
}

/// A header's value as the readers take it: trimmed, and absent when blank.
fn present(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}
