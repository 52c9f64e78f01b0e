//! The full job cycle through the `tq_client` library: a `Worker` with
//! `consumers` slots (one thread and connection each) runs a no-op handler
//! on jobs a producer thread sends with `TQ.ENQUEUE`, `window` per round
//! trip, exactly as `bench-cycle` does. Two shapes:
//! - `batch`: enqueue all, then start the worker and drain;
//! - `live`: the worker waits on an empty queue while the producer sends.
//!
//! Prints `rate=` (jobs/s from the first enqueue to the last ACK, i.e.
//! `<ns>:stat:processed` reaching `jobs`), `enqueue_rate=` (to the last
//! enqueue) and, for `batch`, `drain_rate=` (from the worker's start to the
//! last ACK). Run by `scripts/bench_all.sh`.
//!
//! usage: bench <port> <jobs> <window> <consumers> [batch|live] [prefetch]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tq_client::{Worker, WorkerOptions};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let usage = "usage: bench <port> <jobs> <window> <consumers> [batch|live] [prefetch]";
    let num = |i: usize| -> usize { a.get(i).and_then(|v| v.parse().ok()).expect(usage) };
    let (port, jobs, window, consumers) = (num(1), num(2), num(3).max(1), num(4));
    let batch = match a.get(5).map(String::as_str) {
        None | Some("live") => false,
        Some("batch") => true,
        Some(_) => panic!("{usage}"),
    };
    let url = format!("redis://127.0.0.1:{port}/");
    let ns = format!("benchw{}", std::process::id());

    let mut opts = WorkerOptions::new(&url, &ns, &["q"]);
    opts.concurrency = consumers;
    opts.prefetch = a.get(6).map_or(1, |_| num(6));
    opts.name = format!("bench:{}", std::process::id());
    opts.poll = Duration::from_millis(200);
    let mut worker = Worker::new(opts);
    let handled = Arc::new(AtomicUsize::new(0));
    let seen = handled.clone();
    worker.handle("add", move |_job| {
        seen.fetch_add(1, Ordering::Relaxed);
        Ok(())
    });
    let stop = worker.stop_handle();
    let mut worker = Some(worker);
    let mut running = None;
    let mut start_worker = || {
        let w = worker.take().expect("started once");
        running = Some(std::thread::spawn(move || w.run().expect("worker")));
    };

    let client = redis::Client::open(url).expect("client");
    let mut c = client.get_connection().expect("connect");
    if !batch {
        start_worker();
        std::thread::sleep(Duration::from_millis(300)); // every slot waiting
    }
    let start = Instant::now();
    for first in (0..jobs).step_by(window) {
        let mut p = redis::pipe();
        for i in first..(first + window).min(jobs) {
            p.cmd("TQ.ENQUEUE").arg(&ns).arg("q").arg("add").arg(format!("[{i},2]")).ignore();
        }
        p.query::<()>(&mut c).expect("ENQUEUE");
    }
    let enqueued = start.elapsed();
    let drain_start = Instant::now();
    if batch {
        start_worker();
    }
    // The handler has run for every job; the last ACKs follow.
    while handled.load(Ordering::Relaxed) < jobs {
        std::thread::sleep(Duration::from_micros(200));
    }
    let processed_key = format!("{ns}:stat:processed");
    loop {
        let n: Option<usize> = redis::cmd("GET").arg(&processed_key).query(&mut c).expect("GET");
        if n.unwrap_or(0) >= jobs {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let secs = start.elapsed().as_secs_f64();
    let drain = drain_start.elapsed().as_secs_f64();
    stop.stop();
    let summary = running.expect("started").join().expect("worker thread");
    assert_eq!(summary.done as usize, jobs, "every job done once");
    let rate = |secs: f64| (jobs as f64 / secs).round();
    print!("rate={} enqueue_rate={}", rate(secs), rate(enqueued.as_secs_f64()));
    if batch {
        print!(" drain_rate={}", rate(drain));
    }
    println!();
}
