//! The console's etcd source (`console tree | call | watch | serve --etcd URL`): every site's
//! tree from etcd's keys, merged as several trackers' trees are ([`super::merge`]), and one
//! event feed followed through a watch ([`crate::engine::cluster::view`] decides what it
//! says). Net layer: the requests are here, the decisions are the engine's.
//!
//! Reads come from etcd with the console's etcd credentials (`--etcd-user`); etcd holds the
//! provider's view, so give consoles of tenants no etcd access. Calls never go to etcd: each
//! goes to the read API of the tracker of the site that places the target (the URL its
//! tracker key publishes), with the console's own token (`--token-file`), so the tracker
//! decides what that identity may do exactly as when asked directly.
//!
//! The tree document is the merged one (`sources` names each live site as `site NAME`) with
//! `"sites":[{"site","live","api":[..],"last_seq","hypervisors","vms"}]` added: a site whose
//! tracker stopped (its lease expired) is listed with `"live":false` and nothing of it is in
//! the tree.

use super::{merge, Api, Document, Failure, Tracker};
use crate::engine::cluster::view::{ClusterView, SiteSummary, CLUSTER_DEFAULT_HOLD};
use crate::engine::cluster::Layout;
use crate::net::etcd::{Client, EtcdError, Watch};
use crate::wire::etcd::{prefix_end, ErrorKind};
use crate::wire::json::{parse_value, JsonValue, JsonWriter};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// The `--etcd` options of a console command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `--etcd URL[,URL...]`.
    pub urls: String,
    /// `--etcd-prefix`.
    pub prefix: String,
    /// `--etcd-user`.
    pub user: Option<String>,
    /// `--etcd-password-file`.
    pub password_file: Option<std::path::PathBuf>,
}

/// The cluster as the console reads it.
pub struct Cluster {
    client: Client,
    view: ClusterView,
    /// The token calls to the trackers carry.
    token: Option<Arc<str>>,
}

fn failed(error: EtcdError) -> Failure {
    Failure::failed(format!("etcd: {error}"))
}

impl Cluster {
    /// The cluster `options` name, not read yet.
    pub fn open(options: &EtcdOptions, token: Option<&str>) -> Result<Cluster, Failure> {
        let endpoints = crate::net::etcd::parse_endpoints(&options.urls).map_err(Failure::usage)?;
        let credentials = crate::net::etcd::credentials(
            options.user.as_deref(),
            options.password_file.as_deref().map(Path::new),
        )
        .map_err(Failure::usage)?;
        let layout = Layout::new(&options.prefix).map_err(Failure::usage)?;
        Ok(Cluster {
            client: Client::new(endpoints, credentials),
            view: ClusterView::new(layout, CLUSTER_DEFAULT_HOLD),
            token: token.map(Arc::from),
        })
    }

    /// The view as read so far.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// Reads every site's keys and heads (at one revision) into the view.
    pub async fn load(&mut self) -> Result<(), EtcdError> {
        let layout = self.view.layout().clone();
        let (mut kvs, revision) = self
            .client
            .range_prefix(layout.sites().as_bytes(), false, 0)
            .await?;
        let (heads, _) = self
            .client
            .range_prefix(layout.heads().as_bytes(), false, revision)
            .await?;
        kvs.extend(heads);
        self.view.load(&kvs, revision);
        Ok(())
    }

    /// [`Cluster::load`], blocking, as a console command's failure.
    pub fn load_blocking(&mut self) -> Result<(), Failure> {
        smol::block_on(self.load()).map_err(failed)
    }

    /// The live sites, in name order, as the APIs calls go to (`site NAME`, the first URL its
    /// tracker published that is not loopback, else the first).
    pub fn apis(&self) -> Vec<(SiteSummary, Option<Api>)> {
        self.view
            .sites()
            .into_iter()
            .filter(|site| site.live)
            .map(|site| {
                let url = site
                    .api
                    .iter()
                    .find(|url| !url.starts_with("http://127."))
                    .or_else(|| site.api.first());
                let api = url
                    .and_then(|url| Tracker::parse(url).ok())
                    .map(|tracker| Api {
                        name: format!("site {}", site.name),
                        tracker: Tracker {
                            address: tracker.address,
                            token: self.token.clone(),
                        },
                    });
                (site, api)
            })
            .collect()
    }

    /// Each live site's tree, in [`Cluster::apis`] order.
    pub fn trees(&self) -> Result<Vec<Document>, Failure> {
        self.apis()
            .iter()
            .map(|(site, _)| {
                let bytes = self.view.site_tree(&site.name).unwrap_or_default();
                let value = parse_value(&bytes).map_err(|error| {
                    Failure::failed(format!("site {}: tree not JSON ({error})", site.name))
                })?;
                Ok(Document { bytes, value })
            })
            .collect()
    }

    /// The merged tree of every live site, with `sites` (see the [module](self)).
    pub fn merged(&self) -> Result<Document, Failure> {
        let trees = self.trees()?;
        let names: Vec<String> = self
            .apis()
            .iter()
            .map(|(site, _)| format!("site {}", site.name))
            .collect();
        let named: Vec<merge::Named<'_>> = names
            .iter()
            .zip(&trees)
            .map(|(api, document)| merge::Named {
                api,
                tree: &document.value,
            })
            .collect();
        let merged = match named.len() {
            0 => b"{\"hypervisors\":[],\"devirtualized\":[],\"undescribed\":[],\"last_seq\":0}"
                .to_vec(),
            _ => merge::merge(&named),
        };
        let value = parse_value(&merged)
            .map_err(|error| Failure::failed(format!("the merged tree is not JSON ({error})")))?;
        let mut json = JsonWriter::new();
        json.begin_object();
        for (name, item) in value.as_object().unwrap_or(&[]) {
            if name != "sites" {
                json.key(name).any(item);
            }
        }
        json.key("sites").begin_array();
        for site in self.view.sites() {
            json.begin_object();
            json.key("site").string(&site.name);
            json.key("live").bool(site.live);
            json.key("api").strings(site.api.iter().map(String::as_str));
            json.key("last_seq").number(site.last_seq);
            json.key("hypervisors").number(site.hypervisors as u64);
            json.key("vms").number(site.vms as u64);
            json.end_object();
        }
        json.end_array();
        json.end_object();
        let bytes = json
            .finish()
            .map_err(|error| Failure::failed(format!("the merged tree: {error}")))?;
        let value = parse_value(&bytes)
            .map_err(|error| Failure::failed(format!("the merged tree is not JSON ({error})")))?;
        Ok(Document { bytes, value })
    }

    /// Opens a watch of every key from the revision after the view's.
    async fn watch(&self) -> Result<Watch, EtcdError> {
        let everything = self.view.layout().everything().into_bytes();
        let end = prefix_end(&everything);
        self.client
            .watch(&everything, &end, self.view.revision() + 1)
            .await
    }

    /// Follows the cluster for as long as it can: each change into the view, `on_news` after
    /// each (with the feed's events told meanwhile to read with
    /// [`ClusterView::events_since`]). Returns the error that ended the watch; a compacted
    /// revision reads everything again first (`on_news` is told with `true`).
    pub async fn follow(&mut self, on_news: &mut dyn FnMut(&ClusterView, bool)) -> EtcdError {
        let mut watch = match self.watch().await {
            Ok(watch) => watch,
            Err(error) => return error,
        };
        loop {
            let next = async { Some(watch.next().await) };
            let due = async {
                match self.view.poll_at() {
                    Some(at) => {
                        smol::Timer::at(at).await;
                        None
                    }
                    None => smol::future::pending().await,
                }
            };
            match smol::future::or(next, due).await {
                None => self.view.take_due(Instant::now()),
                Some(Ok(Some(message))) => {
                    if message.canceled {
                        let error = EtcdError {
                            kind: if message.compact_revision != 0 {
                                ErrorKind::Compacted
                            } else {
                                ErrorKind::Other
                            },
                            message: format!(
                                "watch ended by {} (compacted up to {})",
                                watch.member(),
                                message.compact_revision
                            ),
                        };
                        if error.kind == ErrorKind::Compacted {
                            if let Err(error) = self.load().await {
                                return error;
                            }
                            on_news(&self.view, true);
                        }
                        return error;
                    }
                    if message.events.is_empty() {
                        self.view.on_progress(message.revision);
                        continue;
                    }
                    self.view
                        .apply(Instant::now(), crate::net::unix_now(), &message.events);
                    self.view.take_due(Instant::now());
                }
                Some(Ok(None)) => {
                    return EtcdError {
                        kind: ErrorKind::Unreachable,
                        message: format!("{} ended the watch", watch.member()),
                    }
                }
                Some(Err(error)) => return error,
            }
            on_news(&self.view, false);
        }
    }
}

/// One line about a site for the terminal: `site NAME: live, API URL, N hypervisors, M VMs`
/// or `site NAME: gone (its tracker's lease expired)`.
pub fn site_line(site: &SiteSummary) -> String {
    let name = super::printable(&site.name);
    if site.live {
        format!(
            "site {name}: live, API {}, {} hypervisors, {} VMs",
            super::printable(&site.api.join(" ")),
            site.hypervisors,
            site.vms
        )
    } else {
        format!(
            "site {name}: gone (no tracker: its lease expired; last event {})",
            site.last_seq
        )
    }
}

/// The feed's event as a `console watch` line: the watch's own line, then ` site=NAME`.
pub fn event_line(event: &JsonValue) -> String {
    let mut line = super::watch::event_line(event);
    line.push_str(&format!(" site={}", super::printable(event.str_of("site"))));
    line
}
