//! Multipart uploads: create, parts, complete (linking the parts' chunks
//! into a new version, no copy), abort. A Complete repeated after it
//! succeeded is answered from the version it made, for as long as that
//! version is the key's current one.

use std::sync::Arc;

use md5::{Digest, Md5};

use crate::error::{Error, Result};
use crate::format::{
    ChunkRef, Condition, MultipartAbort, MultipartComplete, MultipartCreate, MultipartPart,
    ObjectMeta, ObjectPut, PartSummary, Record,
};
use crate::index::{ObjectEntry, Upload};
use crate::store::{now_ms, Store, WrittenData};
use crate::writer::PinGuard;

impl Store {
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
        self.catalog().read().index.upload(upload_id)
    }

    pub fn list_uploads(&self, bucket: &str, prefix: &str) -> Result<Vec<Arc<Upload>>> {
        let catalog = self.catalog().read();
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
        if self.config().dedup {
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

    /// Joins the named parts into a new version of the upload's key,
    /// linking their chunks (no copy). `parts` are (part number, ETag
    /// without quotes) as the client sent them; `checksums` the whole
    /// object's, which the caller computed from the parts'. An upload that
    /// already completed into the key's current version answers with that
    /// version.
    pub async fn complete_upload(
        &self,
        bucket: &str,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
        condition: Condition,
        checksums: Vec<(String, String)>,
    ) -> Result<Arc<ObjectEntry>> {
        let upload = match self.upload(upload_id) {
            Ok(upload) => upload,
            Err(Error::NoSuchUpload) => return self.completed(bucket, key, upload_id),
            Err(e) => return Err(e),
        };
        if upload.create.bucket != bucket || upload.create.key != key {
            return Err(Error::NoSuchUpload);
        }
        if parts.is_empty() {
            return Err(Error::InvalidPart("no parts given".into()));
        }
        let algorithm = upload
            .create
            .meta
            .checksum_kind()
            .map(|(a, _)| a.to_string());
        let mut md5s = Vec::with_capacity(parts.len() * 16);
        let mut chunks = Vec::new();
        let mut summary = Vec::with_capacity(parts.len());
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
            if i + 1 < parts.len() && part.size < self.config().min_part_size_bytes {
                return Err(Error::EntityTooSmall(*number));
            }
            md5s.extend(hex::decode(&part.etag).map_err(|_| Error::InvalidPart(etag.clone()))?);
            chunks.extend_from_slice(&part.chunks);
            summary.push(PartSummary {
                number: *number,
                size: part.size,
                checksum: algorithm.as_ref().and_then(|a| {
                    part.checksums
                        .iter()
                        .find(|(name, _)| name == a)
                        .map(|(_, value)| value.clone())
                }),
            });
            size = size
                .checked_add(part.size)
                .ok_or_else(|| Error::TooLarge("the parts' total size".into()))?;
        }
        let (chunks, pins) = self.pin_chunks(&chunks)?;
        let mut meta = upload.create.meta.clone();
        meta.size = size;
        meta.etag = format!("{}-{}", hex::encode(Md5::digest(&md5s)), parts.len());
        meta.last_modified_ms = now_ms();
        meta.checksums = checksums;
        meta.set_parts(summary);
        meta.set_upload_id(Some(upload_id.to_string()));
        let complete = MultipartComplete {
            upload_id: upload_id.to_string(),
            object: ObjectPut {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta,
                chunks,
                condition,
                inline: Vec::new(),
                inline_flags: 0,
            },
        };
        let entry = self
            .append_version(Record::MultipartComplete(complete))
            .await;
        drop(pins);
        entry?.ok_or_else(|| Error::Failed("a complete applied without a version".into()))
    }

    /// The version a completed upload made, while it is current.
    fn completed(&self, bucket: &str, key: &str, upload_id: &str) -> Result<Arc<ObjectEntry>> {
        match self.object(bucket, key) {
            Ok(entry) if entry.meta.upload_id() == Some(upload_id) => Ok(entry),
            Err(Error::NoSuchBucket) => Err(Error::NoSuchBucket),
            _ => Err(Error::NoSuchUpload),
        }
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
