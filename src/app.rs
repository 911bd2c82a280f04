//! What an advertised device is and does: the [`App`] the device runtime runs
//! ([`crate::net::advertiser`]), one for a hypervisor ([`crate::role::hypervisor`]) and one for a VM
//! ([`crate::role::vm`]). Calls reach an app already resolved against its tables
//! ([`crate::engine::call`]).

use crate::engine::call::ControlCall;
use crate::model::{Device, EventedValues};
use crate::wire::soap::UpnpError;
use std::future::Future;
use std::pin::Pin;

/// A boxed future on the local executor.
pub type LocalFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Output arguments of an action (name, value), in SCPD order.
pub type Outputs = Vec<(String, String)>;

/// What a device is and what its actions do: the part that differs between a hypervisor
/// and a VM.
pub trait App {
    /// The current device tree and evented values (blocking work runs off the loop).
    fn snapshot(&self) -> LocalFuture<Result<(Device, EventedValues), String>>;
    /// Performs `call`, which names one of the services of the last snapshot's tree and
    /// carries arguments checked against its table.
    fn invoke(&self, call: ControlCall) -> LocalFuture<Result<Outputs, UpnpError>>;
    /// Resolves when the device may have changed (the app's source said so, or its longest
    /// wait passed); the device runtime then takes a new snapshot. Each call starts a new
    /// wait; a wait dropped before it resolves must not leave work behind for long.
    fn changed(&self) -> LocalFuture<()>;
}
