//! Expiring locks: pair locks as keys (TQ.LOCK/UNLOCK/RENEW) or hash fields
//! (TQ.HLOCK/HUNLOCK/HRENEW), and the scheduler leader lock (TQ.LEADER,
//! TQ.RESIGN).

use std::ffi::CStr;

use tq_core::error::show;
use tq_core::lock::{self, Place, MAX_TTL_MS};
use tq_core::store::Reply;
use tq_core::{parse, Result, TqError};

use crate::acl::{Acl, Plain::*};
use crate::command::{planned, Command};
use crate::docs::{Arg, Doc, NS};
use crate::rm;

fn ttl(raw: &[u8]) -> Result<u64> {
    parse::uint("ttl-ms", raw, u64::MAX).and_then(lock::check_ttl)
}

fn token(raw: &[u8]) -> Result<u64> {
    parse::uint("token", raw, u64::MAX)
}

/// `OK` reports success, `FAIL` failure.
fn outcome(raw: &[u8]) -> Result<bool> {
    if raw.eq_ignore_ascii_case(b"OK") {
        Ok(true)
    } else if raw.eq_ignore_ascii_case(b"FAIL") {
        Ok(false)
    } else {
        Err(TqError::arg(format!("outcome must be OK or FAIL, got '{}'", show(raw))))
    }
}

const LOCK_SUMMARY: &CStr = c"Tries to take a pair lock: [acquired, token], [held, ms-left] or [done, 0]";
const UNLOCK_SUMMARY: &CStr =
    c"Reports on a held pair lock: OK marks its task done for a full ttl, FAIL frees it for takeover";
const RENEW_SUMMARY: &CStr = c"Extends a held pair lock to ttl-ms from now (a heartbeat for long tasks)";

/// `TQ.LOCK <ns> <lock> <owner> <ttl-ms>`
pub struct Lock;

impl Command for Lock {
    const NAME: &'static CStr = c"tq.lock";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Set, Incr]);
    const DOC: Doc = Doc {
        summary: LOCK_SUMMARY,
        complexity: c"O(1)",
        arity: 5,
        writes: true,
        args: &[NS, Arg::string(c"lock"), Arg::string(c"owner"), Arg::integer(c"ttl-ms")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, name, owner, t] = args else { return Err(TqError::Arity) };
        let t = ttl(t)?;
        planned(ctx, ns, |s, ns| lock::lock(s, ns, &Place::Key(name), owner, t))
    }
}

/// `TQ.UNLOCK <ns> <lock> <owner> <token> OK|FAIL`
pub struct Unlock;

impl Command for Unlock {
    const NAME: &'static CStr = c"tq.unlock";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Set, Del]);
    const DOC: Doc = Doc {
        summary: UNLOCK_SUMMARY,
        complexity: c"O(1)",
        arity: 6,
        writes: true,
        args: &[NS, Arg::string(c"lock"), Arg::string(c"owner"), Arg::integer(c"token"), Arg::string(c"outcome")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, name, owner, tok, out] = args else { return Err(TqError::Arity) };
        let (tok, ok) = (token(tok)?, outcome(out)?);
        planned(ctx, ns, |s, ns| lock::unlock(s, ns, &Place::Key(name), owner, tok, ok))
    }
}

/// `TQ.RENEW <ns> <lock> <owner> <token> <ttl-ms>`
pub struct Renew;

impl Command for Renew {
    const NAME: &'static CStr = c"tq.renew";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Set]);
    const DOC: Doc = Doc {
        summary: RENEW_SUMMARY,
        complexity: c"O(1)",
        arity: 6,
        writes: true,
        args: &[NS, Arg::string(c"lock"), Arg::string(c"owner"), Arg::integer(c"token"), Arg::integer(c"ttl-ms")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, name, owner, tok, t] = args else { return Err(TqError::Arity) };
        let (tok, t) = (token(tok)?, ttl(t)?);
        planned(ctx, ns, |s, ns| lock::renew(s, ns, &Place::Key(name), owner, tok, t))
    }
}

/// `TQ.HLOCK <ns> <key> <field> <owner> <ttl-ms>`
pub struct HLock;

impl Command for HLock {
    const NAME: &'static CStr = c"tq.hlock";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Hset, Incr, Pexpireat]);
    const DOC: Doc = Doc {
        summary: c"TQ.LOCK with the lock kept as one field of the hash <ns>:tq:hlock:<key>",
        complexity: c"O(1), plus expired fields removed on the way (at most 64 examined)",
        arity: 6,
        writes: true,
        args: &[NS, Arg::string(c"key"), Arg::string(c"field"), Arg::string(c"owner"), Arg::integer(c"ttl-ms")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, hash, field, owner, t] = args else { return Err(TqError::Arity) };
        let t = ttl(t)?;
        planned(ctx, ns, |s, ns| lock::lock(s, ns, &Place::Field { hash, field }, owner, t))
    }
}

/// `TQ.HUNLOCK <ns> <key> <field> <owner> <token> OK|FAIL`
pub struct HUnlock;

impl Command for HUnlock {
    const NAME: &'static CStr = c"tq.hunlock";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Hset, Hdel]);
    const DOC: Doc = Doc {
        summary: c"TQ.UNLOCK for a lock kept as a hash field",
        complexity: c"O(1), plus expired fields removed on the way (at most 64 examined)",
        arity: 7,
        writes: true,
        args: &[
            NS,
            Arg::string(c"key"),
            Arg::string(c"field"),
            Arg::string(c"owner"),
            Arg::integer(c"token"),
            Arg::string(c"outcome"),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, hash, field, owner, tok, out] = args else { return Err(TqError::Arity) };
        let (tok, ok) = (token(tok)?, outcome(out)?);
        planned(ctx, ns, |s, ns| lock::unlock(s, ns, &Place::Field { hash, field }, owner, tok, ok))
    }
}

/// `TQ.HRENEW <ns> <key> <field> <owner> <token> <ttl-ms>`
pub struct HRenew;

impl Command for HRenew {
    const NAME: &'static CStr = c"tq.hrenew";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Hset, Pexpireat]);
    const DOC: Doc = Doc {
        summary: c"TQ.RENEW for a lock kept as a hash field",
        complexity: c"O(1), plus expired fields removed on the way (at most 64 examined)",
        arity: 7,
        writes: true,
        args: &[
            NS,
            Arg::string(c"key"),
            Arg::string(c"field"),
            Arg::string(c"owner"),
            Arg::integer(c"token"),
            Arg::integer(c"ttl-ms"),
        ],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, hash, field, owner, tok, t] = args else { return Err(TqError::Arity) };
        let (tok, t) = (token(tok)?, ttl(t)?);
        planned(ctx, ns, |s, ns| lock::renew(s, ns, &Place::Field { hash, field }, owner, tok, t))
    }
}

/// `TQ.LEADER <ns> <name> <ttl-ms>` → 1 when `name` leads afterwards, else 0.
pub struct Leader;

impl Command for Leader {
    const NAME: &'static CStr = c"tq.leader";
    const FLAGS: &'static CStr = c"write deny-oom";
    const ACL: Acl = Acl::fast(&[Set]);
    const DOC: Doc = Doc {
        summary: c"Acquires or renews the scheduler leader lock node-resque's queue.leader() reads (owner compared inside Redis)",
        complexity: c"O(1)",
        arity: 4,
        writes: true,
        args: &[NS, Arg::string(c"name"), Arg::integer(c"ttl-ms")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, name, t] = args else { return Err(TqError::Arity) };
        let t = parse::uint("ttl-ms", t, MAX_TTL_MS).and_then(lock::check_ttl)?;
        planned(ctx, ns, |s, ns| lock::leader(s, ns, name, t))
    }
}

/// `TQ.RESIGN <ns> <name>` → 1 when `name` held the leader lock and released it.
pub struct Resign;

impl Command for Resign {
    const NAME: &'static CStr = c"tq.resign";
    const FLAGS: &'static CStr = c"write";
    const ACL: Acl = Acl::fast(&[Del]);
    const DOC: Doc = Doc {
        summary: c"Releases the scheduler leader lock if the given name holds it",
        complexity: c"O(1)",
        arity: 3,
        writes: true,
        args: &[NS, Arg::string(c"name")],
    };

    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply> {
        let [_, ns, name] = args else { return Err(TqError::Arity) };
        planned(ctx, ns, |s, ns| lock::resign(s, ns, name))
    }
}
