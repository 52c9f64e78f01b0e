//! `INFO tq`: what the module did since it was loaded. Plans note events
//! while they are made; `RedisStore::apply` records them here once applied.

use std::ffi::c_int;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use redis_module::raw;
use tq_core::stats::{Event, Stats, Summary};

use crate::rm;

static STATS: Mutex<Option<Stats>> = Mutex::new(None);
/// Namespaces the timer visited (`tq_timer_ns_visits`): what its ticks cost
/// grows with this, not with how many namespaces exist.
static TIMER_NS_VISITS: AtomicU64 = AtomicU64::new(0);

pub fn timer_visits(n: u64) {
    TIMER_NS_VISITS.fetch_add(n, Ordering::Relaxed);
}

pub fn record(events: &[Event]) {
    if events.is_empty() {
        return;
    }
    let mut guard = STATS.lock().unwrap_or_else(PoisonError::into_inner);
    let stats = guard.get_or_insert_with(Stats::default);
    for e in events {
        stats.record(*e);
    }
}

fn summary(info: &rm::Info, name: &std::ffi::CStr, s: &Summary) {
    info.dict(
        name,
        &[
            (c"count", s.count()),
            (c"mean", s.mean()),
            (c"p50", s.percentile(50.0)),
            (c"p99", s.percentile(99.0)),
            (c"max", s.max()),
        ],
    );
}

extern "C" fn on_info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    let _ = std::panic::catch_unwind(|| {
        let st = STATS.lock().unwrap_or_else(PoisonError::into_inner).clone().unwrap_or_default();
        let info = rm::Info(ctx);
        info.section();
        for (name, v) in [
            (c"enqueued", st.enqueued),
            (c"delayed", st.delayed),
            (c"promoted", st.promoted),
            (c"popped", st.popped),
            (c"pop_ack_one_pass", st.pop_ack_one_pass),
            (c"acked", st.acked),
            (c"failed", st.failed),
            (c"retried", st.retried),
            (c"nacked", st.nacked),
            (c"lease_requeued", st.lease_requeued),
            (c"lease_failed", st.lease_failed),
            (c"lock_acquired", st.lock_acquired),
            (c"lock_done", st.lock_done),
            (c"lock_failed", st.lock_failed),
            (c"leader_acquired", st.leader_acquired),
            (c"timer_ns_visits", TIMER_NS_VISITS.load(Ordering::Relaxed)),
            (c"timer_namespaces", u64::try_from(crate::registry::len()).unwrap_or(u64::MAX)),
        ] {
            info.uint(name, v);
        }
        summary(&info, c"promotion_lateness_ms", &st.promotion_lateness_ms);
        summary(&info, c"job_run_ms", &st.job_run_ms);
        summary(&info, c"timer_tick_us", &st.timer_tick_us);
        summary(&info, c"timer_tick_cpu_us", &st.timer_tick_cpu_us);
    });
}

pub fn register(ctx: rm::Ctx) -> bool {
    rm::register_info(ctx, Some(on_info))
}
