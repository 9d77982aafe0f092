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
//! The crate does no networking and spawns no threads; the binary wires these
//! parts to a tokio listener.

// Every public item is documented: the crate is read as a reference
// integration.
#![deny(missing_docs)]
// Debug on every public type keeps test failures and logs readable.
#![warn(missing_debug_implementations)]

pub mod cache;
pub mod commands;
mod decimal;
pub mod resp;
pub mod storage;
