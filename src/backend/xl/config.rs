//! Backend helper for the libxl and xl backends: reads xl domain config files.
//!
//! libxl has no config-file parser (that is xl's), so domains that are defined but not running
//! are found here, from the `name`, `uuid`, `memory` and `vcpus` keys of the files in the
//! config directory; they are started by running `xl create FILE` ([`super::command`]).
//! Parsing is pure and never panics on any input. Nothing here calls libxl or runs xl, so it
//! builds and is tested without Xen.
//!
//! # The xl config syntax read here (xl.cfg(5))
//!
//! `KEY = VALUE` settings, separated by newlines or `;`; `#` starts a comment to the end of
//! the line. A VALUE is a string in double or single quotes (backslash escapes `\n`, `\t`,
//! `\r`, `\\`, `\"`, `\'`; any other escaped character stands for itself), a bare number, or a
//! `[ ... ]` list of values, which may span lines. `KEY += VALUE` appends to a list. When a
//! key appears twice the last one counts. Only string and number values of the four keys
//! above are used; everything else is checked for syntax and skipped.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;
use uuid::Uuid;

/// Largest xl config file read; bigger files are skipped.
const XL_CONFIG_MAX_FILE: u64 = 64 * 1024;
/// Files of the config directory looked at, at most.
const XL_CONFIG_MAX_FILES: usize = 1024;
/// Deepest list nesting accepted in an xl config file.
const XL_CONFIG_MAX_DEPTH: usize = 8;

/// What a config file says about its domain, when it names one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Settings {
    /// `name`
    pub name: Option<String>,
    /// `uuid`, as written.
    pub uuid: Option<String>,
    /// `memory`, MiB.
    pub memory_mib: Option<u64>,
    /// `vcpus`
    pub vcpus: Option<u32>,
}

/// A domain defined by a config file, with a UUID so it can be found once created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedDomain {
    /// The config file (what `xl create` is given).
    pub path: PathBuf,
    /// `name`
    pub name: String,
    /// `uuid`
    pub uuid: Uuid,
    /// `memory` in MiB, when the file says.
    pub memory_mib: Option<u64>,
    /// `vcpus`, when the file says.
    pub vcpus: Option<u32>,
}

/// One lexical token of an xl config file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A key or a bare value (number).
    Word(String),
    /// A quoted string, unescaped.
    Str(String),
    /// `=`
    Assign,
    /// `+=`
    Append,
    /// `[`
    Open,
    /// `]`
    Close,
    /// `,`
    Comma,
    /// A newline or `;`.
    End,
}

/// Whether `c` may appear in a bare word (a key, a number such as `0x10` or `1.5`).
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | ':' | '/')
}

/// Splits `text` into tokens with their line numbers.
fn tokens(text: &str) -> Result<Vec<(Token, usize)>, String> {
    let mut out = Vec::new();
    let mut line = 1usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                out.push((Token::End, line));
                line += 1;
            }
            ';' => out.push((Token::End, line)),
            c if c.is_whitespace() => {}
            '#' => {
                while chars.peek().is_some_and(|&next| next != '\n') {
                    chars.next();
                }
            }
            '=' => out.push((Token::Assign, line)),
            '[' => out.push((Token::Open, line)),
            ']' => out.push((Token::Close, line)),
            ',' => out.push((Token::Comma, line)),
            '+' if chars.peek() == Some(&'=') => {
                chars.next();
                out.push((Token::Append, line));
            }
            '"' | '\'' => {
                let start = line;
                let mut value = String::new();
                loop {
                    match chars.next() {
                        None => return Err(format!("line {start}: unterminated string")),
                        Some(end) if end == c => break,
                        Some('\n') => return Err(format!("line {start}: newline in a string")),
                        Some('\\') => match chars.next() {
                            None => return Err(format!("line {start}: unterminated string")),
                            Some('n') => value.push('\n'),
                            Some('t') => value.push('\t'),
                            Some('r') => value.push('\r'),
                            Some('\n') => {
                                line += 1;
                                value.push('\n');
                            }
                            Some(other) => value.push(other),
                        },
                        Some(other) => value.push(other),
                    }
                }
                out.push((Token::Str(value), start));
            }
            c if is_word_char(c) => {
                let mut word = String::from(c);
                while let Some(&next) = chars.peek() {
                    if !is_word_char(next) {
                        break;
                    }
                    word.push(next);
                    chars.next();
                }
                out.push((Token::Word(word), line));
            }
            other => return Err(format!("line {line}: unexpected character {other:?}")),
        }
    }
    Ok(out)
}

/// A setting's value, as far as it matters here.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    /// A string or a bare word.
    Atom(String),
    /// A list (contents not kept).
    List,
}

/// Parses `text` as an xl config file (see the module doc) into the settings xenplug uses.
pub fn parse(text: &str) -> Result<Settings, String> {
    let tokens = tokens(text)?;
    let mut settings = Settings::default();
    let mut at = tokens.iter().peekable();
    while let Some((token, line)) = at.next() {
        let key = match token {
            Token::End => continue,
            Token::Word(key) if key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') => {
                key
            }
            other => return Err(format!("line {line}: expected a key, found {other:?}")),
        };
        match at.next() {
            Some((Token::Assign | Token::Append, _)) => {}
            _ => return Err(format!("line {line}: expected = after {key}")),
        }
        let value = match at.next() {
            Some((Token::Str(text) | Token::Word(text), _)) => Value::Atom(text.clone()),
            Some((Token::Open, _)) => {
                let mut depth = 1usize;
                while depth > 0 {
                    match at.next() {
                        Some((Token::Open, here)) => {
                            depth += 1;
                            if depth > XL_CONFIG_MAX_DEPTH {
                                return Err(format!("line {here}: lists nested too deep"));
                            }
                        }
                        Some((Token::Close, _)) => depth -= 1,
                        Some((Token::Assign | Token::Append, here)) => {
                            return Err(format!("line {here}: = inside a list"))
                        }
                        Some(_) => {}
                        None => return Err(format!("line {line}: unterminated list")),
                    }
                }
                Value::List
            }
            _ => return Err(format!("line {line}: {key} has no value")),
        };
        match at.next() {
            None | Some((Token::End, _)) => {}
            Some((_, here)) => return Err(format!("line {here}: expected the end of {key}")),
        }
        let Value::Atom(text) = value else {
            continue;
        };
        match key.as_str() {
            "name" => settings.name = Some(text),
            "uuid" => settings.uuid = Some(text),
            "memory" => settings.memory_mib = text.trim().parse().ok(),
            "vcpus" => settings.vcpus = text.trim().parse().ok(),
            _ => {}
        }
    }
    Ok(settings)
}

/// A UUID as xl accepts it: the hyphenated 36-character form only.
pub fn parse_uuid(text: &str) -> Option<Uuid> {
    let text = text.trim();
    (text.len() == 36)
        .then(|| Uuid::parse_str(text).ok())
        .flatten()
}

/// What one config file amounts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A domain with a name and a UUID.
    Domain(DefinedDomain),
    /// A domain config without a UUID: the domain gets a random one when created, so it cannot
    /// be identified before; it is listed nowhere.
    NoUuid(String),
    /// Not a domain config (no `name`, such as xl.conf), or not readable as one: the reason.
    Other(String),
}

/// Reads and classifies one file (at most `XL_CONFIG_MAX_FILE` bytes).
pub fn read_config(path: &Path) -> Outcome {
    let mut bytes = Vec::new();
    let read =
        File::open(path).and_then(|file| file.take(XL_CONFIG_MAX_FILE + 1).read_to_end(&mut bytes));
    if let Err(error) = read {
        return Outcome::Other(format!("cannot read: {error}"));
    }
    if bytes.len() as u64 > XL_CONFIG_MAX_FILE {
        return Outcome::Other(format!("larger than {XL_CONFIG_MAX_FILE} bytes"));
    }
    let Ok(text) = String::from_utf8(bytes) else {
        return Outcome::Other("not UTF-8 text".to_string());
    };
    classify(path, &text)
}

/// Classifies the text of the config file at `path`.
pub fn classify(path: &Path, text: &str) -> Outcome {
    let settings = match parse(text) {
        Ok(settings) => settings,
        Err(why) => return Outcome::Other(why),
    };
    let Some(name) = settings.name.filter(|name| !name.trim().is_empty()) else {
        return Outcome::Other("no name".to_string());
    };
    let Some(uuid_text) = settings.uuid else {
        return Outcome::NoUuid(name);
    };
    match parse_uuid(&uuid_text) {
        Some(uuid) => Outcome::Domain(DefinedDomain {
            path: path.to_path_buf(),
            name,
            uuid,
            memory_mib: settings.memory_mib,
            vcpus: settings.vcpus,
        }),
        None => Outcome::Other(format!("uuid {uuid_text:?} is not a UUID")),
    }
}

/// Whether a directory entry's name is worth reading: not hidden, not an editor backup, not a
/// package manager's leftover.
fn candidate(name: &str) -> bool {
    !(name.starts_with('.')
        || name.ends_with('~')
        || name.ends_with(".bak")
        || name.ends_with(".swp")
        || name.contains(".dpkg-")
        || name.ends_with(".rpmnew")
        || name.ends_with(".rpmsave"))
}

/// A file as last read: its identity, and what it was.
#[derive(Debug, Clone)]
struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    outcome: Outcome,
}

/// The config directory, read again on every call but parsing only files that changed. Each
/// file that is skipped (no UUID, malformed, a UUID already used) is logged once per version.
#[derive(Debug)]
pub struct ConfigDir {
    directory: PathBuf,
    cache: Mutex<Scan>,
}

/// The mutable part of [`ConfigDir`].
#[derive(Debug, Default)]
struct Scan {
    files: HashMap<PathBuf, Cached>,
    /// Files reported as duplicates, with the version reported.
    duplicates: HashSet<(PathBuf, Option<SystemTime>)>,
    /// Whether a missing directory was reported.
    missing_reported: bool,
}

impl ConfigDir {
    /// The config files in `directory` (which need not exist yet).
    pub fn new(directory: &Path) -> ConfigDir {
        ConfigDir {
            directory: directory.to_path_buf(),
            cache: Mutex::new(Scan::default()),
        }
    }

    /// The directory read.
    pub fn directory(&self) -> &Path {
        &self.directory
    }

    /// Every defined domain, by config file name; a UUID used by two files counts for the
    /// first file only.
    pub fn domains(&self) -> Vec<DefinedDomain> {
        let mut scan = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let entries = match fs::read_dir(&self.directory) {
            Ok(entries) => {
                scan.missing_reported = false;
                entries
            }
            Err(error) => {
                if !scan.missing_reported {
                    log::warn!(
                        "cannot read the xl config directory {}: {error}",
                        self.directory.display()
                    );
                    scan.missing_reported = true;
                }
                scan.files.clear();
                return Vec::new();
            }
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.file_name().to_str().is_some_and(candidate))
            .map(|entry| entry.path())
            .take(XL_CONFIG_MAX_FILES)
            .collect();
        paths.sort_unstable();
        scan.files.retain(|path, _| paths.contains(path));
        let mut found: Vec<DefinedDomain> = Vec::new();
        for path in paths {
            // metadata follows symlinks: a link to a config elsewhere counts.
            let Ok(metadata) = fs::metadata(&path) else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            let modified = metadata.modified().ok();
            let len = metadata.len();
            let fresh = scan
                .files
                .get(&path)
                .is_some_and(|cached| cached.modified == modified && cached.len == len);
            if !fresh {
                let outcome = read_config(&path);
                match &outcome {
                    Outcome::NoUuid(name) => log::warn!(
                        "xl config {} defines domain {name:?} without a uuid: it cannot be \
                         identified before it runs, so it is not listed (add a uuid = \"...\" \
                         line)",
                        path.display()
                    ),
                    Outcome::Other(why) if why != "no name" => {
                        log::info!("xl config {} is not a domain config: {why}", path.display())
                    }
                    _ => {}
                }
                scan.files.insert(
                    path.clone(),
                    Cached {
                        modified,
                        len,
                        outcome,
                    },
                );
            }
            let Some(Cached {
                outcome: Outcome::Domain(domain),
                ..
            }) = scan.files.get(&path).cloned()
            else {
                continue;
            };
            if let Some(first) = found.iter().find(|d| d.uuid == domain.uuid) {
                if scan.duplicates.insert((path.clone(), modified)) {
                    log::warn!(
                        "xl config {} uses uuid {} already used by {}; ignored",
                        path.display(),
                        domain.uuid,
                        first.path.display()
                    );
                }
                continue;
            }
            found.push(domain);
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WEB: &str =
        "# a PV guest\nname = \"web\"\nuuid = \"0b5e1c2a-1111-4a6b-8c9d-00000000a001\"\n\
                       memory = 512\nvcpus = 2\ndisk = [ 'phy:/dev/vg/web,xvda,w',\n  \
                       'file:/x.iso,hdc:cdrom,r' ]\non_crash = 'preserve'; type=\"pvh\"\n";

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xenplug-xl-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_typical_config_gives_name_uuid_memory_and_vcpus() {
        let settings = parse(WEB).unwrap();
        assert_eq!(settings.name.as_deref(), Some("web"));
        assert_eq!(
            settings.uuid.as_deref(),
            Some("0b5e1c2a-1111-4a6b-8c9d-00000000a001")
        );
        assert_eq!(settings.memory_mib, Some(512));
        assert_eq!(settings.vcpus, Some(2));
    }

    #[test]
    fn quotes_escapes_semicolons_comments_and_the_last_key_win() {
        let text = "name='a#b' # comment \"\nname = \"x\\\"y\\\\z\\n\"; vcpus=\"3\"\n\n";
        let settings = parse(text).unwrap();
        assert_eq!(settings.name.as_deref(), Some("x\"y\\z\n"));
        assert_eq!(settings.vcpus, Some(3));
        assert_eq!(parse("name = 'a#b'").unwrap().name.as_deref(), Some("a#b"));
        assert_eq!(parse("").unwrap(), Settings::default());
        assert_eq!(
            parse("cpus = [ [1,2], \"3\" ]\nvif += ['mac=00:16:3e:00:00:01']\nname=\"n\"")
                .unwrap()
                .name
                .as_deref(),
            Some("n")
        );
    }

    #[test]
    fn malformed_files_say_where() {
        for (text, expected) in [
            ("name = \"web", "line 1: unterminated string"),
            ("name = ", "line 1: name has no value"),
            ("\nname \"x\"", "line 2: expected = after name"),
            ("name = 'x' 'y'", "line 1: expected the end of name"),
            ("disk = [ 'a',\n", "line 1: unterminated list"),
            ("= 3", "line 1: expected a key"),
            ("name = 'x' $", "line 1: unexpected character '$'"),
            ("a = [[[[[[[[[1]]]]]]]]]", "line 1: lists nested too deep"),
        ] {
            let error = parse(text).unwrap_err();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
    }

    #[test]
    fn every_prefix_and_garbage_parse_without_panic() {
        for end in 0..=WEB.len() {
            if WEB.is_char_boundary(end) {
                let _ = parse(&WEB[..end]);
            }
        }
        let alphabet = b"ab=[]'\"\\#;\n, +x1";
        let mut seed = 7u32;
        for _ in 0..500 {
            let text: String = (0..64)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    alphabet[(seed >> 16) as usize % alphabet.len()] as char
                })
                .collect();
            let _ = parse(&text);
        }
    }

    #[test]
    fn only_hyphenated_uuids_count() {
        assert!(parse_uuid("0b5e1c2a-1111-4a6b-8c9d-00000000a001").is_some());
        assert!(parse_uuid(" 0b5e1c2a-1111-4a6b-8c9d-00000000a001 ").is_some());
        assert!(parse_uuid("0b5e1c2a11114a6b8c9d00000000a001").is_none());
        assert!(parse_uuid("urn:uuid:0b5e1c2a-1111-4a6b-8c9d-00000000a001").is_none());
        assert!(parse_uuid("web").is_none());
    }

    #[test]
    fn files_are_classified() {
        let path = Path::new("/etc/xen/web.cfg");
        match classify(path, WEB) {
            Outcome::Domain(domain) => {
                assert_eq!(domain.name, "web");
                assert_eq!(domain.path, path);
                assert_eq!(domain.memory_mib, Some(512));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            classify(path, "name = 'db'\nmemory = 256\n"),
            Outcome::NoUuid("db".to_string())
        );
        assert_eq!(
            classify(path, "autoballoon = \"off\"\n"),
            Outcome::Other("no name".to_string())
        );
        assert!(matches!(
            classify(path, "name='x'\nuuid='nope'"),
            Outcome::Other(why) if why.contains("not a UUID")
        ));
    }

    #[test]
    fn the_directory_lists_configs_with_uuids_once_each() {
        let dir = temp_dir("dir");
        fs::write(dir.join("web.cfg"), WEB).unwrap();
        fs::write(dir.join("copy.cfg"), WEB.replace("\"web\"", "\"copy\"")).unwrap();
        fs::write(dir.join("db.cfg"), "name='db'\n").unwrap();
        fs::write(dir.join("xl.conf"), "autoballoon=\"off\"\n").unwrap();
        fs::write(dir.join("web.cfg~"), WEB).unwrap();
        fs::write(dir.join("README"), "This is not a config.\n").unwrap();
        fs::create_dir_all(dir.join("scripts")).unwrap();
        let configs = ConfigDir::new(&dir);
        for _ in 0..2 {
            let domains = configs.domains();
            assert_eq!(domains.len(), 1, "{domains:?}");
            // copy.cfg sorts first, so it keeps the UUID.
            assert_eq!(domains[0].name, "copy");
        }
        fs::remove_file(dir.join("copy.cfg")).unwrap();
        assert_eq!(configs.domains()[0].name, "web");
        let missing = ConfigDir::new(&dir.join("absent"));
        assert!(missing.domains().is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}
