//! The payloads of every record kind but chunks, as written since format
//! version 6 (bincode, fixed-width integers). A change here changes the
//! bytes on the device: the golden tests in `tests.rs` pin them.

use serde::{Deserialize, Serialize};

use super::{
    BucketEncryption, CorsRule, Grant, Location, ObjectAcl, ObjectEncryption, ObjectOwnership,
    PublicAccessBlock,
};
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
    /// What few versions have, behind one pointer so that the rest pay 8
    /// bytes for all of it; see `MetaItem`.
    pub extra: Option<Box<Vec<MetaItem>>>,
}

/// One thing a version may carry, each kind at most once, kept in the
/// order of the kinds. A list of tagged items rather than a struct: bincode
/// cannot skip a field it does not know, but a later format can add kinds
/// while every item this one wrote still decodes as it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaItem {
    /// Sorted by key.
    Tags(Vec<(String, String)>),
    Retention(Retention),
    LegalHold,
    /// A multipart object's parts in order (GET ?partNumber, attributes).
    Parts(Vec<PartSummary>),
    /// The checksum algorithm an upload was created with, e.g. "SHA256",
    /// and how its object's checksum is made.
    Checksum(String, ChecksumType),
    /// The upload a multipart object came from: a repeated Complete of it
    /// is answered from this version.
    UploadId(String),
    /// Format 7: an owner or grants other than the default.
    Acl(ObjectAcl),
    /// Format 8: the data is encrypted under this (wrapped) data key.
    Encryption(ObjectEncryption),
}

impl MetaItem {
    fn rank(&self) -> u8 {
        match self {
            MetaItem::Tags(_) => 0,
            MetaItem::Retention(_) => 1,
            MetaItem::LegalHold => 2,
            MetaItem::Parts(_) => 3,
            MetaItem::Checksum(..) => 4,
            MetaItem::UploadId(_) => 5,
            MetaItem::Acl(_) => 6,
            MetaItem::Encryption(_) => 7,
        }
    }
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
    fn items(&self) -> &[MetaItem] {
        self.extra.as_deref().map_or(&[], |v| v.as_slice())
    }

    fn find<'a, T>(&'a self, pick: impl FnMut(&'a MetaItem) -> Option<T>) -> Option<T> {
        self.items().iter().find_map(pick)
    }

    /// Replaces the item of `item`'s kind (or, with `None`, removes the
    /// items `same` picks), keeping the kinds in order and no empty list.
    fn put(&mut self, item: Option<MetaItem>, same: fn(&MetaItem) -> bool) {
        let items = self.extra.get_or_insert_with(Default::default);
        items.retain(|i| !same(i));
        if let Some(item) = item {
            items.push(item);
            items.sort_by_key(MetaItem::rank);
        }
        if items.is_empty() {
            self.extra = None;
        }
    }

    pub fn tags(&self) -> &[(String, String)] {
        self.find(|i| match i {
            MetaItem::Tags(t) => Some(t.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
    }

    pub fn set_tags(&mut self, tags: Vec<(String, String)>) {
        let item = (!tags.is_empty()).then_some(MetaItem::Tags(tags));
        self.put(item, |i| matches!(i, MetaItem::Tags(_)));
    }

    pub fn retention(&self) -> Option<Retention> {
        self.find(|i| match i {
            MetaItem::Retention(r) => Some(*r),
            _ => None,
        })
    }

    pub fn set_retention(&mut self, retention: Option<Retention>) {
        self.put(retention.map(MetaItem::Retention), |i| {
            matches!(i, MetaItem::Retention(_))
        });
    }

    pub fn legal_hold(&self) -> bool {
        self.items().contains(&MetaItem::LegalHold)
    }

    pub fn set_legal_hold(&mut self, on: bool) {
        self.put(on.then_some(MetaItem::LegalHold), |i| {
            matches!(i, MetaItem::LegalHold)
        });
    }

    pub fn parts(&self) -> &[PartSummary] {
        self.find(|i| match i {
            MetaItem::Parts(p) => Some(p.as_slice()),
            _ => None,
        })
        .unwrap_or(&[])
    }

    pub fn set_parts(&mut self, parts: Vec<PartSummary>) {
        let item = (!parts.is_empty()).then_some(MetaItem::Parts(parts));
        self.put(item, |i| matches!(i, MetaItem::Parts(_)));
    }

    /// The checksum algorithm an upload was created with, and its type.
    pub fn checksum_kind(&self) -> Option<(&str, ChecksumType)> {
        self.find(|i| match i {
            MetaItem::Checksum(a, t) => Some((a.as_str(), *t)),
            _ => None,
        })
    }

    pub fn set_checksum_kind(&mut self, kind: Option<(String, ChecksumType)>) {
        self.put(kind.map(|(a, t)| MetaItem::Checksum(a, t)), |i| {
            matches!(i, MetaItem::Checksum(..))
        });
    }

    pub fn upload_id(&self) -> Option<&str> {
        self.find(|i| match i {
            MetaItem::UploadId(id) => Some(id.as_str()),
            _ => None,
        })
    }

    pub fn set_upload_id(&mut self, id: Option<String>) {
        self.put(id.map(MetaItem::UploadId), |i| {
            matches!(i, MetaItem::UploadId(_))
        });
    }

    /// The version's owner and grants, when not the default.
    pub fn acl(&self) -> Option<&ObjectAcl> {
        self.find(|i| match i {
            MetaItem::Acl(acl) => Some(acl),
            _ => None,
        })
    }

    pub fn set_acl(&mut self, acl: Option<ObjectAcl>) {
        self.put(acl.map(MetaItem::Acl), |i| matches!(i, MetaItem::Acl(_)));
    }

    /// The wrapped data key, when the data is encrypted.
    pub fn encryption(&self) -> Option<&ObjectEncryption> {
        self.find(|i| match i {
            MetaItem::Encryption(e) => Some(e),
            _ => None,
        })
    }

    pub fn set_encryption(&mut self, encryption: Option<ObjectEncryption>) {
        self.put(encryption.map(MetaItem::Encryption), |i| {
            matches!(i, MetaItem::Encryption(_))
        });
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

/// A bucket and the settings it is born with, in one record, so that a
/// crash never leaves half of it. Object lock from birth turns versioning
/// on first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketCreate {
    pub bucket: String,
    pub at_ms: u64,
    pub settings: Vec<BucketSetting>,
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

/// One bucket setting, replaced whole. Format 7 added the variants from
/// `Owner` on (bincode numbers variants, so earlier ones decode as before).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BucketSetting {
    Versioning(VersioningState),
    ObjectLock(ObjectLockConfig),
    Tags(Option<Vec<(String, String)>>),
    Lifecycle(Option<LifecycleConfig>),
    /// The owning account's id (given at create).
    Owner(String),
    /// The bucket policy (IAM JSON, as given and validated by the server).
    Policy(Option<String>),
    Acl(Vec<Grant>),
    Cors(Option<Vec<CorsRule>>),
    Ownership(Option<ObjectOwnership>),
    PublicAccessBlock(Option<PublicAccessBlock>),
    /// Format 8: default encryption for writes without SSE headers.
    Encryption(Option<BucketEncryption>),
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
    /// Format 7: PutObjectAcl (None: back to the default).
    Acl(Option<ObjectAcl>),
    /// Format 8: the data key wrapped again under a rotated master key;
    /// the data is not touched.
    DataKey(ObjectEncryption),
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
