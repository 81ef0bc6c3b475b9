//! Building blocks that know nothing of tasks or the scheduler: the
//! work-stealing deque, a spin lock, where task memory comes from, and the
//! loom shim that swaps atomics for loom's in the models. Nothing here
//! imports another wsrt module.

pub(crate) mod alloc;
pub(crate) mod deque;
pub(crate) mod loom;
pub(crate) mod spin_lock;
