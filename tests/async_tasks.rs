//! Futures on the pool: `spawn_async`, `Task<T>: Future`, suspension and
//! cancellation of suspended async tasks.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Context, Poll, Waker};

use wsrt::{Runtime, TaskError, TaskState};

/// A one-shot signal: a future that is ready once `fire` was called.
#[derive(Clone, Default)]
struct Signal(Arc<Mutex<(bool, Option<Waker>)>>);

impl Signal {
    fn fire(&self) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.0 = true;
            s.1.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
    fn has_waiter(&self) -> bool {
        self.0.lock().unwrap().1.is_some()
    }
}

impl Future for Signal {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.0.lock().unwrap();
        if s.0 {
            Poll::Ready(())
        } else {
            s.1 = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

struct DropCounter(Arc<AtomicUsize>);
impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn async_task_returns_its_value() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let t = rt.spawn_async(async { 6 * 7 });
    assert_eq!(t.join(), Ok(42));
}

#[test]
fn awaiting_a_signal_suspends_without_holding_the_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let signal = Signal::default();
    let s = signal.clone();
    let waiter = rt.spawn_async(async move {
        s.await;
        "woken"
    });
    while !(signal.has_waiter() && waiter.state() == TaskState::Suspended) {
        std::thread::yield_now();
    }
    // The only worker is free: a plain task runs while the async one waits.
    assert_eq!(rt.spawn(|| 5).join(), Ok(5));
    assert_eq!(rt.stats().suspended, 1);
    signal.fire();
    assert_eq!(waiter.join(), Ok("woken"));
}

#[test]
fn async_task_awaits_another_task_on_one_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let handle = rt.handle().clone();
    let outer = rt.spawn_async(async move {
        let inner = handle.spawn(move || {
            g.wait();
            20
        });
        let value = inner.await.unwrap();
        value + 1
    });
    gate.wait();
    assert_eq!(outer.join(), Ok(21));
}

#[test]
fn cancelling_a_suspended_async_task_drops_the_future_at_once() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let signal = Signal::default();
    let drops = Arc::new(AtomicUsize::new(0));
    let (s, guard) = (signal.clone(), DropCounter(drops.clone()));
    let t = rt.spawn_async(async move {
        let _guard = guard;
        s.await;
        1
    });
    while !(signal.has_waiter() && t.state() == TaskState::Suspended) {
        std::thread::yield_now();
    }
    assert!(t.cancel());
    assert_eq!(t.state(), TaskState::Cancelled);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    // A late wake-up of the cancelled task changes nothing.
    signal.fire();
    assert_eq!(t.join(), Err(TaskError::Cancelled));
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(rt.stats().cancelled, 1);
}

#[test]
fn shutdown_cancel_reaches_suspended_async_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let signal = Signal::default();
    let s = signal.clone();
    let t = rt.spawn_async(s);
    while !(signal.has_waiter() && t.state() == TaskState::Suspended) {
        std::thread::yield_now();
    }
    rt.shutdown(wsrt::ShutdownMode::Cancel).unwrap();
    assert_eq!(t.state(), TaskState::Cancelled);
}

#[test]
fn many_async_tasks_woken_from_other_threads_all_finish() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let signals: Vec<Signal> = (0..2000).map(|_| Signal::default()).collect();
    let tasks: Vec<_> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let s = s.clone();
            rt.spawn_async(async move {
                s.await;
                i
            })
        })
        .collect();
    std::thread::scope(|scope| {
        for chunk in signals.chunks(500) {
            scope.spawn(move || chunk.iter().for_each(Signal::fire));
        }
    });
    for (i, t) in tasks.into_iter().enumerate() {
        assert_eq!(t.join(), Ok(i));
    }
    rt.shutdown(wsrt::ShutdownMode::Drain).unwrap();
    assert_eq!(rt.stats().succeeded, 2000);
}

mod mixed_with_c {
    use super::*;
    use std::ffi::c_void;
    use std::ptr;
    use wsrt::ffi::*;

    /// A C-style task that awaits the task passed as its arg, then returns
    /// how many times it was called.
    unsafe extern "C" fn await_then_count(arg: *mut c_void, result: *mut *mut c_void) -> i32 {
        // SAFETY: the test passes a `(handle, calls)` pair that outlives the task.
        let (other, calls) = unsafe { &*(arg as *const (SendTask, AtomicUsize)) };
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        if !wsrt_task_done(other.0) {
            return wsrt_await(other.0);
        }
        // SAFETY: `result` is the out-pointer wsrt passes.
        unsafe { *result = n as *mut c_void };
        WSRT_TASK_OK
    }

    struct SendTask(*mut wsrt_task);
    // SAFETY: C handles are thread-safe.
    unsafe impl Send for SendTask {}
    // SAFETY: as above.
    unsafe impl Sync for SendTask {}

    #[test]
    fn c_task_awaits_an_async_rust_task_on_one_worker() {
        let mut rt = ptr::null_mut();
        assert_eq!(wsrt_runtime_new(1, &mut rt), wsrt_status::WSRT_OK);
        // SAFETY: `rt` is live until freed below.
        let handle = unsafe { handle_of(rt) }.unwrap();
        let signal = Signal::default();
        let s = signal.clone();
        let rust_task = handle.spawn_async(async move {
            s.await;
            "done"
        });
        let pair = Box::new((
            SendTask(into_c(rust_task.as_task_ref().clone())),
            AtomicUsize::new(0),
        ));
        let mut c_task = ptr::null_mut();
        let arg = &*pair as *const _ as *mut c_void;
        assert_eq!(
            wsrt_spawn(rt, Some(await_then_count), arg, ptr::null(), &mut c_task),
            wsrt_status::WSRT_OK
        );
        // Both suspended, the only worker free.
        while wsrt_task_state(c_task) != wsrt_state::WSRT_STATE_SUSPENDED
            || rust_task.state() != TaskState::Suspended
        {
            std::thread::yield_now();
        }
        // SAFETY: `c_task` is a live handle.
        let seen_from_rust = unsafe { from_c(c_task) }.unwrap();
        assert_eq!(seen_from_rust.state(), TaskState::Suspended);
        signal.fire();
        assert_eq!(wsrt_task_wait(c_task, -1), wsrt_status::WSRT_OK);
        let mut value = ptr::null_mut();
        assert_eq!(wsrt_task_result(c_task, &mut value), wsrt_status::WSRT_OK);
        assert_eq!(value as usize, 2, "called once, then again after the await");
        assert_eq!(rust_task.join(), Ok("done"));
        wsrt_task_release(c_task);
        wsrt_task_release(pair.0 .0);
        assert_eq!(wsrt_runtime_free(rt), wsrt_status::WSRT_OK);
        assert!(seen_from_rust.is_done());
    }
}

mod await_self {
    use std::ffi::c_void;
    use std::ptr;
    use wsrt::ffi::*;

    unsafe extern "C" fn awaits_itself(_arg: *mut c_void, _result: *mut *mut c_void) -> i32 {
        wsrt_await(wsrt_current_task())
    }

    #[test]
    fn a_c_task_awaiting_itself_fails_with_await_self() {
        let mut rt = ptr::null_mut();
        assert_eq!(wsrt_runtime_new(1, &mut rt), wsrt_status::WSRT_OK);
        let mut t = ptr::null_mut();
        assert_eq!(
            wsrt_spawn(
                rt,
                Some(awaits_itself),
                ptr::null_mut(),
                ptr::null(),
                &mut t
            ),
            wsrt_status::WSRT_OK
        );
        assert_eq!(wsrt_task_wait(t, -1), wsrt_status::WSRT_OK);
        assert_eq!(wsrt_task_state(t), wsrt_state::WSRT_STATE_FAILED);
        let mut code = 0;
        assert_eq!(wsrt_task_error(t, &mut code), wsrt_status::WSRT_OK);
        assert_eq!(code, WSRT_TASK_AWAIT_SELF);
        wsrt_task_release(t);
        assert_eq!(wsrt_runtime_free(rt), wsrt_status::WSRT_OK);
    }
}

/// A `!Unpin` future that remembers where it was first polled and checks,
/// when dropped, that it is still there (the `Pin` drop guarantee).
struct StaysPut {
    signal: Signal,
    polled_at: usize,
    moved: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
    _pin: std::marker::PhantomPinned,
}

impl StaysPut {
    fn new(signal: Signal, moved: &Arc<AtomicUsize>, dropped: &Arc<AtomicUsize>) -> Self {
        StaysPut {
            signal,
            polled_at: 0,
            moved: moved.clone(),
            dropped: dropped.clone(),
            _pin: std::marker::PhantomPinned,
        }
    }
}

impl Future for StaysPut {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        // SAFETY: no field is moved out; `polled_at` is plain data.
        let this = unsafe { self.get_unchecked_mut() };
        this.polled_at = this as *const StaysPut as usize;
        // SAFETY: `signal` is never moved while `this` is pinned.
        match unsafe { Pin::new_unchecked(&mut this.signal) }.poll(cx) {
            Poll::Ready(()) => Poll::Ready(7),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for StaysPut {
    fn drop(&mut self) {
        if self.polled_at != 0 && self.polled_at != self as *const StaysPut as usize {
            self.moved.fetch_add(1, Ordering::SeqCst);
        }
        self.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn a_pinned_future_is_dropped_where_it_was_polled() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let (moved, dropped) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));

    // Completes after one suspension: dropped once it returned its value.
    let signal = Signal::default();
    let done = rt.spawn_async(StaysPut::new(signal.clone(), &moved, &dropped));
    while !(signal.has_waiter() && done.state() == TaskState::Suspended) {
        std::thread::yield_now();
    }
    signal.fire();
    assert_eq!(done.join(), Ok(7));

    // Cancelled while suspended: dropped by the canceller.
    let signal = Signal::default();
    let cancelled = rt.spawn_async(StaysPut::new(signal.clone(), &moved, &dropped));
    while !(signal.has_waiter() && cancelled.state() == TaskState::Suspended) {
        std::thread::yield_now();
    }
    assert!(cancelled.cancel());
    assert_eq!(cancelled.state(), TaskState::Cancelled);

    drop(rt);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
    assert_eq!(
        moved.load(Ordering::SeqCst),
        0,
        "a pinned future was moved before its drop"
    );
}

/// Panics when dropped.
struct PanicsOnDrop;
impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("boom in drop");
    }
}

/// Ready at once with 3; its destructor panics.
struct ReadyThenPanics(PanicsOnDrop);
impl Future for ReadyThenPanics {
    type Output = u32;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(3)
    }
}

#[test]
fn a_future_whose_drop_panics_keeps_its_outcome_and_the_worker() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    // Dropped by the worker after it returned its value.
    let t = rt.spawn_async(ReadyThenPanics(PanicsOnDrop));
    assert_eq!(t.join(), Ok(3));

    // Dropped by the canceller (this thread) while suspended.
    let t = rt.spawn_async(async {
        let _armed = PanicsOnDrop;
        std::future::pending::<()>().await;
    });
    while t.state() != TaskState::Suspended {
        std::thread::yield_now();
    }
    assert!(t.cancel());
    assert_eq!(t.state(), TaskState::Cancelled);

    // The single worker survived both and still runs tasks.
    assert_eq!(rt.spawn(|| 5).join(), Ok(5));
}
