//! The process-wide default runtime.

use std::sync::OnceLock;

use super::Runtime;

/// The process-wide default runtime, used by [`crate::join`] and
/// [`crate::spawn`] outside the pool. Started on first use (one worker per
/// CPU); never shut down.
///
/// # Panics
/// If its worker threads cannot be started.
pub fn global() -> &'static Runtime {
    static GLOBAL: OnceLock<Runtime> = OnceLock::new();
    GLOBAL.get_or_init(|| Runtime::new().expect("wsrt: cannot start the global runtime"))
}
