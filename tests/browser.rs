//! `tq web` in a real browser: headless Chromium driven through WebDriver
//! (chromedriver, over plain HTTP/JSON). Every page loads with data made by
//! tq and by node-resque, hostile names and texts show as text with nothing
//! run, search, retry (one, a selection, all matching with its progress page),
//! pause/resume seen by a `tq work` worker, live
//! figures changing without a reload, the overview's graphs drawn, and the token's login form. Screenshots of the pages land in
//! target/web-screenshots/. `scripts/deps.sh --browser` (run by `make test`)
//! installs Debian's chromium and chromium-driver.

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::interop::run_script;
use common::*;
use serde_json::{json, Value as J};

/// The key of an element reference in WebDriver's JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// A handler would set this global and the title if it ever ran.
const H_SCRIPT: &str = "<script>window.__pwned='script';document.title='pwned'</script>";
const H_IMG: &str = "\"><img src=x onerror=\"window.__pwned='img';document.title='pwned'\">";

fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|n| std::env::split_paths(&path).map(|d| d.join(n)).find(|p| p.is_file()))
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// One WebDriver call; the reply's `value`, or a panic with WebDriver's error.
fn wd(method: &str, url: &str, body: Option<J>) -> J {
    let req = ureq::request(method, url).timeout(Duration::from_secs(120));
    let sent = match body {
        Some(b) => req.set("Content-Type", "application/json").send_string(&b.to_string()),
        None => req.call(),
    };
    let (ok, text) = match sent {
        Ok(r) => (true, r.into_string().expect("WebDriver reply")),
        Err(ureq::Error::Status(_, r)) => (false, r.into_string().expect("WebDriver reply")),
        Err(e) => panic!("WebDriver {method} {url}: {e}"),
    };
    let doc: J = serde_json::from_str(&text).unwrap_or_else(|e| panic!("WebDriver {method} {url}: {e}: {text}"));
    assert!(ok, "WebDriver {method} {url}: {}", doc["value"]);
    doc["value"].clone()
}

/// chromedriver in its own process group, killed with the browsers it
/// started (by that group) when dropped.
struct Driver {
    child: Child,
    base: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        send_signal("KILL", &format!("-{}", self.child.id()));
        let _ = self.child.wait();
    }
}

struct Browser {
    session: String,
    web: String,
    shots: PathBuf,
    // Last: the session ends before the driver goes.
    driver: Driver,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver.base, self.session);
        let _ = ureq::delete(&url).timeout(Duration::from_secs(10)).call();
    }
}

impl Browser {
    fn start(dir: &Path, web: &str) -> Browser {
        use std::os::unix::process::CommandExt;
        let fix = "run scripts/deps.sh --browser (make test does)";
        let driver_bin = on_path(&["chromedriver"]).unwrap_or_else(|| panic!("chromedriver not found: {fix}"));
        let chrome = on_path(&["chromium", "chromium-browser"]).unwrap_or_else(|| panic!("chromium not found: {fix}"));
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).expect("create the chromedriver log");
        let child = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("spawn chromedriver");
        let driver = Driver { child, base: format!("http://127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = ureq::get(&format!("{}/status", driver.base))
                .timeout(Duration::from_secs(5))
                .call()
                .ok()
                .and_then(|r| r.into_string().ok())
                .and_then(|t| serde_json::from_str::<J>(&t).ok())
                .is_some_and(|d| d["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver never became ready");
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = dir.join("chrome-profile");
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chrome,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--no-first-run", "--disable-extensions", "--disable-background-networking",
                         "--window-size=1280,1000", format!("--user-data-dir={}", profile.display())],
            },
        }}});
        let v = wd("POST", &format!("{}/session", driver.base), Some(caps));
        let session = v["sessionId"].as_str().expect("a session id").to_string();
        let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/web-screenshots");
        std::fs::create_dir_all(&shots).expect("create target/web-screenshots");
        let b = Browser { session, web: web.to_string(), shots, driver };
        b.call("POST", "/timeouts", json!({"script": 30_000, "pageLoad": 60_000}));
        b
    }

    fn call(&self, method: &str, path: &str, body: J) -> J {
        let url = format!("{}/session/{}{path}", self.driver.base, self.session);
        wd(method, &url, if method == "GET" || method == "DELETE" { None } else { Some(body) })
    }

    fn goto(&self, path: &str) {
        self.call("POST", "/url", json!({"url": format!("{}{path}", self.web)}));
    }

    fn js(&self, script: &str, args: J) -> J {
        self.call("POST", "/execute/sync", json!({"script": script, "args": args}))
    }

    fn url(&self) -> String {
        self.call("GET", "/url", J::Null).as_str().unwrap_or_default().to_string()
    }

    /// The element `css` selects (a WebDriver element reference).
    fn el(&self, css: &str) -> J {
        self.call("POST", "/element", json!({"using": "css selector", "value": css}))
    }

    fn click(&self, el: &J) {
        let id = el[ELEMENT].as_str().unwrap_or_else(|| panic!("not an element: {el}"));
        self.call("POST", &format!("/element/{id}/click"), json!({}));
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.el(css);
        let id = el[ELEMENT].as_str().expect("an element");
        self.call("POST", &format!("/element/{id}/clear"), json!({}));
        self.call("POST", &format!("/element/{id}/value"), json!({"text": text}));
    }

    /// The button of the POST form to `action` whose hidden `field` is `value`.
    fn button(&self, action: &str, field: &str, value: &str) -> J {
        let el = self.js(
            "for (const f of document.querySelectorAll('form[method=post]')) {
               const i = f.querySelector('input[name=\"' + arguments[1] + '\"]');
               if (f.getAttribute('action') === arguments[0] && i && i.value === arguments[2]) return f.querySelector('button');
             }
             return null;",
            json!([action, field, value]),
        );
        assert!(!el.is_null(), "no {action} button for {field}={value:?} on {}", self.url());
        el
    }

    /// The text a reader sees in the page's main part.
    fn main_text(&self) -> String {
        self.js("const m = document.querySelector('main'); return m ? m.innerText : '';", json!([]))
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn live(&self, key: &str) -> String {
        self.js(
            "const e = [...document.querySelectorAll('[data-live]')].find(e => e.dataset.live === arguments[0]);
             return e ? e.textContent : null;",
            json!([key]),
        )
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Nothing from the data ran or became markup: the planted handlers never
    /// set their global or the title; the page's one script is its own; no
    /// image in the page. Returns the page's main text.
    fn assert_inert(&self, page: &str) -> String {
        let s = self.js(
            "return {pwned: window.__pwned === undefined ? null : String(window.__pwned), title: document.title,
                     scripts: [...document.scripts].map(s => s.getAttribute('src')), imgs: document.images.length,
                     ready: document.readyState};",
            json!([]),
        );
        assert_eq!(s["pwned"], J::Null, "{page}: a planted handler ran");
        assert!(!s["title"].as_str().unwrap_or_default().contains("pwned"), "{page}: title {}", s["title"]);
        assert_eq!(s["scripts"], json!(["/static/app.js"]), "{page}: scripts");
        assert_eq!(s["imgs"], 0, "{page}: an image element from the data");
        self.main_text()
    }

    fn screenshot(&self, name: &str) {
        let b64 = self.call("GET", "/screenshot", J::Null);
        let png = base64_decode(b64.as_str().expect("base64 text"));
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        std::fs::write(self.shots.join(format!("{name}.png")), png).expect("write the screenshot");
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace() && *c != b'=').collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, c)| acc | (val(*c) << (18 - 6 * i)));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// `tq --ns <ns> web <extra>` on a free loopback port; its base URL.
fn start_web(s: &Server, n: &str, extra: &[&str]) -> (Tq, String) {
    let mut args = vec!["--ns", n, "web", "--listen", "127.0.0.1:0"];
    args.extend(extra);
    let mut tq = Tq::spawn(s.port, &args, &s.dir.join("web.log"));
    let text = tq.wait_log(30, ")\n");
    let addr = text
        .split("listening on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("the address in the log")
        .to_string();
    (tq, format!("http://{addr}"))
}

fn wait_for(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_page_in_a_browser_shows_hostile_data_as_text_and_runs_nothing_and_search_works() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("browser");
    // By tq: hostile queue, class, args (U+2028 among them), error text and worker name.
    c.ok(&["TQ.ENQUEUE", &n, "math", "add", "[1,2]"]);
    // Jobs done, for the graphs: the hostile queue's first, and a queue's of five processed and one failed.
    c.ok(&["TQ.ENQUEUE", &n, H_SCRIPT, H_IMG, "[0]"]);
    c.ok(&["TQ.POP", &n, "w3", H_SCRIPT]);
    c.ack(&n, "w3");
    for i in 0..6 {
        c.ok(&["TQ.ENQUEUE", &n, "mail", "send", "[]"]);
        c.ok(&["TQ.POP", &n, "w3", "mail"]);
        if i < 5 {
            c.ack(&n, "w3");
        } else {
            c.fail(&n, "w3", &["E", "bounced"]);
        }
    }
    c.ok(&["TQ.ENQUEUE", &n, H_SCRIPT, H_IMG, &format!("[{},\"\u{2028}\"]", json!(H_SCRIPT))]);
    c.ok(&["TQ.ENQUEUE", &n, "line\u{2028}sep", "c", "[]"]);
    c.ok(&["TQ.ENQUEUE", &n, "math", "add", "[5,6]"]);
    let bad_worker = format!("{H_IMG}:1");
    c.ok(&["TQ.POP", &n, &bad_worker, "math"]);
    c.ok(&["TQ.HEARTBEAT", &n, &bad_worker, "60000"]);
    c.ok(&["TQ.POP", &n, "w2", "math"]);
    c.fail(&n, "w2", &["<E>", &format!("{H_SCRIPT} the needle\u{2028}end")]);
    // Invalid UTF-8 in a payload's class, a failure's error and worker name, a registered worker.
    let raw = |c: &mut Conn, k: String, v: &[u8]| c.ok(&[&b"RPUSH"[..], k.as_bytes(), v]);
    raw(&mut c, format!("{n}:queue:math"), b"{\"class\":\"bad\xff<b>x</b>\",\"queue\":\"math\",\"args\":[]}");
    raw(
        &mut c,
        format!("{n}:failed"),
        b"{\"worker\":\"bad\xff<i>w</i>\",\"queue\":\"math\",\"payload\":{\"class\":\"add\",\"queue\":\"math\",\"args\":[5]},\"exception\":\"E\",\"error\":\"\xfe<b>err</b>\",\"backtrace\":[],\"failed_at\":\"Sat Dec 05 2026 10:00:00 GMT+0000 (Coordinated Universal Time)\"}",
    );
    c.ok(&[&b"SADD"[..], format!("{n}:workers").as_bytes(), b"bad\xff<i>w</i>:math"]);
    let bucket = c.int(&["TQ.ENQUEUEIN", &n, "7200000", "math", H_SCRIPT, "[1]"]);
    c.ok(&["TQ.RECUR", &n, H_IMG, "ticks", "600000"]);
    c.ok(&["TQ.LOCK", &n, H_SCRIPT, H_IMG, "600000"]);
    // By node-resque: a waiting job, a delayed one, a failure by a worker with a hostile name.
    run_script(&s, &n, "web_data.js", &[]);

    // A broadcast with a hostile class, in the live hostile worker's mailbox.
    assert_eq!(c.int(&["TQ.BROADCAST", &n, H_SCRIPT, "[1]"]), 1);

    let (_web, base) = start_web(&s, &n, &[]);
    let b = Browser::start(&s.dir, &base);
    let q = |v: &str| tq_worker_url_encode(v);
    let pages: Vec<(&str, String)> = vec![
        ("overview", "/".to_string()),
        ("queue", "/queue?name=math".to_string()),
        ("queue-hostile", format!("/queue?name={}", q(H_SCRIPT))),
        ("queue-node", "/queue?name=nq".to_string()),
        ("failed", "/failed".to_string()),
        ("workers", "/workers".to_string()),
        ("delayed", "/delayed".to_string()),
        ("delayed-at", format!("/delayed?at={}", bucket * 1000)),
        ("locks", "/locks".to_string()),
        ("periodic", "/periodic".to_string()),
        ("broadcast", "/broadcast".to_string()),
    ];
    let mut texts = std::collections::BTreeMap::new();
    for (name, path) in &pages {
        b.goto(path);
        let text = b.assert_inert(path);
        assert!(!text.is_empty(), "{path}: an empty page");
        b.screenshot(name);
        texts.insert(*name, text);
    }
    let has = |page: &str, want: &str| {
        let t = &texts[page];
        assert!(t.contains(want), "{page} does not show {want:?} as text:\n{t}");
    };
    has("broadcast", &bad_worker);
    has("broadcast", H_SCRIPT);
    has("overview", H_SCRIPT);
    has("overview", "line\u{2028}sep");
    has("overview", "nq");
    has("queue", "bad\u{fffd}<b>x</b>");
    has("queue-hostile", H_IMG);
    has("queue-hostile", &json!(H_SCRIPT).to_string());
    has("queue-node", "NodeJob");
    has("failed", &format!("{H_SCRIPT} the needle\u{2028}end"));
    has("failed", "\u{fffd}<b>err</b>");
    has("failed", "bad\u{fffd}<i>w</i>");
    has("failed", "<script>alert(\"node\")</script>");
    has("failed", "node\"><img src=x onerror=alert(1)>:7");
    has("workers", &bad_worker);
    has("workers", "bad\u{fffd}<i>w</i>");
    has("delayed-at", H_SCRIPT);
    has("locks", H_SCRIPT);
    has("locks", H_IMG);
    has("periodic", H_IMG);
    // The overview's graphs: every queue's, and the busiest queues' (their
    // names as text), once the workers' counts are in their minutes' records
    // (written by the timer within `FLUSH_MS` of the jobs).
    c.wait_tallies_written(&n);
    b.goto("/");
    let graphs =
        b.js("return [...document.querySelectorAll('svg.graph')].map(g => g.getAttribute('aria-label'));", json!([]));
    let graphs: Vec<String> =
        graphs.as_array().expect("labels").iter().map(|g| g.as_str().unwrap_or_default().to_string()).collect();
    for want in [
        "every queue, last hour per minute: processed 6, failed 2".to_string(),
        "every queue, last day per hour: processed 6, failed 2".to_string(),
        format!("queue {H_SCRIPT}, last hour per minute: processed 1, failed 0"),
        "queue mail, last hour per minute: processed 5, failed 1".to_string(),
    ] {
        assert!(graphs.contains(&want), "no graph {want:?} in {graphs:?}");
    }
    // Drawn: the hour's bars have a size.
    let drawn = b.js("return [...document.querySelectorAll('svg.graph rect.ok')].filter(r => r.getBoundingClientRect().height > 0).length;", json!([]));
    assert!(drawn.as_u64().is_some_and(|n| n > 0), "{drawn}");

    // The live figures' JSON parses in the browser, U+2028 in a key included.
    b.goto("/");
    let keys = b.call(
        "POST",
        "/execute/async",
        json!({"script": "const done = arguments[0]; fetch('/api/live').then(r => r.json())
            .then(d => done(Object.keys(d.figures)), e => done('error: ' + e));", "args": []}),
    );
    assert!(
        keys.as_array().is_some_and(|k| k.contains(&json!("queue:line\u{2028}sep:depth"))
            && k.contains(&json!(format!("queue:{H_SCRIPT}:depth")))),
        "{keys}"
    );

    // Search failed jobs by text: typed into the form, submitted by a click.
    b.goto("/failed");
    b.type_into("input[name=q]", "NEEDLE");
    b.click(&b.el("form.filter button"));
    wait_for(30, "the search page", || b.url().contains("q=NEEDLE"));
    let found = b.assert_inert("/failed?q=NEEDLE");
    b.screenshot("failed-search");
    assert_eq!(b.js("return document.querySelectorAll('main tbody tr').length;", json!([])), 1, "{found}");
    assert!(found.contains("the needle") && !found.contains("NodeBoom"), "{found}");
    // A queue by class.
    b.goto(&format!("/queue?name={}", q(H_SCRIPT)));
    b.type_into("input[name=class]", H_IMG);
    b.click(&b.el("form.filter button"));
    wait_for(30, "the queue search page", || b.url().contains("class="));
    let found = b.assert_inert("/queue search");
    b.screenshot("queue-search");
    assert_eq!(b.js("return document.querySelectorAll('main tbody tr').length;", json!([])), 1, "{found}");
    b.goto("/queue?name=math&class=nope");
    assert_eq!(b.js("return document.querySelectorAll('main tbody tr').length;", json!([])), 0);
}

/// Query-string encoding as the dashboard's links use it.
fn tq_worker_url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn retry_pause_and_resume_by_clicks_and_live_figures_without_a_reload() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("browser-writes");
    // A failed job of queue r (no worker takes from r).
    c.ok(&["TQ.ENQUEUE", &n, "r", "Job", "[41]"]);
    c.ok(&["TQ.POP", &n, "w", "r"]);
    c.fail(&n, "w", &["E", "boom"]);
    // A tq work worker on queue a, which has done one job.
    let h = s.dir.join("handlers");
    write_script(&h, "Job", "cat >/dev/null");
    let mut worker = Tq::spawn(
        s.port,
        &["--ns", &n, "work", "--handlers", h.to_str().expect("path"), "--queues", "a"],
        &s.dir.join("work.log"),
    );
    worker.wait_log(30, "worker started");
    c.ok(&["TQ.ENQUEUE", &n, "a", "Job", "[1]"]);
    let processed = |c: &mut Conn| c.string(&["GET", &format!("{n}:stat:processed")]).unwrap_or_default();
    wait_until(30, "the first job done", || processed(&mut c) == "1");

    let (_web, base) = start_web(&s, &n, &[]);
    let b = Browser::start(&s.dir, &base);

    // Retry: the failed job is back in its queue.
    b.goto("/failed");
    let text = b.assert_inert("/failed");
    assert!(text.contains("boom"), "{text}");
    let id = b.js("return document.querySelector('form[action=\"/failed/retry\"] input[name=id]').value;", json!([]));
    b.click(&b.button("/failed/retry", "id", id.as_str().expect("an id")));
    wait_for(30, "the failed list empty", || c.int(&["LLEN", &format!("{n}:failed")]) == 0);
    b.goto("/queue?name=r");
    let text = b.assert_inert("/queue?name=r");
    b.screenshot("retried");
    assert!(text.contains("1 waiting") && text.contains("Job") && text.contains("[41]"), "{text}");
    assert_eq!(c.lrange(&format!("{n}:queue:r")), vec![job("r", "Job", "[41]")]);

    // Pause a: the worker stops taking from it; the overview's figures follow without a reload.
    b.goto("/");
    b.click(&b.button("/pause", "queue", "a"));
    wait_for(30, "a paused", || c.strings(&["TQ.PAUSED", &n]) == vec!["a".to_string()]);
    wait_for(30, "the overview again", || b.live("queue:a:paused") == "paused");
    b.js("window.__mark = 'kept';", json!([]));
    c.ok(&["TQ.ENQUEUE", &n, "a", "Job", "[2]"]);
    wait_for(30, "the depth of a shown as 1 in place", || b.live("queue:a:depth") == "1");
    b.screenshot("paused");
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(processed(&mut c), "1", "a paused queue's job was taken");
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:a")]), 1);
    assert_eq!(b.js("return window.__mark;", json!([])), "kept", "the page was reloaded");

    // Resume: the worker takes the job; processed and depth change in place.
    b.click(&b.button("/resume", "queue", "a"));
    wait_for(30, "a resumed", || c.strings(&["TQ.PAUSED", &n]).is_empty());
    wait_for(30, "the overview again", || b.live("queue:a:paused") == "-");
    b.js("window.__mark = 'kept';", json!([]));
    wait_until(30, "the job of a done once resumed", || processed(&mut c) == "2");
    wait_for(30, "processed shown as 2 in place", || b.live("processed") == "2" && b.live("queue:a:depth") == "0");
    assert_eq!(b.js("return window.__mark;", json!([])), "kept", "the page was reloaded");
    b.assert_inert("/ after resume");
    b.screenshot("resumed");
}

#[test]
fn with_a_token_the_browser_logs_in_and_the_cookie_serves_pages_and_live_figures() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("browser-login");
    c.ok(&["TQ.ENQUEUE", &n, "a", "Job", "[1]"]);
    let token = "browser-token-0123456789";
    let file = s.dir.join("token");
    std::fs::write(&file, format!("{token}\n")).expect("write the token");
    let (_web, base) = start_web(&s, &n, &["--token-file", file.to_str().expect("path")]);
    let b = Browser::start(&s.dir, &base);
    b.goto("/");
    assert!(b.url().ends_with("/login"), "sent to the login form: {}", b.url());
    b.assert_inert("/login");
    b.screenshot("login");
    b.type_into("input[name=token]", "wrong-token-0123456789");
    b.click(&b.el("main form button"));
    wait_for(30, "the refusal", || b.main_text().contains("wrong token"));
    b.type_into("input[name=token]", token);
    b.click(&b.el("main form button"));
    wait_for(30, "the overview", || b.main_text().contains("Overview"));
    assert!(b.url().ends_with('/'), "{}", b.url());
    // The cookie is HttpOnly: no script of the page can read it.
    assert_eq!(b.js("return document.cookie;", json!([])), "");
    assert_eq!(b.live("queue:a:depth"), "1");
    b.js("window.__mark = 'kept';", json!([]));
    c.ok(&["TQ.ENQUEUE", &n, "a", "Job", "[2]"]);
    wait_for(30, "the depth shown as 2 in place (the API answered the cookie)", || b.live("queue:a:depth") == "2");
    assert_eq!(b.js("return window.__mark;", json!([])), "kept", "the page was reloaded");
}

#[test]
fn two_ticked_failed_jobs_are_retried_by_one_click() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("browser-sel");
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUE", &n, "r", "Job", &format!("[{i}]")]);
        c.ok(&["TQ.POP", &n, "w", "r"]);
        c.fail(&n, "w", &["E", "boom"]);
    }
    let (_web, base) = start_web(&s, &n, &[]);
    let b = Browser::start(&s.dir, &base);
    b.goto("/failed");
    b.assert_inert("/failed");
    // Tick the rows of [0] and [2].
    let ticked = b.js(
        "const boxes = [...document.querySelectorAll('input[type=checkbox][form=selection]')];
         return boxes.filter(x => /\\[(0|2)\\]/.test(x.closest('tr').innerText)).map(x => x.value);",
        json!([]),
    );
    let ticked: Vec<String> =
        ticked.as_array().expect("ids").iter().map(|v| v.as_str().expect("id").to_string()).collect();
    assert_eq!(ticked.len(), 2, "{ticked:?}");
    for id in &ticked {
        let el = b.js(
            "return [...document.querySelectorAll('input[type=checkbox]')].find(x => x.value === arguments[0]);",
            json!([id]),
        );
        b.click(&el);
    }
    b.screenshot("selected");
    let retry = b.js(
        "return [...document.querySelectorAll('#selection button')].find(x => x.textContent === 'retry selected');",
        json!([]),
    );
    b.click(&retry);
    wait_for(30, "two records left the failed list", || c.int(&["LLEN", &format!("{n}:failed")]) == 1);
    wait_for(30, "the result page", || b.main_text().contains("retried 2, skipped 0"));
    b.assert_inert("the selection's result");
    assert_eq!(c.lrange(&format!("{n}:queue:r")), vec![job("r", "Job", "[0]"), job("r", "Job", "[2]")]);
    b.goto("/failed");
    let text = b.assert_inert("/failed after");
    assert!(text.contains("[1]") && !text.contains("[0]") && !text.contains("[2]"), "{text}");
}

#[test]
fn an_all_matching_removal_shows_its_progress_until_finished() {
    let s = Server::start();
    let mut c = s.conn();
    let n = ns("browser-op");
    for i in 0..3 {
        c.ok(&["TQ.ENQUEUE", &n, "r", if i == 1 { "Keep" } else { "Job" }, &format!("[{i}]")]);
        c.ok(&["TQ.POP", &n, "w", "r"]);
        c.fail(&n, "w", &["E", "boom"]);
    }
    let (_web, base) = start_web(&s, &n, &[]);
    let b = Browser::start(&s.dir, &base);
    b.goto("/failed?class=Job");
    b.assert_inert("/failed?class=Job");
    b.click(&b.button("/failed/remove", "class", "Job"));
    // "Sure?"
    b.call("POST", "/alert/accept", json!({}));
    wait_for(30, "the progress page", || b.url().contains("/operation?id="));
    wait_for(30, "finished shown", || {
        let t = b.main_text();
        t.contains("state: finished") && t.contains("removed: 2")
    });
    // The figures came from /api/operation through the page's script.
    wait_for(30, "the script's refresh", || {
        b.js("return document.querySelector('[data-op]').getAttribute('data-op-shown');", json!([])) == "finished"
    });
    let text = b.assert_inert("/operation");
    assert!(text.contains("remove matching class=Job"), "{text}");
    // The failed page links to it.
    b.goto("/failed");
    assert!(b.main_text().contains("remove class=Job (finished, 2)"), "{}", b.main_text());
    b.screenshot("operation");
    assert_eq!(c.int(&["LLEN", &format!("{n}:failed")]), 1);
    assert_eq!(c.int(&["LLEN", &format!("{n}:queue:r")]), 0, "removed, not retried");
}
