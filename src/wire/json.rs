//! Wire layer: a minimal JSON writer (RFC 8259) for the tracker's read API, and a minimal
//! bounded reader ([`parse_value`]) for the console. No I/O, no clock, never panics: writer
//! misuse is recorded and reported once, by [`JsonWriter::finish`]; reader input that is not
//! JSON is a [`WireError`].
//!
//! The writer places commas and colons itself from a small stack of open arrays and objects,
//! so callers only say what comes next. Strings are escaped per RFC 8259 section 7, and
//! U+2028 and U+2029 too: they are legal in JSON but end a line in older JavaScript, so an
//! answer pasted into a script element stays valid.

use crate::consts::JSON_MAX_DEPTH;
use core::fmt;

use super::Cursor;
use super::Error as WireError;

/// How a sequence of writer calls failed to make one JSON value. The first misuse is kept;
/// later calls do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonError {
    /// `key` called outside an object (at the top level or in an array).
    KeyOutsideObject,
    /// A value where an object expects a key or its end.
    KeyExpected,
    /// A key, `end_object` or `finish` where the value of the last key should come.
    ValueExpected,
    /// `end_object` or `end_array` with nothing open, or closing the other kind.
    UnbalancedEnd,
    /// A second value after the top-level one was complete.
    SecondValue,
    /// Arrays and objects nested deeper than [`JSON_MAX_DEPTH`].
    TooDeep,
    /// `finish` with an array or object still open, or with nothing written.
    Incomplete,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonError::KeyOutsideObject => "a key outside an object",
            JsonError::KeyExpected => "a value where an object expects a key",
            JsonError::ValueExpected => "a key without its value",
            JsonError::UnbalancedEnd => "an end without its matching begin",
            JsonError::SecondValue => "a second top-level value",
            JsonError::TooDeep => "arrays and objects nested too deep",
            JsonError::Incomplete => "an unfinished document",
        })
    }
}

impl std::error::Error for JsonError {}

/// One open array or object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// An object: whether it has a member yet, and whether its last key awaits a value.
    Object { members: bool, after_key: bool },
    /// An array: whether it has an item yet.
    Array { items: bool },
}

/// Writes one JSON value into a growing buffer.
///
/// ```
/// use xenplug::wire::json::JsonWriter;
/// let mut json = JsonWriter::new();
/// json.begin_object().key("name").string("a\"b").key("ids").begin_array();
/// json.number(1).int(-2).end_array().end_object();
/// assert_eq!(json.finish().unwrap(), br#"{"name":"a\"b","ids":[1,-2]}"#);
/// ```
#[derive(Debug, Clone, Default)]
pub struct JsonWriter {
    out: Vec<u8>,
    stack: Vec<Frame>,
    /// The top-level value is complete.
    done: bool,
    error: Option<JsonError>,
}

impl JsonWriter {
    /// An empty writer.
    pub fn new() -> JsonWriter {
        JsonWriter::default()
    }

    /// The first misuse so far, if any.
    pub fn error(&self) -> Option<JsonError> {
        self.error
    }

    /// The document, or the first misuse, or [`JsonError::Incomplete`] when an array or
    /// object is still open or nothing was written.
    pub fn finish(self) -> Result<Vec<u8>, JsonError> {
        if let Some(error) = self.error {
            return Err(error);
        }
        match self.stack.last() {
            Some(Frame::Object {
                after_key: true, ..
            }) => Err(JsonError::ValueExpected),
            Some(_) => Err(JsonError::Incomplete),
            None if !self.done => Err(JsonError::Incomplete),
            None => Ok(self.out),
        }
    }

    /// Opens an object.
    pub fn begin_object(&mut self) -> &mut Self {
        self.begin(Frame::Object {
            members: false,
            after_key: false,
        })
    }

    /// Closes the innermost open object.
    pub fn end_object(&mut self) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        match self.stack.last() {
            Some(Frame::Object {
                after_key: false, ..
            }) => self.end(b'}'),
            Some(Frame::Object {
                after_key: true, ..
            }) => self.fail(JsonError::ValueExpected),
            Some(Frame::Array { .. }) | None => self.fail(JsonError::UnbalancedEnd),
        }
    }

    /// Opens an array.
    pub fn begin_array(&mut self) -> &mut Self {
        self.begin(Frame::Array { items: false })
    }

    /// Closes the innermost open array.
    pub fn end_array(&mut self) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        match self.stack.last() {
            Some(Frame::Array { .. }) => self.end(b']'),
            Some(Frame::Object { .. }) | None => self.fail(JsonError::UnbalancedEnd),
        }
    }

    /// Writes the key of the next member of the innermost open object.
    pub fn key(&mut self, name: &str) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        match self.stack.last_mut() {
            Some(Frame::Object {
                members,
                after_key: after_key @ false,
            }) => {
                if *members {
                    self.out.push(b',');
                }
                *members = true;
                *after_key = true;
            }
            Some(Frame::Object {
                after_key: true, ..
            }) => return self.fail(JsonError::ValueExpected),
            Some(Frame::Array { .. }) | None => return self.fail(JsonError::KeyOutsideObject),
        }
        push_string(&mut self.out, name);
        self.out.push(b':');
        self
    }

    /// Writes a string value.
    pub fn string(&mut self, text: &str) -> &mut Self {
        if self.value() {
            push_string(&mut self.out, text);
            self.after_value();
        }
        self
    }

    /// Writes an array of strings.
    pub fn strings<'a>(&mut self, items: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.begin_array();
        for item in items {
            self.string(item);
        }
        self.end_array()
    }

    /// Writes an unsigned integer value.
    pub fn number(&mut self, value: u64) -> &mut Self {
        if self.value() {
            push_u64(&mut self.out, value);
            self.after_value();
        }
        self
    }

    /// Writes a signed integer value.
    pub fn int(&mut self, value: i64) -> &mut Self {
        if self.value() {
            if value < 0 {
                self.out.push(b'-');
            }
            push_u64(&mut self.out, value.unsigned_abs());
            self.after_value();
        }
        self
    }

    /// Writes `true` or `false`.
    pub fn bool(&mut self, value: bool) -> &mut Self {
        if self.value() {
            self.out
                .extend_from_slice(if value { b"true" } else { b"false" });
            self.after_value();
        }
        self
    }

    /// Writes any value as read by [`parse_value`]. Numbers are written back as integers; one
    /// that is not an integer is written as its text in a string.
    pub fn any(&mut self, value: &JsonValue) -> &mut Self {
        match value {
            JsonValue::Null => self.null(),
            JsonValue::Bool(b) => self.bool(*b),
            JsonValue::Number(text) => {
                if let Ok(n) = text.parse::<u64>() {
                    self.number(n)
                } else if let Ok(n) = text.parse::<i64>() {
                    self.int(n)
                } else {
                    self.string(text)
                }
            }
            JsonValue::String(text) => self.string(text),
            JsonValue::Array(items) => {
                self.begin_array();
                for item in items {
                    self.any(item);
                }
                self.end_array()
            }
            JsonValue::Object(fields) => {
                self.begin_object();
                for (name, item) in fields {
                    self.key(name);
                    self.any(item);
                }
                self.end_object()
            }
        }
    }

    /// Writes `null`.
    pub fn null(&mut self) -> &mut Self {
        if self.value() {
            self.out.extend_from_slice(b"null");
            self.after_value();
        }
        self
    }

    fn fail(&mut self, error: JsonError) -> &mut Self {
        if self.error.is_none() {
            self.error = Some(error);
        }
        self
    }

    /// Whether a value may come now; writes the comma before it if one is due, or records
    /// the misuse.
    fn value(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        let misuse = match self.stack.last_mut() {
            None if self.done => Some(JsonError::SecondValue),
            None => None,
            Some(Frame::Object { after_key, .. }) => {
                if *after_key {
                    *after_key = false;
                    None
                } else {
                    Some(JsonError::KeyExpected)
                }
            }
            Some(Frame::Array { items }) => {
                if *items {
                    self.out.push(b',');
                }
                *items = true;
                None
            }
        };
        match misuse {
            Some(error) => {
                self.fail(error);
                false
            }
            None => true,
        }
    }

    /// Marks the top-level value complete once nothing is open.
    fn after_value(&mut self) {
        if self.stack.is_empty() {
            self.done = true;
        }
    }

    fn begin(&mut self, frame: Frame) -> &mut Self {
        if self.error.is_some() {
            return self;
        }
        if self.stack.len() >= JSON_MAX_DEPTH {
            return self.fail(JsonError::TooDeep);
        }
        if self.value() {
            self.out.push(match frame {
                Frame::Object { .. } => b'{',
                Frame::Array { .. } => b'[',
            });
            self.stack.push(frame);
        }
        self
    }

    fn end(&mut self, closer: u8) -> &mut Self {
        self.stack.pop();
        self.out.push(closer);
        self.after_value();
        self
    }
}

/// Appends the decimal form of `value`.
fn push_u64(out: &mut Vec<u8>, value: u64) {
    let mut digits = [0u8; 20];
    let mut cursor = Cursor::new(&mut digits);
    // Twenty bytes hold every u64.
    if cursor.put_u64(value).is_ok() {
        out.extend_from_slice(cursor.written());
    }
}

/// The lowercase hex digit of the low four bits of `nibble`.
fn hex_digit(nibble: u8) -> u8 {
    match nibble & 0x0f {
        digit @ 0..=9 => b'0' + digit,
        digit => b'a' + (digit - 10),
    }
}

/// Appends `text` as a JSON string: quotes and backslash escaped, control characters
/// (U+0000 to U+001F and U+007F) as `\u00XX`, U+2028 and U+2029 as `\u2028` and `\u2029`;
/// everything else as UTF-8.
fn push_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let mut start = 0;
    for (at, character) in text.char_indices() {
        let mut unicode = [b'\\', b'u', b'0', b'0', b'0', b'0'];
        let escape: &[u8] = match character {
            '"' => b"\\\"",
            '\\' => b"\\\\",
            '\u{2028}' => b"\\u2028",
            '\u{2029}' => b"\\u2029",
            '\u{0}'..='\u{1f}' | '\u{7f}' => {
                let byte = character as u8;
                unicode[4] = hex_digit(byte >> 4);
                unicode[5] = hex_digit(byte);
                &unicode
            }
            _ => continue,
        };
        out.extend_from_slice(text.get(start..at).unwrap_or_default().as_bytes());
        out.extend_from_slice(escape);
        start = at + character.len_utf8();
    }
    out.extend_from_slice(text.get(start..).unwrap_or_default().as_bytes());
    out.push(b'"');
}

// ---- reader ------------------------------------------------------------------------------------

/// A JSON value as read by [`parse_value`]. Object members keep their order; a repeated key is
/// kept twice and [`JsonValue::get`] answers the first.
#[derive(Debug, Clone, PartialEq)]
pub enum JsonValue {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// A number, as written (already checked against the RFC 8259 grammar).
    Number(String),
    /// A string, escapes resolved.
    String(String),
    /// An array.
    Array(Vec<JsonValue>),
    /// An object: members in document order.
    Object(Vec<(String, JsonValue)>),
}

impl JsonValue {
    /// The member `key` of an object (the first one with that name); `None` for anything else.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        match self {
            JsonValue::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a string value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonValue::String(text) => Some(text),
            _ => None,
        }
    }

    /// A number that is a non-negative integer within u64.
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            JsonValue::Number(text) => text.parse().ok(),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[JsonValue]> {
        match self {
            JsonValue::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members of an object.
    pub fn as_object(&self) -> Option<&[(String, JsonValue)]> {
        match self {
            JsonValue::Object(members) => Some(members),
            _ => None,
        }
    }

    /// The string member `key`, or `""` when it is absent or not a string.
    pub fn str_of(&self, key: &str) -> &str {
        self.get(key).and_then(JsonValue::as_str).unwrap_or("")
    }

    /// The array member `key`, or an empty slice when it is absent or not an array.
    pub fn list_of(&self, key: &str) -> &[JsonValue] {
        self.get(key).and_then(JsonValue::as_array).unwrap_or(&[])
    }
}

/// Reads one JSON document (RFC 8259): one value, surrounded by optional whitespace.
///
/// Bounded: arrays and objects nest at most [`JSON_MAX_DEPTH`] deep (deeper is
/// [`WireError::TooLong`]), so recursion is bounded too; the input itself is bounded by the
/// caller (an HTTP body). Never panics. Errors: [`WireError::Truncated`] when the input ends
/// inside a value, [`WireError::Malformed`] for anything else the grammar refuses (invalid
/// UTF-8, control characters inside strings, lone surrogates, trailing bytes, leading zeros).
pub fn parse_value(input: &[u8]) -> Result<JsonValue, WireError> {
    let text = core::str::from_utf8(input).map_err(|_| WireError::Malformed)?;
    let mut reader = Reader {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = reader.value(0)?;
    reader.skip_space();
    if reader.at != reader.bytes.len() {
        return Err(WireError::Malformed);
    }
    Ok(value)
}

/// A position in a document being read.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Result<u8, WireError> {
        let byte = self.peek().ok_or(WireError::Truncated)?;
        self.at += 1;
        Ok(byte)
    }

    fn skip_space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Consumes `word` (after its first byte was seen), or fails.
    fn literal(&mut self, word: &[u8], value: JsonValue) -> Result<JsonValue, WireError> {
        for expected in word {
            if self.next()? != *expected {
                return Err(WireError::Malformed);
            }
        }
        Ok(value)
    }

    fn value(&mut self, depth: usize) -> Result<JsonValue, WireError> {
        self.skip_space();
        match self.peek().ok_or(WireError::Truncated)? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(JsonValue::String),
            b't' => self.literal(b"true", JsonValue::Bool(true)),
            b'f' => self.literal(b"false", JsonValue::Bool(false)),
            b'n' => self.literal(b"null", JsonValue::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => Err(WireError::Malformed),
        }
    }

    fn array(&mut self, depth: usize) -> Result<JsonValue, WireError> {
        if depth > JSON_MAX_DEPTH {
            return Err(WireError::TooLong);
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_space();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(JsonValue::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_space();
            match self.next()? {
                b',' => {}
                b']' => return Ok(JsonValue::Array(items)),
                _ => return Err(WireError::Malformed),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<JsonValue, WireError> {
        if depth > JSON_MAX_DEPTH {
            return Err(WireError::TooLong);
        }
        self.at += 1;
        let mut members = Vec::new();
        self.skip_space();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(JsonValue::Object(members));
        }
        loop {
            self.skip_space();
            match self.peek().ok_or(WireError::Truncated)? {
                b'"' => {}
                _ => return Err(WireError::Malformed),
            }
            let key = self.string()?;
            self.skip_space();
            if self.next()? != b':' {
                return Err(WireError::Malformed);
            }
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_space();
            match self.next()? {
                b',' => {}
                b'}' => return Ok(JsonValue::Object(members)),
                _ => return Err(WireError::Malformed),
            }
        }
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> Result<u32, WireError> {
        let mut value = 0;
        for _ in 0..4 {
            let digit = (self.next()? as char)
                .to_digit(16)
                .ok_or(WireError::Malformed)?;
            value = value * 16 + digit;
        }
        Ok(value)
    }

    fn string(&mut self) -> Result<String, WireError> {
        self.at += 1;
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control byte as is: the input
            // is valid UTF-8 and those three are ASCII, so the run ends on a boundary.
            let start = self.at;
            while matches!(self.peek(), Some(byte) if byte != b'"' && byte != b'\\' && byte >= 0x20)
            {
                self.at += 1;
            }
            let run = self.bytes.get(start..self.at).unwrap_or_default();
            out.push_str(core::str::from_utf8(run).map_err(|_| WireError::Malformed)?);
            match self.next()? {
                b'"' => return Ok(out),
                b'\\' => {}
                _ => return Err(WireError::Malformed),
            }
            let character = match self.next()? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return Err(WireError::Malformed),
            };
            out.push(character);
        }
    }

    /// The character of a `\uXXXX` escape (after the `u`), joining a surrogate pair (RFC 8259
    /// section 7); a lone surrogate is refused.
    fn unicode_escape(&mut self) -> Result<char, WireError> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if self.next()? != b'\\' || self.next()? != b'u' {
                    return Err(WireError::Malformed);
                }
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return Err(WireError::Malformed);
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return Err(WireError::Malformed),
            other => other,
        };
        char::from_u32(code).ok_or(WireError::Malformed)
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Result<JsonValue, WireError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let need_digit = |reader: &Reader<'_>| match reader.peek() {
            None => Err(WireError::Truncated),
            Some(_) => Err(WireError::Malformed),
        };
        match self.peek() {
            Some(b'0') => {
                self.at += 1;
                if matches!(self.peek(), Some(b'0'..=b'9')) {
                    return Err(WireError::Malformed);
                }
            }
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return need_digit(self),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return need_digit(self);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return need_digit(self);
            }
        }
        let text = self.bytes.get(start..self.at).unwrap_or_default();
        Ok(JsonValue::Number(
            String::from_utf8_lossy(text).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A parsed JSON value, as the checker below reads it.
    #[derive(Debug, Clone, PartialEq)]
    enum Value {
        Null,
        Bool(bool),
        /// The number as written (integers only are written).
        Number(String),
        String(String),
        Array(Vec<Value>),
        Object(Vec<(String, Value)>),
    }

    /// A strict RFC 8259 reader: a whole document, no trailing bytes, no raw control
    /// characters in strings, escapes checked, surrogate pairs joined.
    struct Checker<'a> {
        input: &'a [u8],
        at: usize,
    }

    impl Checker<'_> {
        fn document(input: &[u8]) -> Result<Value, String> {
            let text = core::str::from_utf8(input).map_err(|e| e.to_string())?;
            let mut checker = Checker {
                input: text.as_bytes(),
                at: 0,
            };
            let value = checker.value(0)?;
            checker.whitespace();
            if checker.at != checker.input.len() {
                return Err(format!("trailing bytes at {}", checker.at));
            }
            Ok(value)
        }

        fn peek(&self) -> Option<u8> {
            self.input.get(self.at).copied()
        }

        fn next(&mut self) -> Result<u8, String> {
            let byte = self.peek().ok_or("unexpected end")?;
            self.at += 1;
            Ok(byte)
        }

        fn expect(&mut self, byte: u8) -> Result<(), String> {
            let got = self.next()?;
            if got != byte {
                return Err(format!(
                    "expected {:?} at {}, got {:?}",
                    byte as char, self.at, got as char
                ));
            }
            Ok(())
        }

        fn whitespace(&mut self) {
            while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
                self.at += 1;
            }
        }

        fn literal(&mut self, word: &[u8], value: Value) -> Result<Value, String> {
            for &byte in word {
                self.expect(byte)?;
            }
            Ok(value)
        }

        fn value(&mut self, depth: usize) -> Result<Value, String> {
            if depth > 100 {
                return Err("too deep".into());
            }
            self.whitespace();
            match self.peek().ok_or("unexpected end")? {
                b'n' => self.literal(b"null", Value::Null),
                b't' => self.literal(b"true", Value::Bool(true)),
                b'f' => self.literal(b"false", Value::Bool(false)),
                b'"' => Ok(Value::String(self.string()?)),
                b'-' | b'0'..=b'9' => self.number(),
                b'[' => {
                    self.at += 1;
                    let mut items = Vec::new();
                    self.whitespace();
                    if self.peek() == Some(b']') {
                        self.at += 1;
                        return Ok(Value::Array(items));
                    }
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.whitespace();
                        match self.next()? {
                            b',' => continue,
                            b']' => return Ok(Value::Array(items)),
                            other => return Err(format!("bad array separator {other}")),
                        }
                    }
                }
                b'{' => {
                    self.at += 1;
                    let mut members = Vec::new();
                    self.whitespace();
                    if self.peek() == Some(b'}') {
                        self.at += 1;
                        return Ok(Value::Object(members));
                    }
                    loop {
                        self.whitespace();
                        let key = self.string()?;
                        self.whitespace();
                        self.expect(b':')?;
                        members.push((key, self.value(depth + 1)?));
                        self.whitespace();
                        match self.next()? {
                            b',' => continue,
                            b'}' => return Ok(Value::Object(members)),
                            other => return Err(format!("bad object separator {other}")),
                        }
                    }
                }
                other => Err(format!("unexpected {:?}", other as char)),
            }
        }

        fn number(&mut self) -> Result<Value, String> {
            let start = self.at;
            if self.peek() == Some(b'-') {
                self.at += 1;
            }
            match self.next()? {
                b'0' => {}
                b'1'..=b'9' => {
                    while matches!(self.peek(), Some(b'0'..=b'9')) {
                        self.at += 1;
                    }
                }
                other => return Err(format!("bad number start {other}")),
            }
            let text = core::str::from_utf8(&self.input[start..self.at]).unwrap();
            Ok(Value::Number(text.to_string()))
        }

        fn hex4(&mut self) -> Result<u32, String> {
            let mut value = 0;
            for _ in 0..4 {
                let digit = (self.next()? as char).to_digit(16).ok_or("bad hex digit")?;
                value = value * 16 + digit;
            }
            Ok(value)
        }

        fn string(&mut self) -> Result<String, String> {
            self.expect(b'"')?;
            let mut out = String::new();
            loop {
                let start = self.at;
                let byte = self.next()?;
                match byte {
                    b'"' => return Ok(out),
                    0x00..=0x1f => return Err(format!("raw control character {byte}")),
                    b'\\' => match self.next()? {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let high = self.hex4()?;
                            let code = if (0xD800..0xDC00).contains(&high) {
                                self.expect(b'\\')?;
                                self.expect(b'u')?;
                                let low = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&low) {
                                    return Err("lone high surrogate".into());
                                }
                                0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                            } else {
                                high
                            };
                            out.push(char::from_u32(code).ok_or("lone surrogate")?);
                        }
                        other => return Err(format!("bad escape {other}")),
                    },
                    _ => {
                        // Copy one whole UTF-8 character (the input is valid UTF-8).
                        let len = match byte {
                            0x00..=0x7f => 1,
                            0xc0..=0xdf => 2,
                            0xe0..=0xef => 3,
                            _ => 4,
                        };
                        self.at = start + len;
                        out.push_str(core::str::from_utf8(&self.input[start..self.at]).unwrap());
                    }
                }
            }
        }
    }

    fn write(writer: &mut JsonWriter, value: &Value) {
        match value {
            Value::Null => {
                writer.null();
            }
            Value::Bool(flag) => {
                writer.bool(*flag);
            }
            Value::Number(text) => match text.parse::<u64>() {
                Ok(unsigned) => {
                    writer.number(unsigned);
                }
                Err(_) => {
                    writer.int(text.parse().unwrap());
                }
            },
            Value::String(text) => {
                writer.string(text);
            }
            Value::Array(items) => {
                writer.begin_array();
                for item in items {
                    write(writer, item);
                }
                writer.end_array();
            }
            Value::Object(members) => {
                writer.begin_object();
                for (key, member) in members {
                    writer.key(key);
                    write(writer, member);
                }
                writer.end_object();
            }
        }
    }

    fn written(build: impl FnOnce(&mut JsonWriter)) -> Result<String, JsonError> {
        let mut writer = JsonWriter::new();
        build(&mut writer);
        writer
            .finish()
            .map(|bytes| String::from_utf8(bytes).unwrap())
    }

    #[test]
    fn writes_nested_structures() {
        let json = written(|w| {
            w.begin_object()
                .key("hypervisors")
                .begin_array()
                .begin_object()
                .key("udn")
                .string("uuid:1")
                .key("vms")
                .begin_array()
                .number(0)
                .int(-1)
                .int(i64::MIN)
                .number(u64::MAX)
                .end_array()
                .key("up")
                .bool(true)
                .key("down")
                .bool(false)
                .key("none")
                .null()
                .key("empty")
                .begin_object()
                .end_object()
                .end_object()
                .begin_array()
                .end_array()
                .end_array()
                .end_object();
        })
        .unwrap();
        assert_eq!(
            json,
            r#"{"hypervisors":[{"udn":"uuid:1","vms":[0,-1,-9223372036854775808,18446744073709551615],"up":true,"down":false,"none":null,"empty":{}},[]]}"#
        );
        assert!(Checker::document(json.as_bytes()).is_ok());
    }

    #[test]
    fn writes_string_arrays() {
        let mut json = JsonWriter::new();
        json.begin_object()
            .key("none")
            .strings([])
            .key("some")
            .strings(["a", "b\"c"])
            .end_object();
        assert_eq!(
            json.finish().unwrap(),
            br#"{"none":[],"some":["a","b\"c"]}"#
        );
    }

    #[test]
    fn writes_scalars_at_the_top_level() {
        assert_eq!(
            written(|w| {
                w.string("x");
            })
            .unwrap(),
            "\"x\""
        );
        assert_eq!(
            written(|w| {
                w.number(42);
            })
            .unwrap(),
            "42"
        );
        assert_eq!(
            written(|w| {
                w.int(-7);
            })
            .unwrap(),
            "-7"
        );
        assert_eq!(
            written(|w| {
                w.int(7);
            })
            .unwrap(),
            "7"
        );
        assert_eq!(
            written(|w| {
                w.null();
            })
            .unwrap(),
            "null"
        );
        assert_eq!(
            written(|w| {
                w.bool(false);
            })
            .unwrap(),
            "false"
        );
        assert_eq!(
            written(|w| {
                w.begin_array().end_array();
            })
            .unwrap(),
            "[]"
        );
    }

    #[test]
    fn escapes_every_special_character() {
        let escaped = |text: &str| {
            let mut out = Vec::new();
            push_string(&mut out, text);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(escaped(""), r#""""#);
        assert_eq!(escaped("plain / text"), r#""plain / text""#);
        assert_eq!(escaped("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            escaped("\n\r\t\u{8}\u{c}\0\u{1f}\u{7f}"),
            r#""\u000a\u000d\u0009\u0008\u000c\u0000\u001f\u007f""#
        );
        assert_eq!(escaped("x\u{2028}y\u{2029}z"), r#""x\u2028y\u2029z""#);
        assert_eq!(escaped("grüße 😀 \u{85}"), "\"grüße 😀 \u{85}\"");
        // Every code point below U+0080, escaped or not, reads back as itself.
        let all: String = (0u8..0x80).map(char::from).collect();
        let json = escaped(&all);
        assert!(json.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(
            Checker::document(json.as_bytes()).unwrap(),
            Value::String(all)
        );
        // Keys are escaped the same way.
        let key = written(|w| {
            w.begin_object().key("k\"\n").null().end_object();
        });
        assert_eq!(key.unwrap(), r#"{"k\"\u000a":null}"#);
    }

    #[test]
    fn records_misuse_instead_of_panicking() {
        type Case = (&'static str, fn(&mut JsonWriter), JsonError);
        let cases: [Case; 14] = [
            (
                "key at top",
                |w| {
                    w.key("k");
                },
                JsonError::KeyOutsideObject,
            ),
            (
                "key in array",
                |w| {
                    w.begin_array().key("k");
                },
                JsonError::KeyOutsideObject,
            ),
            (
                "value without key",
                |w| {
                    w.begin_object().number(1);
                },
                JsonError::KeyExpected,
            ),
            (
                "container without key",
                |w| {
                    w.begin_object().begin_array();
                },
                JsonError::KeyExpected,
            ),
            (
                "two keys",
                |w| {
                    w.begin_object().key("a").key("b");
                },
                JsonError::ValueExpected,
            ),
            (
                "end after key",
                |w| {
                    w.begin_object().key("a").end_object();
                },
                JsonError::ValueExpected,
            ),
            (
                "finish after key",
                |w| {
                    w.begin_object().key("a");
                },
                JsonError::ValueExpected,
            ),
            (
                "end nothing",
                |w| {
                    w.end_object();
                },
                JsonError::UnbalancedEnd,
            ),
            (
                "end array nothing",
                |w| {
                    w.end_array();
                },
                JsonError::UnbalancedEnd,
            ),
            (
                "wrong end",
                |w| {
                    w.begin_array().end_object();
                },
                JsonError::UnbalancedEnd,
            ),
            (
                "wrong end of object",
                |w| {
                    w.begin_object().end_array();
                },
                JsonError::UnbalancedEnd,
            ),
            (
                "two values",
                |w| {
                    w.null().null();
                },
                JsonError::SecondValue,
            ),
            ("nothing", |_| {}, JsonError::Incomplete),
            (
                "still open",
                |w| {
                    w.begin_array().begin_object();
                },
                JsonError::Incomplete,
            ),
        ];
        for (name, build, expected) in cases {
            assert_eq!(written(build), Err(expected), "{name}");
        }
        // The first misuse is kept; what follows is ignored.
        let mut writer = JsonWriter::new();
        writer.key("x").begin_array().end_object().null();
        assert_eq!(writer.error(), Some(JsonError::KeyOutsideObject));
        assert_eq!(writer.finish(), Err(JsonError::KeyOutsideObject));
        for error in [JsonError::TooDeep, JsonError::Incomplete] {
            assert!(!error.to_string().is_empty());
        }
    }

    #[test]
    fn refuses_nesting_deeper_than_the_limit() {
        let nested = |depth: usize| {
            written(|w| {
                for _ in 0..depth {
                    w.begin_array();
                }
                for _ in 0..depth {
                    w.end_array();
                }
            })
        };
        let deepest = nested(JSON_MAX_DEPTH).unwrap();
        assert_eq!(deepest.len(), 2 * JSON_MAX_DEPTH);
        assert_eq!(nested(JSON_MAX_DEPTH + 1), Err(JsonError::TooDeep));
    }

    /// Characters that stress the escaper: specials, controls, separators, multi-byte.
    const ALPHABET: [char; 14] = [
        'a', '"', '\\', '/', '\n', '\0', '\u{1f}', '\u{7f}', '\u{2028}', '\u{2029}', 'é', '😀',
        ' ', '{',
    ];

    fn random_text(rng: &mut fastrand::Rng) -> String {
        (0..rng.usize(0..6))
            .map(|_| ALPHABET[rng.usize(0..ALPHABET.len())])
            .collect()
    }

    fn random_value(rng: &mut fastrand::Rng, depth: usize) -> Value {
        let kinds = if depth >= 6 { 5 } else { 7 };
        match rng.usize(0..kinds) {
            0 => Value::Null,
            1 => Value::Bool(rng.bool()),
            2 => Value::Number(rng.u64(..).to_string()),
            3 => Value::Number(rng.i64(i64::MIN..0).to_string()),
            4 => Value::String(random_text(rng)),
            5 => Value::Array(
                (0..rng.usize(0..4))
                    .map(|_| random_value(rng, depth + 1))
                    .collect(),
            ),
            _ => Value::Object(
                (0..rng.usize(0..4))
                    .map(|_| (random_text(rng), random_value(rng, depth + 1)))
                    .collect(),
            ),
        }
    }

    #[test]
    fn random_documents_read_back_as_written() {
        let mut rng = fastrand::Rng::with_seed(0x6a73_6f6e);
        for _ in 0..2000 {
            let value = random_value(&mut rng, 0);
            let mut writer = JsonWriter::new();
            write(&mut writer, &value);
            let bytes = writer.finish().unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(!text.contains(['\u{2028}', '\u{2029}']), "{text}");
            assert_eq!(Checker::document(&bytes), Ok(value), "{text}");
        }
    }

    #[test]
    fn random_call_sequences_never_panic_and_valid_output_parses() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut writer = JsonWriter::new();
            for _ in 0..rng.usize(0..24) {
                match rng.usize(0..10) {
                    0 => writer.begin_object(),
                    1 => writer.end_object(),
                    2 => writer.begin_array(),
                    3 => writer.end_array(),
                    4 => writer.key(&random_text(&mut rng)),
                    5 => writer.string(&random_text(&mut rng)),
                    6 => writer.number(rng.u64(..)),
                    7 => writer.int(rng.i64(..)),
                    8 => writer.bool(rng.bool()),
                    _ => writer.null(),
                };
            }
            if let Ok(bytes) = writer.finish() {
                accepted += 1;
                let parsed = Checker::document(&bytes);
                assert!(
                    parsed.is_ok(),
                    "{parsed:?}: {}",
                    String::from_utf8_lossy(&bytes)
                );
            }
        }
        // The property is not vacuous: some random sequences are valid documents.
        assert!(accepted > 100, "{accepted}");
    }

    #[test]
    fn checker_refuses_what_it_should() {
        for bad in [
            &b""[..],
            b"{",
            b"[1,]",
            b"{\"a\" 1}",
            b"\"\x01\"",
            b"\"\\x\"",
            b"\"\\ud800\"",
            b"01",
            b"1 2",
            b"nul",
        ] {
            assert!(
                Checker::document(bad).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    // ---- reader ----

    /// What the tracker answers, shortened.
    static TREE: &[u8] = br#"{"hypervisors":[{"uuid":"a1","name":"dom0-a","addresses":["10.0.0.1"],"state":"online","boot_id":3,"vms":[{"uuid":"v1","name":"web \"1\"\u00e9\ud83d\ude00","run_state":"running","tenant":"acme","services":[{"type":"urn:x:1","actions":[{"name":"Echo","semantics":["idempotent"]}]}],"first_seen":1,"last_seen":2}]}],"devirtualized":[],"last_seq":9}"#;

    #[test]
    fn reads_a_tree_document() {
        let tree = parse_value(TREE).unwrap();
        let host = &tree.list_of("hypervisors")[0];
        assert_eq!(host.str_of("name"), "dom0-a");
        assert_eq!(host.get("boot_id").and_then(JsonValue::as_u64), Some(3));
        let vm = &host.list_of("vms")[0];
        assert_eq!(vm.str_of("name"), "web \"1\"\u{e9}\u{1f600}");
        assert_eq!(
            vm.list_of("services")[0].list_of("actions")[0].list_of("semantics")[0].as_str(),
            Some("idempotent")
        );
        assert_eq!(tree.get("last_seq").and_then(JsonValue::as_u64), Some(9));
        assert!(tree.list_of("devirtualized").is_empty());
        assert_eq!(tree.str_of("missing"), "");
    }

    #[test]
    fn reads_what_the_writer_writes() {
        let mut writer = JsonWriter::new();
        writer.begin_object();
        writer.key("text").string("a\"b\\c\n\u{1}\u{2028}é");
        writer.key("n").number(u64::MAX);
        writer.key("i").int(-5);
        writer
            .key("list")
            .begin_array()
            .bool(true)
            .null()
            .end_array();
        writer.end_object();
        let bytes = writer.finish().unwrap();
        let value = parse_value(&bytes).unwrap();
        assert_eq!(value.str_of("text"), "a\"b\\c\n\u{1}\u{2028}é");
        assert_eq!(value.get("n").and_then(JsonValue::as_u64), Some(u64::MAX));
        assert_eq!(value.get("i"), Some(&JsonValue::Number("-5".into())));
        assert_eq!(
            value.get("list"),
            Some(&JsonValue::Array(vec![
                JsonValue::Bool(true),
                JsonValue::Null
            ]))
        );
    }

    #[test]
    fn reads_scalars_and_whitespace() {
        assert_eq!(parse_value(b" null \r\n"), Ok(JsonValue::Null));
        assert_eq!(parse_value(b"false"), Ok(JsonValue::Bool(false)));
        for number in ["0", "-0", "12", "-1.5e+10", "3.25E-2", "0.0"] {
            assert_eq!(
                parse_value(number.as_bytes()),
                Ok(JsonValue::Number(number.into())),
                "{number}"
            );
        }
        assert_eq!(
            parse_value(br#""\/\b\f\t\r""#),
            Ok(JsonValue::String("/\u{8}\u{c}\t\r".into()))
        );
        assert_eq!(parse_value(b"[]"), Ok(JsonValue::Array(vec![])));
        assert_eq!(parse_value(b"{ }"), Ok(JsonValue::Object(vec![])));
    }

    #[test]
    fn every_truncated_prefix_is_refused_without_panic() {
        for end in 0..TREE.len() {
            let result = parse_value(&TREE[..end]);
            assert!(result.is_err(), "prefix of {end} bytes accepted");
        }
        let prefix = parse_value(&TREE[..TREE.len() - 1]);
        assert_eq!(prefix, Err(WireError::Truncated));
    }

    #[test]
    fn hostile_input_is_an_error() {
        let cases: &[&[u8]] = &[
            b"",
            b"   ",
            b"nul",
            b"nulL",
            b"01",
            b"-",
            b"1.",
            b"1e",
            b".5",
            b"+1",
            b"[1,]",
            b"[1 2]",
            b"{\"a\" 1}",
            b"{\"a\":1,}",
            b"{a:1}",
            b"{\"a\":1} x",
            b"\"tab\there\"",
            b"\"\\x\"",
            b"\"\\u12G4\"",
            b"\"\\ud800\"",
            b"\"\\ud800\\u0041\"",
            b"\"\\udc00\"",
            b"\"\xff\"",
            b"\"\xc3\"",
            b"\"unterminated",
            b"[[[",
            b"}",
            b"]",
            b"'single'",
            b"\x00",
        ];
        for case in cases {
            assert!(
                parse_value(case).is_err(),
                "accepted {:?}",
                String::from_utf8_lossy(case)
            );
        }
    }

    #[test]
    fn nesting_is_bounded() {
        let deep = |depth: usize, open: &str, close: &str| {
            format!("{}{}", open.repeat(depth), close.repeat(depth))
        };
        assert!(parse_value(deep(JSON_MAX_DEPTH, "[", "]").as_bytes()).is_ok());
        assert_eq!(
            parse_value(deep(JSON_MAX_DEPTH + 1, "[", "]").as_bytes()),
            Err(WireError::TooLong)
        );
        let objects = format!(
            "{}1{}",
            "{\"a\":".repeat(JSON_MAX_DEPTH + 1),
            "}".repeat(JSON_MAX_DEPTH + 1)
        );
        assert_eq!(parse_value(objects.as_bytes()), Err(WireError::TooLong));
        // Far deeper than any stack would take: refused early, not a stack overflow.
        let huge = "[".repeat(1_000_000);
        assert_eq!(parse_value(huge.as_bytes()), Err(WireError::TooLong));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"{}[]\",:\\u0123456789abcdefnulltrue -+.eE\x00\xff";
        for _ in 0..5000 {
            let len = rng.usize(0..40);
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let _ = parse_value(&bytes);
        }
    }
}
