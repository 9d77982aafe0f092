//! jemalloc's own statistics, and returning its unused pages to the system.
//!
//! jemalloc caches its statistics and refreshes them when the `epoch` mallctl
//! is written, so [`JemallocReader::read`] advances the epoch once and then
//! reads every figure from that one refresh. The mallctl keys are resolved to
//! MIBs once, in [`JemallocReader::new`], so a reading does no string lookup.
//!
//! The figures are real only when jemalloc is the global allocator. With the
//! `jemalloc` feature off, or when the program's `#[global_allocator]` is not
//! jemalloc (jemalloc would be linked but idle, and its near-zero figures
//! would look like a reading), [`JemallocReader::new`] fails with
//! [`StatsUnavailable`]: no zero is ever passed off as a measurement.

use std::fmt;

/// One reading of jemalloc's statistics, taken after advancing its epoch.
///
/// Every field is in bytes and names its mallctl key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JemallocStats {
    /// `stats.allocated`: bytes in live allocations, rounded to size classes.
    pub allocated_bytes: u64,
    /// `stats.active`: bytes in active pages (at least `allocated`).
    pub active_bytes: u64,
    /// `stats.resident`: bytes in physically resident data pages.
    pub resident_bytes: u64,
    /// `stats.mapped`: bytes in active extents mapped by the allocator.
    pub mapped_bytes: u64,
    /// `stats.retained`: bytes of virtual memory kept but not mapped.
    pub retained_bytes: u64,
    /// `stats.metadata`: bytes of allocator metadata.
    pub metadata_bytes: u64,
}

/// jemalloc's statistics cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsUnavailable {
    /// Why, when there is more to say than the bare fact; `None` when the
    /// `jemalloc` feature is off.
    detail: Option<String>,
}

impl StatsUnavailable {
    /// The statistics are unavailable for the reason `detail`.
    #[cfg_attr(not(feature = "jemalloc"), allow(dead_code))]
    fn because(detail: impl Into<String>) -> Self {
        Self {
            detail: Some(detail.into()),
        }
    }
}

impl fmt::Display for StatsUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("jemalloc statistics are unavailable")?;
        match &self.detail {
            Some(detail) => write!(f, ": {detail}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for StatsUnavailable {}

#[cfg(feature = "jemalloc")]
pub use imp::JemallocReader;

#[cfg(not(feature = "jemalloc"))]
pub use disabled::JemallocReader;

#[cfg(feature = "jemalloc")]
mod imp {
    use std::fmt;

    use tikv_jemalloc_ctl::{epoch, epoch_mib, raw, stats, thread};

    use super::{JemallocStats, StatsUnavailable};

    /// `MALLCTL_ARENAS_ALL` from `<jemalloc/jemalloc.h>`: the arena index
    /// that stands for every arena in `arena.<i>.*` keys.
    const MALLCTL_ARENAS_ALL: usize = 4096;

    /// Bytes allocated by [`JemallocReader::new`] to see whether jemalloc
    /// serves the global allocator: big enough to be unmistakable, small
    /// enough to cost nothing.
    const PROBE_BYTES: usize = 64 * 1024;

    /// Reads jemalloc's statistics through MIBs resolved once.
    ///
    /// Cheap to read from the monitor thread on every tick: one epoch write
    /// and six reads, no string lookups.
    #[derive(Clone, Copy)]
    pub struct JemallocReader {
        epoch: epoch_mib,
        allocated: stats::allocated_mib,
        active: stats::active_mib,
        resident: stats::resident_mib,
        mapped: stats::mapped_mib,
        retained: stats::retained_mib,
        metadata: stats::metadata_mib,
        /// `arena.<MALLCTL_ARENAS_ALL>.purge`.
        purge_all: [usize; 3],
    }

    impl JemallocReader {
        /// Resolves the mallctl keys and checks that jemalloc is the global
        /// allocator.
        ///
        /// The check allocates and frees a small buffer and looks for it in
        /// the calling thread's `thread.allocatedp` counter.
        ///
        /// # Errors
        ///
        /// When jemalloc was built without statistics, a key cannot be
        /// resolved, or jemalloc does not serve the global allocator.
        pub fn new() -> Result<Self, StatsUnavailable> {
            let reader = Self {
                epoch: epoch::mib().map_err(|e| mallctl_error("epoch", e))?,
                allocated: stats::allocated::mib()
                    .map_err(|e| mallctl_error("stats.allocated", e))?,
                active: stats::active::mib().map_err(|e| mallctl_error("stats.active", e))?,
                resident: stats::resident::mib().map_err(|e| mallctl_error("stats.resident", e))?,
                mapped: stats::mapped::mib().map_err(|e| mallctl_error("stats.mapped", e))?,
                retained: stats::retained::mib().map_err(|e| mallctl_error("stats.retained", e))?,
                metadata: stats::metadata::mib().map_err(|e| mallctl_error("stats.metadata", e))?,
                purge_all: purge_all_mib()?,
            };
            check_jemalloc_is_global_allocator()?;
            Ok(reader)
        }

        /// Advances the epoch once, then reads every figure.
        ///
        /// # Errors
        ///
        /// When a mallctl call fails.
        pub fn read(&self) -> Result<JemallocStats, StatsUnavailable> {
            self.epoch
                .advance()
                .map_err(|e| mallctl_error("epoch", e))?;
            let bytes = |value: usize| value as u64;
            Ok(JemallocStats {
                allocated_bytes: bytes(
                    self.allocated
                        .read()
                        .map_err(|e| mallctl_error("stats.allocated", e))?,
                ),
                active_bytes: bytes(
                    self.active
                        .read()
                        .map_err(|e| mallctl_error("stats.active", e))?,
                ),
                resident_bytes: bytes(
                    self.resident
                        .read()
                        .map_err(|e| mallctl_error("stats.resident", e))?,
                ),
                mapped_bytes: bytes(
                    self.mapped
                        .read()
                        .map_err(|e| mallctl_error("stats.mapped", e))?,
                ),
                retained_bytes: bytes(
                    self.retained
                        .read()
                        .map_err(|e| mallctl_error("stats.retained", e))?,
                ),
                metadata_bytes: bytes(
                    self.metadata
                        .read()
                        .map_err(|e| mallctl_error("stats.metadata", e))?,
                ),
            })
        }

        /// Returns every arena's unused dirty and muzzy pages to the system
        /// now (`arena.<MALLCTL_ARENAS_ALL>.purge`), instead of waiting for
        /// jemalloc's decay.
        ///
        /// # Errors
        ///
        /// When the mallctl call fails.
        pub fn purge_all(&self) -> Result<(), StatsUnavailable> {
            // SAFETY: the MIB was resolved from `arena.4096.purge`, a key that
            // neither reads nor writes a value, so all four pointers are null
            // and the length is 0, as jemalloc requires for it.
            let code = unsafe {
                tikv_jemalloc_sys::mallctlbymib(
                    self.purge_all.as_ptr(),
                    self.purge_all.len(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    0,
                )
            };
            match code {
                0 => Ok(()),
                code => Err(StatsUnavailable::because(format!(
                    "mallctl `arena.{MALLCTL_ARENAS_ALL}.purge` failed with error code {code}"
                ))),
            }
        }
    }

    impl fmt::Debug for JemallocReader {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.debug_struct("JemallocReader").finish_non_exhaustive()
        }
    }

    /// Resolves `arena.<MALLCTL_ARENAS_ALL>.purge` to a MIB.
    fn purge_all_mib() -> Result<[usize; 3], StatsUnavailable> {
        let name = format!("arena.{MALLCTL_ARENAS_ALL}.purge\0");
        let mut mib = [0; 3];
        raw::name_to_mib(name.as_bytes(), &mut mib)
            .map_err(|e| mallctl_error(name.trim_end_matches('\0'), e))?;
        Ok(mib)
    }

    /// Fails unless an allocation through the global allocator shows up in
    /// jemalloc's per-thread counter of allocated bytes.
    fn check_jemalloc_is_global_allocator() -> Result<(), StatsUnavailable> {
        let counter =
            thread::allocatedp::read().map_err(|e| mallctl_error("thread.allocatedp", e))?;
        let before = counter.get();
        let probe = std::hint::black_box(vec![0_u8; PROBE_BYTES]);
        let after = counter.get();
        drop(probe);
        if after.wrapping_sub(before) >= PROBE_BYTES as u64 {
            Ok(())
        } else {
            Err(StatsUnavailable::because(
                "jemalloc is linked but is not the global allocator",
            ))
        }
    }

    /// A failed mallctl call on `key`.
    fn mallctl_error(key: &str, error: tikv_jemalloc_ctl::Error) -> StatsUnavailable {
        StatsUnavailable::because(format!("mallctl `{key}` failed: {error}"))
    }
}

#[cfg(not(feature = "jemalloc"))]
mod disabled {
    use super::{JemallocStats, StatsUnavailable};

    /// Reads jemalloc's statistics; without the `jemalloc` feature it cannot
    /// be made.
    #[derive(Debug, Clone, Copy)]
    pub struct JemallocReader {
        /// Keeps the type from being built outside this module.
        _private: (),
    }

    impl JemallocReader {
        /// Always fails: the `jemalloc` feature is off.
        ///
        /// # Errors
        ///
        /// Always, with "jemalloc statistics are unavailable".
        pub fn new() -> Result<Self, StatsUnavailable> {
            Err(StatsUnavailable { detail: None })
        }

        /// Never called: no reader exists without the `jemalloc` feature.
        ///
        /// # Errors
        ///
        /// Always.
        pub fn read(&self) -> Result<JemallocStats, StatsUnavailable> {
            Err(StatsUnavailable { detail: None })
        }

        /// Never called: no reader exists without the `jemalloc` feature.
        ///
        /// # Errors
        ///
        /// Always.
        pub fn purge_all(&self) -> Result<(), StatsUnavailable> {
            Err(StatsUnavailable { detail: None })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(not(feature = "jemalloc"))]
    #[test]
    fn reader_without_the_feature_says_statistics_are_unavailable() {
        // With the feature off there is no reading, not a reading of zero.
        let message = JemallocReader::new().map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err("jemalloc statistics are unavailable".to_owned())
        );
    }

    #[cfg(feature = "jemalloc")]
    #[test]
    fn reader_refuses_when_jemalloc_is_not_the_global_allocator() {
        // This test binary uses the system allocator: jemalloc is linked but
        // idle, so its figures would be a false reading.
        let message = JemallocReader::new().map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(
                "jemalloc statistics are unavailable: jemalloc is linked but is not the global \
                 allocator"
                    .to_owned()
            )
        );
    }

    #[test]
    fn unavailable_message_is_lower_case_without_a_period() {
        // Error text follows the crate's style.
        let error = StatsUnavailable { detail: None };
        assert_eq!(error.to_string(), "jemalloc statistics are unavailable");
    }
}
