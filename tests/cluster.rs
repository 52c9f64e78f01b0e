//! Redis Cluster: three masters with the module. A namespace with a hash tag
//! keeps all its keys in one slot, so every TQ command runs on the node that
//! owns it, through a cluster-aware client or `redis-cli -c`.

mod common;
use tq_testkit::workload;

use std::process::Command;

use common::{wait_until, Conn, Opts, Server, Value};
use redis::cluster::{ClusterClient, ClusterConnection};
use workload::Mix;

struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    fn start() -> Cluster {
        let nodes: Vec<Server> = (0..3)
            .map(|_| {
                Server::start_with(Opts {
                    module: true,
                    args: ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
                        .map(String::from)
                        .to_vec(),
                    ..Opts::default()
                })
            })
            .collect();
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let out = cmd.output().expect("run redis-cli --cluster create");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("All 16384 slots covered"), "cluster create failed:\n{text}");
        for n in &nodes {
            let mut c = n.conn();
            wait_until(60, "cluster_state:ok on every node", || {
                let info = c.string(&["CLUSTER", "INFO"]).unwrap_or_default();
                ["cluster_state:ok", "cluster_slots_ok:16384", "cluster_known_nodes:3"]
                    .iter()
                    .all(|f| info.lines().any(|l| l.trim() == *f))
                    && slot_map(&mut c).len() == 3
            });
        }
        Cluster { nodes }
    }

    fn client(&self) -> ClusterConnection {
        let urls: Vec<String> = self.nodes.iter().map(|n| format!("redis://127.0.0.1:{}/", n.port)).collect();
        ClusterClient::new(urls).expect("cluster client").get_connection().expect("cluster connection")
    }

    fn node(&self, port: u16) -> &Server {
        self.nodes.iter().find(|n| n.port == port).expect("a node of the cluster")
    }

    fn slot(&self, key: &str) -> i64 {
        self.nodes[0].conn().int(&["CLUSTER", "KEYSLOT", key])
    }

    /// The port of the master owning the slot of `key`.
    fn owner(&self, key: &str) -> u16 {
        let slot = self.slot(key);
        slot_map(&mut self.nodes[0].conn())
            .into_iter()
            .find(|(from, to, _)| (*from..=*to).contains(&slot))
            .map(|(_, _, port)| port)
            .expect("slot is covered")
    }
}

/// CLUSTER SLOTS as (first slot, last slot, master port).
fn slot_map(c: &mut Conn) -> Vec<(i64, i64, u16)> {
    let Value::Array(ranges) = c.ok(&["CLUSTER", "SLOTS"]) else { panic!("CLUSTER SLOTS") };
    ranges
        .into_iter()
        .map(|r| match r {
            Value::Array(f) => match (&f[0], &f[1], &f[2]) {
                (Value::Int(a), Value::Int(b), Value::Array(master)) => match master[1] {
                    Value::Int(p) => (*a, *b, u16::try_from(p).expect("port")),
                    ref other => panic!("port {other:?}"),
                },
                other => panic!("slot range {other:?}"),
            },
            other => panic!("slot range {other:?}"),
        })
        .collect()
}

fn keys(c: &mut Conn, pattern: &str) -> Vec<String> {
    c.strings(&["KEYS", pattern])
}

#[test]
fn every_command_runs_on_the_node_owning_the_namespace() {
    let cluster = Cluster::start();
    let mut cc = cluster.client();

    // `{tq}`, and a second namespace owned by another node.
    let tq = "{tq}";
    let other = ["{jobs}", "{jobs}:b", "{jobs2}", "{jobs3}", "{jobs4}", "{jobs5}", "{jobs6}", "{jobs7}"]
        .into_iter()
        .find(|n| cluster.owner(n) != cluster.owner(tq))
        .expect("a namespace on another node");
    assert_ne!(cluster.owner(tq), cluster.owner(other));

    for n in [tq, other] {
        workload::run(&mut cc, n, Mix { big: true, multi: false, lua: true });
    }
    // A hash tag anywhere in the namespace works and shares `{tq}`'s slot.
    assert_eq!(workload::int(&mut cc, &["TQ.ENQUEUE", "app:{tq}", "q", "c"]), 1);
    assert_eq!(cluster.slot("app:{tq}:queue:q"), cluster.slot(tq));
    let (q, _, d) = workload::taken(workload::ok(&mut cc, &["TQ.POP", "app:{tq}", "w", "*"]));
    assert_eq!(q, "q");
    assert_eq!(workload::ok(&mut cc, &["TQ.ACK", "app:{tq}", "w", &d]), Value::Okay);

    // Each namespace's keys live on the node owning its slot, and only there.
    for n in [tq, other] {
        let owner_port = cluster.owner(n);
        let slot = cluster.slot(n);
        for node in &cluster.nodes {
            let mut c = node.conn();
            let found = keys(&mut c, &format!("{n}:*"));
            if node.port == owner_port {
                for k in
                    ["queue:low", "queue:mid", "queue:big", "queues", "failed", "stat:failed", "worker:w-busy:mid,low"]
                {
                    assert!(found.contains(&format!("{n}:{k}")), "{n}:{k} is not on its owner: {found:?}");
                }
                assert!(found.iter().any(|k| k.starts_with(&format!("{n}:tq:"))), "tq's own keys: {found:?}");
                // Read in one transaction: the module's timer may write
                // between two separate commands (a promotion, a metrics
                // flush), and the counts would differ by that write.
                c.ok(&["MULTI"]);
                c.ok(&["KEYS", "*"]);
                c.ok(&["CLUSTER", "COUNTKEYSINSLOT", &slot.to_string()]);
                let Value::Array(both) = c.ok(&["EXEC"]) else { panic!("EXEC") };
                let (Some(Value::Array(all)), Some(Value::Int(counted))) = (both.first(), both.get(1)) else {
                    panic!("EXEC replied {both:?}")
                };
                let in_slot = all
                    .iter()
                    .filter(|k| matches!(k, Value::BulkString(b) if cluster.slot(&String::from_utf8_lossy(b)) == slot))
                    .count();
                assert_eq!(*counted as usize, in_slot);
                assert_eq!(c.int(&["LLEN", &format!("{n}:queue:big")]), 1);
                // The owner answers TQ commands directly.
                assert!(c.int(&["TQ.ENQUEUE", n, "direct", "c"]) >= 1);
            } else {
                assert!(found.is_empty(), "keys of {n} on a node that does not own them: {found:?}");
                // The other nodes redirect, before the module runs.
                let e = c.err(&["TQ.ENQUEUE", n, "direct", "c"]);
                assert_eq!(e, format!("MOVED {slot} 127.0.0.1:{owner_port}"));
                let e = c.err(&["TQ.POP", n, "w", "*"]);
                assert!(e.starts_with("MOVED"), "{e}");
            }
        }
    }

    // A namespace without a hash tag is refused (wherever it hashes), and
    // nothing is written.
    let sizes: i64 = cluster.nodes.iter().map(|n| n.conn().int(&["DBSIZE"])).sum();
    for cmd in [
        vec!["TQ.ENQUEUE", "tq", "q", "c"],
        vec!["TQ.ENQUEUEAT", "tq", "1000", "q", "c"],
        vec!["TQ.ENQUEUEIN", "tq", "1000", "q", "c"],
        vec!["TQ.PROMOTE", "tq"],
        vec!["TQ.POP", "tq", "w", "q"],
        vec!["TQ.ACK", "tq", "w", "1"],
        vec!["TQ.FAIL", "tq", "w", "1", "E", "e"],
        vec!["TQ.ENQUEUE", "{}tq", "q", "c"],
        vec!["TQ.ENQUEUE", "{tq", "q", "c"],
    ] {
        let e = workload::err(&mut cc, &cmd);
        assert!(e.starts_with("ERR") && e.contains("hash tag"), "{cmd:?}: {e}");
    }
    let after: i64 = cluster.nodes.iter().map(|n| n.conn().int(&["DBSIZE"])).sum();
    assert_eq!(after, sizes);

    // Every key sits on the node that owns its slot.
    let map = slot_map(&mut cluster.nodes[0].conn());
    for node in &cluster.nodes {
        for k in keys(&mut node.conn(), "*") {
            let slot = cluster.slot(&k);
            let owner = map.iter().find(|(a, b, _)| (*a..=*b).contains(&slot)).map(|m| m.2);
            assert_eq!(owner, Some(node.port), "{k} is on the wrong node");
        }
    }

    // Cluster topology is unchanged and healthy.
    for n in &cluster.nodes {
        assert_eq!(n.conn().info_field("cluster", "cluster_enabled").as_deref(), Some("1"));
        assert!(n.conn().string(&["CLUSTER", "INFO"]).unwrap_or_default().contains("cluster_state:ok"));
    }
}

#[test]
fn redis_cli_follows_redirects_for_tq_commands() {
    let cluster = Cluster::start();
    let tq = "{tq}";
    let owner = cluster.owner(tq);
    let elsewhere = cluster.nodes.iter().find(|n| n.port != owner).expect("another node").port;
    let run = |args: &[&str]| -> (bool, String) {
        let out = Command::new("redis-cli")
            .args(["-c", "-h", "127.0.0.1", "-p", &elsewhere.to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text.trim_end().to_string())
    };
    let cli = |args: &[&str]| -> String {
        let (ok, text) = run(args);
        assert!(ok, "{args:?}: {text}");
        text
    };
    assert_eq!(cli(&["TQ.ENQUEUE", tq, "cli", "c", "[1,2]"]), "1");
    assert_eq!(cli(&["TQ.ENQUEUE", tq, "cli", "c", "[3]"]), "2");
    let popped = cli(&["TQ.POP", tq, "cli-w", "cli"]);
    let lines: Vec<&str> = popped.lines().collect();
    assert_eq!(lines[..2], ["cli", "{\"class\":\"c\",\"queue\":\"cli\",\"args\":[1,2]}"], "{popped}");
    assert_eq!(cli(&["TQ.ACK", tq, "cli-w", lines[2]]), "OK");
    let (_, e) = run(&["TQ.ENQUEUE", "plain", "cli", "c"]);
    assert!(e.contains("hash tag"), "{e}");

    // The data is on the owner, as the cluster client sees it too.
    let mut o = cluster.node(owner).conn();
    assert_eq!(
        o.strings(&["LRANGE", &format!("{tq}:queue:cli"), "0", "-1"]),
        [r#"{"class":"c","queue":"cli","args":[3]}"#]
    );
    assert_eq!(o.int(&["GET", &format!("{tq}:stat:processed")]), 1);
    let mut cc = cluster.client();
    assert_eq!(workload::int(&mut cc, &["LLEN", &format!("{tq}:queue:cli")]), 1);
}
