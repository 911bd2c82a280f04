//! Fuzz target: `wire::scpd::parse_scpd`, the reader of the SCPDs a VM's owner writes.
//!
//! Input: the SCPD. Invariants: no panic; on success the spec keeps the name, type and id it
//! was given, holds at least one state variable, every name is 1 to `SCPD_MAX_NAME` bytes
//! of `[A-Za-z0-9_]` not starting with a digit and unique in its scope, no argument is called
//! `SCPD_RESERVED_ARGUMENT`, every argument names a declared variable, in-arguments come
//! before out-arguments, the counts stay within their limits; and `render_scpd` of the spec
//! parses back to an equal spec (unless the rendering outgrew `SCPD_MAX_BYTES`, which
//! escaping can do), whose rendering is the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{
    SCPD_MAX_ACTIONS, SCPD_MAX_ARGUMENTS, SCPD_MAX_BYTES, SCPD_MAX_NAME, SCPD_MAX_VARIABLES,
    SCPD_RESERVED_ARGUMENT, UPNP_DATA_TYPES,
};
use xenplug::model::{Direction, ServiceSpec};
use xenplug::wire::description::render_scpd;
use xenplug::wire::scpd::parse_scpd;

const NAME: &str = "Backup";
const TYPE: &str = "urn:xenplug-org:service:Backup:1";
const ID: &str = "urn:xenplug-org:serviceId:Backup";

fuzz_target!(|data: &[u8]| {
    let spec = match parse_scpd(data, NAME, TYPE, ID) {
        Ok(spec) => spec,
        Err(error) => {
            assert!(!error.reason().is_empty());
            return;
        }
    };
    check_spec(&spec);

    let mut rendered = Vec::new();
    render_scpd(&spec, 7, &mut rendered).expect("a Vec takes any SCPD");
    if rendered.len() > SCPD_MAX_BYTES {
        return;
    }
    let again = parse_scpd(&rendered, NAME, TYPE, ID).unwrap_or_else(|error| {
        panic!(
            "rendered SCPD does not parse ({error}): {}",
            String::from_utf8_lossy(&rendered)
        )
    });
    assert_eq!(again, spec, "{}", String::from_utf8_lossy(&rendered));
    let mut twice = Vec::new();
    render_scpd(&again, 7, &mut twice).expect("a Vec takes any SCPD");
    assert_eq!(twice, rendered);
});

fn check_name(name: &str) {
    assert!((1..=SCPD_MAX_NAME).contains(&name.len()), "{name:?}");
    assert!(!name.starts_with(|c: char| c.is_ascii_digit()), "{name:?}");
    assert!(
        name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
        "{name:?}"
    );
}

fn check_spec(spec: &ServiceSpec) {
    assert_eq!(
        (
            spec.name.as_str(),
            spec.service_type.as_str(),
            spec.service_id.as_str()
        ),
        (NAME, TYPE, ID)
    );
    assert!(!spec.variables.is_empty() && spec.variables.len() <= SCPD_MAX_VARIABLES);
    assert!(spec.actions.len() <= SCPD_MAX_ACTIONS);
    for (index, variable) in spec.variables.iter().enumerate() {
        check_name(&variable.name);
        assert!(UPNP_DATA_TYPES.contains(&variable.data_type.as_str()));
        assert!(spec.variables[..index]
            .iter()
            .all(|v| v.name != variable.name));
        for value in &variable.allowed {
            assert_eq!(value, value.trim());
        }
    }
    for (index, action) in spec.actions.iter().enumerate() {
        check_name(&action.name);
        assert!(spec.actions[..index].iter().all(|a| a.name != action.name));
        assert!(action.arguments.len() <= SCPD_MAX_ARGUMENTS);
        let mut seen_out = false;
        for (position, argument) in action.arguments.iter().enumerate() {
            check_name(&argument.name);
            assert_ne!(argument.name, SCPD_RESERVED_ARGUMENT);
            assert!(action.arguments[..position]
                .iter()
                .all(|a| a.name != argument.name));
            assert!(spec.variables.iter().any(|v| v.name == argument.variable));
            match argument.direction {
                Direction::In => assert!(!seen_out, "in-argument after an out-argument"),
                Direction::Out => seen_out = true,
            }
        }
        for (position, semantic) in action.semantics.iter().enumerate() {
            assert!(!action.semantics[..position].contains(semantic));
        }
    }
}
