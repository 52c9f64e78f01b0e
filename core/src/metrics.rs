//! Job metrics kept in the namespace's own keys, written in the same step as
//! the move they count (so they are replicated, and survive a restart, as
//! the jobs do).
//!
//! - Per (queue, class) and minute, a [`Tally`]: jobs processed and failed,
//!   and histograms of run time (take → ACK/FAIL) and wait time (enqueued,
//!   or due → take). `<ns>:tq:m:<minute>:<pair>`. An ACK or FAIL counts its
//!   job in the worker's open tally, carried by the in-flight entry the step
//!   writes anyway ([`carry`]); the record gets a worker's jobs once every
//!   [`FLUSH_MS`] ([`flush_all`], [`flush_due`]). Its TTL is set when the
//!   minute is over (a TTL set at once would be cleared by the MSET that
//!   carries the record's writes): the minute is
//!   noted in `<ns>:tq:mopen` when its record is made, and the module's timer
//!   closes it there ([`close_due`]): TTL, and the minute added to the hour's
//!   record (`<ns>:tq:h:<hour>:<pair>`) and to the pair's running totals
//!   (`<ns>:tq:t:<pair>`, the counters and histograms `/metrics` serves).
//! - Per queue, a [`Clock`] (`<ns>:tq:clock:<queue>`): when the jobs now
//!   waiting arrived, sampled, so that a take knows how long its job waited
//!   and the age of a queue's oldest job is known without reading the queue
//!   (a node-resque payload carries no enqueue time).

use std::collections::HashMap;

use bincode::{Decode, Encode};

use crate::error::{Result, TqError};
use crate::json;
use crate::keys::Ns;
use crate::records::{InFlight, OpenTally};
use crate::store::{Effect, Kind, Store};

/// Histogram buckets: bucket `i < BUCKETS - 1` counts durations under
/// `2^i` ms (and at least `2^(i-1)`), the last one the rest (≥ 2^22 ms,
/// about 70 minutes).
pub const BUCKETS: usize = 24;
/// A minute's record is kept this long after its minute ends.
pub const MINUTE_KEEP_MS: u64 = 25 * HOUR_MS;
/// An hour's record is kept this long after its hour ends.
pub const HOUR_KEEP_MS: u64 = 31 * 24 * HOUR_MS;
pub const MINUTE_MS: u64 = 60_000;
pub const HOUR_MS: u64 = 3_600_000;

/// The upper bound (exclusive, ms) of bucket `i`; None for the last.
pub fn bucket_bound_ms(i: usize) -> Option<u64> {
    (i + 1 < BUCKETS).then(|| 1u64 << i)
}

fn bucket(ms: u64) -> usize {
    let bits = usize::try_from(u64::BITS - ms.leading_zeros()).unwrap_or(BUCKETS);
    bits.min(BUCKETS - 1)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Histogram {
    pub sum_ms: u64,
    pub counts: [u64; BUCKETS],
}

impl Histogram {
    pub fn add(&mut self, ms: u64) {
        self.sum_ms = self.sum_ms.saturating_add(ms);
        if let Some(c) = self.counts.get_mut(bucket(ms)) {
            *c = c.saturating_add(1);
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().fold(0u64, |a, c| a.saturating_add(*c))
    }

    pub fn merge(&mut self, other: &Histogram) {
        self.sum_ms = self.sum_ms.saturating_add(other.sum_ms);
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a = a.saturating_add(*b);
        }
    }

    /// The bound (ms) under which at least `q` (0..=1) of the durations
    /// fall, None when empty. The last bucket answers its lower bound.
    pub fn quantile_bound_ms(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let want = ((total as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, c) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(*c);
            if seen >= want {
                return Some(bucket_bound_ms(i).unwrap_or(1 << (BUCKETS - 2)));
            }
        }
        None
    }
}

/// What happened to the jobs of one (queue, class) in one minute (or hour,
/// or since metrics began).
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Tally {
    pub processed: u64,
    pub failed: u64,
    /// Take → ACK/FAIL, every job counted.
    pub run: Histogram,
    /// Arrival (enqueue, or due time) → take, for the jobs whose arrival the
    /// queue's clock knew.
    pub wait: Histogram,
}

/// A minute's stored form: a version byte, then little-endian fixed fields
/// (processed, failed, run sum, wait sum as u64; each histogram's counts as
/// u32), so that a flush adds a worker's counts to a copy of the bytes in
/// place instead of decoding and encoding the record.
const TALLY_VERSION: u8 = 1;
const PROCESSED: usize = 1;
const FAILED: usize = 9;
const RUN_SUM: usize = 17;
const WAIT_SUM: usize = 25;
const RUN_COUNTS: usize = 33;
const WAIT_COUNTS: usize = RUN_COUNTS + 4 * BUCKETS;
/// The stored size of a tally.
pub const TALLY_BYTES: usize = WAIT_COUNTS + 4 * BUCKETS;

fn read_u64(raw: &[u8], at: usize) -> u64 {
    raw.get(at..at + 8).and_then(|b| b.try_into().ok()).map_or(0, u64::from_le_bytes)
}

fn read_u32(raw: &[u8], at: usize) -> u64 {
    raw.get(at..at + 4).and_then(|b| b.try_into().ok()).map_or(0, |b| u64::from(u32::from_le_bytes(b)))
}

fn add_u64(raw: &mut [u8], at: usize, n: u64) {
    let v = read_u64(raw, at).saturating_add(n);
    if let Some(b) = raw.get_mut(at..at + 8) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

fn add_u32(raw: &mut [u8], at: usize, n: u64) {
    let v = u32::try_from(read_u32(raw, at).saturating_add(n)).unwrap_or(u32::MAX);
    if let Some(b) = raw.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_le_bytes());
    }
}

fn is_tally(raw: &[u8]) -> bool {
    raw.len() == TALLY_BYTES && raw.first() == Some(&TALLY_VERSION)
}

impl Tally {
    pub fn merge(&mut self, other: &Tally) {
        self.processed = self.processed.saturating_add(other.processed);
        self.failed = self.failed.saturating_add(other.failed);
        self.run.merge(&other.run);
        self.wait.merge(&other.wait);
    }

    /// None for bytes that are not a tally (of either form).
    pub fn decode(raw: &[u8]) -> Option<Tally> {
        if let Some((&WIDE_VERSION, body)) = raw.split_first() {
            return crate::codec::decode_exact(body);
        }
        if !is_tally(raw) {
            return None;
        }
        let histogram = |sum, counts| {
            let mut h = Histogram { sum_ms: read_u64(raw, sum), ..Histogram::default() };
            for (i, c) in h.counts.iter_mut().enumerate() {
                *c = read_u32(raw, counts + 4 * i);
            }
            h
        };
        Some(Tally {
            processed: read_u64(raw, PROCESSED),
            failed: read_u64(raw, FAILED),
            run: histogram(RUN_SUM, RUN_COUNTS),
            wait: histogram(WAIT_SUM, WAIT_COUNTS),
        })
    }

    /// The stored form (counts over `u32::MAX` are kept at it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = empty_tally().to_vec();
        add_u64(&mut out, PROCESSED, self.processed);
        add_u64(&mut out, FAILED, self.failed);
        for (sum, counts, h) in [(RUN_SUM, RUN_COUNTS, &self.run), (WAIT_SUM, WAIT_COUNTS, &self.wait)] {
            add_u64(&mut out, sum, h.sum_ms);
            for (i, c) in h.counts.iter().enumerate() {
                add_u32(&mut out, counts + 4 * i, *c);
            }
        }
        out
    }
}

impl Tally {
    /// The wide form, for hours and totals (a total's count may pass
    /// `u32::MAX`): a version byte and the record as bincode, variable
    /// length, so mostly smaller than the fixed form. Only the timer writes
    /// it, once a minute, so its cost does not matter.
    pub fn to_wide_bytes(&self) -> Vec<u8> {
        let mut out = vec![WIDE_VERSION];
        if let Ok(body) = bincode::encode_to_vec(self, bincode::config::standard()) {
            out.extend_from_slice(&body);
        }
        out
    }
}

const WIDE_VERSION: u8 = 2;

/// A tally with nothing counted, in its stored form.
fn empty_tally() -> [u8; TALLY_BYTES] {
    let mut out = [0u8; TALLY_BYTES];
    if let Some(v) = out.first_mut() {
        *v = TALLY_VERSION;
    }
    out
}

/// The counts a worker's open tally carries in its in-flight entry, which
/// every take and report rewrites (and replicates): so only the histogram
/// buckets in use, up to [`SLOTS`] per histogram: 84 bytes where a minute
/// record takes 225. A job whose bucket finds no slot left starts a new tally
/// (the open one goes to its record then). Any bytes are counts: a forged
/// slot's bucket past the last counts in none.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum Carried {
    /// A minute record's form (entries written before version 8): added to
    /// its record by the worker's next report, never counted into.
    Block([u8; TALLY_BYTES]),
    /// processed, failed (u32); run sum, wait sum (u64); then per histogram
    /// [`SLOTS`] × (bucket u8, count u32), a slot with count 0 free.
    Slots([u8; CARRIED_BYTES]),
}

/// Histogram buckets a carried tally holds per histogram: a worker's jobs
/// of a couple of seconds mostly fall in two or three.
pub const SLOTS: usize = 6;
const C_PROCESSED: usize = 0;
const C_FAILED: usize = 4;
const C_RUN_SUM: usize = 8;
const C_WAIT_SUM: usize = 16;
const C_RUN_SLOTS: usize = 24;
const C_WAIT_SLOTS: usize = C_RUN_SLOTS + 5 * SLOTS;
/// The carried size of a tally's counts.
pub const CARRIED_BYTES: usize = C_WAIT_SLOTS + 5 * SLOTS;

/// Where the slots of the histogram at `base` start: a bucket byte, then
/// its count.
fn slots(base: usize) -> impl Iterator<Item = usize> {
    (0..SLOTS).map(move |i| base + 5 * i)
}

/// The slot of `bucket` in the histogram at `base`: where it is counted,
/// else the first free one; None when all are taken by other buckets.
fn slot_for(raw: &[u8], base: usize, bucket: usize) -> Option<usize> {
    let mut free = None;
    for at in slots(base) {
        let used = read_u32(raw, at + 1) > 0;
        if used && raw.get(at).is_some_and(|b| usize::from(*b) == bucket) {
            return Some(at);
        }
        if !used && free.is_none() {
            free = Some(at);
        }
    }
    free
}

fn count_slot(raw: &mut [u8], at: usize, bucket: usize) {
    if let Some(b) = raw.get_mut(at) {
        *b = u8::try_from(bucket).unwrap_or(u8::MAX);
    }
    add_u32(raw, at + 1, 1);
}

impl Carried {
    /// No job counted.
    pub fn empty() -> Carried {
        Carried::Slots([0; CARRIED_BYTES])
    }

    /// Counts `j`; false, counting nothing, when it cannot (the block form,
    /// or a bucket with no slot left).
    fn count(&mut self, j: &Ended<'_>) -> bool {
        let Carried::Slots(raw) = self else { return false };
        let run = bucket(j.run_ms);
        let Some(run_at) = slot_for(raw, C_RUN_SLOTS, run) else { return false };
        let wait = match j.wait_ms {
            Some(w) => {
                let b = bucket(w);
                let Some(at) = slot_for(raw, C_WAIT_SLOTS, b) else { return false };
                Some((at, w, b))
            }
            None => None,
        };
        add_u32(raw, if j.outcome == Outcome::Processed { C_PROCESSED } else { C_FAILED }, 1);
        add_u64(raw, C_RUN_SUM, j.run_ms);
        count_slot(raw, run_at, run);
        if let Some((at, w, b)) = wait {
            add_u64(raw, C_WAIT_SUM, w);
            count_slot(raw, at, b);
        }
        true
    }

    /// Whether it counts anything: a block that is not a tally does not.
    fn counts(&self) -> bool {
        match self {
            Carried::Block(t) => is_tally(t),
            Carried::Slots(_) => true,
        }
    }

    /// Adds its counts to a minute record's bytes.
    fn add_to(&self, out: &mut [u8]) {
        match self {
            Carried::Block(t) => add_tally(out, t),
            Carried::Slots(raw) => {
                add_u64(out, PROCESSED, read_u32(raw, C_PROCESSED));
                add_u64(out, FAILED, read_u32(raw, C_FAILED));
                for (sum, counts, c_sum, c_slots) in
                    [(RUN_SUM, RUN_COUNTS, C_RUN_SUM, C_RUN_SLOTS), (WAIT_SUM, WAIT_COUNTS, C_WAIT_SUM, C_WAIT_SLOTS)]
                {
                    add_u64(out, sum, read_u64(raw, c_sum));
                    for at in slots(c_slots) {
                        let b = raw.get(at).map_or(BUCKETS, |b| usize::from(*b));
                        if b < BUCKETS {
                            add_u32(out, counts + 4 * b, read_u32(raw, at + 1));
                        }
                    }
                }
            }
        }
    }

    /// What it counts; None for a block that is not a tally.
    pub fn tally(&self) -> Option<Tally> {
        let mut out = empty_tally();
        self.counts().then(|| self.add_to(&mut out)).and_then(|()| Tally::decode(&out))
    }
}

/// A (queue, class) pair as stored in key names and in `<ns>:tq:metrics`:
/// the JSON array `["queue","class"]`, so that no two pairs share a name
/// whatever `:` they hold.
pub fn pair(queue: &[u8], class: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(queue.len() + class.len() + 7);
    write_pair(queue, class, &mut out);
    out
}

/// `pair(queue, class)` written at the end of `out`.
pub fn write_pair(queue: &[u8], class: &[u8], out: &mut Vec<u8>) {
    out.push(b'[');
    json::write_string(queue, out);
    out.push(b',');
    json::write_string(class, out);
    out.push(b']');
}

/// The queue and class of a pair name; None for anything else.
pub fn parse_pair(raw: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    match json::parse(raw).ok()? {
        json::Value::Array(items) => match items.as_slice() {
            [json::Value::String(q), json::Value::String(c)] => Some((q.clone(), c.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// The unix minute of `ms`.
pub fn minute_of(ms: u64) -> u64 {
    ms / MINUTE_MS
}

/// How one job ended, for its tally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Processed,
    Failed,
}

/// One job that ended, to be counted.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    pub queue: &'a [u8],
    pub class: &'a [u8],
    pub outcome: Outcome,
    pub run_ms: u64,
    pub wait_ms: Option<u64>,
}

/// The write of a pair's minute record with `add` counted in, and on the
/// record's first write the notes that let the timer close it and readers
/// find the pair. A key of another type (someone else's) is left alone:
/// metrics never make a job's report fail. A string that is not a tally is
/// started afresh.
fn plan_record(
    s: &mut impl Store,
    ns: &Ns<'_>,
    minute: u64,
    queue: &[u8],
    class: &[u8],
    add: impl Fn(&mut [u8]),
) -> Result<Vec<Effect>> {
    let mut effects = Vec::new();
    let key = ns.metrics_minute_of(minute, queue, class);
    // Opened for writing from the first look (one open, not two).
    s.will_write(&key)?;
    let count = |raw: Option<&[u8]>| {
        let mut out = match raw {
            Some(r) if is_tally(r) => r.to_vec(),
            _ => empty_tally().to_vec(),
        };
        add(&mut out);
        out
    };
    let Some(found) = own(s.get_with(&key, |raw| count(Some(raw))))? else { return Ok(effects) };
    let value = match found {
        Some(v) => v,
        None => {
            let open = ns.metrics_open();
            s.expect_kind(&open, Kind::Zset)?;
            let pairs = ns.metrics_pairs();
            s.expect_kind(&pairs, Kind::Set)?;
            let pair = pair(queue, class);
            effects.push(Effect::ZAdd {
                key: open,
                score: i64::try_from((minute + 1).saturating_mul(MINUTE_MS)).unwrap_or(i64::MAX),
                member: open_member(minute, &pair),
            });
            effects.push(Effect::SAdd { key: pairs, member: pair });
            count(None)
        }
    };
    effects.push(Effect::Set { key, value });
    Ok(effects)
}

/// How long a worker's open tally ([`OpenTally`]) gathers its jobs before
/// they go to their minute's record, by default (`tq.metrics-flush-ms`):
/// how far a minute's record may lag behind the jobs it counts.
pub const FLUSH_MS: u64 = crate::settings::METRICS_FLUSH_MS.default_int().unsigned_abs();

/// Counts a job that ended under `worker` in the worker's open tally `open`,
/// which its in-flight entry, rewritten by the same step, carries: so the
/// minute's record is written once every `Store::metrics_flush_ms`
/// ([`FLUSH_MS`] by default) per busy worker, not once a job. Returns the
/// tallies whose jobs must go to their records now
/// ([`flush_all`]): the open one when this job is of another minute or pair
/// or came after its due time (this job then starts a new one). A new
/// tally is noted in `<ns>:tq:mflush` (`effects`), scored with its due
/// time, where the timer finds it if no report of the worker comes by then
/// (a worker gone idle); with that key of another type, the job goes to its
/// record at once.
pub fn carry(
    s: &mut impl Store,
    ns: &Ns<'_>,
    worker: &[u8],
    open: &mut Option<OpenTally>,
    job: &Ended<'_>,
    effects: &mut Vec<Effect>,
) -> Result<Vec<OpenTally>> {
    if !s.keeps_metrics() || job.class.is_empty() {
        return Ok(Vec::new());
    }
    let now = s.now_ms();
    let minute = minute_of(now);
    let same = |t: &OpenTally| t.minute == minute && now < t.due_ms && t.queue() == job.queue && t.class() == job.class;
    if let Some(t) = open.as_mut().filter(|t| same(t)) {
        if t.tally.count(job) {
            return Ok(Vec::new());
        }
    }
    let mut due: Vec<OpenTally> = open.take().into_iter().collect();
    let mut tally = Carried::empty();
    tally.count(job);
    // By the end of its minute at the latest: the timer closes a minute
    // only once no tally of it is due.
    let by =
        now.saturating_add(s.metrics_flush_ms()).min((minute + 1).saturating_mul(MINUTE_MS).saturating_sub(1)).max(now);
    let fresh = OpenTally::new(minute, by, job.queue, job.class, tally);
    let index = ns.metrics_flush();
    match s.kind(&index)? {
        Kind::None | Kind::Zset => {
            effects.push(Effect::ZAdd {
                key: index,
                score: i64::try_from(by).unwrap_or(i64::MAX),
                member: worker.to_vec(),
            });
            *open = Some(fresh);
        }
        _ => due.push(fresh),
    }
    Ok(due)
}

/// Adds a stored tally's counts to another's bytes.
fn add_tally(out: &mut [u8], t: &[u8]) {
    for at in [PROCESSED, FAILED, RUN_SUM, WAIT_SUM] {
        add_u64(out, at, read_u64(t, at));
    }
    for i in 0..2 * BUCKETS {
        add_u32(out, RUN_COUNTS + 4 * i, read_u32(t, RUN_COUNTS + 4 * i));
    }
}

/// The writes that put open tallies' jobs in their minute's records, each
/// record once. A tally is data anyone with write access to the namespace
/// can forge: its record's key is made in this namespace from its minute and
/// pair, and bytes that are not a tally count nothing.
pub fn flush_all(s: &mut impl Store, ns: &Ns<'_>, tallies: Vec<OpenTally>) -> Result<Vec<Effect>> {
    let mut groups: Vec<(OpenTally, [u8; TALLY_BYTES])> = Vec::new();
    for t in tallies.into_iter().filter(|t| t.tally.counts()) {
        match groups.iter_mut().find(|(g, _)| g.minute == t.minute && g.queue() == t.queue() && g.class() == t.class())
        {
            Some((_, sum)) => t.tally.add_to(sum),
            None => {
                let mut sum = empty_tally();
                t.tally.add_to(&mut sum);
                groups.push((t, sum));
            }
        }
    }
    let mut effects = Vec::new();
    for (g, sum) in groups {
        effects.extend(plan_record(s, ns, g.minute, g.queue(), g.class(), |out| add_tally(out, &sum))?);
    }
    Ok(effects)
}

/// The writes that put the open tally of a worker's entry, which is going
/// (TQ.UNTRACK, TQ.FORCECLEAN), in its minute's record, with the removal of
/// the worker's note in `<ns>:tq:mflush` (when that key is a zset): the
/// timer then has nothing left to write for it.
pub fn flush_leaving(s: &mut impl Store, ns: &Ns<'_>, worker: &[u8], open: Option<OpenTally>) -> Result<Vec<Effect>> {
    let Some(open) = open else { return Ok(Vec::new()) };
    let key = ns.metrics_flush();
    let noted = (s.kind(&key)? == Kind::Zset).then(|| Effect::ZRem { key, member: worker.to_vec() });
    let mut effects = flush_all(s, ns, vec![open])?;
    effects.extend(noted);
    Ok(effects)
}

/// The timer's part for open tallies: up to `limit` workers whose tally is
/// due get its jobs written to their records and the tally taken out of
/// their in-flight entry (whose TTL, a tombstone's, is kept).
/// Members are only ever read as worker names, whose entries are in this
/// namespace. Also says whether more are due.
pub fn flush_due(s: &mut impl Store, ns: &Ns<'_>, limit: usize) -> Result<(Vec<Effect>, bool)> {
    let key = ns.metrics_flush();
    if s.kind(&key)? != Kind::Zset {
        return Ok((Vec::new(), false));
    }
    let now = s.now_ms();
    let due = s.zset_range(&key, f64::NEG_INFINITY, now as f64, limit.saturating_add(1))?;
    let more = due.len() > limit;
    let mut effects = Vec::new();
    let mut tallies = Vec::new();
    for (worker, _) in due.into_iter().take(limit) {
        let index = crate::keys::check_name("worker", &worker).ok().map(|()| ns.inflight(&worker));
        let entry = match &index {
            Some(i) if s.kind(i)? == Kind::String => s.get_with(i, InFlight::decode_sized)?.flatten(),
            _ => None,
        };
        let (Some(index), Some((mut e, stored))) = (index, entry) else {
            effects.push(Effect::ZRem { key: key.clone(), member: worker });
            continue;
        };
        match e.open.take() {
            // A later tally (the member was written before it): due then.
            Some(t) if t.due_ms > now => {
                let score = i64::try_from(t.due_ms).unwrap_or(i64::MAX);
                effects.push(Effect::ZAdd { key: key.clone(), score, member: worker });
            }
            Some(t) => {
                tallies.push(t);
                effects.push(Effect::ZRem { key: key.clone(), member: worker });
                let value = e.encode_over(stored);
                effects.push(match s.expire_at(&index)? {
                    Some(at_ms) => Effect::SetPxAt { key: index, value, at_ms },
                    None => Effect::Set { key: index, value },
                });
            }
            None => effects.push(Effect::ZRem { key: key.clone(), member: worker }),
        }
    }
    effects.extend(flush_all(s, ns, tallies)?);
    Ok((effects, more))
}

/// A read of one of the metrics' keys; None when the key holds another
/// type (not tq's: left alone).
fn own<T>(read: Result<T>) -> Result<Option<T>> {
    match read {
        Ok(v) => Ok(Some(v)),
        Err(TqError::WrongType { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `<minute>:<pair>`, the member of `<ns>:tq:mopen` naming a minute's record.
fn open_member(minute: u64, pair: &[u8]) -> Vec<u8> {
    let mut m = minute.to_string().into_bytes();
    m.push(b':');
    m.extend_from_slice(pair);
    m
}

fn parse_open_member(m: &[u8]) -> Option<(u64, &[u8])> {
    let colon = m.iter().position(|&c| c == b':')?;
    let (digits, rest) = m.split_at(colon);
    let minute = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some((minute, rest.get(1..)?))
}

/// The timer's part: closes up to `limit` minutes that are over. Each
/// minute's record gets its TTL and is added to its hour's record and to
/// the pair's totals. Members of `<ns>:tq:mopen` are only ever read as a
/// minute and a pair, from which the keys are made in this namespace.
pub fn close_due(s: &mut impl Store, ns: &Ns<'_>, limit: usize) -> Result<Vec<Effect>> {
    let open = ns.metrics_open();
    let now = s.now_ms();
    let due = s.zset_range(&open, f64::NEG_INFINITY, now as f64, limit)?;
    let mut effects = Vec::new();
    let mut hours: HashMap<(u64, Vec<u8>), Tally> = HashMap::new();
    let mut totals: HashMap<Vec<u8>, Tally> = HashMap::new();
    for (member, _) in &due {
        effects.push(Effect::ZRem { key: open.clone(), member: member.clone() });
        let Some((minute, pair)) = parse_open_member(member).filter(|(_, p)| parse_pair(p).is_some()) else {
            continue;
        };
        let key = ns.metrics_minute(minute, pair);
        if s.kind(&key)? != Kind::String {
            continue;
        }
        let Some(Some(tally)) = s.get_with(&key, Tally::decode)? else { continue };
        let ends = (minute + 1).saturating_mul(MINUTE_MS);
        effects.push(Effect::PExpireAt { key, at_ms: ends.saturating_add(MINUTE_KEEP_MS) });
        let hour = minute.saturating_mul(MINUTE_MS) / HOUR_MS;
        hours.entry((hour, pair.to_vec())).or_default().merge(&tally);
        totals.entry(pair.to_vec()).or_default().merge(&tally);
    }
    for ((hour, pair), add) in hours {
        let key = ns.metrics_hour(hour, &pair);
        let mut t = stored_tally(s, &key)?;
        t.merge(&add);
        let ends = (hour + 1).saturating_mul(HOUR_MS);
        effects.push(Effect::SetPxAt { key, value: t.to_wide_bytes(), at_ms: ends.saturating_add(HOUR_KEEP_MS) });
    }
    for (pair, add) in totals {
        let key = ns.metrics_total(&pair);
        let mut t = stored_tally(s, &key)?;
        t.merge(&add);
        effects.push(Effect::Set { key, value: t.to_wide_bytes() });
    }
    Ok(effects)
}

/// A tally record, or an empty one when absent, of another type or
/// unreadable (it is then written afresh).
fn stored_tally(s: &mut impl Store, key: &[u8]) -> Result<Tally> {
    if s.kind(key)? != Kind::String {
        return Ok(Tally::default());
    }
    Ok(s.get_with(key, Tally::decode)?.flatten().unwrap_or_default())
}

/// Samples kept per queue clock.
pub const CLOCK_SAMPLES: usize = 16;
/// A push this soon after the clock's last sample is not sampled: its jobs
/// are dated by that sample.
pub const CLOCK_STEP_MS: u64 = 1;

/// The digest a clock knows a job by.
pub fn digest(payload: &[u8]) -> u64 {
    let mut h = siphasher::sip::SipHasher13::new_with_keys(0x7471_636c_6f63_6b31, 0x7761_6974_696e_6721);
    std::hash::Hasher::write(&mut h, payload);
    std::hash::Hasher::finish(&h)
}

/// When the jobs waiting in a queue arrived, sampled: each sample is a job
/// pushed (known by its payload's digest) and when; the jobs pushed after
/// it, up to the next sample, arrived then or later. `since` is when the
/// last sampled job that a tq take found had arrived: the jobs behind it,
/// not sampled themselves, arrived then or later.
///
/// A take dates its job by its own sample when it has one, else by
/// `since`; so a wait (or a queue's age, read from its head) is never
/// shorter than the true one, and longer by at most the gap between two
/// samples — with one caveat: two identical payloads waiting at once are
/// one digest, and the first may be dated by the second's sample. Only a
/// take that finds a sampled job writes the clock, so most takes only read
/// it. A push onto an empty queue starts the clock afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Clock {
    pub since: u64,
    /// (digest, arrived at), in push order.
    pub samples: Vec<(u64, u64)>,
}

const CLOCK_VERSION: u8 = 1;
const CLOCK_HEADER: usize = 10;

impl Clock {
    /// None for bytes that are not a clock.
    pub fn decode(raw: &[u8]) -> Option<Clock> {
        let (since, samples) = stored(raw)?;
        Some(Clock { since, samples: samples.collect() })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let n = self.samples.len().min(usize::from(u8::MAX));
        let mut out = Vec::with_capacity(CLOCK_HEADER + 16 * n);
        out.push(CLOCK_VERSION);
        out.extend_from_slice(&self.since.to_le_bytes());
        out.push(u8::try_from(n).unwrap_or(u8::MAX));
        for (d, at) in self.samples.iter().take(n) {
            out.extend_from_slice(&d.to_le_bytes());
            out.extend_from_slice(&at.to_le_bytes());
        }
        out
    }

    /// `date` read from the stored bytes in place (a take's usual path:
    /// nothing allocated). None for bytes that are not a clock.
    fn date_stored(raw: &[u8], payload: &[u8]) -> Option<Option<(u64, Option<usize>)>> {
        let (since, samples) = stored(raw)?;
        Some(date_among(samples, since, payload))
    }

    /// When the job `payload` arrived, and the index of its sample if it
    /// has one. None when the clock cannot tell (it knows no arrival).
    fn date(&self, payload: &[u8]) -> Option<(u64, Option<usize>)> {
        date_among(self.samples.iter().copied(), self.since, payload)
    }

    /// The age of a queue whose head (oldest job) is `head`.
    pub fn head_age_ms(&self, now: u64, head: Option<&[u8]>) -> Option<u64> {
        self.date(head?).map(|(at, _)| now.saturating_sub(at))
    }

    /// Notes a push at the tail, of jobs arriving at `at`, the first of
    /// which is `first`, onto a queue that held `len_before`. False when
    /// the clock needs no write.
    pub fn pushed(&mut self, len_before: u64, first: &[u8], at: u64) -> bool {
        if len_before == 0 {
            self.samples.clear();
            self.since = at;
        } else if let Some(&(_, last_at)) = self.samples.last() {
            if at >= last_at && at - last_at < CLOCK_STEP_MS {
                return false;
            }
        } else if at >= self.since && at - self.since < CLOCK_STEP_MS {
            return false;
        }
        let d = digest(first);
        if self.samples.iter().any(|(sd, _)| *sd == d) {
            // A twin of a waiting sampled job: dated by the samples around.
            return false;
        }
        self.samples.push((d, at));
        while self.samples.len() > CLOCK_SAMPLES {
            self.merge_closest();
        }
        true
    }

    /// Drops the sample closest in time to the one before it: its jobs are
    /// then dated by `since`, which the take of that earlier sample sets to
    /// its time (earlier than theirs: a wait read longer, never shorter).
    fn merge_closest(&mut self) {
        let gap = |w: &[(u64, u64)]| match w {
            [(_, a), (_, b)] => a.abs_diff(*b),
            _ => u64::MAX,
        };
        let closest = self.samples.windows(2).enumerate().min_by_key(|(_, w)| gap(w)).map(|(i, _)| i + 1);
        if let Some(i) = closest.filter(|i| *i < self.samples.len()) {
            self.samples.remove(i);
        }
    }

    /// Notes that a take found `payload` at the head; returns when it
    /// arrived (None when the clock cannot tell) and whether the clock
    /// changed (the job was sampled: it and the samples before it go).
    pub fn took(&mut self, payload: &[u8]) -> (Option<u64>, bool) {
        match self.date(payload) {
            Some((at, Some(i))) => {
                self.samples.drain(..=i);
                self.since = at;
                (Some(at), true)
            }
            Some((at, None)) => (Some(at), false),
            None => (None, false),
        }
    }
}

/// A stored clock's `since` and samples, read in place; None for bytes
/// that are not a clock.
fn stored(raw: &[u8]) -> Option<(u64, impl Iterator<Item = (u64, u64)> + '_)> {
    let n = usize::from(*raw.get(9)?);
    if raw.first() != Some(&CLOCK_VERSION) || raw.len() != CLOCK_HEADER + 16 * n {
        return None;
    }
    let at = |i: usize| CLOCK_HEADER + 16 * i;
    Some((read_u64(raw, 1), (0..n).map(move |i| (read_u64(raw, at(i)), read_u64(raw, at(i) + 8)))))
}

/// Dates `payload` by the samples `(digest, arrived at)` in push order, else
/// by `since`: when it arrived and the index of its sample.
fn date_among(samples: impl Iterator<Item = (u64, u64)>, since: u64, payload: &[u8]) -> Option<(u64, Option<usize>)> {
    let mut samples = samples.enumerate().peekable();
    // No samples (a queue drained past them): no digest to make.
    let found = match samples.peek() {
        None => None,
        Some(_) => {
            let d = digest(payload);
            samples.find(|(_, (sd, _))| *sd == d)
        }
    };
    match found {
        Some((i, (_, at))) => Some((at, Some(i))),
        None => (since > 0).then_some((since, None)),
    }
}

/// The clocks of the queues one command pushes to, noted push by push and
/// written once at the end.
#[derive(Default)]
pub struct Clocks {
    /// (queue, its clock, its length with this command's pushes, changed);
    /// None for a clock left alone (the key holds another type, or it was
    /// sampled within the step).
    queues: Vec<(Vec<u8>, Option<Clock>, u64, bool)>,
}

impl Clocks {
    /// Notes a push of `count` jobs, the first of which is `first`, arriving
    /// at `at` at the tail of `queue` (`len`: its length before this
    /// command, when the caller read it).
    pub fn pushed(
        &mut self,
        s: &mut impl Store,
        ns: &Ns<'_>,
        (queue, len): (&[u8], Option<usize>),
        (first, count): (&[u8], u64),
        at: u64,
    ) -> Result<()> {
        if !s.keeps_metrics() {
            return Ok(());
        }
        let i = match self.queues.iter().position(|(q, ..)| q.as_slice() == queue) {
            Some(i) => i,
            None => {
                let len = match len {
                    Some(n) => n,
                    None => s.list_len(&ns.queue(queue))?,
                };
                let len = u64::try_from(len).unwrap_or(u64::MAX);
                let key = ns.clock(queue);
                // Looked at by a push within the step already (the usual
                // case of a busy queue): this push would take no sample, so
                // the clock is not read. A push onto an empty queue always
                // restarts it.
                let recent = s.clock_checked(&key).is_some_and(|t| at >= t && at - t < CLOCK_STEP_MS);
                let clock = if len > 0 && recent {
                    None
                } else {
                    s.note_clock_checked(&key, at);
                    own(s.get_with(&key, Clock::decode))?.map(|c| c.flatten().unwrap_or_default())
                };
                self.queues.push((queue.to_vec(), clock, len, false));
                self.queues.len() - 1
            }
        };
        if let Some((_, Some(clock), len, changed)) = self.queues.get_mut(i) {
            *changed |= clock.pushed(*len, first, at);
            *len = len.saturating_add(count);
        }
        Ok(())
    }

    /// The writes of the clocks that changed.
    pub fn effects(self, s: &mut impl Store, ns: &Ns<'_>) -> Result<Vec<Effect>> {
        let mut effects = Vec::new();
        for (queue, clock, _, changed) in self.queues {
            if let (Some(clock), true) = (clock, changed) {
                let key = ns.clock(&queue);
                s.will_write(&key)?;
                s.clock_written(&key);
                effects.push(Effect::Set { key, value: clock.to_bytes() });
            }
        }
        Ok(effects)
    }
}

/// Plans the clock's note of a take that found `payload` at the head of
/// `queue`: how long the job waited, and the write when the clock changes
/// (only when the job was sampled: most takes only read the clock, in
/// place).
pub fn plan_took(
    s: &mut impl Store,
    ns: &Ns<'_>,
    queue: &[u8],
    payload: &[u8],
) -> Result<(Option<u64>, Option<Effect>)> {
    if !s.keeps_metrics() {
        return Ok((None, None));
    }
    let key = ns.clock(queue);
    let now = s.now_ms();
    // Read in place, or from the store's copy of the clock; decoded only
    // when the job was sampled (the clock changes).
    let found = own(s.clock_with(&key, |raw| {
        Clock::date_stored(raw, payload).map(|date| date.map(|(at, i)| (at, i.and_then(|_| Clock::decode(raw)))))
    }))?;
    let Some(Some(Some(Some((at, sampled))))) = found else {
        return Ok((None, None));
    };
    let wait = Some(now.saturating_sub(at));
    let Some(mut clock) = sampled else {
        return Ok((wait, None));
    };
    clock.took(payload);
    s.will_write(&key)?;
    s.clock_written(&key);
    Ok((wait, Some(Effect::Set { key, value: clock.to_bytes() })))
}

#[cfg(test)]
mod tests;
