//! What `COMMAND DOCS` and `COMMAND INFO` say about each TQ command, set
//! through `RedisModule_SetCommandInfo` when the command is registered.
//! Setting the arity here also makes Redis refuse wrong argument counts
//! before tq runs.

use std::ffi::CStr;

/// tq's version, reported as every command's "since".
pub const SINCE: &CStr = c"0.1.0";

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ArgKind {
    /// The namespace: the one key every TQ command declares.
    Key,
    String,
    Integer,
    /// A keyword alone (a flag).
    PureToken,
}

pub struct Arg {
    pub name: &'static CStr,
    pub kind: ArgKind,
    /// A keyword before the value (`LIMIT <n>`).
    pub token: Option<&'static CStr>,
    pub optional: bool,
    pub multiple: bool,
}

impl Arg {
    pub const fn key(name: &'static CStr) -> Arg {
        Arg { name, kind: ArgKind::Key, token: None, optional: false, multiple: false }
    }
    pub const fn string(name: &'static CStr) -> Arg {
        Arg { name, kind: ArgKind::String, token: None, optional: false, multiple: false }
    }
    pub const fn integer(name: &'static CStr) -> Arg {
        Arg { name, kind: ArgKind::Integer, token: None, optional: false, multiple: false }
    }
    pub const fn pure_token(token: &'static CStr) -> Arg {
        Arg { name: token, kind: ArgKind::PureToken, token: Some(token), optional: false, multiple: false }
    }
    pub const fn optional(self) -> Arg {
        Arg { optional: true, ..self }
    }
    pub const fn multiple(self) -> Arg {
        Arg { multiple: true, ..self }
    }
    pub const fn token(self, token: &'static CStr) -> Arg {
        Arg { token: Some(token), ..self }
    }
}

pub struct Doc {
    pub summary: &'static CStr,
    pub complexity: &'static CStr,
    /// Redis arity: N exactly, or -N for at least N (command name included).
    pub arity: i32,
    /// Whether the command writes (decides the namespace key spec's flags).
    pub writes: bool,
    pub args: &'static [Arg],
}

/// The namespace argument shared by every command.
pub const NS: Arg = Arg::key(c"namespace");
