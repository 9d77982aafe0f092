//! Readings from the operating system: the process's memory and its cgroup.

/// The process's memory as the operating system reports it.
///
/// Every field is in bytes. A field the platform cannot report is `None`;
/// a zero is always a real reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessMemory {
    /// Resident set size: pages of the process in physical memory, file-backed
    /// ones included (Linux `/proc/self/statm`, macOS `mach_task_basic_info`).
    pub resident_bytes: u64,
    /// Virtual size of the address space.
    pub virtual_bytes: u64,
    /// Anonymous resident memory (Linux `RssAnon`): the part of resident that
    /// cannot be dropped and re-read from a file. `None` off Linux.
    pub anon_resident_bytes: Option<u64>,
    /// File-backed resident memory (Linux `RssFile` + `RssShmem`).
    pub file_resident_bytes: Option<u64>,
    /// macOS `task_vm_info.phys_footprint`, the figure the kernel's memory
    /// killer uses. `None` off macOS.
    pub phys_footprint_bytes: Option<u64>,
}
