//! Every knob of the runtime in one place, each with what it trades. The
//! scheduler's are defined here; those of the layers below (which may not
//! import the scheduler) are defined where they are used and listed here.
//! How each value was chosen, with its measurements: `docs/performance.md`.

use std::time::Duration;

/// How long a worker that ran out of work leaves the lanes and the injector
/// alone before it looks there (`README.md`): longer lets a spawning thread
/// queue a fuller batch before a worker meets it on its cache lines, but
/// delays tasks queued from outside while workers spin.
pub(crate) const FIRST_LOOK_AFTER: Duration = Duration::from_micros(3);

/// How long a worker keeps looking everywhere after [`FIRST_LOOK_AFTER`]
/// before it sleeps: longer catches more work without a futex wake-up, at
/// the price of CPU burnt by idle workers.
pub(crate) const SPIN_AFTER_LOOK: Duration = Duration::from_micros(3);

/// Batches a worker takes from the lanes in a row before it looks at the
/// injector first once: lower serves yielded tasks (queued on the injector)
/// sooner, higher keeps workers on the cheaper lanes.
pub(crate) const LANE_STREAK: u32 = 16;

/// Finished tasks a worker keeps before it unlists them together: more
/// means fewer lock round trips per task, and done tasks listed (and cells
/// held) for longer.
pub(crate) const UNLIST_BATCH: usize = 64;

/// Lanes per runtime (FIFO queues for threads outside the pool that spawn):
/// more serves more spawning threads without the injector, each lane
/// costing workers one more look.
pub(crate) const LANES: usize = 8;

/// How far behind a lane's thread a worker in a streak stays (tasks):
/// more keeps workers off the cache lines the spawner is writing, and
/// delays those tasks while the spawner keeps going.
pub(crate) const LAG: usize = 128;

// Knobs of the layers below, defined where they are used:
// - `sync::deque::STEAL_LIMIT` (32): the most jobs one steal takes; more
//   moves work in fewer steals, fewer leaves more for other thieves.
// - `sync::deque::MIN_CAPACITY` (64 jobs): a new deque's buffer; buffers
//   grow fourfold and never shrink.
// - `sync::alloc::BATCH` (64 cells): freed cells a worker keeps before it
//   frees them together (mimalloc only).
// - `task::list::OUTSIDE_SHARDS_MIN` (64) and `OUTSIDE_BLOCK` (64 ids):
//   how spawns from outside spread over the task list's shards.
// - `task::list::table::FIRST_CHUNK` (64 slots): a worker table's first chunk.
pub(crate) use crate::sync::deque::STEAL_LIMIT;
