//! Drivers for the server-side-time benchmarks (`scripts/bench_time.sh`).
//! Each mode talks to a server the script started, measures, and prints one
//! line of `key=value` pairs for the script's table. Timing figures live in
//! benchmarks, never in tests.
//!
//! Modes:
//! - `pickup <port> <tq|plain> <rate> <secs> <workers>`: open-loop producer
//!   (`TQ.ENQUEUE`, or `RPUSH` for the plain floor) at a fixed rate, the
//!   client's unix µs at send in the job's args; `workers` connections loop
//!   `TQ.BPOP` → receive − send → `TQ.ACK` (plain: `BLPOP`).
//! - `lateness <port> <jobs> <spread-ms> <lead-ms> <workers>`: `jobs`
//!   `TQ.ENQUEUEAT` spread evenly over `spread-ms` starting `lead-ms` from the
//!   server's `TIME`; workers `TQ.BPOP` them; lateness = receive − bucket × 1000,
//!   and (`queue_*`) job in its queue − bucket × 1000 from `INFO tq`.
//! - `promote-fill <port> <jobs> <buckets> [exact]`: `tq.auto-promote no`,
//!   then `jobs` `TQ.ENQUEUEAT` at past times, `buckets` buckets, pipelined.
//!   With `exact`, each job then gets the exact time tq keeps for a job filed
//!   ahead of time (300 ms before its bucket's second: its `<ns>:tq:at`
//!   field, and its bucket's entry in `<ns>:tq:due`), as a backlog of tq's
//!   own delayed jobs has them (a job filed for a past time keeps none).
//! - `promote-auto <port> <jobs> <timer-batch>`: latency monitor on, a 1 ms
//!   PING thread, `tq.auto-promote yes`, poll `LLEN` until every job is queued.
//! - `promote-manual <port> <jobs> <limit>`: the same, but a client loops
//!   `TQ.PROMOTE <ns> LIMIT <limit>` (auto-promote stays off).
//! - `promote-floor <port> <jobs>`: the floor of any promoter that keeps
//!   node-resque's layout: a client that already knows every key reads the
//!   buckets first (not timed), then sends only the writes a promotion makes,
//!   as bulk plain commands (per bucket: `SADD` of the queue to `queues`,
//!   one `RPUSH` of its jobs, one `DEL` of
//!   their `timestamps:` markers, `DEL` of the bucket, `ZREM`), pipelined;
//!   reports jobs/s by wall time and by the server's own time for those
//!   commands (`INFO commandstats`).
//! - `promote-cfloor <port> <jobs>`: the same writes made by a module, one
//!   command per bucket (`FLOOR.PROMOTE` of scripts/floor_module.c, which
//!   must be loaded): the bucket read through the key API, each job's queue
//!   found by a scan, each marker's ACL checked; pipelined 10 buckets per
//!   round trip, jobs/s by wall time and by the server's time. With `exact`,
//!   `FLOOR.PROMOTE ... EXACT`: the queue found as JSON.parse would, each
//!   marker deleted only when this bucket is its one member.
//! - `expire-fill <port> <jobs>`: `jobs` jobs queued (`TQ.ENQUEUE`), then
//!   each taken by a worker of its own (`TQ.POP ... LEASE 5000`, as many
//!   workers crashing at once leave them), pipelined.
//! - `expire-auto <port> <jobs> [quiet]`: holds the server (`DEBUG SLEEP`)
//!   until every lease of the fill has run out, so the timer finds them all
//!   due at once; then, with a 1 ms PING thread, polls `LLEN` until every
//!   job is back in its queue: time, the PINGs' round trips and the timer's
//!   longest tick. `quiet`: no PINGs, `LLEN` every 50 ms (for counting the
//!   server's work).
//! - `expire-floor <port> <jobs>`: the same writes as plain commands from a
//!   client that already knows every key (read first, not timed): per job
//!   `ZREM` of the lease, `LPUSH` of the job to its queue, `HSET` of its
//!   delivery count, `DEL` of the worker's record, `SET ... PXAT` of the
//!   worker's in-flight entry (the tombstone); pipelined; jobs/s by wall
//!   time and by the server's own time for those commands.
//! - `depth-fill <port> <n>`: fill a queue to `n` node-resque payloads
//!   (variadic `RPUSH`, 10k jobs per round trip).
//! - `depth-run <port> <jobs> <pipeline> <connections> <drain|steady>`: time
//!   `jobs` `TQ.POP`+`TQ.ACK` cycles, `pipeline` commands per round trip;
//!   `steady` also puts back, in each round trip, as many jobs as it takes
//!   (one variadic `RPUSH`), so the queue keeps its depth.
//! - `ns-idle <port> <namespaces> <secs>`: `namespaces` namespaces with one
//!   delayed job each, due in a day (half by `TQ.ENQUEUEAT`, half written as
//!   node-resque's `enqueueAt` by a plain client), pipelined; once the timer
//!   has settled, `secs` of an idle server: its CPU (% of a core, `INFO cpu`),
//!   the timer's ticks and namespace visits per second (`INFO tq`); then
//!   `secs` more with a 1 ms PING thread: its round trips.
//! - `ns-due <port> <namespaces>`: `namespaces` namespaces with one delayed
//!   job each, all due in the same second a few seconds ahead; from that
//!   second, until every job is queued: time, the 1 ms PING thread's round
//!   trips, and the timer's longest tick (`INFO tq timer_tick_us`).
//!
//! The client's clock (`SystemTime`) and the server's (`gettimeofday`) are the
//! same host clock; `lateness` also reports their offset as seen by `TIME`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::io::tcp::TcpSettings;
use redis::{Client, Connection, IntoConnectionInfo, Value};

fn client(port: u16) -> Client {
    let info = format!("redis://127.0.0.1:{port}/")
        .into_connection_info()
        .expect("connection info")
        .set_tcp_settings(TcpSettings::default().set_nodelay(true));
    Client::open(info).expect("client")
}

fn connect(c: &Client) -> Connection {
    c.get_connection().expect("connect")
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_micros() as u64
}

/// Nearest-rank percentile of sorted values.
fn pct(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v
}

fn server_time_us(c: &mut Connection) -> u64 {
    let (s, us): (u64, u64) = redis::cmd("TIME").query(c).expect("TIME");
    s * 1_000_000 + us
}

fn args_of(payload: &[u8]) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(payload).expect("payload is JSON");
    v["args"].as_array().expect("args").iter().map(|a| a.as_f64().expect("number")).collect()
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        thread::sleep(t - now);
    }
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let num = |i: usize| -> u64 { a.get(i).unwrap_or_else(|| panic!("argument {i} missing")).parse().expect("number") };
    let mode = a.get(1).cloned().unwrap_or_default();
    let port = num(2) as u16;
    match mode.as_str() {
        "pickup" => pickup(port, &a[3], num(4), num(5), num(6) as usize),
        "lateness" => lateness(port, num(3) as usize, num(4), num(5), num(6) as usize),
        "promote-fill" => promote_fill(port, num(3) as usize, num(4), a.get(5).is_some_and(|x| x == "exact")),
        "promote-auto" => promote_auto(port, num(3) as usize, num(4)),
        "promote-manual" => promote_manual(port, num(3) as usize, num(4)),
        "promote-floor" => promote_floor(port, num(3) as usize),
        "promote-cfloor" => promote_cfloor(port, num(3) as usize, a.get(4).is_some_and(|x| x == "exact")),
        "expire-fill" => expire_fill(port, num(3) as usize),
        "expire-auto" => expire_auto(port, num(3) as usize, a.get(4).is_some_and(|q| q == "quiet")),
        "expire-floor" => expire_floor(port, num(3) as usize),
        "depth-fill" => depth_fill(port, num(3) as usize),
        "ns-idle" => ns_idle(port, num(3) as usize, num(4)),
        "ns-due" => ns_due(port, num(3) as usize),
        "depth-run" => {
            let refill = match a.get(6).map(String::as_str) {
                Some("drain") => false,
                Some("steady") => true,
                _ => panic!("depth-run needs drain or steady"),
            };
            depth_run(port, num(3) as usize, num(4) as usize, num(5) as usize, refill)
        }
        _ => {
            eprintln!(
                "usage: bench-time <pickup|lateness|promote-fill|promote-auto|promote-manual|promote-floor|promote-cfloor|depth-fill|depth-run|ns-idle|ns-due> <port> ..."
            );
            std::process::exit(2);
        }
    }
}

// ---------------------------------------------------------------- pickup

fn pickup(port: u16, kind: &str, rate: u64, secs: u64, workers: usize) {
    let tq = match kind {
        "tq" => true,
        "plain" => false,
        _ => panic!("pickup kind is tq or plain"),
    };
    let cl = client(port);
    let total = (rate * secs) as usize;
    let received = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (cl, received, stop, lat) = (cl.clone(), received.clone(), stop.clone(), lat.clone());
            thread::spawn(move || {
                let mut c = connect(&cl);
                let worker = format!("bench:{w}");
                let mut mine = Vec::with_capacity(total / workers + 16);
                while !stop.load(Ordering::Relaxed) && received.load(Ordering::Relaxed) < total {
                    let got: Option<(Vec<u8>, i64)> = if tq {
                        taken(
                            redis::cmd("TQ.BPOP").arg("pk").arg(&worker).arg("q").arg(200).query(&mut c).expect("BPOP"),
                        )
                    } else {
                        let popped: Option<(Vec<u8>, Vec<u8>)> =
                            redis::cmd("BLPOP").arg("plain:q").arg(0.2).query(&mut c).expect("BLPOP");
                        popped.map(|(_, p)| (p, 0))
                    };
                    let Some((payload, delivery)) = got else { continue };
                    let at = now_us();
                    let sent = args_of(&payload)[1] as u64;
                    mine.push(at as f64 / 1000.0 - sent as f64 / 1000.0);
                    if tq {
                        let _: () =
                            redis::cmd("TQ.ACK").arg("pk").arg(&worker).arg(delivery).query(&mut c).expect("ACK");
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                }
                lat.lock().expect("lock").extend(mine);
            })
        })
        .collect();
    let mut c = connect(&cl);
    thread::sleep(Duration::from_millis(300)); // let every worker block first
    let period = Duration::from_nanos(1_000_000_000 / rate);
    let t0 = Instant::now();
    let mut slip_max = Duration::ZERO;
    for i in 0..total {
        let target = t0 + period * i as u32;
        sleep_until(target);
        slip_max = slip_max.max(Instant::now() - target);
        let sent = now_us();
        if tq {
            let args = format!("[{i},{sent}]");
            let _: i64 =
                redis::cmd("TQ.ENQUEUE").arg("pk").arg("q").arg("Job").arg(args).query(&mut c).expect("ENQUEUE");
        } else {
            let payload = format!(r#"{{"class":"Job","queue":"q","args":[{i},{sent}]}}"#);
            let _: i64 = redis::cmd("RPUSH").arg("plain:q").arg(payload).query(&mut c).expect("RPUSH");
        }
    }
    let sending = t0.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.load(Ordering::Relaxed) < total && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("worker");
    }
    let v = sorted(std::mem::take(&mut *lat.lock().expect("lock")));
    println!(
        "n={} sent={} p50={:.3} p99={:.3} max={:.3} rate={:.0} slip_max={:.3}",
        v.len(),
        total,
        pct(&v, 0.50),
        pct(&v, 0.99),
        pct(&v, 1.0),
        total as f64 / sending,
        slip_max.as_secs_f64() * 1000.0
    );
}

// -------------------------------------------------------------- lateness

fn lateness(port: u16, jobs: usize, spread_ms: u64, lead_ms: u64, workers: usize) {
    let cl = client(port);
    let mut c = connect(&cl);
    let before = now_us();
    let server = server_time_us(&mut c);
    let after = now_us();
    let offset_ms = (server as f64 - (before + after) as f64 / 2.0) / 1000.0;
    let start_ms = server / 1000 + lead_ms;
    let mut p = redis::pipe();
    for i in 0..jobs {
        let at = start_ms + spread_ms * i as u64 / jobs as u64;
        p.cmd("TQ.ENQUEUEAT").arg("lt").arg(at).arg("q").arg("Job").arg(format!("[{i},{at}]"));
    }
    let buckets: Vec<u64> = p.query(&mut c).expect("ENQUEUEAT");
    assert!(now_us() / 1000 < start_ms, "enqueueing took longer than the lead time");
    let buckets = Arc::new(buckets);
    let received = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let got = Arc::new(Mutex::new(Vec::with_capacity(jobs)));
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let (cl, buckets, received, stop, got) =
                (cl.clone(), buckets.clone(), received.clone(), stop.clone(), got.clone());
            thread::spawn(move || {
                let mut c = connect(&cl);
                let worker = format!("bench:{w}");
                let mut mine = Vec::new();
                while !stop.load(Ordering::Relaxed) && received.load(Ordering::Relaxed) < jobs {
                    let job = taken(
                        redis::cmd("TQ.BPOP").arg("lt").arg(&worker).arg("q").arg(200).query(&mut c).expect("BPOP"),
                    );
                    let Some((payload, delivery)) = job else { continue };
                    let at = now_us();
                    let args = args_of(&payload);
                    let i = args[0] as usize;
                    let due_us = buckets[i] * 1_000_000;
                    // Lateness from the bucket's second and from the time asked for.
                    let asked_us = args[1] as u64 * 1000;
                    mine.push((i, (at as f64 - due_us as f64) / 1000.0, (at as f64 - asked_us as f64) / 1000.0));
                    let _: () = redis::cmd("TQ.ACK").arg("lt").arg(&worker).arg(delivery).query(&mut c).expect("ACK");
                    received.fetch_add(1, Ordering::Relaxed);
                }
                got.lock().expect("lock").extend(mine);
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_millis(lead_ms + spread_ms + 15_000);
    while received.load(Ordering::Relaxed) < jobs && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(20));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("worker");
    }
    let got = std::mem::take(&mut *got.lock().expect("lock"));
    let mut seen = vec![false; jobs];
    let mut dup = 0;
    for &(i, _, _) in &got {
        if std::mem::replace(&mut seen[i], true) {
            dup += 1;
        }
    }
    let early = got.iter().filter(|(_, l, _)| *l < 0.0).count();
    let asked = sorted(got.iter().map(|&(_, _, l)| l).collect());
    let asked_early = got.iter().filter(|(_, _, l)| *l < 0.0).count();
    // Per bucket: the first job picked up (timer + pickup) and the last (the
    // whole bucket drained by the workers).
    let mut per_bucket: std::collections::BTreeMap<u64, (f64, f64, usize)> = Default::default();
    for &(i, l, _) in &got {
        let e = per_bucket.entry(buckets[i]).or_insert((f64::INFINITY, f64::NEG_INFINITY, 0));
        e.0 = e.0.min(l);
        e.1 = e.1.max(l);
        e.2 += 1;
    }
    // How fast the workers drained a bucket once it was due: jobs after the
    // first over the time from the first to the last (median over buckets).
    let drain = sorted(
        per_bucket.values().filter(|e| e.2 > 1 && e.1 > e.0).map(|e| (e.2 - 1) as f64 * 1000.0 / (e.1 - e.0)).collect(),
    );
    let first = sorted(per_bucket.values().map(|e| e.0).collect());
    let last = sorted(per_bucket.values().map(|e| e.1).collect());
    let all = sorted(got.iter().map(|&(_, l, _)| l).collect());
    // The lateness of the jobs reaching their queue, as the server measured
    // it when promoting (whole ms, percentiles within 12.5%): `INFO tq`.
    let info: String = redis::cmd("INFO").arg("tq").query(&mut c).expect("INFO tq");
    let in_queue = info
        .lines()
        .find_map(|l| l.trim().strip_prefix("tq_promotion_lateness_ms:"))
        .map(|v| v.split(',').map(|kv| format!("queue_{kv}")).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    println!(
        "n={} jobs={} dup={} early={} asked_early={} asked_min={:.3} asked_p50={:.3} asked_p99={:.3} asked_max={:.3} min={:.3} p50={:.3} p99={:.3} max={:.3} buckets={} first_p50={:.3} first_max={:.3} last_p50={:.3} last_max={:.3} drain_rate={:.0} clock_offset_ms={:.3} {}",
        got.len(),
        jobs,
        dup,
        early,
        asked_early,
        pct(&asked, 0.0),
        pct(&asked, 0.50),
        pct(&asked, 0.99),
        pct(&asked, 1.0),
        pct(&all, 0.0),
        pct(&all, 0.50),
        pct(&all, 0.99),
        pct(&all, 1.0),
        per_bucket.len(),
        pct(&first, 0.50),
        pct(&first, 1.0),
        pct(&last, 0.50),
        pct(&last, 1.0),
        pct(&drain, 0.5),
        offset_ms,
        in_queue
    );
}

// ------------------------------------------------------------- promotion

const PROMOTE_NS: &str = "pr";
const PROMOTE_QUEUE: &str = "pr:queue:q";

fn promote_fill(port: u16, jobs: usize, buckets: u64, exact: bool) {
    let cl = client(port);
    let mut c = connect(&cl);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("tq.auto-promote").arg("no").query(&mut c).expect("CONFIG SET");
    let now_s = server_time_us(&mut c) / 1_000_000;
    let first = now_s - buckets - 10;
    let per_bucket = (jobs as u64).div_ceil(buckets);
    let start = Instant::now();
    let conns = 2;
    let handles: Vec<_> = (0..conns)
        .map(|t| {
            let cl = cl.clone();
            thread::spawn(move || {
                let mut c = connect(&cl);
                let mine: Vec<usize> = (t..jobs).step_by(conns).collect();
                for chunk in mine.chunks(10_000) {
                    let mut p = redis::pipe();
                    for &i in chunk {
                        let at_ms = (first + i as u64 / per_bucket) * 1000;
                        p.cmd("TQ.ENQUEUEAT")
                            .arg(PROMOTE_NS)
                            .arg(at_ms)
                            .arg("q")
                            .arg("Job")
                            .arg(format!("[{i}]"))
                            .ignore();
                    }
                    p.query::<()>(&mut c).expect("ENQUEUEAT");
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("filler");
    }
    if exact {
        for from in (0..jobs).step_by(10_000) {
            let mut p = redis::pipe();
            for i in from..(from + 10_000).min(jobs) {
                let second = first + i as u64 / per_bucket;
                let (bucket, at_ms) = (second.to_string(), second * 1000 - 300);
                let payload =
                    tq_core::records::encode(b"q", b"Job", Some(format!("[{i}]").as_bytes())).expect("payload");
                let field = tq_core::queue::exact_field(bucket.as_bytes(), &payload);
                p.cmd("HSET").arg(format!("{PROMOTE_NS}:tq:at")).arg(field).arg(at_ms).ignore();
                // The bucket's due time, once (its first job).
                if i as u64 % per_bucket == 0 {
                    p.cmd("ZADD").arg(format!("{PROMOTE_NS}:tq:due")).arg(at_ms).arg(&bucket).ignore();
                }
            }
            p.query::<()>(&mut c).expect("HSET, ZADD");
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let zcard: usize = redis::cmd("ZCARD").arg("pr:delayed_queue_schedule").query(&mut c).expect("ZCARD");
    let mem = used_memory(&mut c);
    println!("fill_s={secs:.1} fill_rate={:.0} buckets={zcard} used_mb={:.0}", jobs as f64 / secs, mem / 1e6);
}

fn used_memory(c: &mut Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("memory").query(c).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix("used_memory:")).and_then(|v| v.trim().parse().ok()).unwrap_or(f64::NAN)
}

/// A thread sending PING every 1 ms; when stopped, returns the round trips'
/// max and p99 in ms, how many took over 10 ms, and how many were sent.
struct Pinger {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<f64>>,
}

struct Pings {
    max: f64,
    p99: f64,
    over10: usize,
    sent: usize,
}

impl Pinger {
    fn start(cl: &Client) -> Self {
        let cl = cl.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = thread::spawn(move || {
            let mut c = connect(&cl);
            let mut rtts = Vec::new();
            let mut next = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                let _: String = redis::cmd("PING").query(&mut c).expect("PING");
                rtts.push(t.elapsed().as_secs_f64() * 1000.0);
                next += Duration::from_millis(1);
                let now = Instant::now();
                if next < now {
                    next = now;
                }
                sleep_until(next);
            }
            rtts
        });
        Pinger { stop, handle }
    }

    /// Every round trip, ms, sorted.
    fn finish_all(self) -> Vec<f64> {
        self.stop.store(true, Ordering::Relaxed);
        sorted(self.handle.join().expect("pinger"))
    }

    fn finish(self) -> Pings {
        self.stop.store(true, Ordering::Relaxed);
        let v = sorted(self.handle.join().expect("pinger"));
        Pings { max: pct(&v, 1.0), p99: pct(&v, 0.99), over10: v.iter().filter(|&&r| r > 10.0).count(), sent: v.len() }
    }
}

fn latency_setup(c: &mut Connection) {
    let _: () =
        redis::cmd("CONFIG").arg("SET").arg("latency-monitor-threshold").arg(1).query(c).expect("CONFIG SET latency");
    let _: i64 = redis::cmd("LATENCY").arg("RESET").query(c).expect("LATENCY RESET");
}

/// `LATENCY LATEST` as `event:max_ms,...` (or `none`), and the largest max.
fn latency_latest(c: &mut Connection) -> (String, i64) {
    let rows: Vec<(String, i64, i64, i64)> = redis::cmd("LATENCY").arg("LATEST").query(c).expect("LATENCY LATEST");
    let max = rows.iter().map(|r| r.3).max().unwrap_or(0);
    let text = rows.iter().map(|r| format!("{}:{}", r.0, r.3)).collect::<Vec<_>>().join(",");
    (if text.is_empty() { "none".into() } else { text }, max)
}

fn llen(c: &mut Connection) -> usize {
    redis::cmd("LLEN").arg(PROMOTE_QUEUE).query(c).expect("LLEN")
}

fn promote_auto(port: u16, jobs: usize, batch: u64) {
    let cl = client(port);
    let mut c = connect(&cl);
    let _: () = redis::cmd("CONFIG").arg("SET").arg("tq.timer-batch").arg(batch).query(&mut c).expect("CONFIG SET");
    assert_eq!(llen(&mut c), 0, "the queue must start empty");
    latency_setup(&mut c);
    let pinger = Pinger::start(&cl);
    thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let _: () = redis::cmd("CONFIG").arg("SET").arg("tq.auto-promote").arg("yes").query(&mut c).expect("CONFIG SET");
    let mut first = None;
    let mut cpu_first = 0.0;
    let deadline = t0 + Duration::from_secs(600);
    loop {
        let n = llen(&mut c);
        if n > 0 && first.is_none() {
            first = Some(t0.elapsed());
            cpu_first = main_cpu_s(&mut c);
        }
        if n >= jobs || Instant::now() > deadline {
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    let total = t0.elapsed();
    let busy = (main_cpu_s(&mut c) - cpu_first) / (total - first.unwrap_or(total)).as_secs_f64().max(1e-9);
    let pings = pinger.finish();
    let (events, lat_max) = latency_latest(&mut c);
    report_promotion(&mut c, jobs, total, first.unwrap_or(total), &pings, &events, lat_max, 0);
    println!("busy={busy:.2}");
}

fn promote_manual(port: u16, jobs: usize, limit: u64) {
    let cl = client(port);
    let mut c = connect(&cl);
    assert_eq!(llen(&mut c), 0, "the queue must start empty");
    latency_setup(&mut c);
    let pinger = Pinger::start(&cl);
    thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let mut first = None;
    let (mut moved, mut calls) = (0usize, 0usize);
    loop {
        let n: usize =
            redis::cmd("TQ.PROMOTE").arg(PROMOTE_NS).arg("LIMIT").arg(limit).query(&mut c).expect("TQ.PROMOTE");
        calls += 1;
        if n > 0 && first.is_none() {
            first = Some(t0.elapsed());
        }
        moved += n;
        if n == 0 || moved >= jobs {
            break;
        }
    }
    let total = t0.elapsed();
    let pings = pinger.finish();
    let (events, lat_max) = latency_latest(&mut c);
    report_promotion(&mut c, jobs, total, first.unwrap_or(total), &pings, &events, lat_max, calls);
}

/// A floor's start: its connection, the schedule's key and the due buckets
/// (the queue still empty).
fn floor_start(port: u16) -> (Connection, String, Vec<String>) {
    let mut c = connect(&client(port));
    assert_eq!(llen(&mut c), 0, "the queue must start empty");
    let schedule = format!("{PROMOTE_NS}:delayed_queue_schedule");
    let buckets: Vec<String> = redis::cmd("ZRANGE").arg(&schedule).arg(0).arg(-1).query(&mut c).expect("ZRANGE");
    (c, schedule, buckets)
}

fn promote_floor(port: u16, jobs: usize) {
    let (mut c, schedule, buckets) = floor_start(port);
    // Everything a promoter must learn, read up front: each bucket's jobs
    // and the queue each names.
    let mut plan: Vec<(String, Vec<(String, String)>)> = Vec::with_capacity(buckets.len());
    for b in &buckets {
        let payloads: Vec<String> =
            redis::cmd("LRANGE").arg(format!("{PROMOTE_NS}:delayed:{b}")).arg(0).arg(-1).query(&mut c).expect("LRANGE");
        let jobs = payloads
            .into_iter()
            .map(|p| {
                let v: serde_json::Value = serde_json::from_str(&p).expect("payload");
                (v["queue"].as_str().expect("queue").to_string(), p)
            })
            .collect();
        plan.push((b.clone(), jobs));
    }
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).expect("RESETSTAT");
    let t0 = Instant::now();
    for chunk in plan.chunks(10) {
        let mut p = redis::pipe();
        for (b, jobs) in chunk {
            let mut by_queue: Vec<(&str, Vec<&str>)> = Vec::new();
            for (q, payload) in jobs {
                match by_queue.iter_mut().find(|(name, _)| name == q) {
                    Some((_, v)) => v.push(payload),
                    None => by_queue.push((q, vec![payload])),
                }
            }
            for (q, payloads) in by_queue {
                p.cmd("SADD").arg(format!("{PROMOTE_NS}:queues")).arg(q).ignore();
                p.cmd("RPUSH").arg(format!("{PROMOTE_NS}:queue:{q}")).arg(payloads).ignore();
            }
            let markers: Vec<String> = jobs.iter().map(|(_, p)| format!("{PROMOTE_NS}:timestamps:{p}")).collect();
            p.cmd("DEL").arg(markers).ignore();
            p.cmd("DEL").arg(format!("{PROMOTE_NS}:delayed:{b}")).ignore();
            p.cmd("ZREM").arg(&schedule).arg(b).ignore();
        }
        p.query::<()>(&mut c).expect("floor pipeline");
    }
    report_floor(&mut c, jobs, t0.elapsed().as_secs_f64(), &["sadd", "rpush", "del", "zrem"]);
}

/// The server's main thread's CPU seconds so far (`INFO cpu`).
fn main_cpu_s(c: &mut Connection) -> f64 {
    let info: String = redis::cmd("INFO").arg("cpu").query(c).expect("INFO");
    info.lines()
        .filter(|l| l.starts_with("used_cpu_sys_main_thread:") || l.starts_with("used_cpu_user_main_thread:"))
        .filter_map(|l| l.split(':').nth(1).and_then(|v| v.trim().parse::<f64>().ok()))
        .sum()
}

/// The server's own time (µs, `INFO commandstats`) spent in `commands`
/// since the last `CONFIG RESETSTAT`.
fn server_us(c: &mut Connection, commands: &[&str]) -> f64 {
    let stats: String = redis::cmd("INFO").arg("commandstats").query(c).expect("INFO");
    stats
        .lines()
        .filter(|l| commands.iter().any(|cmd| l.starts_with(&format!("cmdstat_{cmd}:"))))
        .filter_map(|l| l.split(',').find_map(|kv| kv.strip_prefix("usec=")).and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// A promotion floor's line: jobs/s by wall time and by the server's own
/// time for `commands` (`INFO commandstats`), and the keys left.
fn report_floor(c: &mut Connection, jobs: usize, wall: f64, commands: &[&str]) {
    let server_us = server_us(c, commands);
    let queued = llen(c);
    let keys_left: usize = redis::cmd("DBSIZE").query(c).expect("DBSIZE");
    println!(
        "queued={queued} jobs={jobs} rate={:.0} server_rate={:.0} keys_left={keys_left}",
        queued as f64 / wall,
        queued as f64 / (server_us / 1e6).max(1e-9)
    );
}

fn promote_cfloor(port: u16, jobs: usize, exact: bool) {
    let (mut c, _, buckets) = floor_start(port);
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).expect("RESETSTAT");
    let t0 = Instant::now();
    for chunk in buckets.chunks(10) {
        let mut p = redis::pipe();
        for b in chunk {
            let cmd = p.cmd("FLOOR.PROMOTE").arg(PROMOTE_NS).arg(b);
            if exact {
                cmd.arg("EXACT");
            }
            cmd.ignore();
        }
        p.query::<()>(&mut c).expect("FLOOR.PROMOTE");
    }
    report_floor(&mut c, jobs, t0.elapsed().as_secs_f64(), &["floor.promote"]);
}

#[allow(clippy::too_many_arguments)]
fn report_promotion(
    c: &mut Connection,
    jobs: usize,
    total: Duration,
    first: Duration,
    pings: &Pings,
    events: &str,
    lat_max: i64,
    calls: usize,
) {
    let queued = llen(c);
    let (_, tick_p99_us, tick_max_us) = ticks(c);
    let (_, _, tick_cpu_max_us) = ticks_cpu(c);
    let left: usize = redis::cmd("ZCARD").arg("pr:delayed_queue_schedule").query(c).expect("ZCARD");
    let secs = total.as_secs_f64();
    let moving = (total - first).as_secs_f64();
    println!(
        "queued={queued} jobs={jobs} buckets_left={left} total_s={secs:.3} rate={:.0} first_ms={:.1} rate_after_first={:.0} ping_max={:.2} ping_p99={:.2} ping_over10={} pings={} lat_max={lat_max} events={events} calls={calls} tick_max_ms={:.2} tick_p99_ms={:.2} tick_cpu_max_ms={:.2}",
        queued as f64 / secs,
        first.as_secs_f64() * 1000.0,
        queued as f64 / moving.max(1e-9),
        pings.max,
        pings.p99,
        pings.over10,
        pings.sent,
        tick_max_us / 1000.0,
        tick_p99_us / 1000.0,
        tick_cpu_max_us / 1000.0,
    );
}

// ------------------------------------------------------------ lease expiry

const EXPIRE_NS: &str = "lx";
const EXPIRE_QUEUE: &str = "lx:queue:q";
const EXPIRE_LEASES: &str = "lx:tq:leases";
/// Longer than the fill takes: no lease runs out before every job is taken.
const EXPIRE_LEASE_MS: u64 = 5_000;

fn expire_worker(i: usize) -> String {
    format!("w{i}")
}

fn expire_fill(port: u16, jobs: usize) {
    let mut c = connect(&client(port));
    let start = Instant::now();
    let ids: Vec<usize> = (0..jobs).collect();
    for chunk in ids.chunks(1000) {
        let mut p = redis::pipe();
        for i in chunk {
            p.cmd("TQ.ENQUEUE").arg(EXPIRE_NS).arg("q").arg("add").arg(format!("[{i},2]")).ignore();
        }
        p.query::<()>(&mut c).expect("TQ.ENQUEUE");
    }
    let taking = Instant::now();
    let mut taken = 0usize;
    for chunk in ids.chunks(1000) {
        let mut p = redis::pipe();
        for &i in chunk {
            p.cmd("TQ.POP").arg(EXPIRE_NS).arg(expire_worker(i)).arg("q").arg("LEASE").arg(EXPIRE_LEASE_MS);
        }
        let replies: Vec<Value> = p.query(&mut c).expect("TQ.POP");
        taken += replies.iter().filter(|r| !matches!(r, Value::Nil)).count();
    }
    let take_s = taking.elapsed().as_secs_f64();
    assert_eq!(taken, jobs, "every job taken");
    assert!(take_s * 1000.0 < EXPIRE_LEASE_MS as f64, "the takes outlasted the lease ({take_s:.1} s)");
    println!("fill_s={:.1} take_s={take_s:.2} taken={taken}", start.elapsed().as_secs_f64());
}

fn expire_auto(port: u16, jobs: usize, quiet: bool) {
    let cl = client(port);
    let mut c = connect(&cl);
    assert_eq!(expire_llen(&mut c), 0, "every job must be taken");
    // The last take was made just now: past this, every lease has run out.
    let hold_s = EXPIRE_LEASE_MS / 1000 + 1;
    let _: () = redis::cmd("DEBUG").arg("SLEEP").arg(hold_s).query(&mut c).expect("DEBUG SLEEP");
    let due: usize =
        redis::cmd("ZCOUNT").arg(EXPIRE_LEASES).arg("-inf").arg(now_us() / 1000).query(&mut c).expect("ZCOUNT");
    latency_setup(&mut c);
    let pinger = (!quiet).then(|| Pinger::start(&cl));
    let t0 = Instant::now();
    let cpu0 = main_cpu_s(&mut c);
    let deadline = t0 + Duration::from_secs(300);
    let poll = Duration::from_millis(if quiet { 50 } else { 1 });
    while expire_llen(&mut c) < jobs && Instant::now() < deadline {
        thread::sleep(poll);
    }
    let secs = t0.elapsed().as_secs_f64();
    let busy = (main_cpu_s(&mut c) - cpu0) / secs.max(1e-9);
    let pings = match pinger {
        Some(p) => p.finish(),
        None => Pings { max: f64::NAN, p99: f64::NAN, over10: 0, sent: 0 },
    };
    let (events, lat_max) = latency_latest(&mut c);
    let back = expire_llen(&mut c);
    let left: usize = redis::cmd("ZCARD").arg(EXPIRE_LEASES).query(&mut c).expect("ZCARD");
    let (_, tick_p99_us, tick_max_us) = ticks(&mut c);
    let (_, _, tick_cpu_max_us) = ticks_cpu(&mut c);
    println!(
        "due={due} back={back} leases_left={left} total_s={secs:.3} busy={busy:.2} rate={:.0} ping_max={:.2} ping_p99={:.2} ping_over10={} pings={} lat_max={lat_max} events={events} tick_max_ms={:.2} tick_p99_ms={:.2} tick_cpu_max_ms={:.2}",
        back as f64 / secs,
        pings.max,
        pings.p99,
        pings.over10,
        pings.sent,
        tick_max_us / 1000.0,
        tick_p99_us / 1000.0,
        tick_cpu_max_us / 1000.0,
    );
}

fn expire_llen(c: &mut Connection) -> usize {
    redis::cmd("LLEN").arg(EXPIRE_QUEUE).query(c).expect("LLEN")
}

fn expire_floor(port: u16, jobs: usize) {
    let mut c = connect(&client(port));
    // Everything the writes need, read up front: each worker's record (the
    // job it holds) and in-flight entry (rewritten as the tombstone).
    let mut plan: Vec<(String, String, String, Vec<u8>)> = Vec::with_capacity(jobs);
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for &i in chunk {
            let w = expire_worker(i);
            p.cmd("GET").arg(format!("{EXPIRE_NS}:worker:{w}:q"));
            p.cmd("GET").arg(format!("{EXPIRE_NS}:tq:inflight:{w}"));
        }
        let got: Vec<(String, Vec<u8>)> = p
            .query::<Vec<Value>>(&mut c)
            .expect("GET")
            .chunks(2)
            .map(|pair| {
                let record: String = redis::from_redis_value(pair[0].clone()).expect("record");
                let entry: Vec<u8> = redis::from_redis_value(pair[1].clone()).expect("in-flight entry");
                (record, entry)
            })
            .collect();
        for (&i, (record, entry)) in chunk.iter().zip(got) {
            let v: serde_json::Value = serde_json::from_str(&record).expect("record is JSON");
            let payload = serde_json::to_string(&v["payload"]).expect("payload");
            plan.push((expire_worker(i), record, payload, entry));
        }
    }
    let tombstone_at = (now_us() / 1000 + 24 * 3600 * 1000).to_string();
    let _: () = redis::cmd("CONFIG").arg("RESETSTAT").query(&mut c).expect("RESETSTAT");
    let t0 = Instant::now();
    for chunk in plan.chunks(250) {
        let mut p = redis::pipe();
        for (w, _, payload, entry) in chunk {
            p.cmd("ZREM").arg(EXPIRE_LEASES).arg(w).ignore();
            p.cmd("LPUSH").arg(EXPIRE_QUEUE).arg(payload).ignore();
            p.cmd("HSET").arg(format!("{EXPIRE_NS}:tq:deliveries")).arg(payload).arg(1).ignore();
            p.cmd("DEL").arg(format!("{EXPIRE_NS}:worker:{w}:q")).ignore();
            p.cmd("SET").arg(format!("{EXPIRE_NS}:tq:inflight:{w}")).arg(entry).arg("PXAT").arg(&tombstone_at).ignore();
        }
        p.query::<()>(&mut c).expect("floor pipeline");
    }
    let wall = t0.elapsed().as_secs_f64();
    let server_us = server_us(&mut c, &["zrem", "lpush", "hset", "del", "set"]);
    let back = expire_llen(&mut c);
    println!("back={back} rate={:.0} server_rate={:.0}", back as f64 / wall, back as f64 / (server_us / 1e6).max(1e-9));
}

// ------------------------------------------------------------ queue depth

const DEPTH_NS: &str = "dp";
const DEPTH_QUEUE: &str = "dp:queue:q";
const DEPTH_PAYLOAD: &str = r#"{"class":"add","queue":"q","args":[1,2]}"#;

/// Fills the queue up to `want` jobs: RPUSH of 1000 payloads per command, 10
/// commands (10k jobs) per round trip.
fn depth_fill(port: u16, want: usize) {
    let mut c = connect(&client(port));
    let have: usize = redis::cmd("LLEN").arg(DEPTH_QUEUE).query(&mut c).expect("LLEN");
    let start = Instant::now();
    let mut missing = want.saturating_sub(have);
    while missing > 0 {
        let mut p = redis::pipe();
        let mut in_trip = 0;
        while missing > 0 && in_trip < 10_000 {
            let n = missing.min(1000);
            let cmd = p.cmd("RPUSH").arg(DEPTH_QUEUE);
            for _ in 0..n {
                cmd.arg(DEPTH_PAYLOAD);
            }
            cmd.ignore();
            missing -= n;
            in_trip += n;
        }
        p.query::<()>(&mut c).expect("fill");
    }
    let secs = start.elapsed().as_secs_f64();
    let len: usize = redis::cmd("LLEN").arg(DEPTH_QUEUE).query(&mut c).expect("LLEN");
    println!("fill_s={secs:.1} used_mb={:.0} len={len}", used_memory(&mut c) / 1e6);
}

/// One timed run of `jobs` POP+ACK cycles (see `cycles`).
fn depth_run(port: u16, jobs: usize, pipeline: usize, conns: usize, refill: bool) {
    let cl = client(port);
    let mut c = connect(&cl);
    let before: usize = redis::cmd("LLEN").arg(DEPTH_QUEUE).query(&mut c).expect("LLEN");
    let rate = cycles(&cl, jobs, pipeline, conns, refill);
    let after: usize = redis::cmd("LLEN").arg(DEPTH_QUEUE).query(&mut c).expect("LLEN");
    println!("rate={rate:.0} len_before={before} len_after={after}");
}

/// `jobs` TQ.POP+TQ.ACK cycles over `conns` connections, `pipeline` commands
/// per round trip (so pipeline/2 jobs); with `refill`, each round trip also
/// RPUSHes as many payloads as it takes. Returns jobs/s.
fn cycles(cl: &Client, jobs: usize, pipeline: usize, conns: usize, refill: bool) -> f64 {
    let per_conn = jobs / conns;
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|t| {
            let cl = cl.clone();
            thread::spawn(move || {
                let mut c = connect(&cl);
                let per_trip = (pipeline / 2).max(1);
                // One worker name per job of a trip: a trip completes the
                // jobs the last one took (each ACK names its delivery) and
                // takes the next.
                let names: Vec<String> = (0..per_trip).map(|k| format!("bench:{t}:{k}")).collect();
                let mut held: Vec<Option<i64>> = Vec::new();
                let mut done = 0;
                while done < per_conn || !held.is_empty() {
                    let n = per_trip.min(per_conn - done);
                    let mut p = redis::pipe();
                    for (name, d) in names.iter().zip(&held) {
                        if let Some(d) = d {
                            p.cmd("TQ.ACK").arg(DEPTH_NS).arg(name).arg(*d).ignore();
                        }
                    }
                    for name in names.iter().take(n) {
                        p.cmd("TQ.POP").arg(DEPTH_NS).arg(name).arg("q");
                    }
                    if refill && n > 0 {
                        let cmd = p.cmd("RPUSH").arg(DEPTH_QUEUE);
                        for _ in 0..n {
                            cmd.arg(DEPTH_PAYLOAD);
                        }
                        cmd.ignore();
                    }
                    let replies: Vec<Value> = p.query(&mut c).expect("round trip");
                    assert!(replies.iter().all(|r| matches!(r, Value::Array(_))), "a TQ.POP found no job: {replies:?}");
                    held = replies.into_iter().map(|r| taken(r).map(|(_, d)| d)).collect();
                    done += n;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    (per_conn * conns) as f64 / start.elapsed().as_secs_f64()
}

/// The payload and delivery id of a pop's reply
/// `[queue, payload, delivery, deliveries, lease-deadline-ms]`; None for nil.
fn taken(v: Value) -> Option<(Vec<u8>, i64)> {
    match v {
        Value::Array(items) => match items.as_slice() {
            [_, Value::BulkString(p), Value::Int(d), ..] => Some((p.clone(), *d)),
            other => panic!("a pop replied {other:?}"),
        },
        _ => None,
    }
}

// ------------------------------------------------------- many namespaces

/// One delayed job in each of `n` namespaces, due in bucket `at_s`: even
/// ones through `TQ.ENQUEUEAT`, odd ones as node-resque's plain writes.
fn ns_fill(c: &mut Connection, n: usize, at_s: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(2000) {
        let mut p = redis::pipe();
        for &i in chunk {
            let ns = format!("ns{i}");
            if i % 2 == 0 {
                p.cmd("TQ.ENQUEUEAT").arg(&ns).arg(at_s * 1000).arg("q").arg("c").arg("[1]").ignore();
            } else {
                let payload = r#"{"class":"c","queue":"q","args":[1]}"#;
                p.cmd("RPUSH").arg(format!("{ns}:delayed:{at_s}")).arg(payload).ignore();
                p.cmd("SADD").arg(format!("{ns}:timestamps:{payload}")).arg(format!("delayed:{at_s}")).ignore();
                p.cmd("ZADD").arg(format!("{ns}:delayed_queue_schedule")).arg(at_s).arg(at_s).ignore();
            }
        }
        p.query::<()>(c).expect("fill");
    }
}

/// A field of `INFO <section>` as a number.
fn info_num(c: &mut Connection, section: &str, field: &str) -> Option<f64> {
    let info: String = redis::cmd("INFO").arg(section).query(c).expect("INFO");
    info.lines().find_map(|l| l.strip_prefix(&format!("{field}:"))).and_then(|v| v.trim().parse().ok())
}

/// `tq_timer_tick_us`'s `count`, `p99` and `max`.
fn ticks(c: &mut Connection) -> (f64, f64, f64) {
    tick_summary(c, "tq_timer_tick_us:")
}

/// The same of `tq_timer_tick_cpu_us`: the ticks' time on the server
/// thread's CPU clock, without the time it waited for a core.
fn ticks_cpu(c: &mut Connection) -> (f64, f64, f64) {
    tick_summary(c, "tq_timer_tick_cpu_us:")
}

fn tick_summary(c: &mut Connection, prefix: &str) -> (f64, f64, f64) {
    let info: String = redis::cmd("INFO").arg("tq").query(c).expect("INFO tq");
    let f = |field: &str| -> f64 {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|v| v.split(',').find_map(|kv| kv.strip_prefix(field)))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    (f("count="), f("p99="), f("max="))
}

fn cpu_secs(c: &mut Connection) -> f64 {
    info_num(c, "cpu", "used_cpu_sys").unwrap_or(f64::NAN) + info_num(c, "cpu", "used_cpu_user").unwrap_or(f64::NAN)
}

fn ns_idle(port: u16, n: usize, secs: u64) {
    let cl = client(port);
    let mut c = connect(&cl);
    let t0 = Instant::now();
    let far_s = server_time_us(&mut c) / 1_000_000 + 86_400;
    ns_fill(&mut c, n, far_s);
    let fill_s = t0.elapsed().as_secs_f64();
    // Settled: the timer's visits (a build without the counter: 3 s) stop.
    let visits = |c: &mut Connection| info_num(c, "tq", "tq_timer_ns_visits");
    let settle = Instant::now();
    let mut last = visits(&mut c);
    loop {
        thread::sleep(Duration::from_millis(500));
        let v = visits(&mut c);
        if (v.is_some() && v == last) || settle.elapsed() > Duration::from_secs(if v.is_some() { 60 } else { 3 }) {
            break;
        }
        last = v;
    }
    // CPU with no client traffic (but these few INFO calls), then PINGs.
    let (cpu0, ticks0, visits0) = (cpu_secs(&mut c), ticks(&mut c).0, visits(&mut c));
    let w0 = Instant::now();
    thread::sleep(Duration::from_secs(secs));
    let wall = w0.elapsed().as_secs_f64();
    let (cpu1, (ticks1, _, _), visits1) = (cpu_secs(&mut c), ticks(&mut c), visits(&mut c));
    let pinger = Pinger::start(&cl);
    thread::sleep(Duration::from_secs(secs));
    let pings = pinger.finish_all();
    let (_, tick_p99, tick_max) = ticks(&mut c);
    let visits_s = match (visits0, visits1) {
        (Some(a), Some(b)) => format!("{:.0}", (b - a) / wall),
        _ => "-".into(),
    };
    println!(
        "namespaces={n} fill_s={fill_s:.2} cpu_pct={:.2} ping_p50={:.3} ping_p99={:.3} ping_max={:.2} pings={} ticks_s={:.1} visits_s={visits_s} tick_p99_ms={:.2} tick_max_ms={:.2}",
        (cpu1 - cpu0) / wall * 100.0,
        pct(&pings, 0.5),
        pct(&pings, 0.99),
        pct(&pings, 1.0),
        pings.len(),
        (ticks1 - ticks0) / wall,
        tick_p99 / 1000.0,
        tick_max / 1000.0,
    );
}

fn ns_due(port: u16, n: usize) {
    let cl = client(port);
    let mut c = connect(&cl);
    let now_s = server_time_us(&mut c) / 1_000_000;
    let at_s = now_s + 4;
    ns_fill(&mut c, n, at_s);
    let promoted = |c: &mut Connection| info_num(c, "tq", "tq_promoted").unwrap_or(0.0) as usize;
    assert_eq!(promoted(&mut c), 0, "due too soon: the fill took too long");
    let pinger = Pinger::start(&cl);
    while server_time_us(&mut c) < at_s * 1_000_000 {
        thread::sleep(Duration::from_millis(1));
    }
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(600);
    while promoted(&mut c) < n && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    let total = t0.elapsed().as_secs_f64();
    let pings = pinger.finish_all();
    let (_, tick_p99, tick_max) = ticks(&mut c);
    let (_, _, tick_cpu_max) = ticks_cpu(&mut c);
    println!(
        "namespaces={n} promoted={} total_s={total:.3} ping_p99={:.3} ping_max={:.2} pings={} tick_p99_ms={:.2} tick_max_ms={:.2} tick_cpu_max_ms={:.2}",
        promoted(&mut c),
        pct(&pings, 0.99),
        pct(&pings, 1.0),
        pings.len(),
        tick_p99 / 1000.0,
        tick_max / 1000.0,
        tick_cpu_max / 1000.0,
    );
}
