//! streamlet: a small log-stream server speaking a subset of Redis streams
//! over RESP2.
//!
//! The library holds the server's core, independent of the network and of
//! memory pressure:
//!
//! - [`resp`]: an incremental RESP2 request parser (arrays of bulk strings
//!   and inline commands) with limits, and reply encoders.
//! - [`storage`]: streams kept as directories of append-only segment files
//!   with sparse offset indexes, crash recovery and Redis stream IDs.
//! - [`cache`]: the block cache and index cache that reads go through; both
//!   can be shrunk or cleared on demand, so they can serve as memory-pressure
//!   reclaimers.
//! - [`commands`]: dispatch of a parsed request to its reply, following
//!   Redis's reply formats for `PING`, `ECHO`, `XADD`, `XRANGE`, `XLEN`,
//!   `INFO` and the handshake commands `redis-cli` and `redis-benchmark`
//!   send.
//!
//! - [`server`]: the tokio listener and connections, with the memory-pressure
//!   responses: `-OOM` for new connections at critical, muted intake when
//!   request bytes cannot be reserved, caches as reclaimers.
//! - [`pressure`]: the memory monitor's hookup: reclaimers over the caches
//!   and the `# Memory` section of `INFO`.
//!
//! Memory is charged to the four [`Component`]s through scopes in the hot
//! paths: connection state, request bytes, segment blocks and indexes.
//!
//! # Cargo features
//!
//! - `bare-jemalloc`: the `streamlet` binary installs plain
//!   `tikv_jemallocator::Jemalloc` instead of the tracking allocator, for
//!   throughput comparisons only (`cargo xtask bench --streamlet`). The
//!   shim then counts nothing, so components read zero and the monitor's
//!   usage is its measured figure alone.

// Every public item is documented: the crate is read as a reference
// integration.
#![deny(missing_docs)]
// Debug on every public type keeps test failures and logs readable.
#![warn(missing_debug_implementations)]

pub mod cache;
pub mod cli;
pub mod commands;
mod decimal;
pub mod pressure;
pub mod resp;
pub mod server;
pub mod storage;

mempressure::components! {
    /// Where streamlet's memory goes; the names are metric label values.
    pub enum Component {
        /// Per-connection state and its buffers.
        Connections => "connections",
        /// Request bytes read but not yet processed, held under a
        /// reservation.
        RequestBuffers => "request_buffers",
        /// Cached segment blocks.
        SegmentCache => "segment_cache",
        /// Loaded segment indexes.
        IndexCache => "index_cache",
    }
}
