//! Wire layer: XML-RPC values, method calls and method responses (the XenAPI transport). No
//! I/O, no clock; parsing never panics and runs under [`XMLRPC_LIMITS`].
//!
//! Writing: [`write_call`] (and, for tests and fakes, [`write_response`] and [`write_fault`])
//! into any [`Sink`], so a fixed buffer refuses rather than truncates. Reading:
//! [`parse_response`] turns a `methodResponse` into a [`Response`].
//!
//! XML-RPC (the 1999 specification) says a `<value>` with no type element holds a string;
//! XenAPI's server writes every string that way, so both forms are read. XenAPI also sends
//! 64-bit integers as decimal strings; [`Value::as_int`] accepts both. `base64` is kept as
//! its text, undecoded (XenAPI does not use it). `<nil/>` (a common extension) is read and
//! written.

use std::collections::BTreeSet;

use super::xml::{self, parse_bounded, shown as shown_text, Limits, Refused, Sink};
use super::{Error, Result};
use crate::consts::XMLRPC_MAX_RESPONSE;

/// Element nesting of an XML-RPC response, at most: each nested value costs three levels
/// (`value`, `struct`/`array`, `member`/`data`); an event batch needs about twenty.
const XMLRPC_MAX_DEPTH: usize = 64;
/// XML nodes of an XML-RPC response, at most.
const XMLRPC_MAX_NODES: u32 = 4_000_000;

/// Limits a method response is parsed under.
pub const XMLRPC_LIMITS: Limits = Limits {
    max_bytes: XMLRPC_MAX_RESPONSE,
    max_depth: XMLRPC_MAX_DEPTH,
    max_nodes: XMLRPC_MAX_NODES,
};

/// One XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<string>` or an untyped `<value>`.
    String(String),
    /// `<int>`, `<i4>` or `<i8>`.
    Int(i64),
    /// `<boolean>` (`0` or `1`).
    Boolean(bool),
    /// `<double>` (finite).
    Double(f64),
    /// `<dateTime.iso8601>`, kept as its text.
    DateTime(String),
    /// `<base64>`, kept as its text (not decoded).
    Base64(String),
    /// `<struct>`: members in document order, names unique.
    Struct(Vec<(String, Value)>),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<nil/>`.
    Nil,
}

impl Value {
    /// A string value.
    pub fn string(text: impl Into<String>) -> Value {
        Value::String(text.into())
    }

    /// An array of strings.
    pub fn strings<'a>(items: impl IntoIterator<Item = &'a str>) -> Value {
        Value::Array(items.into_iter().map(Value::string).collect())
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// An integer: `<int>`/`<i4>`/`<i8>`, or a string of decimal digits (XenAPI's way).
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(number) => Some(*number),
            Value::String(text) => parse_int(text),
            _ => None,
        }
    }

    /// A boolean: `<boolean>`, or the strings `true`/`false` (XenAPI map values).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(flag) => Some(*flag),
            Value::String(text) if text == "true" => Some(true),
            Value::String(text) if text == "false" => Some(false),
            _ => None,
        }
    }

    /// The items of an array.
    pub fn as_array(&self) -> Option<&[Value]> {
        match self {
            Value::Array(items) => Some(items),
            _ => None,
        }
    }

    /// The members of a struct.
    pub fn as_struct(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Struct(members) => Some(members),
            _ => None,
        }
    }

    /// The member `name` of a struct (`None` for a missing member or a non-struct).
    pub fn member(&self, name: &str) -> Option<&Value> {
        self.as_struct()?
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value)
    }

    /// The string member `name` of a struct, `""` when missing or not a string (XenAPI
    /// records hold strings; a field they lack reads as empty, as in the XenAPI reference).
    pub fn member_str(&self, name: &str) -> &str {
        self.member(name)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The type name as XML-RPC spells it, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::Int(_) => "int",
            Value::Boolean(_) => "boolean",
            Value::Double(_) => "double",
            Value::DateTime(_) => "dateTime.iso8601",
            Value::Base64(_) => "base64",
            Value::Struct(_) => "struct",
            Value::Array(_) => "array",
            Value::Nil => "nil",
        }
    }
}

/// A parsed method response.
#[derive(Debug, Clone, PartialEq)]
pub enum Response {
    /// `<params>` with its one value.
    Value(Value),
    /// `<fault>`: the server refused the call at the XML-RPC level.
    Fault {
        /// `faultCode`.
        code: i64,
        /// `faultString`.
        message: String,
    },
}

/// Whether `name` can be a `methodName`: letters, digits, `_ . : /` (XML-RPC specification),
/// non-empty.
pub fn is_method_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'/'))
}

/// Writes `<methodCall>` for `method` with `params` into `out`.
///
/// Errors: [`Error::Malformed`] for a method name XML-RPC does not allow;
/// [`Error::Unsupported`] for a non-finite double or a struct member name given twice;
/// [`Error::TooLong`] when `out` is full.
pub fn write_call<S: Sink + ?Sized>(method: &str, params: &[Value], out: &mut S) -> Result<()> {
    if !is_method_name(method) {
        return Err(Error::Malformed);
    }
    out.put_str("<?xml version=\"1.0\"?>\n<methodCall><methodName>")?;
    out.put_str(method)?;
    out.put_str("</methodName><params>")?;
    for param in params {
        out.put_str("<param>")?;
        write_value(param, out)?;
        out.put_str("</param>")?;
    }
    out.put_str("</params></methodCall>\n")
}

/// Writes a `<methodResponse>` holding `value` into `out` (errors as [`write_call`]).
pub fn write_response<S: Sink + ?Sized>(value: &Value, out: &mut S) -> Result<()> {
    out.put_str("<?xml version=\"1.0\"?>\n<methodResponse><params><param>")?;
    write_value(value, out)?;
    out.put_str("</param></params></methodResponse>\n")
}

/// Writes a `<methodResponse>` holding a fault into `out`.
pub fn write_fault<S: Sink + ?Sized>(code: i64, message: &str, out: &mut S) -> Result<()> {
    out.put_str("<?xml version=\"1.0\"?>\n<methodResponse><fault>")?;
    write_value(
        &Value::Struct(vec![
            ("faultCode".to_owned(), Value::Int(code)),
            ("faultString".to_owned(), Value::string(message)),
        ]),
        out,
    )?;
    out.put_str("</fault></methodResponse>\n")
}

/// Writes one `<value>`. Nesting is bounded by the caller's value (built by us, or parsed
/// under [`XMLRPC_LIMITS`]).
fn write_value<S: Sink + ?Sized>(value: &Value, out: &mut S) -> Result<()> {
    out.put_str("<value>")?;
    match value {
        Value::String(text) => out.put_element("string", text)?,
        Value::Int(number) => out.put_element(int_element(*number), &number.to_string())?,
        Value::Boolean(flag) => out.put_element("boolean", if *flag { "1" } else { "0" })?,
        Value::Double(number) => {
            if !number.is_finite() {
                return Err(Error::Unsupported);
            }
            // Rust's Display of an f64 never uses an exponent, as XML-RPC requires.
            out.put_element("double", &number.to_string())?;
        }
        Value::DateTime(text) => out.put_element("dateTime.iso8601", text)?,
        Value::Base64(text) => out.put_element("base64", text)?,
        Value::Struct(members) => {
            let mut names = BTreeSet::new();
            out.put_str("<struct>")?;
            for (name, member) in members {
                if !names.insert(name.as_str()) {
                    return Err(Error::Unsupported);
                }
                out.put_str("<member>")?;
                out.put_element("name", name)?;
                write_value(member, out)?;
                out.put_str("</member>")?;
            }
            out.put_str("</struct>")?;
        }
        Value::Array(items) => {
            out.put_str("<array><data>")?;
            for item in items {
                write_value(item, out)?;
            }
            out.put_str("</data></array>")?;
        }
        Value::Nil => out.put_str("<nil/>")?,
    }
    out.put_str("</value>")
}

/// `i4` where the number fits (every XML-RPC peer reads it), `i8` beyond.
fn int_element(number: i64) -> &'static str {
    if i32::try_from(number).is_ok() {
        "i4"
    } else {
        "i8"
    }
}

/// A decimal integer with an optional sign, surrounding ASCII white space allowed.
fn parse_int(text: &str) -> Option<i64> {
    let text = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

type Parsed<T> = core::result::Result<T, Refused>;

/// Parses a `<methodResponse>`.
///
/// The root is `methodResponse` (no namespace) holding either `params` with exactly one
/// `param` holding one `value`, or `fault` holding a struct with an integer `faultCode` and a
/// string `faultString`. White space between elements, comments and processing instructions
/// are skipped; any other text where elements belong, an unknown element, a struct member
/// without a name or value or given twice, or a scalar that does not read as its type is an
/// error naming the element.
pub fn parse_response(body: &[u8]) -> Parsed<Response> {
    let body = xml::without_byte_order_mark(body);
    let document =
        parse_bounded(body, XMLRPC_LIMITS).map_err(|e| Refused::new(XMLRPC_LIMITS.explain(e)))?;
    let root = document.root_element();
    if !is_plain(root, "methodResponse") {
        return Err(Refused::new(format!(
            "the root element is {}, not methodResponse",
            shown(root.tag_name().name())
        )));
    }
    let [part] = elements(root, "methodResponse")?[..] else {
        return Err(Refused::new(
            "methodResponse must hold exactly one params or fault",
        ));
    };
    if is_plain(part, "params") {
        let [param] = elements(part, "params")?[..] else {
            return Err(Refused::new("params must hold exactly one param"));
        };
        let value = single_value(param, "param")?;
        return Ok(Response::Value(value));
    }
    if is_plain(part, "fault") {
        let fault = single_value(part, "fault")?;
        let code = fault
            .member("faultCode")
            .and_then(|code| match code {
                Value::Int(number) => Some(*number),
                _ => None,
            })
            .ok_or_else(|| Refused::new("fault: faultCode is not an int"))?;
        let message = fault
            .member("faultString")
            .and_then(Value::as_str)
            .ok_or_else(|| Refused::new("fault: faultString is not a string"))?;
        return Ok(Response::Fault {
            code,
            message: message.to_owned(),
        });
    }
    Err(Refused::new(format!(
        "methodResponse holds {}, not params or fault",
        shown(part.tag_name().name())
    )))
}

fn shown(text: &str) -> String {
    shown_text(text, 40)
}

/// Whether `node` is the element `local` with no namespace.
fn is_plain(node: roxmltree::Node<'_, '_>, local: &str) -> bool {
    node.is_element() && node.tag_name().namespace().is_none() && node.tag_name().name() == local
}

/// The element children of `node`; text other than white space is an error.
fn elements<'a, 'input>(
    node: roxmltree::Node<'a, 'input>,
    what: &str,
) -> Parsed<Vec<roxmltree::Node<'a, 'input>>> {
    let mut found = Vec::new();
    for child in node.children() {
        if child.is_element() {
            found.push(child);
        } else if child.is_text()
            && !child
                .text()
                .unwrap_or_default()
                .chars()
                .all(|c| c.is_ascii_whitespace())
        {
            return Err(Refused::new(format!("{what} holds text between elements")));
        }
    }
    Ok(found)
}

/// The one `<value>` child of `node`, read.
fn single_value(node: roxmltree::Node<'_, '_>, what: &str) -> Parsed<Value> {
    match elements(node, what)?[..] {
        [value] if is_plain(value, "value") => read_value(value),
        _ => Err(Refused::new(format!("{what} must hold exactly one value"))),
    }
}

/// Reads a `<value>` element. Recursion depth is bounded by [`XMLRPC_LIMITS`]'s nesting.
fn read_value(node: roxmltree::Node<'_, '_>) -> Parsed<Value> {
    // No type element: an untyped value is its whole text, white space kept.
    if !node.children().any(|child| child.is_element()) {
        return Ok(Value::String(text_of(node)));
    }
    let typed = elements(node, "value")?;
    let [typed] = typed[..] else {
        return Err(Refused::new("value holds more than one type element"));
    };
    if typed.tag_name().namespace().is_some() {
        return Err(Refused::new(format!(
            "value holds {} in a namespace",
            shown(typed.tag_name().name())
        )));
    }
    let name = typed.tag_name().name();
    let scalar = || -> Parsed<String> {
        xml::value_text(typed)
            .ok_or_else(|| Refused::new(format!("{name} holds an element, not text")))
    };
    let bad = |text: &str| Refused::new(format!("{name} {} does not read as one", shown(text)));
    Ok(match name {
        "string" => Value::String(scalar()?),
        "int" | "i4" | "i8" => {
            let text = scalar()?;
            Value::Int(parse_int(&text).ok_or_else(|| bad(&text))?)
        }
        "boolean" => {
            let text = scalar()?;
            match text.trim() {
                "1" => Value::Boolean(true),
                "0" => Value::Boolean(false),
                _ => return Err(bad(&text)),
            }
        }
        "double" => {
            let text = scalar()?;
            let trimmed = text.trim();
            let plain = trimmed
                .bytes()
                .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'));
            match trimmed.parse::<f64>() {
                Ok(number) if plain && number.is_finite() => Value::Double(number),
                _ => return Err(bad(&text)),
            }
        }
        "dateTime.iso8601" => Value::DateTime(scalar()?.trim().to_owned()),
        "base64" => Value::Base64(scalar()?.trim().to_owned()),
        "nil" => {
            if typed.has_children() && !scalar()?.trim().is_empty() {
                return Err(Refused::new("nil holds text"));
            }
            Value::Nil
        }
        "struct" => {
            let mut members = Vec::new();
            let mut names = BTreeSet::new();
            for member in elements(typed, "struct")? {
                if !is_plain(member, "member") {
                    return Err(Refused::new(format!(
                        "struct holds {}, not member",
                        shown(member.tag_name().name())
                    )));
                }
                let parts = elements(member, "member")?;
                let (Some(name_node), Some(value_node)) = (
                    parts.iter().find(|p| is_plain(**p, "name")),
                    parts.iter().find(|p| is_plain(**p, "value")),
                ) else {
                    return Err(Refused::new("struct member without a name or a value"));
                };
                if parts.len() != 2 {
                    return Err(Refused::new("struct member holds more than name and value"));
                }
                let member_name = xml::value_text(*name_node)
                    .ok_or_else(|| Refused::new("struct member name holds an element"))?;
                let value = read_value(*value_node)
                    .map_err(|e| e.within(&format!("member {}", shown(&member_name))))?;
                if !names.insert(member_name.clone()) {
                    return Err(Refused::new(format!(
                        "struct member {} given twice",
                        shown(&member_name)
                    )));
                }
                members.push((member_name, value));
            }
            Value::Struct(members)
        }
        "array" => {
            let [data] = elements(typed, "array")?[..] else {
                return Err(Refused::new("array must hold exactly one data"));
            };
            if !is_plain(data, "data") {
                return Err(Refused::new("array must hold exactly one data"));
            }
            let mut items = Vec::new();
            for item in elements(data, "data")? {
                if !is_plain(item, "value") {
                    return Err(Refused::new("array data holds something else than value"));
                }
                items.push(read_value(item)?);
            }
            Value::Array(items)
        }
        other => {
            return Err(Refused::new(format!(
                "value holds an unknown type {}",
                shown(other)
            )))
        }
    })
}

/// The concatenated text of `node`'s text children.
fn text_of(node: roxmltree::Node<'_, '_>) -> String {
    node.children()
        .filter(|child| child.is_text())
        .filter_map(|child| child.text())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A XenAPI-style answer: untyped strings, integers as strings, a nested record.
    static XAPI_RESPONSE: &str = "<?xml version=\"1.0\"?>\n<methodResponse><params><param>\
        <value><struct><member><name>Status</name><value>Success</value></member>\
        <member><name>Value</name><value><struct>\
        <member><name>OpaqueRef:1f2e</name><value><struct>\
        <member><name>uuid</name><value>0b5e1c2a-1111-4a6b-8c9d-00000000a001</value></member>\
        <member><name>name_label</name><value>web &amp; co</value></member>\
        <member><name>VCPUs_max</name><value>2</value></member>\
        <member><name>is_a_template</name><value><boolean>0</boolean></value></member>\
        <member><name>tags</name><value><array><data/></array></value></member>\
        <member><name>other</name><value><nil/></value></member>\
        </struct></value></member></struct></value></member>\
        </struct></value></param></params></methodResponse>\n";

    static FAULT: &str = "<?xml version='1.0'?>\n<methodResponse>\n<fault>\n<value><struct>\n\
        <member>\n<name>faultCode</name>\n<value><int>1</int></value>\n</member>\n<member>\n\
        <name>faultString</name>\n<value><string>&lt;class 'Exception'&gt;:boom</string>\
        </value>\n</member>\n</struct></value>\n</fault>\n</methodResponse>\n";

    fn value_of(text: &str) -> Value {
        let body = format!(
            "<methodResponse><params><param><value>{text}</value></param></params>\
             </methodResponse>"
        );
        match parse_response(body.as_bytes()) {
            Ok(Response::Value(value)) => value,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn refused(text: &str) -> String {
        let body = format!(
            "<methodResponse><params><param><value>{text}</value></param></params>\
             </methodResponse>"
        );
        parse_response(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn reads_a_xapi_answer() {
        let Response::Value(value) = parse_response(XAPI_RESPONSE.as_bytes()).unwrap() else {
            panic!("not a value");
        };
        assert_eq!(
            value.member("Status").and_then(Value::as_str),
            Some("Success")
        );
        let records = value.member("Value").unwrap();
        let record = records.member("OpaqueRef:1f2e").unwrap();
        assert_eq!(
            record.member("name_label").and_then(Value::as_str),
            Some("web & co")
        );
        assert_eq!(record.member("VCPUs_max").and_then(Value::as_int), Some(2));
        assert_eq!(
            record.member("is_a_template").and_then(Value::as_bool),
            Some(false)
        );
        assert_eq!(record.member("tags"), Some(&Value::Array(vec![])));
        assert_eq!(record.member("other"), Some(&Value::Nil));
        assert_eq!(record.member("missing"), None);
    }

    #[test]
    fn reads_a_fault() {
        assert_eq!(
            parse_response(FAULT.as_bytes()).unwrap(),
            Response::Fault {
                code: 1,
                message: "<class 'Exception'>:boom".to_owned()
            }
        );
    }

    #[test]
    fn reads_every_scalar() {
        assert_eq!(value_of("<i4> -7 </i4>"), Value::Int(-7));
        assert_eq!(
            value_of("<i8>9223372036854775807</i8>"),
            Value::Int(i64::MAX)
        );
        assert_eq!(value_of("<int>+3</int>"), Value::Int(3));
        assert_eq!(value_of("<boolean>1</boolean>"), Value::Boolean(true));
        assert_eq!(value_of("<double>-0.5</double>"), Value::Double(-0.5));
        assert_eq!(value_of("<double>1e3</double>"), Value::Double(1000.0));
        assert_eq!(
            value_of("<dateTime.iso8601>20240102T03:04:05Z</dateTime.iso8601>"),
            Value::DateTime("20240102T03:04:05Z".to_owned())
        );
        assert_eq!(
            value_of("<base64>aGk=</base64>"),
            Value::Base64("aGk=".to_owned())
        );
        assert_eq!(value_of("<string/>"), Value::string(""));
        assert_eq!(value_of(""), Value::string(""));
        assert_eq!(value_of("  two  words "), Value::string("  two  words "));
        assert_eq!(value_of("<string> kept </string>"), Value::string(" kept "));
        assert_eq!(Value::string("42").as_int(), Some(42));
        assert_eq!(Value::string("4 2").as_int(), None);
        assert_eq!(Value::string("").as_int(), None);
        assert_eq!(Value::string("-").as_int(), None);
    }

    #[test]
    fn refuses_malformed_values() {
        for (text, says) in [
            ("<int>12a</int>", "does not read"),
            ("<int>99999999999999999999</int>", "does not read"),
            ("<boolean>true</boolean>", "does not read"),
            ("<double>nan</double>", "does not read"),
            ("<double>inf</double>", "does not read"),
            ("<double>1e999</double>", "does not read"),
            ("<float>1</float>", "unknown type"),
            ("<string><b/></string>", "holds an element"),
            ("<string>a</string><string>b</string>", "more than one"),
            ("x<string>a</string>", "text between"),
            (
                "<struct><member><name>a</name></member></struct>",
                "without",
            ),
            (
                "<struct><member><name>a</name><value/></member>\
                 <member><name>a</name><value/></member></struct>",
                "given twice",
            ),
            ("<struct><junk/></struct>", "not member"),
            ("<array><value/></array>", "data"),
            ("<array><data><junk/></data></array>", "something else"),
            ("<x:string xmlns:x='urn:x'>a</x:string>", "namespace"),
            ("<nil>x</nil>", "nil holds text"),
        ] {
            let error = refused(text);
            assert!(error.contains(says), "{text}: {error}");
        }
        for body in [
            "<methodResponse/>",
            "<methodResponse><params/></methodResponse>",
            "<methodResponse><params><param/></params></methodResponse>",
            "<methodResponse><other/></methodResponse>",
            "<methodCall/>",
            "<m:methodResponse xmlns:m='urn:x'><params/></m:methodResponse>",
            "<methodResponse><fault><value><struct/></value></fault></methodResponse>",
            "<!DOCTYPE methodResponse []><methodResponse/>",
            "",
            "\u{ff}",
        ] {
            assert!(parse_response(body.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn deep_nesting_is_refused_before_recursion() {
        let depth = XMLRPC_MAX_DEPTH;
        let mut body = String::from("<methodResponse><params><param>");
        for _ in 0..depth {
            body.push_str("<value><array><data>");
        }
        for _ in 0..depth {
            body.push_str("</data></array></value>");
        }
        body.push_str("</param></params></methodResponse>");
        let error = parse_response(body.as_bytes()).unwrap_err();
        assert!(error.to_string().contains("nested deeper"), "{error}");

        // Within the limit it reads.
        let mut body = String::from("<methodResponse><params><param>");
        for _ in 0..5 {
            body.push_str("<value><array><data>");
        }
        for _ in 0..5 {
            body.push_str("</data></array></value>");
        }
        body.push_str("</param></params></methodResponse>");
        assert!(parse_response(body.as_bytes()).is_ok());
    }

    #[test]
    fn every_truncated_prefix_is_refused() {
        let mut written = Vec::new();
        write_response(&sample(), &mut written).unwrap();
        for whole in [XAPI_RESPONSE.as_bytes(), FAULT.as_bytes(), &written] {
            // The final newline is optional; every shorter prefix cuts the document.
            let end = whole.len() - 1;
            for cut in 0..end {
                assert!(parse_response(&whole[..cut]).is_err(), "prefix {cut}");
            }
            assert!(parse_response(whole).is_ok());
        }
    }

    fn sample() -> Value {
        Value::Struct(vec![
            ("s".to_owned(), Value::string("a <b> & \"c\" 'd'\r\n\t")),
            ("i".to_owned(), Value::Int(-42)),
            ("big".to_owned(), Value::Int(i64::MIN)),
            ("t".to_owned(), Value::Boolean(true)),
            ("d".to_owned(), Value::Double(0.25)),
            ("huge".to_owned(), Value::Double(1e300)),
            ("tiny".to_owned(), Value::Double(-1.5e-300)),
            (
                "when".to_owned(),
                Value::DateTime("20240102T03:04:05Z".into()),
            ),
            ("raw".to_owned(), Value::Base64("aGk=".into())),
            ("none".to_owned(), Value::Nil),
            (
                "list".to_owned(),
                Value::Array(vec![Value::strings(["x", ""]), Value::Struct(vec![])]),
            ),
            ("".to_owned(), Value::string("empty name")),
        ])
    }

    #[test]
    fn responses_round_trip() {
        let value = sample();
        let mut written = Vec::new();
        write_response(&value, &mut written).unwrap();
        assert_eq!(parse_response(&written).unwrap(), Response::Value(value));

        let mut fault = Vec::new();
        write_fault(-3, "no <way>", &mut fault).unwrap();
        assert_eq!(
            parse_response(&fault).unwrap(),
            Response::Fault {
                code: -3,
                message: "no <way>".to_owned()
            }
        );
    }

    #[test]
    fn writes_a_call_into_a_buffer_or_refuses() {
        let params = [
            Value::string("OpaqueRef:s"),
            Value::strings(["vm"]),
            Value::string(""),
            Value::Double(0.0),
        ];
        let mut written = Vec::new();
        write_call("event.from", &params, &mut written).unwrap();
        let text = String::from_utf8(written.clone()).unwrap();
        assert!(
            text.contains("<methodName>event.from</methodName>"),
            "{text}"
        );
        assert!(text.contains("<value><double>0</double></value>"), "{text}");
        assert!(text.contains(
            "<value><array><data><value><string>vm</string></value></data></array></value>"
        ));

        let mut buffer = [0u8; 4096];
        let mut cursor = crate::wire::Cursor::new(&mut buffer);
        write_call("event.from", &params, &mut cursor).unwrap();
        assert_eq!(cursor.written(), &written[..]);

        let mut small = [0u8; 40];
        let mut cursor = crate::wire::Cursor::new(&mut small);
        assert_eq!(
            write_call("event.from", &params, &mut cursor),
            Err(Error::TooLong)
        );
        let mut sink = Vec::new();
        assert_eq!(write_call("a b", &[], &mut sink), Err(Error::Malformed));
        assert_eq!(
            write_call("x", &[Value::Double(f64::NAN)], &mut sink),
            Err(Error::Unsupported)
        );
        let twice = Value::Struct(vec![
            ("a".to_owned(), Value::Nil),
            ("a".to_owned(), Value::Nil),
        ]);
        assert_eq!(
            write_call("x", &[twice], &mut sink),
            Err(Error::Unsupported)
        );
        assert!(is_method_name("VM.clean_shutdown"));
        assert!(!is_method_name(""));
        assert!(!is_method_name("x<y"));
    }
}
