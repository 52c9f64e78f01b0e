//! Lost replies: clients talk to the server through a fault-injecting proxy
//! (`testkit/src/fault_proxy.rs`) that, at random, applies a TQ command and drops its
//! reply, or drops the command unsent, and closes the connection. `tq work`,
//! ioredis with its default options and redis-py with its default retry each
//! run 2,000 jobs while at least 5% of the replies are lost. Their handlers
//! write a ledger; afterwards every job ran, each completion was counted
//! once (`stat:processed` never more than the runs) and nothing is left in
//! flight. Plus the exact case of the issue: the reply of the
//! `TQ.POP ... ACK` that completed A and took B is lost; the client's resend
//! must answer with B (which then runs), not complete B unseen and take C.
//!
//! The node and python scripts live in `tests/interop/` (ioredis pinned in
//! its package.json, redis-py pinned and installed in `tests/interop/py` by
//! `scripts/deps.sh --node`). Replay a run's faults with the seed it prints:
//! `TQ_FAULT_SEED=<seed> cargo test --test lost_replies`.

mod common;

use tq_testkit::fault_proxy;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ns, send_signal, wait_until, write_script, Conn, Server, Tq};
use fault_proxy::{command_with, FaultProxy, Faults};

const JOBS: usize = 2000;
/// About 10% of the replies lost, 2% of the requests dropped unsent, 1% of
/// the connections closed after a reply.
const RANDOM: Faults = Faults { lose_reply: 0.10, drop_request: 0.02, close_after_reply: 0.01 };
const MIN_LOST: f64 = 0.05;

fn enqueue_jobs(c: &mut Conn, n: &str, args: &[String]) {
    let mut p = redis::pipe();
    for a in args {
        p.cmd("TQ.ENQUEUE").arg(n).arg("q").arg("Job").arg(a).ignore();
    }
    p.query::<()>(&mut c.0).expect("enqueue the jobs");
}

fn numbered(jobs: usize) -> Vec<String> {
    (0..jobs).map(|i| format!("[{i}]")).collect()
}

fn ledger(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn stat(c: &mut Conn, n: &str, name: &str) -> i64 {
    c.string(&["GET", &format!("{n}:stat:{name}")]).map(|v| v.parse().expect("counter")).unwrap_or(0)
}

/// Every job of `args` is in the ledger, so it ran, and the queue is drained.
fn all_ran(c: &mut Conn, n: &str, args: &[String], path: &Path) -> bool {
    let ran: BTreeSet<String> = ledger(path).into_iter().collect();
    args.iter().all(|a| ran.contains(a))
        && c.int(&["LLEN", &format!("{n}:queue:q")]) == 0
        && c.live_inflight(n).is_empty()
}

/// The ledger properties, checked on the server directly (not
/// through the proxy).
fn check(c: &mut Conn, n: &str, args: &[String], path: &Path, proxy: &FaultProxy, min_lost: f64) {
    let runs = ledger(path);
    let ran: BTreeSet<&String> = runs.iter().collect();
    let missing: Vec<&String> = args.iter().filter(|a| !ran.contains(a)).collect();
    assert!(missing.is_empty(), "jobs never run: {missing:?}");
    let processed = stat(c, n, "processed");
    assert!(
        processed <= runs.len() as i64,
        "stat:processed {processed} > {} runs: a job was completed without running",
        runs.len()
    );
    assert_eq!(processed, args.len() as i64, "each job completed once");
    assert_eq!(runs.len(), args.len(), "each job ran once (no lease ran out)");
    assert_eq!(stat(c, n, "failed"), 0, "no failures: {:?}", c.lrange(&format!("{n}:failed")));
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0, "queue drained");
    assert_eq!(c.live_inflight(n), Vec::<String>::new(), "nothing left in flight");
    let counts = proxy.counts();
    eprintln!("fault proxy (seed {}): {counts:?}, {:.1}% of replies lost", proxy.seed, counts.lost_ratio() * 100.0);
    assert!(
        counts.lost_ratio() >= min_lost,
        "only {:.1}% of the replies were lost: {counts:?}",
        counts.lost_ratio() * 100.0
    );
}

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Runs a client script to its end; panics with its output when it fails
/// or runs longer than `secs`.
fn run(cmd: &mut Command, what: &str, secs: u64) -> String {
    let mut child = cmd
        .current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = r.read_to_string(&mut s);
            s
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout")));
    let err = drain(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (out, err) = (out.join().unwrap_or_default(), err.join().unwrap_or_default());
    match status {
        Some(s) if s.success() => out,
        Some(s) => panic!("{what} failed ({s}):\n{out}\n{err}"),
        None => panic!("{what} still ran after {secs}s:\n{out}\n{err}"),
    }
}

#[derive(Clone, Copy, Debug)]
enum Stock {
    Ioredis,
    RedisPy,
}

/// `tests/interop/lost_replies.{js,py}` through `proxy`, `workers` loops.
fn run_stock(kind: Stock, proxy: &FaultProxy, n: &str, ledger: &Path, workers: usize) -> String {
    let dir = interop_dir();
    let mut cmd = match kind {
        Stock::Ioredis => {
            let p = dir.join("node_modules/ioredis/package.json");
            assert!(p.exists(), "{} is missing: run `scripts/deps.sh --node` (or `make test`)", p.display());
            let mut c = Command::new("node");
            c.arg("lost_replies.js");
            c
        }
        Stock::RedisPy => {
            let p = dir.join("py/redis/__init__.py");
            assert!(p.exists(), "{} is missing: run `scripts/deps.sh --node` (or `make test`)", p.display());
            let mut c = Command::new("python3");
            c.arg("lost_replies.py");
            c
        }
    };
    cmd.arg(proxy.port.to_string()).arg(n).arg(ledger).arg(workers.to_string());
    run(&mut cmd, &format!("{kind:?} workers"), 100)
}

fn stock_under_random_faults(kind: Stock) {
    let s = Server::start();
    let n = ns(&format!("lost-{kind:?}"));
    let args = numbered(JOBS);
    enqueue_jobs(&mut s.conn(), &n, &args);
    let proxy = FaultProxy::start(s.port, RANDOM);
    let path = s.dir.join("ledger");
    run_stock(kind, &proxy, &n, &path, 2);
    check(&mut s.conn(), &n, &args, &path, &proxy, MIN_LOST);
}

#[test]
fn ioredis_with_default_options_runs_every_job_while_replies_are_lost() {
    stock_under_random_faults(Stock::Ioredis);
}

#[test]
fn redis_py_with_default_retry_runs_every_job_while_replies_are_lost() {
    stock_under_random_faults(Stock::RedisPy);
}

/// The case: the reply of `TQ.POP <ns> w q ACK <A>` (A completed, B
/// taken) is lost; the client resends the same command. Before delivery ids
/// the resend completed B, which never ran, and took C.
fn stock_resends_a_lost_ack_pop(kind: Stock) {
    let s = Server::start();
    let n = ns(&format!("lost-ackpop-{kind:?}"));
    let args: Vec<String> = ["[\"A\"]", "[\"B\"]", "[\"C\"]"].map(String::from).to_vec();
    enqueue_jobs(&mut s.conn(), &n, &args);
    let proxy = FaultProxy::start(s.port, Faults::default());
    proxy.lose_reply_of(command_with("TQ.POP", "ACK"));
    let path = s.dir.join("ledger");
    run_stock(kind, &proxy, &n, &path, 1);
    assert_eq!(proxy.counts().replies_lost, 1, "the reply was lost once");
    assert_eq!(ledger(&path), args, "B ran, after A and before C");
    check(&mut s.conn(), &n, &args, &path, &proxy, 0.0);
}

#[test]
fn ioredis_resending_a_lost_ack_pop_runs_the_job_it_took() {
    stock_resends_a_lost_ack_pop(Stock::Ioredis);
}

#[test]
fn redis_py_resending_a_lost_ack_pop_runs_the_job_it_took() {
    stock_resends_a_lost_ack_pop(Stock::RedisPy);
}

#[test]
fn tq_work_runs_every_job_while_replies_are_lost() {
    let s = Server::start();
    let n = ns("lost-tq-work");
    let args = numbered(JOBS);
    enqueue_jobs(&mut s.conn(), &n, &args);
    let path = s.dir.join("ledger");
    let h = s.dir.join("handlers");
    // One write per line (O_APPEND): concurrent handlers do not interleave.
    write_script(&h, "Job", &format!("a=$(cat); printf '%s\\n' \"$a\" >> '{}'", path.display()));
    let proxy = FaultProxy::start(s.port, RANDOM);
    let hs = h.to_str().expect("utf8 path");
    let mut tq = Tq::spawn(
        proxy.port,
        &["--ns", &n, "work", "--handlers", hs, "--queues", "q", "--concurrency", "4"],
        &s.dir.join("tq.log"),
    );
    let mut c = s.conn();
    wait_until(90, "every job run and reported", || all_ran(&mut c, &n, &args, &path));
    send_signal("TERM", &tq.pid().to_string());
    let status = tq.wait_exit(30);
    assert!(status.success(), "tq work exits cleanly: {status}\n{}", tq.log());
    check(&mut c, &n, &args, &path, &proxy, MIN_LOST);
}
