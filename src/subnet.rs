//! Subnets: the one answer to "is this address inside that network?", for interfaces (who the
//! servers answer, whose datagrams the engines take) and for `--allow-control` lists. Pure: no
//! I/O.

use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 subnet: a network address and a prefix length (`10.0.0.0/24`; a bare address is `/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subnet {
    /// The network address (host bits cleared).
    pub address: Ipv4Addr,
    /// Prefix length, 0..=32.
    pub prefix: u8,
}

impl Subnet {
    /// The network of `address` with `prefix` bits (host bits cleared); `None` above 32.
    pub fn new(address: Ipv4Addr, prefix: u8) -> Option<Subnet> {
        let mask = mask(prefix)?;
        Some(Subnet {
            address: Ipv4Addr::from(u32::from(address) & mask),
            prefix,
        })
    }

    /// Exactly one host.
    pub fn host(address: Ipv4Addr) -> Subnet {
        Subnet {
            address,
            prefix: 32,
        }
    }

    /// Parses `A.B.C.D` or `A.B.C.D/N` (N in 0..=32; host bits are cleared, so `10.0.0.7/24`
    /// is `10.0.0.0/24`). IPv6 is refused: xenplug answers on IPv4 only.
    pub fn parse(text: &str) -> Result<Subnet, String> {
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
        Subnet::new(address, prefix)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to 32"))
    }

    /// Whether `address` is inside.
    pub fn contains(&self, address: Ipv4Addr) -> bool {
        mask(self.prefix).is_some_and(|mask| u32::from(address) & mask == u32::from(self.address))
    }
}

impl fmt::Display for Subnet {
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

impl Subnet {
    /// The subnet of an interface address with its netmask (`10.0.0.5` with `255.255.255.0`
    /// is `10.0.0.0/24`). A netmask's prefix is its leading one bits; Linux allows no other.
    pub fn of_interface(address: Ipv4Addr, netmask: Ipv4Addr) -> Subnet {
        let prefix = u32::from(netmask).leading_ones() as u8;
        Subnet::new(address, prefix).unwrap_or(Subnet::host(address))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_contain() {
        let net = Subnet::parse("10.99.1.0/24").expect("valid");
        assert_eq!(net.to_string(), "10.99.1.0/24");
        assert!(net.contains(Ipv4Addr::new(10, 99, 1, 200)));
        assert!(!net.contains(Ipv4Addr::new(10, 99, 2, 1)));
        let host = Subnet::parse("10.99.1.2").expect("valid");
        assert_eq!(host, Subnet::host(Ipv4Addr::new(10, 99, 1, 2)));
        assert!(host.contains(Ipv4Addr::new(10, 99, 1, 2)));
        assert!(!host.contains(Ipv4Addr::new(10, 99, 1, 3)));
        // Host bits are cleared.
        assert_eq!(
            Subnet::parse("10.0.0.7/8").expect("valid").to_string(),
            "10.0.0.0/8"
        );
        let all = Subnet::parse("0.0.0.0/0").expect("valid");
        assert!(all.contains(Ipv4Addr::new(192, 0, 2, 1)));
        assert!(Subnet::parse("1.2.3.4/32")
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
            let error = Subnet::parse(text).expect_err(text);
            assert!(error.contains(reason), "{text:?}: {error}");
        }
    }

    #[test]
    fn parsing_every_prefix_of_a_valid_network_never_panics() {
        let text = "192.168.100.200/24";
        for end in 0..=text.len() {
            let _ = Subnet::parse(&text[..end]);
        }
        assert!(Subnet::parse(text).is_ok());
    }

    #[test]
    fn interface_subnets_come_from_the_netmask() {
        let subnet =
            Subnet::of_interface(Ipv4Addr::new(10, 0, 3, 5), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(subnet.to_string(), "10.0.3.0/24");
        assert!(subnet.contains(Ipv4Addr::new(10, 0, 3, 200)));
        assert!(!subnet.contains(Ipv4Addr::new(10, 0, 4, 5)));
        let loopback = Subnet::of_interface(Ipv4Addr::LOCALHOST, Ipv4Addr::new(255, 0, 0, 0));
        assert!(loopback.contains(Ipv4Addr::new(127, 9, 9, 9)));
        let point = Subnet::of_interface(Ipv4Addr::new(10, 1, 1, 1), Ipv4Addr::BROADCAST);
        assert!(point.contains(Ipv4Addr::new(10, 1, 1, 1)));
        assert!(!point.contains(Ipv4Addr::new(10, 1, 1, 2)));
    }
}
