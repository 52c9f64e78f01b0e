//! The management subcommands that change a namespace, each one TQ command
//! (or node-resque's plain `DEL` for `del-lock`):
//!
//! | subcommand | command sent |
//! |---|---|
//! | `tq del QUEUE CLASS [ARGS] [--count N]` | `TQ.DEL` |
//! | `tq del-by-class QUEUE CLASS [--start I] [--stop I]` | `TQ.DELBYCLASS` |
//! | `tq del-delayed QUEUE CLASS [ARGS]` | `TQ.DELDELAYED` |
//! | `tq del-queue QUEUE` | `SISMEMBER <ns>:queues`, `TQ.DELQUEUE` |
//! | `tq del-lock NAME` | `DEL <ns>:NAME` (a lock name as `tq locks` shows it) |
//! | `tq recur QUEUE CLASS [ARGS] --every D` | `TQ.RECUR` |
//! | `tq unrecur QUEUE CLASS [ARGS]` | `TQ.UNRECUR` |
//! | `tq recurs` | `TQ.RECURS` |
//! | `tq promote [--limit N]` | `TQ.PROMOTE` |
//! | `tq broadcast CLASS [ARGS]` | `TQ.BROADCAST` |
//! | `tq nack WORKER [--delivery N] [--delay D]` | `GET` of the worker's in-flight entry (without `--delivery`), `TQ.NACK` |
//!
//! Output and exit statuses as the inspection subcommands
//! ([`crate::inspect`]): a line or table of text, or with `--json` one JSON
//! document (times as unix ms, durations as ms); 0 success, 1 Redis
//! unreachable or a refusal (an error reply, e.g. invalid args JSON), 2 usage
//! error, 3 nothing matched (nothing removed, no lock, unknown periodic task,
//! no live worker, no job held).

use std::time::Duration;

use clap::{Args, Subcommand};
use redis::Value;
use serde_json::{json, Value as J};

use crate::client::{Client, Error};
use crate::duration::{millis, parse_duration, show, show_ms};
use crate::inspect::{
    array, bytes, call, finish, int, job_cells, job_json, pick, plural, server_now, show_json, text, uint, Output,
    NOTHING_MATCHED, TIMEOUT,
};
use crate::table::{cell, when, Align, Table};

const EXIT_STATUS_MATCH: &str = "Exit status: 0 success; 1 Redis unreachable or a refusal (module not loaded, ACL, \
                                 wrong key type, invalid args JSON); 2 usage error; 3 nothing matched.";

const EXIT_STATUS: &str = "Exit status: 0 success; 1 Redis unreachable or a refusal (module not loaded, ACL, wrong \
                           key type); 2 usage error.";

/// The management subcommands (flattened into `tq`'s subcommands).
#[derive(Debug, Subcommand)]
pub enum ManageCmd {
    /// Remove waiting instances of a job from its queue (TQ.DEL, node-resque's del)
    #[command(after_help = EXIT_STATUS_MATCH)]
    Del(DelArgs),

    /// Remove the waiting jobs of a class, whatever their args, found in a range of the queue (TQ.DELBYCLASS,
    /// node-resque's delByFunction)
    #[command(after_help = EXIT_STATUS_MATCH)]
    DelByClass(DelByClassArgs),

    /// Remove a job from every delayed time it is filed for (TQ.DELDELAYED, node-resque's delDelayed)
    #[command(after_help = EXIT_STATUS_MATCH)]
    DelDelayed(JobArgs),

    /// Delete a queue with its jobs and unregister it (TQ.DELQUEUE, node-resque's delQueue)
    #[command(after_help = EXIT_STATUS_MATCH)]
    DelQueue(DelQueueArgs),

    /// Delete a lock by the name `tq locks` shows (lock:..., workerslock:..., tq:lock:...; node-resque's delLock)
    #[command(after_help = EXIT_STATUS_MATCH)]
    DelLock(DelLockArgs),

    /// Register a periodic task, or change its period (TQ.RECUR)
    #[command(after_help = EXIT_STATUS)]
    Recur(RecurArgs),

    /// Remove a periodic task (TQ.UNRECUR)
    #[command(after_help = EXIT_STATUS_MATCH)]
    Unrecur(JobArgs),

    /// Periodic tasks with their periods and next runs (TQ.RECURS)
    #[command(after_help = EXIT_STATUS)]
    Recurs(JsonArg),

    /// Move due delayed jobs into their queues now (TQ.PROMOTE)
    #[command(after_help = EXIT_STATUS)]
    Promote(PromoteArgs),

    /// Send a job to every live worker, once each (TQ.BROADCAST)
    #[command(after_help = "Exit status: 0 success; 1 Redis unreachable or a refusal; 2 usage error; 3 no live \
                      worker got it.")]
    Broadcast(BroadcastArgs),

    /// Give a worker's job back unfinished: to the head of its queue, or after --delay (TQ.NACK)
    #[command(after_help = "Exit status: 0 success; 1 Redis unreachable or a refusal (NOJOB: the worker does not \
                      hold that delivery; LEASELOST); 2 usage error; 3 the worker holds no job.")]
    Nack(NackArgs),
}

impl ManageCmd {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            ManageCmd::Del(_) => "del",
            ManageCmd::DelByClass(_) => "del-by-class",
            ManageCmd::DelDelayed(_) => "del-delayed",
            ManageCmd::DelQueue(_) => "del-queue",
            ManageCmd::DelLock(_) => "del-lock",
            ManageCmd::Recur(_) => "recur",
            ManageCmd::Unrecur(_) => "unrecur",
            ManageCmd::Recurs(_) => "recurs",
            ManageCmd::Promote(_) => "promote",
            ManageCmd::Broadcast(_) => "broadcast",
            ManageCmd::Nack(_) => "nack",
        }
    }
}

/// `--json` (named apart from `cli::OutputArgs` so this file stands alone).
#[derive(Debug, Args)]
pub struct JsonArg {
    /// Print one JSON document (times as unix ms) instead of text
    #[arg(long)]
    pub json: bool,
}

/// A job as node-resque names it: queue, class, args.
#[derive(Debug, Args)]
pub struct JobArgs {
    /// The job's queue
    pub queue: String,
    /// The job's class
    pub class: String,
    /// The job's arguments as JSON, as they were enqueued (a non-array is wrapped in one) [default: []]
    #[arg(value_name = "ARGS-JSON")]
    pub args: Option<String>,
    #[command(flatten)]
    pub output: JsonArg,
}

impl JobArgs {
    fn args(&self) -> &str {
        self.args.as_deref().unwrap_or("[]")
    }
}

#[derive(Debug, Args)]
pub struct DelArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Remove at most this many instances, from the head [default: all]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
}

#[derive(Debug, Args)]
pub struct DelByClassArgs {
    /// The queue
    pub queue: String,
    /// The class
    pub class: String,
    /// First position looked at (LRANGE index; negative counts from the tail)
    #[arg(long, value_name = "I", default_value_t = 0, allow_negative_numbers = true)]
    pub start: i64,
    /// Last position looked at (-1 = the tail; at most 100000 looked at)
    #[arg(long, value_name = "I", default_value_t = -1, allow_negative_numbers = true)]
    pub stop: i64,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Debug, Args)]
pub struct DelQueueArgs {
    /// The queue
    pub queue: String,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Debug, Args)]
pub struct DelLockArgs {
    /// The lock as `tq locks` names it: lock:CLASS:QUEUE:ARGS, workerslock:CLASS:QUEUE:ARGS or tq:lock:NAME
    #[arg(value_name = "LOCK", value_parser = parse_lock_name)]
    pub lock: String,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Debug, Args)]
pub struct RecurArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// The period: 90s, 10m, 1h30m, 1d; a bare number is ms (the first run is enqueued at once)
    #[arg(long, value_name = "DURATION", value_parser = parse_period)]
    pub every: Duration,
}

#[derive(Debug, Args)]
pub struct PromoteArgs {
    /// Move at most this many jobs [default: the module's]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: Option<u64>,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// The job's class
    pub class: String,
    /// The job's arguments as JSON [default: []]
    #[arg(value_name = "ARGS-JSON")]
    pub args: Option<String>,
    #[command(flatten)]
    pub output: JsonArg,
}

#[derive(Debug, Args)]
pub struct NackArgs {
    /// The worker holding the job (as `tq workers` shows it)
    pub worker: String,
    /// The delivery to give back [default: the one the worker holds now]
    #[arg(long, value_name = "ID")]
    pub delivery: Option<u64>,
    /// Run it again after this delay instead of at once: 30s, 5m, 1h30m; a bare number is ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub delay: Option<Duration>,
    #[command(flatten)]
    pub output: JsonArg,
}

fn parse_period(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the period must be at least 1ms".to_string());
    }
    Ok(d)
}

fn parse_lock_name(s: &str) -> Result<String, String> {
    // Any valid namespace will do: the check is on the name's form.
    let probe = tq_core::keys::Ns::new(b"ns", false).map_err(|e| e.to_string())?;
    match probe.lock_named(s.as_bytes()) {
        Some(_) => Ok(s.to_string()),
        None => Err(format!(
            "'{s}' is not a lock name; expected one as `tq locks` shows it: lock:CLASS:QUEUE:ARGS, \
             workerslock:CLASS:QUEUE:ARGS or tq:lock:NAME"
        )),
    }
}

/// Runs one management subcommand; prints its output (stdout) or error
/// (stderr) and returns the exit status.
pub fn run(redis_url: &str, ns: &str, cmd: ManageCmd) -> i32 {
    let name = cmd.name();
    finish(name, Client::new(redis_url, ns, TIMEOUT).and_then(|mut c| dispatch(&mut c, cmd)))
}

/// Runs the subcommand; returns what to print.
pub fn dispatch(c: &mut Client, cmd: ManageCmd) -> Result<Output, Error> {
    match cmd {
        ManageCmd::Del(a) => del(c, &a),
        ManageCmd::DelByClass(a) => del_by_class(c, &a),
        ManageCmd::DelDelayed(a) => del_delayed(c, &a),
        ManageCmd::DelQueue(a) => del_queue(c, &a),
        ManageCmd::DelLock(a) => del_lock(c, &a),
        ManageCmd::Recur(a) => recur(c, &a),
        ManageCmd::Unrecur(a) => unrecur(c, &a),
        ManageCmd::Recurs(o) => recurs(c, o.json),
        ManageCmd::Promote(a) => promote(c, &a),
        ManageCmd::Broadcast(a) => broadcast(c, &a),
        ManageCmd::Nack(a) => nack(c, &a),
    }
}

/// Exit 0 when something was affected, else 3.
fn matched(yes: bool) -> i32 {
    if yes {
        0
    } else {
        NOTHING_MATCHED
    }
}

fn doc(d: &J, code: i32) -> Output {
    Output { text: format!("{d}\n"), code }
}

/// Args JSON as a JSON value for documents (its text when serde cannot read it).
fn args_value(args: &str) -> J {
    serde_json::from_str(args).unwrap_or_else(|_| J::String(args.to_string()))
}

/// `add [1,2] (queue 'math')` for messages.
fn job_words(queue: &str, class: &str, args: &str) -> String {
    format!("{} {} (queue '{}')", cell(class, 40), cell(args, 60), cell(queue, 40))
}

fn ns_of(c: &Client) -> Result<tq_core::keys::Ns<'_>, Error> {
    tq_core::keys::Ns::new(c.ns().as_bytes(), false)
        .map_err(|e| Error::Rejected { code: "ERR".into(), message: e.to_string() })
}

// ---------------------------------------------------------------------------
// Removing jobs, queues and locks

fn del(c: &mut Client, a: &DelArgs) -> Result<Output, Error> {
    let j = &a.job;
    let ns = c.ns().to_string();
    let count = a.count.map(|n| n.to_string());
    let mut args: Vec<&[u8]> = vec![ns.as_bytes(), j.queue.as_bytes(), j.class.as_bytes(), j.args().as_bytes()];
    if let Some(n) = &count {
        args.extend([&b"COUNT"[..], n.as_bytes()]);
    }
    let v = call(c, "TQ.DEL", &args)?;
    let removed = uint("TQ.DEL", &v)?;
    let code = matched(removed > 0);
    if j.output.json {
        let d = json!({"queue": j.queue, "class": j.class, "args": args_value(j.args()), "removed": removed});
        return Ok(doc(&d, code));
    }
    let what = job_words(&j.queue, &j.class, j.args());
    let text = if removed == 0 {
        format!("nothing matched: no waiting {what}\n")
    } else {
        format!("removed {} of {what}\n", plural(removed, "waiting instance"))
    };
    Ok(Output { text, code })
}

fn del_by_class(c: &mut Client, a: &DelByClassArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let (start, stop) = (a.start.to_string(), a.stop.to_string());
    let args: [&[u8]; 5] = [ns.as_bytes(), a.queue.as_bytes(), a.class.as_bytes(), start.as_bytes(), stop.as_bytes()];
    let removed = uint("TQ.DELBYCLASS", &call(c, "TQ.DELBYCLASS", &args)?)?;
    let code = matched(removed > 0);
    if a.output.json {
        return Ok(doc(&json!({"queue": a.queue, "class": a.class, "removed": removed}), code));
    }
    let (class, queue) = (cell(&a.class, 40), cell(&a.queue, 40));
    let text = if removed == 0 {
        format!("nothing matched: no waiting {class} job in queue '{queue}'\n")
    } else {
        format!("removed {} of class {class} from queue '{queue}'\n", plural(removed, "waiting job"))
    };
    Ok(Output { text, code })
}

fn del_delayed(c: &mut Client, j: &JobArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let v = call(c, "TQ.DELDELAYED", &[ns.as_bytes(), j.queue.as_bytes(), j.class.as_bytes(), j.args().as_bytes()])?;
    let times = array("TQ.DELDELAYED", v)?.iter().map(|t| uint("TQ.DELDELAYED", t)).collect::<Result<Vec<_>, _>>()?;
    let code = matched(!times.is_empty());
    if j.output.json {
        let d = json!({"queue": j.queue, "class": j.class, "args": args_value(j.args()), "removed_from": times});
        return Ok(doc(&d, code));
    }
    let what = job_words(&j.queue, &j.class, j.args());
    if times.is_empty() {
        return Ok(Output { text: format!("nothing matched: no delayed {what}\n"), code });
    }
    let now = server_now(c)?;
    let mut t = Table::new(&[("REMOVED FROM", Align::Left)]);
    for at in &times {
        t.row(vec![when(*at, now)]);
    }
    let mut text = t.render();
    text.push_str(&format!("removed delayed {what} from {}\n", plural(times.len(), "time")));
    Ok(Output { text, code })
}

fn del_queue(c: &mut Client, a: &DelQueueArgs) -> Result<Output, Error> {
    let ns = ns_of(c)?;
    let (queues, ns_name) = (ns.queues(), c.ns().to_string());
    // Whether it was registered, for the exit status: a registered empty
    // queue is still something deleted.
    let registered = int(&call(c, "SISMEMBER", &[&queues, a.queue.as_bytes()])?) == Some(1);
    let v = call(c, "TQ.DELQUEUE", &[ns_name.as_bytes(), a.queue.as_bytes()])?;
    let removed = uint("TQ.DELQUEUE", &v)?;
    let code = matched(registered || removed > 0);
    if a.output.json {
        return Ok(doc(&json!({"queue": a.queue, "registered": registered, "removed": removed}), code));
    }
    let q = cell(&a.queue, 80);
    let text = if code != 0 {
        format!("nothing matched: no queue '{q}'\n")
    } else {
        format!("deleted queue '{q}' and its {}\n", plural(removed, "job"))
    };
    Ok(Output { text, code })
}

fn del_lock(c: &mut Client, a: &DelLockArgs) -> Result<Output, Error> {
    let key = ns_of(c)?
        .lock_named(a.lock.as_bytes())
        .ok_or_else(|| Error::Protocol(format!("'{}' is not a lock name", a.lock)))?;
    let v = call(c, "DEL", &[&key])?;
    let deleted = uint("DEL", &v)? > 0;
    let code = matched(deleted);
    if a.output.json {
        return Ok(doc(&json!({"lock": a.lock, "deleted": deleted}), code));
    }
    let l = cell(&a.lock, 120);
    let text = if deleted { format!("deleted lock '{l}'\n") } else { format!("nothing matched: no lock '{l}'\n") };
    Ok(Output { text, code })
}

// ---------------------------------------------------------------------------
// Periodic tasks

fn recur(c: &mut Client, a: &RecurArgs) -> Result<Output, Error> {
    let j = &a.job;
    let ns = c.ns().to_string();
    let every = millis(a.every).to_string();
    let v = call(
        c,
        "TQ.RECUR",
        &[ns.as_bytes(), j.class.as_bytes(), j.queue.as_bytes(), every.as_bytes(), j.args().as_bytes()],
    )?;
    let registered = uint("TQ.RECUR", &v)? == 1;
    if j.output.json {
        let d = json!({
            "queue": j.queue, "class": j.class, "args": args_value(j.args()),
            "every_ms": millis(a.every), "registered": registered,
        });
        return Ok(doc(&d, 0));
    }
    let verb = if registered { "registered" } else { "re-timed" };
    let text = format!("{verb} periodic task {} every {}\n", job_words(&j.queue, &j.class, j.args()), show(a.every));
    Ok(Output::ok(text))
}

fn unrecur(c: &mut Client, j: &JobArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let v = call(c, "TQ.UNRECUR", &[ns.as_bytes(), j.class.as_bytes(), j.queue.as_bytes(), j.args().as_bytes()])?;
    let removed = uint("TQ.UNRECUR", &v)? == 1;
    let code = matched(removed);
    if j.output.json {
        let d = json!({"queue": j.queue, "class": j.class, "args": args_value(j.args()), "removed": removed});
        return Ok(doc(&d, code));
    }
    let what = job_words(&j.queue, &j.class, j.args());
    let text = if removed {
        format!("removed periodic task {what}\n")
    } else {
        format!("nothing matched: no periodic task {what}\n")
    };
    Ok(Output { text, code })
}

/// A TQ.RECURS row `[payload, every-ms, next-due-ms]` as
/// `{"queue", "class", "args", "payload", "every_ms", "next_due"}`.
pub fn recur_json(row: &[Value]) -> Option<J> {
    let [payload, every, next] = row else { return None };
    let job = job_json(bytes(payload)?);
    Some(json!({
        "queue": pick(&job, "queue"),
        "class": pick(&job, "class"),
        "args": pick(&job, "args"),
        "payload": pick(&job, "payload"),
        "every_ms": int(every)?,
        "next_due": int(next)?,
    }))
}

fn recurs(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let rows = array("TQ.RECURS", call(c, "TQ.RECURS", &[ns.as_bytes()])?)?;
    let mut tasks = Vec::new();
    for row in rows {
        let fields = array("TQ.RECURS", row)?;
        tasks.push(recur_json(&fields).ok_or_else(|| Error::Protocol(format!("TQ.RECURS answered {fields:?}")))?);
    }
    // Stable order: by queue, class, then payload.
    tasks.sort_by_key(|t| (show_json(pick(t, "queue")), show_json(pick(t, "class")), show_json(pick(t, "payload"))));
    if as_json {
        return Ok(Output::json(&json!({"recurs": tasks})));
    }
    if tasks.is_empty() {
        return Ok(Output::ok("no periodic tasks\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t = Table::new(&[
        ("QUEUE", Align::Left),
        ("CLASS", Align::Left),
        ("ARGS", Align::Left),
        ("EVERY", Align::Right),
        ("NEXT", Align::Left),
    ]);
    for task in &tasks {
        let (class, args) = job_cells(task);
        let every = pick(task, "every_ms").as_u64().map_or("-".to_string(), show_ms);
        let next = pick(task, "next_due").as_u64().map_or("-".to_string(), |at| when(at, now));
        t.row(vec![cell(&show_json(pick(task, "queue")), 40), class, args, every, next]);
    }
    let mut out = t.render();
    out.push_str(&format!("{}\n", plural(tasks.len(), "periodic task")));
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// promote, broadcast, nack

fn promote(c: &mut Client, a: &PromoteArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let limit = a.limit.map(|n| n.to_string());
    let mut args: Vec<&[u8]> = vec![ns.as_bytes()];
    if let Some(n) = &limit {
        args.extend([&b"LIMIT"[..], n.as_bytes()]);
    }
    let promoted = uint("TQ.PROMOTE", &call(c, "TQ.PROMOTE", &args)?)?;
    if a.output.json {
        return Ok(Output::json(&json!({"promoted": promoted})));
    }
    Ok(Output::ok(format!("promoted {} into their queues\n", plural(promoted, "due job"))))
}

fn broadcast(c: &mut Client, a: &BroadcastArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let args = a.args.as_deref().unwrap_or("[]");
    let v = call(c, "TQ.BROADCAST", &[ns.as_bytes(), a.class.as_bytes(), args.as_bytes()])?;
    let reached = uint("TQ.BROADCAST", &v)?;
    let code = matched(reached > 0);
    if a.output.json {
        return Ok(doc(&json!({"class": a.class, "args": args_value(args), "reached": reached}), code));
    }
    let what = format!("{} {}", cell(&a.class, 40), cell(args, 60));
    let text = if reached == 0 {
        format!("nothing matched: no live worker to send {what} to\n")
    } else {
        format!("sent {what} to {}\n", plural(reached, "live worker"))
    };
    Ok(Output { text, code })
}

fn nack(c: &mut Client, a: &NackArgs) -> Result<Output, Error> {
    let delivery = match a.delivery {
        Some(d) => d,
        None => {
            let key = ns_of(c)?.inflight(a.worker.as_bytes());
            let entry = bytes(&call(c, "GET", &[&key])?).and_then(tq_core::records::InFlight::decode);
            match entry.filter(tq_core::records::InFlight::live) {
                Some(e) => e.delivery,
                None => {
                    let code = NOTHING_MATCHED;
                    if a.output.json {
                        return Ok(doc(&json!({"worker": a.worker, "delivery": null, "delay_ms": null}), code));
                    }
                    let text = format!("nothing matched: worker '{}' holds no job\n", cell(&a.worker, 80));
                    return Ok(Output { text, code });
                }
            }
        }
    };
    let ns = c.ns().to_string();
    let (d, delay) = (delivery.to_string(), a.delay.map(|d| millis(d).to_string()));
    let mut args: Vec<&[u8]> = vec![ns.as_bytes(), a.worker.as_bytes(), d.as_bytes()];
    if let Some(ms) = &delay {
        args.extend([&b"DELAY"[..], ms.as_bytes()]);
    }
    let v = call(c, "TQ.NACK", &args)?;
    if v != Value::Okay && text(&v).as_deref() != Some("OK") {
        return Err(Error::Protocol(format!("TQ.NACK answered {v:?}")));
    }
    if a.output.json {
        return Ok(Output::json(&json!({"worker": a.worker, "delivery": delivery, "delay_ms": a.delay.map(millis)})));
    }
    let to = match a.delay {
        Some(d) if !d.is_zero() => format!("to run again in {}", show(d)),
        _ => "to the head of its queue".to_string(),
    };
    Ok(Output::ok(format!("gave back delivery {delivery} of worker '{}' {to}\n", cell(&a.worker, 80))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn recurs_rows_as_json() {
        let p = r#"{"class":"add","queue":"math","args":[1]}"#;
        assert_eq!(
            recur_json(&[bulk(p), Value::Int(60_000), Value::Int(1_893_456_000_000)]),
            Some(json!({
                "queue": "math", "class": "add", "args": [1], "payload": p,
                "every_ms": 60_000, "next_due": 1_893_456_000_000u64,
            }))
        );
        assert_eq!(recur_json(&[bulk(p), Value::Int(1)]), None);
    }

    #[test]
    fn lock_names() {
        assert!(parse_lock_name("lock:C:q:[]").is_ok());
        assert!(parse_lock_name("tq:lock:nightly").is_ok());
        let e = parse_lock_name("queue:math").expect_err("not a lock");
        assert!(e.contains("'queue:math' is not a lock name"), "{e}");
    }
}
