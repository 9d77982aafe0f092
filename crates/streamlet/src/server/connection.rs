//! One client connection: read, parse, execute, answer; with muted intake
//! when request bytes cannot be reserved.

use std::io;
use std::time::Duration;

use mempressure::alloc::transfer_vec;
use mempressure::{Reservation, ReserveError};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;

use super::Shared;
use crate::commands::{execute, RangeStream};
use crate::resp::{parse_into, Reply, Request};
use crate::Component;

/// Request bytes a connection may buffer without a reservation.
///
/// Enough for any ordinary command and a pipeline of small ones, so `PING`
/// and friends are answered at every level.
pub const BASE_READ_BYTES: usize = 16 * 1024;
/// Replies are written once this many bytes are queued.
const WRITE_BATCH_BYTES: usize = 256 * 1024;
/// How long a muted connection waits for room before it tries again.
const MUTE_WAIT: Duration = Duration::from_millis(250);

/// Serves one connection until the client leaves or errs.
///
/// # Errors
///
/// The socket's I/O errors; protocol errors are answered and close the
/// connection with `Ok`.
pub(crate) async fn serve(mut stream: TcpStream, shared: &Shared) -> io::Result<()> {
    let mut buf: Vec<u8> = Vec::with_capacity(BASE_READ_BYTES);
    let mut out: Vec<u8> = Vec::with_capacity(4096);
    // Parsed into again and again, so small requests reuse its buffers.
    let mut request = Request::default();
    // The reservations behind a buffer grown past the base; dropped with it.
    let mut held: Vec<Reservation> = Vec::new();
    let max_request = shared
        .limits
        .max_bulk_bytes
        .saturating_add(shared.limits.max_inline_bytes);

    loop {
        // Room to read: a larger request first needs its bytes reserved.
        if buf.len() == buf.capacity() {
            let target = (buf.capacity() * 2).min(max_request.max(BASE_READ_BYTES));
            if target <= buf.len() {
                return refuse(
                    &mut stream,
                    &mut out,
                    "ERR Protocol error: request too large",
                )
                .await;
            }
            // Reserve only the growth: what is held already stays held.
            // TODO(#7): reserve for the request's copies too (parsed
            // arguments, the record's encoding: about three times its size
            // live at once), so one large request cannot take the process
            // past its budget; not now because muting at a step that can
            // never be granted needs the request's declared size to refuse
            // at once instead, which the parser does not report yet.
            let needed = target - buf.capacity().max(BASE_READ_BYTES);
            let total = (target - BASE_READ_BYTES) as u64;
            if shared.responses && total > shared.monitor.tracker().critical_bytes() {
                let message = format!(
                    "ERR request refused: it needs more than {total} bytes and the memory budget \
                     allows {} below critical",
                    shared.monitor.tracker().critical_bytes()
                );
                return refuse(&mut stream, &mut out, &message).await;
            }
            match reserve(shared, &stream, needed).await {
                Ok(Some(reservation)) => held.push(reservation),
                Ok(None) => {}
                Err(Muted::Gone) => return Ok(()),
                Err(Muted::Refused(error)) => {
                    let message = format!("ERR request refused: {error}");
                    return refuse(&mut stream, &mut out, &message).await;
                }
            }
            buf.reserve_exact(target - buf.len());
            let _ = transfer_vec(&buf, Component::RequestBuffers.into());
        }

        // Read what the client sent.
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }

        // Answer every complete request.
        let mut consumed = 0;
        loop {
            match parse_into(&buf[consumed..], &shared.limits, &mut request) {
                Ok(Some(used)) => {
                    consumed += used;
                    if request.is_empty() {
                        continue;
                    }
                    if let Some(plan) = RangeStream::plan(&request, &shared.ctx) {
                        request.recycle();
                        answer_range(&mut stream, &mut out, plan, shared).await?;
                        continue;
                    }
                    let outcome = execute(&request, &shared.ctx);
                    request.recycle();
                    outcome.reply.encode(&mut out);
                    if outcome.close {
                        stream.write_all(&out).await?;
                        return Ok(());
                    }
                    if out.len() >= WRITE_BATCH_BYTES {
                        stream.write_all(&out).await?;
                        out.clear();
                    }
                }
                Ok(None) => break,
                Err(error) => {
                    let message = format!("ERR {error}");
                    return refuse(&mut stream, &mut out, &message).await;
                }
            }
        }
        buf.drain(..consumed);
        if !out.is_empty() {
            stream.write_all(&out).await?;
            out.clear();
            out.shrink_to(WRITE_BATCH_BYTES);
        }

        // Hand back what a large request took once it is answered.
        if buf.capacity() > BASE_READ_BYTES && buf.len() <= BASE_READ_BYTES / 2 {
            buf.shrink_to(BASE_READ_BYTES);
            let _ = transfer_vec(&buf, Component::Connections.into());
            held.clear();
        }
    }
}

/// Answers an `XRANGE` a batch at a time, writing each batch out before
/// reading the next, so a large range never sits whole in memory.
async fn answer_range(
    stream: &mut TcpStream,
    out: &mut Vec<u8>,
    plan: Result<RangeStream, Reply>,
    shared: &Shared,
) -> io::Result<()> {
    let mut range = match plan {
        Ok(range) => range,
        Err(reply) => {
            reply.encode(out);
            return Ok(());
        }
    };
    range.encode_header(out);
    loop {
        let more = match range.next_batch(&shared.ctx, out) {
            Ok(more) => more,
            Err(reply) => {
                // The array is cut short: the connection cannot go on.
                tracing::warn!(?reply, "range read failed mid-answer");
                return Err(io::Error::other("range read failed mid-answer"));
            }
        };
        if out.len() >= WRITE_BATCH_BYTES || !more {
            stream.write_all(out).await?;
            out.clear();
        }
        if !more {
            return Ok(());
        }
    }
}

/// Why a muted connection stopped waiting.
enum Muted {
    /// The client hung up while it waited.
    Gone,
    /// The pool can never grant the request.
    Refused(ReserveError),
}

/// Reserves `bytes` of request buffer, waiting (muted) while the pool is
/// short. `None` when pressure responses are off.
///
/// The socket is not read meanwhile, so TCP pushes back on the client; its
/// readiness is still watched, so a client that hangs up frees its buffer
/// and reservations at once instead of holding them for ever.
async fn reserve(
    shared: &Shared,
    stream: &TcpStream,
    bytes: usize,
) -> Result<Option<Reservation>, Muted> {
    if !shared.responses {
        return Ok(None);
    }
    let component = Component::RequestBuffers;
    let index = mempressure::ComponentId::from(component).index();
    loop {
        match shared.monitor.try_reserve(component, bytes as u64) {
            Ok(reservation) => return Ok(Some(reservation)),
            Err(error) if !error.is_pressure() => return Err(Muted::Refused(error)),
            Err(_) => {}
        }
        tokio::select! {
            result = shared.monitor.tracker().reserve(index, bytes as u64, MUTE_WAIT) => {
                match result {
                    Ok(reservation) => return Ok(Some(reservation)),
                    Err(error) if !error.is_pressure() => return Err(Muted::Refused(error)),
                    Err(_) => {}
                }
            }
            ready = stream.ready(Interest::READABLE) => {
                match ready {
                    Ok(ready) if !ready.is_read_closed() => {
                        // Bytes are waiting; they wait until there is room.
                        tokio::time::sleep(MUTE_WAIT).await;
                    }
                    _ => return Err(Muted::Gone),
                }
            }
        }
    }
}

/// Answers with an error, then closes.
async fn refuse(stream: &mut TcpStream, out: &mut Vec<u8>, message: &str) -> io::Result<()> {
    Reply::error(message.to_owned()).encode(out);
    stream.write_all(out).await?;
    stream.shutdown().await
}
