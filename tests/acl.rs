//! Every key a TQ command touches is checked against the caller's ACL.

mod common;

use common::Server;

fn login(s: &Server, user: &str) -> common::Conn {
    let mut c = s.conn();
    c.ok(&["AUTH", user, "pw"]);
    c
}

#[test]
fn a_user_needs_the_namespace_patterns_the_readme_lists() {
    let s = Server::start();
    let mut admin = s.conn();
    // What the README documents for namespace "resque".
    admin.ok(&["ACL", "SETUSER", "worker", "on", ">pw", "+@all", "~resque", "~resque:*"]);
    // Queue keys only: no access to resque:queues, resque:failed, ...
    admin.ok(&["ACL", "SETUSER", "narrow", "on", ">pw", "+@all", "~resque", "~resque:queue:*", "~resque:delayed*"]);
    // Another namespace entirely.
    admin.ok(&["ACL", "SETUSER", "other", "on", ">pw", "+@all", "~other", "~other:*"]);
    // Read-only on the namespace.
    admin.ok(&["ACL", "SETUSER", "reader", "on", ">pw", "+@all", "%R~resque", "%R~resque:*"]);

    let mut w = login(&s, "worker");
    w.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[1]"]);
    w.ok(&["TQ.ENQUEUEAT", "resque", "1000", "q", "c", "[2]"]);
    w.ok(&["TQ.PROMOTE", "resque"]);
    w.ok(&["TQ.POP", "resque", "w1", "q"]);
    w.fail("resque", "w1", &["E", "e"]);
    w.ok(&["TQ.POP", "resque", "w1", "*"]);
    w.ack("resque", "w1");

    admin.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[3]"]);
    admin.wait_tallies_written("resque");
    let before = admin.quiet_digest();

    let mut n = login(&s, "narrow");
    let e = n.err(&["TQ.ENQUEUE", "resque", "q", "c"]);
    assert_eq!(e, "NOPERM this user has no permissions to access the 'resque:queues' key");
    let e = n.err(&["TQ.POP", "resque", "w2", "q"]);
    assert!(e.starts_with("NOPERM") && e.contains("resque:"), "{e}");
    assert!(n.err(&["TQ.ENQUEUEAT", "resque", "1000", "q", "c"]).contains("resque:timestamps:"));

    let mut o = login(&s, "other");
    // The declared key (the namespace) is checked by Redis itself.
    assert!(o.err(&["TQ.ENQUEUE", "resque", "q", "c"]).starts_with("NOPERM"));
    o.ok(&["TQ.ENQUEUE", "other", "q", "c"]);

    let mut r = login(&s, "reader");
    assert!(r.err(&["TQ.ENQUEUE", "resque", "q", "c"]).starts_with("NOPERM"));
    assert!(r.err(&["TQ.POP", "resque", "w3", "q"]).starts_with("NOPERM"));

    // Refusals wrote nothing in "resque" (only "other" changed).
    admin.ok(&["DEL", "other:queue:q", "other:queues", "other:tq:clock:q"]);
    assert_eq!(admin.digest(), before);
}

/// Every TQ command, with arguments that succeed for a full-access user in
/// this order (tokens of LOCK/HLOCK are 1 and 2 on a fresh namespace), and
/// whether it writes.
const ALL: &[(bool, &[&str])] = &[
    (true, &["TQ.ENQUEUE", "resque", "q", "c", "[1]"]),
    (true, &["TQ.ENQUEUEAT", "resque", "1000", "q", "c", "[2]"]),
    (true, &["TQ.ENQUEUEIN", "resque", "100000000", "q", "c", "[3]"]),
    (true, &["TQ.PROMOTE", "resque"]),
    (true, &["TQ.POP", "resque", "w1", "q"]),
    // Deliveries are numbered from 1 in a fresh namespace.
    (true, &["TQ.HEARTBEAT", "resque", "w1", "60000", "1"]),
    (true, &["TQ.NACK", "resque", "w1", "1"]),
    (true, &["TQ.POP", "resque", "w1", "q"]),
    (true, &["TQ.ACK", "resque", "w1", "2"]),
    (true, &["TQ.POP", "resque", "w1", "q"]),
    (true, &["TQ.FAIL", "resque", "w1", "3", "E", "e"]),
    (true, &["TQ.BPOP", "resque", "w2", "q", "10"]),
    (true, &["TQ.BROADCAST", "resque", "c"]),
    (true, &["TQ.RECUR", "resque", "c", "q2", "60000"]),
    (false, &["TQ.RECURS", "resque"]),
    (true, &["TQ.UNRECUR", "resque", "c", "q2"]),
    (true, &["TQ.PAUSE", "resque", "q9"]),
    (false, &["TQ.PAUSED", "resque"]),
    (true, &["TQ.RESUME", "resque", "q9"]),
    (true, &["TQ.LOCK", "resque", "l", "o", "10000"]),
    (true, &["TQ.RENEW", "resque", "l", "o", "1", "10000"]),
    (true, &["TQ.UNLOCK", "resque", "l", "o", "1", "FAIL"]),
    (true, &["TQ.HLOCK", "resque", "h", "f", "o", "10000"]),
    (true, &["TQ.HRENEW", "resque", "h", "f", "o", "2", "10000"]),
    (true, &["TQ.HUNLOCK", "resque", "h", "f", "o", "2", "FAIL"]),
    (true, &["TQ.LEADER", "resque", "me", "10000"]),
    (true, &["TQ.RESIGN", "resque", "me"]),
    (false, &["TQ.SCHEDULEDAT", "resque", "q", "c", "[3]"]),
    (false, &["TQ.TIMESTAMPS", "resque"]),
    (false, &["TQ.DELAYEDAT", "resque", "100000000"]),
    (false, &["TQ.ALLDELAYED", "resque"]),
    (false, &["TQ.STATS", "resque"]),
    (false, &["TQ.WORKERS", "resque"]),
    (false, &["TQ.FAILED", "resque"]),
    (false, &["TQ.LOCKS", "resque"]),
    (false, &["TQ.DETAILS", "resque"]),
    (true, &["TQ.FAILRETRY", "resque"]),
    (true, &["TQ.FAILREMOVE", "resque"]),
    (true, &["TQ.DEL", "resque", "q", "c", "[1]"]),
    (true, &["TQ.DELDELAYED", "resque", "q", "c", "[3]"]),
    (true, &["TQ.DELBYCLASS", "resque", "q", "c"]),
    (true, &["TQ.DELQUEUE", "resque", "q"]),
    (true, &["TQ.FORCECLEAN", "resque", "w2"]),
    (true, &["TQ.CLEANWORKERS", "resque", "0"]),
    (true, &["TQ.UNTRACK", "resque", "w9", "q"]),
];

/// Data for every command to find: jobs waiting and delayed, a worker with
/// a job in flight, a failure, a periodic task, locks.
fn populate(c: &mut common::Conn) {
    c.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[4]"]);
    c.ok(&["TQ.ENQUEUEIN", "resque", "100000000", "q", "c", "[3]"]);
    c.ok(&["TQ.POP", "resque", "w5", "q"]);
    c.fail("resque", "w5", &["E", "e"]);
    c.ok(&["TQ.POP", "resque", "w6", "q"]);
    c.ok(&["TQ.RECUR", "resque", "c", "q3", "600000"]);
    c.ok(&["TQ.LOCK", "resque", "l9", "o", "600000"]);
    c.ok(&["TQ.LEADER", "resque", "other", "600000"]);
}

fn is_noperm_for(e: &str, cmd: &str) -> bool {
    e.starts_with("NOPERM") && e.to_lowercase().contains(&cmd.to_lowercase())
}

fn server_at_least(c: &mut common::Conn, major: u32, minor: u32) -> bool {
    let v = c.info_field("server", "redis_version").unwrap_or_default();
    let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (a, b) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (a, b) >= (major, minor)
}

#[test]
fn the_list_of_commands_is_complete() {
    let s = Server::start();
    let mut c = s.conn();
    let mut registered = c.strings(&["COMMAND", "LIST", "FILTERBY", "MODULE", "tq"]);
    registered.sort();
    let mut listed: Vec<String> = ALL.iter().map(|(_, a)| a[0].to_lowercase()).collect();
    listed.sort();
    listed.dedup();
    assert_eq!(listed, registered);
}

#[test]
fn a_full_access_user_runs_every_command() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.ok(&["ACL", "SETUSER", "full", "on", ">pw", "+@all", "~resque", "~resque:*"]);
    let mut f = login(&s, "full");
    for (_, args) in ALL {
        f.ok(args);
    }
}

#[test]
fn a_user_without_write_runs_the_reads_and_no_write() {
    let s = Server::start();
    let mut admin = s.conn();
    populate(&mut admin);
    admin.wait_tallies_written("resque");
    let before = admin.quiet_digest();
    admin.ok(&["ACL", "SETUSER", "ro", "on", ">pw", "+@all", "-@write", "~resque", "~resque:*"]);
    let mut r = login(&s, "ro");
    for (writes, args) in ALL {
        if *writes {
            let e = r.err(args);
            assert!(is_noperm_for(&e, args[0]), "{}: {e}", args[0]);
        } else {
            r.ok(args);
        }
    }
    assert_eq!(admin.digest(), before, "a refused command wrote");
    // The refusal names the plain command it needed.
    let e = r.err(&["TQ.DELQUEUE", "resque", "q"]);
    assert!(e.contains("'del'") || server_at_least(&mut admin, 7, 2), "{e}");
    assert_eq!(admin.int(&["SISMEMBER", "resque:queues", "q"]), 1);
}

#[test]
fn a_user_without_read_and_write_runs_nothing() {
    let s = Server::start();
    let mut admin = s.conn();
    populate(&mut admin);
    admin.wait_tallies_written("resque");
    let before = admin.quiet_digest();
    admin.ok(&["ACL", "SETUSER", "none", "on", ">pw", "+@all", "-@read", "-@write", "~resque", "~resque:*"]);
    let mut n = login(&s, "none");
    for (_, args) in ALL {
        let e = n.err(args);
        assert!(is_noperm_for(&e, args[0]), "{}: {e}", args[0]);
    }
    assert_eq!(admin.digest(), before, "a refused command wrote");
}

#[test]
fn commands_granted_by_name_still_need_their_plain_commands() {
    let s = Server::start();
    let mut admin = s.conn();
    populate(&mut admin);
    admin.wait_tallies_written("resque");
    let before = admin.quiet_digest();
    // How a read-only user gets TQ commands on Redis 7.0: by name.
    admin.ok(&[
        "ACL",
        "SETUSER",
        "ops",
        "on",
        ">pw",
        "-@all",
        "+@read",
        "+tq.stats",
        "+tq.delqueue",
        "~resque",
        "~resque:*",
    ]);
    let mut o = login(&s, "ops");
    o.ok(&["TQ.STATS", "resque"]);
    let e = o.err(&["TQ.DELQUEUE", "resque", "q"]);
    assert!(is_noperm_for(&e, "tq.delqueue") && e.contains("'del'"), "{e}");
    // Denied plain command, allowed TQ command: refused, logged.
    let log = format!("{:?}", admin.ok(&["ACL", "LOG"]));
    assert!(log.contains("del"), "{log}");
    assert_eq!(admin.digest(), before);
}

#[test]
fn read_category_reaches_read_commands_where_the_server_allows() {
    let s = Server::start();
    let mut admin = s.conn();
    populate(&mut admin);
    admin.ok(&["ACL", "SETUSER", "reader", "on", ">pw", "+@read", "~resque", "~resque:*"]);
    let mut r = login(&s, "reader");
    if server_at_least(&mut admin, 7, 2) {
        for (writes, args) in ALL {
            if *writes {
                assert!(r.err(args).starts_with("NOPERM"), "{}", args[0]);
            } else {
                r.ok(args);
            }
        }
    } else {
        // Redis 7.0 puts module commands in no category (README, ACL).
        let e = r.err(&["TQ.STATS", "resque"]);
        assert!(is_noperm_for(&e, "tq.stats"), "{e}");
    }
}

#[test]
fn categories_are_declared_where_the_server_takes_them() {
    // Redis >= 7.2 and Valkey (which reports redis_version 7.2.4) take ACL
    // categories for module commands; Redis 7.0 puts them in none. `make
    // test` runs this on both kinds.
    let s = Server::start();
    let mut c = s.conn();
    let writes = c.strings(&["ACL", "CAT", "write"]);
    let reads = c.strings(&["ACL", "CAT", "read"]);
    if server_at_least(&mut c, 7, 2) {
        for (w, args) in ALL {
            let name = args[0].to_lowercase();
            let (yes, no) = if *w { (&writes, &reads) } else { (&reads, &writes) };
            assert!(yes.contains(&name) && !no.contains(&name), "{name}: write {w}");
        }
        // So `-@write` takes the writing commands away, keys or no keys.
        c.ok(&["ACL", "SETUSER", "nowrite", "on", ">pw", "+@all", "-@write", "~*"]);
        let mut u = login(&s, "nowrite");
        assert!(is_noperm_for(&u.err(&["TQ.DELQUEUE", "resque", "q"]), "tq.delqueue"));
        u.ok(&["TQ.STATS", "resque"]);
    } else {
        let tq: Vec<&String> = writes.iter().chain(&reads).filter(|n| n.starts_with("tq.")).collect();
        assert!(tq.is_empty(), "no categories on Redis 7.0: {tq:?}");
    }
}

#[test]
fn options_add_the_plain_commands_they_perform() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.ok(&["ACL", "SETUSER", "noset", "on", ">pw", "+@all", "-set", "-incr", "~resque", "~resque:*"]);
    let mut u = login(&s, "noset");
    u.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[1]"]);
    u.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[2]"]);
    let before = admin.quiet_digest();
    let e = u.err(&["TQ.ENQUEUE", "resque", "q", "c", "[3]", "unique"]);
    assert!(is_noperm_for(&e, "tq.enqueue") && e.contains("'set'"), "{e}");
    assert_eq!(admin.digest(), before);
    // The in-flight record is a SET, so TQ.POP needs it whatever its options.
    let e = u.err(&["TQ.POP", "resque", "w1", "q"]);
    assert!(e.contains("'set'"), "{e}");
    admin.ok(&["ACL", "SETUSER", "noset", "+set"]);
    // Every take mints a delivery id with an INCR.
    let before = admin.quiet_digest();
    let e = u.err(&["TQ.POP", "resque", "w1", "q"]);
    assert!(is_noperm_for(&e, "tq.pop") && e.contains("'incr'"), "{e}");
    assert_eq!(admin.digest(), before);
}

/// `TQ.POP ... ACK` completes the delivery as TQ.ACK does, so it needs the
/// plain commands TQ.ACK needs: the lease's removal is a ZREM that the
/// take alone never makes.
#[test]
fn a_pop_that_acks_needs_what_the_ack_needs() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.ok(&["ACL", "SETUSER", "nozrem", "on", ">pw", "+@all", "-zrem", "~resque", "~resque:*"]);
    let mut u = login(&s, "nozrem");
    u.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[1]"]);
    u.ok(&["TQ.ENQUEUE", "resque", "q", "c", "[2]"]);
    // A take alone removes no lease.
    assert!(matches!(u.ok(&["TQ.POP", "resque", "w1", "q"]), common::Value::Array(_)), "a job taken");
    let delivery = admin.delivery("resque", "w1");
    let e = u.err(&["TQ.ACK", "resque", "w1", &delivery]);
    assert!(is_noperm_for(&e, "tq.ack") && e.contains("'zrem'"), "{e}");
    let before = admin.quiet_digest();
    let e = u.err(&["TQ.POP", "resque", "w1", "q", "ACK", &delivery]);
    assert!(is_noperm_for(&e, "tq.pop") && e.contains("'zrem'"), "{e}");
    assert_eq!(admin.digest(), before, "nothing written by the refused call");
    admin.ok(&["ACL", "SETUSER", "nozrem", "+zrem"]);
    assert!(matches!(u.ok(&["TQ.POP", "resque", "w1", "q", "ACK", &delivery]), common::Value::Array(_)));
}

/// Where the server checks a whole key prefix at once (Valkey >= 9), a
/// namespace is trusted only when the caller's patterns grant every key
/// under it; any narrower or trickier pattern falls back on the check of
/// each key, with the outcome a per-key check gives on every server.
#[test]
fn patterns_that_grant_only_part_of_a_namespace_are_checked_key_by_key() {
    let s = Server::start();
    let mut admin = s.conn();
    let users: &[(&str, &[&str], bool, bool)] = &[
        // (user, key patterns, may enqueue, may pop)
        ("whole", &["~resque", "~resque:*"], true, true),
        ("anychar", &["~resque", "~resque:?*"], true, true),
        ("notq", &["~resque", "~resque:[^q]*"], false, false),
        ("withq", &["~resque", "~resque:*q*"], true, false),
        ("splitrw", &["~resque", "%R~resque:*", "%W~resque:queue:*"], false, false),
        ("suffix", &["~resque", "~resque:*s"], false, false),
    ];
    for (user, patterns, _, _) in users {
        let mut args = vec!["ACL", "SETUSER", user, "on", ">pw", "+@all"];
        args.extend_from_slice(patterns);
        admin.ok(&args);
    }
    for (i, (user, _, may_enqueue, may_pop)) in users.iter().enumerate() {
        admin.ok(&["TQ.ENQUEUE", "resque", "q", "c", &format!("[{i}]")]);
        let mut c = login(&s, user);
        let before = admin.quiet_digest();
        match c.q(&["TQ.ENQUEUE", "resque", "q", "c", &format!("[{i}, 0]")]) {
            Ok(_) => assert!(may_enqueue, "{user} enqueued"),
            Err(e) => {
                assert!(!may_enqueue && e.starts_with("NOPERM"), "{user}: {e}");
                assert_eq!(admin.digest(), before, "{user}: a refusal wrote nothing");
            }
        }
        let before = admin.quiet_digest();
        match c.q(&["TQ.POP", "resque", &format!("w-{user}"), "q"]) {
            Ok(_) => assert!(may_pop, "{user} popped"),
            Err(e) => {
                assert!(!may_pop && e.starts_with("NOPERM"), "{user}: {e}");
                assert_eq!(admin.digest(), before, "{user}: a refusal wrote nothing");
            }
        }
    }
    if server_at_least(&mut admin, 9, 0) && s.log().contains("Valkey") {
        assert!(s.log().contains("key-prefix check"), "Valkey 9 offers the prefix check:\n{}", s.log());
    }
}

/// A write only some calls make is checked before any: a take that would
/// move a corrupt job to failed (an RPUSH) is refused whole to a user who
/// may not RPUSH, and says which write it was.
#[test]
fn a_write_only_some_calls_make_is_checked_before_any() {
    let s = Server::start();
    let mut admin = s.conn();
    admin.ok(&["ACL", "SETUSER", "norpush", "on", ">pw", "+@all", "-rpush", "~resque", "~resque:*"]);
    admin.ok(&["RPUSH", "resque:queue:q", "not json"]);
    let before = admin.quiet_digest();
    let mut u = login(&s, "norpush");
    let e = u.err(&["TQ.POP", "resque", "w1", "q"]);
    assert_eq!(
        e,
        "NOPERM this user has no permissions to run the 'rpush' command on 'resque:failed', which tq.pop performs"
    );
    assert_eq!(admin.digest(), before, "nothing written by the refused take");
    let log = format!("{:?}", admin.ok(&["ACL", "LOG"]));
    assert!(log.contains("rpush"), "{log}");
    admin.ok(&["ACL", "SETUSER", "norpush", "+rpush"]);
    assert_eq!(u.ok(&["TQ.POP", "resque", "w1", "q"]), common::Value::Nil, "the corrupt job went to failed");
    assert_eq!(admin.int(&["LLEN", "resque:failed"]), 1);
}

/// A workload reaching every writing TQ command and its options, in order,
/// on one namespace (`{ns}`; `{d:<worker>}` is the delivery that worker
/// holds). Each step must succeed for a user allowed everything.
const EFFECT_STEPS: &[&[&str]] = &[
    &["TQ.ENQUEUE", "{ns}", "q", "c", "[1]"],
    &["TQ.ENQUEUE", "{ns}", "q", "c", "[2]", "UNIQUE", "60000"],
    &["TQ.ENQUEUE", "{ns}", "q", "c", "[3]", "NOTDELAYED"],
    &["TQ.ENQUEUEAT", "{ns}", "1000", "q", "c", "[4]"],
    &["TQ.ENQUEUEIN", "{ns}", "100000000", "q", "c", "[5]"],
    &["TQ.PROMOTE", "{ns}"],
    &["TQ.POP", "{ns}", "w1", "q", "JOBLOCK", "60000", "LEASE", "60000"],
    &["TQ.HEARTBEAT", "{ns}", "w1", "60000", "{d:w1}"],
    &["TQ.NACK", "{ns}", "w1", "{d:w1}"],
    &["TQ.POP", "{ns}", "w1", "q"],
    &["TQ.POP", "{ns}", "w1", "q", "ACK", "{d:w1}"],
    &["TQ.FAIL", "{ns}", "w1", "{d:w1}", "E", "e", "RETRY", "5", "BACKOFF", "100000"],
    &["TQ.POP", "{ns}", "w1", "q"],
    &["TQ.FAIL", "{ns}", "w1", "{d:w1}", "E", "e", "RETRY", "5", "BACKOFF", "0"],
    &["TQ.POP", "{ns}", "w1", "q"],
    &["TQ.NACK", "{ns}", "w1", "{d:w1}", "DELAY", "5000"],
    &["TQ.POP", "{ns}", "w1", "q"],
    &["TQ.FAIL", "{ns}", "w1", "{d:w1}", "E", "e"],
    &["TQ.POP", "{ns}", "w1", "bad"],
    &["TQ.BPOP", "{ns}", "w2", "q", "10"],
    &["TQ.BROADCAST", "{ns}", "c"],
    &["TQ.RECUR", "{ns}", "c", "q2", "60000"],
    &["TQ.UNRECUR", "{ns}", "c", "q2"],
    &["TQ.PAUSE", "{ns}", "q9"],
    &["TQ.RESUME", "{ns}", "q9"],
    &["TQ.LOCK", "{ns}", "l", "o", "10000"],
    &["TQ.RENEW", "{ns}", "l", "o", "1", "10000"],
    &["TQ.UNLOCK", "{ns}", "l", "o", "1", "FAIL"],
    &["TQ.HLOCK", "{ns}", "h", "f", "o", "10000"],
    &["TQ.HRENEW", "{ns}", "h", "f", "o", "2", "10000"],
    &["TQ.HUNLOCK", "{ns}", "h", "f", "o", "2", "FAIL"],
    &["TQ.LEADER", "{ns}", "me", "10000"],
    &["TQ.RESIGN", "{ns}", "me"],
    &["TQ.FAILRETRY", "{ns}"],
    &["TQ.FAILREMOVE", "{ns}"],
    &["TQ.DEL", "{ns}", "q", "c", "[1]"],
    &["TQ.DELDELAYED", "{ns}", "q", "c", "[5]"],
    &["TQ.DELBYCLASS", "{ns}", "q", "c"],
    &["TQ.DELQUEUE", "{ns}", "q"],
    &["TQ.FORCECLEAN", "{ns}", "w2"],
    &["TQ.CLEANWORKERS", "{ns}", "0"],
    &["TQ.UNTRACK", "{ns}", "w9", "q"],
];

/// Runs `step` (of `EFFECT_STEPS`) on `ns`.
fn effect_step(c: &mut common::Conn, ns: &str, step: &[&str]) -> Result<common::Value, String> {
    let mut args = Vec::new();
    for a in step {
        args.push(match a.strip_prefix("{d:").and_then(|w| w.strip_suffix('}')) {
            Some(worker) => c.delivery(ns, worker),
            None => a.replace("{ns}", ns),
        });
    }
    c.q(&args)
}

/// The data a namespace needs before the workload: a corrupt job, which a
/// take moves to failed.
fn effect_setup(c: &mut common::Conn, ns: &str) {
    c.ok(&["RPUSH", &format!("{ns}:queue:bad"), "not json"]);
}

/// The plain command (as ACL rules name it) a replicated command is.
fn plain_of(replicated: &str) -> Option<&str> {
    Some(match replicated {
        "multi" | "exec" | "select" | "ping" | "replconf" => return None,
        "mset" => "set",
        "incrby" => "incr",
        "ltrim" => "lpop",
        "unlink" => "del",
        other => other,
    })
}

/// Hunts ACL bypasses: every plain command a TQ command's effects are made
/// of (as a replica without the module sees them) must be one its caller
/// needs. Each step is replayed on a fresh namespace by a user refused
/// one of the plain commands it replicated; the step must be refused. The
/// job metrics are off: their own keys are written whatever the caller's
/// plain commands (they record what a command did).
#[test]
fn every_plain_command_a_step_performs_is_one_its_caller_needs() {
    let primary = Server::start_with(
        common::Opts::module_with(&["metrics", "no"]).with_args(&["--repl-diskless-sync-delay", "0"]),
    );
    let replica = Server::start_with(common::Opts {
        module: false,
        args: ["--replicaof", "127.0.0.1", &primary.port.to_string()].map(String::from).to_vec(),
        ..common::Opts::default()
    });
    let mut r = replica.conn();
    common::wait_until(30, "the replica's link up", || {
        r.info_field("replication", "master_link_status").as_deref() == Some("up")
    });
    let mut p = primary.conn();
    let calls = |r: &mut common::Conn| -> std::collections::HashMap<String, i64> {
        let stats = r.string(&["INFO", "commandstats"]).unwrap_or_default();
        stats
            .lines()
            .filter_map(|l| {
                let (name, rest) = l.strip_prefix("cmdstat_")?.split_once(':')?;
                let n = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
                Some((name.to_string(), n))
            })
            .collect()
    };
    // What each step replicates.
    effect_setup(&mut p, "obs");
    assert_eq!(p.int(&["WAIT", "1", "5000"]), 1);
    let mut performed: Vec<Vec<String>> = Vec::new();
    for step in EFFECT_STEPS {
        let before = calls(&mut r);
        effect_step(&mut p, "obs", step).unwrap_or_else(|e| panic!("step {step:?}: {e}"));
        assert_eq!(p.int(&["WAIT", "1", "5000"]), 1, "replicated");
        let after = calls(&mut r);
        let mut plain: Vec<String> = after
            .iter()
            .filter(|(name, n)| **n > before.get(*name).copied().unwrap_or(0))
            .filter_map(|(name, _)| plain_of(name).map(str::to_string))
            .filter(|name| name != "wait" && name != "info")
            .collect();
        plain.sort();
        plain.dedup();
        performed.push(plain);
    }
    assert!(performed.iter().any(|p| p.contains(&"zrem".to_string())), "the workload reaches a ZREM: {performed:?}");
    // Each plain command of each step, refused to a user replaying it.
    let mut bypasses = Vec::new();
    for (i, plain) in performed.iter().enumerate() {
        for cmd in plain {
            let ns = format!("t{i}{cmd}");
            effect_setup(&mut p, &ns);
            for step in EFFECT_STEPS.iter().take(i) {
                effect_step(&mut p, &ns, step).unwrap_or_else(|e| panic!("replaying {step:?}: {e}"));
            }
            let user = format!("u{i}{cmd}");
            p.ok(&[
                "ACL",
                "SETUSER",
                &user,
                "on",
                ">pw",
                "+@all",
                &format!("-{cmd}"),
                &format!("~{ns}"),
                &format!("~{ns}:*"),
            ]);
            let mut u = login(&primary, &user);
            let step = EFFECT_STEPS.get(i).copied().unwrap_or_default();
            assert_eq!(p.int(&["WAIT", "1", "5000"]), 1);
            let before = calls(&mut r);
            let outcome = effect_step(&mut u, &ns, step);
            assert_eq!(p.int(&["WAIT", "1", "5000"]), 1);
            // A bypass is a step that went on and made the refused command
            // (the timer's own writes show in the replica's counts too).
            let made = calls(&mut r)
                .iter()
                .any(|(name, n)| plain_of(name) == Some(cmd.as_str()) && *n > before.get(name).copied().unwrap_or(0));
            if outcome.as_ref().is_ok() && made {
                bypasses.push(format!("{step:?} without {cmd}: {outcome:?}"));
            } else if let Err(e) = &outcome {
                assert!(e.starts_with("NOPERM"), "{step:?} without {cmd}: {e}");
            }
        }
    }
    assert!(bypasses.is_empty(), "TQ commands made plain commands their caller may not run:\n{}", bypasses.join("\n"));
}
