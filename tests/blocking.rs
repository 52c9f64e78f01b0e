//! TQ.BPOP: a pop that waits for a job. Woken by every writer (TQ.ENQUEUE,
//! TQ.PROMOTE, the timer's promotion, a plain RPUSH, TQ.BROADCAST); one job
//! goes to one waiter, waiters are served first come first served, priority
//! order holds; inside MULTI or a script it does not block; a waiter that
//! goes away leaves nothing behind.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// What a waiter thread saw.
struct Woken {
    worker: String,
    job: Option<(String, String)>,
    waited: Duration,
}

/// Starts `TQ.BPOP <ns> <worker> <queues...> <timeout>` on its own
/// connection, in a thread.
fn spawn_bpop(port: u16, ns: &str, worker: &str, queues: &[&str], timeout_ms: u64) -> JoinHandle<Woken> {
    let mut args: Vec<String> = vec!["TQ.BPOP".into(), ns.into(), worker.into()];
    args.extend(queues.iter().map(|q| q.to_string()));
    args.push(timeout_ms.to_string());
    let worker = worker.to_string();
    std::thread::spawn(move || {
        let mut c = connect(port);
        let started = Instant::now();
        let job = popped_job(c.ok(&args));
        Woken { worker, job, waited: started.elapsed() }
    })
}

/// Same, reporting on a channel as soon as it is woken.
fn spawn_bpop_to(port: u16, ns: &str, worker: &str, queues: &[&str], timeout_ms: u64, tx: mpsc::Sender<Woken>) {
    let handle = spawn_bpop(port, ns, worker, queues, timeout_ms);
    std::thread::spawn(move || {
        let _ = tx.send(handle.join().expect("waiter thread"));
    });
}

/// The worker's in-flight record (what node-resque's workingOn reads).
fn record(c: &mut Conn, ns: &str, worker: &str, queues: &str) -> Option<String> {
    c.string(&["GET", &format!("{ns}:worker:{worker}:{queues}")])
}

#[test]
fn bpop_times_out_with_nil_and_writes_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("bpop-timeout");
    let before = c.quiet_digest();

    let started = Instant::now();
    assert_eq!(c.ok(&["TQ.BPOP", &n, "w", "q1", "q2", "300"]), Value::Nil);
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "the timeout came early: {waited:?}");
    assert!(waited < Duration::from_millis(2500), "the timeout came late: {waited:?}");
    assert_eq!(c.blocked_clients(), 0);
    assert_eq!(c.digest(), before, "a BPOP that timed out wrote something");
    assert!(c.strings(&["KEYS", &format!("{n}:*")]).is_empty());

    // With a job waiting it does not block and is TQ.POP: record, index, lease.
    c.ok(&["TQ.ENQUEUE", &n, "q2", "c", "[1]"]);
    let started = Instant::now();
    let got = popped_job(c.ok(&["TQ.BPOP", &n, "w", "q1", "q2", "0"]));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(got, Some(("q2".to_string(), job("q2", "c", "[1]"))));
    let rec = record(&mut c, &n, "w", "q1,q2").expect("in-flight record");
    assert!(rec.contains(&format!(r#""payload":{}"#, job("q2", "c", "[1]"))), "{rec}");
    let entry = c.inflight(&n, "w").expect("in-flight index");
    assert_eq!(entry.queue, b"q2");
    assert_eq!(entry.deliveries, 1);
    assert!(c.strings(&["SMEMBERS", &format!("{n}:workers")]).contains(&"w:q1,q2".to_string()));
    assert!(c.string(&["ZSCORE", &format!("{n}:tq:leases"), "w"]).is_some());

    // A worker holding a job gets it again at once, blocking or not.
    let started = Instant::now();
    let again = popped_job(c.ok(&["TQ.BPOP", &n, "w", "q1", "0"]));
    assert_eq!(again, Some(("q2".to_string(), job("q2", "c", "[1]"))));
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(c.ack(&n, "w"), Value::Okay);
    assert_eq!(c.blocked_clients(), 0);
}

/// Blocks worker `w` on `queues`, runs `write`, and returns what it got;
/// checks the job is in flight like a TQ.POP's and ACKs it.
fn woken_by(s: &Server, n: &str, queues: &[&str], write: impl FnOnce(&mut Conn)) -> (String, String) {
    let mut c = s.conn();
    let waiter = spawn_bpop(s.port, n, "w", queues, 20_000);
    c.wait_blocked(1);
    write(&mut c);
    let woken = waiter.join().expect("waiter");
    let (queue, payload) = woken.job.unwrap_or_else(|| panic!("BPOP on {queues:?} timed out after {:?}", woken.waited));
    assert!(woken.waited < Duration::from_secs(15), "woken after {:?}", woken.waited);
    assert_eq!(c.blocked_clients(), 0);
    let rec = record(&mut c, n, "w", &queues.join(",")).expect("in-flight record after BPOP");
    assert!(rec.contains(&format!(r#""payload":{payload}"#)), "{rec}");
    assert_eq!(c.inflight(n, "w").expect("in-flight index").queue, queue.as_bytes());
    assert_eq!(c.ack(n, "w"), Value::Okay);
    (queue, payload)
}

#[test]
fn bpop_is_woken_by_enqueue() {
    let s = Server::start();
    let n = ns("wake-enqueue");
    let got = woken_by(&s, &n, &["a", "b"], |c| {
        c.ok(&["TQ.ENQUEUE", &n, "b", "c", "[1]"]);
    });
    assert_eq!(got, ("b".to_string(), job("b", "c", "[1]")));

    // `*`: the queues registered when it blocks.
    let mut c = s.conn();
    c.ok(&["TQ.ENQUEUE", &n, "z", "c", "[2]"]);
    c.ok(&["TQ.POP", &n, "x", "z"]);
    c.ack(&n, "x");
    let got = woken_by(&s, &n, &["*"], |c| {
        c.ok(&["TQ.ENQUEUE", &n, "z", "c", "[3]"]);
    });
    assert_eq!(got, ("z".to_string(), job("z", "c", "[3]")));

    // JOBLOCK: the lock is taken with the job.
    let waiter = spawn_bpop(s.port, &n, "w", &["a", "JOBLOCK", "60000"], 20_000);
    c.wait_blocked(1);
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[4]"]);
    let woken = waiter.join().expect("waiter");
    assert_eq!(woken.job, Some(("a".to_string(), job("a", "c", "[4]"))));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:workerslock:c:a:[4]")]), 1);
    assert_eq!(c.ack(&n, "w"), Value::Okay);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:workerslock:c:a:[4]")]), 0);
}

#[test]
fn bpop_is_woken_by_tq_promote() {
    let s = Server::start(); // the timer does not promote
    let n = ns("wake-promote");
    let mut c = s.conn();
    c.ok(&["TQ.ENQUEUEAT", &n, "1000", "q", "c", "[1]"]); // long due
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0, "promoted with auto-promote off");
    let got = woken_by(&s, &n, &["q"], |c| {
        assert_eq!(c.int(&["TQ.PROMOTE", &n]), 1);
    });
    assert_eq!(got, ("q".to_string(), job("q", "c", "[1]")));
}

#[test]
fn bpop_is_woken_by_timer_promotion_not_before_due() {
    let s = Server::start_with(Opts::timer());
    let n = ns("wake-timer");
    let mut c = s.conn();
    let waiter = spawn_bpop(s.port, &n, "w", &["q"], 20_000);
    c.wait_blocked(1);
    let before = c.server_ms();
    let bucket = c.int(&["TQ.ENQUEUEIN", &n, "1500", "q", "c", "[1]"]);
    let woken = waiter.join().expect("waiter");
    assert_eq!(woken.job, Some(("q".to_string(), job("q", "c", "[1]"))), "after {:?}", woken.waited);
    // Due at the time asked for (not at its bucket's second, which can be
    // up to 500 ms earlier).
    let due = before + 1500;
    let popped = c.inflight(&n, "w").expect("in-flight").popped_ms;
    assert!(popped >= due, "popped at {popped}, before the job was due at {due}");
    assert!(popped < due + 1000, "popped at {popped}, {} ms after it was due", popped - due);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed:{bucket}")]), 0);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:timestamps:{}", job("q", "c", "[1]"))]), 0);
    assert_eq!(c.ack(&n, "w"), Value::Okay);
}

#[test]
fn bpop_is_woken_by_a_plain_rpush() {
    let s = Server::start();
    let n = ns("wake-rpush");
    let payload = job("q", "plain", r#"["x"]"#);
    let got = woken_by(&s, &n, &["other", "q"], |c| {
        c.ok(&["RPUSH", &format!("{n}:queue:q"), &payload]);
    });
    assert_eq!(got, ("q".to_string(), payload));
}

#[test]
fn bpop_is_woken_by_broadcast() {
    let s = Server::start();
    let n = ns("wake-broadcast");
    let mut c = s.conn();
    assert_eq!(c.beat(&n, "w", "30000"), 0);
    let got = woken_by(&s, &n, &["q"], |c| {
        assert_eq!(c.int(&["TQ.BROADCAST", &n, "Reload", r#"{"a":1}"#]), 1);
    });
    assert_eq!(got, ("tq:broadcast".to_string(), job("tq:broadcast", "Reload", r#"[{"a":1}]"#)));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:mailbox:w")]), 0);
}

#[test]
fn one_job_wakes_exactly_one_waiter() {
    let s = Server::start();
    let n = ns("one-job");
    let mut c = s.conn();
    let (tx, rx) = mpsc::channel();
    for i in 0..5 {
        spawn_bpop_to(s.port, &n, &format!("w{i}"), &["q"], 30_000, tx.clone());
        c.wait_blocked(i as i64 + 1);
    }
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[0]"]);
    let first = rx.recv_timeout(Duration::from_secs(15)).expect("one waiter woken");
    assert_eq!(first.job, Some(("q".to_string(), job("q", "c", "[0]"))));
    // The others stay blocked; the job is gone from the queue.
    std::thread::sleep(Duration::from_millis(300));
    assert!(rx.try_recv().is_err(), "a second waiter returned for one job");
    assert_eq!(c.blocked_clients(), 4);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0);
    assert_eq!(c.strings(&["ZRANGE", &format!("{n}:tq:leases"), "0", "-1"]), vec![first.worker.clone()]);

    // One job each for the others.
    for i in 1..5 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", &format!("[{i}]")]);
    }
    let mut by_worker = BTreeMap::new();
    by_worker.insert(first.worker.clone(), first.job.expect("job").1);
    for _ in 1..5 {
        let w = rx.recv_timeout(Duration::from_secs(15)).expect("every waiter woken");
        let payload = w.job.expect("a job, not a timeout").1;
        assert!(by_worker.insert(w.worker.clone(), payload).is_none(), "{} woken twice", w.worker);
    }
    let payloads: BTreeSet<&String> = by_worker.values().collect();
    assert_eq!(payloads.len(), 5, "a job went to two waiters: {by_worker:?}");
    assert_eq!(c.blocked_clients(), 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0);
    assert_eq!(c.int(&["ZCARD", &format!("{n}:tq:leases")]), 5);
}

#[test]
fn waiters_are_served_first_come_first_served() {
    let s = Server::start();
    let n = ns("fifo");
    let mut c = s.conn();
    let (tx, rx) = mpsc::channel();
    let order = ["w-first", "w-second", "w-third", "w-fourth"];
    for (i, w) in order.iter().enumerate() {
        spawn_bpop_to(s.port, &n, w, &["q"], 30_000, tx.clone());
        c.wait_blocked(i as i64 + 1);
    }
    for (i, w) in order.iter().enumerate() {
        let args = format!("[{i}]");
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", &args]);
        let woken = rx.recv_timeout(Duration::from_secs(15)).expect("a waiter woken");
        assert_eq!(&woken.worker, w, "job {i} went to {} out of turn", woken.worker);
        assert_eq!(woken.job, Some(("q".to_string(), job("q", "c", &args))));
    }
}

#[test]
fn priority_order_holds_when_several_queues_fill_at_once() {
    let s = Server::start();
    let n = ns("priority");
    let mut c = s.conn();
    let waiter = spawn_bpop(s.port, &n, "w", &["high", "mid", "low"], 20_000);
    c.wait_blocked(1);
    // The low queue fills first, in the same transaction as the high one.
    c.ok(&["MULTI"]);
    c.ok(&["TQ.ENQUEUE", &n, "low", "c", "[1]"]);
    c.ok(&["RPUSH", &format!("{n}:queue:mid"), &job("mid", "c", "[2]")]);
    c.ok(&["TQ.ENQUEUE", &n, "high", "c", "[3]"]);
    c.ok(&["EXEC"]);
    let woken = waiter.join().expect("waiter");
    assert_eq!(woken.job, Some(("high".to_string(), job("high", "c", "[3]"))));
    c.ack(&n, "w");
    // The rest, in priority order, without blocking.
    for (q, args) in [("mid", "[2]"), ("low", "[1]")] {
        let got = popped_job(c.ok(&["TQ.BPOP", &n, "w", "high", "mid", "low", "5000"]));
        assert_eq!(got, Some((q.to_string(), job(q, "c", args))));
        c.ack(&n, "w");
    }
}

#[test]
fn many_waiters_on_many_queues_each_job_goes_to_one() {
    const WAITERS: usize = 20;
    const QUEUES: usize = 5;
    const JOBS: usize = 100;
    let s = Server::start();
    let n = ns("many");
    let mut c = s.conn();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for i in 0..WAITERS {
        let port = s.port;
        let n = n.clone();
        let stop = stop.clone();
        // Each waiter watches three of the five queues, in its own order.
        let queues: Vec<String> = (0..3).map(|k| format!("q{}", (i + k) % QUEUES)).collect();
        handles.push(std::thread::spawn(move || {
            let mut c = connect(port);
            let worker = format!("w{i}");
            let mut got = Vec::new();
            loop {
                let mut args = vec!["TQ.BPOP".to_string(), n.clone(), worker.clone()];
                args.extend(queues.iter().cloned());
                args.push("300".into());
                match popped_job(c.ok(&args)) {
                    Some((q, p)) => {
                        assert!(queues.contains(&q), "{worker} got a job from {q}, which it does not watch");
                        got.push(p);
                        assert_eq!(c.ack(&n, &worker), Value::Okay);
                    }
                    None if stop.load(Ordering::SeqCst) => return got,
                    None => {}
                }
            }
        }));
    }
    c.wait_blocked(i64::try_from(WAITERS).expect("waiters"));
    for batch in 0..10 {
        for k in 0..JOBS / 10 {
            let j = batch * JOBS / 10 + k;
            c.ok(&["TQ.ENQUEUE", &n, &format!("q{}", j % QUEUES), "c", &format!("[{j}]")]);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(60, "every job processed", || {
        c.string(&["GET", &format!("{n}:stat:processed")]).is_some_and(|v| v == JOBS.to_string())
    });
    stop.store(true, Ordering::SeqCst);
    let mut seen = BTreeMap::new();
    for (i, h) in handles.into_iter().enumerate() {
        for p in h.join().expect("waiter thread") {
            if let Some(other) = seen.insert(p.clone(), i) {
                panic!("{p} went to w{other} and w{i}");
            }
        }
    }
    assert_eq!(seen.len(), JOBS);
    for q in 0..QUEUES {
        assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q{q}")]), 0);
    }
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:leases")]), 0);
    assert!(c.live_inflight(&n).is_empty());
    assert_eq!(c.blocked_clients(), 0);
}

/// A RESP command, by hand, for a connection the test drops.
fn resp(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    out
}

#[test]
fn a_waiter_that_goes_away_leaves_nothing() {
    let s = Server::start();
    let n = ns("gone");
    let mut c = s.conn();
    c.ok(&["TQ.ENQUEUE", &n, "other", "c"]); // the namespace exists
    let before = c.quiet_digest();
    let clients_before: i64 = c.info_field("clients", "connected_clients").expect("clients").parse().expect("n");

    // A client that disconnects while blocked (for ever).
    let mut raw = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    raw.write_all(&resp(&["TQ.BPOP", &n, "w-gone", "q", "0"])).expect("send");
    c.wait_blocked(1);
    drop(raw);
    wait_until(10, "the client gone", || {
        c.info_field("clients", "connected_clients").and_then(|v| v.parse::<i64>().ok()) == Some(clients_before)
    });
    assert_eq!(c.blocked_clients(), 0);

    // A client killed while blocked.
    let mut raw = TcpStream::connect(("127.0.0.1", s.port)).expect("connect");
    raw.write_all(&resp(&["TQ.BPOP", &n, "w-killed", "q", "*", "0"])).expect("send");
    let mut buf = [0u8; 256];
    // `*` is refused when mixed with other queues: an error reply, no block.
    raw.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    let got = raw.read(&mut buf).expect("an error reply");
    assert!(buf[..got].starts_with(b"-ERR"), "{:?}", String::from_utf8_lossy(&buf[..got]));
    raw.write_all(&resp(&["TQ.BPOP", &n, "w-killed", "q", "0"])).expect("send");
    c.wait_blocked(1);
    let list = c.string(&["CLIENT", "LIST"]).unwrap_or_default();
    let id = list
        .lines()
        .find(|l| l.contains("cmd=tq.bpop"))
        .and_then(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("no blocked tq.bpop client in\n{list}"))
        .to_string();
    assert_eq!(c.int(&["CLIENT", "KILL", "ID", &id]), 1);
    c.wait_blocked(0);
    drop(raw);

    assert_eq!(c.digest(), before, "a waiter that went away changed the dataset");
    // A job that comes now stays for the next pop.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "c", "[1]")]);
    for w in ["w-gone", "w-killed"] {
        assert_eq!(c.inflight(&n, w), None);
        assert_eq!(c.int(&["EXISTS", &format!("{n}:worker:{w}:q")]), 0);
        assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:mailbox:{w}")]), 0);
    }
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:leases")]), 0);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:workers")]), 0);
}

#[test]
fn bpop_does_not_block_in_multi_or_scripts() {
    let s = Server::start();
    let n = ns("no-block");
    let mut c = s.conn();
    c.read_timeout(Duration::from_secs(10));
    let mut watcher = s.conn();

    let started = Instant::now();
    c.ok(&["MULTI"]);
    c.ok(&["TQ.BPOP", &n, "w", "q", "0"]);
    assert_eq!(c.ok(&["EXEC"]), Value::Array(vec![Value::Nil]));
    let script = "return redis.call('TQ.BPOP', KEYS[1], 'w', 'q', '0')";
    assert_eq!(c.ok(&["EVAL", script, "1", &n]), Value::Nil);
    assert!(started.elapsed() < Duration::from_secs(5), "blocked for {:?}", started.elapsed());
    assert_eq!(watcher.blocked_clients(), 0);
    assert!(c.strings(&["KEYS", &format!("{n}:*")]).is_empty(), "a nil BPOP wrote something");

    // With jobs, they pop as TQ.POP does.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    c.ok(&["MULTI"]);
    c.ok(&["TQ.BPOP", &n, "w", "q", "0"]);
    // The first delivery of the namespace: known before EXEC runs it.
    c.ok(&["TQ.ACK", &n, "w", "1"]);
    c.ok(&["TQ.BPOP", &n, "w", "q", "0"]);
    let replies = match c.ok(&["EXEC"]) {
        Value::Array(r) => r,
        other => panic!("EXEC: {other:?}"),
    };
    assert_eq!(replies.len(), 3);
    assert_eq!(popped_job(replies[0].clone()), Some(("q".to_string(), job("q", "c", "[1]"))));
    assert_eq!(popped_job(replies[2].clone()), Some(("q".to_string(), job("q", "c", "[2]"))));
    c.ack(&n, "w");
    assert_eq!(c.ok(&["EVAL", script, "1", &n]), Value::Nil);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[3]"]);
    assert_eq!(popped_job(c.ok(&["EVAL", script, "1", &n])), Some(("q".to_string(), job("q", "c", "[3]"))));
    c.ack(&n, "w");
    assert_eq!(watcher.blocked_clients(), 0);
}

/// Runs `wake` while worker `w` (new: not yet in `<ns>:workers`) is
/// blocked in TQ.BPOP on `q`, then returns once the pop was served.
fn served_to_a_new_worker(s: &Server, n: &str, worker: &str, wake: impl FnOnce(&mut Conn)) -> (String, String) {
    let mut c = s.conn();
    let waiter = spawn_bpop(s.port, n, worker, &["q"], 20_000);
    c.wait_blocked(1);
    wake(&mut c);
    waiter.join().expect("waiter").job.expect("woken")
}

#[test]
fn a_pop_served_to_a_blocked_bpop_is_replicated() {
    let primary = Server::start_with(Opts::default().with_args(&["--repl-diskless-sync-delay", "0"]));
    let replica = start_replica(primary.port, Opts { module: false, ..Opts::default() });
    let mut p = primary.conn();
    let n = ns("bpop-repl");
    // Woken by TQ.ENQUEUE, by a plain RPUSH, by TQ.BROADCAST.
    served_to_a_new_worker(&primary, &n, "w1", |c| {
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    });
    served_to_a_new_worker(&primary, &n, "w2", |c| {
        c.ok(&["RPUSH", &format!("{n}:queue:q"), &job("q", "c", "[2]")]);
    });
    p.beat(&n, "w3", "60000");
    served_to_a_new_worker(&primary, &n, "w3", |c| {
        assert_eq!(c.int(&["TQ.BROADCAST", &n, "B"]), 1);
    });
    wait_replicas_synced(&mut p, 1);
    let mut r = replica.conn();
    for key in [format!("{n}:queue:q"), format!("{n}:tq:mailbox:w3")] {
        assert_eq!(r.int(&["EXISTS", &key]), p.int(&["EXISTS", &key]), "{key} on the replica");
    }
    for w in ["w1", "w2", "w3"] {
        let key = format!("{n}:tq:inflight:{w}");
        assert_eq!(r.bytes(&["GET", &key]), p.bytes(&["GET", &key]), "{key} on the replica");
    }
    assert_eq!(r.digest(), p.digest(), "the replica differs from the primary");
}

#[test]
fn a_pop_served_to_a_blocked_bpop_reaches_the_aof() {
    let s = Server::start_with(Opts::default().with_args(&["--appendonly", "yes", "--appendfsync", "always"]));
    let mut c = s.conn();
    let n = ns("bpop-aof");
    served_to_a_new_worker(&s, &n, "w", |c| {
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    });
    let digest = c.quiet_digest();
    assert_eq!(c.ok(&["DEBUG", "LOADAOF"]), Value::Okay);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0, "the popped job is back in its queue after a reload");
    assert_eq!(c.digest(), digest, "the AOF does not reload what the server held");
    assert_eq!(c.ack(&n, "w"), Value::Okay);
}

/// Blocks `worker` in `TQ.BPOP <ns> <worker> <queue> JOBLOCK 60000 0` on its
/// own connection; the job it gets comes on the channel.
fn bpop_joblock(port: u16, n: &str, worker: &str, queue: &str) -> mpsc::Receiver<Option<(String, String)>> {
    let (tx, rx) = mpsc::channel();
    let args: Vec<String> = ["TQ.BPOP", n, worker, queue, "JOBLOCK", "60000", "0"].map(String::from).to_vec();
    std::thread::spawn(move || {
        let mut c = connect(port);
        let _ = tx.send(popped_job(c.ok(&args)));
    });
    rx
}

fn woken(rx: &mpsc::Receiver<Option<(String, String)>>, what: &str) -> (String, String) {
    rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("{what}")).expect("a job, not nil")
}

/// Redis signals a list as ready only when it is created: a waiter that
/// blocked while its queue held only jobs it could not take (their JobLock
/// held, or more corrupt payloads than one pop handles) used to stay blocked
/// through every later push, while a fresh TQ.POP took the job at once.
#[test]
fn a_bpop_blocked_on_a_queue_it_cannot_take_from_is_woken_by_what_comes_later() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("stuck");
    c.ok(&["TQ.ENQUEUE", &n, "jq", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "jq", "c", "[1]"]);
    c.ok(&["TQ.POP", &n, "W1", "jq", "JOBLOCK", "60000"]);

    // The twin of W1's job is locked: W2 blocks on a queue that is not empty.
    let w2 = bpop_joblock(s.port, &n, "W2", "jq");
    c.wait_blocked(1);
    // A TQ.ENQUEUE to that queue wakes it.
    c.ok(&["TQ.ENQUEUE", &n, "jq", "c", "[2]"]);
    assert_eq!(woken(&w2, "W2 woken by TQ.ENQUEUE"), ("jq".to_string(), job("jq", "c", "[2]")));

    // W3 blocks the same way; W1's ACK releases the lock and wakes it.
    let w3 = bpop_joblock(s.port, &n, "W3", "jq");
    c.wait_blocked(1);
    c.ack(&n, "W1");
    assert_eq!(woken(&w3, "W3 woken by the lock's release"), ("jq".to_string(), job("jq", "c", "[1]")));

    // W4 blocks behind a locked twin again; a plain RPUSH by another client
    // wakes it (through the module's timer).
    c.ok(&["TQ.ENQUEUE", &n, "jq", "c", "[1]"]);
    let w4 = bpop_joblock(s.port, &n, "W4", "jq");
    c.wait_blocked(1);
    c.ok(&["RPUSH", &format!("{n}:queue:jq"), &job("jq", "c", "[3]")]);
    assert_eq!(woken(&w4, "W4 woken after a plain RPUSH"), ("jq".to_string(), job("jq", "c", "[3]")));
    assert_eq!(c.blocked_clients(), 0);

    // 150 corrupt payloads and one valid job: one pop moves 100 corrupt
    // ones aside and takes nothing; the waiter still gets the job.
    let m = ns("stuck-corrupt");
    let mut p = redis::pipe();
    for i in 0..150 {
        p.cmd("RPUSH").arg(format!("{m}:queue:q")).arg(format!("not json {i}")).ignore();
    }
    p.cmd("RPUSH").arg(format!("{m}:queue:q")).arg(job("q", "c", "[7]")).ignore();
    p.query::<()>(&mut c.0).expect("fill");
    let w5 = bpop_joblock(s.port, &m, "W5", "q");
    assert_eq!(woken(&w5, "W5 gets the valid job behind 150 corrupt ones"), ("q".to_string(), job("q", "c", "[7]")));
    assert_eq!(c.int(&["LLEN", &format!("{m}:failed")]), 150);
}
