//! TQ.BROADCAST: a job for every live worker (heartbeat not run out), once
//! each, through its mailbox, which its pops take before its queues.

mod common;

use common::*;

#[test]
fn broadcast_reaches_each_live_worker_once() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("broadcast");
    let live = ["w1", "w2", "w3"];
    for w in live {
        assert_eq!(c.beat(&n, w, "30000"), 0);
    }
    // A worker whose heartbeat ran out: the timer forgets it.
    c.beat(&n, "dead", "150");
    wait_until(10, "the dead worker forgotten", || c.bytes(&["ZSCORE", &format!("{n}:tq:alive"), "dead"]).is_none());
    // A job waiting in the queue the workers pop from.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[0]"]);

    assert_eq!(c.int(&["TQ.BROADCAST", &n, "Flush", r#"["caches",1]"#]), 3);
    let payload = job("tq:broadcast", "Flush", r#"["caches",1]"#);
    for w in live {
        assert_eq!(c.lrange(&format!("{n}:tq:mailbox:{w}")), vec![payload.clone()], "{w}'s mailbox");
    }
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:mailbox:dead")]), 0);
    assert_eq!(c.ok(&["TQ.POP", &n, "dead", "none"]), Value::Nil);
    // A worker alive only from now on does not get it.
    c.beat(&n, "late", "30000");
    assert_eq!(c.ok(&["TQ.POP", &n, "late", "none"]), Value::Nil);

    // Each live worker: the broadcast job first, once, then its queues.
    for w in live {
        let got = popped_job(c.ok(&["TQ.POP", &n, w, "q"]));
        assert_eq!(got, Some(("tq:broadcast".to_string(), payload.clone())), "{w}");
        let rec = c.string(&["GET", &format!("{n}:worker:{w}:q")]).expect("in-flight record");
        assert!(rec.contains(r#""queue":"tq:broadcast""#), "{rec}");
        assert_eq!(c.ack(&n, w), Value::Okay);
        assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:mailbox:{w}")]), 0);
    }
    assert_eq!(popped_job(c.ok(&["TQ.POP", &n, "w1", "q"])), Some(("q".to_string(), job("q", "c", "[0]"))));
    c.ack(&n, "w1");
    for w in live {
        assert_eq!(c.ok(&["TQ.POP", &n, w, "q"]), Value::Nil, "{w} got a job twice");
    }
    assert_eq!(c.string(&["GET", &format!("{n}:stat:processed")]).as_deref(), Some("4"));

    // Again: the four live workers, once each.
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "Flush", r#"["caches",2]"#]), 4);
    for w in ["w1", "w2", "w3", "late"] {
        assert_eq!(c.int(&["LLEN", &format!("{n}:tq:mailbox:{w}")]), 1, "{w}");
    }
}

#[test]
fn broadcast_with_no_live_worker_reaches_nobody_and_writes_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("nobody");
    let before = c.quiet_digest();
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "Flush"]), 0);
    assert_eq!(c.digest(), before);
    c.beat(&n, "w", "100");
    wait_until(10, "the worker forgotten", || c.int(&["EXISTS", &format!("{n}:tq:alive")]) == 0);
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "Flush"]), 0);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:mailbox:w")]), 0);
    assert!(c.err(&["TQ.BROADCAST", &n, "Flush", "[1"]).starts_with("ERR"));
}

/// One slot of a process takes broadcasts for the whole process: the others
/// heartbeat with NOBROADCAST, which keeps their ping record and their
/// job's lease but does not mark them alive for broadcasts.
#[test]
fn a_nobroadcast_heartbeat_keeps_the_worker_out_of_broadcasts() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("nobroadcast");
    assert_eq!(c.int(&["TQ.HEARTBEAT", &n, "server:1", "30000"]), 0);
    assert_eq!(c.int(&["TQ.HEARTBEAT", &n, "slot:2", "30000", "NOBROADCAST"]), 0);
    assert!(c.string(&["GET", &format!("{n}:worker:ping:slot:2")]).is_some(), "its ping record");
    // A job held by the slot: its lease renewed without marking it alive.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[0]"]);
    assert!(popped_job(c.ok(&["TQ.POP", &n, "slot:2", "q"])).is_some());
    let d = c.delivery(&n, "slot:2");
    assert_eq!(c.int(&["TQ.HEARTBEAT", &n, "slot:2", "5000", &d, "nobroadcast"]), 5000);
    assert_eq!(c.strings(&["ZRANGE", &format!("{n}:tq:alive"), "0", "-1"]), vec!["server:1".to_string()]);
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "Flush"]), 1, "only the server's slot");
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:mailbox:slot:2")]), 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:tq:mailbox:server:1")]), 1);
    // The flag comes last; anything else there is refused.
    assert!(c.err(&["TQ.HEARTBEAT", &n, "slot:2", "5000", "NOBROADCAST", &d]).starts_with("ERR"));
}
