//! The store's public face: buckets, objects and multipart uploads on top of
//! the log writer, the index and the reader. Bodies stream through
//! `ObjectWriter` in bounded chunks; nothing holds a whole object.

use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use blockdev::BlockDevice;
use bytes::Bytes;
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};

use crate::cache::ChunkCache;
use crate::chunk::{content_hash, encode_chunk, Compression, RawChunk};
use crate::error::{Error, Result};
use crate::format::{
    BucketOp, ChunkRef, Location, MultipartAbort, MultipartComplete, MultipartCreate,
    MultipartPart, ObjectMeta, ObjectPut, Record, Superblock, Tombstone,
};
use crate::index::{
    BucketInfo, Catalog, Index, ListPage, ListQuery, LogPosition, ObjectEntry, Upload,
};
use crate::writer::{
    Committed, LogWriter, PendingRecord, PinGuard, Ticket, WriterStart, WriterStats,
};

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
    inline: Option<PendingRecord>,
    pins: PinGuard,
}

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

    async fn append_one(&self, record: Record) -> Result<Location> {
        let committed = self.append(vec![PendingRecord::new(record)]).await?;
        committed.into_single().map(|(location, _)| location)
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
        *sb = next;
        Ok(())
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

    // ------------------------------------------------------------ buckets

    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        if self.bucket_exists(bucket) {
            return Err(Error::BucketExists);
        }
        let op = BucketOp {
            bucket: bucket.to_string(),
            at_ms: now_ms(),
        };
        self.append_one(Record::BucketCreate(op)).await.map(|_| ())
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

    // ------------------------------------------------------------ objects

    /// A writer for one body; pass its result to `put_object` or `put_part`.
    pub fn object_writer(&self) -> ObjectWriter {
        ObjectWriter {
            store: self.clone(),
            pending: RawChunk::with_capacity(0),
            next_cut_attempt: 0,
            size: 0,
            chunks: Vec::new(),
            in_flight: VecDeque::new(),
            pins: PinGuard::empty(&self.inner.catalog),
        }
    }

    /// Hashes a chunk and submits its record, unless the same content is
    /// stored already (with dedup on).
    fn store_chunk(&self, chunk: RawChunk) -> Encoded {
        let hash = content_hash(chunk.bytes());
        if self.inner.config.dedup {
            let raw_len = chunk.bytes().len() as u32;
            if let Some((stored, pins)) = self.pin_existing(&hash, raw_len) {
                return Encoded::Stored(stored, pins);
            }
        }
        let record = encode_chunk(chunk, hash, self.inner.config.compression);
        Encoded::Submitted(hash, self.inner.writer.submit(vec![record]))
    }

    /// Pins the stored chunk with this content, if there is one, so that a
    /// new reference can be made to it.
    fn pin_existing(&self, hash: &[u8; 32], raw_len: u32) -> Option<(ChunkRef, PinGuard)> {
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
    fn pin_chunks(&self, chunks: &[ChunkRef]) -> Result<(Vec<ChunkRef>, PinGuard)> {
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

    /// Makes a written body visible under `key` (durable before it
    /// returns). `meta.etag` is the caller's (S3 wants the body's MD5).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut meta: ObjectMeta,
        data: WrittenData,
        if_absent: bool,
    ) -> Result<Arc<ObjectEntry>> {
        meta.size = data.size;
        meta.last_modified_ms = now_ms();
        let mut chunks = data.chunks;
        let mut pins = data.pins;
        let (inline, inline_flags) = match data.inline {
            Some(chunk) => {
                // A small body already stored whole is referenced, not stored again.
                let hash = match &chunk.record {
                    Record::Chunk { hash, .. } => Some(*hash),
                    _ => None,
                };
                let existing = hash
                    .filter(|_| self.inner.config.dedup)
                    .and_then(|h| self.pin_existing(&h, data.size as u32));
                match existing {
                    Some((chunk_ref, pinned)) => {
                        chunks = vec![chunk_ref];
                        pins.absorb(pinned);
                        (Vec::new(), 0)
                    }
                    None => (chunk.payload, chunk.flags),
                }
            }
            None => (Vec::new(), 0),
        };
        let entry = self
            .commit_object(ObjectPut {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta,
                chunks,
                if_absent,
                inline,
                inline_flags,
            })
            .await;
        drop(pins);
        entry
    }

    /// Stores inline data as a chunk record of its own (a multipart part
    /// cannot carry it) and returns the chunk references.
    async fn materialize(&self, data: WrittenData) -> Result<(Vec<ChunkRef>, PinGuard)> {
        let mut pins = data.pins;
        let Some(chunk) = data.inline else {
            return Ok((data.chunks, pins));
        };
        let hash = match &chunk.record {
            Record::Chunk { hash, .. } => *hash,
            _ => return Err(Error::Failed("inline data is not a chunk".into())),
        };
        if self.inner.config.dedup {
            if let Some((chunk_ref, pinned)) = self.pin_existing(&hash, data.size as u32) {
                pins.absorb(pinned);
                return Ok((vec![chunk_ref], pins));
            }
        }
        let (location, pinned) = self.append(vec![chunk]).await?.into_single()?;
        pins.absorb(pinned);
        Ok((
            vec![ChunkRef {
                location,
                raw_len: data.size as u32,
                hash,
            }],
            pins,
        ))
    }

    /// A new object that shares the source's chunks: no data is rewritten.
    pub async fn copy_object(
        &self,
        source: &ObjectEntry,
        bucket: &str,
        key: &str,
        mut meta: ObjectMeta,
    ) -> Result<Arc<ObjectEntry>> {
        meta.size = source.meta.size;
        meta.etag = source.meta.etag.clone();
        meta.last_modified_ms = now_ms();
        let (chunks, pins) = self.pin_chunks(&source.chunks)?;
        let entry = self
            .commit_object(ObjectPut {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta,
                chunks,
                if_absent: false,
                inline: Vec::new(),
                inline_flags: 0,
            })
            .await;
        drop(pins);
        entry
    }

    async fn commit_object(&self, put: ObjectPut) -> Result<Arc<ObjectEntry>> {
        let (bucket, key) = (put.bucket.clone(), put.key.clone());
        self.append_one(Record::ObjectPut(put)).await?;
        self.object(&bucket, &key)
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Arc<ObjectEntry>> {
        self.inner.catalog.read().index.object(bucket, key)
    }

    /// The object for a read of its data: a quarantined one is an error.
    pub fn readable_object(&self, bucket: &str, key: &str) -> Result<Arc<ObjectEntry>> {
        let entry = self.object(bucket, key)?;
        match &entry.meta.quarantined {
            Some(reason) => Err(Error::Quarantined(reason.clone())),
            None => Ok(entry),
        }
    }

    /// Marks a damaged object: it keeps its name and metadata (so it still
    /// lists and its owner can see what was lost) but drops its chunk
    /// references, and every read of it fails with the reason.
    pub async fn quarantine(&self, bucket: &str, key: &str, reason: &str) -> Result<()> {
        let entry = self.object(bucket, key)?;
        let mut meta = entry.meta.clone();
        meta.quarantined = Some(reason.to_string());
        self.commit_object(ObjectPut {
            bucket: bucket.to_string(),
            key: key.to_string(),
            meta,
            chunks: Vec::new(),
            if_absent: false,
            inline: Vec::new(),
            inline_flags: 0,
        })
        .await
        .map(|_| ())
    }

    /// Deletes `key`; deleting a missing key succeeds, as in S3.
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<()> {
        match self.object(bucket, key) {
            Ok(_) => {}
            Err(Error::NoSuchKey) => return Ok(()),
            Err(e) => return Err(e),
        }
        let tombstone = Tombstone {
            bucket: bucket.to_string(),
            key: key.to_string(),
        };
        self.append_one(Record::Tombstone(tombstone))
            .await
            .map(|_| ())
    }

    pub fn list_objects(&self, bucket: &str, query: &ListQuery<'_>) -> Result<ListPage> {
        self.inner.catalog.read().index.list(bucket, query)
    }

    /// The chunk's raw bytes if the cache holds them: no I/O, so callers on
    /// the async executor can skip a hop to the blocking pool.
    pub fn cached_chunk(&self, chunk: &ChunkRef) -> Option<Bytes> {
        self.inner.cache.get(chunk)
    }

    /// Reads one chunk's raw bytes, from the cache or the device (blocking
    /// I/O: call it off the async executor). A chunk that compaction moved
    /// after the caller looked its object up is found again by its hash.
    pub fn read_chunk(&self, chunk: &ChunkRef) -> Result<Bytes> {
        if let Some(hit) = self.inner.cache.get(chunk) {
            return Ok(hit);
        }
        let raw = match self.read_chunk_uncached(chunk) {
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
                        self.read_chunk_uncached(&moved)?
                    }
                    _ => return Err(e),
                }
            }
        };
        self.inner.cache.insert(chunk, raw.clone());
        Ok(raw)
    }

    /// Reads one chunk from the device, bypassing the cache (fsck, scrub).
    pub fn read_chunk_uncached(&self, chunk: &ChunkRef) -> Result<Bytes> {
        crate::reader::read_chunk(self.inner.device.as_ref(), &self.inner.geometry, chunk)
    }

    // --------------------------------------------------------- multipart

    pub async fn create_upload(&self, bucket: &str, key: &str, meta: ObjectMeta) -> Result<String> {
        if !self.bucket_exists(bucket) {
            return Err(Error::NoSuchBucket);
        }
        let upload_id = uuid::Uuid::new_v4().simple().to_string();
        let create = MultipartCreate {
            upload_id: upload_id.clone(),
            bucket: bucket.to_string(),
            key: key.to_string(),
            meta,
            initiated_ms: now_ms(),
        };
        self.append_one(Record::MultipartCreate(create)).await?;
        Ok(upload_id)
    }

    pub fn upload(&self, upload_id: &str) -> Result<Arc<Upload>> {
        self.inner.catalog.read().index.upload(upload_id)
    }

    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<Arc<Upload>>> {
        let catalog = self.inner.catalog.read();
        if !catalog.index.bucket_exists(bucket) {
            return Err(Error::NoSuchBucket);
        }
        Ok(catalog.index.uploads(bucket, prefix))
    }

    /// Records a part; `etag` is the part body's MD5 in hex.
    pub async fn put_part(
        &self,
        upload_id: &str,
        part_number: u32,
        data: WrittenData,
        etag: String,
        checksums: Vec<(String, String)>,
    ) -> Result<Arc<MultipartPart>> {
        let size = data.size;
        let (chunks, pins) = self.materialize(data).await?;
        let part = MultipartPart {
            upload_id: upload_id.to_string(),
            part_number,
            size,
            etag,
            last_modified_ms: now_ms(),
            checksums,
            chunks,
        };
        self.append_one(Record::MultipartPart(part)).await?;
        drop(pins);
        self.upload(upload_id)?
            .parts
            .get(&part_number)
            .cloned()
            .ok_or(Error::NoSuchUpload)
    }

    /// Joins the named parts into the object, linking their chunks (no copy).
    /// `parts` are (part number, ETag without quotes) as the client sent them.
    pub async fn complete_upload(
        &self,
        upload_id: &str,
        parts: &[(u32, String)],
        if_absent: bool,
    ) -> Result<Arc<ObjectEntry>> {
        let upload = self.upload(upload_id)?;
        if parts.is_empty() {
            return Err(Error::InvalidPart("no parts given".into()));
        }
        let mut md5s = Vec::with_capacity(parts.len() * 16);
        let mut chunks = Vec::new();
        let mut size: u64 = 0;
        let mut previous = 0;
        for (i, (number, etag)) in parts.iter().enumerate() {
            if *number <= previous {
                return Err(Error::InvalidPartOrder);
            }
            previous = *number;
            let part = upload
                .parts
                .get(number)
                .filter(|p| p.etag == *etag)
                .ok_or_else(|| Error::InvalidPart(format!("part {number} with ETag {etag}")))?;
            if i + 1 < parts.len() && part.size < self.inner.config.min_part_size_bytes {
                return Err(Error::EntityTooSmall(*number));
            }
            md5s.extend(hex::decode(&part.etag).map_err(|_| Error::InvalidPart(etag.clone()))?);
            chunks.extend_from_slice(&part.chunks);
            size = size
                .checked_add(part.size)
                .ok_or_else(|| Error::TooLarge("the parts' total size".into()))?;
        }
        let (chunks, pins) = self.pin_chunks(&chunks)?;
        let mut meta = upload.create.meta.clone();
        meta.size = size;
        meta.etag = format!("{}-{}", hex::encode(Md5::digest(&md5s)), parts.len());
        meta.last_modified_ms = now_ms();
        let object = ObjectPut {
            bucket: upload.create.bucket.clone(),
            key: upload.create.key.clone(),
            meta,
            chunks,
            if_absent,
            inline: Vec::new(),
            inline_flags: 0,
        };
        let complete = MultipartComplete {
            upload_id: upload_id.to_string(),
            object,
        };
        self.append_one(Record::MultipartComplete(complete)).await?;
        drop(pins);
        self.object(&upload.create.bucket, &upload.create.key)
    }

    pub async fn abort_upload(&self, upload_id: &str) -> Result<()> {
        self.upload(upload_id)?;
        let abort = MultipartAbort {
            upload_id: upload_id.to_string(),
        };
        self.append_one(Record::MultipartAbort(abort))
            .await
            .map(|_| ())
    }
}

/// Streams one body into chunk records, cut at content-defined boundaries.
/// A chunk already stored is referenced instead of written. Up to
/// `write_window_chunks` chunks are in flight at once; `write` waits for the
/// oldest when the window is full.
pub struct ObjectWriter {
    store: Store,
    /// Bytes received and not yet cut into chunks, held where the next
    /// chunk's record will hold them: a byte is copied once on its way in,
    /// and once more only if it arrived past a content-defined cut.
    pending: RawChunk,
    /// Pending bytes at which to look for the next cut again.
    next_cut_attempt: usize,
    size: u64,
    chunks: Vec<ChunkRef>,
    in_flight: VecDeque<(usize, Encoding)>,
    pins: PinGuard,
}

/// A chunk found already stored, or handed to the writer.
enum Encoded {
    Stored(ChunkRef, PinGuard),
    Submitted([u8; 32], Ticket),
}

enum Encoding {
    Done(Encoded),
    /// On an encoder thread.
    Offloaded(tokio::task::JoinHandle<Encoded>),
}

/// FastCDC's bounds around the average chunk size: a quarter of it at
/// least, four times at most, and never more than one log write can hold or
/// half a segment.
fn chunk_bounds(average: usize, geometry: &Superblock) -> (usize, usize, usize) {
    let cap = (crate::writer::MAX_BATCH_BYTES - crate::format::RECORD_HEADER_BYTES - 64)
        .min((geometry.segment_size_bytes / 2) as usize);
    let average = average.clamp(1024, cap / 4);
    (average / 4, average, (average * 4).min(cap))
}

impl ObjectWriter {
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let bounds = self.bounds();
        self.size += data.len() as u64;
        while !data.is_empty() {
            // A fixed cut is known before its bytes arrive: the chunk is
            // filled exactly to it, and nothing is copied past it. A
            // content-defined cut is looked for after each average chunk's
            // worth, so that what is copied again past a cut stays about
            // one chunk however large the write.
            let pending = self.pending.bytes().len();
            let take = match self.fixed_cut(bounds) {
                Some(cut) if cut > pending => cut - pending,
                _ => bounds.1,
            };
            let take = take.min(data.len());
            let (now, later) = data.split_at(take);
            self.pending.extend(now);
            data = later;
            while let Some(cut) = self.final_cut(bounds) {
                self.flush_chunk(cut, true, bounds).await?;
            }
        }
        Ok(())
    }

    fn bounds(&self) -> (usize, usize, usize) {
        chunk_bounds(
            self.store.inner.config.chunk_size_bytes,
            &self.store.inner.geometry,
        )
    }

    /// Where the next chunk ends, once that is certain with more of the body
    /// to come. A cut point depends only on the bytes before it, so one
    /// found before the end of what is pending is final, and so is `max`.
    /// Looking again only once the pending bytes have doubled bounds the
    /// rescanning to about one more pass over the data. The first cut waits
    /// until the body can no longer go inline (or reaches `max`, as small
    /// test chunks do): which bodies go inline does not depend on the cuts.
    fn final_cut(&mut self, (min, avg, max): (usize, usize, usize)) -> Option<usize> {
        let len = self.pending.bytes().len();
        if self.chunks.is_empty() && len < max.min(INLINE_MAX_BYTES + 1) {
            return None;
        }
        let fixed = self.fixed_cut((min, avg, max));
        if fixed.is_none() && len < max && len < self.next_cut_attempt.max(min) {
            return None;
        }
        let cut = self.cut_point(self.pending.bytes(), (min, avg, max));
        if cut == len && len < max && Some(cut) != fixed {
            self.next_cut_attempt = 2 * len;
            return None;
        }
        self.next_cut_attempt = min;
        Some(cut)
    }

    /// Without dedup, chunks are cut at a fixed size: nothing is gained by
    /// finding content boundaries. It is a little under the average so that
    /// records, with their headers and block padding, pack whole into a
    /// segment: at exactly 1 MiB only 15 fit in 16 MiB after the segment
    /// header.
    fn fixed_cut(&self, (_, avg, _): (usize, usize, usize)) -> Option<usize> {
        (!self.store.inner.config.dedup).then_some(avg - avg / 64)
    }

    /// Where the next chunk of `pending` ends if the body ended there:
    /// content-defined with dedup (an insertion then shifts only the chunks
    /// around it), fixed without.
    fn cut_point(&self, pending: &[u8], (min, avg, max): (usize, usize, usize)) -> usize {
        if let Some(fixed) = self.fixed_cut((min, avg, max)) {
            return fixed.min(pending.len());
        }
        fastcdc::v2020::FastCDC::new(pending, min as u32, avg as u32, max as u32)
            .next()
            .map_or(max.min(pending.len()), |c| c.length)
    }

    /// Encodes a chunk and puts it in flight. While more of the body is to
    /// come, an encoder thread does it and the upload goes on: one upload
    /// then uses more than one core, where hashing on its own task bounded
    /// it to one. The last chunks are encoded here: nothing is left to
    /// overlap with them but the hand-off's latency.
    async fn flush_chunk(
        &mut self,
        cut: usize,
        more_to_come: bool,
        bounds: (usize, usize, usize),
    ) -> Result<()> {
        // More to come: room for a chunk, so that its bytes are not moved
        // as it fills.
        let next_capacity = match more_to_come {
            true => self.fixed_cut(bounds).unwrap_or(2 * bounds.1),
            false => 0,
        };
        let rest = self.pending.split_off(cut, next_capacity);
        let chunk = std::mem::replace(&mut self.pending, rest);
        let slot = self.chunks.len();
        self.chunks.push(ChunkRef {
            location: Location {
                segment: u32::MAX,
                offset: 0,
                len: 0,
            },
            raw_len: cut as u32,
            hash: [0; 32],
        });
        let encoding = if more_to_come {
            let permit = self
                .store
                .inner
                .encoders
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::ShuttingDown)?;
            let store = self.store.clone();
            Encoding::Offloaded(tokio::task::spawn_blocking(move || {
                let _permit = permit;
                store.store_chunk(chunk)
            }))
        } else {
            Encoding::Done(self.store.store_chunk(chunk))
        };
        self.in_flight.push_back((slot, encoding));
        while self.in_flight.len() > self.store.inner.config.write_window_chunks {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<()> {
        let Some((slot, encoding)) = self.in_flight.pop_front() else {
            return Ok(());
        };
        let encoded = match encoding {
            Encoding::Done(encoded) => encoded,
            Encoding::Offloaded(handle) => handle
                .await
                .map_err(|e| Error::Failed(format!("chunk encoder: {e}")))?,
        };
        match encoded {
            Encoded::Stored(chunk, pins) => {
                self.chunks[slot] = chunk;
                self.pins.absorb(pins);
            }
            Encoded::Submitted(hash, ticket) => {
                let (location, pinned) = ticket.wait().await?.into_single()?;
                self.pins.absorb(pinned);
                self.chunks[slot].location = location;
                self.chunks[slot].hash = hash;
            }
        }
        Ok(())
    }

    /// Writes what is buffered and waits for every chunk to be durable. A
    /// small body is not written yet: it goes inline into the object record.
    pub async fn finish(mut self) -> Result<WrittenData> {
        let bounds = self.bounds();
        let len = self.pending.bytes().len();
        if self.chunks.is_empty() && len <= INLINE_MAX_BYTES && len > 0 {
            let hash = content_hash(self.pending.bytes());
            let chunk = encode_chunk(self.pending, hash, self.store.inner.config.compression);
            return Ok(WrittenData {
                size: self.size,
                chunks: Vec::new(),
                inline: Some(chunk),
                pins: self.pins,
            });
        }
        while !self.pending.bytes().is_empty() {
            let cut = self.cut_point(self.pending.bytes(), bounds);
            self.flush_chunk(cut, false, bounds).await?;
        }
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(WrittenData {
            size: self.size,
            chunks: self.chunks,
            inline: None,
            pins: self.pins,
        })
    }
}
