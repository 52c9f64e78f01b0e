//! The slot threads: what each slot holds, and its loop of pop, run and
//! report under each of its worker names.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Idle,
    /// The handler runs.
    Running,
    /// The slot reports the job.
    Reporting,
    /// The worker gave the job back while the handler still ran.
    Abandoned,
}

pub(super) struct SlotState {
    pub(super) phase: Phase,
    /// Bumped for every job taken.
    pub(super) seq: u64,
    pub(super) job: Option<Job>,
    /// The delivery the name holds (taken, running or being reported): the
    /// one its heartbeats renew.
    pub(super) delivery: Option<u64>,
    /// When the lease of the job runs out at the latest, by our clock.
    pub(super) lease_until: Instant,
    pub(super) next_heartbeat: Instant,
    /// The slot's thread has ended.
    pub(super) finished: bool,
}

pub(super) struct Slot {
    pub(super) name: String,
    /// The slot thread driving this name (several with prefetch).
    pub(super) thread: usize,
    pub(super) st: Mutex<SlotState>,
}

pub(super) struct Shared {
    pub(super) opts: WorkerOptions,
    pub(super) handlers: HashMap<String, Handler>,
    pub(super) fallback: Option<Handler>,
    pub(super) events: Option<EventSink>,
    pub(super) stop: StopHandle,
    pub(super) slots: Vec<Arc<Slot>>,
    pub(super) lease: Duration,
    pub(super) counters: Counters,
}

impl Shared {
    pub(super) fn emit(&self, e: Event) {
        deliver(&self.events, &e);
    }

    /// Reports Redis going away for `worker`, once per outage (`down`).
    pub(super) fn redis_down(
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

    pub(super) fn interval(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(1))
    }
}

pub(super) fn cancel_all(sh: &Shared) {
    for slot in &sh.slots {
        if let Some(job) = &lock(&slot.st).job {
            job.cancel();
        }
    }
}

/// Forgets the slots' worker entries, pings and liveness (as node-resque's
/// worker does on `end()`), for slots that hold no job. Best effort.
pub(super) fn untrack(sh: &Shared, probe: &mut Client) {
    let joined = sh.opts.queues.join(",");
    for slot in &sh.slots {
        let st = lock(&slot.st);
        if !(st.finished && st.phase == Phase::Idle) {
            continue;
        }
        drop(st);
        let Ok(ns) = probe.keys() else { return };
        let name = slot.name.as_bytes();
        let mut p = redis::pipe();
        p.cmd("SREM").arg(ns.workers()).arg(tq_core::keys::worker_entry(name, joined.as_bytes())).ignore();
        p.cmd("DEL").arg(ns.ping(name)).ignore();
        p.cmd("ZREM").arg(ns.alive()).arg(name).ignore();
        let _ = probe.call_pipe(&p);
    }
}

pub(super) enum Action {
    Ack,
    Fail(Failure, Option<crate::config::RetryPolicy>),
    Nack(Option<Duration>, Requeue),
}

/// One worker name a slot thread drives, and what the thread knows of it.
pub(super) struct Lane {
    pub(super) slot: Arc<Slot>,
    /// A job taken and not started yet, and when the command that took it
    /// was sent.
    pub(super) held: Option<(Job, Instant)>,
    /// A pop's reply was lost: the name may hold a job it never saw (its
    /// next pop hands that job out again).
    pub(super) maybe_holding: bool,
    /// No pop under this name before then.
    pub(super) resume_at: Instant,
    /// The last error reported, so a persisting one is reported once.
    pub(super) last_error: Option<String>,
}

impl Lane {
    pub(super) fn report_error(&mut self, sh: &Shared, action: &'static str, error: String, retry_in: Duration) {
        if self.last_error.as_deref() != Some(error.as_str()) {
            sh.emit(Event::Error { worker: self.slot.name.clone(), action, error: error.clone(), retry_in });
            self.last_error = Some(error);
        }
    }
}

/// A slot thread's connection, whether Redis is down for it, and the
/// classes whose last run here was slow.
pub(super) struct Link {
    pub(super) client: Client,
    pub(super) backoff: Backoff,
    pub(super) down: bool,
    pub(super) slow: HashSet<String>,
}

impl Link {
    pub(super) fn up(&mut self, sh: &Shared, worker: &str, action: &'static str) {
        self.backoff = Backoff::new();
        if self.down {
            self.down = false;
            sh.emit(Event::RedisBack { worker: worker.to_string(), action });
        }
    }

    /// Redis did not answer: waits a growing pause (less if stopping).
    pub(super) fn wait_out(&mut self, sh: &Shared, worker: &str, action: &'static str, e: &client::Error) {
        let pause = self.backoff.step();
        sh.redis_down(&mut self.down, worker, action, e, pause);
        sh.stop.sleep_unless(pause, STOPPING);
    }
}

/// One slot: pop, run, report, until stopped, under each of its worker
/// names in turn (one name unless prefetching).
pub(super) fn slot_loop(sh: &Arc<Shared>, slots: &[Arc<Slot>]) {
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
pub(super) fn recover(sh: &Shared, link: &mut Link, lanes: &mut [Lane]) {
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
pub(super) fn hold(lane: &mut Lane, job: Job, sent: Instant) {
    lock(&lane.slot.st).delivery = Some(job.delivery);
    lane.held = Some((job, sent));
}

/// Takes a job under every free name that may pop, until the queues come up
/// empty; waits (`TQ.BPOP`) only while the slot holds no job at all.
pub(super) fn fill(sh: &Shared, link: &mut Link, lanes: &mut [Lane]) {
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

pub(super) enum Took {
    Job,
    /// The queues are empty (a blocking pop timed out).
    Empty,
    /// Redis did not answer (the thread has waited a pause).
    Down,
    /// This name cannot pop now; others may.
    Refused,
}

/// One pop under the lane's name: `TQ.BPOP` if `wait`, else `TQ.POP`.
pub(super) fn take(sh: &Shared, link: &mut Link, lane: &mut Lane, wait: bool) -> Took {
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
pub(super) struct Finished {
    pub(super) lane: usize,
    pub(super) slot: Arc<Slot>,
    pub(super) job: Job,
    pub(super) elapsed: Duration,
}

/// Runs the jobs held, oldest first. Successes are acknowledged together:
/// one pipeline of `TQ.POP ... ACK`, whose replies hand out the next jobs,
/// sent once no job is left to run, after a job that ran
/// [`ACK_BATCH_WINDOW`] or more, and before a job of a class whose last run
/// here was that slow (so ACKs do not wait for slow jobs). Failures and
/// requeues are reported one by one, after those.
pub(super) fn run_held(sh: &Shared, link: &mut Link, lanes: &mut [Lane]) {
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
pub(super) fn run_handler(
    sh: &Shared,
    slot: &Slot,
    job: &Job,
    popped: Instant,
) -> Option<(Result<(), JobError>, Duration)> {
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
    if sh.events.is_some() {
        sh.emit(Event::JobStart { job: job.clone() });
    }
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
