//! TQ.BPOP waiters that Redis would never wake by itself.
//!
//! Redis signals a list key as ready only when the list is created. A
//! waiter whose queue is not empty but holds nothing it can take (jobs whose
//! JobLock is held, more corrupt payloads than one pop handles) would stay
//! blocked through every later push. Such waiters' keys are kept here and
//! signalled when tq writes a list or releases a lock, and by the timer
//! (which also covers pushes by other clients).

use std::cell::RefCell;
use std::collections::HashMap;

use crate::rm;

/// How often the timer signals the keys of stuck waiters.
pub const TIMER_PERIOD_MS: u64 = 250;

thread_local! {
    /// (db, key) → how many stuck waiters wait on it.
    static STUCK: RefCell<HashMap<(i32, Vec<u8>), usize>> = RefCell::new(HashMap::new());
    static LAST_TIMER_WAKE: RefCell<u64> = const { RefCell::new(0) };
}

/// Notes a waiter's keys as stuck.
pub fn add(db: i32, keys: &[Vec<u8>]) {
    STUCK.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            for k in keys {
                *s.entry((db, k.clone())).or_insert(0) += 1;
            }
        }
    });
}

/// Forgets a waiter's keys (it was served, timed out or went away).
pub fn remove(db: i32, keys: &[Vec<u8>]) {
    STUCK.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            for k in keys {
                let id = (db, k.clone());
                if let Some(n) = s.get_mut(&id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        s.remove(&id);
                    }
                }
            }
        }
    });
}

/// Whether any waiter is stuck (a cheap check for the hot paths).
pub fn any() -> bool {
    STUCK.with(|s| s.try_borrow().is_ok_and(|s| !s.is_empty()))
}

/// Signals the stuck keys of database `db` (all databases for None).
pub fn wake(ctx: rm::Ctx, db: Option<i32>) {
    let keys: Vec<(i32, Vec<u8>)> = STUCK
        .with(|s| s.try_borrow().map(|s| s.keys().filter(|(d, _)| db.is_none_or(|want| *d == want)).cloned().collect()))
        .unwrap_or_default();
    if keys.is_empty() {
        return;
    }
    let back = rm::selected_db(ctx);
    for (d, key) in keys {
        if rm::select_db(ctx, d) {
            if let Some(name) = rm::RStr::new(ctx, &key) {
                rm::signal_ready(ctx, &name);
            }
        }
    }
    rm::select_db(ctx, back);
}

/// The timer's share: every `TIMER_PERIOD_MS`, signal every stuck key.
pub fn wake_from_timer(ctx: rm::Ctx, now_ms: u64) {
    if !any() {
        return;
    }
    let due = LAST_TIMER_WAKE.with(|l| {
        let mut l = l.borrow_mut();
        let due = now_ms.saturating_sub(*l) >= TIMER_PERIOD_MS;
        if due {
            *l = now_ms;
        }
        due
    });
    if due {
        wake(ctx, None);
    }
}
