//! A small typed wrapper over the module's `TQ.*` commands, on one
//! synchronous connection that is opened lazily and dropped (to be opened
//! again on the next call) after any transport error.
//!
//! Jobs: [`Client::enqueue`], [`Client::enqueue_at`], [`Client::enqueue_in`],
//! [`Client::pop`], [`Client::bpop`], [`Client::ack`], [`Client::fail`],
//! [`Client::nack`], [`Client::heartbeat`]. Locks: [`Client::lock`],
//! [`Client::renew`], [`Client::unlock`]. A call whose connection broke
//! returns [`Error::Unavailable`] and may or may not have been applied;
//! every job command may be sent again as it was: the module answers a
//! repeat as it answered the first (a take hands out the same job again, a
//! report of a delivery already reported answers as before).

use std::fmt;
use std::time::Duration;

use redis::Value;

use crate::config::RetryPolicy;
use crate::duration::millis;
use crate::job::{Failure, Job, Taken};

/// Error codes of the job commands (the first word of the error reply).
pub const NOJOB: &str = "NOJOB";
pub const LEASELOST: &str = "LEASELOST";
pub const DUPLICATE: &str = "DUPLICATE";

/// What `TQ.FAIL` did with the job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailOutcome {
    /// Filed in `<ns>:failed` (node-resque's failure record).
    Failed,
    /// Filed to run again after this delay (a retry policy applied).
    Retry { delay: Duration },
}

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

    /// The error reply's code (`NOJOB`, `LEASELOST`, `INFLIGHT`, `ERR`, ...),
    /// None when the server did not answer.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Refused { code, .. } | Error::Rejected { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The error reply's code is `code`.
    pub fn is(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    fn from_redis(e: &redis::RedisError) -> Error {
        // Wrong credentials stay wrong: retrying cannot help. redis-rs turns
        // the server's WRONGPASS to AUTH into this kind, without a code.
        if e.kind() == redis::ErrorKind::AuthenticationFailed {
            return Error::Rejected {
                code: "WRONGPASS".into(),
                message: "authentication failed: invalid username-password pair or user is disabled (check the \
                          credentials in the Redis URL)"
                    .into(),
            };
        }
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
            // NOAUTH, WRONGPASS, NOPERM among them: not transient.
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

    /// Checks the URL and connects now (`PING`), with a 5 s I/O timeout.
    pub fn connect(url: &str, ns: &str) -> Result<Client, Error> {
        let mut c = Client::new(url, ns, Duration::from_secs(5))?;
        c.call(&redis::cmd("PING"))?;
        Ok(c)
    }

    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// The namespace's key names (`tq_core::keys`, the one place they are
    /// made); an error for a namespace no key may carry.
    pub fn keys(&self) -> Result<tq_core::keys::Ns<'_>, Error> {
        tq_core::keys::Ns::new(self.ns.as_bytes(), false)
            .map_err(|e| Error::Config(format!("namespace '{}': {e}", self.ns)))
    }

    /// The I/O timeout now in force.
    pub fn timeout(&self) -> Duration {
        self.timeout
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

    /// Runs a pipeline (same error handling as [`Client::call`]).
    pub fn call_pipe(&mut self, pipe: &redis::Pipeline) -> Result<Value, Error> {
        let conn = self.connection()?;
        match pipe.query::<Value>(conn) {
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

impl Client {
    /// `TQ.ENQUEUE <ns> <queue> <class> <args-json>` → the queue's length.
    pub fn enqueue(&mut self, queue: &str, class: &str, args_json: &str) -> Result<u64, Error> {
        let mut cmd = redis::cmd("TQ.ENQUEUE");
        cmd.arg(&self.ns).arg(queue).arg(class).arg(args_json);
        expect_uint("TQ.ENQUEUE", &self.call(&cmd)?)
    }

    /// `TQ.ENQUEUEAT <ns> <unix-ms> ...` → the delayed bucket (unix seconds).
    pub fn enqueue_at(&mut self, at_unix_ms: u64, queue: &str, class: &str, args_json: &str) -> Result<u64, Error> {
        let mut cmd = redis::cmd("TQ.ENQUEUEAT");
        cmd.arg(&self.ns).arg(at_unix_ms).arg(queue).arg(class).arg(args_json);
        expect_uint("TQ.ENQUEUEAT", &self.call(&cmd)?)
    }

    /// `TQ.ENQUEUEIN <ns> <delay-ms> ...` → the delayed bucket (unix seconds).
    pub fn enqueue_in(&mut self, delay: Duration, queue: &str, class: &str, args_json: &str) -> Result<u64, Error> {
        let mut cmd = redis::cmd("TQ.ENQUEUEIN");
        cmd.arg(&self.ns).arg(millis(delay)).arg(queue).arg(class).arg(args_json);
        expect_uint("TQ.ENQUEUEIN", &self.call(&cmd)?)
    }

    /// `TQ.POP <ns> <worker> <queue>... LEASE <ms>`: the next job, or None.
    /// A worker name that holds a job gets that job again.
    pub fn pop<Q: AsRef<str>>(&mut self, worker: &str, queues: &[Q], lease: Duration) -> Result<Option<Job>, Error> {
        let cmd = self.pop_command(worker, queues, lease, None);
        parse_pop_reply(worker, &self.call(&cmd)?)
    }

    /// `TQ.POP <ns> <worker> <queue>... LEASE <ms> ACK <delivery>`: completes
    /// that delivery and takes the next job, in one step. None when the queues
    /// are empty. Sent again after a lost reply, it answers with the job the
    /// first call took (or None if it took none) and completes nothing more.
    pub fn ack_and_pop<Q: AsRef<str>>(
        &mut self,
        worker: &str,
        delivery: u64,
        queues: &[Q],
        lease: Duration,
    ) -> Result<Option<Job>, Error> {
        let cmd = self.pop_command(worker, queues, lease, Some(delivery));
        parse_pop_reply(worker, &self.call(&cmd)?)
    }

    /// [`Client::ack_and_pop`] for several (worker, delivery) pairs in one
    /// round trip (a pipeline): one answer per worker, in order. An error as
    /// a whole means the connection broke: the pipeline may be sent again.
    #[allow(clippy::type_complexity)]
    pub fn ack_and_pop_each<W: AsRef<str>, Q: AsRef<str>>(
        &mut self,
        done: &[(W, u64)],
        queues: &[Q],
        lease: Duration,
    ) -> Result<Vec<Result<Option<Job>, Error>>, Error> {
        let mut p = redis::pipe();
        p.ignore_errors();
        for (w, d) in done {
            p.add_command(self.pop_command(w.as_ref(), queues, lease, Some(*d)));
        }
        let items = match self.call_pipe(&p)? {
            Value::Array(items) if items.len() == done.len() => items,
            other => return Err(Error::Protocol(format!("a pipeline of {} pops answered {other:?}", done.len()))),
        };
        Ok(done
            .iter()
            .zip(items)
            .map(|((w, _), item)| match item {
                Value::ServerError(e) => Err(Error::from_redis(&e.into())),
                v => parse_pop_reply(w.as_ref(), &v),
            })
            .collect())
    }

    fn pop_command<Q: AsRef<str>>(&self, worker: &str, queues: &[Q], lease: Duration, ack: Option<u64>) -> redis::Cmd {
        let mut cmd = redis::cmd("TQ.POP");
        cmd.arg(&self.ns).arg(worker);
        for q in queues {
            cmd.arg(q.as_ref());
        }
        cmd.arg("LEASE").arg(ttl_ms(lease));
        if let Some(d) = ack {
            cmd.arg("ACK").arg(d);
        }
        cmd
    }

    /// The delivery the worker holds now, read from its in-flight entry
    /// (None when it holds none).
    pub fn held_delivery(&mut self, worker: &str) -> Result<Option<u64>, Error> {
        let name = self.ns.clone();
        let (Ok(ns), Ok(())) =
            (tq_core::keys::Ns::new(name.as_bytes(), false), tq_core::keys::check_name("worker", worker.as_bytes()))
        else {
            return Err(Error::Config(format!("bad namespace or worker name: {name} {worker}")));
        };
        Ok(match self.call(redis::cmd("GET").arg(ns.inflight(worker.as_bytes())))? {
            Value::BulkString(raw) => tq_core::records::InFlight::decode(&raw).filter(|e| e.live()).map(|e| e.delivery),
            _ => None,
        })
    }

    /// `TQ.BPOP ... LEASE <ms> <timeout-ms>`: waits up to `timeout` (at least
    /// 1 ms) for a job. The read timeout is raised to cover the wait.
    pub fn bpop<Q: AsRef<str>>(
        &mut self,
        worker: &str,
        queues: &[Q],
        lease: Duration,
        timeout: Duration,
    ) -> Result<Option<Job>, Error> {
        let wait = millis(timeout).max(1);
        let mut cmd = redis::cmd("TQ.BPOP");
        cmd.arg(&self.ns).arg(worker);
        for q in queues {
            cmd.arg(q.as_ref());
        }
        cmd.arg("LEASE").arg(ttl_ms(lease)).arg(wait);
        let io = self.timeout;
        self.set_timeout(io + Duration::from_millis(wait));
        let reply = self.call(&cmd);
        self.set_timeout(io);
        parse_pop_reply(worker, &reply?)
    }

    /// `TQ.ACK <ns> <worker> <delivery>`.
    pub fn ack(&mut self, worker: &str, delivery: u64) -> Result<(), Error> {
        let mut cmd = redis::cmd("TQ.ACK");
        cmd.arg(&self.ns).arg(worker).arg(delivery);
        expect_ok("TQ.ACK", &self.call(&cmd)?)
    }

    /// `TQ.FAIL <ns> <worker> <delivery> <exception> <error> <backtrace> [RETRY n [BACKOFF ...]]`.
    pub fn fail(
        &mut self,
        worker: &str,
        delivery: u64,
        failure: &Failure,
        retry: Option<&RetryPolicy>,
    ) -> Result<FailOutcome, Error> {
        let mut cmd = redis::cmd("TQ.FAIL");
        cmd.arg(&self.ns).arg(worker).arg(delivery).arg(&failure.exception).arg(&failure.error);
        cmd.arg(failure.backtrace_json());
        if let Some(p) = retry {
            cmd.arg("RETRY").arg(p.attempts.max(1));
            if let Some(b) = p.backoff_arg() {
                cmd.arg("BACKOFF").arg(b);
            }
        }
        let reply = self.call(&cmd)?;
        match retry {
            None => expect_ok("TQ.FAIL", &reply).map(|()| FailOutcome::Failed),
            Some(_) => parse_fail_reply(&reply),
        }
    }

    /// `TQ.NACK <ns> <worker> <delivery> [DELAY <ms>]`: the job goes back unfinished.
    pub fn nack(&mut self, worker: &str, delivery: u64, delay: Option<Duration>) -> Result<(), Error> {
        let mut cmd = redis::cmd("TQ.NACK");
        cmd.arg(&self.ns).arg(worker).arg(delivery);
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            cmd.arg("DELAY").arg(millis(d));
        }
        expect_ok("TQ.NACK", &self.call(&cmd)?)
    }

    /// `TQ.HEARTBEAT <ns> <worker> <ms> [<delivery>]`: the worker is alive for
    /// `lease` more; with a delivery, that job's lease is renewed too. Returns
    /// the lease left on the delivery (zero without one); `NOJOB` or
    /// `LEASELOST` when the worker no longer holds it.
    pub fn heartbeat(&mut self, worker: &str, lease: Duration, delivery: Option<u64>) -> Result<Duration, Error> {
        let mut cmd = redis::cmd("TQ.HEARTBEAT");
        cmd.arg(&self.ns).arg(worker).arg(ttl_ms(lease));
        if let Some(d) = delivery {
            cmd.arg(d);
        }
        expect_uint("TQ.HEARTBEAT", &self.call(&cmd)?).map(Duration::from_millis)
    }
}

fn text(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.as_bytes()),
        _ => None,
    }
}

fn expect_uint(what: &str, v: &Value) -> Result<u64, Error> {
    match v {
        Value::Int(n) => u64::try_from(*n).map_err(|_| Error::Protocol(format!("{what} answered {n}"))),
        other => Err(Error::Protocol(format!("{what} answered {other:?}, expected an integer"))),
    }
}

/// nil or `[queue, payload, delivery, deliveries, lease-deadline-ms]`.
pub fn parse_pop_reply(worker: &str, v: &Value) -> Result<Option<Job>, Error> {
    let bad = |why: &str| Error::Protocol(format!("pop answered {v:?}: {why}"));
    match v {
        Value::Nil => Ok(None),
        Value::Array(items) => {
            let [q, p, Value::Int(d), Value::Int(n), Value::Int(until)] = items.as_slice() else {
                return Err(bad("expected [queue, payload, delivery, deliveries, lease-deadline-ms]"));
            };
            let taken = Taken {
                delivery: u64::try_from(*d).map_err(|_| bad("bad delivery id"))?,
                deliveries: u32::try_from(*n).map_err(|_| bad("bad delivery count"))?,
                lease_until_ms: u64::try_from(*until).map_err(|_| bad("bad lease deadline"))?,
            };
            let (Some(q), Some(p)) = (text(q), text(p)) else { return Err(bad("expected strings")) };
            Job::from_pop(worker, q, p, taken).map(Some).map_err(|e| bad(&e))
        }
        _ => Err(bad("expected nil or an array")),
    }
}

/// `[retry, delay-ms]` or `[failed, 0]`.
pub fn parse_fail_reply(v: &Value) -> Result<FailOutcome, Error> {
    let bad = || Error::Protocol(format!("TQ.FAIL answered {v:?}"));
    let Value::Array(items) = v else { return Err(bad()) };
    let [state, Value::Int(n)] = items.as_slice() else { return Err(bad()) };
    let n = u64::try_from(*n).map_err(|_| bad())?;
    match text(state).ok_or_else(bad)? {
        b"retry" => Ok(FailOutcome::Retry { delay: Duration::from_millis(n) }),
        b"failed" => Ok(FailOutcome::Failed),
        _ => Err(bad()),
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

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn pop_replies() {
        assert!(parse_pop_reply("w", &Value::Nil).expect("nil").is_none());
        let p = r#"{"class":"add","queue":"math","args":[1,2]}"#;
        let reply = |d: i64| Value::Array(vec![bulk("math"), bulk(p), Value::Int(d), Value::Int(3), Value::Int(9_000)]);
        let j = parse_pop_reply("w", &reply(41)).expect("ok").expect("job");
        assert_eq!((j.queue.as_str(), j.class.as_str(), j.deliveries, j.payload.as_str()), ("math", "add", 3, p));
        assert_eq!((j.delivery, j.lease_until_ms), (41, 9_000));
        for bad in [
            Value::Okay,
            Value::Array(vec![bulk("q")]),
            Value::Array(vec![bulk("math"), bulk(p), Value::Int(3)]),
            Value::Array(vec![bulk("q"), bulk("nope"), Value::Int(1), Value::Int(1), Value::Int(1)]),
            reply(-1),
        ] {
            assert!(matches!(parse_pop_reply("w", &bad), Err(Error::Protocol(_))), "{bad:?}");
        }
    }

    #[test]
    fn fail_replies() {
        let r = |s: &str, n| Value::Array(vec![bulk(s), Value::Int(n)]);
        assert_eq!(parse_fail_reply(&r("retry", 250)), Ok(FailOutcome::Retry { delay: Duration::from_millis(250) }));
        assert_eq!(parse_fail_reply(&r("failed", 0)), Ok(FailOutcome::Failed));
        assert!(parse_fail_reply(&r("what", 0)).is_err());
        assert!(parse_fail_reply(&Value::Okay).is_err());
    }

    #[test]
    fn error_codes() {
        let e = Error::Rejected { code: "NOJOB".into(), message: "worker 'w' has no job in flight".into() };
        assert!(e.is(NOJOB) && !e.is(LEASELOST));
        assert_eq!(Error::Unavailable("x".into()).code(), None);
    }

    #[test]
    fn failed_authentication_is_not_transient() {
        let e = Error::from_redis(&redis::RedisError::from((redis::ErrorKind::AuthenticationFailed, "failed")));
        assert!(!e.is_transient() && e.is("WRONGPASS"), "{e:?}");
        assert!(e.to_string().contains("authentication failed"), "{e}");
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
