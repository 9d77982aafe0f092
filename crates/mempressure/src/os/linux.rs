//! Linux process memory from `/proc/self/statm` and `/proc/self/status`.
//!
//! - `/proc/self/statm` holds seven counts in pages: total program size
//!   (virtual), resident, shared, text, lib (always 0), data, dirty (always
//!   0). The first two, times the page size, give
//!   [`ProcessMemory::virtual_bytes`] and [`ProcessMemory::resident_bytes`].
//! - `/proc/self/status` lines `RssAnon`, `RssFile` and `RssShmem` (Linux 4.5
//!   and later) are in `kB`, which the kernel means as 1024 bytes. `RssAnon`
//!   is [`ProcessMemory::anon_resident_bytes`]; `RssFile + RssShmem` is
//!   [`ProcessMemory::file_resident_bytes`]. A kernel without these lines
//!   gives `None`, not an error.
//!
//! The parsers take the files' text, so they compile and are tested on every
//! platform; only the function that opens the files is Linux-only.

use super::{OsError, ProcessMemory};

/// Where the resident and virtual page counts are read.
pub const STATM_PATH: &str = "/proc/self/statm";

/// Where the anonymous and file-backed resident sizes are read.
pub const STATUS_PATH: &str = "/proc/self/status";

/// Bytes in the `kB` unit of `/proc/self/status`.
const KIB_BYTES: u64 = 1024;

/// The two figures taken from `/proc/self/statm`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatmFigures {
    /// Field 1 (`size`) times the page size.
    pub virtual_bytes: u64,
    /// Field 2 (`resident`) times the page size.
    pub resident_bytes: u64,
}

/// The figures taken from `/proc/self/status`, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusFigures {
    /// `RssAnon`, or `None` when the kernel does not write it.
    pub anon_resident_bytes: Option<u64>,
    /// `RssFile + RssShmem`, or `None` when the kernel does not write both.
    pub file_resident_bytes: Option<u64>,
}

/// Parses the text of `/proc/self/statm` with pages of `page_size_bytes`.
///
/// # Errors
///
/// When the text has fewer than two fields, a field is not a page count, or
/// the byte figure does not fit in a `u64`; the error names
/// `/proc/self/statm`.
pub fn parse_statm(text: &str, page_size_bytes: u64) -> Result<StatmFigures, OsError> {
    let mut fields = text.split_ascii_whitespace();
    let mut next_bytes = |name: &str| -> Result<u64, OsError> {
        let Some(field) = fields.next() else {
            return Err(OsError::malformed(
                STATM_PATH,
                format!("missing field `{name}` (expected at least 2 page counts)"),
            ));
        };
        let pages: u64 = field.parse().map_err(|_| {
            OsError::malformed(
                STATM_PATH,
                format!("field `{name}` is `{field}`, expected a page count"),
            )
        })?;
        pages.checked_mul(page_size_bytes).ok_or_else(|| {
            OsError::malformed(STATM_PATH, format!("field `{name}` overflows 64 bits"))
        })
    };
    let virtual_bytes = next_bytes("size")?;
    let resident_bytes = next_bytes("resident")?;
    Ok(StatmFigures {
        virtual_bytes,
        resident_bytes,
    })
}

/// Parses the text of `/proc/self/status`, taking only the `RssAnon`,
/// `RssFile` and `RssShmem` lines.
///
/// # Errors
///
/// When one of those lines is not `Key: <number> kB`, appears twice, or
/// overflows 64 bits; the error names `/proc/self/status` and the line.
/// Other lines are not looked at.
pub fn parse_status(text: &str) -> Result<StatusFigures, OsError> {
    let mut anon = None;
    let mut file = None;
    let mut shmem = None;
    for (index, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "RssAnon" => &mut anon,
            "RssFile" => &mut file,
            "RssShmem" => &mut shmem,
            _ => continue,
        };
        if slot.is_some() {
            return Err(status_error(index, line, "the key appears twice"));
        }
        *slot = Some(parse_kib_value(value).map_err(|what| status_error(index, line, what))?);
    }
    let file_resident_bytes = match (file, shmem) {
        (Some(file), Some(shmem)) => Some(file.checked_add(shmem).ok_or_else(|| {
            OsError::malformed(STATUS_PATH, "RssFile + RssShmem overflows 64 bits")
        })?),
        _ => None,
    };
    Ok(StatusFigures {
        anon_resident_bytes: anon,
        file_resident_bytes,
    })
}

/// Builds a [`ProcessMemory`] from the text of `/proc/self/statm` and
/// `/proc/self/status`.
///
/// # Errors
///
/// When either text is malformed, as [`parse_statm`] and [`parse_status`]
/// describe.
pub fn parse_process_memory(
    statm: &str,
    status: &str,
    page_size_bytes: u64,
) -> Result<ProcessMemory, OsError> {
    let statm = parse_statm(statm, page_size_bytes)?;
    let status = parse_status(status)?;
    Ok(ProcessMemory {
        resident_bytes: statm.resident_bytes,
        virtual_bytes: statm.virtual_bytes,
        anon_resident_bytes: status.anon_resident_bytes,
        file_resident_bytes: status.file_resident_bytes,
        phys_footprint_bytes: None,
    })
}

/// Reads and parses the real `/proc/self` files.
#[cfg(target_os = "linux")]
pub(crate) fn read_process_memory() -> Result<ProcessMemory, OsError> {
    let page_size_bytes = super::try_page_size_bytes()?;
    let statm = std::fs::read_to_string(STATM_PATH).map_err(|e| OsError::io(STATM_PATH, e))?;
    let status = std::fs::read_to_string(STATUS_PATH).map_err(|e| OsError::io(STATUS_PATH, e))?;
    parse_process_memory(&statm, &status, page_size_bytes)
}

/// Parses the value part of a `Key:   1234 kB` line into bytes.
fn parse_kib_value(value: &str) -> Result<u64, &'static str> {
    let mut parts = value.split_ascii_whitespace();
    let number = parts.next().ok_or("the value is missing")?;
    let kib: u64 = number
        .parse()
        .map_err(|_| "the value is not a whole number")?;
    match (parts.next(), parts.next()) {
        (Some("kB"), None) => {}
        _ => return Err("expected the unit `kB` after the number"),
    }
    kib.checked_mul(KIB_BYTES)
        .ok_or("the value overflows 64 bits")
}

/// An error about line `index` (0-based) of `/proc/self/status`.
fn status_error(index: usize, line: &str, what: &str) -> OsError {
    let line_number = index + 1;
    OsError::malformed(STATUS_PATH, format!("line {line_number} `{line}`: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statm_pages_are_multiplied_by_the_given_page_size() {
        // The same counts give four times the bytes with 16 KiB pages.
        let text = "2500 300 100 10 0 900 0\n";
        let small = parse_statm(text, 4096).map_err(|e| e.to_string());
        let large = parse_statm(text, 16384).map_err(|e| e.to_string());
        assert_eq!(
            small,
            Ok(StatmFigures {
                virtual_bytes: 2500 * 4096,
                resident_bytes: 300 * 4096
            })
        );
        assert_eq!(large.map(|f| f.resident_bytes), Ok(300 * 16384));
    }

    #[test]
    fn statm_errors_name_the_file_and_the_field() {
        // Garbage, a short line and an overflowing count each fail clearly.
        let garbage = parse_statm("12 abc 3", 4096).map(|_| ());
        let message = garbage.map_err(|e| e.to_string()).unwrap_err();
        assert!(message.contains("/proc/self/statm"), "{message}");
        assert!(message.contains("`resident` is `abc`"), "{message}");
        let short = parse_statm("12", 4096).map_err(|e| e.to_string());
        assert!(short.unwrap_err().contains("missing field `resident`"));
        let empty = parse_statm("", 4096).map_err(|e| e.to_string());
        assert!(empty.unwrap_err().contains("missing field `size`"));
        let huge = parse_statm("18446744073709551615 1", 4096).map_err(|e| e.to_string());
        assert!(huge.unwrap_err().contains("overflows"));
    }

    #[test]
    fn status_values_are_kib_of_1024_bytes() {
        // RssAnon alone, and RssFile + RssShmem together, in units of 1024.
        let text = "Name:\tx\nRssAnon:\t     100 kB\nRssFile:\t  20 kB\nRssShmem:\t 3 kB\n";
        let figures = parse_status(text).map_err(|e| e.to_string());
        assert_eq!(
            figures,
            Ok(StatusFigures {
                anon_resident_bytes: Some(100 * 1024),
                file_resident_bytes: Some(23 * 1024),
            })
        );
    }

    #[test]
    fn status_without_the_rss_split_gives_none() {
        // Kernels before 4.5 have only VmRSS: the split is unknown, not zero.
        let text = "Name:\tx\nVmRSS:\t  900 kB\nRssFile:\t  20 kB\n";
        let figures = parse_status(text).map_err(|e| e.to_string());
        assert_eq!(figures, Ok(StatusFigures::default()));
    }

    #[test]
    fn status_errors_name_the_file_line_and_problem() {
        // Wrong unit, missing number, duplicate key and overflow are errors.
        let cases = [
            (
                "RssAnon:\t12 MB\n",
                "line 1 `RssAnon:\t12 MB`: expected the unit `kB`",
            ),
            (
                "Name: x\nRssAnon:\n",
                "line 2 `RssAnon:`: the value is missing",
            ),
            ("RssAnon: x1 kB\n", "not a whole number"),
            ("RssAnon: 1 kB\nRssAnon: 2 kB\n", "the key appears twice"),
            ("RssAnon: 18446744073709551615 kB\n", "overflows 64 bits"),
            ("RssAnon: 1 kB extra\n", "expected the unit `kB`"),
        ];
        for (text, expected) in cases {
            let message = parse_status(text).map_err(|e| e.to_string()).unwrap_err();
            assert!(
                message.starts_with("malformed /proc/self/status: "),
                "{message}"
            );
            assert!(message.contains(expected), "{text:?} gave {message}");
        }
    }
}
