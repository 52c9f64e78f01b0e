//! Parity of tq's inspection and management commands with the pinned
//! node-resque's Queue methods. Each test starts a redis-server with the
//! module and runs one part of `tests/interop/inspect_parity.js` against it,
//! as `PART=<part> node tests/interop/inspect_parity.js <port> <namespace>`;
//! the script says what each part compares and which differences are
//! intended.

mod common;

use common::interop::run_script;
use common::{ns, Server};

const SCRIPT: &str = "inspect_parity.js";

/// Runs one part of the script against a fresh server; panics with its
/// output when it fails or runs too long. Returns its stdout.
fn part(name: &str) -> String {
    let server = Server::start();
    let namespace = ns(&format!("parity-{name}"));
    let stdout = run_script(&server, &namespace, SCRIPT, &[("PART", name.to_string())]);
    let mut c = server.conn();
    assert_eq!(c.string(&["PING"]).as_deref(), Some("PONG"), "server still answers after PART={name}");
    stdout
}

/// node-resque writes (enqueue, enqueueAt/In, a failing Worker, a Worker
/// stuck in a JobLock job, QueueLock enqueues, a Scheduler as leader; tq
/// workers beside them): scheduledAt, timestamps, delayedAt, allDelayed,
/// stats, workers, allWorkingOn, workingOn, failedCount, failed, locks,
/// length, queued and ActionHero's details equal the TQ readers' replies.
#[test]
fn readers_match_node_resque_queue_methods() {
    let out = part("readers");
    assert!(out.contains("part readers"), "{out}");
}

/// TQ.DEL / TQ.DELDELAYED / TQ.DELQUEUE / TQ.DELBYCLASS vs del / delDelayed /
/// delQueue / delByFunction on identical copies: the same keyspace (bar
/// node-resque's stale schedule entry after delDelayed), the same replies
/// (bar delQueue's, and delByFunction's count with a range).
#[test]
fn queue_writers_match_node_resque() {
    let out = part("queues");
    assert!(out.contains("part queues: 9 pairs of copies compared"), "{out}");
}

/// TQ.FAILREMOVE / TQ.FAILRETRY (by id, class, queue and exception, and
/// retry-all) vs removeFailed / retryAndRemoveFailed: the same keyspace.
#[test]
fn failed_writers_match_node_resque() {
    let out = part("failed");
    assert!(out.contains("part failed: 6 pairs of copies compared"), "{out}");
}

/// TQ.FORCECLEAN / TQ.CLEANWORKERS vs forceCleanWorker / cleanOldWorkers on
/// a stuck node-resque worker, a tq worker and an idle worker: the same
/// failure records; the keyspaces differ only by node-resque's known bugs;
/// node-resque's retryStuckJobs takes the jobs tq cleaned.
#[test]
fn worker_cleaners_match_node_resque() {
    let out = part("workers");
    assert!(out.contains("part workers: 4 pairs of copies compared"), "{out}");
}

/// After node-resque's delDelayed empties a bucket (node-resque leaves it in
/// `delayed_queue_schedule`), TQ.TIMESTAMPS, TQ.ALLDELAYED and TQ.DETAILS
/// still report that time, which node-resque's timestamps()/allDelayed() no
/// longer list.
#[test]
fn timestamps_skip_buckets_emptied_by_node_resque() {
    part("stale-bucket");
}

/// A job force-cleaned from a node-resque worker and retried by TQ.FAILRETRY
/// is enqueued with the member order of node-resque's Lua (cjson) in-flight
/// record (`{"class","args","queue"}`), where node-resque's retryStuckJobs
/// enqueues the job's own encoding; queue.del and TQ.DEL miss it.
#[test]
fn failretry_of_a_force_cleaned_node_resque_job_enqueues_its_encoding() {
    part("retry-stuck-bytes");
}
