//! Wire layer: the bodies of etcd v3's JSON gateway (the grpc-gateway in front of etcd's gRPC
//! API, `POST /v3/...`), written and read. No I/O, no clock, never panics on what a server
//! sends: an answer that is not what this reader expects is a [`WireError`].
//!
//! The gateway maps protobuf to JSON (proto3 JSON mapping): `bytes` fields (keys, values) are
//! standard base64 with padding ([`base64_encode`], [`base64_decode`]), 64-bit integers are
//! decimal strings (numbers are accepted too), and fields holding their default (0, false,
//! empty, the first enum value) are left out: a watch event without `type` is a PUT, a txn
//! answer without `succeeded` failed. A request refused is an HTTP error status with a body
//! `{"error":"etcdserver: ...","message":"...","code":N}` (N a gRPC status code), read by
//! [`read_error`] and sorted by [`ErrorKind::of`].
//!
//! Captured from etcd 3.4.23 (Debian 12):
//!
//! ```text
//! POST /v3/kv/put {"key":"Zm9v","value":"YmFy"}
//! {"header":{"cluster_id":"2037210783374497686","member_id":"13195394291058371180","revision":"2","raft_term":"2"}}
//! POST /v3/lease/keepalive {"ID":"1"}     (no such lease: no TTL)
//! {"result":{"header":{...,"revision":"2","raft_term":"2"},"ID":"1"}}
//! POST /v3/watch {"create_request":{"key":"Zm8=","range_end":"ZnA=","start_revision":"2"}}
//! {"result":{"header":{...,"revision":"4"},"created":true}}
//! {"result":{"header":{...},"canceled":true,"compact_revision":"4"}}
//! POST /v3/kv/range {"key":"Zm9v","revision":1000}   (HTTP 400)
//! {"error":"etcdserver: mvcc: required revision is a future revision","message":"...","code":11}
//! ```

use super::json::{parse_value, JsonValue, JsonWriter};
use super::Error as WireError;
use core::fmt;

/// The standard base64 alphabet (RFC 4648 section 4).
const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// `bytes` in standard base64 with padding (RFC 4648 section 4), as the gateway takes `bytes`.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    let digit = |index: u32| char::from(BASE64_ALPHABET[(index & 63) as usize]);
    for group in bytes.chunks(3) {
        let b0 = u32::from(group.first().copied().unwrap_or(0));
        let b1 = u32::from(group.get(1).copied().unwrap_or(0));
        let b2 = u32::from(group.get(2).copied().unwrap_or(0));
        let n = (b0 << 16) | (b1 << 8) | b2;
        out.push(digit(n >> 18));
        out.push(digit(n >> 12));
        out.push(if group.len() > 1 { digit(n >> 6) } else { '=' });
        out.push(if group.len() > 2 { digit(n) } else { '=' });
    }
    out
}

/// The value of one base64 digit, standard or URL-safe alphabet (the gateway writes the
/// standard one; RFC 4648 section 5's is accepted as protobuf's JSON reader does).
fn base64_value(byte: u8) -> Option<u32> {
    Some(u32::from(match byte {
        b'A'..=b'Z' => byte - b'A',
        b'a'..=b'z' => byte - b'a' + 26,
        b'0'..=b'9' => byte - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        _ => return None,
    }))
}

/// Decodes base64 (padded or not); anything else is [`WireError::Malformed`].
pub fn base64_decode(text: &str) -> Result<Vec<u8>, WireError> {
    let digits = text.trim_end_matches('=').as_bytes();
    let padding = text.len() - digits.len();
    if digits.len() % 4 == 1 || (padding != 0 && padding != (4 - digits.len() % 4) % 4) {
        return Err(WireError::Malformed);
    }
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.chunks(4) {
        let mut n = 0u32;
        for (i, &byte) in group.iter().enumerate() {
            n |= base64_value(byte).ok_or(WireError::Malformed)? << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(bytes.get(..group.len() - 1).unwrap_or_default());
    }
    Ok(out)
}

/// The smallest key greater than every key starting with `prefix` (etcd's `range_end` for a
/// prefix, as `clientv3.GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// increased and what follows dropped; `\0` (every key) when there is none.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

// ---- requests ----------------------------------------------------------------------------------

fn finish(json: JsonWriter) -> Vec<u8> {
    // Every writer here is balanced by construction; an error would be a bug, and the
    // gateway answers an empty body with an error that names it.
    json.finish().unwrap_or_default()
}

/// Writes `"name":"<base64 of bytes>"`.
fn bytes_field(json: &mut JsonWriter, name: &str, bytes: &[u8]) {
    json.key(name).string(&base64_encode(bytes));
}

/// One operation of a transaction (`RequestOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// `request_put`: `key` = `value`, on `lease` when not 0.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
        /// The lease the key is attached to (0: none).
        lease: u64,
    },
    /// `request_delete_range`: `key` alone, or every key in `[key, end)`.
    Delete {
        /// The key, or the range's start.
        key: Vec<u8>,
        /// The range's end, exclusive (`None`: `key` alone).
        end: Option<Vec<u8>>,
    },
    /// `request_range`: read `key` (answered in the transaction's response).
    Get {
        /// The key.
        key: Vec<u8>,
    },
}

impl Op {
    /// The bytes this operation puts in a request, about: key, value and their base64.
    pub fn size(&self) -> usize {
        let raw = match self {
            Op::Put { key, value, .. } => key.len() + value.len(),
            Op::Delete { key, end } => key.len() + end.as_ref().map_or(0, Vec::len),
            Op::Get { key } => key.len(),
        };
        raw * 4 / 3 + 64
    }

    fn write(&self, json: &mut JsonWriter) {
        json.begin_object();
        match self {
            Op::Put { key, value, lease } => {
                json.key("request_put").begin_object();
                bytes_field(json, "key", key);
                bytes_field(json, "value", value);
                if *lease != 0 {
                    json.key("lease").string(&lease.to_string());
                }
                json.end_object();
            }
            Op::Delete { key, end } => {
                json.key("request_delete_range").begin_object();
                bytes_field(json, "key", key);
                if let Some(end) = end {
                    bytes_field(json, "range_end", end);
                }
                json.end_object();
            }
            Op::Get { key } => {
                json.key("request_range").begin_object();
                bytes_field(json, "key", key);
                json.end_object();
            }
        }
        json.end_object();
    }
}

/// One comparison of a transaction (`Compare`, result EQUAL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Compare {
    /// The key's `mod_revision` (0 when it does not exist) equals this.
    ModRevision(Vec<u8>, u64),
    /// The key's `create_revision` equals this (0: the key does not exist).
    CreateRevision(Vec<u8>, u64),
}

/// `POST /v3/kv/txn`: if every comparison holds, `success`, else `failure`.
pub fn txn_request(compare: &[Compare], success: &[Op], failure: &[Op]) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("compare").begin_array();
    for comparison in compare {
        let (key, target, field, revision) = match comparison {
            Compare::ModRevision(key, revision) => (key, "MOD", "mod_revision", revision),
            Compare::CreateRevision(key, revision) => (key, "CREATE", "create_revision", revision),
        };
        json.begin_object();
        bytes_field(&mut json, "key", key);
        json.key("target").string(target);
        json.key("result").string("EQUAL");
        json.key(field).string(&revision.to_string());
        json.end_object();
    }
    json.end_array();
    for (name, ops) in [("success", success), ("failure", failure)] {
        json.key(name).begin_array();
        for op in ops {
            op.write(&mut json);
        }
        json.end_array();
    }
    json.end_object();
    finish(json)
}

/// What a range request reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RangeRequest<'a> {
    /// The key, or the range's start.
    pub key: &'a [u8],
    /// The range's end, exclusive (`None`: `key` alone).
    pub end: Option<&'a [u8]>,
    /// Keys answered at most (0: no limit).
    pub limit: u64,
    /// Only keys, no values.
    pub keys_only: bool,
    /// Newest key first (`sort_order` DESCEND by key) instead of etcd's key order.
    pub descending: bool,
    /// Read at this revision (0: the newest).
    pub revision: u64,
}

/// `POST /v3/kv/range`.
pub fn range_request(request: &RangeRequest<'_>) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object();
    bytes_field(&mut json, "key", request.key);
    if let Some(end) = request.end {
        bytes_field(&mut json, "range_end", end);
    }
    if request.limit != 0 {
        json.key("limit").string(&request.limit.to_string());
    }
    if request.revision != 0 {
        json.key("revision").string(&request.revision.to_string());
    }
    if request.keys_only {
        json.key("keys_only").bool(true);
    }
    if request.descending {
        json.key("sort_order").string("DESCEND");
        json.key("sort_target").string("KEY");
    }
    json.end_object();
    finish(json)
}

/// `POST /v3/lease/grant` for a lease of `ttl` seconds (etcd picks its ID).
pub fn grant_request(ttl: u64) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object().key("TTL").string(&ttl.to_string());
    json.key("ID").string("0");
    json.end_object();
    finish(json)
}

/// `POST /v3/lease/keepalive` or `POST /v3/lease/revoke` of lease `id`.
pub fn lease_request(id: u64) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object().key("ID").string(&id.to_string());
    json.end_object();
    finish(json)
}

/// `POST /v3/auth/authenticate`.
pub fn authenticate_request(name: &str, password: &str) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object();
    json.key("name").string(name);
    json.key("password").string(password);
    json.end_object();
    finish(json)
}

/// `POST /v3/watch`: every change to the keys in `[key, end)` from revision `start` on
/// (0: from the next one).
pub fn watch_request(key: &[u8], end: &[u8], start: u64) -> Vec<u8> {
    let mut json = JsonWriter::new();
    json.begin_object().key("create_request").begin_object();
    bytes_field(&mut json, "key", key);
    bytes_field(&mut json, "range_end", end);
    if start != 0 {
        json.key("start_revision").string(&start.to_string());
    }
    json.end_object().end_object();
    finish(json)
}

// ---- answers -------------------------------------------------------------------------------------

/// A 64-bit integer as the gateway writes it: a decimal string (or a number); absent is 0.
fn int_of(value: &JsonValue, name: &str) -> Result<u64, WireError> {
    match value.get(name) {
        None | Some(JsonValue::Null) => Ok(0),
        Some(JsonValue::String(text)) => text.parse().map_err(|_| WireError::Malformed),
        Some(number @ JsonValue::Number(_)) => number.as_u64().ok_or(WireError::Malformed),
        Some(_) => Err(WireError::Malformed),
    }
}

/// A boolean field; absent is false.
fn bool_of(value: &JsonValue, name: &str) -> Result<bool, WireError> {
    match value.get(name) {
        None | Some(JsonValue::Null) => Ok(false),
        Some(JsonValue::Bool(b)) => Ok(*b),
        Some(_) => Err(WireError::Malformed),
    }
}

/// A `bytes` field; absent is empty.
fn bytes_of(value: &JsonValue, name: &str) -> Result<Vec<u8>, WireError> {
    match value.get(name) {
        None | Some(JsonValue::Null) => Ok(Vec::new()),
        Some(JsonValue::String(text)) => base64_decode(text),
        Some(_) => Err(WireError::Malformed),
    }
}

fn object(input: &[u8]) -> Result<JsonValue, WireError> {
    let value = parse_value(input)?;
    match value {
        JsonValue::Object(_) => Ok(value),
        _ => Err(WireError::Malformed),
    }
}

/// The revision of an answer's `header`: the store's revision when it was answered.
fn header_revision(value: &JsonValue) -> Result<u64, WireError> {
    value.get("header").map_or(Ok(0), |h| int_of(h, "revision"))
}

/// One key and its value (`mvccpb.KeyValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value (empty in a keys-only answer or a delete event).
    pub value: Vec<u8>,
    /// Revision of its creation.
    pub create_revision: u64,
    /// Revision of its last change.
    pub mod_revision: u64,
    /// Its lease (0: none).
    pub lease: u64,
}

impl KeyValue {
    fn read(value: &JsonValue) -> Result<KeyValue, WireError> {
        Ok(KeyValue {
            key: bytes_of(value, "key")?,
            value: bytes_of(value, "value")?,
            create_revision: int_of(value, "create_revision")?,
            mod_revision: int_of(value, "mod_revision")?,
            lease: int_of(value, "lease")?,
        })
    }
}

fn kvs_of(value: &JsonValue) -> Result<Vec<KeyValue>, WireError> {
    match value.get("kvs") {
        None | Some(JsonValue::Null) => Ok(Vec::new()),
        Some(JsonValue::Array(items)) => items.iter().map(KeyValue::read).collect(),
        Some(_) => Err(WireError::Malformed),
    }
}

/// A range answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The revision it was read at.
    pub revision: u64,
    /// The keys, in key order (or the order asked).
    pub kvs: Vec<KeyValue>,
    /// Whether more keys are in the range than the limit let through.
    pub more: bool,
}

/// Reads a `/v3/kv/range` answer.
pub fn read_range(input: &[u8]) -> Result<Range, WireError> {
    let value = object(input)?;
    Ok(Range {
        revision: header_revision(&value)?,
        kvs: kvs_of(&value)?,
        more: bool_of(&value, "more")?,
    })
}

/// A transaction's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Txn {
    /// The store's revision after it (the revision of its writes when it wrote).
    pub revision: u64,
    /// Whether the comparisons held (the `success` operations ran).
    pub succeeded: bool,
    /// What each `request_range` operation read, in order.
    pub ranges: Vec<Vec<KeyValue>>,
}

/// Reads a `/v3/kv/txn` answer.
pub fn read_txn(input: &[u8]) -> Result<Txn, WireError> {
    let value = object(input)?;
    let mut ranges = Vec::new();
    for response in value.list_of("responses") {
        if let Some(range) = response.get("response_range") {
            ranges.push(kvs_of(range)?);
        }
    }
    Ok(Txn {
        revision: header_revision(&value)?,
        succeeded: bool_of(&value, "succeeded")?,
        ranges,
    })
}

/// A lease as granted or kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// Its ID.
    pub id: u64,
    /// Seconds it has left (0: it does not exist any more).
    pub ttl: u64,
}

/// Reads a `/v3/lease/grant` answer.
pub fn read_grant(input: &[u8]) -> Result<Lease, WireError> {
    let value = object(input)?;
    if value.get("error").is_some() {
        // A grant refused inside a 200 answer (etcd 3.4 sets `error` on a LeaseGrantResponse).
        return Err(WireError::Unsupported);
    }
    let lease = Lease {
        id: int_of(&value, "ID")?,
        ttl: int_of(&value, "TTL")?,
    };
    if lease.id == 0 {
        return Err(WireError::Malformed);
    }
    Ok(lease)
}

/// Reads a `/v3/lease/keepalive` answer (a stream of one `{"result":{...}}`).
pub fn read_keepalive(input: &[u8]) -> Result<Lease, WireError> {
    let value = object(trim_line(input))?;
    let result = value.get("result").ok_or(WireError::Malformed)?;
    Ok(Lease {
        id: int_of(result, "ID")?,
        ttl: int_of(result, "TTL")?,
    })
}

/// Reads a `/v3/auth/authenticate` answer: the token to send as `Authorization`.
pub fn read_token(input: &[u8]) -> Result<String, WireError> {
    let value = object(input)?;
    let token = value.str_of("token");
    let usable =
        !token.is_empty() && token.len() <= 4096 && token.bytes().all(|b| b.is_ascii_graphic());
    if usable {
        Ok(token.to_string())
    } else {
        Err(WireError::Malformed)
    }
}

/// One change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// Whether the key was deleted (else put).
    pub deleted: bool,
    /// The key as it is after the change (a deleted key: its key and revision only).
    pub kv: KeyValue,
}

/// One message of a watch stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchMessage {
    /// The store's revision when it was sent.
    pub revision: u64,
    /// The watch was just created.
    pub created: bool,
    /// The watch was ended by the server (see `compact_revision`).
    pub canceled: bool,
    /// Set when the revision asked for was compacted: the oldest one still there.
    pub compact_revision: u64,
    /// The changes, in revision order.
    pub events: Vec<WatchEvent>,
}

/// A line of a streamed answer without its line ending.
fn trim_line(input: &[u8]) -> &[u8] {
    let end = input
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |at| at + 1);
    input.get(..end).unwrap_or_default()
}

/// Reads one line of a `/v3/watch` stream: `{"result":{...}}`; a line `{"error":{...}}` is
/// [`WireError::Unsupported`] (the stream failed: see [`read_error`]).
pub fn read_watch(input: &[u8]) -> Result<WatchMessage, WireError> {
    let value = object(trim_line(input))?;
    let Some(result) = value.get("result") else {
        return Err(if value.get("error").is_some() {
            WireError::Unsupported
        } else {
            WireError::Malformed
        });
    };
    let mut events = Vec::new();
    for event in result.list_of("events") {
        let deleted = match event.get("type") {
            None | Some(JsonValue::Null) => false,
            Some(JsonValue::String(kind)) if kind == "PUT" => false,
            Some(JsonValue::String(kind)) if kind == "DELETE" => true,
            Some(number @ JsonValue::Number(_)) => number.as_u64() == Some(1),
            Some(_) => return Err(WireError::Malformed),
        };
        let kv = KeyValue::read(event.get("kv").ok_or(WireError::Malformed)?)?;
        events.push(WatchEvent { deleted, kv });
    }
    Ok(WatchMessage {
        revision: header_revision(result)?,
        created: bool_of(result, "created")?,
        canceled: bool_of(result, "canceled")?,
        compact_revision: int_of(result, "compact_revision")?,
        events,
    })
}

/// What an error answer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayError {
    /// The gRPC status code (3 invalid argument, 9 failed precondition, 11 out of range, 14
    /// unavailable, 16 unauthenticated...).
    pub code: u64,
    /// etcd's message (`etcdserver: ...`), at most [`GATEWAY_ERROR_MAX`] bytes.
    pub message: String,
}

/// Length of an error message kept, at most.
pub const GATEWAY_ERROR_MAX: usize = 256;

/// Reads an error answer (`{"error":..,"message":..,"code":N}`, or a stream's
/// `{"error":{"grpc_code":N,"message":..}}`); `None` when it is not one.
pub fn read_error(input: &[u8]) -> Option<GatewayError> {
    let value = object(trim_line(input)).ok()?;
    let error = value.get("error")?;
    let (code, message) = match error {
        JsonValue::Object(_) => (
            int_of(error, "grpc_code")
                .ok()
                .filter(|c| *c != 0)
                .or_else(|| int_of(error, "code").ok())
                .unwrap_or(0),
            error.str_of("message"),
        ),
        JsonValue::String(text) => {
            let message = value.str_of("message");
            (
                int_of(&value, "code").unwrap_or(0),
                if message.is_empty() { text } else { message },
            )
        }
        _ => return None,
    };
    let mut message: String = message
        .chars()
        .filter(|c| !c.is_control())
        .take(GATEWAY_ERROR_MAX)
        .collect();
    if message.is_empty() {
        message = "no message".to_string();
    }
    Some(GatewayError { code, message })
}

/// What went wrong with a request to etcd, as far as what to do next goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// No member answered (connection refused, reset, timed out).
    Unreachable,
    /// The user, password or token was refused (or the user may not do this).
    AuthRefused,
    /// The revision asked for was compacted away.
    Compacted,
    /// The cluster has no leader or its leader changed: try again.
    LeaderChanged,
    /// The request is over the server's size or operation-count limit.
    TooLarge,
    /// The lease named does not exist (any more).
    LeaseNotFound,
    /// An answer this client cannot read, or any other refusal.
    Other,
}

impl ErrorKind {
    /// Sorts a gateway error. etcd's messages are stable (`rpctypes` in etcd's source); the
    /// gRPC code separates what the message does not.
    pub fn of(error: &GatewayError) -> ErrorKind {
        let message = error.message.as_str();
        let has = |part: &str| message.contains(part);
        if has("compacted") {
            ErrorKind::Compacted
        } else if has("leader changed")
            || has("no leader")
            || has("not capable")
            || has("timed out")
            || has("stopped")
            || error.code == 14
        {
            ErrorKind::LeaderChanged
        } else if has("too large") || has("too many operations") || has("exceeds") {
            ErrorKind::TooLarge
        } else if has("lease not found") {
            ErrorKind::LeaseNotFound
        } else if has("auth")
            || has("permission denied")
            || has("user name")
            || has("password")
            || error.code == 16
            || error.code == 7
        {
            ErrorKind::AuthRefused
        } else {
            ErrorKind::Other
        }
    }

    /// Whether a new token may cure it (an expired or unknown token, as opposed to a refused
    /// password or a missing permission).
    pub fn token_expired(error: &GatewayError) -> bool {
        error.message.contains("invalid auth token") || error.message.contains("token")
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorKind::Unreachable => "unreachable",
            ErrorKind::AuthRefused => "authentication refused",
            ErrorKind::Compacted => "revision compacted",
            ErrorKind::LeaderChanged => "no leader (election under way)",
            ErrorKind::TooLarge => "request too large",
            ErrorKind::LeaseNotFound => "lease not found",
            ErrorKind::Other => "error",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    static KEEPALIVE: &[u8] = b"{\"result\":{\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"13195394291058371180\",\"revision\":\"2\",\"raft_term\":\"2\"},\"ID\":\"7668682706919957511\",\"TTL\":\"5\"}}\n";
    static TXN: &[u8] = b"{\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"13195394291058371180\",\"revision\":\"3\",\"raft_term\":\"2\"},\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"3\"},\"kvs\":[{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"YmF6\"}],\"count\":\"1\"}}]}";
    static WATCH_PUT: &[u8] = b"{\"result\":{\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"13195394291058371180\",\"revision\":\"3\",\"raft_term\":\"2\"},\"events\":[{\"kv\":{\"key\":\"Zm9v\",\"create_revision\":\"2\",\"mod_revision\":\"3\",\"version\":\"2\",\"value\":\"YmF6\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"Zm9w\",\"mod_revision\":\"3\"}}]}}\n";
    static WATCH_COMPACTED: &[u8] = b"{\"result\":{\"header\":{\"cluster_id\":\"2037210783374497686\",\"member_id\":\"13195394291058371180\",\"raft_term\":\"2\"},\"canceled\":true,\"compact_revision\":\"4\"}}";
    static FUTURE: &[u8] = b"{\"error\":\"etcdserver: mvcc: required revision is a future revision\",\"message\":\"etcdserver: mvcc: required revision is a future revision\",\"code\":11}";
    static BAD_PASSWORD: &[u8] = b"{\"error\":\"etcdserver: authentication failed, invalid user ID or password\",\"message\":\"etcdserver: authentication failed, invalid user ID or password\",\"code\":3}";

    #[test]
    fn base64_round_trips() {
        for (raw, text) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"foob", "Zm9vYg=="),
            (b"\xff\xfe\x00", "//4A"),
        ] {
            assert_eq!(base64_encode(raw), text);
            assert_eq!(base64_decode(text).unwrap(), raw);
        }
        assert_eq!(
            base64_decode("Zm8").unwrap(),
            b"fo",
            "padding may be left out"
        );
        assert_eq!(
            base64_decode("__4A").unwrap(),
            b"\xff\xfe\x00",
            "URL-safe too"
        );
        for bad in ["Z", "Zm9v=", "Zm9v===", "Zm 9", "Zm9v\n"] {
            assert!(base64_decode(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/x/"), b"/x0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff"), b"\0");
    }

    #[test]
    fn requests_as_the_gateway_takes_them() {
        let body = txn_request(
            &[Compare::ModRevision(b"foo".to_vec(), 2)],
            &[
                Op::Put {
                    key: b"foo".to_vec(),
                    value: b"baz".to_vec(),
                    lease: 7,
                },
                Op::Delete {
                    key: b"fop".to_vec(),
                    end: Some(b"foq".to_vec()),
                },
            ],
            &[Op::Get {
                key: b"foo".to_vec(),
            }],
        );
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"compare\":[{\"key\":\"Zm9v\",\"target\":\"MOD\",\"result\":\"EQUAL\",\
             \"mod_revision\":\"2\"}],\"success\":[{\"request_put\":{\"key\":\"Zm9v\",\
             \"value\":\"YmF6\",\"lease\":\"7\"}},{\"request_delete_range\":{\"key\":\"Zm9w\",\
             \"range_end\":\"Zm9x\"}}],\"failure\":[{\"request_range\":{\"key\":\"Zm9v\"}}]}"
        );
        let body = range_request(&RangeRequest {
            key: b"a",
            end: Some(b"b"),
            limit: 1,
            descending: true,
            keys_only: true,
            revision: 0,
        });
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\"key\":\"YQ==\",\"range_end\":\"Yg==\",\"limit\":\"1\",\"keys_only\":true,\
             \"sort_order\":\"DESCEND\",\"sort_target\":\"KEY\"}"
        );
        assert_eq!(
            String::from_utf8(watch_request(b"fo", b"fp", 2)).unwrap(),
            "{\"create_request\":{\"key\":\"Zm8=\",\"range_end\":\"ZnA=\",\"start_revision\":\"2\"}}"
        );
        assert_eq!(lease_request(5), b"{\"ID\":\"5\"}");
        assert_eq!(grant_request(10), b"{\"TTL\":\"10\",\"ID\":\"0\"}");
        assert_eq!(
            authenticate_request("u", "p\"w"),
            b"{\"name\":\"u\",\"password\":\"p\\\"w\"}"
        );
    }

    #[test]
    fn answers_from_a_real_server() {
        assert_eq!(
            read_keepalive(KEEPALIVE).unwrap(),
            Lease {
                id: 7668682706919957511,
                ttl: 5
            }
        );
        let txn = read_txn(TXN).unwrap();
        assert_eq!(
            (txn.revision, txn.succeeded),
            (3, false),
            "no succeeded: false"
        );
        assert_eq!(txn.ranges[0][0].value, b"baz");
        let watch = read_watch(WATCH_PUT).unwrap();
        assert_eq!(watch.revision, 3);
        assert!(!watch.events[0].deleted && watch.events[1].deleted);
        assert_eq!(watch.events[1].kv.key, b"fop");
        let compacted = read_watch(WATCH_COMPACTED).unwrap();
        assert!(compacted.canceled);
        assert_eq!(compacted.compact_revision, 4);
        let error = read_error(FUTURE).unwrap();
        assert_eq!(error.code, 11);
        assert_eq!(ErrorKind::of(&error), ErrorKind::Other);
        let error = read_error(BAD_PASSWORD).unwrap();
        assert_eq!(ErrorKind::of(&error), ErrorKind::AuthRefused);
        assert!(!ErrorKind::token_expired(&error));
        let stream_error =
            br#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader"}}"#;
        assert_eq!(
            ErrorKind::of(&read_error(stream_error).unwrap()),
            ErrorKind::LeaderChanged
        );
        assert_eq!(read_watch(stream_error), Err(WireError::Unsupported));
        assert_eq!(read_error(KEEPALIVE), None);
    }

    #[test]
    fn errors_are_sorted() {
        let kind = |code, message: &str| {
            ErrorKind::of(&GatewayError {
                code,
                message: message.to_string(),
            })
        };
        assert_eq!(
            kind(11, "etcdserver: mvcc: required revision has been compacted"),
            ErrorKind::Compacted
        );
        assert_eq!(
            kind(14, "etcdserver: leader changed"),
            ErrorKind::LeaderChanged
        );
        assert_eq!(
            kind(3, "etcdserver: request is too large"),
            ErrorKind::TooLarge
        );
        assert_eq!(
            kind(3, "etcdserver: too many operations in txn request"),
            ErrorKind::TooLarge
        );
        assert_eq!(
            kind(5, "etcdserver: requested lease not found"),
            ErrorKind::LeaseNotFound
        );
        assert_eq!(
            kind(16, "etcdserver: invalid auth token"),
            ErrorKind::AuthRefused
        );
        assert_eq!(
            kind(7, "etcdserver: permission denied"),
            ErrorKind::AuthRefused
        );
    }

    #[test]
    fn junk_is_an_error_never_a_panic() {
        let inputs: [&[u8]; 8] = [
            b"",
            b"[]",
            b"{\"kvs\":3}",
            b"{\"kvs\":[{\"key\":\"!!\"}]}",
            b"{\"header\":{\"revision\":\"-1\"}}",
            b"{\"result\":{\"events\":[{\"type\":\"X\",\"kv\":{}}]}}",
            b"{\"ID\":\"0\"}",
            b"{\"token\":\"a b\"}",
        ];
        for input in inputs {
            assert!(
                read_range(input).is_err()
                    || read_watch(input).is_err()
                    || read_grant(input).is_err()
                    || read_token(input).is_err(),
                "{input:?}"
            );
            let _ = read_txn(input);
            let _ = read_keepalive(input);
            let _ = read_error(input);
        }
        for cut in 0..WATCH_PUT.len() {
            let _ = read_watch(&WATCH_PUT[..cut]);
            let _ = read_txn(&TXN[..cut.min(TXN.len())]);
        }
    }
}
