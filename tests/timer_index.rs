//! The timer visits only namespaces with something due (its index of next
//! due times), serves every one that has, finds timed keys brought in whole
//! (RESTORE, MIGRATE, RENAME, MOVE, COPY), and keeps one bad key from
//! stopping the rest of its namespace's timed work.

mod common;

use common::*;

/// Runs `cmds` in one pipeline (thousands of namespaces are set up fast).
fn pipelined(c: &mut Conn, cmds: &[Vec<String>]) {
    for chunk in cmds.chunks(1000) {
        let mut p = redis::pipe();
        for cmd in chunk {
            p.cmd(&cmd[0]).arg(&cmd[1..]).ignore();
        }
        p.query::<()>(&mut c.0).expect("pipeline");
    }
}

fn visits(c: &mut Conn) -> u64 {
    c.info_field("tq", "tq_timer_ns_visits").expect("INFO tq has tq_timer_ns_visits").parse().expect("a count")
}

fn cmd(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// node-resque's enqueueAt, written by a plain client.
fn node_enqueue_at(n: &str, ts: u64, queue: &str, args: &str) -> Vec<Vec<String>> {
    let payload = job(queue, "NodeJob", args);
    let ts = ts.to_string();
    vec![
        cmd(&["RPUSH", &format!("{n}:delayed:{ts}"), &payload]),
        cmd(&["SADD", &format!("{n}:timestamps:{payload}"), &format!("delayed:{ts}")]),
        cmd(&["ZADD", &format!("{n}:delayed_queue_schedule"), &ts, &ts]),
    ]
}

#[test]
fn idle_namespaces_are_not_visited_until_something_is_due() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let far_s = c.server_ms() / 1000 + 86_400;
    let mut cmds = Vec::new();
    // Half through tq (the due time is known from the write), half written
    // by a plain client (visited once to learn it).
    for i in 0..3000 {
        let n = format!("idle{i}");
        if i % 2 == 0 {
            cmds.push(cmd(&["TQ.ENQUEUEAT", &n, &(far_s * 1000).to_string(), "q", "c", "[1]"]));
        } else {
            cmds.extend(node_enqueue_at(&n, far_s, "q", "[1]"));
        }
    }
    pipelined(&mut c, &cmds);
    assert_eq!(c.info_field("tq", "tq_timer_namespaces").as_deref(), Some("3000"));
    // Settled once each plain namespace had its one visit.
    wait_until(30, "the first visits", || visits(&mut c) >= 1500);
    let mut last = visits(&mut c);
    wait_until(30, "visits to stop", || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        let v = visits(&mut c);
        std::mem::replace(&mut last, v) == v
    });
    let before = visits(&mut c);
    std::thread::sleep(std::time::Duration::from_secs(1));
    let after = visits(&mut c);
    // The old timer walked every namespace every 100 ms: ~30,000 here.
    assert!(after - before < 50, "{} namespace visits in a second with nothing due", after - before);
    assert!(before < 3000, "{before} visits to set up 3000 namespaces");
    for i in [0, 1, 2998, 2999] {
        assert_eq!(c.int(&["ZCARD", &format!("idle{i}:delayed_queue_schedule")]), 1);
        assert_eq!(c.int(&["LLEN", &format!("idle{i}:queue:q")]), 0);
    }
}

#[test]
fn every_namespace_with_a_due_job_is_promoted() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let now_s = c.server_ms() / 1000;
    let mut cmds = Vec::new();
    for i in 0..2500 {
        let n = format!("due{i}");
        if i % 2 == 0 {
            cmds.push(cmd(&["TQ.ENQUEUEAT", &n, &((now_s - 5) * 1000).to_string(), "q", "c", "[1]"]));
            cmds.push(cmd(&["TQ.ENQUEUEAT", &n, &((now_s + 1) * 1000).to_string(), "q", "c", "[2]"]));
        } else {
            cmds.extend(node_enqueue_at(&n, now_s - 5, "q", "[1]"));
            cmds.extend(node_enqueue_at(&n, now_s + 1, "q", "[2]"));
        }
    }
    pipelined(&mut c, &cmds);
    let promoted = |c: &mut Conn| c.info_field("tq", "tq_promoted").and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    wait_until(60, "5000 jobs promoted", || promoted(&mut c) == 5000);
    for i in 0..2500 {
        let n = format!("due{i}");
        let class = if i % 2 == 0 { "c" } else { "NodeJob" };
        assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", class, "[1]"), job("q", class, "[2]")], "{n}");
        assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed_queue_schedule")]), 0);
    }
    // Nothing timed is left: the namespaces are forgotten.
    wait_until(10, "the index emptied", || c.info_field("tq", "tq_timer_namespaces").as_deref() == Some("0"));
}

#[test]
fn a_short_lease_brings_a_far_due_namespace_closer() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "500"]));
    let mut c = s.conn();
    let n = ns("lease");
    let far = (c.server_ms() / 1000 + 86_400) * 1000;
    c.ok(&["TQ.ENQUEUEAT", &n, &far.to_string(), "q", "c", "[0]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    popped_job(c.ok(&["TQ.POP", &n, "w", "q"])).expect("a job");
    wait_until(10, "the lease given back", || c.inflight(&n, "w").is_some_and(|e| e.lost()));
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "c", "[1]")]);
}

/// A server without the module, holding a due delayed job of namespace `n`
/// (node-resque's layout); returns it and the keys it wrote.
fn plain_server_with_a_due_job(n: &str) -> (Server, Vec<String>) {
    let s = Server::start_with(Opts { module: false, module_args: Vec::new(), args: Vec::new() });
    let mut c = s.conn();
    let ts = c.server_ms() / 1000 - 2;
    let cmds = node_enqueue_at(n, ts, "q", "[1]");
    let keys = cmds.iter().map(|c| c[1].clone()).collect();
    pipelined(&mut c, &cmds);
    (s, keys)
}

fn wait_promoted(c: &mut Conn, n: &str) {
    wait_until(10, &format!("the job of {n} promoted"), || c.int(&["LLEN", &format!("{n}:queue:q")]) == 1);
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "NodeJob", "[1]")]);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:delayed_queue_schedule")]), 0);
}

#[test]
fn a_schedule_restored_from_a_dump_is_served() {
    let n = ns("restored");
    let (plain, keys) = plain_server_with_a_due_job(&n);
    let mut from = plain.conn();
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    for key in &keys {
        let dump = from.bytes(&["DUMP", key]).expect("a dump");
        let mut restore = redis::cmd("RESTORE");
        restore.arg(key).arg(0).arg(dump);
        restore.query::<()>(&mut c.0).expect("RESTORE");
    }
    wait_promoted(&mut c, &n);
}

#[test]
fn a_schedule_migrated_from_another_server_is_served() {
    let n = ns("migrated");
    let (plain, keys) = plain_server_with_a_due_job(&n);
    let mut from = plain.conn();
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let port = s.port.to_string();
    let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
    args.extend(keys.iter().map(String::as_str));
    assert_eq!(from.ok(&args), Value::Okay);
    assert_eq!(from.int(&["EXISTS", &keys[2]]), 0, "migrated away");
    wait_promoted(&mut c, &n);
}

#[test]
fn a_schedule_renamed_or_copied_into_place_is_served() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    for how in ["RENAME", "COPY"] {
        let n = ns(&how.to_lowercase());
        let mut cmds = node_enqueue_at(&n, c.server_ms() / 1000 - 2, "q", "[1]");
        // Written under another name (not a timed key), then put in place.
        let staging = format!("{n}:staging");
        let schedule = std::mem::replace(&mut cmds[2][1], staging.clone());
        pipelined(&mut c, &cmds);
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0);
        c.ok(&[how, &staging, &schedule]);
        wait_promoted(&mut c, &n);
    }
}

#[test]
fn a_schedule_moved_from_another_database_is_served() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("moved");
    let cmds = node_enqueue_at(&n, c.server_ms() / 1000 - 2, "q", "[1]");
    // Written in db 1 and moved to db 0 in one transaction: the timer sees
    // the schedule only in db 0.
    let mut p = redis::pipe();
    p.atomic().cmd("SELECT").arg(1).ignore();
    for cmd in &cmds {
        p.cmd(&cmd[0]).arg(&cmd[1..]).ignore();
    }
    // SELECT before each MOVE: Valkey 8.1 leaves the client in the
    // destination database after a MOVE or COPY ... DB when a module
    // subscribes to keyspace events (a server bug, valkey-io/valkey#4024).
    for cmd in &cmds {
        p.cmd("SELECT").arg(1).ignore();
        p.cmd("MOVE").arg(&cmd[1]).arg(0).ignore();
    }
    p.cmd("SELECT").arg(0).ignore();
    p.query::<()>(&mut c.0).expect("MULTI ... EXEC");
    wait_promoted(&mut c, &n);
}

#[test]
fn a_key_of_the_wrong_type_stops_only_its_own_job() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "1000"]));
    let mut c = s.conn();
    let n = ns("bad-key");
    let k = |s: &str| format!("{n}:{s}");
    // A job taken with a 1 s lease.
    c.ok(&["TQ.ENQUEUE", &n, "l", "c", "[0]"]);
    popped_job(c.ok(&["TQ.POP", &n, "w", "l"])).expect("a job");
    // A hash where queue q2 should be, and due jobs for q2 and q1 in one
    // bucket, the bad one first, and one more for q1 later.
    c.ok(&["HSET", &k("queue:q2"), "not", "a list"]);
    let now_s = c.server_ms() / 1000;
    let due = ((now_s - 1) * 1000).to_string();
    let mut cmds = vec![cmd(&["TQ.ENQUEUEAT", &n, &due, "q2", "c", "[1]"])];
    cmds.push(cmd(&["TQ.ENQUEUEAT", &n, &due, "q1", "c", "[2]"]));
    cmds.push(cmd(&["TQ.ENQUEUEAT", &n, &((now_s + 1) * 1000).to_string(), "q1", "c", "[3]"]));
    pipelined(&mut c, &cmds);
    c.wait_llen(&k("queue:q1"), 2, 10);
    assert_eq!(c.lrange(&k("queue:q1")), vec![job("q1", "c", "[2]"), job("q1", "c", "[3]")]);
    // The bad job is in failed, saying why; the hash is untouched.
    let failed = c.lrange(&k("failed"));
    assert_eq!(failed.len(), 1, "{failed:?}");
    let rec: serde_json::Value = serde_json::from_str(&failed[0]).expect("a failure record");
    assert_eq!(rec["exception"], "TQ::WrongType");
    assert_eq!(rec["queue"], "q2");
    assert_eq!(rec["payload"]["args"], serde_json::json!([1]));
    assert!(rec["error"].as_str().expect("error").contains(&k("queue:q2")), "{rec}");
    assert_eq!(c.int(&["HLEN", &k("queue:q2")]), 1);
    assert_eq!(c.int(&["EXISTS", &k("delayed_queue_schedule")]), 0);
    // The lease of the same namespace ran out and its job went back.
    wait_until(10, "the lease given back", || c.inflight(&n, "w").is_some_and(|e| e.lost()));
    assert_eq!(c.lrange(&k("queue:l")), vec![job("l", "c", "[0]")]);
    // The log names the namespace, the kind of work and the key.
    let log = s.log();
    let line = log.lines().find(|l| l.contains(&k("queue:q2"))).unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(line.contains(&format!("namespace '{n}'")) && line.contains("promotion"), "{line}");
}

#[test]
fn a_periodic_task_whose_queue_has_the_wrong_type_stops_only_itself() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("bad-recur");
    let k = |s: &str| format!("{n}:{s}");
    c.ok(&["SET", &k("queue:bad"), "not a list"]);
    c.ok(&["TQ.RECUR", &n, "tick", "bad", "60000"]);
    c.ok(&["TQ.RECUR", &n, "tick", "good", "60000"]);
    c.wait_llen(&k("queue:good"), 1, 10);
    wait_until(10, "the bad run in failed", || c.int(&["LLEN", &k("failed")]) == 1);
    let rec: serde_json::Value = serde_json::from_str(&c.lrange(&k("failed"))[0]).expect("a failure record");
    assert_eq!(rec["exception"], "TQ::WrongType");
    assert_eq!(rec["queue"], "bad");
    assert!(rec["error"].as_str().expect("error").contains(&k("queue:bad")), "{rec}");
    assert_eq!(c.string(&["GET", &k("queue:bad")]).as_deref(), Some("not a list"));
    let log = s.log();
    let line = log.lines().find(|l| l.contains(&k("queue:bad"))).unwrap_or_else(|| panic!("no warning:\n{log}"));
    assert!(line.contains(&format!("namespace '{n}'")) && line.contains("periodic"), "{line}");
}
