//! Reclaimers: caches and pools that give memory back when asked.
//!
//! A cache implements [`Reclaimer`] and registers with the monitor's
//! [`ReclaimerRegistry`]; the registration lasts as long as the returned
//! [`ReclaimerHandle`]. On pressure the monitor calls
//! [`ReclaimerRegistry::reclaim`] with a target and an [`Urgency`].
//!
//! Reclaimers run on the caller's thread with no lock of this module held:
//! the registry copies its list of `Arc`s first, so a reclaimer may register
//! or unregister others, or take its own locks, freely. A reclaimer that
//! panics is reported as having freed nothing; the panic does not reach the
//! caller and poisons nothing here.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

/// Something that can free memory on request.
pub trait Reclaimer: Send + Sync {
    /// A short, fixed name for logs and metric labels (`"segment_cache"`).
    fn name(&self) -> &'static str;

    /// Frees what `request` asks for, as best it can; returns the bytes
    /// freed (an estimate is fine).
    fn reclaim(&self, request: ReclaimRequest) -> u64;
}

/// What a reclaimer is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReclaimRequest {
    /// How many bytes to free. See [`Urgency`] for how it is shared out.
    pub target_bytes: u64,
    /// How hard to try.
    pub urgency: Urgency,
}

/// How hard a reclaimer should try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Urgency {
    /// Warning level: shrink toward the target, keeping the hottest data.
    /// Reclaimers are asked in turn, each for what is still missing, until
    /// the target is met.
    Gentle,
    /// Critical level: evict. Every reclaimer is asked for the full target.
    Hard,
    /// Stuck at critical after a hard round: free everything that can be
    /// rebuilt. Every reclaimer is asked for the full target.
    Desperate,
}

impl Urgency {
    /// The lower-case name used in logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gentle => "gentle",
            Self::Hard => "hard",
            Self::Desperate => "desperate",
        }
    }
}

impl fmt::Display for Urgency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a round of reclaiming achieved.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReclaimOutcome {
    /// Bytes freed by all reclaimers together.
    pub freed_bytes: u64,
    /// Each reclaimer asked, in the order asked, with the bytes it freed.
    pub per_reclaimer: Vec<(&'static str, u64)>,
    /// Reclaimers that panicked (also listed with 0 in `per_reclaimer`).
    pub panicked: Vec<&'static str>,
}

/// The set of registered reclaimers. Cheap to clone: clones share one set.
#[derive(Clone, Default)]
pub struct ReclaimerRegistry {
    inner: Arc<Mutex<Entries>>,
}

/// Keeps a reclaimer registered; dropping it unregisters.
///
/// Holds the registry weakly, so a handle does not keep it alive.
#[must_use = "the reclaimer is unregistered as soon as the handle is dropped"]
pub struct ReclaimerHandle {
    registry: Weak<Mutex<Entries>>,
    id: u64,
    name: &'static str,
}

#[derive(Default)]
struct Entries {
    next_id: u64,
    /// In registration order.
    list: Vec<(u64, Arc<dyn Reclaimer>)>,
}

impl ReclaimerRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `reclaimer`, asked after every one registered before it.
    pub fn register(&self, reclaimer: Arc<dyn Reclaimer>) -> ReclaimerHandle {
        let name = reclaimer.name();
        let mut entries = lock(&self.inner);
        let id = entries.next_id;
        entries.next_id += 1;
        entries.list.push((id, reclaimer));
        ReclaimerHandle {
            registry: Arc::downgrade(&self.inner),
            id,
            name,
        }
    }

    /// How many reclaimers are registered.
    pub fn len(&self) -> usize {
        lock(&self.inner).list.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Asks reclaimers, in registration order, to free `target_bytes`.
    ///
    /// With [`Urgency::Gentle`] each is asked for what is still missing and
    /// the round stops once the target is met; with [`Urgency::Hard`] and
    /// [`Urgency::Desperate`] every reclaimer is asked for the full target.
    /// A reclaimer registered or unregistered during the round is not seen
    /// by it.
    pub fn reclaim(&self, target_bytes: u64, urgency: Urgency) -> ReclaimOutcome {
        let snapshot: Vec<Arc<dyn Reclaimer>> = lock(&self.inner)
            .list
            .iter()
            .map(|(_, r)| Arc::clone(r))
            .collect();
        let mut outcome = ReclaimOutcome::default();
        for reclaimer in snapshot {
            let missing_bytes = target_bytes.saturating_sub(outcome.freed_bytes);
            if urgency == Urgency::Gentle && missing_bytes == 0 {
                break;
            }
            let asked_bytes = if urgency == Urgency::Gentle {
                missing_bytes
            } else {
                target_bytes
            };
            let request = ReclaimRequest {
                target_bytes: asked_bytes,
                urgency,
            };
            let name = reclaimer.name();
            let freed_bytes =
                match panic::catch_unwind(AssertUnwindSafe(|| reclaimer.reclaim(request))) {
                    Ok(freed_bytes) => freed_bytes,
                    Err(_) => {
                        tracing::error!(reclaimer = name, %urgency, "reclaimer panicked");
                        outcome.panicked.push(name);
                        0
                    }
                };
            outcome.freed_bytes = outcome.freed_bytes.saturating_add(freed_bytes);
            outcome.per_reclaimer.push((name, freed_bytes));
        }
        outcome
    }
}

impl fmt::Debug for ReclaimerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = lock(&self.inner);
        let names: Vec<_> = entries.list.iter().map(|(_, r)| r.name()).collect();
        f.debug_struct("ReclaimerRegistry")
            .field("reclaimers", &names)
            .finish()
    }
}

impl ReclaimerHandle {
    /// The registered reclaimer's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl Drop for ReclaimerHandle {
    fn drop(&mut self) {
        if let Some(inner) = self.registry.upgrade() {
            // Removed under the lock, dropped after it: a reclaimer's own
            // Drop may use the registry.
            let removed = {
                let mut entries = lock(&inner);
                let index = entries.list.iter().position(|(id, _)| *id == self.id);
                index.map(|index| entries.list.remove(index))
            };
            drop(removed);
        }
    }
}

impl fmt::Debug for ReclaimerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReclaimerHandle")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish()
    }
}

/// Locks the list. No reclaimer runs under the lock, so the list is always
/// consistent and poisoning can be ignored.
fn lock(inner: &Mutex<Entries>) -> MutexGuard<'_, Entries> {
    inner.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Frees up to `capacity_bytes` per call and counts calls.
    struct Fixed {
        name: &'static str,
        capacity_bytes: u64,
        calls: AtomicU64,
    }

    impl Fixed {
        fn new(name: &'static str, capacity_bytes: u64) -> Arc<Self> {
            Arc::new(Self {
                name,
                capacity_bytes,
                calls: AtomicU64::new(0),
            })
        }
    }

    impl Reclaimer for Fixed {
        fn name(&self) -> &'static str {
            self.name
        }

        fn reclaim(&self, request: ReclaimRequest) -> u64 {
            self.calls.fetch_add(1, Ordering::Relaxed);
            request.target_bytes.min(self.capacity_bytes)
        }
    }

    #[test]
    fn gentle_stops_once_target_is_met_asking_only_for_what_is_missing() {
        let registry = ReclaimerRegistry::new();
        let (a, b, c) = (
            Fixed::new("a", 60),
            Fixed::new("b", 60),
            Fixed::new("c", 60),
        );
        let _handles = [a.clone(), b.clone(), c.clone()].map(|r| registry.register(r));

        let outcome = registry.reclaim(100, Urgency::Gentle);

        assert_eq!(outcome.freed_bytes, 100);
        assert_eq!(outcome.per_reclaimer, vec![("a", 60), ("b", 40)]);
        assert_eq!(c.calls.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn hard_asks_every_reclaimer_for_the_full_target() {
        let registry = ReclaimerRegistry::new();
        let _a = registry.register(Fixed::new("a", 1000));
        let _b = registry.register(Fixed::new("b", 30));

        let outcome = registry.reclaim(100, Urgency::Hard);

        assert_eq!(outcome.per_reclaimer, vec![("a", 100), ("b", 30)]);
        assert_eq!(outcome.freed_bytes, 130);
    }

    #[test]
    fn dropping_the_handle_unregisters() {
        let registry = ReclaimerRegistry::new();
        let handle = registry.register(Fixed::new("a", 10));
        assert_eq!(registry.len(), 1);
        drop(handle);
        assert!(registry.is_empty());
        assert_eq!(
            registry.reclaim(10, Urgency::Desperate),
            ReclaimOutcome::default()
        );
    }
    struct Panicking;

    impl Reclaimer for Panicking {
        fn name(&self) -> &'static str {
            "panicking"
        }

        fn reclaim(&self, _request: ReclaimRequest) -> u64 {
            panic!("reclaimer failure injected by the test");
        }
    }

    #[test]
    fn panicking_reclaimer_counts_as_zero_and_the_round_goes_on() {
        let registry = ReclaimerRegistry::new();
        let _p = registry.register(Arc::new(Panicking));
        let _a = registry.register(Fixed::new("a", 50));

        let outcome = registry.reclaim(50, Urgency::Gentle);

        assert_eq!(outcome.per_reclaimer, vec![("panicking", 0), ("a", 50)]);
        assert_eq!(outcome.panicked, vec!["panicking"]);
        // Nothing was poisoned: the registry still works.
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.reclaim(50, Urgency::Hard).freed_bytes, 50);
    }

    /// Registers another reclaimer from inside `reclaim`, which would
    /// deadlock if the registry's lock were held during the call.
    struct Registering {
        registry: ReclaimerRegistry,
        handles: Mutex<Vec<ReclaimerHandle>>,
    }

    impl Reclaimer for Registering {
        fn name(&self) -> &'static str {
            "registering"
        }

        fn reclaim(&self, _request: ReclaimRequest) -> u64 {
            let handle = self.registry.register(Fixed::new("late", 10));
            lock_handles(&self.handles).push(handle);
            0
        }
    }

    fn lock_handles(handles: &Mutex<Vec<ReclaimerHandle>>) -> MutexGuard<'_, Vec<ReclaimerHandle>> {
        handles.lock().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn reclaimer_may_use_the_registry_during_a_round() {
        let registry = ReclaimerRegistry::new();
        let registering = Arc::new(Registering {
            registry: registry.clone(),
            handles: Mutex::new(Vec::new()),
        });
        let _r = registry.register(registering.clone());

        let outcome = registry.reclaim(10, Urgency::Hard);

        // The reclaimer registered during the round is not asked in it.
        assert_eq!(outcome.per_reclaimer, vec![("registering", 0)]);
        assert_eq!(registry.len(), 2);
        lock_handles(&registering.handles).clear();
        assert_eq!(registry.len(), 1);
    }
}
