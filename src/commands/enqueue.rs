//! TQ.ENQUEUE, TQ.ENQUEUEAT, TQ.ENQUEUEIN.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{parse, queue, time, Result, TqError};

use super::optional;
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

const ARGS_JSON: Arg = Arg::string(c"args-json").optional();

/// `TQ.ENQUEUE <ns> <queue> <class> [<args-json>]` → the queue's length.
pub struct Enqueue;

impl Command for Enqueue {
    const NAME: &'static CStr = c"tq.enqueue";
    const FLAGS: &'static CStr = c"write deny-oom";
    const DOC: Doc = Doc {
        summary: c"Appends a job to a queue, as node-resque's Queue.enqueue writes it, and registers the queue",
        complexity: c"O(N) in the size of args-json",
        arity: -4,
        writes: true,
        args: &[NS, Arg::string(c"queue"), Arg::string(c"class"), ARGS_JSON],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, q, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        planned(ctx, ns, |s, ns| queue::enqueue(s, ns, q, class, json))
    }
}

/// `TQ.ENQUEUEAT <ns> <unix-ms> <queue> <class> [<args-json>]` → the bucket.
pub struct EnqueueAt;

impl Command for EnqueueAt {
    const NAME: &'static CStr = c"tq.enqueueat";
    const FLAGS: &'static CStr = c"write deny-oom";
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
