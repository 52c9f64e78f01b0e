//! `tq`: a thin dispatcher; each subcommand's logic lives in the library.

use clap::Parser;
use tq_cli::cli::{Cli, Cmd, EnqueueArgs, WorkArgs};
use tq_cli::config::{Rules, Settings};
use tq_cli::log::{Format, Level};
use tq_cli::{enqueue, inspect, paired, sys, web, work};

fn main() {
    let cli = Cli::parse();
    let redis_url = cli.redis_url();
    let code = match cli.command {
        Cmd::Paired(a) => {
            let opts = paired::Options {
                redis_url,
                ns: cli.ns,
                lock: a.lock,
                ttl: a.ttl,
                first_attempt: a.first_attempt,
                other_attempt: a.other_attempt,
                owner: a.owner.unwrap_or_else(paired::default_owner),
                grace: a.grace,
            };
            if let Err(e) = sys::install() {
                eprintln!("tq paired: cannot catch SIGINT/SIGTERM: {e}");
            }
            match paired::run(&opts, &a.command) {
                Ok(outcome) => outcome.exit_code(),
                Err(e) => {
                    eprintln!("tq paired: error: {e}");
                    e.exit_code()
                }
            }
        }
        Cmd::Work(a) => match work_options(redis_url, cli.ns, a) {
            Ok(opts) => work::run(opts),
            Err(e) => {
                eprintln!("tq work: {e}");
                1
            }
        },
        Cmd::Enqueue(a) => run_enqueue(&redis_url, &cli.ns, a),
        Cmd::Web(a) => web::run(web::Options {
            redis_url,
            ns: cli.ns,
            listen: a.listen,
            read_only: a.read_only,
            token_file: a.token_file,
        }),
        Cmd::Inspect(c) => inspect::run(&redis_url, &cli.ns, c),
        Cmd::Manage(c) => tq_cli::manage::run(&redis_url, &cli.ns, c),
    };
    std::process::exit(code);
}

fn work_options(redis_url: String, ns: String, a: WorkArgs) -> Result<work::Options, String> {
    let mut rules = match &a.retry_config {
        None => Rules::none(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("--retry-config {}: {e}", path.display()))?;
            Rules::from_json(&text).map_err(|e| format!("--retry-config {}: {e}", path.display()))?
        }
    };
    rules.cli = Settings { retry: a.retry, backoff: a.backoff.map(|b| b.0), timeout: Some(a.timeout) };
    Ok(work::Options {
        redis_url,
        ns,
        queues: a.queues,
        concurrency: usize::from(a.concurrency),
        handlers: a.handlers,
        rules,
        grace: a.grace,
        name: a.name,
        lease: a.lease,
        level: if a.quiet {
            Level::Error
        } else if a.verbose {
            Level::Debug
        } else {
            Level::Info
        },
        format: if a.json { Format::Json } else { Format::Text },
    })
}

fn run_enqueue(redis_url: &str, ns: &str, a: EnqueueArgs) -> i32 {
    let when = match (a.at, a.in_) {
        (Some(ms), _) => enqueue::When::At(ms),
        (None, Some(d)) => enqueue::When::In(d),
        (None, None) => enqueue::When::Now,
    };
    let args = a.args.as_deref().unwrap_or("[]");
    if a.unique {
        return run_enqueue_unique(redis_url, ns, &a, args);
    }
    let result = tq_cli::Client::new(redis_url, ns, std::time::Duration::from_secs(10))
        .and_then(|mut c| enqueue::enqueue(&mut c, &a.queue, &a.class, args, when));
    match result {
        Ok(n) => {
            println!("{n}");
            0
        }
        Err(e) => {
            eprintln!("tq enqueue: {e}");
            1
        }
    }
}

fn run_enqueue_unique(redis_url: &str, ns: &str, a: &EnqueueArgs, args: &str) -> i32 {
    let result = tq_cli::Client::new(redis_url, ns, std::time::Duration::from_secs(10))
        .and_then(|mut c| enqueue::enqueue_unique(&mut c, &a.queue, &a.class, args, a.unique_ttl));
    match result {
        Ok(Some(n)) => {
            println!("{n}");
            0
        }
        Ok(None) => {
            eprintln!("tq enqueue: an identical job is already waiting (its QueueLock holds); nothing enqueued");
            tq_cli::inspect::NOTHING_MATCHED
        }
        Err(e) => {
            eprintln!("tq enqueue: {e}");
            1
        }
    }
}
