//! Reading cgroup v1 and v2 limits, usage and page cache from fixture trees
//! laid out like `/` (`proc/self/cgroup`, `proc/self/mountinfo`, and the
//! cgroup files under `sys/fs/cgroup`).

use std::path::{Path, PathBuf};

use mempressure::os::cgroup::{CgroupLocator, CgroupMemory, CgroupVersion};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
/// Physical memory the fixtures are read against.
const PHYSICAL_BYTES: u64 = 16 * GIB;

fn fixture_root(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(case)
}

/// Locates the cgroup of fixture `case` and reads it.
fn read_case(case: &str) -> Result<CgroupMemory, String> {
    let root = fixture_root(case);
    let locator = CgroupLocator::detect_in(&root).map_err(|e| e.to_string())?;
    let locator = locator.ok_or_else(|| format!("{case}: no cgroup found"))?;
    locator
        .read(Some(PHYSICAL_BYTES))
        .map_err(|e| e.to_string())
}

/// The limit and the file that set it, relative to the fixture root.
fn limit_of(case: &str) -> (Option<u64>, Option<PathBuf>) {
    let root = fixture_root(case);
    let memory = read_case(case).unwrap_or_else(|e| panic!("{case}: {e}"));
    let file = memory
        .limit_file
        .map(|f| f.strip_prefix(&root).map(Path::to_path_buf));
    (memory.limit_bytes, file.map(|f| f.unwrap_or_default()))
}

#[test]
fn v2_parent_limit_binds_a_looser_child() {
    // The service allows 2 GiB but its slice only 1 GiB: 1 GiB, from the slice.
    let (limit, file) = limit_of("v2_nested_parent_tighter");
    assert_eq!(limit, Some(GIB));
    assert_eq!(
        file,
        Some(PathBuf::from("sys/fs/cgroup/app.slice/memory.max"))
    );
}

#[test]
fn v2_reading_has_usage_and_only_inactive_file_pages_as_reclaimable() {
    // memory.current is usage; inactive_file (10 MiB), not active_file, counts.
    let memory = read_case("v2_nested_parent_tighter");
    let memory = memory.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(memory.version, CgroupVersion::V2);
    assert_eq!(memory.usage_bytes, Some(100 * MIB));
    assert_eq!(memory.reclaimable_file_bytes, Some(10 * MIB));
    let root = fixture_root("v2_nested_parent_tighter");
    assert_eq!(
        memory.path,
        root.join("sys/fs/cgroup/app.slice/server.service")
    );
}

#[test]
fn v2_memory_high_tighter_than_max_is_the_limit() {
    // Throttling starts at memory.high, so it is the budget's limit.
    let (limit, file) = limit_of("v2_high_tighter_than_max");
    assert_eq!(limit, Some(3 * GIB));
    assert_eq!(file, Some(PathBuf::from("sys/fs/cgroup/job/memory.high")));
}

#[test]
fn v2_every_unlimited_form_gives_no_limit() {
    // max, the v1-style maxima and a value above physical memory: no limit.
    let memory = read_case("v2_unlimited").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((memory.limit_bytes, memory.limit_file), (None, None));
    assert_eq!(memory.usage_bytes, Some(GIB));
}

#[test]
fn v2_limit_above_physical_memory_counts_only_when_memory_is_larger() {
    // The 64 GiB leaf limit binds on a 128 GiB machine, not on a 16 GiB one.
    let locator = CgroupLocator::detect_in(&fixture_root("v2_unlimited"));
    let locator = locator
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("no cgroup"));
    let big = locator.read(Some(128 * GIB)).map(|m| m.limit_bytes);
    assert_eq!(big.map_err(|e| e.to_string()), Ok(Some(64 * GIB)));
    let unknown = locator.read(None).map(|m| m.limit_bytes);
    assert_eq!(unknown.map_err(|e| e.to_string()), Ok(Some(64 * GIB)));
}

#[test]
fn v2_container_with_namespace_reads_the_mount_point_itself() {
    // `0::/` and a mount root of `/`: the files are at /sys/fs/cgroup.
    let (limit, file) = limit_of("v2_container_namespace");
    assert_eq!(limit, Some(512 * MIB));
    assert_eq!(file, Some(PathBuf::from("sys/fs/cgroup/memory.max")));
}

#[test]
fn v2_container_whose_mount_root_is_its_cgroup_reads_the_mount_point() {
    // The host path equals the mount root, so nothing is appended to it.
    let (limit, file) = limit_of("v2_container_mount_root");
    assert_eq!(limit, Some(768 * MIB));
    assert_eq!(file, Some(PathBuf::from("sys/fs/cgroup/memory.max")));
}

#[test]
fn missing_files_are_none_not_errors() {
    // A cgroup without the memory controller's files reads as all-unknown.
    let memory = read_case("v2_missing_files").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(memory.limit_bytes, None);
    assert_eq!(memory.usage_bytes, None);
    assert_eq!(memory.reclaimable_file_bytes, None);
}

#[test]
fn garbage_content_is_an_error_naming_the_file() {
    // Each garbage file fails the reading, and the message names it.
    for (case, file) in [
        ("v2_garbage_memory_max", "memory.max"),
        ("v2_garbage_memory_current", "memory.current"),
        ("v2_garbage_memory_stat", "memory.stat"),
    ] {
        let message = read_case(case).map(|_| ()).unwrap_err();
        let path = fixture_root(case).join("sys/fs/cgroup/bad").join(file);
        let expected = format!("malformed {}: ", path.display());
        assert!(message.starts_with(&expected), "{case}: {message}");
    }
}

#[test]
fn v1_container_whose_mount_root_is_its_cgroup() {
    // Docker without a cgroup namespace: /docker/<id> is the mount root.
    let (limit, file) = limit_of("v1_container_mount_root");
    assert_eq!(limit, Some(256 * MIB));
    assert_eq!(
        file,
        Some(PathBuf::from("sys/fs/cgroup/memory/memory.limit_in_bytes"))
    );
    let memory = read_case("v1_container_mount_root").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(memory.version, CgroupVersion::V1);
    assert_eq!(memory.usage_bytes, Some(80 * MIB));
    assert_eq!(memory.reclaimable_file_bytes, Some(8 * MIB));
}

#[test]
fn v1_page_counter_maximum_means_unlimited() {
    // 9223372036854771712 in limit_in_bytes and memory.stat: no limit.
    let memory = read_case("v1_unlimited").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(memory.limit_bytes, None);
    assert_eq!(memory.usage_bytes, Some(MIB));
}

#[test]
fn v1_parent_limit_binds_a_looser_child() {
    // The worker allows 1 GiB, its parent 512 MiB: the parent's file wins.
    let (limit, file) = limit_of("v1_nested_parent_tighter");
    assert_eq!(limit, Some(512 * MIB));
    let expected = "sys/fs/cgroup/memory/batch/memory.limit_in_bytes";
    assert_eq!(file, Some(PathBuf::from(expected)));
}

#[test]
fn v1_hierarchical_limit_shows_limits_above_the_container() {
    // A limit on a cgroup the container cannot see still shows in memory.stat.
    let (limit, file) = limit_of("v1_hierarchical_limit_only");
    assert_eq!(limit, Some(384 * MIB));
    assert_eq!(
        file,
        Some(PathBuf::from("sys/fs/cgroup/memory/memory.stat"))
    );
}

#[test]
fn from_parts_with_root_matches_detect_in() {
    // The text-only constructor plus a root finds the same cgroup.
    let root = fixture_root("v2_nested_parent_tighter");
    let cgroup = std::fs::read_to_string(root.join("proc/self/cgroup"));
    let mountinfo = std::fs::read_to_string(root.join("proc/self/mountinfo"));
    let (Ok(cgroup), Ok(mountinfo)) = (cgroup, mountinfo) else {
        panic!("fixture files missing");
    };
    let from_parts = CgroupLocator::from_parts(&cgroup, &mountinfo).map(|l| l.with_root(&root));
    let detected = CgroupLocator::detect_in(&root).ok().flatten();
    assert!(from_parts.is_some());
    assert_eq!(from_parts, detected);
}

#[test]
fn root_without_proc_files_finds_no_cgroup() {
    // Not Linux, or no /proc: no cgroup, and no error.
    let empty = fixture_root("does_not_exist");
    let found = CgroupLocator::detect_in(&empty).map_err(|e| e.to_string());
    assert_eq!(found, Ok(None));
}
