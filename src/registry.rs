//! The namespaces the timer serves (those with delayed jobs, leases, live
//! workers or periodic tasks, per database), indexed by when each is next
//! due, so a tick visits only the namespaces with something due instead of
//! walking all of them.
//!
//! Kept in memory and rebuilt from the keyspace, never stored: a namespace is
//! noted when tq writes one of its timed keys (with the due time the write
//! carries: a bucket, a lease or heartbeat deadline), when any client writes
//! or brings one in (keyspace events: node-resque's `enqueueAt`, RESTORE,
//! RENAME, MOVE, COPY; due at once, its real due time is found on that
//! visit), and by a scan of every database after each load (start, `DEBUG
//! RELOAD`, a replica's sync). A note only ever brings a due time closer;
//! after a visit the timer sets what it found, and drops a namespace once
//! none of its timed keys exists.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

/// A namespace parked: kept, but never due by itself (its only timed work
/// is promotion while `tq.auto-promote` is off). `wake_all` brings it back.
pub const PARKED: u64 = u64::MAX;

#[derive(Clone, Copy)]
struct Entry {
    due: u64,
    seq: u64,
    /// The kind of work its next visit starts with (a visit cut short by
    /// the tick's budget resumes there).
    resume: u8,
}

#[derive(Default)]
struct Index {
    /// (due ms, seq, db, namespace): the order of service. The sequence
    /// number puts a namespace re-noted at the same time behind the others.
    by_due: BTreeSet<(u64, u64, i32, Vec<u8>)>,
    entries: HashMap<i32, HashMap<Vec<u8>, Entry>>,
    seq: u64,
}

impl Index {
    fn set(&mut self, db: i32, ns: &[u8], due: u64, resume: u8) {
        let seq = self.seq;
        self.seq = self.seq.wrapping_add(1);
        let entry = Entry { due, seq, resume };
        if let Some(old) = self.entries.entry(db).or_default().insert(ns.to_vec(), entry) {
            self.by_due.remove(&(old.due, old.seq, db, ns.to_vec()));
        }
        self.by_due.insert((due, seq, db, ns.to_vec()));
    }

    fn get(&self, db: i32, ns: &[u8]) -> Option<Entry> {
        self.entries.get(&db).and_then(|d| d.get(ns)).copied()
    }

    fn remove(&mut self, db: i32, ns: &[u8]) -> Option<Entry> {
        let old = self.entries.get_mut(&db)?.remove(ns)?;
        self.by_due.remove(&(old.due, old.seq, db, ns.to_vec()));
        Some(old)
    }
}

thread_local! {
    // Redis runs commands, notifications and timers on its main thread only.
    static INDEX: RefCell<Index> = RefCell::new(Index::default());
}

fn with<R>(f: impl FnOnce(&mut Index) -> R) -> Option<R> {
    INDEX.with(|i| i.try_borrow_mut().ok().map(|mut i| f(&mut i)))
}

/// Notes that the namespace of `key`, if it is a timed key, has something
/// due at `due_ms` (or earlier). Returns true when that brought its due time
/// closer (or the namespace is new).
pub fn note_key(db: i32, key: &[u8], due_ms: u64) -> bool {
    match tq_core::keys::timed_namespace(key) {
        Some(ns) => note(db, ns, due_ms),
        None => false,
    }
}

/// Brings the namespace's due time to `due_ms` if that is closer.
pub fn note(db: i32, ns: &[u8], due_ms: u64) -> bool {
    with(|i| match i.get(db, ns) {
        Some(e) if e.due <= due_ms => false,
        Some(e) => {
            i.set(db, ns, due_ms, e.resume);
            true
        }
        None => {
            i.set(db, ns, due_ms, 0);
            true
        }
    })
    .unwrap_or(false)
}

/// Takes out the namespace due first, if it is due by `now_ms`: (db,
/// namespace, kind of work to start with). The timer puts it back with
/// `put` after serving it.
pub fn take_due(now_ms: u64) -> Option<(i32, Vec<u8>, u8)> {
    with(|i| {
        let (due, _, db, ns) = i.by_due.first()?.clone();
        if due > now_ms {
            return None;
        }
        let e = i.remove(db, &ns)?;
        Some((db, ns, e.resume))
    })
    .flatten()
}

/// After a visit: the namespace is next due at `due_ms` (None: it has no
/// timed keys left, forget it). A note made during the visit (tq's own
/// writes) still counts if it is closer.
pub fn put(db: i32, ns: &[u8], due_ms: Option<u64>, resume: u8) {
    with(|i| match due_ms {
        None => {
            i.remove(db, ns);
        }
        Some(due) => {
            let due = i.get(db, ns).map_or(due, |e| e.due.min(due));
            i.set(db, ns, due, resume);
        }
    });
}

/// When the namespace due first is due (None when there is none).
pub fn next_due() -> Option<u64> {
    with(|i| i.by_due.first().map(|(due, ..)| *due)).flatten()
}

/// Every namespace due at once (a setting changed what is due).
pub fn wake_all(now_ms: u64) {
    with(|i| {
        let all: Vec<(i32, Vec<u8>, u8)> = i.by_due.iter().map(|(_, _, db, ns)| (*db, ns.clone(), 0)).collect();
        for (db, ns, resume) in all {
            i.set(db, &ns, now_ms, resume);
        }
    });
}

/// How many namespaces the timer knows.
pub fn len() -> usize {
    with(|i| i.by_due.len()).unwrap_or(0)
}

pub fn clear() {
    with(|i| *i = Index::default());
}
