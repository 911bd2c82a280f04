//! Tests of the integration harness itself (no xenplug): namespaces are made and removed, the
//! LAN carries multicast between hosts and nothing else, and the peers' output parsers work.
//! When these fail, the interop tests' failures say nothing about the binary.

mod common;

use common::*;
use std::time::Duration;

/// A python one-liner peer: send one UDP datagram to the SSDP group from `addr`.
const MULTICAST_SEND: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP,socket.IP_MULTICAST_IF,socket.inet_aton(sys.argv[1]))
s.sendto(b'harness-probe',('239.255.255.250',1900))";

/// Join the SSDP group on `addr`, print the first datagram received (bounded by 10 s).
const MULTICAST_RECV: &str = "import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind(('',1900))
s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,socket.inet_aton('239.255.255.250')+socket.inet_aton(sys.argv[1]))
s.settimeout(10)
print(s.recvfrom(100)[0].decode(),flush=True)";

/// Listen on `addr`:4999 for 10 s; print "listening", then accept one connection.
const TCP_LISTEN: &str = "import socket,sys
s=socket.socket()
s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)
s.bind((sys.argv[1],4999))
s.listen(1)
print('listening',flush=True)
s.settimeout(10)
s.accept()";

/// Connect to `addr`:4999 within 2 s; exit status says whether it worked.
const TCP_CONNECT: &str = "import socket,sys
socket.create_connection((sys.argv[1],4999),timeout=2).close()";

#[test]
fn namespace_is_created_isolated_and_removed() {
    let name;
    {
        let ns = Netns::new("harness-ns");
        name = ns.name().to_string();
        let links = ns.ok("ip", &["-o", "link"]);
        assert_eq!(links.lines().count(), 1, "only lo inside: {links}");
        assert!(
            links.contains("lo:") && links.contains("UP"),
            "lo is up: {links}"
        );
        assert!(ns
            .ok("ip", &["route", "show", "table", "all"])
            .contains("224.0.0.0/4"));
        let listed = String::from_utf8_lossy(
            &std::process::Command::new("ip")
                .args(["netns", "list"])
                .output()
                .expect("ip")
                .stdout,
        )
        .into_owned();
        assert!(listed.contains(&name), "{name} listed");
        // A process left running inside is killed when the namespace goes.
        let sleeper = ns.spawn("sleeper", ns.command("sleep", &["600"]));
        assert!(sleeper.pid() > 0);
        std::mem::forget(sleeper);
    }
    let listed = String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .expect("ip")
            .stdout,
    )
    .into_owned();
    assert!(!listed.contains(&name), "{name} deleted on drop: {listed}");
}

#[test]
fn loopback_namespace_carries_multicast() {
    let ns = Netns::new("harness-lo");
    let python = aupnp_python();
    let receiver = ns.spawn(
        "recv",
        ns.command(python, &["-c", MULTICAST_RECV, "127.0.0.1"]),
    );
    let bound = poll_until(WAIT, || (udp_1900_sockets(&ns) > 0).then_some(()));
    assert!(bound.is_some(), "receiver bound\n{}", receiver.report());
    ns.ok(python, &["-c", MULTICAST_SEND, "127.0.0.1"]);
    let got = receiver.wait_stdout(WAIT, |out| out.contains("harness-probe").then_some(()));
    assert!(
        got.is_some(),
        "datagram delivered on lo\n{}",
        receiver.report()
    );
}

#[test]
fn lan_carries_multicast_and_unicast_between_hosts_only() {
    let lan = Lan::new("harness-lan", 3);
    let python = aupnp_python();
    let (a, b, c) = (lan.host(0), lan.host(1), lan.host(2));
    assert_eq!(a.addr.to_string(), "10.99.1.11");
    assert_eq!(c.addr.to_string(), "10.99.1.13");
    let rb = b.ns.spawn(
        "recv-b",
        b.ns.command(python, &["-c", MULTICAST_RECV, &b.addr.to_string()]),
    );
    let rc = c.ns.spawn(
        "recv-c",
        c.ns.command(python, &["-c", MULTICAST_RECV, &c.addr.to_string()]),
    );
    for (host, proc) in [(b, &rb), (c, &rc)] {
        let bound = poll_until(WAIT, || (udp_1900_sockets(&host.ns) > 0).then_some(()));
        assert!(bound.is_some(), "receiver bound\n{}", proc.report());
    }
    a.ns.ok(python, &["-c", MULTICAST_SEND, &a.addr.to_string()]);
    for proc in [&rb, &rc] {
        let got = proc.wait_stdout(WAIT, |out| out.contains("harness-probe").then_some(()));
        assert!(
            got.is_some(),
            "multicast flooded to every host\n{}",
            proc.report()
        );
    }
    // Unicast TCP across the bridge (python stand-ins; nothing leaves the namespaces).
    let server = c.ns.spawn(
        "tcp-listen",
        c.ns.command(python, &["-c", TCP_LISTEN, &c.addr.to_string()]),
    );
    let listening = server.wait_stdout(WAIT, |out| out.contains("listening").then_some(()));
    assert!(listening.is_some(), "listener up\n{}", server.report());
    let connect = a.ns.run(
        python,
        &["-c", TCP_CONNECT, &c.addr.to_string()],
        Duration::from_secs(10),
    );
    assert!(connect.status.success(), "unicast across the bridge");
    // The LAN's addresses exist only inside its namespaces.
    let other = Netns::new("harness-other");
    let connect = other.run(
        python,
        &["-c", TCP_CONNECT, &c.addr.to_string()],
        Duration::from_secs(10),
    );
    assert!(
        !connect.status.success(),
        "another namespace cannot reach the LAN"
    );
}

#[test]
fn flat_json_parses_upnp_client_lines() {
    let line = r#"{"USN": "uuid:a::upnp:rootdevice", "ST": "upnp:rootdevice", "n": 5, "x": {"a": "}"}, "q": "say \"hi\"\u0021"}"#;
    let map = parse_flat_json(line).expect("parses");
    assert_eq!(map["USN"], "uuid:a::upnp:rootdevice");
    assert_eq!(map["n"], "5");
    assert_eq!(map["q"], "say \"hi\"!");
    assert!(!map.contains_key("x"));
    assert_eq!(hdr(&map, "usn"), "uuid:a::upnp:rootdevice");
    assert!(parse_flat_json("not json").is_none());
    assert!(parse_flat_json("{\"a\": \"unterminated").is_none());
}

#[test]
fn gssdp_output_parses() {
    let out = "Using network interface lo\nresource available\n  USN:      uuid:a\n  Location: http://x/d.xml\nresource unavailable\n  USN:      uuid:a\n";
    let seen = parse_gssdp(out);
    assert_eq!(seen.len(), 2);
    assert!(seen[0].available && seen[0].usn == "uuid:a" && seen[0].location == "http://x/d.xml");
    assert!(!seen[1].available && seen[1].usn == "uuid:a");
}

#[test]
fn description_line_parses() {
    let log =
        "INFO start\nINFO xenplug: description at http://127.0.0.1:4004/description.xml (lo)\n";
    assert_eq!(
        description_url(log).as_deref(),
        Some("http://127.0.0.1:4004/description.xml")
    );
    assert_eq!(description_url("nothing"), None);
}

#[test]
fn xml_scan_finds_prefixed_elements() {
    let xml = "<root><device><UDN>uuid:1</UDN><xenplug:vmUuid>v</xenplug:vmUuid><UDN>uuid:2</UDN></device></root>";
    assert_eq!(xml_texts(xml, "UDN"), vec!["uuid:1", "uuid:2"]);
    assert_eq!(xml_text(xml, "vmUuid"), Some("v"));
    assert_eq!(xml_text(xml, "missing"), None);
}

#[test]
fn identity_counts_the_full_announcement_set() {
    let id = Identity {
        host_udn: "uuid:h".into(),
        domains: vec![
            ("uuid:d1".into(), "v1".into()),
            ("uuid:d2".into(), "v2".into()),
        ],
        description: String::new(),
    };
    let all = id.full_usns();
    assert_eq!(all.len(), 10);
    assert!(all.contains("uuid:h::upnp:rootdevice"));
    assert!(all.contains("uuid:d2::urn:xenplug-org:service:DomainControl:1"));
    assert_eq!(id.domain_udn("v2"), Some("uuid:d2"));
}

#[test]
fn sim_dir_writes_atomically_readable_files() {
    let sim = SimDir::standard("harness-sim");
    assert_eq!(
        sim.read_domain("web").get("uuid").map(String::as_str),
        Some(VM_WEB)
    );
    assert_eq!(
        sim.read_domain("db").get("state").map(String::as_str),
        Some("running")
    );
    sim.write_domain(&Domain::new(VM_DB, "db", "paused"));
    sim.expect_state("db", "paused", Duration::from_millis(100));
    let names: Vec<String> = std::fs::read_dir(sim.path())
        .expect("read sim dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|n| !n.ends_with(".tmp")),
        "no temporaries left: {names:?}"
    );
    sim.remove_domain("db");
    assert!(sim.read_domain("db").is_empty());
}
