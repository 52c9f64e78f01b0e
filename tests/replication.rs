//! Replication: tq replicates the effects of its commands as plain Redis
//! commands, so a replica without the module follows a primary with it, and
//! nothing reaches the stream on an error or a no-op.

mod common;
use tq_testkit::workload;

use common::{ns, wait_until, Conn, Opts, Server, Value};
use workload::Mix;

/// A replica of `primary`, with or without the module, once its link is up.
fn replica_of(primary: &Server, module: bool) -> Server {
    let r = Server::start_with(Opts {
        module,
        args: ["--replicaof", "127.0.0.1", &primary.port.to_string(), "--repl-diskless-sync-delay", "0"]
            .map(String::from)
            .to_vec(),
        ..Opts::default()
    });
    let mut c = r.conn();
    wait_until(30, "master_link_status:up", || {
        c.info_field("replication", "master_link_status").as_deref() == Some("up")
    });
    r
}

/// A primary with the module. Full syncs start at once (no diskless-sync
/// delay); `extra` adds arguments.
fn start_primary(extra: &[&str]) -> Server {
    let mut args: Vec<String> = vec!["--repl-diskless-sync-delay".into(), "0".into()];
    args.extend(extra.iter().map(|a| a.to_string()));
    Server::start_with(Opts { module: true, args, ..Opts::default() })
}

/// Waits (polling, generous deadline) until the one replica has acknowledged
/// everything, then `WAIT 1 5000` must confirm it.
fn wait_replicated(p: &mut Conn) {
    wait_until(60, "the replica acknowledging the primary's offset", || {
        let offset = repl_offset(p);
        let info = p.string(&["INFO", "replication"]).unwrap_or_default();
        info.lines().any(|l| l.starts_with("slave0:") && l.contains(&format!(",offset={offset},")))
    });
    assert_eq!(p.int(&["WAIT", "1", "5000"]), 1, "the replica acknowledged the stream");
}

fn repl_offset(c: &mut Conn) -> i64 {
    c.info_field("replication", "master_repl_offset").expect("master_repl_offset").parse().expect("offset")
}

/// Errors the replica sent back to its primary: Redis logs each of them.
fn assert_no_errors_from_primary(replica: &Server) {
    let log = replica.log();
    assert!(!log.contains("sending an error to its master"), "the replica failed a replicated command:\n{log}");
}

fn commandstats(c: &mut Conn) -> Vec<String> {
    c.string(&["INFO", "commandstats"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("cmdstat_").and_then(|l| l.split(':').next()).map(str::to_string))
        .collect()
}

#[test]
fn a_replica_without_the_module_follows_every_command() {
    let primary = start_primary(&[]);
    let replica = replica_of(&primary, false);
    let mut p = primary.conn();
    let mut r = replica.conn();
    assert!(!r.has_tq(), "the replica has no module");

    let a = ns("repl-a");
    let b = ns("repl-b");
    workload::run(&mut p.0, &a, Mix::ALL);
    workload::run(&mut p.0, &b, Mix { big: false, multi: true, lua: false });
    p.wait_tallies_written(&a);
    p.wait_tallies_written(&b);
    wait_replicated(&mut p);

    // The replica ran plain commands only: TQ.* never reached it. (Read
    // before the test reads anything else from the replica.)
    let stats = commandstats(&mut r);
    assert!(!stats.iter().any(|s| s.to_ascii_lowercase().starts_with("tq.")), "{stats:?}");
    for must in workload::CORE_EFFECTS.iter().chain(&["MULTI", "EXEC"]) {
        let must = must.to_ascii_lowercase();
        assert!(stats.contains(&must), "no cmdstat_{must} on the replica: {stats:?}");
    }
    assert!(["set", "mset", "hset"].iter().any(|c| stats.contains(&c.to_string())), "{stats:?}");
    // The test's own commands, and CONFIG GET, which Valkey 9 counts three
    // of at start-up in every server, module or not.
    let test_own = ["ping", "info", "module|list", "select", "replconf", "command", "config|get"];
    for s in stats.iter().filter(|s| !test_own.contains(&s.as_str()) && !s.starts_with("client|")) {
        assert!(
            workload::EFFECT_COMMANDS.iter().chain(&["MULTI", "EXEC"]).any(|e| e.eq_ignore_ascii_case(s)),
            "the replica ran {s}, which is not one of tq's effects: {stats:?}"
        );
    }

    assert_eq!(r.digest(), p.digest(), "DEBUG DIGEST differs between primary and replica");
    for n in [&a, &b] {
        let on_primary = workload::snapshot(&mut p.0, n);
        let on_replica = workload::snapshot(&mut r.0, n);
        assert_eq!(workload::key_names(&on_replica), workload::key_names(&on_primary));
        assert!(on_primary == on_replica, "values differ for namespace {n}");
    }
    // A few keys, read directly.
    for key in ["queue:low", "queue:mid", "queue:new", "queue:big", "failed", "delayed_queue_schedule"] {
        let key = format!("{a}:{key}");
        let cmd = if key.ends_with("schedule") { "ZRANGE" } else { "LRANGE" };
        let want = p.list(&[cmd, &key, "0", "-1"]);
        assert!(!want.is_empty(), "{key} is empty");
        assert!(r.list(&[cmd, &key, "0", "-1"]) == want, "{key} differs");
    }
    let record = format!("{a}:worker:w-busy:mid,low");
    assert!(p.string(&["GET", &record]).is_some());
    assert_eq!(r.string(&["GET", &record]), p.string(&["GET", &record]));
    // tq's own bookkeeping (`<ns>:tq:*`) is there too.
    let own = p.strings(&["KEYS", &format!("{a}:tq:*")]);
    assert!(!own.is_empty(), "no {a}:tq:* key on the primary");
    let mut own_on_replica = r.strings(&["KEYS", &format!("{a}:tq:*")]);
    own_on_replica.sort();
    let mut own_sorted = own.clone();
    own_sorted.sort();
    assert_eq!(own_on_replica, own_sorted);
    assert_eq!(r.string(&["GET", &format!("{a}:stat:failed")]), p.string(&["GET", &format!("{a}:stat:failed")]));

    assert_no_errors_from_primary(&replica);
}

#[test]
fn errors_and_no_ops_replicate_nothing() {
    let primary = start_primary(&["--repl-ping-replica-period", "3600"]);
    let replica = replica_of(&primary, false);
    let mut p = primary.conn();
    let n = ns("noop");
    let k = |s: &str| format!("{n}:{s}");

    // Setup (replicated): a registered empty queue, a busy worker, a future
    // delayed job, keys of the wrong type, and a restricted ACL user.
    p.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    p.ok(&["TQ.ENQUEUE", &n, "empty", "c"]);
    p.ok(&["TQ.POP", &n, "busy", "empty"]);
    p.ok(&["TQ.ENQUEUEAT", &n, "4102444800000", "q", "c", "[9]"]);
    p.ok(&["TQ.ENQUEUEAT", &n, "1000", "q", "dup", "[1]"]);
    let w = ns("wrong");
    for key in ["queue:s", "queues", "delayed_queue_schedule", "tq:inflight", "failed", "workers"] {
        p.ok(&["SET", &format!("{w}:{key}"), "x"]);
    }
    // Whatever the in-flight bookkeeping key of worker `w` is, it is not a list.
    p.ok(&["RPUSH", &format!("{w}:tq:inflight:w"), "x"]);
    p.ok(&["SET", &k("stat:failed"), "not a number"]);
    p.ok(&["ACL", "SETUSER", "limited", "on", ">pw", "+@all", &format!("~{n}"), &format!("~{n}:queue:*")]);
    p.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    wait_replicated(&mut p);
    assert_eq!(replica.conn().digest(), p.digest());

    let mut limited = primary.conn();
    limited.ok(&["AUTH", "limited", "pw"]);

    let before = repl_offset(&mut p);
    let check = |what: &str, p: &mut Conn| {
        assert_eq!(repl_offset(p), before, "{what} added to the replication stream");
    };

    let errors: Vec<Vec<&str>> = vec![
        // Bad arguments.
        vec!["TQ.ENQUEUE", &n],
        vec!["TQ.ENQUEUE", &n, "q"],
        vec!["TQ.ENQUEUE", &n, "q", "c", "[1]", "extra"],
        vec!["TQ.ENQUEUE", &n, "q", "c", "[1"],
        vec!["TQ.ENQUEUE", &n, "*", "c"],
        vec!["TQ.ENQUEUE", &n, "", "c"],
        vec!["TQ.ENQUEUE", "", "q", "c"],
        vec!["TQ.ENQUEUEAT", &n, "-1", "q", "c"],
        vec!["TQ.ENQUEUEAT", &n, "1.5", "q", "c"],
        vec!["TQ.ENQUEUEAT", &n, "99999999999999999999", "q", "c"],
        vec!["TQ.ENQUEUEIN", &n, "x", "q", "c"],
        vec!["TQ.ENQUEUEIN", &n, "8640000000000000", "q", "c"],
        vec!["TQ.PROMOTE", &n, "LIMIT"],
        vec!["TQ.PROMOTE", &n, "LIMIT", "0"],
        vec!["TQ.PROMOTE", &n, "LIMIT", "1", "LIMIT", "2"],
        vec!["TQ.PROMOTE", &n, "COUNT", "1"],
        vec!["TQ.POP", &n, "w"],
        vec!["TQ.POP", &n, "w", "q", "*"],
        vec!["TQ.POP", &n, "", "q"],
        vec!["TQ.ACK", &n],
        vec!["TQ.ACK", &n, "w", "1", "extra"],
        vec!["TQ.ACK", &n, "w", "x"],
        vec!["TQ.FAIL", &n, "busy", "1", "E"],
        vec!["TQ.FAIL", &n, "busy", "1", "E", "e", "{}"],
        vec!["TQ.FAIL", &n, "busy", "1", "E", "e", "[1"],
        vec!["TQ.POP", &n, "busy", "q", "ACK"],
        // Duplicate delayed job (bucket 1 already holds it).
        vec!["TQ.ENQUEUEAT", &n, "1200", "q", "dup", "[1]"],
        // No job in flight.
        vec!["TQ.ACK", &n, "idle", "1"],
        vec!["TQ.POP", &n, "idle", "q", "ACK", "1"],
        vec!["TQ.BPOP", &n, "busy", "q", "ACK", "1", "0"],
        vec!["TQ.FAIL", &n, "idle", "1", "E", "e", "[]"],
        vec!["TQ.HEARTBEAT", &n, "idle", "1000", "1"],
        // A delivery the worker does not hold (it holds delivery 1).
        vec!["TQ.ACK", &n, "busy", "2"],
        vec!["TQ.NACK", &n, "busy", "2"],
        vec!["TQ.POP", &n, "busy", "q", "ACK", "2"],
        vec!["TQ.HEARTBEAT", &n, "busy", "1000", "2"],
        // Wrong types.
        vec!["TQ.ENQUEUE", &w, "s", "c"],
        vec!["TQ.ENQUEUE", &w, "q", "c"],
        vec!["TQ.ENQUEUEAT", &w, "1000", "q", "c"],
        vec!["TQ.ENQUEUEIN", &w, "1000", "q", "c"],
        vec!["TQ.PROMOTE", &w],
        vec!["TQ.POP", &w, "w", "q"],
        vec!["TQ.POP", &w, "w", "*"],
        vec!["TQ.ACK", &w, "w", "1"],
        vec!["TQ.FAIL", &w, "w", "1", "E", "e"],
        // A counter that INCR would refuse.
        vec!["TQ.FAIL", &n, "busy", "1", "E", "e"],
    ];
    for cmd in &errors {
        let e = p.err(cmd);
        assert!(e.split(' ').next().is_some_and(|code| code.chars().all(|c| c.is_ascii_uppercase())), "{cmd:?}: {e}");
        check(&format!("{cmd:?} (failed with {e})"), &mut p);
    }
    assert!(p.err(&["TQ.ENQUEUEAT", &n, "1200", "q", "dup", "[1]"]).starts_with("DUPLICATE"));
    assert!(p.ack_err(&n, "idle").starts_with("NOJOB"));
    assert!(p.err(&["TQ.ACK", &n, "busy", "2"]).starts_with("NOJOB"));
    assert!(p.err(&["TQ.ENQUEUE", &w, "s", "c"]).starts_with("WRONGTYPE"));
    // Bad bytes.
    for cmd in [
        vec![&b"TQ.ENQUEUE"[..], n.as_bytes(), b"q\xff", b"c"],
        vec![&b"TQ.ENQUEUE"[..], n.as_bytes(), b"q", b"c\0"],
        vec![&b"TQ.FAIL"[..], n.as_bytes(), b"busy", b"1", b"E\xff", b"e"],
    ] {
        p.err(&cmd);
        check("invalid UTF-8 / NUL argument", &mut p);
    }
    // ACL: the user may touch the namespace key and its queues only, so
    // ENQUEUE is refused on `<ns>:queues` before anything is written.
    let e = limited.err(&["TQ.ENQUEUE", &n, "q", "c"]);
    assert!(e.starts_with("NOPERM"), "{e}");
    check("a NOPERM refusal", &mut p);

    // No-ops.
    let nil_pops: Vec<Vec<&str>> = vec![
        vec!["TQ.POP", &n, "w", "empty"],
        vec!["TQ.POP", &n, "w", "none", "empty"],
        vec!["TQ.POP", &n, "w", "unknown"],
    ];
    for cmd in &nil_pops {
        assert_eq!(p.ok(cmd), Value::Nil, "{cmd:?}");
        check(&format!("{cmd:?} (nil)"), &mut p);
    }
    // Lock no-ops: same owner again, held by another, not the leader, a
    // unique job already waiting (in a namespace of their own).
    let l = ns("locks");
    p.ok(&["TQ.LOCK", &l, "lk", "a", "60000"]);
    p.int(&["TQ.LEADER", &l, "s1", "60000"]);
    p.ok(&["TQ.ENQUEUE", &l, "uq", "c", "[1]", "UNIQUE"]);
    let before_locks = repl_offset(&mut p);
    for cmd in [
        vec!["TQ.LOCK", &l, "lk", "a", "60000"],
        vec!["TQ.LOCK", &l, "lk", "b", "60000"],
        vec!["TQ.LEADER", &l, "s2", "60000"],
        vec!["TQ.RESIGN", &l, "s2"],
        vec!["TQ.ENQUEUE", &l, "uq", "c", "[1]", "UNIQUE"],
    ] {
        p.ok(&cmd);
        assert_eq!(repl_offset(&mut p), before_locks, "{cmd:?} added to the replication stream");
    }
    for cmd in [
        vec!["TQ.UNLOCK", &l, "lk", "a", "999", "OK"],
        vec!["TQ.UNLOCK", &l, "lk", "b", "1", "FAIL"],
        vec!["TQ.RENEW", &l, "none", "a", "1", "100"],
        vec!["TQ.HUNLOCK", &l, "h", "f", "a", "1", "OK"],
        vec!["TQ.LOCK", &l, "lk", "a", "0"],
    ] {
        p.err(&cmd);
        assert_eq!(repl_offset(&mut p), before_locks, "{cmd:?} added to the replication stream");
    }
    let before = repl_offset(&mut p);
    let check = |what: &str, p: &mut Conn| {
        assert_eq!(repl_offset(p), before, "{what} added to the replication stream");
    };
    let fresh = ns("fresh");
    assert_eq!(p.ok(&["TQ.POP", &fresh, "w", "*"]), Value::Nil);
    check("TQ.POP * on a namespace without queues", &mut p);
    assert_eq!(p.int(&["TQ.PROMOTE", &fresh]), 0);
    check("TQ.PROMOTE with no schedule", &mut p);

    // `q` still has jobs: drain it through a worker whose ACKs do write, then
    // check the pops and promotions that follow are no-ops again.
    let offset_before_drain = repl_offset(&mut p);
    let popped = p.strings(&["TQ.POP", &n, "w", "q"]);
    assert_eq!(popped[0], "q");
    assert!(repl_offset(&mut p) > offset_before_drain, "a real pop is replicated");
    let next = p.strings(&["TQ.POP", &n, "w", "q", "ACK", &popped[2]]);
    assert_eq!(next[0], "q", "ACK completes the job and takes the next");
    p.ack(&n, "w");
    // Bucket 1 (the "dup" job) is due: promote it, pop and ack it.
    assert_eq!(p.int(&["TQ.PROMOTE", &n]), 1);
    p.ok(&["TQ.POP", &n, "w", "q"]);
    p.ack(&n, "w");
    // The timer writes the ACKs' tallies ~2 s on: before the offset is read.
    // Nor may a minute of the job metrics close meanwhile (the checks below
    // take a second or more).
    p.wait_metrics_quiet(&n, 10_000);
    let before = repl_offset(&mut p);
    let check = |what: &str, p: &mut Conn| {
        assert_eq!(repl_offset(p), before, "{what} added to the replication stream");
    };
    assert_eq!(p.ok(&["TQ.POP", &n, "w", "*"]), Value::Nil);
    check("TQ.POP * on empty queues", &mut p);
    assert_eq!(p.ok(&["TQ.POP", &n, "w", "q", "empty"]), Value::Nil);
    check("TQ.POP on emptied queues", &mut p);
    assert_eq!(p.int(&["TQ.PROMOTE", &n]), 0);
    check("TQ.PROMOTE with only a future bucket", &mut p);
    assert_eq!(p.int(&["TQ.PROMOTE", &n, "LIMIT", "100000"]), 0);
    check("TQ.PROMOTE LIMIT with only a future bucket", &mut p);

    // A transaction and a script made only of no-ops and errors.
    p.ok(&["MULTI"]);
    p.ok(&["TQ.POP", &n, "w", "empty"]);
    p.ok(&["TQ.ACK", &n, "idle", "1"]);
    p.ok(&["TQ.PROMOTE", &n]);
    let _ = p.q(&["EXEC"]);
    check("MULTI with no-op TQ commands", &mut p);
    let v = p.ok(&[
        "EVAL",
        "return {redis.call('TQ.POP', KEYS[1], 'w', 'empty'), redis.call('TQ.PROMOTE', KEYS[1])}",
        "1",
        &n,
    ]);
    assert_eq!(v, Value::Array(vec![Value::Nil, Value::Int(0)]));
    check("EVAL with no-op TQ commands", &mut p);
    let _ = p.q(&["EVAL", "return redis.pcall('TQ.ACK', KEYS[1], 'idle')", "1", &n]);
    check("EVAL with a failing TQ command", &mut p);

    // Still nothing after a while (no background writes either).
    std::thread::sleep(std::time::Duration::from_millis(300));
    check("waiting", &mut p);
    let mut r = replica.conn();
    wait_until(10, "the replica reaching the primary's offset", || repl_offset(&mut r) == before);
    assert_eq!(r.digest(), p.digest());
    assert_no_errors_from_primary(&replica);
}

#[test]
fn a_promoted_replica_with_the_module_keeps_working() {
    let primary = start_primary(&[]);
    let replica = replica_of(&primary, true);
    let mut p = primary.conn();
    let mut r = replica.conn();
    let n = ns("failover");
    workload::run(&mut p.0, &n, Mix { big: false, multi: true, lua: true });
    p.wait_tallies_written(&n);
    wait_replicated(&mut p);
    assert_eq!(r.digest(), p.digest());

    // Read-only while it is a replica.
    let e = r.err(&["TQ.ENQUEUE", &n, "q", "c"]);
    assert!(e.starts_with("READONLY"), "{e}");
    assert!(r.err(&["TQ.POP", &n, "w", "high"]).starts_with("READONLY"));

    // A second replica, without the module, will follow the promoted node.
    r.ok(&["REPLICAOF", "NO", "ONE"]);
    wait_until(10, "role:master", || r.info_field("replication", "role").as_deref() == Some("master"));
    drop(primary);
    let follower = replica_of(&replica, false);

    // The job popped on the old primary is still in flight: the new primary
    // completes it.
    // A pop by its worker hands it out again (same delivery), and the new
    // primary completes it.
    let held = r.inflight(&n, "w-busy").expect("in flight").delivery;
    let again = r.strings(&["TQ.POP", &n, "w-busy", "mid"]);
    assert_eq!(again[2], held.to_string());
    assert_eq!(r.ack(&n, "w-busy"), Value::Okay);
    assert_eq!(r.int(&["EXISTS", &format!("{n}:worker:w-busy:mid,low")]), 0);
    let processed = r.int(&["GET", &format!("{n}:stat:processed")]);

    // Enqueue to an existing queue and to a new one.
    r.ok(&["TQ.ENQUEUE", &n, "high", "c", "[\"after\"]"]);
    r.ok(&["TQ.ENQUEUE", &n, "fresh", "c"]);
    let mut queues = r.strings(&["SMEMBERS", &format!("{n}:queues")]);
    queues.sort();
    assert!(queues.contains(&"high".to_string()) && queues.contains(&"fresh".to_string()), "{queues:?}");

    // Drain everything that is waiting, as the old workers would.
    let mut seen = 0;
    while let Value::Array(_) = r.ok(&["TQ.POP", &n, "w-new", "*"]) {
        r.ack(&n, "w-new");
        seen += 1;
        assert!(seen < 100, "queues do not drain");
    }
    assert!(seen >= 3, "only {seen} jobs were waiting");
    assert_eq!(r.int(&["GET", &format!("{n}:stat:processed")]), processed + seen);
    r.ok(&["TQ.ENQUEUEAT", &n, "1000", "late", "c"]);
    // (The workload's short ENQUEUEIN jobs may be due by now too.)
    assert!(r.int(&["TQ.PROMOTE", &n]) >= 1);
    assert_eq!(r.strings(&["TQ.POP", &n, "w-new", "late"])[0], "late");
    r.fail(&n, "w-new", &["E", "after failover", "[]"]);

    // The promoted node replicates effects too.
    r.wait_tallies_written(&n);
    wait_replicated(&mut r);
    assert_eq!(follower.conn().digest(), r.digest());
    let stats = commandstats(&mut follower.conn());
    assert!(!stats.iter().any(|s| s.starts_with("tq.")), "{stats:?}");
    assert_no_errors_from_primary(&follower);
}

/// Many leases running out at once (as when that many workers die): the
/// timer gives every job back in rounds whose writes are gathered into a
/// few commands per key, the jobs in the order one command a job would
/// leave them, and a replica without the module follows.
#[test]
fn a_burst_of_expired_leases_replicates_in_gathered_commands() {
    let primary = start_primary(&[]);
    let replica = replica_of(&primary, false);
    let mut p = primary.conn();
    let mut r = replica.conn();
    let n = ns("burst");
    let jobs = 300;
    for i in 0..jobs {
        p.ok(&["TQ.ENQUEUE", &n, "q", "Job", &format!("[{i}]")]);
    }
    for i in 0..jobs {
        let taken = p.ok(&["TQ.POP", &n, &format!("w{i}"), "q", "LEASE", "1000"]);
        assert!(!matches!(taken, Value::Nil), "job {i} taken");
    }
    // Leases in the order they run out (deadline, then name).
    let order = p.list(&["ZRANGE", &format!("{n}:tq:leases"), "0", "-1"]);
    assert_eq!(order.len(), jobs as usize);
    // Held past every lease: the timer then finds them all due at once.
    p.ok(&["DEBUG", "SLEEP", "1.5"]);
    let queue = format!("{n}:queue:q");
    wait_until(30, "every job back in its queue", || p.int(&["LLEN", &queue]) == jobs);
    // Given back in the order the leases run out, each to the head: the
    // last to run out ends first, as one LPUSH a job would leave them.
    let back = p.lrange(&queue);
    let args: Vec<String> = back
        .iter()
        .map(|j| serde_json::from_str::<serde_json::Value>(j).expect("payload")["args"][0].to_string())
        .collect();
    let want: Vec<String> =
        order.iter().rev().map(|w| String::from_utf8_lossy(w).trim_start_matches('w').to_string()).collect();
    assert_eq!(args, want, "jobs in the order one command a job would leave them");
    wait_replicated(&mut p);
    assert_eq!(r.digest(), p.digest(), "DEBUG DIGEST differs between primary and replica");
    // The replica ran a few LPUSHes, not one a job.
    let stats = r.string(&["INFO", "commandstats"]).unwrap_or_default();
    let lpushes: i64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_lpush:calls="))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert!((1..jobs / 10).contains(&lpushes), "{lpushes} LPUSHes replicated for {jobs} jobs given back");
    assert_no_errors_from_primary(&replica);
}

/// One TQ.PROMOTE over hundreds of small due buckets, orphans among them
/// (schedule entries without a list, due times of gone buckets): the
/// schedule is read in pieces (16, then 48, then 192...), and every job
/// moves once, in bucket order; a replica without the module ends equal.
#[test]
fn one_promotion_over_many_small_buckets_moves_every_job_once_and_replicates() {
    let primary = start_primary(&["--tq.auto-promote", "no"]);
    let replica = replica_of(&primary, false);
    let mut p = primary.conn();
    let mut r = replica.conn();
    let n = ns("pieces");
    let schedule = format!("{n}:delayed_queue_schedule");
    let mut want = Vec::new();
    // Filed as node-resque files them, long due: 300 buckets of two jobs,
    // and after every seventh one a schedule entry whose bucket is gone.
    for b in 1_000..1_300u64 {
        for j in 0..2 {
            let payload = format!(r#"{{"class":"Job","queue":"q","args":[{b},{j}]}}"#);
            p.ok(&["RPUSH", &format!("{n}:delayed:{b}"), &payload]);
            p.ok(&["SADD", &format!("{n}:timestamps:{payload}"), &format!("delayed:{b}")]);
            want.push(payload);
        }
        p.ok(&["ZADD", &schedule, &b.to_string(), &b.to_string()]);
        if b % 7 == 0 {
            let gone = format!("{b}.5");
            p.ok(&["ZADD", &schedule, &gone, &gone]);
            // A due time tq kept for a bucket someone else emptied.
            p.ok(&["ZADD", &format!("{n}:tq:due"), &(b * 1000).to_string(), &format!("{b}9")]);
        }
    }
    assert_eq!(p.int(&["TQ.PROMOTE", &n, "LIMIT", "1000"]), want.len() as i64);
    assert_eq!(p.lrange(&format!("{n}:queue:q")), want, "every job once, in bucket order");
    for gone in [schedule.clone(), format!("{n}:tq:due")] {
        assert_eq!(p.int(&["EXISTS", &gone]), 0, "{gone} left behind");
    }
    let markers = p.list(&["KEYS", &format!("{n}:timestamps:*")]);
    assert!(markers.is_empty(), "{} markers left behind", markers.len());
    wait_replicated(&mut p);
    assert_eq!(r.digest(), p.digest(), "DEBUG DIGEST differs between primary and replica");
    assert_no_errors_from_primary(&replica);
}

/// A promotion backlog the timer works for many ticks, while a client
/// enqueues, takes, ACKs and FAILs between them (ticks now come back right
/// after the clients' replies): a replica without the module ends equal, and
/// every job is in exactly one place. The client's moves are seeded
/// (`TQ_BACKLOG_SEED=<n>` replays a run; the seed is in every failure).
#[test]
fn a_promotion_backlog_worked_between_client_moves_replicates_exactly() {
    let seed = tq_testkit::rng::seed("TQ_BACKLOG_SEED");
    let mut rng = tq_testkit::rng::Rng(seed);
    let primary = start_primary(&[]);
    let replica = replica_of(&primary, false);
    let mut p = primary.conn();
    let mut r = replica.conn();
    let n = ns("backlog");
    let queues = ["qa", "qb"];
    let delayed = 12_000;
    assert_eq!(p.ok(&["CONFIG", "SET", "tq.auto-promote", "no"]), Value::Okay);
    for chunk in (0..delayed).collect::<Vec<_>>().chunks(1000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            let q = queues[i % 2];
            pipe.cmd("TQ.ENQUEUEAT").arg(&n).arg(1000 + i % 30).arg(q).arg("Job").arg(format!("[\"d{i}\"]")).ignore();
        }
        let () = pipe.query(&mut p.0).expect("delayed jobs filed");
    }
    assert_eq!(p.ok(&["CONFIG", "SET", "tq.auto-promote", "yes"]), Value::Okay);
    let schedule = format!("{n}:delayed_queue_schedule");
    let ticks_before = p.timer_ticks();
    let (mut live, mut acked, mut failed, mut steps, mut during) = (0, 0, 0, 0, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let backlog = p.int(&["EXISTS", &schedule]) == 1;
        if !backlog && steps >= 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "seed {seed}: the backlog was not worked through");
        steps += 1;
        during += usize::from(backlog);
        let q = queues[rng.below(2)];
        match rng.below(4) {
            0 => {
                p.ok(&["TQ.ENQUEUE", &n, q, "Job", &format!("[\"l{live}\"]")]);
                live += 1;
            }
            _ => {
                let taken = p.ok(&["TQ.POP", &n, "w", q]);
                if matches!(taken, Value::Nil) {
                    continue;
                }
                if rng.chance(80) {
                    assert_eq!(p.ack(&n, "w"), Value::Okay, "seed {seed}");
                    acked += 1;
                } else {
                    p.fail(&n, "w", &["Boom", "no"]);
                    failed += 1;
                }
            }
        }
    }
    let ticks = p.timer_ticks() - ticks_before;
    println!("backlog run: seed {seed} (TQ_BACKLOG_SEED={seed} replays it), {during} client moves over {ticks} ticks");
    // How many client moves fall inside the backlog depends on the load of
    // the machine (the client competes for the cores): at least one must.
    assert!(ticks >= 3 && during >= 1, "seed {seed}: {during} client moves over {ticks} ticks: too few to tell");
    // Every job in exactly one place: waiting, processed or failed.
    let mut seen = std::collections::BTreeSet::new();
    let mut waiting = 0;
    for q in queues {
        for job in p.lrange(&format!("{n}:queue:{q}")) {
            let v: serde_json::Value = serde_json::from_str(&job).expect("payload");
            assert!(seen.insert(v["args"][0].to_string()), "seed {seed}: {job} waits twice");
            waiting += 1;
        }
    }
    for record in p.lrange(&format!("{n}:failed")) {
        let v: serde_json::Value = serde_json::from_str(&record).expect("failure record");
        assert!(seen.insert(v["payload"]["args"][0].to_string()), "seed {seed}: {record} is also elsewhere");
    }
    assert_eq!(p.stat(&n, "processed"), acked, "seed {seed}");
    assert_eq!(p.stat(&n, "failed"), failed, "seed {seed}");
    assert_eq!(seen.len() as i64, waiting + failed, "seed {seed}");
    assert_eq!(waiting + acked + failed, delayed as i64 + live, "seed {seed}: jobs lost or made");
    p.wait_tallies_written(&n);
    wait_replicated(&mut p);
    assert_eq!(r.digest(), p.digest(), "seed {seed}: DEBUG DIGEST differs between primary and replica");
    assert_no_errors_from_primary(&replica);
}

/// Promotion pushes the strings it read from a bucket rather than copies
/// when it can: a bucket whose jobs go to many queues, in a seeded order,
/// with payloads filed twice, must still land each job once per filing, in
/// bucket order within its queue, and replicate exactly
/// (`TQ_REUSE_SEED=<n>` replays a run).
#[test]
fn a_bucket_for_many_queues_with_repeated_payloads_lands_in_order_and_replicates() {
    let seed = tq_testkit::rng::seed("TQ_REUSE_SEED");
    let mut rng = tq_testkit::rng::Rng(seed);
    let primary = start_primary(&["--tq.auto-promote", "no"]);
    let replica = replica_of(&primary, false);
    let mut p = primary.conn();
    let mut r = replica.conn();
    let n = ns("reuse");
    let queues: Vec<String> = (0..12).map(|i| format!("q{i}")).collect();
    let mut filed: Vec<(String, String)> = Vec::new();
    for i in 0..600 {
        // One job in five is a payload filed before, again.
        let (q, payload) = match filed.len() {
            len if len > 0 && rng.chance(20) => filed[rng.below(len)].clone(),
            _ => {
                let q = queues[rng.below(queues.len())].clone();
                (q.clone(), format!(r#"{{"class":"Job","queue":"{q}","args":[{i}]}}"#))
            }
        };
        p.ok(&["RPUSH", &format!("{n}:delayed:1000"), &payload]);
        p.ok(&["SADD", &format!("{n}:timestamps:{payload}"), "delayed:1000"]);
        filed.push((q, payload));
    }
    p.ok(&["ZADD", &format!("{n}:delayed_queue_schedule"), "1000", "1000"]);
    assert_eq!(p.int(&["TQ.PROMOTE", &n, "LIMIT", "1000"]), filed.len() as i64, "seed {seed}");
    for q in &queues {
        let want: Vec<String> = filed.iter().filter(|(to, _)| to == q).map(|(_, p)| p.clone()).collect();
        assert_eq!(p.lrange(&format!("{n}:queue:{q}")), want, "seed {seed}: queue {q}");
    }
    wait_replicated(&mut p);
    assert_eq!(r.digest(), p.digest(), "seed {seed}: DEBUG DIGEST differs between primary and replica");
    assert_no_errors_from_primary(&replica);
}
