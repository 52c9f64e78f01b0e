//! A corpus of bad input. Every case must get an error reply that names the
//! problem; afterwards the server answers PING and `DEBUG DIGEST` shows that
//! nothing was written.

mod common;

use common::Server;

/// (arguments, text the error must contain)
fn corpus() -> Vec<(Vec<Vec<u8>>, &'static str)> {
    let mut cases: Vec<(Vec<Vec<u8>>, &'static str)> = Vec::new();
    let mut add = |args: &[&[u8]], want: &'static str| cases.push((args.iter().map(|a| a.to_vec()).collect(), want));
    let arity = "wrong number of arguments";

    // Arity, every command, too few and too many.
    add(&[b"TQ.ENQUEUE"], arity);
    add(&[b"TQ.ENQUEUE", b"bad"], arity);
    add(&[b"TQ.ENQUEUE", b"bad", b"q"], arity);
    add(&[b"TQ.ENQUEUE", b"bad", b"q", b"c", b"[]", b"extra"], "unknown option 'extra'");
    add(&[b"TQ.ENQUEUE", b"bad", b"q", b"c", b"[]", b"UNIQUE", b"1", b"x"], arity);
    add(&[b"TQ.ENQUEUEAT", b"bad", b"1000", b"q"], arity);
    add(&[b"TQ.ENQUEUEAT", b"bad", b"1000", b"q", b"c", b"[]", b"x"], arity);
    add(&[b"TQ.ENQUEUEIN", b"bad", b"1000"], arity);
    add(&[b"TQ.ENQUEUEIN", b"bad", b"1000", b"q", b"c", b"[]", b"x"], arity);
    add(&[b"TQ.PROMOTE"], arity);
    add(&[b"TQ.POP", b"bad", b"w"], arity);
    add(&[b"TQ.POP", b"bad"], arity);
    add(&[b"TQ.ACK", b"bad"], arity);
    add(&[b"TQ.ACK", b"bad", b"w"], arity);
    add(&[b"TQ.ACK", b"bad", b"w", b"1", b"x"], arity);
    add(&[b"TQ.ACK", b"bad", b"w", b"x"], "delivery must be a non-negative integer");
    add(&[b"TQ.ACK", b"bad", b"w", b"-1"], "negative");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E"], arity);
    add(&[b"TQ.FAIL", b"bad", b"w", b"E", b"e", b"[]"], "delivery must be a non-negative integer");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"[]", b"x"], "unknown option 'x'");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"RETRY"], "RETRY needs a value");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"RETRY", b"0"], "RETRY attempts must be at least 1");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"BACKOFF", b"5"], "BACKOFF goes once, after RETRY");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"RETRY", b"3", b"BACKOFF", b"5,x"], "BACKOFF delay");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"RETRY", b"3", b"RETRY", b"4"], "more than once");
    add(&[b"TQ.NACK", b"bad", b"w", b"1", b"LATER", b"5"], "unknown option 'LATER'");
    add(&[b"TQ.NACK", b"bad", b"w", b"1", b"DELAY", b"-5"], "negative");
    add(&[b"TQ.NACK", b"bad", b"nobody", b"1"], "NOJOB");
    add(&[b"TQ.NACK", b"bad", b"w"], arity);
    add(&[b"TQ.POP", b"bad", b"w", b"q", b"ACK"], "ACK needs the delivery id");
    add(&[b"TQ.POP", b"bad", b"w", b"q", b"ACK", b"x"], "delivery must be a non-negative integer");
    add(&[b"TQ.POP", b"bad", b"w", b"q", b"LEASE", b"0"], "LEASE ms must be at least 1");
    add(&[b"TQ.BPOP", b"bad", b"w", b"q", b"LEASE", b"x", b"0"], "LEASE ms must be a non-negative integer");
    add(&[b"TQ.HEARTBEAT", b"bad", b"w", b"1000", b"x"], "delivery must be a non-negative integer");
    add(&[b"TQ.HEARTBEAT", b"bad", b"w", b"1000", b"1", b"2"], arity);
    add(&[b"TQ.HEARTBEAT", b"bad", b"nobody", b"1000", b"1"], "NOJOB");
    add(&[b"TQ.POP", b"bad", b"w", b"DELIVERIES"], "at least one queue");
    add(&[b"TQ.BPOP", b"bad", b"w", b"q", b"soon"], "timeout-ms");
    add(&[b"TQ.BPOP", b"bad", b"w", b"q", b"-1"], "timeout-ms");
    add(&[b"TQ.HEARTBEAT", b"bad", b"w", b"0"], "must be between");
    add(&[b"TQ.RECUR", b"bad", b"c", b"q", b"5"], "every-ms must be between");
    add(&[b"TQ.RECUR", b"bad", b"c", b"*", b"1000"], "'*' is not a queue name");
    add(&[b"TQ.BROADCAST", b"bad", b"", b"[]"], "class must not be empty");

    // Inspection and management.
    add(&[b"TQ.TIMESTAMPS", b"bad", b"1"], arity);
    add(&[b"TQ.TIMESTAMPS", b"bad", b"-1", b"10"], "offset");
    add(&[b"TQ.WORKERS", b"bad", b"0", b"10001"], "count is out of range");
    add(&[b"TQ.FAILED", b"bad", b"0", b"x"], "count");
    add(&[b"TQ.ALLDELAYED", b"bad", b"0", b"1", b"2"], arity);
    add(&[b"TQ.STATS", b"bad", b"x"], arity);
    add(&[b"TQ.DETAILS", b"bad", b"x"], arity);
    add(&[b"TQ.DELAYEDAT", b"bad", b"soon"], "unix-ms");
    add(&[b"TQ.DELAYEDAT", b"bad", b"1000", b"0"], arity);
    add(&[b"TQ.DELAYEDAT", b"bad", b"1000", b"0", b"1.5"], "stop must be an integer index");
    add(&[b"TQ.DELAYEDAT", b"bad", b"1000", b"--1", b"1"], "start must be an integer index");
    add(&[b"TQ.SCHEDULEDAT", b"bad", b"q", b"c", b"[1,"], "args is not valid JSON");
    add(&[b"TQ.SCHEDULEDAT", b"bad", b"", b"c"], "must not be empty");
    add(&[b"TQ.FAILRETRY", b"bad", b"CLASS"], "CLASS needs a value");
    add(&[b"TQ.FAILRETRY", b"bad", b"KIND", b"x"], "unknown option 'KIND'");
    add(&[b"TQ.FAILRETRY", b"bad", b"QUEUE", b"a", b"QUEUE", b"b"], "QUEUE is given twice");
    add(&[b"TQ.FAILREMOVE", b"bad", b"LIMIT", b"0"], "LIMIT must be at least 1");
    add(&[b"TQ.FAILREMOVE", b"bad", b"FROM", b"-3"], "negative");
    add(&[b"TQ.DEL", b"bad", b"q", b"c", b"[]", b"COUNT", b"0"], "COUNT must be at least 1");
    add(&[b"TQ.DEL", b"bad", b"q", b"c", b"[]", b"LIMIT", b"1"], arity);
    add(&[b"TQ.DEL", b"bad", b"q", b"c", b"[1,"], "args is not valid JSON");
    add(&[b"TQ.DEL", b"bad", b"*", b"c"], "'*' is not a queue name");
    add(&[b"TQ.DELDELAYED", b"bad", b"q", b"", b"[]"], "class must not be empty");
    add(&[b"TQ.DELQUEUE", b"bad", b""], "must not be empty");
    add(&[b"TQ.DELBYCLASS", b"bad", b"q", b"c", b"0"], arity);
    add(&[b"TQ.DELBYCLASS", b"bad", b"q", b"c", b"0", b"x"], "stop must be an integer index");
    add(&[b"TQ.FORCECLEAN", b"bad", b""], "worker must not be empty");
    add(&[b"TQ.CLEANWORKERS", b"bad", b"-5"], "age-ms");
    add(&[b"TQ.UNTRACK", b"bad", b"w", b""], "queues must not be empty");
    add(&[b"TQ.LOCKS", b"bad", b"0"], arity);
    add(&[b"TQ.LOCKS", b"bad", b"0", b"0"], "count must be at least 1");
    add(&[b"TQ.LOCKS", b"bad", b"x", b"10"], "cursor");

    // Times and delays: non-numeric, negative, fractional, overflowing.
    for at in [
        &b"abc"[..],
        b"-1",
        b"1.5",
        b"1e3",
        b"",
        b" 1",
        b"+5",
        b"0x10",
        b"18446744073709551616",
        b"99999999999999999999999",
    ] {
        add(&[b"TQ.ENQUEUEAT", b"bad", at, b"q", b"c"], "unix-ms");
        add(&[b"TQ.ENQUEUEIN", b"bad", at, b"q", b"c"], "delay-ms");
    }
    add(&[b"TQ.ENQUEUEAT", b"bad", b"8640000000000001", b"q", b"c"], "out of range");
    add(&[b"TQ.ENQUEUEIN", b"bad", b"8640000000000000", b"q", b"c"], "out of range");
    add(&[b"TQ.ENQUEUEAT", b"bad", b"-5", b"q", b"c"], "negative");
    add(&[b"TQ.ENQUEUEIN", b"bad", b"2.5", b"q", b"c"], "fraction");

    // Limits and options.
    for limit in [&b"0"[..], b"-1", b"x", b"1.5", b"100001", b"99999999999999999999999"] {
        add(&[b"TQ.PROMOTE", b"bad", b"LIMIT", limit], "LIMIT");
    }
    add(&[b"TQ.PROMOTE", b"bad", b"LIMIT"], "LIMIT needs a value");
    add(&[b"TQ.PROMOTE", b"bad", b"LIMIT", b"5", b"LIMIT", b"6"], "more than once");
    add(&[b"TQ.PROMOTE", b"bad", b"COUNT", b"5"], "unknown option 'COUNT'");
    add(&[b"TQ.PROMOTE", b"bad", b"LIMIT", b"5", b"EXTRA"], "unknown option 'EXTRA'");

    // Invalid JSON arguments.
    for json in [
        &b"{"[..],
        b"[1,",
        b"[1,]",
        b"{\"a\":}",
        b"nul",
        b"'x'",
        b"[1] [2]",
        b"01",
        b"1.",
        b".5",
        b"-",
        b"NaN",
        b"Infinity",
        b"\"unterminated",
        b"\"bad \\x escape\"",
        b"\"\\u12\"",
        b"[\"a\nb\"]",
        b"{a:1}",
        b"",
        b" ",
        b"\xff\xfe",
        b"[\"\xc3\x28\"]",
        b"tru",
        b"[1,2,3",
    ] {
        add(&[b"TQ.ENQUEUE", b"bad", b"q", b"c", json], "args is not valid JSON");
    }
    add(&[b"TQ.ENQUEUEAT", b"bad", b"1000", b"q", b"c", b"{"], "args is not valid JSON");
    add(&[b"TQ.ENQUEUEIN", b"bad", b"1000", b"q", b"c", b"[,]"], "args is not valid JSON");
    let deep = "[".repeat(600) + &"]".repeat(600);
    add(&[b"TQ.ENQUEUE", b"bad", b"q", b"c", deep.as_bytes()], "nested too deeply");

    // Names: empty, NUL, invalid UTF-8, reserved.
    for (name, want) in [(&b""[..], "must not be empty"), (b"a\0b", "NUL"), (b"\xff", "UTF-8"), (b"\xc3", "UTF-8")] {
        add(&[b"TQ.ENQUEUE", name, b"q", b"c"], want);
        add(&[b"TQ.ENQUEUE", b"bad", name, b"c"], want);
        add(&[b"TQ.ENQUEUE", b"bad", b"q", name], want);
        add(&[b"TQ.ENQUEUEAT", b"bad", b"1000", name, b"c"], want);
        add(&[b"TQ.ENQUEUEIN", b"bad", b"1000", b"q", name], want);
        add(&[b"TQ.POP", b"bad", name, b"q"], want);
        add(&[b"TQ.POP", b"bad", b"w", name], want);
        add(&[b"TQ.ACK", b"bad", name, b"1"], want);
        add(&[b"TQ.FAIL", b"bad", name, b"1", b"E", b"e"], want);
        add(&[b"TQ.PROMOTE", name], want);
    }
    add(&[b"TQ.ENQUEUE", b"bad", b"*", b"c"], "'*' is not a queue name");
    add(&[b"TQ.POP", b"bad", b"w", b"*", b"q"], "'*' must be the only queue");
    add(&[b"TQ.POP", b"bad", b"w", b"q", b"*"], "'*' must be the only queue");

    // FAIL arguments.
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"\xff", b"e"], "exception must be valid UTF-8");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"\xfe"], "error must be valid UTF-8");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"{}"], "backtrace must be a JSON array");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"\"x\""], "backtrace must be a JSON array");
    add(&[b"TQ.FAIL", b"bad", b"w", b"1", b"E", b"e", b"[1,"], "backtrace is not valid JSON");

    // No job in flight.
    add(&[b"TQ.ACK", b"bad", b"nobody", b"1"], "NOJOB");
    add(&[b"TQ.FAIL", b"bad", b"nobody", b"1", b"E", b"e"], "NOJOB");

    // Keys of the wrong type (created by `setup`).
    add(&[b"TQ.ENQUEUE", b"bad", b"str", b"c"], "WRONGTYPE key 'bad:queue:str'");
    add(&[b"TQ.POP", b"bad", b"w", b"str"], "WRONGTYPE key 'bad:queue:str'");
    add(&[b"TQ.POP", b"bad", b"w", b"empty", b"str"], "WRONGTYPE key 'bad:queue:str'");
    add(&[b"TQ.ENQUEUE", b"wt", b"q", b"c"], "WRONGTYPE key 'wt:queues'");
    add(&[b"TQ.ENQUEUEAT", b"wt", b"1000", b"q", b"c"], "WRONGTYPE key 'wt:delayed_queue_schedule'");
    add(&[b"TQ.ENQUEUEAT", b"wt2", b"5000", b"q", b"c"], "WRONGTYPE key 'wt2:delayed:5'");
    add(&[b"TQ.PROMOTE", b"wt"], "WRONGTYPE key 'wt:delayed_queue_schedule'");
    add(&[b"TQ.PROMOTE", b"wt2"], "WRONGTYPE key 'wt2:delayed:5'");
    add(&[b"TQ.POP", b"wt", b"w", b"q"], "WRONGTYPE key 'wt:tq:inflight:w' holds a list");
    add(&[b"TQ.POP", b"wt", b"w", b"*"], "WRONGTYPE key 'wt:tq:inflight:w' holds a list");
    add(&[b"TQ.ACK", b"wt", b"w", b"1"], "WRONGTYPE key 'wt:tq:inflight:w' holds a list");
    add(&[b"TQ.POP", b"wt2", b"w", b"q"], "WRONGTYPE key 'wt2:workers'");
    add(&[b"TQ.POP", b"wt3", b"w", b"*"], "WRONGTYPE key 'wt3:queues'");
    // A non-integer counter is refused as INCR would refuse it.
    add(&[b"TQ.ACK", b"busy", b"w", b"1"], "key 'busy:stat:processed': value is not an integer");
    add(&[b"TQ.FAIL", b"busy", b"w", b"1", b"E", b"e"], "busy:failed");
    // The worker holds delivery 1 (the first of the namespace).
    add(&[b"TQ.ACK", b"busy", b"w", b"2"], "NOJOB worker 'w' does not hold delivery 2 (it holds delivery 1)");
    add(&[b"TQ.DETAILS", b"wt"], "WRONGTYPE key 'wt:queues'");
    add(&[b"TQ.TIMESTAMPS", b"wt"], "WRONGTYPE key 'wt:delayed_queue_schedule'");
    add(&[b"TQ.FAILED", b"busy"], "WRONGTYPE key 'busy:failed'");
    add(&[b"TQ.FAILRETRY", b"busy"], "WRONGTYPE key 'busy:failed'");
    add(&[b"TQ.DELQUEUE", b"bad", b"str"], "WRONGTYPE key 'bad:queue:str'");
    add(&[b"TQ.DEL", b"bad", b"str", b"c"], "WRONGTYPE key 'bad:queue:str'");
    add(&[b"TQ.UNTRACK", b"busy", b"w", b"q"], "INFLIGHT worker 'w'");
    // A lease that could not be recorded refuses the take: no job without one.
    add(&[b"TQ.POP", b"wl", b"w", b"q"], "WRONGTYPE key 'wl:tq:leases'");
    add(&[b"TQ.BPOP", b"wl", b"w", b"q", b"0"], "WRONGTYPE key 'wl:tq:leases'");
    add(&[b"TQ.HEARTBEAT", b"wl", b"w", b"1000"], "WRONGTYPE key 'wl:tq:leases'");
    // The delivery counter is the namespace's; one that is not a number is named.
    add(&[b"TQ.POP", b"wd", b"w", b"q"], "key 'wd:tq:delivery': the delivery counter is not a non-negative integer");
    cases
}

/// Keys the wrong-type cases need.
fn setup(c: &mut common::Conn) {
    c.ok(&["SET", "bad:queue:str", "x"]);
    c.ok(&["SET", "wt:queues", "x"]);
    c.ok(&["SET", "wt:delayed_queue_schedule", "x"]);
    c.ok(&["RPUSH", "wt:tq:inflight:w", "x"]);
    c.ok(&["ZADD", "wt2:delayed_queue_schedule", "5", "5"]);
    c.ok(&["SET", "wt2:delayed:5", "x"]);
    c.ok(&["SET", "wt2:workers", "x"]);
    c.ok(&["TQ.ENQUEUE", "wt3", "q", "c"]);
    c.ok(&["DEL", "wt3:queues"]);
    c.ok(&["SET", "wt3:queues", "x"]);
    // A worker of namespace "busy" holds a job; its counters and failed list are broken.
    c.ok(&["TQ.ENQUEUE", "busy", "q", "c"]);
    c.ok(&["TQ.ENQUEUE", "busy", "q", "c"]);
    c.ok(&["TQ.POP", "busy", "w", "q"]);
    c.ok(&["SET", "busy:stat:processed", "not a number"]);
    c.ok(&["SET", "busy:failed", "x"]);
    c.ok(&["TQ.ENQUEUE", "wl", "q", "c"]);
    c.ok(&["SET", "wl:tq:leases", "x"]);
    c.ok(&["TQ.ENQUEUE", "wd", "q", "c"]);
    c.ok(&["SET", "wd:tq:delivery", "many"]);
}

#[test]
fn bad_input_corpus_is_refused_without_writes() {
    let s = Server::start();
    let mut c = s.conn();
    setup(&mut c);
    let before = c.quiet_digest();
    c.ok(&["CONFIG", "RESETSTAT"]);
    let cases = corpus();
    assert!(cases.len() >= 100, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for (args, want) in &cases {
        let shown: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        match c.q(args) {
            Ok(v) => failures.push(format!("{shown:?} succeeded: {v:?}")),
            Err(e) => {
                let code = e.split(' ').next().unwrap_or_default();
                if !code.chars().all(|ch| ch.is_ascii_uppercase()) || code.is_empty() {
                    failures.push(format!("{shown:?}: error without a code: {e}"));
                }
                if !e.contains(want) {
                    failures.push(format!("{shown:?}: expected {want:?} in {e:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases wrong:\n{}", failures.len(), cases.len(), failures.join("\n"));
    assert_eq!(c.string(&["PING"]), Some("PONG".into()));
    assert_eq!(c.digest(), before, "a refused command wrote something");
    // Every TQ call failed, and none reached another command (such as SADD).
    let stats = c.string(&["INFO", "commandstats"]).unwrap_or_default();
    for line in stats.lines().filter(|l| l.starts_with("cmdstat_")) {
        let name = line.split(':').next().unwrap_or_default();
        let field = |f: &str| {
            line.split(',')
                .find_map(|kv| kv.split_once('=').filter(|(k, _)| k.ends_with(f)).map(|(_, v)| v.to_string()))
        };
        match name {
            "cmdstat_ping" | "cmdstat_debug" | "cmdstat_config|resetstat" | "cmdstat_config" => {}
            n if n.starts_with("cmdstat_tq.") => assert_eq!(field("calls"), field("failed_calls"), "{line}"),
            _ => panic!("a refused command ran {line}"),
        }
    }
}

#[test]
fn errors_fit_on_one_line_whatever_the_input() {
    let s = Server::start();
    let mut c = s.conn();
    let e = c.err(&[&b"TQ.ENQUEUE"[..], b"bad", b"q\r\nq", b"c", b"{\r\n"]);
    assert!(!e.contains('\n') && !e.contains('\r'), "{e:?}");
    let e = c.err(&[&b"TQ.POP"[..], b"bad", b"w\r\n\xff", b"q"]);
    assert!(e.contains("UTF-8"), "{e}");
    assert_eq!(c.string(&["PING"]), Some("PONG".into()));
}
