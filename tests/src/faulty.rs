//! A faulty network between phones and a server: an HTTP proxy on 127.0.0.1 that, for each
//! request and from a seeded random stream, passes it, delays it, drops it, loses its answer
//! after the server acted on it, cuts the request or the answer short mid-body, or delivers it
//! to the server twice.
//!
//! One request per connection: the proxy asks the server to close after answering (so the
//! answer ends where the server's connection does) and passes the server's `connection: close`
//! on, so the phone opens a new connection for its next request.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

/// Largest request head read; a phone's are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

/// What happens to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Delivered, and its answer too.
    Pass,
    /// Held 50–400 ms, then passed.
    Delay,
    /// Never reaches the server; the phone's connection is closed.
    DropRequest,
    /// The server acts on it, but its answer is lost.
    DropAnswer,
    /// The server gets the head and part of the body, then the connection closes.
    CutRequest,
    /// The phone gets the answer's head and part of its body, then the connection closes.
    CutAnswer,
    /// The server gets it twice (a retransmission); the phone gets the second answer.
    Twice,
}

/// Every fault, each as likely as the others.
pub const FAULTS: [Fault; 7] = [
    Fault::Pass,
    Fault::Delay,
    Fault::DropRequest,
    Fault::DropAnswer,
    Fault::CutRequest,
    Fault::CutAnswer,
    Fault::Twice,
];

/// A running proxy; it lives as long as the test.
pub struct FaultyProxy {
    /// `http://127.0.0.1:PORT` of the proxy.
    pub base: String,
    faulty: Arc<AtomicBool>,
    /// Faults for the next connections, in order, before the random or sound link.
    scripted: Arc<Mutex<VecDeque<Fault>>>,
    counts: Arc<[AtomicU64; FAULTS.len()]>,
}

impl FaultyProxy {
    /// Starts proxying to `target` (`http://HOST:PORT`), faulty at once. Connection `n` draws its
    /// fault from a stream seeded with `seed + n`.
    pub fn start(target: &str, seed: u64) -> FaultyProxy {
        let target = target
            .strip_prefix("http://")
            .expect("an http:// address")
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let proxy = FaultyProxy {
            base: format!("http://{}", listener.local_addr().expect("address")),
            faulty: Arc::new(AtomicBool::new(true)),
            scripted: Arc::default(),
            counts: Arc::new(Default::default()),
        };
        let (faulty, scripted, counts) = (
            proxy.faulty.clone(),
            proxy.scripted.clone(),
            proxy.counts.clone(),
        );
        std::thread::spawn(move || {
            for (n, phone) in listener.incoming().enumerate() {
                let Ok(phone) = phone else { continue };
                let mut rng = ChaCha8Rng::seed_from_u64(seed.wrapping_add(n as u64));
                let next = scripted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop_front();
                let fault = if let Some(fault) = next {
                    fault
                } else if faulty.load(Ordering::SeqCst) {
                    FAULTS[rng.random_range(0..FAULTS.len())]
                } else {
                    Fault::Pass
                };
                let (target, counts) = (target.clone(), counts.clone());
                std::thread::spawn(move || {
                    // A phone that hung up, or a server that failed, is the phone's to retry.
                    if serve(phone, &target, fault, &mut rng).is_ok() {
                        counts[fault as usize].fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        proxy
    }

    /// Faulty or a sound link from the next connection on.
    pub fn set_faulty(&self, faulty: bool) {
        self.faulty.store(faulty, Ordering::SeqCst);
    }

    /// The next connections meet `faults`, one each in order; then the link is as before.
    pub fn script(&self, faults: &[Fault]) {
        self.scripted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(faults);
    }

    /// How many requests each fault hit (in [`FAULTS`] order).
    pub fn counts(&self) -> Vec<(Fault, u64)> {
        FAULTS
            .iter()
            .map(|f| (*f, self.counts[*f as usize].load(Ordering::SeqCst)))
            .collect()
    }
}

/// Reads the phone's request, does `fault` to it, and closes the phone's connection.
fn serve(mut phone: TcpStream, target: &str, fault: Fault, rng: &mut ChaCha8Rng) -> io::Result<()> {
    phone.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = read_request(&mut phone)?;
    match fault {
        Fault::Pass => phone.write_all(&exchange(target, &request)?)?,
        Fault::Delay => {
            std::thread::sleep(Duration::from_millis(rng.random_range(50..400)));
            phone.write_all(&exchange(target, &request)?)?;
        }
        Fault::DropRequest => {}
        Fault::DropAnswer => {
            exchange(target, &request)?;
        }
        Fault::CutRequest => {
            let cut = cut_point(rng, &request);
            let mut server = TcpStream::connect(target)?;
            server.write_all(&request[..cut])?;
            server.shutdown(Shutdown::Both)?;
        }
        Fault::CutAnswer => {
            let answer = exchange(target, &request)?;
            phone.write_all(&answer[..cut_point(rng, &answer)])?;
        }
        Fault::Twice => {
            exchange(target, &request)?;
            phone.write_all(&exchange(target, &request)?)?;
        }
    }
    phone.shutdown(Shutdown::Both)
}

/// Where to cut an HTTP message short: within its body, or within its head when it has none.
fn cut_point(rng: &mut ChaCha8Rng, message: &[u8]) -> usize {
    match find(message, b"\r\n\r\n") {
        Some(i) if i + 4 < message.len() => rng.random_range(i + 4..message.len()),
        _ => rng.random_range(0..message.len().max(1)),
    }
}

/// Reads one request (the head, then `content-length` bytes of body) and answers it as it is
/// forwarded: asking the server to close after answering.
fn read_request(phone: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let head_end = loop {
        if let Some(i) = find(&bytes, b"\r\n\r\n") {
            break i + 4;
        }
        if bytes.len() > MAX_HEAD {
            return Err(io::Error::other("request head too long"));
        }
        let n = phone.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let mut lines: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.is_empty() && !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let length: usize = lines
        .iter()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut body = bytes.split_off(head_end);
    while body.len() < length {
        let n = phone.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        body.extend_from_slice(&buf[..n]);
    }
    lines.push("connection: close");
    let mut bytes = lines.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

/// Sends `request` to the server on a new connection and reads the answer to its end.
fn exchange(target: &str, request: &[u8]) -> io::Result<Vec<u8>> {
    let mut server = TcpStream::connect(target)?;
    server.set_read_timeout(Some(Duration::from_secs(30)))?;
    server.write_all(request)?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer)?;
    Ok(answer)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
