//! What a monitor is started with.

use std::time::Duration;

use mempressure_alloc::ComponentSet;

/// The component names used when the host declares none: the four the
/// original request names, behind the catch-all.
pub const DEFAULT_COMPONENT_NAMES: &[&str] = &[
    "other",
    "connections",
    "request_buffers",
    "segment_cache",
    "index_cache",
];

/// Settings of a [`Monitor`](super::Monitor), with the defaults of the
/// command-line flags.
///
/// ```
/// use std::time::Duration;
/// let config = mempressure::MonitorConfig::new()
///     .limit_bytes(1 << 30)
///     .thresholds(0.8, 0.9)
///     .tick(Duration::from_millis(100));
/// assert_eq!(config.limit(), Some(1 << 30));
/// ```
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub(crate) limit_bytes: Option<u64>,
    pub(crate) warning_fraction: f64,
    pub(crate) critical_fraction: f64,
    pub(crate) hysteresis_fraction: f64,
    pub(crate) min_dwell: Duration,
    pub(crate) tick: Duration,
    pub(crate) stuck_after: Duration,
    pub(crate) components: &'static [&'static str],
    pub(crate) metrics_prefix: Option<String>,
    pub(crate) subscriber_capacity: usize,
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            limit_bytes: None,
            warning_fraction: 0.8,
            critical_fraction: 0.9,
            hysteresis_fraction: 0.05,
            min_dwell: Duration::from_secs(1),
            tick: Duration::from_millis(100),
            stuck_after: Duration::from_secs(2),
            components: DEFAULT_COMPONENT_NAMES,
            metrics_prefix: Some("streamline".to_owned()),
            subscriber_capacity: 64,
        }
    }
}

impl MonitorConfig {
    /// The defaults: budget from the cgroup or physical memory, warning at
    /// 0.8, critical at 0.9, hysteresis 0.05, dwell 1 s, tick 100 ms,
    /// metrics prefixed `streamline`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the budget in bytes instead of taking it from the environment.
    pub fn limit_bytes(mut self, limit_bytes: u64) -> Self {
        self.limit_bytes = Some(limit_bytes);
        self
    }

    /// Sets the budget, or lets the monitor find one when `None`.
    pub fn limit_bytes_opt(mut self, limit_bytes: Option<u64>) -> Self {
        self.limit_bytes = limit_bytes;
        self
    }

    /// The explicit budget, if one was set.
    pub fn limit(&self) -> Option<u64> {
        self.limit_bytes
    }

    /// Sets the warning and critical thresholds as fractions of the budget.
    pub fn thresholds(mut self, warning_fraction: f64, critical_fraction: f64) -> Self {
        self.warning_fraction = warning_fraction;
        self.critical_fraction = critical_fraction;
        self
    }

    /// Sets how far below a threshold, as a fraction of the budget, usage
    /// must fall to leave its level.
    pub fn hysteresis(mut self, hysteresis_fraction: f64) -> Self {
        self.hysteresis_fraction = hysteresis_fraction;
        self
    }

    /// Sets the least time between a transition and a step down.
    pub fn min_dwell(mut self, min_dwell: Duration) -> Self {
        self.min_dwell = min_dwell;
        self
    }

    /// Sets the time between full readings.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Sets how long critical may hold without relief before the monitor
    /// purges the allocator and asks reclaimers for everything.
    pub fn stuck_after(mut self, stuck_after: Duration) -> Self {
        self.stuck_after = stuck_after;
        self
    }

    /// Names the components after the host's declared set.
    pub fn components<C: ComponentSet>(mut self) -> Self {
        self.components = C::NAMES;
        self
    }

    /// Names the components by index; index 0 is the catch-all.
    pub fn component_names(mut self, names: &'static [&'static str]) -> Self {
        self.components = names;
        self
    }

    /// Sets the metric name prefix, or `None` to record no metrics.
    pub fn metrics_prefix(mut self, prefix: Option<String>) -> Self {
        self.metrics_prefix = prefix;
        self
    }

    /// The settings the memory flags name; the rest keep their defaults.
    #[cfg(feature = "clap")]
    pub fn from_args(args: &crate::args::MemoryArgs) -> Self {
        MonitorConfig::new()
            .limit_bytes_opt(args.memory_limit)
            .thresholds(
                args.memory_warning_threshold,
                args.memory_critical_threshold,
            )
            .hysteresis(args.memory_hysteresis)
            .min_dwell(args.min_dwell())
            .tick(args.tick())
            .metrics_prefix(Some(args.metrics_prefix.clone()))
    }

    /// Sets how many transitions a lagging subscriber may fall behind.
    pub fn subscriber_capacity(mut self, capacity: usize) -> Self {
        self.subscriber_capacity = capacity;
        self
    }
}
