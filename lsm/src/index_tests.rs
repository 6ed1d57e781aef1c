//! `Index::apply`'s decisions: versioning states, delete markers, the null
//! version, conditions, object lock, and the references noncurrent versions
//! keep.

use super::*;
use crate::format::{
    BucketOp, DefaultRetention, LockMode, MultipartAbort, MultipartComplete, ObjectLockConfig,
};

const LOC: Location = Location {
    segment: 0,
    offset: 4096,
    len: 64,
};

struct Log {
    index: Index,
    space: SpaceMap,
    lsn: u64,
}

fn chunk(n: u8) -> ChunkRef {
    ChunkRef {
        location: Location {
            segment: 1,
            offset: 4096 * n as u32,
            len: 100,
        },
        raw_len: 10,
        hash: [n; 32],
    }
}

impl Log {
    fn new() -> Log {
        let mut log = Log {
            index: Index::default(),
            space: SpaceMap::default(),
            lsn: 0,
        };
        log.apply(Record::BucketCreate(BucketCreate {
            bucket: "b".into(),
            at_ms: 0,
            settings: vec![],
        }))
        .unwrap();
        log
    }

    fn apply(&mut self, record: Record) -> Result<Option<Arc<ObjectEntry>>> {
        self.lsn += 1;
        self.index.apply(self.lsn, LOC, &record, &mut self.space)
    }

    fn setting(&mut self, setting: BucketSetting) -> Result<()> {
        self.apply(Record::BucketConfig(BucketConfigChange {
            bucket: "b".into(),
            at_ms: 0,
            setting,
        }))
        .map(|_| ())
    }

    fn put_with(
        &mut self,
        key: &str,
        etag: &str,
        condition: Condition,
        meta: ObjectMeta,
    ) -> Result<u64> {
        let n = (self.lsn % 200) as u8 + 1;
        self.apply(Record::Object(ObjectPut {
            bucket: "b".into(),
            key: key.into(),
            meta: ObjectMeta {
                etag: etag.into(),
                last_modified_ms: 1000,
                ..meta
            },
            chunks: vec![chunk(n)],
            condition,
            inline: vec![],
            inline_flags: 0,
        }))
        .map(|e| e.map_or(0, |e| e.lsn))
    }

    fn put(&mut self, key: &str, etag: &str) -> u64 {
        self.put_with(key, etag, Condition::Always, ObjectMeta::default())
            .unwrap()
    }

    fn delete(
        &mut self,
        key: &str,
        version: VersionRef,
        bypass: bool,
    ) -> Result<Option<Arc<ObjectEntry>>> {
        self.apply(Record::Delete(Delete {
            bucket: "b".into(),
            key: key.into(),
            version,
            at_ms: 2000,
            bypass_governance: bypass,
            condition: DeleteCondition::default(),
        }))
    }

    /// (lsn, null, marker) of a key's versions, newest first.
    fn versions(&self, key: &str) -> Vec<(u64, bool, bool)> {
        self.index
            .versions("b", key)
            .unwrap()
            .iter()
            .map(|e| (e.lsn, e.null_version, e.delete_marker))
            .collect()
    }

    /// `Index::visit_keys` over the whole index (or one bucket), `limit`
    /// keys a call, as `Store::visit_keys` walks it.
    fn visit_in_batches(
        &self,
        only: Option<&str>,
        limit: usize,
        mut visit: impl FnMut(&str, &str, &Versions),
    ) -> Result<()> {
        let mut after = None;
        while let Some(next) = self
            .index
            .visit_keys(only, after.as_ref(), limit, &mut visit)?
        {
            after = Some(next);
        }
        Ok(())
    }

    /// The space map's references, and each bucket's versions and bytes
    /// held, equal what a walk of the index counts.
    fn recount_agrees(&self) {
        assert!(self
            .space
            .differences(&SpaceMap::recount(&self.index))
            .is_empty());
        for (name, bucket) in &self.index.buckets {
            assert_eq!(bucket.held, Held::counted(&bucket.objects), "bucket {name}");
        }
    }
}

#[test]
fn bucket_conditions_are_decided_at_apply() {
    let mut log = Log::new();
    log.put("k", "e");
    let del = Record::BucketDelete(BucketOp {
        bucket: "b".into(),
        at_ms: 0,
    });
    assert!(matches!(log.apply(del.clone()), Err(Error::BucketNotEmpty)));
    log.delete("k", VersionRef::Current, false).unwrap();
    log.apply(del.clone()).unwrap();
    assert!(!log.index.bucket_exists("b"));
    assert!(matches!(
        log.put_with("k", "e", Condition::Always, ObjectMeta::default()),
        Err(Error::NoSuchBucket)
    ));
}

#[test]
fn write_conditions_follow_s3() {
    let mut log = Log::new();
    let is = |e: &str| ETagMatch::Is(e.into());
    let put = |log: &mut Log, c| log.put_with("k", "new", c, ObjectMeta::default());
    assert!(matches!(
        put(&mut log, Condition::IfMatch(ETagMatch::Any)),
        Err(Error::NoSuchKey)
    ));
    assert!(matches!(
        put(&mut log, Condition::IfMatch(is("x"))),
        Err(Error::NoSuchKey)
    ));
    assert!(put(&mut log, Condition::IfNoneMatch(is("x"))).is_ok());
    assert!(matches!(
        put(&mut log, Condition::IfNoneMatch(ETagMatch::Any)),
        Err(Error::PreconditionFailed)
    ));
    assert!(matches!(
        put(&mut log, Condition::IfNoneMatch(is("new"))),
        Err(Error::PreconditionFailed)
    ));
    assert!(matches!(
        put(&mut log, Condition::IfMatch(is("old"))),
        Err(Error::PreconditionFailed)
    ));
    assert!(put(&mut log, Condition::IfMatch(is("new"))).is_ok());
    assert!(put(&mut log, Condition::IfMatch(ETagMatch::Any)).is_ok());
    // A refused write changed nothing.
    assert_eq!(log.versions("k").len(), 1);
    // A delete marker on top counts as no object.
    log.setting(BucketSetting::Versioning(VersioningState::Enabled))
        .unwrap();
    log.delete("k", VersionRef::Current, false).unwrap();
    assert!(matches!(
        put(&mut log, Condition::IfMatch(ETagMatch::Any)),
        Err(Error::NoSuchKey)
    ));
    assert!(put(&mut log, Condition::IfNoneMatch(ETagMatch::Any)).is_ok());
    log.recount_agrees();
}

#[test]
fn versioning_states_decide_what_puts_and_deletes_do() {
    let mut log = Log::new();
    // Unversioned: one null version, replaced; a delete removes it.
    let null1 = log.put("k", "1");
    log.put("k", "2");
    assert_eq!(log.versions("k"), vec![(null1 + 1, true, false)]);
    let null2 = null1 + 1;
    log.setting(BucketSetting::Versioning(VersioningState::Enabled))
        .unwrap();
    // Enabled: versions pile up above the null one; a delete adds a marker.
    let v3 = log.put("k", "3");
    let marker = log
        .delete("k", VersionRef::Current, false)
        .unwrap()
        .unwrap();
    assert!(marker.delete_marker && !marker.null_version);
    assert_eq!(
        log.versions("k"),
        vec![
            (marker.lsn, false, true),
            (v3, false, false),
            (null2, true, false)
        ]
    );
    assert!(matches!(
        log.index.object("b", "k"),
        Err(Error::DeleteMarker { .. })
    ));
    // Removing the marker brings the object back.
    log.delete("k", VersionRef::Lsn(marker.lsn), false).unwrap();
    assert_eq!(log.index.object("b", "k").unwrap().lsn, v3);
    // Suspended: a put replaces the null version wherever it is.
    log.setting(BucketSetting::Versioning(VersioningState::Suspended))
        .unwrap();
    let null3 = log.put("k", "4");
    assert_eq!(
        log.versions("k"),
        vec![(null3, true, false), (v3, false, false)]
    );
    // ... and a delete replaces it with a null marker.
    let null_marker = log
        .delete("k", VersionRef::Current, false)
        .unwrap()
        .unwrap();
    assert!(null_marker.delete_marker && null_marker.null_version);
    assert_eq!(
        log.versions("k"),
        vec![(null_marker.lsn, true, true), (v3, false, false)]
    );
    // Deleting versions that are not there deletes nothing.
    assert!(log
        .delete("k", VersionRef::Lsn(9999), false)
        .unwrap()
        .is_none());
    log.delete("k", VersionRef::Null, false).unwrap();
    log.delete("k", VersionRef::Lsn(v3), false).unwrap();
    assert!(log.versions("k").is_empty());
    assert!(matches!(
        log.setting(BucketSetting::Versioning(VersioningState::Unversioned)),
        Err(Error::InvalidBucketState(_))
    ));
    log.recount_agrees();
}

#[test]
fn noncurrent_versions_keep_their_chunks_referenced() {
    let mut log = Log::new();
    log.setting(BucketSetting::Versioning(VersioningState::Enabled))
        .unwrap();
    let v1 = log.put("k", "1");
    let c1 = log
        .index
        .version("b", "k", VersionRef::Lsn(v1))
        .unwrap()
        .chunks[0];
    log.put("k", "2");
    log.delete("k", VersionRef::Current, false).unwrap();
    assert_eq!(log.space.references(&c1.location), 1);
    log.delete("k", VersionRef::Lsn(v1), false).unwrap();
    assert_eq!(log.space.references(&c1.location), 0);
    log.recount_agrees();
}

fn retained(mode: LockMode, until_ms: u64, legal_hold: bool) -> ObjectMeta {
    let mut meta = ObjectMeta::default();
    meta.set_retention(Some(Retention { mode, until_ms }));
    meta.set_legal_hold(legal_hold);
    meta
}

#[test]
fn locked_versions_survive_deletes_until_their_date() {
    let mut log = Log::new();
    assert!(matches!(
        log.setting(BucketSetting::ObjectLock(ObjectLockConfig::default())),
        Err(Error::InvalidBucketState(_))
    ));
    log.setting(BucketSetting::Versioning(VersioningState::Enabled))
        .unwrap();
    log.setting(BucketSetting::ObjectLock(ObjectLockConfig::default()))
        .unwrap();
    assert!(matches!(
        log.setting(BucketSetting::Versioning(VersioningState::Suspended)),
        Err(Error::InvalidBucketState(_))
    ));
    let gov = log
        .put_with(
            "g",
            "1",
            Condition::Always,
            retained(LockMode::Governance, 5000, false),
        )
        .unwrap();
    let comp = log
        .put_with(
            "c",
            "1",
            Condition::Always,
            retained(LockMode::Compliance, 5000, false),
        )
        .unwrap();
    let held = log
        .put_with(
            "h",
            "1",
            Condition::Always,
            retained(LockMode::Governance, 0, true),
        )
        .unwrap();
    assert!(matches!(
        log.delete("g", VersionRef::Lsn(gov), false),
        Err(Error::Locked(_))
    ));
    assert!(matches!(
        log.delete("c", VersionRef::Lsn(comp), true),
        Err(Error::Locked(_))
    ));
    assert!(matches!(
        log.delete("h", VersionRef::Lsn(held), true),
        Err(Error::Locked(_))
    ));
    // A delete without a version id only adds a marker above it.
    log.delete("c", VersionRef::Current, false).unwrap();
    assert_eq!(log.versions("c").len(), 2);
    log.delete("g", VersionRef::Lsn(gov), true).unwrap();
    assert!(log.versions("g").is_empty());
    // Retention may grow, never shrink under COMPLIANCE.
    let update = |log: &mut Log, until_ms, bypass| {
        log.apply(Record::VersionUpdate(VersionUpdate {
            bucket: "b".into(),
            key: "c".into(),
            version: VersionRef::Lsn(comp),
            at_ms: 2000,
            change: VersionChange::Retention {
                retention: Some(Retention {
                    mode: LockMode::Compliance,
                    until_ms,
                }),
                bypass_governance: bypass,
            },
        }))
    };
    assert!(matches!(
        update(&mut log, 4000, true),
        Err(Error::Locked(_))
    ));
    update(&mut log, 6000, false).unwrap();
    let after = log.index.version("b", "c", VersionRef::Lsn(comp)).unwrap();
    assert_eq!(after.meta.retention().map(|r| r.until_ms), Some(6000));
    // Quarantine keeps a locked version (and its name), dropping its data.
    log.apply(Record::VersionUpdate(VersionUpdate {
        bucket: "b".into(),
        key: "c".into(),
        version: VersionRef::Lsn(comp),
        at_ms: 2000,
        change: VersionChange::Quarantine("damaged".into()),
    }))
    .unwrap();
    let q = log.index.version("b", "c", VersionRef::Lsn(comp)).unwrap();
    assert!(q.chunks.is_empty() && q.meta.quarantined.is_some());
    log.recount_agrees();
}

#[test]
fn default_retention_applies_to_versions_without_their_own() {
    let mut log = Log::new();
    log.setting(BucketSetting::Versioning(VersioningState::Enabled))
        .unwrap();
    log.setting(BucketSetting::ObjectLock(ObjectLockConfig {
        default_retention: Some(DefaultRetention {
            mode: LockMode::Governance,
            days: Some(1),
            years: None,
        }),
    }))
    .unwrap();
    let plain = log.put("k", "1");
    let entry = log.index.version("b", "k", VersionRef::Lsn(plain)).unwrap();
    assert_eq!(
        entry.meta.retention(),
        Some(Retention {
            mode: LockMode::Governance,
            until_ms: 1000 + crate::lifecycle::DAY_MS,
        })
    );
    let own = log
        .put_with(
            "k",
            "2",
            Condition::Always,
            retained(LockMode::Compliance, 7, false),
        )
        .unwrap();
    let entry = log.index.version("b", "k", VersionRef::Lsn(own)).unwrap();
    assert_eq!(
        entry.meta.retention().map(|r| r.mode),
        Some(LockMode::Compliance)
    );
}

#[test]
fn conditional_deletes_and_lifecycle_guard() {
    let mut log = Log::new();
    let v = log.put("k", "e");
    let delete = |log: &mut Log, condition| {
        log.apply(Record::Delete(Delete {
            bucket: "b".into(),
            key: "k".into(),
            version: VersionRef::Current,
            at_ms: 2000,
            bypass_governance: false,
            condition,
        }))
    };
    let etag = |e: &str| DeleteCondition {
        etag: Some(ETagMatch::Is(e.into())),
        ..Default::default()
    };
    assert!(matches!(
        delete(&mut log, etag("x")),
        Err(Error::PreconditionFailed)
    ));
    let guard = |lsn| DeleteCondition {
        current_lsn: Some(lsn),
        ..Default::default()
    };
    assert!(matches!(
        delete(&mut log, guard(v + 100)),
        Err(Error::PreconditionFailed)
    ));
    assert!(delete(&mut log, etag("e")).unwrap().is_some());
    // Nothing there: a conditional delete deletes nothing, and fails not.
    assert!(delete(&mut log, etag("x")).unwrap().is_none());
}

#[test]
fn a_completed_upload_makes_a_version_and_an_aborted_one_lets_go() {
    let mut log = Log::new();
    for id in ["u1", "u2"] {
        log.apply(Record::MultipartCreate(MultipartCreate {
            upload_id: id.into(),
            bucket: "b".into(),
            key: "k".into(),
            meta: ObjectMeta::default(),
            initiated_ms: 0,
        }))
        .unwrap();
        log.apply(Record::MultipartPart(MultipartPart {
            upload_id: id.into(),
            part_number: 1,
            size: 10,
            etag: "p".into(),
            last_modified_ms: 0,
            checksums: vec![],
            chunks: vec![chunk(if id == "u1" { 50 } else { 51 })],
        }))
        .unwrap();
    }
    let made = log
        .apply(Record::MultipartComplete(MultipartComplete {
            upload_id: "u1".into(),
            object: ObjectPut {
                bucket: "b".into(),
                key: "k".into(),
                meta: ObjectMeta::default(),
                chunks: vec![chunk(50)],
                condition: Condition::IfNoneMatch(ETagMatch::Any),
                inline: vec![],
                inline_flags: 0,
            },
        }))
        .unwrap();
    assert!(made.is_some());
    assert!(matches!(log.index.upload("u1"), Err(Error::NoSuchUpload)));
    log.apply(Record::MultipartAbort(MultipartAbort {
        upload_id: "u2".into(),
    }))
    .unwrap();
    assert_eq!(log.space.references(&chunk(51).location), 0);
    assert_eq!(log.space.references(&chunk(50).location), 1);
    log.recount_agrees();
}

/// A bucket's usage counted in batches of keys (as `Store::bucket_usage`
/// does, letting go of the index between them) equals one count of the
/// whole, chunk sharing across batches included, and what was put.
#[test]
fn bucket_usage_in_batches_counts_each_chunk_once() {
    let mut log = Log::new();
    log.setting(BucketSetting::Versioning(VersioningState::Enabled))
        .unwrap();
    let sized = |size| ObjectMeta {
        size,
        ..ObjectMeta::default()
    };
    for (i, key) in ["a", "b", "c", "d", "e", "f", "g"].iter().enumerate() {
        log.put_with(key, "1", Condition::Always, sized(10 * (i as u64 + 1)))
            .unwrap();
    }
    // A second version of "b" and a delete marker over "c": both count as
    // versions, "c" no longer as an object.
    log.put_with("b", "2", Condition::Always, sized(5)).unwrap();
    log.delete("c", VersionRef::Current, false).unwrap();
    // "h" shares "a"'s chunk, several batches away.
    let a = log.index.version("b", "a", VersionRef::Current).unwrap();
    log.apply(Record::Object(ObjectPut {
        bucket: "b".into(),
        key: "h".into(),
        meta: ObjectMeta {
            etag: "3".into(),
            size: 10,
            ..ObjectMeta::default()
        },
        chunks: a.chunks.clone(),
        condition: Condition::Always,
        inline: vec![],
        inline_flags: 0,
    }))
    .unwrap();

    let count = |limit: usize| {
        let (mut usage, mut seen) = (BucketUsage::default(), HashSet::new());
        log.visit_in_batches(Some("b"), limit, |_, _, v| usage.add(v, &mut seen))
            .unwrap();
        usage
    };
    let whole = count(usize::MAX);
    assert_eq!(whole.objects, 7, "{whole:?}");
    assert_eq!(whole.versions, 10, "{whole:?}");
    assert_eq!(
        whole.logical_bytes,
        10 + 20 + 30 + 40 + 50 + 60 + 70 + 5 + 10
    );
    // Eight distinct chunks of 100 bytes ("h" shares "a"'s); the delete
    // marker holds none.
    assert_eq!(whole.stored_bytes, 8 * 100, "{whole:?}");
    for limit in [1, 2, 3, 7] {
        assert_eq!(count(limit), whole, "{limit} keys at a time");
    }
    // The counts /metrics reads: versions held, markers not.
    assert_eq!(log.index.object_count(), 9);
    assert_eq!(log.index.logical_bytes(), whole.logical_bytes);
    log.recount_agrees();
    assert!(matches!(
        log.visit_in_batches(Some("none"), 1, |_, _, _| {}),
        Err(Error::NoSuchBucket)
    ));
}

/// Without versioning an overwrite replaces the version: what is held
/// follows, and so does a checkpoint's copy of the index read back.
#[test]
fn held_versions_follow_overwrites_deletes_and_checkpoints() {
    let mut log = Log::new();
    let sized = |size| ObjectMeta {
        size,
        ..ObjectMeta::default()
    };
    log.put_with("k", "1", Condition::Always, sized(100))
        .unwrap();
    log.put_with("k", "2", Condition::Always, sized(7)).unwrap();
    log.put_with("j", "3", Condition::Always, sized(5)).unwrap();
    assert_eq!(
        (log.index.object_count(), log.index.logical_bytes()),
        (2, 12)
    );
    log.delete("j", VersionRef::Current, false).unwrap();
    assert_eq!(
        (log.index.object_count(), log.index.logical_bytes()),
        (1, 7)
    );
    log.recount_agrees();
    let read_back: Index = bincode::deserialize(&bincode::serialize(&log.index).unwrap()).unwrap();
    assert_eq!(
        (read_back.object_count(), read_back.logical_bytes()),
        (1, 7)
    );
}

/// Compaction's search for references, in batches of keys across buckets,
/// finds what one walk of the whole index finds, once each.
#[test]
fn references_found_in_batches_are_those_found_whole() {
    let mut log = Log::new();
    for key in ["a", "b", "c"] {
        log.put(key, "1");
    }
    for bucket in ["a-first", "z-last"] {
        log.apply(Record::BucketCreate(BucketCreate {
            bucket: bucket.into(),
            at_ms: 0,
            settings: vec![],
        }))
        .unwrap();
        for key in ["k1", "k2"] {
            log.apply(Record::Object(ObjectPut {
                bucket: bucket.into(),
                key: key.into(),
                meta: ObjectMeta::default(),
                chunks: vec![chunk(9)],
                condition: Condition::Always,
                inline: vec![],
                inline_flags: 0,
            }))
            .unwrap();
        }
    }
    let segments = BTreeSet::from([1]);
    let find = |limit: usize| {
        let mut found = Referencing::default();
        log.visit_in_batches(None, limit, |b, k, v| found.add(b, k, v, &segments))
            .unwrap();
        let mut keys: Vec<(String, String, u64)> = found
            .objects
            .iter()
            .map(|(b, k, o)| (b.clone(), k.clone(), o.lsn))
            .collect();
        keys.sort();
        keys
    };
    let whole = find(usize::MAX);
    assert_eq!(whole.len(), 7, "{whole:?}");
    for limit in [1, 2, 3, 6, 7, 8] {
        assert_eq!(find(limit), whole, "{limit} keys at a time");
    }
    assert!(find(1).windows(2).all(|w| w[0] != w[1]));
}

/// Compaction lets go of the index between batches of its search for
/// references; a reference made meanwhile in keys already searched (here
/// a new key sharing a chunk, as dedup does) must keep its segment where
/// it is, or the new version would point at a discarded segment.
#[test]
fn a_reference_made_between_batches_keeps_its_segment() {
    let relocated = |interleave: bool| -> BTreeSet<u32> {
        let mut log = Log::new();
        for key in ["b", "c", "d"] {
            log.put(key, "1");
        }
        let segments = BTreeSet::from([1]);
        let mut found = Referencing::default();
        let mut after = log
            .index
            .visit_keys(None, None, 1, &mut |b, k, v| found.add(b, k, v, &segments))
            .unwrap();
        if interleave {
            let shared = log.index.version("b", "c", VersionRef::Current).unwrap();
            log.apply(Record::Object(ObjectPut {
                bucket: "b".into(),
                key: "a".into(),
                meta: ObjectMeta::default(),
                chunks: shared.chunks.clone(),
                condition: Condition::Always,
                inline: vec![],
                inline_flags: 0,
            }))
            .unwrap();
        }
        while let Some(next) = log
            .index
            .visit_keys(None, after.as_ref(), 1, &mut |b, k, v| {
                found.add(b, k, v, &segments)
            })
            .unwrap()
        {
            after = Some(next);
        }
        let moved: HashMap<Location, Location> = found
            .objects
            .iter()
            .flat_map(|(_, _, o)| o.chunks.iter())
            .map(|c| {
                let to = Location {
                    segment: 2,
                    ..c.location
                };
                (c.location, to)
            })
            .collect();
        let relocated = log
            .index
            .relocate(&found, &moved, &segments, &mut log.space);
        log.recount_agrees();
        relocated
    };
    assert_eq!(relocated(false), BTreeSet::from([1]));
    assert!(relocated(true).is_empty());
}
