//! A buffer's charge moves to a new owner without copying it.

mod common;

use common::{bytes_of, Component};
use mempressure_alloc::{scope, transfer_vec, ComponentId, TransferError};

#[test]
fn transfer_moves_the_charge_and_the_free_follows_it() {
    // Arrange: a request buffer.
    let buf = {
        let _scope = scope!(Component::RequestBuffers);
        vec![3u8; 32 * 1024]
    };
    let address = buf.as_ptr();

    // Act: keep it as a cache entry.
    let from = transfer_vec(&buf, Component::SegmentCache.into()).unwrap();

    // Assert: moved, not copied; and its free is charged to the new owner.
    assert_eq!(from, ComponentId::from(Component::RequestBuffers));
    assert_eq!(buf.as_ptr(), address);
    assert_eq!(bytes_of(Component::RequestBuffers), 0);
    assert_eq!(bytes_of(Component::SegmentCache), 32 * 1024);
    drop(buf);
    assert_eq!(bytes_of(Component::SegmentCache), 0);
}

#[test]
fn small_buffers_cannot_be_transferred() {
    let buf = vec![0u8; 100];
    let err = transfer_vec(&buf, Component::IndexCache.into()).unwrap_err();
    assert_eq!(err, TransferError::TooSmall { size_bytes: 100 });
    assert!(err.to_string().contains("100-byte"));
}
