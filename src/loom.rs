//! Atomics and locks, swapped for loom's in the crate's own tests under
//! `cfg(loom)` so that the task state word and the callback list can be
//! model-checked (`src/task/loom_tests.rs`). As tokio does, the swap needs
//! `test` too: loom is a dev-dependency.

#[cfg(not(all(test, loom)))]
pub(crate) use std::sync;

#[cfg(all(test, loom))]
pub(crate) use loom::sync;
