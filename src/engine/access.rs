//! Engine layer: who may do what. Every access decision of xenplug is made here, by pure
//! functions over what the caller proved and what the repositories know: no I/O, no clock, no
//! logging (callers log a refusal with its reason).
//!
//! - Devices (`advertise hypervisor`, `advertise vm`): [`authorize_control`] decides a control
//!   request from the caller's address (`--allow-control`, [`ControlPolicy`]) and its signature
//!   (`--control-key`, [`crate::wire::signature`]). Read-only actions of a hypervisor,
//!   descriptions, SCPDs and eventing stay open to the management network (every peer the
//!   HTTP server admits at all, i.e. inside an interface's subnet); a VM's owner decides with
//!   a key whether every owner action needs a signature. A caller that is not authorized gets
//!   UPnP error 606 "Action not authorized" (UDA 1.1 section 3.2.2, one of the codes it lists
//!   for DeviceSecurity).
//! - The tracker's API and the web console (`--access FILE`): an [`AccessList`] of identities,
//!   each with a [`Role`] and the SHA-256 of its bearer token; [`view`] decides what a caller
//!   may read, [`may_act`] whether it may call an action on a target, from the target's
//!   repository record at the time of the call (a tenant's VMs are the records filed under
//!   it) and the action's semantics annotation. A tenant asking about another tenant's VM gets
//!   404, never 403: it must not learn that the VM exists. [`Failures`] bounds failed
//!   authentications per source.

use crate::consts::ALLOW_CONTROL_ANY;
use crate::model::{ActionSpec, Semantic};
use crate::subnet::Subnet;
use crate::wire::signature::{self, SignatureError};
use crate::wire::soap::{UpnpError, ACTION_NOT_AUTHORIZED};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Loopback, always part of the default allow-list (127.0.0.0/8).
const LOOPBACK_NETWORK: (std::net::Ipv4Addr, u8) = (std::net::Ipv4Addr::new(127, 0, 0, 0), 8);
/// Networks one hypervisor's `--allow-control` may name (a bound on what a check walks).
const ALLOW_CONTROL_MAX: usize = 64;

/// Who may call mutating actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPolicy {
    /// Every peer the device answers (`--allow-control any`).
    Any,
    /// Only peers inside one of these networks.
    Only(Vec<Subnet>),
}

impl ControlPolicy {
    /// The policy for the `--allow-control` values `given`, on a device whose interfaces
    /// have the addresses `own`.
    ///
    /// None given: only this host, that is loopback (127.0.0.0/8) and `own` (a connection to
    /// the host from itself over an interface address comes from that address; Linux drops
    /// packets from outside that claim a local source). [`ALLOW_CONTROL_ANY`] alone: every
    /// admitted peer. Otherwise exactly the networks given (the host itself is then allowed
    /// only if listed).
    pub fn from_flags(given: &[String], own: &[Ipv4Addr]) -> Result<ControlPolicy, String> {
        if given.is_empty() {
            let (loopback, prefix) = LOOPBACK_NETWORK;
            let mut networks: Vec<Subnet> = Subnet::new(loopback, prefix).into_iter().collect();
            networks.extend(own.iter().map(|address| Subnet::host(*address)));
            return Ok(ControlPolicy::Only(networks));
        }
        if given.iter().any(|text| text == ALLOW_CONTROL_ANY) {
            if given.len() > 1 {
                return Err(format!(
                    "--allow-control {ALLOW_CONTROL_ANY} cannot be combined with networks"
                ));
            }
            return Ok(ControlPolicy::Any);
        }
        if given.len() > ALLOW_CONTROL_MAX {
            return Err(format!(
                "--allow-control is given {} times (at most {ALLOW_CONTROL_MAX})",
                given.len()
            ));
        }
        let networks = given
            .iter()
            .map(|text| Subnet::parse(text).map_err(|e| format!("--allow-control {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ControlPolicy::Only(networks))
    }

    /// Whether `peer` may call mutating actions.
    pub fn admits(&self, peer: IpAddr) -> bool {
        match (self, peer) {
            (ControlPolicy::Any, _) => true,
            (ControlPolicy::Only(networks), IpAddr::V4(v4)) => {
                networks.iter().any(|network| network.contains(v4))
            }
            (ControlPolicy::Only(_), IpAddr::V6(_)) => false,
        }
    }
}

impl fmt::Display for ControlPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlPolicy::Any => f.write_str(ALLOW_CONTROL_ANY),
            ControlPolicy::Only(networks) => {
                for (index, network) in networks.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{network}")?;
                }
                Ok(())
            }
        }
    }
}

/// Which of a device's actions need an authorized caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// Every action not marked read-only in the service tables (a hypervisor).
    Mutating,
    /// Every action (a VM advertiser with a control key: its owner's services).
    Every,
}

/// A device's control rules: who may make the calls it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlRules {
    /// Which calls are guarded.
    pub guarded: Guarded,
    /// The callers' addresses admitted (`--allow-control`), if the address is checked.
    pub allow: Option<ControlPolicy>,
    /// Whether a valid signature is needed (`--control-key`).
    pub signed: bool,
}

/// What checking a control request's signature found (the runtime holds the key and the
/// nonces; this is its verdict).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureCheck {
    /// The device holds no key: nothing was checked.
    NoKey,
    /// A valid, fresh signature on behalf of this identity.
    Valid(String),
    /// No signature, or one refused for this reason.
    Invalid(SignatureError),
}

/// Whether a control request for `action` from `peer`, whose signature check found
/// `signature`, may be performed under `rules`. Unguarded actions always; a guarded one only
/// when the address is admitted (if checked) and the signature is valid (if needed): both
/// must pass. `Err` is the 606 to answer, saying why.
pub fn authorize_control(
    rules: &ControlRules,
    peer: IpAddr,
    signature: &SignatureCheck,
    action: &ActionSpec,
) -> Result<(), UpnpError> {
    if rules.guarded == Guarded::Mutating && action.read_only {
        return Ok(());
    }
    if let Some(policy) = &rules.allow {
        if !policy.admits(peer) {
            return Err(UpnpError::new(
                ACTION_NOT_AUTHORIZED,
                "Action not authorized: this caller is not in the device's --allow-control list",
            ));
        }
    }
    if rules.signed {
        match signature {
            SignatureCheck::Valid(_) => {}
            SignatureCheck::Invalid(reason) => {
                return Err(UpnpError::new(
                    ACTION_NOT_AUTHORIZED,
                    format!("Action not authorized: {reason}"),
                ))
            }
            SignatureCheck::NoKey => {
                return Err(UpnpError::new(
                    ACTION_NOT_AUTHORIZED,
                    "Action not authorized: no signature",
                ))
            }
        }
    }
    Ok(())
}

// ---- identities, roles and the access file ---------------------------------------------------

/// What an identity may do at the tracker's API and the web console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The provider's reads: tree, VMs, events (with the audit entries).
    Viewer,
    /// A viewer that may also call every action whose semantics do not say `destructive`.
    Operator,
    /// Every read and every action.
    Admin,
    /// One tenant's slice: its VMs, their services, its events and audit entries; the owner
    /// actions of its VMs, and the lifecycle actions `--tenant-control` lists.
    Tenant(String),
}

/// Prefix of a tenant role in the access file (`tenant:acme`).
const TENANT_ROLE_PREFIX: &str = "tenant:";
/// Prefix of a token's hash in the access file.
const HASH_PREFIX: &str = "sha256:";
/// Identities one access file may hold, at most.
pub const ACCESS_MAX_IDENTITIES: usize = 1024;

impl Role {
    /// Parses `viewer`, `operator`, `admin` or `tenant:NAME` (NAME as a tenant network's label).
    pub fn parse(text: &str) -> Result<Role, String> {
        match text {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            _ => match text.strip_prefix(TENANT_ROLE_PREFIX) {
                Some(tenant) if crate::repo::is_valid_name(tenant) => {
                    Ok(Role::Tenant(tenant.to_string()))
                }
                Some(_) => Err(format!(
                    "role {text:?}: a tenant's name is 1-64 of A-Z a-z 0-9 _ -"
                )),
                None => Err(format!(
                    "role {text:?}: expected viewer, operator, admin or tenant:NAME"
                )),
            },
        }
    }

    /// The tenant whose slice this role sees, if it is a tenant's.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Role::Tenant(tenant) => Some(tenant),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Role::Viewer => f.write_str("viewer"),
            Role::Operator => f.write_str("operator"),
            Role::Admin => f.write_str("admin"),
            Role::Tenant(tenant) => write!(f, "{TENANT_ROLE_PREFIX}{tenant}"),
        }
    }
}

/// One identity of the access file.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its name (logged and journaled with everything it does).
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// The SHA-256 of its bearer token.
    token_hash: [u8; 32],
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({} {})", self.name, self.role)
    }
}

/// A line the access file refused, with why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessFileError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
}

impl fmt::Display for AccessFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The identities of an access file (`--access FILE`): one per line, `NAME ROLE sha256:HEX`,
/// HEX the lowercase SHA-256 of the identity's bearer token (the token itself is never
/// stored); `#` starts a comment; blank lines are skipped. One malformed line refuses the
/// whole file (fail closed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    identities: Vec<Identity>,
}

impl AccessList {
    /// Parses an access file's text.
    pub fn parse(text: &str) -> Result<AccessList, AccessFileError> {
        let mut identities: Vec<Identity> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let refuse = |reason: String| AccessFileError {
                line: index + 1,
                reason,
            };
            let content = line.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content.split_ascii_whitespace().collect();
            let [name, role, hash] = fields[..] else {
                return Err(refuse(format!(
                    "expected NAME ROLE sha256:HEX, found {} fields",
                    fields.len()
                )));
            };
            if !signature::is_identity(name) {
                return Err(refuse(format!(
                    "name {name:?}: 1-64 of A-Z a-z 0-9 _ . @ -"
                )));
            }
            let role = Role::parse(role).map_err(refuse)?;
            let mut token_hash = [0u8; 32];
            let hex = hash.strip_prefix(HASH_PREFIX).filter(|hex| {
                hex.len() == 64
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            });
            if hex
                .and_then(|hex| signature::decode_hex(hex, &mut token_hash))
                .is_none()
            {
                return Err(refuse(format!(
                    "{hash:?} is not sha256: and 64 lowercase hexadecimal digits"
                )));
            }
            if identities.iter().any(|known| known.name == name) {
                return Err(refuse(format!("{name} is named twice")));
            }
            if identities
                .iter()
                .any(|known| known.token_hash == token_hash)
            {
                return Err(refuse(format!(
                    "{name} has the same token as another identity"
                )));
            }
            if identities.len() == ACCESS_MAX_IDENTITIES {
                return Err(refuse(format!(
                    "more than {ACCESS_MAX_IDENTITIES} identities"
                )));
            }
            identities.push(Identity {
                name: name.to_string(),
                role,
                token_hash,
            });
        }
        Ok(AccessList { identities })
    }

    /// The line an access file holds for `name` with `role` and the token `token`.
    pub fn line(name: &str, role: &Role, token: &str) -> String {
        format!(
            "{name} {role} {HASH_PREFIX}{}",
            signature::sha256_hex(token.as_bytes())
        )
    }

    /// The identity whose token is `token`, comparing the token's hash with every identity's
    /// in constant time (the time taken does not depend on how much of a hash matched).
    pub fn authenticate(&self, token: &str) -> Option<&Identity> {
        use sha2::Digest;
        let presented: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for identity in &self.identities {
            let difference = identity
                .token_hash
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if difference == 0 {
                found = Some(identity);
            }
        }
        found
    }

    /// Every identity, in file order.
    pub fn identities(&self) -> &[Identity] {
        &self.identities
    }
}

// ---- the tracker's API and the web console -------------------------------------------------

/// Who is asking, as far as authentication went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller<'a> {
    /// No access file is configured: reads as the listener allows, no action.
    Open,
    /// An access file is configured and the request carried no token, or an unknown one.
    Unknown,
    /// The identity whose token the request carried.
    Identified(&'a Identity),
}

/// Where a request arrived: the provider's listener, or a tenant network's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener<'a> {
    /// The provider's (a provider network's address, or the API address itself).
    Provider,
    /// The listener on this tenant's network.
    Tenant(&'a str),
}

/// What a caller sees: everything, or one tenant's slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View<'a> {
    /// The provider's view.
    Provider,
    /// A tenant's slice.
    Tenant(&'a str),
}

impl View<'_> {
    /// The tenant whose slice this is, if it is one.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            View::Provider => None,
            View::Tenant(tenant) => Some(tenant),
        }
    }

    /// Whether this view holds a VM filed under `tenant`.
    pub fn sees_tenant(&self, tenant: Option<&str>) -> bool {
        match self {
            View::Provider => true,
            View::Tenant(own) => tenant == Some(*own),
        }
    }
}

/// A refused request: the HTTP status and why, for the log, the audit and the answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 401 (who are you), 403 (not allowed), 404 (not there, or not for this caller), 429.
    pub status: u16,
    /// Why, in words.
    pub reason: &'static str,
}

impl Refusal {
    fn new(status: u16, reason: &'static str) -> Refusal {
        Refusal { status, reason }
    }
}

/// A target that is not there, or not for this caller: the same answer either way.
pub const NOT_FOUND: Refusal = Refusal {
    status: 404,
    reason: "no such target",
};

/// What a caller may read at `listener`: its view, or the refusal.
///
/// Without an access file ([`Caller::Open`]) the listener decides, as it always has: a tenant
/// network's listener serves that tenant's slice, the provider's everything. With one, every
/// request needs a token (401); on a tenant's listener only that tenant's identities are
/// accepted (403); on the provider's, a provider role sees everything and a tenant identity its
/// own slice.
pub fn view<'a>(caller: Caller<'a>, listener: Listener<'a>) -> Result<View<'a>, Refusal> {
    match (caller, listener) {
        (Caller::Unknown, _) => Err(Refusal::new(401, "a valid bearer token is required")),
        (Caller::Open, Listener::Provider) => Ok(View::Provider),
        (Caller::Open, Listener::Tenant(tenant)) => Ok(View::Tenant(tenant)),
        (Caller::Identified(identity), Listener::Tenant(tenant)) => match identity.role.tenant() {
            Some(own) if own == tenant => Ok(View::Tenant(tenant)),
            _ => Err(Refusal::new(
                403,
                "this network's listener serves its own tenant's identities only",
            )),
        },
        (Caller::Identified(identity), Listener::Provider) => match &identity.role {
            Role::Tenant(tenant) => Ok(View::Tenant(tenant)),
            _ => Ok(View::Provider),
        },
    }
}

/// What kind of action a call is, which decides who may make it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActionKind {
    /// A DomainControl action on the VM's Domain device, on the hypervisor placing it.
    Lifecycle,
    /// An action of a service the VM's owner advertises.
    Owner,
    /// A Hypervisor service action.
    Hypervisor,
}

/// The target of an action, as the repositories know it at the time of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// A VM: `None` when the repository has no record of it; else the tenant it is filed under.
    Vm(Option<Option<&'a str>>),
    /// A hypervisor: whether the repository has a record of it.
    Hypervisor(bool),
}

/// One action call to decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActionAsk<'a> {
    /// Its kind.
    pub kind: ActionKind,
    /// The action's name.
    pub name: &'a str,
    /// Its semantics annotation (from the SCPD).
    pub semantics: &'a [Semantic],
}

/// May the caller call `action` on `target`, asking at `listener`? `tenant_control` is the
/// lifecycle actions a tenant may call on its own VMs (`track --tenant-control`).
///
/// A VM that is not in the caller's view is 404 (never 403: a tenant must not learn that
/// another tenant's VM exists); so is a hypervisor to a tenant. Without an access file no
/// action is allowed (403). Then by role: a viewer none; an operator every action whose
/// semantics do not say destructive; an admin every one; a tenant the owner actions of its own
/// VMs, and their lifecycle actions when `tenant_control` lists them.
pub fn may_act(
    caller: Caller<'_>,
    listener: Listener<'_>,
    target: Target<'_>,
    action: ActionAsk<'_>,
    tenant_control: &[String],
) -> Result<(), Refusal> {
    visible(caller, listener, target)?;
    let identity = match caller {
        Caller::Identified(identity) => identity,
        Caller::Open => {
            return Err(Refusal::new(
                403,
                "actions need an access file (--access) and a token",
            ))
        }
        Caller::Unknown => return Err(Refusal::new(401, "a valid bearer token is required")),
    };
    let destructive = action.semantics.contains(&Semantic::Destructive);
    let allowed = match (&identity.role, action.kind) {
        (Role::Admin, _) => true,
        (Role::Operator, _) => !destructive,
        (Role::Viewer, _) => false,
        (Role::Tenant(_), ActionKind::Owner) => true,
        (Role::Tenant(_), ActionKind::Lifecycle) => {
            tenant_control.iter().any(|allowed| allowed == action.name)
        }
        (Role::Tenant(_), ActionKind::Hypervisor) => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Refusal::new(
            403,
            "this identity's role does not allow that action",
        ))
    }
}

/// Whether `target` is in what the caller may see at `listener` (its view, else 401/403), and
/// there: a VM outside the caller's view, an unknown VM or hypervisor, a hypervisor to a
/// tenant, are all [`NOT_FOUND`] alike.
pub fn visible<'a>(
    caller: Caller<'a>,
    listener: Listener<'a>,
    target: Target<'_>,
) -> Result<View<'a>, Refusal> {
    let seen = view(caller, listener)?;
    match (target, seen) {
        (Target::Vm(None), _) | (Target::Hypervisor(false), _) => Err(NOT_FOUND),
        (Target::Hypervisor(true), View::Tenant(_)) => Err(NOT_FOUND),
        (Target::Vm(Some(tenant)), view) if !view.sees_tenant(tenant) => Err(NOT_FOUND),
        _ => Ok(seen),
    }
}

/// Failed authentications per source address, so a source that keeps guessing gets 429: at
/// most [`FAILURES_PER_SOURCE`] in a window of [`FAILURE_WINDOW`] seconds per source, and
/// [`FAILURES_GLOBAL`] from all sources together, whose overflow only ever answers 429 to
/// requests whose token failed (a valid token still works while strangers flood). The table
/// holds at most [`FAILURE_SOURCES`] sources; past that, new sources share the global count.
#[derive(Debug, Default)]
pub struct Failures {
    sources: HashMap<IpAddr, (u64, u32)>,
    global: (u64, u32),
}

/// Failed authentications one source may make per window.
pub const FAILURES_PER_SOURCE: u32 = 10;
/// Failed authentications all sources may make per window.
pub const FAILURES_GLOBAL: u32 = 200;
/// The window, seconds.
pub const FAILURE_WINDOW: u64 = 60;
/// Sources counted one by one, at most.
pub const FAILURE_SOURCES: usize = 4096;

impl Failures {
    /// An empty table.
    pub fn new() -> Failures {
        Failures::default()
    }

    /// Whether `source` is past its limit at `now` (its requests get 429 before any token is
    /// looked at).
    pub fn blocked(&self, now: u64, source: IpAddr) -> bool {
        self.sources.get(&source).is_some_and(|(start, count)| {
            now < start + FAILURE_WINDOW && *count >= FAILURES_PER_SOURCE
        })
    }

    /// Counts a failed authentication from `source` at `now`; returns whether the answer is
    /// 429 rather than 401, and whether this failure crossed the source's limit (log it once).
    pub fn fail(&mut self, now: u64, source: IpAddr) -> (bool, bool) {
        if now >= self.global.0 + FAILURE_WINDOW {
            self.global = (now, 0);
            self.sources
                .retain(|_, (start, _)| now < *start + FAILURE_WINDOW);
            if self.sources.is_empty() {
                self.sources.shrink_to(0);
            }
        }
        self.global.1 = self.global.1.saturating_add(1);
        let over_global = self.global.1 > FAILURES_GLOBAL;
        let full = self.sources.len() >= FAILURE_SOURCES;
        let entry = match self.sources.get_mut(&source) {
            Some(entry) => entry,
            None if full => return (over_global, false),
            None => self.sources.entry(source).or_insert((now, 0)),
        };
        if now >= entry.0 + FAILURE_WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        let crossed = entry.1 == FAILURES_PER_SOURCE;
        (over_global || entry.1 >= FAILURES_PER_SOURCE, crossed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{DOMAIN_CONTROL_SERVICE, HYPERVISOR_SERVICE};

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    fn flags(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn the_default_is_this_host_only() {
        let own = [Ipv4Addr::new(10, 99, 1, 11)];
        let policy = ControlPolicy::from_flags(&[], &own).expect("default");
        assert!(policy.admits(ip("127.0.0.1")));
        assert!(policy.admits(ip("127.1.2.3")));
        assert!(policy.admits(ip("10.99.1.11")));
        assert!(!policy.admits(ip("10.99.1.12")));
        assert!(!policy.admits(ip("::1")));
        assert_eq!(policy.to_string(), "127.0.0.0/8, 10.99.1.11/32");
    }

    #[test]
    fn a_list_replaces_the_default_and_any_opens_everything() {
        let own = [Ipv4Addr::new(10, 99, 1, 11)];
        let policy =
            ControlPolicy::from_flags(&flags(&["10.99.1.2", "10.98.0.0/16"]), &own).expect("valid");
        assert!(policy.admits(ip("10.99.1.2")));
        assert!(policy.admits(ip("10.98.7.7")));
        assert!(!policy.admits(ip("10.99.1.3")));
        assert!(!policy.admits(ip("127.0.0.1")), "loopback only when listed");
        assert!(!policy.admits(ip("10.99.1.11")));

        let any = ControlPolicy::from_flags(&flags(&["any"]), &own).expect("any");
        assert_eq!(any, ControlPolicy::Any);
        assert!(any.admits(ip("10.1.2.3")) && any.admits(ip("::1")));

        let mixed = ControlPolicy::from_flags(&flags(&["any", "10.0.0.1"]), &own);
        assert!(mixed.expect_err("mixed").contains("cannot be combined"));
        let bad = ControlPolicy::from_flags(&flags(&["10.0.0.1", "nope"]), &own);
        assert!(bad
            .expect_err("bad")
            .starts_with("--allow-control \"nope\""));
        let many = vec!["10.0.0.1".to_string(); ALLOW_CONTROL_MAX + 1];
        assert!(ControlPolicy::from_flags(&many, &own).is_err());
    }

    /// The rules of a hypervisor with `--allow-control` and no key.
    fn listed(policy: ControlPolicy) -> ControlRules {
        ControlRules {
            guarded: Guarded::Mutating,
            allow: Some(policy),
            signed: false,
        }
    }

    fn authorize(
        policy: &ControlPolicy,
        peer: IpAddr,
        action: &ActionSpec,
    ) -> Result<(), UpnpError> {
        authorize_control(
            &listed(policy.clone()),
            peer,
            &SignatureCheck::NoKey,
            action,
        )
    }

    #[test]
    fn reads_stay_open_and_mutations_need_the_list() {
        let policy = ControlPolicy::from_flags(&flags(&["10.99.1.2"]), &[]).expect("valid");
        let outsider = ip("10.99.1.50");
        let insider = ip("10.99.1.2");
        let mut mutating = Vec::new();
        for spec in [&*HYPERVISOR_SERVICE, &*DOMAIN_CONTROL_SERVICE] {
            for action in &spec.actions {
                assert!(
                    authorize(&policy, insider, action).is_ok(),
                    "{}",
                    action.name
                );
                match authorize(&policy, outsider, action) {
                    Ok(()) => assert!(action.read_only, "{} let through", action.name),
                    Err(error) => {
                        assert_eq!(error.code, 606, "{}", action.name);
                        assert!(error.description.starts_with("Action not authorized"));
                        mutating.push(action.name.clone());
                    }
                }
            }
        }
        assert_eq!(
            mutating,
            [
                "StartVirtualMachine",
                "Shutdown",
                "Reboot",
                "Pause",
                "Resume",
                "Suspend",
                "Destroy"
            ]
        );
    }

    fn action(name: &str, read_only: bool) -> ActionSpec {
        ActionSpec {
            name: name.into(),
            arguments: Vec::new(),
            semantics: Vec::new(),
            read_only,
        }
    }

    #[test]
    fn signatures_and_addresses_must_both_pass_where_both_are_asked() {
        let valid = SignatureCheck::Valid("tracker".into());
        let replayed = SignatureCheck::Invalid(SignatureError::Replayed);
        let missing = SignatureCheck::Invalid(SignatureError::Missing);
        let tracker = ip("10.99.1.2");
        let stranger = ip("10.99.1.50");
        let only_tracker = Some(ControlPolicy::from_flags(&flags(&["10.99.1.2"]), &[]).unwrap());
        let rules = |guarded, allow: Option<ControlPolicy>, signed| ControlRules {
            guarded,
            allow,
            signed,
        };
        let pause = action("Pause", false);
        let get_state = action("GetState", true);
        type Case<'a> = (
            ControlRules,
            IpAddr,
            &'a SignatureCheck,
            &'a ActionSpec,
            Result<(), &'a str>,
        );
        let cases: Vec<Case> = vec![
            // A key alone: the signature decides, from any admitted address.
            (
                rules(Guarded::Mutating, None, true),
                stranger,
                &valid,
                &pause,
                Ok(()),
            ),
            (
                rules(Guarded::Mutating, None, true),
                tracker,
                &missing,
                &pause,
                Err("no signature"),
            ),
            (
                rules(Guarded::Mutating, None, true),
                tracker,
                &replayed,
                &pause,
                Err("replay"),
            ),
            (
                rules(Guarded::Mutating, None, true),
                stranger,
                &missing,
                &get_state,
                Ok(()),
            ),
            // A key and a list: both.
            (
                rules(Guarded::Mutating, only_tracker.clone(), true),
                tracker,
                &valid,
                &pause,
                Ok(()),
            ),
            (
                rules(Guarded::Mutating, only_tracker.clone(), true),
                stranger,
                &valid,
                &pause,
                Err("--allow-control"),
            ),
            (
                rules(Guarded::Mutating, only_tracker.clone(), true),
                tracker,
                &missing,
                &pause,
                Err("no signature"),
            ),
            // A VM with a key: every action, read-only or not.
            (
                rules(Guarded::Every, None, true),
                stranger,
                &missing,
                &get_state,
                Err("no signature"),
            ),
            (
                rules(Guarded::Every, None, true),
                stranger,
                &valid,
                &get_state,
                Ok(()),
            ),
            // A VM without a key: open, as the owner chose.
            (
                rules(Guarded::Every, None, false),
                stranger,
                &SignatureCheck::NoKey,
                &pause,
                Ok(()),
            ),
        ];
        for (rules, peer, signature, action, expected) in cases {
            let result = authorize_control(&rules, peer, signature, action);
            match (result, expected) {
                (Ok(()), Ok(())) => {}
                (Err(error), Err(part)) => {
                    assert_eq!(error.code, 606);
                    assert!(error.description.contains(part), "{error} lacks {part:?}");
                }
                (result, expected) => panic!(
                    "{rules:?} {peer} {signature:?} {}: {result:?}, wanted {expected:?}",
                    action.name
                ),
            }
        }
    }

    const ALICE_TOKEN: &str = "alice-token";
    const OPS_TOKEN: &str = "ops-token";
    const ACME_TOKEN: &str = "acme-token";

    fn list() -> AccessList {
        let text = format!(
            "# identities\n{}\n\n{}   # the on-call team\n{}\n{}\n",
            AccessList::line("alice", &Role::Admin, ALICE_TOKEN),
            AccessList::line("ops", &Role::Operator, OPS_TOKEN),
            AccessList::line("eve", &Role::Viewer, "eve-token"),
            AccessList::line("acme-bot", &Role::Tenant("acme".into()), ACME_TOKEN),
        );
        AccessList::parse(&text).expect("valid access file")
    }

    #[test]
    fn the_access_file_parses_and_authenticates_by_token_hash() {
        let list = list();
        let names: Vec<String> = list
            .identities()
            .iter()
            .map(|i| format!("{} {}", i.name, i.role))
            .collect();
        assert_eq!(
            names,
            [
                "alice admin",
                "ops operator",
                "eve viewer",
                "acme-bot tenant:acme"
            ]
        );
        assert_eq!(
            list.authenticate(ALICE_TOKEN).map(|i| i.name.as_str()),
            Some("alice")
        );
        assert_eq!(
            list.authenticate(ACME_TOKEN).map(|i| &i.role),
            Some(&Role::Tenant("acme".into()))
        );
        assert!(list.authenticate("alice-token ").is_none());
        assert!(list.authenticate("").is_none());
        assert!(AccessList::line("a", &Role::Viewer, "t").starts_with("a viewer sha256:"));
        assert!(!format!("{:?}", list).contains(&signature::sha256_hex(ALICE_TOKEN.as_bytes())));
    }

    #[test]
    fn a_malformed_line_refuses_the_whole_file_with_its_number() {
        let good = AccessList::line("alice", &Role::Admin, ALICE_TOKEN);
        let hash = signature::sha256_hex(b"x");
        for (bad, reason) in [
            ("alice admin".to_string(), "fields"),
            (format!("alice admin sha256:{hash} extra"), "fields"),
            (format!("al ice admin sha256:{hash}"), "fields"),
            (format!("al:ice admin sha256:{hash}"), "name"),
            (format!("bob root sha256:{hash}"), "expected viewer"),
            (format!("bob tenant: sha256:{hash}"), "tenant"),
            (format!("bob tenant:a/b sha256:{hash}"), "tenant"),
            ("bob admin sha256:abc".to_string(), "64 lowercase"),
            (
                format!("bob admin sha256:{}", hash.to_uppercase()),
                "64 lowercase",
            ),
            (format!("bob admin md5:{hash}"), "64 lowercase"),
            (format!("alice viewer sha256:{hash}"), "named twice"),
            (good.replace("alice", "bob"), "same token"),
        ] {
            let text = format!("# header\n{good}\n{bad}\n");
            let error = AccessList::parse(&text).expect_err(&bad);
            assert_eq!(error.line, 3, "{bad}");
            assert!(error.reason.contains(reason), "{bad}: {error}");
        }
        assert_eq!(AccessList::parse("").unwrap().identities().len(), 0);
        assert_eq!(
            AccessList::parse("# nothing\n   \n")
                .unwrap()
                .identities()
                .len(),
            0
        );
    }

    #[test]
    fn what_each_caller_sees_where() {
        let list = list();
        let alice = list.authenticate(ALICE_TOKEN).unwrap();
        let acme = list.authenticate(ACME_TOKEN).unwrap();
        let cases = [
            (Caller::Open, Listener::Provider, Ok(View::Provider)),
            (
                Caller::Open,
                Listener::Tenant("acme"),
                Ok(View::Tenant("acme")),
            ),
            (Caller::Unknown, Listener::Provider, Err(401)),
            (Caller::Unknown, Listener::Tenant("acme"), Err(401)),
            (
                Caller::Identified(alice),
                Listener::Provider,
                Ok(View::Provider),
            ),
            (
                Caller::Identified(alice),
                Listener::Tenant("acme"),
                Err(403),
            ),
            (
                Caller::Identified(acme),
                Listener::Provider,
                Ok(View::Tenant("acme")),
            ),
            (
                Caller::Identified(acme),
                Listener::Tenant("acme"),
                Ok(View::Tenant("acme")),
            ),
            (Caller::Identified(acme), Listener::Tenant("beta"), Err(403)),
        ];
        for (caller, listener, expected) in cases {
            assert_eq!(
                view(caller, listener).map_err(|r| r.status),
                expected,
                "{caller:?} at {listener:?}"
            );
        }
    }

    #[test]
    fn who_may_call_what_on_which_target() {
        let list = list();
        let id = |token| Caller::Identified(list.authenticate(token).unwrap());
        let eve = id("eve-token");
        let (alice, ops, acme) = (id(ALICE_TOKEN), id(OPS_TOKEN), id(ACME_TOKEN));
        let ask = |kind, name, semantics| ActionAsk {
            kind,
            name,
            semantics,
        };
        let destructive: &[Semantic] = &[Semantic::Destructive, Semantic::Confirm];
        let pause = ask(ActionKind::Lifecycle, "Pause", &[Semantic::Idempotent]);
        let destroy = ask(ActionKind::Lifecycle, "Destroy", destructive);
        let echo = ask(ActionKind::Owner, "Echo", &[]);
        let wipe = ask(ActionKind::Owner, "Wipe", destructive);
        let start = ask(ActionKind::Hypervisor, "StartVirtualMachine", &[]);
        let acme_vm = Target::Vm(Some(Some("acme")));
        let beta_vm = Target::Vm(Some(Some("beta")));
        let unfiled_vm = Target::Vm(Some(None));
        let host = Target::Hypervisor(true);
        let pause_only = ["Pause".to_string()];
        let p = Listener::Provider;
        let t = Listener::Tenant("acme");
        #[rustfmt::skip]
        type Case<'a> = (Caller<'a>, Listener<'a>, Target<'a>, ActionAsk<'a>, &'a [String], Result<(), u16>);
        let cases: Vec<Case> = vec![
            // No access file: reads stay, actions are refused; a tenant still cannot see others.
            (Caller::Open, p, acme_vm, pause, &[], Err(403)),
            (Caller::Open, t, beta_vm, echo, &[], Err(404)),
            (Caller::Unknown, p, acme_vm, pause, &[], Err(401)),
            // Provider roles.
            (eve, p, acme_vm, pause, &[], Err(403)),
            (ops, p, acme_vm, pause, &[], Ok(())),
            (ops, p, acme_vm, destroy, &[], Err(403)),
            (ops, p, acme_vm, wipe, &[], Err(403)),
            (ops, p, host, start, &[], Ok(())),
            (alice, p, acme_vm, destroy, &[], Ok(())),
            (alice, p, unfiled_vm, wipe, &[], Ok(())),
            (alice, p, Target::Vm(None), pause, &[], Err(404)),
            (alice, p, Target::Hypervisor(false), start, &[], Err(404)),
            (alice, t, acme_vm, pause, &[], Err(403)),
            // A tenant: its own VMs' owner actions; lifecycle only where listed; others 404.
            (acme, t, acme_vm, echo, &[], Ok(())),
            (acme, p, acme_vm, wipe, &[], Ok(())),
            (acme, t, acme_vm, pause, &[], Err(403)),
            (acme, t, acme_vm, pause, &pause_only, Ok(())),
            (acme, t, acme_vm, destroy, &pause_only, Err(403)),
            (acme, t, beta_vm, echo, &pause_only, Err(404)),
            (acme, t, beta_vm, pause, &pause_only, Err(404)),
            (acme, t, unfiled_vm, echo, &[], Err(404)),
            (acme, t, host, start, &[], Err(404)),
            (acme, p, host, start, &[], Err(404)),
        ];
        for (caller, listener, target, action, tenant_control, expected) in cases {
            assert_eq!(
                may_act(caller, listener, target, action, tenant_control).map_err(|r| r.status),
                expected,
                "{caller:?} at {listener:?}: {} on {target:?}",
                action.name
            );
        }
    }

    #[test]
    fn failed_authentications_are_bounded_per_source_and_globally() {
        let mut failures = Failures::new();
        let guesser = ip("10.0.0.66");
        let other = ip("10.0.0.7");
        for attempt in 1..FAILURES_PER_SOURCE {
            assert!(!failures.blocked(100, guesser));
            assert_eq!(
                failures.fail(100, guesser),
                (false, false),
                "attempt {attempt}"
            );
        }
        assert_eq!(
            failures.fail(100, guesser),
            (true, true),
            "the limit: logged once"
        );
        assert!(failures.blocked(101, guesser));
        assert_eq!(failures.fail(101, guesser), (true, false));
        assert!(!failures.blocked(101, other));
        assert!(
            !failures.blocked(100 + FAILURE_WINDOW, guesser),
            "a new window"
        );
        // Rotating sources: the global count answers 429 once it is spent.
        let mut rotating = Failures::new();
        let mut answered_429 = 0;
        for n in 0..(FAILURES_GLOBAL + 50) {
            let source = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n));
            if rotating.fail(500, source).0 {
                answered_429 += 1;
            }
        }
        assert_eq!(answered_429, 50);
    }
}
