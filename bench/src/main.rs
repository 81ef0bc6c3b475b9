//! The benchmark of BENCH.md: every workload for wsrt (Rust API and C ABI)
//! and its peers (rayon, tokio, oneTBB, OpenMP), in one run.
//!
//! ```text
//! cargo run --release -p wsrt-bench -- [--quick|--full] [--only W[,W..]] [--runs N] [--json FILE]
//! ```
//!
//! `--quick` (the default) uses smaller sizes and keeps the whole run under
//! about two minutes on 2 cores; `--full` uses BENCH.md's sizes. Every
//! figure is one warm-up then at least 5 runs, reported as median (min–max),
//! with the ratio the workload's target names. Progress goes to stderr, the
//! table to stdout; `--json FILE` writes the same figures as JSON.
//!
//! The C and C++ programs (bench/peers/) are built by
//! bench/peers/build.sh into target/peers/; a peer that cannot be built is
//! shown as "skipped: <reason>". Every system runs each workload in
//! processes of its own: the C and C++ programs, and the Rust systems
//! (rayon, tokio, wsrt) in this binary re-executed with `--child WORKLOAD
//! SYSTEM`, so that none pays for what another left behind (thread pools,
//! the heap). Two of them, each with a warm-up and half the runs: every
//! system once in order, then once in reverse order, so that a drift of
//! the host during a workload falls on all alike. The memory workloads run
//! every run in a fresh process without a warm-up (`--once`) so that RSS
//! deltas are clean.
//!
//! The host of this project's VM changes it under a run: its two vCPUs
//! move apart (cross-core latency ~30 → ~160 ns) or onto one physical core,
//! for tens of seconds at a time. The bench probes the machine before each
//! workload and after each of its processes (`harness::probe_machine`, a
//! few ms), measures a workload again (up to twice) when a probe was far
//! from the machine at its best in the run, and notes under the table the
//! rows that never ran steadily.

mod harness;
mod systems;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harness::{probe_machine, run_local, run_program, LoadMeter, Probe, Runs, Sample, Stats};

// ---- systems (table columns) ----

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Sys {
    Rayon,
    Chili,
    Forte,
    Tokio,
    Tbb,
    Omp,
    WsrtRust,
    WsrtC,
}

impl Sys {
    const ALL: [Sys; 8] = [
        Sys::Rayon,
        Sys::Chili,
        Sys::Forte,
        Sys::Tokio,
        Sys::Tbb,
        Sys::Omp,
        Sys::WsrtRust,
        Sys::WsrtC,
    ];

    /// Column header.
    fn label(self) -> &'static str {
        match self {
            Sys::Rayon => "rayon",
            Sys::Chili => "chili",
            Sys::Forte => "forte",
            Sys::Tokio => "tokio",
            Sys::Tbb => "oneTBB",
            Sys::Omp => "OpenMP",
            Sys::WsrtRust => "wsrt (Rust)",
            Sys::WsrtC => "wsrt (C)",
        }
    }

    /// Short name in ratios.
    fn short(self) -> &'static str {
        match self {
            Sys::Rayon => "rayon",
            Sys::Chili => "chili",
            Sys::Forte => "forte",
            Sys::Tokio => "tokio",
            Sys::Tbb => "TBB",
            Sys::Omp => "OMP",
            Sys::WsrtRust => "Rust",
            Sys::WsrtC => "C",
        }
    }

    /// Name in JSON and on the `--child` command line.
    fn key(self) -> &'static str {
        match self {
            Sys::Rayon => "rayon",
            Sys::Chili => "chili",
            Sys::Forte => "forte",
            Sys::Tokio => "tokio",
            Sys::Tbb => "tbb",
            Sys::Omp => "omp",
            Sys::WsrtRust => "wsrt_rust",
            Sys::WsrtC => "wsrt_c",
        }
    }

    /// The external program that measures this system, if it is one.
    fn program(self) -> Option<&'static str> {
        match self {
            Sys::Tbb => Some("tbb_bench"),
            Sys::Omp => Some("omp_bench"),
            Sys::WsrtC => Some("wsrt_bench"),
            _ => None,
        }
    }
}

// ---- sizes ----

/// Workload sizes and run counts of one mode.
#[derive(Clone, Debug)]
pub struct Sizes {
    pub mode: &'static str,
    pub runs: Runs,
    /// Measured runs of a short workload (`Workload::short`).
    pub short_runs: usize,
    /// spawn_wait, detached, cancel, group_cancel, callbacks, grouped_spawn.
    pub tasks: u64,
    pub fib: u64,
    /// (n, sequential below)
    pub fib_cutoff: (u64, u64),
    /// fib_cutoff with more workers than CPUs: (n, sequential below, workers)
    pub oversubscribed: (u64, u64, u64),
    /// (n, task depth): board rows above the depth spawn a task per queen
    pub nqueens: (u64, u64),
    /// elements
    pub cilksort: u64,
    /// (root's children b0, q in millionths, m): the tree of common.h
    pub uts: (u64, u64, u64),
    /// levels of nested helping waits
    pub wait_stack: u64,
    /// (children, leaves per child)
    pub nested: (u64, u64),
    pub idle_ms: u64,
    /// Pause after the last task before idle_cpu starts measuring.
    pub idle_settle_ms: u64,
    /// (bursts, tasks per burst, gap µs)
    pub bursty: (u64, u64, u64),
    /// (samples, gap µs)
    pub wake: (u64, u64),
    /// (tasks, shortest sleep µs, longest sleep µs)
    pub timers: (u64, u64, u64),
    pub memory: u64,
}

impl Sizes {
    fn quick() -> Sizes {
        Sizes {
            mode: "quick",
            runs: Runs {
                warmups: 1,
                runs: 5,
                limit: Duration::from_secs(120),
            },
            short_runs: 11,
            tasks: 500_000,
            fib: 30,
            fib_cutoff: (35, 20),
            oversubscribed: (35, 20, 16),
            nqueens: (12, 3),
            // Half of full's: a run sorts twice (serial, then parallel) and
            // makes and checks the input twice.
            cilksort: 4 << 20,
            uts: (2_000, 124_875, 8),
            wait_stack: 1_000,
            nested: (1_000, 500),
            idle_ms: 300,
            idle_settle_ms: 100,
            bursty: (100, 100, 1_000),
            wake: (1_000, 100),
            timers: (100_000, 1_000, 10_000),
            memory: 500_000,
        }
    }

    /// Warm-ups and measured runs of `w`.
    fn runs_of(&self, w: &Workload) -> Runs {
        let mut runs = self.runs;
        if w.short {
            runs.runs = self.short_runs;
        }
        runs
    }

    /// "1 warm-up + 5 runs, 11 for spawn_wait, ...": the short ones of
    /// `workloads` are named.
    fn runs_text(&self, workloads: &[Workload]) -> String {
        let mut text = format!("{} warm-up + {} runs", self.runs.warmups, self.runs.runs);
        let short: Vec<&str> = workloads
            .iter()
            .filter(|w| w.short)
            .map(|w| w.name)
            .collect();
        if self.short_runs != self.runs.runs && !short.is_empty() {
            let _ = write!(text, ", {} for {}", self.short_runs, short.join(", "));
        }
        text
    }

    fn full() -> Sizes {
        Sizes {
            mode: "full",
            runs: Runs {
                warmups: 1,
                runs: 10,
                limit: Duration::from_secs(900),
            },
            short_runs: 15,
            tasks: 1_000_000,
            fib: 30,
            fib_cutoff: (35, 20),
            oversubscribed: (35, 20, 16),
            nqueens: (12, 3),
            cilksort: 8 << 20,
            uts: (2_000, 124_875, 8),
            wait_stack: 1_000,
            nested: (1_000, 1_000),
            idle_ms: 2_000,
            idle_settle_ms: 100,
            bursty: (200, 100, 1_000),
            wake: (10_000, 100),
            timers: (100_000, 1_000, 10_000),
            memory: 1_000_000,
        }
    }
}

// ---- workloads ----

type RustFn = fn(&Sizes) -> Sample;

/// One line of the table: a figure computed from each run's sample.
struct Row {
    label: &'static str,
    unit: &'static str,
    value: fn(&Sample) -> Option<f64>,
}

/// What a target compares a wsrt figure with.
#[derive(Clone, Copy)]
enum Against {
    /// A fixed bound on the figure itself.
    Absolute,
    /// Another system's figure on the same row.
    System(Sys),
    /// The best (lowest) figure among these peers on the same row.
    BestOf(&'static [Sys]),
    /// The same system's figure on another row (of another workload: n/a
    /// unless that one ran too).
    OwnRow(&'static str),
}

#[derive(Clone, Copy)]
enum Bound {
    AtMost(f64),
    AtLeast(f64),
}

/// One target of BENCH.md: `subject`'s figure (or its ratio to `against`)
/// must be within `bound`.
struct Target {
    row: &'static str,
    subject: Sys,
    against: Against,
    bound: Bound,
}

struct Workload {
    name: &'static str,
    /// What each system does, for the legend under the table.
    what: &'static str,
    rows: &'static [Row],
    /// Implementations in this binary (each run with `--child`).
    rust: &'static [(Sys, RustFn)],
    /// External programs that implement it.
    external: &'static [Sys],
    /// Rust systems measured by `downstream_bench` (bench/kernels), which
    /// builds wsrt and its peers as a user's crate does (cargo's default
    /// release profile), with `params` as its N and WORKERS.
    downstream: &'static [Sys],
    /// Size parameters for the external programs (and the progress line).
    params: fn(&Sizes) -> Vec<u64>,
    /// Each run in a fresh process (memory).
    fresh_process: bool,
    /// A run takes milliseconds: measured `Sizes::short_runs` times rather
    /// than `runs`. On this host a process's first runs after the warm-up
    /// often still take page faults or a slow stretch; five runs left the
    /// median two outliers from the edge.
    short: bool,
    /// Its figures move when the host moves the CPUs apart or slows them
    /// (`harness::probe_machine`): measured again then, and flagged if
    /// never steady. Not idle_cpu's and memory's (the CPU time of sleeping
    /// threads, resident bytes).
    host_bound: bool,
    targets: &'static [Target],
}

fn per_task(s: &Sample) -> Option<f64> {
    Some(s.get("ns")? / s.get("count")?)
}

/// A callbacks (grouped_spawn) run over the spawn_wait run measured next
/// to it, in the same process (`systems::paired_with_spawn_wait`).
fn over_spawn_wait(s: &Sample) -> Option<f64> {
    Some(s.get("ns")? / s.get("spawn_wait_ns")?)
}

/// The parallel half of a run paired with its serial elision, in ms.
fn par_ms(s: &Sample) -> Option<f64> {
    Some(s.get("par_ns")? / 1e6)
}

/// A row in ms of the parallel time of a kernel paired with its serial
/// elision (nqueens, cilksort, uts).
macro_rules! par_row {
    ($label:expr) => {
        Row {
            label: $label,
            unit: "ms",
            value: par_ms,
        }
    };
}

/// wsrt (C) within 0.9 of the faster of oneTBB and OpenMP.
macro_rules! c_vs_tbb_omp {
    ($row:expr) => {
        [Target {
            row: $row,
            subject: WsrtC,
            against: Against::BestOf(&[Tbb, Omp]),
            bound: Bound::AtMost(0.9),
        }]
    };
}

fn speedup(s: &Sample) -> Option<f64> {
    Some(s.get("seq_ns")? / s.get("par_ns")?)
}

/// CPU milliseconds per 2 s of idling (quick mode idles less and scales).
fn idle_ms_per_2s(s: &Sample) -> Option<f64> {
    Some(s.get("cpu_s")? * 2.0 / s.get("wall_s")? * 1e3)
}

fn cpu_s(s: &Sample) -> Option<f64> {
    s.get("cpu_s")
}

fn cpu_per_wall(s: &Sample) -> Option<f64> {
    Some(s.get("cpu_s")? / s.get("wall_s")?)
}

fn bytes_per_task(s: &Sample) -> Option<f64> {
    Some(s.get("bytes")? / s.get("count")?)
}

fn p50(s: &Sample) -> Option<f64> {
    s.get("p50_us")
}

fn p99(s: &Sample) -> Option<f64> {
    s.get("p99_us")
}

/// A row in ns per task (per fork for fib).
macro_rules! ns_row {
    ($label:expr) => {
        Row {
            label: $label,
            unit: "ns",
            value: per_task,
        }
    };
}

use Sys::*;

/// The same target for wsrt through Rust and through C.
macro_rules! both {
    ($row:expr, $against:expr, $bound:expr) => {
        [
            Target {
                row: $row,
                subject: WsrtRust,
                against: $against,
                bound: $bound,
            },
            Target {
                row: $row,
                subject: WsrtC,
                against: $against,
                bound: $bound,
            },
        ]
    };
}

fn workloads() -> Vec<Workload> {
    use systems::*;
    vec![
        Workload {
            name: "spawn_wait",
            what: "tiny tasks spawned from the main thread with handles, then each waited and released (tokio: rt.spawn + JoinHandle; wsrt: rt.spawn + join / wsrt_spawn + wsrt_task_wait)",
            rows: &[ns_row!("spawn_wait")],
            rust: &[(Tokio, spawn_wait_tokio), (WsrtRust, spawn_wait_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.tasks],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &[
                Target {
                    row: "spawn_wait",
                    subject: WsrtRust,
                    against: Against::System(Tokio),
                    bound: Bound::AtMost(0.5),
                },
                Target {
                    row: "spawn_wait",
                    subject: WsrtC,
                    against: Against::System(WsrtRust),
                    bound: Bound::AtMost(1.25),
                },
            ],
        },
        Workload {
            name: "detached",
            what: "the same without handles, then wait for the counter (rayon: pool.scope + spawn; TBB: task_group run + wait; OpenMP: tasks from a single region; wsrt: spawn_detached / wsrt_spawn(out=NULL))",
            rows: &[ns_row!("detached")],
            rust: &[(Rayon, detached_rayon), (WsrtRust, detached_wsrt)],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.tasks],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "detached",
                Against::BestOf(&[Rayon, Tbb, Omp]),
                Bound::AtMost(1.0)
            ),
        },
        Workload {
            name: "fib",
            what: "fib(n), no cutoff, per fork: rayon::join, chili's Scope::join and forte's Worker::join (heartbeat scheduling; forte's calling thread is one of its workers) and wsrt::join (Rust); C handles (spawn child, compute the other half, helping wait) vs TBB task_group and OpenMP task + taskwait",
            rows: &[ns_row!("fib")],
            rust: &[
                (Rayon, fib_rayon_join),
                (Chili, fib_chili_join),
                (Forte, fib_forte_join),
                (WsrtRust, fib_wsrt_join),
            ],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.fib],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &[
                Target {
                    row: "fib",
                    subject: WsrtRust,
                    against: Against::System(Rayon),
                    bound: Bound::AtMost(1.5),
                },
                Target {
                    row: "fib",
                    subject: WsrtC,
                    against: Against::System(Tbb),
                    bound: Bound::AtMost(1.0),
                },
            ],
        },
        Workload {
            name: "fib_dep",
            what: "fib as a crate that depends on wsrt gets it: bench/kernels' downstream_bench, built with cargo's default release profile (no LTO), one worker per CPU",
            rows: &[ns_row!("fib_dep")],
            rust: &[],
            external: &[],
            downstream: &[Rayon, Chili, Forte, WsrtRust],
            params: |s| vec![s.fib, cores() as u64],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &[
                Target {
                    row: "fib_dep",
                    subject: WsrtRust,
                    against: Against::System(Rayon),
                    bound: Bound::AtMost(1.0),
                },
                Target {
                    row: "fib_dep",
                    subject: WsrtRust,
                    against: Against::System(Chili),
                    bound: Bound::AtMost(1.0),
                },
            ],
        },
        Workload {
            name: "fib_dep_1",
            what: "fib_dep on one worker",
            rows: &[ns_row!("fib_dep_1")],
            rust: &[],
            external: &[],
            downstream: &[Rayon, Chili, Forte, WsrtRust],
            params: |s| vec![s.fib, 1],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &[
                Target {
                    row: "fib_dep_1",
                    subject: WsrtRust,
                    against: Against::System(Rayon),
                    bound: Bound::AtMost(1.0),
                },
                Target {
                    row: "fib_dep_1",
                    subject: WsrtRust,
                    against: Against::System(Chili),
                    bound: Bound::AtMost(1.0),
                },
            ],
        },
        Workload {
            name: "fib_cutoff",
            what: "fib(n), sequential below the cutoff; speedup over sequential fib compiled by the same compiler, paired in each run",
            rows: &[Row {
                label: "fib_cutoff",
                unit: "x",
                value: speedup,
            }],
            rust: &[(Rayon, fib_cutoff_rayon), (WsrtRust, fib_cutoff_wsrt)],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.fib_cutoff.0, s.fib_cutoff.1],
            short: false,
            host_bound: true,
            fresh_process: false,
            targets: &both!("fib_cutoff", Against::Absolute, Bound::AtLeast(1.85)),
        },
        Workload {
            name: "oversubscribed",
            what: "fib_cutoff with more threads than CPUs (rayon, wsrt: that many workers; TBB: global_control + task_arena of that many, the main thread one of them; OpenMP: num_threads); speedup over sequential fib, paired in each run",
            rows: &[Row {
                label: "oversubscribed",
                unit: "x",
                value: speedup,
            }],
            rust: &[
                (Rayon, oversubscribed_rayon),
                (WsrtRust, oversubscribed_wsrt),
            ],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| {
                let (n, cutoff, workers) = s.oversubscribed;
                vec![n, cutoff, workers]
            },
            short: false,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "oversubscribed",
                Against::OwnRow("fib_cutoff"),
                Bound::AtLeast(0.9)
            ),
        },
        Workload {
            name: "nqueens",
            what: "n-queens solutions: boards above the depth spawn a task per queen placed, deeper ones recurse serially (C: wsrt_spawn + wsrt_task_join; TBB: task_group; OpenMP: task + taskwait); parallel time, paired in each run with the serial version",
            rows: &[par_row!("nqueens")],
            rust: &[],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.nqueens.0, s.nqueens.1],
            // A parallel run is short: measured `short_runs` times.
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &c_vs_tbb_omp!("nqueens"),
        },
        Workload {
            name: "cilksort",
            what: "sort n xorshift 32-bit ints, Cilk's cilksort: 4-way mergesort, parallel merge, serial quicksort and merge below 2048 elements; paired as nqueens",
            rows: &[par_row!("cilksort")],
            rust: &[],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.cilksort],
            short: false,
            host_bound: true,
            fresh_process: false,
            targets: &c_vs_tbb_omp!("cilksort"),
        },
        Workload {
            name: "uts",
            what: "nodes of an unbalanced tree (root b0 children, others m with probability q in millionths; 4,053,145 nodes, depth 1,231), a task per node; paired as nqueens",
            rows: &[par_row!("uts")],
            rust: &[],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.uts.0, s.uts.1, s.uts.2],
            short: false,
            host_bound: true,
            fresh_process: false,
            targets: &c_vs_tbb_omp!("uts"),
        },
        Workload {
            name: "nested",
            what: "a root task spawns children, each spawns leaves, every level waits (tokio, wsrt: handles; rayon: nested scope spawns; TBB: nested task_groups; OpenMP: tasks + taskwait)",
            rows: &[ns_row!("nested")],
            rust: &[
                (Rayon, nested_rayon),
                (Tokio, nested_tokio),
                (WsrtRust, nested_wsrt),
            ],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.nested.0, s.nested.1],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "nested",
                Against::BestOf(&[Tokio, Rayon]),
                Bound::AtMost(1.0)
            ),
        },
        Workload {
            name: "cancel",
            what: "every worker blocked, tasks spawned with handles and a drop-counted argument, each cancelled while pending, handles released (tokio: JoinHandle::abort)",
            rows: &[ns_row!("cancel")],
            rust: &[(Tokio, cancel_tokio), (WsrtRust, cancel_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.tasks],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &both!("cancel", Against::Absolute, Bound::AtMost(100.0)),
        },
        Workload {
            name: "group_cancel",
            what: "every worker blocked, tasks with a drop-counted argument spawned into one group (C: no handles; Rust: Group::spawn, each handle dropped at once), one group cancel, the workers let go, the group's wait (the workers end the cancelled tasks as they pop them, and the waiting thread those still queued from it); every task must end CANCELLED",
            rows: &[ns_row!("group_cancel")],
            rust: &[(WsrtRust, group_cancel_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.tasks],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "group_cancel",
                Against::OwnRow("cancel"),
                Bound::AtMost(0.5)
            ),
        },
        Workload {
            name: "callbacks",
            what: "spawn_wait with one done-callback per task (wsrt: on_done / wsrt_task_add_done_callback); each run paired with a spawn_wait run in the same process, the order alternating, for the ratio",
            rows: &[
                ns_row!("callbacks"),
                Row {
                    label: "callbacks/spawn_wait",
                    unit: "x",
                    value: over_spawn_wait,
                },
            ],
            rust: &[(WsrtRust, callbacks_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.tasks],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "callbacks/spawn_wait",
                Against::Absolute,
                Bound::AtMost(1.2)
            ),
        },
        Workload {
            name: "grouped_spawn",
            what: "spawn_wait with every task spawned into one group (Group::spawn / wsrt_spawn_opts.group); each run paired with a spawn_wait run in the same process, the order alternating, for the ratio",
            rows: &[
                ns_row!("grouped_spawn"),
                Row {
                    label: "grouped_spawn/spawn_wait",
                    unit: "x",
                    value: over_spawn_wait,
                },
            ],
            rust: &[(WsrtRust, grouped_spawn_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.tasks],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "grouped_spawn/spawn_wait",
                Against::Absolute,
                Bound::AtMost(1.1)
            ),
        },
        Workload {
            name: "idle_cpu",
            what: "one task, 100 ms to settle, then the pool sits idle; CPU time of the whole process, scaled to 2 s",
            rows: &[Row {
                label: "idle_cpu",
                unit: "ms/2s",
                value: idle_ms_per_2s,
            }],
            rust: &[
                (Rayon, idle_rayon),
                (Tokio, idle_tokio),
                (WsrtRust, idle_wsrt),
            ],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.idle_ms, s.idle_settle_ms],
            short: false,
            host_bound: false,
            fresh_process: false,
            targets: &both!("idle_cpu", Against::Absolute, Bound::AtMost(5.0)),
        },
        Workload {
            name: "bursty",
            what: "bursts of tiny tasks (each burst waited for), 1 ms apart; CPU time / wall time",
            rows: &[Row {
                label: "bursty",
                unit: "cpu/wall",
                value: cpu_per_wall,
            }],
            rust: &[
                (Rayon, bursty_rayon),
                (Tokio, bursty_tokio),
                (WsrtRust, bursty_wsrt),
            ],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.bursty.0, s.bursty.1, s.bursty.2],
            short: false,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "bursty",
                Against::BestOf(&[Rayon, Tokio]),
                Bound::AtMost(1.0)
            ),
        },
        Workload {
            name: "wake_latency",
            what: "a task spawned onto an idle pool stamps its start; spawn-to-start latency, samples 100 µs apart",
            rows: &[
                Row {
                    label: "wake_latency p50",
                    unit: "µs",
                    value: p50,
                },
                Row {
                    label: "wake_latency p99",
                    unit: "µs",
                    value: p99,
                },
            ],
            rust: &[
                (Rayon, wake_rayon),
                (Tokio, wake_tokio),
                (WsrtRust, wake_wsrt),
            ],
            external: &[Tbb, Omp, WsrtC],
            downstream: &[],
            params: |s| vec![s.wake.0, s.wake.1],
            short: false,
            host_bound: true,
            fresh_process: false,
            targets: &both!(
                "wake_latency p50",
                Against::System(Tokio),
                Bound::AtMost(1.0)
            ),
        },
        Workload {
            name: "timers",
            what: "tasks that each sleep once, 1–10 ms (spread, in scrambled order), all spawned at once with handles, then each waited (tokio: tokio::time::sleep; wsrt: wsrt::sleep in spawn_async / a C task returning wsrt_sleep(ns), then WSRT_TASK_OK when called again); CPU seconds of the process over the run, and lateness (wake − deadline) over the run's tasks",
            rows: &[
                Row {
                    label: "timers cpu",
                    unit: "s",
                    value: cpu_s,
                },
                Row {
                    label: "timers late p50",
                    unit: "µs",
                    value: p50,
                },
                Row {
                    label: "timers late p99",
                    unit: "µs",
                    value: p99,
                },
            ],
            rust: &[(Tokio, timers_tokio), (WsrtRust, timers_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.timers.0, s.timers.1, s.timers.2],
            short: true,
            host_bound: true,
            fresh_process: false,
            targets: &[
                Target {
                    row: "timers cpu",
                    subject: WsrtRust,
                    against: Against::System(Tokio),
                    bound: Bound::AtMost(1.0),
                },
                Target {
                    row: "timers cpu",
                    subject: WsrtC,
                    against: Against::System(Tokio),
                    bound: Bound::AtMost(1.0),
                },
                Target {
                    row: "timers late p99",
                    subject: WsrtRust,
                    against: Against::System(Tokio),
                    bound: Bound::AtMost(1.0),
                },
                Target {
                    row: "timers late p99",
                    subject: WsrtC,
                    against: Against::System(Tokio),
                    bound: Bound::AtMost(1.0),
                },
            ],
        },
        Workload {
            name: "wait_stack",
            what: "stack per level of nested helping waits, one worker: a chain of tasks each spawning the next and joining it (wsrt: Handle::spawn + join / wsrt_spawn + wsrt_task_join; rayon: a scope spawning the next level)",
            rows: &[Row {
                label: "wait_stack",
                unit: "B/level",
                value: bytes_per_task,
            }],
            rust: &[(Rayon, wait_stack_rayon), (WsrtRust, wait_stack_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.wait_stack],
            short: true,
            host_bound: false,
            fresh_process: false,
            targets: &[],
        },
        Workload {
            name: "memory",
            what: "RSS growth per pending task with its handle while every worker is blocked, each run in a fresh process (tokio: JoinHandle; wsrt: rt.spawn / wsrt_spawn with a handle; TBB: task_group::run, which has none)",
            rows: &[Row {
                label: "memory",
                unit: "B/task",
                value: bytes_per_task,
            }],
            rust: &[(Tokio, memory_tokio), (WsrtRust, memory_wsrt)],
            external: &[Tbb, WsrtC],
            downstream: &[],
            params: |s| vec![s.memory],
            short: false,
            host_bound: false,
            fresh_process: true,
            targets: &both!("memory", Against::Absolute, Bound::AtMost(96.0)),
        },
        Workload {
            name: "memory_detached",
            what: "RSS growth per pending task without a handle while every worker is blocked, each run in a fresh process (rayon: ThreadPool::spawn; wsrt: spawn_detached / wsrt_spawn with out NULL)",
            rows: &[Row {
                label: "memory_detached",
                unit: "B/task",
                value: bytes_per_task,
            }],
            rust: &[(Rayon, memory_rayon), (WsrtRust, memory_detached_wsrt)],
            external: &[WsrtC],
            downstream: &[],
            params: |s| vec![s.memory],
            short: false,
            host_bound: false,
            fresh_process: true,
            targets: &both!("memory_detached", Against::System(Rayon), Bound::AtMost(1.0)),
        },
    ]
}

// ---- results ----

/// What one system gave on one workload.
enum Outcome {
    /// Not part of this workload.
    NotApplicable,
    Skipped(String),
    Failed(String),
    Ran(Vec<Sample>),
}

impl Outcome {
    /// The runs of both processes of a system; otherwise what went wrong.
    fn and(self, second: Outcome) -> Outcome {
        match (self, second) {
            (Outcome::Ran(mut a), Outcome::Ran(b)) => {
                a.extend(b);
                Outcome::Ran(a)
            }
            (Outcome::Ran(_), other) | (other, _) => other,
        }
    }
}

/// One table cell.
enum Cell {
    Empty,
    Skipped(String),
    Failed(String),
    Figure {
        stats: Stats,
        unit: &'static str,
        checks_failed: bool,
    },
}

impl Cell {
    fn median(&self) -> Option<f64> {
        match self {
            Cell::Figure { stats, .. } => Some(stats.median),
            _ => None,
        }
    }
}

struct TableRow {
    label: &'static str,
    /// Cores other processes kept busy while this workload ran.
    background: f64,
    /// The machine probed before and after the workload ran.
    /// The machine probed before the workload's first process and after
    /// each.
    probes: Vec<Probe>,
    /// `Workload::host_bound`.
    host_bound: bool,
    cells: BTreeMap<Sys, Cell>,
    verdicts: Vec<Verdict>,
}

struct Verdict {
    text: String,
    ratio: Option<f64>,
    bound: f64,
    met: Option<bool>,
}

// ---- running ----

struct Bench {
    sizes: Sizes,
    /// The bench binary, for `--child` runs.
    exe: PathBuf,
    /// Where build.sh put the external programs.
    peers_dir: PathBuf,
    /// bench/kernels' downstream_bench, or why it could not be built.
    downstream: Result<PathBuf, String>,
}

impl Bench {
    /// The program of an external system, or why it is skipped.
    fn program(&self, sys: Sys) -> Result<PathBuf, String> {
        let name = sys.program().expect("external system");
        let path = self.peers_dir.join(name);
        if path.is_file() {
            return Ok(path);
        }
        let reason = std::fs::read_to_string(self.peers_dir.join(format!("{name}.skip")))
            .unwrap_or_else(|_| format!("{name} not built"));
        Err(reason.trim().to_string())
    }

    /// Runs `sys` on `w` in one process (one per run for a fresh-process
    /// workload), measuring `runs`.
    fn run_system(&self, w: &Workload, sys: Sys, runs: Runs) -> Outcome {
        let mut params: Vec<String> = (w.params)(&self.sizes).iter().map(u64::to_string).collect();
        let result = if w.rust.iter().any(|(s, _)| *s == sys) {
            // In a process of its own, as the C and C++ programs are: what
            // the systems measured before left behind (thread pools, the
            // heap) is not this one's to pay for.
            let mut args = vec![
                "--child".into(),
                w.name.into(),
                sys.key().into(),
                format!("--{}", self.sizes.mode),
                "--runs".into(),
                runs.runs.to_string(),
            ];
            if w.fresh_process {
                args.push("--once".into());
                run_local(runs, || single(run_program(&self.exe, &args, runs.limit)))
            } else {
                run_program(&self.exe, &args, runs.limit)
            }
        } else if w.downstream.contains(&sys) {
            let program = match &self.downstream {
                Ok(p) => p,
                Err(reason) => return Outcome::Skipped(reason.clone()),
            };
            let mut args = vec![
                sys.key().to_string(),
                runs.warmups.to_string(),
                runs.runs.to_string(),
            ];
            args.append(&mut params);
            run_program(program, &args, runs.limit)
        } else if w.external.contains(&sys) {
            let program = match self.program(sys) {
                Ok(p) => p,
                Err(reason) => return Outcome::Skipped(reason),
            };
            if w.fresh_process {
                let mut args = vec![w.name.to_string(), "0".into(), "1".into()];
                args.append(&mut params);
                run_local(runs, || single(run_program(&program, &args, runs.limit)))
            } else {
                let mut args = vec![
                    w.name.to_string(),
                    runs.warmups.to_string(),
                    runs.runs.to_string(),
                ];
                args.append(&mut params);
                run_program(&program, &args, runs.limit)
            }
        } else {
            return Outcome::NotApplicable;
        };
        match result {
            Ok(samples) if samples.len() >= runs.runs => Outcome::Ran(samples),
            Ok(samples) => Outcome::Failed(format!(
                "{} runs reported, {} expected",
                samples.len(),
                runs.runs
            )),
            Err(e) => Outcome::Failed(e),
        }
    }

    /// Runs every system on `w`, printing one progress line to stderr.
    fn run_workload(&self, index: usize, total: usize, w: &Workload) -> Vec<TableRow> {
        let start = Instant::now();
        let load = LoadMeter::start();
        // Probed before the first process and after each: a host change
        // that came and went inside a workload's seconds is seen.
        let mut probes = vec![probe_machine()];
        let params: Vec<String> = (w.params)(&self.sizes).iter().map(u64::to_string).collect();
        eprint!(
            "[{index:>2}/{total}] {:<12} ({}):",
            w.name,
            params.join(" ")
        );
        let _ = std::io::stderr().flush();
        // Two passes, the second in reverse order, each system measuring
        // half its runs in each: the host drifts over a workload's seconds
        // (CPU time per wall second of every system rose together for a
        // while in one run), and in one pass the last system took it all.
        let runs = self.sizes.runs_of(w);
        let first = Runs {
            runs: runs.runs.div_ceil(2),
            ..runs
        };
        let second = Runs {
            runs: runs.runs / 2,
            ..runs
        };
        let mut outcomes: BTreeMap<Sys, Outcome> = BTreeMap::new();
        for sys in Sys::ALL {
            let outcome = self.run_system(w, sys, first);
            if matches!(outcome, Outcome::Ran(_) | Outcome::Failed(_)) {
                probes.push(probe_machine());
            }
            outcomes.insert(sys, outcome);
        }
        for sys in Sys::ALL.into_iter().rev() {
            let Some(Outcome::Ran(_)) = outcomes.get(&sys) else {
                continue; // skipped, failed or not part of it: once is enough
            };
            let ran = outcomes.remove(&sys).expect("ran");
            outcomes.insert(sys, ran.and(self.run_system(w, sys, second)));
            probes.push(probe_machine());
        }
        for (sys, outcome) in &outcomes {
            match outcome {
                Outcome::NotApplicable => {}
                Outcome::Skipped(_) => eprint!(" {} skipped,", sys.short()),
                Outcome::Failed(_) => eprint!(" {} FAILED,", sys.short()),
                Outcome::Ran(samples) => {
                    let row = &w.rows[0];
                    let v = Stats::of(samples.iter().filter_map(row.value).collect());
                    let shown = v.map_or("?".into(), |s| fmt_num(s.median));
                    eprint!(" {} {}{},", sys.short(), shown, row.unit);
                }
            }
        }
        let background = load.other_cores();
        let (lat_lo, lat_hi) = probe_span(&probes, |p| p.latency_ns);
        let (loop_lo, loop_hi) = probe_span(&probes, |p| p.compute_ms);
        eprintln!(
            " {:.1} s, background load {background:.2} cores, core-to-core \
             {lat_lo:.0}–{lat_hi:.0} ns, loop {loop_lo:.2}–{loop_hi:.2} ms",
            start.elapsed().as_secs_f64(),
        );
        w.rows
            .iter()
            .map(|row| TableRow {
                label: row.label,
                background,
                probes: probes.clone(),
                host_bound: w.host_bound,
                cells: outcomes
                    .iter()
                    .map(|(&sys, o)| (sys, cell(row, o)))
                    .collect(),
                verdicts: Vec::new(),
            })
            .collect()
    }
}

/// The one sample of a single-run child process.
fn single(samples: Result<Vec<Sample>, String>) -> Result<Sample, String> {
    samples?
        .into_iter()
        .next()
        .ok_or_else(|| "no run reported".to_string())
}

fn cell(row: &Row, outcome: &Outcome) -> Cell {
    match outcome {
        Outcome::NotApplicable => Cell::Empty,
        Outcome::Skipped(r) => Cell::Skipped(r.clone()),
        Outcome::Failed(e) => Cell::Failed(e.clone()),
        Outcome::Ran(samples) => match Stats::of(samples.iter().filter_map(row.value).collect()) {
            Some(stats) => Cell::Figure {
                stats,
                unit: row.unit,
                checks_failed: samples.iter().any(|s| !s.ok()),
            },
            None => Cell::Failed(format!("no {} figure in the output", row.label)),
        },
    }
}

/// Evaluates every target against the finished table.
fn judge(workloads: &[Workload], rows: &mut [TableRow]) {
    let medians: BTreeMap<(&str, Sys), f64> = rows
        .iter()
        .flat_map(|r| {
            r.cells
                .iter()
                .filter_map(move |(&s, c)| Some(((r.label, s), c.median()?)))
        })
        .collect();
    for w in workloads {
        for t in w.targets {
            let Some(row) = rows.iter_mut().find(|r| r.label == t.row) else {
                continue;
            };
            row.verdicts.push(verdict(t, &medians));
        }
    }
}

fn verdict(t: &Target, medians: &BTreeMap<(&str, Sys), f64>) -> Verdict {
    let (bound, op, at_most) = match t.bound {
        Bound::AtMost(b) => (b, "≤", true),
        Bound::AtLeast(b) => (b, "≥", false),
    };
    let subject = medians.get(&(t.row, t.subject)).copied();
    let (name, reference) = match t.against {
        Against::Absolute => (t.subject.short().to_string(), Some(1.0)),
        Against::System(s) => (
            format!("{}/{}", t.subject.short(), s.short()),
            medians.get(&(t.row, s)).copied(),
        ),
        Against::BestOf(peers) => {
            let best = peers
                .iter()
                .filter_map(|&p| Some((p, *medians.get(&(t.row, p))?)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let name = match best {
                Some((p, _)) => format!("{}/best({})", t.subject.short(), p.short()),
                None => format!("{}/best peer", t.subject.short()),
            };
            (name, best.map(|b| b.1))
        }
        Against::OwnRow(row) => (
            format!("{}/{} {row}", t.subject.short(), t.subject.short()),
            medians.get(&(row, t.subject)).copied(),
        ),
    };
    let ratio = subject.zip(reference).map(|(s, r)| s / r);
    let met = ratio.map(|r| if at_most { r <= bound } else { r >= bound });
    let mark = match met {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "n/a",
    };
    // One digit more than the cells, so that a ratio next to its bound reads right.
    let shown = ratio.map_or("?".to_string(), |r| {
        if (0.1..10.0).contains(&r.abs()) {
            format!("{r:.3}")
        } else {
            fmt_num(r)
        }
    });
    Verdict {
        text: format!("{name} {shown} {op}{} {mark}", fmt_num(bound)),
        ratio,
        bound,
        met,
    }
}

// ---- output ----

/// Three significant digits, no exponent for the ranges seen here.
fn fmt_num(x: f64) -> String {
    let a = x.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{x:.0}")
    } else if a >= 10.0 {
        format!("{x:.1}")
    } else if a >= 1.0 {
        format!("{x:.2}")
    } else if a >= 0.01 {
        format!("{x:.3}")
    } else {
        format!("{x:.1e}")
    }
}

fn cell_text(c: &Cell) -> String {
    match c {
        Cell::Empty => "—".into(),
        Cell::Skipped(r) => format!("skipped: {}", truncate(r, 40)),
        Cell::Failed(e) => format!("FAILED: {}", truncate(e, 40)),
        Cell::Figure {
            stats,
            unit,
            checks_failed,
        } => format!(
            "{} ({}–{}) {unit}{}",
            fmt_num(stats.median),
            fmt_num(stats.min),
            fmt_num(stats.max),
            if *checks_failed { " !" } else { "" }
        ),
    }
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

fn pad(s: &str, width: usize) -> String {
    let len = s.chars().count();
    format!("{s}{}", " ".repeat(width.saturating_sub(len)))
}

/// Range of one probed figure over every probe of the run.
fn probe_range(rows: &[TableRow], f: fn(&Probe) -> f64) -> (f64, f64) {
    let all: Vec<Probe> = rows.iter().flat_map(|r| r.probes.iter().copied()).collect();
    probe_span(&all, f)
}

/// Range of one probed figure over `probes`.
fn probe_span(probes: &[Probe], f: fn(&Probe) -> f64) -> (f64, f64) {
    probes
        .iter()
        .map(f)
        .fold((f64::INFINITY, 0.0), |(lo, hi), x| (lo.min(x), hi.max(x)))
}

/// The machine at its best during the run, the state every row should
/// be measured in: of the probes whose loop on all CPUs ran at full speed
/// (within 10% of the fastest), the lower quartile of core-to-core
/// latency. Not the median: when the vCPUs sat far apart (~160 ns) for
/// most of a run, the median was the far state, and the rows measured near
/// (~30 ns) were the ones measured again. Not the minimum either: a rare
/// ~14 ns state (two vCPUs on one core, which the loop does not always
/// show) then made every usual row look off.
fn best_probe<'a>(rows: impl Iterator<Item = &'a TableRow>) -> Probe {
    let probes: Vec<Probe> = rows.flat_map(|r| r.probes.iter().copied()).collect();
    let fastest = probes
        .iter()
        .map(|p| p.compute_ms)
        .fold(f64::INFINITY, f64::min);
    let mut latencies: Vec<f64> = probes
        .iter()
        .filter(|p| p.compute_ms <= fastest * 1.1)
        .map(|p| p.latency_ns)
        .collect();
    latencies.sort_by(f64::total_cmp);
    Probe {
        latency_ns: latencies.get(latencies.len() / 4).copied().unwrap_or(0.0),
        compute_ms: fastest,
    }
}

/// True if the host had changed the machine around a row: its CPUs
/// further apart or closer (one physical core) than at its best, or
/// slower.
fn unsteady(probes: &[Probe], best: Probe) -> bool {
    probes_off(probes, best) > 0
}

/// How many of `probes` found the machine changed from `best`.
fn probes_off(probes: &[Probe], best: Probe) -> usize {
    let off = |x: f64, typical: f64| (x / typical).max(typical / x);
    probes
        .iter()
        .filter(|p| {
            off(p.latency_ns, best.latency_ns) > 1.5 || off(p.compute_ms, best.compute_ms) > 1.3
        })
        .count()
}

fn print_table(rows: &[TableRow]) -> String {
    let mut header = vec!["workload".to_string()];
    header.extend(Sys::ALL.iter().map(|s| s.label().to_string()));
    header.push("target (ratio of medians)".into());
    let lines: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut line = vec![r.label.to_string()];
            line.extend(
                Sys::ALL
                    .iter()
                    .map(|s| r.cells.get(s).map_or("—".into(), cell_text)),
            );
            line.push(
                r.verdicts
                    .iter()
                    .map(|v| v.text.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            );
            line
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .chain([&header])
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let fmt_line = |l: &[String]| {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, &w)| pad(c, w)).collect();
        format!("| {} |", cells.join(" | "))
    };
    let mut out = String::new();
    let _ = writeln!(out, "{}", fmt_line(&header));
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    let _ = writeln!(out, "|-{}-|", rule.join("-|-"));
    for l in &lines {
        let _ = writeln!(out, "{}", fmt_line(l));
    }
    // Notes: noisy rows, failures in full, failed checks.
    for r in rows.iter().filter(|r| r.background >= 0.2) {
        let _ = writeln!(
            out,
            "note: {}: other processes kept {:.2} cores busy meanwhile; its figures are unreliable",
            r.label, r.background
        );
    }
    // Rows around which the host had changed the machine (harness.rs,
    // `probe_machine`), even after `main` measured them again.
    let best = best_probe(rows.iter());
    for r in rows
        .iter()
        .filter(|r| r.host_bound && unsteady(&r.probes, best))
    {
        let (lat_lo, lat_hi) = probe_span(&r.probes, |p| p.latency_ns);
        let (loop_lo, loop_hi) = probe_span(&r.probes, |p| p.compute_ms);
        let _ = writeln!(
            out,
            "note: {}: the host changed the machine around it (core-to-core \
             {lat_lo:.0}–{lat_hi:.0} ns, loop on all CPUs {loop_lo:.2}–{loop_hi:.2} ms around \
             its processes; {:.0} ns and {:.2} ms at its best in this run), also when \
             measured again; its figures are unreliable",
            r.label, best.latency_ns, best.compute_ms
        );
    }
    for r in rows {
        for (sys, c) in &r.cells {
            match c {
                Cell::Skipped(reason) => {
                    let _ = writeln!(
                        out,
                        "note: {} on {}: skipped: {reason}",
                        r.label,
                        sys.label()
                    );
                }
                Cell::Failed(e) => {
                    let _ = writeln!(out, "note: {} on {}: {e}", r.label, sys.label());
                }
                Cell::Figure {
                    checks_failed: true,
                    ..
                } => {
                    let _ = writeln!(out, "note: {} on {}: a run failed its own check (\"!\": wrong count, drops or result)", r.label, sys.label());
                }
                _ => {}
            }
        }
    }
    out
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x}")
    } else {
        "null".into()
    }
}

/// One probed figure of every probe, comma-separated.
fn join_probes(probes: &[Probe], f: impl Fn(&Probe) -> String) -> String {
    probes.iter().map(f).collect::<Vec<_>>().join(", ")
}

fn to_json(sizes: &Sizes, workloads: &[Workload], rows: &[TableRow], seconds: f64) -> String {
    let workload_sizes: Vec<String> = workloads
        .iter()
        .map(|w| format!("{}: {:?}", json_str(w.name), (w.params)(sizes)))
        .collect();
    let workload_sizes = format!("{{{}}}", workload_sizes.join(", "));
    let mut o = String::new();
    let _ = write!(
        o,
        "{{\n  \"mode\": {},\n  \"cpus\": {},\n  \"unix_time\": {},\n  \"seconds\": {:.1},\n  \"warmups\": {},\n  \"runs\": {},\n  \"short_runs\": {},\n  \"sizes\": {},\n  \"rows\": [",
        json_str(sizes.mode),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        seconds,
        sizes.runs.warmups,
        sizes.runs.runs,
        sizes.short_runs,
        workload_sizes,
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            o,
            "{}\n    {{\"row\": {}, \"background_cores\": {:.3}, \"core_to_core_ns\": [{}], \"all_cpu_loop_ms\": [{}], \"systems\": {{",
            if i > 0 { "," } else { "" },
            json_str(r.label),
            r.background,
            join_probes(&r.probes, |p| format!("{:.1}", p.latency_ns)),
            join_probes(&r.probes, |p| format!("{:.3}", p.compute_ms)),
        );
        let cells: Vec<String> = r
            .cells
            .iter()
            .filter(|(_, c)| !matches!(c, Cell::Empty))
            .map(|(sys, c)| {
                let body = match c {
                    Cell::Figure { stats, unit, checks_failed } => format!(
                        "{{\"median\": {}, \"min\": {}, \"max\": {}, \"unit\": {}, \"runs\": [{}], \"checks_ok\": {}}}",
                        json_num(stats.median),
                        json_num(stats.min),
                        json_num(stats.max),
                        json_str(unit),
                        stats.values.iter().map(|v| json_num(*v)).collect::<Vec<_>>().join(", "),
                        !checks_failed
                    ),
                    Cell::Skipped(r) => format!("{{\"skipped\": {}}}", json_str(r)),
                    Cell::Failed(e) => format!("{{\"failed\": {}}}", json_str(e)),
                    Cell::Empty => unreachable!(),
                };
                format!("{}: {body}", json_str(sys.key()))
            })
            .collect();
        let targets: Vec<String> = r
            .verdicts
            .iter()
            .map(|v| {
                format!(
                    "{{\"target\": {}, \"ratio\": {}, \"bound\": {}, \"met\": {}}}",
                    json_str(&v.text),
                    v.ratio.map_or("null".into(), json_num),
                    json_num(v.bound),
                    v.met.map_or("null".into(), |m| m.to_string())
                )
            })
            .collect();
        let _ = write!(
            o,
            "{}}}, \"targets\": [{}]}}",
            cells.join(", "),
            targets.join(", ")
        );
    }
    o.push_str("\n  ]\n}\n");
    o
}

// ---- main ----

struct Args {
    sizes: Sizes,
    only: Vec<String>,
    json: Option<PathBuf>,
    /// `--child WORKLOAD SYSTEM`: this process measures one Rust system
    /// (the parent runs each so): the warm-ups and runs, printed as the
    /// C and C++ programs print theirs (`warmup ...`, `run ...` lines).
    child: Option<(String, String)>,
    /// With `--child`: one run and no warm-up (a fresh process per run).
    once: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: Sizes::quick(),
        only: Vec::new(),
        json: None,
        child: None,
        once: false,
    };
    let mut runs = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match a.as_str() {
            "--quick" => args.sizes = Sizes::quick(),
            "--full" => args.sizes = Sizes::full(),
            "--only" => args
                .only
                .extend(value("--only")?.split(',').map(str::to_string)),
            "--json" => args.json = Some(PathBuf::from(value("--json")?)),
            "--runs" => {
                runs = Some(
                    value("--runs")?
                        .parse::<usize>()
                        .map_err(|e| format!("--runs: {e}"))?,
                )
            }
            "--child" => args.child = Some((value("--child")?, value("--child")?)),
            "--once" => args.once = true,
            "--bench" => {} // passed by `cargo bench`-style runners; ignored
            "-h" | "--help" => {
                println!("usage: bench [--quick|--full] [--only W[,W..]] [--runs N] [--json FILE]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if let Some(r) = runs {
        // BENCH.md's five runs at least; a child measures what it is told.
        let r = if args.child.is_some() {
            r.max(1)
        } else {
            r.max(5)
        };
        args.sizes.runs.runs = r;
        args.sizes.short_runs = r;
    }
    Ok(args)
}

/// `--child WORKLOAD SYSTEM [--once]`: measures one system in this process
/// and prints its runs; with `--once`, a single run (no warm-up).
fn child(sizes: &Sizes, workload: &str, system: &str, once: bool) -> ! {
    let w = workloads().into_iter().find(|w| w.name == workload);
    let f = w.and_then(|w| {
        w.rust
            .iter()
            .find(|(s, _)| s.key() == system)
            .map(|&(_, f)| f)
    });
    let Some(f) = f else {
        println!("error no Rust {workload} for {system}");
        std::process::exit(2)
    };
    let (warmups, runs) = if once {
        (0, 1)
    } else {
        (sizes.runs.warmups, sizes.runs.runs)
    };
    let mut out = std::io::stdout();
    for i in 0..warmups + runs {
        let line = f(sizes).to_line();
        let line = if i < warmups {
            line.replacen("run ", "warmup ", 1)
        } else {
            line
        };
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
    // Leave without tearing down pools a workload left blocked.
    std::process::exit(0)
}

/// Runs bench/peers/build.sh: builds what it can into target/peers/.
/// Building this binary builds the wsrt library too (a dependency whose
/// crate types include cdylib), but cargo leaves its libwsrt.so in
/// target/<profile>/deps/: only a package named on the command line gets
/// its files in target/<profile>/. If libwsrt.so is missing there, or
/// older than deps/libwsrt.so (this binary's build of the library: the one
/// in target/<profile>/ was left by an earlier build, and may lack
/// functions the C program calls), it is built first.
fn build_peers(lib_dir: &Path, peers_dir: &Path) {
    // This crate is bench/ in the workspace; the library is the root package.
    let bench_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = bench_dir.parent().expect("bench/ has a parent");
    let profile_is_release = lib_dir.file_name().is_some_and(|n| n == "release");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let lib = lib_dir.join("libwsrt.so");
    let stale = match (modified(&lib), modified(&lib_dir.join("deps/libwsrt.so"))) {
        (None, _) => true,
        (Some(lib), Some(built)) => built > lib,
        (Some(_), None) => false,
    };
    if stale && profile_is_release {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // `-p wsrt-bench` (which has no library) only makes cargo resolve
        // features as for this binary, so that its build of wsrt is reused
        // as it is. With `-p wsrt` alone, the features of wsrt's
        // build-script dependencies would not include those tokio's macros
        // ask of syn, and wsrt would be compiled again; and since
        // deps/libwsrt.so is one file for both builds, so would it be by
        // the next build of this binary. The default features: as this
        // binary was built.
        let mut args: Vec<&str> = "build --release -p wsrt -p wsrt-bench --lib"
            .split(' ')
            .collect();
        if !cfg!(feature = "default") {
            args.push("--no-default-features");
        }
        eprintln!(
            "{} missing or older than deps/libwsrt.so: {cargo} {}",
            lib.display(),
            args.join(" ")
        );
        let _ = std::process::Command::new(cargo)
            .args(&args)
            .arg("--manifest-path")
            .arg(root.join("Cargo.toml"))
            .status();
    }
    let script = bench_dir.join("peers/build.sh");
    eprintln!(
        "building the C/C++ peers: {} (see {}/*.log)",
        script.display(),
        peers_dir.display()
    );
    let status = std::process::Command::new("sh")
        .arg(&script)
        .arg(lib_dir)
        .arg(peers_dir)
        .stdout(std::process::Stdio::null())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!(
            "warning: {} failed ({status:?}); external peers will show as skipped",
            script.display()
        );
    }
}

/// Builds bench/kernels' downstream_bench with the `downstream` profile
/// (cargo's default release profile) into `target_dir`/downstream; its
/// path, or why it is missing.
fn build_downstream(target_dir: &Path) -> Result<PathBuf, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args: Vec<&str> =
        "build --quiet --profile downstream -p wsrt-bench-kernels --bin downstream_bench"
            .split(' ')
            .collect();
    if !cfg!(feature = "default") {
        args.push("--no-default-features");
    }
    eprintln!(
        "building bench/kernels' downstream_bench as a user's crate: {cargo} {}",
        args.join(" ")
    );
    let status = std::process::Command::new(cargo)
        .args(&args)
        .arg("--manifest-path")
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .status();
    let program = target_dir.join("downstream/downstream_bench");
    match status {
        Ok(s) if s.success() && program.is_file() => Ok(program),
        other => Err(format!("building downstream_bench failed ({other:?})")),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    if let Some((workload, system)) = &args.child {
        child(&args.sizes, workload, system, args.once);
    }
    if cfg!(debug_assertions) {
        eprintln!("warning: debug build; figures only mean something with --release");
    }
    let all = workloads();
    for name in &args.only {
        if !all.iter().any(|w| w.name == name) {
            let names: Vec<_> = all.iter().map(|w| w.name).collect();
            eprintln!(
                "bench: unknown workload {name:?}; one of {}",
                names.join(", ")
            );
            std::process::exit(2);
        }
    }
    let selected: Vec<Workload> = all
        .into_iter()
        .filter(|w| args.only.is_empty() || args.only.iter().any(|o| o == w.name))
        .collect();

    // target/release/bench → the library in target/release, peers in target/peers.
    let exe = std::env::current_exe().expect("current_exe");
    let lib_dir = exe.parent().expect("target/<profile>").to_path_buf();
    let peers_dir = lib_dir.parent().expect("target").join("peers");
    let start = Instant::now();
    build_peers(&lib_dir, &peers_dir);
    let downstream = if selected.iter().any(|w| !w.downstream.is_empty()) {
        build_downstream(lib_dir.parent().expect("target"))
    } else {
        Err("not needed".into())
    };
    let load = LoadMeter::start();

    let sizes = args.sizes.clone();
    eprintln!(
        "mode {}: {} per figure, {} CPUs; {:?}",
        sizes.mode,
        sizes.runs_text(&selected),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        sizes
    );
    let bench = Bench {
        sizes,
        exe,
        peers_dir,
        downstream,
    };
    let mut measured: Vec<Vec<TableRow>> = selected
        .iter()
        .enumerate()
        .map(|(i, w)| bench.run_workload(i + 1, selected.len(), w))
        .collect();
    // A workload measured while the host had changed the machine (CPUs
    // moved apart or onto one core, `probe_machine`) is measured again, up
    // to twice; its new figures replace the old if fewer of their probes
    // were off (a host that stays changed leaves the least changed one).
    for attempt in 1..=2 {
        let best = best_probe(measured.iter().flatten());
        let again: Vec<usize> = (0..measured.len())
            .filter(|&i| {
                measured[i]
                    .iter()
                    .any(|r| r.host_bound && unsteady(&r.probes, best))
            })
            .collect();
        for i in again {
            eprintln!(
                "measuring {} again ({attempt} of 2): the host changed the machine around it",
                selected[i].name
            );
            let rows = bench.run_workload(i + 1, selected.len(), &selected[i]);
            // A workload's rows share their probes.
            if probes_off(&rows[0].probes, best) < probes_off(&measured[i][0].probes, best) {
                measured[i] = rows;
            }
        }
    }
    let mut rows: Vec<TableRow> = measured.into_iter().flatten().collect();
    judge(&selected, &mut rows);
    let seconds = start.elapsed().as_secs_f64();

    let (lat_lo, lat_hi) = probe_range(&rows, |p| p.latency_ns);
    let (loop_lo, loop_hi) = probe_range(&rows, |p| p.compute_ms);
    println!(
        "wsrt bench, {} mode ({}; median (min–max)); {} CPUs; {:.0} s; \
         background load {:.2} cores; core-to-core latency {lat_lo:.0}–{lat_hi:.0} ns; \
         loop on all CPUs {loop_lo:.2}–{loop_hi:.2} ms",
        bench.sizes.mode,
        bench.sizes.runs_text(&selected),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        seconds,
        load.other_cores()
    );
    print!("{}", print_table(&rows));
    println!("workloads (sizes as passed to the peer programs):");
    for w in &selected {
        println!("  {} {:?}: {}", w.name, (w.params)(&bench.sizes), w.what);
    }
    if let Some(path) = &args.json {
        match std::fs::write(path, to_json(&bench.sizes, &selected, &rows, seconds)) {
            Ok(()) => eprintln!("wrote {}", path.display()),
            Err(e) => eprintln!("bench: cannot write {}: {e}", path.display()),
        }
    }
}
