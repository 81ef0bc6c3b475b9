//! `downstream_bench SYSTEM WARMUPS RUNS N WORKERS`: fib(N) without cutoff
//! on WORKERS threads of SYSTEM (`rayon`, `chili`, `forte` or `wsrt_rust`;
//! forte's calling thread is one of them), built as
//! a user's crate builds its dependencies (`lib.rs`). Prints one line per
//! measured run, as the bench's other external programs do:
//! `run ns=... count=FORKS ok=1`.

use std::hint::black_box;
use std::time::Instant;

use wsrt_bench_kernels::{
    chili_pool, fib_chili, fib_forte, fib_nodes, fib_rayon, fib_seq, fib_wsrt, forte_pool,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: downstream_bench rayon|chili|forte|wsrt_rust WARMUPS RUNS N WORKERS");
        std::process::exit(2);
    };
    if args.len() != 6 {
        usage();
    }
    let number = |i: usize| -> usize { args[i].parse().unwrap_or_else(|_| usage()) };
    let (warmups, runs, n, workers) = (number(2), number(3), number(4) as u64, number(5));
    let mut fib: Box<dyn FnMut(u64) -> u64> = match args[1].as_str() {
        "rayon" => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .build()
                .expect("rayon pool");
            Box::new(move |n| pool.install(|| fib_rayon(n, 2)))
        }
        "chili" => {
            let pool = chili_pool(workers);
            Box::new(move |n| fib_chili(n, 2, &mut pool.scope()))
        }
        "forte" => {
            let pool = forte_pool(workers);
            Box::new(move |n| pool.with_worker(|w| fib_forte(n, 2, w)))
        }
        "wsrt_rust" => {
            let rt = wsrt::Runtime::builder()
                .workers(workers)
                .build()
                .expect("wsrt runtime");
            Box::new(move |n| rt.spawn(move || fib_wsrt(n, 2)).join().expect("fib"))
        }
        _ => usage(),
    };
    let expected = fib_seq(n);
    for run in 0..warmups + runs {
        let start = Instant::now();
        let r = fib(black_box(n));
        let ns = start.elapsed().as_nanos();
        if run >= warmups {
            let ok = u8::from(r == expected);
            println!("run ns={ns} count={} ok={ok}", fib_nodes(n, 2));
        }
    }
}
