//! When a push last looked at each busy queue's clock on this server (see
//! `Store::clock_checked`): a later push in the same millisecond would take
//! no sample, and leaves the clock unread.
//!
//! Direct-mapped like `names`: a queue takes one slot and may push another
//! out, so a forgotten look only costs a read. A stale one (the clock
//! rewritten since) only makes a push skip a sample: its job is then dated
//! by an earlier one, a wait read longer, never shorter.

use std::cell::RefCell;

use crate::names::slot;

const SLOT_BITS: u32 = 8;

/// (database, clock key, when a push last looked at it).
type Look = (i32, Box<[u8]>, u64);

thread_local! {
    // Redis runs commands and timers on its main thread only.
    static CHECKED: RefCell<Vec<Option<Look>>> = const { RefCell::new(Vec::new()) };
}

/// When a push last looked at the clock `key` of database `db`, if known.
pub fn checked(db: i32, key: &[u8]) -> Option<u64> {
    CHECKED.with(|s| {
        let s = s.try_borrow().ok()?;
        match s.get(slot(key, SLOT_BITS))? {
            Some((d, k, at)) if *d == db && **k == *key => Some(*at),
            _ => None,
        }
    })
}

/// Notes a push's look at `at` at the clock `key` of database `db`.
pub fn note(db: i32, key: &[u8], at: u64) {
    CHECKED.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else { return };
        if s.is_empty() {
            s.resize_with(1 << SLOT_BITS, || None);
        }
        if let Some(entry) = s.get_mut(slot(key, SLOT_BITS)) {
            match entry {
                Some((d, k, t)) if *d == db && **k == *key => *t = at,
                _ => *entry = Some((db, key.into(), at)),
            }
        }
    });
}
