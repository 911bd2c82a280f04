//! `xenplug console watch`: follows `GET /api/events?since=N` of every source (a tracker holds
//! each request up to 20 s until there is a newer event) and prints one line per event until
//! SIGINT or SIGTERM. Formatting ([`event_line`], [`read_page`]) is pure and never panics; [`run`] does
//! the I/O.
//!
//! Line format: `<seq> <HTTP date> <kind> <subject> [network=<label>] [<key>=<value>...]`,
//! every field from the tracker with its control characters escaped; with two sources
//! (`--tracker` and `--iface`) each line ends with ` source=<api>` (`local` or the tracker's
//! URL).

use super::{printable, Api, Failure, SourceOptions};
use crate::cli::ConsoleWatchArgs;
use crate::consts::{
    API_EVENTS_PATH, API_TREE_PATH, CONSOLE_TIMEOUT, CONSOLE_WATCH_RETRY, CONSOLE_WATCH_TIMEOUT,
};
use crate::wire::json::JsonValue;
use std::future::Future;
use std::io::Write as _;
use std::pin::Pin;

/// One event as a line (without the newline).
pub fn event_line(event: &JsonValue) -> String {
    let seq = event.get("seq").and_then(JsonValue::as_u64).unwrap_or(0);
    let time = event.get("time").and_then(JsonValue::as_u64).unwrap_or(0);
    let date = crate::wire::http_date(time);
    let mut line = format!(
        "{seq} {} {} {}",
        String::from_utf8_lossy(&date),
        printable(event.str_of("kind")),
        printable(event.str_of("subject"))
    );
    if let Some(network) = event.get("network").and_then(JsonValue::as_str) {
        line.push_str(&format!(" network={}", printable(network)));
    }
    for (key, value) in event
        .get("details")
        .and_then(JsonValue::as_object)
        .unwrap_or(&[])
    {
        line.push_str(&format!(
            " {}={}",
            printable(key),
            printable(value.as_str().unwrap_or_default())
        ));
    }
    line
}

/// The lines of one `/api/events` answer newer than `since`, and the sequence number to ask
/// after next (never lower than `since`).
pub fn read_page(page: &JsonValue, since: u64) -> (Vec<String>, u64) {
    let mut next = since;
    let mut lines = Vec::new();
    for event in page.list_of("events") {
        let seq = event.get("seq").and_then(JsonValue::as_u64).unwrap_or(0);
        if seq <= since {
            continue;
        }
        next = next.max(seq);
        lines.push(event_line(event));
    }
    // A tenant's page may filter every event out: move on to the journal's end anyway.
    let last = page
        .get("last_seq")
        .and_then(JsonValue::as_u64)
        .unwrap_or(0);
    (lines, next.max(last))
}

/// `xenplug console watch`: every source's events (with ` source=<api>` after each line when
/// there are several, as sequence numbers are per source) until SIGINT or SIGTERM.
pub fn run(args: &ConsoleWatchArgs) -> Result<(), Failure> {
    if let Some(urls) = &args.etcd {
        return run_etcd(args, urls);
    }
    let source = super::open_source(&SourceOptions {
        tracker: args.tracker.clone(),
        ifaces: args.iface.clone(),
        settle: None,
        token: super::token_of(args.token_file.as_deref())?,
        access: None,
        control_key: args.control_key.clone(),
    })?;
    let mut signals = crate::net::event_loop::stop_signals()
        .map_err(|error| Failure::failed(format!("installing signal handlers: {error}")))?;
    let several = source.apis().len() > 1;
    let mut follows: Vec<(&Api, u64)> = Vec::new();
    for api in source.apis() {
        let since = match args.since {
            Some(since) => since,
            None => {
                let tree = api.tracker.get_json(API_TREE_PATH, CONSOLE_TIMEOUT)?;
                tree.value
                    .get("last_seq")
                    .and_then(JsonValue::as_u64)
                    .unwrap_or(0)
            }
        };
        follows.push((api, since));
    }
    smol::block_on(async {
        let mut all: Pin<Box<dyn Future<Output = Result<(), Failure>> + '_>> =
            Box::pin(smol::future::pending());
        for (api, since) in follows {
            all = Box::pin(smol::future::or(all, follow(api, since, several)));
        }
        let stop = async {
            next_signal(&mut signals).await;
            Ok(())
        };
        smol::future::or(stop, all).await
    })
}

/// Follows one API's events from `since` on, printing each line; returns only when stdout
/// fails.
async fn follow(api: &Api, mut since: u64, tagged: bool) -> Result<(), Failure> {
    loop {
        let target = format!("{API_EVENTS_PATH}?since={since}");
        let result = api
            .tracker
            .request_async("GET", &target, &[], CONSOLE_WATCH_TIMEOUT)
            .await
            .and_then(|response| super::Document::from_response(response, &target));
        match result {
            Ok(page) => {
                let (lines, next) = read_page(&page.value, since);
                since = next;
                let mut stdout = std::io::stdout().lock();
                for line in lines {
                    let written = if tagged {
                        writeln!(stdout, "{line} source={}", printable(&api.name))
                    } else {
                        writeln!(stdout, "{line}")
                    };
                    written
                        .map_err(|error| Failure::failed(format!("writing to stdout: {error}")))?;
                }
                let _ = stdout.flush();
            }
            Err(failure) => {
                eprintln!("xenplug console watch: {} (trying again)", failure.message);
                smol::Timer::after(CONSOLE_WATCH_RETRY).await;
            }
        }
    }
}

/// `console watch --etcd`: the feed of every site (see [`crate::engine::cluster::view`]), one
/// line per event ending with ` site=NAME`, from now on; a line for every failure of etcd and
/// for every return, following again after [`CONSOLE_WATCH_RETRY`].
fn run_etcd(args: &ConsoleWatchArgs, urls: &str) -> Result<(), Failure> {
    let options = super::cluster::EtcdOptions::new(
        urls,
        &args.etcd_prefix,
        args.etcd_user.as_deref(),
        args.etcd_password_file.as_deref(),
    );
    let cluster = super::cluster::Cluster::read(&options, None)?;
    let mut signals = crate::net::event_loop::stop_signals()
        .map_err(|error| Failure::failed(format!("installing signal handlers: {error}")))?;
    {
        let mut stdout = std::io::stdout().lock();
        for site in cluster.view().sites() {
            let _ = writeln!(stdout, "# {}", super::cluster::site_line(&site));
        }
        let _ = stdout.flush();
    }
    let mut printed = cluster.view().last_seq();
    let cluster = std::cell::RefCell::new(cluster);
    let follow = async {
        let mut failing = false;
        loop {
            let mut write_failed = None;
            let error = super::cluster::follow(&cluster, &mut |view, reloaded| {
                let mut stdout = std::io::stdout().lock();
                if reloaded {
                    let _ = writeln!(
                        stdout,
                        "# etcd compacted the revisions the watch needed: view read again"
                    );
                }
                let (events, last) = view.events_since(printed, usize::MAX);
                for event in events {
                    if let Err(error) = writeln!(stdout, "{}", super::cluster::event_line(event)) {
                        write_failed = Some(error);
                    }
                }
                printed = last;
                let _ = stdout.flush();
                if failing {
                    eprintln!("xenplug console watch: etcd answers again");
                    failing = false;
                }
            })
            .await;
            if let Some(error) = write_failed {
                return Err(Failure::failed(format!("writing to stdout: {error}")));
            }
            if !failing {
                eprintln!("xenplug console watch: etcd: {error} (following again)");
                failing = true;
            }
            smol::Timer::after(CONSOLE_WATCH_RETRY).await;
        }
    };
    smol::block_on(smol::future::or(
        async {
            next_signal(&mut signals).await;
            Ok(())
        },
        follow,
    ))
}

/// Waits for SIGINT or SIGTERM.
async fn next_signal(signals: &mut async_signal::Signals) {
    use smol::stream::StreamExt as _;
    let _ = signals.next().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::json::parse_value;

    static PAGE: &[u8] = br#"{"events":[{"seq":4,"time":0,"kind":"vm-added","subject":"acac0001","network":"acme","details":{"tenant":"acme"}},{"seq":5,"time":784111777,"kind":"vm-state-changed","subject":"acac0001","details":{"from":"running","to":"paused\u001b[2J"}}],"last_seq":6}"#;

    #[test]
    fn one_line_per_event() {
        let page = parse_value(PAGE).unwrap();
        let (lines, next) = read_page(&page, 3);
        assert_eq!(
            lines,
            vec![
                "4 Thu, 01 Jan 1970 00:00:00 GMT vm-added acac0001 network=acme tenant=acme",
                "5 Sun, 06 Nov 1994 08:49:37 GMT vm-state-changed acac0001 from=running \
                 to=paused\\u{1b}[2J",
            ]
        );
        assert_eq!(next, 6, "moves on to the journal's end");
    }

    #[test]
    fn old_events_and_junk_are_skipped() {
        let page = parse_value(PAGE).unwrap();
        let (lines, next) = read_page(&page, 4);
        assert_eq!(lines.len(), 1);
        assert_eq!(next, 6);
        let (lines, next) = read_page(&parse_value(b"{}").unwrap(), 9);
        assert!(lines.is_empty());
        assert_eq!(next, 9, "never goes back");
        let (lines, _) = read_page(&parse_value(b"{\"events\":[1,\"x\"]}").unwrap(), 0);
        assert!(lines.is_empty());
    }
}
