//! Access: who may call a hypervisor's mutating actions (`--allow-control`). Pure decisions
//! over addresses and action tables: no I/O, no clock, no logging.
//!
//! The design's security model: mutating hypervisor actions need an authorized caller;
//! read-only actions, descriptions, SCPDs and eventing stay open to the management network
//! (every peer the HTTP server admits at all, i.e. inside an interface's subnet). A caller
//! that is not authorized gets UPnP error 606 "Action not authorized" (UDA 1.1 section 3.2.2,
//! one of the codes it lists for DeviceSecurity).

use crate::consts::ALLOW_CONTROL_ANY;
use crate::model::ActionSpec;
use crate::subnet::Subnet;
use crate::wire::soap::{UpnpError, ACTION_NOT_AUTHORIZED};
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

/// Whether `peer` may call `action` under `policy`: a read-only action always, any other only
/// when the policy admits the peer. `Err` is the 606 to answer.
pub fn authorize(
    policy: &ControlPolicy,
    peer: IpAddr,
    action: &ActionSpec,
) -> Result<(), UpnpError> {
    if action.read_only || policy.admits(peer) {
        Ok(())
    } else {
        Err(UpnpError::new(
            ACTION_NOT_AUTHORIZED,
            "Action not authorized: this caller is not in the hypervisor's --allow-control list",
        ))
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
}
