//! Sealed chunks on the device (DESIGN.md, "Encryption at rest"): no
//! (key, nonce) pair is used twice, acknowledged encrypted objects survive
//! a crash at any point, and a damaged encrypted chunk is found by a read
//! and named by fsck, with and without the master keys.

mod common;

use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use common::*;
use lsm::cipher::{DataKey, NONCE_BYTES};
use lsm::format::{ChunkRef, Condition, ObjectEncryption, ObjectMeta, SseMode};
use lsm::Store;

const MASTER_KEYS: &str = "strata-test:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// The key and MD5 ceph/s3-tests use for SSE-C.
const CUSTOMER_KEY: &str = "pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs=";
const CUSTOMER_KEY_MD5: &str = "DWygnHRtgiJ77HCm+1rvHw==";

fn keyring() -> kms::Keyring {
    let mut keys = kms::Keyring::default();
    keys.add_entries(MASTER_KEYS).unwrap();
    keys
}

fn customer() -> kms::CustomerKey {
    kms::customer_key(Some("AES256"), Some(CUSTOMER_KEY), Some(CUSTOMER_KEY_MD5)).unwrap()
}

/// Writes `data` sealed under `key`, in the pieces a request body arrives in.
async fn sealed_body(
    store: &Store,
    key: &Arc<DataKey>,
    data: &[u8],
) -> lsm::Result<lsm::WrittenData> {
    let mut writer = store.object_writer().sealed_with(key.clone());
    for piece in data.chunks(3000) {
        writer.write(piece).await?;
    }
    writer.finish().await
}

async fn put_sealed(
    store: &Store,
    bucket: &str,
    key: &str,
    data: &[u8],
    mode: SseMode,
) -> lsm::Result<()> {
    let (data_key, wrapped) = keyring().new_data_key(mode, None, None).unwrap();
    let written = sealed_body(store, &Arc::new(data_key), data).await?;
    let mut meta = ObjectMeta::default();
    meta.set_encryption(Some(wrapped));
    store
        .put_object(bucket, key, meta, written, Condition::Always)
        .await
        .map(drop)
}

/// Reads an encrypted object back with the key its metadata wraps.
fn read_sealed(store: &Store, bucket: &str, key: &str) -> lsm::Result<Vec<u8>> {
    let entry = store.object(bucket, key)?;
    let wrapped: &ObjectEncryption = entry.meta.encryption().expect("an encrypted object");
    let data_key = keyring().unwrap(wrapped).unwrap();
    let mut out = Vec::new();
    for chunk in &entry.chunks {
        out.extend(store.read_chunk(chunk, Some(&data_key))?);
    }
    Ok(out)
}

/// The sealed bytes of each chunk as the device holds them.
fn stored(dev: &dyn BlockDevice, chunks: &[ChunkRef]) -> Vec<Vec<u8>> {
    let sb = lsm::read_superblock(dev).unwrap();
    chunks
        .iter()
        .map(|c| {
            let (_, payload) = lsm::reader::read_record(dev, &sb, c.location).unwrap();
            payload.to_vec()
        })
        .collect()
}

#[test]
fn a_part_uploaded_twice_under_one_customer_key_gets_new_ciphertext_and_nonces() {
    let dev = formatted(16 << 20, 1);
    let (store, _) = open(dev.clone() as Arc<dyn BlockDevice>);
    let data = body(7, 20_000);
    runtime().block_on(async {
        store.create_bucket("b", false).await.unwrap();
        // The upload's data key is wrapped under the customer's key; each
        // part request unwraps it again, as UploadPart does.
        let (_, wrapped) = customer().new_data_key().unwrap();
        let mut meta = ObjectMeta::default();
        meta.set_encryption(Some(wrapped.clone()));
        let upload = store.create_upload("b", "k", meta).await.unwrap();
        let mut sent = Vec::new();
        for _ in 0..2 {
            let part_key = Arc::new(customer().unwrap(&wrapped).unwrap());
            let written = sealed_body(&store, &part_key, &data).await.unwrap();
            let part = store
                .put_part(&upload, 1, written, "etag".into(), vec![])
                .await
                .unwrap();
            sent.push(part.chunks.clone());
        }
        let (first, second) = (
            stored(dev.as_ref(), &sent[0]),
            stored(dev.as_ref(), &sent[1]),
        );
        assert!(first.len() > 1, "the part spans several chunks");
        assert_eq!(first.len(), second.len());
        let nonce = |sealed: &Vec<u8>| sealed[sealed.len() - NONCE_BYTES..].to_vec();
        let mut nonces: Vec<Vec<u8>> = first.iter().chain(&second).map(nonce).collect();
        for (a, b) in first.iter().zip(&second) {
            assert_ne!(a, b, "equal plaintext under one key sealed alike");
        }
        nonces.sort();
        nonces.dedup();
        assert_eq!(nonces.len(), first.len() * 2, "a nonce was used twice");
        // Both copies open under the key, and neither was deduplicated
        // into the other.
        let key = customer().unwrap(&wrapped).unwrap();
        for chunks in &sent {
            let mut plain = Vec::new();
            for chunk in chunks {
                plain.extend(store.read_chunk_uncached(chunk, Some(&key)).unwrap());
            }
            assert_eq!(plain, data);
        }
        assert_ne!(sent[0][0].location, sent[1][0].location);
    });
    store.shutdown();
}

#[test]
fn a_sealed_chunk_does_not_open_without_its_key_or_under_another() {
    let dev = formatted(16 << 20, 2);
    let (store, _) = open(dev.clone() as Arc<dyn BlockDevice>);
    runtime().block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put_sealed(&store, "b", "one", &body(1, 9000), SseMode::S3)
            .await
            .unwrap();
        put_sealed(&store, "b", "two", &body(1, 9000), SseMode::Kms)
            .await
            .unwrap();
    });
    assert_eq!(read_sealed(&store, "b", "one").unwrap(), body(1, 9000));
    let one = store.object("b", "one").unwrap();
    let two = store.object("b", "two").unwrap();
    assert!(matches!(
        store.read_chunk_uncached(&one.chunks[0], None),
        Err(lsm::Error::Sealed)
    ));
    let other_key = keyring().unwrap(two.meta.encryption().unwrap()).unwrap();
    assert!(matches!(
        store.read_chunk_uncached(&one.chunks[0], Some(&other_key)),
        Err(lsm::Error::Corruption { .. })
    ));
    // Equal plaintext under two data keys shares no chunk.
    for a in &one.chunks {
        assert!(two.chunks.iter().all(|b| b.location != a.location));
    }
    store.shutdown();
}

/// Power fails at each device operation in turn while encrypted objects
/// are written: every acknowledged one reads back whole with its key, and
/// an unacknowledged one is absent or whole.
#[test]
fn acknowledged_encrypted_objects_survive_a_crash_at_any_point() {
    let rt = runtime();
    let mut finished = false;
    for crash_after in 1..120 {
        let dev = formatted(16 << 20, crash_after);
        let (store, _) = open(dev.clone() as Arc<dyn BlockDevice>);
        rt.block_on(store.create_bucket("b", false)).unwrap();
        dev.set_crash_after_ops(Some(crash_after));
        let mut acked = Vec::new();
        let mut tried = Vec::new();
        rt.block_on(async {
            for i in 0..6u64 {
                let key = format!("k{i}");
                let mode = if i % 2 == 0 {
                    SseMode::S3
                } else {
                    SseMode::Kms
                };
                let data = body(i, 2000 + 4000 * i as usize);
                tried.push((key.clone(), data.clone()));
                if put_sealed(&store, "b", &key, &data, mode).await.is_err() {
                    break;
                }
                acked.push((key, data));
            }
        });
        store.shutdown();
        drop(store);
        finished |= acked.len() == 6;
        let crashed = Arc::new(FaultyDevice::from_image(
            dev.crash_image(),
            FaultConfig::default(),
        ));
        let (store, _) = open(crashed.clone() as Arc<dyn BlockDevice>);
        for (key, data) in &tried {
            let acknowledged = acked.iter().any(|(k, _)| k == key);
            match read_sealed(&store, "b", key) {
                Ok(read) => assert_eq!(&read, data, "crash after {crash_after}: {key}"),
                Err(lsm::Error::NoSuchKey) if !acknowledged => {}
                Err(e) => panic!("crash after {crash_after}: {key} lost: {e}"),
            }
        }
        store.shutdown();
        drop(store);
        // A batch torn out of order leaves a gap fsck reports as a damaged
        // range (as it does for plain objects); what matters here is that
        // every object left verifies under its key.
        let fsck = recovery::fsck::check_with_keys(crashed.as_ref(), &(), &keyring()).unwrap();
        assert!(
            fsck.unreadable_objects.is_empty(),
            "crash after {crash_after}: {fsck:?}"
        );
        assert_eq!(fsck.encrypted_verified, fsck.objects_checked);
        assert!(fsck.objects_checked >= acked.len());
        assert_eq!(fsck.encrypted_structural, 0);
        if finished {
            break;
        }
    }
    assert!(finished, "no crash point let every put finish");
}

/// A flipped bit in an encrypted chunk fails the read, and fsck names the
/// object whether or not it holds the master key; it also says how it
/// checked each encrypted object.
#[test]
fn a_flipped_bit_in_an_encrypted_chunk_is_found_and_named() {
    let dev = formatted(16 << 20, 3);
    let (store, _) = open(dev.clone() as Arc<dyn BlockDevice>);
    runtime().block_on(async {
        store.create_bucket("b", false).await.unwrap();
        put_sealed(&store, "b", "damaged", &body(5, 30_000), SseMode::S3)
            .await
            .unwrap();
        put_sealed(&store, "b", "intact", &body(6, 30_000), SseMode::Kms)
            .await
            .unwrap();
        let (_, wrapped) = customer().new_data_key().unwrap();
        let key = Arc::new(customer().unwrap(&wrapped).unwrap());
        let written = sealed_body(&store, &key, &body(8, 10_000)).await.unwrap();
        let mut meta = ObjectMeta::default();
        meta.set_encryption(Some(wrapped));
        store
            .put_object("b", "customer", meta, written, Condition::Always)
            .await
            .unwrap();
    });
    let sb = lsm::read_superblock(dev.as_ref()).unwrap();
    let chunk = store.object("b", "damaged").unwrap().chunks[1];
    store.shutdown();
    drop(store);

    let before = recovery::fsck::check_with_keys(dev.as_ref(), &(), &keyring()).unwrap();
    assert!(before.clean(), "{before:?}");
    assert_eq!(
        (before.encrypted_verified, before.encrypted_structural),
        (2, 1)
    );
    let without = recovery::fsck::check(dev.as_ref(), &()).unwrap();
    assert_eq!(
        (without.encrypted_verified, without.encrypted_structural),
        (0, 3)
    );

    // A bit in the middle of the chunk's sealed bytes.
    let at = sb.segment_offset(chunk.location.segment)
        + u64::from(chunk.location.offset)
        + u64::from(chunk.location.len) / 2;
    dev.flip_bit(at, 4);
    let (store, _) = open(dev.clone() as Arc<dyn BlockDevice>);
    assert!(read_sealed(&store, "b", "damaged").is_err());
    assert_eq!(read_sealed(&store, "b", "intact").unwrap(), body(6, 30_000));
    store.shutdown();
    drop(store);
    for report in [
        recovery::fsck::check_with_keys(dev.as_ref(), &(), &keyring()).unwrap(),
        recovery::fsck::check(dev.as_ref(), &()).unwrap(),
    ] {
        let named: Vec<&str> = report
            .unreadable_objects
            .iter()
            .map(|o| o.key.as_str())
            .collect();
        assert_eq!(named, ["damaged"], "{report:?}");
    }
}
