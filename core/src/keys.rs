//! Every key name tq reads or writes. Nothing else in tq builds a key.
//!
//! The layout is node-resque 9.x's (`Connection.key()` joins the namespace and
//! the parts with `:`), so node-resque workers, queues and schedulers share the
//! data. Keys tq adds for itself live under `<ns>:tq:`, a prefix none of
//! node-resque's SCAN patterns (`stat:*`, `lock:*`, `workerslock:*`,
//! `delayed:*`, `worker:ping:*`) match.

use crate::error::{Result, TqError};

/// A validated namespace. All keys of one namespace share its hash slot when
/// the namespace carries a hash tag such as `{resque}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ns<'a>(&'a [u8]);

impl<'a> Ns<'a> {
    /// Checks a namespace. In cluster mode it must carry a hash tag, or its
    /// keys would be spread over slots that other nodes own.
    pub fn new(ns: &'a [u8], cluster: bool) -> Result<Self> {
        check_name("namespace", ns)?;
        if cluster && !has_hash_tag(ns) {
            return Err(TqError::arg(format!(
                "namespace '{}' has no hash tag; in Redis Cluster use one such as '{{{}}}' so all its keys share a slot",
                crate::error::show(ns),
                crate::error::show(ns)
            )));
        }
        Ok(Ns(ns))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    /// What every key of the namespace starts with (`<ns>:`): the prefix an
    /// ACL check of the whole namespace names.
    pub fn prefix(&self) -> Vec<u8> {
        self.key(&[b""])
    }

    fn key(&self, parts: &[&[u8]]) -> Vec<u8> {
        self.key_with_room(parts, 0)
    }

    /// `key`, with room for `room` more bytes (one allocation for a name
    /// finished by the caller).
    fn key_with_room(&self, parts: &[&[u8]], room: usize) -> Vec<u8> {
        let len = self.0.len() + parts.iter().map(|p| p.len() + 1).sum::<usize>() + room;
        let mut k = Vec::with_capacity(len);
        k.extend_from_slice(self.0);
        for p in parts {
            k.push(b':');
            k.extend_from_slice(p);
        }
        k
    }

    /// Set of queue names.
    pub fn queues(&self) -> Vec<u8> {
        self.key(&[QUEUES])
    }
    /// List of waiting payloads, RPUSH at the tail, LPOP from the head.
    pub fn queue(&self, q: &[u8]) -> Vec<u8> {
        self.key(&[b"queue", q])
    }
    /// Zset of due seconds; member and score are both the bucket number.
    pub fn delayed_schedule(&self) -> Vec<u8> {
        self.key(&[DELAYED_SCHEDULE])
    }
    /// List of payloads filed under one second.
    pub fn delayed(&self, bucket: &[u8]) -> Vec<u8> {
        self.key(&[b"delayed", bucket])
    }
    /// Set of `delayed:<ts>` markers for one payload.
    pub fn timestamps(&self, payload: &[u8]) -> Vec<u8> {
        self.key(&[b"timestamps", payload])
    }
    /// `timestamps(payload)` without the payload: the marker key is this
    /// followed by the payload's bytes.
    pub fn timestamps_prefix(&self) -> Vec<u8> {
        self.key(&[b"timestamps", b""])
    }
    /// Set of `<worker>:<queues>` entries.
    pub fn workers(&self) -> Vec<u8> {
        self.key(&[WORKERS])
    }
    /// The in-flight ("working on") record of a worker.
    pub fn worker_record(&self, worker: &[u8], queues: &[u8]) -> Vec<u8> {
        self.key(&[b"worker", worker, queues])
    }
    /// The in-flight record of a `<ns>:workers` member (`<worker>:<queues>`).
    pub fn worker_member_record(&self, member: &[u8]) -> Vec<u8> {
        self.key(&[b"worker", member])
    }
    pub fn failed(&self) -> Vec<u8> {
        self.key(&[b"failed"])
    }
    pub fn stat(&self, name: &[u8]) -> Vec<u8> {
        self.key(&[b"stat", name])
    }
    pub fn worker_stat(&self, name: &[u8], worker: &[u8]) -> Vec<u8> {
        self.key(&[b"stat", name, worker])
    }
    /// tq's own index entry for a worker's job in flight (an `InFlight`
    /// record), so ACK and FAIL find the job by worker name without scanning.
    /// One string per worker, so that a pop writes record and entry with one
    /// MSET and a completion removes both with one DEL.
    pub fn inflight(&self, worker: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"inflight", worker])
    }
}

impl Ns<'_> {
    /// A pair lock (`TQ.LOCK`): a string with a TTL.
    pub fn pair_lock(&self, name: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"lock", name])
    }
    /// A hash of pair locks (`TQ.HLOCK`), one per field.
    pub fn hash_lock(&self, key: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"hlock", key])
    }
    /// The namespace's fencing counter: every lock acquisition takes the
    /// next number, so tokens keep growing after a lock key expires.
    pub fn fence(&self) -> Vec<u8> {
        self.key(&[b"tq", b"fence"])
    }
    /// node-resque's scheduler leader lock (`queue.leader()` reads it).
    pub fn leader_lock(&self) -> Vec<u8> {
        self.key(&[b"resque_scheduler_leader_lock"])
    }
    /// node-resque QueueLock's key: one identical job waiting.
    pub fn queue_lock(&self, class: &[u8], queue: &[u8], args_json: &[u8]) -> Vec<u8> {
        self.key(&[b"lock", class, queue, args_json])
    }
    /// Lease deadlines of jobs in flight: zset worker -> unix ms.
    pub fn leases(&self) -> Vec<u8> {
        self.key(&[b"tq", b"leases"])
    }
    /// Workers alive (heartbeat not expired): zset worker -> unix ms.
    pub fn alive(&self) -> Vec<u8> {
        self.key(&[b"tq", b"alive"])
    }
    /// A worker's personal queue (broadcast jobs), checked before its queues.
    pub fn mailbox(&self, worker: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"mailbox", worker])
    }
    /// Delivery counts of jobs handed out more than once: hash payload -> n.
    pub fn deliveries(&self) -> Vec<u8> {
        self.key(&[b"tq", b"deliveries"])
    }
    /// Periodic tasks: hash payload -> `Recurring` record.
    pub fn recur(&self) -> Vec<u8> {
        self.key(&RECUR)
    }
    /// node-resque's worker ping record (its scheduler's stuck-worker check).
    pub fn ping(&self, worker: &[u8]) -> Vec<u8> {
        self.key(&[b"worker", b"ping", worker])
    }
    /// node-resque JobLock's key: one identical job running.
    pub fn job_lock(&self, class: &[u8], queue: &[u8], args_json: &[u8]) -> Vec<u8> {
        self.key(&[b"workerslock", class, queue, args_json])
    }
    /// Whether `key` is one of this namespace's JobLock keys. Key names kept
    /// inside tq's records are checked with it before use: a record is data
    /// a namespace's user can rewrite.
    pub fn is_job_lock(&self, key: &[u8]) -> bool {
        key.strip_prefix(self.0).is_some_and(|rest| rest.starts_with(b":workerslock:"))
    }
    /// Exact due times of the delayed jobs tq files: hash
    /// `<bucket>:<payload digest>` → unix ms (see `queue::enqueue_at`).
    pub fn exact_due(&self) -> Vec<u8> {
        self.key(&[b"tq", b"at"])
    }
    /// When each bucket holding jobs tq filed is due: zset bucket → unix ms
    /// (the earliest exact time of the jobs it holds).
    pub fn bucket_due(&self) -> Vec<u8> {
        self.key(&[b"tq", b"due"])
    }
    /// The namespace's delivery-id counter: every take mints the next number.
    pub fn delivery_seq(&self) -> Vec<u8> {
        self.key(&[b"tq", b"delivery"])
    }
    /// The Node package's global counters (`Stats.increment`): a hash.
    pub fn stats_global(&self) -> Vec<u8> {
        self.key(&[b"stats", b"global"])
    }
    /// One server's (process's) counters of the Node package: a hash.
    pub fn stats_local(&self, server: &[u8]) -> Vec<u8> {
        self.key(&[b"stats", b"local", server])
    }
    /// A SCAN pattern for every `stats_local` hash (the namespace escaped).
    pub fn stats_local_pattern(&self) -> Vec<u8> {
        let mut p = glob_escape(&self.key(&[b"stats", b"local", b""]));
        p.push(b'*');
        p
    }
    /// Paused queues (`TQ.PAUSE`): a set of queue names every tq take skips.
    pub fn paused(&self) -> Vec<u8> {
        self.key(&[b"tq", b"paused"])
    }
    /// A queue's arrival clock (`metrics::Clock`).
    pub fn clock(&self, queue: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"clock", queue])
    }
    /// The (queue, class) pairs that have metrics: a set of
    /// `metrics::pair` names.
    pub fn metrics_pairs(&self) -> Vec<u8> {
        self.key(&[b"tq", b"metrics"])
    }
    /// Minutes whose records the timer has yet to close: zset
    /// `<minute>:<pair>` → unix ms the minute ends.
    pub fn metrics_open(&self) -> Vec<u8> {
        self.key(&[b"tq", b"mopen"])
    }
    /// Workers whose in-flight entry holds jobs not yet in their minute's
    /// record (`records::OpenTally`): zset worker → unix ms by which the
    /// timer writes them.
    pub fn metrics_flush(&self) -> Vec<u8> {
        self.key(&[b"tq", b"mflush"])
    }
    /// One minute's `metrics::Tally` of a pair.
    pub fn metrics_minute(&self, minute: u64, pair: &[u8]) -> Vec<u8> {
        // Every job's report makes this name: digits written in place.
        let mut digits = [0u8; 20];
        self.key(&[b"tq", b"m", decimal(minute, &mut digits), pair])
    }
    /// `metrics_minute(minute, &metrics::pair(queue, class))`, made in one
    /// allocation: every job's report makes it.
    pub fn metrics_minute_of(&self, minute: u64, queue: &[u8], class: &[u8]) -> Vec<u8> {
        let mut digits = [0u8; 20];
        // The pair's brackets, quotes and comma, and a few escapes.
        let room = queue.len() + class.len() + 16;
        let mut k = self.key_with_room(&[b"tq", b"m", decimal(minute, &mut digits), b""], room);
        crate::metrics::write_pair(queue, class, &mut k);
        k
    }
    /// One hour's `metrics::Tally` of a pair.
    pub fn metrics_hour(&self, hour: u64, pair: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"h", hour.to_string().as_bytes(), pair])
    }
    /// A pair's totals over every closed minute.
    pub fn metrics_total(&self, pair: &[u8]) -> Vec<u8> {
        self.key(&[b"tq", b"t", pair])
    }
    /// The key of a lock named as `TQ.LOCKS` (node-resque's `locks()`)
    /// names it: `lock:...` (QueueLock), `workerslock:...` (JobLock) or
    /// `tq:lock:...` (pair lock); None for a name of any other key, so a
    /// lock name never reaches another kind of key (node-resque's
    /// `delLock`).
    pub fn lock_named(&self, name: &[u8]) -> Option<Vec<u8>> {
        lock_kind(name).filter(|(_, rest)| !rest.is_empty()).map(|_| self.key(&[name]))
    }
}

const QUEUES: &[u8] = b"queues";
const WORKERS: &[u8] = b"workers";
const DELAYED_SCHEDULE: &[u8] = b"delayed_queue_schedule";
const RECUR: [&[u8]; 2] = [b"tq", b"recur"];

/// What a key is to the module, told from its name alone (an effect names
/// its key, not the namespace it was built from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `<ns>:queues` or `<ns>:workers`: a namespace's small, hot registry
    /// sets (the module caches their members).
    Registry,
    /// `<ns>:delayed_queue_schedule`: its scores are seconds.
    DelayedSchedule,
    /// `<ns>:tq:recur`: the periodic tasks.
    Recur,
    Other,
}

/// The role of `key` (see [`Role`]).
pub fn role(key: &[u8]) -> Role {
    let is = |parts: &[&[u8]]| {
        let mut rest = key;
        for p in parts.iter().rev() {
            match rest.strip_suffix(*p).and_then(|r| r.strip_suffix(b":")) {
                Some(r) => rest = r,
                None => return false,
            }
        }
        true
    };
    if is(&[QUEUES]) || is(&[WORKERS]) {
        Role::Registry
    } else if is(&[DELAYED_SCHEDULE]) {
        Role::DelayedSchedule
    } else if is(&RECUR) {
        Role::Recur
    } else {
        Role::Other
    }
}

/// The kinds of lock `TQ.LOCKS` lists (node-resque's `locks()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// node-resque's QueueLock, `lock:CLASS:QUEUE:ARGS`: one identical job
    /// waiting.
    Queue,
    /// node-resque's JobLock, `workerslock:CLASS:QUEUE:ARGS`: one identical
    /// job running.
    Job,
    /// tq's pair lock, `tq:lock:NAME`.
    Pair,
}

impl LockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LockKind::Queue => "queue",
            LockKind::Job => "job",
            LockKind::Pair => "pair",
        }
    }
}

/// The kind of a lock named as `TQ.LOCKS` names it (the key without its
/// namespace), and the rest of the name after the kind's prefix.
pub fn lock_kind(name: &[u8]) -> Option<(LockKind, &[u8])> {
    [(LockKind::Queue, &b"lock:"[..]), (LockKind::Job, b"workerslock:"), (LockKind::Pair, b"tq:lock:")]
        .into_iter()
        .find_map(|(kind, prefix)| name.strip_prefix(prefix).map(|rest| (kind, rest)))
}

/// Suffixes of the keys that give a namespace timed work (delayed jobs,
/// leases, live workers, periodic tasks, metrics minutes to close and tallies to write): the module's timer serves every
/// namespace that has one.
const TIMED_SUFFIXES: [&[u8]; 7] =
    [b":delayed_queue_schedule", b":tq:leases", b":tq:alive", b":tq:recur", b":tq:due", b":tq:mopen", b":tq:mflush"];

/// The namespace of a timed key, if `key` is one.
pub fn timed_namespace(key: &[u8]) -> Option<&[u8]> {
    TIMED_SUFFIXES.iter().find_map(|suffix| key.strip_suffix(*suffix)).filter(|ns| !ns.is_empty())
}

/// Whether a key named `rest` after its namespace's `<ns>:` is one of the
/// job metrics' (`metrics`): tallies, their indexes, queue clocks.
pub fn is_metrics(rest: &[u8]) -> bool {
    [&b"tq:m:"[..], b"tq:h:", b"tq:t:", b"tq:clock:"].iter().any(|p| rest.starts_with(p))
        || rest == b"tq:metrics"
        || rest == b"tq:mopen"
        || rest == b"tq:mflush"
}

/// Whether `key` may be a queue's clock (`<ns>:tq:clock:<queue>`, see
/// `Ns::clock`): true for every clock, and for the rare other key whose
/// name holds `:tq:clock:` (a queue named so). Looks only at the `:`s.
pub fn maybe_clock(key: &[u8]) -> bool {
    const MARK: &[u8] = b":tq:clock:";
    let mut rest = key;
    while let Some(i) = rest.iter().position(|&b| b == b':') {
        let at = rest.get(i..).unwrap_or_default();
        if at.starts_with(MARK) {
            return true;
        }
        rest = at.get(1..).unwrap_or_default();
    }
    false
}

/// `n` in decimal, written at the end of `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(b) = buf.get_mut(i) {
            *b = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    buf.get(i..).unwrap_or_default()
}

/// The `delayed:<ts>` marker stored in `timestamps:<payload>` sets (no
/// namespace, as node-resque ≥ 2 and resque-scheduler write it).
pub fn delayed_marker(bucket: &[u8]) -> Vec<u8> {
    let mut m = b"delayed:".to_vec();
    m.extend_from_slice(bucket);
    m
}

/// The `<ns>:workers` member for a worker and its queue list.
pub fn worker_entry(worker: &[u8], queues: &[u8]) -> Vec<u8> {
    let mut m = worker.to_vec();
    m.push(b':');
    m.extend_from_slice(queues);
    m
}

/// Redis Cluster's rule: the slot comes from the bytes between the first `{`
/// and the next `}`, when that part is not empty.
pub fn has_hash_tag(key: &[u8]) -> bool {
    match key.iter().position(|&c| c == b'{') {
        Some(open) => match key.get(open + 1..).and_then(|r| r.iter().position(|&c| c == b'}')) {
            Some(len) => len > 0,
            None => false,
        },
        None => false,
    }
}

/// Names (namespace, queue, class, worker) must be non-empty UTF-8 without
/// NUL, so that they survive every client library and JSON round trip.
pub fn check_name(what: &str, name: &[u8]) -> Result<()> {
    if name.is_empty() {
        return Err(TqError::arg(format!("{what} must not be empty")));
    }
    if name.contains(&0) {
        return Err(TqError::arg(format!("{what} must not contain NUL bytes")));
    }
    if std::str::from_utf8(name).is_err() {
        return Err(TqError::arg(format!("{what} must be valid UTF-8")));
    }
    Ok(())
}

/// `s` matched literally by a glob pattern (SCAN MATCH, KEYS).
pub fn glob_escape(s: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for &c in s {
        if matches!(c, b'*' | b'?' | b'[' | b']' | b'\\') {
            out.push(b'\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_node_resque() {
        let ns = Ns::new(b"resque", false).expect("valid");
        assert_eq!(ns.queue(b"math"), b"resque:queue:math");
        assert_eq!(ns.queues(), b"resque:queues");
        assert_eq!(ns.delayed_schedule(), b"resque:delayed_queue_schedule");
        assert_eq!(ns.delayed(b"10"), b"resque:delayed:10");
        assert_eq!(ns.timestamps(b"{\"a\":1}"), b"resque:timestamps:{\"a\":1}");
        assert_eq!(ns.worker_record(b"h:1", b"a,b"), b"resque:worker:h:1:a,b");
        assert_eq!(ns.worker_stat(b"processed", b"h:1"), b"resque:stat:processed:h:1");
        assert_eq!(ns.stat(b"failed"), b"resque:stat:failed");
        assert_eq!(delayed_marker(b"10"), b"delayed:10");
        assert_eq!(worker_entry(b"h:1", b"*"), b"h:1:*");
        assert_eq!(ns.inflight(b"h:1"), b"resque:tq:inflight:h:1");
        assert_eq!(ns.leader_lock(), b"resque:resque_scheduler_leader_lock");
        assert_eq!(ns.queue_lock(b"c", b"q", b"[1]"), b"resque:lock:c:q:[1]");
        assert_eq!(ns.job_lock(b"c", b"q", b"[]"), b"resque:workerslock:c:q:[]");
        assert_eq!(ns.pair_lock(b"job-1"), b"resque:tq:lock:job-1");
        assert_eq!(ns.delivery_seq(), b"resque:tq:delivery");
        assert_eq!(ns.paused(), b"resque:tq:paused");
        assert!(ns.is_job_lock(&ns.job_lock(b"c", b"q", b"[]")));
        assert_eq!(ns.lock_named(b"lock:c:q:[1]"), Some(ns.queue_lock(b"c", b"q", b"[1]")));
        assert_eq!(ns.lock_named(b"workerslock:c:q:[]"), Some(ns.job_lock(b"c", b"q", b"[]")));
        assert_eq!(ns.lock_named(b"tq:lock:job-1"), Some(ns.pair_lock(b"job-1")));
        for other in
            [&b"queues"[..], b"lock:", b"tq:lock:", b"tq:fence", b"queue:lock:x", b"resque_scheduler_leader_lock"]
        {
            assert_eq!(ns.lock_named(other), None, "{}", String::from_utf8_lossy(other));
        }
        for foreign in [&b"other:workerslock:c:q:[]"[..], b"resque:lock:c:q:[]", b"resquex:workerslock:c", b"resque"] {
            assert!(!ns.is_job_lock(foreign), "{}", String::from_utf8_lossy(foreign));
        }
    }

    #[test]
    fn timed_keys_name_their_namespace() {
        assert_eq!(timed_namespace(b"resque:delayed_queue_schedule"), Some(&b"resque"[..]));
        assert_eq!(timed_namespace(b"{tq}:tq:leases"), Some(&b"{tq}"[..]));
        assert_eq!(timed_namespace(b"a:b:tq:recur"), Some(&b"a:b"[..]));
        assert_eq!(timed_namespace(b"a:tq:alive"), Some(&b"a"[..]));
        assert_eq!(timed_namespace(b"resque:queue:q"), None);
        assert_eq!(timed_namespace(b":tq:alive"), None);
        let ns = Ns::new(b"x", false).expect("valid");
        for k in [ns.delayed_schedule(), ns.leases(), ns.alive(), ns.recur()] {
            assert_eq!(timed_namespace(&k), Some(&b"x"[..]));
        }
    }

    #[test]
    fn roles_are_told_from_key_names() {
        let ns = Ns::new(b"a:b", false).expect("valid");
        assert_eq!(role(&ns.queues()), Role::Registry);
        assert_eq!(role(&ns.workers()), Role::Registry);
        assert_eq!(role(&ns.delayed_schedule()), Role::DelayedSchedule);
        assert_eq!(role(&ns.recur()), Role::Recur);
        for other in
            [ns.queue(b"q"), ns.failed(), ns.leases(), ns.delayed(b"17"), b"recur".to_vec(), b"x:tqrecur".to_vec()]
        {
            assert_eq!(role(&other), Role::Other, "{}", String::from_utf8_lossy(&other));
        }
        assert_eq!(lock_kind(b"lock:c:q:[]"), Some((LockKind::Queue, &b"c:q:[]"[..])));
        assert_eq!(lock_kind(b"workerslock:c:q:[]").map(|k| k.0), Some(LockKind::Job));
        assert_eq!(lock_kind(b"tq:lock:n").map(|k| k.0), Some(LockKind::Pair));
        assert_eq!(lock_kind(b"tq:fence"), None);
    }

    #[test]
    fn cluster_needs_a_hash_tag() {
        assert!(Ns::new(b"{tq}", true).is_ok());
        assert!(Ns::new(b"app:{tq}", true).is_ok());
        assert!(Ns::new(b"resque", true).is_err());
        assert!(Ns::new(b"{}resque", true).is_err());
        assert!(Ns::new(b"{resque", true).is_err());
        assert!(Ns::new(b"resque", false).is_ok());
    }

    #[test]
    fn every_clock_may_be_a_clock() {
        for (ns, queue) in [(&b"resque"[..], &b"q"[..]), (b"a:b", b"c:d"), (b"x", b"tq:clock:"), (b"app:{tq}", b"")] {
            let ns = Ns::new(ns, false).expect("valid");
            assert!(maybe_clock(&ns.clock(queue)), "{:?}", String::from_utf8_lossy(&ns.clock(queue)));
        }
        for other in [&b"resque:queue:q"[..], b"resque:tq:clocks:q", b"tq:clock:q", b"resque:tq:clock", b"", b":::"] {
            assert!(!maybe_clock(other), "{:?}", String::from_utf8_lossy(other));
        }
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("queue", b"").is_err());
        assert!(check_name("queue", b"a\0b").is_err());
        assert!(check_name("queue", b"\xff").is_err());
        assert!(check_name("queue", "é:ok,with spaces".as_bytes()).is_ok());
    }
}
