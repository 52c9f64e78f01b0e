//! A TCP proxy that can cut a connection right after the server answered a
//! chosen command, so that the reply is lost although the command was
//! applied (or before it is sent), or stall it.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
