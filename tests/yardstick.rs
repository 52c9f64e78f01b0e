//! The C yardstick module of the benchmarks (`scripts/floor_module.c`) makes
//! exactly the writes its figures stand for, or its floors would flatter or
//! shame tq: `FLOOR.TAKEACK` leaves the keyspace that the take + complete
//! floor's plain commands leave (with tq's own writes too), `FLOOR.ENQUEUE`
//! that of `SADD` + `RPUSH` (and `FLOOR.ENQUEUEJOB` the payload and keys of
//! TQ.ENQUEUE from its arguments), `FLOOR.PROMOTE` that of the promotion floor's
//! bulk commands, a replica without the module follows them, and a caller
//! refused a key or a command is refused.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

/// The module built for one test, removed with it.
struct Floor(PathBuf);

impl Drop for Floor {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Builds the module as the benchmarks do (`build_floor` in
/// `scripts/servers.sh`), against the redismodule.h
/// of the redis-module crate cargo fetched; `tag` names this test's copy
/// (tests run at once).
fn build_floor(tag: &str) -> Floor {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let metadata = |args: &[&str]| {
        Command::new(&cargo).args(["metadata", "--format-version", "1"]).args(args).current_dir(root()).output()
    };
    // Offline when every package of the lock file is fetched already; a
    // machine that built only its own platform's fetches the others' first.
    let meta = match metadata(&["--offline"]) {
        Ok(out) if out.status.success() => out,
        _ => metadata(&[]).expect("cargo metadata"),
    };
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).expect("metadata json");
    let manifest = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .find(|p| p["name"] == "redis-module")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("the redis-module crate");
    let include = PathBuf::from(manifest).parent().expect("crate dir").join("src/include");
    let dir = root().join("target/tq-test");
    std::fs::create_dir_all(&dir).expect("test dir");
    let out = dir.join(format!("floor-{}-{tag}.so", std::process::id()));
    let status = Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-shared", "-fPIC", "-I"])
        .arg(&include)
        .arg("-o")
        .arg(&out)
        .arg(root().join("scripts/floor_module.c"))
        .status()
        .expect("gcc");
    assert!(status.success(), "scripts/floor_module.c builds without warnings");
    Floor(out)
}

fn floor_server(so: &Floor) -> Server {
    Server::start_with(Opts {
        module: false,
        args: vec!["--loadmodule".into(), so.0.display().to_string(), "--repl-diskless-sync-delay".into(), "0".into()],
        ..Opts::default()
    })
}

/// A server with the module and a replica of it without the module, beside
/// a plain server: the same writes sent to both sides must leave the same
/// keyspace.
struct Twins {
    floor: Server,
    replica: Server,
    plain: Server,
    _so: Floor,
}

impl Twins {
    fn start(tag: &str) -> Twins {
        let so = build_floor(tag);
        let floor = floor_server(&so);
        let replica = start_replica(floor.port, Opts { module: false, ..Opts::default() });
        let plain = Server::start_with(Opts { module: false, ..Opts::default() });
        Twins { floor, replica, plain, _so: so }
    }

    /// The module's keyspace is the plain commands', and its replica's.
    fn assert_same(&self) {
        let mut f = self.floor.conn();
        assert_eq!(f.digest(), self.plain.conn().digest(), "the same keyspace as the plain commands");
        wait_replicas_synced(&mut f, 1);
        assert_eq!(self.replica.conn().digest(), f.digest(), "a replica without the module follows");
    }
}

const RECORD: &str = r#"{"run_at":"2026-11-22T06:00:00.000Z","queue":"q","worker":"w","payload":{}}"#;

/// One job taken and completed by `name` as FLOOR.TAKEACK (`tq`: with tq's
/// own writes), or as the same plain commands.
fn takeack(c: &mut Conn, name: &str, tq: bool, plain: bool) -> Option<Vec<u8>> {
    let keys = [
        "n:queue:q".to_string(),
        format!("n:worker:{name}:q"),
        "n:workers".to_string(),
        format!("{name}:q"),
        "n:tq:leases".to_string(),
        name.to_string(),
        "n:stat:processed".to_string(),
        format!("n:stat:processed:{name}"),
        RECORD.to_string(),
        "1800000000000".to_string(),
    ];
    let extra = [
        "n:tq:delivery".to_string(),
        format!("n:tq:inflight:{name}"),
        format!("entry of {name}"),
        "n:tq:clock:q".to_string(),
        "n:tq:m:1".to_string(),
        "a record of fixed size".to_string(),
    ];
    if !plain {
        let mut args = vec!["FLOOR.TAKEACK".to_string()];
        args.extend(keys);
        if tq {
            args.extend(extra);
        }
        return c.bytes(&args);
    }
    let [queue, record, workers, member, leases, lease, processed, processed_w, value, score] = keys;
    let payload = c.bytes(&["LPOP", &queue])?;
    c.ok(&["SET", &record, &value]);
    c.ok(&["SADD", &workers, &member]);
    c.ok(&["ZADD", &leases, &score, &lease]);
    if tq {
        c.ok(&["INCR", &extra[0]]);
        c.ok(&["SET", &extra[1], &extra[2]]);
    }
    c.ok(&["DEL", &record]);
    c.ok(&["INCR", &processed]);
    c.ok(&["INCR", &processed_w]);
    c.ok(&["ZREM", &leases, &lease]);
    if tq {
        c.ok(&["GET", &extra[3]]);
        c.ok(&["SET", &extra[4], &extra[5]]);
    }
    Some(payload)
}

#[test]
fn floor_commands_write_what_their_plain_commands_write_and_replicate() {
    let twins = Twins::start("writes");
    let (mut f, mut p) = (twins.floor.conn(), twins.plain.conn());
    for c in [&mut f, &mut p] {
        for i in 0..40 {
            c.ok(&["RPUSH", "n:queue:q", &format!(r#"{{"class":"C","queue":"q","args":[{i}]}}"#)]);
        }
        c.ok(&["SET", "n:tq:clock:q", "a clock"]);
        c.ok(&["SET", "n:tq:m:1", "a record of fixed size"]);
    }
    // Jobs in order, each by one of 8 names, with and without tq's writes,
    // until the queue is empty (the last call of each takes nothing).
    for i in 0..41 {
        let name = format!("w{}", i % 8);
        let tq = i % 3 != 0;
        let got = takeack(&mut f, &name, tq, false);
        assert_eq!(got, takeack(&mut p, &name, tq, true), "job {i}: the same payload");
        assert_eq!(got.is_none(), i == 40);
    }
    for c in [&mut f, &mut p] {
        c.ok(&["SET", "n:tq:m:1", "a longer record than the one before"]);
    }
    takeack(&mut f, "w0", true, false);
    takeack(&mut p, "w0", true, true);
    // FLOOR.ENQUEUE is SADD + RPUSH.
    for i in 0..5 {
        let payload = format!("job {i}");
        let len = f.int(&["FLOOR.ENQUEUE", "n:queues", "n:queue:e", "e", &payload]);
        p.ok(&["SADD", "n:queues", "e"]);
        assert_eq!(len, p.int(&["RPUSH", "n:queue:e", &payload]));
    }
    assert_eq!(f.int(&["GET", "n:stat:processed"]), 40);
    twins.assert_same();
}

/// node-resque's delayed layout: `jobs` per bucket, bound for `qa` or `qb`.
fn delayed_layout(c: &mut Conn, buckets: &[u64], jobs: usize) -> Vec<(u64, Vec<(String, String)>)> {
    let mut layout = Vec::new();
    for &b in buckets {
        let mut these = Vec::new();
        for i in 0..jobs {
            let q = if (i + b as usize) % 3 == 0 { "qa" } else { "qb" };
            let payload = format!(r#"{{"class":"C","queue":"{q}","args":[{b},{i}]}}"#);
            c.ok(&["RPUSH", &format!("n:delayed:{b}"), &payload]);
            c.ok(&["SADD", &format!("n:timestamps:{payload}"), &format!("delayed:{b}")]);
            these.push((q.to_string(), payload));
        }
        c.ok(&["ZADD", "n:delayed_queue_schedule", &b.to_string(), &b.to_string()]);
        layout.push((b, these));
    }
    layout
}

#[test]
fn floor_promote_writes_what_the_promotion_floor_writes() {
    let twins = Twins::start("promote");
    let (mut f, mut p) = (twins.floor.conn(), twins.plain.conn());
    let buckets = [1_700_000_000, 1_700_000_001, 1_700_000_005];
    delayed_layout(&mut f, &buckets, 7);
    for (b, jobs) in delayed_layout(&mut p, &buckets, 7) {
        assert_eq!(f.int(&["FLOOR.PROMOTE", "n", &b.to_string()]), jobs.len() as i64);
        // The promotion floor's bulk commands (scripts/bench_time.rs).
        for q in ["qa", "qb"] {
            let mine: Vec<&str> = jobs.iter().filter(|(jq, _)| jq == q).map(|(_, j)| j.as_str()).collect();
            p.ok(&["SADD", "n:queues", q]);
            let mut push = vec!["RPUSH".to_string(), format!("n:queue:{q}")];
            push.extend(mine.iter().map(|j| j.to_string()));
            p.ok(&push);
        }
        let mut del = vec!["DEL".to_string()];
        del.extend(jobs.iter().map(|(_, j)| format!("n:timestamps:{j}")));
        p.ok(&del);
        p.ok(&["DEL", &format!("n:delayed:{b}")]);
        p.ok(&["ZREM", "n:delayed_queue_schedule", &b.to_string()]);
    }
    assert_eq!(f.int(&["FLOOR.PROMOTE", "n", "1700000009"]), 0, "an absent bucket moves nothing");
    assert_eq!(f.int(&["LLEN", "n:queue:qb"]), p.int(&["LLEN", "n:queue:qb"]));
    twins.assert_same();
}

/// `FLOOR.PROMOTE ... EXACT` moves what tq's promotion moves: each job to
/// the queue `JSON.parse` finds (the last top-level "queue", escapes
/// decoded, never one nested in the args), and a marker that also files
/// the payload under another second keeps that second.
#[test]
fn floor_promote_exact_moves_jobs_as_tq_does() {
    let so = build_floor("exact");
    let floor = floor_server(&so);
    let tq = Server::start();
    let payloads = [
        r#"{"class":"C","args":[{"queue":"nested"}],"queue":"qa"}"#,
        r#"{"class":"C","queue":"qb","args":[1],"queue":"qa"}"#,
        r#"{"class":"C","queue":"q\u0062","args":["}\"]",-1.5e3,true,null]}"#,
        r#"{"class":"C", "queue" : "qa" , "args":[ 1 , {"a":[2,"x\\"]} ]}"#,
        r#"{"class":"C","\u0071ueue":"qc","args":[]}"#,
        r#"{"class":"C","queue":"q\ud83d\ude00","args":[]}"#,
    ];
    let (now, later) = ("1700000000", "4000000000");
    let mut conns = [floor.conn(), tq.conn()];
    for c in &mut conns {
        for p in payloads {
            c.ok(&["RPUSH", &format!("n:delayed:{now}"), p]);
            c.ok(&["SADD", &format!("n:timestamps:{p}"), &format!("delayed:{now}")]);
        }
        c.ok(&["RPUSH", &format!("n:delayed:{later}"), payloads[0]]);
        c.ok(&["SADD", &format!("n:timestamps:{}", payloads[0]), &format!("delayed:{later}")]);
        c.ok(&["ZADD", "n:delayed_queue_schedule", now, now, later, later]);
    }
    let [f, t] = &mut conns;
    assert_eq!(f.int(&["FLOOR.PROMOTE", "n", now, "EXACT"]), payloads.len() as i64);
    assert_eq!(t.int(&["TQ.PROMOTE", "n"]), payloads.len() as i64);
    let mut keys: Vec<String> =
        ["qa", "qb", "qc", "nested", "q\u{1f600}"].iter().map(|q| format!("n:queue:{q}")).collect();
    keys.extend(payloads.iter().map(|p| format!("n:timestamps:{p}")));
    keys.extend([format!("n:delayed:{now}"), format!("n:delayed:{later}")]);
    for k in &keys {
        let (mut a, mut b) = (f.strings(&["SORT", k, "ALPHA"]), t.strings(&["SORT", k, "ALPHA"]));
        a.sort();
        b.sort();
        assert_eq!(a, b, "{k}");
        assert_eq!(f.string(&["TYPE", k]), t.string(&["TYPE", k]), "{k}");
    }
    assert_eq!(f.strings(&["LRANGE", "n:queue:qa", "0", "-1"]), t.strings(&["LRANGE", "n:queue:qa", "0", "-1"]));
    assert_eq!(f.int(&["LLEN", "n:queue:qa"]), 3);
    assert_eq!(f.strings(&["SMEMBERS", &format!("n:timestamps:{}", payloads[0])]), vec![format!("delayed:{later}")]);
    assert_eq!(f.err(&["FLOOR.PROMOTE", "n", now, "FAST"]), "ERR the fourth argument can only be EXACT");
}

/// `FLOOR.ENQUEUEJOB`, given TQ.ENQUEUE's arguments, builds the key names
/// and the payload TQ.ENQUEUE writes: the floor stands for tq's own work.
#[test]
fn floor_enqueuejob_writes_what_tq_enqueue_writes() {
    let so = build_floor("enqueuejob");
    let floor = floor_server(&so);
    let tq = Server::start();
    let (mut f, mut t) = (floor.conn(), tq.conn());
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("q", "add", Some("[1,2]")),
        ("q", "add", None),
        ("q\"\\", "c\n\u{1}\u{1f}\t", Some("5")),
        ("q", "C", Some(r#"{"a":[1,"x"]}"#)),
        ("other", "\u{e9}t\u{e9}", Some(r#""s""#)),
        ("q", "add", Some("[]")),
    ];
    for (queue, class, args) in cases {
        let mut call = vec!["n", queue, class];
        call.extend(args);
        let floor_len = f.int(&[&["FLOOR.ENQUEUEJOB"], call.as_slice()].concat());
        assert_eq!(floor_len, t.int(&[&["TQ.ENQUEUE"], call.as_slice()].concat()), "{call:?}");
    }
    for q in ["q", "q\"\\", "other"] {
        let key = format!("n:queue:{q}");
        assert_eq!(f.strings(&["LRANGE", &key, "0", "-1"]), t.strings(&["LRANGE", &key, "0", "-1"]), "{key}");
    }
    assert_eq!(f.int(&["LLEN", "n:queue:q"]), 4);
    let (mut a, mut b) = (f.strings(&["SMEMBERS", "n:queues"]), t.strings(&["SMEMBERS", "n:queues"]));
    a.sort();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(a.len(), 3);
}

#[test]
fn floor_commands_check_the_callers_keys_and_commands() {
    let so = build_floor("acl");
    let floor = floor_server(&so);
    let mut c = floor.conn();
    c.ok(&["ACL", "SETUSER", "lim", "on", ">pw", "~n:*", "+@all", "-sadd"]);
    let mut lim = floor.conn();
    lim.ok(&["AUTH", "lim", "pw"]);
    let refused = |e: String| assert!(e.contains("NOPERM"), "{e}");
    // SADD refused: the enqueue is refused, and writes nothing.
    refused(lim.err(&["FLOOR.ENQUEUE", "n:queues", "n:queue:q", "q", "job"]));
    c.ok(&["ACL", "SETUSER", "lim", "+sadd"]);
    // A key outside the user's patterns.
    refused(lim.err(&["FLOOR.ENQUEUE", "x:queues", "n:queue:q", "q", "job"]));
    refused(lim.err(&["FLOOR.PUSHACL", "x:queue:q", "job"]));
    refused(lim.err(&["FLOOR.ENQUEUEJOB", "x", "q", "C"]));
    // A take + complete of worker w on queue q, counted in `processed`.
    let takeack = |processed| {
        [
            "FLOOR.TAKEACK",
            "n:queue:q",
            "n:worker:w:q",
            "n:workers",
            "w:q",
            "n:tq:leases",
            "w",
            processed,
            "n:stat:processed:w",
            "rec",
            "1",
        ]
    };
    refused(lim.err(&takeack("x:stat:processed")));
    assert_eq!(c.int(&["DBSIZE"]), 0, "nothing written by a refused call");
    assert_eq!(lim.int(&["FLOOR.ENQUEUE", "n:queues", "n:queue:q", "q", "job"]), 1);
    // ZREM refused: the take + complete is refused (as TQ.POP ... ACK), and
    // writes nothing.
    c.ok(&["ACL", "SETUSER", "lim", "-zrem"]);
    let before = c.quiet_digest();
    refused(lim.err(&takeack("n:stat:processed")));
    assert_eq!(c.digest(), before, "nothing written by a refused take");
    c.ok(&["ACL", "SETUSER", "lim", "+zrem"]);
    assert_eq!(lim.string(&takeack("n:stat:processed")).as_deref(), Some("job"));
    assert_eq!(lim.int(&["FLOOR.ENQUEUE", "n:queues", "n:queue:q", "q", "job"]), 1);
    // A marker outside the user's patterns: the promotion is refused whole.
    delayed_layout(&mut c, &[1_700_000_000], 3);
    let before = c.quiet_digest();
    c.ok(&["ACL", "SETUSER", "lim", "resetkeys", "~n:delayed*", "~n:queue*"]);
    refused(lim.err(&["FLOOR.PROMOTE", "n", "1700000000"]));
    assert_eq!(c.digest(), before, "nothing written by a refused promotion");
    c.ok(&["ACL", "SETUSER", "lim", "~n:timestamps:*"]);
    assert_eq!(lim.int(&["FLOOR.PROMOTE", "n", "1700000000"]), 3);
    // The namespace FLOOR.ENQUEUEJOB declares, as TQ.ENQUEUE does.
    refused(lim.err(&["FLOOR.ENQUEUEJOB", "n", "q", "C"]));
    c.ok(&["ACL", "SETUSER", "lim", "~n"]);
    assert_eq!(lim.int(&["FLOOR.ENQUEUEJOB", "n", "q", "C"]), 2);
}
