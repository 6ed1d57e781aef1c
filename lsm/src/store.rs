//! The store's public face: buckets, lookups and reads on top of the log
//! writer, the index and the reader. Writes of versions are in
//! `object_ops.rs`, multipart uploads in `multipart.rs`; bodies stream
//! through `ObjectWriter` (`object_writer.rs`) in bounded chunks, so
//! nothing holds a whole object.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use blockdev::BlockDevice;
use bytes::Bytes;
use parking_lot::{Mutex, RwLock};

use crate::cache::ChunkCache;
use crate::chunk::Compression;
use crate::cipher::DataKey;
use crate::error::{Error, Result};
use crate::format::{
    BucketConfigChange, BucketCreate, BucketOp, BucketSetting, ChunkRef, IamChange, IamUpdate,
    Location, ObjectEncryption, Record, Superblock, VersionRef, FORMAT_VERSION,
};
use crate::iam::IamState;
use crate::index::{BucketConfig, BucketInfo, Catalog, Index, LogPosition, ObjectEntry};
use crate::listing::{ListPage, ListQuery, VersionPage, VersionQuery};
use crate::writer::{Committed, LogWriter, PendingRecord, PinGuard, WriterStart, WriterStats};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bodies are cut into chunks of about this size, at content-defined
    /// boundaries (FastCDC: a quarter of it at least, four times at most),
    /// so an insertion shifts only the chunks around it.
    pub chunk_size_bytes: usize,
    pub compression: Compression,
    /// Store a chunk once however many objects hold it.
    pub dedup: bool,
    /// Chunks of one body in flight to the writer before the body waits:
    /// bounds memory per upload and lets the writer batch large writes.
    pub write_window_chunks: usize,
    /// Every multipart part but the last must be at least this large.
    pub min_part_size_bytes: u64,
    /// DRAM for decoded chunks in front of the device (0 disables it).
    pub cache_bytes: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            chunk_size_bytes: 1 << 20,
            compression: Compression::default(),
            dedup: true,
            write_window_chunks: 8,
            min_part_size_bytes: 5 << 20,
            cache_bytes: 512 << 20,
        }
    }
}

/// What the newest committed checkpoint covers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checkpointed {
    /// Segments opened before this sequence are never replayed again.
    pub covered_sequence: u64,
    /// The applied lsn once it was committed (its own records included).
    pub applied_lsn: u64,
}

/// Space and content figures for metrics and tools.
#[derive(Debug, Clone)]
pub struct StoreStats {
    pub objects: usize,
    pub logical_bytes: u64,
    pub device_bytes: u64,
    pub segment_size_bytes: u64,
    pub segments_total: u32,
    pub segments_free: usize,
    pub device_allocated_bytes: Option<u64>,
    pub writer: WriterStats,
}

#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    device: Arc<dyn BlockDevice>,
    /// The device's geometry, fixed at format time: reads use it without
    /// taking the lock that guards the checkpoint pointer.
    geometry: Superblock,
    superblock: Mutex<Superblock>,
    catalog: Arc<RwLock<Catalog>>,
    writer: LogWriter,
    /// One compaction round at a time.
    compaction: tokio::sync::Mutex<()>,
    compaction_paused: AtomicBool,
    /// One checkpoint at a time, and what the newest one covers.
    checkpointed: tokio::sync::Mutex<Checkpointed>,
    cache: ChunkCache,
    /// Chunk encoders (hash, dedup lookup, compression) running at once,
    /// across all uploads: one per core, so that many uploads queue for
    /// them instead of each taking a thread.
    encoders: Arc<tokio::sync::Semaphore>,
    config: StoreConfig,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Bodies up to this size are written inside their object record: one
/// durable write per PUT and one read per GET.
pub const INLINE_MAX_BYTES: usize = 128 << 10;

/// What an `ObjectWriter` produced: the stored chunks, or for a small body
/// its encoded chunk payload to be stored inline with the object record.
/// The chunks stay pinned until it is dropped, after the manifest commits.
pub struct WrittenData {
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    pub(crate) inline: Option<PendingRecord>,
    pub(crate) pins: PinGuard,
}

/// Keys walked per hold of the catalog's read lock by `visit_keys`: about
/// a millisecond's work.
const KEYS_PER_LOCK: usize = 4096;

impl Store {
    /// Starts a store on recovered state (see the recovery crate).
    pub fn start(
        device: Arc<dyn BlockDevice>,
        superblock: Superblock,
        catalog: Catalog,
        start: WriterStart,
        checkpoint_tail: Option<LogPosition>,
        config: StoreConfig,
    ) -> Store {
        // A recovered store is covered up to its checkpoint's tail.
        let covered_sequence = checkpoint_tail.map_or(0, |t| t.sequence);
        let applied_lsn = if checkpoint_tail.is_some() {
            catalog.index.applied_lsn
        } else {
            0
        };
        let catalog = Arc::new(RwLock::new(catalog));
        let writer = LogWriter::start(device.clone(), superblock.clone(), catalog.clone(), start);
        Store {
            inner: Arc::new(Inner {
                device,
                geometry: superblock.clone(),
                superblock: Mutex::new(superblock),
                catalog,
                writer,
                compaction: tokio::sync::Mutex::new(()),
                compaction_paused: AtomicBool::new(false),
                checkpointed: tokio::sync::Mutex::new(Checkpointed {
                    covered_sequence,
                    applied_lsn,
                }),
                cache: ChunkCache::new(config.cache_bytes),
                encoders: Arc::new(tokio::sync::Semaphore::new(
                    std::thread::available_parallelism().map_or(2, |n| n.get()),
                )),
                config,
            }),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// The device's fixed geometry (segment size and count).
    pub fn geometry(&self) -> &Superblock {
        &self.inner.geometry
    }

    pub(crate) fn catalog(&self) -> &Arc<RwLock<Catalog>> {
        &self.inner.catalog
    }

    pub(crate) fn writer(&self) -> &LogWriter {
        &self.inner.writer
    }

    pub(crate) fn compaction_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.inner.compaction
    }

    pub(crate) fn compaction_flag(&self) -> &AtomicBool {
        &self.inner.compaction_paused
    }

    pub(crate) fn checkpoint_lock(&self) -> &tokio::sync::Mutex<Checkpointed> {
        &self.inner.checkpointed
    }

    pub(crate) fn encoders(&self) -> &Arc<tokio::sync::Semaphore> {
        &self.inner.encoders
    }

    /// Reference counts and liveness as kept, and as a recount from the
    /// manifests finds them: fsck and tests compare the two.
    pub fn space_recount(&self) -> Vec<String> {
        let catalog = self.inner.catalog.read();
        catalog
            .space
            .differences(&crate::space::SpaceMap::recount(&catalog.index))
    }

    pub fn device(&self) -> &Arc<dyn BlockDevice> {
        &self.inner.device
    }

    pub fn superblock(&self) -> Superblock {
        self.inner.superblock.lock().clone()
    }

    /// Stops the writer after what is queued; later writes fail.
    pub fn shutdown(&self) {
        self.inner.writer.shutdown();
    }

    /// Appends records and waits until they are durable and applied.
    pub async fn append(&self, records: Vec<PendingRecord>) -> Result<Committed> {
        self.inner.writer.submit(records).wait().await
    }

    pub(crate) async fn append_one(&self, record: Record) -> Result<Location> {
        let committed = self.append(vec![PendingRecord::new(record)]).await?;
        committed.into_single().map(|(location, _)| location)
    }

    /// Appends one record and returns the version it made, removed or
    /// changed, if any.
    pub(crate) async fn append_version(&self, record: Record) -> Result<Option<Arc<ObjectEntry>>> {
        let mut committed = self.append(vec![PendingRecord::new(record)]).await?;
        committed.outcome?;
        Ok(committed.versions.pop())
    }

    /// The lsn of the newest applied record: tells whether a checkpoint is due.
    pub fn applied_lsn(&self) -> u64 {
        self.inner.catalog.read().index.applied_lsn
    }

    /// A consistent copy of the index (cheap: entries are shared).
    pub fn snapshot(&self) -> Index {
        self.inner.catalog.read().index.clone()
    }

    /// Points the superblock at a new checkpoint (bumps the generation, so the
    /// other slot is written) and syncs.
    pub(crate) fn commit_checkpoint(&self, last_part: Location) -> Result<()> {
        let mut sb = self.inner.superblock.lock();
        let mut next = sb.clone();
        next.generation += 1;
        next.checkpoint = Some(last_part);
        crate::superblock::write_superblock(self.inner.device.as_ref(), &next)?;
        next.format_version = FORMAT_VERSION;
        *sb = next;
        Ok(())
    }

    /// Moves a device written by an older release to this format: a
    /// checkpoint, whose superblock is written in the current version.
    /// What the older release wrote stays readable meanwhile (see
    /// `format::v5`). Returns the version it was in, if it moved.
    pub async fn upgrade_format(&self) -> Result<Option<u32>> {
        let found = self.superblock().format_version;
        if found == FORMAT_VERSION {
            return Ok(None);
        }
        self.checkpoint().await?;
        tracing::info!(from = found, to = FORMAT_VERSION, "device format upgraded");
        Ok(Some(found))
    }

    pub fn stats(&self) -> StoreStats {
        let (objects, logical_bytes) = {
            let catalog = self.inner.catalog.read();
            (catalog.index.object_count(), catalog.index.logical_bytes())
        };
        let sb = self.superblock();
        StoreStats {
            objects,
            logical_bytes,
            device_bytes: self.inner.device.size_bytes(),
            segment_size_bytes: sb.segment_size_bytes,
            segments_total: sb.segment_count,
            segments_free: self.inner.writer.stats().free_segments,
            device_allocated_bytes: self.inner.device.allocated_bytes(),
            writer: self.inner.writer.stats(),
        }
    }

    /// What one bucket holds (see `BucketUsage::add`). Blocking: call it
    /// off the async executor.
    pub fn bucket_usage(&self, bucket: &str) -> Result<crate::index::BucketUsage> {
        let mut usage = crate::index::BucketUsage::default();
        let mut seen = std::collections::HashSet::new();
        self.visit_keys(Some(bucket), |_, _, versions| {
            usage.add(versions, &mut seen)
        })?;
        Ok(usage)
    }

    /// Calls `visit` on every key (of `only`, if given), taking the
    /// catalog's read lock for a batch of keys at a time: held over a whole
    /// large index, it kept the writer from applying anything, and every
    /// PUT's answer waited. A key written meanwhile may be missed or seen
    /// in its new state.
    pub(crate) fn visit_keys(
        &self,
        only: Option<&str>,
        mut visit: impl FnMut(&str, &str, &crate::versions::Versions),
    ) -> Result<()> {
        let mut after = None;
        while let Some(next) = self.inner.catalog.read().index.visit_keys(
            only,
            after.as_ref(),
            KEYS_PER_LOCK,
            &mut visit,
        )? {
            after = Some(next);
        }
        Ok(())
    }

    // ------------------------------------------------------------ buckets

    pub async fn create_bucket(&self, bucket: &str, object_lock: bool) -> Result<()> {
        let settings = match object_lock {
            true => vec![BucketSetting::ObjectLock(Default::default())],
            false => Vec::new(),
        };
        self.create_bucket_with(bucket, settings).await
    }

    /// A bucket born with these settings (owner, object lock, ACL...), in
    /// one record.
    pub async fn create_bucket_with(
        &self,
        bucket: &str,
        settings: Vec<BucketSetting>,
    ) -> Result<()> {
        if self.bucket_exists(bucket) {
            return Err(Error::BucketExists);
        }
        let create = BucketCreate {
            bucket: bucket.to_string(),
            at_ms: now_ms(),
            settings,
        };
        self.append_one(Record::BucketCreate(create))
            .await
            .map(|_| ())
    }

    pub async fn delete_bucket(&self, bucket: &str) -> Result<()> {
        if !self.bucket_exists(bucket) {
            return Err(Error::NoSuchBucket);
        }
        let op = BucketOp {
            bucket: bucket.to_string(),
            at_ms: now_ms(),
        };
        self.append_one(Record::BucketDelete(op)).await.map(|_| ())
    }

    pub fn bucket_exists(&self, bucket: &str) -> bool {
        self.inner.catalog.read().index.bucket_exists(bucket)
    }

    pub fn list_buckets(&self) -> Vec<BucketInfo> {
        self.inner.catalog.read().index.buckets()
    }

    pub fn bucket_config(&self, bucket: &str) -> Result<BucketConfig> {
        self.inner.catalog.read().index.bucket_config(bucket)
    }

    /// Changes one bucket setting (durable before it returns); apply
    /// refuses what the bucket's state forbids (InvalidBucketState).
    pub async fn configure_bucket(&self, bucket: &str, setting: BucketSetting) -> Result<()> {
        let change = BucketConfigChange {
            bucket: bucket.to_string(),
            at_ms: now_ms(),
            setting,
        };
        self.append_one(Record::BucketConfig(change))
            .await
            .map(|_| ())
    }

    // ------------------------------------------------------------ accounts

    /// One change to accounts, users, keys or policies, durable before it
    /// returns.
    pub async fn change_iam(&self, change: IamChange) -> Result<()> {
        let update = IamUpdate {
            at_ms: now_ms(),
            change,
        };
        self.append_one(Record::Iam(update)).await.map(|_| ())
    }

    /// Reads accounts, users, keys and policies under the index's lock.
    pub fn with_iam<R>(&self, read: impl FnOnce(&IamState) -> R) -> R {
        read(&self.inner.catalog.read().index.iam)
    }

    // ------------------------------------------------------------ objects

    /// Pins the stored chunk with this content, if there is one, so that a
    /// new reference can be made to it.
    pub(crate) fn pin_existing(
        &self,
        hash: &[u8; 32],
        raw_len: u32,
    ) -> Option<(ChunkRef, PinGuard)> {
        let mut catalog = self.inner.catalog.write();
        let location = catalog.space.find(hash)?;
        let pins = PinGuard::pin(&self.inner.catalog, &mut catalog, vec![location]);
        Some((
            ChunkRef {
                location,
                raw_len,
                hash: *hash,
            },
            pins,
        ))
    }

    /// Pins the chunks a new manifest will reference (a copy's source, an
    /// upload's parts), finding any that compaction moved meanwhile by
    /// their hash. Fails with NoSuchKey when one is gone.
    pub(crate) fn pin_chunks(&self, chunks: &[ChunkRef]) -> Result<(Vec<ChunkRef>, PinGuard)> {
        let mut catalog = self.inner.catalog.write();
        let mut current = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let location = if catalog.space.holds(&chunk.location, &chunk.hash) {
                chunk.location
            } else {
                catalog.space.find(&chunk.hash).ok_or(Error::NoSuchKey)?
            };
            current.push(ChunkRef { location, ..*chunk });
        }
        let locations = current.iter().map(|c| c.location).collect();
        let pins = PinGuard::pin(&self.inner.catalog, &mut catalog, locations);
        Ok((current, pins))
    }

    /// The key's current object (NoSuchKey, or DeleteMarker when its
    /// newest version is a delete marker).
    pub fn object(&self, bucket: &str, key: &str) -> Result<Arc<ObjectEntry>> {
        self.inner.catalog.read().index.object(bucket, key)
    }

    /// One version as it is, a delete marker included.
    pub fn version(
        &self,
        bucket: &str,
        key: &str,
        version: VersionRef,
    ) -> Result<Arc<ObjectEntry>> {
        self.inner
            .catalog
            .read()
            .index
            .version(bucket, key, version)
    }

    /// (bucket, key, lsn, wrapped data key) of every encrypted version.
    pub fn encrypted_versions(&self) -> Vec<(String, String, u64, ObjectEncryption)> {
        self.inner
            .catalog
            .read()
            .index
            .all_versions()
            .filter_map(|(bucket, key, entry)| {
                let wrapped = entry.meta.encryption()?.clone();
                Some((bucket.to_string(), key.to_string(), entry.lsn, wrapped))
            })
            .collect()
    }

    /// Every version of a key, newest first.
    pub fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Arc<ObjectEntry>>> {
        self.inner.catalog.read().index.versions(bucket, key)
    }

    /// The version for a read of its data: a delete marker is
    /// DeleteMarker (the caller answers 404 or 405), a quarantined one an
    /// error.
    pub fn readable_version(
        &self,
        bucket: &str,
        key: &str,
        version: VersionRef,
    ) -> Result<Arc<ObjectEntry>> {
        let entry = self.version(bucket, key, version)?;
        if entry.delete_marker {
            return Err(Error::DeleteMarker {
                lsn: entry.lsn,
                null_version: entry.null_version,
            });
        }
        match &entry.meta.quarantined {
            Some(reason) => Err(Error::Quarantined(reason.clone())),
            None => Ok(entry),
        }
    }

    pub fn list_objects(&self, bucket: &str, query: &ListQuery<'_>) -> Result<ListPage> {
        self.inner.catalog.read().index.list(bucket, query)
    }

    pub fn list_versions(&self, bucket: &str, query: &VersionQuery<'_>) -> Result<VersionPage> {
        self.inner.catalog.read().index.list_versions(bucket, query)
    }

    /// The chunk's raw bytes if the cache holds them: no I/O, so callers on
    /// the async executor can skip a hop to the blocking pool.
    pub fn cached_chunk(&self, chunk: &ChunkRef) -> Option<Bytes> {
        self.inner.cache.get(chunk)
    }

    /// Reads one chunk's raw bytes, from the cache or the device (blocking
    /// I/O: call it off the async executor). A chunk that compaction moved
    /// after the caller looked its object up is found again by its hash.
    /// An encrypted object's chunks need its data key; the cache holds
    /// them decrypted, so a caller checks the key it was given before it
    /// reads (as S3 checks SSE-C keys).
    pub fn read_chunk(&self, chunk: &ChunkRef, key: Option<&DataKey>) -> Result<Bytes> {
        if let Some(hit) = self.inner.cache.get(chunk) {
            return Ok(hit);
        }
        let raw = match self.read_chunk_uncached(chunk, key) {
            Ok(raw) => raw,
            Err(e) => {
                let moved_to = {
                    let catalog = self.inner.catalog.read();
                    let still_here = catalog.space.holds(&chunk.location, &chunk.hash);
                    catalog.space.find(&chunk.hash).filter(|_| !still_here)
                };
                match moved_to {
                    Some(location) if location != chunk.location => {
                        let moved = ChunkRef { location, ..*chunk };
                        self.read_chunk_uncached(&moved, key)?
                    }
                    _ => return Err(e),
                }
            }
        };
        self.inner.cache.insert(chunk, raw.clone());
        Ok(raw)
    }

    /// Reads one chunk from the device, bypassing the cache (fsck, scrub).
    pub fn read_chunk_uncached(&self, chunk: &ChunkRef, key: Option<&DataKey>) -> Result<Bytes> {
        crate::reader::read_chunk(self.inner.device.as_ref(), &self.inner.geometry, chunk, key)
    }
}
