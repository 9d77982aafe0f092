//! Finding and reading the real cgroup of the test process on Linux.

#![cfg(target_os = "linux")]

use mempressure::os::{cgroup::CgroupLocator, physical_memory_bytes};

#[test]
fn own_cgroup_reads_without_error_and_usage_is_positive() {
    // Whatever the host layout, detection and reading must not fail, and a
    // cgroup that reports usage reports this process's memory at least.
    let locator = CgroupLocator::detect().map_err(|e| e.to_string());
    let Ok(Some(locator)) = locator else {
        assert!(locator.is_ok(), "{locator:?}");
        return;
    };
    let memory = locator
        .read(physical_memory_bytes())
        .map_err(|e| e.to_string());
    let memory = memory.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(memory.path, locator.dir());
    if let Some(usage_bytes) = memory.usage_bytes {
        assert!(usage_bytes > 0, "{memory:?}");
    }
}
