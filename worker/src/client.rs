//! A small typed wrapper over the module's `TQ.*` commands, on one
//! synchronous connection that is opened lazily and dropped (to be opened
//! again on the next call) after any transport error.

use std::fmt;
use std::time::Duration;

use redis::Value;

use crate::duration::millis;

/// What `TQ.LOCK` answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockState {
    /// The caller holds the lock with this fencing token.
    Acquired { token: u64 },
    /// Another owner holds it for about this many more milliseconds.
    Held { ms_left: u64 },
    /// The task was completed; nothing to do.
    Done,
}

/// The report `TQ.UNLOCK` files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// The task is done: the lock stays `done` for a full ttl.
    Ok,
    /// The task failed: the lock is freed for takeover at once.
    Fail,
}

impl Report {
    pub fn as_str(self) -> &'static str {
        match self {
            Report::Ok => "OK",
            Report::Fail => "FAIL",
        }
    }
}

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Redis could not be reached, the connection broke or timed out, or the
    /// server answered with a transient error (`LOADING`, `BUSY`, ...):
    /// worth retrying.
    Unavailable(String),
    /// The lock is not ours (any more): `NOTHELD` or `NOTOWNER`.
    Refused { code: String, message: String },
    /// Any other error reply (bad arguments, unknown command, wrong type).
    Rejected { code: String, message: String },
    /// A reply of an unexpected shape.
    Protocol(String),
    /// The Redis URL is unusable.
    Config(String),
}

impl Error {
    /// Worth retrying the same call later.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }

    /// The server refused because the caller does not hold the lock.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. })
    }

    fn from_redis(e: &redis::RedisError) -> Error {
        let Some(code) = e.code() else {
            return Error::Unavailable(e.to_string());
        };
        let code = code.to_string();
        let message = e.detail().unwrap_or_default().to_string();
        match code.as_str() {
            "NOTHELD" | "NOTOWNER" => Error::Refused { code, message },
            "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN" | "READONLY" => {
                Error::Unavailable(format!("{code} {message}"))
            }
            _ => Error::Rejected { code, message },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Unavailable(m) => write!(f, "redis unavailable: {m}"),
            Error::Refused { code, message } | Error::Rejected { code, message } => {
                write!(f, "{code} {message}")?;
                if message.starts_with("unknown command") {
                    write!(f, " (is the tq module loaded into this server?)")?;
                }
                Ok(())
            }
            Error::Protocol(m) => write!(f, "unexpected reply: {m}"),
            Error::Config(m) => write!(f, "bad redis URL: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// A connection to one Redis server for one namespace.
pub struct Client {
    client: redis::Client,
    conn: Option<redis::Connection>,
    ns: String,
    timeout: Duration,
}

impl Client {
    /// Checks the URL; connects on the first call. `timeout` bounds the
    /// connect and every read and write.
    pub fn new(url: &str, ns: &str, timeout: Duration) -> Result<Client, Error> {
        let client = redis::Client::open(url).map_err(|e| Error::Config(format!("{url}: {e}")))?;
        Ok(Client { client, conn: None, ns: ns.to_string(), timeout: nonzero(timeout) })
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Changes the I/O timeout (applies to the open connection too).
    pub fn set_timeout(&mut self, timeout: Duration) {
        let timeout = nonzero(timeout);
        if timeout == self.timeout {
            return;
        }
        self.timeout = timeout;
        if let Some(c) = &self.conn {
            if c.set_read_timeout(Some(timeout)).is_err() || c.set_write_timeout(Some(timeout)).is_err() {
                self.conn = None;
            }
        }
    }

    fn connection(&mut self) -> Result<&mut redis::Connection, Error> {
        let conn = match self.conn.take() {
            Some(c) => c,
            None => {
                let c = self.client.get_connection_with_timeout(self.timeout).map_err(|e| self.error(&e))?;
                c.set_read_timeout(Some(self.timeout)).map_err(|e| self.error(&e))?;
                c.set_write_timeout(Some(self.timeout)).map_err(|e| self.error(&e))?;
                c
            }
        };
        Ok(self.conn.insert(conn))
    }

    fn error(&self, e: &redis::RedisError) -> Error {
        if e.is_timeout() {
            Error::Unavailable(format!("no answer within {}ms", millis(self.timeout)))
        } else {
            Error::from_redis(e)
        }
    }

    /// Runs one command; a transport error drops the connection (a late reply
    /// must never be read as the answer to a later command).
    pub fn call(&mut self, cmd: &redis::Cmd) -> Result<Value, Error> {
        let conn = self.connection()?;
        match cmd.query::<Value>(conn) {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.code().is_none() {
                    self.conn = None;
                }
                Err(self.error(&e))
            }
        }
    }

    /// `TQ.LOCK <ns> <lock> <owner> <ttl-ms>`.
    pub fn lock(&mut self, lock: &str, owner: &str, ttl: Duration) -> Result<LockState, Error> {
        let mut cmd = redis::cmd("TQ.LOCK");
        cmd.arg(&self.ns).arg(lock).arg(owner).arg(ttl_ms(ttl));
        let reply = self.call(&cmd)?;
        parse_lock_reply(&reply)
    }

    /// `TQ.RENEW <ns> <lock> <owner> <token> <ttl-ms>`.
    pub fn renew(&mut self, lock: &str, owner: &str, token: u64, ttl: Duration) -> Result<(), Error> {
        let mut cmd = redis::cmd("TQ.RENEW");
        cmd.arg(&self.ns).arg(lock).arg(owner).arg(token).arg(ttl_ms(ttl));
        expect_ok("TQ.RENEW", &self.call(&cmd)?)
    }

    /// `TQ.UNLOCK <ns> <lock> <owner> <token> OK|FAIL`.
    pub fn unlock(&mut self, lock: &str, owner: &str, token: u64, report: Report) -> Result<(), Error> {
        let mut cmd = redis::cmd("TQ.UNLOCK");
        cmd.arg(&self.ns).arg(lock).arg(owner).arg(token).arg(report.as_str());
        expect_ok("TQ.UNLOCK", &self.call(&cmd)?)
    }
}

fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

fn ttl_ms(ttl: Duration) -> u64 {
    millis(ttl).max(1)
}

fn expect_ok(what: &str, v: &Value) -> Result<(), Error> {
    match v {
        Value::Okay => Ok(()),
        Value::SimpleString(s) if s == "OK" => Ok(()),
        other => Err(Error::Protocol(format!("{what} answered {other:?}, expected OK"))),
    }
}

/// `["acquired", token]`, `["held", ms-left]` or `["done", 0]`.
pub fn parse_lock_reply(v: &Value) -> Result<LockState, Error> {
    let bad = || Error::Protocol(format!("TQ.LOCK answered {v:?}"));
    let Value::Array(items) = v else { return Err(bad()) };
    let [state, n] = items.as_slice() else { return Err(bad()) };
    let state = match state {
        Value::BulkString(b) => b.as_slice(),
        Value::SimpleString(s) => s.as_bytes(),
        _ => return Err(bad()),
    };
    let n = match n {
        Value::Int(n) => u64::try_from(*n).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    match state {
        b"acquired" => Ok(LockState::Acquired { token: n }),
        b"held" => Ok(LockState::Held { ms_left: n }),
        b"done" => Ok(LockState::Done),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arr(state: &str, n: i64) -> Value {
        Value::Array(vec![Value::BulkString(state.as_bytes().to_vec()), Value::Int(n)])
    }

    #[test]
    fn lock_replies() {
        assert_eq!(parse_lock_reply(&arr("acquired", 7)), Ok(LockState::Acquired { token: 7 }));
        assert_eq!(parse_lock_reply(&arr("held", 1200)), Ok(LockState::Held { ms_left: 1200 }));
        assert_eq!(parse_lock_reply(&arr("done", 0)), Ok(LockState::Done));
        for bad in [
            arr("acquired", -1),
            arr("gone", 0),
            Value::Array(vec![]),
            Value::Array(vec![Value::BulkString(b"held".to_vec())]),
            Value::Okay,
            Value::Nil,
        ] {
            assert!(matches!(parse_lock_reply(&bad), Err(Error::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn ok_replies() {
        assert_eq!(expect_ok("X", &Value::Okay), Ok(()));
        assert_eq!(expect_ok("X", &Value::SimpleString("OK".into())), Ok(()));
        assert!(expect_ok("X", &Value::Int(1)).is_err());
    }

    #[test]
    fn bad_url_is_a_config_error() {
        assert!(matches!(Client::new("nope://x", "resque", Duration::from_secs(1)), Err(Error::Config(_))));
    }

    #[test]
    fn unreachable_is_transient() {
        // Port 1 on loopback: nothing listens there.
        let mut c = Client::new("redis://127.0.0.1:1/", "resque", Duration::from_millis(500)).expect("url");
        let e = c.lock("l", "o", Duration::from_secs(1)).expect_err("nothing listens on port 1");
        assert!(e.is_transient(), "{e:?}");
    }
}
