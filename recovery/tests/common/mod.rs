//! Shared helpers for recovery tests: a formatted fault-injecting device, a
//! small-chunk store configuration, and reading whole objects back.

#![allow(dead_code)]

use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use lsm::{Compression, Store, StoreConfig};

pub const SEGMENT_BYTES: u64 = 1 << 20;

pub fn config() -> StoreConfig {
    StoreConfig {
        chunk_size_bytes: 4096,
        compression: Compression::default(),
        dedup: true,
        write_window_chunks: 4,
        min_part_size_bytes: 1000,
        cache_bytes: 0,
    }
}

pub fn options() -> recovery::OpenOptions {
    recovery::OpenOptions {
        store: config(),
        ignore_checkpoint: false,
    }
}

pub fn formatted(size: u64, seed: u64) -> Arc<FaultyDevice> {
    formatted_with(
        size,
        FaultConfig {
            seed,
            ..Default::default()
        },
    )
}

pub fn formatted_with(size: u64, config: FaultConfig) -> Arc<FaultyDevice> {
    let dev = Arc::new(FaultyDevice::new(size, config));
    lsm::format_device(dev.as_ref(), SEGMENT_BYTES).unwrap();
    dev
}

/// A device that reports writes from another thread (as soon as they
/// land) for odd seeds, so that the log writer has several in flight, and
/// in the calling thread for even ones.
pub fn formatted_late_for_odd_seeds(size: u64, seed: u64) -> Arc<FaultyDevice> {
    formatted_with(
        size,
        FaultConfig {
            seed,
            write_latency: (seed % 2 == 1).then_some(std::time::Duration::ZERO),
            ..Default::default()
        },
    )
}

pub fn open(dev: Arc<dyn BlockDevice>) -> (Store, recovery::RecoveryReport) {
    recovery::open(dev, options()).unwrap()
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Two workers, for tests of concurrent writers.
pub fn threaded_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Deterministic, mildly compressible bytes.
pub fn body(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|i| {
            if i % 3 == 0 {
                b'a'
            } else {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            }
        })
        .collect()
}

pub async fn put(store: &Store, bucket: &str, key: &str, data: &[u8]) -> lsm::Result<()> {
    let mut writer = store.object_writer();
    for piece in data.chunks(3000) {
        writer.write(piece).await?;
    }
    let written = writer.finish().await?;
    store
        .put_object(
            bucket,
            key,
            lsm::ObjectMeta::default(),
            written,
            lsm::Condition::Always,
        )
        .await
        .map(|_| ())
}

pub fn read_all(store: &Store, bucket: &str, key: &str) -> lsm::Result<Vec<u8>> {
    let entry = store.object(bucket, key)?;
    let mut out = Vec::with_capacity(entry.meta.size as usize);
    for chunk in &entry.chunks {
        out.extend(store.read_chunk(chunk, None)?);
    }
    Ok(out)
}

/// Every key in the bucket, in order.
pub fn list_keys(store: &Store, bucket: &str) -> Vec<String> {
    let query = lsm::ListQuery {
        max_keys: usize::MAX,
        ..Default::default()
    };
    let listed = store.list_objects(bucket, &query).unwrap();
    listed.objects.into_iter().map(|(key, _)| key).collect()
}
