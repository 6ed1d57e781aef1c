//! Writing versions: puts, copies, deletes and changes to one version
//! (tags, retention, legal hold, quarantine). Each is one record; what it
//! does (a new version or the null one replaced, a delete marker or a
//! removal) and whether its conditions hold is decided where it applies,
//! in log order (`Index::apply`). Each returns once durable and applied.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::format::{
    flags, Condition, Delete, DeleteCondition, ObjectMeta, ObjectPut, Record, VersionChange,
    VersionRef, VersionUpdate, VersioningState,
};
use crate::index::ObjectEntry;
use crate::store::{now_ms, Store, WrittenData};

impl Store {
    /// Makes a written body a new version of `key` (durable before it
    /// returns). `meta.etag` is the caller's (S3 wants the body's MD5).
    pub async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        mut meta: ObjectMeta,
        data: WrittenData,
        condition: Condition,
    ) -> Result<Arc<ObjectEntry>> {
        meta.size = data.size;
        meta.last_modified_ms = now_ms();
        let mut chunks = data.chunks;
        let mut pins = data.pins;
        let (inline, inline_flags) = match data.inline {
            Some(chunk) => {
                // A small body already stored whole is referenced, not stored again.
                let hash = match &chunk.record {
                    Record::Chunk { hash, .. } if chunk.flags & flags::ENCRYPTED == 0 => {
                        Some(*hash)
                    }
                    _ => None,
                };
                let existing = hash
                    .filter(|_| self.config().dedup)
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
            .commit_version(ObjectPut {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta,
                chunks,
                condition,
                inline,
                inline_flags,
            })
            .await;
        drop(pins);
        entry
    }

    /// A new version that shares the source's chunks: no data is rewritten.
    pub async fn copy_object(
        &self,
        source: &ObjectEntry,
        bucket: &str,
        key: &str,
        mut meta: ObjectMeta,
        condition: Condition,
    ) -> Result<Arc<ObjectEntry>> {
        meta.size = source.meta.size;
        meta.etag = source.meta.etag.clone();
        meta.last_modified_ms = now_ms();
        let (chunks, pins) = self.pin_chunks(&source.chunks)?;
        let entry = self
            .commit_version(ObjectPut {
                bucket: bucket.to_string(),
                key: key.to_string(),
                meta,
                chunks,
                condition,
                inline: Vec::new(),
                inline_flags: 0,
            })
            .await;
        drop(pins);
        entry
    }

    pub(crate) async fn commit_version(&self, put: ObjectPut) -> Result<Arc<ObjectEntry>> {
        self.append_version(Record::Object(put))
            .await?
            .ok_or_else(|| Error::Failed("a put applied without a version".into()))
    }

    /// A DELETE. Of the current version (`VersionRef::Current`): a delete
    /// marker where the bucket versions, a removal where it does not. Of
    /// one version: its removal, if object lock allows. Returns the marker
    /// made or the version removed; `None` when nothing was there, which
    /// S3 answers as a success. Nothing is written for nothing.
    pub async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version: VersionRef,
        bypass_governance: bool,
        condition: DeleteCondition,
    ) -> Result<Option<Arc<ObjectEntry>>> {
        let writes_marker = self.bucket_config(bucket)?.versioning != VersioningState::Unversioned
            && version == VersionRef::Current;
        if !writes_marker {
            match self.version(bucket, key, version) {
                Ok(_) => {}
                Err(Error::NoSuchKey | Error::NoSuchVersion) => return Ok(None),
                Err(e) => return Err(e),
            }
        }
        let delete = Delete {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version,
            at_ms: now_ms(),
            bypass_governance,
            condition,
        };
        self.append_version(Record::Delete(delete)).await
    }

    /// Changes one version: its tags, retention or legal hold.
    pub async fn update_version(
        &self,
        bucket: &str,
        key: &str,
        version: VersionRef,
        change: VersionChange,
    ) -> Result<Arc<ObjectEntry>> {
        let update = VersionUpdate {
            bucket: bucket.to_string(),
            key: key.to_string(),
            version,
            at_ms: now_ms(),
            change,
        };
        self.append_version(Record::VersionUpdate(update))
            .await?
            .ok_or_else(|| Error::Failed("an update applied without a version".into()))
    }

    /// Marks a damaged version: it keeps its name and metadata (so it still
    /// lists and its owner can see what was lost) but drops its chunk
    /// references, and every read of it fails with the reason. A locked
    /// version is quarantined like any other, never removed.
    pub async fn quarantine(&self, bucket: &str, key: &str, lsn: u64, reason: &str) -> Result<()> {
        self.update_version(
            bucket,
            key,
            VersionRef::Lsn(lsn),
            VersionChange::Quarantine(reason.to_string()),
        )
        .await
        .map(|_| ())
    }
}
