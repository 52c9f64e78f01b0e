//! Running the node scripts of `tests/interop/` (the pinned node-resque)
//! against a test server: `node tests/interop/<script> <port> <namespace>`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::Server;

/// Per-script limit; the scripts themselves give up after 100 s.
const TIMEOUT: Duration = Duration::from_secs(150);
const NODE_RESQUE_VERSION: &str = "9.7.1";

pub fn interop_dir() -> PathBuf {
    super::root().join("tests/interop")
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

/// Runs `tests/interop/<script>` against `server` / `namespace` with extra
/// environment variables; panics with its output when it fails.
pub fn run_script(server: &Server, namespace: &str, script: &str, env: &[(&str, String)]) -> String {
    check_prerequisites();
    let started = Instant::now();
    let mut cmd = Command::new("node");
    cmd.arg(interop_dir().join(script))
        .arg(server.port.to_string())
        .arg(namespace)
        .current_dir(interop_dir())
        // failure records carry `Date.prototype.toString()` text; tq writes UTC.
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn node");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for node") {
            break Some(status);
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let env_shown: String = env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
    if !matches!(status, Some(s) if s.success()) {
        let what = match status {
            None => format!("timed out after {TIMEOUT:?} (killed)"),
            Some(s) => format!("failed ({s})"),
        };
        panic!(
            "{env_shown}node tests/interop/{script} {} {namespace} {what} after {:.1?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}",
            server.port,
            started.elapsed()
        );
    }
    println!("{env_shown}{script}: ok in {:.1?}\n{stdout}{stderr}", started.elapsed());
    stdout
}
