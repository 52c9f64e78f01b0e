//! A key of the wrong type under any key an inspection or management
//! command reads or writes gets tq's WRONGTYPE error naming the key, writes
//! nothing, and leaves the server up (never `tq internal error`).

mod common;

use common::Server;

const PAYLOAD3: &str = r#"{"class":"c","queue":"q","args":[3]}"#;

/// Waiting jobs, a delayed job, a failure, a worker with a job in flight and
/// a heartbeat, counters, a leader. Returns the delayed job's bucket.
fn populate(c: &mut common::Conn) -> String {
    c.ok(&["TQ.ENQUEUE", "t", "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", "t", "q", "c", "[2]"]);
    c.ok(&["TQ.ENQUEUE", "t", "q", "c", "[4]"]);
    let bucket = c.int(&["TQ.ENQUEUEAT", "t", "4000000000000", "q", "c", "[3]"]).to_string();
    c.ok(&["TQ.POP", "t", "w5", "q"]);
    c.fail("t", "w5", &["E", "e"]);
    c.ok(&["TQ.POP", "t", "w7", "q"]);
    c.ack("t", "w7");
    c.ok(&["TQ.POP", "t", "w6", "q"]);
    c.beat("t", "w6", "600000");
    c.ok(&["TQ.LEADER", "t", "me", "600000"]);
    c.ok(&["TQ.ENQUEUE", "t", "q", "c", "[8]"]);
    c.ok(&["TQ.ENQUEUE", "t", "q", "c", "[9]"]);
    bucket
}

#[test]
fn a_wrong_typed_key_is_a_wrongtype_error_for_every_inspection_command() {
    let s = Server::start();
    let mut c = s.conn();
    // No job metrics: the timer would write a worker's tally about 2 s
    // after its job, maybe between a case's two digests.
    c.ok(&["CONFIG", "SET", "tq.metrics", "no"]);
    let bucket = populate(&mut c);
    let delayed = format!("t:delayed:{bucket}");
    let ts = format!("t:timestamps:{PAYLOAD3}");
    let at_ms = format!("{bucket}000");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["TQ.SCHEDULEDAT", "t", "q", "c", "[3]"], vec![&ts]),
        (vec!["TQ.TIMESTAMPS", "t"], vec!["t:delayed_queue_schedule", &delayed]),
        (vec!["TQ.DELAYEDAT", "t", &at_ms], vec![&delayed]),
        (vec!["TQ.ALLDELAYED", "t"], vec!["t:delayed_queue_schedule", &delayed]),
        (vec!["TQ.STATS", "t"], vec!["t:stat:processed", "t:stat:failed", "t:workers", "t:stat:processed:w7"]),
        (vec!["TQ.WORKERS", "t"], vec!["t:workers", "t:worker:w6:q"]),
        (vec!["TQ.FAILED", "t"], vec!["t:failed"]),
        (vec!["TQ.FAILRETRY", "t"], vec!["t:failed", "t:queue:q", "t:queues"]),
        (vec!["TQ.FAILREMOVE", "t"], vec!["t:failed"]),
        (vec!["TQ.DEL", "t", "q", "c", "[8]"], vec!["t:queue:q"]),
        (vec!["TQ.DELDELAYED", "t", "q", "c", "[3]"], vec![&ts, "t:delayed_queue_schedule", &delayed]),
        (vec!["TQ.DELQUEUE", "t", "q"], vec!["t:queue:q", "t:queues"]),
        (vec!["TQ.DELBYCLASS", "t", "q", "c"], vec!["t:queue:q"]),
        (
            vec!["TQ.FORCECLEAN", "t", "w6"],
            vec![
                "t:workers",
                "t:tq:inflight:w6",
                "t:worker:w6:q",
                "t:failed",
                "t:stat:failed",
                "t:tq:leases",
                "t:tq:alive",
            ],
        ),
        (
            vec!["TQ.CLEANWORKERS", "t", "0"],
            vec!["t:workers", "t:worker:w6:q", "t:failed", "t:stat:failed", "t:tq:leases", "t:tq:alive"],
        ),
        (vec!["TQ.UNTRACK", "t", "w7", "q"], vec!["t:workers", "t:tq:alive"]),
        (
            vec!["TQ.DETAILS", "t"],
            vec![
                "t:queues",
                "t:queue:q",
                "t:resque_scheduler_leader_lock",
                "t:delayed_queue_schedule",
                &delayed,
                "t:tq:leases",
                "t:failed",
            ],
        ),
    ];
    let mut holes = Vec::new();
    for (args, keys) in &cases {
        for key in keys {
            // Each case on fresh data: a command that ignored the bad key
            // may have changed the rest.
            c.ok(&["FLUSHALL"]);
            populate(&mut c);
            // CLEANWORKERS 0 takes jobs that started at least 1 ms ago.
            std::thread::sleep(std::time::Duration::from_millis(2));
            let kind = c.string(&["TYPE", key]).unwrap_or_default();
            assert_ne!(kind, "none", "{key} must exist for {}", args[0]);
            c.ok(&["DEL", key]);
            if kind == "string" {
                c.ok(&["RPUSH", key, "x"]);
            } else {
                c.ok(&["SET", key, "x"]);
            }
            let before = c.quiet_digest();
            let reply = c.q(args);
            let ok = matches!(&reply, Err(e) if e.starts_with(&format!("WRONGTYPE key '{key}'")));
            if !ok {
                holes.push(format!("{} with {key} of the wrong type: {reply:?}", args[0]));
            }
            assert_eq!(c.string(&["PING"]).as_deref(), Some("PONG"));
            if reply.is_err() {
                assert_eq!(c.digest(), before, "{} wrote before refusing ({key})", args[0]);
            }
        }
    }
    assert!(holes.is_empty(), "{}", holes.join("\n"));
}
