//! Subscriptions: current level first, transitions in order, exact lag
//! counts, timeouts, async waits and close.

use std::num::NonZeroUsize;
use std::thread;
use std::time::Duration;

use mempressure::level::{PressureLevel, Reason, Transition, UsageSource};
use mempressure::subscribe::{Event, Publisher, RecvTimeoutError, TryRecvError};

/// Generous bound for waits that should succeed; never reached when the
/// code is right, so the tests assert no timing.
const PATIENCE: Duration = Duration::from_secs(10);

fn transition(sequence: u64, from: PressureLevel, to: PressureLevel) -> Transition {
    Transition {
        from,
        to,
        usage_bytes: sequence,
        limit_bytes: 1000,
        sequence,
        reason: Reason {
            decided_by: UsageSource::Injected,
            tracked_bytes: sequence,
            measured_bytes: None,
            top_components: Vec::new(),
        },
    }
}

/// Alternates warning and normal: transition `n` goes to warning if odd.
fn nth(sequence: u64) -> Transition {
    if sequence % 2 == 1 {
        transition(sequence, PressureLevel::Normal, PressureLevel::Warning)
    } else {
        transition(sequence, PressureLevel::Warning, PressureLevel::Normal)
    }
}

fn sequence_of(event: Event) -> u64 {
    match event {
        Event::Transition(t) => t.sequence,
        other => panic!("expected a transition, got {other:?}"),
    }
}

#[test]
fn new_subscriber_receives_the_current_level_first() {
    let publisher = Publisher::new(PressureLevel::Normal);
    publisher.publish(transition(
        1,
        PressureLevel::Normal,
        PressureLevel::Critical,
    ));

    let mut subscription = publisher.subscribe();

    let current = Event::Current {
        level: PressureLevel::Critical,
        sequence: 1,
    };
    assert_eq!(subscription.try_recv(), Ok(current));
    assert_eq!(subscription.try_recv(), Err(TryRecvError::Empty));
}

#[test]
fn transitions_arrive_in_order() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let mut subscription = publisher.subscribe();
    assert!(matches!(
        subscription.try_recv(),
        Ok(Event::Current { sequence: 0, .. })
    ));

    for sequence in 1..=64 {
        publisher.publish(nth(sequence));
    }

    let received: Vec<u64> = (0..64)
        .map(|_| sequence_of(subscription.try_recv().unwrap()))
        .collect();
    assert_eq!(received, (1..=64).collect::<Vec<_>>());
}

#[test]
fn lagging_subscriber_learns_exactly_how_many_it_missed_then_the_current_level() {
    let capacity = NonZeroUsize::new(8).unwrap();
    let publisher = Publisher::with_capacity(PressureLevel::Normal, capacity);
    let mut subscription = publisher.subscribe();
    assert!(matches!(subscription.try_recv(), Ok(Event::Current { .. })));
    publisher.publish(nth(1));
    assert_eq!(sequence_of(subscription.try_recv().unwrap()), 1);

    // 2..=21: twenty transitions into a buffer of eight.
    for sequence in 2..=21 {
        publisher.publish(nth(sequence));
    }

    assert_eq!(subscription.try_recv(), Ok(Event::Lagged { missed: 20 }));
    let current = Event::Current {
        level: PressureLevel::Warning,
        sequence: 21,
    };
    assert_eq!(subscription.try_recv(), Ok(current));
    assert_eq!(subscription.try_recv(), Err(TryRecvError::Empty));
    // It goes on from there.
    publisher.publish(nth(22));
    assert_eq!(sequence_of(subscription.try_recv().unwrap()), 22);
}

#[test]
fn subscriber_exactly_at_capacity_does_not_lag() {
    let capacity = NonZeroUsize::new(4).unwrap();
    let publisher = Publisher::with_capacity(PressureLevel::Normal, capacity);
    let mut subscription = publisher.subscribe();
    subscription.try_recv().unwrap();

    for sequence in 1..=4 {
        publisher.publish(nth(sequence));
    }

    for sequence in 1..=4 {
        assert_eq!(sequence_of(subscription.try_recv().unwrap()), sequence);
    }
}

#[test]
fn blocking_receive_times_out_when_nothing_happens() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let mut subscription = publisher.subscribe();
    subscription.try_recv().unwrap();

    let result = subscription.recv_timeout(Duration::from_millis(20));

    assert_eq!(result, Err(RecvTimeoutError::Timeout));
}

#[test]
fn blocking_receive_wakes_on_a_publish_from_another_thread() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let mut subscription = publisher.subscribe();
    subscription.try_recv().unwrap();

    let receiver = thread::spawn(move || subscription.recv_timeout(PATIENCE));
    publisher.publish(nth(1));

    assert_eq!(sequence_of(receiver.join().unwrap().unwrap()), 1);
}

#[test]
fn subscriber_drains_then_sees_closed_after_the_publisher_is_dropped() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let mut subscription = publisher.subscribe();
    publisher.publish(nth(1));
    drop(publisher);

    assert!(matches!(subscription.try_recv(), Ok(Event::Current { .. })));
    assert_eq!(sequence_of(subscription.try_recv().unwrap()), 1);
    assert_eq!(subscription.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(
        subscription.recv_timeout(PATIENCE),
        Err(RecvTimeoutError::Closed)
    );
}

#[test]
fn blocked_receiver_is_released_by_close() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let mut subscription = publisher.subscribe();
    subscription.try_recv().unwrap();

    let receiver = thread::spawn(move || subscription.recv_timeout(PATIENCE));
    drop(publisher);

    assert_eq!(receiver.join().unwrap(), Err(RecvTimeoutError::Closed));
}

#[cfg(feature = "tokio")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_receive_gets_transitions_published_from_another_thread() {
    // Room for all 100, so the receiver cannot lag however it is scheduled.
    let capacity = NonZeroUsize::new(128).unwrap();
    let publisher = Publisher::with_capacity(PressureLevel::Normal, capacity);
    let mut subscription = publisher.subscribe();
    assert!(matches!(
        subscription.recv().await,
        Ok(Event::Current { .. })
    ));

    let sender = thread::spawn(move || {
        for sequence in 1..=100 {
            publisher.publish(nth(sequence));
        }
    });

    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(PATIENCE, subscription.recv()).await {
            Ok(Ok(event)) => received.push(sequence_of(event)),
            Ok(Err(_closed)) => break,
            Err(elapsed) => panic!("no event within {PATIENCE:?}: {elapsed}"),
        }
    }
    sender.join().unwrap();
    assert_eq!(received, (1..=100).collect::<Vec<_>>());
}

#[cfg(feature = "tokio")]
#[tokio::test]
async fn cancelled_async_receive_loses_no_event() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let mut subscription = publisher.subscribe();
    subscription.recv().await.unwrap();

    // A receive cancelled while waiting...
    let cancelled = tokio::time::timeout(Duration::from_millis(10), subscription.recv()).await;
    assert!(cancelled.is_err());

    // ...leaves the next event for the next receive.
    publisher.publish(nth(1));
    assert_eq!(sequence_of(subscription.recv().await.unwrap()), 1);
}

#[test]
fn subscription_reads_the_level_without_consuming_events() {
    let publisher = Publisher::new(PressureLevel::Normal);
    let subscription = publisher.subscribe();
    publisher.publish(nth(1));
    assert_eq!(subscription.level(), PressureLevel::Warning);
}
