//! Journal lines: the events the tracker journals and their one-line text. Pure: no file I/O,
//! no clock; [`Repository`](super::Repository) appends the lines to its journal file and reads
//! them back.
//!
//! # Line format
//!
//! ```text
//! seq=<n> time=<unix> kind=<wire name> subject=<escaped> [network=<escaped>] [<key>=<escaped>]...
//! ```
//!
//! Tokens are separated by one space (escaped values hold none); the first four keys are fixed
//! and in this order; detail keys follow [`is_valid_name`], are distinct and are none of
//! `seq`, `time`, `kind`, `subject`, `network`.

use crate::consts::REPO_MAX_JOURNAL_LINE;
use crate::files::{escape_value, unescape_value};

use super::record::{is_valid_name, parse_number};

// Journal keys, in line order.
const KEY_SEQ: &str = "seq";
const KEY_TIME: &str = "time";
const KEY_KIND: &str = "kind";
const KEY_SUBJECT: &str = "subject";
const KEY_NETWORK: &str = "network";
const RESERVED_EVENT_KEYS: [&str; 5] = [KEY_SEQ, KEY_TIME, KEY_KIND, KEY_SUBJECT, KEY_NETWORK];

/// Kinds of journal events, with stable wire names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A hypervisor appeared (`hypervisor-added`).
    HypervisorAdded,
    /// A hypervisor left or expired (`hypervisor-removed`).
    HypervisorRemoved,
    /// A hypervisor came back with a new BOOTID (`hypervisor-rebooted`).
    HypervisorRebooted,
    /// A VM appeared (`vm-added`).
    VmAdded,
    /// A VM left (`vm-removed`).
    VmRemoved,
    /// A VM's run state changed (`vm-state-changed`).
    VmStateChanged,
    /// The services a VM's owner exposes changed (`vm-services-changed`).
    VmServicesChanged,
    /// A VM's UUID is now listed by another hypervisor (`vm-migrated`).
    VmMigrated,
    /// A VM no longer runs on a hypervisor we know (`vm-devirtualized`).
    VmDevirtualized,
    /// A de-virtualized VM is listed by a hypervisor again (`vm-revirtualized`).
    VmRevirtualized,
    /// A VM's recorded name changed after its `vm-added` (`vm-renamed`, details `from`, `to`).
    VmRenamed,
    /// A claim was refused, such as a hypervisor advertised in a tenant network
    /// (`spoof-refused`).
    SpoofRefused,
    /// An action relayed or refused, with who asked and how it ended (`action`): details
    /// `identity`, `role`, `source`, `service`, `action`, `arguments` (their names, not their
    /// values), `outcome` (`ok`, `upnp-<code>`, `failed`, `refused-<status>`), `duration_ms`.
    Action,
}

/// Every kind with its wire name.
const EVENT_KINDS: [(EventKind, &str); 13] = [
    (EventKind::HypervisorAdded, "hypervisor-added"),
    (EventKind::HypervisorRemoved, "hypervisor-removed"),
    (EventKind::HypervisorRebooted, "hypervisor-rebooted"),
    (EventKind::VmAdded, "vm-added"),
    (EventKind::VmRemoved, "vm-removed"),
    (EventKind::VmStateChanged, "vm-state-changed"),
    (EventKind::VmServicesChanged, "vm-services-changed"),
    (EventKind::VmMigrated, "vm-migrated"),
    (EventKind::VmDevirtualized, "vm-devirtualized"),
    (EventKind::VmRevirtualized, "vm-revirtualized"),
    (EventKind::VmRenamed, "vm-renamed"),
    (EventKind::SpoofRefused, "spoof-refused"),
    (EventKind::Action, "action"),
];

impl EventKind {
    /// The wire name written in the journal.
    pub fn as_str(self) -> &'static str {
        EVENT_KINDS
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("", |(_, name)| name)
    }

    /// The kind with wire name `name`.
    pub fn from_name(name: &str) -> Option<EventKind> {
        EVENT_KINDS
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }
}

/// An event to append: [`Repository::append`](super::Repository::append) gives it its sequence
/// number and time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventDraft {
    /// What happened.
    pub kind: EventKind,
    /// What it happened to: a host or VM UUID (any string is escaped).
    pub subject: String,
    /// Label of the network it was seen in, if any.
    pub network: Option<String>,
    /// Further facts (`from`, `to`, `state`...): keys follow [`is_valid_name`], are distinct and
    /// are not the line's fixed keys.
    pub details: Vec<(String, String)>,
}

impl EventDraft {
    /// A draft with no network and no details.
    pub fn new(kind: EventKind, subject: impl Into<String>) -> EventDraft {
        EventDraft {
            kind,
            subject: subject.into(),
            network: None,
            details: Vec::new(),
        }
    }

    /// Sets the network label.
    pub fn network(mut self, label: impl Into<String>) -> EventDraft {
        self.network = Some(label.into());
        self
    }

    /// Adds one detail.
    pub fn detail(mut self, key: impl Into<String>, value: impl Into<String>) -> EventDraft {
        self.details.push((key.into(), value.into()));
        self
    }
}

/// One journal event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Sequence number: 1 for the first event, then one more for each (`seq`).
    pub seq: u64,
    /// Unix time it was appended (`time`).
    pub time: u64,
    /// What happened (`kind`).
    pub kind: EventKind,
    /// What it happened to (`subject`).
    pub subject: String,
    /// Network label (`network`).
    pub network: Option<String>,
    /// Further facts, in order.
    pub details: Vec<(String, String)>,
}

/// Checks one detail key of an event, against those before it.
fn check_detail_key(key: &str, earlier: &[(String, String)]) -> Result<(), String> {
    if !is_valid_name(key) || RESERVED_EVENT_KEYS.contains(&key) {
        return Err(format!("detail key {key:?} is not valid"));
    }
    if earlier.iter().any(|(seen, _)| seen == key) {
        return Err(format!("detail key {key} given twice"));
    }
    Ok(())
}

impl Event {
    /// The journal line, newline included; refuses an invalid detail key and a line longer
    /// than [`REPO_MAX_JOURNAL_LINE`].
    pub fn to_line(&self) -> Result<String, String> {
        let mut line = format!(
            "{KEY_SEQ}={} {KEY_TIME}={} {KEY_KIND}={} {KEY_SUBJECT}={}",
            self.seq,
            self.time,
            self.kind.as_str(),
            escape_value(&self.subject)
        );
        if let Some(network) = &self.network {
            line.push_str(&format!(" {KEY_NETWORK}={}", escape_value(network)));
        }
        for (position, (key, value)) in self.details.iter().enumerate() {
            check_detail_key(key, &self.details[..position])?;
            line.push_str(&format!(" {key}={}", escape_value(value)));
        }
        line.push('\n');
        if line.len() > REPO_MAX_JOURNAL_LINE {
            return Err(format!(
                "event line of {} bytes exceeds {REPO_MAX_JOURNAL_LINE}",
                line.len()
            ));
        }
        Ok(line)
    }

    /// Parses one journal line, without its newline.
    pub fn parse_line(line: &str) -> Result<Event, String> {
        let mut tokens = line.split(' ').map(|token| {
            token
                .split_once('=')
                .ok_or_else(|| format!("token {token:?} is not key=value"))
        });
        let mut fixed = |expected: &str| -> Result<&str, String> {
            match tokens.next() {
                Some(Ok((key, value))) if key == expected => Ok(value),
                Some(Err(reason)) => Err(reason),
                _ => Err(format!("{expected}= expected")),
            }
        };
        let seq = parse_number(KEY_SEQ, fixed(KEY_SEQ)?)?;
        let time = parse_number(KEY_TIME, fixed(KEY_TIME)?)?;
        let kind_name = fixed(KEY_KIND)?;
        let kind = EventKind::from_name(kind_name)
            .ok_or_else(|| format!("{KEY_KIND}: unknown {kind_name:?}"))?;
        let subject = unescape_value(fixed(KEY_SUBJECT)?)
            .map_err(|reason| format!("{KEY_SUBJECT}: {reason}"))?;
        let mut network = None;
        let mut details: Vec<(String, String)> = Vec::new();
        for token in tokens {
            let (key, value) = token?;
            let value = unescape_value(value).map_err(|reason| format!("{key}: {reason}"))?;
            if key == KEY_NETWORK && network.is_none() && details.is_empty() {
                network = Some(value);
                continue;
            }
            check_detail_key(key, &details)?;
            details.push((key.to_string(), value));
        }
        Ok(Event {
            seq,
            time,
            kind,
            subject,
            network,
            details,
        })
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Strings an advertiser could send.
    pub(in crate::repo) const HOSTILE: &[&str] = &[
        "",
        " padded ",
        "a=b=c",
        "two\nlines",
        "crlf\r\n# comment=1",
        "nul\0byte",
        "back\\slash\\n",
        "\u{1b}[2J\u{7f}",
        "\u{85}\u{2028}\u{a0}\u{3000}",
        "caf\u{e9} \u{1f600}",
        "seq=99 kind=vm-removed subject=x",
    ];

    static EVENT_LINE: &str = "seq=12 time=1700000000 kind=vm-migrated \
        subject=9a0b0000-0000-4000-8000-000000000003 network=mgmt \
        from=4c4c4544-0000-0000-0000-000000000001 note=a\\x20b=c\\n";

    #[test]
    fn event_line_fixture_round_trips() {
        let event = Event::parse_line(EVENT_LINE).unwrap();
        assert_eq!(event.seq, 12);
        assert_eq!(event.kind, EventKind::VmMigrated);
        assert_eq!(event.network.as_deref(), Some("mgmt"));
        assert_eq!(
            event.details[1],
            ("note".to_string(), "a b=c\n".to_string())
        );
        assert_eq!(event.to_line().unwrap(), format!("{EVENT_LINE}\n"));
        for end in 0..EVENT_LINE.len() {
            let _ = Event::parse_line(&EVENT_LINE[..end]);
        }
        for (kind, name) in EVENT_KINDS {
            assert_eq!(kind.as_str(), name);
            assert_eq!(EventKind::from_name(name), Some(kind));
        }
    }

    #[test]
    fn a_rename_from_no_name_round_trips() {
        static RENAMED: &str = "seq=3 time=1700000001 kind=vm-renamed \
            subject=9a0b0000-0000-4000-8000-000000000003 network=mgmt from= to=g2";
        let event = Event::parse_line(RENAMED).unwrap();
        assert_eq!(event.kind, EventKind::VmRenamed);
        assert_eq!(
            event.details,
            [
                ("from".to_string(), String::new()),
                ("to".to_string(), "g2".to_string())
            ]
        );
        assert_eq!(event.to_line().unwrap(), format!("{RENAMED}\n"));
        for end in 0..RENAMED.len() {
            let _ = Event::parse_line(&RENAMED[..end]);
        }
    }

    #[test]
    fn bad_event_lines_are_refused() {
        for line in [
            "",
            "seq=1 time=2 kind=vm-added",
            "time=2 seq=1 kind=vm-added subject=x",
            "seq=1 time=2 kind=vm-exploded subject=x",
            "seq=-1 time=2 kind=vm-added subject=x",
            "seq=1 time=2 kind=vm-added subject=x  a=1",
            "seq=1 time=2 kind=vm-added subject=x seq=3",
            "seq=1 time=2 kind=vm-added subject=x a=1 a=2",
            "seq=1 time=2 kind=vm-added subject=x a=1 network=n",
            "seq=1 time=2 kind=vm-added subject=x bare",
            "seq=1 time=2 kind=vm-added subject=x\\q",
        ] {
            assert!(Event::parse_line(line).is_err(), "{line:?}");
        }
    }

    #[test]
    fn hostile_event_strings_round_trip() {
        for (n, value) in HOSTILE.iter().enumerate() {
            let event = Event {
                seq: n as u64 + 1,
                time: 5,
                kind: EventKind::SpoofRefused,
                subject: value.to_string(),
                network: Some(value.to_string()),
                details: vec![("claim".into(), value.to_string())],
            };
            let line = event.to_line().unwrap();
            assert_eq!(line.matches('\n').count(), 1);
            assert_eq!(Event::parse_line(line.trim_end_matches('\n')), Ok(event));
        }
    }
}
