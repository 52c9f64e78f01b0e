//! The `tq` command line. `main.rs` parses it and dispatches each
//! subcommand to its library module.

use std::time::Duration;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::config::parse_backoff;
use crate::duration::parse_duration;

/// Used when neither `--redis`, `TQ_REDIS_URL` nor `REDIS_URL` is set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Parser)]
#[command(
    name = "tq",
    version,
    about = "Client for the tq Redis module: Resque-style job queues and pair locks",
    after_help = "Durations (--in, --age, --lease, --timeout, --backoff, ...): 250ms, 90s, 1h30m, 2d (a day is 24h), \
                  1.5s; a bare number is milliseconds. Times (--at): unix milliseconds, or RFC 3339 with `T` or a \
                  space, seconds and zone optional, UTC when no zone is given: 2030-01-01T10:00:00Z, \
                  '2030-01-01 10:00', '2030-01-01 11:00+01:00'. Printed durations use the same units."
)]
pub struct Cli {
    /// Redis server to use [env: TQ_REDIS_URL, then REDIS_URL] [default: redis://127.0.0.1:6379]
    #[arg(long, global = true, value_name = "URL", env = "TQ_REDIS_URL", hide_env = true)]
    pub redis: Option<String>,

    /// Key namespace (node-resque's prefix)
    #[arg(long, global = true, value_name = "NAMESPACE", default_value = "resque")]
    pub ns: String,

    #[command(subcommand)]
    pub command: Cmd,
}

impl Cli {
    /// `--redis`, else `TQ_REDIS_URL` (clap reads it), else `REDIS_URL`,
    /// else the default.
    pub fn redis_url(&self) -> String {
        self.redis
            .clone()
            .or_else(|| std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_string())
    }
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run a command under an expiring pair lock: one process runs the task,
    /// the others stand by and take over if it fails or dies
    #[command(after_help = "Exit status: the command's (128+N if signal N ended it); 0 without running it when the \
                      task was already done; 75 when the lock was lost while it ran (it is then stopped); 1 on \
                      errors of tq itself; 127/126 when the command cannot be started.")]
    Paired(PairedArgs),

    /// Run jobs: each job of class C runs the executable DIR/C with its args JSON on stdin
    #[command(after_help = "Each job runs `<handlers>/<class>` (no shell) in its own process group, with the job's \
                      args JSON on stdin and TQ_QUEUE, TQ_CLASS, TQ_WORKER, TQ_DELIVERIES, TQ_NS set. Exit 0 \
                      acknowledges the job; another status, a signal or the time limit fails it (exception \
                      ExitStatus, Signal or Timeout; error: the tail of its stderr), retried per --retry/--backoff \
                      or the retry config. SIGINT/SIGTERM: no new jobs, running ones get --grace, then are \
                      killed and given back (TQ.NACK); exit 0. A second signal exits at once; the jobs then come \
                      back when their lease runs out.")]
    Work(WorkArgs),

    /// Add a job to a queue (now, at a time, or after a delay) and print the module's reply
    #[command(after_help = "Prints the queue's length after the push, or with --at/--in the delayed bucket (unix \
                      seconds) the job was filed under. Exit status: 0 success; 1 Redis unreachable or a refusal; \
                      2 usage error; 3 with --unique, an identical job was waiting (nothing enqueued).")]
    Enqueue(EnqueueArgs),

    /// Serve the operator's dashboard and /metrics (Prometheus) over HTTP
    #[command(after_help = "Listens on loopback by default; another address needs --token-file (the token is \
                      then required: `Authorization: Bearer <token>`, or the cookie the /login form sets). \
                      Exit status: 1 when it cannot start.")]
    Web(WebArgs),

    #[command(flatten)]
    Inspect(InspectCmd),

    #[command(flatten)]
    Manage(crate::manage::ManageCmd),
}

#[derive(Debug, Args)]
pub struct WebArgs {
    /// Address to listen on (host:port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub listen: String,

    /// Show everything, change nothing: write buttons are hidden and every write is refused (403)
    #[arg(long)]
    pub read_only: bool,

    /// File holding the access token (at least 16 printable characters); required off loopback
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<std::path::PathBuf>,
}

const EXIT_STATUS: &str = "Exit status: 0 success; 1 Redis unreachable or a refusal (module not loaded, ACL, wrong \
                           key type); 2 usage error.";

const EXIT_STATUS_MATCH: &str = "Exit status: 0 success; 1 Redis unreachable or a refusal (module not loaded, ACL, \
                                 wrong key type); 2 usage error; 3 nothing matched (no record or worker was \
                                 affected).";

/// The operator subcommands: each a thin layer over the module's inspection
/// and management commands (`tq_cli::inspect`). Tables by default,
/// `--json` for scripts (times as unix ms).
#[derive(Debug, Subcommand)]
pub enum InspectCmd {
    /// Processed and failed counters, in all and per registered worker (TQ.STATS)
    #[command(after_help = EXIT_STATUS)]
    Stats(OutputArgs),

    /// Queues with their lengths, sorted by name (SMEMBERS <ns>:queues, LLEN each)
    #[command(after_help = EXIT_STATUS)]
    Queues(OutputArgs),

    /// Jobs waiting in a queue, head first (LRANGE)
    #[command(after_help = EXIT_STATUS)]
    Queued(QueuedArgs),

    /// Delayed jobs: times with job counts (TQ.TIMESTAMPS), one time's jobs (--at), every job (--jobs), or
    /// when one job is due (--job)
    #[command(after_help = EXIT_STATUS)]
    Delayed(DelayedArgs),

    /// Registered workers and the jobs they run (TQ.WORKERS, every page)
    #[command(after_help = EXIT_STATUS)]
    Workers(OutputArgs),

    /// Failed jobs, oldest first, with the ids retry/remove take (TQ.FAILED)
    #[command(after_help = EXIT_STATUS)]
    Failed(FailedArgs),

    /// Enqueue failed jobs again (as node-resque's retryAndRemoveFailed) and remove their records
    /// (TQ.FAILRETRY, batch by batch)
    #[command(after_help = EXIT_STATUS_MATCH)]
    Retry(SweepArgs),

    /// Remove failed-job records (TQ.FAILREMOVE, batch by batch)
    #[command(after_help = EXIT_STATUS_MATCH)]
    Remove(SweepArgs),

    /// Force-clean workers: those whose job started more than --age ago (TQ.CLEANWORKERS), or one by name
    /// (TQ.FORCECLEAN); a job they held goes to the failed list
    #[command(
        after_help = "Exit status: 0 success (with --age, also when no worker was that old); 1 Redis unreachable \
                      or a refusal; 2 usage error; 3 with --worker, no such worker (not registered and holding no \
                      job)."
    )]
    CleanWorkers(CleanWorkersArgs),

    /// Everything at once: queues, workers, counters, leader, delayed, in flight, failed (TQ.DETAILS)
    #[command(after_help = EXIT_STATUS)]
    Details(OutputArgs),

    /// Locks of the namespace: node-resque's queue and job locks, tq's pair locks (TQ.LOCKS, to the end)
    #[command(after_help = EXIT_STATUS)]
    Locks(OutputArgs),

    /// Job metrics per queue and class (processed, failed, run and wait times) and each queue's latency
    #[command(after_help = EXIT_STATUS)]
    Metrics(OutputArgs),
}

impl InspectCmd {
    /// The subcommand's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            InspectCmd::Stats(_) => "stats",
            InspectCmd::Queues(_) => "queues",
            InspectCmd::Queued(_) => "queued",
            InspectCmd::Delayed(_) => "delayed",
            InspectCmd::Workers(_) => "workers",
            InspectCmd::Failed(_) => "failed",
            InspectCmd::Retry(_) => "retry",
            InspectCmd::Remove(_) => "remove",
            InspectCmd::CleanWorkers(_) => "clean-workers",
            InspectCmd::Details(_) => "details",
            InspectCmd::Locks(_) => "locks",
            InspectCmd::Metrics(_) => "metrics",
        }
    }
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print one JSON document (times as unix ms) instead of a table
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct QueuedArgs {
    /// The queue
    pub queue: String,

    /// Position of the first job shown (0 = the head)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: u64,

    /// Jobs shown at most
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub count: u64,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("mode").args(["at", "jobs", "job"]).multiple(false)))]
pub struct DelayedArgs {
    /// The jobs filed for this time (its one-second bucket): unix ms or RFC 3339, `T` or a space, seconds and zone
    /// optional, UTC when no zone: '2030-01-01 10:00' (TQ.DELAYEDAT)
    #[arg(long, value_name = "TIME", value_parser = crate::duration::parse_time)]
    pub at: Option<u64>,

    /// Every delayed job, time by time (TQ.ALLDELAYED)
    #[arg(long)]
    pub jobs: bool,

    /// The times a job is filed for (TQ.SCHEDULEDAT); ARGS-JSON defaults to []
    #[arg(long, num_args = 2..=3, value_names = ["QUEUE", "CLASS", "ARGS-JSON"])]
    pub job: Option<Vec<String>>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct FailedArgs {
    /// Position of the first record shown (0 = the oldest)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub offset: u64,

    /// Records shown at most
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub count: u64,

    #[command(flatten)]
    pub output: OutputArgs,
}

/// How `tq retry` / `tq remove` report progress on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressArg {
    /// A bar when stderr is a terminal, else a line every 2 s
    Auto,
    /// A bar redrawn in place
    Bar,
    /// A line every 2 s
    Plain,
    /// Nothing
    None,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("filter").args(["id", "class", "queue", "exception", "all"]).required(true).multiple(true)))]
pub struct SweepArgs {
    /// Only the record with this id (as `tq failed` shows it)
    #[arg(long, value_name = "ID")]
    pub id: Option<String>,

    /// Only jobs of this class
    #[arg(long, value_name = "CLASS")]
    pub class: Option<String>,

    /// Only jobs of this queue
    #[arg(long, value_name = "QUEUE")]
    pub queue: Option<String>,

    /// Only records with this exception
    #[arg(long, value_name = "EXCEPTION")]
    pub exception: Option<String>,

    /// Every record (needed when no filter is given; filters combine, all must match)
    #[arg(long, conflicts_with_all = ["id", "class", "queue", "exception"])]
    pub all: bool,

    /// Records looked at per call (each call is one atomic step on the server)
    #[arg(long, value_name = "N", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub batch: u64,

    /// Progress report on stderr
    #[arg(long, value_name = "WHEN", value_enum, default_value_t = ProgressArg::Auto)]
    pub progress: ProgressArg,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("which").args(["age", "worker"]).required(true).multiple(false)))]
pub struct CleanWorkersArgs {
    /// Every worker whose current job started longer ago than this: 90s, 10m, 1h30m, 2d; a bare number is ms
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub age: Option<Duration>,

    /// This worker (its registration, records, counters; a job it holds goes to failed)
    #[arg(long, value_name = "NAME")]
    pub worker: Option<String>,

    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct WorkArgs {
    /// Queues in priority order, comma-separated (`*` = every queue)
    #[arg(long, value_name = "Q1,Q2", value_delimiter = ',', required = true)]
    pub queues: Vec<String>,

    /// Jobs run at the same time (one worker name each: <name>+1 .. <name>+N)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Directory of the job commands: a job of class C runs DIR/C
    #[arg(long, value_name = "DIR")]
    pub handlers: std::path::PathBuf,

    /// Time limit of a job (0 = none); per class/queue in the retry config
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// After SIGINT/SIGTERM, how long running jobs may go on before they are stopped and given back
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
    pub grace: Duration,

    /// Attempts in all for a failing job, the first included (0 or 1 = no retry)
    #[arg(long, value_name = "N")]
    pub retry: Option<u32>,

    /// Delays before the 2nd, 3rd, ... attempt, the last repeated (needs --retry) [default: 5s]
    #[arg(long, value_name = "D1,D2,...", value_parser = parse_backoff_arg, requires = "retry")]
    pub backoff: Option<BackoffList>,

    /// JSON file of retry/backoff/timeout per class and queue (see the docs of tq_client::config)
    #[arg(long, value_name = "FILE")]
    pub retry_config: Option<std::path::PathBuf>,

    /// Worker name base [default: <hostname>:<pid>]; at most one ':'
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Lease to keep on running jobs [default: the module's tq.lease-ms]
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub lease: Option<Duration>,

    /// Log errors only
    #[arg(long, short, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Log debug lines too
    #[arg(long, short)]
    pub verbose: bool,

    /// Log one JSON object per line
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnqueueArgs {
    /// Queue to add the job to
    pub queue: String,
    /// The job's class (the handler that runs it)
    pub class: String,
    /// The job's arguments as JSON (a non-array is wrapped in one) [default: []]
    #[arg(value_name = "ARGS-JSON")]
    pub args: Option<String>,

    /// Run at this time: unix ms or RFC 3339, `T` or a space, seconds and zone optional, UTC when no zone:
    /// 2030-01-01T10:00:00Z, '2030-01-01 10:00'
    #[arg(long, value_name = "TIME", value_parser = crate::duration::parse_time, conflicts_with = "in_")]
    pub at: Option<u64>,

    /// Run after this delay: 250ms, 90s, 1h30m, 2d; a bare number is ms
    #[arg(long = "in", id = "in_", value_name = "DURATION", value_parser = parse_duration)]
    pub in_: Option<Duration>,

    /// Only if no identical job is waiting (node-resque's QueueLock plugin: TQ.ENQUEUE ... UNIQUE)
    #[arg(long, conflicts_with_all = ["at", "in_"])]
    pub unique: bool,

    /// How long the QueueLock of --unique lasts at most [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl, requires = "unique")]
    pub unique_ttl: Option<Duration>,
}

/// A parsed `--backoff` (one clap value holding a list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackoffList(pub Vec<Duration>);

fn parse_backoff_arg(s: &str) -> Result<BackoffList, String> {
    parse_backoff(s).map(BackoffList)
}

#[derive(Debug, Args)]
pub struct PairedArgs {
    /// Lock name: one per task, shared by the processes that pair on it
    #[arg(long, value_name = "NAME")]
    pub lock: String,

    /// How long the lock lasts without renewal (renewed every ttl/3 while the command runs): 30s, 1500ms, 2m, 1h30m; a
    /// bare number is ms
    #[arg(long, value_name = "DURATION", value_parser = parse_ttl)]
    pub ttl: Duration,

    /// Pause before the first retry while another owner holds the lock
    #[arg(long, value_name = "DURATION", default_value = "10ms", value_parser = parse_duration)]
    pub first_attempt: Duration,

    /// Pause between later retries
    #[arg(long, value_name = "DURATION", default_value = "30ms", value_parser = parse_duration)]
    pub other_attempt: Duration,

    /// Lock owner name [default: <hostname>:<pid>]
    #[arg(long, value_name = "NAME")]
    pub owner: Option<String>,

    /// After losing the lock, time the command gets between SIGTERM and SIGKILL
    #[arg(long, value_name = "DURATION", default_value = "5s", value_parser = parse_duration)]
    pub grace: Duration,

    /// The command to run, after `--`
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("the ttl must be at least 1ms".to_string());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("tq").chain(args.iter().copied()))
    }

    fn paired(cli: Cli) -> PairedArgs {
        match cli.command {
            Cmd::Paired(p) => p,
            other => panic!("not paired: {other:?}"),
        }
    }

    fn work(args: &[&str]) -> Result<WorkArgs, clap::Error> {
        let mut all = vec!["work"];
        all.extend_from_slice(args);
        match parse(&all)?.command {
            Cmd::Work(w) => Ok(w),
            other => panic!("not work: {other:?}"),
        }
    }

    fn enqueue(args: &[&str]) -> Result<EnqueueArgs, clap::Error> {
        let mut all = vec!["enqueue"];
        all.extend_from_slice(args);
        match parse(&all)?.command {
            Cmd::Enqueue(e) => Ok(e),
            other => panic!("not enqueue: {other:?}"),
        }
    }

    #[test]
    fn work_defaults_and_options() {
        let w = work(&["--queues", "high,low", "--handlers", "/h"]).expect("parses");
        assert_eq!(w.queues, ["high", "low"]);
        assert_eq!(w.concurrency, 1);
        assert_eq!(w.timeout, Duration::from_secs(30));
        assert_eq!(w.grace, Duration::from_secs(10));
        assert_eq!((w.retry, w.backoff.clone(), w.lease, w.quiet, w.json), (None, None, None, false, false));
        let w = work(&[
            "--queues",
            "*",
            "--handlers",
            "/h",
            "--concurrency",
            "4",
            "--timeout",
            "0",
            "--grace",
            "2s",
            "--retry",
            "3",
            "--backoff",
            "100ms,1s",
            "--name",
            "box:7",
            "--json",
            "--quiet",
            "--lease",
            "3s",
        ])
        .expect("parses");
        assert_eq!(w.queues, ["*"]);
        assert_eq!(w.concurrency, 4);
        assert_eq!(w.timeout, Duration::ZERO);
        assert_eq!(w.retry, Some(3));
        assert_eq!(w.backoff, Some(BackoffList(vec![Duration::from_millis(100), Duration::from_secs(1)])));
        assert_eq!(w.name.as_deref(), Some("box:7"));
        assert_eq!(w.lease, Some(Duration::from_secs(3)));
        assert!(w.json && w.quiet);
    }

    #[test]
    fn work_bad_values() {
        for (args, what) in [
            (&["--handlers", "/h"][..], "--queues"),
            (&["--queues", "q"][..], "--handlers"),
            (&["--queues", "q", "--handlers", "/h", "--concurrency", "0"][..], "concurrency"),
            (&["--queues", "q", "--handlers", "/h", "--backoff", "1s"][..], "--retry"),
            (&["--queues", "q", "--handlers", "/h", "--retry", "2", "--backoff", "1x"][..], "invalid duration"),
            (&["--queues", "q", "--handlers", "/h", "--quiet", "--verbose"][..], "cannot be used"),
        ] {
            let e = work(args).expect_err(what);
            assert!(e.to_string().contains(what), "{args:?}: {e}");
        }
    }

    #[test]
    fn enqueue_forms() {
        let e = enqueue(&["math", "add", "[1,2]"]).expect("parses");
        assert_eq!(
            (e.queue.as_str(), e.class.as_str(), e.args.as_deref(), e.at, e.in_),
            ("math", "add", Some("[1,2]"), None, None)
        );
        let e = enqueue(&["math", "add"]).expect("parses");
        assert_eq!(e.args, None);
        let e = enqueue(&["math", "add", "[]", "--at", "2026-11-22T06:30:10.123Z"]).expect("parses");
        assert_eq!(e.at, Some(1_795_329_010_123));
        let e = enqueue(&["--in", "2s", "math", "add"]).expect("parses");
        assert_eq!(e.in_, Some(Duration::from_secs(2)));
        assert!(enqueue(&["math", "add", "--at", "1", "--in", "1s"])
            .expect_err("both")
            .to_string()
            .contains("cannot be used"));
        assert!(enqueue(&["math", "add", "--at", "soon"]).expect_err("bad").to_string().contains("invalid time"));
        assert!(enqueue(&["math"]).is_err());
    }

    fn inspect(args: &[&str]) -> Result<InspectCmd, clap::Error> {
        match parse(args)?.command {
            Cmd::Inspect(c) => Ok(c),
            other => panic!("not an operator subcommand: {other:?}"),
        }
    }

    #[test]
    fn operator_subcommands() {
        assert!(matches!(inspect(&["stats"]), Ok(InspectCmd::Stats(OutputArgs { json: false }))));
        assert!(matches!(inspect(&["details", "--json"]), Ok(InspectCmd::Details(OutputArgs { json: true }))));
        let Ok(InspectCmd::Queued(q)) = inspect(&["queued", "math", "--offset", "5"]) else { panic!("queued") };
        assert_eq!((q.queue.as_str(), q.offset, q.count), ("math", 5, 100));
        let Ok(InspectCmd::Failed(f)) = inspect(&["failed", "--count", "3", "--json"]) else { panic!("failed") };
        assert_eq!((f.offset, f.count, f.output.json), (0, 3, true));
        let Ok(InspectCmd::Delayed(d)) = inspect(&["delayed", "--at", "2026-11-22T06:30:10.123Z"]) else {
            panic!("delayed")
        };
        assert_eq!((d.at, d.jobs, d.job), (Some(1_795_329_010_123), false, None));
        let Ok(InspectCmd::Delayed(d)) = inspect(&["delayed", "--job", "q", "C", "[1]", "--json"]) else {
            panic!("delayed")
        };
        assert_eq!(d.job, Some(vec!["q".to_string(), "C".to_string(), "[1]".to_string()]));
        assert!(d.output.json);
        let Ok(InspectCmd::Retry(r)) = inspect(&["retry", "--class", "C", "--queue", "q"]) else { panic!("retry") };
        assert_eq!((r.class.as_deref(), r.queue.as_deref(), r.all, r.batch), (Some("C"), Some("q"), false, 1000));
        assert_eq!(r.progress, ProgressArg::Auto);
        let Ok(InspectCmd::Remove(r)) = inspect(&["remove", "--all", "--batch", "5", "--progress", "none"]) else {
            panic!("remove")
        };
        assert_eq!((r.all, r.batch, r.progress), (true, 5, ProgressArg::None));
        let Ok(InspectCmd::CleanWorkers(c)) = inspect(&["clean-workers", "--age", "10m"]) else { panic!("clean") };
        assert_eq!((c.age, c.worker), (Some(Duration::from_secs(600)), None));
        assert_eq!(inspect(&["locks"]).map(|c| c.name()).ok(), Some("locks"));
    }

    #[test]
    fn operator_usage_errors() {
        for (args, kind) in [
            (&["retry"][..], ErrorKind::MissingRequiredArgument),
            (&["remove", "--batch", "10"], ErrorKind::MissingRequiredArgument),
            (&["retry", "--all", "--id", "x"], ErrorKind::ArgumentConflict),
            (&["retry", "--all", "--batch", "0"], ErrorKind::ValueValidation),
            (&["retry", "--all", "--batch", "100001"], ErrorKind::ValueValidation),
            (&["clean-workers"], ErrorKind::MissingRequiredArgument),
            (&["clean-workers", "--age", "1s", "--worker", "w"], ErrorKind::ArgumentConflict),
            (&["delayed", "--jobs", "--at", "1"], ErrorKind::ArgumentConflict),
            (&["delayed", "--job", "q"], ErrorKind::TooFewValues),
            (&["queued"], ErrorKind::MissingRequiredArgument),
        ] {
            let e = inspect(args).expect_err("a usage error");
            assert_eq!(e.kind(), kind, "{args:?}: {e}");
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn paired_full() {
        let cli = parse(&[
            "--redis",
            "redis://h:1/",
            "--ns",
            "jobs",
            "paired",
            "--lock",
            "job-42",
            "--ttl",
            "30s",
            "--first-attempt",
            "5ms",
            "--other-attempt",
            "1s",
            "--owner",
            "me",
            "--grace",
            "2s",
            "--",
            "sh",
            "-c",
            "echo --lock x",
        ])
        .expect("parses");
        assert_eq!(cli.redis_url(), "redis://h:1/");
        assert_eq!(cli.ns, "jobs");
        let p = paired(cli);
        assert_eq!(p.lock, "job-42");
        assert_eq!(p.ttl, Duration::from_secs(30));
        assert_eq!(p.first_attempt, Duration::from_millis(5));
        assert_eq!(p.other_attempt, Duration::from_secs(1));
        assert_eq!(p.owner.as_deref(), Some("me"));
        assert_eq!(p.grace, Duration::from_secs(2));
        assert_eq!(p.command, ["sh", "-c", "echo --lock x"]);
    }

    #[test]
    fn paired_defaults_and_global_options_after_the_subcommand() {
        let cli = parse(&["paired", "--lock", "l", "--ttl", "1500", "--ns", "other", "--", "true"]).expect("parses");
        assert_eq!(cli.ns, "other");
        let p = paired(cli);
        assert_eq!(p.ttl, Duration::from_millis(1500));
        assert_eq!(p.first_attempt, Duration::from_millis(10));
        assert_eq!(p.other_attempt, Duration::from_millis(30));
        assert_eq!(p.grace, Duration::from_secs(5));
        assert_eq!(p.owner, None);
        assert_eq!(p.command, ["true"]);
    }

    #[test]
    fn paired_help_works() {
        let e = parse(&["paired", "--help"]).expect_err("help exits");
        assert_eq!(e.kind(), ErrorKind::DisplayHelp);
        let help = e.to_string();
        for word in ["--lock", "--ttl", "--first-attempt", "--other-attempt", "--owner", "CMD", "pair lock"] {
            assert!(help.contains(word), "help lacks {word}:\n{help}");
        }
        assert_eq!(parse(&["--help"]).expect_err("help").kind(), ErrorKind::DisplayHelp);
    }

    #[test]
    fn missing_command_is_a_clear_error() {
        let e = parse(&["paired", "--lock", "l", "--ttl", "1s"]).expect_err("no command");
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
        assert!(e.to_string().contains("-- <CMD>..."), "{e}");
        let e = parse(&["paired", "--lock", "l", "--ttl", "1s", "--"]).expect_err("empty command");
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn command_needs_the_double_dash() {
        let e = parse(&["paired", "--lock", "l", "--ttl", "1s", "sleep", "1"]).expect_err("no --");
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
    }

    #[test]
    fn bad_values() {
        for (args, what) in [
            (&["paired", "--ttl", "1s", "--", "true"][..], "--lock"),
            (&["paired", "--lock", "l", "--", "true"][..], "--ttl"),
            (&["paired", "--lock", "l", "--ttl", "0", "--", "true"][..], "at least 1ms"),
            (&["paired", "--lock", "l", "--ttl", "3 fortnights", "--", "true"][..], "invalid duration"),
            (&["paired", "--lock", "l", "--ttl", "1s", "--first-attempt", "x", "--", "true"][..], "invalid duration"),
        ] {
            let e = parse(args).expect_err(what);
            assert!(e.to_string().contains(what), "{args:?}: {e}");
        }
        assert_eq!(parse(&[]).expect_err("no subcommand").kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
    }
}
