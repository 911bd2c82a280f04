//! Wire layer: `application/x-www-form-urlencoded` pairs (query strings and the relay's form
//! body). No I/O; never panics; malformed escapes are kept as written.

/// The `key=value` pairs of `text` (`a=1&b=x%20y+z`), percent- and plus-decoded, in order. A
/// pair without `=` has an empty value; empty pairs are skipped.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

/// The decoded value of the first pair named `key` in `query`, if any.
pub fn value(query: Option<&str>, key: &str) -> Option<String> {
    pairs(query?)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// Percent- and plus-decodes `text`; invalid escapes and invalid UTF-8 are kept (the latter
/// as U+FFFD).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while let Some(&byte) = bytes.get(index) {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match byte {
            b'+' => out.push(b' '),
            b'%' => match (hex(index + 1), hex(index + 2)) {
                (Some(high), Some(low)) => {
                    out.push((high * 16 + low) as u8);
                    index += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        assert_eq!(
            pairs("service=urn%3Ax%3A1&action=Echo&Text=x%3B+touch+%2Ftmp%2Fp&flag&&"),
            vec![
                ("service".into(), "urn:x:1".into()),
                ("action".into(), "Echo".into()),
                ("Text".into(), "x; touch /tmp/p".into()),
                ("flag".into(), String::new()),
            ]
        );
    }

    #[test]
    fn finds_the_first_value_of_a_key() {
        assert_eq!(
            value(Some("x=1&since=7&since=9"), "since"),
            Some("7".into())
        );
        assert_eq!(value(Some("since=a%2Eb"), "since"), Some("a.b".into()));
        assert_eq!(value(Some("x=1"), "since"), None);
        assert_eq!(value(None, "since"), None);
    }

    #[test]
    fn malformed_escapes_are_kept() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%ff"), "\u{fffd}");
        assert_eq!(decode("%E2%82%AC"), "€");
    }
}
