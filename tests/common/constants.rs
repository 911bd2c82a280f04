//! Constants the tests share: the contract's device and service types, the standard fixture's
//! identities, and the bound of one wait.

use std::time::Duration;

/// Hypervisor root device type.
pub const DEVICE_HYPERVISOR: &str = "urn:xenplug-org:device:Hypervisor:1";
/// Domain embedded device type.
pub const DEVICE_DOMAIN: &str = "urn:xenplug-org:device:Domain:1";
/// VirtualMachine root device type (`advertise vm`).
pub const DEVICE_VM: &str = "urn:xenplug-org:device:VirtualMachine:1";
/// Hypervisor service type.
pub const SERVICE_HYPERVISOR: &str = "urn:xenplug-org:service:Hypervisor:1";
/// DomainControl service type.
pub const SERVICE_DOMAIN_CONTROL: &str = "urn:xenplug-org:service:DomainControl:1";
/// Vendor namespace of `<xenplug:vmUuid>`.
pub const NS_XENPLUG: &str = "urn:xenplug-org:schemas-1-0";
/// Actions of the Hypervisor service (contract).
pub const HYPERVISOR_ACTIONS: &[&str] =
    &["GetHostInfo", "ListVirtualMachines", "StartVirtualMachine"];
/// Actions of the DomainControl service (contract).
pub const DOMAIN_ACTIONS: &[&str] = &[
    "Destroy", "GetState", "Pause", "Reboot", "Resume", "Shutdown", "Suspend",
];

/// Default bound of one wait.
pub const WAIT: Duration = Duration::from_secs(10);

/// Fixed host identity of the standard fixture.
pub const HOST_UUID: &str = "5f0c7a2e-8d1b-4c3e-9a7f-0123456789ab";
/// Fixed host name of the standard fixture.
pub const HOST_NAME: &str = "dom0-test";
/// VM "web" of the standard fixture (running).
pub const VM_WEB: &str = "0b5e1c2a-1111-4a6b-8c9d-00000000a001";
/// VM "db" of the standard fixture (running).
pub const VM_DB: &str = "0b5e1c2a-2222-4a6b-8c9d-00000000a002";
/// VM "spare" (shutoff), written only by fixtures that ask for it.
pub const VM_SPARE: &str = "0b5e1c2a-3333-4a6b-8c9d-00000000a003";
/// A VM added while xenplug runs.
pub const VM_LATE: &str = "0b5e1c2a-4444-4a6b-8c9d-00000000a004";
