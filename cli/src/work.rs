//! `tq work`: a [`Worker`] whose handler for a job of class `C` runs the
//! executable `<handlers>/C` (no shell), with the job's args JSON on stdin
//! and `TQ_QUEUE`, `TQ_CLASS`, `TQ_WORKER`, `TQ_DELIVERIES`, `TQ_NS` in its
//! environment, in a process group of its own (so a Ctrl-C at the terminal
//! reaches `tq`, not the jobs; they finish under the grace rules).
//!
//! - exit 0 → `TQ.ACK`;
//! - another exit status → `TQ.FAIL` with exception `ExitStatus`, killed by
//!   a signal → `Signal`, over its time limit → `Timeout` (its group gets
//!   SIGTERM, SIGKILL 2 s later); the error is the tail of its stderr (last
//!   4 KiB), or a description when it wrote nothing; the backtrace says what
//!   happened. The retry policy of the job's class / queue applies;
//! - no such file → `TQ.FAIL` with node-resque's `Error` / `No job defined
//!   for class "C"` (never retried); class names that are not plain file
//!   names (containing `/`, starting with `.`) are refused the same way.
//!
//! SIGINT/SIGTERM stop gracefully: no new jobs; running ones get `--grace`
//! to finish, then their process groups get SIGTERM (SIGKILL 2 s later) and
//! their jobs are given back with `TQ.NACK` (head of their queue, delivery
//! count kept); `tq` exits 0. A second signal exits at once (status
//! 128+signal): running commands are killed, nothing is reported, and their
//! jobs come back when their lease runs out.

use std::collections::HashSet;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Rules;
use crate::duration::show;
use crate::job::{no_job_defined, Job, JobError};
use crate::log::{Format, Level, Logger, Record};
use crate::sys;
use crate::worker::{Worker, WorkerOptions};

/// Bytes of a command's stderr kept for its failure record.
pub const STDERR_TAIL: usize = 4096;
/// Between SIGTERM and SIGKILL when a command is stopped.
pub const KILL_AFTER: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Options {
    pub redis_url: String,
    pub ns: String,
    pub queues: Vec<String>,
    pub concurrency: usize,
    pub handlers: PathBuf,
    /// Retry policies and time limits (command-line ones in `rules.cli`).
    pub rules: Rules,
    pub grace: Duration,
    pub name: Option<String>,
    pub lease: Option<Duration>,
    pub level: Level,
    pub format: Format,
}

/// The handler file of `class`, if `class` is a plain file name.
pub fn handler_path(dir: &Path, class: &str) -> Result<PathBuf, String> {
    if class.is_empty() || class.contains('/') || class.starts_with('.') || class.contains('\0') {
        return Err(format!(
            "class name \"{}\" cannot name a handler (it must not be empty, contain '/' or NUL, or start with '.')",
            class.escape_default()
        ));
    }
    Ok(dir.join(class))
}

/// The environment a job's command gets (besides tq's own).
pub fn handler_env(job: &Job, ns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("TQ_QUEUE", job.queue.clone()),
        ("TQ_CLASS", job.class.clone()),
        ("TQ_WORKER", job.worker.clone()),
        ("TQ_DELIVERIES", job.deliveries.to_string()),
        ("TQ_NS", ns.to_string()),
    ]
}

/// The last `cap` bytes of a stream.
#[derive(Debug, Default)]
pub struct Tail {
    buf: Vec<u8>,
    cap: usize,
    total: u64,
}

impl Tail {
    pub fn new(cap: usize) -> Tail {
        Tail { buf: Vec::new(), cap, total: 0 }
    }

    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        self.buf.extend_from_slice(data);
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
        }
    }

    /// The kept bytes as text: a character cut at the front is dropped,
    /// invalid UTF-8 replaced, trailing white space trimmed.
    pub fn text(&self) -> String {
        let mut start = 0;
        if self.total > self.buf.len() as u64 {
            while self.buf.get(start).is_some_and(|b| b & 0xC0 == 0x80) {
                start += 1;
            }
        }
        String::from_utf8_lossy(self.buf.get(start..).unwrap_or_default()).trim_end().to_string()
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Exited(i32),
    Signaled(i32),
    /// Ran over its limit and was stopped.
    TimedOut(Duration),
    /// Stopped because the worker is stopping (grace period over).
    Cancelled,
}

impl End {
    fn of(status: ExitStatus) -> End {
        match (status.code(), status.signal()) {
            (Some(c), _) => End::Exited(c),
            (None, Some(s)) => End::Signaled(s),
            (None, None) => End::Exited(-1),
        }
    }
}

/// What to report for a command that ended as `end`, having written
/// `stderr` (its tail), run as `program` for `elapsed`.
pub fn result_of(end: End, stderr: &str, program: &Path, elapsed: Duration) -> Result<(), JobError> {
    let (exception, what) = match end {
        End::Exited(0) => return Ok(()),
        End::Cancelled => return Err(JobError::requeue(None)),
        End::Exited(c) => ("ExitStatus", format!("exited with status {c}")),
        End::Signaled(s) => ("Signal", format!("was killed by {}", sys::name(s))),
        End::TimedOut(limit) => ("Timeout", format!("ran longer than its limit of {} and was stopped", show(limit))),
    };
    let line = format!("{} {what} after {}", program.display(), show(elapsed));
    let error = if stderr.is_empty() { line.clone() } else { stderr.to_string() };
    Err(JobError::fail(exception, error).with_backtrace(vec![line]))
}

/// Runs job commands; shared by the slots.
struct Runner {
    dir: PathBuf,
    ns: String,
    rules: Rules,
    logger: Arc<Logger>,
    /// Process groups of the commands running now.
    children: Arc<Mutex<HashSet<u32>>>,
}

impl Runner {
    fn run(&self, job: &Job) -> Result<(), JobError> {
        let path = handler_path(&self.dir, &job.class).map_err(|e| JobError::fatal("Error", e))?;
        match std::fs::metadata(&path) {
            Ok(m) if !m.is_dir() => {}
            Ok(_) => return Err(JobError::fatal("Error", no_job_defined(&job.class))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(JobError::fatal("Error", no_job_defined(&job.class)))
            }
            Err(e) => return Err(JobError::fail("SpawnError", format!("cannot run {}: {e}", path.display()))),
        }
        // The args are written in full before the command starts: a pipe
        // written while it runs could be cut short (EOF) by a `tq` killed
        // mid-write, and the command would run on partial args.
        let args = sys::sealed_input(job.args_json.as_bytes()).map_err(|e| {
            JobError::fail("SpawnError", format!("cannot prepare the args for {}: {e}", path.display()))
        })?;
        let mut cmd = Command::new(&path);
        cmd.envs(handler_env(job, &self.ns))
            .stdin(Stdio::from(args))
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped())
            .process_group(0);
        sys::die_with_parent(&mut cmd);
        let started = Instant::now();
        let mut child =
            cmd.spawn().map_err(|e| JobError::fail("SpawnError", format!("cannot run {}: {e}", path.display())))?;
        let pid = child.id();
        lock(&self.children).insert(pid);
        self.logger.log(
            &Record::new(
                Level::Info,
                "job:start",
                &job.worker,
                format!(
                    "start {} from {} (delivery {}): {} (pid {pid})",
                    job.class,
                    job.queue,
                    job.deliveries,
                    path.display()
                ),
            )
            .with("queue", job.queue.clone())
            .with("class", job.class.clone())
            .with("deliveries", job.deliveries)
            .with("pid", pid),
        );
        let end = self.supervise(&mut child, job, started);
        lock(&self.children).remove(&pid);
        let (end, tail) = end;
        result_of(end, &tail, &path, started.elapsed())
    }

    /// Collects the stderr tail, waits, enforces the time limit and the
    /// cancellation. stderr is read here, without a thread of its own, so a
    /// background process the command left holding the pipe costs nothing
    /// once the command is done (the pipe is closed).
    fn supervise(&self, child: &mut Child, job: &Job, started: Instant) -> (End, String) {
        let pid = child.id();
        let mut tail = Tail::new(STDERR_TAIL);
        let mut stderr = child.stderr.take().filter(|e| sys::set_nonblocking(e).is_ok());
        let limit = self.rules.timeout_for(&job.class, &job.queue);
        let end = loop {
            drain(&mut stderr, &mut tail);
            match child.try_wait() {
                Ok(Some(status)) => break End::of(status),
                Ok(None) => {}
                Err(_) => {
                    break terminate(child, pid).map(End::of).unwrap_or(End::Signaled(libc::SIGKILL));
                }
            }
            if job.is_cancelled() {
                // Finished after all while we were being told to stop?
                match terminate(child, pid) {
                    Some(status) if status.code() == Some(0) => break End::Exited(0),
                    _ => break End::Cancelled,
                }
            }
            if let Some(limit) = limit {
                if started.elapsed() >= limit {
                    terminate(child, pid);
                    break End::TimedOut(limit);
                }
            }
            std::thread::sleep(POLL);
        };
        // The stderr pipe closes when the command and everything it started
        // are gone; do not wait long for background processes holding it.
        let deadline = Instant::now() + Duration::from_millis(200);
        loop {
            drain(&mut stderr, &mut tail);
            if stderr.is_none() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (end, tail.text())
    }
}

/// Reads what the (non-blocking) pipe holds now into `tail`; drops the pipe
/// at its end.
fn drain(pipe: &mut Option<std::process::ChildStderr>, tail: &mut Tail) {
    let Some(p) = pipe else { return };
    let mut buf = [0u8; 4096];
    loop {
        match p.read(&mut buf) {
            Ok(0) => {
                *pipe = None;
                return;
            }
            Ok(n) => tail.push(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => {
                *pipe = None;
                return;
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// SIGTERM to the command's process group, SIGKILL after [`KILL_AFTER`];
/// reaps it.
fn terminate(child: &mut Child, pid: u32) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = sys::kill_group(pid, libc::SIGTERM);
    let deadline = Instant::now() + KILL_AFTER;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(POLL);
    }
    if sys::kill_group(pid, libc::SIGKILL).is_err() {
        let _ = child.kill();
    }
    child.wait().ok()
}

/// Runs `tq work` until stopped; returns the exit status.
pub fn run(opts: Options) -> i32 {
    let logger = Arc::new(Logger::stderr(opts.level, opts.format));
    let fatal = |msg: String| {
        logger.log(&Record::new(Level::Error, "worker:error", "", format!("tq work: {msg}")));
        1
    };
    match std::fs::metadata(&opts.handlers) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return fatal(format!("--handlers {}: not a directory", opts.handlers.display())),
        Err(e) => return fatal(format!("--handlers {}: {e}", opts.handlers.display())),
    }
    let mut wopts = WorkerOptions::new(&opts.redis_url, &opts.ns, &opts.queues);
    wopts.concurrency = opts.concurrency;
    wopts.grace = opts.grace;
    wopts.cancel_wait = KILL_AFTER + Duration::from_secs(3);
    wopts.lease = opts.lease;
    wopts.rules = opts.rules.clone();
    if let Some(n) = &opts.name {
        wopts.name = n.clone();
    }
    let children = Arc::new(Mutex::new(HashSet::new()));
    let runner = Runner {
        dir: opts.handlers.clone(),
        ns: opts.ns.clone(),
        rules: opts.rules.clone(),
        logger: logger.clone(),
        children: children.clone(),
    };
    let mut worker = Worker::new(wopts);
    {
        let logger = logger.clone();
        worker.on_event(move |e| logger.event(e));
    }
    worker.fallback(move |job| runner.run(job));

    if let Err(e) = sys::install() {
        logger.log(&Record::new(Level::Warning, "worker:signals", "", format!("cannot catch SIGINT/SIGTERM: {e}")));
    }
    let stop = worker.stop_handle();
    // The exit status after a second signal (0: none came).
    let exit_code = Arc::new(AtomicI32::new(0));
    {
        let logger = logger.clone();
        let exit_now = exit_code.clone();
        let _ = std::thread::Builder::new().name("tq-signals".into()).spawn(move || {
            let mut caught = 0;
            loop {
                std::thread::sleep(Duration::from_millis(20));
                let Some(sig) = sys::take() else { continue };
                caught += 1;
                if caught == 1 {
                    logger.log(&Record::new(
                        Level::Notice,
                        "worker:signal",
                        "",
                        format!("caught {}: stopping gracefully (send it again to stop at once)", sys::name(sig)),
                    ));
                    stop.stop();
                    continue;
                }
                let pids: Vec<u32> = lock(&children).iter().copied().collect();
                logger.log(&Record::new(
                    Level::Warning,
                    "worker:signal",
                    "",
                    format!(
                        "caught {} again: exiting now; killed {} running command(s); their jobs come back when \
                         their lease runs out",
                        sys::name(sig),
                        pids.len()
                    ),
                ));
                // Set first: the main thread may return as soon as it sees
                // the stop, and must exit with this code too.
                exit_now.store(128 + sig, Ordering::SeqCst);
                stop.stop_now();
                for pid in pids {
                    let _ = sys::kill_group(pid, libc::SIGKILL);
                }
                std::process::exit(128 + sig);
            }
        });
    }
    let result = worker.run();
    match exit_code.load(Ordering::SeqCst) {
        0 => {}
        code => {
            // The signal thread is killing the running commands and then
            // exits the process; returning now could leave them running.
            std::thread::sleep(Duration::from_secs(5));
            return code;
        }
    }
    match result {
        Ok(_) => 0,
        Err(e) => fatal(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handler_paths() {
        let d = Path::new("/h");
        assert_eq!(handler_path(d, "Email"), Ok(PathBuf::from("/h/Email")));
        assert_eq!(handler_path(d, "send-mail.v2"), Ok(PathBuf::from("/h/send-mail.v2")));
        for bad in ["", "a/b", "../x", ".hidden", ".", "..", "/etc/passwd", "a\0b"] {
            assert!(handler_path(d, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_of_a_job() {
        let j = Job::from_pop(
            "h:1+3",
            b"low",
            br#"{"class":"C","queue":"low","args":[]}"#,
            crate::job::Taken { deliveries: 2, ..Default::default() },
        )
        .expect("job");
        let env = handler_env(&j, "resque");
        assert_eq!(
            env,
            [
                ("TQ_QUEUE", "low".to_string()),
                ("TQ_CLASS", "C".to_string()),
                ("TQ_WORKER", "h:1+3".to_string()),
                ("TQ_DELIVERIES", "2".to_string()),
                ("TQ_NS", "resque".to_string()),
            ]
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::new(8);
        t.push(b"hello ");
        assert_eq!(t.text(), "hello");
        t.push(b"world\n");
        assert_eq!(t.text(), "o world");
        // A multi-byte character cut at the front is dropped, not mangled.
        let mut t = Tail::new(5);
        t.push("xé1234".as_bytes()); // é is 2 bytes: keep "\xa9" + "1234"
        assert_eq!(t.text(), "1234");
        let mut t = Tail::new(4096);
        t.push(&vec![b'a'; 10_000]);
        assert_eq!(t.text().len(), 4096);
    }

    #[test]
    fn results() {
        let p = Path::new("/h/C");
        let d = Duration::from_millis(1500);
        assert_eq!(result_of(End::Exited(0), "noise", p, d), Ok(()));
        assert_eq!(result_of(End::Cancelled, "", p, d), Err(JobError::requeue(None)));
        let f = |r: Result<(), JobError>| match r {
            Err(JobError::Failed(f)) => f,
            other => panic!("{other:?}"),
        };
        let x = f(result_of(End::Exited(3), "boom", p, d));
        assert_eq!((x.exception.as_str(), x.error.as_str()), ("ExitStatus", "boom"));
        assert_eq!(x.backtrace, ["/h/C exited with status 3 after 1s500ms"]);
        let x = f(result_of(End::Exited(3), "", p, d));
        assert_eq!(x.error, "/h/C exited with status 3 after 1s500ms");
        let x = f(result_of(End::Signaled(libc::SIGSEGV), "", p, d));
        assert_eq!(x.exception, "Signal");
        assert!(x.error.contains("SIGSEGV"), "{}", x.error);
        let x = f(result_of(End::TimedOut(Duration::from_secs(1)), "", p, d));
        assert_eq!(x.exception, "Timeout");
        assert!(x.error.contains("limit of 1s and"), "{}", x.error);
    }
}
