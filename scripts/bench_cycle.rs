//! Throughput of taking and completing jobs, from the same client, same
//! server, same run. Used by `scripts/bench.sh`. Modes:
//! - `lpop`: plain `LPOP` (no record of the job in flight);
//! - `popack`: `TQ.POP` + `TQ.ACK`;
//! - `ackpop`: `TQ.POP ... ACK` (completes the job held and takes the next:
//!   one command per job);
//! - `floor`: the writes TQ.POP + TQ.ACK stand for, as plain commands
//!   (`LPOP`, `SET` of a record, `SADD` to the workers set, `ZADD` of a lease
//!   with an integer ms score; `DEL`, `INCR` ×2, `ZREM`): the floor of any
//!   take + complete keeping the layout;
//! - `cfloor`: the same writes made by one module command a job
//!   (`FLOOR.TAKEACK` of scripts/floor_module.c, which must be loaded): what
//!   the module API costs for them, with an ACL check of each key and each
//!   write replicated;
//! - `cfloortq`: the same command, also making what tq writes besides for a
//!   job (delivery counter, in-flight entry, a read of the queue's clock, a
//!   read and write of the minute's metrics record);
//! - `cfloortq_nometrics`: `cfloortq` without the clock's read and the
//!   record's read and write (the job metrics' share, in C);
//! - `noderesque`: what a node-resque worker sends per job: its Lua pop
//!   (`LPOP` + `SET` of the cjson "working on" record), `MULTI; INCR; INCR;
//!   EXEC` for the stats, then `DEL` of the record;
//! - `cycle`: the full job cycle, as `scripts/bench_all.sh` compares it with
//!   node-resque and BullMQ: a producer sends `TQ.ENQUEUE` (`pipeline-depth`
//!   per round trip) and `connections` consumers loop `TQ.BPOP` -> parse the
//!   payload -> `TQ.ACK` (two commands per job, without `TQ.POP ... ACK`).
//!   Shape `batch` enqueues all, then starts the consumers; `live` starts
//!   them on the empty queue first. Prints `rate=` (jobs/s from the first
//!   enqueue to the last ACK), `enqueue_rate=`, and for `batch` `drain_rate=`.
//! - `cycle-plain`: the same cycle on plain Redis commands and no job
//!   bookkeeping at all: `RPUSH` of node-resque payloads, consumers looping
//!   `BLPOP` -> parse: what one round trip per job costs this machine, the
//!   ceiling of any consumer that makes one.
//! - `cycle-cfloor`: the same, the producer sending `FLOOR.ENQUEUE` (TQ.ENQUEUE's
//!   checks and writes, the payload given) and consumers `FLOOR.TAKEACK`
//!   with tq's writes (see `cfloortq`; scripts/floor_module.c loaded), one
//!   round trip a job, polling: what a module making tq's writes could
//!   reach here. Shape `batch` only (a consumer on an empty queue spins).
//! - `cycle-popack`: the same, TQ.ENQUEUE, consumers looping `TQ.POP ...
//!   ACK` -> parse: the library's one round trip a job without the library
//!   around it. Shape `batch` only, as above.
//!
//! usage: bench-cycle <port> <lpop|popack|ackpop|floor|cfloor|cfloortq|cfloortq_nometrics|noderesque|cycle|cycle-plain|cycle-cfloor|cycle-popack> <jobs> <pipeline-depth> <connections> [batch|live]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// node-resque 9.7's lua/popAndStoreJob.lua, as its worker loads it.
const NODE_RESQUE_POP: &str = "local payload = redis.call('lpop', KEYS[1])\n\
if payload then\n\
  local workerPayload = {}\n\
  workerPayload['run_at'] = ARGV[1]\n\
  workerPayload['queue'] = ARGV[2]\n\
  workerPayload['payload'] = cjson.decode(payload)\n\
  workerPayload['worker'] = ARGV[3]\n\
  redis.call('set', KEYS[2], cjson.encode(workerPayload))\n\
end\n\
return payload";

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let port: u16 = arg(1, "6379").parse().expect("port");
    let mode = arg(2, "popack");
    let jobs: usize = arg(3, "200000").parse().expect("jobs");
    let depth: usize = arg(4, "16").parse().expect("depth");
    let conns: usize = arg(5, "8").parse().expect("connections");
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url).expect("client");
    // BENCH_CYCLE_NS names the namespace and BENCH_CYCLE_FILL=only|skip
    // splits the fill from the run, so that a counting harness can leave
    // the fill out (scripts/bench_counts.py).
    let ns = std::env::var("BENCH_CYCLE_NS").unwrap_or_else(|_| format!("bench{}", std::process::id()));
    let fill = std::env::var("BENCH_CYCLE_FILL").unwrap_or_default();
    let queue_key = format!("{ns}:queue:q");
    if let Some(consumer) = match mode.as_str() {
        "cycle" => Some(Consumer::Tq),
        "cycle-plain" => Some(Consumer::Plain),
        "cycle-cfloor" => Some(Consumer::Floor),
        "cycle-popack" => Some(Consumer::TqLoop),
        _ => None,
    } {
        let batch = arg(6, "live") == "batch";
        let (total, enqueue, drain) = full_cycle(&client, &ns, jobs, depth, conns, batch, consumer);
        let rate = |secs: f64| (jobs as f64 / secs).round();
        print!("rate={} enqueue_rate={}", rate(total), rate(enqueue));
        if batch {
            print!(" drain_rate={}", rate(drain));
        }
        println!();
        return;
    }

    // Fill the queue with node-resque payloads, each its own job: through
    // TQ.ENQUEUE for tq's modes (as tq's users enqueue, so the queue's clock
    // dates the jobs), as plain RPUSH for the others.
    let mut c = client.get_connection().expect("connect");
    let tq = matches!(mode.as_str(), "popack" | "ackpop");
    let chunks = if fill == "skip" { Vec::new() } else { (0..jobs).collect::<Vec<_>>() };
    for chunk in chunks.chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            if tq {
                p.cmd("TQ.ENQUEUE").arg(&ns).arg("q").arg("add").arg(format!("[{i},2]")).ignore();
            } else {
                p.cmd("RPUSH").arg(&queue_key).arg(format!(r#"{{"class":"add","queue":"q","args":[{i},2]}}"#)).ignore();
            }
        }
        p.query::<()>(&mut c).expect("fill");
    }
    if mode.starts_with("cfloortq") && fill != "skip" {
        // A queue clock of tq's usual size (16 samples) for the reads.
        let _: () =
            redis::cmd("SET").arg(format!("{ns}:tq:clock:q")).arg(&[1u8; 266][..]).query(&mut c).expect("clock");
    }
    if fill == "only" {
        return;
    }

    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(NODE_RESQUE_POP).query(&mut c).expect("script load");
    let per_conn = jobs / conns;
    let taken_total = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|t| {
            let client = client.clone();
            let (mode, ns, queue_key, sha) = (mode.clone(), ns.clone(), queue_key.clone(), sha.clone());
            let taken_total = taken_total.clone();
            std::thread::spawn(move || {
                let mut c = client.get_connection().expect("connect");
                let worker = format!("bench:{t}");
                // Jobs per round trip: `depth` commands per trip, so LPOP takes one
                // job per command, POP+ACK one per two, node-resque one per six.
                let per_job = match mode.as_str() {
                    "lpop" | "ackpop" | "cfloor" | "cfloortq" | "cfloortq_nometrics" => 1,
                    "popack" => 2,
                    "floor" => 8,
                    _ => 6,
                };
                let per_trip = (depth / per_job).max(1);
                let record_key = format!("{ns}:worker:{worker}:q");
                // The TQ shapes drive one worker name per job of a trip (each
                // report names the delivery its name's pop replied): a trip
                // completes the jobs the last trip took and takes the next,
                // until the queue gives nothing more.
                let names: Vec<String> = (0..per_trip).map(|k| format!("bench:{t}:{k}")).collect();
                let mut held: Vec<Option<i64>> = vec![None; per_trip];
                let mut done = 0;
                loop {
                    let mut p = redis::pipe();
                    match mode.as_str() {
                        "lpop" => {
                            for _ in 0..per_trip {
                                p.cmd("LPOP").arg(&queue_key);
                            }
                        }
                        "floor" => {
                            let (workers, leases) = (format!("{ns}:workers"), format!("{ns}:tq:leases"));
                            let record = format!(
                                r#"{{"run_at":"2026-11-22T06:00:00.000Z","queue":"q","worker":"{worker}","payload":{{"class":"add","queue":"q","args":[1,2]}}}}"#
                            );
                            for name in &names {
                                let rkey = format!("{ns}:worker:{name}:q");
                                p.cmd("LPOP").arg(&queue_key);
                                p.cmd("SET").arg(&rkey).arg(&record).ignore();
                                p.cmd("SADD").arg(&workers).arg(format!("{name}:q")).ignore();
                                p.cmd("ZADD").arg(&leases).arg(1_800_000_000_000u64).arg(name).ignore();
                                p.cmd("DEL").arg(&rkey).ignore();
                                p.cmd("INCR").arg(format!("{ns}:stat:processed")).ignore();
                                p.cmd("INCR").arg(format!("{ns}:stat:processed:{name}")).ignore();
                                p.cmd("ZREM").arg(&leases).arg(name).ignore();
                            }
                        }
                        "cfloor" | "cfloortq" | "cfloortq_nometrics" => {
                            let writes = match mode.as_str() {
                                "cfloortq" => TqWrites::All,
                                "cfloortq_nometrics" => TqWrites::NoMetrics,
                                _ => TqWrites::None,
                            };
                            for name in &names {
                                floor_takeack(&mut p, &ns, name, &worker, writes);
                            }
                        }
                        "ackpop" => {
                            for (name, d) in names.iter().zip(&held) {
                                p.cmd("TQ.POP").arg(&ns).arg(name).arg("q");
                                if let Some(d) = d {
                                    p.arg("ACK").arg(*d);
                                }
                            }
                        }
                        "popack" => {
                            for (name, d) in names.iter().zip(&held) {
                                if let Some(d) = d {
                                    p.cmd("TQ.ACK").arg(&ns).arg(name).arg(*d).ignore();
                                }
                            }
                            for name in &names {
                                p.cmd("TQ.POP").arg(&ns).arg(name).arg("q");
                            }
                        }
                        _ => {
                            let n = per_trip.min(per_conn.saturating_sub(done));
                            if n == 0 {
                                break;
                            }
                            for _ in 0..n {
                                p.cmd("EVALSHA")
                                    .arg(&sha)
                                    .arg(2)
                                    .arg(&queue_key)
                                    .arg(&record_key)
                                    .arg("Sun Nov 22 2026 06:00:00 GMT+0000 (Coordinated Universal Time)")
                                    .arg("q")
                                    .arg(&worker)
                                    .ignore();
                                p.cmd("MULTI").ignore();
                                p.cmd("INCR").arg(format!("{ns}:stat:processed")).ignore();
                                p.cmd("INCR").arg(format!("{ns}:stat:processed:{worker}")).ignore();
                                p.cmd("EXEC").ignore();
                                p.cmd("DEL").arg(&record_key).ignore();
                            }
                            p.query::<()>(&mut c).expect("round trip");
                            done += n;
                            continue;
                        }
                    }
                    let replies: Vec<redis::Value> = p.query(&mut c).expect("round trip");
                    if matches!(mode.as_str(), "lpop" | "floor" | "cfloor" | "cfloortq" | "cfloortq_nometrics") {
                        let got = replies.iter().filter(|r| !matches!(r, redis::Value::Nil)).count();
                        done += got;
                        if got == 0 {
                            break;
                        }
                        continue;
                    }
                    held = replies.iter().map(delivery_of).collect();
                    let got = held.iter().flatten().count();
                    done += got;
                    if got == 0 {
                        break;
                    }
                }
                taken_total.fetch_add(done, Ordering::Relaxed);
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let secs = start.elapsed().as_secs_f64();
    let taken = taken_total.load(Ordering::Relaxed);
    let _: () = redis::cmd("DEL").arg(&queue_key).query(&mut c).expect("cleanup");
    println!("{:.0}", taken as f64 / secs);
}

/// What tq writes besides the floor's writes, for `FLOOR.TAKEACK`.
#[derive(Clone, Copy, PartialEq)]
enum TqWrites {
    None,
    /// The delivery counter and the in-flight entry.
    NoMetrics,
    /// Those, a read of the queue's clock and a read and write of the
    /// minute's metrics record.
    All,
}

/// One `FLOOR.TAKEACK` for worker `name` (slot of `worker`), with tq's own
/// writes at tq's sizes (a 90-byte in-flight entry, a 225-byte record).
fn floor_takeack(p: &mut redis::Pipeline, ns: &str, name: &str, worker: &str, tq: TqWrites) {
    let record = format!(
        r#"{{"run_at":"2026-11-22T06:00:00.000Z","queue":"q","worker":"{worker}","payload":{{"class":"add","queue":"q","args":[1,2]}}}}"#
    );
    p.cmd("FLOOR.TAKEACK")
        .arg(format!("{ns}:queue:q"))
        .arg(format!("{ns}:worker:{name}:q"))
        .arg(format!("{ns}:workers"))
        .arg(format!("{name}:q"))
        .arg(format!("{ns}:tq:leases"))
        .arg(name)
        .arg(format!("{ns}:stat:processed"))
        .arg(format!("{ns}:stat:processed:{name}"))
        .arg(record)
        .arg(1_800_000_000_000u64);
    if tq != TqWrites::None {
        // Empty names skip the metrics' two keys.
        let metrics = tq == TqWrites::All;
        p.arg(format!("{ns}:tq:delivery"))
            .arg(format!("{ns}:tq:inflight:{name}"))
            .arg(&[7u8; 90][..])
            .arg(if metrics { format!("{ns}:tq:clock:q") } else { String::new() })
            .arg(if metrics { format!("{ns}:tq:m:1:[\"q\",\"add\"]") } else { String::new() })
            .arg(&[1u8; 225][..]);
    }
}

/// Who consumes in the `cycle` modes.
#[derive(Clone, Copy, PartialEq)]
enum Consumer {
    /// `TQ.BPOP` -> parse -> `TQ.ACK`.
    Tq,
    /// `BLPOP` -> parse.
    Plain,
    /// `FLOOR.TAKEACK` with tq's writes -> parse (one round trip a job).
    Floor,
    /// `TQ.POP ... ACK` -> parse (one round trip a job, as the library).
    TqLoop,
}

/// The `cycle` mode; returns the seconds from the first enqueue to the last
/// ACK, to the last enqueue, and from the consumers' start to the last ACK.
fn full_cycle(
    client: &redis::Client,
    ns: &str,
    jobs: usize,
    window: usize,
    conns: usize,
    batch: bool,
    consumer: Consumer,
) -> (f64, f64, f64) {
    let queue_key = format!("{ns}:queue:q");
    let acked = Arc::new(AtomicUsize::new(0));
    let last_ack = Arc::new(OnceLock::new());
    let consume = |t: usize| {
        let (client, ns, acked, last_ack) = (client.clone(), ns.to_string(), acked.clone(), last_ack.clone());
        let queue_key = queue_key.clone();
        std::thread::spawn(move || {
            let mut c = client.get_connection().expect("connect");
            let worker = format!("bench:{}", t + 1);
            // TqLoop: the job this consumer holds, acknowledged by its next pop.
            let mut held: Option<i64> = None;
            while acked.load(Ordering::Relaxed) < jobs {
                // The job's payload, and its delivery when it needs an ACK.
                let job: Option<(Vec<u8>, Option<i64>)> = match consumer {
                    Consumer::Floor => {
                        let mut p = redis::pipe();
                        floor_takeack(&mut p, &ns, &worker, &worker, TqWrites::All);
                        let (job,): (Option<Vec<u8>>,) = p.query(&mut c).expect("FLOOR.TAKEACK");
                        job.map(|payload| (payload, None))
                    }
                    Consumer::Plain => {
                        let job: Option<(String, Vec<u8>)> =
                            redis::cmd("BLPOP").arg(&queue_key).arg(0.2).query(&mut c).expect("BLPOP");
                        job.map(|(_, payload)| (payload, None))
                    }
                    Consumer::TqLoop => {
                        let mut cmd = redis::cmd("TQ.POP");
                        cmd.arg(&ns).arg(&worker).arg("q");
                        let acking = held.take();
                        if let Some(d) = acking {
                            cmd.arg("ACK").arg(d);
                        }
                        let v: redis::Value = cmd.query(&mut c).expect("POP ... ACK");
                        if acking.is_some() && acked.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                            let _ = last_ack.set(Instant::now());
                        }
                        held = delivery_of(&v);
                        if let (redis::Value::Array(items), Some(_)) = (v, held) {
                            let Some(redis::Value::BulkString(payload)) = items.into_iter().nth(1) else {
                                panic!("a pop without its payload");
                            };
                            let _: serde_json::Value = serde_json::from_slice(&payload).expect("payload");
                        }
                        continue;
                    }
                    Consumer::Tq => {
                        let job: Option<(String, Vec<u8>, i64, i64, i64)> =
                            redis::cmd("TQ.BPOP").arg(&ns).arg(&worker).arg("q").arg(200).query(&mut c).expect("BPOP");
                        job.map(|(_, payload, delivery, _, _)| (payload, Some(delivery)))
                    }
                };
                let Some((payload, delivery)) = job else { continue };
                let _: serde_json::Value = serde_json::from_slice(&payload).expect("payload");
                if let Some(delivery) = delivery {
                    let _: () = redis::cmd("TQ.ACK").arg(&ns).arg(&worker).arg(delivery).query(&mut c).expect("ACK");
                }
                if acked.fetch_add(1, Ordering::Relaxed) + 1 == jobs {
                    let _ = last_ack.set(Instant::now());
                }
            }
        })
    };
    let mut consumers = Vec::new();
    if !batch {
        consumers = (0..conns).map(consume).collect();
        std::thread::sleep(std::time::Duration::from_millis(300)); // every consumer waiting
    }
    let mut c = client.get_connection().expect("connect");
    let start = Instant::now();
    for first in (0..jobs).step_by(window.max(1)) {
        let mut p = redis::pipe();
        for i in first..(first + window.max(1)).min(jobs) {
            let payload = || format!(r#"{{"class":"add","queue":"q","args":[{i},2]}}"#);
            match consumer {
                Consumer::Plain => p.cmd("RPUSH").arg(&queue_key).arg(payload()).ignore(),
                Consumer::Floor => {
                    p.cmd("FLOOR.ENQUEUE").arg(format!("{ns}:queues")).arg(&queue_key).arg("q").arg(payload()).ignore()
                }
                Consumer::Tq | Consumer::TqLoop => {
                    p.cmd("TQ.ENQUEUE").arg(ns).arg("q").arg("add").arg(format!("[{i},2]")).ignore()
                }
            };
        }
        p.query::<()>(&mut c).expect("ENQUEUE");
    }
    let enqueued = Instant::now();
    if batch {
        consumers = (0..conns).map(consume).collect();
    }
    for h in consumers {
        h.join().expect("consumer");
    }
    let end = *last_ack.get().expect("every job acknowledged");
    ((end - start).as_secs_f64(), (enqueued - start).as_secs_f64(), (end - enqueued).as_secs_f64())
}

/// The delivery id of a pop's reply `[queue, payload, delivery, ...]`; None
/// for nil or anything else.
fn delivery_of(v: &redis::Value) -> Option<i64> {
    match v {
        redis::Value::Array(items) => match items.get(2) {
            Some(redis::Value::Int(d)) => Some(*d),
            _ => None,
        },
        _ => None,
    }
}
