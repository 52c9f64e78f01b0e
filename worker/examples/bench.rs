//! The full job cycle through the `tq_worker` library: the queue starts
//! empty, a `Worker` with `consumers` slots (each waiting in `TQ.BPOP`, one
//! thread each) runs a no-op handler, and a producer thread sends
//! `TQ.ENQUEUE`, `window` per round trip, exactly as `bench-cycle ... cycle`
//! does. Prints jobs/s from the first enqueue to the last `TQ.ACK`
//! (`<ns>:stat:processed` reaching `jobs`). Run by `scripts/bench_all.sh`.
//!
//! usage: bench <port> <jobs> <window> <consumers>

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tq_worker::{Worker, WorkerOptions};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> usize {
        a.get(i).and_then(|v| v.parse().ok()).expect("usage: bench <port> <jobs> <window> <consumers>")
    };
    let (port, jobs, window, consumers) = (num(1), num(2), num(3).max(1), num(4));
    let url = format!("redis://127.0.0.1:{port}/");
    let ns = format!("benchw{}", std::process::id());

    let mut opts = WorkerOptions::new(&url, &ns, &["q"]);
    opts.concurrency = consumers;
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
    let running = std::thread::spawn(move || worker.run().expect("worker"));

    let client = redis::Client::open(url).expect("client");
    let mut c = client.get_connection().expect("connect");
    std::thread::sleep(Duration::from_millis(300)); // every slot waiting
    let start = Instant::now();
    for first in (0..jobs).step_by(window) {
        let mut p = redis::pipe();
        for i in first..(first + window).min(jobs) {
            p.cmd("TQ.ENQUEUE").arg(&ns).arg("q").arg("add").arg(format!("[{i},2]")).ignore();
        }
        p.query::<()>(&mut c).expect("ENQUEUE");
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
    stop.stop();
    let summary = running.join().expect("worker thread");
    assert_eq!(summary.done as usize, jobs, "every job done once");
    println!("{:.0}", jobs as f64 / secs);
}
