//! Key names are made once and shared (`src/names.rs`), and a busy queue's
//! clock is left unread by pushes in a millisecond already looked at
//! (`src/clocks.rs`). These tests hunt what sharing could break: more names
//! than the cache holds (slots taken over while commands still hold their
//! names), the replication of shared names, and references never released.

mod common;

use common::*;

/// More distinct queues and workers than the name cache has slots.
const QUEUES: usize = 3000;

fn round(c: &mut Conn, n: &str) {
    for i in 0..QUEUES {
        c.ok(&["TQ.ENQUEUE", n, &format!("q{i}"), "C", &format!("[{i}]")]);
    }
    for i in 0..QUEUES {
        let w = format!("w{}", i % 64);
        let got = c.ok(&["TQ.POP", n, &w, &format!("q{i}")]);
        let text = format!("{got:?}");
        assert!(text.contains(&format!("[{i}]")), "q{i} gave its own job: {text}");
        c.ack(n, &w);
    }
}

#[test]
fn many_names_each_reach_their_own_key_and_replicate_exactly() {
    let p = Server::start_with(Opts { args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..Opts::default() });
    let r = start_replica(p.port, Opts { module: false, ..Opts::default() });
    let mut c = p.conn();
    let n = ns("names");
    round(&mut c, &n);
    assert_eq!(c.stat(&n, "processed"), QUEUES as i64);
    for i in 0..64 {
        assert!(c.stat(&n, &format!("processed:w{i}")) > 0, "w{i} counted under its own name");
    }
    for i in 0..QUEUES {
        assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q{i}")]), 0);
    }
    c.wait_tallies_written(&n);
    wait_replicas_synced(&mut c, 1);
    assert_eq!(r.conn().digest(), c.digest());
    assert!(!r.log().contains("sending an error to its master"));
}

#[test]
fn shared_names_are_released_round_after_round() {
    let s = Server::start();
    let mut c = s.conn();
    // Without metrics no new minute can add keys between the two readings.
    c.ok(&["CONFIG", "SET", "tq.metrics", "no"]);
    let n = ns("names");
    round(&mut c, &n);
    let used = |c: &mut Conn| -> i64 {
        c.info_field("memory", "used_memory").and_then(|v| v.parse().ok()).expect("used_memory")
    };
    let before = used(&mut c);
    for _ in 0..4 {
        round(&mut c, &n);
    }
    let after = used(&mut c);
    // 24,000 commands: a string kept per command (one leaked name) would
    // hold over a megabyte.
    assert!(after - before < 256 * 1024, "memory grew by {} bytes", after - before);
}

#[test]
fn pushes_within_a_millisecond_date_every_job_of_a_busy_queue() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("clocks");
    let t0 = c.server_ms();
    // Many pushes per millisecond, each job its own payload.
    for i in 0..2000 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "C", &format!("[{i}]")]);
    }
    let t1 = c.server_ms();
    for i in 0..2000 {
        let w = format!("w{i}");
        let before = c.server_ms();
        c.ok(&["TQ.POP", &n, &w, "q"]);
        let after = c.server_ms();
        let wait = c.inflight(&n, &w).expect("entry").wait_ms.expect("dated");
        // Arrived between t0 and t1, taken between before and after: never
        // dated later than it could have arrived, nor before the first push.
        assert!(
            wait >= before.saturating_sub(t1) && wait <= after - t0 + 1,
            "job {i}: wait {wait}, t0 {t0}, t1 {t1}, taken {before}..{after}"
        );
        c.ack(&n, &w);
    }
}
