//! Key names as Redis strings, made once and shared.
//!
//! Every key a command opens needs its name as a `RedisModuleString`, and a
//! job's steps open the same dozen names again and again (its queue, the
//! lease and in-flight sets, the worker's record and stats). Making each one
//! per command costs an allocation, a copy and a free; here a name is made
//! once and handed out as another reference to the same string. Names are
//! immutable, so nothing invalidates an entry.
//!
//! The cache is direct-mapped: a name has one slot, chosen by a fast hash,
//! and a name hashing to a taken slot replaces its holder. Clients choose key
//! names, so a hash they can collide must cost no more than a miss (a name
//! made as without the cache), never a long search.

use std::cell::RefCell;
use std::hash::Hasher;

use rustc_hash::FxHasher;

use crate::rm::RStr;

const SLOT_BITS: u32 = 10;
/// Longer names are not kept: rare, and each would be held in a slot.
const MAX_LEN: usize = 256;

thread_local! {
    // Redis runs commands, timers and notifications on its main thread only.
    static SLOTS: RefCell<Vec<Option<RStr>>> = const { RefCell::new(Vec::new()) };
}

/// The slot of `key` in a direct-mapped table of `2^bits` slots: a fast
/// hash (not keyed: see the module's comment), its top bits after a
/// multiplicative mix so that every byte counts.
pub fn slot(key: &[u8], bits: u32) -> usize {
    let mut h = FxHasher::default();
    h.write(key);
    usize::try_from(h.finish().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)).unwrap_or(0)
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
                slots.resize_with(1 << SLOT_BITS, || None);
            }
            let entry = slots.get_mut(slot(key, SLOT_BITS))?;
            match entry {
                Some(name) if name.bytes() == key => name.share(),
                _ => {
                    let name = RStr::detached(key)?;
                    let share = name.share();
                    *entry = Some(name);
                    share
                }
            }
        })
        .or_else(|| RStr::detached(key))
}
