//! One stream: its segments, recovery on open, appends and range reads.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::id::{IdSpec, StreamId};
use super::index::{IndexBuilder, SegmentIndex};
use super::record::{self, Entry};
use super::segment::{self, ReadStop, SegmentView};
use super::{FsyncPolicy, StorageError, StoreConfig};
use crate::cache::{BlockCache, IndexCache, IndexKey};

/// An open stream. Appends take its lock for the write itself; reads take
/// it only to copy the segment list and then read without it.
#[derive(Debug)]
pub(crate) struct Stream {
    no: u64,
    dir: PathBuf,
    state: Mutex<State>,
}

/// The mutable part of a stream.
#[derive(Debug)]
struct State {
    sealed: Vec<Sealed>,
    active: Option<Active>,
    last_id: StreamId,
    len: u64,
    /// Set when a failed write could not be undone: the segment may end in a
    /// torn record, and appending after it would hide later records from
    /// recovery, so the stream refuses writes until reopened.
    failed: bool,
    /// Reused buffer for encoding one record.
    frame: Vec<u8>,
}

/// The largest encoding buffer a stream keeps between appends: small, since
/// every stream keeps one and none is reclaimable.
const FRAME_KEEP_BYTES: usize = 4 << 10;

/// A segment that no longer grows.
#[derive(Debug)]
struct Sealed {
    base: StreamId,
    file: Arc<File>,
    len_bytes: u64,
}

/// The segment appends go to.
#[derive(Debug)]
struct Active {
    base: StreamId,
    file: Arc<File>,
    index: IndexBuilder,
}

impl Stream {
    /// Opens the stream in `dir`, creating the directory when `create` is
    /// set; recovers the last segment and checks the others' indexes.
    ///
    /// # Errors
    ///
    /// I/O errors from listing, reading, truncating or removing files.
    pub(crate) fn open(
        dir: PathBuf,
        no: u64,
        config: &StoreConfig,
        index_cache: &IndexCache,
    ) -> Result<Stream, StorageError> {
        let io_err = |source| StorageError::io(&dir, source);
        let mut bases = Vec::new();
        for dirent in fs::read_dir(&dir).map_err(io_err)? {
            let name = dirent.map_err(io_err)?.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = segment::parse_log_file_name(&name) {
                bases.push(base);
            } else if name.ends_with(".idx.tmp") {
                let _ = fs::remove_file(dir.join(&*name));
            }
        }
        bases.sort_unstable();

        let mut state = State {
            sealed: Vec::new(),
            active: None,
            last_id: StreamId::MIN,
            len: 0,
            failed: false,
            frame: Vec::new(),
        };
        let Some((&last_base, sealed_bases)) = bases.split_last() else {
            return Ok(Stream {
                no,
                dir,
                state: Mutex::new(state),
            });
        };

        // Sealed segments: trust a matching index file, else rebuild it.
        for &base in sealed_bases {
            let (file, index) = open_sealed(&dir, base, state.last_id, config)?;
            state.last_id = state.last_id.max(index.last_id());
            state.len += index.record_count();
            state.sealed.push(Sealed {
                base,
                file,
                len_bytes: index.segment_len_bytes(),
            });
            index_cache.insert(
                IndexKey {
                    stream_no: no,
                    segment_base: base,
                },
                Arc::new(index),
            );
        }

        // The last segment: cut a torn or corrupt tail, rebuild its index.
        state.active = recover_active(&dir, last_base, state.last_id, config)?;
        if let Some(active) = &state.active {
            state.last_id = active.index.index().last_id();
            state.len += active.index.index().record_count();
        }
        Ok(Stream {
            no,
            dir,
            state: Mutex::new(state),
        })
    }

    /// Locks the state. A panic while it was held leaves at worst an
    /// unacknowledged record, which recovery handles, so a poisoned lock is
    /// used as is.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The process-wide number of this open stream.
    pub(crate) fn no(&self) -> u64 {
        self.no
    }

    /// Entries in the stream.
    pub(crate) fn len(&self) -> u64 {
        self.lock().len
    }

    /// The ID of the last entry (`0-0` when empty).
    pub(crate) fn last_id(&self) -> StreamId {
        self.lock().last_id
    }

    /// Appends one entry and returns its ID once the record is written to
    /// the segment file (and synced, under [`FsyncPolicy::EveryAppend`]).
    ///
    /// # Errors
    ///
    /// [`StorageError::Id`] when the ID is refused, `EntryTooLarge`,
    /// `StreamFailed`, `Write` when the record could not be written, and I/O
    /// errors.
    pub(crate) fn append(
        &self,
        spec: IdSpec,
        fields: &[(&[u8], &[u8])],
        now_ms: u64,
        config: &StoreConfig,
        index_cache: &IndexCache,
    ) -> Result<StreamId, StorageError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let appended = self.append_locked(state, spec, fields, now_ms, config, index_cache);

        // A large record's buffer is not kept, on any path: every stream
        // would otherwise hold the largest record it ever took, where no
        // reclaimer can reach it.
        if state.frame.capacity() > FRAME_KEEP_BYTES {
            state.frame = Vec::new();
        }
        appended
    }

    /// [`Stream::append`] under the stream's lock.
    fn append_locked(
        &self,
        state: &mut State,
        spec: IdSpec,
        fields: &[(&[u8], &[u8])],
        now_ms: u64,
        config: &StoreConfig,
        index_cache: &IndexCache,
    ) -> Result<StreamId, StorageError> {
        if state.failed {
            return Err(StorageError::StreamFailed);
        }
        let id = spec
            .resolve(state.last_id, now_ms)
            .map_err(StorageError::Id)?;
        state.frame.clear();
        if !record::encode(id, fields, &mut state.frame) {
            return Err(StorageError::EntryTooLarge);
        }

        // Roll to a new segment, named after this entry, when the active
        // one is full (or there is none yet).
        let full =
            |active: &Active| active.index.index().segment_len_bytes() >= config.segment_max_bytes;
        if state.active.as_ref().is_none_or(full) {
            if let Some(old) = state.active.take() {
                state.sealed.push(self.seal(old, config, index_cache));
            }
            state.active = Some(self.create_segment(id, config)?);
        }
        let Some(active) = state.active.as_mut() else {
            return Err(StorageError::StreamFailed);
        };

        // Write the record; undo a partial write so the file ends on a record.
        let offset = active.index.index().segment_len_bytes();
        let frame_bytes = state.frame.len() as u64;
        let written = (&*active.file)
            .write_all(&state.frame)
            .and_then(|()| match config.fsync {
                FsyncPolicy::EveryAppend => active.file.sync_data(),
                FsyncPolicy::Never => Ok(()),
            });
        if let Err(source) = written {
            // Named only on failure: building the path costs allocations.
            let path = self.dir.join(segment::log_file_name(active.base));
            if let Err(undo) = active.file.set_len(offset) {
                tracing::error!(path = %path.display(), error = %undo,
                    "cannot undo a failed append; stream refuses writes until reopened");
                state.failed = true;
            }
            return Err(StorageError::Write { path, source });
        }
        {
            let _scope = mempressure::scope!(crate::Component::IndexCache);
            active.index.push(id, offset, frame_bytes);
        }
        state.last_id = id;
        state.len += 1;
        Ok(id)
    }

    /// Reads up to `count` entries with IDs in `start..=end`.
    ///
    /// # Errors
    ///
    /// I/O errors, and `InvalidData` ones for records that fail their
    /// checksum.
    pub(crate) fn range(
        &self,
        (start, end): (StreamId, StreamId),
        count: usize,
        config: &StoreConfig,
        caches: (&BlockCache, &IndexCache),
    ) -> Result<Vec<Entry>, StorageError> {
        let mut out = Vec::new();
        if start > end || count == 0 {
            return Ok(out);
        }

        // Copy the segment list; find where the active segment starts.
        let (views, active_offset, has_active) = {
            let state = self.lock();
            let mut views: Vec<SegmentView> = state
                .sealed
                .iter()
                .map(|sealed| self.view(sealed.base, &sealed.file, sealed.len_bytes))
                .collect();
            let mut active_offset = 0;
            if let Some(active) = &state.active {
                let index = active.index.index();
                views.push(self.view(active.base, &active.file, index.segment_len_bytes()));
                active_offset = index.seek(start);
            }
            (views, active_offset, state.active.is_some())
        };
        let first = views
            .partition_point(|view| view.base <= start)
            .saturating_sub(1);

        // Read forward from the segment holding `start`.
        for (position, view) in views.iter().enumerate().skip(first) {
            if view.base > end {
                break;
            }
            let offset = if position != first {
                0
            } else if has_active && position + 1 == views.len() {
                active_offset
            } else {
                self.sealed_index(view, config, caches.1)?.seek(start)
            };
            let path = || self.dir.join(segment::log_file_name(view.base));
            let stop = view
                .read_range(caches.0, offset, (start, end), count, &mut out)
                .map_err(|source| StorageError::io(&path(), source))?;
            if stop == ReadStop::Done {
                break;
            }
        }
        Ok(out)
    }

    fn view(&self, base: StreamId, file: &Arc<File>, len_bytes: u64) -> SegmentView {
        SegmentView {
            stream_no: self.no,
            base,
            file: Arc::clone(file),
            len_bytes,
        }
    }

    /// The index of a sealed segment: from the cache, else its file, else
    /// rebuilt by a scan.
    fn sealed_index(
        &self,
        view: &SegmentView,
        config: &StoreConfig,
        index_cache: &IndexCache,
    ) -> Result<Arc<SegmentIndex>, StorageError> {
        let key = IndexKey {
            stream_no: self.no,
            segment_base: view.base,
        };
        if let Some(index) = index_cache.get(&key) {
            return Ok(index);
        }
        let path = self.dir.join(segment::index_file_name(view.base));
        let _scope = mempressure::scope!(crate::Component::IndexCache);
        let index = match segment::load_index_file(&path) {
            Some(index) if index.segment_len_bytes() == view.len_bytes => index,
            _ => {
                let scan = segment::scan(&view.file, StreamId::MIN, config.index_interval_bytes)
                    .map_err(|source| StorageError::io(&path, source))?;
                write_index_or_warn(&path, &scan.index, config);
                scan.index
            }
        };
        let index = Arc::new(index);
        index_cache.insert(key, Arc::clone(&index));
        Ok(index)
    }

    /// Seals the active segment: writes its index file and caches the index.
    /// A failed index write is logged; the index is rebuilt when next needed.
    fn seal(&self, active: Active, config: &StoreConfig, index_cache: &IndexCache) -> Sealed {
        let index = active.index.finish();
        let path = self.dir.join(segment::index_file_name(active.base));
        write_index_or_warn(&path, &index, config);
        let len_bytes = index.segment_len_bytes();
        let key = IndexKey {
            stream_no: self.no,
            segment_base: active.base,
        };
        index_cache.insert(key, Arc::new(index));
        Sealed {
            base: active.base,
            file: active.file,
            len_bytes,
        }
    }

    /// Creates an empty segment file named after `base`.
    fn create_segment(&self, base: StreamId, config: &StoreConfig) -> Result<Active, StorageError> {
        let path = self.dir.join(segment::log_file_name(base));
        let file = File::options()
            .read(true)
            .append(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| StorageError::io(&path, source))?;
        if config.fsync == FsyncPolicy::EveryAppend {
            sync_dir(&self.dir).map_err(|source| StorageError::io(&self.dir, source))?;
        }
        tracing::debug!(path = %path.display(), "segment created");
        Ok(Active {
            base,
            file: Arc::new(file),
            index: IndexBuilder::new(config.index_interval_bytes),
        })
    }
}

/// Opens a sealed segment and returns its index, rebuilding the index file
/// when it is missing, corrupt or does not match the segment.
fn open_sealed(
    dir: &Path,
    base: StreamId,
    after: StreamId,
    config: &StoreConfig,
) -> Result<(Arc<File>, SegmentIndex), StorageError> {
    let log_path = dir.join(segment::log_file_name(base));
    let idx_path = dir.join(segment::index_file_name(base));
    let file = File::open(&log_path).map_err(|source| StorageError::io(&log_path, source))?;
    let file_len = file
        .metadata()
        .map_err(|source| StorageError::io(&log_path, source))?
        .len();
    let loaded = segment::load_index_file(&idx_path).filter(|index| {
        index.segment_len_bytes() == file_len && index.record_count() > 0 && index.last_id() > after
    });
    let index = match loaded {
        Some(index) => index,
        None => {
            let scan = segment::scan(&file, after, config.index_interval_bytes)
                .map_err(|source| StorageError::io(&log_path, source))?;
            if scan.has_bad_tail() {
                tracing::warn!(path = %log_path.display(),
                    valid_bytes = scan.index.segment_len_bytes(),
                    file_bytes = scan.file_len_bytes,
                    "sealed segment has a corrupt tail; reading only its valid records");
            }
            tracing::info!(path = %idx_path.display(), "segment index rebuilt");
            write_index_or_warn(&idx_path, &scan.index, config);
            scan.index
        }
    };
    Ok((Arc::new(file), index))
}

/// Recovers the last segment: truncates it after its last valid record,
/// removes it if no record is valid, and rebuilds its index in memory.
fn recover_active(
    dir: &Path,
    base: StreamId,
    after: StreamId,
    config: &StoreConfig,
) -> Result<Option<Active>, StorageError> {
    let log_path = dir.join(segment::log_file_name(base));
    let idx_path = dir.join(segment::index_file_name(base));
    let io_err = |source| StorageError::io(&log_path, source);
    let file = File::options()
        .read(true)
        .append(true)
        .open(&log_path)
        .map_err(io_err)?;
    let scan = segment::scan(&file, after, config.index_interval_bytes).map_err(io_err)?;
    // The active segment's index lives in memory; a file left from an
    // earlier seal would be stale.
    let _ = fs::remove_file(&idx_path);
    if scan.has_bad_tail() {
        let valid_bytes = scan.index.segment_len_bytes();
        tracing::warn!(path = %log_path.display(), valid_bytes,
            cut_bytes = scan.file_len_bytes - valid_bytes,
            "torn or corrupt tail cut from the last segment");
        file.set_len(valid_bytes).map_err(io_err)?;
        file.sync_data().map_err(io_err)?;
    }
    if scan.index.record_count() == 0 {
        drop(file);
        fs::remove_file(&log_path).map_err(io_err)?;
        return Ok(None);
    }
    let index = IndexBuilder::resume(scan.index, config.index_interval_bytes);
    Ok(Some(Active {
        base,
        file: Arc::new(file),
        index,
    }))
}

fn write_index_or_warn(path: &Path, index: &SegmentIndex, config: &StoreConfig) {
    let sync = config.fsync == FsyncPolicy::EveryAppend;
    if let Err(error) = segment::write_index_file(path, index, sync) {
        tracing::warn!(path = %path.display(), %error,
            "cannot write segment index; it will be rebuilt when needed");
    }
}

/// Syncs a directory so that a file created in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}
