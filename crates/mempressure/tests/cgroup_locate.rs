//! Locating the process's cgroup from the text of `/proc/self/cgroup` and
//! `/proc/self/mountinfo` alone.

use std::path::PathBuf;

use mempressure::os::cgroup::{CgroupLocator, CgroupVersion};

#[test]
fn hybrid_layout_prefers_the_v1_memory_hierarchy() {
    // With both a v2 line and a v1 memory line, memory is on v1.
    let cgroup = "4:memory:/app\n1:name=systemd:/\n0::/\n";
    let mountinfo = "\
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
    let found = CgroupLocator::from_parts(cgroup, mountinfo);
    let found = found.map(|l| (l.version(), l.dir()));
    let expected = (
        CgroupVersion::V1,
        PathBuf::from("/sys/fs/cgroup/memory/app"),
    );
    assert_eq!(found, Some(expected));
}

#[test]
fn v1_controller_lists_and_optional_mount_fields_are_understood() {
    // memory may share a hierarchy; optional fields precede the `-`.
    let cgroup = "9:memory,hugetlb:/a/b\n";
    let mountinfo = "\
1 0 8:1 / / rw - ext4 /dev/sda1 rw
30 25 0:26 / /sys/fs/cgroup/mem\\040ory rw shared:5 master:2 - cgroup none rw,memory,hugetlb\n";
    let found = CgroupLocator::from_parts(cgroup, mountinfo).map(|l| l.dir());
    assert_eq!(found, Some(PathBuf::from("/sys/fs/cgroup/mem ory/a/b")));
}

#[test]
fn path_outside_every_mount_root_finds_nothing() {
    // A namespace shows cgroups outside it as `/..`; those cannot be read.
    let mountinfo = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert_eq!(CgroupLocator::from_parts("0::/../other\n", mountinfo), None);
    let rooted = "30 25 0:26 /kubepods /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
    assert_eq!(
        CgroupLocator::from_parts("0::/system.slice\n", rooted),
        None
    );
    assert_eq!(CgroupLocator::from_parts("", mountinfo), None);
    assert_eq!(CgroupLocator::from_parts("0::/\n", "garbage\n"), None);
}
