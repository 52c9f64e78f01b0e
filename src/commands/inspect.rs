//! Inspection and management: node-resque's Queue methods (and ActionHero's
//! api.tasks) as single atomic commands. Lists are paginated so no reply
//! grows without bound.

use std::ffi::CStr;

use tq_core::error::show;
use tq_core::inspect::{self, FailedFilter, DEFAULT_PAGE, MAX_FAILED_SCAN, MAX_PAGE};
use tq_core::store::Reply;
use tq_core::{parse, time, Result, TqError};

use super::optional;
use crate::acl::{Acl, Plain, Plain::*};
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

const ARGS_JSON: Arg = Arg::string(c"args-json").optional();
const OFFSET: Arg = Arg::integer(c"offset").optional();
const COUNT: Arg = Arg::integer(c"count").optional();
const START: Arg = Arg::integer(c"start").optional();
const STOP: Arg = Arg::integer(c"stop").optional();

/// `[<offset> <count>]`, both or neither; count at most `MAX_PAGE`.
fn page(rest: &[&[u8]]) -> Result<(u64, u64)> {
    match rest {
        [] => Ok((0, DEFAULT_PAGE)),
        [offset, count] => Ok((parse::uint("offset", offset, u64::MAX)?, parse::uint("count", count, MAX_PAGE)?)),
        _ => Err(TqError::Arity),
    }
}

/// `[<start> <stop>]` list indices, both or neither.
fn range(rest: &[&[u8]], default: (i64, i64)) -> Result<(i64, i64)> {
    match rest {
        [] => Ok(default),
        [start, stop] => Ok((parse::index("start", start)?, parse::index("stop", stop)?)),
        _ => Err(TqError::Arity),
    }
}

/// A command reading a namespace (and nothing else) that takes a page.
macro_rules! paged_reader {
    ($name:ident, $cmd:literal, $acl:expr, $summary:literal, $complexity:literal, $plan:path) => {
        pub struct $name;

        impl Command for $name {
            const NAME: &'static CStr = $cmd;
            const FLAGS: &'static CStr = c"readonly";
            const ACL: Acl = $acl;
            const DOC: Doc = Doc {
                summary: $summary,
                complexity: $complexity,
                arity: -2,
                writes: false,
                args: &[NS, OFFSET, COUNT],
            };

            fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
                let [_, ns, rest @ ..] = args else { return Err(TqError::Arity) };
                let (offset, count) = page(rest)?;
                planned(ctx, ns, |s, ns| $plan(s, ns, offset, count))
            }
        }
    };
}

paged_reader!(
    Timestamps,
    c"tq.timestamps",
    Acl::slow(&[Zrange]),
    c"Lists the times (unix ms) that have delayed jobs, oldest first, a page at a time (default 1000)",
    c"O(log(N)+M) with N the delayed buckets and M the page",
    inspect::timestamps
);
paged_reader!(
    AllDelayed,
    c"tq.alldelayed",
    Acl::slow(&[Zrange, Lrange]),
    c"Lists delayed buckets with their jobs: [[unix-ms, [job, ...]], ...], a page of at most 1000 buckets, 1000 jobs each",
    c"O(M*J) with M the page and J the jobs shown per bucket",
    inspect::all_delayed
);
paged_reader!(
    Workers,
    c"tq.workers",
    Acl::slow(&[Smembers, Get]),
    c"Lists registered workers with what they work on: [[name, queues, record-or-nil], ...], sorted, a page at a time",
    c"O(N log N) with N the registered workers",
    inspect::workers
);
paged_reader!(
    Failed,
    c"tq.failed",
    Acl::slow(&[Lrange]),
    c"Lists failed jobs, oldest first: [[id, record], ...]; the id names the record for TQ.FAILRETRY and TQ.FAILREMOVE",
    c"O(S+M) with S the offset and M the page",
    inspect::failed
);

/// `TQ.SCHEDULEDAT <ns> <queue> <class> [<args-json>]` → `[unix-ms, ...]`.
pub struct ScheduledAt;

impl Command for ScheduledAt {
    const NAME: &'static CStr = c"tq.scheduledat";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Smembers]);
    const DOC: Doc = Doc {
        summary: c"Lists the times (unix ms) a job is filed under as a delayed job, as node-resque's scheduledAt",
        complexity: c"O(N) with N the times the job is filed under",
        arity: -4,
        writes: false,
        args: &[NS, Arg::string(c"queue"), Arg::string(c"class"), ARGS_JSON],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        planned(ctx, ns, |s, ns| inspect::scheduled_at(s, ns, queue, class, json))
    }
}

/// `TQ.DELAYEDAT <ns> <unix-ms> [<start> <stop>]` → `[job, ...]`.
pub struct DelayedAt;

impl Command for DelayedAt {
    const NAME: &'static CStr = c"tq.delayedat";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Lrange]);
    const DOC: Doc = Doc {
        summary:
            c"Lists the jobs filed under the delayed bucket of a time (unix ms), LRANGE-style indices, at most 10000",
        complexity: c"O(S+M) with S the start and M the jobs listed",
        arity: -3,
        writes: false,
        args: &[NS, Arg::integer(c"unix-ms"), START, STOP],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, at, rest @ ..] = args else { return Err(TqError::Arity) };
        let at = parse::uint("unix-ms", at, time::MAX_TIME_MS)?;
        let (start, stop) = range(rest, (0, -1))?;
        planned(ctx, ns, |s, ns| inspect::delayed_at(s, ns, at, start, stop))
    }
}

/// `TQ.STATS <ns>` → flat `[name, value, ...]`.
pub struct Stats;

impl Command for Stats {
    const NAME: &'static CStr = c"tq.stats";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Get, Smembers]);
    const DOC: Doc = Doc {
        summary: c"The processed and failed counters, global and per registered worker, as a flat list of name, value",
        complexity: c"O(N) with N the registered workers",
        arity: 2,
        writes: false,
        args: &[NS],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, inspect::stats)
    }
}

/// The options of TQ.FAILRETRY and TQ.FAILREMOVE: a filter and a window.
fn failed_options(rest: &[&[u8]]) -> Result<(FailedFilter, u64, u64)> {
    let mut filter = FailedFilter::default();
    let (mut from, mut limit) = (0, MAX_FAILED_SCAN);
    let mut it = rest.iter();
    while let Some(word) = it.next() {
        let Some(value) = it.next() else {
            return Err(TqError::arg(format!("{} needs a value", show(word))));
        };
        let slot = match word.to_ascii_uppercase().as_slice() {
            b"ID" => &mut filter.id,
            b"CLASS" => &mut filter.class,
            b"QUEUE" => &mut filter.queue,
            b"EXCEPTION" => &mut filter.exception,
            b"FROM" => {
                from = parse::uint("FROM", value, u64::MAX)?;
                continue;
            }
            b"LIMIT" => {
                limit = parse::positive("LIMIT", value, MAX_FAILED_SCAN)?;
                continue;
            }
            _ => {
                return Err(TqError::arg(format!(
                    "unknown option '{}' (expected ID, CLASS, QUEUE, EXCEPTION, FROM or LIMIT)",
                    show(word)
                )))
            }
        };
        if slot.replace(value.to_vec()).is_some() {
            return Err(TqError::arg(format!("{} is given twice", show(word))));
        }
    }
    Ok((filter, from, limit))
}

const FAILED_ARGS: &[Arg] = &[
    NS,
    Arg::string(c"id").token(c"ID").optional(),
    Arg::string(c"class").token(c"CLASS").optional(),
    Arg::string(c"queue").token(c"QUEUE").optional(),
    Arg::string(c"exception").token(c"EXCEPTION").optional(),
    Arg::integer(c"from").token(c"FROM").optional(),
    Arg::integer(c"limit").token(c"LIMIT").optional(),
];

/// `TQ.FAILRETRY <ns> [ID id] [CLASS c] [QUEUE q] [EXCEPTION e] [FROM n] [LIMIT n]` → `[retried, next]`.
pub struct FailRetry;

impl Command for FailRetry {
    const NAME: &'static CStr = c"tq.failretry";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::slow(&[Lrem, Rpush, Lset]);
    const DOC: Doc = Doc {
        summary: c"Enqueues failed jobs again and removes their records: those matching every filter among LIMIT records from FROM; replies [retried, next-from] (nil at the end)",
        complexity: c"O(S+N) with S the position FROM and N the records looked at",
        arity: -2,
        writes: true,
        args: FAILED_ARGS,
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, rest @ ..] = args else { return Err(TqError::Arity) };
        let (filter, from, limit) = failed_options(rest)?;
        planned(ctx, ns, |s, ns| inspect::failed_retry(s, ns, &filter, from, limit, true))
    }
}

/// `TQ.FAILREMOVE <ns> [ID id] [CLASS c] [QUEUE q] [EXCEPTION e] [FROM n] [LIMIT n]` → `[removed, next]`.
pub struct FailRemove;

impl Command for FailRemove {
    const NAME: &'static CStr = c"tq.failremove";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Lrem, Lset]);
    const DOC: Doc = Doc {
        summary: c"Removes failed-job records matching every filter among LIMIT records from FROM; replies [removed, next-from] (nil at the end)",
        complexity: c"O(S+N) with S the position FROM and N the records looked at",
        arity: -2,
        writes: true,
        args: FAILED_ARGS,
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, rest @ ..] = args else { return Err(TqError::Arity) };
        let (filter, from, limit) = failed_options(rest)?;
        planned(ctx, ns, |s, ns| inspect::failed_retry(s, ns, &filter, from, limit, false))
    }
}

/// `TQ.DEL <ns> <queue> <class> [<args-json>] [COUNT <n>]` → removed.
pub struct Del;

impl Command for Del {
    const NAME: &'static CStr = c"tq.del";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Lrem]);
    const DOC: Doc = Doc {
        summary: c"Removes waiting instances of a job from its queue (all, or the first COUNT), as node-resque's del; replies how many",
        complexity: c"O(N) with N the queue length",
        arity: -4,
        writes: true,
        args: &[
            NS,
            Arg::string(c"queue"),
            Arg::string(c"class"),
            ARGS_JSON,
            Arg::integer(c"count").token(c"COUNT").optional(),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let count_of = |raw: &[u8]| parse::positive("COUNT", raw, i64::MAX as u64);
        let (json, count) = match rest {
            [kw, n] if kw.eq_ignore_ascii_case(b"COUNT") => (None, count_of(n)?),
            [json, kw, n] if kw.eq_ignore_ascii_case(b"COUNT") => (Some(*json), count_of(n)?),
            _ => (optional(rest)?, 0),
        };
        planned(ctx, ns, |s, ns| inspect::del(s, ns, queue, class, json, count))
    }
}

/// `TQ.DELDELAYED <ns> <queue> <class> [<args-json>]` → `[unix-ms, ...]`.
pub struct DelDelayed;

impl Command for DelDelayed {
    const NAME: &'static CStr = c"tq.deldelayed";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Lrem, Srem, Zrem, Hdel]);
    const DOC: Doc = Doc {
        summary: c"Removes a job from every delayed bucket it is filed under, with its markers, as node-resque's delDelayed; replies the times it was removed from",
        complexity: c"O(N*M) with N the times the job is filed under and M their bucket sizes",
        arity: -4,
        writes: true,
        args: &[NS, Arg::string(c"queue"), Arg::string(c"class"), ARGS_JSON],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let json = optional(rest)?;
        planned(ctx, ns, |s, ns| inspect::del_delayed(s, ns, queue, class, json))
    }
}

/// `TQ.DELQUEUE <ns> <queue>` → the jobs it held.
pub struct DelQueue;

impl Command for DelQueue {
    const NAME: &'static CStr = c"tq.delqueue";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Plain::Del, Srem]);
    const DOC: Doc = Doc {
        summary: c"Deletes a queue with its waiting jobs and unregisters it, as node-resque's delQueue; replies how many jobs it held",
        complexity: c"O(N) with N the jobs in the queue",
        arity: 3,
        writes: true,
        args: &[NS, Arg::string(c"queue")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, |s, ns| inspect::del_queue(s, ns, queue))
    }
}

/// `TQ.DELBYCLASS <ns> <queue> <class> [<start> <stop>]` → removed.
pub struct DelByClass;

impl Command for DelByClass {
    const NAME: &'static CStr = c"tq.delbyclass";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Lrem]);
    const DOC: Doc = Doc {
        summary: c"Removes the waiting jobs of a class found in a range of the queue (default all, at most 100000 looked at), as node-resque's delByFunction; replies how many",
        complexity: c"O(N*M) with N the jobs looked at and M the queue length",
        arity: -4,
        writes: true,
        args: &[NS, Arg::string(c"queue"), Arg::string(c"class"), START, STOP],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, queue, class, rest @ ..] = args else { return Err(TqError::Arity) };
        let (start, stop) = range(rest, (0, -1))?;
        planned(ctx, ns, |s, ns| inspect::del_by_class(s, ns, queue, class, start, stop))
    }
}

/// `TQ.FORCECLEAN <ns> <worker>` → the failure record, or nil.
pub struct ForceClean;

impl Command for ForceClean {
    const NAME: &'static CStr = c"tq.forceclean";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Rpush, Plain::Del, Srem]);
    const DOC: Doc = Doc {
        summary: c"Removes a worker and all its keys; a job it held goes to failed as node-resque's forceCleanWorker writes it; replies that record or nil",
        complexity: c"O(N) with N the registered workers",
        arity: 3,
        writes: true,
        args: &[NS, Arg::string(c"worker")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, |s, ns| inspect::force_clean(s, ns, worker))
    }
}

/// `TQ.CLEANWORKERS <ns> <age-ms>` → `[[worker, record-or-nil], ...]`.
pub struct CleanWorkers;

impl Command for CleanWorkers {
    const NAME: &'static CStr = c"tq.cleanworkers";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::slow(&[Rpush, Plain::Del, Srem]);
    const DOC: Doc = Doc {
        summary: c"Force-cleans every worker whose current job started more than age-ms ago, as node-resque's cleanOldWorkers; replies [[worker, failure-record], ...]",
        complexity: c"O(N) with N the registered workers",
        arity: 3,
        writes: true,
        args: &[NS, Arg::integer(c"age-ms")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, age] = args else { return Err(TqError::Arity) };
        let age = parse::uint("age-ms", age, u64::MAX)?;
        planned(ctx, ns, |s, ns| inspect::clean_workers(s, ns, age))
    }
}

/// `TQ.UNTRACK <ns> <worker> <queues>` → OK.
pub struct Untrack;

impl Command for Untrack {
    const NAME: &'static CStr = c"tq.untrack";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Srem, Plain::Del]);
    const DOC: Doc = Doc {
        summary: c"Unregisters a stopping worker (its workers entry, started and ping keys, liveness), keeping its counters; refused while it holds a job",
        complexity: c"O(1)",
        arity: 4,
        writes: true,
        args: &[NS, Arg::string(c"worker"), Arg::string(c"queues")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, worker, queues] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, |s, ns| inspect::untrack(s, ns, worker, queues))
    }
}

/// `TQ.LOCKS <ns> [<cursor> <count>]` → `[next-cursor, [[name, value], ...]]`.
pub struct Locks;

impl Command for Locks {
    const NAME: &'static CStr = c"tq.locks";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Scan, Get]);
    const DOC: Doc = Doc {
        summary: c"One SCAN step over the namespace's lock keys (node-resque's and tq's pair locks): [next-cursor, [[name, value], ...]], cursor 0 ends",
        complexity: c"O(1) per call, O(N) for a full iteration with N the keys of the database",
        arity: -2,
        writes: false,
        args: &[NS, Arg::integer(c"cursor").optional(), COUNT],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, rest @ ..] = args else { return Err(TqError::Arity) };
        let (cursor, count) = match rest {
            [] => (0, 100),
            [c, n] => (parse::uint("cursor", c, u64::MAX)?, parse::positive("count", n, MAX_PAGE)?),
            _ => return Err(TqError::Arity),
        };
        planned(ctx, ns, |s, ns| inspect::locks(s, ns, cursor, count))
    }
}

/// `TQ.DETAILS <ns>` → flat `[name, value, ...]`.
pub struct Details;

impl Command for Details {
    const NAME: &'static CStr = c"tq.details";
    const FLAGS: &'static CStr = c"readonly";
    const ACL: Acl = Acl::slow(&[Get, Llen, Smembers, Zrange]);
    const DOC: Doc = Doc {
        summary: c"Everything at once, as ActionHero's details: queues and lengths, workers (first 100), stats, leader, delayed buckets and jobs, lateness of the oldest due bucket, jobs in flight, failed jobs",
        complexity: c"O(Q+W+B) with Q the queues, W the workers and B the delayed buckets (at most 1000 counted)",
        arity: 2,
        writes: false,
        args: &[NS],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, inspect::details)
    }
}
