//! [`Error`]: what runtime-level operations fail with.

use std::fmt;

/// Errors of runtime-level operations.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The runtime is shutting down or shut down.
    Shutdown,
    /// The call would wait for the very worker it runs on.
    WouldDeadlock,
    /// An invalid argument (e.g. zero workers after resolution).
    InvalidArgument(&'static str),
    /// The OS refused to start a worker thread.
    Spawn(std::io::Error),
    /// A wait with a time limit ended before what it waited for.
    Timeout,
    /// The runtime was inherited through `fork()`: its worker threads do
    /// not exist in this process. Make a new runtime in the child.
    Forked,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Shutdown => f.write_str("runtime is shutting down"),
            Error::WouldDeadlock => f.write_str("operation would deadlock on the calling worker"),
            Error::InvalidArgument(what) => write!(f, "invalid argument: {what}"),
            Error::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
            Error::Timeout => f.write_str("timed out"),
            Error::Forked => f.write_str("the runtime was inherited through fork()"),
        }
    }
}

impl std::error::Error for Error {}
