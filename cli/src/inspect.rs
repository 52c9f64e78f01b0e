//! The operator subcommands, each a thin layer over the module's inspection
//! and management commands (node-resque's Queue methods):
//!
//! | subcommand | commands sent |
//! |---|---|
//! | `tq stats` | `TQ.STATS` |
//! | `tq queues` | `SMEMBERS <ns>:queues`, `LLEN` each |
//! | `tq queued QUEUE` | `LLEN`, `LRANGE` |
//! | `tq delayed` | `TQ.TIMESTAMPS` (every page, until an empty one), `LLEN` of each bucket |
//! | `tq delayed --at T` / `--jobs` / `--job Q C [A]` | `TQ.DELAYEDAT` / `TQ.ALLDELAYED` / `TQ.SCHEDULEDAT` |
//! | `tq workers` | `TQ.WORKERS` (every page) |
//! | `tq failed` | `LLEN <ns>:failed`, `TQ.FAILED` |
//! | `tq retry` / `tq remove` | `TQ.FAILRETRY` / `TQ.FAILREMOVE`, following `next` |
//! | `tq clean-workers` | `TQ.CLEANWORKERS` or `TQ.FORCECLEAN` |
//! | `tq details` | `TQ.DETAILS` |
//! | `tq locks` | `TQ.LOCKS`, following the cursor |
//!
//! Output is an aligned table (times as RFC 3339 UTC with a relative part,
//! relative to the server's clock) or, with `--json`, one JSON document with
//! stable field names and times as unix milliseconds. Exit status: 0
//! success, 1 Redis unreachable or a refusal, 3 nothing matched (retry,
//! remove, clean-workers --worker); clap exits 2 on usage errors.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use redis::Value;
use serde_json::{json, Value as J};

use crate::cli::{CleanWorkersArgs, DelayedArgs, FailedArgs, InspectCmd, ProgressArg, QueuedArgs, SweepArgs};
use crate::client::{Client, Error};
use crate::duration::{millis, show, show_short_ms};
use crate::table::{cell, rfc3339, when, Align, Progress, ProgressStyle, Table};

/// I/O timeout of every call (a TQ.FAILRETRY batch on a long list can take a while).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Exit status when retry/remove/clean-workers --worker affected nothing.
pub const NOTHING_MATCHED: i32 = 3;
/// The module's largest page (TQ.WORKERS, TQ.FAILED, TQ.TIMESTAMPS, TQ.DELAYEDAT).
const PAGE: u64 = 10_000;
/// TQ.ALLDELAYED: buckets per call, and jobs shown per bucket.
const ALLDELAYED_PAGE: u64 = 1_000;
/// TQ.LOCKS: keys per SCAN step.
const LOCKS_PAGE: u64 = 1_000;
/// Widths of free-text cells.
const ARGS_WIDTH: usize = 60;
const ERROR_WIDTH: usize = 60;

/// What a subcommand prints on stdout, and its exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub text: String,
    pub code: i32,
}

impl Output {
    pub(crate) fn ok(text: String) -> Output {
        Output { text, code: 0 }
    }

    pub(crate) fn json(doc: &J) -> Output {
        Output::ok(format!("{doc}\n"))
    }
}

/// Runs one operator subcommand against `redis_url` / `ns`; prints its output
/// (stdout) or error (stderr) and returns the exit status.
pub fn run(redis_url: &str, ns: &str, cmd: InspectCmd) -> i32 {
    let name = cmd.name();
    finish(name, Client::new(redis_url, ns, TIMEOUT).and_then(|mut c| dispatch(&mut c, cmd)))
}

/// Prints a subcommand's output (stdout) or error (stderr); its exit status.
pub(crate) fn finish(name: &str, result: Result<Output, Error>) -> i32 {
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`tq failed | head`) is not an error of ours.
            let _ = stdout.write_all(out.text.as_bytes());
            let _ = stdout.flush();
            out.code
        }
        Err(e) => {
            eprintln!("tq {name}: {e}");
            1
        }
    }
}

/// Runs the subcommand; returns what to print.
pub fn dispatch(c: &mut Client, cmd: InspectCmd) -> Result<Output, Error> {
    match cmd {
        InspectCmd::Stats(o) => stats(c, o.json),
        InspectCmd::Queues(o) => queues(c, o.json),
        InspectCmd::Queued(a) => queued(c, &a),
        InspectCmd::Delayed(a) => delayed(c, &a),
        InspectCmd::Workers(o) => workers(c, o.json),
        InspectCmd::Failed(a) => failed(c, &a),
        InspectCmd::Retry(a) => sweep(c, &a, Sweep::Retry),
        InspectCmd::Remove(a) => sweep(c, &a, Sweep::Remove),
        InspectCmd::CleanWorkers(a) => clean_workers(c, &a),
        InspectCmd::Details(o) => details(c, o.json),
        InspectCmd::Locks(o) => locks(c, o.json),
    }
}

// ---------------------------------------------------------------------------
// Replies

fn unexpected(what: &str, v: &Value) -> Error {
    Error::Protocol(format!("{what} answered {v:?}"))
}

/// The items of an array reply (nil is empty).
pub(crate) fn array(what: &str, v: Value) -> Result<Vec<Value>, Error> {
    match v {
        Value::Array(items) | Value::Set(items) => Ok(items),
        Value::Nil => Ok(Vec::new()),
        other => Err(unexpected(what, &other)),
    }
}

pub(crate) fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

/// A string reply as text (invalid UTF-8 replaced).
pub(crate) fn text(v: &Value) -> Option<String> {
    bytes(v).map(|b| String::from_utf8_lossy(b).into_owned())
}

/// An integer reply, or a string of digits.
pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => std::str::from_utf8(bytes(other)?).ok()?.trim().parse().ok(),
    }
}

pub(crate) fn uint(what: &str, v: &Value) -> Result<u64, Error> {
    int(v).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| unexpected(what, v))
}

/// A counter's value as JSON: a number, or the text when it is not one.
fn counter(v: &Value) -> J {
    match int(v) {
        Some(n) => json!(n),
        None => text(v).map_or(J::Null, J::String),
    }
}

/// `1 job`, `2 jobs`.
pub(crate) fn plural(n: impl TryInto<u64>, noun: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A member of a JSON object (null when absent or not an object).
pub(crate) fn pick<'a>(v: &'a J, name: &str) -> &'a J {
    v.get(name).unwrap_or(&J::Null)
}

pub(crate) fn show_json(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        J::Null => "-".to_string(),
        other => other.to_string(),
    }
}

pub(crate) fn call(c: &mut Client, name: &str, args: &[&[u8]]) -> Result<Value, Error> {
    let mut cmd = redis::cmd(name);
    for a in args {
        cmd.arg(*a);
    }
    c.call(&cmd)
}

pub(crate) fn key(c: &Client, suffix: &str) -> String {
    format!("{}:{suffix}", c.ns())
}

/// The server's clock (unix ms), the reference of relative times.
pub(crate) fn server_now(c: &mut Client) -> Result<u64, Error> {
    let v = call(c, "TIME", &[])?;
    let parts = array("TIME", v)?;
    match parts.as_slice() {
        [s, us] => {
            let (s, us) = (uint("TIME", s)?, uint("TIME", us)?);
            Ok(s.saturating_mul(1000).saturating_add(us / 1000))
        }
        _ => Err(Error::Protocol("TIME answered an unexpected shape".to_string())),
    }
}

/// `LLEN` of each key, pipelined.
pub(crate) fn lengths(c: &mut Client, keys: &[String]) -> Result<Vec<u64>, Error> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("LLEN").arg(k);
        }
        for v in array("LLEN", c.call_pipe(&pipe)?)? {
            out.push(uint("LLEN", &v)?);
        }
    }
    Ok(out)
}

pub(crate) fn llen(c: &mut Client, k: &str) -> Result<u64, Error> {
    let v = call(c, "LLEN", &[k.as_bytes()])?;
    uint("LLEN", &v)
}

// ---------------------------------------------------------------------------
// Jobs and records as JSON

/// A stored job payload: `{"class", "queue", "args", "payload"}`; class,
/// queue and args are null when the payload is not a job object, `payload`
/// is its text as stored.
pub fn job_json(payload: &[u8]) -> J {
    let parsed: Option<serde_json::Map<String, J>> = serde_json::from_slice(payload).ok();
    let field = |name: &str| parsed.as_ref().and_then(|m| m.get(name)).cloned();
    json!({
        "class": field("class").filter(J::is_string).unwrap_or(J::Null),
        "queue": field("queue").filter(J::is_string).unwrap_or(J::Null),
        "args": field("args").unwrap_or(J::Null),
        "payload": String::from_utf8_lossy(payload),
    })
}

/// `class` and `args` of a job for a table.
pub(crate) fn job_cells(job: &J) -> (String, String) {
    let class = job.get("class").and_then(J::as_str).map(|s| cell(s, 40));
    match class {
        Some(class) => (class, cell(&job.get("args").map_or(String::new(), J::to_string), ARGS_WIDTH)),
        None => ("?".to_string(), cell(job.get("payload").and_then(J::as_str).unwrap_or_default(), ARGS_WIDTH)),
    }
}

/// A top-level member of a JSON object, as its raw bytes.
pub(crate) fn raw_member<'a>(object: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let members = tq_core::json::object_members(object).ok()?;
    object.get(tq_core::json::member(&members, name)?.clone())
}

/// A failed-job record (node-resque's `{"worker", "queue", "payload",
/// "exception", "error", "backtrace", "failed_at"}`) with its id:
/// `{"id", "worker", "queue", "class", "args", "exception", "error",
/// "backtrace", "failed_at" (unix ms), "payload"}`.
pub fn failed_json(id: &str, record: &[u8]) -> J {
    let parsed: Option<serde_json::Map<String, J>> = serde_json::from_slice(record).ok();
    let field = |name: &str| parsed.as_ref().and_then(|m| m.get(name)).cloned().unwrap_or(J::Null);
    let payload = raw_member(record, b"payload");
    let job = payload.map(job_json);
    let from_job = |name: &str| job.as_ref().and_then(|j| j.get(name)).cloned().unwrap_or(J::Null);
    let failed_at = field("failed_at").as_str().and_then(|s| tq_core::time::parse_date(s.as_bytes()));
    json!({
        "id": id,
        "worker": field("worker"),
        "queue": field("queue"),
        "class": from_job("class"),
        "args": from_job("args"),
        "exception": field("exception"),
        "error": field("error"),
        "backtrace": field("backtrace"),
        "failed_at": failed_at,
        "payload": payload.map_or(J::Null, |p| J::String(String::from_utf8_lossy(p).into_owned())),
    })
}

fn failed_json_of(record: &[u8]) -> J {
    let id = String::from_utf8_lossy(&tq_core::inspect::failed_id(record)).into_owned();
    failed_json(&id, record)
}

/// An in-flight record (`{"run_at", "queue", "worker", "payload"}`) as
/// `{"queue", "class", "args", "payload", "run_at" (unix ms)}`.
fn in_flight_json(record: &[u8]) -> J {
    let parsed: Option<serde_json::Map<String, J>> = serde_json::from_slice(record).ok();
    let run_at = parsed
        .as_ref()
        .and_then(|m| m.get("run_at"))
        .and_then(J::as_str)
        .and_then(|s| tq_core::time::parse_date(s.as_bytes()));
    let payload = raw_member(record, b"payload");
    let job = payload.map(job_json).unwrap_or_else(|| json!({"class": null, "args": null, "payload": null}));
    let queue = parsed.as_ref().and_then(|m| m.get("queue")).cloned().unwrap_or(J::Null);
    json!({
        "queue": queue,
        "class": job.get("class"),
        "args": job.get("args"),
        "payload": job.get("payload"),
        "run_at": run_at,
    })
}

fn time_cell(at: Option<u64>, raw: &J, now: u64) -> String {
    match at {
        Some(ms) => when(ms, now),
        None => show_json(raw),
    }
}

// ---------------------------------------------------------------------------
// tq stats

/// TQ.STATS's flat `[name, value, ...]` as `{"processed", "failed",
/// "workers": [{"name", "processed", "failed"}]}`.
pub fn stats_json(flat: &[Value]) -> J {
    let (mut processed, mut failed) = (json!(0), json!(0));
    let mut per: BTreeMap<String, (J, J)> = BTreeMap::new();
    for pair in flat.chunks(2) {
        let [name, value] = pair else { continue };
        let Some(name) = text(name) else { continue };
        let value = counter(value);
        match name.as_str() {
            "processed" => processed = value,
            "failed" => failed = value,
            _ => {
                if let Some(w) = name.strip_prefix("processed:") {
                    per.entry(w.to_string()).or_insert((json!(0), json!(0))).0 = value;
                } else if let Some(w) = name.strip_prefix("failed:") {
                    per.entry(w.to_string()).or_insert((json!(0), json!(0))).1 = value;
                }
            }
        }
    }
    let workers: Vec<J> =
        per.into_iter().map(|(name, (p, f))| json!({"name": name, "processed": p, "failed": f})).collect();
    json!({"processed": processed, "failed": failed, "workers": workers})
}

fn stats_table(doc: &J) -> String {
    let mut top = Table::new(&[("STAT", Align::Left), ("VALUE", Align::Right)]);
    for name in ["processed", "failed"] {
        top.row(vec![name.to_string(), show_json(pick(doc, name))]);
    }
    let mut out = top.render();
    let workers = pick(doc, "workers").as_array().cloned().unwrap_or_default();
    out.push('\n');
    if workers.is_empty() {
        out.push_str("no registered worker has counters\n");
        return out;
    }
    let mut t = Table::new(&[("WORKER", Align::Left), ("PROCESSED", Align::Right), ("FAILED", Align::Right)]);
    for w in &workers {
        t.row(vec![
            cell(&show_json(pick(w, "name")), 60),
            show_json(pick(w, "processed")),
            show_json(pick(w, "failed")),
        ]);
    }
    out.push_str(&t.render());
    out
}

fn stats(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let flat = array("TQ.STATS", call(c, "TQ.STATS", &[ns.as_bytes()])?)?;
    let doc = stats_json(&flat);
    Ok(if as_json { Output::json(&doc) } else { Output::ok(stats_table(&doc)) })
}

// ---------------------------------------------------------------------------
// tq queues, tq queued

fn queue_list(c: &mut Client) -> Result<Vec<(String, u64)>, Error> {
    let members = array("SMEMBERS", call(c, "SMEMBERS", &[key(c, "queues").as_bytes()])?)?;
    let mut names: Vec<String> = members.iter().filter_map(text).collect();
    names.sort();
    names.dedup();
    let keys: Vec<String> = names.iter().map(|q| key(c, &format!("queue:{q}"))).collect();
    let lens = lengths(c, &keys)?;
    Ok(names.into_iter().zip(lens).collect())
}

fn queues_json(list: &[(String, u64)]) -> J {
    J::Array(list.iter().map(|(name, len)| json!({"name": name, "length": len})).collect())
}

fn queues_table(list: &[(String, u64)], indent: usize) -> String {
    if list.is_empty() {
        return format!("{}no queues\n", " ".repeat(indent));
    }
    let mut t = Table::new(&[("QUEUE", Align::Left), ("LENGTH", Align::Right)]);
    for (name, len) in list {
        t.row(vec![cell(name, 80), len.to_string()]);
    }
    t.render_indented(indent)
}

fn queues(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let list = queue_list(c)?;
    if as_json {
        return Ok(Output::json(&json!({"queues": queues_json(&list)})));
    }
    let mut out = queues_table(&list, 0);
    if !list.is_empty() {
        let jobs: u64 = list.iter().map(|(_, n)| n).sum();
        out.push_str(&format!("{}, {} waiting\n", plural(list.len(), "queue"), plural(jobs, "job")));
    }
    Ok(Output::ok(out))
}

/// `LRANGE` from `offset`, `count` items at most, a page at a time.
pub(crate) fn lrange(c: &mut Client, k: &str, offset: u64, count: u64) -> Result<Vec<Vec<u8>>, Error> {
    let mut out = Vec::new();
    let mut pos = offset;
    let end = offset.saturating_add(count);
    while pos < end {
        let n = (end - pos).min(PAGE);
        let (start, stop) = (pos.to_string(), (pos + n - 1).to_string());
        let items = array("LRANGE", call(c, "LRANGE", &[k.as_bytes(), start.as_bytes(), stop.as_bytes()])?)?;
        let got = items.len() as u64;
        out.extend(items.iter().filter_map(bytes).map(<[u8]>::to_vec));
        if got < n {
            break;
        }
        pos += n;
    }
    Ok(out)
}

fn queued(c: &mut Client, a: &QueuedArgs) -> Result<Output, Error> {
    let k = key(c, &format!("queue:{}", a.queue));
    let length = llen(c, &k)?;
    let jobs = lrange(c, &k, a.offset, a.count)?;
    let rows: Vec<J> = jobs
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mut j = job_json(p);
            if let Some(m) = j.as_object_mut() {
                m.insert("position".to_string(), json!(a.offset + i as u64));
            }
            j
        })
        .collect();
    if a.output.json {
        return Ok(Output::json(&json!({"queue": a.queue, "length": length, "offset": a.offset, "jobs": rows})));
    }
    let mut out = String::new();
    if rows.is_empty() {
        out.push_str(&if length == 0 {
            format!("queue '{}' is empty\n", a.queue)
        } else {
            format!("no job at position {} and after (queue '{}' has {length})\n", a.offset, a.queue)
        });
        return Ok(Output::ok(out));
    }
    let mut t = Table::new(&[("POS", Align::Right), ("CLASS", Align::Left), ("ARGS", Align::Left)]);
    for j in &rows {
        let (class, args) = job_cells(j);
        t.row(vec![show_json(pick(j, "position")), class, args]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "jobs {}-{} of {length} in queue '{}'\n",
        a.offset + 1,
        a.offset + rows.len() as u64,
        a.queue
    ));
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq delayed

fn timestamps(c: &mut Client) -> Result<Vec<u64>, Error> {
    let ns = c.ns().to_string();
    let mut out = Vec::new();
    loop {
        let offset = (out.len() as u64).to_string();
        let page = PAGE.to_string();
        let v = call(c, "TQ.TIMESTAMPS", &[ns.as_bytes(), offset.as_bytes(), page.as_bytes()])?;
        let items = array("TQ.TIMESTAMPS", v)?;
        let got = items.len() as u64;
        for v in &items {
            out.push(uint("TQ.TIMESTAMPS", v)?);
        }
        // Until an empty page: the module skips buckets left empty (up to
        // 1000 a call), so a page can come short with more to follow.
        if got == 0 {
            return Ok(out);
        }
    }
}

fn bucket_key(c: &Client, at_ms: u64) -> String {
    key(c, &format!("delayed:{}", tq_core::time::bucket_of(at_ms)))
}

fn delayed(c: &mut Client, a: &DelayedArgs) -> Result<Output, Error> {
    if let Some(at) = a.at {
        return delayed_at(c, at, a.output.json);
    }
    if a.jobs {
        return all_delayed(c, a.output.json);
    }
    if let Some(job) = &a.job {
        return scheduled_at(c, job, a.output.json);
    }
    let times = timestamps(c)?;
    let keys: Vec<String> = times.iter().map(|&t| bucket_key(c, t)).collect();
    let counts = lengths(c, &keys)?;
    let total: u64 = counts.iter().sum();
    if a.output.json {
        let rows: Vec<J> = times.iter().zip(&counts).map(|(t, n)| json!({"at": t, "count": n})).collect();
        return Ok(Output::json(&json!({"timestamps": rows, "total": total})));
    }
    if times.is_empty() {
        return Ok(Output::ok("no delayed jobs\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t = Table::new(&[("TIME", Align::Left), ("JOBS", Align::Right)]);
    for (at, n) in times.iter().zip(&counts) {
        t.row(vec![when(*at, now), n.to_string()]);
    }
    let mut out = t.render();
    out.push_str(&format!("{} at {}\n", plural(total, "delayed job"), plural(times.len(), "time")));
    Ok(Output::ok(out))
}

fn delayed_at(c: &mut Client, at: u64, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let at_s = at.to_string();
    let mut jobs: Vec<Vec<u8>> = Vec::new();
    loop {
        let start = jobs.len() as u64;
        let (s, e) = (start.to_string(), (start + PAGE - 1).to_string());
        let v = call(c, "TQ.DELAYEDAT", &[ns.as_bytes(), at_s.as_bytes(), s.as_bytes(), e.as_bytes()])?;
        let items = array("TQ.DELAYEDAT", v)?;
        let got = items.len() as u64;
        jobs.extend(items.iter().filter_map(bytes).map(<[u8]>::to_vec));
        if got < PAGE {
            break;
        }
    }
    let bucket = tq_core::time::bucket_of(at).saturating_mul(1000);
    let rows: Vec<J> = jobs.iter().map(|p| job_json(p)).collect();
    if as_json {
        return Ok(Output::json(&json!({"at": at, "bucket": bucket, "jobs": rows})));
    }
    let now = server_now(c)?;
    if rows.is_empty() {
        return Ok(Output::ok(format!("no delayed jobs at {}\n", when(bucket, now))));
    }
    let mut t = Table::new(&[("QUEUE", Align::Left), ("CLASS", Align::Left), ("ARGS", Align::Left)]);
    for j in &rows {
        let (class, args) = job_cells(j);
        t.row(vec![cell(&show_json(pick(j, "queue")), 40), class, args]);
    }
    let mut out = t.render();
    out.push_str(&format!("{} at {}\n", plural(rows.len(), "delayed job"), when(bucket, now)));
    Ok(Output::ok(out))
}

fn all_delayed(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let mut buckets: Vec<(u64, Vec<Vec<u8>>)> = Vec::new();
    loop {
        let (offset, count) = ((buckets.len() as u64).to_string(), ALLDELAYED_PAGE.to_string());
        let v = call(c, "TQ.ALLDELAYED", &[ns.as_bytes(), offset.as_bytes(), count.as_bytes()])?;
        let items = array("TQ.ALLDELAYED", v)?;
        let got = items.len() as u64;
        for item in items {
            let parts = array("TQ.ALLDELAYED", item)?;
            let [at, jobs] = parts.as_slice() else {
                return Err(Error::Protocol("TQ.ALLDELAYED: expected [time, jobs]".to_string()));
            };
            let at = uint("TQ.ALLDELAYED", at)?;
            let jobs = array("TQ.ALLDELAYED", jobs.clone())?;
            buckets.push((at, jobs.iter().filter_map(bytes).map(<[u8]>::to_vec).collect()));
        }
        // Until an empty page, as for TQ.TIMESTAMPS.
        if got == 0 {
            break;
        }
    }
    // A bucket shown full may hold more than the module lists.
    let mut counts = Vec::with_capacity(buckets.len());
    for (at, jobs) in &buckets {
        let n = jobs.len() as u64;
        counts.push(if n >= ALLDELAYED_PAGE { llen(c, &bucket_key(c, *at))? } else { n });
    }
    if as_json {
        let rows: Vec<J> = buckets
            .iter()
            .zip(&counts)
            .map(|((at, jobs), n)| {
                let jobs: Vec<J> = jobs.iter().map(|p| job_json(p)).collect();
                json!({"at": at, "count": n, "jobs": jobs})
            })
            .collect();
        return Ok(Output::json(&json!({"timestamps": rows})));
    }
    if buckets.is_empty() {
        return Ok(Output::ok("no delayed jobs\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t =
        Table::new(&[("TIME", Align::Left), ("QUEUE", Align::Left), ("CLASS", Align::Left), ("ARGS", Align::Left)]);
    let mut notes = String::new();
    for ((at, jobs), n) in buckets.iter().zip(&counts) {
        let shown = when(*at, now);
        for p in jobs {
            let j = job_json(p);
            let (class, args) = job_cells(&j);
            t.row(vec![shown.clone(), cell(&show_json(pick(&j, "queue")), 40), class, args]);
        }
        if *n > jobs.len() as u64 {
            notes.push_str(&format!(
                "{}: {} of {n} jobs shown (tq delayed --at {} lists them all)\n",
                rfc3339(*at),
                jobs.len(),
                at
            ));
        }
    }
    let mut out = t.render();
    out.push_str(&notes);
    out.push_str(&format!(
        "{} at {}\n",
        plural(counts.iter().sum::<u64>(), "delayed job"),
        plural(buckets.len(), "time")
    ));
    Ok(Output::ok(out))
}

fn scheduled_at(c: &mut Client, job: &[String], as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let mut args: Vec<&[u8]> = vec![ns.as_bytes()];
    args.extend(job.iter().map(|s| s.as_bytes()));
    let v = call(c, "TQ.SCHEDULEDAT", &args)?;
    let mut times = Vec::new();
    for t in &array("TQ.SCHEDULEDAT", v)? {
        times.push(uint("TQ.SCHEDULEDAT", t)?);
    }
    let queue = job.first().cloned().unwrap_or_default();
    let class = job.get(1).cloned().unwrap_or_default();
    let args_json = job.get(2).cloned().unwrap_or_else(|| "[]".to_string());
    if as_json {
        let args = serde_json::from_str::<J>(&args_json).unwrap_or(J::String(args_json));
        return Ok(Output::json(&json!({"queue": queue, "class": class, "args": args, "times": times})));
    }
    let desc = format!("{class} {args_json} on queue '{queue}'");
    if times.is_empty() {
        return Ok(Output::ok(format!("{desc} is not filed as a delayed job\n")));
    }
    let now = server_now(c)?;
    let mut t = Table::new(&[("TIME", Align::Left)]);
    for at in &times {
        t.row(vec![when(*at, now)]);
    }
    let mut out = t.render();
    out.push_str(&format!("{desc} is filed at {}\n", plural(times.len(), "time")));
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq workers

/// TQ.WORKERS rows `[name, queues, record-or-nil]` as `{"name", "queues":
/// [...], "job": null | {"queue", "class", "args", "payload", "run_at"}}`.
pub fn worker_json(row: &[Value]) -> Option<J> {
    let [name, queues, record] = row else { return None };
    let queues: Vec<String> = text(queues)?.split(',').filter(|q| !q.is_empty()).map(str::to_string).collect();
    Some(json!({
        "name": text(name)?,
        "queues": queues,
        "job": bytes(record).map_or(J::Null, in_flight_json),
    }))
}

fn worker_rows(c: &mut Client) -> Result<Vec<J>, Error> {
    let ns = c.ns().to_string();
    let mut out = Vec::new();
    loop {
        let (offset, count) = ((out.len() as u64).to_string(), PAGE.to_string());
        let v = call(c, "TQ.WORKERS", &[ns.as_bytes(), offset.as_bytes(), count.as_bytes()])?;
        let items = array("TQ.WORKERS", v)?;
        let got = items.len() as u64;
        for item in items {
            let row = array("TQ.WORKERS", item)?;
            out.push(worker_json(&row).ok_or_else(|| Error::Protocol("TQ.WORKERS: a malformed row".to_string()))?);
        }
        if got < PAGE {
            return Ok(out);
        }
    }
}

fn workers_table(rows: &[J], now: u64, indent: usize) -> String {
    if rows.is_empty() {
        return format!("{}no registered workers\n", " ".repeat(indent));
    }
    let mut t = Table::new(&[
        ("WORKER", Align::Left),
        ("QUEUES", Align::Left),
        ("JOB", Align::Left),
        ("QUEUE", Align::Left),
        ("STARTED", Align::Left),
    ]);
    for w in rows {
        let queues: Vec<String> =
            pick(w, "queues").as_array().map(|q| q.iter().map(show_json).collect()).unwrap_or_default();
        let job = pick(w, "job");
        let (what, queue, started) = if job.is_null() {
            ("-".to_string(), "-".to_string(), "-".to_string())
        } else {
            let (class, args) = job_cells(job);
            (
                format!("{class} {args}"),
                cell(&show_json(pick(job, "queue")), 40),
                time_cell(pick(job, "run_at").as_u64(), &J::Null, now),
            )
        };
        t.row(vec![cell(&show_json(pick(w, "name")), 60), cell(&queues.join(","), 60), what, queue, started]);
    }
    t.render_indented(indent)
}

fn workers(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let rows = worker_rows(c)?;
    if as_json {
        return Ok(Output::json(&json!({"workers": rows})));
    }
    let now = server_now(c)?;
    let mut out = workers_table(&rows, now, 0);
    if !rows.is_empty() {
        let busy = rows.iter().filter(|w| !pick(w, "job").is_null()).count();
        out.push_str(&format!("{}, {busy} working\n", plural(rows.len(), "worker")));
    }
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq failed

fn failed(c: &mut Client, a: &FailedArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let total = llen(c, &key(c, "failed"))?;
    let mut rows: Vec<J> = Vec::new();
    let end = a.offset.saturating_add(a.count);
    let mut pos = a.offset;
    while pos < end {
        let n = (end - pos).min(PAGE);
        let (o, k) = (pos.to_string(), n.to_string());
        let items = array("TQ.FAILED", call(c, "TQ.FAILED", &[ns.as_bytes(), o.as_bytes(), k.as_bytes()])?)?;
        let got = items.len() as u64;
        for item in items {
            let pair = array("TQ.FAILED", item)?;
            let [id, record] = pair.as_slice() else {
                return Err(Error::Protocol("TQ.FAILED: expected [id, record]".to_string()));
            };
            let (Some(id), Some(record)) = (text(id), bytes(record)) else {
                return Err(Error::Protocol("TQ.FAILED: expected strings".to_string()));
            };
            rows.push(failed_json(&id, record));
        }
        if got < n {
            break;
        }
        pos += n;
    }
    if a.output.json {
        return Ok(Output::json(&json!({"total": total, "offset": a.offset, "failed": rows})));
    }
    if rows.is_empty() {
        return Ok(Output::ok(if total == 0 {
            "no failed jobs\n".to_string()
        } else if a.count == 0 {
            format!("{} in all\n", plural(total, "failed job"))
        } else {
            format!("no failed job at position {} and after ({total} in all)\n", a.offset)
        }));
    }
    let now = server_now(c)?;
    let mut out = failed_table(&rows, now);
    out.push_str(&format!("failed jobs {}-{} of {total}\n", a.offset + 1, a.offset + rows.len() as u64));
    Ok(Output::ok(out))
}

fn failed_table(rows: &[J], now: u64) -> String {
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("FAILED AT", Align::Left),
        ("QUEUE", Align::Left),
        ("CLASS", Align::Left),
        ("EXCEPTION", Align::Left),
        ("ERROR", Align::Left),
    ]);
    for r in rows {
        let class = pick(r, "class").as_str().map_or("?".to_string(), |s| cell(s, 40));
        t.row(vec![
            show_json(pick(r, "id")),
            time_cell(pick(r, "failed_at").as_u64(), &J::Null, now),
            cell(&show_json(pick(r, "queue")), 40),
            class,
            cell(&show_json(pick(r, "exception")), 40),
            cell(&show_json(pick(r, "error")), ERROR_WIDTH),
        ]);
    }
    t.render()
}

// ---------------------------------------------------------------------------
// tq retry, tq remove

/// Which of the two sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    Retry,
    Remove,
}

impl Sweep {
    fn command(self) -> &'static str {
        match self {
            Sweep::Retry => "TQ.FAILRETRY",
            Sweep::Remove => "TQ.FAILREMOVE",
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Sweep::Retry => "retried",
            Sweep::Remove => "removed",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sweep::Retry => "retry",
            Sweep::Remove => "remove",
        }
    }
}

/// Where the next call of a sweep starts, given one call's window and reply
/// (`next` None for nil); None at the end.
///
/// The module replies nil at the end; 0 when every record of a full window
/// from position 0 matched (they are gone, so the rest starts at 0 again).
/// Modules before that change replied 0 at the end too: a 0 that cannot be
/// the full-window case (from a position p > 0 `next` is at least p; a window
/// from 0 with fewer matches than `limit` leaves `next` > 0 unless it reached
/// the end) is read as the end, so a sweep never loops on an older module.
pub fn next_from(from: u64, limit: u64, affected: u64, next: Option<u64>) -> Option<u64> {
    match next {
        None => None,
        Some(0) if from != 0 || affected < limit => None,
        Some(n) => Some(n),
    }
}

/// Records a call looked at (for the progress report), None when unknown
/// (the end: the rest of the list).
pub fn looked_at(from: u64, affected: u64, next: Option<u64>) -> Option<u64> {
    match next {
        Some(0) => Some(affected),
        Some(n) => Some((n + affected).saturating_sub(from)),
        None => None,
    }
}

fn progress_style(arg: ProgressArg) -> ProgressStyle {
    match arg {
        ProgressArg::Auto if std::io::stderr().is_terminal() => ProgressStyle::Bar,
        ProgressArg::Auto | ProgressArg::Plain => ProgressStyle::Plain,
        ProgressArg::Bar => ProgressStyle::Bar,
        ProgressArg::None => ProgressStyle::Off,
    }
}

pub(crate) fn sweep(c: &mut Client, a: &SweepArgs, kind: Sweep) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let total = llen(c, &key(c, "failed"))?;
    let mut filters: Vec<(&str, &str)> = Vec::new();
    for (word, value) in [("ID", &a.id), ("CLASS", &a.class), ("QUEUE", &a.queue), ("EXCEPTION", &a.exception)] {
        if let Some(v) = value {
            filters.push((word, v));
        }
    }
    let mut progress = Progress::new(kind.label(), kind.verb(), total, progress_style(a.progress));
    let (mut from, mut affected, mut looked, mut calls) = (0u64, 0u64, 0u64, 0u64);
    let batch = a.batch.to_string();
    loop {
        let mut cmd = redis::cmd(kind.command());
        cmd.arg(&ns);
        for (word, value) in &filters {
            cmd.arg(*word).arg(*value);
        }
        cmd.arg("FROM").arg(from).arg("LIMIT").arg(&batch);
        let reply = match c.call(&cmd) {
            Ok(v) => v,
            Err(e) => {
                progress.finish();
                if affected > 0 {
                    eprintln!("tq {}: stopped after {affected} records {}", kind.label(), kind.verb());
                }
                return Err(e);
            }
        };
        let pair = array(kind.command(), reply)?;
        let [n, next] = pair.as_slice() else {
            return Err(Error::Protocol(format!("{}: expected [count, next]", kind.command())));
        };
        let n = uint(kind.command(), n)?;
        let next = match next {
            Value::Nil => None,
            other => Some(uint(kind.command(), other)?),
        };
        calls += 1;
        affected += n;
        let next = next_from(from, a.batch, n, next);
        looked = match looked_at(from, n, next) {
            Some(k) => looked + k,
            None => looked.max(total),
        };
        progress.update(looked, affected);
        match next {
            Some(p) => from = p,
            None => break,
        }
    }
    progress.finish();
    let code = if affected == 0 { NOTHING_MATCHED } else { 0 };
    if a.output.json {
        let mut doc = json!({"looked_at": looked, "calls": calls});
        if let Some(m) = doc.as_object_mut() {
            m.insert(kind.verb().to_string(), json!(affected));
        }
        return Ok(Output { text: format!("{doc}\n"), code });
    }
    let text = if affected == 0 {
        format!("nothing matched: no failed job {} (looked at {})\n", kind.verb(), plural(looked, "record"))
    } else {
        format!(
            "{} {} (looked at {} in {})\n",
            kind.verb(),
            plural(affected, "failed job"),
            plural(looked, "record"),
            plural(calls, "call")
        )
    };
    Ok(Output { text, code })
}

// ---------------------------------------------------------------------------
// tq clean-workers

fn clean_workers(c: &mut Client, a: &CleanWorkersArgs) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    if let Some(name) = &a.worker {
        return force_clean(c, name, a.output.json);
    }
    let age = millis(a.age.unwrap_or_default()).to_string();
    let v = call(c, "TQ.CLEANWORKERS", &[ns.as_bytes(), age.as_bytes()])?;
    let mut cleaned = Vec::new();
    for item in array("TQ.CLEANWORKERS", v)? {
        let pair = array("TQ.CLEANWORKERS", item)?;
        let [w, record] = pair.as_slice() else {
            return Err(Error::Protocol("TQ.CLEANWORKERS: expected [worker, record]".to_string()));
        };
        cleaned.push(json!({
            "worker": text(w),
            "failed": bytes(record).map_or(J::Null, failed_json_of),
        }));
    }
    if a.output.json {
        return Ok(Output::json(&json!({"cleaned": cleaned})));
    }
    if cleaned.is_empty() {
        let shown = show(a.age.unwrap_or_default());
        return Ok(Output::ok(format!("no worker has run its job for more than {shown}\n")));
    }
    let mut t = Table::new(&[("WORKER", Align::Left), ("JOB", Align::Left), ("QUEUE", Align::Left)]);
    for w in &cleaned {
        t.row(clean_row(w));
    }
    let mut out = t.render();
    out.push_str(&format!("cleaned {}; the jobs they held went to the failed list\n", plural(cleaned.len(), "worker")));
    Ok(Output::ok(out))
}

fn clean_row(w: &J) -> Vec<String> {
    let f = pick(w, "failed");
    let job = if f.is_null() {
        "-".to_string()
    } else {
        let (class, args) = job_cells(f);
        format!("{class} {args}")
    };
    vec![cell(&show_json(pick(w, "worker")), 60), job, cell(&show_json(pick(f, "queue")), 40)]
}

/// TQ.FORCECLEAN; "nothing matched" when the worker was not registered
/// (TQ.WORKERS, looked at first) and held no job.
fn force_clean(c: &mut Client, name: &str, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let rows = worker_rows(c)?;
    let registered = rows.iter().any(|w| pick(w, "name").as_str() == Some(name));
    let v = call(c, "TQ.FORCECLEAN", &[ns.as_bytes(), name.as_bytes()])?;
    let failed = bytes(&v).map_or(J::Null, failed_json_of);
    let matched = registered || !failed.is_null();
    let code = if matched { 0 } else { NOTHING_MATCHED };
    if as_json {
        let doc = json!({"worker": name, "registered": registered, "failed": failed});
        return Ok(Output { text: format!("{doc}\n"), code });
    }
    let text = if !matched {
        format!("nothing matched: no worker '{name}' was registered or held a job\n")
    } else if failed.is_null() {
        format!("cleaned worker '{name}' (it held no job)\n")
    } else {
        let (class, args) = job_cells(&failed);
        format!(
            "cleaned worker '{name}'; its job {class} {args} (queue '{}') went to the failed list as {}\n",
            show_json(pick(&failed, "queue")),
            show_json(pick(&failed, "id"))
        )
    };
    Ok(Output { text, code })
}

// ---------------------------------------------------------------------------
// tq details

/// TQ.DETAILS's flat `[name, value, ...]` as one JSON object: `queues`
/// (`[{"name", "length"}]`), `workers` (as `tq workers`), `stats` (as `tq
/// stats`), `leader`, `delayed_buckets`, `delayed_jobs`,
/// `oldest_due_lateness_ms`, `in_flight`, `failed` (the list's length).
pub fn details_json(flat: Vec<Value>) -> Result<J, Error> {
    let mut doc = serde_json::Map::new();
    let mut it = flat.into_iter();
    while let (Some(name), Some(value)) = (it.next(), it.next()) {
        let Some(name) = text(&name) else { continue };
        let v = match name.as_str() {
            "queues" => {
                let mut list = Vec::new();
                for q in array("TQ.DETAILS", value)? {
                    let pair = array("TQ.DETAILS", q)?;
                    if let [n, len] = pair.as_slice() {
                        list.push((text(n).unwrap_or_default(), uint("TQ.DETAILS", len)?));
                    }
                }
                queues_json(&list)
            }
            "workers" => {
                let mut rows = Vec::new();
                for w in array("TQ.DETAILS", value)? {
                    rows.extend(worker_json(&array("TQ.DETAILS", w)?));
                }
                J::Array(rows)
            }
            "stats" => stats_json(&array("TQ.DETAILS", value)?),
            "leader" => text(&value).map_or(J::Null, J::String),
            _ => match &value {
                Value::Nil => J::Null,
                other => int(other).map_or_else(|| text(other).map_or(J::Null, J::String), |n| json!(n)),
            },
        };
        doc.insert(name, v);
    }
    Ok(J::Object(doc))
}

fn details(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let flat = array("TQ.DETAILS", call(c, "TQ.DETAILS", &[ns.as_bytes()])?)?;
    let doc = details_json(flat)?;
    if as_json {
        return Ok(Output::json(&doc));
    }
    let now = server_now(c)?;
    let queues = pick(&doc, "queues").as_array().cloned().unwrap_or_default();
    let workers = pick(&doc, "workers").as_array().cloned().unwrap_or_default();
    let waiting: u64 = queues.iter().filter_map(|q| pick(q, "length").as_u64()).sum();
    let lateness = match pick(&doc, "oldest_due_lateness_ms").as_u64() {
        Some(ms) => format!("oldest due time is {} late", show_short_ms(ms)),
        None => "none due".to_string(),
    };
    let mut t = Table::new(&[("", Align::Left), ("", Align::Left)]);
    let mut kv = |k: &str, v: String| t.row(vec![k.to_string(), v]);
    kv("queues", format!("{} ({} waiting)", queues.len(), plural(waiting, "job")));
    kv(
        "workers",
        format!(
            "{}{} ({} working)",
            workers.len(),
            if workers.len() >= 100 { "+ (first 100 listed)" } else { "" },
            workers.iter().filter(|w| !pick(w, "job").is_null()).count()
        ),
    );
    kv("in flight", show_json(pick(&doc, "in_flight")));
    kv(
        "delayed",
        format!(
            "{} at {}; {lateness}",
            plural(pick(&doc, "delayed_jobs").as_u64().unwrap_or(0), "job"),
            plural(pick(&doc, "delayed_buckets").as_u64().unwrap_or(0), "time")
        ),
    );
    kv("failed", format!("{} in the failed list", show_json(pick(&doc, "failed"))));
    kv("processed", format!("{} (counter)", show_json(pick(pick(&doc, "stats"), "processed"))));
    kv("failures", format!("{} (counter)", show_json(pick(pick(&doc, "stats"), "failed"))));
    kv("leader", pick(&doc, "leader").as_str().map_or("none".to_string(), |l| cell(l, 80)));
    // The header row of this two-column table is blank: drop it.
    let rendered = t.render();
    let mut out: String = rendered.lines().skip(1).map(|l| format!("{l}\n")).collect();
    let list: Vec<(String, u64)> = queues
        .iter()
        .map(|q| (pick(q, "name").as_str().unwrap_or_default().to_string(), pick(q, "length").as_u64().unwrap_or(0)))
        .collect();
    if !list.is_empty() {
        out.push('\n');
        out.push_str(&queues_table(&list, 0));
    }
    if !workers.is_empty() {
        out.push('\n');
        out.push_str(&workers_table(&workers, now, 0));
    }
    Ok(Output::ok(out))
}

// ---------------------------------------------------------------------------
// tq locks

/// A lock as TQ.LOCKS names it: `{"name", "kind" ("queue": node-resque's
/// QueueLock `lock:...`, "job": its JobLock `workerslock:...`, "pair": tq's
/// `tq:lock:...`), "value", "deadline" (unix ms, when the lock goes stale)}`.
pub fn lock_json(name: &str, value: &str) -> J {
    let (kind, deadline) = if name.starts_with("lock:") || name.starts_with("workerslock:") {
        let kind = if name.starts_with("lock:") { "queue" } else { "job" };
        (kind, value.trim().parse::<u64>().ok().map(|s| s.saturating_mul(1000)))
    } else if name.starts_with("tq:lock:") {
        let until = value.rsplit_once(" until ").and_then(|(_, t)| tq_core::time::parse_date(t.as_bytes()));
        ("pair", until)
    } else {
        ("other", None)
    };
    json!({"name": name, "kind": kind, "value": value, "deadline": deadline})
}

fn locks(c: &mut Client, as_json: bool) -> Result<Output, Error> {
    let ns = c.ns().to_string();
    let mut found: BTreeMap<String, String> = BTreeMap::new();
    let mut cursor = "0".to_string();
    let count = LOCKS_PAGE.to_string();
    loop {
        let v = call(c, "TQ.LOCKS", &[ns.as_bytes(), cursor.as_bytes(), count.as_bytes()])?;
        let parts = array("TQ.LOCKS", v)?;
        let [next, rows] = parts.as_slice() else {
            return Err(Error::Protocol("TQ.LOCKS: expected [cursor, locks]".to_string()));
        };
        for row in array("TQ.LOCKS", rows.clone())? {
            let pair = array("TQ.LOCKS", row)?;
            if let [name, value] = pair.as_slice() {
                found.insert(text(name).unwrap_or_default(), text(value).unwrap_or_default());
            }
        }
        cursor = uint("TQ.LOCKS", next)?.to_string();
        if cursor == "0" {
            break;
        }
    }
    let rows: Vec<J> = found.iter().map(|(n, v)| lock_json(n, v)).collect();
    if as_json {
        return Ok(Output::json(&json!({"locks": rows})));
    }
    if rows.is_empty() {
        return Ok(Output::ok("no locks\n".to_string()));
    }
    let now = server_now(c)?;
    let mut t =
        Table::new(&[("LOCK", Align::Left), ("KIND", Align::Left), ("STALE AT", Align::Left), ("VALUE", Align::Left)]);
    for l in &rows {
        t.row(vec![
            cell(&show_json(pick(l, "name")), 80),
            show_json(pick(l, "kind")),
            pick(l, "deadline").as_u64().map_or("-".to_string(), |d| when(d, now)),
            cell(&show_json(pick(l, "value")), 80),
        ]);
    }
    let mut out = t.render();
    out.push_str(&format!("{}\n", plural(rows.len(), "lock")));
    Ok(Output::ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn sweep_cursor_follows_next_to_the_nil_end() {
        // A window in the middle: go on from `next`.
        assert_eq!(next_from(4, 10, 3, Some(11)), Some(11));
        // The end.
        assert_eq!(next_from(4, 10, 3, None), None);
        assert_eq!(next_from(0, 10, 10, None), None);
        // A full window from 0 all matched: the rest starts at 0 again.
        assert_eq!(next_from(0, 10, 10, Some(0)), Some(0));
        // An older module's 0 at the end.
        assert_eq!(next_from(4, 10, 3, Some(0)), None);
        assert_eq!(next_from(0, 10, 3, Some(0)), None);
        assert_eq!(looked_at(0, 10, Some(0)), Some(10));
        assert_eq!(looked_at(4, 3, Some(11)), Some(10));
        assert_eq!(looked_at(4, 3, None), None);
    }

    #[test]
    fn stats_as_json() {
        let flat =
            ["processed", "10", "failed", "2", "processed:host:1", "7", "failed:host:2", "2", "processed:host:2", "3"]
                .map(bulk);
        assert_eq!(
            stats_json(&flat),
            json!({"processed": 10, "failed": 2, "workers": [
                {"name": "host:1", "processed": 7, "failed": 0},
                {"name": "host:2", "processed": 3, "failed": 2},
            ]})
        );
        let doc = stats_json(&["processed", "x", "failed", "0"].map(bulk));
        assert_eq!(doc["processed"], "x", "a counter that is not a number is shown as it is");
        let table = stats_table(&stats_json(&flat));
        assert!(table.starts_with("STAT       VALUE\nprocessed     10\nfailed         2\n"), "{table}");
        assert!(
            table.contains("WORKER  PROCESSED  FAILED\nhost:1          7       0\nhost:2          3       2\n"),
            "{table}"
        );
    }

    #[test]
    fn jobs_and_records_as_json() {
        let p = br#"{"class":"add","queue":"math","args":[1,{"a":"b"}]}"#;
        assert_eq!(
            job_json(p),
            json!({"class": "add", "queue": "math", "args": [1, {"a": "b"}], "payload": String::from_utf8_lossy(p)})
        );
        assert_eq!(job_cells(&job_json(p)), ("add".to_string(), r#"[1,{"a":"b"}]"#.to_string()));
        let bad = job_json(b"not json");
        assert_eq!((bad["class"].clone(), bad["payload"].clone()), (J::Null, json!("not json")));
        assert_eq!(job_cells(&bad), ("?".to_string(), "not json".to_string()));

        let record = br#"{"worker":"h:1","queue":"math","payload":{"class":"add","queue":"math","args":[2]},"exception":"Err","error":"boom\nline","backtrace":["a"],"failed_at":"Sun Nov 22 2026 08:20:45 GMT+0000 (Coordinated Universal Time)"}"#;
        let f = failed_json("00ff", record);
        assert_eq!(
            f,
            json!({
                "id": "00ff", "worker": "h:1", "queue": "math", "class": "add", "args": [2],
                "exception": "Err", "error": "boom\nline", "backtrace": ["a"],
                "failed_at": 1_795_335_645_000u64,
                "payload": r#"{"class":"add","queue":"math","args":[2]}"#,
            })
        );
        let table = failed_table(&[f], 1_795_335_705_000);
        assert!(table.contains("00ff  2026-11-22T08:20:45Z (1m ago)  math   add    Err        boom line"), "{table}");
        // The id is the module's: FNV-1a of the record's bytes.
        assert_eq!(failed_json_of(b"x")["id"], "af63f54c86021707");
        let corrupt = failed_json("1", br#"{"queue":"q","payload":"oops","exception":"TQ::CorruptPayload"}"#);
        assert_eq!((corrupt["class"].clone(), corrupt["payload"].clone()), (J::Null, json!("\"oops\"")));
        assert_eq!(failed_json("2", b"garbage")["queue"], J::Null);
    }

    #[test]
    fn workers_as_json() {
        let rec = r#"{"run_at":"2026-11-22T08:20:45.359Z","queue":"q1","worker":"host:1","payload":{"class":"A","queue":"q1","args":[1]}}"#;
        let w = worker_json(&[bulk("host:1"), bulk("q1,q2"), bulk(rec)]).expect("row");
        assert_eq!(
            w,
            json!({"name": "host:1", "queues": ["q1", "q2"], "job": {
                "queue": "q1", "class": "A", "args": [1],
                "payload": r#"{"class":"A","queue":"q1","args":[1]}"#, "run_at": 1_795_335_645_359u64,
            }})
        );
        let idle = worker_json(&[bulk("host:2"), bulk("*"), Value::Nil]).expect("row");
        assert_eq!(idle, json!({"name": "host:2", "queues": ["*"], "job": null}));
        assert!(worker_json(&[bulk("x")]).is_none());
        let table = workers_table(&[w, idle], 1_795_335_650_000, 0);
        assert_eq!(
            table,
            "WORKER  QUEUES  JOB    QUEUE  STARTED\n\
             host:1  q1,q2   A [1]  q1     2026-11-22T08:20:45.359Z (4s ago)\n\
             host:2  *       -      -      -\n"
        );
    }

    #[test]
    fn locks_as_json() {
        assert_eq!(
            lock_json("lock:C:q3:[]", "1795339246"),
            json!({"name": "lock:C:q3:[]", "kind": "queue", "value": "1795339246", "deadline": 1_795_339_246_000u64})
        );
        assert_eq!(lock_json("workerslock:C:q:[]", "7")["kind"], "job");
        assert_eq!(
            lock_json("tq:lock:nightly", "held by me token 1 until 2026-11-22T08:20:55.414Z")["deadline"],
            1_795_335_655_414u64
        );
        assert_eq!(lock_json("tq:lock:x", "\u{1}binary")["deadline"], J::Null);
        assert_eq!(lock_json("other", "v")["kind"], "other");
    }

    #[test]
    fn details_as_json() {
        let flat = vec![
            bulk("queues"),
            Value::Array(vec![Value::Array(vec![bulk("q1"), Value::Int(2)])]),
            bulk("workers"),
            Value::Array(vec![Value::Array(vec![bulk("h:1"), bulk("q1"), Value::Nil])]),
            bulk("stats"),
            Value::Array(["processed", "0", "failed", "1"].map(bulk).to_vec()),
            bulk("leader"),
            Value::Nil,
            bulk("delayed_buckets"),
            Value::Int(0),
            bulk("oldest_due_lateness_ms"),
            Value::Nil,
            bulk("failed"),
            Value::Int(1),
        ];
        assert_eq!(
            details_json(flat).expect("parses"),
            json!({
                "queues": [{"name": "q1", "length": 2}],
                "workers": [{"name": "h:1", "queues": ["q1"], "job": null}],
                "stats": {"processed": 0, "failed": 1, "workers": []},
                "leader": null, "delayed_buckets": 0, "oldest_due_lateness_ms": null, "failed": 1,
            })
        );
        assert!(details_json(vec![bulk("queues"), Value::Int(3)]).is_err());
    }

    #[test]
    fn reply_helpers() {
        assert_eq!(int(&bulk("42")), Some(42));
        assert_eq!(int(&Value::Int(-1)), Some(-1));
        assert_eq!(int(&bulk("x")), None);
        assert!(uint("X", &Value::Int(-1)).is_err());
        assert_eq!(counter(&bulk("7")), json!(7));
        assert_eq!(array("X", Value::Nil).expect("nil is empty"), Vec::<Value>::new());
        assert!(array("X", Value::Int(1)).is_err());
        assert_eq!(show_json(&J::Null), "-");
        assert_eq!(show_json(&json!("s")), "s");
        assert_eq!(show_json(&json!([1])), "[1]");
    }
}
