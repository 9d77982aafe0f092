//! The thread-exit hook that returns a thread's slot to the pool.
//!
//! The hook is a POSIX thread-specific key with a destructor, registered when
//! a thread claims its slot. It is not a Rust thread-local with `Drop`: on
//! Linux that registration allocates through `__cxa_thread_atexit_impl`, and
//! its destructor runs before other thread-locals' destructors that may still
//! free memory. Key destructors run after Rust's thread-local destructors, so
//! those frees still land in the thread's own slot; anything later goes to the
//! overflow slot.

/// What registering the exit hook came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    /// The slot will be returned when the thread exits.
    Registered,
    /// Another thread is creating the key right now; try again later.
    Busy,
    /// No hook can be had on this platform or process; do not try again.
    Unavailable,
}

#[cfg(unix)]
mod imp {
    use core::ffi::c_void;
    use core::sync::atomic::{AtomicUsize, Ordering};

    use super::Hook;
    use crate::counters;

    const KEY_NONE: usize = 0;
    const KEY_CREATING: usize = 1;
    const KEY_FAILED: usize = 2;
    /// A created key is stored as `key + KEY_BASE`.
    const KEY_BASE: usize = 3;

    /// The process's one key, created by the first thread that needs it.
    static KEY_STATE: AtomicUsize = AtomicUsize::new(KEY_NONE);

    /// Runs in the exiting thread; `value` is the slot index plus one.
    extern "C" fn on_thread_exit(value: *mut c_void) {
        let index = (value as usize).wrapping_sub(1);
        counters::release_slot(index);
    }

    /// Creates the key once; losers of the race report `Busy` and retry.
    fn key() -> Result<libc::pthread_key_t, Hook> {
        match KEY_STATE.load(Ordering::Acquire) {
            KEY_NONE => {}
            KEY_CREATING => return Err(Hook::Busy),
            KEY_FAILED => return Err(Hook::Unavailable),
            stored => return Ok((stored - KEY_BASE) as libc::pthread_key_t),
        }
        if KEY_STATE
            .compare_exchange(KEY_NONE, KEY_CREATING, Ordering::Acquire, Ordering::Acquire)
            .is_err()
        {
            return Err(Hook::Busy);
        }
        let mut key: libc::pthread_key_t = 0;
        // SAFETY: `key` is a valid place for the new key and the destructor
        // is an `extern "C"` function that lives for the whole process.
        let rc = unsafe { libc::pthread_key_create(&mut key, Some(on_thread_exit)) };
        if rc != 0 {
            KEY_STATE.store(KEY_FAILED, Ordering::Release);
            return Err(Hook::Unavailable);
        }
        KEY_STATE.store(key as usize + KEY_BASE, Ordering::Release);
        Ok(key)
    }

    /// Arranges for `index` to be released when the calling thread exits.
    pub(crate) fn register(index: usize) -> Hook {
        let key = match key() {
            Ok(key) => key,
            Err(hook) => return hook,
        };
        // The value only has to be non-null for the destructor to run.
        let value = index.wrapping_add(1) as *const c_void;
        // SAFETY: `key` was returned by `pthread_key_create` and is never
        // deleted. glibc may allocate here for high key numbers; such an
        // allocation re-enters the shim in the claiming state and is counted
        // in the overflow slot.
        let rc = unsafe { libc::pthread_setspecific(key, value) };
        if rc == 0 {
            Hook::Registered
        } else {
            Hook::Unavailable
        }
    }
}

#[cfg(not(unix))]
mod imp {
    use super::Hook;

    /// Without thread-specific keys a slot stays with its thread's index for
    /// the life of the process; once all are taken, threads share the
    /// overflow slot.
    pub(crate) fn register(_index: usize) -> Hook {
        Hook::Registered
    }
}

pub(crate) use imp::register;
