//! Forking and spawning processes while other threads allocate neither hangs
//! nor corrupts the counts.

mod common;

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::{bytes_of, Component};
use mempressure_alloc::scope;

/// Aborts the test binary if the test is still running after `secs`: a hang
/// must fail, not stall the suite.
fn watchdog(secs: u64) -> Arc<AtomicBool> {
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    thread::spawn(move || {
        for _ in 0..secs * 10 {
            if flag.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        eprintln!("fork test hung for {secs} s");
        std::process::abort();
    });
    done
}

#[test]
fn spawning_and_forking_while_threads_allocate_neither_hangs_nor_corrupts() {
    let done = watchdog(60);
    let stop = Arc::new(AtomicBool::new(false));

    // Arrange: threads allocating and freeing in a scope without pause.
    let workers: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            thread::spawn(move || {
                let _scope = scope!(Component::Connections);
                let mut ring: Vec<Vec<u8>> = Vec::new();
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    ring.push(vec![t as u8; 512 + (i % 4096)]);
                    if ring.len() > 64 {
                        ring.remove(0);
                    }
                    i += 1;
                }
            })
        })
        .collect();

    // Act: spawn processes, and fork children that allocate before exiting.
    for _ in 0..20 {
        let status = Command::new("true").status().expect("spawn true");
        assert!(status.success());
    }
    for _ in 0..20 {
        // SAFETY: the child only allocates, frees and calls `_exit`; all of
        // it is fork-safe with jemalloc's own fork handlers, and the shim
        // holds no lock a vanished thread could own.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            let buf = vec![7u8; 1 << 20];
            let ok = buf.iter().all(|b| *b == 7) && bytes_of(Component::IndexCache) == 0;
            drop(buf);
            // SAFETY: `_exit` ends the child at once without running the
            // parent's atexit handlers.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: `pid` is our child and `status` a valid place.
        let waited = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(waited, pid);
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }

    // Assert: once the workers stop, their component is back to zero.
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(bytes_of(Component::Connections), 0);
    done.store(true, Ordering::Relaxed);
}
