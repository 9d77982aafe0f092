//! Storage: appends, reads, restarts, torn tails, rebuilt indexes, rolling.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use streamlet::cache::{BlockCache, IndexCache};
use streamlet::storage::{Entry, IdSpec, StorageError, Store, StoreConfig, StreamId};

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("streamlet-{name}-{}-{unique}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(config: &StoreConfig) -> Store {
    let blocks = Arc::new(BlockCache::new(1 << 20));
    let indexes = Arc::new(IndexCache::new(1 << 20));
    Store::open(config.clone(), blocks, indexes).unwrap()
}

fn small_segments(dir: &Path) -> StoreConfig {
    StoreConfig {
        segment_max_bytes: 1024,
        index_interval_bytes: 128,
        ..StoreConfig::new(dir)
    }
}

fn add(store: &Store, key: &[u8], id: StreamId, value: &str) {
    let fields: [(&[u8], &[u8]); 1] = [(b"v", value.as_bytes())];
    let added = store
        .append(key, IdSpec::Explicit(id), &fields, true)
        .unwrap();
    assert_eq!(added, Some(id));
}

fn ids(entries: &[Entry]) -> Vec<StreamId> {
    entries.iter().map(|entry| entry.id).collect()
}

fn all(store: &Store, key: &[u8]) -> Vec<Entry> {
    store
        .range(key, StreamId::MIN, StreamId::MAX, None)
        .unwrap()
}

fn stream_dir(config: &StoreConfig, encoded_key: &str) -> PathBuf {
    config.data_dir.join("streams").join(encoded_key)
}

fn files_with(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|dirent| dirent.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
}

/// Entries come back in order with their fields, after a restart too, across
/// many rolled segments.
#[test]
fn entries_survive_a_restart_across_segments() {
    let tmp = TempDir::new("restart");
    let config = small_segments(&tmp.0);
    {
        let store = open(&config);
        for n in 1..=200 {
            add(&store, b"s", StreamId::new(n, 0), &format!("value {n}"));
        }
        assert_eq!(store.len(b"s"), 200);
    }
    let segments = files_with(&stream_dir(&config, "s"), "log");
    assert!(
        segments.len() > 5,
        "expected rolled segments, got {}",
        segments.len()
    );

    let store = open(&config);

    assert_eq!(store.len(b"s"), 200);
    let entries = all(&store, b"s");
    assert_eq!(
        ids(&entries),
        (1..=200).map(|n| StreamId::new(n, 0)).collect::<Vec<_>>()
    );
    assert_eq!(entries[41].fields, [(b"v".to_vec(), b"value 42".to_vec())]);
    assert_eq!(store.last_id(b"s"), Some(StreamId::new(200, 0)));
}

/// Ranges seek with the index and honour both bounds and the count, in
/// sealed and active segments alike.
#[test]
fn ranges_honour_bounds_and_count() {
    let tmp = TempDir::new("range");
    let config = small_segments(&tmp.0);
    let store = open(&config);
    for n in 1..=100 {
        add(&store, b"s", StreamId::new(n * 10, 0), "x");
    }
    let range = |start, end, count| ids(&store.range(b"s", start, end, count).unwrap());
    let id = |ms| StreamId::new(ms, 0);

    assert_eq!(range(id(15), id(40), None), [id(20), id(30), id(40)]);
    assert_eq!(range(id(500), StreamId::MAX, Some(2)), [id(500), id(510)]);
    assert_eq!(range(id(995), StreamId::MAX, None), [id(1000)]);
    assert_eq!(range(id(40), id(30), None), Vec::<StreamId>::new());
    assert_eq!(range(StreamId::MIN, StreamId::MAX, None).len(), 100);
    assert!(store
        .range(b"missing", StreamId::MIN, StreamId::MAX, None)
        .unwrap()
        .is_empty());
}

/// A record cut mid-way (a write torn by a kill) is removed on open; every
/// complete record comes back and appending continues after it.
#[test]
fn torn_tail_is_cut_on_open() {
    let tmp = TempDir::new("torn");
    let config = StoreConfig::new(&tmp.0);
    {
        let store = open(&config);
        for n in 1..=10 {
            add(&store, b"s", StreamId::new(n, 0), "payload");
        }
    }
    let segment = files_with(&stream_dir(&config, "s"), "log").pop().unwrap();
    let full_len = fs::metadata(&segment).unwrap().len();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(full_len - 5).unwrap();
    drop(file);

    let store = open(&config);

    assert_eq!(
        ids(&all(&store, b"s")),
        (1..=9).map(|n| StreamId::new(n, 0)).collect::<Vec<_>>()
    );
    assert_eq!(store.len(b"s"), 9);
    assert!(fs::metadata(&segment).unwrap().len() < full_len - 5);
    add(&store, b"s", StreamId::new(10, 0), "again");
    drop(store);
    let store = open(&config);
    assert_eq!(store.len(b"s"), 10);
}

/// Garbage appended after the last record is cut on open.
#[test]
fn garbage_tail_is_cut_on_open() {
    let tmp = TempDir::new("garbage");
    let config = StoreConfig::new(&tmp.0);
    let clean_len = {
        let store = open(&config);
        for n in 1..=5 {
            add(&store, b"s", StreamId::new(n, 0), "payload");
        }
        let segment = files_with(&stream_dir(&config, "s"), "log").pop().unwrap();
        fs::metadata(&segment).unwrap().len()
    };
    let segment = files_with(&stream_dir(&config, "s"), "log").pop().unwrap();
    let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
    file.write_all(&[0x55; 37]).unwrap();
    drop(file);

    let store = open(&config);

    assert_eq!(store.len(b"s"), 5);
    assert_eq!(ids(&all(&store, b"s")).len(), 5);
    assert_eq!(fs::metadata(&segment).unwrap().len(), clean_len);
}

/// A flipped bit in the last record fails its checksum: that record is cut,
/// the ones before it stay.
#[test]
fn corrupt_last_record_is_cut_on_open() {
    let tmp = TempDir::new("crc");
    let config = StoreConfig::new(&tmp.0);
    {
        let store = open(&config);
        for n in 1..=3 {
            add(&store, b"s", StreamId::new(n, 0), "payload");
        }
    }
    let segment = files_with(&stream_dir(&config, "s"), "log").pop().unwrap();
    let mut bytes = fs::read(&segment).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0x01;
    fs::write(&segment, &bytes).unwrap();

    let store = open(&config);

    assert_eq!(
        ids(&all(&store, b"s")),
        [StreamId::new(1, 0), StreamId::new(2, 0)]
    );
}

/// Deleted or damaged index files are rebuilt from their segments, and reads
/// still find every entry.
#[test]
fn index_files_are_rebuilt_when_missing_or_corrupt() {
    let tmp = TempDir::new("index");
    let config = small_segments(&tmp.0);
    {
        let store = open(&config);
        for n in 1..=100 {
            add(&store, b"s", StreamId::new(n, 0), "some value");
        }
    }
    let dir = stream_dir(&config, "s");
    let indexes = files_with(&dir, "idx");
    assert!(
        indexes.len() >= 2,
        "sealed segments should have index files"
    );
    fs::remove_file(&indexes[0]).unwrap();
    fs::write(&indexes[1], b"not an index").unwrap();

    let store = open(&config);

    assert_eq!(files_with(&dir, "idx").len(), indexes.len());
    assert_ne!(fs::read(&indexes[1]).unwrap(), b"not an index");
    let from_50 = store
        .range(b"s", StreamId::new(50, 0), StreamId::MAX, Some(3))
        .unwrap();
    assert_eq!(
        ids(&from_50),
        [
            StreamId::new(50, 0),
            StreamId::new(51, 0),
            StreamId::new(52, 0)
        ]
    );
    assert_eq!(store.len(b"s"), 100);
}

/// Reads still work, from disk, after both caches were emptied.
#[test]
fn reads_survive_cleared_caches() {
    let tmp = TempDir::new("caches");
    let config = small_segments(&tmp.0);
    let store = open(&config);
    for n in 1..=50 {
        add(&store, b"s", StreamId::new(n, 0), "value");
    }
    assert_eq!(all(&store, b"s").len(), 50);
    assert!(store.block_cache().size_bytes() > 0);

    assert!(store.block_cache().clear() > 0);
    assert!(store.index_cache().clear() > 0);

    assert_eq!(all(&store, b"s").len(), 50);
}

/// Reads see appends made after their blocks were cached.
#[test]
fn reads_see_appends_to_a_cached_tail_block() {
    let tmp = TempDir::new("tail");
    let store = open(&StoreConfig::new(&tmp.0));
    add(&store, b"s", StreamId::new(1, 0), "a");
    assert_eq!(all(&store, b"s").len(), 1);
    add(&store, b"s", StreamId::new(2, 0), "b");
    assert_eq!(
        ids(&all(&store, b"s")),
        [StreamId::new(1, 0), StreamId::new(2, 0)]
    );
}

/// Keys are arbitrary bytes; each maps to a safe directory and reopens.
#[test]
fn arbitrary_keys_are_stored_in_safe_directories() {
    let tmp = TempDir::new("keys");
    let config = StoreConfig::new(&tmp.0);
    let keys: [&[u8]; 5] = [b"..", b"a/b", b"", b"Upper", &[0, 255, b'\n']];
    {
        let store = open(&config);
        for key in keys {
            add(&store, key, StreamId::new(1, 0), "v");
        }
    }
    let store = open(&config);
    assert_eq!(store.stream_count(), keys.len());
    for key in keys {
        assert_eq!(store.len(key), 1, "{key:?}");
    }
    for dirent in fs::read_dir(config.data_dir.join("streams")).unwrap() {
        let name = dirent.unwrap().file_name().into_string().unwrap();
        assert!(name != "." && name != ".." && !name.contains('/'));
    }
}

/// IDs must grow: a smaller or equal explicit ID is refused with Redis's
/// error, auto IDs keep growing even when the clock goes back.
#[test]
fn ids_follow_redis_rules() {
    let tmp = TempDir::new("ids");
    let clock_ms = Arc::new(AtomicU64::new(1000));
    let clock = Arc::clone(&clock_ms);
    let store =
        open(&StoreConfig::new(&tmp.0)).with_clock(Arc::new(move || clock.load(Ordering::Relaxed)));
    let fields: [(&[u8], &[u8]); 1] = [(b"f", b"v")];
    let append = |id| store.append(b"s", id, &fields, true);

    assert_eq!(append(IdSpec::Auto).unwrap(), Some(StreamId::new(1000, 0)));
    assert_eq!(append(IdSpec::Auto).unwrap(), Some(StreamId::new(1000, 1)));
    clock_ms.store(10, Ordering::Relaxed);
    assert_eq!(append(IdSpec::Auto).unwrap(), Some(StreamId::new(1000, 2)));
    let refused = append(IdSpec::Explicit(StreamId::new(1000, 2))).unwrap_err();
    match refused {
        StorageError::Id(error) => assert_eq!(
            error.redis_message(),
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
        ),
        other => panic!("unexpected error {other}"),
    }
    assert_eq!(store.len(b"s"), 3);
    assert_eq!(
        store.append(b"new", IdSpec::Auto, &fields, false).unwrap(),
        None
    );
    assert!(!store.exists(b"new"));
}
