//! A model-based randomized test of the job state machine against a real
//! server. A plain-Rust model of the jobs (queues, delayed buckets, jobs in
//! flight, failed, done), of each worker name's in-flight entry (live job or
//! tombstone), of the delivery counter, the delivery-count hash and the
//! ledger of outcomes predicts the reply of every command of a seeded random
//! sequence: enqueue (some jobs identical twins of earlier ones), enqueue-at,
//! promote, pop, bpop (blocked ones woken by an enqueue, a promotion, a NACK,
//! a lease running out, across reloads and a failover), pop ... ack, ack,
//! fail (with and without retry), nack, heartbeat, lease expiry, worker kill,
//! restart under the same name, resend after a lost reply, DEBUG RELOAD,
//! DEBUG LOADAOF, failover to a replica (one of them losing the last
//! writes, which the workers saw). After every step the counters
//! and list lengths are compared with the model, every `CHECK_EVERY` steps
//! (and at the end) the whole keyspace of the namespace: every job in
//! exactly one place, none done without having been delivered, the stats
//! equal to the ledger, no key the model does not account for. Commands the
//! model says change nothing are checked, now and then, to write nothing to
//! the AOF.
//!
//! `TQ_MODEL_SEED=<n>` replays a run (the seed is printed when a run fails,
//! with its last steps), `TQ_MODEL_STEPS=<n>` changes its length.
//!
//! Time-based transitions are made to happen at known points so that every
//! reply stays exactly predictable: jobs are taken with 10-minute leases
//! except where a step makes a lease run out (a take with `LEASE 1` or under
//! `tq.lease-ms` 100, or a heartbeat of 1 ms standing for the clock moving
//! past the lease), and that step waits until the timer has given the job
//! back before going on; delayed jobs are filed either in past buckets (due
//! at the next TQ.PROMOTE) or at least a day ahead (never due during the
//! run); the timer's automatic promotion is off.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use common::rng::Rng;
use common::*;
use tq_core::records::{Ended, InFlight};

const QUEUES: [&str; 7] = ["a", "b", "c", "z0", "z1", "z2", "z3"];
/// The queues jobs are enqueued to at random; the `z` queues are filled only
/// to wake a blocked TQ.BPOP, so that one is empty when one waits on it.
const ENQUEUE_QUEUES: [&str; 3] = ["a", "b", "c"];
/// The queue lists workers pop with (a queue named twice included).
const QUEUE_LISTS: [&[&str]; 9] = [
    &["a"],
    &["b"],
    &["c"],
    &["a", "b"],
    &["b", "c", "a"],
    &["c", "a"],
    &["a", "a"],
    &["*"],
    &["z0", "z1", "z2", "z3", "c"],
];
const WORKERS: usize = 5;
const MAX_DELIVERIES: u32 = 3;
const LONG_MS: u64 = 600_000;
/// A delay that keeps a job delayed for the whole run.
const FAR_MS: u64 = 86_400_000;
const CLASS: &str = "Job";
const EXCEPTION: &str = "Boom";
const CHECK_EVERY: usize = 250;
/// How far ahead a step's check that nothing reaches the AOF looks for a
/// job-metrics write of the timer (far more than a step takes).
const AOF_CHECK_MS: u64 = 1_000;
/// The `INFO tq` counters the model predicts.
const INFO_EVENTS: [&str; 10] = [
    "enqueued",
    "delayed",
    "promoted",
    "popped",
    "acked",
    "failed",
    "retried",
    "nacked",
    "lease_requeued",
    "lease_failed",
];
/// A reply element the model does not predict (a lease deadline).
const ANY: i64 = i64::MIN;

/// The module (automatic promotion off, see above), with an AOF so that
/// `DEBUG LOADAOF` can rebuild the data from the commands tq propagated
/// (written out after every command: with `everysec` Redis may hold a
/// write back while a background fsync runs, and the AOF would grow later),
/// and a replica's sync started at once.
fn opts() -> Opts {
    Opts::module_with(&["lease-ms", "600000", "max-deliveries", "3"]).with_args(&[
        "--appendonly",
        "yes",
        "--appendfsync",
        "no",
        "--repl-diskless-sync-delay",
        "0",
    ])
}

/// A reply, as compared with the model's prediction.
#[derive(Debug, Clone, PartialEq)]
enum R {
    Nil,
    Ok,
    Int(i64),
    Str(String),
    Arr(Vec<R>),
    Err(String),
}

fn to_r(v: Result<Value, String>) -> R {
    fn conv(v: Value) -> R {
        match v {
            Value::Nil => R::Nil,
            Value::Okay => R::Ok,
            Value::SimpleString(s) if s == "OK" => R::Ok,
            Value::SimpleString(s) => R::Str(s),
            Value::Int(n) => R::Int(n),
            Value::BulkString(b) => R::Str(String::from_utf8_lossy(&b).into_owned()),
            Value::Array(items) => R::Arr(items.into_iter().map(conv).collect()),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    match v {
        Ok(v) => conv(v),
        Err(e) => R::Err(e),
    }
}

/// `want` with `ANY` matching any integer.
fn matches(want: &R, got: &R) -> bool {
    match (want, got) {
        (R::Int(ANY), R::Int(_)) => true,
        (R::Arr(a), R::Arr(b)) => a.len() == b.len() && a.iter().zip(b).all(|(x, y)| matches(x, y)),
        _ => want == got,
    }
}

/// The delivery id and count of a pop reply.
fn taken(r: &R) -> Option<(u64, u32)> {
    match r {
        R::Arr(items) => match items.as_slice() {
            [_, _, R::Int(d), R::Int(n), _] => Some((*d as u64, *n as u32)),
            _ => None,
        },
        _ => None,
    }
}

/// The model's copy of a worker name's in-flight index entry.
#[derive(Debug, Clone)]
struct Entry {
    delivery: u64,
    after: u64,
    ended: Option<Ended>,
    job: usize,
    deliveries: u32,
    queue: String,
    queues: String,
    /// The lease deadline, known once the lease ran out (read from the
    /// tombstone); LEASELOST names it.
    until: u64,
}

#[derive(Debug, Clone)]
struct Job {
    payload: String,
    queue: String,
    /// Times handed to a worker.
    handed: u32,
}

enum Target {
    Held,
    Ended(Ended),
    TakenAfter,
}

/// A worker's command, as the model applies it.
#[derive(Debug, Clone)]
enum Op {
    Pop { queues: Vec<String>, lease: Option<u64>, ack: Option<u64> },
    Bpop { queues: Vec<String>, lease: Option<u64>, timeout: u64 },
    Ack(u64),
    Fail { delivery: u64, retry: Option<(u32, u64)> },
    Nack { delivery: u64, delay: Option<u64> },
    Heartbeat { ms: u64, delivery: Option<u64> },
}

impl Op {
    fn args(&self, ns: &str, w: &str) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let s = |x: &str| x.to_string();
        match self {
            Op::Pop { queues, lease, ack } => {
                a.extend([s("TQ.POP"), s(ns), s(w)]);
                a.extend(queues.iter().cloned());
                if let Some(l) = lease {
                    a.extend([s("LEASE"), l.to_string()]);
                }
                if let Some(d) = ack {
                    a.extend([s("ACK"), d.to_string()]);
                }
            }
            Op::Bpop { queues, lease, timeout } => {
                a.extend([s("TQ.BPOP"), s(ns), s(w)]);
                a.extend(queues.iter().cloned());
                if let Some(l) = lease {
                    a.extend([s("LEASE"), l.to_string()]);
                }
                a.push(timeout.to_string());
            }
            Op::Ack(d) => a.extend([s("TQ.ACK"), s(ns), s(w), d.to_string()]),
            Op::Fail { delivery, retry } => {
                a.extend([s("TQ.FAIL"), s(ns), s(w), delivery.to_string(), s(EXCEPTION), s("it broke")]);
                if let Some((attempts, backoff)) = retry {
                    a.extend([s("RETRY"), attempts.to_string(), s("BACKOFF"), backoff.to_string()]);
                }
            }
            Op::Nack { delivery, delay } => {
                a.extend([s("TQ.NACK"), s(ns), s(w), delivery.to_string()]);
                if let Some(d) = delay {
                    a.extend([s("DELAY"), d.to_string()]);
                }
            }
            Op::Heartbeat { ms, delivery } => {
                a.extend([s("TQ.HEARTBEAT"), s(ns), s(w), ms.to_string()]);
                if let Some(d) = delivery {
                    a.push(d.to_string());
                }
            }
        }
        a
    }
}

/// The job metrics of namespace `ns`, summed at one instant: the minutes'
/// records and the open tallies workers' entries carry. The timer moves a
/// tally from an entry to its record at any moment, so both are read in one
/// MULTI, with the key lists again to make sure no key came or went since
/// they were listed.
fn metrics_snapshot(c: &mut Conn, ns: &str) -> tq_core::metrics::Tally {
    let (minutes, entries) = (format!("{ns}:tq:m:*"), format!("{ns}:tq:inflight:*"));
    loop {
        let mut listed = c.strings(&["KEYS", &minutes]);
        listed.extend(c.strings(&["KEYS", &entries]));
        let mut p = redis::pipe();
        p.atomic();
        p.cmd("KEYS").arg(&minutes).cmd("KEYS").arg(&entries);
        for k in &listed {
            p.cmd("GET").arg(k);
        }
        let got: Vec<redis::Value> = p.query(&mut c.0).expect("the metrics' MULTI");
        let names = |v: &redis::Value| -> Vec<String> {
            match v {
                redis::Value::Array(items) => {
                    items.iter().filter_map(|i| redis::from_redis_value::<String>(i.clone()).ok()).collect()
                }
                _ => Vec::new(),
            }
        };
        let mut again: Vec<String> = got.first().map(names).unwrap_or_default();
        again.extend(got.get(1).map(names).unwrap_or_default());
        if again != listed {
            continue;
        }
        let mut sum = tq_core::metrics::Tally::default();
        for (k, v) in listed.iter().zip(got.iter().skip(2)) {
            let redis::Value::BulkString(raw) = v else { continue };
            if k.starts_with(&minutes[..minutes.len() - 1]) {
                sum.merge(&tq_core::metrics::Tally::decode(raw).expect("a tally tq can decode"));
            } else if let Some(t) = InFlight::decode(raw).and_then(|e| e.open) {
                // Jobs a worker counted and its entry carries until their
                // record is written.
                sum.merge(&t.tally.tally().expect("a tally tq can decode"));
            }
        }
        return sum;
    }
}

fn ended_text(how: Ended) -> &'static str {
    match how {
        Ended::LeaseLost => "its lease ran out",
        Ended::Acked => "it was acknowledged",
        Ended::Failed => "it failed",
        Ended::Retried { .. } => "it failed and was filed to run again",
        Ended::Nacked => "it was given back",
    }
}

#[derive(Default, Clone)]
struct Model {
    ns: String,
    jobs: Vec<Job>,
    queues: BTreeMap<String, VecDeque<usize>>,
    /// `<ns>:queues`.
    known_queues: BTreeSet<String>,
    delayed: BTreeMap<u64, Vec<usize>>,
    /// Jobs given back with a delay whose bucket is still to be read.
    pending_delayed: Vec<usize>,
    /// (job, worker, exception).
    failed: Vec<(usize, String, String)>,
    done: Vec<usize>,
    entries: BTreeMap<String, Entry>,
    /// `<ns>:tq:deliveries`.
    dhash: BTreeMap<String, u32>,
    /// `<ns>:tq:delivery`.
    counter: u64,
    /// `<ns>:workers`.
    registered: BTreeSet<String>,
    processed: u64,
    failed_stat: u64,
    worker_stats: BTreeMap<String, (u64, u64)>,
    /// What `INFO tq` counts (this server's share: see `Run::info_base`).
    events: BTreeMap<&'static str, u64>,
}

impl Model {
    fn new(ns: &str) -> Model {
        let mut m = Model { ns: ns.to_string(), ..Model::default() };
        for q in QUEUES {
            m.queues.insert(q.to_string(), VecDeque::new());
        }
        m
    }

    fn add_job(&mut self, queue: &str, arg: u64) -> usize {
        self.jobs.push(Job { payload: job(queue, CLASS, &format!("[{arg}]")), queue: queue.to_string(), handed: 0 });
        self.jobs.len() - 1
    }

    /// Counts an event `INFO tq` reports.
    fn ev(&mut self, name: &'static str, n: u64) {
        *self.events.entry(name).or_default() += n;
    }

    /// TQ.ENQUEUE.
    fn enqueue_new(&mut self, j: usize) -> R {
        self.ev("enqueued", 1);
        self.enqueue(j)
    }

    fn enqueue(&mut self, j: usize) -> R {
        let q = self.jobs[j].queue.clone();
        self.known_queues.insert(q.clone());
        let list = self.queues.get_mut(&q).expect("queue");
        list.push_back(j);
        R::Int(list.len() as i64)
    }

    fn enqueue_at(&mut self, j: usize, bucket: u64) -> R {
        let payload = &self.jobs[j].payload;
        let list = self.delayed.entry(bucket).or_default();
        if list.iter().any(|&k| self.jobs[k].payload == *payload) {
            if list.is_empty() {
                self.delayed.remove(&bucket);
            }
            return R::Err("DUPLICATE Job already enqueued at this time with same arguments".into());
        }
        list.push(j);
        self.ev("delayed", 1);
        R::Int(bucket as i64)
    }

    /// TQ.PROMOTE: every bucket before `now_s` is due (the others are at
    /// least a day ahead).
    fn promote(&mut self, now_s: u64) -> R {
        let due: Vec<u64> = self.delayed.range(..now_s).map(|(b, _)| *b).collect();
        let mut n = 0;
        for b in due {
            for j in self.delayed.remove(&b).unwrap_or_default() {
                self.enqueue(j);
                n += 1;
            }
        }
        self.ev("promoted", n as u64);
        R::Int(n)
    }

    fn report(&self, w: &str, d: u64) -> Result<Target, R> {
        let Some(e) = self.entries.get(w) else {
            return Err(R::Err(format!("NOJOB worker '{w}' has no job in flight")));
        };
        if e.delivery != d {
            if e.ended.is_none() && e.after == d && d != 0 {
                return Ok(Target::TakenAfter);
            }
            let holds = match e.ended {
                None => format!("it holds delivery {}", e.delivery),
                Some(_) => "it holds no job".to_string(),
            };
            return Err(R::Err(format!("NOJOB worker '{w}' does not hold delivery {d} ({holds})")));
        }
        match e.ended {
            Some(Ended::LeaseLost) => Err(R::Err(format!(
                "LEASELOST worker '{w}' lost its job: the lease ran out at {} and the job was given back",
                tq_core::time::iso8601(e.until)
            ))),
            Some(how) => Ok(Target::Ended(how)),
            None => Ok(Target::Held),
        }
    }

    fn ended_otherwise(w: &str, d: u64, how: Ended) -> R {
        R::Err(format!("NOJOB delivery {d} of worker '{w}' has already ended: {}", ended_text(how)))
    }

    fn pop_reply(&self, e: &Entry) -> R {
        R::Arr(vec![
            R::Str(e.queue.clone()),
            R::Str(self.jobs[e.job].payload.clone()),
            R::Int(e.delivery as i64),
            R::Int(i64::from(e.deliveries)),
            R::Int(ANY),
        ])
    }

    fn live(&self, w: &str) -> Option<&Entry> {
        self.entries.get(w).filter(|e| e.ended.is_none())
    }

    /// The queues a take looks at, in order.
    fn order(&self, queues: &[String]) -> Vec<String> {
        if queues.len() == 1 && queues[0] == "*" {
            self.known_queues.iter().cloned().collect()
        } else {
            let mut o: Vec<String> = Vec::new();
            for q in queues {
                if !o.contains(q) {
                    o.push(q.clone());
                }
            }
            o
        }
    }

    fn available(&self, queues: &[String]) -> bool {
        self.order(queues).iter().any(|q| self.queues.get(q).is_some_and(|l| !l.is_empty()))
    }

    fn take(&mut self, w: &str, queues: &[String], after: u64) -> R {
        let joined = queues.join(",");
        for q in self.order(queues) {
            let Some(j) = self.queues.get_mut(&q).and_then(VecDeque::pop_front) else { continue };
            let before = self.dhash.remove(&self.jobs[j].payload).unwrap_or(0);
            self.counter += 1;
            self.ev("popped", 1);
            self.jobs[j].handed += 1;
            let e = Entry {
                delivery: self.counter,
                after,
                ended: None,
                job: j,
                deliveries: before + 1,
                queue: q,
                queues: joined.clone(),
                until: 0,
            };
            self.registered.insert(format!("{w}:{joined}"));
            let reply = self.pop_reply(&e);
            self.entries.insert(w.to_string(), e);
            return reply;
        }
        R::Nil
    }

    fn pop(&mut self, w: &str, queues: &[String]) -> R {
        match self.live(w) {
            Some(e) => self.pop_reply(e),
            None => self.take(w, queues, 0),
        }
    }

    fn end(&mut self, w: &str, how: Ended) -> Entry {
        let e = self.entries.get_mut(w).expect("entry");
        e.ended = Some(how);
        e.clone()
    }

    fn complete(&mut self, w: &str) {
        self.ev("acked", 1);
        let e = self.end(w, Ended::Acked);
        assert!(self.jobs[e.job].handed >= 1, "job {} done without having been delivered", e.job);
        self.done.push(e.job);
        self.processed += 1;
        self.worker_stats.entry(w.to_string()).or_default().0 += 1;
    }

    fn give_back(&mut self, e: &Entry, delay: u64) {
        if delay == 0 {
            self.queues.get_mut(&e.queue).expect("queue").push_front(e.job);
        } else {
            self.pending_delayed.push(e.job);
        }
        self.dhash.insert(self.jobs[e.job].payload.clone(), e.deliveries);
    }

    fn apply(&mut self, w: &str, op: &Op) -> R {
        match op {
            Op::Pop { queues, ack: None, .. } | Op::Bpop { queues, .. } => self.pop(w, queues),
            Op::Pop { queues, ack: Some(d), .. } => match self.report(w, *d) {
                Err(r) => r,
                Ok(Target::Held) => {
                    self.complete(w);
                    self.take(w, queues, *d)
                }
                Ok(Target::Ended(Ended::Acked)) => R::Nil,
                Ok(Target::TakenAfter) => self.pop_reply(self.live(w).expect("live")),
                Ok(Target::Ended(how)) => Self::ended_otherwise(w, *d, how),
            },
            Op::Ack(d) => match self.report(w, *d) {
                Err(r) => r,
                Ok(Target::Held) => {
                    self.complete(w);
                    R::Ok
                }
                Ok(Target::Ended(Ended::Acked) | Target::TakenAfter) => R::Ok,
                Ok(Target::Ended(how)) => Self::ended_otherwise(w, *d, how),
            },
            Op::Fail { delivery: d, retry } => {
                let reply = |retried: Option<u64>| match (retry, retried) {
                    (None, _) => R::Ok,
                    (Some(_), Some(delay)) => R::Arr(vec![R::Str("retry".into()), R::Int(delay as i64)]),
                    (Some(_), None) => R::Arr(vec![R::Str("failed".into()), R::Int(0)]),
                };
                match self.report(w, *d) {
                    Err(r) => r,
                    Ok(Target::Held) => {
                        self.failed_stat += 1;
                        self.ev("failed", 1);
                        self.worker_stats.entry(w.to_string()).or_default().1 += 1;
                        let deliveries = self.live(w).expect("live").deliveries;
                        match retry {
                            Some((attempts, backoff)) if deliveries < *attempts => {
                                let e = self.end(w, Ended::Retried { delay_ms: *backoff });
                                self.ev("retried", 1);
                                self.give_back(&e, *backoff);
                                reply(Some(*backoff))
                            }
                            _ => {
                                let e = self.end(w, Ended::Failed);
                                self.failed.push((e.job, w.to_string(), EXCEPTION.to_string()));
                                reply(None)
                            }
                        }
                    }
                    Ok(Target::Ended(Ended::Failed)) => reply(None),
                    Ok(Target::Ended(Ended::Retried { delay_ms })) => reply(Some(delay_ms)),
                    Ok(Target::TakenAfter) => Self::ended_otherwise(w, *d, Ended::Acked),
                    Ok(Target::Ended(how)) => Self::ended_otherwise(w, *d, how),
                }
            }
            Op::Nack { delivery: d, delay } => match self.report(w, *d) {
                Err(r) => r,
                Ok(Target::Held) => {
                    let e = self.end(w, Ended::Nacked);
                    self.ev("nacked", 1);
                    self.give_back(&e, delay.unwrap_or(0));
                    R::Ok
                }
                Ok(Target::Ended(Ended::Nacked)) => R::Ok,
                Ok(Target::TakenAfter) => Self::ended_otherwise(w, *d, Ended::Acked),
                Ok(Target::Ended(how)) => Self::ended_otherwise(w, *d, how),
            },
            Op::Heartbeat { delivery: None, .. } => R::Int(0),
            Op::Heartbeat { ms, delivery: Some(d) } => match self.report(w, *d) {
                Err(r) => r,
                Ok(Target::Held) => R::Int(*ms as i64),
                Ok(Target::TakenAfter) => Self::ended_otherwise(w, *d, Ended::Acked),
                Ok(Target::Ended(how)) => Self::ended_otherwise(w, *d, how),
            },
        }
    }

    /// The timer took back `w`'s job (lease run out at `until`).
    fn lease_lost(&mut self, w: &str, until: u64) {
        let mut e = self.end(w, Ended::LeaseLost);
        e.until = until;
        self.entries.insert(w.to_string(), e.clone());
        if e.deliveries < MAX_DELIVERIES {
            self.ev("lease_requeued", 1);
            self.give_back(&e, 0);
        } else {
            self.failed.push((e.job, w.to_string(), "TQ::LeaseExpired".to_string()));
            self.failed_stat += 1;
            self.ev("lease_failed", 1);
        }
    }

    /// What a command that changes nothing leaves as it was.
    fn fingerprint(&self) -> String {
        let entries: Vec<(u64, Option<Ended>)> = self.entries.values().map(|e| (e.delivery, e.ended)).collect();
        format!(
            "{:?}",
            (
                self.counter,
                self.processed,
                self.failed_stat,
                self.queues.values().map(VecDeque::len).collect::<Vec<_>>(),
                self.delayed.values().map(Vec::len).sum::<usize>() + self.pending_delayed.len(),
                self.failed.len(),
                entries,
                &self.dhash,
            )
        )
    }

    /// Every job in exactly one place; none done without having been
    /// delivered.
    fn self_check(&self) {
        let mut seen = vec![0u32; self.jobs.len()];
        let mut places: Vec<&str> = vec![""; self.jobs.len()];
        let mut put = |j: usize, place: &'static str| {
            seen[j] += 1;
            places[j] = place;
        };
        self.queues.values().flatten().for_each(|&j| put(j, "queue"));
        self.delayed.values().flatten().for_each(|&j| put(j, "delayed"));
        self.pending_delayed.iter().for_each(|&j| put(j, "delayed"));
        self.failed.iter().for_each(|(j, _, _)| put(*j, "failed"));
        self.done.iter().for_each(|&j| put(j, "done"));
        self.entries.values().filter(|e| e.ended.is_none()).for_each(|e| put(e.job, "in flight"));
        for (j, n) in seen.iter().enumerate() {
            assert_eq!(*n, 1, "model: job {j} ({}) is in {n} places", self.jobs[j].payload);
            if places[j] == "done" || places[j] == "failed" || places[j] == "in flight" {
                assert!(self.jobs[j].handed >= 1, "model: job {j} is {} without having been delivered", places[j]);
            }
        }
        assert_eq!(self.done.len() as u64, self.processed, "ledger: done vs processed");
    }
}

struct Client {
    conn: Option<Conn>,
    /// The delivery this worker process believes it holds.
    belief: Option<u64>,
    /// The last few deliveries it was handed, newest last.
    seen: Vec<u64>,
}

impl Client {
    fn new(conn: Option<Conn>) -> Client {
        Client { conn, belief: None, seen: Vec::new() }
    }

    /// What a take's reply tells the worker.
    fn took(&mut self, reply: &R) {
        self.belief = taken(reply).map(|t| t.0);
        if let Some(d) = self.belief {
            if self.seen.len() == 4 {
                self.seen.remove(0);
            }
            self.seen.push(d);
        }
    }
}

struct Run {
    rng: Rng,
    m: Model,
    server: Server,
    ctl: Conn,
    clients: Vec<Client>,
    names: Vec<String>,
    start_s: u64,
    next_arg: u64,
    step: usize,
    history: VecDeque<String>,
    /// `tq.lease-ms`.
    default_lease: u64,
    /// The server's clock at the last check, unix ms.
    last_ms: u64,
    /// (lease deadline replied, lease asked for) of the takes since.
    leases_seen: Vec<(u64, u64)>,
    kinds: BTreeMap<String, usize>,
    /// `INFO tq` counters not counted by the model: zero, until a failover
    /// whose timing leaves open which server counted a lease running out.
    info_base: BTreeMap<&'static str, i64>,
}

fn connect_worker(port: u16) -> Conn {
    let mut c = connect(port);
    c.read_timeout(Duration::from_secs(20));
    c
}

impl Run {
    fn note(&mut self, kind: &str, what: String) {
        *self.kinds.entry(kind.to_string()).or_default() += 1;
        if self.history.len() == 40 {
            self.history.pop_front();
        }
        self.history.push_back(format!("#{} {kind}: {what}", self.step));
    }

    fn key(&self, k: &str) -> String {
        format!("{}:{k}", self.m.ns)
    }

    fn check(&self, what: &str, want: &R, got: &R) {
        assert!(matches(want, got), "step {}: {what}\n  model expected {want:?}\n  server replied  {got:?}", self.step);
    }

    fn new_arg(&mut self, queue: &str) -> u64 {
        // Sometimes a twin: the payload of an earlier job of the same queue.
        if self.rng.chance(6) {
            let same: Vec<usize> = (0..self.m.jobs.len()).filter(|&j| self.m.jobs[j].queue == queue).collect();
            if !same.is_empty() {
                let j = same[self.rng.below(same.len())];
                let p = &self.m.jobs[j].payload;
                let start = p.rfind('[').expect("args") + 1;
                return p[start..p.len() - 2].parse().expect("arg");
            }
        }
        self.next_arg += 1;
        self.next_arg
    }

    fn step_enqueue(&mut self) {
        let q = ENQUEUE_QUEUES[self.rng.below(ENQUEUE_QUEUES.len())];
        let arg = self.new_arg(q);
        let j = self.m.add_job(q, arg);
        let want = self.m.enqueue_new(j);
        let got = to_r(self.ctl.q(&["TQ.ENQUEUE", &self.m.ns.clone(), q, CLASS, &format!("[{arg}]")]));
        self.note("enqueue", format!("{q} [{arg}] -> {got:?}"));
        self.check("TQ.ENQUEUE", &want, &got);
    }

    fn step_enqueue_at(&mut self) {
        let q = ENQUEUE_QUEUES[self.rng.below(ENQUEUE_QUEUES.len())];
        let arg = self.new_arg(q);
        let bucket = if self.rng.chance(60) {
            self.start_s - 1 - self.rng.below(30) as u64
        } else {
            self.start_s + 1_000_000 + self.rng.below(30) as u64
        };
        let j = self.m.add_job(q, arg);
        let want = self.m.enqueue_at(j, bucket);
        if matches!(want, R::Err(_)) {
            self.m.jobs.pop(); // refused: no job was made
        }
        let ms = (bucket * 1000).to_string();
        let got = to_r(self.ctl.q(&["TQ.ENQUEUEAT", &self.m.ns.clone(), &ms, q, CLASS, &format!("[{arg}]")]));
        self.note("enqueue-at", format!("{q} [{arg}] at {bucket} -> {got:?}"));
        self.check("TQ.ENQUEUEAT", &want, &got);
    }

    fn step_promote(&mut self) {
        let want = self.m.promote(self.start_s);
        let got = to_r(self.ctl.q(&["TQ.PROMOTE", &self.m.ns.clone(), "LIMIT", "100000"]));
        self.note("promote", format!("{got:?}"));
        self.check("TQ.PROMOTE", &want, &got);
    }

    fn pick_queues(&mut self) -> Vec<String> {
        QUEUE_LISTS[self.rng.below(QUEUE_LISTS.len())].iter().map(|s| s.to_string()).collect()
    }

    /// The delivery a report names: mostly the one the worker believes it
    /// holds, sometimes one it was handed before (the one a POP ... ACK
    /// completed, say), sometimes any.
    fn pick_delivery(&mut self, i: usize) -> u64 {
        let belief = self.clients[i].belief;
        let seen = self.clients[i].seen.clone();
        match belief {
            Some(b) if self.rng.chance(85) => b,
            _ if !seen.is_empty() && self.rng.chance(75) => seen[self.rng.below(seen.len())],
            _ => self.rng.below(self.m.counter as usize + 3) as u64,
        }
    }

    /// Sends a worker's command: once, twice on the same connection (a
    /// client's retry), or once with the reply lost (the connection drops
    /// before the reply is read) and again on a new connection. Each send is
    /// checked against the model, which applies the command each time: a
    /// repeat must answer as the first did and change nothing.
    fn send_op(&mut self, i: usize, op: Op, mode: u8) -> R {
        let w = self.names[i].clone();
        let args = op.args(&self.m.ns, &w);
        let before = self.m.fingerprint();
        let want = self.m.apply(&w, &op);
        // A refusal, a repeat, a pop finding nothing: nothing may be written
        // (checked on the AOF, which gets every write a command propagates).
        let no_write = matches!(want, R::Err(_))
            || (self.m.fingerprint() == before
                && !matches!(op, Op::Heartbeat { .. })
                && !matches!(&want, R::Arr(a) if a.len() == 5));
        let got = match mode {
            0 if no_write && self.rng.chance(25) => {
                // The timer's own job-metrics writes (a minute closing, an
                // idle worker's tally) reach the AOF too: the check is made
                // when none is due meanwhile (asked after the draw above, so
                // that the seed replays the same steps).
                let checked = !self.ctl.metrics_write_due_within(AOF_CHECK_MS);
                let size_before = self.aof_size();
                let got = to_r(self.clients[i].conn.as_mut().expect("conn").q(&args));
                if checked {
                    assert_eq!(
                        self.aof_size(),
                        size_before,
                        "step {}: {args:?} -> {got:?} wrote to the AOF",
                        self.step
                    );
                    self.note("no write (AOF checked)", String::new());
                }
                got
            }
            0 => to_r(self.clients[i].conn.as_mut().expect("conn").q(&args)),
            1 => {
                let first = to_r(self.clients[i].conn.as_mut().expect("conn").q(&args));
                self.check(&format!("{args:?} (first of two)"), &want, &first);
                let again = self.m.apply(&w, &op);
                assert!(
                    matches(&want, &again) && matches(&again, &want),
                    "model: a repeat answers {again:?}, the first {want:?}"
                );
                to_r(self.clients[i].conn.as_mut().expect("conn").q(&args))
            }
            _ => {
                let mut cmd = redis::Cmd::new();
                for a in &args {
                    cmd.arg(a);
                }
                let mut old = self.clients[i].conn.take().expect("conn");
                old.0.send_packed_command(&cmd.get_packed_command()).expect("send");
                drop(old);
                let again = self.m.apply(&w, &op);
                assert!(
                    matches(&want, &again) && matches(&again, &want),
                    "model: a repeat answers {again:?}, the first {want:?}"
                );
                let mut c = connect_worker(self.server.port);
                let got = to_r(c.q(&args));
                self.clients[i].conn = Some(c);
                got
            }
        };
        let outcome = match &got {
            R::Err(e) => e.split(' ').next().unwrap_or_default().to_string(),
            R::Nil => "nil".to_string(),
            R::Arr(a) if a.len() == 5 => "a job".to_string(),
            R::Arr(a) => format!("{:?}", a.first()),
            other => format!("{other:?}"),
        };
        let cmd = match &op {
            Op::Pop { ack: Some(_), .. } => "TQ.POP ACK",
            Op::Fail { retry: Some(_), .. } => "TQ.FAIL RETRY",
            Op::Heartbeat { delivery: None, .. } => "TQ.HEARTBEAT (no delivery)",
            _ => args[0].as_str(),
        };
        self.note(&format!("{cmd} -> {outcome}"), format!("{args:?} -> {got:?}"));
        if mode > 0 {
            self.note(["", "resent on the same connection", "resent after a lost reply"][mode as usize], String::new());
        }
        self.check(&format!("{args:?}"), &want, &got);
        if let (Op::Pop { lease, .. } | Op::Bpop { lease, .. }, R::Arr(a)) = (&op, &got) {
            if let Some(R::Int(until)) = a.get(4) {
                self.leases_seen.push((*until as u64, lease.unwrap_or(self.default_lease)));
            }
        }
        if let (Op::Heartbeat { ms, delivery: Some(_) }, R::Int(_)) = (&op, &got) {
            // The lease renewed to `ms` from the heartbeat.
            let raw = self.ctl.bytes(&["GET", &self.key(&format!("tq:inflight:{w}"))]).expect("entry");
            let e = InFlight::decode(&raw).expect("entry");
            self.leases_seen.push((e.lease_until_ms, *ms));
        }
        // What the worker process learns.
        let c = &mut self.clients[i];
        match (&op, &got) {
            (Op::Pop { .. } | Op::Bpop { .. }, r) => c.took(r),
            (Op::Heartbeat { .. }, R::Int(_)) => {}
            _ => c.belief = None,
        }
        got
    }

    /// The `INFO tq` event counters.
    fn info_counts(&mut self) -> BTreeMap<&'static str, i64> {
        let info = self.ctl.string(&["INFO", "tq"]).unwrap_or_default();
        INFO_EVENTS
            .iter()
            .map(|name| {
                let field = format!("tq_{name}:");
                let n = info.lines().find_map(|l| l.strip_prefix(&field)).and_then(|v| v.trim().parse().ok());
                (*name, n.unwrap_or_else(|| panic!("INFO tq has no {field}")))
            })
            .collect()
    }

    /// Waits until no AOF rewrite runs or waits to run: a replica starts one
    /// after its sync, and until it ends DEBUG LOADAOF would load the files
    /// from before the sync (Redis's behaviour, not tq's), and the AOF's size
    /// changes without a write.
    fn wait_aof_settled(&mut self) {
        let c = &mut self.ctl;
        wait_until(30, "the AOF rewrite to end", || {
            let info = c.string(&["INFO", "persistence"]).unwrap_or_default();
            info.lines().any(|l| l.trim() == "aof_rewrite_in_progress:0")
                && info.lines().any(|l| l.trim() == "aof_rewrite_scheduled:0")
        });
    }

    fn aof_size(&mut self) -> u64 {
        self.ctl.info_field("persistence", "aof_current_size").and_then(|v| v.parse().ok()).expect("aof_current_size")
    }

    /// Reads the bucket a job given back with a delay was filed under.
    fn observe_delayed(&mut self) {
        for j in std::mem::take(&mut self.m.pending_delayed) {
            let payload = self.m.jobs[j].payload.clone();
            let known: BTreeSet<String> = self
                .m
                .delayed
                .iter()
                .filter(|(_, l)| l.iter().any(|&k| self.m.jobs[k].payload == payload))
                .map(|(b, _)| format!("delayed:{b}"))
                .collect();
            let markers: BTreeSet<String> =
                self.ctl.strings(&["SMEMBERS", &self.key(&format!("timestamps:{payload}"))]).into_iter().collect();
            let new: Vec<&String> = markers.difference(&known).collect();
            assert_eq!(new.len(), 1, "step {}: one new bucket for {payload}: {markers:?} vs {known:?}", self.step);
            let bucket: u64 = new[0].strip_prefix("delayed:").and_then(|b| b.parse().ok()).expect("marker");
            let now_s = self.ctl.server_ms() / 1000;
            assert!(
                bucket >= now_s + FAR_MS / 1000 - 5 && bucket <= now_s + FAR_MS / 1000 + 60,
                "step {}: {payload} filed under {bucket}, now {now_s}",
                self.step
            );
            self.m.delayed.entry(bucket).or_default().push(j);
        }
    }

    /// Waits until the timer gave back `w`'s job of delivery `d` (its lease
    /// ran out), then applies that to the model.
    fn await_lease_lost(&mut self, w: &str, d: u64) {
        let key = self.key(&format!("tq:inflight:{w}"));
        let deadline = Instant::now() + Duration::from_secs(20);
        let until = loop {
            let raw = self.ctl.bytes(&["GET", &key]).expect("entry");
            let e = InFlight::decode(&raw).expect("entry");
            assert_eq!(e.delivery, d, "step {}: {w}'s entry names another delivery", self.step);
            if e.lost() {
                break e.lease_until_ms;
            }
            assert!(Instant::now() < deadline, "step {}: the lease of {w} never ran out", self.step);
            std::thread::sleep(Duration::from_millis(2));
        };
        // A heartbeat that made the lease run out made the worker's alive
        // mark run out with it: wait for the timer to drop that too, so that
        // it writes nothing later at a time the test does not know.
        let alive = self.key("tq:alive");
        wait_until(20, "the timer dropping an alive mark run out", || {
            self.ctl.string(&["ZSCORE", &alive, w]).is_none_or(|s| s.parse::<f64>().is_ok_and(|v| v > until as f64))
        });
        self.m.lease_lost(w, until);
        self.note("lease-expired", format!("{w} delivery {d}"));
    }

    fn alive(&mut self, i: usize) -> bool {
        self.clients[i].conn.is_some()
    }

    fn step_restart(&mut self, i: usize) {
        // A new process under the same name: it knows nothing, and its first
        // pop must hand out again the job the name holds.
        let held = self.m.live(&self.names[i]).map(|e| e.delivery);
        self.clients[i] = Client::new(Some(connect_worker(self.server.port)));
        self.note("restart", self.names[i].clone());
        let queues = self.pick_queues();
        let got = self.send_op(i, Op::Pop { queues, lease: Some(LONG_MS), ack: None }, 0);
        if let Some(d) = held {
            assert_eq!(taken(&got).map(|t| t.0), Some(d), "step {}: a restarted worker gets its job again", self.step);
        }
    }

    fn step_worker(&mut self) {
        let i = self.rng.below(WORKERS);
        if !self.alive(i) {
            return self.step_restart(i);
        }
        let mode = match self.rng.below(100) {
            0..=84 => 0,
            85..=92 => 1,
            _ => 2,
        };
        let lease = if self.rng.chance(50) { Some(LONG_MS) } else { None };
        let op = match self.rng.below(100) {
            0..=29 => {
                let queues = self.pick_queues();
                let ack = if self.rng.chance(40) && self.clients[i].belief.is_some() {
                    Some(self.pick_delivery(i))
                } else {
                    None
                };
                Op::Pop { queues, lease, ack }
            }
            30..=37 => {
                let queues = self.pick_queues();
                let w = self.names[i].clone();
                let ready = self.m.live(&w).is_some() || self.m.available(&queues);
                // Nothing to take: a short wait that times out.
                let timeout = if ready { 10_000 } else { 5 };
                Op::Bpop { queues, lease, timeout }
            }
            38..=59 => Op::Ack(self.pick_delivery(i)),
            60..=71 => {
                let retry = match self.rng.below(3) {
                    0 => None,
                    1 => Some((1 + self.rng.below(4) as u32, 0)),
                    _ => Some((1 + self.rng.below(4) as u32, FAR_MS)),
                };
                Op::Fail { delivery: self.pick_delivery(i), retry }
            }
            72..=83 => {
                let delay = match self.rng.below(3) {
                    0 => None,
                    1 => Some(0),
                    _ => Some(FAR_MS),
                };
                Op::Nack { delivery: self.pick_delivery(i), delay }
            }
            _ => {
                let delivery = if self.rng.chance(80) { Some(self.pick_delivery(i)) } else { None };
                Op::Heartbeat { ms: LONG_MS, delivery }
            }
        };
        self.send_op(i, op, mode);
        self.observe_delayed();
    }

    /// A take whose lease runs out at once (`LEASE 1`, or no LEASE while
    /// `tq.lease-ms` is 100): waits for the timer to give the job back.
    fn step_short_lease(&mut self) {
        let i = self.rng.below(WORKERS);
        if !self.alive(i) {
            return self.step_restart(i);
        }
        let queues = self.pick_queues();
        // (The setting's least value, 100 ms, makes this the slow way.)
        let by_setting = self.rng.chance(6);
        let got = if by_setting {
            self.ctl.ok(&["CONFIG", "SET", "tq.lease-ms", "100"]);
            self.default_lease = 100;
            let got = self.send_op(i, Op::Pop { queues, lease: None, ack: None }, 0);
            self.ctl.ok(&["CONFIG", "SET", "tq.lease-ms", &LONG_MS.to_string()]);
            self.light_check(); // the lease deadline, while tq.lease-ms is 100
            self.default_lease = LONG_MS;
            got
        } else {
            self.send_op(i, Op::Pop { queues, lease: Some(1), ack: None }, 0)
        };
        if let Some((d, _)) = taken(&got) {
            let w = self.names[i].clone();
            self.await_lease_lost(&w, d);
        }
    }

    /// The clock moves past a held job's lease (its worker alive or dead):
    /// a 1 ms heartbeat of that delivery, then the timer gives it back.
    fn step_expire(&mut self) {
        if let Some((w, d)) = self.expire_soon(1, None) {
            self.await_lease_lost(&w, d);
        }
    }

    /// TQ.BPOPs that block on an empty `z` queue: one or two waiters, each
    /// woken by an enqueue from another client (first come, first served,
    /// one job to one waiter), or a waiter killed while it waits (it leaves
    /// nothing behind: the job enqueued then stays in the queue).
    fn step_bpop_wakes(&mut self) {
        // (A z queue holds a job again when one taken from it was given back.)
        let Some(q) = QUEUES[3..].iter().copied().find(|q| self.m.queues[*q].is_empty()) else { return };
        let idle = |r: &Run| -> Vec<usize> {
            (0..WORKERS).filter(|&i| r.clients[i].conn.is_some() && r.m.live(&r.names[i]).is_none()).collect()
        };
        if idle(self).len() < 2 {
            // Free a worker: one that knows its job completes it.
            let holder = (0..WORKERS).find(|&i| {
                self.clients[i].conn.is_some()
                    && self.clients[i].belief.is_some()
                    && self.m.live(&self.names[i]).map(|e| e.delivery) == self.clients[i].belief
            });
            if let Some(i) = holder {
                let d = self.clients[i].belief.expect("belief");
                self.send_op(i, Op::Ack(d), 0);
            }
        }
        let mut idle = idle(self);
        if idle.is_empty() {
            return;
        }
        // 0: woken by an enqueue; 1: two waiters, each woken by an enqueue;
        // 2: the waiter killed while it waits; 3: woken by TQ.PROMOTE; 4: by
        // a TQ.NACK of another worker; 5: by a lease running out; 6: by an
        // enqueue after a DEBUG RELOAD while it waits.
        let mut variant = self.rng.below(7);
        if (4..=5).contains(&variant) && idle.len() < 2 {
            variant = 0;
        }
        let n = if variant == 1 && idle.len() >= 2 { 2 } else { 1 };
        let enqueue = |r: &mut Run| {
            let arg = r.new_arg(q);
            let j = r.m.add_job(q, arg);
            let want = r.m.enqueue_new(j);
            let got = to_r(r.ctl.q(&["TQ.ENQUEUE", &r.m.ns.clone(), q, CLASS, &format!("[{arg}]")]));
            r.check("TQ.ENQUEUE to a queue a TQ.BPOP waits on", &want, &got);
        };
        // Another worker holds a job of the queue, to give it back later.
        let holder = if (4..=5).contains(&variant) {
            let h = idle.remove(self.rng.below(idle.len()));
            enqueue(self);
            let got = self.send_op(h, Op::Pop { queues: vec![q.to_string()], lease: Some(LONG_MS), ack: None }, 0);
            let (d, _) = taken(&got).expect("the job just enqueued");
            Some((h, d))
        } else {
            None
        };
        let mut waiters = Vec::new();
        for _ in 0..n {
            waiters.push(idle.remove(self.rng.below(idle.len())));
        }
        let op = Op::Bpop { queues: vec![q.to_string()], lease: Some(LONG_MS), timeout: 0 };
        let blocked_before = self.ctl.blocked_clients();
        for (k, &i) in waiters.iter().enumerate() {
            let mut cmd = redis::Cmd::new();
            for a in op.args(&self.m.ns, &self.names[i]) {
                cmd.arg(a);
            }
            self.clients[i]
                .conn
                .as_mut()
                .expect("conn")
                .0
                .send_packed_command(&cmd.get_packed_command())
                .expect("send");
            // One at a time, so that the order they wait in is known.
            self.ctl.wait_blocked(blocked_before + k as i64 + 1);
        }
        if variant == 2 {
            let i = waiters[0];
            self.clients[i] = Client::new(None);
            self.ctl.wait_blocked(blocked_before);
            enqueue(self);
            self.note("TQ.BPOP blocked, its worker killed while it waits", self.names[i].clone());
            return;
        }
        for (k, &i) in waiters.iter().enumerate() {
            let how = match (variant, holder) {
                (3, _) => {
                    // A fresh payload: a twin could be refused as a duplicate.
                    self.next_arg += 1;
                    let arg = self.next_arg;
                    let j = self.m.add_job(q, arg);
                    let bucket = self.start_s - 1;
                    let want = self.m.enqueue_at(j, bucket);
                    let ms = (bucket * 1000).to_string();
                    let got =
                        to_r(self.ctl.q(&["TQ.ENQUEUEAT", &self.m.ns.clone(), &ms, q, CLASS, &format!("[{arg}]")]));
                    self.check("TQ.ENQUEUEAT", &want, &got);
                    let want = self.m.promote(self.start_s);
                    let got = to_r(self.ctl.q(&["TQ.PROMOTE", &self.m.ns.clone(), "LIMIT", "100000"]));
                    self.check("TQ.PROMOTE", &want, &got);
                    "TQ.PROMOTE"
                }
                (4, Some((h, d))) => {
                    self.send_op(h, Op::Nack { delivery: d, delay: None }, 0);
                    "another worker's TQ.NACK"
                }
                (5, Some((h, d))) => {
                    let hw = self.names[h].clone();
                    let got = to_r(self.ctl.q(&["TQ.HEARTBEAT", &self.m.ns.clone(), &hw, "1", &d.to_string()]));
                    self.check("TQ.HEARTBEAT 1 ms", &R::Int(1), &got);
                    self.await_lease_lost(&hw, d);
                    if self.m.queues[q].is_empty() {
                        // Delivered too often: it went to failed instead.
                        enqueue(self);
                        "an enqueue after a lease ran out on a job delivered too often"
                    } else {
                        "a lease running out"
                    }
                }
                (6, _) => {
                    let reload = self.rng.chance(50);
                    self.wait_aof_settled();
                    self.ctl.ok(&["DEBUG", if reload { "RELOAD" } else { "LOADAOF" }]);
                    assert_eq!(self.ctl.blocked_clients(), blocked_before + 1, "step {}: still waiting", self.step);
                    enqueue(self);
                    if reload {
                        "an enqueue after a DEBUG RELOAD"
                    } else {
                        "an enqueue after a DEBUG LOADAOF"
                    }
                }
                _ => {
                    enqueue(self);
                    "an enqueue"
                }
            };
            let w = self.names[i].clone();
            let want = self.m.apply(&w, &op);
            let got = to_r(self.clients[i].conn.as_mut().expect("conn").0.recv_response().map_err(|e| e.to_string()));
            self.note(&format!("TQ.BPOP blocked, woken by {how} ({} of {n})", k + 1), format!("{w} -> {got:?}"));
            self.check("the woken TQ.BPOP", &want, &got);
            if let R::Arr(a) = &got {
                if let Some(R::Int(until)) = a.get(4) {
                    self.leases_seen.push((*until as u64, LONG_MS));
                }
            }
            let c = &mut self.clients[i];
            c.took(&got);
            // The others still wait.
            assert_eq!(
                self.ctl.blocked_clients(),
                blocked_before + (n - k - 1) as i64,
                "step {}: waiters left",
                self.step
            );
        }
    }

    fn step_kill(&mut self) {
        let i = self.rng.below(WORKERS);
        self.clients[i] = Client::new(None);
        self.note("kill", self.names[i].clone());
    }

    /// A held job (if any) whose lease runs out `ms` from now: across a
    /// reload or a failover, the timer must still find it.
    /// Not a job of queue `not_of`, which a TQ.BPOP waits on (the job
    /// given back would wake it at a time the model does not know).
    fn expire_soon(&mut self, ms: u64, not_of: Option<&str>) -> Option<(String, u64)> {
        let live: Vec<(String, u64)> = self
            .m
            .entries
            .iter()
            .filter(|(_, e)| e.ended.is_none() && Some(e.queue.as_str()) != not_of)
            .map(|(w, e)| (w.clone(), e.delivery))
            .collect();
        if live.is_empty() {
            return None;
        }
        let (w, d) = live[self.rng.below(live.len())].clone();
        let got = to_r(self.ctl.q(&["TQ.HEARTBEAT", &self.m.ns.clone(), &w, &ms.to_string(), &d.to_string()]));
        self.check("TQ.HEARTBEAT", &R::Int(ms as i64), &got);
        Some((w, d))
    }

    /// DEBUG RELOAD (save and load the RDB) or DEBUG LOADAOF (load what
    /// was propagated to the AOF), a lease running out meanwhile.
    fn step_reload(&mut self) {
        let expiring = self.expire_soon(100, None);
        let how = if self.rng.chance(50) { "RELOAD" } else { "LOADAOF" };
        self.wait_aof_settled();
        self.ctl.ok(&["DEBUG", how]);
        self.note(&format!("DEBUG {how}"), String::new());
        if let Some((w, d)) = expiring {
            self.await_lease_lost(&w, d);
        }
        self.full_check();
    }

    fn send_bpop(&mut self, i: usize, q: &str) {
        let op = Op::Bpop { queues: vec![q.to_string()], lease: Some(LONG_MS), timeout: 0 };
        let mut cmd = redis::Cmd::new();
        for a in op.args(&self.m.ns, &self.names[i]) {
            cmd.arg(a);
        }
        let c = self.clients[i].conn.as_mut().expect("conn");
        c.0.send_packed_command(&cmd.get_packed_command()).expect("send");
    }

    /// Failover to a replica, WAITed for: the clients reconnect to it and
    /// carry on; a job whose lease runs out meanwhile is given back by one or
    /// the other; a worker blocked in TQ.BPOP when the primary went away
    /// sends it again to the new one, and an enqueue there wakes it.
    fn step_failover(&mut self) {
        let waiter = (0..WORKERS)
            .find(|&i| self.clients[i].conn.is_some() && self.m.live(&self.names[i]).is_none())
            .zip(QUEUES[3..].iter().copied().find(|q| self.m.queues[*q].is_empty()));
        let expiring = self.expire_soon(300, waiter.map(|(_, q)| q));
        if let Some((i, q)) = waiter {
            let before = self.ctl.blocked_clients();
            self.send_bpop(i, q);
            self.ctl.wait_blocked(before + 1);
        }
        let replica = start_replica(self.server.port, opts());
        wait_replicas_synced(&mut self.ctl, 1);
        let mut rc = replica.conn();
        rc.ok(&["REPLICAOF", "NO", "ONE"]);
        let old = std::mem::replace(&mut self.server, replica);
        drop(old);
        self.ctl = rc;
        for c in &mut self.clients {
            if c.conn.is_some() {
                c.conn = Some(connect_worker(self.server.port));
            }
        }
        self.note("failover", format!("to port {}", self.server.port));
        if let Some((w, d)) = expiring {
            self.await_lease_lost(&w, d);
        }
        if let Some((i, q)) = waiter {
            self.send_bpop(i, q);
            self.ctl.wait_blocked(1);
            let arg = self.new_arg(q);
            let j = self.m.add_job(q, arg);
            let want = self.m.enqueue_new(j);
            let got = to_r(self.ctl.q(&["TQ.ENQUEUE", &self.m.ns.clone(), q, CLASS, &format!("[{arg}]")]));
            self.check("TQ.ENQUEUE after the failover", &want, &got);
            let w = self.names[i].clone();
            let op = Op::Bpop { queues: vec![q.to_string()], lease: Some(LONG_MS), timeout: 0 };
            let want = self.m.apply(&w, &op);
            let got = to_r(self.clients[i].conn.as_mut().expect("conn").0.recv_response().map_err(|e| e.to_string()));
            self.note("TQ.BPOP sent again after the failover, woken by an enqueue", format!("{w} -> {got:?}"));
            self.check("the TQ.BPOP sent again after the failover", &want, &got);
            let c = &mut self.clients[i];
            c.took(&got);
        }
        self.wait_aof_settled();
        let counts = self.info_counts();
        self.info_base =
            counts.iter().map(|(k, v)| (*k, v - self.m.events.get(k).copied().unwrap_or(0) as i64)).collect();
        self.full_check();
    }

    /// A failover that loses the last writes: the replica is promoted, the
    /// old primary takes a few more commands, whose replies the workers see,
    /// then goes away. The new primary holds what the model held when the
    /// replica was promoted: those commands never happened there, and it
    /// mints again the delivery ids the old one minted meanwhile, which the
    /// workers still name in their reports (the model predicts each answer).
    fn step_lossy_failover(&mut self) {
        let replica = start_replica(self.server.port, opts());
        wait_replicas_synced(&mut self.ctl, 1);
        let mut rc = replica.conn();
        rc.ok(&["REPLICAOF", "NO", "ONE"]);
        let kept = self.m.clone();
        let lost_steps = 5 + self.rng.below(30);
        for _ in 0..lost_steps {
            match self.rng.below(10) {
                0..=1 => self.step_enqueue(),
                2 => self.step_enqueue_at(),
                3 => self.step_promote(),
                _ => self.step_worker(),
            }
            self.light_check();
        }
        let lost = self.m.counter - kept.counter;
        let old = std::mem::replace(&mut self.server, replica);
        drop(old);
        self.ctl = rc;
        self.m = kept;
        for c in &mut self.clients {
            if c.conn.is_some() {
                c.conn = Some(connect_worker(self.server.port));
            }
        }
        self.note(
            &format!("failover losing the last writes ({lost_steps} steps, {lost} deliveries to be minted again)"),
            format!("to port {}", self.server.port),
        );
        self.wait_aof_settled();
        let counts = self.info_counts();
        self.info_base =
            counts.iter().map(|(k, v)| (*k, v - self.m.events.get(k).copied().unwrap_or(0) as i64)).collect();
        self.light_check();
        self.full_check();
    }

    /// Counters and lengths, in one round trip; the lease deadlines replied
    /// since the last check: the lease asked for, from the time of the take.
    fn light_check(&mut self) {
        if !self.leases_seen.is_empty() {
            let now = self.ctl.server_ms();
            for (until, lease) in std::mem::take(&mut self.leases_seen) {
                assert!(
                    (self.last_ms..=now).contains(&(until - lease)),
                    "step {}: a take of a {lease} ms lease replied the deadline {until}, not {lease} ms after a time in {}..={now}",
                    self.step,
                    self.last_ms
                );
            }
            self.last_ms = now;
        }
        let mut p = redis::pipe();
        for q in QUEUES {
            p.cmd("LLEN").arg(self.key(&format!("queue:{q}")));
        }
        p.cmd("LLEN").arg(self.key("failed"));
        p.cmd("GET").arg(self.key("stat:processed"));
        p.cmd("GET").arg(self.key("stat:failed"));
        p.cmd("GET").arg(self.key("tq:delivery"));
        p.cmd("ZCARD").arg(self.key("tq:leases"));
        let got: Vec<Option<i64>> = p.query(&mut self.ctl.0).expect("light check");
        let some = |n: u64| if n == 0 { None } else { Some(n as i64) };
        let mut want: Vec<Option<i64>> = QUEUES.iter().map(|q| Some(self.m.queues[*q].len() as i64)).collect();
        want.push(Some(self.m.failed.len() as i64));
        want.push(some(self.m.processed));
        want.push(some(self.m.failed_stat));
        want.push(some(self.m.counter));
        want.push(Some(self.m.entries.values().filter(|e| e.ended.is_none()).count() as i64));
        assert_eq!(
            got, want,
            "step {}: [llen of the queues {QUEUES:?}, llen failed, processed, failed stat, delivery counter, leases] differ from the model",
            self.step
        );
    }

    /// The whole keyspace of the namespace against the model.
    fn full_check(&mut self) {
        self.m.self_check();
        let counts = self.info_counts();
        for (name, n) in counts {
            let want =
                self.m.events.get(name).copied().unwrap_or(0) as i64 + self.info_base.get(name).copied().unwrap_or(0);
            assert_eq!(n, want, "step {}: INFO tq's tq_{name} vs the model", self.step);
        }
        let ns = self.m.ns.clone();
        let m = &self.m;
        let c = &mut self.ctl;
        let step = self.step;
        let payloads = |l: Vec<usize>| l.into_iter().map(|j| m.jobs[j].payload.clone()).collect::<Vec<_>>();
        // Queues, in order.
        for q in QUEUES {
            let want = payloads(m.queues[q].iter().copied().collect());
            assert_eq!(c.lrange(&format!("{ns}:queue:{q}")), want, "step {step}: queue {q}");
        }
        let known: BTreeSet<String> = c.strings(&["SMEMBERS", &format!("{ns}:queues")]).into_iter().collect();
        assert_eq!(known, m.known_queues, "step {step}: {ns}:queues");
        // Delayed buckets and the payloads' markers.
        let sched = c.strings(&["ZRANGE", &format!("{ns}:delayed_queue_schedule"), "0", "-1"]);
        let want_sched: Vec<String> = m.delayed.keys().map(u64::to_string).collect();
        assert_eq!(sched, want_sched, "step {step}: the delayed schedule");
        let mut markers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (b, list) in &m.delayed {
            assert_eq!(c.lrange(&format!("{ns}:delayed:{b}")), payloads(list.clone()), "step {step}: bucket {b}");
            for &j in list {
                markers.entry(m.jobs[j].payload.clone()).or_default().insert(format!("delayed:{b}"));
            }
        }
        // Failed, in order.
        let failed = c.lrange(&format!("{ns}:failed"));
        assert_eq!(failed.len(), m.failed.len(), "step {step}: failed list length");
        for (rec, (j, w, exc)) in failed.iter().zip(&m.failed) {
            let rec: serde_json::Value = serde_json::from_str(rec).expect("failure record");
            let payload: serde_json::Value = serde_json::from_str(&m.jobs[*j].payload).expect("payload");
            assert_eq!(rec["payload"], payload, "step {step}: failure record {rec}");
            assert_eq!(rec["worker"], serde_json::Value::from(w.as_str()), "step {step}: failure record {rec}");
            assert_eq!(rec["exception"], serde_json::Value::from(exc.as_str()), "step {step}: failure record {rec}");
        }
        // The ledger.
        let stat = |c: &mut Conn, k: &str| {
            c.string(&["GET", &format!("{ns}:stat:{k}")]).map_or(0, |v| v.parse().expect("stat"))
        };
        assert_eq!(stat(c, "processed"), m.processed, "step {step}: stat:processed vs the ledger");
        assert_eq!(stat(c, "failed"), m.failed_stat, "step {step}: stat:failed vs the ledger");
        for w in &self.names {
            let (p, f) = m.worker_stats.get(w).copied().unwrap_or_default();
            assert_eq!(stat(c, &format!("processed:{w}")), p, "step {step}: stat:processed:{w}");
            assert_eq!(stat(c, &format!("failed:{w}")), f, "step {step}: stat:failed:{w}");
        }
        let counter = c.string(&["GET", &format!("{ns}:tq:delivery")]).map_or(0, |v| v.parse().expect("counter"));
        assert_eq!(counter, m.counter, "step {step}: the delivery counter");
        let dhash: BTreeMap<String, u32> = c
            .strings(&["HGETALL", &format!("{ns}:tq:deliveries")])
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv[1].parse().expect("count")))
            .collect();
        assert_eq!(dhash, m.dhash, "step {step}: {ns}:tq:deliveries");
        let registered: BTreeSet<String> = c.strings(&["SMEMBERS", &format!("{ns}:workers")]).into_iter().collect();
        assert_eq!(registered, m.registered, "step {step}: {ns}:workers");
        // In-flight entries: live jobs, tombstones, records and leases.
        let mut leases_want: BTreeMap<String, u64> = BTreeMap::new();
        let mut records_want: BTreeSet<String> = BTreeSet::new();
        for (w, e) in &m.entries {
            let raw = c
                .bytes(&["GET", &format!("{ns}:tq:inflight:{w}")])
                .unwrap_or_else(|| panic!("step {step}: {w} has no entry"));
            let got = InFlight::decode(&raw).expect("entry");
            let seen = (got.delivery, got.after, got.ended, got.deliveries, got.queue.clone(), got.queues.clone());
            let want = (
                e.delivery,
                e.after,
                e.ended,
                e.deliveries,
                e.queue.clone().into_bytes(),
                e.queues.clone().into_bytes(),
            );
            assert_eq!(seen, want, "step {step}: {w}'s entry");
            if e.ended.is_none() {
                leases_want.insert(w.clone(), got.lease_until_ms);
                let rk = format!("{ns}:worker:{w}:{}", e.queues);
                let rec = c
                    .string(&["GET", &rk])
                    .unwrap_or_else(|| panic!("step {step}: {w} holds a job but {rk} is missing"));
                let rec: serde_json::Value = serde_json::from_str(&rec).expect("record");
                let payload: serde_json::Value = serde_json::from_str(&m.jobs[e.job].payload).expect("payload");
                assert_eq!(rec["payload"], payload, "step {step}: {rk}");
                records_want.insert(rk);
            }
        }
        let leases: BTreeMap<String, u64> = c
            .strings(&["ZRANGE", &format!("{ns}:tq:leases"), "0", "-1", "WITHSCORES"])
            .chunks(2)
            .map(|kv| (kv[0].clone(), kv[1].parse().expect("score")))
            .collect();
        // One member per live entry, never later than its deadline (a
        // take-and-complete leaves the member at the earlier deadline; the
        // timer moves it on when it comes by).
        assert_eq!(
            leases.keys().collect::<Vec<_>>(),
            leases_want.keys().collect::<Vec<_>>(),
            "step {step}: {ns}:tq:leases vs the live entries"
        );
        for (w, score) in &leases {
            let until = leases_want.get(w).copied().unwrap_or(0);
            assert!(*score <= until, "step {step}: {w}'s lease member at {score}, after its deadline {until}");
        }
        // Every key is one the model accounts for; the job metrics' minutes
        // add up to the ledger.
        let keys = c.strings(&["KEYS", &format!("{ns}:*")]);
        let tallied = metrics_snapshot(c, &ns);
        for k in &keys {
            let rest = &k[ns.len() + 1..];
            let ok = match rest {
                _ if tq_core::keys::is_metrics(rest.as_bytes()) => true,
                "queues"
                | "delayed_queue_schedule"
                | "failed"
                | "workers"
                | "stat:processed"
                | "stat:failed"
                | "tq:delivery"
                | "tq:leases"
                | "tq:alive" => true,
                "tq:deliveries" => !m.dhash.is_empty(),
                _ if rest.starts_with("queue:") => true,
                _ if rest.starts_with("stat:") || rest.starts_with("worker:ping:") => true,
                _ if rest.starts_with("tq:inflight:") => m.entries.contains_key(&rest["tq:inflight:".len()..]),
                _ if rest.starts_with("delayed:") => {
                    rest["delayed:".len()..].parse::<u64>().is_ok_and(|b| m.delayed.contains_key(&b))
                }
                _ if rest.starts_with("timestamps:") => {
                    let p = &rest["timestamps:".len()..];
                    let got: BTreeSet<String> = c.strings(&["SMEMBERS", k]).into_iter().collect();
                    assert_eq!(Some(&got), markers.get(p), "step {step}: {k}");
                    true
                }
                _ if rest.starts_with("worker:") => records_want.contains(k),
                _ => false,
            };
            assert!(ok, "step {step}: key {k} is not accounted for by the model");
        }
        assert_eq!(tallied.processed, m.processed, "step {step}: jobs processed in the metrics vs the ledger");
        assert_eq!(tallied.failed, m.failed_stat, "step {step}: jobs failed in the metrics vs the ledger");
        assert_eq!(tallied.run.count(), m.processed + m.failed_stat, "step {step}: run times counted");
        assert!(tallied.wait.count() <= tallied.run.count(), "step {step}: wait times counted");
        let ts_keys = keys.iter().filter(|k| k[ns.len() + 1..].starts_with("timestamps:")).count();
        assert_eq!(ts_keys, markers.len(), "step {step}: timestamps keys");
        let record_keys = keys.iter().filter(|k| records_want.contains(*k)).count();
        assert_eq!(record_keys, records_want.len(), "step {step}: in-flight records");
    }

    fn run(&mut self, steps: usize) {
        let failover = steps / 3 + self.rng.below(steps / 10 + 1);
        let lossy_failover = 2 * steps / 3 + self.rng.below(steps / 10 + 1);
        let reload_every = 1000;
        while self.step < steps {
            self.step += 1;
            if self.step == failover {
                self.step_failover();
            } else if self.step == lossy_failover {
                self.step_lossy_failover();
            } else if self.step % reload_every == 0 {
                self.step_reload();
            }
            match self.rng.below(1000) {
                0..=119 => self.step_enqueue(),
                120..=169 => self.step_enqueue_at(),
                170..=249 => self.step_promote(),
                250..=879 => self.step_worker(),
                880..=914 => self.step_short_lease(),
                915..=949 => self.step_expire(),
                950..=964 => self.step_bpop_wakes(),
                965..=979 => self.step_kill(),
                _ => {
                    let i = self.rng.below(WORKERS);
                    self.step_restart(i)
                }
            }
            self.light_check();
            if self.step % CHECK_EVERY == 0 {
                self.full_check();
            }
        }
        self.full_check();
    }
}

#[test]
fn the_job_state_machine_follows_the_model() {
    let seed = tq_testkit::rng::seed("TQ_MODEL_SEED");
    let steps = tq_testkit::rng::steps("TQ_MODEL_STEPS", 20_000);
    println!("model run: seed {seed} (TQ_MODEL_SEED={seed} replays it), {steps} steps");
    let server = Server::start_with(opts());
    let mut ctl = server.conn();
    let start_s = ctl.server_ms() / 1000;
    let n = ns("model");
    let port = server.port;
    let mut run = Run {
        rng: Rng(seed),
        m: Model::new(&n),
        server,
        ctl,
        clients: (0..WORKERS).map(|_| Client::new(Some(connect_worker(port)))).collect(),
        names: (0..WORKERS).map(|i| format!("host:{i}")).collect(),
        start_s,
        next_arg: 0,
        step: 0,
        history: VecDeque::new(),
        last_ms: start_s * 1000,
        default_lease: LONG_MS,
        leases_seen: Vec::new(),
        kinds: BTreeMap::new(),
        info_base: BTreeMap::new(),
    };
    let started = Instant::now();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.run(steps)));
    if let Err(e) = result {
        eprintln!("model run FAILED at step {} with seed {seed} (replay: TQ_MODEL_SEED={seed})", run.step);
        eprintln!("last steps:\n{}", run.history.iter().cloned().collect::<Vec<_>>().join("\n"));
        std::panic::resume_unwind(e);
    }
    println!("{steps} steps in {:.1?}, by kind:", started.elapsed());
    for (k, v) in &run.kinds {
        println!("  {v:>6}  {k}");
    }
    let m = &run.m;
    println!(
        "jobs {}: done {}, failed {}, waiting {}, delayed {}, in flight {}; deliveries {}",
        m.jobs.len(),
        m.done.len(),
        m.failed.len(),
        m.queues.values().map(VecDeque::len).sum::<usize>(),
        m.delayed.values().map(Vec::len).sum::<usize>(),
        m.entries.values().filter(|e| e.ended.is_none()).count(),
        m.counter
    );
}
