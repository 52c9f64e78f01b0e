//! node-resque interoperability: each test starts a redis-server with the
//! module and runs one node script from `tests/interop/` against it, as
//! `node tests/interop/<script>.js <port> <namespace>`. The scripts use the
//! pinned node-resque (see `tests/interop/package.json`), which `make test`
//! installs (`scripts/deps.sh --node`).

mod common;

use std::path::Path;

use common::interop::run_script;
use common::{ns, Server};

/// Runs one scenario script against a fresh server; panics with its output
/// when it fails or runs too long.
fn scenario(script: &str) {
    let server = Server::start();
    run_script(&server, &ns(script.trim_end_matches(".js")), script, &[]);
    // The server survived the scenario.
    let mut c = server.conn();
    assert_eq!(c.string(&["PING"]).as_deref(), Some("PONG"), "server still answers after {script}");
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

// ---------------------------------------------------------------------------
// `tq work`, `tq enqueue` and node-resque on the same data. The Rust side
// runs the tq processes; the script runs node-resque and checks the ledger.

/// `tq --ns <ns> work --handlers <dir> <args>`, logging into the server's directory.
fn tq_work(server: &Server, namespace: &str, handlers: &Path, args: &[&str]) -> common::Tq {
    let mut all = vec!["--ns", namespace, "work", "--handlers", handlers.to_str().expect("utf8 path")];
    all.extend_from_slice(args);
    common::Tq::spawn(server.port, &all, &server.dir.join("tq-work.log"))
}

/// SIGTERM: `tq work` must stop cleanly (exit 0).
fn stop_tq(mut tq: common::Tq) {
    common::send_signal("TERM", &tq.pid().to_string());
    let status = tq.wait_exit(60);
    assert_eq!(status.code(), Some(0), "tq work exits 0 after SIGTERM; log:\n{}", tq.log());
}

/// node-resque's Queue (enqueue, enqueueIn) → `tq work` runs the jobs with
/// the exact args; its failure record works with node-resque's failed API.
#[test]
fn tq_work_runs_node_resque_jobs() {
    let server = Server::start_with(common::Opts::timer());
    let namespace = ns("tq_work_runs_node_jobs");
    let handlers = server.dir.join("handlers");
    let ledger = server.dir.join("ledger");
    let line = "\"$TQ_CLASS $TQ_QUEUE $TQ_WORKER $TQ_DELIVERIES $TQ_NS $(cat)\"";
    common::write_script(&handlers, "Add", &format!("printf '%s\\n' {line} >> '{}'", ledger.display()));
    common::write_script(&handlers, "Fail", "printf 'bad input: %s\\n' \"$(cat)\" >&2; exit 4");
    let tq =
        tq_work(&server, &namespace, &handlers, &["--queues", "high,low", "--concurrency", "2", "--name", "interop:1"]);
    run_script(
        &server,
        &namespace,
        "tq_work_runs_node_jobs.js",
        &[("LEDGER", ledger.display().to_string()), ("TQ_NAME", "interop:1".to_string())],
    );
    stop_tq(tq);
}

/// `tq enqueue` (now, --in, --at) and TQ.ENQUEUE → a node-resque MultiWorker
/// runs every job once; the module's timer promotes the delayed ones.
#[test]
fn node_resque_runs_tq_enqueue_jobs() {
    let server = Server::start_with(common::Opts::timer());
    let namespace = ns("tq_enqueue_node_worker");
    run_script(&server, &namespace, "tq_enqueue_node_worker.js", &[("TQ_BIN", common::tq_bin().display().to_string())]);
}

/// `tq work` (4 slots) and node-resque workers on the same two queues at
/// the same time, 3000 jobs from both kinds of client: each runs once.
#[test]
fn tq_work_and_node_resque_workers_share_queues() {
    let server = Server::start_with(common::Opts::timer());
    let namespace = ns("mixed_tq_work");
    let handlers = server.dir.join("handlers");
    let ledger = server.dir.join("ledger");
    common::write_script(&handlers, "Track", &format!("printf 'tq %s\\n' \"$(cat)\" >> '{}'", ledger.display()));
    let tq = tq_work(&server, &namespace, &handlers, &["--queues", "mixed-a,mixed-b", "--concurrency", "4"]);
    run_script(
        &server,
        &namespace,
        "mixed_tq_work.js",
        &[("LEDGER", ledger.display().to_string()), ("TOTAL", "3000".to_string())],
    );
    stop_tq(tq);
    // Nothing ran after the script's check, nothing twice.
    let text = std::fs::read_to_string(&ledger).expect("ledger");
    let mut ids = std::collections::HashSet::new();
    for l in text.lines() {
        let json = l.split_once(' ').expect("runner and args").1;
        let v: serde_json::Value = serde_json::from_str(json).expect("args JSON");
        assert!(ids.insert(v[0]["id"].as_str().expect("id").to_string()), "ran twice: {l}");
    }
    assert_eq!(ids.len(), 3000);
}
