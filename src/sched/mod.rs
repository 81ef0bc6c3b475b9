//! The scheduler: worker threads, their queues, how they find work, wait
//! and sleep, and what they do with a task (`harness.rs`, which fills every
//! task's vtable). `README.md` explains the find order, the lanes, the
//! keep-behind rule and the sleep handshake.
//!
//! It imports `task/` and `sync/`, never the layers above it (`runtime/`,
//! `join`, `scope`, `ffi/`).

pub(crate) mod context;
pub(crate) mod fork;
pub(crate) mod group;
pub(crate) mod harness;
pub(crate) mod job;
pub(crate) mod lanes;
pub(crate) mod latch;
#[cfg(all(test, loom))]
mod loom_tests;
pub(crate) mod placement;
pub(crate) mod pool;
pub(crate) mod shutdown;
pub(crate) mod sleep;
pub(crate) mod stats;
mod steal;
pub(crate) mod timer;
pub(crate) mod tuning;
pub(crate) mod wait;
pub(crate) mod worker;
