//! A body is cut into the same chunks however it arrives: in one write or
//! in pieces of any size. Dedup depends on that (the same content uploaded
//! twice must meet the same cuts), and so does which bodies go inline.

mod common;

use std::sync::Arc;

use blockdev::{FaultConfig, FaultyDevice};
use common::*;

/// Bodies up to this size go inline into their object record.
const INLINE_MAX_BYTES: usize = 128 << 10;

fn store_with(dedup: bool, chunk_size_bytes: usize) -> lsm::Store {
    let dev = Arc::new(FaultyDevice::new(256 << 20, FaultConfig::default()));
    lsm::format_device(dev.as_ref(), 16 << 20).unwrap();
    let options = recovery::OpenOptions {
        store: lsm::StoreConfig {
            chunk_size_bytes,
            dedup,
            cache_bytes: 0,
            ..lsm::StoreConfig::default()
        },
        ignore_checkpoint: false,
    };
    recovery::open(dev, options).unwrap().0
}

/// Puts the body in pieces of `piece` bytes; returns whether it went
/// inline (its one chunk is its object record, or with dedup an identical
/// body's record), and its chunks' lengths and hashes.
async fn put_in_pieces(
    store: &lsm::Store,
    key: &str,
    data: &[u8],
    piece: usize,
) -> (bool, Vec<(u32, [u8; 32])>) {
    let mut writer = store.object_writer();
    for part in data.chunks(piece.max(1)) {
        writer.write(part).await.unwrap();
    }
    let written = writer.finish().await.unwrap();
    store
        .put_object(
            "b",
            key,
            Default::default(),
            written,
            lsm::Condition::Always,
        )
        .await
        .unwrap();
    assert!(read_all(store, "b", key).unwrap() == data, "{key}");
    let entry = store.object("b", key).unwrap();
    let inline = entry.chunks.iter().any(|c| c.location == entry.location);
    let cuts = entry.chunks.iter().map(|c| (c.raw_len, c.hash)).collect();
    (inline, cuts)
}

#[test]
fn cuts_do_not_depend_on_how_the_body_arrives() {
    let rt = runtime();
    for (dedup, chunk_size) in [
        (true, 1 << 20),
        (false, 1 << 20),
        (true, 4096),
        (false, 4096),
    ] {
        let store = store_with(dedup, chunk_size);
        rt.block_on(store.create_bucket("b", false)).unwrap();
        let sizes = [1, 100, 128 << 10, (128 << 10) + 1, 300_000, 5 << 20];
        for (n, size) in sizes.into_iter().enumerate() {
            let data = body(n as u64, size);
            let what = format!("dedup {dedup}, chunks of {chunk_size}, body of {size}");
            let (inline, expected) =
                rt.block_on(put_in_pieces(&store, &format!("k{n}"), &data, size));
            // The first cut waits for the largest chunk (16 KiB with 4 KiB
            // chunks) or for the body to outgrow inline.
            let small = size <= INLINE_MAX_BYTES && (chunk_size > 4096 || size < 16384);
            assert_eq!(inline, small, "{what}: inline");
            let pieces: &[usize] = if size <= 300_000 {
                &[1, 3000, (64 << 10) + 7, 1 << 20]
            } else {
                &[3000, (64 << 10) + 7, 1 << 20]
            };
            for &piece in pieces {
                let key = format!("k{n}-{piece}");
                let (inline, cuts) = rt.block_on(put_in_pieces(&store, &key, &data, piece));
                assert_eq!(cuts, expected, "{what}, pieces of {piece}");
                // With dedup an inline body's one chunk is the first
                // object's record, not its own.
                if !dedup {
                    assert_eq!(inline, small, "{what}, pieces of {piece}: inline");
                }
            }
        }
        store.shutdown();
    }
}
