//! Hypervisor backends: where domains come from and what lifecycle actions do to them.
//!
//! One trait, several implementations picked by `--backend`: `sim` (flat files, for the demo
//! and tests), `libxl` (the dom0 build only: libxenlight, with `xl` config files read by
//! `xl`), `xl` (every build: the host's own `xl` command, any Xen 4.x), and `xapi` (a XenAPI
//! server over XML-RPC); `auto` picks libxl or xl at start. Backends are blocking; the net
//! layer calls them off the event loop.

pub mod libxl;
pub mod saved;
pub mod sim;
pub mod watch;
pub mod xapi;
pub mod xl;

use core::fmt;
use uuid::Uuid;

/// What a hypervisor says about itself (GetHostInfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInfo {
    /// The host's UUID, when the backend knows one.
    pub uuid: Option<Uuid>,
    /// Host name.
    pub name: String,
    /// Hypervisor version, e.g. `4.17`.
    pub hypervisor_version: String,
    /// Physical CPUs.
    pub cpus: u32,
    /// Physical memory in MiB.
    pub memory_mib: u64,
}

/// A domain's run state, as xenplug names it on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RunState {
    /// Running or runnable.
    Running,
    /// Blocked waiting for an event (running, idle).
    Blocked,
    /// Paused by the toolstack.
    Paused,
    /// Suspended (memory saved, not running).
    Suspended,
    /// Defined but not running.
    Shutoff,
    /// Crashed.
    Crashed,
    /// Being torn down.
    Dying,
}

impl RunState {
    /// Every state, in the order the SCPD lists them.
    pub const ALL: [RunState; 7] = [
        RunState::Running,
        RunState::Blocked,
        RunState::Paused,
        RunState::Suspended,
        RunState::Shutoff,
        RunState::Crashed,
        RunState::Dying,
    ];

    /// The wire name (State variable value).
    pub const fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Blocked => "blocked",
            RunState::Paused => "paused",
            RunState::Suspended => "suspended",
            RunState::Shutoff => "shutoff",
            RunState::Crashed => "crashed",
            RunState::Dying => "dying",
        }
    }

    /// Parses a wire name.
    pub fn from_name(name: &str) -> Option<RunState> {
        RunState::ALL
            .into_iter()
            .find(|state| state.as_str() == name)
    }

    /// Whether the domain occupies the hypervisor (has a domid).
    pub fn is_active(self) -> bool {
        !matches!(self, RunState::Shutoff | RunState::Suspended)
    }
}

impl fmt::Display for RunState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One domain (VM) the host knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    /// Xen VM UUID.
    pub uuid: Uuid,
    /// Domain name.
    pub name: String,
    /// Run state.
    pub state: RunState,
    /// Memory in KiB.
    pub memory_kib: u64,
    /// Virtual CPUs.
    pub vcpus: u32,
}

/// A lifecycle operation on one domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// Start a defined, shut-off domain.
    Start,
    /// Clean shutdown (the guest is asked).
    Shutdown,
    /// Clean reboot.
    Reboot,
    /// Pause the vCPUs.
    Pause,
    /// Unpause, or resume a suspended domain.
    Resume,
    /// Suspend (save state, stop running).
    Suspend,
    /// Hard stop.
    Destroy,
}

impl Operation {
    /// The operation's name, as in SOAP action names.
    pub fn name(self) -> &'static str {
        match self {
            Operation::Start => "Start",
            Operation::Shutdown => "Shutdown",
            Operation::Reboot => "Reboot",
            Operation::Pause => "Pause",
            Operation::Resume => "Resume",
            Operation::Suspend => "Suspend",
            Operation::Destroy => "Destroy",
        }
    }
}

/// Why a backend call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendError {
    /// No domain with that UUID.
    NoSuchDomain(Uuid),
    /// The domain is in a state where the operation makes no sense.
    InvalidState {
        operation: Operation,
        state: RunState,
    },
    /// The toolstack refused the operation with an error code of its own (e.g. XenAPI's
    /// `VM_BAD_POWER_STATE`); `detail` is its parameters in words. `invalid_state` says the
    /// refusal is about the domain's state (answered like [`BackendError::InvalidState`]).
    Refused {
        code: String,
        detail: String,
        invalid_state: bool,
    },
    /// The backend itself failed (I/O, toolstack error); the text says how.
    Failed(String),
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendError::NoSuchDomain(uuid) => write!(f, "no domain with UUID {uuid}"),
            BackendError::InvalidState { operation, state } => {
                write!(
                    f,
                    "cannot {} a domain that is {state}",
                    operation.name().to_lowercase()
                )
            }
            BackendError::Refused { code, detail, .. } if detail.is_empty() => f.write_str(code),
            BackendError::Refused { code, detail, .. } => write!(f, "{code}: {detail}"),
            BackendError::Failed(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for BackendError {}

/// A hypervisor as xenplug sees it. Implementations block; callers run them off the event loop.
pub trait Backend: Send + Sync {
    /// The backend's name (`sim`, `libxl`, `xapi`).
    fn name(&self) -> &'static str;
    /// Facts about the host.
    fn host(&self) -> Result<HostInfo, BackendError>;
    /// Every domain the host knows, except the host's own control domain.
    fn domains(&self) -> Result<Vec<Domain>, BackendError>;
    /// Applies a lifecycle operation to the domain with `uuid`.
    fn apply(&self, uuid: Uuid, operation: Operation) -> Result<(), BackendError>;
    /// Blocks until the host's domains may have changed, or at most `limit`. A backend that
    /// hears of changes (a watch, an event stream) returns as soon as it does; one that
    /// cannot waits its polling interval, so [`Backend::domains`] is read that often.
    fn wait_for_change(&self, limit: std::time::Duration);
}
