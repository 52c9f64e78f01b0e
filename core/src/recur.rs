//! Periodic tasks: registered once, enqueued every period by the module's
//! timer, with never more than one instance waiting or running.
//!
//! A task is a field of the hash `<ns>:tq:recur`: the job's payload (as
//! `TQ.ENQUEUE` would write it) mapped to a `Recurring` record. "Waiting" is
//! node-resque's QueueLock key for the job (set when the timer enqueues it,
//! released by the pop that takes it); "running" is its JobLock key (taken by
//! that pop, released by ACK/FAIL, or by the lease's expiry, which puts the
//! job back as waiting). The timer enqueues a due task only when neither
//! exists, so there is never a second instance, whichever worker runs it.

use bincode::{Decode, Encode};

use crate::codec::Versioned;
use crate::error::{Result, TqError};
use crate::keys::{check_name, Ns};
use crate::lock::MAX_TTL_MS;
use crate::metrics::Clocks;
use crate::queue::{check_queue, lock_deadline, Failures, WRONG_TYPE_EXCEPTION};
use crate::records;
use crate::stats::Event;
use crate::store::{wrong_type, Effect, Kind, Plan, Reply, Store};

/// Shortest period accepted.
pub const MIN_EVERY_MS: u64 = 10;
/// How often the timer looks again at a due task held back by an instance
/// waiting or running.
pub const INSTANCE_RECHECK_MS: u64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct Recurring {
    pub every_ms: u64,
    /// When the next instance is due, unix ms.
    pub next_ms: u64,
}

impl Versioned for Recurring {
    const VERSION: u8 = 1;
}

impl Recurring {
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes()
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        Self::from_bytes(raw)
    }

    /// How long the "waiting" lock of an instance lasts: long enough that a
    /// busy queue does not let a second instance in, bounded so a job removed
    /// by hand does not block its task for ever.
    pub fn waiting_lock_ms(&self) -> u64 {
        self.every_ms.saturating_mul(10).clamp(3_600_000, MAX_TTL_MS)
    }
}

/// The task registered for this payload, if any.
pub fn get(s: &mut impl Store, ns: &Ns<'_>, payload: &[u8]) -> Result<Option<Recurring>> {
    let key = ns.recur();
    if s.kind(&key)? != Kind::Hash {
        return Ok(None);
    }
    Ok(s.hash_get(&key, payload)?.and_then(|v| Recurring::decode(&v)))
}

pub fn is_recurring(s: &mut impl Store, ns: &Ns<'_>, payload: &[u8]) -> Result<bool> {
    Ok(get(s, ns, payload)?.is_some())
}

/// `TQ.RECUR <ns> <class> <queue> <every-ms> [<args-json>]`: registers (or
/// re-times) a periodic task; its first instance is due at once. Replies 1
/// when new, 0 when updated.
pub fn recur(
    s: &mut impl Store,
    ns: &Ns<'_>,
    class: &[u8],
    queue: &[u8],
    every_ms: u64,
    args: Option<&[u8]>,
) -> Result<Plan> {
    check_name("class", class)?;
    check_queue(queue)?;
    if !(MIN_EVERY_MS..=MAX_TTL_MS).contains(&every_ms) {
        return Err(TqError::arg(format!("every-ms must be between {MIN_EVERY_MS} and {MAX_TTL_MS}")));
    }
    let payload = records::payload(queue, class, &records::args_value(args)?);
    let key = ns.recur();
    s.expect_kind(&key, Kind::Hash)?;
    let existing = s.hash_get(&key, &payload)?.and_then(|v| Recurring::decode(&v));
    let next_ms = match &existing {
        Some(r) => r.next_ms.min(s.now_ms().saturating_add(every_ms)),
        None => s.now_ms(),
    };
    Ok(Plan {
        effects: vec![Effect::HSet { key, field: payload, value: Recurring { every_ms, next_ms }.encode() }],
        reply: Reply::Int(i64::from(existing.is_none())),
    })
}

/// `TQ.UNRECUR <ns> <class> <queue> [<args-json>]`: stops a periodic task
/// (an instance waiting or running is left alone). Replies 1 when removed.
pub fn unrecur(s: &mut impl Store, ns: &Ns<'_>, class: &[u8], queue: &[u8], args: Option<&[u8]>) -> Result<Plan> {
    check_name("class", class)?;
    check_queue(queue)?;
    let payload = records::payload(queue, class, &records::args_value(args)?);
    let key = ns.recur();
    match s.kind(&key)? {
        Kind::None => return Ok(Plan::new(Reply::Int(0))),
        Kind::Hash => {}
        k => return Err(crate::store::wrong_type(&key, k, Kind::Hash)),
    }
    if s.hash_get(&key, &payload)?.is_none() {
        return Ok(Plan::new(Reply::Int(0)));
    }
    Ok(Plan { effects: vec![Effect::HDel { key, field: payload }], reply: Reply::Int(1) })
}

/// `TQ.RECURS <ns>`: every task as `[payload, every-ms, next-due-ms]`.
pub fn list(s: &mut impl Store, ns: &Ns<'_>) -> Result<Plan> {
    let key = ns.recur();
    let mut rows: Vec<(Vec<u8>, Recurring)> = s
        .hash_sample(&key, usize::MAX)?
        .into_iter()
        .filter_map(|(p, v)| Recurring::decode(&v).map(|r| (p, r)))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let reply = rows
        .into_iter()
        .map(|(p, r)| {
            Reply::Array(vec![
                Reply::Bulk(p),
                Reply::Int(i64::try_from(r.every_ms).unwrap_or(i64::MAX)),
                Reply::Int(i64::try_from(r.next_ms).unwrap_or(i64::MAX)),
            ])
        })
        .collect();
    Ok(Plan::new(Reply::Array(reply)))
}

/// Enqueues every due task that has no instance waiting or running (at most
/// `limit`). Replies how many were enqueued. Also reports the earliest due
/// time it saw, for the timer.
pub fn run_due(s: &mut impl Store, ns: &Ns<'_>, limit: usize) -> Result<(Plan, Option<u64>)> {
    run_due_reporting(s, ns, limit).map(|(plan, due, _)| (plan, due))
}

/// The worker name in failure records of periodic runs that could not be
/// enqueued.
const RECUR_WORKER: &[u8] = b"tq:recur";

/// `run_due`, also telling why each run it moved to `failed` could not be
/// enqueued (for the timer's log): a run whose queue key holds another type
/// goes to `failed` (`TQ::WrongType`) and the task waits for its next period,
/// so the other tasks go on.
pub fn run_due_reporting(s: &mut impl Store, ns: &Ns<'_>, limit: usize) -> Result<(Plan, Option<u64>, Vec<String>)> {
    let key = ns.recur();
    if s.kind(&key)? != Kind::Hash {
        return Ok((Plan::new(Reply::Int(0)), None, Vec::new()));
    }
    let mut failed = Failures::default();
    let mut problems = Vec::new();
    let now = s.now_ms();
    let queues = ns.queues();
    s.expect_kind(&queues, Kind::Set)?;
    let mut plan = Plan::new(Reply::Int(0));
    let mut enqueued = 0;
    let mut next_due: Option<u64> = None;
    let mut clocks = Clocks::default();
    for (payload, raw) in s.hash_sample(&key, usize::MAX)? {
        let Some(mut r) = Recurring::decode(&raw) else { continue };
        let info = match records::inspect_payload(&payload) {
            Ok(info) => info,
            Err(_) => continue,
        };
        let (Some(queue), Some(args)) = (info.queue.clone(), info.args_json(&payload)) else { continue };
        if r.next_ms > now || enqueued >= limit {
            next_due = Some(next_due.map_or(r.next_ms, |n| n.min(r.next_ms)));
            continue;
        }
        let waiting = ns.queue_lock(&info.class, &queue, &args);
        let running = ns.job_lock(&info.class, &queue, &args);
        if s.kind(&waiting)? != Kind::None || s.kind(&running)? != Kind::None {
            // An instance is waiting or running: due again as soon as it is
            // done, which no write tells the timer; it looks again soon.
            let again = now.saturating_add(INSTANCE_RECHECK_MS);
            next_due = Some(next_due.map_or(again, |n| n.min(again)));
            continue;
        }
        let qkey = ns.queue(&queue);
        match s.kind(&qkey)? {
            Kind::None | Kind::List => {
                let ttl = r.waiting_lock_ms();
                plan.effects.push(Effect::SetPxAt { key: waiting, value: lock_deadline(now, ttl), at_ms: now + ttl });
                plan.effects.push(Effect::SAdd { key: queues.clone(), member: queue.to_vec() });
                plan.effects.push(Effect::RPush { key: qkey, value: payload.clone() });
                // The run waits from its due time.
                clocks.pushed(s, ns, (&queue, None), (&payload, 1), r.next_ms.min(now))?;
                s.note(Event::Enqueued);
                enqueued += 1;
            }
            k => {
                let why = wrong_type(&qkey, k, Kind::List).reply_text();
                failed.add_as(s, ns, &mut plan, (RECUR_WORKER, &queue), &payload, WRONG_TYPE_EXCEPTION, &why)?;
                problems.push(format!("a run for queue '{}' moved to failed: {why}", crate::error::show(&queue)));
            }
        }
        // Keep the cadence when this run is on time (a timer tick late at
        // most); one held back by more than half a period (its instance ran
        // long, or the server was down) starts a new cadence from now, so
        // missed periods are not made up and runs stay at least half a
        // period apart.
        let late = now.saturating_sub(r.next_ms);
        r.next_ms =
            if late <= r.every_ms / 2 { r.next_ms.saturating_add(r.every_ms) } else { now.saturating_add(r.every_ms) };
        next_due = Some(next_due.map_or(r.next_ms, |n| n.min(r.next_ms)));
        plan.effects.push(Effect::HSet { key: key.clone(), field: payload, value: r.encode() });
    }
    plan.effects.extend(clocks.effects(s, ns)?);
    plan.reply = Reply::Int(i64::try_from(enqueued).unwrap_or(i64::MAX));
    Ok((plan, next_due, problems))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{MemStore, MemValue};

    #[test]
    fn a_run_whose_queue_has_the_wrong_type_fails_and_the_others_go_on() {
        let ns = Ns::new(b"resque", false).expect("valid namespace");
        let mut s = MemStore::at(1_000);
        for queue in [&b"bad"[..], b"good"] {
            let plan = recur(&mut s, &ns, b"tick", queue, 500, None).expect("registers");
            s.apply(&plan.effects);
        }
        s.data.insert(b"resque:queue:bad".to_vec(), MemValue::Hash(Default::default()));
        let (plan, due, problems) = run_due_reporting(&mut s, &ns, 10).expect("plans");
        s.apply(&plan.effects);
        assert_eq!(plan.reply, Reply::Int(1));
        assert_eq!(s.list(b"resque:queue:good"), vec![br#"{"class":"tick","queue":"good","args":[]}"#.to_vec()]);
        let failed = s.list(b"resque:failed");
        assert_eq!(failed.len(), 1);
        let rec = String::from_utf8_lossy(&failed[0]).into_owned();
        assert!(rec.contains(WRONG_TYPE_EXCEPTION) && rec.contains("resque:queue:bad"), "{rec}");
        assert_eq!(problems.len(), 1, "{problems:?}");
        // Both wait for their next period.
        assert_eq!(due, Some(1_500));
        assert_eq!(
            get(&mut s, &ns, br#"{"class":"tick","queue":"bad","args":[]}"#).expect("reads").map(|r| r.next_ms),
            Some(1_500)
        );
    }
}
