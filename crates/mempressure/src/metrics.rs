//! Gauges and counters of the memory monitor, recorded through the `metrics`
//! facade.
//!
//! A [`MetricsRecorder`] holds every metric name for one prefix, computed
//! once. The monitor thread calls [`MetricsRecorder::record_tick`] after each
//! reading; the other `record_*` methods count events. None of them is meant
//! for a hot path: each call looks its metrics up in the installed recorder.
//!
//! With the default prefix the names are:
//!
//! ```text
//! streamline_process_memory_bytes{type="resident"|"virtual"}      gauge
//! streamline_process_anonymous_resident_bytes                     gauge
//! streamline_memory_bytes{component}                              gauge
//! streamline_memory_pressure{level="normal"|"warning"|"critical"} gauge
//! streamline_memory_limit_bytes                                   gauge
//! streamline_memory_warning_threshold_bytes                       gauge
//! streamline_memory_critical_threshold_bytes                      gauge
//! streamline_memory_usage_bytes                                   gauge
//! streamline_memory_tracked_bytes                                 gauge
//! streamline_memory_correction_bytes                              gauge
//! streamline_memory_reserved_bytes{component}                     gauge
//! streamline_jemalloc_{allocated,active,resident,mapped,retained,metadata}_bytes  gauge
//! streamline_cgroup_memory_usage_bytes                            gauge
//! streamline_cgroup_memory_limit_bytes                            gauge
//! streamline_memory_monitor_tick_seconds                          histogram
//! streamline_memory_pressure_transitions_total{from,to}           counter
//! streamline_memory_rejected_connections_total                    counter
//! streamline_memory_reservation_failures_total{component}         counter
//! streamline_memory_reclaimed_bytes_total                         counter
//! ```
//!
//! Labels come only from bounded sets: the three levels, `resident` and
//! `virtual`, and the components declared to [`MetricsRecorder::new`]; a
//! component name outside that set is counted under `other`.

use std::fmt;
use std::sync::{Arc, Once};

use metrics::{describe_counter, describe_gauge, describe_histogram, SharedString, Unit};

use crate::jemalloc::JemallocStats;
use crate::level::PressureLevel;
use crate::os::ProcessMemory;

/// The prefix used when none is configured.
pub const DEFAULT_PREFIX: &str = "streamline";

/// The catch-all component: bytes outside every declared component, and the
/// label used for any component name that was not declared.
pub const OTHER_COMPONENT: &str = "other";

/// Everything the monitor exports after one tick.
#[derive(Debug, Clone, Copy)]
pub struct TickMetrics<'a> {
    /// The memory budget in bytes.
    pub limit_bytes: u64,
    /// Usage in bytes at which the level becomes warning.
    pub warning_bytes: u64,
    /// Usage in bytes at which the level becomes critical.
    pub critical_bytes: u64,
    /// The usage figure levels are decided on, in bytes.
    pub usage_bytes: u64,
    /// Live bytes counted by the allocator shim, exact at this tick.
    pub tracked_bytes: u64,
    /// Measured bytes minus tracked bytes (negative when the allocator
    /// counts more than the measurement shows).
    pub correction_bytes: i64,
    /// The current pressure level.
    pub level: PressureLevel,
    /// Live bytes per component, by declared component name.
    pub components: &'a [(&'static str, u64)],
    /// Bytes held by reservations per component, by declared component name.
    pub reserved: &'a [(&'static str, u64)],
    /// The operating system's reading of the process, when it succeeded.
    pub process: Option<ProcessMemory>,
    /// jemalloc's statistics, when jemalloc is the allocator.
    pub jemalloc: Option<JemallocStats>,
    /// The cgroup's memory usage in bytes, when the process runs in one.
    pub cgroup_usage_bytes: Option<u64>,
    /// The cgroup's memory limit in bytes, when it has one.
    pub cgroup_limit_bytes: Option<u64>,
    /// How long the monitor took for this tick, in seconds.
    pub tick_seconds: f64,
}

/// Why a metric name prefix is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixError {
    prefix: String,
}

/// Records the monitor's metrics under one prefix.
///
/// Cloning is cheap: the names are shared.
#[derive(Debug, Clone)]
pub struct MetricsRecorder {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    names: Names,
    components: Vec<&'static str>,
    described: Once,
}

/// Every metric name for one prefix, computed once.
#[derive(Debug)]
struct Names {
    process_memory: SharedString,
    process_anonymous_resident: SharedString,
    memory: SharedString,
    pressure: SharedString,
    limit: SharedString,
    warning_threshold: SharedString,
    critical_threshold: SharedString,
    usage: SharedString,
    tracked: SharedString,
    correction: SharedString,
    reserved: SharedString,
    jemalloc_allocated: SharedString,
    jemalloc_active: SharedString,
    jemalloc_resident: SharedString,
    jemalloc_mapped: SharedString,
    jemalloc_retained: SharedString,
    jemalloc_metadata: SharedString,
    cgroup_usage: SharedString,
    cgroup_limit: SharedString,
    tick: SharedString,
    transitions: SharedString,
    rejected_connections: SharedString,
    reservation_failures: SharedString,
    reclaimed: SharedString,
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid metrics prefix \"{}\": expected a Prometheus metric name prefix matching \
             [a-zA-Z_][a-zA-Z0-9_]* and not starting with __, such as streamline",
            self.prefix
        )
    }
}

impl std::error::Error for PrefixError {}

impl MetricsRecorder {
    /// Computes the metric names for `prefix` and the declared `components`.
    ///
    /// `components` is the bounded set of component label values; `other` is
    /// added when it is missing.
    ///
    /// # Errors
    ///
    /// Returns a [`PrefixError`] when `prefix` does not match
    /// `[a-zA-Z_][a-zA-Z0-9_]*` or starts with `__`.
    pub fn new(prefix: &str, components: &[&'static str]) -> Result<Self, PrefixError> {
        if !is_valid_prefix(prefix) {
            return Err(PrefixError {
                prefix: prefix.to_owned(),
            });
        }
        let mut declared = Vec::with_capacity(components.len() + 1);
        for &component in components {
            if !declared.contains(&component) {
                declared.push(component);
            }
        }
        if !declared.contains(&OTHER_COMPONENT) {
            declared.push(OTHER_COMPONENT);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                names: Names::new(prefix),
                components: declared,
                described: Once::new(),
            }),
        })
    }

    /// The declared components, `other` included, in declaration order.
    pub fn components(&self) -> &[&'static str] {
        &self.inner.components
    }

    /// Describes every metric (help text and unit) to the installed recorder
    /// and registers the counters at zero, so that rates start at the first
    /// scrape.
    ///
    /// The first `record_*` call does this by itself; call it again only
    /// after installing another global recorder.
    pub fn describe(&self) {
        describe_all(&self.inner.names);
        let names = &self.inner.names;
        metrics::counter!(names.rejected_connections.clone()).absolute(0);
        metrics::counter!(names.reclaimed.clone()).absolute(0);
        for &component in &self.inner.components {
            let name = names.reservation_failures.clone();
            metrics::counter!(name, "component" => component).absolute(0);
        }
        for from in PressureLevel::ALL {
            for to in PressureLevel::ALL.into_iter().filter(|&to| to != from) {
                let name = names.transitions.clone();
                metrics::counter!(name, "from" => from.as_str(), "to" => to.as_str()).absolute(0);
            }
        }
    }

    /// Records every gauge of one monitor tick and its duration.
    ///
    /// Figures that are `None` (no jemalloc, no cgroup, no OS reading) are
    /// left out rather than exported as 0. Declared components missing from
    /// `t.components` or `t.reserved` are exported as 0; undeclared ones are
    /// added to `other`.
    pub fn record_tick(&self, t: &TickMetrics<'_>) {
        self.describe_once();
        let names = &self.inner.names;
        let gauge = |name: &SharedString, value: f64| metrics::gauge!(name.clone()).set(value);

        // Budget and the figures levels are decided on.
        gauge(&names.limit, t.limit_bytes as f64);
        gauge(&names.warning_threshold, t.warning_bytes as f64);
        gauge(&names.critical_threshold, t.critical_bytes as f64);
        gauge(&names.usage, t.usage_bytes as f64);
        gauge(&names.tracked, t.tracked_bytes as f64);
        gauge(&names.correction, t.correction_bytes as f64);
        for level in PressureLevel::ALL {
            let value = if level == t.level { 1.0 } else { 0.0 };
            metrics::gauge!(names.pressure.clone(), "level" => level.as_str()).set(value);
        }

        // Components: live and reserved bytes.
        self.record_by_component(&names.memory, t.components);
        self.record_by_component(&names.reserved, t.reserved);

        // What the OS, jemalloc and the cgroup report.
        if let Some(process) = t.process {
            let name = &names.process_memory;
            metrics::gauge!(name.clone(), "type" => "resident").set(process.resident_bytes as f64);
            metrics::gauge!(name.clone(), "type" => "virtual").set(process.virtual_bytes as f64);
            if let Some(anonymous) = process.anon_resident_bytes {
                gauge(&names.process_anonymous_resident, anonymous as f64);
            }
        }
        if let Some(stats) = t.jemalloc {
            gauge(&names.jemalloc_allocated, stats.allocated_bytes as f64);
            gauge(&names.jemalloc_active, stats.active_bytes as f64);
            gauge(&names.jemalloc_resident, stats.resident_bytes as f64);
            gauge(&names.jemalloc_mapped, stats.mapped_bytes as f64);
            gauge(&names.jemalloc_retained, stats.retained_bytes as f64);
            gauge(&names.jemalloc_metadata, stats.metadata_bytes as f64);
        }
        if let Some(usage) = t.cgroup_usage_bytes {
            gauge(&names.cgroup_usage, usage as f64);
        }
        if let Some(limit) = t.cgroup_limit_bytes {
            gauge(&names.cgroup_limit, limit as f64);
        }
        metrics::histogram!(names.tick.clone()).record(t.tick_seconds);
    }

    /// Counts one change of pressure level.
    pub fn record_transition(&self, from: PressureLevel, to: PressureLevel) {
        self.describe_once();
        let name = self.inner.names.transitions.clone();
        metrics::counter!(name, "from" => from.as_str(), "to" => to.as_str()).increment(1);
    }

    /// Counts one connection refused because of memory pressure.
    pub fn record_rejected_connection(&self) {
        self.describe_once();
        metrics::counter!(self.inner.names.rejected_connections.clone()).increment(1);
    }

    /// Counts one reservation refused for `component` (undeclared names count
    /// under `other`).
    pub fn record_failed_reservation(&self, component: &'static str) {
        self.describe_once();
        let component = self.declared_or_other(component);
        let name = self.inner.names.reservation_failures.clone();
        metrics::counter!(name, "component" => component).increment(1);
    }

    /// Adds `bytes` to the bytes freed by reclaimers.
    pub fn record_reclaimed(&self, bytes: u64) {
        self.describe_once();
        metrics::counter!(self.inner.names.reclaimed.clone()).increment(bytes);
    }

    /// Runs [`MetricsRecorder::describe`] on the first call only.
    fn describe_once(&self) {
        self.inner.described.call_once(|| self.describe());
    }

    /// Sets `name{component}` for every declared component from `values`.
    fn record_by_component(&self, name: &SharedString, values: &[(&'static str, u64)]) {
        let mut other_bytes = 0u64;
        for &(component, bytes) in values {
            if self.declared_or_other(component) == OTHER_COMPONENT {
                other_bytes = other_bytes.saturating_add(bytes);
            }
        }
        for &component in &self.inner.components {
            let bytes = if component == OTHER_COMPONENT {
                other_bytes
            } else {
                values
                    .iter()
                    .filter(|(c, _)| *c == component)
                    .map(|&(_, b)| b)
                    .sum()
            };
            metrics::gauge!(name.clone(), "component" => component).set(bytes as f64);
        }
    }

    /// `component` if it was declared, else `other`.
    fn declared_or_other(&self, component: &'static str) -> &'static str {
        if self.inner.components.contains(&component) {
            component
        } else {
            OTHER_COMPONENT
        }
    }
}

impl Names {
    fn new(prefix: &str) -> Self {
        let name =
            |suffix: &str| SharedString::from_shared(Arc::from(format!("{prefix}_{suffix}")));
        Self {
            process_memory: name("process_memory_bytes"),
            process_anonymous_resident: name("process_anonymous_resident_bytes"),
            memory: name("memory_bytes"),
            pressure: name("memory_pressure"),
            limit: name("memory_limit_bytes"),
            warning_threshold: name("memory_warning_threshold_bytes"),
            critical_threshold: name("memory_critical_threshold_bytes"),
            usage: name("memory_usage_bytes"),
            tracked: name("memory_tracked_bytes"),
            correction: name("memory_correction_bytes"),
            reserved: name("memory_reserved_bytes"),
            jemalloc_allocated: name("jemalloc_allocated_bytes"),
            jemalloc_active: name("jemalloc_active_bytes"),
            jemalloc_resident: name("jemalloc_resident_bytes"),
            jemalloc_mapped: name("jemalloc_mapped_bytes"),
            jemalloc_retained: name("jemalloc_retained_bytes"),
            jemalloc_metadata: name("jemalloc_metadata_bytes"),
            cgroup_usage: name("cgroup_memory_usage_bytes"),
            cgroup_limit: name("cgroup_memory_limit_bytes"),
            tick: name("memory_monitor_tick_seconds"),
            transitions: name("memory_pressure_transitions_total"),
            rejected_connections: name("memory_rejected_connections_total"),
            reservation_failures: name("memory_reservation_failures_total"),
            reclaimed: name("memory_reclaimed_bytes_total"),
        }
    }
}

/// Gives every metric its unit and help text, naming where the figure comes
/// from.
fn describe_all(n: &Names) {
    let gauges: [(&SharedString, Unit, &'static str); 19] = [
        (
            &n.process_memory,
            Unit::Bytes,
            "Process memory in bytes as the OS reports it: type=resident is the resident set size \
             (VmRSS, resident_size), type=virtual the virtual size (VmSize, virtual_size)",
        ),
        (
            &n.process_anonymous_resident,
            Unit::Bytes,
            "Anonymous resident bytes of the process from /proc/self/status RssAnon (Linux): \
             resident memory that is not file-backed",
        ),
        (
            &n.memory,
            Unit::Bytes,
            "Live heap bytes per component counted by the allocator shim; component=other holds \
             bytes outside every declared component",
        ),
        (
            &n.pressure,
            Unit::Count,
            "Memory pressure level decided by the monitor: 1 for the current level, 0 for the \
             others",
        ),
        (
            &n.limit,
            Unit::Bytes,
            "Memory budget in bytes from --memory-limit, or derived from the cgroup limit or \
             physical memory",
        ),
        (
            &n.warning_threshold,
            Unit::Bytes,
            "Usage in bytes at which the level becomes warning: the limit times \
             --memory-warning-threshold",
        ),
        (
            &n.critical_threshold,
            Unit::Bytes,
            "Usage in bytes at which the level becomes critical: the limit times \
             --memory-critical-threshold",
        ),
        (
            &n.usage,
            Unit::Bytes,
            "Usage in bytes that pressure levels are decided on: tracked bytes plus the last \
             correction",
        ),
        (
            &n.tracked,
            Unit::Bytes,
            "Live heap bytes counted exactly by the allocator shim (sum of all thread counters)",
        ),
        (
            &n.correction,
            Unit::Bytes,
            "Measured bytes (jemalloc resident or the OS resident set) minus tracked bytes, in \
             bytes; negative when the shim counts more",
        ),
        (
            &n.reserved,
            Unit::Bytes,
            "Bytes held by budget reservations per component",
        ),
        (
            &n.jemalloc_allocated,
            Unit::Bytes,
            "jemalloc stats.allocated: bytes in live allocations, rounded up to size classes",
        ),
        (
            &n.jemalloc_active,
            Unit::Bytes,
            "jemalloc stats.active: bytes in active pages, at least stats.allocated",
        ),
        (
            &n.jemalloc_resident,
            Unit::Bytes,
            "jemalloc stats.resident: bytes in physically resident data pages mapped by jemalloc",
        ),
        (
            &n.jemalloc_mapped,
            Unit::Bytes,
            "jemalloc stats.mapped: bytes in active extents mapped by jemalloc",
        ),
        (
            &n.jemalloc_retained,
            Unit::Bytes,
            "jemalloc stats.retained: bytes of virtual memory jemalloc keeps but has returned to \
             the OS",
        ),
        (
            &n.jemalloc_metadata,
            Unit::Bytes,
            "jemalloc stats.metadata: bytes of jemalloc's own metadata",
        ),
        (
            &n.cgroup_usage,
            Unit::Bytes,
            "Memory usage of the process's cgroup in bytes (memory.current, or \
             memory.usage_in_bytes on cgroup v1)",
        ),
        (
            &n.cgroup_limit,
            Unit::Bytes,
            "Memory limit of the process's cgroup in bytes (memory.max, or memory.limit_in_bytes \
             on cgroup v1); absent when unlimited",
        ),
    ];
    for (name, unit, help) in gauges {
        describe_gauge!(name.clone(), unit, help);
    }
    describe_histogram!(
        n.tick.clone(),
        Unit::Seconds,
        "Time in seconds the memory monitor took for one tick: reading counters, jemalloc and OS \
         figures, and deciding the level"
    );
    let counters: [(&SharedString, Unit, &'static str); 4] = [
        (
            &n.transitions,
            Unit::Count,
            "Changes of memory pressure level decided by the monitor, by previous level (from) \
             and new level (to)",
        ),
        (
            &n.rejected_connections,
            Unit::Count,
            "Connections refused because memory pressure was critical",
        ),
        (
            &n.reservation_failures,
            Unit::Count,
            "Budget reservations refused because they would exceed the budget, by component",
        ),
        (
            &n.reclaimed,
            Unit::Bytes,
            "Bytes freed by registered reclaimers (cache shrinking and eviction) and allocator \
             purges, in bytes",
        ),
    ];
    for (name, unit, help) in counters {
        describe_counter!(name.clone(), unit, help);
    }
}

/// Whether `prefix` matches `[a-zA-Z_][a-zA-Z0-9_]*` without a leading `__`.
fn is_valid_prefix(prefix: &str) -> bool {
    let mut chars = prefix.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !prefix.starts_with("__")
}
