//! Reading what format version 5 wrote, so that a device of the previous
//! release opens with all its data. Nothing here is ever written: its
//! record kinds (2, 3, 4, 6, 8) and its checkpoint are decoded into the
//! current form. Version 5 knew no versions: every object is its key's
//! null version, and a tombstone removes it.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;

use super::{
    decode_bincode, BucketCreate, ChunkRef, Condition, Delete, DeleteCondition, ETagMatch,
    Location, MultipartComplete, MultipartCreate, MultipartPart, ObjectMeta, ObjectPut, Record,
    RecordKind, VersionRef,
};
use crate::error::{Error, Result};
use crate::index::{Index, LogPosition, ObjectEntry, Upload};

#[derive(Deserialize)]
struct ObjectMetaV5 {
    size: u64,
    etag: String,
    last_modified_ms: u64,
    content_type: Option<String>,
    content_encoding: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_language: Option<String>,
    expires: Option<String>,
    user_metadata: Vec<(String, String)>,
    checksums: Vec<(String, String)>,
    quarantined: Option<String>,
}

impl From<ObjectMetaV5> for ObjectMeta {
    fn from(m: ObjectMetaV5) -> ObjectMeta {
        ObjectMeta {
            size: m.size,
            etag: m.etag,
            last_modified_ms: m.last_modified_ms,
            content_type: m.content_type,
            content_encoding: m.content_encoding,
            cache_control: m.cache_control,
            content_disposition: m.content_disposition,
            content_language: m.content_language,
            expires: m.expires,
            user_metadata: m.user_metadata,
            checksums: m.checksums,
            quarantined: m.quarantined,
            extra: None,
        }
    }
}

#[derive(Deserialize)]
struct ObjectPutV5 {
    bucket: String,
    key: String,
    meta: ObjectMetaV5,
    chunks: Vec<ChunkRef>,
    if_absent: bool,
    #[serde(with = "serde_bytes")]
    inline: Vec<u8>,
    inline_flags: u8,
}

impl From<ObjectPutV5> for ObjectPut {
    fn from(p: ObjectPutV5) -> ObjectPut {
        ObjectPut {
            bucket: p.bucket,
            key: p.key,
            meta: p.meta.into(),
            chunks: p.chunks,
            condition: match p.if_absent {
                true => Condition::IfNoneMatch(ETagMatch::Any),
                false => Condition::Always,
            },
            inline: p.inline,
            inline_flags: p.inline_flags,
        }
    }
}

#[derive(Deserialize)]
struct TombstoneV5 {
    bucket: String,
    key: String,
}

#[derive(Deserialize)]
struct BucketOpV5 {
    bucket: String,
    at_ms: u64,
}

#[derive(Deserialize)]
struct MultipartCreateV5 {
    upload_id: String,
    bucket: String,
    key: String,
    meta: ObjectMetaV5,
    initiated_ms: u64,
}

impl From<MultipartCreateV5> for MultipartCreate {
    fn from(c: MultipartCreateV5) -> MultipartCreate {
        MultipartCreate {
            upload_id: c.upload_id,
            bucket: c.bucket,
            key: c.key,
            meta: c.meta.into(),
            initiated_ms: c.initiated_ms,
        }
    }
}

#[derive(Deserialize)]
struct MultipartCompleteV5 {
    upload_id: String,
    object: ObjectPutV5,
}

/// A version 5 record, in the current form.
pub(super) fn decode(kind: RecordKind, payload: &[u8]) -> Result<Record> {
    Ok(match kind {
        RecordKind::ObjectPutV5 => Record::Object(decode_bincode::<ObjectPutV5>(payload)?.into()),
        RecordKind::TombstoneV5 => {
            let t: TombstoneV5 = decode_bincode(payload)?;
            // A bucket of version 5 is never versioned: deleting the
            // current version removes the null one.
            Record::Delete(Delete {
                bucket: t.bucket,
                key: t.key,
                version: VersionRef::Current,
                at_ms: 0,
                bypass_governance: false,
                condition: DeleteCondition::default(),
            })
        }
        RecordKind::BucketCreateV5 => {
            let op: BucketOpV5 = decode_bincode(payload)?;
            Record::BucketCreate(BucketCreate {
                bucket: op.bucket,
                at_ms: op.at_ms,
                settings: Vec::new(),
            })
        }
        RecordKind::MultipartCreateV5 => {
            Record::MultipartCreate(decode_bincode::<MultipartCreateV5>(payload)?.into())
        }
        RecordKind::MultipartCompleteV5 => {
            let c: MultipartCompleteV5 = decode_bincode(payload)?;
            Record::MultipartComplete(MultipartComplete {
                upload_id: c.upload_id,
                object: c.object.into(),
            })
        }
        other => return Err(Error::Decode(format!("{other:?} is not a version 5 kind"))),
    })
}

// The version 5 checkpoint: the index as it was serialised then.

#[derive(Deserialize)]
struct IndexV5 {
    buckets: BTreeMap<String, BucketV5>,
    uploads: BTreeMap<String, UploadV5>,
    applied_lsn: u64,
    tail: Option<LogPosition>,
}

#[derive(Deserialize)]
struct BucketV5 {
    created_ms: u64,
    objects: BTreeMap<String, ObjectEntryV5>,
}

#[derive(Deserialize)]
struct ObjectEntryV5 {
    lsn: u64,
    location: Location,
    meta: ObjectMetaV5,
    chunks: Vec<ChunkRef>,
}

#[derive(Deserialize)]
struct UploadV5 {
    create: MultipartCreateV5,
    parts: BTreeMap<u32, MultipartPart>,
}

/// A version 5 checkpoint's index (bincode, after zstd), in the current
/// form: every object its key's null version.
pub fn decode_index(encoded: &[u8]) -> Result<Index> {
    let old: IndexV5 = bincode::deserialize(encoded).map_err(|e| Error::Decode(e.to_string()))?;
    let buckets = old.buckets.into_iter().map(|(name, bucket)| {
        let objects = bucket.objects.into_iter().map(|(key, o)| {
            let entry = ObjectEntry {
                lsn: o.lsn,
                location: o.location,
                meta: o.meta.into(),
                chunks: o.chunks,
                null_version: true,
                delete_marker: false,
            };
            (key, entry)
        });
        (name, bucket.created_ms, objects.collect::<Vec<_>>())
    });
    let uploads = old.uploads.into_values().map(|u| Upload {
        create: u.create.into(),
        parts: u.parts.into_iter().map(|(n, p)| (n, Arc::new(p))).collect(),
    });
    Ok(Index::restored(
        buckets.collect(),
        uploads.collect(),
        old.applied_lsn,
        old.tail,
    ))
}
