//! The module's global allocator: Redis's, with a small free list per size
//! class in front of it.
//!
//! A job's steps make and drop dozens of small, short-lived buffers (key
//! names, the plan's effects, decoded records). Each one through Redis's
//! allocator costs a `malloc` and a `free` plus two `malloc_usable_size`
//! calls for Redis's memory accounting: about a sixth of a POP ... ACK's
//! instructions. Here a freed small block waits in its class's list and the
//! next allocation of that class takes it back, without a call to Redis.
//!
//! Bounds: classes up to `MAX_SMALL` bytes, at most `KEEP` blocks each
//! up to 256 bytes and `KEEP_LARGE` above (under 200 KiB in all). Kept
//! blocks stay counted in Redis's `used_memory`, as the allocations they
//! stand for were. Only Redis's main thread runs module code; any other
//! thread allocates from Redis directly.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use redis_module::alloc::RedisAlloc;

/// Blocks of up to this many bytes are kept (a plan's list of effects, at
/// 72 bytes an effect, is 288 bytes and more; a plan starts with room for
/// 16, 1152 bytes).
const MAX_SMALL: usize = 2048;
/// Classes step by 16 bytes up to 128, by 32 up to 256, by 64 up to 512,
/// by 128 up to 1024, then by 256 (24 classes).
const CLASSES: usize = 24;
/// Blocks kept per class of up to 256 bytes (the first `SMALL_CLASSES`),
/// and above (a command holds few large blocks at once).
const KEEP: u32 = 64;
const KEEP_LARGE: u32 = 8;
const SMALL_CLASSES: usize = 12;
/// Every kept block is aligned to this (Redis's allocator gives at least
/// 16 for blocks of 16 bytes or more).
const ALIGN: usize = 16;

/// Class index and its block size, for allocations the lists serve.
fn class(size: usize, align: usize) -> Option<(usize, usize)> {
    if size == 0 || size > MAX_SMALL || align > ALIGN {
        return None;
    }
    if size <= 128 {
        let i = size.div_ceil(16) - 1;
        Some((i, (i + 1) * 16))
    } else if size <= 256 {
        let i = (size - 129) / 32;
        Some((8 + i, 160 + i * 32))
    } else if size <= 512 {
        let i = (size - 257) / 64;
        Some((12 + i, 320 + i * 64))
    } else if size <= 1024 {
        let i = (size - 513) / 128;
        Some((16 + i, 640 + i * 128))
    } else {
        let i = (size - 1025) / 256;
        Some((20 + i, 1280 + i * 256))
    }
}

struct Lists {
    /// Head of each class's list; a kept block's first word points at the
    /// next one.
    heads: [Cell<*mut u8>; CLASSES],
    counts: [Cell<u32>; CLASSES],
}

/// The lists, used by one thread only: the first to allocate, Redis's main
/// thread (modules are loaded there, and run there). A thread-local would
/// cost a call per access in a loaded library; `pthread_self` reads one
/// register.
struct Owned(Lists);

// SAFETY: only the owner thread touches the lists (see `lists`).
unsafe impl Sync for Owned {}

static LISTS: Owned =
    Owned(Lists { heads: [const { Cell::new(ptr::null_mut()) }; CLASSES], counts: [const { Cell::new(0) }; CLASSES] });
static OWNER: AtomicUsize = AtomicUsize::new(0);

extern "C" {
    fn pthread_self() -> usize;
}

/// The lists, for their owner thread; None on any other thread.
fn lists() -> Option<&'static Lists> {
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { pthread_self() };
    let owner = OWNER.load(Ordering::Relaxed);
    if owner == me || (owner == 0 && OWNER.compare_exchange(0, me, Ordering::Relaxed, Ordering::Relaxed).is_ok()) {
        Some(&LISTS.0)
    } else {
        None
    }
}

#[derive(Default, Debug, Clone, Copy)]
pub struct CachingAlloc;

impl CachingAlloc {
    /// A kept block of class `i`, if any.
    fn take(i: usize) -> Option<*mut u8> {
        let l = lists()?;
        let head = l.heads.get(i)?;
        let p = head.get();
        if p.is_null() {
            return None;
        }
        // SAFETY: a kept block holds the next pointer in its first word
        // (written by `keep`; blocks are at least 16 bytes and 16-aligned).
        head.set(unsafe { p.cast::<*mut u8>().read() });
        if let Some(c) = l.counts.get(i) {
            c.set(c.get().saturating_sub(1));
        }
        Some(p)
    }

    /// Keeps a freed block of class `i`; false when its list is full.
    fn keep(i: usize, p: *mut u8) -> bool {
        let Some(l) = lists() else { return false };
        let (Some(head), Some(count)) = (l.heads.get(i), l.counts.get(i)) else { return false };
        if count.get() >= if i < SMALL_CLASSES { KEEP } else { KEEP_LARGE } {
            return false;
        }
        // SAFETY: the block is ours (being freed), at least 16 bytes and
        // 16-aligned: its first word holds the link.
        unsafe { p.cast::<*mut u8>().write(head.get()) };
        head.set(p);
        count.set(count.get() + 1);
        true
    }
}

unsafe impl GlobalAlloc for CachingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        match class(layout.size(), layout.align()) {
            Some((i, size)) => match Self::take(i) {
                Some(p) => p,
                // SAFETY: a valid, non-zero layout (size and ALIGN).
                None => unsafe { RedisAlloc.alloc(Layout::from_size_align_unchecked(size, ALIGN)) },
            },
            // SAFETY: the caller's layout, as given.
            None => unsafe { RedisAlloc.alloc(layout) },
        }
    }

    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if let Some((i, _)) = class(layout.size(), layout.align()) {
            if Self::keep(i, p) {
                return;
            }
        }
        // SAFETY: `p` came from Redis's allocator (directly or as a class
        // block); RedisAlloc frees without using the layout.
        unsafe { RedisAlloc.dealloc(p, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let old = class(layout.size(), layout.align());
        let new = class(new_size, layout.align());
        if let (Some((a, _)), Some((b, _))) = (old, new) {
            if a == b {
                return p; // the block already has the room
            }
        }
        if old.is_none() && new.is_none() && layout.align() <= ALIGN {
            // Large to large: Redis's realloc may grow in place.
            if let Some(realloc) = unsafe { redis_module::raw::RedisModule_Realloc } {
                return unsafe { realloc(p.cast(), new_size) }.cast();
            }
        }
        // SAFETY: the standard move: a block of the new layout, the bytes
        // both hold copied, the old one freed.
        unsafe {
            let new_layout = Layout::from_size_align_unchecked(new_size, layout.align());
            let q = self.alloc(new_layout);
            if !q.is_null() {
                ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
                self.dealloc(p, layout);
            }
            q
        }
    }
}
