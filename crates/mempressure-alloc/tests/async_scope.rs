//! The async wrapper keeps one task's bytes off another's component, even
//! when both run interleaved on one thread.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use common::{bytes_of, Component};
use mempressure_alloc::ScopeExt;

/// Yields once, so two tasks interleave poll by poll.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

struct NoopWake;
impl Wake for NoopWake {
    fn wake(self: Arc<Self>) {}
}

async fn fill(chunk_bytes: usize, chunks: usize) -> Vec<Vec<u8>> {
    let mut kept = Vec::new();
    for _ in 0..chunks {
        kept.push(vec![0u8; chunk_bytes]);
        YieldOnce(false).await;
    }
    kept
}

/// The bytes of the task's outer vector that its component owns: its
/// buffer once it reaches the size at which owners are kept.
fn owned_outer_bytes(kept: &Vec<Vec<u8>>) -> u64 {
    let bytes = kept.capacity() * std::mem::size_of::<Vec<u8>>();
    if bytes >= mempressure_alloc::TAG_MIN_BYTES {
        bytes as u64
    } else {
        0
    }
}

#[test]
fn interleaved_tasks_charge_their_own_components() {
    // Arrange: two tasks, each in its own component.
    let mut a = Box::pin(fill(4096, 50).in_scope(Component::Connections));
    let mut b = Box::pin(fill(8192, 50).in_scope(Component::SegmentCache));
    let waker = Waker::from(Arc::new(NoopWake));
    let mut cx = Context::from_waker(&waker);

    // Act: poll them alternately on this one thread.
    let (mut out_a, mut out_b) = (None, None);
    while out_a.is_none() || out_b.is_none() {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(&mut cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(&mut cx) {
                out_b = Some(v);
            }
        }
    }

    // Assert: each component holds exactly its own task's chunks, and the
    // polling thread is back outside any scope.
    let (a, b) = (out_a.unwrap(), out_b.unwrap());
    assert_eq!(
        bytes_of(Component::Connections),
        4096 * 50 + owned_outer_bytes(&a)
    );
    assert_eq!(
        bytes_of(Component::SegmentCache),
        8192 * 50 + owned_outer_bytes(&b)
    );
    assert_eq!(
        mempressure_alloc::current_component(),
        mempressure_alloc::ComponentId::OTHER
    );
    drop((a, b));
    assert_eq!(bytes_of(Component::Connections), 0);
}
