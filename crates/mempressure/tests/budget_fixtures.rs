//! Choosing the budget from cgroup fixture readings and physical memory.

use std::path::{Path, PathBuf};

use mempressure::budget::{choose_budget, default_budget, BudgetSource};
use mempressure::os::cgroup::{CgroupLocator, CgroupMemory, CgroupVersion};

const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

fn fixture_root(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/cgroup")
        .join(case)
}

fn read_case(case: &str, physical_memory_bytes: Option<u64>) -> CgroupMemory {
    let locator = CgroupLocator::detect_in(&fixture_root(case)).ok().flatten();
    let locator = locator.unwrap_or_else(|| panic!("{case}: no cgroup"));
    let memory = locator.read(physical_memory_bytes);
    memory.unwrap_or_else(|e| panic!("{case}: {e}"))
}

#[test]
fn container_limit_below_physical_memory_sets_the_budget() {
    // A 512 MiB container on a 16 GiB host gets 512 MiB, named by its file.
    let cgroup = read_case("v2_container_namespace", Some(16 * GIB));
    let budget =
        choose_budget(None, Some(16 * GIB), Some(&cgroup)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(budget.limit_bytes, 512 * MIB);
    let expected = BudgetSource::Cgroup {
        version: CgroupVersion::V2,
        path: fixture_root("v2_container_namespace").join("sys/fs/cgroup"),
        file: "memory.max".to_owned(),
    };
    assert_eq!(budget.source, expected);
    assert!(budget
        .to_string()
        .starts_with("536870912 bytes from cgroup v2 limit memory.max in "));
}

#[test]
fn unlimited_cgroup_falls_back_to_physical_memory() {
    // With only unlimited spellings the machine's memory is the budget.
    let cgroup = read_case("v1_unlimited", Some(16 * GIB));
    let budget =
        choose_budget(None, Some(16 * GIB), Some(&cgroup)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (budget.limit_bytes, budget.source),
        (16 * GIB, BudgetSource::PhysicalMemory)
    );
}

#[test]
fn container_limit_alone_suffices_without_physical_memory() {
    // Physical memory unknown, cgroup limit known: the cgroup decides.
    let cgroup = read_case("v1_container_mount_root", None);
    let budget = choose_budget(None, None, Some(&cgroup)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(budget.limit_bytes, 256 * MIB);
    assert!(matches!(
        budget.source,
        BudgetSource::Cgroup {
            version: CgroupVersion::V1,
            ..
        }
    ));
}

#[test]
fn real_default_budget_is_at_most_physical_memory() {
    // On this machine the budget exists and never exceeds the RAM.
    let budget = default_budget().unwrap_or_else(|e| panic!("{e}"));
    let physical = mempressure::os::physical_memory_bytes().unwrap_or(u64::MAX);
    assert!(
        budget.limit_bytes > 0 && budget.limit_bytes <= physical,
        "{budget}"
    );
}
