//! TQ.POP, TQ.BPOP, TQ.ACK, TQ.FAIL, TQ.HEARTBEAT, TQ.BROADCAST: a worker
//! takes a job, keeps its lease, and reports on it.

use std::ffi::{c_int, c_void, CStr};

use redis_module::raw;
use tq_core::store::Reply;
use tq_core::work::{self, PopOptions};
use tq_core::{parse, Result, TqError};

use super::optional;
use crate::command::{planned, send, Command};
use crate::docs::{Arg, Doc, NS};
use crate::{config, rm};

/// Splits `<queue>... [JOBLOCK <ms>]`.
fn queues_and_joblock<'a, 'b>(args: &'b [&'a [u8]]) -> Result<(&'b [&'a [u8]], Option<u64>)> {
    let (queues, joblock) = match args {
        [qs @ .., opt, ms] if opt.eq_ignore_ascii_case(b"JOBLOCK") => {
            (qs, Some(parse::positive("JOBLOCK ttl-ms", ms, tq_core::lock::MAX_TTL_MS)?))
        }
        _ => (args, None),
    };
    if queues.is_empty() {
        return Err(TqError::arg("at least one queue is needed"));
    }
    Ok((queues, joblock))
}

fn pop_options(joblock: Option<u64>) -> PopOptions {
    PopOptions { joblock, lease_ms: config::lease_ms() }
}

/// `TQ.POP <ns> <worker> <queue> [<queue> ...] [JOBLOCK <ttl-ms>]` → nil or
/// `[queue, payload]`. A lone `*` means every queue in `<ns>:queues`,
/// alphabetically. JOBLOCK takes node-resque's JobLock with the job.
pub struct Pop;

impl Command for Pop {
    const NAME: &'static CStr = c"tq.pop";
    const FLAGS: &'static CStr = c"write deny-oom";
    const DOC: Doc = Doc {
        summary: c"Takes the next job from the first non-empty queue (priority order; * = all, alphabetically; the worker's broadcast mailbox first) and records it as the worker's job in flight, under a lease",
        complexity: c"O(Q) in the number of queues, plus the size of the job",
        arity: -4,
        writes: true,
        args: &[
            NS,
            Arg::string(c"worker"),
            Arg::string(c"queue").multiple(),
            Arg::integer(c"ttl-ms").token(c"JOBLOCK").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, rest @ ..] = args else { return Err(TqError::Arity) };
        let (queues, joblock) = queues_and_joblock(rest)?;
        planned(ctx, ns, |s, ns| work::pop(s, ns, worker, queues, &pop_options(joblock)))
    }
}

/// What a blocked TQ.BPOP retries with when one of its keys becomes ready.
struct Waiting {
    ns: Vec<u8>,
    worker: Vec<u8>,
    queues: Vec<Vec<u8>>,
    joblock: Option<u64>,
}

impl Waiting {
    fn pop(&self, ctx: rm::Ctx) -> Result<Reply> {
        let queues: Vec<&[u8]> = self.queues.iter().map(Vec::as_slice).collect();
        planned(ctx, &self.ns, |s, ns| work::pop(s, ns, &self.worker, &queues, &pop_options(self.joblock)))
    }
}

/// `TQ.BPOP <ns> <worker> <queue> [<queue> ...] [JOBLOCK <ttl-ms>] <timeout-ms>`:
/// TQ.POP that waits up to `timeout-ms` (0 = for ever) for a job.
pub struct Bpop;

impl Command for Bpop {
    const NAME: &'static CStr = c"tq.bpop";
    const FLAGS: &'static CStr = c"write deny-oom";
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
            Arg::integer(c"timeout-ms"),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, rest @ .., timeout] = args else { return Err(TqError::Arity) };
        let timeout = parse::uint("timeout-ms", timeout, i64::MAX as u64)?;
        let (queues, joblock) = queues_and_joblock(rest)?;
        let waiting = Waiting {
            ns: ns.to_vec(),
            worker: worker.to_vec(),
            queues: queues.iter().map(|q| q.to_vec()).collect(),
            joblock,
        };
        let reply = waiting.pop(ctx)?;
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
        let mut keys = vec![n.mailbox(worker)];
        if waiting.queues == [b"*".to_vec()] {
            let mut store = crate::store::RedisStore::new(ctx);
            let all = tq_core::store::Store::set_members(&mut store, &n.queues())?;
            keys.extend(all.iter().map(|q| n.queue(q)));
        } else {
            keys.extend(waiting.queues.iter().map(|q| n.queue(q)));
        }
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
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waiting.pop(ctx)));
    match outcome {
        Ok(Ok(Reply::Nil)) => raw::REDISMODULE_ERR as c_int,
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

/// `TQ.ACK <ns> <worker>` → OK: the worker's job succeeded.
pub struct Ack;

impl Command for Ack {
    const NAME: &'static CStr = c"tq.ack";
    const FLAGS: &'static CStr = c"write";
    const DOC: Doc = Doc {
        summary: c"Completes the worker's job in flight and counts it in stat:processed",
        complexity: c"O(1)",
        arity: 3,
        writes: true,
        args: &[NS, Arg::string(c"worker")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, |s, ns| work::ack(s, ns, worker))
    }
}

/// `TQ.FAIL <ns> <worker> <exception> <error> [<backtrace-json-array>]` → OK:
/// the worker's job failed and is moved to `<ns>:failed`.
pub struct Fail;

impl Command for Fail {
    const NAME: &'static CStr = c"tq.fail";
    const FLAGS: &'static CStr = c"write deny-oom";
    const DOC: Doc = Doc {
        summary: c"Moves the worker's job in flight to the failed list as node-resque's failure record and counts it in stat:failed",
        complexity: c"O(N) in the size of the job and backtrace",
        arity: -5,
        writes: true,
        args: &[
            NS,
            Arg::string(c"worker"),
            Arg::string(c"exception"),
            Arg::string(c"error"),
            Arg::string(c"backtrace-json").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, exception, error, rest @ ..] = args else { return Err(TqError::Arity) };
        let backtrace = optional(rest)?;
        planned(ctx, ns, |s, ns| work::fail(s, ns, worker, exception, error, backtrace))
    }
}

/// `TQ.HEARTBEAT <ns> <worker> <ms>` → the lease left in ms (0 without a job).
pub struct Heartbeat;

impl Command for Heartbeat {
    const NAME: &'static CStr = c"tq.heartbeat";
    const FLAGS: &'static CStr = c"write deny-oom";
    const DOC: Doc = Doc {
        summary: c"Marks the worker alive for ms more, extends the lease of its job in flight to ms from now, and refreshes node-resque's worker ping",
        complexity: c"O(log(N)) with N the workers in flight",
        arity: 4,
        writes: true,
        args: &[NS, Arg::string(c"worker"), Arg::integer(c"ms")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, ms] = args else { return Err(TqError::Arity) };
        let ms = parse::uint("ms", ms, u64::MAX)?;
        planned(ctx, ns, |s, ns| work::heartbeat(s, ns, worker, ms))
    }
}

/// `TQ.BROADCAST <ns> <class> [<args-json>]` → how many workers it reached.
pub struct Broadcast;

impl Command for Broadcast {
    const NAME: &'static CStr = c"tq.broadcast";
    const FLAGS: &'static CStr = c"write deny-oom";
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
