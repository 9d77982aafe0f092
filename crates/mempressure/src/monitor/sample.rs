//! What the monitor reads at each tick, and the one usage figure levels are
//! decided on.
//!
//! # The usage figure
//!
//! At a tick the monitor takes the allocator shim's exact total (`tracked`)
//! and what the operating system charges the process for (`measured`):
//!
//! - anonymous resident memory on Linux (`RssAnon`), macOS
//!   `phys_footprint`, or plain resident size where neither exists; file
//!   pages the kernel can drop and re-read are not pressure and stay out;
//! - when the budget comes from a cgroup, also the cgroup's charge less its
//!   reclaimable file pages, since that is what its OOM killer acts on;
//! - jemalloc's `stats.resident` when the OS gives nothing.
//!
//! `measured` is the largest of those that could be read. Usage is
//! `max(tracked, measured)`: memory handed out but not yet touched is not
//! resident yet, but will be. Between ticks the shim's total moves the
//! figure in real time: `usage = tracked_now + max(0, measured - tracked)`
//! with the difference from the last tick (the *correction*, exported so
//! operators see drift).

use mempressure_alloc::MAX_COMPONENTS;

use crate::jemalloc::{JemallocReader, JemallocStats};
use crate::level::UsageSource;
use crate::os::cgroup::{CgroupLocator, CgroupMemory};
use crate::os::{self, ProcessMemory};

/// One tick's readings.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    /// The shim's exact total of live bytes.
    pub tracked_bytes: u64,
    /// The shim's live bytes by component index.
    pub components: [u64; MAX_COMPONENTS],
    /// The OS's figures for the process, if they could be read.
    pub process: Option<ProcessMemory>,
    /// jemalloc's statistics, if available.
    pub jemalloc: Option<JemallocStats>,
    /// The process's cgroup, if it has one with a memory controller.
    pub cgroup: Option<CgroupMemory>,
}

/// Where the monitor's readings come from; tests inject their own.
pub trait Sampler: Send + 'static {
    /// Takes every reading, at a tick.
    fn sample(&mut self) -> Sample;

    /// Reads only the shim's total, when a crossing wakes the monitor
    /// between ticks.
    fn tracked_bytes(&mut self) -> u64;

    /// Returns the allocator's unused dirty pages to the OS; `true` if it
    /// did anything.
    fn purge(&mut self) -> bool {
        false
    }
}

/// The usage figure and what decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    /// The figure levels are decided on, in bytes.
    pub usage_bytes: u64,
    /// The reading it came from.
    pub decided_by: UsageSource,
    /// The OS or jemalloc figure, if one was read.
    pub measured_bytes: Option<u64>,
}

/// Decides the usage figure for `sample` (see the module docs).
///
/// `count_cgroup` says whether the cgroup's charge is pressure: true when
/// the budget is the cgroup's limit.
pub fn decide_usage(sample: &Sample, count_cgroup: bool) -> Usage {
    let mut measured: Option<(u64, UsageSource)> = None;
    let consider = |measured: &mut Option<(u64, UsageSource)>, bytes: Option<u64>, source| {
        if let Some(bytes) = bytes {
            if measured.is_none_or(|(best, _)| bytes > best) {
                *measured = Some((bytes, source));
            }
        }
    };

    // The process: the most specific figure the platform has.
    if let Some(process) = &sample.process {
        if process.phys_footprint_bytes.is_some() {
            consider(
                &mut measured,
                process.phys_footprint_bytes,
                UsageSource::PhysFootprint,
            );
        } else if process.anon_resident_bytes.is_some() {
            consider(
                &mut measured,
                process.anon_resident_bytes,
                UsageSource::AnonResident,
            );
        } else {
            consider(
                &mut measured,
                Some(process.resident_bytes),
                UsageSource::ProcessResident,
            );
        }
    }

    // The cgroup, less what the kernel can drop without pressure.
    if count_cgroup {
        if let Some(cgroup) = &sample.cgroup {
            let charged = cgroup
                .usage_bytes
                .map(|u| u.saturating_sub(cgroup.reclaimable_file_bytes.unwrap_or(0)));
            consider(&mut measured, charged, UsageSource::CgroupUsage);
        }
    }

    // jemalloc only when the OS said nothing.
    if measured.is_none() {
        consider(
            &mut measured,
            sample.jemalloc.map(|j| j.resident_bytes),
            UsageSource::JemallocResident,
        );
    }

    match measured {
        Some((bytes, source)) if bytes >= sample.tracked_bytes => Usage {
            usage_bytes: bytes,
            decided_by: source,
            measured_bytes: Some(bytes),
        },
        Some((bytes, _)) => Usage {
            usage_bytes: sample.tracked_bytes,
            decided_by: UsageSource::Tracked,
            measured_bytes: Some(bytes),
        },
        None => Usage {
            usage_bytes: sample.tracked_bytes,
            decided_by: UsageSource::Tracked,
            measured_bytes: None,
        },
    }
}

/// The readings of the real process: the shim, the OS, jemalloc, the cgroup.
#[derive(Debug)]
pub struct SystemSampler {
    jemalloc: Option<JemallocReader>,
    cgroup: Option<CgroupLocator>,
    physical_memory_bytes: Option<u64>,
    process_failed: bool,
    cgroup_failed: bool,
}

impl SystemSampler {
    /// Finds what can be read here; what cannot is left out of every sample.
    pub fn new() -> Self {
        let jemalloc = match JemallocReader::new() {
            Ok(reader) => Some(reader),
            Err(error) => {
                tracing::info!(%error, "jemalloc statistics unavailable");
                None
            }
        };
        let cgroup = match CgroupLocator::detect() {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(%error, "cgroup could not be located");
                None
            }
        };
        SystemSampler {
            jemalloc,
            cgroup,
            physical_memory_bytes: os::physical_memory_bytes(),
            process_failed: false,
            cgroup_failed: false,
        }
    }
}

impl Default for SystemSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for SystemSampler {
    fn sample(&mut self) -> Sample {
        let snapshot = mempressure_alloc::snapshot();
        let process = match os::read_process_memory() {
            Ok(process) => Some(process),
            Err(error) => {
                if !std::mem::replace(&mut self.process_failed, true) {
                    tracing::warn!(%error, "process memory could not be read");
                }
                None
            }
        };
        let jemalloc = self.jemalloc.as_ref().and_then(|reader| reader.read().ok());
        let cgroup = self.cgroup.as_ref().and_then(|locator| {
            match locator.read(self.physical_memory_bytes) {
                Ok(memory) => Some(memory),
                Err(error) => {
                    if !std::mem::replace(&mut self.cgroup_failed, true) {
                        tracing::warn!(%error, "cgroup memory could not be read");
                    }
                    None
                }
            }
        });
        Sample {
            tracked_bytes: snapshot.total_bytes(),
            components: snapshot.by_component(),
            process,
            jemalloc,
            cgroup,
        }
    }

    fn tracked_bytes(&mut self) -> u64 {
        mempressure_alloc::snapshot().total_bytes()
    }

    fn purge(&mut self) -> bool {
        self.jemalloc
            .as_ref()
            .is_some_and(|reader| reader.purge_all().is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(anon: Option<u64>, resident: u64) -> Option<ProcessMemory> {
        Some(ProcessMemory {
            resident_bytes: resident,
            anon_resident_bytes: anon,
            ..ProcessMemory::default()
        })
    }

    #[test]
    fn anonymous_resident_decides_over_resident_with_file_pages() {
        let sample = Sample {
            tracked_bytes: 100,
            process: process(Some(300), 900),
            ..Sample::default()
        };
        let usage = decide_usage(&sample, false);
        assert_eq!(usage.usage_bytes, 300);
        assert_eq!(usage.decided_by, UsageSource::AnonResident);
    }

    #[test]
    fn tracked_decides_when_it_exceeds_what_is_resident() {
        let sample = Sample {
            tracked_bytes: 1000,
            process: process(Some(300), 900),
            ..Sample::default()
        };
        let usage = decide_usage(&sample, false);
        assert_eq!(usage.usage_bytes, 1000);
        assert_eq!(usage.decided_by, UsageSource::Tracked);
        assert_eq!(usage.measured_bytes, Some(300));
    }

    #[test]
    fn cgroup_charge_counts_only_without_reclaimable_file_pages() {
        let cgroup = CgroupMemory {
            version: crate::os::cgroup::CgroupVersion::V2,
            path: "/sys/fs/cgroup/app".into(),
            limit_bytes: Some(10_000),
            usage_bytes: Some(5000),
            reclaimable_file_bytes: Some(4000),
            limit_file: None,
        };
        let sample = Sample {
            tracked_bytes: 100,
            process: process(Some(800), 900),
            cgroup: Some(cgroup),
            ..Sample::default()
        };
        assert_eq!(decide_usage(&sample, true).usage_bytes, 1000);
        assert_eq!(
            decide_usage(&sample, true).decided_by,
            UsageSource::CgroupUsage
        );
        assert_eq!(decide_usage(&sample, false).usage_bytes, 800);
    }

    #[test]
    fn jemalloc_resident_stands_in_when_the_os_says_nothing() {
        let sample = Sample {
            tracked_bytes: 100,
            jemalloc: Some(JemallocStats {
                resident_bytes: 700,
                ..JemallocStats::default()
            }),
            ..Sample::default()
        };
        let usage = decide_usage(&sample, false);
        assert_eq!(
            (usage.usage_bytes, usage.decided_by),
            (700, UsageSource::JemallocResident)
        );
    }
}
