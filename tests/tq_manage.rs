//! The `tq` binary's duration and time syntax, and its management
//! subcommands against a real server with the module: what they print
//! (table and `--json`), what they write, their exit statuses, and bad
//! input refused with a clear message and nothing written.

mod common;

use serde_json::{json, Value as J};

use common::{job, ns, Conn, Server};

use common::run_tq as tq;

/// A run that must exit `code`; its stdout.
fn expect(port: u16, n: &str, args: &[&str], code: i32) -> String {
    let r = tq(port, n, args);
    assert_eq!(r.code, code, "tq {args:?}: status {}\nstdout:\n{}\nstderr:\n{}", r.code, r.out, r.err);
    r.out
}

/// `tq <args...> --json` exiting `code` with nothing on stderr: its one JSON document.
fn json_of(port: u16, n: &str, args: &[&str], code: i32) -> J {
    let mut all = args.to_vec();
    all.push("--json");
    let r = tq(port, n, &all);
    assert_eq!(r.code, code, "tq {all:?}: status {}\nstdout:\n{}\nstderr:\n{}", r.code, r.out, r.err);
    assert_eq!(r.err, "", "tq {all:?}: nothing on stderr");
    assert!(r.out.ends_with('\n') && r.out.trim_end().lines().count() == 1, "tq {all:?}: one line:\n{}", r.out);
    serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("tq {all:?}: stdout is not JSON ({e}):\n{}", r.out))
}

/// A usage error: exit 2, the message on stderr naming `what`, nothing on stdout.
fn usage_error(port: u16, n: &str, args: &[&str], what: &str) {
    let r = tq(port, n, args);
    assert_eq!(r.code, 2, "tq {args:?}: status {}\nstderr:\n{}", r.code, r.err);
    assert_eq!(r.out, "", "tq {args:?}");
    assert!(r.err.contains(what), "tq {args:?}: stderr lacks {what:?}:\n{}", r.err);
}

/// Every key of namespace `n` with its type, sorted (what a refusal must leave alone).
fn keys_of(c: &mut Conn, n: &str) -> Vec<String> {
    let mut keys = c.strings(&["KEYS", &format!("{n}:*")]);
    keys.sort();
    keys
}

/// 2030-01-01T10:00:00Z.
const Y2030_10H: u64 = 1_893_492_000_000;

// ---------------------------------------------------------------------------
// Durations and times

#[test]
fn one_time_syntax_for_enqueue_and_delayed() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("times");
    let p = s.port;
    // The same instant four ways: the job lands in one bucket.
    for (i, at) in
        ["2030-01-01 10:00", "2030-01-01T10:00:00Z", "2030-01-01 11:00+01:00", "1893492000000"].into_iter().enumerate()
    {
        let out = expect(p, &n, &["enqueue", "q", "C", &format!("[{i}]"), "--at", at], 0);
        assert_eq!(out, format!("{}\n", Y2030_10H / 1000), "--at {at}");
    }
    assert_eq!(
        c.strings(&["ZRANGE", &format!("{n}:delayed_queue_schedule"), "0", "-1"]),
        [(Y2030_10H / 1000).to_string()]
    );
    let d = json_of(p, &n, &["delayed", "--at", "2030-01-01 10:00"], 0);
    assert_eq!(d["jobs"].as_array().map(Vec::len), Some(4), "{d}");
    // --in with several units: filed 1h30m after the server's clock.
    let before = c.server_ms();
    let out = expect(p, &n, &["enqueue", "q", "C", "[9]", "--in", "1h30m"], 0);
    let bucket: u64 = out.trim().parse().expect("a bucket");
    let want = (before + 5_400_000) / 1000;
    assert!((want..=want + 2).contains(&bucket), "{bucket} vs {want}");
    let out = expect(p, &n, &["enqueue", "q", "C", "[10]", "--in", "2d"], 0);
    let bucket: u64 = out.trim().parse().expect("a bucket");
    let want = (before + 172_800_000) / 1000;
    assert!((want..=want + 2).contains(&bucket), "{bucket} vs {want}");

    // Refusals: exit 2, the value named, nothing written.
    let keys = keys_of(&mut c, &n);
    for (args, what) in [
        (&["enqueue", "q", "C", "--in", "1y"][..], "no fixed length"),
        (&["enqueue", "q", "C", "--in=-5s"], "no sign"),
        (&["enqueue", "q", "C", "--in", "250us"], "whole milliseconds"),
        (&["enqueue", "q", "C", "--in", "soon"], "invalid duration 'soon'"),
        (&["enqueue", "q", "C", "--at", "2030-01-01 25:00"], "invalid time '2030-01-01 25:00'"),
        (&["enqueue", "q", "C", "--at", "2030-01-01T10:00[Europe/Paris]"], "UTC when no zone"),
        (&["enqueue", "q", "C", "--at", "1969-12-31T00:00:00Z"], "before 1970"),
        (&["delayed", "--at", "next week"], "invalid time 'next week'"),
        (&["clean-workers", "--age", "2 fortnights"], "invalid duration"),
    ] {
        usage_error(p, &n, args, what);
    }
    assert_eq!(keys_of(&mut c, &n), keys, "nothing written");
}

#[test]
fn age_in_days_and_printed_durations_parse_back() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("age");
    let p = s.port;
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[1]"]);
    c.ok(&["TQ.POP", &n, "w:1", "q"]);
    // Nobody has run a job for 2 days: nothing cleaned, and the table
    // names the age in the syntax --age takes.
    let d = json_of(p, &n, &["clean-workers", "--age", "2d"], 0);
    assert_eq!(d, json!({"cleaned": []}), "{d}");
    let t = expect(p, &n, &["clean-workers", "--age", "1d12h"], 0);
    assert!(t.contains("1d12h"), "{t}");
    // The worker's job started under a second ago: --age 0 cleans it.
    let d = json_of(p, &n, &["clean-workers", "--age", "0"], 0);
    assert_eq!(d["cleaned"].as_array().map(Vec::len), Some(1), "{d}");
    // A delayed job due long ago (by node-resque's layout) shows its
    // lateness in `tq details` in the same units, which `--in` accepts.
    let past = c.server_ms() / 1000 - 3 * 86_400 - 3600 * 5;
    let k = format!("{n}:delayed:{past}");
    c.ok(&["RPUSH", &k, &job("q", "C", "[2]")]);
    c.ok(&["ZADD", &format!("{n}:delayed_queue_schedule"), &past.to_string(), &past.to_string()]);
    let t = expect(p, &n, &["details"], 0);
    let line = t.lines().find(|l| l.contains("late")).unwrap_or_else(|| panic!("no lateness:\n{t}"));
    let shown = line.split("oldest due time is ").nth(1).and_then(|r| r.strip_suffix(" late")).expect(line);
    assert!(shown.starts_with("3d5h"), "{line}");
    let out = expect(p, &n, &["enqueue", "q2", "C", "--in", shown], 0);
    assert!(out.trim().parse::<u64>().is_ok(), "{out}");
}

// ---------------------------------------------------------------------------
// Management subcommands

/// Bad input: a usage error (exit 2) or a refusal (exit 1) naming the
/// problem, and the data set unchanged.
fn refused(c: &mut Conn, p: u16, n: &str, args: &[&str], code: i32, what: &str) {
    let before = c.quiet_digest();
    let r = tq(p, n, args);
    assert_eq!(r.code, code, "tq {args:?}: status {}\nstdout:\n{}\nstderr:\n{}", r.code, r.out, r.err);
    assert_eq!(r.out, "", "tq {args:?}: nothing on stdout");
    assert!(r.err.contains(what), "tq {args:?}: stderr lacks {what:?}:\n{}", r.err);
    assert_eq!(c.digest(), before, "tq {args:?} wrote nothing");
}

#[test]
fn del_del_delayed_and_del_queue() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("del");
    let p = s.port;
    for args in ["[1]", "[1]", "[2]", "[1]"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", "C", args]);
    }
    let qk = format!("{n}:queue:q");
    // del: the first N, then the rest, then nothing (exit 3).
    let d = json_of(p, &n, &["del", "q", "C", "[1]", "--count", "2"], 0);
    assert_eq!(d, json!({"queue": "q", "class": "C", "args": [1], "removed": 2}));
    assert_eq!(c.strings(&["LRANGE", &qk, "0", "-1"]), [job("q", "C", "[2]"), job("q", "C", "[1]")]);
    assert_eq!(expect(p, &n, &["del", "q", "C", "[1]"], 0), "removed 1 waiting instance of C [1] (queue 'q')\n");
    assert_eq!(expect(p, &n, &["del", "q", "C", "[1]"], 3), "nothing matched: no waiting C [1] (queue 'q')\n");
    assert_eq!(json_of(p, &n, &["del", "q", "C", "[1]"], 3)["removed"], 0);
    refused(&mut c, p, &n, &["del", "q", "C", "[1"], 1, "ERR");
    refused(&mut c, p, &n, &["del", "q", "C", "[2]", "--count", "0"], 2, "--count");
    refused(&mut c, p, &n, &["del", "q"], 2, "<CLASS>");

    // del-by-class: every args, in the range looked at.
    for args in ["[1]", "[2]", "[3]"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", "K", args]);
    }
    let d = json_of(p, &n, &["del-by-class", "q", "K", "--start", "0", "--stop", "-2"], 0);
    assert_eq!(d, json!({"queue": "q", "class": "K", "removed": 2}));
    assert_eq!(expect(p, &n, &["del-by-class", "q", "K"], 0), "removed 1 waiting job of class K from queue 'q'\n");
    assert_eq!(expect(p, &n, &["del-by-class", "q", "K"], 3), "nothing matched: no waiting K job in queue 'q'\n");
    refused(&mut c, p, &n, &["del-by-class", "q", "K", "--stop", "x"], 2, "--stop");
    assert_eq!(c.strings(&["LRANGE", &qk, "0", "-1"]), [job("q", "C", "[2]")]);

    // del-delayed: every time the job is filed for.
    let (t1, t2) = (1_893_456_000_000u64, 1_893_459_600_000u64);
    for t in [t1, t2] {
        c.ok(&["TQ.ENQUEUEAT", &n, &t.to_string(), "q", "D", "[7]"]);
    }
    c.ok(&["TQ.ENQUEUEAT", &n, &t1.to_string(), "q", "D", "[8]"]);
    let d = json_of(p, &n, &["del-delayed", "q", "D", "[7]"], 0);
    assert_eq!(d, json!({"queue": "q", "class": "D", "args": [7], "removed_from": [t1, t2]}));
    assert_eq!(c.strings(&["LRANGE", &format!("{n}:delayed:{}", t1 / 1000), "0", "-1"]), [job("q", "D", "[8]")]);
    let t = expect(p, &n, &["del-delayed", "q", "D", "[8]"], 0);
    assert!(t.starts_with("REMOVED FROM\n2030-01-01T00:00:00Z (in "), "{t}");
    assert!(t.ends_with("removed delayed D [8] (queue 'q') from 1 time\n"), "{t}");
    assert_eq!(expect(p, &n, &["del-delayed", "q", "D", "[8]"], 3), "nothing matched: no delayed D [8] (queue 'q')\n");

    // del-queue: the jobs and the registration; then nothing matches.
    let d = json_of(p, &n, &["del-queue", "q"], 0);
    assert_eq!(d, json!({"queue": "q", "registered": true, "removed": 1}));
    assert_eq!(c.int(&["EXISTS", &qk]), 0);
    assert_eq!(c.int(&["SISMEMBER", &format!("{n}:queues"), "q"]), 0);
    assert_eq!(expect(p, &n, &["del-queue", "q"], 3), "nothing matched: no queue 'q'\n");
    c.ok(&["SADD", &format!("{n}:queues"), "empty"]);
    assert_eq!(expect(p, &n, &["del-queue", "empty"], 0), "deleted queue 'empty' and its 0 jobs\n");
    c.ok(&["SET", &format!("{n}:queue:str"), "x"]);
    refused(&mut c, p, &n, &["del-queue", "str"], 1, "WRONGTYPE");
}

#[test]
fn del_lock_by_the_name_tq_locks_shows() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("dellock");
    let p = s.port;
    c.ok(&["TQ.ENQUEUE", &n, "q", "C", "[1]", "UNIQUE"]);
    c.ok(&["TQ.LOCK", &n, "nightly", "me", "60000"]);
    let locks = json_of(p, &n, &["locks"], 0);
    let names: Vec<&str> =
        locks["locks"].as_array().expect("locks").iter().filter_map(|l| l["name"].as_str()).collect();
    assert_eq!(names, ["lock:C:q:[1]", "tq:lock:nightly"]);
    // Not lock names: refused before anything is sent.
    for name in ["queues", "queue:q", "lock:", "stat:processed", "resque_scheduler_leader_lock"] {
        refused(&mut c, p, &n, &["del-lock", name], 2, "is not a lock name");
    }
    assert_eq!(json_of(p, &n, &["del-lock", "lock:C:q:[1]"], 0), json!({"lock": "lock:C:q:[1]", "deleted": true}));
    assert_eq!(c.int(&["EXISTS", &format!("{n}:lock:C:q:[1]")]), 0);
    assert_eq!(expect(p, &n, &["del-lock", "tq:lock:nightly"], 0), "deleted lock 'tq:lock:nightly'\n");
    assert_eq!(expect(p, &n, &["del-lock", "tq:lock:nightly"], 3), "nothing matched: no lock 'tq:lock:nightly'\n");
    assert_eq!(json_of(p, &n, &["locks"], 0), json!({"locks": []}));
    // The freed QueueLock lets the same job be enqueued UNIQUE again.
    assert_eq!(c.int(&["TQ.ENQUEUE", &n, "q", "C", "[1]", "UNIQUE"]), 2);
}

#[test]
fn recur_unrecur_and_recurs() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("recur");
    let p = s.port;
    assert_eq!(expect(p, &n, &["recurs"], 0), "no periodic tasks\n");
    assert_eq!(json_of(p, &n, &["recurs"], 0), json!({"recurs": []}));
    // Bad input first, while nothing is timed (the digest stays still).
    refused(&mut c, p, &n, &["recur", "q", "C", "--every", "0"], 2, "at least 1ms");
    refused(&mut c, p, &n, &["recur", "q", "C", "--every", "1y"], 2, "no fixed length");
    refused(&mut c, p, &n, &["recur", "q", "C"], 2, "--every");
    refused(&mut c, p, &n, &["recur", "q", "C", "{", "--every", "1h"], 1, "ERR");

    let d = json_of(p, &n, &["recur", "q", "C", "[1]", "--every", "1h"], 0);
    assert_eq!(d, json!({"queue": "q", "class": "C", "args": [1], "every_ms": 3_600_000, "registered": true}));
    let t = expect(p, &n, &["recur", "q", "C", "[1]", "--every", "1d2h"], 0);
    assert_eq!(t, "re-timed periodic task C [1] (queue 'q') every 1d2h\n");
    expect(p, &n, &["recur", "a", "B", "--every", "90s"], 0);
    let d = json_of(p, &n, &["recurs"], 0);
    let tasks = d["recurs"].as_array().expect("recurs");
    assert_eq!(tasks.len(), 2, "{d}");
    assert_eq!((tasks[0]["queue"].clone(), tasks[0]["every_ms"].clone()), (json!("a"), json!(90_000)));
    assert_eq!(tasks[1]["payload"], job("q", "C", "[1]"));
    assert_eq!(tasks[1]["every_ms"], 93_600_000);
    assert!(tasks[1]["next_due"].as_u64().is_some_and(|t| t > 1_700_000_000_000), "{d}");
    let t = expect(p, &n, &["recurs"], 0);
    assert!(t.starts_with("QUEUE  CLASS  ARGS  EVERY  NEXT\n"), "{t}");
    let rows: Vec<Vec<&str>> = t.lines().skip(1).take(2).map(|l| l.split_whitespace().take(4).collect()).collect();
    assert_eq!(rows, [vec!["a", "B", "[]", "1m30s"], vec!["q", "C", "[1]", "1d2h"]], "{t}");
    assert!(t.ends_with("2 periodic tasks\n"), "{t}");

    assert_eq!(
        json_of(p, &n, &["unrecur", "a", "B"], 0),
        json!({"queue": "a", "class": "B", "args": [], "removed": true})
    );
    assert_eq!(expect(p, &n, &["unrecur", "a", "B"], 3), "nothing matched: no periodic task B [] (queue 'a')\n");
    assert_eq!(expect(p, &n, &["unrecur", "q", "C", "[1]"], 0), "removed periodic task C [1] (queue 'q')\n");
    assert_eq!(json_of(p, &n, &["recurs"], 0), json!({"recurs": []}));
}

#[test]
fn promote_broadcast_and_nack() {
    let s = Server::start(); // automatic promotion off: `tq promote` moves the jobs
    let mut c = s.conn();
    let n = ns("pbn");
    let p = s.port;
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUEAT", &n, "1000", "q", "C", &format!("[{i}]")]);
    }
    refused(&mut c, p, &n, &["promote", "--limit", "0"], 2, "--limit");
    assert_eq!(json_of(p, &n, &["promote", "--limit", "2"], 0), json!({"promoted": 2}));
    assert_eq!(expect(p, &n, &["promote"], 0), "promoted 1 due job into their queues\n");
    assert_eq!(expect(p, &n, &["promote"], 0), "promoted 0 due jobs into their queues\n");
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 3);

    // broadcast: nobody alive, then two live workers.
    let d = json_of(p, &n, &["broadcast", "Reload", "{\"all\":true}"], 3);
    assert_eq!(d, json!({"class": "Reload", "args": {"all": true}, "reached": 0}));
    for w in ["w1", "w2"] {
        assert_eq!(c.beat(&n, w, "30000"), 0);
    }
    assert_eq!(expect(p, &n, &["broadcast", "Reload"], 0), "sent Reload [] to 2 live workers\n");
    let (q, payload) = common::popped_job(c.ok(&["TQ.POP", &n, "w2", "q"])).expect("the broadcast job");
    assert_eq!((q.as_str(), payload), ("tq:broadcast", job("tq:broadcast", "Reload", "[]")));
    assert!(common::popped_job(c.ok(&["TQ.POP", &n, "w1", "none"])).is_some());
    c.ack(&n, "w1");
    assert_eq!(common::popped_job(c.ok(&["TQ.POP", &n, "w1", "q"])), Some(("q".to_string(), job("q", "C", "[0]"))));

    // nack: w1 holds a job; give it back to the head of its queue.
    let held = c.delivery(&n, "w1");
    let d = json_of(p, &n, &["nack", "w1"], 0);
    assert_eq!(d, json!({"worker": "w1", "delivery": held.parse::<u64>().expect("id"), "delay_ms": null}));
    assert_eq!(c.strings(&["LRANGE", &format!("{n}:queue:q"), "0", "0"]), [job("q", "C", "[0]")]);
    assert_eq!(expect(p, &n, &["nack", "w1"], 3), "nothing matched: worker 'w1' holds no job\n");
    assert_eq!(json_of(p, &n, &["nack", "nobody"], 3)["delivery"], J::Null);
    // Taken again, then given back for an hour.
    assert!(common::popped_job(c.ok(&["TQ.POP", &n, "w1", "q"])).is_some());
    let held = c.delivery(&n, "w1");
    c.wait_tallies_written(&n);
    refused(&mut c, p, &n, &["nack", "w1", "--delivery", "999999"], 1, "NOJOB");
    refused(&mut c, p, &n, &["nack", "w1", "--delay", "1y"], 2, "no fixed length");
    refused(&mut c, p, &n, &["nack", "w1", "--delivery", "x"], 2, "--delivery");
    let t = expect(p, &n, &["nack", "w1", "--delivery", &held, "--delay", "1h"], 0);
    assert_eq!(t, format!("gave back delivery {held} of worker 'w1' to run again in 1h\n"));
    assert_eq!(c.int(&["ZCARD", &format!("{n}:delayed_queue_schedule")]), 1);
}

#[test]
fn enqueue_unique_and_help_on_times() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("unique");
    let p = s.port;
    assert_eq!(expect(p, &n, &["enqueue", "q", "C", "[1]", "--unique", "--unique-ttl", "1m30s"], 0), "1\n");
    let ttl = c.int(&["PTTL", &format!("{n}:lock:C:q:[1]")]);
    assert!((1..=90_000).contains(&ttl), "{ttl}");
    // An identical job waits: exit 3, nothing written.
    refused(&mut c, p, &n, &["enqueue", "q", "C", "[1]", "--unique"], 3, "already waiting");
    assert_eq!(expect(p, &n, &["enqueue", "q", "C", "[2]", "--unique"], 0), "2\n");
    refused(&mut c, p, &n, &["enqueue", "q", "C", "[3]", "--unique", "--in", "1s"], 2, "--in");
    refused(&mut c, p, &n, &["enqueue", "q", "C", "[3]", "--unique-ttl", "1s"], 2, "--unique");
    refused(&mut c, p, &n, &["enqueue", "q", "C", "[3]", "--unique", "--unique-ttl", "0"], 2, "at least 1ms");
    // --help says what a time without a zone means.
    for args in [&["--help"][..], &["enqueue", "--help"], &["delayed", "--help"]] {
        let help = expect(p, &n, args, 0);
        assert!(help.contains("UTC when no zone"), "tq {args:?}:\n{help}");
    }
}
