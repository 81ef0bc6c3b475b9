//! Time: `wsrt::sleep` suspends an async task on the runtime's timer,
//! holding no worker; cancels end sleepers at once.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use wsrt::{Runtime, ShutdownMode, TaskState};

mod common;
use common::wait_for_state;

#[test]
fn a_sleeping_task_is_suspended_and_holds_no_worker() {
    // One worker: if the sleeper held it, nothing else could run for an
    // hour.
    let rt = Runtime::builder().workers(1).build().unwrap();
    let sleeper = rt.spawn_async(async {
        wsrt::sleep(Duration::from_secs(3600)).await;
    });
    wait_for_state(&sleeper, TaskState::Suspended);
    assert_eq!(rt.spawn(|| 7).join(), Ok(7));
    assert_eq!(sleeper.state(), TaskState::Suspended);
    // A cancel ends it at once, before `cancel` returns.
    assert!(sleeper.cancel());
    assert_eq!(sleeper.state(), TaskState::Cancelled);
    // Nothing left: the runtime stops without waiting for the hour.
    rt.shutdown(ShutdownMode::Drain).unwrap();
}

#[test]
fn a_sleep_lasts_at_least_its_duration() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let begun = Instant::now();
    let t = rt.spawn_async(async move {
        wsrt::sleep(Duration::from_millis(30)).await;
        begun.elapsed()
    });
    let slept = t.join().unwrap();
    assert!(slept >= Duration::from_millis(30), "woke after {slept:?}");
    // A zero sleep is ready at once.
    let t = rt.spawn_async(async {
        wsrt::sleep(Duration::ZERO).await;
        1
    });
    assert_eq!(t.join(), Ok(1));
}

#[test]
fn sleepers_wake_in_the_order_of_their_deadlines() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let tasks: Vec<_> = [30u64, 10, 20, 0]
        .into_iter()
        .map(|ms| {
            let order = order.clone();
            rt.spawn_async(async move {
                wsrt::sleep(Duration::from_millis(ms)).await;
                order.lock().unwrap().push(ms);
            })
        })
        .collect();
    for t in tasks {
        t.join().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), vec![0, 10, 20, 30]);
}

#[test]
fn a_cancelled_group_ends_its_sleepers_and_a_drain_waits_for_them() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let g = rt.group();
    let long = g.spawn_async(async {
        wsrt::sleep(Duration::from_secs(3600)).await;
    });
    wait_for_state(&long, TaskState::Suspended);
    g.cancel();
    assert_eq!(long.state(), TaskState::Cancelled);
    g.wait();
    // A drain waits for a sleeper, which wakes on time.
    let short = rt.spawn_async(async {
        wsrt::sleep(Duration::from_millis(10)).await;
        5
    });
    rt.shutdown(ShutdownMode::Drain).unwrap();
    assert_eq!(short.join(), Ok(5));
}

#[test]
fn a_cancelling_shutdown_ends_sleepers() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    let sleeper = rt.spawn_async(async {
        wsrt::sleep(Duration::from_secs(3600)).await;
    });
    wait_for_state(&sleeper, TaskState::Suspended);
    rt.shutdown(ShutdownMode::Cancel).unwrap();
    assert_eq!(sleeper.state(), TaskState::Cancelled);
}

#[test]
fn a_sleep_dropped_before_its_time_wakes_nothing() {
    let rt = Runtime::builder().workers(1).build().unwrap();
    // Polled once (the alarm is set), then dropped: the task goes on.
    let t = rt.spawn_async(async {
        let mut sleep = Box::pin(wsrt::sleep(Duration::from_secs(3600)));
        let pending =
            std::future::poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx).is_pending())).await;
        drop(sleep);
        pending
    });
    assert_eq!(t.join(), Ok(true));
    drop(rt);
}
