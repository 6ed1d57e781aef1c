//! The in-memory index: buckets with their settings, each key's versions
//! (`versions.rs`), and open multipart uploads. `apply` is the one place a
//! record changes state; the writer calls it after a batch is durable and
//! recovery calls it on replay, so the live state and the recovered state
//! cannot disagree. It decides every condition itself (bucket exists and
//! is empty, If-Match / If-None-Match, object lock, versioning state),
//! deterministically, in log order. Listings are in `listing.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use crate::bucket_config::BucketConfig;
use crate::error::{Error, Result};
use crate::format::{
    decode_chunk_payload, version_id, BucketConfigChange, BucketCreate, BucketSetting, ChunkRef,
    Condition, Delete, DeleteCondition, ETagMatch, Location, MultipartCreate, MultipartPart,
    ObjectMeta, ObjectPut, Record, Retention, VersionChange, VersionRef, VersionUpdate,
    VersioningState,
};
use crate::iam::IamState;
use crate::lifecycle::LifecycleConfig;
use crate::object_lock::{may_change_retention, may_remove};
use crate::space::SpaceMap;
use crate::versions::Versions;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Index {
    pub(crate) buckets: BTreeMap<String, Bucket>,
    uploads: BTreeMap<String, Arc<Upload>>,
    /// The lsn of the newest applied record.
    pub applied_lsn: u64,
    /// Just past the newest applied record: where a replay resumes.
    pub tail: Option<LogPosition>,
    /// Format 7: accounts, users, keys, policies.
    pub iam: IamState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogPosition {
    pub segment: u32,
    pub sequence: u64,
    pub offset: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(from = "StoredBucket")]
pub struct Bucket {
    pub created_ms: u64,
    pub config: BucketConfig,
    pub(crate) objects: BTreeMap<String, Versions>,
    /// Kept as versions come and go, and counted again when a checkpoint
    /// is read: counting on demand walked every key under the catalog's
    /// lock at each /metrics scrape (300,000 objects: 65 ms, during which
    /// no write was applied).
    #[serde(skip)]
    held: Held,
}

/// A bucket as checkpoints hold it: `Bucket` without what is counted.
#[derive(Deserialize)]
struct StoredBucket {
    created_ms: u64,
    config: BucketConfig,
    objects: BTreeMap<String, Versions>,
}

impl From<StoredBucket> for Bucket {
    fn from(b: StoredBucket) -> Bucket {
        Bucket::new(b.created_ms, b.config, b.objects)
    }
}

/// Object versions a bucket holds (delete markers not), and their bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Held {
    versions: u64,
    logical_bytes: u64,
}

impl Held {
    fn add(&mut self, entry: &ObjectEntry) {
        if !entry.delete_marker {
            self.versions += 1;
            self.logical_bytes = self.logical_bytes.saturating_add(entry.meta.size);
        }
    }

    fn remove(&mut self, entry: &ObjectEntry) {
        if !entry.delete_marker {
            self.versions = self.versions.saturating_sub(1);
            self.logical_bytes = self.logical_bytes.saturating_sub(entry.meta.size);
        }
    }

    fn counted(objects: &BTreeMap<String, Versions>) -> Held {
        let mut held = Held::default();
        objects
            .values()
            .flat_map(Versions::iter)
            .for_each(|e| held.add(e));
        held
    }
}

/// One version of a key: an object, or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectEntry {
    /// The lsn of the record that made this version: its id.
    pub lsn: u64,
    /// The record that made this version (put, copy, multipart complete,
    /// delete marker).
    pub location: Location,
    pub meta: ObjectMeta,
    pub chunks: Vec<ChunkRef>,
    /// Written while the bucket was not versioning: its id is `null`.
    pub null_version: bool,
    pub delete_marker: bool,
}

impl ObjectEntry {
    /// The id clients know this version by.
    pub fn version_id(&self) -> String {
        version_id(self.lsn, self.null_version)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Upload {
    pub create: MultipartCreate,
    pub parts: BTreeMap<u32, Arc<MultipartPart>>,
}

/// The index and the space map, guarded by one lock: every apply changes
/// both. Only the index is checkpointed; the space map is recounted.
#[derive(Debug, Default)]
pub struct Catalog {
    pub index: Index,
    pub space: SpaceMap,
}

impl Catalog {
    /// Starts from a recovered index, recounting every reference.
    pub fn new(index: Index) -> Catalog {
        let mut index = index;
        index.iam.reindex();
        let space = SpaceMap::recount(&index);
        Catalog { index, space }
    }

    /// Applies one durable record; see `Index::apply`.
    pub fn apply(
        &mut self,
        lsn: u64,
        location: Location,
        record: &Record,
    ) -> Result<Option<Arc<ObjectEntry>>> {
        self.index.apply(lsn, location, record, &mut self.space)
    }
}

impl Upload {
    pub fn chunk_refs(&self) -> impl Iterator<Item = &ChunkRef> {
        self.parts.values().flat_map(|p| p.chunks.iter())
    }
}

/// Entries found referencing segments about to be compacted: the first
/// half of a relocation, found under read locks.
#[derive(Debug, Default)]
pub struct Referencing {
    pub(crate) objects: Vec<(String, String, Arc<ObjectEntry>)>,
    pub(crate) parts: Vec<(String, u32, Arc<MultipartPart>)>,
}

impl Referencing {
    /// Keeps the versions of one key that reference records in `segments`.
    pub(crate) fn add(
        &mut self,
        bucket: &str,
        key: &str,
        versions: &Versions,
        segments: &BTreeSet<u32>,
    ) {
        self.objects.extend(
            versions
                .iter()
                .filter(|o| references(&o.chunks, segments))
                .map(|o| (bucket.to_string(), key.to_string(), o.clone())),
        );
    }
}

fn references(chunks: &[ChunkRef], segments: &BTreeSet<u32>) -> bool {
    chunks
        .iter()
        .any(|c| segments.contains(&c.location.segment))
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BucketUsage {
    pub objects: u64,
    pub versions: u64,
    pub logical_bytes: u64,
    pub stored_bytes: u64,
}

impl BucketUsage {
    /// Adds what one key holds: an object if its newest version is not a
    /// delete marker, every version's bytes, and the stored bytes its
    /// versions reference, each chunk counted once (`seen`) however many
    /// versions share it (dedup across buckets is not subtracted, so
    /// buckets may sum to more than the device holds).
    pub(crate) fn add(&mut self, versions: &Versions, seen: &mut HashSet<Location>) {
        if !versions.newest().delete_marker {
            self.objects += 1;
        }
        for entry in versions.iter() {
            self.versions += 1;
            self.logical_bytes += entry.meta.size;
            if entry.chunks.is_empty() && !entry.delete_marker {
                // A small body lives in its version's own record.
                self.stored_bytes += u64::from(entry.location.len);
            }
            for chunk in &entry.chunks {
                if seen.insert(chunk.location) {
                    self.stored_bytes += u64::from(chunk.location.len);
                }
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketInfo {
    pub name: String,
    pub created_ms: u64,
}

/// Whether `condition` holds for a key whose newest version is `current`.
fn check_condition(condition: &Condition, current: Option<&Arc<ObjectEntry>>) -> Result<()> {
    let live = current.filter(|e| !e.delete_marker);
    match condition {
        Condition::Always => Ok(()),
        Condition::IfMatch(m) => match live {
            None => Err(Error::NoSuchKey),
            Some(e) if m.matches(&e.meta.etag) => Ok(()),
            Some(_) => Err(Error::PreconditionFailed),
        },
        Condition::IfNoneMatch(m) => match live {
            Some(e) if m.matches(&e.meta.etag) => Err(Error::PreconditionFailed),
            _ => Ok(()),
        },
    }
}

/// Whether a DELETE's conditions hold for its target version (a delete
/// marker has no ETag, so only `*` matches it).
fn check_delete_condition(condition: &DeleteCondition, target: &ObjectEntry) -> Result<()> {
    let etag_ok = condition.etag.as_ref().is_none_or(|m| match m {
        ETagMatch::Any => true,
        ETagMatch::Is(_) if target.delete_marker => false,
        ETagMatch::Is(_) => m.matches(&target.meta.etag),
    });
    let size_ok = condition.size.is_none_or(|s| s == target.meta.size);
    let time_ok = condition
        .last_modified_s
        .is_none_or(|s| s == target.meta.last_modified_ms / 1000);
    if etag_ok && size_ok && time_ok {
        Ok(())
    } else {
        Err(Error::PreconditionFailed)
    }
}

impl Bucket {
    pub(crate) fn new(
        created_ms: u64,
        config: BucketConfig,
        objects: BTreeMap<String, Versions>,
    ) -> Bucket {
        let held = Held::counted(&objects);
        Bucket {
            created_ms,
            config,
            objects,
            held,
        }
    }

    /// Takes one version out of a key for good, letting go of its chunks.
    fn remove_version(&mut self, key: &str, lsn: u64, space: &mut SpaceMap) {
        let Some(versions) = self.objects.get_mut(key) else {
            return;
        };
        let (gone, left) = versions.remove(lsn);
        if !left {
            self.objects.remove(key);
        }
        if let Some(gone) = gone {
            self.held.remove(&gone);
            gone.chunks.iter().for_each(|c| space.drop_ref(c));
        }
    }

    /// Adds the newest version of a key.
    fn push_version(&mut self, key: &str, entry: Arc<ObjectEntry>) {
        self.held.add(&entry);
        match self.objects.get_mut(key) {
            Some(versions) => versions.push(entry),
            None => {
                self.objects.insert(key.to_string(), Versions::One(entry));
            }
        }
    }

    fn version(&self, key: &str, version: VersionRef) -> Option<&Arc<ObjectEntry>> {
        self.objects.get(key).and_then(|v| v.find(version))
    }
}

/// A bucket as an older format's checkpoint held it: name, creation time,
/// and each key's one version.
pub(crate) type RestoredBucket = (String, u64, Vec<(String, ObjectEntry)>);

impl Index {
    /// An index from an earlier format's checkpoint, taken apart.
    pub(crate) fn from_parts(
        buckets: BTreeMap<String, Bucket>,
        uploads: BTreeMap<String, Arc<Upload>>,
        applied_lsn: u64,
        tail: Option<LogPosition>,
    ) -> Index {
        Index {
            buckets,
            uploads,
            applied_lsn,
            tail,
            iam: IamState::default(),
        }
    }

    /// An index rebuilt from an older format's checkpoint (`format::v5`).
    pub(crate) fn restored(
        buckets: Vec<RestoredBucket>,
        uploads: Vec<Upload>,
        applied_lsn: u64,
        tail: Option<LogPosition>,
    ) -> Index {
        let buckets = buckets
            .into_iter()
            .map(|(name, created_ms, objects)| {
                let objects = objects
                    .into_iter()
                    .map(|(key, entry)| (key, Versions::One(Arc::new(entry))))
                    .collect();
                let bucket = Bucket::new(created_ms, BucketConfig::default(), objects);
                (name, bucket)
            })
            .collect();
        let uploads = uploads
            .into_iter()
            .map(|u| (u.create.upload_id.clone(), Arc::new(u)))
            .collect();
        Index::from_parts(buckets, uploads, applied_lsn, tail)
    }

    /// Applies one durable record, keeping `space`'s reference counts in
    /// step. Returns the version the record made (a put, a delete marker)
    /// or removed (a DELETE of one version) or changed. The error is the
    /// operation's outcome (e.g. BucketNotEmpty); the record stays in the
    /// log and replays to the same outcome.
    pub fn apply(
        &mut self,
        lsn: u64,
        location: Location,
        record: &Record,
        space: &mut SpaceMap,
    ) -> Result<Option<Arc<ObjectEntry>>> {
        self.applied_lsn = self.applied_lsn.max(lsn);
        match record {
            Record::Chunk { .. } | Record::Checkpoint(_) => Ok(None),
            Record::Iam(update) => {
                self.iam.apply(&update.change);
                Ok(None)
            }
            Record::Object(put) => self.put_version(lsn, location, put, space).map(Some),
            Record::Delete(delete) => self.delete(lsn, location, delete, space),
            Record::BucketCreate(create) => self.create_bucket(create).map(|()| None),
            Record::BucketDelete(op) => {
                let bucket = self.buckets.get(&op.bucket).ok_or(Error::NoSuchBucket)?;
                if !bucket.objects.is_empty() {
                    return Err(Error::BucketNotEmpty);
                }
                // Uploads still open go with their bucket, as in MinIO and
                // RGW (a failed Complete must not keep a bucket forever).
                let ids: Vec<String> = self
                    .uploads
                    .values()
                    .filter(|u| u.create.bucket == op.bucket)
                    .map(|u| u.create.upload_id.clone())
                    .collect();
                for id in ids {
                    if let Some(upload) = self.uploads.remove(&id) {
                        upload.chunk_refs().for_each(|c| space.drop_ref(c));
                    }
                }
                self.buckets.remove(&op.bucket);
                Ok(None)
            }
            Record::BucketConfig(change) => self.configure_bucket(change).map(|()| None),
            Record::VersionUpdate(update) => self.update_version(update, space).map(Some),
            Record::MultipartCreate(create) => {
                if !self.buckets.contains_key(&create.bucket) {
                    return Err(Error::NoSuchBucket);
                }
                self.uploads.insert(
                    create.upload_id.clone(),
                    Arc::new(Upload {
                        create: create.clone(),
                        parts: BTreeMap::new(),
                    }),
                );
                Ok(None)
            }
            Record::MultipartPart(part) => {
                let upload = self
                    .uploads
                    .get_mut(&part.upload_id)
                    .ok_or(Error::NoSuchUpload)?;
                part.chunks.iter().for_each(|c| space.add_ref(c));
                let replaced = Arc::make_mut(upload)
                    .parts
                    .insert(part.part_number, Arc::new(part.clone()));
                if let Some(old) = replaced {
                    old.chunks.iter().for_each(|c| space.drop_ref(c));
                }
                Ok(None)
            }
            Record::MultipartComplete(complete) => {
                if !self.uploads.contains_key(&complete.upload_id) {
                    return Err(Error::NoSuchUpload);
                }
                let entry = self.put_version(lsn, location, &complete.object, space)?;
                if let Some(upload) = self.uploads.remove(&complete.upload_id) {
                    upload.chunk_refs().for_each(|c| space.drop_ref(c));
                }
                Ok(Some(entry))
            }
            Record::MultipartAbort(abort) => {
                let upload = self
                    .uploads
                    .remove(&abort.upload_id)
                    .ok_or(Error::NoSuchUpload)?;
                upload.chunk_refs().for_each(|c| space.drop_ref(c));
                Ok(None)
            }
        }
    }

    /// A new version of a key. Where the bucket is not versioning it is the
    /// null version, and replaces the one there.
    fn put_version(
        &mut self,
        lsn: u64,
        location: Location,
        put: &ObjectPut,
        space: &mut SpaceMap,
    ) -> Result<Arc<ObjectEntry>> {
        let bucket = self
            .buckets
            .get_mut(&put.bucket)
            .ok_or(Error::NoSuchBucket)?;
        let null_version = bucket.config.versioning != VersioningState::Enabled;
        let default = bucket
            .config
            .object_lock
            .as_ref()
            .and_then(|lock| lock.default_retention);
        // One lookup of the key: a replay applies a million of these.
        let mut versions = bucket.objects.get_mut(&put.key);
        check_condition(&put.condition, versions.as_deref().map(Versions::newest))?;
        let replaced = match (null_version, versions.as_deref()) {
            (true, Some(v)) => v.find(VersionRef::Null).cloned(),
            _ => None,
        };
        if let Some(old) = &replaced {
            may_remove(old, put.meta.last_modified_ms, false)?;
        }
        let mut meta = put.meta.clone();
        if let (None, Some(default)) = (meta.retention(), default) {
            meta.set_retention(Some(Retention {
                mode: default.mode,
                until_ms: meta.last_modified_ms.saturating_add(default.period_ms()),
            }));
        }
        // Inline data is read from this very record.
        let chunks = if put.inline.is_empty() {
            put.chunks.clone()
        } else {
            let hash = decode_chunk_payload(&put.inline).map_or([0; 32], |c| c.hash);
            vec![ChunkRef {
                location,
                raw_len: put.meta.size as u32,
                hash,
            }]
        };
        // New references first: an overwrite that shares chunks with the old
        // version never lets their count touch zero.
        chunks.iter().for_each(|c| space.add_ref(c));
        let entry = Arc::new(ObjectEntry {
            lsn,
            location,
            meta,
            chunks,
            null_version,
            delete_marker: false,
        });
        bucket.held.add(&entry);
        match versions.take() {
            Some(v) => {
                let mut left = true;
                if let Some(old) = replaced {
                    let (gone, any_left) = v.remove(old.lsn);
                    if let Some(gone) = &gone {
                        bucket.held.remove(gone);
                    }
                    gone.iter()
                        .flat_map(|g| &g.chunks)
                        .for_each(|c| space.drop_ref(c));
                    left = any_left;
                }
                match left {
                    true => v.push(entry.clone()),
                    false => *v = Versions::One(entry.clone()),
                }
            }
            None => {
                bucket
                    .objects
                    .insert(put.key.clone(), Versions::One(entry.clone()));
            }
        }
        Ok(entry)
    }

    fn delete(
        &mut self,
        lsn: u64,
        location: Location,
        d: &Delete,
        space: &mut SpaceMap,
    ) -> Result<Option<Arc<ObjectEntry>>> {
        let bucket = self.buckets.get_mut(&d.bucket).ok_or(Error::NoSuchBucket)?;
        let target = bucket.version(&d.key, d.version).cloned();
        if let Some(expected) = d.condition.current_lsn {
            if target.as_ref().map(|t| t.lsn) != Some(expected) {
                return Err(Error::PreconditionFailed);
            }
        }
        let conditional = d.condition != DeleteCondition::default();
        match &target {
            Some(t) => check_delete_condition(&d.condition, t)?,
            // A conditional delete of nothing deletes nothing.
            None if conditional => return Ok(None),
            None => {}
        }
        let marker = |null_version| {
            Arc::new(ObjectEntry {
                lsn,
                location,
                meta: ObjectMeta {
                    last_modified_ms: d.at_ms,
                    ..Default::default()
                },
                chunks: Vec::new(),
                null_version,
                delete_marker: true,
            })
        };
        let versioning = bucket.config.versioning;
        match (d.version, versioning) {
            (VersionRef::Current, VersioningState::Enabled) => {
                let m = marker(false);
                bucket.push_version(&d.key, m.clone());
                Ok(Some(m))
            }
            (VersionRef::Current, VersioningState::Suspended) => {
                if let Some(null) = bucket.version(&d.key, VersionRef::Null).cloned() {
                    may_remove(&null, d.at_ms, d.bypass_governance)?;
                    bucket.remove_version(&d.key, null.lsn, space);
                }
                let m = marker(true);
                bucket.push_version(&d.key, m.clone());
                Ok(Some(m))
            }
            _ => {
                let Some(t) = target else {
                    return Ok(None);
                };
                may_remove(&t, d.at_ms, d.bypass_governance)?;
                bucket.remove_version(&d.key, t.lsn, space);
                Ok(Some(t))
            }
        }
    }

    fn create_bucket(&mut self, create: &BucketCreate) -> Result<()> {
        if self.buckets.contains_key(&create.bucket) {
            return Err(Error::BucketExists);
        }
        let mut bucket = Bucket::new(create.at_ms, BucketConfig::default(), BTreeMap::new());
        for setting in &create.settings {
            // Object lock from birth turns versioning on first.
            if let BucketSetting::ObjectLock(_) = setting {
                bucket.config.versioning = VersioningState::Enabled;
            }
            bucket.config.set(setting)?;
        }
        self.buckets.insert(create.bucket.clone(), bucket);
        Ok(())
    }

    fn configure_bucket(&mut self, change: &BucketConfigChange) -> Result<()> {
        self.buckets
            .get_mut(&change.bucket)
            .ok_or(Error::NoSuchBucket)?
            .config
            .set(&change.setting)
    }

    fn update_version(
        &mut self,
        u: &VersionUpdate,
        space: &mut SpaceMap,
    ) -> Result<Arc<ObjectEntry>> {
        let bucket = self.buckets.get_mut(&u.bucket).ok_or(Error::NoSuchBucket)?;
        let missing = match u.version {
            VersionRef::Current => Error::NoSuchKey,
            _ => Error::NoSuchVersion,
        };
        let entry = bucket
            .objects
            .get_mut(&u.key)
            .and_then(|v| v.find_mut(u.version))
            .ok_or(missing)?;
        if entry.delete_marker {
            return Err(Error::DeleteMarker {
                lsn: entry.lsn,
                null_version: entry.null_version,
            });
        }
        match &u.change {
            VersionChange::Retention {
                retention,
                bypass_governance,
            } => {
                may_change_retention(
                    entry.meta.retention(),
                    *retention,
                    u.at_ms,
                    *bypass_governance,
                )?;
                Arc::make_mut(entry).meta.set_retention(*retention);
            }
            VersionChange::Tags(tags) => Arc::make_mut(entry).meta.set_tags(tags.clone()),
            VersionChange::LegalHold(on) => Arc::make_mut(entry).meta.set_legal_hold(*on),
            VersionChange::Acl(acl) => Arc::make_mut(entry).meta.set_acl(acl.clone()),
            VersionChange::DataKey(wrapped) => Arc::make_mut(entry)
                .meta
                .set_encryption(Some(wrapped.clone())),
            VersionChange::Quarantine(reason) => {
                let e = Arc::make_mut(entry);
                e.meta.quarantined = Some(reason.clone());
                e.chunks.iter().for_each(|c| space.drop_ref(c));
                e.chunks.clear();
            }
        }
        Ok(entry.clone())
    }

    // ------------------------------------------------------------ lookups

    pub fn bucket_exists(&self, bucket: &str) -> bool {
        self.buckets.contains_key(bucket)
    }

    pub fn buckets(&self) -> Vec<BucketInfo> {
        self.buckets
            .iter()
            .map(|(name, b)| BucketInfo {
                name: name.clone(),
                created_ms: b.created_ms,
            })
            .collect()
    }

    pub fn bucket_config(&self, bucket: &str) -> Result<BucketConfig> {
        self.buckets
            .get(bucket)
            .map(|b| b.config.clone())
            .ok_or(Error::NoSuchBucket)
    }

    /// The key's current object: NoSuchKey, or DeleteMarker when its
    /// newest version is a delete marker.
    pub fn object(&self, bucket: &str, key: &str) -> Result<Arc<ObjectEntry>> {
        let entry = self.version(bucket, key, VersionRef::Current)?;
        if entry.delete_marker {
            return Err(Error::DeleteMarker {
                lsn: entry.lsn,
                null_version: entry.null_version,
            });
        }
        Ok(entry)
    }

    /// One version as it is (a delete marker included).
    pub fn version(
        &self,
        bucket: &str,
        key: &str,
        version: VersionRef,
    ) -> Result<Arc<ObjectEntry>> {
        let bucket = self.buckets.get(bucket).ok_or(Error::NoSuchBucket)?;
        bucket.version(key, version).cloned().ok_or(match version {
            VersionRef::Current => Error::NoSuchKey,
            _ => Error::NoSuchVersion,
        })
    }

    /// Every version of a key, newest first (empty if the key has none).
    pub fn versions(&self, bucket: &str, key: &str) -> Result<Vec<Arc<ObjectEntry>>> {
        let bucket = self.buckets.get(bucket).ok_or(Error::NoSuchBucket)?;
        Ok(bucket
            .objects
            .get(key)
            .map(|v| v.iter().cloned().collect())
            .unwrap_or_default())
    }

    /// The buckets that have lifecycle rules, with their rules.
    pub fn lifecycle_buckets(&self) -> Vec<(String, Arc<LifecycleConfig>)> {
        self.buckets
            .iter()
            .filter_map(|(name, b)| b.config.lifecycle.clone().map(|l| (name.clone(), l)))
            .collect()
    }

    /// Up to `limit` keys after `after`, each with its versions newest
    /// first: a walk over a bucket that holds the lock only a page at a time.
    pub fn versions_page(
        &self,
        bucket: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<Arc<ObjectEntry>>)>> {
        use std::ops::Bound;
        let objects = &self.buckets.get(bucket).ok_or(Error::NoSuchBucket)?.objects;
        let lower = match after {
            Some(key) => Bound::Excluded(key.to_string()),
            None => Bound::Unbounded,
        };
        Ok(objects
            .range::<String, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|(key, versions)| (key.clone(), versions.iter().cloned().collect()))
            .collect())
    }

    pub fn upload(&self, upload_id: &str) -> Result<Arc<Upload>> {
        self.uploads
            .get(upload_id)
            .cloned()
            .ok_or(Error::NoSuchUpload)
    }

    /// Open uploads of a bucket, ordered by key then upload id.
    pub fn uploads(&self, bucket: &str, prefix: &str) -> Vec<Arc<Upload>> {
        let mut uploads: Vec<_> = self
            .uploads
            .values()
            .filter(|u| u.create.bucket == bucket && u.create.key.starts_with(prefix))
            .cloned()
            .collect();
        uploads.sort_by(|a, b| {
            (&a.create.key, &a.create.upload_id).cmp(&(&b.create.key, &b.create.upload_id))
        });
        uploads
    }

    /// Object versions held (noncurrent ones included, delete markers not).
    pub fn object_count(&self) -> usize {
        self.buckets
            .values()
            .map(|b| b.held.versions as usize)
            .sum()
    }

    pub fn logical_bytes(&self) -> u64 {
        self.buckets
            .values()
            .map(|b| b.held.logical_bytes)
            .fold(0, u64::saturating_add)
    }

    /// Calls `visit` with (bucket, key, versions) for up to `limit` keys
    /// after `after` (bucket, key), in bucket then key order, within
    /// `only` if given. Returns the last key visited when it stopped at
    /// `limit`, to go on from: a caller walking the whole index lets go of
    /// the catalog's lock between batches (`Store::visit_keys`).
    pub(crate) fn visit_keys(
        &self,
        only: Option<&str>,
        after: Option<&(String, String)>,
        limit: usize,
        visit: &mut impl FnMut(&str, &str, &Versions),
    ) -> Result<Option<(String, String)>> {
        use std::ops::Bound;
        if only.is_some_and(|b| !self.buckets.contains_key(b)) {
            return Err(Error::NoSuchBucket);
        }
        let first = match (only, after) {
            (Some(b), _) => (Bound::Included(b), Bound::Included(b)),
            (None, Some((b, _))) => (Bound::Included(b.as_str()), Bound::Unbounded),
            (None, None) => (Bound::Unbounded, Bound::Unbounded),
        };
        let mut walked = 0;
        for (b, bucket) in self.buckets.range::<str, _>(first) {
            let from = match after {
                Some((at, key)) if at == b => Bound::Excluded(key.as_str()),
                _ => Bound::Unbounded,
            };
            for (k, versions) in bucket.objects.range::<str, _>((from, Bound::Unbounded)) {
                visit(b, k, versions);
                walked += 1;
                if walked == limit {
                    return Ok(Some((b.clone(), k.clone())));
                }
            }
        }
        Ok(None)
    }

    /// The open uploads' parts that reference records in `segments`.
    pub(crate) fn parts_referencing(
        &self,
        segments: &BTreeSet<u32>,
    ) -> Vec<(String, u32, Arc<MultipartPart>)> {
        self.uploads
            .iter()
            .flat_map(|(id, u)| u.parts.iter().map(move |(n, p)| (id, n, p)))
            .filter(|(_, _, p)| references(&p.chunks, segments))
            .map(|(id, n, p)| (id.clone(), *n, p.clone()))
            .collect()
    }

    /// Every version of every key (delete markers included), for fsck,
    /// statistics and compaction.
    pub fn all_versions(&self) -> impl Iterator<Item = (&str, &str, &Arc<ObjectEntry>)> {
        self.buckets.iter().flat_map(|(b, bucket)| {
            bucket.objects.iter().flat_map(move |(k, versions)| {
                versions.iter().map(move |e| (b.as_str(), k.as_str(), e))
            })
        })
    }

    /// Every chunk reference held: all versions' and open uploads' parts'.
    pub fn all_chunk_refs(&self) -> impl Iterator<Item = &ChunkRef> {
        self.all_versions()
            .flat_map(|(_, _, o)| o.chunks.iter())
            .chain(self.uploads.values().flat_map(|u| u.chunk_refs()))
    }

    fn entry_mut(&mut self, bucket: &str, key: &str, lsn: u64) -> Option<&mut Arc<ObjectEntry>> {
        self.buckets
            .get_mut(bucket)?
            .objects
            .get_mut(key)?
            .find_mut(VersionRef::Lsn(lsn))
    }

    /// The second half, under the write lock: a compare-and-set. A segment's
    /// records move only if the entries found earlier are still current and
    /// are all the references there are (nothing pinned, nothing new);
    /// otherwise that segment stays where it is. Returns the segments moved.
    pub fn relocate(
        &mut self,
        found: &Referencing,
        moved: &HashMap<Location, Location>,
        victims: &BTreeSet<u32>,
        space: &mut SpaceMap,
    ) -> BTreeSet<u32> {
        let current_objects: Vec<&(String, String, Arc<ObjectEntry>)> = found
            .objects
            .iter()
            .filter(|(b, k, o)| {
                self.buckets
                    .get(b)
                    .and_then(|bucket| bucket.version(k, VersionRef::Lsn(o.lsn)))
                    .is_some_and(|now| Arc::ptr_eq(now, o))
            })
            .collect();
        let current_parts: Vec<&(String, u32, Arc<MultipartPart>)> = found
            .parts
            .iter()
            .filter(|(id, n, p)| {
                self.uploads
                    .get(id)
                    .and_then(|u| u.parts.get(n))
                    .is_some_and(|now| Arc::ptr_eq(now, p))
            })
            .collect();
        let mut counted: HashMap<Location, u32> = HashMap::new();
        let chunks = current_objects
            .iter()
            .flat_map(|(_, _, o)| o.chunks.iter())
            .chain(current_parts.iter().flat_map(|(_, _, p)| p.chunks.iter()));
        for chunk in chunks {
            *counted.entry(chunk.location).or_insert(0) += 1;
        }
        let mut segments = victims.clone();
        let unsettled: BTreeSet<u32> = moved
            .keys()
            .filter(|l| counted.get(l).copied().unwrap_or(0) != space.references(l))
            .map(|l| l.segment)
            .chain(segments.iter().copied().filter(|s| space.is_pinned(*s)))
            .collect();
        segments.retain(|s| !unsettled.contains(s));
        // Every referenced record of a moved segment must have a new place.
        let has_place: HashSet<(u32, u32)> = moved.keys().map(|l| (l.segment, l.offset)).collect();
        segments.retain(|s| {
            space
                .live_offsets(*s)
                .iter()
                .all(|offset| has_place.contains(&(*s, *offset)))
        });
        let remap = |chunks: &mut Vec<ChunkRef>| {
            for chunk in chunks.iter_mut() {
                if segments.contains(&chunk.location.segment) {
                    if let Some(to) = moved.get(&chunk.location) {
                        chunk.location = *to;
                    }
                }
            }
        };
        for (b, k, o) in current_objects {
            if let Some(entry) = self.entry_mut(b, k, o.lsn) {
                remap(&mut Arc::make_mut(entry).chunks);
            }
        }
        for (id, n, _) in current_parts {
            if let Some(part) = self
                .uploads
                .get_mut(id)
                .and_then(|u| Arc::make_mut(u).parts.get_mut(n))
            {
                remap(&mut Arc::make_mut(part).chunks);
            }
        }
        for (from, to) in moved {
            if segments.contains(&from.segment) {
                space.relocate(*from, *to);
            }
        }
        segments
    }
}

#[cfg(test)]
#[path = "index_tests.rs"]
mod tests;
