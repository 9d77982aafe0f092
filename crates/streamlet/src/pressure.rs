//! The memory monitor's hookup: caches as reclaimers, and `INFO memory`.
//!
//! At warning the monitor asks each cache to free what lies above the
//! warning exit point; the cache also lowers its capacity to what it kept,
//! so it does not refill into the same pressure. At critical it is emptied
//! and held at zero. While the level is normal, a watcher thread gives each
//! cache back a sixteenth of its configured capacity every second: a cut is
//! immediate, a regrowth gradual, so a cache that is too large for the budget
//! settles below the warning level instead of refilling into it again and
//! again.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use mempressure::subscribe::RecvTimeoutError;
use mempressure::{Monitor, PressureLevel, ReclaimRequest, Reclaimer, Urgency};

use crate::cache::Reclaimable;
use crate::commands::{InfoProvider, InfoSection};

/// A cache with the capacity it is configured for.
pub struct CacheReclaimer<C> {
    cache: Arc<C>,
    configured_bytes: u64,
}

impl<C> std::fmt::Debug for CacheReclaimer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheReclaimer")
            .field("configured_bytes", &self.configured_bytes)
            .finish()
    }
}

/// How many steps a cache's capacity regrows in after pressure.
const REGROW_STEPS: u64 = 16;
/// How often a step is given back while the level is normal.
const REGROW_INTERVAL: Duration = Duration::from_secs(1);

impl<C: Reclaimable + 'static> CacheReclaimer<C> {
    /// Wraps `cache`, remembering `configured_bytes` to restore later.
    pub fn new(cache: Arc<C>, configured_bytes: u64) -> Self {
        CacheReclaimer {
            cache,
            configured_bytes,
        }
    }

    /// Gives the cache back one step of its configured capacity; `true` if
    /// it was below it.
    pub fn regrow(&self) -> bool {
        let capacity = self.cache.capacity_bytes();
        if capacity >= self.configured_bytes {
            return false;
        }
        let step = (self.configured_bytes / REGROW_STEPS).max(1);
        self.cache
            .set_capacity_bytes(capacity.saturating_add(step).min(self.configured_bytes));
        true
    }
}

impl<C: Reclaimable + 'static> Reclaimer for CacheReclaimer<C> {
    fn name(&self) -> &'static str {
        self.cache.name()
    }

    fn reclaim(&self, request: ReclaimRequest) -> u64 {
        match request.urgency {
            Urgency::Gentle => {
                let keep = self.cache.size_bytes().saturating_sub(request.target_bytes);
                self.cache.set_capacity_bytes(keep)
            }
            Urgency::Hard | Urgency::Desperate => {
                let freed = self.cache.set_capacity_bytes(0);
                freed + self.cache.clear()
            }
        }
    }
}

/// Registers the caches with the monitor and regrows their capacity while
/// the level is normal. The returned handles keep them registered.
pub fn register_caches<A: Reclaimable + 'static, B: Reclaimable + 'static>(
    monitor: &Monitor,
    blocks: Arc<CacheReclaimer<A>>,
    indexes: Arc<CacheReclaimer<B>>,
) -> Vec<mempressure::reclaim::ReclaimerHandle> {
    let handles = vec![
        monitor.register_reclaimer(blocks.clone()),
        monitor.register_reclaimer(indexes.clone()),
    ];
    let mut sub = monitor.subscribe();
    let watched = monitor.clone();
    let spawned = thread::Builder::new()
        .name("streamlet-cache-regrow".into())
        .spawn(move || loop {
            match sub.recv_timeout(REGROW_INTERVAL) {
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Closed) => return,
            }
            if watched.level() == PressureLevel::Normal {
                blocks.regrow();
                indexes.regrow();
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(%error, "cache capacities will not regrow after pressure");
    }
    handles
}

/// The `# Memory` section of `INFO`: Redis's figures plus mempressure's.
#[derive(Debug, Clone)]
pub struct MemoryInfo {
    monitor: Monitor,
}

impl MemoryInfo {
    /// Reports what `monitor` sees.
    pub fn new(monitor: Monitor) -> Self {
        MemoryInfo { monitor }
    }
}

impl InfoProvider for MemoryInfo {
    fn sections(&self) -> Vec<InfoSection> {
        let reading = self.monitor.reading();
        let snapshot = mempressure::alloc::snapshot();
        let used = snapshot.total_bytes();
        let rss = reading.process.map(|p| p.resident_bytes);
        let mut fields: Vec<(String, String)> = Vec::new();
        let mut add = |name: &str, value: String| fields.push((name.to_owned(), value));

        // The figures Redis operators know.
        add("used_memory", used.to_string());
        add("used_memory_human", mempressure::size::format_bytes(used));
        add("used_memory_rss", rss.unwrap_or(0).to_string());
        add(
            "used_memory_rss_human",
            mempressure::size::format_bytes(rss.unwrap_or(0)),
        );
        add("maxmemory", reading.limit_bytes.to_string());
        add(
            "maxmemory_human",
            mempressure::size::format_bytes(reading.limit_bytes),
        );
        add("maxmemory_policy", "noeviction".to_owned());
        if let (Some(rss), true) = (rss, used > 0) {
            add(
                "mem_fragmentation_ratio",
                format!("{:.2}", rss as f64 / used as f64),
            );
        }
        if let Some(j) = reading.jemalloc {
            add("allocator_allocated", j.allocated_bytes.to_string());
            add("allocator_active", j.active_bytes.to_string());
            add("allocator_resident", j.resident_bytes.to_string());
            add(
                "allocator_frag_ratio",
                ratio(j.active_bytes, j.allocated_bytes),
            );
            add(
                "allocator_rss_ratio",
                ratio(j.resident_bytes, j.active_bytes),
            );
        }
        add("mem_allocator", "jemalloc".to_owned());

        // The pressure state, live rather than as of the last tick.
        add(
            "mempressure_level",
            self.monitor.level().as_str().to_owned(),
        );
        add(
            "mempressure_usage_bytes",
            self.monitor.usage_bytes().to_string(),
        );
        add("mempressure_limit_bytes", reading.limit_bytes.to_string());
        add(
            "mempressure_warning_bytes",
            reading.warning_bytes.to_string(),
        );
        add(
            "mempressure_critical_bytes",
            reading.critical_bytes.to_string(),
        );
        add(
            "mempressure_decided_by",
            reading.decided_by.as_str().to_owned(),
        );
        add(
            "mempressure_correction_bytes",
            reading.correction_bytes.to_string(),
        );
        add(
            "mempressure_transitions",
            self.monitor.transitions().to_string(),
        );
        add(
            "mempressure_rejected_connections",
            self.monitor.rejected_connections().to_string(),
        );
        add(
            "mempressure_reserved_bytes",
            self.monitor.tracker().reserved_total_bytes().to_string(),
        );
        add(
            "mempressure_reclaimed_bytes",
            self.monitor.reclaimed_bytes().to_string(),
        );
        for (index, name) in self.monitor.components().iter().enumerate() {
            let bytes =
                mempressure::ComponentId::new(index).map_or(0, |id| snapshot.component_bytes(id));
            add(
                &format!("mempressure_component_{name}_bytes"),
                bytes.to_string(),
            );
        }
        vec![InfoSection {
            name: "Memory".to_owned(),
            fields,
        }]
    }
}

fn ratio(numerator: u64, denominator: u64) -> String {
    if denominator == 0 {
        "0.00".to_owned()
    } else {
        format!("{:.2}", numerator as f64 / denominator as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::BlockCache;

    #[test]
    fn a_cut_is_immediate_and_the_regrowth_gradual() {
        // Arrange: a cache configured for 1.6 MB.
        let configured = 1_600_000;
        let reclaimer = CacheReclaimer::new(Arc::new(BlockCache::new(configured)), configured);

        // Act: evict at critical, then regrow step by step.
        reclaimer.reclaim(ReclaimRequest {
            target_bytes: 1,
            urgency: Urgency::Hard,
        });
        assert_eq!(reclaimer.cache.capacity_bytes(), 0);
        let mut steps = 0;
        while reclaimer.regrow() {
            steps += 1;
            assert!(reclaimer.cache.capacity_bytes() <= configured);
        }

        // Assert: sixteen steps of a sixteenth each.
        assert_eq!(steps, REGROW_STEPS);
        assert_eq!(reclaimer.cache.capacity_bytes(), configured);
    }
}
