//! Parsing `/proc/self/statm` and `/proc/self/status` fixtures: page counts
//! times the page size, `kB` as 1024 bytes, and malformed files.

use std::path::Path;

use mempressure::os::linux::{parse_process_memory, parse_statm, parse_status};
use mempressure::os::ProcessMemory;

const KIB: u64 = 1024;

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/proc")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn fixture_files_give_every_linux_figure() {
    // statm pages x 4 KiB; RssAnon; RssFile + RssShmem; no macOS footprint.
    let memory = parse_process_memory(&fixture("statm"), &fixture("status"), 4096);
    let memory = memory.map_err(|e| e.to_string());
    assert_eq!(
        memory,
        Ok(ProcessMemory {
            resident_bytes: 25_600 * 4096,
            virtual_bytes: 262_144 * 4096,
            anon_resident_bytes: Some(81_920 * KIB),
            file_resident_bytes: Some((16_384 + 4_096) * KIB),
            phys_footprint_bytes: None,
        })
    );
}

#[test]
fn page_size_is_taken_from_the_caller_not_assumed() {
    // On a 64 KiB-page kernel the same statm is sixteen times larger.
    let small = parse_statm(&fixture("statm"), 4096).map(|f| f.resident_bytes);
    let large = parse_statm(&fixture("statm"), 65_536).map(|f| f.resident_bytes);
    assert_eq!(small.map_err(|e| e.to_string()), Ok(25_600 * 4096));
    assert_eq!(large.map_err(|e| e.to_string()), Ok(25_600 * 65_536));
}

#[test]
fn status_of_an_old_kernel_leaves_the_split_unknown() {
    // Before Linux 4.5 there is no RssAnon: None, not 0.
    let status = parse_status(&fixture("status_before_linux_4_5")).map_err(|e| e.to_string());
    let status = status.map(|s| (s.anon_resident_bytes, s.file_resident_bytes));
    assert_eq!(status, Ok((None, None)));
}

#[test]
fn malformed_status_names_the_file_and_line() {
    // A wrong unit and a non-number each say where and what.
    let unit = parse_status(&fixture("status_malformed_unit")).map(|_| ());
    let unit = unit.map_err(|e| e.to_string()).unwrap_err();
    assert!(
        unit.starts_with("malformed /proc/self/status: line 2 "),
        "{unit}"
    );
    assert!(unit.contains("expected the unit `kB`"), "{unit}");
    let number = parse_status(&fixture("status_malformed_number")).map(|_| ());
    let number = number.map_err(|e| e.to_string()).unwrap_err();
    assert!(number.contains("line 3 `RssFile:\tlots kB`"), "{number}");
}

#[test]
fn malformed_statm_names_the_file_and_field() {
    // A truncated file and a negative count are errors, not panics.
    let truncated = parse_statm(&fixture("statm_truncated"), 4096).map(|_| ());
    let truncated = truncated.map_err(|e| e.to_string()).unwrap_err();
    assert!(truncated.starts_with("malformed /proc/self/statm: missing field `resident`"));
    let garbage = parse_statm(&fixture("statm_garbage"), 4096).map(|_| ());
    let garbage = garbage.map_err(|e| e.to_string()).unwrap_err();
    assert!(garbage.contains("field `resident` is `-3`"), "{garbage}");
}
