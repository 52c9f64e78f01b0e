//! A fault-injecting TCP proxy for tests (used by `tests/lost_replies.rs`, by
//! `client/tests/lost_replies.rs` and `tq-fault-proxy`): it listens on a free loopback port, forwards
//! to a Redis server, and parses RESP enough to know where each request and
//! each reply ends. For TQ.* commands it can, at random (seeded) or once on
//! command:
//! - lose the reply: forward the request, read the server's whole reply (the
//!   command was applied), drop it and close the client's connection;
//! - drop the request: close the client's connection without forwarding it;
//! - close after the reply: forward the reply, then close the connection
//!   (only a reconnect, unless the client had pipelined more).
//!
//! Every client (the Rust library, `tq work`, ioredis, redis-py) then sees a
//! connection that ended with a command unanswered, and resends it or not as
//! it would in production. The proxy counts what it forwarded and what it
//! dropped, so a test can assert how many replies were lost.
//!
//! The seed comes from `TQ_FAULT_SEED` if set, else from the clock, and is
//! printed; each connection draws from its own stream (seed, connection
//! number), so a replay repeats each connection's decisions for the same
//! sequence of commands (timing across connections can still differ).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Probabilities of each fault, per TQ.* command (0.0 ..= 1.0).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// The command is applied, its reply dropped and the connection closed.
    pub lose_reply: f64,
    /// The command is dropped unsent and the connection closed.
    pub drop_request: f64,
    /// The reply is forwarded, then the connection closed.
    pub close_after_reply: f64,
}

/// What the proxy did with TQ.* commands (other commands are not counted).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub connections: u64,
    pub requests: u64,
    pub requests_dropped: u64,
    pub replies_forwarded: u64,
    pub replies_lost: u64,
    /// Replies forwarded (counted in `replies_forwarded`), then the connection closed.
    pub closed_after_reply: u64,
}

impl Counts {
    /// Lost replies over the replies the server gave to TQ.* commands.
    pub fn lost_ratio(&self) -> f64 {
        let all = self.replies_forwarded + self.replies_lost;
        if all == 0 {
            0.0
        } else {
            self.replies_lost as f64 / all as f64
        }
    }
}

type Matcher = Box<dyn Fn(&[Vec<u8>]) -> bool + Send>;

#[derive(Default)]
struct Shared {
    faults: Mutex<Faults>,
    /// One-shot faults armed by the test: (matcher, lose the reply?).
    armed: Mutex<Vec<(Matcher, bool)>>,
    connections: AtomicU64,
    requests: AtomicU64,
    requests_dropped: AtomicU64,
    replies_forwarded: AtomicU64,
    replies_lost: AtomicU64,
    closed_after_reply: AtomicU64,
}

pub struct FaultProxy {
    pub port: u16,
    pub seed: u64,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// A proxy on a free loopback port to `127.0.0.1:<server_port>`,
    /// injecting `faults` at random.
    pub fn start(server_port: u16, faults: Faults) -> FaultProxy {
        FaultProxy::start_on(0, server_port, faults)
    }

    /// The same on loopback port `listen` (0: a free one).
    pub fn start_on(listen: u16, server_port: u16, faults: Faults) -> FaultProxy {
        let seed = match std::env::var("TQ_FAULT_SEED") {
            Ok(s) => s.trim().parse().expect("TQ_FAULT_SEED must be an unsigned integer"),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1),
        };
        eprintln!("fault proxy: seed {seed} (replay with TQ_FAULT_SEED={seed}), faults {faults:?}");
        let listener = TcpListener::bind(("127.0.0.1", listen)).expect("bind the proxy on loopback");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared { faults: Mutex::new(faults), ..Shared::default() });
        let sh = shared.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else { continue };
                let n = sh.connections.fetch_add(1, Ordering::SeqCst);
                let rng = Rng(seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                let sh = sh.clone();
                std::thread::spawn(move || relay(client, server, sh, rng));
            }
        });
        FaultProxy { port, seed, shared }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Changes the random faults (e.g. none while a test sets up).
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("lock") = faults;
    }

    /// The next TQ.* command for which `matches(args)` holds is applied, its
    /// reply lost and the client's connection closed.
    pub fn lose_reply_of(&self, matches: impl Fn(&[Vec<u8>]) -> bool + Send + 'static) {
        self.shared.armed.lock().expect("lock").push((Box::new(matches), true));
    }

    /// The next TQ.* command for which `matches(args)` holds is dropped
    /// unsent and the client's connection closed.
    pub fn drop_request_of(&self, matches: impl Fn(&[Vec<u8>]) -> bool + Send + 'static) {
        self.shared.armed.lock().expect("lock").push((Box::new(matches), false));
    }

    pub fn counts(&self) -> Counts {
        let s = &self.shared;
        Counts {
            connections: s.connections.load(Ordering::SeqCst),
            requests: s.requests.load(Ordering::SeqCst),
            requests_dropped: s.requests_dropped.load(Ordering::SeqCst),
            replies_forwarded: s.replies_forwarded.load(Ordering::SeqCst),
            replies_lost: s.replies_lost.load(Ordering::SeqCst),
            closed_after_reply: s.closed_after_reply.load(Ordering::SeqCst),
        }
    }
}

/// `args[0]` is `name` and some later argument is `word` (both ASCII, any case).
pub fn command_with(name: &'static str, word: &'static str) -> impl Fn(&[Vec<u8>]) -> bool + Send + 'static {
    move |args| {
        args.first().is_some_and(|a| a.eq_ignore_ascii_case(name.as_bytes()))
            && args.iter().skip(1).any(|a| a.eq_ignore_ascii_case(word.as_bytes()))
    }
}

/// splitmix64: small, seedable, good enough to pick faults.
struct Rng(u64);

impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    fn hit(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

fn is_tq(args: &[Vec<u8>]) -> bool {
    args.first().is_some_and(|a| a.len() > 3 && a[..3].eq_ignore_ascii_case(b"TQ."))
}

/// What the server-side reader must do with the reply to a forwarded request.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not a TQ.* command: forward, uncounted.
    Plain,
    Forward,
    /// Forward, then close the connection.
    ForwardAndClose,
    Lose,
}

fn relay(client: TcpStream, server: TcpStream, shared: Arc<Shared>, mut rng: Rng) {
    let (Ok(mut c_in), Ok(mut s_out), Ok(mut s_in), Ok(mut c_out)) =
        (client.try_clone(), server.try_clone(), server.try_clone(), client.try_clone())
    else {
        return;
    };
    // Fates of the requests forwarded and not yet answered, in order (Redis
    // answers in order; no pub/sub or RESP3 pushes go through this proxy).
    let pending: Arc<Mutex<VecDeque<Fate>>> = Arc::default();
    let fates = pending.clone();
    let sh = shared.clone();
    let (close_c, close_s) = (client.try_clone(), server.try_clone());
    std::thread::spawn(move || {
        let mut buf: Vec<u8> = Vec::new();
        let mut chunk = [0u8; 65536];
        'read: loop {
            let n = match c_in.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                let (len, args) = match parse_request(&buf) {
                    Ok(Some(r)) => r,
                    Ok(None) => break,
                    Err(()) => break 'read,
                };
                let mut fate = Fate::Plain;
                if is_tq(&args) {
                    sh.requests.fetch_add(1, Ordering::SeqCst);
                    let faults = *sh.faults.lock().expect("lock");
                    let mut armed = sh.armed.lock().expect("lock");
                    let hit = armed.iter().position(|(m, _)| m(&args)).map(|i| armed.remove(i).1);
                    drop(armed);
                    let drop_it = hit == Some(false) || (hit.is_none() && rng.hit(faults.drop_request));
                    if drop_it {
                        sh.requests_dropped.fetch_add(1, Ordering::SeqCst);
                        break 'read;
                    }
                    fate = if hit == Some(true) || rng.hit(faults.lose_reply) {
                        Fate::Lose
                    } else if rng.hit(faults.close_after_reply) {
                        Fate::ForwardAndClose
                    } else {
                        Fate::Forward
                    };
                }
                // Queued before it is sent, so the reply always finds it.
                fates.lock().expect("lock").push_back(fate);
                if s_out.write_all(&buf[..len]).is_err() {
                    break 'read;
                }
                buf.drain(..len);
            }
        }
        // Ends both directions: the server-side reader stops too.
        if let Ok(c) = close_c {
            let _ = c.shutdown(Shutdown::Both);
        }
        if let Ok(s) = close_s {
            let _ = s.shutdown(Shutdown::Both);
        }
    });
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 65536];
    'read: loop {
        let n = match s_in.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        loop {
            let len = match value_len(&buf, 0) {
                Ok(Some(end)) => end,
                Ok(None) => break,
                Err(()) => break 'read,
            };
            let fate = pending.lock().expect("lock").pop_front().unwrap_or(Fate::Plain);
            match fate {
                Fate::Lose => {
                    shared.replies_lost.fetch_add(1, Ordering::SeqCst);
                    break 'read;
                }
                Fate::Forward | Fate::ForwardAndClose => {
                    shared.replies_forwarded.fetch_add(1, Ordering::SeqCst);
                }
                Fate::Plain => {}
            }
            if c_out.write_all(&buf[..len]).is_err() {
                break 'read;
            }
            buf.drain(..len);
            if fate == Fate::ForwardAndClose {
                shared.closed_after_reply.fetch_add(1, Ordering::SeqCst);
                break 'read;
            }
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

/// The end of the CRLF-terminated line starting at `at` (index after LF).
fn line_end(buf: &[u8], at: usize) -> Option<(usize, usize)> {
    let rest = buf.get(at..)?;
    let i = rest.windows(2).position(|w| w == b"\r\n")?;
    Some((at + i, at + i + 2))
}

fn number(bytes: &[u8]) -> Result<i64, ()> {
    std::str::from_utf8(bytes).map_err(|_| ())?.parse().map_err(|_| ())
}

/// A request's length in bytes and its arguments.
type Request = (usize, Vec<Vec<u8>>);

/// One complete request at the start of `buf`: its length and arguments;
/// None while incomplete, Err on bytes that are not a request.
fn parse_request(buf: &[u8]) -> Result<Option<Request>, ()> {
    let Some(&first) = buf.first() else { return Ok(None) };
    let Some((eol, mut at)) = line_end(buf, 0) else { return Ok(None) };
    if first != b'*' {
        // Inline command: words on one line.
        let args = buf[..eol].split(|b| *b == b' ').filter(|w| !w.is_empty()).map(<[u8]>::to_vec).collect();
        return Ok(Some((at, args)));
    }
    let n = number(&buf[1..eol])?;
    let mut args = Vec::new();
    for _ in 0..n.max(0) {
        let Some((eol, body)) = line_end(buf, at) else { return Ok(None) };
        if buf.get(at) != Some(&b'$') {
            return Err(());
        }
        let len = usize::try_from(number(&buf[at + 1..eol])?).map_err(|_| ())?;
        if buf.len() < body + len + 2 {
            return Ok(None);
        }
        args.push(buf[body..body + len].to_vec());
        at = body + len + 2;
    }
    Ok(Some((at, args)))
}

/// The end of the RESP2/RESP3 value starting at `at`; None while incomplete.
fn value_len(buf: &[u8], at: usize) -> Result<Option<usize>, ()> {
    let Some(&kind) = buf.get(at) else { return Ok(None) };
    let Some((eol, next)) = line_end(buf, at) else { return Ok(None) };
    let head = &buf[at + 1..eol];
    match kind {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Ok(Some(next)),
        b'$' | b'!' | b'=' => {
            let len = number(head)?;
            if len < 0 {
                return Ok(Some(next));
            }
            let end = next + usize::try_from(len).map_err(|_| ())? + 2;
            Ok((buf.len() >= end).then_some(end))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(head)?;
            let items = if matches!(kind, b'%' | b'|') { n.max(0) * 2 } else { n.max(0) };
            let mut end = next;
            for _ in 0..items {
                match value_len(buf, end)? {
                    Some(e) => end = e,
                    None => return Ok(None),
                }
            }
            Ok(Some(end))
        }
        _ => Err(()),
    }
}
