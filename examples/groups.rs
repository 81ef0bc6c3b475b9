//! Structured cancellation, timers and waits from Rust.
//!
//! A group of searchers, each sleeping between tries without holding a
//! worker (`wsrt::sleep` in an async task); the first to find the answer
//! cancels the group, and the group's wait returns once every searcher has
//! ended. Then a task that holds a lock waits for its child with
//! `wait_isolated`, so the queued task that takes the same lock is not run
//! inside that wait (where it would deadlock).
//!
//! Run: `cargo run --example groups`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use wsrt::{Runtime, TaskState};

fn main() {
    let rt = Runtime::builder().workers(2).build().expect("runtime");

    // A group with a deadline, should nobody find the answer.
    let group = rt.group();
    group.set_deadline(Duration::from_secs(5));
    let searchers: Vec<_> = (0..8u32)
        .map(|i| {
            let g = group.clone();
            group.spawn_async(async move {
                for attempt in 1.. {
                    if i == 5 && attempt == 3 {
                        g.cancel(); // found: the others may stop
                        return Some(1000 + i);
                    }
                    wsrt::sleep(Duration::from_millis(2)).await;
                }
                None
            })
        })
        .collect();
    group.wait();
    let found: Vec<_> = searchers
        .iter()
        .filter(|t| t.state() == TaskState::Succeeded)
        .collect();
    let stats = group.stats();
    println!(
        "found by {} searcher(s); group: {} spawned, {} succeeded, {} cancelled",
        found.len(),
        stats.spawned,
        stats.succeeded,
        stats.cancelled
    );
    assert_eq!(found.len(), 1);
    assert_eq!(searchers.into_iter().nth(5).unwrap().join(), Ok(Some(1005)));

    // A lock held across a wait: the isolated wait runs only the child.
    let lock = Arc::new(Mutex::new(Vec::new()));
    let l = lock.clone();
    let outer = rt.spawn(move || {
        let here = wsrt::Handle::current().expect("inside a task");
        let mut log = l.lock().unwrap();
        let child = here.spawn(|| "child");
        let l2 = l.clone();
        let other = here.spawn(move || l2.lock().unwrap().push("other"));
        child.wait_isolated();
        log.push(child.join().unwrap());
        drop(log);
        other
    });
    outer.join().unwrap().join().unwrap();
    println!("lock log: {:?}", lock.lock().unwrap());
    assert_eq!(*lock.lock().unwrap(), ["child", "other"]);
}
