//! [`Builder`]: the options of a runtime, and starting its threads.

use std::fmt;
use std::sync::Arc;

use super::{Error, Handle, Runtime};
use crate::sched::pool::{Pool, PoolOptions};

/// Configures and starts a [`Runtime`].
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let started = Arc::new(AtomicUsize::new(0));
/// let seen = started.clone();
/// let rt = wsrt::Runtime::builder()
///     .workers(2)
///     .stack_size(16 << 20)
///     .thread_name("app")
///     .on_thread_start(move |_index| {
///         seen.fetch_add(1, Ordering::SeqCst);
///     })
///     .build()
///     .unwrap();
/// assert_eq!(rt.spawn(|| 1).join(), Ok(1));
/// drop(rt); // joins the workers
/// assert_eq!(started.load(Ordering::SeqCst), 2);
/// ```
#[derive(Clone, Default)]
pub struct Builder {
    workers: Option<usize>,
    stack_size: Option<usize>,
    thread_name: Option<String>,
    pool: PoolOptions,
}

/// The stack of a worker thread when none is asked for: the platform's
/// default for new threads, as a C program's `pthread_create` gets it
/// (`RLIMIT_STACK`, 8 MiB where it is unlimited or unknown). Only the
/// pages a thread touches cost memory.
pub(crate) fn default_stack_size() -> usize {
    const FALLBACK: usize = 8 << 20;
    #[cfg(all(unix, not(miri)))]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes one `rlimit`, ours.
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_STACK, &mut limit) } == 0;
        match usize::try_from(limit.rlim_cur) {
            Ok(bytes) if ok && limit.rlim_cur != libc::RLIM_INFINITY && bytes > 0 => bytes,
            _ => FALLBACK,
        }
    }
    #[cfg(not(all(unix, not(miri))))]
    FALLBACK
}

impl Builder {
    /// Number of worker threads; 0 or unset means one per CPU available to
    /// the process (its affinity and cgroup quota count).
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Stack size of each worker thread, in bytes; 0 or unset means the
    /// platform's default for new threads (`RLIMIT_STACK`, usually 8 MiB;
    /// only touched pages cost memory). Tasks that wait inside tasks run
    /// other tasks on the waiting one's stack: deep recursions of waits
    /// need deep stacks (`docs/api.md`, "Stacks").
    pub fn stack_size(mut self, bytes: usize) -> Builder {
        self.stack_size = (bytes != 0).then_some(bytes);
        self
    }

    /// Prefix of worker thread names (default `wsrt-worker`): worker `i` is
    /// named `<prefix>-<i>` (Linux shows the first 15 bytes).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = Some(name.into());
        self
    }

    /// Called on each worker thread, with its index, before it runs its
    /// first task. A panic in it is caught and counted in
    /// [`Stats::callback_panics`](crate::Stats::callback_panics).
    pub fn on_thread_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.pool.on_thread_start = Some(Arc::new(f));
        self
    }

    /// Called on each worker thread, with its index, after it ran its last
    /// task, before the thread exits (the runtime is being dropped).
    pub fn on_thread_stop(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Builder {
        self.pool.on_thread_stop = Some(Arc::new(f));
        self
    }

    /// Off by default. When on, a worker that wakes a sleeping worker
    /// first narrows the sleeper's CPU affinity to keep it off the waker's
    /// CPU, and the sleeper widens it back once awake (two
    /// `sched_setaffinity` calls per such wake-up, on the runtime's own
    /// threads; Linux only). It helped fork-join speedups on one virtual
    /// machine whose scheduler often queued the woken worker on the busy
    /// CPU; measure before you turn it on.
    pub fn steer_wakeups(mut self, on: bool) -> Builder {
        self.pool.steer_wakeups = on;
        self
    }

    /// Starts the worker threads.
    pub fn build(mut self) -> Result<Runtime, Error> {
        let n = match self.workers {
            None | Some(0) => num_cpus::get().max(1),
            Some(n) => n,
        };
        if n > 4096 {
            return Err(Error::InvalidArgument("more than 4096 workers"));
        }
        let stack = self.stack_size.unwrap_or_else(default_stack_size);
        let prefix = self.thread_name.unwrap_or_else(|| "wsrt-worker".into());
        self.pool.thread_name = prefix.clone();
        let (pool, workers) = Pool::new(n, self.pool);
        let runtime = Runtime {
            handle: Handle { pool: pool.clone() },
        };
        for worker in workers {
            let spawned = std::thread::Builder::new()
                .name(format!("{prefix}-{}", worker.index))
                .stack_size(stack)
                .spawn(move || worker.run());
            match spawned {
                Ok(thread) => pool
                    .threads
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(thread),
                // Dropping `runtime` shuts down and joins the ones started.
                Err(e) => return Err(Error::Spawn(e)),
            }
        }
        Ok(runtime)
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("stack_size", &self.stack_size)
            .field("thread_name", &self.thread_name)
            .field("on_thread_start", &self.pool.on_thread_start.is_some())
            .field("on_thread_stop", &self.pool.on_thread_stop.is_some())
            .field("steer_wakeups", &self.pool.steer_wakeups)
            .finish()
    }
}
