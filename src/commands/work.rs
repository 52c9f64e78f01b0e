//! TQ.POP, TQ.ACK, TQ.FAIL: a worker takes a job and reports on it.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{queue, Result, TqError};

use super::optional;
use crate::command::{planned, Command};
use crate::rm;

/// `TQ.POP <ns> <worker> <queue> [<queue> ...]` → nil or `[queue, payload]`.
/// A lone `*` means every queue in `<ns>:queues`, alphabetically.
pub struct Pop;

impl Command for Pop {
    const NAME: &'static CStr = c"tq.pop";
    const FLAGS: &'static CStr = c"write deny-oom";

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, queues @ ..] = args else { return Err(TqError::Arity) };
        if queues.is_empty() {
            return Err(TqError::Arity);
        }
        planned(ctx, ns, |s, ns| queue::pop(s, ns, worker, queues))
    }
}

/// `TQ.ACK <ns> <worker>` → OK: the worker's job succeeded.
pub struct Ack;

impl Command for Ack {
    const NAME: &'static CStr = c"tq.ack";
    const FLAGS: &'static CStr = c"write";

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

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, exception, error, rest @ ..] = args else { return Err(TqError::Arity) };
        let backtrace = optional(rest)?;
        planned(ctx, ns, |s, ns| queue::fail(s, ns, worker, exception, error, backtrace))
    }
}
