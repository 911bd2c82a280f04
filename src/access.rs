//! Access: who may call a hypervisor's mutating actions (`--allow-control`). Pure decisions
//! over addresses and action tables: no I/O, no clock, no logging.
//!
//! The design's security model: mutating hypervisor actions need an authorized caller;
//! read-only actions, descriptions, SCPDs and eventing stay open to the management network
//! (every peer the HTTP server admits at all, i.e. inside an interface's subnet). A caller
//! that is not authorized gets UPnP error 606 "Action not authorized" (UDA 1.1 section 3.2.2,
//! one of the codes it lists for DeviceSecurity).

use crate::consts::{ALLOW_CONTROL_ANY, ALLOW_CONTROL_MAX, LOOPBACK_NETWORK};
use crate::model::ActionSpec;
use crate::wire::soap::{UpnpError, ACTION_NOT_AUTHORIZED};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// An IPv4 network: an address and a prefix length (`10.0.0.0/24`; a bare address is `/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    /// The network address (host bits cleared).
    pub address: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Network {
    /// The network of `address` with `prefix` bits (host bits cleared); `None` above 32.
    pub fn new(address: Ipv4Addr, prefix: u8) -> Option<Network> {
        let mask = mask(prefix)?;
        Some(Network {
            address: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }

    /// Exactly one host.
    pub fn host(address: Ipv4Addr) -> Network {
        Network {
            address,
            prefix: 32,
        }
    }

    /// Parses `A.B.C.D` or `A.B.C.D/N` (N in 0..=32; host bits are cleared, so `10.0.0.7/24`
    /// is `10.0.0.0/24`). IPv6 is refused: xenplug answers on IPv4 only.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: Ipv4Addr = address.parse().map_err(|_| {
            if address.contains(':') {
                format!("{text:?}: IPv6 is not supported (xenplug answers on IPv4 only)")
            } else {
                format!("{text:?} is not an IPv4 address or ADDRESS/PREFIX")
            }
        })?;
        let prefix = match prefix {
            None => 32,
            Some(digits) => digits
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= 32 && !digits.starts_with('+'))
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to 32"))?,
        };
        Network::new(address, prefix)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to 32"))
    }

    /// Whether `address` is inside.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        mask(self.prefix).is_some_and(|mask| u32::from(address) & mask == u32::from(self.address))
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

/// The netmask of a prefix length, `None` above 32.
fn mask(prefix: u8) -> Option<u32> {
    match prefix {
        0 => Some(0),
        1..=32 => Some(u32::MAX << (32 - u32::from(prefix))),
        _ => None,
    }
}

/// Who may call mutating actions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlPolicy {
    /// Every peer the device answers (`--allow-control any`).
    Any,
    /// Only peers inside one of these networks.
    Only(Vec<Network>),
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
            let mut networks: Vec<Network> = Network::new(loopback, prefix).into_iter().collect();
            networks.extend(own.iter().map(|address| Network::host(*address)));
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
            .map(|text| Network::parse(text).map_err(|e| format!("--allow-control {e}")))
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
    fn networks_parse_and_contain() {
        let net = Network::parse("10.99.1.0/24").expect("valid");
        assert_eq!(net.to_string(), "10.99.1.0/24");
        assert!(net.contains(Ipv4Addr::new(10, 99, 1, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 99, 2, 1)));
        let host = Network::parse("10.99.1.2").expect("valid");
        assert_eq!(host, Network::host(Ipv4Addr::new(10, 99, 1, 2)));
        assert!(host.contains(Ipv4Addr::new(10, 99, 1, 2)));
        assert!(!host.contains(Ipv4Addr::new(10, 99, 1, 3)));
        // Host bits are cleared.
        assert_eq!(
            Network::parse("10.0.0.7/8").expect("valid").to_string(),
            "10.0.0.0/8"
        );
        let all = Network::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(Network::parse("1.2.3.4/32")
            .expect("valid")
            .contains(Ipv4Addr::new(1, 2, 3, 4)));
    }

    #[test]
    fn bad_networks_are_refused_with_a_reason() {
        for (text, reason) in [
            ("", "not an IPv4"),
            ("10.0.0", "not an IPv4"),
            ("10.0.0.256", "not an IPv4"),
            ("host.example", "not an IPv4"),
            ("10.0.0.0/33", "0 to 32"),
            ("10.0.0.0/", "0 to 32"),
            ("10.0.0.0/+8", "0 to 32"),
            ("10.0.0.0/-1", "0 to 32"),
            ("10.0.0.0/8/8", "0 to 32"),
            ("10.0.0.0/999999999999", "0 to 32"),
            ("::1", "IPv6"),
            ("fe80::1/64", "IPv6"),
        ] {
            let error = Network::parse(text).expect_err(text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn parsing_every_prefix_of_a_valid_network_never_panics() {
        let text = "192.168.100.200/24";
        for end in 0..=text.len() {
            let _ = Network::parse(&text[..end]);
        }
        assert!(Network::parse(text).is_ok());
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
