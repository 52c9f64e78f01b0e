//! The `tq` binary's command line, run as a process. (Being an integration
//! test of this package, it also makes `cargo test --workspace` build
//! `target/debug/tq` before any test runs; the root package's
//! `tests/paired.rs` drives that binary against a real server.)

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn tq(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tq")).args(args).env_remove("TQ_REDIS_URL").output().expect("run tq")
}

#[test]
fn help_lists_the_options() {
    let out = tq(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["paired", "--redis", "--ns", "TQ_REDIS_URL", "REDIS_URL"] {
        assert!(text.contains(word), "tq --help lacks {word}:\n{text}");
    }
    let out = tq(&["paired", "--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for word in ["--lock", "--ttl", "--first-attempt", "--other-attempt", "--owner", "--grace", "CMD", "Exit status"] {
        assert!(text.contains(word), "tq paired --help lacks {word}:\n{text}");
    }
}

#[test]
fn missing_command_is_a_usage_error() {
    let out = tq(&["paired", "--lock", "l", "--ttl", "1s"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("required arguments were not provided") && err.contains("-- <CMD>..."), "{err}");
}

#[test]
fn bad_duration_is_a_usage_error() {
    let out = tq(&["paired", "--lock", "l", "--ttl", "soon", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid duration 'soon'"), "{err}");
}

#[test]
fn bad_redis_url_is_an_error_before_anything_runs() {
    let out = tq(&["--redis", "nope://x", "paired", "--lock", "l", "--ttl", "1s", "--", "sh", "-c", "echo ran"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "the command did not run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("tq paired: error: bad redis URL"), "{err}");
}

#[test]
fn work_with_a_wrong_password_exits_with_the_authentication_failure() {
    let s = tq_testkit::Server::start_with(tq_testkit::Opts::timer());
    s.conn().ok(&["CONFIG", "SET", "requirepass", "secret"]);
    let handlers = s.dir.join("handlers");
    std::fs::create_dir_all(&handlers).expect("handlers dir");
    let url = format!("redis://:wrong@127.0.0.1:{}/", s.port);
    let mut child = Command::new(env!("CARGO_BIN_EXE_tq"))
        .args(["--redis", &url, "work", "--queues", "q", "--handlers"])
        .arg(&handlers)
        .env_remove("TQ_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tq work");
    // A hang guard, not a timing target: it used to retry for ever.
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait tq work") {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut err);
    }
    assert_eq!(status.and_then(|st| st.code()), Some(1), "tq work did not exit 1:\n{err}");
    assert!(err.contains("tq work:") && err.contains("authentication failed"), "{err}");
    assert!(!err.contains("retrying"), "{err}");
}
