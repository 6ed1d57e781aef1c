//! Compaction and dedup on the fault-injecting device: space comes back
//! after overwrites and deletes, every live object keeps its bytes through
//! compaction, restarts and crashes at every device operation inside a
//! round, identical chunks are stored once, copies go to compaction
//! segments apart from new writes, and a reader holding a stale reference
//! still gets the right bytes (or an error, never other bytes).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use common::*;

const ALL_IN: lsm::CompactionPolicy = lsm::CompactionPolicy {
    max_live_ratio: 0.95,
    max_victims_per_round: 64,
    rate_bytes_per_s: None,
};

type Objects = BTreeMap<String, Vec<u8>>;

/// Writes 40 objects of 60 KB (inline) and 200 KB (chunked), then
/// overwrites or deletes most of them: many segments, mostly dead.
async fn churn(store: &lsm::Store) -> Objects {
    store.create_bucket("b", false).await.unwrap();
    let mut live = Objects::new();
    for round in 0..3u64 {
        for i in 0..40u64 {
            let key = format!("k{i:02}");
            if round == 2 && i % 3 == 0 {
                store
                    .delete(
                        "b",
                        &key,
                        lsm::VersionRef::Current,
                        false,
                        Default::default(),
                    )
                    .await
                    .unwrap();
                live.remove(&key);
                continue;
            }
            let len = if i % 2 == 0 { 60_000 } else { 200_000 };
            let data = body(round * 1000 + i, len);
            put(store, "b", &key, &data).await.unwrap();
            live.insert(key, data);
        }
    }
    live
}

fn assert_objects(store: &lsm::Store, expected: &Objects) {
    let listed = store
        .list_objects(
            "b",
            &lsm::ListQuery {
                max_keys: 10_000,
                ..Default::default()
            },
        )
        .unwrap();
    let keys: Vec<&String> = listed.objects.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, expected.keys().collect::<Vec<_>>());
    for (key, data) in expected {
        let got = read_all(store, "b", key).unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(got == *data, "{key}: wrong bytes");
    }
    assert_eq!(store.space_recount(), Vec::<String>::new());
}

#[test]
fn compaction_gives_space_back_and_keeps_every_live_byte() {
    let rt = runtime();
    let dev = formatted(64 << 20, 7);
    let (store, _) = open(dev.clone());
    let live = rt.block_on(churn(&store));
    let before = store.space_report();
    let rounds = rt
        .block_on(store.compact_until(&ALL_IN, 1.0, |_| {}))
        .unwrap();
    let after = store.space_report();
    let freed: usize = rounds.iter().map(|r| r.freed.len()).sum();
    assert!(freed > 0, "nothing freed: {rounds:?}");
    assert!(
        after.segments_used < before.segments_used,
        "{before:?} -> {after:?}"
    );
    assert!(
        after.space_amplification < before.space_amplification,
        "{before:?} -> {after:?}"
    );
    assert_objects(&store, &live);

    // Freed segments are reused, and everything survives a restart.
    rt.block_on(async {
        for i in 0..20u64 {
            let data = body(9000 + i, 150_000);
            put(&store, "b", &format!("new{i}"), &data).await.unwrap();
        }
    });
    let mut expected = live.clone();
    for i in 0..20u64 {
        expected.insert(format!("new{i}"), body(9000 + i, 150_000));
    }
    assert_objects(&store, &expected);
    store.shutdown();
    drop(store);
    let (again, report) = open(dev.clone());
    assert!(report.checkpoint_used);
    assert_objects(&again, &expected);
    again.shutdown();
    drop(again);
    let fsck = recovery::fsck::check(dev.as_ref(), &()).unwrap();
    assert!(fsck.clean(), "{fsck:?}");
}

/// Power fails at every device operation of a compaction round in turn.
/// Whatever the point, recovery has every live object with its bytes, no
/// deleted one, and counts equal to a recount.
#[test]
fn a_crash_anywhere_inside_compaction_loses_nothing() {
    let rt = runtime();
    let base = formatted(64 << 20, 11);
    let (store, _) = open(base.clone());
    let live = rt.block_on(churn(&store));
    rt.block_on(store.checkpoint()).unwrap();
    store.shutdown();
    drop(store);
    let image = base.crash_image();

    let mut crash_points = 0;
    for crash_after in 1.. {
        let dev = Arc::new(FaultyDevice::from_image(
            image.clone(),
            FaultConfig {
                seed: crash_after,
                ..Default::default()
            },
        ));
        let (store, _) = open(dev.clone());
        dev.set_crash_after_ops(Some(crash_after));
        let outcome = rt.block_on(store.compact_until(&ALL_IN, 1.0, |_| {}));
        store.shutdown();
        drop(store);
        let finished = outcome.is_ok();
        let recovered: Arc<dyn BlockDevice> = Arc::new(FaultyDevice::from_image(
            dev.crash_image(),
            FaultConfig::default(),
        ));
        // Numbering resumes above every record on the device, copies of a
        // round cut short included: a segment freed now and reused later
        // must not take a stale copy for one of its own records.
        let rebuilt = recovery::rebuild(recovered.as_ref(), false).unwrap();
        let headers =
            recovery::scan::read_segment_headers(recovered.as_ref(), &rebuilt.superblock).unwrap();
        for (segment, header) in &headers.used {
            if header.kind == lsm::format::SegmentKind::Compaction {
                let last = recovery::scan::scan_compaction_segment(
                    recovered.as_ref(),
                    &rebuilt.superblock,
                    *segment,
                    header,
                    false,
                    &mut Default::default(),
                )
                .unwrap();
                assert!(
                    rebuilt.start.next_lsn > last,
                    "crash point {crash_after}: next lsn {} but segment {segment} holds {last}",
                    rebuilt.start.next_lsn
                );
            }
        }
        let (store, _) = open(recovered.clone());
        assert_objects(&store, &live);
        store.shutdown();
        drop(store);
        let fsck = recovery::fsck::check(recovered.as_ref(), &()).unwrap();
        assert!(fsck.clean(), "crash point {crash_after}: {fsck:?}");
        if finished {
            break;
        }
        crash_points += 1;
    }
    assert!(crash_points > 10, "only {crash_points} crash points");
}

/// Writers overwrite and delete while rounds run: the compare-and-set keeps
/// every newer version, and nothing deleted comes back after a restart.
#[test]
fn compaction_concurrent_with_overwrites_keeps_the_newest_versions() {
    let rt = threaded_runtime();
    let dev = formatted(96 << 20, 5);
    let (store, _) = open(dev.clone());
    let mut live = rt.block_on(churn(&store));
    let writers = {
        let store = store.clone();
        rt.spawn(async move {
            let mut written = Objects::new();
            let mut deleted = Vec::new();
            for i in 0..120u64 {
                let key = format!("k{:02}", i % 40);
                if i % 7 == 0 {
                    store
                        .delete(
                            "b",
                            &key,
                            lsm::VersionRef::Current,
                            false,
                            Default::default(),
                        )
                        .await
                        .unwrap();
                    written.remove(&key);
                    deleted.push(key);
                } else {
                    let data = body(50_000 + i, if i % 2 == 0 { 30_000 } else { 180_000 });
                    put(&store, "b", &key, &data).await.unwrap();
                    written.insert(key.clone(), data);
                    deleted.retain(|k| *k != key);
                }
            }
            (written, deleted)
        })
    };
    let compactor = {
        let store = store.clone();
        rt.spawn(async move {
            let mut freed = 0;
            for _ in 0..6 {
                freed += store.compact_round(&ALL_IN).await.unwrap().freed.len();
            }
            freed
        })
    };
    let (written, deleted) = rt.block_on(writers).unwrap();
    let freed = rt.block_on(compactor).unwrap();
    assert!(freed > 0, "no round freed a segment");
    for key in deleted {
        live.remove(&key);
    }
    live.extend(written);
    assert_objects(&store, &live);
    store.shutdown();
    drop(store);
    let (again, _) = open(dev);
    assert_objects(&again, &live);
}

/// Identical chunks are stored once; copies and overwrites share them; the
/// space comes back only when the last reference goes.
#[test]
fn identical_data_is_stored_once() {
    let rt = runtime();
    let dev = formatted(64 << 20, 3);
    let (store, _) = open(dev.clone());
    let data = body(42, 2 << 20);
    let small = body(43, 10_000);
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put(&store, "b", "first", &data).await.unwrap();
        put(&store, "b", "small-1", &small).await.unwrap();
    });
    let one_copy = store.space_report().live_bytes;
    rt.block_on(async {
        for i in 0..8 {
            put(&store, "b", &format!("dup{i}"), &data).await.unwrap();
            put(&store, "b", &format!("small-dup{i}"), &small)
                .await
                .unwrap();
        }
        let source = store.object("b", "first").unwrap();
        store
            .copy_object(
                &source,
                "b",
                "copy",
                Default::default(),
                lsm::Condition::Always,
            )
            .await
            .unwrap();
    });
    assert_eq!(store.space_report().live_bytes, one_copy);
    rt.block_on(async {
        store
            .delete(
                "b",
                "first",
                lsm::VersionRef::Current,
                false,
                Default::default(),
            )
            .await
            .unwrap();
        for i in 0..8 {
            store
                .delete(
                    "b",
                    &format!("dup{i}"),
                    lsm::VersionRef::Current,
                    false,
                    Default::default(),
                )
                .await
                .unwrap();
        }
    });
    assert_eq!(read_all(&store, "b", "copy").unwrap(), data);
    assert_eq!(read_all(&store, "b", "small-dup3").unwrap(), small);
    store.shutdown();
    drop(store);
    let (again, _) = open(dev);
    assert_eq!(again.space_recount(), Vec::<String>::new());
    assert_eq!(read_all(&again, "b", "copy").unwrap(), data);
    rt.block_on(again.delete(
        "b",
        "copy",
        lsm::VersionRef::Current,
        false,
        Default::default(),
    ))
    .unwrap();
    assert!(again.space_report().live_bytes < one_copy);
}

/// A triggered round takes only the victims it needs: the triggers' goal,
/// not every segment the policy would allow.
#[test]
fn a_triggered_round_stops_at_its_goal() {
    let rt = runtime();
    let dev = formatted(64 << 20, 17);
    let (store, _) = open(dev.clone());
    let triggers = lsm::CompactionTriggers::default();
    assert_eq!(store.compaction_goal(&triggers), None, "empty store");
    let live = rt.block_on(churn(&store));
    let report = store.space_report();
    let goal = store
        .compaction_goal(&triggers)
        .expect("churn leaves a third dead: due");
    assert!(
        goal <= report.used_bytes - report.live_bytes,
        "{goal} {report:?}"
    );
    let segment = report.segment_size_bytes;
    let one = rt
        .block_on(store.compact_round_reclaiming(&ALL_IN, 1))
        .unwrap();
    assert_eq!(one.victims.len(), 1, "{one:?}");
    // A victim wins back less than a segment: three segments' worth takes
    // at least three, and stops short of everything there is.
    let three = rt
        .block_on(store.compact_round_reclaiming(&ALL_IN, 3 * segment))
        .unwrap();
    assert!((3..=5).contains(&three.victims.len()), "{three:?}");
    let rest = rt.block_on(store.compact_round(&ALL_IN)).unwrap();
    assert!(rest.victims.len() > 1, "{three:?} then {rest:?}");
    assert_objects(&store, &live);
}

/// Compaction's copies land in compaction segments and new writes in log
/// segments: no segment mixes data that outlived a round with new data.
#[test]
fn copies_and_new_writes_fill_separate_segments() {
    let rt = runtime();
    let dev = formatted(64 << 20, 13);
    let (store, _) = open(dev.clone());
    let mut live = rt.block_on(churn(&store));
    let before: BTreeMap<String, Vec<lsm::Location>> = live
        .keys()
        .map(|key| {
            let chunks = store.object("b", key).unwrap().chunks.clone();
            (key.clone(), chunks.iter().map(|c| c.location).collect())
        })
        .collect();
    rt.block_on(store.compact_until(&ALL_IN, 1.0, |_| {}))
        .unwrap();
    rt.block_on(async {
        for i in 0..10u64 {
            let data = body(40_000 + i, if i % 2 == 0 { 50_000 } else { 150_000 });
            put(&store, "b", &format!("new{i}"), &data).await.unwrap();
            live.insert(format!("new{i}"), data);
        }
    });
    let headers = recovery::scan::read_segment_headers(dev.as_ref(), &store.superblock()).unwrap();
    let kind_of = |location: &lsm::Location| {
        headers
            .used
            .iter()
            .find(|(segment, _)| *segment == location.segment)
            .map(|(_, h)| h.kind)
    };
    let mut copies = 0;
    for (key, old) in &before {
        for chunk in &store.object("b", key).unwrap().chunks {
            if !old.contains(&chunk.location) {
                copies += 1;
                assert_eq!(
                    kind_of(&chunk.location),
                    Some(lsm::format::SegmentKind::Compaction),
                    "{key}: copy at {:?}",
                    chunk.location
                );
            }
        }
    }
    assert!(copies > 0, "compaction copied nothing");
    for i in 0..10u64 {
        for chunk in &store.object("b", &format!("new{i}")).unwrap().chunks {
            assert_eq!(
                kind_of(&chunk.location),
                Some(lsm::format::SegmentKind::Log),
                "new{i} at {:?}",
                chunk.location
            );
        }
    }
    store.shutdown();
    drop(store);
    let (again, _) = open(dev.clone());
    assert_objects(&again, &live);
    again.shutdown();
    drop(again);
    let fsck = recovery::fsck::check(dev.as_ref(), &()).unwrap();
    assert!(fsck.clean(), "{fsck:?}");
}

/// A reader that looked an object up before compaction moved its chunks
/// and reused their segment still gets exactly its bytes.
#[test]
fn a_stale_reference_finds_the_moved_chunk_by_its_hash() {
    let rt = runtime();
    let dev = formatted(64 << 20, 9);
    let (store, _) = open(dev.clone());
    let mut live = rt.block_on(churn(&store));
    let stale: Vec<_> = live
        .keys()
        .map(|key| (key.clone(), store.object("b", key).unwrap()))
        .collect();
    rt.block_on(store.compact_until(&ALL_IN, 1.0, |_| {}))
        .unwrap();
    // Fill the freed segments with other data.
    rt.block_on(async {
        for i in 0..60u64 {
            let other = body(70_000 + i, 200_000);
            put(&store, "b", &format!("fill{i:02}"), &other)
                .await
                .unwrap();
            live.insert(format!("fill{i:02}"), other);
        }
    });
    let moved: Vec<_> = stale
        .iter()
        .filter(|(key, entry)| {
            let now = store.object("b", key).unwrap();
            entry
                .chunks
                .iter()
                .any(|c| now.chunks.iter().all(|n| n.location != c.location))
        })
        .collect();
    assert!(!moved.is_empty(), "compaction moved nothing");
    for (key, entry) in moved {
        let mut got = Vec::new();
        for chunk in &entry.chunks {
            got.extend(store.read_chunk(chunk, None).unwrap());
        }
        assert!(got == live[key], "{key} read through a stale reference");
    }
    assert_objects(&store, &live);
}

/// A full device: writes fail cleanly, deletes still work, compaction gives
/// the space back, and writes work again.
#[test]
fn full_device_delete_compact_write_again() {
    let rt = runtime();
    let dev = formatted(24 << 20, 13);
    let (store, _) = open(dev.clone());
    rt.block_on(store.create_bucket("b", false)).unwrap();
    let mut written = Vec::new();
    let full = rt.block_on(async {
        for i in 0..1000u64 {
            match put(&store, "b", &format!("k{i}"), &body(i, 200_000)).await {
                Ok(()) => written.push(i),
                Err(e) => return e,
            }
        }
        panic!("the device never filled up");
    });
    assert!(matches!(full, lsm::Error::NoSpace), "{full:?}");
    rt.block_on(async {
        for i in &written[..written.len() * 3 / 4] {
            store
                .delete(
                    "b",
                    &format!("k{i}"),
                    lsm::VersionRef::Current,
                    false,
                    Default::default(),
                )
                .await
                .unwrap();
        }
    });
    let rounds = rt
        .block_on(store.compact_until(&ALL_IN, 1.0, |_| {}))
        .unwrap();
    assert!(rounds.iter().any(|r| !r.freed.is_empty()), "{rounds:?}");
    rt.block_on(put(&store, "b", "after", &body(5, 200_000)))
        .unwrap();
    assert_eq!(read_all(&store, "b", "after").unwrap(), body(5, 200_000));
    let last = *written.last().unwrap();
    assert_eq!(
        read_all(&store, "b", &format!("k{last}")).unwrap(),
        body(last, 200_000)
    );
}

/// A damaged newest checkpoint after compaction: recovery falls back to the
/// previous one (compaction keeps both valid) and loses nothing.
#[test]
fn a_damaged_newest_checkpoint_falls_back_to_the_previous_one() {
    let rt = runtime();
    let dev = formatted(64 << 20, 17);
    let (store, _) = open(dev.clone());
    let live = rt.block_on(churn(&store));
    let rounds = rt
        .block_on(store.compact_until(&ALL_IN, 1.0, |_| {}))
        .unwrap();
    assert!(rounds.iter().any(|r| !r.freed.is_empty()));
    let sb = store.superblock();
    store.shutdown();
    drop(store);
    let newest = sb.checkpoint.expect("a checkpoint");
    dev.flip_bit(
        sb.segment_offset(newest.segment) + newest.offset as u64 + 40,
        3,
    );
    let (again, report) = open(dev.clone());
    assert!(report.checkpoint_used, "{report:?}");
    assert!(report.checkpoint_problem.is_some(), "{report:?}");
    assert_objects(&again, &live);
}
