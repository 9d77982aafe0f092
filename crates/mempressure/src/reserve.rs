//! Backpressure reservations: claim budget before allocating, or be refused.
//!
//! [`MemoryTracker`] is the reservation pool. A caller about to allocate a
//! large buffer (a request body, a batch of segments) first takes a
//! [`Reservation`] for its size; the pool grants it only if the monitor's
//! usage figure plus everything already reserved plus the request stays at
//! or below the critical threshold. So a reservation is never what pushes
//! usage past critical; when memory is tight the caller is told to wait or
//! to push back on its client instead.
//!
//! # Accounting rule
//!
//! A reservation is a claim on budget *ahead of* allocation. The monitor's
//! usage figure already includes every allocated byte, so once the buffer a
//! reservation stands for is allocated, its bytes are counted twice: once
//! in usage, once as reserved. Drop the reservation when the buffer is freed
//! or handed over (for example when a request body has been appended to the
//! log and the cache accounts for it). Until then the double count makes the
//! pool refuse a little early, never late: that is the safe side, and it is
//! bounded by the bytes held in reservations.
//!
//! # Names from the original request
//!
//! [`MemoryTracker::allocate`], [`MemoryTracker::current_usage`],
//! [`MemoryTracker::pressure_level`], [`MemoryGuard`] and [`MemoryPressure`]
//! are thin aliases over the reservation API for readers who know those
//! names.

use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::level::{AtomicLevel, PressureLevel};
use crate::machine::LevelConfig;

/// The component table used when the host declares none: only the
/// catch-all at index 0.
pub const DEFAULT_COMPONENTS: &[&str] = &["other"];

/// The original request's name for a [`Reservation`].
pub type MemoryGuard = Reservation;

/// The original request's name for a [`ReserveError`].
pub type MemoryPressure = ReserveError;

/// The reservation pool (named `MemoryTracker` after the original request).
///
/// Cheap to clone: clones share one pool. Components are indices into the
/// fixed name table given at construction; index 0 is the catch-all,
/// conventionally `"other"`.
///
/// # Examples
///
/// ```
/// use mempressure::machine::LevelConfig;
/// use mempressure::reserve::MemoryTracker;
///
/// const COMPONENTS: &[&str] = &["other", "request_buffers"];
/// let tracker = MemoryTracker::new(&LevelConfig::with_limit(1 << 30)?, COMPONENTS);
/// tracker.set_usage_bytes(900 << 20); // from the monitor
///
/// match tracker.try_reserve(1, 64 << 20) {
///     Ok(reservation) => {
///         // Read the request body; drop `reservation` once it is stored.
///         # drop(reservation);
///     }
///     Err(refused) => eprintln!("pushing back: {refused}"),
/// }
/// # Ok::<(), mempressure::machine::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct MemoryTracker {
    pool: Arc<Pool>,
}

/// Budget held for one component until dropped.
///
/// Dropping it returns its bytes to the pool and wakes waiting reservers.
#[derive(Debug)]
#[must_use = "a reservation returns its bytes as soon as it is dropped"]
pub struct Reservation {
    pool: Arc<Pool>,
    component: usize,
    bytes: u64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveError {
    /// The component index is not in the tracker's table.
    UnknownComponent {
        /// The index given.
        component: usize,
        /// How many components the table has.
        components: usize,
    },
    /// More bytes than the whole limit: a bug in the caller, not pressure.
    TooLarge {
        /// The bytes requested.
        bytes: u64,
        /// The memory limit.
        limit_bytes: u64,
    },
    /// Granting it would take usage plus reservations past critical.
    WouldExceedCritical(Shortfall),
    /// Waited the whole timeout without enough budget coming free.
    TimedOut {
        /// The figures at the last attempt.
        shortfall: Shortfall,
        /// How long the caller waited.
        waited: Duration,
    },
}

/// The figures behind a refusal for pressure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortfall {
    /// The component that asked.
    pub component: &'static str,
    /// The bytes requested.
    pub bytes: u64,
    /// The monitor's usage figure.
    pub usage_bytes: u64,
    /// Bytes held in reservations.
    pub reserved_bytes: u64,
    /// The critical threshold.
    pub critical_bytes: u64,
}

// ===== private state =====

/// The shared pool behind every tracker clone and reservation.
///
/// # Memory orderings
///
/// `usage_bytes`, `reserved_total_bytes` and `waiters` use `SeqCst`. A
/// waiter increments `waiters`, then reads the totals; a releaser lowers a
/// total, then reads `waiters`. Sequential consistency guarantees at least
/// one of them sees the other's write, so either the waiter sees the freed
/// budget or the releaser sees the waiter and wakes it. The per-component
/// counters are for display and use `Relaxed`; limits use `Relaxed` too,
/// as a stale limit only makes one decision a tick late.
#[derive(Debug)]
struct Pool {
    components: &'static [&'static str],
    limit_bytes: AtomicU64,
    critical_bytes: AtomicU64,
    usage_bytes: Arc<AtomicU64>,
    level: Arc<AtomicLevel>,
    reserved_total_bytes: AtomicU64,
    reserved_bytes: Box<[AtomicU64]>,
    failed_reservations: Box<[AtomicU64]>,
    /// Reservers currently waiting, blocking or async.
    waiters: AtomicUsize,
    /// Taken by blocking waiters around check-and-wait, and by wakers
    /// before notifying, so a wake-up cannot fall between the two.
    wait_lock: Mutex<()>,
    condvar: Condvar,
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

/// Counts a reserver as waiting for as long as it lives (cancel safe).
struct Waiting<'a>(&'a Pool);

// ===== impl MemoryTracker =====

impl MemoryTracker {
    /// A pool with the limit and critical threshold of `config`, its own
    /// usage figure (starting at 0) and its own level (normal).
    ///
    /// An empty `components` is replaced by [`DEFAULT_COMPONENTS`].
    pub fn new(config: &LevelConfig, components: &'static [&'static str]) -> Self {
        let level = Arc::new(AtomicLevel::new(PressureLevel::Normal));
        Self::with_sources(config, components, Arc::new(AtomicU64::new(0)), level)
    }

    /// A pool reading usage from `usage_bytes` (which the monitor updates)
    /// and the level from `level` (for example
    /// [`Publisher::level_handle`](crate::subscribe::Publisher::level_handle)).
    pub fn with_sources(
        config: &LevelConfig,
        components: &'static [&'static str],
        usage_bytes: Arc<AtomicU64>,
        level: Arc<AtomicLevel>,
    ) -> Self {
        let components = if components.is_empty() {
            DEFAULT_COMPONENTS
        } else {
            components
        };
        let counters = || components.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            pool: Arc::new(Pool {
                components,
                limit_bytes: AtomicU64::new(config.limit_bytes()),
                critical_bytes: AtomicU64::new(config.critical_bytes()),
                usage_bytes,
                level,
                reserved_total_bytes: AtomicU64::new(0),
                reserved_bytes: counters(),
                failed_reservations: counters(),
                waiters: AtomicUsize::new(0),
                wait_lock: Mutex::new(()),
                condvar: Condvar::new(),
                #[cfg(feature = "tokio")]
                notify: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Records the monitor's latest usage figure; wakes waiting reservers
    /// if it fell.
    pub fn set_usage_bytes(&self, usage_bytes: u64) {
        let before = self.pool.usage_bytes.swap(usage_bytes, Ordering::SeqCst);
        if usage_bytes < before {
            self.pool.wake_waiters();
        }
    }

    /// Takes the limit and critical threshold of a new config; wakes
    /// waiting reservers so they judge again. Reservations held stay held.
    pub fn set_config(&self, config: &LevelConfig) {
        self.pool
            .limit_bytes
            .store(config.limit_bytes(), Ordering::Relaxed);
        self.pool
            .critical_bytes
            .store(config.critical_bytes(), Ordering::Relaxed);
        self.pool.wake_waiters();
    }

    /// Reserves `bytes` for `component` if they fit now.
    ///
    /// Succeeds iff usage + reserved + `bytes` <= the critical threshold.
    /// A refusal for pressure is counted in
    /// [`failed_reservations`](Self::failed_reservations).
    ///
    /// # Errors
    ///
    /// [`ReserveError::WouldExceedCritical`] if the bytes do not fit;
    /// [`ReserveError::UnknownComponent`] or [`ReserveError::TooLarge`] for
    /// a request that could never succeed (these change nothing, counters
    /// included).
    pub fn try_reserve(&self, component: usize, bytes: u64) -> Result<Reservation, ReserveError> {
        self.pool.validate(component, bytes)?;
        self.pool.claim(component, bytes).map_err(|shortfall| {
            self.pool.count_failure(component);
            ReserveError::WouldExceedCritical(shortfall)
        })
    }

    /// Reserves `bytes` for `component`, blocking the thread up to `timeout`
    /// for budget to come free (a reservation dropped, usage falling, the
    /// limit rising).
    ///
    /// # Errors
    ///
    /// [`ReserveError::TimedOut`] (counted as one failed reservation) if
    /// the bytes did not fit in time; the same errors as
    /// [`try_reserve`](Self::try_reserve) for impossible requests.
    pub fn reserve_timeout(
        &self,
        component: usize,
        bytes: u64,
        timeout: Duration,
    ) -> Result<Reservation, ReserveError> {
        self.pool.validate(component, bytes)?;
        let started = Instant::now();
        let deadline = started.checked_add(timeout);
        let _waiting = Waiting::new(&self.pool);
        let mut guard = self
            .pool
            .wait_lock
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        loop {
            let shortfall = match self.pool.claim(component, bytes) {
                Ok(reservation) => return Ok(reservation),
                Err(shortfall) => shortfall,
            };
            let left = match deadline {
                None => Duration::MAX,
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
            };
            if left.is_zero() {
                self.pool.count_failure(component);
                return Err(ReserveError::TimedOut {
                    shortfall,
                    waited: started.elapsed(),
                });
            }
            guard = match self.pool.condvar.wait_timeout(guard, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Reserves `bytes` for `component`, waiting asynchronously up to
    /// `timeout` for budget to come free.
    ///
    /// # Errors
    ///
    /// As [`reserve_timeout`](Self::reserve_timeout).
    ///
    /// # Panics
    ///
    /// If called outside a Tokio runtime with the time driver enabled
    /// (Tokio's timer requirement).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: budget is claimed in one synchronous step that also
    /// returns the reservation, so a dropped future holds nothing.
    #[cfg(feature = "tokio")]
    pub async fn reserve(
        &self,
        component: usize,
        bytes: u64,
        timeout: Duration,
    ) -> Result<Reservation, ReserveError> {
        self.pool.validate(component, bytes)?;
        let started = tokio::time::Instant::now();
        let deadline = started.checked_add(timeout);
        let _waiting = Waiting::new(&self.pool);
        loop {
            // Register before checking, so a release between the check and
            // the await still wakes this task.
            let notified = self.pool.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            let shortfall = match self.pool.claim(component, bytes) {
                Ok(reservation) => return Ok(reservation),
                Err(shortfall) => shortfall,
            };
            match deadline {
                None => notified.await,
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        self.pool.count_failure(component);
                        let waited = started.elapsed();
                        return Err(ReserveError::TimedOut { shortfall, waited });
                    }
                }
            }
        }
    }

    /// The original request's `allocate`: reserves `size` bytes for the
    /// catch-all component, without waiting.
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Self::try_reserve).
    pub fn allocate(&self, size: usize) -> Result<MemoryGuard, MemoryPressure> {
        self.try_reserve(0, u64::try_from(size).unwrap_or(u64::MAX))
    }

    /// The original request's `current_usage`: the monitor's usage figure
    /// plus bytes held in reservations, the figure reservations are judged
    /// against.
    pub fn current_usage(&self) -> u64 {
        self.usage_bytes()
            .saturating_add(self.reserved_total_bytes())
    }

    /// The original request's `pressure_level`: the published level, one
    /// relaxed atomic load.
    pub fn pressure_level(&self) -> PressureLevel {
        self.pool.level.load()
    }

    /// The monitor's usage figure as last set.
    pub fn usage_bytes(&self) -> u64 {
        self.pool.usage_bytes.load(Ordering::SeqCst)
    }

    /// The shared usage figure, for the monitor to update directly.
    pub fn usage_handle(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.pool.usage_bytes)
    }

    /// The memory limit in force.
    pub fn limit_bytes(&self) -> u64 {
        self.pool.limit_bytes.load(Ordering::Relaxed)
    }

    /// The critical threshold: usage plus reservations never pass it
    /// through a reservation.
    pub fn critical_bytes(&self) -> u64 {
        self.pool.critical_bytes.load(Ordering::Relaxed)
    }

    /// Bytes that could be reserved right now.
    pub fn available_bytes(&self) -> u64 {
        self.critical_bytes().saturating_sub(self.current_usage())
    }

    /// The component name table; index 0 is the catch-all.
    pub fn components(&self) -> &'static [&'static str] {
        self.pool.components
    }

    /// Bytes reserved by `component` (0 for an unknown index).
    pub fn reserved_bytes(&self, component: usize) -> u64 {
        self.pool
            .reserved_bytes
            .get(component)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Bytes reserved by all components.
    pub fn reserved_total_bytes(&self) -> u64 {
        self.pool.reserved_total_bytes.load(Ordering::SeqCst)
    }

    /// Bytes reserved per component, in table order.
    pub fn reserved_by_component(&self) -> Vec<(&'static str, u64)> {
        let counters = self.pool.reserved_bytes.iter();
        self.pool
            .components
            .iter()
            .zip(counters)
            .map(|(n, c)| (*n, c.load(Ordering::Relaxed)))
            .collect()
    }

    /// Reservations refused for pressure (or timed out) for `component`
    /// since start (0 for an unknown index).
    pub fn failed_reservations(&self, component: usize) -> u64 {
        self.pool
            .failed_reservations
            .get(component)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
}

// ===== impl Reservation =====

impl Reservation {
    /// Bytes still held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The component index it was taken for.
    pub fn component(&self) -> usize {
        self.component
    }

    /// The component name it was taken for.
    pub fn component_name(&self) -> &'static str {
        self.pool.component_name(self.component)
    }

    /// Returns up to `bytes` to the pool now, keeping the rest; returns how
    /// many bytes were returned (at most what was held).
    pub fn shrink(&mut self, bytes: u64) -> u64 {
        let released = bytes.min(self.bytes);
        if released > 0 {
            self.bytes -= released;
            self.pool.release(self.component, released);
        }
        released
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.pool.release(self.component, self.bytes);
        }
    }
}

// ===== impl ReserveError =====

impl ReserveError {
    /// Whether the refusal is due to memory pressure (worth retrying later),
    /// rather than a request that can never succeed.
    pub fn is_pressure(&self) -> bool {
        matches!(self, Self::WouldExceedCritical(_) | Self::TimedOut { .. })
    }
}

impl fmt::Display for ReserveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownComponent {
                component,
                components,
            } => write!(
                f,
                "unknown component index {component}: the table has {components} components"
            ),
            Self::TooLarge { bytes, limit_bytes } => write!(
                f,
                "cannot reserve {bytes} bytes: more than the whole memory limit of {limit_bytes} \
                 bytes"
            ),
            Self::WouldExceedCritical(shortfall) => write!(f, "memory pressure: {shortfall}"),
            Self::TimedOut { shortfall, waited } => {
                write!(f, "memory pressure, gave up after {waited:?}: {shortfall}")
            }
        }
    }
}

impl fmt::Display for Shortfall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} bytes for {} do not fit (usage {} + reserved {} bytes, critical at {} bytes)",
            self.bytes, self.component, self.usage_bytes, self.reserved_bytes, self.critical_bytes
        )
    }
}

impl Error for ReserveError {}

// ===== impl Pool =====

impl Pool {
    /// Refuses requests that could never succeed.
    fn validate(&self, component: usize, bytes: u64) -> Result<(), ReserveError> {
        if component >= self.components.len() {
            let components = self.components.len();
            return Err(ReserveError::UnknownComponent {
                component,
                components,
            });
        }
        let limit_bytes = self.limit_bytes.load(Ordering::Relaxed);
        if bytes > limit_bytes {
            return Err(ReserveError::TooLarge { bytes, limit_bytes });
        }
        Ok(())
    }

    /// Adds `bytes` to the reserved total if usage + reserved + `bytes`
    /// stays at or below critical (compare-and-swap, so concurrent claims
    /// can never together pass it). `component` must be valid.
    fn claim(self: &Arc<Self>, component: usize, bytes: u64) -> Result<Reservation, Shortfall> {
        let critical_bytes = self.critical_bytes.load(Ordering::Relaxed);
        let mut reserved_bytes = self.reserved_total_bytes.load(Ordering::SeqCst);
        loop {
            let usage_bytes = self.usage_bytes.load(Ordering::SeqCst);
            let after = usage_bytes
                .checked_add(reserved_bytes)
                .and_then(|s| s.checked_add(bytes));
            if after.is_none_or(|after| after > critical_bytes) {
                let component = self.component_name(component);
                return Err(Shortfall {
                    component,
                    bytes,
                    usage_bytes,
                    reserved_bytes,
                    critical_bytes,
                });
            }
            match self.reserved_total_bytes.compare_exchange_weak(
                reserved_bytes,
                reserved_bytes + bytes,
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => break,
                Err(actual) => reserved_bytes = actual,
            }
        }
        if let Some(counter) = self.reserved_bytes.get(component) {
            counter.fetch_add(bytes, Ordering::Relaxed);
        }
        Ok(Reservation {
            pool: Arc::clone(self),
            component,
            bytes,
        })
    }

    /// Returns `bytes` held by `component` and wakes waiters.
    fn release(&self, component: usize, bytes: u64) {
        if let Some(counter) = self.reserved_bytes.get(component) {
            counter.fetch_sub(bytes, Ordering::Relaxed);
        }
        self.reserved_total_bytes.fetch_sub(bytes, Ordering::SeqCst);
        self.wake_waiters();
    }

    fn component_name(&self, component: usize) -> &'static str {
        self.components
            .get(component)
            .copied()
            .unwrap_or(DEFAULT_COMPONENTS[0])
    }

    fn count_failure(&self, component: usize) {
        if let Some(counter) = self.failed_reservations.get(component) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Wakes every waiting reserver, if there is one (so a release with no
    /// waiter takes no lock).
    fn wake_waiters(&self) {
        if self.waiters.load(Ordering::SeqCst) == 0 {
            return;
        }
        {
            // Taking the lock orders this wake-up after any blocking
            // waiter's check, so it is waiting by the time we notify.
            let _guard = self
                .wait_lock
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            self.condvar.notify_all();
        }
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }
}

impl<'a> Waiting<'a> {
    fn new(pool: &'a Pool) -> Self {
        pool.waiters.fetch_add(1, Ordering::SeqCst);
        Self(pool)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiter_count_returns_to_zero_after_a_timed_out_wait() {
        let config = LevelConfig::with_limit(1000).unwrap();
        let tracker = MemoryTracker::new(&config, DEFAULT_COMPONENTS);
        let _held = tracker.try_reserve(0, 900).unwrap();

        let result = tracker.reserve_timeout(0, 1, Duration::from_millis(1));

        assert!(result.is_err());
        // Releases take no lock again once nobody waits.
        assert_eq!(tracker.pool.waiters.load(Ordering::SeqCst), 0);
    }
}
