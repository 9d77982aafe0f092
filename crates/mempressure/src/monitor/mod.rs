//! The monitor: a thread that reads memory at every tick and whenever the
//! allocator shim signals a crossing, decides the pressure level and tells
//! everyone who asked.
//!
//! # Pressure semantics
//!
//! Levels are decided on one usage figure (see [`sample`]): real time
//! between ticks through the shim's total, anchored at every tick to what
//! the OS charges. Entering a level is immediate; leaving it needs usage
//! below the threshold less the hysteresis and the minimum dwell since the
//! last transition (see [`LevelMachine`]).
//!
//! At each tick above normal the monitor returns jemalloc's idle dirty pages
//! when they exceed 2 % of the budget, and asks the registered reclaimers to
//! free what lies above the warning exit point: gently at warning, hard at
//! critical. If critical then holds for `stuck_after` without usage falling
//! by 2 %, it purges every jemalloc arena, then asks the reclaimers for
//! everything, and from then on logs why the level holds every ten seconds.

mod config;
mod core;
pub mod sample;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

pub use self::config::{MonitorConfig, DEFAULT_COMPONENT_NAMES};
use self::core::MonitorCore;
use self::sample::{Sampler, SystemSampler};
use crate::budget::{budget_with_flag, BudgetError, BudgetSource, DefaultBudget};
use crate::jemalloc::JemallocStats;
use crate::level::{AtomicLevel, PressureLevel, UsageSource};
use crate::machine::{ConfigError, LevelConfig, LevelMachine};
use crate::os::cgroup::CgroupMemory;
use crate::os::ProcessMemory;
use crate::reclaim::{Reclaimer, ReclaimerHandle, ReclaimerRegistry};
use crate::reserve::{MemoryTracker, Reservation, ReserveError};
use crate::subscribe::{Publisher, Subscription};

/// What the monitor saw at its last tick.
#[derive(Debug, Clone, Default)]
pub struct MonitorReading {
    /// The level after the tick.
    pub level: PressureLevel,
    /// The figure levels are decided on, in bytes.
    pub usage_bytes: u64,
    /// Which reading gave the usage figure.
    pub decided_by: UsageSource,
    /// The shim's exact total of live bytes.
    pub tracked_bytes: u64,
    /// The OS or jemalloc figure the total was anchored to, if any.
    pub measured_bytes: Option<u64>,
    /// `measured - tracked`: what the shim does not see (allocator
    /// overhead, idle dirty pages, stacks, code); 0 without a measurement.
    pub correction_bytes: i64,
    /// The budget in bytes.
    pub limit_bytes: u64,
    /// The warning threshold in bytes.
    pub warning_bytes: u64,
    /// The critical threshold in bytes.
    pub critical_bytes: u64,
    /// Live bytes by component name, the catch-all first.
    pub components: Vec<(&'static str, u64)>,
    /// Reserved bytes by component name.
    pub reserved: Vec<(&'static str, u64)>,
    /// The OS's figures for the process.
    pub process: Option<ProcessMemory>,
    /// jemalloc's statistics.
    pub jemalloc: Option<JemallocStats>,
    /// The cgroup's figures.
    pub cgroup: Option<CgroupMemory>,
    /// How long the tick took.
    pub tick_duration: Duration,
    /// Ticks since the monitor started.
    pub ticks: u64,
}

/// Why a monitor could not start.
#[derive(Debug)]
pub enum StartError {
    /// The limit or thresholds are not valid together.
    Config(ConfigError),
    /// No budget was given and none could be found.
    Budget(BudgetError),
    /// The monitor thread could not be spawned.
    Thread(std::io::Error),
    /// The metric name prefix is not a valid Prometheus name prefix.
    #[cfg(feature = "metrics")]
    MetricsPrefix(crate::metrics::PrefixError),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "invalid memory configuration: {e}"),
            StartError::Budget(e) => write!(f, "no memory budget: {e}"),
            StartError::Thread(e) => write!(f, "could not start the monitor thread: {e}"),
            #[cfg(feature = "metrics")]
            StartError::MetricsPrefix(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Config(e) => Some(e),
            StartError::Budget(e) => Some(e),
            StartError::Thread(e) => Some(e),
            #[cfg(feature = "metrics")]
            StartError::MetricsPrefix(e) => Some(e),
        }
    }
}

/// What the monitor thread and every handle share.
pub(crate) struct Shared {
    pub(crate) level: Arc<AtomicLevel>,
    pub(crate) publisher: Publisher,
    pub(crate) reclaimers: ReclaimerRegistry,
    pub(crate) tracker: MemoryTracker,
    pub(crate) reading: Mutex<MonitorReading>,
    pub(crate) usage_bytes: AtomicU64,
    pub(crate) reclaimed_bytes: AtomicU64,
    pub(crate) rejected_connections: AtomicU64,
    pub(crate) components: &'static [&'static str],
    pub(crate) budget: DefaultBudget,
    #[cfg(feature = "metrics")]
    pub(crate) metrics: Option<crate::metrics::MetricsRecorder>,
    stop: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// A handle on the running monitor; clones share it.
///
/// ```no_run
/// let monitor = mempressure::Monitor::start(mempressure::MonitorConfig::new())?;
/// if monitor.level() == mempressure::PressureLevel::Critical {
///     // reject the connection
/// }
/// # Ok::<(), mempressure::StartError>(())
/// ```
#[derive(Clone)]
pub struct Monitor {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Monitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Monitor")
            .field("level", &self.level())
            .field("budget", &self.shared.budget)
            .finish_non_exhaustive()
    }
}

/// Drives a monitor by hand, with a clock of the caller's: for tests and for
/// hosts that run their own loop.
pub struct Ticker {
    core: MonitorCore,
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}

impl Ticker {
    /// One full tick at `now`.
    pub fn tick(&mut self, now: Instant) {
        let _ = self.core.tick(now);
    }

    /// What a crossing signal does between ticks, at `now`.
    pub fn wake(&mut self, now: Instant) {
        let _ = self.core.wake(now);
    }
}

impl Monitor {
    /// Starts the monitor thread over the real process.
    ///
    /// Logs the effective budget and where it came from.
    ///
    /// # Errors
    ///
    /// [`StartError`] when the configuration is invalid, no budget can be
    /// found, or the thread cannot be spawned.
    pub fn start(config: MonitorConfig) -> Result<Monitor, StartError> {
        Self::start_with_sampler(config, Box::new(SystemSampler::new()))
    }

    /// Starts the monitor thread over readings from `sampler`.
    ///
    /// # Errors
    ///
    /// As [`Monitor::start`].
    pub fn start_with_sampler(
        config: MonitorConfig,
        sampler: Box<dyn Sampler>,
    ) -> Result<Monitor, StartError> {
        let tick = config.tick.max(Duration::from_millis(1));
        let (monitor, mut ticker) = Self::manual(config, sampler)?;
        let shared = monitor.shared.clone();
        let handle = thread::Builder::new()
            .name("mempressure-monitor".into())
            .spawn(move || run(&shared, &mut ticker.core, tick))
            .map_err(StartError::Thread)?;
        if let Ok(mut slot) = monitor.shared.thread.lock() {
            *slot = Some(handle);
        }
        Ok(monitor)
    }

    /// A monitor without a thread, and the [`Ticker`] that drives it.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] or [`StartError::Budget`].
    pub fn manual(
        config: MonitorConfig,
        sampler: Box<dyn Sampler>,
    ) -> Result<(Monitor, Ticker), StartError> {
        // The budget: the flag, else the cgroup or physical memory.
        let budget = budget_with_flag(config.limit_bytes).map_err(StartError::Budget)?;
        let levels = LevelConfig::with_fractions(
            budget.limit_bytes,
            config.warning_fraction,
            config.critical_fraction,
            config.hysteresis_fraction,
        )
        .map_err(StartError::Config)?
        .with_min_dwell(config.min_dwell);
        tracing::info!(
            limit_bytes = levels.limit_bytes(),
            source = %budget.source,
            warning_bytes = levels.warning_bytes(),
            critical_bytes = levels.critical_bytes(),
            hysteresis_bytes = levels.hysteresis_bytes(),
            tick_ms = config.tick.as_millis() as u64,
            "memory budget"
        );

        // What handles and the thread share.
        #[cfg(feature = "metrics")]
        let metrics = match config.metrics_prefix.as_deref() {
            Some(prefix) => Some(
                crate::metrics::MetricsRecorder::new(prefix, config.components)
                    .map_err(StartError::MetricsPrefix)?,
            ),
            None => None,
        };
        let capacity = NonZeroUsize::new(config.subscriber_capacity).unwrap_or(NonZeroUsize::MIN);
        let publisher = Publisher::with_capacity(PressureLevel::Normal, capacity);
        let level = publisher.level_handle();
        let usage = Arc::new(AtomicU64::new(0));
        let tracker = MemoryTracker::with_sources(&levels, config.components, usage, level.clone());
        let count_cgroup = matches!(budget.source, BudgetSource::Cgroup { .. });
        let shared = Arc::new(Shared {
            level,
            publisher,
            reclaimers: ReclaimerRegistry::new(),
            tracker,
            reading: Mutex::new(MonitorReading::default()),
            usage_bytes: AtomicU64::new(0),
            reclaimed_bytes: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            components: config.components,
            budget,
            #[cfg(feature = "metrics")]
            metrics,
            stop: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let core = MonitorCore::new(
            shared.clone(),
            LevelMachine::new(levels),
            sampler,
            count_cgroup,
            config.stuck_after,
        );
        Ok((Monitor { shared }, Ticker { core }))
    }

    /// The current level: one relaxed atomic load, cheap enough for every
    /// accepted connection and every cache operation.
    #[inline]
    pub fn level(&self) -> PressureLevel {
        self.shared.level.load()
    }

    /// How many transitions there have been since start.
    pub fn transitions(&self) -> u64 {
        self.shared.level.snapshot().1
    }

    /// Subscribes to transitions; the first event is the current level.
    pub fn subscribe(&self) -> Subscription {
        self.shared.publisher.subscribe()
    }

    /// Registers a cache that frees memory on request; it stays registered
    /// until the handle is dropped.
    pub fn register_reclaimer(&self, reclaimer: Arc<dyn Reclaimer>) -> ReclaimerHandle {
        self.shared.reclaimers.register(reclaimer)
    }

    /// The reservation pool for backpressure.
    pub fn tracker(&self) -> &MemoryTracker {
        &self.shared.tracker
    }

    /// Reserves `bytes` for `component` unless that would cross critical.
    ///
    /// # Errors
    ///
    /// As [`MemoryTracker::try_reserve`].
    pub fn try_reserve(
        &self,
        component: impl Into<mempressure_alloc::ComponentId>,
        bytes: u64,
    ) -> Result<Reservation, ReserveError> {
        let component = component.into().index();
        let result = self.shared.tracker.try_reserve(component, bytes);
        #[cfg(feature = "metrics")]
        if let (Err(error), Some(metrics)) = (&result, &self.shared.metrics) {
            if error.is_pressure() {
                let name = self
                    .shared
                    .components
                    .get(component)
                    .copied()
                    .unwrap_or("other");
                metrics.record_failed_reservation(name);
            }
        }
        result
    }

    /// The last tick's reading.
    pub fn reading(&self) -> MonitorReading {
        self.shared
            .reading
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// The usage figure as of the last tick or crossing.
    pub fn usage_bytes(&self) -> u64 {
        self.shared.usage_bytes.load(Ordering::Relaxed)
    }

    /// The budget and where it came from.
    pub fn budget(&self) -> &DefaultBudget {
        &self.shared.budget
    }

    /// The component names by index.
    pub fn components(&self) -> &'static [&'static str] {
        self.shared.components
    }

    /// Bytes the reclaimers have reported freed since start.
    pub fn reclaimed_bytes(&self) -> u64 {
        self.shared.reclaimed_bytes.load(Ordering::Relaxed)
    }

    /// Counts a connection the host turned away under pressure.
    pub fn record_rejected_connection(&self) {
        self.shared
            .rejected_connections
            .fetch_add(1, Ordering::Relaxed);
        #[cfg(feature = "metrics")]
        if let Some(metrics) = &self.shared.metrics {
            metrics.record_rejected_connection();
        }
    }

    /// Connections the host turned away under pressure since start.
    pub fn rejected_connections(&self) -> u64 {
        self.shared.rejected_connections.load(Ordering::Relaxed)
    }

    /// Stops the monitor thread and waits for it; the level stays where it
    /// was. Calling it again does nothing.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let handle = self
            .shared
            .thread
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some(handle) = handle {
            handle.thread().unpark();
            let _ = handle.join();
        }
    }
}

/// How soon the monitor looks again when the shim's total was already past a
/// watermark as it was armed. Not at once: the total may stay there without
/// a transition (a step down held by the minimum dwell), and a quick look
/// every millisecond costs well under a thousandth of a core.
const RELOOK: Duration = Duration::from_millis(1);

/// The monitor thread: a full tick every `tick`, a quick look on every wake,
/// and another soon after when a crossing slipped in before the arming.
fn run(shared: &Shared, core: &mut MonitorCore, tick: Duration) {
    mempressure_alloc::register_waiter(thread::current());
    let mut next_tick = Instant::now();
    while !shared.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let outside = if now >= next_tick {
            next_tick = now + tick;
            core.tick(now)
        } else {
            core.wake(now)
        };
        let until_tick = next_tick.saturating_duration_since(Instant::now());
        thread::park_timeout(if outside {
            until_tick.min(RELOOK)
        } else {
            until_tick
        });
    }
    mempressure_alloc::clear_watermarks();
}
