//! Throughput of taking jobs: plain `LPOP` against `TQ.POP` + `TQ.ACK`, from
//! the same client, same server, same run. Used by `scripts/bench.sh`.
//!
//! usage: bench-cycle <port> <lpop|popack> <jobs> <pipeline-depth> <connections>

use std::time::Instant;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: &str| a.get(i).cloned().unwrap_or_else(|| d.to_string());
    let port: u16 = arg(1, "6379").parse().expect("port");
    let mode = arg(2, "popack");
    let jobs: usize = arg(3, "200000").parse().expect("jobs");
    let depth: usize = arg(4, "16").parse().expect("depth");
    let conns: usize = arg(5, "8").parse().expect("connections");
    let url = format!("redis://127.0.0.1:{port}/");
    let client = redis::Client::open(url).expect("client");
    let ns = format!("bench{}", std::process::id());
    let queue_key = format!("{ns}:queue:q");

    // Fill the queue with node-resque payloads.
    let mut c = client.get_connection().expect("connect");
    let payload = r#"{"class":"add","queue":"q","args":[1,2]}"#;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1000) {
        let mut p = redis::pipe();
        for _ in chunk {
            p.cmd("RPUSH").arg(&queue_key).arg(payload).ignore();
        }
        p.query::<()>(&mut c).expect("fill");
    }

    let per_conn = jobs / conns;
    let start = Instant::now();
    let handles: Vec<_> = (0..conns)
        .map(|t| {
            let client = client.clone();
            let (mode, ns, queue_key) = (mode.clone(), ns.clone(), queue_key.clone());
            std::thread::spawn(move || {
                let mut c = client.get_connection().expect("connect");
                let worker = format!("bench:{t}");
                // Jobs per round trip: LPOP takes one per command, POP+ACK two commands per job.
                let per_trip = if mode == "lpop" { depth } else { (depth / 2).max(1) };
                let mut done = 0;
                while done < per_conn {
                    let n = per_trip.min(per_conn - done);
                    let mut p = redis::pipe();
                    for _ in 0..n {
                        if mode == "lpop" {
                            p.cmd("LPOP").arg(&queue_key).ignore();
                        } else {
                            p.cmd("TQ.POP").arg(&ns).arg(&worker).arg("q").ignore();
                            p.cmd("TQ.ACK").arg(&ns).arg(&worker).ignore();
                        }
                    }
                    p.query::<()>(&mut c).expect("round trip");
                    done += n;
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("thread");
    }
    let secs = start.elapsed().as_secs_f64();
    let taken = per_conn * conns;
    let _: () = redis::cmd("DEL").arg(&queue_key).query(&mut c).expect("cleanup");
    println!("{:.0}", taken as f64 / secs);
}
