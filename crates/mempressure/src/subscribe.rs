//! Level subscriptions: the current level at once, then every transition.
//!
//! The monitor owns a [`Publisher`]; anyone may hold a [`Subscription`].
//! A subscription first yields [`Event::Current`], then each
//! [`Event::Transition`] in order. The publisher keeps only the last
//! `capacity` transitions; a subscriber that falls further behind gets
//! [`Event::Lagged`] with the exact number it will never see, then
//! [`Event::Current`] again, and goes on from there.
//!
//! # Why not `tokio::sync::broadcast`
//!
//! broadcast reports lag but then resumes at the oldest retained value, has
//! no "current value first" and no blocking wait with a timeout, and needs
//! the `tokio` feature. This module is a ring buffer behind a `std` mutex,
//! a condition variable for blocking waits and, with the `tokio` feature, a
//! `tokio::sync::Notify` for async ones. The mutex is held only to copy
//! a few words or push one `Arc`; no user code runs under it.

use std::collections::VecDeque;
use std::error::Error;
use std::fmt;
use std::num::NonZeroUsize;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::level::{AtomicLevel, PressureLevel, Transition};

/// Default number of transitions kept for slow subscribers. Levels change a
/// few times per incident, so 64 covers minutes of flapping input while
/// costing only 64 `Arc`s.
pub const DEFAULT_CAPACITY: NonZeroUsize = match NonZeroUsize::new(64) {
    Some(capacity) => capacity,
    None => unreachable!(),
};

/// What a subscription yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The level in force, and the sequence number of the transition that
    /// set it (0 if none has happened). First on every new subscription,
    /// and again right after [`Event::Lagged`].
    Current {
        /// The level in force.
        level: PressureLevel,
        /// The sequence number of the transition that set it.
        sequence: u64,
    },
    /// A level change, in publishing order.
    Transition(Arc<Transition>),
    /// The subscriber fell behind the buffer; `missed` transitions were
    /// skipped and will not be delivered. An [`Event::Current`] follows.
    Lagged {
        /// How many transitions this subscription will never see.
        missed: u64,
    },
}

/// Why [`Subscription::try_recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing new yet.
    Empty,
    /// The publisher is gone and every event has been received.
    Closed,
}

/// Why [`Subscription::recv_timeout`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecvTimeoutError {
    /// Nothing arrived within the timeout.
    Timeout,
    /// The publisher is gone and every event has been received.
    Closed,
}

/// The publisher is gone and every event has been received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed;

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("no level event yet"),
            Self::Closed => Closed.fmt(f),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout => f.write_str("timed out waiting for a level event"),
            Self::Closed => Closed.fmt(f),
        }
    }
}

impl fmt::Display for Closed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("level publisher closed")
    }
}

impl Error for TryRecvError {}
impl Error for RecvTimeoutError {}
impl Error for Closed {}

/// The sending side, owned by the monitor. Dropping it closes every
/// subscription once drained.
#[derive(Debug)]
pub struct Publisher {
    shared: Arc<Shared>,
}

/// A receiving handle; see the module docs for what it yields.
///
/// Cloning a subscription copies its position: the clone yields the same
/// events from there on as the original, independently.
#[derive(Debug, Clone)]
pub struct Subscription {
    shared: Arc<Shared>,
    position: Position,
}

// ===== private state =====

#[derive(Debug)]
struct Shared {
    level: Arc<AtomicLevel>,
    ring: Mutex<Ring>,
    /// Wakes blocking receivers; used with `ring`.
    condvar: Condvar,
    /// Wakes async receivers.
    #[cfg(feature = "tokio")]
    notify: tokio::sync::Notify,
}

#[derive(Debug)]
struct Ring {
    /// The last `capacity` transitions, oldest first.
    transitions: VecDeque<Arc<Transition>>,
    capacity: usize,
    /// How many transitions were ever published; the position after the
    /// newest one.
    published: u64,
    current_level: PressureLevel,
    current_sequence: u64,
    closed: bool,
}

/// Where a subscription is in the stream of events.
#[derive(Debug, Clone)]
struct Position {
    /// Position (count of transitions ever published) of the next
    /// transition to yield.
    cursor: u64,
    /// An event owed before the next transition: the current level after
    /// subscribing or lagging.
    pending: Option<Event>,
}

/// What one look at the ring found.
enum Poll {
    Ready(Event),
    Empty,
    Closed,
}

// ===== impl Publisher =====

impl Publisher {
    /// A publisher starting at `level` (sequence 0), keeping
    /// [`DEFAULT_CAPACITY`] transitions.
    pub fn new(level: PressureLevel) -> Self {
        Self::with_capacity(level, DEFAULT_CAPACITY)
    }

    /// A publisher starting at `level`, keeping `capacity` transitions for
    /// slow subscribers.
    pub fn with_capacity(level: PressureLevel, capacity: NonZeroUsize) -> Self {
        let ring = Ring {
            // Grows on demand: a huge capacity costs nothing until used.
            transitions: VecDeque::with_capacity(capacity.get().min(DEFAULT_CAPACITY.get())),
            capacity: capacity.get(),
            published: 0,
            current_level: level,
            current_sequence: 0,
            closed: false,
        };
        Self {
            shared: Arc::new(Shared {
                level: Arc::new(AtomicLevel::new(level)),
                ring: Mutex::new(ring),
                condvar: Condvar::new(),
                #[cfg(feature = "tokio")]
                notify: tokio::sync::Notify::new(),
            }),
        }
    }

    /// Publishes a transition: stores its level in the shared
    /// [`AtomicLevel`], buffers it (dropping the oldest past capacity) and
    /// wakes every waiting subscriber.
    ///
    /// The publisher does not check that `transition.from` matches the
    /// previous level or that sequence numbers are consecutive; that is the
    /// state machine's job.
    pub fn publish(&self, transition: Transition) {
        let transition = Arc::new(transition);
        {
            let mut ring = self.shared.lock();
            if ring.transitions.len() == ring.capacity {
                ring.transitions.pop_front();
            }
            ring.current_level = transition.to;
            ring.current_sequence = transition.sequence;
            ring.published += 1;
            ring.transitions.push_back(Arc::clone(&transition));
            // Stored under the lock, so the atomic and the ring never
            // disagree for a subscriber that looks at both.
            self.shared.level.store(transition.to, transition.sequence);
        }
        self.shared.wake_all();
    }

    /// A new subscription; its first event is the current level.
    pub fn subscribe(&self) -> Subscription {
        let ring = self.shared.lock();
        Subscription {
            shared: Arc::clone(&self.shared),
            position: Position {
                cursor: ring.published,
                pending: Some(ring.current_event()),
            },
        }
    }

    /// The current level: one relaxed atomic load.
    pub fn level(&self) -> PressureLevel {
        self.shared.level.load()
    }

    /// The shared published level, for readers that need no events.
    pub fn level_handle(&self) -> Arc<AtomicLevel> {
        Arc::clone(&self.shared.level)
    }

    /// How many transitions are kept for slow subscribers.
    pub fn capacity(&self) -> usize {
        self.shared.lock().capacity
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake_all();
    }
}

// ===== impl Subscription =====

impl Subscription {
    /// The next event if one is ready, without waiting.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if nothing is ready, [`TryRecvError::Closed`]
    /// once the publisher is gone and everything has been received.
    pub fn try_recv(&mut self) -> Result<Event, TryRecvError> {
        let ring = self.shared.lock();
        match self.position.poll(&ring) {
            Poll::Ready(event) => Ok(event),
            Poll::Empty => Err(TryRecvError::Empty),
            Poll::Closed => Err(TryRecvError::Closed),
        }
    }

    /// The next event, blocking the thread for at most `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if nothing arrived in time,
    /// [`RecvTimeoutError::Closed`] once the publisher is gone and
    /// everything has been received.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Event, RecvTimeoutError> {
        // A timeout too large to add to now is as good as forever.
        let deadline = Instant::now().checked_add(timeout);
        let mut ring = self.shared.lock();
        loop {
            match self.position.poll(&ring) {
                Poll::Ready(event) => return Ok(event),
                Poll::Closed => return Err(RecvTimeoutError::Closed),
                Poll::Empty => {}
            }
            ring = match deadline {
                None => self
                    .shared
                    .condvar
                    .wait(ring)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Err(RecvTimeoutError::Timeout);
                    }
                    let (ring, _) = self
                        .shared
                        .condvar
                        .wait_timeout(ring, left)
                        .unwrap_or_else(PoisonError::into_inner);
                    ring
                }
            };
        }
    }

    /// The next event, waiting asynchronously.
    ///
    /// # Errors
    ///
    /// [`Closed`] once the publisher is gone and everything has been
    /// received.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the subscription's position moves only in the same
    /// synchronous step that returns an event, so dropping the future (in a
    /// `select!` losing branch, say) loses nothing.
    #[cfg(feature = "tokio")]
    pub async fn recv(&mut self) -> Result<Event, Closed> {
        loop {
            // Register interest before looking, so a publish between the
            // look and the await still wakes this task.
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let ring = self.shared.lock();
                match self.position.poll(&ring) {
                    Poll::Ready(event) => return Ok(event),
                    Poll::Closed => return Err(Closed),
                    Poll::Empty => {}
                }
            }
            notified.await;
        }
    }

    /// The current level: one relaxed atomic load. Does not consume events.
    pub fn level(&self) -> PressureLevel {
        self.shared.level.load()
    }
}

// ===== impl Position =====

impl Position {
    /// Takes the next event for this subscription from `ring`, moving the
    /// position past it.
    fn poll(&mut self, ring: &Ring) -> Poll {
        if let Some(event) = self.pending.take() {
            return Poll::Ready(event);
        }
        let oldest = ring.published - ring.transitions.len() as u64;
        if self.cursor < oldest {
            // Lagged: skip to the present, owing the current level.
            let missed = ring.published - self.cursor;
            self.cursor = ring.published;
            self.pending = Some(ring.current_event());
            return Poll::Ready(Event::Lagged { missed });
        }
        if self.cursor < ring.published {
            // In range: `cursor - oldest` < len, checked above.
            let index = (self.cursor - oldest) as usize;
            if let Some(transition) = ring.transitions.get(index) {
                self.cursor += 1;
                return Poll::Ready(Event::Transition(Arc::clone(transition)));
            }
        }
        if ring.closed {
            Poll::Closed
        } else {
            Poll::Empty
        }
    }
}

// ===== impl Shared, Ring =====

impl Shared {
    /// Locks the ring. Nothing that can panic runs under the lock, but if
    /// something did, the ring is still consistent (each update is a few
    /// plain writes), so poisoning is ignored.
    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn wake_all(&self) {
        self.condvar.notify_all();
        #[cfg(feature = "tokio")]
        self.notify.notify_waiters();
    }
}

impl Ring {
    fn current_event(&self) -> Event {
        Event::Current {
            level: self.current_level,
            sequence: self.current_sequence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::level::{Reason, UsageSource};

    fn transition(sequence: u64, to: PressureLevel) -> Transition {
        Transition {
            from: PressureLevel::Normal,
            to,
            usage_bytes: 0,
            limit_bytes: 1,
            sequence,
            reason: Reason {
                decided_by: UsageSource::Injected,
                tracked_bytes: 0,
                measured_bytes: None,
                top_components: Vec::new(),
            },
        }
    }

    #[test]
    fn publish_updates_the_shared_level() {
        let publisher = Publisher::new(PressureLevel::Normal);
        let handle = publisher.level_handle();
        publisher.publish(transition(1, PressureLevel::Critical));
        assert_eq!(handle.snapshot(), (PressureLevel::Critical, 1));
        assert_eq!(publisher.level(), PressureLevel::Critical);
    }

    #[test]
    fn buffer_never_holds_more_than_capacity() {
        let capacity = NonZeroUsize::new(3).unwrap();
        let publisher = Publisher::with_capacity(PressureLevel::Normal, capacity);
        for sequence in 1..=10 {
            publisher.publish(transition(sequence, PressureLevel::Warning));
        }
        assert_eq!(publisher.shared.lock().transitions.len(), 3);
    }

    #[test]
    fn huge_capacity_is_accepted_without_allocating_it() {
        let capacity = NonZeroUsize::new(usize::MAX).unwrap();
        let publisher = Publisher::with_capacity(PressureLevel::Normal, capacity);
        publisher.publish(transition(1, PressureLevel::Warning));
        assert_eq!(publisher.capacity(), usize::MAX);
    }

    #[test]
    fn clone_continues_from_the_same_position() {
        let publisher = Publisher::new(PressureLevel::Normal);
        let mut first = publisher.subscribe();
        assert!(matches!(first.try_recv(), Ok(Event::Current { .. })));
        let mut second = first.clone();
        publisher.publish(transition(1, PressureLevel::Warning));
        assert!(matches!(first.try_recv(), Ok(Event::Transition(_))));
        assert!(matches!(second.try_recv(), Ok(Event::Transition(_))));
        assert_eq!(second.try_recv(), Err(TryRecvError::Empty));
    }
}
