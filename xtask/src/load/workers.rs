//! The load's worker threads (producers, flooders, consumers), their shared
//! counters and the handle that starts and stops them.

use std::collections::HashMap;
use std::fmt;
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::record::{self, Ack, Ledger};
use super::resp::{encode_command, xrange_args, Connection, ReadError, Reply};
use super::LoadConfig;

/// Pause before a worker reconnects after losing its connection.
const RECONNECT_PAUSE: Duration = Duration::from_millis(200);

/// Pause after an XADD was refused, so a full server is not spun on.
const REFUSED_PAUSE: Duration = Duration::from_millis(20);

/// How long a flooder waits for an unsolicited `-OOM` line before it sends
/// PING: a server that rejects at accept time writes before reading.
const GREETING_WAIT: Duration = Duration::from_millis(20);

/// How long a flooder waits for the close that follows a `-OOM` line.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Counters every worker adds to. One field per outcome; see [`Stats`].
#[derive(Debug, Default)]
struct Counters {
    acked: AtomicU64,
    acked_bytes: AtomicU64,
    refused_oom: AtomicU64,
    refused_other: AtomicU64,
    unknown: AtomicU64,
    producer_resets: AtomicU64,
    producer_eofs: AtomicU64,
    producer_timeouts: AtomicU64,
    connect_failures: AtomicU64,
    flood_attempts: AtomicU64,
    flood_pong: AtomicU64,
    flood_oom: AtomicU64,
    flood_resets: AtomicU64,
    flood_eofs: AtomicU64,
    flood_timeouts: AtomicU64,
    flood_other: AtomicU64,
    consumed: AtomicU64,
    consumer_errors: AtomicU64,
}

/// A copy of the load's counters at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// XADDs answered with an ID.
    pub acked: u64,
    /// Value bytes of those.
    pub acked_bytes: u64,
    /// XADDs (or first replies on a new connection) answered `-OOM`.
    pub refused_oom: u64,
    /// XADDs answered with another error.
    pub refused_other: u64,
    /// XADDs sent whose reply never came (timeout or closed connection).
    pub unknown: u64,
    /// Producer or consumer connections reset by the server.
    pub producer_resets: u64,
    /// Producer connections closed by the server without a reply.
    pub producer_eofs: u64,
    /// Producer reads or writes that timed out.
    pub producer_timeouts: u64,
    /// Producer or consumer connects that failed.
    pub connect_failures: u64,
    /// Connections a flooder opened (or tried to).
    pub flood_attempts: u64,
    /// Flood connections answered `+PONG`.
    pub flood_pong: u64,
    /// Flood connections answered with a `-OOM` line.
    pub flood_oom: u64,
    /// Flood connections reset (before or after a reply).
    pub flood_resets: u64,
    /// Flood connections closed without any reply.
    pub flood_eofs: u64,
    /// Flood connections that timed out waiting for a reply.
    pub flood_timeouts: u64,
    /// Flood connects that failed or got an unexpected reply.
    pub flood_other: u64,
    /// Entries read by consumers.
    pub consumed: u64,
    /// Consumer requests that failed.
    pub consumer_errors: u64,
}

impl Stats {
    /// Resets and unexplained closes seen by any worker; a server that sheds
    /// load cleanly has none.
    pub fn resets(&self) -> u64 {
        self.producer_resets + self.flood_resets + self.flood_eofs
    }

    /// One line on the connection floods.
    pub fn flood_summary(&self) -> String {
        format!(
            "floods: {} connections: +PONG {} -OOM {} reset {} eof {} timeout {} other {}",
            self.flood_attempts,
            self.flood_pong,
            self.flood_oom,
            self.flood_resets,
            self.flood_eofs,
            self.flood_timeouts,
            self.flood_other
        )
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "acked {} ({:.1} MiB) refused -OOM {} other {} unanswered {} | producer resets {} \
             eofs {} timeouts {} connect failures {} | flood +PONG {} -OOM {} | consumed {} \
             errors {}",
            self.acked,
            self.acked_bytes as f64 / (1024.0 * 1024.0),
            self.refused_oom,
            self.refused_other,
            self.unknown,
            self.producer_resets,
            self.producer_eofs,
            self.producer_timeouts,
            self.connect_failures,
            self.flood_pong,
            self.flood_oom,
            self.consumed,
            self.consumer_errors
        )
    }
}

/// What the workers share: configuration, the stop flag, counters, and a
/// handle on every open socket so `stop` can unblock them at once.
#[derive(Debug)]
struct Shared {
    config: LoadConfig,
    stop: AtomicBool,
    counters: Counters,
    sockets: Mutex<HashMap<u64, TcpStream>>,
    next_socket: AtomicU64,
    producers_running: AtomicUsize,
}

/// A connection registered with [`Shared::sockets`] until dropped.
struct Tracked<'a> {
    conn: Connection,
    shared: &'a Shared,
    token: u64,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        if let Ok(mut sockets) = self.shared.sockets.lock() {
            sockets.remove(&self.token);
        }
    }
}

impl Shared {
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Connects and registers the socket; `None` when the connect failed
    /// or the load is stopping.
    fn connect(&self, timeout: Duration) -> Option<Tracked<'_>> {
        let conn = Connection::connect(self.config.addr, timeout).ok()?;
        let token = self.next_socket.fetch_add(1, Ordering::Relaxed);
        if let (Ok(clone), Ok(mut sockets)) = (conn.try_clone_stream(), self.sockets.lock()) {
            sockets.insert(token, clone);
        }
        let tracked = Tracked {
            conn,
            shared: self,
            token,
        };
        // Checked after registering, so `stop` either sees the socket or
        // this sees the flag.
        (!self.stopping()).then_some(tracked)
    }

    fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a failed read on a producer or consumer connection, unless the
    /// failure was `stop` shutting the socket.
    fn count_read_error(&self, err: &ReadError) {
        if self.stopping() {
            return;
        }
        let c = &self.counters;
        let counter = match err {
            _ if err.is_reset() => &c.producer_resets,
            _ if err.is_timeout() => &c.producer_timeouts,
            ReadError::Eof => &c.producer_eofs,
            _ => &c.consumer_errors,
        };
        self.add(counter, 1);
    }
}

/// Starts and stops load workers; see the module docs.
#[derive(Debug)]
pub struct Generator {
    shared: Arc<Shared>,
    producers: Vec<JoinHandle<Ledger>>,
    others: Vec<JoinHandle<()>>,
}

impl Generator {
    /// A generator with no workers yet.
    pub fn new(config: LoadConfig) -> Self {
        Generator {
            shared: Arc::new(Shared {
                config,
                stop: AtomicBool::new(false),
                counters: Counters::default(),
                sockets: Mutex::new(HashMap::new()),
                next_socket: AtomicU64::new(0),
                producers_running: AtomicUsize::new(0),
            }),
            producers: Vec::new(),
            others: Vec::new(),
        }
    }

    /// Starts one more producer.
    pub fn add_producer(&mut self) {
        let shared = Arc::clone(&self.shared);
        let id = self.producers.len() as u64;
        shared.producers_running.fetch_add(1, Ordering::Relaxed);
        self.producers.push(thread::spawn(move || {
            let ledger = produce(&shared, id);
            shared.producers_running.fetch_sub(1, Ordering::Relaxed);
            ledger
        }));
    }

    /// Starts one more flooder.
    pub fn add_flooder(&mut self) {
        let shared = Arc::clone(&self.shared);
        self.others.push(thread::spawn(move || flood(&shared)));
    }

    /// Starts one more consumer.
    pub fn add_consumer(&mut self) {
        let shared = Arc::clone(&self.shared);
        self.others.push(thread::spawn(move || consume(&shared)));
    }

    /// How many producers are started.
    pub fn producers(&self) -> usize {
        self.producers.len()
    }

    /// How many producers have not yet finished their records.
    pub fn producers_running(&self) -> usize {
        self.shared.producers_running.load(Ordering::Relaxed)
    }

    /// The counters now.
    pub fn stats(&self) -> Stats {
        let c = &self.shared.counters;
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        Stats {
            acked: get(&c.acked),
            acked_bytes: get(&c.acked_bytes),
            refused_oom: get(&c.refused_oom),
            refused_other: get(&c.refused_other),
            unknown: get(&c.unknown),
            producer_resets: get(&c.producer_resets),
            producer_eofs: get(&c.producer_eofs),
            producer_timeouts: get(&c.producer_timeouts),
            connect_failures: get(&c.connect_failures),
            flood_attempts: get(&c.flood_attempts),
            flood_pong: get(&c.flood_pong),
            flood_oom: get(&c.flood_oom),
            flood_resets: get(&c.flood_resets),
            flood_eofs: get(&c.flood_eofs),
            flood_timeouts: get(&c.flood_timeouts),
            flood_other: get(&c.flood_other),
            consumed: get(&c.consumed),
            consumer_errors: get(&c.consumer_errors),
        }
    }

    /// Stops every worker, shutting their sockets so none waits out a
    /// timeout, and returns the producers' acknowledged records.
    pub fn stop(&mut self) -> Ledger {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Ok(sockets) = self.shared.sockets.lock() {
            for socket in sockets.values() {
                // Already closed sockets need nothing more.
                let _ = socket.shutdown(Shutdown::Both);
            }
        }
        let mut ledger = Ledger {
            value_bytes: self.shared.config.value_bytes,
            ..Ledger::default()
        };
        for handle in self.producers.drain(..) {
            if let Ok(part) = handle.join() {
                ledger.merge(part);
            }
        }
        for handle in self.others.drain(..) {
            // A worker that panicked has nothing left to hand back.
            let _ = handle.join();
        }
        ledger
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if !self.producers.is_empty() || !self.others.is_empty() {
            self.stop();
        }
    }
}

/// One producer: pipelined XADD batches until stopped or out of records.
fn produce(shared: &Shared, producer: u64) -> Ledger {
    let config = &shared.config;
    let counters = &shared.counters;
    let mut ledger = Ledger::default();
    let limit = config.records_per_producer.unwrap_or(u64::MAX);
    let keys: Vec<String> = (0..config.streams).map(|i| config.key(i)).collect();
    let producer_text = producer.to_string();
    let values = record::Values::new(config.value_bytes);
    let mut conn: Option<Tracked<'_>> = None;
    let mut seq = 0u64;
    let mut encoded = Vec::new();
    let mut batch = Vec::new();
    while !shared.stopping() && seq < limit {
        // Connect when needed.
        let Some(tracked) = conn.as_mut() else {
            conn = shared.connect(config.io_timeout);
            if conn.is_none() && !shared.stopping() {
                shared.add(&counters.connect_failures, 1);
                thread::sleep(RECONNECT_PAUSE);
            }
            continue;
        };

        // Encode one batch; every sequence number is used once, answered
        // or not.
        let depth = (config.pipeline_depth as u64).min(limit - seq);
        encoded.clear();
        batch.clear();
        for s in seq..seq + depth {
            let key = &keys[((producer + s) % keys.len() as u64) as usize];
            let value = values.get(producer, s);
            let seq_text = s.to_string();
            let args: [&[u8]; 9] = [
                b"XADD",
                key.as_bytes(),
                b"*",
                b"p",
                producer_text.as_bytes(),
                b"s",
                seq_text.as_bytes(),
                b"v",
                &value,
            ];
            encode_command(&args, &mut encoded);
            batch.push((key, s, record::checksum(&value)));
        }
        seq += depth;

        // Send it and collect the replies in order.
        if let Err(err) = tracked.conn.send(&encoded) {
            shared.count_read_error(&ReadError::Io(err));
            shared.add(&counters.unknown, depth);
            conn = None;
            thread::sleep(RECONNECT_PAUSE);
            continue;
        }
        let mut refused = false;
        for (answered, (key, s, sum)) in batch.iter().enumerate() {
            match tracked.conn.read_reply() {
                Ok(Reply::Bulk(id)) => {
                    let id = String::from_utf8_lossy(&id).into_owned();
                    ledger.acks.entry((*key).clone()).or_default().push(Ack {
                        id,
                        producer,
                        seq: *s,
                    });
                    ledger.checksum = ledger.checksum.wrapping_add(*sum);
                    shared.add(&counters.acked, 1);
                    shared.add(&counters.acked_bytes, config.value_bytes as u64);
                }
                Ok(Reply::Error(text)) if text.starts_with("OOM") => {
                    shared.add(&counters.refused_oom, 1);
                    refused = true;
                }
                Ok(_) => {
                    shared.add(&counters.refused_other, 1);
                    refused = true;
                }
                Err(err) => {
                    shared.count_read_error(&err);
                    shared.add(&counters.unknown, (batch.len() - answered) as u64);
                    conn = None;
                    thread::sleep(RECONNECT_PAUSE);
                    break;
                }
            }
        }
        if refused {
            thread::sleep(REFUSED_PAUSE);
        }
    }
    ledger
}

/// How one flood connection ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FloodOutcome {
    Pong,
    Oom,
    Reset,
    Eof,
    Timeout,
    Other,
}

/// One flooder: new connection after new connection, each sorted into an
/// outcome.
fn flood(shared: &Shared) {
    let counters = &shared.counters;
    let mut held = Vec::new();
    while !shared.stopping() {
        shared.add(&counters.flood_attempts, 1);
        let outcome = match shared.connect(shared.config.io_timeout) {
            Some(mut tracked) => {
                let outcome = probe(&mut tracked.conn, shared.config.io_timeout);
                if outcome == FloodOutcome::Pong && held.len() < shared.config.flood_hold {
                    held.push(tracked);
                }
                outcome
            }
            None => FloodOutcome::Other,
        };
        if shared.stopping() {
            break;
        }
        let counter = match outcome {
            FloodOutcome::Pong => &counters.flood_pong,
            FloodOutcome::Oom => &counters.flood_oom,
            FloodOutcome::Reset => &counters.flood_resets,
            FloodOutcome::Eof => &counters.flood_eofs,
            FloodOutcome::Timeout => &counters.flood_timeouts,
            FloodOutcome::Other => &counters.flood_other,
        };
        shared.add(counter, 1);
        thread::sleep(shared.config.flood_interval);
    }
}

/// Waits briefly for an unsolicited reply, then sends PING.
fn probe(conn: &mut Connection, timeout: Duration) -> FloodOutcome {
    if conn.set_read_timeout(GREETING_WAIT).is_err() {
        return FloodOutcome::Other;
    }
    let reply = match conn.read_reply() {
        Err(err) if err.is_timeout() => {
            if conn.set_read_timeout(timeout).is_err() {
                return FloodOutcome::Other;
            }
            conn.call(&[b"PING"])
        }
        other => other,
    };
    match reply {
        Ok(Reply::Simple(text)) if text == "PONG" => FloodOutcome::Pong,
        Ok(Reply::Error(text)) if text.starts_with("OOM") => {
            // A clean rejection closes the connection after the line.
            let _ = conn.set_read_timeout(CLOSE_WAIT);
            match conn.read_reply() {
                Err(err) if err.is_reset() => FloodOutcome::Reset,
                _ => FloodOutcome::Oom,
            }
        }
        Ok(_) => FloodOutcome::Other,
        Err(err) if err.is_reset() => FloodOutcome::Reset,
        Err(err) if err.is_timeout() => FloodOutcome::Timeout,
        Err(ReadError::Eof) => FloodOutcome::Eof,
        Err(_) => FloodOutcome::Other,
    }
}

/// One consumer: pages through every stream with XRANGE, over and over.
fn consume(shared: &Shared) {
    let config = &shared.config;
    let count = config.range_count.to_string();
    let mut conn: Option<Tracked<'_>> = None;
    let mut pass = 0usize;
    while !shared.stopping() {
        let Some(tracked) = conn.as_mut() else {
            conn = shared.connect(config.io_timeout);
            if conn.is_none() && !shared.stopping() {
                shared.add(&shared.counters.connect_failures, 1);
                thread::sleep(RECONNECT_PAUSE);
            }
            continue;
        };
        let key = config.key(pass % config.streams);
        pass += 1;
        let mut start = "-".to_string();
        while !shared.stopping() {
            let args = xrange_args(&key, &start, &count);
            let batch = match tracked.conn.call(&args) {
                Ok(reply) => record::entries(reply),
                Err(err) => {
                    shared.count_read_error(&err);
                    conn = None;
                    break;
                }
            };
            let next = batch.and_then(|batch| match batch.last() {
                Some(last) => {
                    shared.add(&shared.counters.consumed, batch.len() as u64);
                    record::next_id(&last.id).map(Some)
                }
                None => Ok(None),
            });
            match next {
                Ok(Some(next)) => start = next,
                Ok(None) => break,
                Err(_) => {
                    shared.add(&shared.counters.consumer_errors, 1);
                    thread::sleep(RECONNECT_PAUSE);
                    break;
                }
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
}
