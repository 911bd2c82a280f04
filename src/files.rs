//! Flat files: atomic replacement and `key=value` records.
//!
//! Every file xenplug writes (sim domains, state, repositories) goes through [`write_atomic`],
//! so a crash at any instant leaves the old or the new content, never a torn one.
//!
//! Records written by people (sim domains, the state file, service.conf) hold plain values;
//! records written by programs from advertised strings (the tracker's repositories) opt in to
//! escaped values with [`Record::to_text_escaped`] / [`Record::parse_escaped`], so that no
//! string can break a line or the parser (see [`escape_value`]).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `contents`: writes a temporary file in the same directory, fsyncs it,
/// renames it into place and fsyncs the directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let (directory, temporary) = temporary_path(path)?;
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        fs::rename(&temporary, path)?;
        File::open(directory)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    written
}

/// The folder of `path` and the temporary file [`write_atomic`] writes before renaming it to
/// `path`: `.<name>.tmp<pid>` beside it, which [`is_temporary`] recognises.
pub fn temporary_path(path: &Path) -> io::Result<(&Path, std::path::PathBuf)> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!("{TEMPORARY_MARKER}{}", std::process::id()));
    Ok((directory, directory.join(temporary_name)))
}

/// What [`write_atomic`] puts between the file name and the process id in a temporary name:
/// `.<name>.tmp<pid>`.
const TEMPORARY_MARKER: &str = ".tmp";

/// Whether `name` has the form of a temporary file [`write_atomic`] creates
/// (`.<name>.tmp<pid>`): one a crash left behind, which whoever owns the directory may remove.
pub fn is_temporary(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.') else {
        return false;
    };
    match rest.rsplit_once(TEMPORARY_MARKER) {
        Some((base, pid)) => {
            !base.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Escapes `value` so that it holds no whitespace and no control character, whatever it held:
/// it then survives line splitting, the trimming [`Record::parse`] does, and space-separated
/// `key=value` tokens (the tracker's journal).
///
/// - `\` becomes `\\`; line feed, carriage return and tab become `\n`, `\r`, `\t`;
/// - every other ASCII control character, and the space, becomes `\xHH` (two lower-case hex
///   digits): a space is escaped because journal tokens are separated by spaces and record
///   values are trimmed;
/// - every other character that is a control character or whitespace (C1 controls, NEL,
///   no-break space, U+2028 line separator...) becomes `\u{H...}` (lower-case hex);
/// - everything else, `=` and `#` included, stays as it is: a record line is split at its first
///   `=` and keys never hold one, and `#` only starts a comment at the start of a line, where a
///   key stands.
pub fn escape_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        match character {
            '\\' => escaped.push_str("\\\\"),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_ascii_control() || c == ' ' => {
                escaped.push_str(&format!("\\x{:02x}", u32::from(c)));
            }
            c if c.is_control() || c.is_whitespace() => {
                escaped.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// Reverses [`escape_value`]. Accepts upper- or lower-case hex digits and unescaped spaces (a
/// person may write `name=web server`); refuses a raw control character, a backslash at the
/// end, an unknown escape, bad hex digits, and a `\u{...}` that names no character, with an
/// error giving the byte offset.
pub fn unescape_value(escaped: &str) -> Result<String, String> {
    let mut value = String::with_capacity(escaped.len());
    let mut characters = escaped.char_indices();
    while let Some((offset, character)) = characters.next() {
        if character.is_control() {
            return Err(format!(
                "byte {offset}: raw control character U+{:04X}",
                u32::from(character)
            ));
        }
        if character != '\\' {
            value.push(character);
            continue;
        }
        let decoded = match characters.next() {
            None => return Err(format!("byte {offset}: backslash at the end")),
            Some((_, '\\')) => '\\',
            Some((_, 'n')) => '\n',
            Some((_, 'r')) => '\r',
            Some((_, 't')) => '\t',
            Some((_, 'x')) => {
                let high = characters.next().and_then(|(_, c)| c.to_digit(16));
                let low = characters.next().and_then(|(_, c)| c.to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => char::from_u32(high * 16 + low)
                        .ok_or_else(|| format!("byte {offset}: \\x names no character"))?,
                    _ => return Err(format!("byte {offset}: \\x needs two hex digits")),
                }
            }
            Some((_, 'u')) => {
                if characters.next().map(|(_, c)| c) != Some('{') {
                    return Err(format!("byte {offset}: \\u needs {{"));
                }
                let mut code: u32 = 0;
                let mut digits = 0;
                loop {
                    match characters.next() {
                        Some((_, '}')) if digits > 0 => break,
                        Some((_, c)) if digits < 6 => match c.to_digit(16) {
                            Some(digit) => {
                                code = code * 16 + digit;
                                digits += 1;
                            }
                            None => {
                                return Err(format!("byte {offset}: \\u{{}} holds a non-hex digit"))
                            }
                        },
                        _ => return Err(format!("byte {offset}: \\u{{}} needs 1 to 6 hex digits")),
                    }
                }
                char::from_u32(code)
                    .ok_or_else(|| format!("byte {offset}: \\u{{{code:x}}} names no character"))?
            }
            Some((_, other)) => return Err(format!("byte {offset}: unknown escape \\{other}")),
        };
        value.push(decoded);
    }
    Ok(value)
}

/// Whether `key` can stand on the left of a record line: not empty, no `=`, no whitespace or
/// control character, not starting with `#`.
pub fn is_record_key(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('#')
        && !key
            .chars()
            .any(|c| c == '=' || c.is_whitespace() || c.is_control())
}

/// A parsed `key=value` record: keys in file order, blank lines and `#` comments skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    entries: Vec<(String, String)>,
}

impl Record {
    /// Parses `text`; a non-blank, non-comment line without `=` or with an empty key, or a key
    /// given twice, is an error naming the line.
    pub fn parse(text: &str) -> Result<Record, String> {
        let mut entries: Vec<(String, String)> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected key=value", number + 1))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("line {}: empty key", number + 1));
            }
            if entries.iter().any(|(existing, _)| existing == key) {
                return Err(format!("line {}: {key} given twice", number + 1));
            }
            entries.push((key.to_string(), value.trim().to_string()));
        }
        Ok(Record { entries })
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(existing, _)| existing == key)
            .map(|(_, value)| value.as_str())
    }

    /// The value of `key`, or an error naming it.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key).ok_or_else(|| format!("missing {key}"))
    }

    /// Sets `key`, keeping its position if present.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .entries
            .iter_mut()
            .find(|(existing, _)| existing == key)
        {
            Some(entry) => entry.1 = value,
            None => self.entries.push((key.to_string(), value)),
        }
    }

    /// The entries as `(key, value)` pairs, in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }

    /// Parses `text` as [`Record::parse`] does, then unescapes every value with
    /// [`unescape_value`]; an error names the line's key.
    pub fn parse_escaped(text: &str) -> Result<Record, String> {
        let mut record = Record::parse(text)?;
        for (key, value) in &mut record.entries {
            *value = unescape_value(value).map_err(|reason| format!("{key}: {reason}"))?;
        }
        Ok(record)
    }

    /// The record as `key=value` lines with every value escaped by [`escape_value`]; refuses a
    /// key that [`is_record_key`] refuses, since it would break the line or the parser.
    pub fn to_text_escaped(&self) -> Result<String, String> {
        let mut text = String::new();
        for (key, value) in &self.entries {
            if !is_record_key(key) {
                return Err(format!("key {key:?} cannot be written"));
            }
            text.push_str(key);
            text.push('=');
            text.push_str(&escape_value(value));
            text.push('\n');
        }
        Ok(text)
    }

    /// The record as `key=value` lines.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for (key, value) in &self.entries {
            text.push_str(key);
            text.push('=');
            text.push_str(value);
            text.push('\n');
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trip_keeps_order() {
        let record = Record::parse("# sim\nuuid = 1\n\nname=web=1\n").unwrap();
        assert_eq!(record.get("uuid"), Some("1"));
        assert_eq!(record.get("name"), Some("web=1"));
        assert_eq!(record.to_text(), "uuid=1\nname=web=1\n");
    }

    #[test]
    fn record_errors_name_the_line() {
        assert_eq!(
            Record::parse("a=1\nbroken\n"),
            Err("line 2: expected key=value".into())
        );
        assert_eq!(Record::parse("=1"), Err("line 1: empty key".into()));
        assert_eq!(
            Record::parse("a=1\na=2"),
            Err("line 2: a given twice".into())
        );
    }

    /// Strings an advertiser could send: every one must survive a record and a journal token.
    const HOSTILE: &[&str] = &[
        "",
        " ",
        "  leading and trailing  ",
        "a=b=c",
        "line\nbreak",
        "carriage\r\nreturn",
        "tab\there",
        "nul\0byte",
        "\\",
        "\\n is not a newline",
        "\\x41",
        "# not a comment",
        "\u{7f}\u{1b}[31mred",
        "\u{85}next line\u{2028}separator\u{a0}nbsp\u{3000}",
        "\u{202e}reversed",
        "caf\u{e9} \u{1f600} \u{10ffff}",
        "key=value other=value",
    ];

    #[test]
    fn escape_round_trips_hostile_strings() {
        for &value in HOSTILE {
            let escaped = escape_value(value);
            assert!(
                !escaped.chars().any(|c| c.is_whitespace() || c.is_control()),
                "{escaped:?}"
            );
            assert_eq!(unescape_value(&escaped).as_deref(), Ok(value));
        }
        let long: String = "\n=\u{e9}\\ ".repeat(10_000);
        assert_eq!(unescape_value(&escape_value(&long)), Ok(long));
    }

    #[test]
    fn escape_fixtures() {
        assert_eq!(escape_value("a b\n\\=\0"), "a\\x20b\\n\\\\=\\x00");
        assert_eq!(
            escape_value("\u{85}\u{2028}\u{e9}"),
            "\\u{85}\\u{2028}\u{e9}"
        );
        assert_eq!(unescape_value("web server"), Ok("web server".into()));
        assert_eq!(unescape_value("\\x4A\\u{1F600}"), Ok("J\u{1f600}".into()));
    }

    #[test]
    fn unescape_refuses_bad_escapes() {
        for bad in [
            "\\",
            "a\\",
            "\\q",
            "\\x4",
            "\\xzz",
            "\\u",
            "\\u{}",
            "\\u{d800}",
            "\\u{110000}",
            "\\u{1234567}",
            "\\u{12",
            "raw\nnewline",
            "raw\0nul",
        ] {
            assert!(unescape_value(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unescape_random_input_never_panics_and_random_strings_round_trip() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = [
            '\\', 'x', 'u', '{', '}', '0', 'f', 'F', 'n', ' ', '\n', '\u{e9}', '=',
        ];
        for _ in 0..2000 {
            let length = rng.usize(0..24);
            let text: String = (0..length)
                .map(|_| alphabet[rng.usize(0..alphabet.len())])
                .collect();
            let _ = unescape_value(&text);
            assert_eq!(unescape_value(&escape_value(&text)), Ok(text.clone()));
            let any: String = (0..length).map(|_| rng.char(..)).collect();
            assert_eq!(unescape_value(&escape_value(&any)), Ok(any));
        }
        let escaped = escape_value("\u{1f600} \\ \n\u{2028}");
        for end in 0..=escaped.len() {
            if let Some(prefix) = escaped.get(..end) {
                let _ = unescape_value(prefix);
            }
        }
    }

    #[test]
    fn escaped_record_round_trips_and_plain_parse_is_unchanged() {
        let mut record = Record::default();
        for (index, &value) in HOSTILE.iter().enumerate() {
            record.set(&format!("k{index}"), value);
        }
        let text = record.to_text_escaped().unwrap();
        assert_eq!(text.lines().count(), HOSTILE.len());
        assert_eq!(Record::parse_escaped(&text), Ok(record));
        assert_eq!(
            Record::parse_escaped("a=x\\q\n"),
            Err("a: byte 1: unknown escape \\q".into())
        );
        let plain = Record::parse("name = web\\server\n").unwrap();
        assert_eq!(plain.get("name"), Some("web\\server"));
    }

    #[test]
    fn escaped_record_refuses_keys_that_break_lines() {
        for key in ["", "a=b", "a b", "a\nb", "#a"] {
            let mut record = Record::default();
            record.set(key, "v");
            assert!(record.to_text_escaped().is_err(), "{key:?}");
        }
    }

    #[test]
    fn temporary_names() {
        assert!(is_temporary(".record.tmp123"));
        assert!(is_temporary(".a.tmp.tmp9"));
        for name in [
            "record",
            ".record",
            ".record.tmp",
            ".tmp12",
            "record.tmp12",
            ".lock",
        ] {
            assert!(!is_temporary(name), "{name}");
        }
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let directory = std::env::temp_dir().join(format!("xenplug-files-{}", std::process::id()));
        fs::create_dir_all(&directory).unwrap();
        let path = directory.join("record");
        write_atomic(&path, b"a=1\n").unwrap();
        write_atomic(&path, b"a=2\n").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "a=2\n");
        let names: Vec<_> = fs::read_dir(&directory)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("record")]);
        assert!(!is_temporary("record"));
        fs::remove_dir_all(&directory).unwrap();
    }
}
