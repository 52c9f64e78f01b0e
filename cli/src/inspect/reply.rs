//! Decoding the module's replies, and jobs and records as JSON.

use super::*;

// ---------------------------------------------------------------------------
// Replies

pub(super) fn unexpected(what: &str, v: &Value) -> Error {
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
pub(super) fn counter(v: &Value) -> J {
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
pub(crate) fn lengths<K: AsRef<[u8]>>(c: &mut Client, keys: &[K]) -> Result<Vec<u64>, Error> {
    let mut out = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(1000) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("LLEN").arg(k.as_ref());
        }
        for v in array("LLEN", c.call_pipe(&pipe)?)? {
            out.push(uint("LLEN", &v)?);
        }
    }
    Ok(out)
}

pub(crate) fn llen<K: AsRef<[u8]> + ?Sized>(c: &mut Client, k: &K) -> Result<u64, Error> {
    let v = call(c, "LLEN", &[k.as_ref()])?;
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

pub(super) fn failed_json_of(record: &[u8]) -> J {
    let id = String::from_utf8_lossy(&tq_core::inspect::failed_id(record)).into_owned();
    failed_json(&id, record)
}

/// An in-flight record (`{"run_at", "queue", "worker", "payload"}`) as
/// `{"queue", "class", "args", "payload", "run_at" (unix ms)}`.
pub(super) fn in_flight_json(record: &[u8]) -> J {
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

pub(super) fn time_cell(at: Option<u64>, raw: &J, now: u64) -> String {
    match at {
        Some(ms) => when(ms, now),
        None => show_json(raw),
    }
}
