//! The crate error: start-up, configuration, I/O and backend failures.
//!
//! Malformed input from a peer is never one of these: the layer that sees it logs and drops it.

use core::fmt;
use std::io;
use std::path::PathBuf;

/// What can stop a role from starting or running.
#[derive(Debug)]
pub enum Error {
    /// A command line or configuration value is wrong.
    Config(String),
    /// An I/O operation failed; `context` says which.
    Io { context: String, source: io::Error },
    /// A file could not be used; `reason` says why.
    File { path: PathBuf, reason: String },
    /// The hypervisor backend failed.
    Backend(String),
    /// The role exists but is not available in this build.
    NotBuilt(&'static str),
}

impl Error {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A configuration error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config(message.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(message) => f.write_str(message),
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::File { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::Backend(message) => write!(f, "backend: {message}"),
            Error::NotBuilt(what) => write!(f, "{what} is not built yet in this version"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Result with the crate error.
pub type Result<T> = core::result::Result<T, Error>;
