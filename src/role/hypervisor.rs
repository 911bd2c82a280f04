//! Role `advertise hypervisor`: a Xen host and its domains as one UPnP root device.
//!
//! Mutating actions are answered only for callers `--allow-control` admits and, with
//! `--control-key`, whose signature is valid ([`crate::engine::access`]); read-only actions,
//! descriptions and eventing are open to every peer the device answers.

use crate::app::{App, LocalFuture, Outputs};
use crate::backend::sim::SimBackend;
use crate::backend::xl::XlBackend;
use crate::backend::{Backend, BackendError};
use crate::cli::HypervisorArgs;
use crate::consts::BACKEND_MAX_CALLS;
use crate::control::{self, HostView};
use crate::engine::access::{ControlPolicy, ControlRules, Guarded};
use crate::engine::call::ControlCall;
use crate::error::{Error, Result};
use crate::model::{Device, EventedValues};
use crate::net::advertiser::{self, Options};
use crate::net::event_loop::on_thread;
use crate::net::iface::LocalInterface;
use crate::state::StateDir;
use crate::wire::signature::ControlKey;
use crate::wire::soap::{self, UpnpError};
use smol::lock::Semaphore;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

/// Longest the device goes without reading the backend, even one that tells of changes: a
/// change it missed is seen within this.
const LONGEST_UNREAD: Duration = Duration::from_secs(30);

/// The hypervisor device: a backend plus the last view taken of it.
pub struct HypervisorApp {
    backend: Arc<dyn Backend>,
    host_uuid: Uuid,
    /// Backend calls running at once are bounded.
    calls: Arc<Semaphore>,
    /// The last snapshot, the input of read-only actions.
    view: Rc<RefCell<Option<HostView>>>,
}

impl HypervisorApp {
    /// A device for `backend`, advertised under `host_uuid`.
    pub fn new(backend: Arc<dyn Backend>, host_uuid: Uuid) -> HypervisorApp {
        HypervisorApp {
            backend,
            host_uuid,
            calls: Arc::new(Semaphore::new(BACKEND_MAX_CALLS)),
            view: Rc::new(RefCell::new(None)),
        }
    }
}

/// Takes a view of the host (blocking).
fn take_view(
    backend: &dyn Backend,
    host_uuid: Uuid,
) -> std::result::Result<HostView, BackendError> {
    Ok(HostView {
        uuid: host_uuid,
        info: backend.host()?,
        backend: backend.name(),
        domains: backend.domains()?,
    })
}

impl App for HypervisorApp {
    fn snapshot(&self) -> LocalFuture<std::result::Result<(Device, EventedValues), String>> {
        let backend = self.backend.clone();
        let calls = self.calls.clone();
        let host_uuid = self.host_uuid;
        let kept = self.view.clone();
        Box::pin(async move {
            let _permit = calls.acquire().await;
            let view = on_thread(move || take_view(&*backend, host_uuid))
                .await
                .ok_or_else(|| "the backend call failed".to_string())?
                .map_err(|e| e.to_string())?;
            let snapshot = (
                control::hypervisor_device(&view),
                control::evented_values(&view),
            );
            *kept.borrow_mut() = Some(view);
            Ok(snapshot)
        })
    }

    fn invoke(&self, call: ControlCall) -> LocalFuture<std::result::Result<Outputs, UpnpError>> {
        let backend = self.backend.clone();
        let calls = self.calls.clone();
        let view = self.view.borrow().clone();
        Box::pin(async move {
            let view =
                view.ok_or_else(|| UpnpError::new(soap::ACTION_FAILED, "host not read yet"))?;
            let _permit = calls.acquire().await;
            on_thread(move || control::invoke(&*backend, &view, &call))
                .await
                .unwrap_or_else(|| Err(UpnpError::action_failed("the backend call failed")))
        })
    }

    fn changed(&self) -> LocalFuture<()> {
        let backend = self.backend.clone();
        Box::pin(async move {
            on_thread(move || backend.wait_for_change(LONGEST_UNREAD)).await;
        })
    }
}

/// Who may call mutating actions, from `--allow-control` and `--control-key` (a bad flag or
/// key is refused before anything else starts): with a key alone, a valid signature from any
/// admitted peer; with a key and `--allow-control`, both; with neither, this host only.
fn control_rules(
    args: &HypervisorArgs,
    interfaces: &[LocalInterface],
) -> Result<(ControlRules, Option<ControlKey>)> {
    let key = args
        .control_key
        .as_deref()
        .map(crate::credentials::read_key_file)
        .transpose()?;
    let own: Vec<_> = interfaces.iter().map(|i| i.address).collect();
    let allow = if key.is_some() && args.allow_control.is_empty() {
        None
    } else {
        Some(ControlPolicy::from_flags(&args.allow_control, &own).map_err(Error::config)?)
    };
    let rules = ControlRules {
        guarded: Guarded::Mutating,
        allow,
        signed: key.is_some(),
    };
    Ok((rules, key))
}

/// Says once, when the device is about to run, who may call mutating actions.
fn log_control_rules(args: &HypervisorArgs, rules: &ControlRules) {
    let signed = if rules.signed {
        "signed with the control key"
    } else {
        "unsigned"
    };
    match &rules.allow {
        None => log::info!("mutating actions: {signed}, from any host of the interfaces' subnets"),
        Some(policy @ ControlPolicy::Any) => log::warn!(
            "--allow-control {policy}: every host of the interfaces' subnets may call mutating \
             actions (Destroy included), {signed}"
        ),
        Some(policy) if args.allow_control.is_empty() => log::info!(
            "mutating actions only from this host ({policy}); add --allow-control with the \
             tracker's address, or --control-key, to control it over the network"
        ),
        Some(policy) => log::info!("mutating actions: {signed}, only from {policy}"),
    }
}

/// Opens the backend named on the command line.
fn open_backend(args: &HypervisorArgs) -> Result<Arc<dyn Backend>> {
    match args.backend.as_str() {
        "sim" => {
            let directory = args
                .sim_dir
                .as_deref()
                .ok_or_else(|| Error::config("--backend sim needs --sim-dir DIR"))?;
            Ok(Arc::new(
                SimBackend::open(directory).map_err(|e| Error::Backend(e.to_string()))?,
            ))
        }
        "xapi" => Ok(Arc::new(crate::backend::xapi::open(
            args.xapi.as_deref(),
            &args.xapi_user,
            args.xapi_password_file.as_deref(),
        )?)),
        "libxl" => open_libxl(args).map_err(|e| Error::Backend(e.to_string())),
        "xl" => open_xl(args).map_err(|e| Error::Backend(e.to_string())),
        "auto" => open_auto(args),
        other => Err(Error::config(format!(
            "unknown backend {other:?} (known: auto, xl, libxl, xapi, sim)"
        ))),
    }
}

/// The xl backend over this dom0.
fn open_xl(args: &HypervisorArgs) -> std::result::Result<Arc<dyn Backend>, BackendError> {
    let backend = XlBackend::open(&args.xl_config_dir, &args.xl_save_dir, args.xl.clone())?;
    Ok(Arc::new(backend))
}

/// `--backend auto`: libxl where this build has it and it matches the running Xen, else xl;
/// says which and why.
fn open_auto(args: &HypervisorArgs) -> Result<Arc<dyn Backend>> {
    let why_not_libxl = match open_libxl(args) {
        Ok(backend) => {
            log::info!("--backend auto: libxl (this build links the running Xen release's libxl)");
            return Ok(backend);
        }
        Err(error) => error.to_string(),
    };
    match open_xl(args) {
        Ok(backend) => {
            log::info!(
                "--backend auto: xl, because the libxl backend cannot run here: {why_not_libxl}"
            );
            Ok(backend)
        }
        Err(error) => Err(Error::Backend(format!(
            "--backend auto: no backend works here: libxl: {why_not_libxl}; xl: {error}"
        ))),
    }
}

/// The libxl backend over this dom0.
#[cfg(feature = "libxl")]
fn open_libxl(args: &HypervisorArgs) -> std::result::Result<Arc<dyn Backend>, BackendError> {
    let backend = crate::backend::libxl::LibxlBackend::open(
        &args.xl_config_dir,
        &args.xl_save_dir,
        args.xl.clone(),
    )?;
    Ok(Arc::new(backend))
}

/// Without the `libxl` feature: says which build has it.
#[cfg(not(feature = "libxl"))]
fn open_libxl(_args: &HypervisorArgs) -> std::result::Result<Arc<dyn Backend>, BackendError> {
    Err(BackendError::Failed(
        crate::backend::libxl::NOT_BUILT.to_string(),
    ))
}

/// Runs the role until SIGTERM or SIGINT.
pub fn run(args: HypervisorArgs) -> Result<()> {
    let interfaces = super::interfaces(&args.iface, args.max_age)?;
    let (control, key) = control_rules(&args, &interfaces)?;
    let backend = open_backend(&args)?;
    let mut state = StateDir::open(&args.state_dir)?;
    let host = backend.host().map_err(|e| Error::Backend(e.to_string()))?;
    let host_uuid = state.host_uuid(host.uuid)?;
    log::info!(
        "host {} ({host_uuid}), {} backend",
        host.name,
        backend.name()
    );
    log_control_rules(&args, &control);
    let app = Rc::new(HypervisorApp::new(backend, host_uuid));
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
