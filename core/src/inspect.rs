//! Inspection and management: node-resque's (and ActionHero's api.tasks)
//! Queue methods as exact, bounded, atomic steps. Times are unix
//! milliseconds in and out; long lists are paginated.

use std::borrow::Cow;

use crate::error::{show, Result, TqError};
use crate::json;
use crate::keys::{self, check_name, glob_escape, Ns};
use crate::metrics::{self, Clocks};
use crate::queue::check_queue;
use crate::records::{self, FailedPayload, Failure, InFlight};
use crate::store::{plan_incr, wrong_type, Effect, Kind, Plan, Reply, Store};
use crate::time;

/// Most items one reply lists (pages are asked for with offset/count).
pub const MAX_PAGE: u64 = 10_000;
/// Default page size.
pub const DEFAULT_PAGE: u64 = 1_000;
/// Most failed records one TQ.FAILRETRY/TQ.FAILREMOVE call looks at.
pub const MAX_FAILED_SCAN: u64 = 100_000;
/// The node-resque marker `retryStuckJobs` looks for (`backtrace[1]`).
const FORCE_CLEAN_MARK: &str = "queue#forceCleanWorker";
const FORCE_CLEAN_ERROR: &str = "Worker Timeout (killed manually)";
/// Stands for a failed record being removed, within one step (never a
/// JSON object, so never a record).
const REMOVED_MARK: &[u8] = b"tq:removed";

fn bulk(b: impl Into<Vec<u8>>) -> Reply {
    Reply::Bulk(b.into())
}

fn int(n: impl TryInto<i64>) -> Reply {
    Reply::Int(n.try_into().unwrap_or(i64::MAX))
}

fn ms_of_bucket(member: &[u8]) -> Option<u64> {
    std::str::from_utf8(member).ok()?.parse::<u64>().ok()?.checked_mul(1000)
}

/// The payload node-resque would write for (queue, class, args).
fn payload_of(queue: &[u8], class: &[u8], args: Option<&[u8]>) -> Result<Vec<u8>> {
    check_queue(queue)?;
    check_name("class", class)?;
    Ok(records::payload(queue, class, &records::args_value(args)?))
}

/// `TQ.SCHEDULEDAT <ns> <queue> <class> [<args-json>]`: when (unix ms, bucket
/// starts) this job is filed as a delayed job.
pub fn scheduled_at(s: &mut impl Store, ns: &Ns<'_>, queue: &[u8], class: &[u8], args: Option<&[u8]>) -> Result<Plan> {
    let payload = payload_of(queue, class, args)?;
    let mut times: Vec<u64> = s
        .set_members(&ns.timestamps(&payload))?
        .iter()
        .filter_map(|m| m.strip_prefix(b"delayed:").and_then(ms_of_bucket))
        .collect();
    times.sort_unstable();
    Ok(Plan::new(Reply::Array(times.into_iter().map(int).collect())))
}

/// `TQ.TIMESTAMPS <ns> [<offset> <count>]`: the delayed buckets (unix ms),
/// oldest first, from the schedule (no keyspace scan).
pub fn timestamps(s: &mut impl Store, ns: &Ns<'_>, offset: u64, count: u64) -> Result<Plan> {
    let buckets = bucket_page(s, ns, offset, count)?;
    Ok(Plan::new(Reply::Array(buckets.into_iter().map(|(_, ms)| int(ms)).collect())))
}

/// A page of the buckets that hold jobs. Buckets left empty in the schedule
/// (node-resque's `delDelayed` leaves them) are skipped, up to
/// `STALE_ALLOWANCE` of them per call.
fn bucket_page(s: &mut impl Store, ns: &Ns<'_>, offset: u64, count: u64) -> Result<Vec<(Vec<u8>, u64)>> {
    let want = offset.saturating_add(count.min(MAX_PAGE)).saturating_add(STALE_ALLOWANCE);
    let all = s.zset_range(
        &ns.delayed_schedule(),
        f64::NEG_INFINITY,
        f64::INFINITY,
        usize::try_from(want).unwrap_or(usize::MAX),
    )?;
    let mut page = Vec::new();
    let mut skipped = 0;
    for (m, _) in all {
        let Some(ms) = ms_of_bucket(&m) else { continue };
        if s.list_len(&ns.delayed(&m))? == 0 {
            continue;
        }
        if skipped < offset {
            skipped += 1;
            continue;
        }
        if page.len() as u64 >= count.min(MAX_PAGE) {
            break;
        }
        page.push((m, ms));
    }
    Ok(page)
}

/// Empty buckets one call steps over.
const STALE_ALLOWANCE: u64 = 1_000;

/// `TQ.DELAYEDAT <ns> <unix-ms> [<start> <stop>]`: the jobs filed under the
/// bucket of that time (`round(ms / 1000)`), LRANGE-style indices.
pub fn delayed_at(s: &mut impl Store, ns: &Ns<'_>, at_ms: u64, start: i64, stop: i64) -> Result<Plan> {
    let bucket = time::bucket_of(at_ms).to_string().into_bytes();
    let jobs = s.list_range(&ns.delayed(&bucket), start, stop, MAX_PAGE)?;
    Ok(Plan::new(Reply::Array(jobs.into_iter().map(bulk).collect())))
}

/// `TQ.ALLDELAYED <ns> [<offset> <count>]`: `[[ms, [job, ...]], ...]` for a
/// page of buckets (at most 1,000 jobs shown per bucket).
pub fn all_delayed(s: &mut impl Store, ns: &Ns<'_>, offset: u64, count: u64) -> Result<Plan> {
    let mut out = Vec::new();
    for (member, ms) in bucket_page(s, ns, offset, count.min(1000))? {
        let jobs = s.list_range(&ns.delayed(&member), 0, 999, 1000)?;
        out.push(Reply::Array(vec![int(ms), Reply::Array(jobs.into_iter().map(bulk).collect())]));
    }
    Ok(Plan::new(Reply::Array(out)))
}

/// `TQ.STATS <ns>`: node-resque's `stats()` without a SCAN: `processed`,
/// `failed`, and the per-worker counters of the workers registered in
/// `<ns>:workers`, as a flat list of name, value.
pub fn stats(s: &mut impl Store, ns: &Ns<'_>) -> Result<Plan> {
    let mut out = Vec::new();
    for name in [&b"processed"[..], b"failed"] {
        out.push(bulk(name));
        out.push(bulk(s.get(&ns.stat(name))?.unwrap_or_else(|| b"0".to_vec())));
    }
    let mut names: Vec<Vec<u8>> = Vec::new();
    for member in s.set_members(&ns.workers())? {
        if let Some(name) = worker_name(s, ns, &member)? {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    for name in names {
        for stat in [&b"processed"[..], b"failed"] {
            if let Some(v) = s.get(&ns.worker_stat(stat, &name))? {
                let mut label = stat.to_vec();
                label.push(b':');
                label.extend_from_slice(&name);
                out.push(bulk(label));
                out.push(bulk(v));
            }
        }
    }
    Ok(Plan::new(Reply::Array(out)))
}

/// The worker name of a `<ns>:workers` member (`<name>:<queues>`): from its
/// in-flight record when it has one, else node-resque's own reading (the
/// part before the last colon-separated queue list: `host:pid:queues`).
fn worker_name(s: &mut impl Store, ns: &Ns<'_>, member: &[u8]) -> Result<Option<Vec<u8>>> {
    if let Some(record) = record_of(s, ns, member)? {
        if let Some(w) = record_string(&record, b"worker") {
            return Ok(Some(w));
        }
    }
    Ok(split_member(member).map(|(name, _)| name.to_vec()))
}

/// node-resque's `workers()` parse of `a:b:rest`: name `a:b` (or `a` when
/// there is one colon), queues the rest.
fn split_member(member: &[u8]) -> Option<(&[u8], &[u8])> {
    let colons: Vec<usize> = member.iter().enumerate().filter(|(_, &c)| c == b':').map(|(i, _)| i).collect();
    let cut = match colons.as_slice() {
        [] => return None,
        [one] => *one,
        [_, second, ..] => *second,
    };
    Some((member.get(..cut)?, member.get(cut + 1..)?))
}

fn record_of(s: &mut impl Store, ns: &Ns<'_>, member: &[u8]) -> Result<Option<Vec<u8>>> {
    let key = ns.worker_member_record(member);
    match s.kind(&key)? {
        Kind::String => s.get(&key),
        Kind::None => Ok(None),
        k => Err(wrong_type(&key, k, Kind::String)),
    }
}

/// A top-level string member of a JSON object, decoded.
fn record_string(record: &[u8], name: &[u8]) -> Option<Vec<u8>> {
    let members = json::object_members(record).ok()?;
    json::decode_string(record.get(json::member(&members, name)?.clone())?).ok()
}

fn record_raw<'a>(record: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let members = json::object_members(record).ok()?;
    record.get(json::member(&members, name)?.clone())
}

/// `TQ.WORKERS <ns> [<offset> <count>]`: node-resque's `workers()` and
/// `allWorkingOn()` in one: `[[name, queues, record-or-nil], ...]`, sorted.
pub fn workers(s: &mut impl Store, ns: &Ns<'_>, offset: u64, count: u64) -> Result<Plan> {
    let mut members = s.set_members(&ns.workers())?;
    members.sort();
    let mut out = Vec::new();
    for member in members
        .into_iter()
        .skip(usize::try_from(offset).unwrap_or(usize::MAX))
        .take(usize::try_from(count.min(MAX_PAGE)).unwrap_or(0))
    {
        let record = record_of(s, ns, &member)?;
        let (name, queues) = match record.as_deref().and_then(|r| record_string(r, b"worker")) {
            Some(w) if member.starts_with(&w) && member.get(w.len()) == Some(&b':') => {
                let q = member.get(w.len() + 1..).unwrap_or_default().to_vec();
                (w, q)
            }
            _ => match split_member(&member) {
                Some((n, q)) => (n.to_vec(), q.to_vec()),
                None => (member.clone(), Vec::new()),
            },
        };
        out.push(Reply::Array(vec![bulk(name), bulk(queues), record.map_or(Reply::Nil, bulk)]));
    }
    Ok(Plan::new(Reply::Array(out)))
}

/// `TQ.FAILED <ns> [<offset> <count>]`: `[[id, record], ...]`. The id is a
/// hash of the record's bytes, so a record can be retried or removed without
/// re-serialising its JSON.
pub fn failed(s: &mut impl Store, ns: &Ns<'_>, offset: u64, count: u64) -> Result<Plan> {
    let start = i64::try_from(offset).unwrap_or(i64::MAX);
    let stop = start.saturating_add(i64::try_from(count.min(MAX_PAGE)).unwrap_or(0)).saturating_sub(1);
    let records = if count == 0 { Vec::new() } else { s.list_range(&ns.failed(), start, stop, MAX_PAGE)? };
    Ok(Plan::new(Reply::Array(records.into_iter().map(|r| Reply::Array(vec![bulk(failed_id(&r)), bulk(r)])).collect())))
}

/// A failed record's id: FNV-1a 64 of its bytes, as 16 hex digits.
pub fn failed_id(record: &[u8]) -> Vec<u8> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in record {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}").into_bytes()
}

/// Which failed records a TQ.FAILRETRY/TQ.FAILREMOVE touches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailedFilter {
    pub id: Option<Vec<u8>>,
    pub class: Option<Vec<u8>>,
    pub queue: Option<Vec<u8>>,
    pub exception: Option<Vec<u8>>,
}

impl FailedFilter {
    fn matches(&self, record: &[u8]) -> bool {
        if self.id.as_ref().is_some_and(|id| failed_id(record) != *id) {
            return false;
        }
        if self.queue.as_ref().is_some_and(|q| record_string(record, b"queue").as_ref() != Some(q)) {
            return false;
        }
        if self.exception.as_ref().is_some_and(|e| record_string(record, b"exception").as_ref() != Some(e)) {
            return false;
        }
        if let Some(class) = &self.class {
            let found = record_raw(record, b"payload").and_then(|p| record_string(p, b"class"));
            if found.as_ref() != Some(class) {
                return false;
            }
        }
        true
    }
}

/// `TQ.FAILRETRY` / `TQ.FAILREMOVE`: looks at up to `limit` failed records
/// from position `from`; each that matches is removed and (when `retry`)
/// its job enqueued again in its queue, encoded as node-resque's
/// `retryAndRemoveFailed` enqueues it (the same bytes for any job tq or
/// node-resque's Queue enqueued). Replies `[count, next]`: `next` is the
/// position to continue from, nil at the end. Records whose job cannot run
/// (not a JSON object with a class) are not retried (and not removed by a
/// retry).
pub fn failed_retry(
    s: &mut impl Store,
    ns: &Ns<'_>,
    filter: &FailedFilter,
    from: u64,
    limit: u64,
    retry: bool,
) -> Result<Plan> {
    let failed_key = ns.failed();
    let limit = limit.clamp(1, MAX_FAILED_SCAN);
    let start = i64::try_from(from).unwrap_or(i64::MAX);
    let stop = start.saturating_add(i64::try_from(limit).unwrap_or(0)).saturating_sub(1);
    let records = s.list_range(&failed_key, start, stop, MAX_FAILED_SCAN)?;
    let total = s.list_len(&failed_key)?;
    let queues = ns.queues();
    let mut plan = Plan::new(Reply::Nil);
    let mut done: u64 = 0;
    // Each removed record is overwritten in place with a marker, and one
    // LREM removes the markers: one pass over the list's head, where an LREM
    // per record would scan it once per record.
    let mut marked = Vec::new();
    let mut clocks = Clocks::default();
    for (i, record) in records.iter().enumerate() {
        if !filter.matches(record) {
            continue;
        }
        if retry {
            let Some(payload) = record_raw(record, b"payload") else { continue };
            let Ok(info) = records::inspect_payload(payload) else { continue };
            let queue = record_string(record, b"queue")
                .filter(|q| check_queue(q).is_ok())
                .or_else(|| info.queue.clone().map(Cow::into_owned));
            let Some(queue) = queue.filter(|q| check_queue(q).is_ok()) else { continue };
            let Ok(args) = records::args_value(info.args_json(payload).as_deref()) else { continue };
            let job = records::payload(&queue, &info.class, &args);
            let qkey = ns.queue(&queue);
            s.expect_kind(&qkey, Kind::List)?;
            s.expect_kind(&queues, Kind::Set)?;
            let now = s.now_ms();
            clocks.pushed(s, ns, (&queue, None), (&job, 1), now)?;
            plan.effects.push(Effect::SAdd { key: queues.clone(), member: queue });
            plan.effects.push(Effect::RPush { key: qkey, value: job });
        }
        marked.push(start.saturating_add(i64::try_from(i).unwrap_or(i64::MAX)));
        done += 1;
    }
    plan.effects.extend(clocks.effects(s, ns)?);
    for index in marked {
        plan.effects.push(Effect::LSet { key: failed_key.clone(), index, value: REMOVED_MARK.to_vec() });
    }
    if done > 0 {
        plan.effects.push(Effect::LRem {
            key: failed_key.clone(),
            count: i64::try_from(done).unwrap_or(i64::MAX),
            value: REMOVED_MARK.to_vec(),
        });
    }
    let scanned = u64::try_from(records.len()).unwrap_or(0);
    let end = from.saturating_add(scanned) >= u64::try_from(total).unwrap_or(0);
    let next = if end { Reply::Nil } else { int(from + scanned - done) };
    plan.reply = Reply::Array(vec![int(done), next]);
    Ok(plan)
}

/// Effects forgetting the delivery counts of removed jobs (kept in
/// `<ns>:tq:deliveries` while a job given back waits), so a job enqueued
/// again later starts from its first delivery.
fn forget_deliveries<'a>(
    s: &mut impl Store,
    ns: &Ns<'_>,
    payloads: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<Effect>> {
    let key = ns.deliveries();
    if s.kind(&key)? != Kind::Hash {
        return Ok(Vec::new());
    }
    let mut effects = Vec::new();
    for p in payloads {
        if s.hash_get(&key, p)?.is_some() {
            effects.push(Effect::HDel { key: key.clone(), field: p.to_vec() });
        }
    }
    Ok(effects)
}

/// `TQ.DEL <ns> <queue> <class> [<args-json>] [COUNT <n>]`: node-resque's
/// `del`: removes waiting instances of this job (all, or the first n).
pub fn del(
    s: &mut impl Store,
    ns: &Ns<'_>,
    queue: &[u8],
    class: &[u8],
    args: Option<&[u8]>,
    count: u64,
) -> Result<Plan> {
    let payload = payload_of(queue, class, args)?;
    let qkey = ns.queue(queue);
    let waiting = s.list_len(&qkey)?;
    if waiting == 0 {
        return Ok(Plan::new(int(0)));
    }
    // LREM is applied through Redis; the reply is its count.
    let mut effects = forget_deliveries(s, ns, [payload.as_slice()])?;
    effects.insert(0, Effect::LRem { key: qkey, count: i64::try_from(count).unwrap_or(0), value: payload });
    Ok(Plan { effects, reply: Reply::Removed })
}

/// `TQ.DELDELAYED <ns> <queue> <class> [<args-json>]`: removes this job from
/// every delayed bucket it is filed under, with its markers and any bucket
/// it empties. Replies the times (unix ms) it was removed from.
pub fn del_delayed(s: &mut impl Store, ns: &Ns<'_>, queue: &[u8], class: &[u8], args: Option<&[u8]>) -> Result<Plan> {
    let payload = payload_of(queue, class, args)?;
    let tkey = ns.timestamps(&payload);
    let schedule = ns.delayed_schedule();
    let mut markers = s.set_members(&tkey)?;
    // Checked here: a ZREM on another type would fail while applying.
    s.expect_kind(&schedule, Kind::Zset)?;
    markers.sort();
    let (at, due) = (ns.exact_due(), ns.bucket_due());
    let exact = s.kind(&at)? == Kind::Hash;
    let timed = s.kind(&due)? == Kind::Zset;
    let mut plan = Plan::new(Reply::Nil);
    let mut times = Vec::new();
    for marker in markers {
        let Some(bucket) = marker.strip_prefix(b"delayed:") else { continue };
        let bkey = ns.delayed(bucket);
        let jobs = s.list_range(&bkey, 0, -1, usize::MAX as u64)?;
        let here = jobs.iter().filter(|j| **j == payload).count();
        if here > 0 {
            plan.effects.push(Effect::LRem { key: bkey, count: 0, value: payload.clone() });
            if exact {
                plan.effects.push(Effect::HDel { key: at.clone(), field: crate::queue::exact_field(bucket, &payload) });
            }
            if here == jobs.len() {
                plan.effects.push(Effect::ZRem { key: schedule.clone(), member: bucket.to_vec() });
                if timed {
                    plan.effects.push(Effect::ZRem { key: due.clone(), member: bucket.to_vec() });
                }
            }
            times.extend(ms_of_bucket(bucket));
        }
        plan.effects.push(Effect::SRem { key: tkey.clone(), member: marker });
    }
    times.sort_unstable();
    plan.reply = Reply::Array(times.into_iter().map(int).collect());
    Ok(plan)
}

/// `TQ.DELQUEUE <ns> <queue>`: removes a queue and its jobs, and unregisters
/// it. Replies how many jobs it held.
pub fn del_queue(s: &mut impl Store, ns: &Ns<'_>, queue: &[u8]) -> Result<Plan> {
    check_queue(queue)?;
    let qkey = ns.queue(queue);
    let n = s.list_len(&qkey)?;
    let queues = ns.queues();
    s.expect_kind(&queues, Kind::Set)?;
    let mut effects = vec![Effect::SRem { key: queues, member: queue.to_vec() }];
    if n > 0 {
        effects.push(Effect::Del { keys: vec![qkey] });
        // Counts of this queue's jobs waiting to be delivered again.
        let key = ns.deliveries();
        if s.kind(&key)? == Kind::Hash {
            for (payload, _) in s.hash_sample(&key, MAX_FAILED_SCAN as usize)? {
                if records::inspect_payload(&payload).is_ok_and(|i| i.queue.as_deref() == Some(queue)) {
                    effects.push(Effect::HDel { key: key.clone(), field: payload });
                }
            }
        }
    }
    Ok(Plan { effects, reply: int(n) })
}

/// `TQ.DELBYCLASS <ns> <queue> <class> [<start> <stop>]`: node-resque's
/// `delByFunction`: removes the jobs of a class found in that range of the
/// queue. Replies how many.
pub fn del_by_class(
    s: &mut impl Store,
    ns: &Ns<'_>,
    queue: &[u8],
    class: &[u8],
    start: i64,
    stop: i64,
) -> Result<Plan> {
    check_queue(queue)?;
    check_name("class", class)?;
    let qkey = ns.queue(queue);
    let jobs = s.list_range(&qkey, start, stop, MAX_FAILED_SCAN)?;
    let mut plan = Plan::new(Reply::Nil);
    let mut matched: Vec<Vec<u8>> = Vec::new();
    for job in jobs {
        if records::inspect_payload(&job).is_ok_and(|i| i.class == class) && !matched.contains(&job) {
            plan.effects.push(Effect::LRem { key: qkey.clone(), count: 0, value: job.clone() });
            matched.push(job);
        }
    }
    plan.effects.extend(forget_deliveries(s, ns, matched.iter().map(Vec::as_slice))?);
    plan.reply = Reply::Removed;
    Ok(plan)
}

/// `TQ.FORCECLEAN <ns> <worker>`: node-resque's `forceCleanWorker`, done
/// right and in one step: a job the worker holds goes to `failed` with
/// node-resque's record (so its `retryStuckJobs` finds it), and everything
/// of the worker goes: its `<ns>:workers` entries, records, ping and
/// started keys, per-worker counters, lease and liveness. Replies the failure
/// record, or nil when it held no job.
pub fn force_clean(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8]) -> Result<Plan> {
    check_name("worker", worker)?;
    let now = s.now_ms();
    let workers = ns.workers();
    let mut prefix = worker.to_vec();
    prefix.push(b':');
    let index = ns.inflight(worker);
    let decoded = s.get(&index)?.and_then(|raw| InFlight::decode(&raw));
    // Jobs the worker counted and its entry still carries go to their
    // records before the entry goes.
    let counted = metrics::flush_leaving(s, ns, worker, decoded.as_ref().and_then(|e| e.open.clone()))?;
    let entry = decoded.filter(InFlight::live);
    // Written at the end by ZREM, which would fail on another type.
    s.expect_kind(&ns.leases(), Kind::Zset)?;
    s.expect_kind(&ns.alive(), Kind::Zset)?;
    // The worker's own entries: the one its in-flight index names, and those
    // whose record (or, without one, node-resque's `host:pid:queues`
    // reading) names it. A prefix alone would take `w:1`'s entries for `w`.
    let own = entry.as_ref().map(|e| keys::worker_entry(worker, &e.queues));
    let mut members = Vec::new();
    for m in s.set_members(&workers)? {
        if m.starts_with(&prefix) && (own.as_ref() == Some(&m) || worker_name(s, ns, &m)?.as_deref() == Some(worker)) {
            members.push(m);
        }
    }
    let mut plan = Plan::new(Reply::Nil);
    plan.effects.extend(counted);
    let mut gone =
        vec![index, ns.ping(worker), ns.worker_stat(b"failed", worker), ns.worker_stat(b"processed", worker)];
    let mut job: Option<(Vec<u8>, Vec<u8>)> = None; // (queue, payload)
    for member in &members {
        let queues = member.get(prefix.len()..).unwrap_or_default();
        let rkey = ns.worker_record(worker, queues);
        let mut started = rkey.clone();
        started.extend_from_slice(b":started");
        if job.is_none() {
            if let Some(record) = record_of(s, ns, member)? {
                if let Some(p) = record_raw(&record, b"payload") {
                    let queue = record_string(&record, b"queue").unwrap_or_default();
                    job = Some((queue, p.to_vec()));
                }
            }
        }
        gone.push(rkey);
        gone.push(started);
        plan.effects.push(Effect::SRem { key: workers.clone(), member: member.clone() });
    }
    if let Some(e) = &entry {
        gone.push(ns.worker_record(worker, &e.queues));
        if let Some((key, value)) = &e.joblock {
            if s.get(key)?.as_ref() == Some(value) {
                gone.push(key.clone());
            }
        }
    }
    if let Some((queue, payload)) = &job {
        let failed = ns.failed();
        s.expect_kind(&failed, Kind::List)?;
        let mut bt = b"[".to_vec();
        json::write_string(format!("killed by tq at {}", time::js_date_string(now)).as_bytes(), &mut bt);
        bt.extend_from_slice(format!(",\"{FORCE_CLEAN_MARK}\",\"tq\"]").as_bytes());
        let rec = records::failure_record(&Failure {
            worker,
            queue,
            payload: FailedPayload::Json(payload),
            exception: FORCE_CLEAN_ERROR.as_bytes(),
            error: FORCE_CLEAN_ERROR.as_bytes(),
            backtrace: &bt,
            now_ms: now,
        });
        plan.effects.push(Effect::RPush { key: failed, value: rec.clone() });
        plan.effects.push(plan_incr(s, ns.stat(b"failed"), 0)?);
        plan.effects.extend(forget_deliveries(s, ns, [payload.as_slice()])?);
        plan.reply = bulk(rec);
    }
    gone.sort();
    gone.dedup();
    plan.effects.push(Effect::Del { keys: gone });
    plan.effects.push(Effect::ZRem { key: ns.leases(), member: worker.to_vec() });
    plan.effects.push(Effect::ZRem { key: ns.alive(), member: worker.to_vec() });
    Ok(plan)
}

/// `TQ.CLEANWORKERS <ns> <age-ms>`: node-resque's `cleanOldWorkers`:
/// force-cleans every registered worker whose job started more than `age`
/// ago. Replies `[[worker, failure-record], ...]`.
pub fn clean_workers(s: &mut impl Store, ns: &Ns<'_>, age_ms: u64) -> Result<Plan> {
    let now = s.now_ms();
    let mut stale: Vec<Vec<u8>> = Vec::new();
    for member in s.set_members(&ns.workers())? {
        let Some(record) = record_of(s, ns, &member)? else { continue };
        let Some(run_at) = record_string(&record, b"run_at").and_then(|t| time::parse_date(&t)) else { continue };
        if now.saturating_sub(run_at) > age_ms {
            if let Some(w) = record_string(&record, b"worker") {
                if !stale.contains(&w) {
                    stale.push(w);
                }
            }
        }
    }
    stale.sort();
    let mut plan = Plan::new(Reply::Nil);
    let mut out = Vec::new();
    let mut pending = 0;
    for w in stale {
        let mut p = force_clean(s, ns, &w)?;
        // Several workers: each INCR of stat:failed counts the ones before it.
        for e in &mut p.effects {
            if let Effect::Incr { .. } = e {
                *e = plan_incr(s, ns.stat(b"failed"), pending)?;
                pending += 1;
            }
        }
        plan.effects.extend(p.effects);
        out.push(Reply::Array(vec![bulk(w), p.reply]));
    }
    plan.reply = Reply::Array(out);
    Ok(plan)
}

/// `TQ.UNTRACK <ns> <worker> <queues>`: a worker that stops unregisters
/// (node-resque's `untrack`, without deleting the worker's counters): its
/// `<ns>:workers` entry, started and ping keys, liveness. Refused while it
/// holds a job.
pub fn untrack(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], queues: &[u8]) -> Result<Plan> {
    check_name("worker", worker)?;
    check_name("queues", queues)?;
    let index = ns.inflight(worker);
    let entry = s.get(&index)?.map(|raw| InFlight::decode(&raw));
    if let Some(Some(e)) = entry.as_ref().filter(|e| e.as_ref().is_some_and(InFlight::live)) {
        return Err(TqError::InFlight { worker: worker.to_vec(), queue: e.queue.clone() });
    }
    // The SREM and ZREM below would fail on keys of other types.
    s.expect_kind(&ns.workers(), Kind::Set)?;
    s.expect_kind(&ns.alive(), Kind::Zset)?;
    let mut started = ns.worker_record(worker, queues);
    started.extend_from_slice(b":started");
    // The tombstone of its last job goes too: a stopped worker reports no more.
    let mut gone = vec![started, ns.ping(worker)];
    if entry.is_some() {
        gone.push(index);
    }
    // Jobs the worker counted and its tombstone still carries go to their
    // records before it goes.
    let mut effects = metrics::flush_leaving(s, ns, worker, entry.flatten().and_then(|e| e.open))?;
    effects.extend([
        Effect::SRem { key: ns.workers(), member: keys::worker_entry(worker, queues) },
        Effect::Del { keys: gone },
        Effect::ZRem { key: ns.alive(), member: worker.to_vec() },
    ]);
    Ok(Plan { effects, reply: Reply::Ok })
}

/// `TQ.LOCKS <ns> [<cursor> <count>]`: one step of a SCAN over the
/// namespace's lock keys (node-resque's `lock:*` and `workerslock:*`, and
/// tq's pair locks): `[next-cursor, [[name, value], ...]]`, names without
/// the namespace as node-resque's `locks()` gives them; cursor 0 ends.
pub fn locks(s: &mut impl Store, ns: &Ns<'_>, cursor: u64, count: u64) -> Result<Plan> {
    let mut pattern = glob_escape(ns.as_bytes());
    pattern.extend_from_slice(b":*lock*");
    let (next, found) = s.scan(cursor, &pattern, count.clamp(1, MAX_PAGE))?;
    let prefix_len = ns.as_bytes().len() + 1;
    let mut rows = Vec::new();
    for key in found {
        let name = key.get(prefix_len..).unwrap_or_default().to_vec();
        let lock = name.starts_with(b"lock:") || name.starts_with(b"workerslock:") || name.starts_with(b"tq:lock:");
        if !lock || s.kind(&key)? != Kind::String {
            continue;
        }
        let value = s.get(&key)?.unwrap_or_default();
        let value = if name.starts_with(b"tq:lock:") { describe_pair_lock(&value) } else { value };
        rows.push(Reply::Array(vec![bulk(name), bulk(value)]));
    }
    Ok(Plan::new(Reply::Array(vec![int(next), Reply::Array(rows)])))
}

/// A pair lock's record in words (its stored form is bincode).
fn describe_pair_lock(raw: &[u8]) -> Vec<u8> {
    match crate::lock::PairLock::decode(raw) {
        Some(l) => format!(
            "{} by {} token {} until {}",
            if l.done { "done" } else { "held" },
            show(&l.owner),
            l.token,
            time::iso8601(l.expires_ms)
        )
        .into_bytes(),
        None => raw.to_vec(),
    }
}

/// `TQ.DETAILS <ns>`: ActionHero's `details()` in one call, as a flat list of
/// name, value: queues with lengths, workers with what they work on (first
/// 100), stats, leader, delayed buckets and jobs, how late the oldest due
/// bucket is, jobs in flight, failed jobs.
pub fn details(s: &mut impl Store, ns: &Ns<'_>) -> Result<Plan> {
    let now = s.now_ms();
    let mut queue_names = s.set_members(&ns.queues())?;
    queue_names.sort();
    let mut queues = Vec::new();
    for q in queue_names {
        let n = s.list_len(&ns.queue(&q))?;
        queues.push(Reply::Array(vec![bulk(q), int(n)]));
    }
    let workers = workers(s, ns, 0, 100)?.reply;
    let stats = stats(s, ns)?.reply;
    let leader = s.get(&ns.leader_lock())?.map_or(Reply::Nil, bulk);
    // The first 1000 buckets are looked at (empty ones, which node-resque's
    // delDelayed leaves, not counted); any beyond are counted as they are.
    let card = s.zset_card(&ns.delayed_schedule())?;
    let buckets = s.zset_range(&ns.delayed_schedule(), f64::NEG_INFINITY, f64::INFINITY, 1000)?;
    let mut delayed_jobs = 0usize;
    let mut delayed_buckets = card.saturating_sub(buckets.len());
    let mut oldest: Option<u64> = None;
    for (member, _) in &buckets {
        let n = s.list_len(&ns.delayed(member))?;
        if n > 0 {
            delayed_jobs += n;
            delayed_buckets += 1;
            oldest = oldest.or(ms_of_bucket(member));
        }
    }
    let oldest_due = oldest.filter(|&ms| ms <= now).map_or(Reply::Nil, |ms| int(now - ms));
    let in_flight = s.zset_card(&ns.leases())?;
    let failed_count = s.list_len(&ns.failed())?;
    Ok(Plan::new(Reply::Array(vec![
        bulk("queues"),
        Reply::Array(queues),
        bulk("workers"),
        workers,
        bulk("stats"),
        stats,
        bulk("leader"),
        leader,
        bulk("delayed_buckets"),
        int(delayed_buckets),
        bulk("delayed_jobs"),
        int(delayed_jobs),
        bulk("oldest_due_lateness_ms"),
        oldest_due,
        bulk("in_flight"),
        int(in_flight),
        bulk("failed"),
        int(failed_count),
    ])))
}

#[cfg(test)]
mod tests;
