//! The worker side of the state machine: a worker takes a job (`pop`), holds
//! it under a lease it extends with heartbeats, and reports on it (`ack`,
//! `fail`, `nack`). A lease that runs out gives the job back
//! (`expire_leases`, run by the module's timer), and broadcast jobs reach
//! every live worker.
//!
//! Every take mints a delivery id and carries a lease: both are kept in the
//! worker's in-flight entry, the deadline also in the zset `<ns>:tq:leases`,
//! which the timer reads. Every report names the delivery it is about. When
//! a delivery ends (reported, or its lease lost) the entry becomes a
//! tombstone saying how, so that a report sent again after a lost reply is
//! answered as the first was, and a late one is refused (`LEASELOST`): a
//! report is never applied to a job its sender has not seen.

use crate::error::{Result, TqError};
use crate::keys::{self, check_name, Ns};
use crate::lock;
use crate::metrics::{self, Outcome};
use crate::queue::{lock_deadline, utf16_units, Failures};
use crate::records::{self, Ended, FailedPayload, Failure, InFlight, OpenTally, PayloadInfo};
use crate::recur;
use crate::staged::Staged;
use crate::stats::Event;
use crate::store::{parse_i64, plan_count, plan_incr, Effect, Kind, Plan, Reply, Store};
use crate::time;

/// Corrupt payloads one pop moves to `failed` before it gives up for this
/// call, so a poisoned queue cannot make one call run long.
const CORRUPT_PER_POP: usize = 100;
/// Jobs whose running-job lock is taken that one pop moves aside before it
/// gives up for this call.
const LOCKED_PER_POP: usize = 100;
/// The queue name broadcast jobs carry.
pub const BROADCAST_QUEUE: &[u8] = b"tq:broadcast";
/// The exception of jobs failed because their lease ran out too often.
pub const LEASE_EXCEPTION: &str = "TQ::LeaseExpired";

/// What a take needs besides its arguments.
#[derive(Debug, Clone, Copy)]
pub struct PopOptions {
    /// Take node-resque's JobLock with the job, for this many ms.
    pub joblock: Option<u64>,
    /// The lease of the job taken (`LEASE <ms>`, else the module setting
    /// `tq.lease-ms`).
    pub lease_ms: u64,
}

/// `TQ.POP`: take the head of the first non-empty queue (priority order) and
/// record it as the worker's job in flight under a new delivery id. Replies
/// `[queue, payload, delivery, deliveries, lease-deadline-ms]` or nil.
///
/// A worker name holds one job at a time: a pop by a name that holds one
/// answers with that job again (same delivery, its lease renewed), so a pop
/// resent after a lost reply, or a process restarted under the same name,
/// gets the job the name holds instead of stranding it.
///
/// The worker's mailbox (broadcast jobs) comes before its queues. The job's
/// QueueLock (`<ns>:lock:...`, see `queue::enqueue`) is released in the same
/// step. With `joblock` it is node-resque's JobLock, atomic: a job whose
/// `<ns>:workerslock:<class>:<queue>:<args>` exists (an identical job is
/// running) is moved to the tail of its queue and the next one is tried;
/// otherwise the lock is taken with the job and only this worker's ACK/FAIL
/// releases it. Periodic jobs always take their JobLock (for the lease).
pub fn pop(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], queues: &[&[u8]], opts: &PopOptions) -> Result<Plan> {
    check_take(worker, queues)?;
    let joined = queues.join(&b","[..]);
    match holding(s, ns, worker, &joined)? {
        Holding::Live(e, stored) => rehand(s, ns, worker, e, stored, opts),
        Holding::Free { stale_record, mut open, stored } => {
            take(s, ns, worker, queues, opts, 0, stale_record, &mut open, stored)
        }
    }
}

/// `TQ.POP ... ACK <delivery>`: completes the worker's job (as [`ack`]) and
/// takes the next one in the same step, saving the worker a round trip per
/// job. Resent after a lost reply it answers as the first time: with the job
/// that first call took (the worker now holds it, taken after `delivery`),
/// or nil when it took none. Errors as `ack` does (nothing changes).
pub fn ack_and_pop(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    queues: &[&[u8]],
    opts: &PopOptions,
    delivery: u64,
) -> Result<Plan> {
    check_take(worker, queues)?;
    let mut held = match report_target(s, ns, worker, delivery)? {
        Target::Held(held) => held,
        Target::Ended(Ended::Acked) => return Ok(Plan::new(Reply::Nil)),
        Target::TakenAfter(e, stored) => return rehand(s, ns, worker, e, stored, opts),
        Target::Ended(how) => return Err(ended_otherwise(worker, delivery, how)),
    };
    // Its tombstone is written below only if no job is taken: the new
    // entry takes its place otherwise.
    let mut acked = complete(s, ns, worker, &mut held, false)?;
    // The new entry carries the open tally the ACK counted its job in.
    let mut next = take(
        &mut Staged::new(s, &acked.effects),
        ns,
        worker,
        queues,
        opts,
        delivery,
        None,
        &mut held.entry.open,
        held.stored,
    )?;
    if next.reply == Reply::Nil {
        acked.effects.push(tombstone(s, held.index.clone(), &held.entry, held.stored, Ended::Acked));
    }
    // When a job is taken, its record replaces the ACK's deletion:
    // `store::coalesce` drops the writes so undone.
    let leases = ns.leases();
    let is_lease = |key: &[u8], member: &[u8]| key == leases.as_slice() && member == worker;
    let new_deadline = next.effects.iter().find_map(|e| match e {
        Effect::ZAdd { key, score, member } if is_lease(key, member) => Some(*score),
        _ => None,
    });
    if new_deadline.is_some_and(|until| u64::try_from(until).unwrap_or(0) >= held.entry.lease_until_ms) {
        // The worker's member in the leases zset stays as it is: its score
        // is the held job's deadline or earlier, so before the new job's.
        // When the timer comes by then, it finds the entry's later deadline
        // and moves the member there (as for a heartbeat). A busy worker's
        // lease costs one zset write per lease period instead of one per
        // job, the dearest write of a take.
        acked.effects.retain(|e| !matches!(e, Effect::ZRem { key, member } if is_lease(key, member)));
        next.effects.retain(|e| !matches!(e, Effect::ZAdd { key, member, .. } if is_lease(key, member)));
    }
    acked.effects.extend(next.effects);
    Ok(Plan { effects: acked.effects, reply: next.reply })
}

fn check_take(worker: &[u8], queues: &[&[u8]]) -> Result<()> {
    check_name("worker", worker)?;
    let star = queues == [b"*"];
    for q in queues {
        if !star && *q == b"*" {
            return Err(TqError::arg("'*' must be the only queue when used"));
        }
        check_name("queue", q)?;
    }
    Ok(())
}

/// What a worker name holds when it asks for a job.
enum Holding {
    /// A job in flight, still registered, and its entry's stored length.
    Live(InFlight, usize),
    /// Nothing (no entry, a tombstone, an entry tq cannot read, or a job
    /// cleaned up behind tq's back: its worker unregistered). A leftover
    /// record of such a job goes with the take, and the worker's open tally
    /// with its new entry (`stored`: the length of the entry it replaces,
    /// 0 for none).
    Free { stale_record: Option<Vec<u8>>, open: Option<OpenTally>, stored: usize },
}

fn holding(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], joined: &[u8]) -> Result<Holding> {
    let workers = ns.workers();
    s.expect_kind(&workers, Kind::Set)?;
    let Some((mut e, stored)) = s.get_with(&ns.inflight(worker), InFlight::decode_sized)?.flatten() else {
        return Ok(Holding::Free { stale_record: None, open: None, stored: 0 });
    };
    if !e.live() {
        return Ok(Holding::Free { stale_record: None, open: e.open, stored });
    }
    if s.set_contains(&workers, &keys::worker_entry(worker, &e.queues))? {
        return Ok(Holding::Live(e, stored));
    }
    let stale_record = Some(ns.worker_record(worker, &e.queues)).filter(|_| e.queues != joined);
    Ok(Holding::Free { stale_record, open: e.open.take(), stored })
}

/// The job a worker holds, handed to it again: same delivery, the lease
/// renewed from now.
fn rehand(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    mut e: InFlight,
    stored: usize,
    opts: &PopOptions,
) -> Result<Plan> {
    let record_key = ns.worker_record(worker, &e.queues);
    let Some(payload) = record_payload(s, ns, worker, &e)? else {
        return Err(TqError::Corrupt {
            key: record_key,
            what: format!(
                "the in-flight record of delivery {} is missing or unreadable, so the job cannot be handed out again (when its lease runs out it is filed in failed)",
                e.delivery
            ),
        });
    };
    let until = s.now_ms().saturating_add(opts.lease_ms);
    let effects = renew(s, ns, worker, &mut e, stored, until)?;
    let reply = pop_reply(&e.queue, payload, e.delivery, e.deliveries, until);
    Ok(Plan { effects, reply })
}

/// `[queue, payload, delivery, deliveries, lease-deadline-ms]`.
fn pop_reply(queue: &[u8], payload: Vec<u8>, delivery: u64, deliveries: u32, lease_until_ms: u64) -> Reply {
    Reply::Array(vec![
        Reply::Bulk(queue.to_vec()),
        Reply::Bulk(payload),
        Reply::Int(i64::try_from(delivery).unwrap_or(i64::MAX)),
        Reply::Int(i64::from(deliveries)),
        Reply::Int(i64::try_from(lease_until_ms).unwrap_or(i64::MAX)),
    ])
}

/// Delivery ids stay below 2^53, so that every client language (JavaScript
/// numbers included) reads them exactly.
const MAX_DELIVERY_ID: u64 = (1 << 53) - 1;

/// The next delivery id of the namespace, and the write that takes it.
fn mint(s: &mut impl Store, ns: &Ns<'_>) -> Result<(u64, Effect)> {
    let key = ns.delivery_seq();
    s.will_write(&key)?;
    let current = match s.get_with(&key, |v| parse_i64(v).and_then(|n| u64::try_from(n).ok()))? {
        None => 0,
        Some(v) => v.ok_or_else(|| TqError::Corrupt {
            key: key.clone(),
            what: "the delivery counter is not a non-negative integer".to_string(),
        })?,
    };
    let next = current
        .checked_add(1)
        .filter(|n| *n <= MAX_DELIVERY_ID)
        .ok_or_else(|| TqError::Corrupt { key: key.clone(), what: "the delivery counter is exhausted".to_string() })?;
    // Written as its value (not INCR) so that it joins the take's MSET.
    Ok((next, Effect::Set { key, value: next.to_string().into_bytes() }))
}

/// The take itself. `after`: the delivery completed in the same step (0 for
/// none), recorded in the new entry so that a resent `POP ... ACK` finds it;
/// `open`: the worker's open tally, which the new entry carries on (taken
/// from `open` only when a job is taken); `stored`: the length of the entry
/// the new one replaces (0 for none).
#[allow(clippy::too_many_arguments)]
fn take(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    queues: &[&[u8]],
    opts: &PopOptions,
    after: u64,
    stale_record: Option<Vec<u8>>,
    open: &mut Option<OpenTally>,
    stored: usize,
) -> Result<Plan> {
    let joblock = opts.joblock.map(lock::check_ttl).transpose()?;
    let lease_ms = lock::check_ttl(opts.lease_ms)?;
    let star = queues == [b"*"];
    let joined = queues.join(&b","[..]);
    let index = ns.inflight(worker);
    let workers = ns.workers();
    s.expect_kind(&workers, Kind::Set)?;
    // Every key the take writes must take the write: a lease that cannot be
    // recorded must refuse the pop, not hand out a job without one.
    let leases = ns.leases();
    s.expect_kind(&leases, Kind::Zset)?;
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
    // Paused queues (TQ.PAUSE) are skipped; the mailbox never is.
    let paused = crate::pause::paused(s, ns)?;
    if !paused.is_empty() {
        let mut first = true;
        order.retain(|(q, _)| std::mem::take(&mut first) || !paused.contains(q));
    }
    let mut plan = Plan::new(Reply::Nil);
    let mut failed = Failures::default();
    let mut skipped = 0;
    for (q, qkey) in &order {
        let len = s.list_len(qkey)?;
        let (effects_before, skipped_before) = (plan.effects.len(), skipped);
        for i in 0..len {
            if failed.count >= CORRUPT_PER_POP {
                return Ok(plan);
            }
            let payload =
                s.list_get(qkey, i)?.ok_or_else(|| TqError::Internal("queue shorter than its length".into()))?;
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
            let lock_ttl = joblock.or(periodic.then_some(lease_ms));
            if let (Some(ttl), Some(args_json)) = (lock_ttl, &args_json) {
                let key = ns.job_lock(&info.class, q, args_json);
                if s.kind(&key)? != Kind::None {
                    if skipped >= LOCKED_PER_POP {
                        plan.effects.pop();
                        return Ok(plan);
                    }
                    skipped += 1;
                    plan.effects.push(Effect::RPush { key: qkey.clone(), value: payload });
                    if skipped - skipped_before == len {
                        // Every job of the queue is locked: moving each to
                        // the tail would give the same list back, and a list
                        // of one would be deleted and created again, which
                        // wakes the TQ.BPOP that made the move, for ever.
                        plan.effects.truncate(effects_before);
                    }
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
            // The count of earlier deliveries moves into the entry: a copy
            // enqueued afterwards with the same payload starts afresh.
            let before = previous_deliveries(s, ns, &payload)?;
            if before > 0 {
                plan.effects.push(Effect::HDel { key: ns.deliveries(), field: payload.clone() });
            }
            let deliveries = before.saturating_add(1);
            // Written below: opened for writing from the first look.
            s.will_write(&leases)?;
            let (delivery, minted) = mint(s, ns)?;
            plan.effects.push(minted);
            let lease_until_ms = now.saturating_add(lease_ms);
            // The queue's clock dates the job (the mailbox has none).
            let (wait_ms, clock) =
                if q.as_slice() == BROADCAST_QUEUE { (None, None) } else { metrics::plan_took(s, ns, q, &payload)? };
            plan.effects.extend(clock);
            let entry = InFlight {
                queues: joined.clone(),
                queue: q.clone(),
                popped_ms: now,
                joblock: taken_lock,
                lease_until_ms,
                deliveries,
                delivery,
                after,
                ended: None,
                class: info.class.to_vec(),
                wait_ms,
                open: open.take(),
            };
            plan.effects.push(Effect::MSet {
                pairs: vec![
                    (ns.worker_record(worker, &joined), records::inflight_record(now, q, worker, &payload)),
                    (index, entry.encode_over(stored)),
                ],
            });
            plan.effects.push(Effect::SAdd { key: workers, member: keys::worker_entry(worker, &joined) });
            plan.effects.push(Effect::ZAdd {
                key: leases,
                score: i64::try_from(lease_until_ms).unwrap_or(i64::MAX),
                member: worker.to_vec(),
            });
            if let Some(old) = stale_record {
                plan.effects.push(Effect::Del { keys: vec![old] });
            }
            plan.reply = pop_reply(q, payload, delivery, deliveries, lease_until_ms);
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

/// `TQ.ACK`: the worker's job (delivery `delivery`) succeeded. Removes the
/// in-flight record and counts it in `stat:processed` and
/// `stat:processed:<worker>`. Repeated (a resend after a lost reply), it
/// answers OK again and changes nothing.
pub fn ack(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], delivery: u64) -> Result<Plan> {
    match report_target(s, ns, worker, delivery)? {
        Target::Held(mut held) => complete(s, ns, worker, &mut held, true),
        Target::Ended(Ended::Acked) | Target::TakenAfter(..) => Ok(Plan::new(Reply::Ok)),
        Target::Ended(how) => Err(ended_otherwise(worker, delivery, how)),
    }
}

/// The ACK of a job already found in flight.
/// `tombstone`: false when the caller writes the worker's entry itself.
fn complete(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], held: &mut Held, tombstone: bool) -> Result<Plan> {
    let run_ms = held.run_ms(s.now_ms());
    let counted = count_ended(s, ns, worker, &mut held.entry, Outcome::Processed, run_ms)?;
    let mut effects = finish(s, ns, worker, held, tombstone.then_some(Ended::Acked))?;
    effects.push(plan_count(s, ns.stat(b"processed"), 0)?);
    effects.push(plan_count(s, ns.worker_stat(b"processed", worker), 0)?);
    effects.extend(counted);
    s.note(Event::Acked { run_ms });
    Ok(Plan { effects, reply: Reply::Ok })
}

/// Counts the job of entry `e`, ended now, in its worker's open tally,
/// which the entry this step writes carries (`metrics::carry`); returns the
/// metrics' writes this step makes.
fn count_ended(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    e: &mut InFlight,
    outcome: Outcome,
    run_ms: u64,
) -> Result<Vec<Effect>> {
    let mut effects = Vec::new();
    let due = count_into(s, ns, worker, e, outcome, run_ms, &mut effects)?;
    effects.extend(metrics::flush_all(s, ns, due)?);
    Ok(effects)
}

/// `count_ended` leaving the tallies due to the caller (one `flush_all`
/// for several workers).
fn count_into(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    e: &mut InFlight,
    outcome: Outcome,
    run_ms: u64,
    effects: &mut Vec<Effect>,
) -> Result<Vec<OpenTally>> {
    let mut open = e.open.take();
    let job = e.ended_job(outcome, run_ms);
    let due = metrics::carry(s, ns, worker, &mut open, &job, effects)?;
    e.open = open;
    Ok(due)
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
/// job; with no delay, at the head of its queue); it is still counted in
/// `stat:failed`, as node-resque's Retry plugin counts it. Replies `OK`
/// without a policy, else `[retry, delay-ms]` or `[failed, 0]`.
#[allow(clippy::too_many_arguments)]
pub fn fail(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    delivery: u64,
    exception: &[u8],
    error: &[u8],
    backtrace: Option<&[u8]>,
    retry: Option<&Retry>,
) -> Result<Plan> {
    records::check_text("exception", exception)?;
    records::check_text("error", error)?;
    let backtrace = records::backtrace_value(backtrace)?;
    let mut held = match report_target(s, ns, worker, delivery)? {
        Target::Held(held) => held,
        // A repeat: answered as the first time, nothing changes.
        Target::Ended(Ended::Failed) => return Ok(Plan::new(fail_reply(retry, None))),
        Target::Ended(Ended::Retried { delay_ms }) => return Ok(Plan::new(fail_reply(retry, Some(delay_ms)))),
        Target::Ended(how) => return Err(ended_otherwise(worker, delivery, how)),
        Target::TakenAfter(..) => return Err(ended_otherwise(worker, delivery, Ended::Acked)),
    };
    let run_ms = held.run_ms(s.now_ms());
    s.note(Event::Failed { run_ms });
    let counted = count_ended(s, ns, worker, &mut held.entry, Outcome::Failed, run_ms)?;
    let e = &held.entry;
    let queue = e.queue.clone();
    let record = s.get(&ns.worker_record(worker, &e.queues))?;
    let job = record.as_ref().and_then(|r| records::record_payload(r).and_then(|span| r.get(span)));
    if let (Some(policy), Some(payload)) = (retry, job) {
        if e.deliveries < policy.attempts {
            let delay = policy.delay(e.deliveries);
            let mut effects = finish(s, ns, worker, &held, Some(Ended::Retried { delay_ms: delay }))?;
            effects.extend(give_back(s, ns, worker, e, payload, delay)?);
            effects.push(plan_count(s, ns.stat(b"failed"), 0)?);
            effects.push(plan_count(s, ns.worker_stat(b"failed", worker), 0)?);
            effects.extend(counted);
            s.note(Event::Retried);
            return Ok(Plan { effects, reply: fail_reply(retry, Some(delay)) });
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
    effects.extend(finish(s, ns, worker, &held, Some(Ended::Failed))?);
    effects.push(plan_count(s, ns.stat(b"failed"), 0)?);
    effects.push(plan_count(s, ns.worker_stat(b"failed", worker), 0)?);
    effects.extend(counted);
    Ok(Plan { effects, reply: fail_reply(retry, None) })
}

/// `OK` without a retry policy; with one `[retry, delay-ms]` when the job
/// was filed to run again, else `[failed, 0]`.
fn fail_reply(retry: Option<&Retry>, retried: Option<u64>) -> Reply {
    match (retry, retried) {
        (None, _) => Reply::Ok,
        (Some(_), Some(delay)) => {
            Reply::Array(vec![Reply::Bulk(b"retry".to_vec()), Reply::Int(i64::try_from(delay).unwrap_or(i64::MAX))])
        }
        (Some(_), None) => Reply::Array(vec![Reply::Bulk(b"failed".to_vec()), Reply::Int(0)]),
    }
}

/// `TQ.NACK`: the worker gives its job back unfinished (it is stopping, or
/// cannot run it now): at the head of its queue, or after `delay_ms` as a
/// delayed job. Nothing is counted; the delivery count is kept.
pub fn nack(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], delivery: u64, delay_ms: u64) -> Result<Plan> {
    if delay_ms > time::MAX_TIME_MS {
        return Err(TqError::arg("delay is out of range"));
    }
    let held = match report_target(s, ns, worker, delivery)? {
        Target::Held(held) => held,
        Target::Ended(Ended::Nacked) => return Ok(Plan::new(Reply::Ok)),
        Target::Ended(how) => return Err(ended_otherwise(worker, delivery, how)),
        Target::TakenAfter(..) => return Err(ended_otherwise(worker, delivery, Ended::Acked)),
    };
    let mut effects = finish(s, ns, worker, &held, Some(Ended::Nacked))?;
    if let Some(payload) = record_payload(s, ns, worker, &held.entry)? {
        effects.extend(give_back(s, ns, worker, &held.entry, &payload, delay_ms)?);
    }
    s.note(Event::Nacked);
    Ok(Plan { effects, reply: Reply::Ok })
}

/// Puts a job back to be delivered again: at the head of its queue (or
/// mailbox) now, or filed under the delayed bucket of now + `delay_ms` (the
/// next free second when that bucket already holds the same payload). Its
/// delivery count is kept for the next pop (in `<ns>:tq:deliveries` while
/// the job waits).
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
    entry: InFlight,
    /// The entry's stored length.
    stored: usize,
}

impl Held {
    /// How long the job has run.
    fn run_ms(&self, now: u64) -> u64 {
        now.saturating_sub(self.entry.popped_ms)
    }
}

impl InFlight {
    /// The job's count in the metrics, ended now.
    fn ended_job(&self, outcome: Outcome, run_ms: u64) -> metrics::Ended<'_> {
        metrics::Ended { queue: &self.queue, class: &self.class, outcome, run_ms, wait_ms: self.wait_ms }
    }
}

/// What a report about one delivery finds.
enum Target {
    /// The worker holds that delivery.
    Held(Held),
    /// That delivery already ended, this way (its tombstone says so).
    Ended(Ended),
    /// That delivery was completed by the `POP ... ACK` that took the job
    /// the worker holds now.
    TakenAfter(InFlight, usize),
}

/// The delivery a report names, as the worker's entry knows it. A report
/// about anything else is refused: no entry (`NoJob`), the lease of that
/// delivery lost (`LeaseLost`), the worker unregistered from `<ns>:workers`
/// since its pop (node-resque's `cleanOldWorkers` moved the job to `failed`:
/// completing it again would count it twice), or another delivery.
fn report_target(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], delivery: u64) -> Result<Target> {
    check_name("worker", worker)?;
    let index = ns.inflight(worker);
    let decoded = s.get_with(&index, InFlight::decode_sized)?;
    let entry = decoded.ok_or_else(|| TqError::NoJob { worker: worker.to_vec(), cleaned: false })?;
    let (entry, stored) = entry.ok_or_else(|| TqError::Corrupt {
        key: index.clone(),
        what: "not a tq in-flight entry (the worker's next pop replaces it)".to_string(),
    })?;
    if entry.delivery != delivery {
        if entry.live() && entry.after == delivery && delivery != 0 {
            return Ok(Target::TakenAfter(entry, stored));
        }
        return Err(TqError::Delivery {
            worker: worker.to_vec(),
            delivery,
            holds: entry.live().then_some(entry.delivery),
        });
    }
    match entry.ended {
        Some(Ended::LeaseLost) => Err(TqError::LeaseLost { worker: worker.to_vec(), at_ms: entry.lease_until_ms }),
        Some(how) => Ok(Target::Ended(how)),
        None => {
            if !s.set_contains(&ns.workers(), &keys::worker_entry(worker, &entry.queues))? {
                return Err(TqError::NoJob { worker: worker.to_vec(), cleaned: true });
            }
            Ok(Target::Held(Held { index, entry, stored }))
        }
    }
}

/// A report of one kind about a delivery that ended another way.
fn ended_otherwise(worker: &[u8], delivery: u64, how: Ended) -> TqError {
    let how = match how {
        Ended::LeaseLost => "its lease ran out",
        Ended::Acked => "it was acknowledged",
        Ended::Failed => "it failed",
        Ended::Retried { .. } => "it failed and was filed to run again",
        Ended::Nacked => "it was given back",
    };
    TqError::Ended { worker: worker.to_vec(), delivery, how }
}

/// How long a tombstone (an ended delivery) stays readable.
const TOMBSTONE_MS: u64 = 24 * 3600 * 1000;

/// The effects that end a job in flight, whatever the outcome: record
/// removed, lease dropped, its own JobLock released, and the entry turned
/// into a tombstone saying how it ended (`how`; None when the caller writes
/// the entry).
fn finish(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], held: &Held, how: Option<Ended>) -> Result<Vec<Effect>> {
    let e = &held.entry;
    let mut done = vec![ns.worker_record(worker, &e.queues)];
    let mut effects = Vec::with_capacity(12);
    done.extend(own_joblock(s, ns, e)?);
    if e.delivery == 0 && e.deliveries > 1 {
        // Taken before delivery ids: its count stayed in the hash.
        if let Some(payload) = record_payload(s, ns, worker, e)? {
            effects.push(Effect::HDel { key: ns.deliveries(), field: payload });
        }
    }
    effects.push(Effect::Del { keys: done });
    if let Some(how) = how {
        effects.push(tombstone(s, held.index.clone(), e, held.stored, how));
    }
    effects.push(Effect::ZRem { key: ns.leases(), member: worker.to_vec() });
    Ok(effects)
}

/// `stored`: the length of the entry the tombstone replaces.
fn tombstone(s: &impl Store, index: Vec<u8>, e: &InFlight, stored: usize, how: Ended) -> Effect {
    let ended = InFlight { ended: Some(how), joblock: None, class: Vec::new(), wait_ms: None, ..e.clone() };
    Effect::SetPxAt { key: index, value: ended.encode_over(stored), at_ms: s.now_ms().saturating_add(TOMBSTONE_MS) }
}

fn record_payload(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], e: &InFlight) -> Result<Option<Vec<u8>>> {
    let record = s.get(&ns.worker_record(worker, &e.queues))?;
    Ok(record.and_then(|r| records::record_payload(&r).and_then(|span| r.get(span).map(<[u8]>::to_vec))))
}

/// The job's running-job lock, if this job still holds it (same value).
/// The entry is data anyone with write access to the namespace can forge,
/// so a key outside the namespace's JobLocks is never touched.
fn own_joblock(s: &mut impl Store, ns: &Ns<'_>, e: &InFlight) -> Result<Option<Vec<u8>>> {
    let Some((key, value)) = &e.joblock else { return Ok(None) };
    if !ns.is_job_lock(key) {
        return Ok(None);
    }
    Ok((s.kind(key)? == Kind::String && s.get(key)?.as_ref() == Some(value)).then(|| key.clone()))
}

/// `TQ.HEARTBEAT`: the worker is alive for `ms` more; with `delivery`, the
/// job of that delivery gets its lease extended to `ms` from now (and only
/// that one: a process that took over a worker name cannot keep alive a job
/// it never saw). Also refreshes node-resque's `<ns>:worker:ping:<worker>`,
/// so node-resque's scheduler does not take a live tq worker for a stuck
/// one. Replies the lease left in ms (0 without a delivery).
pub fn heartbeat(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], ms: u64, delivery: Option<u64>) -> Result<Plan> {
    heartbeat_with(s, ns, worker, ms, delivery, true)
}

/// `heartbeat`; `alive` false (NOBROADCAST) leaves `<ns>:tq:alive` alone, so
/// broadcasts do not reach this worker: one slot of a process takes them for
/// the whole process.
pub fn heartbeat_with(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    ms: u64,
    delivery: Option<u64>,
    alive: bool,
) -> Result<Plan> {
    check_name("worker", worker)?;
    let ms = lock::check_ttl(ms)?;
    let now = s.now_ms();
    let until = now.saturating_add(ms);
    let score = i64::try_from(until).unwrap_or(i64::MAX);
    s.expect_kind(&ns.alive(), Kind::Zset)?;
    s.expect_kind(&ns.leases(), Kind::Zset)?;
    let mut effects = Vec::new();
    let mut reply = 0;
    let queues = match delivery {
        Some(d) => match report_target(s, ns, worker, d)? {
            Target::Held(mut held) => {
                effects.extend(renew(s, ns, worker, &mut held.entry, held.stored, until)?);
                reply = i64::try_from(ms).unwrap_or(i64::MAX);
                held.entry.queues
            }
            Target::Ended(how) => return Err(ended_otherwise(worker, d, how)),
            Target::TakenAfter(..) => return Err(ended_otherwise(worker, d, Ended::Acked)),
        },
        None => s
            .get(&ns.inflight(worker))?
            .and_then(|raw| InFlight::decode(&raw))
            .filter(InFlight::live)
            .map(|e| e.queues)
            .unwrap_or_default(),
    };
    let mut ping = b"{\"time\":".to_vec();
    crate::json::write_int(i64::try_from(time::bucket_of(now)).unwrap_or(0), &mut ping);
    ping.extend_from_slice(b",\"name\":");
    crate::json::write_string(worker, &mut ping);
    ping.extend_from_slice(b",\"queues\":");
    crate::json::write_string(&queues, &mut ping);
    ping.push(b'}');
    effects.push(Effect::Set { key: ns.ping(worker), value: ping });
    if alive {
        effects.push(Effect::ZAdd { key: ns.alive(), score, member: worker.to_vec() });
    }
    Ok(Plan { effects, reply: Reply::Int(reply) })
}

/// The writes that move a live job's lease to `until`: its entry, the
/// leases zset, and its JobLock (a periodic task's, or JOBLOCK's), which
/// must not run out while the job is held or another instance would start.
fn renew(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    e: &mut InFlight,
    stored: usize,
    until: u64,
) -> Result<Vec<Effect>> {
    s.expect_kind(&ns.leases(), Kind::Zset)?;
    let mut effects = Vec::new();
    e.lease_until_ms = until;
    if let Some(key) = own_joblock(s, ns, e)? {
        if s.expire_at(&key)?.is_some_and(|at| at < until) {
            effects.push(Effect::PExpireAt { key, at_ms: until });
        }
    }
    effects.push(Effect::Set { key: ns.inflight(worker), value: e.encode_over(stored) });
    effects.push(Effect::ZAdd {
        key: ns.leases(),
        score: i64::try_from(until).unwrap_or(i64::MAX),
        member: worker.to_vec(),
    });
    Ok(effects)
}

/// Gives back jobs whose lease ran out (at most `limit`): each goes back to
/// the head of its queue, or to `failed` once it was delivered
/// `max_deliveries` times (or when it cannot go back: its queue holds
/// another type, its record is gone); the worker is left a tombstone.
/// Replies how many leases expired.
pub fn expire_leases(s: &mut impl Store, ns: &Ns<'_>, max_deliveries: u32, limit: usize) -> Result<Plan> {
    let now = s.now_ms();
    let leases = ns.leases();
    let expired = s.zset_range(&leases, f64::NEG_INFINITY, now as f64, limit)?;
    let mut plan = Plan::new(Reply::Int(0));
    let mut count = 0;
    let mut failures = 0;
    // Open tallies of workers whose job failed for good, due now: written
    // at the end, each record once.
    let mut due: Vec<OpenTally> = Vec::new();
    for (worker, _) in expired {
        plan.effects.push(Effect::ZRem { key: leases.clone(), member: worker.clone() });
        let index = ns.inflight(&worker);
        let Some(raw) = s.get(&index)? else { continue };
        let Some(mut e) = InFlight::decode(&raw) else {
            // Nothing can be said of the job but that it is lost: file that
            // in failed rather than drop it in silence.
            count += 1;
            let why = format!(
                "lease expired; the in-flight entry '{}' could not be read, so the job is unknown",
                crate::error::show(&index)
            );
            plan.effects.push(lost_record(s, ns, &worker, b"", FailedPayload::Null, &why)?);
            plan.effects.push(plan_incr(s, ns.stat(b"failed"), failures)?);
            failures += 1;
            plan.effects.push(Effect::Del { keys: vec![index] });
            s.note(Event::LeaseExpired { requeued: false });
            continue;
        };
        if !e.live() {
            continue;
        }
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
        let record = s.get(&record_key)?;
        let payload = record.as_ref().and_then(|r| records::record_payload(r).and_then(|span| r.get(span)));
        let back = match payload {
            Some(p) if e.deliveries < max_deliveries => match give_back(s, ns, &worker, &e, p, 0) {
                Ok(effects) => Ok(effects),
                Err(err) => Err(format!("lease expired and the job could not go back: {}", err.reply_text())),
            },
            Some(_) => Err(format!("lease expired; the job was delivered {} times without completion", e.deliveries)),
            None => Err(format!(
                "lease expired; the in-flight record '{}' is {}",
                crate::error::show(&record_key),
                if record.is_some() { "unreadable" } else { "missing" }
            )),
        };
        match back {
            Ok(effects) => {
                plan.effects.extend(effects);
                s.note(Event::LeaseExpired { requeued: true });
            }
            Err(why) => {
                let shown = match (payload, &record) {
                    (Some(p), _) => FailedPayload::Json(p),
                    (None, Some(r)) => FailedPayload::Text(r),
                    (None, None) => FailedPayload::Null,
                };
                plan.effects.push(lost_record(s, ns, &worker, &e.queue, shown, &why)?);
                plan.effects.push(plan_incr(s, ns.stat(b"failed"), failures)?);
                failures += 1;
                s.note(Event::LeaseExpired { requeued: false });
                let run_ms = now.saturating_sub(e.popped_ms);
                due.extend(count_into(s, ns, &worker, &mut e, Outcome::Failed, run_ms, &mut plan.effects)?);
                if e.delivery == 0 && e.deliveries > 1 {
                    if let Some(p) = payload {
                        plan.effects.push(Effect::HDel { key: ns.deliveries(), field: p.to_vec() });
                    }
                }
            }
        }
        let mut done = vec![record_key];
        done.extend(own_joblock(s, ns, &e)?);
        plan.effects.push(Effect::Del { keys: done });
        plan.effects.push(tombstone(s, index, &e, raw.len(), Ended::LeaseLost));
    }
    plan.effects.extend(metrics::flush_all(s, ns, due)?);
    plan.reply = Reply::Int(count);
    Ok(plan)
}

/// The failure record of a job whose lease ran out for good.
fn lost_record(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    queue: &[u8],
    payload: FailedPayload<'_>,
    why: &str,
) -> Result<Effect> {
    let failed = ns.failed();
    s.expect_kind(&failed, Kind::List)?;
    Ok(Effect::RPush {
        key: failed,
        value: records::failure_record(&Failure {
            worker,
            queue,
            payload,
            exception: LEASE_EXCEPTION.as_bytes(),
            error: why.as_bytes(),
            backtrace: b"[]",
            now_ms: s.now_ms(),
        }),
    })
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

mod busy;
pub use busy::busy_pop_ack;

#[cfg(test)]
pub(crate) mod tests;
