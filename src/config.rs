//! Module settings, read and changed with `CONFIG GET/SET tq.*` or given
//! after `--loadmodule <path>` / as `--tq.<name> <value>`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

/// `tq.lease-ms`: the lease of every job taken by TQ.POP/TQ.BPOP; a job
/// whose lease runs out (no ACK/FAIL, no heartbeat) is given back.
pub static LEASE_MS: AtomicI64 = AtomicI64::new(LEASE_MS_DEFAULT);
pub const LEASE_MS_DEFAULT: i64 = 60_000;

/// `tq.max-deliveries`: a job whose lease has run out this many times goes
/// to `failed` instead of back to its queue.
pub static MAX_DELIVERIES: AtomicI64 = AtomicI64::new(MAX_DELIVERIES_DEFAULT);
pub const MAX_DELIVERIES_DEFAULT: i64 = 5;

/// `tq.timer-batch`: at most this many jobs per namespace and kind of work
/// (promotion, expired leases) in one round of a timer tick. A tick runs
/// rounds until nothing is due or its time budget is spent, so the batch is
/// the grain of that budget: about 1 ms of work at the default.
pub static TIMER_BATCH: AtomicI64 = AtomicI64::new(TIMER_BATCH_DEFAULT);
pub const TIMER_BATCH_DEFAULT: i64 = 250;

/// `tq.auto-promote`: whether the timer promotes due delayed jobs (yes by
/// default; `no` leaves promotion to TQ.PROMOTE or another scheduler).
pub static AUTO_PROMOTE: AtomicBool = AtomicBool::new(true);

pub fn auto_promote() -> bool {
    AUTO_PROMOTE.load(Ordering::Relaxed)
}

pub fn lease_ms() -> u64 {
    u64::try_from(LEASE_MS.load(Ordering::Relaxed)).unwrap_or(1)
}

pub fn max_deliveries() -> u32 {
    u32::try_from(MAX_DELIVERIES.load(Ordering::Relaxed)).unwrap_or(1)
}

pub fn timer_batch() -> usize {
    usize::try_from(TIMER_BATCH.load(Ordering::Relaxed)).unwrap_or(1)
}
