//! Durable streams on the local file system.
//!
//! A [`Store`] keeps each stream in a directory under
//! `<data_dir>/streams/`, named by escaping the key (lower-case letters,
//! digits, `_` and `-` kept, every other byte `%XX`, the empty key `%`).
//! A stream is a sequence of append-only segment files named after their
//! first entry's ID; a segment rolls once it reaches
//! [`StoreConfig::segment_max_bytes`]. See the `record`, `index` and
//! `segment` modules for the byte formats.
//!
//! # Durability
//!
//! An append returns only after its record was handed to the kernel with
//! `write(2)`: it survives the process being killed. Under
//! [`FsyncPolicy::EveryAppend`] the segment is also synced with
//! `fdatasync`, so the record survives power loss. On open, every segment
//! but the last must match its index file (or is rescanned); the last is
//! scanned, cut after its last valid record (a torn write, garbage or a
//! checksum failure ends it), and indexed again. Every acknowledged record
//! comes back.
//!
//! # Reads
//!
//! A range read seeks with the sparse index of the segment holding its start
//! ID and reads blocks through the [`BlockCache`]; sealed segments' indexes
//! are kept in the [`IndexCache`]. Entry counts are kept in memory and
//! recomputed on open.

mod id;
mod index;
mod key;
mod record;
mod segment;
mod stream;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

pub use id::{parse_range_end, parse_range_start, IdError, IdSpec, StreamId};
pub use index::SegmentIndex;
pub use key::MAX_ENCODED_KEY_BYTES;
pub use record::{Entry, MAX_RECORD_BYTES};

use crate::cache::{BlockCache, IndexCache};
use stream::Stream;

/// Default segment size before rolling: 64 MiB.
pub const DEFAULT_SEGMENT_MAX_BYTES: u64 = 64 << 20;
/// Default spacing of sparse index points: 4 KiB of segment per point, so a
/// seek scans at most about one 4 KiB stretch of records.
pub const DEFAULT_INDEX_INTERVAL_BYTES: u64 = 4 << 10;

/// Gives process-wide numbers to open streams, so that streams of different
/// stores never share cache keys.
static NEXT_STREAM_NO: AtomicU64 = AtomicU64::new(1);

/// When appends are synced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Never: an acknowledged append survives a process kill, not power loss.
    #[default]
    Never,
    /// After every append (and directory changes): survives power loss.
    EveryAppend,
}

/// Where and how a [`Store`] keeps its streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// The directory holding `streams/`; created if missing.
    pub data_dir: PathBuf,
    /// Segment size at which the next append starts a new segment.
    pub segment_max_bytes: u64,
    /// Bytes of segment between two sparse index points.
    pub index_interval_bytes: u64,
    /// When appends are synced.
    pub fsync: FsyncPolicy,
}

impl StoreConfig {
    /// The defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        StoreConfig {
            data_dir: data_dir.into(),
            segment_max_bytes: DEFAULT_SEGMENT_MAX_BYTES,
            index_interval_bytes: DEFAULT_INDEX_INTERVAL_BYTES,
            fsync: FsyncPolicy::Never,
        }
    }
}

/// Why a storage operation failed.
#[derive(Debug)]
pub enum StorageError {
    /// A file operation failed.
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// Writing or syncing an appended record failed (a full disk, a file
    /// size limit, an I/O error); the record was not stored.
    Write {
        /// The segment file written to.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The entry ID was refused.
    Id(IdError),
    /// The key escapes to more than [`MAX_ENCODED_KEY_BYTES`] bytes.
    KeyTooLong,
    /// The entry's record would exceed [`MAX_RECORD_BYTES`].
    EntryTooLarge,
    /// An earlier failed write could not be undone; the stream refuses
    /// writes until the store is reopened.
    StreamFailed,
}

impl StorageError {
    fn io(path: &Path, source: io::Error) -> Self {
        StorageError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageError::Io { path, source } => {
                write!(f, "i/o error on {}: {source}", path.display())
            }
            StorageError::Write { path, source } => {
                write!(f, "cannot write to {}: {source}", path.display())
            }
            StorageError::Id(error) => error.fmt(f),
            StorageError::KeyTooLong => write!(
                f,
                "stream key too long: at most {MAX_ENCODED_KEY_BYTES} bytes once escaped"
            ),
            StorageError::EntryTooLarge => {
                write!(
                    f,
                    "entry too large: at most {MAX_RECORD_BYTES} bytes encoded"
                )
            }
            StorageError::StreamFailed => {
                f.write_str("stream refuses writes after a write it could not undo")
            }
        }
    }
}

impl std::error::Error for StorageError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StorageError::Io { source, .. } | StorageError::Write { source, .. } => Some(source),
            StorageError::Id(error) => Some(error),
            _ => None,
        }
    }
}

/// A clock giving milliseconds since the Unix epoch, for `*` IDs.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// All streams of one data directory. Safe to share between threads.
pub struct Store {
    config: StoreConfig,
    streams_dir: PathBuf,
    streams: Mutex<HashMap<Vec<u8>, Arc<Stream>>>,
    block_cache: Arc<BlockCache>,
    index_cache: Arc<IndexCache>,
    clock: Clock,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("config", &self.config)
            .field("streams", &self.stream_count())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store and recovers every stream in it.
    ///
    /// Directories under `streams/` whose names are not escaped keys are
    /// skipped with a warning.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when the data directory cannot be created or a
    /// stream cannot be read or repaired.
    pub fn open(
        config: StoreConfig,
        block_cache: Arc<BlockCache>,
        index_cache: Arc<IndexCache>,
    ) -> Result<Store, StorageError> {
        let streams_dir = config.data_dir.join("streams");
        fs::create_dir_all(&streams_dir)
            .map_err(|source| StorageError::io(&streams_dir, source))?;
        let mut streams = HashMap::new();
        let listing = fs::read_dir(&streams_dir).map_err(|e| StorageError::io(&streams_dir, e))?;
        for dirent in listing {
            let dirent = dirent.map_err(|source| StorageError::io(&streams_dir, source))?;
            let name = dirent.file_name();
            let Some(key) = name.to_str().and_then(key::decode_key) else {
                tracing::warn!(name = ?name, "skipping a directory that is not a stream");
                continue;
            };
            let no = NEXT_STREAM_NO.fetch_add(1, Ordering::Relaxed);
            let stream = Stream::open(dirent.path(), no, &config, &index_cache)?;
            streams.insert(key, Arc::new(stream));
        }
        tracing::info!(data_dir = %config.data_dir.display(), streams = streams.len(),
            "store opened");
        Ok(Store {
            config,
            streams_dir,
            streams: Mutex::new(streams),
            block_cache,
            index_cache,
            clock: Arc::new(wall_clock_ms),
        })
    }

    /// Replaces the clock used for `*` IDs (the wall clock by default).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configuration the store was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.config
    }

    /// The block cache reads go through.
    pub fn block_cache(&self) -> &Arc<BlockCache> {
        &self.block_cache
    }

    /// The cache of sealed segments' indexes.
    pub fn index_cache(&self) -> &Arc<IndexCache> {
        &self.index_cache
    }

    /// The number of streams.
    pub fn stream_count(&self) -> usize {
        self.lock().len()
    }

    /// Appends an entry to the stream `key` and returns its ID once written.
    ///
    /// A missing stream is created when `create` is set; otherwise nothing is
    /// written and `Ok(None)` is returned (`XADD ... NOMKSTREAM`).
    ///
    /// # Errors
    ///
    /// [`StorageError::Id`] when the ID is refused (Redis's rules, see
    /// [`IdSpec::resolve`]), [`StorageError::KeyTooLong`],
    /// [`StorageError::EntryTooLarge`], [`StorageError::StreamFailed`],
    /// [`StorageError::Write`] when the record could not be written (nothing
    /// of it is kept), and [`StorageError::Io`].
    pub fn append(
        &self,
        key: &[u8],
        id: IdSpec,
        fields: &[(&[u8], &[u8])],
        create: bool,
    ) -> Result<Option<StreamId>, StorageError> {
        let stream = match (self.stream(key), create) {
            (Some(stream), _) => stream,
            (None, false) => return Ok(None),
            (None, true) => self.create_stream(key)?,
        };
        let now_ms = (self.clock)();
        let id = stream.append(id, fields, now_ms, &self.config, &self.index_cache)?;
        Ok(Some(id))
    }

    /// Reads up to `count` entries of `key` with IDs from `start` to `end`,
    /// both included, in order. A missing stream reads as empty.
    ///
    /// # Errors
    ///
    /// [`StorageError::Io`] when a segment cannot be read or a record fails
    /// its checksum.
    pub fn range(
        &self,
        key: &[u8],
        start: StreamId,
        end: StreamId,
        count: Option<usize>,
    ) -> Result<Vec<Entry>, StorageError> {
        let Some(stream) = self.stream(key) else {
            return Ok(Vec::new());
        };
        let caches = (&*self.block_cache, &*self.index_cache);
        stream.range(
            (start, end),
            count.unwrap_or(usize::MAX),
            &self.config,
            caches,
        )
    }

    /// Entries in the stream `key`; 0 when it does not exist.
    pub fn len(&self, key: &[u8]) -> u64 {
        self.stream(key).map_or(0, |stream| stream.len())
    }

    /// Whether the stream `key` exists.
    pub fn exists(&self, key: &[u8]) -> bool {
        self.stream(key).is_some()
    }

    /// The ID of the last entry of `key`, if the stream exists.
    pub fn last_id(&self, key: &[u8]) -> Option<StreamId> {
        self.stream(key).map(|stream| stream.last_id())
    }

    /// Locks the stream map. Inserting is its only change, which a panic
    /// cannot leave half done, so a poisoned lock is used as is.
    fn lock(&self) -> MutexGuard<'_, HashMap<Vec<u8>, Arc<Stream>>> {
        self.streams.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stream(&self, key: &[u8]) -> Option<Arc<Stream>> {
        self.lock().get(key).cloned()
    }

    /// Creates the directory of a new stream, or returns the stream another
    /// thread created first.
    fn create_stream(&self, key: &[u8]) -> Result<Arc<Stream>, StorageError> {
        let name = key::encode_key(key).ok_or(StorageError::KeyTooLong)?;
        let mut streams = self.lock();
        if let Some(stream) = streams.get(key) {
            return Ok(Arc::clone(stream));
        }
        let dir = self.streams_dir.join(name);
        fs::create_dir_all(&dir).map_err(|source| StorageError::io(&dir, source))?;
        if self.config.fsync == FsyncPolicy::EveryAppend {
            stream::sync_dir(&self.streams_dir)
                .map_err(|source| StorageError::io(&self.streams_dir, source))?;
        }
        let no = NEXT_STREAM_NO.fetch_add(1, Ordering::Relaxed);
        let stream = Arc::new(Stream::open(dir, no, &self.config, &self.index_cache)?);
        streams.insert(key.to_vec(), Arc::clone(&stream));
        tracing::debug!(stream_no = stream.no(), "stream created");
        Ok(stream)
    }
}

/// Milliseconds since the Unix epoch from the system clock (0 before it).
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}
