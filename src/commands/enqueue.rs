//! TQ.ENQUEUE, TQ.ENQUEUEAT, TQ.ENQUEUEIN.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{parse, queue, time, Result, TqError};

use super::optional;
use crate::command::{planned, Command};
use crate::rm;

/// `TQ.ENQUEUE <ns> <queue> <class> [<args-json>]` → the queue's length.
pub struct Enqueue;

impl Command for Enqueue {
    const NAME: &'static CStr = c"tq.enqueue";
    const FLAGS: &'static CStr = c"write deny-oom";

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

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, delay, q, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        let delay = parse::uint("delay-ms", delay, time::MAX_TIME_MS)?;
        planned(ctx, ns, |s, ns| queue::enqueue_in(s, ns, delay, q, class, json))
    }
}
