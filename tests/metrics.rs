//! The job metrics the module keeps (`tq_core::metrics`): counted in the
//! same step as the job's move (in the worker's in-flight entry, then in
//! the minute's record), replicated as plain commands, closed by the timer
//! (TTL, hour record, totals) on the primary, and confined to the namespace
//! whatever a client writes into their keys.

mod common;

use common::rng::Rng;
use common::*;
use std::collections::VecDeque;
use std::time::Duration;

use tq_core::metrics::{self, Clock, Tally};

fn tally(c: &mut Conn, key: &str) -> Tally {
    let raw = c.bytes(&["GET", key]).unwrap_or_else(|| panic!("{key} written"));
    Tally::decode(&raw).expect("a tally tq can decode")
}

fn pair(q: &str, class: &str) -> String {
    String::from_utf8(metrics::pair(q.as_bytes(), class.as_bytes())).expect("utf-8")
}

/// The members of the namespace's open minutes (`<minute>:<pair>`).
fn open_minutes(c: &mut Conn, n: &str) -> Vec<String> {
    c.strings(&["ZRANGE", &format!("{n}:tq:mopen"), "0", "-1"])
}

#[test]
fn a_job_is_counted_in_its_minute_and_the_counts_replicate() {
    let p = Server::start_with(Opts { args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..Opts::default() });
    let r = start_replica(p.port, Opts { module: false, ..Opts::default() });
    let mut c = p.conn();
    let n = ns("metrics");
    c.ok(&["TQ.ENQUEUE", &n, "q", "Mail", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "Mail", "[2]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "Mail", "[3]"]);
    // The queue's clock dates the jobs waiting.
    let clock = Clock::decode(&c.bytes(&["GET", &format!("{n}:tq:clock:q")]).expect("clock")).expect("decodes");
    let now = c.server_ms();
    let head = c.bytes(&["LINDEX", &format!("{n}:queue:q"), "0"]).expect("a head");
    assert!(clock.head_age_ms(now, Some(&head)).is_some_and(|age| age < 60_000), "{clock:?}");
    c.ok(&["TQ.POP", &n, "w", "q"]);
    let e = c.inflight(&n, "w").expect("entry");
    assert_eq!(e.class, b"Mail");
    assert!(e.wait_ms.is_some(), "the wait is known: {e:?}");
    c.ack(&n, "w");
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.fail(&n, "w", &["E", "boom"]);
    // POP ... ACK: the completion is counted.
    c.ok(&["TQ.POP", &n, "w", "q"]);
    let d = c.delivery(&n, "w");
    c.ok(&["TQ.POP", &n, "w", "q", "ACK", &d]);
    // The worker's entry holds the three until a report a second on, the
    // end of the minute, or the worker stopping writes them to the record.
    let held = c.inflight(&n, "w").and_then(|e| e.open).expect("an open tally");
    let t = held.tally.tally().expect("a tally");
    assert_eq!((t.processed, t.failed, t.run.count(), t.wait.count()), (2, 1, 3, 3));
    assert!(open_minutes(&mut c, &n).is_empty());
    assert!(c.ok(&["ZSCORE", &format!("{n}:tq:mflush"), "w"]) != Value::Nil, "noted for the timer");
    c.ok(&["TQ.UNTRACK", &n, "w", "q"]);
    // The tally and its note for the timer go together.
    assert_eq!(c.ok(&["ZSCORE", &format!("{n}:tq:mflush"), "w"]), Value::Nil);
    let open = open_minutes(&mut c, &n);
    assert_eq!(open.len(), 1, "{open:?}");
    let (minute, pair_name) = open[0].split_once(':').expect("minute:pair");
    assert_eq!(pair_name, pair("q", "Mail"));
    let key = format!("{n}:tq:m:{minute}:{pair_name}");
    let t = tally(&mut c, &key);
    assert_eq!((t.processed, t.failed, t.run.count(), t.wait.count()), (2, 1, 3, 3));
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:tq:metrics")]), vec![pair("q", "Mail")]);
    // No TTL while the minute is open.
    assert_eq!(c.int(&["PTTL", &key]), -1);
    wait_replicas_synced(&mut c, 1);
    let mut rc = r.conn();
    assert_eq!(rc.bytes(&["GET", &key]), c.bytes(&["GET", &key]));
    assert_eq!(rc.digest(), c.digest());
    assert!(!r.log().contains("sending an error to its master"));
}

#[test]
fn the_timer_closes_a_minute_after_a_reload_and_the_replica_follows() {
    let p = Server::start_with(Opts { args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..Opts::default() });
    let r = start_replica(p.port, Opts { module: false, ..Opts::default() });
    let mut c = p.conn();
    let n = ns("close");
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ack(&n, "w");
    c.ok(&["TQ.UNTRACK", &n, "w", "q"]);
    let member = open_minutes(&mut c, &n).pop().expect("an open minute");
    let (minute, pair_name) = member.split_once(':').expect("minute:pair");
    let key = format!("{n}:tq:m:{minute}:{pair_name}");
    // The registry is rebuilt from the keyspace after a reload.
    c.ok(&["DEBUG", "RELOAD"]);
    // The minute made due now, as if it were over: the timer closes it.
    c.ok(&["ZADD", &format!("{n}:tq:mopen"), "0", &member]);
    wait_until(30, "the minute closed", || open_minutes(&mut c, &n).is_empty());
    let minute: u64 = minute.parse().expect("minute");
    let expires = c.int(&["PEXPIRETIME", &key]);
    assert_eq!(u64::try_from(expires).expect("a TTL"), (minute + 1) * metrics::MINUTE_MS + metrics::MINUTE_KEEP_MS);
    let hour = minute * metrics::MINUTE_MS / metrics::HOUR_MS;
    let hkey = format!("{n}:tq:h:{hour}:{pair_name}");
    assert_eq!(tally(&mut c, &hkey).processed, 1);
    assert!(c.int(&["PTTL", &hkey]) > 0);
    assert_eq!(tally(&mut c, &format!("{n}:tq:t:{pair_name}")).processed, 1);
    c.wait_tallies_written(&n);
    wait_replicas_synced(&mut c, 1);
    let mut rc = r.conn();
    assert_eq!(rc.int(&["PEXPIRETIME", &key]), expires);
    assert_eq!(rc.digest(), c.digest());
}

#[test]
fn what_a_client_writes_in_the_open_minutes_reaches_no_key_outside_the_namespace() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("confined");
    let other = ns("other");
    // A tally-shaped value elsewhere, and members naming it every way.
    let secret = format!("{other}:tq:m:1:{}", pair("q", "C"));
    c.ok(&["SET", &secret, "keep"]);
    let open = format!("{n}:tq:mopen");
    for m in [format!("1:{}", pair("q", "C")), format!("1:../{other}"), "x".to_string(), format!("1:{secret}")] {
        c.ok(&["ZADD", &open, "0", &m]);
    }
    wait_until(30, "the members handled", || open_minutes(&mut c, &n).is_empty());
    assert_eq!(c.string(&["GET", &secret]).as_deref(), Some("keep"));
    assert_eq!(c.int(&["PTTL", &secret]), -1);
    let keys = c.strings(&["KEYS", &format!("{other}*")]);
    assert_eq!(keys, vec![secret]);
}

#[test]
fn with_metrics_off_no_metric_key_is_written() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("off");
    c.ok(&["CONFIG", "SET", "tq.metrics", "no"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ack(&n, "w");
    let keys = c.strings(&["KEYS", &format!("{n}:tq:*")]);
    assert!(
        keys.iter().all(|k| !k.contains(":tq:m") && !k.contains(":tq:clock") && !k.ends_with(":tq:metrics")),
        "{keys:?}"
    );
    c.ok(&["CONFIG", "SET", "tq.metrics", "yes"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ack(&n, "w");
    assert!(c.inflight(&n, "w").is_some_and(|e| e.open.is_some()));
    assert_eq!(c.strings(&["ZRANGE", &format!("{n}:tq:mflush"), "0", "-1"]), vec!["w".to_string()]);
}

/// A worker that went idle, or died, leaves jobs counted in its entry: the
/// timer writes them once their minute is over (here a minute long past,
/// written as an entry of a worker that died then), after a reload too, and
/// the replica follows.
#[test]
fn the_timer_writes_what_an_idle_workers_entry_still_holds() {
    let p = Server::start_with(Opts { args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..Opts::default() });
    let r = start_replica(p.port, Opts { module: false, ..Opts::default() });
    let mut c = p.conn();
    let n = ns("idle");
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ack(&n, "w");
    let mut e = c.inflight(&n, "w").expect("a tombstone");
    let open = e.open.as_mut().expect("an open tally");
    open.minute -= 10;
    let minute = open.minute;
    let entry = format!("{n}:tq:inflight:w");
    let ttl = c.int(&["PEXPIRETIME", &entry]);
    c.ok(&[b"SET".to_vec(), entry.clone().into_bytes(), e.encode()]);
    c.ok(&["PEXPIREAT", &entry, &ttl.to_string()]);
    c.ok(&["DEBUG", "RELOAD"]);
    c.ok(&["ZADD", &format!("{n}:tq:mflush"), "0", "w"]);
    let key = format!("{n}:tq:m:{minute}:{}", pair("q", "C"));
    wait_until(30, "the tally written", || c.int(&["EXISTS", &key]) == 1);
    assert_eq!(tally(&mut c, &key).processed, 1);
    assert_eq!(c.inflight(&n, "w").and_then(|e| e.open), None);
    assert_eq!(c.int(&["PEXPIRETIME", &entry]), ttl, "the tombstone keeps its TTL");
    // Its minute long over, the timer closes it too.
    wait_until(30, "the minute closed", || open_minutes(&mut c, &n).is_empty());
    assert!(c.int(&["PTTL", &key]) > 0);
    wait_replicas_synced(&mut c, 1);
    assert_eq!(r.conn().digest(), c.digest());
}

#[test]
fn a_metric_key_of_another_type_never_fails_a_report() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("foreign");
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    let minute = c.server_ms() / metrics::MINUTE_MS;
    // The minute the ACK will write in (or the next, if it turns meanwhile).
    for m in [minute, minute + 1] {
        c.ok(&["RPUSH", &format!("{n}:tq:m:{m}:{}", pair("q", "C")), "x"]);
    }
    c.ok(&["DEL", &format!("{n}:tq:clock:q")]);
    c.ok(&["HSET", &format!("{n}:tq:clock:q"), "f", "v"]);
    c.ack(&n, "w");
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ack(&n, "w");
    assert_eq!(c.stat(&n, "processed"), 2);
    assert_eq!(c.string(&["TYPE", &format!("{n}:tq:clock:q")]).as_deref(), Some("hash"));
}

/// Checks that a command writes nothing compare the dataset's digest before
/// and after it. The first digest comes from `Conn::quiet_digest`, which
/// waits while a write of the timer is due within its window, lest that
/// write land between the two: here a worker's tally, due 2 s after its job
/// ended, is written before the digest is taken.
#[test]
fn a_quiet_digest_waits_for_a_tally_due_within_its_window() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("quiet");
    // Far from a minute's end, so that the tally is due 2 s after the ACK.
    while c.server_ms() % 60_000 > 50_000 {
        std::thread::sleep(Duration::from_millis(200));
    }
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ack(&n, "w");
    let flush = format!("{n}:tq:mflush");
    let due = c.string(&["ZSCORE", &flush, "w"]).and_then(|d| d.parse::<f64>().ok()).expect("noted for the timer");
    while (c.server_ms() as f64) + 1_000.0 < due {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(c.int(&["ZCARD", &flush]), 1, "the machine is too slow for this test: the tally was written already");
    let before = c.quiet_digest();
    assert_eq!(c.int(&["ZCARD", &flush]), 0, "the digest was taken before a tally due within its window was written");
    assert_eq!(c.digest(), before);
}

/// `tq.metrics-flush-ms` sets how long each new tally gathers jobs before
/// the timer (or the worker's next report) writes it to its record.
#[test]
fn the_flush_interval_is_a_setting() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("flush-ms");
    for bad in ["99", "60001", "2s"] {
        let e = c.err(&["CONFIG", "SET", "tq.metrics-flush-ms", bad]);
        assert!(e.contains("tq.metrics-flush-ms"), "{bad}: {e}");
    }
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.metrics-flush-ms"]), ["tq.metrics-flush-ms", "2000"]);
    // Far from a minute's end, which would write the tallies sooner.
    while c.server_ms() % 60_000 > 40_000 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let flush = format!("{n}:tq:mflush");
    let due_of = |c: &mut Conn, w: &str| {
        c.string(&["ZSCORE", &flush, w]).and_then(|d| d.parse::<f64>().ok()).expect("noted for the timer") as u64
    };
    c.ok(&["CONFIG", "SET", "tq.metrics-flush-ms", "15000"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[2]"]);
    c.ok(&["TQ.POP", &n, "slow", "q"]);
    let before = c.server_ms();
    c.ack(&n, "slow");
    let after = c.server_ms();
    let due = due_of(&mut c, "slow");
    assert!((before + 15_000..=after + 15_000).contains(&due), "{before} {due} {after}");
    // A tally started after the change is due 100 ms on, and written then
    // by the timer, while the first one still waits for its due time.
    c.ok(&["CONFIG", "SET", "tq.metrics-flush-ms", "100"]);
    c.ok(&["TQ.POP", &n, "fast", "q"]);
    let before = c.server_ms();
    c.ack(&n, "fast");
    assert!((before + 100..=c.server_ms() + 100).contains(&due_of(&mut c, "fast")));
    wait_until(10, "the timer writing the 100 ms tally", || c.ok(&["ZSCORE", &flush, "fast"]) == Value::Nil);
    let open = open_minutes(&mut c, &n);
    assert_eq!(open.len(), 1, "{open:?}");
    let (minute, pair_name) = open[0].split_once(':').expect("minute:pair");
    assert_eq!(tally(&mut c, &format!("{n}:tq:m:{minute}:{pair_name}")).processed, 1, "only the 100 ms tally");
    assert!(c.server_ms() < due, "the machine is too slow for this test: the 15 s tally is due already");
    assert_eq!(due_of(&mut c, "slow"), due);
    assert!(c.inflight(&n, "slow").and_then(|e| e.open).is_some(), "still held by the worker's entry");
}

/// The job metrics of namespace `n` in its minutes' records, once the timer
/// wrote the open tallies: (jobs processed, jobs whose wait was known).
fn processed_and_dated(c: &mut Conn, n: &str) -> (u64, u64) {
    c.wait_tallies_written(n);
    let keys = c.strings(&["KEYS", &format!("{n}:tq:m:*")]);
    keys.iter().map(|k| tally(c, k)).fold((0, 0), |(p, w), t| (p + t.processed, w + t.wait.count()))
}

/// Queue `q`'s clock in namespace `n`, decoded.
fn clock_of(c: &mut Conn, n: &str) -> Clock {
    Clock::decode(&c.bytes(&["GET", &format!("{n}:tq:clock:q")]).expect("a clock")).expect("a clock tq can decode")
}

/// Worker `w` of namespace `n` takes `job` from queue `q`, acknowledging
/// `ack` in the same step when given; its delivery id.
fn take(c: &mut Conn, n: &str, ack: Option<&str>, job: &str) -> String {
    let reply = match ack {
        Some(d) => c.ok(&["TQ.POP", n, "w", "q", "ACK", d]),
        None => c.ok(&["TQ.POP", n, "w", "q"]),
    };
    taken_job(reply).unwrap_or_else(|| panic!("{job} taken")).2
}

/// A take dates its job by its queue's clock. The module keeps a copy of
/// the clock a take read, so that the next take need not open the key;
/// whatever removes the key drops the copy: a DEL, a RENAME, an expiry set
/// (the keyspace events), and a clock read with an expiry is not copied (it
/// could expire unseen: active expiry is off here, so only a read finds
/// it gone). Each time job 3, taken after the change, has no clock to be
/// dated by: its wait is unknown, not taken from a copy.
#[test]
fn a_take_never_dates_its_job_by_a_clock_the_key_no_longer_holds() {
    let s = Server::start();
    let mut c = s.conn();
    c.ok(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]);
    for change in ["DEL", "RENAME", "PEXPIRE", "read with an expiry"] {
        let n = ns("copy");
        let clock = format!("{n}:tq:clock:q");
        // Twins: the clock samples the first only, so job 2's take reads the
        // clock without rewriting it (a rewrite drops the copy), and keeps
        // a copy.
        for _ in 0..3 {
            c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[1]"]);
        }
        let d1 = take(&mut c, &n, None, "job 1");
        if change == "read with an expiry" {
            c.ok(&["PEXPIRE", &clock, "200"]);
        }
        let d2 = take(&mut c, &n, Some(&d1), "job 2");
        match change {
            "DEL" => assert_eq!(c.int(&["DEL", &clock]), 1),
            "RENAME" => assert_eq!(c.ok(&["RENAME", &clock, &format!("{n}:elsewhere")]), Value::Okay),
            "PEXPIRE" => {
                assert_eq!(c.int(&["PEXPIRE", &clock, "100"]), 1);
                std::thread::sleep(Duration::from_millis(200));
            }
            _ => std::thread::sleep(Duration::from_millis(300)),
        }
        let d3 = take(&mut c, &n, Some(&d2), "job 3");
        assert_eq!(c.ok(&["TQ.ACK", &n, "w", &d3]), Value::Okay);
        assert_eq!(processed_and_dated(&mut c, &n), (3, 2), "{change}: job 3 dated by a clock its key no longer held");
    }
}

/// A take that rewrites its queue's clock (its job was sampled) drops the
/// copy it read: later takes read what was written. Jobs 1 and 2 are
/// sampled; job 3, a twin of job 1 pushed while job 1 waited, is not. Once
/// jobs 1 and 2 are taken, the clock holds no sample, and job 3 is dated
/// by job 2's arrival without a write; a take working from the copy read
/// by job 1's take would date job 3 by job 1's sample and write that copy
/// back.
#[test]
fn a_take_after_a_rewritten_clock_reads_what_was_written() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("rewritten");
    for args in ["[1]", "[2]", "[1]"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", "C", args]);
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(clock_of(&mut c, &n).samples.len(), 2, "jobs 1 and 2 sampled");
    let d1 = take(&mut c, &n, None, "job 1");
    let d2 = take(&mut c, &n, Some(&d1), "job 2");
    let after_2 = clock_of(&mut c, &n);
    assert_eq!(after_2.samples, Vec::new());
    let d3 = take(&mut c, &n, Some(&d2), "job 3");
    assert_eq!(clock_of(&mut c, &n), after_2, "job 3 dated by a sample its clock no longer held");
    assert_eq!(c.ok(&["TQ.ACK", &n, "w", &d3]), Value::Okay);
    assert_eq!(processed_and_dated(&mut c, &n), (3, 3));
}

/// A push that samples its job rewrites the clock, and drops any copy of
/// it: the take of that job finds its sample (and removes it), where a take
/// working from the copy read before the push would not know it.
#[test]
fn a_take_after_a_push_reads_the_clock_it_wrote() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("pushed");
    for _ in 0..3 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[1]"]);
    }
    // Job 1 was sampled; job 2's take reads the clock and keeps a copy.
    let d1 = take(&mut c, &n, None, "job 1");
    let d2 = take(&mut c, &n, Some(&d1), "job 2");
    std::thread::sleep(Duration::from_millis(5));
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[2]"]);
    assert_eq!(clock_of(&mut c, &n).samples.len(), 1, "job 4 sampled");
    let d3 = take(&mut c, &n, Some(&d2), "job 3");
    let d4 = take(&mut c, &n, Some(&d3), "job 4");
    assert_eq!(clock_of(&mut c, &n).samples, Vec::new(), "job 4's take did not find its sample");
    assert_eq!(c.ok(&["TQ.ACK", &n, "w", &d4]), Value::Okay);
    assert_eq!(processed_and_dated(&mut c, &n), (4, 4));
}

/// SWAPDB and FLUSHDB change what a database holds without an event for
/// each key: every copy of a clock goes. After each, the queue holds jobs
/// pushed by a plain RPUSH (as node-resque does), which no clock dates.
#[test]
fn a_swapped_or_flushed_database_keeps_no_copy_of_a_clock() {
    let s = Server::start();
    let mut c = s.conn();
    for change in ["SWAPDB", "FLUSHDB"] {
        let n = ns("swapped");
        for _ in 0..3 {
            c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[1]"]);
        }
        // Job 2's take reads the clock without rewriting it, and keeps a copy.
        let d1 = take(&mut c, &n, None, "job 1");
        let d2 = take(&mut c, &n, Some(&d1), "job 2");
        assert_eq!(c.ok(&["TQ.ACK", &n, "w", &d2]), Value::Okay);
        c.wait_tallies_written(&n);
        if change == "SWAPDB" {
            c.ok(&["SWAPDB", "0", "1"]);
        } else {
            c.ok(&["FLUSHDB"]);
        }
        c.ok(&["RPUSH", &format!("{n}:queue:q"), &job("q", "C", "[2]")]);
        let (_, _, d, _) = taken_job(c.ok(&["TQ.POP", &n, "w2", "q"])).expect("the plain job");
        assert_eq!(c.ok(&["TQ.ACK", &n, "w2", &d]), Value::Okay);
        assert_eq!(processed_and_dated(&mut c, &n), (1, 0), "{change}: a job no clock dates dated by a copy");
        c.ok(&["FLUSHALL"]);
    }
}

/// A seeded random sequence on one queue: pushes by tq and by a plain
/// RPUSH (twins among them), takes, pauses of a few milliseconds, and
/// changes to the clock's key made by other commands (DEL, RENAME away and
/// back, COPY of an older clock over it, an expiry reached, SWAPDB,
/// FLUSHDB, DEBUG RELOAD). After every take, the clock holds what that take
/// had to make of the key as it was just before it (read with GET): its
/// job's sample and the ones before it gone, or nothing changed. A take
/// working from a copy of the clock that the key no longer matched writes
/// something else, or nothing. `TQ_CLOCK_SEED=<n>` replays a run (the seed
/// is printed), `TQ_CLOCK_STEPS=<n>` changes its length.
#[test]
fn takes_follow_the_clock_key_through_random_changes() {
    let seed = tq_testkit::rng::seed("TQ_CLOCK_SEED");
    let steps = tq_testkit::rng::steps("TQ_CLOCK_STEPS", 1_500);
    println!("clock run: seed {seed} (TQ_CLOCK_SEED={seed} replays it), {steps} steps");
    let s = Server::start();
    let mut c = s.conn();
    let mut rng = Rng(seed);
    let n = ns("clockrun");
    let (clock, queue, saved) = (format!("{n}:tq:clock:q"), format!("{n}:queue:q"), format!("{n}:saved"));
    let mut held: Option<String> = None;
    let mut history: VecDeque<String> = VecDeque::new();
    let mut takes = 0;
    for step in 0..steps {
        let roll = rng.below(100);
        let what = match roll {
            0..=29 => {
                let args = ["[1]", "[2]", "[3]", "[4]"][rng.below(4)];
                c.ok(&["TQ.ENQUEUE", &n, "q", "C", args]);
                format!("enqueue {args}")
            }
            30..=34 => {
                c.ok(&["RPUSH", &queue, &job("q", "C", "[5]")]);
                "rpush [5]".to_string()
            }
            35..=49 => {
                let ms = rng.range(1, 4);
                std::thread::sleep(Duration::from_millis(ms));
                format!("sleep {ms}")
            }
            50..=84 => {
                let before = c.bytes(&["GET", &clock]);
                let reply = match &held {
                    Some(d) => c.ok(&["TQ.POP", &n, "w", "q", "ACK", d]),
                    None => c.ok(&["TQ.POP", &n, "w", "q"]),
                };
                let Some((_, payload, d, _)) = taken_job(reply) else {
                    held = None;
                    assert_eq!(
                        c.bytes(&["GET", &clock]),
                        before,
                        "seed {seed} step {step}: a pop that took nothing wrote the clock"
                    );
                    continue;
                };
                held = Some(d);
                takes += 1;
                let want = match before.as_deref().and_then(Clock::decode) {
                    Some(mut known) => match known.took(payload.as_bytes()) {
                        (_, true) => Some(known.to_bytes()),
                        (_, false) => before.clone(),
                    },
                    None => before.clone(),
                };
                let got = c.bytes(&["GET", &clock]);
                if got != want {
                    panic!(
                        "seed {seed} (replay: TQ_CLOCK_SEED={seed}) step {step}: the take of {payload} left the clock {:?}, where the key before it makes {:?}; last steps:\n{}",
                        got.as_deref().and_then(Clock::decode),
                        want.as_deref().and_then(Clock::decode),
                        history.iter().cloned().collect::<Vec<_>>().join("\n")
                    );
                }
                format!("take {payload}")
            }
            85..=87 => {
                c.ok(&["DEL", &clock]);
                "del".to_string()
            }
            88..=89 => {
                if c.int(&["EXISTS", &clock]) == 1 {
                    c.ok(&["RENAME", &clock, &format!("{n}:away")]);
                    c.ok(&["RENAME", &format!("{n}:away"), &clock]);
                }
                "rename away and back".to_string()
            }
            90..=92 => {
                // Keep the clock as it is now, or put back one kept before.
                if rng.chance(50) {
                    c.ok(&["COPY", &clock, &saved, "REPLACE"]);
                    "copy to saved".to_string()
                } else {
                    c.ok(&["COPY", &saved, &clock, "REPLACE"]);
                    "copy saved over the clock".to_string()
                }
            }
            93..=94 => {
                c.ok(&["PEXPIRE", &clock, "1"]);
                std::thread::sleep(Duration::from_millis(3));
                "expire".to_string()
            }
            95..=96 => {
                // The worker holds nothing across a change of database.
                if let Some(d) = held.take() {
                    c.ok(&["TQ.ACK", &n, "w", &d]);
                }
                c.ok(&["SWAPDB", "0", "1"]);
                "swapdb".to_string()
            }
            97 => {
                if let Some(d) = held.take() {
                    c.ok(&["TQ.ACK", &n, "w", &d]);
                }
                c.ok(&["FLUSHDB"]);
                "flushdb".to_string()
            }
            _ => {
                c.ok(&["DEBUG", "RELOAD"]);
                "reload".to_string()
            }
        };
        history.push_back(format!("{step}: {what}"));
        if history.len() > 30 {
            history.pop_front();
        }
    }
    assert!(takes > steps / 10, "only {takes} takes in {steps} steps");
}
