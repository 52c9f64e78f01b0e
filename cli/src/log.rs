//! Log lines of `tq work`, written from the worker's event hook: one line
//! per event, as text or as one JSON object per line, with levels as
//! ActionHero's `workerLogging` uses them: `info` for a job's start and
//! success, `error` for a failure, `warning` for lost leases, jobs given
//! back and Redis going away, `notice` for the worker starting, stopping and
//! Redis coming back, `debug` for a job taken.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use crate::duration::show;
use crate::worker::{Event, Fate, Outcome, Requeue};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Notice => "notice",
            Level::Warning => "warning",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// One log line before formatting.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub level: Level,
    /// A stable name: `job:start`, `job:success`, `job:failure`, ...
    pub event: &'static str,
    /// The worker (slot) name, or the worker's base name.
    pub worker: String,
    pub message: String,
    /// Extra fields of the JSON form.
    pub fields: Vec<(&'static str, Value)>,
}

impl Record {
    pub fn new(level: Level, event: &'static str, worker: &str, message: String) -> Record {
        Record { level, event, worker: worker.to_string(), message, fields: Vec::new() }
    }

    pub fn with(mut self, key: &'static str, value: impl Into<Value>) -> Record {
        self.fields.push((key, value.into()));
        self
    }
}

/// Writes records at or above a level to stderr (or any writer), a whole
/// line per write.
pub struct Logger {
    min: Level,
    format: Format,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Logger {
    pub fn stderr(min: Level, format: Format) -> Logger {
        Logger::to_writer(min, format, Box::new(std::io::stderr()))
    }

    pub fn to_writer(min: Level, format: Format, out: Box<dyn Write + Send>) -> Logger {
        Logger { min, format, out: Mutex::new(out) }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level >= self.min
    }

    pub fn log(&self, r: &Record) {
        if !self.enabled(r.level) {
            return;
        }
        let mut line = format_record(self.format, now_ms(), r);
        line.push('\n');
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    pub fn event(&self, e: &Event) {
        self.log(&record_of(e));
    }
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(crate::duration::millis).unwrap_or(0)
}

/// `2026-11-22T10:00:00.123Z info    [host:1+1] message`, or the JSON object
/// `{"time","level","event","worker","message",...fields}`.
pub fn format_record(format: Format, time_ms: u64, r: &Record) -> String {
    let time = tq_core::time::iso8601(time_ms);
    match format {
        Format::Text => {
            let msg = one_line(&r.message);
            if r.worker.is_empty() {
                format!("{time} {:<7} {msg}", r.level.as_str())
            } else {
                format!("{time} {:<7} [{}] {msg}", r.level.as_str(), r.worker)
            }
        }
        Format::Json => {
            let mut m = Map::new();
            m.insert("time".into(), time.into());
            m.insert("level".into(), r.level.as_str().into());
            m.insert("event".into(), r.event.into());
            m.insert("worker".into(), r.worker.clone().into());
            m.insert("message".into(), r.message.clone().into());
            for (k, v) in &r.fields {
                m.insert((*k).to_string(), v.clone());
            }
            Value::Object(m).to_string()
        }
    }
}

/// Newlines and other control characters shown escaped, so one record is
/// one line.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// At most `max` characters of the last line of `s` (for one-line logs of
/// a failure message).
pub fn short(s: &str, max: usize) -> String {
    let last = s.trim_end().lines().last().unwrap_or("");
    let n = last.chars().count();
    if n <= max {
        last.to_string()
    } else {
        let tail: String = last.chars().skip(n - max).collect();
        format!("...{tail}")
    }
}

fn ms(d: Duration) -> Value {
    json!(crate::duration::millis(d))
}

fn job_fields(r: Record, job: &crate::job::Job) -> Record {
    r.with("queue", job.queue.clone()).with("class", job.class.clone()).with("deliveries", job.deliveries)
}

/// The log record of a worker event.
pub fn record_of(e: &Event) -> Record {
    match e {
        Event::Started { name, slots, queues, lease, concurrency } => Record::new(
            Level::Notice,
            "worker:start",
            name,
            format!(
                "worker started: queues {}, {concurrency} slot(s) ({}), lease {}",
                queues.join(","),
                slots.join(" "),
                show(*lease)
            ),
        )
        .with("queues", queues.clone())
        .with("slots", slots.clone())
        .with("lease_ms", ms(*lease)),
        Event::JobStart { job } => job_fields(
            Record::new(
                Level::Debug,
                "job:take",
                &job.worker,
                format!("took {} from {} (delivery {})", job.class, job.queue, job.deliveries),
            ),
            job,
        ),
        Event::JobEnd { job, elapsed, outcome } => {
            let took = show(*elapsed);
            let (level, event, message) = match outcome {
                Outcome::Done => {
                    (Level::Info, "job:success", format!("done {} from {} in {took}", job.class, job.queue))
                }
                Outcome::Failed { failure, fate } => {
                    let then = match fate {
                        Fate::Failed => "moved to failed".to_string(),
                        Fate::Retry { delay } => format!("retry in {}", show(*delay)),
                    };
                    (
                        Level::Error,
                        "job:failure",
                        format!(
                            "failure {} from {} after {took}: {}: {}; {then}",
                            job.class,
                            job.queue,
                            failure.exception,
                            short(&failure.error, 300)
                        ),
                    )
                }
                Outcome::Requeued { delay, why } => {
                    let when = match delay {
                        Some(d) if !d.is_zero() => format!("to run in {}", show(*d)),
                        _ => "to the head of its queue".to_string(),
                    };
                    let (level, reason) = match why {
                        Requeue::Handler => (Level::Info, "as its handler asked"),
                        Requeue::Stopping => (Level::Warning, "stopping: the grace period ran out"),
                        Requeue::Abandoned => {
                            (Level::Warning, "stopping: its handler did not return after the grace period")
                        }
                        Requeue::NotStarted => (Level::Notice, "stopping: taken as the stop came, not run"),
                    };
                    (level, "job:requeue", format!("gave back {} from {} {when} ({reason})", job.class, job.queue))
                }
                Outcome::NotHeld { error } => (
                    Level::Warning,
                    "job:lost",
                    format!("ran {} from {} in {took} but no longer held it: {error}", job.class, job.queue),
                ),
                Outcome::Unreported => (
                    Level::Warning,
                    "job:unreported",
                    format!("left {} from {} unreported; it comes back when its lease runs out", job.class, job.queue),
                ),
                Outcome::ReportFailed { error } => (
                    Level::Error,
                    "job:report-error",
                    format!(
                        "could not report {} from {}: {error}; it comes back when its lease runs out",
                        job.class, job.queue
                    ),
                ),
            };
            let mut r =
                job_fields(Record::new(level, event, &job.worker, message), job).with("duration_ms", ms(*elapsed));
            match outcome {
                Outcome::Failed { failure, fate } => {
                    r = r.with("exception", failure.exception.clone()).with("error", failure.error.clone());
                    r = match fate {
                        Fate::Failed => r.with("outcome", "failed"),
                        Fate::Retry { delay } => r.with("outcome", "retry").with("retry_in_ms", ms(*delay)),
                    };
                }
                Outcome::Requeued { delay, .. } => {
                    r = r.with("delay_ms", ms(delay.unwrap_or_default()));
                }
                Outcome::NotHeld { error } | Outcome::ReportFailed { error } => r = r.with("error", error.clone()),
                _ => {}
            }
            r
        }
        Event::LeaseLost { job } => job_fields(
            Record::new(
                Level::Warning,
                "job:lease-lost",
                &job.worker,
                format!("lease of {} from {} ran out: the job was given back and may run again", job.class, job.queue),
            ),
            job,
        ),
        Event::RedisDown { worker, action, error, retry_in } => Record::new(
            Level::Warning,
            "redis:down",
            worker,
            format!("{action}: {error}; retrying (next in {})", show(*retry_in)),
        )
        .with("action", *action)
        .with("error", error.clone()),
        Event::RedisBack { worker, action } => {
            Record::new(Level::Notice, "redis:back", worker, format!("{action}: redis answers again"))
                .with("action", *action)
        }
        Event::RecoveredPop { worker } => Record::new(
            Level::Warning,
            "job:recovered",
            worker,
            "a pop's reply was lost: gave back the job it had taken".to_string(),
        ),
        Event::Error { worker, action, error, retry_in } => {
            let then = if retry_in.is_zero() { String::new() } else { format!("; retrying in {}", show(*retry_in)) };
            Record::new(Level::Error, "worker:error", worker, format!("{action}: {error}{then}"))
                .with("action", *action)
                .with("error", error.clone())
        }
        Event::Stopping { grace, running } => Record::new(
            Level::Notice,
            "worker:stopping",
            "",
            format!("stopping: no new jobs; {running} running job(s) get up to {} to finish", show(*grace)),
        )
        .with("running", *running),
        Event::Cancelling { running } => Record::new(
            Level::Warning,
            "worker:cancelling",
            "",
            format!("grace period over: stopping {running} running job(s); they will be given back"),
        )
        .with("running", *running),
        Event::Stopped { summary, at_once } => Record::new(
            Level::Notice,
            "worker:end",
            "",
            format!(
                "worker stopped{}: {} done, {} failed ({} to retry), {} given back, {} unreported",
                if *at_once { " at once" } else { "" },
                summary.done,
                summary.failed,
                summary.retried,
                summary.requeued,
                summary.unreported
            ),
        )
        .with("done", summary.done)
        .with("failed", summary.failed)
        .with("retried", summary.retried)
        .with("requeued", summary.requeued)
        .with("unreported", summary.unreported),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{Failure, Job};

    const T: u64 = 1_795_329_010_123; // 2026-11-22T06:30:10.123Z

    fn job() -> Job {
        Job::from_pop(
            "h:1+2",
            b"high",
            br#"{"class":"Email","queue":"high","args":[1]}"#,
            crate::job::Taken { deliveries: 1, ..Default::default() },
        )
        .expect("job")
    }

    #[test]
    fn text_lines() {
        let r = Record::new(Level::Info, "job:success", "h:1+2", "done\nthere".into());
        assert_eq!(format_record(Format::Text, T, &r), "2026-11-22T06:30:10.123Z info    [h:1+2] done\\nthere");
        let r = Record::new(Level::Warning, "x", "", "m".into());
        assert_eq!(format_record(Format::Text, T, &r), "2026-11-22T06:30:10.123Z warning m");
    }

    #[test]
    fn json_lines() {
        let e = Event::JobEnd {
            job: job(),
            elapsed: Duration::from_millis(1500),
            outcome: Outcome::Failed {
                failure: Failure::new("ExitStatus", "line 1\nboom"),
                fate: Fate::Retry { delay: Duration::from_secs(5) },
            },
        };
        let line = format_record(Format::Json, T, &record_of(&e));
        let v: Value = serde_json::from_str(&line).expect("one JSON object");
        assert!(!line.contains('\n'));
        assert_eq!(v["time"], "2026-11-22T06:30:10.123Z");
        assert_eq!(v["level"], "error");
        assert_eq!(v["event"], "job:failure");
        assert_eq!(v["worker"], "h:1+2");
        assert_eq!(v["class"], "Email");
        assert_eq!(v["queue"], "high");
        assert_eq!(v["duration_ms"], 1500);
        assert_eq!(v["exception"], "ExitStatus");
        assert_eq!(v["error"], "line 1\nboom");
        assert_eq!(v["outcome"], "retry");
        assert_eq!(v["retry_in_ms"], 5000);
        let msg = v["message"].as_str().expect("message");
        assert!(msg.contains("ExitStatus: boom; retry in 5s") && msg.contains("after 1s500ms"), "{msg}");
    }

    #[test]
    fn levels_follow_actionhero() {
        let j = job();
        let d = Duration::ZERO;
        let level = |e: Event| record_of(&e).level;
        assert_eq!(level(Event::JobStart { job: j.clone() }), Level::Debug);
        assert_eq!(level(Event::JobEnd { job: j.clone(), elapsed: d, outcome: Outcome::Done }), Level::Info);
        let failed = Outcome::Failed { failure: Failure::new("E", "m"), fate: Fate::Failed };
        assert_eq!(level(Event::JobEnd { job: j.clone(), elapsed: d, outcome: failed }), Level::Error);
        let down = Event::RedisDown { worker: "w".into(), action: "pop", error: "x".into(), retry_in: d };
        assert_eq!(level(down), Level::Warning);
        assert_eq!(level(Event::RedisBack { worker: "w".into(), action: "pop" }), Level::Notice);
        assert_eq!(level(Event::LeaseLost { job: j }), Level::Warning);
        assert!(Level::Error > Level::Warning && Level::Warning > Level::Notice && Level::Notice > Level::Info);
    }

    #[test]
    fn logger_filters_by_level() {
        #[derive(Clone, Default)]
        struct Buf(std::sync::Arc<Mutex<Vec<u8>>>);
        impl Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let l = Logger::to_writer(Level::Error, Format::Text, Box::new(buf.clone()));
        l.log(&Record::new(Level::Info, "a", "w", "hidden".into()));
        l.log(&Record::new(Level::Error, "b", "w", "shown".into()));
        let out = String::from_utf8(buf.0.lock().expect("lock").clone()).expect("utf8");
        assert!(out.ends_with("[w] shown\n") && !out.contains("hidden"), "{out}");
    }

    #[test]
    fn helpers() {
        assert_eq!(short("a\nb\n", 10), "b");
        assert_eq!(short("abcdef", 3), "...def");
        assert_eq!(short("", 3), "");
    }
}
