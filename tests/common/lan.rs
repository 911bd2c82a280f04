//! A small bridge LAN: host namespaces joined by veth pairs to a bridge in a namespace of its own.

use std::net::Ipv4Addr;

use super::constants::WAIT;
use super::netns::{Netns, Plug};
use super::procs::{poll_until, unique};

/// One host of a [`Lan`]: its namespace, interface name inside it, and address.
pub struct Host {
    /// The host's namespace.
    pub ns: Netns,
    /// Interface name inside the namespace.
    pub iface: String,
    /// IPv4 address on the LAN (exists only inside this namespace).
    pub addr: Ipv4Addr,
}

/// A namespace holding a bridge, plus N host namespaces each with a veth into it and an address
/// 10.99.1.(10+i)/24. Multicast snooping is off so SSDP floods like on a plain switch.
pub struct Lan {
    /// The hosts, in order (addresses .11, .12, ...).
    pub hosts: Vec<Host>,
    bridge: Netns,
    /// N of 10.99.N.0/24.
    subnet: u8,
    /// Prefix length of the hosts' addresses.
    prefix: u8,
}

impl Lan {
    /// Build a LAN of `count` hosts (1..=9).
    pub fn new(tag: &str, count: usize) -> Lan {
        Lan::with_subnet(tag, count, 1)
    }

    /// Build a LAN of `count` hosts (1..=9) on 10.99.`subnet`.0/24 (hosts .11, .12, ...).
    pub fn with_subnet(tag: &str, count: usize, subnet: u8) -> Lan {
        Lan::with_prefix(tag, count, subnet, 24)
    }

    /// Build a LAN of `count` hosts (1..=9) at 10.99.`subnet`.11, .12, ... with prefix length
    /// `prefix` (16: the network is 10.99.0.0/16, room for many more addresses).
    pub fn with_prefix(tag: &str, count: usize, subnet: u8, prefix: u8) -> Lan {
        assert!((1..=9).contains(&count), "a LAN has 1..=9 hosts");
        assert!((16..=24).contains(&prefix), "a LAN's prefix is 16..=24");
        let bridge = Netns::bridge(&format!("{tag}-br"));
        let mut hosts = Vec::new();
        for i in 1..=count {
            let ns = Netns::bare(&format!("{tag}-h{i}"));
            let port = format!("port{i}");
            let addr = Ipv4Addr::new(10, 99, subnet, 10 + u8::try_from(i).expect("small"));
            bridge.plug(Plug {
                ns: &ns,
                port: &port,
                iface: "eth0",
                address: addr,
                prefix,
                isolated: false,
            });
            ns.ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"]);
            hosts.push(Host {
                ns,
                iface: "eth0".to_string(),
                addr,
            });
        }
        let lan = Lan {
            hosts,
            bridge,
            subnet,
            prefix,
        };
        lan.wait_links_up();
        lan
    }

    /// The LAN's network, `10.99.N.0/24` (what `--allow-control` takes).
    pub fn network(&self) -> String {
        let mask = u32::MAX << (32 - u32::from(self.prefix));
        let base = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 99, self.subnet, 0)) & mask);
        format!("{base}/{}", self.prefix)
    }

    /// Host `i` (0-based).
    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    /// Give `ns` a leg `iface` with address `addr` (the LAN's prefix) in this LAN (no multicast
    /// route added).
    pub fn attach(&self, ns: &Netns, iface: &str, addr: Ipv4Addr) {
        let port = format!("leg{}", unique());
        self.bridge.plug(Plug {
            ns,
            port: &port,
            iface,
            address: addr,
            prefix: self.prefix,
            isolated: false,
        });
        let up = poll_until(WAIT, || {
            ns.ok("ip", &["-o", "link", "show", iface])
                .contains("LOWER_UP")
                .then_some(())
        });
        assert!(up.is_some(), "{iface} in {} never came up", ns.name());
    }

    fn wait_links_up(&self) {
        for host in &self.hosts {
            let up = poll_until(WAIT, || {
                let out = host.ns.ok("ip", &["-o", "link", "show", "eth0"]);
                out.contains("LOWER_UP").then_some(())
            });
            assert!(up.is_some(), "eth0 in {} never came up", host.ns.name());
        }
    }
}
