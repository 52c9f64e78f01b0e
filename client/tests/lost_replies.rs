//! Lost replies under the Rust library: a `Worker` runs 2,000 jobs through
//! the fault-injecting proxy of `testkit/src/fault_proxy.rs` (it applies a TQ command
//! and drops its reply, or drops the command unsent, and closes the
//! connection) while at least 5% of the replies are lost. The handlers write
//! a ledger; afterwards every job ran, each completion was counted once
//! (`stat:processed` never more than the runs) and nothing is left in flight.
//! Replay a run's faults with the seed it prints:
//! `TQ_FAULT_SEED=<seed> cargo test -p tq-client --test lost_replies`.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tq_client::worker::{Summary, Worker, WorkerOptions};
use tq_testkit::fault_proxy::{FaultProxy, Faults};
use tq_testkit::{ns, wait_until, Conn, Opts, Server};

const JOBS: usize = 2000;
/// About 10% of the replies lost, 2% of the requests dropped unsent, 1% of
/// the connections closed after a reply.
const RANDOM: Faults = Faults { lose_reply: 0.10, drop_request: 0.02, close_after_reply: 0.01 };
const MIN_LOST: f64 = 0.05;

/// The 2,000-job runs take turns: side by side on a small machine, each
/// slows the other several times over.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Workers whose in-flight entry holds a job (not a tombstone of one that ended).
fn live_inflight(c: &mut Conn, n: &str) -> Vec<String> {
    let prefix = format!("{n}:tq:inflight:");
    let keys = c.strings(&["KEYS", &format!("{prefix}*")]);
    keys.into_iter()
        .filter(|k| {
            let raw = match c.q(&["GET", k]) {
                Ok(tq_testkit::Value::BulkString(b)) => b,
                _ => Vec::new(),
            };
            tq_core::records::InFlight::decode(&raw).is_none_or(|e| e.live())
        })
        .map(|k| k.strip_prefix(&prefix).unwrap_or(&k).to_string())
        .collect()
}

/// Runs `concurrency` slots holding `prefetch` jobs each through a faulty
/// proxy until every job ran and was reported; checks the ledger.
fn run_under_faults(concurrency: usize, prefetch: usize) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let s = Server::start_with(Opts::timer());
    let n = ns(&format!("lost-lib-{concurrency}-{prefetch}"));
    let mut raw = s.conn();
    let args: Vec<String> = (0..JOBS).map(|i| format!("[{i}]")).collect();
    let mut p = redis::pipe();
    for a in &args {
        p.cmd("TQ.ENQUEUE").arg(&n).arg("q").arg("Job").arg(a).ignore();
    }
    p.query::<()>(&mut raw.0).expect("enqueue the jobs");

    let proxy = FaultProxy::start(s.port, RANDOM);
    let (w, ledger) = ledger_worker(&proxy.url(), &n, |o| {
        o.concurrency = concurrency;
        o.prefetch = prefetch;
        o.lease = Some(Duration::from_secs(10));
    });
    let stop = w.stop_handle();
    let t = std::thread::spawn(move || w.run().expect("the worker runs"));
    let wanted: BTreeSet<&String> = args.iter().collect();
    wait_until(90, "every job run and reported", || {
        let ran: BTreeSet<String> = ledger.lock().expect("lock").iter().map(|r| r.0.clone()).collect();
        wanted.iter().all(|a| ran.contains(*a))
            && raw.int(&["LLEN", &format!("{n}:queue:q")]) == 0
            && live_inflight(&mut raw, &n).is_empty()
    });
    stop.stop();
    let summary = t.join().expect("join");

    let runs = ledger.lock().expect("lock").clone();
    let processed = raw.stat(&n, "processed");
    assert!(processed <= runs.len() as i64, "stat:processed {processed} > {} runs", runs.len());
    assert_eq!(processed, JOBS as i64, "each job completed once");
    assert_eq!(runs.len(), JOBS, "each job ran once");
    assert_eq!(summary, Summary { done: JOBS as u64, failed: 0, retried: 0, requeued: 0, unreported: 0 });
    assert_eq!(raw.stat(&n, "failed"), 0);
    assert_eq!(raw.int(&["LLEN", &format!("{n}:queue:q")]), 0);
    assert_eq!(live_inflight(&mut raw, &n), Vec::<String>::new(), "nothing left in flight");
    let counts = proxy.counts();
    let late = runs.iter().filter(|r| r.1 > 1).count();
    eprintln!(
        "fault proxy (seed {}): {counts:?}, {:.1}% of replies lost; {late} jobs ran after a lease ran out",
        proxy.seed,
        counts.lost_ratio() * 100.0
    );
    assert!(counts.lost_ratio() >= MIN_LOST, "only {:.1}% of replies lost: {counts:?}", counts.lost_ratio() * 100.0);
}

#[test]
fn worker_runs_every_job_while_replies_are_lost() {
    run_under_faults(4, 1);
}

/// Prefetch: ACKs of a run of quick jobs go in one pipeline, which a cut
/// can split anywhere.
#[test]
fn prefetching_worker_runs_every_job_while_replies_are_lost() {
    run_under_faults(4, 2);
}

/// A prefetching slot's take under its second name loses its reply: that
/// name holds a job it never saw. The slot must pop under that name again
/// (which hands the job out again) rather than leave the job to its lease.
/// The slot used to go on with its first name only and, once the queue was
/// empty, its `TQ.BPOP` under the first name came up empty before the
/// second name was tried, so job [1] ran only after its lease ran out, on a
/// second delivery. A name whose take lost its reply now pops first.
#[test]
fn prefetching_worker_runs_the_job_of_a_take_whose_reply_was_lost() {
    let s = Server::start_with(Opts::timer());
    let n = ns("lost-lib-first-take");
    let mut raw = s.conn();
    for i in 0..4 {
        raw.ok(&["TQ.ENQUEUE", &n, "q", "Job", &format!("[{i}]")]);
    }
    let proxy = FaultProxy::start(s.port, Faults::default());
    // The second name's take (a plain TQ.POP: the first name holds a job).
    proxy.lose_reply_of(|args| {
        args.first().is_some_and(|a| a.eq_ignore_ascii_case(b"TQ.POP"))
            && !args.iter().any(|a| a.eq_ignore_ascii_case(b"ACK"))
    });
    let (w, ledger) = ledger_worker(&proxy.url(), &n, |o| {
        o.prefetch = 2;
        o.lease = Some(Duration::from_secs(3));
    });
    let stop = w.stop_handle();
    let t = std::thread::spawn(move || w.run().expect("the worker runs"));
    wait_until(30, "every job run", || ledger.lock().expect("lock").len() >= 4);
    stop.stop();
    t.join().expect("join");
    assert_eq!(proxy.counts().replies_lost, 1);
    let mut runs = ledger.lock().expect("lock").clone();
    runs.sort();
    assert_eq!(
        runs,
        (0..4).map(|i| (format!("[{i}]"), 1)).collect::<Vec<_>>(),
        "each job ran once, on its first delivery"
    );
}

/// A worker on queue `q` whose `Job` handler writes (args, delivery count)
/// to the ledger it returns; `tweak` sets its options.
#[allow(clippy::type_complexity)]
fn ledger_worker(
    url: &str,
    n: &str,
    tweak: impl FnOnce(&mut WorkerOptions),
) -> (Worker, Arc<Mutex<Vec<(String, u32)>>>) {
    let mut o = WorkerOptions::new(url, n, &["q"]);
    o.name = format!("lib:{}", std::process::id());
    o.poll = Duration::from_millis(200);
    tweak(&mut o);
    let mut w = Worker::new(o);
    let ledger: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let l = ledger.clone();
    w.handle("Job", move |job| {
        l.lock().expect("lock").push((job.args_json.clone(), job.deliveries));
        Ok(())
    });
    (w, ledger)
}
