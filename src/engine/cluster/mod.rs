//! Engine layer: the view of several trackers in one etcd cluster. State only: no I/O, no
//! clock (time is passed in), never panics on what etcd holds.
//!
//! - [`publish`]: what one tracker writes into etcd and when (its site's keys on its lease,
//!   its journal's events, retention, the claim on its site, errors and backoff);
//! - [`view`]: what a console makes of every site's keys: each site's tree, the sites gone,
//!   and one merged event feed in which a VM moving between sites is one `vm-migrated`.
//!
//! # Layout
//!
//! Every key is under a prefix (`--etcd-prefix`, default `/xenplug`); `SITE` is a tracker's
//! `--site`; values are JSON in the read API's schema ([`crate::track::api`]):
//!
//! ```text
//! PREFIX/sites/SITE/tracker                   lease  {"owner","api":[URL..],"networks":[{"label","provider"}..],
//!                                                     "lease","ttl","since"}
//! PREFIX/sites/SITE/hypervisors/<host uuid>   lease  H without "vms"
//! PREFIX/sites/SITE/vms/<vm uuid>             lease  V, with "hypervisor" when placed
//! PREFIX/sites/SITE/tenants/<tenant>/<vm uuid> lease V as that tenant sees it (no placement)
//! PREFIX/events/SITE/<seq, 20 digits>         -      E, the journal's event `seq`
//! PREFIX/heads/SITE                           -      {"first_seq","last_seq","owner","time"}
//! ```
//!
//! The keys marked `lease` are attached to the lease the tracker keeps alive: when it stops
//! (or loses etcd for longer than its TTL) etcd deletes them, and its site leaves every
//! console's view. Events and heads outlive it: `heads` lists every site that ever published
//! (a site with a head but no `tracker` key is gone), and a site's newest events stay for
//! whoever follows them.

pub mod publish;
pub mod view;

use crate::repo::is_valid_name;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Default key prefix (`--etcd-prefix`).
pub const ETCD_DEFAULT_PREFIX: &str = "/xenplug";
/// Longest prefix accepted.
const ETCD_MAX_PREFIX: usize = 128;
/// Digits of an event key's sequence number: enough for every u64, so keys sort as numbers.
const EVENT_KEY_DIGITS: usize = 20;

/// One key of the layout, read back.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// `PREFIX/sites/SITE/tracker`.
    Tracker(String),
    /// `PREFIX/sites/SITE/hypervisors/<uuid>`.
    Hypervisor(String, Uuid),
    /// `PREFIX/sites/SITE/vms/<uuid>`.
    Vm(String, Uuid),
    /// `PREFIX/sites/SITE/tenants/<tenant>/<uuid>`.
    Tenant(String, String, Uuid),
    /// `PREFIX/events/SITE/<seq>`.
    Event(String, u64),
    /// `PREFIX/heads/SITE`.
    Head(String),
}

impl Key {
    /// The site the key belongs to.
    pub fn site(&self) -> &str {
        match self {
            Key::Tracker(site)
            | Key::Hypervisor(site, _)
            | Key::Vm(site, _)
            | Key::Tenant(site, _, _)
            | Key::Event(site, _)
            | Key::Head(site) => site,
        }
    }
}

/// Where the keys live: the prefix, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    /// A layout under `prefix`: `/`, then at most 128 of `A-Z a-z 0-9 _ - . /`, no empty
    /// segment; a trailing `/` is dropped.
    pub fn new(prefix: &str) -> Result<Layout, String> {
        let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
        let valid = trimmed.starts_with('/')
            && trimmed.len() <= ETCD_MAX_PREFIX
            && trimmed.split('/').skip(1).all(|segment| {
                !segment.is_empty()
                    && segment
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            });
        if !valid {
            return Err(format!(
                "--etcd-prefix {prefix:?}: expected /NAME[/NAME...] of A-Z a-z 0-9 _ - ., at most \
                 {ETCD_MAX_PREFIX} characters"
            ));
        }
        Ok(Layout {
            prefix: trimmed.to_string(),
        })
    }

    /// The prefix, without a trailing `/`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `PREFIX/`: every key of the layout.
    pub fn everything(&self) -> String {
        format!("{}/", self.prefix)
    }

    /// `PREFIX/sites/`: every site's live keys.
    pub fn sites(&self) -> String {
        format!("{}/sites/", self.prefix)
    }

    /// `PREFIX/sites/SITE/`.
    pub fn site(&self, site: &str) -> String {
        format!("{}/sites/{site}/", self.prefix)
    }

    /// `PREFIX/sites/SITE/tracker`.
    pub fn tracker(&self, site: &str) -> String {
        format!("{}/sites/{site}/tracker", self.prefix)
    }

    /// `PREFIX/sites/SITE/hypervisors/<uuid>`.
    pub fn hypervisor(&self, site: &str, host: &Uuid) -> String {
        format!("{}/sites/{site}/hypervisors/{host}", self.prefix)
    }

    /// `PREFIX/sites/SITE/vms/<uuid>`.
    pub fn vm(&self, site: &str, vm: &Uuid) -> String {
        format!("{}/sites/{site}/vms/{vm}", self.prefix)
    }

    /// `PREFIX/sites/SITE/tenants/<tenant>/<uuid>`.
    pub fn tenant(&self, site: &str, tenant: &str, vm: &Uuid) -> String {
        format!("{}/sites/{site}/tenants/{tenant}/{vm}", self.prefix)
    }

    /// `PREFIX/events/SITE/`.
    pub fn events(&self, site: &str) -> String {
        format!("{}/events/{site}/", self.prefix)
    }

    /// `PREFIX/events/SITE/<seq>`, the sequence number written with 20 digits.
    pub fn event(&self, site: &str, seq: u64) -> String {
        format!(
            "{}/events/{site}/{seq:0width$}",
            self.prefix,
            width = EVENT_KEY_DIGITS
        )
    }

    /// `PREFIX/heads/`.
    pub fn heads(&self) -> String {
        format!("{}/heads/", self.prefix)
    }

    /// `PREFIX/heads/SITE`.
    pub fn head(&self, site: &str) -> String {
        format!("{}/heads/{site}", self.prefix)
    }

    /// What `key` is, or `None` for a key that is not of the layout (written by someone else,
    /// or malformed).
    pub fn parse(&self, key: &[u8]) -> Option<Key> {
        let key = core::str::from_utf8(key).ok()?;
        let rest = key.strip_prefix(&self.prefix)?.strip_prefix('/')?;
        let parts: Vec<&str> = rest.split('/').collect();
        let site = |name: &str| is_valid_name(name).then(|| name.to_string());
        let uuid = |text: &str| {
            Uuid::try_parse(text)
                .ok()
                .filter(|id| id.hyphenated().to_string() == text)
        };
        match parts.as_slice() {
            ["sites", name, "tracker"] => Some(Key::Tracker(site(name)?)),
            ["sites", name, "hypervisors", id] => Some(Key::Hypervisor(site(name)?, uuid(id)?)),
            ["sites", name, "vms", id] => Some(Key::Vm(site(name)?, uuid(id)?)),
            ["sites", name, "tenants", tenant, id] => Some(Key::Tenant(
                site(name)?,
                is_valid_name(tenant).then(|| tenant.to_string())?,
                uuid(id)?,
            )),
            ["events", name, seq] => {
                let digits =
                    seq.len() == EVENT_KEY_DIGITS && seq.bytes().all(|b| b.is_ascii_digit());
                Some(Key::Event(
                    site(name)?,
                    digits.then(|| seq.parse().ok()).flatten()?,
                ))
            }
            ["heads", name] => Some(Key::Head(site(name)?)),
            _ => None,
        }
    }
}

/// The state of a connection to etcd as its user sees it, for logs and retries: every
/// failure is told once when the kind of trouble changes (not once per attempt), its end once,
/// and the next attempt waits longer after each failure in a row.
#[derive(Debug, Clone)]
pub struct Link<K> {
    /// The trouble now and since when, `None` while things work.
    down: Option<(K, Instant)>,
    /// Failures in a row.
    failures: u32,
    min: Duration,
    max: Duration,
    /// State of the jitter's xorshift.
    jitter: u64,
}

/// What a [`Link`] says to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report<K> {
    /// The first failure after things worked (or ever).
    Down(K),
    /// Still failing, for another reason now.
    Changed {
        /// The trouble before.
        from: K,
        /// The trouble now.
        to: K,
    },
    /// Working again after failing for this long.
    Up(Duration),
}

impl<K: Copy + PartialEq> Link<K> {
    /// A link retried after `min`, doubling up to `max`, with a jitter of a quarter either way
    /// drawn from `seed`.
    pub fn new(min: Duration, max: Duration, seed: u64) -> Link<K> {
        Link {
            down: None,
            failures: 0,
            min,
            max: max.max(min),
            jitter: seed | 1,
        }
    }

    /// Whether the last attempt failed.
    pub fn is_down(&self) -> bool {
        self.down.is_some()
    }

    /// A failure of kind `kind` at `now`: what to log (only when the trouble changed) and when
    /// to try again.
    pub fn on_error(&mut self, now: Instant, kind: K) -> (Option<Report<K>>, Instant) {
        let report = match self.down {
            None => Some(Report::Down(kind)),
            Some((from, _)) if from != kind => Some(Report::Changed { from, to: kind }),
            Some(_) => None,
        };
        let since = self.down.map_or(now, |(_, since)| since);
        self.down = Some((kind, since));
        self.failures = self.failures.saturating_add(1);
        let doubled = self
            .min
            .saturating_mul(1u32 << self.failures.saturating_sub(1).min(16));
        let delay = doubled.min(self.max);
        // xorshift64: a quarter of the delay either way, so trackers do not retry in step.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let quarter = delay / 4;
        let spread = quarter.as_millis() as u64 * 2 + 1;
        let offset = Duration::from_millis(self.jitter % spread);
        let delay = delay.saturating_sub(quarter).saturating_add(offset);
        (report, super::later(now, delay))
    }

    /// A success at `now`: `Up` once when it ends a failure.
    pub fn on_success(&mut self, now: Instant) -> Option<Report<K>> {
        self.failures = 0;
        self.down
            .take()
            .map(|(_, since)| Report::Up(now.saturating_duration_since(since)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "a1a1a1a1-0000-4000-8000-00000000000a";

    #[test]
    fn prefixes_are_checked() {
        assert_eq!(Layout::new("/xenplug/").unwrap().prefix(), "/xenplug");
        assert_eq!(Layout::new("/a/b.c").unwrap().prefix(), "/a/b.c");
        for bad in [
            "",
            "/",
            "xenplug",
            "/a//b",
            "/a b",
            "/ü",
            &format!("/{}", "a".repeat(200)),
        ] {
            assert!(Layout::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_round_trip() {
        let layout = Layout::new(ETCD_DEFAULT_PREFIX).unwrap();
        let host = Uuid::parse_str(HOST).unwrap();
        let cases = [
            (layout.tracker("paris"), Key::Tracker("paris".into())),
            (
                layout.hypervisor("paris", &host),
                Key::Hypervisor("paris".into(), host),
            ),
            (layout.vm("paris", &host), Key::Vm("paris".into(), host)),
            (
                layout.tenant("paris", "acme", &host),
                Key::Tenant("paris".into(), "acme".into(), host),
            ),
            (layout.event("paris", 42), Key::Event("paris".into(), 42)),
            (layout.head("paris"), Key::Head("paris".into())),
        ];
        for (text, key) in cases {
            assert!(text.starts_with("/xenplug/"), "{text}");
            assert_eq!(layout.parse(text.as_bytes()), Some(key), "{text}");
        }
        assert_eq!(
            layout.event("paris", 42),
            "/xenplug/events/paris/00000000000000000042"
        );
        assert!(
            layout.event("a", 9) < layout.event("a", 10),
            "keys sort as numbers"
        );
        assert!(layout.tracker("a").starts_with(&layout.site("a")));
    }

    #[test]
    fn a_link_reports_changes_once_and_backs_off() {
        let start = Instant::now();
        let mut link = Link::new(Duration::from_millis(400), Duration::from_secs(4), 7);
        let (report, first) = link.on_error(start, 'u');
        assert_eq!(report, Some(Report::Down('u')));
        let wait = first - start;
        assert!(wait >= Duration::from_millis(300) && wait <= Duration::from_millis(500));
        let (report, second) = link.on_error(start, 'u');
        assert_eq!(report, None, "the same trouble again: nothing new to say");
        assert!(
            second - start >= Duration::from_millis(600),
            "{:?}",
            second - start
        );
        let (report, _) = link.on_error(start, 'a');
        assert_eq!(report, Some(Report::Changed { from: 'u', to: 'a' }));
        for _ in 0..40 {
            let (_, at) = link.on_error(start, 'a');
            assert!(
                at - start <= Duration::from_secs(5),
                "bounded by max and jitter"
            );
        }
        assert!(link.is_down());
        let later = start + Duration::from_secs(9);
        assert_eq!(
            link.on_success(later),
            Some(Report::Up(Duration::from_secs(9)))
        );
        assert_eq!(link.on_success(later), None);
        let (report, again) = link.on_error(later, 'a');
        assert_eq!(report, Some(Report::Down('a')));
        assert!(
            again - later <= Duration::from_millis(500),
            "the backoff starts over"
        );
    }

    #[test]
    fn foreign_keys_are_none() {
        let layout = Layout::new("/x").unwrap();
        for key in [
            &b"/y/sites/a/tracker"[..],
            b"/x/sites/a b/tracker",
            b"/x/sites/a/vms/not-a-uuid",
            b"/x/sites/a/vms/A1A1A1A1-0000-4000-8000-00000000000A",
            b"/x/events/a/42",
            b"/x/events/a/0000000000000000004x",
            b"/x/sites/a/tracker/more",
            b"/x/heads/",
            b"\xff",
            b"/xsites/a/tracker",
        ] {
            assert_eq!(layout.parse(key), None, "{key:?}");
        }
    }
}
