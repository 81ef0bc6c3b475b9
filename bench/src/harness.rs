//! The measuring harness of `bench/src/main.rs`: samples, runs (warm-up +
//! measured), external programs, statistics, process figures (CPU time,
//! RSS, clock), and a watchdog for runs that hang.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The raw figures of one run, as `key=value` pairs (`ns`, `count`, `ok`,
/// `seq_ns`, `cpu_s`, `p50_us`, `bytes`, ...). External programs print the
/// same pairs on a `run` line.
#[derive(Clone, Debug, Default)]
pub struct Sample(pub BTreeMap<String, f64>);

impl Sample {
    pub fn new() -> Sample {
        Sample::default()
    }

    pub fn set(mut self, key: &str, value: f64) -> Sample {
        self.0.insert(key.to_string(), value);
        self
    }

    pub fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    /// `count` operations took `elapsed`; `ok` is the workload's own check.
    pub fn timed(elapsed: Duration, count: u64, ok: bool) -> Sample {
        Sample::new()
            .set("ns", elapsed.as_nanos() as f64)
            .set("count", count as f64)
            .set("ok", f64::from(u8::from(ok)))
    }

    /// This sample with `reference`'s time as `key` (a run of another
    /// workload measured next to this one, in the same process), failed
    /// if either failed its check.
    pub fn paired_with(self, key: &str, reference: &Sample) -> Sample {
        let ok = self.ok() && reference.ok();
        let ns = reference.get("ns").unwrap_or(f64::NAN);
        self.set(key, ns).set("ok", f64::from(u8::from(ok)))
    }

    /// False if the run reported a failed check (`ok=0`).
    pub fn ok(&self) -> bool {
        self.get("ok") != Some(0.0)
    }

    /// Parses the pairs after `run` on an output line.
    fn parse(pairs: &str) -> Result<Sample, String> {
        let mut sample = Sample::new();
        for pair in pairs.split_whitespace() {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| format!("bad pair {pair:?}"))?;
            let v: f64 = v.parse().map_err(|_| format!("bad value in {pair:?}"))?;
            sample.0.insert(k.to_string(), v);
        }
        Ok(sample)
    }

    /// The line a child process prints for this sample.
    pub fn to_line(&self) -> String {
        let pairs: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("run {}", pairs.join(" "))
    }
}

/// How many runs: `warmups` discarded, then `runs` kept.
#[derive(Clone, Copy, Debug)]
pub struct Runs {
    pub warmups: usize,
    pub runs: usize,
    /// Longest time one system's process may take on one workload before
    /// the bench kills it and reports it hung.
    pub limit: Duration,
}

/// Runs `once` for the warm-ups, then for the measured runs.
pub fn run_local(
    runs: Runs,
    mut once: impl FnMut() -> Result<Sample, String>,
) -> Result<Vec<Sample>, String> {
    for _ in 0..runs.warmups {
        once()?;
    }
    (0..runs.runs).map(|_| once()).collect()
}

/// Runs `program args...` and collects its `run` lines (`warmup` lines are
/// ignored). Killed after `limit`.
pub fn run_program(
    program: &Path,
    args: &[String],
    limit: Duration,
) -> Result<Vec<Sample>, String> {
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "{name} {} killed after {} s (hung?)",
                    args.join(" "),
                    limit.as_secs()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(format!("waiting for {name}: {e}")),
        }
    };
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    let mut samples = Vec::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("run ") {
            samples.push(Sample::parse(rest).map_err(|e| format!("{name}: {e}"))?);
        } else if let Some(rest) = line.strip_prefix("error ") {
            return Err(format!("{name}: {rest}"));
        }
    }
    if !status.success() {
        let last = err.lines().last().unwrap_or("");
        return Err(format!(
            "{name} {} exited with {status}: {last}",
            args.join(" ")
        ));
    }
    Ok(samples)
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// Median, minimum and maximum of a list of figures.
#[derive(Clone, Debug)]
pub struct Stats {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub values: Vec<f64>,
}

impl Stats {
    pub fn of(values: Vec<f64>) -> Option<Stats> {
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        if n == 0 {
            return None;
        }
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Stats {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            values,
        })
    }
}

/// p-th percentile (0..=100) of unsorted values, nearest rank below.
pub fn percentile(values: &mut [u64], p: usize) -> u64 {
    values.sort_unstable();
    values[(values.len() * p / 100).min(values.len() - 1)]
}

/// CLOCK_MONOTONIC in nanoseconds: the clock the C programs use too.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// User + system CPU seconds of this process, all threads (getrusage).
pub fn cpu_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF)
}

fn rusage_seconds(who: libc::c_int) -> f64 {
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid out-pointer.
    unsafe { libc::getrusage(who, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Resident set size from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("read /proc/self/statm");
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("parse /proc/self/statm");
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    resident * page as u64
}

/// Sleeps in short steps until `done()`; for waits that must not take a core.
pub fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// Measures how much CPU *other* processes used over an interval: busy time
/// of the whole machine (/proc/stat) minus this process and its reaped
/// children (getrusage). The machine is shared and noisy; this says how much.
pub struct LoadMeter {
    machine: f64,
    own: f64,
    start: Instant,
}

impl LoadMeter {
    pub fn start() -> LoadMeter {
        LoadMeter {
            machine: machine_busy_seconds(),
            own: own_and_children_seconds(),
            start: Instant::now(),
        }
    }

    /// Average number of cores other processes kept busy since `start`.
    pub fn other_cores(&self) -> f64 {
        let machine = machine_busy_seconds() - self.machine;
        let own = own_and_children_seconds() - self.own;
        ((machine - own) / self.start.elapsed().as_secs_f64()).max(0.0)
    }
}

/// Busy CPU seconds of the whole machine since boot (/proc/stat).
fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    // user nice system idle iowait irq softirq steal ...
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| f.get(i)).sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    busy as f64 / hz as f64
}

fn own_and_children_seconds() -> f64 {
    rusage_seconds(libc::RUSAGE_SELF) + rusage_seconds(libc::RUSAGE_CHILDREN)
}

/// What the host gave this VM around a workload: see [`probe_machine`].
#[derive(Clone, Copy, Debug)]
pub struct Probe {
    /// One-way core-to-core latency, ns.
    pub latency_ns: f64,
    /// A fixed loop run on every CPU at once, ms (the slowest CPU).
    pub compute_ms: f64,
}

/// Measures the two things this project's VM was seen to change under a
/// run: how far apart its two vCPUs are (a token handed back and forth
/// through one atomic: ~30 ns one way most of the time, ~160 for tens of
/// seconds at a time, ~13 once, as if they shared a physical core), and
/// how fast they compute (a fixed loop on every CPU at once; a
/// single-threaded loop was once seen running at half speed for a while).
/// Each is the best of a few tries, so one preemption does not count.
pub fn probe_machine() -> Probe {
    Probe {
        latency_ns: core_latency_ns(),
        compute_ms: (0..3)
            .map(|_| parallel_loop_ms())
            .fold(f64::INFINITY, f64::min),
    }
}

/// The fixed loop on every CPU at once; the slowest one's time, in ms.
fn parallel_loop_ms() -> f64 {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<_> = (0..cpus)
        .map(|_| {
            std::thread::spawn(|| {
                let start = Instant::now();
                let mut x = 1u64;
                for _ in 0..500_000 {
                    // A chain of dependent multiplies the compiler must keep.
                    x = std::hint::black_box(x)
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                }
                std::hint::black_box(x);
                start.elapsed().as_secs_f64() * 1e3
            })
        })
        .collect();
    threads
        .into_iter()
        .map(|t| t.join().expect("probe thread"))
        .fold(0.0, f64::max)
}

/// One-way core-to-core latency, in ns: two threads hand a token back and
/// forth through one atomic; the best of a few batches, half the round
/// trip.
fn core_latency_ns() -> f64 {
    use std::hint::spin_loop;
    use std::sync::atomic::{AtomicU64, Ordering::*};
    use std::sync::Arc;

    const BATCHES: u64 = 5;
    const ROUNDS: u64 = 2_000;
    let token = Arc::new(crossbeam_utils::CachePadded::new(AtomicU64::new(0)));
    let echo = {
        let token = token.clone();
        std::thread::spawn(move || {
            // Odd values are ours to answer with the next even one.
            for i in 0..=BATCHES * ROUNDS {
                while token.load(Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                token.store(2 * i + 2, Release);
            }
        })
    };
    let hop = |i: u64| {
        token.store(2 * i + 1, Release);
        while token.load(Acquire) != 2 * i + 2 {
            spin_loop();
        }
    };
    // The first round trip waits for the echo thread to start.
    hop(0);
    let best = (0..BATCHES)
        .map(|b| {
            let start = Instant::now();
            for i in 1 + b * ROUNDS..1 + (b + 1) * ROUNDS {
                hop(i);
            }
            start.elapsed().as_nanos() as f64 / (2 * ROUNDS) as f64
        })
        .fold(f64::INFINITY, f64::min);
    echo.join().expect("echo thread");
    best
}
