//! Atomics and locks, swapped for loom's under `cfg(loom)` so that the task
//! state word and the callback list can be model-checked (see `tests/loom.rs`).

#[cfg(not(loom))]
pub(crate) use std::sync;

#[cfg(loom)]
pub(crate) use loom::sync;
