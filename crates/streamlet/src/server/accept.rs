//! The accept loop: admit, or answer `-OOM` at critical.

use std::sync::Arc;
use std::time::Duration;

use mempressure::{PressureLevel, ScopeExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{connection, Shared, OOM_REPLY};
use crate::Component;

const BACKOFF_MIN: Duration = Duration::from_millis(5);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// How long a rejected client may keep sending before the socket is closed:
/// a pipelining client may take a while to read the `-OOM` line and stop.
const REJECT_DRAIN: Duration = Duration::from_secs(5);
/// How much a rejected client may send meanwhile; past it the close is a
/// reset, as it is for any client that ignores a close.
const REJECT_DRAIN_BYTES: usize = 64 << 20;

/// Accepts forever; errors back off instead of spinning.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = BACKOFF_MIN;
                accepted
            }
            Err(error) => {
                // Out of descriptors or memory: wait for some to free up.
                tracing::warn!(%error, backoff_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);

        // The shed point: one relaxed load per accepted connection.
        if shared.responses && shared.monitor.level() == PressureLevel::Critical {
            shared.monitor.record_rejected_connection();
            tracing::debug!(%peer, "rejected at critical");
            tokio::spawn(reject(stream));
            continue;
        }
        let shared = shared.clone();
        tokio::spawn(
            async move {
                if let Err(error) = connection::serve(stream, &shared).await {
                    tracing::debug!(%peer, %error, "connection ended");
                }
            }
            .in_scope(Component::Connections),
        );
    }
}

/// Tells a client why it is turned away and closes without a reset.
async fn reject(mut stream: TcpStream) {
    if stream.write_all(OOM_REPLY).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut drained = 0usize;
    let _ = tokio::time::timeout(REJECT_DRAIN, async {
        while let Ok(n) = stream.read(&mut sink).await {
            drained += n;
            if n == 0 || drained > REJECT_DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}
