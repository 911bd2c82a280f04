//! Two JSON readers: a lenient one for the flat objects upnp-client prints one per line, and a
//! small strict one for the tracker's API.

use std::collections::BTreeMap;

/// Parse one JSON object whose values are strings, numbers, booleans or null (nested values are
/// skipped). Returns None on anything else.
pub fn parse_flat_json(line: &str) -> Option<BTreeMap<String, String>> {
    let chars: Vec<char> = line.trim().chars().collect();
    let mut i = 0;
    let mut out = BTreeMap::new();
    let skip_ws = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    fn string(chars: &[char], i: &mut usize) -> Option<String> {
        if chars.get(*i) != Some(&'"') {
            return None;
        }
        *i += 1;
        let mut s = String::new();
        loop {
            let c = *chars.get(*i)?;
            *i += 1;
            match c {
                '"' => return Some(s),
                '\\' => {
                    let e = *chars.get(*i)?;
                    *i += 1;
                    match e {
                        'n' => s.push('\n'),
                        't' => s.push('\t'),
                        'r' => s.push('\r'),
                        'b' => s.push('\u{8}'),
                        'f' => s.push('\u{c}'),
                        'u' => {
                            let hex: String = chars.get(*i..*i + 4)?.iter().collect();
                            *i += 4;
                            s.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        other => s.push(other),
                    }
                }
                other => s.push(other),
            }
        }
    }
    skip_ws(&mut i);
    if chars.get(i) != Some(&'{') {
        return None;
    }
    i += 1;
    loop {
        skip_ws(&mut i);
        match chars.get(i) {
            Some('}') => return Some(out),
            Some(',') => {
                i += 1;
                continue;
            }
            _ => {}
        }
        let key = string(&chars, &mut i)?;
        skip_ws(&mut i);
        if chars.get(i) != Some(&':') {
            return None;
        }
        i += 1;
        skip_ws(&mut i);
        match chars.get(i) {
            Some('"') => {
                let value = string(&chars, &mut i)?;
                out.insert(key, value);
            }
            Some('{') | Some('[') => {
                // Skip a nested value, honouring strings.
                let mut depth = 0usize;
                loop {
                    match chars.get(i)? {
                        '"' => {
                            string(&chars, &mut i)?;
                            continue;
                        }
                        '{' | '[' => depth += 1,
                        '}' | ']' => {
                            depth -= 1;
                            if depth == 0 {
                                i += 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
            }
            Some(_) => {
                let start = i;
                while i < chars.len() && chars[i] != ',' && chars[i] != '}' {
                    i += 1;
                }
                out.insert(
                    key,
                    chars[start..i]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_string(),
                );
            }
            None => return None,
        }
    }
}

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// null
    Null,
    /// true / false
    Bool(bool),
    /// A number, as written.
    Number(String),
    /// A string, unescaped.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object, members in order.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Parse a whole document (trailing white space allowed, nothing else).
    pub fn parse(text: &str) -> Result<Json, String> {
        let bytes = text.as_bytes();
        let mut at = 0;
        let value = json_value(bytes, &mut at, 0)?;
        json_ws(bytes, &mut at);
        if at != bytes.len() {
            return Err(format!("trailing bytes at {at}"));
        }
        Ok(value)
    }

    /// Member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The string, if this is one.
    pub fn str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// The number as u64, if this is a non-negative integer.
    pub fn u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// The elements, if this is an array (else empty).
    pub fn items(&self) -> &[Json] {
        match self {
            Json::Array(items) => items,
            _ => &[],
        }
    }

    /// String member `key`, or "".
    pub fn s(&self, key: &str) -> &str {
        self.get(key).and_then(Json::str).unwrap_or("")
    }

    /// Array member `key` (empty if missing).
    pub fn list(&self, key: &str) -> &[Json] {
        self.get(key).map(Json::items).unwrap_or(&[])
    }
}

fn json_ws(bytes: &[u8], at: &mut usize) {
    while bytes
        .get(*at)
        .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        *at += 1;
    }
}

fn json_value(bytes: &[u8], at: &mut usize, depth: usize) -> Result<Json, String> {
    if depth > 64 {
        return Err("nested too deeply".into());
    }
    json_ws(bytes, at);
    let start = *at;
    match bytes.get(*at) {
        None => Err("unexpected end".into()),
        Some(b'{') => {
            *at += 1;
            let mut members = Vec::new();
            json_ws(bytes, at);
            if bytes.get(*at) == Some(&b'}') {
                *at += 1;
                return Ok(Json::Object(members));
            }
            loop {
                json_ws(bytes, at);
                let key = json_string(bytes, at)?;
                json_ws(bytes, at);
                if bytes.get(*at) != Some(&b':') {
                    return Err(format!("expected ':' at {}", *at));
                }
                *at += 1;
                let value = json_value(bytes, at, depth + 1)?;
                if members.iter().any(|(k, _)| *k == key) {
                    return Err(format!("duplicate key {key:?}"));
                }
                members.push((key, value));
                json_ws(bytes, at);
                match bytes.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b'}') => {
                        *at += 1;
                        return Ok(Json::Object(members));
                    }
                    _ => return Err(format!("expected ',' or '}}' at {}", *at)),
                }
            }
        }
        Some(b'[') => {
            *at += 1;
            let mut items = Vec::new();
            json_ws(bytes, at);
            if bytes.get(*at) == Some(&b']') {
                *at += 1;
                return Ok(Json::Array(items));
            }
            loop {
                items.push(json_value(bytes, at, depth + 1)?);
                json_ws(bytes, at);
                match bytes.get(*at) {
                    Some(b',') => *at += 1,
                    Some(b']') => {
                        *at += 1;
                        return Ok(Json::Array(items));
                    }
                    _ => return Err(format!("expected ',' or ']' at {}", *at)),
                }
            }
        }
        Some(b'"') => json_string(bytes, at).map(Json::String),
        Some(b't') if bytes[*at..].starts_with(b"true") => {
            *at += 4;
            Ok(Json::Bool(true))
        }
        Some(b'f') if bytes[*at..].starts_with(b"false") => {
            *at += 5;
            Ok(Json::Bool(false))
        }
        Some(b'n') if bytes[*at..].starts_with(b"null") => {
            *at += 4;
            Ok(Json::Null)
        }
        Some(b) if *b == b'-' || b.is_ascii_digit() => {
            *at += 1;
            while bytes.get(*at).is_some_and(|b| {
                b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-')
            }) {
                *at += 1;
            }
            let text = String::from_utf8_lossy(&bytes[start..*at]).into_owned();
            text.parse::<f64>()
                .map_err(|_| format!("bad number {text:?}"))?;
            Ok(Json::Number(text))
        }
        Some(other) => Err(format!("unexpected {:?} at {}", *other as char, *at)),
    }
}

fn json_string(bytes: &[u8], at: &mut usize) -> Result<String, String> {
    if bytes.get(*at) != Some(&b'"') {
        return Err(format!("expected a string at {}", *at));
    }
    *at += 1;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let b = *bytes.get(*at).ok_or("unterminated string")?;
        *at += 1;
        match b {
            b'"' => return String::from_utf8(out).map_err(|e| e.to_string()),
            b'\\' => {
                let e = *bytes.get(*at).ok_or("unterminated escape")?;
                *at += 1;
                let c = match e {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => {
                        let hex = bytes.get(*at..*at + 4).ok_or("short \\u escape")?;
                        *at += 4;
                        let code = u32::from_str_radix(&String::from_utf8_lossy(hex), 16)
                            .map_err(|_| "bad \\u escape")?;
                        // Surrogate pairs are not expected from the tracker; show them.
                        char::from_u32(code).unwrap_or('\u{fffd}')
                    }
                    other => return Err(format!("bad escape \\{}", other as char)),
                };
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            b if b < 0x20 => return Err(format!("raw control byte {b:#x} in a string")),
            b => out.push(b),
        }
    }
}
