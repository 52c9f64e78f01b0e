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

/// `TQ.ENQUEUE ... UNIQUE [<lock-ttl-ms>]`: the queue's length, or None
/// when an identical job is waiting (its QueueLock holds; nothing written).
pub fn enqueue_unique(
    client: &mut Client,
    queue: &str,
    class: &str,
    args_json: &str,
    lock_ttl: Option<Duration>,
) -> Result<Option<u64>, Error> {
    let mut cmd = redis::cmd("TQ.ENQUEUE");
    cmd.arg(client.ns()).arg(queue).arg(class).arg(args_json).arg("UNIQUE");
    if let Some(ttl) = lock_ttl {
        cmd.arg(crate::duration::millis(ttl));
    }
    match client.call(&cmd)? {
        redis::Value::Nil => Ok(None),
        redis::Value::Int(n) => {
            u64::try_from(n).map(Some).map_err(|_| Error::Protocol(format!("TQ.ENQUEUE answered {n}")))
        }
        other => Err(Error::Protocol(format!("TQ.ENQUEUE answered {other:?}"))),
    }
}

/// Sends the enqueue; returns the module's integer reply.
pub fn enqueue(client: &mut Client, queue: &str, class: &str, args_json: &str, when: When) -> Result<u64, Error> {
    match when {
        When::Now => client.enqueue(queue, class, args_json),
        When::At(ms) => client.enqueue_at(ms, queue, class, args_json),
        When::In(d) => client.enqueue_in(d, queue, class, args_json),
    }
}
