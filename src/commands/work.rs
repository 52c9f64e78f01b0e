//! TQ.POP, TQ.BPOP, TQ.ACK, TQ.FAIL, TQ.HEARTBEAT, TQ.BROADCAST: a worker
//! takes a job, keeps its lease, and reports on it.

use std::ffi::{c_int, c_void, CStr};

use redis_module::raw;
use tq_core::stats::Event;
use tq_core::store::Reply;
use tq_core::work::{self, PopOptions};
use tq_core::{parse, Result, TqError};

use super::optional;
use crate::acl::{Acl, Plain::*};
use crate::command::{planned, planned_in, send, Command};
use crate::docs::{Arg, Doc, NS};
use crate::store::RedisStore;
use crate::{config, rm};

/// What follows the worker name of a take.
struct TakeArgs<'a, 'b> {
    queues: &'b [&'a [u8]],
    joblock: Option<u64>,
    /// LEASE, when given (else the setting at the time the job is taken).
    lease: Option<u64>,
    /// The delivery ACK names.
    ack: Option<u64>,
}

impl TakeArgs<'_, '_> {
    fn opts(&self) -> PopOptions {
        PopOptions { joblock: self.joblock, lease_ms: self.lease.unwrap_or_else(config::lease_ms) }
    }
}

/// Splits `<queue>... [JOBLOCK <ms>] [LEASE <ms>] [DELIVERIES] [ACK <delivery>]`:
/// the options can only come last, in any order.
fn queues_and_options<'a, 'b>(args: &'b [&'a [u8]]) -> Result<TakeArgs<'a, 'b>> {
    let mut joblock = None;
    let mut queues = args;
    let mut ack = None;
    let mut lease = None;
    let mut deliveries = false;
    loop {
        match queues {
            [qs @ .., opt, id] if opt.eq_ignore_ascii_case(b"ACK") && ack.is_none() => {
                ack = Some(delivery_arg(id)?);
                queues = qs;
            }
            // Replies always carry the delivery count now; the flag stays
            // accepted for clients written before.
            [qs @ .., flag] if flag.eq_ignore_ascii_case(b"DELIVERIES") && !deliveries => {
                deliveries = true;
                queues = qs;
            }
            [qs @ .., opt, ms] if opt.eq_ignore_ascii_case(b"JOBLOCK") && joblock.is_none() => {
                joblock = Some(parse::positive("JOBLOCK ttl-ms", ms, tq_core::lock::MAX_TTL_MS)?);
                queues = qs;
            }
            [qs @ .., opt, ms] if opt.eq_ignore_ascii_case(b"LEASE") && lease.is_none() => {
                lease = Some(parse::positive("LEASE ms", ms, tq_core::lock::MAX_TTL_MS)?);
                queues = qs;
            }
            // Before delivery ids, ACK stood alone: refuse it rather than
            // read it as a queue named "ACK".
            [.., flag] if flag.eq_ignore_ascii_case(b"ACK") => {
                return Err(TqError::arg(
                    "ACK needs the delivery id of the job to complete: ACK <delivery> (the third element of the pop's reply)",
                ));
            }
            _ => break,
        }
    }
    if queues.is_empty() {
        return Err(TqError::arg("at least one queue is needed"));
    }
    Ok(TakeArgs { queues, joblock, lease, ack })
}

/// A delivery id argument (0 names a job taken before delivery ids).
fn delivery_arg(raw: &[u8]) -> Result<u64> {
    parse::uint("delivery", raw, i64::MAX as u64)
}

/// `TQ.POP <ns> <worker> <queue> [<queue> ...] [JOBLOCK <ttl-ms>] [LEASE <ms>] [ACK <delivery>]`
/// → nil or `[queue, payload, delivery, deliveries, lease-deadline-ms]`. A
/// lone `*` means every queue in `<ns>:queues`, alphabetically. JOBLOCK
/// takes node-resque's JobLock with the job; LEASE sets the job's lease
/// (default `tq.lease-ms`). ACK first completes the worker's delivery
/// (one round trip per job for a busy worker; see `work::ack_and_pop`).
pub struct Pop;

impl Command for Pop {
    const NAME: &'static CStr = c"tq.pop";
    const FLAGS: &'static CStr = c"write deny-oom";
    // ACK completes a delivery as TQ.ACK does: its lease goes with a ZREM.
    const ACL: Acl = Acl::fast(&[Lpop, Set, Sadd, Zadd, Del, Incr]).with(&[("ACK", &[Zrem])]);
    const DOC: Doc = Doc {
        summary: c"Takes the next job from the first non-empty queue (priority order; * = all, alphabetically; the worker's broadcast mailbox first) and records it as the worker's job in flight under a new delivery id and a lease; a worker that holds a job gets that job again; with ACK <delivery>, first completes that delivery (as TQ.ACK)",
        complexity: c"O(Q) in the number of queues, plus the size of the job",
        arity: -4,
        writes: true,
        args: &[
            NS,
            Arg::string(c"worker"),
            Arg::string(c"queue").multiple(),
            Arg::integer(c"ttl-ms").token(c"JOBLOCK").optional(),
            Arg::integer(c"ms").token(c"LEASE").optional(),
            Arg::pure_token(c"DELIVERIES").optional(),
            Arg::integer(c"delivery").token(c"ACK").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, rest @ ..] = args else { return Err(TqError::Arity) };
        let take = queues_and_options(rest)?;
        let (queues, opts) = (take.queues, take.opts());
        match take.ack {
            Some(d) => pop_ack(ctx, ns, worker, queues, &opts, d),
            None => planned(ctx, ns, |s, ns| work::pop(s, ns, worker, queues, &opts)),
        }
    }
}

/// `TQ.POP ... ACK`: a busy worker's step planned in one pass when
/// `work::busy_pop_ack` takes the case, else by `work::ack_and_pop` (which
/// also answers every error). Debug builds plan both ways and refuse the
/// command when they differ. (`coalesce` leaves the one-pass plan as it is:
/// it is the general plan already coalesced.)
fn pop_ack(ctx: rm::Ctx, ns: &[u8], worker: &[u8], queues: &[&[u8]], opts: &PopOptions, d: u64) -> Result<Reply> {
    planned(ctx, ns, |store, ns| {
        let Ok(Some(plan)) = work::busy_pop_ack(store, ns, worker, queues, opts, d) else {
            return work::ack_and_pop(store, ns, worker, queues, opts, d);
        };
        #[cfg(debug_assertions)]
        {
            let general = store
                .unnoted(|s| work::ack_and_pop(s, ns, worker, queues, opts, d))
                .map(|p| (tq_core::store::coalesce(p.effects), p.reply));
            if general.as_ref() != Ok(&(plan.effects.clone(), plan.reply.clone())) {
                return Err(TqError::Internal(format!(
                    "the one-pass plan of TQ.POP ... ACK differs from the general plan: {plan:?} against {general:?}"
                )));
            }
        }
        tq_core::store::Store::note(store, Event::PopAckOnePass);
        Ok(plan)
    })
}

/// What a blocked TQ.BPOP retries with when one of its keys becomes ready.
struct Waiting {
    ns: Vec<u8>,
    worker: Vec<u8>,
    queues: Vec<Vec<u8>>,
    joblock: Option<u64>,
    /// The LEASE given, if any (else the setting when the job is taken).
    lease: Option<u64>,
    db: i32,
    /// The queue keys it waits on, noted as stuck (see `waiters`) while one
    /// of them holds jobs it could not take.
    queue_keys: Vec<Vec<u8>>,
    stuck: std::cell::Cell<bool>,
}

impl Waiting {
    /// After a pop that took nothing: a waiter whose queues are not all
    /// empty is one Redis will not wake by itself.
    fn note_stuck(&self, ctx: rm::Ctx) {
        if self.stuck.get() {
            return;
        }
        let mut store = RedisStore::new(ctx);
        let nonempty =
            self.queue_keys.iter().any(|k| tq_core::store::Store::list_len(&mut store, k).is_ok_and(|n| n > 0));
        if nonempty {
            crate::waiters::add(self.db, &self.queue_keys);
            self.stuck.set(true);
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if self.stuck.get() {
            crate::waiters::remove(self.db, &self.queue_keys);
        }
    }
}

impl Waiting {
    /// Tries the pop; `serving` when Redis serves the blocked client.
    fn pop(&self, ctx: rm::Ctx, serving: bool) -> Result<Reply> {
        let queues: Vec<&[u8]> = self.queues.iter().map(Vec::as_slice).collect();
        let opts = PopOptions { joblock: self.joblock, lease_ms: self.lease.unwrap_or_else(config::lease_ms) };
        let store = if serving {
            RedisStore::serving_blocked(ctx, <Bpop as Command>::NAME, <Bpop as Command>::ACL.mask())
        } else {
            RedisStore::new(ctx)
        };
        planned_in(store, &self.ns, |s, ns| work::pop(s, ns, &self.worker, &queues, &opts))
    }
}

/// `TQ.BPOP <ns> <worker> <queue> [<queue> ...] [JOBLOCK <ttl-ms>] [LEASE <ms>] <timeout-ms>`:
/// TQ.POP that waits up to `timeout-ms` (0 = for ever) for a job.
pub struct Bpop;

impl Command for Bpop {
    const NAME: &'static CStr = c"tq.bpop";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::slow(&[Blpop, Set, Sadd, Zadd, Del, Incr]);
    const DOC: Doc = Doc {
        summary: c"TQ.POP that waits until one of the queues (or the worker's mailbox) has a job, or the timeout (ms, 0 = for ever) passes; behaves as TQ.POP inside MULTI or a script",
        complexity: c"O(Q) in the number of queues, plus the size of the job",
        arity: -5,
        writes: true,
        args: &[
            NS,
            Arg::string(c"worker"),
            Arg::string(c"queue").multiple(),
            Arg::integer(c"ttl-ms").token(c"JOBLOCK").optional(),
            Arg::integer(c"ms").token(c"LEASE").optional(),
            Arg::pure_token(c"DELIVERIES").optional(),
            Arg::integer(c"timeout-ms"),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, rest @ .., timeout] = args else { return Err(TqError::Arity) };
        let timeout = parse::uint("timeout-ms", timeout, i64::MAX as u64)?;
        let take = queues_and_options(rest)?;
        if take.ack.is_some() {
            // A worker with a job to complete is busy: it has no use for a
            // wait, and a wait would let the reply be lost after the ACK.
            return Err(TqError::arg(
                "ACK is an option of TQ.POP, not TQ.BPOP (complete with TQ.POP ... ACK, then wait with TQ.BPOP)",
            ));
        }
        let waiting = Waiting {
            ns: ns.to_vec(),
            worker: worker.to_vec(),
            queues: take.queues.iter().map(|q| q.to_vec()).collect(),
            joblock: take.joblock,
            lease: take.lease,
            db: rm::selected_db(ctx),
            queue_keys: Vec::new(),
            stuck: std::cell::Cell::new(false),
        };
        let reply = waiting.pop(ctx, false)?;
        let flags = rm::context_flags(ctx);
        let cannot_block = flags
            & (raw::REDISMODULE_CTX_FLAGS_MULTI
                | raw::REDISMODULE_CTX_FLAGS_LUA
                | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING)
            != 0;
        if reply != Reply::Nil || cannot_block {
            return Ok(reply);
        }
        // Wait on the mailbox and every queue named (or, for `*`, every queue
        // registered now). Redis wakes waiters first come, first served; each
        // retries the whole pop in priority order.
        let n = tq_core::keys::Ns::new(ns, rm::is_cluster())?;
        let mut waiting = waiting;
        if waiting.queues == [b"*".to_vec()] {
            let mut store = RedisStore::new(ctx);
            let all = tq_core::store::Store::set_members(&mut store, &n.queues())?;
            waiting.queue_keys.extend(all.iter().map(|q| n.queue(q)));
        } else {
            waiting.queue_keys.extend(waiting.queues.iter().map(|q| n.queue(q)));
        }
        waiting.note_stuck(ctx);
        let mut keys = vec![n.mailbox(worker)];
        keys.extend(waiting.queue_keys.iter().cloned());
        let names: Vec<rm::RStr> = keys.iter().filter_map(|k| rm::RStr::new(ctx, k)).collect();
        let privdata = Box::into_raw(Box::new(waiting)).cast::<c_void>();
        let timeout = i64::try_from(timeout).unwrap_or(i64::MAX);
        if !rm::block_on_keys(ctx, Some(bpop_ready), Some(bpop_timeout), bpop_free, timeout, &names, privdata) {
            // SAFETY: not handed over: we still own it.
            drop(unsafe { Box::from_raw(privdata.cast::<Waiting>()) });
            return Err(TqError::Internal("could not block the client".into()));
        }
        Ok(Reply::NoReply)
    }
}

/// A key the blocked TQ.BPOP waits on became ready: try the pop again.
/// Returning an error status keeps the client blocked.
extern "C" fn bpop_ready(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let ptr = rm::blocked_privdata(ctx).cast::<Waiting>();
    if ptr.is_null() {
        return raw::REDISMODULE_ERR as c_int;
    }
    // SAFETY: Redis hands back the Waiting boxed in Bpop::run until bpop_free.
    let waiting = unsafe { &*ptr };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waiting.pop(ctx, true)));
    match outcome {
        Ok(Ok(Reply::Nil)) => {
            waiting.note_stuck(ctx);
            raw::REDISMODULE_ERR as c_int
        }
        Ok(Ok(reply)) => {
            send(ctx, &reply);
            raw::REDISMODULE_OK as c_int
        }
        Ok(Err(e)) => {
            rm::reply_error(ctx, &e.reply_text());
            raw::REDISMODULE_OK as c_int
        }
        Err(_) => {
            rm::reply_error(ctx, &TqError::Internal("tq.bpop failed unexpectedly".into()).reply_text());
            raw::REDISMODULE_OK as c_int
        }
    }
}

extern "C" fn bpop_timeout(
    ctx: *mut raw::RedisModuleCtx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    rm::reply_null(ctx);
    raw::REDISMODULE_OK as c_int
}

unsafe extern "C" fn bpop_free(_ctx: *mut raw::RedisModuleCtx, privdata: *mut c_void) {
    if !privdata.is_null() {
        // SAFETY: the Box handed over in Bpop::run, freed once by Redis.
        drop(unsafe { Box::from_raw(privdata.cast::<Waiting>()) });
    }
}

/// `TQ.ACK <ns> <worker> <delivery>` → OK: the worker's job succeeded.
pub struct Ack;

impl Command for Ack {
    const NAME: &'static CStr = c"tq.ack";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Del, Incr, Zrem, Set]);
    const DOC: Doc = Doc {
        summary: c"Completes the worker's job in flight (the delivery named) and counts it in stat:processed; repeated, answers OK again and changes nothing",
        complexity: c"O(1)",
        arity: 4,
        writes: true,
        args: &[NS, Arg::string(c"worker"), Arg::integer(c"delivery")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, delivery] = args else { return Err(TqError::Arity) };
        let delivery = delivery_arg(delivery)?;
        planned(ctx, ns, |s, ns| work::ack(s, ns, worker, delivery))
    }
}

/// `TQ.FAIL <ns> <worker> <delivery> <exception> <error> [<backtrace-json-array>]
/// [RETRY <attempts> [BACKOFF <ms>[,<ms>...]]]` → OK: the worker's job failed
/// and is moved to `<ns>:failed`; with RETRY, `[retry, delay-ms]` when it
/// goes back to run again, `[failed, 0]` when it has run out of attempts.
pub struct Fail;

/// Splits `[<backtrace>] [RETRY <n> [BACKOFF <list>]]`.
fn fail_options<'a>(rest: &[&'a [u8]]) -> Result<(Option<&'a [u8]>, Option<work::Retry>)> {
    let (backtrace, mut opts) = match rest {
        [first, tail @ ..] if !first.eq_ignore_ascii_case(b"RETRY") && !first.eq_ignore_ascii_case(b"BACKOFF") => {
            (Some(*first), tail)
        }
        _ => (None, rest),
    };
    let mut retry: Option<work::Retry> = None;
    while let [name, tail @ ..] = opts {
        let known = name.eq_ignore_ascii_case(b"RETRY") || name.eq_ignore_ascii_case(b"BACKOFF");
        if !known {
            return Err(TqError::arg(format!(
                "unknown option '{}' (expected RETRY, BACKOFF)",
                tq_core::error::show(name)
            )));
        }
        let [value, tail @ ..] = tail else {
            return Err(TqError::arg(format!("{} needs a value", String::from_utf8_lossy(name).to_uppercase())));
        };
        if name.eq_ignore_ascii_case(b"RETRY") {
            if retry.is_some() {
                return Err(TqError::arg("RETRY given more than once"));
            }
            let attempts = parse::positive("RETRY attempts", value, 1_000_000)?;
            retry = Some(work::Retry { attempts: u32::try_from(attempts).unwrap_or(u32::MAX), backoff: Vec::new() });
        } else {
            let Some(r) = retry.as_mut().filter(|r| r.backoff.is_empty()) else {
                return Err(TqError::arg("BACKOFF goes once, after RETRY <attempts>"));
            };
            for ms in value.split(|&c| c == b',') {
                r.backoff.push(parse::uint("BACKOFF delay", ms, tq_core::time::MAX_TIME_MS)?);
            }
        }
        opts = tail;
    }
    Ok((backtrace, retry))
}

impl Command for Fail {
    const NAME: &'static CStr = c"tq.fail";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Rpush, Incr, Del, Zrem, Set]).with(&[("RETRY", &[Hset, Lpush, Sadd, Zadd])]);
    const DOC: Doc = Doc {
        summary: c"Moves the worker's job in flight to the failed list as node-resque's failure record and counts it in stat:failed; with RETRY, a job delivered fewer than <attempts> times runs again after its BACKOFF delay instead",
        complexity: c"O(N) in the size of the job and backtrace",
        arity: -6,
        writes: true,
        args: &[
            NS,
            Arg::string(c"worker"),
            Arg::integer(c"delivery"),
            Arg::string(c"exception"),
            Arg::string(c"error"),
            Arg::string(c"backtrace-json").optional(),
            Arg::integer(c"attempts").token(c"RETRY").optional(),
            Arg::string(c"delays-ms").token(c"BACKOFF").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, delivery, exception, error, rest @ ..] = args else { return Err(TqError::Arity) };
        let delivery = delivery_arg(delivery)?;
        let (backtrace, retry) = fail_options(rest)?;
        planned(ctx, ns, |s, ns| work::fail(s, ns, worker, delivery, exception, error, backtrace, retry.as_ref()))
    }
}

/// `TQ.NACK <ns> <worker> <delivery> [DELAY <ms>]` → OK: the job goes back unfinished.
pub struct Nack;

impl Command for Nack {
    const NAME: &'static CStr = c"tq.nack";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Lpush, Del, Zrem, Set, Hset]).with(&[("DELAY", &[Rpush, Sadd, Zadd])]);
    const DOC: Doc = Doc {
        summary: c"Gives the worker's job in flight back unfinished: at the head of its queue, or after DELAY ms as a delayed job; nothing is counted, its delivery count is kept",
        complexity: c"O(1), O(log(N)) with DELAY",
        arity: -4,
        writes: true,
        args: &[NS, Arg::string(c"worker"), Arg::integer(c"delivery"), Arg::integer(c"ms").token(c"DELAY").optional()],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, delivery, rest @ ..] = args else { return Err(TqError::Arity) };
        let delivery = delivery_arg(delivery)?;
        let delay = match rest {
            [] => 0,
            [opt, ms] if opt.eq_ignore_ascii_case(b"DELAY") => parse::uint("DELAY", ms, tq_core::time::MAX_TIME_MS)?,
            [opt, ..] if !opt.eq_ignore_ascii_case(b"DELAY") => {
                return Err(TqError::arg(format!("unknown option '{}' (expected DELAY)", tq_core::error::show(opt))))
            }
            _ => return Err(TqError::Arity),
        };
        planned(ctx, ns, |s, ns| work::nack(s, ns, worker, delivery, delay))
    }
}

/// `TQ.HEARTBEAT <ns> <worker> <ms> [<delivery>] [NOBROADCAST]` → the lease
/// left on that delivery in ms (0 without one). NOBROADCAST: not marked alive
/// for broadcasts.
pub struct Heartbeat;

impl Command for Heartbeat {
    const NAME: &'static CStr = c"tq.heartbeat";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Zadd, Set]);
    const DOC: Doc = Doc {
        summary: c"Marks the worker alive for ms more (not with NOBROADCAST: broadcasts skip it) and refreshes node-resque's worker ping; with a delivery, extends the lease of that job (only) to ms from now",
        complexity: c"O(log(N)) with N the workers in flight",
        arity: -4,
        writes: true,
        args: &[
            NS,
            Arg::string(c"worker"),
            Arg::integer(c"ms"),
            Arg::integer(c"delivery").optional(),
            Arg::pure_token(c"NOBROADCAST").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, ms, rest @ ..] = args else { return Err(TqError::Arity) };
        let ms = parse::uint("ms", ms, u64::MAX)?;
        let (rest, alive) = match rest {
            [r @ .., flag] if flag.eq_ignore_ascii_case(b"NOBROADCAST") => (r, false),
            r => (r, true),
        };
        let delivery = match rest {
            [] => None,
            [d] => Some(delivery_arg(d)?),
            _ => return Err(TqError::Arity),
        };
        planned(ctx, ns, |s, ns| work::heartbeat_with(s, ns, worker, ms, delivery, alive))
    }
}

/// `TQ.BROADCAST <ns> <class> [<args-json>]` → how many workers it reached.
pub struct Broadcast;

impl Command for Broadcast {
    const NAME: &'static CStr = c"tq.broadcast";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::slow(&[Rpush]);
    const DOC: Doc = Doc {
        summary: c"Gives a job to every live worker (heartbeat not expired), once each, through its mailbox, which its pops check first",
        complexity: c"O(W) with W the live workers",
        arity: -3,
        writes: true,
        args: &[NS, Arg::string(c"class"), Arg::string(c"args-json").optional()],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        planned(ctx, ns, |s, ns| work::broadcast(s, ns, class, json))
    }
}
