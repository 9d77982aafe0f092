//! Readings from the operating system: the process's memory and its cgroup.
//!
//! Every figure is in bytes. Where each one comes from:
//!
//! - [`ProcessMemory::resident_bytes`] from Linux `/proc/self/statm` field 2
//!   (pages); macOS `mach_task_basic_info.resident_size` (bytes).
//! - [`ProcessMemory::virtual_bytes`] from Linux `/proc/self/statm` field 1
//!   (pages); macOS `mach_task_basic_info.virtual_size` (bytes).
//! - [`ProcessMemory::anon_resident_bytes`] from Linux `/proc/self/status`
//!   `RssAnon` (kB); `None` on macOS.
//! - [`ProcessMemory::file_resident_bytes`] from Linux `/proc/self/status`
//!   `RssFile` + `RssShmem` (kB); `None` on macOS.
//! - [`ProcessMemory::phys_footprint_bytes`] from macOS
//!   `task_vm_info.phys_footprint` (bytes); `None` on Linux.
//! - [`page_size_bytes`] from `sysconf(_SC_PAGESIZE)` (bytes) on both.
//! - [`physical_memory_bytes`] from Linux `sysconf(_SC_PHYS_PAGES)` (pages)
//!   times the page size; macOS `sysctl hw.memsize` (bytes).
//!
//! Pages are converted with the page size the kernel reports, never an
//! assumed one; `kB` in `/proc` means 1024 bytes. The cgroup the process
//! belongs to, and its limit and usage, are read by [`cgroup`].
//!
//! The parsers behind the Linux readings are plain functions over text
//! ([`linux::parse_statm`], [`linux::parse_status`]) and compile on every
//! platform, so they are tested against fixtures anywhere.

use std::fmt;
use std::io;

pub mod cgroup;
pub mod linux;
mod macos;

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

/// A reading from the operating system that failed.
///
/// The message names the file or system call that was read and what was
/// wrong with it.
#[derive(Debug)]
pub struct OsError {
    /// The file path or API name the error is about.
    source_name: String,
    kind: OsErrorKind,
}

/// What went wrong, kept private so that cases can be added freely.
#[derive(Debug)]
enum OsErrorKind {
    /// The file could not be read.
    Io(io::Error),
    /// The file was read but its content is not what the kernel writes.
    Malformed(String),
    /// A system call returned a failure code.
    CallFailed(i64),
    /// This platform has no way to give the reading (built only off Linux
    /// and macOS, hence the allowance).
    #[cfg_attr(any(target_os = "linux", target_os = "macos"), allow(dead_code))]
    Unsupported,
}

impl OsError {
    /// A file that could not be read.
    pub(crate) fn io(source_name: impl Into<String>, error: io::Error) -> Self {
        let source_name = source_name.into();
        Self {
            source_name,
            kind: OsErrorKind::Io(error),
        }
    }

    /// Content that does not have the form the kernel writes.
    pub(crate) fn malformed(source_name: impl Into<String>, what: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            kind: OsErrorKind::Malformed(what.into()),
        }
    }

    /// A system call that returned the failure `code`.
    #[cfg_attr(not(unix), allow(dead_code))]
    pub(crate) fn call_failed(source_name: impl Into<String>, code: impl Into<i64>) -> Self {
        Self {
            source_name: source_name.into(),
            kind: OsErrorKind::CallFailed(code.into()),
        }
    }

    /// A reading this platform cannot give.
    #[cfg_attr(any(target_os = "linux", target_os = "macos"), allow(dead_code))]
    pub(crate) fn unsupported(source_name: impl Into<String>) -> Self {
        Self {
            source_name: source_name.into(),
            kind: OsErrorKind::Unsupported,
        }
    }

    /// The file path or API name the error is about.
    pub fn source_name(&self) -> &str {
        &self.source_name
    }

    /// Whether the error only says that this platform cannot give the
    /// reading, as opposed to a reading that failed.
    pub fn is_unsupported(&self) -> bool {
        matches!(self.kind, OsErrorKind::Unsupported)
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.source_name;
        match &self.kind {
            OsErrorKind::Io(error) => write!(f, "cannot read {name}: {error}"),
            OsErrorKind::Malformed(what) => write!(f, "malformed {name}: {what}"),
            OsErrorKind::CallFailed(code) => write!(f, "{name} failed with code {code}"),
            OsErrorKind::Unsupported => write!(
                f,
                "{name} is unsupported on this platform (supported: linux, macos)"
            ),
        }
    }
}

impl std::error::Error for OsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            OsErrorKind::Io(error) => Some(error),
            _ => None,
        }
    }
}

/// Reads the process's resident, virtual and (where the platform has them)
/// anonymous, file-backed and footprint figures.
///
/// See the module docs for the source of every field.
///
/// # Errors
///
/// On Linux, when `/proc/self/statm` or `/proc/self/status` cannot be read
/// or is malformed; on macOS, when `task_info` fails; elsewhere always, with
/// an error for which [`OsError::is_unsupported`] is true.
pub fn read_process_memory() -> Result<ProcessMemory, OsError> {
    #[cfg(target_os = "linux")]
    {
        linux::read_process_memory()
    }
    #[cfg(target_os = "macos")]
    {
        macos::read_process_memory()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        Err(OsError::unsupported("reading process memory"))
    }
}

/// The size of a virtual-memory page in bytes, as `sysconf(_SC_PAGESIZE)`
/// reports it.
///
/// Falls back to 4096 only where the platform cannot be asked (not unix) or
/// the call fails, which POSIX allows but Linux and macOS never do; the
/// readings in this module use [`try_page_size_bytes`] and fail instead.
pub fn page_size_bytes() -> u64 {
    /// The common page size, used only when the kernel cannot be asked.
    const FALLBACK_PAGE_SIZE_BYTES: u64 = 4096;
    try_page_size_bytes().unwrap_or(FALLBACK_PAGE_SIZE_BYTES)
}

/// The size of a virtual-memory page in bytes from `sysconf(_SC_PAGESIZE)`.
///
/// # Errors
///
/// When the call fails or the platform is not unix.
pub fn try_page_size_bytes() -> Result<u64, OsError> {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads a configuration value; any name is
        // allowed and an unknown one returns -1.
        let page_size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        match u64::try_from(page_size) {
            Ok(bytes) if bytes > 0 => Ok(bytes),
            _ => Err(OsError::call_failed("sysconf(_SC_PAGESIZE)", page_size)),
        }
    }
    #[cfg(not(unix))]
    {
        Err(OsError::unsupported("sysconf(_SC_PAGESIZE)"))
    }
}

/// The machine's physical memory in bytes, or `None` when the platform
/// cannot say.
///
/// Linux: `sysconf(_SC_PHYS_PAGES)` times the page size (the whole machine,
/// not a container's share: see [`cgroup`] for that). macOS: the
/// `hw.memsize` sysctl.
pub fn physical_memory_bytes() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: sysconf only reads a configuration value.
        let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
        let pages = u64::try_from(pages).ok().filter(|&pages| pages > 0)?;
        pages.checked_mul(try_page_size_bytes().ok()?)
    }
    #[cfg(target_os = "macos")]
    {
        macos::physical_memory_bytes()
    }
    #[cfg(not(any(target_os = "linux", target_os = "macos")))]
    {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two_from_the_kernel() {
        // The page size comes from sysconf, and any real one is a power of two.
        let bytes = try_page_size_bytes().map_err(|e| e.to_string());
        assert!(matches!(bytes, Ok(b) if b.is_power_of_two()), "{bytes:?}");
    }

    #[test]
    fn physical_memory_is_known_on_supported_platforms() {
        // Linux and macOS always know their memory; it is more than a page.
        if cfg!(any(target_os = "linux", target_os = "macos")) {
            let bytes = physical_memory_bytes().unwrap_or(0);
            assert!(bytes > page_size_bytes(), "physical memory {bytes}");
        }
    }

    #[test]
    fn error_messages_name_the_source_and_the_problem() {
        // Each kind of error says which file or call it is about.
        let malformed = OsError::malformed("/proc/self/statm", "expected 7 fields, found 2");
        assert_eq!(
            malformed.to_string(),
            "malformed /proc/self/statm: expected 7 fields, found 2"
        );
        let unsupported = OsError::unsupported("reading process memory");
        assert!(unsupported.is_unsupported());
        assert!(unsupported
            .to_string()
            .contains("unsupported on this platform"));
        let io = OsError::io("/x", io::Error::from(io::ErrorKind::NotFound));
        assert!(io.to_string().starts_with("cannot read /x: "));
        assert!(!io.is_unsupported());
    }
}
