//! A job as a worker sees it, and how a handler says it went.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// node-resque's error for a job whose class has no handler.
pub fn no_job_defined(class: &str) -> String {
    format!("No job defined for class \"{class}\"")
}

/// A job taken from a queue (by `TQ.POP`/`TQ.BPOP`), held by one worker name
/// until it is reported (`TQ.ACK`, `TQ.FAIL`, `TQ.NACK`).
#[derive(Debug, Clone)]
pub struct Job {
    /// The queue it came from (`tq:broadcast` for broadcast jobs).
    pub queue: String,
    /// The payload's `class`.
    pub class: String,
    /// The payload's `args`, parsed (`Null` when the payload has none, or
    /// holds JSON serde_json cannot represent, such as a lone surrogate
    /// escape; `args_json` has the text in any case).
    pub args: serde_json::Value,
    /// The payload's `args` exactly as stored (`[]` when absent).
    pub args_json: String,
    /// The whole payload as stored: node-resque's `{"class","queue","args"}`.
    pub payload: String,
    /// How many times the job was handed out, this time included (1 = first).
    pub deliveries: u32,
    /// The delivery id the module minted when it handed the job out: every
    /// report about the job names it.
    pub delivery: u64,
    /// When the job's lease runs out unless renewed, unix ms (server clock).
    pub lease_until_ms: u64,
    /// The worker name that holds it (reports must use this name).
    pub worker: String,
    signals: Arc<Signals>,
}

/// The numbers of a pop's reply besides queue and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Taken {
    pub delivery: u64,
    pub deliveries: u32,
    pub lease_until_ms: u64,
}

#[derive(Debug, Default)]
struct Signals {
    cancelled: AtomicBool,
    lease_lost: AtomicBool,
}

impl Job {
    /// A job from a pop's reply: `queue`, the stored `payload` bytes, the
    /// delivery id, the delivery count and the lease deadline. Payloads the
    /// module hands out are JSON objects with a string `class` (it fails any
    /// other at pop); this checks again.
    pub fn from_pop(worker: &str, queue: &[u8], payload: &[u8], taken: Taken) -> Result<Job, String> {
        let info = tq_core::records::inspect_payload(payload)?;
        let args_raw = info.args.clone().and_then(|r| payload.get(r)).unwrap_or(b"[]");
        let args_json = String::from_utf8_lossy(args_raw).into_owned();
        let args = serde_json::from_str(&args_json).unwrap_or(serde_json::Value::Null);
        Ok(Job {
            queue: String::from_utf8_lossy(queue).into_owned(),
            class: String::from_utf8_lossy(&info.class).into_owned(),
            args,
            args_json,
            payload: String::from_utf8_lossy(payload).into_owned(),
            deliveries: taken.deliveries,
            delivery: taken.delivery,
            lease_until_ms: taken.lease_until_ms,
            worker: worker.to_string(),
            signals: Arc::default(),
        })
    }

    /// True once the worker wants this job to stop: its graceful stop's grace
    /// period is over (or it is stopping at once). A handler that returns an
    /// error after this has its job given back (`TQ.NACK`), not failed.
    pub fn is_cancelled(&self) -> bool {
        self.signals.cancelled.load(Ordering::SeqCst)
    }

    /// True once a heartbeat found the lease gone: the module gave the job
    /// back (it may already run elsewhere) and its report will be refused.
    pub fn lease_lost(&self) -> bool {
        self.signals.lease_lost.load(Ordering::SeqCst)
    }

    pub(crate) fn cancel(&self) {
        self.signals.cancelled.store(true, Ordering::SeqCst);
    }

    pub(crate) fn mark_lease_lost(&self) {
        self.signals.lease_lost.store(true, Ordering::SeqCst);
    }
}

/// What a failure record says: node-resque's `exception` (the error's name),
/// `error` (its message) and `backtrace` (lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub exception: String,
    pub error: String,
    pub backtrace: Vec<String>,
}

impl Failure {
    pub fn new(exception: impl Into<String>, error: impl Into<String>) -> Failure {
        Failure { exception: exception.into(), error: error.into(), backtrace: Vec::new() }
    }

    /// The backtrace as the JSON array `TQ.FAIL` takes.
    pub fn backtrace_json(&self) -> String {
        serde_json::Value::from(self.backtrace.clone()).to_string()
    }
}

/// How a handler says its job did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobError {
    /// The job failed: `TQ.FAIL`, with the retry policy that applies to its
    /// class or queue (if any).
    Failed(Failure),
    /// The job failed and must not be retried: `TQ.FAIL` without a policy.
    Fatal(Failure),
    /// The job was not done and should run again (`TQ.NACK`): at the head of
    /// its queue, or after the delay. Not counted as a failure.
    Requeue(Option<Duration>),
}

impl JobError {
    /// A failure (retried when a retry policy applies).
    pub fn fail(exception: impl Into<String>, error: impl Into<String>) -> JobError {
        JobError::Failed(Failure::new(exception, error))
    }

    /// A failure that is never retried.
    pub fn fatal(exception: impl Into<String>, error: impl Into<String>) -> JobError {
        JobError::Fatal(Failure::new(exception, error))
    }

    /// Give the job back unfinished.
    pub fn requeue(delay: Option<Duration>) -> JobError {
        JobError::Requeue(delay)
    }

    /// Adds backtrace lines to a failure (no effect on `Requeue`).
    pub fn with_backtrace(mut self, lines: Vec<String>) -> JobError {
        if let JobError::Failed(f) | JobError::Fatal(f) = &mut self {
            f.backtrace = lines;
        }
        self
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(x) | JobError::Fatal(x) => write!(f, "{}: {}", x.exception, x.error),
            JobError::Requeue(None) => write!(f, "requeue"),
            JobError::Requeue(Some(d)) => write!(f, "requeue in {}ms", d.as_millis()),
        }
    }
}

/// Any error type converts (so handlers can use `?`): a retryable failure
/// with exception `Error` and the error's text as message.
impl<E: std::error::Error> From<E> for JobError {
    fn from(e: E) -> JobError {
        JobError::fail("Error", e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_pop_reads_node_resque_payloads() {
        let j = Job::from_pop(
            "h:1+1",
            b"math",
            br#"{"class":"add","queue":"math","args":[1,{"b":2}]}"#,
            crate::job::Taken { deliveries: 2, ..Default::default() },
        )
        .expect("ok");
        assert_eq!((j.queue.as_str(), j.class.as_str(), j.deliveries), ("math", "add", 2));
        assert_eq!(j.args, serde_json::json!([1, {"b": 2}]));
        assert_eq!(j.args_json, r#"[1,{"b":2}]"#);
        assert_eq!(j.worker, "h:1+1");
        assert!(!j.is_cancelled() && !j.lease_lost());
        let c = j.clone();
        j.cancel();
        assert!(c.is_cancelled(), "clones share the signals");
    }

    #[test]
    fn from_pop_keeps_args_text_serde_cannot_read() {
        let j = Job::from_pop(
            "w",
            b"q",
            br#"{"class":"c","args":["\ud800"]}"#,
            crate::job::Taken { deliveries: 1, ..Default::default() },
        )
        .expect("ok");
        assert_eq!(j.args, serde_json::Value::Null);
        assert_eq!(j.args_json, r#"["\ud800"]"#);
        let j =
            Job::from_pop("w", b"q", br#"{"class":"c"}"#, crate::job::Taken { deliveries: 1, ..Default::default() })
                .expect("ok");
        assert_eq!(j.args_json, "[]");
        assert_eq!(j.args, serde_json::json!([]));
        assert!(
            Job::from_pop("w", b"q", b"not json", crate::job::Taken { deliveries: 1, ..Default::default() }).is_err()
        );
        assert!(Job::from_pop("w", b"q", br#"{"args":[]}"#, crate::job::Taken { deliveries: 1, ..Default::default() })
            .is_err());
    }

    #[test]
    fn errors() {
        let e: JobError = std::io::Error::other("disk full").into();
        assert_eq!(e, JobError::fail("Error", "disk full"));
        let e = JobError::fatal("Boom", "bad").with_backtrace(vec!["at x".into()]);
        match &e {
            JobError::Fatal(f) => assert_eq!(f.backtrace_json(), r#"["at x"]"#),
            other => panic!("{other:?}"),
        }
        assert_eq!(e.to_string(), "Boom: bad");
        assert_eq!(no_job_defined("X"), "No job defined for class \"X\"");
    }
}
