//! Zero-sized types cost nothing: no allocation reaches the counters.
//!
//! Alone in its binary: it compares whole snapshots, which another test
//! allocating meanwhile would disturb.

mod common;

#[test]
fn zero_sized_types_cost_nothing() {
    let before = mempressure_alloc::snapshot();
    let unit = Box::new(());
    let units = vec![(); 1_000_000];
    let after = mempressure_alloc::snapshot();
    assert_eq!(after.by_component(), before.by_component());
    drop((unit, units));
}
