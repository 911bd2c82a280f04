//! Backend helper for the xl backend: reads what `xl list` and `xl info` print. Pure: no I/O,
//! never panics on any input; the caller bounds the input's size.
//!
//! `xl list -v` (every Xen 4.x; captured from Xen 4.17 and 4.20; the header's tabs shown as
//! spaces):
//!
//! ```text
//! Name                                        ID   Mem VCPUs    State    Time(s)   UUID                            Reason-Code    Security Label
//! Domain-0                                     0   768     1     r-----      33.4 00000000-0000-0000-0000-000000000000        -                -
//! g1                                           1   128     1     ---ss-      12.3 0e7d2ed6-f153-11f1-bef4-7b965ee376f5        2                -
//! ```
//!
//! A row is the name (left-justified in 40 columns, longer names push the rest right, and a
//! name may hold spaces), then domid, memory in MiB, online vCPUs, six state letters, CPU time
//! in seconds, the UUID, then columns that differ between releases (reason code, security
//! label, and since Xen 4.21 capabilities). So a row is read from the right: the last run of
//! six fields that reads as domid, memory, vCPUs, state, time and UUID ends the name. The
//! state letters are `r` running, `b` blocked, `p` paused, `s` shut down, then the shutdown
//! reason (`-` poweroff, `r` reboot, `s` suspend, `c` crash, `w` watchdog, `S` soft reset, `?`
//! other), then `d` dying; `-` where a flag is clear. A domain whose name cannot be read yet
//! (being built or torn down) is printed `(null)`.
//!
//! Without `-v` (`xl list`) the row stops after the time and has no UUID; `xl list -l` prints
//! every domain's configuration as a JSON array of `{"domid": N, "config": {"c_info":
//! {"name": ..., "uuid": ...}}}` (domains being built are left out). Together they are the
//! fallback for an xl whose `list -v` has no UUID column.
//!
//! `xl info` prints `key : value` lines; read here are `nr_cpus`, `total_memory`
//! (MiB), `xen_major`, `xen_minor` and `xen_extra` (`.7`, `.5-pre`).

use crate::wire::json::{self, JsonValue};
use std::collections::HashMap;
use uuid::Uuid;
use xen_ffi::safe::{DomainInfo, ShutdownReason};

/// One row of `xl list`: the domain's figures and, when it has one yet, its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// What xl printed, as libxl's record (memory and vCPU maxima are the current figures;
    /// the UUID is zero without `-v`).
    pub info: DomainInfo,
    /// The name, `None` while the domain has none (`(null)` or blank).
    pub name: Option<String>,
}

/// A whole `xl list` listing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Listing {
    /// The rows read, in xl's order (dom0 included).
    pub rows: Vec<Row>,
    /// Lines that are not a row (logged by the caller).
    pub unread: Vec<String>,
}

/// What `xl info` says about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XlInfo {
    /// `xen_major`
    pub major: u32,
    /// `xen_minor`
    pub minor: u32,
    /// `xen_extra`
    pub extra: String,
    /// `nr_cpus`
    pub cpus: u32,
    /// `total_memory`, MiB.
    pub memory_mib: u64,
}

impl XlInfo {
    /// The version as libxl reports it: `major.minor` then `extra` (`4.20.5-pre`).
    pub fn version(&self) -> String {
        format!("{}.{}{}", self.major, self.minor, self.extra)
    }
}

/// Fields of a row before the name, from the left: domid, memory, vCPUs, state, time, UUID.
const VERBOSE_FIELDS: usize = 6;
/// The same without `-v`: no UUID.
const PLAIN_FIELDS: usize = 5;
/// Longest `xen_extra` kept.
const XL_EXTRA_MAX: usize = 64;

/// The whitespace-separated words of `line`, each with its byte offset.
fn words(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (at, c) in line.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(from)) => {
                out.push((from, &line[from..at]));
                start = None;
            }
            (false, None) => start = Some(at),
            _ => {}
        }
    }
    if let Some(from) = start {
        out.push((from, &line[from..]));
    }
    out
}

/// The state letters' flags: running, blocked, paused, shutdown, reason, dying.
fn state_letters(word: &str) -> Option<(bool, bool, bool, bool, ShutdownReason, bool)> {
    let letters: Vec<char> = word.chars().collect();
    let [run, block, pause, shut, reason, dying] = letters.as_slice() else {
        return None;
    };
    let flag = |c: char, set: char| match c {
        '-' => Some(false),
        c if c == set => Some(true),
        _ => None,
    };
    let reason = match reason {
        '-' => ShutdownReason::Poweroff,
        'r' => ShutdownReason::Reboot,
        's' => ShutdownReason::Suspend,
        'c' => ShutdownReason::Crash,
        'w' => ShutdownReason::Watchdog,
        'S' => ShutdownReason::SoftReset,
        '?' => ShutdownReason::Unknown,
        _ => return None,
    };
    Some((
        flag(*run, 'r')?,
        flag(*block, 'b')?,
        flag(*pause, 'p')?,
        flag(*shut, 's')?,
        reason,
        flag(*dying, 'd')?,
    ))
}

/// CPU seconds as printed (`%8.1f`) in nanoseconds.
fn cpu_time_ns(word: &str) -> Option<u64> {
    let (whole, tenths) = word.split_once('.').unwrap_or((word, "0"));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if tenths.is_empty() || !tenths.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let seconds: u64 = whole.parse().ok()?;
    let first = u64::from(tenths.as_bytes()[0] - b'0');
    Some(
        seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(first * 100_000_000),
    )
}

/// A UUID in xl's form (36 characters, hyphenated).
fn xl_uuid(word: &str) -> Option<Uuid> {
    if word.len() != 36 {
        return None;
    }
    Uuid::parse_str(word).ok()
}

/// The fields of a row from `at` on, when they read as one.
fn fields(window: &[(usize, &str)], uuids: bool) -> Option<DomainInfo> {
    let domid: u32 = window.first()?.1.parse().ok()?;
    let memory_mib: u64 = window.get(1)?.1.parse().ok()?;
    let vcpus: u32 = window.get(2)?.1.parse().ok()?;
    let (running, blocked, paused, shutdown, reason, dying) = state_letters(window.get(3)?.1)?;
    let cpu_time_ns = cpu_time_ns(window.get(4)?.1)?;
    let uuid = if uuids {
        *xl_uuid(window.get(5)?.1)?.as_bytes()
    } else {
        [0; 16]
    };
    let memory_kib = memory_mib.saturating_mul(1024);
    Some(DomainInfo {
        uuid,
        domid,
        running,
        blocked,
        paused,
        shutdown,
        dying,
        shutdown_reason: if shutdown {
            reason
        } else {
            ShutdownReason::Unknown
        },
        memory_kib,
        max_memory_kib: memory_kib,
        vcpus_online: vcpus,
        vcpus_max: vcpus,
        cpu_time_ns,
    })
}

/// The record of a domain just introduced, before xl lists it: paused, as xl create and xl
/// restore leave it until they finish.
pub fn introduced_info(domid: u32, uuid: [u8; 16], memory_kib: u64, vcpus: u32) -> DomainInfo {
    DomainInfo {
        uuid,
        domid,
        running: false,
        blocked: false,
        paused: true,
        shutdown: false,
        dying: false,
        shutdown_reason: ShutdownReason::Unknown,
        memory_kib,
        max_memory_kib: memory_kib,
        vcpus_online: vcpus,
        vcpus_max: vcpus,
        cpu_time_ns: 0,
    }
}

/// Reads one row (see the module doc); `uuids` for `xl list -v`.
pub fn parse_row(line: &str, uuids: bool) -> Option<Row> {
    let words = words(line);
    let count = if uuids { VERBOSE_FIELDS } else { PLAIN_FIELDS };
    let last_start = words.len().checked_sub(count)?;
    // Without -v the fields end the line; with it, other columns may follow the UUID.
    let first_start = if uuids { 0 } else { last_start };
    (first_start..=last_start).rev().find_map(|start| {
        let info = fields(&words[start..start + count], uuids)?;
        let name = line[..words[start].0].trim_end();
        let name = (!name.is_empty() && name != "(null)").then(|| name.to_string());
        Some(Row { info, name })
    })
}

/// Reads a whole `xl list` (`uuids`: `xl list -v`). The first non-blank line must be xl's
/// header (`Name ... ID`), with a UUID column when `uuids`; lines that are not rows are kept
/// in [`Listing::unread`].
pub fn parse_list(text: &str, uuids: bool) -> Result<Listing, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let header = lines.next().unwrap_or("");
    let columns = words(header);
    let named = columns.first().map(|(_, word)| *word) == Some("Name")
        && columns.iter().any(|(_, word)| *word == "ID");
    if !named {
        return Err(format!(
            "unexpected header {:?}",
            header.chars().take(80).collect::<String>()
        ));
    }
    if uuids && !columns.iter().any(|(_, word)| *word == "UUID") {
        return Err("no UUID column".to_string());
    }
    let mut listing = Listing::default();
    for line in lines {
        match parse_row(line, uuids) {
            Some(row) => listing.rows.push(row),
            None => listing.unread.push(line.chars().take(200).collect()),
        }
    }
    Ok(listing)
}

/// Reads `xl list -l`'s JSON into each domain's UUID and name, by domid. Entries without a
/// domid, a UUID or a name are left out.
pub fn parse_long(text: &str) -> Result<HashMap<u32, (Uuid, String)>, String> {
    let document =
        json::parse_value(text.trim().as_bytes()).map_err(|error| format!("not JSON ({error})"))?;
    let entries = document
        .as_array()
        .ok_or_else(|| "not a JSON array".to_string())?;
    let mut out = HashMap::new();
    for entry in entries {
        let domid = entry
            .get("domid")
            .and_then(JsonValue::as_u64)
            .and_then(|id| u32::try_from(id).ok());
        let c_info = entry.get("config").and_then(|config| config.get("c_info"));
        let uuid = c_info.map(|c| c.str_of("uuid")).and_then(xl_uuid);
        let name = c_info.map(|c| c.str_of("name")).unwrap_or("");
        if let (Some(domid), Some(uuid), false) = (domid, uuid, name.is_empty()) {
            out.insert(domid, (uuid, name.to_string()));
        }
    }
    Ok(out)
}

/// The rows of `xl list` given the UUIDs (and names, which `-l` prints exactly) of
/// `xl list -l`: rows whose domid `-l` does not know are left out, except dom0.
pub fn with_long(listing: Listing, long: &HashMap<u32, (Uuid, String)>) -> Vec<Row> {
    listing
        .rows
        .into_iter()
        .filter_map(|mut row| {
            if row.info.domid == 0 {
                return Some(row);
            }
            let (uuid, name) = long.get(&row.info.domid)?;
            row.info.uuid = *uuid.as_bytes();
            row.name = Some(name.clone());
            Some(row)
        })
        .collect()
}

/// Reads `xl info`. `xen_major` and `xen_minor` are required; a missing `xen_extra` is empty,
/// missing counts are 0 and a missing host is empty.
pub fn parse_info(text: &str) -> Result<XlInfo, String> {
    let mut values: HashMap<&str, &str> = HashMap::new();
    for line in text.lines() {
        if let Some((key, value)) = line.split_once(':') {
            values.entry(key.trim()).or_insert(value.trim());
        }
    }
    let number = |key: &str| -> Result<u64, String> {
        values
            .get(key)
            .ok_or_else(|| format!("no {key}"))?
            .parse()
            .map_err(|_| format!("{key} is not a number"))
    };
    let small = |key: &str| -> Result<u32, String> {
        u32::try_from(number(key)?).map_err(|_| format!("{key} is too big"))
    };
    let text_of = |key: &str, max: usize| -> String {
        values
            .get(key)
            .map(|value| {
                value
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(max)
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(XlInfo {
        major: small("xen_major")?,
        minor: small("xen_minor")?,
        extra: text_of("xen_extra", XL_EXTRA_MAX),
        cpus: small("nr_cpus").unwrap_or(0),
        memory_mib: number("total_memory").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `xl list -v` on Xen 4.17 with g1 suspended in place (Debian 12, under QEMU).
    static LIST_VERBOSE: &str = "\
Name                                        ID   Mem VCPUs\tState\tTime(s)   UUID                            Reason-Code\tSecurity Label
Domain-0                                     0   768     1     r-----      38.1 00000000-0000-0000-0000-000000000000        -                -
g1                                           1   128     1     ---ss-      12.3 0e7d2ed6-f153-11f1-bef4-7b965ee376f5        2                -
";

    /// `xl list` on Xen 4.20 (Debian 13, under QEMU).
    static LIST_PLAIN: &str = "\
Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0   768     1     r-----      27.2
g1                                           1   128     1     r-----       2.4
";

    /// `xl list -l` on Xen 4.17, cut to the fields read (dom0 has no UUID in it).
    static LIST_LONG: &str = r#"[
    {
        "domid": 0,
        "config": { "c_info": { "type": "pv", "name": "Domain-0" } }
    },
    {
        "domid": 1,
        "config": {
            "c_info": {
                "type": "pv",
                "name": "g1",
                "domid": 4294967295,
                "uuid": "0e7d2ed6-f153-11f1-bef4-7b965ee376f5",
                "run_hotplug_scripts": "True"
            },
            "b_info": { "max_vcpus": 1, "max_memkb": 131072 }
        }
    }
]
"#;

    /// `xl info` on Xen 4.20, the lines read and a few around them.
    static INFO: &str = "\
host                   : xenplug-dom0
release                : 6.12.117+deb13-amd64
nr_cpus                : 2
total_memory           : 2047
free_memory            : 1256
xen_major              : 4
xen_minor              : 20
xen_extra              : .5-pre
xen_version            : 4.20.5-pre
xen_commandline        : console=com1 com1=115200,8n1 dom0_mem=768M,max:768M
";

    #[test]
    fn a_verbose_listing_gives_uuids_states_and_figures() {
        let listing = parse_list(LIST_VERBOSE, true).unwrap();
        assert!(listing.unread.is_empty(), "{:?}", listing.unread);
        let [dom0, g1] = listing.rows.as_slice() else {
            panic!("{listing:?}")
        };
        assert_eq!(dom0.info.domid, 0);
        assert!(dom0.info.running);
        assert_eq!(dom0.name.as_deref(), Some("Domain-0"));
        assert_eq!(g1.name.as_deref(), Some("g1"));
        assert_eq!(
            Uuid::from_bytes(g1.info.uuid).to_string(),
            "0e7d2ed6-f153-11f1-bef4-7b965ee376f5"
        );
        assert_eq!(
            (g1.info.domid, g1.info.memory_kib, g1.info.vcpus_online),
            (1, 131_072, 1)
        );
        assert!(g1.info.shutdown && !g1.info.running && !g1.info.paused && !g1.info.dying);
        assert_eq!(g1.info.shutdown_reason, ShutdownReason::Suspend);
        assert_eq!(g1.info.cpu_time_ns, 12_300_000_000);
    }

    #[test]
    fn names_with_spaces_long_names_unnamed_domains_and_extra_columns() {
        let uuid = "0e7d2ed6-f153-11f1-bef4-7b965ee376f5";
        let row = parse_row(
            &format!("web server 2   3   512     2     --p---       0.0 {uuid}        -      - privileged"),
            true,
        )
        .unwrap();
        assert_eq!(row.name.as_deref(), Some("web server 2"));
        assert_eq!(row.info.domid, 3);
        assert!(row.info.paused);
        let long = "n".repeat(50);
        let row = parse_row(
            &format!("{long} 12   64     1     -b----  1.5 {uuid} - -"),
            true,
        )
        .unwrap();
        assert_eq!(row.name.as_deref(), Some(long.as_str()));
        assert!(row.info.blocked);
        for unnamed in ["(null)", ""] {
            let row = parse_row(
                &format!("{unnamed:<40}     5     0     0     --p---  0.0 {uuid} - -"),
                true,
            )
            .unwrap();
            assert_eq!(row.name, None);
            assert_eq!(row.info.domid, 5);
        }
        let dying = parse_row(&format!("g 7 0 1 -----d 0.0 {uuid} - -"), true).unwrap();
        assert!(dying.info.dying);
        let crashed = parse_row(&format!("g 7 0 1 ---sc- 0.0 {uuid} 3 -"), true).unwrap();
        assert_eq!(crashed.info.shutdown_reason, ShutdownReason::Crash);
    }

    #[test]
    fn rows_that_do_not_read_are_kept_aside() {
        let uuid = "0e7d2ed6-f153-11f1-bef4-7b965ee376f5";
        for line in [
            "garbage".to_string(),
            format!("g 7 0 1 rx---- 0.0 {uuid}"),
            "g 7 0 1 r----- 0.0 not-a-uuid".to_string(),
            format!("g -7 0 1 r----- 0.0 {uuid}"),
            format!("g 7 0 1 r----- .5 {uuid}"),
        ] {
            assert_eq!(parse_row(&line, true), None, "{line}");
        }
        let listing = parse_list(&format!("{LIST_VERBOSE}oops\n"), true).unwrap();
        assert_eq!(listing.rows.len(), 2);
        assert_eq!(listing.unread, ["oops"]);
        assert!(parse_list("", true).is_err());
        assert!(parse_list("usage: xl list", true).is_err());
        assert_eq!(parse_list(LIST_PLAIN, true).unwrap_err(), "no UUID column");
    }

    #[test]
    fn the_fallback_joins_xl_list_and_xl_list_l() {
        let listing = parse_list(LIST_PLAIN, false).unwrap();
        assert_eq!(listing.rows.len(), 2);
        assert_eq!(listing.rows[1].info.uuid, [0; 16]);
        let long = parse_long(LIST_LONG).unwrap();
        assert_eq!(long.len(), 1);
        let rows = with_long(listing, &long);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            Uuid::from_bytes(rows[1].info.uuid).to_string(),
            "0e7d2ed6-f153-11f1-bef4-7b965ee376f5"
        );
        assert_eq!(rows[1].name.as_deref(), Some("g1"));
        // A domain -l does not know yet (being built) is left out.
        let rows = with_long(parse_list(LIST_PLAIN, false).unwrap(), &HashMap::new());
        assert_eq!(rows.len(), 1);
        assert!(parse_long("{}").is_err());
        assert!(parse_long("[").is_err());
        assert!(parse_long("[1, {\"domid\": -1}]").unwrap().is_empty());
    }

    #[test]
    fn xl_info_gives_version_cpus_and_memory() {
        let info = parse_info(INFO).unwrap();
        assert_eq!(info.version(), "4.20.5-pre");
        assert_eq!((info.major, info.minor), (4, 20));
        assert_eq!((info.cpus, info.memory_mib), (2, 2047));
        assert_eq!(parse_info("xen_major : 4\n").unwrap_err(), "no xen_minor");
        assert_eq!(
            parse_info("xen_major : four\nxen_minor : 1\n").unwrap_err(),
            "xen_major is not a number"
        );
        let bare = parse_info("xen_major:4\nxen_minor:2\n").unwrap();
        assert_eq!(bare.version(), "4.2");
    }

    #[test]
    fn every_prefix_and_garbage_read_without_panic() {
        for text in [LIST_VERBOSE, LIST_PLAIN, LIST_LONG, INFO] {
            for end in 0..=text.len() {
                if text.is_char_boundary(end) {
                    let _ = parse_list(&text[..end], true);
                    let _ = parse_list(&text[..end], false);
                    let _ = parse_long(&text[..end]);
                    let _ = parse_info(&text[..end]);
                }
            }
        }
        let alphabet = "Name ID UUID rbps-d.0123456789abcdef:\n\t(null)";
        let chars: Vec<char> = alphabet.chars().collect();
        let mut seed = 11u32;
        for _ in 0..500 {
            let text: String = (0..96)
                .map(|_| {
                    seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    chars[(seed >> 16) as usize % chars.len()]
                })
                .collect();
            let _ = parse_list(&text, true);
            let _ = parse_info(&text);
        }
    }
}
