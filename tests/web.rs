//! `tq web`: every page loads with data made by tq and by node-resque,
//! hostile names and texts come back escaped, writes need the CSRF token and
//! are refused in --read-only, a non-loopback listen needs a token, and
//! /metrics is Prometheus text whose figures are the server's.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::interop::run_script;
use common::*;

static WEB_SEQ: AtomicUsize = AtomicUsize::new(0);

struct Web {
    tq: Tq,
    base: String,
}

/// Starts `tq --ns <ns> web --listen <listen> <extra>` and waits for its address.
fn start_web(s: &Server, n: &str, listen: &str, extra: &[&str]) -> Web {
    let mut args = vec!["--listen", listen];
    args.extend(extra);
    start_web_as(s, &format!("redis://127.0.0.1:{}/", s.port), n, &args)
}

/// Starts `tq --redis <url> --ns <ns> web <args>` and waits for its address.
fn start_web_as(s: &Server, url: &str, n: &str, web_args: &[&str]) -> Web {
    let log = s.dir.join(format!("web-{}.log", WEB_SEQ.fetch_add(1, Ordering::SeqCst)));
    let mut args = vec!["--ns", n, "web"];
    args.extend(web_args);
    if !args.contains(&"--listen") {
        args.extend(["--listen", "127.0.0.1:0"]);
    }
    let mut tq = Tq::spawn_url(url, &args, &log);
    tq.wait_log(30, "listening on http://");
    // The whole line.
    let text = tq.wait_log(30, ")\n");
    let addr = text
        .split("listening on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the address in the log")
        .replace("0.0.0.0", "127.0.0.1");
    Web { tq, base: format!("http://{addr}") }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new().redirects(0).timeout(Duration::from_secs(30)).build()
}

fn reply(r: Result<ureq::Response, ureq::Error>) -> (u16, String, Option<String>) {
    let resp = match r {
        Ok(resp) => resp,
        Err(ureq::Error::Status(_, resp)) => resp,
        Err(e) => panic!("HTTP request failed: {e}"),
    };
    let status = resp.status();
    let location = resp.header("Location").map(str::to_string);
    (status, resp.into_string().expect("body"), location)
}

fn get(w: &Web, path: &str) -> (u16, String) {
    let (status, body, _) = reply(agent().get(&format!("{}{path}", w.base)).call());
    (status, body)
}

fn get_ok(w: &Web, path: &str) -> String {
    let (status, body) = get(w, path);
    assert_eq!(status, 200, "GET {path}: {body}");
    body
}

fn post(w: &Web, path: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let (status, body, _) = reply(agent().post(&format!("{}{path}", w.base)).send_form(fields));
    (status, body)
}

/// Starts an all-matching operation: the answer leads to its progress page;
/// its JSON once it is no longer running.
fn run_op(w: &Web, path: &str, fields: &[(&str, &str)]) -> serde_json::Value {
    let (status, body, location) = reply(agent().post(&format!("{}{path}", w.base)).send_form(fields));
    assert_eq!(status, 303, "POST {path}: {body}");
    let location = location.expect("a Location");
    let id = location.strip_prefix("/operation?id=").unwrap_or_else(|| panic!("not an operation: {location}"));
    assert!(get_ok(w, &location).contains(&format!("data-op=\"{id}\"")));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let doc: serde_json::Value =
            serde_json::from_str(&get_ok(w, &format!("/api/operation?id={id}"))).expect("JSON");
        if doc["state"] != "running" {
            return doc;
        }
        assert!(std::time::Instant::now() < deadline, "{path}: still running: {doc}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The CSRF token the pages carry.
fn csrf(w: &Web) -> String {
    let page = get_ok(w, "/failed");
    let at = page.find("name=csrf value=\"").expect("a CSRF field on the page") + "name=csrf value=\"".len();
    page[at..].split('"').next().expect("token").to_string()
}

/// Hostile text never comes back as markup: the page's only script element
/// is its own, no data-made element, no raw U+2028 in JSON.
fn assert_escaped(path: &str, body: &str) {
    assert!(body.matches("<script").count() <= 1, "{path}: a script element from the data:\n{body}");
    if body.contains("<script") {
        assert!(body.contains("<script src=\"/static/app.js\" defer></script>"), "{path}");
    }
    for bad in ["<img", "<b>", "<i>", "<E>"] {
        assert!(!body.contains(bad), "{path}: {bad:?} came back unescaped:\n{body}");
    }
}

fn rpush(c: &mut Conn, key: &str, value: &[u8]) {
    c.ok(&[&b"RPUSH"[..], key.as_bytes(), value]);
}

/// Data by tq (hostile names and texts included) and by node-resque.
fn populate(s: &Server, c: &mut Conn, n: &str) -> u64 {
    c.ok(&["TQ.ENQUEUE", n, "math", "add", "[1,2]"]);
    c.ok(&["TQ.ENQUEUE", n, "math", "add", "[3,4]"]);
    c.ok(&[
        "TQ.ENQUEUE",
        n,
        "<script>q</script>",
        "\"><img src=x onerror=alert(1)>",
        "[\"<script>alert(1)</script>\",\"\u{2028}\"]",
    ]);
    c.ok(&["TQ.ENQUEUE", n, "line\u{2028}sep", "c", "[]"]);
    // Invalid UTF-8 in a payload's class.
    rpush(c, &format!("{n}:queue:math"), b"{\"class\":\"bad\xff<b>x</b>\",\"queue\":\"math\",\"args\":[]}");
    // A worker with a hostile name holds a job; another failed one.
    c.ok(&["TQ.POP", n, "<script>w</script>:1", "math"]);
    c.ok(&["TQ.HEARTBEAT", n, "<script>w</script>:1", "60000"]);
    c.ok(&["TQ.POP", n, "w2", "math"]);
    c.fail(n, "w2", &["<E>", "<script>alert(2)</script>\u{2028}"]);
    // A failure record and a registration with invalid UTF-8 in the error and worker name.
    rpush(
        c,
        &format!("{n}:failed"),
        b"{\"worker\":\"bad\xff<i>w</i>\",\"queue\":\"math\",\"payload\":{\"class\":\"add\",\"queue\":\"math\",\"args\":[5]},\"exception\":\"E\",\"error\":\"\xfe<b>err</b>\",\"backtrace\":[],\"failed_at\":\"Sat Dec 05 2026 10:00:00 GMT+0000 (Coordinated Universal Time)\"}",
    );
    c.ok(&[&b"SADD"[..], format!("{n}:workers").as_bytes(), b"bad\xff<i>w</i>:math"]);
    let bucket = c.int(&["TQ.ENQUEUEIN", n, "7200000", "math", "<b>later</b>", "[1]"]);
    c.ok(&["TQ.RECUR", n, "<b>tick</b>", "ticks", "600000"]);
    c.ok(&["TQ.LOCK", n, "<b>lock</b>", "<i>owner</i>", "600000"]);
    run_script(s, n, "web_data.js", &[]);
    u64::try_from(bucket).expect("bucket") * 1000
}

#[test]
fn every_page_loads_with_data_from_tq_and_node_resque_and_escapes_hostile_text() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web");
    let later_ms = populate(&s, &mut c, &n);
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);

    let home = get_ok(&w, "/");
    assert_escaped("/", &home);
    for q in ["math", "nq", "nfail", "&lt;script&gt;q&lt;/script&gt;"] {
        assert!(home.contains(&format!(">{q}</a>")), "/ lists queue {q}:\n{home}");
    }
    assert!(home.contains("data-live=\"queue:math:depth\">1<"), "{home}");

    let math = get_ok(&w, "/queue?name=math");
    assert_escaped("/queue", &math);
    assert!(math.contains("bad\u{fffd}&lt;b&gt;x&lt;/b&gt;"), "{math}");
    let hostile = get_ok(&w, "/queue?name=%3Cscript%3Eq%3C%2Fscript%3E");
    assert_escaped("/queue hostile", &hostile);
    assert!(hostile.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"), "{hostile}");
    assert!(hostile.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{hostile}");
    let nq = get_ok(&w, "/queue?name=nq");
    assert!(nq.contains("NodeJob") && nq.contains("[&quot;from node&quot;,1]"), "{nq}");

    let failed = get_ok(&w, "/failed");
    assert_escaped("/failed", &failed);
    assert!(failed.contains("&lt;script&gt;alert(2)&lt;/script&gt;"), "{failed}");
    assert!(
        failed.contains("\u{fffd}&lt;b&gt;err&lt;/b&gt;") && failed.contains("bad\u{fffd}&lt;i&gt;w&lt;/i&gt;"),
        "{failed}"
    );
    // node-resque's failure, by a worker with a hostile name.
    assert!(failed.contains("&lt;script&gt;alert(&quot;node&quot;)&lt;/script&gt;"), "{failed}");
    assert!(failed.contains("node&quot;&gt;&lt;img src=x onerror=alert(1)&gt;:7"), "{failed}");
    let filtered = get_ok(&w, "/failed?class=NodeBoom");
    assert!(filtered.contains("NodeBoom") && !filtered.contains("alert(2)"), "{filtered}");

    let workers = get_ok(&w, "/workers");
    assert_escaped("/workers", &workers);
    assert!(workers.contains("&lt;script&gt;w&lt;/script&gt;:1"), "{workers}");
    assert!(workers.contains("bad\u{fffd}&lt;i&gt;w&lt;/i&gt;"), "{workers}");
    assert!(workers.contains("<span class=ok>alive</span>"), "the heartbeating worker is alive: {workers}");

    let delayed = get_ok(&w, "/delayed");
    assert_escaped("/delayed", &delayed);
    assert!(delayed.contains(&format!("/delayed?at={later_ms}")), "{delayed}");
    let at = get_ok(&w, &format!("/delayed?at={later_ms}"));
    assert_escaped("/delayed?at", &at);
    assert!(at.contains("&lt;b&gt;later&lt;/b&gt;"), "{at}");
    let times: Vec<String> = c.strings(&["TQ.TIMESTAMPS", &n]);
    assert_eq!(times.len(), 2, "tq's and node-resque's delayed jobs");
    let node_at = times.iter().find(|t| **t != later_ms.to_string()).expect("node-resque's time");
    assert!(get_ok(&w, &format!("/delayed?at={node_at}")).contains("NodeLater"));

    let locks = get_ok(&w, "/locks");
    assert_escaped("/locks", &locks);
    assert!(locks.contains("&lt;b&gt;lock&lt;/b&gt;") && locks.contains("&lt;i&gt;owner&lt;/i&gt;"), "{locks}");

    let periodic = get_ok(&w, "/periodic");
    assert_escaped("/periodic", &periodic);
    assert!(periodic.contains("&lt;b&gt;tick&lt;/b&gt;"), "{periodic}");

    let live = get_ok(&w, "/api/live");
    assert_escaped("/api/live", &live);
    assert!(!live.contains('\u{2028}') && live.contains("line\\u2028sep"), "{live}");
    let doc: serde_json::Value = serde_json::from_str(&live).expect("JSON");
    assert_eq!(doc["figures"]["queue:math:depth"], 1);
    assert_eq!(doc["figures"]["queue:\u{3c}script\u{3e}q\u{3c}/script\u{3e}:depth"], 1);
    assert_eq!(doc["figures"]["failed_jobs"], 3);

    // Another host name pointing at this address (DNS rebinding) gets nothing.
    let (status, body, _) = reply(agent().get(&format!("{}/failed", w.base)).set("Host", "evil.example").call());
    assert_eq!(status, 403, "{body}");
    assert!(!body.contains("alert"), "{body}");
    for asset in ["/static/app.js", "/static/style.css"] {
        assert_eq!(get(&w, asset).0, 200);
    }
    assert_eq!(get(&w, "/nothing").0, 404);
}

/// Prometheus text exposition: every line a comment or `name[{labels}]
/// number`; each family has one HELP and one TYPE, before its samples, and
/// its samples are not interleaved with another family's (a histogram's or
/// summary's `_bucket`, `_sum` and `_count` belong to it).
fn assert_exposition(text: &str) {
    let mut families: Vec<(String, String)> = Vec::new();
    let mut helped: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix('#') {
            assert!(rest.starts_with(" HELP tq_") || rest.starts_with(" TYPE tq_"), "{line}");
            let mut words = rest.split_whitespace();
            let (what, name) = (words.next().expect(line), words.next().expect(line).to_string());
            if what == "HELP" {
                assert!(!helped.contains(&name), "a second HELP for {name}");
                helped.push(name);
            } else {
                assert!(!families.iter().any(|(f, _)| *f == name), "a second TYPE for {name}");
                assert_eq!(helped.last(), Some(&name), "TYPE {name} right after its HELP");
                families.push((name, words.next().expect(line).to_string()));
            }
            continue;
        }
        let (head, value) = line.rsplit_once(' ').expect(line);
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let name = head.split('{').next().unwrap_or_default();
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'), "{line}");
        let (family, kind) = families.last().expect("a sample before any TYPE");
        let ok = match kind.as_str() {
            "histogram" => {
                [family.clone(), format!("{family}_bucket"), format!("{family}_sum"), format!("{family}_count")]
                    .contains(&name.to_string())
            }
            "summary" => {
                [family.clone(), format!("{family}_sum"), format!("{family}_count")].contains(&name.to_string())
            }
            _ => name == family,
        };
        assert!(ok, "{line}: a sample outside its family (the last TYPE was {family})");
    }
}

/// `name{labels} value` lines of a metric.
fn samples(text: &str, name: &str) -> Vec<(String, f64)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (head, value) = l.rsplit_once(' ')?;
            let (metric, labels) = match head.split_once('{') {
                Some((m, rest)) => (m, rest.strip_suffix('}')?.to_string()),
                None => (head, String::new()),
            };
            (metric == name).then(|| (labels, value.parse().expect("a number")))
        })
        .collect()
}

#[test]
fn metrics_are_prometheus_text_with_the_servers_figures() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-metrics");
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[1]"]);
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[2]"]);
    c.ok(&["TQ.ENQUEUE", &n, "q\"\\\nx", "c", "[3]"]);
    c.ok(&["TQ.POP", &n, "w1", "a"]);
    c.ack(&n, "w1");
    c.ok(&["TQ.POP", &n, "w1", "a"]);
    c.fail(&n, "w1", &["E", "e"]);
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[4]"]);
    c.ok(&["TQ.POP", &n, "w2", "a"]);
    c.ok(&["TQ.HEARTBEAT", &n, "w2", "60000"]);
    c.ok(&["TQ.ENQUEUEIN", &n, "600000", "a", "c", "[5]"]);
    c.ok(&["TQ.PAUSE", &n, "a"]);
    // The Node package's counters (Stats.increment).
    c.ok(&["HINCRBY", &format!("{n}:stats:global"), "emails", "3"]);
    c.ok(&["HINCRBY", &format!("{n}:stats:local:web-1"), "emails", "2"]);
    c.ok(&["HINCRBY", &format!("{n}:stats:local:<b>"), "<i>", "1"]);
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let home = get_ok(&w, "/");
    assert!(home.contains("<h2>Counters</h2>"), "{home}");
    assert!(home.contains("<td>(global)</td><td>emails</td><td>3</td>"), "{home}");
    assert!(home.contains("<td>&lt;b&gt;</td><td>&lt;i&gt;</td><td>1</td>"), "{home}");
    let text = get_ok(&w, "/metrics");
    assert_exposition(&text);
    let ns_label = format!("namespace=\"{n}\"");
    let q = |queue: &str| format!("{ns_label},queue=\"{queue}\"");
    assert!(samples(&text, "tq_queue_depth").contains(&(q("a"), 0.0)), "{text}");
    assert!(samples(&text, "tq_queue_depth").contains(&(q("q\\\"\\\\\\nx"), 1.0)), "{text}");
    assert!(samples(&text, "tq_queue_paused").contains(&(q("a"), 1.0)), "{text}");
    assert!(samples(&text, "tq_queue_in_flight").contains(&(q("a"), 1.0)), "{text}");
    assert!(samples(&text, "tq_queue_workers_alive").contains(&(q("a"), 1.0)), "{text}");
    // The same figures as the server's keys and the CLI's sources.
    let one = |name: &str| samples(&text, name).into_iter().find(|(l, _)| *l == ns_label).map(|(_, v)| v);
    assert_eq!(one("tq_processed_total"), Some(c.int(&["GET", &format!("{n}:stat:processed")]) as f64));
    assert_eq!(one("tq_failed_total"), Some(c.int(&["GET", &format!("{n}:stat:failed")]) as f64));
    assert_eq!(one("tq_failed_jobs"), Some(c.int(&["LLEN", &format!("{n}:failed")]) as f64));
    assert_eq!(one("tq_delayed_jobs"), Some(1.0));
    assert_eq!(one("tq_in_flight"), Some(1.0));
    assert_eq!(one("tq_workers_alive"), Some(1.0));
    let popped: f64 = c.info_field("tq", "tq_popped").expect("tq_popped").parse().expect("number");
    assert_eq!(samples(&text, "tq_server_popped_total"), vec![(String::new(), popped)]);
    assert_eq!(samples(&text, "tq_server_job_run_ms_count").len(), 1, "{text}");
    let counters = samples(&text, "tq_counter");
    assert!(counters.contains(&(format!("{ns_label},scope=\"global\",counter=\"emails\""), 3.0)), "{text}");
    assert!(
        counters.contains(&(format!("{ns_label},scope=\"local\",server=\"web-1\",counter=\"emails\""), 2.0)),
        "{text}"
    );
}

#[test]
fn writes_need_the_csrf_token_and_work_with_it() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-writes");
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[1]"]);
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUE", &n, "b", "d", &format!("[{i}]")]);
        c.ok(&["TQ.POP", &n, "w", "b"]);
        c.fail(&n, "w", &["E", "e"]);
    }
    c.ok(&["TQ.ENQUEUE", &n, "z", "zz", "[9]"]);
    c.ok(&["TQ.POP", &n, "w", "z"]);
    c.fail(&n, "w", &["Other", "o"]);
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let token = csrf(&w);

    // Without the token, or with a wrong one: refused, nothing written.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    for fields in [&[("queue", "a")][..], &[("queue", "a"), ("csrf", "0000")][..]] {
        let (status, body) = post(&w, "/pause", fields);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("CSRF"), "{body}");
    }
    let (status, _) = post(&w, "/failed/retry", &[]);
    assert_eq!(status, 403);
    assert_eq!(c.digest(), before);

    // Pause, seen by a take; resume.
    assert_eq!(post(&w, "/pause", &[("csrf", &token), ("queue", "a")]).0, 303);
    assert_eq!(c.strings(&["TQ.PAUSED", &n]), vec!["a"]);
    assert_eq!(c.ok(&["TQ.POP", &n, "w9", "a"]), Value::Nil);
    assert!(get_ok(&w, "/").contains("data-live=\"queue:a:paused\">paused<"));
    assert_eq!(post(&w, "/resume", &[("csrf", &token), ("queue", "a")]).0, 303);
    assert_eq!(c.strings(&["TQ.PAUSED", &n]), Vec::<String>::new());

    // Retry one failed job by its id: back in its queue.
    let failed = get_ok(&w, "/failed");
    let at = failed.find("name=\"id\" value=\"").expect("an id") + "name=\"id\" value=\"".len();
    let id = failed[at..].split('"').next().expect("id").to_string();
    assert_eq!(post(&w, "/failed/retry", &[("csrf", &token), ("id", &id)]).0, 303);
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 3);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:b")]), 1);
    // Retry all matching (class d), batched as `tq retry`.
    assert_eq!(run_op(&w, "/failed/retry", &[("csrf", &token), ("class", "d")])["done"], 2);
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 1);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:b")]), 3);
    // Filtered by exception, then removed by it.
    let other = get_ok(&w, "/failed?exception=Other");
    assert!(other.contains(">zz<") && other.contains("remove all matching"), "{other}");
    assert!(get_ok(&w, "/failed?exception=Nope").contains("<tbody></tbody>"));
    assert_eq!(run_op(&w, "/failed/remove", &[("csrf", &token), ("exception", "Nope")])["done"], 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 1);
    assert_eq!(run_op(&w, "/failed/remove", &[("csrf", &token), ("exception", "Other")])["done"], 1);
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:z")]), 0, "removed, not retried");

    // Delete one job, then the queue.
    assert_eq!(
        post(&w, "/queue/delete-job", &[("csrf", &token), ("queue", "b"), ("class", "d"), ("args", "[1]")]).0,
        303
    );
    assert_eq!(c.lrange(&format!("{n}:queue:b")), vec![job("b", "d", "[0]"), job("b", "d", "[2]")]);
    assert_eq!(post(&w, "/queue/delete", &[("csrf", &token), ("queue", "b")]).0, 303);
    assert_eq!(c.int(&["EXISTS", &format!("{n}:queue:b")]), 0);

    // A delayed job run now.
    c.ok(&["TQ.ENQUEUEIN", &n, "3600000", "later", "e", "[7]"]);
    assert_eq!(
        post(&w, "/delayed/run", &[("csrf", &token), ("queue", "later"), ("class", "e"), ("args", "[7]")]).0,
        303
    );
    assert_eq!(c.lrange(&format!("{n}:queue:later")), vec![job("later", "e", "[7]")]);
    assert_eq!(c.strings(&["TQ.TIMESTAMPS", &n]), Vec::<String>::new());
}

#[test]
fn read_only_hides_and_refuses_every_write() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-ro");
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[1]"]);
    c.ok(&["TQ.POP", &n, "w", "a"]);
    c.fail(&n, "w", &["E", "e"]);
    c.ok(&["TQ.ENQUEUE", &n, "a", "c", "[2]"]);
    c.ok(&["TQ.ENQUEUEIN", &n, "3600000", "a", "c", "[3]"]);
    // As a Redis user that may not write.
    c.ok(&["ACL", "SETUSER", "ro", "on", ">pw", "+@all", "-@write", &format!("~{n}"), &format!("~{n}:*")]);
    let w = start_web_as(&s, &format!("redis://ro:pw@127.0.0.1:{}/", s.port), &n, &["--read-only"]);
    let bucket = c.strings(&["TQ.TIMESTAMPS", &n]).pop().expect("a delayed time");
    for page in [
        "/",
        "/queue?name=a",
        "/failed",
        "/failed?class=c",
        "/workers",
        "/delayed",
        &format!("/delayed?at={bucket}"),
        "/locks",
        "/periodic",
        "/broadcast",
        "/api/live",
        "/metrics",
    ] {
        let body = get_ok(&w, page);
        assert!(!body.contains("method=post") && !body.contains("name=csrf"), "{page} shows a write:\n{body}");
    }
    assert!(get_ok(&w, "/").contains("read-only"));
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    let all = [("queue", "a"), ("class", "c"), ("args", "[2]"), ("id", "x"), ("csrf", "x")];
    for route in [
        "/pause",
        "/resume",
        "/queue/delete",
        "/queue/delete-job",
        "/failed/retry",
        "/failed/remove",
        "/failed/retry-selected",
        "/failed/remove-selected",
        "/broadcast",
        "/delayed/run",
        "/delayed/delete",
    ] {
        let (status, body) = post(&w, route, &all);
        assert_eq!(status, 403, "{route}: {body}");
        assert!(body.contains("read-only"), "{route}: {body}");
    }
    assert_eq!(c.digest(), before);
}

#[test]
fn a_non_loopback_listen_needs_a_token() {
    let s = Server::start();
    let n = ns("web-token");
    // No token: refuses to start.
    let log = s.dir.join("web-refused.log");
    let mut refused = Tq::spawn(s.port, &["--ns", &n, "web", "--listen", "0.0.0.0:0"], &log);
    let status = refused.wait_exit(30);
    assert_eq!(status.code(), Some(1), "{}", refused.log());
    assert!(refused.log().contains("not a loopback address") && refused.log().contains("--token-file"));
    // A token too short to be one: refused too.
    let short = s.dir.join("short-token");
    std::fs::write(&short, "abc\n").expect("write");
    let log = s.dir.join("web-short.log");
    let mut refused = Tq::spawn(
        s.port,
        &["--ns", &n, "web", "--listen", "0.0.0.0:0", "--token-file", short.to_str().expect("path")],
        &log,
    );
    assert_eq!(refused.wait_exit(30).code(), Some(1), "{}", refused.log());

    let token = "s3cret-token-0123456789";
    let file = s.dir.join("token");
    std::fs::write(&file, format!("{token}\n")).expect("write");
    let w = start_web(&s, &n, "0.0.0.0:0", &["--token-file", file.to_str().expect("path")]);
    // Without the token: the pages send to the login form, the API refuses.
    let (status, _, location) = reply(agent().get(&format!("{}/", w.base)).call());
    assert_eq!((status, location.as_deref()), (303, Some("/login")));
    for path in ["/api/live", "/metrics"] {
        assert_eq!(get(&w, path).0, 401, "{path}");
    }
    let (status, _, _) =
        reply(agent().get(&format!("{}/metrics", w.base)).set("Authorization", "Bearer wrong-token-0123456789").call());
    assert_eq!(status, 401);
    // With it, in a header.
    let (status, body, _) =
        reply(agent().get(&format!("{}/metrics", w.base)).set("Authorization", &format!("Bearer {token}")).call());
    assert_eq!(status, 200, "{body}");
    // Through the login form: a cookie.
    let (status, _, _) = reply(agent().post(&format!("{}/login", w.base)).send_form(&[("token", "nope")]));
    assert_eq!(status, 401);
    let resp = match agent().post(&format!("{}/login", w.base)).send_form(&[("token", token)]) {
        Ok(r) => r,
        Err(e) => panic!("login: {e}"),
    };
    assert_eq!(resp.status(), 303);
    let cookie = resp.header("Set-Cookie").expect("a cookie").to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    let pair = cookie.split(';').next().expect("name=value").to_string();
    let (status, body, _) = reply(agent().get(&format!("{}/", w.base)).set("Cookie", &pair).call());
    assert_eq!(status, 200, "{body}");
    drop(w.tq);
}

#[test]
fn an_empty_namespace_and_odd_parameters_still_give_pages() {
    let s = Server::start();
    let n = ns("web-empty");
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    for page in [
        "/",
        "/queue?name=none",
        "/queue",
        "/failed?offset=99999999999999999999",
        "/failed?offset=-1&class=",
        "/workers?offset=9007199254740993",
        "/delayed?at=nonsense",
        "/delayed?at=18446744073709551615",
        "/locks?cursor=x",
        "/periodic",
        "/api/live",
        "/metrics",
    ] {
        let (status, body) = get(&w, page);
        assert!([200, 303, 400].contains(&status), "{page}: {status} {body}");
        let html = !page.starts_with("/api/") && page != "/metrics";
        assert!(!html || status == 303 || body.contains("</html>"), "{page}: {body}");
    }
    let mut c = s.conn();
    c.ok(&["SET", &format!("{n}:failed"), "not a list"]);
    let (status, body) = get(&w, "/failed");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("WRONGTYPE"), "{body}");
    c.ok(&["DEL", &format!("{n}:failed")]);
    assert_eq!(get(&w, "/failed").0, 200, "the server goes on after an error");
}

/// A worker that completes and takes in one step (`TQ.POP ... ACK`) keeps
/// its leases-zset member at the earlier deadline; the page shows the
/// deadline of the job it holds, from its entry.
#[test]
fn a_workers_lease_left_is_the_one_of_the_job_it_holds() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("weblease");
    for args in ["[1]", "[2]"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", "add", args]);
    }
    c.ok(&["TQ.POP", &n, "w1", "q", "LEASE", "60000"]);
    let d = c.delivery(&n, "w1");
    c.ok(&["TQ.POP", &n, "w1", "q", "LEASE", "7200000", "ACK", &d]);
    let member = c.string(&["ZSCORE", &format!("{n}:tq:leases"), "w1"]).expect("a lease member");
    let entry = c.inflight(&n, "w1").expect("an entry");
    assert!(member.parse::<u64>().expect("score") + 3_600_000 < entry.lease_until_ms, "{member} vs {entry:?}");
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let page = get_ok(&w, "/workers");
    assert!(page.contains(">1h59m<"), "the lease left of the job held (about 2 h):\n{page}");
}

/// The `next` link of a search page (its href, unescaped).
fn next_link(body: &str) -> Option<String> {
    let end = body.find("\">next</a>")?;
    let start = body.get(..end)?.rfind("href=\"")? + "href=\"".len();
    Some(body.get(start..end)?.replace("&amp;", "&"))
}

#[test]
fn failed_jobs_are_searched_by_text_a_bounded_window_at_a_time() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-search-failed");
    // 1,200 failures; the one with the text sought is the 1,101st.
    c.ok(&[
        "EVAL",
        r#"for i=1,1200 do
             local err = 'boom ' .. i
             if i == 1101 then err = 'a <b>Needle</b> here' end
             redis.call('RPUSH', KEYS[1], cjson.encode({worker='w', queue='q', exception='E', error=err,
               backtrace={}, failed_at='Sat Dec 05 2026 10:00:00 GMT+0000 (Coordinated Universal Time)',
               payload={class='C' .. (i % 3), queue='q', args={i}}}))
           end return 1"#,
        "1",
        &format!("{n}:failed"),
    ]);
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    // The first window (1,000 records) has no match: an empty page going on after it.
    let first = get_ok(&w, "/failed?q=nEEdle");
    assert_escaped("/failed?q", &first);
    assert!(first.contains("<tbody></tbody>"), "{first}");
    assert!(first.contains("looked at records 1–1000 of 1200"), "{first}");
    let next = next_link(&first).expect("a next link");
    assert_eq!(next, "/failed?q=nEEdle&offset=1000");
    let second = get_ok(&w, &next);
    assert!(second.contains("a &lt;b&gt;Needle&lt;/b&gt; here"), "{second}");
    assert_eq!(second.matches("<tr><td>").count(), 1, "{second}");
    assert!(second.contains("looked at records 1001–1200 of 1200") && next_link(&second).is_none(), "{second}");
    // Text search offers no sweep by field (which would not be what was searched).
    assert!(!second.contains("retry all"), "{second}");
    // With a field filter: record 1101 has class C0 (1101 % 3).
    assert!(get_ok(&w, "/failed?q=needle&class=C1&offset=1000").contains("<tbody></tbody>"));
    assert!(get_ok(&w, "/failed?q=needle&class=C0&offset=1000").contains("Needle"));
    // A page of matches stops the window early: 50 rows, next after the 50th match.
    let many = get_ok(&w, "/failed?q=boom");
    assert_eq!(many.matches("<tr><td>").count(), 50, "{many}");
    assert_eq!(next_link(&many).as_deref(), Some("/failed?q=boom&offset=50"));
}

#[test]
fn a_queue_is_searched_by_class_and_args_a_bounded_window_at_a_time() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-search-queue");
    c.ok(&[
        "EVAL",
        r#"for i=1,1500 do
             local class, args = 'C', '[' .. i .. ']'
             if i == 1201 then class, args = 'X', '["<i>needle</i>"]' end
             redis.call('RPUSH', KEYS[1], '{"class":"' .. class .. '","queue":"big","args":' .. args .. '}')
           end redis.call('SADD', KEYS[2], 'big') return 1"#,
        "2",
        &format!("{n}:queue:big"),
        &format!("{n}:queues"),
    ]);
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    for (query, next) in [
        ("args=%3CI%3ENeedle", "/queue?name=big&args=%3CI%3ENeedle&offset=1000"),
        ("class=X", "/queue?name=big&class=X&offset=1000"),
    ] {
        let first = get_ok(&w, &format!("/queue?name=big&{query}"));
        assert_escaped("/queue search", &first);
        assert!(first.contains("<tbody></tbody>") && first.contains("looked at jobs 1–1000 of 1500"), "{first}");
        assert_eq!(next_link(&first).as_deref(), Some(next), "{first}");
        let second = get_ok(&w, next);
        assert_escaped("/queue search", &second);
        assert!(
            second.contains("<tr><td>1200</td><td>X</td><td><code>[&quot;&lt;i&gt;needle&lt;/i&gt;&quot;]</code>"),
            "{second}"
        );
        assert_eq!(second.matches("<tr><td>").count(), 1, "{second}");
    }
    // Both: class C and args containing 7; a page of 50 matches.
    let both = get_ok(&w, "/queue?name=big&class=C&args=7");
    assert_eq!(both.matches("<tr><td>").count(), 50, "{both}");
    assert!(both.contains("<td><code>[7]</code>") && !both.contains("<code>[8]</code>"), "{both}");
    assert!(get_ok(&w, "/queue?name=big&class=Nope").contains("<tbody></tbody>"));
}

/// A (queue, class) pair's entry in `tq metrics --json`.
fn pair_doc<'a>(doc: &'a serde_json::Value, queue: &str, class: &str) -> &'a serde_json::Value {
    doc["pairs"]
        .as_array()
        .expect("pairs")
        .iter()
        .find(|p| p["queue"] == queue && p["class"] == class)
        .unwrap_or_else(|| panic!("no pair ({queue}, {class}) in {doc}"))
}

fn metrics_json(s: &Server, n: &str) -> serde_json::Value {
    let run = run_tq(s.port, n, &["metrics", "--json"]);
    assert_eq!(run.code, 0, "{}", run.err);
    serde_json::from_str(&run.out).expect("JSON")
}

/// One sample's value (labels as `/metrics` writes them).
fn sample(text: &str, name: &str, labels: &str) -> f64 {
    samples(text, name)
        .into_iter()
        .find(|(l, _)| l == labels)
        .unwrap_or_else(|| panic!("no {name}{{{labels}}} in\n{text}"))
        .1
}

#[test]
fn job_metrics_in_tq_metrics_the_overview_and_metrics_agree() {
    use tq_core::metrics::{pair, Tally};

    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-jobs");
    let enqueue = |queue: &str, class: &str| {
        let run = run_tq(s.port, &n, &["enqueue", queue, class, "[1]"]);
        assert_eq!(run.code, 0, "{}", run.err);
    };
    for _ in 0..4 {
        enqueue("a", "c");
    }
    let (hq, hc) = ("<script>q</script>", "\"><img src=x onerror=alert(1)>");
    enqueue(hq, hc);
    // a/c: two processed, one failed, one left waiting; the hostile pair one processed.
    for _ in 0..2 {
        c.ok(&["TQ.POP", &n, "w1", "a"]);
        c.ack(&n, "w1");
    }
    c.ok(&["TQ.POP", &n, "w1", "a"]);
    c.fail(&n, "w1", &["E", "e"]);
    c.ok(&["TQ.POP", &n, "w2", hq]);
    c.ack(&n, "w2");
    // Totals of a pair no job touches (so the timer never adds to them),
    // with names that need Prometheus' label escaping.
    let (tq_, tc) = ("q\"\\\nx", "<script>c</script>");
    let mut total = Tally { processed: 7, failed: 2, ..Tally::default() };
    for ms in [0, 3, 900, 5_000] {
        total.run.add(ms);
    }
    total.wait.add(40);
    let name = pair(tq_.as_bytes(), tc.as_bytes());
    let keys = tq_core::keys::Ns::new(n.as_bytes(), false).expect("namespace");
    c.ok(&[&b"SET"[..], keys.metrics_total(&name).as_slice(), total.to_bytes().as_slice()]);
    c.ok(&[&b"SADD"[..], keys.metrics_pairs().as_slice(), name.as_slice()]);
    // The waiting job is at least this old when read, and the workers'
    // counts are in their minutes' records (the timer writes them within
    // `FLUSH_MS` of the jobs).
    std::thread::sleep(Duration::from_millis(50));
    c.wait_tallies_written(&n);

    let doc = metrics_json(&s, &n);
    let ac = pair_doc(&doc, "a", "c");
    assert_eq!(
        (ac["last_hour"]["processed"].as_u64(), ac["last_hour"]["failed"].as_u64()),
        (Some(2), Some(1)),
        "{doc}"
    );
    assert_eq!(ac["last_hour"]["run"]["count"], 3, "{doc}");
    assert_eq!(ac["last_hour"]["wait"]["count"], 3, "tq enqueued them all, so each wait is known: {doc}");
    assert!(ac["last_hour"]["run"]["p99_ms"].as_u64().is_some(), "{doc}");
    let hostile = pair_doc(&doc, hq, hc);
    assert_eq!(hostile["last_hour"]["processed"], 1, "{doc}");
    let written = pair_doc(&doc, tq_, tc);
    assert_eq!(
        (written["total"]["processed"].as_u64(), written["total"]["failed"].as_u64()),
        (Some(7), Some(2)),
        "{doc}"
    );
    assert_eq!(
        (written["total"]["run"]["count"].as_u64(), written["total"]["run"]["sum_ms"].as_u64()),
        (Some(4), Some(5_903))
    );
    let queue = |name: &str| {
        doc["queues"].as_array().expect("queues").iter().find(|q| q["queue"] == name).cloned().expect("the queue")
    };
    assert_eq!(queue("a")["waiting"], 1, "{doc}");
    let latency = queue("a")["latency_ms"].as_u64().expect("a known latency for a queue holding a job tq enqueued");
    assert!(latency >= 50, "{doc}");
    assert_eq!(queue(hq)["latency_ms"], serde_json::Value::Null, "an empty queue has no latency: {doc}");
    // The table names the same figures.
    let table = run_tq(s.port, &n, &["metrics"]);
    assert_eq!(table.code, 0, "{}", table.err);
    assert!(table.out.contains("QUEUE") && table.out.contains("≤ ") && table.out.contains(hq), "{}", table.out);

    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let text = get_ok(&w, "/metrics");
    assert_exposition(&text);
    let nl = format!("namespace=\"{n}\"");
    let written_labels = format!("{nl},queue=\"q\\\"\\\\\\nx\",class=\"<script>c</script>\"");
    assert_eq!(sample(&text, "tq_jobs_processed_total", &written_labels), 7.0, "{text}");
    assert_eq!(sample(&text, "tq_jobs_failed_total", &written_labels), 2.0);
    assert_eq!(sample(&text, "tq_job_run_seconds_count", &written_labels), 4.0);
    assert_eq!(sample(&text, "tq_job_run_seconds_sum", &written_labels), 5.903);
    assert_eq!(sample(&text, "tq_job_wait_seconds_count", &written_labels), 1.0);
    // Cumulative buckets: 0 and 3 ms under 4 ms, 900 under 1.024 s, all under +Inf.
    let bucket = |le: &str| sample(&text, "tq_job_run_seconds_bucket", &format!("{written_labels},le=\"{le}\""));
    assert_eq!(
        (bucket("0.001"), bucket("0.004"), bucket("1.024"), bucket("4.096"), bucket("+Inf")),
        (1.0, 2.0, 3.0, 3.0, 4.0)
    );
    assert_eq!(bucket("8.192"), 4.0);
    // The pairs jobs ran in: totals are closed minutes, read after the CLI's
    // (so never fewer).
    let ac_labels = format!("{nl},queue=\"a\",class=\"c\"");
    assert!(sample(&text, "tq_jobs_processed_total", &ac_labels) >= ac["total"]["processed"].as_f64().expect("n"));
    assert!(sample(&text, "tq_jobs_failed_total", &ac_labels) >= ac["total"]["failed"].as_f64().expect("n"));
    let gauge = sample(&text, "tq_queue_latency_seconds", &format!("{nl},queue=\"a\""));
    assert!(gauge * 1000.0 >= latency as f64, "{gauge} s, the CLI read {latency} ms before");
    assert_eq!(sample(&text, "tq_queue_latency_seconds", &format!("{nl},queue=\"{}\"", hq)), 0.0);

    let home = get_ok(&w, "/");
    assert_escaped("/", &home);
    assert!(home.contains("<svg class=graph"), "{home}");
    assert!(home.contains("every queue, last hour per minute: processed 3, failed 1"), "{home}");
    assert!(home.contains("every queue, last day per hour: processed 3, failed 1"), "{home}");
    // Per-queue graphs name the queue, escaped.
    assert!(
        home.contains("queue &lt;script&gt;q&lt;/script&gt;, last hour per minute: processed 1, failed 0"),
        "{home}"
    );
    assert!(home.contains("data-live=\"queue:a:latency\""), "{home}");
    let live: serde_json::Value = serde_json::from_str(&get_ok(&w, "/api/live")).expect("JSON");
    let shown = live["figures"]["queue:a:latency"].as_str().expect("a latency text");
    assert_ne!(shown, "-", "{live}");
    assert!(live["figures"]["queue:a:minute_processed"].is_u64(), "{live}");
    assert!(live["figures"]["minute_failed"].is_u64(), "{live}");
}

/// A minute of the previous hour that the timer has yet to close is not in
/// its hour's record: the day graph adds it (read in the same MULTI, so a
/// close in between never counts it twice). On a replica (written to
/// directly) the timer closes nothing, so the minute stays open.
#[test]
fn the_day_graph_adds_a_past_hours_minute_the_timer_has_yet_to_close() {
    use tq_core::metrics::{pair, Tally, HOUR_MS, MINUTE_MS};

    let primary = Server::start();
    let r = start_replica(primary.port, Opts::default().with_args(&["--replica-read-only", "no"]));
    let mut c = r.conn();
    let n = ns("web-hours");
    let keys = tq_core::keys::Ns::new(n.as_bytes(), false).expect("namespace");
    let name = pair(b"h", b"k");
    let tally = |processed: u64| Tally { processed, ..Tally::default() }.to_bytes();
    let w = start_web(&r, &n, "127.0.0.1:0", &[]);
    // Retried when an hour ends meanwhile (the bars would shift).
    for _ in 0..3 {
        // In an hour's last minute the hour graph's 60 minutes start at the
        // hour, so the past hour's last minute is not read (the reader's
        // documented window): wait for the next hour then.
        let now = c.server_ms();
        if now % HOUR_MS >= HOUR_MS - MINUTE_MS {
            std::thread::sleep(std::time::Duration::from_millis(HOUR_MS - now % HOUR_MS + 50));
        }
        let hour = c.server_ms() / HOUR_MS;
        let last_minute = hour * HOUR_MS / MINUTE_MS - 1;
        c.ok(&[&b"SET"[..], keys.metrics_hour(hour - 1, &name).as_slice(), tally(5).as_slice()]);
        c.ok(&[&b"SET"[..], keys.metrics_minute(last_minute, &name).as_slice(), tally(2).as_slice()]);
        let member = [last_minute.to_string().as_bytes(), b":", &name].concat();
        let ends = (hour * HOUR_MS).to_string();
        c.ok(&[&b"ZADD"[..], keys.metrics_open().as_slice(), ends.as_bytes(), member.as_slice()]);
        c.ok(&[&b"SADD"[..], keys.metrics_pairs().as_slice(), name.as_slice()]);
        let home = get_ok(&w, "/");
        let read_at = c.server_ms();
        if read_at / HOUR_MS != hour || read_at % HOUR_MS >= HOUR_MS - MINUTE_MS {
            continue;
        }
        let label = tq_core::time::iso8601((hour - 1) * HOUR_MS);
        let bar = format!("{} {}:00: processed 7, failed 0", &label[5..10], &label[11..13]);
        assert!(home.contains(&bar), "no bar {bar:?} in\n{home}");
        assert!(home.contains("every queue, last day per hour: processed 7, failed 0"), "{home}");
        // The hour graph holds the minute itself, once.
        assert!(home.contains("every queue, last hour per minute: processed 2, failed 0"), "{home}");
        return;
    }
    panic!("three hours ended (or reached their last minute) while the page was read");
}

/// The ids of the failed page's selection checkboxes, in page order.
fn selection_ids(page: &str) -> Vec<String> {
    page.split("<input type=checkbox name=id form=selection value=\"")
        .skip(1)
        .filter_map(|r| r.split('"').next())
        .map(str::to_string)
        .collect()
}

fn post_result(w: &Web, path: &str, fields: &[(&str, &str)]) -> (u16, Option<String>) {
    match agent().post(&format!("{}{path}", w.base)).send_form(fields) {
        Ok(r) => (r.status(), r.header("X-Tq-Result").map(str::to_string)),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().ok()),
        Err(e) => panic!("POST {path}: {e}"),
    }
}

#[test]
fn a_selection_is_retried_or_removed_and_a_record_changed_meanwhile_is_skipped() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-sel");
    for i in 0..4 {
        c.ok(&["TQ.ENQUEUE", &n, "q", "j", &format!("[{i}]")]);
        c.ok(&["TQ.POP", &n, "w", "q"]);
        c.fail(&n, "w", &["E", "e"]);
    }
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let token = csrf(&w);
    let page = get_ok(&w, "/failed");
    assert!(page.contains("retry selected") && page.contains("remove selected"), "{page}");
    let ids = selection_ids(&page);
    assert_eq!(ids.len(), 4, "{page}");
    let failed = format!("{n}:failed");

    // Refused without the CSRF token, with a malformed id, or with none: nothing written.
    c.wait_tallies_written(&n);
    let before = c.quiet_digest();
    for path in ["/failed/retry-selected", "/failed/remove-selected"] {
        let (status, body) = post(&w, path, &[("id", &ids[0])]);
        assert_eq!(status, 403, "{body}");
        assert!(body.contains("CSRF"), "{body}");
        let (status, body) = post(&w, path, &[("csrf", &token), ("id", &ids[0]), ("id", "<b>x</b>")]);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains("not a failed record's id"), "{body}");
        assert_eq!(post(&w, path, &[("csrf", &token)]).0, 400);
    }
    assert_eq!(c.digest(), before);

    // Record 0 changes meanwhile (another error): its id is another, it is skipped.
    let changed = c.string(&["LINDEX", &failed, "0"]).expect("a record").replace("\"e\"", "\"e2\"");
    c.ok(&["LSET", &failed, "0", &changed]);
    let (status, result) =
        post_result(&w, "/failed/retry-selected", &[("csrf", &token), ("id", &ids[0]), ("id", &ids[1])]);
    assert_eq!(status, 200);
    assert_eq!(result.as_deref(), Some("retried 1, skipped 1 (changed or gone meanwhile)"));
    assert_eq!(c.lrange(&format!("{n}:queue:q")), vec![job("q", "j", "[1]")]);
    assert_eq!(c.int(&["LLEN", &failed]), 3);

    // Remove: the two others go, the one already retried is skipped; nothing is enqueued.
    let (status, result) = post_result(
        &w,
        "/failed/remove-selected",
        &[("csrf", &token), ("id", &ids[1]), ("id", &ids[2]), ("id", &ids[3])],
    );
    assert_eq!(status, 200);
    assert_eq!(result.as_deref(), Some("removed 2, skipped 1 (changed or gone meanwhile)"));
    assert_eq!(c.int(&["LLEN", &failed]), 1);
    assert_eq!(c.string(&["LINDEX", &failed, "0"]).as_deref(), Some(changed.as_str()));
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:q")]), 1);
}

/// A node-resque failure record of queue `q`, class `class`, args `[i]`.
fn failure_record(q: &str, class: &str, i: usize) -> String {
    format!(
        "{{\"worker\":\"w\",\"queue\":\"{q}\",\"payload\":{{\"class\":\"{class}\",\"queue\":\"{q}\",\"args\":[{i}]}},\
         \"exception\":\"E\",\"error\":\"e\",\"backtrace\":[],\"failed_at\":\"Sat Dec 05 2026 10:00:00 GMT+0000 (Coordinated Universal Time)\"}}"
    )
}

#[test]
fn all_matching_runs_in_the_background_in_batches_to_finished_with_its_count() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-ops");
    let failed = format!("{n}:failed");
    // 2500 records of class a among 600 of class b: three batches and more.
    let mut cmd = vec!["RPUSH".to_string(), failed.clone()];
    for i in 0..3100 {
        cmd.push(failure_record(if i % 31 < 25 { "qa" } else { "qb" }, if i % 31 < 25 { "a" } else { "b" }, i));
    }
    c.ok(&cmd);
    let a_count = (0..3100).filter(|i| i % 31 < 25).count();
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let token = csrf(&w);

    // CSRF refused: nothing started, nothing written.
    let before = c.quiet_digest();
    let (status, body) = post(&w, "/failed/retry", &[("class", "a")]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(get(&w, "/api/operation?id=1").0, 404);
    assert_eq!(c.digest(), before);

    let doc = run_op(&w, "/failed/retry", &[("csrf", &token), ("class", "a")]);
    assert_eq!(doc["state"], "finished", "{doc}");
    assert_eq!(doc["kind"], "retry");
    assert_eq!(doc["filters"], "class=a");
    assert_eq!(doc["done"], a_count as u64, "{doc}");
    assert_eq!(doc["total"], 3100);
    assert_eq!(doc["looked_at"], 3100);
    let qa = c.lrange(&format!("{n}:queue:qa"));
    assert_eq!(qa.len(), a_count);
    assert_eq!(qa[0], job("qa", "a", "[0]"));
    assert_eq!(c.int(&["LLEN", &failed]), 3100 - a_count as i64);
    // The progress page shows the finished figures.
    let page = get_ok(&w, "/operation?id=1");
    assert!(page.contains("data-op-field=state>finished<"), "{page}");
    assert!(page.contains(&format!("data-op-field=done>{a_count}<")), "{page}");

    // Remove all: the rest go, nothing enqueued.
    let doc = run_op(&w, "/failed/remove", &[("csrf", &token)]);
    assert_eq!((doc["state"].as_str(), doc["done"].as_u64()), (Some("finished"), Some(3100 - a_count as u64)));
    assert_eq!(c.int(&["LLEN", &failed]), 0);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:qb")]), 0);
    assert_eq!(get(&w, "/operation?id=99").0, 404);

    // A hostile filter comes back as text on the progress page.
    let doc = run_op(&w, "/failed/retry", &[("csrf", &token), ("class", "<script>x</script><img src=x>")]);
    let page = get_ok(&w, &format!("/operation?id={}", doc["id"]));
    assert_escaped("/operation", &page);
    let failed_page = get_ok(&w, "/failed");
    assert_escaped("/failed", &failed_page);
    assert!(failed_page.contains("retry class=a (finished, 2500)"), "{failed_page}");
}

#[test]
fn the_broadcast_page_counts_each_mailbox_escapes_names_and_classes_and_sends() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("web-bc");
    let hostile = "<script>w</script><img src=x>";
    // Two live workers (one hostile name) and one registered but without a heartbeat.
    for w in [hostile, "w2", "w3"] {
        c.ok(&["TQ.ENQUEUE", &n, "q", "j", "[1]"]);
        c.ok(&["TQ.POP", &n, w, "q"]);
    }
    for w in [hostile, "w2"] {
        c.ok(&["TQ.HEARTBEAT", &n, w, "60000"]);
    }
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "<b>cls</b>", "[\"<i>x</i>\"]"]), 2);
    assert_eq!(c.int(&["TQ.BROADCAST", &n, "second", "[]"]), 2);
    let w = start_web(&s, &n, "127.0.0.1:0", &[]);
    let page = get_ok(&w, "/broadcast");
    assert_escaped("/broadcast", &page);
    assert!(page.contains("&lt;script&gt;w&lt;/script&gt;&lt;img src=x&gt;"), "{page}");
    assert!(page.contains("&lt;b&gt;cls&lt;/b&gt;"), "{page}");
    assert!(page.contains("4 broadcast jobs waiting in the mailboxes of 3 workers"), "{page}");
    assert!(page.contains("<td>2</td>") && page.contains("<td>0</td>"), "{page}");
    assert!(page.contains("action=\"/broadcast\""), "{page}");

    // Refused without CSRF, and with args that are not a JSON array: nothing written.
    let token = csrf(&w);
    let before = c.quiet_digest();
    let (status, body) = post(&w, "/broadcast", &[("class", "c")]);
    assert_eq!(status, 403, "{body}");
    let (status, body) = post(&w, "/broadcast", &[("csrf", &token), ("class", "c"), ("args", "{\"a\":1}")]);
    assert_eq!((status, body.as_str()), (400, "args: not a JSON array\n"));
    assert_eq!(post(&w, "/broadcast", &[("csrf", &token), ("args", "[]")]).0, 400);
    assert_eq!(c.digest(), before);

    // Sent: each live worker's mailbox gets it.
    let (status, result) = post_result(&w, "/broadcast", &[("csrf", &token), ("class", "third"), ("args", "[3]")]);
    assert_eq!((status, result.as_deref()), (303, Some("broadcast to 2 workers")));
    let mailbox = c.lrange(&format!("{n}:tq:mailbox:w2"));
    assert_eq!(mailbox.len(), 3, "{mailbox:?}");
    assert!(mailbox[2].contains("\"third\"") && mailbox[2].contains("[3]"), "{mailbox:?}");
    assert_eq!(c.int(&["LLEN", &format!("{n}:tq:mailbox:w3")]), 0);

    // Read-only: the page without its form, the POST refused.
    let ro = start_web(&s, &n, "127.0.0.1:0", &["--read-only"]);
    let page = get_ok(&ro, "/broadcast");
    assert!(!page.contains("method=post") && page.contains("6 broadcast jobs waiting"), "{page}");
    let before = c.quiet_digest();
    let (status, body) = post(&ro, "/broadcast", &[("csrf", "x"), ("class", "c")]);
    assert_eq!(status, 403, "{body}");
    assert_eq!(c.digest(), before);
}
