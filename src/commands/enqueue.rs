//! TQ.ENQUEUE, TQ.ENQUEUEAT, TQ.ENQUEUEIN.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{parse, queue, time, Result, TqError};

use super::optional;
use crate::acl::{Acl, Plain::*};
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

const ARGS_JSON: Arg = Arg::string(c"args-json").optional();

/// `TQ.ENQUEUE <ns> <queue> <class> [<args-json>] [UNIQUE [<lock-ttl-ms>]] [NOTDELAYED]`
/// → the queue's length, or nil when UNIQUE finds an identical job waiting
/// or NOTDELAYED the same job in a delayed bucket.
pub struct Enqueue;

/// node-resque QueueLock's default lockTimeout (3600 s).
const UNIQUE_DEFAULT_TTL_MS: u64 = 3_600_000;

/// Splits `[<args-json>] [UNIQUE [<ms>]]`. `UNIQUE` is never valid JSON, so a
/// bare `UNIQUE` is always the option.
fn enqueue_options<'a>(rest: &[&'a [u8]]) -> Result<(Option<&'a [u8]>, Option<u64>)> {
    let (json, opts) = match rest {
        [first, tail @ ..] if !first.eq_ignore_ascii_case(b"UNIQUE") => (Some(*first), tail),
        _ => (None, rest),
    };
    match opts {
        [] => Ok((json, None)),
        [u] if u.eq_ignore_ascii_case(b"UNIQUE") => Ok((json, Some(UNIQUE_DEFAULT_TTL_MS))),
        [u, ms] if u.eq_ignore_ascii_case(b"UNIQUE") => {
            Ok((json, Some(parse::positive("lock-ttl-ms", ms, tq_core::lock::MAX_TTL_MS)?)))
        }
        [other, ..] if !other.eq_ignore_ascii_case(b"UNIQUE") => Err(TqError::arg(format!(
            "unknown option '{}' (expected UNIQUE or NOTDELAYED)",
            tq_core::error::show(other)
        ))),
        _ => Err(TqError::Arity),
    }
}

impl Command for Enqueue {
    const NAME: &'static CStr = c"tq.enqueue";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Rpush, Sadd]).with(&[("UNIQUE", &[Set]), ("NOTDELAYED", &[Smembers])]);
    const DOC: Doc = Doc {
        summary: c"Appends a job to a queue, as node-resque's Queue.enqueue writes it, and registers the queue; UNIQUE refuses it while an identical job waits (node-resque's QueueLock); NOTDELAYED refuses it while the same job waits in a delayed bucket (node-resque's DelayQueueLock)",
        complexity: c"O(N) in the size of args-json",
        arity: -4,
        writes: true,
        args: &[
            NS,
            Arg::string(c"queue"),
            Arg::string(c"class"),
            ARGS_JSON,
            Arg::integer(c"lock-ttl-ms").token(c"UNIQUE").optional(),
            Arg::pure_token(c"NOTDELAYED").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, q, class, rest @ ..] = args else { return Err(TqError::Arity) };
        // NOTDELAYED, never valid JSON, comes last.
        let (rest, not_delayed) = match rest {
            [head @ .., last] if last.eq_ignore_ascii_case(b"NOTDELAYED") => (head, true),
            _ => (rest, false),
        };
        let (json, unique) = enqueue_options(rest)?;
        if not_delayed {
            return planned(ctx, ns, |s, ns| queue::enqueue_not_delayed(s, ns, q, class, json, unique));
        }
        planned(ctx, ns, |s, ns| queue::enqueue(s, ns, q, class, json, unique))
    }
}

/// `TQ.ENQUEUEAT <ns> <unix-ms> <queue> <class> [<args-json>]` → the bucket.
pub struct EnqueueAt;

impl Command for EnqueueAt {
    const NAME: &'static CStr = c"tq.enqueueat";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Rpush, Sadd, Zadd, Hset, Pexpireat]);
    const DOC: Doc = Doc {
        summary: c"Files a job under the one-second bucket of a unix time in ms, as node-resque's enqueueAt",
        complexity: c"O(log(N)) with N the number of delayed buckets, plus the size of args-json",
        arity: -5,
        writes: true,
        args: &[NS, Arg::integer(c"unix-ms"), Arg::string(c"queue"), Arg::string(c"class"), ARGS_JSON],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, at, q, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        let at = parse::uint("unix-ms", at, time::MAX_TIME_MS)?;
        planned(ctx, ns, |s, ns| queue::enqueue_at(s, ns, at, q, class, json))
    }
}

/// `TQ.ENQUEUEIN <ns> <delay-ms> <queue> <class> [<args-json>]` → the bucket.
pub struct EnqueueIn;

impl Command for EnqueueIn {
    const NAME: &'static CStr = c"tq.enqueuein";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Rpush, Sadd, Zadd, Hset, Pexpireat]);
    const DOC: Doc = Doc {
        summary: c"Files a job to run a delay in ms after the server's clock, as node-resque's enqueueIn",
        complexity: c"O(log(N)) with N the number of delayed buckets, plus the size of args-json",
        arity: -5,
        writes: true,
        args: &[NS, Arg::integer(c"delay-ms"), Arg::string(c"queue"), Arg::string(c"class"), ARGS_JSON],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, delay, q, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        let delay = parse::uint("delay-ms", delay, time::MAX_TIME_MS)?;
        planned(ctx, ns, |s, ns| queue::enqueue_in(s, ns, delay, q, class, json))
    }
}
