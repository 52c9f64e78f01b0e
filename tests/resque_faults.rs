//! tq-resque (`clients/node`) through the fault-injecting proxy
//! (`testkit/src/fault_proxy.rs`): two `Worker`s and a `MultiWorker` in one Node
//! process (`clients/node/support/fault_workers.js`) run 2,000 jobs while
//! the proxy, at random, applies TQ commands and loses their replies, drops
//! requests unsent and closes connections. Their job writes a ledger;
//! afterwards every job ran exactly once, each completion was counted once
//! (`stat:processed`), nothing failed and nothing is left in flight.
//! The proxy prints its seed first (shown with a failure); replay with
//! `TQ_FAULT_SEED=<seed> cargo test --test resque_faults`.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{ns, send_signal, Conn, Server};
use tq_testkit::fault_proxy::{FaultProxy, Faults};

const JOBS: usize = 2000;
const FAULTS: Faults = Faults { lose_reply: 0.10, drop_request: 0.02, close_after_reply: 0.01 };
const MIN_LOST: f64 = 0.05;

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/node")
}

fn ledger(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn stat(c: &mut Conn, n: &str, name: &str) -> i64 {
    c.string(&["GET", &format!("{n}:stat:{name}")]).map(|v| v.parse().expect("counter")).unwrap_or(0)
}

fn wait_exit(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Some(s) = child.try_wait().expect("wait") {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[test]
fn tq_resque_workers_run_every_job_once_while_replies_are_lost() {
    let dir = package_dir();
    let p = dir.join("node_modules/ioredis/package.json");
    assert!(p.exists(), "{} is missing: run `make test` (it runs `npm ci` in clients/node)", p.display());
    let s = Server::start();
    let n = ns("resque-faults");
    let args: Vec<String> = (0..JOBS).map(|i| format!("[{i}]")).collect();
    let mut c = s.conn();
    let mut p = redis::pipe();
    for a in &args {
        p.cmd("TQ.ENQUEUE").arg(&n).arg("q").arg("Job").arg(a).ignore();
    }
    p.query::<()>(&mut c.0).expect("enqueue the jobs");

    let proxy = FaultProxy::start(s.port, FAULTS);
    let path = s.dir.join("ledger");
    let log_path = s.dir.join("node.log");
    let log = File::create(&log_path).expect("log file");
    let mut child = Command::new("node")
        .arg("support/fault_workers.js")
        .arg(proxy.port.to_string())
        .arg(&n)
        .arg(&path)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("spawn node (Node.js 20 on PATH)");
    let node_log = || std::fs::read_to_string(&log_path).unwrap_or_default();

    let done = |c: &mut Conn| {
        ledger(&path).len() >= JOBS && c.int(&["LLEN", &format!("{n}:queue:q")]) == 0 && c.live_inflight(&n).is_empty()
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(&mut c) {
        if let Some(st) = child.try_wait().expect("wait") {
            panic!("the workers exited early ({st}):\n{}", node_log());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "after 120 s: {} of {JOBS} runs, queue {}, in flight {:?}, proxy {:?}\n{}",
                ledger(&path).len(),
                c.int(&["LLEN", &format!("{n}:queue:q")]),
                c.live_inflight(&n),
                proxy.counts(),
                node_log()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    send_signal("TERM", &child.id().to_string());
    let status = wait_exit(&mut child, 40);
    assert!(matches!(status, Some(st) if st.success()), "the workers end cleanly ({status:?}):\n{}", node_log());

    // Each job ran exactly once, and was completed once.
    let runs = ledger(&path);
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for r in &runs {
        *count.entry(r.as_str()).or_default() += 1;
    }
    let missing: Vec<&String> = args.iter().filter(|a| !count.contains_key(a.as_str())).collect();
    assert!(missing.is_empty(), "jobs never run: {missing:?}");
    let twice: Vec<(&&str, &usize)> = count.iter().filter(|(_, k)| **k > 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert_eq!(runs.len(), JOBS, "each job ran once");
    assert_eq!(stat(&mut c, &n, "processed"), JOBS as i64, "each job counted once");
    assert_eq!(stat(&mut c, &n, "failed"), 0, "no failures: {:?}", c.lrange(&format!("{n}:failed")));
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 0, "queue drained");
    assert_eq!(c.live_inflight(&n), Vec::<String>::new(), "nothing left in flight");
    let counts = proxy.counts();
    eprintln!("fault proxy (seed {}): {counts:?}, {:.1}% of replies lost", proxy.seed, counts.lost_ratio() * 100.0);
    assert!(
        counts.lost_ratio() >= MIN_LOST,
        "only {:.1}% of the replies were lost: {counts:?}",
        counts.lost_ratio() * 100.0
    );
    assert!(counts.requests_dropped > 0, "some requests were dropped: {counts:?}");
}
