//! TQ.POP, TQ.ACK, TQ.FAIL: a worker takes a job and reports on it.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{parse, queue, Result, TqError};

use super::optional;
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

/// `TQ.POP <ns> <worker> <queue> [<queue> ...] [JOBLOCK <ttl-ms>]` → nil or
/// `[queue, payload]`. A lone `*` means every queue in `<ns>:queues`,
/// alphabetically. JOBLOCK takes node-resque's JobLock with the job.
pub struct Pop;

impl Command for Pop {
    const NAME: &'static CStr = c"tq.pop";
    const FLAGS: &'static CStr = c"write deny-oom";
    const DOC: Doc = Doc {
        summary: c"Takes the next job from the first non-empty queue (priority order; * = all, alphabetically) and records it as the worker's job in flight",
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
        let [_, ns, worker, queues @ ..] = args else { return Err(TqError::Arity) };
        // `JOBLOCK <ms>` can only be the last two arguments.
        let (queues, joblock) = match queues {
            [qs @ .., opt, ms] if opt.eq_ignore_ascii_case(b"JOBLOCK") => {
                (qs, Some(parse::positive("JOBLOCK ttl-ms", ms, tq_core::lock::MAX_TTL_MS)?))
            }
            _ => (queues, None),
        };
        if queues.is_empty() {
            return Err(TqError::arg("at least one queue is needed"));
        }
        planned(ctx, ns, |s, ns| queue::pop(s, ns, worker, queues, joblock))
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
        planned(ctx, ns, |s, ns| queue::ack(s, ns, worker))
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
        planned(ctx, ns, |s, ns| queue::fail(s, ns, worker, exception, error, backtrace))
    }
}
