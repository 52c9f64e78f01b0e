//! TQ.PAUSE, TQ.RESUME, TQ.PAUSED: queues no tq take takes from.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{pause, Result, TqError};

use crate::acl::{Acl, Plain::*};
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

/// `TQ.PAUSE <ns> <queue>` → 1 paused now, 0 already paused.
pub struct Pause;

impl Command for Pause {
    const NAME: &'static CStr = c"tq.pause";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Sadd]);
    const DOC: Doc = Doc {
        summary:
            c"Pauses a queue: it keeps and accepts jobs, but no tq take (TQ.POP, TQ.BPOP) takes from it until TQ.RESUME",
        complexity: c"O(1)",
        arity: 3,
        writes: true,
        args: &[NS, Arg::string(c"queue")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, |s, ns| pause::pause(s, ns, queue))
    }
}

/// `TQ.RESUME <ns> <queue>` → 1 resumed, 0 was not paused.
pub struct Resume;

impl Command for Resume {
    const NAME: &'static CStr = c"tq.resume";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Srem]);
    const DOC: Doc = Doc {
        summary: c"Resumes a paused queue: tq takes take from it again",
        complexity: c"O(1)",
        arity: 3,
        writes: true,
        args: &[NS, Arg::string(c"queue")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue] = args else { return Err(TqError::Arity) };
        let reply = planned(ctx, ns, |s, ns| pause::resume(s, ns, queue))?;
        // TQ.BPOP waiters on a paused queue that holds jobs are noted stuck
        // (Redis would not wake them): let them try again now.
        if reply == Reply::Int(1) && crate::waiters::any() {
            crate::waiters::wake(ctx, Some(rm::selected_db(ctx)));
        }
        Ok(reply)
    }
}

/// `TQ.PAUSED <ns>` → the paused queues, sorted.
pub struct Paused;

impl Command for Paused {
    const NAME: &'static CStr = c"tq.paused";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Smembers]);
    const DOC: Doc = Doc {
        summary: c"Lists the paused queues",
        complexity: c"O(N) with N the paused queues",
        arity: 2,
        writes: false,
        args: &[NS],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, pause::list)
    }
}
