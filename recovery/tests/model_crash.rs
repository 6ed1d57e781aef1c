//! Model-based crash test: random bucket, versioning, object lock, object,
//! copy, delete (of the current version or of one), tag, legal hold,
//! conditional put, multipart and compaction operations run against a
//! simple model on the fault-injecting device, which loses power after a
//! random number of device operations (unsynced writes dropped, kept or
//! torn), so crashes land inside compaction rounds too. Bodies come from a
//! few seeds, so chunks repeat and dedup shares them.
//!
//! While running, every outcome must be the model's: an operation the store
//! refuses (a failed condition, a locked version, a bucket state) is one
//! the model refuses too, for the same reason. After recovery the store
//! must equal the model of the acknowledged operations (the one in flight
//! at the crash may have happened or not, never partly): every version
//! with its bytes, tags and locks, nothing acknowledged lost, nothing
//! deleted back, a locked version never gone, and reference counts equal a
//! recount.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use common::*;
use lsm::{
    Condition, ETagMatch, LockMode, ObjectMeta, Retention, VersionChange, VersionRef,
    VersioningState,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    CreateBucket {
        bucket: u8,
        lock: bool,
    },
    DeleteBucket(u8),
    Versioning {
        bucket: u8,
        enabled: bool,
    },
    EnableLock(u8),
    Put {
        bucket: u8,
        key: u8,
        content: u8,
        len: usize,
        /// 0 none, 1 If-None-Match *, 2 If-Match the current ETag, 3 If-Match another.
        condition: u8,
        /// 0 none, 1 GOVERNANCE, 2 COMPLIANCE (both until tomorrow), 3 an expired one, 4 legal hold.
        lock: u8,
    },
    Copy {
        bucket: u8,
        key: u8,
        to: u8,
    },
    Delete {
        bucket: u8,
        key: u8,
        /// None: the current version; Some(i): the i-th version (mod count).
        version: Option<u8>,
        bypass: bool,
    },
    Tag {
        bucket: u8,
        key: u8,
        version: Option<u8>,
        tags: u8,
    },
    Hold {
        bucket: u8,
        key: u8,
        version: Option<u8>,
        on: bool,
    },
    UploadCreate {
        bucket: u8,
        key: u8,
    },
    UploadPart {
        upload: u8,
        part: u8,
        len: usize,
    },
    UploadComplete {
        upload: u8,
    },
    UploadAbort {
        upload: u8,
    },
    Checkpoint,
    Compact,
    /// Puts a user (replacing it whole) with one access key.
    User {
        user: u8,
        enabled: bool,
        key: u8,
    },
    RemoveUser(u8),
    /// A bucket policy (None removes it).
    BucketPolicy {
        bucket: u8,
        policy: Option<u8>,
    },
    /// A public-read ACL, or none.
    BucketAcl {
        bucket: u8,
        public: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let version = proptest::option::weighted(0.5, 0..4u8);
    prop_oneof![
        2 => (0..3u8, any::<bool>()).prop_map(|(bucket, lock)| Op::CreateBucket { bucket, lock: lock && bucket == 2 }),
        1 => (0..3u8).prop_map(Op::DeleteBucket),
        2 => (0..3u8, prop::bool::weighted(0.7)).prop_map(|(bucket, enabled)| Op::Versioning { bucket, enabled }),
        1 => (0..3u8).prop_map(Op::EnableLock),
        8 => (0..3u8, 0..5u8, 0..3u8, prop_oneof![0..200usize, 1000..20000usize, Just(150_000usize)], prop_oneof![4 => Just(0u8), 1 => 1..4u8], prop_oneof![6 => Just(0u8), 1 => 1..5u8])
            .prop_map(|(bucket, key, content, len, condition, lock)| Op::Put { bucket, key, content, len, condition, lock }),
        1 => (0..3u8, 0..5u8, 0..5u8).prop_map(|(bucket, key, to)| Op::Copy { bucket, key, to }),
        3 => (0..3u8, 0..5u8, version.clone(), any::<bool>()).prop_map(|(bucket, key, version, bypass)| Op::Delete { bucket, key, version, bypass }),
        1 => (0..3u8, 0..5u8, version.clone(), 0..3u8).prop_map(|(bucket, key, version, tags)| Op::Tag { bucket, key, version, tags }),
        1 => (0..3u8, 0..5u8, version, any::<bool>()).prop_map(|(bucket, key, version, on)| Op::Hold { bucket, key, version, on }),
        1 => (0..3u8, 0..5u8).prop_map(|(bucket, key)| Op::UploadCreate { bucket, key }),
        2 => (0..4u8, 1..4u8, 1000..9000usize).prop_map(|(upload, part, len)| Op::UploadPart { upload, part, len }),
        1 => (0..4u8).prop_map(|upload| Op::UploadComplete { upload }),
        1 => (0..4u8).prop_map(|upload| Op::UploadAbort { upload }),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Compact),
        1 => (0..3u8, any::<bool>(), 0..3u8).prop_map(|(user, enabled, key)| Op::User { user, enabled, key }),
        1 => (0..3u8).prop_map(Op::RemoveUser),
        1 => (0..3u8, proptest::option::of(0..3u8)).prop_map(|(bucket, policy)| Op::BucketPolicy { bucket, policy }),
        1 => (0..3u8, any::<bool>()).prop_map(|(bucket, public)| Op::BucketAcl { bucket, public }),
    ]
}

/// One version in the model: an object (its bytes) or a delete marker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    /// Its id (lsn); `None` for the version the op in flight would make,
    /// whose id the model never learned.
    id: Option<u64>,
    null: bool,
    data: Option<Vec<u8>>,
    /// The body's MD5, a completed upload's MD5 of its parts' MD5s and
    /// part count, a copy's source's; empty for a delete marker.
    etag: String,
    tags: Vec<(String, String)>,
    retention: Option<Retention>,
    legal_hold: bool,
    upload: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Bucket {
    versioning: VersioningState,
    locked: bool,
    policy: Option<String>,
    public: bool,
    /// key -> versions, newest first.
    keys: BTreeMap<String, Vec<Version>>,
}

/// An open upload in the model: bucket, key, part number -> bytes.
type ModelUpload = (String, String, BTreeMap<u32, Vec<u8>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    buckets: BTreeMap<String, Bucket>,
    uploads: BTreeMap<String, ModelUpload>,
    /// name -> (enabled, its one access key).
    users: BTreeMap<String, (bool, String)>,
}

fn bucket_name(b: u8) -> String {
    format!("bucket-{b}")
}

fn key_name(k: u8) -> String {
    format!("dir/key-{k}")
}

fn etag_of(data: &[u8]) -> String {
    hex::encode(md5_of(data))
}

/// What a request of the test names: the version at an index (mod the
/// count), or one that never existed.
fn pick(versions: Option<&Vec<Version>>, index: Option<u8>) -> VersionRef {
    match (index, versions) {
        (None, _) => VersionRef::Current,
        (Some(i), Some(v)) if !v.is_empty() => {
            let chosen = &v[i as usize % v.len()];
            match chosen.id {
                Some(id) => VersionRef::Lsn(id),
                None => VersionRef::Null,
            }
        }
        (Some(_), _) => VersionRef::Lsn(u64::MAX / 2),
    }
}

fn locked(v: &Version, bypass: bool, now_ms: u64) -> bool {
    v.legal_hold
        || v.retention
            .is_some_and(|r| r.until_ms > now_ms && (r.mode == LockMode::Compliance || !bypass))
}

fn find(versions: &[Version], version: VersionRef) -> Option<usize> {
    match version {
        VersionRef::Current => (!versions.is_empty()).then_some(0),
        VersionRef::Null => versions.iter().position(|v| v.null),
        VersionRef::Lsn(lsn) => versions.iter().position(|v| v.id == Some(lsn)),
    }
}

type Refusal = &'static str;

impl Model {
    fn bucket(&mut self, b: &str) -> Result<&mut Bucket, Refusal> {
        self.buckets.get_mut(b).ok_or("NoSuchBucket")
    }

    /// A new version of a key, as `Index::apply` makes it.
    fn put(
        &mut self,
        b: &str,
        key: &str,
        condition: &Condition,
        mut v: Version,
    ) -> Result<(), Refusal> {
        let now = lsm::now_ms();
        let bucket = self.bucket(b)?;
        let versions = bucket.keys.entry(key.to_string()).or_default();
        let live = versions.first().filter(|v| v.data.is_some());
        match (condition, live) {
            (Condition::IfMatch(_), None) => return Err("NoSuchKey"),
            (Condition::IfMatch(ETagMatch::Is(e)), Some(cur)) if *e != cur.etag => {
                return Err("PreconditionFailed")
            }
            (Condition::IfNoneMatch(_), Some(_)) => return Err("PreconditionFailed"),
            _ => {}
        }
        v.null = bucket.versioning != VersioningState::Enabled;
        if v.null {
            if let Some(at) = find(versions, VersionRef::Null) {
                if locked(&versions[at], false, now) {
                    return Err("Locked");
                }
                versions.remove(at);
            }
        }
        versions.insert(0, v);
        Ok(())
    }

    fn delete(
        &mut self,
        b: &str,
        key: &str,
        version: VersionRef,
        bypass: bool,
    ) -> Result<(), Refusal> {
        let now = lsm::now_ms();
        let bucket = self.bucket(b)?;
        let versioning = bucket.versioning;
        let versions = bucket.keys.entry(key.to_string()).or_default();
        let marker = |null| Version {
            id: None,
            null,
            data: None,
            etag: String::new(),
            tags: vec![],
            retention: None,
            legal_hold: false,
            upload: None,
        };
        let result = match (version, versioning) {
            (VersionRef::Current, VersioningState::Enabled) => {
                versions.insert(0, marker(false));
                Ok(())
            }
            (VersionRef::Current, VersioningState::Suspended) => {
                match find(versions, VersionRef::Null) {
                    Some(at) if locked(&versions[at], bypass, now) => Err("Locked"),
                    found => {
                        if let Some(at) = found {
                            versions.remove(at);
                        }
                        versions.insert(0, marker(true));
                        Ok(())
                    }
                }
            }
            _ => match find(versions, version) {
                Some(at) if locked(&versions[at], bypass, now) => Err("Locked"),
                Some(at) => {
                    versions.remove(at);
                    Ok(())
                }
                None => Ok(()),
            },
        };
        bucket.keys.retain(|_, v| !v.is_empty());
        result
    }

    fn update(
        &mut self,
        b: &str,
        key: &str,
        version: VersionRef,
        change: impl FnOnce(&mut Version),
    ) -> Result<(), Refusal> {
        let bucket = self.bucket(b)?;
        let missing = if version == VersionRef::Current {
            "NoSuchKey"
        } else {
            "NoSuchVersion"
        };
        let versions = bucket.keys.get_mut(key).ok_or(missing)?;
        let at = find(versions, version).ok_or(missing)?;
        let v = &mut versions[at];
        if v.data.is_none() {
            return Err("DeleteMarker");
        }
        change(v);
        Ok(())
    }
}

fn refusal(e: &lsm::Error) -> Refusal {
    match e {
        lsm::Error::NoSuchBucket => "NoSuchBucket",
        lsm::Error::BucketExists => "BucketExists",
        lsm::Error::BucketNotEmpty => "BucketNotEmpty",
        lsm::Error::NoSuchKey => "NoSuchKey",
        lsm::Error::NoSuchVersion => "NoSuchVersion",
        lsm::Error::DeleteMarker { .. } => "DeleteMarker",
        lsm::Error::NoSuchUpload => "NoSuchUpload",
        lsm::Error::PreconditionFailed => "PreconditionFailed",
        lsm::Error::Locked(_) => "Locked",
        lsm::Error::InvalidBucketState(_) => "InvalidBucketState",
        lsm::Error::InvalidPart(_) => "InvalidPart",
        _ => "other",
    }
}

fn version_meta(v: &Version) -> ObjectMeta {
    let mut meta = ObjectMeta::default();
    meta.set_tags(v.tags.clone());
    meta.set_retention(v.retention);
    meta.set_legal_hold(v.legal_hold);
    meta
}

fn object(data: Vec<u8>) -> Version {
    Version {
        id: None,
        null: false,
        etag: etag_of(&data),
        data: Some(data),
        tags: vec![],
        retention: None,
        legal_hold: false,
        upload: None,
    }
}

/// Runs one op on the store and on the model, and checks they agree.
/// Returns Err with the model as it would be had the op completed when the
/// device lost power (the op's outcome is unknown).
async fn run(
    store: &lsm::Store,
    model: &mut Model,
    upload_ids: &mut Vec<(String, String, String)>,
    op: &Op,
    seed: u64,
) -> Result<(), Model> {
    let mut after = model.clone();
    let tomorrow = lsm::now_ms() + 86_400_000;
    // The store's answer: the id of the version it made, if any.
    let (expected, result): (Result<(), Refusal>, lsm::Result<Option<u64>>) = match op {
        Op::CreateBucket { bucket, lock } => {
            let b = bucket_name(*bucket);
            let expected = match after.buckets.contains_key(&b) {
                true => Err("BucketExists"),
                false => {
                    after.buckets.insert(
                        b.clone(),
                        Bucket {
                            versioning: if *lock {
                                VersioningState::Enabled
                            } else {
                                VersioningState::Unversioned
                            },
                            locked: *lock,
                            keys: BTreeMap::new(),
                            ..Bucket::default()
                        },
                    );
                    Ok(())
                }
            };
            (
                expected,
                store.create_bucket(&b, *lock).await.map(|()| None),
            )
        }
        Op::DeleteBucket(bucket) => {
            let b = bucket_name(*bucket);
            let expected = match after.buckets.get(&b) {
                None => Err("NoSuchBucket"),
                Some(bucket) if !bucket.keys.is_empty() => Err("BucketNotEmpty"),
                Some(_) => {
                    after.buckets.remove(&b);
                    // Open uploads go with their bucket.
                    after.uploads.retain(|_, u| u.0 != b);
                    Ok(())
                }
            };
            (expected, store.delete_bucket(&b).await.map(|()| None))
        }
        Op::Versioning { bucket, enabled } => {
            let b = bucket_name(*bucket);
            let state = if *enabled {
                VersioningState::Enabled
            } else {
                VersioningState::Suspended
            };
            let expected = after.bucket(&b).and_then(|bucket| {
                if bucket.locked && !enabled {
                    return Err("InvalidBucketState");
                }
                bucket.versioning = state;
                Ok(())
            });
            let result = store
                .configure_bucket(&b, lsm::BucketSetting::Versioning(state))
                .await;
            (expected, result.map(|()| None))
        }
        Op::EnableLock(bucket) => {
            let b = bucket_name(*bucket);
            let expected = after.bucket(&b).and_then(|bucket| {
                if bucket.versioning != VersioningState::Enabled {
                    return Err("InvalidBucketState");
                }
                bucket.locked = true;
                Ok(())
            });
            let result = store
                .configure_bucket(&b, lsm::BucketSetting::ObjectLock(Default::default()))
                .await;
            (expected, result.map(|()| None))
        }
        Op::Put {
            bucket,
            key,
            content,
            len,
            condition,
            lock,
        } => {
            let (b, k) = (bucket_name(*bucket), key_name(*key));
            // Bodies of one content seed share their prefix: chunks repeat.
            let data = body(*content as u64, *len);
            let current_etag = after
                .buckets
                .get(&b)
                .and_then(|bucket| bucket.keys.get(&k))
                .and_then(|v| v.first())
                .filter(|v| v.data.is_some())
                .map(|v| v.etag.clone());
            let condition = match condition {
                1 => Condition::IfNoneMatch(ETagMatch::Any),
                2 => Condition::IfMatch(ETagMatch::Is(current_etag.unwrap_or_default())),
                3 => Condition::IfMatch(ETagMatch::Is("not-the-etag".into())),
                _ => Condition::Always,
            };
            let mut version = object(data.clone());
            match lock {
                1 => {
                    version.retention = Some(Retention {
                        mode: LockMode::Governance,
                        until_ms: tomorrow,
                    })
                }
                2 => {
                    version.retention = Some(Retention {
                        mode: LockMode::Compliance,
                        until_ms: tomorrow,
                    })
                }
                3 => {
                    version.retention = Some(Retention {
                        mode: LockMode::Compliance,
                        until_ms: 1,
                    })
                }
                4 => version.legal_hold = true,
                _ => {}
            }
            let meta = ObjectMeta {
                etag: etag_of(&data),
                ..version_meta(&version)
            };
            let expected = after.put(&b, &k, &condition, version);
            let result = async {
                let mut writer = store.object_writer();
                for piece in data.chunks(3000) {
                    writer.write(piece).await?;
                }
                let written = writer.finish().await?;
                store.put_object(&b, &k, meta, written, condition).await
            }
            .await;
            (expected, result.map(|e| Some(e.lsn)))
        }
        Op::Copy { bucket, key, to } => {
            let (b, k, t) = (bucket_name(*bucket), key_name(*key), key_name(*to));
            let source = match after.buckets.get(&b) {
                None => Err("NoSuchBucket"),
                Some(bucket) => match bucket.keys.get(&k).and_then(|v| v.first()) {
                    None => Err("NoSuchKey"),
                    Some(Version { data: None, .. }) => Err("DeleteMarker"),
                    Some(v @ Version { data: Some(d), .. }) => Ok((d.clone(), v.etag.clone())),
                },
            };
            // A copy keeps its source's ETag (a multipart one included).
            let expected = source.and_then(|(data, etag)| {
                after.put(
                    &b,
                    &t,
                    &Condition::Always,
                    Version {
                        etag,
                        ..object(data)
                    },
                )
            });
            let result = match store.object(&b, &k) {
                Ok(source) => store
                    .copy_object(&source, &b, &t, Default::default(), Condition::Always)
                    .await
                    .map(|e| Some(e.lsn)),
                Err(e) => Err(e),
            };
            (expected, result)
        }
        Op::Delete {
            bucket,
            key,
            version,
            bypass,
        } => {
            let (b, k) = (bucket_name(*bucket), key_name(*key));
            let target = pick(after.buckets.get(&b).and_then(|x| x.keys.get(&k)), *version);
            let expected = after.delete(&b, &k, target, *bypass);
            let result = store
                .delete(&b, &k, target, *bypass, Default::default())
                .await
                .map(|e| {
                    e.filter(|e| e.delete_marker && target == VersionRef::Current)
                        .map(|e| e.lsn)
                });
            (expected, result)
        }
        Op::Tag {
            bucket,
            key,
            version,
            tags,
        } => {
            let (b, k) = (bucket_name(*bucket), key_name(*key));
            let target = pick(after.buckets.get(&b).and_then(|x| x.keys.get(&k)), *version);
            let tags: Vec<(String, String)> = (0..*tags)
                .map(|i| (format!("t{i}"), format!("v{seed}")))
                .collect();
            let expected = after.update(&b, &k, target, |v| v.tags = tags.clone());
            let result = store
                .update_version(&b, &k, target, VersionChange::Tags(tags))
                .await;
            (expected, result.map(|_| None))
        }
        Op::Hold {
            bucket,
            key,
            version,
            on,
        } => {
            let (b, k) = (bucket_name(*bucket), key_name(*key));
            let target = pick(after.buckets.get(&b).and_then(|x| x.keys.get(&k)), *version);
            let expected = after.update(&b, &k, target, |v| v.legal_hold = *on);
            let result = store
                .update_version(&b, &k, target, VersionChange::LegalHold(*on))
                .await;
            (expected, result.map(|_| None))
        }
        Op::UploadCreate { bucket, key } => {
            let (b, k) = (bucket_name(*bucket), key_name(*key));
            let expected = match after.buckets.contains_key(&b) {
                true => Ok(()),
                false => Err("NoSuchBucket"),
            };
            let result = store
                .create_upload(&b, &k, Default::default())
                .await
                .map(|id| {
                    after
                        .uploads
                        .insert(id.clone(), (b.clone(), k.clone(), BTreeMap::new()));
                    upload_ids.push((id, b.clone(), k.clone()));
                    None
                });
            (expected, result)
        }
        Op::UploadPart { upload, part, len } => {
            let Some((id, _, _)) = upload_ids.get(*upload as usize).cloned() else {
                return Ok(());
            };
            let data = body(seed, *len);
            let expected = match after.uploads.get_mut(&id) {
                Some((_, _, parts)) => {
                    parts.insert(*part as u32, data.clone());
                    Ok(())
                }
                None => Err("NoSuchUpload"),
            };
            let result = async {
                let mut writer = store.object_writer();
                writer.write(&data).await?;
                let written = writer.finish().await?;
                store
                    .put_part(&id, *part as u32, written, etag_of(&data), vec![])
                    .await
            }
            .await;
            (expected, result.map(|_| None))
        }
        Op::UploadComplete { upload } => {
            let Some((id, b, k)) = upload_ids.get(*upload as usize).cloned() else {
                return Ok(());
            };
            let listed: Vec<(u32, String)> = match store.upload(&id) {
                Ok(u) => u
                    .parts
                    .values()
                    .map(|p| (p.part_number, p.etag.clone()))
                    .collect(),
                Err(_) => vec![(1, "none".into())],
            };
            let expected = match after.uploads.remove(&id) {
                Some((_, _, parts)) if parts.is_empty() => Err("InvalidPart"),
                Some((b, k, parts)) => {
                    let whole: Vec<u8> = parts.values().flatten().copied().collect();
                    let md5s: Vec<u8> = parts.values().flat_map(|p| md5_of(p)).collect();
                    let version = Version {
                        upload: Some(id.clone()),
                        etag: format!("{}-{}", etag_of(&md5s), parts.len()),
                        ..object(whole)
                    };
                    after.put(&b, &k, &Condition::Always, version)
                }
                // Completed before: answered from its version while that
                // is current, and nothing changes.
                None => {
                    let current = after
                        .buckets
                        .get(&b)
                        .and_then(|x| x.keys.get(&k))
                        .and_then(|v| v.first());
                    match current {
                        Some(v) if v.data.is_some() && v.upload.as_deref() == Some(id.as_str()) => {
                            Ok(())
                        }
                        _ if !after.buckets.contains_key(&b) => Err("NoSuchBucket"),
                        _ => Err("NoSuchUpload"),
                    }
                }
            };
            let result = store
                .complete_upload(&b, &k, &id, &listed, Condition::Always, vec![])
                .await
                .map(|e| Some(e.lsn));
            (expected, result)
        }
        Op::UploadAbort { upload } => {
            let Some((id, _, _)) = upload_ids.get(*upload as usize).cloned() else {
                return Ok(());
            };
            let expected = match after.uploads.remove(&id) {
                Some(_) => Ok(()),
                None => Err("NoSuchUpload"),
            };
            (expected, store.abort_upload(&id).await.map(|()| None))
        }
        Op::Checkpoint => (Ok(()), store.checkpoint().await.map(|_| None)),
        Op::Compact => {
            let policy = lsm::CompactionPolicy {
                max_live_ratio: 1.0,
                max_victims_per_round: 4,
                rate_bytes_per_s: None,
            };
            (Ok(()), store.compact_round(&policy).await.map(|_| None))
        }
        Op::User { user, enabled, key } => {
            let name = format!("user-{user}");
            let access_key = format!("AK{user}{key}");
            after
                .users
                .insert(name.clone(), (*enabled, access_key.clone()));
            let change = lsm::format::IamChange::User(lsm::format::User {
                account: lsm::format::FIRST_ACCOUNT_ID.into(),
                name,
                enabled: *enabled,
                policies: vec!["readwrite".into()],
                keys: vec![lsm::format::AccessKey {
                    access_key,
                    sealed_secret: vec![*user, *key],
                    enabled: *enabled,
                    created_ms: 1,
                }],
                created_ms: 1,
            });
            (Ok(()), store.change_iam(change).await.map(|()| None))
        }
        Op::RemoveUser(user) => {
            let name = format!("user-{user}");
            after.users.remove(&name);
            let change = lsm::format::IamChange::UserRemove {
                account: lsm::format::FIRST_ACCOUNT_ID.into(),
                name,
            };
            (Ok(()), store.change_iam(change).await.map(|()| None))
        }
        Op::BucketPolicy { bucket, policy } => {
            let b = bucket_name(*bucket);
            let policy = policy.map(|p| format!("{{\"policy\": {p}}}"));
            let expected = after.bucket(&b).map(|bucket| {
                bucket.policy = policy.clone();
            });
            let result = store
                .configure_bucket(&b, lsm::BucketSetting::Policy(policy))
                .await;
            (expected, result.map(|()| None))
        }
        Op::BucketAcl { bucket, public } => {
            let b = bucket_name(*bucket);
            let expected = after.bucket(&b).map(|bucket| {
                bucket.public = *public;
            });
            let grants = match public {
                true => vec![lsm::format::Grant {
                    grantee: lsm::format::Grantee::AllUsers,
                    permission: lsm::format::Permission::Read,
                }],
                false => Vec::new(),
            };
            let result = store
                .configure_bucket(&b, lsm::BucketSetting::Acl(grants))
                .await;
            (expected, result.map(|()| None))
        }
    };
    if expected.is_err() {
        after = model.clone();
    }
    match result {
        Ok(id) => {
            assert!(
                expected.is_ok(),
                "store did {op:?}, the model refuses it: {expected:?}"
            );
            learn_id(&mut after, op, id);
            *model = after;
            Ok(())
        }
        // Power is gone: the op's outcome is unknown.
        Err(lsm::Error::Failed(_)) | Err(lsm::Error::ShuttingDown) | Err(lsm::Error::Device(_)) => {
            Err(after)
        }
        // A refused op changes nothing, and the model refuses it for the
        // same reason.
        Err(e) => {
            assert_eq!(
                Err(refusal(&e)),
                expected,
                "{op:?}: the store refused with {e:?}"
            );
            Ok(())
        }
    }
}

/// Gives the version the op made its id, now that the store told it; an
/// op that made none (a repeated Complete) answered with one that exists.
fn learn_id(model: &mut Model, op: &Op, id: Option<u64>) {
    let Some(id) = id else { return };
    let mut versions = model
        .buckets
        .values_mut()
        .flat_map(|b| b.keys.values_mut().flatten());
    if let Some(unnamed) = versions.find(|v| v.id.is_none()) {
        unnamed.id = Some(id);
        return;
    }
    let known = model
        .buckets
        .values()
        .flat_map(|b| b.keys.values().flatten())
        .any(|v| v.id == Some(id));
    assert!(
        known,
        "{op:?} answered with version {id}, which the model does not have"
    );
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

/// The recovered store as a model.
fn observe(store: &lsm::Store) -> Model {
    let mut model = Model::default();
    for bucket in store.list_buckets() {
        let config = store.bucket_config(&bucket.name).unwrap();
        let page = store
            .list_versions(
                &bucket.name,
                &lsm::VersionQuery {
                    max_keys: usize::MAX,
                    ..Default::default()
                },
            )
            .unwrap();
        let mut keys: BTreeMap<String, Vec<Version>> = BTreeMap::new();
        for listed in page.versions {
            let e = &listed.entry;
            let data = (!e.delete_marker).then(|| {
                let mut bytes = Vec::with_capacity(e.meta.size as usize);
                for chunk in &e.chunks {
                    bytes.extend(store.read_chunk(chunk, None).expect("version unreadable"));
                }
                bytes
            });
            keys.entry(listed.key.clone()).or_default().push(Version {
                id: Some(e.lsn),
                null: e.null_version,
                etag: match e.delete_marker {
                    true => String::new(),
                    false => e.meta.etag.clone(),
                },
                data,
                tags: e.meta.tags().to_vec(),
                retention: e.meta.retention(),
                legal_hold: e.meta.legal_hold(),
                upload: e.meta.upload_id().map(str::to_string),
            });
        }
        for upload in store.list_uploads(&bucket.name, "").unwrap() {
            let mut parts = BTreeMap::new();
            for (number, part) in &upload.parts {
                let mut bytes = Vec::new();
                for chunk in &part.chunks {
                    bytes.extend(store.read_chunk(chunk, None).unwrap());
                }
                parts.insert(*number, bytes);
            }
            model.uploads.insert(
                upload.create.upload_id.clone(),
                (
                    upload.create.bucket.clone(),
                    upload.create.key.clone(),
                    parts,
                ),
            );
        }
        model.buckets.insert(
            bucket.name,
            Bucket {
                versioning: config.versioning,
                locked: config.object_lock.is_some(),
                policy: config.policy.as_deref().map(str::to_string),
                public: config.acl.as_ref().is_some_and(|g| !g.is_empty()),
                keys,
            },
        );
    }
    store.with_iam(|iam| {
        for user in iam.users(lsm::format::FIRST_ACCOUNT_ID) {
            let key = &user.keys[0];
            // The lookup by access key agrees with the user it names.
            let (holder, found) = iam.key(&key.access_key).expect("key lookup");
            assert_eq!(
                holder,
                lsm::KeyHolder::User {
                    account: user.account.clone(),
                    name: user.name.clone()
                }
            );
            assert_eq!(found.enabled, user.enabled);
            model
                .users
                .insert(user.name.clone(), (user.enabled, key.access_key.clone()));
        }
    });
    model
}

/// `expected`, with the id of a version made by the op in flight (unknown
/// to the model) taken from `observed` where everything else agrees.
fn with_observed_ids(expected: &Model, observed: &Model) -> Model {
    let mut out = expected.clone();
    for (name, bucket) in out.buckets.iter_mut() {
        for (key, versions) in bucket.keys.iter_mut() {
            let seen = observed.buckets.get(name).and_then(|b| b.keys.get(key));
            for (i, v) in versions.iter_mut().enumerate() {
                if v.id.is_none() {
                    v.id = seen.and_then(|s| s.get(i)).and_then(|s| s.id);
                }
            }
        }
    }
    out
}

fn check(ops: Vec<Op>, crash_after: u64, seed: u64) {
    let rt = runtime();
    let dev = formatted_late_for_odd_seeds(48 << 20, seed);
    dev.set_crash_after_ops(Some(crash_after));
    let (store, _) = open(dev.clone());
    let mut model = Model::default();
    let mut upload_ids = Vec::new();
    let mut in_flight: Option<Model> = None;
    let mut crashed_op = None;
    for (i, op) in ops.iter().enumerate() {
        if let Err(if_done) = rt.block_on(run(
            &store,
            &mut model,
            &mut upload_ids,
            op,
            seed ^ i as u64,
        )) {
            in_flight = Some(if_done);
            crashed_op = Some(op.clone());
            break;
        }
    }
    // The crash point can also fall just after the last acknowledged
    // operation (its final write, or background work): then the live store
    // cannot be read back, and only recovery is checked.
    if crashed_op.is_none() && !dev.crashed() {
        assert_eq!(store.space_recount(), Vec::<String>::new());
        assert_eq!(
            summary(&observe(&store)),
            summary(&model),
            "live state differs from the model"
        );
    }
    store.shutdown();
    drop(store);

    let image = dev.crash_image();
    let dev2: Arc<dyn BlockDevice> =
        Arc::new(FaultyDevice::from_image(image, FaultConfig::default()));
    let (recovered, report) = open(dev2.clone());
    assert_eq!(recovered.space_recount(), Vec::<String>::new());
    let observed = observe(&recovered);
    let mut seen = observed.clone();
    // An upload created by the op in flight has an id the model never
    // learned; it may exist (empty) or not.
    if let Some(Op::UploadCreate { bucket, key }) = crashed_op {
        seen.uploads.retain(|id, (b, k, parts)| {
            model.uploads.contains_key(id)
                || !(*b == bucket_name(bucket) && *k == key_name(key) && parts.is_empty())
        });
    }
    let ok = seen == model
        || in_flight
            .as_ref()
            .is_some_and(|m| seen == with_observed_ids(m, &seen));
    assert!(
        ok,
        "recovered state differs\nacknowledged: {:?}\nin flight: {:?}\nrecovered: {:?}\nreport: {report:?}",
        summary(&model),
        in_flight.as_ref().map(summary),
        summary(&seen)
    );
    // Recovery must be repeatable, and the store writable afterwards.
    rt.block_on(recovered.create_bucket("after-crash", false))
        .unwrap();
    recovered.shutdown();
    drop(recovered);
    let (again, _) = open(dev2);
    let mut expected = observed;
    expected
        .buckets
        .insert("after-crash".into(), Bucket::default());
    assert_eq!(summary(&observe(&again)), summary(&expected));
}

fn summary(m: &Model) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (b, bucket) in &m.buckets {
        out.push(format!(
            "bucket {b} {:?} locked {} policy {:?} public {}",
            bucket.versioning, bucket.locked, bucket.policy, bucket.public
        ));
        for (k, versions) in &bucket.keys {
            for v in versions {
                let what = match &v.data {
                    Some(d) => format!("{} bytes, hash {}", d.len(), blake3::hash(d)),
                    None => "delete marker".into(),
                };
                out.push(format!(
                    "{b}/{k} {:?}{}: {what} tags {:?} retention {:?} hold {} upload {:?}",
                    v.id,
                    if v.null { " null" } else { "" },
                    v.tags,
                    v.retention,
                    v.legal_hold,
                    v.upload
                ));
            }
        }
    }
    let uploads: BTreeSet<String> = m
        .uploads
        .iter()
        .map(|(id, (b, k, parts))| {
            format!(
                "upload {id} {b}/{k} parts {:?}",
                parts.keys().collect::<Vec<_>>()
            )
        })
        .collect();
    out.extend(uploads);
    out.extend(
        m.users
            .iter()
            .map(|(name, (enabled, key))| format!("user {name} enabled {enabled} key {key}")),
    );
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn recovery_equals_acknowledged_operations(
        ops in proptest::collection::vec(op(), 1..80),
        crash_after in 1u64..3000,
        seed in any::<u64>(),
    ) {
        check(ops, crash_after, seed);
    }
}

/// Without a crash, every operation is acknowledged and recovery (with and
/// without the checkpoint) equals the model exactly.
#[test]
fn clean_restart_with_and_without_checkpoint() {
    let rt = runtime();
    let dev = formatted(48 << 20, 1);
    let (store, _) = open(dev.clone());
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        for i in 0..50u64 {
            put(
                &store,
                "b",
                &format!("k{i}"),
                &body(i, (i as usize * 997) % 20000),
            )
            .await
            .unwrap();
        }
        store.checkpoint().await.unwrap();
        for i in 50..80u64 {
            put(&store, "b", &format!("k{i}"), &body(i, 3000))
                .await
                .unwrap();
        }
        store
            .delete(
                "b",
                "k3",
                lsm::VersionRef::Current,
                false,
                Default::default(),
            )
            .await
            .unwrap();
    });
    let expected = observe(&store);
    store.shutdown();
    drop(store);
    let (with_cp, report) = open(dev.clone());
    assert!(report.checkpoint_used, "{report:?}");
    assert_eq!(observe(&with_cp), expected);
    assert_eq!(
        with_cp
            .list_objects(
                "b",
                &lsm::ListQuery {
                    max_keys: 1000,
                    ..Default::default()
                }
            )
            .unwrap()
            .objects
            .len(),
        79
    );
    with_cp.shutdown();
    drop(with_cp);
    let (full, report) = recovery::open(
        dev,
        recovery::OpenOptions {
            ignore_checkpoint: true,
            ..options()
        },
    )
    .unwrap();
    assert!(!report.checkpoint_used);
    assert_eq!(observe(&full), expected);
}

/// Group commit: many concurrent writers, then power loss; every
/// acknowledged object is there with its bytes.
#[test]
fn concurrent_writers_survive_a_crash() {
    let rt = threaded_runtime();
    let dev = formatted_late_for_odd_seeds(64 << 20, 3);
    let (store, _) = open(dev.clone());
    rt.block_on(store.create_bucket("b", false)).unwrap();
    dev.set_crash_after_ops(Some(150));
    let acked: Vec<(String, Vec<u8>)> = rt.block_on(async {
        let mut tasks = Vec::new();
        for i in 0..64u64 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for j in 0..8u64 {
                    let key = format!("w{i}/o{j}");
                    let data = body(i * 100 + j, 500 + (j as usize * 1500));
                    if put(&store, "b", &key, &data).await.is_ok() {
                        acked.push((key, data));
                    }
                }
                acked
            }));
        }
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    assert!(!acked.is_empty());
    let stats = store.stats();
    assert!(
        stats.writer.batches < stats.writer.records,
        "no batching happened: {stats:?}"
    );
    store.shutdown();
    drop(store);
    let dev2 = Arc::new(FaultyDevice::from_image(
        dev.crash_image(),
        FaultConfig::default(),
    ));
    let (recovered, _) = open(dev2);
    for (key, data) in &acked {
        assert_eq!(&read_all(&recovered, "b", key).unwrap(), data, "{key}");
    }
}

/// New chunks are acknowledged once written, before any sync; the batch of
/// the manifest that references them syncs them before it is written. A
/// crash at each device operation of one chunked put, under many mixes of
/// kept, lost and torn unsynced writes, never leaves the object visible
/// with a chunk that did not survive.
#[test]
fn a_manifest_never_outlives_its_chunks() {
    let rt = runtime();
    let data = body(7, 40_000);
    let mut crash_points = 0;
    for crash_after in 1.. {
        let mut completed = false;
        for seed in 0..12u64 {
            let dev = formatted_late_for_odd_seeds(4 << 20, seed);
            let (store, _) = open(dev.clone());
            rt.block_on(store.create_bucket("b", false)).unwrap();
            dev.set_crash_after_ops(Some(crash_after));
            let acknowledged = rt.block_on(put(&store, "b", "k", &data)).is_ok();
            completed |= !dev.crashed();
            store.shutdown();
            drop(store);
            let dev2: Arc<dyn BlockDevice> = Arc::new(FaultyDevice::from_image(
                dev.crash_image(),
                FaultConfig::default(),
            ));
            let (recovered, _) = open(dev2);
            match read_all(&recovered, "b", "k") {
                Ok(read) => assert!(read == data, "crash after {crash_after}, seed {seed}: torn"),
                Err(lsm::Error::NoSuchKey) => assert!(
                    !acknowledged,
                    "crash after {crash_after}, seed {seed}: acknowledged put lost"
                ),
                Err(e) => panic!("crash after {crash_after}, seed {seed}: {e}"),
            }
        }
        if completed {
            break;
        }
        crash_points += 1;
    }
    // Batches of chunks, unsynced, then the manifest's sync, write and sync.
    assert!(crash_points >= 4, "only {crash_points} crash points");
}
