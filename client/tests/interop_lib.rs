//! The Rust library `Worker` and node-resque workers on the same queues at
//! the same time (the scenario `tests/interop/mixed_tq_work.js` of the
//! workspace, which `tq work` also runs): thousands of jobs, every one run
//! exactly once. Needs node and the pinned node-resque (`make test`
//! installs them).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tq_client::worker::{Worker, WorkerOptions};
use tq_testkit::{ns, Opts, Server};

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/interop")
}

#[test]
fn library_worker_and_node_resque_workers_share_queues() {
    const TOTAL: usize = 3000;
    assert!(
        interop_dir().join("node_modules/node-resque/package.json").exists(),
        "node-resque is missing under tests/interop: run `make test` (npm ci there)"
    );
    let s = Server::start_with(Opts::timer());
    let n = ns("mixed-lib");
    let ledger_path = s.dir.join("ledger");
    let ledger = Arc::new(Mutex::new(
        std::fs::OpenOptions::new().create(true).append(true).open(&ledger_path).expect("open the ledger"),
    ));
    let mut o = WorkerOptions::new(&s.url(), &n, &["mixed-a", "mixed-b"]);
    o.concurrency = 4;
    o.poll = Duration::from_millis(200);
    let mut w = Worker::new(o);
    let l = ledger.clone();
    w.handle("Track", move |job| {
        // One write per line (O_APPEND): lines from node and from here never mix.
        let line = format!("tq {}\n", job.args_json);
        l.lock().expect("lock").write_all(line.as_bytes())?;
        Ok(())
    });
    let stop = w.stop_handle();
    let worker = std::thread::spawn(move || w.run().expect("the worker runs"));

    let started = Instant::now();
    let mut child = Command::new("node")
        .arg(interop_dir().join("mixed_tq_work.js"))
        .arg(s.port.to_string())
        .arg(&n)
        .current_dir(interop_dir())
        .env("LEDGER", &ledger_path)
        .env("TOTAL", TOTAL.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn node (the interop tests need Node.js)");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let o = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let e = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break Some(st);
        }
        if started.elapsed() > Duration::from_secs(150) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (o.join().unwrap_or_default(), e.join().unwrap_or_default());
    stop.stop();
    let summary = worker.join().expect("join the worker");
    assert!(matches!(status, Some(s) if s.success()), "node failed ({status:?})\n{stdout}\n{stderr}");
    println!("{stdout}{stderr}library worker: {summary:?}");
    assert!(summary.done > 0 && summary.failed == 0 && summary.unreported == 0, "{summary:?}");
    let tq_lines =
        std::fs::read_to_string(&ledger_path).expect("ledger").lines().filter(|l| l.starts_with("tq ")).count();
    assert_eq!(summary.done as usize, tq_lines, "every job the worker acknowledged is in the ledger once");
}
