//! What a task runs: the [`Body`] trait, how one run ends ([`Step`]), and
//! how a task failed ([`Failure`]).

use std::ptr::NonNull;

/// How a task failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The function returned this error code (C tasks).
    Code(i32),
    /// The function panicked with this message.
    Panicked(String),
}

/// A [`Failure`] in one word, as a FAILED task's cell keeps it (`raw.rs`):
/// an error code as `(code << 1) | 1`, or the address of the panic's
/// message, boxed (even). One word where a `Failure` takes two: a C task's
/// cell then fits an 80-byte allocator size class (`c_body.rs`). The box is
/// paid only when a task panics.
pub(crate) struct StoredFailure(u64);

impl StoredFailure {
    pub(crate) fn new(failure: Failure) -> StoredFailure {
        match failure {
            Failure::Code(code) => StoredFailure(u64::from(code as u32) << 1 | 1),
            Failure::Panicked(message) => {
                StoredFailure(Box::into_raw(Box::new(message)) as usize as u64)
            }
        }
    }

    pub(crate) fn get(&self) -> Failure {
        if self.0 & 1 != 0 {
            return Failure::Code((self.0 >> 1) as u32 as i32);
        }
        // SAFETY: an even word is the message boxed by `new`, owned by
        // `self` until its drop.
        Failure::Panicked(unsafe { &*(self.0 as usize as *const String) }.clone())
    }
}

impl Drop for StoredFailure {
    fn drop(&mut self) {
        if self.0 & 1 == 0 {
            // SAFETY: an even word is the message boxed by `new`, dropped
            // once, here.
            drop(unsafe { Box::from_raw(self.0 as usize as *mut String) });
        }
    }
}

/// How one run of a task's function ended.
pub(crate) enum Step<T> {
    /// Done with a value: SUCCEEDED.
    Ready(T),
    /// Done, cancelled by its own choice: CANCELLED.
    Cancelled,
    /// Done with an error code: FAILED.
    Failed(i32),
    /// Not done: queue it again now (`WSRT_TASK_YIELD`), or, if the run
    /// asked to await a task (`wsrt_await`, kept in the thread's context,
    /// `sched/context.rs`), run it again once that task is done.
    Yield,
    /// Not done: run it again when its waker fires (futures).
    Wait,
}

impl<T> Step<T> {
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Step<U> {
        match self {
            Step::Ready(value) => Step::Ready(f(value)),
            Step::Cancelled => Step::Cancelled,
            Step::Failed(code) => Step::Failed(code),
            Step::Yield => Step::Yield,
            Step::Wait => Step::Wait,
        }
    }
}

/// What a task runs: a closure, a C function with its argument, a future.
///
/// `Tag` is immutable data readable at any time through an untyped handle
/// (the C `arg`), kept outside the stage so reading it never races the run.
pub(crate) trait Body: Send + 'static {
    type Output: Send + 'static;
    type Tag: Send + Sync + 'static;
    /// Runs the function once. Called only by the thread that won the
    /// transition to RUNNING. `task` is the task's address (its header),
    /// from which a future makes its waker (`future.rs`).
    fn run(&mut self, tag: &Self::Tag, task: NonNull<()>) -> Step<Self::Output>;

    /// Cleans up once the task is done (or cancelled before it ran):
    /// exactly once, by the thread that ends the task, right before the body
    /// is dropped in place (a pinned future is never moved), and before the
    /// state becomes final when it ran. `tag` is there for bodies whose
    /// clean-up needs it (the C `arg_drop(arg)`).
    fn release(&mut self, _tag: &Self::Tag) {}

    /// True if dropping `output` may run code of the user's (a `Drop`, the
    /// C `result_drop`): such a task must be freed by whoever drops its
    /// last reference, when they drop it, so a worker never keeps it in its
    /// batch of finished tasks (`sched/harness.rs`).
    fn output_drop_observable(_output: &Self::Output) -> bool {
        std::mem::needs_drop::<Self::Output>()
    }

    /// For the body types whose tag or output is read from outside
    /// `raw.rs` (the C ABI's), a kind of their own: the check that a task
    /// has such a body is then one byte compare (`raw::tag_of`,
    /// `raw::output_of`). Each kind but `Other` names exactly one type.
    const KIND: BodyKind = BodyKind::Other;
}

/// See [`Body::KIND`].
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum BodyKind {
    Other,
    /// `c_body::CPlainTask`.
    CPlain,
    /// `c_body::CTask`.
    C,
}

/// A closure run once.
pub(crate) struct Once<F>(pub(crate) Option<F>);

impl<F, T> Body for Once<F>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    type Tag = ();
    fn run(&mut self, _tag: &(), _task: NonNull<()>) -> Step<T> {
        let f = self.0.take().expect("a one-shot task ran twice");
        Step::Ready(f())
    }
}

/// What a closure spawned with `spawn_cancellable` returns to end its task
/// CANCELLED (asyncio's `CancelledError`), typically once it saw
/// [`crate::cancel_requested`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cancelled;

impl std::fmt::Display for Cancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// A closure run once that may end its task CANCELLED.
pub(crate) struct Cancellable<F>(pub(crate) Option<F>);

impl<F, T> Body for Cancellable<F>
where
    F: FnOnce() -> Result<T, Cancelled> + Send + 'static,
    T: Send + 'static,
{
    type Output = T;
    type Tag = ();
    fn run(&mut self, _tag: &(), _task: NonNull<()>) -> Step<T> {
        let f = self.0.take().expect("a one-shot task ran twice");
        match f() {
            Ok(value) => Step::Ready(value),
            Err(Cancelled) => Step::Cancelled,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::{Failure, StoredFailure};

    #[test]
    fn a_stored_failure_gives_back_what_was_stored() {
        for code in [1, -1, 7, -2, i32::MIN, i32::MAX] {
            assert_eq!(
                StoredFailure::new(Failure::Code(code)).get(),
                Failure::Code(code)
            );
        }
        let message = Failure::Panicked("boom".into());
        let stored = StoredFailure::new(message.clone());
        assert_eq!(stored.get(), message);
        assert_eq!(stored.get(), message, "read twice, the message stays");
    }
}
