//! The queue state machine: enqueue, delayed enqueue, promotion, pop, ack and
//! fail, each planned as one atomic step over a [`Store`].

use crate::error::{Result, TqError};
use crate::json::Value;
use crate::keys::{self, check_name, Ns};
use crate::lock;
use crate::records::{self, FailedPayload, Failure, InFlight};
use crate::store::{parse_i64, plan_incr, Effect, Kind, Plan, Reply, Store};
use crate::time;

/// Default and largest `LIMIT` of one `TQ.PROMOTE`: one call stays short
/// however large the backlog; the rest waits for the next call.
pub const PROMOTE_DEFAULT_LIMIT: u64 = 1000;
pub const PROMOTE_MAX_LIMIT: u64 = 100_000;
/// Due buckets with no list behind them (left by node-resque's `delDelayed`)
/// that one promotion may clean up besides its limit of jobs.
const ORPHAN_BUCKETS_PER_CALL: usize = 1000;
/// Corrupt payloads one `TQ.POP` moves to `failed` before it gives up for
/// this call, so a poisoned queue cannot make one call run long.
const CORRUPT_PER_POP: usize = 100;
/// Jobs whose running-job lock is taken that one `TQ.POP ... JOBLOCK`
/// moves aside before it gives up for this call.
const LOCKED_PER_POP: usize = 100;
/// The worker name in failure records written by promotion.
const PROMOTER: &[u8] = b"tq:promote";

/// `TQ.ENQUEUE`: append the payload to its queue and register the queue.
/// Replies the queue length after the push.
///
/// With `unique` (a lock ttl in ms) it is node-resque's QueueLock, atomic:
/// while `<ns>:lock:<class>:<queue>:<args>` holds a deadline that has not
/// passed, an identical job is waiting and the reply is nil (nothing
/// written); otherwise the lock is (re)set with its TTL in the same step.
/// The pop of the job releases it.
pub fn enqueue(
    s: &mut impl Store,
    ns: &Ns<'_>,
    queue: &[u8],
    class: &[u8],
    args: Option<&[u8]>,
    unique: Option<u64>,
) -> Result<Plan> {
    check_queue(queue)?;
    check_name("class", class)?;
    let args = records::args_value(args)?;
    let payload = records::payload(queue, class, &args);
    let qkey = ns.queue(queue);
    let len = s.list_len(&qkey)?;
    let queues = ns.queues();
    s.expect_kind(&queues, Kind::Set)?;
    let mut effects = Vec::with_capacity(3);
    if let Some(ttl) = unique {
        let ttl = lock::check_ttl(ttl)?;
        let key = ns.queue_lock(class, queue, &crate::json::to_vec(&args));
        let now = s.now_ms();
        if let Some(deadline) = s.get(&key)?.and_then(|v| parse_i64(&v)) {
            if now_secs(now) <= deadline {
                return Ok(Plan::new(Reply::Nil));
            }
        }
        effects.push(Effect::SetPxAt { key, value: lock_deadline(now, ttl), at_ms: now.saturating_add(ttl) });
    }
    effects.push(Effect::SAdd { key: queues, member: queue.to_vec() });
    effects.push(Effect::RPush { key: qkey, value: payload });
    Ok(Plan { effects, reply: Reply::Int(i64::try_from(len).unwrap_or(i64::MAX).saturating_add(1)) })
}

/// node-resque's clock for lock values: `Math.round(Date.now() / 1000)`.
fn now_secs(now_ms: u64) -> i64 {
    i64::try_from(time::bucket_of(now_ms)).unwrap_or(i64::MAX)
}

/// The value node-resque's QueueLock/JobLock store: the unix second after
/// which the lock is stale (`now + lockTimeout + 1`).
fn lock_deadline(now_ms: u64, ttl_ms: u64) -> Vec<u8> {
    now_secs(now_ms)
        .saturating_add(i64::try_from(ttl_ms.div_ceil(1000)).unwrap_or(i64::MAX))
        .saturating_add(1)
        .to_string()
        .into_bytes()
}

/// `TQ.ENQUEUEAT`: file the payload under its one-second bucket, as
/// node-resque's `enqueueAt`. Replies the bucket.
pub fn enqueue_at(
    s: &mut impl Store,
    ns: &Ns<'_>,
    at_ms: u64,
    queue: &[u8],
    class: &[u8],
    args: Option<&[u8]>,
) -> Result<Plan> {
    check_queue(queue)?;
    check_name("class", class)?;
    if at_ms > time::MAX_TIME_MS {
        return Err(TqError::arg(format!("time is out of range (at most {} ms)", time::MAX_TIME_MS)));
    }
    let args: Value = records::args_value(args)?;
    let payload = records::payload(queue, class, &args);
    let bucket = time::bucket_of(at_ms);
    let bname = bucket.to_string().into_bytes();
    let dkey = ns.delayed(&bname);
    let schedule = ns.delayed_schedule();
    let tkey = ns.timestamps(&payload);
    let marker = keys::delayed_marker(&bname);
    s.expect_kind(&dkey, Kind::List)?;
    s.expect_kind(&schedule, Kind::Zset)?;
    if s.set_contains(&tkey, &marker)? {
        return Err(TqError::Duplicate);
    }
    Ok(Plan {
        effects: vec![
            Effect::RPush { key: dkey, value: payload },
            Effect::SAdd { key: tkey, member: marker },
            Effect::ZAdd { key: schedule, score: i64::try_from(bucket).unwrap_or(i64::MAX), member: bname },
        ],
        reply: Reply::Int(i64::try_from(bucket).unwrap_or(i64::MAX)),
    })
}

/// `TQ.ENQUEUEIN`: `enqueue_at` the server's now plus `delay_ms`.
pub fn enqueue_in(
    s: &mut impl Store,
    ns: &Ns<'_>,
    delay_ms: u64,
    queue: &[u8],
    class: &[u8],
    args: Option<&[u8]>,
) -> Result<Plan> {
    let at = s.now_ms().checked_add(delay_ms).filter(|&t| t <= time::MAX_TIME_MS).ok_or_else(|| {
        TqError::arg(format!("delay is out of range (now + delay must stay below {} ms)", time::MAX_TIME_MS))
    })?;
    enqueue_at(s, ns, at, queue, class, args)
}

/// `TQ.PROMOTE`: move due delayed jobs into their queues, oldest bucket first
/// and FIFO inside a bucket, at most `limit` of them. Replies how many jobs
/// reached a queue.
pub fn promote(s: &mut impl Store, ns: &Ns<'_>, limit: u64) -> Result<Plan> {
    let now = s.now_ms();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let schedule = ns.delayed_schedule();
    // Due means bucket * 1000 <= now, i.e. bucket <= floor(now / 1000).
    let due = s.zset_range_to(&schedule, (now / 1000) as f64, limit.saturating_add(ORPHAN_BUCKETS_PER_CALL))?;
    let mut plan = Plan::new(Reply::Int(0));
    let mut budget = limit;
    let mut moved: i64 = 0;
    let mut failed = Failures::default();
    let queues = ns.queues();
    for (bname, _score) in due {
        if budget == 0 {
            break;
        }
        let bkey = ns.delayed(&bname);
        let len = s.list_len(&bkey)?;
        let take = len.min(budget);
        let marker = keys::delayed_marker(&bname);
        for i in 0..take {
            let payload = s
                .list_get(&bkey, i)?
                .ok_or_else(|| TqError::Internal("delayed bucket shorter than its length".into()))?;
            plan.effects.push(Effect::LPop { key: bkey.clone() });
            plan.effects.push(Effect::SRem { key: ns.timestamps(&payload), member: marker.clone() });
            match records::inspect_payload(&payload).and_then(|info| match info.queue {
                Some(q) if check_queue(&q).is_ok() => Ok(q),
                Some(_) => Err("payload \"queue\" is not a valid queue name".to_string()),
                None => Err("payload has no \"queue\"".to_string()),
            }) {
                Ok(q) => {
                    let qkey = ns.queue(&q);
                    s.expect_kind(&qkey, Kind::List)?;
                    s.expect_kind(&queues, Kind::Set)?;
                    plan.effects.push(Effect::SAdd { key: queues.clone(), member: q });
                    plan.effects.push(Effect::RPush { key: qkey, value: payload });
                    moved += 1;
                }
                Err(why) => failed.add(s, ns, &mut plan, PROMOTER, b"", &payload, &why)?,
            }
        }
        budget -= take;
        if take == len {
            plan.effects.push(Effect::ZRem { key: schedule.clone(), member: bname });
        }
    }
    plan.reply = Reply::Int(moved);
    Ok(plan)
}

/// `TQ.POP`: take the head of the first non-empty queue (priority order) and
/// record it as the worker's job in flight. Replies `[queue, payload]` or nil.
///
/// The job's QueueLock (`<ns>:lock:...`, see `enqueue`) is released in the
/// same step. With `joblock` (a ttl in ms) it is node-resque's JobLock,
/// atomic: a job whose `<ns>:workerslock:<class>:<queue>:<args>` exists (an
/// identical job is running) is moved to the tail of its queue and the next
/// one is tried; otherwise the lock is taken with the job and only this
/// worker's ACK/FAIL releases it.
pub fn pop(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], queues: &[&[u8]], joblock: Option<u64>) -> Result<Plan> {
    let joblock = joblock.map(lock::check_ttl).transpose()?;
    check_name("worker", worker)?;
    let star = queues == [b"*"];
    for q in queues {
        if !star && *q == b"*" {
            return Err(TqError::arg("'*' must be the only queue when used"));
        }
        check_name("queue", q)?;
    }
    let joined = queues.join(&b","[..]);
    let index = ns.inflight(worker);
    let workers = ns.workers();
    s.expect_kind(&workers, Kind::Set)?;
    // A job cleaned up behind tq's back (its worker unregistered) no longer
    // counts: its leftover record goes with this pop.
    let mut stale_record = None;
    if let Some(raw) = s.get(&index)? {
        match InFlight::decode(&raw) {
            Some(e) if !s.set_contains(&workers, &keys::worker_entry(worker, &e.queues))? => {
                stale_record = Some(ns.worker_record(worker, &e.queues)).filter(|_| e.queues != joined);
            }
            other => {
                let queue = other.map(|e| e.queue).unwrap_or_else(|| b"?".to_vec());
                return Err(TqError::InFlight { worker: worker.to_vec(), queue });
            }
        }
    }
    let order: Vec<Vec<u8>> = if star {
        let mut all = s.set_members(&ns.queues())?;
        all.sort_by_cached_key(|q| utf16_units(q));
        all
    } else {
        // A queue named twice is looked at once (planning reads the data as it
        // was before this command, so a second look would see the same jobs).
        let mut seen: Vec<&[u8]> = Vec::with_capacity(queues.len());
        for q in queues {
            if !seen.contains(q) {
                seen.push(q);
            }
        }
        seen.into_iter().map(<[u8]>::to_vec).collect()
    };
    let mut plan = Plan::new(Reply::Nil);
    let mut failed = Failures::default();
    let mut skipped = 0;
    for q in &order {
        let qkey = ns.queue(q);
        let len = s.list_len(&qkey)?;
        for i in 0..len {
            if failed.count >= CORRUPT_PER_POP {
                return Ok(plan);
            }
            let payload =
                s.list_get(&qkey, i)?.ok_or_else(|| TqError::Internal("queue shorter than its length".into()))?;
            plan.effects.push(Effect::LPop { key: qkey.clone() });
            let info = match records::inspect_payload(&payload) {
                Ok(info) => info,
                Err(why) => {
                    failed.add(s, ns, &mut plan, worker, q, &payload, &why)?;
                    continue;
                }
            };
            let now = s.now_ms();
            let args_json = info.args_json(&payload);
            let mut taken_lock = None;
            if let (Some(ttl), Some(args_json)) = (joblock, &args_json) {
                let key = ns.job_lock(&info.class, q, args_json);
                if s.kind(&key)? != Kind::None {
                    if skipped >= LOCKED_PER_POP {
                        plan.effects.pop();
                        return Ok(plan);
                    }
                    skipped += 1;
                    plan.effects.push(Effect::RPush { key: qkey.clone(), value: payload });
                    continue;
                }
                let value = lock_deadline(now, ttl);
                plan.effects.push(Effect::SetPxAt {
                    key: key.clone(),
                    value: value.clone(),
                    at_ms: now.saturating_add(ttl),
                });
                taken_lock = Some((key, value));
            }
            if let Some(args_json) = &args_json {
                let key = ns.queue_lock(&info.class, q, args_json);
                if s.kind(&key)? != Kind::None {
                    plan.effects.push(Effect::Del { keys: vec![key] });
                }
            }
            let entry = InFlight { queues: joined.clone(), queue: q.clone(), popped_ms: now, joblock: taken_lock };
            plan.effects.push(Effect::MSet {
                pairs: vec![
                    (ns.worker_record(worker, &joined), records::inflight_record(now, q, worker, &payload)),
                    (index, entry.encode()),
                ],
            });
            plan.effects.push(Effect::SAdd { key: workers, member: keys::worker_entry(worker, &joined) });
            if let Some(old) = stale_record {
                plan.effects.push(Effect::Del { keys: vec![old] });
            }
            plan.reply = Reply::Array(vec![Reply::Bulk(q.clone()), Reply::Bulk(payload)]);
            return Ok(plan);
        }
    }
    Ok(plan)
}

/// `TQ.ACK`: the worker's job succeeded. Removes the in-flight record and
/// counts it in `stat:processed` and `stat:processed:<worker>`.
pub fn ack(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8]) -> Result<Plan> {
    let (index, entry) = in_flight(s, ns, worker)?;
    let mut done = vec![index];
    if let Some(e) = &entry {
        done.push(ns.worker_record(worker, &e.queues));
        done.extend(own_joblock(s, e)?);
    }
    let effects = vec![
        Effect::Del { keys: done },
        plan_incr(s, ns.stat(b"processed"), 0)?,
        plan_incr(s, ns.worker_stat(b"processed", worker), 0)?,
    ];
    Ok(Plan { effects, reply: Reply::Ok })
}

/// `TQ.FAIL`: the worker's job failed. Moves it to `failed` as node-resque's
/// failure record and counts it in `stat:failed` and `stat:failed:<worker>`.
pub fn fail(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    exception: &[u8],
    error: &[u8],
    backtrace: Option<&[u8]>,
) -> Result<Plan> {
    records::check_text("exception", exception)?;
    records::check_text("error", error)?;
    let backtrace = records::backtrace_value(backtrace)?;
    let (index, entry) = in_flight(s, ns, worker)?;
    let (queue, record_key) = match &entry {
        Some(e) => (e.queue.clone(), Some(ns.worker_record(worker, &e.queues))),
        None => (Vec::new(), None),
    };
    let record = match &record_key {
        Some(k) => s.get(k)?,
        None => None,
    };
    let payload = match &record {
        Some(r) => match records::record_payload(r).and_then(|span| r.get(span)) {
            Some(p) => FailedPayload::Json(p),
            None => FailedPayload::Text(r),
        },
        None => FailedPayload::Null,
    };
    let failed = ns.failed();
    s.expect_kind(&failed, Kind::List)?;
    let rec = records::failure_record(&Failure {
        worker,
        queue: &queue,
        payload,
        exception,
        error,
        backtrace: &backtrace,
        now_ms: s.now_ms(),
    });
    let mut done = vec![index];
    done.extend(record_key);
    if let Some(e) = &entry {
        done.extend(own_joblock(s, e)?);
    }
    let effects = vec![
        Effect::RPush { key: failed, value: rec },
        plan_incr(s, ns.stat(b"failed"), 0)?,
        plan_incr(s, ns.worker_stat(b"failed", worker), 0)?,
        Effect::Del { keys: done },
    ];
    Ok(Plan { effects, reply: Reply::Ok })
}

/// The worker's index entry. `NoJob` when there is none, or when the worker
/// was unregistered from `<ns>:workers` since its pop (node-resque's
/// `cleanOldWorkers` moved the job to `failed`: completing it again would
/// count it twice). `None` inside when the entry cannot be decoded (the job
/// is then completed without a record).
fn in_flight(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8]) -> Result<(Vec<u8>, Option<InFlight>)> {
    check_name("worker", worker)?;
    let index = ns.inflight(worker);
    let raw = s.get(&index)?.ok_or_else(|| TqError::NoJob { worker: worker.to_vec(), cleaned: false })?;
    let entry = InFlight::decode(&raw);
    if let Some(e) = &entry {
        if !s.set_contains(&ns.workers(), &keys::worker_entry(worker, &e.queues))? {
            return Err(TqError::NoJob { worker: worker.to_vec(), cleaned: true });
        }
    }
    Ok((index, entry))
}

/// The job's running-job lock, if this job still holds it (same value).
fn own_joblock(s: &mut impl Store, e: &InFlight) -> Result<Option<Vec<u8>>> {
    let Some((key, value)) = &e.joblock else { return Ok(None) };
    Ok((s.kind(key)? == Kind::String && s.get(key)?.as_ref() == Some(value)).then(|| key.clone()))
}

fn check_queue(queue: &[u8]) -> Result<()> {
    check_name("queue", queue)?;
    if queue == b"*" {
        return Err(TqError::arg("'*' is not a queue name (it means every queue in TQ.POP)"));
    }
    Ok(())
}

/// Sort key giving JavaScript's default `Array.prototype.sort` order.
fn utf16_units(s: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(s).encode_utf16().collect()
}

/// Moves payloads that cannot run to `failed`, counting each in
/// `stat:failed`, within one plan.
#[derive(Default)]
struct Failures {
    count: usize,
}

impl Failures {
    #[allow(clippy::too_many_arguments)]
    fn add(
        &mut self,
        s: &mut impl Store,
        ns: &Ns<'_>,
        plan: &mut Plan,
        worker: &[u8],
        queue: &[u8],
        payload: &[u8],
        why: &str,
    ) -> Result<()> {
        let failed = ns.failed();
        s.expect_kind(&failed, Kind::List)?;
        let shown = if crate::json::validate(payload).is_ok() {
            FailedPayload::Json(payload)
        } else {
            FailedPayload::Text(payload)
        };
        let rec = records::failure_record(&Failure {
            worker,
            queue,
            payload: shown,
            exception: records::CORRUPT_EXCEPTION.as_bytes(),
            error: why.as_bytes(),
            backtrace: b"[]",
            now_ms: s.now_ms(),
        });
        plan.effects.push(Effect::RPush { key: failed, value: rec });
        plan.effects.push(plan_incr(s, ns.stat(b"failed"), i64::try_from(self.count).unwrap_or(0))?);
        self.count += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
