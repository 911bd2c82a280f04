//! Role `advertise hypervisor`: a Xen host and its domains as one UPnP root device.

use crate::backend::sim::SimBackend;
use crate::backend::{Backend, BackendError};
use crate::cli::HypervisorArgs;
use crate::consts::BACKEND_MAX_CALLS;
use crate::control::{self, HostView};
use crate::error::{Error, Result};
use crate::model::{Device, EventedValues};
use crate::net::device::{self, App, LocalFuture, Options, Outputs};
use crate::state::StateDir;
use crate::wire::soap::{self, UpnpError};
use smol::lock::Semaphore;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

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
            let view = smol::unblock(move || take_view(&*backend, host_uuid))
                .await
                .map_err(|e| e.to_string())?;
            let snapshot = (
                control::hypervisor_device(&view),
                control::evented_values(&view),
            );
            *kept.borrow_mut() = Some(view);
            Ok(snapshot)
        })
    }

    fn invoke(
        &self,
        key: String,
        action: String,
        arguments: Vec<(String, String)>,
    ) -> LocalFuture<std::result::Result<Outputs, UpnpError>> {
        let backend = self.backend.clone();
        let calls = self.calls.clone();
        let view = self.view.borrow().clone();
        Box::pin(async move {
            let view =
                view.ok_or_else(|| UpnpError::new(soap::ACTION_FAILED, "host not read yet"))?;
            let _permit = calls.acquire().await;
            smol::unblock(move || control::invoke(&*backend, &view, &key, &action, &arguments))
                .await
        })
    }

    fn poll_interval(&self) -> Duration {
        self.backend.poll_interval()
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
        "libxl" => open_libxl(args),
        other => Err(Error::config(format!(
            "unknown backend {other:?} (known: sim, xapi, libxl)"
        ))),
    }
}

/// The libxl backend over this dom0.
#[cfg(feature = "libxl")]
fn open_libxl(args: &HypervisorArgs) -> Result<Arc<dyn Backend>> {
    let backend = crate::backend::libxl::LibxlBackend::open(
        &args.xl_config_dir,
        &args.xl_save_dir,
        args.xl.clone(),
    )
    .map_err(|e| Error::Backend(e.to_string()))?;
    Ok(Arc::new(backend))
}

/// Without the `libxl` feature: says which build has it.
#[cfg(not(feature = "libxl"))]
fn open_libxl(_args: &HypervisorArgs) -> Result<Arc<dyn Backend>> {
    Err(Error::config(crate::backend::libxl::NOT_BUILT))
}

/// Runs the role until SIGTERM or SIGINT.
pub fn run(args: HypervisorArgs) -> Result<()> {
    let interfaces = super::interfaces(&args.iface, args.max_age)?;
    let backend = open_backend(&args)?;
    let mut state = StateDir::open(&args.state_dir)?;
    let host = backend.host().map_err(|e| Error::Backend(e.to_string()))?;
    let host_uuid = state.host_uuid(host.uuid)?;
    log::info!(
        "host {} ({host_uuid}), {} backend",
        host.name,
        backend.name()
    );
    let app = Rc::new(HypervisorApp::new(backend, host_uuid));
    device::run(
        app,
        Options {
            interfaces,
            http_port: args.http_port,
            max_age: args.max_age,
            state,
        },
    )
}
