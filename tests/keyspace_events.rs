//! What tq learns from keyspace events holds on every server of the matrix,
//! whichever database the server says an event came from: inside a
//! transaction, Valkey 9 hands a module the event of a key another database
//! receives (MOVE, COPY ... DB) in the database of the client that caused
//! it, where Redis 7.0 and Valkey 8 hand it in the key's. (MOVE:
//! tests/timer_index.rs.)

mod common;
use common::*;

/// A delayed job of `n` due two seconds ago, as node-resque writes it.
fn node_delayed(c: &mut Conn, n: &str) {
    let ts = (c.server_ms() / 1000 - 2).to_string();
    let payload = job("q", "NodeJob", "[1]");
    c.ok(&["RPUSH", &format!("{n}:delayed:{ts}"), &payload]);
    c.ok(&["SADD", &format!("{n}:timestamps:{payload}"), &format!("delayed:{ts}")]);
    c.ok(&["ZADD", &format!("{n}:delayed_queue_schedule"), &ts, &ts]);
}

#[test]
fn a_schedule_copied_into_another_database_is_served() {
    let s = Server::start_with(Opts::timer());
    let mut c = s.conn();
    let n = ns("copied");
    // Written in db 1 with promotion off there (parked), then copied to
    // db 2 in one transaction.
    c.ok(&["CONFIG", "SET", "tq.auto-promote", "no"]);
    c.ok(&["SELECT", "1"]);
    node_delayed(&mut c, &n);
    let keys = c.strings(&["KEYS", &format!("{n}:*")]);
    c.ok(&["MULTI"]);
    for k in &keys {
        // SELECT before each COPY: Valkey 8.1 leaves the client in the
        // destination database after a MOVE or COPY ... DB when a module
        // subscribes to keyspace events (a server bug, valkey-io/valkey#4024).
        c.ok(&["SELECT", "1"]);
        c.ok(&["COPY", k, k, "DB", "2"]);
    }
    c.ok(&["CONFIG", "SET", "tq.auto-promote", "yes"]);
    c.ok(&["EXEC"]);
    c.ok(&["SELECT", "2"]);
    c.wait_llen(&format!("{n}:queue:q"), 1, 10);
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "NodeJob", "[1]")]);
}

#[test]
fn a_set_that_expires_in_another_database_is_registered_again() {
    // tq remembers that a queue is in `<ns>:queues` and skips the SADD; the
    // set's expiry (by the server's expiry cycle, no client in db 3) must
    // make it forget.
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("expiring");
    let queues = format!("{n}:queues");
    c.ok(&["SELECT", "3"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["PEXPIRE", &queues, "200"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]); // remembered again, with its TTL
    let expires = |c: &mut Conn| c.info_field("keyspace", "db3").map(|v| v.contains("expires=1"));
    assert_eq!(expires(&mut c), Some(true));
    // INFO, not EXISTS: a read of the key would expire it in this client's db.
    wait_until(10, "the expiry cycle deleting the set", || expires(&mut c) != Some(true));
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[3]"]);
    assert_eq!(c.strings(&["SMEMBERS", &queues]), ["q"], "the queue is registered again");
}

#[test]
fn a_set_copied_over_from_another_database_is_read_again() {
    // tq remembers that queue q is in `<ns>:queues` of db 2; a copy from
    // db 1 without q replaces that set, so the next enqueue must add q.
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("copied-set");
    let queues = format!("{n}:queues");
    c.ok(&["SELECT", "2"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["SELECT", "1"]);
    c.ok(&["SADD", &queues, "other"]);
    // In a transaction: there Valkey 9 names the client's database.
    c.ok(&["MULTI"]);
    c.ok(&["COPY", &queues, &queues, "DB", "2", "REPLACE"]);
    c.ok(&["EXEC"]);
    c.ok(&["SELECT", "2"]); // see a_schedule_copied_into_another_database_is_served
    assert_eq!(c.strings(&["SMEMBERS", &queues]), ["other"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    let mut members = c.strings(&["SMEMBERS", &queues]);
    members.sort();
    assert_eq!(members, ["other", "q"], "the queue is registered again");
}
