//! Damage and exhaustion: flipped bits are detected (an error, never wrong
//! bytes), a full device fails writes cleanly and keeps serving reads, read
//! errors surface as errors, and the store runs on a real loop device.

mod common;

use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use common::*;
use rand::{Rng, SeedableRng};

#[test]
fn flipped_bits_are_detected_never_served() {
    let rt = runtime();
    for seed in 0..8u64 {
        let dev = formatted(16 << 20, seed);
        let (store, _) = open(dev.clone());
        let mut objects = Vec::new();
        rt.block_on(async {
            store.create_bucket("b", false).await.unwrap();
            for i in 0..20u64 {
                let data = body(seed * 100 + i, 100 + (i as usize * 2311) % 30000);
                put(&store, "b", &format!("k{i}"), &data).await.unwrap();
                objects.push((format!("k{i}"), data));
            }
        });
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        // Flip bits inside records of random objects.
        for _ in 0..5 {
            let (key, _) = &objects[rng.gen_range(0..objects.len())];
            let entry = store.object("b", key).unwrap();
            if entry.chunks.is_empty() {
                continue;
            }
            let chunk = entry.chunks[rng.gen_range(0..entry.chunks.len())];
            let sb = store.superblock();
            let at = sb.segment_offset(chunk.location.segment)
                + chunk.location.offset as u64
                + rng.gen_range(0..chunk.location.len) as u64;
            dev.flip_bit(at, rng.gen_range(0..8));
        }
        let mut errors = 0;
        for (key, data) in &objects {
            match read_all(&store, "b", key) {
                Ok(bytes) => assert_eq!(&bytes, data, "wrong bytes served for {key}"),
                Err(lsm::Error::Corruption { .. }) => errors += 1,
                Err(e) => panic!("unexpected error {e:?}"),
            }
        }
        assert!(errors > 0, "no flipped bit was detected");
        // Recovery over the damaged log never serves wrong bytes either.
        store.shutdown();
        drop(store);
        let (recovered, _) = open(dev);
        for (key, data) in &objects {
            if let Ok(bytes) = read_all(&recovered, "b", key) {
                assert_eq!(&bytes, data, "wrong bytes after recovery for {key}");
            }
        }
    }
}

#[test]
fn bit_flips_anywhere_in_the_log_never_corrupt_reads_or_panic() {
    let rt = runtime();
    for seed in 0..16u64 {
        let dev = formatted(16 << 20, seed);
        let (store, _) = open(dev.clone());
        let mut objects = Vec::new();
        rt.block_on(async {
            store.create_bucket("b", false).await.unwrap();
            for i in 0..30u64 {
                let data = body(seed * 1000 + i, (i as usize * 977) % 9000);
                put(&store, "b", &format!("k{i}"), &data).await.unwrap();
                objects.push((format!("k{i}"), data));
            }
        });
        store.shutdown();
        drop(store);
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let used = 4 << 20; // everything written lies in the first few segments
        for _ in 0..20 {
            dev.flip_bit(
                rng.gen_range(1 << 20..(1 << 20) + used),
                rng.gen_range(0..8),
            );
        }
        let Ok((recovered, _)) = recovery::open(dev, options()) else {
            continue; // a refusal is fine; a panic or wrong data is not
        };
        for (key, data) in &objects {
            if let Ok(bytes) = read_all(&recovered, "b", key) {
                assert_eq!(&bytes, data, "wrong bytes after bit flips for {key}");
            }
        }
    }
}

#[test]
fn full_device_fails_writes_cleanly_and_keeps_reading() {
    let rt = runtime();
    // Four segments of 1 MiB: fills quickly.
    let dev = formatted(5 << 20, 9);
    let (store, _) = open(dev.clone());
    let mut stored = Vec::new();
    let full = rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        for i in 0..1000u64 {
            let data = body(i, 50_000);
            match put(&store, "b", &format!("k{i}"), &data).await {
                Ok(()) => stored.push((format!("k{i}"), data)),
                Err(e) => return Some(e),
            }
        }
        None
    });
    assert!(matches!(full, Some(lsm::Error::NoSpace)), "{full:?}");
    assert!(stored.len() > 10);
    for (key, data) in &stored {
        assert_eq!(&read_all(&store, "b", key).unwrap(), data);
    }
    // Small writes that still fit keep working; the store is not poisoned.
    rt.block_on(store.delete(
        "b",
        "k0",
        lsm::VersionRef::Current,
        false,
        Default::default(),
    ))
    .unwrap();
    store.shutdown();
    drop(store);
    let (recovered, _) = open(dev);
    for (key, data) in stored.iter().skip(1) {
        assert_eq!(&read_all(&recovered, "b", key).unwrap(), data);
    }
    assert!(matches!(
        recovered.object("b", "k0"),
        Err(lsm::Error::NoSuchKey)
    ));
}

#[test]
fn host_enospc_and_read_errors_are_errors() {
    let rt = runtime();
    let dev = formatted(16 << 20, 4);
    let (store, _) = open(dev.clone());
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put(&store, "b", "k", &body(1, 10_000)).await.unwrap();
    });
    dev.set_nospace_above(Some(1 << 20));
    let err = rt
        .block_on(put(&store, "b", "k2", &body(2, 10_000)))
        .unwrap_err();
    assert!(matches!(err, lsm::Error::NoSpace), "{err:?}");
    assert_eq!(read_all(&store, "b", "k").unwrap(), body(1, 10_000));
    dev.set_nospace_above(None);
    rt.block_on(put(&store, "b", "k2", &body(2, 10_000)))
        .unwrap();
    dev.set_read_errors(true);
    assert!(matches!(
        read_all(&store, "b", "k"),
        Err(lsm::Error::Device(_))
    ));
    dev.set_read_errors(false);
    assert_eq!(read_all(&store, "b", "k2").unwrap(), body(2, 10_000));
}

#[test]
fn unformatted_and_truncated_devices_are_refused() {
    let blank: Arc<dyn BlockDevice> = Arc::new(FaultyDevice::new(8 << 20, FaultConfig::default()));
    let err = recovery::open(blank, options())
        .err()
        .expect("blank device must be refused");
    assert!(err.to_string().contains("not formatted"), "{err}");

    let dev = formatted(16 << 20, 5);
    let mut image = dev.visible_image();
    image.truncate(8 << 20);
    let short: Arc<dyn BlockDevice> =
        Arc::new(FaultyDevice::from_image(image, FaultConfig::default()));
    let err = recovery::open(short, options())
        .err()
        .expect("truncated device must be refused");
    assert!(err.to_string().contains("truncated"), "{err}");
}

/// The store on a real loop device (direct I/O, 4 KiB sectors), created and
/// removed by the test.
#[test]
fn real_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("loop.img");
    std::fs::File::create(&image)
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let out = std::process::Command::new("losetup")
        .args([
            "--find",
            "--show",
            "--direct-io=on",
            "--sector-size",
            "4096",
        ])
        .arg(&image)
        .output();
    let loop_dev = match out {
        Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_string(),
        Ok(o) => {
            eprintln!(
                "SKIPPED real_loop_device: losetup failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED real_loop_device: losetup unavailable: {e}");
            return;
        }
    };
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _detach = Detach(loop_dev.clone());
    let rt = runtime();
    let open_dev = || {
        blockdev::open_device(
            std::path::Path::new(&loop_dev),
            &blockdev::OpenOptions::default(),
        )
        .unwrap()
    };
    let dev = open_dev();
    assert_eq!(dev.size_bytes(), 64 << 20);
    lsm::format_device(dev.as_ref(), 4 << 20).unwrap();
    // A second opener is refused while we hold it.
    assert!(matches!(
        blockdev::open_device(
            std::path::Path::new(&loop_dev),
            &blockdev::OpenOptions::default()
        ),
        Err(blockdev::DeviceError::Busy { .. })
    ));
    let (store, _) = recovery::open(dev, options()).unwrap();
    let data = body(77, 300_000);
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put(&store, "b", "k", &data).await.unwrap();
    });
    store.shutdown();
    drop(store);
    let (store, report) = recovery::open(open_dev(), options()).unwrap();
    assert_eq!(report.objects, 1);
    assert_eq!(read_all(&store, "b", "k").unwrap(), data);
}

/// A flipped bit in a segment header must not turn that segment into free
/// space that new writes overwrite.
#[test]
fn damaged_segment_header_is_never_reused() {
    let rt = runtime();
    let dev = formatted(8 << 20, 11);
    let (store, _) = open(dev.clone());
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put(&store, "b", "k", &body(5, 200_000)).await.unwrap();
    });
    let first = store.object("b", "k").unwrap().chunks[0].location.segment;
    let sb = store.superblock();
    store.shutdown();
    drop(store);
    let start = sb.segment_offset(first) as usize;
    let end = start + sb.segment_size_bytes as usize;
    dev.flip_bit(start as u64 + 40, 3);
    let before = dev.visible_image()[start..end].to_vec();
    let (store, report) = open(dev.clone());
    assert!(
        report
            .scan
            .damage
            .iter()
            .any(|d| d.segment == first && d.offset == 0),
        "{report:?}"
    );
    rt.block_on(async {
        for i in 0..40u64 {
            if put(&store, "b", &format!("n{i}"), &body(i, 100_000))
                .await
                .is_err()
            {
                break;
            }
        }
    });
    assert_eq!(
        &dev.visible_image()[start..end],
        &before[..],
        "damaged segment was overwritten"
    );
}

/// Found by fuzzing: a crc-valid segment header with a sequence or first lsn
/// at u64::MAX overflowed the counters recovery hands to the writer.
#[test]
fn segment_header_with_exhausted_counters_is_refused() {
    let rt = runtime();
    let dev = formatted(8 << 20, 12);
    let (store, _) = open(dev.clone());
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put(&store, "b", "k", &body(6, 200_000)).await.unwrap();
    });
    let first = store.object("b", "k").unwrap().chunks[0].location.segment;
    let sb = store.superblock();
    store.shutdown();
    drop(store);
    for (sequence, first_lsn) in [(u64::MAX, 1), (1, u64::MAX)] {
        let mut image = dev.visible_image();
        let header = lsm::format::SegmentHeader {
            device_uuid: sb.device_uuid,
            sequence,
            first_lsn,
            kind: lsm::format::SegmentKind::Log,
        }
        .encode();
        let start = sb.segment_offset(first) as usize;
        image[start..start + header.len()].copy_from_slice(&header);
        let damaged: Arc<dyn BlockDevice> =
            Arc::new(FaultyDevice::from_image(image, FaultConfig::default()));
        match recovery::open(damaged, options()) {
            Err(recovery::RecoveryError::CountersExhausted { .. }) => {}
            Err(e) => panic!("sequence {sequence}, first lsn {first_lsn}: {e}"),
            Ok(_) => panic!("sequence {sequence}, first lsn {first_lsn}: opened"),
        }
    }
    // One lsn short of the limit: the store opens, acknowledges one more
    // record, refuses the next, and what it acknowledged is recovered.
    let mut image = dev.visible_image();
    let header = lsm::format::SegmentHeader {
        device_uuid: sb.device_uuid,
        sequence: 1,
        first_lsn: lsm::format::COUNTER_LIMIT - 1,
        kind: lsm::format::SegmentKind::Log,
    }
    .encode();
    let start = sb.segment_offset(first) as usize;
    image[start..start + header.len()].copy_from_slice(&header);
    let last: Arc<FaultyDevice> = Arc::new(FaultyDevice::from_image(image, FaultConfig::default()));
    let (store, _) = open(last.clone());
    rt.block_on(async {
        store.create_bucket("last", false).await.unwrap();
        assert!(store.create_bucket("past", false).await.is_err());
    });
    store.shutdown();
    drop(store);
    let (store, _) = open(last);
    assert!(store.bucket_exists("last"));
    assert!(!store.bucket_exists("past"));
}

/// Found by fuzzing: a checkpoint part that names a part with its own index
/// (or itself) must end the chain with an error instead of being followed.
#[test]
fn checkpoint_chain_out_of_order_is_unreadable() {
    let rt = runtime();
    let dev = formatted(8 << 20, 13);
    let (store, _) = open(dev.clone());
    let parts = rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        let whole = store.snapshot();
        let encoded = bincode::serialize(&whole).unwrap();
        let compressed = zstd::bulk::compress(&encoded, 1).unwrap();
        let mut previous = None;
        let mut parts = Vec::new();
        // Parts 0, 1, 1: the genuine index in part 0 and empty parts above,
        // so only the order of the chain is wrong.
        for (part_index, bytes) in [(0, compressed), (1, Vec::new()), (1, Vec::new())] {
            let record = lsm::format::Record::Checkpoint(lsm::format::CheckpointPart {
                previous,
                part_index,
                bytes,
            });
            let committed = store
                .append(vec![lsm::PendingRecord::new(record)])
                .await
                .unwrap();
            committed.outcome.unwrap();
            previous = committed.locations.first().copied();
            parts.push(previous);
        }
        parts
    });
    let mut sb = store.superblock();
    sb.checkpoint = parts[2];
    match recovery::load_checkpoint(dev.as_ref(), &sb) {
        Err(recovery::RecoveryError::CheckpointUnreadable(_)) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a chain out of order was loaded"),
    }
    // The same chain without the repeated part loads.
    sb.checkpoint = parts[1];
    let loaded = recovery::load_checkpoint(dev.as_ref(), &sb)
        .unwrap()
        .unwrap();
    assert_eq!(loaded.object_count(), 0);
    assert!(loaded.bucket_exists("b"));
}

/// fsck finds every flipped bit that lies in a record an object needs (its
/// chunks, or the record holding a small object inline): each of 40 random
/// flips, on a fresh copy of the image, makes the report unclean and names
/// the record's segment. (A flip in padding or free space harms nothing and
/// cannot be seen; reads are covered by the tests above.)
#[test]
fn fsck_finds_every_flipped_bit_in_a_needed_record() {
    let rt = runtime();
    let dev = formatted(16 << 20, 21);
    let (store, _) = open(dev.clone());
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        for i in 0..30u64 {
            let len = 1000 + (i as usize * 7919) % 300_000;
            put(&store, "b", &format!("k{i}"), &body(i, len))
                .await
                .unwrap();
        }
    });
    let mut needed = Vec::new();
    for i in 0..30u64 {
        let entry = store.object("b", &format!("k{i}")).unwrap();
        if entry.chunks.is_empty() {
            needed.push(entry.location);
        }
        needed.extend(entry.chunks.iter().map(|c| c.location));
    }
    let sb = store.superblock();
    store.shutdown();
    drop(store);
    let image = dev.visible_image();
    assert!(recovery::fsck::check(dev.as_ref(), &()).unwrap().clean());
    let mut rng = rand::rngs::StdRng::seed_from_u64(21);
    for _ in 0..40 {
        let record = needed[rng.gen_range(0..needed.len())];
        let offset = sb.segment_offset(record.segment)
            + u64::from(record.offset)
            + rng.gen_range(0..u64::from(record.len));
        let damaged = FaultyDevice::from_image(image.clone(), FaultConfig::default());
        damaged.flip_bit(offset, rng.gen_range(0..8));
        let report = recovery::fsck::check(&damaged, &()).unwrap();
        assert!(!report.clean(), "flip at {offset} not found: {report:?}");
        let named = report
            .damaged_ranges
            .iter()
            .any(|d| d.segment == record.segment && !d.unused)
            || report
                .unreadable_objects
                .iter()
                .any(|u| u.segment == record.segment);
        assert!(named, "flip at {offset} in {record:?}: {report:?}");
    }
}

/// Many writers while the host runs out of space. The log writer lays out
/// the next batch while one is at the device; when that one fails, the next
/// is laid out again from the real end of the log. Every put succeeds or
/// fails with NoSpace, writing goes on once there is space again, and a
/// restart shows exactly the puts that succeeded.
#[test]
fn concurrent_writers_through_a_full_host() {
    let rt = threaded_runtime();
    let dev = formatted(32 << 20, 9);
    let (store, _) = open(dev.clone());
    rt.block_on(store.create_bucket("b", false)).unwrap();
    let round = |first: u64, writers: u64, each: u64| {
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                rt.spawn(async move {
                    let mut outcomes = Vec::new();
                    for i in 0..each {
                        let n = first + w * each + i;
                        let data = body(n, [500, 20_000, 150_000][n as usize % 3]);
                        let key = format!("k{n}");
                        let outcome = put(&store, "b", &key, &data).await;
                        outcomes.push((key, data, outcome));
                    }
                    outcomes
                })
            })
            .collect();
        tasks
            .into_iter()
            .flat_map(|t| rt.block_on(t).unwrap())
            .collect::<Vec<_>>()
    };
    // The superblocks take the first MiB; two 1 MiB segments fit below this.
    dev.set_nospace_above(Some(3 << 20));
    let mut stored = Vec::new();
    let mut refused = 0;
    for (key, data, outcome) in round(0, 16, 8) {
        match outcome {
            Ok(()) => stored.push((key, data)),
            Err(lsm::Error::NoSpace) => refused += 1,
            Err(e) => panic!("{key}: {e}"),
        }
    }
    assert!(refused > 0 && !stored.is_empty(), "{refused} refused");
    dev.set_nospace_above(None);
    for (key, data, outcome) in round(1000, 16, 4) {
        outcome.unwrap_or_else(|e| panic!("{key} after space returned: {e}"));
        stored.push((key, data));
    }
    store.shutdown();
    drop(store);
    let (reopened, _) = open(dev);
    assert_eq!(list_keys(&reopened, "b").len(), stored.len());
    for (key, data) in &stored {
        assert!(read_all(&reopened, "b", key).unwrap() == *data, "{key}");
    }
}

/// A host out of space lands what fits of a batch before ENOSPC: records,
/// maybe a new segment's header. The writer takes that back, so a put told
/// NoSpace never turns up after a restart or a crash, and a leftover
/// header never sorts among segments written later.
#[test]
fn puts_refused_for_space_never_come_back() {
    let rt = threaded_runtime();
    for seed in 10..18u64 {
        // Past the superblocks' MiB, at a segment's start or inside one.
        let limit = ((2 + seed % 4) << 20) + (seed % 3) * (40 << 10);
        let dev = formatted(32 << 20, seed);
        let (store, _) = open(dev.clone());
        rt.block_on(store.create_bucket("b", false)).unwrap();
        dev.set_nospace_above(Some(limit));
        let tasks: Vec<_> = (0..16u64)
            .map(|w| {
                let store = store.clone();
                rt.spawn(async move {
                    let mut outcomes = Vec::new();
                    for n in w * 1000..w * 1000 + 1000 {
                        let data = body(n, [300, 9_000, 120_000][n as usize % 3]);
                        let outcome = put(&store, "b", &format!("k{n}"), &data).await;
                        let refused = outcome.is_err();
                        outcomes.push((format!("k{n}"), data, outcome));
                        if refused {
                            break;
                        }
                    }
                    outcomes
                })
            })
            .collect();
        let outcomes = tasks.into_iter().flat_map(|t| rt.block_on(t).unwrap());
        let (stored, refused) = acknowledged(outcomes, &format!("seed {seed}"));
        assert!(refused > 0 && !stored.is_empty(), "{refused} refused");
        assert_reopens_to(store, dev, &options(), &stored, &format!("seed {seed}"));
    }
}

/// Batches of new chunks go to the device behind the one there. When the
/// one there fails (here a host out of space for a moment), those behind
/// it were laid out after it: they are taken back with it and laid out
/// again, so their puts succeed, only the failed batch's puts are refused,
/// and a restart finds exactly the acknowledged puts and no damage. The
/// device reports writes late, so several are in flight at once, and fails
/// one that has another in flight behind it.
#[test]
fn a_failed_batch_takes_back_the_batches_behind_it() {
    let rt = threaded_runtime();
    for seed in 0..20u64 {
        let dev = Arc::new(FaultyDevice::new(
            64 << 20,
            FaultConfig {
                seed,
                write_latency: Some(std::time::Duration::from_millis(2)),
                ..Default::default()
            },
        ));
        lsm::format_device(dev.as_ref(), SEGMENT_BYTES).unwrap();
        let options = recovery::OpenOptions {
            store: lsm::StoreConfig {
                chunk_size_bytes: 64 << 10,
                write_window_chunks: 8,
                ..config()
            },
            ignore_checkpoint: false,
        };
        let (store, _) = recovery::open(dev.clone(), options.clone()).unwrap();
        rt.block_on(store.create_bucket("b", false)).unwrap();
        // Writing stops at the first refusal, so that what the failure
        // left is not simply overwritten by later puts.
        let refused_seen = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers = 1 + 2 * (seed % 2);
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                let refused_seen = refused_seen.clone();
                rt.spawn(async move {
                    let mut outcomes = Vec::new();
                    for n in w * 100..w * 100 + 8 {
                        if refused_seen.load(std::sync::atomic::Ordering::SeqCst) {
                            break;
                        }
                        let data = body(n, 500_000 + (n as usize % 7) * 30_000);
                        let outcome = put(&store, "b", &format!("k{n}"), &data).await;
                        if outcome.is_err() {
                            refused_seen.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        outcomes.push((format!("k{n}"), data, outcome));
                    }
                    outcomes
                })
            })
            .collect();
        // Somewhere in the middle of the writes, at a different point for
        // each seed.
        let trigger = 10 + (seed * 11) % (20 * writers);
        while dev.ops() < trigger && !tasks.iter().all(|t| t.is_finished()) {
            std::thread::sleep(std::time::Duration::from_micros(200));
        }
        dev.fail_next_overlapped_write();
        let outcomes = tasks.into_iter().flat_map(|t| rt.block_on(t).unwrap());
        let (stored, refused) = acknowledged(outcomes, &format!("seed {seed}"));
        // One failed batch refuses the puts it held, and only those.
        assert!(
            (1..=writers as usize).contains(&refused),
            "seed {seed}: {refused} puts refused"
        );
        assert_reopens_to(store, dev, &options, &stored, &format!("seed {seed}"));
    }
}

type Objects = std::collections::BTreeMap<String, Vec<u8>>;

fn assert_objects(store: &lsm::Store, expected: &Objects, what: &str) {
    let keys: Vec<String> = expected.keys().cloned().collect();
    assert_eq!(list_keys(store, "b"), keys, "{what}");
    for (key, data) in expected {
        let got = read_all(store, "b", key).unwrap_or_else(|e| panic!("{what}: {key}: {e}"));
        assert!(got == *data, "{what}: {key}: wrong bytes");
    }
}

/// The puts' outcomes: the objects acknowledged, and how many were refused
/// for space. Any other outcome fails the test.
fn acknowledged(
    outcomes: impl IntoIterator<Item = (String, Vec<u8>, lsm::Result<()>)>,
    what: &str,
) -> (Objects, usize) {
    let mut stored = Objects::new();
    let mut refused = 0;
    for (key, data, outcome) in outcomes {
        match outcome {
            Ok(()) => {
                stored.insert(key, data);
            }
            Err(lsm::Error::NoSpace) => refused += 1,
            Err(e) => panic!("{what}, {key}: {e}"),
        }
    }
    (stored, refused)
}

/// From a crash image of `dev` taken now, and after `store` shuts down
/// and `dev` is opened again, the store holds exactly `stored`. Unsynced
/// chunks may be lost or torn at a crash, but a restart finds no leftover
/// of a refused batch to report as damage.
fn assert_reopens_to(
    store: lsm::Store,
    dev: Arc<FaultyDevice>,
    options: &recovery::OpenOptions,
    stored: &Objects,
    what: &str,
) {
    let crashed = Arc::new(FaultyDevice::from_image(
        dev.crash_image(),
        FaultConfig::default(),
    ));
    store.shutdown();
    drop(store);
    for (how, device) in [("restart", dev), ("crash", crashed)] {
        let (reopened, report) = recovery::open(device, options.clone()).unwrap();
        assert_objects(&reopened, stored, &format!("{what}, after a {how}"));
        if how == "restart" {
            assert!(
                report.scan.damage.is_empty(),
                "{what}: {:?}",
                report.scan.damage
            );
        }
    }
}

/// Bodies up to 128 KiB go inline: one put is one record, one batch.
fn inline_options() -> recovery::OpenOptions {
    recovery::OpenOptions {
        store: lsm::StoreConfig {
            chunk_size_bytes: 64 << 10,
            ..config()
        },
        ignore_checkpoint: false,
    }
}

/// Incompressible bytes, so that a record's size is known from its body's.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The highest lsn of any crc-valid record of this format anywhere on the
/// device, wherever it lies: under a valid header, a zeroed one, or none.
fn highest_lsn_on(device: &FaultyDevice) -> u64 {
    let device_uuid = lsm::read_superblock(device).unwrap().device_uuid;
    let image = device.visible_image();
    let magic = lsm::format::RECORD_MAGIC.to_le_bytes();
    let mut highest = 0;
    for at in 0..image.len() - lsm::format::RECORD_HEADER_BYTES {
        if image[at..at + 4] != magic {
            continue;
        }
        let Some(header) = lsm::format::RecordHeader::peek(&image[at..]) else {
            continue;
        };
        let end = at + header.total_len();
        if end <= image.len() && lsm::format::RecordHeader::verify(&device_uuid, &image[at..end]) {
            highest = highest.max(header.lsn);
        }
    }
    highest
}

/// Recovery numbers above every record the device still holds, so that no
/// leftover can pass for a record written later.
fn assert_numbering_above_every_record(device: &FaultyDevice, what: &str) {
    let next_lsn = recovery::rebuild(device, false).unwrap().start.next_lsn;
    let highest = highest_lsn_on(device);
    assert!(
        next_lsn > highest,
        "{what}: recovery hands out lsn {next_lsn}, but a record on the device carries {highest}"
    );
}

/// A device image on which a compaction round was cut short by a power
/// cut: its copies are durable in the newest compaction segment, which
/// holds the highest lsns on the device, and nothing references them, so
/// recovery puts that segment, header and copies intact, on the free list
/// as its lowest entry. The log head has less room left than a 120 KB
/// inline put needs. Returns the image and the acknowledged objects.
fn round_cut_short_after_its_copies(rt: &tokio::runtime::Runtime) -> (Vec<u8>, Objects) {
    let base = formatted(8 << 20, 31);
    let (store, _) = open(base.clone());
    let mut acked = Objects::new();
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        // Six keys overwritten in turn until the log leaves segment 0:
        // segment 0 is then mostly dead, a victim once a checkpoint covers it.
        for i in 0.. {
            let key = format!("k{}", i % 6);
            let data = body(i, 60_000);
            put(&store, "b", &key, &data).await.unwrap();
            acked.insert(key.clone(), data);
            if store.object("b", &key).unwrap().location.segment == 1 {
                break;
            }
        }
        // Small puts until under 100 KiB of segment 1 is left.
        for i in 0.. {
            let key = format!("f{i}");
            let data = body(1000 + i, 8000);
            put(&store, "b", &key, &data).await.unwrap();
            acked.insert(key.clone(), data);
            let at = store.object("b", &key).unwrap().location;
            assert_eq!(at.segment, 1, "{key} left segment 1");
            if u64::from(at.offset + at.len) > SEGMENT_BYTES - (100 << 10) {
                break;
            }
        }
    });
    store.shutdown();
    drop(store);
    let before = base.visible_image();
    // Power fails at each device operation of a round in turn; the last
    // point that leaves the copies durable and nothing after them is kept.
    let policy = lsm::CompactionPolicy {
        max_live_ratio: 0.95,
        max_victims_per_round: 64,
        rate_bytes_per_s: None,
    };
    let mut cut_short = None;
    for crash_after in 1..200 {
        let dev = Arc::new(FaultyDevice::from_image(
            before.clone(),
            FaultConfig {
                seed: crash_after,
                ..Default::default()
            },
        ));
        let (store, _) = open(dev.clone());
        dev.set_crash_after_ops(Some(crash_after));
        let finished = rt.block_on(store.compact_round(&policy)).is_ok();
        store.shutdown();
        drop(store);
        if finished {
            break;
        }
        let image = dev.crash_image();
        let crashed = FaultyDevice::from_image(image.clone(), FaultConfig::default());
        let rebuilt = recovery::rebuild(&crashed, false).unwrap();
        let headers = recovery::scan::read_segment_headers(&crashed, &rebuilt.superblock).unwrap();
        let Some((segment, header)) = headers.newest(lsm::format::SegmentKind::Compaction) else {
            continue;
        };
        let last = recovery::scan::scan_compaction_segment(
            &crashed,
            &rebuilt.superblock,
            *segment,
            header,
            true,
            &mut Default::default(),
        )
        .unwrap();
        let copies_on_top = last >= header.first_lsn && last + 1 == rebuilt.start.next_lsn;
        let free = &rebuilt.start.free_segments;
        if copies_on_top && free.first() == Some(segment) {
            let head = rebuilt.start.head.unwrap();
            // Below the segment with the copies: a space limit there fails
            // only what goes past the log head.
            assert!(head.segment < *segment, "{head:?}");
            let room = SEGMENT_BYTES - u64::from(head.offset);
            assert!(room < 110_000, "{room} bytes left at the log head");
            cut_short = Some(image);
        }
    }
    let image = cut_short.expect("no crash point left a round's copies on top");
    (image, acked)
}

/// Take-back never zeroes the header of a segment the failed batch opened.
/// A segment recovery frees can still hold the copies of a compaction round
/// cut short, with the highest lsns on the device, and its header is what
/// makes recovery number above them. Here a put reopens that segment while
/// the host is out of space: with the new header not landed (the old one
/// must stay), landed alone, or landed with part of the record (the
/// records after it are taken back). After a restart or a crash, the store
/// holds exactly what was acknowledged, recovery reports no damage and
/// numbers above every record on the device, and later puts into the same
/// segment survive another restart without a stale copy passing for one
/// of their records.
#[test]
fn take_back_keeps_the_header_over_a_cut_short_rounds_copies() {
    let rt = runtime();
    let (image, acked) = round_cut_short_after_its_copies(&rt);
    let segment_start = |store: &lsm::Store, segment: u32| store.geometry().segment_offset(segment);
    for above_header in [0u64, 4096, 3 * 4096, 64 << 10] {
        let dev = Arc::new(FaultyDevice::from_image(
            image.clone(),
            FaultConfig {
                seed: above_header,
                ..Default::default()
            },
        ));
        let (store, report) = recovery::open(dev.clone(), inline_options()).unwrap();
        assert!(report.scan.damage.is_empty(), "{:?}", report.scan.damage);
        assert_numbering_above_every_record(&dev, "after the cut-short round");
        // The lowest free segment, which the next segment opened takes,
        // holds the copies.
        let reused = recovery::rebuild(dev.as_ref(), false)
            .unwrap()
            .start
            .free_segments
            .first()
            .copied()
            .unwrap();
        let limit = segment_start(&store, reused) + above_header;
        dev.set_nospace_above(Some(limit));
        // Its record does not fit at the log head, so the batch opens
        // `reused`; below the limit it would have succeeded.
        let refused = rt.block_on(put(&store, "b", "refused", &noise(7, 120_000)));
        assert!(
            matches!(refused, Err(lsm::Error::NoSpace)),
            "{above_header}: {refused:?}"
        );
        let crashed = Arc::new(FaultyDevice::from_image(
            dev.crash_image(),
            FaultConfig::default(),
        ));
        store.shutdown();
        drop(store);
        dev.set_nospace_above(None);
        for (what, device) in [("restart", dev.clone()), ("crash", crashed)] {
            let what = format!("{above_header} bytes past the header, after a {what}");
            let (store, report) = recovery::open(device.clone(), inline_options()).unwrap();
            assert!(
                report.scan.damage.is_empty(),
                "{what}: {:?}",
                report.scan.damage
            );
            assert_objects(&store, &acked, &what);
            assert_numbering_above_every_record(&device, &what);
            let mut expected = acked.clone();
            rt.block_on(async {
                for (key, data) in [("after", noise(8, 110_000)), ("small", body(9, 3000))] {
                    put(&store, "b", key, &data).await.unwrap();
                    assert_eq!(store.object("b", key).unwrap().location.segment, reused);
                    expected.insert(key.to_string(), data);
                }
            });
            store.shutdown();
            drop(store);
            let (store, report) = recovery::open(device.clone(), inline_options()).unwrap();
            // A stale copy read as a record after these would be damage
            // (valid records past a gap). Where the new header landed, the
            // records after it were taken back and the puts lie within that
            // range: nothing follows them. Where it did not, the segment's
            // old copies follow them, never cleared, and the end of the
            // puts reads as a torn tail (not damage: they carry lower lsns).
            let header_landed = above_header >= 4096;
            assert!(
                report
                    .scan
                    .damage
                    .iter()
                    .all(|d| d.torn_tail && !header_landed && d.segment == reused),
                "{what}, then puts and a restart: {:?}",
                report.scan.damage
            );
            assert_objects(&store, &expected, &what);
            assert_numbering_above_every_record(&device, &what);
        }
    }
}

/// Recovery reads a segment in 8 MiB windows, the next one while it walks
/// this one, and records straddle the windows' edges anywhere. With 32 MiB
/// segments and the whole log replayed (no checkpoint), every object comes
/// back and nothing is reported as damage. A record damaged past the first
/// window is reported and stepped over, and every other object survives.
#[test]
fn recovery_reads_ahead_across_windows_of_a_large_segment() {
    let rt = runtime();
    let dev = Arc::new(FaultyDevice::new(192 << 20, FaultConfig::default()));
    lsm::format_device(dev.as_ref(), 32 << 20).unwrap();
    let options = recovery::OpenOptions {
        store: lsm::StoreConfig {
            chunk_size_bytes: 256 << 10,
            ..config()
        },
        ignore_checkpoint: true,
    };
    let (store, _) = recovery::open(dev.clone(), options.clone()).unwrap();
    let mut stored = Objects::new();
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        for i in 0..70u64 {
            let data = body(i, 150_000 + (i as usize * 37_013) % 700_000);
            put(&store, "b", &format!("k{i}"), &data).await.unwrap();
            stored.insert(format!("k{i}"), data);
        }
    });
    store.shutdown();
    drop(store);
    let (reopened, report) = recovery::open(dev.clone(), options.clone()).unwrap();
    assert!(report.scan.damage.is_empty(), "{:?}", report.scan.damage);
    assert!(
        report.scan.bytes_scanned > 3 * (8 << 20),
        "only {} bytes: the log fits in fewer windows than the test needs",
        report.scan.bytes_scanned
    );
    assert_objects(&reopened, &stored, "the whole log replayed");
    // A chunk that starts in the segment's third window.
    let (victim, chunk) = stored
        .keys()
        .find_map(|key| {
            let entry = reopened.object("b", key).ok()?;
            let chunk = *entry
                .chunks
                .iter()
                .find(|c| c.location.offset > 2 * (8 << 20) && c.location.len > 4096)?;
            Some((key.clone(), chunk))
        })
        .expect("a chunk past the second window");
    let sb = reopened.superblock();
    reopened.shutdown();
    drop(reopened);
    let at = sb.segment_offset(chunk.location.segment) + chunk.location.offset as u64 + 2000;
    dev.flip_bit(at, 3);
    let (damaged, report) = recovery::open(dev.clone(), options).unwrap();
    assert!(
        // A damaged record that does not start its batch is reported from
        // the next block on; either way the range covers part of it.
        report.scan.damage.iter().any(|d| !d.torn_tail
            && d.segment == chunk.location.segment
            && d.offset < chunk.location.offset + chunk.location.len
            && d.offset + d.len > chunk.location.offset),
        "{:?} {:?}",
        report.scan.damage,
        chunk
    );
    assert!(read_all(&damaged, "b", &victim).is_err());
    stored.remove(&victim);
    for (key, data) in &stored {
        let got = read_all(&damaged, "b", key);
        assert!(got.is_ok_and(|g| g == *data), "{key}");
    }
}

/// Formatting a device that held an earlier store leaves that store's
/// records where the new log has not written yet, with their valid crcs
/// and numbers of their own. Recovery must never take one for a record of
/// the new store: after a restart the store holds exactly the new objects,
/// whatever the old log held past the new log's end.
#[test]
fn records_of_an_earlier_format_never_replay() {
    let rt = runtime();
    for (old_objects, new_objects) in [(60u64, 5u64), (60, 25), (200, 3)] {
        let dev = formatted(32 << 20, old_objects);
        let (store, _) = open(dev.clone());
        rt.block_on(async {
            store.create_bucket("b", false).await.unwrap();
            for i in 0..old_objects {
                let data = body(i, 2_000 + (i as usize * 7_919) % 60_000);
                put(&store, "b", &format!("old{i}"), &data).await.unwrap();
            }
        });
        store.shutdown();
        drop(store);
        lsm::format_device(dev.as_ref(), SEGMENT_BYTES).unwrap();
        let (store, _) = open(dev.clone());
        let mut stored = Objects::new();
        rt.block_on(async {
            store.create_bucket("b", false).await.unwrap();
            for i in 0..new_objects {
                let data = body(1000 + i, 3_000);
                put(&store, "b", &format!("new{i}"), &data).await.unwrap();
                stored.insert(format!("new{i}"), data);
            }
        });
        store.shutdown();
        drop(store);
        let (reopened, _) = open(dev.clone());
        let what = format!("{old_objects} old objects, {new_objects} new");
        assert_objects(&reopened, &stored, &what);
    }
}

/// New chunks are acknowledged unsynced, but never more than
/// MAX_UNSYNCED_BYTES of them: recovery looks only that far past damage for
/// more records, so a record surviving farther out would be missed and its
/// lsn handed out again. A large body is written with 1 MiB chunks (fixed
/// cuts), with batches of them at the device together.
#[test]
fn unsynced_writes_stay_within_the_resync_window() {
    let rt = runtime();
    let limit = lsm::writer::MAX_UNSYNCED_BYTES as u64;
    let dev = Arc::new(FaultyDevice::new(4 * limit, FaultConfig::default()));
    lsm::format_device(dev.as_ref(), 16 << 20).unwrap();
    let options = recovery::OpenOptions {
        store: lsm::StoreConfig {
            chunk_size_bytes: 1 << 20,
            dedup: false,
            cache_bytes: 0,
            ..lsm::StoreConfig::default()
        },
        ignore_checkpoint: false,
    };
    let (store, _) = recovery::open(dev.clone(), options).unwrap();
    let data = body(3, 2 * limit as usize + (5 << 20));
    rt.block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put(&store, "b", "big", &data).await.unwrap();
    });
    let most = dev.most_unsynced_bytes();
    let bound = limit + 3 * blockdev::BLOCK_SIZE as u64;
    assert!(most <= bound, "{most} bytes were unsynced at once");
    // Syncs are not needlessly frequent either: one batch at a time would
    // stay under MAX_BATCH_BYTES.
    assert!(
        most > lsm::writer::MAX_BATCH_BYTES as u64,
        "only {most} bytes were ever unsynced"
    );
    assert!(read_all(&store, "b", "big").unwrap() == data);
}

/// A sync that fails after new chunks were acknowledged unsynced may have
/// lost them (Linux can drop the pages of a failed writeback), whatever the
/// error says: the writer refuses writes from then on instead of letting a
/// retry reference chunks that may not exist.
#[test]
fn a_failed_sync_after_unsynced_chunks_stops_writes() {
    let rt = runtime();
    let dev = formatted(16 << 20, 21);
    let (store, _) = open(dev.clone());
    rt.block_on(store.create_bucket("b", false)).unwrap();
    dev.set_sync_nospace(true);
    let err = rt
        .block_on(put(&store, "b", "k", &body(5, 40_000)))
        .unwrap_err();
    assert!(matches!(err, lsm::Error::Failed(_)), "{err:?}");
    dev.set_sync_nospace(false);
    let again = rt.block_on(put(&store, "b", "k", &body(5, 40_000)));
    assert!(matches!(again, Err(lsm::Error::Failed(_))), "{again:?}");
    assert!(matches!(store.object("b", "k"), Err(lsm::Error::NoSuchKey)));
}
