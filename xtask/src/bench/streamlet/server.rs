//! One benchmarked streamlet process on a loopback port, and the port.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::load::resp::{Connection, Reply};

/// Longest wait for a server to exit after SIGTERM before it is killed,
/// unless the caller sets another.
const STOP_WAIT: Duration = Duration::from_secs(5);

/// A free loopback port, released just before the server binds it.
pub(super) fn free_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?)
}

/// One streamlet child process; stopped by PID when dropped.
pub(super) struct Server {
    pub(super) child: Child,
    exit: Option<ExitStatus>,
    /// Longest wait for an exit after SIGTERM before the server is killed.
    pub(super) stop_wait: Duration,
}

impl Server {
    /// Runs `command` (streamlet itself, or a tool that runs it) with the
    /// benchmark's server flags appended, output to `log_path`.
    pub(super) fn start(
        mut command: Command,
        addr: SocketAddr,
        data_dir: &Path,
        log_path: &Path,
    ) -> Result<Server> {
        let log =
            File::create(log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let child = command
            .arg("--listen")
            .arg(addr.to_string())
            .args(["--metrics-listen", "off", "--memory-limit", "1GiB"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {command:?}"))?;
        Ok(Server {
            child,
            exit: None,
            stop_wait: STOP_WAIT,
        })
    }

    /// The exit status if the server has exited.
    pub(super) fn exited(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// Waits up to `within` until the server answers PING, failing early if
    /// it exits.
    pub(super) fn wait_for_ping(
        &mut self,
        addr: SocketAddr,
        log_path: &Path,
        within: Duration,
    ) -> Result<()> {
        let started = Instant::now();
        while started.elapsed() < within {
            if let Some(status) = self.exited() {
                bail!(
                    "streamlet exited at start-up ({status}); log {}",
                    log_path.display()
                );
            }
            let pong = Connection::connect(addr, Duration::from_secs(1))
                .ok()
                .and_then(|mut conn| conn.call(&[b"PING"]).ok());
            if matches!(pong, Some(Reply::Simple(ref text)) if text == "PONG") {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "streamlet did not answer PING within {within:?}; log {}",
            log_path.display()
        )
    }

    /// Sends SIGTERM to the server's PID, waits up to its stop wait, then
    /// kills it; returns how it exited.
    pub(super) fn stop(&mut self) -> Option<ExitStatus> {
        if self.exited().is_some() {
            return self.exit;
        }
        let pid = self.child.id().to_string();
        // If `kill` cannot run, the SIGKILL below still stops the server.
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + self.stop_wait;
        while Instant::now() < deadline && self.exited().is_none() {
            thread::sleep(Duration::from_millis(20));
        }
        if self.exited().is_none() {
            // The child is ours; killing it by its handle targets its PID.
            let _ = self.child.kill();
            let _ = self.child.wait();
            return None;
        }
        self.exit
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
