//! Persistence: the AOF holds tq's effects as plain commands and the RDB
//! plain values, so both reload identically, with or without the module, and
//! however much time has passed since the commands ran.

mod common;
use tq_testkit::workload;

use std::path::Path;
use std::time::Duration;

use common::{ns, wait_until, Conn, Opts, Server, Value};
use workload::Mix;

fn wait_persistence_idle(c: &mut Conn) {
    wait_until(30, "no AOF rewrite or save in progress", || {
        let info = c.string(&["INFO", "persistence"]).unwrap_or_default();
        ["aof_rewrite_in_progress:0", "aof_rewrite_scheduled:0", "rdb_bgsave_in_progress:0"]
            .iter()
            .all(|f| info.lines().any(|l| l.trim() == *f))
    });
}

/// The commands of the AOF's incremental files (Redis 7 multi-part AOF).
fn aof_incr_commands(dir: &Path) -> Vec<Vec<Vec<u8>>> {
    let aof_dir = dir.join("appendonlydir");
    let manifest = std::fs::read_to_string(aof_dir.join("appendonly.aof.manifest")).expect("AOF manifest");
    let mut cmds = Vec::new();
    let mut files = 0;
    for line in manifest.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // file <name> seq <n> type <b|h|i>
        if let ["file", name, "seq", _, "type", "i"] = fields.as_slice() {
            let bytes = std::fs::read(aof_dir.join(name)).expect("incr AOF file");
            cmds.extend(workload::parse_commands(&bytes));
            files += 1;
        }
    }
    assert!(files > 0, "no incremental AOF file in the manifest:\n{manifest}");
    cmds
}

/// Time passes, so that a command replayed from the AOF (rather than its
/// effects) would see another clock: another ENQUEUEIN bucket, another
/// `run_at`/`failed_at`.
fn let_time_pass() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Commands whose results depend on the clock, on namespace `n`.
fn time_dependent(c: &mut Conn, n: &str) {
    c.ok(&["TQ.ENQUEUEIN", n, "1", "clock", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUEIN", n, "1500", "clock", "c", "[2]"]);
    c.ok(&["TQ.ENQUEUEIN", n, "86400000", "clock", "c", "[3]"]);
    c.ok(&["TQ.ENQUEUE", n, "clock", "c", "[4]"]);
    c.ok(&["TQ.ENQUEUE", n, "clock", "c", "[5]"]);
    c.ok(&["TQ.POP", n, "w-clock", "clock"]);
    c.fail(n, "w-clock", &["E", "at this time", "[]"]);
    c.ok(&["TQ.POP", n, "w-clock", "clock", "other"]); // left in flight
}

#[test]
fn aof_replays_identically_with_and_without_the_module() {
    let s = Server::start_with(Opts {
        module: true,
        args: vec!["--appendonly".into(), "yes".into(), "--appendfsync".into(), "always".into()],
        ..Opts::default()
    });
    let mut c = s.conn();
    wait_persistence_idle(&mut c);
    let a = ns("aof-a");
    workload::run(&mut c.0, &a, Mix::ALL);
    time_dependent(&mut c, &a);

    let_time_pass();
    c.wait_metrics_quiet(&a, 10_000);
    let digest = c.digest();
    let snap = workload::snapshot(&mut c.0, &a);
    assert_eq!(c.ok(&["DEBUG", "LOADAOF"]), Value::Okay);
    assert_eq!(c.digest(), digest, "the AOF did not replay identically");
    assert!(workload::snapshot(&mut c.0, &a) == snap, "values differ after DEBUG LOADAOF");

    // The AOF holds tq's effects only.
    let cmds = aof_incr_commands(&s.dir);
    let names = workload::command_names(&cmds);
    // The test itself writes corrupt payloads with RPUSH/ZADD (effects too).
    workload::assert_only_effects(&names, &[], "the AOF");

    // After a rewrite (RDB preamble + a new incremental file), more work on
    // the same namespace and a new one.
    assert!(c.string(&["BGREWRITEAOF"]).is_some());
    wait_persistence_idle(&mut c);
    let b = ns("aof-b");
    workload::run(&mut c.0, &b, Mix { big: false, multi: true, lua: true });
    time_dependent(&mut c, &b);
    assert_eq!(c.ack(&a, "w-busy"), Value::Okay);
    assert_eq!(c.fail(&a, "w-clock", &["E", "after the rewrite"]), Value::Okay);
    c.ok(&["TQ.ENQUEUE", &a, "low", "c", "[\"after rewrite\"]"]);
    let_time_pass();
    c.wait_metrics_quiet(&a, 10_000);
    c.wait_metrics_quiet(&b, 10_000);
    let digest = c.digest();
    assert_eq!(c.ok(&["DEBUG", "LOADAOF"]), Value::Okay);
    assert_eq!(c.digest(), digest, "the rewritten AOF did not replay identically");
    let names = workload::command_names(&aof_incr_commands(&s.dir));
    workload::assert_only_effects(&names, &[], "the AOF after a rewrite");

    // The module still works on the reloaded data.
    assert_eq!(c.strings(&["TQ.POP", &a, "w-after", "low"])[0], "low");
    assert_eq!(c.ack(&a, "w-after"), Value::Okay);
    assert!(c.int(&["TQ.ENQUEUE", &a, "low", "c"]) >= 1);
    c.wait_metrics_quiet(&a, 10_000);
    let digest = c.digest();
    let snap_a = workload::snapshot(&mut c.0, &a);
    let snap_b = workload::snapshot(&mut c.0, &b);

    // A server without the module loads the same AOF.
    let dir = s.kill_keep_dir();
    let plain = Server::restart_in(
        &dir,
        Opts { module: false, args: vec!["--appendonly".into(), "yes".into()], ..Opts::default() },
    );
    let mut p = plain.conn();
    assert!(!p.has_tq(), "the server has no module");
    assert_eq!(p.digest(), digest, "a server without the module loads another dataset from the AOF");
    assert!(workload::snapshot(&mut p.0, &a) == snap_a);
    assert!(workload::snapshot(&mut p.0, &b) == snap_b);
    assert!(!plain.log().contains("Bad file format"), "{}", plain.log());
}

type Snapshot = std::collections::BTreeMap<Vec<u8>, (String, Vec<Vec<u8>>)>;

/// The dataset's digest and `n`'s snapshots before and after `step` (a
/// save or a reload), all taken again while the module's timer wrote in
/// between (a lease or a heartbeat running out, a minute of metrics
/// closing).
fn settled(c: &mut Conn, n: &str, step: &[&str]) -> (String, Snapshot, Snapshot) {
    for _ in 0..20 {
        let digest = c.digest();
        let before = workload::snapshot(&mut c.0, n);
        assert_eq!(c.ok(step), Value::Okay);
        let after = workload::snapshot(&mut c.0, n);
        if c.digest() == digest {
            return (digest, before, after);
        }
    }
    panic!("the dataset changed across {step:?} twenty times in a row");
}

#[test]
fn rdb_reloads_identically_with_and_without_the_module() {
    let s = Server::start();
    let mut c = s.conn();
    let a = ns("rdb-a");
    workload::run(&mut c.0, &a, Mix::ALL);
    time_dependent(&mut c, &a);
    // The digest is the same before and after (or `settled` fails).
    let (_, before, after) = settled(&mut c, &a, &["DEBUG", "RELOAD"]);
    assert!(before == after, "DEBUG RELOAD changed the values");

    // The module keeps working on the reloaded data: registered queues stay
    // registered once, in-flight jobs can be completed.
    assert_eq!(c.ack(&a, "w-busy"), Value::Okay);
    assert_eq!(c.fail(&a, "w-clock", &["E", "after reload"]), Value::Okay);
    c.ok(&["TQ.ENQUEUE", &a, "low", "c", "[\"after reload\"]"]);
    assert!(c.strings(&["SMEMBERS", &format!("{a}:queues")]).iter().filter(|q| *q == "low").count() == 1);
    let b = ns("rdb-b");
    workload::run(&mut c.0, &b, Mix { big: false, multi: true, lua: true });
    // No open tally in the RDB, nor a minute about to close: the module's
    // timer would write them as soon as the server below that loads it
    // with the module starts.
    c.wait_metrics_quiet(&a, 10_000);
    c.wait_metrics_quiet(&b, 10_000);
    let (digest, snap_b, _) = settled(&mut c, &b, &["SAVE"]);

    let dir = s.kill_keep_dir();
    let plain = Server::restart_in(&dir, Opts { module: false, args: vec![], ..Opts::default() });
    let mut p = plain.conn();
    assert!(!p.has_tq(), "the server has no module");
    assert_eq!(p.digest(), digest, "a server without the module loads another dataset from the RDB");
    assert!(workload::snapshot(&mut p.0, &b) == snap_b);

    // And back to a server with the module, which picks up where it was.
    let dir = plain.kill_keep_dir();
    let again = Server::restart_in(&dir, Opts::default());
    let mut m = again.conn();
    assert_eq!(m.digest(), digest);
    assert_eq!(m.ack(&b, "w-busy"), Value::Okay);
    let (queue, _) = workload::popped(m.ok(&["TQ.POP", &b, "w-again", "*"]));
    assert!(m.int(&["LLEN", &format!("{b}:queue:{queue}")]) >= 0);
    assert_eq!(m.fail(&b, "w-again", &["E", "after restarts", "[]"]), Value::Okay);
}
