//! tq's test kit, shared by the module's integration tests (`tests/`) and
//! the client's and the CLI's (`client/tests`, `cli/tests`): real server
//! processes on free loopback ports, each in its own directory under
//! `target/tq-test/`, killed by PID on drop; connections with terse helpers;
//! the `tq` binary as a child process; a mixed workload ([`workload`]), a
//! seeded fault-injecting proxy ([`fault_proxy`]) and a cutting proxy
//! ([`proxy`]); seeded dice ([`rng`]); node-resque scripts ([`interop`]).

pub mod fault_proxy;
pub mod interop;
pub mod proxy;
pub mod rng;
pub mod server_bin;
pub mod workload;

pub use proxy::Proxy;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use redis::Value;

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// The workspace's root directory.
pub fn root() -> &'static Path {
    // The parent itself, not `testkit/..`: Chromium resolves a profile path
    // with `..` and chromedriver then looks for it elsewhere.
    let kit = Path::new(env!("CARGO_MANIFEST_DIR"));
    kit.parent().unwrap_or(kit)
}

/// The module under test: `$TQ_MODULE`, else the debug build (`make test`
/// builds it before running the tests).
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TQ_MODULE") {
        return PathBuf::from(p);
    }
    let root = root();
    let p = root.join("target/debug/libtq.so");
    assert_fresh(&p, &[root.join("src"), root.join("core/src")]);
    p
}

/// The server binary `$TQ_SERVER` selects (see `server_bin.rs`).
pub fn redis_server_bin() -> String {
    server_bin::server_bin(root())
}

fn free_port() -> u16 {
    // Cluster mode also needs port + 10000 free.
    loop {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
        let port = l.local_addr().expect("local addr").port();
        if port < 55_000 && TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

pub struct Opts {
    pub module: bool,
    /// Arguments after `--loadmodule <path>` (module settings).
    pub module_args: Vec<String>,
    pub args: Vec<String>,
}

impl Default for Opts {
    /// The module with its timer's automatic promotion off, so that tests
    /// of TQ.PROMOTE control when jobs move; tests of the timer turn it on
    /// (`Opts::timer()`).
    fn default() -> Self {
        Opts { module: true, module_args: vec!["auto-promote".into(), "no".into()], args: Vec::new() }
    }
}

impl Opts {
    /// The module as configured by default (automatic promotion on).
    pub fn timer() -> Self {
        Opts { module_args: Vec::new(), ..Opts::default() }
    }
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Server {
    /// A server with the module loaded.
    pub fn start() -> Server {
        Self::start_with(Opts::default())
    }

    pub fn start_with(opts: Opts) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let dir = root().join("target/tq-test").join(format!(
                "{}-{}-{}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst),
                port
            ));
            std::fs::create_dir_all(&dir).expect("create server dir");
            if let Some(s) = Self::spawn(port, dir.clone(), &opts) {
                return s;
            }
            let _ = std::fs::remove_dir_all(&dir);
        }
        panic!("could not start redis-server");
    }

    /// Starts again in the same directory (to reload its RDB/AOF files).
    pub fn restart_in(dir: &Path, opts: Opts) -> Server {
        let port = free_port();
        Self::spawn(port, dir.to_path_buf(), &opts).expect("restart redis-server")
    }

    /// Starts a server that must refuse to start (a bad module argument,
    /// say); returns its log.
    pub fn start_must_fail(opts: Opts) -> String {
        let port = free_port();
        let dir = root().join("target/tq-test").join(format!(
            "{}-{}-{port}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("create server dir");
        let mut child = Self::command(port, &dir, &opts).spawn().expect("spawn redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().expect("try_wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server started; its log:\n{}",
                    std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        let _ = std::fs::remove_dir_all(&dir);
        log
    }

    /// The server's command line: its own directory and log file, no
    /// snapshots, the module (when asked) with its arguments.
    fn command(port: u16, dir: &Path, opts: &Opts) -> Command {
        let mut cmd = Command::new(redis_server_bin());
        cmd.arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg("redis.log")
            .arg("--save")
            .arg("")
            .arg("--enable-debug-command")
            .arg("yes")
            .arg("--daemonize")
            .arg("no");
        if opts.module {
            cmd.arg("--loadmodule").arg(module_path()).args(&opts.module_args);
        }
        cmd.args(&opts.args);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        cmd
    }

    fn spawn(port: u16, dir: PathBuf, opts: &Opts) -> Option<Server> {
        let child = Self::command(port, &dir, opts)
            .spawn()
            .expect("spawn redis-server (is it installed? `make test` installs it)");
        let mut s = Server { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = s.child.try_wait() {
                return None; // exited: port taken or bad config
            }
            if let Ok(mut c) = s.try_conn() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Some(s);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = s.child.kill();
        None
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        client.get_connection_with_timeout(Duration::from_secs(5))
    }

    pub fn conn(&self) -> Conn {
        Conn(self.try_conn().expect("connect"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server (SIGKILL by PID) but keeps its directory.
    pub fn kill_keep_dir(mut self) -> PathBuf {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = std::mem::take(&mut self.dir);
        std::mem::forget(self);
        dir
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- redis log {} ---\n{}", self.dir.display(), self.log());
        } else if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A connection with terse helpers. `q` returns errors as their reply text
/// (`CODE message`).
pub struct Conn(pub redis::Connection);

impl Conn {
    pub fn q<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Result<Value, String> {
        let mut cmd = redis::Cmd::new();
        for a in args {
            cmd.arg(a.as_ref());
        }
        cmd.query::<Value>(&mut self.0).map_err(|e| match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_string(),
            _ => e.to_string(),
        })
    }

    /// Runs a command that must succeed.
    pub fn ok<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        let shown: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect();
        self.q(args).unwrap_or_else(|e| panic!("{shown:?} failed: {e}"))
    }

    /// Runs a command that must fail; returns the error text.
    pub fn err<A: AsRef<[u8]>>(&mut self, args: &[A]) -> String {
        let shown: Vec<String> = args.iter().map(|a| String::from_utf8_lossy(a.as_ref()).into_owned()).collect();
        match self.q(args) {
            Ok(v) => panic!("{shown:?} should have failed, got {v:?}"),
            Err(e) => e,
        }
    }

    pub fn int<A: AsRef<[u8]>>(&mut self, args: &[A]) -> i64 {
        match self.ok(args) {
            Value::Int(n) => n,
            Value::BulkString(b) => String::from_utf8_lossy(&b).parse().expect("integer"),
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn bytes<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Option<Vec<u8>> {
        match self.ok(args) {
            Value::Nil => None,
            Value::BulkString(b) => Some(b),
            Value::SimpleString(s) => Some(s.into_bytes()),
            Value::Okay => Some(b"OK".to_vec()),
            other => panic!("not a string: {other:?}"),
        }
    }

    /// A node-resque counter, `<ns>:stat:<name>` (0 when unset).
    pub fn stat(&mut self, ns: &str, name: &str) -> i64 {
        self.string(&["GET", &format!("{ns}:stat:{name}")]).map_or(0, |s| s.parse().expect("a counter"))
    }

    pub fn string<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Option<String> {
        self.bytes(args).map(|b| String::from_utf8(b).expect("utf8"))
    }

    pub fn list<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<Vec<u8>> {
        match self.ok(args) {
            Value::Array(items) | Value::Set(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::BulkString(b) => b,
                    Value::Int(n) => n.to_string().into_bytes(),
                    other => panic!("not a bulk string: {other:?}"),
                })
                .collect(),
            Value::Nil => Vec::new(),
            other => panic!("not an array: {other:?}"),
        }
    }

    pub fn strings<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<String> {
        self.list(args).into_iter().map(|b| String::from_utf8(b).expect("utf8")).collect()
    }

    pub fn digest(&mut self) -> String {
        self.string(&["DEBUG", "DIGEST"]).expect("digest")
    }

    /// Whether the tq module is loaded. (Not "MODULE LIST is empty":
    /// Valkey 9 lists its built-in Lua engine there as module `lua`.)
    pub fn has_tq(&mut self) -> bool {
        let Value::Array(modules) = self.ok(&["MODULE", "LIST"]) else { panic!("MODULE LIST: not an array") };
        modules.iter().any(|m| match m {
            Value::Array(fields) => fields.get(1) == Some(&Value::BulkString(b"tq".to_vec())),
            Value::Map(fields) => fields.iter().any(|(_, v)| *v == Value::BulkString(b"tq".to_vec())),
            _ => false,
        })
    }

    /// A field of INFO.
    pub fn info_field(&mut self, section: &str, field: &str) -> Option<String> {
        let info = self.string(&["INFO", section]).unwrap_or_default();
        info.lines().find_map(|l| l.strip_prefix(&format!("{field}:")).map(|v| v.trim().to_string()))
    }

    /// Ticks the module's timer ran so far (`INFO tq`).
    pub fn timer_ticks(&mut self) -> i64 {
        let field = self.info_field("tq", "tq_timer_tick_us").expect("tick stats");
        field.split(',').find_map(|kv| kv.strip_prefix("count=")).and_then(|n| n.parse().ok()).expect("a tick count")
    }
}

/// Waits until `f` holds (polling), failing after `secs`.
pub fn wait_until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out waiting for {what}");
}

/// A unique namespace per test, so tests can share a server if they want.
pub fn ns(name: &str) -> String {
    format!("t{}:{name}", SEQ.fetch_add(1, Ordering::SeqCst))
}

/// What a `tq` run left: exit status, stdout, stderr.
pub struct TqRun {
    pub code: i32,
    pub out: String,
    pub err: String,
}

/// `tq --redis redis://127.0.0.1:<port>/ --ns <n> <args...>`, run to its end.
pub fn run_tq(port: u16, n: &str, args: &[&str]) -> TqRun {
    let out = Command::new(tq_bin())
        .args(["--redis", &format!("redis://127.0.0.1:{port}/"), "--ns", n])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tq");
    TqRun {
        code: out.status.code().unwrap_or(-1),
        out: String::from_utf8(out.stdout).expect("UTF-8 stdout"),
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The `tq` binary (the worker crate): `$TQ_BIN`, else the debug build,
/// which must exist and be newer than the worker's sources. (`make test`
/// builds it: `cargo test --workspace` builds the worker's integration tests,
/// hence its binary, before running any test. A bare `cargo build` at the
/// root builds only the module.)
pub fn tq_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("TQ_BIN") {
        return PathBuf::from(p);
    }
    let root = root();
    let p = root.join("target/debug/tq");
    assert_fresh(&p, &[root.join("cli/src"), root.join("cli/Cargo.toml"), root.join("client/src")]);
    p
}

/// Fails clearly when `built` is missing or older than any file under
/// `sources`: a stale build must never be tested silently.
fn assert_fresh(built: &Path, sources: &[PathBuf]) {
    let fix = "run `cargo build --workspace` (or `make test`) first";
    let built_at = std::fs::metadata(built)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: {fix}", built.display()));
    let mut pending: Vec<PathBuf> = sources.to_vec();
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
        } else if path.file_name().is_some_and(|n| n == "tests.rs") {
            // Unit tests only: changing them does not relink the library.
        } else if let Ok(t) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            assert!(t <= built_at, "{} is older than {}: {fix}", built.display(), path.display());
        }
    }
}

/// Sends `sig` (a name such as `KILL` or `TERM`) with kill(1) to `target`:
/// a PID, or a process group as `-PGID`. Errors (already gone) are ignored.
pub fn send_signal(sig: &str, target: &str) {
    let _ = Command::new("kill")
        .arg("-s")
        .arg(sig)
        .arg("--")
        .arg(target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A `tq` process started in its own process group, its stderr (the log)
/// written to a file. Dropping it SIGKILLs its group and the process groups
/// of the commands it logged as started (`(pid N)`), then reaps it.
pub struct Tq {
    child: Child,
    pub log_path: PathBuf,
}

impl Tq {
    /// Runs `tq --redis redis://127.0.0.1:<port>/ <args...>`, logging to `log_path`.
    pub fn spawn(port: u16, args: &[&str], log_path: &Path) -> Tq {
        Tq::spawn_url(&format!("redis://127.0.0.1:{port}/"), args, log_path)
    }

    /// Runs `tq --redis <url> <args...>`, logging to `log_path`.
    pub fn spawn_url(url: &str, args: &[&str], log_path: &Path) -> Tq {
        use std::os::unix::process::CommandExt;
        let log = std::fs::File::create(log_path).expect("create the tq log file");
        let child = Command::new(tq_bin())
            .arg("--redis")
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .process_group(0)
            .spawn()
            .expect("spawn tq");
        Tq { child, log_path: log_path.to_path_buf() }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// PIDs of the commands it started (each leads its own process group).
    pub fn command_pids(&self) -> Vec<u32> {
        let log = self.log();
        log.match_indices("(pid ")
            .filter_map(|(i, m)| {
                let rest = log.get(i + m.len()..)?;
                rest.split(')').next()?.parse().ok()
            })
            .collect()
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().expect("try_wait tq")
    }

    /// Waits for it to exit, failing (with its log) after `secs`.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tq (pid {}) still runs after {secs}s; its log:\n{}", self.pid(), self.log());
    }

    /// Waits until its log contains `text`, failing (with the log) after `secs`.
    pub fn wait_log(&mut self, secs: u64, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            let log = self.log();
            if log.contains(text) {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("tq (pid {}) never logged {text:?} in {secs}s; its log:\n{}", self.pid(), self.log());
    }

    /// SIGKILL to its process group and to its commands' process groups.
    pub fn kill_groups(&mut self) {
        // tq first: killed after its command, it could still see the command die and
        // report FAIL, which is not the crash this stands for.
        send_signal("KILL", &format!("-{}", self.pid()));
        let _ = self.child.wait();
        for pid in self.command_pids() {
            send_signal("KILL", &format!("-{pid}"));
        }
    }
}

impl Drop for Tq {
    fn drop(&mut self) {
        let running = matches!(self.child.try_wait(), Ok(None));
        if running {
            self.kill_groups();
        } else {
            // Exited: a command it started may still run in its own group.
            for pid in self.command_pids() {
                send_signal("KILL", &format!("-{pid}"));
            }
        }
        if std::thread::panicking() {
            eprintln!("--- tq log {} ---\n{}", self.log_path.display(), self.log());
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers for the server-side-time tests (blocking pop, leases, the timer,
// periodic and broadcast tasks).

impl Opts {
    /// The module with automatic promotion off (as `Opts::default()`) plus
    /// module settings, e.g. `&["lease-ms", "300"]`.
    pub fn module_with(settings: &[&str]) -> Opts {
        let mut o = Opts::default();
        o.module_args.extend(settings.iter().map(|s| s.to_string()));
        o
    }

    /// The module as configured by default (its timer promotes) plus module
    /// settings.
    pub fn timer_with(settings: &[&str]) -> Opts {
        let mut o = Opts::timer();
        o.module_args.extend(settings.iter().map(|s| s.to_string()));
        o
    }

    /// Adds redis-server arguments.
    pub fn with_args(mut self, args: &[&str]) -> Opts {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }
}

/// A connection to the server on `port` (for threads, which cannot borrow a
/// `Server`).
pub fn connect(port: u16) -> Conn {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("client");
    Conn(client.get_connection_with_timeout(Duration::from_secs(5)).expect("connect"))
}

impl Conn {
    /// The server's clock, unix ms (`TIME`).
    pub fn server_ms(&mut self) -> u64 {
        let t = self.strings(&["TIME"]);
        let s: u64 = t[0].parse().expect("TIME seconds");
        let us: u64 = t[1].parse().expect("TIME microseconds");
        s * 1000 + us / 1000
    }

    /// A read timeout, so that a command that should not block fails the
    /// test instead of hanging it.
    pub fn read_timeout(&mut self, d: Duration) {
        self.0.set_read_timeout(Some(d)).expect("set_read_timeout");
    }

    /// `blocked_clients` of INFO clients.
    pub fn blocked_clients(&mut self) -> i64 {
        self.info_field("clients", "blocked_clients").and_then(|v| v.parse().ok()).expect("blocked_clients")
    }

    /// Waits until exactly `n` clients are blocked.
    pub fn wait_blocked(&mut self, n: i64) {
        wait_until(30, &format!("{n} blocked clients"), || self.blocked_clients() == n);
    }

    /// tq's in-flight index entry of `worker` (None when absent).
    pub fn inflight(&mut self, ns: &str, worker: &str) -> Option<tq_core::records::InFlight> {
        let raw = self.bytes(&["GET", &format!("{ns}:tq:inflight:{worker}")])?;
        Some(tq_core::records::InFlight::decode(&raw).expect("an in-flight entry tq can decode"))
    }

    /// The delivery id `worker`'s in-flight entry names (the job it holds,
    /// or the last one it held), "0" without an entry: a report's argument.
    pub fn delivery(&mut self, ns: &str, worker: &str) -> String {
        self.inflight(ns, worker).map_or_else(|| "0".to_string(), |e| e.delivery.to_string())
    }

    /// `TQ.ACK` naming the delivery `worker` holds; must succeed.
    pub fn ack(&mut self, ns: &str, worker: &str) -> Value {
        let d = self.delivery(ns, worker);
        self.ok(&["TQ.ACK", ns, worker, &d])
    }

    /// `TQ.ACK` naming the delivery of `worker`'s entry; must fail.
    pub fn ack_err(&mut self, ns: &str, worker: &str) -> String {
        let d = self.delivery(ns, worker);
        self.err(&["TQ.ACK", ns, worker, &d])
    }

    /// `TQ.FAIL <ns> <worker> <delivery held> <rest...>`; must succeed.
    pub fn fail(&mut self, ns: &str, worker: &str, rest: &[&str]) -> Value {
        let d = self.delivery(ns, worker);
        let mut args = vec!["TQ.FAIL", ns, worker, &d];
        args.extend_from_slice(rest);
        self.ok(&args)
    }

    /// `TQ.FAIL` naming the delivery of `worker`'s entry; must fail.
    pub fn fail_err(&mut self, ns: &str, worker: &str, rest: &[&str]) -> String {
        let d = self.delivery(ns, worker);
        let mut args = vec!["TQ.FAIL", ns, worker, &d];
        args.extend_from_slice(rest);
        self.err(&args)
    }

    /// `TQ.NACK <ns> <worker> <delivery held> <rest...>`; must succeed.
    pub fn nack(&mut self, ns: &str, worker: &str, rest: &[&str]) -> Value {
        let d = self.delivery(ns, worker);
        let mut args = vec!["TQ.NACK", ns, worker, &d];
        args.extend_from_slice(rest);
        self.ok(&args)
    }

    /// `TQ.HEARTBEAT <ns> <worker> <ms>` naming the delivery the worker
    /// holds (none when it holds none): the lease left.
    pub fn beat(&mut self, ns: &str, worker: &str, ms: &str) -> i64 {
        match self.inflight(ns, worker).filter(tq_core::records::InFlight::live) {
            Some(e) => self.int(&["TQ.HEARTBEAT", ns, worker, ms, &e.delivery.to_string()]),
            None => self.int(&["TQ.HEARTBEAT", ns, worker, ms]),
        }
    }

    /// The workers of `ns` whose in-flight entry holds a job (not a
    /// tombstone of one that ended).
    pub fn live_inflight(&mut self, ns: &str) -> Vec<String> {
        let prefix = format!("{ns}:tq:inflight:");
        let keys = self.strings(&["KEYS", &format!("{prefix}*")]);
        keys.into_iter()
            .filter(|k| {
                let raw = self.bytes(&["GET", k]).unwrap_or_default();
                tq_core::records::InFlight::decode(&raw).is_none_or(|e| e.live())
            })
            .map(|k| k.strip_prefix(&prefix).unwrap_or(&k).to_string())
            .collect()
    }

    /// A list, as strings.
    pub fn lrange(&mut self, key: &str) -> Vec<String> {
        self.strings(&["LRANGE", key, "0", "-1"])
    }

    /// Waits till the timer wrote `ns`'s open tallies (~2 s after a job ends), lest it straddle a digest/offset check.
    pub fn wait_tallies_written(&mut self, ns: &str) {
        let key = format!("{ns}:tq:mflush");
        wait_until(30, &format!("the timer writing the open job-metrics tallies of {ns} ({key} empty)"), || {
            self.int(&["ZCARD", &key]) == 0
        });
    }

    /// As `wait_tallies_written`, and then, should a minute of `ns`'s job
    /// metrics be due to close (at its end, by the timer) within `window_ms`,
    /// till it is closed: a check that compares the dataset or the
    /// replication stream over that long must not straddle a timer write.
    pub fn wait_metrics_quiet(&mut self, ns: &str, window_ms: u64) {
        self.wait_tallies_written(ns);
        let key = format!("{ns}:tq:mopen");
        wait_until(90, &format!("no minute of {ns} closing within {window_ms} ms ({key})"), || {
            let first = self.strings(&["ZRANGE", &key, "0", "0", "WITHSCORES"]);
            let due = first.get(1).and_then(|s| s.parse::<f64>().ok());
            let now = self.server_ms() as f64;
            due.is_none_or(|due| due > now + window_ms as f64)
        });
    }

    /// The dataset's digest, taken when no write of the module's timer to
    /// the job metrics (a worker's open tally, `<ns>:tq:mflush`, or a
    /// minute's close, `<ns>:tq:mopen`, in any namespace) is due within
    /// `QUIET_MS`: the first digest of a check that compares it with one
    /// taken a moment later, after commands that must write nothing.
    pub fn quiet_digest(&mut self) -> String {
        const QUIET_MS: u64 = 1_500;
        wait_until(30, &format!("no job-metrics write of the timer due within {QUIET_MS} ms"), || {
            !self.metrics_write_due_within(QUIET_MS)
        });
        self.digest()
    }

    /// Whether a write of the module's timer to the job metrics (see
    /// `quiet_digest`) is due within `ms`, or overdue: a check that nothing
    /// is written over that long would see it.
    pub fn metrics_write_due_within(&mut self, ms: u64) -> bool {
        // Due times overdue by longer belong to a server whose timer does
        // not run (tests that switch it off): nothing will write them.
        const STALE_MS: u64 = 5_000;
        let now = self.server_ms();
        self.metrics_due_times().into_iter().any(|due| due <= now + ms && due + STALE_MS >= now)
    }

    /// The first due time of every `*:tq:mflush` and `*:tq:mopen` zset.
    fn metrics_due_times(&mut self) -> Vec<u64> {
        let mut keys = Vec::new();
        for pattern in ["*:tq:mflush", "*:tq:mopen"] {
            let mut cursor = "0".to_string();
            loop {
                let Ok(Value::Array(reply)) = self.q(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]) else {
                    break;
                };
                let [Value::BulkString(next), Value::Array(found)] = reply.as_slice() else { break };
                keys.extend(found.iter().filter_map(|k| match k {
                    Value::BulkString(k) => Some(k.clone()),
                    _ => None,
                }));
                cursor = String::from_utf8_lossy(next).into_owned();
                if cursor == "0" {
                    break;
                }
            }
        }
        keys.iter()
            .filter_map(|key| match self.q(&[&b"ZRANGE"[..], key.as_slice(), b"0", b"0", b"WITHSCORES"]) {
                // Anything but a zset (the wrong-type tests) is no due time.
                Ok(Value::Array(v)) => match v.get(1) {
                    Some(Value::BulkString(s)) => std::str::from_utf8(s).ok()?.parse::<f64>().ok().map(|d| d as u64),
                    Some(Value::Double(d)) => Some(*d as u64),
                    _ => None,
                },
                _ => None,
            })
            .collect()
    }
}

/// A pop's reply: None for nil, else (queue, payload); the reply is
/// `[queue, payload, delivery, deliveries, lease-deadline-ms]`.
pub fn popped_job(v: Value) -> Option<(String, String)> {
    match v {
        Value::Nil => None,
        Value::Array(items) => match items.as_slice() {
            [Value::BulkString(q), Value::BulkString(p), Value::Int(d), Value::Int(n), Value::Int(until)]
                if *d > 0 && *n > 0 && *until > 0 =>
            {
                Some((
                    String::from_utf8(q.clone()).expect("utf8 queue"),
                    String::from_utf8(p.clone()).expect("utf8 payload"),
                ))
            }
            other => panic!("a pop replies [queue, payload, delivery, deliveries, lease-deadline-ms], got {other:?}"),
        },
        other => panic!("a pop replies nil or [queue, payload], got {other:?}"),
    }
}

/// A pop's reply: None for nil, else (queue, payload, delivery id,
/// delivery count), the numbers as text (command arguments).
pub fn taken_job(v: Value) -> Option<(String, String, String, String)> {
    let Value::Array(items) = &v else { return popped_job(v).map(|_| unreachable!()) };
    let (q, p) = popped_job(v.clone())?;
    match items.as_slice() {
        [_, _, Value::Int(d), Value::Int(n), _] => Some((q, p, d.to_string(), n.to_string())),
        other => panic!("a pop reply: {other:?}"),
    }
}

/// The payload tq (and node-resque) write for a job: `args` is JSON text.
pub fn job(queue: &str, class: &str, args: &str) -> String {
    format!(r#"{{"class":"{class}","queue":"{queue}","args":{args}}}"#)
}

/// A replica of the server on `primary_port`, with or without the module,
/// once its link is up. `opts.args` get the `--replicaof` arguments added.
pub fn start_replica(primary_port: u16, opts: Opts) -> Server {
    let port = primary_port.to_string();
    let r = Server::start_with(opts.with_args(&["--replicaof", "127.0.0.1", &port, "--repl-diskless-sync-delay", "0"]));
    let mut c = r.conn();
    wait_until(30, "master_link_status:up", || {
        c.info_field("replication", "master_link_status").as_deref() == Some("up")
    });
    r
}

/// `master_repl_offset`.
pub fn repl_offset_of(c: &mut Conn) -> i64 {
    c.info_field("replication", "master_repl_offset").expect("master_repl_offset").parse().expect("offset")
}

/// Waits until all `replicas` of the primary have acknowledged its current
/// offset, then `WAIT` must confirm it.
pub fn wait_replicas_synced(p: &mut Conn, replicas: usize) {
    wait_until(60, "the replicas acknowledging the primary's offset", || {
        let offset = repl_offset_of(p);
        let info = p.string(&["INFO", "replication"]).unwrap_or_default();
        let acked =
            info.lines().filter(|l| l.starts_with("slave") && l.contains(&format!(",offset={offset},"))).count();
        acked == replicas
    });
    let n = i64::try_from(replicas).expect("replicas");
    assert_eq!(p.int(&["WAIT", &replicas.to_string(), "5000"]), n, "WAIT: the replicas acknowledged the stream");
}

impl Conn {
    /// `LLEN key` and the server clock (unix ms), read in one step
    /// (MULTI/EXEC), to tell when something arrived by the server's clock.
    pub fn llen_at(&mut self, key: &str) -> (i64, u64) {
        self.ok(&["MULTI"]);
        self.ok(&["LLEN", key]);
        self.ok(&["TIME"]);
        let part = |v: &Value| match v {
            Value::BulkString(b) => String::from_utf8_lossy(b).parse::<u64>().expect("TIME part"),
            other => panic!("TIME: {other:?}"),
        };
        match self.ok(&["EXEC"]) {
            Value::Array(r) => match r.as_slice() {
                [Value::Int(len), Value::Array(t)] if t.len() == 2 => (*len, part(&t[0]) * 1000 + part(&t[1]) / 1000),
                other => panic!("EXEC: {other:?}"),
            },
            other => panic!("EXEC: {other:?}"),
        }
    }

    /// Polls `key` until it holds at least `len` elements; returns the
    /// server time at which that was first seen. Fails after `secs`.
    pub fn wait_llen(&mut self, key: &str, len: i64, secs: u64) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (n, at) = self.llen_at(key);
            if n >= len {
                return at;
            }
            assert!(Instant::now() < deadline, "{key} never reached {len} elements (has {n})");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers for the `tq work` tests.

impl Server {
    /// Starts a server again on `port` and in `dir` (after `kill_keep_dir`),
    /// so that clients find it where it was and it reloads its files.
    /// Retries while the port is still being released.
    pub fn restart_on(port: u16, dir: &Path, opts: Opts) -> Server {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = Self::spawn(port, dir.to_path_buf(), &opts) {
                return s;
            }
            assert!(Instant::now() < deadline, "could not restart redis-server on port {port} in {}", dir.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Writes an executable `#!/bin/sh` script `dir/name` (creating `dir`).
pub fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).expect("create the script directory");
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod the script");
    path
}
