//! Fuzz target: `wire::http::RequestHead::parse`, `find_head_end` and `ResponseStatus::parse`.
//!
//! Invariants: no parser panics; a parsed head has a token method, a visible target, token
//! field names and trimmed values without control characters; `header` finds the first field
//! of each name; a parse ignores what follows the head (`find_head_end` cuts there and the
//! cut parses the same); a head written back in canonical form parses to the same head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{HTTP_MAX_HEAD, HTTP_MAX_HEADERS};
use xenplug::wire::http::{self, find_head_end, RequestHead, ResponseStatus, Version};

fuzz_target!(|data: &[u8]| {
    let head_end = find_head_end(data);
    if let Some(end) = head_end {
        let head = data.get(..end).expect("find_head_end is within the input");
        assert!(
            head.ends_with(b"\n\n") || head.ends_with(b"\n\r\n"),
            "head ends without an empty line"
        );
        // Nothing shorter ends a head.
        assert_eq!(find_head_end(&head[..end - 1]), None);
    }
    check_request(data, head_end);
    check_response(data, head_end);
});

fn version_text(version: Version) -> &'static str {
    match version {
        Version::Http10 => "HTTP/1.0",
        Version::Http11 => "HTTP/1.1",
    }
}

/// Fields a head holds, owned, for comparing two parses.
fn fields<'a>(headers: impl Iterator<Item = (&'a str, &'a str)>) -> Vec<(String, String)> {
    headers
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn check_fields<'a>(
    headers: impl Iterator<Item = (&'a str, &'a str)>,
    header: impl Fn(&str) -> Option<&'a str>,
) {
    let all: Vec<(&str, &str)> = headers.collect();
    assert!(all.len() <= HTTP_MAX_HEADERS);
    for &(name, value) in &all {
        assert!(http::is_token(name), "field name {name:?}");
        assert!(http::is_field_value(value), "field value {value:?}");
        let first = all
            .iter()
            .find(|(other, _)| other.eq_ignore_ascii_case(name))
            .map(|&(_, value)| value);
        assert_eq!(header(name), first);
        assert_eq!(header(&name.to_ascii_uppercase()), first);
    }
}

fn write_fields<'a>(out: &mut Vec<u8>, headers: impl Iterator<Item = (&'a str, &'a str)>) {
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn check_request(data: &[u8], head_end: Option<usize>) {
    let Ok(head) = RequestHead::parse(data) else {
        return;
    };
    assert!(http::is_token(head.method), "method {:?}", head.method);
    assert!(!head.target.is_empty());
    assert!(head
        .target
        .bytes()
        .all(|b| b.is_ascii_graphic() || b >= 0x80));
    check_fields(head.headers(), |name| head.header(name));
    let length = head.content_length();
    let chunked = head.is_chunked();
    let keep_alive = head.keep_alive();
    if head.version == Version::Http10 && keep_alive {
        assert!(head.header("connection").is_some());
    }

    // The head ends at the first empty line, whatever follows.
    let end = head_end.expect("a parsed request has an end");
    let cut = RequestHead::parse(&data[..end]).expect("the head alone parses");
    assert_eq!(
        (cut.method, cut.target, cut.version),
        (head.method, head.target, head.version)
    );
    assert_eq!(fields(cut.headers()), fields(head.headers()));

    // Canonical form: single spaces, CRLF, `name: value`.
    let mut text = format!(
        "{} {} {}\r\n",
        head.method,
        head.target,
        version_text(head.version)
    )
    .into_bytes();
    write_fields(&mut text, head.headers());
    if text.len() > HTTP_MAX_HEAD {
        return;
    }
    let again = RequestHead::parse(&text).expect("canonical request parses");
    assert_eq!(
        (again.method, again.target, again.version),
        (head.method, head.target, head.version)
    );
    assert_eq!(fields(again.headers()), fields(head.headers()));
    assert_eq!(again.content_length(), length);
    assert_eq!(again.is_chunked(), chunked);
    assert_eq!(again.keep_alive(), keep_alive);
    assert_eq!(find_head_end(&text), Some(text.len()));
}

fn check_response(data: &[u8], head_end: Option<usize>) {
    let Ok(status) = ResponseStatus::parse(data) else {
        return;
    };
    assert!((100..=999).contains(&status.status));
    check_fields(status.headers(), |name| status.header(name));
    let length = status.content_length();
    let chunked = status.is_chunked();
    assert!(status.has_no_body("HEAD"));
    assert_eq!(
        status.has_no_body("GET"),
        status.status < 200 || status.status == 204 || status.status == 304
    );

    let end = head_end.expect("a parsed response has an end");
    let cut = ResponseStatus::parse(&data[..end]).expect("the head alone parses");
    assert_eq!(
        (cut.version, cut.status, cut.reason),
        (status.version, status.status, status.reason)
    );
    assert_eq!(fields(cut.headers()), fields(status.headers()));

    let mut text = format!(
        "{} {} {}\r\n",
        version_text(status.version),
        status.status,
        status.reason
    )
    .into_bytes();
    write_fields(&mut text, status.headers());
    let again = ResponseStatus::parse(&text).expect("canonical response parses");
    assert_eq!(
        (again.version, again.status, again.reason),
        (status.version, status.status, status.reason)
    );
    assert_eq!(fields(again.headers()), fields(status.headers()));
    assert_eq!(again.content_length(), length);
    assert_eq!(again.is_chunked(), chunked);
}
