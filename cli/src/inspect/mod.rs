//! The operator subcommands, each a thin layer over the module's inspection
//! and management commands (node-resque's Queue methods):
//!
//! | subcommand | commands sent |
//! |---|---|
//! | `tq stats` | `TQ.STATS` |
//! | `tq queues` | `SMEMBERS <ns>:queues`, `LLEN` each |
//! | `tq queued QUEUE` | `LLEN`, `LRANGE` |
//! | `tq delayed` | `TQ.TIMESTAMPS` (every page, until an empty one), `LLEN` of each bucket |
//! | `tq delayed --at T` / `--jobs` / `--job Q C [A]` | `TQ.DELAYEDAT` / `TQ.ALLDELAYED` / `TQ.SCHEDULEDAT` |
//! | `tq workers` | `TQ.WORKERS` (every page) |
//! | `tq failed` | `LLEN <ns>:failed`, `TQ.FAILED` |
//! | `tq retry` / `tq remove` | `TQ.FAILRETRY` / `TQ.FAILREMOVE`, following `next` |
//! | `tq clean-workers` | `TQ.CLEANWORKERS` or `TQ.FORCECLEAN` |
//! | `tq details` | `TQ.DETAILS` |
//! | `tq locks` | `TQ.LOCKS`, following the cursor |
//! | `tq metrics` | `TIME`, `SMEMBERS` of the pairs and queues, `MGET` of each pair's records (MULTI), `GET` clock + `LLEN` per queue |
//!
//! Output is an aligned table (times as RFC 3339 UTC with a relative part,
//! relative to the server's clock) or, with `--json`, one JSON document with
//! stable field names and times as unix milliseconds. Exit status: 0
//! success, 1 Redis unreachable or a refusal, 3 nothing matched (retry,
//! remove, clean-workers --worker); clap exits 2 on usage errors.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use redis::Value;
use serde_json::{json, Value as J};

use crate::cli::{CleanWorkersArgs, DelayedArgs, FailedArgs, InspectCmd, ProgressArg, QueuedArgs, SweepArgs};
use crate::client::{Client, Error};
use crate::duration::{millis, show, show_short_ms};
use tq_core::keys::LockKind;

use crate::table::{cell, rfc3339, when, Align, Progress, ProgressStyle, Table};

mod failed;
mod metrics;
mod queues;
mod reply;
mod workers;

pub use failed::*;
pub use metrics::*;
pub use queues::*;
pub use reply::*;
pub use workers::*;

/// I/O timeout of every call (a TQ.FAILRETRY batch on a long list can take a while).
pub const TIMEOUT: Duration = Duration::from_secs(60);
/// Exit status when retry/remove/clean-workers --worker affected nothing.
pub const NOTHING_MATCHED: i32 = 3;
/// The module's largest page (TQ.WORKERS, TQ.FAILED, TQ.TIMESTAMPS, TQ.DELAYEDAT).
const PAGE: u64 = 10_000;
/// TQ.ALLDELAYED: buckets per call, and jobs shown per bucket.
const ALLDELAYED_PAGE: u64 = 1_000;
/// TQ.LOCKS: keys per SCAN step.
const LOCKS_PAGE: u64 = 1_000;
/// Widths of free-text cells.
const ARGS_WIDTH: usize = 60;
const ERROR_WIDTH: usize = 60;

/// What a subcommand prints on stdout, and its exit status.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    pub text: String,
    pub code: i32,
}

impl Output {
    pub(crate) fn ok(text: String) -> Output {
        Output { text, code: 0 }
    }

    pub(crate) fn json(doc: &J) -> Output {
        Output::ok(format!("{doc}\n"))
    }
}

/// Runs one operator subcommand against `redis_url` / `ns`; prints its output
/// (stdout) or error (stderr) and returns the exit status.
pub fn run(redis_url: &str, ns: &str, cmd: InspectCmd) -> i32 {
    let name = cmd.name();
    finish(name, Client::new(redis_url, ns, TIMEOUT).and_then(|mut c| dispatch(&mut c, cmd)))
}

/// Prints a subcommand's output (stdout) or error (stderr); its exit status.
pub(crate) fn finish(name: &str, result: Result<Output, Error>) -> i32 {
    match result {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe (`tq failed | head`) is not an error of ours.
            let _ = stdout.write_all(out.text.as_bytes());
            let _ = stdout.flush();
            out.code
        }
        Err(e) => {
            eprintln!("tq {name}: {e}");
            1
        }
    }
}

/// Runs the subcommand; returns what to print.
pub fn dispatch(c: &mut Client, cmd: InspectCmd) -> Result<Output, Error> {
    match cmd {
        InspectCmd::Stats(o) => stats(c, o.json),
        InspectCmd::Queues(o) => queues(c, o.json),
        InspectCmd::Queued(a) => queued(c, &a),
        InspectCmd::Delayed(a) => delayed(c, &a),
        InspectCmd::Workers(o) => workers(c, o.json),
        InspectCmd::Failed(a) => failed(c, &a),
        InspectCmd::Retry(a) => sweep(c, &a, Sweep::Retry),
        InspectCmd::Remove(a) => sweep(c, &a, Sweep::Remove),
        InspectCmd::CleanWorkers(a) => clean_workers(c, &a),
        InspectCmd::Details(o) => details(c, o.json),
        InspectCmd::Locks(o) => locks(c, o.json),
        InspectCmd::Metrics(o) => metrics(c, o.json),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    #[test]
    fn sweep_cursor_follows_next_to_the_nil_end() {
        // A window in the middle: go on from `next`.
        assert_eq!(next_from(4, 10, 3, Some(11)), Some(11));
        // The end.
        assert_eq!(next_from(4, 10, 3, None), None);
        assert_eq!(next_from(0, 10, 10, None), None);
        // A full window from 0 all matched: the rest starts at 0 again.
        assert_eq!(next_from(0, 10, 10, Some(0)), Some(0));
        // An older module's 0 at the end.
        assert_eq!(next_from(4, 10, 3, Some(0)), None);
        assert_eq!(next_from(0, 10, 3, Some(0)), None);
        assert_eq!(looked_at(0, 10, Some(0)), Some(10));
        assert_eq!(looked_at(4, 3, Some(11)), Some(10));
        assert_eq!(looked_at(4, 3, None), None);
    }

    #[test]
    fn stats_as_json() {
        let flat =
            ["processed", "10", "failed", "2", "processed:host:1", "7", "failed:host:2", "2", "processed:host:2", "3"]
                .map(bulk);
        assert_eq!(
            stats_json(&flat),
            json!({"processed": 10, "failed": 2, "workers": [
                {"name": "host:1", "processed": 7, "failed": 0},
                {"name": "host:2", "processed": 3, "failed": 2},
            ]})
        );
        let doc = stats_json(&["processed", "x", "failed", "0"].map(bulk));
        assert_eq!(doc["processed"], "x", "a counter that is not a number is shown as it is");
        let table = stats_table(&stats_json(&flat));
        assert!(table.starts_with("STAT       VALUE\nprocessed     10\nfailed         2\n"), "{table}");
        assert!(
            table.contains("WORKER  PROCESSED  FAILED\nhost:1          7       0\nhost:2          3       2\n"),
            "{table}"
        );
    }

    #[test]
    fn jobs_and_records_as_json() {
        let p = br#"{"class":"add","queue":"math","args":[1,{"a":"b"}]}"#;
        assert_eq!(
            job_json(p),
            json!({"class": "add", "queue": "math", "args": [1, {"a": "b"}], "payload": String::from_utf8_lossy(p)})
        );
        assert_eq!(job_cells(&job_json(p)), ("add".to_string(), r#"[1,{"a":"b"}]"#.to_string()));
        let bad = job_json(b"not json");
        assert_eq!((bad["class"].clone(), bad["payload"].clone()), (J::Null, json!("not json")));
        assert_eq!(job_cells(&bad), ("?".to_string(), "not json".to_string()));

        let record = br#"{"worker":"h:1","queue":"math","payload":{"class":"add","queue":"math","args":[2]},"exception":"Err","error":"boom\nline","backtrace":["a"],"failed_at":"Sun Nov 22 2026 08:20:45 GMT+0000 (Coordinated Universal Time)"}"#;
        let f = failed_json("00ff", record);
        assert_eq!(
            f,
            json!({
                "id": "00ff", "worker": "h:1", "queue": "math", "class": "add", "args": [2],
                "exception": "Err", "error": "boom\nline", "backtrace": ["a"],
                "failed_at": 1_795_335_645_000u64,
                "payload": r#"{"class":"add","queue":"math","args":[2]}"#,
            })
        );
        let table = failed_table(&[f], 1_795_335_705_000);
        assert!(table.contains("00ff  2026-11-22T08:20:45Z (1m ago)  math   add    Err        boom line"), "{table}");
        // The id is the module's: FNV-1a of the record's bytes.
        assert_eq!(failed_json_of(b"x")["id"], "af63f54c86021707");
        let corrupt = failed_json("1", br#"{"queue":"q","payload":"oops","exception":"TQ::CorruptPayload"}"#);
        assert_eq!((corrupt["class"].clone(), corrupt["payload"].clone()), (J::Null, json!("\"oops\"")));
        assert_eq!(failed_json("2", b"garbage")["queue"], J::Null);
    }

    #[test]
    fn workers_as_json() {
        let rec = r#"{"run_at":"2026-11-22T08:20:45.359Z","queue":"q1","worker":"host:1","payload":{"class":"A","queue":"q1","args":[1]}}"#;
        let w = worker_json(&[bulk("host:1"), bulk("q1,q2"), bulk(rec)]).expect("row");
        assert_eq!(
            w,
            json!({"name": "host:1", "queues": ["q1", "q2"], "job": {
                "queue": "q1", "class": "A", "args": [1],
                "payload": r#"{"class":"A","queue":"q1","args":[1]}"#, "run_at": 1_795_335_645_359u64,
            }})
        );
        let idle = worker_json(&[bulk("host:2"), bulk("*"), Value::Nil]).expect("row");
        assert_eq!(idle, json!({"name": "host:2", "queues": ["*"], "job": null}));
        assert!(worker_json(&[bulk("x")]).is_none());
        let table = workers_table(&[w, idle], 1_795_335_650_000, 0);
        assert_eq!(
            table,
            "WORKER  QUEUES  JOB    QUEUE  STARTED\n\
             host:1  q1,q2   A [1]  q1     2026-11-22T08:20:45.359Z (4s ago)\n\
             host:2  *       -      -      -\n"
        );
    }

    #[test]
    fn locks_as_json() {
        assert_eq!(
            lock_json("lock:C:q3:[]", "1795339246"),
            json!({"name": "lock:C:q3:[]", "kind": "queue", "value": "1795339246", "deadline": 1_795_339_246_000u64})
        );
        assert_eq!(lock_json("workerslock:C:q:[]", "7")["kind"], "job");
        assert_eq!(
            lock_json("tq:lock:nightly", "held by me token 1 until 2026-11-22T08:20:55.414Z")["deadline"],
            1_795_335_655_414u64
        );
        assert_eq!(lock_json("tq:lock:x", "\u{1}binary")["deadline"], J::Null);
        assert_eq!(lock_json("other", "v")["kind"], "other");
    }

    #[test]
    fn details_as_json() {
        let flat = vec![
            bulk("queues"),
            Value::Array(vec![Value::Array(vec![bulk("q1"), Value::Int(2)])]),
            bulk("workers"),
            Value::Array(vec![Value::Array(vec![bulk("h:1"), bulk("q1"), Value::Nil])]),
            bulk("stats"),
            Value::Array(["processed", "0", "failed", "1"].map(bulk).to_vec()),
            bulk("leader"),
            Value::Nil,
            bulk("delayed_buckets"),
            Value::Int(0),
            bulk("oldest_due_lateness_ms"),
            Value::Nil,
            bulk("failed"),
            Value::Int(1),
        ];
        assert_eq!(
            details_json(flat).expect("parses"),
            json!({
                "queues": [{"name": "q1", "length": 2}],
                "workers": [{"name": "h:1", "queues": ["q1"], "job": null}],
                "stats": {"processed": 0, "failed": 1, "workers": []},
                "leader": null, "delayed_buckets": 0, "oldest_due_lateness_ms": null, "failed": 1,
            })
        );
        assert!(details_json(vec![bulk("queues"), Value::Int(3)]).is_err());
    }

    #[test]
    fn reply_helpers() {
        assert_eq!(int(&bulk("42")), Some(42));
        assert_eq!(int(&Value::Int(-1)), Some(-1));
        assert_eq!(int(&bulk("x")), None);
        assert!(uint("X", &Value::Int(-1)).is_err());
        assert_eq!(counter(&bulk("7")), json!(7));
        assert_eq!(array("X", Value::Nil).expect("nil is empty"), Vec::<Value>::new());
        assert!(array("X", Value::Int(1)).is_err());
        assert_eq!(show_json(&J::Null), "-");
        assert_eq!(show_json(&json!("s")), "s");
        assert_eq!(show_json(&json!([1])), "[1]");
    }
}
