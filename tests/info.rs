//! `INFO tq`: counters of what the module did since it was loaded, and
//! summaries of lateness and run time measured on the server clock.

mod common;

use std::time::Duration;

use common::{Conn, Opts, Server};

fn field(c: &mut Conn, name: &str) -> String {
    c.info_field("tq", &format!("tq_{name}")).unwrap_or_else(|| panic!("INFO tq has no tq_{name}"))
}

fn count(c: &mut Conn, name: &str) -> u64 {
    field(c, name).parse().unwrap_or_else(|_| panic!("tq_{name} is not a count"))
}

/// `count=..,mean=..,p50=..,p99=..,max=..` as numbers.
fn summary(c: &mut Conn, name: &str) -> Vec<(String, u64)> {
    parse_summary(&field(c, name))
}

/// Several summaries from one `INFO tq` (the timer may tick between two).
fn summaries<const N: usize>(c: &mut Conn, names: [&str; N]) -> [Vec<(String, u64)>; N] {
    let info = c.string(&["INFO", "tq"]).expect("INFO tq");
    names.map(|name| {
        let line = info.lines().find_map(|l| l.strip_prefix(&format!("tq_{name}:")));
        parse_summary(line.unwrap_or_else(|| panic!("INFO tq has no tq_{name}")).trim())
    })
}

fn parse_summary(text: &str) -> Vec<(String, u64)> {
    text.split(',')
        .map(|kv| {
            let (k, v) = kv.split_once('=').expect("key=value");
            (k.to_string(), v.parse().expect("a number"))
        })
        .collect()
}

fn get(s: &[(String, u64)], k: &str) -> u64 {
    s.iter().find(|(name, _)| name == k).map(|(_, v)| *v).expect("summary field")
}

#[test]
fn counters_follow_what_the_commands_did() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "200", "max-deliveries", "1"]));
    let mut c = s.conn();
    for name in ["enqueued", "delayed", "promoted", "popped", "acked", "failed", "lock_acquired"] {
        assert_eq!(count(&mut c, name), 0, "{name} starts at 0");
    }
    let n = "info";
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUE", n, "q", "C", &format!("[{i}]")]);
    }
    c.ok(&["TQ.ENQUEUEAT", n, "1000", "q", "C", "[9]"]);
    c.ok(&["TQ.ENQUEUEAT", n, "2000", "q", "C", "[10]"]);
    // A refused command counts nothing.
    c.err(&["TQ.ENQUEUEAT", n, "1000", "q", "C", "[9]"]);
    assert_eq!(c.int(&["TQ.PROMOTE", n]), 2);

    // Run 1: acked after ~50 ms. Run 2: failed with a retry. Run 3: given back.
    c.ok(&["TQ.POP", n, "w", "q"]);
    std::thread::sleep(Duration::from_millis(50));
    c.ack(n, "w");
    c.ok(&["TQ.POP", n, "w", "q"]);
    c.fail(n, "w", &["E", "e", "[]", "RETRY", "3", "BACKOFF", "0"]);
    c.ok(&["TQ.POP", n, "w", "q"]);
    c.nack(n, "w", &[]);
    c.ack_err(n, "w");

    c.ok(&["TQ.LOCK", n, "L", "a", "10000"]);
    c.ok(&["TQ.LOCK", n, "L", "b", "10000"]); // held: no acquisition
    c.ok(&["TQ.UNLOCK", n, "L", "a", "1", "FAIL"]);
    c.ok(&["TQ.LOCK", n, "L", "b", "10000"]);
    c.ok(&["TQ.UNLOCK", n, "L", "b", "2", "OK"]);
    assert_eq!(c.int(&["TQ.LEADER", n, "s1", "10000"]), 1);
    assert_eq!(c.int(&["TQ.LEADER", n, "s1", "10000"]), 1, "a renewal is not an acquisition");

    let want = [
        ("enqueued", 3),
        ("delayed", 2),
        ("promoted", 2),
        ("popped", 3),
        ("acked", 1),
        ("failed", 1),
        ("retried", 1),
        ("nacked", 1),
        ("lock_acquired", 2),
        ("lock_done", 1),
        ("lock_failed", 1),
        ("leader_acquired", 1),
        ("lease_requeued", 0),
    ];
    for (name, v) in want {
        assert_eq!(count(&mut c, name), v, "tq_{name}");
    }
    let run = summary(&mut c, "job_run_ms");
    assert_eq!(get(&run, "count"), 2, "{run:?}");
    assert!(get(&run, "max") >= 50, "the acked job ran at least 50 ms: {run:?}");
    assert!(get(&run, "p50") <= get(&run, "max") && get(&run, "p99") <= get(&run, "max"), "{run:?}");
    // Buckets of 1970 are promoted decades late.
    let late = summary(&mut c, "promotion_lateness_ms");
    assert_eq!(get(&late, "count"), 2, "one sample per bucket: {late:?}");
    assert!(get(&late, "mean") > 1_000_000_000_000, "{late:?}");
}

#[test]
fn the_timer_counts_lease_expiries_and_promotions() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "200", "max-deliveries", "2"]));
    let mut c = s.conn();
    let n = "timed";
    c.ok(&["TQ.ENQUEUEIN", n, "0", "q", "C", "[1]"]);
    common::wait_until(10, "promotion by the timer", || c.int(&["LLEN", &format!("{n}:queue:q")]) == 1);
    assert_eq!(count(&mut c, "promoted"), 1);
    c.ok(&["TQ.POP", n, "w1", "q"]);
    common::wait_until(10, "a requeue", || count(&mut c, "lease_requeued") == 1);
    c.ok(&["TQ.POP", n, "w2", "q"]);
    common::wait_until(10, "a lease failure", || count(&mut c, "lease_failed") == 1);
    assert_eq!(count(&mut c, "popped"), 2);
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 1);
    // Every tick is timed: at least the three that did the work above.
    let ticks = summary(&mut c, "timer_tick_us");
    assert!(get(&ticks, "count") >= 3, "{ticks:?}");
    assert!(get(&ticks, "max") >= get(&ticks, "p50") && get(&ticks, "max") > 0, "{ticks:?}");
    // The same ticks on the server thread's CPU clock: never more than
    // their wall time, and not nothing (they did the work above).
    let [ticks, cpu] = summaries(&mut c, ["timer_tick_us", "timer_tick_cpu_us"]);
    assert_eq!(get(&cpu, "count"), get(&ticks, "count"), "{cpu:?} {ticks:?}");
    for k in ["mean", "max"] {
        assert!(get(&cpu, k) <= get(&ticks, k), "{k}: {cpu:?} {ticks:?}");
    }
    assert!(get(&cpu, "max") > 0, "{cpu:?}");
}
