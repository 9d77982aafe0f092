//! What the end-to-end tests share: a temporary directory of their own, the
//! real `streamlet` binary on a free loopback port behind a guard that kills
//! it, and small client helpers.
//!
//! Every test file compiles this module on its own and uses a part of it.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// Read and write timeout of every client socket, so no test hangs.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Environment variables that would change a server's configuration.
const CONFIG_ENV: &[&str] = &[
    "STREAMLET_LISTEN",
    "STREAMLET_METRICS_LISTEN",
    "STREAMLET_DATA_DIR",
    "STREAMLET_SEGMENT_CACHE",
    "STREAMLET_INDEX_CACHE",
    "STREAMLET_FSYNC",
    "STREAMLET_PRESSURE_RESPONSES",
    "MEMPRESSURE_MEMORY_LIMIT",
    "MEMPRESSURE_MEMORY_WARNING_THRESHOLD",
    "MEMPRESSURE_MEMORY_CRITICAL_THRESHOLD",
    "MEMPRESSURE_MEMORY_TICK_MS",
    "MEMPRESSURE_MEMORY_HYSTERESIS",
    "MEMPRESSURE_MEMORY_MIN_DWELL_MS",
    "MEMPRESSURE_METRICS_PREFIX",
];

/// A directory under the system's temporary directory, removed on drop.
///
/// Holds the server's data directory (`data/`) and its logs.
#[derive(Debug)]
pub struct TestDir {
    root: PathBuf,
}

impl TestDir {
    /// Creates a fresh directory whose name starts with `name`.
    pub fn new(name: &str) -> TestDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let unique = format!(
            "streamlet-e2e-{name}-{}-{nanos}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let root = std::env::temp_dir().join(unique);
        fs::create_dir_all(&root).expect("create the test directory");
        TestDir { root }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// The directory itself.
    pub fn path(&self) -> &Path {
        &self.root
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// A running `streamlet`, killed (SIGKILL) and reaped on drop, so a failing
/// test never leaves a server behind.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    port: u16,
    log_path: PathBuf,
}

impl Server {
    /// Starts the binary on a free loopback port with `dir`'s data
    /// directory, metrics off, and `args` (a `--memory-limit` of 1 GiB unless
    /// `args` names one); waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When the server does not start or answer in time.
    pub fn start(dir: &TestDir, args: &[&str]) -> Server {
        let mut last_log = String::new();
        // A free port may be taken between the probe and the bind: retry.
        for attempt in 0..3 {
            let port = free_port();
            let log_path = dir.path().join(format!("server-{port}-{attempt}.log"));
            let log = File::create(&log_path).expect("create the server log");
            let mut command = Command::new(env!("CARGO_BIN_EXE_streamlet"));
            for var in CONFIG_ENV {
                command.env_remove(var);
            }
            command
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--metrics-listen")
                .arg("off")
                .arg("--data-dir")
                .arg(dir.data_dir());
            if !args.contains(&"--memory-limit") {
                command.args(["--memory-limit", "1GiB"]);
            }
            command
                .args(args)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log);
            let child = command.spawn().expect("spawn streamlet");
            let mut server = Server {
                child: Some(child),
                port,
                log_path,
            };
            if server.wait_ready() {
                return server;
            }
            last_log = server.log();
            server.kill();
        }
        panic!("streamlet did not start; its log:\n{last_log}");
    }

    /// Polls until `PING` is answered, or the process exits, or time is up.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    return false;
                }
            }
            if raw_ping(self.addr()).is_ok() {
                return true;
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server's process ID.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// A `redis` client connection with read and write timeouts.
    pub fn client(&self) -> redis::Connection {
        let url = format!("redis://127.0.0.1:{}/", self.port);
        let client = redis::Client::open(url).expect("a valid redis URL");
        let conn = client
            .get_connection_with_timeout(IO_TIMEOUT)
            .expect("connect to streamlet");
        conn.set_read_timeout(Some(IO_TIMEOUT))
            .expect("set the read timeout");
        conn.set_write_timeout(Some(IO_TIMEOUT))
            .expect("set the write timeout");
        conn
    }

    /// A raw socket with read and write timeouts.
    pub fn raw(&self) -> TcpStream {
        raw_connect(self.addr()).expect("connect to streamlet")
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // `Child::kill` sends SIGKILL on Unix.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe port");
    listener.local_addr().expect("probe port address").port()
}

/// A raw connection with read and write timeouts.
///
/// # Errors
///
/// As `connect` and `set_*_timeout`.
pub fn raw_connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Sends `PING` on a fresh raw connection and checks for `+PONG`.
///
/// # Errors
///
/// On I/O errors, or any other reply (returned as `InvalidData`).
pub fn raw_ping(addr: SocketAddr) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"PING\r\n")?;
    let line = read_line(&mut stream)?;
    if line == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("PING answered {:?}", String::from_utf8_lossy(&line)),
        ))
    }
}

/// Reads one line, up to and including `\n`, a byte at a time (so nothing
/// after it is consumed).
///
/// # Errors
///
/// On I/O errors, and `UnexpectedEof` if the peer closes first.
pub fn read_line(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while line.last() != Some(&b'\n') {
        if stream.read(&mut byte)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed after {:?}", String::from_utf8_lossy(&line)),
            ));
        }
        line.push(byte[0]);
    }
    Ok(line)
}

/// Reads until the peer closes: `Ok` with everything read when a read
/// returns 0 (a FIN), the error (e.g. `ConnectionReset`) otherwise.
///
/// # Errors
///
/// Any read error, including a timeout.
pub fn read_to_eof(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk)? {
            0 => return Ok(all),
            n => all.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The value of `field` in `INFO memory`.
///
/// # Panics
///
/// When `INFO` fails or lacks the field.
pub fn info_memory_field(conn: &mut redis::Connection, field: &str) -> String {
    let text: String = redis::cmd("INFO")
        .arg("memory")
        .query(conn)
        .expect("INFO memory");
    info_field(&text, field).unwrap_or_else(|| panic!("INFO memory has no {field}:\n{text}"))
}

/// The value of `field` in an `INFO` text, if present.
pub fn info_field(text: &str, field: &str) -> Option<String> {
    text.lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| *name == field)
        .map(|(_, value)| value.trim().to_owned())
}

/// An `INFO memory` field read as a number.
///
/// # Panics
///
/// As [`info_memory_field`], or when the value is not a number.
pub fn info_memory_u64(conn: &mut redis::Connection, field: &str) -> u64 {
    let value = info_memory_field(conn, field);
    value
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {value:?}"))
}
