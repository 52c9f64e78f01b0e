//! A mixed tq workload shared by the replication, persistence and cluster
//! tests, and the tools to check what reached a replica or an AOF file.
//!
//! Everything here works over any `redis::ConnectionLike`: a plain connection
//! (`Conn.0`) or a cluster connection.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};

use redis::{ConnectionLike, Value};

/// The plain Redis commands tq may replicate (its effects), plus the framing
/// Redis itself adds to a replication stream or an AOF file.
pub const EFFECT_COMMANDS: &[&str] = &[
    "RPUSH",
    "LPOP",
    "LTRIM",
    "SADD",
    "SREM",
    "ZADD",
    "ZREM",
    "SET",
    "MSET",
    "DEL",
    "INCR",
    "HSET",
    "HDEL",
    "PEXPIREAT",
];
/// Effects every full workload produces (the in-flight bookkeeping of POP
/// may be written with SET, MSET or HSET, so it is checked separately).
pub const CORE_EFFECTS: &[&str] = &["RPUSH", "LPOP", "SADD", "ZADD", "ZREM", "DEL", "INCR"];
pub const FRAMING_COMMANDS: &[&str] = &["SELECT", "MULTI", "EXEC", "PING", "REPLCONF"];

/// Runs one command; server errors come back as their reply text
/// (`CODE message`), like `common::Conn::q`.
pub fn q<C: ConnectionLike, A: AsRef<[u8]>>(c: &mut C, args: &[A]) -> Result<Value, String> {
    let mut cmd = redis::Cmd::new();
    for a in args {
        cmd.arg(a.as_ref());
    }
    cmd.query::<Value>(c).map_err(|e| match (e.code(), e.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_string(),
        _ => e.to_string(),
    })
}

fn shown<A: AsRef<[u8]>>(args: &[A]) -> Vec<String> {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let s = String::from_utf8_lossy(&a[..a.len().min(80)]).into_owned();
            if a.len() > 80 {
                format!("{s}...({} bytes)", a.len())
            } else {
                s
            }
        })
        .collect()
}

/// A command that must succeed.
pub fn ok<C: ConnectionLike, A: AsRef<[u8]>>(c: &mut C, args: &[A]) -> Value {
    q(c, args).unwrap_or_else(|e| panic!("{:?} failed: {e}", shown(args)))
}

/// A command that must fail; its error text.
pub fn err<C: ConnectionLike, A: AsRef<[u8]>>(c: &mut C, args: &[A]) -> String {
    match q(c, args) {
        Ok(v) => panic!("{:?} should have failed, got {v:?}", shown(args)),
        Err(e) => e,
    }
}

pub fn int<C: ConnectionLike, A: AsRef<[u8]>>(c: &mut C, args: &[A]) -> i64 {
    match ok(c, args) {
        Value::Int(n) => n,
        Value::BulkString(b) => String::from_utf8_lossy(&b).parse().expect("integer"),
        other => panic!("{:?}: not an integer: {other:?}", shown(args)),
    }
}

pub fn bulk(v: &Value) -> Vec<u8> {
    match v {
        Value::BulkString(b) => b.clone(),
        Value::SimpleString(s) => s.clone().into_bytes(),
        Value::Okay => b"OK".to_vec(),
        Value::Int(n) => n.to_string().into_bytes(),
        other => panic!("not a string: {other:?}"),
    }
}

pub fn items(v: Value) -> Vec<Vec<u8>> {
    match v {
        Value::Array(items) | Value::Set(items) => items.iter().map(bulk).collect(),
        Value::Nil => Vec::new(),
        other => panic!("not an array: {other:?}"),
    }
}

/// Queue and payload of a TQ.POP reply (panics on nil).
pub fn popped(v: Value) -> (String, Vec<u8>) {
    let (q, p, _) = taken(v);
    (q, p)
}

/// Queue, payload and delivery id of a TQ.POP reply
/// `[queue, payload, delivery, deliveries, lease-deadline-ms]`.
pub fn taken(v: Value) -> (String, Vec<u8>, String) {
    let it = items(v);
    assert_eq!(it.len(), 5, "TQ.POP replies [queue, payload, delivery, deliveries, lease-deadline-ms]");
    let d = String::from_utf8(it[2].clone()).expect("delivery");
    (String::from_utf8(it[0].clone()).expect("utf8 queue"), it[1].clone(), d)
}

pub fn payload(queue: &str, class: &str, args_json: &str) -> Vec<u8> {
    format!(r#"{{"class":"{class}","queue":"{queue}","args":{args_json}}}"#).into_bytes()
}

/// What a workload may include besides the TQ commands themselves.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    /// A payload of several MB through ENQUEUE, POP and FAIL.
    pub big: bool,
    /// TQ commands inside MULTI/EXEC (not available through a cluster client).
    pub multi: bool,
    /// A TQ command called from a Lua script.
    pub lua: bool,
}

impl Mix {
    pub const ALL: Mix = Mix { big: true, multi: true, lua: true };
}

/// A mixed workload on namespace `n` touching every command and path:
/// enqueue to several queues, enqueueat past and future, enqueuein, promote
/// with and without LIMIT (valid, corrupt, queue-less and orphaned buckets),
/// pop with a priority list and with `*`, corrupt payloads in a queue, a
/// queue of garbage only, ack, fail with and without a backtrace, and leaves
/// one job in flight (worker `w-busy`). Replies are checked where they do not
/// depend on the clock.
pub fn run<C: ConnectionLike>(c: &mut C, n: &str, mix: Mix) {
    let k = |suffix: &str| format!("{n}:{suffix}");

    // Immediate jobs on several queues, every args form.
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "high", "c1", "[1]"]), 1);
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "high", "c1"]), 2);
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "low", "c2", r#"{"é":[1.5,"x\u00e9"],"n":null}"#]), 1);
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "mid", "c3", r#""scalar""#]), 1);
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "mid", "c3", "[2]"]), 2);

    // Delayed jobs: two in the past bucket 1, one in bucket 3, one far in the
    // future, and two relative to the server clock.
    assert_eq!(int(c, &["TQ.ENQUEUEAT", n, "1000", "high", "due", r#"["a"]"#]), 1);
    assert_eq!(int(c, &["TQ.ENQUEUEAT", n, "1400", "low", "due", r#"["b"]"#]), 1);
    assert_eq!(int(c, &["TQ.ENQUEUEAT", n, "2600", "new", "due", r#"["c"]"#]), 3);
    assert_eq!(int(c, &["TQ.ENQUEUEAT", n, "4102444800000", "high", "future"]), 4_102_444_800);
    let later = int(c, &["TQ.ENQUEUEIN", n, "3600000", "low", "later", r#"["in"]"#]);
    assert!(later > 1_600_000_000, "ENQUEUEIN bucket {later}");
    int(c, &["TQ.ENQUEUEIN", n, "0", "mid", "soon"]);

    // Bucket 2: a corrupt payload and a queue-less (Ruby Resque) payload.
    // Bucket 5: in the schedule with no list behind it.
    ok(c, &["RPUSH".as_bytes(), k("delayed:2").as_bytes(), b"\xff garbage"]);
    ok(c, &["RPUSH", &k("delayed:2"), r#"{"class":"Ruby","args":[]}"#]);
    ok(c, &["ZADD", &k("delayed_queue_schedule"), "2", "2"]);
    ok(c, &["ZADD", &k("delayed_queue_schedule"), "5", "5"]);

    // Oldest bucket first, FIFO inside it.
    assert_eq!(int(c, &["TQ.PROMOTE", n, "LIMIT", "2"]), 2);
    // The corrupt payload uses up the limit and reaches no queue.
    assert_eq!(int(c, &["TQ.PROMOTE", n, "LIMIT", "1"]), 0);
    // The queue-less payload fails, bucket 3 is promoted, bucket 5 is
    // dropped; the ENQUEUEIN 0 job may or may not be due yet.
    let moved = int(c, &["TQ.PROMOTE", n]);
    assert!((1..=2).contains(&moved), "promoted {moved}");

    // A queue whose head is corrupt: POP moves the garbage to failed and
    // takes from the next queue in the priority list.
    ok(c, &["RPUSH".as_bytes(), k("queue:bad").as_bytes(), b"\xfe\x00 not json"]);
    ok(c, &["RPUSH", &k("queue:bad"), r#"{"args":[]}"#]);
    let (q1, p1, d1) = taken(ok(c, &["TQ.POP", n, "w1", "bad", "high", "low"]));
    assert_eq!((q1.as_str(), p1), ("high", payload("high", "c1", "[1]")));
    // Every registered queue, alphabetically: high first.
    let (q2, p2, d2) = taken(ok(c, &["TQ.POP", n, "w2", "*"]));
    assert_eq!((q2.as_str(), p2), ("high", payload("high", "c1", "[]")));
    assert_eq!(ok(c, &["TQ.ACK", n, "w1", &d1]), Value::Okay);
    assert_eq!(
        ok(c, &["TQ.FAIL", n, "w2", &d2, "TypeError", "boom \"x\"", r#"["  at a (a.js:1:1)", "  at b"]"#]),
        Value::Okay
    );

    // A job left in flight.
    let (q3, p3) = popped(ok(c, &["TQ.POP", n, "w-busy", "mid", "low"]));
    assert_eq!((q3.as_str(), p3), ("mid", payload("mid", "c3", r#"["scalar"]"#)));

    // A queue of garbage only: nil, but the garbage moved to failed.
    ok(c, &["RPUSH", &k("queue:junk"), "]"]);
    assert_eq!(ok(c, &["TQ.POP", n, "w3", "junk"]), Value::Nil);

    // Pop, fail without a backtrace, and ack again on the same worker.
    let (_, _, d4) = taken(ok(c, &["TQ.POP", n, "w4", "low"]));
    assert_eq!(ok(c, &["TQ.FAIL", n, "w4", &d4, "Error", "no backtrace"]), Value::Okay);
    let (_, _, d5) = taken(ok(c, &["TQ.POP", n, "w4", "*"]));
    // Ack and take the next in one step, then ack that one.
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "next", "c4"]), 1);
    let (q4, _, d6) = taken(ok(c, &["TQ.POP", n, "w4", "next", "ACK", &d5]));
    assert_eq!(q4, "next");
    assert_eq!(ok(c, &["TQ.ACK", n, "w4", &d6]), Value::Okay);

    if mix.big {
        let blob = "x\u{e9}\"\\".repeat(1 << 20); // 5 MiB of UTF-8, escapes included
        let args = serde_json::to_string(&[&blob]).expect("json");
        assert_eq!(int(c, &["TQ.ENQUEUE", n, "big", "c", &args]), 1);
        let (qb, pb, db) = taken(ok(c, &["TQ.POP", n, "w-big", "big"]));
        assert_eq!(qb, "big");
        assert_eq!(pb.len(), args.len() + r#"{"class":"c","queue":"big","args":}"#.len());
        assert_eq!(ok(c, &["TQ.FAIL", n, "w-big", &db, "E", &blob[..1000], r#"["big"]"#]), Value::Okay);
        // One more big one left waiting.
        assert_eq!(int(c, &["TQ.ENQUEUE", n, "big", "c", &args]), 1);
    }

    if mix.multi {
        // The next delivery id, known before the transaction runs.
        let next = (int(c, &["GET", &k("tq:delivery")]) + 1).to_string();
        ok(c, &["MULTI"]);
        for cmd in [
            vec!["TQ.ENQUEUE", n, "tx", "c", "[1]"],
            vec!["TQ.ENQUEUEIN", n, "1000", "tx", "c", "[2]"],
            vec!["TQ.POP", n, "w-tx", "tx"],
            vec!["TQ.FAIL", n, "w-tx", &next, "E", "in a transaction"],
            vec!["TQ.PROMOTE", n],
        ] {
            assert_eq!(ok(c, &cmd), Value::SimpleString("QUEUED".into()));
        }
        let replies = items_raw(ok(c, &["EXEC"]));
        assert_eq!(replies.len(), 5, "{replies:?}");
        assert_eq!(replies[0], Value::Int(1));
    }

    if mix.lua {
        let script = "redis.call('TQ.ENQUEUE', KEYS[1], 'lua', 'c', '[1]') \
                      local p = redis.call('TQ.POP', KEYS[1], 'w-lua', 'lua') \
                      redis.call('TQ.ACK', KEYS[1], 'w-lua', p[3]) \
                      return p";
        let (ql, _) = popped(ok(c, &["EVAL", script, "1", n]));
        assert_eq!(ql, "lua");
    }

    // Locks: pair locks (key and hash field), the leader lock, and the
    // plugin locks as ENQUEUE/POP options. Tokens come from a counter, so
    // they are checked for order only.
    let t1 = lock_token(ok(c, &["TQ.LOCK", n, "task-1", "a", "60000"]));
    ok(c, &["TQ.RENEW", n, "task-1", "a", &t1.to_string(), "120000"]);
    assert_eq!(ok(c, &["TQ.UNLOCK", n, "task-1", "a", &t1.to_string(), "OK"]), Value::Okay);
    let t2 = lock_token(ok(c, &["TQ.LOCK", n, "task-2", "b", "60000"]));
    assert!(t2 > t1);
    ok(c, &["TQ.UNLOCK", n, "task-2", "b", &t2.to_string(), "FAIL"]);
    let h1 = lock_token(ok(c, &["TQ.HLOCK", n, "tasks", "f1", "a", "60000"]));
    let h2 = lock_token(ok(c, &["TQ.HLOCK", n, "tasks", "f2", "a", "60000"]));
    ok(c, &["TQ.HRENEW", n, "tasks", "f1", "a", &h1.to_string(), "90000"]);
    ok(c, &["TQ.HUNLOCK", n, "tasks", "f1", "a", &h1.to_string(), "OK"]);
    ok(c, &["TQ.HUNLOCK", n, "tasks", "f2", "a", &h2.to_string(), "FAIL"]);
    assert_eq!(int(c, &["TQ.LEADER", n, "sched-1", "60000"]), 1);
    assert_eq!(int(c, &["TQ.LEADER", n, "sched-1", "60000"]), 1);
    assert_eq!(int(c, &["TQ.RESIGN", n, "sched-1"]), 1);
    assert_eq!(int(c, &["TQ.ENQUEUE", n, "uniq", "c", "[1]", "UNIQUE", "60000"]), 1);
    assert_eq!(ok(c, &["TQ.ENQUEUE", n, "uniq", "c", "[1]", "UNIQUE"]), Value::Nil);
    let (_, _, dl) = taken(ok(c, &["TQ.POP", n, "w-lock", "uniq", "JOBLOCK", "60000"]));
    assert_eq!(ok(c, &["TQ.ACK", n, "w-lock", &dl]), Value::Okay);

    // Counters as node-resque reads them.
    assert!(int(c, &["GET", &k("stat:processed")]) >= 2);
    assert!(int(c, &["GET", &k("stat:failed")]) >= 6);
}

/// The token of an `["acquired", token]` lock reply.
fn lock_token(v: Value) -> i64 {
    match items_raw(v).as_slice() {
        [Value::BulkString(s), Value::Int(t)] if s == b"acquired" => *t,
        other => panic!("lock not acquired: {other:?}"),
    }
}

fn items_raw(v: Value) -> Vec<Value> {
    match v {
        Value::Array(items) => items,
        other => panic!("not an array: {other:?}"),
    }
}

/// Every key of namespace `n` with its type and full value, for direct
/// comparisons between servers.
pub fn snapshot<C: ConnectionLike>(c: &mut C, n: &str) -> BTreeMap<Vec<u8>, (String, Vec<Vec<u8>>)> {
    let mut out = BTreeMap::new();
    for key in items(ok(c, &["KEYS", &format!("{n}:*")])) {
        let kind = String::from_utf8(bulk(&ok(c, &[b"TYPE".as_slice(), &key]))).expect("type");
        let mut value = match kind.as_str() {
            "string" => vec![bulk(&ok(c, &[b"GET".as_slice(), &key]))],
            "list" => items(ok(c, &[b"LRANGE".as_slice(), &key, b"0", b"-1"])),
            "set" => items(ok(c, &[b"SMEMBERS".as_slice(), &key])),
            "zset" => items(ok(c, &[b"ZRANGE".as_slice(), &key, b"0", b"-1", b"WITHSCORES"])),
            "hash" => items(ok(c, &[b"HGETALL".as_slice(), &key])),
            other => panic!("unexpected type {other}"),
        };
        if kind == "set" {
            value.sort();
        }
        if kind == "hash" {
            let mut pairs: Vec<Vec<Vec<u8>>> = value.chunks(2).map(<[Vec<u8>]>::to_vec).collect();
            pairs.sort();
            value = pairs.concat();
        }
        out.insert(key, (kind, value));
    }
    out
}

/// The keys (as text) of a snapshot, for readable assertions.
pub fn key_names(s: &BTreeMap<Vec<u8>, (String, Vec<Vec<u8>>)>) -> BTreeSet<String> {
    s.keys().map(|k| String::from_utf8_lossy(k).into_owned()).collect()
}

/// The commands of a RESP command stream (an AOF file, a replication
/// stream), each as its arguments.
pub fn parse_commands(mut b: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let end = b.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let l = &b[..end];
        *b = &b[end + 2..];
        l
    }
    fn number(l: &[u8]) -> usize {
        std::str::from_utf8(l).expect("ascii").parse().expect("number")
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let head = line(&mut b);
        assert_eq!(head.first(), Some(&b'*'), "a command starts with '*': {:?}", String::from_utf8_lossy(head));
        let argc = number(&head[1..]);
        let mut args = Vec::with_capacity(argc);
        for _ in 0..argc {
            let h = line(&mut b);
            assert_eq!(h.first(), Some(&b'$'), "bulk string expected");
            let len = number(&h[1..]);
            args.push(b[..len].to_vec());
            assert_eq!(&b[len..len + 2], b"\r\n");
            b = &b[len + 2..];
        }
        out.push(args);
    }
    out
}

/// The distinct command names (upper case) of parsed commands.
pub fn command_names(cmds: &[Vec<Vec<u8>>]) -> BTreeSet<String> {
    cmds.iter().map(|c| String::from_utf8_lossy(&c[0]).to_ascii_uppercase()).collect()
}

/// Asserts that a stream holds only tq's effects and Redis's framing, and
/// that the effects include the core ones.
pub fn assert_only_effects(names: &BTreeSet<String>, extra_allowed: &[&str], what: &str) {
    let allowed: BTreeSet<&str> =
        EFFECT_COMMANDS.iter().chain(FRAMING_COMMANDS).chain(extra_allowed).copied().collect();
    let unexpected: Vec<&String> = names.iter().filter(|n| !allowed.contains(n.as_str())).collect();
    assert!(unexpected.is_empty(), "{what} holds commands other than tq's effects: {unexpected:?} (all: {names:?})");
    assert!(!names.iter().any(|n| n.starts_with("TQ.")), "{what} holds TQ commands: {names:?}");
    for must in CORE_EFFECTS {
        assert!(names.contains(*must), "{what} has no {must}: {names:?}");
    }
    assert!(
        ["SET", "MSET", "HSET"].iter().any(|c| names.contains(*c)),
        "{what} has no in-flight record write: {names:?}"
    );
}
