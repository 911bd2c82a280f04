//! The tracker's repository records and journal, read the way an outside tool would.

use std::collections::BTreeMap;

use super::tracker::TRACK_EVENT_KINDS;

/// First line of every repository record.
pub const REPO_FIRST_LINE: &str = "# xenplug-repo 1";
/// First line of the journal.
pub const JOURNAL_FIRST_LINE: &str = "# xenplug-journal 1";

/// Reverse the repository's value escaping (`\\`, `\n`, `\r`, `\t`, `\xHH`, `\u{H..}`).
pub fn repo_unescape(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c.is_control() || c.is_whitespace() {
            return Err(format!("unescaped {c:?} in {value:?}"));
        }
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| format!("bad \\x escape in {value:?}"))?;
                out.push(char::from_u32(code).ok_or("bad \\x escape")?);
            }
            Some('u') => {
                if chars.next() != Some('{') {
                    return Err(format!("bad \\u escape in {value:?}"));
                }
                let hex: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let code = u32::from_str_radix(&hex, 16)
                    .map_err(|_| format!("bad \\u escape in {value:?}"))?;
                out.push(char::from_u32(code).ok_or("bad \\u escape")?);
            }
            other => return Err(format!("bad escape \\{other:?} in {value:?}")),
        }
    }
    Ok(out)
}

/// Parse a repository record: `# xenplug-repo 1`, then `key=value` lines (values escaped, keys
/// distinct). Returns the unescaped values by key.
pub fn parse_repo_record(text: &str) -> Result<BTreeMap<String, String>, String> {
    if !text.ends_with('\n') {
        return Err("does not end with a newline".into());
    }
    let mut lines = text.lines();
    if lines.next() != Some(REPO_FIRST_LINE) {
        return Err(format!("first line is not {REPO_FIRST_LINE:?}"));
    }
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {}: no '=' in {line:?}", n + 2))?;
        let key_ok = !key.is_empty()
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !key_ok {
            return Err(format!("line {}: bad key {key:?}", n + 2));
        }
        let value = repo_unescape(value).map_err(|e| format!("line {}: {e}", n + 2))?;
        if out.insert(key.to_string(), value).is_some() {
            return Err(format!("line {}: key {key} twice", n + 2));
        }
    }
    Ok(out)
}

/// One journal line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalEntry {
    /// `seq=`
    pub seq: u64,
    /// `time=` (unix seconds)
    pub time: u64,
    /// `kind=`
    pub kind: String,
    /// `subject=` (unescaped)
    pub subject: String,
    /// `network=` (unescaped), if present.
    pub network: Option<String>,
    /// The other `key=value` tokens (unescaped).
    pub details: BTreeMap<String, String>,
    /// The line as written.
    pub line: String,
}

/// Parse one journal line (`seq=N time=T kind=K subject=S [network=L] [key=value]...`).
pub fn parse_journal_line(line: &str) -> Result<JournalEntry, String> {
    let mut tokens = Vec::new();
    for token in line.split(' ') {
        let (key, value) = token
            .split_once('=')
            .ok_or_else(|| format!("token {token:?} has no '='"))?;
        tokens.push((key, repo_unescape(value)?));
    }
    let fixed: Vec<&str> = tokens.iter().take(4).map(|(k, _)| *k).collect();
    if fixed != ["seq", "time", "kind", "subject"] {
        return Err(format!(
            "first keys are {fixed:?}, not seq time kind subject"
        ));
    }
    let seq = tokens[0].1.parse().map_err(|_| "seq is not a number")?;
    let time = tokens[1].1.parse().map_err(|_| "time is not a number")?;
    let kind = tokens[2].1.clone();
    if !TRACK_EVENT_KINDS.contains(&kind.as_str()) {
        return Err(format!("unknown kind {kind:?}"));
    }
    let mut network = None;
    let mut details = BTreeMap::new();
    for (i, (key, value)) in tokens.iter().enumerate().skip(4) {
        if *key == "network" && i == 4 {
            network = Some(value.clone());
        } else if ["seq", "time", "kind", "subject", "network"].contains(key) {
            return Err(format!("reserved key {key} out of place"));
        } else if details.insert(key.to_string(), value.clone()).is_some() {
            return Err(format!("detail {key} twice"));
        }
    }
    Ok(JournalEntry {
        seq,
        time,
        kind,
        subject: tokens[3].1.clone(),
        network,
        details,
        line: line.to_string(),
    })
}

/// Parse a whole journal. With `strict`, the file must end with a newline; without, a last
/// line with no newline yet (being written) is left out.
pub fn parse_journal(text: &str, strict: bool) -> Result<Vec<JournalEntry>, String> {
    if text.is_empty() && !strict {
        return Ok(Vec::new());
    }
    let whole = match text.rfind('\n') {
        Some(end) if end + 1 == text.len() => text,
        Some(end) if !strict => &text[..end + 1],
        _ if !strict => "",
        _ => return Err("does not end with a newline".into()),
    };
    let mut lines = whole.lines();
    match lines.next() {
        Some(JOURNAL_FIRST_LINE) => {}
        None if !strict => return Ok(Vec::new()),
        other => {
            return Err(format!(
                "first line is {other:?}, not {JOURNAL_FIRST_LINE:?}"
            ))
        }
    }
    lines
        .enumerate()
        .map(|(n, line)| {
            parse_journal_line(line).map_err(|e| format!("line {}: {e}: {line:?}", n + 2))
        })
        .collect()
}
