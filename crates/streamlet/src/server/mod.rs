//! The tokio listener and its connections, with the pressure responses.
//!
//! - **Accept.** At critical, a new connection is answered with one `-OOM`
//!   line and closed cleanly: the reply is written, the write side shut, and
//!   what the client sent is read to its end (for at most five seconds) so the
//!   close is a FIN, never a reset. Accept errors (out of descriptors, say)
//!   back off from 5 ms to 1 s instead of spinning.
//! - **Intake.** Every connection may buffer [`BASE_READ_BYTES`] of requests
//!   without asking anyone, so small commands (`PING`) always get through. A
//!   request larger than that needs a reservation for the rest under
//!   `request_buffers`; while the pool refuses, the connection is not read
//!   (muted, not closed) and its client waits in TCP's own flow control.
//! - **Work in flight** finishes: every complete request read is answered.

mod accept;
mod connection;

use std::net::SocketAddr;
use std::sync::Arc;

use mempressure::Monitor;
use tokio::net::TcpListener;

use crate::commands::Context;
use crate::resp::Limits;

pub use connection::BASE_READ_BYTES;

/// The `-OOM` line a new connection reads at critical.
pub const OOM_REPLY: &[u8] = b"-OOM server is under critical memory pressure, try again later\r\n";

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) ctx: Context,
    pub(crate) monitor: Monitor,
    pub(crate) limits: Limits,
    pub(crate) responses: bool,
}

/// A bound listener, ready to serve.
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Binds `addr`.
    ///
    /// `responses` switches the pressure responses on or off; the monitor
    /// keeps deciding levels either way.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound (in use, not local, no permission).
    pub async fn bind(
        addr: SocketAddr,
        ctx: Context,
        monitor: Monitor,
        limits: Limits,
        responses: bool,
    ) -> std::io::Result<Server> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                ctx,
                monitor,
                limits,
                responses,
            }),
        })
    }

    /// The bound address (with the port chosen for port 0).
    ///
    /// # Errors
    ///
    /// As the OS's `getsockname`.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::select! {
            () = accept::accept_loop(self.listener, self.shared) => {}
            () = shutdown => tracing::info!("shutting down"),
        }
    }
}
