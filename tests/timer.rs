//! The module's timer: promotes due delayed jobs (its own and node-resque's
//! plain writes) on time and never early, gives back expired leases and
//! enqueues periodic tasks; writes only on primaries; finds its namespaces
//! again after a restart (AOF, RDB) or DEBUG RELOAD; and replicates its
//! moves as plain commands, so a replica without the module ends equal.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// The timer may be late by this much on a loaded machine (it aims at
/// ~100 ms).
const LATE_MS: u64 = 1000;

#[test]
fn due_delayed_jobs_are_promoted_by_the_timer_on_time_never_early() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("promote");
    let q = format!("{n}:queue:q");
    // Long due: promoted at once.
    c.ok(&["TQ.ENQUEUEAT", &n, "1000", "q", "c", "[0]"]);
    c.wait_llen(&q, 1, 10);
    popped_job(c.ok(&["TQ.POP", &n, "w", "q"])).expect("the promoted job");
    c.ack(&n, "w");

    // Due in a second or two: three jobs for the same time, in order.
    let bucket = i64::try_from(c.server_ms() / 1000 + 2).expect("bucket");
    for i in 1..=3 {
        let at = (bucket * 1000).to_string();
        assert_eq!(c.int(&["TQ.ENQUEUEAT", &n, &at, "q", "c", &format!("[{i}]")]), bucket);
    }
    let due = u64::try_from(bucket).expect("bucket") * 1000;
    let seen = c.wait_llen(&q, 1, 30);
    assert!(seen >= due, "promoted at {seen}, before the bucket was due at {due}");
    assert!(seen < due + LATE_MS, "promoted {} ms late", seen - due);
    c.wait_llen(&q, 3, 5);
    assert_eq!(c.lrange(&q), vec![job("q", "c", "[1]"), job("q", "c", "[2]"), job("q", "c", "[3]")]);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed:{bucket}")]), 0);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed_queue_schedule")]), 0);
    for i in 1..=3 {
        assert_eq!(c.int(&["EXISTS", &format!("{n}:timestamps:{}", job("q", "c", &format!("[{i}]")))]), 0);
    }
}

/// A job is due at the time asked for, not when its bucket's second starts
/// (node-resque files time T under `round(T / 1000)`, up to 500 ms early),
/// while it stays filed in that bucket for node-resque's readers.
#[test]
fn a_job_is_promoted_at_the_time_asked_for_never_before() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("exact");
    let q = format!("{n}:queue:q");
    // Two times in the second half of a bucket's lead-up and two after its
    // start: both pairs filed under the same bucket.
    let b = c.server_ms() / 1000 + 2;
    let times = [b * 1000 - 300, b * 1000 + 100, b * 1000 + 400, b * 1000 - 450];
    for (i, t) in times.iter().enumerate() {
        assert_eq!(c.int(&["TQ.ENQUEUEAT", &n, &t.to_string(), "q", "c", &format!("[{i}]")]), b as i64);
    }
    assert_eq!(c.strings(&["LRANGE", &format!("{n}:delayed:{b}"), "0", "-1"]).len(), 4, "filed under the bucket");
    // Each appears in its queue no earlier than asked, in time order.
    let mut order = vec![];
    let mut seen = 0;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while seen < 4 {
        assert!(std::time::Instant::now() < deadline, "not all promoted: {:?}", c.lrange(&q));
        let (len, now) = c.llen_at(&q);
        let len = usize::try_from(len).expect("len");
        if len > seen {
            for job in c.lrange(&q).iter().skip(seen) {
                let i: usize = job
                    .split("\"args\":[")
                    .nth(1)
                    .and_then(|r| r.split(']').next())
                    .and_then(|v| v.parse().ok())
                    .expect("index");
                order.push(i);
            }
            // Every job seen by now was due by now.
            for &i in &order[seen..] {
                assert!(times[i] <= now, "job {i} for {} in its queue at {now}", times[i]);
            }
            seen = len;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(order, [3, 0, 1, 2], "in the order of their times");
    assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed:{b}"), &format!("{n}:tq:due")]), 0, "nothing left");
}

#[test]
fn delayed_jobs_written_by_a_plain_client_are_promoted() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("plain"); // never touched by a TQ command
    let now_s = c.server_ms() / 1000;
    let mut want = Vec::new();
    for (i, ts) in [now_s + 2, now_s + 2, now_s + 3].into_iter().enumerate() {
        let payload = job("nq", "NodeJob", &format!("[{i}]"));
        // node-resque's enqueueAt.
        c.ok(&["RPUSH", &format!("{n}:delayed:{ts}"), &payload]);
        c.ok(&["SADD", &format!("{n}:timestamps:{payload}"), &format!("delayed:{ts}")]);
        c.ok(&["ZADD", &format!("{n}:delayed_queue_schedule"), &ts.to_string(), &ts.to_string()]);
        want.push((payload, ts));
    }
    let q = format!("{n}:queue:nq");
    let seen = c.wait_llen(&q, 1, 30);
    let due = (now_s + 2) * 1000;
    assert!(seen >= due, "promoted at {seen}, before {due}");
    assert!(seen < due + LATE_MS, "promoted {} ms late", seen - due);
    assert_eq!(c.llen_at(&q).0, 2, "the later bucket came early or the first came apart");
    let seen = c.wait_llen(&q, 3, 30);
    assert!(seen >= (now_s + 3) * 1000, "the second bucket promoted at {seen}");
    assert_eq!(c.lrange(&q), want.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>());
    assert!(c.strings(&["SMEMBERS", &format!("{n}:queues")]).contains(&"nq".to_string()));
    for (payload, ts) in &want {
        assert_eq!(c.int(&["EXISTS", &format!("{n}:timestamps:{payload}")]), 0);
        assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed:{ts}")]), 0);
    }
    assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed_queue_schedule")]), 0);
}

#[test]
fn auto_promote_no_stops_the_timer_but_not_tq_promote() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("auto-off");
    let q = format!("{n}:queue:q");
    assert_eq!(c.ok(&["CONFIG", "SET", "tq.auto-promote", "no"]), Value::Okay);
    c.ok(&["TQ.ENQUEUEAT", &n, "1000", "q", "c", "[1]"]);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(c.int(&["LLEN", &q]), 0, "promoted with tq.auto-promote no");
    assert_eq!(c.int(&["ZCARD", &format!("{n}:delayed_queue_schedule")]), 1);
    assert_eq!(c.int(&["TQ.PROMOTE", &n]), 1);
    assert_eq!(c.lrange(&q), vec![job("q", "c", "[1]")]);

    c.ok(&["TQ.ENQUEUEAT", &n, "2000", "q", "c", "[2]"]);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.int(&["LLEN", &q]), 1);
    assert_eq!(c.ok(&["CONFIG", "SET", "tq.auto-promote", "yes"]), Value::Okay);
    c.wait_llen(&q, 2, 10);
    assert_eq!(c.lrange(&q), vec![job("q", "c", "[1]"), job("q", "c", "[2]")]);
}

/// A backlog the timer needs many ticks for is worked between client
/// commands: each command waits for one tick at most, never for the
/// backlog. (Ticks that leave work come back once the clients that moved
/// meanwhile had their turn.)
#[test]
fn a_promotion_backlog_leaves_clients_answered_between_ticks() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("backlog");
    let q = format!("{n}:queue:q");
    let jobs = 20_000;
    assert_eq!(c.ok(&["CONFIG", "SET", "tq.auto-promote", "no"]), Value::Okay);
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.cmd("TQ.ENQUEUEAT").arg(&n).arg(1000 + i % 20).arg("q").arg("c").arg(format!("[{i}]")).ignore();
        }
        let () = pipe.query(&mut c.0).expect("enqueued");
    }
    assert_eq!(c.int(&["LLEN", &q]), 0);
    assert_eq!(c.ok(&["CONFIG", "SET", "tq.auto-promote", "yes"]), Value::Okay);
    let ticks_before = c.timer_ticks();
    // Asked without pause: each reply waits for the tick under way at most.
    let (mut between, deadline) = (0, Instant::now() + Duration::from_secs(120));
    loop {
        let seen = c.int(&["LLEN", &q]);
        if seen == jobs {
            break;
        }
        between += usize::from(seen > 0);
        assert!(Instant::now() < deadline, "the backlog was not promoted: {seen} of {jobs}");
    }
    let ticks = c.timer_ticks() - ticks_before;
    assert!(ticks >= 3, "the backlog took {ticks} ticks: too few to tell");
    assert!(between >= 2, "{between} replies came while {ticks} ticks worked the backlog: the timer held the server");
}

#[test]
fn the_timer_does_not_write_while_clients_are_paused() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "600"]));
    let mut c = s.conn();
    let n = ns("paused");
    let q = format!("{n}:queue:q");
    // Just after a second starts, so that the next bucket is due in 0.5-1 s.
    wait_until(10, "the start of a second", || c.server_ms() % 1000 < 300);
    let next = (c.server_ms() / 1000 + 1) * 1000;
    c.ok(&["TQ.ENQUEUEAT", &n, &next.to_string(), "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "l", "c"]);
    c.ok(&["TQ.POP", &n, "w", "l"]);
    // The pause outlasts the checks below by 2 s: a busy machine may stall
    // this thread between the last check and the digest.
    c.ok(&["CLIENT", "PAUSE", "4000", "WRITE"]);
    let paused_at = Instant::now();
    let digest = c.digest();
    while paused_at.elapsed() < Duration::from_millis(2000) {
        assert_eq!(c.int(&["LLEN", &q]), 0, "promoted during CLIENT PAUSE");
        assert!(!c.inflight(&n, "w").expect("in-flight").lost(), "a lease given back during CLIENT PAUSE");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(c.server_ms() > next + 500, "the machine is too slow for this test");
    assert_eq!(c.digest(), digest, "the dataset changed during CLIENT PAUSE");
    // After the pause, all of it.
    c.wait_llen(&q, 1, 10);
    wait_until(10, "the lease given back", || c.inflight(&n, "w").is_some_and(|e| e.lost()));
    assert_eq!(c.lrange(&format!("{n}:queue:l")), vec![job("l", "c", "[]")]);
}

/// A port that accepts connections (the kernel's backlog) but never
/// answers: a replica pointed at it stays a replica with its link down.
fn silent_primary() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

#[test]
fn a_replica_never_writes_and_takes_over_once_promoted() {
    let settings = ["lease-ms", "4000"];
    let primary = Server::start_with(Opts::timer_with(&settings).with_args(&["--repl-diskless-sync-delay", "0"]));
    let replica = start_replica(primary.port, Opts::timer_with(&settings));
    let mut p = primary.conn();
    let mut r = replica.conn();
    let n = ns("failover");
    let k = |s: &str| format!("{n}:{s}");

    // A periodic task whose next instance is due in ~4 s, a delayed job due
    // in 4.5-5.5 s, a job whose lease runs out in 4 s: all after the cut,
    // with seconds to spare for a loaded machine.
    assert_eq!(p.int(&["TQ.RECUR", &n, "Tick", "rq", "4000"]), 1);
    p.wait_llen(&k("queue:rq"), 1, 10);
    p.ok(&["TQ.POP", &n, "wr", "rq"]);
    assert_eq!(p.ack(&n, "wr"), Value::Okay);
    let bucket = p.int(&["TQ.ENQUEUEIN", &n, "4500", "q", "c", "[1]"]);
    p.ok(&["TQ.ENQUEUE", &n, "l", "c", "[2]"]);
    p.ok(&["TQ.ENQUEUE", &n, "l", "c", "[3]"]);
    p.ok(&["TQ.POP", &n, "w", "l"]);
    let lease_until = p.inflight(&n, "w").expect("in-flight").lease_until_ms;
    // WAIT asks the replica for its offset at once; waiting for its
    // once-a-second ACK in INFO took seconds of the lease on a busy machine.
    assert_eq!(p.int(&["WAIT", "1", "5000"]), 1, "the replica acknowledged the writes");

    // Cut the replica off: still a replica, its link down.
    let (_listener, dead) = silent_primary();
    r.ok(&["REPLICAOF", "127.0.0.1", &dead.to_string()]);
    assert_eq!(r.info_field("replication", "role").as_deref(), Some("slave"));
    assert!(r.server_ms() < lease_until, "the machine is too slow for this test: the lease ran out before the cut");
    assert_eq!(r.int(&["LLEN", &k("queue:rq")]), 0, "the periodic task's next instance came before the cut");
    assert_eq!(r.int(&["LLEN", &k("queue:q")]), 0);
    assert!(!r.inflight(&n, "w").expect("in-flight on the replica").lost());
    let frozen = r.digest();
    let everything_due = (u64::try_from(bucket).expect("bucket") * 1000).max(lease_until) + 800;

    // Everything comes due on the primary, whose timer moves it ...
    wait_until(30, "the primary's timer moving everything", || {
        p.int(&["LLEN", &k("queue:q")]) == 1
            && p.int(&["LLEN", &k("queue:rq")]) == 1
            && p.inflight(&n, "w").is_some_and(|e| e.lost())
    });
    assert_eq!(p.lrange(&k("queue:l")), vec![job("l", "c", "[2]"), job("l", "c", "[3]")]);
    // ... while the replica's timer writes nothing.
    while r.server_ms() < everything_due {
        assert_eq!(r.digest(), frozen, "a replica's timer wrote");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(r.digest(), frozen, "a replica's timer wrote");
    assert_eq!(r.int(&["LLEN", &k("queue:q")]), 0);
    assert_eq!(r.int(&["LLEN", &k("queue:rq")]), 0);
    assert_eq!(r.lrange(&k("queue:l")), vec![job("l", "c", "[3]")]);

    // Failover: the promoted replica promotes, gives back, enqueues.
    r.ok(&["REPLICAOF", "NO", "ONE"]);
    wait_until(30, "the new primary's timer moving everything", || {
        r.int(&["LLEN", &k("queue:q")]) == 1
            && r.int(&["LLEN", &k("queue:rq")]) == 1
            && r.inflight(&n, "w").is_some_and(|e| e.lost())
    });
    assert_eq!(r.lrange(&k("queue:q")), vec![job("q", "c", "[1]")]);
    assert_eq!(r.lrange(&k("queue:l")), vec![job("l", "c", "[2]"), job("l", "c", "[3]")]);
    assert_eq!(r.lrange(&k("queue:rq")), vec![job("rq", "Tick", "[]")]);
    assert!(r.ack_err(&n, "w").starts_with("LEASELOST"));
    assert_eq!(r.int(&["EXISTS", &k("delayed_queue_schedule")]), 0);
    // And keeps serving: the periodic task goes on, a new lease runs out.
    r.ok(&["TQ.POP", &n, "wr", "rq"]);
    r.ack(&n, "wr");
    r.wait_llen(&k("queue:rq"), 1, 30);
    r.ok(&["CONFIG", "SET", "tq.lease-ms", "200"]);
    r.ok(&["TQ.POP", &n, "w2", "q"]);
    wait_until(30, "a lease given back by the new primary", || r.inflight(&n, "w2").is_some_and(|e| e.lost()));
    assert_eq!(r.lrange(&k("queue:q")), vec![job("q", "c", "[1]")]);
}

/// Writes timed work in three namespaces: a delayed job (due in ~3 s), a
/// job whose lease runs out (lease-ms of the server), and a periodic task
/// whose next instance is due in ~3 s. Returns the namespaces and the
/// earliest server time the delayed job may reach its queue.
fn timed_work(c: &mut Conn) -> (String, String, String, u64) {
    let (nd, nl, nr) = (ns("restart-delayed"), ns("restart-lease"), ns("restart-recur"));
    assert_eq!(c.int(&["TQ.RECUR", &nr, "Tick", "rq", "3000"]), 1);
    c.wait_llen(&format!("{nr}:queue:rq"), 1, 10);
    c.ok(&["TQ.POP", &nr, "wr", "rq"]);
    c.ack(&nr, "wr");
    // The job is due 3 s after the server handles the ENQUEUEIN: no
    // earlier than 3 s after this reading. (Its bucket's second may start
    // up to 500 ms before that: tq promotes by the time asked for.)
    let before = c.server_ms();
    c.int(&["TQ.ENQUEUEIN", &nd, "3000", "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &nl, "q", "c", "[2]"]);
    c.ok(&["TQ.POP", &nl, "w", "q"]);
    (nd, nl, nr, before + 3000)
}

/// Nothing of the timed work has come due yet (else the test proves
/// nothing about the restart).
fn assert_nothing_due_yet(c: &mut Conn, (nd, nl, nr, _): &(String, String, String, u64)) {
    let slow = "the machine is too slow for this test";
    assert!(!c.inflight(nl, "w").expect("in-flight").lost(), "{slow}: the lease ran out before the restart");
    assert_eq!(c.int(&["LLEN", &format!("{nd}:queue:q")]), 0, "{slow}: promoted before the restart");
    assert_eq!(c.int(&["LLEN", &format!("{nr}:queue:rq")]), 0, "{slow}: periodic task due before the restart");
}

/// After a restart, without any TQ command: the timer finds the three
/// namespaces and serves them.
fn check_timed_work_served(c: &mut Conn, (nd, nl, nr, due): &(String, String, String, u64)) {
    let seen = c.wait_llen(&format!("{nd}:queue:q"), 1, 30);
    assert!(seen >= *due, "promoted at {seen}, before its time ({due} at the earliest)");
    wait_until(30, "the lease given back after the restart", || {
        c.lrange(&format!("{nl}:queue:q")) == vec![job("q", "c", "[2]")]
    });
    c.wait_llen(&format!("{nr}:queue:rq"), 1, 30);
    // Only now a TQ command: the state is what the timer left.
    assert!(c.inflight(nl, "w").expect("tombstone").lost());
    assert!(c.ack_err(nl, "w").starts_with("LEASELOST"));
    let recurs = c.ok(&["TQ.RECURS", nr]);
    match recurs {
        Value::Array(rows) => assert_eq!(rows.len(), 1, "{rows:?}"),
        other => panic!("TQ.RECURS: {other:?}"),
    }
    assert_eq!(popped_job(c.ok(&["TQ.POP", nr, "wr", "rq"])), Some(("rq".to_string(), job("rq", "Tick", "[]"))));
    c.ack(nr, "wr");
}

#[test]
fn restart_with_aof_finds_the_timed_namespaces_again() {
    let opts =
        || Opts::timer_with(&["lease-ms", "2000"]).with_args(&["--appendonly", "yes", "--appendfsync", "always"]);
    let s = Server::start_with(opts());
    let mut c = s.conn();
    let work = timed_work(&mut c);
    assert_nothing_due_yet(&mut c, &work);
    let dir = s.kill_keep_dir();
    let s = Server::restart_in(&dir, opts());
    let mut c = s.conn();
    check_timed_work_served(&mut c, &work);
}

#[test]
fn restart_with_rdb_finds_the_timed_namespaces_again() {
    let opts = || Opts::timer_with(&["lease-ms", "2000"]);
    let s = Server::start_with(opts());
    let mut c = s.conn();
    let work = timed_work(&mut c);
    assert_eq!(c.ok(&["SAVE"]), Value::Okay);
    assert_nothing_due_yet(&mut c, &work);
    let dir = s.kill_keep_dir();
    let s = Server::restart_in(&dir, opts());
    let mut c = s.conn();
    check_timed_work_served(&mut c, &work);
}

#[test]
fn debug_reload_keeps_the_timed_namespaces() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "2000"]));
    let mut c = s.conn();
    let work = timed_work(&mut c);
    assert_eq!(c.ok(&["DEBUG", "RELOAD"]), Value::Okay);
    assert_nothing_due_yet(&mut c, &work);
    check_timed_work_served(&mut c, &work);
}

fn commandstats(c: &mut Conn) -> BTreeSet<String> {
    c.string(&["INFO", "commandstats"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_").and_then(|l| l.split(':').next()).map(str::to_string))
        .collect()
}

#[test]
fn timer_moves_replicate_to_replicas_with_and_without_the_module() {
    let primary = Server::start_with(
        Opts::timer_with(&["lease-ms", "300", "max-deliveries", "2"]).with_args(&["--repl-diskless-sync-delay", "0"]),
    );
    let plain = start_replica(primary.port, Opts { module: false, ..Opts::default() });
    let with_module = start_replica(primary.port, Opts::timer_with(&["lease-ms", "300", "max-deliveries", "2"]));
    let mut p = primary.conn();
    let mut r = plain.conn();
    let mut m = with_module.conn();
    assert!(!r.has_tq(), "the server has no module");
    let n = ns("repl-timer");
    let k = |s: &str| format!("{n}:{s}");

    // A worker whose heartbeat runs out, a broadcast.
    p.beat(&n, "gone", "200");
    p.beat(&n, "bw", "60000");
    assert_eq!(p.int(&["TQ.BROADCAST", &n, "Reload"]), 2);
    assert_eq!(popped_job(p.ok(&["TQ.BPOP", &n, "bw", "none", "1000"])).expect("broadcast job").0, "tq:broadcast");
    p.ack(&n, "bw");

    // A periodic task every 200 ms, run by a worker thread that polls
    // (a pop served to a *blocked* TQ.BPOP is not replicated completely:
    // see blocking.rs, `a_pop_served_to_a_blocked_bpop_is_replicated`).
    p.ok(&["TQ.RECUR", &n, "Tick", "rq", "200"]);
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (port, n, stop) = (primary.port, n.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut c = connect(port);
            let mut runs = 0;
            while !stop.load(Ordering::SeqCst) {
                if popped_job(c.ok(&["TQ.POP", &n, "runner", "rq"])).is_some() {
                    std::thread::sleep(Duration::from_millis(10));
                    c.ack(&n, "runner");
                    runs += 1;
                } else {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            runs
        })
    };
    // Delayed jobs due in ~1-2 s (tq's and node-resque's), one long due.
    for i in 0..5 {
        p.ok(&["TQ.ENQUEUEIN", &n, &(1000 + i * 200).to_string(), "dq", "c", &format!("[{i}]")]);
    }
    p.ok(&["TQ.ENQUEUEAT", &n, "1000", "dq", "c", "[\"old\"]"]);
    let ts = (p.server_ms() / 1000 + 2).to_string();
    let node_job = job("dq", "NodeJob", "[]");
    p.ok(&["RPUSH", &k(&format!("delayed:{ts}")), &node_job]);
    p.ok(&["SADD", &k(&format!("timestamps:{node_job}")), &format!("delayed:{ts}")]);
    p.ok(&["ZADD", &k("delayed_queue_schedule"), &ts, &ts]);
    // Leases that run out: one given back, then failed (max-deliveries 2).
    p.ok(&["TQ.ENQUEUE", &n, "lq", "c", "[\"lost\"]"]);
    p.ok(&["TQ.POP", &n, "w1", "lq"]);
    wait_until(30, "the first lease given back", || p.inflight(&n, "w1").is_some_and(|e| e.lost()));
    p.ok(&["TQ.POP", &n, "w2", "lq"]);
    wait_until(30, "the second lease failing the job", || p.inflight(&n, "w2").is_some_and(|e| e.lost()));
    wait_until(30, "every delayed job promoted", || p.int(&["EXISTS", &k("delayed_queue_schedule")]) == 0);
    wait_until(30, "the dead worker forgotten", || p.bytes(&["ZSCORE", &k("tq:alive"), "gone"]).is_none());
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::SeqCst);
    let runs = runner.join().expect("runner");
    assert!(runs >= 5, "the periodic task ran {runs} times");
    assert_eq!(p.int(&["TQ.UNRECUR", &n, "Tick", "rq"]), 1);
    assert_eq!(p.int(&["LLEN", &k("queue:dq")]), 7);
    assert_eq!(p.int(&["LLEN", &k("failed")]), 1);
    assert_eq!(p.int(&["EXISTS", &k("tq:leases")]), 0);

    // Quiet now: the replicas hold what the primary holds.
    wait_until(60, "the same dataset on the primary and both replicas", || {
        wait_replicas_synced(&mut p, 2);
        let d = p.digest();
        r.digest() == d && m.digest() == d && p.digest() == d
    });
    let stats = commandstats(&mut r);
    assert!(!stats.iter().any(|s| s.starts_with("tq.")), "{stats:?}");
    for must in ["lpush", "rpush", "lpop", "zrem", "hset", "del", "incr"] {
        assert!(stats.contains(must), "no cmdstat_{must} on the plain replica: {stats:?}");
    }
    for replica in [&plain, &with_module] {
        assert!(!replica.log().contains("sending an error to its master"), "{}", replica.log());
    }
}
