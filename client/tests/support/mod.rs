//! Test harness of the worker crate's integration tests: a real
//! `redis-server` with the tq module on a free loopback port (in its own
//! directory under `target/tq-test-worker/`, killed by PID on drop), and a
//! TCP proxy that can cut a connection right after the server answered a
//! chosen command, so that the reply is lost although the command was applied.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use redis::Value;

static SEQ: AtomicUsize = AtomicUsize::new(0);

// The module's harness decides which server binary `$TQ_SERVER` names.
#[path = "../../../tests/common/server_bin.rs"]
mod server_bin;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

/// `$TQ_MODULE`, else the workspace's debug build, which must be fresh.
pub fn module_path() -> PathBuf {
    if let Some(p) = std::env::var_os("TQ_MODULE") {
        return PathBuf::from(p);
    }
    let p = root().join("target/debug/libtq.so");
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} is missing: run `cargo build --workspace` first", p.display()));
    let mut pending = vec![root().join("src"), root().join("core/src")];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).into_iter().flatten().flatten().map(|e| e.path()));
        } else if let Ok(t) = std::fs::metadata(&path).and_then(|m| m.modified()) {
            assert!(
                t <= built,
                "{} is older than {}: run `cargo build --workspace` first",
                p.display(),
                path.display()
            );
        }
    }
    p
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub struct Server {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl Server {
    /// A server with the module (its timer on) and `settings` after it.
    pub fn start(settings: &[&str]) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let dir = root().join("target/tq-test-worker").join(format!(
                "{}-{}-{port}",
                std::process::id(),
                SEQ.fetch_add(1, Ordering::SeqCst)
            ));
            std::fs::create_dir_all(&dir).expect("create server dir");
            let child = Command::new(server_bin::server_bin(&root()))
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no"])
                .arg("--dir")
                .arg(&dir)
                .args(["--logfile", "redis.log"])
                .arg("--loadmodule")
                .arg(module_path())
                .args(settings)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server");
            let mut s = Server { child, port, dir };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = s.child.try_wait() {
                    break;
                }
                if let Ok(mut c) = s.try_conn() {
                    if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                        return s;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = s.child.kill();
            let _ = s.child.wait();
        }
        panic!("could not start redis-server");
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn try_conn(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url())?.get_connection_with_timeout(Duration::from_secs(5))
    }

    pub fn conn(&self) -> Conn {
        Conn(self.try_conn().expect("connect"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
            eprintln!("--- redis log {} ---\n{log}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

pub struct Conn(pub redis::Connection);

impl Conn {
    pub fn q(&mut self, args: &[&str]) -> Result<Value, String> {
        let mut cmd = redis::Cmd::new();
        for a in args {
            cmd.arg(*a);
        }
        cmd.query::<Value>(&mut self.0).map_err(|e| e.to_string())
    }

    pub fn ok(&mut self, args: &[&str]) -> Value {
        self.q(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    pub fn int(&mut self, args: &[&str]) -> i64 {
        match self.ok(args) {
            Value::Int(n) => n,
            Value::BulkString(b) => String::from_utf8_lossy(&b).parse().expect("integer"),
            Value::Nil => 0,
            other => panic!("not an integer: {other:?}"),
        }
    }

    pub fn strings(&mut self, args: &[&str]) -> Vec<String> {
        match self.ok(args) {
            Value::Array(items) => items
                .into_iter()
                .map(|v| match v {
                    Value::BulkString(b) => String::from_utf8(b).expect("utf8"),
                    other => panic!("not a string: {other:?}"),
                })
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    pub fn stat(&mut self, ns: &str, name: &str) -> i64 {
        self.int(&["GET", &format!("{ns}:stat:{name}")])
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

pub fn ns(name: &str) -> String {
    format!("w{}:{name}", SEQ.fetch_add(1, Ordering::SeqCst))
}

/// A TCP proxy in front of a server. `cut_after(cmd)`: the next time a
/// client sends `cmd`, the proxy forwards it, waits for the server's answer,
/// drops that answer and closes the client's connection.
pub struct Proxy {
    pub port: u16,
    armed: Arc<Mutex<Vec<(String, bool)>>>,
    pub cuts: Arc<AtomicUsize>,
    stalled: Arc<std::sync::atomic::AtomicBool>,
}

impl Proxy {
    pub fn start(server_port: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("addr").port();
        let armed: Arc<Mutex<Vec<(String, bool)>>> = Arc::default();
        let cuts = Arc::new(AtomicUsize::new(0));
        let stalled: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (a, k, st) = (armed.clone(), cuts.clone(), stalled.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else { continue };
                let (a, k, st) = (a.clone(), k.clone(), st.clone());
                std::thread::spawn(move || relay(client, server, a, k, st));
            }
        });
        Proxy { port, armed, cuts, stalled }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn cut_after(&self, command: &str) {
        self.armed.lock().expect("lock").push((command.to_string(), false));
    }

    /// The next time a client sends `command`, the proxy drops it unsent
    /// and closes the client's connection.
    pub fn cut_before(&self, command: &str) {
        self.armed.lock().expect("lock").push((command.to_string(), true));
    }

    /// While stalled, nothing is forwarded either way (held, not dropped):
    /// to clients, the server stops answering.
    pub fn stall(&self, on: bool) {
        self.stalled.store(on, Ordering::SeqCst);
    }
}

fn wait_unstalled(stalled: &std::sync::atomic::AtomicBool) {
    while stalled.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn relay(
    client: TcpStream,
    server: TcpStream,
    armed: Arc<Mutex<Vec<(String, bool)>>>,
    cuts: Arc<AtomicUsize>,
    stalled: Arc<std::sync::atomic::AtomicBool>,
) {
    let (Ok(mut c_in), Ok(mut s_out), Ok(mut s_in), Ok(mut c_out)) =
        (client.try_clone(), server.try_clone(), server.try_clone(), client.try_clone())
    else {
        return;
    };
    let cut_next = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = cut_next.clone();
    let st = stalled.clone();
    let dropped = cuts.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let chunk = &buf[..n];
            wait_unstalled(&st);
            {
                let mut armed = armed.lock().expect("lock");
                if let Some(i) = armed.iter().position(|(cmd, _)| {
                    let needle = format!("\r\n{cmd}\r\n");
                    chunk.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
                }) {
                    let (_, before) = armed.remove(i);
                    flag.store(true, Ordering::SeqCst);
                    if before {
                        // Never sent: the reader sees the connection end.
                        dropped.fetch_add(1, Ordering::SeqCst);
                        let _ = s_out.shutdown(Shutdown::Both);
                        break;
                    }
                }
            }
            if s_out.write_all(chunk).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Both);
    });
    let mut buf = [0u8; 65536];
    loop {
        let n = match s_in.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        wait_unstalled(&stalled);
        if cut_next.load(Ordering::SeqCst) {
            // The answer to the armed command (the client sends one command
            // at a time): lost.
            cuts.fetch_add(1, Ordering::SeqCst);
            break;
        }
        if c_out.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}
