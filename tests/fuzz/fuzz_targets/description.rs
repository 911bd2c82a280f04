//! Fuzz target: `wire::description::parse_description`, the control point's reader of device
//! descriptions.
//!
//! Input: the first line is the base URL (the LOCATION the description came from), the rest
//! the body. Invariants: no panic; a base that is not an absolute `http://` URL is always
//! refused; on success every resolved SCPDURL, controlURL and eventSubURL is empty or an
//! `http://` URL (scheme in any case, as `http_url_parts` reads it) with a host, in visible
//! ASCII; every device has a non-empty, trimmed, control-free deviceType, friendlyName and
//! UDN of at most `DESC_MAX_TEXT` bytes, UDNs are unique, and the device and service counts
//! and nesting stay within their limits; the configId is 31-bit. The base only changes the
//! URLs: parsed again against another base, the result is the same apart from URLs resolved
//! against that base, and identical when a usable URLBase was given.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{
    DESC_MAX_CONFIG_ID, DESC_MAX_DEVICE_NESTING, DESC_MAX_SERVICES, DESC_MAX_TEXT, HTTP_URL_SCHEME,
};
use xenplug::wire::description::{
    parse_description, Described, DescribedDevice, DESCRIPTION_LIMITS,
};

/// A second base, to check that the base only changes resolved URLs.
const OTHER_BASE: &str = "http://10.9.8.7:4321/other/dir/desc.xml";

fuzz_target!(|data: &[u8]| {
    let (base, body) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let base = String::from_utf8_lossy(base);
    let result = parse_description(body, &base);
    if !is_http_url(&base) {
        assert!(result.is_err(), "base {base:?} accepted");
    }
    let described = match result {
        Ok(described) => described,
        Err(error) => {
            assert!(!error.reason().is_empty());
            return;
        }
    };

    if let Some(config_id) = described.config_id {
        assert!(config_id <= DESC_MAX_CONFIG_ID);
    }
    if let Some(url_base) = &described.url_base {
        assert!(!url_base.is_empty());
    }
    check_device(&described.root, 0);
    let devices = described.root.walk();
    assert!(devices.len() <= DESCRIPTION_LIMITS.max_embedded_devices + 1);
    let mut udns: Vec<&str> = devices.iter().map(|device| device.udn.as_str()).collect();
    udns.sort_unstable();
    let count = udns.len();
    udns.dedup();
    assert_eq!(udns.len(), count, "a UDN given twice was accepted");

    // The same body against another base: only the URLs may differ.
    let other = parse_description(body, OTHER_BASE).unwrap_or_else(|error| {
        panic!("accepted against {base:?}, refused against {OTHER_BASE}: {error}")
    });
    assert_eq!(other.config_id, described.config_id);
    assert_eq!(other.url_base, described.url_base);
    assert_eq!(other.warnings, described.warnings);
    if described.url_base.as_deref().is_some_and(is_http_url) {
        assert_eq!(
            other, described,
            "a usable URLBase makes the base irrelevant"
        );
    } else {
        assert_eq!(without_urls(&other), without_urls(&described));
    }
});

/// Whether `url` is `http://` (any case) followed by a non-empty authority, all visible ASCII.
fn is_http_url(url: &str) -> bool {
    if !url.bytes().all(|b| b.is_ascii_graphic()) {
        return false;
    }
    let Some(scheme) = url.get(..HTTP_URL_SCHEME.len()) else {
        return false;
    };
    let rest = &url[HTTP_URL_SCHEME.len()..];
    scheme.eq_ignore_ascii_case(HTTP_URL_SCHEME)
        && !rest.is_empty()
        && !rest.starts_with(['/', '?', '#'])
}

fn check_text(text: &str, required: bool) {
    assert!(!required || !text.is_empty());
    assert!(text.len() <= DESC_MAX_TEXT, "{} bytes", text.len());
    assert_eq!(text, text.trim());
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

fn check_device(device: &DescribedDevice, level: usize) {
    assert!(level <= DESC_MAX_DEVICE_NESTING);
    check_text(&device.device_type, true);
    check_text(&device.udn, true);
    check_text(&device.friendly_name, true);
    check_text(&device.manufacturer, false);
    check_text(&device.model_name, false);
    if let Some(vm_uuid) = &device.vm_uuid {
        assert!(!vm_uuid.is_empty());
        check_text(vm_uuid, true);
    }
    assert!(device.services.len() <= DESC_MAX_SERVICES);
    for service in &device.services {
        check_text(&service.service_type, false);
        check_text(&service.service_id, false);
        for url in [&service.scpd_url, &service.control_url, &service.event_url] {
            assert!(url.is_empty() || is_http_url(url), "resolved URL {url:?}");
        }
    }
    for embedded in &device.devices {
        check_device(embedded, level + 1);
    }
}

/// `described` with every resolved URL blanked.
fn without_urls(described: &Described) -> Described {
    fn blank(device: &mut DescribedDevice) {
        for service in &mut device.services {
            service.scpd_url.clear();
            service.control_url.clear();
            service.event_url.clear();
        }
        device.devices.iter_mut().for_each(blank);
    }
    let mut copy = described.clone();
    blank(&mut copy.root);
    copy
}
