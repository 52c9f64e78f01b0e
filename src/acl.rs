//! What a TQ command requires of the caller's ACL beyond its keys.
//!
//! Redis 7.0 puts module commands in no ACL category: `-@write` does not
//! take TQ.DELQUEUE away, `+@read` does not grant TQ.STATS. So each command
//! declares the plain commands whose effects it performs, and before
//! planning the caller must be allowed each of them on the namespace, as if
//! it ran them itself. Where the server takes categories for module commands
//! (Redis >= 7.2, Valkey), they are declared too, derived from the same
//! list, so categories grant and refuse TQ commands there as well. A write
//! that only some calls make (and so no list names) is checked by the
//! command's store before anything is written (`may_perform`): every write
//! is one of a plain command the caller may run.

use std::cell::RefCell;
use std::ffi::{c_int, CStr, CString};
use std::sync::atomic::{AtomicPtr, Ordering};

use redis_module::raw;
use tq_core::TqError;

use crate::rm::{self, User};
use tq_core::store::Effect;

/// The plain commands TQ commands stand for in ACL checks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Plain {
    Get,
    Set,
    Del,
    Incr,
    Scan,
    Rpush,
    Lpush,
    Lpop,
    Blpop,
    Llen,
    Lrange,
    Lrem,
    Sadd,
    Srem,
    Smembers,
    Zadd,
    Zrem,
    Zrange,
    Hset,
    Hdel,
    Hgetall,
    Lset,
    Pexpireat,
}

const COUNT: usize = 23;

const ALL: [Plain; COUNT] = [
    Plain::Get,
    Plain::Set,
    Plain::Del,
    Plain::Incr,
    Plain::Scan,
    Plain::Rpush,
    Plain::Lpush,
    Plain::Lpop,
    Plain::Blpop,
    Plain::Llen,
    Plain::Lrange,
    Plain::Lrem,
    Plain::Sadd,
    Plain::Srem,
    Plain::Smembers,
    Plain::Zadd,
    Plain::Zrem,
    Plain::Zrange,
    Plain::Hset,
    Plain::Hdel,
    Plain::Hgetall,
    Plain::Lset,
    Plain::Pexpireat,
];

// `NAMES` is indexed by discriminant: `ALL` must list each variant at its own.
#[allow(clippy::indexing_slicing)]
const _: () = {
    let mut i = 0;
    while i < COUNT {
        assert!(ALL[i] as usize == i);
        i += 1;
    }
};

impl Plain {
    pub const fn name(self) -> &'static str {
        match self {
            Plain::Get => "get",
            Plain::Set => "set",
            Plain::Del => "del",
            Plain::Incr => "incr",
            Plain::Scan => "scan",
            Plain::Rpush => "rpush",
            Plain::Lpush => "lpush",
            Plain::Lpop => "lpop",
            Plain::Blpop => "blpop",
            Plain::Llen => "llen",
            Plain::Lrange => "lrange",
            Plain::Lrem => "lrem",
            Plain::Sadd => "sadd",
            Plain::Srem => "srem",
            Plain::Smembers => "smembers",
            Plain::Zadd => "zadd",
            Plain::Zrem => "zrem",
            Plain::Zrange => "zrange",
            Plain::Hset => "hset",
            Plain::Hdel => "hdel",
            Plain::Hgetall => "hgetall",
            Plain::Lset => "lset",
            Plain::Pexpireat => "pexpireat",
        }
    }

    /// Its categories besides read/write and fast/slow, as `COMMAND INFO`
    /// lists them.
    const fn categories(self) -> &'static [&'static str] {
        match self {
            Plain::Get | Plain::Set | Plain::Incr => &["string"],
            Plain::Del | Plain::Scan | Plain::Pexpireat => &["keyspace"],
            Plain::Blpop => &["list", "blocking"],
            Plain::Rpush | Plain::Lpush | Plain::Lpop | Plain::Llen | Plain::Lrange | Plain::Lrem | Plain::Lset => {
                &["list"]
            }
            Plain::Sadd | Plain::Srem | Plain::Smembers => &["set"],
            Plain::Zadd | Plain::Zrem | Plain::Zrange => &["sortedset"],
            Plain::Hset | Plain::Hdel | Plain::Hgetall => &["hash"],
        }
    }

    /// Its bit in a set of plain commands (`Acl::mask`).
    pub const fn bit(self) -> u32 {
        const _: () = assert!(COUNT <= 32, "a set of plain commands is a u32");
        1 << self as u32
    }

    /// The plain commands an effect is, as a client making it by hand would
    /// run them (a promotion's partial pop is an LPOP replicated as LTRIM;
    /// a set of markers is emptied with DEL, or SREM where other members
    /// stay).
    pub fn of(e: &Effect) -> &'static [Plain] {
        match e {
            Effect::RPush { .. } | Effect::RPushMany { .. } => &[Plain::Rpush],
            Effect::LPush { .. } | Effect::LPushMany { .. } => &[Plain::Lpush],
            Effect::LPop { .. } | Effect::LPopN { .. } => &[Plain::Lpop],
            Effect::RemoveMarkers { .. } => &[Plain::Del, Plain::Srem],
            Effect::SAdd { .. } => &[Plain::Sadd],
            Effect::SRem { .. } => &[Plain::Srem],
            Effect::ZAdd { .. } => &[Plain::Zadd],
            Effect::ZRem { .. } | Effect::ZRemMany { .. } => &[Plain::Zrem],
            Effect::HSet { .. } | Effect::HSetMany { .. } => &[Plain::Hset],
            Effect::HDel { .. } | Effect::HDelMany { .. } => &[Plain::Hdel],
            Effect::Set { .. } | Effect::SetPxAt { .. } | Effect::MSet { .. } => &[Plain::Set],
            Effect::LSet { .. } => &[Plain::Lset],
            Effect::LRem { .. } => &[Plain::Lrem],
            Effect::PExpireAt { .. } => &[Plain::Pexpireat],
            Effect::Del { .. } => &[Plain::Del],
            Effect::Incr { .. } => &[Plain::Incr],
        }
    }

    /// Its name as a Redis string, made at load (null if that failed).
    fn string(self) -> *mut raw::RedisModuleString {
        NAMES.get(self as usize).map_or(std::ptr::null_mut(), |p| p.load(Ordering::Relaxed))
    }
}

/// What a command declares: the plain commands it performs, those it
/// performs only when given an option, and whether it is `@fast` (O(1) or
/// O(log N), as Redis defines it) or `@slow`.
pub struct Acl {
    pub plain: &'static [Plain],
    /// `(option, plain commands)`: checked too when an argument after the
    /// namespace is the option (case-insensitive). An argument that merely
    /// looks like it (a queue named `unique`) only adds a check.
    pub options: &'static [(&'static str, &'static [Plain])],
    pub fast: bool,
}

impl Acl {
    pub const fn fast(plain: &'static [Plain]) -> Acl {
        Acl { plain, options: &[], fast: true }
    }
    pub const fn slow(plain: &'static [Plain]) -> Acl {
        Acl { plain, options: &[], fast: false }
    }
    pub const fn with(self, options: &'static [(&'static str, &'static [Plain])]) -> Acl {
        Acl { options, ..self }
    }

    /// The plain commands to check for a call with these arguments.
    fn required<'a>(&'a self, argv: *mut *mut raw::RedisModuleString, argc: c_int) -> impl Iterator<Item = Plain> + 'a {
        let given = move |opt: &str| {
            (2..usize::try_from(argc).unwrap_or(0))
                .filter_map(|i| rm::arg_at(argv, argc, i))
                .any(|a| rm::str_bytes(a).eq_ignore_ascii_case(opt.as_bytes()))
        };
        let extra = self.options.iter().filter(move |(opt, _)| given(opt)).flat_map(|(_, p)| p.iter());
        self.plain.iter().chain(extra).copied()
    }

    /// Its ACL categories: `write` or `read`, `fast` or `slow`, and those of
    /// its plain commands.
    pub fn categories(&self, writes: bool) -> String {
        let mut cats: Vec<&str> = vec![if writes { "write" } else { "read" }, if self.fast { "fast" } else { "slow" }];
        let all = self.plain.iter().chain(self.options.iter().flat_map(|(_, p)| p.iter()));
        for c in all.flat_map(|p| p.categories()) {
            if !cats.contains(c) {
                cats.push(c);
            }
        }
        cats.join(" ")
    }
}

/// The plain commands' names, made once at load: a check then allocates
/// nothing.
static NAMES: [AtomicPtr<raw::RedisModuleString>; COUNT] = [const { AtomicPtr::new(std::ptr::null_mut()) }; COUNT];

/// Makes the names; false if Redis could not.
pub fn init() -> bool {
    ALL.iter().all(|&p| {
        let s = rm::lasting_string(p.name().as_bytes());
        if let Some(slot) = NAMES.get(p as usize) {
            slot.store(s, Ordering::Relaxed);
        }
        !s.is_null()
    })
}

/// Declares the categories of command `name` where the server takes them;
/// a server that refuses them only loses the category grants (the checks
/// below still apply), so it is logged, not fatal.
pub fn declare(ctx: rm::Ctx, name: &CStr, acl: &Acl, writes: bool) {
    let Ok(cats) = CString::new(acl.categories(writes)) else { return };
    if rm::set_command_acl_categories(ctx, name, &cats) == Some(false) {
        rm::log(
            ctx,
            c"warning",
            &format!(
                "<tq> the server refused ACL categories '{}' for {}",
                cats.to_string_lossy(),
                name.to_string_lossy()
            ),
        );
    }
}

/// The caller of the running command as `admit` found it, handed to the
/// command's store.
pub struct Caller {
    pub user: Option<User>,
    /// The plain commands `admit` found the user may run (`Plain::bit`s).
    pub admitted: u32,
    pub command: &'static CStr,
}

thread_local! {
    /// The caller, for this one call only: a user handle must not outlive
    /// the command (ACL DELUSER and ACL LOAD free users).
    static CALLER: RefCell<Option<Caller>> = const { RefCell::new(None) };
}

/// Checks that the caller may run each plain command of `acl` on the
/// namespace (argument 1), and keeps its user for the command's store. The
/// refusal names the plain command and the TQ command, and is added to
/// `ACL LOG`. Without a user (replication, AOF loading) all is allowed.
pub fn admit(
    ctx: rm::Ctx,
    name: &'static CStr,
    acl: &Acl,
    argv: *mut *mut raw::RedisModuleString,
    argc: c_int,
) -> Result<(), String> {
    let user = User::current(ctx);
    let mut admitted = 0;
    if let (Some(u), Some(ns)) = (&user, rm::arg_at(argv, argc, 1)) {
        for p in acl.required(argv, argc) {
            if !may_perform(ctx, u, p, ns) {
                let refused = TqError::NoPermCommand {
                    plain: p.name(),
                    key: rm::str_bytes(ns).to_vec(),
                    command: name.to_string_lossy().into_owned(),
                };
                return Err(refused.reply_text());
            }
            admitted |= p.bit();
        }
    }
    CALLER.with(|c| *c.borrow_mut() = Some(Caller { user, admitted: covered(admitted), command: name }));
    Ok(())
}

/// A set of plain commands with those they imply: a client allowed BLPOP
/// pops as LPOP does (Redis replicates a served BLPOP as LPOP).
fn covered(mask: u32) -> u32 {
    if mask & Plain::Blpop.bit() != 0 {
        mask | Plain::Lpop.bit()
    } else {
        mask
    }
}

impl Acl {
    /// The plain commands it always performs, as a set (`Plain::bit`s).
    pub fn mask(&self) -> u32 {
        covered(self.plain.iter().fold(0, |m, p| m | p.bit()))
    }
}

/// Whether `user` may run `plain` on `key`, as `admit` asks for the
/// namespace; a refusal is added to `ACL LOG`. The store asks this of the
/// writes `admit`'s list did not cover (those only some calls make: a
/// corrupt job moved to failed, a redelivered job's count), before any.
pub fn may_perform(ctx: rm::Ctx, user: &User, plain: Plain, key: *mut raw::RedisModuleString) -> bool {
    let cmd = plain.string();
    if !cmd.is_null() && user.may_run(&mut [cmd, key]) {
        return true;
    }
    if !cmd.is_null() {
        user.log_command_denied(ctx, cmd);
    }
    false
}

/// The caller `admit` looked up for the running command, once; None
/// outside a command (timers, blocked clients served later).
pub fn take_caller() -> Option<Caller> {
    CALLER.with(|c| c.borrow_mut().take())
}

/// Ends the command's hold on its user (frees it if the store did not
/// take it).
pub fn forget_caller() {
    drop(take_caller());
}
