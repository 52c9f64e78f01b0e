//! The processor loop: a [`Worker`] takes jobs from its queues with
//! `TQ.BPOP` on N slots (one thread, one connection and one worker name
//! each), runs the handler registered for each job's class, keeps the job's
//! lease with heartbeats while it runs, and reports it (`TQ.ACK`, `TQ.FAIL`
//! with the retry policy that applies, or `TQ.NACK`).
//!
//! ```no_run
//! use tq_client::worker::{Worker, WorkerOptions};
//! use tq_client::job::JobError;
//!
//! let mut w = Worker::new(WorkerOptions::new("redis://127.0.0.1:6379/", "resque", &["high", "low"]));
//! w.handle("add", |job| {
//!     let sum: i64 = job.args.as_array().into_iter().flatten().filter_map(|v| v.as_i64()).sum();
//!     if sum < 0 { return Err(JobError::fail("Negative", format!("sum is {sum}"))) }
//!     Ok(())
//! });
//! let stop = w.stop_handle(); // stop.stop() from another thread or a signal handler
//! let summary = w.run().expect("the worker could not start");
//! ```
//!
//! **Stopping.** [`StopHandle::stop`] is graceful: no slot takes a new job
//! (a job a pop returns after the stop is given back at once with
//! `TQ.NACK`); running jobs get `grace` to finish and are reported as usual.
//! Then their [`Job::is_cancelled`] turns true; a handler that returns an
//! error after that has its job given back (`TQ.NACK`), one that returns
//! `Ok` is acknowledged. Jobs whose handler has still not returned
//! `cancel_wait` later are given back by the worker itself (their handler's
//! result is then ignored) and `run` returns; with prefetch, the other jobs
//! such a slot holds come back when their lease runs out. [`StopHandle::stop_now`]
//! reports nothing more: `run` returns at once, heartbeats stop, and jobs in
//! flight come back when their lease runs out.
//!
//! **One round trip per job.** A slot acknowledges a job with
//! `TQ.POP ... ACK`, which takes the next job in the same step; it waits
//! with `TQ.BPOP` only when that finds the queues empty.
//!
//! **Prefetch.** With `prefetch` k > 1 a slot drives k worker names (each
//! its own node-resque worker with its own in-flight record and lease, kept
//! by heartbeats while its job waits): it takes a job under each, runs them
//! one after another, oldest first, and acknowledges a run of quick jobs in
//! one round trip, a pipeline of `TQ.POP ... ACK` whose replies hand out the
//! next jobs. ACKs wait only for quick jobs: they are sent after a job that
//! ran 2 ms or more and before a job of a class whose last run on the slot
//! took that long. Failures and requeues are reported one by one. A lost
//! pipeline is settled name by name from the in-flight records, as below.
//! A stop gives held jobs back newest first, so each queue keeps its order.
//! Prefetch trades fairness for throughput: held jobs wait for this slot
//! while other workers may be idle; it pays off for many short jobs.
//!
//! **Redis going away.** Every call is retried with a growing pause (100 ms
//! doubling to 2 s) until Redis answers; nothing is dropped and the worker
//! never gives up on its own. A command whose reply was lost is sent again
//! as it was: every report names the job's delivery id, and the module
//! answers a repeat as it answered the first (a report already applied
//! answers as before; a `TQ.POP ... ACK` already applied answers with the
//! job it took; a pop under a name that holds a job hands that job out
//! again). `NOJOB` or `LEASELOST` in answer mean the module gave the job
//! back meanwhile. A worker restarted under the same name gets the job the
//! name held from its first pop and runs it at once. While stopping, a
//! report that cannot reach Redis is abandoned once the job's lease has run
//! out (the module has then given the job back itself).
//!
//! **Leases.** Every take asks for the lease kept, `lease` if set, else
//! [`DEFAULT_LEASE`] (the server's `tq.lease-ms` is never guessed); each
//! slot sends `TQ.HEARTBEAT` every third of it, naming the delivery it holds
//! (so only that job's lease is renewed), or none while it holds nothing (so
//! broadcasts and node-resque's worker pings see it alive). A heartbeat that
//! finds the job's lease gone sets [`Job::lease_lost`]; the job's report
//! will then get `LEASELOST`.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::client::{self, Client, FailOutcome};
use crate::config::Rules;
use crate::job::{no_job_defined, Failure, Job, JobError};

mod event;
mod heartbeat;
mod report;
mod slot;
mod stop;

use event::Counters;
pub use event::{Event, Fate, Outcome, Requeue, Summary};
use heartbeat::heartbeat_loop;
use report::*;
use slot::*;
pub use stop::StopHandle;
use stop::*;

/// A job handler: runs the job, says how it went. Called from the slot
/// threads, possibly at the same time.
pub type Handler = Arc<dyn Fn(&Job) -> Result<(), JobError> + Send + Sync>;
/// The event hook: receives the worker's events (logging, metrics); called
/// from any thread.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Hands `e` to the hook, if any; a hook that panics does not take the
/// worker down.
fn deliver(events: &Option<EventSink>, e: &Event) {
    if let Some(events) = events {
        let _ = catch_unwind(AssertUnwindSafe(|| events(e)));
    }
}

/// Lease asked for when the options give none.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(20);
/// A job that runs this long or more is slow: a prefetching slot does not
/// let gathered ACKs wait for it.
const ACK_BATCH_WINDOW: Duration = Duration::from_millis(2);
/// Most jobs a slot may hold.
pub const MAX_PREFETCH: usize = 64;

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub redis_url: String,
    pub ns: String,
    /// Queues in priority order; `["*"]` = every queue, alphabetically.
    pub queues: Vec<String>,
    /// Slots: jobs run at the same time (one thread each).
    pub concurrency: usize,
    /// Jobs a slot holds at most: with more than 1 it takes the next jobs
    /// before it runs them (each under a worker name of its own) and
    /// acknowledges a run of quick jobs in one round trip. See the module
    /// docs.
    pub prefetch: usize,
    /// Base name; worker i (1-based) is `<name>+<i>`, as node-resque's
    /// MultiWorker names its workers (slot s holds names `(s-1)*prefetch+1`
    /// to `s*prefetch`). At most one `:` (node-resque parses worker names as
    /// `host:pid`). Must be unique among running workers.
    pub name: String,
    /// How long running jobs may go on after a graceful stop.
    pub grace: Duration,
    /// After the grace period, how long handlers get to react to
    /// [`Job::is_cancelled`] before the worker gives their jobs back.
    pub cancel_wait: Duration,
    /// The lease to keep; None = the module's `tq.lease-ms`.
    pub lease: Option<Duration>,
    /// Longest `TQ.BPOP` wait (also how soon an idle slot sees a stop).
    pub poll: Duration,
    /// Time limit of every Redis call (a `TQ.BPOP` gets `poll` more).
    pub io_timeout: Duration,
    /// Retry policies per class / queue (timeouts in it are not used here).
    pub rules: Rules,
}

impl WorkerOptions {
    /// One slot named `<hostname>:<pid>+1`, 10 s grace, no retries.
    pub fn new<Q: AsRef<str>>(redis_url: &str, ns: &str, queues: &[Q]) -> WorkerOptions {
        WorkerOptions {
            redis_url: redis_url.to_string(),
            ns: ns.to_string(),
            queues: queues.iter().map(|q| q.as_ref().to_string()).collect(),
            concurrency: 1,
            prefetch: 1,
            name: default_name(),
            grace: Duration::from_secs(10),
            cancel_wait: Duration::from_secs(5),
            lease: None,
            poll: Duration::from_secs(1),
            io_timeout: Duration::from_secs(5),
            rules: Rules::none(),
        }
    }

    /// The worker names of the slots, slot by slot.
    pub fn slot_names(&self) -> Vec<String> {
        let n = self.concurrency.max(1).saturating_mul(self.prefetch.max(1));
        (1..=n).map(|i| format!("{}+{i}", self.name)).collect()
    }

    fn check(&self) -> Result<(), WorkerError> {
        let bad = |m: String| Err(WorkerError::Options(m));
        if self.queues.is_empty() || self.queues.iter().any(|q| q.is_empty() || q.contains('\0')) {
            return bad("give at least one queue; names must not be empty".into());
        }
        if self.queues.len() > 1 && self.queues.iter().any(|q| q == "*") {
            return bad("'*' must be the only queue when used".into());
        }
        if self.concurrency == 0 {
            return bad("concurrency must be at least 1".into());
        }
        if self.prefetch == 0 || self.prefetch > MAX_PREFETCH {
            return bad(format!("prefetch must be 1 to {MAX_PREFETCH}"));
        }
        if self.name.is_empty() || self.name.contains('\0') || self.name.matches(':').count() > 1 {
            return bad(format!("worker name '{}' must be non-empty with at most one ':'", self.name));
        }
        if self.ns.is_empty() {
            return bad("the namespace must not be empty".into());
        }
        Ok(())
    }
}

/// `<hostname>:<pid>`.
pub fn default_name() -> String {
    format!("{}:{}", crate::host::hostname().replace(':', "-"), std::process::id())
}

/// Why [`Worker::run`] could not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerError {
    /// Bad options (no queues, zero concurrency, ...).
    Options(String),
    /// Redis refused the worker's first commands for a reason retrying will
    /// not fix (the module is not loaded, an ACL, a key of the wrong type).
    Redis(client::Error),
}

impl std::fmt::Display for WorkerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkerError::Options(m) => write!(f, "{m}"),
            WorkerError::Redis(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for WorkerError {}

/// A pool of job-running slots on one namespace. See the module docs.
pub struct Worker {
    opts: WorkerOptions,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    /// None until [`Worker::on_event`]: events nobody listens to are not
    /// even made (a job's start would copy the job).
    events: Option<EventSink>,
    stop: StopHandle,
}

impl Worker {
    /// A worker with no handlers; its events are dropped until [`Worker::on_event`]
    /// sets where they go (the library writes nothing to the terminal).
    pub fn new(opts: WorkerOptions) -> Worker {
        Worker { opts, handlers: HashMap::new(), fallback: None, events: None, stop: StopHandle::new() }
    }

    pub fn options(&self) -> &WorkerOptions {
        &self.opts
    }

    /// Registers the handler of `class` (replacing any before).
    pub fn handle<F>(&mut self, class: &str, f: F) -> &mut Worker
    where
        F: Fn(&Job) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.handlers.insert(class.to_string(), Arc::new(f));
        self
    }

    /// The handler of every class without its own. Without one, such jobs
    /// fail with node-resque's `No job defined for class "X"` (never retried).
    pub fn fallback<F>(&mut self, f: F) -> &mut Worker
    where
        F: Fn(&Job) -> Result<(), JobError> + Send + Sync + 'static,
    {
        self.fallback = Some(Arc::new(f));
        self
    }

    /// The event hook: every [`Event`] of the run (logging, metrics), called
    /// from any thread; a hook that panics does not stop the worker. `tq work`
    /// writes its log lines from here.
    pub fn on_event<F>(&mut self, f: F) -> &mut Worker
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.events = Some(Arc::new(f));
        self
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    fn emit(&self, e: Event) {
        deliver(&self.events, &e);
    }

    /// Runs until stopped (see [`StopHandle`]). Errors only at the start: bad
    /// options, or Redis refusing the first heartbeat (module not loaded,
    /// ACL); Redis being unreachable is waited out, not an error. A worker
    /// runs once: after a stop, `run` returns at once.
    pub fn run(&self) -> Result<Summary, WorkerError> {
        self.opts.check()?;
        let opts = self.opts.clone();
        let mut probe = Client::new(&opts.redis_url, &opts.ns, opts.io_timeout).map_err(WorkerError::Redis)?;
        let names = opts.slot_names();
        let Some(lease) = self.startup(&mut probe, &names)? else {
            let summary = Summary::default();
            self.emit(Event::Stopped { summary: summary.clone(), at_once: self.stop.is_stopping_now() });
            return Ok(summary);
        };
        let now = Instant::now();
        let per_thread = opts.prefetch.max(1);
        let slots: Vec<Arc<Slot>> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Arc::new(Slot {
                    name: n.clone(),
                    thread: i / per_thread,
                    st: Mutex::new(SlotState {
                        phase: Phase::Idle,
                        seq: 0,
                        job: None,
                        delivery: None,
                        lease_until: now,
                        next_heartbeat: now + (lease / 3).max(Duration::from_millis(1)),
                        finished: false,
                    }),
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            opts,
            handlers: self.handlers.clone(),
            fallback: self.fallback.clone(),
            events: self.events.clone(),
            stop: self.stop.clone(),
            slots,
            lease,
            counters: Counters::default(),
        });
        shared.emit(Event::Started {
            name: shared.opts.name.clone(),
            slots: names.clone(),
            queues: shared.opts.queues.clone(),
            lease,
            concurrency: shared.opts.concurrency,
        });
        let quit_heartbeats = Arc::new(AtomicBool::new(false));
        let heartbeats = {
            let (sh, quit) = (shared.clone(), quit_heartbeats.clone());
            std::thread::Builder::new().name("tq-heartbeat".into()).spawn(move || heartbeat_loop(&sh, &quit))
        };
        let mut threads: Vec<Option<JoinHandle<()>>> = Vec::new();
        for i in 0..shared.opts.concurrency {
            let sh = shared.clone();
            let t = std::thread::Builder::new().name(format!("tq-slot-{}", i + 1)).spawn(move || {
                let mine = sh.slots.iter().skip(i * per_thread).take(per_thread).cloned().collect::<Vec<_>>();
                slot_loop(&sh, &mine);
                for slot in &mine {
                    lock(&slot.st).finished = true;
                }
            });
            match t {
                Ok(t) => threads.push(Some(t)),
                Err(e) => {
                    // Could not start every slot: stop the ones that started.
                    shared.stop.stop();
                    shared.emit(Event::Error {
                        worker: shared.opts.name.clone(),
                        action: "start",
                        error: format!("cannot start a thread: {e}"),
                        retry_in: Duration::ZERO,
                    });
                    break;
                }
            }
        }

        // Wait for a stop.
        while !shared.stop.sleep_unless(Duration::from_secs(3600), STOPPING) {}
        let at_once = self.shutdown(&shared, &mut probe);
        quit_heartbeats.store(true, Ordering::SeqCst);
        if !at_once {
            if let Ok(h) = heartbeats {
                let _ = h.join();
            }
            for t in threads.iter_mut() {
                if let Some(t) = t.take_if(|t| t.is_finished()) {
                    let _ = t.join();
                }
            }
            untrack(&shared, &mut probe);
        }
        let summary = shared.counters.summary();
        shared.emit(Event::Stopped { summary: summary.clone(), at_once });
        Ok(summary)
    }

    /// The lease to keep, after a first heartbeat of every slot (which checks
    /// the module answers and the user may run it). None if stopped meanwhile.
    fn startup(&self, probe: &mut Client, names: &[String]) -> Result<Option<Duration>, WorkerError> {
        let mut backoff = Backoff::new();
        let mut down = false;
        loop {
            if self.stop.is_stopping() {
                return Ok(None);
            }
            let attempt = (|| -> Result<Duration, client::Error> {
                let lease = self.opts.lease.unwrap_or(DEFAULT_LEASE).max(Duration::from_millis(3));
                for n in names {
                    probe.heartbeat(n, lease, None)?;
                }
                Ok(lease)
            })();
            match attempt {
                Ok(lease) => {
                    if down {
                        self.emit(Event::RedisBack { worker: self.opts.name.clone(), action: "start" });
                    }
                    return Ok(Some(lease));
                }
                Err(e) if e.is_transient() => {
                    let pause = backoff.step();
                    if !down {
                        self.emit(Event::RedisDown {
                            worker: self.opts.name.clone(),
                            action: "start",
                            error: e.to_string(),
                            retry_in: pause,
                        });
                        down = true;
                    }
                    self.stop.sleep_unless(pause, STOPPING);
                }
                Err(e) => return Err(WorkerError::Redis(e)),
            }
        }
    }

    /// After a stop: waits for the slots per the grace rules. True if the
    /// stop became immediate.
    fn shutdown(&self, sh: &Arc<Shared>, probe: &mut Client) -> bool {
        let running = |sh: &Shared| sh.slots.iter().filter(|s| lock(&s.st).phase == Phase::Running).count();
        let all_finished = |sh: &Shared| sh.slots.iter().all(|s| lock(&s.st).finished);
        let wait = |until: Instant, done: &dyn Fn() -> bool| -> bool {
            loop {
                if sh.stop.is_stopping_now() {
                    return true;
                }
                if done() || Instant::now() >= until {
                    return false;
                }
                sh.stop.sleep_unless(TICK, STOP_NOW);
            }
        };
        if !sh.stop.is_stopping_now() {
            sh.emit(Event::Stopping { grace: sh.opts.grace, running: running(sh) });
        }
        let grace_end = Instant::now() + sh.opts.grace;
        if wait(grace_end, &|| all_finished(sh)) {
            cancel_all(sh);
            return true;
        }
        let n = running(sh);
        if n > 0 {
            sh.emit(Event::Cancelling { running: n });
            cancel_all(sh);
            if wait(Instant::now() + sh.opts.cancel_wait, &|| running(sh) == 0) {
                return true;
            }
        }
        // Handlers that still run: give their jobs back ourselves.
        let mut stuck = HashSet::new();
        for slot in &sh.slots {
            let job = {
                let mut st = lock(&slot.st);
                if st.phase != Phase::Running {
                    continue;
                }
                st.phase = Phase::Abandoned;
                st.job.clone()
            };
            stuck.insert(slot.thread);
            let Some(job) = job else { continue };
            let outcome = report(sh, slot, probe, job.delivery, &Action::Nack(None, Requeue::Abandoned));
            sh.counters.count(&outcome);
            sh.emit(Event::JobEnd { job, elapsed: Duration::ZERO, outcome });
        }
        // The other names of a stuck slot thread: their jobs (prefetched, or
        // done and not yet acknowledged) come back when their lease runs out.
        for slot in sh.slots.iter().filter(|s| stuck.contains(&s.thread)) {
            let mut st = lock(&slot.st);
            if !st.finished {
                st.phase = Phase::Abandoned;
            }
        }
        // Slots still reporting (bounded by the lease while stopping) or
        // waiting in a pop (bounded by the poll) end on their own.
        let settled = || {
            sh.slots.iter().all(|s| {
                let st = lock(&s.st);
                st.finished || st.phase == Phase::Abandoned
            })
        };
        let limit = sh.lease + sh.opts.poll + sh.opts.io_timeout * 2;
        if wait(Instant::now() + limit, &settled) {
            cancel_all(sh);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_names_follow_multiworker() {
        let mut o = WorkerOptions::new("redis://x/", "resque", &["q"]);
        o.name = "host:42".into();
        o.concurrency = 3;
        assert_eq!(o.slot_names(), ["host:42+1", "host:42+2", "host:42+3"]);
        assert!(o.check().is_ok());
        assert!(default_name().ends_with(&format!(":{}", std::process::id())));
    }

    #[test]
    fn options_are_checked() {
        let base = WorkerOptions::new("redis://x/", "resque", &["q"]);
        let bad = |f: &dyn Fn(&mut WorkerOptions)| {
            let mut o = base.clone();
            f(&mut o);
            o.check().expect_err("bad options")
        };
        bad(&|o| o.queues.clear());
        bad(&|o| o.queues = vec!["a".into(), "*".into()]);
        bad(&|o| o.concurrency = 0);
        bad(&|o| o.name = "a:b:c".into());
        bad(&|o| o.name = String::new());
        let mut star = base.clone();
        star.queues = vec!["*".into()];
        assert!(star.check().is_ok());
    }
}
