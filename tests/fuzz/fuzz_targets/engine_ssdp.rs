//! Fuzz target: the SSDP device engine fed a sequence of datagrams.
//!
//! Input: records separated by [`SEPARATOR`]; each record is one control byte and a datagram.
//! The control byte picks the receiving interface, the source address and how far the clock
//! moves before the datagram (from a fixed start), and now and then changes the device set
//! or shuts the engine down. After each datagram the engine dispatches what is due, and at
//! the end everything still pending.
//!
//! Invariants: no panic; every datagram sent parses with `wire::ssdp::parse`; notifications
//! go to the SSDP group, responses to a searcher on the interface it searched on, with the
//! LOCATION of that interface; nothing is due at or before the instant just dispatched; the
//! reply queue stays within its bound.
#![no_main]

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use xenplug::consts::{
    SSDP_MAX_PENDING_REPLIES, SSDP_PORT, SSDP_V4_GROUP, URN_DEVICE_DOMAIN, URN_DEVICE_HYPERVISOR,
    URN_SERVICE_DOMAIN_CONTROL, URN_SERVICE_HYPERVISOR,
};
use xenplug::engine::ssdp::{Config, Engine, AdvertisingInterface, Outgoing};
use xenplug::model::Advertisement;
use xenplug::subnet::Subnet;
use xenplug::wire::ssdp::{self, Message, NotifyKind};

/// Separates the records of one input.
const SEPARATOR: &[u8] = b"\0\0\0\0";
/// Wall-clock seconds written into DATE headers.
const UNIX: u64 = 1_795_478_400;
const ROOT: &str = "uuid:0b7a1c52-3d4e-4f60-8a9b-0c1d2e3f4a5b";
const DOMAINS: [&str; 3] = [
    "uuid:1d2c3b4a-5f6e-5a7b-8c9d-0e1f2a3b4c5d",
    "uuid:2e3d4c5b-6a7f-5b8c-9dae-1f2a3b4c5d6e",
    "uuid:3f4e5d6c-7b8a-5c9d-aebf-2a3b4c5d6e7f",
];
/// Clock steps a control byte picks from: none, within a repeat, within MX, past the rate
/// window, past a refresh.
const STEPS: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_millis(1),
    Duration::from_millis(150),
    Duration::from_millis(999),
    Duration::from_secs(1),
    Duration::from_secs(5),
    Duration::from_secs(60),
    Duration::from_secs(1000),
];

fn interfaces() -> Vec<AdvertisingInterface> {
    vec![
        AdvertisingInterface {
            index: 2,
            address: Ipv4Addr::new(192, 168, 10, 2),
            subnet: Subnet::of_interface(Ipv4Addr::new(192, 168, 10, 2), Ipv4Addr::new(255, 255, 255, 0)),
            http_port: 49152,
        },
        AdvertisingInterface {
            index: 5,
            address: Ipv4Addr::new(10, 20, 0, 1),
            subnet: Subnet::of_interface(Ipv4Addr::new(10, 20, 0, 1), Ipv4Addr::new(255, 255, 0, 0)),
            http_port: 49153,
        },
    ]
}

/// A hypervisor with `domains` embedded Domain devices.
fn devices(domains: usize) -> Vec<Advertisement> {
    let mut devices = vec![Advertisement {
        udn: ROOT.to_owned(),
        device_type: URN_DEVICE_HYPERVISOR.to_owned(),
        service_types: vec![URN_SERVICE_HYPERVISOR.to_owned()],
        root: true,
    }];
    for udn in DOMAINS.iter().take(domains) {
        devices.push(Advertisement {
            udn: (*udn).to_owned(),
            device_type: URN_DEVICE_DOMAIN.to_owned(),
            service_types: vec![URN_SERVICE_DOMAIN_CONTROL.to_owned()],
            root: false,
        });
    }
    devices
}

/// Source addresses a control byte picks from: inside each interface's subnet, outside
/// both, and the group itself.
const SOURCES: [SocketAddrV4; 4] = [
    SocketAddrV4::new(Ipv4Addr::new(192, 168, 10, 50), 53124),
    SocketAddrV4::new(Ipv4Addr::new(10, 20, 7, 9), 1900),
    SocketAddrV4::new(Ipv4Addr::new(172, 16, 0, 3), 40000),
    SocketAddrV4::new(SSDP_V4_GROUP, SSDP_PORT),
];
/// AdvertisingInterface indices a control byte picks from; 9 is unknown to the engine.
const INDICES: [u32; 4] = [2, 5, 9, 2];

struct Checker {
    interfaces: Vec<AdvertisingInterface>,
    /// (interface, source) of every datagram fed so far: the only places a response may go.
    searchers: HashSet<(u32, SocketAddrV4)>,
    sent: usize,
}

impl Checker {
    fn check(&mut self, outgoing: Outgoing<'_>) {
        self.sent += 1;
        let message = ssdp::parse(outgoing.bytes).unwrap_or_else(|error| {
            panic!(
                "engine sent a datagram that does not parse ({error}): {:?}",
                String::from_utf8_lossy(outgoing.bytes)
            )
        });
        let interface = self
            .interfaces
            .iter()
            .find(|i| i.index == outgoing.interface)
            .unwrap_or_else(|| panic!("sent on unknown interface {}", outgoing.interface));
        let location = format!("http://{}:{}/", interface.address, interface.http_port);
        match message {
            Message::Notify(notify) => {
                assert_eq!(
                    outgoing.destination,
                    SocketAddrV4::new(SSDP_V4_GROUP, SSDP_PORT)
                );
                assert!(notify.unique_service_name.starts_with("uuid:"));
                if notify.notification_subtype != NotifyKind::ByeBye {
                    let at = notify.location.expect("alive carries LOCATION");
                    assert!(at.starts_with(&location), "{at} on {}", interface.index);
                }
            }
            Message::Response(response) => {
                assert!(
                    self.searchers
                        .contains(&(outgoing.interface, outgoing.destination)),
                    "response to {} on {} that never searched there",
                    outgoing.destination,
                    outgoing.interface
                );
                assert!(response.location.starts_with(&location));
                assert!(
                    response.unique_service_name == response.search_target
                        || response.unique_service_name.ends_with(&format!("::{}", response.search_target)),
                    "USN {} does not name ST {}",
                    response.unique_service_name,
                    response.search_target
                );
                assert!(response.max_age.is_some() && response.server.is_some());
            }
            Message::Search(_) => panic!("the device engine sent a search"),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let config = Config {
        max_age: 1800,
        boot_id: 7,
        server: "Linux/6.1 UPnP/1.1 xenplug/0.1.0".to_owned(),
    };
    let seed = data
        .iter()
        .take(8)
        .fold(0u64, |s, &b| s << 8 | u64::from(b));
    let mut engine = Engine::new(config, interfaces(), seed);
    let mut checker = Checker {
        interfaces: interfaces(),
        searchers: HashSet::new(),
        sent: 0,
    };
    let start = Instant::now();
    let mut now = start;
    let mut config_id = 1;
    engine.set_devices(now, devices(1), config_id);

    for record in split(data) {
        let Some((&control, datagram)) = record.split_first() else {
            continue;
        };
        now += STEPS[usize::from(control >> 5)];
        let interface = INDICES[usize::from(control & 3)];
        let source = SOURCES[usize::from((control >> 2) & 3)];
        // Bit 4 with an empty datagram: a device-set change, or shutdown for the last one.
        if control & 0x10 != 0 && datagram.is_empty() {
            if control & 3 == 3 {
                engine.shutdown(now);
            } else {
                config_id += 1;
                engine.set_devices(now, devices(usize::from(control & 3)), config_id);
            }
        } else {
            checker.searchers.insert((interface, source));
            engine.on_datagram(now, interface, source, datagram);
        }
        assert!(engine.pending_replies() <= SSDP_MAX_PENDING_REPLIES);
        engine.dispatch(now, UNIX, |outgoing| checker.check(outgoing));
        if let Some(at) = engine.poll_at() {
            assert!(
                at > now,
                "work due at or before the instant just dispatched"
            );
        }
    }

    // Everything still pending: replies wait at most MX (5 s), repeats 200 ms.
    let end = now + Duration::from_secs(6);
    engine.dispatch(end, UNIX, |outgoing| checker.check(outgoing));
    assert_eq!(engine.pending_replies(), 0);
    assert!(checker.sent > 0, "not even the first announcement was sent");
});

/// The records of `data`, split on [`SEPARATOR`].
fn split(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let current = rest?;
        match current
            .windows(SEPARATOR.len())
            .position(|window| window == SEPARATOR)
        {
            Some(at) => {
                rest = current.get(at + SEPARATOR.len()..);
                current.get(..at)
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}
