//! The real binary on a small bridge LAN (a bridge namespace and three host namespaces with
//! 10.99.1.x addresses): xenplug on host .11, GUPnP and gssdp-discover on .12,
//! async-upnp-client on .13.

mod common;

use common::*;
use std::time::Duration;

#[test]
fn lan_discover_all_finds_the_full_set() {
    let lan = Lan::new("lan-disc-all", 3);
    scenario_discover_all(&Site::lan(&lan));
}

#[test]
fn lan_discover_each_target() {
    let lan = Lan::new("lan-disc-st", 3);
    scenario_discover_targets(&Site::lan(&lan));
}

#[test]
fn lan_both_peers_build_the_device_tree() {
    let lan = Lan::new("lan-desc", 3);
    scenario_descriptions(&Site::lan(&lan));
}

#[test]
fn lan_actions_change_the_sim_file_and_send_events() {
    let lan = Lan::new("lan-act", 3);
    scenario_actions_and_events(&Site::lan(&lan));
}

#[test]
fn lan_sigterm_sends_byebye_and_exits_0() {
    let lan = Lan::new("lan-bye", 3);
    scenario_byebye(&Site::lan(&lan));
}

#[test]
fn lan_new_domain_is_announced_and_removed_one_says_byebye() {
    let lan = Lan::new("lan-add", 3);
    scenario_domain_added_and_removed(&Site::lan(&lan));
}

/// With `--iface lo --iface eth0`, a peer on each interface finds the device at an address of
/// that interface.
#[test]
fn lan_two_interfaces_each_get_their_own_location() {
    let lan = Lan::new("lan-two", 2);
    let (dev, peer) = (lan.host(0), lan.host(1));
    let sim = SimDir::standard("lan-two");
    let xenplug = Xenplug::start_with(&dev.ns, &sim, &Options::ifaces(&["lo", "eth0"]));
    let mut remote = gssdp_discover(&peer.ns, "eth0", "upnp:rootdevice", 4, "available");
    let mut local = gssdp_discover(&dev.ns, "lo", "upnp:rootdevice", 4, "available");
    for (proc, addr) in [
        (&mut remote, dev.addr.to_string()),
        (&mut local, "127.0.0.1".to_string()),
    ] {
        assert!(
            proc.wait_exit(Duration::from_secs(15)).is_some(),
            "gssdp-discover ended"
        );
        let seen = parse_gssdp(&proc.stdout());
        assert_eq!(
            seen.len(),
            1,
            "one root device\n{}\n{}",
            proc.report(),
            xenplug.report()
        );
        assert!(
            seen[0].location.starts_with(&format!("http://{addr}:")),
            "LOCATION {} should use {addr}\n{}",
            seen[0].location,
            xenplug.report()
        );
        let response = http_get(
            if addr == "127.0.0.1" {
                &dev.ns
            } else {
                &peer.ns
            },
            &seen[0].location,
        );
        assert_eq!(response.status, 200, "description at {}", seen[0].location);
    }
}

/// With `--iface lo` only, a peer on the LAN neither gets search responses nor reaches HTTP
/// (DESIGN, security model: answer only on configured interfaces).
#[test]
fn lan_unconfigured_interface_stays_silent() {
    let lan = Lan::new("lan-quiet", 2);
    let (dev, peer) = (lan.host(0), lan.host(1));
    let sim = SimDir::standard("lan-quiet");
    let xenplug = Xenplug::start(&dev.ns, "lo", &sim);
    let mut search = gssdp_discover(&peer.ns, "eth0", "ssdp:all", 4, "all");
    assert!(
        search.wait_exit(Duration::from_secs(15)).is_some(),
        "gssdp-discover ended"
    );
    assert!(
        parse_gssdp(&search.stdout()).is_empty(),
        "nothing may answer on eth0\n{}\n{}",
        search.report(),
        xenplug.report()
    );
    let port = xenplug.base().rsplit(':').next().unwrap_or("").to_string();
    let url = format!("http://{}:{port}/description.xml", dev.addr);
    assert!(
        !curl_reaches(&peer.ns, &url),
        "HTTP must not answer on eth0 ({url})\n{}",
        xenplug.report()
    );
}
