//! Growing and shrinking a block keeps its count exact and its owner.

mod common;

use common::{bytes_of, Component};
use mempressure_alloc::scope;

#[test]
fn realloc_growth_and_shrink_are_exact() {
    // Arrange and act: grow from small (charged to `other`) to large.
    let mut buf: Vec<u8> = Vec::new();
    {
        let _scope = scope!(Component::RequestBuffers);
        for i in 0..300_000u32 {
            buf.push(i as u8);
        }
        // Assert: the component holds exactly the vector's capacity.
        assert_eq!(bytes_of(Component::RequestBuffers), buf.capacity() as u64);
    }

    // Growth in another scope keeps the owner.
    {
        let _scope = scope!(Component::IndexCache);
        buf.reserve_exact(1_000_000);
        assert_eq!(bytes_of(Component::RequestBuffers), buf.capacity() as u64);
        assert_eq!(bytes_of(Component::IndexCache), 0);
    }

    // Shrinking in place or by moving stays exact.
    buf.truncate(5000);
    buf.shrink_to_fit();
    assert_eq!(bytes_of(Component::RequestBuffers), buf.capacity() as u64);

    // Shrinking below the owner threshold hands the block to `other`.
    buf.truncate(10);
    buf.shrink_to_fit();
    assert_eq!(bytes_of(Component::RequestBuffers), 0);
    drop(buf);
    assert_eq!(bytes_of(Component::RequestBuffers), 0);
}
