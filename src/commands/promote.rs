//! TQ.PROMOTE.

use std::ffi::CStr;

use tq_core::queue::{self, PROMOTE_DEFAULT_LIMIT, PROMOTE_MAX_LIMIT};
use tq_core::store::Reply;
use tq_core::{error::show, parse, Result, TqError};

use crate::acl::{Acl, Plain::*};
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

/// `TQ.PROMOTE <ns> [LIMIT <n>]` → how many due delayed jobs reached their
/// queues (at most `n`, default 1000).
pub struct Promote;

impl Command for Promote {
    const NAME: &'static CStr = c"tq.promote";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::slow(&[Lpop, Rpush, Sadd, Srem, Zrem, Del]);
    const DOC: Doc = Doc {
        summary: c"Moves due delayed jobs into their queues, oldest bucket first, at most LIMIT (default 1000)",
        complexity: c"O(M log(N)) with M the jobs moved and N the delayed buckets",
        arity: -2,
        writes: true,
        args: &[NS, Arg::integer(c"limit").token(c"LIMIT").optional()],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, opts @ ..] = args else { return Err(TqError::Arity) };
        let mut opts: &[&[u8]] = opts;
        let mut limit = None;
        while let [name, rest @ ..] = opts {
            if !name.eq_ignore_ascii_case(b"LIMIT") {
                return Err(TqError::arg(format!("unknown option '{}' (expected LIMIT)", show(name))));
            }
            let [value, rest @ ..] = rest else {
                return Err(TqError::arg("LIMIT needs a value"));
            };
            if limit.is_some() {
                return Err(TqError::arg("LIMIT given more than once"));
            }
            limit = Some(parse::positive("LIMIT", value, PROMOTE_MAX_LIMIT)?);
            opts = rest;
        }
        let limit = limit.unwrap_or(PROMOTE_DEFAULT_LIMIT);
        planned(ctx, ns, |s, ns| queue::promote(s, ns, limit))
    }
}
