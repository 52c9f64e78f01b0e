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

use crate::error::{Result, TqError};
use crate::keys::{check_name, Ns};
use crate::lock::MAX_TTL_MS;
use crate::queue::{check_queue, lock_deadline};
use crate::records;
use crate::stats::Event;
use crate::store::{Effect, Kind, Plan, Reply, Store};

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

const RECUR_V1: u8 = 1;

impl Recurring {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![RECUR_V1];
        if let Ok(body) = bincode::encode_to_vec(self, bincode::config::standard()) {
            out.extend_from_slice(&body);
        }
        out
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        match raw.split_first() {
            Some((&RECUR_V1, body)) => {
                let (v, used) = bincode::decode_from_slice::<Recurring, _>(body, bincode::config::standard()).ok()?;
                (used == body.len()).then_some(v)
            }
            _ => None,
        }
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
    let key = ns.recur();
    if s.kind(&key)? != Kind::Hash {
        return Ok((Plan::new(Reply::Int(0)), None));
    }
    let now = s.now_ms();
    let queues = ns.queues();
    s.expect_kind(&queues, Kind::Set)?;
    let mut plan = Plan::new(Reply::Int(0));
    let mut enqueued = 0;
    let mut next_due: Option<u64> = None;
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
        s.expect_kind(&qkey, Kind::List)?;
        let ttl = r.waiting_lock_ms();
        plan.effects.push(Effect::SetPxAt { key: waiting, value: lock_deadline(now, ttl), at_ms: now + ttl });
        plan.effects.push(Effect::SAdd { key: queues.clone(), member: queue.into_owned() });
        plan.effects.push(Effect::RPush { key: qkey, value: payload.clone() });
        s.note(Event::Enqueued);
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
        enqueued += 1;
    }
    plan.reply = Reply::Int(i64::try_from(enqueued).unwrap_or(i64::MAX));
    Ok((plan, next_due))
}
