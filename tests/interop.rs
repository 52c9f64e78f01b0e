//! node-resque interoperability: each test starts a redis-server with the
//! module and runs one node script from `tests/interop/` against it, as
//! `node tests/interop/<script>.js <port> <namespace>`. The scripts use the
//! pinned node-resque (see `tests/interop/package.json`), which `make test`
//! installs (`scripts/deps.sh --node`).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ns, Server};

/// Per-script limit; the scripts themselves give up after 100 s.
const TIMEOUT: Duration = Duration::from_secs(150);
const NODE_RESQUE_VERSION: &str = "9.7.1";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

/// Fails with instructions when node or the pinned packages are missing.
fn check_prerequisites() {
    let dir = interop_dir();
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("`node` is not on PATH: the interop tests need Node.js (v20)"),
    }
    for pkg in ["node-resque", "ioredis"] {
        let p = dir.join("node_modules").join(pkg).join("package.json");
        assert!(
            p.exists(),
            "{} is missing: run `make test` (it runs `scripts/deps.sh --node`, i.e. `npm ci` in tests/interop)",
            p.display()
        );
    }
    let manifest = std::fs::read_to_string(dir.join("node_modules/node-resque/package.json")).expect("read manifest");
    let manifest: serde_json::Value = serde_json::from_str(&manifest).expect("node-resque package.json");
    assert_eq!(
        manifest["version"].as_str(),
        Some(NODE_RESQUE_VERSION),
        "tests/interop/node_modules holds another node-resque than the pinned {NODE_RESQUE_VERSION}: \
         `rm -rf tests/interop/node_modules` and run `make test`"
    );
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Runs one scenario script against a fresh server; panics with its output
/// when it fails or runs too long.
fn scenario(script: &str) {
    check_prerequisites();
    let server = Server::start();
    let namespace = ns(script.trim_end_matches(".js"));
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(interop_dir().join(script))
        .arg(server.port.to_string())
        .arg(&namespace)
        .current_dir(interop_dir())
        // failure records carry `Date.prototype.toString()` text; tq writes UTC.
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            // Only the child we started, by its PID.
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let took = started.elapsed();
    let ok = matches!(status, Some(s) if s.success());
    if !ok {
        let what = match status {
            None => format!("timed out after {TIMEOUT:?} (killed)"),
            Some(s) => format!("failed ({s})"),
        };
        panic!(
            "node tests/interop/{script} {} {namespace} {what} after {took:.1?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            server.port
        );
    }
    // The server survived the scenario.
    let mut c = server.conn();
    assert_eq!(c.string(&["PING"]).as_deref(), Some("PONG"), "server still answers after {script}");
    println!("{script}: ok in {took:.1?}\n{stdout}{stderr}");
}

/// TQ.ENQUEUE / TQ.ENQUEUEAT payload bytes equal node-resque's for a large
/// corpus, random doubles, random values and random strings.
#[test]
fn payload_bytes_match_node_resque() {
    scenario("payload_bytes.js");
}

/// Numbers exactly halfway between two shortest decimal spellings (e.g.
/// 1285521.99072265625): JavaScript prints the even one, tq the upper one.
#[test]
fn payload_number_ties_match_node_resque() {
    scenario("payload_number_ties.js");
}

/// A node-resque Worker runs TQ.ENQUEUE jobs and TQ.ENQUEUEAT + TQ.PROMOTE jobs.
#[test]
fn node_resque_worker_runs_tq_jobs() {
    scenario("worker_runs_tq_jobs.js");
}

/// TQ.POP / TQ.ACK consume jobs written by node-resque's queue.enqueue.
#[test]
fn tq_pops_node_resque_jobs() {
    scenario("tq_pops_node_jobs.js");
}

/// TQ.PROMOTE promotes node-resque's enqueueAt jobs and leaves future ones.
#[test]
fn tq_promotes_node_resque_delayed_jobs() {
    scenario("tq_promotes_node_delayed.js");
}

/// node-resque's Scheduler promotes TQ.ENQUEUEAT jobs and cleans up after them.
#[test]
fn node_resque_scheduler_promotes_tq_delayed_jobs() {
    scenario("scheduler_promotes_tq_delayed.js");
}

/// node-resque's Scheduler and TQ.PROMOTE on the same delayed jobs: the
/// scheduler's WATCH sees tq's writes; every job promoted exactly once.
#[test]
fn scheduler_and_tq_promote_race() {
    scenario("promoters_race.js");
}

/// node-resque's Queue API on data written by tq.
#[test]
fn node_resque_queue_api_reads_tq_data() {
    scenario("queue_api_on_tq_data.js");
}

/// A failure record for a job whose payload is valid but not in
/// JSON.stringify form: node-resque's retryAndRemoveFailed must find it.
#[test]
fn node_resque_retries_tq_failure_of_non_canonical_payload() {
    scenario("failed_noncanonical_payload.js");
}

/// node-resque's cleanOldWorkers / forceCleanWorker on tq in-flight jobs.
#[test]
fn node_resque_cleans_tq_workers() {
    scenario("clean_workers.js");
}

/// node-resque workers and TQ.POP loops on one queue: every job exactly once.
#[test]
fn mixed_workers_run_every_job_exactly_once() {
    scenario("mixed_workers.js");
}

/// node-resque's QueueLock/JobLock plugins and TQ's UNIQUE/JOBLOCK options
/// block each other on the same keys.
#[test]
fn plugin_locks_interoperate() {
    scenario("plugin_locks.js");
}
