//! `TQ.ENQUEUE ... NOTDELAYED`: node-resque's DelayQueueLock plugin in one
//! atomic step (its own check is a read, then a separate enqueue).

mod common;

use common::{ns, Server, Value};

#[test]
fn not_delayed_refuses_while_the_same_job_waits_in_a_delayed_bucket() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("dql");
    let payload = r#"{"class":"c","queue":"q","args":[1]}"#;
    c.int(&["TQ.ENQUEUEAT", &n, "4000000000000", "q", "c", "[1]"]);
    let before = c.quiet_digest();
    assert_eq!(c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "NOTDELAYED"]), Value::Nil);
    // Any spelling of the same args is the same payload.
    assert_eq!(c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1.0]", "notdelayed"]), Value::Nil);
    assert_eq!(c.digest(), before, "a refused enqueue writes nothing");
    // Other args, another queue: not delayed, enqueued.
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "q", "c", "[2]", "NOTDELAYED"]), 1);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "p", "c", "[1]", "NOTDELAYED"]), 1);
    // With UNIQUE: both checks, in either outcome.
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "u", "c", "[]", "UNIQUE", "60000", "NOTDELAYED"]), 1);
    assert_eq!(c.ok(&["TQ.ENQUEUE", &n, "u", "c", "[]", "UNIQUE", "60000", "NOTDELAYED"]), Value::Nil);
    assert_eq!(c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "UNIQUE", "NOTDELAYED"]), Value::Nil);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:lock:c:q:[1]")]), 0, "a refused UNIQUE takes no lock");
    // Once the delayed copy is gone, the job goes in.
    c.ok(&["TQ.DELDELAYED", &n, "q", "c", "[1]"]);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "NOTDELAYED"]), 2);
    assert_eq!(c.strings(&["LRANGE", &format!("{n}:queue:q"), "0", "-1"]).last().map(String::as_str), Some(payload));
    // Misplaced or repeated, it is an error that names it.
    let e = c.err(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "NOTDELAYED", "UNIQUE"]);
    assert!(e.contains("NOTDELAYED"), "{e}");
    // A timestamps key of another type: WRONGTYPE, not a refusal.
    c.ok(&["SET", &format!("{n}:timestamps:{}", r#"{"class":"c","queue":"w","args":[]}"#), "x"]);
    let e = c.err(&["TQ.ENQUEUE", &n, "w", "c", "NOTDELAYED"]);
    assert!(e.starts_with("WRONGTYPE"), "{e}");
}

#[test]
fn not_delayed_needs_smembers_under_acl() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("dqlacl");
    c.ok(&["ACL", "SETUSER", "enq", "on", "nopass", "~*", "+tq.enqueue", "+rpush", "+sadd", "+auth"]);
    c.ok(&["AUTH", "enq", "x"]);
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "q", "c"]), 1);
    let e = c.err(&["TQ.ENQUEUE", &n, "q", "c", "NOTDELAYED"]);
    assert!(e.starts_with("NOPERM") && e.contains("smembers"), "{e}");
}
