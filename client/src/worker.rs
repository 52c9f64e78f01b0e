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

/// A job handler: runs the job, says how it went. Called from the slot
/// threads, possibly at the same time.
pub type Handler = Arc<dyn Fn(&Job) -> Result<(), JobError> + Send + Sync>;
/// Receives the worker's events (logging, metrics); called from any thread.
pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

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

/// What became of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Acknowledged (`TQ.ACK`): counted in `stat:processed`.
    Done,
    /// Failed (`TQ.FAIL`): counted in `stat:failed`; `fate` says whether it
    /// will run again.
    Failed { failure: Failure, fate: Fate },
    /// Given back unfinished (`TQ.NACK`).
    Requeued { delay: Option<Duration>, why: Requeue },
    /// The module no longer counted the job as this worker's when it was
    /// reported (`LEASELOST`: its lease ran out and it was given back, it
    /// runs again; `NOJOB`: the worker was cleaned up by someone else).
    NotHeld { error: String },
    /// Not reported (Redis unreachable until the stop, or stopping at once):
    /// the job comes back when its lease runs out.
    Unreported,
    /// The report was refused with an unexpected error; the job comes back
    /// when its lease runs out.
    ReportFailed { error: String },
}

/// What `TQ.FAIL` did with a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// In `<ns>:failed` for good.
    Failed,
    /// Runs again after this delay.
    Retry { delay: Duration },
}

/// Why a job was given back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Its handler asked for it ([`JobError::Requeue`]).
    Handler,
    /// The worker was stopping and the handler gave up after the grace period.
    Stopping,
    /// The worker was stopping and the handler did not return in time: the
    /// worker gave the job back and ignores the handler's result.
    Abandoned,
    /// A pop returned it after the stop was asked: it never ran.
    NotStarted,
}

/// What a worker reports as it runs (for logs).
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        name: String,
        slots: Vec<String>,
        queues: Vec<String>,
        lease: Duration,
        concurrency: usize,
    },
    /// A slot took a job and calls its handler.
    JobStart {
        job: Job,
    },
    /// A job ended. `elapsed` is the handler's run time.
    JobEnd {
        job: Job,
        elapsed: Duration,
        outcome: Outcome,
    },
    /// A heartbeat found the job's lease gone.
    LeaseLost {
        job: Job,
    },
    /// Redis did not answer `action`; retried after `retry_in` (reported
    /// once per outage and slot).
    RedisDown {
        worker: String,
        action: &'static str,
        error: String,
        retry_in: Duration,
    },
    /// Redis answers again.
    RedisBack {
        worker: String,
        action: &'static str,
    },
    /// A pop's reply was lost and the job it had taken was given back.
    RecoveredPop {
        worker: String,
    },
    /// An unexpected error reply; retried after `retry_in`.
    Error {
        worker: String,
        action: &'static str,
        error: String,
        retry_in: Duration,
    },
    /// A graceful stop began.
    Stopping {
        grace: Duration,
        running: usize,
    },
    /// The grace period is over; these jobs are being cancelled.
    Cancelling {
        running: usize,
    },
    /// `run` returns.
    Stopped {
        summary: Summary,
        at_once: bool,
    },
}

/// Counts of what a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub done: u64,
    pub failed: u64,
    /// Of `failed`, the ones filed to run again.
    pub retried: u64,
    pub requeued: u64,
    /// Not reported, refused, or no longer held.
    pub unreported: u64,
}

#[derive(Default)]
struct Counters {
    done: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    requeued: AtomicU64,
    unreported: AtomicU64,
}

impl Counters {
    fn count(&self, o: &Outcome) {
        let c = match o {
            Outcome::Done => &self.done,
            Outcome::Failed { fate, .. } => {
                if matches!(fate, Fate::Retry { .. }) {
                    self.retried.fetch_add(1, Ordering::Relaxed);
                }
                &self.failed
            }
            Outcome::Requeued { .. } => &self.requeued,
            Outcome::NotHeld { .. } | Outcome::Unreported | Outcome::ReportFailed { .. } => &self.unreported,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }

    fn summary(&self) -> Summary {
        Summary {
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            requeued: self.requeued.load(Ordering::Relaxed),
            unreported: self.unreported.load(Ordering::Relaxed),
        }
    }
}

const RUNNING: u8 = 0;
const STOPPING: u8 = 1;
const STOP_NOW: u8 = 2;

/// Stops a running [`Worker`]; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct StopHandle(Arc<StopState>);

struct StopState {
    level: AtomicU8,
    lock: Mutex<()>,
    cv: Condvar,
}

impl StopHandle {
    fn new() -> StopHandle {
        StopHandle(Arc::new(StopState { level: AtomicU8::new(RUNNING), lock: Mutex::new(()), cv: Condvar::new() }))
    }

    /// Graceful stop: no new jobs; running ones get the grace period.
    pub fn stop(&self) {
        self.raise(STOPPING);
    }

    /// Stop at once: nothing more is reported; jobs in flight come back by
    /// their lease.
    pub fn stop_now(&self) {
        self.raise(STOP_NOW);
    }

    pub fn is_stopping(&self) -> bool {
        self.level() >= STOPPING
    }

    pub fn is_stopping_now(&self) -> bool {
        self.level() >= STOP_NOW
    }

    fn level(&self) -> u8 {
        self.0.level.load(Ordering::SeqCst)
    }

    fn raise(&self, to: u8) {
        self.0.level.fetch_max(to, Ordering::SeqCst);
        let _g = lock(&self.0.lock);
        self.0.cv.notify_all();
    }

    /// Sleeps `d`, or less if the stop level reaches `wake`. True if woken.
    fn sleep_unless(&self, d: Duration, wake: u8) -> bool {
        let end = Instant::now() + d;
        let mut g = lock(&self.0.lock);
        loop {
            if self.level() >= wake {
                return true;
            }
            let now = Instant::now();
            if now >= end {
                return false;
            }
            g = match self.0.cv.wait_timeout(g, end - now) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Pauses growing from 100 ms to 2 s, with a little jitter.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: BACKOFF_MIN }
    }

    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|t| t.subsec_nanos());
        let jitter = u64::from(nanos.unwrap_or(0) % 1000) * crate::duration::millis(d) / 5000; // up to +20%
        d + Duration::from_millis(jitter)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    /// The handler runs.
    Running,
    /// The slot reports the job.
    Reporting,
    /// The worker gave the job back while the handler still ran.
    Abandoned,
}

struct SlotState {
    phase: Phase,
    /// Bumped for every job taken.
    seq: u64,
    job: Option<Job>,
    /// The delivery the name holds (taken, running or being reported): the
    /// one its heartbeats renew.
    delivery: Option<u64>,
    /// When the lease of the job runs out at the latest, by our clock.
    lease_until: Instant,
    next_heartbeat: Instant,
    /// The slot's thread has ended.
    finished: bool,
}

struct Slot {
    name: String,
    /// The slot thread driving this name (several with prefetch).
    thread: usize,
    st: Mutex<SlotState>,
}

struct Shared {
    opts: WorkerOptions,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    events: EventSink,
    stop: StopHandle,
    slots: Vec<Arc<Slot>>,
    lease: Duration,
    counters: Counters,
}

impl Shared {
    /// Hands an event to the sink; a sink that panics does not take the
    /// worker down.
    fn emit(&self, e: Event) {
        let _ = catch_unwind(AssertUnwindSafe(|| (self.events)(&e)));
    }

    /// Reports Redis going away for `worker`, once per outage (`down`).
    fn redis_down(
        &self,
        down: &mut bool,
        worker: &str,
        action: &'static str,
        error: &dyn std::fmt::Display,
        retry_in: Duration,
    ) {
        if !*down {
            *down = true;
            self.emit(Event::RedisDown { worker: worker.to_string(), action, error: error.to_string(), retry_in });
        }
    }

    fn interval(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(1))
    }
}

/// A pool of job-running slots on one namespace. See the module docs.
pub struct Worker {
    opts: WorkerOptions,
    handlers: HashMap<String, Handler>,
    fallback: Option<Handler>,
    events: EventSink,
    stop: StopHandle,
}

impl Worker {
    /// A worker with no handlers; events go to stderr (warnings and errors).
    pub fn new(opts: WorkerOptions) -> Worker {
        Worker { opts, handlers: HashMap::new(), fallback: None, events: Arc::new(|_| {}), stop: StopHandle::new() }
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

    /// Where events go (replaces the default stderr logger).
    pub fn on_event<F>(&mut self, f: F) -> &mut Worker
    where
        F: Fn(&Event) + Send + Sync + 'static,
    {
        self.events = Arc::new(f);
        self
    }

    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    fn emit(&self, e: Event) {
        let _ = catch_unwind(AssertUnwindSafe(|| (self.events)(&e)));
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

fn cancel_all(sh: &Shared) {
    for slot in &sh.slots {
        if let Some(job) = &lock(&slot.st).job {
            job.cancel();
        }
    }
}

/// Forgets the slots' worker entries, pings and liveness (as node-resque's
/// worker does on `end()`), for slots that hold no job. Best effort.
fn untrack(sh: &Shared, probe: &mut Client) {
    let joined = sh.opts.queues.join(",");
    for slot in &sh.slots {
        let st = lock(&slot.st);
        if !(st.finished && st.phase == Phase::Idle) {
            continue;
        }
        drop(st);
        let ns = &sh.opts.ns;
        let mut p = redis::pipe();
        p.cmd("SREM").arg(format!("{ns}:workers")).arg(format!("{}:{joined}", slot.name)).ignore();
        p.cmd("DEL").arg(format!("{ns}:worker:ping:{}", slot.name)).ignore();
        p.cmd("ZREM").arg(format!("{ns}:tq:alive")).arg(&slot.name).ignore();
        let _ = probe.call_pipe(&p);
    }
}

enum Action {
    Ack,
    Fail(Failure, Option<crate::config::RetryPolicy>),
    Nack(Option<Duration>, Requeue),
}

/// One worker name a slot thread drives, and what the thread knows of it.
struct Lane {
    slot: Arc<Slot>,
    /// A job taken and not started yet, and when the command that took it
    /// was sent.
    held: Option<(Job, Instant)>,
    /// A pop's reply was lost: the name may hold a job it never saw (its
    /// next pop hands that job out again).
    maybe_holding: bool,
    /// No pop under this name before then.
    resume_at: Instant,
    /// The last error reported, so a persisting one is reported once.
    last_error: Option<String>,
}

impl Lane {
    fn report_error(&mut self, sh: &Shared, action: &'static str, error: String, retry_in: Duration) {
        if self.last_error.as_deref() != Some(error.as_str()) {
            sh.emit(Event::Error { worker: self.slot.name.clone(), action, error: error.clone(), retry_in });
            self.last_error = Some(error);
        }
    }
}

/// A slot thread's connection, whether Redis is down for it, and the
/// classes whose last run here was slow.
struct Link {
    client: Client,
    backoff: Backoff,
    down: bool,
    slow: HashSet<String>,
}

impl Link {
    fn up(&mut self, sh: &Shared, worker: &str, action: &'static str) {
        self.backoff = Backoff::new();
        if self.down {
            self.down = false;
            sh.emit(Event::RedisBack { worker: worker.to_string(), action });
        }
    }

    /// Redis did not answer: waits a growing pause (less if stopping).
    fn wait_out(&mut self, sh: &Shared, worker: &str, action: &'static str, e: &client::Error) {
        let pause = self.backoff.step();
        sh.redis_down(&mut self.down, worker, action, e, pause);
        sh.stop.sleep_unless(pause, STOPPING);
    }
}

/// One slot: pop, run, report, until stopped, under each of its worker
/// names in turn (one name unless prefetching).
fn slot_loop(sh: &Arc<Shared>, slots: &[Arc<Slot>]) {
    let opts = &sh.opts;
    let client = match Client::new(&opts.redis_url, &opts.ns, opts.io_timeout) {
        Ok(c) => c,
        Err(e) => {
            sh.emit(Event::Error {
                worker: slots.first().map(|s| s.name.clone()).unwrap_or_default(),
                action: "connect",
                error: e.to_string(),
                retry_in: Duration::ZERO,
            });
            return;
        }
    };
    let mut link = Link { client, backoff: Backoff::new(), down: false, slow: HashSet::new() };
    let now = Instant::now();
    let mut lanes: Vec<Lane> = slots
        .iter()
        .map(|s| Lane { slot: s.clone(), held: None, maybe_holding: false, resume_at: now, last_error: None })
        .collect();
    while !sh.stop.is_stopping() {
        fill(sh, &mut link, &mut lanes);
        run_held(sh, &mut link, &mut lanes);
    }
    recover(sh, &mut link, &mut lanes);
    // Jobs held at the stop go back at once, the newest first: each goes
    // back to the head of its queue, so the queue keeps its order.
    // (Jobs taken in one pipeline share its time; the first name took the
    // oldest job.)
    let mut held: Vec<(Instant, usize, Arc<Slot>, Job)> = lanes
        .iter_mut()
        .enumerate()
        .filter_map(|(i, l)| l.held.take().map(|(job, at)| (at, i, l.slot.clone(), job)))
        .collect();
    held.sort_by_key(|(at, i, _, _)| std::cmp::Reverse((*at, *i)));
    for (at, _, slot, job) in held {
        give_back_unstarted(sh, &slot, &mut link.client, job, at);
    }
}

/// At a stop: a name whose last pop lost its reply may hold a job it never
/// saw; one more pop hands it out again (the slot's loop then gives it
/// back with the others held). Best effort: a job left over comes back when
/// its lease runs out.
fn recover(sh: &Shared, link: &mut Link, lanes: &mut [Lane]) {
    if sh.stop.is_stopping_now() {
        return;
    }
    for lane in lanes.iter_mut().filter(|l| l.maybe_holding && l.held.is_none()) {
        if matches!(take(sh, link, lane, false), Took::Job) {
            sh.emit(Event::RecoveredPop { worker: lane.slot.name.clone() });
        }
    }
}

/// The lane holds `job`, taken by a command sent at `sent`.
fn hold(lane: &mut Lane, job: Job, sent: Instant) {
    lock(&lane.slot.st).delivery = Some(job.delivery);
    lane.held = Some((job, sent));
}

/// Takes a job under every free name that may pop, until the queues come up
/// empty; waits (`TQ.BPOP`) only while the slot holds no job at all.
fn fill(sh: &Shared, link: &mut Link, lanes: &mut [Lane]) {
    // A name whose last take lost its reply may hold a job it never saw:
    // a pop under it hands that job out again, whether or not the queues
    // hold anything else.
    for lane in lanes.iter_mut().filter(|l| l.maybe_holding && l.held.is_none()) {
        if matches!(take(sh, link, lane, false), Took::Down) {
            return;
        }
    }
    let mut holding = lanes.iter().any(|l| l.held.is_some());
    for lane in lanes.iter_mut() {
        if lane.held.is_some() || lane.resume_at > Instant::now() {
            continue;
        }
        match take(sh, link, lane, !holding) {
            Took::Job => holding = true,
            Took::Empty | Took::Down => break,
            Took::Refused => {}
        }
    }
    if !holding && !sh.stop.is_stopping() {
        // Every name waits out a pause: sleep until the first is over.
        let resume = lanes.iter().map(|l| l.resume_at).min().unwrap_or_else(Instant::now);
        let now = Instant::now();
        if resume > now {
            sh.stop.sleep_unless(resume - now, STOPPING);
        }
    }
}

enum Took {
    Job,
    /// The queues are empty (a blocking pop timed out).
    Empty,
    /// Redis did not answer (the thread has waited a pause).
    Down,
    /// This name cannot pop now; others may.
    Refused,
}

/// One pop under the lane's name: `TQ.BPOP` if `wait`, else `TQ.POP`.
fn take(sh: &Shared, link: &mut Link, lane: &mut Lane, wait: bool) -> Took {
    let (opts, name) = (&sh.opts, &lane.slot.name);
    let sent = Instant::now();
    let popped = if wait {
        link.client.bpop(name, &opts.queues, sh.lease, opts.poll)
    } else {
        link.client.pop(name, &opts.queues, sh.lease)
    };
    match popped {
        Ok(job) => {
            link.up(sh, name, "pop");
            lane.maybe_holding = false;
            lane.last_error = None;
            match job {
                Some(job) => {
                    hold(lane, job, sent);
                    Took::Job
                }
                None => Took::Empty,
            }
        }
        Err(e) if e.is_transient() => {
            // The pop may have taken a job: the next pop under this name
            // hands it out again.
            lane.maybe_holding = true;
            link.wait_out(sh, name, "pop", &e);
            Took::Down
        }
        Err(e @ client::Error::Protocol(_)) => {
            // The pop took something this worker cannot read (the module
            // checks payloads before handing them out, so this should not
            // happen): file it as failed rather than hold it, or every pop
            // under this name would hand it out again.
            let f = Failure::new("TQ::BadPayload", e.to_string());
            match link.client.held_delivery(name) {
                Ok(Some(d)) => {
                    if let Err(fe) = link.client.fail(name, d, &f, None) {
                        lane.report_error(sh, "fail", fe.to_string(), Duration::ZERO);
                    }
                }
                Ok(None) => {}
                Err(fe) => lane.report_error(sh, "fail", fe.to_string(), Duration::ZERO),
            }
            lane.report_error(sh, "pop", e.to_string(), Duration::ZERO);
            Took::Refused
        }
        Err(e) => {
            let pause = link.backoff.step();
            lane.report_error(sh, "pop", e.to_string(), pause);
            lane.resume_at = Instant::now() + pause;
            Took::Refused
        }
    }
}

/// A job whose handler succeeded, waiting for its ACK.
struct Finished {
    lane: usize,
    slot: Arc<Slot>,
    job: Job,
    elapsed: Duration,
}

/// Runs the jobs held, oldest first. Successes are acknowledged together:
/// one pipeline of `TQ.POP ... ACK`, whose replies hand out the next jobs,
/// sent once no job is left to run, after a job that ran
/// [`ACK_BATCH_WINDOW`] or more, and before a job of a class whose last run
/// here was that slow (so ACKs do not wait for slow jobs). Failures and
/// requeues are reported one by one, after those.
fn run_held(sh: &Shared, link: &mut Link, lanes: &mut [Lane]) {
    let mut finished: Vec<Finished> = Vec::new();
    loop {
        let oldest = lanes
            .iter()
            .enumerate()
            .filter_map(|(i, l)| l.held.as_ref().map(|(_, at)| (i, *at)))
            .min_by_key(|&(_, at)| at)
            .map(|(i, _)| i);
        let Some(i) = oldest else { break };
        let Some(lane) = lanes.get_mut(i) else { break };
        let Some((job, popped)) = lane.held.take() else { break };
        let slot = lane.slot.clone();
        if sh.stop.is_stopping() {
            // Given back by the slot's loop, with the others held.
            lane.held = Some((job, popped));
            break;
        }
        if link.slow.contains(&job.class) {
            // Its last run was slow: the gathered ACKs go first.
            ack_together(sh, link, lanes, &mut finished);
        }
        let class = job.class.clone();
        let Some((result, elapsed)) = run_handler(sh, &slot, &job, popped) else { continue };
        if elapsed >= ACK_BATCH_WINDOW {
            link.slow.insert(class);
        } else if !link.slow.is_empty() {
            link.slow.remove(&class);
        }
        match result {
            Ok(()) if !sh.stop.is_stopping() => finished.push(Finished { lane: i, slot, job, elapsed }),
            result => {
                ack_together(sh, link, lanes, &mut finished);
                let outcome = report_result(sh, &slot, &mut link.client, &job, result);
                end_job(sh, &slot, job, elapsed, outcome);
            }
        }
        if elapsed >= ACK_BATCH_WINDOW || !lanes.iter().any(|l| l.held.is_some()) {
            ack_together(sh, link, lanes, &mut finished);
        }
    }
    ack_together(sh, link, lanes, &mut finished);
}

/// Runs the handler; None if the worker gave the job back meanwhile (after
/// the grace period).
fn run_handler(sh: &Shared, slot: &Slot, job: &Job, popped: Instant) -> Option<(Result<(), JobError>, Duration)> {
    let seq = {
        let mut st = lock(&slot.st);
        st.seq += 1;
        st.phase = Phase::Running;
        st.job = Some(job.clone());
        st.delivery = Some(job.delivery);
        st.lease_until = popped + sh.lease;
        st.next_heartbeat = popped + sh.interval();
        st.seq
    };
    sh.emit(Event::JobStart { job: job.clone() });
    let started = Instant::now();
    let handler = sh.handlers.get(&job.class).or(sh.fallback.as_ref());
    let result = match handler {
        None => Err(JobError::fatal("Error", no_job_defined(&job.class))),
        Some(h) => match catch_unwind(AssertUnwindSafe(|| h(job))) {
            Ok(r) => r,
            Err(p) => Err(JobError::fail("Panic", panic_text(p.as_ref()))),
        },
    };
    let elapsed = started.elapsed();
    let mut st = lock(&slot.st);
    if st.seq != seq || st.phase != Phase::Running {
        // Given back by the worker after the grace period.
        st.phase = Phase::Idle;
        st.job = None;
        return None;
    }
    st.phase = Phase::Reporting;
    Some((result, elapsed))
}

/// Reports a job one by one: a failure, a requeue, or an ACK while stopping.
fn report_result(sh: &Shared, slot: &Slot, client: &mut Client, job: &Job, result: Result<(), JobError>) -> Outcome {
    if sh.stop.is_stopping_now() {
        return Outcome::Unreported;
    }
    let action = match result {
        Ok(()) => Action::Ack,
        Err(JobError::Requeue(d)) if job.is_cancelled() => Action::Nack(d, Requeue::Stopping),
        Err(JobError::Requeue(d)) => Action::Nack(d, Requeue::Handler),
        Err(JobError::Failed(_)) if job.is_cancelled() => Action::Nack(None, Requeue::Stopping),
        Err(JobError::Failed(f)) => Action::Fail(f, sh.opts.rules.retry_for(&job.class, &job.queue)),
        Err(JobError::Fatal(f)) => Action::Fail(f, None),
    };
    report(sh, slot, client, job.delivery, &action)
}

fn end_job(sh: &Shared, slot: &Slot, job: Job, elapsed: Duration, outcome: Outcome) {
    sh.counters.count(&outcome);
    sh.emit(Event::JobEnd { job, elapsed, outcome });
    let mut st = lock(&slot.st);
    st.phase = Phase::Idle;
    st.job = None;
    st.delivery = None;
}

/// Acknowledges the finished jobs, each with `TQ.POP ... ACK` under its own
/// name, in one round trip; each reply's job is held next under that name.
/// While stopping, plain `TQ.ACK`s (no new jobs).
fn ack_together(sh: &Shared, link: &mut Link, lanes: &mut [Lane], finished: &mut Vec<Finished>) {
    if finished.is_empty() {
        return;
    }
    let batch = std::mem::take(finished);
    if sh.stop.is_stopping() {
        for f in batch {
            let outcome = report_result(sh, &f.slot, &mut link.client, &f.job, Ok(()));
            end_job(sh, &f.slot, f.job, f.elapsed, outcome);
        }
        return;
    }
    let done: Vec<(&str, u64)> = batch.iter().map(|f| (f.slot.name.as_str(), f.job.delivery)).collect();
    let first = done.first().map(|(n, _)| *n).unwrap_or_default();
    let sent = Instant::now();
    let mut answers = match link.client.ack_and_pop_each(&done, &sh.opts.queues, sh.lease) {
        Ok(r) => {
            link.up(sh, first, "ack");
            r.into_iter().map(|r| Some((r, sent))).collect()
        }
        Err(e) => {
            // Each is sent again on its own: a repeat answers as the first.
            link.wait_out(sh, first, "ack", &e);
            vec![None; batch.len()]
        }
    }
    .into_iter();
    for f in batch {
        let (outcome, next) = ack_and_take(sh, &f.slot, &mut link.client, &f.job, answers.next().flatten());
        end_job(sh, &f.slot, f.job, f.elapsed, outcome);
        if let Some(lane) = lanes.get_mut(f.lane) {
            match next {
                Next::Job(job, sent) => hold(lane, job, sent),
                Next::Nothing => {}
            }
        }
    }
}

/// A pop answered after the stop: the job goes back at once.
fn give_back_unstarted(sh: &Shared, slot: &Slot, client: &mut Client, job: Job, popped: Instant) {
    {
        let mut st = lock(&slot.st);
        st.seq += 1;
        st.phase = Phase::Reporting;
        st.job = Some(job.clone());
        st.lease_until = popped + sh.lease;
    }
    let outcome = report(sh, slot, client, job.delivery, &Action::Nack(None, Requeue::NotStarted));
    sh.counters.count(&outcome);
    sh.emit(Event::JobEnd { job, elapsed: Duration::ZERO, outcome });
    let mut st = lock(&slot.st);
    st.phase = Phase::Idle;
    st.job = None;
    st.delivery = None;
}

/// What a slot holds after reporting a job.
enum Next {
    /// Nothing: the slot pops (and waits) again.
    Nothing,
    /// The job its ACK took, and when that ACK was sent.
    Job(Job, Instant),
}

/// Acknowledges the job and takes the next in the same round trip
/// (`TQ.POP ... ACK <delivery>`). A lost reply is answered by sending the
/// same command again: the module answers a repeat with the job the first
/// took (or none), and completes nothing twice. `answer`: the answer to the
/// first attempt (sent in a pipeline) and when it was sent; None if that
/// reply was lost.
fn ack_and_take(
    sh: &Shared,
    slot: &Slot,
    client: &mut Client,
    job: &Job,
    mut answer: Option<(Result<Option<Job>, client::Error>, Instant)>,
) -> (Outcome, Next) {
    let mut backoff = Backoff::new();
    let mut down = false;
    loop {
        let (attempt, sent) = match answer.take() {
            Some(answered) => answered,
            None => {
                let at = Instant::now();
                (client.ack_and_pop(&slot.name, job.delivery, &sh.opts.queues, sh.lease), at)
            }
        };
        if down && attempt.as_ref().is_ok() {
            down = false;
            sh.emit(Event::RedisBack { worker: slot.name.clone(), action: "ack" });
        }
        match attempt {
            Ok(taken) => return (Outcome::Done, taken.map_or(Next::Nothing, |j| Next::Job(j, sent))),
            Err(e) if e.is(client::NOJOB) || e.is(client::LEASELOST) => {
                return (Outcome::NotHeld { error: e.to_string() }, Next::Nothing)
            }
            Err(e) if e.is_transient() => {
                if abandon_report(sh, slot) {
                    // The ACK may have taken a job: it comes back with its lease.
                    return (Outcome::Unreported, Next::Nothing);
                }
                let pause = backoff.step();
                sh.redis_down(&mut down, &slot.name, "ack", &e, pause);
                sh.stop.sleep_unless(pause, STOP_NOW);
            }
            // Refused as a whole (the pop part: a queue of the wrong type,
            // say): nothing was applied, so a plain ACK still completes the job.
            Err(_) => return (report(sh, slot, client, job.delivery, &Action::Ack), Next::Nothing),
        }
    }
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("the handler panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("the handler panicked: {s}")
    } else {
        "the handler panicked".to_string()
    }
}

/// Sends the report about `delivery`, again and again while Redis is
/// unreachable (a repeat is answered as the first attempt was).
fn report(sh: &Shared, slot: &Slot, client: &mut Client, delivery: u64, action: &Action) -> Outcome {
    let mut backoff = Backoff::new();
    let mut down = false;
    let what = match action {
        Action::Ack => "ack",
        Action::Fail(..) => "fail",
        Action::Nack(..) => "nack",
    };
    loop {
        let result = match action {
            Action::Ack => client.ack(&slot.name, delivery).map(|()| Outcome::Done),
            Action::Fail(f, policy) => client.fail(&slot.name, delivery, f, policy.as_ref()).map(|o| Outcome::Failed {
                failure: f.clone(),
                fate: match o {
                    FailOutcome::Failed => Fate::Failed,
                    FailOutcome::Retry { delay } => Fate::Retry { delay },
                },
            }),
            Action::Nack(delay, why) => {
                client.nack(&slot.name, delivery, *delay).map(|()| Outcome::Requeued { delay: *delay, why: *why })
            }
        };
        match result {
            Ok(o) => {
                if down {
                    sh.emit(Event::RedisBack { worker: slot.name.clone(), action: what });
                }
                return o;
            }
            Err(e) if e.is(client::NOJOB) || e.is(client::LEASELOST) => {
                return Outcome::NotHeld { error: e.to_string() }
            }
            Err(e) if e.is_transient() => {
                if abandon_report(sh, slot) {
                    return Outcome::Unreported;
                }
                let pause = backoff.step();
                sh.redis_down(&mut down, &slot.name, what, &e, pause);
                sh.stop.sleep_unless(pause, STOP_NOW);
            }
            Err(e) => return Outcome::ReportFailed { error: e.to_string() },
        }
    }
}

/// A report that cannot reach Redis is given up when stopping at once, or
/// when stopping and the job's lease has run out (the module has then given
/// the job back itself).
fn abandon_report(sh: &Shared, slot: &Slot) -> bool {
    sh.stop.is_stopping_now() || (sh.stop.is_stopping() && Instant::now() >= lock(&slot.st).lease_until)
}

/// Keeps every slot's lease (and liveness) with `TQ.HEARTBEAT`, on its own
/// connection, until told to quit or stopping at once.
fn heartbeat_loop(sh: &Shared, quit: &AtomicBool) {
    let io = sh.opts.io_timeout.min(sh.interval()).max(Duration::from_millis(50));
    let Ok(mut client) = Client::new(&sh.opts.redis_url, &sh.opts.ns, io) else { return };
    let interval = sh.interval();
    let retry = interval.min(Duration::from_millis(250));
    let mut down = false;
    let mut last_error: Option<String> = None;
    while !quit.load(Ordering::SeqCst) && !sh.stop.is_stopping_now() {
        for slot in &sh.slots {
            let now = Instant::now();
            let (seq, delivery) = {
                let st = lock(&slot.st);
                if st.next_heartbeat > now || st.finished {
                    continue;
                }
                (st.seq, st.delivery)
            };
            let sent = Instant::now();
            match client.heartbeat(&slot.name, sh.lease, delivery) {
                Ok(_) => {
                    last_error = None;
                    if down {
                        down = false;
                        sh.emit(Event::RedisBack { worker: slot.name.clone(), action: "heartbeat" });
                    }
                    let mut st = lock(&slot.st);
                    st.next_heartbeat = sent + interval;
                    if st.seq == seq && delivery.is_some() && st.delivery == delivery {
                        st.lease_until = sent + sh.lease;
                    }
                }
                Err(e) if delivery.is_some() && (e.is(client::NOJOB) || e.is(client::LEASELOST)) => {
                    // The module no longer counts the job as ours: stop
                    // renewing it; a running handler learns it lost the job.
                    let lost = {
                        let mut st = lock(&slot.st);
                        st.next_heartbeat = Instant::now();
                        if st.delivery != delivery {
                            None // reported meanwhile
                        } else {
                            st.delivery = None;
                            st.job.clone().filter(|j| st.phase == Phase::Running && !j.lease_lost())
                        }
                    };
                    if let Some(job) = lost {
                        job.mark_lease_lost();
                        sh.emit(Event::LeaseLost { job });
                    }
                }
                Err(e) => {
                    lock(&slot.st).next_heartbeat = Instant::now() + retry;
                    if e.is_transient() {
                        sh.redis_down(&mut down, &slot.name, "heartbeat", &e, retry);
                        break;
                    }
                    if last_error.as_deref() != Some(e.to_string().as_str()) {
                        last_error = Some(e.to_string());
                        sh.emit(Event::Error {
                            worker: slot.name.clone(),
                            action: "heartbeat",
                            error: e.to_string(),
                            retry_in: retry,
                        });
                    }
                }
            }
        }
        let pause = (interval / 4).clamp(Duration::from_millis(1), Duration::from_millis(50));
        sh.stop.sleep_unless(pause, STOP_NOW);
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

    #[test]
    fn backoff_grows_to_its_cap() {
        let mut b = Backoff::new();
        let steps: Vec<Duration> = (0..8).map(|_| b.step()).collect();
        assert!(steps[0] >= BACKOFF_MIN && steps[0] <= BACKOFF_MIN * 6 / 5, "{steps:?}");
        assert!(steps[1] >= BACKOFF_MIN * 2);
        for s in &steps {
            assert!(*s <= BACKOFF_MAX * 6 / 5, "{steps:?}");
        }
        assert!(steps[7] >= BACKOFF_MAX);
    }

    #[test]
    fn stop_handle_wakes_sleepers() {
        let h = StopHandle::new();
        assert!(!h.is_stopping());
        let h2 = h.clone();
        let t = std::thread::spawn(move || h2.sleep_unless(Duration::from_secs(30), STOPPING));
        std::thread::sleep(Duration::from_millis(20));
        h.stop();
        assert!(t.join().expect("join"), "woken by the stop");
        assert!(h.is_stopping() && !h.is_stopping_now());
        assert!(!h.sleep_unless(Duration::from_millis(1), STOP_NOW));
        h.stop_now();
        h.stop(); // never lowers the level
        assert!(h.is_stopping_now());
    }

    #[test]
    fn counters() {
        let c = Counters::default();
        c.count(&Outcome::Done);
        c.count(&Outcome::Failed { failure: Failure::new("E", "m"), fate: Fate::Retry { delay: Duration::ZERO } });
        c.count(&Outcome::Failed { failure: Failure::new("E", "m"), fate: Fate::Failed });
        c.count(&Outcome::Requeued { delay: None, why: Requeue::Handler });
        c.count(&Outcome::Unreported);
        assert_eq!(c.summary(), Summary { done: 1, failed: 2, retried: 1, requeued: 1, unreported: 1 });
    }
}
