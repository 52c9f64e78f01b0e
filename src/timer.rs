//! The module's timer: promotes due delayed jobs, gives back jobs whose
//! lease ran out, forgets workers whose heartbeat ran out, enqueues due
//! periodic tasks and closes the job metrics' minutes, with no client and
//! no scheduler process involved.
//!
//! It writes only on a primary (not while loading, not while clients are
//! paused for a failover); its effects are replicated like a command's. A
//! tick visits only the namespaces due by now, taken from the registry's
//! index of next due times, earliest first: for each, every kind of work
//! (promotion, expired leases, expired workers, periodic tasks, metrics
//! minutes to close) runs on its own, in rounds of at most `tq.timer-batch` jobs, so an error in one kind
//! does not stop the others. After the visit the namespace is due again when
//! its earliest timed key says (at once, behind the others due, when work
//! remains). The tick checks its `TICK_BUDGET` between namespaces and between
//! kinds, so a backlog or many namespaces never hold the server for long; it
//! wakes at the earliest due time known, and at least every `MAX_SLEEP_MS`
//! (cheap: it only looks at the head of the index). Writes that bring a due
//! time closer (a delayed job, a lease, a heartbeat, a new periodic task)
//! note it through `note_key`.
use std::cell::RefCell;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis_module::raw;
use tq_core::keys::Ns;
use tq_core::store::{gather, Kind, Reply, Store};
use tq_core::{metrics, queue, recur, work, Result, TqError};

use crate::rm::{self, ScanCursor};
use crate::store::RedisStore;
use crate::{config, registry};

/// The longest the timer sleeps: also how late it notices a setting or role
/// change, and a periodic task whose instance is done
/// (`recur::INSTANCE_RECHECK_MS`).
const MAX_SLEEP_MS: u64 = 100;
/// A tick starts no new kind of work, nor a new namespace, after this long:
/// with rounds of about 1 ms (the default `tq.timer-batch`), a backlog holds
/// the server for about 4 ms at a time, and several small rounds share one
/// tick.
const TICK_BUDGET: Duration = Duration::from_millis(3);
/// A lease given back counts as this many jobs of `tq.timer-batch`: it reads
/// the job's entry and record and makes five writes (a promoted job, one
/// push among its bucket's), about 4.5 times the server's work of a
/// promotion, counted under callgrind; so a round of either takes about
/// as long.
const LEASE_WEIGHT: usize = 4;
/// Keyspace-scan steps per tick while rebuilding the registry.
const SCAN_STEPS_PER_TICK: usize = 100;
/// A kind of work that failed is tried again this much later; one that
/// failed on a key of the wrong type much later (a client fixing the key
/// writes it, which notes the namespace at once if it is a timed key).
const RETRY_MS: u64 = 1_000;
const WRONG_TYPE_RETRY_MS: u64 = 60_000;
/// One warning per namespace and kind of work this often at most.
const WARN_EVERY_MS: u64 = 60_000;
/// Bound of the warnings' rate-limit memory.
const MAX_WARNED: usize = 10_000;

/// The kinds of timed work of a namespace, run separately.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
enum Work {
    Promote,
    Leases,
    Alive,
    Recur,
    Metrics,
}

const WORK: [Work; 5] = [Work::Promote, Work::Leases, Work::Alive, Work::Recur, Work::Metrics];

impl Work {
    fn name(self) -> &'static str {
        match self {
            Work::Promote => "promotion",
            Work::Leases => "lease expiry",
            Work::Alive => "worker expiry",
            Work::Recur => "periodic tasks",
            Work::Metrics => "metrics",
        }
    }
}

struct State {
    /// The armed timer and when it fires (unix ms).
    armed: Option<(raw::RedisModuleTimerID, u64)>,
    /// Set while a tick runs: `due_at` only records the wish then.
    ticking: bool,
    /// A tick that left work re-arms from the event loop (see `again`):
    /// the passes seen since, from 1 (0: none pending).
    again: u32,
    /// When that tick ended, and the clients' moves then.
    tick_end: Instant,
    moves_at: u64,
    /// Clients moved since that tick ended, and when they last did.
    clients_active: bool,
    quiet_since: Instant,
    /// The module's own context, for re-arming outside a callback's.
    own_ctx: Option<rm::Ctx>,
    wanted: Option<u64>,
    /// A rebuild of the registry in progress: (database, databases, cursor).
    scan: Option<(i32, i32, ScanCursor)>,
    scan_needed: bool,
    /// `tq.auto-promote` as the last tick saw it.
    auto_promote: bool,
    /// When each (db, namespace, kind) was last warned about.
    warned: HashMap<(i32, Vec<u8>, Work), u64>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State {
        armed: None,
        ticking: false,
        again: 0,
        tick_end: Instant::now(),
        moves_at: 0,
        clients_active: false,
        quiet_since: Instant::now(),
        own_ctx: None,
        wanted: None,
        scan: None,
        scan_needed: true,
        auto_promote: true,
        warned: HashMap::new(),
    });
}

fn with<R>(f: impl FnOnce(&mut State) -> R) -> Option<R> {
    STATE.with(|s| s.try_borrow_mut().ok().map(|mut s| f(&mut s)))
}

/// Arms the first tick (at load).
pub fn start(ctx: rm::Ctx) -> bool {
    let own = rm::detached_ctx(ctx);
    with(|s| s.own_ctx = own);
    arm(ctx, rm::now_ms().saturating_add(1));
    with(|s| s.armed.is_some()).unwrap_or(false)
}

/// The namespace of `key` (if a timed key) has something due at `at_ms`:
/// index it and make sure a tick comes by then.
pub fn note_key(ctx: rm::Ctx, db: i32, key: &[u8], at_ms: u64) {
    if registry::note_key(db, key, at_ms) {
        due_at(ctx, at_ms);
    }
}

/// A tick as soon as can be (a setting changed): from the module's own
/// context, since a setting's change comes with none.
pub fn wake_now() {
    if let Some(Some(ctx)) = with(|s| s.own_ctx) {
        due_at(ctx, rm::now_ms());
    }
}

/// Something becomes due at `at_ms`: make sure a tick comes by then.
fn due_at(ctx: rm::Ctx, at_ms: u64) {
    let rearm = with(|s| {
        if s.ticking {
            s.wanted = Some(s.wanted.map_or(at_ms, |w| w.min(at_ms)));
            return false;
        }
        if s.again > 0 {
            return false; // a tick comes at once
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
    let pending = with(|s| {
        s.armed = None;
        s.ticking = true;
        s.wanted = None;
        std::mem::take(&mut s.again) > 0
    });
    // This tick stands for a re-arm still waiting on the event loop (the
    // timer that stood in for it fired first): that one is called off.
    if pending == Some(true) {
        if let Some(fd) = rm::always_writable() {
            rm::event_loop_quiet(fd);
        }
    }
    let started = Instant::now();
    let cpu_started = rm::thread_cpu_us();
    let next = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(ctx)))
        .unwrap_or_else(|_| rm::now_ms().saturating_add(MAX_SLEEP_MS));
    let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    // The server's thread may wait for a core in the middle of a tick (a
    // busy machine, the allocator's purging thread): the wall time is what
    // clients waited, the CPU time what the tick's work cost.
    let cpu_us = rm::thread_cpu_us().saturating_sub(cpu_started).min(us);
    crate::stats::record(&[tq_core::stats::Event::TimerTick { us, cpu_us }]);
    let wanted = with(|s| {
        s.ticking = false;
        s.wanted.take()
    })
    .flatten();
    let at = wanted.map_or(next, |w| w.min(next));
    let now = rm::now_ms();
    // Only a tick that spent its budget comes back at once: work due now
    // that a tick could not do stays at a tick a millisecond. With a re-arm
    // at once on its way, a timer at the longest sleep still stands in for
    // it should it never come.
    let backlog = at <= now && started.elapsed() >= TICK_BUDGET;
    arm(ctx, if backlog && again() { now.saturating_add(MAX_SLEEP_MS) } else { at });
}

/// Work remains: the next tick should come as soon as the clients had
/// their turn. A timer armed for 0 ms inside a timer's callback fires 1 ms
/// later at best (the server's timer handler reschedules itself for at
/// least 1 ms), which left the server idle a quarter of the time while a
/// backlog waited and no client needed it. Instead the event loop calls
/// `pass` at each of its passes: the first runs the requests that came
/// during the tick; from the second (their replies out), the tick is armed
/// for 0 ms (it then fires in that same pass) once no client has moved for
/// `CLIENT_LINGER`, or at once when none moved at all, and at the latest
/// `CLIENT_SHARE` after the tick: clients busy during a backlog keep about
/// the share of the server they had. False when that cannot be arranged
/// (then arm as usual).
fn again() -> bool {
    let ok = with(|s| {
        if s.again == 0 {
            let fd = s.own_ctx.and(rm::always_writable());
            if fd.is_some_and(|fd| rm::event_loop_every_pass(fd, pass)) {
                s.again = 1;
                s.tick_end = Instant::now();
                s.moves_at = moves();
                s.clients_active = false;
                s.quiet_since = s.tick_end;
            }
        }
        s.again > 0
    });
    ok.unwrap_or(false)
}

/// After a tick that left work, clients that moved get this long of quiet
/// before the next tick, and this much time in all at most.
const CLIENT_LINGER: Duration = Duration::from_micros(200);
const CLIENT_SHARE: Duration = Duration::from_millis(1);

thread_local! {
    static MOVES: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A client moved: a TQ command, or another client's write (its keyspace
/// event).
pub fn client_moved() {
    MOVES.with(|m| m.set(m.get().wrapping_add(1)));
}

fn moves() -> u64 {
    MOVES.with(std::cell::Cell::get)
}

extern "C" fn pass(fd: std::ffi::c_int, _data: *mut std::ffi::c_void, _mask: std::ffi::c_int) {
    let seen = with(|s| {
        s.again = s.again.saturating_add(1);
        let now = Instant::now();
        let m = moves();
        if m != s.moves_at {
            s.moves_at = m;
            s.clients_active = true;
            s.quiet_since = now;
        }
        let go = s.again > 2
            && (!s.clients_active
                || now.duration_since(s.quiet_since) >= CLIENT_LINGER
                || now.duration_since(s.tick_end) >= CLIENT_SHARE);
        go.then(|| {
            s.again = 0;
            s.own_ctx
        })
    });
    match seen {
        Some(None) => {} // clients still have their turn
        Some(Some(own)) => {
            rm::event_loop_quiet(fd);
            if let Some(ctx) = own {
                arm(ctx, rm::now_ms());
            }
        }
        // Never left called at every pass: the standing timer ticks.
        None => rm::event_loop_quiet(fd),
    }
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
    crate::waiters::wake_from_timer(ctx, now);
    // Promotion turned back on: the namespaces parked meanwhile are due.
    let auto = config::auto_promote();
    if with(|s| std::mem::replace(&mut s.auto_promote, auto)) == Some(false) && auto {
        registry::wake_all(now);
    }
    let started = Instant::now();
    let mut visits = 0;
    while started.elapsed() < TICK_BUDGET {
        let Some((db, ns, resume)) = registry::take_due(rm::now_ms()) else { break };
        visits += 1;
        if !rm::select_db(ctx, db) {
            continue; // no such database (any more): forgotten
        }
        // Taken out of the index while served: a bug caught here must not
        // lose the namespace.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve(ctx, db, &ns, resume, started)));
        let (due, resume) = served.unwrap_or_else(|_| (Some(rm::now_ms().saturating_add(RETRY_MS)), 0));
        registry::put(db, &ns, due, resume);
    }
    crate::stats::timer_visits(visits);
    rm::select_db(ctx, 0);
    registry::next_due().map_or(next, |due| next.min(due))
}

fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Visits one namespace: each kind of work, starting with `resume`, until
/// all ran or the tick's budget is spent. Returns when the namespace is due
/// next (None: it has no timed keys left) and the kind to resume with.
fn serve(ctx: rm::Ctx, db: i32, raw_ns: &[u8], resume: u8, started: Instant) -> (Option<u64>, u8) {
    // Not a namespace here (no hash tag in a cluster): nothing to serve.
    let Ok(ns) = Ns::new(raw_ns, rm::is_cluster()) else { return (None, 0) };
    let mut next = None;
    for i in 0..WORK.len() {
        let k = (usize::from(resume) + i) % WORK.len();
        if i > 0 && started.elapsed() >= TICK_BUDGET {
            // Work may be left: due at once, behind the others due.
            return (Some(rm::now_ms()), u8::try_from(k).unwrap_or(0));
        }
        let Some(&work) = WORK.get(k) else { continue };
        let due = match serve_one(ctx, db, &ns, work) {
            Ok(due) => due,
            Err(e) => {
                warn(ctx, db, raw_ns, work, &e.to_string());
                let wait = if matches!(e, TqError::WrongType { .. }) { WRONG_TYPE_RETRY_MS } else { RETRY_MS };
                Some(rm::now_ms().saturating_add(wait))
            }
        };
        next = earliest(next, due);
    }
    (next, 0)
}

/// The earliest score of a zset, if any.
fn first_score(ctx: rm::Ctx, key: &[u8]) -> Result<Option<u64>> {
    let mut store = RedisStore::new(ctx);
    let first = store.zset_range(key, f64::NEG_INFINITY, f64::INFINITY, 1)?;
    Ok(first.first().map(|(_, score)| score.max(0.0) as u64))
}

/// One round of one kind of work of a namespace; returns when that kind is
/// due next (None: it has nothing timed).
fn serve_one(ctx: rm::Ctx, db: i32, ns: &Ns<'_>, work: Work) -> Result<Option<u64>> {
    let batch = config::timer_batch();
    let mut store = RedisStore::new(ctx);
    match work {
        Work::Promote => {
            let schedule = ns.delayed_schedule();
            if !config::auto_promote() {
                // The schedule is someone else's until the setting is back.
                return Ok((store.kind(&schedule)? != Kind::None).then_some(registry::PARKED));
            }
            let (plan, problems) = queue::promote_reporting(&mut store, ns, u64::try_from(batch).unwrap_or(1))?;
            store.apply(&gather(plan.effects))?;
            for p in problems {
                warn(ctx, db, ns.as_bytes(), work, &p);
            }
            // Due at the earliest exact time tq keeps for a bucket, or the
            // second of the first bucket it keeps none for.
            queue::next_bucket_due(&mut RedisStore::new(ctx), ns)
        }
        Work::Leases => {
            let limit = (batch / LEASE_WEIGHT).max(1);
            let plan = work::expire_leases(&mut store, ns, config::max_deliveries(), limit)?;
            store.apply(&gather(plan.effects))?;
            first_score(ctx, &ns.leases())
        }
        Work::Alive => {
            let plan = work::expire_alive(&mut store, ns, batch)?;
            store.apply(&gather(plan.effects))?;
            first_score(ctx, &ns.alive())
        }
        Work::Recur => {
            let (plan, due, problems) = recur::run_due_reporting(&mut store, ns, batch)?;
            let enqueued = matches!(plan.reply, Reply::Int(n) if n > 0);
            store.apply(&gather(plan.effects))?;
            for p in problems {
                warn(ctx, db, ns.as_bytes(), work, &p);
            }
            // More may be due at once (the batch's limit).
            Ok(if enqueued { Some(store.now_ms()) } else { due })
        }
        Work::Metrics => {
            // Workers' open tallies first: a minute is closed only once no
            // tally of it is left (theirs are due by its end).
            let (effects, more) = metrics::flush_due(&mut store, ns, batch)?;
            store.apply(&gather(effects))?;
            if !more {
                let mut store = RedisStore::new(ctx);
                let effects = metrics::close_due(&mut store, ns, batch)?;
                store.apply(&gather(effects))?;
            }
            let due = [first_score(ctx, &ns.metrics_flush())?, first_score(ctx, &ns.metrics_open())?];
            Ok(due.into_iter().flatten().min())
        }
    }
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
    // Due times unknown: each namespace found gets a visit, which finds them.
    let now = rm::now_ms();
    let mut steps = 0;
    while db < dbs && steps < SCAN_STEPS_PER_TICK {
        if !rm::select_db(ctx, db) {
            db += 1;
            continue;
        }
        let more = cursor.step(ctx, &mut |key| {
            registry::note_key(db, key, now);
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

/// Logs a problem of one kind of work of a namespace, at most once per
/// `WARN_EVERY_MS` for each (so every namespace's problem gets seen).
fn warn(ctx: rm::Ctx, db: i32, ns: &[u8], work: Work, msg: &str) {
    let now = rm::now_ms();
    let due = with(|s| {
        let key = (db, ns.to_vec(), work);
        if s.warned.get(&key).is_some_and(|&t| now.saturating_sub(t) < WARN_EVERY_MS) {
            return false;
        }
        if s.warned.len() >= MAX_WARNED {
            s.warned.retain(|_, t| now.saturating_sub(*t) < WARN_EVERY_MS);
            if s.warned.len() >= MAX_WARNED {
                return false;
            }
        }
        s.warned.insert(key, now);
        true
    })
    .unwrap_or(false);
    if due {
        let ns = tq_core::error::show(ns);
        rm::log(ctx, c"warning", &format!("<tq> timer, namespace '{ns}' (db {db}), {}: {msg}", work.name()));
    }
}
