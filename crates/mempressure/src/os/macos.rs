//! macOS process memory from `task_info`, and physical memory from
//! `sysctl hw.memsize`.
//!
//! - `task_info(mach_task_self(), MACH_TASK_BASIC_INFO, ..)` fills a
//!   `mach_task_basic_info`; its `resident_size` and `virtual_size` are in
//!   bytes.
//! - `task_info(mach_task_self(), TASK_VM_INFO, ..)` fills a `task_vm_info`;
//!   `phys_footprint` (bytes, present from revision 1 of the struct) is what
//!   the kernel's memory-pressure killer (jetsam) and Activity Monitor's
//!   "Memory" column charge to the process: anonymous and compressed memory,
//!   without clean file-backed pages.
//!
//! The structs are written out here from the public SDK header
//! `<mach/task_info.h>` (also published in Apple's xnu sources as
//! `osfmk/mach/task_info.h`). That header wraps every definition in
//! `#pragma pack(push, 4)`, hence `packed(4)` below, and defines each
//! `*_COUNT` as the struct's size in `natural_t` (4-byte) units, which the
//! kernel uses to know how much it may write. The definitions compile on
//! every platform so their sizes and offsets are checked on every build;
//! only the calls are macOS-only.

// The structs and constants are used only by the macOS calls; elsewhere they
// exist so that the layout assertions below are checked on every build.
#![cfg_attr(not(target_os = "macos"), allow(dead_code))]

use std::mem::{offset_of, size_of};

/// `natural_t`: the unit of the `*_COUNT` constants.
type NaturalT = u32;
/// `integer_t`.
type IntegerT = i32;
/// `mach_vm_size_t`: a 64-bit byte count on every architecture.
type MachVmSizeT = u64;

/// `MACH_TASK_BASIC_INFO` flavor of `task_info`, from `<mach/task_info.h>`.
const MACH_TASK_BASIC_INFO: NaturalT = 20;
/// `TASK_VM_INFO` flavor of `task_info`, from `<mach/task_info.h>`.
const TASK_VM_INFO: NaturalT = 22;
/// `KERN_SUCCESS` from `<mach/kern_return.h>`.
const KERN_SUCCESS: i32 = 0;

/// `time_value_t` from `<mach/time_value.h>`: seconds and microseconds.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
// Every field mirrors the C layout; only a few are read.
#[allow(dead_code)]
struct TimeValue {
    seconds: IntegerT,
    microseconds: IntegerT,
}

/// `struct mach_task_basic_info` from `<mach/task_info.h>`.
#[repr(C, packed(4))]
#[derive(Debug, Clone, Copy, Default)]
// Every field mirrors the C layout; only a few are read.
#[allow(dead_code)]
struct MachTaskBasicInfo {
    /// Virtual memory size in bytes.
    virtual_size: MachVmSizeT,
    /// Resident memory size in bytes.
    resident_size: MachVmSizeT,
    /// Largest resident size seen, in bytes.
    resident_size_max: MachVmSizeT,
    /// User time of terminated threads.
    user_time: TimeValue,
    /// System time of terminated threads.
    system_time: TimeValue,
    /// Default scheduling policy (`policy_t`, an `int`).
    policy: IntegerT,
    /// Suspend count of the task.
    suspend_count: IntegerT,
}

/// `MACH_TASK_BASIC_INFO_COUNT`: 3 sizes (24 bytes) + 2 `time_value_t` (16)
/// + 2 `int` (8) = 48 bytes = 12 `natural_t`.
const MACH_TASK_BASIC_INFO_COUNT: NaturalT = 12;

/// `struct task_vm_info` from `<mach/task_info.h>`, up to and including
/// `phys_footprint`: the revision 1 layout. Later revisions only append
/// fields, and the kernel writes no more than the count it is given.
#[repr(C, packed(4))]
#[derive(Debug, Clone, Copy, Default)]
// Every field mirrors the C layout; only a few are read.
#[allow(dead_code)]
struct TaskVmInfoRev1 {
    virtual_size: MachVmSizeT,
    region_count: IntegerT,
    page_size: IntegerT,
    resident_size: MachVmSizeT,
    resident_size_peak: MachVmSizeT,
    device: MachVmSizeT,
    device_peak: MachVmSizeT,
    internal: MachVmSizeT,
    internal_peak: MachVmSizeT,
    external: MachVmSizeT,
    external_peak: MachVmSizeT,
    reusable: MachVmSizeT,
    reusable_peak: MachVmSizeT,
    purgeable_volatile_pmap: MachVmSizeT,
    purgeable_volatile_resident: MachVmSizeT,
    purgeable_volatile_virtual: MachVmSizeT,
    compressed: MachVmSizeT,
    compressed_peak: MachVmSizeT,
    compressed_lifetime: MachVmSizeT,
    /// Added in revision 1: the footprint charged to the task, in bytes.
    phys_footprint: MachVmSizeT,
}

/// `TASK_VM_INFO_REV1_COUNT`: 152 bytes = 38 `natural_t`. The header
/// defines it as `TASK_VM_INFO_REV2_COUNT - 4` (revision 2 adds two 64-bit
/// addresses); `TASK_VM_INFO_REV0_COUNT` is 36, without `phys_footprint`.
const TASK_VM_INFO_REV1_COUNT: NaturalT = 38;

// The layouts must match the header byte for byte: the kernel writes
// `count * 4` bytes into them.
const _: () = assert!(size_of::<TimeValue>() == 8);
const _: () = assert!(size_of::<MachTaskBasicInfo>() == 48);
const _: () = assert!(
    size_of::<MachTaskBasicInfo>() == MACH_TASK_BASIC_INFO_COUNT as usize * size_of::<NaturalT>()
);
const _: () = assert!(offset_of!(MachTaskBasicInfo, resident_size) == 8);
const _: () = assert!(offset_of!(MachTaskBasicInfo, policy) == 40);
const _: () = assert!(size_of::<TaskVmInfoRev1>() == 152);
const _: () = assert!(
    size_of::<TaskVmInfoRev1>() == TASK_VM_INFO_REV1_COUNT as usize * size_of::<NaturalT>()
);
const _: () = assert!(offset_of!(TaskVmInfoRev1, resident_size) == 16);
const _: () = assert!(offset_of!(TaskVmInfoRev1, compressed_lifetime) == 136);
const _: () = assert!(offset_of!(TaskVmInfoRev1, phys_footprint) == 144);

#[cfg(target_os = "macos")]
mod ffi {
    //! The Mach calls, declared from `<mach/task.h>` and `<mach/mach_init.h>`.

    use super::{IntegerT, NaturalT};

    /// `mach_port_t`.
    pub(super) type MachPortT = NaturalT;

    extern "C" {
        /// The port of the current task; `mach_task_self()` is a macro that
        /// reads this variable.
        pub(super) static mach_task_self_: MachPortT;

        /// `kern_return_t task_info(task_name_t, task_flavor_t, task_info_t,
        /// mach_msg_type_number_t *)`.
        pub(super) fn task_info(
            target_task: MachPortT,
            flavor: NaturalT,
            task_info_out: *mut IntegerT,
            task_info_out_count: *mut NaturalT,
        ) -> i32;
    }
}

/// Reads resident and virtual size from `MACH_TASK_BASIC_INFO` and the
/// footprint from `TASK_VM_INFO`.
#[cfg(target_os = "macos")]
pub(crate) fn read_process_memory() -> Result<super::ProcessMemory, super::OsError> {
    use super::OsError;

    // SAFETY: mach_task_self_ is set by the system before main and never
    // changes; reading a u32 static has no other requirement.
    let task = unsafe { ffi::mach_task_self_ };

    // Basic info: resident and virtual size.
    let mut basic = MachTaskBasicInfo::default();
    let mut count = MACH_TASK_BASIC_INFO_COUNT;
    // SAFETY: `basic` is a writable buffer of exactly `count` natural_t
    // (asserted above), and the kernel writes at most `count` of them.
    let code = unsafe {
        ffi::task_info(
            task,
            MACH_TASK_BASIC_INFO,
            (&raw mut basic).cast::<IntegerT>(),
            &mut count,
        )
    };
    if code != KERN_SUCCESS {
        return Err(OsError::call_failed(
            "task_info(MACH_TASK_BASIC_INFO)",
            code,
        ));
    }

    // VM info: phys_footprint, when the kernel fills revision 1 or later.
    let mut vm = TaskVmInfoRev1::default();
    let mut vm_count = TASK_VM_INFO_REV1_COUNT;
    // SAFETY: `vm` is a writable buffer of exactly `vm_count` natural_t
    // (asserted above), and the kernel writes at most `vm_count` of them.
    let vm_code = unsafe {
        ffi::task_info(
            task,
            TASK_VM_INFO,
            (&raw mut vm).cast::<IntegerT>(),
            &mut vm_count,
        )
    };
    let phys_footprint_bytes = (vm_code == KERN_SUCCESS && vm_count >= TASK_VM_INFO_REV1_COUNT)
        .then_some(vm.phys_footprint);

    Ok(super::ProcessMemory {
        resident_bytes: basic.resident_size,
        virtual_bytes: basic.virtual_size,
        anon_resident_bytes: None,
        file_resident_bytes: None,
        phys_footprint_bytes,
    })
}

/// The `hw.memsize` sysctl: physical memory in bytes.
#[cfg(target_os = "macos")]
pub(crate) fn physical_memory_bytes() -> Option<u64> {
    let mut bytes: u64 = 0;
    let mut len = size_of::<u64>();
    // SAFETY: the name is NUL-terminated, `bytes` is a writable u64 and `len`
    // holds its size; no new value is written (null, 0).
    let code = unsafe {
        libc::sysctlbyname(
            c"hw.memsize".as_ptr(),
            (&raw mut bytes).cast::<libc::c_void>(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (code == 0 && len == size_of::<u64>() && bytes > 0).then_some(bytes)
}
