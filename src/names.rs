//! Key names as Redis strings, made once and shared.
//!
//! Every key a command opens needs its name as a `RedisModuleString`, and a
//! job's steps open the same dozen names again and again (its queue, the
//! lease and in-flight sets, the worker's record and stats). Making each one
//! per command costs an allocation, a copy and a free; here a name is made
//! once and handed out as another reference to the same string. Names are
//! immutable, so nothing invalidates an entry.
//!
//! The cache is direct-mapped: a name has one slot, chosen by a fast hash.
//! Clients choose key names, so a hash they can collide must cost no more
//! than a miss (a name made as without the cache), never a long search.
//!
//! A name is kept on its second sighting: a slot remembers the hash of the
//! last name it turned away, and takes that name when it comes again. Names
//! used once (a promoted job's `timestamps:` key, a job's lock keys) then
//! never push out the hot ones, and are freed with their command: a promotion
//! of a million jobs otherwise replaced a kept name per job, and freeing
//! names made long before scattered the allocator's free pages, whose purge
//! thread then held the server up to 20 ms at a time.

use std::cell::RefCell;
use std::hash::Hasher;

use rustc_hash::FxHasher;

use crate::rm::RStr;

const SLOT_BITS: u32 = 10;
/// Longer names are not kept: rare, and each would be held in a slot.
const MAX_LEN: usize = 256;

#[derive(Default)]
struct Slot {
    name: Option<RStr>,
    /// The hash of the last name this slot turned away.
    seen: u64,
}

thread_local! {
    // Redis runs commands, timers and notifications on its main thread only.
    static SLOTS: RefCell<Vec<Slot>> = const { RefCell::new(Vec::new()) };
}

/// A fast hash of a key name (not keyed: see the module's comment).
fn hash(key: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(key);
    h.finish()
}

/// The slot of a hash in a direct-mapped table of `2^bits` slots: its top
/// bits after a multiplicative mix, so that every bit counts.
fn index(hash: u64, bits: u32) -> usize {
    usize::try_from(hash.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)).unwrap_or(0)
}

/// The slot of `key` in a direct-mapped table of `2^bits` slots.
pub fn slot(key: &[u8], bits: u32) -> usize {
    index(hash(key), bits)
}

/// `key` as a Redis string the caller owns a reference to; None when Redis
/// could not make it. Names handed out stay valid when their slot is taken
/// over: each holder has its own reference.
pub fn get(key: &[u8]) -> Option<RStr> {
    if key.len() > MAX_LEN {
        return RStr::detached(key);
    }
    SLOTS
        .with(|slots| {
            let mut slots = slots.try_borrow_mut().ok()?;
            if slots.is_empty() {
                slots.resize_with(1 << SLOT_BITS, Slot::default);
            }
            let h = hash(key);
            let slot = slots.get_mut(index(h, SLOT_BITS))?;
            if let Some(name) = slot.name.as_ref().filter(|n| n.bytes() == key) {
                return name.share();
            }
            let name = RStr::detached(key)?;
            if slot.seen != h {
                // First sighting: made for this command only.
                slot.seen = h;
                return Some(name);
            }
            slot.seen = 0;
            let share = name.share();
            slot.name = Some(name);
            share
        })
        .or_else(|| RStr::detached(key))
}
