//! Futures on the pool: `spawn_async` bodies, their `Waker`, and
//! `Task<T>: Future`.
//!
//! A future that returns `Pending` leaves its task SUSPENDED (parked, see
//! `state.rs`) without holding a worker; its `Waker` is a counted reference
//! to the task whose `wake` queues it again. A cancel of a suspended async
//! task drops the future at once.

use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use super::body::{Body, Step};
use super::callbacks::Callback;
use super::handle::Task;
use super::raw::{self, Header};

/// A future run as a task's body.
pub(crate) struct Async<F>(pub(crate) F);

impl<F> Body for Async<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;
    type Tag = ();

    fn run(&mut self, _tag: &(), task: NonNull<()>) -> Step<F::Output> {
        // The task's own reference backs the borrowed waker; clones count.
        let waker = ManuallyDrop::new(unsafe_waker(task.cast()));
        let mut cx = Context::from_waker(&waker);
        // SAFETY: the future lives inside the task's heap cell, which never
        // moves, and is dropped in place (`raw::release_body`), never moved out.
        let future = unsafe { Pin::new_unchecked(&mut self.0) };
        match future.poll(&mut cx) {
            Poll::Ready(value) => Step::Ready(value),
            Poll::Pending => Step::Wait,
        }
    }
}

/// A waker for the task at `ptr` that does not own a reference: only for
/// lending inside `ManuallyDrop` while the caller holds one.
fn unsafe_waker(ptr: NonNull<Header>) -> Waker {
    // SAFETY: the vtable functions below uphold the `RawWaker` contract: the
    // data pointer is a task header, each owned waker owns one reference.
    unsafe { Waker::from_raw(RawWaker::new(ptr.as_ptr().cast_const().cast(), &VTABLE)) }
}

const VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

fn header(data: *const ()) -> NonNull<Header> {
    // SAFETY: every waker's data pointer is a task header (`unsafe_waker`).
    unsafe { NonNull::new_unchecked(data.cast_mut().cast()) }
}

unsafe fn clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned holds (or borrows) a reference.
    unsafe { header(data).as_ref() }.state.ref_inc();
    RawWaker::new(data, &VTABLE)
}

unsafe fn wake(data: *const ()) {
    // SAFETY: this waker owns one reference; it wakes, then gives it up.
    unsafe {
        raw::wake(header(data));
        raw::drop_ref(header(data));
    }
}

unsafe fn wake_by_ref(data: *const ()) {
    // SAFETY: the waker holds a reference for the call.
    unsafe { raw::wake(header(data)) }
}

unsafe fn drop_waker(data: *const ()) {
    // SAFETY: this waker owns one reference.
    unsafe { raw::drop_ref(header(data)) }
}

/// Awaiting a task handle: `Ready` with what [`Task::join`] would return,
/// without blocking. A task suspended on it is woken by a done-callback.
impl<T: Send + 'static> Future for Task<T> {
    type Output = Result<T, super::TaskError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if !this.is_done() {
            // One wake-up entry per handle: this poll's waker replaces the
            // last one's. If the old entry is gone, it ran: the task is done.
            let replaced = this
                .waiting
                .take()
                .map_or(true, |key| this.remove_callback_key(key));
            if replaced {
                let waker = cx.waker().clone();
                let entry = Callback::Boxed(Box::new(move |_| waker.wake()));
                if let Ok(key) = this.add_callback(entry) {
                    this.waiting = Some(key);
                    return Poll::Pending;
                }
                // Done in the meantime: the entry was handed back.
            }
        }
        Poll::Ready(this.take())
    }
}
