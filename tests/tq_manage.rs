//! The `tq` binary's duration and time syntax, and its management
//! subcommands against a real server with the module: what they print
//! (table and `--json`), what they write, their exit statuses, and bad
//! input refused with a clear message and nothing written.

mod common;

use std::process::{Command, Stdio};

use serde_json::{json, Value as J};

use common::{job, ns, tq_bin, Conn, Server};

/// What a `tq` run left: exit status, stdout, stderr.
struct Run {
    code: i32,
    out: String,
    err: String,
}

/// `tq --redis redis://127.0.0.1:<port>/ --ns <n> <args...>`.
fn tq(port: u16, n: &str, args: &[&str]) -> Run {
    let out = Command::new(tq_bin())
        .args(["--redis", &format!("redis://127.0.0.1:{port}/"), "--ns", n])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tq");
    Run {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

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
