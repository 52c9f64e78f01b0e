//! TQ.RECUR, TQ.UNRECUR, TQ.RECURS: periodic tasks the module's timer
//! enqueues.

use std::ffi::CStr;

use tq_core::store::Reply;
use tq_core::{parse, recur, Result, TqError};

use super::optional;
use crate::acl::{Acl, Plain::*};
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

/// `TQ.RECUR <ns> <class> <queue> <every-ms> [<args-json>]` → 1 new, 0 updated.
pub struct Recur;

impl Command for Recur {
    const NAME: &'static CStr = c"tq.recur";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Hset, Rpush, Sadd, Set]);
    const DOC: Doc = Doc {
        summary: c"Registers a periodic task: the module enqueues it every every-ms, never with more than one instance waiting or running; the first is due at once",
        complexity: c"O(1)",
        arity: -5,
        writes: true,
        args: &[
            NS,
            Arg::string(c"class"),
            Arg::string(c"queue"),
            Arg::integer(c"every-ms"),
            Arg::string(c"args-json").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, class, queue, every, rest @ ..] = args else { return Err(TqError::Arity) };
        let every = parse::uint("every-ms", every, u64::MAX)?;
        let json = optional(rest)?;
        planned(ctx, ns, |s, ns| recur::recur(s, ns, class, queue, every, json))
    }
}

/// `TQ.UNRECUR <ns> <class> <queue> [<args-json>]` → 1 removed, 0 unknown.
pub struct Unrecur;

impl Command for Unrecur {
    const NAME: &'static CStr = c"tq.unrecur";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Hdel]);
    const DOC: Doc = Doc {
        summary: c"Stops a periodic task (an instance waiting or running is left alone)",
        complexity: c"O(1)",
        arity: -4,
        writes: true,
        args: &[NS, Arg::string(c"class"), Arg::string(c"queue"), Arg::string(c"args-json").optional()],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, class, queue, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        planned(ctx, ns, |s, ns| recur::unrecur(s, ns, class, queue, json))
    }
}

/// `TQ.RECURS <ns>` → `[[payload, every-ms, next-due-ms], ...]`.
pub struct Recurs;

impl Command for Recurs {
    const NAME: &'static CStr = c"tq.recurs";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Hgetall]);
    const DOC: Doc = Doc {
        summary: c"Lists the periodic tasks: payload, period and next due time (unix ms)",
        complexity: c"O(N) with N the periodic tasks",
        arity: 2,
        writes: false,
        args: &[NS],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, recur::list)
    }
}
