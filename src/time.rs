//! Time: [`sleep`], a future that suspends an async task for a while
//! without holding a worker (asyncio's `sleep`). The C ABI's `wsrt_sleep`
//! does the same for C tasks; both go through the runtime's timer
//! (`sched/timer.rs`).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::runtime::global;
use crate::sched::timer::Alarm;
use crate::sched::worker::WorkerThread;

/// A future ready once `duration` has passed since the call.
///
/// Awaited in a task of [`Handle::spawn_async`](crate::Handle::spawn_async),
/// the task is SUSPENDED meanwhile and holds no worker; a cancel ends it
/// CANCELLED at once. The timer is the runtime's whose worker first polls
/// it (the [`global`] runtime's if polled elsewhere).
///
/// ```
/// use std::time::{Duration, Instant};
/// let rt = wsrt::Runtime::builder().workers(1).build().unwrap();
/// let begun = Instant::now();
/// let t = rt.spawn_async(async {
///     wsrt::sleep(Duration::from_millis(10)).await;
///     42
/// });
/// assert_eq!(t.join(), Ok(42));
/// assert!(begun.elapsed() >= Duration::from_millis(10));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    Sleep {
        until: Instant::now().checked_add(duration),
        waker: None,
    }
}

/// The future of [`sleep`].
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct Sleep {
    /// `None`: beyond what the clock can hold (never).
    until: Option<Instant>,
    /// The waker the timer wakes, once the first poll set the alarm; a
    /// later poll replaces it instead of setting another alarm.
    waker: Option<Arc<Mutex<Option<Waker>>>>,
}

impl Drop for Sleep {
    fn drop(&mut self) {
        // Dropped before its time (a lost race in a `select`): the alarm
        // then fires into nothing, and the waker goes now.
        if let Some(slot) = &self.waker {
            slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Some(until) = self.until else {
            return Poll::Pending;
        };
        if Instant::now() >= until {
            return Poll::Ready(());
        }
        match &self.waker {
            Some(slot) => {
                let mut waker = slot.lock().unwrap_or_else(|e| e.into_inner());
                match waker.as_ref() {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => *waker = Some(cx.waker().clone()),
                }
            }
            None => {
                let slot = Arc::new(Mutex::new(Some(cx.waker().clone())));
                let pool = match WorkerThread::current() {
                    Some(w) => w.pool.clone(),
                    None => global().handle().pool.clone(),
                };
                pool.timer.insert(&pool, until, Alarm::Waker(slot.clone()));
                self.waker = Some(slot);
            }
        }
        Poll::Pending
    }
}
