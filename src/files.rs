//! Flat files: atomic replacement and `key=value` records.
//!
//! Every file xenplug writes (sim domains, state, repositories) goes through [`write_atomic`],
//! so a crash at any instant leaves the old or the new content, never a torn one.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Replaces `path` with `contents`: writes a temporary file in the same directory, fsyncs it,
/// renames it into place and fsyncs the directory.
pub fn write_atomic(path: &Path, contents: &[u8]) -> io::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut temporary_name = std::ffi::OsString::from(".");
    temporary_name.push(name);
    temporary_name.push(format!(".tmp{}", std::process::id()));
    let temporary = directory.join(temporary_name);
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
        fs::remove_dir_all(&directory).unwrap();
    }
}
