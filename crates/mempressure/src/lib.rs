//! Memory-pressure monitoring for Rust servers: a budget, the levels normal /
//! warning / critical with hysteresis, subscribers, reclaimers, reservations
//! for backpressure, readings from jemalloc and the OS, and metrics.
//!
//! This crate is the control plane over the allocator shim
//! [`mempressure_alloc`] (re-exported as [`alloc`], with its everyday items at
//! the root), so a server depends on this one crate.
//!
//! ```no_run
//! #[global_allocator]
//! static ALLOC: mempressure::Allocator = mempressure::Allocator::jemalloc();
//!
//! mempressure::components! {
//!     /// Where the server's memory goes.
//!     pub enum Component {
//!         Connections => "connections",
//!         RequestBuffers => "request_buffers",
//!         SegmentCache => "segment_cache",
//!         IndexCache => "index_cache",
//!     }
//! }
//!
//! let monitor = mempressure::Monitor::start(
//!     mempressure::MonitorConfig::new().limit_bytes(1 << 30).components::<Component>(),
//! )?;
//! let _scope = mempressure::scope!(Component::SegmentCache);
//! if monitor.level() == mempressure::PressureLevel::Critical {
//!     // shed load
//! }
//! # Ok::<(), mempressure::StartError>(())
//! ```
//!
//! # Crate features
//!
//! - `jemalloc` (default): count through jemalloc and read its statistics.
//! - `metrics` (default): record gauges and counters through `metrics`.
//! - `prometheus` (default): serve `/metrics` with
//!   metrics-exporter-prometheus.
//! - `clap` (default): [`args::MemoryArgs`], flattenable into any clap app.
//! - `tokio` (default): async waits for subscribers and reservations.

// Every public item is documented.
#![deny(missing_docs)]
#![warn(missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

pub use mempressure_alloc as alloc;
pub use mempressure_alloc::{
    components, scope, Allocator, ComponentId, ComponentSet, ScopeExt, ScopeGuard,
    TrackingAllocator,
};

pub use crate::level::{PressureLevel, Transition};
pub use crate::monitor::{Monitor, MonitorConfig, MonitorReading, StartError, Ticker};
pub use crate::reclaim::{ReclaimRequest, Reclaimer, Urgency};
pub use crate::reserve::{MemoryGuard, MemoryPressure, MemoryTracker, Reservation, ReserveError};
pub use crate::subscribe::{Event, Subscription};

pub mod budget;
pub mod jemalloc;
pub mod level;
pub mod machine;
pub mod monitor;
pub mod os;
pub mod reclaim;
pub mod reserve;
pub mod size;
pub mod subscribe;

#[cfg(feature = "clap")]
pub mod args;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "prometheus")]
pub mod prometheus;
