//! Wire layer: the small XML toolkit shared by SOAP, GENA and description rendering. Escapes
//! text into a [`Sink`] and parses untrusted documents under hard limits; no I/O, no clock.
//!
//! Writing goes through [`Sink`], implemented for [`Cursor`] (a fixed buffer that refuses
//! rather than truncates) and `Vec<u8>` (grows, never fails). Parsing goes through
//! [`parse_bounded`], which refuses a document type declaration, a too-long input, a too-deep
//! element nesting and too many nodes before or while roxmltree builds its tree.

use core::convert::Infallible;
use core::ops::Range;

use crate::wire::{Cursor, Error, Result};

/// A byte sink the XML writers append to.
///
/// `put` is the one required method: it appends all of `bytes` or fails without writing
/// anything. The provided methods build on it: `put_str` for markup we wrote ourselves,
/// `put_escaped` for element text and `put_escaped_attribute` for attribute values (the value
/// between the quotes of `name="..."`). Anything that did not come from a constant goes
/// through one of the escaping methods.
pub trait Sink {
    /// Appends `bytes`, or fails with [`Error::TooLong`] without writing anything.
    fn put(&mut self, bytes: &[u8]) -> Result<()>;

    /// Appends `text` as is (trusted markup).
    fn put_str(&mut self, text: &str) -> Result<()> {
        self.put(text.as_bytes())
    }

    /// Appends `text` escaped for element content; see [`escape_into`].
    fn put_escaped(&mut self, text: &str) -> Result<()> {
        escape_with(text, false, |bytes| self.put(bytes))
    }

    /// Appends `text` escaped for a double- or single-quoted attribute value; see
    /// [`escape_attribute_into`].
    fn put_escaped_attribute(&mut self, text: &str) -> Result<()> {
        escape_with(text, true, |bytes| self.put(bytes))
    }

    /// Appends `<name>text</name>` with `text` escaped; `name` is trusted markup (it comes
    /// from a table or constant, never from a peer).
    fn put_element(&mut self, name: &str, text: &str) -> Result<()> {
        self.put(b"<")?;
        self.put_str(name)?;
        self.put(b">")?;
        self.put_escaped(text)?;
        self.put(b"</")?;
        self.put_str(name)?;
        self.put(b">")
    }
}

impl Sink for Cursor<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        Cursor::put(self, bytes)
    }
}

impl Sink for Vec<u8> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Writes `text` into `out` escaped for element content.
///
/// `& < > " '` become entity references, a carriage return becomes `&#13;` (a parser would
/// otherwise turn it into a line feed), and characters XML 1.0 cannot carry at all (C0
/// controls other than tab, line feed and carriage return) become U+FFFD: there is no legal
/// way to send them, and a well-formed document with a replacement character beats a
/// document the peer refuses.
pub fn escape_into<S: Sink + ?Sized>(text: &str, out: &mut S) -> Result<()> {
    escape_with(text, false, |bytes| out.put(bytes))
}

/// Writes `text` into `out` escaped for an attribute value: as [`escape_into`], and tab and
/// line feed become character references too, because attribute-value normalization would
/// otherwise turn them into spaces.
pub fn escape_attribute_into<S: Sink + ?Sized>(text: &str, out: &mut S) -> Result<()> {
    escape_with(text, true, |bytes| out.put(bytes))
}

/// Appends `text` escaped for element content to a `Vec`, which cannot fail.
pub fn push_escaped(text: &str, out: &mut Vec<u8>) {
    infallible(escape_with(text, false, |bytes| {
        out.extend_from_slice(bytes);
        Ok(())
    }));
}

/// Appends `<name>text</name>` to a `Vec`, which cannot fail; see [`Sink::put_element`].
pub fn push_element(name: &str, text: &str, out: &mut Vec<u8>) {
    // Writing into a Vec never fails.
    let _ = out.put_element(name, text);
}

/// Appends `text` escaped for an attribute value to a `Vec`, which cannot fail.
pub fn push_escaped_attribute(text: &str, out: &mut Vec<u8>) {
    infallible(escape_with(text, true, |bytes| {
        out.extend_from_slice(bytes);
        Ok(())
    }));
}

fn infallible(result: core::result::Result<(), Infallible>) {
    match result {
        Ok(()) => {}
        Err(never) => match never {},
    }
}

/// The replacement for a character XML 1.0 cannot represent.
const REPLACEMENT: &str = "\u{FFFD}";

/// The one escaping walk: copies runs of plain text, and a replacement for each special byte.
/// Every special character is ASCII, so cutting the input at their positions keeps UTF-8
/// sequences whole.
fn escape_with<E>(
    text: &str,
    attribute: bool,
    mut put: impl FnMut(&[u8]) -> core::result::Result<(), E>,
) -> core::result::Result<(), E> {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        let replacement: &str = match byte {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&apos;",
            b'\r' => "&#13;",
            b'\t' if attribute => "&#9;",
            b'\n' if attribute => "&#10;",
            b'\t' | b'\n' => continue,
            0x00..=0x1f => REPLACEMENT,
            _ => continue,
        };
        if let Some(run) = bytes.get(start..at) {
            put(run)?;
        }
        put(replacement.as_bytes())?;
        start = at + 1;
    }
    if let Some(run) = bytes.get(start..) {
        put(run)?;
    }
    Ok(())
}

/// Limits a document is parsed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of input, at most.
    pub max_bytes: usize,
    /// Element nesting, at most (the root element is depth 1).
    pub max_depth: usize,
    /// roxmltree nodes (elements, text runs, comments, processing instructions), at most.
    pub max_nodes: u32,
}

/// Why a document was refused: one sentence naming the offending element, meant to be
/// logged once beside where the document came from. Parsers prefix it with where they were
/// ([`Refused::within`]) as the error travels up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    reason: String,
}

impl Refused {
    /// A refusal for `reason`.
    pub fn new(reason: impl Into<String>) -> Refused {
        Refused {
            reason: reason.into(),
        }
    }

    /// The reason, as displayed.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// The same refusal with `context: ` in front of its reason.
    pub fn within(self, context: &str) -> Refused {
        Refused::new(format!("{context}: {}", self.reason))
    }
}

impl core::fmt::Display for Refused {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Refused {}

impl Limits {
    /// Why [`parse_bounded`] refused a document, in words for a log line.
    pub fn explain(&self, error: Error) -> String {
        match error {
            Error::TooLong => format!(
                "larger than {} bytes, nested deeper than {} elements or more than {} XML nodes",
                self.max_bytes, self.max_depth, self.max_nodes
            ),
            Error::Unsupported => "a document type declaration is not allowed".to_string(),
            Error::Truncated => "the XML ends before the document does".to_string(),
            Error::Malformed => "not well-formed XML in UTF-8".to_string(),
        }
    }
}

/// Whether `node` is the element `local` in `namespace`.
pub fn is_element(node: roxmltree::Node<'_, '_>, namespace: &str, local: &str) -> bool {
    node.is_element()
        && node.tag_name().namespace() == Some(namespace)
        && node.tag_name().name() == local
}

/// More than one child matched where one at most is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repeated;

/// The one child of `parent` that `matches`, if any; two or more is [`Repeated`].
pub fn single_child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    matches: impl Fn(roxmltree::Node<'a, 'input>) -> bool,
) -> core::result::Result<Option<roxmltree::Node<'a, 'input>>, Repeated> {
    let mut found = parent.children().filter(|child| matches(*child));
    let first = found.next();
    match found.next() {
        Some(_) => Err(Repeated),
        None => Ok(first),
    }
}

/// The text of an element that holds only text, white space kept (SOAP argument values,
/// event values), or `None` when it holds elements.
pub fn value_text(node: roxmltree::Node<'_, '_>) -> Option<String> {
    if node.children().any(|child| child.is_element()) {
        return None;
    }
    Some(
        node.children()
            .filter(|child| child.is_text())
            .filter_map(|child| child.text())
            .collect(),
    )
}

/// The trimmed text of an element that holds only text (names, types, URLs), or `None` when it
/// holds elements.
pub fn element_text(node: roxmltree::Node<'_, '_>) -> Option<String> {
    value_text(node).map(|text| text.trim().to_string())
}

/// `text` quoted for a log line: control characters escaped, at most `max_chars` characters
/// shown, so a hostile document cannot forge log lines.
pub fn shown(text: &str, max_chars: usize) -> String {
    let mut cut: String = text.chars().take(max_chars).collect();
    if cut.len() < text.len() {
        cut.push_str("...");
    }
    format!("{cut:?}")
}

/// roxmltree options for untrusted input: DTDs refused (so no entity definitions, hence no
/// billion laughs), and at most `max_nodes` nodes.
pub fn parse_options<'input>(max_nodes: u32) -> roxmltree::ParsingOptions<'input> {
    roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: max_nodes,
        entity_resolver: None,
    }
}

/// `bytes` without a leading UTF-8 byte order mark: legal before an XML document, and some
/// stacks and editors write one.
pub fn without_byte_order_mark(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes)
}

/// Parses `input` as UTF-8 XML under `limits`.
///
/// Errors: [`Error::TooLong`] for input longer than `max_bytes`, nesting deeper than
/// `max_depth` or more than `max_nodes` nodes; [`Error::Unsupported`] for any document type
/// declaration (SOAP 1.1 section 3: "A SOAP message MUST NOT contain a Document Type
/// Declaration"); [`Error::Truncated`] when the input stops inside the document;
/// [`Error::Malformed`] for anything else that is not well-formed, namespace-valid XML.
///
/// The size and depth are checked by a linear scan before roxmltree runs, so a hostile
/// document costs one pass over at most `max_bytes` bytes.
pub fn parse_bounded(input: &[u8], limits: Limits) -> Result<roxmltree::Document<'_>> {
    parse_checked(check_bounded(input, limits)?, limits.max_nodes)
}

/// The checks [`parse_bounded`] makes before roxmltree runs (size, UTF-8, nesting, no
/// document type declaration), giving the text to parse.
pub fn check_bounded(input: &[u8], limits: Limits) -> Result<&str> {
    if input.len() > limits.max_bytes {
        return Err(Error::TooLong);
    }
    let text = core::str::from_utf8(input).map_err(|_| Error::Malformed)?;
    check_depth(input, limits.max_depth)?;
    Ok(text)
}

/// roxmltree's half of [`parse_bounded`], for `text` that passed [`check_bounded`].
pub fn parse_checked(text: &str, max_nodes: u32) -> Result<roxmltree::Document<'_>> {
    roxmltree::Document::parse_with_options(text, parse_options(max_nodes)).map_err(|error| {
        match error {
            roxmltree::Error::NodesLimitReached
            | roxmltree::Error::EntityReferenceLoop(_)
            | roxmltree::Error::AttributesLimitReached
            | roxmltree::Error::NamespacesLimitReached => Error::TooLong,
            roxmltree::Error::DtdDetected => Error::Unsupported,
            roxmltree::Error::UnexpectedEndOfStream | roxmltree::Error::UnclosedRootNode => {
                Error::Truncated
            }
            _ => Error::Malformed,
        }
    })
}

/// Fails with [`Error::TooLong`] as soon as the element nesting of `input` goes deeper than
/// `max_depth`, and with [`Error::Unsupported`] at a `<!DOCTYPE`. It only tracks `<`/`>`
/// structure (see [`markup_at`]); whether the document is well-formed is roxmltree's
/// business afterwards.
fn check_depth(input: &[u8], max_depth: usize) -> Result<()> {
    let mut depth = 0usize;
    let mut at = 0usize;
    while let Some(tag) = next_tag(input, at) {
        let (markup, end) = markup_at(input, tag)?;
        at = end;
        match markup {
            Markup::Start { self_closing } => {
                if depth >= max_depth {
                    return Err(Error::TooLong);
                }
                if !self_closing {
                    depth += 1;
                }
            }
            Markup::End => depth = depth.saturating_sub(1),
            Markup::Other => {}
        }
    }
    Ok(())
}

/// What a `<` opens, as far as nesting goes.
enum Markup {
    /// A start tag; `<a/>` is self-closing.
    Start { self_closing: bool },
    /// An end tag.
    End,
    /// A comment, a CDATA section or a processing instruction.
    Other,
}

/// Position of the next `<` at or after `from`.
fn next_tag(input: &[u8], from: usize) -> Option<usize> {
    let rest = input.get(from..)?;
    rest.iter()
        .position(|&byte| byte == b'<')
        .map(|offset| from + offset)
}

/// The markup that begins with the `<` at `tag`, and the position just after it. Tracks
/// comments, CDATA sections, processing instructions and quoted attribute values, so a `<`
/// or `>` inside them is not taken for a tag; a document type declaration is
/// [`Error::Unsupported`], markup the input stops inside [`Error::Truncated`].
fn markup_at(input: &[u8], tag: usize) -> Result<(Markup, usize)> {
    let rest = input.get(tag..).unwrap_or_default();
    if rest.starts_with(b"<!--") {
        Ok((Markup::Other, skip_past(input, tag + 4, b"-->")?))
    } else if rest.starts_with(b"<![CDATA[") {
        Ok((Markup::Other, skip_past(input, tag + 9, b"]]>")?))
    } else if rest.starts_with(b"<!") {
        Err(Error::Unsupported)
    } else if rest.starts_with(b"<?") {
        Ok((Markup::Other, skip_past(input, tag + 2, b"?>")?))
    } else if rest.starts_with(b"</") {
        Ok((Markup::End, skip_past(input, tag + 2, b">")?))
    } else {
        let (end, self_closing) = start_tag_end(input, tag + 1)?;
        Ok((Markup::Start { self_closing }, end))
    }
}

/// Where the child elements of one element lie in a document's text, found by
/// [`find_children`], so that they can be parsed one at a time instead of in one tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Children {
    /// The start tags of the element and of its ancestors, document element first.
    pub start_tags: Vec<Range<usize>>,
    /// Where each of those elements stands among its parent's child elements (0 for the
    /// first), document element first.
    pub positions: Vec<usize>,
    /// The element's content, between its start tag and its end tag.
    pub content: Range<usize>,
    /// Each child element, start tag to end tag, in document order.
    pub elements: Vec<Range<usize>>,
    /// Runs of white space between them: roxmltree keeps each as a text node.
    pub gaps: usize,
}

impl Children {
    /// The document without the element's content: the element left empty.
    pub fn without_content(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len() - self.content.len());
        out.push_str(&text[..self.content.start]);
        out.push_str(&text[self.content.end..]);
        out
    }

    /// Writes child `element` into `out` (cleared first) as a document of its own, inside
    /// copies of its ancestors' start tags: the namespaces in scope, the nesting depth and
    /// the path from the document element stay what they were.
    pub fn standalone(&self, text: &str, element: &Range<usize>, out: &mut String) {
        out.clear();
        for tag in &self.start_tags {
            out.push_str(&text[tag.clone()]);
        }
        out.push_str(&text[element.clone()]);
        for tag in self.start_tags.iter().rev() {
            out.push_str("</");
            out.push_str(tag_name(text, tag.start));
            out.push('>');
        }
    }
}

/// Finds the element reached from the document element by `path`, local names as written
/// (any prefix, the first element of each name), and the child elements it holds.
///
/// `None` when the answer is not plain: the input stops or holds a document type
/// declaration, the path is not there, the element is empty or self-closing, its content
/// holds anything but child elements and white space (text, a comment, a CDATA section or a
/// processing instruction), or more than `max_children` child elements (which bounds what the
/// answer holds: 16 bytes a child). The scan only tracks `<`/`>` structure: a caller parses
/// what it found, and checks with the namespaces and the [`Children::positions`] that the
/// element is the one it wants.
pub fn find_children(text: &str, path: &[&str], max_children: usize) -> Option<Children> {
    let input = text.as_bytes();
    let mut found = Children {
        start_tags: Vec::with_capacity(path.len()),
        positions: Vec::with_capacity(path.len()),
        content: 0..0,
        elements: Vec::new(),
        gaps: 0,
    };
    // Open elements; the first `matched` of them are the path's.
    let mut depth = 0usize;
    let mut matched = 0usize;
    // Child elements of the innermost matched element (of the document, at first) so far.
    let mut children_seen = 0usize;
    // Where the child element being read began.
    let mut child_start = 0usize;
    let mut at = 0usize;
    loop {
        let tag = next_tag(input, at)?;
        let inside = matched == path.len() && depth == matched;
        if inside {
            let between = input.get(at..tag)?;
            if !between.iter().all(|byte| b" \t\r\n".contains(byte)) {
                return None;
            }
            if !between.is_empty() {
                found.gaps += 1;
            }
        }
        let (markup, end) = markup_at(input, tag).ok()?;
        at = end;
        match markup {
            Markup::Other if inside => return None,
            Markup::Other => {}
            Markup::End if inside => {
                found.content.end = tag;
                return (!found.elements.is_empty()).then_some(found);
            }
            Markup::End => {
                depth = depth.checked_sub(1)?;
                if depth < matched {
                    // A path element closed before the rest of the path was found.
                    return None;
                }
                if matched == path.len() && depth == matched {
                    found.elements.push(child_start..end);
                }
            }
            Markup::Start { self_closing } => {
                if inside {
                    if found.elements.len() == max_children {
                        return None;
                    }
                    child_start = tag;
                    if self_closing {
                        found.elements.push(tag..end);
                    }
                } else if depth == matched && matched < path.len() {
                    let position = children_seen;
                    children_seen += 1;
                    let written = tag_name(text, tag);
                    let local = written.rsplit(':').next().unwrap_or(written);
                    if local == path[matched] {
                        if self_closing {
                            return None;
                        }
                        found.start_tags.push(tag..end);
                        found.positions.push(position);
                        matched += 1;
                        children_seen = 0;
                        found.content = end..end;
                    }
                }
                if !self_closing {
                    depth += 1;
                }
            }
        }
    }
}

/// The name, as written, of the start tag whose `<` is at `tag`.
fn tag_name(text: &str, tag: usize) -> &str {
    let rest = text.get(tag + 1..).unwrap_or_default();
    let end = rest
        .find([' ', '\t', '\r', '\n', '/', '>'])
        .unwrap_or(rest.len());
    &rest[..end]
}

/// Position just after the `>` closing a start tag whose name begins at `from`, and whether
/// the tag was self-closing (`/>`); quoted attribute values may contain `>`.
fn start_tag_end(input: &[u8], from: usize) -> Result<(usize, bool)> {
    let mut quote: Option<u8> = None;
    let mut previous = 0u8;
    for (offset, &byte) in input.get(from..).unwrap_or_default().iter().enumerate() {
        match quote {
            Some(open) if byte == open => quote = None,
            Some(_) => {}
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            None if byte == b'>' => return Ok((from + offset + 1, previous == b'/')),
            None => {}
        }
        previous = byte;
    }
    Err(Error::Truncated)
}

/// Position just after the first `needle` at or after `from`.
fn skip_past(input: &[u8], from: usize, needle: &[u8]) -> Result<usize> {
    let rest = input.get(from..).ok_or(Error::Truncated)?;
    find(rest, needle)
        .map(|offset| from + offset + needle.len())
        .ok_or(Error::Truncated)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_bytes: 4096,
        max_depth: 4,
        max_nodes: 64,
    };

    fn escaped(text: &str) -> String {
        let mut out = Vec::new();
        push_escaped(text, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn escaped_attribute(text: &str) -> String {
        let mut out = Vec::new();
        push_escaped_attribute(text, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn escapes_the_five_and_keeps_the_rest() {
        assert_eq!(escaped(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(escaped("plain text"), "plain text");
        assert_eq!(escaped(""), "");
        assert_eq!(escaped("grüße &"), "grüße &amp;");
        assert_eq!(escaped("&&"), "&amp;&amp;");
    }

    #[test]
    fn control_characters_never_make_invalid_xml() {
        assert_eq!(
            escaped("a\tb\nc\rd\0e\x1bf"),
            "a\tb\nc&#13;d\u{FFFD}e\u{FFFD}f"
        );
        assert_eq!(escaped_attribute("a\tb\nc\rd"), "a&#9;b&#10;c&#13;d");
    }

    #[test]
    fn escaped_text_parses_back_to_the_original() {
        let original = "x < y && \"q\" 'r' > z\r\n\tend ü";
        for attribute in [false, true] {
            let mut doc = b"<a b=\"".to_vec();
            push_escaped_attribute(original, &mut doc);
            doc.extend_from_slice(b"\">");
            push_escaped(original, &mut doc);
            doc.extend_from_slice(b"</a>");
            let parsed = parse_bounded(&doc, LIMITS).unwrap();
            let root = parsed.root_element();
            if attribute {
                assert_eq!(root.attribute("b"), Some(original));
            } else {
                assert_eq!(root.text(), Some(original));
            }
        }
    }

    #[test]
    fn cursor_sink_refuses_when_full() {
        let mut buffer = [0u8; 8];
        let mut cursor = Cursor::new(&mut buffer);
        cursor.put_escaped("ab").unwrap();
        assert_eq!(cursor.put_escaped("<"), Ok(()));
        assert_eq!(cursor.put_escaped("&"), Err(Error::TooLong));
        assert_eq!(cursor.written(), b"ab&lt;");
        let mut buffer = [0u8; 5];
        let mut cursor = Cursor::new(&mut buffer);
        assert_eq!(escape_into("&", &mut cursor), Ok(()));
        assert_eq!(
            escape_attribute_into("\n", &mut cursor),
            Err(Error::TooLong)
        );
    }

    #[test]
    fn vec_sink_grows() {
        let mut out = Vec::new();
        out.put_str("<a>").unwrap();
        out.put_escaped("1<2").unwrap();
        out.put_escaped_attribute("\"").unwrap();
        out.put_str("</a>").unwrap();
        assert_eq!(out, b"<a>1&lt;2&quot;</a>");
    }

    #[test]
    fn parses_within_limits() {
        let doc = parse_bounded(
            b"<?xml version=\"1.0\"?><!-- <x> --><a q='>'><b><c><d/></c></b><![CDATA[<e>]]></a>",
            LIMITS,
        )
        .unwrap();
        assert_eq!(doc.root_element().tag_name().name(), "a");
    }

    #[test]
    fn refuses_dtd_and_entity_expansion() {
        let laughs = b"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
            <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">]><a>&lol2;</a>";
        assert_eq!(
            parse_bounded(laughs, LIMITS).err(),
            Some(Error::Unsupported)
        );
        assert_eq!(
            parse_bounded(b"<!DOCTYPE a><a/>", LIMITS).err(),
            Some(Error::Unsupported)
        );
        // roxmltree on its own refuses a DTD too (the option), should the scan ever miss one.
        let direct = roxmltree::Document::parse_with_options(
            "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>",
            parse_options(64),
        );
        assert!(matches!(direct, Err(roxmltree::Error::DtdDetected)));
        assert_eq!(
            parse_bounded(b"<a>&undefined;</a>", LIMITS).err(),
            Some(Error::Malformed)
        );
    }

    #[test]
    fn refuses_deep_nesting_before_parsing() {
        assert!(parse_bounded(b"<a><b><c><d/></c></b></a>", LIMITS).is_ok());
        assert_eq!(
            parse_bounded(b"<a><b><c><d><e/></d></c></b></a>", LIMITS).err(),
            Some(Error::TooLong)
        );
        let mut deep = Vec::new();
        for _ in 0..10_000 {
            deep.extend_from_slice(b"<a>");
        }
        let limits = Limits {
            max_bytes: 1 << 20,
            ..LIMITS
        };
        assert_eq!(parse_bounded(&deep, limits).err(), Some(Error::TooLong));
    }

    #[test]
    fn refuses_huge_input_and_too_many_nodes() {
        let mut huge = b"<a>".to_vec();
        huge.resize(1 << 20, b'x');
        huge.extend_from_slice(b"</a>");
        assert_eq!(parse_bounded(&huge, LIMITS).err(), Some(Error::TooLong));
        let mut wide = b"<a>".to_vec();
        for _ in 0..100 {
            wide.extend_from_slice(b"<b/>");
        }
        wide.extend_from_slice(b"</a>");
        assert_eq!(parse_bounded(&wide, LIMITS).err(), Some(Error::TooLong));
    }

    #[test]
    fn malformed_and_truncated() {
        assert_eq!(
            parse_bounded(b"\xff<a/>", LIMITS).err(),
            Some(Error::Malformed)
        );
        assert_eq!(
            parse_bounded(b"<a></b>", LIMITS).err(),
            Some(Error::Malformed)
        );
        assert_eq!(parse_bounded(b"<a>", LIMITS).err(), Some(Error::Truncated));
        assert_eq!(
            parse_bounded(b"<p:a/>", LIMITS).err(),
            Some(Error::Malformed)
        );
        let valid = b"<a x=\"1\"><!-- c --><b>t&amp;</b><?pi x?><![CDATA[d]]></a>";
        assert!(parse_bounded(valid, LIMITS).is_ok());
        for end in 0..valid.len() {
            assert!(
                parse_bounded(&valid[..end], LIMITS).is_err(),
                "prefix {end}"
            );
        }
    }

    const LIST: [&str; 3] = ["root", "device", "deviceList"];

    #[test]
    fn finds_the_child_elements_at_the_end_of_a_path() {
        let text = concat!(
            "<?xml version=\"1.0\"?><!-- <root> -->\n",
            "<r:root xmlns:r=\"urn:x\" a='>'><other/><r:device><x>t</x><r:deviceList>\n ",
            "<r:device q=\"a>b\">one<![CDATA[</r:deviceList>]]><!-- </r:device> --></r:device> ",
            "<e/>\n</r:deviceList></r:device></r:root>"
        );
        let found = find_children(text, &LIST, 8).unwrap();
        assert_eq!(found.positions, [0, 1, 1]);
        let elements: Vec<&str> = found.elements.iter().map(|e| &text[e.clone()]).collect();
        assert_eq!(
            elements,
            [
                "<r:device q=\"a>b\">one<![CDATA[</r:deviceList>]]><!-- </r:device> --></r:device>",
                "<e/>"
            ]
        );
        assert_eq!(found.gaps, 3);
        let outline = found.without_content(text);
        assert!(outline.ends_with("<r:deviceList></r:deviceList></r:device></r:root>"));
        let outline = roxmltree::Document::parse(&outline).unwrap();
        // The document node, six elements, one text node.
        assert_eq!(outline.descendants().count(), 8);
        let mut piece = String::new();
        found.standalone(text, &found.elements[0], &mut piece);
        assert!(piece
            .starts_with("<r:root xmlns:r=\"urn:x\" a='>'><r:device><r:deviceList><r:device q"));
        assert!(piece.ends_with("</r:device></r:deviceList></r:device></r:root>"));
        let piece = roxmltree::Document::parse(&piece).unwrap();
        let entry = piece.descendants().nth(4).unwrap();
        assert_eq!(entry.tag_name().namespace(), Some("urn:x"));
        assert_eq!(entry.text(), Some("one</r:deviceList>"));
    }

    #[test]
    fn finds_nothing_where_the_content_is_not_plain_elements() {
        let wrap = |list: &str| format!("<root><device><deviceList{list}</device></root>");
        for list in [
            "><a/><!-- c --><b/></deviceList>",
            "><a/>text<b/></deviceList>",
            "><a/><?pi?></deviceList>",
            "><![CDATA[x]]></deviceList>",
            "></deviceList>",
            "/>",
        ] {
            assert_eq!(find_children(&wrap(list), &LIST, 8), None, "{list}");
        }
        assert!(find_children(&wrap("><a/> <b/></deviceList>"), &LIST, 8).is_some());
        // Two children where one at most is wanted.
        assert_eq!(
            find_children(&wrap("><a/> <b/></deviceList>"), &LIST, 1),
            None
        );
        assert!(find_children(&wrap("><a/></deviceList>"), &LIST, 1).is_some());
        // The input stops, the path is not there, or a path element ends before the rest is
        // found.
        assert_eq!(
            find_children("<root><device><deviceList><a/>", &LIST, 8),
            None
        );
        assert_eq!(
            find_children("<root><deviceList><a/></deviceList></root>", &LIST, 8),
            None
        );
        assert_eq!(
            find_children(
                "<root><device></device><x><deviceList><a/></deviceList></x></root>",
                &LIST,
                8
            ),
            None
        );
        assert_eq!(
            find_children(
                "<root><device><a><deviceList><b/></deviceList></a></device></root>",
                &LIST,
                8
            ),
            None
        );
        assert_eq!(
            find_children(
                "<!DOCTYPE root><root><device><deviceList><a/></deviceList></device></root>",
                &LIST,
                8
            ),
            None
        );
    }
}
