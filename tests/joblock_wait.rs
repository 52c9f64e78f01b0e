//! TQ.BPOP ... JOBLOCK on a queue whose every job is locked (an identical
//! job is running): it waits, and the server goes on serving.

mod common;

use std::time::Duration;

use common::{ns, Server, Value};

#[test]
fn bpop_with_joblock_waits_when_every_job_is_locked() {
    let s = Server::start();
    let mut c = s.conn();
    let mut other = s.conn();
    let n = ns("jlwait");
    c.int(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.int(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    let Value::Array(taken) = c.ok(&["TQ.POP", &n, "w1", "q", "JOBLOCK", "60000"]) else { panic!("w1 takes a job") };
    let delivery = match taken.get(2) {
        Some(Value::Int(d)) => d.to_string(),
        other => panic!("delivery: {other:?}"),
    };
    let before = c.quiet_digest();
    // The twin left is locked: a plain pop takes nothing and changes nothing
    // (moving the only job to the tail is no move).
    assert_eq!(c.ok(&["TQ.POP", &n, "w2", "q", "JOBLOCK", "60000"]), Value::Nil);
    assert_eq!(c.digest(), before, "a pop that finds only locked jobs writes nothing");
    // A blocking pop waits, and the server answers others meanwhile (it used
    // to spin for ever: the move recreated the list, which woke the waiter).
    other.read_timeout(Duration::from_secs(5));
    c.read_timeout(Duration::from_secs(10));
    let n2 = n.clone();
    let waiter = std::thread::spawn(move || c.q(&["TQ.BPOP", &n2, "w2", "q", "JOBLOCK", "60000", "300"]));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(other.string(&["PING"]).as_deref(), Some("PONG"), "the server answers while a waiter is blocked");
    assert_eq!(waiter.join().expect("waiter"), Ok(Value::Nil), "the wait times out: the job stays locked");
    // Once the lock goes with w1's ACK, the twin can be taken.
    other.ok(&["TQ.ACK", &n, "w1", &delivery]);
    let Value::Array(twin) = other.ok(&["TQ.BPOP", &n, "w2", "q", "JOBLOCK", "60000", "1000"]) else {
        panic!("w2 takes the twin once the lock is released")
    };
    assert_eq!(twin.len(), 5);
}
