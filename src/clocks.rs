//! When a push last looked at each busy queue's clock on this server (see
//! `Store::clock_checked`): a later push in the same millisecond would take
//! no sample, and leaves the clock unread.
//!
//! Direct-mapped like `names`: a queue takes one slot and may push another
//! out, so a forgotten look only costs a read. A stale one (the clock
//! rewritten since) only makes a push skip a sample: its job is then dated
//! by an earlier one, a wait read longer, never shorter.
//!
//! Also the copies of the clocks takes read (see `with_copy`).

use std::cell::{Cell, RefCell};

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

/// Copies of queue clocks as a take last read them, so that the next take
/// of the same queue dates its job without opening the key (the largest
/// part of what the job metrics add to a take). Direct-mapped as above.
///
/// A copy stands for the key only while nothing changed it, so it is kept
/// only for a clock without expiry (else it could outlive the key unseen),
/// and dropped by every change the module can see: tq's own writes of the
/// clock (`RedisStore::clock_written`), the keyspace events of deletion,
/// renaming, expiry, eviction, RESTORE, MOVE and COPY (`cache`), and the
/// server events of a flush, a load, SWAPDB and a change of role. Redis
/// tells modules nothing of a client's plain `SET` over the key (string
/// events are not subscribed: they would cost every job more than the copy
/// saves), so such a value is not seen by takes until one of those drops
/// the copy; takes keep dating jobs by the clock as tq wrote it.
const COPY_BITS: u32 = 8;
/// Longer values are not copied (a clock is at most 266 bytes).
const MAX_COPY: usize = 1024;

/// (database, clock key, its value).
type Copy = (i32, Box<[u8]>, Box<[u8]>);

thread_local! {
    static COPIES: RefCell<Vec<Option<Copy>>> = const { RefCell::new(Vec::new()) };
    /// Copies held: events need no look-up while there are none.
    static HELD: Cell<usize> = const { Cell::new(0) };
    /// Set when a change could not drop its copy (the table borrowed: never
    /// on one thread without re-entry); no copy is used until the table is
    /// emptied.
    static POISONED: Cell<bool> = const { Cell::new(false) };
}

/// Whether any copy is held (so that an event has one to drop).
pub fn any_copy() -> bool {
    HELD.with(Cell::get) > 0
}

/// `f` of the copy of clock `key` in database `db`; None (and `f` not
/// called) when there is none.
pub fn with_copy<R>(db: i32, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Option<R> {
    if HELD.with(Cell::get) == 0 || POISONED.with(Cell::get) {
        return None;
    }
    COPIES.with(|c| {
        let c = c.try_borrow().ok()?;
        match c.get(slot(key, COPY_BITS))? {
            Some((d, k, v)) if *d == db && **k == *key => Some(f(v)),
            _ => None,
        }
    })
}

/// Keeps a copy of clock `key` of database `db`, read as `value`.
pub fn keep_copy(db: i32, key: &[u8], value: &[u8]) {
    if value.len() > MAX_COPY {
        return;
    }
    COPIES.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else { return };
        if POISONED.with(|p| p.replace(false)) {
            c.clear();
            HELD.with(|h| h.set(0));
        }
        if c.is_empty() {
            c.resize_with(1 << COPY_BITS, || None);
        }
        if let Some(entry) = c.get_mut(slot(key, COPY_BITS)) {
            if entry.is_none() {
                HELD.with(|h| h.set(h.get().saturating_add(1)));
            }
            *entry = Some((db, key.into(), value.into()));
        }
    });
}

/// Drops the copy of clock `key`, in whichever database.
pub fn forget_copy(key: &[u8]) {
    if HELD.with(Cell::get) == 0 {
        return;
    }
    COPIES.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => {
            if let Some(entry) = c.get_mut(slot(key, COPY_BITS)) {
                if entry.as_ref().is_some_and(|(_, k, _)| **k == *key) {
                    *entry = None;
                    HELD.with(|h| h.set(h.get().saturating_sub(1)));
                }
            }
        }
        Err(_) => POISONED.with(|p| p.set(true)),
    });
}

/// Drops every copy.
pub fn forget_copies() {
    COPIES.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => {
            c.clear();
            HELD.with(|h| h.set(0));
        }
        Err(_) => POISONED.with(|p| p.set(true)),
    });
}
