//! COMMAND DOCS / COMMAND INFO / COMMAND GETKEYS describe every TQ command.

mod common;

use common::{Server, Value};

const COMMANDS: [(&str, i64); 43] = [
    ("tq.enqueue", -4),
    ("tq.enqueueat", -5),
    ("tq.enqueuein", -5),
    ("tq.promote", -2),
    ("tq.pop", -4),
    ("tq.ack", 4),
    ("tq.fail", -6),
    ("tq.lock", 5),
    ("tq.unlock", 6),
    ("tq.renew", 6),
    ("tq.hlock", 6),
    ("tq.hunlock", 7),
    ("tq.hrenew", 7),
    ("tq.leader", 4),
    ("tq.resign", 3),
    ("tq.bpop", -5),
    ("tq.heartbeat", -4),
    ("tq.broadcast", -3),
    ("tq.recur", -5),
    ("tq.unrecur", -4),
    ("tq.recurs", 2),
    ("tq.pause", 3),
    ("tq.resume", 3),
    ("tq.paused", 2),
    ("tq.nack", -4),
    ("tq.scheduledat", -4),
    ("tq.timestamps", -2),
    ("tq.delayedat", -3),
    ("tq.alldelayed", -2),
    ("tq.stats", 2),
    ("tq.workers", -2),
    ("tq.failed", -2),
    ("tq.failretry", -2),
    ("tq.failremove", -2),
    ("tq.del", -4),
    ("tq.deldelayed", -4),
    ("tq.delqueue", 3),
    ("tq.delbyclass", -4),
    ("tq.forceclean", 3),
    ("tq.cleanworkers", 3),
    ("tq.untrack", 4),
    ("tq.locks", -2),
    ("tq.details", 2),
];

fn as_map(v: &Value) -> Vec<(String, Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| match kv {
                [Value::BulkString(k), v] => Some((String::from_utf8_lossy(k).into_owned(), v.clone())),
                [Value::SimpleString(k), v] => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        Value::Map(kvs) => kvs
            .iter()
            .filter_map(|(k, v)| match k {
                Value::BulkString(k) => Some((String::from_utf8_lossy(k).into_owned(), v.clone())),
                Value::SimpleString(k) => Some((k.clone(), v.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        other => format!("{other:?}"),
    }
}

#[test]
fn every_command_is_documented() {
    let s = Server::start();
    let mut c = s.conn();
    for (name, arity) in COMMANDS {
        let docs = c.ok(&["COMMAND", "DOCS", name]);
        let top = as_map(&docs);
        let (_, body) = top.first().unwrap_or_else(|| panic!("no docs for {name}"));
        let fields = as_map(body);
        let get = |f: &str| fields.iter().find(|(k, _)| k == f).map(|(_, v)| v.clone());
        assert!(text(&get("summary").expect("summary")).len() > 20, "{name}");
        assert_eq!(text(&get("since").expect("since")), "0.1.0");
        assert!(!text(&get("complexity").expect("complexity")).is_empty());
        let Some(Value::Array(args)) = get("arguments") else { panic!("{name}: no arguments") };
        let first = as_map(&args[0]);
        assert_eq!(text(&first.iter().find(|(k, _)| k == "name").expect("name").1), "namespace");
        assert_eq!(text(&first.iter().find(|(k, _)| k == "type").expect("type").1), "key");

        let info = c.ok(&["COMMAND", "INFO", name]);
        let Value::Array(outer) = info else { panic!("{name}: bad COMMAND INFO") };
        let Value::Array(entry) = &outer[0] else { panic!("{name}: not found by COMMAND INFO") };
        assert_eq!(entry[1], Value::Int(arity), "{name} arity");
        // The namespace is the declared key, whatever the other arguments.
        let mut getkeys = vec!["COMMAND", "GETKEYS", name, "myns"];
        getkeys.extend(["a", "b", "c", "d", "e"].iter().take((arity.unsigned_abs() as usize).saturating_sub(2)));
        assert_eq!(c.strings(&getkeys), ["myns"], "{name}");
    }
}
