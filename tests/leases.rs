//! Leases: every job taken carries a lease (`tq.lease-ms`); TQ.HEARTBEAT
//! extends it; when it runs out the module's timer gives the job back (head
//! of its queue), or after `tq.max-deliveries` deliveries fails it with
//! `TQ::LeaseExpired`; the worker's late ACK/FAIL gets LEASELOST.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Waits until the timer took `worker`'s job back (its index entry is a
/// tombstone).
fn wait_given_back(c: &mut Conn, n: &str, worker: &str) {
    wait_until(30, &format!("the lease of {worker} expiring"), || c.inflight(n, worker).is_some_and(|e| e.lost()));
}

fn failure_records(c: &mut Conn, n: &str) -> Vec<serde_json::Value> {
    c.lrange(&format!("{n}:failed")).iter().map(|r| serde_json::from_str(r).expect("failure record JSON")).collect()
}

#[test]
fn settings_have_their_documented_defaults() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    for (name, want) in
        [("tq.lease-ms", "60000"), ("tq.max-deliveries", "5"), ("tq.auto-promote", "yes"), ("tq.timer-batch", "250")]
    {
        assert_eq!(c.strings(&["CONFIG", "GET", name]), vec![name.to_string(), want.to_string()]);
    }
    // A module argument sets it too.
    let s = Server::start_with(Opts::module_with(&["lease-ms", "500", "max-deliveries", "2"]));
    let mut c = s.conn();
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.lease-ms"])[1], "500");
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.max-deliveries"])[1], "2");
}

#[test]
fn an_expired_lease_puts_the_job_back_at_the_head_of_its_queue() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "400"]));
    let mut c = s.conn();
    let n = ns("expire");
    let q = format!("{n}:queue:q");
    for i in 1..=3 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", &format!("[{i}]")]);
    }
    let got = popped_job(c.ok(&["TQ.POP", &n, "w", "q"]));
    assert_eq!(got, Some(("q".to_string(), job("q", "c", "[1]"))));
    let entry = c.inflight(&n, "w").expect("in-flight");
    assert_eq!(entry.lease_until_ms, entry.popped_ms + 400, "the lease is tq.lease-ms");
    assert_eq!(entry.deliveries, 1);
    assert!(!entry.lost());
    let score = c.string(&["ZSCORE", &format!("{n}:tq:leases"), "w"]).expect("lease in the zset");
    assert_eq!(score.parse::<u64>().expect("score"), entry.lease_until_ms);

    // Not before the lease runs out; soon after.
    let deadline = Instant::now() + Duration::from_secs(30);
    let seen_at = loop {
        let (len, now) = c.llen_at(&q);
        if len == 3 {
            break now;
        }
        assert_eq!(len, 2);
        assert!(Instant::now() < deadline, "the job never came back");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(
        seen_at >= entry.lease_until_ms,
        "given back at {seen_at}, before the lease ran out at {}",
        entry.lease_until_ms
    );
    assert!(seen_at < entry.lease_until_ms + 1500, "given back {} ms late", seen_at - entry.lease_until_ms);

    // At the head, with the in-flight record gone and the count kept.
    assert_eq!(c.lrange(&q), vec![job("q", "c", "[1]"), job("q", "c", "[2]"), job("q", "c", "[3]")]);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:worker:w:q")]), 0);
    assert!(c.inflight(&n, "w").expect("tombstone").lost());
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:leases")]), 0);
    assert_eq!(c.string(&["HGET", &format!("{n}:tq:deliveries"), &job("q", "c", "[1]")]).as_deref(), Some("1"));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:failed")]), 0);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:stat:failed")]), 0);

    // The next worker gets it as a second delivery; completing forgets the count.
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w2", "q"])), Some(("q".to_string(), job("q", "c", "[1]"))));
    assert_eq!(c.inflight(&n, "w2").expect("in-flight").deliveries, 2);
    assert_eq!(c.ack(&n, "w2"), Value::Okay);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:deliveries")]), 0);
    // The worker that lost its job may pop again.
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w", "q"])), Some(("q".to_string(), job("q", "c", "[2]"))));
    assert_eq!(c.inflight(&n, "w").expect("in-flight").deliveries, 1);
    assert_eq!(c.ack(&n, "w"), Value::Okay);
    assert_eq!(c.string(&["GET", &format!("{n}:stat:processed")]).as_deref(), Some("2"));
}

#[test]
fn heartbeats_keep_a_job_across_several_lease_periods() {
    // Beats every ~120 ms against a 1.2 s lease: a loaded machine may stall
    // this thread for most of a second without the lease running out.
    let s = Server::start_with(Opts::module_with(&["lease-ms", "1200"]));
    let mut c = s.conn();
    let n = ns("heartbeat");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(4000) {
        assert_eq!(c.beat(&n, "w", "1200"), 1200);
        let now = c.server_ms();
        let e = c.inflight(&n, "w").expect("in-flight");
        assert!(!e.lost(), "the job was taken back despite heartbeats");
        assert!(e.lease_until_ms > now && e.lease_until_ms <= now + 1200, "lease until {} at {now}", e.lease_until_ms);
        assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0);
        std::thread::sleep(Duration::from_millis(120));
    }
    // A longer heartbeat covers a longer pause.
    assert_eq!(c.beat(&n, "w", "5000"), 5000);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(!c.inflight(&n, "w").expect("in-flight").lost());
    assert_eq!(c.ack(&n, "w"), Value::Okay);
    assert_eq!(c.string(&["GET", &format!("{n}:stat:processed")]).as_deref(), Some("1"));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:deliveries")]), 0);
    assert!(c.bytes(&["ZSCORE", &format!("{n}:tq:leases"), "w"]).is_none(), "the lease outlived the job");
}

#[test]
fn heartbeat_marks_the_worker_alive_and_writes_node_resques_ping() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("ping");
    // No job: 0, but alive and pinged.
    assert_eq!(c.beat(&n, "idle", "10000"), 0);
    let now = c.server_ms();
    let alive: u64 = c.string(&["ZSCORE", &format!("{n}:tq:alive"), "idle"]).expect("alive").parse().expect("score");
    assert!(alive > now && alive <= now + 10_000, "alive until {alive} at {now}");
    let ping: serde_json::Value =
        serde_json::from_str(&c.string(&["GET", &format!("{n}:worker:ping:idle")]).expect("ping")).expect("JSON");
    assert_eq!(ping["name"], "idle");
    assert_eq!(ping["queues"], "");
    let t = ping["time"].as_i64().expect("time in seconds");
    assert!((t - (now / 1000) as i64).abs() <= 2, "ping time {t} at {now} ms");
    let keys: Vec<&str> = ping.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 3, "{ping}");

    // With a job: the lease left, and the worker's queues in the ping.
    c.ok(&["TQ.ENQUEUE", &n, "b", "c"]);
    c.ok(&["TQ.POP", &n, "busy", "a", "b"]);
    assert_eq!(c.beat(&n, "busy", "90000"), 90_000);
    let raw = c.string(&["GET", &format!("{n}:worker:ping:busy")]).expect("ping");
    let ping: serde_json::Value = serde_json::from_str(&raw).expect("JSON");
    assert_eq!(ping["name"], "busy");
    assert_eq!(ping["queues"], "a,b");
    assert!(raw.starts_with(r#"{"time":"#), "{raw}");
    let lease: u64 = c.string(&["ZSCORE", &format!("{n}:tq:leases"), "busy"]).expect("lease").parse().expect("ms");
    assert!(lease >= now + 80_000, "lease until {lease}");
    assert_eq!(c.inflight(&n, "busy").expect("in-flight").lease_until_ms, lease);

    // Heartbeats run out: the timer forgets the worker.
    assert_eq!(c.beat(&n, "short", "200"), 0);
    wait_until(10, "the timer forgetting the worker", || {
        c.bytes(&["ZSCORE", &format!("{n}:tq:alive"), "short"]).is_none()
    });
    assert!(c.bytes(&["ZSCORE", &format!("{n}:tq:alive"), "idle"]).is_some());
    assert!(c.err(&["TQ.HEARTBEAT", &n, "w", "0"]).starts_with("ERR"));
    assert!(c.err(&["TQ.HEARTBEAT", &n, "w", "-5"]).starts_with("ERR"));
}

#[test]
fn a_late_ack_or_fail_gets_leaselost_and_changes_nothing() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "300"]));
    let mut c = s.conn();
    let n = ns("late");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    wait_given_back(&mut c, &n, "w");
    let before = c.quiet_digest();
    let e = c.ack_err(&n, "w");
    assert!(e.starts_with("LEASELOST"), "{e}");
    assert!(e.contains("'w'"), "{e}");
    let e = c.fail_err(&n, "w", &["E", "late", "[]"]);
    assert!(e.starts_with("LEASELOST"), "{e}");
    assert_eq!(c.digest(), before, "a refused late report changed the dataset");
    assert_eq!(c.int(&["EXISTS", &format!("{n}:stat:processed")]), 0);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:failed")]), 0);
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "c", "[1]")]);

    // Someone else takes it: the loser's reports still cannot touch it.
    c.ok(&["TQ.POP", &n, "w2", "q"]);
    assert!(c.ack_err(&n, "w").starts_with("LEASELOST"));
    assert!(c.fail_err(&n, "w", &["E", "late"]).starts_with("LEASELOST"));
    assert!(c.string(&["GET", &format!("{n}:worker:w2:q")]).is_some());
    assert!(!c.inflight(&n, "w2").expect("w2's job").lost());
    // A heartbeat of the loser extends nothing.
    assert_eq!(c.beat(&n, "w", "10000"), 0);
    assert_eq!(c.ack(&n, "w2"), Value::Okay);
    // The loser may pop again.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w", "q"])), Some(("q".to_string(), job("q", "c", "[2]"))));
    assert_eq!(c.fail(&n, "w", &["E", "on time"]), Value::Okay);
    assert_eq!(c.string(&["GET", &format!("{n}:stat:processed")]).as_deref(), Some("1"));
    assert_eq!(c.string(&["GET", &format!("{n}:stat:failed")]).as_deref(), Some("1"));
}

#[test]
fn after_max_deliveries_the_job_goes_to_failed() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "200", "max-deliveries", "3"]));
    let mut c = s.conn();
    let n = ns("maxdel");
    let payload = job("q", "Slow", r#"[{"n":1}]"#);
    c.ok(&["TQ.ENQUEUE", &n, "q", "Slow", r#"{"n":1}"#]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    for i in 1..=3 {
        let w = format!("w{i}");
        assert_eq!(popped_job(c.ok(&["TQ.POP", &n, &w, "q"])), Some(("q".to_string(), payload.clone())));
        assert_eq!(c.inflight(&n, &w).expect("in-flight").deliveries, i);
        wait_given_back(&mut c, &n, &w);
        if i < 3 {
            assert_eq!(c.lrange(&format!("{n}:queue:q"))[0], payload, "delivery {i} given back at the head");
            assert_eq!(c.string(&["HGET", &format!("{n}:tq:deliveries"), &payload]), Some(i.to_string()));
        }
    }
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "c", "[2]")]);
    let failed = failure_records(&mut c, &n);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let f = &failed[0];
    assert_eq!(f["exception"], "TQ::LeaseExpired");
    assert_eq!(f["worker"], "w3");
    assert_eq!(f["queue"], "q");
    assert_eq!(f["payload"], serde_json::from_str::<serde_json::Value>(&payload).expect("payload"));
    assert!(f["error"].as_str().is_some_and(|e| !e.is_empty()), "{f}");
    assert!(f["failed_at"].is_string(), "{f}");
    assert_eq!(f["backtrace"], serde_json::json!([]));
    assert_eq!(c.string(&["GET", &format!("{n}:stat:failed")]).as_deref(), Some("1"));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:deliveries")]), 0, "the count outlived the job");
    assert_eq!(c.int(&["EXISTS", &format!("{n}:worker:w3:q")]), 0);
    assert!(c.ack_err(&n, "w3").starts_with("LEASELOST"));
    assert_eq!(c.string(&["GET", &format!("{n}:stat:failed")]).as_deref(), Some("1"));
}

#[test]
fn config_set_lease_ms_applies_to_later_pops() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("config");
    c.ok(&["TQ.ENQUEUE", &n, "a", "c"]);
    c.ok(&["TQ.ENQUEUE", &n, "b", "c"]);
    c.ok(&["TQ.POP", &n, "w-long", "a"]);
    let e = c.inflight(&n, "w-long").expect("in-flight");
    assert_eq!(e.lease_until_ms - e.popped_ms, 60_000, "default lease");

    assert_eq!(c.ok(&["CONFIG", "SET", "tq.lease-ms", "300"]), Value::Okay);
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.lease-ms"])[1], "300");
    c.ok(&["TQ.POP", &n, "w-short", "b"]);
    let e = c.inflight(&n, "w-short").expect("in-flight");
    assert_eq!(e.lease_until_ms - e.popped_ms, 300);
    wait_given_back(&mut c, &n, "w-short");
    assert_eq!(c.lrange(&format!("{n}:queue:b")), vec![job("b", "c", "[]")]);
    // The job taken before keeps its lease.
    assert!(!c.inflight(&n, "w-long").expect("in-flight").lost());
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:a")]), 0);
    assert_eq!(c.ack(&n, "w-long"), Value::Okay);
    // Out of range.
    assert!(c.q(&["CONFIG", "SET", "tq.lease-ms", "99"]).is_err());
    assert!(c.q(&["CONFIG", "SET", "tq.lease-ms", "abc"]).is_err());
    assert_eq!(c.strings(&["CONFIG", "GET", "tq.lease-ms"])[1], "300");
}

#[test]
fn a_lost_broadcast_job_goes_back_to_the_mailbox() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "300"]));
    let mut c = s.conn();
    let n = ns("lost-broadcast");
    assert_eq!(c.beat(&n, "w", "60000"), 0);
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "Reload"]), 1);
    let payload = job("tq:broadcast", "Reload", "[]");
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w", "q"])), Some(("tq:broadcast".to_string(), payload.clone())));
    wait_given_back(&mut c, &n, "w");
    assert_eq!(c.lrange(&format!("{n}:tq:mailbox:w")), vec![payload.clone()]);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:queue:tq:broadcast")]), 0);
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w", "q"])), Some(("tq:broadcast".to_string(), payload)));
    assert_eq!(c.inflight(&n, "w").expect("in-flight").deliveries, 2);
    assert_eq!(c.ack(&n, "w"), Value::Okay);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:deliveries")]), 0);
}
