//! tq: Resque-style task queues made atomic inside Redis.
//!
//! This file only registers. Command handlers are in `commands/`, the queue
//! logic in the `tq-core` crate, the Redis API wrappers in `rm.rs`.

// Code reachable from a Redis command must not panic: a panic there would
// take the user's server down (the dispatcher catches them, but the goal is
// to have none).
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

mod acl;
mod alloc;
mod cache;
mod clocks;
mod command;
mod commands;
mod config;
mod docs;
mod names;
mod registry;
mod rm;
mod stats;
mod store;
mod timer;
mod waiters;

use command::register;
use commands::{enqueue, inspect, lock, pause, promote, recur, work};
use redis_module::{redis_module, Context, RedisString, Status};

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    command::install_panic_hook();
    if !config::register(ctx, args) {
        return Status::Err;
    }
    let ctx = ctx.get_raw();
    rm::init_cluster_flag(ctx);
    if rm::init_prefix_check() {
        rm::log(
            ctx,
            c"notice",
            "<tq> ACL: a namespace's keys are checked with one key-prefix check where it grants them all",
        );
    }
    let ok = acl::init()
        && register::<enqueue::Enqueue>(ctx)
        && register::<enqueue::EnqueueAt>(ctx)
        && register::<enqueue::EnqueueIn>(ctx)
        && register::<promote::Promote>(ctx)
        && register::<work::Pop>(ctx)
        && register::<work::Ack>(ctx)
        && register::<work::Fail>(ctx)
        && register::<work::Bpop>(ctx)
        && register::<work::Nack>(ctx)
        && register::<work::Heartbeat>(ctx)
        && register::<work::Broadcast>(ctx)
        && register::<recur::Recur>(ctx)
        && register::<recur::Unrecur>(ctx)
        && register::<recur::Recurs>(ctx)
        && register::<pause::Pause>(ctx)
        && register::<pause::Resume>(ctx)
        && register::<pause::Paused>(ctx)
        && register::<lock::Lock>(ctx)
        && register::<lock::Unlock>(ctx)
        && register::<lock::Renew>(ctx)
        && register::<lock::HLock>(ctx)
        && register::<lock::HUnlock>(ctx)
        && register::<lock::HRenew>(ctx)
        && register::<lock::Leader>(ctx)
        && register::<lock::Resign>(ctx)
        && register::<inspect::ScheduledAt>(ctx)
        && register::<inspect::Timestamps>(ctx)
        && register::<inspect::DelayedAt>(ctx)
        && register::<inspect::AllDelayed>(ctx)
        && register::<inspect::Stats>(ctx)
        && register::<inspect::Workers>(ctx)
        && register::<inspect::Failed>(ctx)
        && register::<inspect::FailRetry>(ctx)
        && register::<inspect::FailRemove>(ctx)
        && register::<inspect::Del>(ctx)
        && register::<inspect::DelDelayed>(ctx)
        && register::<inspect::DelQueue>(ctx)
        && register::<inspect::DelByClass>(ctx)
        && register::<inspect::ForceClean>(ctx)
        && register::<inspect::CleanWorkers>(ctx)
        && register::<inspect::Untrack>(ctx)
        && register::<inspect::Locks>(ctx)
        && register::<inspect::Details>(ctx)
        && cache::subscribe(ctx)
        && stats::register(ctx)
        && timer::start(ctx);
    if ok {
        Status::Ok
    } else {
        Status::Err
    }
}

redis_module! {
    name: "tq",
    version: 100,
    allocator: (crate::alloc::CachingAlloc, crate::alloc::CachingAlloc),
    data_types: [],
    init: init,
    commands: [],
}
