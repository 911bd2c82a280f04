//! Role `advertise vm`: the VM, from inside the guest, with exactly its owner's services.

use crate::app::{App, LocalFuture, Outputs};
use crate::cli::VmArgs;
use crate::consts::URN_DEVICE_VIRTUAL_MACHINE;
use crate::engine::access::{ControlRules, Guarded};
use crate::engine::call::ControlCall;
use crate::error::Result;
use crate::model::{Device, EventedValues, Service};
use crate::net::advertiser::{self, Options};
use crate::net::event_loop::on_thread;
use crate::state::StateDir;
use crate::vm::handler::{Call, Limits, Runner};
use crate::vm::identity;
use crate::vm::services::{self, evented_values, Catalog, OwnerService, Scanner};
use crate::watch::Watch;
use crate::wire::soap::UpnpError;
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Longest the device goes without reading its services directory, even while its watch
/// tells of every change: a change it missed is seen within this.
const LONGEST_UNREAD: Duration = Duration::from_secs(30);

/// The VM device: the owner's services directory and the handlers it names.
pub struct VmApp {
    vm_uuid: Uuid,
    friendly_name: String,
    scanner: Arc<Mutex<Scanner>>,
    /// The services directory's watch.
    watch: Arc<Watch>,
    /// The last catalog read, which SOAP calls are dispatched against.
    catalog: Rc<RefCell<Arc<Catalog>>>,
    runner: Rc<Runner>,
}

impl VmApp {
    /// A VM device for `vm_uuid` named `friendly_name`, serving the services of directory
    /// `services`.
    pub fn new(vm_uuid: Uuid, friendly_name: String, services: PathBuf, limits: Limits) -> VmApp {
        VmApp {
            vm_uuid,
            friendly_name,
            watch: Arc::new(services::watch(&services)),
            scanner: Arc::new(Mutex::new(Scanner::new(services))),
            catalog: Rc::new(RefCell::new(Arc::new(Catalog {
                services: Vec::new(),
                devices: Vec::new(),
            }))),
            runner: Rc::new(Runner::new(limits)),
        }
    }
}

fn services(owned: &[OwnerService]) -> Vec<Service> {
    owned
        .iter()
        .map(|s| Service {
            spec: s.spec.clone(),
            key: s.key.clone(),
        })
        .collect()
}

/// The VirtualMachine device tree for `catalog`.
pub fn vm_device(vm_uuid: Uuid, friendly_name: &str, catalog: &Catalog) -> Device {
    let devices = catalog
        .devices
        .iter()
        .map(|owned| Device {
            device_type: owned.device_type.clone(),
            udn: Uuid::new_v5(&vm_uuid, owned.name.as_bytes()),
            friendly_name: owned.friendly_name.clone(),
            model_name: "xenplug application".to_string(),
            model_description: format!("{} in VM {friendly_name}", owned.friendly_name),
            vm_uuid: None,
            services: services(&owned.services),
            devices: Vec::new(),
        })
        .collect();
    Device {
        device_type: URN_DEVICE_VIRTUAL_MACHINE.to_string(),
        udn: vm_uuid,
        friendly_name: friendly_name.to_string(),
        model_name: "xenplug virtual machine".to_string(),
        model_description: format!("Xen VM {vm_uuid}"),
        vm_uuid: Some(vm_uuid),
        services: services(&catalog.services),
        devices,
    }
}

/// Every owner service of the catalog, top level and in subdevices.
fn all_services(catalog: &Catalog) -> impl Iterator<Item = &OwnerService> {
    catalog
        .services
        .iter()
        .chain(catalog.devices.iter().flat_map(|d| d.services.iter()))
}

impl App for VmApp {
    fn snapshot(&self) -> LocalFuture<std::result::Result<(Device, EventedValues), String>> {
        let scanner = self.scanner.clone();
        let kept = self.catalog.clone();
        let vm_uuid = self.vm_uuid;
        let friendly_name = self.friendly_name.clone();
        Box::pin(async move {
            let (catalog, values) = on_thread(move || {
                let catalog = scanner.lock().unwrap_or_else(|e| e.into_inner()).scan();
                let values: EventedValues = all_services(&catalog)
                    .map(|s| (s.key.clone(), evented_values(s)))
                    .collect();
                (catalog, values)
            })
            .await
            .ok_or_else(|| "reading the services failed".to_string())?;
            let root = vm_device(vm_uuid, &friendly_name, &catalog);
            *kept.borrow_mut() = Arc::new(catalog);
            Ok((root, values))
        })
    }

    fn invoke(&self, call: ControlCall) -> LocalFuture<std::result::Result<Outputs, UpnpError>> {
        let catalog = self.catalog.borrow().clone();
        let runner = self.runner.clone();
        Box::pin(async move {
            // The call names a service of the tree built from this catalog: its handler is
            // the owner's data beside it.
            let service = all_services(&catalog)
                .find(|s| s.key == call.service.key)
                .ok_or_else(|| UpnpError::action_failed("service no longer offered"))?;
            let outputs: Vec<&str> = call
                .action
                .arguments
                .iter()
                .filter(|a| a.direction == crate::model::Direction::Out)
                .map(|a| a.name.as_str())
                .collect();
            let arguments = call.argument_pairs();
            let handler_call = Call {
                handler: &service.handler,
                service: &service.spec.name,
                action: &call.action.name,
                arguments: &arguments,
                outputs: &outputs,
            };
            runner.run(handler_call).await
        })
    }

    fn changed(&self) -> LocalFuture<()> {
        let watch = self.watch.clone();
        Box::pin(async move {
            on_thread(move || watch.wait(LONGEST_UNREAD)).await;
        })
    }
}

/// Runs the role until SIGTERM or SIGINT.
pub fn run(args: VmArgs) -> Result<()> {
    let interfaces = super::interfaces(&args.iface, args.max_age)?;
    let vm_uuid = identity::resolve(args.uuid.as_deref(), &identity::UUID_SOURCES)?;
    let friendly_name = args.name.unwrap_or_else(crate::state::host_name);
    log::info!(
        "VM {friendly_name} ({vm_uuid}), services from {}",
        args.services.display()
    );
    let state = StateDir::open(&args.state_dir)?;
    let limits = Limits {
        timeout: Duration::from_secs(args.handler_timeout),
        ..Limits::default()
    };
    let app = Rc::new(VmApp::new(vm_uuid, friendly_name, args.services, limits));
    let key = args
        .control_key
        .as_deref()
        .map(crate::credentials::read_key_file)
        .transpose()?;
    if key.is_some() {
        log::info!("every action of the owner's services needs a signature (--control-key)");
    }
    let control = ControlRules {
        guarded: Guarded::Every,
        allow: None,
        signed: key.is_some(),
    };
    advertiser::run(
        app,
        Options {
            control,
            key,
            interfaces,
            http_port: args.http_port,
            max_age: args.max_age,
            state,
        },
    )
}
