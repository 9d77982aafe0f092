//! What the fault tests share: a real `streamlet` process on free loopback
//! ports with its own data directory, killed by PID when dropped, and a raw
//! RESP2 client.

#![allow(dead_code)]

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a server may take to answer its first PING.
pub const START_WAIT: Duration = Duration::from_secs(20);
/// Socket timeout for replies in the tests.
pub const REPLY_WAIT: Duration = Duration::from_secs(10);

/// A loopback port free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// A fresh directory under the system temp dir, removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `streamlet-<name>-<pid>-<n>-<nanos>`.
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "streamlet-{name}-{}-{}-{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Limits applied to the server process before it runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessLimits {
    /// RLIMIT_NOFILE (soft and hard), if set.
    pub open_files: Option<u64>,
    /// RLIMIT_FSIZE in bytes (soft and hard), with SIGXFSZ ignored, if set.
    pub file_size_bytes: Option<u64>,
}

/// A running server, killed by PID when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// The client port.
    pub port: u16,
    /// Where its stderr goes.
    pub log_path: PathBuf,
}

impl Server {
    /// Starts the binary on a free port over `data_dir` with a 256 MiB
    /// budget and `extra` flags, and waits for its first PONG.
    pub fn start(data_dir: &Path, extra: &[&str], limits: ProcessLimits) -> Server {
        let port = free_port();
        let log_path = data_dir.with_extension(format!("{port}.log"));
        let log = std::fs::File::create(&log_path).expect("create server log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_streamlet"));
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--metrics-listen", "off", "--memory-limit", "256MiB"])
            .arg("--data-dir")
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // SAFETY: the closure runs in the forked child before exec and only
        // calls async-signal-safe functions (setrlimit, signal) on values
        // copied in; it allocates nothing.
        unsafe {
            command.pre_exec(move || apply_limits(limits));
        }
        let child = command.spawn().expect("spawn streamlet");
        let server = Server {
            child,
            port,
            log_path,
        };
        server.wait_ready();
        server
    }

    /// The server's PID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills with SIGKILL and reaps.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Connects a client.
    pub fn connect(&self) -> Client {
        Client::connect(self.port).expect("connect to streamlet")
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + START_WAIT;
        loop {
            if let Ok(mut client) = Client::connect(self.port) {
                if let Ok(reply) = client.command(&["PING"]) {
                    assert_eq!(reply, Value::Simple("PONG".into()));
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "streamlet did not answer PING in time; log:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_file(&self.log_path);
    }
}

fn apply_limits(limits: ProcessLimits) -> io::Result<()> {
    if let Some(n) = limits.open_files {
        set_rlimit(libc::RLIMIT_NOFILE, n)?;
    }
    if let Some(bytes) = limits.file_size_bytes {
        // SAFETY: ignoring SIGXFSZ installs no handler; a write past the
        // limit then fails with EFBIG instead of killing the process.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        set_rlimit(libc::RLIMIT_FSIZE, bytes)?;
    }
    Ok(())
}

fn set_rlimit(resource: libc::__rlimit_resource_t, value: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Raises this process's soft RLIMIT_NOFILE to `wanted` (within the hard
/// limit) and returns the soft limit now in force.
pub fn raise_open_files(wanted: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    let target = wanted.min(limit.rlim_max);
    if limit.rlim_cur < target {
        limit.rlim_cur = target;
        // SAFETY: as above; raising the soft limit up to the hard one is
        // always allowed.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
        // SAFETY: as above.
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    }
    limit.rlim_cur
}

/// CPU time (user + system) the process has used, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name, which is in parentheses and may hold
    // spaces: state is field 3, utime 14, stime 15.
    let after = &stat[stat.rfind(')').expect("stat has a command name") + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields[11].parse().expect("utime");
    let stime: u64 = fields[12].parse().expect("stime");
    utime + stime
}

/// Clock ticks per second for [`cpu_ticks`].
pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).unwrap_or(100)
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// `+...`
    Simple(String),
    /// `-...`
    Error(String),
    /// `:...`
    Integer(i64),
    /// `$...`
    Bulk(Vec<u8>),
    /// `$-1` or `*-1`
    Null,
    /// `*...`
    Array(Vec<Value>),
}

impl Value {
    /// The bulk as text.
    pub fn text(&self) -> String {
        match self {
            Value::Bulk(bytes) => String::from_utf8_lossy(bytes).into_owned(),
            Value::Simple(text) | Value::Error(text) => text.clone(),
            other => format!("{other:?}"),
        }
    }
}

/// A blocking RESP2 client over a raw socket.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects with [`REPLY_WAIT`] timeouts.
    pub fn connect(port: u16) -> io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(REPLY_WAIT))?;
        stream.set_write_timeout(Some(REPLY_WAIT))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream),
        })
    }

    /// The socket.
    pub fn stream(&self) -> &TcpStream {
        self.reader.get_ref()
    }

    /// Sends one command and reads its reply.
    pub fn command(&mut self, args: &[&str]) -> io::Result<Value> {
        self.send(args)?;
        self.read()
    }

    /// Sends one command without reading.
    pub fn send(&mut self, args: &[&str]) -> io::Result<()> {
        self.reader.get_mut().write_all(&encode(args))
    }

    /// Reads one reply.
    pub fn read(&mut self) -> io::Result<Value> {
        read_value(&mut self.reader)
    }
}

/// Encodes a command as an array of bulk strings.
pub fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn bad(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn read_value(reader: &mut impl BufRead) -> io::Result<Value> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1.min(line.len()));
    let number = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad line {line:?}")))
    };
    Ok(match kind {
        "+" => Value::Simple(rest.to_owned()),
        "-" => Value::Error(rest.to_owned()),
        ":" => Value::Integer(number()?),
        "$" => match number()? {
            -1 => Value::Null,
            len => {
                let mut data = vec![0u8; len as usize + 2];
                reader.read_exact(&mut data)?;
                data.truncate(len as usize);
                Value::Bulk(data)
            }
        },
        "*" => match number()? {
            -1 => Value::Null,
            len => {
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(read_value(reader)?);
                }
                Value::Array(items)
            }
        },
        _ => return Err(bad(format!("bad reply line {line:?}"))),
    })
}

/// `used_memory` from INFO on a fresh connection.
pub fn used_memory(port: u16) -> u64 {
    let mut client = Client::connect(port).expect("connect for INFO");
    let info = client.command(&["INFO", "memory"]).expect("INFO").text();
    info.lines()
        .find_map(|line| line.strip_prefix("used_memory:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no used_memory in INFO: {info}"))
}

/// The IDs of every entry of `key`, in order.
pub fn all_ids(client: &mut Client, key: &str) -> Vec<String> {
    match client.command(&["XRANGE", key, "-", "+"]).expect("XRANGE") {
        Value::Array(entries) => entries
            .iter()
            .map(|entry| match entry {
                Value::Array(parts) => parts[0].text(),
                other => panic!("entry is not an array: {other:?}"),
            })
            .collect(),
        other => panic!("XRANGE gave {other:?}"),
    }
}

/// Waits up to `wait` for `check` to hold, polling.
pub fn eventually(wait: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}
