//! Expiring locks on a real server: pair locks (key and hash variants), the
//! leader lock, and node-resque's plugin locks as ENQUEUE/POP options.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Barrier};

use common::{ns, Server, Value};

fn state(v: &Value) -> (String, i64) {
    match v {
        Value::Array(items) => match items.as_slice() {
            [Value::BulkString(s), Value::Int(n)] => (String::from_utf8_lossy(s).into_owned(), *n),
            other => panic!("bad lock reply {other:?}"),
        },
        other => panic!("bad lock reply {other:?}"),
    }
}

/// One generation of the race: 50 clients each try all `locks`, in their
/// own order, at the same time. Returns lock -> (owner, token) of the winner
/// and checks every other answer was `held`.
fn race(s: &Server, n: &str, locks: usize, ttl: &str) -> HashMap<usize, (usize, i64)> {
    const CLIENTS: usize = 50;
    let barrier = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let mut c = s.conn();
            let (barrier, n, ttl) = (barrier.clone(), n.to_string(), ttl.to_string());
            std::thread::spawn(move || {
                // A per-client permutation of the locks.
                let mut order: Vec<usize> = (0..locks).collect();
                let mut x = (client as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                for i in (1..order.len()).rev() {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    order.swap(i, (x % (i as u64 + 1)) as usize);
                }
                barrier.wait();
                let mut won = Vec::new();
                for lock in order {
                    let reply = c.ok(&["TQ.LOCK", &n, &format!("lock-{lock}"), &format!("owner-{client}"), &ttl]);
                    match state(&reply) {
                        (s, token) if s == "acquired" => won.push((lock, token)),
                        (s, _) => assert_eq!(s, "held", "lock-{lock}"),
                    }
                }
                (client, won)
            })
        })
        .collect();
    let mut winners: HashMap<usize, (usize, i64)> = HashMap::new();
    for h in handles {
        let (client, won) = h.join().expect("client thread");
        for (lock, token) in won {
            let previous = winners.insert(lock, (client, token));
            assert!(previous.is_none(), "lock-{lock} acquired twice in one generation: {previous:?} and {client}");
        }
    }
    assert_eq!(winners.len(), locks, "every lock acquired exactly once");
    let mut tokens: Vec<i64> = winners.values().map(|(_, t)| *t).collect();
    tokens.sort_unstable();
    tokens.dedup();
    assert_eq!(tokens.len(), locks, "tokens are unique");
    winners
}

#[test]
fn fifty_clients_race_for_500_locks_over_three_generations() {
    let s = Server::start();
    let n = ns("race");
    let mut c = s.conn();
    let gen1 = race(&s, &n, 500, "60000");
    // Generation 2: every holder reports FAIL, which frees the lock at once.
    for (lock, (owner, token)) in &gen1 {
        c.ok(&["TQ.UNLOCK", &n, &format!("lock-{lock}"), &format!("owner-{owner}"), &token.to_string(), "FAIL"]);
    }
    let gen2 = race(&s, &n, 500, "60000");
    for (lock, (owner, token)) in &gen2 {
        assert!(*token > gen1[lock].1, "lock-{lock}: token {token} after {}", gen1[lock].1);
        // Shorten each lock to 200 ms (a renewal may shorten too).
        c.ok(&["TQ.RENEW", &n, &format!("lock-{lock}"), &format!("owner-{owner}"), &token.to_string(), "200"]);
    }
    // Generation 3: nobody reports; the locks expire on their own.
    common::wait_until(10, "gen-2 locks to expire", || {
        (0..500).all(|l| c.int(&["EXISTS", &format!("{n}:tq:lock:lock-{l}")]) == 0)
    });
    let gen3 = race(&s, &n, 500, "60000");
    for (lock, (_, token)) in &gen3 {
        assert!(*token > gen2[lock].1, "lock-{lock}: token {token} after {}", gen2[lock].1);
    }
    // A stale holder of generation 2 cannot report on generation 3's lock.
    let (lock, (owner, token)) = gen2.iter().next().expect("a lock");
    let e = c.err(&["TQ.UNLOCK", &n, &format!("lock-{lock}"), &format!("owner-{owner}"), &token.to_string(), "OK"]);
    assert!(e.starts_with("NOTOWNER"), "{e}");
}

#[test]
fn done_is_visible_for_a_full_ttl_then_the_lock_frees() {
    let s = Server::start();
    let n = ns("done");
    let mut c = s.conn();
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "task", "a", "800"])), ("acquired".into(), 1));
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "task", "a", "800"])), ("acquired".into(), 1), "same owner, same token");
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "task", "b", "800"])).0, "held");
    assert_eq!(c.ok(&["TQ.UNLOCK", &n, "task", "a", "1", "OK"]), Value::Okay);
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "task", "b", "800"])), ("done".into(), 0));
    let pttl = c.int(&["PTTL", &format!("{n}:tq:lock:task")]);
    assert!(pttl > 500 && pttl <= 800, "done lasts a full ttl from the report: {pttl}");
    assert!(c.err(&["TQ.UNLOCK", &n, "task", "a", "1", "OK"]).starts_with("NOTHELD"));
    common::wait_until(5, "done to expire", || c.int(&["EXISTS", &format!("{n}:tq:lock:task")]) == 0);
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "task", "b", "800"])), ("acquired".into(), 2));
}

#[test]
fn renew_keeps_a_lock_and_refuses_strangers() {
    let s = Server::start();
    let n = ns("renew");
    let mut c = s.conn();
    c.ok(&["TQ.LOCK", &n, "task", "a", "300"]);
    for _ in 0..6 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(c.ok(&["TQ.RENEW", &n, "task", "a", "1", "300"]), Value::Okay);
        assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "task", "b", "300"])).0, "held");
    }
    assert!(c.err(&["TQ.RENEW", &n, "task", "b", "1", "300"]).starts_with("NOTOWNER"));
    assert!(c.err(&["TQ.RENEW", &n, "task", "a", "2", "300"]).starts_with("NOTOWNER"));
    assert!(c.err(&["TQ.RENEW", &n, "other", "a", "1", "300"]).starts_with("NOTHELD"));
}

#[test]
fn hash_locks_expire_and_are_cleaned_up() {
    let s = Server::start();
    let n = ns("hash");
    let mut c = s.conn();
    let hash = format!("{n}:tq:hlock:tasks");
    assert_eq!(state(&c.ok(&["TQ.HLOCK", &n, "tasks", "short", "a", "200"])), ("acquired".into(), 1));
    assert_eq!(state(&c.ok(&["TQ.HLOCK", &n, "tasks", "long", "a", "2000"])), ("acquired".into(), 2));
    assert_eq!(state(&c.ok(&["TQ.HLOCK", &n, "tasks", "short", "b", "200"])).0, "held");
    assert!(c.int(&["PTTL", &hash]) > 1500, "the hash lives as long as its latest field");
    common::wait_until(5, "the short lock to expire", || {
        state(&c.ok(&["TQ.HLOCK", &n, "tasks", "probe", "p", "1"])).0 == "acquired"
            && c.int(&["HEXISTS", &hash, "short"]) == 0
    });
    // Expired fields are removed on access; the hash keeps only live ones.
    assert_eq!(state(&c.ok(&["TQ.HLOCK", &n, "tasks", "short", "b", "200"])).0, "acquired");
    c.ok(&["TQ.HUNLOCK", &n, "tasks", "long", "a", "2", "FAIL"]);
    assert_eq!(c.int(&["HEXISTS", &hash, "long"]), 0);
    assert!(c.err(&["TQ.HUNLOCK", &n, "tasks", "long", "a", "2", "OK"]).starts_with("NOTHELD"));
    let token = state(&c.ok(&["TQ.HLOCK", &n, "tasks", "short", "b", "200"])).1.to_string();
    c.ok(&["TQ.HRENEW", &n, "tasks", "short", "b", &token, "200"]);
    // Once every field expired, Redis drops the whole hash.
    common::wait_until(5, "the hash to expire", || c.int(&["EXISTS", &hash]) == 0);
}

#[test]
fn lock_bad_input_is_refused_without_writes() {
    let s = Server::start();
    let mut c = s.conn();
    c.ok(&["RPUSH", "bad:tq:lock:list", "x"]);
    c.ok(&["SET", "bad:tq:hlock:str", "x"]);
    c.ok(&["SET", "bad:tq:lock:garbage", "not a lock"]);
    c.ok(&["TQ.LOCK", "bad", "held", "a", "60000"]);
    let before = c.quiet_digest();
    for (args, want) in [
        (vec!["TQ.LOCK", "bad", "l", "a", "0"], "ttl-ms must be between"),
        (vec!["TQ.LOCK", "bad", "l", "a", "-5"], "negative"),
        (vec!["TQ.LOCK", "bad", "l", "a", "2592000001"], "ttl-ms must be between"),
        (vec!["TQ.LOCK", "bad", "l", "a", "99999999999999999999"], "out of range"),
        (vec!["TQ.LOCK", "bad", "l", "a", "99999999999999999999999"], "ttl-ms must be a non-negative integer"),
        (vec!["TQ.LOCK", "bad", "l", "a", "soon"], "ttl-ms must be a non-negative integer"),
        (vec!["TQ.LOCK", "bad", "l", "a", "1.5"], "fraction"),
        (vec!["TQ.LOCK", "bad", "", "a", "10"], "lock must not be empty"),
        (vec!["TQ.LOCK", "bad", "l", "", "10"], "owner must not be empty"),
        (vec!["TQ.LOCK", "bad", "list", "a", "10"], "WRONGTYPE key 'bad:tq:lock:list'"),
        (vec!["TQ.LOCK", "bad", "garbage", "a", "10"], "does not hold a tq lock record"),
        (vec!["TQ.HLOCK", "bad", "str", "f", "a", "10"], "WRONGTYPE key 'bad:tq:hlock:str'"),
        (vec!["TQ.HLOCK", "bad", "h", "", "a", "10"], "field must not be empty"),
        (vec!["TQ.UNLOCK", "bad", "held", "a", "7", "OK"], "NOTOWNER token 7"),
        (vec!["TQ.UNLOCK", "bad", "held", "b", "1", "OK"], "NOTOWNER lock 'held' is held by another owner"),
        (vec!["TQ.UNLOCK", "bad", "held", "a", "x", "OK"], "token must be a non-negative integer"),
        (vec!["TQ.UNLOCK", "bad", "held", "a", "1", "DONE"], "outcome must be OK or FAIL"),
        (vec!["TQ.UNLOCK", "bad", "free", "a", "1", "OK"], "NOTHELD lock 'free'"),
        (vec!["TQ.RENEW", "bad", "held", "a", "1", "0"], "ttl-ms must be between"),
        (vec!["TQ.RENEW", "bad", "held", "b", "1", "10"], "NOTOWNER"),
        (vec!["TQ.HUNLOCK", "bad", "h", "f", "a", "1", "OK"], "NOTHELD"),
        (vec!["TQ.HRENEW", "bad", "h", "f", "a", "1", "10"], "NOTHELD"),
        (vec!["TQ.LOCK", "bad", "l", "a"], "wrong number of arguments"),
        (vec!["TQ.UNLOCK", "bad", "held", "a", "1"], "wrong number of arguments"),
        (vec!["TQ.LEADER", "bad", "s1", "0"], "ttl-ms must be between"),
        (vec!["TQ.LEADER", "bad", "", "10"], "name must not be empty"),
        (vec!["TQ.ENQUEUE", "bad", "q", "c", "[]", "UNIQUE", "0"], "lock-ttl-ms must be at least 1"),
        (vec!["TQ.ENQUEUE", "bad", "q", "c", "[]", "ONCE"], "unknown option 'ONCE'"),
        (vec!["TQ.ENQUEUE", "bad", "q", "c", "[]", "UNIQUE", "10", "x"], "wrong number of arguments"),
        (vec!["TQ.POP", "bad", "w", "q", "JOBLOCK", "soon"], "JOBLOCK ttl-ms"),
        (vec!["TQ.POP", "bad", "w", "JOBLOCK", "10"], "at least one queue"),
    ] {
        let e = c.err(&args);
        assert!(e.contains(want), "{args:?}: expected {want:?} in {e:?}");
    }
    assert_eq!(c.digest(), before, "refused lock commands wrote nothing");
}

#[test]
fn leader_lock_is_node_resques_key() {
    let s = Server::start();
    let n = ns("leader");
    let mut c = s.conn();
    assert_eq!(c.int(&["TQ.LEADER", &n, "sched-1", "2000"]), 1);
    assert_eq!(c.string(&["GET", &format!("{n}:resque_scheduler_leader_lock")]), Some("sched-1".into()));
    assert_eq!(c.int(&["TQ.LEADER", &n, "sched-2", "2000"]), 0);
    assert_eq!(c.int(&["TQ.RESIGN", &n, "sched-2"]), 0);
    assert_eq!(c.int(&["TQ.LEADER", &n, "sched-1", "5000"]), 1);
    assert!(c.int(&["PTTL", &format!("{n}:resque_scheduler_leader_lock")]) > 2000, "renewed");
    assert_eq!(c.int(&["TQ.RESIGN", &n, "sched-1"]), 1);
    assert_eq!(c.int(&["TQ.LEADER", &n, "sched-2", "2000"]), 1);
}

#[test]
fn unique_enqueue_and_joblock_pop() {
    let s = Server::start();
    let n = ns("plugins");
    let mut c = s.conn();
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "UNIQUE", "60000"]), 1);
    assert_eq!(c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]", "UNIQUE"]), Value::Nil);
    let lock = format!("{n}:lock:c:q:[1]");
    let ttl = c.int(&["TTL", &lock]);
    assert!(ttl > 50 && ttl <= 60, "{ttl}");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]); // without UNIQUE: always enqueued
    c.ok(&["TQ.POP", &n, "w1", "q", "JOBLOCK", "60000"]);
    assert_eq!(c.int(&["EXISTS", &lock]), 0, "the pop released the queue lock");
    assert_eq!(c.int(&["EXISTS", &format!("{n}:workerslock:c:q:[1]")]), 1);
    // The identical job cannot run while the first one does.
    assert_eq!(c.ok(&["TQ.POP", &n, "w2", "q", "JOBLOCK", "60000"]), Value::Nil);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 1);
    c.ack(&n, "w1");
    assert_eq!(c.int(&["EXISTS", &format!("{n}:workerslock:c:q:[1]")]), 0);
    assert_eq!(c.strings(&["TQ.POP", &n, "w2", "q", "JOBLOCK", "60000"])[0], "q");
}
