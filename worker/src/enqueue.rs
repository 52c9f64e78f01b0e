//! `tq enqueue QUEUE CLASS [ARGS-JSON] [--at TIME | --in DURATION]`: one
//! `TQ.ENQUEUE` / `TQ.ENQUEUEAT` / `TQ.ENQUEUEIN`, printing the reply (the
//! queue's length, or the delayed bucket in unix seconds).

use std::time::Duration;

use crate::client::{Client, Error};

/// When the job should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    Now,
    /// Unix milliseconds.
    At(u64),
    In(Duration),
}

/// `--at`: the one time syntax of `tq` (see [`crate::duration::parse_time`]).
pub use crate::duration::parse_time as parse_at;

/// Sends the enqueue; returns the module's integer reply.
pub fn enqueue(client: &mut Client, queue: &str, class: &str, args_json: &str, when: When) -> Result<u64, Error> {
    match when {
        When::Now => client.enqueue(queue, class, args_json),
        When::At(ms) => client.enqueue_at(ms, queue, class, args_json),
        When::In(d) => client.enqueue_in(d, queue, class, args_json),
    }
}
