//! Periodic tasks: TQ.RECUR / TQ.UNRECUR / TQ.RECURS, enqueued by the
//! module's timer every period, never with more than one instance waiting
//! or running, the next one as soon as a late one is done. (Restarts and
//! failover: timer.rs.)

mod common;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

fn recurs(c: &mut Conn, n: &str) -> Vec<(String, i64, i64)> {
    match c.ok(&["TQ.RECURS", n]) {
        Value::Array(rows) => rows
            .into_iter()
            .map(|row| match row {
                Value::Array(f) => match f.as_slice() {
                    [Value::BulkString(p), Value::Int(every), Value::Int(next)] => {
                        (String::from_utf8(p.clone()).expect("utf8"), *every, *next)
                    }
                    other => panic!("TQ.RECURS row: {other:?}"),
                },
                other => panic!("TQ.RECURS row: {other:?}"),
            })
            .collect(),
        other => panic!("TQ.RECURS: {other:?}"),
    }
}

#[test]
fn recur_unrecur_and_recurs() {
    let s = Server::start(); // auto-promote off: periodic tasks run anyway
    let mut c = s.conn();
    let n = ns("recur-api");
    let q = format!("{n}:queue:rq");
    let payload = job("rq", "Tick", r#"[{"a":1}]"#);
    let before = c.server_ms();
    assert_eq!(c.int(&["TQ.RECUR", &n, "Tick", "rq", "60000", r#"{"a":1}"#]), 1);
    // The first instance at once.
    let seen = c.wait_llen(&q, 1, 10);
    assert!(seen < before + 1000, "the first instance came {} ms late", seen - before);
    assert_eq!(c.lrange(&q), vec![payload.clone()]);
    assert!(c.strings(&["SMEMBERS", &format!("{n}:queues")]).contains(&"rq".to_string()));
    // Waiting: node-resque's QueueLock for the job.
    assert_eq!(c.int(&["EXISTS", &format!("{n}:lock:Tick:rq:[{{\"a\":1}}]")]), 1);
    let rows = recurs(&mut c, &n);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, payload);
    assert_eq!(rows[0].1, 60_000);
    let next = u64::try_from(rows[0].2).expect("next");
    assert!(next > before && next <= c.server_ms() + 60_000, "next due {next}");

    // Re-timed: 0; a second task: 1.
    assert_eq!(c.int(&["TQ.RECUR", &n, "Tick", "rq", "30000", r#"{"a":1}"#]), 0);
    assert_eq!(recurs(&mut c, &n)[0].1, 30_000);
    assert!(u64::try_from(recurs(&mut c, &n)[0].2).expect("next") <= c.server_ms() + 30_000);
    assert_eq!(c.int(&["TQ.RECUR", &n, "Other", "rq", "60000"]), 1);
    assert_eq!(recurs(&mut c, &n).len(), 2);
    c.wait_llen(&q, 2, 10);

    // Stopped: the instance waiting stays; no more come.
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Other", "rq"]), 1);
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Other", "rq"]), 0);
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Tick", "rq"]), 0, "other args: another task");
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Tick", "rq", r#"{"a":1}"#]), 1);
    assert!(recurs(&mut c, &n).is_empty());
    assert_eq!(c.int(&["LLEN", &q]), 2);
    assert!(c.err(&["TQ.RECUR", &n, "Tick", "rq", "5"]).starts_with("ERR"));
    assert!(c.err(&["TQ.RECUR", &n, "Tick", "rq", "x"]).starts_with("ERR"));
    assert!(c.err(&["TQ.RECUR", &n, "Tick", "rq", "100", "[1"]).starts_with("ERR"));
}

#[test]
fn unrecur_stops_the_instances() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("unrecur");
    let q = format!("{n}:queue:rq");
    c.int(&["TQ.RECUR", &n, "Tick", "rq", "100"]);
    c.wait_llen(&q, 1, 10);
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Tick", "rq"]), 1);
    c.ok(&["TQ.POP", &n, "w", "rq"]);
    c.ack(&n, "w");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.int(&["LLEN", &q]), 0, "an instance after TQ.UNRECUR");
}

#[test]
fn workers_run_the_task_every_period_never_two_at_once() {
    const EVERY_MS: u64 = 100;
    const WORKERS: usize = 3;
    let s = Server::start();
    let n = ns("periodic");
    let mut c = s.conn();
    let stop = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicI64::new(0));
    let max_running = Arc::new(AtomicI64::new(0));
    let runs = Arc::new(AtomicUsize::new(0));
    let joblock = format!("{n}:workerslock:Tick:rq:[]");

    let mut threads = Vec::new();
    for i in 0..WORKERS {
        let (port, n, stop, running, max_running, runs, joblock) =
            (s.port, n.clone(), stop.clone(), running.clone(), max_running.clone(), runs.clone(), joblock.clone());
        threads.push(std::thread::spawn(move || {
            let mut c = connect(port);
            let w = format!("w{i}");
            while !stop.load(Ordering::SeqCst) {
                if let Some((q, p)) = popped_job(c.ok(&["TQ.BPOP", &n, &w, "rq", "200"])) {
                    assert_eq!((q.as_str(), p), ("rq", job("rq", "Tick", "[]")));
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    max_running.fetch_max(now, Ordering::SeqCst);
                    assert_eq!(c.int(&["EXISTS", &joblock]), 1, "a running instance without its JobLock");
                    std::thread::sleep(Duration::from_millis(15 + 10 * i as u64));
                    running.fetch_sub(1, Ordering::SeqCst);
                    assert_eq!(c.ack(&n, &w), Value::Okay);
                    runs.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    // Waiting + running, read in one step, is never more than one.
    let observer = {
        let (port, n, stop, joblock) = (s.port, n.clone(), stop.clone(), joblock.clone());
        std::thread::spawn(move || {
            let mut c = connect(port);
            let mut looks = 0;
            while !stop.load(Ordering::SeqCst) {
                c.ok(&["MULTI"]);
                c.ok(&["LLEN", &format!("{n}:queue:rq")]);
                c.ok(&["EXISTS", &joblock]);
                match c.ok(&["EXEC"]) {
                    Value::Array(r) => match r.as_slice() {
                        [Value::Int(waiting), Value::Int(running)] => {
                            assert!(waiting + running <= 1, "{waiting} waiting and {running} running at once")
                        }
                        other => panic!("EXEC: {other:?}"),
                    },
                    other => panic!("EXEC: {other:?}"),
                }
                looks += 1;
                std::thread::sleep(Duration::from_millis(3));
            }
            looks
        })
    };

    c.wait_blocked(i64::try_from(WORKERS).expect("workers"));
    let started = Instant::now();
    assert_eq!(c.int(&["TQ.RECUR", &n, "Tick", "rq", &EVERY_MS.to_string()]), 1);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Tick", "rq"]), 1);
    let elapsed = started.elapsed().as_millis() as u64;
    let runs_by_then = runs.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().expect("worker thread");
    }
    assert!(observer.join().expect("observer") > 100, "the observer barely looked");
    assert_eq!(max_running.load(Ordering::SeqCst), 1, "two instances ran at once");
    let expected = elapsed / EVERY_MS;
    assert!(
        runs_by_then as u64 + 2 >= expected,
        "{runs_by_then} runs in {elapsed} ms every {EVERY_MS} ms: periods were skipped while workers were free"
    );
    assert!(runs_by_then as u64 <= expected + 3, "{runs_by_then} runs in {elapsed} ms every {EVERY_MS} ms");
    assert_eq!(c.int(&["EXISTS", &joblock]), 0);
}

#[test]
fn an_instance_waiting_or_running_delays_the_next_until_it_is_done() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("overrun");
    let q = format!("{n}:queue:rq");
    assert_eq!(c.int(&["TQ.RECUR", &n, "Tick", "rq", "200"]), 1);
    c.wait_llen(&q, 1, 10);
    // Waiting through several periods: still one.
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(700) {
        assert_eq!(c.int(&["LLEN", &q]), 1, "a second instance while one waits");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Running through several periods: none waiting.
    c.ok(&["TQ.POP", &n, "w", "rq"]);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(700) {
        assert_eq!(c.int(&["LLEN", &q]), 0, "a second instance while one runs");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Done: the next one comes at once.
    c.ack(&n, "w");
    let acked = c.server_ms();
    let seen = c.wait_llen(&q, 1, 10);
    assert!(seen < acked + 1000, "the delayed instance came {} ms after the job was done", seen - acked);
    assert_eq!(c.lrange(&q), vec![job("rq", "Tick", "[]")]);
    // FAIL counts as done too.
    c.ok(&["TQ.POP", &n, "w", "rq"]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.int(&["LLEN", &q]), 0);
    c.fail(&n, "w", &["E", "boom"]);
    let failed_at = c.server_ms();
    let seen = c.wait_llen(&q, 1, 10);
    assert!(seen < failed_at + 1000, "the delayed instance came {} ms after the job failed", seen - failed_at);
}

#[test]
fn a_periodic_job_whose_lease_runs_out_is_waiting_again() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "300"]));
    let mut c = s.conn();
    let n = ns("recur-lease");
    let q = format!("{n}:queue:rq");
    let queue_lock = format!("{n}:lock:Tick:rq:[]");
    let job_lock = format!("{n}:workerslock:Tick:rq:[]");
    c.int(&["TQ.RECUR", &n, "Tick", "rq", "100"]);
    c.wait_llen(&q, 1, 10);
    c.ok(&["TQ.POP", &n, "w", "rq"]);
    assert_eq!(c.int(&["EXISTS", &job_lock]), 1);
    assert_eq!(c.int(&["EXISTS", &queue_lock]), 0);
    wait_until(30, "the lease running out", || c.inflight(&n, "w").is_some_and(|e| e.lost()));
    // Back at the head as the one waiting instance.
    assert_eq!(c.lrange(&q), vec![job("rq", "Tick", "[]")]);
    assert_eq!(c.int(&["EXISTS", &job_lock]), 0);
    assert_eq!(c.int(&["EXISTS", &queue_lock]), 1);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(c.int(&["LLEN", &q]), 1, "a second instance beside the one given back");
    c.ok(&["TQ.POP", &n, "w2", "rq"]);
    assert_eq!(c.inflight(&n, "w2").expect("in-flight").deliveries, 2);
    assert_eq!(c.ack(&n, "w2"), Value::Okay);
    assert!(c.ack_err(&n, "w").starts_with("LEASELOST"));
    assert_eq!(c.int(&["TQ.UNRECUR", &n, "Tick", "rq"]), 1);
}

#[test]
fn a_periodic_job_kept_by_heartbeats_is_still_the_only_instance() {
    // A 1 s lease renewed every ~80 ms (a loaded machine may stall this
    // thread for most of a second), through many 100 ms periods.
    let s = Server::start_with(Opts::module_with(&["lease-ms", "1000"]));
    let mut c = s.conn();
    let n = ns("recur-heartbeat");
    let q = format!("{n}:queue:rq");
    c.int(&["TQ.RECUR", &n, "Tick", "rq", "100"]);
    c.wait_llen(&q, 1, 10);
    c.ok(&["TQ.POP", &n, "w", "rq"]);
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(2500) {
        assert_eq!(c.beat(&n, "w", "1000"), 1000);
        assert!(!c.inflight(&n, "w").expect("in-flight").lost());
        assert_eq!(c.int(&["LLEN", &q]), 0, "a second instance while the first runs (kept by heartbeats)");
        std::thread::sleep(Duration::from_millis(80));
    }
    assert_eq!(c.ack(&n, "w"), Value::Okay);
}

#[test]
fn after_an_overrun_missed_periods_are_not_made_up() {
    const EVERY_MS: u64 = 500;
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("catch-up");
    let q = format!("{n}:queue:rq");
    c.int(&["TQ.RECUR", &n, "Tick", "rq", &EVERY_MS.to_string()]);
    c.wait_llen(&q, 1, 10);
    c.ok(&["TQ.POP", &n, "w", "rq"]);
    std::thread::sleep(Duration::from_millis(3 * EVERY_MS + 100));
    c.ack(&n, "w");
    // The delayed run, then runs taken and done at once: they come a period apart.
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(c.wait_llen(&q, 1, 10));
        c.ok(&["TQ.POP", &n, "w", "rq"]);
        c.ack(&n, "w");
    }
    for pair in seen.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap >= EVERY_MS / 2, "runs {gap} ms apart with a period of {EVERY_MS} ms: {seen:?}");
    }
}
