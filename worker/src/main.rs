//! `tq`: a thin dispatcher; each subcommand's logic lives in the library.

use clap::Parser;
use tq_worker::cli::{Cli, Cmd};
use tq_worker::{paired, sys};

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
    };
    std::process::exit(code);
}
