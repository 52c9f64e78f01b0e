//! Crash test: jobs survive workers being killed.
//!
//! 10,000 jobs, each with a unique id, are worked by a pool of worker
//! *processes* (this test binary re-executed, running `crash_worker_process`)
//! while a killer thread `kill -9`s a random worker every 100–300 ms and
//! starts a replacement under a new name. A worker pops with TQ.BPOP, works
//! a few ms (a few jobs much longer, with heartbeats; a few overrun their
//! lease on purpose), then completes the job with one EVAL that runs
//! `TQ.ACK` and, only if it succeeded, counts the id in a ledger hash, so
//! the ledger counts acknowledged completions exactly.
//!
//! In the end every id must have been completed exactly once (none lost,
//! none twice), with queues, leases, in-flight records and delivery counts
//! empty (apart from the tombstones of workers that lost their job), and
//! `stat:processed` = 10,000. `TQ_CRASH_SEED=<n>` replays a run's random
//! choices (the timing differs, of course).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::rng::Rng;
use common::*;

const JOBS: u64 = 10_000;
/// Jobs enqueued before the first worker starts; the rest are enqueued in
/// bursts while the workers run (and get killed), so workers also block.
const JOBS_UPFRONT: u64 = 2_000;
const WORKERS: usize = 6;
const LEASE_MS: u64 = 1_000;
/// Every this many ids one job is long (heartbeats) ...
const LONG_EVERY: u64 = 1_000;
/// ... and one overruns its lease (until one of its ACKs comes late).
const OVERRUN_EVERY: u64 = 2_000;
/// Priority order of every worker's pop.
const QUEUES: [&str; 2] = ["hi", "lo"];
const CLASS: &str = "Crash";
/// Set in a worker process: `port|ns|worker|seed|parent pid`.
const WORKER_ENV: &str = "TQ_CRASH_WORKER";
const DEADLINE: Duration = Duration::from_secs(120);
/// A worker that went this long without its lease being renewed expects
/// its ACK to be refused (`LEASELOST`); below it, a refusal is a bug.
const LEASE_SAFE_MS: u128 = (LEASE_MS - 250) as u128;

/// The completion: `TQ.ACK` and, only if it succeeded, the ledger, in one
/// atomic step. Also checks that the in-flight record tq held for the
/// worker is the job the worker thinks it holds, and counts how often the
/// job had been given back (its delivery count from the pop, less one)
/// before this completion.
///
/// KEYS: ns, ledger, stats, the worker's in-flight record, anomalies,
/// `<ns>:tq:deliveries`, the ids that overran. ARGV: worker, id, payload,
/// "1" when the worker let its lease run out (a refusal is then expected),
/// the kind of job, the delivery id, the delivery count.
const ACK_SCRIPT: &str = r#"
local rec = redis.call('GET', KEYS[4])
local given_back = tonumber(ARGV[7]) - 1
local r = redis.pcall('TQ.ACK', KEYS[1], ARGV[1], ARGV[6])
if type(r) == 'table' and r.err then
  local code = string.match(r.err, '^%S+') or r.err
  redis.call('HINCRBY', KEYS[3], 'ack-refused:' .. code, 1)
  if code == 'LEASELOST' and ARGV[5] == 'overrun' then
    redis.call('SADD', KEYS[7], ARGV[2])
  end
  if code ~= 'LEASELOST' or ARGV[4] ~= '1' then
    redis.call('RPUSH', KEYS[5], 'worker ' .. ARGV[1] .. ', job ' .. ARGV[2] .. ': TQ.ACK refused: ' .. r.err)
  end
  return code
end
local want = '"payload":' .. ARGV[3] .. '}'
if not rec or string.sub(rec, -#want) ~= want then
  redis.call('RPUSH', KEYS[5], 'worker ' .. ARGV[1] .. ', job ' .. ARGV[2] ..
    ': TQ.ACK accepted, but the in-flight record was ' .. tostring(rec))
end
if given_back > 0 then
  redis.call('HINCRBY', KEYS[3], 'acked-after-redelivery', 1)
  redis.call('HINCRBY', KEYS[3], 'given-back', given_back)
end
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[3], 'late-ack-accepted', 1)
end
if ARGV[5] == 'overrun' then
  redis.call('SADD', KEYS[7], ARGV[2])
end
redis.call('HINCRBY', KEYS[3], 'acked:' .. ARGV[5], 1)
redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
return 'OK'
"#;

/// The test's own keys (beside tq's, in the same namespace).
struct Keys {
    ledger: String,
    stats: String,
    anomalies: String,
    overran: String,
}

impl Keys {
    fn of(n: &str) -> Keys {
        Keys {
            ledger: format!("{n}:crashtest:ledger"),
            stats: format!("{n}:crashtest:stats"),
            anomalies: format!("{n}:crashtest:anomalies"),
            overran: format!("{n}:crashtest:overran"),
        }
    }
}

fn args_of(id: u64) -> String {
    format!(r#"[{{"id":{id}}}]"#)
}

// ---------------------------------------------------------------------------
// The worker process.

/// Runs only in a worker process (re-executed test binary with
/// `TQ_CRASH_WORKER` set); in a normal test run it returns at once.
#[test]
fn crash_worker_process() {
    let Ok(spec) = std::env::var(WORKER_ENV) else { return };
    let parts: Vec<&str> = spec.split('|').collect();
    let [port, n, name, seed, parent] = parts.as_slice() else { panic!("bad {WORKER_ENV}: {spec}") };
    let port: u16 = port.parse().expect("port");
    let seed: u64 = seed.parse().expect("seed");
    let parent: u32 = parent.parse().expect("parent pid");
    if let Err(e) = work(port, n, name, seed, parent) {
        eprintln!("crash worker {name}: {e}");
        std::process::exit(2);
    }
}

/// The worker loop. Returns Ok only when the test process is gone.
fn work(port: u16, n: &str, name: &str, seed: u64, parent: u32) -> Result<(), String> {
    let mut rng = Rng(seed);
    let mut c = connect(port);
    c.q(&["CLIENT", "SETNAME", name])?;
    let keys = Keys::of(n);
    let record = format!("{n}:worker:{name}:{}", QUEUES.join(","));
    let deliveries = format!("{n}:tq:deliveries");
    let lease = LEASE_MS.to_string();
    loop {
        if std::os::unix::process::parent_id() != parent {
            return Ok(()); // orphaned: the test is over
        }
        let timeout = rng.range(200, 2_000).to_string();
        let reply = c.q(&["TQ.BPOP", n, name, QUEUES[0], QUEUES[1], &timeout])?;
        // The lease runs from the pop, which the server did before replying.
        let mut renewed = Instant::now();
        let mut longest_gap = 0u128;
        let Some((queue, payload, delivery, count)) = taken_job(reply) else { continue };
        let id = serde_json::from_str::<serde_json::Value>(&payload)
            .ok()
            .and_then(|v| v["args"][0]["id"].as_u64())
            .ok_or_else(|| format!("popped a job without an id from {queue}: {payload}"))?;

        // "Work": a few ms, except for two kinds of jobs chosen by id: long
        // jobs, which run 1 to 1.5 leases and heartbeat every quarter
        // lease; and jobs that overrun their lease without a heartbeat
        // (so the late ACK gets LEASELOST) until one such ACK was made,
        // and are quick after that.
        let kind = if id % LONG_EVERY == LONG_EVERY / 2 {
            "long"
        } else if id % OVERRUN_EVERY == OVERRUN_EVERY / 3
            && c.q(&["SISMEMBER", &keys.overran, &id.to_string()])? == Value::Int(0)
        {
            "overrun"
        } else {
            "quick"
        };
        match kind {
            "long" => {
                let until = Instant::now() + Duration::from_millis(rng.range(LEASE_MS, LEASE_MS * 3 / 2));
                loop {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    std::thread::sleep(left.min(Duration::from_millis(LEASE_MS / 4)));
                    if Instant::now() >= until {
                        break;
                    }
                    let granted = c.q(&["TQ.HEARTBEAT", n, name, &lease, &delivery]);
                    longest_gap = longest_gap.max(renewed.elapsed().as_millis());
                    renewed = Instant::now();
                    match granted {
                        Ok(_) => {}
                        // The lease was lost: the ACK will tell.
                        Err(e) if e.starts_with("LEASELOST") || e.starts_with("NOJOB") => break,
                        Err(e) => return Err(e),
                    }
                }
            }
            "overrun" => std::thread::sleep(Duration::from_millis(LEASE_MS + rng.range(200, 300))),
            _ => std::thread::sleep(Duration::from_micros(rng.range(0, 3_000))),
        }

        longest_gap = longest_gap.max(renewed.elapsed().as_millis());
        let expect_lost = if longest_gap > LEASE_SAFE_MS { "1" } else { "0" };
        let id = id.to_string();
        let script_keys = [
            n,
            keys.ledger.as_str(),
            keys.stats.as_str(),
            record.as_str(),
            keys.anomalies.as_str(),
            deliveries.as_str(),
            keys.overran.as_str(),
        ];
        let mut args = vec!["EVAL", ACK_SCRIPT, "7"];
        args.extend(script_keys);
        args.extend([name, id.as_str(), payload.as_str(), expect_lost, kind, delivery.as_str(), count.as_str()]);
        c.q(&args)?;
        // Bookkeeping after the ACK: widens the window between ACK and the
        // next pop a little, so kills land there too.
        std::thread::sleep(Duration::from_micros(rng.range(0, 2_000)));
    }
}

// ---------------------------------------------------------------------------
// The pool of worker processes, as the test sees it.

struct Pool {
    port: u16,
    ns: String,
    logs: PathBuf,
    seed: u64,
    started: u64,
    live: Vec<(String, Child)>,
    /// Workers that exited without being killed: (name, status, log).
    unexpected: Vec<String>,
    stopped: bool,
}

impl Pool {
    fn spawn(&mut self) {
        if self.stopped {
            return;
        }
        self.started += 1;
        let name = format!("crash:{}", self.started);
        let seed = self.seed ^ self.started.wrapping_mul(0xA24B_AED4_963E_E407);
        let log = File::create(self.log_of(&name)).expect("create a worker log");
        let child = Command::new(std::env::current_exe().expect("the test binary"))
            .args(["--exact", "crash_worker_process", "--nocapture", "--test-threads", "1", "-q"])
            .env(WORKER_ENV, format!("{}|{}|{name}|{seed}|{}", self.port, self.ns, std::process::id()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn a worker process");
        self.live.push((name, child));
    }

    fn log_of(&self, name: &str) -> PathBuf {
        self.logs.join(format!("{}.log", name.replace(':', "-")))
    }

    /// `kill -9` the worker by PID and reap it.
    fn kill(&mut self, name: &str) {
        let i = self.live.iter().position(|(w, _)| w == name).expect("a live worker");
        let (_, mut child) = self.live.swap_remove(i);
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Notes (and replaces) workers that exited on their own: a worker
    /// never should.
    fn reap(&mut self) {
        let mut i = 0;
        while i < self.live.len() {
            match self.live[i].1.try_wait() {
                Ok(Some(status)) => {
                    let (name, _) = self.live.swap_remove(i);
                    let log = std::fs::read_to_string(self.log_of(&name)).unwrap_or_default();
                    self.unexpected.push(format!("worker {name} exited by itself ({status}); its stderr:\n{log}"));
                    self.spawn();
                }
                _ => i += 1,
            }
        }
    }

    fn stop(&mut self) {
        self.stopped = true;
        for (_, mut child) in self.live.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Kills every worker process on every exit path (and keeps the killer
/// thread from starting new ones).
struct StopPool(Arc<Mutex<Pool>>);

impl Drop for StopPool {
    fn drop(&mut self) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).stop();
    }
}

// ---------------------------------------------------------------------------
// The killer.

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Held a job when it died (tq's in-flight entry was live): the lease
    /// must give the job back.
    Holding,
    /// Waiting in TQ.BPOP.
    Blocked,
    /// Connected, neither holding a job nor blocked: between an ACK (or an
    /// empty pop) and its next pop.
    Between,
    /// Not connected yet (just started).
    Starting,
}

struct Kill {
    worker: String,
    phase: Phase,
}

/// `CLIENT LIST`: client name -> (flags, last command).
fn clients(c: &mut Conn) -> HashMap<String, (String, String)> {
    let list = c.string(&["CLIENT", "LIST"]).unwrap_or_default();
    list.lines()
        .filter_map(|line| {
            let field = |f: &str| {
                line.split_whitespace().find_map(|kv| kv.strip_prefix(f).map(str::to_string)).unwrap_or_default()
            };
            let name = field("name=");
            (!name.is_empty()).then(|| (name, (field("flags="), field("cmd="))))
        })
        .collect()
}

/// Every 100–300 ms, kills a worker and starts a replacement, until `done`
/// and workers were killed in every phase but holding a job (which `done`
/// rules out), or `deadline`. One kill in three targets a worker blocked in
/// TQ.BPOP, one in three a worker whose last command was its ACK script; the
/// rest are random. Each kill is classified once the server has dropped the
/// worker's connection.
fn killer(
    port: u16,
    n: String,
    pool: Arc<Mutex<Pool>>,
    done: Arc<AtomicBool>,
    seed: u64,
    deadline: Instant,
) -> Vec<Kill> {
    let mut rng = Rng(seed);
    let mut c = connect(port);
    let mut kills: Vec<Kill> = Vec::new();
    let finished = |kills: &[Kill]| {
        done.load(Ordering::SeqCst)
            && [Phase::Blocked, Phase::Between].iter().all(|p| kills.iter().any(|k| k.phase == *p))
    };
    while !finished(&kills) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(rng.range(100, 300)));
        if finished(&kills) {
            break;
        }
        let target;
        let was_seen;
        let was_blocked;
        {
            let mut p = pool.lock().unwrap_or_else(|e| e.into_inner());
            if p.stopped {
                break;
            }
            p.reap();
            let seen = clients(&mut c);
            let names: Vec<&String> = p.live.iter().map(|(w, _)| w).collect();
            let of = |want: &dyn Fn(&str, &str) -> bool| -> Vec<&String> {
                names.iter().copied().filter(|w| seen.get(*w).is_some_and(|(f, cmd)| want(f, cmd))).collect()
            };
            let preferred = match kills.len() % 3 {
                0 => of(&|flags, _| flags.contains('b')),
                1 => of(&|flags, cmd| !flags.contains('b') && cmd == "eval"),
                _ => Vec::new(),
            };
            let pick = if preferred.is_empty() { names } else { preferred };
            target = pick[(rng.next() % pick.len() as u64) as usize].clone();
            was_seen = seen.contains_key(&target);
            was_blocked = seen.get(&target).is_some_and(|(f, _)| f.contains('b'));
            p.kill(&target);
            p.spawn();
        }
        // Once the server has dropped the connection, nothing changes for
        // this worker any more but the expiry of a lease it holds.
        wait_until(10, &format!("the server dropping {target}'s connection"), || {
            !clients(&mut c).contains_key(&target)
        });
        let phase = match c.inflight(&n, &target) {
            Some(e) if e.live() => Phase::Holding,
            _ if was_blocked => Phase::Blocked,
            _ if was_seen => Phase::Between,
            _ => Phase::Starting,
        };
        kills.push(Kill { worker: target, phase });
    }
    kills
}

// ---------------------------------------------------------------------------
// The test.

fn enqueue(c: &mut Conn, n: &str, ids: std::ops::Range<u64>, rng: &mut Rng) {
    let mut pipe = redis::pipe();
    for id in ids {
        let queue = if rng.per_10k(3_000) { QUEUES[0] } else { QUEUES[1] };
        pipe.cmd("TQ.ENQUEUE").arg(n).arg(queue).arg(CLASS).arg(args_of(id));
    }
    let replies: Vec<Value> = pipe.query(&mut c.0).expect("TQ.ENQUEUE pipeline");
    for r in replies {
        assert!(matches!(r, Value::Int(len) if len >= 1), "TQ.ENQUEUE replied {r:?}");
    }
}

fn scan(c: &mut Conn, pattern: &str) -> Vec<String> {
    let mut cursor = "0".to_string();
    let mut found = Vec::new();
    loop {
        let reply = c.ok(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
        let Value::Array(parts) = reply else { panic!("SCAN replied {reply:?}") };
        let [Value::BulkString(next), Value::Array(keys)] = parts.as_slice() else { panic!("SCAN replied {parts:?}") };
        for k in keys {
            if let Value::BulkString(k) = k {
                found.push(String::from_utf8_lossy(k).into_owned());
            }
        }
        cursor = String::from_utf8_lossy(next).into_owned();
        if cursor == "0" {
            return found;
        }
    }
}

fn hash(c: &mut Conn, key: &str) -> BTreeMap<String, i64> {
    c.strings(&["HGETALL", key]).chunks(2).map(|kv| (kv[0].clone(), kv[1].parse().expect("a count"))).collect()
}

/// Where the jobs missing from the ledger are, for the failure message.
fn whereabouts(c: &mut Conn, n: &str, ledger: &BTreeMap<String, i64>) -> String {
    let missing: Vec<u64> = (0..JOBS).filter(|id| !ledger.contains_key(&id.to_string())).collect();
    let mut out = format!("{} ids never completed", missing.len());
    let records = scan(c, &format!("{n}:worker:*"));
    for id in missing.iter().take(10) {
        let payload = job("?", CLASS, &args_of(*id));
        let mut places = Vec::new();
        for q in QUEUES {
            let p = payload.replace(r#""queue":"?""#, &format!(r#""queue":"{q}""#));
            if let Ok(Value::Int(i)) = c.q(&["LPOS", &format!("{n}:queue:{q}"), &p]) {
                places.push(format!("queue {q} at {i}"));
            }
            if let Some(d) = c.string(&["HGET", &format!("{n}:tq:deliveries"), &p]) {
                places.push(format!("given back {d} times"));
            }
        }
        for r in &records {
            if c.string(&["GET", r]).is_some_and(|v| v.contains(&args_of(*id))) {
                places.push(format!("in flight: {r}"));
            }
        }
        out.push_str(&format!("\n  id {id}: {}", if places.is_empty() { "nowhere".into() } else { places.join(", ") }));
    }
    out
}

#[test]
fn jobs_survive_workers_killed_with_sigkill() {
    let seed = tq_testkit::rng::seed("TQ_CRASH_SEED");
    eprintln!("crash test seed {seed} (TQ_CRASH_SEED={seed} replays its random choices)");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let s = Server::start_with(Opts {
        module_args: vec!["lease-ms".into(), LEASE_MS.to_string(), "max-deliveries".into(), "1000".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    let n = ns("crash");
    let keys = Keys::of(&n);
    let logs = s.dir.join("workers");
    std::fs::create_dir_all(&logs).expect("worker log dir");

    enqueue(&mut c, &n, 0..JOBS_UPFRONT, &mut rng);

    let pool = Arc::new(Mutex::new(Pool {
        port: s.port,
        ns: n.clone(),
        logs,
        seed: rng.next(),
        started: 0,
        live: Vec::new(),
        unexpected: Vec::new(),
        stopped: false,
    }));
    // Dropped before the server (declared after it): workers die first.
    let _stop = StopPool(pool.clone());
    for _ in 0..WORKERS {
        pool.lock().unwrap().spawn();
    }
    let done = Arc::new(AtomicBool::new(false));
    let killer = {
        let (pool, done, n, seed) = (pool.clone(), done.clone(), n.clone(), rng.next());
        let port = s.port;
        let deadline = started + DEADLINE;
        std::thread::spawn(move || killer(port, n, pool, done, seed, deadline))
    };
    // Stops the killer on every exit path too.
    struct Done(Arc<AtomicBool>);
    impl Drop for Done {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let _done = Done(done.clone());

    // The rest in bursts, with pauses long enough for the workers to drain
    // the queues and block.
    let mut next = JOBS_UPFRONT;
    while next < JOBS {
        let end = (next + rng.range(1, 300)).min(JOBS);
        enqueue(&mut c, &n, next..end, &mut rng);
        next = end;
        std::thread::sleep(Duration::from_millis(rng.range(20, 300)));
    }
    let enqueued_in = started.elapsed();

    let deadline = started + DEADLINE;
    loop {
        if c.int(&["HLEN", &keys.ledger]) >= JOBS as i64 {
            break;
        }
        if Instant::now() > deadline {
            let ledger = hash(&mut c, &keys.ledger);
            panic!("not every job completed in {DEADLINE:?}: {}", whereabouts(&mut c, &n, &ledger));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let all_acked_in = started.elapsed();
    done.store(true, Ordering::SeqCst);
    let kills = killer.join().expect("the killer thread");

    // Let any lease that could still expire expire (twice over), with the
    // workers still running: a job given back now would be completed again.
    std::thread::sleep(Duration::from_millis(2 * LEASE_MS + 500));
    let unexpected = {
        let mut p = pool.lock().unwrap();
        p.reap();
        std::mem::take(&mut p.unexpected)
    };
    assert!(unexpected.is_empty(), "worker processes died without being killed:\n{}", unexpected.join("\n"));

    let anomalies = c.lrange(&keys.anomalies);
    assert!(
        anomalies.is_empty(),
        "{} anomalies, the first ones:\n{}",
        anomalies.len(),
        anomalies[..anomalies.len().min(20)].join("\n")
    );

    // Exactly once each.
    let ledger = hash(&mut c, &keys.ledger);
    let twice: Vec<_> = ledger.iter().filter(|(_, &count)| count != 1).take(20).collect();
    assert!(twice.is_empty(), "jobs completed more than once (id, times): {twice:?}");
    let strangers: Vec<_> = ledger.keys().filter(|id| id.parse::<u64>().map_or(true, |id| id >= JOBS)).collect();
    assert!(strangers.is_empty(), "ids that were never enqueued: {strangers:?}");
    assert_eq!(ledger.len() as u64, JOBS, "{}", whereabouts(&mut c, &n, &ledger));

    // Nothing left behind.
    for q in QUEUES {
        assert_eq!(c.lrange(&format!("{n}:queue:{q}")), Vec::<String>::new(), "queue {q} is empty");
    }
    assert_eq!(c.int(&["ZCARD", &format!("{n}:tq:leases")]), 0, "no lease left");
    assert_eq!(hash(&mut c, &format!("{n}:tq:deliveries")), BTreeMap::new(), "no delivery count left");
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 0, "no job failed: {:?}", c.lrange(&format!("{n}:failed")));
    let ping = format!("{n}:worker:ping:");
    let records: Vec<String> =
        scan(&mut c, &format!("{n}:worker:*")).into_iter().filter(|k| !k.starts_with(&ping)).collect();
    assert_eq!(records, Vec::<String>::new(), "no in-flight record left");
    let mut tombstones = BTreeMap::new();
    for key in scan(&mut c, &format!("{n}:tq:inflight:*")) {
        let worker = key.rsplit_once(":tq:inflight:").expect("an index key").1.to_string();
        let entry = c.inflight(&n, &worker).expect("an index entry");
        assert!(!entry.live(), "{worker}'s in-flight entry is live after all jobs completed: {entry:?}");
        tombstones.insert(worker, entry);
    }

    // Counts.
    assert_eq!(c.int(&["GET", &format!("{n}:stat:processed")]), JOBS as i64, "stat:processed");
    let mut per_worker = 0;
    for key in scan(&mut c, &format!("{n}:stat:processed:*")) {
        per_worker += c.int(&["GET", &key]);
    }
    assert_eq!(per_worker, JOBS as i64, "the sum of stat:processed:<worker>");
    assert_eq!(c.q(&["GET", &format!("{n}:stat:failed")]), Ok(Value::Nil), "stat:failed");

    // The kills: every phase hit, and every job held by a killed worker
    // given back by its lease.
    let mut by_phase: BTreeMap<Phase, usize> = BTreeMap::new();
    for k in &kills {
        *by_phase.entry(k.phase).or_default() += 1;
        if k.phase == Phase::Holding {
            assert!(tombstones.contains_key(&k.worker), "{} died holding a job, yet left no tombstone", k.worker);
        }
    }
    let stats = hash(&mut c, &keys.stats);
    let stat = |name: &str| stats.get(name).copied().unwrap_or(0);
    let holding = by_phase.get(&Phase::Holding).copied().unwrap_or(0) as i64;
    let lease_lost = stat("ack-refused:LEASELOST");
    let given_back = stat("given-back");
    eprintln!(
        "crash test: {JOBS} jobs, all enqueued after {:.1}s, all acknowledged after {:.1}s, checked after {:.1}s",
        enqueued_in.as_secs_f64(),
        all_acked_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    eprintln!("  {} workers started, {} killed with SIGKILL: {by_phase:?}", pool.lock().unwrap().started, kills.len());
    eprintln!("  test counters: {stats:?}");
    eprintln!(
        "  lease expiries (jobs given back): {given_back}; jobs completed after a redelivery: {}; \
         late ACKs refused with LEASELOST: {lease_lost}; late ACKs accepted before the timer took the job back: {}; \
         tombstones left by dead workers: {}",
        stat("acked-after-redelivery"),
        stat("late-ack-accepted"),
        tombstones.len()
    );
    for phase in [Phase::Holding, Phase::Blocked, Phase::Between] {
        assert!(by_phase.get(&phase).is_some_and(|&k| k > 0), "no worker was killed in phase {phase:?}: {by_phase:?}");
    }
    assert!(
        given_back >= holding + lease_lost,
        "every job held by a killed worker ({holding}) and every LEASELOST ({lease_lost}) is a lease expiry, \
         yet the delivery counts show {given_back}"
    );
    assert_eq!(
        stats.keys().filter(|k| k.starts_with("ack-refused:") && *k != "ack-refused:LEASELOST").count(),
        0,
        "{stats:?}"
    );
    assert_eq!(stat("acked:long"), (JOBS / LONG_EVERY) as i64, "every long job completed under heartbeats: {stats:?}");
    // (A LEASELOST where the lease was kept renewed is an anomaly, above.)
    assert!(
        lease_lost + stat("acked:overrun") >= (JOBS / OVERRUN_EVERY) as i64
            && stat("acked:overrun") <= stat("late-ack-accepted"),
        "every job made to overrun its lease got a late ACK: {stats:?}"
    );
}
