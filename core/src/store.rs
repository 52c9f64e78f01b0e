//! What the queue logic needs from Redis, as a trait, and what it wants done,
//! as data.
//!
//! Every tq command runs in two phases. Planning reads through [`Store`] and
//! either fails (nothing written) or returns a [`Plan`]: the writes as plain
//! [`Effect`]s and the reply. Applying performs the effects and replicates
//! each one as the equivalent plain Redis command. Because Redis runs one
//! command at a time, plan + apply is one atomic step, and an error can only
//! happen before the first write.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::error::{Result, TqError};
use crate::packed::Packed;

/// The type of a key, as `TYPE` reports it (`None` = no such key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    None,
    String,
    List,
    Set,
    Zset,
    Hash,
    Other,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::None => "none",
            Kind::String => "string",
            Kind::List => "list",
            Kind::Set => "set",
            Kind::Zset => "zset",
            Kind::Hash => "hash",
            Kind::Other => "value of another type",
        }
    }
}

/// Reads. Implementations return `TqError::WrongType` when a key exists with
/// another type than the method reads, and may refuse keys the caller may
/// not read (`TqError::NoPerm`).
pub trait Store {
    /// The server's clock, unix milliseconds.
    fn now_ms(&self) -> u64;
    fn kind(&mut self, key: &[u8]) -> Result<Kind>;
    fn list_len(&mut self, key: &[u8]) -> Result<usize>;
    fn list_get(&mut self, key: &[u8], index: usize) -> Result<Option<Vec<u8>>>;
    fn set_contains(&mut self, key: &[u8], member: &[u8]) -> Result<bool>;
    fn set_members(&mut self, key: &[u8]) -> Result<Vec<Vec<u8>>>;
    /// Members scored in [min, max], lowest score first, at most `limit`.
    fn zset_range(&mut self, key: &[u8], min: f64, max: f64, limit: usize) -> Result<Vec<(Vec<u8>, f64)>> {
        self.zset_range_from(key, min, max, 0, limit)
    }
    /// `zset_range` after skipping the first `skip` members of the range:
    /// a long range read in pieces, as far as it is needed.
    fn zset_range_from(
        &mut self,
        key: &[u8],
        min: f64,
        max: f64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, f64)>>;
    fn hash_get(&mut self, key: &[u8], field: &[u8]) -> Result<Option<Vec<u8>>>;
    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// `f` of a string's value, read in place where the store can (no
    /// copy): for values only looked at (counters, entries to decode).
    fn get_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.get(key)?.map(|v| f(&v)))
    }
    /// LRANGE-style: elements `start..=stop` (negative from the end), at most
    /// `max` of them.
    fn list_range(&mut self, key: &[u8], start: i64, stop: i64, max: u64) -> Result<Vec<Vec<u8>>>;
    /// `list_range` of elements the plan pushes on elsewhere, as promotion
    /// does with each job it reads: a store may keep what it read, to push
    /// the same string rather than a new copy of the bytes.
    fn list_range_to_move(&mut self, key: &[u8], start: i64, stop: i64, max: u64) -> Result<Packed> {
        self.list_range(key, start, stop, max).map(Packed::from)
    }
    /// The number of members of a zset (0 when absent).
    fn zset_card(&mut self, key: &[u8]) -> Result<usize>;
    /// A member's score (None when the zset or the member is absent).
    fn zset_score(&mut self, key: &[u8], member: &[u8]) -> Result<Option<f64>>;
    /// One SCAN step over the database: `(next cursor, keys)`.
    fn scan(&mut self, cursor: u64, pattern: &[u8], count: u64) -> Result<(u64, Vec<Vec<u8>>)>;
    /// The key's expiry (unix ms), None when it has none or does not exist.
    fn expire_at(&mut self, key: &[u8]) -> Result<Option<u64>>;
    /// Every field of a hash when it has at most `max`, else `max` random ones.
    fn hash_sample(&mut self, key: &[u8], max: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Notes what the plan being made does, for `INFO tq`; it counts once
    /// the plan is applied.
    fn note(&mut self, _event: crate::stats::Event) {}

    /// The plan will write `key`: its reads are part of that write (as
    /// RPUSH reads the length it replies), so write access to it is what
    /// counts. A store checking the caller's ACL checks write access here;
    /// a Redis store also opens the key for writing at once (only for keys
    /// the plan surely writes: Redis counts such a key as modified).
    fn will_write(&mut self, key: &[u8]) -> Result<()> {
        let _ = key;
        Ok(())
    }

    /// Whether the job metrics are kept (`tq.metrics`; see `metrics`).
    fn keeps_metrics(&self) -> bool {
        true
    }

    /// How long a worker's open tally gathers its jobs
    /// (`tq.metrics-flush-ms`; see `metrics::carry`).
    fn metrics_flush_ms(&self) -> u64 {
        crate::metrics::FLUSH_MS
    }

    /// When a push last looked at the queue clock `key` (and sampled it if
    /// it had to), if this store remembers (see `metrics::Clocks`). A memo
    /// that may forget or be stale: a push it makes skip a sample dates its
    /// job by an earlier one, a wait read longer, never shorter.
    fn clock_checked(&mut self, key: &[u8]) -> Option<u64> {
        let _ = key;
        None
    }

    /// A push at `at` looked at the queue clock `key`.
    fn note_clock_checked(&mut self, key: &[u8], at: u64) {
        let _ = (key, at);
    }

    /// `f` of the queue clock `key`, as `get_with`. A take reads its
    /// queue's clock this way: a store may answer from a copy it keeps of
    /// the clock as last read, which every change to the key it can see
    /// drops (see `clock_written`).
    fn clock_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        self.get_with(key, f)
    }

    /// The plan being made writes the queue clock `key`: a copy kept of it
    /// is no longer the clock.
    fn clock_written(&mut self, key: &[u8]) {
        let _ = key;
    }

    /// Fails unless `key` is absent or of type `want`.
    fn expect_kind(&mut self, key: &[u8], want: Kind) -> Result<()> {
        match self.kind(key)? {
            Kind::None => Ok(()),
            k if k == want => Ok(()),
            k => Err(wrong_type(key, k, want)),
        }
    }
}

pub fn wrong_type(key: &[u8], found: Kind, want: Kind) -> TqError {
    TqError::WrongType { key: key.to_vec(), found: found.name(), expected: want.name() }
}

/// One write, named after the Redis command it replicates as.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    RPush {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Pushes at the head (a job given back goes first).
    LPush {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// Several values pushed at the tail in one step (one RPUSH).
    RPushMany {
        key: Vec<u8>,
        values: Packed,
    },
    /// Removes `member` from each of these sets (promotion's `delayed:<ts>`
    /// markers); a key that is not a set is left alone. Replicated as one DEL
    /// of the sets it emptied, and SREM for the others.
    RemoveMarkers {
        keys: Packed,
        member: Vec<u8>,
    },
    /// Removes `count` elements from the head (one `LPOP key count`).
    LPopN {
        key: Vec<u8>,
        count: usize,
    },
    /// Removes the head of a list (whose value planning has already read).
    LPop {
        key: Vec<u8>,
    },
    /// Replicated only when the member was not there yet.
    SAdd {
        key: Vec<u8>,
        member: Vec<u8>,
    },
    /// Replicated only when the member was there.
    SRem {
        key: Vec<u8>,
        member: Vec<u8>,
    },
    ZAdd {
        key: Vec<u8>,
        score: i64,
        member: Vec<u8>,
    },
    ZRem {
        key: Vec<u8>,
        member: Vec<u8>,
    },
    /// Several members removed in one step (replicated as one ZREM of those
    /// that were there).
    ZRemMany {
        key: Vec<u8>,
        members: Vec<Vec<u8>>,
    },
    /// Several values pushed at the head in one step, in this order (one
    /// LPUSH: the last one ends first, as after one LPUSH each).
    LPushMany {
        key: Vec<u8>,
        values: Packed,
    },
    /// Several fields set in one step (one HSET).
    HSetMany {
        key: Vec<u8>,
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Set {
        key: Vec<u8>,
        value: Vec<u8>,
    },
    /// A string that expires at a unix time (replicated as SET ... PXAT).
    SetPxAt {
        key: Vec<u8>,
        value: Vec<u8>,
        at_ms: u64,
    },
    /// Replaces the element at `index` (which exists).
    LSet {
        key: Vec<u8>,
        index: i64,
        value: Vec<u8>,
    },
    /// Removes `count` occurrences of `value` (0 = all; LREM's count). The
    /// number removed is reported by `apply` (see `Reply::Removed`).
    LRem {
        key: Vec<u8>,
        count: i64,
        value: Vec<u8>,
    },
    /// Replicated as PEXPIREAT.
    PExpireAt {
        key: Vec<u8>,
        at_ms: u64,
    },
    /// Several strings in one step (replicated as one MSET).
    MSet {
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
    },
    /// Deletes the keys that exist (replicated as one DEL).
    Del {
        keys: Vec<Vec<u8>>,
    },
    /// The key holds an integer (checked while planning) or is absent.
    Incr {
        key: Vec<u8>,
    },
    HSet {
        key: Vec<u8>,
        field: Vec<u8>,
        value: Vec<u8>,
    },
    HDel {
        key: Vec<u8>,
        field: Vec<u8>,
    },
    /// Several fields removed in one step (replicated as one HDEL of those
    /// that were there).
    HDelMany {
        key: Vec<u8>,
        fields: Vec<Vec<u8>>,
    },
}

impl Effect {
    /// The keys the effect writes, in order.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        let (one, many): (Option<&[u8]>, &[Vec<u8>]) = match self {
            Effect::RPush { key, .. }
            | Effect::RPushMany { key, .. }
            | Effect::LPopN { key, .. }
            | Effect::LPush { key, .. }
            | Effect::LRem { key, .. }
            | Effect::LSet { key, .. }
            | Effect::LPop { key }
            | Effect::SAdd { key, .. }
            | Effect::SRem { key, .. }
            | Effect::ZAdd { key, .. }
            | Effect::ZRem { key, .. }
            | Effect::ZRemMany { key, .. }
            | Effect::LPushMany { key, .. }
            | Effect::HSetMany { key, .. }
            | Effect::Set { key, .. }
            | Effect::SetPxAt { key, .. }
            | Effect::PExpireAt { key, .. }
            | Effect::Incr { key }
            | Effect::HSet { key, .. }
            | Effect::HDel { key, .. }
            | Effect::HDelMany { key, .. } => (Some(key), &[]),
            Effect::Del { keys } => (None, keys),
            Effect::RemoveMarkers { keys, .. } => return EffectKeys::Packed(keys.iter()),
            Effect::MSet { pairs } => {
                return EffectKeys::Pairs(pairs.iter());
            }
        };
        match one {
            Some(k) => EffectKeys::One(Some(k)),
            None => EffectKeys::Many(many.iter()),
        }
    }
}

pub enum EffectKeys<'a> {
    One(Option<&'a [u8]>),
    Many(std::slice::Iter<'a, Vec<u8>>),
    Pairs(std::slice::Iter<'a, (Vec<u8>, Vec<u8>)>),
    Packed(crate::packed::Iter<'a>),
}

impl<'a> Iterator for EffectKeys<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            EffectKeys::One(k) => k.take(),
            EffectKeys::Many(it) => it.next().map(Vec::as_slice),
            EffectKeys::Pairs(it) => it.next().map(|(k, _)| k.as_slice()),
            EffectKeys::Packed(it) => it.next(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Ok,
    /// The module replies later (a blocked client).
    NoReply,
    /// The number of elements the plan's LREM effects removed, known once
    /// they are applied.
    Removed,
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Array(Vec<Reply>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub effects: Vec<Effect>,
    pub reply: Reply,
}

impl Plan {
    pub fn new(reply: Reply) -> Self {
        // Room for a take-and-complete's writes: growing the vector step by
        // step costs an allocation each time.
        Plan { effects: Vec::with_capacity(16), reply }
    }
}

/// The value `key` reaches after this increment and `pending` earlier ones
/// of the same plan, refused (as INCR would refuse it) when the value is
/// not an integer or the sum would overflow.
fn next_count(s: &mut impl Store, key: &[u8], pending: i64) -> Result<i64> {
    let current = match s.get_with(key, parse_i64)? {
        None => 0,
        Some(v) => {
            v.ok_or_else(|| TqError::Corrupt { key: key.to_vec(), what: "value is not an integer".to_string() })?
        }
    };
    current
        .checked_add(pending + 1)
        .ok_or_else(|| TqError::Corrupt { key: key.to_vec(), what: "increment would overflow".to_string() })
}

/// Plans `INCR key`, refusing (as INCR would) a value that is not an integer
/// or would overflow.
pub fn plan_incr(s: &mut impl Store, key: Vec<u8>, pending: i64) -> Result<Effect> {
    next_count(s, &key, pending)?;
    Ok(Effect::Incr { key })
}

/// Plans a counter's increment as the value it will hold: a `Set` of
/// `current + 1 + pending`, refused as INCR would refuse it. Unlike
/// `Effect::Incr` it can share one MSET with the command's other strings.
pub fn plan_count(s: &mut impl Store, key: Vec<u8>, pending: i64) -> Result<Effect> {
    s.will_write(&key)?;
    let next = next_count(s, &key, pending)?;
    Ok(Effect::Set { key, value: next.to_string().into_bytes() })
}

/// Plans above this many effects are only gathered (see `gather`):
/// coalescing looks at every pair.
const COALESCE_MAX: usize = 48;

/// The same writes in fewer, cheaper steps, with the same final data:
/// - a write to a key that a later `Set`/`SetPxAt`/`MSet` replaces whole
///   (nothing in between touching that key) is dropped, as is its key from
///   a `Del` or an earlier `MSet`;
/// - a `ZRem` of a member that a later `ZAdd` puts back is dropped;
/// - plain `Set`s and `MSet`s become one `MSet` (at the first one's place,
///   as long as nothing in between touches their keys).
///
/// Each remaining effect is one Redis write and one replicated command, so
/// this is what keeps a take-and-complete close to the plain writes it
/// stands for. (`LRem` is never dropped: its count is part of the reply.)
pub fn coalesce(effects: Vec<Effect>) -> Vec<Effect> {
    if effects.len() > COALESCE_MAX {
        return gather(effects);
    }
    if effects.len() < 2 {
        return effects;
    }
    if nothing_to_fold(&effects) {
        return effects;
    }
    fold(effects)
}

/// Whether no rule of `coalesce` can change `effects`: no ZREM, and at most
/// one string write, whose keys nothing before it writes. Plans already in
/// their fewest writes (an enqueue's; a busy worker's one-pass step) are
/// such lists, and are left alone without the slots `fold` allocates.
fn nothing_to_fold(effects: &[Effect]) -> bool {
    let is_string = |e: &Effect| matches!(e, Effect::Set { .. } | Effect::SetPxAt { .. } | Effect::MSet { .. });
    if effects.iter().any(|e| matches!(e, Effect::ZRem { .. })) {
        return false;
    }
    let mut strings = effects.iter().enumerate().filter(|(_, e)| is_string(e));
    let Some((at, string)) = strings.next() else { return true };
    if strings.next().is_some() {
        return false;
    }
    let before = effects.get(..at).unwrap_or_default();
    !string.keys().any(|key| before.iter().any(|e| e.keys().any(|k| k == key)))
}

/// `coalesce`'s rules applied, for a list of at most `COALESCE_MAX`.
fn fold(effects: Vec<Effect>) -> Vec<Effect> {
    // Nothing is cloned: this runs on every command, where each allocation
    // costs as much as a comparison of every key pair.
    let mut slots: Vec<Option<Effect>> = effects.into_iter().map(Some).collect();
    // Writes made dead by a later whole replacement.
    for i in (1..slots.len()).rev() {
        let (before, rest) = slots.split_at_mut(i);
        let replaced: &[u8] = match rest.first() {
            Some(Some(Effect::Set { key, .. } | Effect::SetPxAt { key, .. })) => key,
            Some(Some(Effect::MSet { pairs })) => {
                for (key, _) in pairs {
                    drop_replaced(before, key);
                }
                continue;
            }
            _ => continue,
        };
        drop_replaced(before, replaced);
    }
    // A ZREM undone by a later ZADD of the same member.
    for i in 0..slots.len() {
        let (head, after) = slots.split_at_mut(i + 1);
        let Some(slot) = head.last_mut() else { continue };
        let Some(Effect::ZRem { key, member }) = slot.as_ref() else { continue };
        for e in after.iter().flatten() {
            if let Effect::ZAdd { key: k, member: m, .. } = e {
                if k == key && m == member {
                    *slot = None;
                    break;
                }
            }
            if e.keys().any(|k| k == key.as_slice()) {
                break;
            }
        }
    }
    // Plain strings gathered into the first MSET they can join.
    let mut target: Option<usize> = None;
    for i in 0..slots.len() {
        let is_string = matches!(slots.get(i), Some(Some(Effect::Set { .. } | Effect::MSet { .. })));
        if !is_string {
            continue;
        }
        let Some(t) = target else {
            target = Some(i);
            continue;
        };
        let blocked = match slots.get(i) {
            Some(Some(e)) => e.keys().any(|k| slots.get(t..i).is_some_and(|between| touched(between, k))),
            _ => true,
        };
        if blocked {
            target = Some(i);
            continue;
        }
        let moved = match slots.get_mut(i).and_then(Option::take) {
            Some(Effect::Set { key, value }) => vec![(key, value)],
            Some(Effect::MSet { pairs }) => pairs,
            _ => continue,
        };
        if let Some(slot) = slots.get_mut(t) {
            *slot = match slot.take() {
                Some(Effect::Set { key, value }) => {
                    let mut all = Vec::with_capacity(1 + moved.len());
                    all.push((key, value));
                    all.extend(moved);
                    Some(Effect::MSet { pairs: all })
                }
                Some(Effect::MSet { mut pairs }) => {
                    pairs.extend(moved);
                    Some(Effect::MSet { pairs })
                }
                other => other,
            };
        }
    }
    slots.into_iter().flatten().collect()
}

/// A big plan's writes gathered into fewer commands, with the same final
/// data: each ZREM, LPUSH, RPUSH, HSET or DEL joins the first earlier one
/// of its kind on its key (every DEL joins the first DEL) when nothing in
/// between writes a key it writes. A round of the timer (hundreds of jobs,
/// a handful of writes each) then replicates a few commands per key rather
/// than one per write: the server looks each replicated command up by its
/// name, which costs more than most writes.
pub fn gather(effects: Vec<Effect>) -> Vec<Effect> {
    if effects.len() < 2 || !joins_any(&effects) {
        return effects;
    }
    // Each key named by a number, hashed once where it first appears: the
    // effects' keys are (effect i's keys) ids[spans[i].0..spans[i].1].
    let (ids, spans, count) = {
        let mut numbers: HashMap<&[u8], usize> = HashMap::with_capacity(effects.len() * 2);
        let mut ids = Vec::with_capacity(effects.len() * 2);
        let mut spans = Vec::with_capacity(effects.len());
        for e in &effects {
            let from = ids.len();
            for k in e.keys() {
                let next = numbers.len();
                ids.push(*numbers.entry(k).or_insert(next));
            }
            spans.push((from, ids.len()));
        }
        (ids, spans, numbers.len())
    };
    let mut out: Vec<Effect> = Vec::with_capacity(effects.len());
    // Per key and kind (ZREM, LPUSH, RPUSH, HSET), and for DEL, where in
    // `out` the others of it join.
    let mut groups: Vec<[Option<usize>; 4]> = vec![[None; 4]; count];
    let mut del: Option<usize> = None;
    // key -> where in `out` the last effect writing it is.
    let mut last: Vec<Option<usize>> = vec![None; count];
    for (e, (from, to)) in effects.into_iter().zip(spans) {
        let keys = ids.get(from..to).unwrap_or_default();
        let first = keys.first().copied().unwrap_or(usize::MAX);
        let group: Option<&mut Option<usize>> = match join_kind(&e) {
            Some(DEL) => Some(&mut del),
            Some(i) => groups.get_mut(first).and_then(|g| g.get_mut(usize::from(i))),
            None => None,
        };
        // Moved up to `t`, it must not pass a write of any of its keys.
        let target = group
            .as_ref()
            .and_then(|g| **g)
            .filter(|&t| keys.iter().all(|&k| last.get(k).copied().flatten().is_none_or(|at| at <= t)));
        let left = match target.and_then(|t| out.get_mut(t)) {
            Some(into) => join(into, e),
            None => Some(e),
        };
        // Joined at `t`, or (not joined) last in `out`.
        let at = match left {
            None => target.unwrap_or(out.len()),
            Some(e) => {
                if let Some(g) = group {
                    *g = Some(out.len());
                }
                out.push(e);
                out.len() - 1
            }
        };
        for &k in keys {
            if let Some(slot) = last.get_mut(k) {
                *slot = Some(slot.map_or(at, |was| was.max(at)));
            }
        }
    }
    out
}

/// The kind `gather` joins an effect by (ZREM, LPUSH, RPUSH, HSET, DEL),
/// None for the others.
fn join_kind(e: &Effect) -> Option<u8> {
    match e {
        Effect::ZRem { .. } | Effect::ZRemMany { .. } => Some(0),
        Effect::LPush { .. } | Effect::LPushMany { .. } => Some(1),
        Effect::RPush { .. } | Effect::RPushMany { .. } => Some(2),
        Effect::HSet { .. } | Effect::HSetMany { .. } => Some(3),
        Effect::Del { .. } => Some(DEL),
        _ => None,
    }
}

/// `join_kind` of a DEL: every DEL joins the first one, whatever its keys.
const DEL: u8 = 4;

/// Whether two effects of `effects` could be joined: two of a kind on the
/// same key (any two DELs). A timer step that promotes one bucket has
/// none, and its markers' hundreds of keys then need no key map. Past a
/// few candidates it answers yes rather than compare every pair.
fn joins_any(effects: &[Effect]) -> bool {
    const FEW: usize = 32;
    let mut seen: [(u8, &[u8]); FEW] = [(0, &[]); FEW];
    let mut n = 0;
    for e in effects {
        let Some(kind) = join_kind(e) else { continue };
        let key = e.keys().next().unwrap_or_default();
        let earlier = seen.get(..n).unwrap_or_default();
        if n == FEW || earlier.iter().any(|&(k, other)| k == kind && (kind == DEL || other == key)) {
            return true;
        }
        if let Some(slot) = seen.get_mut(n) {
            *slot = (kind, key);
        }
        n += 1;
    }
    false
}

/// Adds `e` to `into`, found by `gather` as one of its kind on its key;
/// gives `e` back for any other pair.
fn join(into: &mut Effect, e: Effect) -> Option<Effect> {
    let wide = match std::mem::replace(into, Effect::Del { keys: Vec::new() }) {
        Effect::ZRem { key, member } => Effect::ZRemMany { key, members: vec![member] },
        Effect::LPush { key, value } => Effect::LPushMany { key, values: Packed::from(vec![value]) },
        Effect::RPush { key, value } => Effect::RPushMany { key, values: Packed::from(vec![value]) },
        Effect::HSet { key, field, value } => Effect::HSetMany { key, pairs: vec![(field, value)] },
        other => other,
    };
    *into = wide;
    match (into, e) {
        (Effect::ZRemMany { members, .. }, Effect::ZRem { member, .. }) => members.push(member),
        (Effect::ZRemMany { members, .. }, Effect::ZRemMany { members: more, .. }) => members.extend(more),
        (Effect::LPushMany { values, .. }, Effect::LPush { value, .. }) => values.push(&value),
        (Effect::LPushMany { values, .. }, Effect::LPushMany { values: more, .. }) => values.extend(&more),
        (Effect::RPushMany { values, .. }, Effect::RPush { value, .. }) => values.push(&value),
        (Effect::RPushMany { values, .. }, Effect::RPushMany { values: more, .. }) => values.extend(&more),
        (Effect::HSetMany { pairs, .. }, Effect::HSet { field, value, .. }) => pairs.push((field, value)),
        (Effect::HSetMany { pairs, .. }, Effect::HSetMany { pairs: more, .. }) => pairs.extend(more),
        (Effect::Del { keys }, Effect::Del { keys: more }) => keys.extend(more),
        (_, e) => return Some(e),
    }
    None
}

/// Whether any of these effects writes `key`.
fn touched(effects: &[Option<Effect>], key: &[u8]) -> bool {
    effects.iter().flatten().any(|e| e.keys().any(|k| k == key))
}

/// Drops the writes to `key` in `before` that a later whole replacement of
/// it makes dead, from the last back to the first one that matters.
fn drop_replaced(before: &mut [Option<Effect>], key: &[u8]) {
    for slot in before.iter_mut().rev() {
        let Some(e) = slot.as_mut() else { continue };
        if !e.keys().any(|k| k == key) {
            continue;
        }
        match e {
            Effect::Del { keys } => {
                keys.retain(|k| k.as_slice() != key);
                if keys.is_empty() {
                    *slot = None;
                }
            }
            Effect::MSet { pairs } => {
                pairs.retain(|(k, _)| k.as_slice() != key);
                if pairs.is_empty() {
                    *slot = None;
                }
            }
            Effect::LRem { .. } => return,
            e if e.keys().nth(1).is_none() => *slot = None,
            _ => return,
        }
    }
}

/// Redis's integer string rule (what INCR accepts).
pub fn parse_i64(v: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(v).ok()?;
    if s.is_empty()
        || s.len() > 20
        || s.starts_with('+')
        || (s.len() > 1 && (s.starts_with('0') || s.starts_with("-0")))
    {
        return None;
    }
    s.parse().ok()
}

/// An in-memory Redis subset: the `Store` for unit tests and a model of how
/// effects change data. Two stores are equal when their data are (notes
/// are not data).
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    pub now: u64,
    pub data: HashMap<Vec<u8>, MemValue>,
    /// Key expiries (unix ms); an expired key reads as absent.
    pub expires: HashMap<Vec<u8>, u64>,
    /// What plans noted.
    pub notes: Vec<crate::stats::Event>,
    /// `tq.metrics no`.
    pub no_metrics: bool,
    /// `tq.metrics-flush-ms`, when not the default.
    pub metrics_flush_ms: Option<u64>,
    /// What `note_clock_checked` noted.
    pub clocks_checked: HashMap<Vec<u8>, u64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum MemValue {
    String(Vec<u8>),
    List(VecDeque<Vec<u8>>),
    Set(HashSet<Vec<u8>>),
    Zset(Vec<(Vec<u8>, f64)>),
    Hash(HashMap<Vec<u8>, Vec<u8>>),
}

impl MemValue {
    fn kind(&self) -> Kind {
        match self {
            MemValue::String(_) => Kind::String,
            MemValue::List(_) => Kind::List,
            MemValue::Set(_) => Kind::Set,
            MemValue::Zset(_) => Kind::Zset,
            MemValue::Hash(_) => Kind::Hash,
        }
    }
}

impl MemStore {
    pub fn at(now: u64) -> Self {
        MemStore { now, ..MemStore::default() }
    }

    pub fn list(&self, key: &[u8]) -> Vec<Vec<u8>> {
        match self.data.get(key) {
            Some(MemValue::List(l)) => l.iter().cloned().collect(),
            _ => Vec::new(),
        }
    }

    pub fn members(&self, key: &[u8]) -> Vec<Vec<u8>> {
        let mut m: Vec<Vec<u8>> = match self.data.get(key) {
            Some(MemValue::Set(s)) => s.iter().cloned().collect(),
            Some(MemValue::Zset(z)) => z.iter().map(|(m, _)| m.clone()).collect(),
            _ => Vec::new(),
        };
        m.sort();
        m
    }

    pub fn string(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.data.get(key) {
            Some(MemValue::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    /// Drops `key` if its expiry has passed, as Redis does on access.
    fn expire(&mut self, key: &[u8]) {
        if self.expires.get(key).is_some_and(|&at| at <= self.now) {
            self.expires.remove(key);
            self.data.remove(key);
        }
    }

    fn typed(&mut self, key: &[u8], want: Kind) -> Result<Option<&mut MemValue>> {
        self.expire(key);
        match self.data.get_mut(key) {
            None => Ok(None),
            Some(v) if v.kind() == want => Ok(Some(v)),
            Some(v) => Err(wrong_type(key, v.kind(), want)),
        }
    }

    /// Applies effects as Redis would, dropping keys that become empty.
    /// Returns how many list elements LREM effects removed.
    pub fn apply(&mut self, effects: &[Effect]) -> usize {
        let mut removed = 0;
        for e in effects {
            let key = e.keys().next().unwrap_or_default().to_vec();
            match e {
                Effect::RPush { value, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::List(VecDeque::new()));
                    if let MemValue::List(l) = v {
                        l.push_back(value.clone());
                    }
                }
                Effect::LPush { value, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::List(VecDeque::new()));
                    if let MemValue::List(l) = v {
                        l.push_front(value.clone());
                    }
                }
                Effect::LPushMany { values, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::List(VecDeque::new()));
                    if let MemValue::List(l) = v {
                        for value in values {
                            l.push_front(value.to_vec());
                        }
                    }
                }
                Effect::ZRemMany { members, .. } => {
                    if let Some(MemValue::Zset(z)) = self.data.get_mut(&key) {
                        z.retain(|(m, _)| !members.contains(m));
                    }
                }
                Effect::HSetMany { pairs, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::Hash(HashMap::new()));
                    if let MemValue::Hash(h) = v {
                        for (field, value) in pairs {
                            h.insert(field.clone(), value.clone());
                        }
                    }
                }
                Effect::LPop { .. } => {
                    if let Some(MemValue::List(l)) = self.data.get_mut(&key) {
                        l.pop_front();
                    }
                }
                Effect::LSet { index, value, .. } => {
                    if let Some(MemValue::List(l)) = self.data.get_mut(&key) {
                        if let Some(slot) = usize::try_from(*index).ok().and_then(|i| l.get_mut(i)) {
                            *slot = value.clone();
                        }
                    }
                }
                Effect::LRem { count, value, .. } => {
                    if let Some(MemValue::List(l)) = self.data.get_mut(&key) {
                        let mut left = if *count == 0 { usize::MAX } else { count.unsigned_abs() as usize };
                        let before = l.len();
                        if *count >= 0 {
                            l.retain(|v| {
                                !(v == value && left > 0 && {
                                    left -= 1;
                                    true
                                })
                            });
                        } else {
                            let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
                            while let Some(v) = l.pop_back() {
                                if v == *value && left > 0 {
                                    left -= 1;
                                } else {
                                    kept.push_front(v);
                                }
                            }
                            *l = kept;
                        }
                        removed += before - l.len();
                    }
                }
                Effect::LPopN { count, .. } => {
                    if let Some(MemValue::List(l)) = self.data.get_mut(&key) {
                        for _ in 0..*count {
                            l.pop_front();
                        }
                    }
                }
                Effect::RPushMany { values, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::List(VecDeque::new()));
                    if let MemValue::List(l) = v {
                        l.extend(values.iter().map(<[u8]>::to_vec));
                    }
                }
                Effect::SAdd { member, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::Set(HashSet::new()));
                    if let MemValue::Set(s) = v {
                        s.insert(member.clone());
                    }
                }
                Effect::SRem { member, .. } => {
                    if let Some(MemValue::Set(s)) = self.data.get_mut(&key) {
                        s.remove(member);
                    }
                }
                Effect::ZAdd { score, member, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::Zset(Vec::new()));
                    if let MemValue::Zset(z) = v {
                        z.retain(|(m, _)| m != member);
                        z.push((member.clone(), *score as f64));
                        z.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
                    }
                }
                Effect::ZRem { member, .. } => {
                    if let Some(MemValue::Zset(z)) = self.data.get_mut(&key) {
                        z.retain(|(m, _)| m != member);
                    }
                }
                Effect::Set { value, .. } => {
                    self.expires.remove(&key);
                    self.data.insert(key.clone(), MemValue::String(value.clone()));
                }
                Effect::SetPxAt { value, at_ms, .. } => {
                    self.data.insert(key.clone(), MemValue::String(value.clone()));
                    self.expires.insert(key.clone(), *at_ms);
                }
                Effect::PExpireAt { at_ms, .. } => {
                    if self.data.contains_key(&key) {
                        self.expires.insert(key.clone(), *at_ms);
                    }
                }
                Effect::MSet { pairs } => {
                    for (k, v) in pairs {
                        self.expires.remove(k);
                        self.data.insert(k.clone(), MemValue::String(v.clone()));
                    }
                }
                Effect::Del { keys } => {
                    for k in keys {
                        self.expires.remove(k);
                        self.data.remove(k);
                    }
                }
                Effect::RemoveMarkers { keys, member } => {
                    for k in keys {
                        if let Some(MemValue::Set(s)) = self.data.get_mut(k) {
                            s.remove(member);
                            if s.is_empty() {
                                self.data.remove(k);
                            }
                        }
                    }
                }
                Effect::Incr { .. } => {
                    let n = self.string(&key).and_then(|v| parse_i64(&v)).unwrap_or(0) + 1;
                    self.data.insert(key.clone(), MemValue::String(n.to_string().into_bytes()));
                }
                Effect::HSet { field, value, .. } => {
                    let v = self.data.entry(key.clone()).or_insert_with(|| MemValue::Hash(HashMap::new()));
                    if let MemValue::Hash(h) = v {
                        h.insert(field.clone(), value.clone());
                    }
                }
                Effect::HDel { field, .. } => {
                    if let Some(MemValue::Hash(h)) = self.data.get_mut(&key) {
                        h.remove(field);
                    }
                }
                Effect::HDelMany { fields, .. } => {
                    if let Some(MemValue::Hash(h)) = self.data.get_mut(&key) {
                        for f in fields {
                            h.remove(f);
                        }
                    }
                }
            }
            let empty = match self.data.get(&key) {
                Some(MemValue::List(l)) => l.is_empty(),
                Some(MemValue::Set(s)) => s.is_empty(),
                Some(MemValue::Zset(z)) => z.is_empty(),
                Some(MemValue::Hash(h)) => h.is_empty(),
                _ => false,
            };
            if empty {
                self.data.remove(&key);
                self.expires.remove(&key);
            }
        }
        removed
    }
}

impl PartialEq for MemStore {
    fn eq(&self, other: &Self) -> bool {
        self.now == other.now && self.data == other.data && self.expires == other.expires
    }
}

impl Store for MemStore {
    fn keeps_metrics(&self) -> bool {
        !self.no_metrics
    }
    fn metrics_flush_ms(&self) -> u64 {
        self.metrics_flush_ms.unwrap_or(crate::metrics::FLUSH_MS)
    }
    fn clock_checked(&mut self, key: &[u8]) -> Option<u64> {
        self.clocks_checked.get(key).copied()
    }
    fn note_clock_checked(&mut self, key: &[u8], at: u64) {
        self.clocks_checked.insert(key.to_vec(), at);
    }
    fn now_ms(&self) -> u64 {
        self.now
    }

    fn note(&mut self, event: crate::stats::Event) {
        self.notes.push(event);
    }

    fn kind(&mut self, key: &[u8]) -> Result<Kind> {
        self.expire(key);
        Ok(self.data.get(key).map_or(Kind::None, MemValue::kind))
    }

    fn list_len(&mut self, key: &[u8]) -> Result<usize> {
        Ok(match self.typed(key, Kind::List)? {
            Some(MemValue::List(l)) => l.len(),
            _ => 0,
        })
    }

    fn list_get(&mut self, key: &[u8], index: usize) -> Result<Option<Vec<u8>>> {
        Ok(match self.typed(key, Kind::List)? {
            Some(MemValue::List(l)) => l.get(index).cloned(),
            _ => None,
        })
    }

    fn set_contains(&mut self, key: &[u8], member: &[u8]) -> Result<bool> {
        Ok(match self.typed(key, Kind::Set)? {
            Some(MemValue::Set(s)) => s.contains(member),
            _ => false,
        })
    }

    fn set_members(&mut self, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(match self.typed(key, Kind::Set)? {
            Some(MemValue::Set(s)) => s.iter().cloned().collect(),
            _ => Vec::new(),
        })
    }

    fn zset_range_from(
        &mut self,
        key: &[u8],
        min: f64,
        max: f64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, f64)>> {
        Ok(match self.typed(key, Kind::Zset)? {
            Some(MemValue::Zset(z)) => {
                z.iter().filter(|(_, s)| *s >= min && *s <= max).skip(skip).take(limit).cloned().collect()
            }
            _ => Vec::new(),
        })
    }

    fn hash_get(&mut self, key: &[u8], field: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(match self.typed(key, Kind::Hash)? {
            Some(MemValue::Hash(h)) => h.get(field).cloned(),
            _ => None,
        })
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(match self.typed(key, Kind::String)? {
            Some(MemValue::String(s)) => Some(s.clone()),
            _ => None,
        })
    }

    fn list_range(&mut self, key: &[u8], start: i64, stop: i64, max: u64) -> Result<Vec<Vec<u8>>> {
        Ok(match self.typed(key, Kind::List)? {
            Some(MemValue::List(l)) => {
                let len = i64::try_from(l.len()).unwrap_or(i64::MAX);
                let norm = |i: i64| if i < 0 { (len + i).max(0) } else { i.min(len) };
                let (a, b) = (norm(start), norm(stop).min(len - 1));
                if a > b {
                    Vec::new()
                } else {
                    l.iter().skip(a as usize).take(((b - a + 1) as u64).min(max) as usize).cloned().collect()
                }
            }
            _ => Vec::new(),
        })
    }

    fn zset_card(&mut self, key: &[u8]) -> Result<usize> {
        Ok(match self.typed(key, Kind::Zset)? {
            Some(MemValue::Zset(z)) => z.len(),
            _ => 0,
        })
    }

    fn zset_score(&mut self, key: &[u8], member: &[u8]) -> Result<Option<f64>> {
        Ok(match self.typed(key, Kind::Zset)? {
            Some(MemValue::Zset(z)) => z.iter().find(|(m, _)| m.as_slice() == member).map(|(_, s)| *s),
            _ => None,
        })
    }

    fn scan(&mut self, cursor: u64, pattern: &[u8], count: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        // A simple model: keys sorted, cursor = index; `prefix*suffix*` globs.
        let mut keys: Vec<&Vec<u8>> = self.data.keys().collect();
        keys.sort();
        let unescaped: Vec<u8> = pattern.iter().copied().filter(|&c| c != b'\\').collect();
        let parts: Vec<&[u8]> = unescaped.split(|&c| c == b'*').collect();
        let matches = |k: &[u8]| {
            let mut rest = k;
            for (i, part) in parts.iter().enumerate() {
                if i == 0 {
                    match rest.strip_prefix(*part) {
                        Some(r) => rest = r,
                        None => return false,
                    }
                } else if let Some(pos) = rest.windows(part.len().max(1)).position(|w| w == *part) {
                    rest = rest.get(pos + part.len()..).unwrap_or_default();
                } else if !part.is_empty() {
                    return false;
                }
            }
            true
        };
        let start = usize::try_from(cursor).unwrap_or(usize::MAX);
        let step = usize::try_from(count).unwrap_or(usize::MAX);
        let found = keys.iter().skip(start).take(step).filter(|k| matches(k)).map(|k| (*k).clone()).collect();
        let next = if start.saturating_add(step) >= keys.len() { 0 } else { (start + step) as u64 };
        Ok((next, found))
    }

    fn expire_at(&mut self, key: &[u8]) -> Result<Option<u64>> {
        self.expire(key);
        Ok(self.expires.get(key).copied())
    }

    fn hash_sample(&mut self, key: &[u8], max: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        Ok(match self.typed(key, Kind::Hash)? {
            Some(MemValue::Hash(h)) => h.iter().take(max).map(|(k, v)| (k.clone(), v.clone())).collect(),
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_incr_rules() {
        for ok in ["0", "-1", "42", "9223372036854775807", "-9223372036854775808"] {
            assert!(parse_i64(ok.as_bytes()).is_some(), "{ok}");
        }
        for bad in ["", "+1", "01", "-0", "1.0", " 1", "9223372036854775808", "abc"] {
            assert!(parse_i64(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    /// A seeded xorshift: `next(n)` is a number below `n`.
    fn xorshift(mut seed: u64) -> impl FnMut(u64) -> u64 {
        move |n| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        }
    }

    /// Random type-consistent effect lists (strings s*, lists l*, zsets z*,
    /// sets t*) give the same data and expiries coalesced as applied one by
    /// one. The seed of a failing case is in the assertion message.
    #[test]
    fn coalescing_keeps_the_final_data() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let k = |p: &str, i: u64| format!("{p}{i}").into_bytes();
        let mut shortened = 0;
        for case in 0..4000 {
            let mut base = MemStore::at(1000);
            base.data.insert(b"s0".to_vec(), MemValue::String(b"old".to_vec()));
            base.expires.insert(b"s0".to_vec(), 5000);
            base.data.insert(b"l0".to_vec(), MemValue::List(VecDeque::from(vec![b"a".to_vec()])));
            base.data.insert(b"z0".to_vec(), MemValue::Zset(vec![(b"m0".to_vec(), 1.0)]));
            let n = 2 + next(10);
            let mut effects = Vec::new();
            for _ in 0..n {
                let v = format!("v{}", next(3)).into_bytes();
                let e = match next(11) {
                    0 => Effect::Set { key: k("s", next(3)), value: v },
                    1 => Effect::SetPxAt { key: k("s", next(3)), value: v, at_ms: 2000 + next(3) },
                    2 => Effect::MSet { pairs: (0..1 + next(2)).map(|_| (k("s", next(3)), v.clone())).collect() },
                    3 => Effect::Del {
                        keys: (0..1 + next(2)).map(|_| k(["s", "l", "z"][next(3) as usize], next(2))).collect(),
                    },
                    4 => Effect::RPush { key: k("l", next(2)), value: v },
                    5 => Effect::LRem { key: k("l", next(2)), count: 0, value: v },
                    6 => Effect::ZAdd { key: k("z", next(2)), score: next(5) as i64, member: k("m", next(2)) },
                    7 => Effect::ZRem { key: k("z", next(2)), member: k("m", next(2)) },
                    8 => Effect::PExpireAt { key: k("s", next(3)), at_ms: 3000 },
                    9 => Effect::SAdd { key: k("t", next(2)), member: k("m", next(2)) },
                    _ => Effect::Incr { key: k("s", 3 + next(2)) },
                };
                effects.push(e);
            }
            let mut plain = base.clone();
            let removed = plain.apply(&effects);
            let mut merged = base.clone();
            let fewer = coalesce(effects.clone());
            let removed_merged = merged.apply(&fewer);
            assert_eq!(plain.data, merged.data, "case {case}: {effects:?} became {fewer:?}");
            assert_eq!(plain.expires, merged.expires, "case {case}: {effects:?} became {fewer:?}");
            assert_eq!(removed, removed_merged, "case {case}: {effects:?} became {fewer:?}");
            assert!(fewer.len() <= effects.len());
            shortened += usize::from(fewer.len() < effects.len());
        }
        assert!(shortened > 1000, "only {shortened} of 4000 lists were shortened");
    }

    /// The early exit of `coalesce` leaves alone exactly the lists that its
    /// rules would give back unchanged (random lists as above, weighted
    /// toward few string writes so that both outcomes are common).
    #[test]
    fn coalescing_skips_only_what_folding_keeps() {
        let mut next = xorshift(0x6a09_e667_f3bc_c908);
        let k = |p: &str, i: u64| format!("{p}{i}").into_bytes();
        let (mut skipped, mut folded) = (0, 0);
        for case in 0..4000 {
            let n = 1 + next(6);
            let mut effects = Vec::new();
            for _ in 0..n {
                let v = format!("v{}", next(3)).into_bytes();
                let e = match next(14) {
                    0 => Effect::Set { key: k("s", next(3)), value: v },
                    1 => Effect::SetPxAt { key: k("s", next(3)), value: v, at_ms: 2000 + next(3) },
                    2 => Effect::MSet { pairs: (0..1 + next(2)).map(|_| (k("s", next(3)), v.clone())).collect() },
                    3 => Effect::Del {
                        keys: (0..1 + next(2)).map(|_| k(["s", "l"][next(2) as usize], next(3))).collect(),
                    },
                    4..=6 => Effect::RPush { key: k("l", next(2)), value: v },
                    7 => Effect::LRem { key: k("l", next(2)), count: 0, value: v },
                    8 => Effect::ZAdd { key: k("z", next(2)), score: next(5) as i64, member: k("m", next(2)) },
                    9 => Effect::ZRem { key: k("z", next(2)), member: k("m", next(2)) },
                    10 | 11 => Effect::SAdd { key: k("t", next(2)), member: k("m", next(2)) },
                    _ => Effect::Incr { key: k("s", next(3)) },
                };
                effects.push(e);
            }
            let full = fold(effects.clone());
            if nothing_to_fold(&effects) {
                assert_eq!(full, effects, "case {case}: skipped, but folding changes it");
                skipped += 1;
            } else {
                folded += 1;
            }
            assert_eq!(coalesce(effects.clone()), full, "case {case}: {effects:?}");
        }
        assert!(skipped > 1000 && folded > 1000, "skipped {skipped}, folded {folded} of 4000");
    }

    /// Random effect lists as a timer round makes them (pushes at both
    /// ends, hash fields, zset members, DELs of any key among them) give the
    /// same data gathered as applied one by one, the order of each list
    /// included. The case number of a failing list is in the message.
    #[test]
    fn gathering_keeps_the_final_data() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let k = |p: &str, i: u64| format!("{p}{i}").into_bytes();
        let mut shortened = 0;
        for case in 0..4000 {
            let mut base = MemStore::at(1000);
            base.data.insert(b"l0".to_vec(), MemValue::List(VecDeque::from(vec![b"a".to_vec()])));
            base.data.insert(b"z0".to_vec(), MemValue::Zset(vec![(b"m0".to_vec(), 1.0), (b"m1".to_vec(), 2.0)]));
            base.data.insert(b"h0".to_vec(), MemValue::Hash(HashMap::from([(b"f0".to_vec(), b"x".to_vec())])));
            let n = 2 + next(40);
            let mut effects = Vec::new();
            for _ in 0..n {
                let v = format!("v{}", next(4)).into_bytes();
                let e = match next(12) {
                    0 | 1 => Effect::LPush { key: k("l", next(2)), value: v },
                    2 => Effect::RPush { key: k("l", next(2)), value: v },
                    3 => Effect::LPushMany { key: k("l", next(2)), values: vec![v.clone(), b"w".to_vec()].into() },
                    4 => Effect::ZRem { key: k("z", next(2)), member: k("m", next(3)) },
                    5 => Effect::ZAdd { key: k("z", next(2)), score: next(5) as i64, member: k("m", next(3)) },
                    6 | 7 => Effect::HSet { key: k("h", next(2)), field: k("f", next(3)), value: v },
                    8 => Effect::HDel { key: k("h", next(2)), field: k("f", next(3)) },
                    9 => Effect::Del {
                        keys: (0..1 + next(2)).map(|_| k(["s", "l", "z", "h"][next(4) as usize], next(2))).collect(),
                    },
                    10 => Effect::SetPxAt { key: k("s", next(2)), value: v, at_ms: 2000 },
                    _ => Effect::LPop { key: k("l", next(2)) },
                };
                effects.push(e);
            }
            let mut plain = base.clone();
            plain.apply(&effects);
            let mut gathered = base.clone();
            let fewer = gather(effects.clone());
            gathered.apply(&fewer);
            assert_eq!(plain.data, gathered.data, "case {case}: {effects:?} became {fewer:?}");
            assert_eq!(plain.expires, gathered.expires, "case {case}: {effects:?} became {fewer:?}");
            assert!(fewer.len() <= effects.len());
            shortened += usize::from(fewer.len() < effects.len());
        }
        assert!(shortened > 2000, "only {shortened} of 4000 lists were shortened");
    }

    #[test]
    fn a_promotion_steps_writes_join_only_across_buckets() {
        let bucket = |b: &str| {
            vec![
                Effect::LPopN { key: format!("delayed:{b}").into_bytes(), count: 2 },
                Effect::RemoveMarkers {
                    keys: vec![b"timestamps:x".to_vec(), b"timestamps:y".to_vec()].into(),
                    member: format!("delayed:{b}").into_bytes(),
                },
                Effect::SAdd { key: b"queues".to_vec(), member: b"q".to_vec() },
                Effect::RPushMany { key: b"queue:q".to_vec(), values: vec![b"x".to_vec(), b"y".to_vec()].into() },
                Effect::ZRem { key: b"schedule".to_vec(), member: b.as_bytes().to_vec() },
            ]
        };
        // One bucket: nothing of a kind twice on a key, the plan as it was.
        let one = bucket("1");
        assert!(!joins_any(&one));
        assert_eq!(gather(one.clone()), one);
        // Two: their pushes to the queue and ZREMs of the schedule join.
        let two = [bucket("1"), bucket("2")].concat();
        assert!(joins_any(&two));
        let fewer = gather(two);
        assert_eq!(fewer.len(), 8, "{fewer:?}");
        assert!(fewer.iter().any(|e| matches!(e, Effect::RPushMany { values, .. } if values.len() == 4)));
        assert!(fewer.iter().any(|e| matches!(e, Effect::ZRemMany { members, .. } if members.len() == 2)));
        // Two DELs join whatever their keys.
        assert!(joins_any(&[Effect::Del { keys: vec![b"a".to_vec()] }, Effect::Del { keys: vec![b"b".to_vec()] }]));
    }

    #[test]
    fn a_round_of_lease_expiries_gathers_to_a_command_per_key() {
        let mut effects = Vec::new();
        for w in 0..100u32 {
            let w = w.to_string().into_bytes();
            effects.push(Effect::ZRem { key: b"leases".to_vec(), member: w.clone() });
            effects.push(Effect::LPush { key: b"queue".to_vec(), value: w.clone() });
            effects.push(Effect::HSet { key: b"deliveries".to_vec(), field: w.clone(), value: b"1".to_vec() });
            effects.push(Effect::Del { keys: vec![[b"record:".as_slice(), &w].concat()] });
            effects.push(Effect::SetPxAt { key: [b"entry:".as_slice(), &w].concat(), value: b"e".to_vec(), at_ms: 9 });
        }
        let fewer = gather(effects);
        // Four gathered commands, then the tombstones (one key each).
        assert_eq!(fewer.len(), 4 + 100, "{:?}", &fewer[..6]);
        assert!(matches!(&fewer[0], Effect::ZRemMany { members, .. } if members.len() == 100));
        assert!(matches!(&fewer[1], Effect::LPushMany { values, .. } if values.first() == Some(&b"0"[..])));
        assert!(matches!(&fewer[2], Effect::HSetMany { pairs, .. } if pairs.len() == 100));
        assert!(matches!(&fewer[3], Effect::Del { keys } if keys.len() == 100));
    }

    #[test]
    fn a_take_and_complete_coalesces_to_few_writes() {
        let set = |k: &[u8], v: &[u8]| Effect::Set { key: k.to_vec(), value: v.to_vec() };
        let effects = vec![
            Effect::Del { keys: vec![b"record".to_vec()] },
            Effect::SetPxAt { key: b"entry".to_vec(), value: b"ended".to_vec(), at_ms: 9 },
            Effect::ZRem { key: b"leases".to_vec(), member: b"w".to_vec() },
            set(b"stat", b"2"),
            set(b"stat:w", b"2"),
            Effect::LPop { key: b"queue".to_vec() },
            set(b"delivery", b"8"),
            Effect::MSet { pairs: vec![(b"record".to_vec(), b"r".to_vec()), (b"entry".to_vec(), b"e".to_vec())] },
            Effect::ZAdd { key: b"leases".to_vec(), score: 5, member: b"w".to_vec() },
        ];
        let fewer = coalesce(effects);
        assert_eq!(fewer.len(), 3, "{fewer:?}");
        assert!(matches!(&fewer[0], Effect::MSet { pairs } if pairs.len() == 5), "{fewer:?}");
    }

    #[test]
    fn incr_is_refused_on_non_integers_and_overflow() {
        let mut s = MemStore::at(0);
        s.data.insert(b"a".to_vec(), MemValue::String(b"x".to_vec()));
        s.data.insert(b"b".to_vec(), MemValue::String(i64::MAX.to_string().into_bytes()));
        s.data.insert(b"c".to_vec(), MemValue::List(VecDeque::new()));
        assert!(plan_incr(&mut s, b"a".to_vec(), 0).is_err());
        assert!(plan_incr(&mut s, b"b".to_vec(), 0).is_err());
        assert!(matches!(plan_incr(&mut s, b"c".to_vec(), 0), Err(TqError::WrongType { .. })));
        assert!(plan_incr(&mut s, b"d".to_vec(), 0).is_ok());
    }
}
