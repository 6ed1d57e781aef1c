//! Model-based crash test: random bucket, object, copy, multipart and
//! compaction operations run against a BTreeMap model on the fault-injecting
//! device, which loses power after a random number of device operations
//! (unsynced writes dropped, kept or torn), so crashes land inside
//! compaction rounds too. Bodies come from a few seeds, so chunks repeat and
//! dedup shares them. After recovery the store must equal the model of the
//! acknowledged operations (the one in flight at the crash may have happened
//! or not, never partly): nothing acknowledged lost, nothing deleted back,
//! every referenced chunk readable, and reference counts equal a recount.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use common::*;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    CreateBucket(u8),
    DeleteBucket(u8),
    Put {
        bucket: u8,
        key: u8,
        content: u8,
        len: usize,
    },
    Copy {
        bucket: u8,
        key: u8,
        to: u8,
    },
    Delete {
        bucket: u8,
        key: u8,
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
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..3u8).prop_map(Op::CreateBucket),
        1 => (0..3u8).prop_map(Op::DeleteBucket),
        6 => (0..3u8, 0..6u8, 0..3u8, prop_oneof![0..200usize, 1000..20000usize, Just(150_000usize), Just(300_000usize)])
            .prop_map(|(bucket, key, content, len)| Op::Put { bucket, key, content, len }),
        1 => (0..3u8, 0..6u8, 0..6u8).prop_map(|(bucket, key, to)| Op::Copy { bucket, key, to }),
        2 => (0..3u8, 0..6u8).prop_map(|(bucket, key)| Op::Delete { bucket, key }),
        1 => (0..3u8, 0..6u8).prop_map(|(bucket, key)| Op::UploadCreate { bucket, key }),
        2 => (0..4u8, 1..4u8, 1000..9000usize).prop_map(|(upload, part, len)| Op::UploadPart { upload, part, len }),
        1 => (0..4u8).prop_map(|upload| Op::UploadComplete { upload }),
        1 => (0..4u8).prop_map(|upload| Op::UploadAbort { upload }),
        1 => Just(Op::Checkpoint),
        2 => Just(Op::Compact),
    ]
}

/// An open upload in the model: bucket, key, part number -> bytes.
type ModelUpload = (String, String, BTreeMap<u32, Vec<u8>>);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model {
    buckets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// upload id -> (bucket, key, part number -> bytes)
    uploads: BTreeMap<String, ModelUpload>,
}

fn bucket_name(b: u8) -> String {
    format!("bucket-{b}")
}

fn key_name(k: u8) -> String {
    format!("dir/key-{k}")
}

/// Runs one op on the store; on success applies it to the model. Returns
/// Err(()) when the device has lost power (the op's outcome is unknown), with
/// the model as it would be had the op completed in `if_done`.
async fn run(
    store: &lsm::Store,
    model: &mut Model,
    upload_ids: &mut Vec<String>,
    op: &Op,
    seed: u64,
) -> Result<(), Model> {
    let mut after = model.clone();
    let result: lsm::Result<()> = match op {
        Op::CreateBucket(b) => {
            after.buckets.entry(bucket_name(*b)).or_default();
            store.create_bucket(&bucket_name(*b)).await
        }
        Op::DeleteBucket(b) => {
            after.buckets.remove(&bucket_name(*b));
            store.delete_bucket(&bucket_name(*b)).await
        }
        Op::Put {
            bucket,
            key,
            content,
            len,
        } => {
            // Bodies of one content seed share their prefix: chunks repeat.
            let data = body(*content as u64, *len);
            if let Some(objects) = after.buckets.get_mut(&bucket_name(*bucket)) {
                objects.insert(key_name(*key), data.clone());
            }
            put(store, &bucket_name(*bucket), &key_name(*key), &data).await
        }
        Op::Copy { bucket, key, to } => {
            let b = bucket_name(*bucket);
            let source = after
                .buckets
                .get(&b)
                .and_then(|objects| objects.get(&key_name(*key)))
                .cloned();
            if let (Some(data), Some(objects)) = (source, after.buckets.get_mut(&b)) {
                objects.insert(key_name(*to), data);
            }
            match store.object(&b, &key_name(*key)) {
                Ok(source) => store
                    .copy_object(&source, &b, &key_name(*to), Default::default())
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        Op::Delete { bucket, key } => {
            if let Some(objects) = after.buckets.get_mut(&bucket_name(*bucket)) {
                objects.remove(&key_name(*key));
            }
            store
                .delete_object(&bucket_name(*bucket), &key_name(*key))
                .await
        }
        Op::UploadCreate { bucket, key } => {
            match store
                .create_upload(&bucket_name(*bucket), &key_name(*key), Default::default())
                .await
            {
                Ok(id) => {
                    after.uploads.insert(
                        id.clone(),
                        (bucket_name(*bucket), key_name(*key), BTreeMap::new()),
                    );
                    upload_ids.push(id);
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
        Op::UploadPart { upload, part, len } => {
            let Some(id) = upload_ids.get(*upload as usize).cloned() else {
                return Ok(());
            };
            let data = body(seed, *len);
            if let Some((_, _, parts)) = after.uploads.get_mut(&id) {
                parts.insert(*part as u32, data.clone());
            }
            let mut writer = store.object_writer();
            let written = async {
                writer.write(&data).await?;
                writer.finish().await
            }
            .await;
            match written {
                Ok(w) => store
                    .put_part(&id, *part as u32, w, hex::encode(md5_of(&data)), vec![])
                    .await
                    .map(|_| ()),
                Err(e) => Err(e),
            }
        }
        Op::UploadComplete { upload } => {
            let Some(id) = upload_ids.get(*upload as usize).cloned() else {
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
            if let Some((bucket, key, parts)) = after.uploads.remove(&id) {
                let whole: Vec<u8> = parts.values().flatten().copied().collect();
                if let Some(objects) = after.buckets.get_mut(&bucket) {
                    objects.insert(key, whole);
                }
            }
            store.complete_upload(&id, &listed, false).await.map(|_| ())
        }
        Op::UploadAbort { upload } => {
            let Some(id) = upload_ids.get(*upload as usize).cloned() else {
                return Ok(());
            };
            after.uploads.remove(&id);
            store.abort_upload(&id).await
        }
        Op::Checkpoint => store.checkpoint().await.map(|_| ()),
        Op::Compact => store
            .compact_round(&lsm::CompactionPolicy {
                max_live_ratio: 1.0,
                max_victims_per_round: 4,
                rate_bytes_per_s: None,
            })
            .await
            .map(|_| ()),
    };
    match result {
        Ok(()) => {
            *model = after;
            Ok(())
        }
        // Power is gone: the op's outcome is unknown.
        Err(lsm::Error::Failed(_)) | Err(lsm::Error::ShuttingDown) | Err(lsm::Error::Device(_)) => {
            Err(after)
        }
        // A refused op (NoSuchBucket, BucketNotEmpty, InvalidPart, ...)
        // changes nothing; the model agrees when it would refuse too.
        Err(e) => {
            assert!(
                refused_by_model(model, op, upload_ids),
                "store refused {op:?} with {e:?} but the model accepts it"
            );
            Ok(())
        }
    }
}

fn refused_by_model(model: &Model, op: &Op, upload_ids: &[String]) -> bool {
    let upload = |u: &u8| {
        upload_ids
            .get(*u as usize)
            .and_then(|id| model.uploads.get(id))
    };
    match op {
        Op::CreateBucket(b) => model.buckets.contains_key(&bucket_name(*b)),
        Op::DeleteBucket(b) => match model.buckets.get(&bucket_name(*b)) {
            None => true,
            Some(objects) => {
                !objects.is_empty() || model.uploads.values().any(|u| u.0 == bucket_name(*b))
            }
        },
        Op::Put { bucket, .. } | Op::Delete { bucket, .. } | Op::UploadCreate { bucket, .. } => {
            !model.buckets.contains_key(&bucket_name(*bucket))
        }
        Op::Copy { bucket, key, .. } => model
            .buckets
            .get(&bucket_name(*bucket))
            .is_none_or(|objects| !objects.contains_key(&key_name(*key))),
        Op::UploadPart { upload: u, .. } | Op::UploadAbort { upload: u } => upload(u).is_none(),
        Op::UploadComplete { upload: u } => match upload(u) {
            None => true,
            Some((bucket, _, parts)) => parts.is_empty() || !model.buckets.contains_key(bucket),
        },
        Op::Checkpoint | Op::Compact => false,
    }
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

/// The recovered store as a model.
fn observe(store: &lsm::Store) -> Model {
    let mut model = Model::default();
    for bucket in store.list_buckets() {
        let page = store
            .list_objects(
                &bucket.name,
                &lsm::ListQuery {
                    max_keys: usize::MAX,
                    ..Default::default()
                },
            )
            .unwrap();
        let objects = page
            .objects
            .iter()
            .map(|(key, _)| {
                (
                    key.clone(),
                    read_all(store, &bucket.name, key).expect("object unreadable"),
                )
            })
            .collect();
        for upload in store.list_uploads(&bucket.name, "").unwrap() {
            let mut parts = BTreeMap::new();
            for (number, part) in &upload.parts {
                let mut bytes = Vec::new();
                for chunk in &part.chunks {
                    bytes.extend(store.read_chunk(chunk).unwrap());
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
        model.buckets.insert(bucket.name, objects);
    }
    model
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
    if crashed_op.is_none() {
        assert_eq!(store.space_recount(), Vec::<String>::new());
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
    let ok = seen == model || in_flight.as_ref().is_some_and(|m| &seen == m);
    assert!(
        ok,
        "recovered state differs\nacknowledged: {:?}\nin flight: {:?}\nrecovered: {:?}\nreport: {report:?}",
        summary(&model),
        in_flight.as_ref().map(summary),
        summary(&seen)
    );
    // Recovery must be repeatable, and the store writable afterwards.
    rt.block_on(recovered.create_bucket("after-crash")).unwrap();
    recovered.shutdown();
    drop(recovered);
    let (again, _) = open(dev2);
    let mut expected = observed;
    expected
        .buckets
        .insert("after-crash".into(), BTreeMap::new());
    assert_eq!(summary(&observe(&again)), summary(&expected));
}

fn summary(m: &Model) -> Vec<String> {
    let mut out: Vec<String> =
        m.buckets
            .iter()
            .flat_map(|(b, objects)| {
                std::iter::once(format!("bucket {b}")).chain(objects.iter().map(move |(k, v)| {
                    format!("{b}/{k}: {} bytes, hash {}", v.len(), blake3::hash(v))
                }))
            })
            .collect();
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
        store.create_bucket("b").await.unwrap();
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
        store.delete_object("b", "k3").await.unwrap();
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
    rt.block_on(store.create_bucket("b")).unwrap();
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
            rt.block_on(store.create_bucket("b")).unwrap();
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
