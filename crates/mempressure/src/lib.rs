//! Memory-pressure monitoring (being written).

pub use mempressure_alloc as alloc;

pub mod budget;
pub mod jemalloc;
pub mod level;
pub mod machine;
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
