//! `tq paired`: run a command under an expiring pair lock, as
//! redis-paired-worker does. Two (or more) processes, possibly on different
//! hosts, contend for one lock per task: the one that acquires it runs the
//! command and renews the lock while it runs; the others stand by, polling,
//! and take over if the holder fails (reports FAIL) or dies (its lock
//! expires). A completed task leaves the lock `done` for a full ttl, so a
//! standby polling meanwhile exits without running it again.

use std::fmt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::client::{self, Client, LockState, Report};
use crate::duration::{millis, show};
use crate::sys;

/// Exit status when the lock was lost while the command ran (EX_TEMPFAIL).
pub const EXIT_LOST: i32 = 75;
/// Exit status for errors of tq itself (bad arguments to the module, ...).
pub const EXIT_ERROR: i32 = 1;

/// How often a running command and caught signals are checked.
const POLL: Duration = Duration::from_millis(20);
/// First and longest pause between attempts while Redis is unreachable.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub redis_url: String,
    pub ns: String,
    /// The lock's name (one per task).
    pub lock: String,
    /// How long the lock lasts without a renewal; renewed every ttl/3.
    pub ttl: Duration,
    /// Pause after the first `held` answer.
    pub first_attempt: Duration,
    /// Pause after each later `held` answer.
    pub other_attempt: Duration,
    /// Who holds the lock: `<hostname>:<pid>` unless given.
    pub owner: String,
    /// After a lost lock, how long the command has between SIGTERM and SIGKILL.
    pub grace: Duration,
}

impl Options {
    /// Options with the defaults of the command line.
    pub fn new(redis_url: &str, ns: &str, lock: &str, ttl: Duration) -> Options {
        Options {
            redis_url: redis_url.to_string(),
            ns: ns.to_string(),
            lock: lock.to_string(),
            ttl,
            first_attempt: Duration::from_millis(10),
            other_attempt: Duration::from_millis(30),
            owner: default_owner(),
            grace: Duration::from_secs(5),
        }
    }
}

/// `<hostname>:<pid>`.
pub fn default_owner() -> String {
    format!("{}:{}", tq_client::host::hostname(), std::process::id())
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran under the lock and exited with `code` (128+signal if
    /// a signal ended it). `interrupted` is the signal tq caught and
    /// forwarded meanwhile; `reported` is the report filed (None if it could
    /// not be).
    Ran { token: u64, code: i32, interrupted: Option<i32>, reported: Option<Report> },
    /// The task was already completed: nothing ran.
    AlreadyDone,
    /// The lock was lost while the command ran; the command was stopped and
    /// nothing was reported.
    Lost { token: u64 },
    /// A signal arrived before the lock was acquired: nothing ran.
    Interrupted { signal: i32 },
}

impl Outcome {
    /// The exit status `tq paired` ends with.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Ran { code: 0, interrupted: Some(sig), .. } => 128 + sig,
            Outcome::Ran { code, .. } => *code,
            Outcome::AlreadyDone => 0,
            Outcome::Lost { .. } => EXIT_LOST,
            Outcome::Interrupted { signal } => 128 + signal,
        }
    }
}

#[derive(Debug)]
pub enum Error {
    /// Nothing to run, a zero ttl, ...
    Usage(String),
    /// Redis answered with an error that retrying will not fix.
    Redis(client::Error),
    /// The command could not be started (the lock was reported FAIL).
    Spawn { program: String, source: std::io::Error },
    /// Waiting for the command failed.
    Wait(std::io::Error),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            Error::Spawn { .. } => 126,
            _ => EXIT_ERROR,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m}"),
            Error::Redis(e) => write!(f, "{e}"),
            Error::Spawn { program, source } => write!(f, "cannot run '{program}': {source}"),
            Error::Wait(e) => write!(f, "cannot wait for the command: {e}"),
        }
    }
}

impl std::error::Error for Error {}

fn log(msg: &str) {
    eprintln!("tq paired: {msg}");
}

/// Exponential pauses between attempts while Redis is unavailable.
struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff { next: BACKOFF_MIN.min(max), max }
    }

    fn step(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }
}

/// Sleeps `d` in short slices; returns early with a caught signal.
fn sleep_or_signal(d: Duration) -> Option<i32> {
    let end = Instant::now() + d;
    loop {
        if let Some(sig) = sys::take() {
            return Some(sig);
        }
        let now = Instant::now();
        if now >= end {
            return None;
        }
        std::thread::sleep((end - now).min(POLL));
    }
}

/// I/O timeout for Redis calls: a third of the ttl, between 50ms and 10s.
fn io_timeout(ttl: Duration) -> Duration {
    (ttl / 3).clamp(Duration::from_millis(50), Duration::from_secs(10))
}

/// Runs `cmd` (program and arguments) under the pair lock `opts.lock`:
/// waits while another owner holds it, exits at once if the task is done,
/// else runs it, renewing the lock every ttl/3, and reports OK (status 0) or
/// FAIL. Log lines go to stderr. Call [`sys::install`] first for SIGINT and
/// SIGTERM to be forwarded to the command instead of killing tq.
pub fn run(opts: &Options, cmd: &[String]) -> Result<Outcome, Error> {
    let Some((program, args)) = cmd.split_first() else {
        return Err(Error::Usage("no command to run (give it after `--`)".into()));
    };
    if opts.ttl.is_zero() {
        return Err(Error::Usage("the ttl must be at least 1ms".into()));
    }
    if opts.lock.is_empty() || opts.owner.is_empty() {
        return Err(Error::Usage("the lock and owner names must not be empty".into()));
    }
    let mut client = Client::new(&opts.redis_url, &opts.ns, io_timeout(opts.ttl)).map_err(Error::Redis)?;
    let (lock, owner) = (&opts.lock, &opts.owner);
    let mut held_answers = 0u64;
    let mut backoff = Backoff::new(BACKOFF_MAX);
    let mut failing = false;
    loop {
        if let Some(sig) = sys::take() {
            log(&format!("caught {} while waiting for lock '{lock}' as '{owner}'; nothing ran", sys::name(sig)));
            return Ok(Outcome::Interrupted { signal: sig });
        }
        let sent = Instant::now();
        let pause = match client.lock(lock, owner, opts.ttl) {
            Ok(state) => {
                if failing {
                    log(&format!("redis at {} answers again", opts.redis_url));
                    failing = false;
                    backoff = Backoff::new(BACKOFF_MAX);
                }
                match state {
                    LockState::Acquired { token } => {
                        return run_locked(opts, &mut client, token, sent, program, args);
                    }
                    LockState::Done => {
                        log(&format!("task of lock '{lock}' was already completed; not running it (owner '{owner}')"));
                        return Ok(Outcome::AlreadyDone);
                    }
                    LockState::Held { ms_left } => {
                        if held_answers == 0 {
                            log(&format!(
                                "lock '{lock}' is held by another owner ({ms_left}ms left); '{owner}' stands by"
                            ));
                        }
                        held_answers += 1;
                        if held_answers == 1 {
                            opts.first_attempt
                        } else {
                            opts.other_attempt
                        }
                    }
                }
            }
            Err(e) if e.is_transient() => {
                let pause = backoff.step();
                log(&format!(
                    "cannot take lock '{lock}' as '{owner}': {e}; retrying in {} ({})",
                    show(pause),
                    opts.redis_url
                ));
                failing = true;
                pause
            }
            Err(e) => {
                log(&format!("TQ.LOCK for lock '{lock}' as '{owner}' failed: {e}"));
                return Err(Error::Redis(e));
            }
        };
        if let Some(sig) = sleep_or_signal(pause) {
            log(&format!("caught {} while waiting for lock '{lock}' as '{owner}'; nothing ran", sys::name(sig)));
            return Ok(Outcome::Interrupted { signal: sig });
        }
    }
}

fn status_code(status: ExitStatus) -> i32 {
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => EXIT_ERROR,
    }
}

fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(sig)) => format!("was killed by {}", sys::name(sig)),
        (None, None) => format!("ended ({status})"),
    }
}

/// The lock is ours with `token`, taken by a call sent at `acquired`. Our
/// idea of its expiry counts the ttl from before the call that took or last
/// renewed it, so it is never later than the server's.
fn run_locked(
    opts: &Options,
    client: &mut Client,
    token: u64,
    acquired: Instant,
    program: &str,
    args: &[String],
) -> Result<Outcome, Error> {
    let (lock, owner, ttl) = (&opts.lock, &opts.owner, opts.ttl);
    let mut expires = acquired + ttl;
    log(&format!("acquired lock '{lock}' as '{owner}' (token {token}, ttl {})", show(ttl)));
    let mut command = Command::new(program);
    command.args(args).process_group(0);
    sys::die_with_parent(&mut command);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(source) => {
            log(&format!("cannot run '{program}': {source}"));
            report(opts, client, token, expires, Report::Fail);
            return Err(Error::Spawn { program: program.to_string(), source });
        }
    };
    let pid = child.id();
    log(&format!("running '{}' (pid {pid}) under lock '{lock}' as '{owner}' (token {token})", shown(program, args)));

    let interval = (ttl / 3).max(Duration::from_millis(1));
    let retry = (ttl / 10).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut next_renew = acquired + interval;
    let mut renew_failing = false;
    let mut interrupted = None;
    let status = loop {
        while let Some(sig) = sys::take() {
            log(&format!(
                "caught {}; forwarding it to process group {pid} (lock '{lock}', token {token})",
                sys::name(sig)
            ));
            if let Err(e) = sys::kill_group(pid, sig) {
                log(&format!("cannot signal process group {pid}: {e}"));
            }
            interrupted = Some(sig);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                log(&format!("cannot wait for pid {pid}: {e}; stopping it"));
                stop(&mut child, opts.grace);
                report(opts, client, token, expires, Report::Fail);
                return Err(Error::Wait(e));
            }
        }
        let now = Instant::now();
        if now >= expires {
            log(&format!(
                "LOST lock '{lock}' as '{owner}' (token {token}): it could not be renewed before it expired; \
                 stopping pid {pid}"
            ));
            stop(&mut child, opts.grace);
            return Ok(Outcome::Lost { token });
        }
        if now >= next_renew {
            client.set_timeout(io_timeout(ttl).min(expires - now));
            match client.renew(lock, owner, token, ttl) {
                Ok(()) => {
                    if renew_failing {
                        log(&format!("renewed lock '{lock}' as '{owner}' (token {token}) again"));
                        renew_failing = false;
                    }
                    expires = now + ttl;
                    next_renew = now + interval;
                }
                Err(e) if e.is_refusal() => {
                    log(&format!(
                        "LOST lock '{lock}' as '{owner}' (token {token}): renewal refused: {e}; stopping pid {pid}"
                    ));
                    stop(&mut child, opts.grace);
                    return Ok(Outcome::Lost { token });
                }
                Err(e) => {
                    let left = expires.saturating_duration_since(Instant::now());
                    log(&format!(
                        "cannot renew lock '{lock}' as '{owner}' (token {token}): {e}; retrying (expires in {}ms)",
                        millis(left)
                    ));
                    renew_failing = true;
                    next_renew = Instant::now() + retry;
                }
            }
        }
        let now = Instant::now();
        let until = next_renew.min(expires).saturating_duration_since(now);
        std::thread::sleep(until.clamp(Duration::from_millis(1), POLL));
    };

    let code = status_code(status);
    let result = if code == 0 && interrupted.is_none() { Report::Ok } else { Report::Fail };
    log(&format!("command (pid {pid}) {} (lock '{lock}', token {token})", describe(status)));
    let reported = report(opts, client, token, expires, result).then_some(result);
    Ok(Outcome::Ran { token, code, interrupted, reported })
}

/// Files `TQ.UNLOCK ... OK|FAIL`, retrying while Redis is unavailable and
/// the lock has not expired. True when filed.
fn report(opts: &Options, client: &mut Client, token: u64, expires: Instant, result: Report) -> bool {
    let (lock, owner) = (&opts.lock, &opts.owner);
    let mut backoff = Backoff::new((opts.ttl / 4).max(Duration::from_millis(10)));
    loop {
        let left = expires.saturating_duration_since(Instant::now());
        client.set_timeout(io_timeout(opts.ttl).min(left.max(Duration::from_millis(50))));
        match client.unlock(lock, owner, token, result) {
            Ok(()) => {
                match result {
                    Report::Ok => {
                        log(&format!("reported OK: task of lock '{lock}' done (owner '{owner}', token {token})"))
                    }
                    Report::Fail => log(&format!(
                        "reported FAIL: lock '{lock}' released for takeover (owner '{owner}', token {token})"
                    )),
                }
                return true;
            }
            Err(e) if e.is_transient() => {
                let left = expires.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    log(&format!(
                        "could not report {} for lock '{lock}' as '{owner}' (token {token}): {e}; \
                         the lock expires on its own",
                        result.as_str()
                    ));
                    return false;
                }
                let pause = backoff.step().min(left);
                log(&format!(
                    "cannot report {} for lock '{lock}' as '{owner}' (token {token}): {e}; retrying in {}",
                    result.as_str(),
                    show(pause)
                ));
                std::thread::sleep(pause);
            }
            Err(e) => {
                log(&format!(
                    "could not report {} for lock '{lock}' as '{owner}' (token {token}): {e}",
                    result.as_str()
                ));
                return false;
            }
        }
    }
}

/// SIGTERM to the command's process group, SIGKILL after `grace`; reaps it.
fn stop(child: &mut Child, grace: Duration) {
    let pid = child.id();
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    if let Err(e) = sys::kill_group(pid, libc::SIGTERM) {
        log(&format!("cannot send SIGTERM to process group {pid}: {e}"));
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            log(&format!("command (pid {pid}) {}", describe(status)));
            return;
        }
        std::thread::sleep(POLL);
    }
    log(&format!("command (pid {pid}) still runs after {}; sending SIGKILL to its process group", show(grace)));
    if sys::kill_group(pid, libc::SIGKILL).is_err() {
        let _ = child.kill();
    }
    let _ = child.wait();
}

fn shown(program: &str, args: &[String]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(Outcome::AlreadyDone.exit_code(), 0);
        assert_eq!(Outcome::Lost { token: 3 }.exit_code(), EXIT_LOST);
        assert_eq!(Outcome::Interrupted { signal: 15 }.exit_code(), 143);
        let ran = |code, interrupted| Outcome::Ran { token: 1, code, interrupted, reported: None };
        assert_eq!(ran(0, None).exit_code(), 0);
        assert_eq!(ran(3, None).exit_code(), 3);
        assert_eq!(ran(130, Some(2)).exit_code(), 130);
        // The command ignored the forwarded signal and succeeded: the lock
        // was reported FAIL, so tq does not claim success.
        assert_eq!(ran(0, Some(15)).exit_code(), 143);
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(500));
        let steps: Vec<u64> = (0..5).map(|_| millis(b.step())).collect();
        assert_eq!(steps, [100, 200, 400, 500, 500]);
    }

    #[test]
    fn io_timeout_is_bounded() {
        assert_eq!(io_timeout(Duration::from_millis(30)), Duration::from_millis(50));
        assert_eq!(io_timeout(Duration::from_millis(600)), Duration::from_millis(200));
        assert_eq!(io_timeout(Duration::from_secs(3600)), Duration::from_secs(10));
    }

    #[test]
    fn no_command_is_a_usage_error() {
        let opts = Options::new("redis://127.0.0.1:1/", "resque", "l", Duration::from_secs(1));
        assert!(matches!(run(&opts, &[]), Err(Error::Usage(_))));
        let zero = Options { ttl: Duration::ZERO, ..opts };
        assert!(matches!(run(&zero, &["true".to_string()]), Err(Error::Usage(_))));
    }

    #[test]
    fn default_owner_is_host_and_pid() {
        let o = default_owner();
        assert!(o.ends_with(&format!(":{}", std::process::id())), "{o}");
        assert!(o.len() > 2);
    }
}
