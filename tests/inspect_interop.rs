//! Parity of tq's inspection and management commands with the pinned
//! node-resque's Queue methods. Each test starts a redis-server with the
//! module and runs one part of `tests/interop/inspect_parity.js` against it,
//! as `PART=<part> node tests/interop/inspect_parity.js <port> <namespace>`;
//! the script says what each part compares and which differences are
//! intended. The runner helpers are copied from `tests/interop.rs`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ns, Server};

/// Per-script limit; the script itself gives up after 100 s.
const TIMEOUT: Duration = Duration::from_secs(150);
const NODE_RESQUE_VERSION: &str = "9.7.1";
const SCRIPT: &str = "inspect_parity.js";

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

/// Runs one part of the script against a fresh server; panics with its
/// output when it fails or runs too long. Returns its stdout.
fn part(name: &str) -> String {
    check_prerequisites();
    let server = Server::start();
    let namespace = ns(&format!("parity-{name}"));
    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(interop_dir().join(SCRIPT))
        .arg(server.port.to_string())
        .arg(&namespace)
        .current_dir(interop_dir())
        // failure records carry `Date.prototype.toString()` text; tq writes UTC.
        .env("TZ", "UTC")
        .env("PART", name)
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
    if !matches!(status, Some(s) if s.success()) {
        let what = match status {
            None => format!("timed out after {TIMEOUT:?} (killed)"),
            Some(s) => format!("failed ({s})"),
        };
        panic!(
            "PART={name} node tests/interop/{SCRIPT} {} {namespace} {what} after {took:.1?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            server.port
        );
    }
    let mut c = server.conn();
    assert_eq!(c.string(&["PING"]).as_deref(), Some("PONG"), "server still answers after PART={name}");
    println!("PART={name}: ok in {took:.1?}\n{stdout}{stderr}");
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
