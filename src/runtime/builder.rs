//! [`Builder`]: the options of a runtime, and starting its threads.

use super::{Error, Handle, Runtime};
use crate::sched::pool::Pool;

/// Configures and starts a [`Runtime`].
#[derive(Clone, Debug, Default)]
pub struct Builder {
    workers: Option<usize>,
    thread_name: Option<String>,
}

impl Builder {
    /// Number of worker threads; 0 or unset means one per CPU.
    pub fn workers(mut self, n: usize) -> Builder {
        self.workers = Some(n);
        self
    }

    /// Prefix of worker thread names (default `wsrt-worker`).
    pub fn thread_name(mut self, name: impl Into<String>) -> Builder {
        self.thread_name = Some(name.into());
        self
    }

    /// Starts the worker threads.
    pub fn build(self) -> Result<Runtime, Error> {
        let n = match self.workers {
            None | Some(0) => num_cpus::get().max(1),
            Some(n) => n,
        };
        if n > 4096 {
            return Err(Error::InvalidArgument("more than 4096 workers"));
        }
        let (pool, workers) = Pool::new(n);
        let prefix = self.thread_name.as_deref().unwrap_or("wsrt-worker");
        let runtime = Runtime {
            handle: Handle { pool: pool.clone() },
        };
        for worker in workers {
            let spawned = std::thread::Builder::new()
                .name(format!("{prefix}-{}", worker.index))
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
