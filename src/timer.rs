//! The module's timer: promotes due delayed jobs, gives back jobs whose
//! lease ran out, forgets workers whose heartbeat ran out and enqueues due
//! periodic tasks, for every namespace in the registry, with no client and
//! no scheduler process involved.
//!
//! It writes only on a primary (not while loading, not while clients are
//! paused for a failover); its effects are replicated like a command's. A
//! tick works in rounds of at most `tq.timer-batch` jobs per namespace and
//! kind, and stops starting rounds once `TICK_BUDGET` is spent, so a backlog
//! never holds the server for long; when work remains the next tick comes at
//! once (after the clients waiting meanwhile are served), otherwise at the
//! earliest due time known, and at least every `MAX_SLEEP_MS`. Writes that
//! bring a due time closer (a delayed job due now, a new periodic task) call
//! `due_at`.

use std::cell::RefCell;
use std::time::{Duration, Instant};

use redis_module::raw;
use tq_core::keys::Ns;
use tq_core::store::{Kind, Reply, Store};
use tq_core::{queue, recur, work, Result};

use crate::rm::{self, ScanCursor};
use crate::store::RedisStore;
use crate::{config, registry};

/// The longest the timer sleeps: also the lateness bound for anything the
/// timer could not foresee (e.g. a lease extended elsewhere).
const MAX_SLEEP_MS: u64 = 100;
/// A tick starts no new round of work after this long: with rounds of about
/// 1 ms (the default `tq.timer-batch`), a backlog holds the server for about
/// 4 ms at a time, and several small rounds share one tick.
const TICK_BUDGET: Duration = Duration::from_millis(3);
/// Keyspace-scan steps per tick while rebuilding the registry.
const SCAN_STEPS_PER_TICK: usize = 100;

#[derive(Default)]
struct State {
    /// The armed timer and when it fires (unix ms).
    armed: Option<(raw::RedisModuleTimerID, u64)>,
    /// Set while a tick runs: `due_at` only records the wish then.
    ticking: bool,
    wanted: Option<u64>,
    /// A rebuild of the registry in progress: (database, databases, cursor).
    scan: Option<(i32, i32, ScanCursor)>,
    scan_needed: bool,
    last_warning_ms: u64,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State { scan_needed: true, ..State::default() });
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
}

/// Arms the first tick (at load).
pub fn start(ctx: rm::Ctx) -> bool {
    arm(ctx, rm::now_ms().saturating_add(1));
    with(|s| s.armed.is_some()).unwrap_or(false)
}

/// Something becomes due at `at_ms`: make sure a tick comes by then.
pub fn due_at(ctx: rm::Ctx, at_ms: u64) {
    let rearm = with(|s| {
        if s.ticking {
            s.wanted = Some(s.wanted.map_or(at_ms, |w| w.min(at_ms)));
            return false;
        }
        s.armed.is_none_or(|(_, fires)| at_ms < fires)
    })
    .unwrap_or(false);
    if rearm {
        arm(ctx, at_ms);
    }
}

/// After a load (start, DEBUG RELOAD, a replica's sync) the registry is
/// rebuilt from the keyspace.
pub fn rescan() {
    registry::clear();
    with(|s| {
        s.scan = None;
        s.scan_needed = true;
    });
}

fn arm(ctx: rm::Ctx, at_ms: u64) {
    let now = rm::now_ms();
    // 0 ms: right after the next round of client requests (work remains).
    let delay = at_ms.saturating_sub(now).min(MAX_SLEEP_MS);
    let old = with(|s| s.armed.take()).flatten();
    if let Some((id, _)) = old {
        rm::stop_timer(ctx, id);
    }
    if let Some(id) = rm::create_timer(ctx, i64::try_from(delay).unwrap_or(1), Some(tick)) {
        with(|s| s.armed = Some((id, now.saturating_add(delay))));
    }
}

extern "C" fn tick(ctx: *mut raw::RedisModuleCtx, _data: *mut std::ffi::c_void) {
    with(|s| {
        s.armed = None;
        s.ticking = true;
        s.wanted = None;
    });
    let started = Instant::now();
    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(ctx)))
        .unwrap_or_else(|_| rm::now_ms().saturating_add(MAX_SLEEP_MS));
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    crate::stats::record(&[tq_core::stats::Event::TimerTick { us }]);
    let wanted = with(|s| {
        s.ticking = false;
        s.wanted.take()
    })
    .flatten();
    arm(ctx, wanted.map_or(next, |w| w.min(next)));
}

/// One tick; returns when the next should come.
fn run(ctx: rm::Ctx) -> u64 {
    let now = rm::now_ms();
    let mut next = now.saturating_add(MAX_SLEEP_MS);
    let flags = rm::context_flags(ctx);
    if flags & raw::REDISMODULE_CTX_FLAGS_LOADING != 0 {
        return next;
    }
    if scan_some(ctx) {
        next = now; // keep going
    }
    let primary = flags & raw::REDISMODULE_CTX_FLAGS_MASTER != 0 && !rm::avoid_replica_traffic();
    if !primary {
        return next;
    }
    let started = Instant::now();
    loop {
        let mut more = false;
        for (db, ns) in registry::all() {
            if !rm::select_db(ctx, db) {
                continue;
            }
            match serve(ctx, &ns) {
                Ok(Some(due)) => {
                    // Due by now: work is left (serve answers its own now).
                    more |= due <= rm::now_ms();
                    next = next.min(due);
                }
                Ok(None) => registry::forget(db, &ns),
                Err(e) => {
                    warn(ctx, now, &format!("timer work on namespace '{}' failed: {e}", tq_core::error::show(&ns)))
                }
            }
        }
        if !more || started.elapsed() >= TICK_BUDGET {
            break;
        }
    }
    rm::select_db(ctx, 0);
    next
}

/// The timed work of one namespace. Returns the earliest time something of
/// it is due next (now when work remains), or None when it has no timed
/// keys left.
fn serve(ctx: rm::Ctx, ns: &[u8]) -> Result<Option<u64>> {
    let ns = Ns::new(ns, rm::is_cluster())?;
    let batch = config::timer_batch();
    if config::auto_promote() {
        let mut store = RedisStore::new(ctx);
        let plan = queue::promote(&mut store, &ns, u64::try_from(batch).unwrap_or(1))?;
        store.apply(&plan.effects)?;
    }
    let mut store = RedisStore::new(ctx);
    let plan = work::expire_leases(&mut store, &ns, config::max_deliveries(), batch)?;
    store.apply(&plan.effects)?;
    let mut store = RedisStore::new(ctx);
    let plan = work::expire_alive(&mut store, &ns, batch)?;
    store.apply(&plan.effects)?;
    let mut store = RedisStore::new(ctx);
    let (plan, recur_due) = recur::run_due(&mut store, &ns, batch)?;
    let enqueued = matches!(plan.reply, Reply::Int(n) if n > 0);
    store.apply(&plan.effects)?;
    let mut store = RedisStore::new(ctx);
    let mut due = queue::next_due(&mut store, &ns)?;
    if !config::auto_promote() {
        // Only leases count then; the schedule is someone else's.
        due = store.zset_range(&ns.leases(), f64::NEG_INFINITY, f64::INFINITY, 1)?.first().map(|(_, s)| *s as u64);
    }
    let mut next = match (due, recur_due) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    if enqueued {
        next = Some(store.now_ms()); // more may be due at once
    }
    if next.is_none() {
        let timed = [ns.delayed_schedule(), ns.leases(), ns.alive(), ns.recur()];
        for key in timed {
            if store.kind(&key)? != Kind::None {
                return Ok(Some(store.now_ms().saturating_add(MAX_SLEEP_MS)));
            }
        }
    }
    Ok(next)
}

/// A few steps of the registry rebuild; true while it is not finished.
fn scan_some(ctx: rm::Ctx) -> bool {
    let start = with(|s| std::mem::take(&mut s.scan_needed)).unwrap_or(false);
    if start {
        let dbs = rm::databases(ctx);
        if let Some(cursor) = ScanCursor::new() {
            with(|s| s.scan = Some((0, dbs, cursor)));
        }
    }
    let Some(Some((mut db, dbs, mut cursor))) = with(|s| s.scan.take()) else { return false };
    let mut steps = 0;
    while db < dbs && steps < SCAN_STEPS_PER_TICK {
        if !rm::select_db(ctx, db) {
            db += 1;
            continue;
        }
        let more = cursor.step(ctx, &mut |key| {
            registry::note_key(db, key);
        });
        steps += 1;
        if !more {
            db += 1;
            match ScanCursor::new() {
                Some(c) => cursor = c,
                None => db = dbs,
            }
        }
    }
    rm::select_db(ctx, 0);
    if db < dbs {
        with(|s| s.scan = Some((db, dbs, cursor)));
        true
    } else {
        false
    }
}

fn warn(ctx: rm::Ctx, now: u64, msg: &str) {
    let due = with(|s| {
        let due = now.saturating_sub(s.last_warning_ms) >= 60_000;
        if due {
            s.last_warning_ms = now;
        }
        due
    })
    .unwrap_or(false);
    if due {
        rm::log(ctx, c"warning", &format!("<tq> {msg}"));
    }
}
