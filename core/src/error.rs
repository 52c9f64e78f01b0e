//! The one error type of tq. Each variant maps to one Redis error reply
//! (`code message`); `reply_text` is the only place that spells them.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum TqError {
    /// Wrong number of arguments (Redis's own arity error).
    Arity,
    /// A malformed or out-of-range argument: `ERR <message>`.
    Arg(String),
    /// A key of the namespace holds another type than tq expects.
    WrongType { key: Vec<u8>, found: &'static str, expected: &'static str },
    /// A stored value tq must read is not what it should be (`ERR`).
    Corrupt { key: Vec<u8>, what: String },
    /// The calling user may not touch a key.
    NoPerm { key: Vec<u8> },
    /// The calling user may not run a plain command that a write of the
    /// TQ command `command` is.
    NoPermCommand { plain: &'static str, key: Vec<u8>, command: String },
    /// ACK/FAIL for a worker that holds no job. `cleaned`: it held one, but
    /// another tool (node-resque's cleanOldWorkers/forceCleanWorker) has
    /// since unregistered the worker and failed the job.
    NoJob { worker: Vec<u8>, cleaned: bool },
    /// ACK/FAIL by a worker whose lease ran out: its job was given back.
    LeaseLost { worker: Vec<u8>, at_ms: u64 },
    /// A report naming a delivery the worker does not hold (`holds`: the
    /// delivery it holds, if any).
    Delivery { worker: Vec<u8>, delivery: u64, holds: Option<u64> },
    /// A report of one kind about a delivery that already ended another way.
    Ended { worker: Vec<u8>, delivery: u64, how: &'static str },
    /// A worker that already holds a job (TQ.UNTRACK refuses such a worker).
    InFlight { worker: Vec<u8>, queue: Vec<u8> },
    /// ENQUEUEAT of a payload already in that bucket (node-resque's message).
    Duplicate,
    /// UNLOCK/RENEW of a lock nobody holds (expired, released, or done).
    NotHeld { lock: Vec<u8>, why: &'static str },
    /// UNLOCK/RENEW by another owner, or with a stale token.
    NotOwner(String),
    /// A bug inside tq, caught before it could take the server down.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, TqError>;

impl TqError {
    pub fn arg(msg: impl Into<String>) -> Self {
        TqError::Arg(msg.into())
    }

    /// The reply as Redis sends it, without the leading `-`.
    pub fn reply_text(&self) -> String {
        match self {
            TqError::Arity => "ERR wrong number of arguments".to_string(),
            TqError::Arg(m) => format!("ERR {m}"),
            TqError::WrongType { key, found, expected } => {
                format!("WRONGTYPE key '{}' holds a {found}, tq expects a {expected}", show(key))
            }
            TqError::Corrupt { key, what } => format!("ERR key '{}': {what}", show(key)),
            TqError::NoPerm { key } => format!("NOPERM this user has no permissions to access the '{}' key", show(key)),
            TqError::NoPermCommand { plain, key, command } => format!(
                "NOPERM this user has no permissions to run the '{plain}' command on '{}', which {command} performs",
                show(key)
            ),
            TqError::NoJob { worker, cleaned: false } => {
                format!("NOJOB worker '{}' has no job in flight", show(worker))
            }
            TqError::NoJob { worker, cleaned: true } => format!(
                "NOJOB worker '{}' has no job in flight: it was unregistered from the workers set (cleaned up as a stuck worker)",
                show(worker)
            ),
            TqError::LeaseLost { worker, at_ms } => format!(
                "LEASELOST worker '{}' lost its job: the lease ran out at {} and the job was given back",
                show(worker),
                crate::time::iso8601(*at_ms)
            ),
            TqError::Delivery { worker, delivery, holds: Some(held) } => format!(
                "NOJOB worker '{}' does not hold delivery {delivery} (it holds delivery {held})",
                show(worker)
            ),
            TqError::Delivery { worker, delivery, holds: None } => {
                format!("NOJOB worker '{}' does not hold delivery {delivery} (it holds no job)", show(worker))
            }
            TqError::Ended { worker, delivery, how } => {
                format!("NOJOB delivery {delivery} of worker '{}' has already ended: {how}", show(worker))
            }
            TqError::InFlight { worker, queue } => format!(
                "INFLIGHT worker '{}' already holds a job from queue '{}'; ACK or FAIL it first",
                show(worker),
                show(queue)
            ),
            TqError::Duplicate => "DUPLICATE Job already enqueued at this time with same arguments".to_string(),
            TqError::NotHeld { lock, why } => format!("NOTHELD lock '{}': {why}", show(lock)),
            TqError::NotOwner(m) => format!("NOTOWNER {m}"),
            TqError::Internal(m) => format!("ERR tq internal error: {m}"),
        }
    }
}

impl fmt::Display for TqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reply_text())
    }
}

impl std::error::Error for TqError {}

/// Renders user bytes for an error message: printable ASCII as is, anything
/// else as `\xNN`, cut at 128 bytes. Error replies cannot carry CR/LF.
pub fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 128;
    let mut s = String::new();
    for &b in bytes.iter().take(LIMIT) {
        if (0x20..0x7f).contains(&b) && b != b'\\' && b != b'\'' {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if bytes.len() > LIMIT {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_start_with_a_code_and_stay_on_one_line() {
        let errs = [
            TqError::arg("bad\r\nthing"),
            TqError::WrongType { key: b"ns:queue:\r\n".to_vec(), found: "string", expected: "list" },
            TqError::NoJob { worker: "w\u{e9}".as_bytes().to_vec(), cleaned: false },
            TqError::InFlight { worker: b"w".to_vec(), queue: b"q".to_vec() },
            TqError::Duplicate,
        ];
        for e in errs {
            let t = e.reply_text();
            let code = t.split(' ').next().unwrap_or_default();
            assert!(code.chars().all(|c| c.is_ascii_uppercase()), "{t}");
        }
        assert_eq!(show(b"a\r\n\xff'"), "a\\x0d\\x0a\\xff\\x27");
        assert_eq!(show(&[b'x'; 200]).len(), 131);
    }
}
