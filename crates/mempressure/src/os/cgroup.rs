//! The memory limit, usage and reclaimable page cache of the process's own
//! cgroup, v1 or v2.
//!
//! # Finding the cgroup
//!
//! The cgroup is found, not assumed: `/proc/self/cgroup` names the process's
//! cgroup path in each hierarchy, and `/proc/self/mountinfo` says where that
//! hierarchy is mounted and which of its directories the mount shows (the
//! mount's *root*). The cgroup's files are then in
//! `<mount point>/<cgroup path below the mount root>`.
//!
//! - **v2**: the line `0::<path>` and a mount of type `cgroup2`.
//! - **v1**: the line whose controller list holds `memory`, and a mount of
//!   type `cgroup` whose super options hold `memory`.
//!
//! When both exist (the "hybrid" layout of systemd), the memory controller
//! lives on v1 and v1 is used. In a container without a cgroup namespace the
//! path is the host's (`/docker/<id>`) while the mount root is that same
//! cgroup, so the files are at the mount point itself; with a cgroup
//! namespace both are `/`. A path that is not at or below any mount root
//! (`/../x`, which a namespace shows for cgroups outside it) finds nothing.
//!
//! # Figures
//!
//! Every figure is in bytes.
//!
//! - [`CgroupMemory::limit_bytes`] is, on v2, the tightest `memory.max` or
//!   `memory.high` of the cgroup and its ancestors up to the mount root; on
//!   v1, the tightest `memory.limit_in_bytes` of the same directories and
//!   `hierarchical_memory_limit` in the cgroup's `memory.stat`.
//! - [`CgroupMemory::usage_bytes`] is v2 `memory.current`, v1
//!   `memory.usage_in_bytes`.
//! - [`CgroupMemory::reclaimable_file_bytes`] is v2 `inactive_file` in
//!   `memory.stat`, v1 `total_inactive_file` there (which, like
//!   `memory.usage_in_bytes`, includes child cgroups).
//!
//! `memory.high` counts as a limit because above it the kernel throttles and
//! reclaims the cgroup hard: a server should shed load before it gets there.
//! Ancestors count because a parent's limit binds its children.
//!
//! Only *inactive* file pages count as reclaimable. Active file pages can be
//! reclaimed too, but only after the kernel demotes them, and they are active
//! because they are being used: dropping them costs re-reads, so they are
//! part of the working set. `usage - inactive_file` is the figure the kubelet
//! and `docker stats` report as the working set, which operators know.
//!
//! # Unlimited
//!
//! A limit that is not a limit is `None`: the word `max` (v2), `-1`, any
//! value at or above 2^62 (v1 writes the page counter's maximum times the
//! page size, 9223372036854771712 with 4 KiB pages and other values near
//! `i64::MAX` with other page sizes), and any value at or above the
//! machine's physical memory, which cannot bind. A missing file is `None`;
//! a file whose content is not a number is an error naming the file.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use super::OsError;

/// Limits at or above this many bytes mean "unlimited": v1's maximum is
/// `PAGE_COUNTER_MAX * page size`, just under `i64::MAX` for any page size,
/// and no machine has 4 EiB of memory.
pub const UNLIMITED_THRESHOLD_BYTES: u64 = 1 << 62;

/// The cgroup file system version of a hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    /// cgroup v1, one hierarchy per controller set; memory has its own.
    V1,
    /// cgroup v2, the unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `"v1"` or `"v2"`, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1 => "v1",
            Self::V2 => "v2",
        }
    }
}

impl std::fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One reading of the process's cgroup. Every figure is in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupMemory {
    /// Which cgroup version the figures come from.
    pub version: CgroupVersion,
    /// The directory holding the cgroup's files.
    pub path: PathBuf,
    /// The tightest limit, or `None` when no file sets one.
    pub limit_bytes: Option<u64>,
    /// Memory charged to the cgroup, or `None` when the file is missing.
    pub usage_bytes: Option<u64>,
    /// Inactive file pages the kernel can drop without any OOM, or `None`
    /// when `memory.stat` or its key is missing.
    pub reclaimable_file_bytes: Option<u64>,
    /// The file that set [`limit_bytes`](Self::limit_bytes), maybe in an
    /// ancestor's directory; `None` when there is no limit.
    pub limit_file: Option<PathBuf>,
}

/// Where the process's cgroup is: its version, mount and path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupLocator {
    version: CgroupVersion,
    /// The hierarchy's mount point, absolute, as `/proc/self/mountinfo`
    /// writes it.
    mount_point: PathBuf,
    /// The cgroup's path below the mount root; empty for the root itself.
    relative_path: PathBuf,
    /// The directory standing for `/`: `/` except in tests.
    fs_root: PathBuf,
}

/// A mount of a cgroup hierarchy, from one `/proc/self/mountinfo` line.
struct CgroupMount {
    version: CgroupVersion,
    root: PathBuf,
    mount_point: PathBuf,
}

impl CgroupLocator {
    /// Locates the process's cgroup from the text of `/proc/self/cgroup` and
    /// `/proc/self/mountinfo`, with files under `/`.
    ///
    /// Returns `None` when the text names no memory cgroup, or no mount shows
    /// the path. Lines that do not parse are skipped.
    pub fn from_parts(proc_self_cgroup: &str, mountinfo: &str) -> Option<Self> {
        let mounts: Vec<CgroupMount> = mountinfo.lines().filter_map(parse_mount_line).collect();
        let mut v2_path = None;
        let mut v1_path = None;
        for line in proc_self_cgroup.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if id == "0" && controllers.is_empty() {
                v2_path = Some(path);
            } else if controllers.split(',').any(|name| name == "memory") {
                v1_path = Some(path);
            }
        }
        let v1 = v1_path.and_then(|path| Self::for_path(CgroupVersion::V1, path, &mounts));
        v1.or_else(|| v2_path.and_then(|path| Self::for_path(CgroupVersion::V2, path, &mounts)))
    }

    /// Reads files under `fs_root` instead of `/`: the mount points found in
    /// `/proc/self/mountinfo` are taken relative to it. For fixtures.
    pub fn with_root(mut self, fs_root: impl Into<PathBuf>) -> Self {
        self.fs_root = fs_root.into();
        self
    }

    /// Locates the process's cgroup from the real `/proc/self` files.
    ///
    /// Returns `Ok(None)` when the files are missing (not Linux, or no
    /// `/proc`) or name no memory cgroup.
    ///
    /// # Errors
    ///
    /// When a file exists but cannot be read.
    pub fn detect() -> Result<Option<Self>, OsError> {
        Self::detect_in(Path::new("/"))
    }

    /// Like [`detect`](Self::detect), but reads `proc/self/cgroup`,
    /// `proc/self/mountinfo` and the cgroup files under `fs_root`.
    ///
    /// # Errors
    ///
    /// When a file exists but cannot be read.
    pub fn detect_in(fs_root: &Path) -> Result<Option<Self>, OsError> {
        let cgroup = read_optional(&fs_root.join("proc/self/cgroup"))?;
        let mountinfo = read_optional(&fs_root.join("proc/self/mountinfo"))?;
        let (Some(cgroup), Some(mountinfo)) = (cgroup, mountinfo) else {
            return Ok(None);
        };
        Ok(Self::from_parts(&cgroup, &mountinfo).map(|found| found.with_root(fs_root)))
    }

    /// The version of the hierarchy the memory controller was found in.
    pub fn version(&self) -> CgroupVersion {
        self.version
    }

    /// The directory holding the cgroup's files.
    pub fn dir(&self) -> PathBuf {
        self.mount_dir().join(&self.relative_path)
    }

    /// Reads limit, usage and reclaimable file pages.
    ///
    /// `physical_memory_bytes` is the machine's memory (see
    /// [`physical_memory_bytes`](crate::os::physical_memory_bytes)): a limit
    /// at or above it is no limit.
    ///
    /// # Errors
    ///
    /// When a file exists but cannot be read or holds something other than
    /// what the kernel writes there; the error names the file.
    pub fn read(&self, physical_memory_bytes: Option<u64>) -> Result<CgroupMemory, OsError> {
        let dir = self.dir();
        let limit_files: &[&str] = match self.version {
            CgroupVersion::V2 => &["memory.max", "memory.high"],
            CgroupVersion::V1 => &["memory.limit_in_bytes"],
        };

        // The tightest limit of the cgroup and each ancestor, leaf first so
        // that a tie names the cgroup itself.
        let mut tightest: Option<(u64, PathBuf)> = None;
        let mut consider = |bytes: Option<u64>, file: PathBuf| {
            if let Some(bytes) = bytes {
                if tightest.as_ref().is_none_or(|(best, _)| bytes < *best) {
                    tightest = Some((bytes, file));
                }
            }
        };
        for ancestor in self.dirs_leaf_to_mount() {
            for name in limit_files {
                let file = ancestor.join(name);
                let limit = match read_optional(&file)? {
                    Some(text) => parse_limit(&text, physical_memory_bytes)
                        .map_err(|what| OsError::malformed(file.display().to_string(), what))?,
                    None => None,
                };
                consider(limit, file);
            }
        }

        // Usage, and the keys of memory.stat.
        let (usage_name, reclaimable_key) = match self.version {
            CgroupVersion::V2 => ("memory.current", "inactive_file"),
            CgroupVersion::V1 => ("memory.usage_in_bytes", "total_inactive_file"),
        };
        let usage_bytes = read_count(&dir.join(usage_name))?;
        let stat_file = dir.join("memory.stat");
        let stat = read_optional(&stat_file)?;
        let stat_value = |key: &str| match &stat {
            Some(text) => stat_lookup(text, key)
                .map_err(|what| OsError::malformed(stat_file.display().to_string(), what)),
            None => Ok(None),
        };
        let reclaimable_file_bytes = stat_value(reclaimable_key)?;
        if self.version == CgroupVersion::V1 {
            // v1 also sums up the ancestors' limits, including those above
            // the mount root that a container cannot see.
            let hierarchical = stat_value("hierarchical_memory_limit")?;
            let hierarchical =
                hierarchical.filter(|&bytes| !is_unlimited(bytes, physical_memory_bytes));
            consider(hierarchical, stat_file.clone());
        }

        let (limit_bytes, limit_file) = tightest.unzip();
        Ok(CgroupMemory {
            version: self.version,
            path: dir,
            limit_bytes,
            usage_bytes,
            reclaimable_file_bytes,
            limit_file,
        })
    }

    /// Builds the locator for `cgroup_path` from the mount whose root holds
    /// it, the most specific root winning.
    fn for_path(version: CgroupVersion, cgroup_path: &str, mounts: &[CgroupMount]) -> Option<Self> {
        let cgroup_path = Path::new(cgroup_path);
        mounts
            .iter()
            .filter(|mount| mount.version == version)
            .filter_map(|mount| {
                let relative = cgroup_path.strip_prefix(&mount.root).ok()?;
                let plain = relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)));
                plain.then(|| (mount, relative.to_path_buf()))
            })
            .max_by_key(|(mount, _)| mount.root.components().count())
            .map(|(mount, relative_path)| Self {
                version,
                mount_point: mount.mount_point.clone(),
                relative_path,
                fs_root: PathBuf::from("/"),
            })
    }

    /// The mount point, under the file-system root in use.
    fn mount_dir(&self) -> PathBuf {
        let below_root = self
            .mount_point
            .strip_prefix("/")
            .unwrap_or(&self.mount_point);
        self.fs_root.join(below_root)
    }

    /// The cgroup's directory, then each parent up to the mount point.
    fn dirs_leaf_to_mount(&self) -> Vec<PathBuf> {
        let mount_dir = self.mount_dir();
        let mut dirs = vec![mount_dir.clone()];
        let mut current = mount_dir;
        for component in self.relative_path.components() {
            current = current.join(component);
            dirs.push(current.clone());
        }
        dirs.reverse();
        dirs
    }
}

/// Finds the process's cgroup and reads it, with `physical_memory_bytes` as
/// the bound above which a limit is no limit.
///
/// Returns `Ok(None)` when the process has no memory cgroup to be found.
///
/// # Errors
///
/// As [`CgroupLocator::detect`] and [`CgroupLocator::read`].
pub fn read_cgroup_memory(
    physical_memory_bytes: Option<u64>,
) -> Result<Option<CgroupMemory>, OsError> {
    match CgroupLocator::detect()? {
        Some(locator) => locator.read(physical_memory_bytes).map(Some),
        None => Ok(None),
    }
}

/// Parses a limit file: `Ok(None)` for every spelling of "unlimited".
///
/// # Errors
///
/// When the text is neither a byte count, `max` nor `-1`; the message says
/// what was found.
pub fn parse_limit(text: &str, physical_memory_bytes: Option<u64>) -> Result<Option<u64>, String> {
    let value = text.trim();
    if value == "max" || value == "-1" {
        return Ok(None);
    }
    let bytes: u64 = value
        .parse()
        .map_err(|_| format!("expected a byte count, `max` or `-1`, found `{value}`"))?;
    Ok((!is_unlimited(bytes, physical_memory_bytes)).then_some(bytes))
}

/// Whether a limit of `bytes` cannot bind.
fn is_unlimited(bytes: u64, physical_memory_bytes: Option<u64>) -> bool {
    bytes >= UNLIMITED_THRESHOLD_BYTES || physical_memory_bytes.is_some_and(|p| bytes >= p)
}

/// Parses one `/proc/self/mountinfo` line if it is a cgroup mount that can
/// hold the memory controller.
///
/// Fields: id, parent, major:minor, root, mount point, options, optional
/// fields ended by `-`, then file-system type, source and super options.
fn parse_mount_line(line: &str) -> Option<CgroupMount> {
    let fields: Vec<&str> = line.split(' ').collect();
    let separator = fields.iter().skip(6).position(|&field| field == "-")? + 6;
    let fs_type = *fields.get(separator + 1)?;
    let super_options = fields.get(separator + 3).copied().unwrap_or("");
    let version = match fs_type {
        "cgroup2" => CgroupVersion::V2,
        "cgroup" if super_options.split(',').any(|o| o == "memory") => CgroupVersion::V1,
        _ => return None,
    };
    Some(CgroupMount {
        version,
        root: PathBuf::from(unescape_mount_field(fields.get(3)?)),
        mount_point: PathBuf::from(unescape_mount_field(fields.get(4)?)),
    })
}

/// Undoes the kernel's octal escapes in mountinfo paths (`\040` for a space,
/// `\011` tab, `\012` newline, `\134` backslash).
fn unescape_mount_field(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = bytes.get(i + 1..i + 4).filter(|_| bytes[i] == b'\\');
        let code = escape.and_then(|digits| {
            let text = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(text, 8).ok()
        });
        match code {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The value of `key` in a `memory.stat` text of `key value` lines.
fn stat_lookup(text: &str, key: &str) -> Result<Option<u64>, String> {
    for (index, line) in text.lines().enumerate() {
        let mut parts = line.split_ascii_whitespace();
        if parts.next() != Some(key) {
            continue;
        }
        let value = parts.next().unwrap_or("");
        return value.parse().map(Some).map_err(|_| {
            let line_number = index + 1;
            format!("line {line_number} `{line}`: expected `{key} <bytes>`")
        });
    }
    Ok(None)
}

/// Reads a file holding one byte count; `None` when the file is missing.
fn read_count(file: &Path) -> Result<Option<u64>, OsError> {
    let Some(text) = read_optional(file)? else {
        return Ok(None);
    };
    let value = text.trim();
    value.parse().map(Some).map_err(|_| {
        let what = format!("expected a byte count, found `{value}`");
        OsError::malformed(file.display().to_string(), what)
    })
}

/// Reads a file to a string; `None` when it does not exist.
fn read_optional(file: &Path) -> Result<Option<String>, OsError> {
    match fs::read_to_string(file) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(OsError::io(file.display().to_string(), error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIB: u64 = 1 << 30;

    #[test]
    fn every_spelling_of_unlimited_is_none() {
        // max, -1, the v1 page-counter maxima and anything past physical RAM.
        for text in [
            "max\n",
            "-1",
            "9223372036854771712\n",
            "9223372036854710272",
            "9223372036854775807",
            "4611686018427387904",
        ] {
            assert_eq!(parse_limit(text, None), Ok(None), "{text:?}");
        }
        assert_eq!(parse_limit("17179869184", Some(16 * GIB)), Ok(None));
        assert_eq!(
            parse_limit("17179869184", Some(32 * GIB)),
            Ok(Some(16 * GIB))
        );
        assert_eq!(parse_limit(" 536870912\n", None), Ok(Some(512 << 20)));
    }

    #[test]
    fn garbage_limit_is_an_error_saying_what_was_found() {
        // Anything but a number or an unlimited word is rejected.
        let message = parse_limit("lots\n", None).unwrap_err();
        assert_eq!(
            message,
            "expected a byte count, `max` or `-1`, found `lots`"
        );
        assert!(parse_limit("", None).is_err());
        assert!(parse_limit("12 kB", None).is_err());
    }

    #[test]
    fn memory_stat_lookup_reads_one_key_and_rejects_garbage() {
        // The key is matched whole; its value must be a number.
        let text = "active_file 10\ninactive_file 4096\n";
        assert_eq!(stat_lookup(text, "inactive_file"), Ok(Some(4096)));
        assert_eq!(stat_lookup(text, "total_inactive_file"), Ok(None));
        let message = stat_lookup("inactive_file lots\n", "inactive_file").unwrap_err();
        assert!(message.contains("line 1 `inactive_file lots`"), "{message}");
    }
}
