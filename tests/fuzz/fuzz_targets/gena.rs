//! Fuzz target: the GENA header readers `parse_subscribe`, `parse_unsubscribe`,
//! `parse_callbacks` and `parse_timeout`.
//!
//! Input: up to four lines, the NT, CALLBACK, SID and TIMEOUT values (a missing line is an
//! absent header). Invariants: no panic; SID with NT or CALLBACK is always refused; every
//! accepted callback is an `http://` IPv4 literal, re-checks to itself and yields a NOTIFY
//! request (notify_headers through the HTTP client) that the request parser reads back; a TIMEOUT written by `write_timeout` reads
//! back as the same duration.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{GENA_MAX_CALLBACKS, GENA_MAX_CALLBACK_LEN};
use xenplug::net::http_client::encode_request;
use xenplug::wire::gena::{
    notify_headers, parse_callback_url, parse_callbacks, parse_subscribe, parse_timeout,
    parse_unsubscribe, write_timeout, Callback, GenaError, SubscribeRequest,
};
use xenplug::wire::http::RequestHead;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let [nt, callback, sid, timeout] = [(); 4].map(|()| lines.next());
    let present = |value: Option<&str>| value.is_some_and(|v| !v.trim().is_empty());

    match parse_subscribe(nt, callback, sid, timeout) {
        Ok(SubscribeRequest::New {
            callbacks,
            timeout: granted,
        }) => {
            assert!(!present(sid));
            assert!(nt.is_some_and(|v| v.trim().eq_ignore_ascii_case("upnp:event")));
            let value = callback.expect("a new subscription has a CALLBACK");
            assert_eq!(Ok(&callbacks), parse_callbacks(value.trim()).as_ref());
            check_callbacks(&callbacks, value);
            check_requested(timeout, granted);
        }
        Ok(SubscribeRequest::Renew {
            sid: given,
            timeout: granted,
        }) => {
            assert!(!present(nt) && !present(callback));
            assert!(!given.is_empty() && given == given.trim());
            assert_eq!(Some(given), sid.map(str::trim));
            check_requested(timeout, granted);
        }
        Err(error) => {
            assert!(error.status() == 400 || error.status() == 412);
            if present(sid) && (present(nt) || present(callback)) {
                assert_eq!(error, GenaError::IncompatibleHeaders);
            }
        }
    }
    if present(sid) && (present(nt) || present(callback)) {
        assert!(parse_subscribe(nt, callback, sid, timeout).is_err());
    }

    match parse_unsubscribe(nt, callback, sid) {
        Ok(given) => {
            assert!(!present(nt) && !present(callback));
            assert!(!given.is_empty() && given == given.trim());
        }
        Err(error) => assert!(error.status() == 400 || error.status() == 412),
    }

    // Each piece on its own, as each reader.
    for piece in [nt, callback, sid, timeout].into_iter().flatten() {
        if let Ok(callbacks) = parse_callbacks(piece) {
            check_callbacks(&callbacks, piece);
        }
        if let Ok(Some(duration)) = parse_timeout(piece) {
            let mut written = Vec::new();
            write_timeout(duration, &mut written).expect("a Vec takes any timeout");
            let written = String::from_utf8(written).expect("timeouts are ASCII");
            assert_eq!(parse_timeout(&written), Ok(Some(duration)), "{written}");
        }
        if let Ok(one) = parse_callback_url(piece) {
            check_callback(&one);
        }
    }
});

/// A TIMEOUT that parses is what the subscription asked for.
fn check_requested(timeout: Option<&str>, granted: Option<std::time::Duration>) {
    match timeout.map(str::trim).filter(|v| !v.is_empty()) {
        Some(value) => assert_eq!(parse_timeout(value), Ok(granted)),
        None => assert_eq!(granted, None),
    }
}

fn check_callbacks(callbacks: &[Callback<'_>], value: &str) {
    assert!(!callbacks.is_empty() && callbacks.len() <= GENA_MAX_CALLBACKS);
    for callback in callbacks {
        assert!(
            value.contains(&format!("<{}>", callback.url)),
            "url {:?} not in {value:?}",
            callback.url
        );
        check_callback(callback);
    }
}

fn check_callback(callback: &Callback<'_>) {
    assert!(callback.url.len() <= GENA_MAX_CALLBACK_LEN);
    assert!(callback.url[..7].eq_ignore_ascii_case("http://"));
    assert_eq!(parse_callback_url(callback.url).as_ref(), Ok(callback));
    let ip = callback.address.ip();
    assert!(!ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast());
    assert_ne!(callback.address.port(), 0);
    assert!(callback.path.starts_with('/'));
    assert!(callback
        .path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'#'));

    // The NOTIFY head to this callback is a well-formed request for its path.
    let body = [b'x'; 42];
    let address = std::net::SocketAddr::V4(callback.address);
    let head = encode_request(
        address,
        "NOTIFY",
        callback.path,
        &notify_headers("uuid:fuzz", "7"),
        &body,
    )
    .expect("a NOTIFY to an accepted callback can be sent");
    let request = RequestHead::parse(&head).expect("NOTIFY head parses");
    assert_eq!(request.method, "NOTIFY");
    assert_eq!(request.target, callback.path);
    assert_eq!(request.header("SID"), Some("uuid:fuzz"));
    assert_eq!(request.header("SEQ"), Some("7"));
    assert_eq!(request.content_length(), Ok(Some(42)));
    assert!(!request.keep_alive());
    let host = callback.address.to_string();
    assert_eq!(request.header("HOST"), Some(host.as_str()));
}
