//! What a run reports: its events, each job's outcome, and its counts.

use super::*;

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
pub(super) struct Counters {
    pub(super) done: AtomicU64,
    pub(super) failed: AtomicU64,
    pub(super) retried: AtomicU64,
    pub(super) requeued: AtomicU64,
    pub(super) unreported: AtomicU64,
}

impl Counters {
    pub(super) fn count(&self, o: &Outcome) {
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

    pub(super) fn summary(&self) -> Summary {
        Summary {
            done: self.done.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            requeued: self.requeued.load(Ordering::Relaxed),
            unreported: self.unreported.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
