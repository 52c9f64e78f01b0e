//! A worker for jobs of class `add` on queue `math`, e.g.
//! `redis-cli TQ.ENQUEUE resque math add '[1,2]'`. Run with
//! `cargo run -p tq-client --example adder` next to `make run`.

use tq_client::worker::Event;
use tq_client::{JobError, Worker, WorkerOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut w = Worker::new(WorkerOptions::new("redis://127.0.0.1/", "resque", &["math"]));
    w.handle("add", |job| {
        let numbers: Vec<i64> = job.args.as_array().into_iter().flatten().filter_map(|v| v.as_i64()).collect();
        if numbers.is_empty() {
            return Err(JobError::fatal("ArgumentError", "add needs numbers"));
        }
        println!("{} = {}", job.args_json, numbers.iter().sum::<i64>());
        Ok(())
    });
    // The library prints nothing itself; its events come to this hook.
    w.on_event(|e| {
        if let Event::RedisDown { .. } | Event::Error { .. } | Event::LeaseLost { .. } = e {
            eprintln!("{e:?}");
        }
    });
    // w.stop_handle() gives a handle whose stop() ends run() gracefully.
    w.run()?;
    Ok(())
}
