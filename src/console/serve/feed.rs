//! Pure: how several sources answer the page as one: the merged tree with its events cursor
//! ([`tree_with_cursor`]), each source's event feed as the server follows it ([`Feed`]), the
//! answer to a page's long poll from those feeds ([`events_answer`]) and which source an action
//! goes to ([`choose_source`]). No I/O, no clock; never panics on what a source answers.

use super::routes::cursor_text;
use crate::console::call::{choose_api, plan};
use crate::console::merge::write_value;
use crate::console::tree::Tree;
use crate::console::{Document, Failure};
use crate::consts::CONSOLE_EXIT_USAGE;
use crate::wire::json::{JsonValue, JsonWriter};
use std::collections::VecDeque;

/// Events of each source the console's page server keeps for the pages that poll it (older
/// ones are dropped: a page that falls further behind reads the tree again anyway).
const CONSOLE_WEB_EVENTS_KEPT: usize = 256;

/// The merged tree `merged` of the sources' `trees` (in their order), with `"cursor"` added:
/// the events cursor of those trees' `last_seq`.
pub fn tree_with_cursor(merged: &Document, trees: &[Document]) -> Vec<u8> {
    let parts: Vec<u64> = trees
        .iter()
        .map(|tree| {
            tree.value
                .get("last_seq")
                .and_then(JsonValue::as_u64)
                .unwrap_or(0)
        })
        .collect();
    let Some(fields) = merged.value.as_object() else {
        return merged.bytes.clone();
    };
    let mut json = JsonWriter::new();
    json.begin_object();
    for (name, value) in fields.iter().filter(|(name, _)| name != "cursor") {
        json.key(name);
        write_value(&mut json, value);
    }
    json.key("cursor").string(&cursor_text(&parts));
    json.end_object();
    json.finish().unwrap_or_else(|_| merged.bytes.clone())
}

/// One source's event feed as the server follows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Feed {
    /// The source's name (`sources`' `api`), written into each of its events.
    pub api: String,
    /// How far its journal has been read (`None` until its first answer).
    pub next: Option<u64>,
    /// Its latest events, oldest first, each with `"source"` added; at most
    /// `CONSOLE_WEB_EVENTS_KEPT`.
    pub recent: VecDeque<(u64, JsonValue)>,
    /// Why its last long poll failed, until one succeeds.
    pub error: Option<String>,
}

impl Feed {
    /// A feed not read yet.
    pub fn new(api: &str) -> Feed {
        Feed {
            api: api.to_string(),
            next: None,
            recent: VecDeque::new(),
            error: None,
        }
    }

    /// Takes in one `/api/events` answer of the source (asked `since=` [`Feed::next`]): its
    /// newer events, and the journal's end. A journal that ends before `next` went back (the
    /// source started on a new repository): the feed restarts at its end.
    pub fn apply(&mut self, page: &JsonValue) {
        self.error = None;
        let last = page
            .get("last_seq")
            .and_then(JsonValue::as_u64)
            .unwrap_or(0);
        let since = match self.next {
            Some(since) if last < since => {
                self.recent.clear();
                self.next = Some(last);
                return;
            }
            Some(since) => since,
            None => 0,
        };
        let mut next = since.max(last);
        for event in page.list_of("events") {
            let Some(fields) = event.as_object() else {
                continue;
            };
            let seq = event.get("seq").and_then(JsonValue::as_u64).unwrap_or(0);
            if seq <= since {
                continue;
            }
            next = next.max(seq);
            let mut fields: Vec<(String, JsonValue)> = fields
                .iter()
                .filter(|(name, _)| name != "source")
                .cloned()
                .collect();
            fields.push(("source".to_string(), JsonValue::String(self.api.clone())));
            self.recent.push_back((seq, JsonValue::Object(fields)));
            while self.recent.len() > CONSOLE_WEB_EVENTS_KEPT {
                self.recent.pop_front();
            }
        }
        self.next = Some(next);
    }
}

/// The answer to a page's `GET /api/events?since=` cursor `since` from the feeds as they are
/// now (see [the server's documentation](super)): `None` while no source is past its part and
/// the poll has not `timed_out`; `Err` (a 502) when every feed fails.
pub fn events_answer(
    feeds: &[Feed],
    since: &[u64],
    timed_out: bool,
) -> Option<Result<Vec<u8>, String>> {
    if !feeds.is_empty() && feeds.iter().all(|feed| feed.error.is_some()) {
        let why: Vec<String> = feeds.iter().filter_map(|feed| feed.error.clone()).collect();
        return Some(Err(why.join("; ")));
    }
    let mut news = false;
    let mut reset = false;
    let mut parts = Vec::with_capacity(feeds.len());
    for (index, feed) in feeds.iter().enumerate() {
        let asked = since.get(index).copied().unwrap_or(0);
        let part = feed.next.unwrap_or(asked);
        news |= part != asked;
        reset |= part < asked;
        parts.push(part);
    }
    if !news && !timed_out {
        return None;
    }
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("events").begin_array();
    for (index, feed) in feeds.iter().enumerate() {
        let asked = since.get(index).copied().unwrap_or(0);
        if feed.next.is_some_and(|next| next < asked) {
            continue;
        }
        for (_, event) in feed.recent.iter().filter(|(seq, _)| *seq > asked) {
            write_value(&mut json, event);
        }
    }
    json.end_array();
    json.key("last_seq")
        .number(parts.iter().copied().max().unwrap_or(0));
    json.key("cursor").string(&cursor_text(&parts));
    if reset {
        json.key("reset").bool(true);
    }
    json.key("sources").begin_array();
    for (feed, part) in feeds.iter().zip(&parts) {
        json.begin_object();
        json.key("api").string(&feed.api);
        json.key("last_seq").number(*part);
        if let Some(error) = &feed.error {
            json.key("error").string(error);
        }
        json.end_object();
    }
    json.end_array();
    json.end_object();
    Some(json.finish().map_err(|error| format!("{error:?}")))
}

/// Which source (an index into `trees`, the sources' own trees in their order; `merged`, their
/// merged tree) a `POST` to the relay path of `uuid` (a hypervisor's when `hypervisor`) with
/// form `body` goes to: the one `console call` would choose. `Err` is the status and why.
pub fn choose_source(
    trees: &[Document],
    merged: &Document,
    hypervisor: bool,
    uuid: &str,
    body: &[u8],
) -> Result<usize, (u16, String)> {
    let form = std::str::from_utf8(body)
        .map(crate::wire::form::pairs)
        .map_err(|_| (400, "the form is not UTF-8".to_string()))?;
    let field = |name: &str| {
        form.iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    };
    let (Some(service), Some(action)) = (field("service"), field("action")) else {
        return Err((400, "the form needs service= and action=".to_string()));
    };
    let unreadable = |failure: Failure| (502, failure.message);
    let tree = Tree::read(&merged.value).map_err(unreadable)?;
    let kind = if hypervisor { "hypervisor" } else { "VM" };
    let found = plan(&tree, uuid, action, Some(service)).map_err(|failure| {
        let status = if failure.code == CONSOLE_EXIT_USAGE {
            404
        } else {
            502
        };
        (status, failure.message)
    })?;
    if found.hypervisor != hypervisor {
        return Err((404, format!("no source knows a {kind} {uuid}")));
    }
    let trees = trees
        .iter()
        .map(|document| Tree::read(&document.value))
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable)?;
    choose_api(&trees, &found).ok_or_else(|| {
        (
            404,
            format!(
                "no source can reach {} of {}",
                found.action.name, found.name
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::serve::tests::VM;
    use crate::console::{Api, Tracker};
    use crate::wire::json::parse_value;

    fn doc(text: &str) -> Document {
        Document {
            bytes: text.as_bytes().to_vec(),
            value: parse_value(text.as_bytes()).unwrap(),
        }
    }

    const HOST_A: &str = "a1a1a1a1-0000-4000-8000-00000000000a";
    const ECHO: &str = "urn:xenplug-org:service:Echo:1";

    /// The tracker hears the tenant network (the VM's Echo, no placement); the console's own
    /// discovery the provider network (the hypervisor placing the VM, no services).
    fn two_trees() -> Vec<Document> {
        vec![
            doc(&format!(
                r#"{{"hypervisors":[],"devirtualized":[{{"uuid":"{VM}","name":"acme-1","run_state":"unknown","tenant":"acme","services":[{{"type":"{ECHO}","actions":[{{"name":"Echo","semantics":[],"inputs":["Text"],"outputs":["Reply"]}}]}}],"first_seen":1,"last_seen":5}}],"undescribed":[],"last_seq":12}}"#
            )),
            doc(&format!(
                r#"{{"hypervisors":[{{"uuid":"{HOST_A}","name":"Xen hypervisor dom0-a","network":"mgmt","addresses":[],"state":"online","first_seen":1,"last_seen":5,"vms":[{{"uuid":"{VM}","name":"acme-1","run_state":"running","services":[],"first_seen":1,"last_seen":5}}]}}],"devirtualized":[],"undescribed":[],"last_seq":7}}"#
            )),
        ]
    }

    fn apis() -> Vec<Api> {
        ["http://127.0.0.1:8700", "local"]
            .iter()
            .map(|name| Api {
                name: name.to_string(),
                tracker: Tracker::parse("http://127.0.0.1:9").unwrap(),
            })
            .collect()
    }

    #[test]
    fn the_merged_tree_carries_its_cursor() {
        let trees = two_trees();
        let merged = crate::console::merged(&apis(), &trees).unwrap();
        let value = parse_value(&tree_with_cursor(&merged, &trees)).unwrap();
        assert_eq!(value.str_of("cursor"), "12.7");
        assert_eq!(
            value.list_of("sources").len(),
            2,
            "the merged document's own fields"
        );
        let placed = &value.list_of("hypervisors")[0].list_of("vms")[0];
        assert_eq!(placed.str_of("run_state"), "running");
        assert_eq!(
            placed.list_of("services").len(),
            1,
            "merged as tree --json merges"
        );
        // Not an object: passed on as it is.
        let odd = doc("[1]");
        assert_eq!(tree_with_cursor(&odd, &trees), b"[1]");
    }

    fn body(service: &str, action: &str) -> Vec<u8> {
        crate::console::call::form_body(service, action, &[]).into_bytes()
    }

    #[test]
    fn actions_go_to_the_source_that_can_reach_them() {
        let trees = two_trees();
        let merged = crate::console::merged(&apis(), &trees).unwrap();
        let choose = |hypervisor: bool, uuid: &str, body: &[u8]| {
            choose_source(&trees, &merged, hypervisor, uuid, body)
        };
        let dc = crate::consts::URN_SERVICE_DOMAIN_CONTROL;
        let hv = crate::consts::URN_SERVICE_HYPERVISOR;
        assert_eq!(
            choose(false, VM, &body(ECHO, "Echo")),
            Ok(0),
            "the owner's service"
        );
        assert_eq!(
            choose(false, VM, &body(dc, "Pause")),
            Ok(1),
            "the placing source"
        );
        assert_eq!(choose(true, HOST_A, &body(hv, "GetHostInfo")), Ok(1));
        let status = |result: Result<usize, (u16, String)>| result.map_err(|(status, _)| status);
        // Unknown to every source: 404, whatever the action.
        let nobody = "0000dead-0000-4000-8000-000000000000";
        assert_eq!(status(choose(false, nobody, &body(dc, "Pause"))), Err(404));
        assert_eq!(
            status(choose(true, nobody, &body(hv, "GetHostInfo"))),
            Err(404)
        );
        // A VM's UUID on the hypervisor path and the other way round.
        assert_eq!(status(choose(true, VM, &body(hv, "GetHostInfo"))), Err(404));
        assert_eq!(status(choose(false, HOST_A, &body(dc, "Pause"))), Err(404));
        // An action nobody offers, a service the VM does not have.
        assert_eq!(
            status(choose(false, VM, &body(ECHO, "Frobnicate"))),
            Err(404)
        );
        assert_eq!(
            status(choose(false, VM, &body("urn:x:service:Other:1", "Echo"))),
            Err(404)
        );
        assert_eq!(status(choose(false, VM, &body(dc, "Frobnicate"))), Err(404));
        // Not a call at all.
        assert_eq!(status(choose(false, VM, b"action=Echo")), Err(400));
        assert_eq!(status(choose(false, VM, b"service=x&action=")), Err(400));
        assert_eq!(status(choose(false, VM, b"\xff")), Err(400));
        // Junk from the sources: an answer, not a panic.
        let junk = [doc("{}"), doc("[]")];
        let merged_junk = crate::console::merged(&apis(), &junk).unwrap();
        assert!(choose_source(&junk, &merged_junk, false, VM, &body(dc, "Pause")).is_err());
    }

    fn page(events: &[(u64, &str)], last: u64) -> JsonValue {
        let events: Vec<String> = events
            .iter()
            .map(|(seq, subject)| {
                format!(r#"{{"seq":{seq},"time":1,"kind":"vm-added","subject":"{subject}","details":{{}}}}"#)
            })
            .collect();
        parse_value(format!(r#"{{"events":[{}],"last_seq":{last}}}"#, events.join(",")).as_bytes())
            .unwrap()
    }

    #[test]
    fn feeds_keep_their_newest_events_tagged() {
        let mut feed = Feed::new("local");
        feed.error = Some("was down".into());
        feed.apply(&page(&[(1, "a"), (2, "b")], 3));
        assert_eq!(feed.next, Some(3), "up to the journal's end");
        assert_eq!(feed.error, None);
        assert_eq!(feed.recent.len(), 2);
        assert_eq!(feed.recent[1].1.str_of("source"), "local");
        assert_eq!(feed.recent[1].1.str_of("subject"), "b");
        // Old events again, junk: skipped; never backwards within a journal.
        feed.apply(
            &parse_value(br#"{"events":[{"seq":2},1,"x",{"seq":4,"source":"evil"}],"last_seq":4}"#)
                .unwrap(),
        );
        assert_eq!(feed.next, Some(4));
        assert_eq!(feed.recent.len(), 3);
        assert_eq!(
            feed.recent[2].1.str_of("source"),
            "local",
            "the server's tag, not the source's"
        );
        // Bounded.
        let many: Vec<(u64, &str)> = (5..5 + CONSOLE_WEB_EVENTS_KEPT as u64 + 10)
            .map(|seq| (seq, "c"))
            .collect();
        let newest = 4 + CONSOLE_WEB_EVENTS_KEPT as u64 + 10;
        feed.apply(&page(&many, newest));
        assert_eq!(feed.recent.len(), CONSOLE_WEB_EVENTS_KEPT);
        assert_eq!(feed.next, Some(newest));
        assert_eq!(feed.recent.back().map(|(seq, _)| *seq), Some(newest));
        // The journal went back: restart at its end, forgetting the other journal's events.
        feed.apply(&page(&[(2, "new")], 2));
        assert_eq!(feed.next, Some(2));
        assert!(feed.recent.is_empty());
    }

    fn answer(feeds: &[Feed], since: &[u64], timed_out: bool) -> Option<JsonValue> {
        events_answer(feeds, since, timed_out).map(|body| parse_value(&body.unwrap()).unwrap())
    }

    #[test]
    fn a_page_waits_until_some_source_has_news() {
        let mut tracker = Feed::new("http://127.0.0.1:8700");
        let mut local = Feed::new("local");
        assert!(
            answer(&[tracker.clone(), local.clone()], &[12, 7], false).is_none(),
            "nothing read yet"
        );
        tracker.apply(&page(&[(12, "old")], 12));
        local.apply(&page(&[], 7));
        let feeds = [tracker.clone(), local.clone()];
        assert!(answer(&feeds, &[12, 7], false).is_none(), "nothing new");
        let quiet = answer(&feeds, &[12, 7], true).expect("answered when the poll times out");
        assert_eq!(quiet.str_of("cursor"), "12.7");
        assert!(quiet.list_of("events").is_empty());
        assert!(quiet.get("reset").is_none());

        local.apply(&page(&[(8, "vm-1"), (9, "vm-2")], 9));
        let feeds = [tracker.clone(), local.clone()];
        let news = answer(&feeds, &[12, 7], false).expect("local has news");
        assert_eq!(news.str_of("cursor"), "12.9");
        assert_eq!(news.get("last_seq").and_then(JsonValue::as_u64), Some(12));
        let events: Vec<(&str, &str)> = news
            .list_of("events")
            .iter()
            .map(|e| (e.str_of("subject"), e.str_of("source")))
            .collect();
        assert_eq!(events, [("vm-1", "local"), ("vm-2", "local")]);
        let sources: Vec<(&str, Option<u64>)> = news
            .list_of("sources")
            .iter()
            .map(|s| {
                (
                    s.str_of("api"),
                    s.get("last_seq").and_then(JsonValue::as_u64),
                )
            })
            .collect();
        assert_eq!(
            sources,
            [("http://127.0.0.1:8700", Some(12)), ("local", Some(9))]
        );
        // A page further on sees only what it has not seen.
        let later = answer(&feeds, &[0, 8], false).unwrap();
        let subjects: Vec<&str> = later
            .list_of("events")
            .iter()
            .map(|e| e.str_of("subject"))
            .collect();
        assert_eq!(subjects, ["old", "vm-2"]);

        // A source fails: said, and the others still answer; all failing: a 502.
        let mut down = tracker.clone();
        down.error = Some("the tracker at http://127.0.0.1:8700 did not answer".into());
        let partly = answer(&[down.clone(), local.clone()], &[12, 7], false).unwrap();
        assert!(partly.list_of("sources")[0]
            .str_of("error")
            .contains("did not answer"));
        assert_eq!(partly.list_of("events").len(), 2);
        let mut local_down = local.clone();
        local_down.error = Some("refused".into());
        let failed = events_answer(&[down, local_down], &[12, 7], false);
        assert!(
            matches!(failed, Some(Err(ref why)) if why.contains("refused")),
            "{failed:?}"
        );

        // A cursor past a source's journal (it restarted): that part restarts at its end.
        let reset = answer(&feeds, &[40, 9], false).unwrap();
        assert_eq!(reset.str_of("cursor"), "12.9");
        assert_eq!(reset.get("reset"), Some(&JsonValue::Bool(true)));
        assert!(reset.list_of("events").is_empty());
        // A short cursor is read as from the start, never a panic.
        assert!(answer(&feeds, &[], false).is_some());
    }
}
