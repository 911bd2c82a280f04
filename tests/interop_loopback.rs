//! The real binary against independent peers on the loopback interface of a namespace of its
//! own: gssdp-discover, GUPnP (PyGObject) and async-upnp-client.

mod common;

use common::*;

#[test]
fn loopback_discover_all_finds_the_full_set() {
    let ns = Netns::new("lo-disc-all");
    scenario_discover_all(&Site::loopback(&ns));
}

#[test]
fn loopback_discover_each_target() {
    let ns = Netns::new("lo-disc-st");
    scenario_discover_targets(&Site::loopback(&ns));
}

#[test]
fn loopback_both_peers_build_the_device_tree() {
    let ns = Netns::new("lo-desc");
    scenario_descriptions(&Site::loopback(&ns));
}

#[test]
fn loopback_actions_change_the_sim_file_and_send_events() {
    let ns = Netns::new("lo-act");
    scenario_actions_and_events(&Site::loopback(&ns));
}

#[test]
fn loopback_sigterm_sends_byebye_and_exits_0() {
    let ns = Netns::new("lo-bye");
    scenario_byebye(&Site::loopback(&ns));
}

#[test]
fn loopback_new_domain_is_announced_and_removed_one_says_byebye() {
    let ns = Netns::new("lo-add");
    scenario_domain_added_and_removed(&Site::loopback(&ns));
}

#[test]
fn loopback_renamed_domain_is_announced_with_a_new_configid() {
    let ns = Netns::new("lo-ren");
    scenario_domain_renamed(&Site::loopback(&ns));
}
