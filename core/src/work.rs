//! The worker side of the state machine: a worker takes a job (`pop`), holds
//! it under a lease it extends with heartbeats, and reports on it (`ack`,
//! `fail`). A lease that runs out gives the job back (`expire_leases`, run
//! by the module's timer), and broadcast jobs reach every live worker.
//!
//! Every job taken carries a lease: its deadline is kept in the worker's
//! in-flight entry and in the zset `<ns>:tq:leases`, which the timer reads.
//! A job given back after its lease expired leaves a tombstone entry, so the
//! worker that lost it gets a clear error (`LEASELOST`) if it reports late,
//! and can never complete a job someone else now holds.

use crate::error::{Result, TqError};
use crate::keys::{self, check_name, Ns};
use crate::lock;
use crate::queue::{lock_deadline, utf16_units, Failures};
use crate::records::{self, FailedPayload, Failure, InFlight, PayloadInfo};
use crate::recur;
use crate::staged::Staged;
use crate::stats::Event;
use crate::store::{parse_i64, plan_incr, Effect, Kind, Plan, Reply, Store};
use crate::time;

/// Corrupt payloads one pop moves to `failed` before it gives up for this
/// call, so a poisoned queue cannot make one call run long.
const CORRUPT_PER_POP: usize = 100;
/// Jobs whose running-job lock is taken that one pop moves aside before it
/// gives up for this call.
const LOCKED_PER_POP: usize = 100;
/// How long a tombstone (a lease that expired) stays readable.
const TOMBSTONE_MS: u64 = 24 * 3600 * 1000;
/// The queue name broadcast jobs carry.
pub const BROADCAST_QUEUE: &[u8] = b"tq:broadcast";
/// The exception of jobs failed because their lease ran out too often.
pub const LEASE_EXCEPTION: &str = "TQ::LeaseExpired";

/// What a pop needs besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct PopOptions {
    /// Take node-resque's JobLock with the job, for this many ms.
    pub joblock: Option<u64>,
    /// The lease of the job taken (module setting `tq.lease-ms`).
    pub lease_ms: u64,
    /// Reply `[queue, payload, deliveries]` instead of `[queue, payload]`.
    pub with_deliveries: bool,
}

/// `TQ.POP`: take the head of the first non-empty queue (priority order) and
/// record it as the worker's job in flight. Replies `[queue, payload]` or nil.
///
/// The worker's mailbox (broadcast jobs) comes before its queues. The job's
/// QueueLock (`<ns>:lock:...`, see `queue::enqueue`) is released in the same
/// step. With `joblock` it is node-resque's JobLock, atomic: a job whose
/// `<ns>:workerslock:<class>:<queue>:<args>` exists (an identical job is
/// running) is moved to the tail of its queue and the next one is tried;
/// otherwise the lock is taken with the job and only this worker's ACK/FAIL
/// releases it. Periodic jobs always take their JobLock (for the lease).
pub fn pop(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], queues: &[&[u8]], opts: &PopOptions) -> Result<Plan> {
    take(s, ns, worker, queues, opts, None)
}

/// `TQ.POP ... ACK`: completes the worker's job in flight (as [`ack`]) and
/// takes the next one in the same step, saving the worker a round trip per
/// job. Errors as `ack` does (nothing changes). The pop is planned on the
/// data as the ACK leaves it ([`Staged`]); it never takes a job whose payload
/// is byte-identical to the one just completed (the reply is nil and the
/// worker's next pop takes it), so that a worker whose reply was lost can
/// tell from its in-flight record whether the ACK ran: the same payload
/// means it did not.
pub fn ack_and_pop(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    queues: &[&[u8]],
    opts: &PopOptions,
) -> Result<Plan> {
    let held = in_flight(s, ns, worker)?;
    let done = match &held.entry {
        Some(e) => record_payload(s, ns, worker, e)?,
        None => None,
    };
    let acked = complete(s, ns, worker, &held)?;
    let mut next = take(&mut Staged::new(s, &acked.effects), ns, worker, queues, opts, done.as_deref())?;
    let mut effects = acked.effects;
    effects.append(&mut next.effects);
    Ok(Plan { effects, reply: next.reply })
}

/// The pop; with `avoid`, it stops (nil) at a job with exactly that payload.
fn take(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    queues: &[&[u8]],
    opts: &PopOptions,
    avoid: Option<&[u8]>,
) -> Result<Plan> {
    let joblock = opts.joblock.map(lock::check_ttl).transpose()?;
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
    // A tombstone, or a job cleaned up behind tq's back (its worker
    // unregistered), no longer counts: its leftover record goes with this pop.
    let mut stale_record = None;
    if let Some(raw) = s.get(&index)? {
        match InFlight::decode(&raw) {
            Some(e) if e.lost => {}
            Some(e) if !s.set_contains(&workers, &keys::worker_entry(worker, &e.queues))? => {
                stale_record = Some(ns.worker_record(worker, &e.queues)).filter(|_| e.queues != joined);
            }
            other => {
                let queue = other.map(|e| e.queue).unwrap_or_else(|| b"?".to_vec());
                return Err(TqError::InFlight { worker: worker.to_vec(), queue });
            }
        }
    }
    // (queue name, list key): the mailbox first, then the queues in order.
    let mut order: Vec<(Vec<u8>, Vec<u8>)> = vec![(BROADCAST_QUEUE.to_vec(), ns.mailbox(worker))];
    if star {
        let mut all = s.set_members(&ns.queues())?;
        all.sort_by_cached_key(|q| utf16_units(q));
        order.extend(all.into_iter().map(|q| {
            let key = ns.queue(&q);
            (q, key)
        }));
    } else {
        // A queue named twice is looked at once (planning reads the data as it
        // was before this command, so a second look would see the same jobs).
        for q in queues {
            if !order.iter().skip(1).any(|(name, _)| name.as_slice() == *q) {
                order.push((q.to_vec(), ns.queue(q)));
            }
        }
    }
    let mut plan = Plan::new(Reply::Nil);
    let mut failed = Failures::default();
    let mut skipped = 0;
    for (q, qkey) in &order {
        let len = s.list_len(qkey)?;
        for i in 0..len {
            if failed.count >= CORRUPT_PER_POP {
                return Ok(plan);
            }
            let payload =
                s.list_get(qkey, i)?.ok_or_else(|| TqError::Internal("queue shorter than its length".into()))?;
            if avoid == Some(payload.as_slice()) {
                return Ok(plan);
            }
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
            let periodic = recur::is_recurring(s, ns, &payload)?;
            let mut taken_lock = None;
            let lock_ttl = joblock.or(periodic.then_some(opts.lease_ms));
            if let (Some(ttl), Some(args_json)) = (lock_ttl, &args_json) {
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
            let deliveries = previous_deliveries(s, ns, &payload)?.saturating_add(1);
            let lease_until_ms = now.saturating_add(opts.lease_ms);
            let entry = InFlight {
                queues: joined.clone(),
                queue: q.clone(),
                popped_ms: now,
                joblock: taken_lock,
                lease_until_ms,
                deliveries,
                lost: false,
            };
            plan.effects.push(Effect::MSet {
                pairs: vec![
                    (ns.worker_record(worker, &joined), records::inflight_record(now, q, worker, &payload)),
                    (index, entry.encode()),
                ],
            });
            plan.effects.push(Effect::SAdd { key: workers, member: keys::worker_entry(worker, &joined) });
            plan.effects.push(Effect::ZAdd {
                key: ns.leases(),
                score: i64::try_from(lease_until_ms).unwrap_or(i64::MAX),
                member: worker.to_vec(),
            });
            if let Some(old) = stale_record {
                plan.effects.push(Effect::Del { keys: vec![old] });
            }
            let mut reply = vec![Reply::Bulk(q.clone()), Reply::Bulk(payload)];
            if opts.with_deliveries {
                reply.push(Reply::Int(i64::from(deliveries)));
            }
            plan.reply = Reply::Array(reply);
            s.note(Event::Popped);
            return Ok(plan);
        }
    }
    Ok(plan)
}

/// Times this payload was handed out before (0 for a new job).
fn previous_deliveries(s: &mut impl Store, ns: &Ns<'_>, payload: &[u8]) -> Result<u32> {
    let key = ns.deliveries();
    if s.kind(&key)? != Kind::Hash {
        return Ok(0);
    }
    Ok(s.hash_get(&key, payload)?.and_then(|v| parse_i64(&v)).and_then(|n| u32::try_from(n).ok()).unwrap_or(0))
}

/// `TQ.ACK`: the worker's job succeeded. Removes the in-flight record and
/// counts it in `stat:processed` and `stat:processed:<worker>`.
pub fn ack(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8]) -> Result<Plan> {
    let held = in_flight(s, ns, worker)?;
    complete(s, ns, worker, &held)
}

/// The ACK of a job already found in flight.
fn complete(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], held: &Held) -> Result<Plan> {
    let mut effects = finish(s, ns, worker, held)?;
    effects.push(plan_incr(s, ns.stat(b"processed"), 0)?);
    effects.push(plan_incr(s, ns.worker_stat(b"processed", worker), 0)?);
    let run_ms = held.run_ms(s.now_ms());
    s.note(Event::Acked { run_ms });
    Ok(Plan { effects, reply: Reply::Ok })
}

/// A retry policy given with `TQ.FAIL ... RETRY <attempts> [BACKOFF <ms>,...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Deliveries in all (the first run included) before the job fails for good.
    pub attempts: u32,
    /// Delay before attempt n+1 is `backoff[min(n - 1, len - 1)]`.
    pub backoff: Vec<u64>,
}

/// node-resque's Retry plugin default delay (`retryDelay`).
pub const RETRY_DEFAULT_DELAY_MS: u64 = 5000;

impl Retry {
    fn delay(&self, deliveries: u32) -> u64 {
        let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
        match self.backoff.get(i).or(self.backoff.last()) {
            Some(&ms) => ms,
            None => RETRY_DEFAULT_DELAY_MS,
        }
    }
}

/// `TQ.FAIL`: the worker's job failed. Moves it to `failed` as node-resque's
/// failure record and counts it in `stat:failed` and `stat:failed:<worker>`.
///
/// With a retry policy, a job delivered fewer than `attempts` times goes
/// back instead, to run again after its backoff delay (filed as a delayed
/// job; with no delay, at the tail of its queue); it is still counted in
/// `stat:failed`, as node-resque's Retry plugin counts it. Replies `OK`
/// without a policy, else `[retry, delay-ms]` or `[failed, 0]`.
pub fn fail(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    exception: &[u8],
    error: &[u8],
    backtrace: Option<&[u8]>,
    retry: Option<&Retry>,
) -> Result<Plan> {
    records::check_text("exception", exception)?;
    records::check_text("error", error)?;
    let backtrace = records::backtrace_value(backtrace)?;
    let held = in_flight(s, ns, worker)?;
    let run_ms = held.run_ms(s.now_ms());
    s.note(Event::Failed { run_ms });
    let queue = held.entry.as_ref().map(|e| e.queue.clone()).unwrap_or_default();
    let record = match &held.entry {
        Some(e) => s.get(&ns.worker_record(worker, &e.queues))?,
        None => None,
    };
    let job = record.as_ref().and_then(|r| records::record_payload(r).and_then(|span| r.get(span)));
    if let (Some(policy), Some(e), Some(payload)) = (retry, &held.entry, job) {
        if e.deliveries < policy.attempts {
            let delay = policy.delay(e.deliveries);
            let mut effects = finish(s, ns, worker, &held)?;
            effects.extend(give_back(s, ns, worker, e, payload, delay)?);
            effects.push(plan_incr(s, ns.stat(b"failed"), 0)?);
            effects.push(plan_incr(s, ns.worker_stat(b"failed", worker), 0)?);
            s.note(Event::Retried);
            let reply = Reply::Array(vec![
                Reply::Bulk(b"retry".to_vec()),
                Reply::Int(i64::try_from(delay).unwrap_or(i64::MAX)),
            ]);
            return Ok(Plan { effects, reply });
        }
    }
    let payload = match (&record, job) {
        (_, Some(p)) => FailedPayload::Json(p),
        (Some(r), None) => FailedPayload::Text(r),
        (None, None) => FailedPayload::Null,
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
    let mut effects = vec![Effect::RPush { key: failed, value: rec }];
    effects.extend(finish(s, ns, worker, &held)?);
    effects.push(plan_incr(s, ns.stat(b"failed"), 0)?);
    effects.push(plan_incr(s, ns.worker_stat(b"failed", worker), 0)?);
    let reply = match retry {
        None => Reply::Ok,
        Some(_) => Reply::Array(vec![Reply::Bulk(b"failed".to_vec()), Reply::Int(0)]),
    };
    Ok(Plan { effects, reply })
}

/// `TQ.NACK`: the worker gives its job back unfinished (it is stopping, or
/// cannot run it now): at the head of its queue, or after `delay_ms` as a
/// delayed job. Nothing is counted; the delivery count is kept.
pub fn nack(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], delay_ms: u64) -> Result<Plan> {
    if delay_ms > time::MAX_TIME_MS {
        return Err(TqError::arg("delay is out of range"));
    }
    let held = in_flight(s, ns, worker)?;
    let mut effects = finish(s, ns, worker, &held)?;
    if let Some(e) = &held.entry {
        if let Some(payload) = record_payload(s, ns, worker, e)? {
            effects.extend(give_back(s, ns, worker, e, &payload, delay_ms)?);
        }
    }
    s.note(Event::Nacked);
    Ok(Plan { effects, reply: Reply::Ok })
}

/// Puts a job back to be delivered again: at the head of its queue (or
/// mailbox) now, or filed under the delayed bucket of now + `delay_ms` (the
/// next free second when that bucket already holds the same payload). Its
/// delivery count is kept for the next pop. Must follow `finish`, whose
/// HDEL of the count it overrides.
fn give_back(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    e: &InFlight,
    payload: &[u8],
    delay_ms: u64,
) -> Result<Vec<Effect>> {
    let mut effects = Vec::new();
    let broadcast = e.queue == BROADCAST_QUEUE;
    if delay_ms == 0 || broadcast {
        let target = if broadcast { ns.mailbox(worker) } else { ns.queue(&e.queue) };
        s.expect_kind(&target, Kind::List)?;
        effects.push(Effect::LPush { key: target, value: payload.to_vec() });
    } else {
        let schedule = ns.delayed_schedule();
        s.expect_kind(&schedule, Kind::Zset)?;
        let tkey = ns.timestamps(payload);
        let mut bucket = time::bucket_of(s.now_ms().saturating_add(delay_ms));
        let mut marker = keys::delayed_marker(bucket.to_string().as_bytes());
        while s.set_contains(&tkey, &marker)? {
            bucket += 1;
            marker = keys::delayed_marker(bucket.to_string().as_bytes());
        }
        let bname = bucket.to_string().into_bytes();
        let dkey = ns.delayed(&bname);
        s.expect_kind(&dkey, Kind::List)?;
        effects.push(Effect::RPush { key: dkey, value: payload.to_vec() });
        effects.push(Effect::SAdd { key: tkey, member: marker });
        effects.push(Effect::ZAdd { key: schedule, score: i64::try_from(bucket).unwrap_or(i64::MAX), member: bname });
    }
    if let Ok(info) = records::inspect_payload(payload) {
        if !broadcast && delay_ms == 0 {
            let mut relock = Plan::new(Reply::Nil);
            relock_if_periodic(s, ns, &info, &e.queue, payload, &mut relock)?;
            effects.extend(relock.effects);
        }
    }
    s.expect_kind(&ns.deliveries(), Kind::Hash)?;
    effects.push(Effect::HSet {
        key: ns.deliveries(),
        field: payload.to_vec(),
        value: e.deliveries.to_string().into_bytes(),
    });
    Ok(effects)
}

struct Held {
    index: Vec<u8>,
    /// None when the entry cannot be decoded (the job is then completed
    /// without a record).
    entry: Option<InFlight>,
}

/// The worker's job in flight, or why there is none: no entry (`NoJob`), a
/// tombstone (`LeaseLost`), or the worker unregistered from `<ns>:workers`
/// since its pop (node-resque's `cleanOldWorkers` moved the job to `failed`:
/// completing it again would count it twice).
fn in_flight(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8]) -> Result<Held> {
    check_name("worker", worker)?;
    let index = ns.inflight(worker);
    let raw = s.get(&index)?.ok_or_else(|| TqError::NoJob { worker: worker.to_vec(), cleaned: false })?;
    let entry = InFlight::decode(&raw);
    if let Some(e) = &entry {
        if e.lost {
            return Err(TqError::LeaseLost { worker: worker.to_vec(), at_ms: e.lease_until_ms });
        }
        if !s.set_contains(&ns.workers(), &keys::worker_entry(worker, &e.queues))? {
            return Err(TqError::NoJob { worker: worker.to_vec(), cleaned: true });
        }
    }
    Ok(Held { index, entry })
}

impl Held {
    /// How long the job has run (0 when its entry cannot be read).
    fn run_ms(&self, now: u64) -> u64 {
        self.entry.as_ref().map_or(0, |e| now.saturating_sub(e.popped_ms))
    }
}

/// The effects that end a job in flight, whatever the outcome: record and
/// index removed, lease dropped, its own JobLock released, its delivery
/// count forgotten.
fn finish(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], held: &Held) -> Result<Vec<Effect>> {
    let mut done = vec![held.index.clone()];
    let mut effects = Vec::new();
    if let Some(e) = &held.entry {
        done.push(ns.worker_record(worker, &e.queues));
        done.extend(own_joblock(s, e)?);
        if e.deliveries > 1 {
            if let Some(payload) = record_payload(s, ns, worker, e)? {
                effects.push(Effect::HDel { key: ns.deliveries(), field: payload });
            }
        }
    }
    effects.push(Effect::Del { keys: done });
    effects.push(Effect::ZRem { key: ns.leases(), member: worker.to_vec() });
    Ok(effects)
}

fn record_payload(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], e: &InFlight) -> Result<Option<Vec<u8>>> {
    let record = s.get(&ns.worker_record(worker, &e.queues))?;
    Ok(record.and_then(|r| records::record_payload(&r).and_then(|span| r.get(span).map(<[u8]>::to_vec))))
}

/// The job's running-job lock, if this job still holds it (same value).
fn own_joblock(s: &mut impl Store, e: &InFlight) -> Result<Option<Vec<u8>>> {
    let Some((key, value)) = &e.joblock else { return Ok(None) };
    Ok((s.kind(key)? == Kind::String && s.get(key)?.as_ref() == Some(value)).then(|| key.clone()))
}

/// `TQ.HEARTBEAT`: the worker is alive for `ms` more; a job it holds gets
/// its lease extended to `ms` from now. Also refreshes node-resque's
/// `<ns>:worker:ping:<worker>`, so node-resque's scheduler does not take a
/// live tq worker for a stuck one. Replies the lease left in ms (0 when the
/// worker holds no job).
pub fn heartbeat(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], ms: u64) -> Result<Plan> {
    check_name("worker", worker)?;
    let ms = lock::check_ttl(ms)?;
    let now = s.now_ms();
    let until = now.saturating_add(ms);
    let score = i64::try_from(until).unwrap_or(i64::MAX);
    let index = ns.inflight(worker);
    let mut effects = Vec::new();
    let mut queues = Vec::new();
    let mut reply = 0;
    if let Some(raw) = s.get(&index)? {
        if let Some(mut e) = InFlight::decode(&raw).filter(|e| !e.lost) {
            e.lease_until_ms = until;
            queues = e.queues.clone();
            // The job's JobLock (a periodic task's, or JOBLOCK's) must not
            // run out while the job is held: another instance would start.
            if let Some((key, value)) = &e.joblock {
                let held = s.get(key)?.as_ref() == Some(value);
                if held && s.expire_at(key)?.is_some_and(|at| at < until) {
                    effects.push(Effect::PExpireAt { key: key.clone(), at_ms: until });
                }
            }
            effects.push(Effect::Set { key: index, value: e.encode() });
            effects.push(Effect::ZAdd { key: ns.leases(), score, member: worker.to_vec() });
            reply = i64::try_from(ms).unwrap_or(i64::MAX);
        }
    }
    let mut ping = b"{\"time\":".to_vec();
    crate::json::write_int(i64::try_from(time::bucket_of(now)).unwrap_or(0), &mut ping);
    ping.extend_from_slice(b",\"name\":");
    crate::json::write_string(worker, &mut ping);
    ping.extend_from_slice(b",\"queues\":");
    crate::json::write_string(&queues, &mut ping);
    ping.push(b'}');
    s.expect_kind(&ns.alive(), Kind::Zset)?;
    effects.push(Effect::Set { key: ns.ping(worker), value: ping });
    effects.push(Effect::ZAdd { key: ns.alive(), score, member: worker.to_vec() });
    Ok(Plan { effects, reply: Reply::Int(reply) })
}

/// Gives back jobs whose lease ran out (at most `limit`): each goes back to
/// the head of its queue, or to `failed` once it was delivered
/// `max_deliveries` times; the worker is left a tombstone. Replies how many
/// leases expired.
pub fn expire_leases(s: &mut impl Store, ns: &Ns<'_>, max_deliveries: u32, limit: usize) -> Result<Plan> {
    let now = s.now_ms();
    let leases = ns.leases();
    let expired = s.zset_range(&leases, f64::NEG_INFINITY, now as f64, limit)?;
    let mut plan = Plan::new(Reply::Int(0));
    let mut count = 0;
    let mut failures = 0;
    for (worker, _) in expired {
        plan.effects.push(Effect::ZRem { key: leases.clone(), member: worker.clone() });
        let index = ns.inflight(&worker);
        let Some(mut e) = s.get(&index)?.and_then(|raw| InFlight::decode(&raw)).filter(|e| !e.lost) else {
            continue;
        };
        if e.lease_until_ms > now {
            // Extended by a heartbeat the zset has not seen: keep it.
            plan.effects.push(Effect::ZAdd {
                key: leases.clone(),
                score: i64::try_from(e.lease_until_ms).unwrap_or(i64::MAX),
                member: worker.clone(),
            });
            continue;
        }
        count += 1;
        let record_key = ns.worker_record(&worker, &e.queues);
        let payload = record_payload(s, ns, &worker, &e)?;
        if let Some(payload) = payload {
            if e.deliveries >= max_deliveries {
                let failed = ns.failed();
                s.expect_kind(&failed, Kind::List)?;
                let why = format!("lease expired; the job was delivered {} times without completion", e.deliveries);
                plan.effects.push(Effect::RPush {
                    key: failed,
                    value: records::failure_record(&Failure {
                        worker: &worker,
                        queue: &e.queue,
                        payload: FailedPayload::Json(&payload),
                        exception: LEASE_EXCEPTION.as_bytes(),
                        error: why.as_bytes(),
                        backtrace: b"[]",
                        now_ms: now,
                    }),
                });
                plan.effects.push(plan_incr(s, ns.stat(b"failed"), failures)?);
                failures += 1;
                s.note(Event::LeaseExpired { requeued: false });
                if e.deliveries > 1 {
                    plan.effects.push(Effect::HDel { key: ns.deliveries(), field: payload });
                }
            } else {
                plan.effects.extend(give_back(s, ns, &worker, &e, &payload, 0)?);
                s.note(Event::LeaseExpired { requeued: true });
            }
        }
        let mut done = vec![record_key];
        done.extend(own_joblock(s, &e)?);
        plan.effects.push(Effect::Del { keys: done });
        e.lost = true;
        e.joblock = None;
        plan.effects.push(Effect::SetPxAt { key: index, value: e.encode(), at_ms: now.saturating_add(TOMBSTONE_MS) });
    }
    plan.reply = Reply::Int(count);
    Ok(plan)
}

/// A periodic job given back keeps the "one instance waiting" lock.
fn relock_if_periodic(
    s: &mut impl Store,
    ns: &Ns<'_>,
    info: &PayloadInfo,
    queue: &[u8],
    payload: &[u8],
    plan: &mut Plan,
) -> Result<()> {
    if let (Some(r), Some(args)) = (recur::get(s, ns, payload)?, info.args_json(payload)) {
        let now = s.now_ms();
        let ttl = r.waiting_lock_ms();
        plan.effects.push(Effect::SetPxAt {
            key: ns.queue_lock(&info.class, queue, &args),
            value: lock_deadline(now, ttl),
            at_ms: now.saturating_add(ttl),
        });
    }
    Ok(())
}

/// Forgets workers whose heartbeat ran out (at most `limit`).
pub fn expire_alive(s: &mut impl Store, ns: &Ns<'_>, limit: usize) -> Result<Plan> {
    let now = s.now_ms();
    let alive = ns.alive();
    let gone = s.zset_range(&alive, f64::NEG_INFINITY, now as f64, limit)?;
    let effects = gone.into_iter().map(|(w, _)| Effect::ZRem { key: alive.clone(), member: w }).collect();
    Ok(Plan { effects, reply: Reply::Ok })
}

/// `TQ.BROADCAST`: a job for every live worker (heartbeat not expired), put
/// in each one's mailbox, which its pops check first. Replies how many
/// workers it reached.
pub fn broadcast(s: &mut impl Store, ns: &Ns<'_>, class: &[u8], args: Option<&[u8]>) -> Result<Plan> {
    check_name("class", class)?;
    let args = records::args_value(args)?;
    let payload = records::payload(BROADCAST_QUEUE, class, &args);
    let now = s.now_ms();
    let live = s.zset_range(&ns.alive(), (now + 1) as f64, f64::INFINITY, usize::MAX)?;
    let mut effects = Vec::with_capacity(live.len());
    for (worker, _) in &live {
        let mailbox = ns.mailbox(worker);
        s.expect_kind(&mailbox, Kind::List)?;
        effects.push(Effect::RPush { key: mailbox, value: payload.clone() });
    }
    Ok(Plan { effects, reply: Reply::Int(i64::try_from(live.len()).unwrap_or(i64::MAX)) })
}

#[cfg(test)]
mod tests;
