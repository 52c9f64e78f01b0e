//! Reading the job metrics the module keeps (`tq_core::metrics`): each
//! (queue, class) pair's totals, its per-minute tallies of the last hour and
//! per-hour tallies of the last day, and each queue's latency (the age of
//! its oldest waiting job).
//!
//! Bounded reads only: the pairs set (at most [`MAX_PAIRS`] pairs kept, or
//! fewer as the caller asks), then per chunk of pairs one MULTI/EXEC
//! pipeline of MGETs (with the open minutes of past hours, so that a minute
//! the timer closes meanwhile is never counted twice or missed), and one
//! pipeline of `GET` clock, `LLEN` and `LINDEX 0` per queue. No SCAN, no KEYS.

use redis::Value;
use tq_core::metrics::{minute_of, Clock, Tally, HOUR_MS, MINUTE_MS};

use crate::client::{Client, Error};

/// Pairs read at most (sorted by queue, then class; the rest left out).
pub const MAX_PAIRS: usize = 1_000;
/// Minutes of per-minute history (the current minute is the last).
pub const MINUTES: usize = 60;
/// Hours of per-hour history (the current hour is the last).
pub const HOURS: usize = 24;
/// Pairs per MULTI/EXEC step (each reads up to 1 + 60 + 23 keys).
const PAIRS_PER_STEP: usize = 50;
/// Open minutes of past hours read at most per step (the timer closes a
/// minute a moment after it ends: normally none or a few).
const OPEN_READ: usize = 1_000;
/// Queues per latency pipeline.
const QUEUES_PER_STEP: usize = 500;

/// What to read besides each pair's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// The last this many minutes (at most [`MINUTES`]; the current one
    /// included).
    pub minutes: usize,
    /// The last [`HOURS`] hours (the minutes are then read in full too).
    pub hours: bool,
    /// Pairs read at most (and never more than [`MAX_PAIRS`]).
    pub pairs: usize,
}

impl Span {
    pub const TOTALS: Span = Span { minutes: 0, hours: false, pairs: MAX_PAIRS };
    pub const ALL: Span = Span { minutes: MINUTES, hours: true, pairs: MAX_PAIRS };
}

/// One (queue, class) pair's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairMetrics {
    pub queue: String,
    pub class: String,
    /// Every closed minute since metrics began (the `/metrics` counters): up
    /// to about a minute behind the minutes below.
    pub total: Tally,
    /// Oldest first; the last is the current minute (so far). As many as
    /// asked for.
    pub minutes: Vec<Tally>,
    /// Oldest first; the last is the current hour (so far, summed from its
    /// minutes). Empty unless asked for.
    pub hours: Vec<Tally>,
}

impl PairMetrics {
    /// The last `n` minutes (the current one included) added up.
    pub fn last_minutes(&self, n: usize) -> Tally {
        sum(self.minutes.iter().rev().take(n))
    }
}

/// A queue's waiting jobs and the age of the oldest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueLatency {
    pub queue: String,
    pub waiting: u64,
    /// None when the queue is empty or its clock does not know (no clock,
    /// jobs pushed by clients that keep none).
    pub latency_ms: Option<u64>,
}

/// A namespace's metrics at one moment of the server's clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Metrics {
    /// The server's time (unix ms) the figures were read at.
    pub now_ms: u64,
    /// The unix minute of `now_ms` (the last of each pair's `minutes`).
    pub minute: u64,
    /// The unix hour of `now_ms` (the last of each pair's `hours`).
    pub hour: u64,
    /// Sorted by queue, then class.
    pub pairs: Vec<PairMetrics>,
    /// True when the namespace has more pairs than were read.
    pub truncated: bool,
}

/// Tallies added up.
pub fn sum<'a>(tallies: impl IntoIterator<Item = &'a Tally>) -> Tally {
    tallies.into_iter().fold(Tally::default(), |mut a, t| {
        a.merge(t);
        a
    })
}

/// The server's clock (unix ms), from `TIME`.
pub fn server_now(c: &mut Client) -> Result<u64, Error> {
    match c.call(&redis::cmd("TIME"))? {
        Value::Array(parts) => match parts.as_slice() {
            [s, us] => match (uint(s), uint(us)) {
                (Some(s), Some(us)) => Ok(s.saturating_mul(1000).saturating_add(us / 1000)),
                _ => Err(Error::Protocol("TIME answered no numbers".to_string())),
            },
            _ => Err(Error::Protocol("TIME answered an unexpected shape".to_string())),
        },
        other => Err(Error::Protocol(format!("TIME answered {other:?}"))),
    }
}

/// Reads the namespace's pairs with their totals and the history `span`
/// asks for.
pub fn read(c: &mut Client, span: Span) -> Result<Metrics, Error> {
    let now_ms = server_now(c)?;
    let minute = minute_of(now_ms);
    let hour = now_ms / HOUR_MS;
    let (names, truncated) = pairs(c, span.pairs.min(MAX_PAIRS))?;
    let mut out = Vec::with_capacity(names.len());
    for chunk in names.chunks(PAIRS_PER_STEP) {
        out.extend(read_step(c, chunk, span, minute, hour)?);
    }
    Ok(Metrics { now_ms, minute, hour, pairs: out, truncated })
}

/// A pair's stored name, queue and class.
type PairName = (Vec<u8>, String, String);

/// The pair names of the namespace, sorted; true when some were left out.
fn pairs(c: &mut Client, limit: usize) -> Result<(Vec<PairName>, bool), Error> {
    let key = c.keys()?.metrics_pairs();
    let members = match c.call(redis::cmd("SMEMBERS").arg(key))? {
        Value::Array(v) | Value::Set(v) => v,
        Value::Nil => Vec::new(),
        other => return Err(Error::Protocol(format!("SMEMBERS answered {other:?}"))),
    };
    let mut names: Vec<PairName> = members
        .into_iter()
        .filter_map(|m| match m {
            Value::BulkString(raw) => {
                let (q, cl) = tq_core::metrics::parse_pair(&raw)?;
                Some((raw, String::from_utf8_lossy(&q).into_owned(), String::from_utf8_lossy(&cl).into_owned()))
            }
            _ => None,
        })
        .collect();
    names.sort_by(|a, b| (&a.1, &a.2, &a.0).cmp(&(&b.1, &b.2, &b.0)));
    let truncated = names.len() > limit;
    names.truncate(limit);
    Ok((names, truncated))
}

/// One MULTI/EXEC step over a few pairs: MGET of their totals, minutes and
/// hours, and with the hours the open minutes of past hours (`<ns>:tq:mopen`
/// members `<minute>:<pair>` whose minute ended by the hour's start: not yet
/// in their hour's record, so added to it).
fn read_step(
    c: &mut Client,
    chunk: &[PairName],
    span: Span,
    minute: u64,
    hour: u64,
) -> Result<Vec<PairMetrics>, Error> {
    let k = c.keys()?;
    // With the hours, every minute: the current hour comes from them.
    let minutes = if span.hours { MINUTES } else { span.minutes.min(MINUTES) } as u64;
    let first_minute = (minute + 1).saturating_sub(minutes);
    let hour_start_ms = hour.saturating_mul(HOUR_MS);
    let first_hour = hour.saturating_sub(HOURS as u64 - 1);
    let mut pipe = redis::pipe();
    pipe.atomic();
    if span.hours {
        pipe.cmd("ZRANGE")
            .arg(k.metrics_open())
            .arg("-inf")
            .arg(hour_start_ms)
            .arg("BYSCORE")
            .arg("LIMIT")
            .arg(0)
            .arg(OPEN_READ);
    }
    for (raw, ..) in chunk {
        pipe.cmd("GET").arg(k.metrics_total(raw));
        if minutes > 0 {
            let mut mget = redis::cmd("MGET");
            for m in first_minute..=minute {
                mget.arg(k.metrics_minute(m, raw));
            }
            pipe.add_command(mget);
        }
        if span.hours {
            let mut mget = redis::cmd("MGET");
            for h in first_hour..hour {
                mget.arg(k.metrics_hour(h, raw));
            }
            pipe.add_command(mget);
        }
    }
    let replies = match c.call_pipe(&pipe)? {
        Value::Array(v) => v,
        other => return Err(Error::Protocol(format!("the metrics' MULTI answered {other:?}"))),
    };
    let mut replies = replies.into_iter();
    let mut next = || replies.next().ok_or_else(|| Error::Protocol("the metrics' MULTI answered too little".into()));
    let open: Vec<(u64, Vec<u8>)> = if span.hours {
        match next()? {
            Value::Array(members) => members.iter().filter_map(open_minute).collect(),
            _ => Vec::new(),
        }
    } else {
        Vec::new()
    };
    let mut out = Vec::with_capacity(chunk.len());
    for (raw, queue, class) in chunk {
        let mut p = PairMetrics { queue: queue.clone(), class: class.clone(), ..PairMetrics::default() };
        p.total = tally(&next()?);
        if minutes > 0 {
            p.minutes = tallies(next()?)?;
        }
        if span.hours {
            let mut hours = tallies(next()?)?;
            for (m, _) in open.iter().filter(|(_, pair)| pair == raw) {
                let at = m.checked_sub(first_minute).and_then(|i| usize::try_from(i).ok());
                let slot = (m.saturating_mul(MINUTE_MS) / HOUR_MS)
                    .checked_sub(first_hour)
                    .and_then(|i| usize::try_from(i).ok());
                // An open minute older than the hour's window is not read.
                if let (Some(t), Some(h)) = (at.and_then(|i| p.minutes.get(i)), slot.and_then(|i| hours.get_mut(i))) {
                    h.merge(t);
                }
            }
            let this_hour =
                usize::try_from((hour_start_ms / MINUTE_MS).saturating_sub(first_minute)).unwrap_or(usize::MAX);
            hours.push(sum(p.minutes.get(this_hour..).unwrap_or_default()));
            p.hours = hours;
        }
        out.push(p);
    }
    Ok(out)
}

/// A member of `<ns>:tq:mopen`: `<minute>:<pair>` (keys.rs), as (minute, pair).
fn open_minute(v: &Value) -> Option<(u64, Vec<u8>)> {
    let Value::BulkString(m) = v else { return None };
    let colon = m.iter().position(|&b| b == b':')?;
    let minute = std::str::from_utf8(m.get(..colon)?).ok()?.parse().ok()?;
    Some((minute, m.get(colon + 1..)?.to_vec()))
}

fn tallies(v: Value) -> Result<Vec<Tally>, Error> {
    match v {
        Value::Array(items) => Ok(items.iter().map(tally).collect()),
        other => Err(Error::Protocol(format!("MGET answered {other:?}"))),
    }
}

/// A stored tally; empty when absent or unreadable.
fn tally(v: &Value) -> Tally {
    match v {
        Value::BulkString(raw) => Tally::decode(raw).unwrap_or_default(),
        _ => Tally::default(),
    }
}

fn uint(v: &Value) -> Option<u64> {
    match v {
        Value::Int(n) => u64::try_from(*n).ok(),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        _ => None,
    }
}

/// Each queue's waiting jobs and latency at the server's `now_ms`: `GET`
/// of its clock, `LLEN` and `LINDEX 0` (the head, which the clock dates),
/// pipelined.
pub fn latencies<Q: AsRef<str>>(c: &mut Client, now_ms: u64, queues: &[Q]) -> Result<Vec<QueueLatency>, Error> {
    let ns = c.ns().to_string();
    let k =
        tq_core::keys::Ns::new(ns.as_bytes(), false).map_err(|e| Error::Config(format!("namespace '{ns}': {e}")))?;
    let mut out = Vec::with_capacity(queues.len());
    for chunk in queues.chunks(QUEUES_PER_STEP) {
        let mut pipe = redis::pipe();
        for q in chunk {
            let qkey = k.queue(q.as_ref().as_bytes());
            pipe.cmd("GET").arg(k.clock(q.as_ref().as_bytes()));
            pipe.cmd("LLEN").arg(&qkey);
            pipe.cmd("LINDEX").arg(&qkey).arg(0);
        }
        let replies = match c.call_pipe(&pipe)? {
            Value::Array(v) => v,
            other => return Err(Error::Protocol(format!("the latency pipeline answered {other:?}"))),
        };
        for (q, r) in chunk.iter().zip(replies.chunks(3)) {
            let [clock, len, head] = r else { continue };
            out.push(QueueLatency {
                queue: q.as_ref().to_string(),
                waiting: uint(len).unwrap_or(0),
                latency_ms: latency(clock, now_ms, head),
            });
        }
    }
    Ok(out)
}

/// A queue's latency from its clock's raw value and its head job.
pub fn latency(clock: &Value, now_ms: u64, head: &Value) -> Option<u64> {
    match (clock, head) {
        (Value::BulkString(raw), Value::BulkString(head)) => Clock::decode(raw)?.head_age_ms(now_ms, Some(head)),
        _ => None,
    }
}

/// The queues' names as `<ns>:queues` holds them, sorted, at most `limit`.
pub fn queue_names(c: &mut Client, limit: usize) -> Result<Vec<String>, Error> {
    let key = c.keys()?.queues();
    let mut names: Vec<String> = match c.call(redis::cmd("SMEMBERS").arg(key))? {
        Value::Array(v) | Value::Set(v) => v
            .iter()
            .filter_map(|m| match m {
                Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    names.sort();
    names.dedup();
    names.truncate(limit);
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_add_up_and_bad_records_read_as_empty() {
        let mut a = Tally { processed: 2, failed: 1, ..Tally::default() };
        a.run.add(3);
        let b = Tally { processed: 5, ..Tally::default() };
        let s = sum([&a, &b]);
        assert_eq!((s.processed, s.failed, s.run.count()), (7, 1, 1));
        assert_eq!(tally(&Value::BulkString(b"junk".to_vec())), Tally::default());
        assert_eq!(tally(&Value::Nil), Tally::default());
        let p = PairMetrics { minutes: vec![a.clone(), b.clone(), a.clone()], ..PairMetrics::default() };
        assert_eq!(p.last_minutes(2).processed, 7);
        assert_eq!(p.last_minutes(100).processed, 9);
    }

    #[test]
    fn latency_needs_a_clock_and_a_waiting_job() {
        let mut clock = Clock::default();
        assert!(clock.pushed(0, b"job", 1_000));
        let raw = Value::BulkString(clock.to_bytes());
        let head = Value::BulkString(b"job".to_vec());
        assert_eq!(latency(&raw, 4_000, &head), Some(3_000));
        assert_eq!(latency(&raw, 4_000, &Value::Nil), None);
        assert_eq!(latency(&Value::Nil, 4_000, &head), None);
    }
}
