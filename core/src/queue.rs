//! The queue side of the state machine: enqueue, delayed enqueue and
//! promotion, each planned as one atomic step over a [`Store`]. Taking and
//! completing jobs is in [`crate::work`].

use crate::error::{Result, TqError};
use crate::json::Value;
use crate::keys::{self, check_name, Ns};
use crate::lock;
use crate::metrics::Clocks;
use crate::packed::Packed;
use crate::records::{self, FailedPayload, Failure};
use crate::stats::Event;
use crate::store::{parse_i64, plan_incr, wrong_type, Effect, Kind, Plan, Reply, Store};
use crate::time;

/// Default and largest `LIMIT` of one `TQ.PROMOTE`: one call stays short
/// however large the backlog; the rest waits for the next call.
pub const PROMOTE_DEFAULT_LIMIT: u64 = 1000;
pub const PROMOTE_MAX_LIMIT: u64 = 100_000;
/// Due buckets with no list behind them (left by node-resque's `delDelayed`)
/// that one promotion may clean up besides its limit of jobs.
const ORPHAN_BUCKETS_PER_CALL: usize = 1000;
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
    let payload = records::encode(queue, class, args)?;
    let qkey = ns.queue(queue);
    if unique.is_none() {
        // Surely pushed to (with UNIQUE the lock may refuse the job).
        s.will_write(&qkey)?;
    }
    let len = s.list_len(&qkey)?;
    // Not `will_write`: the queue is usually registered already, and a key
    // opened for writing counts as modified (WATCH, client tracking).
    let queues = ns.queues();
    s.expect_kind(&queues, Kind::Set)?;
    let mut effects = Vec::with_capacity(3);
    if let Some(ttl) = unique {
        let ttl = lock::check_ttl(ttl)?;
        let key = ns.queue_lock(class, queue, &crate::json::to_vec(&records::args_value(args)?));
        let now = s.now_ms();
        if let Some(deadline) = s.get(&key)?.and_then(|v| parse_i64(&v)) {
            if now_secs(now) <= deadline {
                return Ok(Plan::new(Reply::Nil));
            }
        }
        effects.push(Effect::SetPxAt { key, value: lock_deadline(now, ttl), at_ms: now.saturating_add(ttl) });
    }
    effects.push(Effect::SAdd { key: queues, member: queue.to_vec() });
    let mut clocks = Clocks::default();
    let now = s.now_ms();
    clocks.pushed(s, ns, (queue, Some(len)), (&payload, 1), now)?;
    effects.push(Effect::RPush { key: qkey, value: payload });
    effects.extend(clocks.effects(s, ns)?);
    s.note(Event::Enqueued);
    Ok(Plan { effects, reply: Reply::Int(i64::try_from(len).unwrap_or(i64::MAX).saturating_add(1)) })
}

/// `TQ.ENQUEUE ... NOTDELAYED`: node-resque's DelayQueueLock, atomic. While
/// `<ns>:timestamps:<payload>` exists (the same job waits in a delayed
/// bucket) the reply is nil and nothing is written; otherwise [`enqueue`].
pub fn enqueue_not_delayed(
    s: &mut impl Store,
    ns: &Ns<'_>,
    queue: &[u8],
    class: &[u8],
    args: Option<&[u8]>,
    unique: Option<u64>,
) -> Result<Plan> {
    check_queue(queue)?;
    check_name("class", class)?;
    let tkey = ns.timestamps(&records::encode(queue, class, args)?);
    match s.kind(&tkey)? {
        Kind::None => enqueue(s, ns, queue, class, args, unique),
        Kind::Set => Ok(Plan::new(Reply::Nil)),
        found => Err(wrong_type(&tkey, found, Kind::Set)),
    }
}

/// node-resque's clock for lock values: `Math.round(Date.now() / 1000)`.
fn now_secs(now_ms: u64) -> i64 {
    i64::try_from(time::bucket_of(now_ms)).unwrap_or(i64::MAX)
}

/// The value node-resque's QueueLock/JobLock store: the unix second after
/// which the lock is stale (`now + lockTimeout + 1`).
pub(crate) fn lock_deadline(now_ms: u64, ttl_ms: u64) -> Vec<u8> {
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
    s.note(Event::Delayed);
    let exact = exact_time(s, ns, (&bname, bucket), &dkey, &payload, at_ms)?;
    let mut effects = vec![
        Effect::RPush { key: dkey, value: payload },
        Effect::SAdd { key: tkey, member: marker },
        Effect::ZAdd { key: schedule, score: i64::try_from(bucket).unwrap_or(i64::MAX), member: bname },
    ];
    effects.extend(exact);
    Ok(Plan { effects, reply: Reply::Int(i64::try_from(bucket).unwrap_or(i64::MAX)) })
}

/// How long an exact due time outlives its job at most (a job removed by a
/// client that does not know of them leaves its entry behind).
const EXACT_KEEP_MS: u64 = 24 * 3600 * 1000;

/// node-resque files a job for time T under the bucket `round(T / 1000)`,
/// whose second starts up to 500 ms before or after T. A job tq files is
/// promoted at T, never before and not a bucket late: its exact time is
/// kept beside the bucket (`<ns>:tq:at`), and the bucket is due at the
/// earliest exact time of what tq filed in it (`<ns>:tq:due`). A bucket
/// that already held jobs of other writers (due at the bucket's second)
/// stays due by then at the latest.
fn exact_time(
    s: &mut impl Store,
    ns: &Ns<'_>,
    (bname, bucket): (&[u8], u64),
    dkey: &[u8],
    payload: &[u8],
    at_ms: u64,
) -> Result<Vec<Effect>> {
    let (at, due) = (ns.exact_due(), ns.bucket_due());
    s.expect_kind(&at, Kind::Hash)?;
    s.expect_kind(&due, Kind::Zset)?;
    let existing = s.zset_score(&due, bname)?.map(|t| t.max(0.0) as u64);
    let bucket_ms = bucket.saturating_mul(1000);
    if at_ms == bucket_ms || at_ms.max(bucket_ms) <= s.now_ms() {
        // Due at its bucket's second, or now either way: nothing to keep (a
        // bucket held for later jobs is due by then).
        return Ok(match existing {
            Some(e) if e > at_ms => {
                vec![Effect::ZAdd { key: due, score: i64::try_from(at_ms).unwrap_or(i64::MAX), member: bname.to_vec() }]
            }
            _ => Vec::new(),
        });
    }
    // Jobs filed before by other writers are due at the bucket's second.
    let others = match existing {
        None if s.list_len(dkey)? > 0 => Some(bucket_ms),
        _ => None,
    };
    let when = [existing, others, Some(at_ms)].into_iter().flatten().min().unwrap_or(at_ms);
    let mut effects = vec![Effect::HSet {
        key: at.clone(),
        field: exact_field(bname, payload),
        value: at_ms.to_string().into_bytes(),
    }];
    let keep = at_ms.saturating_add(EXACT_KEEP_MS);
    if s.expire_at(&at)?.is_none_or(|t| t < keep) {
        effects.push(Effect::PExpireAt { key: at, at_ms: keep });
    }
    if existing != Some(when) {
        effects.push(Effect::ZAdd { key: due, score: i64::try_from(when).unwrap_or(i64::MAX), member: bname.to_vec() });
    }
    Ok(effects)
}

/// The field of a job's exact due time: `<bucket>:<128-bit digest of the
/// payload>` (a payload appears at most once per bucket; the digest keeps
/// the field small whatever the payload's size).
pub fn exact_field(bname: &[u8], payload: &[u8]) -> Vec<u8> {
    use std::hash::Hasher;
    let mut h = siphasher::sip128::SipHasher13::new_with_keys(0x7471_2d61_7473, 0x6578_6163_7464_7565);
    h.write(payload);
    let digest = siphasher::sip128::Hasher128::finish128(&h).as_u128();
    let mut f = Vec::with_capacity(bname.len() + 33);
    f.extend_from_slice(bname);
    f.push(b':');
    // `{digest:032x}` without the formatter: this runs for every job a
    // promotion moves out of a bucket tq keeps exact times for.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..32).rev() {
        f.push(HEX.get(((digest >> (i * 4)) & 0xf) as usize).copied().unwrap_or(b'0'));
    }
    f
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
    promote_reporting(s, ns, limit).map(|(plan, _)| plan)
}

/// The exception of a failure record for a job whose queue key holds
/// another type: it cannot be pushed there, and must not hold up the rest.
pub const WRONG_TYPE_EXCEPTION: &str = "TQ::WrongType";

/// `promote`, also telling why each job it moved to `failed` could not run
/// (for the timer's log).
pub fn promote_reporting(s: &mut impl Store, ns: &Ns<'_>, limit: u64) -> Result<(Plan, Vec<String>)> {
    let now = s.now_ms();
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let schedule = ns.delayed_schedule();
    let (at_key, due_key) = (ns.exact_due(), ns.bucket_due());
    let exact = s.kind(&at_key)? == Kind::Hash;
    let timed = s.kind(&due_key)? == Kind::Zset;
    let mut plan = Plan::new(Reply::Int(0));
    // A bucket is due once its second starts (bucket * 1000 <= now), or, if
    // tq filed jobs in it, at the earliest of their exact times, which can be
    // up to half a second before its second.
    let horizon = if timed { now.saturating_add(500) / 1000 } else { now / 1000 };
    let mut due = DueBuckets::new(schedule.clone(), horizon as f64, limit.saturating_add(ORPHAN_BUCKETS_PER_CALL));
    let mut budget = limit;
    let mut moved: i64 = 0;
    let mut failed = Failures::default();
    let mut problems = Vec::new();
    // Target queues found holding another type: their jobs go to failed.
    let mut wrong: Vec<(Vec<u8>, String)> = Vec::new();
    let queues = ns.queues();
    let marker_prefix = ns.timestamps_prefix();
    let mut clocks = Clocks::default();
    while budget > 0 {
        let Some((bname, score)) = due.next(s)? else { break };
        let moved_before = moved;
        let bucket_ms = (score.max(0.0) as u64).saturating_mul(1000);
        let tq_due = if timed { s.zset_score(&due_key, &bname)?.map(|t| t.max(0.0) as u64) } else { None };
        let due_ms = tq_due.unwrap_or(bucket_ms);
        if due_ms > now {
            continue;
        }
        let bkey = ns.delayed(&bname);
        let len = s.list_len(&bkey)?;
        let take = len.min(budget);
        let marker = keys::delayed_marker(&bname);
        // One bucket's jobs move as a batch: one LPOP of `take` from the
        // bucket, one RPUSH per target queue (FIFO kept), and the markers
        // removed (one DEL for those that only held this bucket): a handful
        // of replicated commands for up to `limit` jobs.
        let mut pushes: Vec<(Vec<u8>, Packed)> = Vec::new();
        let mut failures = Plan::new(Reply::Nil);
        // Jobs whose exact time has not come stay, in order, at the head.
        let mut held: Vec<Vec<u8>> = Vec::new();
        let mut done_exact: Vec<Vec<u8>> = Vec::new();
        let mut held_until = u64::MAX;
        // One range read for the batch (element by element, each read costs
        // as much as the job's whole move).
        let payloads = match take {
            0 => Packed::new(),
            n => {
                s.list_range_to_move(&bkey, 0, i64::try_from(n).unwrap_or(i64::MAX) - 1, u64::try_from(n).unwrap_or(0))?
            }
        };
        if payloads.len() != take {
            return Err(TqError::Internal("delayed bucket shorter than its length".into()));
        }
        let mut markers = Packed::with_capacity(
            take,
            payloads.total_bytes().saturating_add(take.saturating_mul(marker_prefix.len())),
        );
        for payload in &payloads {
            // Its exact time if tq filed it, else its bucket's second.
            let field = exact.then(|| exact_field(&bname, payload));
            let exact_ms = match &field {
                Some(f) => s.hash_get(&at_key, f)?.and_then(|v| parse_i64(&v)).and_then(|t| u64::try_from(t).ok()),
                None => None,
            };
            let job_due = exact_ms.unwrap_or(bucket_ms);
            if job_due > now {
                held_until = held_until.min(job_due);
                held.push(payload.to_vec());
                continue;
            }
            if let (Some(f), Some(_)) = (field, exact_ms) {
                done_exact.push(f);
            }
            markers.push_parts(&[&marker_prefix, payload]);
            match records::inspect_payload(payload).and_then(|info| match info.queue {
                // A name this step already pushed to was checked then.
                Some(q) if pushes.iter().any(|(name, _)| name.as_slice() == &*q) || check_queue(&q).is_ok() => Ok(q),
                Some(_) => Err("payload \"queue\" is not a valid queue name".to_string()),
                None => Err("payload has no \"queue\"".to_string()),
            }) {
                Ok(q) => {
                    let group = match pushes.iter().position(|(name, _)| name.as_slice() == &*q) {
                        Some(i) => Some(i),
                        None if wrong.iter().any(|(name, _)| name.as_slice() == &*q) => None,
                        None => {
                            let qkey = ns.queue(&q);
                            match s.kind(&qkey)? {
                                Kind::None | Kind::List => {
                                    // Room for the whole batch in the first
                                    // queue's list: most buckets feed one.
                                    let values = match pushes.is_empty() {
                                        true => Packed::with_capacity(take, payloads.total_bytes()),
                                        false => Packed::new(),
                                    };
                                    pushes.push((q.clone().into_owned(), values));
                                    Some(pushes.len() - 1)
                                }
                                k => {
                                    wrong.push((q.clone().into_owned(), wrong_type(&qkey, k, Kind::List).reply_text()));
                                    None
                                }
                            }
                        }
                    };
                    match group {
                        Some(group) => {
                            if let Some((_, values)) = pushes.get_mut(group) {
                                values.push(payload);
                            }
                            moved += 1;
                        }
                        None => {
                            let why = wrong
                                .iter()
                                .find(|(name, _)| name.as_slice() == &*q)
                                .map_or_else(String::new, |(_, why)| why.clone());
                            failed.add_as(s, ns, &mut failures, (PROMOTER, &q), payload, WRONG_TYPE_EXCEPTION, &why)?;
                            problems
                                .push(format!("a job for queue '{}' moved to failed: {why}", crate::error::show(&q)));
                        }
                    }
                }
                Err(why) => {
                    failed.add(s, ns, &mut failures, PROMOTER, b"", payload, &why)?;
                    problems.push(format!("a job moved to failed: {why}"));
                }
            }
        }
        if take > 0 {
            plan.effects.push(Effect::LPopN { key: bkey.clone(), count: take });
        }
        for payload in held.iter().rev() {
            plan.effects.push(Effect::LPush { key: bkey.clone(), value: payload.clone() });
        }
        if !done_exact.is_empty() {
            plan.effects.push(Effect::HDelMany { key: at_key.clone(), fields: done_exact });
        }
        if !markers.is_empty() {
            plan.effects.push(Effect::RemoveMarkers { keys: markers, member: marker });
        }
        if !pushes.is_empty() {
            s.expect_kind(&queues, Kind::Set)?;
        }
        for (q, values) in pushes {
            let qkey = ns.queue(&q);
            s.expect_kind(&qkey, Kind::List)?;
            // Dated by the bucket's due time: the wait counts from there.
            let first = values.first().unwrap_or_default();
            clocks.pushed(s, ns, (&q, None), (first, u64::try_from(values.len()).unwrap_or(u64::MAX)), due_ms)?;
            plan.effects.push(Effect::SAdd { key: queues.clone(), member: q });
            plan.effects.push(Effect::RPushMany { key: qkey, values });
        }
        plan.effects.extend(failures.effects);
        budget -= take;
        if moved > moved_before {
            s.note(Event::Promoted {
                jobs: u64::try_from(moved - moved_before).unwrap_or(0),
                lateness_ms: now.saturating_sub(due_ms),
            });
        }
        if !held.is_empty() {
            // Due again at the earliest held job (now, when the budget left
            // jobs behind it unread).
            let again = if take < len { now } else { held_until };
            plan.effects.push(Effect::ZAdd {
                key: due_key.clone(),
                score: i64::try_from(again).unwrap_or(i64::MAX),
                member: bname,
            });
        } else if take == len {
            plan.effects.push(Effect::ZRem { key: schedule.clone(), member: bname.clone() });
            if tq_due.is_some() {
                plan.effects.push(Effect::ZRem { key: due_key.clone(), member: bname });
            }
        }
    }
    if timed && budget > 0 {
        // Due times of buckets gone (promoted or removed by another client)
        // leave nothing to wait for. Looked for once the due buckets are
        // done: in a backlog every due time read here is a bucket still
        // waiting, and reading a thousand of them per call cost more than
        // the promotion itself. (A bucket this call empties is still there
        // as the plan is made: its due time goes with it, above.)
        for (bname, _) in s.zset_range(&due_key, f64::NEG_INFINITY, now as f64, ORPHAN_BUCKETS_PER_CALL)? {
            if s.list_len(&ns.delayed(&bname))? == 0 {
                plan.effects.push(Effect::ZRem { key: due_key.clone(), member: bname });
            }
        }
    }
    plan.effects.extend(clocks.effects(s, ns)?);
    plan.reply = Reply::Int(moved);
    Ok((plan, problems))
}

/// The schedule's due buckets, read a few at a time as promotion needs
/// them: a promotion of `limit` jobs out of big buckets uses one or two of
/// them, and reading every due bucket up front (thousands, in a backlog)
/// cost more than the jobs' moves.
struct DueBuckets {
    key: Vec<u8>,
    horizon: f64,
    /// How many buckets may be read in all.
    cap: usize,
    read: usize,
    ahead: std::vec::IntoIter<(Vec<u8>, f64)>,
    done: bool,
}

impl DueBuckets {
    /// Buckets read by the first look; each next look reads three times
    /// what was read before (so a long schedule costs a few reads).
    const FIRST: usize = 16;

    fn new(key: Vec<u8>, horizon: f64, cap: usize) -> Self {
        DueBuckets { key, horizon, cap, read: 0, ahead: Vec::new().into_iter(), done: false }
    }

    /// The next due bucket and its score. The schedule is not written while
    /// a plan is made, so the next piece starts where the last one ended.
    fn next(&mut self, s: &mut impl Store) -> Result<Option<(Vec<u8>, f64)>> {
        if let Some(b) = self.ahead.next() {
            return Ok(Some(b));
        }
        if self.done || self.read >= self.cap {
            return Ok(None);
        }
        let want = self.read.saturating_mul(3).max(Self::FIRST).min(self.cap.saturating_sub(self.read));
        let piece = s.zset_range_from(&self.key, f64::NEG_INFINITY, self.horizon, self.read, want)?;
        self.done = piece.len() < want;
        self.read += piece.len();
        self.ahead = piece.into_iter();
        Ok(self.ahead.next())
    }
}

pub(crate) fn check_queue(queue: &[u8]) -> Result<()> {
    check_name("queue", queue)?;
    if queue == b"*" {
        return Err(TqError::arg("'*' is not a queue name (it means every queue in TQ.POP)"));
    }
    Ok(())
}

/// Sort key giving JavaScript's default `Array.prototype.sort` order.
pub(crate) fn utf16_units(s: &[u8]) -> Vec<u16> {
    String::from_utf8_lossy(s).encode_utf16().collect()
}

/// Moves payloads that cannot run to `failed`, counting each in
/// `stat:failed`, within one plan.
#[derive(Default)]
pub(crate) struct Failures {
    pub(crate) count: usize,
}

impl Failures {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add(
        &mut self,
        s: &mut impl Store,
        ns: &Ns<'_>,
        plan: &mut Plan,
        worker: &[u8],
        queue: &[u8],
        payload: &[u8],
        why: &str,
    ) -> Result<()> {
        self.add_as(s, ns, plan, (worker, queue), payload, records::CORRUPT_EXCEPTION, why)
    }

    /// `add` with another exception.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_as(
        &mut self,
        s: &mut impl Store,
        ns: &Ns<'_>,
        plan: &mut Plan,
        (worker, queue): (&[u8], &[u8]),
        payload: &[u8],
        exception: &str,
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
            exception: exception.as_bytes(),
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

/// When the next delayed bucket is due: the earliest of the buckets tq
/// keeps a due time for, and of the first bucket it does not (due at its
/// second).
pub fn next_bucket_due(s: &mut impl Store, ns: &Ns<'_>) -> Result<Option<u64>> {
    let due_key = ns.bucket_due();
    let timed = s.kind(&due_key)? == Kind::Zset;
    let earliest = if timed {
        s.zset_range(&due_key, f64::NEG_INFINITY, f64::INFINITY, 1)?.first().map(|(_, t)| t.max(0.0) as u64)
    } else {
        None
    };
    // Buckets are few ahead of the first one without a due time of tq's.
    let mut plain = None;
    for (bname, score) in s.zset_range(&ns.delayed_schedule(), f64::NEG_INFINITY, f64::INFINITY, 16)? {
        if !timed || s.zset_score(&due_key, &bname)?.is_none() {
            plain = Some((score.max(0.0) as u64).saturating_mul(1000));
            break;
        }
    }
    Ok([earliest, plain].into_iter().flatten().min())
}

/// The earliest time something of the namespace is due for the timer: a
/// delayed bucket (at bucket × 1000 ms) or a lease deadline. Periodic tasks
/// report theirs from `recur::run_due`.
pub fn next_due(s: &mut impl Store, ns: &Ns<'_>) -> Result<Option<u64>> {
    let lease = s.zset_range(&ns.leases(), f64::NEG_INFINITY, f64::INFINITY, 1)?;
    let b = next_bucket_due(s, ns)?;
    let l = lease.first().map(|(_, score)| score.max(0.0) as u64);
    Ok(match (b, l) {
        (Some(b), Some(l)) => Some(b.min(l)),
        (b, l) => b.or(l),
    })
}
