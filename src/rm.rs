//! The thin, safe layer over the Redis module C API that tq uses. Every
//! `unsafe` block of the module lives here.
//!
//! Functions the API table of Redis 7.0 lacks are `None` in the bindings;
//! each wrapper degrades to an error or a neutral value rather than
//! unwrapping them.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr};
use std::ptr::{self, NonNull};

use redis_module::raw;

pub type Ctx = *mut raw::RedisModuleCtx;

/// An owned `RedisModuleString`, freed on drop. Its bytes are located once:
/// tq never changes a string after creating it, and key handles compare
/// names often.
pub struct RStr {
    ctx: Ctx,
    ptr: NonNull<raw::RedisModuleString>,
    data: *const u8,
    len: usize,
}

impl RStr {
    pub fn new(ctx: Ctx, bytes: &[u8]) -> Option<Self> {
        // SAFETY: the buffer is valid for its length; Redis copies it.
        let p = unsafe { raw::RedisModule_CreateString?(ctx, bytes.as_ptr().cast::<c_char>(), bytes.len()) };
        Self::adopt(ctx, p)
    }

    /// A string owned by no command: it may outlive the one that made it
    /// (freed without a context).
    pub fn detached(bytes: &[u8]) -> Option<Self> {
        Self::new(std::ptr::null_mut(), bytes)
    }

    /// One more owner of the same string: a reference count, no copy. The
    /// share is detached, whatever made the original.
    pub fn share(&self) -> Option<RStr> {
        // SAFETY: the API table is filled once at load; the string is live
        // (owned by self); retaining it without a context only adds a
        // reference, released by the share's drop.
        unsafe {
            let retain = raw::RedisModule_RetainString?;
            retain(std::ptr::null_mut(), self.ptr.as_ptr());
        }
        Some(RStr { ctx: std::ptr::null_mut(), ptr: self.ptr, data: self.data, len: self.len })
    }

    /// Takes ownership of a string Redis handed over (may be null).
    fn adopt(ctx: Ctx, p: *mut raw::RedisModuleString) -> Option<Self> {
        let ptr = NonNull::new(p)?;
        let b = str_bytes(p);
        Some(RStr { ctx, ptr, data: b.as_ptr(), len: b.len() })
    }

    pub fn as_ptr(&self) -> *mut raw::RedisModuleString {
        self.ptr.as_ptr()
    }

    pub fn bytes(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the string's buffer, read at creation, lives as long as
        // the string (owned by self) and is never changed.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl Drop for RStr {
    fn drop(&mut self) {
        // SAFETY: we own the string and free it once.
        unsafe {
            if let Some(free) = raw::RedisModule_FreeString {
                free(self.ctx, self.ptr.as_ptr());
            }
        }
    }
}

/// The bytes of a `RedisModuleString` Redis keeps alive for us (argv, or one
/// we own through `RStr`).
pub fn str_bytes<'a>(s: *const raw::RedisModuleString) -> &'a [u8] {
    if s.is_null() {
        return &[];
    }
    let mut len = 0usize;
    // SAFETY: `s` is a live string; the pointer stays valid while it lives.
    unsafe {
        let Some(f) = raw::RedisModule_StringPtrLen else { return &[] };
        let p = f(s, &mut len);
        if p.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }
}

/// Calls `f` with the command's arguments as byte slices, valid for the
/// command's duration. Short argument lists stay on the stack: the
/// allocator is a large share of a quick command's cost.
pub fn with_args<R>(argv: *mut *mut raw::RedisModuleString, argc: c_int, f: impl FnOnce(&[&[u8]]) -> R) -> R {
    const ON_STACK: usize = 16;
    let n = usize::try_from(argc).unwrap_or(0);
    if argv.is_null() {
        return f(&[]);
    }
    // SAFETY: Redis passes `argc` valid string pointers in `argv`.
    let items = unsafe { std::slice::from_raw_parts(argv, n) };
    if n <= ON_STACK {
        let mut buf: [&[u8]; ON_STACK] = [&[]; ON_STACK];
        for (slot, &s) in buf.iter_mut().zip(items) {
            *slot = str_bytes(s);
        }
        f(buf.get(..n).unwrap_or(&[]))
    } else {
        f(&items.iter().map(|&s| str_bytes(s)).collect::<Vec<_>>())
    }
}

/// Argument `i` of a command call, if there is one.
pub fn arg_at(argv: *mut *mut raw::RedisModuleString, argc: c_int, i: usize) -> Option<*mut raw::RedisModuleString> {
    if argv.is_null() || i >= usize::try_from(argc).ok()? {
        return None;
    }
    // SAFETY: Redis passes `argc` valid string pointers in `argv`; i < argc.
    let p = unsafe { *argv.add(i) };
    (!p.is_null()).then_some(p)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Empty,
    String,
    List,
    Hash,
    Set,
    Zset,
    Other,
}

/// An open key, closed on drop.
pub struct Key {
    ptr: *mut raw::RedisModuleKey,
}

impl Key {
    pub fn open(ctx: Ctx, name: &RStr, write: bool) -> Option<Key> {
        let mode = if write { raw::REDISMODULE_READ | raw::REDISMODULE_WRITE } else { raw::REDISMODULE_READ };
        // SAFETY: ctx and name are live; the key is closed in Drop.
        let p = unsafe { raw::RedisModule_OpenKey?(ctx, name.as_ptr(), mode as c_int) };
        (!p.is_null()).then_some(Key { ptr: p })
    }

    pub fn kind(&self) -> KeyType {
        // SAFETY: live key.
        let t = unsafe { raw::RedisModule_KeyType.map_or(0, |f| f(self.ptr)) } as isize;
        match t {
            raw::REDISMODULE_KEYTYPE_EMPTY => KeyType::Empty,
            raw::REDISMODULE_KEYTYPE_STRING => KeyType::String,
            raw::REDISMODULE_KEYTYPE_LIST => KeyType::List,
            raw::REDISMODULE_KEYTYPE_HASH => KeyType::Hash,
            raw::REDISMODULE_KEYTYPE_SET => KeyType::Set,
            raw::REDISMODULE_KEYTYPE_ZSET => KeyType::Zset,
            _ => KeyType::Other,
        }
    }

    pub fn len(&self) -> usize {
        // SAFETY: live key.
        unsafe { raw::RedisModule_ValueLength.map_or(0, |f| f(self.ptr)) }
    }

    pub fn list_get(&self, ctx: Ctx, index: usize) -> Option<Vec<u8>> {
        self.list_get_str(ctx, index).map(|s| s.bytes().to_vec())
    }

    /// The element as the string Redis made for it (a copy of its own).
    pub fn list_get_str(&self, ctx: Ctx, index: usize) -> Option<RStr> {
        let index = std::os::raw::c_long::try_from(index).ok()?;
        // SAFETY: live list key; the returned string is ours to free.
        RStr::adopt(ctx, unsafe { raw::RedisModule_ListGet?(self.ptr, index) })
    }

    pub fn list_push_tail(&self, value: &RStr) -> bool {
        // SAFETY: live key opened for writing.
        unsafe {
            raw::RedisModule_ListPush.map_or(1, |f| f(self.ptr, raw::REDISMODULE_LIST_TAIL as c_int, value.as_ptr()))
                == 0
        }
    }

    pub fn list_push_head(&self, value: &RStr) -> bool {
        // SAFETY: live key opened for writing.
        unsafe {
            raw::RedisModule_ListPush.map_or(1, |f| f(self.ptr, raw::REDISMODULE_LIST_HEAD as c_int, value.as_ptr()))
                == 0
        }
    }

    pub fn list_pop_head(&self, ctx: Ctx) -> bool {
        // SAFETY: live key opened for writing; the popped string is freed.
        let s = unsafe {
            raw::RedisModule_ListPop.map_or(ptr::null_mut(), |f| f(self.ptr, raw::REDISMODULE_LIST_HEAD as c_int))
        };
        RStr::adopt(ctx, s).is_some()
    }

    /// The string value, copied (no copy of the Redis value is kept).
    pub fn string(&self) -> Option<Vec<u8>> {
        let mut len = 0usize;
        // SAFETY: live string key opened for reading; DMA pointer read at once.
        unsafe {
            let p = raw::RedisModule_StringDMA?(self.ptr, &mut len, raw::REDISMODULE_READ as c_int);
            if p.is_null() {
                return Some(Vec::new());
            }
            Some(std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec())
        }
    }

    /// `f` of the string's bytes, read in place.
    pub fn with_string<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
        let mut len = 0usize;
        // SAFETY: live string key; the DMA buffer is only read, within this
        // call, before anything can change the key.
        unsafe {
            let p = raw::RedisModule_StringDMA?(self.ptr, &mut len, raw::REDISMODULE_READ as c_int);
            if p.is_null() || len == 0 {
                return Some(f(&[]));
            }
            Some(f(std::slice::from_raw_parts(p.cast::<u8>(), len)))
        }
    }

    /// Replaces the string in place, keeping the key's TTL (as INCR does).
    pub fn string_overwrite(&self, value: &[u8]) -> bool {
        let mut len = 0usize;
        // SAFETY: live string key opened for writing; the DMA buffer is
        // exactly value.len() long when it is written (resized first unless
        // it already was: fixed-size records keep their length).
        unsafe {
            let (Some(truncate), Some(dma)) = (raw::RedisModule_StringTruncate, raw::RedisModule_StringDMA) else {
                return false;
            };
            let mut p = dma(self.ptr, &mut len, raw::REDISMODULE_WRITE as c_int);
            if len != value.len() {
                if truncate(self.ptr, value.len()) != 0 {
                    return false;
                }
                p = dma(self.ptr, &mut len, raw::REDISMODULE_WRITE as c_int);
            }
            if p.is_null() || len != value.len() {
                return false;
            }
            ptr::copy_nonoverlapping(value.as_ptr(), p.cast::<u8>(), len);
        }
        true
    }

    pub fn string_set(&self, value: &RStr) -> bool {
        // SAFETY: live key opened for writing.
        unsafe { raw::RedisModule_StringSet.map_or(1, |f| f(self.ptr, value.as_ptr())) == 0 }
    }

    /// The key's absolute expiry in unix ms, None without one.
    pub fn expire_at(&self) -> Option<u64> {
        // SAFETY: live key.
        let at = unsafe { raw::RedisModule_GetAbsExpire.map_or(-1, |f| f(self.ptr)) };
        u64::try_from(at).ok()
    }

    /// Removes the key's expiry (PERSIST); the key must exist.
    pub fn persist(&self) -> bool {
        // SAFETY: live key opened for writing.
        unsafe {
            raw::RedisModule_SetExpire.map_or(1, |f| f(self.ptr, raw::REDISMODULE_NO_EXPIRE as raw::mstime_t)) == 0
        }
    }

    /// SET's effect on the key's value; the expiry is left for the caller.
    /// A value no longer than the string there is written in place. A
    /// longer one replaces it (RedisModule_StringSet deletes the key and
    /// adds it again): grown in place, Redis would keep room for twice the
    /// new length (sds's greedy growth) until a shrink below half trims it.
    /// A worker's in-flight entry, shorter as a tombstone than with a job,
    /// is padded to its stored length (`InFlight::encode_over`), so it
    /// seldom grows.
    pub fn string_replace(&self, value: &RStr) -> bool {
        if self.kind() == KeyType::String && value.bytes().len() <= self.len() {
            self.string_overwrite(value.bytes())
        } else {
            self.string_set(value)
        }
    }

    /// Sets an absolute expiry; the key must exist.
    pub fn set_expire_at(&self, at_ms: u64) -> bool {
        let at = i64::try_from(at_ms).unwrap_or(i64::MAX);
        // SAFETY: live key opened for writing.
        unsafe { raw::RedisModule_SetAbsExpire.map_or(1, |f| f(self.ptr, at)) == 0 }
    }

    /// True when the set's one and only member is `member` (compared inside
    /// the scan, nothing copied).
    pub fn set_is_only(&self, member: &[u8]) -> bool {
        if self.len() != 1 {
            return false;
        }
        struct Probe<'a> {
            want: &'a [u8],
            seen: bool,
            equal: bool,
        }
        extern "C" fn cb(
            _key: *mut raw::RedisModuleKey,
            field: *mut raw::RedisModuleString,
            _value: *mut raw::RedisModuleString,
            data: *mut c_void,
        ) {
            // SAFETY: `data` is the Probe below, alive during ScanKey.
            let probe = unsafe { &mut *data.cast::<Probe<'_>>() };
            if !probe.seen {
                probe.seen = true;
                probe.equal = str_bytes(field) == probe.want;
            }
        }
        let mut probe = Probe { want: member, seen: false, equal: false };
        // SAFETY: live set key; the cursor is destroyed before returning; the
        // callback only runs during ScanKey.
        unsafe {
            let (Some(create), Some(scan), Some(destroy)) =
                (raw::RedisModule_ScanCursorCreate, raw::RedisModule_ScanKey, raw::RedisModule_ScanCursorDestroy)
            else {
                return false;
            };
            let cursor = create();
            if cursor.is_null() {
                return false;
            }
            let data = (&mut probe as *mut Probe<'_>).cast::<c_void>();
            // A one-member hashtable is scanned in at most a few steps.
            for _ in 0..64 {
                if scan(self.ptr, cursor, Some(cb), data) == 0 || probe.seen {
                    break;
                }
            }
            destroy(cursor);
        }
        probe.equal
    }

    pub fn delete(&self) -> bool {
        // SAFETY: live key opened for writing.
        unsafe { raw::RedisModule_DeleteKey.map_or(1, |f| f(self.ptr)) == 0 }
    }

    /// Adds or updates; true when the zset changed.
    pub fn zset_add(&self, score: f64, member: &RStr) -> bool {
        let mut flags: c_int = 0;
        // SAFETY: live key opened for writing.
        let ok =
            unsafe { raw::RedisModule_ZsetAdd.map_or(1, |f| f(self.ptr, score, member.as_ptr(), &mut flags)) == 0 };
        ok && (flags & raw::REDISMODULE_ZADD_NOP as c_int) == 0
    }

    /// The member's score, None when absent.
    pub fn zset_score(&self, member: &RStr) -> Option<f64> {
        let mut score = 0f64;
        // SAFETY: live zset key; Redis writes the score on success.
        let ok = unsafe { raw::RedisModule_ZsetScore.is_some_and(|f| f(self.ptr, member.as_ptr(), &mut score) == 0) };
        ok.then_some(score)
    }

    /// True when the member was there.
    pub fn zset_rem(&self, member: &RStr) -> bool {
        let mut deleted: c_int = 0;
        // SAFETY: live key opened for writing.
        let ok = unsafe { raw::RedisModule_ZsetRem.map_or(1, |f| f(self.ptr, member.as_ptr(), &mut deleted)) == 0 };
        ok && deleted == 1
    }

    /// Members with score in [min, max], lowest first, after the first
    /// `skip` (stepped over without being copied), at most `limit`.
    pub fn zset_range(&self, ctx: Ctx, min: f64, max: f64, skip: usize, limit: usize) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        // SAFETY: live zset key; each element string is freed; the range is
        // stopped before returning.
        unsafe {
            let (Some(first), Some(cur), Some(next), Some(end), Some(stop)) = (
                raw::RedisModule_ZsetFirstInScoreRange,
                raw::RedisModule_ZsetRangeCurrentElement,
                raw::RedisModule_ZsetRangeNext,
                raw::RedisModule_ZsetRangeEndReached,
                raw::RedisModule_ZsetRangeStop,
            ) else {
                return out;
            };
            if first(self.ptr, min, max, 0, 0) != 0 {
                return out;
            }
            for _ in 0..skip {
                if end(self.ptr) != 0 || next(self.ptr) == 0 {
                    stop(self.ptr);
                    return out;
                }
            }
            while out.len() < limit && end(self.ptr) == 0 {
                let mut score = 0f64;
                if let Some(m) = RStr::adopt(ctx, cur(self.ptr, &mut score)) {
                    out.push((m.bytes().to_vec(), score));
                }
                if next(self.ptr) == 0 {
                    break;
                }
            }
            stop(self.ptr);
        }
        out
    }

    pub fn hash_get(&self, ctx: Ctx, field: &RStr) -> Option<Vec<u8>> {
        let mut value: *mut raw::RedisModuleString = ptr::null_mut();
        // SAFETY: live hash key; the variadic list is (field, out, NULL) as the
        // API requires; the returned string is ours to free.
        unsafe {
            let f = raw::RedisModule_HashGet?;
            f(
                self.ptr,
                raw::REDISMODULE_HASH_NONE as c_int,
                field.as_ptr(),
                &mut value as *mut *mut raw::RedisModuleString,
                ptr::null_mut::<c_void>(),
            );
        }
        RStr::adopt(ctx, value).map(|v| v.bytes().to_vec())
    }

    /// Sets or (value None) deletes a field; true when a field was deleted
    /// or set.
    pub fn hash_set(&self, field: &RStr, value: Option<&RStr>) -> bool {
        let v = value.map_or(raw::REDISMODULE_HASH_DELETE as *mut raw::RedisModuleString, RStr::as_ptr);
        // SAFETY: live key opened for writing; (field, value, NULL) as required.
        let n = unsafe {
            raw::RedisModule_HashSet.map_or(0, |f| {
                f(self.ptr, raw::REDISMODULE_HASH_NONE as c_int, field.as_ptr(), v, ptr::null_mut::<c_void>())
            })
        };
        value.is_some() || n > 0
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        // SAFETY: opened by us, closed once.
        unsafe {
            if let Some(close) = raw::RedisModule_CloseKey {
                close(self.ptr);
            }
        }
    }
}

/// The reply of a `RedisModule_Call`, freed on drop.
pub struct CallReply {
    ptr: NonNull<raw::RedisModuleCallReply>,
}

pub enum Called {
    Int(i64),
    Strings(Vec<Vec<u8>>),
    Error(String),
    Other,
}

impl CallReply {
    fn kind(p: *mut raw::RedisModuleCallReply) -> isize {
        // SAFETY: live reply.
        unsafe { raw::RedisModule_CallReplyType.map_or(-1, |f| f(p)) as isize }
    }

    fn string(p: *mut raw::RedisModuleCallReply) -> Vec<u8> {
        let mut len = 0usize;
        // SAFETY: live reply; the pointer is read at once.
        unsafe {
            let Some(f) = raw::RedisModule_CallReplyStringPtr else { return Vec::new() };
            let s = f(p, &mut len);
            if s.is_null() {
                return Vec::new();
            }
            std::slice::from_raw_parts(s.cast::<u8>(), len).to_vec()
        }
    }

    pub fn value(&self) -> Called {
        let p = self.ptr.as_ptr();
        match Self::kind(p) {
            raw::REDISMODULE_REPLY_INTEGER => {
                // SAFETY: live integer reply.
                Called::Int(unsafe { raw::RedisModule_CallReplyInteger.map_or(0, |f| f(p)) })
            }
            raw::REDISMODULE_REPLY_ARRAY => {
                // SAFETY: live array reply; elements are owned by it.
                let n = unsafe { raw::RedisModule_CallReplyLength.map_or(0, |f| f(p)) };
                let items = (0..n)
                    .map(|i| unsafe { raw::RedisModule_CallReplyArrayElement.map_or(ptr::null_mut(), |f| f(p, i)) })
                    .filter(|e| !e.is_null())
                    .map(Self::string)
                    .collect();
                Called::Strings(items)
            }
            raw::REDISMODULE_REPLY_ERROR => Called::Error(String::from_utf8_lossy(&Self::string(p)).into_owned()),
            _ => Called::Other,
        }
    }

    /// A SCAN reply: `[cursor, [key, ...]]`.
    pub fn scan_value(&self) -> Option<(u64, Vec<Vec<u8>>)> {
        let p = self.ptr.as_ptr();
        let element = |p: *mut raw::RedisModuleCallReply, i: usize| {
            // SAFETY: live array reply; elements are owned by it.
            let e = unsafe { raw::RedisModule_CallReplyArrayElement.map_or(ptr::null_mut(), |f| f(p, i)) };
            (!e.is_null()).then_some(e)
        };
        if Self::kind(p) != raw::REDISMODULE_REPLY_ARRAY {
            return None;
        }
        let cursor = std::str::from_utf8(&Self::string(element(p, 0)?)).ok()?.parse().ok()?;
        let keys = element(p, 1)?;
        if Self::kind(keys) != raw::REDISMODULE_REPLY_ARRAY {
            return None;
        }
        // SAFETY: live array reply.
        let n = unsafe { raw::RedisModule_CallReplyLength.map_or(0, |f| f(keys)) };
        Some((cursor, (0..n).filter_map(|i| element(keys, i)).map(Self::string).collect()))
    }
}

impl Drop for CallReply {
    fn drop(&mut self) {
        // SAFETY: returned by RedisModule_Call, freed once.
        unsafe {
            if let Some(free) = raw::RedisModule_FreeCallReply {
                free(self.ptr.as_ptr());
            }
        }
    }
}

/// Runs a Redis command (one to three, or five, byte-string arguments) without
/// replicating it: tq replicates its effects itself.
pub fn call(ctx: Ctx, cmd: &CStr, args: &[&[u8]]) -> Option<CallReply> {
    // SAFETY: each "b" is matched by a (pointer, length) pair.
    let p = unsafe {
        let f = raw::RedisModule_Call?;
        match args {
            [a] => f(ctx, cmd.as_ptr(), c"b".as_ptr(), a.as_ptr(), a.len()),
            [a, b] => f(ctx, cmd.as_ptr(), c"bb".as_ptr(), a.as_ptr(), a.len(), b.as_ptr(), b.len()),
            [a, b, c] => {
                f(ctx, cmd.as_ptr(), c"bbb".as_ptr(), a.as_ptr(), a.len(), b.as_ptr(), b.len(), c.as_ptr(), c.len())
            }
            [a, b, c, d, e] => f(
                ctx,
                cmd.as_ptr(),
                c"bbbbb".as_ptr(),
                a.as_ptr(),
                a.len(),
                b.as_ptr(),
                b.len(),
                c.as_ptr(),
                c.len(),
                d.as_ptr(),
                d.len(),
                e.as_ptr(),
                e.len(),
            ),
            _ => return None,
        }
    };
    NonNull::new(p).map(|ptr| CallReply { ptr })
}

/// Adds a plain command to the replication stream and the AOF. Several
/// calls in one command are wrapped in MULTI/EXEC by Redis.
pub fn replicate(ctx: Ctx, cmd: &CStr, args: &[&[u8]]) {
    // SAFETY: each "b" is matched by a (pointer, length) pair; Redis copies.
    unsafe {
        let Some(f) = raw::RedisModule_Replicate else { return };
        match args {
            [a] => f(ctx, cmd.as_ptr(), c"b".as_ptr(), a.as_ptr(), a.len()),
            [a, b] => f(ctx, cmd.as_ptr(), c"bb".as_ptr(), a.as_ptr(), a.len(), b.as_ptr(), b.len()),
            [a, b, c] => {
                f(ctx, cmd.as_ptr(), c"bbb".as_ptr(), a.as_ptr(), a.len(), b.as_ptr(), b.len(), c.as_ptr(), c.len())
            }
            _ => 1,
        };
    }
}

/// Like `replicate`, with Redis strings tq already holds (no copies made).
pub fn replicate_strs(ctx: Ctx, cmd: &CStr, args: &[&RStr]) {
    // SAFETY: each "s" is matched by a live RedisModuleString; Redis takes
    // its own reference.
    unsafe {
        let Some(f) = raw::RedisModule_Replicate else { return };
        match args {
            [a] => f(ctx, cmd.as_ptr(), c"s".as_ptr(), a.as_ptr()),
            [a, b] => f(ctx, cmd.as_ptr(), c"ss".as_ptr(), a.as_ptr(), b.as_ptr()),
            [a, b, c] => f(ctx, cmd.as_ptr(), c"sss".as_ptr(), a.as_ptr(), b.as_ptr(), c.as_ptr()),
            _ => 1,
        };
    }
}

/// Like `replicate_strs` for any number of arguments.
pub fn replicate_vec(ctx: Ctx, cmd: &CStr, args: &[RStr]) {
    let mut ptrs: Vec<*mut raw::RedisModuleString> = args.iter().map(RStr::as_ptr).collect();
    replicate_ptrs(ctx, cmd, &mut ptrs);
}

/// `replicate_vec` on strings the caller keeps alive for the call.
pub fn replicate_ptrs(ctx: Ctx, cmd: &CStr, ptrs: &mut [*mut raw::RedisModuleString]) {
    // SAFETY: "v" takes an array of live strings and its length; Redis takes
    // its own references.
    unsafe {
        if let Some(f) = raw::RedisModule_Replicate {
            f(ctx, cmd.as_ptr(), c"v".as_ptr(), ptrs.as_mut_ptr(), ptrs.len());
        }
    }
}

pub fn notify(ctx: Ctx, kind: c_int, event: &CStr, key: &RStr) {
    // SAFETY: live ctx and key name.
    unsafe {
        if let Some(f) = raw::RedisModule_NotifyKeyspaceEvent {
            f(ctx, kind, event.as_ptr(), key.as_ptr());
        }
    }
}

pub fn context_flags(ctx: Ctx) -> u32 {
    // SAFETY: live ctx (or null, which the API accepts for global flags).
    unsafe { raw::RedisModule_GetContextFlags.map_or(0, |f| f(ctx)) as u32 }
}

static CLUSTER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the server takes module settings (Redis >= 7.0): the
/// redis-module crate's registration would panic without them.
pub fn configs_supported() -> bool {
    // SAFETY: the API table is filled once, before OnLoad runs.
    let (numeric, boolean, load) = unsafe {
        (raw::RedisModule_RegisterNumericConfig, raw::RedisModule_RegisterBoolConfig, raw::RedisModule_LoadConfigs)
    };
    numeric.is_some() && boolean.is_some() && load.is_some()
}

/// Applies the config file's values to the settings just registered (only
/// valid during OnLoad); false on failure.
pub fn load_configs(ctx: Ctx) -> bool {
    // SAFETY: called from OnLoad with its context.
    unsafe { raw::RedisModule_LoadConfigs.is_some_and(|f| f(ctx) == raw::REDISMODULE_OK as c_int) }
}

/// Cluster mode cannot change while the server runs: read it once at load
/// (the context flags compute much more than this on every call).
pub fn init_cluster_flag(ctx: Ctx) {
    let on = context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0;
    CLUSTER.store(on, std::sync::atomic::Ordering::Relaxed);
}

pub fn is_cluster() -> bool {
    CLUSTER.load(std::sync::atomic::Ordering::Relaxed)
}

pub fn selected_db(ctx: Ctx) -> i32 {
    // SAFETY: live ctx.
    unsafe { raw::RedisModule_GetSelectedDb.map_or(0, |f| f(ctx)) }
}

/// The CPU time this thread has used, in µs (0 if the clock cannot be read).
pub fn thread_cpu_us() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a clock read into a local.
    if unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nanos / 1000)
}

pub fn now_ms() -> u64 {
    // SAFETY: plain clock read.
    let ms = unsafe { raw::RedisModule_Milliseconds.map_or(0, |f| f()) };
    u64::try_from(ms).unwrap_or(0)
}

/// The calling client's ACL user, for key permission checks. None when the
/// command runs without a user (AOF loading, replication), which Redis
/// treats as unrestricted.
pub struct User {
    ptr: NonNull<raw::RedisModuleUser>,
}

impl User {
    pub fn current(ctx: Ctx) -> Option<User> {
        // RedisModule_GetCurrentUserName dereferences the client's user, which
        // contexts without a user (timers, other modules' RM_Call, AOF
        // loading) do not have: ask by client id first, which only finds real
        // connections. A script's client is not indexed but does carry its
        // caller's user.
        // SAFETY: each string is freed right after the lookup; the user handle
        // is freed in Drop.
        unsafe {
            let id = raw::RedisModule_GetClientId?(ctx);
            let by_id = raw::RedisModule_GetClientUserNameById.map_or(ptr::null_mut(), |f| f(ctx, id));
            let name = match RStr::adopt(ctx, by_id) {
                Some(name) => name,
                None if context_flags(ctx) & raw::REDISMODULE_CTX_FLAGS_LUA != 0 => {
                    RStr::adopt(ctx, raw::RedisModule_GetCurrentUserName?(ctx))?
                }
                None => return None,
            };
            let u = raw::RedisModule_GetModuleUserFromUserName?(name.as_ptr());
            NonNull::new(u).map(|ptr| User { ptr })
        }
    }

    /// May the user read (or write) this key?
    pub fn may(&self, key: &RStr, write: bool) -> bool {
        let flags = if write {
            raw::REDISMODULE_CMD_KEY_INSERT | raw::REDISMODULE_CMD_KEY_UPDATE | raw::REDISMODULE_CMD_KEY_DELETE
        } else {
            raw::REDISMODULE_CMD_KEY_ACCESS
        };
        // SAFETY: live user and key string.
        unsafe {
            raw::RedisModule_ACLCheckKeyPermissions.map_or(1, |f| f(self.ptr.as_ptr(), key.as_ptr(), flags as c_int))
                == 0
        }
    }
}

/// Valkey's `ACLCheckKeyPrefixPermissions(user, prefix, len, flags)`, when
/// the server has it (Valkey >= 9). Looked up under Valkey's own name only:
/// Redis 8 has a function of that name with other arguments.
static PREFIX_CHECK: std::sync::atomic::AtomicPtr<c_void> = std::sync::atomic::AtomicPtr::new(ptr::null_mut());

type PrefixCheck = unsafe extern "C" fn(*mut raw::RedisModuleUser, *const c_char, usize, c_uint) -> c_int;

/// Finds the key-prefix ACL check; false when the server has none.
pub fn init_prefix_check() -> bool {
    let mut f: *mut c_void = ptr::null_mut();
    // SAFETY: GetApi writes one function pointer into `f` when it knows the
    // name, and leaves it alone otherwise.
    let found = unsafe {
        raw::RedisModule_GetApi.is_some_and(|get| {
            get(c"ValkeyModule_ACLCheckKeyPrefixPermissions".as_ptr(), (&mut f as *mut *mut c_void).cast()) == 0
        })
    };
    if found && !f.is_null() {
        PREFIX_CHECK.store(f, std::sync::atomic::Ordering::Relaxed);
        return true;
    }
    false
}

/// Whether the server has the key-prefix ACL check (Redis 7.0 has none: a
/// command then makes no prefix for it).
pub fn has_prefix_check() -> bool {
    !PREFIX_CHECK.load(std::sync::atomic::Ordering::Relaxed).is_null()
}

impl User {
    /// May the user read and write every key that starts with `prefix`?
    /// None when the server cannot say (then each key is checked).
    pub fn may_prefix(&self, prefix: &[u8]) -> Option<bool> {
        let f = PREFIX_CHECK.load(std::sync::atomic::Ordering::Relaxed);
        if f.is_null() {
            return None;
        }
        let flags = raw::REDISMODULE_CMD_KEY_ACCESS
            | raw::REDISMODULE_CMD_KEY_INSERT
            | raw::REDISMODULE_CMD_KEY_UPDATE
            | raw::REDISMODULE_CMD_KEY_DELETE;
        // SAFETY: `f` is Valkey's ACLCheckKeyPrefixPermissions, whose
        // signature `PrefixCheck` is; live user; the buffer is valid for its
        // length and only read.
        unsafe {
            let check: PrefixCheck = std::mem::transmute::<*mut c_void, PrefixCheck>(f);
            Some(check(self.ptr.as_ptr(), prefix.as_ptr().cast::<c_char>(), prefix.len(), flags as c_uint) == 0)
        }
    }
}

impl User {
    /// May the user run `argv` (a plain command and its arguments)? Redis
    /// checks the command and the keys its key specs find in `argv`, as it
    /// does for a client. Refused when the server lacks the check.
    pub fn may_run(&self, argv: &mut [*mut raw::RedisModuleString]) -> bool {
        let Ok(argc) = c_int::try_from(argv.len()) else { return false };
        // SAFETY: live user; `argv` holds `argc` live strings, which Redis
        // only reads.
        unsafe {
            raw::RedisModule_ACLCheckCommandPermissions.map_or(1, |f| f(self.ptr.as_ptr(), argv.as_mut_ptr(), argc))
                == 0
        }
    }

    /// Adds a refusal of command `object` to `ACL LOG`, as Redis does for
    /// its own refusals.
    pub fn log_command_denied(&self, ctx: Ctx, object: *mut raw::RedisModuleString) {
        // SAFETY: live context, user and string; Redis copies the string.
        unsafe {
            if let Some(f) = raw::RedisModule_ACLAddLogEntry {
                f(ctx, self.ptr.as_ptr(), object, raw::RedisModuleACLLogEntryReason_REDISMODULE_ACL_LOG_CMD);
            }
        }
    }
}

/// A string that no context owns, kept for the server's life (never
/// freed): what tq builds once at load and reads on every call.
pub fn lasting_string(bytes: &[u8]) -> *mut raw::RedisModuleString {
    // SAFETY: the buffer is valid for its length; Redis copies it. A null
    // context leaves the string out of automatic memory management.
    unsafe {
        raw::RedisModule_CreateString
            .map_or(ptr::null_mut(), |f| f(ptr::null_mut(), bytes.as_ptr().cast::<c_char>(), bytes.len()))
    }
}

/// Puts command `name` in ACL categories (`"write fast list"`). None when
/// the server cannot (Redis 7.0 has no RedisModule_SetCommandACLCategories),
/// else whether it accepted them. Only while the module loads.
pub fn set_command_acl_categories(ctx: Ctx, name: &CStr, categories: &CStr) -> Option<bool> {
    // SAFETY: called from OnLoad with NUL-terminated strings; the command
    // pointer comes from RedisModule_GetCommand and is checked for null.
    unsafe {
        let set = raw::RedisModule_SetCommandACLCategories?;
        let cmd = raw::RedisModule_GetCommand?(ctx, name.as_ptr());
        if cmd.is_null() {
            return Some(false);
        }
        Some(set(cmd, categories.as_ptr()) == 0)
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // SAFETY: obtained from GetModuleUserFromUserName, freed once.
        unsafe {
            if let Some(free) = raw::RedisModule_FreeModuleUser {
                free(self.ptr.as_ptr());
            }
        }
    }
}

// ---- replies ----

pub fn reply_error(ctx: Ctx, msg: &str) {
    // Error replies are one line without NUL; Redis adds the leading '-'.
    let clean: Vec<u8> = msg.bytes().map(|b| if b == b'\r' || b == b'\n' || b == 0 { b' ' } else { b }).collect();
    let c = std::ffi::CString::new(clean).unwrap_or_default();
    // SAFETY: NUL-terminated message.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithError {
            f(ctx, c.as_ptr());
        }
    }
}

pub fn reply_wrong_arity(ctx: Ctx) {
    // SAFETY: live ctx.
    unsafe {
        if let Some(f) = raw::RedisModule_WrongArity {
            f(ctx);
        }
    }
}

pub fn reply_ok(ctx: Ctx) {
    // SAFETY: static NUL-terminated string.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithSimpleString {
            f(ctx, c"OK".as_ptr());
        }
    }
}

pub fn reply_null(ctx: Ctx) {
    // SAFETY: live ctx.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithNull {
            f(ctx);
        }
    }
}

pub fn reply_int(ctx: Ctx, v: i64) {
    // SAFETY: live ctx.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithLongLong {
            f(ctx, v);
        }
    }
}

pub fn reply_bulk(ctx: Ctx, b: &[u8]) {
    // SAFETY: the buffer is valid for its length; Redis copies it.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithStringBuffer {
            f(ctx, b.as_ptr().cast::<c_char>(), b.len());
        }
    }
}

pub fn reply_array(ctx: Ctx, len: usize) {
    // SAFETY: live ctx; the caller emits `len` elements next.
    unsafe {
        if let Some(f) = raw::RedisModule_ReplyWithArray {
            f(ctx, std::os::raw::c_long::try_from(len).unwrap_or(0));
        }
    }
}

pub fn log(ctx: Ctx, level: &CStr, msg: &str) {
    let clean: Vec<u8> = msg.bytes().filter(|&b| b != 0).collect();
    let c = std::ffi::CString::new(clean).unwrap_or_default();
    // SAFETY: "%s" with one NUL-terminated argument.
    unsafe {
        if let Some(f) = raw::RedisModule_Log {
            f(ctx, level.as_ptr(), c"%s".as_ptr(), c.as_ptr());
        }
    }
}

/// Registers a command; false on failure.
pub fn create_command(
    ctx: Ctx,
    name: &CStr,
    func: raw::RedisModuleCmdFunc,
    flags: &CStr,
    first_key: c_int,
    last_key: c_int,
    step: c_int,
) -> bool {
    // SAFETY: static strings and a valid function pointer.
    unsafe {
        raw::RedisModule_CreateCommand
            .map_or(1, |f| f(ctx, name.as_ptr(), func, flags.as_ptr(), first_key, last_key, step))
            == 0
    }
}

pub fn subscribe_keyspace(ctx: Ctx, types: c_int, cb: raw::RedisModuleNotificationFunc) -> bool {
    // SAFETY: valid callback pointer.
    unsafe { raw::RedisModule_SubscribeToKeyspaceEvents.map_or(1, |f| f(ctx, types, cb)) == 0 }
}

pub fn subscribe_server_event(ctx: Ctx, id: u64, cb: raw::RedisModuleEventCallback) -> bool {
    // SAFETY: valid callback pointer; version 1 of every event we use.
    unsafe {
        raw::RedisModule_SubscribeToServerEvent.map_or(1, |f| f(ctx, raw::RedisModuleEvent { id, dataver: 1 }, cb)) == 0
    }
}

/// Sets `COMMAND DOCS`/`COMMAND INFO` data for a registered command. Redis
/// copies everything it is given.
pub fn set_command_info(ctx: Ctx, name: &CStr, doc: &crate::docs::Doc) -> bool {
    use crate::docs::ArgKind;
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    // SAFETY: the C structs are plain data; all-zero is their documented
    // "unset"/terminator value.
    let zero_arg: raw::RedisModuleCommandArg = unsafe { std::mem::zeroed() };
    let zero_spec: raw::RedisModuleCommandKeySpec = unsafe { std::mem::zeroed() };
    let mut args: Vec<raw::RedisModuleCommandArg> = doc
        .args
        .iter()
        .map(|a| {
            let mut arg = zero_arg;
            arg.name = a.name.as_ptr();
            arg.type_ = match a.kind {
                ArgKind::Key => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY,
                ArgKind::String => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING,
                ArgKind::Integer => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER,
                ArgKind::PureToken => raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN,
            };
            arg.key_spec_index = if a.kind == ArgKind::Key { 0 } else { -1 };
            arg.token = a.token.map_or(ptr::null(), CStr::as_ptr);
            let mut flags = raw::REDISMODULE_CMD_ARG_NONE;
            if a.optional {
                flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
            }
            if a.multiple {
                flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
            }
            arg.flags = flags as c_int;
            arg
        })
        .collect();
    args.push(zero_arg);
    let mut spec = zero_spec;
    spec.flags = u64::from(if doc.writes {
        raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE
    } else {
        raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS
    });
    spec.notes =
        c"The namespace; tq derives every key it touches as <namespace>:... and checks each against the caller's ACL"
            .as_ptr();
    spec.begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
    spec.bs.index.pos = 1;
    spec.find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
    spec.fk.range.lastkey = 0;
    spec.fk.range.keystep = 1;
    spec.fk.range.limit = 0;
    let mut specs = [spec, zero_spec];
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: doc.summary.as_ptr(),
        complexity: doc.complexity.as_ptr(),
        since: crate::docs::SINCE.as_ptr(),
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity: doc.arity,
        key_specs: specs.as_mut_ptr(),
        args: args.as_mut_ptr(),
    };
    // SAFETY: every pointer stays valid for the call; Redis copies the data.
    unsafe {
        let (Some(get), Some(set)) = (raw::RedisModule_GetCommand, raw::RedisModule_SetCommandInfo) else {
            return false;
        };
        let cmd = get(ctx, name.as_ptr());
        !cmd.is_null() && set(cmd, &info) == 0
    }
}

// ---- timers, scans, blocking ----

/// A context of the module's own, made once at load and never freed: what
/// a callback without a context (an event-loop callback) creates timers with.
pub fn detached_ctx(ctx: Ctx) -> Option<Ctx> {
    // SAFETY: live ctx; the new context is owned by the module for ever.
    let d = unsafe { raw::RedisModule_GetDetachedThreadSafeContext.map(|f| f(ctx))? };
    (!d.is_null()).then_some(d)
}

/// A file descriptor the event loop always finds writable (one end of a
/// socket pair nothing is ever sent on), made once; None when it cannot be
/// made.
pub fn always_writable() -> Option<c_int> {
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    static PAIR: std::sync::OnceLock<Option<(UnixStream, UnixStream)>> = std::sync::OnceLock::new();
    PAIR.get_or_init(|| UnixStream::pair().ok()).as_ref().map(|(a, _)| a.as_raw_fd())
}

/// Calls `cb` at every pass of the event loop (after its wait, with the
/// clients ready then) until `event_loop_quiet`; false when it cannot.
pub fn event_loop_every_pass(fd: c_int, cb: extern "C" fn(c_int, *mut c_void, c_int)) -> bool {
    // SAFETY: a plain function; no data.
    unsafe {
        raw::RedisModule_EventLoopAdd
            .is_some_and(|f| f(fd, raw::REDISMODULE_EVENTLOOP_WRITABLE as c_int, Some(cb), ptr::null_mut()) == 0)
    }
}

pub fn event_loop_quiet(fd: c_int) {
    // SAFETY: plain call; an fd not registered is an error reply, ignored.
    unsafe {
        if let Some(f) = raw::RedisModule_EventLoopDel {
            f(fd, raw::REDISMODULE_EVENTLOOP_WRITABLE as c_int);
        }
    }
}

pub fn create_timer(ctx: Ctx, ms: i64, cb: raw::RedisModuleTimerProc) -> Option<raw::RedisModuleTimerID> {
    // SAFETY: valid callback; no private data.
    unsafe { raw::RedisModule_CreateTimer.map(|f| f(ctx, ms, cb, ptr::null_mut())) }
}

/// Stops a timer; false when it already fired or does not exist.
pub fn stop_timer(ctx: Ctx, id: raw::RedisModuleTimerID) -> bool {
    let mut data: *mut c_void = ptr::null_mut();
    // SAFETY: the timer carries no private data to free.
    unsafe { raw::RedisModule_StopTimer.is_some_and(|f| f(ctx, id, &mut data) == 0) }
}

pub fn select_db(ctx: Ctx, db: i32) -> bool {
    // SAFETY: live ctx.
    unsafe { raw::RedisModule_SelectDb.is_some_and(|f| f(ctx, db) == 0) }
}

/// True while clients are paused for a failover: a timer must not write.
pub fn avoid_replica_traffic() -> bool {
    // SAFETY: plain query.
    unsafe { raw::RedisModule_AvoidReplicaTraffic.is_some_and(|f| f() != 0) }
}

/// A keyspace scan cursor, destroyed on drop.
pub struct ScanCursor(NonNull<raw::RedisModuleScanCursor>);

impl ScanCursor {
    pub fn new() -> Option<ScanCursor> {
        // SAFETY: plain constructor.
        NonNull::new(unsafe { raw::RedisModule_ScanCursorCreate.map_or(ptr::null_mut(), |f| f()) }).map(ScanCursor)
    }

    /// One step of the scan of the selected database, calling `each` with
    /// every key name met. False once the scan is complete.
    pub fn step(&mut self, ctx: Ctx, each: &mut dyn FnMut(&[u8])) -> bool {
        extern "C" fn cb(
            _ctx: *mut raw::RedisModuleCtx,
            name: *mut raw::RedisModuleString,
            _key: *mut raw::RedisModuleKey,
            data: *mut c_void,
        ) {
            // SAFETY: `data` is the `&mut dyn FnMut` passed below, alive for
            // the duration of RedisModule_Scan.
            let each = unsafe { &mut *data.cast::<&mut dyn FnMut(&[u8])>() };
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| each(str_bytes(name))));
        }
        let mut each = each;
        let data = (&mut each as *mut &mut dyn FnMut(&[u8])).cast::<c_void>();
        // SAFETY: live cursor; the callback only runs during the call.
        unsafe { raw::RedisModule_Scan.is_some_and(|f| f(ctx, self.0.as_ptr(), Some(cb), data) != 0) }
    }
}

impl Drop for ScanCursor {
    fn drop(&mut self) {
        // SAFETY: created by ScanCursorCreate, destroyed once.
        unsafe {
            if let Some(f) = raw::RedisModule_ScanCursorDestroy {
                f(self.0.as_ptr());
            }
        }
    }
}

/// The number of databases (`CONFIG GET databases`), 16 when unreadable.
pub fn databases(ctx: Ctx) -> i32 {
    match call(ctx, c"CONFIG", &[b"GET", b"databases"]).map(|r| r.value()) {
        Some(Called::Strings(v)) => {
            v.get(1).and_then(|n| std::str::from_utf8(n).ok()).and_then(|n| n.parse().ok()).unwrap_or(16)
        }
        _ => 16,
    }
}

pub type BlockedFree = unsafe extern "C" fn(*mut raw::RedisModuleCtx, *mut c_void);

/// Blocks the calling client until one of `keys` is signalled ready (then
/// `reply` runs; returning REDISMODULE_ERR keeps it blocked) or `timeout_ms`
/// passes (0: never). `privdata` is handed to the callbacks and to `free`.
pub fn block_on_keys(
    ctx: Ctx,
    reply: raw::RedisModuleCmdFunc,
    timeout: raw::RedisModuleCmdFunc,
    free: BlockedFree,
    timeout_ms: i64,
    keys: &[RStr],
    privdata: *mut c_void,
) -> bool {
    let mut ptrs: Vec<*mut raw::RedisModuleString> = keys.iter().map(RStr::as_ptr).collect();
    let n = c_int::try_from(ptrs.len()).unwrap_or(0);
    // SAFETY: the key strings are copied by Redis; privdata ownership passes
    // to Redis, which calls `free` exactly once.
    unsafe {
        raw::RedisModule_BlockClientOnKeys
            .is_some_and(|f| !f(ctx, reply, timeout, Some(free), timeout_ms, ptrs.as_mut_ptr(), n, privdata).is_null())
    }
}

/// Tells Redis that `key` may let a client blocked on it go on (its reply
/// callback runs again). Redis itself signals a list only when it is created.
pub fn signal_ready(ctx: Ctx, key: &RStr) {
    // SAFETY: live ctx and key string.
    unsafe {
        if let Some(f) = raw::RedisModule_SignalKeyAsReady {
            f(ctx, key.as_ptr());
        }
    }
}

pub fn blocked_privdata(ctx: Ctx) -> *mut c_void {
    // SAFETY: called from a blocked client's callback.
    unsafe { raw::RedisModule_GetBlockedClientPrivateData.map_or(ptr::null_mut(), |f| f(ctx)) }
}

/// Registers the module's `INFO` callback (replacing the default one).
pub fn register_info(ctx: Ctx, cb: raw::RedisModuleInfoFunc) -> bool {
    // SAFETY: called from the module's load with its context.
    unsafe { raw::RedisModule_RegisterInfoFunc.is_some_and(|f| f(ctx, cb) == raw::REDISMODULE_OK as c_int) }
}

/// Writes `INFO` fields; names are prefixed with `tq_` by Redis.
pub struct Info(pub *mut raw::RedisModuleInfoCtx);

impl Info {
    /// Starts the module's own section (`# tq`).
    pub fn section(&self) {
        // SAFETY: live info context; a null name means the default section.
        unsafe {
            if let Some(f) = raw::RedisModule_InfoAddSection {
                f(self.0, ptr::null_mut());
            }
        }
    }

    pub fn uint(&self, name: &CStr, v: u64) {
        // SAFETY: live info context and a NUL-terminated name.
        unsafe {
            if let Some(f) = raw::RedisModule_InfoAddFieldULongLong {
                f(self.0, name.as_ptr(), v);
            }
        }
    }

    /// A field holding `key=value,...` pairs.
    pub fn dict(&self, name: &CStr, pairs: &[(&CStr, u64)]) {
        // SAFETY: live info context and NUL-terminated names.
        unsafe {
            if let (Some(begin), Some(end)) = (raw::RedisModule_InfoBeginDictField, raw::RedisModule_InfoEndDictField) {
                begin(self.0, name.as_ptr());
                for (k, v) in pairs {
                    self.uint(k, *v);
                }
                end(self.0);
            }
        }
    }
}
