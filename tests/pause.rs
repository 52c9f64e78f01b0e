//! TQ.PAUSE / TQ.RESUME / TQ.PAUSED: a paused queue keeps its jobs but no
//! tq take takes from it (TQ.POP, TQ.BPOP, POP ... ACK, with '*' or named);
//! the state is a plain set that replicates like every write.

mod common;

use std::time::Duration;

use common::*;

fn queue_of(v: Value) -> Option<String> {
    popped_job(v).map(|(q, _)| q)
}

#[test]
fn a_paused_queue_is_skipped_by_pop_with_star_and_named_queues_until_resumed() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("pause");
    for q in ["a", "b"] {
        c.ok(&["TQ.ENQUEUE", &n, q, "c", "[1]"]);
        c.ok(&["TQ.ENQUEUE", &n, q, "c", "[2]"]);
    }
    assert_eq!(c.int(&["TQ.PAUSE", &n, "a"]), 1);
    assert_eq!(c.int(&["TQ.PAUSE", &n, "a"]), 0);
    assert_eq!(c.strings(&["TQ.PAUSED", &n]), vec!["a"]);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:tq:paused")]), vec!["a"]);
    // 'a' comes first in both orders, yet 'b' is taken.
    assert_eq!(queue_of(c.ok(&["TQ.POP", &n, "w1", "a", "b"])).as_deref(), Some("b"));
    assert_eq!(queue_of(c.ok(&["TQ.POP", &n, "w2", "*"])).as_deref(), Some("b"));
    assert_eq!(c.ok(&["TQ.POP", &n, "w3", "a"]), Value::Nil);
    assert_eq!(c.ok(&["TQ.POP", &n, "w4", "*"]), Value::Nil, "'b' is empty, 'a' paused");
    // POP ... ACK completes and takes nothing from the paused queue.
    let d = c.delivery(&n, "w1");
    assert_eq!(c.ok(&["TQ.POP", &n, "w1", "a", "ACK", &d]), Value::Nil);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:a")]), 2, "the paused queue kept its jobs");
    // Enqueueing into a paused queue still works.
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[3]"]);
    assert_eq!(c.int(&["TQ.RESUME", &n, "a"]), 1);
    assert_eq!(c.int(&["TQ.RESUME", &n, "a"]), 0);
    assert_eq!(c.strings(&["TQ.PAUSED", &n]), Vec::<String>::new());
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:paused")]), 0);
    assert_eq!(queue_of(c.ok(&["TQ.POP", &n, "w3", "a"])).as_deref(), Some("a"));
    assert_eq!(queue_of(c.ok(&["TQ.POP", &n, "w4", "*"])).as_deref(), Some("a"));
}

#[test]
fn a_bpop_waiting_on_a_paused_queue_does_not_take_until_resumed() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("pause-bpop");
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[0]"]);
    c.ok(&["TQ.PAUSE", &n, "a"]);
    for queues in [&["a"][..], &["*"][..]] {
        let port = s.port;
        let (n2, qs) = (n.clone(), queues.iter().map(|q| q.to_string()).collect::<Vec<_>>());
        let waiter = std::thread::spawn(move || {
            let mut w = connect(port);
            let mut args = vec!["TQ.BPOP".to_string(), n2, "bw".to_string()];
            args.extend(qs);
            args.push("0".into());
            popped_job(w.ok(&args))
        });
        c.wait_blocked(1);
        let len = c.int(&["LLEN", &format!("{n}:queue:a")]);
        // A push into the paused queue wakes the waiter, which takes nothing.
        c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[1]"]);
        c.ok(&["RPUSH", &format!("{n}:queue:a"), &job("a", "c", "[2]")]);
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(c.blocked_clients(), 1, "the waiter is still waiting");
        assert_eq!(c.live_inflight(&n), Vec::<String>::new(), "nothing taken");
        assert_eq!(c.int(&["LLEN", &format!("{n}:queue:a")]), len + 2);
        c.ok(&["TQ.RESUME", &n, "a"]);
        let got = waiter.join().expect("waiter");
        assert_eq!(got.map(|(q, _)| q).as_deref(), Some("a"));
        c.ack(&n, "bw");
        c.ok(&["TQ.PAUSE", &n, "a"]);
    }
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("pause-bad");
    let before = c.quiet_digest();
    assert!(c.err(&["TQ.PAUSE", &n, "*"]).contains("'*'"));
    assert!(c.err(&["TQ.PAUSE", &n, ""]).contains("queue must not be empty"));
    assert!(c.err(&["TQ.PAUSE", &n]).contains("wrong number"));
    assert_eq!(c.digest(), before);
    c.ok(&["SET", &format!("{n}:tq:paused"), "x"]);
    c.ok(&["TQ.ENQUEUE", &n, "a", "c"]);
    let before = c.quiet_digest();
    assert!(c.err(&["TQ.PAUSE", &n, "a"]).starts_with("WRONGTYPE"));
    assert!(c.err(&["TQ.POP", &n, "w", "a"]).starts_with("WRONGTYPE"));
    assert_eq!(c.digest(), before);
}

#[test]
fn pause_and_resume_replicate_as_plain_commands() {
    let p = Server::start_with(Opts { args: vec!["--repl-diskless-sync-delay".into(), "0".into()], ..Opts::default() });
    let r = start_replica(p.port, Opts { module: false, ..Opts::default() });
    let mut c = p.conn();
    let mut rc = r.conn();
    let n = ns("pause-repl");
    let key = format!("{n}:tq:paused");
    c.ok(&["TQ.PAUSE", &n, "a"]);
    c.ok(&["TQ.PAUSE", &n, "b"]);
    c.ok(&["TQ.RESUME", &n, "a"]);
    // No-ops replicate nothing.
    let offset = repl_offset_of(&mut c);
    c.ok(&["TQ.PAUSE", &n, "b"]);
    c.ok(&["TQ.RESUME", &n, "a"]);
    assert_eq!(repl_offset_of(&mut c), offset);
    wait_replicas_synced(&mut c, 1);
    assert_eq!(rc.strings(&["SMEMBERS", &key]), vec!["b"]);
    assert_eq!(rc.digest(), c.digest());
    assert!(!r.log().contains("sending an error to its master"));
}

#[test]
fn pause_needs_sadd_and_resume_srem_on_the_namespace() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.ok(&["ACL", "SETUSER", "nosadd", "on", ">pw", "+@all", "-sadd", "~resque", "~resque:*"]);
    admin.ok(&["ACL", "SETUSER", "nosrem", "on", ">pw", "+@all", "-srem", "~resque", "~resque:*"]);
    admin.ok(&["ACL", "SETUSER", "queues", "on", ">pw", "+@all", "~resque", "~resque:queue:*"]);
    let mut a = s.conn();
    a.ok(&["AUTH", "nosadd", "pw"]);
    let e = a.err(&["TQ.PAUSE", "resque", "q"]);
    assert!(e.starts_with("NOPERM") && e.contains("'sadd'"), "{e}");
    let mut b = s.conn();
    b.ok(&["AUTH", "nosrem", "pw"]);
    assert_eq!(b.int(&["TQ.PAUSE", "resque", "q"]), 1);
    let e = b.err(&["TQ.RESUME", "resque", "q"]);
    assert!(e.starts_with("NOPERM") && e.contains("'srem'"), "{e}");
    let mut q = s.conn();
    q.ok(&["AUTH", "queues", "pw"]);
    let e = q.err(&["TQ.PAUSE", "resque", "q"]);
    assert!(e.starts_with("NOPERM") && e.contains("resque:tq:paused"), "{e}");
    assert_eq!(admin.strings(&["SMEMBERS", "resque:tq:paused"]), vec!["q"]);
}

#[test]
fn tq_work_stops_taking_from_a_paused_queue_and_goes_on_when_resumed() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("pause-work");
    let h = s.dir.join("handlers");
    write_script(&h, "Job", "cat >/dev/null");
    c.ok(&["TQ.PAUSE", &n, "a"]);
    let mut tq = Tq::spawn(
        s.port,
        &["--ns", &n, "work", "--handlers", h.to_str().expect("path"), "--queues", "a,b"],
        &s.dir.join("tq.log"),
    );
    tq.wait_log(30, "worker started");
    c.ok(&["TQ.ENQUEUE", &n, "a", "Job", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "b", "Job", "[2]"]);
    let processed = |c: &mut Conn| c.string(&["GET", &format!("{n}:stat:processed")]).unwrap_or_default();
    wait_until(30, "the job of 'b' done", || processed(&mut c) == "1");
    // The worker waits in TQ.BPOP; the paused queue's job stays.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(processed(&mut c), "1");
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:a")]), 1);
    c.ok(&["TQ.RESUME", &n, "a"]);
    wait_until(30, "the job of 'a' done once resumed", || processed(&mut c) == "2");
}
