//! How a TQ command is wired into Redis: argument access, the panic guard,
//! the one place where results and errors become replies, and the shared
//! plan → apply flow.

use std::ffi::{c_int, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;
use tq_core::keys::Ns;
use tq_core::store::{Plan, Reply};
use tq_core::{Result, TqError};

use crate::acl::{self, Acl};
use crate::docs::Doc;
use crate::rm;
use crate::store::RedisStore;

/// A command of the module. Handlers parse, plan through `tq_core`, apply
/// and reply; they hold no queue logic of their own.
pub trait Command {
    const NAME: &'static CStr;
    /// Redis command flags (`write`, `readonly`, `deny-oom`, ...).
    const FLAGS: &'static CStr;
    /// What `COMMAND DOCS` shows; its arity is enforced by Redis.
    const DOC: Doc;
    /// The plain commands it performs, which the caller must be allowed.
    const ACL: Acl;
    fn run(ctx: rm::Ctx, args: &[&[u8]]) -> Result<Reply>;
}

/// The C entry point of command `C`. A panic anywhere below becomes an
/// error reply: a Rust panic unwinding into Redis would abort the server.
extern "C" fn dispatch<C: Command>(
    ctx: *mut raw::RedisModuleCtx,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> c_int {
    crate::timer::client_moved();
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        acl::admit(ctx, C::NAME, &C::ACL, argv, argc)?;
        Ok::<_, String>(rm::with_args(argv, argc, |args| C::run(ctx, args)))
    }));
    acl::forget_caller();
    match outcome {
        Ok(Err(denied)) => rm::reply_error(ctx, &denied),
        Ok(Ok(Ok(reply))) => send(ctx, &reply),
        Ok(Ok(Err(TqError::Arity))) => rm::reply_wrong_arity(ctx),
        Ok(Ok(Err(e))) => rm::reply_error(ctx, &e.reply_text()),
        Err(_) => rm::reply_error(
            ctx,
            &TqError::Internal(format!("{} failed unexpectedly; see the server log", C::NAME.to_string_lossy()))
                .reply_text(),
        ),
    }
    raw::REDISMODULE_OK as c_int
}

/// Registers `C`. The namespace (argument 1) is the one key every TQ
/// command declares: cluster routing and ACL key patterns apply to it.
pub fn register<C: Command>(ctx: rm::Ctx) -> bool {
    let ok = rm::create_command(ctx, C::NAME, Some(dispatch::<C>), C::FLAGS, 1, 1, 1)
        && rm::set_command_info(ctx, C::NAME, &C::DOC);
    if ok {
        acl::declare(ctx, C::NAME, &C::ACL, C::DOC.writes);
    }
    ok
}

pub fn send(ctx: rm::Ctx, r: &Reply) {
    match r {
        Reply::Ok => rm::reply_ok(ctx),
        Reply::NoReply => {}
        // Resolved by `planned`; never left for a client to see.
        Reply::Removed => rm::reply_int(ctx, 0),
        Reply::Nil => rm::reply_null(ctx),
        Reply::Int(n) => rm::reply_int(ctx, *n),
        Reply::Bulk(b) => rm::reply_bulk(ctx, b),
        Reply::Array(items) => {
            rm::reply_array(ctx, items.len());
            for i in items {
                send(ctx, i);
            }
        }
    }
}

/// Plans with `f` against the live keyspace, applies the plan (replicating
/// its effects) and returns the reply. On error nothing has been written.
pub fn planned(ctx: rm::Ctx, ns: &[u8], f: impl FnOnce(&mut RedisStore, &Ns<'_>) -> Result<Plan>) -> Result<Reply> {
    planned_in(RedisStore::new(ctx), ns, f)
}

/// `planned` on a given store (one serving a blocked client).
pub fn planned_in(
    mut store: RedisStore,
    ns: &[u8],
    f: impl FnOnce(&mut RedisStore, &Ns<'_>) -> Result<Plan>,
) -> Result<Reply> {
    let ns = Ns::new(ns, rm::is_cluster())?;
    store.trust_namespace(&ns);
    let plan = f(&mut store, &ns)?;
    let removed = store.apply(&tq_core::store::coalesce(plan.effects))?;
    Ok(match plan.reply {
        Reply::Removed => Reply::Int(removed),
        reply => reply,
    })
}

/// Logs panics to the Redis log (the default hook writes to stderr, which
/// a daemonised server does not keep).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        rm::log(std::ptr::null_mut(), c"warning", &format!("<tq> bug caught, command answered with an error: {info}"));
    }));
}
