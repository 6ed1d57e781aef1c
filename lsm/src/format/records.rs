//! The payloads of every record kind but chunks, as written since format
//! version 6 (bincode, fixed-width integers). A change here changes the
//! bytes on the device: the golden tests in `tests.rs` pin them.

use serde::{Deserialize, Serialize};

use super::Location;
use crate::lifecycle::LifecycleConfig;

/// A reference from an object to one stored chunk. The hash names the
/// content: a read checks it, so a reference never yields another chunk's
/// bytes, and a chunk moved by compaction is found again through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRef {
    pub location: Location,
    pub raw_len: u32,
    pub hash: [u8; 32],
}

/// What S3 keeps about an object version besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub size: u64,
    /// Hex MD5, or md5-of-md5s followed by "-N" for multipart; no quotes.
    pub etag: String,
    pub last_modified_ms: u64,
    pub content_type: Option<String>,
    pub content_encoding: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    pub user_metadata: Vec<(String, String)>,
    /// Additional checksums as (algorithm, base64 value), e.g. ("CRC32", "..").
    /// A multipart object's composite checksum ends in "-N".
    pub checksums: Vec<(String, String)>,
    /// Set by `strata fsck --repair` on a version whose data is damaged:
    /// why. Such a version lists but every read of it is an error.
    pub quarantined: Option<String>,
    /// What few objects have, behind one pointer so that the rest pay 8
    /// bytes for all of it.
    pub extra: Option<Box<MetaExtra>>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaExtra {
    /// Sorted by key.
    pub tags: Vec<(String, String)>,
    pub retention: Option<Retention>,
    pub legal_hold: bool,
    /// A multipart object's parts in order (GET ?partNumber, attributes).
    pub parts: Vec<PartSummary>,
    /// The checksum algorithm an upload was created with, e.g. "SHA256".
    pub checksum_algorithm: Option<String>,
    pub checksum_type: Option<ChecksumType>,
    /// The upload a multipart object came from: a repeated Complete of it
    /// is answered from this version.
    pub upload_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChecksumType {
    /// A checksum of the parts' checksums, "-N" appended.
    Composite,
    /// The checksum of the whole object (CRCs combined from the parts').
    FullObject,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartSummary {
    pub number: u32,
    pub size: u64,
    /// The part's checksum in the upload's algorithm (base64), if sent.
    pub checksum: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LockMode {
    Governance,
    Compliance,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retention {
    pub mode: LockMode,
    pub until_ms: u64,
}

impl ObjectMeta {
    pub fn extra(&self) -> Option<&MetaExtra> {
        self.extra.as_deref()
    }

    pub fn extra_mut(&mut self) -> &mut MetaExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub fn tags(&self) -> &[(String, String)] {
        self.extra().map_or(&[], |e| &e.tags)
    }

    pub fn retention(&self) -> Option<Retention> {
        self.extra().and_then(|e| e.retention)
    }

    pub fn legal_hold(&self) -> bool {
        self.extra().is_some_and(|e| e.legal_hold)
    }

    pub fn parts(&self) -> &[PartSummary] {
        self.extra().map_or(&[], |e| &e.parts)
    }

    /// Drops an empty `extra`, so that equal metadata encodes equally.
    pub fn tidy(&mut self) {
        if self.extra.as_deref() == Some(&MetaExtra::default()) {
            self.extra = None;
        }
    }
}

/// A condition on the key's current version, decided where the record
/// applies (in log order), never before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Condition {
    #[default]
    Always,
    /// `If-Match`: the current version is an object and this matches it.
    IfMatch(ETagMatch),
    /// `If-None-Match`: there is no current object, or this does not match it.
    IfNoneMatch(ETagMatch),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ETagMatch {
    /// `*`
    Any,
    /// An ETag without quotes.
    Is(String),
}

impl ETagMatch {
    pub fn matches(&self, etag: &str) -> bool {
        match self {
            ETagMatch::Any => true,
            ETagMatch::Is(e) => e == etag,
        }
    }
}

/// A PUT, a copy, or the object a multipart Complete makes: a new version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectPut {
    pub bucket: String,
    pub key: String,
    pub meta: ObjectMeta,
    pub chunks: Vec<ChunkRef>,
    pub condition: Condition,
    /// A small object's data in the same record (a chunk payload, see
    /// `encode_chunk_payload`, with `inline_flags`), so that one write and
    /// one read serve it; empty when the data is in `chunks`. Encoded as
    /// bytes, not as a sequence of u8 (the same encoding, one call instead
    /// of one per byte).
    #[serde(with = "serde_bytes")]
    pub inline: Vec<u8>,
    pub inline_flags: u8,
}

/// Which version of a key a record means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionRef {
    /// The newest version (a request without a version id).
    Current,
    /// The null version (`versionId=null`).
    Null,
    /// The version made by the record with this lsn.
    Lsn(u64),
}

/// How clients see a version id: 16 hex digits of its lsn, or `null`.
pub fn version_id(lsn: u64, null_version: bool) -> String {
    if null_version {
        "null".to_string()
    } else {
        format!("{lsn:016x}")
    }
}

/// A version id as a client sent it; `None` if it cannot be one.
pub fn parse_version_id(id: &str) -> Option<VersionRef> {
    if id == "null" {
        return Some(VersionRef::Null);
    }
    if id.len() != 16 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(id, 16).ok().map(VersionRef::Lsn)
}

/// Conditions of a DELETE on the version it targets (AWS's conditional
/// deletes); every one given must hold. A target that does not exist
/// deletes nothing and fails no condition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteCondition {
    pub etag: Option<ETagMatch>,
    pub size: Option<u64>,
    /// Whole seconds, as HTTP dates carry them.
    pub last_modified_s: Option<u64>,
    /// Lifecycle's guard: applies only while this version is current, so
    /// a version written after the rule was evaluated never expires by it.
    pub current_lsn: Option<u64>,
}

/// A DELETE: of the current version (what it does depends on the bucket's
/// versioning), or of one version for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delete {
    pub bucket: String,
    pub key: String,
    pub version: VersionRef,
    /// The request's time: a delete marker's last-modified, and the time a
    /// retention is compared with, so that replay decides the same.
    pub at_ms: u64,
    pub bypass_governance: bool,
    pub condition: DeleteCondition,
}

/// A bucket and the settings it is born with, in one record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCreate {
    pub bucket: String,
    pub at_ms: u64,
    /// Object lock from birth (which turns versioning on).
    pub object_lock: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketOp {
    pub bucket: String,
    pub at_ms: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersioningState {
    #[default]
    Unversioned,
    Enabled,
    Suspended,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectLockConfig {
    pub default_retention: Option<DefaultRetention>,
}

/// Applied to a new version that brings no retention of its own. Days or
/// years, as given (a GET gives back the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultRetention {
    pub mode: LockMode,
    pub days: Option<u32>,
    pub years: Option<u32>,
}

impl DefaultRetention {
    pub fn period_ms(&self) -> u64 {
        let days = u64::from(self.days.unwrap_or(0)) + 365 * u64::from(self.years.unwrap_or(0));
        days * crate::lifecycle::DAY_MS
    }
}

/// One bucket setting, replaced whole.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketSetting {
    Versioning(VersioningState),
    ObjectLock(ObjectLockConfig),
    Tags(Option<Vec<(String, String)>>),
    Lifecycle(Option<LifecycleConfig>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketConfigChange {
    pub bucket: String,
    pub at_ms: u64,
    pub setting: BucketSetting,
}

/// A change to one existing version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VersionChange {
    Tags(Vec<(String, String)>),
    /// Shortening or removing a retention needs the governance bypass
    /// (and is never possible under COMPLIANCE).
    Retention {
        retention: Option<Retention>,
        bypass_governance: bool,
    },
    LegalHold(bool),
    /// fsck --repair: the version's data is damaged; its chunks are let go.
    Quarantine(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionUpdate {
    pub bucket: String,
    pub key: String,
    pub version: VersionRef,
    pub at_ms: u64,
    pub change: VersionChange,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartCreate {
    pub upload_id: String,
    pub bucket: String,
    pub key: String,
    /// Headers given at create; size and etag are filled at complete.
    pub meta: ObjectMeta,
    pub initiated_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartPart {
    pub upload_id: String,
    pub part_number: u32,
    pub size: u64,
    pub etag: String,
    pub last_modified_ms: u64,
    pub checksums: Vec<(String, String)>,
    pub chunks: Vec<ChunkRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartComplete {
    pub upload_id: String,
    pub object: ObjectPut,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MultipartAbort {
    pub upload_id: String,
}

/// One piece of an index snapshot; pieces are chained backwards so the
/// superblock needs to point at the last one only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointPart {
    pub previous: Option<Location>,
    pub part_index: u32,
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}
