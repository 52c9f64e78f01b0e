//! Delivery ids and the ways a job could be lost, stranded or run twice:
//! a worker restarted under the same name, a worker that cannot read
//! `tq.lease-ms`, records rewritten to name keys outside the namespace, a
//! fresh copy inheriting a redelivered twin's count, and in-flight data that
//! cannot be read when a lease runs out.

mod common;

use std::path::Path;

use common::*;
use tq_core::records::InFlight;

fn lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_string).collect()
}

fn failure_records(c: &mut Conn, n: &str) -> Vec<serde_json::Value> {
    c.lrange(&format!("{n}:failed")).iter().map(|r| serde_json::from_str(r).expect("failure record JSON")).collect()
}

fn stat(c: &mut Conn, n: &str, name: &str) -> i64 {
    c.string(&["GET", &format!("{n}:stat:{name}")]).map_or(0, |v| v.parse().expect("counter"))
}

/// `tq work --name fixed:1` killed with SIGKILL while it runs a job and
/// started again under the same name: the new process gets the job the name
/// held from its first pop and runs it at once, not after the lease (60 s
/// here; the job must run again well before). Before delivery ids, its
/// heartbeats renewed the orphan's lease for ever and the job never ran.
#[test]
fn tq_work_restarted_under_the_same_name_runs_the_job_its_name_held() {
    let s = Server::start_with(Opts::timer());
    let n = ns("restart");
    let h = s.dir.join("handlers");
    let ledger = s.dir.join("ledger");
    let marker = s.dir.join("second");
    // The first run hangs; the second finishes at once.
    write_script(
        &h,
        "Long",
        &format!(
            "echo start >> '{l}'; if [ -e '{m}' ]; then exit 0; fi; touch '{m}'; sleep 60",
            l = ledger.display(),
            m = marker.display()
        ),
    );
    let mut c = s.conn();
    c.ok(&["TQ.ENQUEUE", &n, "q", "Long", "[1]"]);
    let args = ["--ns", n.as_str(), "work", "--handlers", h.to_str().expect("utf8"), "--queues", "q"];
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--name", "fixed:1", "--lease", "60s"]);
    let mut first = Tq::spawn(s.port, &args, &s.dir.join("first.log"));
    first.wait_log(30, "start Long from q");
    first.kill_groups();
    let mut second = Tq::spawn(s.port, &args, &s.dir.join("second.log"));
    // 20 s: a third of the lease; waiting for the lease would take 60 s.
    wait_until(20, "the job run again by the restarted worker", || stat(&mut c, &n, "processed") == 1);
    assert_eq!(lines(&ledger), ["start", "start"], "ran twice: the killed run and the rerun");
    assert!(second.log().contains("start Long from q (delivery 1)"), "{}", second.log());
    assert!(c.live_inflight(&n).is_empty());
    assert_eq!(stat(&mut c, &n, "failed"), 0);
    common::send_signal("TERM", &second.pid().to_string());
    second.wait_exit(30);
}

/// A worker user that may not run CONFIG (`-@admin`) against a server whose
/// `tq.lease-ms` is 1 s: `tq work` used to assume 60 s and heartbeat after
/// 20 s, so a 3 s job's lease ran out and the job started again on another
/// slot while it still ran. Every take now names its lease.
#[test]
fn a_worker_that_cannot_read_the_lease_setting_runs_each_job_once() {
    let s = Server::start_with(Opts::timer());
    let n = ns("leaseguess");
    let mut c = s.conn();
    c.ok(&["CONFIG", "SET", "tq.lease-ms", "1000"]);
    c.ok(&["ACL", "SETUSER", "wk", "on", ">pw", "+@all", "-@admin", &format!("~{n}"), &format!("~{n}:*")]);
    let h = s.dir.join("handlers");
    let ledger = s.dir.join("ledger");
    write_script(&h, "Slow", &format!("echo start >> '{}'; sleep 3", ledger.display()));
    c.ok(&["TQ.ENQUEUE", &n, "q", "Slow", "[1]"]);
    let url = format!("redis://wk:pw@127.0.0.1:{}/", s.port);
    let args = ["--ns", n.as_str(), "work", "--handlers", h.to_str().expect("utf8"), "--queues", "q"];
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--concurrency", "2"]);
    let mut tq = Tq::spawn_url(&url, &args, &s.dir.join("tq.log"));
    wait_until(30, "the job done", || stat(&mut c, &n, "processed") == 1);
    assert_eq!(lines(&ledger), ["start"], "started once; log:\n{}", tq.log());
    assert!(failure_records(&mut c, &n).is_empty());
    assert!(!tq.log().contains("LEASELOST"), "{}", tq.log());
    common::send_signal("TERM", &tq.pid().to_string());
    tq.wait_exit(30);
}

/// A user limited to `~ns1 ~ns1:*` rewrites its worker's in-flight entry so
/// that the JobLock it names is a key of another namespace (or any key),
/// then lets the lease run out or heartbeats: the timer, which runs as no
/// user, used to delete or re-time that key. Keys named by tq's records are
/// used only inside the namespace.
#[test]
fn a_rewritten_in_flight_entry_reaches_no_key_outside_its_namespace() {
    let s = Server::start_with(Opts::timer());
    let mut admin = s.conn();
    let (n, other) = (ns("acl-a"), ns("acl-b"));
    let foreign = [format!("{other}:resque_scheduler_leader_lock"), "app:session:42".to_string()];
    for k in &foreign {
        admin.ok(&["SET", k, "v", "PX", "600000"]);
    }
    admin.ok(&["ACL", "SETUSER", "tenant", "on", ">pw", "+@all", &format!("~{n}"), &format!("~{n}:*")]);
    let mut t = s.conn();
    t.ok(&["AUTH", "tenant", "pw"]);
    assert!(t.err(&["DEL", &foreign[1]]).starts_with("NOPERM"));
    for (i, key) in foreign.iter().enumerate() {
        let w = format!("w{i}");
        t.ok(&["TQ.ENQUEUE", &n, "q", "c", &format!("[{i}]")]);
        t.ok(&["TQ.POP", &n, &w, "q", "JOBLOCK", "60000"]);
        let index = format!("{n}:tq:inflight:{w}");
        let raw = t.bytes(&["GET", &index]).expect("entry");
        let mut e = InFlight::decode(&raw).expect("decodes");
        e.joblock = Some((key.as_bytes().to_vec(), b"v".to_vec()));
        t.ok(&[b"SET".to_vec(), index.as_bytes().to_vec(), e.encode()]);
        // A heartbeat would extend the lock it names past its own expiry.
        let d = e.delivery.to_string();
        t.ok(&["TQ.HEARTBEAT", &n, &w, "900000", &d]);
        // Then the lease is made to run out now.
        let mut e = InFlight::decode(&t.bytes(&["GET", &index]).expect("entry")).expect("decodes");
        e.lease_until_ms = 1;
        t.ok(&[b"SET".to_vec(), index.as_bytes().to_vec(), e.encode()]);
        t.ok(&["ZADD", &format!("{n}:tq:leases"), "1", &w]);
        wait_until(10, "the lease expiry", || t.inflight(&n, &w).is_some_and(|e| e.lost()));
    }
    for k in &foreign {
        assert_eq!(admin.string(&["GET", k]).as_deref(), Some("v"), "{k} untouched");
        let ttl = admin.int(&["PTTL", k]);
        assert!(ttl > 0 && ttl <= 600_000, "{k}'s expiry untouched: {ttl}");
    }
}

/// With `tq.max-deliveries 2`: two identical jobs popped by two workers, one
/// lease runs out, a third worker takes the copy given back (its second
/// delivery). A copy enqueued afterwards used to be popped as a second
/// delivery too (the count stayed in `<ns>:tq:deliveries` while its copy was
/// in flight) and went to failed after its first expiry.
#[test]
fn a_fresh_copy_does_not_inherit_a_redelivered_twins_count() {
    let s = Server::start_with(Opts::module_with(&["max-deliveries", "2"]));
    let mut c = s.conn();
    let n = ns("twins");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["TQ.POP", &n, "w1", "q", "LEASE", "300"]);
    c.ok(&["TQ.POP", &n, "w2", "q", "LEASE", "600000"]);
    wait_until(10, "w1's lease to run out", || c.int(&["LLEN", &format!("{n}:queue:q")]) == 1);
    let again = c.strings(&["TQ.POP", &n, "w3", "q", "LEASE", "600000"]);
    assert_eq!(again[3], "2", "the copy given back is on its second delivery");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    let fresh = c.strings(&["TQ.POP", &n, "w4", "q", "LEASE", "300"]);
    assert_eq!(fresh[3], "1", "a copy enqueued later is a first delivery");
    // So its first expiry gives it back instead of failing it.
    wait_until(10, "w4's lease to run out", || c.int(&["LLEN", &format!("{n}:queue:q")]) == 1);
    assert!(failure_records(&mut c, &n).is_empty());
}

/// A lease that runs out on a job whose in-flight record is gone or garbled,
/// or whose index entry is garbage, used to drop the job with no requeue, no
/// failure record and no count. It is now filed in failed with what is left.
#[test]
fn a_lease_expiry_with_unreadable_in_flight_data_files_the_job_in_failed() {
    // The keys are spoiled right after the takes: the leases must not run
    // out before, even on a loaded machine.
    let s = Server::start_with(Opts::module_with(&["lease-ms", "1500"]));
    let mut c = s.conn();
    let n = ns("garbled");
    for i in 1..=3 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "c", &format!("[{i}]")]);
    }
    c.ok(&["TQ.POP", &n, "gone", "q"]);
    c.ok(&["TQ.POP", &n, "garbled", "q"]);
    c.ok(&["TQ.POP", &n, "junk", "q"]);
    let late = c.delivery(&n, "gone");
    c.ok(&["DEL", &format!("{n}:worker:gone:q")]);
    c.ok(&["SET", &format!("{n}:worker:garbled:q"), "not json"]);
    c.ok(&["SET", &format!("{n}:tq:inflight:junk"), "not an entry"]);
    wait_until(10, "three leases to run out", || stat(&mut c, &n, "failed") == 3);
    let records = failure_records(&mut c, &n);
    assert_eq!(records.len(), 3, "{records:?}");
    let by_worker = |w: &str| records.iter().find(|r| r["worker"] == w).unwrap_or_else(|| panic!("{w}: {records:?}"));
    for (w, why, payload) in [
        ("gone", "is missing", serde_json::Value::Null),
        ("garbled", "is unreadable", serde_json::json!("not json")),
        ("junk", "could not be read", serde_json::Value::Null),
    ] {
        let r = by_worker(w);
        assert_eq!(r["exception"], "TQ::LeaseExpired");
        assert!(r["error"].as_str().is_some_and(|e| e.contains(why)), "{r}");
        assert_eq!(r["payload"], payload, "{r}");
    }
    // The late report is refused, nothing counted twice.
    assert!(c.err(&["TQ.ACK", &n, "gone", &late]).starts_with("LEASELOST"));
    assert_eq!(stat(&mut c, &n, "processed"), 0);
    assert!(c.live_inflight(&n).is_empty());
}

/// Sanity: reports name deliveries, not workers: a report for an old
/// delivery of the same worker is never applied to the job it holds now.
#[test]
fn a_report_for_an_old_delivery_never_completes_the_job_held_now() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("old-delivery");
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    let a = c.strings(&["TQ.POP", &n, "w", "q"]);
    c.ok(&["TQ.ACK", &n, "w", &a[2]]);
    let b = c.strings(&["TQ.POP", &n, "w", "q"]);
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    // A's reports sent late, after the worker took B: refused, B untouched.
    assert!(c.err(&["TQ.ACK", &n, "w", &a[2]]).starts_with("NOJOB"));
    assert!(c.err(&["TQ.FAIL", &n, "w", &a[2], "E", "e"]).starts_with("NOJOB"));
    assert!(c.err(&["TQ.NACK", &n, "w", &a[2]]).starts_with("NOJOB"));
    assert!(c.err(&["TQ.HEARTBEAT", &n, "w", "1000", &a[2]]).starts_with("NOJOB"));
    assert_eq!(c.digest(), before);
    assert_eq!(c.inflight(&n, "w").expect("held").delivery.to_string(), b[2]);
}

/// A job whose lease runs out while its queue holds another type cannot go
/// back there: it is filed in failed (saying why), and the namespace's
/// other leases still expire. Before, the error stopped every lease expiry
/// of the namespace.
#[test]
fn a_lease_expiry_that_cannot_give_the_job_back_files_it_in_failed() {
    // The keys are spoiled right after the takes: the leases must not run
    // out before, even on a loaded machine.
    let s = Server::start_with(Opts::module_with(&["lease-ms", "1500"]));
    let mut c = s.conn();
    let n = ns("giveback");
    c.ok(&["TQ.ENQUEUE", &n, "bad", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "good", "c", "[2]"]);
    c.ok(&["TQ.POP", &n, "w1", "bad"]);
    c.ok(&["TQ.POP", &n, "w2", "good"]);
    c.ok(&["SET", &format!("{n}:queue:bad"), "not a list"]);
    wait_until(10, "both leases to run out", || {
        c.inflight(&n, "w1").is_some_and(|e| e.lost()) && c.inflight(&n, "w2").is_some_and(|e| e.lost())
    });
    assert_eq!(c.lrange(&format!("{n}:queue:good")), [job("good", "c", "[2]")], "given back");
    let records = failure_records(&mut c, &n);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["exception"], "TQ::LeaseExpired");
    assert_eq!(records[0]["payload"]["args"], serde_json::json!([1]));
    let error = records[0]["error"].as_str().expect("error");
    assert!(error.contains("could not go back") && error.contains("WRONGTYPE"), "{error}");
    assert_eq!(stat(&mut c, &n, "failed"), 1);
}

/// tq rewrites a string it counts on in place when the value keeps its
/// length. A counter written by hand is one of Redis's shared integer
/// objects: rewriting that object in place would change every key holding
/// the same small number. The delivery counter set to 5 and to 9 by hand
/// (and given a TTL) goes on at 6 and at 10, loses its TTL as a SET would,
/// and another key holding 5 still holds 5.
#[test]
fn a_counter_written_by_hand_goes_on_without_touching_keys_that_share_its_value() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("shared");
    let counter = format!("{n}:tq:delivery");
    c.ok(&["SET", &counter, "5"]);
    c.ok(&["SET", "bystander", "5"]);
    c.ok(&["PEXPIRE", &counter, "600000"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[1]"]);
    assert_eq!(c.strings(&["TQ.POP", &n, "w1", "q"])[2], "6", "same length: rewritten in place");
    assert_eq!(c.string(&["GET", &counter]).as_deref(), Some("6"));
    assert_eq!(c.int(&["PTTL", &counter]), -1, "a SET drops the TTL");
    assert_eq!(c.string(&["GET", "bystander"]).as_deref(), Some("5"), "the shared 5 is untouched");
    c.ok(&["SET", &counter, "9"]);
    c.ok(&["TQ.ENQUEUE", &n, "q", "c", "[2]"]);
    assert_eq!(c.strings(&["TQ.POP", &n, "w2", "q"])[2], "10", "longer: resized, then written");
    assert_eq!(c.string(&["GET", &counter]).as_deref(), Some("10"));
    assert_eq!(c.string(&["GET", "bystander"]).as_deref(), Some("5"));
}

/// A worker's in-flight entry is rewritten at every report: longer when it
/// takes a job, shorter for the tombstone an ACK leaves. Grown in place,
/// Redis kept room for twice the new length (sds's greedy growth) until a
/// shrink trimmed it, so a busy worker's entry, about 280 bytes with its
/// open job-metrics tally, took about 710 bytes of memory where the same
/// value written afresh takes about 390. A tombstone is now padded to the
/// entry's length, and an entry that grows is written afresh.
#[test]
fn a_busy_workers_entry_takes_no_more_memory_than_its_value_written_afresh() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("entry-room");
    for i in 0..40 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "Mail", &format!("[{i}]")]);
    }
    let key = format!("{n}:tq:inflight:w");
    // A key name of the same length, for the same per-key overhead.
    let twin = format!("{n}:tq:inflight:x");
    let mut d = taken_job(c.ok(&["TQ.POP", &n, "w", "q"])).expect("a job").2;
    for round in 0..20 {
        // Both shapes: TQ.POP+TQ.ACK (through the tombstone) and TQ.POP ... ACK.
        let taken = if round % 2 == 0 {
            let live = c.int(&["STRLEN", &key]);
            c.ok(&["TQ.ACK", &n, "w", &d]);
            // (The first ACK opens the tally: its tombstone is longer.)
            if round > 0 {
                assert_eq!(c.int(&["STRLEN", &key]), live, "round {round}: the tombstone keeps the entry's length");
            }
            assert!(
                InFlight::decode(&c.bytes(&["GET", &key]).expect("the tombstone")).is_some_and(|e| !e.live()),
                "round {round}: a padded tombstone reads"
            );
            c.ok(&["TQ.POP", &n, "w", "q"])
        } else {
            c.ok(&["TQ.POP", &n, "w", "q", "ACK", &d])
        };
        d = taken_job(taken).expect("a job").2;
        let value = c.bytes(&["GET", &key]).expect("the entry");
        assert!(
            InFlight::decode(&value).is_some_and(|e| e.open.is_some()),
            "round {round}: the entry carries its open tally ({} bytes)",
            value.len()
        );
        c.ok(&[b"SET".as_slice(), twin.as_bytes(), &value]);
        let used = c.int(&["MEMORY", "USAGE", &key, "SAMPLES", "0"]);
        let fresh = c.int(&["MEMORY", "USAGE", &twin, "SAMPLES", "0"]);
        assert!(used <= fresh, "round {round}: the entry takes {used} bytes, its value written afresh {fresh}");
    }
}
