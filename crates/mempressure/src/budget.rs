//! The memory budget: how many bytes the process may use, and where that
//! figure came from.
//!
//! Without an explicit limit the budget is the tighter of the machine's
//! physical memory ([`os::physical_memory_bytes`]) and the limit of the
//! process's cgroup ([`os::cgroup`]), so a server in a container sizes itself
//! to the container, not the host. [`choose_budget`] is the pure rule;
//! [`default_budget`] and [`budget_with_flag`] feed it the real readings.
//!
//! [`os::physical_memory_bytes`]: crate::os::physical_memory_bytes
//! [`os::cgroup`]: crate::os::cgroup

use std::fmt;
use std::path::PathBuf;

use crate::os::{self, cgroup::CgroupMemory, cgroup::CgroupVersion, OsError};

/// The budget in bytes and the reading it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultBudget {
    /// The most memory the process should use, in bytes.
    pub limit_bytes: u64,
    /// Where [`limit_bytes`](Self::limit_bytes) came from.
    pub source: BudgetSource,
}

/// Where a budget came from, for the start-up log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetSource {
    /// A cgroup limit file.
    Cgroup {
        /// The cgroup version of the hierarchy.
        version: CgroupVersion,
        /// The directory of the cgroup that set the limit (the process's own
        /// or an ancestor).
        path: PathBuf,
        /// The file name, such as `memory.max` or `memory.high`.
        file: String,
    },
    /// The machine's physical memory.
    PhysicalMemory,
    /// An explicit limit given by the caller, such as a command-line flag.
    Flag,
}

impl fmt::Display for BudgetSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cgroup {
                version,
                path,
                file,
            } => write!(f, "cgroup {version} limit {file} in {}", path.display()),
            Self::PhysicalMemory => f.write_str("physical memory"),
            Self::Flag => f.write_str("explicit limit"),
        }
    }
}

impl fmt::Display for DefaultBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes from {}", self.limit_bytes, self.source)
    }
}

/// Why no budget could be set.
#[derive(Debug)]
pub struct BudgetError {
    kind: BudgetErrorKind,
}

#[derive(Debug)]
enum BudgetErrorKind {
    /// Neither physical memory nor a cgroup limit is known.
    NothingKnown,
    /// The explicit limit was zero.
    ZeroFlag,
    /// The cgroup files could not be read.
    Cgroup(OsError),
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            BudgetErrorKind::NothingKnown => f.write_str(
                "cannot find a memory budget: neither physical memory nor a cgroup limit \
                 is known; give an explicit limit",
            ),
            BudgetErrorKind::ZeroFlag => {
                f.write_str("the memory limit must be greater than 0 bytes")
            }
            BudgetErrorKind::Cgroup(error) => write!(
                f,
                "cannot read the cgroup memory limit ({error}); give an explicit limit"
            ),
        }
    }
}

impl std::error::Error for BudgetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            BudgetErrorKind::Cgroup(error) => Some(error),
            _ => None,
        }
    }
}

/// Chooses the budget from the readings: an explicit limit if given,
/// otherwise the tighter of physical memory and the cgroup's limit (physical
/// memory on a tie).
///
/// # Errors
///
/// When the explicit limit is zero, or there is no explicit limit and
/// neither physical memory nor a cgroup limit is known.
pub fn choose_budget(
    flag_limit_bytes: Option<u64>,
    physical_memory_bytes: Option<u64>,
    cgroup: Option<&CgroupMemory>,
) -> Result<DefaultBudget, BudgetError> {
    if let Some(limit_bytes) = flag_limit_bytes {
        if limit_bytes == 0 {
            return Err(BudgetError {
                kind: BudgetErrorKind::ZeroFlag,
            });
        }
        return Ok(DefaultBudget {
            limit_bytes,
            source: BudgetSource::Flag,
        });
    }
    let physical = physical_memory_bytes.map(|limit_bytes| DefaultBudget {
        limit_bytes,
        source: BudgetSource::PhysicalMemory,
    });
    let from_cgroup = cgroup.and_then(cgroup_budget);
    match (physical, from_cgroup) {
        (Some(physical), Some(from_cgroup)) if from_cgroup.limit_bytes < physical.limit_bytes => {
            Ok(from_cgroup)
        }
        (Some(physical), _) => Ok(physical),
        (None, Some(from_cgroup)) => Ok(from_cgroup),
        (None, None) => Err(BudgetError {
            kind: BudgetErrorKind::NothingKnown,
        }),
    }
}

/// The budget from the real readings, without an explicit limit.
///
/// # Errors
///
/// As [`budget_with_flag`].
pub fn default_budget() -> Result<DefaultBudget, BudgetError> {
    budget_with_flag(None)
}

/// The budget: `flag_limit_bytes` when given (nothing is read then),
/// otherwise the tighter of physical memory and the cgroup limit.
///
/// # Errors
///
/// When the explicit limit is zero, when the cgroup files exist but cannot
/// be read or parsed, or when neither physical memory nor a cgroup limit is
/// known.
pub fn budget_with_flag(flag_limit_bytes: Option<u64>) -> Result<DefaultBudget, BudgetError> {
    if flag_limit_bytes.is_some() {
        return choose_budget(flag_limit_bytes, None, None);
    }
    let physical_memory_bytes = os::physical_memory_bytes();
    let cgroup =
        os::cgroup::read_cgroup_memory(physical_memory_bytes).map_err(|error| BudgetError {
            kind: BudgetErrorKind::Cgroup(error),
        })?;
    choose_budget(None, physical_memory_bytes, cgroup.as_ref())
}

/// The budget a cgroup reading sets, if it has a limit.
fn cgroup_budget(cgroup: &CgroupMemory) -> Option<DefaultBudget> {
    let limit_bytes = cgroup.limit_bytes?;
    let (path, file) = match &cgroup.limit_file {
        Some(limit_file) => (
            limit_file
                .parent()
                .map_or_else(|| cgroup.path.clone(), PathBuf::from),
            limit_file
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned()),
        ),
        None => (cgroup.path.clone(), String::new()),
    };
    Some(DefaultBudget {
        limit_bytes,
        source: BudgetSource::Cgroup {
            version: cgroup.version,
            path,
            file,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    fn cgroup_with_limit(limit_bytes: Option<u64>) -> CgroupMemory {
        CgroupMemory {
            version: CgroupVersion::V2,
            path: PathBuf::from("/sys/fs/cgroup/app/worker"),
            limit_bytes,
            usage_bytes: Some(GIB),
            reclaimable_file_bytes: None,
            limit_file: limit_bytes.map(|_| PathBuf::from("/sys/fs/cgroup/app/memory.high")),
        }
    }

    #[test]
    fn tighter_cgroup_limit_wins_and_names_its_file() {
        // A 2 GiB cgroup on a 16 GiB machine gives 2 GiB from memory.high.
        let cgroup = cgroup_with_limit(Some(2 * GIB));
        let budget = choose_budget(None, Some(16 * GIB), Some(&cgroup)).map_err(|e| e.to_string());
        let expected_source = BudgetSource::Cgroup {
            version: CgroupVersion::V2,
            path: PathBuf::from("/sys/fs/cgroup/app"),
            file: "memory.high".to_owned(),
        };
        assert_eq!(
            budget,
            Ok(DefaultBudget {
                limit_bytes: 2 * GIB,
                source: expected_source
            })
        );
    }

    #[test]
    fn physical_memory_wins_when_the_cgroup_is_unlimited_or_looser() {
        // No limit, a looser limit and an equal one all give physical memory.
        for limit in [None, Some(32 * GIB), Some(16 * GIB)] {
            let cgroup = cgroup_with_limit(limit);
            let budget =
                choose_budget(None, Some(16 * GIB), Some(&cgroup)).map_err(|e| e.to_string());
            let source = budget.map(|b| (b.limit_bytes, b.source));
            assert_eq!(
                source,
                Ok((16 * GIB, BudgetSource::PhysicalMemory)),
                "{limit:?}"
            );
        }
        let alone = choose_budget(None, Some(8 * GIB), None).map(|b| b.source);
        assert_eq!(
            alone.map_err(|e| e.to_string()),
            Ok(BudgetSource::PhysicalMemory)
        );
    }

    #[test]
    fn cgroup_limit_alone_is_enough() {
        // Without physical memory, a cgroup limit still gives a budget.
        let cgroup = cgroup_with_limit(Some(3 * GIB));
        let budget = choose_budget(None, None, Some(&cgroup)).map(|b| b.limit_bytes);
        assert_eq!(budget.map_err(|e| e.to_string()), Ok(3 * GIB));
    }

    #[test]
    fn explicit_limit_overrides_every_reading() {
        // The flag wins even over a tighter cgroup limit.
        let cgroup = cgroup_with_limit(Some(GIB));
        let budget = choose_budget(Some(4 * GIB), Some(16 * GIB), Some(&cgroup));
        let budget = budget.map_err(|e| e.to_string());
        assert_eq!(
            budget,
            Ok(DefaultBudget {
                limit_bytes: 4 * GIB,
                source: BudgetSource::Flag
            })
        );
        let zero = choose_budget(Some(0), Some(GIB), None).map_err(|e| e.to_string());
        assert_eq!(
            zero,
            Err("the memory limit must be greater than 0 bytes".to_owned())
        );
    }

    #[test]
    fn nothing_known_is_an_error() {
        // No physical memory and no cgroup limit: no budget can be made up.
        let unlimited = cgroup_with_limit(None);
        let message = choose_budget(None, None, Some(&unlimited)).map_err(|e| e.to_string());
        assert!(matches!(&message, Err(m) if m.starts_with("cannot find a memory budget")));
        assert!(choose_budget(None, None, None).is_err());
    }

    #[test]
    fn source_display_reads_as_a_log_line() {
        // The start-up line says where the figure came from.
        let source = BudgetSource::Cgroup {
            version: CgroupVersion::V1,
            path: PathBuf::from("/sys/fs/cgroup/memory"),
            file: "memory.limit_in_bytes".to_owned(),
        };
        assert_eq!(
            source.to_string(),
            "cgroup v1 limit memory.limit_in_bytes in /sys/fs/cgroup/memory"
        );
        let budget = DefaultBudget {
            limit_bytes: 1024,
            source: BudgetSource::PhysicalMemory,
        };
        assert_eq!(budget.to_string(), "1024 bytes from physical memory");
        assert_eq!(BudgetSource::Flag.to_string(), "explicit limit");
    }

    #[test]
    fn real_budget_is_positive_on_supported_platforms() {
        // Linux and macOS always know physical memory, so a budget exists.
        if cfg!(any(target_os = "linux", target_os = "macos")) {
            let budget = default_budget()
                .map(|b| b.limit_bytes)
                .map_err(|e| e.to_string());
            assert!(matches!(budget, Ok(bytes) if bytes > 0), "{budget:?}");
        }
    }
}
