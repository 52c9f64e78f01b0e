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
    let before = admin.digest();

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
    admin.ok(&["DEL", "other:queue:q", "other:queues"]);
    assert_eq!(admin.digest(), before);
}
