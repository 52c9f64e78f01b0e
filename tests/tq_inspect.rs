//! The operator subcommands of the `tq` binary (`tq stats`, `tq queues`,
//! `tq queued`, `tq delayed`, `tq workers`, `tq failed`, `tq retry`,
//! `tq remove`, `tq clean-workers`, `tq details`, `tq locks`) against a real
//! server with the module, on data written by TQ commands: their tables and
//! `--json` documents, retry/remove of 25,000 failed records by filter and
//! `--all`, exit statuses, and progress reports staying off stdout.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use serde_json::{json, Value as J};

use common::{job, ns, popped_job, Conn, Opts, Server};

// ---------------------------------------------------------------------------
// Helpers

use common::{run_tq as tq, TqRun as Run};

/// A run that must exit 0; its stdout.
fn table(port: u16, n: &str, args: &[&str]) -> String {
    let r = tq(port, n, args);
    assert_eq!(r.code, 0, "tq {args:?}: status {}\nstdout:\n{}\nstderr:\n{}", r.code, r.out, r.err);
    r.out
}

/// stdout as exactly one JSON document.
fn doc(r: &Run, args: &[&str]) -> J {
    assert!(r.out.ends_with('\n') && r.out.trim_end().lines().count() == 1, "tq {args:?}: one line:\n{}", r.out);
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("tq {args:?}: stdout is not JSON ({e}):\n{}", r.out))
}

/// `tq <args...> --json`, which must exit 0 and print nothing on stderr.
fn json_of(port: u16, n: &str, args: &[&str]) -> J {
    let mut all = args.to_vec();
    all.push("--json");
    let r = tq(port, n, &all);
    assert_eq!(r.code, 0, "tq {all:?}: status {}\nstdout:\n{}\nstderr:\n{}", r.code, r.out, r.err);
    assert_eq!(r.err, "", "tq {all:?}: nothing on stderr");
    doc(&r, &all)
}

/// A table line's cells (separated by two spaces or more).
fn cells(line: &str) -> Vec<String> {
    line.split("  ").map(str::trim).filter(|c| !c.is_empty()).map(str::to_string).collect()
}

/// The cells of the table's line whose first cell is `first`.
fn row(table: &str, first: &str) -> Vec<String> {
    table
        .lines()
        .map(cells)
        .find(|c| c.first().map(String::as_str) == Some(first))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{table}"))
}

/// The cells of the table's line whose first cell starts with `prefix`.
fn row_starting(table: &str, prefix: &str) -> Vec<String> {
    table
        .lines()
        .map(cells)
        .find(|c| c.first().is_some_and(|f| f.starts_with(prefix)))
        .unwrap_or_else(|| panic!("no row starting {prefix:?} in:\n{table}"))
}

fn pop(c: &mut Conn, n: &str, worker: &str, queue: &str) -> String {
    popped_job(c.ok(&["TQ.POP", n, worker, queue])).unwrap_or_else(|| panic!("{worker} found a job in {queue}")).1
}

/// A failed-record id as tq documents it: FNV-1a 64 of the record's bytes.
fn fnv1a(record: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in record {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// 2030-01-01T00:00:00Z: far enough ahead that nothing becomes due.
const Y2030: u64 = 1_893_456_000_000;

// ---------------------------------------------------------------------------
// Read-only subcommands

#[test]
fn stats_queues_and_queued() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-stats");
    let p = s.port;
    // Empty namespace: empty documents, friendly tables.
    assert_eq!(
        json_of(p, &n, &["stats"]),
        json!({"processed": 0, "failed": 0, "workers": [], "counters": {"global": {}, "local": {}}})
    );
    assert_eq!(json_of(p, &n, &["queues"]), json!({"queues": []}));
    assert_eq!(table(p, &n, &["queues"]), "no queues\n");
    assert_eq!(table(p, &n, &["queued", "math"]), "queue 'math' is empty\n");

    for i in 0..5 {
        c.ok(&["TQ.ENQUEUE", &n, "math", "add", &format!("[{i},2]")]);
    }
    c.ok(&["TQ.ENQUEUE", &n, "mail", "send", r#"{"to":"a@b"}"#]);
    c.ok(&["TQ.ENQUEUE", &n, "zeta", "z"]);
    // host:1 processes two and fails one; host:2 processes one.
    for _ in 0..2 {
        pop(&mut c, &n, "host:1", "math");
        c.ack(&n, "host:1");
    }
    pop(&mut c, &n, "host:1", "math");
    c.fail(&n, "host:1", &["TypeError", "boom"]);
    pop(&mut c, &n, "host:2", "zeta");
    c.ack(&n, "host:2");

    // The Node package's counters (Stats.increment writes both hashes).
    c.ok(&["HINCRBY", &format!("{n}:stats:global"), "emails", "3"]);
    c.ok(&["HINCRBY", &format!("{n}:stats:local:web-1"), "emails", "2"]);
    c.ok(&["HINCRBY", &format!("{n}:stats:local:web-2"), "emails", "1"]);
    assert_eq!(
        json_of(p, &n, &["stats"]),
        json!({"processed": 3, "failed": 1, "workers": [
            {"name": "host:1", "processed": 2, "failed": 1},
            {"name": "host:2", "processed": 1, "failed": 0},
        ], "counters": {"global": {"emails": 3}, "local": {"web-1": {"emails": 2}, "web-2": {"emails": 1}}}})
    );
    let t = table(p, &n, &["stats"]);
    assert_eq!(row(&t, "processed"), ["processed", "3"]);
    assert_eq!(row(&t, "failed"), ["failed", "1"]);
    assert_eq!(row(&t, "(global)"), ["(global)", "emails", "3"]);
    assert_eq!(row(&t, "web-1"), ["web-1", "emails", "2"]);
    assert_eq!(row(&t, "WORKER"), ["WORKER", "PROCESSED", "FAILED"]);
    assert_eq!(row(&t, "host:1"), ["host:1", "2", "1"]);
    assert_eq!(row(&t, "host:2"), ["host:2", "1", "0"]);

    // Queues, sorted, with lengths (zeta is registered and empty).
    assert_eq!(
        json_of(p, &n, &["queues"]),
        json!({"queues": [
            {"name": "mail", "length": 1},
            {"name": "math", "length": 2},
            {"name": "zeta", "length": 0},
        ]})
    );
    let t = table(p, &n, &["queues"]);
    let lines: Vec<&str> = t.lines().collect();
    assert_eq!(lines, ["QUEUE  LENGTH", "mail        1", "math        2", "zeta        0", "3 queues, 3 jobs waiting"]);

    // Queued: positions, class, args as JSON values, the payload as stored.
    assert_eq!(
        json_of(p, &n, &["queued", "math"]),
        json!({"queue": "math", "length": 2, "offset": 0, "jobs": [
            {"position": 0, "class": "add", "queue": "math", "args": [3, 2], "payload": job("math", "add", "[3,2]")},
            {"position": 1, "class": "add", "queue": "math", "args": [4, 2], "payload": job("math", "add", "[4,2]")},
        ]})
    );
    let d = json_of(p, &n, &["queued", "math", "--offset", "1", "--count", "5"]);
    assert_eq!((d["offset"].clone(), d["jobs"].as_array().map(Vec::len)), (json!(1), Some(1)));
    assert_eq!(d["jobs"][0]["args"], json!([4, 2]));
    assert_eq!(json_of(p, &n, &["queued", "mail"])["jobs"][0]["args"], json!([{"to": "a@b"}]));
    let t = table(p, &n, &["queued", "math"]);
    assert_eq!(
        t.lines().collect::<Vec<_>>(),
        ["POS  CLASS  ARGS", "  0  add    [3,2]", "  1  add    [4,2]", "jobs 1-2 of 2 in queue 'math'"]
    );
    assert_eq!(
        table(p, &n, &["queued", "math", "--offset", "7"]),
        "no job at position 7 and after (queue 'math' has 2)\n"
    );
    // A queue holding something that is not a job still lists.
    c.ok(&["RPUSH", &format!("{n}:queue:odd"), "not json"]);
    let d = json_of(p, &n, &["queued", "odd"]);
    assert_eq!(d["jobs"][0], json!({"position": 0, "class": null, "queue": null, "args": null, "payload": "not json"}));
}

#[test]
fn delayed_times_jobs_and_one_job() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-delayed");
    let p = s.port;
    assert_eq!(json_of(p, &n, &["delayed"]), json!({"timestamps": [], "total": 0}));
    assert_eq!(table(p, &n, &["delayed"]), "no delayed jobs\n");
    let t0 = Y2030;
    let t1 = Y2030 + 300_000;
    for (at, class, args) in [(t0, "A", "[1]"), (t0, "B", "[]"), (t0 + 400, "C", "[2]"), (t1, "A", "[1]")] {
        c.ok(&["TQ.ENQUEUEAT", &n, &at.to_string(), "q", class, args]);
    }
    // Times (unix ms, bucket starts) with counts read from each bucket.
    assert_eq!(
        json_of(p, &n, &["delayed"]),
        json!({"timestamps": [{"at": t0, "count": 3}, {"at": t1, "count": 1}], "total": 4})
    );
    let t = table(p, &n, &["delayed"]);
    let now = c.server_ms();
    assert!(t.starts_with("TIME "), "{t}");
    let first = row_starting(&t, "2030-01-01T00:00:00Z (in ");
    assert_eq!(first.last().map(String::as_str), Some("3"), "{t}");
    assert!(first[0].ends_with(')'), "{t}");
    assert_eq!(row_starting(&t, "2030-01-01T00:05:00Z (in ").last().map(String::as_str), Some("1"), "{t}");
    assert!(t.ends_with("4 delayed jobs at 2 times\n"), "{t}");
    assert!(now < t0);

    // --at: one bucket's jobs (any time inside the bucket, RFC 3339 or ms).
    let at = json_of(p, &n, &["delayed", "--at", "2030-01-01T00:00:00.300Z"]);
    assert_eq!(at["at"], json!(t0 + 300));
    assert_eq!(at["bucket"], json!(t0));
    let classes: Vec<&str> = at["jobs"].as_array().expect("jobs").iter().filter_map(|j| j["class"].as_str()).collect();
    assert_eq!(classes, ["A", "B", "C"]);
    assert_eq!(at["jobs"][2], json!({"class": "C", "queue": "q", "args": [2], "payload": job("q", "C", "[2]")}));
    let t = table(p, &n, &["delayed", "--at", &t1.to_string()]);
    assert_eq!(row(&t, "q"), ["q", "A", "[1]"]);
    assert!(t.contains("\n1 delayed job at 2030-01-01T00:05:00Z (in "), "{t}");
    assert_eq!(json_of(p, &n, &["delayed", "--at", "1000"])["jobs"], json!([]));

    // --jobs: every bucket with its jobs.
    let all = json_of(p, &n, &["delayed", "--jobs"]);
    assert_eq!(all["timestamps"].as_array().map(Vec::len), Some(2));
    assert_eq!(all["timestamps"][0]["at"], json!(t0));
    assert_eq!(all["timestamps"][0]["count"], json!(3));
    assert_eq!(
        all["timestamps"][1]["jobs"],
        json!([{"class": "A", "queue": "q", "args": [1], "payload": job("q", "A", "[1]")}])
    );
    let t = table(p, &n, &["delayed", "--jobs"]);
    assert_eq!(t.lines().filter(|l| l.starts_with("2030-01-01T00:00:00Z (in ")).count(), 3, "{t}");
    assert!(t.lines().any(|l| l.starts_with("2030-01-01T00:05:00Z (in ") && l.ends_with("q      A      [1]")), "{t}");

    // --job: when one job is filed.
    assert_eq!(
        json_of(p, &n, &["delayed", "--job", "q", "A", "[1]"]),
        json!({"queue": "q", "class": "A", "args": [1], "times": [t0, t1]})
    );
    assert_eq!(json_of(p, &n, &["delayed", "--job", "q", "B"])["times"], json!([t0]));
    assert_eq!(json_of(p, &n, &["delayed", "--job", "q", "Z", "[]"])["times"], json!([]));
    let t = table(p, &n, &["delayed", "--job", "q", "A", "[1]"]);
    assert!(t.starts_with("TIME\n2030-01-01T00:00:00Z (in "), "{t}");
    assert!(t.ends_with("A [1] on queue 'q' is filed at 2 times\n"), "{t}");
}

#[test]
fn workers_and_failed() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-workers");
    let p = s.port;
    assert_eq!(json_of(p, &n, &["workers"]), json!({"workers": []}));
    assert_eq!(json_of(p, &n, &["failed"]), json!({"total": 0, "offset": 0, "failed": []}));
    assert_eq!(table(p, &n, &["failed"]), "no failed jobs\n");
    for i in 0..4 {
        c.ok(&["TQ.ENQUEUE", &n, "math", "add", &format!("[{i}]")]);
    }
    pop(&mut c, &n, "box:1", "math");
    c.fail(&n, "box:1", &["RangeError", "too big\nsecond line"]);
    pop(&mut c, &n, "box:2", "math");
    c.fail(&n, "box:2", &["TypeError", "nope"]);
    let before = c.server_ms();
    pop(&mut c, &n, "box:3", "math");
    let after = c.server_ms();

    // Workers: sorted, with the job in flight and its start (unix ms).
    let w = json_of(p, &n, &["workers"]);
    let list = w["workers"].as_array().expect("workers");
    let names: Vec<&str> = list.iter().filter_map(|w| w["name"].as_str()).collect();
    assert_eq!(names, ["box:1", "box:2", "box:3"]);
    assert_eq!(list[0], json!({"name": "box:1", "queues": ["math"], "job": null}));
    let job3 = &list[2]["job"];
    assert_eq!(
        (job3["class"].clone(), job3["queue"].clone(), job3["args"].clone()),
        (json!("add"), json!("math"), json!([2]))
    );
    assert_eq!(job3["payload"], json!(job("math", "add", "[2]")));
    let run_at = job3["run_at"].as_u64().expect("run_at in ms");
    assert!(before <= run_at && run_at <= after, "{before} <= {run_at} <= {after}");
    let t = table(p, &n, &["workers"]);
    assert_eq!(row(&t, "WORKER"), ["WORKER", "QUEUES", "JOB", "QUEUE", "STARTED"]);
    assert_eq!(row(&t, "box:1"), ["box:1", "math", "-", "-", "-"]);
    let r3 = row(&t, "box:3");
    assert_eq!(r3[..3], ["box:3", "math", "add [2]"]);
    assert!(r3[4].ends_with("Z (now)") || r3[4].ends_with(" ago)"), "{t}");
    assert!(t.ends_with("3 workers, 1 working\n"), "{t}");

    // Failed: oldest first, ids as the module's, times in ms.
    let records = c.lrange(&format!("{n}:failed"));
    let f = json_of(p, &n, &["failed"]);
    assert_eq!((f["total"].clone(), f["offset"].clone()), (json!(2), json!(0)));
    let first = &f["failed"][0];
    assert_eq!(first["id"], json!(fnv1a(records[0].as_bytes())));
    assert_eq!(
        (first["worker"].clone(), first["queue"].clone(), first["class"].clone(), first["args"].clone()),
        (json!("box:1"), json!("math"), json!("add"), json!([0]))
    );
    assert_eq!(
        (first["exception"].clone(), first["error"].clone()),
        (json!("RangeError"), json!("too big\nsecond line"))
    );
    assert_eq!(first["backtrace"], json!([]));
    assert_eq!(first["payload"], json!(job("math", "add", "[0]")));
    let failed_at = first["failed_at"].as_u64().expect("failed_at in ms");
    assert!(failed_at <= before && before - failed_at < 5_000, "{failed_at} vs {before}");
    assert_eq!(failed_at % 1000, 0, "Date.toString() has whole seconds");
    assert_eq!(f["failed"][1]["exception"], json!("TypeError"));
    let page = json_of(p, &n, &["failed", "--offset", "1", "--count", "1"]);
    assert_eq!(page["failed"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["failed"][0]["id"], json!(fnv1a(records[1].as_bytes())));
    let t = table(p, &n, &["failed"]);
    assert_eq!(row(&t, "ID"), ["ID", "FAILED AT", "QUEUE", "CLASS", "EXCEPTION", "ERROR"]);
    let r = row(&t, &fnv1a(records[0].as_bytes()));
    assert!(r[1].starts_with("20") && (r[1].ends_with("(now)") || r[1].ends_with(" ago)")), "{t}");
    assert_eq!(r[2..], ["math", "add", "RangeError", "too big second line"], "the error on one line");
    assert!(t.ends_with("failed jobs 1-2 of 2\n"), "{t}");
}

#[test]
fn details_and_locks() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-details");
    let p = s.port;
    assert_eq!(json_of(p, &n, &["locks"]), json!({"locks": []}));
    assert_eq!(table(p, &n, &["locks"]), "no locks\n");
    c.ok(&["TQ.ENQUEUE", &n, "q", "A", "[1]", "UNIQUE", "60000"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "B", "[2]"]);
    c.ok(&["TQ.ENQUEUE", &n, "r", "C", "[3]"]);
    c.ok(&["TQ.ENQUEUEAT", &n, &Y2030.to_string(), "q", "D", "[]"]);
    pop(&mut c, &n, "h:1", "r");
    c.ok(&["TQ.LEADER", &n, "sched:1", "60000"]);
    c.ok(&["TQ.LOCK", &n, "nightly", "me", "60000"]);
    let now = c.server_ms();

    let d = json_of(p, &n, &["details"]);
    assert_eq!(d["queues"], json!([{"name": "q", "length": 2}, {"name": "r", "length": 0}]));
    assert_eq!(d["workers"][0]["name"], json!("h:1"));
    assert_eq!(d["workers"][0]["job"]["class"], json!("C"));
    assert_eq!(d["stats"], json!({"processed": 0, "failed": 0, "workers": []}));
    assert_eq!(d["leader"], json!("sched:1"));
    assert_eq!((d["delayed_buckets"].clone(), d["delayed_jobs"].clone()), (json!(1), json!(1)));
    assert_eq!(d["oldest_due_lateness_ms"], J::Null);
    assert_eq!((d["in_flight"].clone(), d["failed"].clone()), (json!(1), json!(0)));
    let t = table(p, &n, &["details"]);
    assert_eq!(row(&t, "queues"), ["queues", "2 (2 jobs waiting)"]);
    assert_eq!(row(&t, "workers"), ["workers", "1 (1 working)"]);
    assert_eq!(row(&t, "in flight"), ["in flight", "1"]);
    assert_eq!(row(&t, "delayed"), ["delayed", "1 job at 1 time; none due"]);
    assert_eq!(row(&t, "leader"), ["leader", "sched:1"]);
    assert_eq!(row(&t, "q"), ["q", "2"]);
    assert_eq!(row(&t, "h:1")[..3], ["h:1", "r", "C [3]"]);

    // Locks: node-resque's QueueLock (unix-second deadline) and tq's pair lock.
    let l = json_of(p, &n, &["locks"]);
    let locks = l["locks"].as_array().expect("locks");
    let names: Vec<&str> = locks.iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["lock:A:q:[1]", "tq:lock:nightly"]);
    assert_eq!(locks[0]["kind"], json!("queue"));
    let deadline = locks[0]["deadline"].as_u64().expect("deadline");
    assert_eq!(deadline.to_string(), format!("{}000", locks[0]["value"].as_str().expect("value")));
    assert!(deadline >= now + 59_000 && deadline <= now + 63_000, "{deadline} vs {now}");
    assert_eq!(locks[1]["kind"], json!("pair"));
    assert!(locks[1]["value"].as_str().expect("value").starts_with("held by me token 1 until "));
    let pair_deadline = locks[1]["deadline"].as_u64().expect("pair deadline");
    assert!(pair_deadline >= now + 59_000 && pair_deadline <= now + 61_000, "{pair_deadline} vs {now}");
    let t = table(p, &n, &["locks"]);
    let q = row(&t, "lock:A:q:[1]");
    assert_eq!(q[1], "queue");
    assert!(q[2].contains("(in 1m") || q[2].contains("(in 59s"), "{t}");
    assert_eq!(row(&t, "tq:lock:nightly")[1], "pair");
    assert!(t.ends_with("2 locks\n"), "{t}");
}

/// Listings longer than the module's pages (10,000 items; TQ.ALLDELAYED 1,000
/// buckets of 1,000 jobs) come whole, also when empty buckets make the
/// module's pages come short.
#[test]
fn listings_page_past_the_module_limits() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-pages");
    let p = s.port;
    const TIMES: u64 = 10_050;
    const BIG: u64 = 10_050;
    const WORKERS: usize = 10_020;
    let mut pipe = redis::pipe();
    // Buckets left empty in the schedule, as node-resque's delDelayed leaves
    // them, before the others: the module skips them, so pages come short.
    for i in 1..=1_100u64 {
        let bucket = (Y2030 / 1000 - i).to_string();
        pipe.cmd("ZADD").arg(format!("{n}:delayed_queue_schedule")).arg(&bucket).arg(&bucket).ignore();
    }
    for i in 0..TIMES {
        pipe.cmd("TQ.ENQUEUEAT").arg(&n).arg(Y2030 + i * 1000).arg("q").arg("T").arg(format!("[{i}]")).ignore();
    }
    // One more time with many jobs.
    let big_at = Y2030 + TIMES * 1000;
    for i in 0..BIG {
        pipe.cmd("TQ.ENQUEUEAT").arg(&n).arg(big_at).arg("q").arg("Big").arg(format!("[{i}]")).ignore();
    }
    for i in 0..WORKERS {
        pipe.cmd("TQ.ENQUEUE").arg(&n).arg("w").arg("J").arg(format!("[{i}]")).ignore();
        pipe.cmd("TQ.POP").arg(&n).arg(format!("h:{i:05}")).arg("w").ignore();
    }
    pipe.query::<()>(&mut c.0).expect("the pipeline");

    let d = json_of(p, &n, &["delayed"]);
    let times = d["timestamps"].as_array().expect("timestamps");
    assert_eq!(times.len() as u64, TIMES + 1);
    assert_eq!(d["total"], json!(TIMES + BIG));
    assert_eq!(times[10_000], json!({"at": Y2030 + 10_000_000, "count": 1}));
    assert_eq!(times[TIMES as usize], json!({"at": big_at, "count": BIG}));

    let at = json_of(p, &n, &["delayed", "--at", &big_at.to_string()]);
    let jobs = at["jobs"].as_array().expect("jobs");
    assert_eq!(jobs.len() as u64, BIG);
    assert_eq!(jobs[10_049]["args"], json!([10_049]));

    let all = json_of(p, &n, &["delayed", "--jobs"]);
    let buckets = all["timestamps"].as_array().expect("timestamps");
    assert_eq!(buckets.len() as u64, TIMES + 1);
    let last = &buckets[TIMES as usize];
    assert_eq!((last["count"].clone(), last["jobs"].as_array().map(Vec::len)), (json!(BIG), Some(1000)));
    let t = table(p, &n, &["delayed", "--jobs"]);
    assert!(
        t.contains(&format!(": 1000 of {BIG} jobs shown (tq delayed --at {big_at} lists them all)\n")),
        "{}",
        &t[t.len() - 300..]
    );

    let w = json_of(p, &n, &["workers"]);
    let list = w["workers"].as_array().expect("workers");
    assert_eq!(list.len(), WORKERS);
    assert_eq!(list[WORKERS - 1]["name"], json!(format!("h:{:05}", WORKERS - 1)));
    assert_eq!(list[WORKERS - 1]["job"]["args"], json!([WORKERS - 1]));
}

// ---------------------------------------------------------------------------
// clean-workers

#[test]
fn clean_workers_by_age_and_by_name() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-clean");
    let p = s.port;
    for i in 0..4 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "A", &format!("[{i}]")]);
    }
    pop(&mut c, &n, "old:1", "q");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    pop(&mut c, &n, "young:1", "q");

    // Nothing that old: success, nothing cleaned.
    assert_eq!(json_of(p, &n, &["clean-workers", "--age", "1h"]), json!({"cleaned": []}));
    assert_eq!(table(p, &n, &["clean-workers", "--age", "1h"]), "no worker has run its job for more than 1h\n");
    let d = json_of(p, &n, &["clean-workers", "--age", "1s"]);
    let cleaned = d["cleaned"].as_array().expect("cleaned");
    assert_eq!(cleaned.len(), 1, "{d}");
    assert_eq!(cleaned[0]["worker"], json!("old:1"));
    let f = &cleaned[0]["failed"];
    assert_eq!((f["class"].clone(), f["args"].clone()), (json!("A"), json!([0])));
    assert_eq!(f["exception"], json!("Worker Timeout (killed manually)"));
    let records = c.lrange(&format!("{n}:failed"));
    assert_eq!(records.len(), 1);
    assert_eq!(f["id"], json!(fnv1a(records[0].as_bytes())), "the id `tq retry --id` takes");
    assert_eq!(json_of(p, &n, &["workers"])["workers"].as_array().map(Vec::len), Some(1), "young:1 stays");

    // By name: the worker and its job; a second time nothing matches (3).
    let r = tq(p, &n, &["clean-workers", "--worker", "young:1"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert!(
        r.out.starts_with("cleaned worker 'young:1'; its job A [1] (queue 'q') went to the failed list as "),
        "{}",
        r.out
    );
    let r = tq(p, &n, &["clean-workers", "--worker", "young:1", "--json"]);
    assert_eq!(r.code, 3);
    assert_eq!(doc(&r, &[]), json!({"worker": "young:1", "registered": false, "failed": null}));
    let r = tq(p, &n, &["clean-workers", "--worker", "nobody"]);
    assert_eq!((r.code, r.out.as_str()), (3, "nothing matched: no worker 'nobody' was registered or held a job\n"));

    // A registered idle worker: cleaned, status 0.
    pop(&mut c, &n, "idle:1", "q");
    c.ack(&n, "idle:1");
    let r = tq(p, &n, &["clean-workers", "--worker", "idle:1", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert_eq!(doc(&r, &[]), json!({"worker": "idle:1", "registered": true, "failed": null}));
    assert_eq!(json_of(p, &n, &["workers"]), json!({"workers": []}));

    // `w` is not `w:1`: nothing matches and w:1 keeps its job.
    pop(&mut c, &n, "w:1", "q");
    let r = tq(p, &n, &["clean-workers", "--worker", "w"]);
    assert_eq!(r.code, 3, "{}{}", r.out, r.err);
    assert_eq!(c.ack(&n, "w:1"), common::Value::Okay, "w:1 kept its job");
}

// ---------------------------------------------------------------------------
// retry / remove on 25,000 records

const MANY: usize = 25_000;

/// Record i: queue q1/q2 (i even/odd), class A when i % 3 == 0 else B,
/// exception E2 when i % 5 == 0 else E1, args [i].
fn spec(i: usize) -> (&'static str, &'static str, &'static str) {
    (if i % 2 == 0 { "q1" } else { "q2" }, if i % 3 == 0 { "A" } else { "B" }, if i % 5 == 0 { "E2" } else { "E1" })
}

/// Files MANY failed records through TQ.ENQUEUE, TQ.POP and TQ.FAIL (pipelined).
fn fail_many(c: &mut Conn, n: &str) {
    for start in (0..MANY).step_by(2_500) {
        let range = start..(start + 2_500).min(MANY);
        let mut pipe = redis::pipe();
        for i in range.clone() {
            let (q, class, _) = spec(i);
            pipe.cmd("TQ.ENQUEUE").arg(n).arg(q).arg(class).arg(format!("[{i}]")).ignore();
        }
        for i in range {
            let (q, _, exception) = spec(i);
            pipe.cmd("TQ.POP").arg(n).arg("w:1").arg(q).ignore();
            // Each pop mints the namespace's next delivery id: i + 1.
            pipe.cmd("TQ.FAIL").arg(n).arg("w:1").arg(i + 1).arg(exception).arg(format!("error {i}")).ignore();
        }
        pipe.query::<()>(&mut c.0).expect("the pipeline of enqueues, pops and fails");
    }
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), MANY as i64);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q1")]) + c.int(&["LLEN", &format!("{n}:queue:q2")]), 0);
}

/// The job numbers in a list of payloads (each a job of `spec`), in order.
fn numbers_in(payloads: &[String]) -> Vec<usize> {
    payloads
        .iter()
        .map(|p| {
            let v: J = serde_json::from_str(p).expect("payload JSON");
            v["args"][0].as_u64().expect("args[0]") as usize
        })
        .collect()
}

/// The job numbers of the failed records left, in order.
fn failed_numbers(c: &mut Conn, n: &str) -> Vec<usize> {
    let records = c.lrange(&format!("{n}:failed"));
    records
        .iter()
        .map(|r| {
            let v: J = serde_json::from_str(r).expect("record JSON");
            v["payload"]["args"][0].as_u64().expect("payload.args[0]") as usize
        })
        .collect()
}

/// `tq <args> --json` that must exit `code`: its document; stderr returned too.
fn sweep(p: u16, n: &str, args: &[&str], code: i32) -> (J, String) {
    let mut all = args.to_vec();
    all.push("--json");
    let t = Instant::now();
    let r = tq(p, n, &all);
    assert_eq!(r.code, code, "tq {all:?}\nstdout:\n{}\nstderr:\n{}", r.out, r.err);
    eprintln!("tq {all:?}: {:?}", t.elapsed());
    (doc(&r, &all), r.err)
}

#[test]
fn retry_and_remove_25000_records_by_filter_and_all() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-sweep");
    let p = s.port;
    let t = Instant::now();
    fail_many(&mut c, &n);
    eprintln!("{MANY} failed records filed in {:?}", t.elapsed());
    let mut retried: BTreeMap<usize, usize> = BTreeMap::new(); // job → times enqueued again
    let mut removed: Vec<usize> = Vec::new();
    let mut left: Vec<usize> = (0..MANY).collect();

    // `tq failed` pages through TQ.FAILED (10,000 a call).
    let records = c.strings(&["LRANGE", &format!("{n}:failed"), "5", "12004"]);
    let f = json_of(p, &n, &["failed", "--offset", "5", "--count", "12000"]);
    let ids: Vec<String> =
        f["failed"].as_array().expect("failed").iter().map(|r| r["id"].as_str().expect("id").to_string()).collect();
    assert_eq!(ids, records.iter().map(|r| fnv1a(r.as_bytes())).collect::<Vec<_>>());
    assert_eq!(f["total"], json!(MANY));

    // 1. Retry class A on q1 (i % 6 == 0), with the bar forced on stderr: stdout stays one document.
    let (d, err) = sweep(p, &n, &["retry", "--class", "A", "--queue", "q1", "--progress", "bar"], 0);
    let want: Vec<usize> = (0..MANY).filter(|i| i % 6 == 0).collect();
    assert_eq!(d["retried"], json!(want.len()), "{d}");
    assert_eq!(d["looked_at"], json!(MANY));
    assert!(d["calls"].as_u64().expect("calls") >= (MANY / 1000) as u64, "batches of 1000: {d}");
    assert!(err.contains('\r') && err.contains(&format!("{MANY}/{MANY}  100%")), "the bar: {err:?}");
    assert!(err.contains(&format!("{} retried", want.len())) && err.ends_with('\n'), "{err:?}");
    assert_eq!(numbers_in(&c.lrange(&format!("{n}:queue:q1"))), want, "q1 got them back, in order, once");
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q2")]), 0);
    for i in &want {
        *retried.entry(*i).or_default() += 1;
    }
    left.retain(|i| i % 6 != 0);
    assert_eq!(failed_numbers(&mut c, &n), left, "the rest stays, in order");

    // 2. Remove class B with exception E2, in batches of 700, plain progress lines (if any) on stderr.
    let (d, err) =
        sweep(p, &n, &["remove", "--class", "B", "--exception", "E2", "--batch", "700", "--progress", "plain"], 0);
    let gone: Vec<usize> = left.iter().copied().filter(|i| i % 3 != 0 && i % 5 == 0).collect();
    assert_eq!(d["removed"], json!(gone.len()), "{d}");
    assert!(err.lines().all(|l| l.starts_with("remove: ")), "plain progress lines only: {err:?}");
    removed.extend(&gone);
    left.retain(|i| !(i % 3 != 0 && i % 5 == 0));
    assert_eq!(failed_numbers(&mut c, &n), left);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q2")]), 0, "remove enqueues nothing");

    // 3. Retry one record by id, as `tq failed` shows it; a second time nothing matches.
    let f = json_of(p, &n, &["failed", "--offset", "10", "--count", "1"]);
    let id = f["failed"][0]["id"].as_str().expect("id").to_string();
    let one = left[10];
    let (d, _) = sweep(p, &n, &["retry", "--id", &id, "--progress", "none"], 0);
    assert_eq!(d["retried"], json!(1));
    *retried.entry(one).or_default() += 1;
    left.retain(|&i| i != one);
    let (d, err) = sweep(p, &n, &["retry", "--id", &id, "--progress", "none"], 3);
    assert_eq!((d["retried"].clone(), err.as_str()), (json!(0), ""));

    // 4. Retry everything left (every window from 0 matches in full: the
    // cursor answers 0, "go on from 0", until nil), default progress (not a TTY: plain lines).
    let (d, err) = sweep(p, &n, &["retry", "--all"], 0);
    assert_eq!(d["retried"], json!(left.len()), "{d}");
    assert!(err.lines().all(|l| l.starts_with("retry: ")), "{err:?}");
    for i in &left {
        *retried.entry(*i).or_default() += 1;
    }
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 0, "no record left behind");

    // Every job retried exactly once, none of the removed ones, each in its own queue.
    assert!(retried.values().all(|&k| k == 1));
    assert_eq!(retried.len() + removed.len(), MANY);
    let mut in_queues: Vec<usize> = Vec::new();
    for q in ["q1", "q2"] {
        let nums = numbers_in(&c.lrange(&format!("{n}:queue:{q}")));
        assert!(nums.iter().all(|&i| spec(i).0 == q), "{q} holds only its own jobs");
        in_queues.extend(nums);
    }
    let count_before = in_queues.len();
    in_queues.sort_unstable();
    in_queues.dedup();
    assert_eq!(in_queues.len(), count_before, "no job enqueued twice");
    assert_eq!(in_queues, retried.keys().copied().collect::<Vec<_>>());

    // 5. Nothing left: retry --all and remove --all exit 3 (table and JSON).
    let (d, _) = sweep(p, &n, &["retry", "--all"], 3);
    assert_eq!(d, json!({"retried": 0, "looked_at": 0, "calls": 1}));
    let r = tq(p, &n, &["remove", "--all"]);
    assert_eq!((r.code, r.out.as_str()), (3, "nothing matched: no failed job removed (looked at 0 records)\n"));
}

#[test]
fn remove_all_25000_records_table_output() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-remove-all");
    let p = s.port;
    fail_many(&mut c, &n);
    // Table output; every window from 0 matches in full (the cursor answers 0: go on from 0), the last one ends (nil).
    let t = Instant::now();
    let r = tq(p, &n, &["remove", "--all", "--batch", "5000"]);
    eprintln!("tq remove --all: {:?}", t.elapsed());
    assert_eq!(r.code, 0, "{}{}", r.out, r.err);
    assert_eq!(r.out, format!("removed {MANY} failed jobs (looked at {MANY} records in 5 calls)\n"));
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q1")]) + c.int(&["LLEN", &format!("{n}:queue:q2")]), 0);
}

// ---------------------------------------------------------------------------
// Exit statuses

#[test]
fn exit_statuses() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("tq-exit");
    let p = s.port;
    // 2: usage errors, decided before anything is sent.
    c.ok(&["TQ.ENQUEUE", &n, "q", "A", "[1]"]);
    pop(&mut c, &n, "w:1", "q");
    c.fail(&n, "w:1", &["E", "e"]);
    for args in [
        &["retry"][..],
        &["remove"],
        &["retry", "--all", "--class", "A"],
        &["retry", "--all", "--batch", "0"],
        &["remove", "--all", "--progress", "sometimes"],
        &["clean-workers"],
        &["clean-workers", "--age", "1s", "--worker", "w:1"],
        &["clean-workers", "--age", "soon"],
        &["delayed", "--at", "next tuesday"],
        &["delayed", "--at", "1", "--jobs"],
        &["delayed", "--job", "q"],
        &["queued"],
        &["failed", "--count", "-1"],
        &["stats", "extra"],
    ] {
        let r = tq(p, &n, args);
        assert_eq!(r.code, 2, "tq {args:?}: a usage error\n{}", r.err);
        assert_eq!(r.out, "", "tq {args:?}");
    }
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 1, "a bare `tq retry` touches nothing");
    let help = tq(p, &n, &["retry", "--help"]);
    assert_eq!(help.code, 0);
    assert!(help.out.contains("3 nothing matched") && help.out.contains("--all"), "{}", help.out);

    // 3: nothing matched.
    for args in
        [&["retry", "--class", "Nope"][..], &["remove", "--queue", "nope"], &["retry", "--id", "0123456789abcdef"]]
    {
        let r = tq(p, &n, args);
        assert_eq!(r.code, 3, "tq {args:?}: {}{}", r.out, r.err);
        assert!(r.out.starts_with("nothing matched"), "{}", r.out);
    }
    assert_eq!(tq(p, &n, &["clean-workers", "--worker", "ghost"]).code, 3);
    // 0: something matched.
    assert_eq!(tq(p, &n, &["retry", "--exception", "E"]).code, 0);

    // 1: refusals by the server (a key of the wrong type).
    c.ok(&["SET", &format!("{n}:failed"), "not a list"]);
    for args in [&["failed"][..], &["retry", "--all"], &["details"]] {
        let r = tq(p, &n, args);
        assert_eq!(r.code, 1, "tq {args:?}: {}{}", r.out, r.err);
        assert!(r.err.starts_with(&format!("tq {}: WRONGTYPE", args[0])), "{}", r.err);
        assert_eq!(r.out, "");
    }

    // 1: the module is not loaded.
    let plain = Server::start_with(Opts { module: false, ..Opts::default() });
    let r = tq(plain.port, &n, &["stats"]);
    assert_eq!(r.code, 1);
    assert!(r.err.contains("is the tq module loaded"), "{}", r.err);

    // 1: Redis unreachable (a port nothing listens on any more), table or JSON.
    let port = s.port;
    drop(c);
    let dir = s.kill_keep_dir();
    for args in [&["stats"][..], &["workers", "--json"], &["retry", "--all", "--json"], &["locks"]] {
        let r = tq(port, &n, args);
        assert_eq!(r.code, 1, "tq {args:?}: {}{}", r.out, r.err);
        assert!(r.err.contains("redis unavailable"), "{}", r.err);
        assert_eq!(r.out, "", "nothing on stdout");
    }
    let _ = std::fs::remove_dir_all(dir);
}
