//! A fault-injecting TCP proxy in front of a Redis server, to try a client
//! against lost replies by hand; the lost-reply tests run the same code
//! (`tests/fault_proxy`). Loopback only. For example:
//!
//! ```text
//! cargo run -p tq-cli --example tq-fault-proxy -- --to 6379 --lose-reply 0.05
//! tq --redis redis://127.0.0.1:<printed port>/ work ...
//! ```
//!
//! `TQ_FAULT_SEED=<seed>` replays the faults of an earlier run.

use std::time::Duration;

use clap::Parser;
use tq_testkit::fault_proxy::{FaultProxy, Faults};

/// Forwards 127.0.0.1:<port> to the Redis server on 127.0.0.1:<to>; for
/// each TQ.* command, at random, loses the reply (the command is applied),
/// drops the request unsent, or closes the connection after the reply.
#[derive(Parser)]
struct Args {
    /// Port of the Redis server on 127.0.0.1
    #[arg(long)]
    to: u16,
    /// Port to listen on, on 127.0.0.1 (0: a free one)
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Probability that a TQ command's reply is lost (the command is applied)
    #[arg(long, default_value_t = 0.05, value_parser = probability)]
    lose_reply: f64,
    /// Probability that a TQ command is dropped unsent
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    drop_request: f64,
    /// Probability that the connection is closed after a TQ command's reply
    #[arg(long, default_value_t = 0.0, value_parser = probability)]
    close_after_reply: f64,
    /// Print the counts every this many seconds
    #[arg(long, default_value_t = 5)]
    every: u64,
}

fn probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a probability from 0 to 1")),
    }
}

fn main() {
    let a = Args::parse();
    let faults =
        Faults { lose_reply: a.lose_reply, drop_request: a.drop_request, close_after_reply: a.close_after_reply };
    let proxy = FaultProxy::start_on(a.port, a.to, faults);
    println!("listening on 127.0.0.1:{} for 127.0.0.1:{}, seed {}", proxy.port, a.to, proxy.seed);
    loop {
        std::thread::sleep(Duration::from_secs(a.every.max(1)));
        let c = proxy.counts();
        println!("{c:?}, {:.1}% of replies lost", c.lost_ratio() * 100.0);
    }
}
