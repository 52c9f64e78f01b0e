//! Job metrics kept in the namespace's own keys, written in the same step as
//! the move they count (so they are replicated, and survive a restart, as
//! the jobs do).
//!
//! - Per (queue, class) and minute, a [`Tally`]: jobs processed and failed,
//!   and histograms of run time (take → ACK/FAIL) and wait time (enqueued,
//!   or due → take). `<ns>:tq:m:<minute>:<pair>`, written by every ACK and
//!   FAIL. Its TTL is set when the minute is over (a TTL set at once would
//!   be cleared by the MSET that carries each job's write): the minute is
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

use crate::codec::Versioned;
use crate::error::{Result, TqError};
use crate::json;
use crate::keys::Ns;
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

impl Versioned for Tally {
    const VERSION: u8 = 1;
}

impl Tally {
    pub fn merge(&mut self, other: &Tally) {
        self.processed = self.processed.saturating_add(other.processed);
        self.failed = self.failed.saturating_add(other.failed);
        self.run.merge(&other.run);
        self.wait.merge(&other.wait);
    }

    pub fn decode(raw: &[u8]) -> Option<Tally> {
        Self::from_bytes(raw)
    }
}

/// A (queue, class) pair as stored in key names and in `<ns>:tq:metrics`:
/// the JSON array `["queue","class"]`, so that no two pairs share a name
/// whatever `:` they hold.
pub fn pair(queue: &[u8], class: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(queue.len() + class.len() + 7);
    out.push(b'[');
    json::write_string(queue, &mut out);
    out.push(b',');
    json::write_string(class, &mut out);
    out.push(b']');
    out
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

/// Plans the count of jobs that ended now: the write of each pair's minute
/// record, and on a minute's first job the notes that let the timer close
/// it and readers find the pair. Jobs without a class (taken before tq kept
/// it) are not counted.
pub fn plan_count(s: &mut impl Store, ns: &Ns<'_>, jobs: &[Ended<'_>]) -> Result<Vec<Effect>> {
    let mut effects = Vec::new();
    if !s.keeps_metrics() {
        return Ok(effects);
    }
    let minute = minute_of(s.now_ms());
    let mut done: Vec<Vec<u8>> = Vec::new();
    for job in jobs.iter().filter(|j| !j.class.is_empty()) {
        let pair = pair(job.queue, job.class);
        if done.contains(&pair) {
            continue;
        }
        let key = ns.metrics_minute(minute, &pair);
        // Opened for writing from the first look (one open, not two).
        s.will_write(&key)?;
        // A key of another type (someone else's) is left alone: metrics
        // never make a job's report fail.
        let Some(found) = own(s.get_with(&key, Tally::decode))? else {
            done.push(pair);
            continue;
        };
        // A string tq cannot read is started afresh.
        let mut tally = match found {
            Some(Some(t)) => t,
            Some(None) => Tally::default(),
            None => {
                let open = ns.metrics_open();
                s.expect_kind(&open, Kind::Zset)?;
                let pairs = ns.metrics_pairs();
                s.expect_kind(&pairs, Kind::Set)?;
                effects.push(Effect::ZAdd {
                    key: open,
                    score: i64::try_from((minute + 1).saturating_mul(MINUTE_MS)).unwrap_or(i64::MAX),
                    member: open_member(minute, &pair),
                });
                effects.push(Effect::SAdd { key: pairs, member: pair.clone() });
                Tally::default()
            }
        };
        for j in jobs.iter().filter(|j| j.queue == job.queue && j.class == job.class) {
            match j.outcome {
                Outcome::Processed => tally.processed = tally.processed.saturating_add(1),
                Outcome::Failed => tally.failed = tally.failed.saturating_add(1),
            }
            tally.run.add(j.run_ms);
            if let Some(w) = j.wait_ms {
                tally.wait.add(w);
            }
        }
        effects.push(Effect::Set { key, value: tally.to_bytes() });
        done.push(pair);
    }
    Ok(effects)
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
        effects.push(Effect::SetPxAt { key, value: t.to_bytes(), at_ms: ends.saturating_add(HOUR_KEEP_MS) });
    }
    for (pair, add) in totals {
        let key = ns.metrics_total(&pair);
        let mut t = stored_tally(s, &key)?;
        t.merge(&add);
        effects.push(Effect::Set { key, value: t.to_bytes() });
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
/// A push this soon after the clock's last sample is not sampled: it is
/// dated by that sample.
pub const CLOCK_STEP_MS: u64 = 1;

/// When a queue's waiting jobs arrived. Jobs are numbered in arrival order
/// (the queue is FIFO): `taken` is how many tq has taken from its head, so
/// the head is job `taken + 1`; a sample `(n, at)` says jobs numbered `n`
/// and after arrived at `at` or later. A job is dated by the last sample at
/// or before its number, so a wait or age read from the clock is never
/// shorter than the true one, and longer by at most the gap to the next
/// sample. Jobs pushed or taken by other clients (node-resque's workers)
/// shift the numbering until the queue is next found empty by a tq push,
/// which starts the clock afresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Encode, Decode)]
pub struct Clock {
    pub taken: u64,
    pub samples: Vec<(u64, u64)>,
}

impl Versioned for Clock {
    const VERSION: u8 = 1;
}

impl Clock {
    pub fn decode(raw: &[u8]) -> Option<Clock> {
        Self::from_bytes(raw)
    }

    /// When job `n` arrived (at the latest: the time of its sample).
    fn arrived(&self, n: u64) -> Option<u64> {
        self.samples.iter().rev().find(|(first, _)| *first <= n).map(|(_, at)| *at)
    }

    /// The age of the queue's head when it holds `len` jobs.
    pub fn head_age_ms(&self, now: u64, len: u64) -> Option<u64> {
        if len == 0 {
            return None;
        }
        self.arrived(self.taken.saturating_add(1)).map(|at| now.saturating_sub(at))
    }

    /// Notes a push (at the tail) of jobs arriving at `at` onto a queue that
    /// held `len_before`. False when the clock needs no write.
    pub fn pushed(&mut self, len_before: u64, at: u64) -> bool {
        let first = self.taken.saturating_add(len_before).saturating_add(1);
        if len_before == 0 {
            self.samples.clear();
        } else if let Some(&(last_first, last_at)) = self.samples.last() {
            if last_first >= first || (at >= last_at && at - last_at < CLOCK_STEP_MS) {
                return false;
            }
        }
        self.samples.push((first, at));
        while self.samples.len() > CLOCK_SAMPLES {
            self.merge_closest();
        }
        true
    }

    /// Drops the sample closest in time to the one before it (its jobs are
    /// dated by that one from now on).
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

    /// Notes that a take removed `popped` jobs from the head, the last of
    /// which it took; returns how long that one waited (None when the clock
    /// did not know it).
    pub fn took(&mut self, popped: u64, now: u64) -> Option<u64> {
        let n = self.taken.saturating_add(popped);
        let wait = self.arrived(n).map(|at| now.saturating_sub(at));
        self.taken = n;
        // Samples wholly behind the new head date no waiting job.
        let head = n.saturating_add(1);
        while self.samples.get(1).is_some_and(|(first, _)| *first <= head) {
            self.samples.remove(0);
        }
        wait
    }
}

/// The clocks of the queues one command pushes to, noted push by push and
/// written once at the end.
#[derive(Default)]
pub struct Clocks {
    /// (queue, its clock, its length with this command's pushes, changed);
    /// None for a clock tq leaves alone (the key holds another type).
    queues: Vec<(Vec<u8>, Option<Clock>, u64, bool)>,
}

impl Clocks {
    /// Notes a push of `count` jobs arriving at `at` to the tail of `queue`
    /// (`len`: its length before this command, when the caller read it).
    pub fn pushed(
        &mut self,
        s: &mut impl Store,
        ns: &Ns<'_>,
        (queue, len): (&[u8], Option<usize>),
        count: u64,
        at: u64,
    ) -> Result<()> {
        if !s.keeps_metrics() {
            return Ok(());
        }
        let i = match self.queues.iter().position(|(q, ..)| q.as_slice() == queue) {
            Some(i) => i,
            None => {
                let clock = own(s.get_with(&ns.clock(queue), Clock::decode))?.map(|c| c.flatten().unwrap_or_default());
                let len = match len {
                    Some(n) => n,
                    None => s.list_len(&ns.queue(queue))?,
                };
                let len = u64::try_from(len).unwrap_or(u64::MAX);
                self.queues.push((queue.to_vec(), clock, len, false));
                self.queues.len() - 1
            }
        };
        if let Some((_, Some(clock), len, changed)) = self.queues.get_mut(i) {
            *changed |= clock.pushed(*len, at);
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
                effects.push(Effect::Set { key, value: clock.to_bytes() });
            }
        }
        Ok(effects)
    }
}

/// Plans the clock's note of a take that removed `popped` jobs from the
/// head of `queue`: the wait of the job taken, and the write.
pub fn plan_took(s: &mut impl Store, ns: &Ns<'_>, queue: &[u8], popped: u64) -> Result<(Option<u64>, Option<Effect>)> {
    if !s.keeps_metrics() {
        return Ok((None, None));
    }
    let key = ns.clock(queue);
    // Opened for writing from the first look: a queue tq enqueues to has one.
    s.will_write(&key)?;
    let Some(Some(Some(mut clock))) = own(s.get_with(&key, Clock::decode))? else {
        return Ok((None, None));
    };
    let wait = clock.took(popped, s.now_ms());
    Ok((wait, Some(Effect::Set { key, value: clock.to_bytes() })))
}

#[cfg(test)]
mod tests;
