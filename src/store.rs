//! `tq_core::store::Store` on a live Redis keyspace, and the applier that
//! performs a plan's effects and replicates each of them as the plain Redis
//! command it stands for (never the TQ command itself), so replicas and AOF
//! files load without the module.
//!
//! Allocation is the main cost of a module command here (Redis accounts every
//! allocation), so a command keeps one handle per key it touches: the key
//! name string, its ACL verdicts and the open key are made once and shared
//! by planning and applying.

use std::cell::Cell;
use std::ffi::{c_int, CStr};

use redis_module::raw;
use smallvec::SmallVec;
use tq_core::packed::Packed;
use tq_core::store::{parse_i64, wrong_type, Effect, Kind, Store};
use tq_core::{Result, TqError};

use crate::acl::Plain;
use crate::cache;
use crate::rm::{self, Key, KeyType, RStr, User};

/// Keys remembered per command; a command touching more (a large promotion)
/// still works, it just rebuilds handles past this count.
const MAX_HANDLES: usize = 24;

struct Handle {
    name: RStr,
    may_read: Option<bool>,
    may_write: Option<bool>,
    /// The plan said it will write the key (`Store::will_write`): write
    /// access covers its reads, and its first open is for writing.
    writing: bool,
    /// The key opened for reading, or for writing once a write needed it.
    open: Option<(Option<Key>, bool)>,
}

thread_local! {
    static APPLYING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// True while tq applies a plan: keyspace events seen then are tq's own.
pub fn applying() -> bool {
    APPLYING.with(std::cell::Cell::get)
}

pub struct RedisStore {
    ctx: rm::Ctx,
    user: Option<User>,
    now: Cell<Option<u64>>,
    db: i32,
    handles: Handles,
    out: Out,
    /// What the plan noted, recorded for `INFO tq` once it is applied.
    notes: SmallVec<[tq_core::stats::Event; 2]>,
    /// Whether the caller may read and write every key under `prefix` (one
    /// check of the namespace, where the server can make it): keys under
    /// it then need no check of their own.
    trusted: bool,
    /// The strings `list_range_to_move` read, in order, each until a push
    /// of the same bytes takes it (see `reuse`).
    moving: Vec<Option<RStr>>,
    /// The first of `moving` not yet taken.
    moving_next: usize,
    /// The plain commands the caller is known to be allowed (`Plain::bit`s):
    /// those its TQ command declared, then each one a write needed.
    admitted: u32,
    /// The TQ command, for a refusal's text.
    command: &'static CStr,
    /// `<ns>:` of the command's namespace (empty until `trust_namespace`).
    prefix: Vec<u8>,
}

/// How far past the first string not yet taken `reuse` looks: jobs bound
/// for several queues are pushed queue by queue, not in the order read.
const REUSE_WINDOW: usize = 8;

/// Where applied effects are replicated. A served blocked client defers:
/// in Redis 7.0 a `RedisModule_Call` made while a blocked client is served
/// flushes the propagation queue with replication switched off, dropping
/// what was replicated before it. There, effects are replicated once the
/// whole plan is applied.
struct Out {
    ctx: rm::Ctx,
    deferred: Option<Vec<(&'static CStr, Vec<RStr>)>>,
}

impl Out {
    fn bytes(&mut self, cmd: &'static CStr, args: &[&[u8]]) {
        match &mut self.deferred {
            None => rm::replicate(self.ctx, cmd, args),
            Some(q) => q.push((cmd, args.iter().filter_map(|a| RStr::new(self.ctx, a)).collect())),
        }
    }

    fn strs(&mut self, cmd: &'static CStr, args: &[&RStr]) {
        match &mut self.deferred {
            None => rm::replicate_strs(self.ctx, cmd, args),
            Some(q) => q.push((cmd, args.iter().filter_map(|a| RStr::new(self.ctx, a.bytes())).collect())),
        }
    }

    fn vec(&mut self, cmd: &'static CStr, args: Vec<RStr>) {
        match &mut self.deferred {
            None => rm::replicate_vec(self.ctx, cmd, &args),
            Some(q) => q.push((cmd, args)),
        }
    }

    /// Strings that live until the command ends (its key handles and
    /// values held by the caller).
    fn ptrs(&mut self, cmd: &'static CStr, args: &mut [*mut raw::RedisModuleString]) {
        match &mut self.deferred {
            None => rm::replicate_ptrs(self.ctx, cmd, args),
            Some(q) => q.push((cmd, args.iter().filter_map(|&a| RStr::new(self.ctx, rm::str_bytes(a))).collect())),
        }
    }

    fn flush(&mut self) {
        if let Some(q) = &mut self.deferred {
            for (cmd, args) in q.drain(..) {
                rm::replicate_vec(self.ctx, cmd, &args);
            }
        }
    }
}

/// The handles of one command's keys. Lookups go to the last one found
/// first: a key's check, open and write come one after another. Room for
/// 16 in place: a take and a completion in one command touch about 15 keys,
/// and growing the list on the heap cost three allocations a job.
#[derive(Default)]
struct Handles {
    list: SmallVec<[Handle; 16]>,
    last: usize,
}

impl Handles {
    fn len(&self) -> usize {
        self.list.len()
    }

    fn find(&self, key: &[u8]) -> Option<usize> {
        if self.list.get(self.last).is_some_and(|h| h.name.bytes() == key) {
            return Some(self.last);
        }
        self.list.iter().position(|h| h.name.bytes() == key)
    }

    fn get(&mut self, key: &[u8]) -> Result<&mut Handle> {
        let i = match self.find(key) {
            Some(i) => i,
            None => {
                if self.list.len() >= MAX_HANDLES {
                    self.list.clear();
                }
                let name = crate::names::get(key).ok_or_else(oom)?;
                self.list.push(Handle { name, may_read: None, may_write: None, writing: false, open: None });
                self.list.len() - 1
            }
        };
        self.last = i;
        self.list.get_mut(i).ok_or_else(|| TqError::Internal("key handle lost".into()))
    }
}

impl Handle {
    /// The key as opened (None: read, and absent).
    fn key(&self) -> Option<&Key> {
        self.open.as_ref().and_then(|(k, _)| k.as_ref())
    }

    /// The key opened for writing (see `Handles::opened`).
    fn written(&self) -> Result<&Key> {
        self.key().ok_or_else(cannot_open)
    }
}

impl Handles {
    /// The handle of `key` after the ACL check, its key open: for writing
    /// when `write` (or when the plan said it will write it), else for
    /// reading. One lookup serves the key and its name, and borrows only
    /// the handles, so the caller may replicate while it holds them.
    fn opened(
        &mut self,
        ctx: rm::Ctx,
        user: Option<&User>,
        trusted: Option<&[u8]>,
        key: &[u8],
        write: bool,
    ) -> Result<&mut Handle> {
        let h = self.get(key)?;
        verify(user, trusted, h, key, write)?;
        let write = write || h.writing;
        let reopen = match &h.open {
            None => true,
            Some((_, was_write)) => write && !was_write,
        };
        if reopen {
            h.open = None; // close a read handle before opening for writing
            let k = Key::open(ctx, &h.name, write);
            if write && k.is_none() {
                return Err(cannot_open());
            }
            h.open = Some((k, write));
        }
        Ok(h)
    }
}

/// The handle of `key` opened for writing, borrowing only `$s.handles`.
macro_rules! written {
    ($s:ident, $key:expr) => {
        &*$s.handles.opened($s.ctx, $s.user.as_ref(), $s.trusted.then_some($s.prefix.as_slice()), $key, true)?
    };
}

/// The caller's ACL verdict on a key, asked once per key and access (a
/// key the plan writes is checked for writing only: that covers its reads).
fn verify(user: Option<&User>, trusted: Option<&[u8]>, h: &mut Handle, key: &[u8], write: bool) -> Result<()> {
    let Some(user) = user else { return Ok(()) };
    if trusted.is_some_and(|prefix| key.starts_with(prefix)) {
        return Ok(());
    }
    let write = write || h.writing;
    let known = if write { h.may_write } else { h.may_read };
    let ok = known.unwrap_or_else(|| user.may(&h.name, write));
    if write {
        h.may_write = Some(ok);
    } else {
        h.may_read = Some(ok);
    }
    if ok {
        Ok(())
    } else {
        Err(TqError::NoPerm { key: key.to_vec() })
    }
}

/// The small, hot sets whose members the cache remembers: a namespace's
/// queue and worker registries. (Per-job sets such as `timestamps:<payload>`
/// would only churn it.)
pub fn registry(key: &[u8]) -> bool {
    tq_core::keys::role(key) == tq_core::keys::Role::Registry
}

fn kind_of(t: KeyType) -> Kind {
    match t {
        KeyType::Empty => Kind::None,
        KeyType::String => Kind::String,
        KeyType::List => Kind::List,
        KeyType::Hash => Kind::Hash,
        KeyType::Set => Kind::Set,
        KeyType::Zset => Kind::Zset,
        KeyType::Other => Kind::Other,
    }
}

fn oom() -> TqError {
    TqError::Internal("could not allocate a Redis string".into())
}

/// SET's effect on a key open for writing: the value replaced, any expiry
/// dropped.
fn set_value(k: &Key, value: &RStr) -> Result<()> {
    if !k.string_replace(value) || (k.expire_at().is_some() && !k.persist()) {
        return Err(TqError::Internal("string set failed".into()));
    }
    Ok(())
}

fn cannot_open() -> TqError {
    TqError::Internal("could not open a key".into())
}

impl RedisStore {
    pub fn new(ctx: rm::Ctx) -> Self {
        // The command's caller, already looked up by its ACL check.
        let caller = crate::acl::take_caller();
        let (admitted, command) = caller.as_ref().map_or((0, c"this command"), |c| (c.admitted, c.command));
        RedisStore {
            ctx,
            user: caller.map_or_else(|| User::current(ctx), |c| c.user),
            now: Cell::new(None),
            db: rm::selected_db(ctx),
            handles: Handles::default(),
            out: Out { ctx, deferred: None },
            notes: SmallVec::new(),
            trusted: false,
            moving: Vec::new(),
            moving_next: 0,
            admitted,
            command,
            prefix: Vec::new(),
        }
    }

    /// A string for pushing `value`: the one `list_range_to_move` read with
    /// these bytes when one is left near the front, else a new copy.
    fn reuse(&mut self, value: &[u8]) -> Result<RStr> {
        let slot = self
            .moving
            .iter_mut()
            .skip(self.moving_next)
            .take(REUSE_WINDOW)
            .find(|s| s.as_ref().is_some_and(|s| s.bytes() == value));
        if let Some(s) = slot.and_then(Option::take) {
            while self.moving.get(self.moving_next).is_some_and(Option::is_none) {
                self.moving_next += 1;
            }
            return Ok(s);
        }
        RStr::new(self.ctx, value).ok_or_else(oom)
    }

    /// A store for serving a blocked client of `command`, which `admitted`
    /// the plain commands of this set when it blocked: replication is
    /// deferred to the end of `apply` (see `Out`).
    pub fn serving_blocked(ctx: rm::Ctx, command: &'static CStr, admitted: u32) -> Self {
        let mut s = RedisStore::new(ctx);
        s.out.deferred = Some(Vec::new());
        (s.command, s.admitted) = (command, admitted);
        s
    }

    /// Refuses `e` unless the caller may run each plain command it is (see
    /// `acl::may_perform`); each one allowed is asked once per command. The
    /// job metrics' own keys are the exception: they record what the
    /// command did, whoever called it (their keys are checked as any).
    fn gate(&mut self, e: &Effect) -> Result<()> {
        let Some(user) = self.user.as_ref() else { return Ok(()) };
        for &plain in Plain::of(e) {
            if self.admitted & plain.bit() != 0 {
                continue;
            }
            let key = e.keys().next().unwrap_or_default();
            let metrics = !self.prefix.is_empty()
                && e.keys().all(|k| k.strip_prefix(self.prefix.as_slice()).is_some_and(tq_core::keys::is_metrics));
            if metrics {
                continue;
            }
            let name = crate::names::get(key).ok_or_else(oom)?;
            if !crate::acl::may_perform(self.ctx, user, plain, name.as_ptr()) {
                return Err(TqError::NoPermCommand {
                    plain: plain.name(),
                    key: key.to_vec(),
                    command: self.command.to_string_lossy().into_owned(),
                });
            }
            self.admitted |= plain.bit();
        }
        Ok(())
    }

    /// `list_range`; with `keep`, each string read stays in `moving`.
    fn range<T: Default>(
        &mut self,
        key: &[u8],
        (start, stop, max): (i64, i64, u64),
        keep: bool,
        new: impl FnOnce(usize) -> T,
        put: impl Fn(&mut T, &[u8]),
    ) -> Result<T> {
        let Some(len) = self.read(key, Kind::List)?.map(|k| k.len()) else { return Ok(T::default()) };
        let len = i64::try_from(len).unwrap_or(i64::MAX);
        let norm = |i: i64| if i < 0 { len.saturating_add(i).max(0) } else { i };
        let first = norm(start);
        let last = norm(stop).min(len - 1).min(first.saturating_add(i64::try_from(max).unwrap_or(i64::MAX)) - 1);
        if first > last || max == 0 {
            return Ok(T::default());
        }
        // Read in order through the key API (Redis keeps the key's list
        // iterator between neighbours), then closed: Redis 7.0 asserts when
        // a list read this way is deleted through the same handle.
        let ctx = self.ctx;
        let (first, last) = (usize::try_from(first).unwrap_or(0), usize::try_from(last).unwrap_or(0));
        let mut out = new(last.saturating_sub(first).saturating_add(1));
        let mut kept = Vec::new();
        {
            let Some(k) = self.read(key, Kind::List)? else { return Ok(T::default()) };
            for i in first..=last {
                let s =
                    k.list_get_str(ctx, i).ok_or_else(|| TqError::Internal("list shorter than its length".into()))?;
                put(&mut out, s.bytes());
                if keep {
                    kept.push(Some(s));
                }
            }
        }
        self.moving.extend(kept);
        self.release(key);
        Ok(out)
    }

    /// Plans with `f` for comparison only: what it notes is forgotten (the
    /// plan that is applied notes the command's events).
    #[cfg(debug_assertions)]
    pub fn unnoted<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let n = self.notes.len();
        let out = f(self);
        self.notes.truncate(n);
        out
    }

    /// Checks the caller's access to the whole namespace at once where the
    /// server can (Valkey >= 9): when granted, its keys skip their own
    /// checks. Elsewhere, or when refused, each key is checked as it is used.
    pub fn trust_namespace(&mut self, ns: &tq_core::keys::Ns<'_>) {
        self.prefix = ns.prefix();
        let Some(user) = self.user.as_ref().filter(|_| rm::has_prefix_check()) else { return };
        self.trusted = user.may_prefix(&self.prefix) == Some(true);
    }

    /// ACL check, remembered per key and access.
    fn check(&mut self, key: &[u8], write: bool) -> Result<()> {
        let h = self.handles.get(key)?;
        verify(self.user.as_ref(), self.trusted.then_some(self.prefix.as_slice()), h, key, write)
    }

    /// The open key after the ACL check: for writing when `write`, else for
    /// reading (None when the key does not exist).
    fn open(&mut self, key: &[u8], write: bool) -> Result<Option<&Key>> {
        let h = self.handles.opened(
            self.ctx,
            self.user.as_ref(),
            self.trusted.then_some(self.prefix.as_slice()),
            key,
            write,
        )?;
        Ok(h.key())
    }

    fn open_write(&mut self, key: &[u8]) -> Result<&Key> {
        self.open(key, true)?.ok_or_else(cannot_open)
    }

    /// Closes `key` before a `RedisModule_Call` touches it: an open handle
    /// must not outlive a change made behind its back.
    fn release(&mut self, key: &[u8]) {
        if let Some(h) = self.handles.find(key).and_then(|i| self.handles.list.get_mut(i)) {
            h.open = None;
        }
    }

    /// The key for reading, or None when absent; fails on another type.
    fn read(&mut self, key: &[u8], want: Kind) -> Result<Option<&Key>> {
        let Some(k) = self.open(key, false)? else { return Ok(None) };
        match kind_of(k.kind()) {
            Kind::None => Ok(None),
            found if found == want => Ok(Some(k)),
            found => Err(wrong_type(key, found, want)),
        }
    }

    fn call_int(&mut self, cmd: &CStr, args: &[&[u8]]) -> Result<i64> {
        if let Some(key) = args.first() {
            self.release(key);
        }
        match rm::call(self.ctx, cmd, args).map(|r| r.value()) {
            Some(rm::Called::Int(n)) => Ok(n),
            Some(rm::Called::Error(e)) => Err(TqError::Internal(e)),
            _ => Err(TqError::Internal(format!("unexpected reply from {}", cmd.to_string_lossy()))),
        }
    }

    /// Runs a write through `RedisModule_Call` (which emits its keyspace
    /// event) and replicates it as sent; any reply but an error is success.
    fn call_and_replicate(&mut self, cmd: &'static CStr, args: &[&[u8]]) -> Result<()> {
        if let Some(key) = args.first() {
            self.release(key);
        }
        match rm::call(self.ctx, cmd, args).map(|r| r.value()) {
            Some(rm::Called::Error(e)) => Err(TqError::Internal(e)),
            Some(_) => {
                self.out.bytes(cmd, args);
                Ok(())
            }
            None => Err(TqError::Internal(format!("{} could not run", cmd.to_string_lossy()))),
        }
    }

    /// Performs the effects in order, replicating each. The ACL is checked
    /// for every key first, so a refusal writes nothing. Returns how many
    /// list elements the plan's LREM effects removed.
    pub fn apply(&mut self, effects: &[Effect]) -> Result<i64> {
        APPLYING.with(|a| a.set(true));
        let result = self.apply_all(effects);
        // A push or a released lock may let a stuck TQ.BPOP waiter go on.
        // (Not while serving a blocked client: its own writes would wake it
        // again at once.)
        if result.is_ok()
            && self.out.deferred.is_none()
            && crate::waiters::any()
            && effects.iter().any(|e| {
                matches!(
                    e,
                    Effect::RPush { .. }
                        | Effect::LPush { .. }
                        | Effect::RPushMany { .. }
                        | Effect::LPushMany { .. }
                        | Effect::Del { .. }
                )
            })
        {
            crate::waiters::wake(self.ctx, Some(self.db));
        }
        // Whatever was applied is replicated, even after a failure midway.
        self.out.flush();
        APPLYING.with(|a| a.set(false));
        if result.is_ok() {
            crate::stats::record(&self.notes);
        }
        self.notes.clear();
        result
    }

    fn apply_all(&mut self, effects: &[Effect]) -> Result<i64> {
        // Promotion's markers are many distinct keys: their names are made
        // and checked once here, outside the per-command handles (which
        // only pay off for a few keys), and used again to apply.
        let mut marker_names: Vec<Vec<RStr>> = Vec::new();
        for e in effects {
            self.gate(e)?;
            if let Effect::RemoveMarkers { keys, .. } = e {
                let mut names = Vec::with_capacity(keys.len());
                for key in keys {
                    let name = RStr::new(self.ctx, key).ok_or_else(oom)?;
                    let trusted = self.trusted && key.starts_with(&self.prefix);
                    if !trusted && self.user.as_ref().is_some_and(|u| !u.may(&name, true)) {
                        return Err(TqError::NoPerm { key: key.to_vec() });
                    }
                    names.push(name);
                }
                marker_names.push(names);
                continue;
            }
            for key in e.keys() {
                self.check(key, true)?;
            }
        }
        let mut marker_names = marker_names.into_iter();
        let mut removed = 0;
        for e in effects {
            if let Effect::RemoveMarkers { member, .. } = e {
                let names = marker_names.next().unwrap_or_default();
                self.remove_markers(names, member)?;
                continue;
            }
            removed += self.apply_one(e)?;
            // Timed work: the timer must serve the namespace, and come in
            // time (a ZADD to a timed zset carries its due time).
            match e {
                Effect::ZAdd { key, score, .. } => {
                    let score = u64::try_from(*score).unwrap_or(0);
                    let seconds = tq_core::keys::role(key) == tq_core::keys::Role::DelayedSchedule;
                    let due = if seconds { score.saturating_mul(1000) } else { score };
                    crate::timer::note_key(self.ctx, self.db, key, due);
                }
                Effect::HSet { key, .. } if tq_core::keys::role(key) == tq_core::keys::Role::Recur => {
                    crate::timer::note_key(self.ctx, self.db, key, self.now_ms());
                }
                _ => {}
            }
        }
        Ok(removed)
    }

    /// Applies one effect; returns the elements an LREM removed (else 0).
    fn apply_one(&mut self, e: &Effect) -> Result<i64> {
        let ctx = self.ctx;
        const LIST: c_int = raw::REDISMODULE_NOTIFY_LIST;
        const GENERIC: c_int = raw::REDISMODULE_NOTIFY_GENERIC;
        match e {
            Effect::RPush { key, value } => {
                let v = RStr::new(ctx, value).ok_or_else(oom)?;
                let h = written!(self, key);
                if !h.written()?.list_push_tail(&v) {
                    return Err(TqError::Internal("list push failed".into()));
                }
                rm::notify(ctx, LIST, c"rpush", &h.name);
                self.out.strs(c"RPUSH", &[&h.name, &v]);
            }
            Effect::LPush { key, value } => {
                let v = RStr::new(ctx, value).ok_or_else(oom)?;
                let h = written!(self, key);
                if !h.written()?.list_push_head(&v) {
                    return Err(TqError::Internal("list push failed".into()));
                }
                rm::notify(ctx, LIST, c"lpush", &h.name);
                self.out.strs(c"LPUSH", &[&h.name, &v]);
            }
            Effect::RPushMany { key, values } | Effect::LPushMany { key, values } => {
                let head = matches!(e, Effect::LPushMany { .. });
                let mut args = Vec::with_capacity(values.len() + 1);
                args.push(crate::names::get(key).ok_or_else(oom)?);
                for value in values {
                    args.push(self.reuse(value)?);
                }
                let k = self.open_write(key)?;
                for v in args.iter().skip(1) {
                    let pushed = if head { k.list_push_head(v) } else { k.list_push_tail(v) };
                    if !pushed {
                        return Err(TqError::Internal("list push failed".into()));
                    }
                }
                // One push of them all, as RPUSH/LPUSH with many values.
                if let (Some(name), true) = (args.first(), args.len() > 1) {
                    let (event, cmd) = if head { (c"lpush", c"LPUSH") } else { (c"rpush", c"RPUSH") };
                    rm::notify(ctx, LIST, event, name);
                    self.out.vec(cmd, args);
                }
            }
            Effect::ZRemMany { key, members } => {
                let mut args = Vec::with_capacity(members.len() + 1);
                args.push(crate::names::get(key).ok_or_else(oom)?);
                let k = self.open_write(key)?;
                for member in members {
                    let m = RStr::new(ctx, member).ok_or_else(oom)?;
                    if k.zset_rem(&m) {
                        args.push(m);
                    }
                }
                // As ZREM: one event, and only for members that were there.
                if let (Some(name), true) = (args.first(), args.len() > 1) {
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_ZSET, c"zrem", name);
                    if k.kind() == KeyType::Empty {
                        rm::notify(ctx, GENERIC, c"del", name);
                    }
                    self.out.vec(c"ZREM", args);
                }
            }
            Effect::HSetMany { key, pairs } => {
                let mut args = Vec::with_capacity(2 * pairs.len() + 1);
                args.push(crate::names::get(key).ok_or_else(oom)?);
                let k = self.open_write(key)?;
                for (field, value) in pairs {
                    let f = RStr::new(ctx, field).ok_or_else(oom)?;
                    let v = RStr::new(ctx, value).ok_or_else(oom)?;
                    k.hash_set(&f, Some(&v));
                    args.push(f);
                    args.push(v);
                }
                if let (Some(name), true) = (args.first(), args.len() > 1) {
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_HASH, c"hset", name);
                    self.out.vec(c"HSET", args);
                }
            }
            Effect::RemoveMarkers { .. } => {
                return Err(TqError::Internal("markers are removed by apply_all".into()));
            }
            Effect::LPopN { key, count } => {
                let k = self.open_write(key)?;
                let len = k.len();
                if *count == 0 || len == 0 || k.kind() != KeyType::List {
                    return Ok(0);
                }
                if *count >= len {
                    // A whole bucket (the usual promotion): one delete
                    // instead of one list operation per job.
                    if !k.delete() {
                        return Err(TqError::Internal("list delete failed".into()));
                    }
                    let name = &self.handles.get(key)?.name;
                    rm::notify(ctx, LIST, c"lpop", name);
                    rm::notify(ctx, GENERIC, c"del", name);
                    self.out.bytes(c"LPOP", &[key, len.to_string().as_bytes()]);
                } else {
                    // Part of a bucket: one LTRIM removes the head in a
                    // range operation (deleting the head element by element
                    // moves the rest of a listpack node each time).
                    self.call_and_replicate(c"LTRIM", &[key, count.to_string().as_bytes(), b"-1"])?;
                }
            }
            Effect::LPop { key } => {
                let h = written!(self, key);
                let k = h.written()?;
                if k.list_pop_head(ctx) {
                    let emptied = k.kind() == KeyType::Empty;
                    rm::notify(ctx, LIST, c"lpop", &h.name);
                    if emptied {
                        rm::notify(ctx, GENERIC, c"del", &h.name);
                    }
                    self.out.strs(c"LPOP", &[&h.name]);
                }
            }
            Effect::SAdd { key, member } => {
                let cached = registry(key);
                if cached && cache::contains(self.db, key, member) {
                    return Ok(0);
                }
                // The call emits the `sadd` keyspace event itself.
                if self.call_int(c"SADD", &[key, member])? == 1 {
                    self.out.bytes(c"SADD", &[key, member]);
                }
                if cached {
                    cache::insert(self.db, key, member);
                }
            }
            Effect::SRem { key, member } => {
                if self.call_int(c"SREM", &[key, member])? == 1 {
                    self.out.bytes(c"SREM", &[key, member]);
                }
            }
            Effect::LSet { key, index, value } => {
                self.call_and_replicate(c"LSET", &[key, index.to_string().as_bytes(), value])?;
            }
            Effect::LRem { key, count, value } => {
                // The call emits the `lrem` (and `del`) keyspace events itself.
                let count = count.to_string();
                let n = self.call_int(c"LREM", &[key, count.as_bytes(), value])?;
                if n > 0 {
                    self.out.bytes(c"LREM", &[key, count.as_bytes(), value]);
                }
                return Ok(n);
            }
            Effect::ZAdd { key, score, member } => {
                let m = RStr::new(ctx, member).ok_or_else(oom)?;
                let h = written!(self, key);
                if h.written()?.zset_add(*score as f64, &m) {
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_ZSET, c"zadd", &h.name);
                    self.out.bytes(c"ZADD", &[key, score.to_string().as_bytes(), member]);
                }
            }
            Effect::ZRem { key, member } => {
                let m = RStr::new(ctx, member).ok_or_else(oom)?;
                let h = written!(self, key);
                let k = h.written()?;
                if k.zset_rem(&m) {
                    let emptied = k.kind() == KeyType::Empty;
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_ZSET, c"zrem", &h.name);
                    if emptied {
                        rm::notify(ctx, GENERIC, c"del", &h.name);
                    }
                    self.out.bytes(c"ZREM", &[key, member]);
                }
            }
            Effect::Set { key, value } => {
                let v = RStr::new(ctx, value).ok_or_else(oom)?;
                let h = written!(self, key);
                set_value(h.written()?, &v)?;
                rm::notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"set", &h.name);
                self.out.strs(c"SET", &[&h.name, &v]);
            }
            Effect::SetPxAt { key, value, at_ms } => {
                let v = RStr::new(ctx, value).ok_or_else(oom)?;
                let k = self.open_write(key)?;
                if !k.string_replace(&v) || !k.set_expire_at(*at_ms) {
                    return Err(TqError::Internal("string set failed".into()));
                }
                let name = &self.handles.get(key)?.name;
                rm::notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"set", name);
                rm::notify(ctx, GENERIC, c"expire", name);
                let at = RStr::new(ctx, at_ms.to_string().as_bytes()).ok_or_else(oom)?;
                let pxat = RStr::new(ctx, b"PXAT").ok_or_else(oom)?;
                let name = crate::names::get(key).ok_or_else(oom)?;
                self.out.vec(c"SET", vec![name, v, pxat, at]);
            }
            Effect::PExpireAt { key, at_ms } => {
                let k = self.open_write(key)?;
                if k.kind() != KeyType::Empty && k.set_expire_at(*at_ms) {
                    let name = &self.handles.get(key)?.name;
                    rm::notify(ctx, GENERIC, c"expire", name);
                    self.out.bytes(c"PEXPIREAT", &[key, at_ms.to_string().as_bytes()]);
                }
            }
            Effect::MSet { pairs } if self.handles.len() + pairs.len() <= MAX_HANDLES => {
                // The keys' handles cannot be evicted here (there is room
                // for all of them), so their names serve the replication.
                let mut values = Vec::with_capacity(pairs.len());
                for (key, value) in pairs {
                    let v = RStr::new(ctx, value).ok_or_else(oom)?;
                    let h = written!(self, key);
                    set_value(h.written()?, &v)?;
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"set", &h.name);
                    values.push(v);
                }
                let mut args = Vec::with_capacity(pairs.len() * 2);
                for ((key, _), v) in pairs.iter().zip(&values) {
                    args.push(self.handles.get(key)?.name.as_ptr());
                    args.push(v.as_ptr());
                }
                self.out.ptrs(c"MSET", &mut args);
            }
            Effect::MSet { pairs } => {
                let mut args = Vec::with_capacity(pairs.len() * 2);
                for (key, value) in pairs {
                    let v = RStr::new(ctx, value).ok_or_else(oom)?;
                    set_value(self.open_write(key)?, &v)?;
                    let name = crate::names::get(key).ok_or_else(oom)?;
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"set", &name);
                    args.push(name);
                    args.push(v);
                }
                self.out.vec(c"MSET", args);
            }
            Effect::Del { keys } => {
                let mut deleted = Vec::with_capacity(keys.len());
                for key in keys {
                    let k = self.open_write(key)?;
                    if k.kind() != KeyType::Empty && k.delete() {
                        let name = crate::names::get(key).ok_or_else(oom)?;
                        rm::notify(ctx, GENERIC, c"del", &name);
                        deleted.push(name);
                    }
                }
                if !deleted.is_empty() {
                    self.out.vec(c"DEL", deleted);
                }
            }
            Effect::Incr { key } => {
                let h = written!(self, key);
                let k = h.written()?;
                let ok = match k.kind() {
                    KeyType::Empty => RStr::new(ctx, b"1").is_some_and(|one| k.string_set(&one)),
                    KeyType::String => {
                        let n = k.string().and_then(|v| parse_i64(&v)).and_then(|n| n.checked_add(1));
                        n.is_some_and(|n| k.string_overwrite(n.to_string().as_bytes()))
                    }
                    _ => false,
                };
                if !ok {
                    return Err(TqError::Internal("increment failed".into()));
                }
                rm::notify(ctx, raw::REDISMODULE_NOTIFY_STRING, c"incrby", &h.name);
                self.out.strs(c"INCR", &[&h.name]);
            }
            Effect::HSet { key, field, value } => {
                let f = RStr::new(ctx, field).ok_or_else(oom)?;
                let v = RStr::new(ctx, value).ok_or_else(oom)?;
                let h = written!(self, key);
                h.written()?.hash_set(&f, Some(&v));
                rm::notify(ctx, raw::REDISMODULE_NOTIFY_HASH, c"hset", &h.name);
                self.out.strs(c"HSET", &[&h.name, &f, &v]);
            }
            Effect::HDel { key, field } => self.hash_delete(key, std::slice::from_ref(field))?,
            Effect::HDelMany { key, fields } => self.hash_delete(key, fields)?,
        }
        Ok(0)
    }

    /// Removes `member` from each of these sets (names checked already):
    /// a set holding only it is deleted, and those deletions replicate as
    /// one DEL.
    fn remove_markers(&mut self, names: Vec<RStr>, member: &[u8]) -> Result<()> {
        let ctx = self.ctx;
        let mut deleted = Vec::new();
        for name in names {
            let Some(k) = Key::open(ctx, &name, true) else { continue };
            if k.kind() != KeyType::Set {
                continue;
            }
            if k.set_is_only(member) {
                if k.delete() {
                    rm::notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"del", &name);
                    deleted.push(name);
                }
            } else if k.len() > 1 {
                drop(k);
                let key = name.bytes();
                if self.call_int(c"SREM", &[key, member])? == 1 {
                    self.out.bytes(c"SREM", &[key, member]);
                }
            }
        }
        if !deleted.is_empty() {
            self.out.vec(c"DEL", deleted);
        }
        Ok(())
    }

    /// Removes the fields of a hash that are there; replicated as one HDEL
    /// of those.
    fn hash_delete(&mut self, key: &[u8], fields: &[Vec<u8>]) -> Result<()> {
        let ctx = self.ctx;
        let k = self.open_write(key)?;
        if k.kind() != KeyType::Hash {
            return Ok(());
        }
        let mut args = Vec::with_capacity(fields.len() + 1);
        args.push(crate::names::get(key).ok_or_else(oom)?);
        for field in fields {
            let f = RStr::new(ctx, field).ok_or_else(oom)?;
            if k.hash_set(&f, None) {
                args.push(f);
            }
        }
        let emptied = k.kind() == KeyType::Empty;
        if args.len() > 1 {
            let name = &self.handles.get(key)?.name;
            rm::notify(ctx, raw::REDISMODULE_NOTIFY_HASH, c"hdel", name);
            if emptied {
                rm::notify(ctx, raw::REDISMODULE_NOTIFY_GENERIC, c"del", name);
            }
            self.out.vec(c"HDEL", args);
        }
        Ok(())
    }
}

impl Store for RedisStore {
    fn note(&mut self, event: tq_core::stats::Event) {
        self.notes.push(event);
    }

    fn now_ms(&self) -> u64 {
        // Read once per command, so one command sees one instant.
        match self.now.get() {
            Some(t) => t,
            None => {
                let t = rm::now_ms();
                self.now.set(Some(t));
                t
            }
        }
    }

    fn kind(&mut self, key: &[u8]) -> Result<Kind> {
        Ok(self.open(key, false)?.map_or(Kind::None, |k| kind_of(k.kind())))
    }

    fn keeps_metrics(&self) -> bool {
        crate::config::metrics()
    }

    fn metrics_flush_ms(&self) -> u64 {
        crate::config::metrics_flush_ms()
    }

    fn clock_checked(&mut self, key: &[u8]) -> Option<u64> {
        crate::clocks::checked(self.db, key)
    }

    fn note_clock_checked(&mut self, key: &[u8], at: u64) {
        crate::clocks::note(self.db, key, at);
    }

    fn clock_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        // The caller's ACL decides, copy or not.
        self.check(key, false)?;
        let mut f = Some(f);
        if let Some(read) = crate::clocks::with_copy(self.db, key, |raw| f.take().map(|f| f(raw))) {
            return Ok(read);
        }
        let f = f.ok_or_else(|| TqError::Internal("a clock read twice".into()))?;
        let db = self.db;
        let Some(k) = self.read(key, Kind::String)? else { return Ok(None) };
        let lasting = k.expire_at().is_none();
        Ok(k.with_string(|raw| {
            if lasting {
                crate::clocks::keep_copy(db, key, raw);
            }
            f(raw)
        }))
    }

    fn clock_written(&mut self, key: &[u8]) {
        crate::clocks::forget_copy(key);
    }

    fn will_write(&mut self, key: &[u8]) -> Result<()> {
        let h = self.handles.get(key)?;
        verify(self.user.as_ref(), self.trusted.then_some(self.prefix.as_slice()), h, key, true)?;
        h.writing = true;
        Ok(())
    }

    fn list_len(&mut self, key: &[u8]) -> Result<usize> {
        Ok(self.read(key, Kind::List)?.map_or(0, |k| k.len()))
    }

    fn list_get(&mut self, key: &[u8], index: usize) -> Result<Option<Vec<u8>>> {
        let ctx = self.ctx;
        Ok(self.read(key, Kind::List)?.and_then(|k| k.list_get(ctx, index)))
    }

    fn set_contains(&mut self, key: &[u8], member: &[u8]) -> Result<bool> {
        if self.read(key, Kind::Set)?.is_none() {
            return Ok(false);
        }
        let cached = registry(key);
        if cached && cache::contains(self.db, key, member) {
            return Ok(true);
        }
        let found = self.call_int(c"SISMEMBER", &[key, member])? == 1;
        if found && cached {
            cache::insert(self.db, key, member);
        }
        Ok(found)
    }

    fn set_members(&mut self, key: &[u8]) -> Result<Vec<Vec<u8>>> {
        if self.read(key, Kind::Set)?.is_none() {
            return Ok(Vec::new());
        }
        self.release(key);
        match rm::call(self.ctx, c"SMEMBERS", &[key]).map(|r| r.value()) {
            Some(rm::Called::Strings(v)) => Ok(v),
            Some(rm::Called::Error(e)) => Err(TqError::Internal(e)),
            _ => Err(TqError::Internal("unexpected reply from SMEMBERS".into())),
        }
    }

    fn zset_range_from(
        &mut self,
        key: &[u8],
        min: f64,
        max: f64,
        skip: usize,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, f64)>> {
        let ctx = self.ctx;
        Ok(self.read(key, Kind::Zset)?.map_or_else(Vec::new, |k| k.zset_range(ctx, min, max, skip, limit)))
    }

    fn hash_get(&mut self, key: &[u8], field: &[u8]) -> Result<Option<Vec<u8>>> {
        let ctx = self.ctx;
        let f = RStr::new(ctx, field).ok_or_else(oom)?;
        Ok(self.read(key, Kind::Hash)?.and_then(|k| k.hash_get(ctx, &f)))
    }

    fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.read(key, Kind::String)?.and_then(|k| k.string()))
    }

    fn get_with<R>(&mut self, key: &[u8], f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>> {
        Ok(self.read(key, Kind::String)?.and_then(|k| k.with_string(f)))
    }

    fn expire_at(&mut self, key: &[u8]) -> Result<Option<u64>> {
        Ok(self.open(key, false)?.and_then(|k| k.expire_at()))
    }

    fn list_range(&mut self, key: &[u8], start: i64, stop: i64, max: u64) -> Result<Vec<Vec<u8>>> {
        self.range(key, (start, stop, max), false, Vec::with_capacity, |out, s| out.push(s.to_vec()))
    }

    fn list_range_to_move(&mut self, key: &[u8], start: i64, stop: i64, max: u64) -> Result<Packed> {
        // One buffer for the batch: a copy per job would be an allocation
        // and a free each.
        self.range(key, (start, stop, max), true, |n| Packed::with_capacity(n, 0), Packed::push_sizing)
    }

    fn zset_card(&mut self, key: &[u8]) -> Result<usize> {
        Ok(self.read(key, Kind::Zset)?.map_or(0, |k| k.len()))
    }

    fn zset_score(&mut self, key: &[u8], member: &[u8]) -> Result<Option<f64>> {
        let m = RStr::new(self.ctx, member).ok_or_else(oom)?;
        Ok(self.read(key, Kind::Zset)?.and_then(|k| k.zset_score(&m)))
    }

    fn scan(&mut self, cursor: u64, pattern: &[u8], count: u64) -> Result<(u64, Vec<Vec<u8>>)> {
        let (cursor, count) = (cursor.to_string(), count.to_string());
        let args: [&[u8]; 5] = [cursor.as_bytes(), b"MATCH", pattern, b"COUNT", count.as_bytes()];
        let reply = rm::call(self.ctx, c"SCAN", &args);
        match reply.as_ref().map(|r| (r.scan_value(), r.value())) {
            Some((Some(step), _)) => Ok(step),
            Some((None, rm::Called::Error(e))) => Err(TqError::Internal(e)),
            _ => Err(TqError::Internal("unexpected reply from SCAN".into())),
        }
    }

    fn hash_sample(&mut self, key: &[u8], max: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let Some(len) = self.read(key, Kind::Hash)?.map(|k| k.len()) else { return Ok(Vec::new()) };
        self.release(key);
        let count = max.to_string();
        let reply = if len <= max {
            rm::call(self.ctx, c"HGETALL", &[key])
        } else {
            rm::call(self.ctx, c"HRANDFIELD", &[key, count.as_bytes(), b"WITHVALUES"])
        };
        match reply.map(|r| r.value()) {
            Some(rm::Called::Strings(flat)) => {
                Ok(flat.chunks_exact(2).filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.clone()))).collect())
            }
            Some(rm::Called::Error(e)) => Err(TqError::Internal(e)),
            _ => Err(TqError::Internal("unexpected reply reading a lock hash".into())),
        }
    }
}
