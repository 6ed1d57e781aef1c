//! A device written by the previous release opens with all its data: the
//! image in tests/fixtures was written by format version 5's `strata`
//! (tests/fixtures/make_image.py) and holds a checkpoint, records after
//! it, inline, chunked and deduplicated objects, overwrites, deletes, a
//! completed multipart upload and one still open. Every object must come
//! back byte for byte, as must the open upload; the device must then take
//! writes in the new format, move to it, and open again.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use blockdev::{BlockDevice, FaultConfig, FaultyDevice};
use common::*;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

fn image() -> Vec<u8> {
    let compressed = std::fs::read(fixture("format-v5.img.zst")).expect("fixture image");
    let mut out = Vec::new();
    zstd::stream::Decoder::new(&compressed[..])
        .expect("zstd")
        .read_to_end(&mut out)
        .expect("decompress");
    out
}

fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixture("format-v5.json")).expect("fixture manifest");
    serde_json::from_str(&text).expect("manifest json")
}

/// Every object the manifest names, and nothing else, with its bytes
/// (MD5), ETag, content type and metadata; and the open upload's parts.
fn assert_holds_the_fixture(store: &lsm::Store) {
    let want = expected();
    let buckets = want["buckets"].as_object().expect("buckets");
    let names: Vec<String> = store.list_buckets().into_iter().map(|b| b.name).collect();
    let mut want_names: Vec<&String> = buckets.keys().collect();
    want_names.sort();
    assert_eq!(names.iter().collect::<Vec<_>>(), want_names);
    for (bucket, objects) in buckets {
        let objects = objects.as_object().expect("objects");
        assert_eq!(
            list_keys(store, bucket),
            objects.keys().cloned().collect::<Vec<_>>(),
            "{bucket}"
        );
        for (key, o) in objects {
            let entry = store.object(bucket, key).expect("object");
            assert!(entry.null_version, "{bucket}/{key} is a null version");
            let bytes = read_all(store, bucket, key).expect("readable");
            assert_eq!(
                bytes.len() as u64,
                o["size"].as_u64().unwrap(),
                "{bucket}/{key}"
            );
            assert_eq!(
                hex::encode(md5_of(&bytes)),
                o["md5"].as_str().unwrap(),
                "{bucket}/{key}"
            );
            assert_eq!(
                entry.meta.etag,
                o["etag"].as_str().unwrap(),
                "{bucket}/{key}"
            );
            assert_eq!(
                entry.meta.content_type.as_deref(),
                o["content_type"].as_str(),
                "{bucket}/{key}"
            );
            let metadata: BTreeMap<String, String> =
                entry.meta.user_metadata.iter().cloned().collect();
            let want_metadata: BTreeMap<String, String> = o["metadata"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            assert_eq!(metadata, want_metadata, "{bucket}/{key}");
        }
    }
    for u in want["uploads"].as_array().unwrap() {
        let upload = store
            .upload(u["upload_id"].as_str().unwrap())
            .expect("open upload");
        assert_eq!(upload.create.bucket, u["bucket"].as_str().unwrap());
        assert_eq!(upload.create.key, u["key"].as_str().unwrap());
        for p in u["parts"].as_array().unwrap() {
            let part = &upload.parts[&(p["number"].as_u64().unwrap() as u32)];
            assert_eq!(part.etag, p["etag"].as_str().unwrap());
            assert_eq!(part.size, p["size"].as_u64().unwrap());
            let mut bytes = Vec::new();
            for chunk in &part.chunks {
                bytes.extend(store.read_chunk(chunk).expect("part readable"));
            }
            assert_eq!(hex::encode(md5_of(&bytes)), part.etag);
        }
    }
    assert_eq!(store.space_recount(), Vec::<String>::new());
}

fn md5_of(data: &[u8]) -> [u8; 16] {
    use md5::Digest;
    md5::Md5::digest(data).into()
}

#[test]
fn a_version_5_device_opens_with_all_its_data_and_moves_to_version_6() {
    let bytes = image();
    let dev = Arc::new(FaultyDevice::from_image(
        bytes.clone(),
        FaultConfig::default(),
    ));
    let sb = lsm::read_superblock(dev.as_ref()).expect("superblock");
    assert_eq!(sb.format_version, 5, "the fixture is a version 5 device");
    let (store, report) = open(dev.clone());
    assert!(
        report.checkpoint_used,
        "the version 5 checkpoint loads: {report:?}"
    );
    assert!(
        report.scan.records_applied > 0,
        "records after it replay: {report:?}"
    );
    assert_holds_the_fixture(&store);

    let rt = runtime();
    // It takes writes of the new format at once, and its upgrade is a
    // checkpoint in the new format.
    rt.block_on(async {
        put(&store, "beta", "written-by-v6", b"new format")
            .await
            .unwrap();
        store
            .configure_bucket(
                "beta",
                lsm::BucketSetting::Versioning(lsm::VersioningState::Enabled),
            )
            .await
            .unwrap();
        assert_eq!(store.upgrade_format().await.unwrap(), Some(5));
        assert_eq!(store.upgrade_format().await.unwrap(), None);
    });
    store.shutdown();
    drop(store);
    let sb = lsm::read_superblock(dev.as_ref()).expect("superblock");
    assert_eq!(sb.format_version, lsm::format::FORMAT_VERSION);
    let (again, report) = open(dev.clone() as Arc<dyn BlockDevice>);
    assert!(report.checkpoint_used);
    assert_eq!(
        read_all(&again, "beta", "written-by-v6").unwrap(),
        b"new format"
    );
    assert_eq!(
        again.bucket_config("beta").unwrap().versioning,
        lsm::VersioningState::Enabled
    );
    again.shutdown();

    // Crashed before the upgrade's checkpoint: the old checkpoint and the
    // new records together still open whole.
    let dev = Arc::new(FaultyDevice::from_image(bytes, FaultConfig::default()));
    let (store, _) = open(dev.clone());
    rt.block_on(put(
        &store,
        "alpha",
        "before-upgrade",
        b"v6 record, v5 checkpoint",
    ))
    .unwrap();
    store.shutdown();
    drop(store);
    assert_eq!(
        lsm::read_superblock(dev.as_ref()).unwrap().format_version,
        5
    );
    let (mixed, _) = open(dev.clone());
    assert_eq!(
        read_all(&mixed, "alpha", "before-upgrade").unwrap(),
        b"v6 record, v5 checkpoint"
    );
    mixed.shutdown();
    drop(mixed);
    let fsck =
        recovery::fsck::check(dev.as_ref(), &()).expect("fsck runs on a mixed-format device");
    assert!(fsck.clean(), "{fsck:?}");
}

/// fsck reads a version 5 device as it is, without changing it.
#[test]
fn fsck_checks_a_version_5_device() {
    let dev = FaultyDevice::from_image(image(), FaultConfig::default());
    let report = recovery::fsck::check(&dev, &()).expect("fsck");
    assert!(report.clean(), "{report:?}");
    assert_eq!(report.objects_checked, 9);
    assert_eq!(lsm::read_superblock(&dev).unwrap().format_version, 5);
}
