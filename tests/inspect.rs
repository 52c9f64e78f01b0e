//! Inspection and management commands (node-resque's Queue methods) on data
//! written by tq's own commands: exact replies, pagination, complete and
//! atomic writes (the keys are read back after each), replication to a
//! replica without the module, and a retry-all racing failing workers.

mod common;
use tq_testkit::workload;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value as J};

use common::{job, ns, popped_job, Conn, Opts, Server, Value};

// ---------------------------------------------------------------------------
// Helpers

/// A reply as JSON: arrays, bulk strings (UTF-8), integers, nil as null.
fn js(v: Value) -> J {
    match v {
        Value::Nil => J::Null,
        Value::Int(n) => json!(n),
        Value::BulkString(b) => J::String(String::from_utf8(b).expect("a UTF-8 reply")),
        Value::SimpleString(s) => J::String(s),
        Value::Okay => J::String("OK".into()),
        Value::Array(items) | Value::Set(items) => J::Array(items.into_iter().map(js).collect()),
        other => panic!("unexpected reply {other:?}"),
    }
}

/// Runs a command that must succeed; its reply as JSON.
fn r(c: &mut Conn, args: &[&str]) -> J {
    js(c.ok(args))
}

/// The `[count, next]` reply of TQ.FAILRETRY / TQ.FAILREMOVE (next: None
/// at the end).
fn pair(c: &mut Conn, args: &[&str]) -> (i64, Option<i64>) {
    match c.ok(args) {
        Value::Array(v) => match v.as_slice() {
            [Value::Int(a), Value::Int(b)] => (*a, Some(*b)),
            [Value::Int(a), Value::Nil] => (*a, None),
            other => panic!("{args:?}: expected [count, next], got {other:?}"),
        },
        other => panic!("{args:?}: expected [count, next], got {other:?}"),
    }
}

/// A failed record's id as tq documents it: FNV-1a 64 of its bytes, 16 hex
/// digits (computed here independently of the module).
fn fnv1a(record: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in record {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Every key of namespace `n` (its name after `n:`) with its type and
/// contents (set members sorted), read with plain commands.
/// The namespace's keys and values, without the job metrics' keys (the
/// metrics have their own tests: tests/metrics.rs).
fn state(c: &mut Conn, n: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let prefix = format!("{n}:");
    workload::snapshot(&mut c.0, n)
        .into_iter()
        .filter(|(k, _)| !k.strip_prefix(prefix.as_bytes()).is_some_and(tq_core::keys::is_metrics))
        .map(|(k, (kind, v))| {
            let k = String::from_utf8(k).expect("utf8 key");
            let name = k.strip_prefix(&prefix).expect("a key of the namespace").to_string();
            (name, (kind, v.into_iter().map(|b| String::from_utf8_lossy(&b).into_owned()).collect()))
        })
        .collect()
}

/// The key names of namespace `n`, after `n:`.
fn key_names(c: &mut Conn, n: &str) -> BTreeSet<String> {
    state(c, n).into_keys().collect()
}

fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn parse(text: &str) -> J {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Pops from `queues` (as one TQ.POP argument list) and returns the payload.
fn pop(c: &mut Conn, n: &str, worker: &str, queues: &[&str]) -> String {
    let mut args = vec!["TQ.POP", n, worker];
    args.extend_from_slice(queues);
    popped_job(c.ok(&args)).unwrap_or_else(|| panic!("{worker} found a job in {queues:?}")).1
}

/// A whole second in 2100 (far in the future: nothing becomes due).
const BASE_MS: u64 = 4_102_444_800_000;

const KILLED: &str = "Worker Timeout (killed manually)";

// ---------------------------------------------------------------------------
// Delayed jobs: TQ.SCHEDULEDAT, TQ.TIMESTAMPS, TQ.DELAYEDAT, TQ.ALLDELAYED

#[test]
fn delayed_readers_reply_exactly_in_milliseconds() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("delayed");
    // Nothing yet: empty replies, no error.
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n]), json!([]));
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n]), json!([]));
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "A", "[1]"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &BASE_MS.to_string()]), json!([]));

    let b0 = BASE_MS; // bucket of BASE_MS + 499 (rounds down)
    let b1 = BASE_MS + 3_601_000; // bucket of BASE_MS + 3_600_500 (a half rounds up)
    let b2 = BASE_MS + 7_200_000;
    let at = |c: &mut Conn, ms: u64, queue: &str, class: &str, args: Option<&str>| {
        let ms = ms.to_string();
        let mut cmd = vec!["TQ.ENQUEUEAT", n.as_str(), ms.as_str(), queue, class];
        cmd.extend(args);
        c.int(&cmd)
    };
    assert_eq!(at(&mut c, BASE_MS + 499, "q", "A", Some("[1]")) as u64, b0 / 1000);
    assert_eq!(at(&mut c, BASE_MS + 200, "q", "B", None) as u64, b0 / 1000);
    assert_eq!(at(&mut c, BASE_MS + 3_600_500, "q", "A", Some("[1]")) as u64, b1 / 1000);
    assert_eq!(at(&mut c, b2, "q", "A", Some("[1]")) as u64, b2 / 1000);
    assert_eq!(at(&mut c, b2 + 1, "other", "C", Some("[2]")) as u64, b2 / 1000);
    let a1 = job("q", "A", "[1]");
    let bj = job("q", "B", "[]");
    let c2 = job("other", "C", "[2]");
    let before = c.quiet_digest();

    // SCHEDULEDAT: bucket starts in ms, sorted; args default to [], queue and
    // args are part of the job's identity.
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "A", "[1]"]), json!([b0, b1, b2]));
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "A", " [ 1 ] "]), json!([b0, b1, b2]), "args re-encoded");
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "B"]), json!([b0]));
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "B", "[]"]), json!([b0]));
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "A", "[2]"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "other", "A", "[1]"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "other", "C", "2"]), json!([b2]), "a non-array is wrapped");

    // TIMESTAMPS: oldest first, pages of offset/count.
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n]), json!([b0, b1, b2]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "0", "2"]), json!([b0, b1]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "1", "1"]), json!([b1]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "2", "10"]), json!([b2]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "3", "10"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "0", "0"]), json!([]));

    // DELAYEDAT: the bucket of any time in it (Math.round of seconds).
    for ms in [b0, b0 + 499, b0 - 500] {
        assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &ms.to_string()]), json!([a1, bj]), "DELAYEDAT {ms}");
    }
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &(b0 + 500).to_string()]), json!([]), "the next second's bucket");
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &(b0 - 501).to_string()]), json!([]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &(b1 - 1).to_string()]), json!([a1]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &b2.to_string()]), json!([a1, c2]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &b0.to_string(), "1", "1"]), json!([bj]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &b0.to_string(), "-1", "-1"]), json!([bj]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &b0.to_string(), "0", "0"]), json!([a1]));
    assert_eq!(r(&mut c, &["TQ.DELAYEDAT", &n, &b0.to_string(), "2", "5"]), json!([]));

    // ALLDELAYED: [[ms, [job, ...]], ...], a page of buckets.
    let all = json!([[b0, [a1, bj]], [b1, [a1]], [b2, [a1, c2]]]);
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n]), all);
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n, "1", "1"]), json!([[b1, [a1]]]));
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n, "1", "10"]), json!([[b1, [a1]], [b2, [a1, c2]]]));
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n, "3", "10"]), json!([]));

    // Bad arguments are refused with the argument named.
    assert!(c.err(&["TQ.TIMESTAMPS", &n, "1"]).contains("wrong number of arguments"));
    assert!(c.err(&["TQ.TIMESTAMPS", &n, "0", "10001"]).contains("count"));
    assert!(c.err(&["TQ.TIMESTAMPS", &n, "-1", "1"]).contains("offset"));
    assert!(c.err(&["TQ.ALLDELAYED", &n, "x", "1"]).contains("offset"));
    assert!(c.err(&["TQ.DELAYEDAT", &n, "soon"]).contains("unix-ms"));
    assert!(c.err(&["TQ.DELAYEDAT", &n, "-5"]).contains("unix-ms"));
    assert!(c.err(&["TQ.DELAYEDAT", &n, "5", "0"]).contains("wrong number of arguments"));
    assert!(c.err(&["TQ.SCHEDULEDAT", &n, "q", "A", "[1"]).starts_with("ERR"));
    assert!(c.err(&["TQ.SCHEDULEDAT", &n, "q"]).contains("wrong number of arguments"));
    // The readers wrote nothing.
    assert_eq!(c.digest(), before, "readers changed the dataset");

    // Promotion of a due bucket: it leaves every reader.
    let past = c.server_ms() - 10_000;
    let bp = at(&mut c, past, "q", "A", Some("[1]")) as u64 * 1000;
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "A", "[1]"]), json!([bp, b0, b1, b2]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "0", "1"]), json!([bp]));
    assert_eq!(c.int(&["TQ.PROMOTE", &n]), 1);
    assert_eq!(r(&mut c, &["TQ.SCHEDULEDAT", &n, "q", "A", "[1]"]), json!([b0, b1, b2]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n]), json!([b0, b1, b2]));
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n]), all);
}

#[test]
fn delayed_readers_page_through_many_buckets_and_big_buckets() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("delayed-pages");
    // 1205 buckets, one job each; bucket 0 gets 10_005 more jobs.
    let mut p = redis::pipe();
    for i in 0..1205u64 {
        p.cmd("TQ.ENQUEUEAT").arg(&n).arg(BASE_MS + i * 1000).arg("q").arg("A").arg(format!("[{i}]"));
    }
    for i in 0..10_005u64 {
        p.cmd("TQ.ENQUEUEAT").arg(&n).arg(BASE_MS).arg("q").arg("Big").arg(format!("[{i}]"));
    }
    let _: Vec<Value> = p.query(&mut c.0).expect("pipelined ENQUEUEAT");
    let want: Vec<u64> = (0..1205u64).map(|i| BASE_MS + i * 1000).collect();

    // TIMESTAMPS: default page 1000, then the rest.
    let first = r(&mut c, &["TQ.TIMESTAMPS", &n]);
    assert_eq!(first, json!(want[..1000]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "1000", "1000"]), json!(want[1000..]));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "0", "10000"]), json!(want));
    assert_eq!(r(&mut c, &["TQ.TIMESTAMPS", &n, "1204", "5"]), json!([want[1204]]));

    // ALLDELAYED: at most 1000 buckets a page and 1000 jobs a bucket.
    let page = r(&mut c, &["TQ.ALLDELAYED", &n, "0", "10000"]);
    let page = page.as_array().expect("array");
    assert_eq!(page.len(), 1000, "a page holds at most 1000 buckets");
    assert_eq!(page[0][0], json!(BASE_MS));
    assert_eq!(page[0][1].as_array().expect("jobs").len(), 1000, "at most 1000 jobs shown per bucket");
    assert_eq!(page[0][1][0], json!(job("q", "A", "[0]")));
    assert_eq!(page[0][1][999], json!(job("q", "Big", "[998]")));
    assert_eq!(page[999], json!([want[999], [job("q", "A", "[999]")]]));
    let rest = r(&mut c, &["TQ.ALLDELAYED", &n, "1000", "1000"]);
    let rest = rest.as_array().expect("array");
    assert_eq!(rest.len(), 205);
    for (i, b) in rest.iter().enumerate() {
        let k = 1000 + i;
        assert_eq!(*b, json!([want[k], [job("q", "A", &format!("[{k}]"))]]));
    }

    // DELAYEDAT: at most 10000 jobs a reply; ranges reach the rest.
    let big = r(&mut c, &["TQ.DELAYEDAT", &n, &BASE_MS.to_string()]);
    let big = big.as_array().expect("array");
    assert_eq!(big.len(), 10_000, "one reply lists at most 10000 jobs");
    assert_eq!(big[0], json!(job("q", "A", "[0]")));
    assert_eq!(big[9_999], json!(job("q", "Big", "[9998]")));
    let tail = r(&mut c, &["TQ.DELAYEDAT", &n, &BASE_MS.to_string(), "10000", "-1"]);
    assert_eq!(
        tail,
        json!([
            job("q", "Big", "[9999]"),
            job("q", "Big", "[10000]"),
            job("q", "Big", "[10001]"),
            job("q", "Big", "[10002]"),
            job("q", "Big", "[10003]"),
            job("q", "Big", "[10004]")
        ])
    );
    assert_eq!(c.int(&["LLEN", &format!("{n}:delayed:{}", BASE_MS / 1000)]), 10_006);
}

// ---------------------------------------------------------------------------
// TQ.STATS, TQ.WORKERS, TQ.FAILED

#[test]
fn stats_and_workers_reply_exactly() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("stats");
    assert_eq!(r(&mut c, &["TQ.STATS", &n]), json!(["processed", "0", "failed", "0"]));
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n]), json!([]));

    for (q, class) in [("q1", "A"), ("q1", "B"), ("q1", "C"), ("q2", "D"), ("q2", "E")] {
        c.ok(&["TQ.ENQUEUE", &n, q, class]);
    }
    assert_eq!(pop(&mut c, &n, "w:1", &["q1"]), job("q1", "A", "[]"));
    c.ack(&n, "w:1");
    assert_eq!(pop(&mut c, &n, "w:2", &["q1"]), job("q1", "B", "[]"));
    c.fail(&n, "w:2", &["E", "boom"]);
    // w:1 pops again with another queue list: a second registration.
    assert_eq!(pop(&mut c, &n, "w:1", &["q2", "q1"]), job("q2", "D", "[]"));
    // A node-resque worker registered with no job (host:pid:queues), its
    // counter written by node-resque.
    c.ok(&["SADD", &format!("{n}:workers"), "nodehost:77:q1,q2"]);
    c.ok(&["SET", &format!("{n}:worker:nodehost:77:q1,q2:started"), "1700000000"]);
    c.ok(&["SET", &format!("{n}:stat:processed:nodehost:77"), "5"]);
    // A counter of a worker that is not registered (any more) is not listed.
    c.ok(&["SET", &format!("{n}:stat:processed:gone:1"), "9"]);
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();

    assert_eq!(
        r(&mut c, &["TQ.STATS", &n]),
        json!(["processed", "1", "failed", "1", "processed:nodehost:77", "5", "processed:w:1", "1", "failed:w:2", "1"])
    );
    let record = c.string(&["GET", &format!("{n}:worker:w:1:q2,q1")]).expect("w:1's record");
    let rec = parse(&record);
    assert_eq!(rec["worker"], "w:1");
    assert_eq!(rec["queue"], "q2");
    assert_eq!(rec["payload"], parse(&job("q2", "D", "[]")));
    let all =
        json!([["nodehost:77", "q1,q2", null], ["w:1", "q1", null], ["w:1", "q2,q1", record], ["w:2", "q1", null]]);
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n]), all);
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n, "1", "2"]), json!([all[1], all[2]]));
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n, "3", "100"]), json!([all[3]]));
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n, "4", "100"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n, "0", "0"]), json!([]));
    assert!(c.err(&["TQ.WORKERS", &n, "0", "10001"]).contains("count"));
    assert!(c.err(&["TQ.STATS", &n, "extra"]).contains("wrong number of arguments"));
    assert_eq!(c.digest(), before, "readers changed the dataset");

    // After the job ends the record is gone from the reply, the registration stays.
    c.ack(&n, "w:1");
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n, "2", "1"]), json!([["w:1", "q2,q1", null]]));
    assert_eq!(
        r(&mut c, &["TQ.STATS", &n]),
        json!(["processed", "2", "failed", "1", "processed:nodehost:77", "5", "processed:w:1", "2", "failed:w:2", "1"])
    );
}

#[test]
fn failed_lists_records_with_their_ids_oldest_first() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("failed");
    assert_eq!(r(&mut c, &["TQ.FAILED", &n]), json!([]));
    for i in 0..5 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "Job", &format!("[{i}]")]);
        pop(&mut c, &n, "w:1", &["q"]);
        c.fail(&n, "w:1", &["TypeError", &format!("error {i} \"é\"\n"), r#"["at a","at b"]"#]);
    }
    // A corrupt payload moved to failed by a pop.
    c.ok(&["RPUSH", &format!("{n}:queue:q"), "not json"]);
    assert_eq!(c.ok(&["TQ.POP", &n, "w:1", "q"]), Value::Nil);
    let records = c.strings(&["LRANGE", &format!("{n}:failed"), "0", "-1"]);
    assert_eq!(records.len(), 6);
    assert_eq!(parse(&records[5])["exception"], "TQ::CorruptPayload");
    let rows: Vec<J> = records.iter().map(|rec| json!([fnv1a(rec.as_bytes()), rec])).collect();
    let ids: BTreeSet<&str> = rows.iter().map(|row| row[0].as_str().expect("id")).collect();
    assert_eq!(ids.len(), 6, "distinct records have distinct ids");
    assert!(ids.iter().all(|id| id.len() == 16 && id.chars().all(|ch| ch.is_ascii_hexdigit())));

    assert_eq!(r(&mut c, &["TQ.FAILED", &n]), json!(rows));
    assert_eq!(r(&mut c, &["TQ.FAILED", &n, "2", "2"]), json!(rows[2..4]));
    assert_eq!(r(&mut c, &["TQ.FAILED", &n, "5", "10"]), json!(rows[5..]));
    assert_eq!(r(&mut c, &["TQ.FAILED", &n, "6", "10"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.FAILED", &n, "0", "0"]), json!([]));
    assert!(c.err(&["TQ.FAILED", &n, "0"]).contains("wrong number of arguments"));
    // The record's fields are node-resque's.
    let first = parse(&records[0]);
    assert_eq!(first["worker"], "w:1");
    assert_eq!(first["queue"], "q");
    assert_eq!(first["payload"], parse(&job("q", "Job", "[0]")));
    assert_eq!(first["error"], "error 0 \"é\"\n");
    assert_eq!(first["backtrace"], json!(["at a", "at b"]));
}

// ---------------------------------------------------------------------------
// TQ.FAILRETRY / TQ.FAILREMOVE

/// Fails one job `class(args)` of `queue` by worker `w` with `exception`.
fn fail_one(c: &mut Conn, n: &str, queue: &str, class: &str, args: &str, exception: &str) -> String {
    c.ok(&["TQ.ENQUEUE", n, queue, class, args]);
    let payload = pop(c, n, "w:f", &[queue]);
    c.fail(n, "w:f", &[exception, "boom"]);
    payload
}

#[test]
fn failretry_and_failremove_select_by_id_class_queue_and_exception() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("failretry");
    let failed_key = format!("{n}:failed");
    let p0 = fail_one(&mut c, &n, "q1", "A", "[0]", "TypeError");
    let _p1 = fail_one(&mut c, &n, "q1", "B", "[1]", "TypeError");
    let p2 = fail_one(&mut c, &n, "q2", "A", "[2]", "RangeError");
    let p3 = fail_one(&mut c, &n, "q2", "B", "[3]", "TypeError");
    let p4 = fail_one(&mut c, &n, "q1", "A", "[4.50]", "RangeError");
    assert_eq!(p4, job("q1", "A", "[4.5]"));
    c.ok(&["RPUSH", &format!("{n}:queue:q1"), "{\"class\":\"A\""]);
    assert_eq!(c.ok(&["TQ.POP", &n, "w:f", "q1"]), Value::Nil, "the corrupt payload went to failed");
    let rec = c.strings(&["LRANGE", &failed_key, "0", "-1"]);
    assert_eq!(rec.len(), 6);

    // By id: back at the tail of its queue, bytes unchanged, record gone.
    c.ok(&["TQ.ENQUEUE", &n, "q2", "Z"]);
    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n, "ID", &fnv1a(rec[2].as_bytes())]), (1, None));
    assert_eq!(c.lrange(&format!("{n}:queue:q2")), [job("q2", "Z", "[]"), p2.clone()]);
    assert_eq!(c.lrange(&failed_key), [&*rec[0], &rec[1], &rec[3], &rec[4], &rec[5]]);
    // An id that matches nothing: nothing changes.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n, "ID", "0123456789abcdef"]), (0, None));
    assert_eq!(pair(&mut c, &["TQ.FAILREMOVE", &n, "ID", &fnv1a(rec[2].as_bytes())]), (0, None));
    assert_eq!(pair(&mut c, &["TQ.FAILREMOVE", &n, "CLASS", "B", "QUEUE", "q2", "EXCEPTION", "RangeError"]), (0, None));
    assert_eq!(c.digest(), before);

    // Filters combine: class B of queue q1 is r1 only.
    assert_eq!(pair(&mut c, &["TQ.FAILREMOVE", &n, "class", "B", "queue", "q1"]), (1, None));
    assert_eq!(c.lrange(&failed_key), [&*rec[0], &rec[3], &rec[4], &rec[5]]);
    assert_eq!(c.lrange(&format!("{n}:queue:q1")), Vec::<String>::new(), "FAILREMOVE enqueues nothing");

    // The queue was deleted and unregistered meanwhile: a retry registers it again.
    c.ok(&["TQ.DELQUEUE", &n, "q1"]);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:queues")]), ["q2"]);
    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n, "EXCEPTION", "TypeError"]), (2, None));
    assert_eq!(c.lrange(&format!("{n}:queue:q1")), std::slice::from_ref(&p0));
    assert_eq!(c.lrange(&format!("{n}:queue:q2")), [job("q2", "Z", "[]"), p2.clone(), p3.clone()]);
    let mut queues = c.strings(&["SMEMBERS", &format!("{n}:queues")]);
    queues.sort();
    assert_eq!(queues, ["q1", "q2"], "the retried job's queue is registered again");

    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n, "CLASS", "A"]), (1, None));
    assert_eq!(c.lrange(&format!("{n}:queue:q1")), [p0.clone(), p4.clone()]);
    // A record whose job cannot run is neither retried nor removed by a retry ...
    let before = c.quiet_digest();
    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n]), (0, None));
    assert_eq!(c.digest(), before);
    assert_eq!(c.lrange(&failed_key), [&*rec[5]]);
    // ... but FAILREMOVE removes it.
    assert_eq!(pair(&mut c, &["TQ.FAILREMOVE", &n, "EXCEPTION", "TQ::CorruptPayload"]), (1, None));
    assert_eq!(c.int(&["EXISTS", &failed_key]), 0, "the emptied failed list is gone");
    // The retried jobs run again.
    for want in [p0, p4] {
        assert_eq!(pop(&mut c, &n, "w:again", &["q1"]), want);
        c.ack(&n, "w:again");
    }

    // Bad options write nothing.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    for (args, text) in [
        (vec!["FOO", "1"], "unknown option"),
        (vec!["ID", "a", "ID", "b"], "given twice"),
        (vec!["ID"], "needs a value"),
        (vec!["LIMIT", "0"], "LIMIT"),
        (vec!["LIMIT", "100001"], "LIMIT"),
        (vec!["FROM", "-1"], "FROM"),
    ] {
        for cmd in ["TQ.FAILRETRY", "TQ.FAILREMOVE"] {
            let mut full = vec![cmd, n.as_str()];
            full.extend(&args);
            let e = c.err(&full);
            assert!(e.starts_with("ERR") && e.contains(text), "{full:?}: {e}");
        }
    }
    assert_eq!(c.digest(), before);
}

#[test]
fn failretry_cursor_visits_every_record_once() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("failcursor");
    // 30 records alternating class A / B; A is retried 3 records at a time.
    let mut a_jobs = Vec::new();
    let mut b_records = Vec::new();
    for i in 0..30 {
        let class = if i % 2 == 0 { "A" } else { "B" };
        let p = fail_one(&mut c, &n, "q", class, &format!("[{i}]"), "E");
        if class == "A" {
            a_jobs.push(p);
        }
    }
    for rec in c.lrange(&format!("{n}:failed")) {
        if parse(&rec)["payload"]["class"] == "B" {
            b_records.push(rec);
        }
    }
    let (mut from, mut calls, mut total) = (0i64, 0, 0);
    loop {
        let (done, next) = pair(&mut c, &["TQ.FAILRETRY", &n, "CLASS", "A", "FROM", &from.to_string(), "LIMIT", "3"]);
        calls += 1;
        assert!(done <= 3);
        total += done;
        // Nothing before `next` is an A record any more.
        let left = c.lrange(&format!("{n}:failed"));
        let next_u = next.map_or(usize::MAX, |n| usize::try_from(n).expect("next"));
        assert!(
            left.iter().take(next_u).all(|rec| parse(rec)["payload"]["class"] == "B"),
            "an A record before {next:?}"
        );
        let Some(next) = next else { break };
        assert!(next > from || done > 0, "the cursor moves on");
        from = next;
        assert!(calls < 100, "the cursor never ends");
    }
    assert_eq!(total, 15);
    assert_eq!(calls, 10, "30 records, 3 looked at a call");
    assert_eq!(c.lrange(&format!("{n}:queue:q")), a_jobs, "each A job retried once, in order");
    assert_eq!(c.lrange(&format!("{n}:failed")), b_records, "the B records stay, in order");

    // FAILREMOVE's cursor the same way, 4 records a call: 20 more records
    // alternating X / Y after the 15 B records; the Y records go.
    let mut x_records = Vec::new();
    for i in 0..20 {
        fail_one(&mut c, &n, "xy", if i % 2 == 0 { "X" } else { "Y" }, &format!("[{i}]"), "E");
    }
    for rec in c.lrange(&format!("{n}:failed")).into_iter().skip(15) {
        if parse(&rec)["payload"]["class"] == "X" {
            x_records.push(rec);
        }
    }
    let (mut from, mut removed, mut calls) = (0i64, 0, 0);
    loop {
        let (done, next) = pair(&mut c, &["TQ.FAILREMOVE", &n, "CLASS", "Y", "FROM", &from.to_string(), "LIMIT", "4"]);
        removed += done;
        calls += 1;
        let Some(next) = next else { break };
        from = next;
        assert!(calls < 100, "the cursor never ends");
    }
    assert_eq!(removed, 10);
    assert_eq!(calls, 9, "35 records, 4 looked at a call");
    let left = c.lrange(&format!("{n}:failed"));
    assert_eq!(left[..15], b_records[..], "the B records stay, in order");
    assert_eq!(left[15..], x_records[..], "the X records stay, in order");
    assert_eq!(c.lrange(&format!("{n}:queue:q")), a_jobs, "FAILREMOVE enqueued nothing");
}

/// Retry-all (no filter) following the cursor: when a whole window is
/// retried, the next position is 0 again, and the end is nil, not 0.
#[test]
fn failretry_all_cursor_does_not_stop_before_the_end() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("failall");
    for i in 0..5 {
        fail_one(&mut c, &n, "q", "A", &format!("[{i}]"), "E");
    }
    let mut from = 0i64;
    for _ in 0..10 {
        let (_, next) = pair(&mut c, &["TQ.FAILRETRY", &n, "FROM", &from.to_string(), "LIMIT", "2"]);
        let Some(next) = next else { break };
        from = next;
    }
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 0, "following the cursor retried every record");
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 5);
}

// ---------------------------------------------------------------------------
// TQ.DEL, TQ.DELDELAYED, TQ.DELQUEUE, TQ.DELBYCLASS

#[test]
fn del_removes_waiting_instances_all_or_count() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("del");
    let qkey = format!("{n}:queue:q");
    for (class, args) in [("A", "[1]"), ("B", "[]"), ("A", "[1]"), ("A", "[2]"), ("A", "[1]")] {
        c.ok(&["TQ.ENQUEUE", &n, "q", class, args]);
    }
    c.ok(&["TQ.ENQUEUE", &n, "p", "A", "[1]"]);
    assert_eq!(c.int(&["TQ.DEL", &n, "q", "A", "[1]", "COUNT", "2"]), 2, "the first two");
    assert_eq!(c.lrange(&qkey), [job("q", "B", "[]"), job("q", "A", "[2]"), job("q", "A", "[1]")]);
    assert_eq!(c.int(&["TQ.DEL", &n, "q", "A", "[1.0]"]), 1, "args are compared as node-resque encodes them");
    assert_eq!(c.int(&["TQ.DEL", &n, "q", "B", "COUNT", "1"]), 1, "args default to []");
    assert_eq!(c.int(&["TQ.DEL", &n, "q", "B"]), 0);
    assert_eq!(c.lrange(&qkey), [job("q", "A", "[2]")]);
    assert_eq!(c.int(&["TQ.DEL", &n, "x", "A", "[2]"]), 0, "another queue's job is another job");
    assert_eq!(c.int(&["TQ.DEL", &n, "nosuch", "A", "[2]"]), 0);
    assert_eq!(c.int(&["TQ.DEL", &n, "q", "A", "2"]), 1, "a non-array is wrapped");
    assert_eq!(c.int(&["EXISTS", &qkey]), 0, "the emptied queue is gone");
    let mut queues = c.strings(&["SMEMBERS", &format!("{n}:queues")]);
    queues.sort();
    assert_eq!(queues, ["p", "q"], "node-resque's del does not unregister the queue");
    assert_eq!(c.lrange(&format!("{n}:queue:p")), [job("p", "A", "[1]")], "other queues untouched");
    let before = c.quiet_digest();
    assert!(c.err(&["TQ.DEL", &n, "p", "A", "[1]", "COUNT", "0"]).contains("COUNT"));
    assert!(c.err(&["TQ.DEL", &n, "p", "A", "[1]", "COUNT", "-1"]).contains("COUNT"));
    assert!(c.err(&["TQ.DEL", &n, "p", "A", "[1"]).starts_with("ERR"));
    assert!(c.err(&["TQ.DEL", &n, "p"]).contains("wrong number of arguments"));
    assert_eq!(c.digest(), before);
}

#[test]
fn deldelayed_removes_the_job_its_markers_and_emptied_buckets() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("deldelayed");
    let (t1, t2, t3) = (BASE_MS, BASE_MS + 60_000, BASE_MS + 120_000);
    for t in [t1, t2, t3] {
        c.ok(&["TQ.ENQUEUEAT", &n, &t.to_string(), "q", "A", "[1]"]);
    }
    c.ok(&["TQ.ENQUEUEAT", &n, &t2.to_string(), "q", "B"]);
    c.ok(&["TQ.ENQUEUEAT", &n, &t2.to_string(), "q", "A", "[2]"]);
    let a1 = job("q", "A", "[1]");
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "q", "A", "[1]"]), json!([t1, t2, t3]));
    let b2 = t2 / 1000;
    // (Times on a second need no exact time of tq's: none is kept.)
    assert_eq!(
        state(&mut c, &n),
        BTreeMap::from([
            ("delayed_queue_schedule".to_string(), ("zset".to_string(), strs(&[&b2.to_string(), &b2.to_string()]))),
            (format!("delayed:{b2}"), ("list".to_string(), vec![job("q", "B", "[]"), job("q", "A", "[2]")])),
            (format!("timestamps:{}", job("q", "B", "[]")), ("set".to_string(), vec![format!("delayed:{b2}")])),
            (format!("timestamps:{}", job("q", "A", "[2]")), ("set".to_string(), vec![format!("delayed:{b2}")])),
        ]),
        "buckets 1 and 3 went (list and schedule), bucket 2 keeps its other jobs, A[1]'s markers went"
    );
    assert!(!key_names(&mut c, &n).contains(&format!("timestamps:{a1}")));
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "q", "A", "[1]"]), json!([]));
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "other", "B"]), json!([]), "the queue is part of the job");
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "q", "B", "[]"]), json!([t2]));
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "q", "A", "2"]), json!([t2]));
    assert_eq!(key_names(&mut c, &n), BTreeSet::new(), "nothing left");
    // A time off the second keeps tq's exact time beside the bucket; the
    // job's removal takes it too.
    let t4 = BASE_MS + 180_250;
    c.ok(&["TQ.ENQUEUEAT", &n, &t4.to_string(), "q", "A", "[4]"]);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:tq:at"), &format!("{n}:tq:due")]), 2);
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "q", "A", "[4]"]), json!([BASE_MS + 180_000]));
    assert_eq!(key_names(&mut c, &n), BTreeSet::new(), "nothing left of it");
    // Filed again: no DUPLICATE left over.
    c.ok(&["TQ.ENQUEUEAT", &n, &t1.to_string(), "q", "A", "[1]"]);
    assert_eq!(r(&mut c, &["TQ.ALLDELAYED", &n]), json!([[t1, [a1]]]));
    // A job whose marker is stale (its bucket was emptied by hand): the
    // marker goes, nothing is reported.
    c.ok(&["DEL", &format!("{n}:delayed:{}", t1 / 1000)]);
    assert_eq!(r(&mut c, &["TQ.DELDELAYED", &n, "q", "A", "[1]"]), json!([]));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:timestamps:{a1}")]), 0);
}

#[test]
fn delqueue_deletes_and_unregisters_and_enqueue_registers_again() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("delqueue");
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "A", &format!("[{i}]")]);
    }
    c.ok(&["TQ.ENQUEUE", &n, "p", "A"]);
    assert_eq!(c.int(&["TQ.DELQUEUE", &n, "q"]), 3);
    assert_eq!(
        state(&mut c, &n),
        BTreeMap::from([
            ("queues".to_string(), ("set".to_string(), strs(&["p"]))),
            ("queue:p".to_string(), ("list".to_string(), vec![job("p", "A", "[]")])),
        ])
    );
    assert_eq!(c.int(&["TQ.DELQUEUE", &n, "q"]), 0);
    assert_eq!(c.int(&["TQ.DELQUEUE", &n, "nosuch"]), 0);
    // Registered again by the next enqueue (tq's membership cache noticed).
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "q", "A"]), 1);
    let mut queues = c.strings(&["SMEMBERS", &format!("{n}:queues")]);
    queues.sort();
    assert_eq!(queues, ["p", "q"]);
    assert_eq!(pop(&mut c, &n, "w:1", &["*"]), job("p", "A", "[]"));
    c.ack(&n, "w:1");
    assert_eq!(pop(&mut c, &n, "w:1", &["*"]), job("q", "A", "[]"));
    // An empty but registered queue is unregistered.
    c.ack(&n, "w:1");
    assert_eq!(c.int(&["TQ.DELQUEUE", &n, "p"]), 0);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:queues")]), ["q"]);
    assert!(c.err(&["TQ.DELQUEUE", &n]).contains("wrong number of arguments"));
    assert!(c.err(&["TQ.DELQUEUE", &n, ""]).starts_with("ERR"));
}

#[test]
fn delbyclass_removes_a_class_found_in_a_range() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("delbyclass");
    let qkey = format!("{n}:queue:q");
    for (class, args) in [("A", "[1]"), ("B", "[1]"), ("A", "[2]"), ("A", "[1]"), ("B", "[2]"), ("A", "[3]")] {
        c.ok(&["TQ.ENQUEUE", &n, "q", class, args]);
    }
    // Range 2..3 holds A[2] and A[1]; like node-resque's LREM 0, the copy of
    // A[1] outside the range (position 0) goes too, and is counted.
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "q", "A", "2", "3"]), 3);
    assert_eq!(c.lrange(&qkey), [job("q", "B", "[1]"), job("q", "B", "[2]"), job("q", "A", "[3]")]);
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "q", "A", "0", "1"]), 0, "no A in that range");
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "q", "A", "-1", "-1"]), 1);
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "q", "C"]), 0);
    // A payload that is not a job is left alone.
    c.ok(&["RPUSH", &qkey, "not json"]);
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "q", "B"]), 2);
    assert_eq!(c.lrange(&qkey), ["not json"]);
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "nosuch", "B"]), 0);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:queues")]), ["q"], "the queue stays registered");
    assert!(c.err(&["TQ.DELBYCLASS", &n, "q", "B", "0"]).contains("wrong number of arguments"));
    assert!(c.err(&["TQ.DELBYCLASS", &n, "q", "B", "x", "1"]).contains("start"));
}

// ---------------------------------------------------------------------------
// TQ.FORCECLEAN, TQ.CLEANWORKERS, TQ.UNTRACK

/// Checks a force-clean failure record: node-resque's fields and markers.
fn assert_killed_record(record: &str, worker: &str, queue: &str, payload: &str) {
    let rec = parse(record);
    let fields: Vec<&String> = rec.as_object().expect("object").keys().collect();
    assert_eq!(fields, ["backtrace", "error", "exception", "failed_at", "payload", "queue", "worker"]);
    assert!(
        record.starts_with(&format!(r#"{{"worker":{},"queue":{},"payload":{payload},"#, json!(worker), json!(queue))),
        "node-resque's member order, payload verbatim: {record}"
    );
    assert_eq!(rec["exception"], KILLED);
    assert_eq!(rec["error"], KILLED);
    assert_eq!(rec["backtrace"][1], "queue#forceCleanWorker", "what node-resque's retryStuckJobs looks for");
    assert!(rec["backtrace"][0].as_str().expect("backtrace[0]").starts_with("killed by tq at "));
    let failed_at = rec["failed_at"].as_str().expect("failed_at");
    assert!(failed_at.ends_with("GMT+0000 (Coordinated Universal Time)"), "{failed_at}");
}

#[test]
fn forceclean_fails_the_held_job_and_removes_every_key_of_the_worker() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("forceclean");
    for (class, args) in [("J", "[1]"), ("J", "[2]"), ("K", "[]")] {
        c.ok(&["TQ.ENQUEUE", &n, "q", class, args]);
    }
    // w:1 ran a job, failed one, and holds J[2] with its JobLock; it sent a
    // heartbeat; node-resque's started key is there too.
    pop(&mut c, &n, "w:1", &["q"]);
    c.ack(&n, "w:1");
    c.ok(&["TQ.ENQUEUE", &n, "f", "F"]);
    pop(&mut c, &n, "w:1", &["f"]);
    c.fail(&n, "w:1", &["E", "e"]);
    let held = popped_job(c.ok(&["TQ.POP", &n, "w:1", "q", "JOBLOCK", "60000"])).expect("a job").1;
    assert_eq!(held, job("q", "J", "[2]"));
    assert_eq!(c.beat(&n, "w:1", "30000"), 30_000);
    c.ok(&["SET", &format!("{n}:worker:w:1:q:started"), "1700000000"]);
    // Another worker, not to be touched.
    assert_eq!(pop(&mut c, &n, "w:2", &["q"]), job("q", "K", "[]"));
    let names = key_names(&mut c, &n);
    for k in [
        "worker:w:1:q",
        "worker:w:1:q:started",
        "worker:ping:w:1",
        "stat:processed:w:1",
        "stat:failed:w:1",
        "tq:inflight:w:1",
        "workerslock:J:q:[2]",
    ] {
        assert!(names.contains(k), "{k} exists before the clean: {names:?}");
    }
    let w2_before: Vec<_> = ["worker:w:2:q", "tq:inflight:w:2"]
        .iter()
        .map(|k| c.bytes(&["GET", &format!("{n}:{k}")]).expect("w:2's keys"))
        .collect();
    let failed_before = c.lrange(&format!("{n}:failed"));
    assert_eq!(failed_before.len(), 1);

    let record = c.string(&["TQ.FORCECLEAN", &n, "w:1"]).expect("the failure record");
    assert_killed_record(&record, "w:1", "q", &held);
    let after = state(&mut c, &n);
    let names: BTreeSet<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        BTreeSet::from([
            "failed",
            "queues",
            "stat:failed",
            "stat:processed",
            "tq:delivery",
            "tq:inflight:w:2",
            "tq:leases",
            "worker:w:2:q",
            "workers"
        ]),
        "every key of w:1 went (records, started, ping, counters, index, JobLock)"
    );
    assert_eq!(after["failed"].1, [failed_before[0].clone(), record.clone()]);
    assert_eq!(after["stat:failed"].1, ["2"]);
    assert_eq!(after["stat:processed"].1, ["1"]);
    assert_eq!(after["workers"].1, ["w:2:q"]);
    assert_eq!(after["tq:leases"].1[0], "w:2", "w:1's lease went");
    assert_eq!(after["tq:leases"].1.len(), 2);
    assert_eq!(c.ok(&["ZSCORE", &format!("{n}:tq:alive"), "w:1"]), Value::Nil, "w:1's liveness went");
    let w2_after: Vec<_> = ["worker:w:2:q", "tq:inflight:w:2"]
        .iter()
        .map(|k| c.bytes(&["GET", &format!("{n}:{k}")]).expect("w:2's keys"))
        .collect();
    assert_eq!(w2_after, w2_before, "w:2 untouched");

    // w:1 reporting late is refused and counts nothing.
    assert!(c.ack_err(&n, "w:1").starts_with("NOJOB"));
    assert!(c.fail_err(&n, "w:1", &["E", "late"]).starts_with("NOJOB"));
    assert_eq!(c.string(&["GET", &format!("{n}:stat:processed")]).as_deref(), Some("1"));
    // w:1 can work again, and is registered again.
    c.ok(&["TQ.ENQUEUE", &n, "q", "L"]);
    assert_eq!(pop(&mut c, &n, "w:1", &["q"]), job("q", "L", "[]"));
    let mut workers = c.strings(&["SMEMBERS", &format!("{n}:workers")]);
    workers.sort();
    assert_eq!(workers, ["w:1:q", "w:2:q"]);
    c.ack(&n, "w:1");
    // retryStuckJobs' selection puts the job back, bytes unchanged.
    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n, "EXCEPTION", KILLED]), (1, None));
    assert_eq!(c.lrange(&format!("{n}:queue:q")), [held]);

    // An idle worker: nil, no failure counted, its registration and keys go.
    let before_failed = c.string(&["GET", &format!("{n}:stat:failed")]);
    assert_eq!(c.ok(&["TQ.FORCECLEAN", &n, "w:1"]), Value::Nil);
    assert_eq!(c.string(&["GET", &format!("{n}:stat:failed")]), before_failed);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:workers")]), ["w:2:q"]);
    assert_eq!(c.ok(&["GET", &format!("{n}:stat:processed:w:1")]), Value::Nil);
    // Unknown worker: nil, nothing written.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    assert_eq!(c.ok(&["TQ.FORCECLEAN", &n, "nobody:1"]), Value::Nil);
    assert_eq!(c.digest(), before);
    assert!(c.err(&["TQ.FORCECLEAN", &n, ""]).starts_with("ERR"));
}

/// Worker `w` and worker `w:1` (both valid names: at most one colon). The
/// `<ns>:workers` member of `w:1` is `w:1:q`, which starts with `w:`, so
/// TQ.FORCECLEAN w takes w:1's registration, record and job as w's.
#[test]
fn forceclean_touches_only_the_named_worker() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("forceclean-prefix");
    c.ok(&["TQ.ENQUEUE", &n, "q", "A", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "A", "[2]"]);
    let mine = pop(&mut c, &n, "w", &["q"]);
    let theirs = pop(&mut c, &n, "w:1", &["q"]);
    let record = c.string(&["TQ.FORCECLEAN", &n, "w"]).expect("w held a job");
    assert_eq!(parse(&record)["payload"], parse(&mine), "the record is of w's own job");
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:workers")]), ["w:1:q"], "w:1 stays registered");
    let rec = c.string(&["GET", &format!("{n}:worker:w:1:q")]).expect("w:1's record stays");
    assert_eq!(parse(&rec)["payload"], parse(&theirs));
    assert_eq!(c.ack(&n, "w:1"), Value::Okay, "w:1 still holds its job");

    // The same through TQ.CLEANWORKERS: only the stale worker goes.
    c.ok(&["TQ.ENQUEUE", &n, "q", "A", "[3]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "A", "[4]"]);
    pop(&mut c, &n, "v", &["q"]);
    std::thread::sleep(Duration::from_millis(1200));
    pop(&mut c, &n, "v:1", &["q"]);
    let cleaned = r(&mut c, &["TQ.CLEANWORKERS", &n, "600"]);
    assert_eq!(cleaned.as_array().map(Vec::len), Some(1));
    assert_eq!(parse(cleaned[0][1].as_str().expect("record"))["payload"], parse(&job("q", "A", "[3]")));
    assert_eq!(c.ack(&n, "v:1"), Value::Okay, "v:1 still holds its job");
}

#[test]
fn cleanworkers_cleans_the_workers_whose_job_started_more_than_age_ago() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("cleanworkers");
    for class in ["Old", "Idle", "Young"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", class]);
    }
    let old = pop(&mut c, &n, "w:old", &["q"]);
    // A node-resque worker stuck since 2000 (its record as node-resque's Lua
    // writes it: Date.toString() run_at, cjson member order).
    let node_payload = job("q", "N", "[1]");
    let node_record = format!(
        r#"{{"payload":{node_payload},"run_at":"Sat Jan 01 2000 00:00:00 GMT+0000 (Coordinated Universal Time)","queue":"q","worker":"nodehost:1"}}"#
    );
    c.ok(&["SADD", &format!("{n}:workers"), "nodehost:1:q"]);
    c.ok(&["SET", &format!("{n}:worker:nodehost:1:q"), &node_record]);
    c.ok(&["SET", &format!("{n}:worker:nodehost:1:q:started"), "946684800"]);
    std::thread::sleep(Duration::from_millis(1200));
    pop(&mut c, &n, "w:idle", &["q"]);
    c.ack(&n, "w:idle");
    // The idle worker's tally written, and no minute of the job metrics
    // closing soon, before the young pop, which must stay under 600 ms old:
    // the quiet digest below waits out a minute closing within 1.5 s.
    c.wait_metrics_quiet(&n, 3_000);
    let young = pop(&mut c, &n, "w:young", &["q"]);

    // Nothing is that old: nothing written.
    let before = c.quiet_digest();
    assert_eq!(r(&mut c, &["TQ.CLEANWORKERS", &n, "10000000000000"]), json!([]));
    assert_eq!(c.digest(), before);

    // An age between the pops (600 ms either side): the old two, by name.
    let cleaned = r(&mut c, &["TQ.CLEANWORKERS", &n, "600"]);
    let rows = cleaned.as_array().expect("array");
    assert_eq!(rows.len(), 2, "{cleaned}");
    assert_eq!(rows[0][0], "nodehost:1");
    assert_eq!(rows[1][0], "w:old");
    let rec_node = rows[0][1].as_str().expect("record").to_string();
    let rec_old = rows[1][1].as_str().expect("record").to_string();
    assert_killed_record(&rec_node, "nodehost:1", "q", &node_payload);
    assert_killed_record(&rec_old, "w:old", "q", &old);
    assert_eq!(c.lrange(&format!("{n}:failed")), [rec_node, rec_old], "both records, in the reply's order");
    assert_eq!(c.string(&["GET", &format!("{n}:stat:failed")]).as_deref(), Some("2"));
    let names = key_names(&mut c, &n);
    assert!(!names.iter().any(|k| k.contains("nodehost:1") || k.contains("w:old")), "{names:?}");
    let mut workers = c.strings(&["SMEMBERS", &format!("{n}:workers")]);
    workers.sort();
    assert_eq!(workers, ["w:idle:q", "w:young:q"], "the young and the idle worker stay");
    assert!(c.string(&["GET", &format!("{n}:worker:w:young:q")]).is_some());
    assert_eq!(c.ack(&n, "w:young"), Value::Okay, "the young worker still holds its job");
    assert_eq!(c.string(&["GET", &format!("{n}:stat:processed")]).as_deref(), Some("2"));
    // FAILRETRY brings both back.
    assert_eq!(pair(&mut c, &["TQ.FAILRETRY", &n, "EXCEPTION", KILLED]), (2, None));
    assert_eq!(c.lrange(&format!("{n}:queue:q")), [node_payload, old]);
    assert_eq!(young, job("q", "Young", "[]"));
    assert!(c.err(&["TQ.CLEANWORKERS", &n, "-1"]).contains("age-ms"));
}

#[test]
fn untrack_unregisters_a_stopping_worker_but_not_one_holding_a_job() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("untrack");
    c.ok(&["TQ.ENQUEUE", &n, "q", "A"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "B"]);
    pop(&mut c, &n, "w:1", &["q"]);
    c.beat(&n, "w:1", "30000");
    c.ok(&["SET", &format!("{n}:worker:w:1:q:started"), "1700000000"]);
    let before = c.quiet_digest();
    let e = c.err(&["TQ.UNTRACK", &n, "w:1", "q"]);
    assert!(e.starts_with("INFLIGHT"), "{e}");
    assert_eq!(c.digest(), before, "a refusal writes nothing");
    c.ack(&n, "w:1");
    c.beat(&n, "w:1", "30000");
    assert_eq!(r(&mut c, &["TQ.STATS", &n]), json!(["processed", "1", "failed", "0", "processed:w:1", "1"]));

    assert_eq!(c.ok(&["TQ.UNTRACK", &n, "w:1", "q"]), Value::Okay);
    let names = key_names(&mut c, &n);
    assert_eq!(
        names,
        BTreeSet::from(["queue:q", "queues", "stat:processed", "stat:processed:w:1", "tq:delivery"].map(String::from)),
        "registration, started, ping, liveness and the last delivery's tombstone went; the counters stay"
    );
    assert_eq!(r(&mut c, &["TQ.STATS", &n]), json!(["processed", "1", "failed", "0"]), "no longer registered");
    assert_eq!(r(&mut c, &["TQ.WORKERS", &n]), json!([]));
    assert_eq!(c.ok(&["TQ.UNTRACK", &n, "w:1", "q"]), Value::Okay, "again: nothing to do");
    // A pop registers it again (tq's membership cache noticed the removal).
    pop(&mut c, &n, "w:1", &["q"]);
    assert_eq!(c.strings(&["SMEMBERS", &format!("{n}:workers")]), ["w:1:q"]);
    assert!(c.err(&["TQ.UNTRACK", &n, "w:1"]).contains("wrong number of arguments"));
}

/// A job whose lease ran out waits with its delivery count in
/// `<ns>:tq:deliveries` (payload → count), and a redelivered job keeps that
/// entry until TQ.ACK/TQ.FAIL drops it. TQ.DEL, TQ.DELQUEUE, TQ.DELBYCLASS
/// (the waiting job) and TQ.FORCECLEAN (the redelivered job in flight)
/// remove the job but leave the entry: the same job enqueued again later
/// starts at delivery 2 (and reaches tq.max-deliveries, i.e.
/// TQ::LeaseExpired, one delivery early), where after TQ.FAIL + retry it
/// starts at 1.
#[test]
fn removing_a_redelivered_job_forgets_its_delivery_count() {
    let s = Server::start_with(Opts::module_with(&["lease-ms", "200"]));
    let mut c = s.conn();
    let n = ns("deliveries");
    let dkey = format!("{n}:tq:deliveries");
    for class in ["Del", "DelQueue", "ByClass", "Clean"] {
        let q = format!("q-{class}");
        c.ok(&["TQ.ENQUEUE", &n, &q, class]);
        pop(&mut c, &n, &format!("w:{class}"), &[&q]);
    }
    common::wait_until(30, "the four leases to run out (jobs given back)", || c.int(&["HLEN", &dkey]) == 4);
    c.ok(&["CONFIG", "SET", "tq.lease-ms", "60000"]);
    assert_eq!(c.int(&["TQ.DEL", &n, "q-Del", "Del"]), 1);
    assert_eq!(c.int(&["TQ.DELQUEUE", &n, "q-DelQueue"]), 1);
    assert_eq!(c.int(&["TQ.DELBYCLASS", &n, "q-ByClass", "ByClass"]), 1);
    let again = r(&mut c, &["TQ.POP", &n, "w:again", "q-Clean", "DELIVERIES"]);
    assert_eq!(again[3], json!(2), "the second delivery");
    assert!(c.string(&["TQ.FORCECLEAN", &n, "w:again"]).is_some());
    // The same job, enqueued again, is a first delivery.
    c.ok(&["TQ.ENQUEUE", &n, "q-Del", "Del"]);
    let fresh = r(&mut c, &["TQ.POP", &n, "w:fresh", "q-Del", "DELIVERIES"]);
    assert_eq!(fresh[3], json!(1), "a job enqueued after TQ.DEL removed its twin starts at delivery 1");
    assert_eq!(r(&mut c, &["HGETALL", &dkey]), json!([]), "no delivery count left for jobs that are gone");
}

// ---------------------------------------------------------------------------
// TQ.LOCKS, TQ.DETAILS

#[test]
fn locks_scan_lists_the_namespaces_lock_keys_once() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("locks");
    let mut want: BTreeMap<String, String> = BTreeMap::new();
    // 250 QueueLocks (UNIQUE enqueues).
    for i in 0..250 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "U", &format!("[{i}]"), "UNIQUE", "600000"]);
    }
    // A JobLock: J[1] popped with JOBLOCK (its QueueLock, if any, goes with the pop).
    c.ok(&["TQ.ENQUEUE", &n, "j", "J", "[1]"]);
    popped_job(c.ok(&["TQ.POP", &n, "w:1", "j", "JOBLOCK", "600000"])).expect("J[1]");
    // A pair lock; a hash lock, the leader lock and another namespace's
    // locks are not listed.
    let pl = r(&mut c, &["TQ.LOCK", &n, "nightly", "me", "600000"]);
    assert_eq!(pl[0], "acquired");
    c.ok(&["TQ.HLOCK", &n, "hk", "f", "me", "600000"]);
    c.ok(&["TQ.LEADER", &n, "sched:1", "600000"]);
    let other = format!("{n}:sub");
    c.ok(&["TQ.ENQUEUE", &other, "q", "U", "[1]", "UNIQUE"]);
    c.ok(&["TQ.ENQUEUE", &format!("{n}x"), "q", "U", "[1]", "UNIQUE"]);
    for key in c.strings(&["KEYS", &format!("{n}:lock:*")]) {
        let v = c.string(&["GET", &key]).expect("lock value");
        want.insert(key.strip_prefix(&format!("{n}:")).expect("prefix").to_string(), v);
    }
    for key in c.strings(&["KEYS", &format!("{n}:workerslock:*")]) {
        let v = c.string(&["GET", &key]).expect("lock value");
        want.insert(key.strip_prefix(&format!("{n}:")).expect("prefix").to_string(), v);
    }
    assert_eq!(want.len(), 251);
    assert!(want.contains_key("lock:U:q:[0]") && want.contains_key("workerslock:J:j:[1]"));

    // Page through with the cursor, 10 keys a step.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut cursor = "0".to_string();
    let mut steps = 0;
    loop {
        let reply = r(&mut c, &["TQ.LOCKS", &n, &cursor, "10"]);
        steps += 1;
        for row in reply[1].as_array().expect("rows") {
            let name = row[0].as_str().expect("name").to_string();
            let value = row[1].as_str().expect("value").to_string();
            if let Some(prev) = seen.insert(name.clone(), value.clone()) {
                assert_eq!(prev, value, "{name} listed twice with different values");
            }
        }
        cursor = match &reply[0] {
            J::Number(x) => x.to_string(),
            J::String(x) => x.clone(),
            other => panic!("cursor {other}"),
        };
        if cursor == "0" {
            break;
        }
        assert!(steps < 10_000, "the scan never ends");
    }
    assert!(steps > 1, "10 keys a step take several steps");
    let pair_lock = seen.remove("tq:lock:nightly").expect("the pair lock is listed");
    assert!(pair_lock.starts_with(&format!("held by me token {} until ", pl[1])), "{pair_lock}");
    assert!(pair_lock.ends_with('Z'), "{pair_lock}");
    assert_eq!(seen, want, "exactly the node-resque lock keys with their values");
    // Without arguments: one step from cursor 0.
    let first = r(&mut c, &["TQ.LOCKS", &n]);
    assert_eq!(first.as_array().map(Vec::len), Some(2));
    assert!(c.err(&["TQ.LOCKS", &n, "0"]).contains("wrong number of arguments"));
    assert!(c.err(&["TQ.LOCKS", &n, "0", "0"]).contains("count"));
}

#[test]
fn details_sums_up_the_namespace() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("details");
    assert_eq!(
        r(&mut c, &["TQ.DETAILS", &n]),
        json!([
            "queues",
            [],
            "workers",
            [],
            "stats",
            ["processed", "0", "failed", "0"],
            "leader",
            null,
            "delayed_buckets",
            0,
            "delayed_jobs",
            0,
            "oldest_due_lateness_ms",
            null,
            "in_flight",
            0,
            "failed",
            0
        ])
    );
    for (q, class) in [("b", "X"), ("a", "Y"), ("a", "Z"), ("a", "F"), ("b", "K")] {
        c.ok(&["TQ.ENQUEUE", &n, q, class]);
    }
    pop(&mut c, &n, "w:1", &["b"]);
    pop(&mut c, &n, "w:2", &["a"]);
    c.fail(&n, "w:2", &["E", "e"]);
    c.ok(&["TQ.LEADER", &n, "sched:1", "600000"]);
    c.ok(&["TQ.ENQUEUEAT", &n, &BASE_MS.to_string(), "d", "D", "[1]"]);
    c.ok(&["TQ.ENQUEUEAT", &n, &BASE_MS.to_string(), "d", "D", "[2]"]);
    let past = c.server_ms() - 5_000;
    let bucket_ms = c.int(&["TQ.ENQUEUEAT", &n, &past.to_string(), "d", "D", "[3]"]) as u64 * 1000;
    let workers = r(&mut c, &["TQ.WORKERS", &n]);
    let stats = r(&mut c, &["TQ.STATS", &n]);
    let d = r(&mut c, &["TQ.DETAILS", &n]);
    let now = c.server_ms();
    let lateness = d[13].as_u64().expect("oldest_due_lateness_ms");
    assert!(lateness >= 4_500 && lateness <= now - bucket_ms, "lateness {lateness}");
    assert_eq!(
        d,
        json!([
            "queues",
            [["a", 2], ["b", 1]],
            "workers",
            workers,
            "stats",
            stats,
            "leader",
            "sched:1",
            "delayed_buckets",
            2,
            "delayed_jobs",
            3,
            "oldest_due_lateness_ms",
            lateness,
            "in_flight",
            1,
            "failed",
            1
        ])
    );
    assert_eq!(workers.as_array().map(Vec::len), Some(2));
    assert_eq!(workers[0][0], "w:1");
    assert!(workers[0][2].is_string(), "w:1 works on b's job");
    // Only the first 100 workers are shown.
    for i in 0..120 {
        c.ok(&["SADD", &format!("{n}:workers"), &format!("host:{i:03}:a")]);
    }
    let d = r(&mut c, &["TQ.DETAILS", &n]);
    assert_eq!(d[3].as_array().map(Vec::len), Some(100));
    assert_eq!(d[3], r(&mut c, &["TQ.WORKERS", &n, "0", "100"]));
}

// ---------------------------------------------------------------------------
// Replication

#[test]
fn writing_commands_replicate_to_a_replica_without_the_module() {
    // No pings to the replica during the test: the no-op check compares
    // replication offsets.
    let primary = Server::start_with(Opts::default().with_args(&[
        "--repl-diskless-sync-delay",
        "0",
        "--repl-ping-replica-period",
        "3600",
    ]));
    let replica = common::start_replica(primary.port, Opts { module: false, ..Opts::default() });
    let mut p = primary.conn();
    let mut rc = replica.conn();
    assert!(!rc.has_tq(), "the replica has no module");
    let n = ns("repl");

    // Data: queues, delayed jobs, failures, workers.
    for (q, class, args) in
        [("q", "A", "[1]"), ("q", "A", "[1]"), ("q", "B", "[]"), ("q", "A", "[2]"), ("p", "C", "[]"), ("x", "X", "[]")]
    {
        p.ok(&["TQ.ENQUEUE", &n, q, class, args]);
    }
    for (t, args) in [(BASE_MS, "[1]"), (BASE_MS + 1000, "[1]"), (BASE_MS + 1000, "[2]")] {
        p.ok(&["TQ.ENQUEUEAT", &n, &t.to_string(), "d", "D", args]);
    }
    for i in 0..6 {
        let class = if i % 2 == 0 { "F" } else { "G" };
        fail_one(&mut p, &n, "f", class, &format!("[{i}]"), "E");
    }
    let ids: Vec<String> = p.lrange(&format!("{n}:failed")).iter().map(|rec| fnv1a(rec.as_bytes())).collect();

    // Every writing inspection command, with effects.
    assert_eq!(p.int(&["TQ.DEL", &n, "q", "A", "[1]", "COUNT", "1"]), 1);
    assert_eq!(p.int(&["TQ.DEL", &n, "q", "A", "[1]"]), 1);
    assert_eq!(p.int(&["TQ.DELBYCLASS", &n, "q", "B"]), 1);
    assert_eq!(p.int(&["TQ.DELQUEUE", &n, "p"]), 1);
    assert_eq!(r(&mut p, &["TQ.DELDELAYED", &n, "d", "D", "[1]"]), json!([BASE_MS, BASE_MS + 1000]));
    assert_eq!(pair(&mut p, &["TQ.FAILRETRY", &n, "ID", &ids[0]]), (1, None));
    assert_eq!(pair(&mut p, &["TQ.FAILREMOVE", &n, "ID", &ids[1]]), (1, None));
    assert_eq!(pair(&mut p, &["TQ.FAILRETRY", &n, "CLASS", "F"]), (2, None));
    assert_eq!(pair(&mut p, &["TQ.FAILREMOVE", &n, "FROM", "1", "LIMIT", "1"]), (1, None));
    run_worker_commands(&mut p, &n);
    // The workers' job metrics in their records (the timer writes them
    // within `FLUSH_MS`), so that the timer writes nothing while the
    // replication offset and the two sides are compared.
    p.wait_tallies_written(&n);
    // No-ops replicate nothing.
    let offset = common::repl_offset_of(&mut p);
    assert_eq!(p.int(&["TQ.DEL", &n, "q", "Nope"]), 0);
    assert_eq!(r(&mut p, &["TQ.DELDELAYED", &n, "d", "Nope"]), json!([]));
    assert_eq!(pair(&mut p, &["TQ.FAILREMOVE", &n, "CLASS", "Nope"]), (0, None));
    assert_eq!(pair(&mut p, &["TQ.FAILRETRY", &n, "CLASS", "Nope"]), (0, None));
    assert_eq!(p.int(&["TQ.DELBYCLASS", &n, "q", "Nope"]), 0);
    assert_eq!(r(&mut p, &["TQ.CLEANWORKERS", &n, "3600000000"]), json!([]));
    assert_eq!(common::repl_offset_of(&mut p), offset, "no-ops reached the replication stream");

    common::wait_replicas_synced(&mut p, 1);
    let log = replica.log();
    assert!(!log.contains("sending an error to its master"), "the replica failed a replicated command:\n{log}");
    let stats = rc.string(&["INFO", "commandstats"]).unwrap_or_default();
    assert!(!stats.to_ascii_lowercase().contains("cmdstat_tq."), "TQ commands reached the replica:\n{stats}");
    let on_primary = state(&mut p, &n);
    let on_replica = state(&mut rc, &n);
    assert_eq!(on_replica, on_primary, "the namespace differs on the replica");
    assert_eq!(rc.digest(), p.digest(), "DEBUG DIGEST differs between primary and replica");
    // The writes did happen (so the comparison compared something).
    assert_eq!(on_primary["stat:failed"].1, ["9"], "6 failures + 3 force-cleaned jobs");
    assert!(!on_primary.contains_key("queue:p"));
    assert_eq!(on_primary["workers"].1, ["w:5:x", "w:f:f"], "w:1..w:3 cleaned, w:4 untracked");
}

/// The worker part of the replication test: TQ.FORCECLEAN (with a JobLock
/// and a heartbeat), TQ.CLEANWORKERS of two workers (two INCRs of
/// stat:failed in one command), TQ.UNTRACK.
fn run_worker_commands(p: &mut Conn, n: &str) {
    for i in 0..4 {
        p.ok(&["TQ.ENQUEUE", n, "w", "W", &format!("[{i}]")]);
    }
    popped_job(p.ok(&["TQ.POP", n, "w:1", "w", "JOBLOCK", "60000"])).expect("a job");
    p.beat(n, "w:1", "30000");
    assert!(p.string(&["TQ.FORCECLEAN", n, "w:1"]).is_some());
    pop(p, n, "w:2", &["w"]);
    pop(p, n, "w:3", &["w"]);
    std::thread::sleep(Duration::from_millis(50));
    let cleaned = r(p, &["TQ.CLEANWORKERS", n, "10"]);
    assert_eq!(cleaned.as_array().map(Vec::len), Some(2), "{cleaned}");
    pop(p, n, "w:4", &["w"]);
    p.ack(n, "w:4");
    p.beat(n, "w:4", "30000");
    assert_eq!(p.ok(&["TQ.UNTRACK", n, "w:4", "w"]), Value::Okay);
    pop(p, n, "w:5", &["x"]);
    p.ack(n, "w:5");
}

// ---------------------------------------------------------------------------
// Atomicity: retry-all racing workers that pop, fail and ack

/// The `id` of a job whose args are `[{"id": n}]`.
fn id_of_payload(payload: &J) -> u64 {
    payload["args"][0]["id"].as_u64().unwrap_or_else(|| panic!("no id in {payload}"))
}

/// Reads, in one MULTI/EXEC, where every job is: waiting, failed, held by a
/// worker, or acked (the ledger the workers write in the same transaction as
/// TQ.ACK). Each of the `total` ids must be in exactly one place. Returns
/// (waiting, failed, held, acked).
fn account(c: &mut Conn, n: &str, workers: &[String], total: u64) -> (usize, usize, usize, usize) {
    c.ok(&["MULTI"]);
    c.ok(&["LRANGE", &format!("{n}:queue:work"), "0", "-1"]);
    c.ok(&["LRANGE", &format!("{n}:failed"), "0", "-1"]);
    let mut mget = vec!["MGET".to_string()];
    mget.extend(workers.iter().map(|w| format!("{n}:worker:{w}:work")));
    c.ok(&mget);
    c.ok(&["LRANGE", &format!("{n}:test:acked"), "0", "-1"]);
    let parts = match c.ok(&["EXEC"]) {
        Value::Array(parts) => parts,
        other => panic!("EXEC: {other:?}"),
    };
    let texts = |v: &Value| -> Vec<Option<String>> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    Value::Nil => None,
                    Value::BulkString(b) => Some(String::from_utf8(b.clone()).expect("utf8")),
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    };
    let mut seen: HashMap<u64, Vec<&'static str>> = HashMap::new();
    let waiting: Vec<String> = texts(&parts[0]).into_iter().flatten().collect();
    let failed: Vec<String> = texts(&parts[1]).into_iter().flatten().collect();
    let held: Vec<String> = texts(&parts[2]).into_iter().flatten().collect();
    let acked: Vec<String> = texts(&parts[3]).into_iter().flatten().collect();
    for p in &waiting {
        seen.entry(id_of_payload(&parse(p))).or_default().push("waiting");
    }
    for rec in &failed {
        seen.entry(id_of_payload(&parse(rec)["payload"])).or_default().push("failed");
    }
    for rec in &held {
        seen.entry(id_of_payload(&parse(rec)["payload"])).or_default().push("held");
    }
    for a in &acked {
        seen.entry(a.parse().expect("acked id")).or_default().push("acked");
    }
    for id in 0..total {
        match seen.get(&id).map(Vec::as_slice) {
            Some([_]) => {}
            other => panic!("job {id} is in {other:?}, not in exactly one place"),
        }
    }
    assert_eq!(seen.len() as u64, total, "ids that were never enqueued appeared");
    (waiting.len(), failed.len(), held.len(), acked.len())
}

/// 4 worker threads pop jobs and fail or ack them while the main thread
/// retries failures in passes that follow TQ.FAILRETRY's cursor (a few
/// records a call, so a pass spans many calls while failures keep arriving).
/// Every job `id` fails `id % 3` times with `Boom` (retried) before it
/// succeeds, except ids ending in 9, which fail once with `Fatal` and are
/// never retried: they sit between the others in `failed`, so the cursor
/// has to step over them. At every accounting (MULTI/EXEC) and at the end,
/// each id is in exactly one place.
#[test]
fn retry_all_while_workers_fail_jobs_loses_and_duplicates_nothing() {
    const TOTAL: u64 = 1000;
    const WORKERS: usize = 4;
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("retry-race");
    let mut p = redis::pipe();
    for id in 0..TOTAL {
        p.cmd("TQ.ENQUEUE").arg(&n).arg("work").arg("Job").arg(format!(r#"[{{"id":{id}}}]"#));
    }
    let _: Vec<Value> = p.query(&mut c.0).expect("enqueue");
    let fatal = |id: u64| id % 10 == 9;
    let fatal_count = (0..TOTAL).filter(|&id| fatal(id)).count() as u64;
    let expected_boom: u64 = (0..TOTAL).filter(|&id| !fatal(id)).map(|id| id % 3).sum();
    let attempts: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let names: Vec<String> = (0..WORKERS).map(|i| format!("racer:{i}")).collect();
    let threads: Vec<_> = names
        .iter()
        .map(|w| {
            let (w, n, port) = (w.clone(), n.clone(), s.port);
            let (attempts, stop) = (attempts.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = common::connect(port);
                let (mut acks, mut booms, mut fatals) = (0u64, 0u64, 0u64);
                loop {
                    let Some((_, payload)) = popped_job(c.ok(&["TQ.POP", &n, &w, "work"])) else {
                        if stop.load(Ordering::SeqCst) {
                            return (acks, booms, fatals);
                        }
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    };
                    let id = id_of_payload(&parse(&payload));
                    let boom = {
                        let mut a = attempts.lock().expect("attempts");
                        let tries = a.entry(id).or_insert(0);
                        let boom = !fatal(id) && *tries < id % 3;
                        if boom {
                            *tries += 1;
                        }
                        boom
                    };
                    if fatal(id) {
                        assert_eq!(c.fail(&n, &w, &["Fatal", &format!("{id} cannot run")]), Value::Okay);
                        fatals += 1;
                    } else if boom {
                        assert_eq!(c.fail(&n, &w, &["Boom", &format!("attempt for {id}")]), Value::Okay);
                        booms += 1;
                    } else {
                        // The ledger is written in the same transaction as the ACK.
                        let d = c.delivery(&n, &w);
                        c.ok(&["MULTI"]);
                        c.ok(&["TQ.ACK", &n, &w, &d]);
                        c.ok(&["RPUSH", &format!("{n}:test:acked"), &id.to_string()]);
                        match c.ok(&["EXEC"]) {
                            Value::Array(r) if r.len() == 2 => {
                                assert!(
                                    matches!(&r[0], Value::Okay) || r[0] == Value::SimpleString("OK".into()),
                                    "{r:?}"
                                );
                            }
                            other => panic!("EXEC: {other:?}"),
                        }
                        acks += 1;
                    }
                }
            })
        })
        .collect();

    // Passes of "retry every Boom failure", each following the cursor (5
    // records a call), with a full accounting every few passes.
    let deadline = Instant::now() + Duration::from_secs(120);
    let ledger = format!("{n}:test:acked");
    let (mut retried, mut calls, mut passes, mut checks, mut stepped) = (0i64, 0u64, 0u64, 0u64, 0u64);
    loop {
        let mut from = 0i64;
        loop {
            let (done, next) =
                pair(&mut c, &["TQ.FAILRETRY", &n, "EXCEPTION", "Boom", "FROM", &from.to_string(), "LIMIT", "5"]);
            assert!((0..=5).contains(&done));
            retried += done;
            calls += 1;
            let Some(next) = next else { break };
            stepped += 1;
            from = next;
        }
        passes += 1;
        if passes % 5 == 0 {
            account(&mut c, &n, &names, TOTAL);
            checks += 1;
        }
        if c.int(&["LLEN", &ledger]) as u64 == TOTAL - fatal_count {
            break;
        }
        assert!(Instant::now() < deadline, "not every job acked after 120 s");
    }
    stop.store(true, Ordering::SeqCst);
    let (mut acks, mut booms, mut fatals) = (0, 0, 0);
    for t in threads {
        let (a, b, f) = t.join().expect("worker thread");
        acks += a;
        booms += b;
        fatals += f;
    }
    let (waiting, failed, held, acked) = account(&mut c, &n, &names, TOTAL);
    assert_eq!((waiting, failed, held, acked as u64), (0, fatal_count as usize, 0, TOTAL - fatal_count));
    assert_eq!((acks, booms, fatals), (TOTAL - fatal_count, expected_boom, fatal_count));
    assert_eq!(retried as u64, expected_boom, "every Boom failure retried exactly once");
    assert!(stepped > 0, "the cursor stepped over the Fatal records at least once");
    // What is left in failed is exactly the Fatal records, one per such id.
    let left: BTreeSet<u64> = c
        .lrange(&format!("{n}:failed"))
        .iter()
        .map(|rec| {
            let rec = parse(rec);
            assert_eq!(rec["exception"], "Fatal");
            id_of_payload(&rec["payload"])
        })
        .collect();
    assert_eq!(left, (0..TOTAL).filter(|&id| fatal(id)).collect());
    let stats = r(&mut c, &["TQ.STATS", &n]);
    assert_eq!(stats[1], json!((TOTAL - fatal_count).to_string()));
    assert_eq!(stats[3], json!((expected_boom + fatal_count).to_string()));
    let mut ledger: Vec<u64> = c.lrange(&ledger).iter().map(|s| s.parse().expect("id")).collect();
    ledger.sort_unstable();
    assert_eq!(ledger, (0..TOTAL).filter(|&id| !fatal(id)).collect::<Vec<_>>());
    println!(
        "retry race: {passes} passes, {calls} FAILRETRY calls ({stepped} continued from a cursor), {checks} accountings, {retried} retried"
    );
}
