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
use crate::wire::etcd::{prefix_end, ErrorKind, KeyValue};
use crate::wire::json::{parse_value, JsonValue, JsonWriter};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
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

impl EtcdOptions {
    /// The options as a subcommand's arguments give them.
    pub fn new(
        urls: &str,
        prefix: &str,
        user: Option<&str>,
        password_file: Option<&Path>,
    ) -> EtcdOptions {
        EtcdOptions {
            urls: urls.to_string(),
            prefix: prefix.to_string(),
            user: user.map(str::to_string),
            password_file: password_file.map(Path::to_path_buf),
        }
    }
}

/// The cluster as the console reads it.
pub struct Cluster {
    client: Rc<Client>,
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
            client: Rc::new(Client::new(endpoints, credentials)),
            view: ClusterView::new(layout, CLUSTER_DEFAULT_HOLD),
            token: token.map(Arc::from),
        })
    }

    /// The cluster `options` name, read (a console command's first step).
    pub fn read(options: &EtcdOptions, token: Option<&str>) -> Result<Cluster, Failure> {
        let mut cluster = Cluster::open(options, token)?;
        cluster.load_blocking()?;
        Ok(cluster)
    }

    /// The view as read so far.
    pub fn view(&self) -> &ClusterView {
        &self.view
    }

    /// Reads every site's keys and heads (at one revision) into the view, blocking, as a
    /// console command's failure.
    pub fn load_blocking(&mut self) -> Result<(), Failure> {
        let layout = self.view.layout().clone();
        let (kvs, revision) = smol::block_on(read_all(&self.client, &layout)).map_err(failed)?;
        self.view.load(&kvs, revision);
        Ok(())
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
}

/// Every site's keys and heads, read at one revision.
async fn read_all(client: &Client, layout: &Layout) -> Result<(Vec<KeyValue>, u64), EtcdError> {
    let (mut kvs, revision) = client
        .range_prefix(layout.sites().as_bytes(), false, 0)
        .await?;
    let (heads, _) = client
        .range_prefix(layout.heads().as_bytes(), false, revision)
        .await?;
    kvs.extend(heads);
    Ok((kvs, revision))
}

/// Reads everything again into `cluster`'s view (no borrow is held while waiting).
pub async fn load(cluster: &RefCell<Cluster>) -> Result<(), EtcdError> {
    let (client, layout) = {
        let cluster = cluster.borrow();
        (cluster.client.clone(), cluster.view.layout().clone())
    };
    let (kvs, revision) = read_all(&client, &layout).await?;
    cluster.borrow_mut().view.load(&kvs, revision);
    Ok(())
}

/// Follows `cluster` for as long as it can: each change into its view, then `on_news` (the
/// feed's new events are read with [`ClusterView::events_since`]; `true` after the view was
/// read again because etcd compacted the revisions the watch needed). No borrow of `cluster`
/// is held while waiting, so others may read it meanwhile. Returns the error that ended the
/// watch.
pub async fn follow(
    cluster: &RefCell<Cluster>,
    on_news: &mut dyn FnMut(&ClusterView, bool),
) -> EtcdError {
    let (client, everything, start) = {
        let cluster = cluster.borrow();
        (
            cluster.client.clone(),
            cluster.view.layout().everything().into_bytes(),
            cluster.view.revision() + 1,
        )
    };
    let end = prefix_end(&everything);
    let mut watch: Watch = match client.watch(&everything, &end, start).await {
        Ok(watch) => watch,
        Err(error) => return error,
    };
    loop {
        let poll_at = cluster.borrow().view.poll_at();
        let next = async { Some(watch.next().await) };
        let due = async {
            match poll_at {
                Some(at) => {
                    smol::Timer::at(at).await;
                    None
                }
                None => smol::future::pending().await,
            }
        };
        match smol::future::or(next, due).await {
            None => cluster.borrow_mut().view.take_due(Instant::now()),
            Some(Ok(Some(message))) => {
                if message.canceled {
                    let compacted = message.compact_revision != 0;
                    let error = EtcdError {
                        kind: if compacted {
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
                    if compacted {
                        if let Err(error) = load(cluster).await {
                            return error;
                        }
                        on_news(&cluster.borrow().view, true);
                    }
                    return error;
                }
                let mut cluster = cluster.borrow_mut();
                if message.events.is_empty() {
                    cluster.view.on_progress(message.revision);
                    continue;
                }
                cluster
                    .view
                    .apply(Instant::now(), crate::net::unix_now(), &message.events);
                cluster.view.take_due(Instant::now());
            }
            Some(Ok(None))
            | Some(Err(EtcdError {
                kind: ErrorKind::Unreachable,
                ..
            })) => {
                // Ended, cut (its member stopped) or silent for long: watched again from
                // where the view is, on whichever member answers.
                let start = cluster.borrow().view.revision() + 1;
                match client.watch(&everything, &end, start).await {
                    Ok(again) => watch = again,
                    Err(error) => return error,
                }
                continue;
            }
            Some(Err(error)) => return error,
        }
        on_news(&cluster.borrow().view, false);
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

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
    const VM: &str = "acac0001-1111-4a6b-8c9d-0000000000a1";

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            create_revision: 2,
            mod_revision: 2,
            lease: 0,
        }
    }

    /// Site paris live (one hypervisor placing one VM), site lyon gone (a head only).
    fn cluster() -> Cluster {
        let options = EtcdOptions::new("http://10.0.9.1:2379", "/xp", None, None);
        let mut cluster = Cluster::open(&options, Some("t0k3n")).unwrap();
        let tracker = r#"{"owner":"o","api":["http://127.0.0.1:8700","http://10.0.9.21:8700"]}"#;
        let host = format!(
            r#"{{"uuid":"{HOST}","name":"dom0","network":"mgmt","addresses":[],"state":"online","first_seen":1,"last_seen":2,"vms":[]}}"#
        );
        let vm = format!(
            r#"{{"uuid":"{VM}","name":"web","run_state":"running","hypervisor":"{HOST}","services":[],"first_seen":1,"last_seen":2}}"#
        );
        cluster.view.load(
            &[
                kv("/xp/sites/paris/tracker", tracker),
                kv(&format!("/xp/sites/paris/hypervisors/{HOST}"), &host),
                kv(&format!("/xp/sites/paris/vms/{VM}"), &vm),
                kv("/xp/heads/paris", r#"{"last_seq":7}"#),
                kv("/xp/heads/lyon", r#"{"last_seq":3}"#),
            ],
            2,
        );
        cluster
    }

    #[test]
    fn the_merged_tree_lists_every_site() {
        let cluster = cluster();
        let merged = cluster.merged().unwrap();
        let hosts = merged.value.list_of("hypervisors");
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].list_of("vms")[0].str_of("uuid"), VM);
        let sites = merged.value.list_of("sites");
        assert_eq!(sites.len(), 2);
        assert_eq!(sites[0].str_of("site"), "lyon");
        assert_eq!(sites[0].get("live"), Some(&JsonValue::Bool(false)));
        assert_eq!(sites[1].get("live"), Some(&JsonValue::Bool(true)));
        let lines: Vec<String> = cluster.view().sites().iter().map(site_line).collect();
        assert!(lines[0].starts_with("site lyon: gone"), "{lines:?}");
        assert!(lines[1].contains("API http://127.0.0.1:8700 http://10.0.9.21:8700"));
    }

    #[test]
    fn calls_go_to_a_reachable_api_with_the_token() {
        let cluster = cluster();
        let apis = cluster.apis();
        assert_eq!(apis.len(), 1, "live sites only");
        let api = apis[0].1.as_ref().unwrap();
        assert_eq!(api.name, "site paris");
        assert_eq!(
            api.tracker.address.to_string(),
            "10.0.9.21:8700",
            "not loopback"
        );
        assert_eq!(api.tracker.token.as_deref(), Some("t0k3n"));
        assert_eq!(cluster.trees().unwrap().len(), 1);
    }

    #[test]
    fn bad_options_are_usage_errors() {
        for (urls, prefix) in [("etcd:2379", "/xp"), ("http://10.0.0.1:2379", "xp")] {
            let options = EtcdOptions::new(urls, prefix, None, None);
            let failure = Cluster::open(&options, None).err().unwrap();
            assert_eq!(
                failure.code,
                crate::consts::CONSOLE_EXIT_USAGE,
                "{urls} {prefix}"
            );
        }
    }
}
