//! Reservation basics: the critical bound, shrinking, the original
//! request's names and the default component table.

use mempressure::level::PressureLevel;
use mempressure::machine::LevelConfig;
use mempressure::reserve::{MemoryGuard, MemoryTracker, ReserveError, DEFAULT_COMPONENTS};

const COMPONENTS: &[&str] = &["other", "request_buffers"];

fn tracker() -> MemoryTracker {
    // Critical at 900 bytes.
    MemoryTracker::new(&LevelConfig::with_limit(1000).unwrap(), COMPONENTS)
}

#[test]
fn reservation_fits_exactly_up_to_critical() {
    let tracker = tracker();
    tracker.set_usage_bytes(400);
    let held = tracker.try_reserve(1, 500).unwrap();
    assert_eq!(tracker.available_bytes(), 0);
    let err = tracker.try_reserve(1, 1).unwrap_err();
    assert!(matches!(err, ReserveError::WouldExceedCritical(_)));
    assert_eq!(tracker.failed_reservations(1), 1);
    drop(held);
    assert_eq!(tracker.available_bytes(), 500);
}

#[test]
fn shrink_returns_at_most_what_is_held() {
    let tracker = tracker();
    let mut held = tracker.try_reserve(1, 300).unwrap();
    assert_eq!(held.shrink(100), 100);
    assert_eq!(tracker.reserved_bytes(1), 200);
    assert_eq!(held.shrink(1000), 200);
    assert_eq!(held.bytes(), 0);
    drop(held);
    assert_eq!(tracker.reserved_total_bytes(), 0);
}

#[test]
fn allocate_alias_reserves_for_the_catch_all() {
    let tracker = tracker();
    let guard: MemoryGuard = tracker.allocate(100).unwrap();
    assert_eq!(guard.component_name(), "other");
    assert_eq!(tracker.current_usage(), 100);
    assert_eq!(tracker.pressure_level(), PressureLevel::Normal);
}

#[test]
fn empty_component_table_falls_back_to_the_catch_all() {
    let tracker = MemoryTracker::new(&LevelConfig::with_limit(1000).unwrap(), &[]);
    assert_eq!(tracker.components(), DEFAULT_COMPONENTS);
    assert!(tracker.try_reserve(0, 1).is_ok());
}
