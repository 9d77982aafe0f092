//! A free is charged to the component that made the allocation, on another
//! thread or outside any scope.

mod common;

use std::thread;

use common::{bytes_of, Component};
use mempressure_alloc::scope;

#[test]
fn free_on_another_thread_in_another_scope_is_charged_to_the_owner() {
    // Arrange: a 64 KiB buffer made under `segment_cache`.
    let buf = {
        let _scope = scope!(Component::SegmentCache);
        vec![1u8; 64 * 1024]
    };
    assert_eq!(bytes_of(Component::SegmentCache), 64 * 1024);
    let index_before = bytes_of(Component::IndexCache);

    // Act: free it on another thread inside `index_cache`.
    thread::spawn(move || {
        let _scope = scope!(Component::IndexCache);
        drop(buf);
    })
    .join()
    .unwrap();

    // Assert: the owner is back to zero, the freeing scope untouched.
    assert_eq!(bytes_of(Component::SegmentCache), 0);
    assert_eq!(bytes_of(Component::IndexCache), index_before);
}

#[test]
fn free_outside_any_scope_is_charged_to_the_owner() {
    let bufs: Vec<Vec<u8>> = {
        let _scope = scope!(Component::RequestBuffers);
        (0..10).map(|i| vec![0u8; 2048 + i]).collect()
    };
    let outer_len = bufs.capacity() * std::mem::size_of::<Vec<u8>>();
    let expected = (0..10).map(|i| 2048 + i).sum::<usize>() as u64;
    // The outer vector is small and charged to `other`.
    assert!(outer_len < mempressure_alloc::TAG_MIN_BYTES);
    assert_eq!(bytes_of(Component::RequestBuffers), expected);

    drop(bufs);

    assert_eq!(bytes_of(Component::RequestBuffers), 0);
}

#[test]
fn small_allocations_in_a_scope_are_charged_to_other() {
    let before = bytes_of(Component::Connections);
    let small = {
        let _scope = scope!(Component::Connections);
        vec![0u8; 100]
    };
    assert_eq!(bytes_of(Component::Connections), before);
    drop(small);
}
