//! Keyspace and server events, and what they keep up to date.
//!
//! Remembers members known to be in small sets (`<ns>:queues`, `<ns>:workers`)
//! so the hot paths (enqueue, pop) skip the `SADD` they would otherwise run
//! through `RedisModule_Call` every time. Redis 7.0 has no module API for
//! sets, and that call costs more than the rest of an enqueue.
//!
//! An entry is dropped on any change to its key other than an addition:
//! keyspace events (generic, set, expired, evicted) and server events
//! (flush, load, swapdb, role change) all invalidate. Entries only ever
//! claim membership, and enqueue/pop still check the key's type on every
//! call, so a stale entry could only skip an `SADD` of a member that is
//! already there.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::{c_char, c_int, c_void, CStr};

use redis_module::raw;

use crate::rm;

/// Bounds: beyond them the cache empties itself and starts over.
const MAX_KEYS: usize = 4096;
const MAX_MEMBERS: usize = 65_536;

#[derive(Default)]
struct Cache {
    /// The last confirmed (db, key, member): a hot queue hits it without
    /// hashing.
    last: Option<(i32, Vec<u8>, Vec<u8>)>,
    /// db -> set key -> members known to be in it.
    sets: HashMap<i32, HashMap<Vec<u8>, HashSet<Vec<u8>>>>,
    keys: usize,
    members: usize,
}

thread_local! {
    // Redis runs commands and notifications on its main thread only.
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
    // Set when an invalidation could not take the cache (re-entrancy); the
    // next lookup then clears everything.
    static POISONED: Cell<bool> = const { Cell::new(false) };
}

fn with<R>(f: impl FnOnce(&mut Cache) -> R) -> Option<R> {
    CACHE.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if POISONED.with(|p| p.replace(false)) {
            *c = Cache::default();
        }
        Some(f(&mut c))
    })
}

pub fn contains(db: i32, key: &[u8], member: &[u8]) -> bool {
    with(|c| {
        if let Some((d, k, m)) = &c.last {
            if *d == db && k == key && m == member {
                return true;
            }
        }
        let hit = c.sets.get(&db).and_then(|d| d.get(key)).is_some_and(|s| s.contains(member));
        if hit {
            // Reuses the buffers: many workers alternate on one set, and an
            // allocation per hit would cost what the cache saves.
            match &mut c.last {
                Some((d, k, m)) => {
                    *d = db;
                    k.clear();
                    k.extend_from_slice(key);
                    m.clear();
                    m.extend_from_slice(member);
                }
                None => c.last = Some((db, key.to_vec(), member.to_vec())),
            }
        }
        hit
    })
    .unwrap_or(false)
}

pub fn insert(db: i32, key: &[u8], member: &[u8]) {
    with(|c| {
        if c.members >= MAX_MEMBERS || c.keys >= MAX_KEYS {
            *c = Cache::default();
        }
        let d = c.sets.entry(db).or_default();
        let set = match d.get_mut(key) {
            Some(set) => set,
            None => {
                c.keys += 1;
                d.entry(key.to_vec()).or_default()
            }
        };
        if set.insert(member.to_vec()) {
            c.members += 1;
        }
    });
}

fn forget(db: i32, key: &[u8]) {
    let done = with(|c| {
        if c.last.as_ref().is_some_and(|(d, k, _)| *d == db && k == key) {
            c.last = None;
        }
        if let Some(s) = c.sets.get_mut(&db).and_then(|d| d.remove(key)) {
            c.members = c.members.saturating_sub(s.len());
            c.keys = c.keys.saturating_sub(1);
        }
    });
    if done.is_none() {
        POISONED.with(|p| p.set(true));
    }
}

/// Forgets `key` in every database: for a key written into another
/// database, whose event may name the wrong one (see on_keyspace_event).
fn forget_everywhere(key: &[u8]) {
    let done = with(|c| {
        if c.last.as_ref().is_some_and(|(_, k, _)| k == key) {
            c.last = None;
        }
        let mut gone = (0, 0);
        for d in c.sets.values_mut() {
            if let Some(s) = d.remove(key) {
                gone = (gone.0 + 1, gone.1 + s.len());
            }
        }
        c.keys = c.keys.saturating_sub(gone.0);
        c.members = c.members.saturating_sub(gone.1);
    });
    if done.is_none() {
        POISONED.with(|p| p.set(true));
    }
}

fn clear() {
    if with(|c| *c = Cache::default()).is_none() {
        POISONED.with(|p| p.set(true));
    }
}

fn is_empty() -> bool {
    with(|c| c.keys == 0).unwrap_or(false)
}

extern "C" fn on_keyspace_event(
    ctx: *mut raw::RedisModuleCtx,
    kind: c_int,
    event: *const c_char,
    key: *mut raw::RedisModuleString,
) -> c_int {
    let _ = std::panic::catch_unwind(|| {
        if !crate::store::applying() {
            crate::timer::client_moved();
        }
        let key = rm::str_bytes(key);
        // A timed key written by any client (node-resque's enqueueAt ZADDs
        // the schedule): the timer must serve its namespace, soon (its visit
        // finds when the namespace is due next).
        if (kind & (raw::REDISMODULE_NOTIFY_ZSET | raw::REDISMODULE_NOTIFY_HASH)) != 0 {
            if !crate::store::applying() {
                crate::timer::note_key(ctx, rm::selected_db(ctx), key, rm::now_ms());
            }
            return;
        }
        // SAFETY: Redis passes a NUL-terminated event name.
        let event = if event.is_null() { &b""[..] } else { unsafe { CStr::from_ptr(event) }.to_bytes() };
        // A key written into another database (MOVE, COPY ... DB): the
        // event's context names that database on Redis and Valkey 8, but
        // the client's on Valkey 9 inside a transaction. So it counts for
        // every database: the timer's visits to those without the key
        // forget it again.
        let elsewhere = (kind & raw::REDISMODULE_NOTIFY_GENERIC) != 0 && matches!(event, b"move_to" | b"copy_to");
        // A timed key brought in whole (RESTORE and so MIGRATE, RENAME, MOVE,
        // COPY): no write event of its type comes with it.
        if elsewhere {
            let now = rm::now_ms();
            for db in 0..rm::databases(ctx) {
                crate::timer::note_key(ctx, db, key, now);
            }
        } else if (kind & raw::REDISMODULE_NOTIFY_GENERIC) != 0 && matches!(event, b"restore" | b"rename_to") {
            crate::timer::note_key(ctx, rm::selected_db(ctx), key, rm::now_ms());
        }
        // A queue's clock deleted, renamed, expired, evicted, restored,
        // moved or copied over: its copy is no longer it (see `clocks`).
        if crate::clocks::any_copy() && tq_core::keys::maybe_clock(key) {
            crate::clocks::forget_copy(key);
        }
        // Only registries are cached: any other key (most of tq's own
        // deletions) needs no look-up.
        if !crate::store::registry(key) || is_empty() {
            return;
        }
        if elsewhere {
            forget_everywhere(key);
        } else if event != b"sadd" {
            forget(rm::selected_db(ctx), key);
        }
    });
    0
}

/// The module's one server-event callback (Redis keeps one per event and
/// module). The cache empties on any of them; after a load or a database
/// swap the timer's registry is rebuilt from the keyspace.
extern "C" fn on_server_event(
    _ctx: *mut raw::RedisModuleCtx,
    eid: raw::RedisModuleEvent,
    _sub: u64,
    _data: *mut c_void,
) {
    let _ = std::panic::catch_unwind(|| {
        clear();
        crate::clocks::forget_copies();
        if eid.id == raw::REDISMODULE_EVENT_LOADING || eid.id == raw::REDISMODULE_EVENT_SWAPDB {
            crate::timer::rescan();
        }
    });
}

/// Subscribes to every event that can remove a member from a set.
pub fn subscribe(ctx: rm::Ctx) -> bool {
    let types = raw::REDISMODULE_NOTIFY_GENERIC
        | raw::REDISMODULE_NOTIFY_SET
        | raw::REDISMODULE_NOTIFY_EXPIRED
        | raw::REDISMODULE_NOTIFY_EVICTED
        | raw::REDISMODULE_NOTIFY_ZSET
        | raw::REDISMODULE_NOTIFY_HASH;
    rm::subscribe_keyspace(ctx, types, Some(on_keyspace_event))
        && [
            raw::REDISMODULE_EVENT_FLUSHDB,
            raw::REDISMODULE_EVENT_LOADING,
            raw::REDISMODULE_EVENT_SWAPDB,
            raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        ]
        .iter()
        .all(|&id| rm::subscribe_server_event(ctx, id, Some(on_server_event)))
}
