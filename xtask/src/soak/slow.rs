//! Slow consumers: XRANGE with COUNT, then the reply read a small chunk at a
//! time with a pause between chunks, so the server holds replies that its
//! client drains slowly.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::load::record::{entries, next_id};
use crate::load::resp::{encode_command, parse_reply, xrange_args, Reply};

/// Bytes read from the socket at a time.
const CHUNK_BYTES: usize = 64 * 1024;

/// Pause between two chunks: 64 KiB per 10 ms is at most about 6 MiB/s.
const CHUNK_PAUSE: Duration = Duration::from_millis(10);

/// Pause before reconnecting after an error or a refused connection.
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// What slow consumers saw.
#[derive(Debug, Default)]
pub(crate) struct SlowCounts {
    /// Entries read.
    pub(crate) entries: AtomicU64,
    /// Connections answered `-OOM`.
    pub(crate) oom: AtomicU64,
    /// Failed requests (I/O errors, other error replies).
    pub(crate) errors: AtomicU64,
}

/// Slow consumer threads; stopped when dropped.
#[derive(Debug)]
pub(crate) struct SlowConsumers {
    stop: Arc<AtomicBool>,
    counts: Arc<SlowCounts>,
    handles: Vec<JoinHandle<()>>,
}

impl SlowConsumers {
    /// Starts `n` consumers paging through `keys` on `addr`, `count`
    /// entries per XRANGE.
    pub(crate) fn start(addr: SocketAddr, keys: &[String], n: usize, count: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(SlowCounts::default());
        let handles = (0..n)
            .map(|i| {
                let (stop, counts) = (Arc::clone(&stop), Arc::clone(&counts));
                let key = keys[i % keys.len()].clone();
                thread::spawn(move || consume(addr, &key, count, &stop, &counts))
            })
            .collect();
        SlowConsumers {
            stop,
            counts,
            handles,
        }
    }

    /// `(entries, -OOM, errors)` so far.
    pub(crate) fn counts(&self) -> (u64, u64, u64) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        (
            get(&self.counts.entries),
            get(&self.counts.oom),
            get(&self.counts.errors),
        )
    }

    /// Stops every consumer (each notices within a read timeout).
    pub(crate) fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            // A consumer that panicked has nothing left to hand back.
            let _ = handle.join();
        }
    }
}

impl Drop for SlowConsumers {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One consumer: pages from the start of `key` to its end, over and over.
fn consume(addr: SocketAddr, key: &str, count: usize, stop: &AtomicBool, counts: &SlowCounts) {
    let count = count.to_string();
    let mut start = "-".to_string();
    let mut stream: Option<TcpStream> = None;
    while !stop.load(Ordering::Relaxed) {
        let Some(conn) = stream.as_mut() else {
            stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok();
            if let Some(conn) = &stream {
                let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
            } else {
                thread::sleep(RETRY_PAUSE);
            }
            continue;
        };
        let mut request = Vec::new();
        let args = xrange_args(key, &start, &count);
        encode_command(&args, &mut request);
        let reply = conn
            .write_all(&request)
            .ok()
            .and_then(|()| read_slowly(conn, stop));
        let next = match reply {
            Some(Reply::Error(text)) if text.starts_with("OOM") => {
                counts.oom.fetch_add(1, Ordering::Relaxed);
                None
            }
            Some(reply) => match entries(reply) {
                Ok(batch) => {
                    counts
                        .entries
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    match batch.last() {
                        Some(last) => next_id(&last.id).ok(),
                        None => Some("-".to_string()),
                    }
                }
                Err(_) => None,
            },
            None => None,
        };
        match next {
            Some(next) => start = next,
            None => {
                if !stop.load(Ordering::Relaxed) {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
                stream = None;
                thread::sleep(RETRY_PAUSE);
            }
        }
    }
}

/// Reads one reply a chunk at a time; `None` on an error, a close or stop.
fn read_slowly(conn: &mut TcpStream, stop: &AtomicBool) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; CHUNK_BYTES];
    while !stop.load(Ordering::Relaxed) {
        match conn.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => continue,
            Err(_) => return None,
        }
        match parse_reply(&buf) {
            Ok(Some((reply, _))) => return Some(reply),
            Ok(None) => thread::sleep(CHUNK_PAUSE),
            Err(_) => return None,
        }
    }
    None
}
