//! Module settings, read and changed with `CONFIG GET/SET tq.*`, set in the
//! server's config file / command line as `tq.<name> <value>`, or given as
//! module arguments after `loadmodule <path>` (`tq.<name> <value>` or the
//! bare `<name> <value>`). Their names, defaults and bounds, and the
//! checking of module arguments, are in `tq_core::settings`.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use redis_module::configuration::{
    register_bool_configuration, register_i64_configuration, ConfigurationContext, ConfigurationFlags,
};
use redis_module::{Context, RedisString};
use tq_core::settings::{self, Kind, Value, SETTINGS};

/// `tq.lease-ms`: the lease of every job taken by TQ.POP/TQ.BPOP; a job
/// whose lease runs out (no ACK/FAIL, no heartbeat) is given back.
pub static LEASE_MS: AtomicI64 = AtomicI64::new(settings::LEASE_MS.default_int());

/// `tq.max-deliveries`: a job whose lease has run out this many times goes
/// to `failed` instead of back to its queue.
pub static MAX_DELIVERIES: AtomicI64 = AtomicI64::new(settings::MAX_DELIVERIES.default_int());

/// `tq.timer-batch`: at most this many jobs per namespace and kind of work
/// (promotion, expired leases) in one round of a timer tick. A tick runs
/// rounds until nothing is due or its time budget is spent, so the batch is
/// the grain of that budget: about 1 ms of work at the default.
pub static TIMER_BATCH: AtomicI64 = AtomicI64::new(settings::TIMER_BATCH.default_int());

/// `tq.auto-promote`: whether the timer promotes due delayed jobs (yes by
/// default; `no` leaves promotion to TQ.PROMOTE or another scheduler).
pub static AUTO_PROMOTE: AtomicBool = AtomicBool::new(true);

/// `tq.metrics`: whether takes, ACKs and FAILs keep the per-minute job
/// metrics (`tq_core::metrics`); yes by default. The timer closes the
/// minutes already open either way.
pub static METRICS: AtomicBool = AtomicBool::new(true);

pub fn metrics() -> bool {
    METRICS.load(Ordering::Relaxed)
}

/// `tq.metrics-flush-ms`: how long a worker's open tally gathers its jobs
/// before they go to their minute's record: how far the records may lag
/// behind the jobs, against one record write per busy worker that often.
pub static METRICS_FLUSH_MS: AtomicI64 = AtomicI64::new(settings::METRICS_FLUSH_MS.default_int());

pub fn metrics_flush_ms() -> u64 {
    u64::try_from(METRICS_FLUSH_MS.load(Ordering::Relaxed)).unwrap_or(1)
}

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

/// Where a setting's value lives.
enum Var {
    Int(&'static AtomicI64),
    Bool(&'static AtomicBool),
}

fn var(name: &str) -> Option<Var> {
    match name {
        "lease-ms" => Some(Var::Int(&LEASE_MS)),
        "max-deliveries" => Some(Var::Int(&MAX_DELIVERIES)),
        "timer-batch" => Some(Var::Int(&TIMER_BATCH)),
        "auto-promote" => Some(Var::Bool(&AUTO_PROMOTE)),
        "metrics" => Some(Var::Bool(&METRICS)),
        "metrics-flush-ms" => Some(Var::Int(&METRICS_FLUSH_MS)),
        _ => None,
    }
}

/// Promotion turned back on is served at once, not at the timer's next
/// wake (up to 100 ms later).
fn auto_promote_changed(_: &ConfigurationContext, _: &str, on: &'static AtomicBool) {
    if on.load(Ordering::Relaxed) {
        crate::timer::wake_now();
    }
}

/// Registers the settings, the module arguments as their defaults (so the
/// config file and CONFIG SET still override them, and CONFIG REWRITE
/// writes only what differs from what the module was loaded with), then
/// loads the values the config file gave. False (logged) on arguments it
/// refuses: the module must then not load.
pub fn register(ctx: &Context, args: &[RedisString]) -> bool {
    let raw: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    let given = match settings::parse_args(&raw) {
        Ok(v) => v,
        Err(e) => {
            ctx.log_warning(&format!("tq refuses to load: {e}"));
            return false;
        }
    };
    if !crate::rm::configs_supported() {
        ctx.log_warning("tq refuses to load: this server cannot register module settings (Redis >= 7.0 needed)");
        return false;
    }
    for (setting, value) in SETTINGS.iter().zip(given) {
        match (setting.kind, var(setting.name), value) {
            (Kind::Int { default, min, max }, Some(Var::Int(v)), given) => {
                let default = if let Some(Value::Int(n)) = given { n } else { default };
                register_i64_configuration(ctx, setting.name, v, default, min, max, ConfigurationFlags::DEFAULT, None);
            }
            (Kind::Bool { default }, Some(Var::Bool(v)), given) => {
                let default = if let Some(Value::Bool(b)) = given { b } else { default };
                let on_changed = (setting.name == "auto-promote").then(|| Box::new(auto_promote_changed) as _);
                register_bool_configuration(ctx, setting.name, v, default, ConfigurationFlags::DEFAULT, on_changed);
            }
            _ => {
                ctx.log_warning(&format!("tq refuses to load: setting {} has no variable of its kind", setting.name));
                return false;
            }
        }
    }
    crate::rm::load_configs(ctx.get_raw())
}
