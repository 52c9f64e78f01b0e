//! The namespaces the timer serves: those with delayed jobs, leases, live
//! workers or periodic tasks, per database.
//!
//! Kept in memory and rebuilt from the keyspace, never stored: a namespace is
//! noted when tq writes one of its timed keys, when any client writes one
//! (keyspace events: node-resque's `enqueueAt` ZADDs the schedule), and by a
//! scan of every database after each load (start, `DEBUG RELOAD`, a
//! replica's sync). The timer drops a namespace once none of its timed keys
//! exists.

use std::cell::RefCell;
use std::collections::BTreeSet;

thread_local! {
    static NAMESPACES: RefCell<BTreeSet<(i32, Vec<u8>)>> = const { RefCell::new(BTreeSet::new()) };
}

/// Notes the namespace of `key` if it is a timed key. Returns true when the
/// namespace is new.
pub fn note_key(db: i32, key: &[u8]) -> bool {
    match tq_core::keys::timed_namespace(key) {
        Some(ns) => NAMESPACES.with(|n| n.try_borrow_mut().map(|mut n| n.insert((db, ns.to_vec()))).unwrap_or(false)),
        None => false,
    }
}

pub fn all() -> Vec<(i32, Vec<u8>)> {
    NAMESPACES.with(|n| n.try_borrow().map(|n| n.iter().cloned().collect()).unwrap_or_default())
}

pub fn forget(db: i32, ns: &[u8]) {
    NAMESPACES.with(|n| {
        if let Ok(mut n) = n.try_borrow_mut() {
            n.remove(&(db, ns.to_vec()));
        }
    });
}

pub fn clear() {
    NAMESPACES.with(|n| {
        if let Ok(mut n) = n.try_borrow_mut() {
            n.clear();
        }
    });
}
