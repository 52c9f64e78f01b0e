//! `tq web`: an operator's dashboard and a Prometheus endpoint, served by the
//! `tq` binary itself.
//!
//! A small synchronous HTTP server (tiny_http): a handful of threads, each
//! with its own Redis connection, each request a few bounded reads (pages of
//! at most [`PAGE`] rows, [`FAILED_SCAN`] failed records per filtered page,
//! the first [`WORKERS_READ`] workers for per-queue figures, the job metrics
//! of at most 1000 (queue, class) pairs, the graphs' of 100; the broadcast
//! page's mailboxes of the first [`WORKERS_READ`] workers); "retry / remove
//! all matching" runs in a background thread, batched as `tq retry`. Every asset is
//! compiled in, the graphs are SVG drawn here; nothing is fetched at run
//! time.
//!
//! Security: loopback by default, a token (header or login cookie) required
//! for any other address; `--read-only` hides and refuses every write; writes
//! are POSTs carrying the process's CSRF token; every name, payload and error
//! text is HTML-escaped ([`esc`]) or sent as JSON with `<`, `>`, `&`, U+2028
//! and U+2029 escaped ([`safe_json`]); a Content-Security-Policy allows only
//! this server's own script and style.

use std::collections::VecDeque;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use redis::Value;
use serde_json::{json, Value as J};

use crate::cli::{OutputArgs, ProgressArg, SweepArgs};
use crate::client::{Client, Error};
use crate::inspect::{self, array, bytes, call, int, text, uint, Sweep, SweepStep};
use tq_client::metrics::{self as jm, Metrics, Span};
use tq_core::metrics::{bucket_bound_ms, Histogram, Tally, HOUR_MS, MINUTE_MS};

mod graph;

/// Rows per page (jobs, failed records, workers, delayed times, locks).
pub const PAGE: u64 = 50;
/// Failed records looked at for one filtered or searched page.
pub const FAILED_SCAN: u64 = 1_000;
/// Jobs of a queue looked at for one search page.
pub const QUEUE_SCAN: u64 = 1_000;
/// Workers read for the per-queue figures (in flight, workers alive).
pub const WORKERS_READ: u64 = 1_000;
/// The failed page's filters: fields of a record (TQ.FAILRETRY's filters).
const FAILED_FILTERS: [&str; 3] = ["queue", "class", "exception"];
/// Delayed times whose jobs the overview counts.
const DELAYED_COUNTED: u64 = 1_000;
/// Periodic tasks shown at most.
const RECURS_SHOWN: usize = 1_000;
/// Queues shown at most.
const QUEUES_SHOWN: usize = 1_000;
/// A node-resque worker (no tq heartbeat) counts as alive while its last
/// ping is this recent (node-resque pings every 5 s by default).
const PING_ALIVE_MS: u64 = 60_000;
/// Request bodies read at most.
const MAX_BODY: u64 = 64 * 1024;
/// Threads serving requests.
const THREADS: usize = 4;
/// Batch of the retry/remove sweeps (as `tq retry`'s default).
const SWEEP_BATCH: u64 = 1_000;
/// Background operations ("retry/remove all matching") remembered, the
/// oldest finished ones forgotten first.
const OPS_KEPT: usize = 16;
/// Background operations running at once at most.
const OPS_RUNNING: usize = 4;
/// Records one "retry/remove selected" takes at most (a page's rows).
const SELECTED_MAX: u64 = PAGE;
/// Queues that get graphs of their own on the overview (the busiest of the
/// last hour; every queue is in the namespace's graphs).
const QUEUES_GRAPHED: usize = 6;
/// The job metrics of the overview's figures and of `/api/live`: the last
/// complete minute (and the current one).
const LIVE_SPAN: Span = Span { minutes: 2, hours: false, pairs: jm::MAX_PAIRS };
/// The graphs' metrics: (queue, class) pairs drawn at most (84 records each).
const GRAPH_SPAN: Span = Span { minutes: jm::MINUTES, hours: true, pairs: 100 };

const STYLE: &str = include_str!("web/style.css");
const SCRIPT: &str = include_str!("web/app.js");

/// What `tq web` was asked for.
#[derive(Debug, Clone)]
pub struct Options {
    pub redis_url: String,
    pub ns: String,
    pub listen: String,
    pub read_only: bool,
    pub token_file: Option<PathBuf>,
}

struct App {
    redis_url: String,
    ns: String,
    read_only: bool,
    token: Option<String>,
    csrf: String,
    ops: Arc<Mutex<Ops>>,
}

/// Runs the server until the process is stopped; returns the exit status
/// (1 when it cannot start).
pub fn run(o: Options) -> i32 {
    match serve(o) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tq web: {e}");
            1
        }
    }
}

/// Whether every address `listen` names is a loopback one.
pub fn is_loopback(listen: &str) -> Result<bool, String> {
    let addrs: Vec<SocketAddr> = listen.to_socket_addrs().map_err(|e| format!("--listen {listen}: {e}"))?.collect();
    if addrs.is_empty() {
        return Err(format!("--listen {listen}: no address"));
    }
    Ok(addrs.iter().all(|a| a.ip().is_loopback()))
}

fn read_token(path: &PathBuf) -> Result<String, String> {
    let raw = std::fs::read_to_string(path).map_err(|e| format!("--token-file {}: {e}", path.display()))?;
    let token = raw.trim().to_string();
    if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "--token-file {}: the token must be at least 16 printable ASCII characters without spaces",
            path.display()
        ));
    }
    Ok(token)
}

/// 32 random bytes from the kernel, as hex.
fn random_hex() -> Result<String, String> {
    let mut buf = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| format!("cannot read /dev/urandom: {e}"))?;
    Ok(buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    }))
}

fn serve(o: Options) -> Result<(), String> {
    let loopback = is_loopback(&o.listen)?;
    let token = o.token_file.as_ref().map(read_token).transpose()?;
    if !loopback && token.is_none() {
        return Err(format!(
            "--listen {} is not a loopback address: give --token-file so that only holders of the token get in",
            o.listen
        ));
    }
    let addr = o.listen.to_socket_addrs().ok().and_then(|mut a| a.next()).ok_or("--listen: no address")?;
    let server = tiny_http::Server::http(addr).map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let bound = server.server_addr().to_ip().map_or_else(|| addr.to_string(), |a| a.to_string());
    let app = Arc::new(App {
        redis_url: o.redis_url,
        ns: o.ns,
        read_only: o.read_only,
        token,
        csrf: random_hex()?,
        ops: Arc::new(Mutex::new(Ops::default())),
    });
    // One write, so that a reader of the log never sees half the line.
    let line = format!(
        "tq web: listening on http://{bound}/ (namespace {}{}{})\n",
        app.ns,
        if app.read_only { ", read-only" } else { "" },
        if app.token.is_some() { ", token required" } else { "" }
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    let server = Arc::new(server);
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (server, app) = (Arc::clone(&server), Arc::clone(&app));
            std::thread::spawn(move || {
                let mut conn: Option<Client> = None;
                while let Ok(req) = server.recv() {
                    // A bug in one request must not take a serving thread down.
                    let served =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| serve_one(&app, &mut conn, req)));
                    if served.is_err() {
                        conn = None;
                    }
                }
            })
        })
        .collect();
    for h in handles {
        let _ = h.join();
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Requests and responses

struct Req {
    method: String,
    path: String,
    params: Vec<(String, String)>,
    cookie_token: Option<String>,
    header_token: Option<String>,
    form: bool,
    host: Option<String>,
}

impl Req {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    /// Every non-empty value of a repeated field (a form's checkboxes).
    fn params<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.params.iter().filter(move |(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str())
    }

    fn num(&self, name: &str, default: u64) -> u64 {
        // Bounded, so that offset arithmetic cannot overflow.
        self.param(name).and_then(|v| v.parse::<u64>().ok()).unwrap_or(default).min(1 << 53)
    }
}

struct Resp {
    status: u16,
    ctype: &'static str,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
}

impl Resp {
    fn new(status: u16, ctype: &'static str, body: impl Into<Vec<u8>>) -> Resp {
        Resp { status, ctype, body: body.into(), headers: Vec::new() }
    }

    fn text(status: u16, body: &str) -> Resp {
        Resp::new(status, "text/plain; charset=utf-8", body)
    }

    fn redirect(to: &str) -> Resp {
        let mut r = Resp::text(303, "see other\n");
        r.headers.push(("Location", to.to_string()));
        r
    }
}

/// `application/x-www-form-urlencoded` / query-string decoding.
pub fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes a query-string value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn parse_pairs(s: &str, into: &mut Vec<(String, String)>) {
    for part in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        into.push((url_decode(k), url_decode(v)));
    }
}

fn parse_request(req: &mut tiny_http::Request) -> Req {
    let method = req.method().as_str().to_ascii_uppercase();
    let url = req.url().to_string();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let mut params = Vec::new();
    parse_pairs(query, &mut params);
    let (mut cookie_token, mut header_token, mut form, mut host) = (None, None, false, None);
    for h in req.headers() {
        let value = h.value.as_str();
        if h.field.equiv("Cookie") {
            for c in value.split(';') {
                if let Some(v) = c.trim().strip_prefix("tq_token=") {
                    cookie_token = Some(url_decode(v));
                }
            }
        } else if h.field.equiv("Authorization") {
            header_token = value.strip_prefix("Bearer ").map(|t| t.trim().to_string());
        } else if h.field.equiv("Host") {
            host = Some(value.trim().to_ascii_lowercase());
        } else if h.field.equiv("Content-Type") {
            form = value.trim().starts_with("application/x-www-form-urlencoded");
        }
    }
    if method == "POST" && form {
        let mut body = String::new();
        if req.as_reader().take(MAX_BODY).read_to_string(&mut body).is_ok() {
            // Body fields after the query's: `param` finds the query's first,
            // so a form's fields are read from the body only when absent there.
            parse_pairs(&body, &mut params);
        }
    }
    Req { method, path: path.to_string(), params, cookie_token, header_token, form, host }
}

fn serve_one(app: &App, conn: &mut Option<Client>, mut req: tiny_http::Request) {
    let parsed = parse_request(&mut req);
    let resp = route(app, conn, &parsed).unwrap_or_else(|e| {
        // An error reply (bad input, a key of the wrong type, ACL) is the
        // request's; anything else the connection's, made again next time.
        let status = if e.code().is_some() {
            400
        } else {
            *conn = None;
            502
        };
        let body = format!("<p class=err>Redis: {}</p>", esc(&e.to_string()));
        Resp::new(status, "text/html; charset=utf-8", shell(app, "Error", "", &body))
    });
    let mut r = tiny_http::Response::from_data(resp.body).with_status_code(resp.status);
    let mut headers = vec![
        ("Content-Type", resp.ctype.to_string()),
        (
            "Content-Security-Policy",
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                .to_string(),
        ),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("X-Frame-Options", "DENY".to_string()),
        ("Referrer-Policy", "no-referrer".to_string()),
        ("Cache-Control", "no-store".to_string()),
    ];
    headers.extend(resp.headers);
    for (k, v) in headers {
        if let Ok(h) = tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()) {
            r = r.with_header(h);
        }
    }
    let _ = req.respond(r);
}

/// Whether a Host header names a loopback address (`localhost`, `127.x.y.z`,
/// `[::1]`), with or without a port.
pub fn loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn client<'a>(app: &App, conn: &'a mut Option<Client>) -> Result<&'a mut Client, Error> {
    if conn.is_none() {
        *conn = Some(Client::new(&app.redis_url, &app.ns, inspect::TIMEOUT)?);
    }
    conn.as_mut().ok_or_else(|| Error::Protocol("no connection".to_string()))
}

fn route(app: &App, conn: &mut Option<Client>, req: &Req) -> Result<Resp, Error> {
    let (m, p) = (req.method.as_str(), req.path.as_str());
    match (m, p) {
        ("GET", "/static/style.css") => return Ok(Resp::new(200, "text/css; charset=utf-8", STYLE)),
        ("GET", "/static/app.js") => return Ok(Resp::new(200, "text/javascript; charset=utf-8", SCRIPT)),
        _ => {}
    }
    if app.token.is_none() && !req.host.as_deref().is_some_and(loopback_host) {
        // Without a token only this machine gets in: a page elsewhere that
        // points its own name at 127.0.0.1 (DNS rebinding) is refused.
        return Ok(Resp::text(403, "the Host header must name this machine (localhost or a loopback address)\n"));
    }
    if let Some(token) = &app.token {
        if p == "/login" {
            return Ok(login(app, req, token));
        }
        let given = req.header_token.as_deref().or(req.cookie_token.as_deref());
        if !given.is_some_and(|g| same(g, token)) {
            return Ok(if m == "GET" && !p.starts_with("/api/") && p != "/metrics" {
                Resp::redirect("/login")
            } else {
                Resp::text(401, "a token is required (Authorization: Bearer <token>, or log in at /login)\n")
            });
        }
    }
    if m == "POST" {
        if app.read_only {
            return Ok(Resp::text(403, "tq web runs read-only: writes are refused\n"));
        }
        if !req.form || !req.param("csrf").is_some_and(|t| same(t, &app.csrf)) {
            return Ok(Resp::text(403, "missing or wrong CSRF token\n"));
        }
        let c = client(app, conn)?;
        return write(app, c, req);
    }
    if m != "GET" && m != "HEAD" {
        return Ok(Resp::text(405, "method not allowed\n"));
    }
    let c = client(app, conn)?;
    let html = |title: &str, active: &str, body: String| {
        Resp::new(200, "text/html; charset=utf-8", shell(app, title, active, &body))
    };
    Ok(match p {
        "/" => html("Overview", "/", overview_page(app, c)?),
        "/queue" => match req.param("name") {
            Some(name) => html("Queue", "/", queue_page(app, c, name, req)?),
            None => Resp::redirect("/"),
        },
        "/failed" => html("Failed", "/failed", failed_page(app, c, req)?),
        "/workers" => html("Workers", "/workers", workers_page(c, req.num("offset", 0))?),
        "/delayed" => html("Delayed", "/delayed", delayed_page(app, c, req)?),
        "/locks" => html("Locks", "/locks", locks_page(c, req.param("cursor").unwrap_or("0"))?),
        "/periodic" => html("Periodic", "/periodic", periodic_page(c)?),
        "/broadcast" => html("Broadcast", "/broadcast", broadcast_page(app, c)?),
        "/operation" => {
            let id = req.num("id", 0);
            match op_json(app, id) {
                Some(doc) => html("Operation", "/failed", op_page(id, &doc)),
                None => Resp::text(404, "no such operation (only the last few are kept)\n"),
            }
        }
        "/api/operation" => match op_json(app, req.num("id", 0)) {
            Some(doc) => Resp::new(200, "application/json", safe_json(&doc)),
            None => Resp::text(404, "no such operation (only the last few are kept)\n"),
        },
        "/api/live" => {
            let o = overview(c, LIVE_SPAN)?;
            Resp::new(200, "application/json", safe_json(&live_json(&o)))
        }
        "/metrics" => Resp::new(200, "text/plain; version=0.0.4; charset=utf-8", metrics(c)?),
        _ => Resp::text(404, "not found\n"),
    })
}

fn login(app: &App, req: &Req, token: &str) -> Resp {
    if req.method == "POST" {
        if req.param("token").is_some_and(|t| same(t, token)) {
            let mut r = Resp::redirect("/");
            r.headers
                .push(("Set-Cookie", format!("tq_token={}; HttpOnly; SameSite=Strict; Path=/", url_encode(token))));
            return r;
        }
        return Resp::new(401, "text/html; charset=utf-8", shell(app, "Log in", "", &login_form("wrong token")));
    }
    Resp::new(200, "text/html; charset=utf-8", shell(app, "Log in", "", &login_form("")))
}

fn login_form(message: &str) -> String {
    let mut s = String::from("<h1>Log in</h1>");
    if !message.is_empty() {
        let _ = write!(s, "<p class=err>{}</p>", esc(message));
    }
    s.push_str(
        "<form method=post action=\"/login\"><label>Token <input type=password name=token autofocus></label> \
         <button>Log in</button></form>",
    );
    s
}

// ---------------------------------------------------------------------------
// Escaping

/// HTML-escapes text for element content and quoted attribute values: the
/// five characters that can end either, nothing else.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// JSON text safe to embed anywhere (an HTML script block included): `<`,
/// `>`, `&`, U+2028 and U+2029 (which can only occur inside JSON strings)
/// written as `\u` escapes.
pub fn safe_json(v: &J) -> String {
    let raw = v.to_string();
    let mut out = String::with_capacity(raw.len());
    for ch in raw.chars() {
        match ch {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// A JSON value as display text (strings without quotes, null as `-`).
fn show(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        J::Null => "-".to_string(),
        other => other.to_string(),
    }
}

fn pick<'a>(v: &'a J, name: &str) -> &'a J {
    v.get(name).unwrap_or(&J::Null)
}

// ---------------------------------------------------------------------------
// Layout

const NAV: [(&str, &str); 7] = [
    ("/", "Overview"),
    ("/failed", "Failed"),
    ("/workers", "Workers"),
    ("/delayed", "Delayed"),
    ("/locks", "Locks"),
    ("/periodic", "Periodic"),
    ("/broadcast", "Broadcast"),
];

fn shell(app: &App, title: &str, active: &str, body: &str) -> String {
    let mut s = String::with_capacity(body.len() + 1024);
    let _ = write!(
        s,
        "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport content=\"width=device-width\">\
         <title>{} · tq {}</title><link rel=stylesheet href=\"/static/style.css\">\
         <script src=\"/static/app.js\" defer></script></head><body><header><strong>tq</strong> <span class=ns>{}</span>",
        esc(title),
        esc(&app.ns),
        esc(&app.ns)
    );
    if app.read_only {
        s.push_str(" <span class=badge>read-only</span>");
    }
    s.push_str("<nav>");
    for (href, label) in NAV {
        let class = if href == active { " class=active" } else { "" };
        let _ = write!(s, "<a href=\"{href}\"{class}>{label}</a>");
    }
    let _ = write!(s, "</nav></header><main>{body}</main></body></html>");
    s
}

/// A POST button (nothing in read-only mode).
fn button(app: &App, action: &str, fields: &[(&str, &str)], label: &str, confirm: bool) -> String {
    if app.read_only {
        return String::new();
    }
    let mut s = format!("<form method=post action=\"{}\" class=inline", esc(action));
    if confirm {
        s.push_str(" data-confirm");
    }
    let _ = write!(s, "><input type=hidden name=csrf value=\"{}\">", esc(&app.csrf));
    for (k, v) in fields {
        let _ = write!(s, "<input type=hidden name=\"{}\" value=\"{}\">", esc(k), esc(v));
    }
    let _ = write!(s, "<button>{}</button></form>", esc(label));
    s
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::from("<table><thead><tr>");
    for h in head {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead><tbody>");
    for r in rows {
        s.push_str("<tr>");
        for cell in r {
            let _ = write!(s, "<td>{cell}</td>");
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

/// Previous/next links of a page at `offset` that showed `shown` rows.
fn pager(base: &str, offset: u64, shown: u64, more: bool) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    let mut s = String::from("<p class=pager>");
    if offset > 0 {
        let _ = write!(
            s,
            "<a href=\"{}\">previous</a> ",
            esc(&format!("{base}{sep}offset={}", offset.saturating_sub(PAGE)))
        );
    }
    if shown > 0 {
        let _ = write!(s, "rows {}–{} ", offset + 1, offset + shown);
    }
    if more {
        let _ = write!(s, "<a href=\"{}\">next</a>", esc(&format!("{base}{sep}offset={}", offset + shown)));
    }
    s.push_str("</p>");
    s
}

/// A time (unix ms) relative to `now`, with the exact time in a tooltip.
fn when(ms: Option<u64>, now: u64) -> String {
    match ms {
        None => "-".to_string(),
        Some(ms) => {
            format!("<time title=\"{}\">{}</time>", esc(&crate::table::rfc3339(ms)), esc(&crate::table::when(ms, now)))
        }
    }
}

/// Time from `now` until `t` (negative once past).
fn time_left(t: u64, now: u64) -> String {
    if t >= now {
        crate::duration::show_short_ms(t - now)
    } else {
        format!("-{}", crate::duration::show_short_ms(now - t))
    }
}

fn duration_ms(ms: i64) -> String {
    if ms < 0 {
        return format!("-{}", crate::duration::show_short_ms(ms.unsigned_abs()));
    }
    crate::duration::show_short_ms(ms.unsigned_abs())
}

// ---------------------------------------------------------------------------
// Data

struct QueueRow {
    name: String,
    depth: u64,
    paused: bool,
    in_flight: u64,
    workers_alive: u64,
    /// Age of its oldest waiting job (None: empty, or not known).
    latency_ms: Option<u64>,
    /// Jobs processed and failed in the last complete minute.
    minute: (u64, u64),
}

struct Worker {
    name: String,
    queues: Vec<String>,
    job: J,
    lease_until: Option<u64>,
    alive_until: Option<u64>,
    last_ping: Option<u64>,
    alive: bool,
}

struct Overview {
    now: u64,
    queues: Vec<QueueRow>,
    processed: J,
    failed_counter: J,
    failed_len: u64,
    delayed_jobs: u64,
    delayed_times: u64,
    in_flight: u64,
    workers: u64,
    workers_alive: u64,
    leader: J,
    /// The module's job metrics (what `overview`'s span asked for).
    jobs: Metrics,
}

/// A counter's value: 0 when absent, its text when not a number.
fn counter(v: &Value) -> J {
    match v {
        Value::Nil => json!(0),
        other => int(other).map_or_else(|| text(other).map_or(J::Null, J::String), |n| json!(n)),
    }
}

fn paused(c: &mut Client) -> Result<BTreeSet<String>, Error> {
    let ns = c.ns().to_string();
    Ok(array("TQ.PAUSED", call(c, "TQ.PAUSED", &[ns.as_bytes()])?)?.iter().filter_map(text).collect())
}

fn score(v: &Value) -> Option<u64> {
    match v {
        Value::Double(d) => Some(*d as u64),
        other => text(other).and_then(|s| s.parse::<f64>().ok()).map(|d| d as u64),
    }
}

/// One page of registered workers with their lease, heartbeat and ping.
fn workers(c: &mut Client, offset: u64, count: u64, now: u64) -> Result<Vec<Worker>, Error> {
    let ns = c.ns().to_string();
    let (o, n) = (offset.to_string(), count.to_string());
    let rows = array("TQ.WORKERS", call(c, "TQ.WORKERS", &[ns.as_bytes(), o.as_bytes(), n.as_bytes()])?)?;
    let mut out: Vec<Worker> = Vec::with_capacity(rows.len());
    for row in rows {
        let row = array("TQ.WORKERS", row)?;
        let Some(w) = inspect::worker_json(&row) else { continue };
        out.push(Worker {
            name: show(pick(&w, "name")),
            queues: pick(&w, "queues").as_array().map(|q| q.iter().map(show).collect()).unwrap_or_default(),
            job: pick(&w, "job").clone(),
            lease_until: None,
            alive_until: None,
            last_ping: None,
            alive: false,
        });
    }
    if out.is_empty() {
        return Ok(out);
    }
    let keys = ns_keys(&ns)?;
    let alive = keys.alive();
    let mut pipe = redis::pipe();
    for w in &out {
        // The lease from the worker's entry: the leases zset may hold an
        // earlier deadline (a take-and-complete leaves it there).
        pipe.cmd("GET").arg(keys.inflight(w.name.as_bytes()));
        pipe.cmd("ZSCORE").arg(&alive).arg(&w.name);
        pipe.cmd("GET").arg(keys.ping(w.name.as_bytes()));
    }
    let replies = array("pipeline", c.call_pipe(&pipe)?)?;
    for (w, r) in out.iter_mut().zip(replies.chunks(3)) {
        if let [lease, alive, ping] = r {
            w.lease_until = bytes(lease)
                .and_then(tq_core::records::InFlight::decode)
                .filter(tq_core::records::InFlight::live)
                .map(|e| e.lease_until_ms);
            w.alive_until = score(alive);
            // node-resque's ping: {"time": <unix seconds>, ...}.
            w.last_ping = bytes(ping)
                .and_then(|b| serde_json::from_slice::<J>(b).ok())
                .and_then(|p| p.get("time").and_then(J::as_u64))
                .map(|s| s.saturating_mul(1000));
        }
        w.alive = w.alive_until.is_some_and(|t| t > now)
            || (w.alive_until.is_none() && w.last_ping.is_some_and(|p| now.saturating_sub(p) <= PING_ALIVE_MS));
    }
    Ok(out)
}

/// The namespace's key names (core/src/keys.rs makes them all).
fn ns_keys(ns: &str) -> Result<tq_core::keys::Ns<'_>, Error> {
    tq_core::keys::Ns::new(ns.as_bytes(), false).map_err(|e| Error::Config(format!("namespace '{ns}': {e}")))
}

/// The last complete minute of a pair's minutes (the last is the current).
fn last_minute(p: &jm::PairMetrics) -> Option<&Tally> {
    p.minutes.len().checked_sub(2).and_then(|i| p.minutes.get(i))
}

/// The overview's figures, with the job metrics `span` asks for.
fn overview(c: &mut Client, span: Span) -> Result<Overview, Error> {
    let ns = c.ns().to_string();
    let now = inspect::server_now(c)?;
    let k = ns_keys(&ns)?;
    // Plain bounded reads (not TQ.DETAILS, whose counters visit every
    // registered worker).
    let mut queue_names: Vec<String> =
        array("SMEMBERS", call(c, "SMEMBERS", &[k.queues().as_slice()])?)?.iter().filter_map(text).collect();
    queue_names.sort();
    queue_names.dedup();
    queue_names.truncate(QUEUES_SHOWN);
    let lens = inspect::lengths(c, &queue_names.iter().map(|q| k.queue(q.as_bytes())).collect::<Vec<_>>())?;
    let mut pipe = redis::pipe();
    pipe.cmd("GET").arg(k.stat(b"processed"));
    pipe.cmd("GET").arg(k.stat(b"failed"));
    pipe.cmd("LLEN").arg(k.failed());
    pipe.cmd("ZCARD").arg(k.delayed_schedule());
    pipe.cmd("ZCARD").arg(k.leases());
    pipe.cmd("GET").arg(k.leader_lock());
    pipe.cmd("ZRANGE").arg(k.delayed_schedule()).arg(0).arg(DELAYED_COUNTED - 1);
    let replies = array("pipeline", c.call_pipe(&pipe)?)?;
    let [processed, failed, failed_len, times, leases, leader, buckets] = replies.as_slice() else {
        return Err(Error::Protocol("the overview's pipeline answered an unexpected shape".to_string()));
    };
    let bucket_keys: Vec<Vec<u8>> =
        array("ZRANGE", buckets.clone())?.iter().filter_map(text).map(|b| k.delayed(b.as_bytes())).collect();
    let delayed_jobs: u64 = inspect::lengths(c, &bucket_keys)?.iter().sum();
    let paused = paused(c)?;
    let ws = workers(c, 0, WORKERS_READ, now)?;
    let mut names: BTreeMap<String, u64> = queue_names.into_iter().zip(lens).collect();
    // A paused queue is shown even when it has never held a job.
    for p in &paused {
        names.entry(p.clone()).or_insert(0);
    }
    let jobs = jm::read(c, span)?;
    // Each queue's last complete minute, its classes added up.
    let mut per_minute: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for p in &jobs.pairs {
        if let Some(t) = last_minute(p) {
            let e = per_minute.entry(p.queue.clone()).or_default();
            *e = (e.0.saturating_add(t.processed), e.1.saturating_add(t.failed));
        }
    }
    let latencies = jm::latencies(c, jobs.now_ms, &names.keys().collect::<Vec<_>>())?;
    let queues = names
        .into_iter()
        .zip(latencies)
        .map(|((name, depth), lat)| QueueRow {
            latency_ms: lat.latency_ms,
            minute: per_minute.get(name.as_str()).copied().unwrap_or_default(),
            in_flight: ws.iter().filter(|w| pick(&w.job, "queue").as_str() == Some(name.as_str())).count() as u64,
            workers_alive: ws.iter().filter(|w| w.alive && w.queues.iter().any(|q| q == &name || q == "*")).count()
                as u64,
            paused: paused.contains(&name),
            depth,
            name,
        })
        .collect();
    let alive_key = k.alive();
    let now_s = now.to_string();
    let tq_alive = uint("ZCOUNT", &call(c, "ZCOUNT", &[alive_key.as_slice(), now_s.as_bytes(), b"+inf"])?)?;
    let node_alive = ws.iter().filter(|w| w.alive && w.alive_until.is_none()).count() as u64;
    let registered = uint("SCARD", &call(c, "SCARD", &[k.workers().as_slice()])?)?;
    Ok(Overview {
        now,
        queues,
        processed: counter(processed),
        failed_counter: counter(failed),
        failed_len: uint("LLEN", failed_len)?,
        delayed_jobs,
        delayed_times: uint("ZCARD", times)?,
        in_flight: uint("ZCARD", leases)?,
        workers: registered,
        workers_alive: tq_alive + node_alive,
        leader: text(leader).map_or(J::Null, J::String),
        jobs,
    })
}

/// A latency as text (`-` when not known).
fn latency_text(ms: Option<u64>) -> String {
    ms.map_or_else(|| "-".to_string(), crate::duration::show_short_ms)
}

/// Jobs processed and failed in the last complete minute, every queue.
fn minute_totals(o: &Overview) -> (u64, u64) {
    o.queues.iter().fold((0u64, 0u64), |(p, f), q| (p.saturating_add(q.minute.0), f.saturating_add(q.minute.1)))
}

/// The live figures, keyed as the pages' `data-live` attributes name them.
fn live_json(o: &Overview) -> J {
    let mut f = serde_json::Map::new();
    f.insert("processed".into(), o.processed.clone());
    f.insert("failed".into(), o.failed_counter.clone());
    f.insert("failed_jobs".into(), json!(o.failed_len));
    f.insert("delayed_jobs".into(), json!(o.delayed_jobs));
    f.insert("in_flight".into(), json!(o.in_flight));
    f.insert("workers".into(), json!(o.workers));
    f.insert("workers_alive".into(), json!(o.workers_alive));
    let (mp, mf) = minute_totals(o);
    f.insert("minute_processed".into(), json!(mp));
    f.insert("minute_failed".into(), json!(mf));
    for q in &o.queues {
        f.insert(format!("queue:{}:latency", q.name), json!(latency_text(q.latency_ms)));
        f.insert(format!("queue:{}:minute_processed", q.name), json!(q.minute.0));
        f.insert(format!("queue:{}:minute_failed", q.name), json!(q.minute.1));
        f.insert(format!("queue:{}:depth", q.name), json!(q.depth));
        f.insert(format!("queue:{}:paused", q.name), json!(if q.paused { "paused" } else { "-" }));
        f.insert(format!("queue:{}:in_flight", q.name), json!(q.in_flight));
        f.insert(format!("queue:{}:workers_alive", q.name), json!(q.workers_alive));
    }
    json!({"now": o.now, "figures": f})
}

fn live(key: &str, value: &str) -> String {
    format!("<span data-live=\"{}\">{}</span>", esc(key), esc(value))
}

// ---------------------------------------------------------------------------
// Pages

fn overview_page(app: &App, c: &mut Client) -> Result<String, Error> {
    let o = overview(c, LIVE_SPAN)?;
    let history = jm::read(c, GRAPH_SPAN)?;
    let (mp, mf) = minute_totals(&o);
    let mut s = String::from("<h1>Overview</h1><dl class=figures>");
    for (label, key, value) in [
        ("processed / min", "minute_processed", mp.to_string()),
        ("failed / min", "minute_failed", mf.to_string()),
        ("processed", "processed", show(&o.processed)),
        ("failures", "failed", show(&o.failed_counter)),
        ("failed list", "failed_jobs", o.failed_len.to_string()),
        ("delayed", "delayed_jobs", o.delayed_jobs.to_string()),
        ("in flight", "in_flight", o.in_flight.to_string()),
        ("workers", "workers", o.workers.to_string()),
        ("alive", "workers_alive", o.workers_alive.to_string()),
    ] {
        let _ = write!(s, "<div><dt>{label}</dt><dd>{}</dd></div>", live(key, &value));
    }
    let _ = write!(s, "</dl><p>delayed times: {}; leader: {}</p>", o.delayed_times, esc(&show(&o.leader)));
    s.push_str(&graphs(&history));
    let rows: Vec<Vec<String>> = o
        .queues
        .iter()
        .map(|q| {
            let k = |f: &str| format!("queue:{}:{f}", q.name);
            let action = if q.paused {
                button(app, "/resume", &[("queue", &q.name)], "resume", false)
            } else {
                button(app, "/pause", &[("queue", &q.name)], "pause", false)
            };
            vec![
                format!("<a href=\"/queue?name={}\">{}</a>", esc(&url_encode(&q.name)), esc(&q.name)),
                live(&k("depth"), &q.depth.to_string()),
                live(&k("paused"), if q.paused { "paused" } else { "-" }),
                live(&k("in_flight"), &q.in_flight.to_string()),
                live(&k("workers_alive"), &q.workers_alive.to_string()),
                live(&k("latency"), &latency_text(q.latency_ms)),
                live(&k("minute_processed"), &q.minute.0.to_string()),
                live(&k("minute_failed"), &q.minute.1.to_string()),
                action,
            ]
        })
        .collect();
    s.push_str("<h2>Queues</h2>");
    if rows.is_empty() {
        s.push_str("<p>no queues</p>");
    } else {
        s.push_str(&table(
            &[
                "queue",
                "waiting",
                "paused",
                "in flight",
                "workers alive",
                "latency",
                "processed / min",
                "failed / min",
                "",
            ],
            &rows,
        ));
    }
    let _ = write!(
        s,
        "<p class=note>In flight and workers per queue count the first {WORKERS_READ} registered workers. \
         Latency: the age of the queue's oldest waiting job. Per minute: the last complete minute.</p>"
    );
    s.push_str(&queue_graphs(&history));
    // The Node package's counters (Stats.increment), global and per server.
    let counted = crate::inspect::counters(c)?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (name, n) in counted.get("global").and_then(J::as_object).into_iter().flatten() {
        rows.push(vec!["(global)".to_string(), esc(name), esc(&show(n))]);
    }
    for (server, hash) in counted.get("local").and_then(J::as_object).into_iter().flatten() {
        for (name, n) in hash.as_object().into_iter().flatten() {
            rows.push(vec![esc(server), esc(name), esc(&show(n))]);
        }
    }
    if !rows.is_empty() {
        s.push_str("<h2>Counters</h2>");
        s.push_str(&table(&["server", "counter", "value"], &rows));
    }
    Ok(s)
}

/// The overview's graphs of the last hour (per minute) and the last day
/// (per hour), every queue's.
fn graphs(j: &Metrics) -> String {
    if j.pairs.is_empty() {
        return "<p class=note>No job metrics yet (they start with the first ACK or FAIL).</p>".to_string();
    }
    let mut s = pair_graphs("every queue", j, &j.pairs.iter().collect::<Vec<_>>());
    if j.truncated {
        let _ = write!(s, "<p class=note>The graphs count the first {} (queue, class) pairs.</p>", GRAPH_SPAN.pairs);
    }
    s
}

/// The busiest queues' own graphs (when there is more than one queue).
fn queue_graphs(j: &Metrics) -> String {
    let mut s = String::new();
    let mut per: BTreeMap<&str, Vec<&jm::PairMetrics>> = BTreeMap::new();
    for p in &j.pairs {
        per.entry(p.queue.as_str()).or_default().push(p);
    }
    if per.len() > 1 {
        let ended = |ps: &Vec<&jm::PairMetrics>| {
            ps.iter().map(|p| p.last_minutes(jm::MINUTES)).map(|t| t.processed.saturating_add(t.failed)).sum::<u64>()
        };
        let mut busiest: Vec<(&str, u64)> = per.iter().map(|(q, ps)| (*q, ended(ps))).collect();
        busiest.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (q, _) in busiest.into_iter().take(QUEUES_GRAPHED) {
            let ps = per.get(q).cloned().unwrap_or_default();
            s.push_str(&pair_graphs(&format!("queue {q}"), j, &ps));
        }
    }
    if s.is_empty() {
        return s;
    }
    format!("<h2>Busiest queues, last hour</h2>{s}")
}

/// The two graphs of some pairs added up.
fn pair_graphs(name: &str, j: &Metrics, pairs: &[&jm::PairMetrics]) -> String {
    let series = |n: usize, of: &dyn Fn(&jm::PairMetrics) -> &Vec<Tally>, label: &dyn Fn(usize) -> String| {
        (0..n)
            .map(|i| {
                let t = jm::sum(pairs.iter().filter_map(|p| of(p).get(i)));
                graph::Bar { label: label(i), processed: t.processed, failed: t.failed }
            })
            .collect::<Vec<_>>()
    };
    let minute_label = |i: usize| {
        let m = j.minute.saturating_sub((jm::MINUTES - 1 - i) as u64);
        crate::table::rfc3339(m.saturating_mul(MINUTE_MS)).get(11..16).unwrap_or_default().to_string()
    };
    let hour_label = |i: usize| {
        let h = j.hour.saturating_sub((jm::HOURS - 1 - i) as u64);
        let t = crate::table::rfc3339(h.saturating_mul(HOUR_MS));
        format!("{} {}:00", t.get(5..10).unwrap_or_default(), t.get(11..13).unwrap_or_default())
    };
    let minutes = series(jm::MINUTES, &|p| &p.minutes, &minute_label);
    let hours = series(jm::HOURS, &|p| &p.hours, &hour_label);
    format!(
        "<div class=graphs>{}{}</div>",
        graph::bars_svg(&format!("{name}, last hour per minute"), &minutes, &minute_label(0), "now (UTC)"),
        graph::bars_svg(&format!("{name}, last day per hour"), &hours, &hour_label(0), "this hour"),
    )
}

fn job_cells(payload: &[u8]) -> (String, String) {
    let j = inspect::job_json(payload);
    match pick(&j, "class").as_str() {
        Some(class) => (
            class.to_string(),
            inspect::raw_member(payload, b"args").map_or_else(String::new, |a| String::from_utf8_lossy(a).into_owned()),
        ),
        None => ("?".to_string(), String::from_utf8_lossy(payload).into_owned()),
    }
}

fn queue_page(app: &App, c: &mut Client, name: &str, req: &Req) -> Result<String, Error> {
    let ns = c.ns().to_string();
    let k = ns_keys(&ns)?.queue(name.as_bytes());
    let offset = req.num("offset", 0);
    let length = inspect::llen(c, &k)?;
    // A search: the class equal to `class`, the args' text containing `args`
    // (case-insensitive, as the failed list's text search).
    let (want_class, want_args) = (req.param("class"), req.param("args"));
    let args_lower = want_args.map(str::to_lowercase);
    let searching = want_class.is_some() || want_args.is_some();
    let window = if searching { QUEUE_SCAN } else { PAGE };
    let scanned = inspect::lrange(c, &k, offset, window)?;
    let mut looked = 0u64;
    // (position, class, args) of the jobs shown.
    let mut jobs: Vec<(u64, String, String)> = Vec::new();
    for (i, p) in scanned.iter().enumerate() {
        looked += 1;
        let (class, args) = job_cells(p);
        if want_class.is_some_and(|w| w != class)
            || args_lower.as_ref().is_some_and(|w| !args.to_lowercase().contains(w.as_str()))
        {
            continue;
        }
        jobs.push((offset + i as u64, class, args));
        if jobs.len() as u64 >= PAGE {
            break;
        }
    }
    let is_paused = paused(c)?.contains(name);
    let mut s =
        format!("<h1>Queue {}</h1><p>{length} waiting{}</p><p>", esc(name), if is_paused { ", paused" } else { "" });
    s.push_str(&if is_paused {
        button(app, "/resume", &[("queue", name)], "resume", false)
    } else {
        button(app, "/pause", &[("queue", name)], "pause", false)
    });
    s.push_str(&button(app, "/queue/delete", &[("queue", name)], "delete the queue and all its jobs", true));
    s.push_str("</p>");
    let _ = write!(
        s,
        "<form method=get action=\"/queue\" class=filter><input type=hidden name=name value=\"{}\">\
         <label>class <input name=class value=\"{}\"></label> <label>args containing <input type=search name=args \
         value=\"{}\"></label> <button>search</button></form>",
        esc(name),
        esc(want_class.unwrap_or_default()),
        esc(want_args.unwrap_or_default())
    );
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|(pos, class, args)| {
            vec![
                pos.to_string(),
                esc(class),
                format!("<code>{}</code>", esc(args)),
                button(app, "/queue/delete-job", &[("queue", name), ("class", class), ("args", args)], "delete", true),
            ]
        })
        .collect();
    s.push_str(&table(&["pos", "class", "args", ""], &rows));
    let mut base = format!("/queue?name={}", url_encode(name));
    if searching {
        for (f, v) in [("class", want_class), ("args", want_args)] {
            if let Some(v) = v {
                let _ = write!(base, "&{f}={}", url_encode(v));
            }
        }
        // A search looks at up to QUEUE_SCAN jobs from `offset`; next goes on after them.
        let next = offset + looked;
        let _ = write!(s, "<p class=pager>looked at jobs {}–{next} of {length}", offset + 1);
        if next < length {
            let _ = write!(s, " <a href=\"{}\">next</a>", esc(&format!("{base}&offset={next}")));
        }
        s.push_str("</p>");
    } else {
        s.push_str(&pager(&base, offset, jobs.len() as u64, offset + (jobs.len() as u64) < length));
    }
    Ok(s)
}

fn failed_page(app: &App, c: &mut Client, req: &Req) -> Result<String, Error> {
    let ns = c.ns().to_string();
    let total = inspect::llen(c, &ns_keys(&ns)?.failed())?;
    let now = inspect::server_now(c)?;
    let offset = req.num("offset", 0);
    // The filters given, each a field of the record that must equal it.
    let filters: Vec<(&str, &str)> = FAILED_FILTERS.iter().filter_map(|f| req.param(f).map(|v| (*f, v))).collect();
    // Text searched for anywhere in the record (payload, error, backtrace, worker).
    let search = req.param("q").map(str::to_lowercase);
    let filtered = !filters.is_empty() || search.is_some();
    let window = if filtered { FAILED_SCAN } else { PAGE };
    let (o, n) = (offset.to_string(), window.to_string());
    let items = array("TQ.FAILED", call(c, "TQ.FAILED", &[ns.as_bytes(), o.as_bytes(), n.as_bytes()])?)?;
    let mut rows = Vec::new();
    let mut looked = 0u64;
    for item in &items {
        looked += 1;
        let pair = array("TQ.FAILED", item.clone())?;
        let [id, record] = pair.as_slice() else { continue };
        let (Some(id), Some(record)) = (text(id), bytes(record)) else { continue };
        // A record that is not UTF-8 is shown with U+FFFD in place of the bad bytes.
        let record = String::from_utf8_lossy(record);
        if search.as_ref().is_some_and(|q| !record.to_lowercase().contains(q.as_str())) {
            continue;
        }
        let r = inspect::failed_json(&id, record.as_bytes());
        if filters.iter().any(|(f, v)| pick(&r, f).as_str() != Some(*v)) {
            continue;
        }
        // Outside the row's own forms (forms cannot nest): tied to the
        // selection form by its id.
        let pick_box = if app.read_only {
            String::new()
        } else {
            format!("<input type=checkbox name=id form=selection value=\"{}\" aria-label=select> ", esc(&id))
        };
        rows.push(vec![
            format!("{pick_box}<code>{}</code>", esc(&id)),
            when(pick(&r, "failed_at").as_u64(), now),
            esc(&show(pick(&r, "queue"))),
            esc(&show(pick(&r, "class"))),
            format!("<code>{}</code>", esc(&show(pick(&r, "args")))),
            esc(&show(pick(&r, "exception"))),
            format!("<span class=error>{}</span>", esc(&show(pick(&r, "error")))),
            esc(&show(pick(&r, "worker"))),
            format!(
                "{}{}",
                button(app, "/failed/retry", &[("id", &id)], "retry", false),
                button(app, "/failed/remove", &[("id", &id)], "remove", true)
            ),
        ]);
        if rows.len() as u64 >= PAGE {
            break;
        }
    }
    let mut s = format!("<h1>Failed</h1><p>{total} in the failed list</p>");
    s.push_str("<form method=get action=\"/failed\" class=filter>");
    for f in FAILED_FILTERS {
        let value = req.param(f).unwrap_or_default();
        let _ = write!(s, "<label>{f} <input name={f} value=\"{}\"></label> ", esc(value));
    }
    let _ = write!(
        s,
        "<label>text <input type=search name=q value=\"{}\"></label> <button>search</button></form>",
        esc(req.param("q").unwrap_or_default())
    );
    if search.is_none() {
        let label = if filtered { "retry all matching" } else { "retry all" };
        let fields = &filters;
        let _ = write!(
            s,
            "<p>{}{}</p>",
            button(app, "/failed/retry", fields, label, true),
            button(app, "/failed/remove", fields, if filtered { "remove all matching" } else { "remove all" }, true)
        );
    } else {
        // TQ.FAILRETRY / TQ.FAILREMOVE select by field, not by text: a text
        // search offers each match's own buttons only.
        s.push_str("<p class=note>text search: retry or remove each match below</p>");
    }
    if !app.read_only && !rows.is_empty() {
        // The ticked rows' ids go with whichever button is pressed.
        let _ = write!(
            s,
            "<form method=post action=\"/failed/retry-selected\" id=selection class=inline>\
             <input type=hidden name=csrf value=\"{}\"><button>retry selected</button> \
             <button formaction=\"/failed/remove-selected\" data-confirm>remove selected</button></form>",
            esc(&app.csrf)
        );
    }
    s.push_str(&ops_list(app));
    s.push_str(&table(&["id", "failed", "queue", "class", "args", "exception", "error", "worker", ""], &rows));
    let mut base = String::from("/failed?");
    for (k, v) in filters.iter().chain(req.param("q").map(|q| ("q", q)).as_slice()) {
        let _ = write!(base, "{k}={}&", url_encode(v));
    }
    let base = base.trim_end_matches(['&', '?']).to_string();
    if filtered {
        // A filtered page looks at up to FAILED_SCAN records from `offset`.
        let next = offset + looked;
        let _ = write!(s, "<p class=pager>looked at records {}–{next} of {total}", offset + 1);
        if next < total {
            let sep = if base.contains('?') { '&' } else { '?' };
            let _ = write!(s, " <a href=\"{}\">next</a>", esc(&format!("{base}{sep}offset={next}")));
        }
        s.push_str("</p>");
    } else {
        s.push_str(&pager(&base, offset, items.len() as u64, offset + (items.len() as u64) < total));
    }
    Ok(s)
}

fn workers_page(c: &mut Client, offset: u64) -> Result<String, Error> {
    let now = inspect::server_now(c)?;
    let ws = workers(c, offset, PAGE + 1, now)?;
    let more = ws.len() as u64 > PAGE;
    let rows: Vec<Vec<String>> = ws
        .iter()
        .take(PAGE as usize)
        .map(|w| {
            let job = &w.job;
            let (what, since) = if job.is_null() {
                ("-".to_string(), "-".to_string())
            } else {
                (
                    format!(
                        "{} <code>{}</code> from {}",
                        esc(&show(pick(job, "class"))),
                        esc(&show(pick(job, "args"))),
                        esc(&show(pick(job, "queue")))
                    ),
                    when(pick(job, "run_at").as_u64(), now),
                )
            };
            let lease = w.lease_until.filter(|_| !job.is_null()).map_or("-".to_string(), |t| time_left(t, now));
            let beat = match (w.alive_until, w.last_ping) {
                (_, Some(p)) => when(Some(p), now),
                (Some(t), None) => format!("valid until {}", when(Some(t), now)),
                (None, None) => "-".to_string(),
            };
            vec![
                esc(&w.name),
                esc(&w.queues.join(",")),
                what,
                since,
                esc(&lease),
                beat,
                if w.alive {
                    "<span class=ok>alive</span>".to_string()
                } else {
                    "<span class=err>gone</span>".to_string()
                },
            ]
        })
        .collect();
    let mut s = String::from("<h1>Workers</h1>");
    s.push_str(&table(&["worker", "queues", "job", "since", "lease left", "last heartbeat", "state"], &rows));
    s.push_str(&pager("/workers", offset, rows.len() as u64, more));
    s.push_str(
        "<p class=note>Alive: a tq heartbeat not yet run out, or (node-resque workers, which send none) a ping in the \
         last minute.</p>",
    );
    Ok(s)
}

fn delayed_page(app: &App, c: &mut Client, req: &Req) -> Result<String, Error> {
    let ns = c.ns().to_string();
    let now = inspect::server_now(c)?;
    if let Some(at) = req.param("at").and_then(|a| a.parse::<u64>().ok()) {
        let (a, stop) = (at.to_string(), (PAGE - 1).to_string());
        let jobs =
            array("TQ.DELAYEDAT", call(c, "TQ.DELAYEDAT", &[ns.as_bytes(), a.as_bytes(), b"0", stop.as_bytes()])?)?;
        let rows: Vec<Vec<String>> = jobs
            .iter()
            .filter_map(bytes)
            .map(|p| {
                let j = inspect::job_json(p);
                let (class, args) = job_cells(p);
                let queue = show(pick(&j, "queue"));
                let f = [("queue", queue.as_str()), ("class", class.as_str()), ("args", args.as_str())];
                vec![
                    esc(&queue),
                    esc(&class),
                    format!("<code>{}</code>", esc(&args)),
                    format!(
                        "{}{}",
                        button(app, "/delayed/run", &f, "run now", false),
                        button(app, "/delayed/delete", &f, "delete", true)
                    ),
                ]
            })
            .collect();
        let mut s = format!("<h1>Delayed at {}</h1><p><a href=\"/delayed\">all times</a></p>", when(Some(at), now));
        s.push_str(&table(&["queue", "class", "args", ""], &rows));
        if jobs.len() as u64 >= PAGE {
            let _ = write!(s, "<p class=note>the first {PAGE} jobs of this time</p>");
        }
        return Ok(s);
    }
    let offset = req.num("offset", 0);
    let (o, n) = (offset.to_string(), PAGE.to_string());
    let times: Vec<u64> =
        array("TQ.TIMESTAMPS", call(c, "TQ.TIMESTAMPS", &[ns.as_bytes(), o.as_bytes(), n.as_bytes()])?)?
            .iter()
            .filter_map(|v| int(v).and_then(|n| u64::try_from(n).ok()))
            .collect();
    let ks = ns_keys(&ns)?;
    let keys: Vec<Vec<u8>> =
        times.iter().map(|t| ks.delayed(tq_core::time::bucket_of(*t).to_string().as_bytes())).collect();
    let lens = inspect::lengths(c, &keys)?;
    let max = lens.iter().copied().max().unwrap_or(0).max(1);
    let rows: Vec<Vec<String>> = times
        .iter()
        .zip(&lens)
        .map(|(t, n)| {
            vec![
                format!("<a href=\"/delayed?at={t}\">{}</a>", when(Some(*t), now)),
                n.to_string(),
                // A bar as wide as the share of the largest time shown.
                format!("<meter min=0 max={max} value={n}></meter>"),
            ]
        })
        .collect();
    let mut s = String::from("<h1>Delayed</h1>");
    s.push_str(&table(&["time", "jobs", ""], &rows));
    s.push_str(&pager("/delayed", offset, times.len() as u64, times.len() as u64 >= PAGE));
    Ok(s)
}

fn locks_page(c: &mut Client, cursor: &str) -> Result<String, Error> {
    let ns = c.ns().to_string();
    let now = inspect::server_now(c)?;
    let cursor = cursor.parse::<u64>().unwrap_or(0).to_string();
    let n = PAGE.to_string();
    let parts = array("TQ.LOCKS", call(c, "TQ.LOCKS", &[ns.as_bytes(), cursor.as_bytes(), n.as_bytes()])?)?;
    let [next, found] = parts.as_slice() else {
        return Err(Error::Protocol("TQ.LOCKS: expected [cursor, locks]".to_string()));
    };
    let mut rows = Vec::new();
    for row in array("TQ.LOCKS", found.clone())? {
        let pair = array("TQ.LOCKS", row)?;
        if let [name, value] = pair.as_slice() {
            let l = inspect::lock_json(&text(name).unwrap_or_default(), &text(value).unwrap_or_default());
            rows.push(vec![
                esc(&show(pick(&l, "name"))),
                esc(&show(pick(&l, "kind"))),
                when(pick(&l, "deadline").as_u64(), now),
                format!("<code>{}</code>", esc(&show(pick(&l, "value")))),
            ]);
        }
    }
    let mut s = String::from("<h1>Locks</h1>");
    s.push_str(&table(&["lock", "kind", "stale at", "value (holder, token)"], &rows));
    let next = uint("TQ.LOCKS", next)?;
    if next != 0 {
        let _ = write!(s, "<p class=pager><a href=\"/locks?cursor={next}\">next</a></p>");
    }
    Ok(s)
}

/// The workers' mailboxes (the first [`WORKERS_READ`] workers, one pipelined
/// LLEN each) and a form to broadcast a job.
fn broadcast_page(app: &App, c: &mut Client) -> Result<String, Error> {
    let ns = c.ns().to_string();
    let now = inspect::server_now(c)?;
    let ws = workers(c, 0, WORKERS_READ, now)?;
    let keys = ns_keys(&ns)?;
    // Per worker: how many wait, and the next one (its class and args).
    let mut waiting: Vec<(u64, String)> = Vec::with_capacity(ws.len());
    if !ws.is_empty() {
        let mut pipe = redis::pipe();
        for w in &ws {
            let mailbox = keys.mailbox(w.name.as_bytes());
            pipe.cmd("LLEN").arg(&mailbox);
            pipe.cmd("LINDEX").arg(&mailbox).arg(0);
        }
        let replies = array("pipeline", c.call_pipe(&pipe)?)?;
        for r in replies.chunks(2) {
            let [n, head] = r else { continue };
            let next = match bytes(head) {
                Some(payload) => {
                    let (class, args) = job_cells(payload);
                    format!("{} <code>{}</code>", esc(&class), esc(&args))
                }
                None => "-".to_string(),
            };
            waiting.push((uint("LLEN", n)?, next));
        }
    }
    let mut s = String::from("<h1>Broadcast</h1>");
    if !app.read_only {
        let _ = write!(
            s,
            "<form method=post action=\"/broadcast\" class=filter data-confirm>\
             <input type=hidden name=csrf value=\"{}\"><label>class <input name=class required></label> \
             <label>args (JSON array) <input name=args value=\"[]\"></label> <button>broadcast</button></form>\
             <p class=note>The job goes to the mailbox of every live worker (TQ.BROADCAST).</p>",
            esc(&app.csrf)
        );
    }
    let total: u64 = waiting.iter().map(|(n, _)| n).sum();
    let _ = write!(
        s,
        "<p>{total} broadcast jobs waiting in the mailboxes of {} workers{}</p>",
        ws.len(),
        if ws.len() as u64 >= WORKERS_READ { format!(" (the first {WORKERS_READ} registered)") } else { String::new() }
    );
    let rows: Vec<Vec<String>> = ws
        .iter()
        .zip(&waiting)
        .map(|(w, (n, next))| {
            vec![
                esc(&w.name),
                esc(&w.queues.join(",")),
                if w.alive { "<span class=ok>alive</span>" } else { "<span class=err>gone</span>" }.to_string(),
                n.to_string(),
                next.clone(),
            ]
        })
        .collect();
    s.push_str(&table(&["worker", "queues", "state", "broadcast jobs waiting", "next"], &rows));
    Ok(s)
}

fn periodic_page(c: &mut Client) -> Result<String, Error> {
    let ns = c.ns().to_string();
    let now = inspect::server_now(c)?;
    let list = array("TQ.RECURS", call(c, "TQ.RECURS", &[ns.as_bytes()])?)?;
    let mut rows = Vec::new();
    for item in list.into_iter().take(RECURS_SHOWN) {
        let row = array("TQ.RECURS", item)?;
        if let [payload, every, next] = row.as_slice() {
            let p = bytes(payload).unwrap_or_default();
            let j = inspect::job_json(p);
            let (class, args) = job_cells(p);
            rows.push(vec![
                esc(&show(pick(&j, "queue"))),
                esc(&class),
                format!("<code>{}</code>", esc(&args)),
                esc(&int(every).map_or("-".to_string(), duration_ms)),
                when(int(next).and_then(|n| u64::try_from(n).ok()), now),
            ]);
        }
    }
    let mut s = String::from("<h1>Periodic tasks</h1>");
    s.push_str(&table(&["queue", "class", "args", "every", "next"], &rows));
    Ok(s)
}

// ---------------------------------------------------------------------------
// Writes

fn done(message: &str, back: &str) -> Resp {
    let mut r = Resp::redirect(back);
    r.headers.push(("X-Tq-Result", message.chars().filter(|c| c.is_ascii_graphic() || *c == ' ').collect()));
    r.body = format!("{message}\n").into_bytes();
    r
}

fn need<'a>(req: &'a Req, name: &str) -> Result<&'a str, Resp> {
    req.param(name).ok_or_else(|| Resp::text(400, &format!("missing field '{name}'\n")))
}

/// One background "retry/remove all matching".
#[derive(Debug, Clone)]
struct Op {
    id: u64,
    kind: Sweep,
    /// The filters, as `field=value` words.
    filters: String,
    step: SweepStep,
    /// None while running; the error text when it stopped on one.
    end: Option<Result<(), String>>,
}

#[derive(Debug, Default)]
struct Ops {
    last_id: u64,
    list: VecDeque<Op>,
}

fn lock_ops(app: &App) -> std::sync::MutexGuard<'_, Ops> {
    // A panic elsewhere while holding it leaves figures, not broken state.
    app.ops.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts a sweep in a thread of its own with its own connection; its id.
fn start_op(app: &App, args: SweepArgs, kind: Sweep) -> Result<u64, Resp> {
    let filters = [("queue", &args.queue), ("class", &args.class), ("exception", &args.exception)]
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(" ");
    let id = {
        let mut ops = lock_ops(app);
        if ops.list.iter().filter(|o| o.end.is_none()).count() >= OPS_RUNNING {
            return Err(Resp::text(429, &format!("{OPS_RUNNING} operations are running: wait for one to finish\n")));
        }
        // Forget the oldest finished ones; running ones are kept (at most OPS_RUNNING).
        while ops.list.len() >= OPS_KEPT {
            let Some(at) = ops.list.iter().position(|o| o.end.is_some()) else { break };
            ops.list.remove(at);
        }
        ops.last_id += 1;
        let id = ops.last_id;
        ops.list.push_back(Op { id, kind, filters, step: SweepStep::default(), end: None });
        id
    };
    let (url, ns, shared) = (app.redis_url.clone(), app.ns.clone(), Arc::clone(&app.ops));
    let update = move |f: &dyn Fn(&mut Op)| {
        let mut ops = shared.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(op) = ops.list.iter_mut().find(|o| o.id == id) {
            f(op);
        }
    };
    let spawned = std::thread::Builder::new().name(format!("tq-web-op-{id}")).spawn(move || {
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut c = Client::new(&url, &ns, inspect::TIMEOUT)?;
            inspect::sweep_reporting(&mut c, &args, kind, &mut |step| update(&|op: &mut Op| op.step = step))
        }));
        let end = match run {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("the operation stopped on a bug".to_string()),
        };
        update(&|op: &mut Op| op.end = Some(end.clone()));
    });
    if let Err(e) = spawned {
        let mut ops = lock_ops(app);
        if let Some(op) = ops.list.iter_mut().find(|o| o.id == id) {
            op.end = Some(Err(format!("cannot start a thread: {e}")));
        }
    }
    Ok(id)
}

/// Links to the operations remembered, newest first (none: nothing).
fn ops_list(app: &App) -> String {
    let ops = lock_ops(app);
    if ops.list.is_empty() {
        return String::new();
    }
    let mut s = String::from("<p class=note>operations:");
    for op in ops.list.iter().rev() {
        let state = match &op.end {
            None => "running",
            Some(Ok(())) => "finished",
            Some(Err(_)) => "failed",
        };
        let what = if op.filters.is_empty() { "all" } else { op.filters.as_str() };
        let _ = write!(
            s,
            " <a href=\"/operation?id={}\">{} {} ({state}, {})</a>",
            op.id,
            if op.kind == Sweep::Retry { "retry" } else { "remove" },
            esc(what),
            op.step.affected
        );
    }
    s.push_str("</p>");
    s
}

/// An operation's figures as JSON; None when unknown or forgotten.
fn op_json(app: &App, id: u64) -> Option<J> {
    let ops = lock_ops(app);
    let op = ops.list.iter().find(|o| o.id == id)?;
    let (state, error) = match &op.end {
        None => ("running", None),
        Some(Ok(())) => ("finished", None),
        Some(Err(e)) => ("failed", Some(e.clone())),
    };
    Some(json!({
        "id": op.id,
        "kind": if op.kind == Sweep::Retry { "retry" } else { "remove" },
        "filters": op.filters,
        "done": op.step.affected,
        "looked_at": op.step.looked,
        "total": op.step.total,
        "state": state,
        "error": error,
    }))
}

/// The progress page: figures the script refreshes from `/api/operation`.
fn op_page(id: u64, doc: &J) -> String {
    let field = |k: &str| format!("<span data-op-field={k}>{}</span>", esc(&show(pick(doc, k))));
    let what = if pick(doc, "filters").as_str().is_some_and(|f| !f.is_empty()) {
        format!("matching {}", esc(&show(pick(doc, "filters"))))
    } else {
        "all".to_string()
    };
    format!(
        "<h1>{} {what}</h1><div data-op=\"{id}\"><p>state: <strong>{}</strong></p>\
         <p>{}: {} (looked at {} of {} records)</p><p class=error><span data-op-field=error>{}</span></p></div>\
         <p><a href=\"/failed\">back to the failed list</a></p>",
        esc(&show(pick(doc, "kind"))),
        field("state"),
        kind_verb_of(pick(doc, "kind").as_str()),
        field("done"),
        field("looked_at"),
        field("total"),
        esc(pick(doc, "error").as_str().unwrap_or_default()),
    )
}

fn kind_verb_of(kind: Option<&str>) -> &'static str {
    if kind == Some("retry") {
        "retried"
    } else {
        "removed"
    }
}

/// A failed record's id: FNV-1a of its bytes, 16 hex digits.
fn is_failed_id(id: &str) -> bool {
    id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn kind_verb(kind: Sweep) -> &'static str {
    if kind == Sweep::Retry {
        "retried"
    } else {
        "removed"
    }
}

fn write(app: &App, c: &mut Client, req: &Req) -> Result<Resp, Error> {
    let ns = c.ns().to_string();
    let queue_back = |q: &str| format!("/queue?name={}", url_encode(q));
    let r = match req.path.as_str() {
        p @ ("/pause" | "/resume") => match need(req, "queue") {
            Err(r) => r,
            Ok(q) => {
                let cmd = if p == "/pause" { "TQ.PAUSE" } else { "TQ.RESUME" };
                let n = uint(cmd, &call(c, cmd, &[ns.as_bytes(), q.as_bytes()])?)?;
                done(&format!("{} {q}: {n}", p.trim_start_matches('/')), "/")
            }
        },
        "/queue/delete" => match need(req, "queue") {
            Err(r) => r,
            Ok(q) => {
                let n = uint("TQ.DELQUEUE", &call(c, "TQ.DELQUEUE", &[ns.as_bytes(), q.as_bytes()])?)?;
                done(&format!("deleted queue {q} ({n} jobs)"), "/")
            }
        },
        "/queue/delete-job" => match (need(req, "queue"), need(req, "class")) {
            (Ok(q), Ok(class)) => {
                let args = req.param("args").unwrap_or("[]");
                let v = call(
                    c,
                    "TQ.DEL",
                    &[ns.as_bytes(), q.as_bytes(), class.as_bytes(), args.as_bytes(), b"COUNT", b"1"],
                )?;
                done(&format!("deleted {} job", uint("TQ.DEL", &v)?), &queue_back(q))
            }
            (Err(r), _) | (_, Err(r)) => r,
        },
        p @ ("/failed/retry" | "/failed/remove") => {
            let kind = if p == "/failed/retry" { Sweep::Retry } else { Sweep::Remove };
            let (id, queue, class, exception) =
                (req.param("id"), req.param("queue"), req.param("class"), req.param("exception"));
            let args = SweepArgs {
                id: id.map(str::to_string),
                class: class.map(str::to_string),
                queue: queue.map(str::to_string),
                exception: exception.map(str::to_string),
                all: id.is_none() && queue.is_none() && class.is_none() && exception.is_none(),
                batch: SWEEP_BATCH,
                progress: ProgressArg::None,
                output: OutputArgs { json: true },
            };
            if id.is_none() {
                // All matching: in the background, batched as `tq retry`;
                // the answer is the operation's progress page.
                return Ok(match start_op(app, args, kind) {
                    Ok(n) => Resp::redirect(&format!("/operation?id={n}")),
                    Err(r) => r,
                });
            }
            let out = inspect::sweep(c, &args, kind)?;
            let doc: J = serde_json::from_str(out.text.trim()).unwrap_or(J::Null);
            let verb = kind_verb(kind);
            done(&format!("{verb} {}", show(pick(&doc, verb))), "/failed")
        }
        "/broadcast" => match need(req, "class") {
            Err(r) => r,
            Ok(class) => {
                let args = req.param("args").unwrap_or("[]");
                if !serde_json::from_str::<J>(args).is_ok_and(|v| v.is_array()) {
                    return Ok(Resp::text(400, "args: not a JSON array\n"));
                }
                let v = call(c, "TQ.BROADCAST", &[ns.as_bytes(), class.as_bytes(), args.as_bytes()])?;
                done(&format!("broadcast to {} workers", uint("TQ.BROADCAST", &v)?), "/broadcast")
            }
        },
        p @ ("/failed/retry-selected" | "/failed/remove-selected") => {
            let kind = if p == "/failed/retry-selected" { Sweep::Retry } else { Sweep::Remove };
            // In the page's order (the queue gets them in that order), once each.
            let mut seen = BTreeSet::new();
            let ids: Vec<&str> = req.params("id").filter(|id| seen.insert(*id)).collect();
            if let Some(bad) = ids.iter().find(|id| !is_failed_id(id)) {
                return Ok(Resp::text(400, &format!("'{bad}' is not a failed record's id (16 hex digits)\n")));
            }
            if ids.is_empty() || ids.len() as u64 > SELECTED_MAX {
                return Ok(Resp::text(400, &format!("select from 1 to {SELECTED_MAX} records\n")));
            }
            let (mut affected, mut skipped) = (0u64, 0u64);
            for id in &ids {
                // As the one-record routes: a record that changed or went
                // meanwhile has another id (or none) and is skipped.
                let args = SweepArgs {
                    id: Some((*id).to_string()),
                    class: None,
                    queue: None,
                    exception: None,
                    all: false,
                    batch: SWEEP_BATCH,
                    progress: ProgressArg::None,
                    output: OutputArgs { json: true },
                };
                let out = inspect::sweep(c, &args, kind)?;
                let doc: J = serde_json::from_str(out.text.trim()).unwrap_or(J::Null);
                match pick(&doc, kind_verb(kind)).as_u64() {
                    Some(n) if n > 0 => affected += n,
                    _ => skipped += 1,
                }
            }
            let message = format!("{} {affected}, skipped {skipped} (changed or gone meanwhile)", kind_verb(kind));
            let body =
                format!("<h1>Failed</h1><p class=result>{}</p><p><a href=\"/failed\">back</a></p>", esc(&message));
            let mut r = Resp::new(200, "text/html; charset=utf-8", shell(app, "Failed", "/failed", &body));
            r.headers.push(("X-Tq-Result", message));
            r
        }
        p @ ("/delayed/run" | "/delayed/delete") => match (need(req, "queue"), need(req, "class")) {
            (Ok(q), Ok(class)) => {
                let args = req.param("args").unwrap_or("[]");
                let a = [ns.as_bytes(), q.as_bytes(), class.as_bytes(), args.as_bytes()];
                if p == "/delayed/run" {
                    // Enqueued first, then taken out of the delayed set: a
                    // failure in between leaves a copy, never loses the job.
                    let times = array("TQ.SCHEDULEDAT", call(c, "TQ.SCHEDULEDAT", &a)?)?;
                    if times.is_empty() {
                        return Ok(done("not delayed any more", "/delayed"));
                    }
                    call(c, "TQ.ENQUEUE", &a)?;
                }
                let removed = array("TQ.DELDELAYED", call(c, "TQ.DELDELAYED", &a)?)?;
                let verb = if p == "/delayed/run" { "enqueued now" } else { "deleted" };
                done(&format!("{verb} (filed at {} times)", removed.len()), "/delayed")
            }
            (Err(r), _) | (_, Err(r)) => r,
        },
        _ => Resp::text(404, "not found\n"),
    };
    Ok(r)
}

// ---------------------------------------------------------------------------
// /metrics

/// A Prometheus label value: backslash, double quote and newline escaped.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, String)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        if labels.is_empty() {
            let _ = writeln!(out, "{name} {value}");
        } else {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    }
}

fn metrics(c: &mut Client) -> Result<String, Error> {
    let o = overview(c, Span::TOTALS)?;
    let ns = format!("namespace=\"{}\"", label(c.ns()));
    let per = |f: &dyn Fn(&QueueRow) -> String| -> Vec<(String, String)> {
        o.queues.iter().map(|q| (format!("{ns},queue=\"{}\"", label(&q.name)), f(q))).collect()
    };
    let num = |v: &J| v.as_i64().map_or("NaN".to_string(), |n| n.to_string());
    let mut s = String::new();
    metric(&mut s, "tq_queue_depth", "gauge", "Jobs waiting in the queue.", &per(&|q| q.depth.to_string()));
    metric(
        &mut s,
        "tq_queue_paused",
        "gauge",
        "1 when the queue is paused (TQ.PAUSE).",
        &per(&|q| u8::from(q.paused).to_string()),
    );
    metric(
        &mut s,
        "tq_queue_in_flight",
        "gauge",
        "Jobs of the queue held by workers (the first 1000 registered workers).",
        &per(&|q| q.in_flight.to_string()),
    );
    metric(
        &mut s,
        "tq_queue_workers_alive",
        "gauge",
        "Live workers taking from the queue (the first 1000 registered workers).",
        &per(&|q| q.workers_alive.to_string()),
    );
    let one = |v: String| vec![(ns.clone(), v)];
    metric(&mut s, "tq_processed_total", "counter", "The namespace's stat:processed counter.", &one(num(&o.processed)));
    metric(&mut s, "tq_failed_total", "counter", "The namespace's stat:failed counter.", &one(num(&o.failed_counter)));
    metric(&mut s, "tq_failed_jobs", "gauge", "Records in the failed list.", &one(o.failed_len.to_string()));
    metric(
        &mut s,
        "tq_delayed_jobs",
        "gauge",
        "Delayed jobs (the first 1000 times counted).",
        &one(o.delayed_jobs.to_string()),
    );
    metric(&mut s, "tq_in_flight", "gauge", "Jobs held under a lease.", &one(o.in_flight.to_string()));
    metric(&mut s, "tq_workers", "gauge", "Registered workers.", &one(o.workers.to_string()));
    metric(&mut s, "tq_workers_alive", "gauge", "Live workers.", &one(o.workers_alive.to_string()));
    // The Node package's counters (Stats.increment), global and per server.
    let counted = crate::inspect::counters(c)?;
    let mut counters = Vec::new();
    let mut add = |server: Option<&str>, hash: &J| {
        for (name, n) in hash.as_object().into_iter().flatten() {
            let scope = match server {
                None => "scope=\"global\"".to_string(),
                Some(sv) => format!("scope=\"local\",server=\"{}\"", label(sv)),
            };
            counters.push((format!("{ns},{scope},counter=\"{}\"", label(name)), num(n)));
        }
    };
    add(None, counted.get("global").unwrap_or(&J::Null));
    for (server, hash) in counted.get("local").and_then(J::as_object).into_iter().flatten() {
        add(Some(server), hash);
    }
    metric(&mut s, "tq_counter", "gauge", "Counters of the Node package's Stats.increment.", &counters);
    job_metrics(&mut s, &ns, &o);
    // INFO tq: what the module did on this server since it was loaded.
    let info = call(c, "INFO", &[b"tq"]).ok().and_then(|v| text(&v)).unwrap_or_default();
    for line in info.lines() {
        let Some((field, value)) = line.trim().split_once(':') else { continue };
        let Some(name) = field.strip_prefix("tq_") else { continue };
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        if value.contains("count=") {
            summary(&mut s, name, value);
            continue;
        }
        if value.parse::<f64>().is_err() {
            continue;
        }
        let (kind, metric_name) = if name.starts_with("timer_namespaces") {
            ("gauge", format!("tq_server_{name}"))
        } else {
            ("counter", format!("tq_server_{name}_total"))
        };
        metric(
            &mut s,
            &metric_name,
            kind,
            &format!("INFO tq {field} (this server, since the module was loaded)."),
            &[(String::new(), value.to_string())],
        );
    }
    Ok(s)
}

/// The module's job metrics: per (queue, class) counters and histograms from
/// the totals records (closed minutes: monotonic, up to about a minute
/// behind), and each queue's latency.
fn job_metrics(out: &mut String, ns: &str, o: &Overview) {
    let pair = |p: &jm::PairMetrics| format!("{ns},queue=\"{}\",class=\"{}\"", label(&p.queue), label(&p.class));
    let pairs = &o.jobs.pairs;
    let each = |f: &dyn Fn(&Tally) -> u64| -> Vec<(String, String)> {
        pairs.iter().map(|p| (pair(p), f(&p.total).to_string())).collect()
    };
    metric(out, "tq_jobs_processed_total", "counter", "Jobs acknowledged (closed minutes).", &each(&|t| t.processed));
    metric(out, "tq_jobs_failed_total", "counter", "Jobs failed (closed minutes).", &each(&|t| t.failed));
    for (name, help, of) in [
        (
            "tq_job_run_seconds",
            "Run time of the jobs, take to ACK or FAIL (closed minutes).",
            (|t: &Tally| &t.run) as fn(&Tally) -> &Histogram,
        ),
        ("tq_job_wait_seconds", "Wait time of the jobs, arrival (or due time) to take (closed minutes).", |t| &t.wait),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for p in pairs {
            let labels = pair(p);
            let h = of(&p.total);
            let mut seen = 0u64;
            for (i, n) in h.counts.iter().enumerate() {
                seen = seen.saturating_add(*n);
                // Durations are whole ms: under 2^i ms is at most 2^i ms.
                let le = bucket_bound_ms(i).map_or_else(|| "+Inf".to_string(), seconds);
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {seen}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", seconds(h.sum_ms));
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
        }
    }
    let latencies: Vec<(String, String)> = o
        .queues
        .iter()
        .filter_map(|q| {
            // An empty queue waits for nothing; a queue whose head is not dated is left out.
            let ms = if q.depth == 0 { Some(0) } else { q.latency_ms };
            ms.map(|ms| (format!("{ns},queue=\"{}\"", label(&q.name)), seconds(ms)))
        })
        .collect();
    metric(
        out,
        "tq_queue_latency_seconds",
        "gauge",
        "Age of the queue's oldest waiting job (0 when empty).",
        &latencies,
    );
}

/// Milliseconds as seconds, exactly (`1.5`, `0.001`, `4194.304`).
fn seconds(ms: u64) -> String {
    let (s, rest) = (ms / 1000, ms % 1000);
    if rest == 0 {
        s.to_string()
    } else {
        format!("{s}.{rest:03}").trim_end_matches('0').to_string()
    }
}

/// An `INFO tq` summary (`count=..,mean=..,p50=..,p99=..,max=..`) as a
/// Prometheus summary (its sum is count × mean) and a `_max` gauge.
fn summary(out: &mut String, name: &str, value: &str) {
    let fields: BTreeMap<&str, f64> =
        value.split(',').filter_map(|kv| kv.split_once('=')).filter_map(|(k, v)| Some((k, v.parse().ok()?))).collect();
    let (Some(count), Some(mean)) = (fields.get("count"), fields.get("mean")) else { return };
    let full = format!("tq_server_{name}");
    let _ = writeln!(
        out,
        "# HELP {full} INFO tq tq_{name} (this server, since the module was loaded).\n# TYPE {full} summary"
    );
    for (q, k) in [("0.5", "p50"), ("0.99", "p99")] {
        if let Some(v) = fields.get(k) {
            let _ = writeln!(out, "{full}{{quantile=\"{q}\"}} {v}");
        }
    }
    let _ = writeln!(out, "{full}_sum {}\n{full}_count {count}", count * mean);
    if let Some(max) = fields.get("max") {
        metric(
            out,
            &format!("{full}_max"),
            "gauge",
            &format!("The largest tq_{name} seen."),
            &[(String::new(), max.to_string())],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_leaves_no_markup() {
        assert_eq!(esc(r#"<script>"'&</script>"#), "&lt;script&gt;&quot;&#39;&amp;&lt;/script&gt;");
        assert_eq!(esc("\"><img src=x onerror=alert(1)>"), "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;");
        assert_eq!(safe_json(&json!({"a": "</script>\u{2028}&"})), r#"{"a":"\u003c/script\u003e\u2028\u0026"}"#);
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    #[test]
    fn urls_round_trip() {
        for s in ["a b", "é/&=?%", "<x>", ""] {
            assert_eq!(url_decode(&url_encode(s)), s);
        }
        assert_eq!(url_decode("a+b%2"), "a b%2");
        assert_eq!(url_decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        for h in ["localhost", "localhost:8080", "127.0.0.1", "127.1.2.3:80", "[::1]", "[::1]:8080"] {
            assert!(loopback_host(h), "{h}");
        }
        for h in [
            "evil.example",
            "evil.example:8080",
            "10.0.0.1:80",
            "localhost.evil.example",
            "",
            "[::2]:1",
            "127.0.0.1.evil:80",
        ] {
            assert!(!loopback_host(h), "{h}");
        }
    }

    #[test]
    fn only_loopback_listens_without_a_token() {
        assert_eq!(is_loopback("127.0.0.1:0"), Ok(true));
        assert_eq!(is_loopback("[::1]:0"), Ok(true));
        assert_eq!(is_loopback("0.0.0.0:0"), Ok(false));
        assert!(is_loopback("nonsense").is_err());
    }
}
