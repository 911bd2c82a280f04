//! Net layer of the tracker's publication into etcd (`track --etcd`): one task on the
//! tracker's executor that copies the repository and the journal into etcd, as
//! [`crate::engine::cluster::publish`] decides, through [`crate::net::etcd`]. The tracker's
//! own work never waits for it: the task only reads the repository between its requests, and
//! whatever etcd does, the flat files and the journal stay complete, so after an outage the
//! task catches etcd up from them.
//!
//! One session: keep (or get) a lease, claim the site, read what etcd holds of it (its state
//! keys and its head), then publish every quarter of a second: the journal's new events, then the
//! records that changed; keep the lease alive every third of its TTL. Any failure ends the
//! session; the next one starts after a backoff (told once per change of trouble).

use crate::engine::access::View;
use crate::engine::cluster::publish::{
    Change, ClaimPlan, Config, Entry, HeadPlan, Publisher, ETCD_EVENTS_KEPT, ETCD_MAX_TXN_BYTES,
    ETCD_MAX_TXN_OPS,
};
use crate::engine::cluster::{Layout, Link, Report};
use crate::net::etcd::{Client, Credentials, EtcdError};
use crate::net::unix_now;
use crate::repo::Repository;
use crate::wire::etcd::{ErrorKind, Op};
use core::fmt;
use smol::Timer;
use std::collections::hash_map::DefaultHasher;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::net::SocketAddrV4;
use std::path::Path;
use std::time::{Duration, Instant};

/// How often the repository is looked at for something new to publish.
const ETCD_ROUND: Duration = Duration::from_millis(250);
/// Rounds between two comparisons of every record when the journal did not move (a record
/// may change without an event: a run state learnt, `last_seen`).
const ETCD_FULL_EVERY: u32 = 4;
/// First pause after a failure; doubled after each further one.
const ETCD_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// Longest pause between two attempts.
const ETCD_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Event transactions in one round, at most: a long catch-up lets the tracker breathe.
const ETCD_EVENT_TXNS_PER_ROUND: usize = 32;
/// File of the repository keeping who this tracker is to etcd across restarts.
const ETCD_OWNER_FILE: &str = "etcd-owner";
/// Shortest lease TTL accepted (etcd itself grants at least about 2 s).
pub const ETCD_MIN_TTL: u64 = 2;

/// `track --etcd ...`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The members (`--etcd`).
    pub endpoints: Vec<SocketAddrV4>,
    /// `--etcd-user` and its password.
    pub credentials: Option<Credentials>,
    /// `--etcd-prefix`.
    pub layout: Layout,
    /// `--site`.
    pub site: String,
    /// `--etcd-ttl`, seconds.
    pub ttl: u64,
}

/// What the publication reads from the tracker.
pub trait Tracked {
    /// Runs `f` with the repository (briefly: the tracker waits meanwhile).
    fn with_repo<R>(&self, f: impl FnOnce(&Repository) -> R) -> R;
}

/// The trouble a session ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    /// etcd failed or refused.
    Etcd(ErrorKind),
    /// Another tracker holds the site.
    Claimed,
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Etcd(kind) => write!(f, "{kind}"),
            Trouble::Claimed => f.write_str("site held by another tracker"),
        }
    }
}

/// Why a session ended: the trouble and what happened.
struct Ended {
    trouble: Trouble,
    message: String,
}

impl From<EtcdError> for Ended {
    fn from(error: EtcdError) -> Ended {
        Ended {
            trouble: Trouble::Etcd(error.kind),
            message: error.message,
        }
    }
}

/// Who this tracker is to etcd: the UUID kept in the repository, made on first use.
fn owner(root: &Path) -> String {
    let path = root.join(ETCD_OWNER_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        if let Ok(owner) = uuid::Uuid::try_parse(text.trim()) {
            return owner.to_string();
        }
    }
    let owner = crate::state::random_uuid()
        .map(|id| id.to_string())
        .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
    if let Err(error) = crate::files::write_atomic(&path, format!("{owner}\n").as_bytes()) {
        log::warn!(
            "etcd: cannot keep this tracker's identity in {}: {error} (after a restart it \
             waits for its previous lease to expire)",
            path.display()
        );
    }
    owner
}

fn hash_of(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

/// Every entry the repository holds now, with the hash of the record it is written from.
fn desired(repo: &Repository) -> BTreeMap<Entry, u64> {
    let mut entries = BTreeMap::new();
    for (host, record) in repo.hardware() {
        entries.insert(Entry::Hypervisor(*host), hash_of(record));
    }
    for (vm, record) in repo.virtual_machines() {
        let hash = hash_of(record);
        entries.insert(Entry::Vm(*vm), hash);
        if let Some(tenant) = &record.tenant {
            entries.insert(Entry::Tenant(tenant.clone(), *vm), hash);
        }
    }
    entries
}

/// The value of `entry` as the repository holds it now (`None`: gone meanwhile).
fn value_of(repo: &Repository, entry: &Entry) -> Option<Vec<u8>> {
    match entry {
        Entry::Hypervisor(host) => repo.hardware().get(host).map(super::api::hypervisor),
        Entry::Vm(vm) => super::api::vm(repo.virtual_machine(vm), View::Provider),
        Entry::Tenant(tenant, vm) => super::api::vm(repo.virtual_machine(vm), View::Tenant(tenant)),
    }
}

/// Publishes the tracker's view into etcd until the tracker stops. `api` are its read API's
/// provider URLs, `networks` its networks (label, provider).
pub async fn publish<T: Tracked>(
    tracker: T,
    settings: Settings,
    api: Vec<String>,
    networks: Vec<(String, bool)>,
) {
    let root = tracker.with_repo(|repo| repo.root().to_path_buf());
    let owner = owner(&root);
    let client = Client::new(settings.endpoints.clone(), settings.credentials.clone());
    let mut publisher = Publisher::new(
        settings.layout.clone(),
        Config {
            site: settings.site.clone(),
            owner,
            ttl: settings.ttl.max(ETCD_MIN_TTL),
            events_kept: ETCD_EVENTS_KEPT,
            max_ops: ETCD_MAX_TXN_OPS,
            max_bytes: ETCD_MAX_TXN_BYTES,
        },
    );
    let seed = crate::state::random_seed().unwrap_or(u64::from(std::process::id()));
    let mut link: Link<Trouble> = Link::new(ETCD_BACKOFF_MIN, ETCD_BACKOFF_MAX, seed);
    let mut lease: Option<u64> = None;
    log::info!(
        "etcd: publishing site {} under {} to {} (lease TTL {} s)",
        settings.site,
        settings.layout.prefix(),
        settings
            .endpoints
            .iter()
            .map(|e| format!("http://{e}"))
            .collect::<Vec<_>>()
            .join(","),
        publisher.config().ttl
    );
    loop {
        let mut session = Session {
            tracker: &tracker,
            client: &client,
            publisher: &mut publisher,
            lease: &mut lease,
            link: &mut link,
            api: &api,
            networks: &networks,
        };
        let ended = session.run().await;
        publisher.on_lost();
        if ended.trouble == Trouble::Etcd(ErrorKind::LeaseNotFound) {
            lease = None;
        }
        if ended.trouble == Trouble::Etcd(ErrorKind::TooLarge) && !publisher.on_too_large() {
            log::error!(
                "etcd: one operation alone is too large for etcd: {}",
                ended.message
            );
        }
        let (report, retry_at) = link.on_error(Instant::now(), ended.trouble);
        match report {
            Some(Report::Down(Trouble::Claimed))
            | Some(Report::Changed {
                to: Trouble::Claimed,
                ..
            }) => {
                log::error!(
                    "etcd: REFUSED: site {} is held by another tracker ({}); this tracker \
                     publishes nothing until that claim ends (its lease expires), and keeps its \
                     own files meanwhile",
                    settings.site,
                    ended.message
                );
            }
            Some(Report::Down(trouble)) => log::warn!(
                "etcd: {trouble}: {}; the tracker goes on without etcd and catches it up \
                 when it answers again (retrying with backoff; this trouble is logged once)",
                ended.message
            ),
            Some(Report::Changed { from, to }) => {
                log::warn!("etcd: {from}, now {to}: {}", ended.message)
            }
            _ => log::debug!("etcd: {}: {}", ended.trouble, ended.message),
        }
        Timer::at(retry_at).await;
    }
}

/// One session with etcd: from the lease to the first failure.
struct Session<'a, T: Tracked> {
    tracker: &'a T,
    client: &'a Client,
    publisher: &'a mut Publisher,
    lease: &'a mut Option<u64>,
    link: &'a mut Link<Trouble>,
    api: &'a [String],
    networks: &'a [(String, bool)],
}

impl<T: Tracked> Session<'_, T> {
    async fn run(&mut self) -> Ended {
        match self.session().await {
            Ok(never) => match never {},
            Err(ended) => ended,
        }
    }

    /// A lease alive: the one held if etcd still has it, else a new one.
    async fn lease(&mut self) -> Result<u64, Ended> {
        if let Some(id) = *self.lease {
            let kept = self.client.keepalive(id).await?;
            if kept.ttl > 0 {
                return Ok(id);
            }
            log::info!("etcd: lease {id} expired: the site's keys are published again");
        }
        let granted = self.client.grant(self.publisher.config().ttl).await?;
        *self.lease = Some(granted.id);
        Ok(granted.id)
    }

    /// Claims the site on `lease`.
    async fn claim(&mut self, lease: u64) -> Result<(), Ended> {
        let key = self.publisher.tracker_key().into_bytes();
        let mut existing = self.client.get(&key).await?;
        for _ in 0..3 {
            let plan = self.publisher.plan_claim(existing.as_ref(), lease);
            match &plan {
                ClaimPlan::Keep { revision } => {
                    self.publisher.on_claimed(*revision);
                    return Ok(());
                }
                ClaimPlan::Refused { owner, api } => {
                    return Err(Ended {
                        trouble: Trouble::Claimed,
                        message: format!("owner {owner}, API {api}"),
                    })
                }
                ClaimPlan::Create | ClaimPlan::TakeOver { .. } => {}
            }
            let value = self
                .publisher
                .tracker_value(lease, self.api, self.networks, unix_now());
            let (compare, success, failure) = self.publisher.claim_txn(&plan, value, lease);
            let txn = self.client.txn(&compare, &success, &failure).await?;
            if txn.succeeded {
                self.publisher.on_claimed(txn.revision);
                log::info!(
                    "etcd: site {} claimed at revision {} (lease {lease})",
                    self.publisher.config().site,
                    txn.revision
                );
                if let ClaimPlan::TakeOver { old_lease, .. } = plan {
                    // This tracker's previous run: its keys go with its lease, and are
                    // published again from the repository.
                    self.client.revoke(old_lease).await?;
                }
                return Ok(());
            }
            existing = txn
                .ranges
                .into_iter()
                .next()
                .and_then(|kvs| kvs.into_iter().next());
        }
        Err(Ended {
            trouble: Trouble::Claimed,
            message: "the site's tracker key keeps changing".to_string(),
        })
    }

    /// Reads what etcd holds of the site: its state keys and its head.
    async fn load(&mut self) -> Result<(), Ended> {
        let site = self.publisher.config().site.clone();
        let prefix = self.publisher.layout().site(&site).into_bytes();
        let (keys, _) = self.client.range_prefix(&prefix, true, 0).await?;
        self.publisher
            .on_site_keys(keys.iter().map(|kv| kv.key.as_slice()));
        let head_key = self.publisher.layout().head(&site).into_bytes();
        let head = self.client.get(&head_key).await?;
        let journal_last = self.tracker.with_repo(Repository::last_seq);
        match self
            .publisher
            .on_head(head.as_ref().map(|kv| kv.value.as_slice()), journal_last)
        {
            HeadPlan::After(_) => Ok(()),
            HeadPlan::Restart { head } => {
                log::warn!(
                    "etcd: site {site}'s events in etcd go up to {head}, this journal to \
                     {journal_last} (a new repository?): its events are published anew"
                );
                let delete = self.publisher.delete_events();
                self.guarded(vec![delete]).await?;
                self.publisher.on_events_restarted();
                Ok(())
            }
        }
    }

    /// One transaction of `ops`, guarded by the claim. When the guard fails, the tracker key
    /// says why: gone (the lease expired) or another tracker's.
    async fn guarded(&mut self, ops: Vec<Op>) -> Result<(), Ended> {
        let guard: Vec<_> = self.publisher.guard().into_iter().collect();
        let key = self.publisher.tracker_key().into_bytes();
        let txn = self.client.txn(&guard, &ops, &[Op::Get { key }]).await?;
        if txn.succeeded {
            self.publisher.on_txn_ok();
            return Ok(());
        }
        let now = txn
            .ranges
            .into_iter()
            .next()
            .and_then(|kvs| kvs.into_iter().next());
        Err(match now {
            None => Ended {
                trouble: Trouble::Etcd(ErrorKind::LeaseNotFound),
                message: "the site's tracker key is gone: its lease expired".to_string(),
            },
            Some(kv) => Ended {
                trouble: Trouble::Claimed,
                message: format!(
                    "the site's tracker key changed under this tracker: {}",
                    String::from_utf8_lossy(&kv.value)
                ),
            },
        })
    }

    /// Publishes the journal's events etcd lacks (a bounded number of transactions).
    async fn events(&mut self) -> Result<(), Ended> {
        for _ in 0..ETCD_EVENT_TXNS_PER_ROUND {
            let journal_last = self.tracker.with_repo(Repository::last_seq);
            let Some((first, count)) = self.publisher.next_events(journal_last) else {
                return Ok(());
            };
            let events = self.tracker.with_repo(|repo| {
                repo.events_since(first.saturating_sub(1), count)
                    .map(|events| {
                        events
                            .iter()
                            .map(|event| (event.seq, super::api::event(event)))
                            .collect::<Vec<_>>()
                    })
            });
            let events = events.map_err(|error| Ended {
                trouble: Trouble::Etcd(ErrorKind::Other),
                message: format!("reading the journal: {error}"),
            })?;
            let Some(last) = events.last().map(|(seq, _)| *seq) else {
                return Ok(());
            };
            let ops = self.publisher.event_ops(&events, unix_now());
            self.guarded(ops).await?;
            self.publisher.on_events_written(last);
        }
        Ok(())
    }

    /// Publishes the records that changed since the last round, each rendered when its
    /// transaction is made up.
    async fn state(&mut self) -> Result<(), Ended> {
        let wanted = self.tracker.with_repo(desired);
        let changes = self.publisher.diff(&wanted);
        let site = self.publisher.config().site.clone();
        let layout = self.publisher.layout().clone();
        let lease = self.lease.unwrap_or(0);
        let mut ops: Vec<Op> = Vec::new();
        let mut done: Vec<Change> = Vec::new();
        let mut bytes = 0;
        for change in changes {
            let op = self.tracker.with_repo(|repo| {
                let key = change.entry().key(&layout, &site).into_bytes();
                match &change {
                    Change::Put(entry, _) => match value_of(repo, entry) {
                        Some(value) => Op::Put { key, value, lease },
                        None => Op::Delete { key, end: None },
                    },
                    Change::Delete(_) => Op::Delete { key, end: None },
                }
            });
            let size = op.size();
            if !self.publisher.fits(ops.len(), bytes, size) {
                self.guarded(std::mem::take(&mut ops)).await?;
                self.publisher.on_written(&done);
                done.clear();
                bytes = 0;
            }
            bytes += size;
            ops.push(op);
            done.push(change);
        }
        if !ops.is_empty() {
            self.guarded(ops).await?;
            self.publisher.on_written(&done);
        }
        Ok(())
    }

    async fn session(&mut self) -> Result<std::convert::Infallible, Ended> {
        let lease = self.lease().await?;
        self.claim(lease).await?;
        self.load().await?;
        let ttl = Duration::from_secs(self.publisher.config().ttl);
        let client = self.client;
        // The lease is kept alive beside the publication, so a request that hangs (a
        // proposal lost with a leader) does not let it expire.
        smol::future::or(self.rounds(), async {
            Err(keep_alive(client, lease, ttl).await)
        })
        .await
    }

    /// Publishes every [`ETCD_ROUND`] until a failure.
    async fn rounds(&mut self) -> Result<std::convert::Infallible, Ended> {
        let mut last_seq = None;
        let mut rounds = 0u32;
        loop {
            self.events().await?;
            let journal = self.tracker.with_repo(Repository::last_seq);
            if last_seq != Some(journal) || rounds % ETCD_FULL_EVERY == 0 {
                self.state().await?;
                last_seq = Some(journal);
            }
            if let Some(Report::Up(after)) = self.link.on_success(Instant::now()) {
                log::info!(
                    "etcd: publishing again after {} s of trouble: site {} caught up \
                     ({} keys, events to {})",
                    after.as_secs(),
                    self.publisher.config().site,
                    self.publisher.published_len(),
                    self.publisher.events_published().unwrap_or(0)
                );
            }
            rounds = rounds.wrapping_add(1);
            Timer::after(ETCD_ROUND).await;
        }
    }
}

/// Keeps `lease` alive every third of its TTL, each attempt bounded by that third; returns
/// only when etcd says the lease expired. A failed attempt is tried again at the next third
/// (lasting trouble ends the session through the publication's own requests).
async fn keep_alive(client: &Client, lease: u64, ttl: Duration) -> Ended {
    let every = (ttl / 3).max(Duration::from_millis(500));
    loop {
        Timer::after(every).await;
        let attempt = async { Some(client.keepalive(lease).await) };
        let timeout = async {
            Timer::after(every).await;
            None
        };
        match smol::future::or(attempt, timeout).await {
            Some(Ok(kept)) if kept.ttl == 0 => {
                return Ended {
                    trouble: Trouble::Etcd(ErrorKind::LeaseNotFound),
                    message: format!("lease {lease} expired"),
                }
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => log::debug!("etcd: keepalive of lease {lease}: {error}"),
            None => log::debug!("etcd: keepalive of lease {lease}: no answer within {every:?}"),
        }
    }
}
