//! Expiring locks, planned as atomic steps over a [`Store`]:
//!
//! - pair locks (redis-paired-worker's model): one owner runs a task, the
//!   others stand by; a fencing token grows with every acquisition; `OK`
//!   leaves the lock *done* for a full ttl, `FAIL` frees it at once. Kept as
//!   a string key (`TQ.LOCK`) or as one field of a hash (`TQ.HLOCK`);
//! - the scheduler leader lock node-resque's `queue.leader()` reads.
//!
//! Expiry never depends on a client: a string lock carries a Redis TTL; a
//! hash field is judged by the server clock on every access, the hash itself
//! carries a TTL covering its latest field, and each access removes expired
//! fields it meets.

use bincode::{Decode, Encode};

use crate::codec::Versioned;
use crate::error::{show, Result, TqError};
use crate::keys::{check_name, Ns};
use crate::stats::Event;
use crate::store::{parse_i64, plan_incr, Effect, Kind, Plan, Reply, Store};

/// Longest ttl a lock accepts (30 days).
pub const MAX_TTL_MS: u64 = 30 * 24 * 3600 * 1000;
/// Fields of a lock hash examined for expired ones on each access.
const SWEEP_SAMPLE: usize = 64;

/// The state of one pair lock.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct PairLock {
    pub owner: Vec<u8>,
    pub token: u64,
    pub done: bool,
    pub ttl_ms: u64,
    /// Server time after which the lock is free again.
    pub expires_ms: u64,
}

impl Versioned for PairLock {
    const VERSION: u8 = 1;
}

impl PairLock {
    pub fn encode(&self) -> Vec<u8> {
        self.to_bytes()
    }

    pub fn decode(raw: &[u8]) -> Option<Self> {
        Self::from_bytes(raw)
    }
}

/// Where a pair lock lives.
pub enum Place<'a> {
    /// `<ns>:tq:lock:<name>`, a string with a TTL.
    Key(&'a [u8]),
    /// Field `<field>` of the hash `<ns>:tq:hlock:<key>`.
    Field { hash: &'a [u8], field: &'a [u8] },
}

/// `ttl-ms`: 1 .. MAX_TTL_MS.
pub fn check_ttl(ttl: u64) -> Result<u64> {
    if ttl == 0 || ttl > MAX_TTL_MS {
        return Err(TqError::arg(format!("ttl-ms must be between 1 and {MAX_TTL_MS}")));
    }
    Ok(ttl)
}

struct Resolved {
    key: Vec<u8>,
    field: Option<Vec<u8>>,
    /// The lock's name for messages.
    label: Vec<u8>,
}

fn resolve(ns: &Ns<'_>, place: &Place<'_>) -> Result<Resolved> {
    match place {
        Place::Key(name) => {
            check_name("lock", name)?;
            Ok(Resolved { key: ns.pair_lock(name), field: None, label: name.to_vec() })
        }
        Place::Field { hash, field } => {
            check_name("key", hash)?;
            check_name("field", field)?;
            let mut label = hash.to_vec();
            label.push(b'/');
            label.extend_from_slice(field);
            Ok(Resolved { key: ns.hash_lock(hash), field: Some(field.to_vec()), label })
        }
    }
}

/// The live state of the lock: None when absent or expired.
fn current(s: &mut impl Store, r: &Resolved) -> Result<Option<PairLock>> {
    let raw = match &r.field {
        None => s.get(&r.key)?,
        Some(f) => s.hash_get(&r.key, f)?,
    };
    let Some(raw) = raw else { return Ok(None) };
    let lock = PairLock::decode(&raw).ok_or_else(|| TqError::Corrupt {
        key: r.key.clone(),
        what: format!("lock '{}' does not hold a tq lock record", show(&r.label)),
    })?;
    Ok((lock.expires_ms > s.now_ms()).then_some(lock))
}

/// Effects that store `lock` (with its expiry) at its place; for a hash also
/// removes expired fields met and keeps the hash's TTL past its latest field.
fn store_lock(s: &mut impl Store, r: &Resolved, lock: &PairLock) -> Result<Vec<Effect>> {
    let value = lock.encode();
    match &r.field {
        None => Ok(vec![Effect::SetPxAt { key: r.key.clone(), value, at_ms: lock.expires_ms }]),
        Some(f) => {
            let mut effects = sweep(s, r)?;
            effects.push(Effect::HSet { key: r.key.clone(), field: f.clone(), value });
            if s.expire_at(&r.key)?.is_none_or(|at| at < lock.expires_ms) {
                effects.push(Effect::PExpireAt { key: r.key.clone(), at_ms: lock.expires_ms });
            }
            Ok(effects)
        }
    }
}

fn remove_lock(s: &mut impl Store, r: &Resolved) -> Result<Vec<Effect>> {
    match &r.field {
        None => Ok(vec![Effect::Del { keys: vec![r.key.clone()] }]),
        Some(f) => {
            let mut effects = sweep(s, r)?;
            effects.push(Effect::HDel { key: r.key.clone(), field: f.clone() });
            Ok(effects)
        }
    }
}

/// HDELs of expired (or unreadable) fields other than the one being written.
fn sweep(s: &mut impl Store, r: &Resolved) -> Result<Vec<Effect>> {
    let now = s.now_ms();
    let mut effects = Vec::new();
    for (field, raw) in s.hash_sample(&r.key, SWEEP_SAMPLE)? {
        if Some(&field) == r.field.as_ref() {
            continue;
        }
        if PairLock::decode(&raw).is_none_or(|l| l.expires_ms <= now) {
            effects.push(Effect::HDel { key: r.key.clone(), field });
        }
    }
    Ok(effects)
}

fn kind_of_place(r: &Resolved) -> Kind {
    if r.field.is_some() {
        Kind::Hash
    } else {
        Kind::String
    }
}

/// `TQ.LOCK` / `TQ.HLOCK`: `["acquired", token]`, `["held", ms-left]` or
/// `["done", 0]`.
pub fn lock(s: &mut impl Store, ns: &Ns<'_>, place: &Place<'_>, owner: &[u8], ttl: u64) -> Result<Plan> {
    check_name("owner", owner)?;
    let ttl = check_ttl(ttl)?;
    let r = resolve(ns, place)?;
    s.expect_kind(&r.key, kind_of_place(&r))?;
    let now = s.now_ms();
    if let Some(l) = current(s, &r)? {
        let reply = if l.done {
            state_reply("done", 0)
        } else if l.owner == owner {
            state_reply("acquired", i64::try_from(l.token).unwrap_or(i64::MAX))
        } else {
            state_reply("held", i64::try_from(l.expires_ms.saturating_sub(now)).unwrap_or(i64::MAX))
        };
        return Ok(Plan::new(reply));
    }
    // Free: take it with the next fencing number of the namespace, which
    // outlives the lock key (a lock that expired and vanished still gets a
    // larger token next time).
    let fence = ns.fence();
    let token = match s.get(&fence)? {
        None => 1,
        Some(v) => {
            parse_i64(&v).and_then(|n| n.checked_add(1)).and_then(|n| u64::try_from(n).ok()).ok_or_else(|| {
                TqError::Corrupt { key: fence.clone(), what: "value is not a fencing counter".to_string() }
            })?
        }
    };
    let mut effects = vec![plan_incr(s, fence, 0)?];
    let new = PairLock { owner: owner.to_vec(), token, done: false, ttl_ms: ttl, expires_ms: now.saturating_add(ttl) };
    effects.extend(store_lock(s, &r, &new)?);
    s.note(Event::LockAcquired);
    Ok(Plan { effects, reply: state_reply("acquired", i64::try_from(token).unwrap_or(i64::MAX)) })
}

fn state_reply(state: &str, n: i64) -> Reply {
    Reply::Array(vec![Reply::Bulk(state.as_bytes().to_vec()), Reply::Int(n)])
}

/// The lock held by `owner` with `token`, or why not.
fn held_by(s: &mut impl Store, r: &Resolved, owner: &[u8], token: u64) -> Result<PairLock> {
    check_name("owner", owner)?;
    s.expect_kind(&r.key, kind_of_place(r))?;
    let label = show(&r.label);
    let Some(l) = current(s, r)? else {
        return Err(TqError::NotHeld { lock: r.label.clone(), why: "it is not held (it expired or was released)" });
    };
    if l.done {
        return Err(TqError::NotHeld { lock: r.label.clone(), why: "its task is already done" });
    }
    if l.owner != owner {
        return Err(TqError::NotOwner(format!("lock '{label}' is held by another owner (token {})", l.token)));
    }
    if l.token != token {
        return Err(TqError::NotOwner(format!(
            "token {token} of lock '{label}' is stale; the current token is {}",
            l.token
        )));
    }
    Ok(l)
}

/// `TQ.UNLOCK` / `TQ.HUNLOCK`: `OK` marks the task done for a full ttl,
/// `FAIL` frees the lock for takeover at once.
pub fn unlock(s: &mut impl Store, ns: &Ns<'_>, place: &Place<'_>, owner: &[u8], token: u64, ok: bool) -> Result<Plan> {
    let r = resolve(ns, place)?;
    let mut l = held_by(s, &r, owner, token)?;
    let effects = if ok {
        l.done = true;
        l.expires_ms = s.now_ms().saturating_add(l.ttl_ms);
        store_lock(s, &r, &l)?
    } else {
        remove_lock(s, &r)?
    };
    s.note(Event::LockReleased { done: ok });
    Ok(Plan { effects, reply: Reply::Ok })
}

/// `TQ.RENEW` / `TQ.HRENEW`: the holder extends its lock to `ttl` from now.
pub fn renew(s: &mut impl Store, ns: &Ns<'_>, place: &Place<'_>, owner: &[u8], token: u64, ttl: u64) -> Result<Plan> {
    let ttl = check_ttl(ttl)?;
    let r = resolve(ns, place)?;
    let mut l = held_by(s, &r, owner, token)?;
    l.ttl_ms = ttl;
    l.expires_ms = s.now_ms().saturating_add(ttl);
    Ok(Plan { effects: store_lock(s, &r, &l)?, reply: Reply::Ok })
}

/// `TQ.LEADER`: acquire or renew the scheduler leader lock (node-resque's
/// `<ns>:resque_scheduler_leader_lock`, value = the scheduler's name).
/// Replies 1 when `name` is the leader afterwards, else 0.
pub fn leader(s: &mut impl Store, ns: &Ns<'_>, name: &[u8], ttl: u64) -> Result<Plan> {
    check_name("name", name)?;
    let ttl = check_ttl(ttl)?;
    let key = ns.leader_lock();
    let at_ms = s.now_ms().saturating_add(ttl);
    match s.get(&key)? {
        Some(v) if v != name => Ok(Plan::new(Reply::Int(0))),
        held => {
            if held.is_none() {
                s.note(Event::LeaderAcquired);
            }
            Ok(Plan { effects: vec![Effect::SetPxAt { key, value: name.to_vec(), at_ms }], reply: Reply::Int(1) })
        }
    }
}

/// `TQ.RESIGN`: release the leader lock if `name` holds it. Replies 1 when
/// released, else 0.
pub fn resign(s: &mut impl Store, ns: &Ns<'_>, name: &[u8]) -> Result<Plan> {
    check_name("name", name)?;
    let key = ns.leader_lock();
    match s.get(&key)? {
        Some(v) if v == name => Ok(Plan { effects: vec![Effect::Del { keys: vec![key] }], reply: Reply::Int(1) }),
        _ => Ok(Plan::new(Reply::Int(0))),
    }
}

#[cfg(test)]
mod tests;
