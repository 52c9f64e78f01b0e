//! The worker library against a real server with the module: the client's
//! job calls, a `Worker` with in-process handlers draining thousands of
//! jobs exactly once, graceful stops, unknown classes, retries, requeues,
//! panics, and replies lost on the wire (a proxy cuts the connection after
//! the server applied a command).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tq_client::client::{Client, FailOutcome, LEASELOST, NOJOB};
use tq_client::config::{RetryPolicy, Rules};
use tq_client::job::{Failure, JobError};
use tq_client::worker::{Event, Fate, Outcome, Requeue, Summary, Worker, WorkerOptions};
use tq_testkit::{ns, wait_until, Conn, Opts, Proxy, Server};

/// Events a worker emitted, for assertions.
#[derive(Clone, Default)]
struct Events(Arc<Mutex<Vec<Event>>>);

impl Events {
    fn attach(&self, w: &mut Worker) {
        let me = self.clone();
        w.on_event(move |e| me.0.lock().expect("lock").push(e.clone()));
    }

    fn ends(&self) -> Vec<(String, String, Outcome)> {
        self.0
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|e| match e {
                Event::JobEnd { job, outcome, .. } => Some((job.class.clone(), job.args_json.clone(), outcome.clone())),
                _ => None,
            })
            .collect()
    }

    fn count(&self, f: impl Fn(&Event) -> bool) -> usize {
        self.0.lock().expect("lock").iter().filter(|e| f(e)).count()
    }
}

fn options(url: &str, n: &str, queues: &[&str]) -> WorkerOptions {
    let mut o = WorkerOptions::new(url, n, queues);
    o.name = format!("lib:{}", std::process::id());
    o.poll = Duration::from_millis(200);
    o
}

/// Runs the worker in a thread; returns its join handle.
fn spawn(w: Worker) -> std::thread::JoinHandle<Summary> {
    std::thread::spawn(move || w.run().expect("the worker runs"))
}

/// Runs the worker until `<n>:stat:processed` reaches `jobs`, then stops it
/// gracefully; returns its summary.
fn run_until_processed(raw: &mut Conn, w: Worker, n: &str, jobs: i64) -> Summary {
    let stop = w.stop_handle();
    let t = spawn(w);
    wait_until(120, "the jobs processed", || raw.stat(n, "processed") == jobs);
    stop.stop();
    t.join().expect("join")
}

/// `run_until_processed`, then: nothing counted twice, queue `q` empty.
fn run_each_once(raw: &mut Conn, w: Worker, n: &str, jobs: i64) {
    run_until_processed(raw, w, n, jobs);
    assert_eq!(raw.stat(n, "processed"), jobs, "each counted once");
    assert_eq!(raw.int(&["LLEN", &format!("{n}:queue:q")]), 0);
}

#[test]
fn client_job_calls() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "60000"]));
    let n = ns("client");
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    assert_eq!(c.enqueue("q", "add", "[1,2]").expect("enqueue"), 1);
    assert_eq!(c.enqueue("q", "add", r#"{"x":1}"#).expect("enqueue"), 2);
    assert!(c.enqueue_in(Duration::from_secs(60), "q", "later", "[]").expect("enqueue_in") > 0);
    assert_eq!(c.enqueue_at(4_102_444_800_000, "q", "at", "[]").expect("enqueue_at"), 4_102_444_800);
    let lease = Duration::from_secs(60);
    assert!(c.pop("w:1", &["empty"], lease).expect("pop").is_none());
    let job = c.pop("w:1", &["empty", "q"], lease).expect("pop").expect("a job");
    assert_eq!((job.queue.as_str(), job.class.as_str(), job.deliveries, job.worker.as_str()), ("q", "add", 1, "w:1"));
    assert_eq!(job.args, serde_json::json!([1, 2]));
    assert_eq!(job.payload, r#"{"class":"add","queue":"q","args":[1,2]}"#);
    assert!(job.delivery > 0);
    // One job per worker name: a second pop hands the same job out again.
    let same = c.pop("w:1", &["q"], Duration::from_secs(5)).expect("pop").expect("the same job");
    assert_eq!((same.delivery, same.payload.as_str()), (job.delivery, job.payload.as_str()));
    assert!(same.lease_until_ms < job.lease_until_ms, "the lease asked for is the one given");
    assert_eq!(
        c.heartbeat("w:1", Duration::from_secs(30), Some(job.delivery)).expect("heartbeat"),
        Duration::from_secs(30)
    );
    assert_eq!(c.heartbeat("w:1", Duration::from_secs(30), None).expect("alive only"), Duration::ZERO);
    c.nack("w:1", job.delivery, None).expect("nack");
    c.nack("w:1", job.delivery, None).expect("a repeat answers as the first");
    let again = c.bpop("w:1", &["q"], lease, Duration::from_millis(100)).expect("bpop").expect("the job again");
    assert_eq!((again.class.as_str(), again.deliveries), ("add", 2));
    assert!(again.delivery > job.delivery);
    assert!(c.ack("w:1", job.delivery).expect_err("an old delivery").is(NOJOB));
    c.ack("w:1", again.delivery).expect("ack");
    c.ack("w:1", again.delivery).expect("a repeat answers as the first");
    let j = c.pop("w:2", &["q"], lease).expect("pop").expect("second job");
    assert_eq!(j.args, serde_json::json!([{"x": 1}]));
    let policy = RetryPolicy::new(2, vec![Duration::ZERO]);
    let f = Failure::new("Boom", "bad");
    assert_eq!(
        c.fail("w:2", j.delivery, &f, Some(&policy)).expect("fail"),
        FailOutcome::Retry { delay: Duration::ZERO }
    );
    assert_eq!(
        c.fail("w:2", j.delivery, &f, Some(&policy)).expect("repeat"),
        FailOutcome::Retry { delay: Duration::ZERO },
        "a repeat answers as the first"
    );
    let j = c.pop("w:2", &["q"], lease).expect("pop").expect("retried");
    assert_eq!(j.deliveries, 2);
    assert_eq!(c.fail("w:2", j.delivery, &f, Some(&policy)).expect("fail"), FailOutcome::Failed);
    assert!(c.bpop("w:3", &["q"], lease, Duration::from_millis(50)).expect("bpop").is_none(), "times out with nil");
    let mut raw = s.conn();
    // NACK with a delay: a delayed job the module's timer brings back.
    c.enqueue("d", "slow", "[]").expect("enqueue");
    let j = c.pop("w:4", &["d"], lease).expect("pop").expect("job");
    c.nack("w:4", j.delivery, Some(Duration::from_millis(1200))).expect("nack");
    assert_eq!(raw.int(&["LLEN", &format!("{n}:queue:d")]), 0, "not back yet");
    wait_until(30, "the delayed job back", || raw.int(&["LLEN", &format!("{n}:queue:d")]) == 1);
    let j = c.pop("w:4", &["d"], lease).expect("pop").expect("job");
    assert_eq!(j.deliveries, 2);
    c.ack("w:4", j.delivery).expect("ack");
    assert_eq!(raw.stat(&n, "processed"), 2);
    assert_eq!(raw.stat(&n, "failed"), 2);
    assert_eq!(raw.int(&["LLEN", &format!("{n}:failed")]), 1);
}

#[test]
fn concurrency_4_drains_2000_jobs_exactly_once() {
    const JOBS: usize = 2000;
    let s = Server::start_with(Opts::timer());
    let n = ns("drain");
    let mut raw = s.conn();
    let mut pipe = redis::pipe();
    for i in 0..JOBS {
        let queue = if i % 3 == 0 { "high" } else { "low" };
        pipe.cmd("TQ.ENQUEUE").arg(&n).arg(queue).arg("Count").arg(format!("[{i}]")).ignore();
    }
    pipe.query::<()>(&mut raw.0).expect("enqueue");

    let ledger: Arc<Mutex<HashMap<i64, Vec<String>>>> = Arc::default();
    let mut o = options(&s.url(), &n, &["high", "low"]);
    o.concurrency = 4;
    let mut w = Worker::new(o);
    let l = ledger.clone();
    w.handle("Count", move |job| {
        let id = job.args[0].as_i64().ok_or_else(|| JobError::fatal("BadArgs", job.args_json.clone()))?;
        l.lock().expect("lock").entry(id).or_default().push(job.worker.clone());
        Ok(())
    });
    let stop = w.stop_handle();
    let started = Instant::now();
    let t = spawn(w);
    wait_until(120, "2000 jobs processed", || raw.stat(&n, "processed") == JOBS as i64);
    let took = started.elapsed();
    stop.stop();
    let summary = t.join().expect("join");
    assert_eq!(summary, Summary { done: JOBS as u64, ..Summary::default() });
    let ledger = ledger.lock().expect("lock");
    assert_eq!(ledger.len(), JOBS);
    let twice: Vec<_> = ledger.iter().filter(|(_, v)| v.len() != 1).collect();
    assert!(twice.is_empty(), "run more than once: {twice:?}");
    let mut slots: Vec<&String> = ledger.values().flatten().collect();
    slots.sort();
    slots.dedup();
    assert_eq!(slots.len(), 4, "every slot ran jobs: {slots:?}");
    assert_eq!(raw.stat(&n, "failed"), 0);
    assert_eq!(raw.int(&["LLEN", &format!("{n}:queue:high")]) + raw.int(&["LLEN", &format!("{n}:queue:low")]), 0);
    // Stopped cleanly: the slots unregistered (node-resque's workers set, pings).
    assert!(raw.strings(&["SMEMBERS", &format!("{n}:workers")]).is_empty());
    assert!(raw.strings(&["KEYS", &format!("{n}:worker:*")]).is_empty());
    println!("2000 jobs in {took:?}");
}

#[test]
fn graceful_stop_gives_back_running_jobs() {
    let s = Server::start_with(Opts::timer());
    let n = ns("grace");
    let mut raw = s.conn();
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    for class in ["Polite", "Stubborn", "Waiting"] {
        c.enqueue("q", class, "[]").expect("enqueue");
    }
    let started = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(AtomicBool::new(false));
    let mut o = options(&s.url(), &n, &["q"]);
    o.concurrency = 2;
    o.grace = Duration::from_millis(300);
    o.cancel_wait = Duration::from_millis(500);
    let mut w = Worker::new(o);
    let events = Events::default();
    events.attach(&mut w);
    let st = started.clone();
    // Notices the cancellation and gives up.
    w.handle("Polite", move |job| {
        st.fetch_add(1, Ordering::SeqCst);
        while !job.is_cancelled() {
            std::thread::sleep(Duration::from_millis(10));
        }
        Err(JobError::fail("Interrupted", "told to stop"))
    });
    let (st, rel) = (started.clone(), release.clone());
    // Ignores it; returns Ok much later (its result must be ignored).
    w.handle("Stubborn", move |_| {
        st.fetch_add(1, Ordering::SeqCst);
        while !rel.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    });
    w.handle("Waiting", |_| Ok(()));
    let stop = w.stop_handle();
    let t = spawn(w);
    wait_until(30, "both jobs running", || started.load(Ordering::SeqCst) == 2);
    let asked = Instant::now();
    stop.stop();
    let summary = t.join().expect("join");
    assert!(asked.elapsed() < Duration::from_secs(10), "stopped after grace + cancel wait: {:?}", asked.elapsed());
    assert_eq!(summary.requeued, 2, "{summary:?}");
    assert_eq!((summary.done, summary.failed), (0, 0));
    let mut ends = events.ends();
    ends.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ends,
        [
            ("Polite".into(), "[]".into(), Outcome::Requeued { delay: None, why: Requeue::Stopping }),
            ("Stubborn".into(), "[]".into(), Outcome::Requeued { delay: None, why: Requeue::Abandoned }),
        ]
    );
    // Both back in the queue (head), the third never taken.
    let mut queue = raw.strings(&["LRANGE", &format!("{n}:queue:q"), "0", "-1"]);
    assert_eq!(queue.pop().as_deref(), Some(r#"{"class":"Waiting","queue":"q","args":[]}"#));
    queue.sort();
    assert_eq!(queue, [r#"{"class":"Polite","queue":"q","args":[]}"#, r#"{"class":"Stubborn","queue":"q","args":[]}"#]);
    // The stubborn handler finishing later reports nothing.
    release.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!((raw.stat(&n, "processed"), raw.stat(&n, "failed")), (0, 0));
    assert_eq!(raw.int(&["LLEN", &format!("{n}:queue:q")]), 3);
}

#[test]
fn graceful_stop_lets_a_job_finish_within_the_grace_period() {
    let s = Server::start_with(Opts::timer());
    let n = ns("grace-ok");
    let mut raw = s.conn();
    Client::connect(&s.url(), &n).expect("connect").enqueue("q", "Short", "[]").expect("enqueue");
    let running = Arc::new(AtomicBool::new(false));
    let mut o = options(&s.url(), &n, &["q"]);
    o.grace = Duration::from_secs(30);
    let mut w = Worker::new(o);
    let r = running.clone();
    w.handle("Short", move |_| {
        r.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(400));
        Ok(())
    });
    let stop = w.stop_handle();
    let t = spawn(w);
    wait_until(30, "the job running", || running.load(Ordering::SeqCst));
    stop.stop();
    let summary = t.join().expect("join");
    assert_eq!(summary.done, 1, "{summary:?}");
    assert_eq!(raw.stat(&n, "processed"), 1);
}

#[test]
fn unknown_class_fails_with_node_resque_message_and_policies_apply() {
    let s = Server::start_with(Opts::timer());
    let n = ns("unknown");
    let mut raw = s.conn();
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    c.enqueue("q", "Ghost", "[1]").expect("enqueue");
    c.enqueue("q", "Flaky", "[2]").expect("enqueue");
    c.enqueue("q", "Panics", "[3]").expect("enqueue");
    c.enqueue("q", "Later", "[4]").expect("enqueue");
    let mut o = options(&s.url(), &n, &["q"]);
    // Retries for everything, immediately (backoff 0): yet Ghost fails at once.
    o.rules = Rules::retry_all(RetryPolicy::new(3, vec![Duration::ZERO]));
    let mut w = Worker::new(o);
    let events = Events::default();
    events.attach(&mut w);
    let deliveries: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let d = deliveries.clone();
    w.handle("Flaky", move |job| {
        d.lock().expect("lock").push(("Flaky".into(), job.deliveries));
        if job.deliveries < 3 {
            return Err(std::io::Error::other("not yet").into());
        }
        Ok(())
    });
    w.handle("Panics", |_| panic!("kaboom"));
    let d = deliveries.clone();
    w.handle("Later", move |job| {
        d.lock().expect("lock").push(("Later".into(), job.deliveries));
        if job.deliveries == 1 {
            return Err(JobError::requeue(None));
        }
        Ok(())
    });
    let stop = w.stop_handle();
    let t = spawn(w);
    wait_until(30, "all settled", || raw.stat(&n, "processed") == 2 && raw.int(&["LLEN", &format!("{n}:failed")]) == 2);
    stop.stop();
    let summary = t.join().expect("join");
    let failed: Vec<serde_json::Value> = raw
        .strings(&["LRANGE", &format!("{n}:failed"), "0", "-1"])
        .iter()
        .map(|r| serde_json::from_str(r).expect("json"))
        .collect();
    let ghost = failed.iter().find(|r| r["payload"]["class"] == "Ghost").expect("Ghost failed");
    assert_eq!(ghost["exception"], "Error");
    assert_eq!(ghost["error"], "No job defined for class \"Ghost\"");
    let panics = failed.iter().find(|r| r["payload"]["class"] == "Panics").expect("Panics failed");
    assert_eq!(panics["exception"], "Panic");
    assert!(panics["error"].as_str().expect("error").contains("kaboom"));
    let mut seen = deliveries.lock().expect("lock").clone();
    seen.sort();
    assert_eq!(
        seen,
        [("Flaky".into(), 1), ("Flaky".into(), 2), ("Flaky".into(), 3), ("Later".into(), 1), ("Later".into(), 2)]
    );
    // Ghost: 1 failure; Flaky: 2 retried failures; Panics: 3 attempts, the last filed.
    assert_eq!(raw.stat(&n, "failed"), 1 + 2 + 3);
    assert_eq!(summary, Summary { done: 2, failed: 6, retried: 4, requeued: 1, unreported: 0 });
    let ghost_end = events.ends().into_iter().find(|e| e.0 == "Ghost").expect("Ghost's end");
    assert!(matches!(ghost_end.2, Outcome::Failed { fate: Fate::Failed, .. }), "{ghost_end:?}");
}

#[test]
fn lost_ack_reply_is_retried_and_not_double_completed() {
    let s = Server::start_with(Opts::timer());
    let proxy = Proxy::start(s.port);
    let n = ns("lost-ack");
    let mut raw = s.conn();
    Client::connect(&s.url(), &n).expect("connect").enqueue("q", "Job", "[1]").expect("enqueue");
    proxy.cut_after("TQ.ACK");
    let mut w = Worker::new(options(&proxy.url(), &n, &["q"]));
    let events = Events::default();
    events.attach(&mut w);
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let stop = w.stop_handle();
    let stopper = stop.clone();
    w.handle("Job", move |_| {
        r.fetch_add(1, Ordering::SeqCst);
        // A stopping worker takes no next job: it sends a plain TQ.ACK.
        stopper.stop();
        Ok(())
    });
    let t = spawn(w);
    wait_until(30, "the job reported", || !events.ends().is_empty());
    let summary = t.join().expect("join");
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1, "the ACK's reply was cut");
    assert_eq!(events.ends()[0].2, Outcome::Done, "NOJOB after the lost reply = already done");
    assert_eq!(summary.done, 1);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(raw.stat(&n, "processed"), 1, "counted once");
    assert!(events.count(|e| matches!(e, Event::RedisDown { action: "ack", .. })) == 1);
}

#[test]
fn client_ack_and_pop_answers_a_repeat_as_the_first() {
    let s = Server::start_with(Opts::timer());
    let n = ns("client-ackpop");
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    let lease = Duration::from_secs(60);
    for i in 1..=3 {
        c.enqueue("q", "Job", &format!("[{i}]")).expect("enqueue");
    }
    assert_eq!(c.held_delivery("w").expect("held"), None);
    let first = c.pop("w", &["q"], lease).expect("pop").expect("a job");
    assert_eq!(c.held_delivery("w").expect("held"), Some(first.delivery));
    let next = c.ack_and_pop("w", first.delivery, &["q"], lease).expect("ack and pop").expect("the next job");
    assert_eq!((next.args_json.as_str(), next.deliveries), ("[2]", 1));
    // Sent again (as after a lost reply): the same job, nothing more done.
    let again = c.ack_and_pop("w", first.delivery, &["q"], lease).expect("repeat").expect("the same job");
    assert_eq!((again.delivery, again.args_json.as_str()), (next.delivery, "[2]"));
    let each = c.ack_and_pop_each(&[("w", next.delivery)], &["q"], lease).expect("pipeline");
    let third = each.into_iter().next().expect("one answer").expect("ok").expect("the third job");
    assert_eq!(third.args_json, "[3]");
    assert!(c.ack_and_pop("w", third.delivery, &["q"], lease).expect("ack").is_none());
    assert!(c.ack_and_pop("w", third.delivery, &["q"], lease).expect("repeat").is_none());
    assert_eq!(c.held_delivery("w").expect("held"), None);
    assert!(c.ack_and_pop("w", third.delivery + 1, &["q"], lease).expect_err("not held").is(NOJOB));
    let mut raw = s.conn();
    assert_eq!(raw.stat(&n, "processed"), 3);
}

/// Runs a worker on queue `q` through `proxy` until `n` jobs are processed;
/// returns the (args, delivery) of each run and the events.
fn run_through(s: &Server, proxy: &Proxy, n: &str, jobs: usize) -> (Vec<(String, u32)>, Events) {
    let mut raw = s.conn();
    let mut w = Worker::new(options(&proxy.url(), n, &["q"]));
    let events = Events::default();
    events.attach(&mut w);
    let seen: Arc<Mutex<Vec<(String, u32)>>> = Arc::default();
    let sn = seen.clone();
    w.handle("Job", move |job| {
        sn.lock().expect("lock").push((job.args_json.clone(), job.deliveries));
        Ok(())
    });
    run_each_once(&mut raw, w, n, jobs as i64);
    let seen = seen.lock().expect("lock").clone();
    (seen, events)
}

#[test]
fn lost_reply_of_an_ack_that_took_the_next_job_is_answered_again_by_the_resend() {
    let s = Server::start_with(Opts::timer());
    let proxy = Proxy::start(s.port);
    let n = ns("lost-ackpop");
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    c.enqueue("q", "Job", "[2]").expect("enqueue");
    // The ACK of [1] is applied and takes [2]; its reply is lost. The same
    // command sent again answers with [2] and completes nothing more.
    proxy.cut_after("TQ.POP");
    let (seen, events) = run_through(&s, &proxy, &n, 2);
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(seen, [("[1]".to_string(), 1), ("[2]".to_string(), 1)], "each ran once, on its first delivery");
    assert_eq!(events.count(|e| matches!(e, Event::RecoveredPop { .. })), 0);
    assert_eq!(events.count(|e| matches!(e, Event::RedisDown { action: "ack", .. })), 1);
    let ends: Vec<Outcome> = events.ends().into_iter().map(|e| e.2).collect();
    assert_eq!(ends, [Outcome::Done, Outcome::Done]);
}

#[test]
fn an_ack_lost_on_the_way_is_sent_again_and_twins_run_once_each() {
    let s = Server::start_with(Opts::timer());
    let proxy = Proxy::start(s.port);
    let n = ns("lost-ack-twins");
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    // Never reaches the server: the record still shows the same payload, so
    // the worker knows the ACK was not applied and sends it again.
    proxy.cut_before("TQ.POP");
    let (seen, events) = run_through(&s, &proxy, &n, 2);
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(seen, [("[1]".to_string(), 1), ("[1]".to_string(), 1)]);
    assert_eq!(events.count(|e| matches!(e, Event::RecoveredPop { .. })), 0);
    assert_eq!(events.count(|e| matches!(e, Event::RedisDown { action: "ack", .. })), 1);

    // Applied, reply lost: the twin was not taken with it, so the record
    // shows nothing held and the ACK counts as done.
    let n = ns("lost-ack-twins-after");
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    proxy.cut_after("TQ.POP");
    let (seen, events) = run_through(&s, &proxy, &n, 2);
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 2);
    assert_eq!(seen, [("[1]".to_string(), 1), ("[1]".to_string(), 1)]);
    assert_eq!(events.count(|e| matches!(e, Event::RecoveredPop { .. })), 0);
}

#[test]
fn lost_pop_reply_the_next_pop_hands_the_same_job_out_and_it_runs_once() {
    let s = Server::start_with(Opts::timer());
    let proxy = Proxy::start(s.port);
    let n = ns("lost-pop");
    let mut raw = s.conn();
    Client::connect(&s.url(), &n).expect("connect").enqueue("q", "Job", "[1]").expect("enqueue");
    proxy.cut_after("TQ.BPOP");
    let mut w = Worker::new(options(&proxy.url(), &n, &["q"]));
    let events = Events::default();
    events.attach(&mut w);
    let seen: Arc<Mutex<Vec<u32>>> = Arc::default();
    let sn = seen.clone();
    w.handle("Job", move |job| {
        sn.lock().expect("lock").push(job.deliveries);
        Ok(())
    });
    run_until_processed(&mut raw, w, &n, 1);
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    assert_eq!(events.count(|e| matches!(e, Event::RedisDown { action: "pop", .. })), 1);
    assert_eq!(*seen.lock().expect("lock"), [1], "ran once, on its first delivery (the same one, handed out again)");
}

#[test]
fn lease_lost_is_seen_and_the_late_report_refused() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "300", "max-deliveries", "10"]));
    let n = ns("lease");
    let mut raw = s.conn();
    // The client: a job held past its lease is given back; the late ACK is refused.
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    let job = c.pop("lonely:1", &["q"], Duration::from_secs(1)).expect("pop").expect("job");
    wait_until(30, "the lease to run out", || raw.int(&["LLEN", &format!("{n}:queue:q")]) == 1);
    let e = c.ack(&job.worker, job.delivery).expect_err("late");
    assert!(e.is(LEASELOST), "{e:?}");
    let e = c.heartbeat(&job.worker, Duration::from_secs(1), Some(job.delivery)).expect_err("not renewed");
    assert!(e.is(LEASELOST), "{e:?}");

    // A worker whose server stops answering (a stalled proxy) longer than
    // the lease: its heartbeat then finds the lease gone, its report is
    // refused, and the job, given back by the module, runs again.
    let proxy = Proxy::start(s.port);
    let mut o = options(&proxy.url(), &n, &["q"]);
    o.lease = Some(Duration::from_millis(300));
    let mut w = Worker::new(o);
    let events = Events::default();
    events.attach(&mut w);
    // Its first delivery here is the job's second (lonely:1 had the first).
    w.handle("Job", |job| {
        let until = Instant::now() + Duration::from_secs(20);
        while job.deliveries == 2 && !job.lease_lost() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    });
    let stop = w.stop_handle();
    let t = spawn(w);
    wait_until(30, "the job started", || events.count(|e| matches!(e, Event::JobStart { .. })) == 1);
    proxy.stall(true);
    // The module gives the job back (its lease is 300 ms from the last heartbeat).
    wait_until(30, "the job given back", || raw.int(&["LLEN", &format!("{n}:queue:q")]) == 1);
    proxy.stall(false);
    wait_until(30, "the job run again and done", || raw.stat(&n, "processed") == 1);
    stop.stop();
    t.join().expect("join");
    assert_eq!(events.count(|e| matches!(e, Event::LeaseLost { .. })), 1);
    let ends = events.ends();
    assert!(matches!(&ends[0].2, Outcome::NotHeld { error } if error.starts_with("LEASELOST")), "{ends:?}");
    assert_eq!(ends[1].2, Outcome::Done, "{ends:?}");
    assert_eq!(ends.len(), 2);
}

/// What each run saw: (args, deliveries, worker name).
type Runs = Arc<Mutex<Vec<(String, u32, String)>>>;

/// A worker of `slots` slots holding up to `prefetch` jobs each, on queue
/// `q`, whose handler records every run; class `Slow` sleeps 50 ms and
/// records `<ns>:stat:processed` as it starts.
fn prefetching(s: &Server, url: &str, n: &str, slots: usize, prefetch: usize) -> (Worker, Runs, Runs, Events) {
    let mut o = options(url, n, &["q"]);
    o.concurrency = slots;
    o.prefetch = prefetch;
    let mut w = Worker::new(o);
    let events = Events::default();
    events.attach(&mut w);
    let (runs, at_slow): (Runs, Runs) = Default::default();
    let r = runs.clone();
    w.handle("Job", move |job| {
        r.lock().expect("lock").push((job.args_json.clone(), job.deliveries, job.worker.clone()));
        Ok(())
    });
    let (r, a, stat) = (runs.clone(), at_slow.clone(), Mutex::new(s.conn()));
    let n = n.to_string();
    w.handle("Slow", move |job| {
        let done = stat.lock().expect("lock").stat(&n, "processed");
        a.lock().expect("lock").push((job.args_json.clone(), u32::try_from(done).unwrap_or(0), String::new()));
        std::thread::sleep(Duration::from_millis(50));
        r.lock().expect("lock").push((job.args_json.clone(), job.deliveries, job.worker.clone()));
        Ok(())
    });
    (w, runs, at_slow, events)
}

fn enqueue_all(s: &Server, n: &str, jobs: &[(&str, String)]) {
    let mut raw = s.conn();
    let mut pipe = redis::pipe();
    for (class, args) in jobs {
        pipe.cmd("TQ.ENQUEUE").arg(n).arg("q").arg(*class).arg(args).ignore();
    }
    pipe.query::<()>(&mut raw.0).expect("enqueue");
}

fn numbered(class: &str, ids: std::ops::RangeInclusive<usize>) -> Vec<(&str, String)> {
    ids.map(|i| (class, format!("[{i}]"))).collect()
}

#[test]
fn prefetch_runs_every_job_once_under_names_of_its_own() {
    const JOBS: usize = 2000;
    let s = Server::start_with(Opts::timer());
    let n = ns("prefetch");
    let mut raw = s.conn();
    enqueue_all(&s, &n, &numbered("Job", 1..=JOBS));
    let (w, runs, _, _) = prefetching(&s, &s.url(), &n, 2, 4);
    let names = w.options().slot_names();
    assert_eq!(names.len(), 8, "{names:?}");
    assert_eq!(run_until_processed(&mut raw, w, &n, JOBS as i64), Summary { done: JOBS as u64, ..Summary::default() });
    let runs = runs.lock().expect("lock");
    let mut args: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    args.sort();
    args.dedup();
    assert_eq!((runs.len(), args.len()), (JOBS, JOBS), "each job ran exactly once");
    assert!(runs.iter().all(|r| r.1 == 1), "none was delivered twice");
    let mut used: Vec<String> = runs.iter().map(|r| r.2.clone()).collect();
    used.sort();
    used.dedup();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(used, expected, "every name of every slot held jobs");
    assert_eq!(raw.int(&["LLEN", &format!("{n}:queue:q")]), 0);
    assert!(raw.strings(&["SMEMBERS", &format!("{n}:workers")]).is_empty(), "every name unregistered");
    assert!(raw.strings(&["KEYS", &format!("{n}:worker:*")]).is_empty());
}

#[test]
fn held_jobs_keep_their_lease_while_a_long_job_runs() {
    let s = Server::start_with(Opts::timer_with(&["lease-ms", "300"]));
    let n = ns("prefetch-lease");
    let mut raw = s.conn();
    let mut jobs = vec![("Long", "[0]".to_string())];
    jobs.extend(numbered("Job", 1..=3));
    enqueue_all(&s, &n, &jobs);
    let (mut w, runs, _, events) = prefetching(&s, &s.url(), &n, 1, 4);
    // Three leases long, while the other jobs wait under the slot's other names.
    w.handle("Long", |_| {
        std::thread::sleep(Duration::from_millis(1000));
        Ok(())
    });
    run_until_processed(&mut raw, w, &n, 4);
    let runs: Vec<(String, u32)> = runs.lock().expect("lock").iter().map(|r| (r.0.clone(), r.1)).collect();
    let once: Vec<(String, u32)> = (1..=3).map(|i| (format!("[{i}]"), 1)).collect();
    assert_eq!(runs, once, "in order, each delivered once: heartbeats kept the held jobs' leases");
    assert_eq!(events.count(|e| matches!(e, Event::LeaseLost { .. })), 0);
    assert!(events.ends().iter().all(|e| e.2 == Outcome::Done), "{:?}", events.ends());
}

#[test]
fn gathered_acks_go_before_a_job_of_a_class_that_ran_slow() {
    let s = Server::start_with(Opts::timer());
    let n = ns("prefetch-slow");
    let mut raw = s.conn();
    enqueue_all(&s, &n, &[("Slow", "[0]".into()), ("Job", "[1]".into()), ("Slow", "[2]".into())]);
    let (w, _, at_slow, _) = prefetching(&s, &s.url(), &n, 1, 4);
    run_until_processed(&mut raw, w, &n, 3);
    let seen: Vec<(String, u32)> = at_slow.lock().expect("lock").iter().map(|r| (r.0.clone(), r.1)).collect();
    // [1] is quick and [2] was held too, but Slow's last run was slow: [1]'s
    // ACK was sent before [2] started.
    assert_eq!(seen, [("[0]".to_string(), 0), ("[2]".to_string(), 2)]);
}

#[test]
fn a_stop_gives_prefetched_jobs_back_in_queue_order() {
    let s = Server::start_with(Opts::timer());
    let n = ns("prefetch-stop");
    let mut raw = s.conn();
    enqueue_all(&s, &n, &numbered("Job", 1..=6));
    let (mut w, _, _, events) = prefetching(&s, &s.url(), &n, 1, 4);
    let stop = w.stop_handle();
    let stopper = stop.clone();
    w.handle("Job", move |_| {
        stopper.stop();
        Ok(())
    });
    let summary = spawn(w).join().expect("join");
    assert_eq!(summary, Summary { done: 1, requeued: 3, ..Summary::default() });
    assert_eq!(raw.strings(&["LRANGE", &format!("{n}:queue:q"), "0", "-1"]).len(), 5);
    let args: Vec<String> = raw
        .strings(&["LRANGE", &format!("{n}:queue:q"), "0", "-1"])
        .iter()
        .filter_map(|p| serde_json::from_str::<serde_json::Value>(p).ok())
        .map(|v| v["args"].to_string())
        .collect();
    assert_eq!(args, ["[2]", "[3]", "[4]", "[5]", "[6]"], "the queue kept its order");
    let given_back = events
        .count(|e| matches!(e, Event::JobEnd { outcome: Outcome::Requeued { why: Requeue::NotStarted, .. }, .. }));
    assert_eq!(given_back, 3);
    assert_eq!(raw.stat(&n, "processed"), 1);
    assert!(raw.strings(&["SMEMBERS", &format!("{n}:workers")]).is_empty(), "every name unregistered");
}

/// Runs 8 jobs on one slot prefetching 4 through `proxy`, whose cut is
/// armed on the first pipeline of `TQ.POP ... ACK`; returns the runs and events.
fn prefetch_through(s: &Server, proxy: &Proxy, n: &str, cut_before: bool) -> (Vec<(String, u32)>, Events) {
    let mut raw = s.conn();
    enqueue_all(s, n, &numbered("Job", 1..=8));
    // The first command with an `ACK` argument: the ACKs of the first jobs run.
    if cut_before {
        proxy.cut_before("ACK");
    } else {
        proxy.cut_after("ACK");
    }
    let (w, runs, _, events) = prefetching(s, &proxy.url(), n, 1, 4);
    run_each_once(&mut raw, w, n, 8);
    let runs = runs.lock().expect("lock").iter().map(|r| (r.0.clone(), r.1)).collect();
    (runs, events)
}

#[test]
fn lost_replies_of_a_pipeline_of_acks_are_settled_name_by_name() {
    let s = Server::start_with(Opts::timer());
    let proxy = Proxy::start(s.port);
    // Applied, replies lost: each name took its next job unseen; each ACK
    // sent again answers with that job, which runs once, on its first
    // delivery, in order.
    let n = ns("prefetch-lost-after");
    let (runs, events) = prefetch_through(&s, &proxy, &n, false);
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 1);
    let expected: Vec<(String, u32)> = (1..=8).map(|i| (format!("[{i}]"), 1)).collect();
    assert_eq!(runs, expected, "in order, each once");
    assert_eq!(events.count(|e| matches!(e, Event::RecoveredPop { .. })), 0);
    assert!(events.ends().iter().all(|e| e.2 == Outcome::Done), "{:?}", events.ends());

    // Never sent: each record still shows the job just run, so each ACK is
    // sent again; nothing is given back.
    let n = ns("prefetch-lost-before");
    let (runs, events) = prefetch_through(&s, &proxy, &n, true);
    assert_eq!(proxy.cuts.load(Ordering::SeqCst), 2);
    let expected: Vec<(String, u32)> = (1..=8).map(|i| (format!("[{i}]"), 1)).collect();
    assert_eq!(runs, expected, "in order, each once");
    assert_eq!(events.count(|e| matches!(e, Event::RecoveredPop { .. })), 0);
    assert_eq!(events.count(|e| matches!(e, Event::RedisDown { action: "ack", .. })), 1);
}

#[test]
fn prefetch_is_checked() {
    for bad in [0, tq_client::worker::MAX_PREFETCH + 1] {
        let mut o = WorkerOptions::new("redis://127.0.0.1:1/", "resque", &["q"]);
        o.prefetch = bad;
        let e = Worker::new(o).run().expect_err("refused");
        assert!(e.to_string().contains("prefetch"), "{e}");
    }
}

#[test]
fn a_stop_does_not_wait_for_the_jobs_held_behind_a_stubborn_handler() {
    let s = Server::start_with(Opts::timer());
    let n = ns("prefetch-stubborn");
    let mut raw = s.conn();
    enqueue_all(&s, &n, &[("Stubborn", "[0]".into()), ("Job", "[1]".into())]);
    let mut o = options(&s.url(), &n, &["q"]);
    o.prefetch = 2;
    o.lease = Some(Duration::from_secs(30));
    o.grace = Duration::from_millis(200);
    o.cancel_wait = Duration::from_millis(300);
    let name = o.name.clone();
    let mut w = Worker::new(o);
    let (started, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let (st, rel) = (started.clone(), release.clone());
    w.handle("Stubborn", move |_| {
        st.store(true, Ordering::SeqCst);
        while !rel.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    });
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    w.handle("Job", move |_| {
        r.store(true, Ordering::SeqCst);
        Ok(())
    });
    let stop = w.stop_handle();
    let t = spawn(w);
    wait_until(30, "the stubborn job running", || started.load(Ordering::SeqCst));
    let asked = Instant::now();
    stop.stop();
    let summary = t.join().expect("join");
    // Waiting for the held job would take its 30 s lease.
    assert!(asked.elapsed() < Duration::from_secs(20), "{:?}", asked.elapsed());
    assert_eq!(summary, Summary { requeued: 1, ..Summary::default() });
    assert!(!ran.load(Ordering::SeqCst));
    // The stubborn job is back; the held one stays in flight until its lease ends.
    let queue = raw.strings(&["LRANGE", &format!("{n}:queue:q"), "0", "-1"]);
    assert_eq!(queue, [r#"{"class":"Stubborn","queue":"q","args":[0]}"#]);
    assert_eq!(raw.int(&["EXISTS", &format!("{n}:worker:{name}+2:q")]), 1);
    release.store(true, Ordering::SeqCst);
}

/// A process that died holding a job, restarted under the same name: the
/// library's first pop under each slot name hands it the job that name
/// held, which runs at once (same delivery), not after its lease (10 min
/// here).
#[test]
fn a_worker_restarted_under_the_same_name_runs_the_jobs_its_names_held() {
    let s = Server::start_with(Opts::timer());
    let n = ns("lib-restart");
    let mut raw = s.conn();
    let o = options(&s.url(), &n, &["q"]);
    let names = o.slot_names();
    let mut c = Client::connect(&s.url(), &n).expect("connect");
    c.enqueue("q", "Job", "[1]").expect("enqueue");
    c.enqueue("q", "Job", "[2]").expect("enqueue");
    // The previous process: took [1] under the first slot's name, then died.
    let orphan = c.pop(&names[0], &["q"], Duration::from_secs(600)).expect("pop").expect("a job");
    let mut w = Worker::new(o);
    let seen: Arc<Mutex<Vec<(String, u64)>>> = Arc::default();
    let sn = seen.clone();
    w.handle("Job", move |job| {
        sn.lock().expect("lock").push((job.args_json.clone(), job.delivery));
        Ok(())
    });
    run_until_processed(&mut raw, w, &n, 2);
    let seen = seen.lock().expect("lock").clone();
    assert!(seen.contains(&("[1]".to_string(), orphan.delivery)), "the orphan ran under its delivery: {seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(raw.int(&["LLEN", &format!("{n}:failed")]), 0);
}
