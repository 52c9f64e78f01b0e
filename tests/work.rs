//! `tq work` (the worker crate's binary) and `tq enqueue` against a real
//! server with the module: job commands written by each test as small shell
//! scripts into a directory of its own; acks, failure records, timeouts,
//! priorities, concurrency, retries, graceful and immediate stops, and a
//! Redis restart in the middle of a run.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ns, tq_bin, wait_until, write_script, Conn, Opts, Server, Tq};

/// `tq --ns <ns> work --handlers <dir> <args...>`, logging to `<server dir>/<log>`.
fn work(s: &Server, n: &str, handlers: &Path, args: &[&str], log: &str) -> Tq {
    let dir = handlers.to_str().expect("utf8 path");
    let mut all = vec!["--ns", n, "work", "--handlers", dir];
    all.extend_from_slice(args);
    Tq::spawn(s.port, &all, &s.dir.join(log))
}

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

/// `sh` text quoting a path.
fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

fn stat(c: &mut Conn, n: &str, name: &str) -> i64 {
    c.string(&["GET", &format!("{n}:stat:{name}")]).map(|v| v.parse().expect("counter")).unwrap_or(0)
}

fn failed(c: &mut Conn, n: &str) -> Vec<serde_json::Value> {
    c.lrange(&format!("{n}:failed")).iter().map(|r| serde_json::from_str(r).expect("failure record JSON")).collect()
}

fn enqueue(c: &mut Conn, n: &str, queue: &str, class: &str, args: &str) {
    c.ok(&["TQ.ENQUEUE", n, queue, class, args]);
}

/// No job is left in flight in the namespace (tq's index or node-resque's record).
fn nothing_in_flight(c: &mut Conn, n: &str) {
    let mut left: Vec<String> = c
        .strings(&["KEYS", &format!("{n}:*")])
        .into_iter()
        .filter(|k| k.starts_with(&format!("{n}:worker:")) && !k.contains(":ping:"))
        .collect();
    left.extend(c.live_inflight(n));
    assert!(left.is_empty(), "in-flight keys left: {left:?}");
    // A lost lease would leave a tombstone that says so.
    for key in c.strings(&["KEYS", &format!("{n}:tq:inflight:*")]) {
        let worker = key.rsplit_once(":tq:inflight:").map(|(_, w)| w.to_string()).unwrap_or_default();
        assert!(!c.inflight(n, &worker).expect("entry").lost(), "{worker} lost a lease");
    }
}

#[test]
fn success_acks_with_env_and_stdin() {
    let s = Server::start();
    let n = ns("work-ok");
    let h = s.dir.join("handlers");
    let out = s.dir.join("out");
    write_script(
        &h,
        "Email",
        &format!(
            "printf '%s|%s|%s|%s|%s|' \"$TQ_QUEUE\" \"$TQ_CLASS\" \"$TQ_WORKER\" \"$TQ_DELIVERIES\" \"$TQ_NS\" >> {o}; cat >> {o}; echo >> {o}",
            o = q(&out)
        ),
    );
    let mut c = s.conn();
    let args = r#"[1,"two",{"x":null,"é":[2.5]}]"#;
    enqueue(&mut c, &n, "mail", "Email", args);
    let mut tq = work(&s, &n, &h, &["--queues", "mail", "--name", "box:1"], "tq.log");
    wait_until(30, "stat:processed = 1", || stat(&mut c, &n, "processed") == 1);
    assert_eq!(lines(&out), [format!("mail|Email|box:1+1|1|{n}|{args}")]);
    assert_eq!(stat(&mut c, &n, "processed:box:1+1"), 1);
    assert_eq!(stat(&mut c, &n, "failed"), 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:mail")]), 0);
    nothing_in_flight(&mut c, &n);
    let log = tq.wait_log(10, "done Email from mail");
    assert!(log.contains("start Email from mail (delivery 1)") && log.contains("(pid "), "{log}");
    tq.kill_groups();
}

#[test]
fn failures_record_exception_and_stderr_tail() {
    let s = Server::start();
    let n = ns("work-fail");
    let h = s.dir.join("handlers");
    // 10 KB of noise, then the last words: the error keeps the last 4 KiB.
    write_script(&h, "Exit3", "head -c 10000 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'the last words' >&2; exit 3");
    write_script(&h, "Segv", "kill -SEGV $$");
    write_script(&h, "Quiet", "exit 7");
    let mut c = s.conn();
    for class in ["Exit3", "Segv", "Quiet"] {
        enqueue(&mut c, &n, "q", class, "[]");
    }
    let mut tq = work(&s, &n, &h, &["--queues", "q"], "tq.log");
    wait_until(30, "3 failures", || stat(&mut c, &n, "failed") == 3);
    let recs = failed(&mut c, &n);
    let by: HashMap<String, &serde_json::Value> =
        recs.iter().map(|r| (r["payload"]["class"].as_str().expect("class").to_string(), r)).collect();
    let exit3 = by["Exit3"];
    assert_eq!(exit3["exception"], "ExitStatus");
    let err = exit3["error"].as_str().expect("error");
    assert!(err.ends_with("xxx\nthe last words"), "{err:?}");
    assert!(err.len() <= 4096 && err.len() > 4000, "the tail of stderr: {} bytes", err.len());
    assert!(exit3["backtrace"][0].as_str().expect("backtrace").contains("exited with status 3"), "{exit3}");
    assert_eq!(exit3["queue"], "q");
    assert_eq!(by["Segv"]["exception"], "Signal");
    assert!(by["Segv"]["error"].as_str().expect("error").contains("SIGSEGV"), "{}", by["Segv"]);
    assert_eq!(by["Quiet"]["exception"], "ExitStatus");
    assert!(by["Quiet"]["error"].as_str().expect("error").contains("exited with status 7"), "{}", by["Quiet"]);
    assert_eq!(stat(&mut c, &n, "processed"), 0);
    nothing_in_flight(&mut c, &n);
    let log = tq.wait_log(10, "failure Quiet");
    assert!(log.contains(" error ") && log.contains("ExitStatus: the last words"), "{log}");
    tq.kill_groups();
}

#[test]
fn timeout_stops_the_command_and_fails_the_job() {
    let s = Server::start();
    let n = ns("work-timeout");
    let h = s.dir.join("handlers");
    let pid_file = s.dir.join("pid");
    write_script(&h, "Slow", &format!("echo $$ > {}; echo 'still going' >&2; sleep 30", q(&pid_file)));
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Slow", "[]");
    let started = Instant::now();
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--timeout", "500ms"], "tq.log");
    wait_until(30, "the timeout failure", || stat(&mut c, &n, "failed") == 1);
    assert!(started.elapsed() < Duration::from_secs(20), "stopped soon after its limit: {:?}", started.elapsed());
    let rec = &failed(&mut c, &n)[0];
    assert_eq!(rec["exception"], "Timeout");
    assert_eq!(rec["error"], "still going");
    assert!(rec["backtrace"][0].as_str().expect("backtrace").contains("limit of 500ms"), "{rec}");
    // The command is gone.
    let pid = std::fs::read_to_string(&pid_file).expect("pid file").trim().to_string();
    wait_until(10, "the timed-out command to be gone", || {
        !Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().expect("kill -0").success()
    });
    tq.kill_groups();
}

#[test]
fn missing_handler_fails_with_node_resque_message() {
    let s = Server::start();
    let n = ns("work-missing");
    let h = s.dir.join("handlers");
    let ran = s.dir.join("ran");
    write_script(&h, "Real", "true");
    // A script outside the handler directory must never be reachable.
    write_script(&s.dir, "evil", &format!("echo ran >> {}", q(&ran)));
    std::fs::create_dir_all(h.join("Dir")).expect("mkdir");
    let mut c = s.conn();
    for class in ["Nope", "../evil", ".hidden", "Dir"] {
        enqueue(&mut c, &n, "q", class, "[]");
    }
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--retry", "3"], "tq.log");
    wait_until(30, "4 failures", || stat(&mut c, &n, "failed") == 4);
    let recs = failed(&mut c, &n);
    let by: HashMap<String, &serde_json::Value> =
        recs.iter().map(|r| (r["payload"]["class"].as_str().expect("class").to_string(), r)).collect();
    assert_eq!(by["Nope"]["exception"], "Error");
    assert_eq!(by["Nope"]["error"], "No job defined for class \"Nope\"");
    assert_eq!(by["Dir"]["error"], "No job defined for class \"Dir\"");
    for bad in ["../evil", ".hidden"] {
        assert_eq!(by[bad]["exception"], "Error");
        assert!(by[bad]["error"].as_str().expect("error").contains("cannot name a handler"), "{}", by[bad]);
    }
    assert!(lines(&ran).is_empty(), "nothing outside the handler directory ran");
    // Never retried, although --retry 3.
    assert_eq!(c.int(&["ZCARD", &format!("{n}:delayed_queue_schedule")]), 0);
    tq.kill_groups();
}

#[test]
fn queues_are_taken_in_priority_order() {
    let s = Server::start();
    let n = ns("work-priority");
    let h = s.dir.join("handlers");
    let out = s.dir.join("out");
    write_script(&h, "Job", &format!("echo \"$TQ_QUEUE $(cat)\" >> {}", q(&out)));
    let mut c = s.conn();
    for i in 0..3 {
        enqueue(&mut c, &n, "low", "Job", &format!("[{i}]"));
        enqueue(&mut c, &n, "other", "Job", &format!("[{i}]"));
        enqueue(&mut c, &n, "high", "Job", &format!("[{i}]"));
    }
    let mut tq = work(&s, &n, &h, &["--queues", "high,low"], "tq.log");
    wait_until(30, "6 jobs", || stat(&mut c, &n, "processed") == 6);
    assert_eq!(lines(&out), ["high [0]", "high [1]", "high [2]", "low [0]", "low [1]", "low [2]"]);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:other")]), 3, "a queue not listed is left alone");
    tq.kill_groups();
}

#[test]
fn concurrency_runs_jobs_in_parallel() {
    let s = Server::start();
    let n = ns("work-parallel");
    let h = s.dir.join("handlers");
    let out = s.dir.join("out");
    write_script(&h, "Nap", &format!("a=$(date +%s%N); sleep 1; echo \"$a $(date +%s%N) $TQ_WORKER\" >> {}", q(&out)));
    let mut c = s.conn();
    for i in 0..4 {
        enqueue(&mut c, &n, "q", "Nap", &format!("[{i}]"));
    }
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--concurrency", "4"], "tq.log");
    wait_until(60, "4 jobs", || stat(&mut c, &n, "processed") == 4);
    let runs: Vec<(u128, u128, String)> = lines(&out)
        .iter()
        .map(|l| {
            let p: Vec<&str> = l.split(' ').collect();
            (p[0].parse().expect("start"), p[1].parse().expect("end"), p[2].to_string())
        })
        .collect();
    let first = runs.iter().map(|r| r.0).min().expect("runs");
    let last = runs.iter().map(|r| r.1).max().expect("runs");
    let span = Duration::from_nanos(u64::try_from(last - first).expect("span"));
    assert!(span < Duration::from_millis(3500), "4 one-second jobs on 4 slots took {span:?}");
    let mut workers: Vec<&str> = runs.iter().map(|r| r.2.as_str()).collect();
    workers.sort();
    workers.dedup();
    assert!(workers.len() >= 2, "several slots ran them: {workers:?}");
    tq.kill_groups();
}

#[test]
fn failing_twice_then_succeeding_is_retried_with_backoff() {
    let s = Server::start_with(Opts::timer());
    let n = ns("work-retry");
    let h = s.dir.join("handlers");
    let tries = s.dir.join("tries");
    write_script(
        &h,
        "Flaky",
        &format!(
            "echo \"$TQ_DELIVERIES\" >> {t}; [ \"$(wc -l < {t})\" -ge 3 ] || {{ echo 'not yet' >&2; exit 1; }}",
            t = q(&tries)
        ),
    );
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Flaky", r#"["x"]"#);
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--retry", "3", "--backoff", "100ms"], "tq.log");
    wait_until(60, "the third attempt to succeed", || stat(&mut c, &n, "processed") == 1);
    assert_eq!(lines(&tries), ["1", "2", "3"], "deliveries seen by the command");
    assert_eq!(stat(&mut c, &n, "failed"), 2);
    assert!(failed(&mut c, &n).is_empty(), "no failure record: it succeeded in the end");
    let log = tq.wait_log(10, "done Flaky");
    assert_eq!(log.matches("retry in ").count(), 2, "{log}");
    tq.kill_groups();
}

#[test]
fn retry_config_file_per_class_and_queue() {
    let s = Server::start_with(Opts::timer());
    let n = ns("work-retry-config");
    let h = s.dir.join("handlers");
    let tries = s.dir.join("tries");
    write_script(&h, "Fails", &format!("echo \"$TQ_CLASS $TQ_QUEUE $TQ_DELIVERIES\" >> {}; exit 1", q(&tries)));
    write_script(&h, "Once", &format!("echo \"$TQ_CLASS $TQ_QUEUE $TQ_DELIVERIES\" >> {}; exit 1", q(&tries)));
    write_script(&h, "Sleepy", "sleep 30");
    let config = s.dir.join("retry.json");
    std::fs::write(
        &config,
        r#"{
          "queues": {"retrying": {"retry": 3, "backoff": [0]}},
          "classes": {"Once": {"retry": 1}, "Sleepy": {"timeout": "300ms"}}
        }"#,
    )
    .expect("write the config");
    let mut c = s.conn();
    enqueue(&mut c, &n, "retrying", "Fails", "[1]");
    enqueue(&mut c, &n, "retrying", "Once", "[2]");
    enqueue(&mut c, &n, "plain", "Fails", "[3]");
    enqueue(&mut c, &n, "plain", "Sleepy", "[4]");
    let cfg = config.to_str().expect("utf8");
    let mut tq = work(&s, &n, &h, &["--queues", "retrying,plain", "--retry-config", cfg, "--timeout", "1m"], "tq.log");
    wait_until(60, "4 failure records", || failed(&mut c, &n).len() == 4);
    let mut seen = lines(&tries);
    seen.sort();
    assert_eq!(seen, ["Fails plain 1", "Fails retrying 1", "Fails retrying 2", "Fails retrying 3", "Once retrying 1"]);
    assert_eq!(stat(&mut c, &n, "failed"), 6);
    let recs = failed(&mut c, &n);
    let sleepy = recs.iter().find(|r| r["payload"]["class"] == "Sleepy").expect("Sleepy failed");
    assert_eq!(sleepy["exception"], "Timeout", "the class's limit, not the command line's");
    tq.kill_groups();

    // A broken file stops tq at once with a clear message.
    std::fs::write(&config, r#"{"classes": {"A": {"retries": 2}}}"#).expect("write");
    let mut bad = work(&s, &n, &h, &["--queues", "q", "--retry-config", cfg], "bad.log");
    let status = bad.wait_exit(30);
    assert_eq!(status.code(), Some(1));
    assert!(bad.log().contains("unknown key \"retries\""), "{}", bad.log());
}

#[test]
fn sigterm_lets_the_running_job_finish_and_takes_no_more() {
    let s = Server::start();
    let n = ns("work-stop");
    let h = s.dir.join("handlers");
    let out = s.dir.join("out");
    write_script(&h, "Job", &format!("sleep 1.5; echo \"done $(cat)\" >> {}", q(&out)));
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Job", "[1]");
    enqueue(&mut c, &n, "q", "Job", "[2]");
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--grace", "30s"], "tq.log");
    tq.wait_log(30, "start Job from q");
    common::send_signal("TERM", &tq.pid().to_string());
    let status = tq.wait_exit(30);
    assert_eq!(status.code(), Some(0), "{}", tq.log());
    assert_eq!(lines(&out), ["done [1]"]);
    assert_eq!(stat(&mut c, &n, "processed"), 1);
    assert_eq!(c.lrange(&format!("{n}:queue:q")), [common::job("q", "Job", "[2]")], "the second job waits");
    nothing_in_flight(&mut c, &n);
    let log = tq.log();
    assert!(log.contains("caught SIGTERM") && log.contains("worker stopped: 1 done"), "{log}");
}

#[test]
fn sigterm_after_the_grace_period_gives_the_job_back() {
    let s = Server::start();
    let n = ns("work-grace");
    let h = s.dir.join("handlers");
    let pid_file = s.dir.join("pid");
    write_script(&h, "Long", &format!("echo $$ > {}; sleep 60", q(&pid_file)));
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Long", "[1]");
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--grace", "300ms"], "tq.log");
    tq.wait_log(30, "start Long from q");
    common::send_signal("TERM", &tq.pid().to_string());
    let status = tq.wait_exit(30);
    assert_eq!(status.code(), Some(0), "{}", tq.log());
    // Back at the head of its queue, not failed, not counted.
    assert_eq!(c.lrange(&format!("{n}:queue:q")), [common::job("q", "Long", "[1]")]);
    assert_eq!((stat(&mut c, &n, "processed"), stat(&mut c, &n, "failed")), (0, 0));
    nothing_in_flight(&mut c, &n);
    let pid = std::fs::read_to_string(&pid_file).expect("pid file").trim().to_string();
    assert!(!Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().expect("kill -0").success());
    let log = tq.log();
    assert!(
        log.contains("gave back Long from q to the head of its queue (stopping: the grace period ran out)"),
        "{log}"
    );
    // The next worker gets it again (second delivery).
    let mut again = work(&s, &n, &h, &["--queues", "q"], "again.log");
    again.wait_log(30, "start Long from q (delivery 2)");
    again.kill_groups();
}

#[test]
fn second_signal_exits_at_once_and_the_lease_brings_the_job_back() {
    let s = Server::start_with(Opts { module_args: vec!["lease-ms".into(), "1000".into()], ..Opts::timer() });
    let n = ns("work-kill");
    let h = s.dir.join("handlers");
    let pid_file = s.dir.join("pid");
    write_script(&h, "Long", &format!("echo $$ > {}; sleep 60", q(&pid_file)));
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Long", "[1]");
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--grace", "60s", "--lease", "1s"], "tq.log");
    tq.wait_log(30, "start Long from q");
    common::send_signal("TERM", &tq.pid().to_string());
    tq.wait_log(10, "stopping gracefully");
    let asked = Instant::now();
    common::send_signal("TERM", &tq.pid().to_string());
    let status = tq.wait_exit(10);
    assert!(asked.elapsed() < Duration::from_secs(5), "exits at once: {:?}", asked.elapsed());
    assert_eq!(status.code(), Some(128 + 15), "{status:?}; log:\n{}", tq.log());
    let pid = std::fs::read_to_string(&pid_file).expect("pid file").trim().to_string();
    wait_until(10, "the command to be killed", || {
        !Command::new("kill").args(["-0", &pid]).stderr(Stdio::null()).status().expect("kill -0").success()
    });
    // Not reported: the module gives it back when the lease runs out.
    wait_until(30, "the job back in its queue", || {
        c.lrange(&format!("{n}:queue:q")) == [common::job("q", "Long", "[1]")]
    });
    assert_eq!((stat(&mut c, &n, "processed"), stat(&mut c, &n, "failed")), (0, 0));
    assert!(failed(&mut c, &n).is_empty());
}

#[test]
fn redis_restart_mid_run_every_job_runs_once() {
    const JOBS: usize = 200;
    let aof = ["--appendonly", "yes", "--appendfsync", "always"];
    let s = Server::start_with(Opts::timer().with_args(&aof));
    let n = ns("work-restart");
    let h = s.dir.join("handlers");
    let ledger = s.dir.join("ledger");
    write_script(&h, "Job", &format!("echo \"$(cat) $TQ_WORKER\" >> {}; sleep 0.02", q(&ledger)));
    let mut c = s.conn();
    for i in 0..JOBS {
        enqueue(&mut c, &n, "q", "Job", &format!("[{i}]"));
    }
    drop(c);
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--concurrency", "4"], "tq.log");
    wait_until(60, "a quarter of the jobs", || lines(&ledger).len() >= JOBS / 4);
    let port = s.port;
    let dir = s.kill_keep_dir();
    // Short: the port must still be free when the server comes back.
    std::thread::sleep(Duration::from_millis(500));
    let s = Server::restart_on(port, &dir, Opts::timer().with_args(&aof));
    let mut c = s.conn();
    wait_until(120, "every job processed", || stat(&mut c, &n, "processed") == JOBS as i64);
    std::thread::sleep(Duration::from_millis(500));
    let runs = lines(&ledger);
    let mut count: HashMap<String, usize> = HashMap::new();
    for l in &runs {
        *count.entry(l.split(' ').next().expect("id").to_string()).or_default() += 1;
    }
    let twice: Vec<_> = count.iter().filter(|(_, &k)| k != 1).collect();
    assert!(twice.is_empty(), "jobs run more than once: {twice:?}");
    assert_eq!(count.len(), JOBS, "every job ran");
    assert_eq!(stat(&mut c, &n, "processed"), JOBS as i64);
    assert_eq!(stat(&mut c, &n, "failed"), 0);
    nothing_in_flight(&mut c, &n);
    let log = tq.log();
    assert!(log.contains("redis answers again"), "{log}");
    println!("{}", log.lines().filter(|l| !l.contains(" info ")).collect::<Vec<_>>().join("\n"));
    common::send_signal("TERM", &tq.pid().to_string());
    assert_eq!(tq.wait_exit(30).code(), Some(0), "{}", tq.log());
}

#[test]
fn json_and_quiet_logs() {
    let s = Server::start();
    let n = ns("work-logs");
    let h = s.dir.join("handlers");
    write_script(&h, "Ok", "true");
    write_script(&h, "Bad", "echo nope >&2; exit 2");
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Ok", "[]");
    enqueue(&mut c, &n, "q", "Bad", "[]");
    let mut tq = work(&s, &n, &h, &["--queues", "q", "--json", "--name", "js:1"], "json.log");
    wait_until(30, "both jobs", || stat(&mut c, &n, "processed") + stat(&mut c, &n, "failed") == 2);
    let log = tq.wait_log(10, "job:failure");
    tq.kill_groups();
    let events: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let find = |event: &str, class: &str| {
        events
            .iter()
            .find(|e| e["event"] == event && e["class"] == class)
            .unwrap_or_else(|| panic!("no {event} {class}:\n{log}"))
    };
    let start = find("job:start", "Ok");
    assert_eq!(
        (start["level"].as_str(), start["worker"].as_str(), start["queue"].as_str()),
        (Some("info"), Some("js:1+1"), Some("q"))
    );
    assert!(start["pid"].is_u64());
    let ok = find("job:success", "Ok");
    assert_eq!(ok["level"], "info");
    assert!(ok["duration_ms"].is_u64() && ok["time"].as_str().expect("time").ends_with('Z'));
    let bad = find("job:failure", "Bad");
    assert_eq!(
        (bad["level"].as_str(), bad["exception"].as_str(), bad["error"].as_str()),
        (Some("error"), Some("ExitStatus"), Some("nope"))
    );
    assert_eq!(bad["outcome"], "failed");

    // --quiet: errors only.
    enqueue(&mut c, &n, "q", "Ok", "[]");
    enqueue(&mut c, &n, "q", "Bad", "[]");
    let mut quiet = work(&s, &n, &h, &["--queues", "q", "--quiet"], "quiet.log");
    wait_until(30, "both jobs", || stat(&mut c, &n, "processed") + stat(&mut c, &n, "failed") == 4);
    let log = quiet.wait_log(10, "failure Bad");
    quiet.kill_groups();
    assert!(log.lines().all(|l| l.contains(" error ")), "errors only:\n{log}");
}

fn tq_enqueue(port: u16, n: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(tq_bin())
        .args(["--redis", &format!("redis://127.0.0.1:{port}/"), "--ns", n, "enqueue"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tq enqueue");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn enqueue_prints_the_module_reply() {
    let s = Server::start();
    let n = ns("enqueue");
    let mut c = s.conn();
    assert_eq!(tq_enqueue(s.port, &n, &["math", "add", "[1,2]"]), (0, "1".into(), String::new()));
    assert_eq!(tq_enqueue(s.port, &n, &["math", "add"]).1, "2");
    assert_eq!(tq_enqueue(s.port, &n, &["math", "add", r#"{"a":1}"#]).1, "3");
    assert_eq!(
        c.lrange(&format!("{n}:queue:math")),
        [
            common::job("math", "add", "[1,2]"),
            common::job("math", "add", "[]"),
            common::job("math", "add", r#"[{"a":1}]"#)
        ]
    );
    // --in: the bucket, about now + 2 s.
    let now = c.server_ms();
    let (code, bucket, _) = tq_enqueue(s.port, &n, &["math", "later", "[]", "--in", "2s"]);
    assert_eq!(code, 0);
    let bucket: u64 = bucket.parse().expect("bucket");
    assert!(bucket >= (now + 2000) / 1000 && bucket <= (now + 2000) / 1000 + 5, "{bucket} vs {now}");
    // --at, RFC 3339 and unix ms: Math.round(ms / 1000).
    assert_eq!(tq_enqueue(s.port, &n, &["math", "at", "[1]", "--at", "2030-01-01T00:00:00.600Z"]).1, "1893456001");
    assert_eq!(tq_enqueue(s.port, &n, &["math", "at", "[2]", "--at", "1893456000400"]).1, "1893456000");
    assert_eq!(c.int(&["ZCARD", &format!("{n}:delayed_queue_schedule")]), 3);
    // The module's refusals come out as errors.
    let (code, out, err) = tq_enqueue(s.port, &n, &["math", "at", "[1]", "--at", "2030-01-01T00:00:00.600Z"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("DUPLICATE"), "{err}");
    let (code, _, err) = tq_enqueue(s.port, &n, &["math", "add", "[1,"]);
    assert_eq!(code, 1);
    assert!(err.contains("JSON"), "{err}");
    let (code, _, err) = tq_enqueue(s.port, &n, &["math", "add", "[]", "--at", "next tuesday"]);
    assert_eq!(code, 2, "a usage error");
    assert!(err.contains("invalid time"), "{err}");
}

/// `PathBuf` of a handler directory that does not exist: tq refuses to start.
#[test]
fn work_refuses_a_missing_handler_directory() {
    let s = Server::start();
    let n = ns("work-nodir");
    let missing: PathBuf = s.dir.join("no-such-dir");
    let mut tq = work(&s, &n, &missing, &["--queues", "q"], "tq.log");
    assert_eq!(tq.wait_exit(30).code(), Some(1));
    assert!(tq.log().contains("no-such-dir"), "{}", tq.log());
}

#[test]
fn waits_for_redis_to_come_up() {
    let s = Server::start();
    let port = s.port;
    let dir = s.kill_keep_dir();
    let n = ns("work-late");
    let h = dir.join("handlers");
    let out = dir.join("out");
    write_script(&h, "Job", &format!("cat >> {}", q(&out)));
    let hs = h.to_str().expect("utf8");
    let mut tq = Tq::spawn(port, &["--ns", &n, "work", "--handlers", hs, "--queues", "q"], &dir.join("tq.log"));
    tq.wait_log(30, "retrying");
    assert!(tq.try_wait().is_none(), "still running while Redis is away");
    let s = Server::restart_on(port, &dir, Opts::default());
    let mut c = s.conn();
    enqueue(&mut c, &n, "q", "Job", "[42]");
    wait_until(60, "the job", || stat(&mut c, &n, "processed") == 1);
    assert_eq!(lines(&out), ["[42]"]);
    assert!(tq.log().contains("redis answers again"), "{}", tq.log());
    common::send_signal("TERM", &tq.pid().to_string());
    assert_eq!(tq.wait_exit(30).code(), Some(0), "{}", tq.log());
}

/// A handler's args are complete before it starts: its stdin is a file
/// holding all of them, not a pipe `tq` writes while the handler runs
/// (a `tq work` killed mid-write used to leave the handler a cut-short
/// stdin, even an empty one, in the moment before its parent-death signal).
#[test]
fn a_handler_gets_its_args_whole_before_it_starts() {
    let s = Server::start();
    let n = ns("work-stdin");
    let h = s.dir.join("handlers");
    let ledger = s.dir.join("ledger");
    write_script(&h, "Big", &format!("stat -L -c %F /dev/stdin >> {l}; wc -c >> {l}", l = q(&ledger)));
    let mut c = s.conn();
    // Larger than a pipe's buffer.
    let big = format!("[\"{}\"]", "x".repeat(300_000));
    enqueue(&mut c, &n, "q", "Big", &big);
    let mut tq = work(&s, &n, &h, &["--queues", "q"], "tq.log");
    wait_until(30, "the job done", || stat(&mut c, &n, "processed") == 1);
    assert_eq!(lines(&ledger), ["regular file".to_string(), big.len().to_string()], "{}", tq.log());
    common::send_signal("TERM", &tq.pid().to_string());
    tq.wait_exit(30);
}

/// Threads of a process (Linux).
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map(|d| d.count()).unwrap_or(0)
}

/// Open pipes of a process (Linux).
fn pipes(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("pipe:")))
                .count()
        })
        .unwrap_or(0)
}

/// Each job whose handler left a background process holding its stderr
/// used to cost `tq work` a thread and a pipe until that process exited.
#[test]
fn handlers_leaving_background_processes_leak_no_thread_or_pipe() {
    const JOBS: usize = 12;
    let s = Server::start();
    let n = ns("work-bg");
    let h = s.dir.join("handlers");
    write_script(&h, "Bg", "sleep 60 & echo started >&2");
    let mut c = s.conn();
    let mut tq = work(&s, &n, &h, &["--queues", "q"], "tq.log");
    tq.wait_log(30, "worker started");
    enqueue(&mut c, &n, "q", "Bg", "[0]");
    wait_until(30, "the first job done", || stat(&mut c, &n, "processed") == 1);
    let (threads_before, pipes_before) = (threads(tq.pid()), pipes(tq.pid()));
    for i in 1..JOBS {
        enqueue(&mut c, &n, "q", "Bg", &format!("[{i}]"));
    }
    wait_until(60, "every job done", || stat(&mut c, &n, "processed") == JOBS as i64);
    let (threads_after, pipes_after) = (threads(tq.pid()), pipes(tq.pid()));
    assert!(
        threads_after <= threads_before + 1 && pipes_after <= pipes_before + 1,
        "threads {threads_before} -> {threads_after}, pipes {pipes_before} -> {pipes_after} after {} more jobs",
        JOBS - 1
    );
    drop(tq); // kills the background processes (the handlers' process groups) too
}
