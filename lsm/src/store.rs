//! The store's public face: buckets, objects and multipart uploads on top of
//! the log writer, the index and the reader. Bodies stream through
//! `ObjectWriter` in bounded chunks; nothing holds a whole object.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use blockdev::BlockDevice;
use bytes::Bytes;
use md5::{Digest, Md5};
use parking_lot::{Mutex, RwLock};

use crate::cache::ChunkCache;
use crate::chunk::{encode_chunk, Compression};
use crate::error::{Error, Result};
use crate::format::{
    BucketOp, ChunkRef, Location, MultipartAbort, MultipartComplete, MultipartCreate,
    MultipartPart, ObjectMeta, ObjectPut, Record, Superblock, Tombstone,
};
use crate::index::{BucketInfo, Index, ListPage, ListQuery, ObjectEntry, Upload};
use crate::writer::{Committed, LogWriter, PendingRecord, Ticket, WriterStart, WriterStats};

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Bodies are cut into chunks of this size.
    pub chunk_size_bytes: usize,
    pub compression: Compression,
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
            write_window_chunks: 8,
            min_part_size_bytes: 5 << 20,
            cache_bytes: 512 << 20,
        }
    }
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
    index: Arc<RwLock<Index>>,
    writer: LogWriter,
    cache: ChunkCache,
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
pub struct WrittenData {
    pub size: u64,
    pub chunks: Vec<ChunkRef>,
    inline: Option<PendingRecord>,
}

impl Store {
    /// Starts a store on recovered state (see the recovery crate).
    pub fn start(
        device: Arc<dyn BlockDevice>,
        superblock: Superblock,
        index: Index,
        start: WriterStart,
        config: StoreConfig,
    ) -> Store {
        let index = Arc::new(RwLock::new(index));
        let writer = LogWriter::start(device.clone(), superblock.clone(), index.clone(), start);
        Store {
            inner: Arc::new(Inner {
                device,
                geometry: superblock.clone(),
                superblock: Mutex::new(superblock),
                index,
                writer,
                cache: ChunkCache::new(config.cache_bytes),
                config,
            }),
        }
    }

    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
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
        committed.outcome?;
        committed
            .locations
            .first()
            .copied()
            .ok_or_else(|| Error::Failed("writer returned no location".into()))
    }

    /// The lsn of the newest applied record: tells whether a checkpoint is due.
    pub fn applied_lsn(&self) -> u64 {
        self.inner.index.read().applied_lsn
    }

    /// A consistent copy of the index (cheap: entries are shared).
    pub fn snapshot(&self) -> Index {
        self.inner.index.read().clone()
    }

    /// Points the superblock at a new checkpoint (bumps the generation, so the
    /// other slot is written) and syncs.
    pub fn commit_checkpoint(&self, last_part: Location) -> Result<()> {
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
            let index = self.inner.index.read();
            (index.object_count(), index.logical_bytes())
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
        self.inner.index.read().bucket_exists(bucket)
    }

    pub fn list_buckets(&self) -> Vec<BucketInfo> {
        self.inner.index.read().buckets()
    }

    // ------------------------------------------------------------ objects

    /// A writer for one body; pass its result to `put_object` or `put_part`.
    pub fn object_writer(&self) -> ObjectWriter {
        ObjectWriter {
            store: self.clone(),
            buffer: Vec::new(),
            size: 0,
            chunks: Vec::new(),
            in_flight: VecDeque::new(),
        }
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
        let (inline, inline_flags) = match data.inline {
            Some(chunk) => (chunk.payload, chunk.flags),
            None => (Vec::new(), 0),
        };
        self.commit_object(ObjectPut {
            bucket: bucket.to_string(),
            key: key.to_string(),
            meta,
            chunks: data.chunks,
            if_absent,
            inline,
            inline_flags,
        })
        .await
    }

    /// Stores inline data as a chunk record of its own (a multipart part
    /// cannot carry it) and returns the chunk references.
    async fn materialize(&self, data: WrittenData) -> Result<Vec<ChunkRef>> {
        let Some(chunk) = data.inline else {
            return Ok(data.chunks);
        };
        let location = {
            let committed = self.append(vec![chunk]).await?;
            committed.outcome?;
            committed
                .locations
                .first()
                .copied()
                .ok_or_else(|| Error::Failed("writer returned no location".into()))?
        };
        Ok(vec![ChunkRef {
            location,
            raw_len: data.size as u32,
        }])
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
        self.commit_object(ObjectPut {
            bucket: bucket.to_string(),
            key: key.to_string(),
            meta,
            chunks: source.chunks.clone(),
            if_absent: false,
            inline: Vec::new(),
            inline_flags: 0,
        })
        .await
    }

    async fn commit_object(&self, put: ObjectPut) -> Result<Arc<ObjectEntry>> {
        let (bucket, key) = (put.bucket.clone(), put.key.clone());
        self.append_one(Record::ObjectPut(put)).await?;
        self.object(&bucket, &key)
    }

    pub fn object(&self, bucket: &str, key: &str) -> Result<Arc<ObjectEntry>> {
        self.inner.index.read().object(bucket, key)
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
        self.inner.index.read().list(bucket, query)
    }

    /// Reads one chunk's raw bytes, from the cache or the device (blocking
    /// I/O: call it off the async executor).
    pub fn read_chunk(&self, chunk: &ChunkRef) -> Result<Bytes> {
        if let Some(hit) = self.inner.cache.get(&chunk.location) {
            return Ok(hit);
        }
        let raw = Bytes::from(self.read_chunk_uncached(chunk)?);
        self.inner.cache.insert(chunk.location, raw.clone());
        Ok(raw)
    }

    /// Reads one chunk from the device, bypassing the cache (fsck, scrub).
    pub fn read_chunk_uncached(&self, chunk: &ChunkRef) -> Result<Vec<u8>> {
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
        self.inner.index.read().upload(upload_id)
    }

    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<Arc<Upload>>> {
        let index = self.inner.index.read();
        if !index.bucket_exists(bucket) {
            return Err(Error::NoSuchBucket);
        }
        Ok(index.uploads(bucket, prefix))
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
        let chunks = self.materialize(data).await?;
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
        let mut size = 0;
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
            size += part.size;
        }
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

/// Streams one body into chunk records. Up to `write_window_chunks` chunks
/// are in flight at once; `write` waits for the oldest when the window is full.
pub struct ObjectWriter {
    store: Store,
    buffer: Vec<u8>,
    size: u64,
    chunks: Vec<ChunkRef>,
    in_flight: VecDeque<(usize, Ticket)>,
}

impl ObjectWriter {
    pub async fn write(&mut self, mut data: &[u8]) -> Result<()> {
        let chunk_size = self.store.inner.config.chunk_size_bytes;
        self.size += data.len() as u64;
        while !data.is_empty() {
            let take = (chunk_size - self.buffer.len()).min(data.len());
            self.buffer.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buffer.len() == chunk_size {
                self.flush_chunk().await?;
            }
        }
        Ok(())
    }

    async fn flush_chunk(&mut self) -> Result<()> {
        let record = encode_chunk(&self.buffer, self.store.inner.config.compression);
        let raw_len = self.buffer.len() as u32;
        self.buffer.clear();
        let slot = self.chunks.len();
        self.chunks.push(ChunkRef {
            location: Location {
                segment: u32::MAX,
                offset: 0,
                len: 0,
            },
            raw_len,
        });
        let ticket = self.store.inner.writer.submit(vec![record]);
        self.in_flight.push_back((slot, ticket));
        while self.in_flight.len() > self.store.inner.config.write_window_chunks {
            self.settle_oldest().await?;
        }
        Ok(())
    }

    async fn settle_oldest(&mut self) -> Result<()> {
        if let Some((slot, ticket)) = self.in_flight.pop_front() {
            let committed = ticket.wait().await?;
            committed.outcome?;
            let location = committed
                .locations
                .first()
                .copied()
                .ok_or_else(|| Error::Failed("writer returned no location".into()))?;
            self.chunks[slot].location = location;
        }
        Ok(())
    }

    /// Writes what is buffered and waits for every chunk to be durable. A
    /// small body is not written yet: it goes inline into the object record.
    pub async fn finish(mut self) -> Result<WrittenData> {
        let small = self.chunks.is_empty() && self.buffer.len() <= INLINE_MAX_BYTES;
        if small && !self.buffer.is_empty() {
            let chunk = encode_chunk(&self.buffer, self.store.inner.config.compression);
            return Ok(WrittenData {
                size: self.size,
                chunks: Vec::new(),
                inline: Some(chunk),
            });
        }
        if !self.buffer.is_empty() {
            self.flush_chunk().await?;
        }
        while !self.in_flight.is_empty() {
            self.settle_oldest().await?;
        }
        Ok(WrittenData {
            size: self.size,
            chunks: self.chunks,
            inline: None,
        })
    }
}
