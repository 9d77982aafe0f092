//! Components, the scope tag that names the current one, and async scopes.
//!
//! A component is a small index into a fixed set the host declares with
//! [`components!`](crate::components). Index 0 is the implicit catch-all,
//! `other`. The current component of a thread is one byte in a
//! const-initialised thread-local; [`ScopeGuard`] sets it and restores the
//! previous value on drop.

use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};

use crate::counters;

/// How many components the counters hold, the catch-all included.
///
/// Sixteen keeps one thread's counters in one 128-byte padded line and the
/// metric label set small; a host declares at most fifteen of its own.
pub const MAX_COMPONENTS: usize = 16;

/// The index of a component: 0 is the catch-all `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ComponentId(u8);

impl ComponentId {
    /// The catch-all component, `other`, that owns every untagged byte.
    pub const OTHER: ComponentId = ComponentId(0);

    /// The component with this index, if it is below [`MAX_COMPONENTS`].
    pub const fn new(index: usize) -> Option<ComponentId> {
        if index < MAX_COMPONENTS {
            Some(ComponentId(index as u8))
        } else {
            None
        }
    }

    /// The index of this component in a [`Snapshot`](crate::Snapshot) and in
    /// [`ComponentSet::NAMES`].
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The raw tag byte; always below [`MAX_COMPONENTS`].
    pub(crate) const fn tag(self) -> u8 {
        self.0
    }

    /// Builds an id from a tag byte, masking it into range.
    pub(crate) const fn from_tag(tag: u8) -> ComponentId {
        ComponentId(tag & (MAX_COMPONENTS as u8 - 1))
    }
}

/// A host's set of components, as declared by [`components!`](crate::components).
pub trait ComponentSet: Copy + Into<ComponentId> + 'static {
    /// The metric label of each component by index; `NAMES[0]` is `"other"`.
    const NAMES: &'static [&'static str];
}

/// Declares the host's components: an enum whose variants convert into
/// [`ComponentId`] (1, 2, ... in order) and whose names become metric labels.
///
/// At most fifteen variants; the catch-all `other` is index 0.
///
/// # Examples
///
/// ```
/// mempressure_alloc::components! {
///     /// Where the server's memory goes.
///     pub enum Component {
///         Connections => "connections",
///         SegmentCache => "segment_cache",
///     }
/// }
/// use mempressure_alloc::{ComponentId, ComponentSet};
/// assert_eq!(ComponentId::from(Component::SegmentCache).index(), 2);
/// assert_eq!(Component::NAMES, &["other", "connections", "segment_cache"]);
/// ```
#[macro_export]
macro_rules! components {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $label:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl ::core::convert::From<$name> for $crate::ComponentId {
            fn from(component: $name) -> $crate::ComponentId {
                match $crate::ComponentId::new(component as usize + 1) {
                    Some(id) => id,
                    None => $crate::ComponentId::OTHER,
                }
            }
        }

        impl $crate::ComponentSet for $name {
            const NAMES: &'static [&'static str] = &["other", $( $label ),+];
        }

        const _: () = assert!(
            <$name as $crate::ComponentSet>::NAMES.len() <= $crate::MAX_COMPONENTS,
            "at most fifteen components can be declared",
        );
    };
}

/// Enters a component's scope until the returned guard is dropped.
///
/// `let _scope = scope!(Component::SegmentCache);` charges the allocations
/// this thread makes from here to the end of the block to that component.
/// Bind the guard to a named variable: `let _ = scope!(..)` drops it at once.
#[macro_export]
macro_rules! scope {
    ($component:expr) => {
        $crate::ScopeGuard::enter($crate::ComponentId::from($component))
    };
}

/// The current thread's component until dropped, then the previous one again.
///
/// The guard is `!Send`: it cannot be held across an `.await` in a spawned
/// task, where the task could resume on another thread. Use
/// [`ScopeExt::in_scope`] for async code.
///
/// ```compile_fail
/// fn needs_send<T: Send>(_: T) {}
/// needs_send(mempressure_alloc::ScopeGuard::enter(mempressure_alloc::ComponentId::OTHER));
/// ```
///
/// Scopes nest; each guard restores what was current before it:
///
/// ```
/// use mempressure_alloc::{current_component, ComponentId, ScopeGuard};
/// let outer = ComponentId::new(1).unwrap();
/// let inner = ComponentId::new(2).unwrap();
/// let _a = ScopeGuard::enter(outer);
/// {
///     let _b = ScopeGuard::enter(inner);
///     assert_eq!(current_component(), inner);
/// }
/// assert_eq!(current_component(), outer);
/// ```
#[must_use = "the scope ends when the guard is dropped"]
#[derive(Debug)]
pub struct ScopeGuard {
    previous: ComponentId,
    _not_send: PhantomData<*const ()>,
}

impl ScopeGuard {
    /// Makes `component` current on this thread.
    pub fn enter(component: ComponentId) -> ScopeGuard {
        ScopeGuard {
            previous: counters::swap_tag(component),
            _not_send: PhantomData,
        }
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        counters::swap_tag(self.previous);
    }
}

/// The component current on this thread.
pub fn current_component() -> ComponentId {
    counters::current_tag()
}

/// A future that runs every poll of its inner future inside a component.
///
/// Built by [`ScopeExt::in_scope`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct InScope<F> {
    inner: F,
    component: ComponentId,
}

impl<F: Future> Future for InScope<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let component = self.component;
        // SAFETY: `inner` is structurally pinned: it is never moved out of
        // `InScope`, and `InScope` has no `Drop` impl or `Unpin` impl that
        // would let it move.
        let inner = unsafe { self.map_unchecked_mut(|s| &mut s.inner) };
        let _scope = ScopeGuard::enter(component);
        inner.poll(cx)
    }
}

/// Runs a future's polls inside a component.
pub trait ScopeExt: Future + Sized {
    /// Wraps `self` so every poll charges its allocations to `component`.
    fn in_scope(self, component: impl Into<ComponentId>) -> InScope<Self> {
        InScope {
            inner: self,
            component: component.into(),
        }
    }
}

impl<F: Future> ScopeExt for F {}
