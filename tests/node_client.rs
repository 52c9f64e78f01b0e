//! The Node package in `clients/node/` (tq-resque): its own tests, run with
//! Node's test runner (`node --test`), each file starting a redis-server with
//! the module (`target/debug/libtq.so`, or `$TQ_MODULE`) on a free loopback
//! port. `make test` installs the pinned packages (`scripts/deps.sh --node`
//! runs `npm ci` in `clients/node`).

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(600);

fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/node")
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

#[test]
fn node_package_tests_pass() {
    let dir = package_dir();
    for pkg in ["ioredis", "node-resque"] {
        let p = dir.join("node_modules").join(pkg).join("package.json");
        assert!(p.exists(), "{} is missing: run `make test` (it runs `npm ci` in clients/node)", p.display());
    }
    let module = std::env::var_os("TQ_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/libtq.so"));
    assert!(module.exists(), "{} is missing: run `cargo build --workspace`", module.display());
    let started = Instant::now();
    let mut child = Command::new("node")
        // --test-force-exit: a file whose failed test left handles open ends anyway.
        .args(["--test", "--test-concurrency=1", "--test-force-exit", "test/"])
        .current_dir(&dir)
        .env("TQ_MODULE", &module)
        // The server of the matrix this run is on (TQ_SERVER).
        .env("TQ_REDIS_SERVER", tq_testkit::redis_server_bin())
        // failure records carry `Date.prototype.toString()` text; tq writes UTC.
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that a timeout stops the test files and
        // the redis-servers they started, not only the runner.
        .process_group(0)
        .spawn()
        .expect("spawn node (the Node tests need Node.js 20 on PATH)");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    assert!(
        matches!(status, Some(s) if s.success()),
        "node --test clients/node/test/ {} after {:.1?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
        if status.is_none() { "timed out (killed)" } else { "failed" },
        started.elapsed()
    );
}
