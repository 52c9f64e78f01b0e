//! Behaviour of each core command on a real redis-server with the module.

mod common;

use common::{ns, Server, Value};

fn server_time_ms(c: &mut common::Conn) -> u64 {
    let t = c.strings(&["TIME"]);
    t[0].parse::<u64>().expect("secs") * 1000 + t[1].parse::<u64>().expect("usecs") / 1000
}

#[test]
fn enqueue_writes_node_resque_payload_bytes() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("enq");
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "math", "add", "[1,2]"]), 1);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "math", "add"]), 2);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "math", "add", r#"{"b":1,"a":[1.0,"\u00e9"]}"#]), 3);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "math", "add", "7"]), 4);
    assert_eq!(
        c.strings(&["LRANGE", &format!("{n}:queue:math"), "0", "-1"]),
        [
            r#"{"class":"add","queue":"math","args":[1,2]}"#,
            r#"{"class":"add","queue":"math","args":[]}"#,
            "{\"class\":\"add\",\"queue\":\"math\",\"args\":[{\"b\":1,\"a\":[1,\"\u{e9}\"]}]}",
            r#"{"class":"add","queue":"math","args":[7]}"#,
        ]
    );
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:queues")]), ["math"]);
    // A plain RPUSH by another client is counted in the reply.
    c.ok(&["RPUSH", &format!("{n}:queue:math"), r#"{"class":"x","queue":"math","args":[]}"#]);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "math", "add"]), 6);
}

#[test]
fn enqueue_re_registers_a_queue_removed_from_the_set() {
    // The module remembers registered queues; a removal must be noticed.
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("reg");
    let queues = format!("{n}:queues");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c"]);
    for removal in [vec!["SREM", &queues, "q"], vec!["DEL", &queues], vec!["FLUSHALL"]] {
        c.ok(&removal);
        c.ok(&["TQ.ENQUEUE", &n, "q", "c"]);
        assert_eq!(c.strings(&["SMEMBERS", &queues]), ["q"], "after {removal:?}");
    }
    c.ok(&["EXPIRE", &queues, "1"]);
    common::wait_until(5, "expiry", || c.int(&["EXISTS", &queues]) == 0);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c"]);
    assert_eq!(c.strings(&["SMEMBERS", &queues]), ["q"]);
    c.ok(&["SET", &queues, "not a set"]);
    assert!(c.err(&["TQ.ENQUEUE", &n, "q", "c"]).starts_with("WRONGTYPE"));
}

#[test]
fn enqueue_counts_as_modified_only_what_it_writes() {
    // As for SADD of a member already there, a WATCH on the queue registry
    // survives an enqueue to a registered queue, and one on a queue survives
    // an enqueue that UNIQUE refuses; the queue an enqueue pushes to is
    // modified. (A TQ command is one transaction: MULTI/EXEC shows it.)
    let s = Server::start();
    let mut c = s.conn();
    let mut other = s.conn();
    let n = ns("watch");
    let (queues, list) = (format!("{n}:queues"), format!("{n}:queue:q"));
    other.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "UNIQUE"]);
    let mut aborted = |watched: &str, enqueue: &[&str]| {
        c.ok(&["WATCH", watched]);
        other.ok(enqueue);
        c.ok(&["MULTI"]);
        c.ok(&["PING"]);
        c.ok(&["EXEC"]) == Value::Nil
    };
    assert!(!aborted(&queues, &["TQ.ENQUEUE", &n, "q", "c", "[2]"]));
    assert!(!aborted(&list, &["TQ.ENQUEUE", &n, "q", "c", "[1]", "UNIQUE"]));
    assert!(aborted(&list, &["TQ.ENQUEUE", &n, "q", "c", "[3]"]));
    assert_eq!(c.int(&["LLEN", &list]), 3);
}

#[test]
fn enqueue_at_files_jobs_like_node_resque() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("at");
    assert_eq!(c.int(&["TQ.ENQUEUEAT", &n, "10000", "q", "c", "[1]"]), 10);
    let payload = r#"{"class":"c","queue":"q","args":[1]}"#;
    assert_eq!(c.strings(&["LRANGE", &format!("{n}:delayed:10"), "0", "-1"]), [payload]);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:timestamps:{payload}")]), ["delayed:10"]);
    assert_eq!(c.strings(&["ZRANGE", &format!("{n}:delayed_queue_schedule"), "0", "-1", "WITHSCORES"]), ["10", "10"]);
    let before = c.quiet_digest();
    let e = c.err(&["TQ.ENQUEUEAT", &n, "10499", "q", "c", "[1]"]);
    assert_eq!(e, "DUPLICATE Job already enqueued at this time with same arguments");
    assert_eq!(c.digest(), before, "a refused duplicate writes nothing");
    assert_eq!(c.int(&["TQ.ENQUEUEAT", &n, "10500", "q", "c", "[1]"]), 11);
}

#[test]
fn enqueue_in_uses_the_server_clock() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("in");
    let before = server_time_ms(&mut c);
    let bucket = c.int(&["TQ.ENQUEUEIN", &n, "60000", "q", "c"]) as u64;
    let after = server_time_ms(&mut c);
    assert!(
        bucket >= (before + 60_000) / 1000 && bucket <= (after + 60_000 + 500) / 1000 + 1,
        "{before} {bucket} {after}"
    );
}

#[test]
fn promote_moves_due_jobs_oldest_first_and_cleans_up() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("promote");
    c.ok(&["TQ.ENQUEUEAT", &n, "2000", "q", "c", r#"["b"]"#]);
    c.ok(&["TQ.ENQUEUEAT", &n, "1000", "q", "c", r#"["a1"]"#]);
    c.ok(&["TQ.ENQUEUEAT", &n, "1000", "other", "c", r#"["a2"]"#]);
    c.ok(&["TQ.ENQUEUEIN", &n, "3600000", "q", "c", r#"["later"]"#]);
    assert_eq!(c.int(&["TQ.PROMOTE", &n, "LIMIT", "2"]), 2);
    assert_eq!(c.int(&["TQ.PROMOTE", &n]), 1);
    assert_eq!(c.int(&["TQ.PROMOTE", &n]), 0);
    assert_eq!(
        c.strings(&["LRANGE", &format!("{n}:queue:q"), "0", "-1"]),
        [r#"{"class":"c","queue":"q","args":["a1"]}"#, r#"{"class":"c","queue":"q","args":["b"]}"#]
    );
    assert_eq!(c.strings(&["LRANGE", &format!("{n}:queue:other"), "0", "-1"]).len(), 1);
    let mut queues = c.strings(&["SMEMBERS", &format!("{n}:queues")]);
    queues.sort();
    assert_eq!(queues, ["other", "q"]);
    // Only the future job's keys remain.
    let mut keys = c.strings(&["KEYS", &format!("{n}:*")]);
    keys.retain(|k| k.contains("delayed") || k.contains("timestamps"));
    keys.sort();
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert_eq!(c.list(&["ZRANGE", &format!("{n}:delayed_queue_schedule"), "0", "-1"]).len(), 1);
}

#[test]
fn pop_ack_fail_cycle() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("cycle");
    c.ok(&["TQ.ENQUEUE", &n, "low", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "high", "c", "[2]"]);
    assert_eq!(c.ok(&["TQ.POP", &n, "host:1", "none"]), Value::Nil);
    let got = c.strings(&["TQ.POP", &n, "host:1", "high", "low"]);
    let now = c.server_ms();
    // [queue, payload, delivery, deliveries, lease-deadline-ms]
    assert_eq!(got[..4], ["high", r#"{"class":"c","queue":"high","args":[2]}"#, "1", "1"]);
    let until: u64 = got[4].parse().expect("lease deadline");
    assert!(until > now + 50_000 && until <= now + 60_000, "tq.lease-ms from the pop: {until} vs now {now}");
    let record = c.string(&["GET", &format!("{n}:worker:host:1:high,low")]).expect("record");
    let v: serde_json::Value = serde_json::from_str(&record).expect("record is JSON");
    assert_eq!(v["queue"], "high");
    assert_eq!(v["worker"], "host:1");
    assert_eq!(v["payload"]["args"][0], 2);
    assert!(v["run_at"].as_str().expect("run_at").ends_with('Z'));
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:workers")]), ["host:1:high,low"]);
    // A worker name holds one job: popping again hands that job out again.
    assert_eq!(c.strings(&["TQ.POP", &n, "host:1", "low", "LEASE", "5000"])[..4], got[..4]);
    assert_eq!(c.ack(&n, "host:1"), Value::Okay);
    // A repeated ACK answers as the first did and changes nothing.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    assert_eq!(c.ok(&["TQ.ACK", &n, "host:1", "1"]), Value::Okay);
    assert_eq!(c.digest(), before);
    assert!(c.err(&["TQ.ACK", &n, "host:1", "2"]).starts_with("NOJOB worker 'host:1' does not hold delivery 2"));
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed")]), 1);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed:host:1")]), 1);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:worker:host:1:high,low")]), 0);

    c.ok(&["TQ.POP", &n, "host:1", "high", "low"]);
    assert_eq!(c.fail(&n, "host:1", &["TypeError", "bad \"thing\"", r#"["    at f (x.js:1:2)"]"#]), Value::Okay);
    let failed = c.strings(&["LRANGE", &format!("{n}:failed"), "0", "-1"]);
    assert_eq!(failed.len(), 1);
    let f: serde_json::Value = serde_json::from_str(&failed[0]).expect("failure is JSON");
    assert_eq!(f["worker"], "host:1");
    assert_eq!(f["queue"], "low");
    assert_eq!(f["payload"]["args"][0], 1);
    assert_eq!(f["exception"], "TypeError");
    assert_eq!(f["error"], "bad \"thing\"");
    assert_eq!(f["backtrace"][0], "    at f (x.js:1:2)");
    assert!(f["failed_at"].as_str().expect("failed_at").contains("GMT+0000"));
    let keys: Vec<&str> = f.as_object().expect("object").keys().map(String::as_str).collect();
    assert_eq!(keys, ["backtrace", "error", "exception", "failed_at", "payload", "queue", "worker"]); // serde sorts
    assert!(failed[0].starts_with(r#"{"worker":"host:1","queue":"low","payload":"#));
    assert_eq!(c.int(&["GET", &format!("{n}:stat:failed")]), 1);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:failed:host:1")]), 1);
    // A repeated FAIL answers as the first; an ACK of the failed delivery is refused.
    assert_eq!(c.fail(&n, "host:1", &["E", "e"]), Value::Okay);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:failed")]), 1);
    assert!(c.ack_err(&n, "host:1").contains("has already ended: it failed"));
}

#[test]
fn pop_with_ack_completes_the_job_and_takes_the_next_in_one_step() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("ackpop");
    for args in ["[1]", "[2]", "[2]"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", args]);
    }
    c.ok(&["TQ.POP", &n, "w", "q"]);
    // DELIVERIES is still accepted (replies always carry the count).
    let got = c.strings(&["TQ.POP", &n, "w", "q", "ACK", "1", "DELIVERIES"]);
    assert_eq!(got[..4], ["q", r#"{"class":"c","queue":"q","args":[2]}"#, "2", "1"]);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed")]), 1);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed:w")]), 1);
    let record = c.string(&["GET", &format!("{n}:worker:w:q")]).expect("the new job's record");
    assert!(record.contains(r#""args":[2]"#), "{record}");
    // The next job is a twin of the one held: delivery ids tell them apart.
    let twin = c.strings(&["TQ.POP", &n, "w", "q", "ACK", "2"]);
    assert_eq!(twin[..3], ["q", r#"{"class":"c","queue":"q","args":[2]}"#, "3"]);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed")]), 2);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0);
    // Resent after a lost reply: the same answer, nothing completed or taken.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[3]"]);
    let before = c.quiet_digest();
    assert_eq!(c.strings(&["TQ.POP", &n, "w", "q", "ACK", "2"])[..3], twin[..3]);
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed")]), 2);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 1);
    c.ok(&["TQ.ACK", &n, "w", "3"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    c.ok(&["TQ.ACK", &n, "w", "4"]);
    let _ = before;
    // Nothing held: a delivery the worker never held is refused, nothing written.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    assert!(c.err(&["TQ.POP", &n, "w", "q", "ACK", "999"]).starts_with("NOJOB"));
    let e = c.err(&["TQ.BPOP", &n, "w", "q", "ACK", "1", "0"]);
    assert!(e.contains("ACK is an option of TQ.POP"), "{e}");
    assert_eq!(c.digest(), before);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[4]"]);
    c.ok(&["TQ.POP", &n, "w", "q"]);
    let d = c.delivery(&n, "w");
    assert_eq!(c.ok(&["TQ.POP", &n, "w", "q", "ACK", &d]), Value::Nil, "the queue is empty");
    // Resent: nil again, though a job is waiting now.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[5]"]);
    assert_eq!(c.ok(&["TQ.POP", &n, "w", "q", "ACK", &d]), Value::Nil, "answered as the first time");
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed")]), 5);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:worker:w:q")]), 0);
    assert!(c.live_inflight(&n).is_empty());
}

#[test]
fn pop_star_takes_every_queue_alphabetically() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("star");
    for q in ["beta", "alpha", "gamma"] {
        c.ok(&["TQ.ENQUEUE", &n, q, "c"]);
    }
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(c.strings(&["TQ.POP", &n, "w", "*"])[0].clone());
        c.ack(&n, "w");
    }
    assert_eq!(order, ["alpha", "beta", "gamma"]);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:workers")]), ["w:*"]);
}

#[test]
fn corrupt_payloads_go_to_failed_and_do_not_block_the_queue() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("corrupt");
    let q = format!("{n}:queue:q");
    c.ok(&["RPUSH".as_bytes(), q.as_bytes(), b"\xff\xfe not json"]);
    c.ok(&["RPUSH", &q, r#"{"args":[]}"#]);
    c.ok(&["RPUSH", &q, r#"{"class":"good","queue":"q","args":[]}"#]);
    let got = c.strings(&["TQ.POP", &n, "w", "q"]);
    assert_eq!(got[1], r#"{"class":"good","queue":"q","args":[]}"#);
    let failed = c.strings(&["LRANGE", &format!("{n}:failed"), "0", "-1"]);
    assert_eq!(failed.len(), 2);
    for f in &failed {
        let v: serde_json::Value = serde_json::from_str(f).expect("failure records stay valid JSON");
        assert_eq!(v["exception"], "TQ::CorruptPayload");
        assert_eq!(v["queue"], "q");
    }
    assert_eq!(c.int(&["GET", &format!("{n}:stat:failed")]), 2);
    // Only garbage left: nil, and the queue is empty afterwards.
    c.ack(&n, "w");
    c.ok(&["RPUSH", &q, "]"]);
    assert_eq!(c.ok(&["TQ.POP", &n, "w", "q"]), Value::Nil);
    assert_eq!(c.int(&["LLEN", &q]), 0);
}

#[test]
fn payloads_of_several_megabytes() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("big");
    let blob = "x\u{e9}\"\\".repeat(1 << 20); // 5 MiB as UTF-8, escapes included
    let args = serde_json::to_string(&[&blob]).expect("json");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", &args]);
    let got = c.list(&["TQ.POP", &n, "w", "q"]);
    let want = format!(r#"{{"class":"c","queue":"q","args":{args}}}"#);
    assert_eq!(got[1].len(), want.len());
    assert!(got[1] == want.as_bytes());
    c.fail(&n, "w", &["E", "big"]);
    let f = c.bytes(&["LINDEX", &format!("{n}:failed"), "0"]).expect("failure");
    assert!(f.len() > 5 << 20);
    assert_eq!(c.string(&["PING"]), Some("PONG".into()));
}

#[test]
fn wrong_types_are_named_and_nothing_is_written() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("wrongtype");
    c.ok(&["SET", &format!("{n}:queue:s"), "x"]);
    c.ok(&["SET", &format!("{n}:delayed_queue_schedule"), "x"]);
    c.ok(&["RPUSH", &format!("{n}:tq:inflight:w"), "x"]);
    let before = c.quiet_digest();
    let e = c.err(&["TQ.ENQUEUE", &n, "s", "c"]);
    assert_eq!(e, format!("WRONGTYPE key '{n}:queue:s' holds a string, tq expects a list"));
    assert!(c.err(&["TQ.ENQUEUEAT", &n, "1000", "q", "c"]).contains("delayed_queue_schedule"));
    assert!(c.err(&["TQ.PROMOTE", &n]).starts_with("WRONGTYPE"));
    assert!(c.err(&["TQ.POP", &n, "w", "q"]).contains("tq:inflight"));
    assert!(c.err(&["TQ.ACK", &n, "w", "1"]).starts_with("WRONGTYPE"));
    assert_eq!(c.digest(), before);
}

#[test]
fn commands_work_inside_multi_and_lua() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("multi");
    let mut pipe = redis::pipe();
    pipe.atomic()
        .cmd("TQ.ENQUEUE")
        .arg(&n)
        .arg("q")
        .arg("c")
        .arg("[1]")
        .cmd("TQ.POP")
        .arg(&n)
        .arg("w")
        .arg("q")
        .cmd("TQ.ACK")
        .arg(&n)
        .arg("w")
        .arg("1"); // the namespace's first delivery
    let (len, popped, ack): (i64, Vec<String>, String) = pipe.query(&mut c.0).expect("transaction");
    assert_eq!((len, popped[0].as_str(), popped[2].as_str(), ack.as_str()), (1, "q", "1", "OK"));
    // In a script, the pop's reply gives the id to the ACK.
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[3]"]);
    let script = "local j = redis.call('TQ.POP', KEYS[1], 'w', 'q') return redis.call('TQ.ACK', KEYS[1], 'w', j[3])";
    assert_eq!(c.ok(&["EVAL", script, "1", &n]), Value::Okay);
    let v = c.ok(&["EVAL", "return redis.call('TQ.ENQUEUE', KEYS[1], 'q', 'c', '[2]')", "1", &n]);
    assert_eq!(v, Value::Int(1));
}

/// A busy worker's `TQ.POP ... ACK` (`tq_core::work::busy_pop_ack`) is
/// planned in one pass, counted in `INFO tq` as `tq_pop_ack_one_pass`; every
/// other case goes the general way and answers as before. (Debug builds,
/// which the tests load, also plan each one-pass step the general way and
/// refuse the command when the two plans differ.)
#[test]
fn a_busy_workers_pop_ack_is_planned_in_one_pass_and_other_cases_as_before() {
    let s = Server::start_with(common::Opts::module_with(&["metrics", "no"]));
    let mut c = s.conn();
    let n = ns("busy");
    let one_pass = |c: &mut common::Conn| -> u64 {
        c.info_field("tq", "tq_pop_ack_one_pass").expect("tq_pop_ack_one_pass").parse().expect("a count")
    };
    assert_eq!(one_pass(&mut c), 0);
    for i in 0..10 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "C", &format!("[{i}]")]);
    }
    let mut held = c.strings(&["TQ.POP", &n, "w", "q"]);
    for i in 1..10 {
        let next = c.strings(&["TQ.POP", &n, "w", "q", "ACK", &held[2]]);
        assert_eq!(next[..2], ["q".to_string(), format!(r#"{{"class":"C","queue":"q","args":[{i}]}}"#)]);
        assert_eq!(next[3], "1", "a first delivery");
        held = next;
    }
    assert_eq!(one_pass(&mut c), 9, "each step of the busy worker in one pass");
    assert_eq!(c.stat(&n, "processed"), 9);
    // Its queue empty: the general way, which answers nil and files the
    // ACK's tombstone.
    assert_eq!(c.q(&["TQ.POP", &n, "w", "q", "ACK", &held[2]]), Ok(Value::Nil));
    assert_eq!(c.stat(&n, "processed"), 10);
    assert_eq!(one_pass(&mut c), 9);

    // Each case below is one the one-pass plan leaves to the general one:
    // a worker of its own takes a job, `setup` runs, and its POP ... ACK
    // goes the general way.
    let take_then = |c: &mut common::Conn, w: &str, setup: &[&[&str]], queues: &[&str], extra: &[&str]| {
        for i in 0..2 {
            c.ok(&["TQ.ENQUEUE", &n, "q", "C", &format!("[{}]", 100 + i)]);
        }
        let mut pop = vec!["TQ.POP", &n, w];
        pop.extend_from_slice(queues);
        let first = c.strings(&pop);
        for cmd in setup {
            c.ok(cmd);
        }
        let before = one_pass(c);
        pop.extend_from_slice(extra);
        pop.extend_from_slice(&["ACK", &first[2]]);
        let got = c.strings(&pop);
        assert_eq!(one_pass(c), before, "{setup:?} {queues:?} {extra:?}: planned the general way");
        c.ok(&["DEL", &format!("{n}:queue:q"), &format!("{n}:queue:r")]);
        got
    };
    // A broadcast waits in the worker's mailbox: it comes first.
    let got = take_then(
        &mut c,
        "w1",
        &[&["TQ.HEARTBEAT", &n, "w1", "60000"], &["TQ.BROADCAST", &n, "B", "[7]"]],
        &["q"],
        &[],
    );
    assert_eq!(got[0], "tq:broadcast");
    // A paused queue (here another one), two queues named, JOBLOCK.
    take_then(&mut c, "w2", &[&["TQ.PAUSE", &n, "r"]], &["q"], &[]);
    c.ok(&["TQ.RESUME", &n, "r"]);
    take_then(&mut c, "w3", &[], &["q", "r"], &[]);
    take_then(&mut c, "w4", &[], &["q"], &["JOBLOCK", "1000"]);
    // The next job has a QueueLock (UNIQUE), or is periodic.
    let lpop = format!("{n}:queue:q");
    let got = take_then(&mut c, "w5", &[&["LPOP", &lpop], &["TQ.ENQUEUE", &n, "q", "C", "[1]", "UNIQUE"]], &["q"], &[]);
    assert_eq!(got[1], r#"{"class":"C","queue":"q","args":[1]}"#);
    assert_eq!(c.q(&["EXISTS", &format!("{n}:lock:C:q:[1]")]), Ok(Value::Int(0)), "its QueueLock went with it");
    take_then(&mut c, "w6", &[&["TQ.RECUR", &n, "C", "q", "60000", "[101]"]], &["q"], &[]);
    // With the cases gone, the busy worker is back on the one-pass plan.
    c.ok(&["TQ.UNRECUR", &n, "C", "q", "[101]"]);
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "C", &format!("[{}]", 200 + i)]);
    }
    let mut held = c.strings(&["TQ.POP", &n, "w9", "q"]);
    let before = one_pass(&mut c);
    for _ in 0..2 {
        held = c.strings(&["TQ.POP", &n, "w9", "q", "ACK", &held[2]]);
    }
    assert_eq!(one_pass(&mut c), before + 2);
}
