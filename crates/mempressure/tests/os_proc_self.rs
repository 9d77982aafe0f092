//! Reading the real process memory of the test process.

use mempressure::os::{page_size_bytes, read_process_memory};

#[cfg(any(target_os = "linux", target_os = "macos"))]
#[test]
fn real_process_has_resident_memory_within_its_address_space() {
    // A running process has resident pages, and no more than it has mapped.
    let memory = read_process_memory().unwrap_or_else(|e| panic!("{e}"));
    assert!(memory.resident_bytes >= page_size_bytes(), "{memory:?}");
    assert!(memory.virtual_bytes >= memory.resident_bytes, "{memory:?}");
}

#[cfg(target_os = "linux")]
#[test]
fn real_linux_process_splits_resident_into_anonymous_and_file() {
    // Linux 4.5+ reports RssAnon and RssFile + RssShmem; both are positive
    // for a process with a heap and a mapped executable.
    let memory = read_process_memory().unwrap_or_else(|e| panic!("{e}"));
    let anon = memory.anon_resident_bytes.unwrap_or(0);
    let file = memory.file_resident_bytes.unwrap_or(0);
    assert!(anon > 0 && file > 0, "{memory:?}");
    assert_eq!(memory.phys_footprint_bytes, None);
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
#[test]
fn other_platforms_say_unsupported() {
    // No reading is invented where the platform has none.
    let error = read_process_memory().map(|_| ()).unwrap_err();
    assert!(error.is_unsupported());
}
