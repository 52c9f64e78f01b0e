//! The `tq` command line. `main.rs` parses it and dispatches each
//! subcommand to its library module.

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::duration::parse_duration;

/// Used when neither `--redis`, `TQ_REDIS_URL` nor `REDIS_URL` is set.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

#[derive(Debug, Parser)]
#[command(name = "tq", version, about = "Client for the tq Redis module: Resque-style job queues and pair locks")]
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
}

#[derive(Debug, Args)]
pub struct PairedArgs {
    /// Lock name: one per task, shared by the processes that pair on it
    #[arg(long, value_name = "NAME")]
    pub lock: String,

    /// How long the lock lasts without renewal (renewed every ttl/3 while the command runs): 30s, 1500ms, 2m, 1h; a plain number is ms
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
            (&["paired", "--lock", "l", "--ttl", "3 days", "--", "true"][..], "invalid duration"),
            (&["paired", "--lock", "l", "--ttl", "1s", "--first-attempt", "x", "--", "true"][..], "invalid duration"),
        ] {
            let e = parse(args).expect_err(what);
            assert!(e.to_string().contains(what), "{args:?}: {e}");
        }
        assert_eq!(parse(&[]).expect_err("no subcommand").kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
    }
}
