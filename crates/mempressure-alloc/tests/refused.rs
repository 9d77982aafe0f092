//! An allocation the inner allocator refuses changes no counter.

mod common;

use common::{bytes_of, Component};
use mempressure_alloc::scope;

#[test]
fn absurd_try_reserve_changes_nothing() {
    let _scope = scope!(Component::RequestBuffers);
    let mut grown = vec![0u8; 4096];
    let before = mempressure_alloc::snapshot();

    // A petabyte is past any address space jemalloc can map.
    let mut buf: Vec<u8> = Vec::new();
    assert!(buf.try_reserve_exact(1 << 50).is_err());
    assert!(grown.try_reserve_exact(1 << 50).is_err());
    assert_eq!(grown.capacity(), 4096);

    let after = mempressure_alloc::snapshot();
    assert_eq!(after.by_component(), before.by_component());
    assert_eq!(bytes_of(Component::RequestBuffers), 4096);
}
