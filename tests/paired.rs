//! `tq paired` (the worker crate's binary) against a real server with the
//! module: processes pairing on one lock, takeover after a kill -9, FAIL
//! reports, renewals, lost locks, forwarded signals.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{ns, Server, Tq, Value};
use tq_core::keys::Ns;
use tq_core::lock::PairLock;

/// `tq --ns <ns> paired --lock <lock> <extra...> -- sh -c <script>`.
fn paired(s: &Server, n: &str, lock: &str, extra: &[&str], script: &str, log: &Path) -> Tq {
    let mut args = vec!["--ns", n, "paired", "--lock", lock];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--", "sh", "-c", script]);
    Tq::spawn(s.port, &args, log)
}

fn file(s: &Server, name: &str) -> PathBuf {
    s.dir.join(name)
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

/// `sh -c` text quoting a path.
fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// The token in the log line `acquired lock '<lock>' as '<owner>' (token N, ...`.
fn acquired_token(log: &str) -> u64 {
    let line = log.lines().find(|l| l.contains("acquired lock")).unwrap_or_else(|| panic!("no acquired line:\n{log}"));
    let rest = &line[line.find("(token ").expect("token in the acquired line") + "(token ".len()..];
    rest.split(|c: char| !c.is_ascii_digit()).next().expect("digits").parse().expect("token number")
}

fn state(v: &Value) -> (String, i64) {
    match v {
        Value::Array(items) => match items.as_slice() {
            [Value::BulkString(s), Value::Int(n)] => (String::from_utf8_lossy(s).into_owned(), *n),
            other => panic!("bad TQ.LOCK reply {other:?}"),
        },
        other => panic!("bad TQ.LOCK reply {other:?}"),
    }
}

/// The stored record of a pair lock (None when absent).
fn record(s: &Server, n: &str, lock: &str) -> Option<PairLock> {
    let key = Ns::new(n.as_bytes(), false).expect("namespace").pair_lock(lock.as_bytes());
    let raw = s.conn().bytes(&[b"GET".as_slice(), &key])?;
    Some(PairLock::decode(&raw).expect("a tq lock record"))
}

#[test]
fn two_processes_one_runs_the_task_the_other_sees_it_done() {
    let s = Server::start();
    let n = ns("paired");
    let out = file(&s, "out");
    let script = format!("echo ran >> {}; sleep 1", q(&out));
    let mut a = paired(&s, &n, "job-1", &["--ttl", "10s", "--owner", "A"], &script, &file(&s, "a.log"));
    let mut b = paired(&s, &n, "job-1", &["--ttl", "10s", "--owner", "B"], &script, &file(&s, "b.log"));
    let (sa, sb) = (a.wait_exit(30), b.wait_exit(30));
    let (la, lb) = (a.log(), b.log());
    assert!(sa.success() && sb.success(), "both exit 0: {sa:?} {sb:?}\nA:\n{la}\nB:\n{lb}");
    let ran: Vec<&str> = [&la, &lb].iter().filter(|l| l.contains("acquired lock")).map(|l| l.as_str()).collect();
    let done: Vec<&str> = [&la, &lb].iter().filter(|l| l.contains("already completed")).map(|l| l.as_str()).collect();
    assert_eq!((ran.len(), done.len()), (1, 1), "one runs, one sees done\nA:\n{la}\nB:\n{lb}");
    assert!(ran[0].contains("reported OK"), "{}", ran[0]);
    assert!(!done[0].contains("running '"), "the standby ran nothing:\n{}", done[0]);
    assert_eq!(lines(&out), ["ran"]);
    // The lock stays done for the ttl: a third process does not run it either.
    assert_eq!(state(&s.conn().ok(&["TQ.LOCK", &n, "job-1", "C", "1000"])), ("done".to_string(), 0));
}

#[test]
fn kill_9_of_the_holder_mid_task_the_standby_takes_over() {
    let s = Server::start();
    let n = ns("paired");
    let out = file(&s, "out");
    let fast = ["--ttl", "1500ms", "--first-attempt", "10ms", "--other-attempt", "30ms"];
    let mut a = paired(
        &s,
        &n,
        "job-42",
        &[&fast[..], &["--owner", "A"]].concat(),
        &format!("echo A >> {}; sleep 30", q(&out)),
        &file(&s, "a.log"),
    );
    let log_a = a.wait_log(10, "running '");
    common::wait_until(10, "A's task to start", || lines(&out) == ["A"]);
    let token_a = acquired_token(&log_a);

    let mut b = paired(
        &s,
        &n,
        "job-42",
        &[&fast[..], &["--owner", "B"]].concat(),
        &format!("echo B >> {}", q(&out)),
        &file(&s, "b.log"),
    );
    b.wait_log(10, "stands by");
    // A keeps the lock while it lives (renewals): B is still waiting.
    std::thread::sleep(Duration::from_millis(300));
    assert!(b.try_wait().is_none(), "B must wait while A runs:\n{}", b.log());

    let killed = Instant::now();
    a.kill_groups();
    let log_a = a.log();
    assert!(!log_a.contains("reported"), "A died without a report:\n{log_a}");
    let sb = b.wait_exit(20);
    let log_b = b.log();
    assert!(sb.success(), "B exits 0: {sb:?}\n{log_b}");
    assert!(killed.elapsed() >= Duration::from_millis(500), "B took over only after A's lock expired");
    assert_eq!(lines(&out), ["A", "B"], "B ran the task after A died");
    let token_b = acquired_token(&log_b);
    assert!(token_b > token_a, "B's token {token_b} > A's {token_a}");
    assert!(log_b.contains("reported OK"), "{log_b}");

    // A's stale report is refused and changes nothing.
    let mut c = s.conn();
    let before = c.quiet_digest();
    let e = c.err(&["TQ.UNLOCK", &n, "job-42", "A", &token_a.to_string(), "FAIL"]);
    assert!(e.starts_with("NOTHELD") || e.starts_with("NOTOWNER"), "{e}");
    let e = c.err(&["TQ.UNLOCK", &n, "job-42", "A", &token_a.to_string(), "OK"]);
    assert!(e.starts_with("NOTHELD") || e.starts_with("NOTOWNER"), "{e}");
    assert_eq!(c.digest(), before);
    let rec = record(&s, &n, "job-42").expect("the lock record");
    assert!(rec.done, "{rec:?}");
    assert_eq!((rec.owner.as_slice(), rec.token), (b"B".as_slice(), token_b));
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "job-42", "A", "1500"])), ("done".to_string(), 0));
}

#[test]
fn failing_task_frees_the_lock_for_takeover() {
    let s = Server::start();
    let n = ns("paired");
    let out = file(&s, "out");
    let script = format!("echo run >> {}; exit 3", q(&out));
    let mut a = paired(&s, &n, "job-f", &["--ttl", "20s", "--owner", "A"], &script, &file(&s, "a.log"));
    let sa = a.wait_exit(20);
    let log_a = a.log();
    assert_eq!(sa.code(), Some(3), "tq exits with the command's status\n{log_a}");
    assert!(log_a.contains("exited with status 3") && log_a.contains("reported FAIL"), "{log_a}");
    assert_eq!(record(&s, &n, "job-f"), None, "FAIL removes the lock");

    // Taken again at once (not after the 20s ttl), with a larger token.
    let started = Instant::now();
    let mut b = paired(
        &s,
        &n,
        "job-f",
        &["--ttl", "20s", "--owner", "B"],
        &format!("echo run >> {}", q(&out)),
        &file(&s, "b.log"),
    );
    let sb = b.wait_exit(20);
    let log_b = b.log();
    assert!(sb.success(), "{sb:?}\n{log_b}");
    assert!(started.elapsed() < Duration::from_secs(10), "no wait for the ttl");
    assert!(acquired_token(&log_b) > acquired_token(&log_a), "A:\n{log_a}\nB:\n{log_b}");
    assert_eq!(lines(&out), ["run", "run"]);
}

#[test]
fn renewals_keep_a_long_tasks_lock() {
    let s = Server::start();
    let n = ns("paired");
    let mut a = paired(&s, &n, "job-long", &["--ttl", "600ms", "--owner", "A"], "sleep 2", &file(&s, "a.log"));
    a.wait_log(10, "running '");
    let mut c = s.conn();
    let mut polls = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while a.try_wait().is_none() {
        assert!(Instant::now() < deadline, "A still runs after 20s:\n{}", a.log());
        let (st, left) = state(&c.ok(&["TQ.LOCK", &n, "job-long", "competitor", "600"]));
        if st == "done" {
            break; // A reported between our check and the call.
        }
        assert_eq!(st, "held", "the competitor must never get the lock (poll {polls}):\n{}", a.log());
        assert!((1..=600).contains(&left), "ms left {left}");
        polls += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
    let sa = a.wait_exit(10);
    assert!(sa.success(), "{sa:?}\n{}", a.log());
    assert!(polls >= 20, "polled across several ttls ({polls} polls)");
    assert_eq!(state(&c.ok(&["TQ.LOCK", &n, "job-long", "competitor", "600"])), ("done".to_string(), 0));
}

#[test]
fn a_lost_lock_stops_the_command_without_a_report() {
    let s = Server::start();
    let n = ns("paired");
    let out = file(&s, "out");
    let script = format!("trap 'echo term >> {0}; exit 0' TERM; echo started >> {0}; sleep 30 & wait", q(&out));
    let mut a = paired(&s, &n, "job-lost", &["--ttl", "900ms", "--owner", "A"], &script, &file(&s, "a.log"));
    let log_a = a.wait_log(10, "running '");
    common::wait_until(10, "the task to start", || lines(&out) == ["started"]);
    let token_a = acquired_token(&log_a);

    // Someone removes the lock behind A's back and another owner takes it.
    let mut c = s.conn();
    let key = Ns::new(n.as_bytes(), false).expect("namespace").pair_lock(b"job-lost");
    c.ok(&[b"DEL".as_slice(), &key]);
    let (st, token_x) = state(&c.ok(&["TQ.LOCK", &n, "job-lost", "X", "10000"]));
    assert_eq!(st, "acquired");

    let sa = a.wait_exit(20);
    let log_a = a.log();
    assert_eq!(sa.code(), Some(75), "{log_a}");
    assert!(log_a.contains("LOST lock 'job-lost' as 'A'") && log_a.contains("renewal refused"), "{log_a}");
    assert!(!log_a.contains("reported"), "no report after a lost lock:\n{log_a}");
    common::wait_until(10, "the task to get SIGTERM", || lines(&out) == ["started", "term"]);
    // X still holds it, untouched.
    let rec = record(&s, &n, "job-lost").expect("X's lock");
    assert_eq!((rec.owner.as_slice(), rec.token, rec.done), (b"X".as_slice(), token_x as u64, false));
    assert!(token_x as u64 > token_a);
}

#[test]
fn renewals_failing_until_expiry_count_as_a_lost_lock() {
    let s = Server::start();
    let n = ns("paired");
    let out = file(&s, "out");
    let script = format!("trap 'echo term >> {0}; exit 0' TERM; echo started >> {0}; sleep 30 & wait", q(&out));
    let mut a = paired(&s, &n, "job-cut", &["--ttl", "900ms", "--owner", "A"], &script, &file(&s, "a.log"));
    a.wait_log(10, "running '");
    common::wait_until(10, "the task to start", || lines(&out) == ["started"]);
    // Writes (TQ.RENEW among them) hang on the server: renewals time out.
    let mut c = s.conn();
    c.ok(&["CLIENT", "PAUSE", "4000", "WRITE"]);
    let sa = a.wait_exit(20);
    c.ok(&["CLIENT", "UNPAUSE"]);
    let log_a = a.log();
    assert_eq!(sa.code(), Some(75), "{log_a}");
    assert!(log_a.contains("cannot renew lock 'job-cut'"), "{log_a}");
    assert!(log_a.contains("could not be renewed before it expired"), "{log_a}");
    assert!(!log_a.contains("reported"), "{log_a}");
    common::wait_until(10, "the task to get SIGTERM", || lines(&out) == ["started", "term"]);
    // The server let it expire too: someone else can take it.
    common::wait_until(10, "the lock to be free", || {
        state(&c.ok(&["TQ.LOCK", &n, "job-cut", "B", "1000"])).0 == "acquired"
    });
}

#[test]
fn sigterm_is_forwarded_to_the_command_then_the_lock_is_failed() {
    let s = Server::start();
    let n = ns("paired");
    let out = file(&s, "out");
    let script = format!("trap 'echo term >> {0}; exit 0' TERM; echo started >> {0}; sleep 30 & wait", q(&out));
    let mut a = paired(&s, &n, "job-sig", &["--ttl", "20s", "--owner", "A"], &script, &file(&s, "a.log"));
    a.wait_log(10, "running '");
    common::wait_until(10, "the task to start", || lines(&out) == ["started"]);
    common::send_signal("TERM", &a.pid().to_string());
    let sa = a.wait_exit(20);
    let log_a = a.log();
    // The command exited 0 after the signal: still not a completed task.
    assert_eq!(sa.code(), Some(128 + 15), "{log_a}");
    assert!(log_a.contains("caught SIGTERM; forwarding it"), "{log_a}");
    assert!(log_a.contains("reported FAIL"), "{log_a}");
    assert_eq!(lines(&out), ["started", "term"]);
    // Free for takeover at once (not after the 20s ttl).
    assert_eq!(state(&s.conn().ok(&["TQ.LOCK", &n, "job-sig", "B", "1000"])).0, "acquired");
}

#[test]
fn unreachable_redis_is_retried_until_interrupted() {
    let dir = std::env::temp_dir().join(format!("tq-paired-{}-{}", std::process::id(), ns("u")));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let log = dir.join("a.log");
    // Port 1: nothing listens there (privileged, never a test server's).
    let mut a = Tq::spawn(1, &["paired", "--lock", "l", "--ttl", "1s", "--", "true"], &log);
    common::wait_until(10, "two failed attempts", || a.log().matches("cannot take lock 'l'").count() >= 2);
    assert!(a.try_wait().is_none(), "tq keeps retrying:\n{}", a.log());
    common::send_signal("INT", &a.pid().to_string());
    let sa = a.wait_exit(10);
    let text = a.log();
    assert_eq!(sa.code(), Some(128 + 2), "{text}");
    assert!(text.contains("retrying in") && text.contains("nothing ran"), "{text}");
    drop(a);
    let _ = std::fs::remove_dir_all(&dir);
}
